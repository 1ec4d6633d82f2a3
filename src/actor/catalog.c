/*
 * The catalog (see catalog.h): map for lookups, list for ordered walks. Both
 * are updated together so that they always hold the same activations.
 */
#include "actor/catalog.h"

#include <assert.h>

int mp_catalog_init(mp_catalog *c, uint64_t seed)
{
    mp_list_init(&c->list);
    return mp_map_str_init_seeded(&c->map, 0, seed);
}

void mp_catalog_free(mp_catalog *c)
{
    mp_map_str_free(&c->map);
    mp_list_init(&c->list);
}

mp_actor *mp_catalog_get(const mp_catalog *c, const char *id, size_t len)
{
    return mp_map_str_get(&c->map, id, len);
}

int mp_catalog_add(mp_catalog *c, mp_actor *a)
{
    if (mp_map_str_get(&c->map, a->ref.id, a->ref.len)) return MP_EINVAL;
    int rc = mp_map_str_put(&c->map, a->ref.id, a->ref.len, a, NULL);
    if (rc != MP_OK) return rc;
    assert(!mp_list_node_linked(&a->cat_link));
    mp_list_push_back(&c->list, &a->cat_link);
    return MP_OK;
}

void mp_catalog_remove(mp_catalog *c, mp_actor *a)
{
    if (mp_map_str_get(&c->map, a->ref.id, a->ref.len) != a) return;
    mp_map_str_remove(&c->map, a->ref.id, a->ref.len);
    mp_list_remove(&a->cat_link);
}
