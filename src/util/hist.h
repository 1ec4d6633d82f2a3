/*
 * One latency histogram for the whole project: log-linear buckets in the
 * HdrHistogram style.
 *
 * Why log-linear: latencies span six orders of magnitude (a local call takes
 * microseconds, a persist behind a slow disk or a retried call seconds), and
 * what an operator reads is a percentile to about two significant digits.
 * Power-of-two buckets (what the node used first) round every percentile up
 * to the next power of two, so every node printed the same "8.2/32.8 ms";
 * keeping every sample and sorting (what the demo did) costs memory that
 * grows with the run. Log-linear buckets cost one increment per sample, a
 * fixed 16 KiB, and bound the relative error:
 *
 *   - values below 128 ns have a bucket each (exact);
 *   - each power of two [2^e, 2^(e+1)) above that is split into
 *     MP_HIST_SUB = 64 equal sub-buckets, so a bucket is at most 1/64 of its
 *     lower edge wide and its midpoint is within 0.8% of any value in it;
 *   - the top tracked power of two is [2^37, 2^38) ns (137 s .. 275 s), so
 *     1 µs .. 100 s is covered with room; larger values land in the last
 *     bucket and are counted in `overflow` (max_ns keeps the exact largest).
 *
 * Percentiles return a bucket's midpoint clamped to [min_ns, max_ns], so a
 * histogram of identical samples reports that exact value. Count, sum, min
 * and max are exact. mp_hist_count_le gives cumulative counts at any bound,
 * which is what a Prometheus histogram exposes.
 *
 * Plain data, no allocation, no locking: the owner records on one thread.
 * Two histograms merge by adding buckets (mp_hist_merge).
 */
#ifndef MP_UTIL_HIST_H
#define MP_UTIL_HIST_H

#include <stdint.h>

#define MP_HIST_EXACT 128u   /* values below get one bucket each */
#define MP_HIST_SUB_BITS 6u
#define MP_HIST_SUB (1u << MP_HIST_SUB_BITS) /* sub-buckets per power of 2 */
#define MP_HIST_MIN_EXP 7u                   /* 2^7 = MP_HIST_EXACT */
#define MP_HIST_MAX_EXP 37u                  /* 2^38 ns = 275 s: top edge */
#define MP_HIST_BUCKETS \
    (MP_HIST_EXACT + (MP_HIST_MAX_EXP - MP_HIST_MIN_EXP + 1u) * MP_HIST_SUB)
/* The largest value with its own bucket; larger ones count as overflow. */
#define MP_HIST_MAX_NS ((UINT64_C(1) << (MP_HIST_MAX_EXP + 1u)) - 1u)

typedef struct mp_hist {
    uint64_t count;    /* samples recorded */
    uint64_t sum_ns;   /* their sum (saturates at UINT64_MAX) */
    uint64_t min_ns;   /* UINT64_MAX while empty */
    uint64_t max_ns;   /* 0 while empty */
    uint64_t overflow; /* samples above MP_HIST_MAX_NS (in the last bucket) */
    uint64_t b[MP_HIST_BUCKETS];
} mp_hist;

/* Empty h. */
void mp_hist_init(mp_hist *h);

/* Record one sample of `ns` nanoseconds. */
void mp_hist_record(mp_hist *h, uint64_t ns);

/* Add every sample of src to dst. */
void mp_hist_merge(mp_hist *dst, const mp_hist *src);

/* The q-quantile (0 <= q <= 1) in nanoseconds, to within 0.8%: the midpoint
 * of the bucket holding the ceil(q*count)-th smallest sample, clamped to
 * [min_ns, max_ns]. 0 when h is empty. */
uint64_t mp_hist_quantile_ns(const mp_hist *h, double q);

/* Same in microseconds / milliseconds, as doubles for printing. */
double mp_hist_quantile_us(const mp_hist *h, double q);
double mp_hist_quantile_ms(const mp_hist *h, double q);

/* How many samples are <= bound_ns, counting a bucket only when all of it
 * is <= bound_ns (so the answer never overstates; it is exact whenever
 * bound_ns + 1 is a bucket edge, e.g. any value below 128 or a power of two
 * times a multiple of 1/64 of it). Monotone in bound_ns; equals count for
 * bound_ns >= max_ns. */
uint64_t mp_hist_count_le(const mp_hist *h, uint64_t bound_ns);

/* The bucket index of a value, and a bucket's [lo, hi] range (inclusive);
 * exposed for tests. */
uint32_t mp_hist_bucket(uint64_t ns);
void mp_hist_bucket_range(uint32_t i, uint64_t *lo, uint64_t *hi);

#endif
