/*
 * One Robin Hood core for both map flavours (see map.h for the design).
 *
 * The core works on raw slot bytes of a given size, and takes the key
 * equality test as a function pointer. Every core function is always_inline
 * and every flavour passes compile-time constants (sizeof its slot, its own
 * eq function), so the compiler emits a specialised copy per flavour with the
 * slot size folded into the address arithmetic and eq inlined: generic code,
 * no indirect calls on the hot path, no macro templates.
 *
 * Invariants (checked by mp_map_*_check):
 *   - a slot is empty iff its value is NULL;
 *   - dist(i) = (i - home(hash)) & mask is the probe distance of the entry in
 *     slot i, and along any run of full slots dist grows by at most one per
 *     step (the Robin Hood property): an entry is never farther from home
 *     than the entry it pushed past;
 *   - at least one slot is empty (count <= limit < cap), so probes end.
 * A lookup stops at an empty slot or at a slot whose entry is closer to home
 * than the probe: by the invariant the key cannot lie beyond it.
 */
#include "util/map.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "util/hash.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define NOT_FOUND SIZE_MAX
#define MIN_CAP 8
#define MAX_SLOT 32

/* ---- slots ---- */

/* Common prefix of every slot. value == NULL marks an empty slot; calloc'd
 * memory is therefore an empty table (NULL is all-bits-zero on every
 * platform moonpool targets). */
struct slot_head {
    uint64_t hash;
    void *value;
};

struct slot_u64 {
    struct slot_head h; /* hash = mp_hash_u64(key); the key itself is implied */
};

struct slot_str {
    struct slot_head h;
    const void *key;
    size_t len;
};

_Static_assert(sizeof(struct slot_u64) == 16, "u64 slot layout");
_Static_assert(sizeof(struct slot_str) <= MAX_SLOT, "str slot layout");

/* What a lookup is looking for. */
struct query {
    uint64_t hash;
    const void *key;
    size_t len;
    uint32_t key_off, len_off; /* obj flavour: where the value holds its key */
};

typedef bool (*eq_fn)(const struct slot_head *s, const struct query *q);

ALWAYS_INLINE struct slot_head *slot_at(const mp_map_core *c, size_t i, size_t ssz)
{
    return (struct slot_head *)(c->slots + i * ssz);
}

ALWAYS_INLINE size_t dist_of(uint64_t hash, size_t i, size_t mask)
{
    return (i - (size_t)hash) & mask;
}

static size_t limit_for(size_t cap)
{
    return (cap * 4) / 5; /* cap * ssz fits in size_t and ssz >= 16: no overflow */
}

/* Smallest power-of-two capacity whose 80% load holds n entries, or 0 if
 * that would not fit in memory arithmetic. */
static size_t cap_for(size_t n, size_t ssz)
{
    size_t cap = MIN_CAP;
    while (limit_for(cap) < n) {
        if (cap > SIZE_MAX / 2 / ssz) return 0;
        cap *= 2;
    }
    return cap;
}

/* ---- core ---- */

ALWAYS_INLINE size_t core_find(const mp_map_core *c, const struct query *q, size_t ssz,
                               eq_fn eq)
{
    if (c->count == 0) return NOT_FOUND;
    size_t mask = c->cap - 1;
    size_t i = (size_t)q->hash & mask;
    for (size_t d = 0;; d++, i = (i + 1) & mask) {
        const struct slot_head *s = slot_at(c, i, ssz);
        if (s->value == NULL) return NOT_FOUND;
        if (dist_of(s->hash, i, mask) < d) return NOT_FOUND;
        if (s->hash == q->hash && eq(s, q)) return i;
    }
}

/* Place an entry known to be absent, starting at slot i where the probe is
 * already at distance d from the entry's home (0 and home for a fresh
 * probe), displacing richer entries onward. `entry` is a full slot image;
 * it is copied, never kept. */
ALWAYS_INLINE void core_place_at(mp_map_core *c, const void *entry, size_t i, size_t d,
                                 size_t ssz)
{
    unsigned char cur[MAX_SLOT], tmp[MAX_SLOT];
    memcpy(cur, entry, ssz);
    size_t mask = c->cap - 1;
    for (;; d++, i = (i + 1) & mask) {
        struct slot_head *s = slot_at(c, i, ssz);
        if (s->value == NULL) {
            memcpy(s, cur, ssz);
            return;
        }
        size_t sd = dist_of(s->hash, i, mask);
        if (sd < d) {
            /* The resident is closer to home than we are: take its slot and
             * carry it on (Robin Hood). */
            memcpy(tmp, s, ssz);
            memcpy(s, cur, ssz);
            memcpy(cur, tmp, ssz);
            d = sd;
        }
    }
}

ALWAYS_INLINE void core_place(mp_map_core *c, const void *entry, size_t ssz)
{
    uint64_t hash = ((const struct slot_head *)entry)->hash;
    core_place_at(c, entry, (size_t)hash & (c->cap - 1), 0, ssz);
}

/* Rebuild into a table of new_cap slots. On failure nothing changed. */
static int core_resize(mp_map_core *c, size_t new_cap, size_t ssz)
{
    assert(new_cap >= MIN_CAP && (new_cap & (new_cap - 1)) == 0);
    assert(limit_for(new_cap) >= c->count);
    unsigned char *fresh = mp_util_calloc_table(new_cap, ssz);
    if (fresh == NULL) return MP_ENOMEM;
    unsigned char *old = c->slots;
    size_t old_cap = c->cap;
    c->slots = fresh;
    c->cap = new_cap;
    c->limit = limit_for(new_cap);
    for (size_t i = 0; i < old_cap; i++) {
        const struct slot_head *s = (const struct slot_head *)(const void *)(old + i * ssz);
        if (s->value != NULL) core_place(c, s, ssz);
    }
    free(old);
    return MP_OK;
}

static int core_reserve(mp_map_core *c, size_t n, size_t ssz)
{
    if (n <= c->limit && c->cap != 0) return MP_OK;
    size_t cap = cap_for(n, ssz);
    if (cap == 0) return MP_ENOMEM;
    if (cap <= c->cap) return MP_OK;
    return core_resize(c, cap, ssz);
}

static int core_init(mp_map_core *c, size_t initial_cap, size_t ssz)
{
    c->slots = NULL;
    c->cap = 0;
    c->count = 0;
    c->limit = 0;
    if (initial_cap == 0) return MP_OK;
    return core_reserve(c, initial_cap, ssz);
}

static void core_free(mp_map_core *c)
{
    free(c->slots);
    c->slots = NULL;
    c->cap = c->count = c->limit = 0;
}

/* Insert or replace. `entry` is the full slot image of the new entry. On
 * replacement, the stored slot takes the whole image (value and, for
 * strings, the new key pointer). */
ALWAYS_INLINE int core_put(mp_map_core *c, const struct query *q, const void *entry,
                           void **old, size_t ssz, eq_fn eq)
{
    void *value = ((const struct slot_head *)entry)->value;
    if (old) *old = NULL;
    if (value == NULL) return MP_EINVAL;

    if (c->count >= c->limit) {
        /* Growth point: a replacement must not grow (nor fail), so look
         * first. Only reached once per doubling, so the extra probe is
         * free in aggregate. */
        size_t at = core_find(c, q, ssz, eq);
        if (at != NOT_FOUND) {
            struct slot_head *s = slot_at(c, at, ssz);
            if (old) *old = s->value;
            memcpy(s, entry, ssz);
            return MP_OK;
        }
        if (c->cap > SIZE_MAX / 2 / ssz) return MP_ENOMEM;
        int rc = core_resize(c, c->cap ? c->cap * 2 : MIN_CAP, ssz);
        if (rc != MP_OK) return rc;
    }

    /* One probe both finds an existing key and finds where a new one goes:
     * by the Robin Hood invariant the key cannot lie past the first empty
     * slot or the first entry closer to home than the probe. */
    size_t mask = c->cap - 1;
    size_t i = (size_t)q->hash & mask, d = 0;
    for (;; d++, i = (i + 1) & mask) {
        struct slot_head *s = slot_at(c, i, ssz);
        if (s->value == NULL || dist_of(s->hash, i, mask) < d) break;
        if (s->hash == q->hash && eq(s, q)) {
            if (old) *old = s->value;
            memcpy(s, entry, ssz);
            return MP_OK;
        }
    }
    core_place_at(c, entry, i, d, ssz); /* continue from where the probe stopped */
    c->count++;
    assert(c->count <= c->limit);
    return MP_OK;
}

ALWAYS_INLINE void *core_remove(mp_map_core *c, const struct query *q, size_t ssz, eq_fn eq)
{
    size_t i = core_find(c, q, ssz, eq);
    if (i == NOT_FOUND) return NULL;
    size_t mask = c->cap - 1;
    void *value = slot_at(c, i, ssz)->value;
    /* Backward shift: pull each following displaced entry one step closer
     * to home, until an empty slot or an entry already at home. This keeps
     * the Robin Hood property without tombstones. */
    for (;;) {
        size_t j = (i + 1) & mask;
        struct slot_head *next = slot_at(c, j, ssz);
        if (next->value == NULL || dist_of(next->hash, j, mask) == 0) break;
        memcpy(slot_at(c, i, ssz), next, ssz);
        i = j;
    }
    memset(slot_at(c, i, ssz), 0, ssz);
    c->count--;
    return value;
}

typedef void (*query_fn)(const struct slot_head *s, struct query *q, const void *ctx);

/* Full structural check. to_query rebuilds the lookup for a stored entry and
 * recomputes its hash from the key where the flavour can. */
static bool core_check(const mp_map_core *c, size_t ssz, eq_fn eq, query_fn to_query,
                       const void *ctx)
{
    if (c->cap == 0) return c->slots == NULL && c->count == 0 && c->limit == 0;
    if (c->cap < MIN_CAP || (c->cap & (c->cap - 1)) != 0) return false;
    if (c->limit != limit_for(c->cap) || c->count > c->limit) return false;
    size_t mask = c->cap - 1, full = 0;
    bool empty_seen = false;
    for (size_t i = 0; i < c->cap; i++) {
        const struct slot_head *s = slot_at(c, i, ssz);
        if (s->value == NULL) {
            empty_seen = true;
            continue;
        }
        full++;
        struct query q;
        to_query(s, &q, ctx);
        if (q.hash != s->hash) return false;
        /* Robin Hood property with the previous slot. */
        size_t prev = (i - 1) & mask;
        const struct slot_head *p = slot_at(c, prev, ssz);
        size_t d = dist_of(s->hash, i, mask);
        if (d > 0 && (p->value == NULL || d > dist_of(p->hash, prev, mask) + 1)) return false;
        /* Reachable by lookup, and found at this very slot: no duplicate of
         * the key earlier in its probe sequence. */
        if (core_find(c, &q, ssz, eq) != i) return false;
    }
    return full == c->count && empty_seen;
}

/* ---- u64 flavour ---- */

static bool eq_u64(const struct slot_head *s, const struct query *q)
{
    (void)s;
    (void)q;
    return true; /* hashes already compared equal; mp_hash_u64 is a bijection */
}

static void query_u64(const struct slot_head *s, struct query *q, const void *ctx)
{
    (void)ctx;
    *q = (struct query){s->hash, NULL, 0, 0, 0}; /* the key is not stored to rehash */
}

#define SSZ_U64 sizeof(struct slot_u64)

int mp_map_u64_init(mp_map_u64 *m, size_t initial_cap)
{
    return core_init(&m->core, initial_cap, SSZ_U64);
}

void mp_map_u64_free(mp_map_u64 *m)
{
    core_free(&m->core);
}

void *mp_map_u64_get(const mp_map_u64 *m, uint64_t key)
{
    struct query q = {mp_hash_u64(key), NULL, 0, 0, 0};
    size_t i = core_find(&m->core, &q, SSZ_U64, eq_u64);
    return i == NOT_FOUND ? NULL : slot_at(&m->core, i, SSZ_U64)->value;
}

int mp_map_u64_put(mp_map_u64 *m, uint64_t key, void *value, void **old)
{
    struct query q = {mp_hash_u64(key), NULL, 0, 0, 0};
    struct slot_u64 e = {{q.hash, value}};
    return core_put(&m->core, &q, &e, old, SSZ_U64, eq_u64);
}

void *mp_map_u64_remove(mp_map_u64 *m, uint64_t key)
{
    struct query q = {mp_hash_u64(key), NULL, 0, 0, 0};
    return core_remove(&m->core, &q, SSZ_U64, eq_u64);
}

size_t mp_map_u64_count(const mp_map_u64 *m)
{
    return m->core.count;
}

int mp_map_u64_reserve(mp_map_u64 *m, size_t n)
{
    return core_reserve(&m->core, n, SSZ_U64);
}

bool mp_map_u64_check(const mp_map_u64 *m)
{
    return core_check(&m->core, SSZ_U64, eq_u64, query_u64, NULL);
}

/* ---- string flavour ---- */

/* Key equality. Keys are short (actor ids are typically 15-40 bytes) and
 * the hashes already matched, so the answer is nearly always "equal": an
 * inline word-wise compare beats a call into libc's memcmp, whose dispatch
 * and size checks were 7-13% of a local call. */
static inline bool bytes_equal(const unsigned char *a, const unsigned char *b,
                               size_t n)
{
    uint64_t x, y;
    while (n >= 8) {
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y) return false;
        a += 8;
        b += 8;
        n -= 8;
    }
    if (n >= 4) {
        uint32_t u, v;
        memcpy(&u, a, 4);
        memcpy(&v, b, 4);
        if (u != v) return false;
        a += 4;
        b += 4;
        n -= 4;
    }
    while (n--)
        if (*a++ != *b++) return false;
    return true;
}

static bool eq_str(const struct slot_head *s, const struct query *q)
{
    const struct slot_str *t = (const struct slot_str *)(const void *)s;
    return t->len == q->len &&
           (t->key == q->key || bytes_equal(t->key, q->key, q->len));
}

static void query_str(const struct slot_head *s, struct query *q, const void *ctx)
{
    const struct slot_str *t = (const struct slot_str *)(const void *)s;
    *q = (struct query){mp_hash64(t->key, t->len, *(const uint64_t *)ctx), t->key, t->len, 0, 0};
}

#define SSZ_STR sizeof(struct slot_str)

int mp_map_str_init_seeded(mp_map_str *m, size_t initial_cap, uint64_t seed)
{
    m->seed = seed;
    return core_init(&m->core, initial_cap, SSZ_STR);
}

int mp_map_str_init(mp_map_str *m, size_t initial_cap)
{
    return mp_map_str_init_seeded(m, initial_cap, MP_HASH_SEED_DEFAULT);
}

void mp_map_str_free(mp_map_str *m)
{
    core_free(&m->core);
}

void *mp_map_str_get(const mp_map_str *m, const void *key, size_t len)
{
    if (m->core.count == 0 || (key == NULL && len != 0)) return NULL; /* empty: skip hashing */
    struct query q = {mp_hash64(key, len, m->seed), key, len, 0, 0};
    size_t i = core_find(&m->core, &q, SSZ_STR, eq_str);
    return i == NOT_FOUND ? NULL : slot_at(&m->core, i, SSZ_STR)->value;
}

int mp_map_str_put(mp_map_str *m, const void *key, size_t len, void *value, void **old)
{
    if (key == NULL && len != 0) {
        if (old) *old = NULL;
        return MP_EINVAL;
    }
    struct query q = {mp_hash64(key, len, m->seed), key, len, 0, 0};
    struct slot_str e = {{q.hash, value}, key, len};
    return core_put(&m->core, &q, &e, old, SSZ_STR, eq_str);
}

void *mp_map_str_remove(mp_map_str *m, const void *key, size_t len)
{
    if (m->core.count == 0 || (key == NULL && len != 0)) return NULL;
    struct query q = {mp_hash64(key, len, m->seed), key, len, 0, 0};
    return core_remove(&m->core, &q, SSZ_STR, eq_str);
}

void *mp_map_str_get_h(const mp_map_str *m, uint64_t hash, const void *key,
                       size_t len)
{
    if (m->core.count == 0 || (key == NULL && len != 0)) return NULL;
    struct query q = {hash, key, len, 0, 0};
    size_t i = core_find(&m->core, &q, SSZ_STR, eq_str);
    return i == NOT_FOUND ? NULL : slot_at(&m->core, i, SSZ_STR)->value;
}

int mp_map_str_put_h(mp_map_str *m, uint64_t hash, const void *key, size_t len,
                     void *value, void **old)
{
    if (key == NULL && len != 0) {
        if (old) *old = NULL;
        return MP_EINVAL;
    }
    struct query q = {hash, key, len, 0, 0};
    struct slot_str e = {{q.hash, value}, key, len};
    return core_put(&m->core, &q, &e, old, SSZ_STR, eq_str);
}

void *mp_map_str_remove_h(mp_map_str *m, uint64_t hash, const void *key,
                          size_t len)
{
    if (m->core.count == 0 || (key == NULL && len != 0)) return NULL;
    struct query q = {hash, key, len, 0, 0};
    return core_remove(&m->core, &q, SSZ_STR, eq_str);
}

size_t mp_map_str_count(const mp_map_str *m)
{
    return m->core.count;
}

int mp_map_str_reserve(mp_map_str *m, size_t n)
{
    return core_reserve(&m->core, n, SSZ_STR);
}

bool mp_map_str_check(const mp_map_str *m)
{
    return core_check(&m->core, SSZ_STR, eq_str, query_str, &m->seed);
}

/* ---- key inside the value ---- */

static bool eq_obj(const struct slot_head *s, const struct query *q)
{
    const unsigned char *v = s->value;
    uint16_t len;
    memcpy(&len, v + q->len_off, sizeof len);
    return len == q->len && bytes_equal(v + q->key_off, q->key, q->len);
}

#define SSZ_OBJ sizeof(struct slot_head)

int mp_map_obj_init(mp_map_obj *m, size_t key_off, size_t len_off)
{
    m->key_off = (uint32_t)key_off;
    m->len_off = (uint32_t)len_off;
    return core_init(&m->core, 0, SSZ_OBJ);
}

void mp_map_obj_free(mp_map_obj *m)
{
    core_free(&m->core);
}

void *mp_map_obj_get(const mp_map_obj *m, uint64_t hash, const void *key,
                     size_t len)
{
    if (m->core.count == 0 || (key == NULL && len != 0)) return NULL;
    struct query q = {hash, key, len, m->key_off, m->len_off};
    size_t i = core_find(&m->core, &q, SSZ_OBJ, eq_obj);
    return i == NOT_FOUND ? NULL : slot_at(&m->core, i, SSZ_OBJ)->value;
}

int mp_map_obj_put(mp_map_obj *m, uint64_t hash, void *value, void **old)
{
    if (value == NULL) {
        if (old) *old = NULL;
        return MP_EINVAL;
    }
    const unsigned char *v = value;
    uint16_t len;
    memcpy(&len, v + m->len_off, sizeof len);
    struct query q = {hash, v + m->key_off, len, m->key_off, m->len_off};
    struct slot_head e = {hash, value};
    return core_put(&m->core, &q, &e, old, SSZ_OBJ, eq_obj);
}

void *mp_map_obj_remove(mp_map_obj *m, uint64_t hash, const void *key,
                        size_t len)
{
    if (m->core.count == 0 || (key == NULL && len != 0)) return NULL;
    struct query q = {hash, key, len, m->key_off, m->len_off};
    return core_remove(&m->core, &q, SSZ_OBJ, eq_obj);
}
