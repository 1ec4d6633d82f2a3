/*
 * Stable 64-bit hashing.
 *
 * mp_hash64 picks directory partition owners on every node of a cluster, so
 * its output is part of the wire contract: the same bytes and seed must give
 * the same value on every platform, compiler and run, forever. It therefore
 * uses only 64-bit integer arithmetic, reads input as little-endian words
 * through memcpy (no alignment or endianness assumptions), and never looks at
 * pointer values. Changing the algorithm or its constants is a protocol
 * change; the unit test pins known answers to catch accidental edits.
 *
 * The construction follows wyhash (multiply-then-fold of 128-bit products,
 * with wyhash's published secret constants): one 64x64->128 multiply per 16
 * input bytes, about as fast as portable C hashing gets, with SMHasher-class
 * distribution. It is not promised to be bit-compatible with any upstream
 * wyhash release: the vectors pinned in tests/unit/test_util.c define it.
 *
 * mp_hash_u64 is a bijective integer mixer (Pelle Evensen's rrxmrrxmsx_0):
 * every input bit affects every output bit, and because it is a permutation
 * of the 64-bit space, two keys collide after mixing iff they are equal. The
 * u64 hash map relies on that to store only the mixed value.
 *
 * Not cryptographic. A seed chosen at random (through mp_env) makes crafted
 * collisions harder but is not a proof against a determined adversary.
 */
#ifndef MP_UTIL_HASH_H
#define MP_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Default seed used where no per-instance seed is given. Part of the stable
 * contract, like the algorithm. */
#define MP_HASH_SEED_DEFAULT 0x6d6f6f6e706f6f6cull /* "moonpool" */

/* Hash `len` bytes at `data` (may be NULL when len == 0). */
uint64_t mp_hash64(const void *data, size_t len, uint64_t seed);

/* Bijective 64-bit mixer: strong avalanche, mp_hash_u64(a) == mp_hash_u64(b)
 * iff a == b. Inline because it sits on the u64 map's hot path. */
static inline uint64_t mp_hash_u64(uint64_t x)
{
    /* x ^= rotr(x,25) ^ rotr(x,50) is invertible over GF(2): the polynomial
     * 1 + t^25 + t^50 is odd at t = 1, hence coprime with t^64 - 1. The
     * multiplies are by odd constants and x ^ (x >> 28) is invertible, so the
     * whole function is a permutation. */
    x ^= ((x >> 25) | (x << 39)) ^ ((x >> 50) | (x << 14));
    x *= 0xa24baed4963ee407ull;
    x ^= ((x >> 24) | (x << 40)) ^ ((x >> 49) | (x << 15));
    x *= 0x9fb21c651e98df25ull;
    return x ^ (x >> 28);
}

#endif
