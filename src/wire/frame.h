/*
 * moonpool wire envelope: one binary frame per message between nodes.
 *
 * Why this shape. Every frame starts with a fixed-width length so a reader
 * can find frame boundaries in a TCP byte stream without understanding the
 * body, and the length is bounded by a configured maximum so a hostile or
 * broken peer can never make us allocate more than that. A magic number and a
 * version come right after the length so that a stray client (or an old/new
 * node) is recognised after 9 bytes instead of being misparsed. A CRC32C over
 * everything after the length catches corruption the TCP checksum misses
 * (and bugs in our own buffer handling). Variable fields are length-prefixed
 * and individually capped, so every read is bounds-checked against the frame.
 *
 * Layout, all integers little-endian, fixed width (offsets from frame start):
 *   0  u32 length      bytes after this field: rest of header + body + crc
 *   4  u32 magic       MP_FRAME_MAGIC, the bytes "MPOL"
 *   8  u8  version     MP_FRAME_VERSION (3)
 *   9  u8  kind        mp_frame_kind (1..4)
 *  10  u16 flags       opaque to this layer (meaning defined by the runtime)
 *  12  u64 correlation id
 *  20  u8  forward_count
 *  21  u8  reserved    must be 0
 *  22  u32 ttl_ms
 *  26  i32 status      0, or a negative mp_status in [MP_STATUS_MIN_, -1]
 *  30  REQUEST frames only: the end-to-end request id (runtime.h, rid.c)
 *      u64 rid_origin  the calling node's token for this life (never 0)
 *      u64 rid_seq     its sequence number of the call (never 0)
 *      u64 rid_low     every call of that origin below this has ended
 *      (other kinds carry nothing here: only requests are deduplicated)
 *  30/54 u16 target_len + bytes  (<= 256)
 *      u16 sender_len  + bytes  (<= 256)
 *      u16 method_len  + bytes  (<= 128)
 *      u16 key_len     + bytes  (<= 64) the caller's idempotency key, or empty
 *      u16 cache_update_count   (<= 16), each record:
 *          u16 id_len + bytes (<= 256), u16 addr_len + bytes (<= 64),
 *          u32 incarnation
 *      u32 payload_len + bytes
 *      u32 crc32c of bytes [4, end of payload)
 *
 * Validation order (the same for the one-shot and streaming decoders, so a
 * given byte stream fails with the same status however it is split):
 *   1. magic (MP_EBADMAGIC) — as soon as 8 bytes are there;
 *   2. announced length: total > max_frame is MP_ETOOBIG, shorter than the
 *      empty-body frame is MP_ETRUNCATED — also as soon as 8 bytes are there,
 *      long before the body arrives;
 *   3. version (MP_EVERSION) — at byte 9, before the checksum, because a frame
 *      of another version may define its checksum differently;
 *   4. once the whole frame is present: the checksum (MP_ECHECKSUM), BEFORE any
 *      other field is interpreted, so random corruption is reported as
 *      corruption rather than as a protocol violation;
 *   5. kind, reserved byte, status range (MP_EPROTO), then the variable fields
 *      in order: each length is checked against its cap (MP_EPROTO) and
 *      against the end of the frame (MP_ETRUNCATED); bytes left over between
 *      the payload and the crc are MP_ETRUNCATED too. Because a frame with a
 *      valid checksum can still be crafted, step 5 never relies on step 4.
 * Status rule: requests and one-way messages carry status 0; responses and
 * system frames may carry 0 or any known negative mp_status. A status code
 * newer than this build's MP_STATUS_MIN_ is rejected (MP_EPROTO).
 *
 * Ownership. Nothing here copies variable fields: an mp_frame only holds views
 * (mp_bytes) into memory owned by someone else.
 *   - To encode, the caller owns the frame's views and the output buffer; the
 *     encoder reads the views and writes the buffer, nothing else, and never
 *     allocates.
 *   - A frame from mp_frame_decode() views the caller's buffer.
 *   - A frame from mp_frame_decoder_next() views either the bytes the caller
 *     passed to mp_frame_decoder_feed() (a frame that arrived whole in one
 *     feed is decoded in place, no copy) or the decoder's own buffer (a frame
 *     that was split across feeds is assembled there). Either way the views
 *     are valid until the next call to any mp_frame_decoder_* function on
 *     that decoder (next, feed, reset, free) — and, for in-place frames, only
 *     while the fed bytes stay valid. Copy what you keep.
 *
 * Identifiers (target, sender, method, cache ids and addresses) are opaque
 * bytes here; their syntax is validated by the actor layer, not the wire.
 *
 * Thread safety: none needed; a decoder belongs to one connection on one
 * loop. The encoding functions are pure.
 */
#ifndef MP_WIRE_FRAME_H
#define MP_WIRE_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "moonpool/limits.h"
#include "moonpool/status.h"

#define MP_FRAME_MAGIC 0x4C4F504Du /* "MPOL" as bytes on the wire */
/* 2: the idempotency key field (version 1 had none).
 * 3: the request id of REQUEST frames. */
#define MP_FRAME_VERSION 3u

/* Field caps. */
#define MP_FRAME_MAX_TARGET 256u
#define MP_FRAME_MAX_SENDER 256u
#define MP_FRAME_MAX_METHOD 128u
#define MP_FRAME_MAX_KEY 64u
#define MP_FRAME_MAX_CACHE_UPDATES 16u
#define MP_FRAME_MAX_CACHE_ID 256u
#define MP_FRAME_MAX_CACHE_ADDR 64u

/* Sizes. MP_FRAME_MIN_SIZE is a frame with every variable field empty. */
#define MP_FRAME_FIXED_HEADER 30u /* length .. status inclusive */
#define MP_FRAME_MIN_SIZE 48u     /* fixed header + 5 u16 + u32 + crc */
#define MP_FRAME_RID_SIZE 24u     /* the request id block of REQUEST frames */
#define MP_FRAME_DEFAULT_MAX MP_DEFAULT_MAX_MESSAGE_BYTES /* 1 MiB, whole frame */
/* Largest max_frame accepted by any function here: keeps every size sum far
 * from overflow even where size_t is 32 bits. */
#define MP_FRAME_MAX_LIMIT MP_MAX_MESSAGE_LIMIT_BYTES

typedef enum mp_frame_kind {
    MP_FRAME_REQUEST = 1,
    MP_FRAME_RESPONSE = 2,
    MP_FRAME_ONEWAY = 3,
    MP_FRAME_SYSTEM = 4
} mp_frame_kind;

/* A borrowed byte range. ptr may be NULL only when len is 0. */
typedef struct mp_bytes {
    const uint8_t *ptr;
    uint32_t len;
} mp_bytes;

/* One directory cache correction carried back to the caller (a forwarded
 * message's reply says where the actor really lives now). */
typedef struct mp_frame_cache_update {
    mp_bytes actor_id; /* <= MP_FRAME_MAX_CACHE_ID bytes */
    mp_bytes addr;     /* <= MP_FRAME_MAX_CACHE_ADDR bytes */
    uint32_t incarnation;
} mp_frame_cache_update;

typedef struct mp_frame {
    uint8_t kind; /* mp_frame_kind */
    uint8_t forward_count;
    uint16_t flags;
    uint64_t correlation_id;
    uint32_t ttl_ms;
    int32_t status; /* see the status rule above */
    /* REQUEST only (encoded for that kind alone; decoders set 0 otherwise):
     * rid_origin and rid_seq are both 0 (no id) or both non-zero. */
    uint64_t rid_origin, rid_seq, rid_low;
    mp_bytes target; /* actor id text; may be empty (system frames) */
    mp_bytes sender; /* actor id text or empty */
    mp_bytes method;
    mp_bytes request_key; /* idempotency key (node.h) or empty */
    uint16_t cache_update_count; /* entries used; decoders leave the rest as they were */
    mp_frame_cache_update cache_updates[MP_FRAME_MAX_CACHE_UPDATES];
    mp_bytes payload;
} mp_frame;

/* View of a NUL-terminated string (the NUL is not included). A string too
 * long for a u32 gets len UINT32_MAX, which every cap rejects. */
static inline mp_bytes mp_bytes_str(const char *s)
{
    mp_bytes b = {(const uint8_t *)s, 0};
    if (s) {
        size_t n = strlen(s);
        b.len = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    }
    return b;
}

static inline mp_bytes mp_bytes_make(const void *p, uint32_t len)
{
    mp_bytes b = {(const uint8_t *)p, len};
    return b;
}

/* 1 if both views hold the same bytes (pointers may differ). */
static inline int mp_bytes_eq(mp_bytes a, mp_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* ---- encoding ----------------------------------------------------------- */

/* Bytes mp_frame_encode would write for f (whole frame, length prefix and
 * crc included). Computed from the views' lengths only; it does not validate
 * (a frame over the caps still gets its size, saturated at SIZE_MAX). */
size_t mp_frame_encoded_size(const mp_frame *f);

/* Read-only views of one whole frame encoded by mp_frame_encode (trusted
 * bytes: the caller's own queue, never input from a peer). */
uint8_t mp_frame_peek_kind(const uint8_t *frame);
uint32_t mp_frame_peek_ttl(const uint8_t *frame);
/* The whole frame's length, length field included. */
size_t mp_frame_peek_size(const uint8_t *frame);
/* Rewrite the ttl of such a frame in place (and its checksum). */
void mp_frame_set_ttl(uint8_t *frame, uint32_t ttl_ms);

/* Encode f into buf[0..cap). max_frame is the largest whole frame allowed
 * (0 means MP_FRAME_DEFAULT_MAX). Never allocates; on error writes nothing
 * and sets *written to 0. Errors, checked in this order:
 *   MP_EINVAL  max_frame out of [MP_FRAME_MIN_SIZE, MP_FRAME_MAX_LIMIT],
 *              a NULL pointer argument, a view with ptr NULL and len > 0,
 *              an unknown kind, a field over its cap, too many cache
 *              updates, or a status breaking the status rule;
 *   MP_ETOOBIG the frame would be larger than max_frame;
 *   MP_EINVAL  cap smaller than mp_frame_encoded_size(f). That is a caller
 *              bug, not a resource shortage, hence not MP_ENOMEM: size the
 *              buffer with mp_frame_encoded_size first.
 * On success returns 0 and *written = mp_frame_encoded_size(f). */
int mp_frame_encode(const mp_frame *f, uint8_t *buf, size_t cap, size_t *written,
                    uint32_t max_frame);

/* ---- one-shot decoding -------------------------------------------------- */

/* Decode the frame at the start of buf[0..len). Bytes after that frame are
 * ignored (*frame_len says where the next one starts). A buffer shorter than
 * the announced frame is MP_ETRUNCATED. Returns 0 and fills *out (views into
 * buf) and *frame_len, or a negative status (see the validation order above;
 * MP_EINVAL for a bad max_frame or NULL argument). *out is unspecified on
 * error. max_frame 0 means MP_FRAME_DEFAULT_MAX. frame_len may be NULL. */
int mp_frame_decode(const uint8_t *buf, size_t len, uint32_t max_frame, mp_frame *out,
                    size_t *frame_len);

/* ---- streaming decoding ------------------------------------------------- */

/* Turns a byte stream, split anyhow, into frames. Usage (per read):
 *
 *     if ((rc = mp_frame_decoder_feed(&dec, data, n)) < 0) goto close;
 *     while ((rc = mp_frame_decoder_next(&dec, &frame)) == 1)
 *         dispatch(&frame);               // copy what you keep
 *     if (rc < 0) goto close;             // rc == 0: all of data taken
 *
 * Frames wholly inside `data` are returned as views into `data` (no copy);
 * only a frame split across reads is copied, into a buffer that grows to at
 * most that frame's size (<= max_frame) and shrinks back after a large one.
 * Errors are sticky: once a call returns a negative status every later feed
 * or next returns it too (the connection is to be closed), until reset.
 * All fields are private. */
typedef struct mp_frame_decoder {
    uint32_t max_frame;
    int error;           /* sticky status, 0 while healthy */
    uint8_t *buf;        /* partial frame being assembled */
    size_t buf_len;      /* bytes of it in buf */
    size_t buf_cap;
    size_t buf_need;     /* whole frame length once known, else 0 */
    const uint8_t *in;   /* bytes from the last feed, not yet taken */
    size_t in_len;
    size_t in_pos;
    uint64_t frames;     /* frames returned so far (for stats) */
} mp_frame_decoder;

/* max_frame 0 means MP_FRAME_DEFAULT_MAX. MP_EINVAL if out of
 * [MP_FRAME_MIN_SIZE, MP_FRAME_MAX_LIMIT]. Allocates nothing until a frame is
 * split across feeds. */
int mp_frame_decoder_init(mp_frame_decoder *dec, uint32_t max_frame);

/* Releases the buffer; dec may be init'ed again. Safe on a zeroed decoder. */
void mp_frame_decoder_free(mp_frame_decoder *dec);

/* Drops all buffered bytes and a sticky error; keeps max_frame. */
void mp_frame_decoder_reset(mp_frame_decoder *dec);

/* Hands the decoder `len` bytes (data may be NULL when len is 0). Nothing is
 * copied yet: `data` must stay valid and unchanged until mp_frame_decoder_next
 * returns 0 or an error. Returns 0, the sticky error, or MP_EINVAL if the
 * previous feed was not drained (the caller must loop next() until 0). */
int mp_frame_decoder_feed(mp_frame_decoder *dec, const uint8_t *data, size_t len);

/* Returns 1 with *out filled when a frame is complete, 0 when every fed byte
 * has been taken and more are needed, or a negative status (sticky): any
 * decode error, or MP_ENOMEM if the partial-frame buffer could not grow.
 * Malformed prefixes (bad magic, oversize or undersize length, bad version)
 * are reported as soon as their bytes arrive, before the body. */
int mp_frame_decoder_next(mp_frame_decoder *dec, mp_frame *out);

/* Bytes of a partial frame held by the decoder (0 between frames). */
static inline size_t mp_frame_decoder_buffered(const mp_frame_decoder *dec)
{
    return dec->buf_len;
}

#endif
