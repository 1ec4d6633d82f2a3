/*
 * HELLO codec: the payload of the handshake system frames of the transport.
 *
 * Why a separate codec: the handshake is the one place where bytes from an
 * unknown peer decide whether we talk to it at all, so its decoding is kept
 * small, pure and testable on its own (and fuzzable later), apart from the
 * connection state machine in transport.c.
 *
 * HELLO payload, little-endian, no padding:
 *   u16 version          MP_HELLO_VERSION; decoded FIRST and alone, because a
 *                        peer of another version may lay out the rest
 *                        differently: only "which version" is trusted then
 *   u16 ns_len + bytes   cluster namespace, 1..MP_HELLO_MAX_NS of
 *                        [A-Za-z0-9_.-]
 *   u16 addr_len + bytes the sender's node address "host:port",
 *                        1..MP_HELLO_MAX_ADDR printable bytes (the transport
 *                        validates it further with mp_addr_parse)
 *   u32 incarnation      >= 1
 * and nothing after it (trailing bytes are a protocol error).
 *
 * The frames (kind MP_FRAME_SYSTEM, empty target/sender):
 *   method "hello"         payload = HELLO, sent by both sides at once
 *   method "hello_ok"      empty payload, acceptor -> dialer: handshake done
 *   method "hello_refused" status = reason (MP_ENAMESPACE, MP_EVERSION,
 *                          MP_EBUSY for a duplicate connection lost to the
 *                          tie-break, MP_EPROTO), payload = reason text
 */
#ifndef MP_TRANSPORT_HANDSHAKE_H
#define MP_TRANSPORT_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#include "wire/frame.h"

#define MP_HELLO_VERSION 1u
#define MP_HELLO_MAX_NS 128u
#define MP_HELLO_MAX_ADDR ((unsigned)MP_ADDR_MAX) /* moonpool/limits.h */
#define MP_HELLO_MAX_REASON 160u
/* Largest HELLO payload: version + two length-prefixed fields + incarnation. */
#define MP_HELLO_MAX_PAYLOAD (2u + 2u + MP_HELLO_MAX_NS + 2u + MP_HELLO_MAX_ADDR + 4u)

#define MP_HELLO_METHOD "hello"
#define MP_HELLO_OK_METHOD "hello_ok"
#define MP_HELLO_REFUSED_METHOD "hello_refused"

typedef struct mp_hello {
    uint16_t version;
    mp_bytes ns;   /* view */
    mp_bytes addr; /* view */
    uint32_t incarnation;
} mp_hello;

/* 1 if ns is a valid namespace (length and characters). */
int mp_hello_ns_valid(const uint8_t *p, size_t len);

/* Encode h into buf[0..cap). Returns 0 and *written, or MP_EINVAL (a field
 * invalid or cap too small; nothing meaningful written). */
int mp_hello_encode(const mp_hello *h, uint8_t *buf, size_t cap, size_t *written);

/* Decode a HELLO payload; views point into p. Returns 0, MP_EVERSION (only
 * out->version is set: the rest is not parsed), MP_ETRUNCATED (a field runs
 * past the end) or MP_EPROTO (a bad length, character, incarnation 0 or
 * trailing bytes). */
int mp_hello_decode(const uint8_t *p, size_t len, mp_hello *out);

/* Fill a system frame with the given method (a static string) and payload. */
void mp_hello_frame(mp_frame *f, const char *method, mp_bytes payload, int32_t status);

#endif
