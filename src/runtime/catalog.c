/*
 * The catalog (see catalog.h): map for lookups, list for ordered walks. Both
 * are updated together so that they always hold the same activations.
 */
#include "runtime/catalog.h"

#include <assert.h>

#include "util/hash.h"
#include "util/prng.h"

/* Key hash: the reference's stable hash, keyed by the node's seed so that
 * slot placement (not equality) depends on a value outsiders do not know. */
static inline uint64_t key_hash(const mp_catalog *c, uint64_t ref_hash)
{
    return mp_mix64(ref_hash, c->seed);
}

int mp_catalog_init(mp_catalog *c, uint64_t seed)
{
    mp_list_init(&c->list);
    c->seed = seed;
    return mp_map_obj_init(&c->map, offsetof(mp_actor, id),
                           offsetof(mp_actor, len));
}

void mp_catalog_free(mp_catalog *c)
{
    mp_map_obj_free(&c->map);
    mp_list_init(&c->list);
}

mp_actor *mp_catalog_get(const mp_catalog *c, const char *id, size_t len)
{
    return mp_map_obj_get(
        &c->map, key_hash(c, mp_hash64(id, len, MP_HASH_SEED_DEFAULT)), id, len);
}

mp_actor *mp_catalog_get_h(const mp_catalog *c, uint64_t ref_hash,
                           const char *id, size_t len)
{
    return mp_map_obj_get(&c->map, key_hash(c, ref_hash), id, len);
}

mp_actor *mp_catalog_find(const mp_catalog *c, const mp_ref *ref)
{
    assert(ref->hash == mp_hash64(ref->id, ref->len, MP_HASH_SEED_DEFAULT));
    return mp_map_obj_get(&c->map, key_hash(c, ref->hash), ref->id, ref->len);
}

int mp_catalog_add(mp_catalog *c, mp_actor *a)
{
    uint64_t h = key_hash(c, a->hash);
    /* One probe: put, and undo in the (never expected) case it replaced an
     * activation already there. Replacing never allocates nor fails. */
    void *old = NULL;
    int rc = mp_map_obj_put(&c->map, h, a, &old);
    if (rc != MP_OK) return rc;
    if (old) {
        mp_map_obj_put(&c->map, h, old, NULL);
        return MP_EINVAL;
    }
    assert(!mp_list_node_linked(&a->cat_link));
    mp_list_push_back(&c->list, &a->cat_link);
    return MP_OK;
}

void mp_catalog_remove(mp_catalog *c, mp_actor *a)
{
    uint64_t h = key_hash(c, a->hash);
    if (mp_map_obj_get(&c->map, h, a->id, a->len) != a) return;
    mp_map_obj_remove(&c->map, h, a->id, a->len);
    mp_list_remove(&a->cat_link);
}
