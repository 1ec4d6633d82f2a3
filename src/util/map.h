/*
 * Open-addressing hash maps for the runtime's hot paths.
 *
 * Three flavours share one Robin Hood core (map.c):
 *   mp_map_u64 — u64 key -> void* (correlation ids, timer ids, node ids);
 *   mp_map_str — key bytes (pointer + length) -> void* (actor ids);
 *   mp_map_obj — values that hold their own key (the catalog's activations).
 *
 * Why Robin Hood with backward-shift deletion: at the 0.8 maximum load we run
 * at, plain linear probing has long miss chains; Robin Hood bounds probe
 * length variance and lets a miss stop as soon as it meets an entry closer to
 * its home than the probe is, and backward shifting on removal leaves no
 * tombstones, so a map with heavy insert/remove churn (a call-correlation
 * table sees one insert and one remove per call) never degrades and never
 * needs a cleanup rehash. Capacity is a power of two so the home slot is a
 * mask, and the map grows by doubling when it would pass 80% load. It never
 * shrinks: runtime tables return to their working-set size, and a shrink
 * would be an allocation on the remove path.
 *
 * Per-slot layout: the full 64-bit hash and the value, plus (string flavour)
 * the key pointer and length. Storing the hash means a probe compares keys
 * with memcmp only when the hashes match, and rehashing never touches keys.
 * The u64 flavour does not even store its key: mp_hash_u64 is a bijection,
 * so equal mixed hashes mean equal keys. Slots are 16 (u64, obj) or 32 (str)
 * bytes, so a probe sequence walks 4 or 2 slots per cache line.
 *
 * Ownership: mp_map_str does NOT copy keys. The caller keeps the key bytes
 * alive and unchanged as long as the entry exists (typically the key is the
 * actor id stored inside the value struct itself).
 *
 * Values must be non-NULL: NULL marks an empty slot and is what get/remove
 * return for "absent". put(NULL) fails with MP_EINVAL.
 *
 * No iteration API, on purpose. Slot order depends on capacity history and
 * on the hash seed; in a deterministic system, any decision driven by it
 * (which timer to fire first, which actor to deactivate) would make one
 * seed's run depend on allocation history and would silently break replay
 * when a capacity or seed changes. Callers that need to walk their entries
 * keep them on their own intrusive list (util/list.h), whose order they
 * control.
 *
 * Errors: init/put/reserve return MP_ENOMEM when growing fails, and the map is
 * then exactly as it was before the call. Single-threaded, like a node.
 */
#ifndef MP_UTIL_MAP_H
#define MP_UTIL_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/status.h"
#include "util/alloc.h"

/* Shared core state; fields are private to map.c. */
typedef struct mp_map_core {
    unsigned char *slots; /* cap slots, NULL while cap == 0 */
    size_t cap;           /* 0 or a power of two >= 8 */
    size_t count;         /* entries stored */
    size_t limit;         /* grow before count would exceed this (80% of cap) */
} mp_map_core;

typedef struct mp_map_u64 {
    mp_map_core core;
} mp_map_u64;

typedef struct mp_map_str {
    mp_map_core core;
    uint64_t seed; /* mp_hash64 seed */
} mp_map_str;

/* ---- u64 key -> void* ---- */

/* Initialise an empty map able to hold initial_cap entries without growing.
 * initial_cap 0 allocates nothing (first put allocates). On MP_ENOMEM the map
 * is still a valid empty map. */
int mp_map_u64_init(mp_map_u64 *m, size_t initial_cap);
/* Release the slot array (not the values). The map may be re-initialised. */
void mp_map_u64_free(mp_map_u64 *m);
/* Value for key, or NULL. */
void *mp_map_u64_get(const mp_map_u64 *m, uint64_t key);
/* Insert or replace. *old (if old != NULL) gets the replaced value or NULL.
 * Replacing never allocates and never fails. MP_EINVAL if value is NULL. */
int mp_map_u64_put(mp_map_u64 *m, uint64_t key, void *value, void **old);
/* Remove key; returns its value, or NULL if absent. Never allocates. */
void *mp_map_u64_remove(mp_map_u64 *m, uint64_t key);
size_t mp_map_u64_count(const mp_map_u64 *m);
/* Make room for n entries in total, so the next puts do not allocate. */
int mp_map_u64_reserve(mp_map_u64 *m, size_t n);
/* Verify every structural invariant; O(capacity). For tests and debugging. */
bool mp_map_u64_check(const mp_map_u64 *m);

/* ---- key bytes -> void* (keys not copied, see above) ---- */

/* As mp_map_u64_init, hashing with MP_HASH_SEED_DEFAULT. */
int mp_map_str_init(mp_map_str *m, size_t initial_cap);
/* As above with an explicit seed. Maps keyed by bytes that come from the
 * network should take a seed from mp_env_random, which is deterministic under
 * simulation: since iteration is not exposed, the seed changes only speed,
 * never behaviour. */
int mp_map_str_init_seeded(mp_map_str *m, size_t initial_cap, uint64_t seed);
void mp_map_str_free(mp_map_str *m);
/* key may be NULL only when len == 0 (otherwise: NULL, and MP_EINVAL from
 * put). */
void *mp_map_str_get(const mp_map_str *m, const void *key, size_t len);
/* On replacement the stored key pointer is updated to `key` too, so a caller
 * replacing a value struct (which holds the key) stays safe. */
int mp_map_str_put(mp_map_str *m, const void *key, size_t len, void *value, void **old);
void *mp_map_str_remove(mp_map_str *m, const void *key, size_t len);
size_t mp_map_str_count(const mp_map_str *m);
int mp_map_str_reserve(mp_map_str *m, size_t n);
bool mp_map_str_check(const mp_map_str *m);

/* The same with a hash the caller already holds (e.g. derived from
 * mp_ref.hash), so a hot lookup does not hash the key again. A map is used
 * either with these three only or with the plain ones only, always with the
 * same hash function of the key bytes (equal keys, equal hashes; the map uses
 * the value as is, so it must be well mixed). mp_map_str_check cannot verify
 * such a map (it recomputes hashes with the seed). */
void *mp_map_str_get_h(const mp_map_str *m, uint64_t hash, const void *key,
                       size_t len);
int mp_map_str_put_h(mp_map_str *m, uint64_t hash, const void *key, size_t len,
                     void *value, void **old);
void *mp_map_str_remove_h(mp_map_str *m, uint64_t hash, const void *key,
                          size_t len);

/* ---- key inside the value (16-byte slots) ---- */

/* For values that hold their own key (an activation holding its id): the
 * slot keeps only the hash and the value, and the key is read from the value
 * (bytes at key_off, a uint16_t length at len_off) when hashes match. Half
 * the memory of mp_map_str per entry (the catalog holds one per activation),
 * and a hit touches the value, which the caller is about to use anyway. The
 * hash is the caller's, as with the _h functions above (well mixed, equal
 * keys give equal hashes). */
typedef struct mp_map_obj {
    mp_map_core core;
    uint32_t key_off, len_off;
} mp_map_obj;

int mp_map_obj_init(mp_map_obj *m, size_t key_off, size_t len_off);
void mp_map_obj_free(mp_map_obj *m);
void *mp_map_obj_get(const mp_map_obj *m, uint64_t hash, const void *key,
                     size_t len);
/* Insert or replace the entry of value's own key (value non-NULL). */
int mp_map_obj_put(mp_map_obj *m, uint64_t hash, void *value, void **old);
void *mp_map_obj_remove(mp_map_obj *m, uint64_t hash, const void *key,
                        size_t len);
static inline size_t mp_map_obj_count(const mp_map_obj *m)
{
    return m->core.count;
}



#endif
