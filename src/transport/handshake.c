/*
 * Handshake codec and proofs (see handshake.h for the layouts, the order of
 * the exchange and why). Every length is checked against its cap and
 * against the end of the input before the bytes are looked at; nothing is
 * trusted and nothing is allocated. The MAC is OpenSSL's HMAC-SHA256 and
 * proofs are compared with CRYPTO_memcmp (constant time): no crypto of our
 * own.
 */
#include "transport/handshake.h"

#include <assert.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

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

/* ---- HELLO ---------------------------------------------------------------- */

int mp_hello_encode(const mp_hello *h, uint8_t *buf, size_t cap, size_t *written)
{
    if (written) *written = 0;
    if (!h || !buf || !written) return MP_EINVAL;
    if (h->mode != MP_HELLO_OPEN && h->mode != MP_HELLO_KEYED) return MP_EINVAL;
    if (cap < MP_HELLO_SIZE) return MP_EINVAL;
    mp_put_le16(buf, h->version);
    buf[2] = h->mode;
    memcpy(buf + 3, h->nonce, MP_HELLO_NONCE_LEN);
    *written = MP_HELLO_SIZE;
    return MP_OK;
}

int mp_hello_decode(const uint8_t *p, size_t len, mp_hello *out)
{
    if (!out || (!p && len)) return MP_EINVAL;
    memset(out, 0, sizeof *out);
    if (len < 2) return MP_ETRUNCATED;
    out->version = mp_get_le16(p);
    if (out->version != MP_HELLO_VERSION) return MP_EVERSION;
    if (len < MP_HELLO_SIZE) return MP_ETRUNCATED;
    if (len > MP_HELLO_SIZE) return MP_EPROTO;
    out->mode = p[2];
    if (out->mode != MP_HELLO_OPEN && out->mode != MP_HELLO_KEYED) return MP_EPROTO;
    memcpy(out->nonce, p + 3, MP_HELLO_NONCE_LEN);
    return MP_OK;
}

/* ---- AUTH ----------------------------------------------------------------- */

static bool auth_fields_ok(const mp_auth *a)
{
    if (!addr_valid(a->addr.ptr, a->addr.len) || a->incarnation == 0) return false;
    bool has_ns = a->ns.len > 0, has_proof = a->proof.len > 0;
    if (has_ns == has_proof) return false; /* exactly one */
    if (has_ns && !mp_hello_ns_valid(a->ns.ptr, a->ns.len)) return false;
    if (has_proof && a->proof.len != MP_HELLO_PROOF_LEN) return false;
    return true;
}

int mp_auth_encode(const mp_auth *a, uint8_t *buf, size_t cap, size_t *written)
{
    if (written) *written = 0;
    if (!a || !buf || !written) return MP_EINVAL;
    if (!auth_fields_ok(a)) return MP_EINVAL;
    size_t need = 2 + a->addr.len + 4 + 2 + a->ns.len + 1 + a->proof.len;
    if (cap < need) return MP_EINVAL;
    uint8_t *p = buf;
    mp_put_le16(p, (uint16_t)a->addr.len);
    p += 2;
    memcpy(p, a->addr.ptr, a->addr.len);
    p += a->addr.len;
    mp_put_le32(p, a->incarnation);
    p += 4;
    mp_put_le16(p, (uint16_t)a->ns.len);
    p += 2;
    if (a->ns.len) memcpy(p, a->ns.ptr, a->ns.len);
    p += a->ns.len;
    *p++ = (uint8_t)a->proof.len;
    if (a->proof.len) memcpy(p, a->proof.ptr, a->proof.len);
    p += a->proof.len;
    assert((size_t)(p - buf) == need);
    *written = need;
    return MP_OK;
}

int mp_auth_decode(const uint8_t *p, size_t len, mp_auth *out)
{
    if (!out || (!p && len)) return MP_EINVAL;
    memset(out, 0, sizeof *out);
    size_t pos = 0;

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

    if (len - pos < 2) return MP_ETRUNCATED;
    uint16_t ns_len = mp_get_le16(p + pos);
    pos += 2;
    if (ns_len > MP_HELLO_MAX_NS) return MP_EPROTO;
    if (len - pos < ns_len) return MP_ETRUNCATED;
    if (ns_len && !mp_hello_ns_valid(p + pos, ns_len)) return MP_EPROTO;
    out->ns = mp_bytes_make(ns_len ? p + pos : NULL, ns_len);
    pos += ns_len;

    if (len - pos < 1) return MP_ETRUNCATED;
    uint8_t proof_len = p[pos++];
    if (proof_len != 0 && proof_len != MP_HELLO_PROOF_LEN) return MP_EPROTO;
    if (len - pos < proof_len) return MP_ETRUNCATED;
    out->proof = mp_bytes_make(proof_len ? p + pos : NULL, proof_len);
    pos += proof_len;

    if ((ns_len > 0) == (proof_len > 0)) return MP_EPROTO;
    if (pos != len) return MP_EPROTO;
    return MP_OK;
}

/* ---- proofs --------------------------------------------------------------- */

#define PROOF_LABEL "moonpool-hs-v2"
#define TRANSCRIPT_CAP                                                                 \
    (sizeof PROOF_LABEL + 1 + 2 * MP_HELLO_NONCE_LEN + 2 + MP_HELLO_MAX_NS + 2 * (2 + \
     MP_HELLO_MAX_ADDR + 4))

static uint8_t *put_lp(uint8_t *p, mp_bytes b)
{
    mp_put_le16(p, (uint16_t)b.len);
    p += 2;
    if (b.len) memcpy(p, b.ptr, b.len);
    return p + b.len;
}

int mp_proof_compute(const uint8_t key[MP_HELLO_KEY_LEN], const mp_proof_input *in,
                     uint8_t out[MP_HELLO_PROOF_LEN])
{
    if (!key || !in || !out || !in->nonce_d || !in->nonce_a) return MP_EINVAL;
    if ((in->role != 'D' && in->role != 'A') || in->ns.len > MP_HELLO_MAX_NS ||
        in->addr_d.len > MP_HELLO_MAX_ADDR || in->addr_a.len > MP_HELLO_MAX_ADDR)
        return MP_EINVAL;
    uint8_t t[TRANSCRIPT_CAP];
    uint8_t *p = t;
    memcpy(p, PROOF_LABEL, sizeof PROOF_LABEL - 1);
    p += sizeof PROOF_LABEL - 1;
    *p++ = (uint8_t)in->role;
    memcpy(p, in->nonce_d, MP_HELLO_NONCE_LEN);
    p += MP_HELLO_NONCE_LEN;
    memcpy(p, in->nonce_a, MP_HELLO_NONCE_LEN);
    p += MP_HELLO_NONCE_LEN;
    p = put_lp(p, in->ns);
    p = put_lp(p, in->addr_d);
    mp_put_le32(p, in->inc_d);
    p += 4;
    p = put_lp(p, in->addr_a);
    mp_put_le32(p, in->inc_a);
    p += 4;
    assert((size_t)(p - t) <= sizeof t);
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), key, (int)MP_HELLO_KEY_LEN, t, (size_t)(p - t), out, &n) ||
        n != MP_HELLO_PROOF_LEN)
        return MP_EINTERNAL;
    return MP_OK;
}

bool mp_proof_check(const uint8_t key[MP_HELLO_KEY_LEN], const mp_proof_input *in,
                    const uint8_t *proof, size_t len)
{
    uint8_t want[MP_HELLO_PROOF_LEN];
    if (!proof || len != MP_HELLO_PROOF_LEN) return false;
    if (mp_proof_compute(key, in, want) != MP_OK) return false;
    bool ok = CRYPTO_memcmp(want, proof, MP_HELLO_PROOF_LEN) == 0;
    OPENSSL_cleanse(want, sizeof want);
    return ok;
}

void mp_hello_frame(mp_frame *f, const char *method, mp_bytes payload, int32_t status)
{
    memset(f, 0, sizeof *f);
    f->kind = MP_FRAME_SYSTEM;
    f->method = mp_bytes_str(method);
    f->payload = payload;
    f->status = status;
}
