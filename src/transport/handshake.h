/*
 * Handshake codec and proofs: the payloads of the transport's handshake
 * system frames, and the HMAC that proves the cluster secret.
 *
 * Why a separate codec: the handshake is the one place where bytes from an
 * unknown peer decide whether we talk to it at all, so its decoding is kept
 * small, pure and testable on its own (and fuzzed: tests/fuzz/
 * fuzz_handshake.c), apart from the connection state machine in
 * transport.c.
 *
 * The exchange (version 2). D dials A.
 *
 *   both   "hello"     HELLO: version, mode, a fresh 32-byte nonce.
 *                      Nothing about the cluster: a stranger who connects
 *                      learns only that a moonpool node of this version
 *                      listens and whether it wants a secret.
 *   D -> A "auth"      AUTH of D, sent once A's HELLO arrived.
 *   A -> D "hello_ok"  AUTH of A, sent once D's AUTH checked out; A's side
 *                      is open from then on, D's once it checked A's AUTH.
 *   A -> D "hello_refused"  status = reason, payload = reason text.
 *
 * The dialer proves first because the acceptor is the side any stranger
 * can reach: a stranger must prove the secret before the node says
 * anything (its namespace, address, incarnation) or hands it a proof to
 * attack offline. A dialer only dials configured members.
 *
 * HELLO payload, little-endian, exactly MP_HELLO_SIZE bytes:
 *   u16 version   MP_HELLO_VERSION; decoded FIRST and alone, because a
 *                 peer of another version may lay out the rest differently
 *   u8  mode      MP_HELLO_OPEN (no secret) or MP_HELLO_KEYED
 *   32  nonce
 *
 * AUTH payload, little-endian, no padding, nothing after it:
 *   u16 addr_len + bytes  the sender's node address "host:port",
 *                         1..MP_HELLO_MAX_ADDR printable bytes
 *   u32 incarnation       >= 1
 *   u16 ns_len + bytes    open mode: the namespace (1..MP_HELLO_MAX_NS of
 *                         [A-Za-z0-9_.-]); keyed mode: 0 (the namespace is
 *                         never sent, only proven: it is inside the MAC)
 *   u8  proof_len + bytes 0 (open mode) or MP_HELLO_PROOF_LEN (keyed)
 * Exactly one of namespace and proof is present.
 *
 * The proof: HMAC-SHA256(cluster key, transcript) where the transcript is
 *   "moonpool-hs-v2" | role ('D' or 'A') | nonce_D | nonce_A |
 *   u16 len + namespace | u16 len + addr_D | u32 inc_D |
 *   u16 len + addr_A | u32 inc_A
 * addr_A is the address D dialed (A checks it against its own); inc_A is 0
 * in D's proof (D does not know it yet). Both nonces make a proof good for
 * one connection only (no replay), the role stops a proof from being
 * reflected back to its maker, and the rest binds who claims what.
 */
#ifndef MP_TRANSPORT_HANDSHAKE_H
#define MP_TRANSPORT_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/env.h"
#include "wire/frame.h"

#define MP_HELLO_VERSION 2u
#define MP_HELLO_OPEN 0u
#define MP_HELLO_KEYED 1u
#define MP_HELLO_NONCE_LEN 32u
#define MP_HELLO_PROOF_LEN 32u
#define MP_HELLO_KEY_LEN MP_ENV_KEY_LEN
#define MP_HELLO_SIZE (2u + 1u + MP_HELLO_NONCE_LEN)
#define MP_HELLO_MAX_NS 128u
#define MP_HELLO_MAX_ADDR ((unsigned)MP_ADDR_MAX) /* moonpool/limits.h */
#define MP_HELLO_MAX_REASON 160u
/* Largest AUTH payload. */
#define MP_AUTH_MAX_PAYLOAD \
    (2u + MP_HELLO_MAX_ADDR + 4u + 2u + MP_HELLO_MAX_NS + 1u + MP_HELLO_PROOF_LEN)
#define MP_HELLO_MAX_PAYLOAD MP_AUTH_MAX_PAYLOAD

#define MP_HELLO_METHOD "hello"
#define MP_AUTH_METHOD "auth"
#define MP_HELLO_OK_METHOD "hello_ok"
#define MP_HELLO_REFUSED_METHOD "hello_refused"

typedef struct mp_hello {
    uint16_t version;
    uint8_t mode;
    uint8_t nonce[MP_HELLO_NONCE_LEN];
} mp_hello;

typedef struct mp_auth {
    mp_bytes addr; /* view */
    uint32_t incarnation;
    mp_bytes ns;    /* view; empty in keyed mode */
    mp_bytes proof; /* view; empty in open mode */
} mp_auth;

/* 1 if ns is a valid namespace (length and characters). */
int mp_hello_ns_valid(const uint8_t *p, size_t len);

/* Encode a HELLO into buf[0..cap). Returns 0 and *written, or MP_EINVAL
 * (bad mode or cap too small). */
int mp_hello_encode(const mp_hello *h, uint8_t *buf, size_t cap, size_t *written);

/* Decode a HELLO payload. Returns 0, MP_EVERSION (only out->version is set:
 * the rest is not parsed), MP_ETRUNCATED or MP_EPROTO (bad mode, or bytes
 * after it). */
int mp_hello_decode(const uint8_t *p, size_t len, mp_hello *out);

/* Encode an AUTH. Returns 0 and *written, or MP_EINVAL (a field invalid,
 * both or neither of ns and proof, or cap too small). */
int mp_auth_encode(const mp_auth *a, uint8_t *buf, size_t cap, size_t *written);

/* Decode an AUTH payload; views point into p. Returns 0, MP_ETRUNCATED (a
 * field runs past the end) or MP_EPROTO (a bad length or character,
 * incarnation 0, both or neither of ns and proof, trailing bytes). */
int mp_auth_decode(const uint8_t *p, size_t len, mp_auth *out);

/* The fields a proof covers (see the top comment). */
typedef struct mp_proof_input {
    char role; /* 'D' or 'A': whose proof */
    const uint8_t *nonce_d, *nonce_a; /* MP_HELLO_NONCE_LEN each */
    mp_bytes ns, addr_d, addr_a;
    uint32_t inc_d, inc_a;
} mp_proof_input;

/* out = HMAC-SHA256(key, transcript of in). Returns 0 or MP_EINVAL (a
 * field too long) / MP_EINTERNAL (the crypto library failed). */
int mp_proof_compute(const uint8_t key[MP_HELLO_KEY_LEN], const mp_proof_input *in,
                     uint8_t out[MP_HELLO_PROOF_LEN]);

/* Whether proof (len bytes) is the right one for in, compared in constant
 * time. */
bool mp_proof_check(const uint8_t key[MP_HELLO_KEY_LEN], const mp_proof_input *in,
                    const uint8_t *proof, size_t len);

/* Fill a system frame with the given method (a static string) and payload. */
void mp_hello_frame(mp_frame *f, const char *method, mp_bytes payload, int32_t status);

#endif
