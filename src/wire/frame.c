/*
 * Wire frame encoder and decoders (layout, validation order and ownership
 * are documented in frame.h).
 *
 * Design notes:
 *  - Every multi-byte integer is read and written byte by byte in
 *    little-endian order: no unaligned loads, no dependence on host byte
 *    order, and compilers turn the pattern into single moves on x86.
 *  - All length arithmetic on untrusted values is done in uint64_t or as
 *    "remaining >= n" comparisons, never as "pos + n <= end" on size_t, so a
 *    hostile 0xFFFFFFFF length cannot wrap around.
 *  - The prefix (length, magic, version) is judged by one function,
 *    check_prefix(), on however many bytes are present, used by both the
 *    one-shot and the streaming decoder. It only reports an error that the
 *    bytes present already prove, so the status for a stream never depends
 *    on how the stream was split.
 *  - The streaming decoder decodes frames in place in the caller's buffer and
 *    copies only the frame that straddles two feeds. Its buffer grows with
 *    the bytes actually received (at most doubling), not with the length the
 *    peer announced, so a peer that announces 1 MiB and sends 9 bytes costs
 *    us little; and it is released after a large frame so an idle connection
 *    does not pin max_frame bytes.
 */
#include "wire/frame.h"

#include <assert.h>
#include <stdlib.h>

#include "util/crc32c.h"
#include "util/endian.h"

/* Bytes needed to judge a prefix: length, magic, version. */
#define PREFIX_LEN 9u
/* Offsets of the fixed fields. */
#define OFF_MAGIC 4u
#define OFF_VERSION 8u
#define OFF_KIND 9u
#define OFF_FLAGS 10u
#define OFF_CORR 12u
#define OFF_FWD 20u
#define OFF_RESERVED 21u
#define OFF_TTL 22u
#define OFF_STATUS 26u
/* Smallest partial-frame buffer, and the capacity above which the buffer is
 * given back once its frame has been consumed. */
#define DEC_MIN_CAP 256u
#define DEC_KEEP_CAP (64u * 1024u)

_Static_assert(OFF_STATUS + 4 == MP_FRAME_FIXED_HEADER, "fixed header layout");
_Static_assert(MP_FRAME_FIXED_HEADER + 2 + 2 + 2 + 2 + 2 + 4 + 4 == MP_FRAME_MIN_SIZE,
               "minimum frame size");
_Static_assert(PREFIX_LEN < MP_FRAME_MIN_SIZE, "prefix fits in every frame");

static const uint8_t magic_bytes[4] = {
    (uint8_t)(MP_FRAME_MAGIC & 0xff), (uint8_t)((MP_FRAME_MAGIC >> 8) & 0xff),
    (uint8_t)((MP_FRAME_MAGIC >> 16) & 0xff), (uint8_t)(MP_FRAME_MAGIC >> 24)};

/* ---- shared rules ------------------------------------------------------- */

static int resolve_max(uint32_t *max_frame)
{
    if (*max_frame == 0) *max_frame = MP_FRAME_DEFAULT_MAX;
    if (*max_frame < MP_FRAME_MIN_SIZE || *max_frame > MP_FRAME_MAX_LIMIT) return MP_EINVAL;
    return 0;
}

static int kind_ok(uint32_t kind)
{
    return kind >= MP_FRAME_REQUEST && kind <= MP_FRAME_SYSTEM;
}

static int status_ok(uint32_t kind, int32_t status)
{
    if (status > 0 || status < MP_STATUS_MIN_) return 0;
    if ((kind == MP_FRAME_REQUEST || kind == MP_FRAME_ONEWAY) && status != 0) return 0;
    return 1;
}

/* A view is usable when it has bytes behind it or is empty, and fits cap. */
static int view_ok(mp_bytes b, uint32_t cap)
{
    return (b.ptr != NULL || b.len == 0) && b.len <= cap;
}

/*
 * Judge the frame prefix from the `avail` bytes at p. Returns 1 and sets
 * *frame_len when length, magic and version are acceptable; 0 when more bytes
 * are needed to decide; or an error proven by the bytes already present.
 */
static int check_prefix(const uint8_t *p, size_t avail, uint32_t max_frame, size_t *frame_len)
{
    size_t mend = avail < OFF_MAGIC + 4 ? avail : OFF_MAGIC + 4;
    for (size_t i = OFF_MAGIC; i < mend; i++)
        if (p[i] != magic_bytes[i - OFF_MAGIC]) return MP_EBADMAGIC;
    if (avail < OFF_MAGIC + 4) return 0;
    uint64_t total = (uint64_t)mp_get_le32(p) + 4;
    if (total > max_frame) return MP_ETOOBIG;
    if (total < MP_FRAME_MIN_SIZE) return MP_ETRUNCATED;
    if (avail < PREFIX_LEN) return 0;
    if (p[OFF_VERSION] != MP_FRAME_VERSION) return MP_EVERSION;
    *frame_len = (size_t)total;
    return 1;
}

/* Bounds-checked reader over [pos, end) of a frame. */
typedef struct reader {
    const uint8_t *p;
    size_t pos, end;
} reader;

static int rd_u16(reader *r, uint16_t *v)
{
    if (r->end - r->pos < 2) return MP_ETRUNCATED;
    *v = mp_get_le16(r->p + r->pos);
    r->pos += 2;
    return 0;
}

static int rd_u64(reader *r, uint64_t *v)
{
    if (r->end - r->pos < 8) return MP_ETRUNCATED;
    *v = mp_get_le64(r->p + r->pos);
    r->pos += 8;
    return 0;
}

static int rd_u32(reader *r, uint32_t *v)
{
    if (r->end - r->pos < 4) return MP_ETRUNCATED;
    *v = mp_get_le32(r->p + r->pos);
    r->pos += 4;
    return 0;
}

/* u16 length + bytes, capped: over the cap is a protocol violation,
 * past the frame is truncation. */
static int rd_str16(reader *r, uint32_t cap, mp_bytes *out)
{
    uint16_t n;
    int rc = rd_u16(r, &n);
    if (rc) return rc;
    if (n > cap) return MP_EPROTO;
    if (r->end - r->pos < n) return MP_ETRUNCATED;
    out->ptr = r->p + r->pos;
    out->len = n;
    r->pos += n;
    return 0;
}

/*
 * Decode a frame whose prefix check_prefix() accepted and whose frame_len
 * bytes are all present at p.
 */
static int decode_whole(const uint8_t *p, size_t frame_len, mp_frame *out)
{
    assert(frame_len >= MP_FRAME_MIN_SIZE);
    size_t crc_at = frame_len - 4;
    if (mp_crc32c(p + OFF_MAGIC, crc_at - OFF_MAGIC) != mp_get_le32(p + crc_at)) return MP_ECHECKSUM;

    /* No memset of *out: it is ~700 bytes, mostly cache-update slots that
     * only the first cache_update_count of are meaningful; every other field
     * is assigned below. That alone is a third of the decode time. */
    uint8_t kind = p[OFF_KIND];
    int32_t status = (int32_t)mp_get_le32(p + OFF_STATUS);
    if (!kind_ok(kind) || p[OFF_RESERVED] != 0 || !status_ok(kind, status)) return MP_EPROTO;
    out->kind = kind;
    out->flags = mp_get_le16(p + OFF_FLAGS);
    out->correlation_id = mp_get_le64(p + OFF_CORR);
    out->forward_count = p[OFF_FWD];
    out->ttl_ms = mp_get_le32(p + OFF_TTL);
    out->status = status;

    reader r = {p, MP_FRAME_FIXED_HEADER, crc_at};
    int rc;
    out->rid_origin = out->rid_seq = out->rid_low = 0;
    if (kind == MP_FRAME_REQUEST) {
        if ((rc = rd_u64(&r, &out->rid_origin)) || (rc = rd_u64(&r, &out->rid_seq)) ||
            (rc = rd_u64(&r, &out->rid_low)))
            return rc;
        if ((out->rid_origin == 0) != (out->rid_seq == 0)) return MP_EPROTO;
    }
    if ((rc = rd_str16(&r, MP_FRAME_MAX_TARGET, &out->target))) return rc;
    if ((rc = rd_str16(&r, MP_FRAME_MAX_SENDER, &out->sender))) return rc;
    if ((rc = rd_str16(&r, MP_FRAME_MAX_METHOD, &out->method))) return rc;
    if ((rc = rd_str16(&r, MP_FRAME_MAX_KEY, &out->request_key))) return rc;
    uint16_t count;
    if ((rc = rd_u16(&r, &count))) return rc;
    if (count > MP_FRAME_MAX_CACHE_UPDATES) return MP_EPROTO;
    for (uint16_t i = 0; i < count; i++) {
        mp_frame_cache_update *cu = &out->cache_updates[i];
        if ((rc = rd_str16(&r, MP_FRAME_MAX_CACHE_ID, &cu->actor_id))) return rc;
        if ((rc = rd_str16(&r, MP_FRAME_MAX_CACHE_ADDR, &cu->addr))) return rc;
        if ((rc = rd_u32(&r, &cu->incarnation))) return rc;
    }
    out->cache_update_count = count;
    uint32_t plen;
    if ((rc = rd_u32(&r, &plen))) return rc;
    if (r.end - r.pos < plen) return MP_ETRUNCATED;
    out->payload.ptr = p + r.pos;
    out->payload.len = plen;
    r.pos += plen;
    if (r.pos != r.end) return MP_ETRUNCATED; /* bytes left over inside the frame */
    return 0;
}

/* ---- encoding ----------------------------------------------------------- */

static uint64_t encoded_size64(const mp_frame *f)
{
    uint64_t n = MP_FRAME_MIN_SIZE;
    if (f->kind == MP_FRAME_REQUEST) n += MP_FRAME_RID_SIZE;
    n += f->target.len;
    n += f->sender.len;
    n += f->method.len;
    n += f->request_key.len;
    unsigned count = f->cache_update_count;
    if (count > MP_FRAME_MAX_CACHE_UPDATES) count = MP_FRAME_MAX_CACHE_UPDATES; /* never read past the array */
    for (unsigned i = 0; i < count; i++)
        n += 2u + f->cache_updates[i].actor_id.len + 2u + f->cache_updates[i].addr.len + 4u;
    n += f->payload.len;
    return n;
}

size_t mp_frame_encoded_size(const mp_frame *f)
{
    uint64_t n = encoded_size64(f);
    return n > SIZE_MAX ? SIZE_MAX : (size_t)n;
}

static int validate_for_encode(const mp_frame *f)
{
    if (!kind_ok(f->kind) || !status_ok(f->kind, f->status)) return MP_EINVAL;
    if (!view_ok(f->target, MP_FRAME_MAX_TARGET) || !view_ok(f->sender, MP_FRAME_MAX_SENDER) ||
        !view_ok(f->method, MP_FRAME_MAX_METHOD) ||
        !view_ok(f->request_key, MP_FRAME_MAX_KEY) || !view_ok(f->payload, UINT32_MAX))
        return MP_EINVAL;
    if (f->cache_update_count > MP_FRAME_MAX_CACHE_UPDATES) return MP_EINVAL;
    if (f->kind == MP_FRAME_REQUEST && (f->rid_origin == 0) != (f->rid_seq == 0)) return MP_EINVAL;
    for (unsigned i = 0; i < f->cache_update_count; i++) {
        const mp_frame_cache_update *cu = &f->cache_updates[i];
        if (!view_ok(cu->actor_id, MP_FRAME_MAX_CACHE_ID) ||
            !view_ok(cu->addr, MP_FRAME_MAX_CACHE_ADDR))
            return MP_EINVAL;
    }
    return 0;
}

static uint8_t *put_str16(uint8_t *w, mp_bytes b)
{
    assert(b.len <= UINT16_MAX);
    mp_put_le16(w, (uint16_t)b.len);
    w += 2;
    if (b.len) memcpy(w, b.ptr, b.len);
    return w + b.len;
}

int mp_frame_encode(const mp_frame *f, uint8_t *buf, size_t cap, size_t *written,
                    uint32_t max_frame)
{
    if (written) *written = 0;
    if (!f || !written || (!buf && cap > 0)) return MP_EINVAL;
    int rc = resolve_max(&max_frame);
    if (rc) return rc;
    if ((rc = validate_for_encode(f))) return rc;
    uint64_t size = encoded_size64(f);
    if (size > max_frame) return MP_ETOOBIG;
    if (size > cap) return MP_EINVAL;

    uint8_t *w = buf;
    mp_put_le32(w, (uint32_t)(size - 4));
    mp_put_le32(w + OFF_MAGIC, MP_FRAME_MAGIC);
    w[OFF_VERSION] = MP_FRAME_VERSION;
    w[OFF_KIND] = f->kind;
    mp_put_le16(w + OFF_FLAGS, f->flags);
    mp_put_le64(w + OFF_CORR, f->correlation_id);
    w[OFF_FWD] = f->forward_count;
    w[OFF_RESERVED] = 0;
    mp_put_le32(w + OFF_TTL, f->ttl_ms);
    mp_put_le32(w + OFF_STATUS, (uint32_t)f->status);
    w += MP_FRAME_FIXED_HEADER;
    if (f->kind == MP_FRAME_REQUEST) {
        mp_put_le64(w, f->rid_origin);
        mp_put_le64(w + 8, f->rid_seq);
        mp_put_le64(w + 16, f->rid_low);
        w += MP_FRAME_RID_SIZE;
    }
    w = put_str16(w, f->target);
    w = put_str16(w, f->sender);
    w = put_str16(w, f->method);
    w = put_str16(w, f->request_key);
    mp_put_le16(w, f->cache_update_count);
    w += 2;
    for (unsigned i = 0; i < f->cache_update_count; i++) {
        w = put_str16(w, f->cache_updates[i].actor_id);
        w = put_str16(w, f->cache_updates[i].addr);
        mp_put_le32(w, f->cache_updates[i].incarnation);
        w += 4;
    }
    mp_put_le32(w, f->payload.len);
    w += 4;
    if (f->payload.len) memcpy(w, f->payload.ptr, f->payload.len);
    w += f->payload.len;
    mp_put_le32(w, mp_crc32c(buf + OFF_MAGIC, (size_t)(w - buf) - OFF_MAGIC));
    w += 4;
    assert((uint64_t)(w - buf) == size);
    *written = (size_t)size;
    return 0;
}

/* ---- one-shot decoding -------------------------------------------------- */

int mp_frame_decode(const uint8_t *buf, size_t len, uint32_t max_frame, mp_frame *out,
                    size_t *frame_len)
{
    if (!out || (!buf && len > 0)) return MP_EINVAL;
    int rc = resolve_max(&max_frame);
    if (rc) return rc;
    size_t flen = 0;
    rc = check_prefix(buf, len, max_frame, &flen);
    if (rc < 0) return rc;
    if (rc == 0 || len < flen) return MP_ETRUNCATED;
    if ((rc = decode_whole(buf, flen, out))) return rc;
    if (frame_len) *frame_len = flen;
    return 0;
}

/* ---- streaming decoding ------------------------------------------------- */

int mp_frame_decoder_init(mp_frame_decoder *dec, uint32_t max_frame)
{
    if (!dec) return MP_EINVAL;
    memset(dec, 0, sizeof *dec);
    int rc = resolve_max(&max_frame);
    if (rc) return rc;
    dec->max_frame = max_frame;
    return 0;
}

void mp_frame_decoder_free(mp_frame_decoder *dec)
{
    if (!dec) return;
    free(dec->buf);
    dec->buf = NULL;
    dec->buf_cap = dec->buf_len = dec->buf_need = 0;
    dec->in = NULL;
    dec->in_len = dec->in_pos = 0;
}

void mp_frame_decoder_reset(mp_frame_decoder *dec)
{
    if (!dec) return;
    mp_frame_decoder_free(dec);
    dec->error = 0;
}

int mp_frame_decoder_feed(mp_frame_decoder *dec, const uint8_t *data, size_t len)
{
    if (!dec || (!data && len > 0)) return MP_EINVAL;
    if (dec->error) return dec->error;
    if (dec->max_frame == 0) return MP_EINVAL; /* not initialised */
    if (dec->in_pos < dec->in_len) return MP_EINVAL; /* previous feed not drained */
    dec->in = data;
    dec->in_len = len;
    dec->in_pos = 0;
    return 0;
}

static int fail(mp_frame_decoder *dec, int rc)
{
    assert(rc < 0);
    dec->error = rc;
    dec->in = NULL;
    dec->in_len = dec->in_pos = 0;
    return rc;
}

/* All fed bytes taken: forget the caller's pointer so we can never touch it
 * after the caller reuses its buffer. */
static int drained(mp_frame_decoder *dec)
{
    assert(dec->in_pos == dec->in_len);
    dec->in = NULL;
    dec->in_len = dec->in_pos = 0;
    return 0;
}

/* Make room for `want` buffered bytes of a frame of (known or not, 0)
 * length `frame_len`. Capacity follows received bytes, doubling at most,
 * never beyond the frame's length. */
static int reserve(mp_frame_decoder *dec, size_t want, size_t frame_len)
{
    if (want <= dec->buf_cap) return 0;
    size_t ncap = dec->buf_cap * 2;
    if (ncap < DEC_MIN_CAP) ncap = DEC_MIN_CAP;
    if (ncap < want) ncap = want;
    if (frame_len && ncap > frame_len) ncap = frame_len;
    assert(ncap >= want && ncap <= (size_t)dec->max_frame + DEC_MIN_CAP);
    uint8_t *nb = realloc(dec->buf, ncap);
    if (!nb) return MP_ENOMEM;
    dec->buf = nb;
    dec->buf_cap = ncap;
    return 0;
}

/* Append up to `limit` total buffered bytes from the input. */
static int take(mp_frame_decoder *dec, size_t limit)
{
    assert(limit >= dec->buf_len);
    size_t avail = dec->in_len - dec->in_pos;
    size_t n = limit - dec->buf_len;
    if (n > avail) n = avail;
    if (n == 0) return 0;
    int rc = reserve(dec, dec->buf_len + n, dec->buf_need);
    if (rc) return rc;
    memcpy(dec->buf + dec->buf_len, dec->in + dec->in_pos, n);
    dec->buf_len += n;
    dec->in_pos += n;
    return 0;
}

int mp_frame_decoder_next(mp_frame_decoder *dec, mp_frame *out)
{
    if (!dec || !out) return MP_EINVAL;
    if (dec->error) return dec->error;
    assert(dec->in_pos <= dec->in_len);
    int rc;
    size_t flen = 0;

    if (dec->buf_len == 0) {
        /* Between frames: decode in place if the whole frame was fed. */
        assert(dec->buf_need == 0);
        size_t avail = dec->in_len - dec->in_pos;
        if (avail == 0) return drained(dec);
        const uint8_t *p = dec->in + dec->in_pos;
        rc = check_prefix(p, avail, dec->max_frame, &flen);
        if (rc < 0) return fail(dec, rc);
        if (rc == 1 && avail >= flen) {
            if ((rc = decode_whole(p, flen, out))) return fail(dec, rc);
            dec->in_pos += flen;
            dec->frames++;
            return 1;
        }
        /* A partial frame: it will be assembled in our buffer. A buffer
         * left large by an earlier frame is given back first (its last
         * frame's views have expired: this is a later call). */
        if (dec->buf_cap > DEC_KEEP_CAP) {
            free(dec->buf);
            dec->buf = NULL;
            dec->buf_cap = 0;
        }
        dec->buf_need = rc == 1 ? flen : 0;
    }

    if (dec->buf_need == 0) {
        /* Frame length not known yet: take just the prefix, never more. */
        if ((rc = take(dec, PREFIX_LEN))) return fail(dec, rc);
        rc = check_prefix(dec->buf, dec->buf_len, dec->max_frame, &flen);
        if (rc < 0) return fail(dec, rc);
        if (rc == 0) return drained(dec);
        dec->buf_need = flen;
    }
    assert(dec->buf_need >= MP_FRAME_MIN_SIZE && dec->buf_need <= dec->max_frame);
    if ((rc = take(dec, dec->buf_need))) return fail(dec, rc);
    if (dec->buf_len < dec->buf_need) return drained(dec);
    if ((rc = decode_whole(dec->buf, dec->buf_need, out))) return fail(dec, rc);
    dec->buf_len = 0;
    dec->buf_need = 0;
    dec->frames++;
    return 1;
}

uint8_t mp_frame_peek_kind(const uint8_t *frame) { return frame[OFF_KIND]; }

uint32_t mp_frame_peek_ttl(const uint8_t *frame) { return mp_get_le32(frame + OFF_TTL); }

size_t mp_frame_peek_size(const uint8_t *frame)
{
    return (size_t)OFF_MAGIC + mp_get_le32(frame);
}

void mp_frame_set_ttl(uint8_t *frame, uint32_t ttl_ms)
{
    size_t len = mp_frame_peek_size(frame);
    assert(len >= MP_FRAME_MIN_SIZE);
    assert(mp_get_le32(frame + OFF_MAGIC) == MP_FRAME_MAGIC);
    size_t crc_at = len - 4;
    mp_put_le32(frame + OFF_TTL, ttl_ms);
    mp_put_le32(frame + crc_at, mp_crc32c(frame + OFF_MAGIC, crc_at - OFF_MAGIC));
}
