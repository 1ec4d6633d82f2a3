/*
 * The membership agent: one node's participation in the membership table
 * (table.h), through an mp_storage and an mp_env only.
 *
 * What it does, all by read-modify-compare-and-set of the one table record
 * (a conflict means someone else changed the table first: read again and
 * re-apply on top, a bounded number of times with growing, jittered
 * backoff on env timers):
 *   - join: add its row (joining), marking any older incarnation of its own
 *     address dead in the same change, then make it active;
 *   - renew its lease every renew_ns by bumping its row's heartbeat;
 *   - read the table every poll_ns, and tell its owner the set of members
 *     that may be serving when it changes;
 *   - record suspicions reported by the failure detector
 *     (mp__membership_suspect) and declare a member dead once enough
 *     members suspect it, or once its lease expired as observed here;
 *   - find out it was itself declared dead (after a pause or a partition
 *     from the database) and say so (on_dead): it never resurrects its row;
 *     its owner must rejoin with a new incarnation (a new agent);
 *   - leave gracefully: shutting_down, then stop serving, then dead.
 *
 * The lease rule, without comparing clocks across processes:
 *   - SELF: the node may serve until (the time, by its own clock, just
 *     before it sent its last renewal that the storage ACCEPTED) + its
 *     lease. A renewal whose outcome is unknown or refused extends nothing.
 *   - OTHERS: an observer considers a row's lease expired only once it has
 *     seen the SAME heartbeat value for lease + margin by its own clock,
 *     counted from the completion of the first read that showed it.
 *   Why that is safe: the owner's accepted renewal was applied after it was
 *   sent, and the observer's first read of its value completed after that;
 *   so the observer's interval starts later than the owner's, and is longer
 *   by the margin. As long as the two clocks' rates differ by less than the
 *   margin over a lease (rate deviation d < margin / (2 lease + margin) for
 *   each clock, property-tested in test_membership_agent), the owner stops
 *   serving strictly before anyone can take over. The declaration itself is
 *   a compare-and-set against the version the observer read, so a renewal
 *   applied in between makes the declaration fail, and a declaration
 *   applied first makes the renewal find the row dead.
 *
 * The member list reported (on_members) is the list of rows that MAY still
 * be serving, sorted by (address, incarnation): active and shutting_down
 * rows, and dead rows declared by others whose lease is not yet observed
 * expired here (the owner may not know yet). A row leaves the list only
 * when taking over its actors is safe: it is dead in the table (so its
 * owner can never renew again) and its lease was observed expired, or it is
 * dead by its own graceful leave. An active row whose lease looks expired
 * stays listed until this agent's declaration is accepted: until then its
 * owner's renewal could still win. Placement should use
 * the entries whose status is active (and that host the type); routing may
 * still send to the others until they leave the list.
 *
 * Thread and lifetime: loop thread of env only. Callbacks run from the
 * agent's timer and storage callbacks, never from inside an mp__magent_*
 * call; do not free the agent from inside one of its callbacks (defer it).
 * The env and the storage must outlive the agent.
 */
#ifndef MP_MEMBERSHIP_AGENT_H
#define MP_MEMBERSHIP_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "membership/table.h"
#include "moonpool/env.h"
#include "moonpool/limits.h"
#include "moonpool/storage.h"

/* Defaults: moonpool/limits.h (MP_DEFAULT_MEMBERSHIP_*). */
#define MP__MEMBERSHIP_DEFAULT_LEASE_NS MP_DEFAULT_MEMBERSHIP_LEASE_NS
#define MP__MEMBERSHIP_DEFAULT_MARGIN_NS MP_DEFAULT_MEMBERSHIP_MARGIN_NS
#define MP__MEMBERSHIP_DEFAULT_POLL_NS MP_DEFAULT_MEMBERSHIP_POLL_NS
#define MP__MEMBERSHIP_DEFAULT_VOTES MP_DEFAULT_MEMBERSHIP_VOTES
#define MP__MEMBERSHIP_DEFAULT_RETRIES MP_DEFAULT_MEMBERSHIP_RETRIES
#define MP__MEMBERSHIP_DEFAULT_BACKOFF_NS MP_DEFAULT_MEMBERSHIP_BACKOFF_NS
/* A suspicion counts while the suspect's heartbeat advanced by at most
 * this much since it was recorded (about two renewals): suspicions of a
 * member that keeps renewing age out instead of piling up. */
#define MP__MEMBERSHIP_SUSPICION_WINDOW 2u

typedef struct mp__magent_config {
    uint64_t lease_ns;     /* 0: MP__MEMBERSHIP_DEFAULT_LEASE_NS */
    uint64_t renew_ns;     /* 0: lease_ns / 3; must be < lease_ns */
    uint64_t margin_ns;    /* clock-drift margin (config_init: default 1 s;
                              0 is taken as 0: no margin) */
    uint64_t poll_ns;      /* 0: MP__MEMBERSHIP_DEFAULT_POLL_NS */
    uint32_t votes;        /* suspicions that declare dead; 0: default 2 */
    uint32_t max_retries;  /* CAS attempts per round; 0: default 16 */
    uint64_t backoff_ns;   /* first conflict backoff; 0: default 5 ms */
} mp__magent_config;

/* Fill every default. */
void mp__magent_config_init(mp__magent_config *cfg);

/* One entry of the reported member list. */
typedef struct mp__member_view {
    char addr[MP_ADDR_MAX + 1];
    uint32_t incarnation;
    uint8_t status; /* mp__member_status */
    uint8_t ntypes;
    char types[MP__MT_MAX_TYPES][MP__MT_TYPE_MAX + 1];
} mp__member_view;

/* The list of members that may be serving changed (see the top comment).
 * list[0..n) is valid only during the call. */
typedef void (*mp__magent_members_cb)(void *ud, const mp__member_view *list, size_t n);

/* This node's row was found dead (or gone): it must stop serving (it is
 * already refused by may_serve) and rejoin with a new incarnation. Runs
 * once; the agent does nothing more afterwards but can be freed. */
typedef void (*mp__magent_dead_cb)(void *ud);

/* A join or leave finished: 0, or MP_ECLOSED (the agent found itself dead
 * first). Failed rounds (conflicts past max_retries, storage errors, a
 * corrupt stored table, a full table) are logged and retried at the next
 * tick, so a join or leave waits for the storage rather than failing. */
typedef void (*mp__magent_done_cb)(void *ud, int status);

typedef struct mp__magent_callbacks {
    mp__magent_members_cb on_members; /* may be NULL */
    mp__magent_dead_cb on_dead;       /* may be NULL */
    mp__magent_done_cb on_joined;     /* may be NULL */
    void *ud;
} mp__magent_callbacks;

typedef struct mp__magent mp__magent;

/* Create an agent for the member (addr, incarnation) hosting types[0..ntypes)
 * in cluster namespace ns. Nothing happens until mp__magent_join. Copies
 * everything. Returns 0 and *out, or MP_EINVAL (bad address, incarnation 0,
 * bad or duplicate type, too many types, bad namespace, renew >= lease),
 * MP_ENOMEM. */
int mp__magent_create(mp_env *env, mp_storage *storage, const char *ns, const char *addr,
                      uint32_t incarnation, const char *const *types, size_t ntypes,
                      const mp__magent_config *cfg, const mp__magent_callbacks *cbs,
                      mp__magent **out);

/* Add this member's row and start renewing and polling. on_joined reports
 * the outcome (0 once the row is active). Returns 0 or MP_EALREADY (called
 * twice) / MP_ECLOSED (dead or leaving) / MP_ENOMEM. */
int mp__magent_join(mp__magent *a);

/* Whether this node may serve its activations at local time now: its row
 * is active or shutting_down as last written by itself, the agent is not
 * dead or leaving, and now < the lease end of its last accepted renewal. */
bool mp__magent_may_serve(const mp__magent *a, uint64_t now);

/* The end of the current lease (local time), 0 if none. */
uint64_t mp__magent_lease_end(const mp__magent *a);

/* The failure detector suspects (addr, incarnation): record the suspicion
 * in the table at the next change (at once: a round starts now), and
 * declare the member dead when the votes suffice. Returns 0, MP_EINVAL
 * (bad address, incarnation 0, itself), MP_EQUEUEFULL (too many
 * suspicions waiting: MP__MT_MAX_SUSPICIONS), MP_ECLOSED (dead or leaving).
 * A suspicion of a member that is not in the table or already dead is
 * dropped when applied. */
int mp__membership_suspect(mp__magent *a, const char *addr, uint32_t incarnation);

/* Leave gracefully: mark the row shutting_down, then stop serving
 * (may_serve becomes false) and mark it dead (flag left), then cb(ud,
 * status). Renewals go on between the two steps. Returns 0, MP_EALREADY,
 * MP_ECLOSED (dead), MP_EINVAL (never joined). */
int mp__magent_leave(mp__magent *a, mp__magent_done_cb cb, void *ud);

/* The last table read (NULL before the first), for stats and tests. */
const mp__mtable *mp__magent_table(const mp__magent *a);

/* Counters for tests and stats. */
typedef struct mp__magent_stats {
    uint64_t reads, writes;   /* completed loads and accepted saves */
    uint64_t conflicts;       /* saves refused with MP_ECONFLICT */
    uint64_t errors;          /* other storage errors */
    uint64_t renewals;        /* accepted saves that bumped the heartbeat */
    uint64_t declared_dead;   /* rows this agent declared dead */
    uint64_t gave_up;         /* rounds abandoned after max_retries */
} mp__magent_stats;

void mp__magent_get_stats(const mp__magent *a, mp__magent_stats *out);

/* Stop and release. A storage operation in flight may still complete
 * later (a shared storage) or never (one freed without callbacks): its
 * token then names nothing, and nothing of the agent is touched or leaked.
 * NULL is ignored. */
void mp__magent_free(mp__magent *a);

/* Kept for callers written against the ticket version: now the same as
 * mp__magent_free (tokens make both safe whether or not the storage
 * completes later). NULL is ignored. */
void mp__magent_free_now(mp__magent *a);

#endif
