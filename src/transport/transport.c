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
 * Queue and batching. mp_transport_send encodes the frame at once at the end
 * of peer->pending. A single transport-wide deferred flush walks the peers
 * made dirty during the turn; a peer whose connection is open and idle swaps
 * its pending buffer with the connection's (empty) write buffer and writes it
 * as ONE mp_stream_write. While that write is in flight new frames accumulate
 * in pending; the write callback empties the written buffer (memory kept) and
 * marks the peer dirty again. The write buffer belongs to the connection, not
 * the peer: a broken connection may report its cancelled write after a new
 * connection is already up, and the new one must not wait for (or share) the
 * old buffer. Frames in a write that then fails are lost (TCP cannot say how
 * much arrived; transport.h's contract); frames still in pending stay for the
 * next connection, so per peer the frames handed to connections form
 * contiguous, ordered runs: never a duplicate, never a reorder.
 * queue_frames/bytes count pending plus in-flight frames (the memory held).
 *
 * Handshake. Both ends send HELLO at once (handshake.h). The dialer checks
 * the acceptor's HELLO (namespace, version, the address it dialed) and waits
 * for hello_ok; the acceptor checks the dialer's HELLO and answers hello_ok
 * (the connection is then open on its side) or hello_refused with a reason,
 * written before the stream is closed from the write callback so the reason
 * reaches the dialer. A handshake timer closes a connection that does not get
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
 * Liveness. One transport-wide timer ticks every heartbeat/2 while a
 * connection is open (it stops when none is, so an idle transport never
 * wakes). Per open connection it keeps two cheap facts: last_recv, the
 * env time read once per read callback (not per frame), and idle_ticks,
 * ticks since the last write was issued (a plain store in peer_flush, no
 * clock read on the send path). A tick closes a connection whose last_recv
 * is peer_timeout old (MP_ETIMEDOUT, through conn_fail: on_peer_down and
 * the reconnect logic take over) and writes a keep-alive on one that has
 * issued no write for two ticks and has none in flight. The keep-alive is
 * a constant frame encoded once per transport and written from that buffer
 * (the transport outlives every write callback); it is not queued, so it
 * never shows in the queue counters nor delays a flush. A tick that comes
 * more than a tick late means our own loop was stalled (a long callback):
 * bytes may be waiting unread, so that tick judges no connection.
 *
 * Outage logging. peer.fails counts failed dials/handshakes since the last
 * open connection: the first is logged at info, the rest at debug, and the
 * open that ends the outage logs its count and length once at info.
 *
 * Teardown. Graceful close waits (bounded) for queues to drain, then closes
 * everything and frees the transport from the last close callback, never
 * synchronously inside a caller's frame. free_now is for a dead simulated
 * env, whose close calls free at once and run no callback.
 */
#include "transport/transport.h"

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

#define ADDR_CAP (MP_HELLO_MAX_ADDR + 1)
#define HOST_CAP 64
/* A HELLO frame: header + method + payload; generous. */
#define HELLO_FRAME_CAP (MP_FRAME_MIN_SIZE + 16 + MP_HELLO_MAX_PAYLOAD)
#define REPLY_FRAME_CAP (MP_FRAME_MIN_SIZE + 16 + MP_HELLO_MAX_REASON)
#define MIN_MAX_FRAME 512u
/* Incoming connections still in handshake, beyond which accepts are closed
 * at once: an unknown client cannot make us hold unbounded state. */
#define MAX_UNATTRIBUTED 1024u
#define BUGGIFY_FLUSH_DELAY_NS (2 * MP_NS_PER_MS)
/* The keep-alive frame: an empty system frame with its method. */
#define KA_FRAME_CAP (MP_FRAME_MIN_SIZE + sizeof MP_KEEPALIVE_METHOD)

enum conn_state {
    C_DIALING,   /* connect in flight, no stream yet */
    C_HANDSHAKE, /* stream up, HELLO sent */
    C_OPEN,      /* data flows */
    C_REFUSING,  /* refusal written, closes from its write callback */
    C_CLOSING    /* mp_stream_close called (or dial abandoned) */
};

typedef struct peer peer;

typedef struct conn {
    mp_list_node link; /* t->conns */
    mp_transport *t;
    peer *p; /* outgoing: the dialed peer; incoming: set once accepted */
    mp_stream *s;
    int state;
    bool outgoing;
    bool got_hello; /* dialer: the acceptor's HELLO was valid */
    uint32_t peer_inc;
    mp_timer_id hs_timer;
    mp_frame_decoder dec;
    mp_buf wbuf;      /* frames being written (swapped from peer->pending) */
    uint32_t wframes; /* frames in wbuf */
    bool writing;
    bool ka_writing;     /* a keep-alive write is in flight */
    uint32_t idle_ticks; /* heartbeat ticks since the last write issued */
    uint64_t last_recv;  /* env time of the last read callback with bytes */
    uint64_t partial_since; /* env time a still incomplete frame began; 0: none */
    uint8_t hello[HELLO_FRAME_CAP];
    uint8_t reply[REPLY_FRAME_CAP];
} conn;

struct peer {
    mp_list_node link;       /* t->peers */
    mp_list_node dirty_link; /* t->dirty while a flush is wanted */
    mp_transport *t;
    char addr[ADDR_CAP];
    size_t addr_len;
    conn *out;  /* our dial, before it is open */
    conn *conn; /* the open connection */
    mp_buf pending;
    uint32_t pending_frames;
    uint64_t pending_since; /* env time the oldest pending frame was queued */
    uint32_t q_frames; /* pending + in flight */
    uint64_t q_bytes;
    mp_timer_id retry_timer;
    uint32_t attempts; /* failures since the last open connection */
    mp_peer_stats st;  /* counters; queue/connected filled on read */
    /* MP_ENAMESPACE / MP_EVERSION while the last handshake was refused for
     * that (cleared by an open connection): sends fail at once. */
    int refused;
    bool probe; /* a send was refused: keep redialing though none queued */
    uint32_t fails;   /* failed dials/handshakes since the last open: logs, unreachable */
    bool in_outage;   /* lost since the last open connection */
    uint64_t outage_since; /* env time the outage began */
    char why[MP_HELLO_MAX_REASON + 1]; /* last failure, for the layer above */
};

struct mp_transport {
    mp_env *env;
    mp_transport_config cfg;
    char ns[MP_HELLO_MAX_NS + 1];
    char self[ADDR_CAP];
    mp_transport_callbacks cbs;
    void *ud;
    mp_listener *listener;
    bool listener_open; /* its close callback has not run yet */
    mp_map_str peer_map;
    mp_list_node peers;
    mp_list_node conns;
    mp_list_node dirty;
    peer *last; /* the peer of the latest send (see mp_transport_send) */
    uint32_t unattributed; /* incoming conns in handshake */
    uint64_t evicted;      /* handshaking conns closed to make room */
    uint64_t evict_logged; /* env time of the last eviction log line */
    bool flush_scheduled;
    bool defer_pending; /* a defer we cannot cancel is queued */
    mp_timer_id flush_timer;
    mp_peer_stats orphan; /* counters of conns never attributed to a peer */
    /* liveness (see the top comment) */
    mp_timer_id hb_timer;
    uint64_t hb_tick_ns; /* heartbeat / 2 */
    uint64_t hb_due;     /* when the armed tick should fire */
    /* The last stall of our own loop a tick saw: when, and how long the
     * loop had not run (see stall_age). */
    uint64_t stall_seen, stall_ns;
    uint32_t read_age_ms; /* requests of the current read: their wait */
    uint8_t ka_frame[KA_FRAME_CAP];
    size_t ka_len;
    /* graceful close */
    bool closing, shutdown;
    mp_timer_id close_timer;
    void (*close_cb)(void *ud);
    void *close_ud;
};

/* ---- small helpers ------------------------------------------------------ */

static void conn_fail(conn *c, int status, const char *why);
static void schedule_flush(mp_transport *t);
static void hb_arm(mp_transport *t);
static void close_progress(mp_transport *t);

/* Copy up to cap-1 bytes for a log line, replacing anything unprintable:
 * reasons and addresses come from the network. */
static void sanitize(char *dst, size_t cap, const uint8_t *p, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++) dst[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    dst[n] = '\0';
}

static bool method_is(const mp_frame *f, const char *m)
{
    return mp_bytes_eq(f->method, mp_bytes_str(m));
}

static mp_peer_stats *stats_of(conn *c)
{
    return c->p ? &c->p->st : &c->t->orphan;
}

static bool addr_ok(const char *addr)
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
static peer *peer_named(mp_transport *t, const char *addr)
{
    size_t n = strnlen(addr, ADDR_CAP);
    return n < ADDR_CAP ? peer_find(t, addr, n) : NULL;
}

static peer *peer_get(mp_transport *t, const char *addr, size_t len)
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

static void peer_mark_dirty(peer *p)
{
    if (!mp_list_node_linked(&p->dirty_link)) mp_list_push_back(&p->t->dirty, &p->dirty_link);
    schedule_flush(p->t);
}

/* Graceful close: frames queued for a peer that has no open connection
 * would only hold the close until its deadline (a dead or refusing peer
 * never takes them), so they are dropped, counted and logged. Frames
 * already handed to a connection (in flight) are left to its write
 * callback. */
static void peer_drop_pending(peer *p, const char *why)
{
    if (p->pending_frames == 0) return;
    mp_transport *t = p->t;
    assert(p->q_frames >= p->pending_frames && p->q_bytes >= p->pending.len);
    p->q_frames -= p->pending_frames;
    p->q_bytes -= p->pending.len;
    p->st.dropped_frames += p->pending_frames;
    mp_env_log(t->env, MP_LOG_INFO, "transport: closing: dropped %u frame(s) queued for %s (%s)",
               (unsigned)p->pending_frames, p->addr, why);
    p->pending_frames = 0;
    mp_buf_reset(&p->pending);
    if (mp_list_node_linked(&p->dirty_link)) mp_list_remove(&p->dirty_link);
    if (p->retry_timer) {
        mp_env_timer_cancel(t->env, p->retry_timer);
        p->retry_timer = 0;
    }
}

size_t mp_transport_drop_queued(mp_transport *t, const char *addr,
                                mp_transport_dropped_cb on_dropped, void *ud)
{
    peer *p = t && addr ? peer_named(t, addr) : NULL;
    if (!p || p->pending_frames == 0) return 0;
    size_t count = p->pending_frames;
    /* pending holds whole encoded frames back to back (frame.h layout):
     * u32 length of the rest, then magic, version, kind at 9, correlation
     * id at 12. They were encoded here, so the walk trusts the lengths. */
    const uint8_t *b = p->pending.data;
    size_t off = 0, seen = 0;
    while (off < p->pending.len) {
        assert(p->pending.len - off >= MP_FRAME_MIN_SIZE);
        size_t flen = 4 + (size_t)mp_get_le32(b + off);
        assert(flen <= p->pending.len - off);
        if (on_dropped) on_dropped(ud, b[off + 9], mp_get_le64(b + off + 12));
        off += flen;
        seen++;
    }
    assert(seen == count);
    MP_SOMETIMES(true, "transport.queued_dropped");
    assert(p->q_frames >= p->pending_frames && p->q_bytes >= p->pending.len);
    p->q_frames -= p->pending_frames;
    p->q_bytes -= p->pending.len;
    p->st.dropped_frames += p->pending_frames;
    p->pending_frames = 0;
    mp_buf_reset(&p->pending);
    if (mp_list_node_linked(&p->dirty_link)) mp_list_remove(&p->dirty_link);
    mp_env_log(t->env, MP_LOG_DEBUG, "transport: dropped %zu frame(s) queued for %s", count,
               p->addr);
    return count;
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

static void peer_dial(peer *p);

static void on_retry(void *ud)
{
    peer *p = ud;
    p->retry_timer = 0;
    if (p->t->shutdown || p->conn || p->out) return;
    if (p->pending_frames > 0 || p->probe) peer_dial(p);
}

static void schedule_retry(peer *p)
{
    mp_transport *t = p->t;
    if (t->closing) {
        /* No redial while closing: what waits for this peer goes now. */
        if (!p->conn && !p->out) peer_drop_pending(p, "connection lost while closing");
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
    close_progress(t);
}

static void on_conn_closed(void *ud) { conn_free(ud); }

/* Mechanics only: detach from the peer and close. Frees later (close
 * callback, or the connect callback of an abandoned dial). */
static void conn_close(conn *c)
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
    schedule_retry(p);
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
static void conn_fail_at(conn *c, int status, const char *why, int level)
{
    if (c->state == C_CLOSING) return;
    mp_transport *t = c->t;
    peer *p = c->p;
    bool attached = p && (p->conn == c || p->out == c);
    bool was_open = c->state == C_OPEN;
    if (level < 0) {
        level = expected_close(status) ? MP_LOG_INFO : MP_LOG_WARN;
        if (level == MP_LOG_INFO && attached && !was_open && p->fails > 0) level = MP_LOG_DEBUG;
    }
    /* The claimed address (a peer's handshake says who it is) beside the
     * socket's own: a forger shows up as the socket it really came from. */
    const char *sock = c->s ? mp_stream_peer(c->s) : NULL;
    mp_env_log(t->env, (mp_log_level)level, "transport: connection %s %s%s%s%s closed: %s (%s)",
               c->outgoing ? "to" : "from", p ? p->addr : (sock ? sock : "(unknown)"),
               p && sock && !c->outgoing ? " (socket " : "", p && sock && !c->outgoing ? sock : "",
               p && sock && !c->outgoing ? ")" : "", why, mp_status_name(status));
    conn_close(c);
    if (attached) {
        snprintf(p->why, sizeof p->why, "%s", why);
        if (status == MP_ENAMESPACE || status == MP_EVERSION) p->refused = status;
        peer_lost(p, status, was_open);
    }
}

static void conn_fail(conn *c, int status, const char *why) { conn_fail_at(c, status, why, -1); }

static void on_hs_timeout(void *ud)
{
    conn *c = ud;
    c->hs_timer = 0;
    /* A dial is bounded too (the timer starts with it): a connect to a
     * machine that is gone would otherwise wait for the kernel's SYN
     * retries, minutes, while calls queue behind it. */
    conn_fail(c, MP_ETIMEDOUT, c->state == C_DIALING ? "connect timeout" : "handshake timeout");
}

static void on_ctl_write(void *ud, int status)
{
    conn *c = ud;
    if (status < 0 && c->state != C_CLOSING) conn_fail(c, status, "handshake write failed");
}

static void on_refusal_written(void *ud, int status)
{
    conn *c = ud;
    conn_close(c); /* the reason went out (or could not): either way, done */
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

static int send_hello(conn *c)
{
    mp_transport *t = c->t;
    uint8_t payload[MP_HELLO_MAX_PAYLOAD];
    size_t n = 0;
    mp_hello h = {MP_HELLO_VERSION, mp_bytes_str(t->ns), mp_bytes_str(t->self),
                  t->cfg.incarnation};
    int rc = mp_hello_encode(&h, payload, sizeof payload, &n);
    assert(rc == MP_OK);
    if (rc != MP_OK) return rc;
    /* The frame encoder copies the payload into c->hello, which stays valid
     * until the conn is freed (after every write callback). */
    return write_ctl(c, c->hello, sizeof c->hello, MP_HELLO_METHOD,
                     mp_bytes_make(payload, (uint32_t)n), 0, on_ctl_write);
}

/* Refuse an incoming handshake: log, count, write the reason, close after. */
static void refuse(conn *c, int reason, const char *fmt_reason)
{
    mp_transport *t = c->t;
    if (reason != MP_EBUSY) stats_of(c)->refused_handshakes++;
    mp_env_log(t->env, reason == MP_EBUSY ? MP_LOG_INFO : MP_LOG_WARN,
               "transport: refusing connection from %s: %s (%s)",
               c->p ? c->p->addr : mp_stream_peer(c->s), fmt_reason, mp_status_name(reason));
    if (c->hs_timer) {
        mp_env_timer_cancel(t->env, c->hs_timer);
        c->hs_timer = 0;
    }
    size_t rlen = strlen(fmt_reason);
    if (rlen > MP_HELLO_MAX_REASON) rlen = MP_HELLO_MAX_REASON;
    int rc = write_ctl(c, c->reply, sizeof c->reply, MP_HELLO_REFUSED_METHOD,
                       mp_bytes_make(fmt_reason, (uint32_t)rlen), reason, on_refusal_written);
    if (rc != MP_OK) {
        conn_close(c);
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
    if (p->conn && p->conn != c) conn_close(p->conn); /* cannot happen by the rule; be safe */
    if (p->out) conn_close(p->out);
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
    hb_arm(t);
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
    if (MP_BUGGIFY_P(0.05)) {
        /* A connection that dies right after its handshake: queued frames
         * must wait for the next one, none may be lost or doubled. */
        conn_fail(c, MP_ECONNRESET, "buggify: drop after handshake");
        return;
    }
    if (p->pending.len > 0) {
        MP_SOMETIMES(reconnect, "transport.flush_after_reconnect");
        peer_mark_dirty(p);
    }
}

/* ---- handshake frames --------------------------------------------------- */

/* Validate a HELLO's fields common to both sides. Returns 0 or a refusal
 * status with *why set. */
static int check_hello(conn *c, const mp_frame *f, mp_hello *h, char *addr, const char **why)
{
    mp_transport *t = c->t;
    int rc = mp_hello_decode(f->payload.ptr, f->payload.len, h);
    if (rc == MP_EVERSION) {
        *why = "protocol version mismatch";
        return MP_EVERSION;
    }
    if (rc != MP_OK) {
        *why = "malformed hello";
        return MP_EPROTO;
    }
    if (!mp_bytes_eq(h->ns, mp_bytes_str(t->ns))) {
        *why = "namespace mismatch";
        return MP_ENAMESPACE;
    }
    memcpy(addr, h->addr.ptr, h->addr.len);
    addr[h->addr.len] = '\0';
    if (!addr_ok(addr)) {
        *why = "bad node address";
        return MP_EPROTO;
    }
    if (strcmp(addr, t->self) == 0) {
        *why = "peer claims our own address";
        return MP_EPROTO;
    }
    return MP_OK;
}

static void incoming_hello(conn *c, const mp_frame *f)
{
    mp_transport *t = c->t;
    mp_hello h;
    char addr[ADDR_CAP];
    const char *why = NULL;
    int rc = check_hello(c, f, &h, addr, &why);
    if (rc != MP_OK) {
        /* The reason goes back to the dialer too: say what we saw. */
        char ns[MP_HELLO_MAX_NS + 1] = "";
        char reason[MP_HELLO_MAX_REASON];
        if (h.ns.len) sanitize(ns, sizeof ns, h.ns.ptr, h.ns.len);
        if (rc == MP_ENAMESPACE)
            snprintf(reason, sizeof reason, "%s (ours '%.40s', theirs '%.40s')", why, t->ns, ns);
        else if (rc == MP_EVERSION)
            snprintf(reason, sizeof reason, "%s (ours %u, theirs %u)", why,
                     (unsigned)MP_HELLO_VERSION, (unsigned)h.version);
        else
            snprintf(reason, sizeof reason, "%s", why);
        refuse(c, rc, reason);
        return;
    }
    peer *p = peer_get(t, addr, h.addr.len);
    if (!p) {
        conn_fail(c, MP_ENOMEM, "no memory for peer");
        return;
    }
    /* Attributed from now on. */
    assert(t->unattributed > 0);
    t->unattributed--;
    c->p = p;
    if (h.incarnation < p->st.incarnation) {
        refuse(c, MP_EPROTO, "stale incarnation");
        return;
    }
    bool newer = p->st.incarnation != 0 && h.incarnation > p->st.incarnation;
    bool have_out = p->out || (p->conn && p->conn->outgoing);
    if (have_out && strcmp(t->self, p->addr) < 0 && !newer) {
        MP_SOMETIMES(true, "transport.tie_break");
        refuse(c, MP_EBUSY, "duplicate connection (tie-break)");
        return;
    }
    if (p->out) {
        MP_SOMETIMES(true, "transport.tie_break");
        conn_close(p->out); /* abandoned: the peer's dial wins */
    }
    if (p->conn) {
        mp_env_log(t->env, MP_LOG_INFO, "transport: new connection from %s replaces the old one",
                   p->addr);
        conn_close(p->conn);
    }
    rc = write_ctl(c, c->reply, sizeof c->reply, MP_HELLO_OK_METHOD, mp_bytes_make(NULL, 0), 0,
                   on_ctl_write);
    if (rc != MP_OK) {
        conn_fail(c, rc, "hello_ok write failed");
        return;
    }
    conn_open(c, h.incarnation);
}

static void outgoing_hello(conn *c, const mp_frame *f)
{
    peer *p = c->p;
    mp_hello h;
    char addr[ADDR_CAP];
    const char *why = NULL;
    int rc = check_hello(c, f, &h, addr, &why);
    if (rc == MP_OK && strcmp(addr, p->addr) != 0) {
        why = "answered by another node address";
        rc = MP_EPROTO;
    }
    if (rc == MP_OK && h.incarnation < p->st.incarnation) {
        why = "stale incarnation";
        rc = MP_EPROTO;
    }
    if (rc != MP_OK) {
        char detail[MP_HELLO_MAX_REASON];
        if (rc == MP_ENAMESPACE) {
            char ns[MP_HELLO_MAX_NS + 1];
            sanitize(ns, sizeof ns, h.ns.ptr, h.ns.len);
            snprintf(detail, sizeof detail, "%s (ours '%.40s', theirs '%.40s')", why,
                     c->t->ns, ns);
            why = detail;
        } else if (rc == MP_EVERSION) {
            snprintf(detail, sizeof detail, "%s (ours %u, theirs %u)", why,
                     (unsigned)MP_HELLO_VERSION, (unsigned)h.version);
            why = detail;
        }
        p->st.refused_handshakes++;
        conn_fail(c, rc, why); /* logs the reason */
        return;
    }
    c->got_hello = true;
    c->peer_inc = h.incarnation;
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
        mp_env_log(t->env, MP_LOG_INFO, "transport: %s kept its own connection: %s", p->addr,
                   reason);
        conn_close(c);
        schedule_retry(p);
        return;
    }
    p->st.refused_handshakes++;
    mp_env_log(t->env, MP_LOG_WARN, "transport: %s refused us: %s (%s)", p->addr, reason,
               mp_status_name(f->status));
    char why[MP_HELLO_MAX_REASON + 32];
    snprintf(why, sizeof why, "refused by peer: %s", reason);
    conn_fail(c, f->status < 0 ? f->status : MP_EPROTO, why);
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
                method_is(f, MP_HELLO_REFUSED_METHOD)) {
                stats_of(c)->decode_errors++;
                conn_fail(c, MP_EPROTO, "handshake frame on an open connection");
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
        if (c->outgoing)
            outgoing_hello(c, f);
        else
            incoming_hello(c, f);
    } else if (ok && c->outgoing && c->got_hello && method_is(f, MP_HELLO_OK_METHOD)) {
        conn_open(c, c->peer_inc);
    } else if (ok && c->outgoing && method_is(f, MP_HELLO_REFUSED_METHOD)) {
        outgoing_refused(c, f);
    } else {
        stats_of(c)->decode_errors++;
        conn_fail(c, MP_EPROTO, "unexpected frame during handshake");
    }
    return c->state == C_HANDSHAKE || c->state == C_OPEN;
}

/* ---- reading ------------------------------------------------------------ */

/* How long bytes read now may have sat unread because our own loop did not
 * run (the process was stopped, or a callback ran long): from the last tick
 * that certainly ran to now. The tick runs every hb_tick_ns while a
 * connection is open, so a tick overdue by more than a tick says the loop
 * stalled; a tick that already fired late said so just before (reads
 * that follow it within a tick get its figure). 0 when the loop ran. The
 * requests in such bytes are aged by it (handle_frame): the sender counted
 * their ttl from when it wrote them, and a request must never start a turn
 * after its caller's deadline (node.h). */
static uint64_t stall_age(const mp_transport *t, uint64_t now)
{
    if (t->hb_timer && now > t->hb_due + t->hb_tick_ns)
        return now - (t->hb_due - t->hb_tick_ns);
    if (t->stall_ns && now - t->stall_seen < t->hb_tick_ns) return t->stall_ns;
    return 0;
}

static void on_read(void *ud, mp_stream *s, const uint8_t *data, size_t len, int status)
{
    conn *c = ud;
    if (c->state == C_CLOSING) return;
    if (status < 0) {
        if (c->state == C_REFUSING) {
            conn_close(c);
            return;
        }
        conn_fail(c, status, status == MP_EOF ? "peer closed" : "read failed");
        return;
    }
    /* Liveness: one clock read per read callback, never per frame. */
    uint64_t now = mp_env_now(c->t->env);
    uint64_t age = stall_age(c->t, now);
    /* The peer writes at least every heartbeat (keep-alives), so a silence
     * longer than two says the bytes were held on the way (a partition that
     * TCP outlived, a stalled peer): they may be that old. Below that,
     * requests may start up to two heartbeats late (node.h). */
    uint64_t silent = now - c->last_recv;
    if (silent > 4 * c->t->hb_tick_ns && silent > age) {
        MP_SOMETIMES(true, "transport.read_after_silence");
        age = silent;
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
    if (delivered) schedule_flush(c->t);
    /* A frame begun and not whole: its clock runs from its first byte, so
     * a peer trickling one byte at a time cannot hold the connection. */
    if (c->state != C_CLOSING) {
        if (!mp_frame_decoder_buffered(&c->dec))
            c->partial_since = 0;
        else if (!c->partial_since)
            c->partial_since = now;
    }
    if (rc < 0 && c->state != C_CLOSING) {
        mp_peer_stats *st = stats_of(c);
        st->decode_errors++;
        if (rc == MP_ETOOBIG) st->oversize_frames++;
        conn_fail(c, rc, mp_strerror(rc)); /* logs which decode error */
    }
}

/* ---- dialing and accepting ---------------------------------------------- */

static int conn_start(conn *c, mp_stream *s)
{
    mp_transport *t = c->t;
    c->s = s;
    c->state = C_HANDSHAKE;
    c->last_recv = mp_env_now(t->env);
    /* A dial's timer runs since the dial (peer_dial). */
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
    if (rc != MP_OK) conn_fail(c, rc, "handshake start failed");
}

static void peer_dial(peer *p)
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
    /* Handshake slots are bounded; when they are full the OLDEST
     * handshaking connection gives its slot to the new one. A real peer
     * handshakes within a round trip, so idle sockets (a flood, or
     * connections that never speak) cannot starve it: they are the ones
     * that grow old. One log line per second, not one per socket. */
    if (t->unattributed >= t->cfg.max_handshakes) {
        conn *old = NULL;
        mp_list_node *n, *tmp;
        MP_LIST_FOREACH_SAFE(n, tmp, &t->conns)
        {
            conn *k = MP_CONTAINER_OF(n, conn, link);
            if (!k->outgoing && !k->p && k->state == C_HANDSHAKE) {
                old = k;
                break;
            }
        }
        if (old) {
            t->evicted++;
            MP_SOMETIMES(true, "transport.handshake_evicted");
            uint64_t now = mp_env_now(t->env);
            if (!t->evict_logged || now - t->evict_logged >= MP_NS_PER_SEC) {
                t->evict_logged = now;
                mp_env_log(t->env, MP_LOG_WARN,
                           "transport: %u connections in handshake: closing the oldest to "
                           "admit new ones (%llu so far; latest from %s)",
                           (unsigned)t->unattributed, (unsigned long long)t->evicted,
                           mp_stream_peer(s));
            }
            conn_close(old);
        }
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
    int rc = conn_start(c, s);
    if (rc != MP_OK) conn_fail(c, rc, "handshake start failed");
}

/* ---- writing ------------------------------------------------------------ */

static void on_data_write(void *ud, int status)
{
    conn *c = ud;
    peer *p = c->p;
    assert(p && c->writing);
    assert(p->q_frames >= c->wframes && p->q_bytes >= c->wbuf.len);
    p->q_frames -= c->wframes;
    p->q_bytes -= c->wbuf.len;
    if (status == MP_OK) {
        p->st.frames_out += c->wframes;
        p->st.bytes_out += c->wbuf.len;
    }
    c->wframes = 0;
    mp_buf_reset(&c->wbuf);
    c->writing = false;
    if (status < 0) {
        if (c->state != C_CLOSING) conn_fail(c, status, "write failed");
    } else if (c->state == C_OPEN && p->pending.len > 0) {
        peer_mark_dirty(p);
    }
    close_progress(c->t);
}

/* Requests that waited in the queue (the connection was down) have less
 * time left than their ttl says: the ttl was computed when they were queued,
 * and the receiver counts its deadline from their arrival. Every pending
 * frame is aged by the wait of the oldest (never more time than it has,
 * sometimes less), and one with no time left is dropped: its caller has
 * given up, and it must not start a turn after its deadline (at most once,
 * node.h). Below a millisecond (the usual one-turn wait) nothing changes. */
static void peer_age_pending(peer *p)
{
    mp_transport *t = p->t;
    uint64_t waited = mp_env_now(t->env) - p->pending_since;
    if (waited < MP_NS_PER_MS) return;
    uint64_t waited_ms = waited / MP_NS_PER_MS;
    uint8_t *b = p->pending.data;
    size_t off = 0, end = p->pending.len;
    uint32_t expired = 0;
    while (off < end) {
        size_t flen = mp_frame_peek_size(b + off);
        assert(flen >= MP_FRAME_MIN_SIZE && flen <= end - off);
        uint8_t kind = mp_frame_peek_kind(b + off);
        uint32_t ttl = mp_frame_peek_ttl(b + off);
        if ((kind == MP_FRAME_REQUEST || kind == MP_FRAME_ONEWAY) && ttl > 0) {
            if (ttl <= waited_ms) {
                memmove(b + off, b + off + flen, end - off - flen);
                end -= flen;
                expired++;
                assert(p->q_frames > 0 && p->q_bytes >= flen && p->pending_frames > 0);
                p->pending_frames--;
                p->q_frames--;
                p->q_bytes -= flen;
                continue;
            }
            mp_frame_set_ttl(b + off, ttl - (uint32_t)waited_ms);
        }
        off += flen;
    }
    p->pending.len = end;
    if (expired) {
        MP_SOMETIMES(true, "transport.queued_request_expired");
        p->st.dropped_frames += expired;
        mp_env_log(t->env, MP_LOG_DEBUG,
                   "transport: %u request(s) queued for %s expired before they could be sent",
                   (unsigned)expired, p->addr);
    }
}

static void peer_flush(peer *p)
{
    conn *c = p->conn;
    if (!c || c->state != C_OPEN || c->writing || p->pending.len == 0) return;
    peer_age_pending(p);
    if (p->pending.len == 0) return;
    assert(c->wbuf.len == 0 && c->wframes == 0);
    mp_buf tmp = c->wbuf;
    c->wbuf = p->pending;
    p->pending = tmp;
    c->wframes = p->pending_frames;
    p->pending_frames = 0;
    c->writing = true;
    c->idle_ticks = 0; /* a write is as good as a keep-alive */
    mp_iovec iov = {c->wbuf.data, c->wbuf.len};
    int rc = mp_stream_write(c->s, &iov, 1, on_data_write, c);
    if (rc != MP_OK) {
        /* Nothing was written: the frames go back to the queue, in front of
         * nothing (pending was empty since the swap). */
        tmp = p->pending;
        p->pending = c->wbuf;
        c->wbuf = tmp;
        p->pending_frames = c->wframes;
        c->wframes = 0;
        c->writing = false;
        conn_fail(c, rc, "write refused");
    }
}

static void flush_all(mp_transport *t)
{
    t->flush_scheduled = false;
    mp_list_node *n;
    while ((n = mp_list_pop_front(&t->dirty)) != NULL)
        peer_flush(MP_CONTAINER_OF(n, peer, dirty_link));
    close_progress(t);
}

static void on_flush_defer(void *ud)
{
    mp_transport *t = ud;
    t->defer_pending = false;
    flush_all(t);
}

static void on_flush_timer(void *ud)
{
    mp_transport *t = ud;
    t->flush_timer = 0;
    flush_all(t);
}

static void schedule_flush(mp_transport *t)
{
    if (t->flush_scheduled) return;
    t->flush_scheduled = true;
    if (!MP_BUGGIFY() && !t->defer_pending && mp_env_defer(t->env, on_flush_defer, t) == MP_OK) {
        t->defer_pending = true;
        return;
    }
    /* Buggify: a late flush lets more frames pile up and lets connection
     * events overtake it. Also the fallback when defer has no memory. */
    uint64_t d = mp_env_random_below(t->env, BUGGIFY_FLUSH_DELAY_NS);
    t->flush_timer = mp_env_timer_start(t->env, d, on_flush_timer, t);
    if (!t->flush_timer) {
        t->flush_scheduled = false;
        mp_env_log(t->env, MP_LOG_ERROR, "transport: cannot schedule a flush");
    }
}

/* ---- liveness ----------------------------------------------------------- */

static void on_ka_write(void *ud, int status)
{
    conn *c = ud;
    c->ka_writing = false;
    if (status == MP_OK)
        stats_of(c)->keepalives_out++;
    else if (c->state != C_CLOSING)
        conn_fail(c, status, "keep-alive write failed");
}

static void send_keepalive(conn *c)
{
    mp_transport *t = c->t;
    mp_iovec iov = {t->ka_frame, t->ka_len};
    c->idle_ticks = 0;
    int rc = mp_stream_write(c->s, &iov, 1, on_ka_write, c);
    if (rc != MP_OK) {
        conn_fail(c, rc, "keep-alive write refused");
        return;
    }
    c->ka_writing = true;
}

static void on_hb_tick(void *ud)
{
    mp_transport *t = ud;
    t->hb_timer = 0;
    if (t->shutdown) return;
    uint64_t now = mp_env_now(t->env);
    uint64_t limit = t->cfg.peer_timeout_ns;
    bool judge = limit != MP_TRANSPORT_NO_PEER_TIMEOUT;
    bool stalled = now > t->hb_due + t->hb_tick_ns;
    if (stalled) {
        /* Our own loop stalled: replies may sit unread behind this timer. */
        t->stall_seen = now;
        t->stall_ns = now - (t->hb_due - t->hb_tick_ns);
        mp_env_log(t->env, MP_LOG_DEBUG,
                   "transport: heartbeat tick %.3f s late (loop stalled): no peer judged",
                   (double)(now - t->hb_due) / (double)MP_NS_PER_SEC);
        judge = false;
    }
    bool open = false;
    mp_list_node *n, *tmp;
    /* A close runs on_peer_down, which may send (a dial appends a conn) or
     * close the transport; neither frees a conn synchronously. */
    MP_LIST_FOREACH_SAFE(n, tmp, &t->conns)
    {
        conn *c = MP_CONTAINER_OF(n, conn, link);
        if (c->state != C_OPEN) continue;
        if (judge && now - c->last_recv >= limit) {
            char why[MP_HELLO_MAX_REASON + 1];
            snprintf(why, sizeof why, "no bytes from %s for %.3g s", c->p->addr,
                     (double)(now - c->last_recv) / (double)MP_NS_PER_SEC);
            c->p->st.peer_timeouts++;
            MP_SOMETIMES(true, "transport.peer_timeout");
            conn_fail_at(c, MP_ETIMEDOUT, why, MP_LOG_WARN);
            continue;
        }
        if (!stalled && c->partial_since && now - c->partial_since >= t->cfg.frame_timeout_ns) {
            char why[MP_HELLO_MAX_REASON + 1];
            snprintf(why, sizeof why, "a frame from %s stayed incomplete for %.3g s",
                     c->p->addr, (double)(now - c->partial_since) / (double)MP_NS_PER_SEC);
            c->p->st.slow_frames++;
            MP_SOMETIMES(true, "transport.slow_frame");
            conn_fail_at(c, MP_ETIMEDOUT, why, MP_LOG_WARN);
            continue;
        }
        if (++c->idle_ticks >= 2 && !c->writing && !c->ka_writing) send_keepalive(c);
        open = open || c->state == C_OPEN;
    }
    if (open) hb_arm(t);
}

/* Runs while a connection is open: armed by conn_open, re-armed by the tick
 * while one is. */
static void hb_arm(mp_transport *t)
{
    if (t->hb_timer || t->shutdown) return;
    t->hb_due = mp_env_now(t->env) + t->hb_tick_ns;
    t->hb_timer = mp_env_timer_start(t->env, t->hb_tick_ns, on_hb_tick, t);
    if (!t->hb_timer)
        mp_env_log(t->env, MP_LOG_ERROR, "transport: no timer for heartbeats (until the next "
                   "connection opens)");
}

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

const char *mp_transport_liveness_error(uint64_t heartbeat_ns,
                                        uint64_t peer_timeout_ns)
{
    mp_transport_config d;
    mp_transport_config_init(&d);
    uint64_t hb = heartbeat_ns ? heartbeat_ns : d.heartbeat_ns;
    uint64_t pt = peer_timeout_ns ? peer_timeout_ns : d.peer_timeout_ns;
    /* Keep-alives leave up to one heartbeat apart: a timeout of two leaves
     * room for latency; less would close healthy idle connections. */
    if (hb < MP_MIN_HEARTBEAT_NS || hb > UINT64_MAX / 4) return "heartbeat_ns must be >= 1 ms";
    if (pt != MP_TRANSPORT_NO_PEER_TIMEOUT && pt <= 2 * hb)
        return "peer_timeout_ns must be more than twice heartbeat_ns";
    return NULL;
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
    peer *p = peer_named(t, addr);
    return p && p->fails > 0 && !p->conn;
}

const char *mp_transport_peer_error(mp_transport *t, const char *addr)
{
    if (!t || !addr) return NULL;
    peer *p = peer_named(t, addr);
    return p && p->why[0] ? p->why : NULL;
}

int mp_transport_send(mp_transport *t, const char *addr, const mp_frame *frame)
{
    if (!t || !frame || !addr) return MP_EINVAL;
    if (t->closing) return MP_ECLOSED;
    /* Fast path: the same peer as the last send (one strcmp instead of
     * parsing the address and a map lookup: the sends of a turn mostly go
     * to one peer). Its address was validated when the peer was made, and
     * peers live as long as the transport. */
    peer *p = t->last;
    if (!p || strcmp(addr, p->addr) != 0) {
        p = NULL;
        if (!addr_ok(addr) || strcmp(addr, t->self) == 0) return MP_EINVAL;
    }
    size_t size = mp_frame_encoded_size(frame);
    if (size > t->cfg.max_frame) {
        /* Let the encoder say whether the frame is malformed (EINVAL) or
         * only too large (ETOOBIG); it checks both before touching buf. */
        uint8_t dummy;
        size_t w;
        int rc = mp_frame_encode(frame, &dummy, 0, &w, t->cfg.max_frame);
        assert(rc < 0);
        return rc < 0 ? rc : MP_EINVAL;
    }
    if (!p) {
        p = peer_get(t, addr, strlen(addr));
        if (!p) return MP_ENOMEM;
        t->last = p;
    }
    if (!(p->conn && p->conn->state == C_OPEN) && t->cbs.may_dial &&
        !t->cbs.may_dial(t->ud, p->addr)) {
        MP_SOMETIMES(true, "transport.no_dial_to_stranger");
        return MP_EUNAVAIL;
    }
    if (p->refused && !p->conn) {
        /* Refused for namespace or version: queueing would only make the
         * caller wait. Redialing goes on (probe) so a fixed peer is found. */
        p->probe = true;
        if (!p->out) schedule_retry(p);
        return p->refused;
    }
    if (p->q_frames >= t->cfg.max_queue_frames || p->q_bytes + size > t->cfg.max_queue_bytes) {
        /* The output buffer limit (Redis's client-output-buffer-limit): a
         * peer whose connection is up but whose queue filled does not read
         * what we write. It is cut off, and what waits for it is dropped
         * unsent (the runtime hears of it through on_peer_down), so a
         * client that never reads cannot hold the node's memory. */
        conn *c = p->conn;
        if (c && c->state == C_OPEN && c->writing) {
            p->st.output_limit_closes++;
            MP_SOMETIMES(true, "transport.output_limit");
            char why[MP_HELLO_MAX_REASON + 1];
            snprintf(why, sizeof why, "%s does not read: %u frames, %llu bytes queued",
                     p->addr, (unsigned)p->q_frames, (unsigned long long)p->q_bytes);
            /* Dropped first, so no redial follows for them (a client's
             * address is never dialed for its replies). */
            mp_transport_drop_queued(t, p->addr, NULL, NULL);
            conn_fail_at(c, MP_EQUEUEFULL, why, MP_LOG_WARN);
        }
        return MP_EQUEUEFULL;
    }
    int rc = mp_buf_reserve(&p->pending, size);
    if (rc != MP_OK) return rc == MP_ETOOBIG ? MP_ENOMEM : rc;
    size_t w = 0;
    rc = mp_frame_encode(frame, mp_buf_tail(&p->pending), size, &w, t->cfg.max_frame);
    if (rc != MP_OK) return rc;
    assert(w == size);
    rc = mp_buf_commit(&p->pending, w);
    assert(rc == MP_OK);
    if (p->pending_frames == 0) p->pending_since = mp_env_now(t->env);
    p->pending_frames++;
    p->q_frames++;
    p->q_bytes += w;
    if (p->conn && p->conn->state == C_OPEN)
        peer_mark_dirty(p);
    else if (!p->out && !p->conn && !p->retry_timer)
        peer_dial(p);
    return MP_OK;
}

static void fill_stats(const peer *p, mp_peer_stats *out)
{
    *out = p->st;
    out->queue_frames = p->q_frames;
    out->queue_bytes = p->q_bytes;
    out->connected = p->conn && p->conn->state == C_OPEN;
}

int mp_transport_peer_stats(mp_transport *t, const char *addr, mp_peer_stats *out)
{
    if (!t || !addr || !out) return MP_EINVAL;
    peer *p = peer_named(t, addr);
    if (!p) return MP_ENOTFOUND;
    fill_stats(p, out);
    return MP_OK;
}

void mp_transport_totals(mp_transport *t, mp_peer_stats *out)
{
    memset(out, 0, sizeof *out);
    mp_peer_stats all = t->orphan;
    mp_list_node *n, *tmp;
    MP_LIST_FOREACH_SAFE(n, tmp, &t->peers)
    {
        const mp_peer_stats *s = &MP_CONTAINER_OF(n, peer, link)->st;
        all.frames_out += s->frames_out;
        all.frames_in += s->frames_in;
        all.bytes_out += s->bytes_out;
        all.bytes_in += s->bytes_in;
        all.connects += s->connects;
        all.reconnects += s->reconnects;
        all.decode_errors += s->decode_errors;
        all.oversize_frames += s->oversize_frames;
        all.refused_handshakes += s->refused_handshakes;
        all.dropped_frames += s->dropped_frames;
        all.keepalives_out += s->keepalives_out;
        all.keepalives_in += s->keepalives_in;
        all.peer_timeouts += s->peer_timeouts;
    }
    all.queue_frames = 0;
    all.queue_bytes = 0;
    all.incarnation = 0;
    all.connected = false;
    *out = all;
}

/* ---- teardown ----------------------------------------------------------- */

static void free_memory(mp_transport *t)
{
    mp_list_node *n;
    while ((n = mp_list_pop_front(&t->peers)) != NULL) {
        peer *p = MP_CONTAINER_OF(n, peer, link);
        mp_buf_free(&p->pending);
        free(p);
    }
    mp_map_str_free(&t->peer_map);
    free(t);
}

static bool drained(mp_transport *t)
{
    mp_list_node *n, *tmp;
    MP_LIST_FOREACH_SAFE(n, tmp, &t->peers)
    {
        peer *p = MP_CONTAINER_OF(n, peer, link);
        if (p->q_frames > 0) return false;
    }
    return true;
}

static void on_listener_closed(void *ud)
{
    mp_transport *t = ud;
    t->listener_open = false;
    close_progress(t);
}

/* Stop everything: timers, connections. Frees happen in close callbacks. */
static void shut_down(mp_transport *t)
{
    assert(t->closing && !t->shutdown);
    t->shutdown = true;
    if (t->close_timer) {
        mp_env_timer_cancel(t->env, t->close_timer);
        t->close_timer = 0;
    }
    if (t->flush_timer) {
        mp_env_timer_cancel(t->env, t->flush_timer);
        t->flush_timer = 0;
        t->flush_scheduled = false;
    }
    if (t->hb_timer) {
        mp_env_timer_cancel(t->env, t->hb_timer);
        t->hb_timer = 0;
    }
    mp_list_node *n, *tmp;
    MP_LIST_FOREACH_SAFE(n, tmp, &t->peers)
    {
        peer *p = MP_CONTAINER_OF(n, peer, link);
        if (p->retry_timer) {
            mp_env_timer_cancel(t->env, p->retry_timer);
            p->retry_timer = 0;
        }
    }
    /* conn_close never frees synchronously in a live env, so the walk is
     * safe; the conns leave the list from their close callbacks. */
    MP_LIST_FOREACH_SAFE(n, tmp, &t->conns)
    {
        conn_close(MP_CONTAINER_OF(n, conn, link));
    }
}

/* Called after anything that may let a graceful close move on. */
static void close_progress(mp_transport *t)
{
    if (!t->closing) return;
    if (!t->shutdown) {
        if (!drained(t)) return;
        shut_down(t);
    }
    if (!mp_list_empty(&t->conns) || t->listener_open || t->defer_pending) return;
    void (*cb)(void *) = t->close_cb;
    void *ud = t->close_ud;
    t->close_cb = NULL;
    free_memory(t);
    if (cb) cb(ud);
}

static void on_close_timeout(void *ud)
{
    mp_transport *t = ud;
    t->close_timer = 0;
    if (!t->shutdown) {
        mp_env_log(t->env, MP_LOG_WARN, "transport: close timed out, dropping queued frames");
        shut_down(t);
    }
    close_progress(t);
}

void mp_transport_close(mp_transport *t, uint64_t flush_timeout_ns, void (*cb)(void *ud),
                        void *ud)
{
    assert(t && !t->closing);
    if (!t || t->closing) return;
    t->closing = true;
    t->close_cb = cb;
    t->close_ud = ud;
    mp_listener_close(t->listener, on_listener_closed, t);
    t->listener = NULL;
    /* Peers in an outage (no open connection, and either no dial under way
     * or at least one failure since the last open one) lose their queue at
     * once. A first dial or a fresh reconnect may still finish and flush;
     * if it fails instead, schedule_retry drops the queue then. */
    mp_list_node *n, *tmp;
    MP_LIST_FOREACH_SAFE(n, tmp, &t->peers)
    {
        peer *p = MP_CONTAINER_OF(n, peer, link);
        if (p->conn || (p->out && p->attempts == 0)) continue;
        if (p->out) {
            MP_SOMETIMES(true, "transport.close_abandons_dial");
            conn_close(p->out);
        }
        peer_drop_pending(p, "no open connection");
    }
    if (!drained(t)) {
        t->close_timer = mp_env_timer_start(t->env, flush_timeout_ns, on_close_timeout, t);
        if (!t->close_timer) shut_down(t);
    } else {
        shut_down(t);
    }
    /* Never finishes here: the listener's close callback is still due. */
    assert(t->listener_open);
}

void mp_transport_free_now(mp_transport *t)
{
    if (!t) return;
    mp_env *env = t->env;
    if (t->listener) mp_listener_close(t->listener, NULL, NULL);
    if (t->flush_timer) mp_env_timer_cancel(env, t->flush_timer);
    if (t->close_timer) mp_env_timer_cancel(env, t->close_timer);
    if (t->hb_timer) mp_env_timer_cancel(env, t->hb_timer);
    mp_list_node *n;
    while ((n = mp_list_pop_front(&t->conns)) != NULL) {
        conn *c = MP_CONTAINER_OF(n, conn, link);
        if (c->hs_timer) mp_env_timer_cancel(env, c->hs_timer);
        /* A dead env frees the stream at once and runs no callback; a conn
         * already closing has no stream left to close. */
        if (c->s && c->state != C_CLOSING) mp_stream_close(c->s, NULL, NULL);
        mp_frame_decoder_free(&c->dec);
        mp_buf_free(&c->wbuf);
        free(c);
    }
    mp_list_node *tmp;
    MP_LIST_FOREACH_SAFE(n, tmp, &t->peers)
    {
        peer *p = MP_CONTAINER_OF(n, peer, link);
        if (p->retry_timer) mp_env_timer_cancel(env, p->retry_timer);
    }
    free_memory(t);
}
