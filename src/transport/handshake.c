/*
 * HELLO codec (see handshake.h for the layout and why the version is read
 * alone first). Every length is checked against its cap and against the end
 * of the input before the bytes are looked at; nothing is trusted and
 * nothing is allocated.
 */
#include "transport/handshake.h"

#include <assert.h>
#include <string.h>

#include "util/endian.h"

static int ns_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

int mp_hello_ns_valid(const uint8_t *p, size_t len)
{
    if (!p || len == 0 || len > MP_HELLO_MAX_NS) return 0;
    for (size_t i = 0; i < len; i++)
        if (!ns_char(p[i])) return 0;
    return 1;
}

static int addr_valid(const uint8_t *p, size_t len)
{
    if (!p || len == 0 || len > MP_HELLO_MAX_ADDR) return 0;
    for (size_t i = 0; i < len; i++)
        if (p[i] <= 0x20 || p[i] >= 0x7f) return 0; /* printable, no space */
    return 1;
}

int mp_hello_encode(const mp_hello *h, uint8_t *buf, size_t cap, size_t *written)
{
    if (written) *written = 0;
    if (!h || !buf || !written) return MP_EINVAL;
    if (!mp_hello_ns_valid(h->ns.ptr, h->ns.len)) return MP_EINVAL;
    if (!addr_valid(h->addr.ptr, h->addr.len)) return MP_EINVAL;
    if (h->incarnation == 0) return MP_EINVAL;
    size_t need = 2 + 2 + h->ns.len + 2 + h->addr.len + 4;
    if (cap < need) return MP_EINVAL;
    uint8_t *p = buf;
    mp_put_le16(p, h->version);
    p += 2;
    mp_put_le16(p, (uint16_t)h->ns.len);
    p += 2;
    memcpy(p, h->ns.ptr, h->ns.len);
    p += h->ns.len;
    mp_put_le16(p, (uint16_t)h->addr.len);
    p += 2;
    memcpy(p, h->addr.ptr, h->addr.len);
    p += h->addr.len;
    mp_put_le32(p, h->incarnation);
    p += 4;
    assert((size_t)(p - buf) == need);
    *written = need;
    return MP_OK;
}

int mp_hello_decode(const uint8_t *p, size_t len, mp_hello *out)
{
    if (!out || (!p && len)) return MP_EINVAL;
    memset(out, 0, sizeof *out);
    size_t pos = 0;
    if (len < 2) return MP_ETRUNCATED;
    out->version = mp_get_le16(p);
    pos = 2;
    if (out->version != MP_HELLO_VERSION) return MP_EVERSION;

    if (len - pos < 2) return MP_ETRUNCATED;
    uint16_t ns_len = mp_get_le16(p + pos);
    pos += 2;
    if (ns_len == 0 || ns_len > MP_HELLO_MAX_NS) return MP_EPROTO;
    if (len - pos < ns_len) return MP_ETRUNCATED;
    if (!mp_hello_ns_valid(p + pos, ns_len)) return MP_EPROTO;
    out->ns = mp_bytes_make(p + pos, ns_len);
    pos += ns_len;

    if (len - pos < 2) return MP_ETRUNCATED;
    uint16_t addr_len = mp_get_le16(p + pos);
    pos += 2;
    if (addr_len == 0 || addr_len > MP_HELLO_MAX_ADDR) return MP_EPROTO;
    if (len - pos < addr_len) return MP_ETRUNCATED;
    if (!addr_valid(p + pos, addr_len)) return MP_EPROTO;
    out->addr = mp_bytes_make(p + pos, addr_len);
    pos += addr_len;

    if (len - pos < 4) return MP_ETRUNCATED;
    out->incarnation = mp_get_le32(p + pos);
    pos += 4;
    if (out->incarnation == 0) return MP_EPROTO;
    if (pos != len) return MP_EPROTO;
    return MP_OK;
}

void mp_hello_frame(mp_frame *f, const char *method, mp_bytes payload, int32_t status)
{
    memset(f, 0, sizeof *f);
    f->kind = MP_FRAME_SYSTEM;
    f->method = mp_bytes_str(method);
    f->payload = payload;
    f->status = status;
}
