/*
 * Tests for the shared latency histogram (src/util/hist.c).
 *
 * The percentiles are checked differentially against a sorted copy of the
 * samples (a fixed-seed stream spanning 1 ns .. 200 s): every reported
 * quantile must be within 1/128 of the true one (the documented 0.8%), and
 * count_le must never overstate and be exact at bucket edges. The bucket
 * layout is checked to tile [0, MP_HIST_MAX_NS] without gap or overlap.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "moonpool/units.h"
#include "util/hist.h"
#include "util/prng.h"

static void test_hist_empty(void **state)
{
    (void)state;
    mp_hist h;
    mp_hist_init(&h);
    assert_int_equal(h.count, 0);
    assert_int_equal(mp_hist_quantile_ns(&h, 0.5), 0);
    assert_int_equal(mp_hist_count_le(&h, UINT64_MAX), 0);
}

static void test_hist_buckets_tile(void **state)
{
    (void)state;
    uint64_t next = 0;
    for (uint32_t i = 0; i < MP_HIST_BUCKETS; i++) {
        uint64_t lo, hi;
        mp_hist_bucket_range(i, &lo, &hi);
        assert_int_equal(lo, next);
        assert_true(hi >= lo);
        /* width at most 1/64 of the lower edge (exact below 128) */
        if (lo >= MP_HIST_EXACT) assert_true((hi - lo + 1) * MP_HIST_SUB <= lo);
        assert_int_equal(mp_hist_bucket(lo), i);
        assert_int_equal(mp_hist_bucket(hi), i);
        next = hi + 1;
    }
    assert_int_equal(next - 1, MP_HIST_MAX_NS);
    assert_true(MP_HIST_MAX_NS >= 100 * MP_NS_PER_SEC);
    assert_int_equal(mp_hist_bucket(UINT64_MAX), MP_HIST_BUCKETS - 1);
}

static void test_hist_exact_values(void **state)
{
    (void)state;
    mp_hist h;
    mp_hist_init(&h);
    for (int i = 0; i < 10; i++) mp_hist_record(&h, 1234567);
    /* clamped to [min, max]: identical samples report themselves */
    assert_int_equal(mp_hist_quantile_ns(&h, 0.5), 1234567);
    assert_int_equal(mp_hist_quantile_ns(&h, 0.99), 1234567);
    assert_int_equal(h.sum_ns, 12345670);
    mp_hist_record(&h, 5);
    assert_int_equal(mp_hist_quantile_ns(&h, 0), 5);
    assert_int_equal(h.min_ns, 5);
    assert_int_equal(mp_hist_count_le(&h, 5), 1);
    assert_int_equal(mp_hist_count_le(&h, 4), 0);
    assert_int_equal(mp_hist_count_le(&h, 1234567), 11);
}

static void test_hist_overflow(void **state)
{
    (void)state;
    mp_hist h;
    mp_hist_init(&h);
    mp_hist_record(&h, 1000 * MP_NS_PER_SEC);
    mp_hist_record(&h, UINT64_MAX);
    assert_int_equal(h.overflow, 2);
    assert_int_equal(h.max_ns, UINT64_MAX);
    assert_int_equal(h.sum_ns, UINT64_MAX); /* saturates */
    assert_int_equal(h.b[MP_HIST_BUCKETS - 1], 2);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_hist_differential(void **state)
{
    (void)state;
    enum { N = 20000 };
    uint64_t *v = malloc(N * sizeof *v);
    assert_non_null(v);
    mp_hist h, a, b;
    mp_hist_init(&h);
    mp_hist_init(&a);
    mp_hist_init(&b);
    mp_prng r;
    mp_prng_seed(&r, 42);
    for (int i = 0; i < N; i++) {
        /* log-uniform over 1 ns .. ~200 s */
        uint32_t bits = (uint32_t)(mp_prng_next(&r) % 38);
        uint64_t x = (mp_prng_next(&r) & ((UINT64_C(1) << bits) - 1)) | (UINT64_C(1) << bits);
        v[i] = x;
        mp_hist_record(&h, x);
        mp_hist_record(i % 2 ? &a : &b, x);
    }
    mp_hist_merge(&a, &b);
    assert_memory_equal(&a, &h, sizeof h);
    qsort(v, N, sizeof *v, cmp_u64);
    static const double qs[] = { 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0 };
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        size_t rank = (size_t)(qs[k] * N + 0.999999);
        uint64_t want = v[rank - 1], got = mp_hist_quantile_ns(&h, qs[k]);
        uint64_t diff = got > want ? got - want : want - got;
        assert_true(diff * 128 <= want);
    }
    /* count_le never overstates, and is exact at bucket upper edges */
    for (uint32_t i = 0; i < MP_HIST_BUCKETS; i += 37) {
        uint64_t lo, hi;
        mp_hist_bucket_range(i, &lo, &hi);
        size_t exact = 0;
        while (exact < N && v[exact] <= hi) exact++;
        assert_int_equal(mp_hist_count_le(&h, hi), exact);
        size_t below = 0;
        uint64_t mid = lo + (hi - lo) / 2;
        while (below < N && v[below] <= mid) below++;
        assert_true(mp_hist_count_le(&h, mid) <= below);
    }
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_empty),
        cmocka_unit_test(test_hist_buckets_tile),
        cmocka_unit_test(test_hist_exact_values),
        cmocka_unit_test(test_hist_overflow),
        cmocka_unit_test(test_hist_differential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
