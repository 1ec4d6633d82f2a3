/*
 * TLS for every stream of an env: an mp_env that wraps another one.
 *
 * Why a wrapper env and not TLS inside the transport: the transport, the
 * runtime and the tools only ever see mp_env streams (env.h), so putting
 * TLS under that interface encrypts every link (node to node, client to
 * gateway) without one line of them changing, and the same TLS code runs
 * over the simulator's streams as over libuv's. The wrapper forwards time,
 * timers, deferred work and randomness to the inner env and puts an
 * OpenSSL session (memory BIOs, no socket of its own) on each stream.
 *
 * Verification is mutual: each side presents a certificate signed by the
 * cluster's CA (ca_file) and refuses a peer whose certificate does not
 * chain to it. Peers are addressed by IP:port, so host names are not
 * checked: holding a certificate of the cluster CA is what makes a peer a
 * member (docs/security.md). TLS 1.3 only; no session tickets.
 *
 * A connection becomes a stream only once its handshake completed: mp_env_
 * connect reports it then (or MP_EPROTO / MP_ETIMEDOUT), and a listener
 * accepts it then (a failed handshake is closed and counted, never
 * accepted). Handshakes in progress are bounded (max_handshakes; the oldest
 * gives way) and timed out (handshake_timeout_ns), so a peer that connects
 * and says nothing costs a bounded slot for a bounded time.
 *
 * Thread: the inner env's loop thread.
 */
#ifndef MOONPOOL_ENV_TLS_H
#define MOONPOOL_ENV_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "moonpool/env.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_env_tls_config {
    const char *cert_file; /* PEM: this node's certificate (chain) */
    const char *key_file;  /* PEM: its private key (owner-only file) */
    const char *ca_file;   /* PEM: the cluster CA that signs every member */
    uint64_t handshake_timeout_ns; /* 0: 10 s */
    unsigned max_handshakes;       /* in progress at once; 0: 1024 */
} mp_env_tls_config;

typedef struct mp_env_tls_stats {
    uint64_t handshakes_ok;
    uint64_t handshakes_failed;  /* bad certificate, protocol error, reset */
    uint64_t handshakes_timed_out;
    uint64_t handshakes_evicted; /* the oldest gave way to a new one */
} mp_env_tls_stats;

/* Wrap `inner` (which must outlive the wrapper). Reads and checks the
 * three files now. Returns 0 and *out, or MP_EINVAL (a NULL argument or
 * file name), MP_EIO (a file cannot be read, a certificate or key is
 * malformed, the key does not match the certificate, or the key file is
 * readable by group or others), MP_ENOMEM. On error, `err` (may be NULL)
 * gets a sentence naming the file and the reason. */
int mp_env_tls_create(mp_env *inner, const mp_env_tls_config *cfg,
                      mp_env **out, char *err, size_t errlen);

/* Release the wrapper. Every listener and every stream handed out must be
 * closed first; connections still in their handshake are failed here
 * (connect callbacks get MP_ECLOSED) and their inner streams finish
 * closing on later turns of the inner env's loop, so keep running it
 * before destroying the inner env. NULL is ignored. */
void mp_env_tls_free(mp_env *env);

/* Counters; env must come from mp_env_tls_create. */
void mp_env_tls_get_stats(mp_env *env, mp_env_tls_stats *out);

#ifdef __cplusplus
}
#endif
#endif
