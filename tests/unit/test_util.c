/*
 * Tests for the hot data structures in src/util/: hash, map, heap, list, buf.
 *
 * The maps and the heap are checked differentially: a fixed-seed stream of
 * 100k random operations runs against both the real structure and a trivial
 * reference (arrays with linear scans), comparing every result, with a full
 * invariant check every few hundred operations. Fixed seeds make a failure
 * reproducible; the operation mix is varied in phases so the structures grow,
 * drain to empty and grow again.
 *
 * Allocation failure is injected through mp_util_alloc_fail_after (util/map.h)
 * to show that a failed growth leaves each structure as it was.
 *
 * (The micro benchmark of these structures is bench/bench_util.c.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"
#include "util/hash.h"
#include "util/heap.h"
#include "util/list.h"
#include "util/map.h"
#include "util/prng.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Runs after every test: a failed assertion must not leave the allocation
 * hook armed for the next test. */
static int reset_hook(void **state)
{
    (void)state;
    mp_util_alloc_fail_after = -1;
    return 0;
}

/* ------------------------------------------------------------------ hash */

/* Pinned once from the implementation. These values decide which node owns
 * which directory partition across a cluster: if this test fails, the hash
 * changed, and nodes running different builds would disagree. */
static void test_hash_known_answers(void **state)
{
    (void)state;
    static const struct {
        size_t len;
        uint64_t seed0, seed_default;
    } vec[] = {
        {0, 0x93228a4de0eec5a2ull, 0xfdea4420a783ab9cull},
        {1, 0x9676022bfd177d90ull, 0x69c4fc127b958a13ull},
        {2, 0x9554b87173c02f13ull, 0x07851e2c2128c709ull},
        {3, 0xe9609c2e635eb614ull, 0xeb66758183dc9f11ull},
        {4, 0x856e7a5c5ce6b65eull, 0xdfe662be16ca69d4ull},
        {5, 0x3ba3c65756bef243ull, 0x3efc78cad1268076ull},
        {7, 0x410e2a33f91756c5ull, 0x3e524c78dc8dd1acull},
        {8, 0xca9f70fc67bbea6dull, 0x7671b106ac49f8afull},
        {9, 0xffc95eb435cad534ull, 0x06d6cda20d79fd8aull},
        {15, 0x7e2ed6abe77c300aull, 0xd68d32ef1841f387ull},
        {16, 0xbdc55046c6d1ec4full, 0xef083e38af3ed7b3ull},
        {17, 0xb3889b861f2af496ull, 0x45f7c150d5da5cf4ull},
        {31, 0x6e0af62b26a6cab7ull, 0x8db349266ad524f9ull},
        {32, 0xe9e0420dad14ac3full, 0x48839a4cfe3d4887ull},
        {33, 0x4d6d2f48276e8b1aull, 0x4c759fedc9744bffull},
        {47, 0x1aba2071ed635298ull, 0x58d4ca555b4653e5ull},
        {48, 0x0a7f07945487ff48ull, 0xdb6f0c03388e88fbull},
        {49, 0x0c4d8b68d0152146ull, 0x2e87d64b68840d74ull},
        {63, 0x2a09833c80d466ecull, 0x182d6f37d0a93c42ull},
        {64, 0xc3740ca8602134a2ull, 0xb6f20ca9da952930ull},
        {65, 0xc2433e46f53af3c7ull, 0xf6c8076bf62b18e5ull},
        {95, 0x12c10abb4fce6653ull, 0xd8e85daa72c737c5ull},
        {96, 0x72c548c7fff5445dull, 0x4b2508850dd2b29eull},
        {97, 0xe9848a86f5cae82full, 0x649bf4cace6f3c3cull},
        {143, 0xd28af657f5410247ull, 0x2283b9fbaaa6d4cfull},
        {144, 0x330c728c7ee199a7ull, 0xfc5228db4518e031ull},
        {256, 0x092b7fe68326f7f3ull, 0x6916af988a91b32dull},
    };
    unsigned char buf[300];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(i * 31 + 7);
    for (size_t k = 0; k < ARRAY_LEN(vec); k++) {
        assert_int_equal(mp_hash64(buf, vec[k].len, 0), vec[k].seed0);
        assert_int_equal(mp_hash64(buf, vec[k].len, MP_HASH_SEED_DEFAULT), vec[k].seed_default);
    }

    static const struct {
        const char *s;
        uint64_t h;
    } strs[] = {
        {"", 0xfdea4420a783ab9cull},
        {"a", 0x5c20a4f002dc0e0eull},
        {"abc", 0x1e7d70e16e30e159ull},
        {"BankAccount/alice", 0xc1019ab88be4c994ull},
        {"default::BankAccount/alice", 0x6e5eb3a164eaf386ull},
        {"The quick brown fox jumps over the lazy dog", 0x7dd4eb8f35c8b720ull},
    };
    for (size_t k = 0; k < ARRAY_LEN(strs); k++)
        assert_int_equal(mp_hash64(strs[k].s, strlen(strs[k].s), MP_HASH_SEED_DEFAULT), strs[k].h);
    assert_int_equal(mp_hash64(NULL, 0, MP_HASH_SEED_DEFAULT), 0xfdea4420a783ab9cull);

    static const uint64_t ints[][2] = {
        {0x0000000000000000ull, 0x0000000000000000ull},
        {0x0000000000000001ull, 0x0dadbfeeb7d64133ull},
        {0x0000000000000002ull, 0x90aeea2043435d3eull},
        {0x8000000000000000ull, 0x71d61e1a39cf46dbull},
        {0xffffffffffffffffull, 0xe398180adc04d6fcull},
        {0x0123456789abcdefull, 0x4461f52ab4d824c2ull},
        {0x000000000000002aull, 0x7e5408d0aa979155ull},
    };
    for (size_t k = 0; k < ARRAY_LEN(ints); k++) assert_int_equal(mp_hash_u64(ints[k][0]), ints[k][1]);
}

/* The hash reads through memcpy: the address of the data must not matter. */
static void test_hash_alignment_independent(void **state)
{
    (void)state;
    unsigned char src[200], shifted[216];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (unsigned char)(i * 131 + 3);
    for (size_t off = 1; off < 16; off++) {
        memcpy(shifted + off, src, sizeof src);
        for (size_t len = 0; len <= sizeof src; len += 7)
            assert_int_equal(mp_hash64(shifted + off, len, 9), mp_hash64(src, len, 9));
    }
}

/* Every input byte, the length and the seed must each change the result. */
static void test_hash_sensitivity(void **state)
{
    (void)state;
    unsigned char buf[130];
    mp_prng rng;
    mp_prng_seed(&rng, 7);
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)mp_prng_next(&rng);

    for (size_t len = 1; len <= sizeof buf; len++) {
        uint64_t base = mp_hash64(buf, len, 1);
        for (size_t byte = 0; byte < len; byte++) {
            for (int bit = 0; bit < 8; bit++) {
                buf[byte] ^= (unsigned char)(1u << bit);
                assert_int_not_equal(mp_hash64(buf, len, 1), base);
                buf[byte] ^= (unsigned char)(1u << bit);
            }
        }
        assert_int_not_equal(mp_hash64(buf, len, 2), base);
    }
    /* All-zero inputs of different lengths differ. */
    unsigned char zero[130] = {0};
    uint64_t seen[131];
    for (size_t len = 0; len <= sizeof zero; len++) {
        seen[len] = mp_hash64(zero, len, 0);
        for (size_t j = 0; j < len; j++) assert_int_not_equal(seen[j], seen[len]);
    }
}

/* Chi-square statistic of counts over nb buckets. */
static double chi_square(const uint32_t *counts, size_t nb, size_t n)
{
    double expect = (double)n / (double)nb, chi = 0;
    for (size_t i = 0; i < nb; i++) {
        double d = counts[i] - expect;
        chi += d * d / expect;
    }
    return chi;
}

/* Structured keys (sequential integers, actor-id-like strings) must spread
 * evenly over both the low bits (what the map uses) and the high bits. With
 * 1024 buckets the statistic has mean 1023 and sd ~45; the bounds are ~8 sd
 * wide, so only a real defect trips them. */
static void test_hash_distribution(void **state)
{
    (void)state;
    enum { NB = 1024, N = 1 << 18 };
    static uint32_t lo[NB], hi[NB];
    for (int kind = 0; kind < 3; kind++) {
        memset(lo, 0, sizeof lo);
        memset(hi, 0, sizeof hi);
        for (uint32_t i = 0; i < N; i++) {
            uint64_t h;
            if (kind == 0) {
                h = mp_hash_u64(i);
            } else if (kind == 1) {
                uint64_t k = (uint64_t)i << 20; /* only high bits vary */
                h = mp_hash64(&k, sizeof k, MP_HASH_SEED_DEFAULT);
            } else {
                char s[48];
                int n = snprintf(s, sizeof s, "default::BankAccount/user%u", i);
                h = mp_hash64(s, (size_t)n, MP_HASH_SEED_DEFAULT);
            }
            lo[h % NB]++;
            hi[h >> 54]++;
        }
        double c1 = chi_square(lo, NB, N), c2 = chi_square(hi, NB, N);
        assert_true(c1 > 700 && c1 < 1400);
        assert_true(c2 > 700 && c2 < 1400);
    }
}

/* Flipping one input bit of mp_hash_u64 flips each output bit with
 * probability close to 1/2. 2000 samples: sd 0.011, bound 0.15. */
static void test_hash_u64_avalanche(void **state)
{
    (void)state;
    enum { SAMPLES = 2000 };
    static uint32_t flips[64][64];
    memset(flips, 0, sizeof flips);
    mp_prng rng;
    mp_prng_seed(&rng, 11);
    for (int s = 0; s < SAMPLES; s++) {
        uint64_t x = mp_prng_next(&rng), h = mp_hash_u64(x);
        for (int i = 0; i < 64; i++) {
            uint64_t d = h ^ mp_hash_u64(x ^ (1ull << i));
            for (int j = 0; j < 64; j++) flips[i][j] += (d >> j) & 1;
        }
    }
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 64; j++) {
            double p = flips[i][j] / (double)SAMPLES;
            assert_true(p > 0.35 && p < 0.65);
        }
}

/* ------------------------------------------------------------------- map */

static char token_pool[4096]; /* values are addresses in here: non-NULL, distinct */

static void *token(uint64_t r)
{
    return &token_pool[r % sizeof token_pool];
}

static void test_map_u64_basic(void **state)
{
    (void)state;
    mp_map_u64 m;
    void *old = token(1);
    assert_int_equal(mp_map_u64_init(&m, 0), MP_OK);
    assert_null(mp_map_u64_get(&m, 5));
    assert_null(mp_map_u64_remove(&m, 5));
    assert_int_equal(mp_map_u64_count(&m), 0);
    assert_true(mp_map_u64_check(&m));

    assert_int_equal(mp_map_u64_put(&m, 5, token(50), &old), MP_OK);
    assert_null(old);
    assert_int_equal(mp_map_u64_put(&m, 0, token(0), NULL), MP_OK);
    assert_int_equal(mp_map_u64_put(&m, UINT64_MAX, token(99), NULL), MP_OK);
    assert_ptr_equal(mp_map_u64_get(&m, 5), token(50));
    assert_ptr_equal(mp_map_u64_get(&m, 0), token(0));
    assert_ptr_equal(mp_map_u64_get(&m, UINT64_MAX), token(99));
    assert_int_equal(mp_map_u64_count(&m), 3);

    assert_int_equal(mp_map_u64_put(&m, 5, token(51), &old), MP_OK);
    assert_ptr_equal(old, token(50));
    assert_int_equal(mp_map_u64_count(&m), 3);
    assert_int_equal(mp_map_u64_put(&m, 6, NULL, &old), MP_EINVAL);
    assert_null(old);
    assert_null(mp_map_u64_get(&m, 6));

    assert_ptr_equal(mp_map_u64_remove(&m, 5), token(51));
    assert_null(mp_map_u64_remove(&m, 5));
    assert_null(mp_map_u64_get(&m, 5));
    assert_int_equal(mp_map_u64_count(&m), 2);
    assert_true(mp_map_u64_check(&m));
    mp_map_u64_free(&m);
    mp_map_u64_free(&m); /* idempotent */

    /* A sized init holds its requested entries without growing. */
    assert_int_equal(mp_map_u64_init(&m, 1000), MP_OK);
    size_t cap = m.core.cap;
    for (uint64_t k = 0; k < 1000; k++) assert_int_equal(mp_map_u64_put(&m, k, token(k), NULL), MP_OK);
    assert_int_equal(m.core.cap, cap);
    assert_true(mp_map_u64_check(&m));
    mp_map_u64_free(&m);
}

/* Differential test body shared by both flavours through these hooks. */
struct map_ops {
    void *(*get)(void *m, size_t k);
    int (*put)(void *m, size_t k, void *v, void **old);
    void *(*remove)(void *m, size_t k);
    size_t (*count)(void *m);
    bool (*check)(void *m);
};

static void run_map_differential(void *m, const struct map_ops *ops, size_t nkeys, uint64_t seed)
{
    void **ref = calloc(nkeys, sizeof *ref);
    assert_non_null(ref);
    size_t ref_count = 0, max_seen = 0;
    mp_prng rng;
    mp_prng_seed(&rng, seed);
    for (int op = 0; op < 100000; op++) {
        /* Phases of 10k ops alternate growth-heavy and drain-heavy mixes,
         * so the table grows, empties and regrows through backward shifts. */
        int phase = (op / 10000) % 2;
        uint64_t r = mp_prng_below(&rng, 100);
        size_t k = (size_t)mp_prng_below(&rng, nkeys);
        if (r < (phase ? 20u : 65u)) {
            void *v = token(mp_prng_next(&rng)), *old = token(0);
            assert_int_equal(ops->put(m, k, v, &old), MP_OK);
            assert_ptr_equal(old, ref[k]);
            if (!ref[k]) ref_count++;
            ref[k] = v;
        } else if (r < 80) {
            assert_ptr_equal(ops->remove(m, k), ref[k]);
            if (ref[k]) ref_count--;
            ref[k] = NULL;
        } else {
            assert_ptr_equal(ops->get(m, k), ref[k]);
        }
        assert_int_equal(ops->count(m), ref_count);
        if (ref_count > max_seen) max_seen = ref_count;
        if (op % 500 == 0) assert_true(ops->check(m));
    }
    assert_true(ops->check(m));
    for (size_t k = 0; k < nkeys; k++) assert_ptr_equal(ops->get(m, k), ref[k]);
    /* The phases really did fill the table (equilibrium is ~80% of keys). */
    assert_true(max_seen > nkeys * 2 / 3);
    free(ref);
}

/* u64 keys: a mix of small sequential ids, ids differing only in high bits,
 * and random 64-bit values, mapped from a dense index. */
static uint64_t u64_keys[3000];

static void make_u64_keys(void)
{
    mp_prng rng;
    mp_prng_seed(&rng, 3);
    for (size_t i = 0; i < ARRAY_LEN(u64_keys); i++) {
        switch (i % 3) {
        case 0: u64_keys[i] = i; break;
        case 1: u64_keys[i] = (uint64_t)i << 40; break;
        default: u64_keys[i] = mp_prng_next(&rng) | 1ull << 63; break;
        }
    }
}

static void *u64_get(void *m, size_t k)
{
    return mp_map_u64_get(m, u64_keys[k]);
}
static int u64_put(void *m, size_t k, void *v, void **old)
{
    return mp_map_u64_put(m, u64_keys[k], v, old);
}
static void *u64_remove(void *m, size_t k)
{
    return mp_map_u64_remove(m, u64_keys[k]);
}
static size_t u64_count(void *m)
{
    return mp_map_u64_count(m);
}
static bool u64_check(void *m)
{
    return mp_map_u64_check(m);
}

static void test_map_u64_differential(void **state)
{
    (void)state;
    make_u64_keys();
    static const struct map_ops ops = {u64_get, u64_put, u64_remove, u64_count, u64_check};
    mp_map_u64 m;
    assert_int_equal(mp_map_u64_init(&m, 0), MP_OK);
    run_map_differential(&m, &ops, ARRAY_LEN(u64_keys), 42);
    mp_map_u64_free(&m);
}

/* String keys: actor-id-like, plus the empty key, prefixes of one another,
 * and keys with NUL and high bytes. Each lives in its own heap block so
 * ASan catches any read past a key's length. */
#define NSTR 3000
static char *str_keys[NSTR];
static size_t str_lens[NSTR];

static void make_str_keys(void)
{
    for (size_t i = 0; i < NSTR; i++) {
        char tmp[80];
        size_t n;
        switch (i % 4) {
        case 0: n = (size_t)snprintf(tmp, sizeof tmp, "default::BankAccount/user-%zu", i); break;
        case 1: n = i % 61; memset(tmp, 'a', n); break; /* "", "a", "aa", ... */
        case 2: n = (size_t)snprintf(tmp, sizeof tmp, "%zu", i); break;
        default:
            n = 12;
            for (size_t j = 0; j < n; j++) tmp[j] = (char)((i >> (j % 4 * 4)) * 37 + j * 0x81);
            tmp[3] = 0;
            break;
        }
        /* case 1 repeats lengths: make those keys unique by the index too */
        if (i % 4 == 1 && i >= 61 * 4) n = (size_t)snprintf(tmp, sizeof tmp, "aa%zu", i);
        str_keys[i] = malloc(n ? n : 1);
        assert_non_null(str_keys[i]);
        memcpy(str_keys[i], tmp, n);
        str_lens[i] = n;
    }
    /* The generator must not have produced duplicates. */
    mp_map_str dup;
    assert_int_equal(mp_map_str_init(&dup, NSTR), MP_OK);
    for (size_t i = 0; i < NSTR; i++) {
        void *old = NULL;
        assert_int_equal(mp_map_str_put(&dup, str_keys[i], str_lens[i], token(i), &old), MP_OK);
        assert_null(old);
    }
    mp_map_str_free(&dup);
}

static void free_str_keys(void)
{
    for (size_t i = 0; i < NSTR; i++) free(str_keys[i]);
}

static void *str_get(void *m, size_t k)
{
    return mp_map_str_get(m, str_keys[k], str_lens[k]);
}
static int str_put(void *m, size_t k, void *v, void **old)
{
    return mp_map_str_put(m, str_keys[k], str_lens[k], v, old);
}
static void *str_remove(void *m, size_t k)
{
    return mp_map_str_remove(m, str_keys[k], str_lens[k]);
}
static size_t str_count(void *m)
{
    return mp_map_str_count(m);
}
static bool str_check(void *m)
{
    return mp_map_str_check(m);
}

static void test_map_str_differential(void **state)
{
    (void)state;
    make_str_keys();
    static const struct map_ops ops = {str_get, str_put, str_remove, str_count, str_check};
    mp_map_str m;
    assert_int_equal(mp_map_str_init_seeded(&m, 0, 0x1234), MP_OK);
    run_map_differential(&m, &ops, NSTR, 43);
    mp_map_str_free(&m);
    assert_int_equal(mp_map_str_init(&m, 16), MP_OK);
    run_map_differential(&m, &ops, NSTR, 44);
    mp_map_str_free(&m);
    free_str_keys();
}

/* Keys are not copied; a replacement re-points the entry at the new key
 * bytes, so the old key's memory may then be reused. */
static void test_map_str_key_ownership(void **state)
{
    (void)state;
    mp_map_str m;
    char a[] = "Account/alice", b[] = "Account/alice";
    void *old = NULL;
    assert_int_equal(mp_map_str_init(&m, 0), MP_OK);
    assert_int_equal(mp_map_str_put(&m, a, strlen(a), token(1), NULL), MP_OK);
    assert_ptr_equal(mp_map_str_get(&m, b, strlen(b)), token(1)); /* by content */
    assert_int_equal(mp_map_str_put(&m, b, strlen(b), token(2), &old), MP_OK);
    assert_ptr_equal(old, token(1));
    memset(a, 'x', strlen(a)); /* the first key's storage is gone */
    assert_ptr_equal(mp_map_str_get(&m, "Account/alice", 13), token(2));
    assert_true(mp_map_str_check(&m));
    assert_null(mp_map_str_get(&m, "Account/alic", 12));
    assert_null(mp_map_str_get(&m, "Account/alice2", 14));
    /* The empty key is a key like any other. */
    assert_int_equal(mp_map_str_put(&m, NULL, 0, token(3), NULL), MP_OK);
    assert_ptr_equal(mp_map_str_get(&m, "", 0), token(3));
    assert_int_equal(mp_map_str_put(&m, NULL, 4, token(3), &old), MP_EINVAL);
    assert_null(old);
    assert_null(mp_map_str_get(&m, NULL, 4));
    assert_null(mp_map_str_remove(&m, NULL, 4));
    assert_ptr_equal(mp_map_str_remove(&m, NULL, 0), token(3));
    assert_int_equal(mp_map_str_count(&m), 1);
    mp_map_str_free(&m);
}

/* Fill a u64 map to its growth point, make the growth fail, and check that
 * nothing changed and that the map still works. */
static void test_map_u64_alloc_failure(void **state)
{
    (void)state;
    mp_map_u64 m;

    /* A failing sized init leaves a valid empty map. */
    mp_util_alloc_fail_after = 0;
    assert_int_equal(mp_map_u64_init(&m, 100), MP_ENOMEM);
    mp_util_alloc_fail_after = -1;
    assert_true(mp_map_u64_check(&m));
    assert_null(mp_map_u64_get(&m, 1));

    /* First put into an unallocated map fails cleanly too. */
    mp_util_alloc_fail_after = 0;
    assert_int_equal(mp_map_u64_put(&m, 1, token(1), NULL), MP_ENOMEM);
    mp_util_alloc_fail_after = -1;
    assert_int_equal(mp_map_u64_count(&m), 0);
    assert_true(mp_map_u64_check(&m));

    uint64_t k = 0;
    for (int round = 0; round < 4; round++) {
        do { /* at least once: round 0 starts unallocated, limit 0 */
            assert_int_equal(mp_map_u64_put(&m, k * 7919, token(k), NULL), MP_OK);
            k++;
        } while (m.core.count < m.core.limit);
        size_t cap = m.core.cap, count = m.core.count;
        unsigned char *slots = m.core.slots;

        mp_util_alloc_fail_after = 0;
        assert_int_equal(mp_map_u64_put(&m, k * 7919, token(k), NULL), MP_ENOMEM);
        /* Unchanged: same table, same entries, new key absent. */
        assert_int_equal(m.core.cap, cap);
        assert_ptr_equal(m.core.slots, slots);
        assert_int_equal(mp_map_u64_count(&m), count);
        assert_true(mp_map_u64_check(&m));
        assert_null(mp_map_u64_get(&m, k * 7919));
        for (uint64_t j = 0; j < k; j++) assert_ptr_equal(mp_map_u64_get(&m, j * 7919), token(j));
        /* Replacing and removing never allocate, so they still work. */
        void *old = NULL;
        assert_int_equal(mp_map_u64_put(&m, 0, token(999), &old), MP_OK);
        assert_ptr_equal(old, token(0));
        assert_int_equal(mp_map_u64_put(&m, 0, token(0), NULL), MP_OK);
        assert_ptr_equal(mp_map_u64_remove(&m, 7919), token(1));
        assert_int_equal(mp_map_u64_put(&m, 7919, token(1), NULL), MP_OK); /* below limit */
        assert_int_equal(mp_map_u64_reserve(&m, count + 1), MP_ENOMEM);
        assert_int_equal(m.core.cap, cap);
        mp_util_alloc_fail_after = -1;

        /* With memory back, the same insert grows the table. */
        assert_int_equal(mp_map_u64_put(&m, k * 7919, token(k), NULL), MP_OK);
        k++;
        assert_int_equal(m.core.cap, cap * 2);
        assert_true(mp_map_u64_check(&m));
    }
    mp_map_u64_free(&m);
}

static void test_map_str_alloc_failure(void **state)
{
    (void)state;
    mp_map_str m;
    static char keys[64][16];
    assert_int_equal(mp_map_str_init(&m, 0), MP_OK);
    size_t k = 0;
    for (int round = 0; round < 3; round++) {
        do {
            snprintf(keys[k], sizeof keys[k], "key-%zu", k);
            assert_int_equal(mp_map_str_put(&m, keys[k], strlen(keys[k]), token(k), NULL), MP_OK);
            k++;
        } while (m.core.count < m.core.limit);
        snprintf(keys[k], sizeof keys[k], "key-%zu", k);
        size_t cap = m.core.cap;
        mp_util_alloc_fail_after = 0;
        assert_int_equal(mp_map_str_put(&m, keys[k], strlen(keys[k]), token(k), NULL), MP_ENOMEM);
        assert_int_equal(m.core.cap, cap);
        assert_int_equal(mp_map_str_count(&m), k);
        assert_true(mp_map_str_check(&m));
        assert_null(mp_map_str_get(&m, keys[k], strlen(keys[k])));
        for (size_t j = 0; j < k; j++) assert_ptr_equal(mp_map_str_get(&m, keys[j], strlen(keys[j])), token(j));
        mp_util_alloc_fail_after = -1;
        assert_int_equal(mp_map_str_put(&m, keys[k], strlen(keys[k]), token(k), NULL), MP_OK);
        k++;
        assert_true(mp_map_str_check(&m));
    }
    mp_map_str_free(&m);
}

/* mp_map_obj: values hold their key (uint16_t length, then the bytes, as an
 * activation does). Differential against a reference array, over the same
 * awkward keys as the string flavour, with two value objects per key (so a
 * replacement is visible), and a quarter of the keys sharing one hash so
 * the key compare, not the hash, decides. Growth, backward-shift removal and
 * failed growth (nothing changes) are covered. */
struct kobj {
    uint16_t len;
    char key[80];
};

static uint64_t kobj_hash(size_t k)
{
    return k % 4 == 3 ? 0x5eed5eed5eedull : mp_hash64(str_keys[k], str_lens[k], 7);
}

static void test_map_obj_differential(void **state)
{
    (void)state;
    make_str_keys();
    struct kobj *objs = calloc(2 * NSTR, sizeof *objs);
    void **ref = calloc(NSTR, sizeof *ref);
    assert_non_null(objs);
    assert_non_null(ref);
    for (size_t k = 0; k < NSTR; k++) {
        for (int v = 0; v < 2; v++) {
            objs[2 * k + v].len = (uint16_t)str_lens[k];
            memcpy(objs[2 * k + v].key, str_keys[k], str_lens[k]);
        }
    }
    mp_map_obj m;
    assert_int_equal(mp_map_obj_init(&m, offsetof(struct kobj, key), offsetof(struct kobj, len)),
                     MP_OK);
    mp_prng rng;
    mp_prng_seed(&rng, 45);
    size_t count = 0;
    for (int op = 0; op < 100000; op++) {
        int phase = (op / 10000) % 2;
        uint64_t r = mp_prng_below(&rng, 100);
        size_t k = (size_t)mp_prng_below(&rng, NSTR);
        uint64_t h = kobj_hash(k);
        if (r < (phase ? 20u : 65u)) {
            void *v = &objs[2 * k + (size_t)mp_prng_below(&rng, 2)], *old = token(0);
            if (op % 97 == 0) {
                /* Failed growth or not, the map is unchanged on error. */
                mp_util_alloc_fail_after = 0;
                int rc = mp_map_obj_put(&m, h, v, &old);
                mp_util_alloc_fail_after = -1;
                if (rc == MP_ENOMEM) {
                    assert_int_equal(mp_map_obj_count(&m), count);
                    continue;
                }
                assert_int_equal(rc, MP_OK);
            } else {
                assert_int_equal(mp_map_obj_put(&m, h, v, &old), MP_OK);
            }
            assert_ptr_equal(old, ref[k]);
            if (!ref[k]) count++;
            ref[k] = v;
        } else if (r < 80) {
            assert_ptr_equal(mp_map_obj_remove(&m, h, str_keys[k], str_lens[k]), ref[k]);
            if (ref[k]) count--;
            ref[k] = NULL;
        } else {
            assert_ptr_equal(mp_map_obj_get(&m, h, str_keys[k], str_lens[k]), ref[k]);
        }
        assert_int_equal(mp_map_obj_count(&m), count);
    }
    for (size_t k = 0; k < NSTR; k++)
        assert_ptr_equal(mp_map_obj_get(&m, kobj_hash(k), str_keys[k], str_lens[k]), ref[k]);
    assert_int_equal(mp_map_obj_put(&m, 1, NULL, NULL), MP_EINVAL);
    mp_map_obj_free(&m);
    free(ref);
    free(objs);
    free_str_keys();
}

/* After reserve(n), n entries go in with no allocation at all. */
static void test_map_reserve_no_alloc(void **state)
{
    (void)state;
    mp_map_u64 m;
    assert_int_equal(mp_map_u64_init(&m, 0), MP_OK);
    assert_int_equal(mp_map_u64_reserve(&m, 5000), MP_OK);
    mp_util_alloc_fail_after = 0;
    for (uint64_t k = 0; k < 5000; k++) assert_int_equal(mp_map_u64_put(&m, k, token(k), NULL), MP_OK);
    for (uint64_t k = 0; k < 5000; k += 2) assert_ptr_equal(mp_map_u64_remove(&m, k), token(k));
    mp_util_alloc_fail_after = -1;
    assert_int_equal(mp_map_u64_count(&m), 2500);
    assert_true(mp_map_u64_check(&m));
    assert_int_equal(mp_map_u64_reserve(&m, SIZE_MAX), MP_ENOMEM);
    assert_true(mp_map_u64_check(&m));
    mp_map_u64_free(&m);
}

/* ------------------------------------------------------------------ heap */

static void test_heap_basic(void **state)
{
    (void)state;
    mp_heap h;
    mp_heap_node n[6];
    static const uint64_t keys[6] = {50, 10, 30, 10, 40, 10};
    mp_heap_init(&h);
    assert_null(mp_heap_peek(&h));
    assert_null(mp_heap_pop(&h));
    for (int i = 0; i < 6; i++) {
        mp_heap_node_init(&n[i]);
        assert_false(mp_heap_node_linked(&n[i]));
        assert_false(mp_heap_remove(&h, &n[i])); /* not armed: no-op */
        n[i].key = keys[i];
        assert_int_equal(mp_heap_insert(&h, &n[i]), MP_OK);
        assert_true(mp_heap_node_linked(&n[i]));
    }
    assert_int_equal(mp_heap_insert(&h, &n[0]), MP_EINVAL); /* already linked */
    assert_int_equal(mp_heap_count(&h), 6);
    assert_true(mp_heap_check(&h));
    /* Equal keys come out in insertion order: 1, 3, 5 (all key 10). */
    static const int order[6] = {1, 3, 5, 2, 4, 0};
    for (int i = 0; i < 6; i++) {
        assert_ptr_equal(mp_heap_peek(&h), &n[order[i]]);
        mp_heap_node *top = mp_heap_pop(&h);
        assert_ptr_equal(top, &n[order[i]]);
        assert_false(mp_heap_node_linked(top));
        assert_true(mp_heap_check(&h));
    }
    assert_null(mp_heap_pop(&h));
    /* A popped node can be re-armed. */
    n[0].key = 1;
    assert_int_equal(mp_heap_insert(&h, &n[0]), MP_OK);
    assert_true(mp_heap_remove(&h, &n[0]));
    assert_int_equal(mp_heap_count(&h), 0);
    mp_heap_free(&h);
}

/* The timeout pattern: remove nodes from the middle (leaves, inner nodes,
 * the root, the last slot) and check the remaining order. */
static void test_heap_remove_middle(void **state)
{
    (void)state;
    enum { N = 257 };
    static mp_heap_node n[N];
    mp_heap h;
    mp_prng rng;
    mp_prng_seed(&rng, 5);
    mp_heap_init(&h);
    for (int i = 0; i < N; i++) {
        mp_heap_node_init(&n[i]);
        n[i].key = mp_prng_below(&rng, 1000);
        assert_int_equal(mp_heap_insert(&h, &n[i]), MP_OK);
    }
    /* Remove by position: root, last, then a sweep of middle indices. */
    bool removed[N] = {false};
    mp_heap_node *x = h.nodes[0];
    assert_true(mp_heap_remove(&h, x));
    removed[x - n] = true;
    x = h.nodes[h.len - 1];
    assert_true(mp_heap_remove(&h, x));
    removed[x - n] = true;
    for (uint32_t idx = 1; idx < h.len; idx += 3) {
        x = h.nodes[idx];
        assert_true(mp_heap_remove(&h, x));
        assert_false(mp_heap_node_linked(x));
        assert_false(mp_heap_remove(&h, x)); /* second cancel is a no-op */
        removed[x - n] = true;
        assert_true(mp_heap_check(&h));
    }
    /* Everything left pops in (key, seq) order, and exactly those nodes. */
    size_t left = 0;
    for (int i = 0; i < N; i++) left += !removed[i];
    assert_int_equal(mp_heap_count(&h), left);
    mp_heap_node *prev = NULL;
    while ((x = mp_heap_pop(&h)) != NULL) {
        assert_false(removed[x - n]);
        if (prev) assert_true(prev->key < x->key || (prev->key == x->key && prev->seq < x->seq));
        prev = x;
        left--;
    }
    assert_int_equal(left, 0);
    mp_heap_free(&h);
}

/* 100k random inserts, pops, arbitrary removes and peeks against a linear
 * scan over the armed nodes. Keys come from a small range so ties are
 * frequent and the seq tie-break is exercised. */
static void test_heap_differential(void **state)
{
    (void)state;
    enum { POOL = 2000 };
    static mp_heap_node n[POOL];
    static uint64_t ref_seq[POOL];
    static bool armed[POOL];
    uint64_t next_seq = 0;
    size_t armed_count = 0;
    mp_heap h;
    mp_prng rng;
    mp_prng_seed(&rng, 99);
    mp_heap_init(&h);
    for (int i = 0; i < POOL; i++) {
        mp_heap_node_init(&n[i]);
        armed[i] = false;
    }
    for (int op = 0; op < 100000; op++) {
        int phase = (op / 10000) % 2;
        uint64_t r = mp_prng_below(&rng, 100);
        size_t i = (size_t)mp_prng_below(&rng, POOL);
        if (r < (phase ? 25u : 60u)) {
            if (armed[i]) {
                assert_int_equal(mp_heap_insert(&h, &n[i]), MP_EINVAL);
            } else {
                n[i].key = mp_prng_below(&rng, 200);
                assert_int_equal(mp_heap_insert(&h, &n[i]), MP_OK);
                ref_seq[i] = next_seq++;
                assert_int_equal(n[i].seq, ref_seq[i]);
                armed[i] = true;
                armed_count++;
            }
        } else if (r < 90) {
            /* Remove (cancel) a random node, armed or not. */
            assert_int_equal(mp_heap_remove(&h, &n[i]), armed[i]);
            if (armed[i]) armed_count--;
            armed[i] = false;
        } else {
            /* Reference minimum by linear scan. */
            mp_heap_node *min = NULL;
            for (int j = 0; j < POOL; j++) {
                if (!armed[j]) continue;
                if (!min || n[j].key < min->key || (n[j].key == min->key && ref_seq[j] < min->seq))
                    min = &n[j];
            }
            assert_ptr_equal(mp_heap_peek(&h), min);
            if (r < 96) {
                assert_ptr_equal(mp_heap_pop(&h), min);
                if (min) {
                    armed[min - n] = false;
                    armed_count--;
                }
            }
        }
        assert_int_equal(mp_heap_count(&h), armed_count);
        if (op % 500 == 0) assert_true(mp_heap_check(&h));
    }
    assert_true(mp_heap_check(&h));
    mp_heap_free(&h);
}

static void test_heap_alloc_failure(void **state)
{
    (void)state;
    enum { N = 100 };
    static mp_heap_node n[N];
    mp_heap h;
    mp_heap_init(&h);
    mp_util_alloc_fail_after = 0;
    mp_heap_node_init(&n[0]);
    n[0].key = 1;
    assert_int_equal(mp_heap_insert(&h, &n[0]), MP_ENOMEM);
    assert_false(mp_heap_node_linked(&n[0]));
    mp_util_alloc_fail_after = -1;

    int i = 0;
    for (int round = 0; round < 3; round++) {
        while (h.len < h.cap || h.cap == 0) {
            mp_heap_node_init(&n[i]);
            n[i].key = (uint64_t)(N - i);
            assert_int_equal(mp_heap_insert(&h, &n[i]), MP_OK);
            i++;
        }
        uint32_t cap = h.cap, len = h.len;
        mp_heap_node *top = mp_heap_peek(&h);
        mp_util_alloc_fail_after = 0;
        mp_heap_node_init(&n[i]);
        n[i].key = 0;
        assert_int_equal(mp_heap_insert(&h, &n[i]), MP_ENOMEM);
        assert_false(mp_heap_node_linked(&n[i]));
        assert_int_equal(h.cap, cap);
        assert_int_equal(h.len, len);
        assert_ptr_equal(mp_heap_peek(&h), top);
        assert_true(mp_heap_check(&h));
        mp_util_alloc_fail_after = -1;
        assert_int_equal(mp_heap_insert(&h, &n[i]), MP_OK);
        assert_ptr_equal(mp_heap_peek(&h), &n[i]);
        assert_true(mp_heap_remove(&h, &n[i]));
    }
    mp_heap_free(&h);
}

/* ------------------------------------------------------------------ list */

struct item {
    int id;
    mp_list_node link;
};

static void test_list_basic(void **state)
{
    (void)state;
    mp_list_node head;
    struct item it[5];
    mp_list_init(&head);
    assert_true(mp_list_empty(&head));
    assert_null(mp_list_pop_front(&head));
    assert_null(mp_list_front(&head));
    for (int i = 0; i < 5; i++) {
        it[i].id = i;
        mp_list_node_init(&it[i].link);
        assert_false(mp_list_node_linked(&it[i].link));
    }
    mp_list_push_back(&head, &it[2].link);
    mp_list_push_back(&head, &it[3].link);
    mp_list_push_front(&head, &it[1].link);
    mp_list_push_front(&head, &it[0].link);
    mp_list_push_back(&head, &it[4].link);
    assert_int_equal(mp_list_count(&head), 5);
    assert_true(mp_list_node_linked(&it[3].link));
    assert_ptr_equal(MP_CONTAINER_OF(mp_list_front(&head), struct item, link), &it[0]);

    mp_list_remove(&it[2].link);
    mp_list_remove(&it[2].link); /* second remove is harmless */
    assert_false(mp_list_node_linked(&it[2].link));
    static const int want[4] = {0, 1, 3, 4};
    for (int i = 0; i < 4; i++) {
        mp_list_node *node = mp_list_pop_front(&head);
        assert_non_null(node);
        assert_false(mp_list_node_linked(node));
        assert_int_equal(MP_CONTAINER_OF(node, struct item, link)->id, want[i]);
    }
    assert_true(mp_list_empty(&head));
    assert_null(mp_list_pop_front(&head));
}

/* Splicing keeps order, appends after what `to` holds, empties `from`, and
 * treats an empty `from` or `to` alike. */
static void test_list_splice(void **state)
{
    (void)state;
    mp_list_node a, b;
    struct item it[6];
    mp_list_init(&a);
    mp_list_init(&b);
    for (int i = 0; i < 6; i++) {
        it[i].id = i;
        mp_list_node_init(&it[i].link);
    }
    mp_list_splice_back(&a, &b); /* empty into empty */
    assert_true(mp_list_empty(&a) && mp_list_empty(&b));
    mp_list_push_back(&b, &it[0].link);
    mp_list_push_back(&b, &it[1].link);
    mp_list_splice_back(&a, &b); /* into empty */
    assert_true(mp_list_empty(&b));
    for (int i = 2; i < 6; i++) mp_list_push_back(&b, &it[i].link);
    mp_list_splice_back(&a, &b); /* into non-empty */
    assert_true(mp_list_empty(&b));
    mp_list_splice_back(&a, &b); /* empty into non-empty: no change */
    assert_int_equal(mp_list_count(&a), 6);
    for (int i = 0; i < 6; i++) {
        mp_list_node *node = mp_list_pop_front(&a);
        assert_non_null(node);
        assert_int_equal(MP_CONTAINER_OF(node, struct item, link)->id, i);
    }
    assert_true(mp_list_empty(&a));
    /* b is usable again after a splice */
    mp_list_push_back(&b, &it[0].link);
    assert_ptr_equal(mp_list_front(&b), &it[0].link);
}

/* Removing (and freeing) the current node while iterating is safe. */
static void test_list_foreach_safe_removal(void **state)
{
    (void)state;
    mp_list_node head, *node, *tmp;
    mp_list_init(&head);
    for (int i = 0; i < 100; i++) {
        struct item *x = malloc(sizeof *x);
        assert_non_null(x);
        x->id = i;
        mp_list_node_init(&x->link);
        mp_list_push_back(&head, &x->link);
    }
    /* Drop the even ids, freeing them on the spot (ASan watches). */
    int seen = 0;
    MP_LIST_FOREACH_SAFE(node, tmp, &head)
    {
        struct item *x = MP_CONTAINER_OF(node, struct item, link);
        assert_int_equal(x->id, seen++);
        if (x->id % 2 == 0) {
            mp_list_remove(node);
            free(x);
        }
    }
    assert_int_equal(seen, 100);
    assert_int_equal(mp_list_count(&head), 50);
    int expect = 1;
    MP_LIST_FOREACH_SAFE(node, tmp, &head)
    {
        assert_int_equal(MP_CONTAINER_OF(node, struct item, link)->id, expect);
        expect += 2;
    }
    /* Drain everything the same way; the list ends empty and consistent. */
    MP_LIST_FOREACH_SAFE(node, tmp, &head)
    {
        mp_list_remove(node);
        free(MP_CONTAINER_OF(node, struct item, link));
    }
    assert_true(mp_list_empty(&head));
    assert_ptr_equal(head.prev, &head);
}

/* ------------------------------------------------------------------- buf */

static void test_buf_append_le(void **state)
{
    (void)state;
    mp_buf b;
    mp_buf_init(&b, MP_BUF_NO_LIMIT);
    assert_null(mp_buf_tail(&b));
    assert_int_equal(mp_buf_append_u8(&b, 0xab), MP_OK);
    assert_int_equal(mp_buf_append_u16le(&b, 0x1234), MP_OK);
    assert_int_equal(mp_buf_append_u32le(&b, 0xdeadbeef), MP_OK);
    assert_int_equal(mp_buf_append_u64le(&b, 0x0102030405060708ull), MP_OK);
    assert_int_equal(mp_buf_append(&b, "xyz", 3), MP_OK);
    assert_int_equal(mp_buf_append(&b, NULL, 0), MP_OK);
    assert_int_equal(mp_buf_append(&b, NULL, 1), MP_EINVAL);
    static const uint8_t want[] = {0xab, 0x34, 0x12, 0xef, 0xbe, 0xad, 0xde, 8, 7, 6, 5, 4, 3, 2, 1,
                                   'x', 'y', 'z'};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    mp_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(mp_buf_append_u8(&b, 1), MP_OK);
    assert_int_equal(b.data[0], 1);
    mp_buf_free(&b);
    mp_buf_free(&b);
}

static void test_buf_bounds(void **state)
{
    (void)state;
    mp_buf b;
    uint8_t bytes[32];
    memset(bytes, 0x5a, sizeof bytes);
    mp_buf_init(&b, 16);
    assert_int_equal(mp_buf_append(&b, bytes, 10), MP_OK);
    assert_int_equal(mp_buf_append(&b, bytes, 7), MP_ETOOBIG);
    assert_int_equal(b.len, 10);
    assert_int_equal(mp_buf_append_u64le(&b, 1), MP_ETOOBIG);
    assert_int_equal(mp_buf_append(&b, bytes, 6), MP_OK);
    assert_int_equal(b.len, 16);
    assert_true(b.cap <= 16); /* growth clamps to max */
    assert_int_equal(mp_buf_append_u8(&b, 1), MP_ETOOBIG);
    assert_int_equal(mp_buf_reserve(&b, 1), MP_ETOOBIG);
    assert_int_equal(mp_buf_reserve(&b, SIZE_MAX), MP_ETOOBIG);
    assert_int_equal(mp_buf_reserve(&b, 0), MP_OK);
    /* Consuming makes room again within the same bound. */
    assert_int_equal(mp_buf_consume(&b, 17), MP_EINVAL);
    assert_int_equal(b.len, 16);
    assert_int_equal(mp_buf_consume(&b, 8), MP_OK);
    assert_int_equal(mp_buf_append(&b, bytes, 8), MP_OK);
    assert_int_equal(b.len, 16);
    mp_buf_free(&b);

    /* max 0 stores nothing, and never allocates. */
    mp_buf_init(&b, 0);
    assert_int_equal(mp_buf_append_u8(&b, 1), MP_ETOOBIG);
    assert_int_equal(mp_buf_append(&b, bytes, 0), MP_OK);
    assert_int_equal(mp_buf_consume(&b, 0), MP_OK);
    mp_buf_reset(&b);
    assert_null(b.data);
    mp_buf_free(&b);

    /* Unbounded: a size that cannot be represented is still refused. */
    mp_buf_init(&b, MP_BUF_NO_LIMIT);
    assert_int_equal(mp_buf_append_u8(&b, 1), MP_OK);
    assert_int_equal(mp_buf_reserve(&b, SIZE_MAX), MP_ETOOBIG);
    mp_util_alloc_fail_after = 0; /* a real attempt would trip ASan's size check */
    assert_int_equal(mp_buf_reserve(&b, SIZE_MAX - 1), MP_ENOMEM);
    mp_util_alloc_fail_after = -1;
    assert_int_equal(b.len, 1);
    mp_buf_free(&b);
}

static void test_buf_consume_and_compaction(void **state)
{
    (void)state;
    mp_buf b;
    uint8_t src[256];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)i;
    mp_buf_init(&b, MP_BUF_NO_LIMIT);
    assert_int_equal(mp_buf_append(&b, src, 64), MP_OK);
    uint8_t *block = b.data;
    size_t block_size = b.cap;
    /* Consume is O(1): the data pointer advances, nothing moves. */
    assert_int_equal(mp_buf_consume(&b, 40), MP_OK);
    assert_ptr_equal(b.data, block + 40);
    assert_int_equal(b.len, 24);
    assert_memory_equal(b.data, src + 40, 24);
    /* Filling past the end with a small live part slides it back into the
     * same block instead of allocating. */
    size_t fill = block_size - 40 - 24;
    assert_int_equal(mp_buf_append(&b, src, fill), MP_OK);
    assert_int_equal(mp_buf_append(&b, src, 10), MP_OK);
    assert_ptr_equal(b.data, block);
    assert_int_equal(b.head, 0);
    assert_int_equal(b.len, 24 + fill + 10);
    assert_memory_equal(b.data, src + 40, 24);
    assert_memory_equal(b.data + 24 + fill, src, 10);
    /* Consuming everything rewinds to the block start for free. */
    assert_int_equal(mp_buf_consume(&b, b.len), MP_OK);
    assert_ptr_equal(b.data, block);
    assert_int_equal(b.cap, block_size);

    /* Large live part, small dead front: growth copies only the live bytes. */
    assert_int_equal(mp_buf_append(&b, src, block_size), MP_OK);
    assert_int_equal(mp_buf_consume(&b, 3), MP_OK);
    assert_int_equal(mp_buf_append(&b, src, 100), MP_OK);
    assert_int_equal(b.head, 0);
    assert_memory_equal(b.data, src + 3, block_size - 3);
    assert_memory_equal(b.data + block_size - 3, src, 100);

    /* Writing straight into the tail. */
    mp_buf_reset(&b);
    assert_int_equal(mp_buf_reserve(&b, 300), MP_OK);
    assert_true(b.cap - b.len >= 300);
    memcpy(mp_buf_tail(&b), src, 200);
    assert_int_equal(mp_buf_commit(&b, 200), MP_OK);
    assert_int_equal(mp_buf_commit(&b, b.cap - b.len + 1), MP_EINVAL);
    assert_int_equal(b.len, 200);
    assert_memory_equal(b.data, src, 200);
    mp_buf_free(&b);
}

/* Random appends and consumes against a flat reference array. */
static void test_buf_differential(void **state)
{
    (void)state;
    enum { MAX = 5000 };
    static uint8_t ref[MAX], chunk[600];
    size_t ref_len = 0;
    mp_buf b;
    mp_prng rng;
    mp_prng_seed(&rng, 17);
    mp_buf_init(&b, MAX);
    for (int op = 0; op < 20000; op++) {
        uint64_t r = mp_prng_below(&rng, 100);
        if (r < 55) {
            size_t n = (size_t)mp_prng_below(&rng, sizeof chunk);
            for (size_t i = 0; i < n; i++) chunk[i] = (uint8_t)mp_prng_next(&rng);
            int rc = mp_buf_append(&b, chunk, n);
            if (ref_len + n > MAX) {
                assert_int_equal(rc, MP_ETOOBIG);
            } else {
                assert_int_equal(rc, MP_OK);
                memcpy(ref + ref_len, chunk, n);
                ref_len += n;
            }
        } else if (r < 60) {
            uint32_t v = (uint32_t)mp_prng_next(&rng);
            int rc = mp_buf_append_u32le(&b, v);
            if (ref_len + 4 > MAX) {
                assert_int_equal(rc, MP_ETOOBIG);
            } else {
                assert_int_equal(rc, MP_OK);
                for (int i = 0; i < 4; i++) ref[ref_len++] = (uint8_t)(v >> (8 * i));
            }
        } else {
            size_t n = (size_t)mp_prng_below(&rng, ref_len + 2);
            int rc = mp_buf_consume(&b, n);
            if (n > ref_len) {
                assert_int_equal(rc, MP_EINVAL);
            } else {
                assert_int_equal(rc, MP_OK);
                memmove(ref, ref + n, ref_len - n);
                ref_len -= n;
            }
        }
        assert_int_equal(b.len, ref_len);
        assert_true(b.len <= b.cap && b.head + b.cap <= MAX);
        if (ref_len) assert_memory_equal(b.data, ref, ref_len);
    }
    mp_buf_free(&b);
}

static void test_buf_alloc_failure(void **state)
{
    (void)state;
    mp_buf b;
    uint8_t src[200];
    memset(src, 7, sizeof src);
    mp_buf_init(&b, MP_BUF_NO_LIMIT);
    mp_util_alloc_fail_after = 0;
    assert_int_equal(mp_buf_append(&b, src, 10), MP_ENOMEM);
    assert_int_equal(b.len, 0);
    assert_null(b.data);
    mp_util_alloc_fail_after = -1;
    assert_int_equal(mp_buf_append(&b, src, 10), MP_OK);
    /* Growth from a block with a consumed front, failing: unchanged. */
    assert_int_equal(mp_buf_consume(&b, 2), MP_OK);
    uint8_t *data = b.data;
    size_t cap = b.cap;
    mp_util_alloc_fail_after = 0;
    assert_int_equal(mp_buf_append(&b, src, 150), MP_ENOMEM);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, src, 8);
    mp_util_alloc_fail_after = -1;
    assert_int_equal(mp_buf_append(&b, src, 150), MP_OK);
    assert_int_equal(b.len, 158);
    mp_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_hash_known_answers, reset_hook),
        cmocka_unit_test_teardown(test_hash_alignment_independent, reset_hook),
        cmocka_unit_test_teardown(test_hash_sensitivity, reset_hook),
        cmocka_unit_test_teardown(test_hash_distribution, reset_hook),
        cmocka_unit_test_teardown(test_hash_u64_avalanche, reset_hook),
        cmocka_unit_test_teardown(test_map_u64_basic, reset_hook),
        cmocka_unit_test_teardown(test_map_u64_differential, reset_hook),
        cmocka_unit_test_teardown(test_map_str_differential, reset_hook),
        cmocka_unit_test_teardown(test_map_str_key_ownership, reset_hook),
        cmocka_unit_test_teardown(test_map_u64_alloc_failure, reset_hook),
        cmocka_unit_test_teardown(test_map_str_alloc_failure, reset_hook),
        cmocka_unit_test_teardown(test_map_obj_differential, reset_hook),
        cmocka_unit_test_teardown(test_map_reserve_no_alloc, reset_hook),
        cmocka_unit_test_teardown(test_heap_basic, reset_hook),
        cmocka_unit_test_teardown(test_heap_remove_middle, reset_hook),
        cmocka_unit_test_teardown(test_heap_differential, reset_hook),
        cmocka_unit_test_teardown(test_heap_alloc_failure, reset_hook),
        cmocka_unit_test_teardown(test_list_basic, reset_hook),
        cmocka_unit_test_teardown(test_list_splice, reset_hook),
        cmocka_unit_test_teardown(test_list_foreach_safe_removal, reset_hook),
        cmocka_unit_test_teardown(test_buf_append_le, reset_hook),
        cmocka_unit_test_teardown(test_buf_bounds, reset_hook),
        cmocka_unit_test_teardown(test_buf_consume_and_compaction, reset_hook),
        cmocka_unit_test_teardown(test_buf_differential, reset_hook),
        cmocka_unit_test_teardown(test_buf_alloc_failure, reset_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
