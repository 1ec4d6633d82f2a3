/*
 * The catalog: this node's activations by actor id.
 *
 * A hash map keyed by the id bytes stored inside each activation (no key
 * copy: the map reads the key from the activation itself) gives O(1)
 * routing on the local fast path. The map exposes no iteration (util/map.h
 * explains why), so a list in creation order serves every walk: idle sweeps,
 * shutdown, mp_node_foreach_activation. Those walks are then deterministic.
 *
 * The map is keyed by a hash derived from mp_ref.hash (already computed
 * once when the reference was built or parsed) mixed with the node's seed,
 * so the local call path does not hash the id again (mp_hash64 was 5% of a
 * local call). mp_catalog_get, for callers holding only the id bytes,
 * computes mp_ref.hash's function itself: both ways give the same key hash.
 *
 * The catalog holds at most one activation per id: that is what makes
 * "at most one activation per id per node" structural, and the directory's
 * first-wins registration extends it to the cluster.
 *
 * Thread: the node's loop thread.
 */
#ifndef MP_ACTOR_CATALOG_H
#define MP_ACTOR_CATALOG_H

#include <stddef.h>

#include "runtime/activation.h"
#include "util/map.h"

typedef struct mp_catalog {
    mp_map_obj map; /* key: the activation's own id (16-byte slots) */
    uint64_t seed;
    mp_list_node list; /* mp_actor.cat_link, creation order */
} mp_catalog;

int mp_catalog_init(mp_catalog *c, uint64_t seed);
/* Frees the index only; activations are the node's to free. */
void mp_catalog_free(mp_catalog *c);
mp_actor *mp_catalog_get(const mp_catalog *c, const char *id, size_t len);
/* The same for a reference whose hash field is valid (mp_ref_init/parse). */
mp_actor *mp_catalog_find(const mp_catalog *c, const mp_ref *ref);
/* The same with the id's stable hash (mp_ref.hash) already known. */
mp_actor *mp_catalog_get_h(const mp_catalog *c, uint64_t ref_hash,
                           const char *id, size_t len);
/* Add; MP_EINVAL if an activation of that id is already there, MP_ENOMEM. */
int mp_catalog_add(mp_catalog *c, mp_actor *a);
/* Remove (a no-op if `a` is not the one registered under its id). */
void mp_catalog_remove(mp_catalog *c, mp_actor *a);
static inline size_t mp_catalog_count(const mp_catalog *c)
{
    return mp_map_obj_count(&c->map);
}

#endif
