/*
 * The pingpong workload: the simplest traffic that exercises the simulated
 * network the way the runtime will use it, with a ledger strict enough to
 * catch a simulator (or workload) bug the first seed it happens.
 *
 * Each node is a process at 10.0.0.<i+1>:4500 that serves pings and runs
 * `workers` client loops. A client loop picks a random peer, reuses or opens
 * one connection to it, sends one request and waits for its outcome before
 * the next one. Frames are
 *
 *     [u32 len, big endian][u8 kind][u64 id][payload]     len = 9 + payload
 *
 * with kind 1 = ping, 2 = pong (same id, same payload echoed). Bodies above
 * 64 KiB or below 9 bytes close the connection: nothing here sends them, so
 * seeing one means bytes were corrupted or misframed, and the final check
 * fails the seed.
 *
 * Why the ledger lives outside the processes: a kill destroys a process and
 * everything it knew. To prove that "every issued request ends exactly once"
 * the record must survive the kill, so request ids are handed out by the
 * workload state (per node, never reused across incarnations) and each id has
 * one state byte: pending, replied, failed or lost (ended by the kill of its
 * own process). A request ends through req_end() only, which asserts it was
 * still pending.
 *
 * Why the final round uses fresh connections: after heal every node must get
 * a pong from every other node (100% delivery on a healed network). Old
 * connections may carry a reset from a kill that happened just before heal;
 * a new connection opened after heal has no such history, so any error on it
 * is a real bug. Connect attempts to a node that is still restarting are
 * retried (nothing was issued yet), issued final requests must succeed.
 *
 * Ownership: every allocation of a node (connections, requests, delayed
 * replies, write buffers) is linked from the node, so teardown — which runs
 * after a kill with no callback ever coming again — frees all of it. Write
 * buffers are tied to the node, not the connection, because a write may
 * complete (cancelled) after its connection was closed.
 */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "moonpool/env.h"
#include "moonpool/sim.h"
#include "moonpool/sim_workload.h"
#include "workloads.h"

#define PP_PORT 4500
#define PP_DEFAULT_NODES 3
#define PP_DEFAULT_WORKERS 2
#define PP_MAX_NODES 200
#define PP_MAX_WORKERS 64
#define PP_TIMEOUT_NS (2 * MP_SIM_NS_PER_S)
#define PP_MAX_BODY (64 * 1024)
#define PP_MAX_PAYLOAD 200
#define PP_HDR 13 /* len + kind + id */
#define PP_KIND_PING 1
#define PP_KIND_PONG 2
#define PP_THINK_MAX_NS (50 * MP_SIM_NS_PER_MS)
#define PP_BACKOFF_MIN_NS (20 * MP_SIM_NS_PER_MS)
#define PP_BACKOFF_MAX_NS (250 * MP_SIM_NS_PER_MS)
#define PP_FINAL_SETTLE_NS (500 * MP_SIM_NS_PER_MS)
#define PP_FINAL_RETRY_NS (100 * MP_SIM_NS_PER_MS)

/* ---- intrusive list ------------------------------------------------------- */

typedef struct pp_link {
    struct pp_link *prev, *next;
} pp_link;

#define PP_OF(ptr, type) ((type *)(void *)(ptr)) /* link is the first member */

static void link_init(pp_link *h) { h->prev = h->next = h; }
static bool link_empty(const pp_link *h) { return h->next == h; }
static void link_append(pp_link *h, pp_link *l)
{
    l->prev = h->prev;
    l->next = h;
    h->prev->next = l;
    h->prev = l;
}
static void link_remove(pp_link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

/* ---- workload state (outside the processes) ------------------------------- */

/* RS_LATE: failed by timeout, then its one late pong arrived (a second one
 * would be a duplicate). */
enum { RS_NONE = 0, RS_PENDING, RS_REPLIED, RS_FAILED, RS_LOST, RS_LATE };

typedef struct pp_ledger {
    uint8_t *state; /* per request id */
    uint64_t next, cap;
    uint64_t issued, replied, failed, lost, outstanding;
} pp_ledger;

struct pp_world;

typedef struct pp_slot { /* boot argument of node `index` */
    struct pp_world *w;
    int index;
} pp_slot;

typedef struct pp_world {
    mp_sim *sim;
    int nodes, workers;
    int *pids;
    pp_slot *slots;
    pp_ledger *ledger;
    bool healing;       /* on_heal ran: no new work, final round */
    uint8_t *final_ok;  /* [from * nodes + to] */
    uint64_t final_needed, final_done;
    uint64_t outstanding; /* over all nodes */
    uint64_t bad_frames;  /* oversize or malformed: must stay 0 */
    uint64_t late_replies;
} pp_world;

/* ---- process state -------------------------------------------------------- */

enum { ROLE_SERVER, ROLE_CLIENT, ROLE_FINAL };
enum { W_IDLE, W_WAIT_CONN, W_WAIT_REPLY, W_STOPPED };
enum { F_IDLE, F_CONNECTING, F_SENT, F_DONE, F_WAIT_RETRY };

struct pp_node;
struct pp_worker;
struct pp_final;

typedef struct pp_conn {
    pp_link link; /* node->conns */
    struct pp_node *node;
    mp_stream *s;
    int role;
    int peer; /* client / final: index of the server node */
    bool closing;
    uint8_t *rx;
    size_t rx_len, rx_cap;
    pp_link reqs;   /* client: pending requests */
    pp_link delays; /* server: replies held back by buggify */
} pp_conn;

typedef struct pp_req {
    pp_link link; /* conn->reqs */
    pp_conn *conn;
    struct pp_worker *worker; /* NULL for a final-round request */
    struct pp_final *final;
    uint64_t id;
    mp_timer_id timer;
    size_t len;
    uint8_t payload[PP_MAX_PAYLOAD];
} pp_req;

typedef struct pp_delay {
    pp_link link; /* conn->delays */
    pp_conn *conn;
    mp_timer_id timer;
    uint64_t id;
    size_t len;
    uint8_t payload[];
} pp_delay;

typedef struct pp_wbuf {
    pp_link link; /* node->wbufs */
    size_t len;
    uint8_t data[];
} pp_wbuf;

typedef struct pp_worker {
    struct pp_node *node;
    int state;
    int peer;
    mp_timer_id timer;
    pp_req *req;
} pp_worker;

typedef struct pp_peer { /* client side view of one other node */
    struct pp_node *node;
    int index;
    pp_conn *conn; /* open connection, NULL if none */
    bool connecting;
    bool had_conn;
} pp_peer;

typedef struct pp_final {
    struct pp_node *node;
    int peer;
    int state;
    pp_conn *conn;
    mp_timer_id retry;
} pp_final;

typedef struct pp_node {
    pp_world *w;
    int index;
    mp_env *env;
    uint32_t inc;
    mp_listener *listener;
    pp_link conns;
    pp_link wbufs;
    pp_peer *peers;
    pp_worker *workers;
    pp_final *finals;
    bool final_started;
    mp_timer_id final_timer;
} pp_node;

static void conn_fail(pp_conn *c, int status);
static void worker_schedule(pp_worker *wk, uint64_t delay);
static void worker_backoff(pp_worker *wk);
static void final_try(pp_final *f);

/* ---- helpers -------------------------------------------------------------- */

static void node_addr(int index, char *buf, size_t cap)
{
    snprintf(buf, cap, "10.0.0.%d:%d", index + 1, PP_PORT);
}

static uint64_t rand_between(mp_env *env, uint64_t lo, uint64_t hi)
{
    assert(hi >= lo);
    return lo + mp_env_random_below(env, hi - lo + 1);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

/* ---- ledger --------------------------------------------------------------- */

/* A new request id of node `n`, or UINT64_MAX when out of memory. */
static uint64_t ledger_issue(pp_world *w, int n)
{
    pp_ledger *l = &w->ledger[n];
    if (l->next == l->cap) {
        uint64_t cap = l->cap ? l->cap * 2 : 1024;
        uint8_t *ns = realloc(l->state, cap);
        if (!ns) return UINT64_MAX;
        memset(ns + l->cap, RS_NONE, cap - l->cap);
        l->state = ns;
        l->cap = cap;
    }
    uint64_t id = l->next++;
    l->state[id] = RS_PENDING;
    l->issued++;
    l->outstanding++;
    w->outstanding++;
    return id;
}

static int ledger_state(const pp_world *w, int n, uint64_t id)
{
    const pp_ledger *l = &w->ledger[n];
    return id < l->next ? l->state[id] : RS_NONE;
}

static void ledger_end(pp_world *w, int n, uint64_t id, int outcome)
{
    pp_ledger *l = &w->ledger[n];
    bool pending = id < l->next && l->state[id] == RS_PENDING;
    if (!pending) {
        mp_sim_fail(w->sim, "pingpong: node %d request %llu ended twice "
                            "(state %d, now %d)",
                    n, (unsigned long long)id, ledger_state(w, n, id), outcome);
        MP_ALWAYS(pending, "pingpong.request_ends_once");
        return;
    }
    l->state[id] = (uint8_t)outcome;
    l->outstanding--;
    w->outstanding--;
    switch (outcome) {
    case RS_REPLIED: l->replied++; break;
    case RS_FAILED: l->failed++; break;
    case RS_LOST: l->lost++; break;
    default: assert(!"bad outcome");
    }
}

/* ---- writes --------------------------------------------------------------- */

static void wbuf_done(void *ud, int status)
{
    pp_wbuf *b = ud;
    link_remove(&b->link);
    free(b);
}

static int node_send(pp_conn *c, uint8_t kind, uint64_t id,
                     const uint8_t *payload, size_t len)
{
    assert(len <= PP_MAX_PAYLOAD);
    pp_wbuf *b = malloc(sizeof *b + PP_HDR + len);
    if (!b) return MP_ENOMEM;
    b->len = PP_HDR + len;
    put_u32(b->data, (uint32_t)(9 + len));
    b->data[4] = kind;
    put_u64(b->data + 5, id);
    if (len) memcpy(b->data + PP_HDR, payload, len);
    link_append(&c->node->wbufs, &b->link);
    mp_iovec iov = {b->data, b->len};
    int rc = mp_stream_write(c->s, &iov, 1, wbuf_done, b);
    if (rc != 0) {
        link_remove(&b->link);
        free(b);
    }
    return rc;
}

/* ---- requests (client side) ----------------------------------------------- */

static void final_on_end(pp_final *f, int outcome);

/* End a pending request exactly once; then let its owner move on. */
static void req_end(pp_req *r, int outcome)
{
    pp_node *n = r->conn->node;
    if (r->timer) mp_env_timer_cancel(n->env, r->timer);
    r->timer = 0;
    link_remove(&r->link);
    ledger_end(n->w, n->index, r->id, outcome);
    pp_worker *wk = r->worker;
    pp_final *f = r->final;
    free(r);
    if (wk) {
        assert(wk->req == r);
        wk->req = NULL;
        if (outcome == RS_REPLIED)
            worker_schedule(wk, mp_env_random_below(n->env, PP_THINK_MAX_NS));
        else
            worker_backoff(wk);
    }
    if (f) final_on_end(f, outcome);
}

static void req_timeout(void *ud)
{
    pp_req *r = ud;
    r->timer = 0;
    MP_SOMETIMES(true, "pingpong.timeout");
    req_end(r, RS_FAILED);
}

/* Issue one ping on an open client or final connection. */
static pp_req *req_issue(pp_conn *c, pp_worker *wk, pp_final *f)
{
    pp_node *n = c->node;
    assert(!c->closing);
    pp_req *r = calloc(1, sizeof *r);
    if (!r) {
        mp_sim_fail(n->w->sim, "pingpong: out of memory");
        return NULL;
    }
    uint64_t id = ledger_issue(n->w, n->index);
    if (id == UINT64_MAX) {
        free(r);
        mp_sim_fail(n->w->sim, "pingpong: out of memory");
        return NULL;
    }
    r->conn = c;
    r->worker = wk;
    r->final = f;
    r->id = id;
    r->len = (size_t)mp_env_random_below(n->env, PP_MAX_PAYLOAD + 1);
    for (size_t i = 0; i < r->len; i += 8) {
        uint64_t x = mp_env_random(n->env);
        size_t k = r->len - i < 8 ? r->len - i : 8;
        memcpy(r->payload + i, &x, k);
    }
    link_append(&c->reqs, &r->link);
    if (wk) {
        wk->req = r;
        wk->state = W_WAIT_REPLY;
    }
    r->timer = mp_env_timer_start(n->env, PP_TIMEOUT_NS, req_timeout, r);
    if (!r->timer) mp_sim_fail(n->w->sim, "pingpong: out of memory (timer)");
    int rc = node_send(c, PP_KIND_PING, id, r->payload, r->len);
    if (rc != 0) {
        conn_fail(c, rc); /* ends r (and everything else on c) */
        return NULL;
    }
    return r;
}

/* ---- workers -------------------------------------------------------------- */

static void worker_fire(void *ud);

static void worker_schedule(pp_worker *wk, uint64_t delay)
{
    pp_node *n = wk->node;
    if (n->w->healing) {
        wk->state = W_STOPPED;
        return;
    }
    wk->state = W_IDLE;
    wk->timer = mp_env_timer_start(n->env, delay, worker_fire, wk);
    if (!wk->timer) {
        wk->state = W_STOPPED;
        mp_sim_fail(n->w->sim, "pingpong: out of memory (timer)");
    }
}

static void worker_backoff(pp_worker *wk)
{
    uint64_t d = rand_between(wk->node->env, PP_BACKOFF_MIN_NS, PP_BACKOFF_MAX_NS);
    if (MP_BUGGIFY()) d += MP_SIM_NS_PER_S; /* a slow reconnect */
    worker_schedule(wk, d);
}

static void peer_connected(void *ud, mp_stream *s, int status);

static void worker_fire(void *ud)
{
    pp_worker *wk = ud;
    pp_node *n = wk->node;
    wk->timer = 0;
    if (n->w->healing) {
        wk->state = W_STOPPED;
        return;
    }
    int p = (int)mp_env_random_below(n->env, (uint64_t)n->w->nodes - 1);
    if (p >= n->index) p++;
    wk->peer = p;
    pp_peer *peer = &n->peers[p];
    if (peer->conn) {
        assert(!peer->conn->closing);
        req_issue(peer->conn, wk, NULL);
        return;
    }
    wk->state = W_WAIT_CONN;
    if (peer->connecting) return;
    char addr[32];
    node_addr(p, addr, sizeof addr);
    int rc = mp_env_connect(n->env, addr, peer_connected, peer);
    if (rc != 0) {
        worker_backoff(wk);
        return;
    }
    peer->connecting = true;
}

/* ---- connections ---------------------------------------------------------- */

static void conn_on_read(void *ud, mp_stream *s, const uint8_t *data,
                         size_t len, int status);

static pp_conn *conn_new(pp_node *n, mp_stream *s, int role, int peer)
{
    pp_conn *c = calloc(1, sizeof *c);
    if (!c) {
        mp_stream_close(s, NULL, NULL); /* we own it and cannot serve it */
        return NULL;
    }
    c->node = n;
    c->s = s;
    c->role = role;
    c->peer = peer;
    link_init(&c->reqs);
    link_init(&c->delays);
    link_append(&n->conns, &c->link);
    int rc = mp_stream_read_start(s, conn_on_read, c);
    if (rc != 0) {
        /* Fails only on a stream already dead; let the close path own it. */
        conn_fail(c, rc);
        return NULL;
    }
    return c;
}

static void conn_closed(void *ud)
{
    pp_conn *c = ud;
    assert(c->closing && link_empty(&c->reqs) && link_empty(&c->delays));
    link_remove(&c->link);
    free(c->rx);
    free(c);
}

static void delay_free(pp_node *n, pp_delay *d)
{
    if (d->timer) mp_env_timer_cancel(n->env, d->timer);
    link_remove(&d->link);
    free(d);
}

/* Close a connection (status 0: on purpose) and end what depends on it. */
static void conn_fail(pp_conn *c, int status)
{
    if (c->closing) return;
    pp_node *n = c->node;
    c->closing = true;
    if (c->role == ROLE_CLIENT && n->peers[c->peer].conn == c)
        n->peers[c->peer].conn = NULL;
    while (!link_empty(&c->reqs)) req_end(PP_OF(c->reqs.next, pp_req), RS_FAILED);
    while (!link_empty(&c->delays)) delay_free(n, PP_OF(c->delays.next, pp_delay));
    mp_stream_close(c->s, conn_closed, c);
}

static void server_reply(pp_conn *c, uint64_t id, const uint8_t *payload,
                         size_t len)
{
    int rc = node_send(c, PP_KIND_PONG, id, payload, len);
    if (rc != 0) conn_fail(c, rc);
}

static void delay_fire(void *ud)
{
    pp_delay *d = ud;
    pp_conn *c = d->conn;
    d->timer = 0;
    link_remove(&d->link);
    server_reply(c, d->id, d->payload, d->len);
    free(d);
}

static void on_ping(pp_conn *c, uint64_t id, const uint8_t *payload,
                    size_t len)
{
    pp_node *n = c->node;
    MP_SOMETIMES(n->inc > 1, "pingpong.restarted_served");
    if (MP_BUGGIFY_P(0.02)) {
        conn_fail(c, 0); /* drop the connection instead of answering */
        return;
    }
    if (MP_BUGGIFY_P(0.05)) {
        pp_delay *d = malloc(sizeof *d + len);
        if (d) {
            d->conn = c;
            d->id = id;
            d->len = len;
            if (len) memcpy(d->payload, payload, len);
            link_append(&c->delays, &d->link);
            /* Up to 3 s: past the client's timeout, so late replies occur. */
            d->timer = mp_env_timer_start(n->env,
                                          rand_between(n->env, 0, 3 * MP_SIM_NS_PER_S),
                                          delay_fire, d);
            if (d->timer) return;
            link_remove(&d->link);
            free(d);
        }
    }
    server_reply(c, id, payload, len);
}

static void on_pong(pp_conn *c, uint64_t id, const uint8_t *payload,
                    size_t len)
{
    pp_node *n = c->node;
    pp_world *w = n->w;
    pp_req *r = NULL;
    for (pp_link *l = c->reqs.next; l != &c->reqs; l = l->next) {
        if (PP_OF(l, pp_req)->id == id) {
            r = PP_OF(l, pp_req);
            break;
        }
    }
    if (!r) {
        /* Nobody waits for it. The only legal case is a request that timed
         * out (ended as failed while its connection stayed open), answered
         * once, late. A pong for an id never issued, still pending, already
         * answered, or answered late before is a duplicate or corruption. */
        int st = ledger_state(w, n->index, id);
        bool late_ok = st == RS_FAILED;
        if (!late_ok) {
            /* The detailed message first: the first failure is reported. */
            mp_sim_fail(w->sim, "pingpong: node %d got an unexpected pong for "
                                "request %llu (%s)",
                        n->index, (unsigned long long)id,
                        st == RS_NONE      ? "never issued"
                        : st == RS_PENDING ? "pending on another connection"
                        : st == RS_REPLIED ? "already answered"
                        : st == RS_LATE    ? "already answered late"
                                           : "lost with its process");
            MP_ALWAYS(late_ok, "pingpong.reply_once");
            return;
        }
        w->ledger[n->index].state[id] = RS_LATE;
        MP_SOMETIMES(true, "pingpong.late_reply");
        w->late_replies++;
        return;
    }
    MP_ALWAYS(ledger_state(w, n->index, id) == RS_PENDING, "pingpong.match_is_pending");
    if (len != r->len || (len && memcmp(payload, r->payload, len) != 0)) {
        mp_sim_fail(w->sim, "pingpong: node %d request %llu: pong payload "
                            "differs (%zu bytes, expected %zu)",
                    n->index, (unsigned long long)id, len, r->len);
        return;
    }
    MP_SOMETIMES(true, "pingpong.reply");
    req_end(r, RS_REPLIED);
}

static void conn_on_read(void *ud, mp_stream *s, const uint8_t *data,
                         size_t len, int status)
{
    pp_conn *c = ud;
    pp_world *w = c->node->w;
    if (c->closing) return;
    if (status != 0) {
        MP_SOMETIMES(status == MP_ECONNRESET, "pingpong.conn_reset");
        conn_fail(c, status);
        return;
    }
    if (c->rx_len + len > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 256;
        while (cap < c->rx_len + len) cap *= 2;
        uint8_t *nb = realloc(c->rx, cap);
        if (!nb) {
            mp_sim_fail(w->sim, "pingpong: out of memory");
            conn_fail(c, MP_ENOMEM);
            return;
        }
        c->rx = nb;
        c->rx_cap = cap;
    }
    memcpy(c->rx + c->rx_len, data, len);
    c->rx_len += len;

    size_t off = 0;
    while (c->rx_len - off >= 4) {
        uint32_t body = get_u32(c->rx + off);
        if (body < 9 || body > PP_MAX_BODY) {
            w->bad_frames++;
            conn_fail(c, body > PP_MAX_BODY ? MP_ETOOBIG : MP_EPROTO);
            return;
        }
        if (c->rx_len - off < 4 + (size_t)body) break;
        const uint8_t *f = c->rx + off;
        uint8_t kind = f[4];
        uint64_t id = get_u64(f + 5);
        size_t plen = body - 9;
        off += 4 + (size_t)body;
        bool want_ping = c->role == ROLE_SERVER;
        if (kind != (want_ping ? PP_KIND_PING : PP_KIND_PONG) || plen > PP_MAX_PAYLOAD) {
            w->bad_frames++;
            conn_fail(c, MP_EPROTO);
            return;
        }
        if (want_ping)
            on_ping(c, id, f + PP_HDR, plen);
        else
            on_pong(c, id, f + PP_HDR, plen);
        if (c->closing) return;
    }
    if (off) {
        memmove(c->rx, c->rx + off, c->rx_len - off);
        c->rx_len -= off;
    }
}

static void peer_connected(void *ud, mp_stream *s, int status)
{
    pp_peer *peer = ud;
    pp_node *n = peer->node;
    assert(peer->connecting && !peer->conn);
    peer->connecting = false;
    pp_conn *c = status == 0 ? conn_new(n, s, ROLE_CLIENT, peer->index) : NULL;
    if (c) {
        MP_SOMETIMES(peer->had_conn, "pingpong.reconnect");
        peer->had_conn = true;
        peer->conn = c;
    }
    for (int i = 0; i < n->w->workers; i++) {
        pp_worker *wk = &n->workers[i];
        if (wk->state != W_WAIT_CONN || wk->peer != peer->index) continue;
        if (!peer->conn)
            worker_backoff(wk);
        else if (n->w->healing)
            wk->state = W_STOPPED;
        else
            req_issue(peer->conn, wk, NULL);
    }
}

static void on_accept(void *ud, mp_stream *s, int status)
{
    pp_node *n = ud;
    if (status != 0) return;
    conn_new(n, s, ROLE_SERVER, -1); /* on failure the stream is closed */
}

/* ---- final round (after heal) --------------------------------------------- */

static void final_retry_fire(void *ud)
{
    pp_final *f = ud;
    f->retry = 0;
    final_try(f);
}

static void final_wait_retry(pp_final *f)
{
    f->state = F_WAIT_RETRY;
    f->retry = mp_env_timer_start(f->node->env, PP_FINAL_RETRY_NS,
                                  final_retry_fire, f);
    if (!f->retry) mp_sim_fail(f->node->w->sim, "pingpong: out of memory (timer)");
}

static void final_connected(void *ud, mp_stream *s, int status)
{
    pp_final *f = ud;
    assert(f->state == F_CONNECTING);
    if (status != 0) {
        final_wait_retry(f); /* the peer may still be restarting */
        return;
    }
    pp_conn *c = conn_new(f->node, s, ROLE_FINAL, f->peer);
    if (!c) {
        final_wait_retry(f);
        return;
    }
    f->conn = c;
    f->state = F_SENT;
    req_issue(c, NULL, f);
}

static void final_try(pp_final *f)
{
    char addr[32];
    node_addr(f->peer, addr, sizeof addr);
    f->state = F_CONNECTING;
    if (mp_env_connect(f->node->env, addr, final_connected, f) != 0)
        final_wait_retry(f);
}

static void final_on_end(pp_final *f, int outcome)
{
    pp_node *n = f->node;
    pp_world *w = n->w;
    if (outcome == RS_LOST) return; /* teardown */
    if (outcome != RS_REPLIED) {
        f->state = F_DONE;
        mp_sim_fail(w->sim, "pingpong: final-round request %d -> %d failed "
                            "after heal (incarnation %u)",
                    n->index, f->peer, (unsigned)n->inc);
        return;
    }
    f->state = F_DONE;
    uint8_t *ok = &w->final_ok[(size_t)n->index * (size_t)w->nodes + (size_t)f->peer];
    if (!*ok) {
        *ok = 1;
        w->final_done++;
    }
    pp_conn *c = f->conn;
    f->conn = NULL;
    if (c) conn_fail(c, 0); /* done with it */
}

static void final_begin(void *ud)
{
    pp_node *n = ud;
    n->final_timer = 0;
    for (int j = 0; j < n->w->nodes; j++) {
        if (j == n->index) continue;
        uint8_t ok = n->w->final_ok[(size_t)n->index * (size_t)n->w->nodes + (size_t)j];
        if (!ok) final_try(&n->finals[j]);
    }
}

static void node_start_final(pp_node *n)
{
    if (n->final_started) return;
    n->final_started = true;
    n->final_timer = mp_env_timer_start(n->env, PP_FINAL_SETTLE_NS, final_begin, n);
    if (!n->final_timer) mp_sim_fail(n->w->sim, "pingpong: out of memory (timer)");
}

/* ---- process boot and teardown -------------------------------------------- */

static void node_teardown(void *state)
{
    pp_node *n = state;
    for (int i = 0; i < n->w->workers; i++)
        if (n->workers[i].timer) mp_env_timer_cancel(n->env, n->workers[i].timer);
    for (int j = 0; j < n->w->nodes; j++)
        if (n->finals[j].retry) mp_env_timer_cancel(n->env, n->finals[j].retry);
    if (n->final_timer) mp_env_timer_cancel(n->env, n->final_timer);
    while (!link_empty(&n->conns)) {
        pp_conn *c = PP_OF(n->conns.next, pp_conn);
        if (!c->closing) mp_stream_close(c->s, NULL, NULL);
        while (!link_empty(&c->reqs)) {
            /* Outstanding requests die with their process. */
            pp_req *r = PP_OF(c->reqs.next, pp_req);
            if (r->timer) mp_env_timer_cancel(n->env, r->timer);
            link_remove(&r->link);
            ledger_end(n->w, n->index, r->id, RS_LOST);
            free(r);
        }
        while (!link_empty(&c->delays)) delay_free(n, PP_OF(c->delays.next, pp_delay));
        link_remove(&c->link);
        free(c->rx);
        free(c);
    }
    while (!link_empty(&n->wbufs)) {
        pp_wbuf *b = PP_OF(n->wbufs.next, pp_wbuf);
        link_remove(&b->link);
        free(b);
    }
    if (n->listener) mp_listener_close(n->listener, NULL, NULL);
    free(n->peers);
    free(n->workers);
    free(n->finals);
    free(n);
}

static int node_boot(mp_env *env, void *arg, uint32_t incarnation, void **out)
{
    pp_slot *slot = arg;
    pp_world *w = slot->w;
    pp_node *n = calloc(1, sizeof *n);
    if (!n) return MP_ENOMEM;
    n->w = w;
    n->index = slot->index;
    n->env = env;
    n->inc = incarnation;
    link_init(&n->conns);
    link_init(&n->wbufs);
    n->peers = calloc((size_t)w->nodes, sizeof *n->peers);
    n->workers = calloc((size_t)w->workers, sizeof *n->workers);
    n->finals = calloc((size_t)w->nodes, sizeof *n->finals);
    if (!n->peers || !n->workers || !n->finals) {
        node_teardown(n);
        return MP_ENOMEM;
    }
    for (int j = 0; j < w->nodes; j++) {
        n->peers[j].node = n;
        n->peers[j].index = j;
        n->finals[j].node = n;
        n->finals[j].peer = j;
    }
    char addr[32];
    node_addr(n->index, addr, sizeof addr);
    int rc = mp_env_listen(env, addr, on_accept, n, &n->listener);
    if (rc != 0) {
        n->listener = NULL;
        node_teardown(n);
        return rc;
    }
    for (int i = 0; i < w->workers; i++) {
        n->workers[i].node = n;
        n->workers[i].state = W_STOPPED;
        if (!w->healing)
            worker_schedule(&n->workers[i],
                            mp_env_random_below(env, 2 * PP_THINK_MAX_NS));
    }
    /* A node (re)booted after heal joins the final round at once. */
    if (w->healing) node_start_final(n);
    *out = n;
    return 0;
}

static const mp_sim_process_ops pp_ops = {node_boot, node_teardown, NULL};

/* ---- workload callbacks --------------------------------------------------- */

static void pp_destroy(void *state)
{
    pp_world *w = state;
    if (!w) return;
    if (w->ledger)
        for (int i = 0; i < w->nodes; i++) free(w->ledger[i].state);
    free(w->ledger);
    free(w->pids);
    free(w->slots);
    free(w->final_ok);
    free(w);
}

static int pp_setup(mp_sim *sim, const mp_workload_params *params, void **state)
{
    int nodes = params && params->nodes ? params->nodes : PP_DEFAULT_NODES;
    int workers = params && params->workers ? params->workers : PP_DEFAULT_WORKERS;
    if (nodes < 2 || nodes > PP_MAX_NODES || workers < 1 || workers > PP_MAX_WORKERS)
        return MP_EINVAL;
    pp_world *w = calloc(1, sizeof *w);
    if (!w) return MP_ENOMEM;
    /* From here on the runner owns w: processes spawned below point into it
     * and may be torn down (by the world) after a later failure. */
    *state = w;
    w->sim = sim;
    w->nodes = nodes;
    w->workers = workers;
    w->pids = calloc((size_t)nodes, sizeof *w->pids);
    w->slots = calloc((size_t)nodes, sizeof *w->slots);
    w->ledger = calloc((size_t)nodes, sizeof *w->ledger);
    w->final_ok = calloc((size_t)nodes * (size_t)nodes, 1);
    if (!w->pids || !w->slots || !w->ledger || !w->final_ok) return MP_ENOMEM;
    w->final_needed = (uint64_t)nodes * (uint64_t)(nodes - 1);
    for (int i = 0; i < nodes; i++) {
        char addr[32];
        node_addr(i, addr, sizeof addr);
        w->slots[i].w = w;
        w->slots[i].index = i;
        int pid = mp_sim_spawn(sim, addr, &pp_ops, &w->slots[i]);
        if (pid < 0) return pid;
        w->pids[i] = pid;
        mp_sim_set_killable(sim, pid, true);
    }
    return 0;
}

static void pp_on_heal(mp_sim *sim, void *state)
{
    pp_world *w = state;
    w->healing = true;
    for (int i = 0; i < w->nodes; i++) {
        pp_node *n = mp_sim_process_state(sim, w->pids[i]);
        if (n) node_start_final(n);
    }
}

static bool pp_quiescent(mp_sim *sim, void *state)
{
    pp_world *w = state;
    return w->healing && w->outstanding == 0 && w->final_done == w->final_needed;
}

static void pp_check(mp_sim *sim, void *state)
{
    pp_world *w = state;
    uint64_t replied = 0;
    for (int i = 0; i < w->nodes; i++) {
        pp_ledger *l = &w->ledger[i];
        replied += l->replied;
        if (l->outstanding != 0 ||
            l->issued != l->replied + l->failed + l->lost) {
            mp_sim_fail(sim, "pingpong: node %d ledger: issued %llu != replied "
                             "%llu + failed %llu + lost %llu (outstanding %llu)",
                        i, (unsigned long long)l->issued,
                        (unsigned long long)l->replied,
                        (unsigned long long)l->failed,
                        (unsigned long long)l->lost,
                        (unsigned long long)l->outstanding);
            return;
        }
        for (uint64_t id = 0; id < l->next; id++) {
            if (l->state[id] == RS_PENDING || l->state[id] == RS_NONE) {
                mp_sim_fail(sim, "pingpong: node %d request %llu never ended", i,
                            (unsigned long long)id);
                return;
            }
        }
    }
    if (replied == 0) {
        mp_sim_fail(sim, "pingpong: no request was ever answered");
        return;
    }
    for (int i = 0; i < w->nodes; i++) {
        for (int j = 0; j < w->nodes; j++) {
            if (i != j && !w->final_ok[(size_t)i * (size_t)w->nodes + (size_t)j]) {
                mp_sim_fail(sim, "pingpong: after heal node %d never got a pong "
                                 "from node %d", i, j);
                return;
            }
        }
    }
    if (w->bad_frames) {
        mp_sim_fail(sim, "pingpong: %llu malformed or oversized frames seen",
                    (unsigned long long)w->bad_frames);
    }
}

static const char *const pp_coverage[] = {"pingpong.", NULL};

const mp_sim_workload mp_workload_pingpong = {
    .name = "pingpong",
    .description = "echo requests between nodes under faults; every request "
                   "ends exactly once, full delivery after heal "
                   "(--nodes 3, --workers 2)",
    .required_coverage = pp_coverage,
    .chaos_ns = 0,
    .heal_ns = 0,
    .setup = pp_setup,
    .on_heal = pp_on_heal,
    .quiescent = pp_quiescent,
    .check = pp_check,
    .destroy = pp_destroy,
};
