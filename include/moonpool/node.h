/*
 * A moonpool node: one runtime instance on one env (one loop, one thread).
 *
 * A node hosts activations of the actor types registered on it, owns one
 * partition of the cluster's directory, and talks to the other members of a
 * static member list through the transport. The same node code runs on the
 * real env (a process per node) and inside the simulator (many nodes in one
 * process).
 *
 * Life: mp_node_create → mp_node_register_type (each type, before start) →
 * mp_node_start → ... → mp_node_shutdown (graceful: deactivates everything,
 * closes connections) or, in a simulated kill, mp_node_free_now.
 *
 * At most once. A call executes at most once, whatever fails, restarts,
 * pauses or reconnects: the runtime never sends a request again once it may
 * have reached its host (no retry, no fail-over, no resend after a
 * reconnect), and a request queued for a peer declared lost is dropped
 * before it is written, never delivered later.
 *
 * Request ids, the second line. Every request carries an end-to-end id:
 * its origin node's token for this life (address, incarnation and a random
 * draw), the call's sequence number there, and the origin's low mark (every
 * call of that origin below it has ended). The id is unchanged through
 * forwards and a client-only node's fail-over. The node whose activation
 * runs a request records the id in a window per origin (a watermark plus
 * 65,536 bits, 8 KiB), so a copy that reaches that node again is answered
 * MP_EALREADY (executed; reply not kept) without a turn, and a copy below
 * the window, or below its origin's low mark, MP_ESTALE (not executed).
 * Memory: at most MP_RID_ORIGINS_MAX (1024) windows per node, 8 MiB,
 * whatever the call rate; stats rid_origins, rid_duplicates, rid_stale,
 * rid_refused count them. Scope: the node that ran it, in that life. A
 * copy reaching another node after the actor moved, or its node after a
 * restart, is not recognised, which is why the runtime never makes one.
 * The workload `exec`
 * (moonpool sim --workload exec) checks every execution of every call
 * against this under kills, graceful restarts, pauses, one-way and long
 * partitions; make test runs 600 seeds of it.
 *
 * What an error says. Every status a call ends with is one of:
 *   not executed (safe to retry): MP_EUNAVAIL (no host could take it, or
 *     its frame was dropped unsent), MP_EQUEUEFULL, MP_ESTALE, MP_EINVAL, MP_ENOTYPE,
 *     MP_ENOMETHOD, MP_ETOOBIG, MP_EACTIVATION (its activation failed
 *     before any turn), MP_EDEADLOCK, MP_EFORWARDS, MP_ENAMESPACE,
 *     MP_EVERSION; and MP_ECLOSED / MP_ENOMEM when mp_call returns them
 *     (the call never left);
 *   may have executed: MP_EINDOUBT (sent, and the peer was lost, restarted
 *     or the relaying node shut down before the answer), MP_ETIMEDOUT,
 *     MP_ECLOSED through the callback (this node shut down while the call
 *     was out), MP_ESTORAGE (a persist failed inside the turn);
 *   executed: 0, MP_EACTOR (the handler ran and returned an error; also
 *     when it replied a status such as MP_EUNAVAIL: actor.h, mp_reply_error) and
 *     MP_EALREADY (it ran; this answer is for a copy or a keyed retry).
 * A client-only node fails over to another gateway only for "not
 * executed" outcomes.
 *
 * Deadlines. The remaining time travels with each request (ttl). A request
 * whose caller's deadline passed never starts a turn, within this bound:
 * nodes share no clock, so each hop may add the transit time it cannot see,
 * up to two heartbeats (a longer delay, whether a queue at the sender, a
 * stall of the receiver's loop or a silence on the connection, is seen and
 * subtracted) plus a millisecond of rounding.
 *
 * Exactly once for callers that retry. A call made with an idempotency key
 * (mp_call_opts.idempotency_key) that ends "may have executed" can be
 * retried with the same key, from any node: the key travels unchanged with
 * the request (forwards, a client-only node's fail-over), and the
 * activation that ran it answers the retry with the first reply, or
 * MP_EALREADY when that reply was over MP_IDEMPOTENCY_REPLY_MAX_BYTES,
 * without running it again. The window: MP_IDEMPOTENCY_WINDOW_NS after the
 * first reply, for the last MP_IDEMPOTENCY_KEYS_PER_ACTIVATION keys of the
 * actor, and only while that activation lives (an idle deactivation or the
 * crash of its node ends it early: a retry then runs again). Unkeyed calls
 * are not remembered: the runtime never delivers them twice.
 *
 * Thread: the env's loop thread only.
 */
#ifndef MOONPOOL_NODE_H
#define MOONPOOL_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "moonpool/actor.h"
#include "moonpool/env.h"
#include "moonpool/limits.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_node_config {
    const char *cluster_namespace; /* [A-Za-z0-9_.-]; copied */
    const char *self_addr;         /* "host:port"; must be in members */
    const char *const *members;    /* static member list; copied */
    size_t member_count;           /* 1 .. MP_MAX_MEMBERS */
    uint32_t incarnation;          /* grows on every restart; >= 1 */
    uint64_t call_timeout_ns;      /* default 30 s (limits.h has every default) */
    uint64_t idle_timeout_ns;      /* default 10 min */
    /* Peer liveness (transport): a connection that wrote nothing for
     * heartbeat_ns sends a keep-alive; one that received nothing for
     * peer_timeout_ns is closed as dead (its peer is then treated as lost:
     * calls waiting on it fail once a redial fails: MP_EINDOUBT if their
     * request was written, MP_EUNAVAIL if it was still queued). 0
     * means the default (1 s / 10 s); heartbeat_ns >= 1 ms; peer_timeout_ns
     * must be > 2 x heartbeat_ns, or MP_NODE_NO_PEER_TIMEOUT to never close
     * for silence. */
    uint64_t heartbeat_ns;
    uint64_t peer_timeout_ns;
    /* A frame whose first byte arrived must be whole within this, or its
     * connection is closed (a peer trickling bytes); 0: the default,
     * MP_DEFAULT_FRAME_TIMEOUT_NS (limits.h). */
    uint64_t frame_timeout_ns;
    uint32_t max_message;          /* bytes per frame; default 1 MiB */
    uint32_t max_pending_calls;    /* default 1,000,000: MP_EQUEUEFULL past */
    size_t mailbox_warn_depth;     /* default MP_DEFAULT_MAILBOX_WARN_DEPTH
                                      (10,000, as in a config file); 0: no hook */
    /* Called when an activation's mailbox depth reaches mailbox_warn_depth
     * (once per crossing). May be NULL. `actor` is valid only during the
     * call (copy it to keep it). */
    void (*on_mailbox_depth)(void *ud, const mp_ref *actor, size_t depth);
    /* Messages one activation queues at most (default
     * MP_DEFAULT_MAX_MAILBOX, limits.h): a call past it fails at once with
     * MP_EQUEUEFULL (not executed), counted in mailbox_rejected. */
    uint32_t max_mailbox;
    void *hook_ud;
    struct mp_storage *storage;    /* storage.h; NULL: no persistence. Not
                                      owned: it must outlive the node (a
                                      graceful shutdown waits for the node's
                                      storage operations to complete) */
    /* Client mode: the node is NOT in members, hosts no activation, owns no
     * directory partition and places nothing. Every mp_call/mp_send goes as
     * a REQUEST to a gateway member (chosen by the actor id's hash), which
     * routes it as if a member had sent it and relays the reply back. A
     * call that did not reach its gateway (refused at once, dropped unsent
     * when the gateway was found unreachable, or answered MP_EUNAVAIL /
     * MP_EQUEUEFULL) fails over to the next member in turn until one takes
     * it or the call's deadline passes. A call whose request was written
     * to a gateway that is then lost ends with MP_EINDOUBT and is never
     * sent again (at most once, above). self_addr may use port 0 in
     * real mode (mp_node_addr then tells the bound address after start). */
    bool client_only;
    /* Membership (docs/membership.md). false (default): `members` is the
     * cluster, fixed, every member taken as alive. true: the node joins the
     * membership table kept in `storage` (required, and shared by every
     * member: one SQLite file, one PostgreSQL database, or in simulation
     * one shared provider); `members` is then only the seed list, and the
     * directory's partitions and placement follow the members the table
     * says may serve: a member that dies is taken over once its lease has
     * expired, a member that joins (its address not in `members`) is
     * learnt from the table. The node serves calls only while its own
     * lease is valid. Not for client-only nodes. */
    bool membership;
    uint64_t lease_ns;           /* 0: peer_timeout_ns / 2 (5 s by default) */
    uint64_t lease_margin_ns;    /* clock-drift margin; 0: lease_ns / 5 */
    uint64_t membership_poll_ns; /* table reads; 0: lease_ns / 5 */
    uint32_t membership_votes;   /* suspicions that declare dead; 0: 2 */
    /* The table says this node is dead (it was paused or cut off from the
     * storage past its lease, and the others may have taken over its
     * actors). It already serves nothing; to rejoin, the process must
     * create a new node with a higher incarnation (the host re-executes
     * itself). Runs once, on the loop thread, with hook_ud. May be NULL. */
    void (*on_declared_dead)(void *ud);
} mp_node_config;

/* peer_timeout_ns value that disables the silence timeout. */
#define MP_NODE_NO_PEER_TIMEOUT UINT64_MAX

/* Fill the defaults; the caller then sets namespace, addresses, members. */
void mp_node_config_init(mp_node_config *cfg);

/* Create a node on env. Validates the config: MP_EINVAL with a reason logged
 * (self not in members, duplicate member, bad namespace or address,
 * incarnation 0, max_message, heartbeat_ns or peer_timeout_ns out of
 * range). MP_ENOMEM. Nothing is listened
 * on or sent before mp_node_start. Strings are copied. */
int mp_node_create(mp_env *env, const mp_node_config *cfg, mp_node **out);

/* Register an actor type (before mp_node_start). The type struct must
 * outlive the node; nothing is copied. MP_EINVAL on a bad or duplicate name. */
int mp_node_register_type(mp_node *node, const mp_actor_type *type);

/* Listen (every node, a one-member cluster too, so that client-only nodes
 * can reach it; port 0 in real mode binds any free port, see
 * mp_node_addr) and join the cluster. Starts load reports to the other members (every 100 ms). A node restarted
 * with incarnation > 1 answers directory lookups and new registrations of
 * unknown ids with MP_EBUSY for up to 5 s (less once every other member
 * reported its re-registrations), so the survivors re-register the
 * activations its partition owned before anyone places a second one
 * (callers and registrants retry; lost re-registrations are resent).
 * With membership, the node then joins the table (its row goes active a
 * few storage round trips later; until its first view of the table it
 * serves nothing and answers directory requests "busy").
 * Returns 0, MP_EINVAL (already started; with membership also: more than
 * 32 actor types, the most a table row records), MP_ENOMEM, or a
 * transport error. */
int mp_node_start(mp_node *node);

/* Graceful shutdown: stop taking new calls (MP_ECLOSED at once), deactivate
 * every activation (reason SHUTDOWN) as soon as its current turn ends,
 * unregistering it from the directory; requests still queued or arriving
 * fail (MP_ECLOSED for this node's callers, MP_EUNAVAIL for remote ones). At deadline_ns (or when no activation is left) the
 * hooks of activations still in a turn run anyway (their handlers must not
 * reply after on_deactivate), every outstanding call fails with MP_ECLOSED,
 * connections are flushed and closed; then cb(ud) runs (never inside this
 * call) and the node's memory is released. cb may be NULL. */
void mp_node_shutdown(mp_node *node, uint64_t deadline_ns,
                      void (*cb)(void *ud), void *ud);

/* Release everything now, without callbacks and without running
 * deactivation hooks; each activation's type `release` hook runs (so what
 * an instance owns is freed): for a simulated process kill only, where the
 * env runs no callback again. Storage operations still in flight are
 * forgotten: if the provider lives on (one shared by several nodes) their
 * completions are ignored; if it was the node's own, free it with
 * mp_storage_free_now too. */
void mp_node_free_now(mp_node *node);

/* Ask the node at member_addr (a member, or this node's own address) for
 * its counters: cb runs once (never inside this call) with status 0 and a
 * JSON object (mp_node_stats_json's format), or an error (MP_ETIMEDOUT,
 * MP_EUNAVAIL, ...). Works from a client-only node. Returns 0, or at once
 * MP_EINVAL (NULL, unknown address), MP_ECLOSED (not started / closing),
 * MP_EQUEUEFULL, MP_ENOMEM. */
int mp_node_request_stats(mp_node *node, const char *member_addr,
                          mp_reply_cb cb, void *ud);

/* This node's counters as one JSON object (NUL-terminated text, malloc'd:
 * free() it; NULL on out-of-memory): every mp_node_stats field by name,
 * plus "addr", "incarnation", "client_only", "types" (object: type name ->
 * live activations) and "persist_p50_ms" / "persist_p99_ms" (null until the
 * node persisted something). *len (may be NULL) gets the length. */
char *mp_node_stats_json(mp_node *node, size_t *len);

/* Accessors; the strings are owned by the node. */
mp_env *mp_node_env(mp_node *node);
const char *mp_node_addr(const mp_node *node);
const char *mp_node_namespace(const mp_node *node);

typedef struct mp_node_stats {
    uint64_t activations;        /* live now */
    uint64_t activations_total;  /* ever created */
    uint64_t deactivations_total;
    uint64_t calls_out, calls_in, replies_late, timeouts;
    uint64_t forwards, cache_updates, errors_sent;
    uint64_t mailbox_depth_total; /* queued messages across activations */
    uint64_t mailbox_depth_max;
    uint64_t pending_calls;
    uint64_t dir_lookups;  /* directory lookups started (one per id burst) */
    uint64_t placements;   /* new activations placed by this node */
    uint64_t state_loads;       /* persisted states loaded (any outcome) */
    uint64_t state_load_errors; /* loads that failed or did not decode */
    uint64_t persists;          /* mp_state_persist completions */
    uint64_t persist_errors;    /* ... that reported an error */
    uint64_t activation_failures; /* load or on_activate failures */
    uint64_t mailbox_rejected;  /* calls refused by a full mailbox */
    uint64_t rid_origins;       /* request-id windows held (<= MP_RID_ORIGINS_MAX) */
    uint64_t rid_duplicates;    /* copies of a request that ran here: MP_EALREADY */
    uint64_t rid_stale;         /* copies below their origin's window: MP_ESTALE */
    uint64_t rid_refused;       /* no window free for a new origin: MP_EQUEUEFULL */
    /* mp_call/mp_actor_call calls of this member that completed, by
     * outcome: succeeded, or failed and (mp_call_status_class) executed,
     * not executed, may have executed (timeouts included). Not counted on
     * client-only nodes, nor the runtime's own directory calls. */
    uint64_t calls_ok, calls_failed_executed, calls_not_executed, calls_may_have_run;
} mp_node_stats;

/* A snapshot of the counters. activations counts activations in the
 * catalog (any state). */
void mp_node_get_stats(mp_node *node, mp_node_stats *out);

/* Latency distributions since the node was created, as cumulative counts
 * at fixed bounds (Prometheus histogram buckets): le[i] counts samples of
 * at most mp_node_latency_bound_ns(i) (from 100 us to 10 s, in 1-2.5-5
 * steps), never overstated (a sample near a bound may count in the next
 * one); count and sum_ns cover every sample. */
#define MP_NODE_LATENCY_BOUNDS 16
typedef struct mp_node_latency {
    uint64_t count;
    uint64_t sum_ns;
    uint64_t le[MP_NODE_LATENCY_BOUNDS];
} mp_node_latency;

/* The i-th bound in ns (i < MP_NODE_LATENCY_BOUNDS), 0 past the last. */
uint64_t mp_node_latency_bound_ns(size_t i);

/* call: this node's mp_call calls (members; not client-only nodes), from
 * mp_call to the completion (reply, error or timeout), one call in 8
 * sampled (a clock read per call would cost 5% of a core at 2M calls/s;
 * calls_out counts them all); persist: every state persist
 * (mp_state_persist). Either may be NULL. */
void mp_node_get_latency(mp_node *node, mp_node_latency *call, mp_node_latency *persist);

/* One member as this node sees it (membership: docs/membership.md). */
typedef struct mp_node_member_info {
    const char *addr;     /* valid while the node lives */
    uint32_t incarnation; /* newest seen in the table; 0: static cluster or
                             never seen */
    bool live;            /* may be serving: owns directory partitions */
    bool active;          /* active in the table: new activations go there */
    bool connected;       /* a connection to it is open now (false for the
                             node itself) */
} mp_node_member_info;

/* Members known to the node: the configured list, then members learnt from
 * the table, in a fixed order. Fills *out for i < count and returns count
 * (so i = 0 with out = NULL asks for the count). In a static cluster every
 * member is live and active. */
size_t mp_node_member_info_at(mp_node *node, size_t i, mp_node_member_info *out);

/* Whether the node runs turns now: always true in a static cluster; with
 * membership, while its lease is valid and it was not declared dead. */
bool mp_node_serving(mp_node *node);

/* Visit every live activation of this node, i.e. in state Activating or
 * Valid (deterministic order: creation). fn must not call into the node.
 * `ref` is valid only during that call of fn. For tests and the
 * simulator's single-activation check. */
void mp_node_foreach_activation(mp_node *node,
                                void (*fn)(void *ud, const mp_ref *ref),
                                void *ud);

#ifdef __cplusplus
}
#endif
#endif
