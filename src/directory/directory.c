/*
 * The directory (see directory.h for the design). Entries are malloc'd
 * structs holding their own id bytes, which the maps use as keys (no copy),
 * and linked on a list so that purges walk them in a deterministic order.
 */
#include "directory/directory.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "util/hash.h"
#include "util/prng.h"

#define CACHE_MAX_DEFAULT 1000000

/* Map key hashes (see directory.h): the stable id hash keyed per map. */
static inline uint64_t khash(uint64_t seed, uint64_t ref_hash)
{
    return mp_mix64(ref_hash, seed);
}

static inline uint64_t id_hash(const char *id, size_t len)
{
    return mp_hash64(id, len, MP_HASH_SEED_DEFAULT);
}

static mp_dir_entry *entry_new(const char *id, size_t len)
{
    mp_dir_entry *e = malloc(offsetof(mp_dir_entry, id) + len + 1);
    if (!e) return NULL;
    e->len = (uint16_t)len;
    memcpy(e->id, id, len);
    e->id[len] = '\0';
    mp_list_node_init(&e->link);
    return e;
}

int mp_dir_init(mp_directory *d, const char *const *members, size_t n,
                size_t self, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    assert(n >= 1 && (self < n || self == MP_DIR_NO_SELF));
    mp_list_init(&d->table_list);
    mp_list_init(&d->cache_list);
    d->n = n;
    d->self = self;
    d->cache_max = CACHE_MAX_DEFAULT;
    d->table_seed = mp_mix64(seed, 1);
    d->cache_seed = mp_mix64(seed, 2);
    d->live_all = true;
    /* Sized for every member there can be: membership adds members while
     * the node runs, and indices must stay valid (2.5 KiB per node). */
    d->members = calloc(MP_MAX_MEMBERS, sizeof *d->members);
    d->member_hash = calloc(MP_MAX_MEMBERS, sizeof *d->member_hash);
    d->known_load = calloc(MP_MAX_MEMBERS, sizeof *d->known_load);
    d->placed = calloc(MP_MAX_MEMBERS, sizeof *d->placed);
    d->live = calloc(MP_MAX_MEMBERS, sizeof *d->live);
    d->scratch = calloc(1, sizeof *d->scratch);
    if (n > MP_MAX_MEMBERS || !d->members || !d->member_hash || !d->known_load ||
        !d->placed || !d->live || !d->scratch)
        goto oom;
    mp_list_node_init(&d->scratch->link);
    if (mp_map_str_init_seeded(&d->member_map, n, seed) != MP_OK ||
        mp_map_str_init_seeded(&d->table, 0, seed ^ 1) != MP_OK ||
        mp_map_str_init_seeded(&d->cache, 0, seed ^ 2) != MP_OK)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        d->members[i] = strdup(members[i]);
        if (!d->members[i]) goto oom;
        size_t len = strlen(d->members[i]);
        d->member_hash[i] = mp_hash64(d->members[i], len, MP_HASH_SEED_DEFAULT);
        /* Value is index + 1: map values must be non-NULL. */
        if (mp_map_str_put(&d->member_map, d->members[i], len,
                           (void *)(uintptr_t)(i + 1), NULL) != MP_OK)
            goto oom;
    }
    return MP_OK;
oom:
    mp_dir_free(d);
    return MP_ENOMEM;
}

static void free_list(mp_list_node *head)
{
    mp_list_node *it, *tmp;
    MP_LIST_FOREACH_SAFE(it, tmp, head)
    {
        mp_list_remove(it);
        free(MP_CONTAINER_OF(it, mp_dir_entry, link));
    }
}

void mp_dir_free(mp_directory *d)
{
    if (d->table_list.next) free_list(&d->table_list);
    if (d->cache_list.next) free_list(&d->cache_list);
    mp_map_str_free(&d->table);
    mp_map_str_free(&d->cache);
    mp_map_str_free(&d->member_map);
    if (d->members)
        for (size_t i = 0; i < d->n; i++) free(d->members[i]);
    free(d->members);
    free(d->member_hash);
    free(d->known_load);
    free(d->placed);
    free(d->live);
    free(d->scratch);
    memset(d, 0, sizeof *d);
}

int mp_dir_add_member(mp_directory *d, const char *addr)
{
    size_t len = strlen(addr);
    int idx = mp_dir_member(d, addr, len);
    if (idx >= 0) return idx;
    if (d->n >= MP_MAX_MEMBERS) return MP_EQUEUEFULL;
    char *copy = strdup(addr);
    if (!copy) return MP_ENOMEM;
    size_t i = d->n;
    if (mp_map_str_put(&d->member_map, copy, len, (void *)(uintptr_t)(i + 1), NULL) !=
        MP_OK) {
        free(copy);
        return MP_ENOMEM;
    }
    d->members[i] = copy;
    d->member_hash[i] = mp_hash64(copy, len, MP_HASH_SEED_DEFAULT);
    d->known_load[i] = d->placed[i] = 0;
    d->live[i] = 0;
    d->n++;
    return (int)i;
}

void mp_dir_use_live_set(mp_directory *d)
{
    d->live_all = false;
    memset(d->live, 0, MP_MAX_MEMBERS);
    d->live_count = 0;
}

void mp_dir_set_live(mp_directory *d, size_t member, bool live)
{
    assert(member < d->n && !d->live_all);
    if (d->live[member] == live) return;
    d->live[member] = live;
    if (live)
        d->live_count++;
    else
        d->live_count--;
}

int mp_dir_member(const mp_directory *d, const char *addr, size_t len)
{
    void *v = mp_map_str_get(&d->member_map, addr, len);
    return v ? (int)((uintptr_t)v - 1) : -1;
}

/* Rendezvous: highest score wins; a tie (a 64-bit collision) is broken by
 * address bytes so every node agrees whatever its member order. */
static size_t rendezvous_live(const mp_directory *d, uint64_t h)
{
    size_t best = SIZE_MAX;
    uint64_t best_score = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (!d->live[i]) continue;
        uint64_t s = mp_mix64(h ^ d->member_hash[i], h);
        if (best == SIZE_MAX || s > best_score ||
            (s == best_score && strcmp(d->members[i], d->members[best]) > 0)) {
            best = i;
            best_score = s;
        }
    }
    /* No member may serve (before the first table read, or this node lost
     * its lease): the node itself answers, and its own checks refuse. */
    return best == SIZE_MAX ? (d->self == MP_DIR_NO_SELF ? 0 : d->self) : best;
}

static size_t rendezvous(const mp_directory *d, uint64_t h)
{
    if (!d->live_all) return rendezvous_live(d, h);
    size_t best = 0;
    uint64_t best_score = mp_mix64(h ^ d->member_hash[0], h);
    for (size_t i = 1; i < d->n; i++) {
        uint64_t s = mp_mix64(h ^ d->member_hash[i], h);
        if (s > best_score ||
            (s == best_score && strcmp(d->members[i], d->members[best]) > 0)) {
            best = i;
            best_score = s;
        }
    }
    return best;
}

size_t mp_dir_owner(const mp_directory *d, const mp_ref *ref)
{
    return rendezvous(d, ref->hash);
}

size_t mp_dir_owner_h(const mp_directory *d, uint64_t ref_hash)
{
    return rendezvous(d, ref_hash);
}

/* ---- owner table ---- */

void mp_dir_set_local(mp_directory *d,
                      bool *(*fn)(void *ud, uint64_t ref_hash, const char *id,
                                  size_t len, uint64_t *act_id),
                      void *ud, uint32_t incarnation)
{
    assert(d->local_count == 0);
    d->local_fn = fn;
    d->local_ud = ud;
    d->local_inc = incarnation;
}

/* The registration flag of this node's activation of the id, or NULL. */
static bool *local_slot(const mp_directory *d, uint64_t ref_hash,
                        const char *id, size_t len, uint64_t *act_id)
{
    if (!d->local_fn || d->self == MP_DIR_NO_SELF) return NULL;
    return d->local_fn(d->local_ud, ref_hash, id, len, act_id);
}

static mp_dir_entry local_entry(const mp_directory *d, size_t len,
                                uint64_t act_id)
{
    mp_dir_entry e;
    memset(&e, 0, sizeof e);
    e.member = (uint16_t)d->self;
    e.len = (uint16_t)len;
    e.incarnation = d->local_inc;
    e.act_id = act_id;
    return e;
}

static const mp_dir_entry *table_get_h(const mp_directory *d,
                                       uint64_t ref_hash, const char *id,
                                       size_t len)
{
    const mp_dir_entry *e =
        mp_map_str_get_h(&d->table, khash(d->table_seed, ref_hash), id, len);
    if (e || d->local_count == 0) return e;
    uint64_t act_id;
    bool *reg = local_slot(d, ref_hash, id, len, &act_id);
    if (!reg || !*reg) return NULL;
    *d->scratch = local_entry(d, len, act_id);
    return d->scratch;
}

const mp_dir_entry *mp_dir_table_get(const mp_directory *d, const char *id,
                                     size_t len)
{
    return table_get_h(d, id_hash(id, len), id, len);
}

const mp_dir_entry *mp_dir_table_get_ref(const mp_directory *d,
                                         const mp_ref *ref)
{
    return table_get_h(d, ref->hash, ref->id, ref->len);
}

const mp_dir_entry *mp_dir_table_get_stored(const mp_directory *d,
                                            const mp_ref *ref)
{
    return mp_map_str_get_h(&d->table, khash(d->table_seed, ref->hash), ref->id,
                            ref->len);
}

int mp_dir_register(mp_directory *d, const mp_ref *ref, uint16_t member,
                    uint32_t incarnation, uint64_t act_id,
                    mp_dir_entry *winner)
{
    assert(member < d->n);
    uint64_t h = khash(d->table_seed, ref->hash);
    mp_dir_entry *e = mp_map_str_get_h(&d->table, h, ref->id, ref->len);
    if (e) {
        if (e->member == member && e->incarnation <= incarnation) {
            /* The same node re-registering: its newer activation is the
             * only one it can have (see directory.h). */
            e->incarnation = incarnation;
            e->act_id = act_id;
        }
        *winner = *e;
        return MP_OK;
    }
    uint64_t local_act;
    bool *reg = local_slot(d, ref->hash, ref->id, ref->len, &local_act);
    if (reg && *reg) {
        /* A local entry is in force: first wins. It names the one
         * activation of the id this node has, so a re-registration by this
         * node has nothing to replace. */
        *winner = local_entry(d, ref->len, local_act);
        return MP_OK;
    }
    if (reg && member == d->self && act_id == local_act &&
        incarnation == d->local_inc) {
        *reg = true;
        d->local_count++;
        *winner = local_entry(d, ref->len, act_id);
        return MP_OK;
    }
    e = entry_new(ref->id, ref->len);
    if (!e) return MP_ENOMEM;
    e->member = member;
    e->incarnation = incarnation;
    e->act_id = act_id;
    if (mp_map_str_put_h(&d->table, h, e->id, e->len, e, NULL) != MP_OK) {
        free(e);
        return MP_ENOMEM;
    }
    mp_list_push_back(&d->table_list, &e->link);
    *winner = *e;
    return MP_OK;
}

bool mp_dir_unregister(mp_directory *d, const char *id, size_t len,
                       uint16_t member, uint64_t act_id)
{
    uint64_t rh = id_hash(id, len);
    uint64_t h = khash(d->table_seed, rh);
    mp_dir_entry *e = mp_map_str_get_h(&d->table, h, id, len);
    if (!e && member == d->self && d->local_count) {
        uint64_t local_act;
        bool *reg = local_slot(d, rh, id, len, &local_act);
        if (!reg || !*reg || local_act != act_id) return false;
        *reg = false;
        d->local_count--;
        return true;
    }
    if (!e || e->member != member || e->act_id != act_id) return false;
    mp_map_str_remove_h(&d->table, h, id, len);
    mp_list_remove(&e->link);
    free(e);
    return true;
}

size_t mp_dir_table_count(const mp_directory *d)
{
    return mp_map_str_count(&d->table) + d->local_count;
}

/* ---- cache ---- */

static int cache_get_h(const mp_directory *d, uint64_t ref_hash,
                       const char *id, size_t len)
{
    const mp_dir_entry *e =
        mp_map_str_get_h(&d->cache, khash(d->cache_seed, ref_hash), id, len);
    return e ? e->member : -1;
}

int mp_dir_cache_get(const mp_directory *d, const char *id, size_t len)
{
    if (mp_map_str_count(&d->cache) == 0) return -1; /* skip hashing */
    return cache_get_h(d, id_hash(id, len), id, len);
}

int mp_dir_cache_get_ref(const mp_directory *d, const mp_ref *ref)
{
    return cache_get_h(d, ref->hash, ref->id, ref->len);
}

static void cache_remove_h(mp_directory *d, uint64_t ref_hash, const char *id,
                           size_t len)
{
    mp_dir_entry *e =
        mp_map_str_remove_h(&d->cache, khash(d->cache_seed, ref_hash), id, len);
    if (!e) return;
    mp_list_remove(&e->link);
    free(e);
}

void mp_dir_cache_remove(mp_directory *d, const char *id, size_t len)
{
    if (mp_map_str_count(&d->cache) == 0) return;
    cache_remove_h(d, id_hash(id, len), id, len);
}

void mp_dir_cache_remove_ref(mp_directory *d, const mp_ref *ref)
{
    cache_remove_h(d, ref->hash, ref->id, ref->len);
}

void mp_dir_cache_put(mp_directory *d, const char *id, size_t len,
                      uint16_t member, uint32_t incarnation)
{
    assert(member < d->n);
    if (len > MP_ACTOR_ID_MAX) return;
    uint64_t h = khash(d->cache_seed, id_hash(id, len));
    mp_dir_entry *e = mp_map_str_get_h(&d->cache, h, id, len);
    if (e) {
        e->member = member;
        e->incarnation = incarnation;
        return;
    }
    if (mp_map_str_count(&d->cache) >= d->cache_max) {
        mp_list_node *old = mp_list_front(&d->cache_list);
        if (old) {
            mp_dir_entry *oe = MP_CONTAINER_OF(old, mp_dir_entry, link);
            mp_dir_cache_remove(d, oe->id, oe->len);
        }
    }
    e = entry_new(id, len);
    if (!e) return; /* a cache may forget: the next call looks up again */
    e->member = member;
    e->incarnation = incarnation;
    e->act_id = 0;
    if (mp_map_str_put_h(&d->cache, h, e->id, e->len, e, NULL) != MP_OK) {
        free(e);
        return;
    }
    mp_list_push_back(&d->cache_list, &e->link);
}

size_t mp_dir_cache_count(const mp_directory *d)
{
    return mp_map_str_count(&d->cache);
}

void mp_dir_cache_drop_member(mp_directory *d, uint16_t member)
{
    mp_list_node *it, *tmp;
    MP_LIST_FOREACH_SAFE(it, tmp, &d->cache_list)
    {
        mp_dir_entry *e = MP_CONTAINER_OF(it, mp_dir_entry, link);
        if (e->member == member) mp_dir_cache_remove(d, e->id, e->len);
    }
}

void mp_dir_peer_restart(mp_directory *d, uint16_t member, uint32_t new_inc)
{
    mp_list_node *it, *tmp;
    mp_dir_cache_drop_member(d, member);
    MP_LIST_FOREACH_SAFE(it, tmp, &d->table_list)
    {
        mp_dir_entry *e = MP_CONTAINER_OF(it, mp_dir_entry, link);
        if (e->member == member && e->incarnation < new_inc)
            mp_dir_unregister(d, e->id, e->len, e->member, e->act_id);
    }
    d->known_load[member] = 0;
    d->placed[member] = 0;
}

size_t mp_dir_drop_not_owned(mp_directory *d)
{
    size_t dropped = 0;
    if (d->self == MP_DIR_NO_SELF) return 0;
    mp_list_node *it, *tmp;
    MP_LIST_FOREACH_SAFE(it, tmp, &d->table_list)
    {
        mp_dir_entry *e = MP_CONTAINER_OF(it, mp_dir_entry, link);
        if (rendezvous(d, id_hash(e->id, e->len)) != d->self) {
            mp_dir_unregister(d, e->id, e->len, e->member, e->act_id);
            dropped++;
        }
    }
    return dropped;
}

/* ---- placement ---- */

static uint64_t load_of(const mp_directory *d, size_t i, uint64_t self_load)
{
    if (i == d->self) return self_load;
    return d->known_load[i] + d->placed[i];
}

/* Placement among the members ok[] allows (membership mode: active and
 * hosting the type). Same strategies, over the allowed list. */
static size_t place_among(mp_directory *d, mp_placement strategy, const mp_ref *ref,
                          uint64_t self_load, mp_env *env, const uint8_t *ok)
{
    uint16_t cand[MP_MAX_MEMBERS];
    size_t k = 0;
    for (size_t i = 0; i < d->n; i++)
        if (ok[i]) cand[k++] = (uint16_t)i;
    if (k == 0) return SIZE_MAX;
    if (strategy == MP_PLACE_PREFER_LOCAL && d->self < d->n && ok[d->self])
        return d->self;
    if (strategy == MP_PLACE_HASH) {
        uint64_t h = mp_mix64(ref->hash, 0x706c616365ull);
        size_t best = cand[0];
        uint64_t best_score = mp_mix64(h ^ d->member_hash[best], h);
        for (size_t j = 1; j < k; j++) {
            uint64_t sc = mp_mix64(h ^ d->member_hash[cand[j]], h);
            if (sc > best_score) {
                best = cand[j];
                best_score = sc;
            }
        }
        return best;
    }
    if (strategy == MP_PLACE_RANDOM || k == 1)
        return cand[mp_env_random_below(env, k)];
    size_t a = cand[mp_env_random_below(env, k)];
    size_t b = cand[mp_env_random_below(env, k)];
    size_t pick = load_of(d, b, self_load) < load_of(d, a, self_load) ? b : a;
    if (k > 2) {
        size_t c = cand[mp_env_random_below(env, k)];
        if (load_of(d, c, self_load) < load_of(d, pick, self_load)) pick = c;
    }
    return pick;
}

size_t mp_dir_place(mp_directory *d, mp_placement strategy, const mp_ref *ref,
                    uint64_t self_load, mp_env *env, const uint8_t *ok)
{
    size_t pick;
    if (ok) {
        pick = place_among(d, strategy, ref, self_load, env, ok);
        if (pick == SIZE_MAX) return pick;
        if (pick != d->self) d->placed[pick]++;
        return pick;
    }
    switch (strategy) {
    case MP_PLACE_PREFER_LOCAL:
        pick = d->self;
        break;
    case MP_PLACE_RANDOM:
        pick = (size_t)mp_env_random_below(env, d->n);
        break;
    case MP_PLACE_HASH:
        /* Salted so that the host is not always the directory owner. */
        pick = rendezvous(d, mp_mix64(ref->hash, 0x706c616365ull));
        break;
    case MP_PLACE_TWO_CHOICES:
    default:
        if (d->n == 1) {
            pick = 0;
        } else {
            size_t a = (size_t)mp_env_random_below(env, d->n);
            size_t b = (size_t)mp_env_random_below(env, d->n - 1);
            if (b >= a) b++;
            pick = load_of(d, b, self_load) < load_of(d, a, self_load) ? b : a;
            if (d->n > 2) {
                size_t c = (size_t)mp_env_random_below(env, d->n);
                if (load_of(d, c, self_load) < load_of(d, pick, self_load)) pick = c;
            }
        }
        break;
    }
    if (pick != d->self) d->placed[pick]++;
    return pick;
}

void mp_dir_load_report(mp_directory *d, uint16_t member, uint64_t count)
{
    if (member >= d->n) return;
    d->known_load[member] = count;
    d->placed[member] = 0;
}
