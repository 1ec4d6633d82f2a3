/*
 * Growable bounded byte buffer (see buf.h for the layout and the
 * reclamation policy).
 *
 * Growth policy: double the block (at least 64 bytes, at least what is
 * needed, at most max), so appends are amortised O(1). When the block has
 * consumed space in front, growth allocates a fresh block and copies only the
 * live bytes rather than realloc'ing, which would copy the dead front too.
 * Little-endian appends are written byte by byte, so the encoding does not
 * depend on the host.
 */
#include "util/buf.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

#define MIN_ALLOC 64

void mp_buf_init(mp_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = b->head = 0;
    b->max = max;
}

void mp_buf_free(mp_buf *b)
{
    if (b->data) free(b->data - b->head);
    b->data = NULL;
    b->len = b->cap = b->head = 0;
}

void mp_buf_reset(mp_buf *b)
{
    /* Nothing live: the whole block is free again, at no copying cost. */
    b->len = 0;
    if (b->data == NULL) return; /* never allocated; NULL arithmetic is UB */
    b->data -= b->head;
    b->cap += b->head;
    b->head = 0;
}

static int grow(mp_buf *b, size_t need)
{
    size_t block = b->head + b->cap;

    /* Slide back when the dead front is at least as large as the content:
     * the copy then costs no more than the room it gains. */
    if (b->head > 0 && need <= block && b->len <= b->head) {
        memmove(b->data - b->head, b->data, b->len);
        b->data -= b->head;
        b->cap = block;
        b->head = 0;
        return MP_OK;
    }

    size_t want = block > SIZE_MAX / 2 ? SIZE_MAX : block * 2;
    if (want < MIN_ALLOC) want = MIN_ALLOC;
    if (want < need) want = need;
    if (want > b->max) want = b->max; /* need <= max, checked by the caller */
    assert(want >= need);

    uint8_t *fresh;
    if (b->head == 0) {
        fresh = mp_util_realloc(b->data, want);
        if (fresh == NULL) return MP_ENOMEM;
    } else {
        fresh = mp_util_malloc(want);
        if (fresh == NULL) return MP_ENOMEM;
        memcpy(fresh, b->data, b->len);
        free(b->data - b->head);
    }
    b->data = fresh;
    b->cap = want;
    b->head = 0;
    return MP_OK;
}

int mp_buf_reserve(mp_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra) return MP_ETOOBIG;
    size_t need = b->len + extra;
    if (need <= b->cap) return MP_OK;
    return grow(b, need);
}

int mp_buf_append(mp_buf *b, const void *p, size_t n)
{
    if (n == 0) return MP_OK;
    if (p == NULL) return MP_EINVAL;
    int rc = mp_buf_reserve(b, n);
    if (rc != MP_OK) return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return MP_OK;
}

/* Append the low n bytes of v, least significant first. */
static int append_le(mp_buf *b, uint64_t v, size_t n)
{
    int rc = mp_buf_reserve(b, n);
    if (rc != MP_OK) return rc;
    uint8_t *out = b->data + b->len;
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(v >> (8 * i));
    b->len += n;
    return MP_OK;
}

int mp_buf_append_u8(mp_buf *b, uint8_t v)
{
    return append_le(b, v, 1);
}

int mp_buf_append_u16le(mp_buf *b, uint16_t v)
{
    return append_le(b, v, 2);
}

int mp_buf_append_u32le(mp_buf *b, uint32_t v)
{
    return append_le(b, v, 4);
}

int mp_buf_append_u64le(mp_buf *b, uint64_t v)
{
    return append_le(b, v, 8);
}

int mp_buf_commit(mp_buf *b, size_t n)
{
    if (n > b->cap - b->len) return MP_EINVAL;
    b->len += n;
    return MP_OK;
}

int mp_buf_consume(mp_buf *b, size_t n)
{
    if (n > b->len) return MP_EINVAL;
    if (n == b->len) {
        mp_buf_reset(b);
        return MP_OK;
    }
    b->data += n;
    b->head += n;
    b->cap -= n;
    b->len -= n;
    return MP_OK;
}
