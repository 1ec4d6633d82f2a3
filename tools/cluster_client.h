/*
 * A client of a running cluster, for the `call`, `stats` and `demo`
 * commands: a client-only node (node.h: client_only) on its own loopback
 * address (port 0) that reaches the actors through the members listed in
 * a cluster config file, plus blocking helpers that run its loop until one
 * answer arrives.
 *
 * Why a node and not a bare socket: calls, correlation, timeouts, gateway
 * failover and the wire format are the runtime's; a client that reused
 * them cannot drift from what members expect.
 *
 * The client's incarnation is taken from the wall clock (seconds), so a
 * later client that happens to get the same port is seen by the members as
 * a newer life of that address, never as a stale one.
 */
#ifndef MP_TOOLS_CLUSTER_CLIENT_H
#define MP_TOOLS_CLUSTER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "moonpool/config.h"
#include "moonpool/env.h"
#include "moonpool/node.h"

typedef struct mp_cc {
    mp_config cfg;
    mp_env *env;
    mp_env *tls; /* [security] tls_*: the client's links are TLS too */
    mp_node *node;
    const char *idempotency_key; /* for mp_cc_call; NULL: none */
    int at_once; /* the last mp_cc_call's error came from mp_call itself */
} mp_cc;

/* Load the cluster file (only [cluster] and [security] matter: namespace,
 * members, the secret; [node] address is ignored), start a client node on
 * 127.0.0.1:0. secret_file (may be NULL) replaces the file's [security]
 * secret_file: the client then authenticates with it (docs/security.md). On a
 * config error returns MP_EINVAL with the file:line message in err and
 * nothing to close; other errors (runtime) with a reason in err. log_level
 * applies to the client's own log lines (stderr). */
int mp_cc_open(mp_cc *cc, const char *cluster_file, const char *secret_file,
               mp_log_level log_level, char *err, size_t err_cap);

/* Shut the client down and release everything. Safe on a zeroed struct. */
void mp_cc_close(mp_cc *cc);

/* Blocking call of TYPE/KEY METHOD with payload; runs the loop until the
 * reply. Returns the call's status; on status 0 *reply (malloc'd, NUL-
 * terminated, free() it) holds the reply payload, on an error status it
 * holds the error text (may be empty). *reply may be NULL on MP_ENOMEM. */
int mp_cc_call(mp_cc *cc, const char *type, const char *key, const char *method,
               const void *payload, size_t len, uint64_t timeout_ns, char **reply,
               size_t *reply_len);

/* Blocking stats request to member addr: as mp_cc_call. */
int mp_cc_stats(mp_cc *cc, const char *addr, char **reply, size_t *reply_len);

/* Run the client's loop once (blocking until something happens when wait
 * is nonzero). */
void mp_cc_run_once(mp_cc *cc, int wait);

/* Split "TYPE/KEY" at the first '/'; both parts non-empty. Returns 0 or
 * MP_EINVAL. type_buf has MP_ACTOR_PART_MAX + 1 bytes. */
int mp_cc_split_target(const char *target, char *type_buf, size_t type_cap, const char **key);

#endif
