/*
 * Rendezvous hashing (why: rendezvous.h). The weight hashes the member's
 * identity and the key together, then mixes the result once more so that
 * weights of one key across members are independent-looking even when
 * addresses differ in one digit.
 */
#include "membership/rendezvous.h"

#include <assert.h>
#include <string.h>

#include "util/endian.h"
#include "util/hash.h"

uint64_t mp__rv_weight(const mp__rv_member *m, const void *key, size_t key_len)
{
    assert(m && m->addr && (key || key_len == 0));
    uint8_t inc[4];
    mp_put_le32(inc, m->incarnation);
    uint64_t h = mp_hash64(m->addr, strlen(m->addr), MP_HASH_SEED_DEFAULT);
    h = mp_hash64(inc, sizeof inc, h);
    h = mp_hash64(key, key_len, h);
    return mp_hash_u64(h);
}

static int ident_cmp(const mp__rv_member *a, const mp__rv_member *b)
{
    int c = strcmp(a->addr, b->addr);
    if (c) return c;
    return a->incarnation < b->incarnation ? -1 : a->incarnation > b->incarnation;
}

int mp__rv_owner(const mp__rv_member *members, size_t n, const void *key, size_t key_len)
{
    if (!members || n == 0) return -1;
    int best = 0;
    uint64_t best_w = mp__rv_weight(&members[0], key, key_len);
    for (size_t i = 1; i < n; i++) {
        uint64_t w = mp__rv_weight(&members[i], key, key_len);
        if (w > best_w || (w == best_w && ident_cmp(&members[i], &members[best]) < 0)) {
            best = (int)i;
            best_w = w;
        }
    }
    return best;
}
