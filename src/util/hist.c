/*
 * The shared log-linear latency histogram (design in hist.h). Kept free of
 * floating point on the recording path: a sample is a clz, two shifts and
 * an increment, so drivers that record every call do not show up in their
 * own profile.
 */
#include "util/hist.h"

#include <assert.h>
#include <string.h>

#include "moonpool/units.h"

void mp_hist_init(mp_hist *h)
{
    assert(h);
    memset(h, 0, sizeof *h);
    h->min_ns = UINT64_MAX;
}

uint32_t mp_hist_bucket(uint64_t ns)
{
    if (ns < MP_HIST_EXACT) return (uint32_t)ns;
    if (ns > MP_HIST_MAX_NS) return MP_HIST_BUCKETS - 1u;
    uint32_t e = 63u - (uint32_t)__builtin_clzll(ns); /* MIN_EXP..MAX_EXP */
    assert(e >= MP_HIST_MIN_EXP && e <= MP_HIST_MAX_EXP);
    uint32_t sub = (uint32_t)(ns >> (e - MP_HIST_SUB_BITS)) & (MP_HIST_SUB - 1u);
    uint32_t i = MP_HIST_EXACT + (e - MP_HIST_MIN_EXP) * MP_HIST_SUB + sub;
    assert(i < MP_HIST_BUCKETS);
    return i;
}

void mp_hist_bucket_range(uint32_t i, uint64_t *lo, uint64_t *hi)
{
    assert(i < MP_HIST_BUCKETS && lo && hi);
    if (i < MP_HIST_EXACT) {
        *lo = *hi = i;
        return;
    }
    uint32_t e = (i - MP_HIST_EXACT) / MP_HIST_SUB + MP_HIST_MIN_EXP;
    uint64_t sub = (i - MP_HIST_EXACT) % MP_HIST_SUB;
    uint64_t width = UINT64_C(1) << (e - MP_HIST_SUB_BITS);
    *lo = (UINT64_C(1) << e) + sub * width;
    *hi = *lo + width - 1u;
    assert(*lo <= *hi && *hi <= MP_HIST_MAX_NS);
}

void mp_hist_record(mp_hist *h, uint64_t ns)
{
    assert(h);
    h->b[mp_hist_bucket(ns)]++;
    h->count++;
    h->sum_ns = h->sum_ns > UINT64_MAX - ns ? UINT64_MAX : h->sum_ns + ns;
    if (ns < h->min_ns) h->min_ns = ns;
    if (ns > h->max_ns) h->max_ns = ns;
    if (ns > MP_HIST_MAX_NS) h->overflow++;
}

void mp_hist_merge(mp_hist *dst, const mp_hist *src)
{
    assert(dst && src);
    for (uint32_t i = 0; i < MP_HIST_BUCKETS; i++) dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum_ns = dst->sum_ns > UINT64_MAX - src->sum_ns ? UINT64_MAX : dst->sum_ns + src->sum_ns;
    if (src->min_ns < dst->min_ns) dst->min_ns = src->min_ns;
    if (src->max_ns > dst->max_ns) dst->max_ns = src->max_ns;
    dst->overflow += src->overflow;
}

uint64_t mp_hist_quantile_ns(const mp_hist *h, double q)
{
    assert(h);
    if (h->count == 0) return 0;
    if (!(q > 0)) return h->min_ns; /* also NaN */
    if (q >= 1) return h->max_ns;
    /* rank = ceil(q * count), at least 1 */
    double r = q * (double)h->count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r) rank++;
    if (rank == 0) rank = 1;
    uint64_t acc = 0;
    for (uint32_t i = 0; i < MP_HIST_BUCKETS; i++) {
        acc += h->b[i];
        if (acc < rank) continue;
        uint64_t lo, hi;
        mp_hist_bucket_range(i, &lo, &hi);
        uint64_t mid = lo + (hi - lo) / 2u;
        if (mid < h->min_ns) mid = h->min_ns;
        if (mid > h->max_ns) mid = h->max_ns;
        return mid;
    }
    assert(0 && "bucket sum below count");
    return h->max_ns;
}

double mp_hist_quantile_us(const mp_hist *h, double q)
{
    return (double)mp_hist_quantile_ns(h, q) / (double)MP_NS_PER_US;
}

double mp_hist_quantile_ms(const mp_hist *h, double q)
{
    return (double)mp_hist_quantile_ns(h, q) / (double)MP_NS_PER_MS;
}

uint64_t mp_hist_count_le(const mp_hist *h, uint64_t bound_ns)
{
    assert(h);
    if (h->count == 0) return 0;
    if (bound_ns >= h->max_ns) return h->count;
    uint64_t acc = 0;
    for (uint32_t i = 0; i < MP_HIST_BUCKETS; i++) {
        uint64_t lo, hi;
        mp_hist_bucket_range(i, &lo, &hi);
        if (hi > bound_ns) break;
        acc += h->b[i];
    }
    assert(acc <= h->count);
    return acc;
}
