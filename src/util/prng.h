/*
 * Small, fast, seedable pseudo-random generator: xoshiro256** seeded through
 * splitmix64. Deterministic across platforms (only 64-bit integer ops), so a
 * simulation seed means the same thing everywhere. Not for cryptography.
 */
#ifndef MP_UTIL_PRNG_H
#define MP_UTIL_PRNG_H

#include <stdint.h>

typedef struct mp_prng {
    uint64_t s[4];
} mp_prng;

static inline uint64_t mp_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Mix several words into one seed (for deriving independent streams). */
static inline uint64_t mp_mix64(uint64_t a, uint64_t b)
{
    uint64_t x = a ^ (b * 0x9e3779b97f4a7c15ull);
    return mp_splitmix64(&x);
}

static inline void mp_prng_seed(mp_prng *p, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) p->s[i] = mp_splitmix64(&x);
}

static inline uint64_t mp_rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t mp_prng_next(mp_prng *p)
{
    uint64_t *s = p->s;
    uint64_t result = mp_rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = mp_rotl64(s[3], 45);
    return result;
}

/* Uniform in [0, n) by rejection (Lemire's method), no modulo bias. */
static inline uint64_t mp_prng_below(mp_prng *p, uint64_t n)
{
    if (n == 0) return 0;
    for (;;) {
        uint64_t x = mp_prng_next(p);
        __uint128_t m = (__uint128_t)x * n;
        uint64_t lo = (uint64_t)m;
        if (lo >= n || lo >= (-n) % n) return (uint64_t)(m >> 64);
    }
}

/* Uniform double in [0, 1) with 53 bits. */
static inline double mp_prng_unit(mp_prng *p)
{
    return (double)(mp_prng_next(p) >> 11) * (1.0 / 9007199254740992.0);
}

/* Bernoulli trial. */
static inline int mp_prng_chance(mp_prng *p, double prob)
{
    if (prob <= 0) return 0;
    if (prob >= 1) return 1;
    return mp_prng_unit(p) < prob;
}

#endif
