/*
 * Growable byte buffer with a hard size bound, for connection send and
 * receive queues and message encoding.
 *
 * Layout: the content is data[0..len); `cap - len` more bytes are writable
 * after it; `head` bytes that were already consumed sit in front of data in
 * the same allocation. Consuming from the front only advances `data` (O(1)),
 * so a stream decoder eating one frame at a time never memmoves the rest.
 * The dead front space is reclaimed when it is cheap: immediately when the
 * buffer empties, and on growth by sliding the content back when the content
 * is no larger than the space it frees (so the copy is paid for by that
 * space); otherwise a growth moves only the live bytes into the new block.
 *
 * `max` bounds len: an append past it fails with MP_ETOOBIG and leaves the
 * buffer unchanged, which is how a peer announcing a 4 GiB frame is refused
 * before anything is allocated. Capacity grows geometrically, clamped to max.
 */
#ifndef MP_UTIL_BUF_H
#define MP_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "moonpool/status.h"

#define MP_BUF_NO_LIMIT SIZE_MAX

typedef struct mp_buf {
    uint8_t *data; /* first content byte (NULL before the first allocation) */
    size_t len;    /* content bytes */
    size_t cap;    /* bytes usable from data: content plus free tail */
    size_t head;   /* consumed bytes in front of data, in the same block */
    size_t max;    /* len never exceeds this */
} mp_buf;

/* An empty buffer that may hold up to max bytes (MP_BUF_NO_LIMIT for none;
 * 0 means nothing may be stored). Allocates nothing. */
void mp_buf_init(mp_buf *b, size_t max);
/* Release memory; the buffer is empty and reusable (max kept). */
void mp_buf_free(mp_buf *b);
/* Ensure at least `extra` writable bytes after the content. MP_ETOOBIG if
 * len + extra > max, MP_ENOMEM if allocation fails; unchanged on error. */
int mp_buf_reserve(mp_buf *b, size_t extra);
/* Append n bytes (p may be NULL only if n == 0). Errors as reserve. */
int mp_buf_append(mp_buf *b, const void *p, size_t n);
int mp_buf_append_u8(mp_buf *b, uint8_t v);
int mp_buf_append_u16le(mp_buf *b, uint16_t v);
int mp_buf_append_u32le(mp_buf *b, uint32_t v);
int mp_buf_append_u64le(mp_buf *b, uint64_t v);
/* Writable tail (after reserve) and commit of bytes written there, e.g. by
 * a read callback. commit fails with MP_EINVAL beyond the reserved room. */
static inline uint8_t *mp_buf_tail(mp_buf *b)
{
    return b->data ? b->data + b->len : NULL; /* NULL + 0 is undefined */
}
int mp_buf_commit(mp_buf *b, size_t n);
/* Drop n bytes from the front. MP_EINVAL (and no change) if n > len. */
int mp_buf_consume(mp_buf *b, size_t n);
/* Drop all content, keep the memory. */
void mp_buf_reset(mp_buf *b);

#endif
