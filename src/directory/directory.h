/*
 * The directory: who hosts which actor (private to the runtime).
 *
 * Partitioning. Each actor id has one owner among the static members, chosen
 * by rendezvous hashing: the member with the highest mp_mix64(hash(id) ^
 * hash(member)) (ties, which need a 64-bit collision, by address bytes). Why
 * rendezvous rather than a ring: with a static member list of up to 256
 * members it needs no table, every node computes the same owner from the
 * config alone, and it moves only 1/n of the ids when a member changes. The
 * order of the member list in each node's config does not matter.
 *
 * The owner's table (id -> member, incarnation, activation id) is
 * authoritative: registration is first-wins (an existing entry is the
 * winner), except that a node re-registering an id it already holds replaces
 * its own entry (one node never has two activations of an id, its catalog
 * guarantees it, so its newer registration is the truth). Unregistration
 * removes an entry only if it still names the same (member, activation id),
 * so a late unregister from a dead activation never removes a newer one.
 *
 * The cache (id -> member) is this node's view of other owners' tables:
 * eventually consistent, corrected by lookups, by cache updates carried in
 * forwarded replies, and cleared for a peer when it restarts. Bounded: the
 * oldest entry is evicted past cache_max.
 *
 * Placement: which member gets a new activation. Two random choices by
 * activation count (default), random, prefer-local, hash. Loads come from
 * the peers' periodic reports plus the placements this node made to each
 * since that peer's last report. On clusters of 3+ members the default
 * samples a third member too (the least loaded of three wins): with every
 * node placing at once on load reports up to one interval old, two samples
 * left 10-node clusters at 25-33% from the mean with 120 actors, three keep
 * them within S5's 20% (tests/unit/test_bank_sim.c, placement).
 *
 * Walks (peer restart purges) use lists in insertion order: deterministic.
 *
 * Local entries. The entry of an activation of this node, for an id this
 * node owns, is not stored in the table: it would copy the id a third time
 * (catalog, table, activation) and cost an allocation and a map slot per
 * activation, for an entry that by construction lives exactly as long as the
 * activation (registered after it entered the catalog, unregistered before
 * it leaves). It is a flag inside the activation, found through a hook (the
 * node's catalog, mp_dir_set_local), and reads as an entry {self, this
 * node's incarnation, the activation's act_id}. Table semantics are
 * unchanged: an id has a stored entry or a local one, never both (register
 * checks the table first; a local entry is only made when neither exists),
 * first-wins applies to both, unregistration matches (member, act_id) for
 * both. Without a hook (unit tests) every entry is stored.
 *
 * Both maps are keyed by a hash derived from the id's stable hash
 * (mp_ref.hash, keyed by the node's seed), so callers holding an mp_ref (the
 * _ref functions, on every routed call) do not hash the id again; the
 * id/len functions compute the same stable hash themselves.
 * Thread: the node's loop thread.
 */
#ifndef MP_DIRECTORY_H
#define MP_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/actor.h"
#include "moonpool/env.h"
#include "moonpool/limits.h"
#include "util/list.h"
#include "util/map.h"

/* Stored entries are allocated to the size of their id (the flexible
 * array): a fixed 257-byte buffer was 300 of the 900 bytes an idle
 * activation cost. A copy (winner, lookup results) carries the fields but
 * not the id, which no caller reads from a copy. */
typedef struct mp_dir_entry {
    mp_list_node link;
    uint16_t member;
    uint16_t len;
    uint32_t incarnation;
    uint64_t act_id;
    char id[]; /* len bytes + NUL, in stored entries only */
} mp_dir_entry;

typedef struct mp_directory {
    size_t n;               /* members known (slots 0..n-1 of MP_MAX_MEMBERS) */
    size_t self;            /* index of this node */
    char **members;         /* copies, NUL-terminated */
    uint64_t *member_hash;  /* mp_hash64 of each address */
    mp_map_str member_map;  /* address -> (index + 1) */
    mp_map_str table;       /* owner table, id -> mp_dir_entry (_h use) */
    mp_list_node table_list;
    mp_map_str cache;       /* id -> mp_dir_entry (act_id unused; _h use) */
    mp_list_node cache_list;
    size_t cache_max;
    uint64_t *known_load;   /* last reported activation count */
    /* Membership (runtime/members.c): live[i] says member i may own
     * partitions (it may be serving: the agent's list); with live_all every
     * known member is live (a static cluster) and the masks are unused.
     * A member never live owns nothing and is never placed on. */
    uint8_t *live;
    size_t live_count;
    bool live_all;
    /* local entries (see above) */
    bool *(*local_fn)(void *ud, uint64_t ref_hash, const char *id, size_t len,
                      uint64_t *act_id);
    void *local_ud;
    uint32_t local_inc;      /* this node's incarnation */
    size_t local_count;      /* local entries registered */
    mp_dir_entry *scratch;   /* a local entry as returned by table_get */
    uint64_t *placed;       /* placements since that report */
    uint64_t table_seed, cache_seed;
} mp_directory;

/* `self` of a client-only node: it is no member, owns no partition and
 * never places (mp_dir_place must not be called). */
#define MP_DIR_NO_SELF SIZE_MAX

/* members: n addresses (copied), self: index of this node or
 * MP_DIR_NO_SELF. MP_ENOMEM. */
int mp_dir_init(mp_directory *d, const char *const *members, size_t n,
                size_t self, uint64_t seed);
void mp_dir_free(mp_directory *d);

/* Add a member learnt from the membership table (slots are never reused:
 * an index names one address for the node's life). Returns its index, the
 * existing index if known, or MP_EQUEUEFULL past MP_MAX_MEMBERS, MP_ENOMEM.
 * The new member is not live. */
int mp_dir_add_member(mp_directory *d, const char *addr);

/* Switch to membership mode: from now only members set live own
 * partitions; every member starts not live. */
void mp_dir_use_live_set(mp_directory *d);
void mp_dir_set_live(mp_directory *d, size_t member, bool live);
static inline bool mp_dir_is_live(const mp_directory *d, size_t member)
{
    return d->live_all || d->live[member];
}

/* Index of a member by address bytes, or -1. */
int mp_dir_member(const mp_directory *d, const char *addr, size_t len);
static inline const char *mp_dir_addr(const mp_directory *d, size_t i)
{
    return d->members[i];
}

/* Owner of an id's directory partition. */
size_t mp_dir_owner(const mp_directory *d, const mp_ref *ref);
/* The same from the id's stable hash (mp_ref.hash) alone. */
size_t mp_dir_owner_h(const mp_directory *d, uint64_t ref_hash);

/* Local entries (see above). fn returns the registration flag of this
 * node's activation of the id (and its act_id), or NULL if there is none;
 * the directory sets and clears the flag. incarnation: this node's. */
void mp_dir_set_local(mp_directory *d,
                      bool *(*fn)(void *ud, uint64_t ref_hash, const char *id,
                                  size_t len, uint64_t *act_id),
                      void *ud, uint32_t incarnation);

/* ---- owner table ---- */
/* The entry of an id, or NULL. A local entry is returned in a scratch copy
 * valid until the next call into the directory: copy what you keep. */
const mp_dir_entry *mp_dir_table_get(const mp_directory *d, const char *id,
                                     size_t len);
const mp_dir_entry *mp_dir_table_get_ref(const mp_directory *d,
                                         const mp_ref *ref);
/* Stored entries only: for a caller that knows this node has no activation
 * of the id (hence no local entry), saving the hook's catalog lookup. */
const mp_dir_entry *mp_dir_table_get_stored(const mp_directory *d,
                                            const mp_ref *ref);
/* First-wins registration (see above). *winner gets the entry in force
 * afterwards. MP_ENOMEM. */
int mp_dir_register(mp_directory *d, const mp_ref *ref, uint16_t member,
                    uint32_t incarnation, uint64_t act_id,
                    mp_dir_entry *winner);
/* Remove the entry if it still names (member, act_id). Returns whether it
 * did. */
bool mp_dir_unregister(mp_directory *d, const char *id, size_t len,
                       uint16_t member, uint64_t act_id);
size_t mp_dir_table_count(const mp_directory *d);

/* ---- cache ---- */
/* Member caching the id, or -1. */
int mp_dir_cache_get(const mp_directory *d, const char *id, size_t len);
/* The same for a reference with a valid hash field (no re-hashing). */
int mp_dir_cache_get_ref(const mp_directory *d, const mp_ref *ref);
void mp_dir_cache_remove_ref(mp_directory *d, const mp_ref *ref);
void mp_dir_cache_put(mp_directory *d, const char *id, size_t len,
                      uint16_t member, uint32_t incarnation);
void mp_dir_cache_remove(mp_directory *d, const char *id, size_t len);
size_t mp_dir_cache_count(const mp_directory *d);

/* Forget every cache entry naming a member (it went down: a lookup will
 * say where its actors went). */
void mp_dir_cache_drop_member(mp_directory *d, uint16_t member);

/* A member restarted with new_inc: drop cache entries naming it and table
 * entries registered by an older incarnation of it. */
void mp_dir_peer_restart(mp_directory *d, uint16_t member, uint32_t new_inc);

/* Membership changed: drop stored entries of ids this node no longer owns
 * (their new owner rebuilds them from re-registrations). Returns how many. */
size_t mp_dir_drop_not_owned(mp_directory *d);

/* ---- placement ---- */
/* Choose the member for a new activation. self_load: this node's live
 * activation count. ok: NULL (every member may host it) or ok[i] for each
 * member; with none ok, returns SIZE_MAX. Counts the placement for
 * two-choices. */
size_t mp_dir_place(mp_directory *d, mp_placement strategy, const mp_ref *ref,
                    uint64_t self_load, mp_env *env, const uint8_t *ok);
/* A load report from a member. */
void mp_dir_load_report(mp_directory *d, uint16_t member, uint64_t count);

#endif
