/*
 * Peer transport (contract in transport.h).
 *
 * Objects. A `peer` exists per remote node address ever sent to or heard
 * from; it owns the send queue, the reconnect state and the counters, and
 * lives as long as the transport (so a write or connect callback that still
 * refers to it after a connection broke is always safe). A `conn` is one
 * stream, from the dial (or accept) to its close callback; callbacks carry
 * the conn, never the stream. Peers sit in a map keyed by address for lookup
 * and in a list for every walk, so no decision ever depends on hash order.
 *
 * Queue and batching (queue.c). Frames queue per peer and go out as one
 * write per connection per loop turn. The write buffer belongs to the
 * connection, not the peer: a broken connection may report its cancelled
 * write after a new connection is already up, and the new one must not
 * wait for (or share) the old buffer. Frames in a write that then fails
 * are lost (TCP cannot say how much arrived; transport.h's contract);
 * frames still pending stay for the next connection, so per peer the
 * frames handed to connections form contiguous, ordered runs: never a
 * duplicate, never a reorder.
 *
 * Handshake (handshake.h has the messages and why the dialer proves
 * first). Both ends send HELLO at once: version, mode, a fresh nonce. The
 * dialer answers the acceptor's HELLO with its AUTH (address, incarnation,
 * proof or namespace) and waits for hello_ok; the acceptor checks that
 * AUTH (the proof before anything else), weighs the claim (stale
 * incarnation, tie-break), and answers hello_ok carrying its own AUTH (the
 * connection is then open on its side) or hello_refused with a reason,
 * written before the stream is closed from the write callback so the reason
 * reaches the dialer. The dialer opens once the acceptor's AUTH checks out
 * (its address is the one dialed; its proof). A peer's recorded
 * incarnation changes only in conn_open, so a refused claim never changes
 * it. A refusal for a missing proof says only "authentication failed". A handshake timer closes a connection that does not get
 * there in time; for a dial it starts with the connect, so a dial to a host
 * that is gone fails in that time too. Any other frame before that is a
 * protocol error.
 *
 * Tie-break (one connection per pair). An incoming HELLO from Y at X is
 * refused with MP_EBUSY (the "HELLO_DUP") iff X has its own outgoing
 * connection to Y (dialing, in handshake or open) and X < Y byte-wise,
 * unless the HELLO shows a newer incarnation of Y (then X's connection is to
 * a dead process and must give way). Otherwise the incoming connection is
 * accepted and replaces whatever X had for Y. Both ends apply the same rule,
 * so simultaneous dials keep exactly the smaller node's dial, and a dialer
 * only dials when it has no connection, so a fresh incoming dial means the
 * old connection is dead on the other side. No data frame is ever written
 * on a connection before it is open, so no frame is lost to the tie-break.
 *
 * Reconnect. After a failed dial or a broken connection, if frames wait, a
 * timer redials after an exponential backoff with "equal jitter" (half fixed,
 * half random from mp_env_random), capped by backoff_max_ns; a successful
 * handshake resets it. The retry timer is armed before on_peer_down runs so a
 * callback that sends again cannot dial around the backoff.
 *
 * Liveness (liveness.c): keep-alives, the peer and frame timeouts, and
 * the stalls of our own loop.
 *
 * Outage logging. peer.fails counts failed dials/handshakes since the last
 * open connection: the first is logged at info, the rest at debug, and the
 * open that ends the outage logs its count and length once at info.
 *
 * Teardown (close.c): graceful close waits (bounded) for queues to drain;
 * free_now is for a dead simulated env.
 */
#include "transport/transport_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "transport/handshake.h"
#include "util/buf.h"
#include "util/endian.h"
#include "util/list.h"
#include "util/map.h"

/* ---- small helpers ------------------------------------------------------ */


/* Copy bytes for a log line, escaping anything unprintable (and the
 * backslash) as \xNN: reasons and addresses come from the network. Cut at
 * cap - 1 bytes, never in the middle of an escape. */
static void sanitize(char *dst, size_t cap, const uint8_t *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = p[i];
        if (b >= 0x20 && b < 0x7f && b != '\\') {
            if (o + 1 >= cap) break;
            dst[o++] = (char)b;
        } else {
            if (o + 4 >= cap) break;
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[b >> 4];
            dst[o++] = hex[b & 15];
        }
    }
    dst[o] = '\0';
}

/* At most one line per second for a kind of refusal a stranger can
 * provoke at will; *last is the env time of the last line. */
static bool log_allowed(mp_transport *t, uint64_t *last)
{
    uint64_t now = mp_env_now(t->env);
    if (*last && now - *last < MP_NS_PER_SEC) return false;
    *last = now ? now : 1;
    return true;
}

static bool method_is(const mp_frame *f, const char *m)
{
    return mp_bytes_eq(f->method, mp_bytes_str(m));
}

mp_peer_stats *mp__stats_of(conn *c)
{
    return c->p ? &c->p->st : &c->t->orphan;
}

bool mp__addr_ok(const char *addr)
{
    char host[HOST_CAP];
    uint16_t port;
    if (!addr) return false;
    size_t n = strnlen(addr, ADDR_CAP);
    if (n == 0 || n >= ADDR_CAP) return false;
    return mp_addr_parse(addr, host, sizeof host, &port) == MP_OK && port != 0;
}

/* ---- peers -------------------------------------------------------------- */

static peer *peer_find(mp_transport *t, const char *addr, size_t len)
{
    return mp_map_str_get(&t->peer_map, addr, len);
}

/* The peer of a caller's NUL-terminated address, or NULL. */
peer *mp__peer_named(mp_transport *t, const char *addr)
{
    size_t n = strnlen(addr, ADDR_CAP);
    return n < ADDR_CAP ? peer_find(t, addr, n) : NULL;
}

peer *mp__peer_get(mp_transport *t, const char *addr, size_t len)
{
    assert(len > 0 && len < ADDR_CAP);
    peer *p = peer_find(t, addr, len);
    if (p) return p;
    p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->t = t;
    memcpy(p->addr, addr, len);
    p->addr[len] = '\0';
    p->addr_len = len;
    mp_list_node_init(&p->dirty_link);
    mp_buf_init(&p->pending, MP_BUF_NO_LIMIT);
    if (mp_map_str_put(&t->peer_map, p->addr, p->addr_len, p, NULL) != MP_OK) {
        free(p);
        return NULL;
    }
    mp_list_push_back(&t->peers, &p->link);
    return p;
}

static uint64_t backoff_delay(peer *p)
{
    mp_transport *t = p->t;
    uint64_t b = t->cfg.backoff_initial_ns;
    for (uint32_t i = 0; i < p->attempts && b < t->cfg.backoff_max_ns; i++) b *= 2;
    if (b > t->cfg.backoff_max_ns) b = t->cfg.backoff_max_ns;
    if (MP_BUGGIFY()) return mp_env_random_below(t->env, t->cfg.backoff_initial_ns + 1);
    /* Equal jitter: never less than half, so a flapping peer is not hammered,
     * and spread so that many nodes losing one peer do not redial in step. */
    return b / 2 + mp_env_random_below(t->env, b - b / 2 + 1);
}


static void on_retry(void *ud)
{
    peer *p = ud;
    p->retry_timer = 0;
    if (p->t->shutdown || p->conn || p->out) return;
    if (p->pending_frames > 0 || p->probe) mp__peer_dial(p);
}

void mp__schedule_retry(peer *p)
{
    mp_transport *t = p->t;
    if (t->closing) {
        /* No redial while closing: what waits for this peer goes now. */
        if (!p->conn && !p->out) mp__peer_drop_pending(p, "connection lost while closing");
        return;
    }
    if (t->shutdown || p->retry_timer || p->conn || p->out) return;
    if (t->cbs.may_dial && !t->cbs.may_dial(t->ud, p->addr)) {
        /* Not ours to dial: what waits for it cannot go. */
        mp_transport_drop_queued(t, p->addr, NULL, NULL);
        return;
    }
    /* Reconnect only while frames wait (or sends were refused: probing). */
    if (p->pending_frames == 0 && !p->probe) return;
    uint64_t d = backoff_delay(p);
    p->attempts++;
    p->retry_timer = mp_env_timer_start(t->env, d, on_retry, p);
    if (!p->retry_timer)
        mp_env_log(t->env, MP_LOG_ERROR, "transport: no timer for reconnect to %s", p->addr);
}

/* ---- connections -------------------------------------------------------- */

static conn *conn_new(mp_transport *t, peer *p, bool outgoing)
{
    conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->t = t;
    c->p = p;
    c->outgoing = outgoing;
    mp_buf_init(&c->wbuf, MP_BUF_NO_LIMIT);
    if (mp_frame_decoder_init(&c->dec, t->cfg.max_frame) != MP_OK) {
        free(c);
        return NULL;
    }
    mp_list_push_back(&t->conns, &c->link);
    return c;
}

static void conn_free(conn *c)
{
    mp_transport *t = c->t;
    mp_list_remove(&c->link);
    mp_frame_decoder_free(&c->dec);
    mp_buf_free(&c->wbuf);
    free(c);
    mp__close_progress(t);
}

static void on_conn_closed(void *ud) { conn_free(ud); }

/* Mechanics only: detach from the peer and close. Frees later (close
 * callback, or the connect callback of an abandoned dial). */
void mp__conn_close(conn *c)
{
    mp_transport *t = c->t;
    if (c->state == C_CLOSING) return;
    if (c->hs_timer) {
        mp_env_timer_cancel(t->env, c->hs_timer);
        c->hs_timer = 0;
    }
    if (!c->outgoing && !c->p && c->state != C_DIALING) {
        assert(t->unattributed > 0);
        t->unattributed--;
    }
    if (c->counted) {
        assert(t->incoming > 0);
        t->incoming--;
        c->counted = false;
    }
    c->state = C_CLOSING;
    if (c->p) {
        if (c->p->out == c) c->p->out = NULL;
        if (c->p->conn == c) c->p->conn = NULL;
    }
    if (c->s) mp_stream_close(c->s, on_conn_closed, c);
}

/* The connection to a peer is lost or could not be made: tell the layer
 * above, after arming the backoff. */
static void peer_lost(peer *p, int status, bool was_open)
{
    /* The outage lasts from the first loss (an open connection breaking, or
     * a failed dial) to the next open connection: for its closing log. */
    if (!p->in_outage) {
        p->in_outage = true;
        p->outage_since = mp_env_now(p->t->env);
    }
    /* Unreachable once a dial or handshake failed (fails > 0): a broken
     * open connection alone does not say the peer is gone (its first redial
     * will). */
    if (!was_open) p->fails++;
    mp__schedule_retry(p);
    if (p->t->cbs.on_peer_down && !p->t->shutdown) p->t->cbs.on_peer_down(p->t->ud, p->addr, status);
}

static bool expected_close(int status)
{
    return status == MP_EOF || status == MP_ECONNRESET || status == MP_ECANCELED ||
           status == MP_ECONNREFUSED || status == MP_ETIMEDOUT || status == MP_ECLOSED;
}

/* Close for a reason, with a log line and, when the connection was the
 * peer's, on_peer_down. The line is at `level`, or when level is -1 at info
 * for an expected close (warn otherwise), demoted to debug when it is one
 * more failed dial of an outage already reported. */
void mp__conn_fail_at(conn *c, int status, const char *why, int level)
{
    if (c->state == C_CLOSING) return;
    mp_transport *t = c->t;
    peer *p = c->p;
    bool attached = p && (p->conn == c || p->out == c);
    bool was_open = c->state == C_OPEN;
    if (level < 0) {
        level = expected_close(status) ? MP_LOG_INFO : MP_LOG_WARN;
        if (level == MP_LOG_INFO && attached && !was_open && p->fails > 0) level = MP_LOG_DEBUG;
        /* A connection neither attached nor open is a loser of the
         * tie-break or a stray closing as expected: not news. */
        if (level == MP_LOG_INFO && !attached && !was_open) level = MP_LOG_DEBUG;
    }
    /* The claimed address (a peer's handshake says who it is) beside the
     * socket's own: a forger shows up as the socket it really came from. */
    const char *sock = c->s ? mp_stream_peer(c->s) : NULL;
    mp_env_log(t->env, (mp_log_level)level, "transport: connection %s %s%s%s%s closed: %s (%s)",
               c->outgoing ? "to" : "from", p ? p->addr : (sock ? sock : "(unknown)"),
               p && sock && !c->outgoing ? " (socket " : "", p && sock && !c->outgoing ? sock : "",
               p && sock && !c->outgoing ? ")" : "", why, mp_status_name(status));
    mp__conn_close(c);
    if (attached) {
        snprintf(p->why, sizeof p->why, "%s", why);
        if (status == MP_ENAMESPACE || status == MP_EVERSION || status == MP_EAUTH)
            p->refused = status;
        peer_lost(p, status, was_open);
    }
}

void mp__conn_fail(conn *c, int status, const char *why) { mp__conn_fail_at(c, status, why, -1); }

static void on_hs_timeout(void *ud)
{
    conn *c = ud;
    c->hs_timer = 0;
    /* A dial is bounded too (the timer starts with it): a connect to a
     * machine that is gone would otherwise wait for the kernel's SYN
     * retries, minutes, while calls queue behind it. */
    mp__conn_fail(c, MP_ETIMEDOUT, c->state == C_DIALING ? "connect timeout" : "handshake timeout");
}

static void on_ctl_write(void *ud, int status)
{
    conn *c = ud;
    if (status < 0 && c->state != C_CLOSING) mp__conn_fail(c, status, "handshake write failed");
}

static void on_refusal_written(void *ud, int status)
{
    conn *c = ud;
    mp__conn_close(c); /* the reason went out (or could not): either way, done */
}

static int write_ctl(conn *c, uint8_t *buf, size_t cap, const char *method, mp_bytes payload,
                     int32_t status, mp_write_cb cb)
{
    mp_frame f;
    size_t n = 0;
    mp_hello_frame(&f, method, payload, status);
    int rc = mp_frame_encode(&f, buf, cap, &n, c->t->cfg.max_frame);
    assert(rc == MP_OK); /* our own fields, sized by construction */
    if (rc != MP_OK) return rc;
    mp_iovec iov = {buf, n};
    return mp_stream_write(c->s, &iov, 1, cb, c);
}

/* Our HELLO: version, mode and a fresh nonce; nothing about the cluster. */
static int send_hello(conn *c)
{
    mp_transport *t = c->t;
    uint8_t payload[MP_HELLO_SIZE];
    size_t n = 0;
    mp_hello h;
    memset(&h, 0, sizeof h);
    h.version = MP_HELLO_VERSION;
    h.mode = t->keyed ? MP_HELLO_KEYED : MP_HELLO_OPEN;
    int rc = mp_env_secure_random(t->env, c->nonce, sizeof c->nonce);
    if (rc != MP_OK) return rc;
    memcpy(h.nonce, c->nonce, sizeof h.nonce);
    rc = mp_hello_encode(&h, payload, sizeof payload, &n);
    assert(rc == MP_OK);
    if (rc != MP_OK) return rc;
    /* The frame encoder copies the payload into c->hello, which stays valid
     * until the conn is freed (after every write callback). */
    return write_ctl(c, c->hello, sizeof c->hello, MP_HELLO_METHOD,
                     mp_bytes_make(payload, (uint32_t)n), 0, on_ctl_write);
}

/* The transcript fields of c's handshake for the proof of `role`; the
 * peer's address and incarnation are the ones it claimed (dialer) or we
 * dialed and it announced (acceptor). */
static mp_proof_input proof_in(conn *c, char role, mp_bytes peer_addr, uint32_t peer_inc)
{
    mp_transport *t = c->t;
    mp_proof_input in;
    memset(&in, 0, sizeof in);
    in.role = role;
    in.ns = mp_bytes_str(t->ns);
    mp_bytes me = mp_bytes_str(t->self);
    uint32_t my_inc = t->cfg.incarnation;
    if (c->outgoing) {
        in.nonce_d = c->nonce;
        in.nonce_a = c->peer_nonce;
        in.addr_d = me;
        in.inc_d = my_inc;
        in.addr_a = peer_addr;
        in.inc_a = role == 'A' ? peer_inc : 0;
    } else {
        in.nonce_d = c->peer_nonce;
        in.nonce_a = c->nonce;
        in.addr_d = peer_addr;
        in.inc_d = peer_inc;
        in.addr_a = me;
        in.inc_a = role == 'A' ? my_inc : 0;
    }
    return in;
}

/* Our AUTH (the dialer's "auth", the acceptor's "hello_ok"): who we are,
 * and the proof (keyed) or the namespace (open mode). */
static int send_auth(conn *c, const char *method, mp_bytes peer_addr, uint32_t peer_inc)
{
    mp_transport *t = c->t;
    uint8_t proof[MP_HELLO_PROOF_LEN];
    uint8_t payload[MP_AUTH_MAX_PAYLOAD];
    mp_auth a;
    memset(&a, 0, sizeof a);
    a.addr = mp_bytes_str(t->self);
    a.incarnation = t->cfg.incarnation;
    if (t->keyed) {
        mp_proof_input in = proof_in(c, c->outgoing ? 'D' : 'A', peer_addr, peer_inc);
        int rc = mp_proof_compute(t->key, &in, proof);
        if (rc != MP_OK) return rc;
        a.proof = mp_bytes_make(proof, sizeof proof);
    } else {
        a.ns = mp_bytes_str(t->ns);
    }
    size_t n = 0;
    int rc = mp_auth_encode(&a, payload, sizeof payload, &n);
    assert(rc == MP_OK); /* our own fields */
    if (rc != MP_OK) return rc;
    return write_ctl(c, c->auth, sizeof c->auth, method, mp_bytes_make(payload, (uint32_t)n), 0,
                     on_ctl_write);
}

/* Refuse an incoming handshake: log (unless the caller did), count, write
 * the reason, close after. */
static void refuse_at(conn *c, int reason, const char *fmt_reason, bool log)
{
    mp_transport *t = c->t;
    if (reason != MP_EBUSY) mp__stats_of(c)->refused_handshakes++;
    if (log)
        /* A duplicate losing the tie-break is routine at every start. */
        mp_env_log(t->env, reason == MP_EBUSY ? MP_LOG_DEBUG : MP_LOG_WARN,
                   "transport: refusing connection from %s: %s (%s)",
                   c->p ? c->p->addr : mp_stream_peer(c->s), fmt_reason,
                   mp_status_name(reason));
    if (c->hs_timer) {
        mp_env_timer_cancel(t->env, c->hs_timer);
        c->hs_timer = 0;
    }
    size_t rlen = strlen(fmt_reason);
    if (rlen > MP_HELLO_MAX_REASON) rlen = MP_HELLO_MAX_REASON;
    int rc = write_ctl(c, c->reply, sizeof c->reply, MP_HELLO_REFUSED_METHOD,
                       mp_bytes_make(fmt_reason, (uint32_t)rlen), reason, on_refusal_written);
    if (rc != MP_OK) {
        mp__conn_close(c);
        return;
    }
    /* Still counted as unattributed until the close; detach from the peer so
     * nothing is flushed on it. */
    if (c->p) {
        if (c->p->out == c) c->p->out = NULL;
        if (c->p->conn == c) c->p->conn = NULL;
    }
    c->state = C_REFUSING;
}

static void refuse(conn *c, int reason, const char *fmt_reason)
{
    refuse_at(c, reason, fmt_reason, true);
}

/* A connection whose peer did not prove the secret: counted, logged at
 * most once a second (a stranger can make as many as it likes), refused
 * with a reason that tells it nothing about us. */
static void refuse_unauthenticated(conn *c, const char *why, mp_bytes claimed)
{
    mp_transport *t = c->t;
    t->auth_failures++;
    MP_SOMETIMES(true, "transport.auth_failed");
    if (log_allowed(t, &t->auth_logged)) {
        char addr[4 * MP_HELLO_MAX_ADDR + 1] = "";
        if (claimed.len) sanitize(addr, sizeof addr, claimed.ptr, claimed.len);
        mp_env_log(t->env, MP_LOG_WARN,
                   "transport: authentication failed for the connection from socket %s%s%s: "
                   "%s (%llu so far; at most one line per second)",
                   mp_stream_peer(c->s), addr[0] ? " claiming " : "", addr, why,
                   (unsigned long long)t->auth_failures);
    }
    refuse_at(c, MP_EAUTH, "authentication failed", false);
}

/* The handshake completed: c carries data for its peer from now on. */
static void conn_open(conn *c, uint32_t inc)
{
    mp_transport *t = c->t;
    peer *p = c->p;
    assert(p && c->state == C_HANDSHAKE);
    if (c->hs_timer) {
        mp_env_timer_cancel(t->env, c->hs_timer);
        c->hs_timer = 0;
    }
    if (p->out == c) p->out = NULL;
    if (p->conn && p->conn != c) mp__conn_close(p->conn); /* cannot happen by the rule; be safe */
    if (p->out) mp__conn_close(p->out);
    c->state = C_OPEN;
    c->idle_ticks = 0;
    p->conn = c;
    if (p->fails > 0) {
        uint64_t gone = mp_env_now(t->env) - p->outage_since;
        mp_env_log(t->env, MP_LOG_INFO,
                   "transport: reconnected to %s after %u failed attempt%s (%.1f s)", p->addr,
                   (unsigned)p->fails, p->fails == 1 ? "" : "s", (double)gone / (double)MP_NS_PER_SEC);
    }
    p->fails = 0;
    p->in_outage = false;
    p->attempts = 0;
    p->refused = 0;
    p->probe = false;
    p->why[0] = '\0';
    if (p->retry_timer) {
        mp_env_timer_cancel(t->env, p->retry_timer);
        p->retry_timer = 0;
    }
    mp__hb_arm(t);
    p->st.connects++;
    bool reconnect = p->st.connects > 1;
    if (reconnect) p->st.reconnects++;
    MP_SOMETIMES(reconnect, "transport.reconnect");
    mp_env_log(t->env, MP_LOG_DEBUG, "transport: connected %s %s (incarnation %u)",
               c->outgoing ? "to" : "from", p->addr, (unsigned)inc);
    if (inc != p->st.incarnation) {
        uint32_t old = p->st.incarnation;
        p->st.incarnation = inc;
        MP_SOMETIMES(old != 0, "transport.incarnation_change");
        if (t->cbs.on_peer_restart) t->cbs.on_peer_restart(t->ud, p->addr, old, inc);
        if (c->state != C_OPEN) return; /* the callback closed the transport */
    }
    if (p->pending.len > 0) {
        MP_SOMETIMES(reconnect, "transport.flush_after_reconnect");
        mp__peer_mark_dirty(p);
    }
}

/* ---- handshake frames --------------------------------------------------- */

/* The peer's HELLO (both sides, first frame): version and mode must
 * match; its nonce is kept for the proofs. The dialer answers with its
 * AUTH at once. */
static void peer_hello(conn *c, const mp_frame *f)
{
    mp_transport *t = c->t;
    mp_hello h;
    char why[MP_HELLO_MAX_REASON];
    int status = mp_hello_decode(f->payload.ptr, f->payload.len, &h);
    uint8_t mode = t->keyed ? MP_HELLO_KEYED : MP_HELLO_OPEN;
    if (status == MP_EVERSION) {
        snprintf(why, sizeof why, "protocol version mismatch (ours %u, theirs %u)",
                 (unsigned)MP_HELLO_VERSION, (unsigned)h.version);
    } else if (status != MP_OK) {
        status = MP_EPROTO;
        snprintf(why, sizeof why, "malformed hello");
    } else if (h.mode != mode) {
        status = MP_EAUTH;
        snprintf(why, sizeof why, "%s",
                 t->keyed ? "the peer has no cluster secret and this node requires one"
                          : "the peer requires a cluster secret and this node has none");
    } else if (memcmp(h.nonce, c->nonce, sizeof c->nonce) == 0) {
        /* Our own HELLO sent back: a reflection, never a real peer. */
        status = MP_EAUTH;
        snprintf(why, sizeof why, "the peer sent our own nonce back");
    }
    if (status != MP_OK) {
        if (c->outgoing) {
            c->p->st.refused_handshakes++;
            if (status == MP_EAUTH) t->auth_failures++;
            mp__conn_fail(c, status, why);
        } else if (status == MP_EAUTH) {
            refuse_unauthenticated(c, why, mp_bytes_make(NULL, 0));
        } else {
            refuse(c, status, why);
        }
        return;
    }
    memcpy(c->peer_nonce, h.nonce, sizeof c->peer_nonce);
    c->got_hello = true;
    if (c->outgoing) {
        peer *p = c->p;
        int rc = send_auth(c, MP_AUTH_METHOD, mp_bytes_make(p->addr, (uint32_t)p->addr_len), 0);
        if (rc != MP_OK) {
            mp__conn_fail(c, rc, "auth write failed");
            return;
        }
        c->sent_auth = true;
    }
}

/* The namespace-mismatch reason (open mode), naming both sides. */
static void ns_mismatch(mp_transport *t, mp_bytes theirs, char *out, size_t cap)
{
    char ns[4 * MP_HELLO_MAX_NS + 1];
    sanitize(ns, sizeof ns, theirs.ptr, theirs.len);
    snprintf(out, cap, "namespace mismatch (ours '%.40s', theirs '%.40s')", t->ns, ns);
}

/* Acceptor: the dialer's AUTH. Keyed: its proof must check out before
 * anything else is looked at, and nothing about us goes out before. */
static void incoming_auth(conn *c, const mp_frame *f)
{
    mp_transport *t = c->t;
    mp_auth a;
    char addr[ADDR_CAP];
    char reason[MP_HELLO_MAX_REASON];
    int rc = mp_auth_decode(f->payload.ptr, f->payload.len, &a);
    if (rc != MP_OK) {
        if (t->keyed)
            refuse_unauthenticated(c, "malformed auth", mp_bytes_make(NULL, 0));
        else
            refuse(c, MP_EPROTO, "malformed auth");
        return;
    }
    if (t->keyed) {
        mp_proof_input in = proof_in(c, 'D', a.addr, a.incarnation);
        if (!a.proof.len || !mp_proof_check(t->key, &in, a.proof.ptr, a.proof.len)) {
            refuse_unauthenticated(c, "wrong cluster secret, another namespace, or it dialed "
                                      "another address than ours", a.addr);
            return;
        }
    } else if (!a.ns.len) {
        refuse(c, MP_EPROTO, "a proof in open mode");
        return;
    } else if (!mp_bytes_eq(a.ns, mp_bytes_str(t->ns))) {
        ns_mismatch(t, a.ns, reason, sizeof reason);
        refuse(c, MP_ENAMESPACE, reason);
        return;
    }
    /* Authenticated (or open mode): the claim is weighed now. */
    memcpy(addr, a.addr.ptr, a.addr.len);
    addr[a.addr.len] = '\0';
    if (!mp__addr_ok(addr)) {
        refuse(c, MP_EPROTO, "bad node address");
        return;
    }
    if (strcmp(addr, t->self) == 0) {
        refuse(c, MP_EPROTO, "peer claims our own address");
        return;
    }
    peer *p = mp__peer_get(t, addr, a.addr.len);
    if (!p) {
        mp__conn_fail(c, MP_ENOMEM, "no memory for peer");
        return;
    }
    /* Attributed from now on. */
    assert(t->unattributed > 0);
    t->unattributed--;
    c->p = p;
    /* A lower incarnation never replaces a higher one recorded (only an
     * open connection records one: conn_open). */
    if (a.incarnation < p->st.incarnation) {
        refuse(c, MP_EPROTO, "stale incarnation");
        return;
    }
    if (MP_BUGGIFY_P(0.05)) {
        /* A connection that dies as its handshake completes: queued frames
         * must wait for the next one, none may be lost or doubled. Here,
         * before hello_ok, and not after either side opened: nothing was
         * written on it yet (the dialer waits for hello_ok), whereas once
         * the acceptor is open it flushes at once, and a dialer dropping
         * then would lose those frames unread (a loss the contract allows
         * but the simulated workloads, which expect every call answered
         * under buggify, must not see from a buggify site). */
        mp__conn_fail(c, MP_ECONNRESET, "buggify: drop at the end of the handshake");
        return;
    }
    bool newer = p->st.incarnation != 0 && a.incarnation > p->st.incarnation;
    bool have_out = p->out || (p->conn && p->conn->outgoing);
    if (have_out && strcmp(t->self, p->addr) < 0 && !newer) {
        MP_SOMETIMES(true, "transport.tie_break");
        refuse(c, MP_EBUSY, "duplicate connection (tie-break)");
        return;
    }
    if (p->out) {
        MP_SOMETIMES(true, "transport.tie_break");
        mp__conn_close(p->out); /* abandoned: the peer's dial wins */
    }
    if (p->conn) {
        const char *sock = mp_stream_peer(c->s);
        mp_env_log(t->env, MP_LOG_INFO,
                   "transport: new connection from %s (socket %s, incarnation %u) replaces "
                   "the old one", p->addr, sock ? sock : "?", (unsigned)a.incarnation);
        mp__conn_close(p->conn);
    }
    rc = send_auth(c, MP_HELLO_OK_METHOD, a.addr, a.incarnation);
    if (rc != MP_OK) {
        mp__conn_fail(c, rc, "hello_ok write failed");
        return;
    }
    conn_open(c, a.incarnation);
}

/* Dialer: the acceptor's AUTH in hello_ok. */
static void outgoing_ok(conn *c, const mp_frame *f)
{
    mp_transport *t = c->t;
    peer *p = c->p;
    mp_auth a;
    char detail[MP_HELLO_MAX_REASON];
    const char *why = NULL;
    int rc = mp_auth_decode(f->payload.ptr, f->payload.len, &a);
    if (rc != MP_OK) {
        why = "malformed hello_ok";
        rc = MP_EPROTO;
    } else if (!mp_bytes_eq(a.addr, mp_bytes_make(p->addr, (uint32_t)p->addr_len))) {
        why = "answered by another node address";
        rc = MP_EPROTO;
    } else if (t->keyed) {
        mp_proof_input in = proof_in(c, 'A', a.addr, a.incarnation);
        if (!a.proof.len || !mp_proof_check(t->key, &in, a.proof.ptr, a.proof.len)) {
            t->auth_failures++;
            why = "the peer did not prove the cluster secret";
            rc = MP_EAUTH;
        }
    } else if (!a.ns.len) {
        why = "a proof in open mode";
        rc = MP_EPROTO;
    } else if (!mp_bytes_eq(a.ns, mp_bytes_str(t->ns))) {
        ns_mismatch(t, a.ns, detail, sizeof detail);
        why = detail;
        rc = MP_ENAMESPACE;
    }
    if (rc == MP_OK && a.incarnation < p->st.incarnation) {
        why = "stale incarnation";
        rc = MP_EPROTO;
    }
    if (rc != MP_OK) {
        p->st.refused_handshakes++;
        mp__conn_fail(c, rc, why); /* logs the reason */
        return;
    }
    conn_open(c, a.incarnation);
}

static void outgoing_refused(conn *c, const mp_frame *f)
{
    mp_transport *t = c->t;
    peer *p = c->p;
    char reason[MP_HELLO_MAX_REASON + 1];
    sanitize(reason, sizeof reason, f->payload.ptr, f->payload.len);
    if (f->status == MP_EBUSY) {
        /* Lost the tie-break: the winning connection is the peer's dial to
         * us. Not a failure; if it does not come, the backoff redials. */
        MP_SOMETIMES(true, "transport.tie_break");
        mp_env_log(t->env, MP_LOG_DEBUG, "transport: %s kept its own connection: %s", p->addr,
                   reason);
        mp__conn_close(c);
        mp__schedule_retry(p);
        return;
    }
    p->st.refused_handshakes++;
    mp_env_log(t->env, MP_LOG_WARN, "transport: %s refused us: %s (%s)", p->addr, reason,
               mp_status_name(f->status));
    char why[MP_HELLO_MAX_REASON + 32];
    snprintf(why, sizeof why, "refused by peer: %s", reason);
    mp__conn_fail(c, f->status < 0 ? f->status : MP_EPROTO, why);
}

/* Returns false when the connection got closed. */
static bool handle_frame(conn *c, const mp_frame *f)
{
    if (c->state == C_REFUSING) return true; /* ignore until closed */
    if (c->state == C_OPEN) {
        if (f->kind == MP_FRAME_SYSTEM) {
            if (method_is(f, MP_KEEPALIVE_METHOD)) {
                c->p->st.keepalives_in++; /* its bytes already counted as life */
                return true;
            }
            if (method_is(f, MP_HELLO_METHOD) || method_is(f, MP_HELLO_OK_METHOD) ||
                method_is(f, MP_AUTH_METHOD) || method_is(f, MP_HELLO_REFUSED_METHOD)) {
                mp__stats_of(c)->decode_errors++;
                mp__conn_fail(c, MP_EPROTO, "handshake frame on an open connection");
                return false;
            }
        }
        peer *p = c->p;
        p->st.frames_in++;
        p->st.bytes_in += mp_frame_encoded_size(f);
        mp_frame aged;
        uint32_t age_ms = c->t->read_age_ms;
        if (age_ms && (f->kind == MP_FRAME_REQUEST || f->kind == MP_FRAME_ONEWAY) &&
            f->ttl_ms) {
            MP_SOMETIMES(true, "transport.request_aged_by_stall");
            aged = *f;
            /* 0: expired (the runtime drops it unrun). */
            aged.ttl_ms = f->ttl_ms > age_ms ? f->ttl_ms - age_ms : 0;
            f = &aged;
        }
        if (c->t->cbs.on_frame) c->t->cbs.on_frame(c->t->ud, p->addr, f);
        return c->state == C_OPEN;
    }
    assert(c->state == C_HANDSHAKE);
    bool ok = f->kind == MP_FRAME_SYSTEM;
    if (ok && method_is(f, MP_HELLO_METHOD) && !c->got_hello) {
        peer_hello(c, f);
    } else if (ok && !c->outgoing && c->got_hello && method_is(f, MP_AUTH_METHOD)) {
        incoming_auth(c, f);
    } else if (ok && c->outgoing && c->sent_auth && method_is(f, MP_HELLO_OK_METHOD)) {
        outgoing_ok(c, f);
    } else if (ok && c->outgoing && method_is(f, MP_HELLO_REFUSED_METHOD)) {
        outgoing_refused(c, f);
    } else {
        mp__stats_of(c)->decode_errors++;
        mp__conn_fail(c, MP_EPROTO, "unexpected frame during handshake");
    }
    return c->state == C_HANDSHAKE || c->state == C_OPEN;
}

/* ---- reading ------------------------------------------------------------ */

static void on_read(void *ud, mp_stream *s, const uint8_t *data, size_t len, int status)
{
    conn *c = ud;
    if (c->state == C_CLOSING) return;
    if (status < 0) {
        if (c->state == C_REFUSING) {
            mp__conn_close(c);
            return;
        }
        mp__conn_fail(c, status, status == MP_EOF ? "peer closed" : "read failed");
        return;
    }
    /* Liveness: one clock read per read callback, never per frame. */
    uint64_t now = mp_env_now(c->t->env);
    uint64_t age = mp__stall_age(c->t, now);
    /* The peer writes at least every heartbeat (keep-alives), so a silence
     * longer than two says the bytes were held on the way (a partition that
     * TCP outlived, a stalled peer): they may be that old. Below that,
     * requests may start up to two heartbeats late (node.h). */
    uint64_t silent = now - c->last_recv;
    if (silent > 4 * c->t->hb_tick_ns) {
        MP_SOMETIMES(true, "transport.read_after_silence");
        /* The held bytes may come in several reads, not one: every read
         * for a while after the silence is judged as old as the silence
         * (exec seed 819 ran a request 1 s late when only the first read
         * was aged). Over-ageing only drops a request unrun. */
        c->backlog_from = c->last_recv;
        c->backlog_until = now + 4 * c->t->hb_tick_ns;
    }
    if (now <= c->backlog_until && now - c->backlog_from > age) {
        if (silent <= 4 * c->t->hb_tick_ns) MP_SOMETIMES(true, "transport.read_in_backlog");
        age = now - c->backlog_from;
    }
    c->last_recv = now;
    uint64_t age_ms = (age + MP_NS_PER_MS - 1) / MP_NS_PER_MS;
    c->t->read_age_ms = age_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)age_ms;
    int rc = mp_frame_decoder_feed(&c->dec, data, len);
    mp_frame f;
    bool delivered = false;
    while (rc == 0 && (rc = mp_frame_decoder_next(&c->dec, &f)) == 1) {
        delivered = delivered || c->state == C_OPEN;
        if (!handle_frame(c, &f)) return; /* closed: the decoder is done */
        rc = 0;
    }
    /* Requests just delivered usually make replies during the owner's
     * deferred work of this same turn (a node queues its run-queue drain
     * from on_frame). Queuing our flush now, behind that work, writes those
     * replies in this turn; without it the flush would be deferred from
     * inside the drain and wait one more loop turn (an extra poll per
     * request: docs/bench.md). A flush with nothing dirty does nothing. */
    if (delivered) mp__schedule_flush(c->t);
    /* A frame begun and not whole: its clock runs from its first byte, so
     * a peer trickling one byte at a time cannot hold the connection. */
    if (c->state != C_CLOSING) {
        if (!mp_frame_decoder_buffered(&c->dec))
            c->partial_since = 0;
        else if (!c->partial_since)
            c->partial_since = now;
    }
    if (rc < 0 && c->state != C_CLOSING) {
        mp_peer_stats *st = mp__stats_of(c);
        st->decode_errors++;
        if (rc == MP_ETOOBIG) st->oversize_frames++;
        mp__conn_fail(c, rc, mp_strerror(rc)); /* logs which decode error */
    }
}

/* ---- dialing and accepting ---------------------------------------------- */

static int conn_start(conn *c, mp_stream *s)
{
    mp_transport *t = c->t;
    c->s = s;
    c->state = C_HANDSHAKE;
    c->last_recv = mp_env_now(t->env);
    /* A dial's timer runs since the dial (mp__peer_dial). */
    if (!c->hs_timer)
        c->hs_timer = mp_env_timer_start(t->env, t->cfg.handshake_timeout_ns, on_hs_timeout, c);
    if (!c->hs_timer) return MP_ENOMEM;
    int rc = mp_stream_read_start(s, on_read, c);
    if (rc != MP_OK) return rc;
    return send_hello(c);
}

static void on_connect(void *ud, mp_stream *s, int status)
{
    conn *c = ud;
    if (c->state == C_CLOSING) { /* abandoned meanwhile */
        if (s) {
            c->s = s;
            mp_stream_close(s, on_conn_closed, c);
        } else {
            conn_free(c);
        }
        return;
    }
    assert(c->state == C_DIALING);
    peer *p = c->p;
    if (status < 0) {
        /* A peer that stays down fails every backoff step (up to every
         * backoff_max, forever): say it once per outage, the rest at debug. */
        if (p->fails == 0)
            mp_env_log(c->t->env, MP_LOG_INFO,
                       "transport: connect to %s failed: %s (retrying; repeats at debug)",
                       p->addr, mp_status_name(status));
        else
            mp_env_log(c->t->env, MP_LOG_DEBUG, "transport: connect to %s failed again: %s "
                       "(attempt %u)", p->addr, mp_status_name(status), (unsigned)p->fails + 1);
        if (c->hs_timer) {
            mp_env_timer_cancel(c->t->env, c->hs_timer);
            c->hs_timer = 0;
        }
        c->state = C_CLOSING;
        if (p->out == c) p->out = NULL;
        peer_lost(p, status, false);
        conn_free(c); /* last: it may finish a graceful close */
        return;
    }
    int rc = conn_start(c, s);
    if (rc != MP_OK) mp__conn_fail(c, rc, "handshake start failed");
}

void mp__peer_dial(peer *p)
{
    mp_transport *t = p->t;
    assert(!p->out && !p->conn);
    conn *c = conn_new(t, p, true);
    if (!c) {
        peer_lost(p, MP_ENOMEM, false);
        return;
    }
    c->state = C_DIALING;
    p->out = c;
    /* Bounds connect + handshake (on_hs_timeout). Without a timer the dial
     * is only unbounded, not broken: go on. */
    c->hs_timer = mp_env_timer_start(t->env, t->cfg.handshake_timeout_ns, on_hs_timeout, c);
    int rc = mp_env_connect(t->env, p->addr, on_connect, c);
    if (rc != MP_OK) {
        if (c->hs_timer) {
            mp_env_timer_cancel(t->env, c->hs_timer);
            c->hs_timer = 0;
        }
        c->state = C_CLOSING;
        p->out = NULL;
        peer_lost(p, rc, false);
        conn_free(c); /* last: it may finish a graceful close */
    }
}

/* Close a connection in handshake to give its slot to a new one (s). */
static void evict_handshake(mp_transport *t, conn *old, mp_stream *s)
{
    t->evicted++;
    MP_SOMETIMES(true, "transport.handshake_evicted");
    uint64_t now = mp_env_now(t->env);
    if (!t->evict_logged || now - t->evict_logged >= MP_NS_PER_SEC) {
        t->evict_logged = now;
        mp_env_log(t->env, MP_LOG_WARN,
                   "transport: %u connections in handshake (%u incoming): closing the oldest "
                   "to admit new ones (%llu so far; latest from %s)",
                   (unsigned)t->unattributed, (unsigned)t->incoming,
                   (unsigned long long)t->evicted, mp_stream_peer(s));
    }
    mp__conn_close(old);
}

/* A connection cap is reached and nothing can make room: close s at once. */
static void refuse_accept(mp_transport *t, mp_stream *s, const char *cap, uint32_t value)
{
    t->conn_refused++;
    MP_SOMETIMES(true, "transport.connection_refused");
    if (log_allowed(t, &t->refuse_logged))
        mp_env_log(t->env, MP_LOG_WARN,
                   "transport: refusing connection from %s: %s (%u) reached, every one past "
                   "its handshake (%llu refused so far; at most one line per second)",
                   mp_stream_peer(s), cap, (unsigned)value, (unsigned long long)t->conn_refused);
    mp_stream_close(s, NULL, NULL);
}

static void on_accept(void *ud, mp_stream *s, int status)
{
    mp_transport *t = ud;
    if (status < 0) {
        mp_env_log(t->env, MP_LOG_WARN, "transport: accept failed: %s", mp_status_name(status));
        return;
    }
    if (t->closing) {
        mp_stream_close(s, NULL, NULL);
        return;
    }
    /* The remote IP, for the per-IP cap ("host" of the socket's peer). */
    const char *sp = mp_stream_peer(s);
    char ip[HOST_CAP];
    uint16_t port = 0;
    if (!sp || mp_addr_parse(sp, ip, sizeof ip, &port) != MP_OK)
        snprintf(ip, sizeof ip, "%s", sp ? sp : "?");
    /* Connection caps, per IP then in total. A full cap first takes the
     * slot of the oldest connection still in handshake (of that IP, or of
     * any): idle or unauthenticated sockets grow old and go, so a real
     * member on the same host as a flood still gets in. Only when every
     * connection counted is past its handshake is the new one refused. */
    uint32_t same = 0;
    conn *old_same = NULL, *old_any = NULL;
    mp_list_node *n, *tmp;
    MP_LIST_FOREACH_SAFE(n, tmp, &t->conns)
    {
        conn *k = MP_CONTAINER_OF(n, conn, link);
        if (!k->counted) continue;
        bool hs = !k->p && k->state == C_HANDSHAKE;
        if (hs && !old_any) old_any = k;
        if (strcmp(k->ip, ip) == 0) {
            same++;
            if (hs && !old_same) old_same = k;
        }
    }
    if (same >= t->max_incoming_per_ip) {
        if (!old_same) {
            refuse_accept(t, s, "max_connections_per_ip", t->max_incoming_per_ip);
            return;
        }
        if (old_same == old_any) old_any = NULL;
        evict_handshake(t, old_same, s);
    }
    if (t->incoming >= t->max_incoming) {
        if (!old_any) {
            refuse_accept(t, s, "max_connections", t->max_incoming);
            return;
        }
        evict_handshake(t, old_any, s);
    }
    /* Handshake slots are bounded; when they are full the OLDEST
     * handshaking connection gives its slot to the new one. A real peer
     * handshakes within a round trip, so idle sockets (a flood, or
     * connections that never speak) cannot starve it: they are the ones
     * that grow old. One log line per second, not one per socket. */
    if (t->unattributed >= t->cfg.max_handshakes) {
        conn *old = NULL;
        MP_LIST_FOREACH_SAFE(n, tmp, &t->conns)
        {
            conn *k = MP_CONTAINER_OF(n, conn, link);
            if (!k->outgoing && !k->p && k->state == C_HANDSHAKE) {
                old = k;
                break;
            }
        }
        if (old) evict_handshake(t, old, s);
        if (t->unattributed >= t->cfg.max_handshakes) { /* cannot happen: all are in handshake */
            mp_stream_close(s, NULL, NULL);
            return;
        }
    }
    conn *c = conn_new(t, NULL, false);
    if (!c) {
        mp_stream_close(s, NULL, NULL);
        return;
    }
    t->unattributed++;
    t->incoming++;
    c->counted = true;
    snprintf(c->ip, sizeof c->ip, "%s", ip);
    int rc = conn_start(c, s);
    if (rc != MP_OK) mp__conn_fail(c, rc, "handshake start failed");
}

/* ---- writing ------------------------------------------------------------ */

/* ---- liveness ----------------------------------------------------------- */

/* ---- public API --------------------------------------------------------- */

void mp_transport_config_init(mp_transport_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->cluster_namespace = "default";
    cfg->self_addr = NULL;
    cfg->incarnation = 1;
    cfg->max_frame = MP_FRAME_DEFAULT_MAX;
    cfg->backoff_initial_ns = MP_DEFAULT_BACKOFF_INITIAL_NS;
    cfg->backoff_max_ns = MP_DEFAULT_BACKOFF_MAX_NS;
    cfg->handshake_timeout_ns = MP_DEFAULT_HANDSHAKE_TIMEOUT_NS;
    cfg->frame_timeout_ns = MP_DEFAULT_FRAME_TIMEOUT_NS;
    cfg->max_handshakes = MAX_UNATTRIBUTED;
    cfg->max_queue_frames = MP_DEFAULT_PEER_QUEUE_FRAMES;
    cfg->max_queue_bytes = MP_DEFAULT_PEER_QUEUE_BYTES;
    cfg->heartbeat_ns = MP_DEFAULT_HEARTBEAT_NS;
    cfg->peer_timeout_ns = MP_DEFAULT_PEER_TIMEOUT_NS;
}

static int apply_config(mp_transport *t, const mp_transport_config *in)
{
    mp_transport_config d;
    mp_transport_config_init(&d);
    mp_transport_config *c = &t->cfg;
    *c = *in;
    if (!c->max_frame) c->max_frame = d.max_frame;
    if (!c->backoff_initial_ns) c->backoff_initial_ns = d.backoff_initial_ns;
    if (!c->backoff_max_ns) c->backoff_max_ns = d.backoff_max_ns;
    if (!c->handshake_timeout_ns) c->handshake_timeout_ns = d.handshake_timeout_ns;
    if (!c->frame_timeout_ns) c->frame_timeout_ns = d.frame_timeout_ns;
    if (!c->max_handshakes) c->max_handshakes = d.max_handshakes;
    if (!c->max_queue_frames) c->max_queue_frames = d.max_queue_frames;
    if (!c->max_queue_bytes) c->max_queue_bytes = d.max_queue_bytes;
    if (!c->heartbeat_ns) c->heartbeat_ns = d.heartbeat_ns;
    if (!c->peer_timeout_ns) c->peer_timeout_ns = d.peer_timeout_ns;
    if (c->max_frame < MIN_MAX_FRAME || c->max_frame > MP_FRAME_MAX_LIMIT) return MP_EINVAL;
    if (mp_transport_liveness_error(c->heartbeat_ns, c->peer_timeout_ns)) return MP_EINVAL;
    t->hb_tick_ns = c->heartbeat_ns / 2;
    if (c->backoff_max_ns < c->backoff_initial_ns) return MP_EINVAL;
    if (c->incarnation == 0) return MP_EINVAL;
    const char *ns = in->cluster_namespace;
    if (!ns || !mp_hello_ns_valid((const uint8_t *)ns, strnlen(ns, MP_HELLO_MAX_NS + 1)))
        return MP_EINVAL;
    strcpy(t->ns, ns);
    c->cluster_namespace = t->ns;
    const char *self = in->self_addr;
    char host[HOST_CAP];
    uint16_t port;
    if (!self || strnlen(self, ADDR_CAP) >= ADDR_CAP ||
        mp_addr_parse(self, host, sizeof host, &port) != MP_OK)
        return MP_EADDR;
    strcpy(t->self, self);
    c->self_addr = t->self;
    return MP_OK;
}

int mp_transport_create(mp_env *env, const mp_transport_config *cfg,
                        const mp_transport_callbacks *cbs, void *ud, mp_transport **out)
{
    if (!env || !cfg || !out) return MP_EINVAL;
    *out = NULL;
    mp_transport *t = calloc(1, sizeof *t);
    if (!t) return MP_ENOMEM;
    t->env = env;
    int rc = apply_config(t, cfg);
    if (rc != MP_OK) {
        free(t);
        return rc;
    }
    if (cbs) t->cbs = *cbs;
    t->ud = ud;
    /* Authentication and caps: the process's policy (env.h). */
    t->keyed = env->net.has_key != 0;
    if (t->keyed) memcpy(t->key, env->net.key, sizeof t->key);
    t->max_incoming = env->net.max_connections ? env->net.max_connections : MAX_INCOMING;
    t->max_incoming_per_ip =
        env->net.max_connections_per_ip ? env->net.max_connections_per_ip : MAX_INCOMING_PER_IP;
    {
        mp_frame kf;
        mp_hello_frame(&kf, MP_KEEPALIVE_METHOD, mp_bytes_make(NULL, 0), 0);
        rc = mp_frame_encode(&kf, t->ka_frame, sizeof t->ka_frame, &t->ka_len, t->cfg.max_frame);
        assert(rc == MP_OK); /* a constant frame, sized by KA_FRAME_CAP */
        if (rc != MP_OK) {
            free(t);
            return MP_EINTERNAL;
        }
    }
    mp_list_init(&t->peers);
    mp_list_init(&t->conns);
    mp_list_init(&t->dirty);
    rc = mp_map_str_init_seeded(&t->peer_map, 16, mp_env_random(env));
    if (rc != MP_OK) {
        free(t);
        return rc;
    }
    rc = mp_env_listen(env, t->self, on_accept, t, &t->listener);
    if (rc != MP_OK) {
        mp_map_str_free(&t->peer_map);
        free(t);
        return rc;
    }
    t->listener_open = true;
    char host[HOST_CAP];
    uint16_t port = 0;
    if (mp_addr_parse(t->self, host, sizeof host, &port) == MP_OK && port == 0) {
        int bound = mp_listener_port(t->listener);
        char tmp[HOST_CAP + 16];
        int n = snprintf(tmp, sizeof tmp, "%s:%u", host, (unsigned)(bound & 0xffff));
        if (bound > 0 && n > 0 && (size_t)n < sizeof t->self) memcpy(t->self, tmp, (size_t)n + 1);
    }
    *out = t;
    return MP_OK;
}

const char *mp_transport_self_addr(const mp_transport *t) { return t->self; }

bool mp_transport_peer_unreachable(mp_transport *t, const char *addr)
{
    if (!t || !addr) return false;
    peer *p = mp__peer_named(t, addr);
    return p && p->fails > 0 && !p->conn;
}

const char *mp_transport_peer_error(mp_transport *t, const char *addr)
{
    if (!t || !addr) return NULL;
    peer *p = mp__peer_named(t, addr);
    return p && p->why[0] ? p->why : NULL;
}

/* ---- teardown ----------------------------------------------------------- */

