/*
 * mp_hash64: a wyhash-style hash written for moonpool.
 *
 * Why this shape: the directory hashes every actor id on every call that
 * misses the local cache, and the string map hashes every lookup, so the hash
 * must be cheap for short keys (actor ids are mostly 10..60 bytes) and still
 * well distributed. The wyhash structure gives that: inputs up to 16 bytes are
 * read as two overlapping words with no loop, longer inputs are folded 16 or
 * 48 bytes at a time through a 64x64->128 multiply whose two halves are
 * xor-ed together ("mum"). The final mum mixes in the length, so inputs that
 * differ only by trailing zero bytes still differ.
 *
 * Stability: every read is an explicit little-endian decode (memcpy + byte
 * swap on big-endian hosts), and the 128-bit product has a portable fallback
 * for compilers without __int128 that gives bit-identical results. The
 * constants below are the wyhash default secret (odd, balanced-bit primes);
 * they are part of the contract and must never change.
 */
#include "util/hash.h"

#include <string.h>

static const uint64_t secret[4] = {
    0x2d358dccaa6c78a5ull,
    0x8bb84b93962eacc9ull,
    0x4b33a62ed433d4a3ull,
    0x4d5a2da51de1aa47ull,
};

/* Full 64x64 -> 128 multiply; *a gets the low half, *b the high half. */
static inline void mum(uint64_t *a, uint64_t *b)
{
#if defined(__SIZEOF_INT128__)
    __uint128_t r = (__uint128_t)*a * *b;
    *a = (uint64_t)r;
    *b = (uint64_t)(r >> 64);
#else
    /* Schoolbook on 32-bit limbs; exact, so results match the fast path. */
    uint64_t ha = *a >> 32, hb = *b >> 32, la = (uint32_t)*a, lb = (uint32_t)*b;
    uint64_t rh = ha * hb, rm0 = ha * lb, rm1 = hb * la, rl = la * lb;
    uint64_t t = rl + (rm0 << 32), c = t < rl;
    uint64_t lo = t + (rm1 << 32);
    c += lo < t;
    uint64_t hi = rh + (rm0 >> 32) + (rm1 >> 32) + c;
    *a = lo;
    *b = hi;
#endif
}

static inline uint64_t mix(uint64_t a, uint64_t b)
{
    mum(&a, &b);
    return a ^ b;
}

static inline uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint64_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

/* 1..3 bytes: first, middle and last byte cover every input byte. */
static inline uint64_t rd_small(const uint8_t *p, size_t k)
{
    return ((uint64_t)p[0] << 16) | ((uint64_t)p[k >> 1] << 8) | p[k - 1];
}

uint64_t mp_hash64(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t a, b;

    seed ^= mix(seed ^ secret[0], secret[1]);
    if (len <= 16) {
        if (len >= 4) {
            /* Two overlapping 8-byte windows built from 4-byte reads. */
            size_t off = (len >> 3) << 2;
            a = (rd32(p) << 32) | rd32(p + off);
            b = (rd32(p + len - 4) << 32) | rd32(p + len - 4 - off);
        } else if (len > 0) {
            a = rd_small(p, len);
            b = 0;
        } else {
            a = b = 0;
        }
    } else {
        size_t i = len;
        if (i >= 48) {
            /* Three independent lanes keep the multiplier pipeline busy. */
            uint64_t s1 = seed, s2 = seed;
            do {
                seed = mix(rd64(p) ^ secret[1], rd64(p + 8) ^ seed);
                s1 = mix(rd64(p + 16) ^ secret[2], rd64(p + 24) ^ s1);
                s2 = mix(rd64(p + 32) ^ secret[3], rd64(p + 40) ^ s2);
                p += 48;
                i -= 48;
            } while (i >= 48);
            seed ^= s1 ^ s2;
        }
        while (i > 16) {
            seed = mix(rd64(p) ^ secret[1], rd64(p + 8) ^ seed);
            p += 16;
            i -= 16;
        }
        /* The last 16 bytes of the input, overlapping what was consumed;
         * safe because len > 16. */
        a = rd64(p + i - 16);
        b = rd64(p + i - 8);
    }
    a ^= secret[1];
    b ^= seed;
    mum(&a, &b);
    return mix(a ^ secret[0] ^ (uint64_t)len, b ^ secret[1]);
}
