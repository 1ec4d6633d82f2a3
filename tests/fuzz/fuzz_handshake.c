/*
 * libFuzzer target for the handshake codec (src/transport/handshake.c):
 * the bytes a stranger sends before it has proved anything.
 *
 * Input: byte 0 picks the decoder (even: HELLO, odd: AUTH), the rest is
 * the payload. It is a round-trip test, not just a crash test: every
 * payload a decoder accepts is re-encoded, and since every byte of a valid
 * payload is determined by its fields (exact lengths, no slack), the
 * encoding must reproduce the input exactly. An accepted AUTH with a proof
 * is checked against a fixed key and transcript: a proof the fuzzer made
 * up must never pass (it would mean the check ignores its input).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/handshake.h"

#define CHECK(c)                    \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t sel = data[0];
    /* An exact-size heap copy: ASan sees any read past the payload. */
    size_t len = size - 1;
    uint8_t *p = malloc(len ? len : 1);
    if (!p) return 0;
    memcpy(p, data + 1, len);
    uint8_t out[MP_AUTH_MAX_PAYLOAD + MP_HELLO_SIZE];
    size_t n = 0;
    if ((sel & 1) == 0) {
        mp_hello h;
        int rc = mp_hello_decode(p, len, &h);
        if (rc == MP_OK) {
            CHECK(len == MP_HELLO_SIZE);
            CHECK(mp_hello_encode(&h, out, sizeof out, &n) == MP_OK);
            CHECK(n == len && memcmp(out, p, len) == 0);
        } else {
            CHECK(rc == MP_EVERSION || rc == MP_ETRUNCATED || rc == MP_EPROTO);
        }
    } else {
        mp_auth a;
        int rc = mp_auth_decode(p, len, &a);
        if (rc == MP_OK) {
            CHECK(len <= MP_AUTH_MAX_PAYLOAD);
            CHECK((a.ns.len > 0) != (a.proof.len > 0));
            CHECK(mp_auth_encode(&a, out, sizeof out, &n) == MP_OK);
            CHECK(n == len && memcmp(out, p, len) == 0);
            if (a.proof.len) {
                uint8_t key[MP_HELLO_KEY_LEN], nonce[MP_HELLO_NONCE_LEN];
                memset(key, 0x6b, sizeof key);
                memset(nonce, 0x4e, sizeof nonce);
                mp_proof_input in = {'D', nonce, nonce, mp_bytes_str("fuzz"), a.addr,
                                     mp_bytes_str("127.0.0.1:1"), a.incarnation, 0};
                CHECK(!mp_proof_check(key, &in, a.proof.ptr, a.proof.len));
            }
        } else {
            CHECK(rc == MP_ETRUNCATED || rc == MP_EPROTO);
        }
    }
    free(p);
    return 0;
}
