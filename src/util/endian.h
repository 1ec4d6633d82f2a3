/*
 * Little-endian (and big-endian) byte order helpers: the one copy.
 *
 * Why: moonpool's wire formats (frames, HELLO, directory payloads) are
 * little-endian by definition, independent of the host. Reading and writing
 * byte by byte with shifts is portable, needs no alignment, and compilers
 * turn it into a single load or store (plus bswap on a big-endian host), so
 * there is no reason for memcpy tricks or htole*. The copies that each file
 * used to carry differed only in spelling; one set keeps them identical.
 *
 * mp_put_le16/32/64(p, v) write v at p (2/4/8 bytes); mp_get_le16/32/64(p)
 * read it back. p need not be aligned. The caller owns the bounds check.
 * The big-endian 64-bit pair is for PostgreSQL's binary format (network
 * order).
 */
#ifndef MP_UTIL_ENDIAN_H
#define MP_UTIL_ENDIAN_H

#include <stdint.h>

static inline void mp_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void mp_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void mp_put_le64(uint8_t *p, uint64_t v)
{
    mp_put_le32(p, (uint32_t)v);
    mp_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t mp_get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (uint16_t)(p[1] << 8));
}

static inline uint32_t mp_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t mp_get_le64(const uint8_t *p)
{
    return (uint64_t)mp_get_le32(p) | (uint64_t)mp_get_le32(p + 4) << 32;
}

static inline void mp_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint64_t mp_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

#endif
