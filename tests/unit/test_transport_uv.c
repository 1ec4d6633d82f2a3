/*
 * Tests of the peer transport (src/transport/) on the real libuv backend, on
 * 127.0.0.1, plus the HELLO codec on its own.
 *
 * Both transports of a test share one env (one loop): the transport never
 * assumes an env per node, and one loop keeps every test single-threaded and
 * free of cross-thread timing. Ports come from listening on port 0, so tests
 * never race for a fixed port. Every wait is bounded by a guard timer whose
 * length is never asserted on. Hostile peers are played by raw env streams
 * that write hand-crafted bytes.
 *
 * (The pipelined echo benchmark is bench/bench_transport_echo.c.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moonpool/env_uv.h"
#include "moonpool/env.h"
#include "moonpool/status.h"
#include "transport/handshake.h"
#include "transport/transport.h"

#define MS 1000000ull
#define GUARD_NS (20000ull * MS)

/* ---- harness ------------------------------------------------------------ */

typedef struct rx_log {
    uint64_t frames;
    uint64_t next_seq[4]; /* per sender id: the seq expected next */
    uint64_t bad;         /* out of order / malformed payloads */
    int restarts;
    uint32_t last_old_inc, last_new_inc;
    int downs;
    int last_down;
    char last_peer[80];
} rx_log;

typedef struct node {
    mp_transport *t;
    rx_log rx;
    int id;
} node;

static void on_frame(void *ud, const char *peer, const mp_frame *f)
{
    node *n = ud;
    rx_log *r = &n->rx;
    snprintf(r->last_peer, sizeof r->last_peer, "%s", peer);
    r->frames++;
    if (f->payload.len != 16) {
        r->bad++;
        return;
    }
    uint32_t sender;
    uint64_t seq;
    memcpy(&sender, f->payload.ptr, 4);
    memcpy(&seq, f->payload.ptr + 4, 8);
    if (sender >= 4 || seq != r->next_seq[sender]) {
        r->bad++;
        return;
    }
    r->next_seq[sender]++;
}

static void on_restart(void *ud, const char *peer, uint32_t old_inc, uint32_t new_inc)
{
    node *n = ud;
    n->rx.restarts++;
    n->rx.last_old_inc = old_inc;
    n->rx.last_new_inc = new_inc;
}

static void on_down(void *ud, const char *peer, int status)
{
    node *n = ud;
    n->rx.downs++;
    n->rx.last_down = status;
}

/* may_dial: every address but g_no_dial (NULL: all). */
static const char *g_no_dial;
static bool test_may_dial(void *ud, const char *peer)
{
    return !g_no_dial || strcmp(peer, g_no_dial) != 0;
}

static const mp_transport_callbacks CBS = {on_frame, on_restart, on_down, test_may_dial};

static void set_flag(void *ud) { *(int *)ud = 1; }

typedef bool (*pred_fn)(void *ud);
typedef struct count_wait {
    node *n;
    int sender;
    uint64_t want;
} count_wait;


/* Run until pred holds; fail (not hang) after the guard. */
static void run_until(mp_env *env, pred_fn pred, void *ud)
{
    int guard = 0;
    mp_timer_id g = mp_env_timer_start(env, GUARD_NS, set_flag, &guard);
    assert_true(g != 0);
    while (!pred(ud) && !guard) mp_env_uv_run_once(env, 1);
    if (guard) {
        count_wait *w = ud;
        fprintf(stderr, "guard: frames %llu next %llu bad %llu\n", (unsigned long long)w->n->rx.frames, (unsigned long long)w->n->rx.next_seq[w->sender], (unsigned long long)w->n->rx.bad);
    }
    assert_false(guard);
    mp_env_timer_cancel(env, g);
}

/* Run the loop for a while (sim-free settling: bounded by a timer). */
static void run_for(mp_env *env, uint64_t ns)
{
    int done = 0;
    mp_env_timer_start(env, ns, set_flag, &done);
    while (!done) mp_env_uv_run_once(env, 1);
}

static bool flag_set(void *ud) { return *(int *)ud != 0; }

static void destroy_env(mp_env *env)
{
    for (int i = 0; i < 1000; i++) {
        if (mp_env_uv_destroy(env) == MP_OK) return;
        mp_env_uv_run_once(env, 0);
    }
    fail_msg("env never became destroyable");
}

static void node_start(mp_env *env, node *n, int id, const char *ns, const char *addr,
                       uint32_t inc, void (*tweak)(mp_transport_config *))
{
    memset(n, 0, sizeof *n);
    n->id = id;
    if (getenv("MP_TEST_DEBUG")) env->log_level = MP_LOG_DEBUG;
    mp_transport_config cfg;
    mp_transport_config_init(&cfg);
    cfg.cluster_namespace = ns;
    cfg.self_addr = addr;
    cfg.incarnation = inc;
    cfg.backoff_initial_ns = 5 * MS;
    cfg.backoff_max_ns = 50 * MS;
    if (tweak) tweak(&cfg);
    assert_int_equal(mp_transport_create(env, &cfg, &CBS, n, &n->t), MP_OK);
}

static void node_close(mp_env *env, node *n)
{
    int done = 0;
    mp_transport_close(n->t, 1000 * MS, set_flag, &done);
    run_until(env, flag_set, &done);
    n->t = NULL;
}

static void make_frame(mp_frame *f, uint8_t *payload, uint32_t sender, uint64_t seq)
{
    memset(f, 0, sizeof *f);
    f->kind = MP_FRAME_ONEWAY;
    f->method = mp_bytes_str("m");
    memcpy(payload, &sender, 4);
    memcpy(payload + 4, &seq, 8);
    memset(payload + 12, 0xab, 4);
    f->payload = mp_bytes_make(payload, 16);
}

static int send_seq(node *from, node *to, uint64_t seq)
{
    mp_frame f;
    uint8_t pl[16];
    make_frame(&f, pl, (uint32_t)from->id, seq);
    return mp_transport_send(from->t, mp_transport_self_addr(to->t), &f);
}

static bool got_all(void *ud)
{
    count_wait *w = ud;
    return w->n->rx.next_seq[w->sender] >= w->want || w->n->rx.bad;
}

/* Log capture: remember whether a line containing `needle` was logged. */
typedef struct log_cap {
    const char *needle;
    int hits;
} log_cap;

static void log_sink(void *ud, mp_log_level level, const char *msg)
{
    log_cap *c = ud;
    if (c->needle && strstr(msg, c->needle)) c->hits++;
}

/* ---- handshake codec and proofs ---------------------------------------- */

static void test_hello_codec(void **state)
{
    uint8_t buf[MP_HELLO_SIZE + 8];
    size_t n = 0;
    mp_hello h;
    memset(&h, 0, sizeof h);
    h.version = MP_HELLO_VERSION;
    h.mode = MP_HELLO_KEYED;
    for (int i = 0; i < (int)MP_HELLO_NONCE_LEN; i++) h.nonce[i] = (uint8_t)(i * 7);
    assert_int_equal(mp_hello_encode(&h, buf, sizeof buf, &n), MP_OK);
    assert_int_equal(n, MP_HELLO_SIZE);
    mp_hello d;
    assert_int_equal(mp_hello_decode(buf, n, &d), MP_OK);
    assert_int_equal(d.mode, MP_HELLO_KEYED);
    assert_memory_equal(d.nonce, h.nonce, MP_HELLO_NONCE_LEN);
    /* Every truncation fails cleanly; a trailing byte too. */
    for (size_t i = 0; i < n; i++) assert_true(mp_hello_decode(buf, i, &d) < 0);
    buf[n] = 0;
    assert_int_equal(mp_hello_decode(buf, n + 1, &d), MP_EPROTO);
    /* Another version: only the version is read (version 1 had another
     * layout). */
    buf[0] = 1;
    assert_int_equal(mp_hello_decode(buf, n, &d), MP_EVERSION);
    assert_int_equal(d.version, 1);
    buf[0] = (uint8_t)MP_HELLO_VERSION;
    buf[2] = 7; /* unknown mode */
    assert_int_equal(mp_hello_decode(buf, n, &d), MP_EPROTO);
    h.mode = 9;
    assert_int_equal(mp_hello_encode(&h, buf, sizeof buf, &n), MP_EINVAL);
    h.mode = MP_HELLO_OPEN;
    assert_int_equal(mp_hello_encode(&h, buf, 5, &n), MP_EINVAL);
}

static void test_auth_codec(void **state)
{
    uint8_t buf[MP_AUTH_MAX_PAYLOAD + 1];
    uint8_t proof[MP_HELLO_PROOF_LEN];
    memset(proof, 0x5a, sizeof proof);
    size_t n = 0;
    mp_auth a = {mp_bytes_str("10.0.0.1:4500"), 7, mp_bytes_make(NULL, 0),
                 mp_bytes_make(proof, sizeof proof)};
    assert_int_equal(mp_auth_encode(&a, buf, sizeof buf, &n), MP_OK);
    mp_auth d;
    assert_int_equal(mp_auth_decode(buf, n, &d), MP_OK);
    assert_true(mp_bytes_eq(d.addr, a.addr));
    assert_int_equal(d.incarnation, 7);
    assert_int_equal(d.ns.len, 0);
    assert_memory_equal(d.proof.ptr, proof, sizeof proof);
    for (size_t i = 0; i < n; i++) assert_true(mp_auth_decode(buf, i, &d) < 0);
    buf[n] = 0;
    assert_int_equal(mp_auth_decode(buf, n + 1, &d), MP_EPROTO);
    /* Open mode: the namespace instead of a proof. */
    mp_auth o = {mp_bytes_str("10.0.0.1:4500"), 7, mp_bytes_str("prod.eu-1"),
                 mp_bytes_make(NULL, 0)};
    assert_int_equal(mp_auth_encode(&o, buf, sizeof buf, &n), MP_OK);
    assert_int_equal(mp_auth_decode(buf, n, &d), MP_OK);
    assert_true(mp_bytes_eq(d.ns, o.ns));
    /* Bad namespace character, zero incarnation, both or neither of ns and
     * proof, a proof of the wrong length: refused by both sides. */
    uint8_t bad[MP_AUTH_MAX_PAYLOAD];
    memcpy(bad, buf, n);
    bad[2 + 13 + 4 + 2] = '/';
    assert_int_equal(mp_auth_decode(bad, n, &d), MP_EPROTO);
    memcpy(bad, buf, n);
    memset(bad + 2 + 13, 0, 4);
    assert_int_equal(mp_auth_decode(bad, n, &d), MP_EPROTO);
    mp_auth e = o;
    e.proof = mp_bytes_make(proof, sizeof proof);
    assert_int_equal(mp_auth_encode(&e, buf, sizeof buf, &n), MP_EINVAL);
    e = o;
    e.ns = mp_bytes_make(NULL, 0);
    assert_int_equal(mp_auth_encode(&e, buf, sizeof buf, &n), MP_EINVAL);
    e = a;
    e.proof = mp_bytes_make(proof, 31);
    assert_int_equal(mp_auth_encode(&e, buf, sizeof buf, &n), MP_EINVAL);
    e = a;
    e.incarnation = 0;
    assert_int_equal(mp_auth_encode(&e, buf, sizeof buf, &n), MP_EINVAL);
    /* Random garbage never crashes. */
    uint64_t x = 12345;
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(x % sizeof buf);
        for (size_t i = 0; i < len; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            buf[i] = (uint8_t)(x >> 56);
        }
        (void)mp_auth_decode(buf, len, &d);
        mp_hello hh;
        (void)mp_hello_decode(buf, len, &hh);
    }
}

static void test_proof_binds_every_field(void **state)
{
    uint8_t key[MP_HELLO_KEY_LEN], nd[MP_HELLO_NONCE_LEN], na[MP_HELLO_NONCE_LEN];
    memset(key, 1, sizeof key);
    memset(nd, 2, sizeof nd);
    memset(na, 3, sizeof na);
    mp_proof_input base = {'D', nd, na, mp_bytes_str("prod"), mp_bytes_str("10.0.0.1:1"),
                           mp_bytes_str("10.0.0.2:2"), 5, 0};
    uint8_t p0[MP_HELLO_PROOF_LEN], p1[MP_HELLO_PROOF_LEN];
    assert_int_equal(mp_proof_compute(key, &base, p0), MP_OK);
    assert_true(mp_proof_check(key, &base, p0, sizeof p0));
    assert_false(mp_proof_check(key, &base, p0, sizeof p0 - 1));
    /* Every byte counts: the proof with any one byte changed fails. */
    for (size_t i = 0; i < sizeof p0; i++) {
        memcpy(p1, p0, sizeof p1);
        p1[i] ^= 0x80;
        assert_false(mp_proof_check(key, &base, p1, sizeof p1));
    }
    uint8_t other[MP_HELLO_NONCE_LEN];
    memset(other, 9, sizeof other);
    for (int field = 0; field < 9; field++) {
        mp_proof_input in = base;
        uint8_t k2[MP_HELLO_KEY_LEN];
        memcpy(k2, key, sizeof k2);
        switch (field) {
        case 0: in.role = 'A'; break;             /* reflection */
        case 1: in.nonce_d = other; break;        /* replay on a new connection */
        case 2: in.nonce_a = other; break;
        case 3: in.ns = mp_bytes_str("prod2"); break;
        case 4: in.addr_d = mp_bytes_str("10.0.0.1:9"); break;
        case 5: in.inc_d = 6; break;
        case 6: in.addr_a = mp_bytes_str("10.0.0.3:2"); break;
        case 7: in.inc_a = 1; break;
        default: k2[0] ^= 1; break;               /* another secret */
        }
        assert_int_equal(mp_proof_compute(k2, &in, p1), MP_OK);
        assert_memory_not_equal(p0, p1, sizeof p0);
        assert_false(mp_proof_check(key, &base, p1, sizeof p1));
    }
    base.role = 'X';
    assert_int_equal(mp_proof_compute(key, &base, p1), MP_EINVAL);
}

/* ---- configuration ------------------------------------------------------ */

static void test_create_errors(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 1);
    mp_transport_config cfg;
    mp_transport *t = NULL;
    mp_transport_config_init(&cfg);
    cfg.self_addr = "127.0.0.1:0";
    cfg.cluster_namespace = "bad/ns";
    assert_int_equal(mp_transport_create(env, &cfg, &CBS, NULL, &t), MP_EINVAL);
    cfg.cluster_namespace = "";
    assert_int_equal(mp_transport_create(env, &cfg, &CBS, NULL, &t), MP_EINVAL);
    cfg.cluster_namespace = "ok";
    cfg.incarnation = 0;
    assert_int_equal(mp_transport_create(env, &cfg, &CBS, NULL, &t), MP_EINVAL);
    cfg.incarnation = 1;
    cfg.self_addr = "nope";
    assert_int_equal(mp_transport_create(env, &cfg, &CBS, NULL, &t), MP_EADDR);
    cfg.self_addr = "127.0.0.1:0";
    cfg.max_frame = 10;
    assert_int_equal(mp_transport_create(env, &cfg, &CBS, NULL, &t), MP_EINVAL);
    cfg.max_frame = 0;
    cfg.backoff_initial_ns = 100;
    cfg.backoff_max_ns = 10;
    assert_int_equal(mp_transport_create(env, &cfg, &CBS, NULL, &t), MP_EINVAL);
    cfg.backoff_initial_ns = cfg.backoff_max_ns = 0;
    cfg.heartbeat_ns = 1 * MS;
    cfg.peer_timeout_ns = 2 * MS; /* not more than twice the heartbeat */
    assert_int_equal(mp_transport_create(env, &cfg, &CBS, NULL, &t), MP_EINVAL);
    cfg.heartbeat_ns = MS / 2; /* under 1 ms */
    cfg.peer_timeout_ns = MP_TRANSPORT_NO_PEER_TIMEOUT;
    assert_int_equal(mp_transport_create(env, &cfg, &CBS, NULL, &t), MP_EINVAL);
    assert_null(t);
    destroy_env(env);
}

/* ---- exchange ----------------------------------------------------------- */

static void test_exchange_both_ways(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 2);
    node a, b;
    node_start(env, &a, 0, "test", "127.0.0.1:0", 1, NULL);
    node_start(env, &b, 1, "test", "127.0.0.1:0", 1, NULL);
    assert_string_not_equal(mp_transport_self_addr(a.t), "127.0.0.1:0");
    const uint64_t N = 5000;
    /* Both directions in the same turns: both dial at once, the tie-break
     * keeps one connection and no frame is lost to it. */
    for (uint64_t i = 0; i < N; i++) {
        assert_int_equal(send_seq(&a, &b, i), MP_OK);
        assert_int_equal(send_seq(&b, &a, i), MP_OK);
        if (i % 700 == 0) mp_env_uv_run_once(env, 0);
    }
    count_wait wa = {&b, 0, N}, wb = {&a, 1, N};
    run_until(env, got_all, &wa);
    run_until(env, got_all, &wb);
    assert_int_equal(a.rx.bad, 0);
    assert_int_equal(b.rx.bad, 0);
    assert_int_equal(b.rx.frames, N);
    assert_int_equal(a.rx.frames, N);
    assert_string_equal(b.rx.last_peer, mp_transport_self_addr(a.t));

    mp_peer_stats sa, sb;
    assert_int_equal(mp_transport_peer_stats(a.t, mp_transport_self_addr(b.t), &sa), MP_OK);
    assert_int_equal(mp_transport_peer_stats(b.t, mp_transport_self_addr(a.t), &sb), MP_OK);
    run_for(env, 20 * MS); /* let the losing dial finish closing */
    assert_int_equal(mp_transport_peer_stats(a.t, mp_transport_self_addr(b.t), &sa), MP_OK);
    assert_true(sa.connected && sb.connected);
    assert_int_equal(sa.frames_out, N);
    assert_int_equal(sa.frames_in, N);
    assert_int_equal(sa.queue_frames, 0);
    assert_int_equal(sa.queue_bytes, 0);
    assert_int_equal(sa.incarnation, 1);
    assert_int_equal(sa.decode_errors, 0);
    assert_int_equal(sa.refused_handshakes, 0);
    assert_true(sa.bytes_out > N * 16);
    assert_int_equal(sa.bytes_out, sb.bytes_in);
    /* Exactly one connection per pair survived. */
    assert_int_equal(sa.connects, 1);
    assert_int_equal(sb.connects, 1);
    assert_int_equal(a.rx.restarts, 1); /* first sight: old 0 -> 1 */
    assert_int_equal(a.rx.last_old_inc, 0);
    assert_int_equal(a.rx.last_new_inc, 1);
    assert_int_equal(mp_transport_peer_stats(a.t, "127.0.0.1:1", &sa), MP_ENOTFOUND);

    node_close(env, &a);
    node_close(env, &b);
    destroy_env(env);
}

/* ---- limits ------------------------------------------------------------- */

static void small_queue(mp_transport_config *c)
{
    c->max_queue_frames = 40;
    c->max_queue_bytes = 100000;
    c->max_frame = 4096;
}

static void test_limits(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 3);
    node a;
    node_start(env, &a, 0, "test", "127.0.0.1:0", 1, small_queue);
    mp_frame f;
    static uint8_t big[8192];
    memset(&f, 0, sizeof f);
    f.kind = MP_FRAME_ONEWAY;
    f.payload = mp_bytes_make(big, sizeof big);
    /* Too big: refused before anything is queued (the peer is not even
     * created). */
    assert_int_equal(mp_transport_send(a.t, "127.0.0.1:9", &f), MP_ETOOBIG);
    mp_peer_stats s;
    assert_int_equal(mp_transport_peer_stats(a.t, "127.0.0.1:9", &s), MP_ENOTFOUND);
    /* Malformed (over a field cap) is EINVAL, whatever its size. */
    f.method = mp_bytes_make(big, 200);
    assert_int_equal(mp_transport_send(a.t, "127.0.0.1:9", &f), MP_EINVAL);
    f.method = mp_bytes_make(NULL, 0);
    /* Bad destination addresses. */
    f.payload = mp_bytes_make(big, 16);
    assert_int_equal(mp_transport_send(a.t, "bogus", &f), MP_EINVAL);
    assert_int_equal(mp_transport_send(a.t, mp_transport_self_addr(a.t), &f), MP_EINVAL);
    /* Queue bound in frames, toward a peer that does not answer. */
    for (int i = 0; i < 40; i++) assert_int_equal(mp_transport_send(a.t, "127.0.0.1:9", &f), MP_OK);
    assert_int_equal(mp_transport_send(a.t, "127.0.0.1:9", &f), MP_EQUEUEFULL);
    assert_int_equal(mp_transport_peer_stats(a.t, "127.0.0.1:9", &s), MP_OK);
    assert_int_equal(s.queue_frames, 40);
    assert_int_equal(s.queue_bytes, 40 * (16 + MP_FRAME_MIN_SIZE));
    assert_false(s.connected);
    /* Queue bound in bytes. */
    f.payload = mp_bytes_make(big, 3000);
    int ok = 0, rc;
    while ((rc = mp_transport_send(a.t, "127.0.0.1:10", &f)) == MP_OK) ok++;
    assert_int_equal(rc, MP_EQUEUEFULL);
    assert_int_equal(ok, 100000 / (3000 + MP_FRAME_MIN_SIZE));
    /* Reconnecting goes on while frames wait: several refusals reported. */
    run_for(env, 100 * MS);
    assert_true(a.rx.downs >= 2);
    assert_int_equal(a.rx.last_down, MP_ECONNREFUSED);
    /* Graceful close with frames that cannot go: the flush timeout ends it. */
    int done = 0;
    mp_transport_close(a.t, 30 * MS, set_flag, &done);
    assert_int_equal(mp_transport_send(a.t, "127.0.0.1:9", &f), MP_ECLOSED);
    run_until(env, flag_set, &done);
    destroy_env(env);
}

/* ---- namespace refusal -------------------------------------------------- */

static void test_namespace_refused(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 4);
    log_cap cap = {"namespace mismatch", 0};
    env->log_sink = log_sink;
    env->log_ud = &cap;
    node a, b;
    node_start(env, &a, 0, "alpha", "127.0.0.1:0", 1, NULL);
    node_start(env, &b, 1, "beta", "127.0.0.1:0", 1, NULL);
    assert_int_equal(send_seq(&a, &b, 0), MP_OK);
    run_for(env, 60 * MS);
    mp_peer_stats s, tot;
    assert_int_equal(mp_transport_peer_stats(a.t, mp_transport_self_addr(b.t), &s), MP_OK);
    assert_true(s.refused_handshakes >= 1);
    assert_int_equal(s.connects, 0);
    assert_false(s.connected);
    assert_int_equal(s.queue_frames, 1); /* still queued, still retrying */
    mp_transport_totals(b.t, &tot);
    assert_true(tot.refused_handshakes >= 1);
    assert_int_equal(tot.connects, 0);
    assert_int_equal(b.rx.frames, 0);
    assert_true(a.rx.downs >= 1);
    assert_true(cap.hits >= 2); /* both sides logged why */
    node_close(env, &a);
    node_close(env, &b);
    destroy_env(env);
}

/* ---- hostile raw peers -------------------------------------------------- */

typedef struct raw {
    mp_stream *s;
    int connected, ended, end_status, closed;
    uint8_t in[4096];
    size_t in_len;
} raw;

static void raw_read(void *ud, mp_stream *s, const uint8_t *data, size_t len, int status)
{
    raw *r = ud;
    if (status < 0) {
        r->ended = 1;
        r->end_status = status;
        return;
    }
    size_t n = len < sizeof r->in - r->in_len ? len : sizeof r->in - r->in_len;
    memcpy(r->in + r->in_len, data, n);
    r->in_len += n;
}

static void raw_connected(void *ud, mp_stream *s, int status)
{
    raw *r = ud;
    assert_int_equal(status, MP_OK);
    r->s = s;
    r->connected = 1;
    assert_int_equal(mp_stream_read_start(s, raw_read, r), MP_OK);
}

static bool raw_up(void *ud) { return ((raw *)ud)->connected; }
static bool raw_ended(void *ud) { return ((raw *)ud)->ended; }

static void raw_open(mp_env *env, raw *r, const char *addr)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(mp_env_connect(env, addr, raw_connected, r), MP_OK);
    run_until(env, raw_up, r);
}

static void raw_close(mp_env *env, raw *r)
{
    mp_stream_close(r->s, set_flag, &r->closed);
    run_until(env, flag_set, &r->closed);
}

/* Bytes must stay valid until the write callback: keep them static. */
static uint8_t raw_out[4][512];

static void raw_write(raw *r, int slot, const void *p, size_t n)
{
    assert_true(n <= sizeof raw_out[slot]);
    memcpy(raw_out[slot], p, n);
    mp_iovec iov = {raw_out[slot], n};
    assert_int_equal(mp_stream_write(r->s, &iov, 1, NULL, NULL), MP_OK);
}

/* An open-mode handshake as a dialer would pipeline it: HELLO (a fixed
 * nonce) then AUTH claiming addr. Returns the bytes written into out. */
static size_t hello_frame(uint8_t *out, size_t cap, const char *ns, const char *addr, uint32_t inc)
{
    uint8_t pl[MP_AUTH_MAX_PAYLOAD];
    size_t n = 0, w = 0, w2 = 0;
    mp_hello h;
    memset(&h, 0, sizeof h);
    h.version = MP_HELLO_VERSION;
    h.mode = MP_HELLO_OPEN;
    memset(h.nonce, 0x42, sizeof h.nonce);
    assert_int_equal(mp_hello_encode(&h, pl, sizeof pl, &n), MP_OK);
    mp_frame f;
    mp_hello_frame(&f, MP_HELLO_METHOD, mp_bytes_make(pl, (uint32_t)n), 0);
    assert_int_equal(mp_frame_encode(&f, out, cap, &w, 0), MP_OK);
    mp_auth a = {mp_bytes_str(addr), inc, mp_bytes_str(ns), mp_bytes_make(NULL, 0)};
    assert_int_equal(mp_auth_encode(&a, pl, sizeof pl, &n), MP_OK);
    mp_hello_frame(&f, MP_AUTH_METHOD, mp_bytes_make(pl, (uint32_t)n), 0);
    assert_int_equal(mp_frame_encode(&f, out + w, cap - w, &w2, 0), MP_OK);
    return w + w2;
}

/* A raw client that opened a connection to b and sent its HELLO as addr
 * (incarnation 1). */
static void raw_handshaked(mp_env *env, raw *r, node *b, const char *addr)
{
    uint8_t buf[512];
    raw_open(env, r, mp_transport_self_addr(b->t));
    size_t n = hello_frame(buf, sizeof buf, "test", addr, 1);
    raw_write(r, 0, buf, n);
}

static const char *method_is_static(const mp_frame *f)
{
    static const char *known[] = {"hello", "hello_ok", "hello_refused", MP_KEEPALIVE_METHOD,
                                  "auth"};
    for (int i = 0; i < 5; i++)
        if (mp_bytes_eq(f->method, mp_bytes_str(known[i]))) return known[i];
    return "other";
}

/* Decode the frames the transport sent to a raw client. */
static int raw_frames(raw *r, const char **methods, int max)
{
    size_t pos = 0;
    int n = 0;
    while (n < max) {
        mp_frame f;
        size_t fl;
        if (mp_frame_decode(r->in + pos, r->in_len - pos, 0, &f, &fl) != MP_OK) break;
        methods[n++] = method_is_static(&f);
        pos += fl;
    }
    return n;
}

static void test_oversize_from_peer(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 5);
    node b;
    node_start(env, &b, 1, "test", "127.0.0.1:0", 1, NULL);
    raw r;
    raw_open(env, &r, mp_transport_self_addr(b.t));
    uint8_t buf[512];
    size_t n = hello_frame(buf, sizeof buf, "test", "127.0.0.1:7777", 3);
    raw_write(&r, 0, buf, n);
    /* The transport answers with its HELLO and hello_ok. */
    run_for(env, 30 * MS);
    const char *m[4];
    assert_int_equal(raw_frames(&r, m, 4), 2);
    assert_string_equal(m[0], "hello");
    assert_string_equal(m[1], "hello_ok");
    mp_peer_stats s;
    assert_int_equal(mp_transport_peer_stats(b.t, "127.0.0.1:7777", &s), MP_OK);
    assert_true(s.connected);
    assert_int_equal(s.incarnation, 3);
    assert_int_equal(b.rx.restarts, 1);
    /* Now a header announcing a 512 MiB frame: closed at once, counted. */
    uint8_t hdr[8] = {0, 0, 0, 0x20, 'M', 'P', 'O', 'L'};
    raw_write(&r, 1, hdr, sizeof hdr);
    run_until(env, raw_ended, &r);
    assert_int_equal(mp_transport_peer_stats(b.t, "127.0.0.1:7777", &s), MP_OK);
    assert_int_equal(s.oversize_frames, 1);
    assert_int_equal(s.decode_errors, 1);
    assert_false(s.connected);
    raw_close(env, &r);
    node_close(env, &b);
    destroy_env(env);
}

static void test_frame_before_handshake(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 6);
    node b;
    node_start(env, &b, 1, "test", "127.0.0.1:0", 1, NULL);
    raw r;
    raw_open(env, &r, mp_transport_self_addr(b.t));
    mp_frame f;
    uint8_t pl[16], buf[256];
    size_t w;
    make_frame(&f, pl, 0, 0);
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, 0), MP_OK);
    raw_write(&r, 0, buf, w);
    run_until(env, raw_ended, &r);
    mp_peer_stats tot;
    mp_transport_totals(b.t, &tot);
    assert_int_equal(tot.decode_errors, 1);
    assert_int_equal(b.rx.frames, 0);
    raw_close(env, &r);

    /* Garbage bytes (an HTTP client): bad magic, closed, counted. */
    raw_open(env, &r, mp_transport_self_addr(b.t));
    raw_write(&r, 0, "GET / HTTP/1.1\r\n\r\n", 18);
    run_until(env, raw_ended, &r);
    mp_transport_totals(b.t, &tot);
    assert_int_equal(tot.decode_errors, 2);
    raw_close(env, &r);

    /* A HELLO from another protocol version is refused with a reason. */
    raw_open(env, &r, mp_transport_self_addr(b.t));
    /* (version 9: only the version field is read) */
    mp_hello hv;
    memset(&hv, 0, sizeof hv);
    hv.version = 9;
    uint8_t pl2[MP_HELLO_SIZE];
    size_t n = 0;
    assert_int_equal(mp_hello_encode(&hv, pl2, sizeof pl2, &n), MP_OK);
    mp_frame hf;
    mp_hello_frame(&hf, MP_HELLO_METHOD, mp_bytes_make(pl2, (uint32_t)n), 0);
    assert_int_equal(mp_frame_encode(&hf, buf, sizeof buf, &w, 0), MP_OK);
    raw_write(&r, 0, buf, w);
    run_until(env, raw_ended, &r);
    const char *m[4];
    assert_int_equal(raw_frames(&r, m, 4), 2);
    assert_string_equal(m[1], "hello_refused");
    mp_transport_totals(b.t, &tot);
    assert_int_equal(tot.refused_handshakes, 1);
    raw_close(env, &r);
    node_close(env, &b);
    destroy_env(env);
}

static void short_handshake(mp_transport_config *c) { c->handshake_timeout_ns = 50 * MS; }

static void test_handshake_timeout(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 7);
    node b;
    node_start(env, &b, 1, "test", "127.0.0.1:0", 1, short_handshake);
    raw r;
    raw_open(env, &r, mp_transport_self_addr(b.t));
    run_until(env, raw_ended, &r); /* silent client: closed by the timer */
    raw_close(env, &r);
    node_close(env, &b);
    destroy_env(env);
}

/* ---- liveness: keep-alives and the peer timeout on real sockets --------- */

static void quick_liveness(mp_transport_config *c)
{
    c->heartbeat_ns = 50 * MS;
    c->peer_timeout_ns = 500 * MS;
}

static bool went_down(void *ud) { return ((node *)ud)->rx.downs > 0; }

/* A peer that completes the handshake and then sends nothing, while its
 * socket stays open (a half-open connection as seen from here): closed with
 * MP_ETIMEDOUT, reported down; nothing but keep-alives was sent to it. */
static void test_silent_peer_times_out(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 11);
    node b;
    node_start(env, &b, 1, "test", "127.0.0.1:0", 1, quick_liveness);
    raw r;
    raw_handshaked(env, &r, &b, "127.0.0.1:7781");
    run_until(env, went_down, &b);
    assert_int_equal(b.rx.last_down, MP_ETIMEDOUT);
    mp_peer_stats s;
    assert_int_equal(mp_transport_peer_stats(b.t, "127.0.0.1:7781", &s), MP_OK);
    assert_false(s.connected);
    assert_int_equal(s.peer_timeouts, 1);
    assert_int_equal(s.connects, 1);
    assert_non_null(mp_transport_peer_error(b.t, "127.0.0.1:7781"));
    assert_non_null(strstr(mp_transport_peer_error(b.t, "127.0.0.1:7781"), "no bytes from"));
    run_until(env, raw_ended, &r); /* closed on our side: the raw peer sees the end */
    const char *m[64];
    int k = raw_frames(&r, m, 64);
    assert_true(k >= 2);
    assert_string_equal(m[0], "hello");
    assert_string_equal(m[1], "hello_ok");
    for (int i = 2; i < k; i++) assert_string_equal(m[i], MP_KEEPALIVE_METHOD);
    assert_int_equal((uint64_t)(k - 2), s.keepalives_out);
    assert_int_equal(b.rx.frames, 0);
    raw_close(env, &r);
    node_close(env, &b);
    destroy_env(env);
}

static void quick_frames(mp_transport_config *c)
{
    c->heartbeat_ns = 50 * MS;
    c->peer_timeout_ns = 2000 * MS; /* never reached: bytes keep coming */
    c->frame_timeout_ns = 300 * MS;
}

/* Slowloris: after the handshake a peer trickles one byte of a frame every
 * 40 ms. Each byte is life (peer_timeout never fires), but the frame is
 * not whole within frame_timeout_ns: the connection is closed, counted. */
static void test_trickled_frame_is_closed_within_the_frame_timeout(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 13);
    node b;
    node_start(env, &b, 1, "test", "127.0.0.1:0", 1, quick_frames);
    raw r;
    raw_handshaked(env, &r, &b, "127.0.0.1:7783");
    uint8_t buf[512];
    run_for(env, 30 * MS);
    /* A whole keep-alive-sized frame, sent one byte at a time. */
    mp_frame f;
    memset(&f, 0, sizeof f);
    f.kind = MP_FRAME_ONEWAY;
    f.method = mp_bytes_str("m");
    f.target = mp_bytes_str("t::A/b");
    size_t fl = 0;
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &fl, 0), MP_OK);
    uint64_t t0 = mp_env_now(env);
    for (size_t i = 0; i < fl - 1 && !r.ended; i++) {
        mp_iovec iov = {buf + i, 1};
        assert_int_equal(mp_stream_write(r.s, &iov, 1, NULL, NULL), MP_OK);
        run_for(env, 40 * MS);
    }
    run_until(env, raw_ended, &r);
    uint64_t took = mp_env_now(env) - t0;
    mp_peer_stats s;
    assert_int_equal(mp_transport_peer_stats(b.t, "127.0.0.1:7783", &s), MP_OK);
    assert_int_equal(s.slow_frames, 1);
    assert_int_equal(s.peer_timeouts, 0);
    assert_false(s.connected);
    assert_int_equal(b.rx.frames, 0);
    /* Reported, not asserted (timing lives in benchmarks): */
    print_message("slowloris closed %.0f ms after its first byte (frame_timeout 300 ms)\n",
                  (double)took / 1e6);
    assert_non_null(strstr(mp_transport_peer_error(b.t, "127.0.0.1:7783"), "stayed incomplete"));
    raw_close(env, &r);
    node_close(env, &b);
    destroy_env(env);
}

/* The output buffer limit: a peer that completed the handshake and then
 * stops reading fills the socket buffers, then its queue; the send that
 * finds the queue full cuts it off (MP_EQUEUEFULL) and drops what waited,
 * so its memory is given back. */
static void test_peer_that_never_reads_is_cut_off(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 14);
    node b;
    node_start(env, &b, 1, "test", "127.0.0.1:0", 1, small_queue);
    raw r;
    raw_handshaked(env, &r, &b, "127.0.0.1:7784");
    run_for(env, 30 * MS);
    assert_int_equal(mp_stream_read_stop(r.s), MP_OK);
    static uint8_t big[3000];
    mp_frame f;
    memset(&f, 0, sizeof f);
    f.kind = MP_FRAME_ONEWAY;
    f.payload = mp_bytes_make(big, sizeof big);
    int rc = MP_OK;
    int sent = 0;
    /* Until the queue is full (the kernel's buffers take the first MBs). */
    while (rc == MP_OK && sent < 100000) {
        rc = mp_transport_send(b.t, "127.0.0.1:7784", &f);
        if (rc == MP_OK) sent++;
        if (sent % 20 == 0) run_for(env, 1 * MS);
    }
    assert_int_equal(rc, MP_EQUEUEFULL);
    run_for(env, 20 * MS); /* the cut write reports back */
    mp_peer_stats s;
    assert_int_equal(mp_transport_peer_stats(b.t, "127.0.0.1:7784", &s), MP_OK);
    assert_int_equal(s.output_limit_closes, 1);
    assert_false(s.connected);
    assert_int_equal(s.queue_frames, 0); /* dropped, not held */
    assert_true(s.dropped_frames > 0);
    assert_non_null(strstr(mp_transport_peer_error(b.t, "127.0.0.1:7784"), "does not read"));
    print_message("cut off after %d frames of %zu bytes\n", sent, sizeof big);
    raw_close(env, &r);
    node_close(env, &b);
    destroy_env(env);
}

static void few_handshakes(mp_transport_config *c)
{
    c->max_handshakes = 8;
    c->handshake_timeout_ns = 60000 * MS; /* the flood would outlive the test */
}

static bool a_connected_to_b(void *ud)
{
    node **n = ud;
    mp_peer_stats s;
    return mp_transport_peer_stats(n[0]->t, mp_transport_self_addr(n[1]->t), &s) == MP_OK &&
           s.connected;
}

/* A flood of sockets that never handshake cannot lock members out: when
 * the handshake slots are full the oldest gives way, and a real peer's
 * handshake completes. */
static void test_idle_socket_flood_does_not_lock_out_peers(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 15);
    node a, b;
    node_start(env, &a, 0, "test", "127.0.0.1:0", 1, NULL);
    node_start(env, &b, 1, "test", "127.0.0.1:0", 1, few_handshakes);
    enum { FLOOD = 20 };
    raw r[FLOOD];
    for (int i = 0; i < FLOOD; i++) raw_open(env, &r[i], mp_transport_self_addr(b.t));
    run_for(env, 20 * MS);
    assert_int_equal(send_seq(&a, &b, 0), MP_OK);
    node *ab[2] = {&a, &b};
    run_until(env, a_connected_to_b, ab);
    count_wait w = {&b, 0, 1};
    run_until(env, got_all, &w);
    assert_int_equal(b.rx.bad, 0);
    int ended = 0;
    for (int i = 0; i < FLOOD; i++) ended += r[i].ended;
    assert_true(ended >= FLOOD - 8 + 1); /* the oldest gave way */
    for (int i = 0; i < FLOOD; i++) raw_close(env, &r[i]);
    node_close(env, &a);
    node_close(env, &b);
    destroy_env(env);
}

/* A stranger that claimed an address in its handshake and left is never
 * dialed at that address: sends to it fail at once with MP_EUNAVAIL, and
 * nothing keeps redialing it. */
static void test_claimed_address_is_never_dialed(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 16);
    node b;
    node_start(env, &b, 1, "test", "127.0.0.1:0", 1, quick_liveness);
    g_no_dial = "127.0.0.1:7785";
    raw r;
    raw_handshaked(env, &r, &b, "127.0.0.1:7785");
    run_for(env, 30 * MS);
    mp_peer_stats s;
    assert_int_equal(mp_transport_peer_stats(b.t, "127.0.0.1:7785", &s), MP_OK);
    assert_true(s.connected);
    /* While its connection is open it is answered on it. */
    mp_frame f;
    memset(&f, 0, sizeof f);
    f.kind = MP_FRAME_ONEWAY;
    assert_int_equal(mp_transport_send(b.t, "127.0.0.1:7785", &f), MP_OK);
    raw_close(env, &r);
    run_until(env, went_down, &b);
    uint64_t downs = b.rx.downs;
    assert_int_equal(mp_transport_send(b.t, "127.0.0.1:7785", &f), MP_EUNAVAIL);
    run_for(env, 300 * MS); /* a redial would fail (nobody listens) and say so */
    assert_int_equal(b.rx.downs, downs);
    assert_int_equal(mp_transport_peer_stats(b.t, "127.0.0.1:7785", &s), MP_OK);
    assert_int_equal(s.connects, 1);
    assert_int_equal(s.queue_frames, 0);
    g_no_dial = NULL;
    node_close(env, &b);
    destroy_env(env);
}

static bool keepalives_flowed(void *ud)
{
    node **n = ud;
    mp_peer_stats sa, sb;
    if (mp_transport_peer_stats(n[0]->t, mp_transport_self_addr(n[1]->t), &sa) != MP_OK ||
        mp_transport_peer_stats(n[1]->t, mp_transport_self_addr(n[0]->t), &sb) != MP_OK)
        return false;
    return sa.keepalives_in >= 5 && sb.keepalives_in >= 5;
}

/* An idle healthy connection: keep-alives flow both ways and keep it open;
 * they never reach on_frame nor the frame and byte counters. */
static void test_idle_keepalives(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 12);
    node a, b;
    node_start(env, &a, 0, "test", "127.0.0.1:0", 1, quick_liveness);
    node_start(env, &b, 1, "test", "127.0.0.1:0", 1, quick_liveness);
    assert_int_equal(send_seq(&a, &b, 0), MP_OK);
    count_wait w = {&b, 0, 1};
    run_until(env, got_all, &w);
    node *pair[2] = {&a, &b};
    run_until(env, keepalives_flowed, pair);
    mp_peer_stats sa, sb;
    assert_int_equal(mp_transport_peer_stats(a.t, mp_transport_self_addr(b.t), &sa), MP_OK);
    assert_int_equal(mp_transport_peer_stats(b.t, mp_transport_self_addr(a.t), &sb), MP_OK);
    assert_true(sa.connected && sb.connected);
    assert_int_equal(sa.connects, 1);
    assert_int_equal(sb.connects, 1);
    assert_int_equal(sa.peer_timeouts + sb.peer_timeouts, 0);
    assert_int_equal(a.rx.downs + b.rx.downs, 0);
    assert_int_equal(b.rx.frames, 1);
    assert_int_equal(a.rx.frames, 0);
    assert_int_equal(a.rx.bad + b.rx.bad, 0);
    assert_int_equal(sa.frames_out, 1);
    assert_int_equal(sb.frames_in, 1);
    assert_int_equal(sa.bytes_out, sb.bytes_in);
    node_close(env, &a);
    node_close(env, &b);
    destroy_env(env);
}

/* ---- restart: new incarnation ------------------------------------------- */

static void test_restart_incarnation(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 8);
    node a, b;
    node_start(env, &a, 0, "test", "127.0.0.1:0", 1, NULL);
    node_start(env, &b, 1, "test", "127.0.0.1:0", 1, NULL);
    char baddr[80];
    snprintf(baddr, sizeof baddr, "%s", mp_transport_self_addr(b.t));
    for (uint64_t i = 0; i < 10; i++) assert_int_equal(send_seq(&a, &b, i), MP_OK);
    count_wait w = {&b, 0, 10};
    run_until(env, got_all, &w);
    assert_int_equal(a.rx.restarts, 1);

    /* b goes away and comes back at the same address, incarnation 2. */
    node_close(env, &b);
    run_for(env, 10 * MS);
    node_start(env, &b, 1, "test", baddr, 2, NULL);
    b.rx.next_seq[0] = 10; /* the new b continues a's sequence */
    for (uint64_t i = 10; i < 20; i++) assert_int_equal(send_seq(&a, &b, i), MP_OK);
    count_wait w2 = {&b, 0, 20};
    run_until(env, got_all, &w2);
    assert_int_equal(b.rx.bad, 0);
    assert_int_equal(a.rx.restarts, 2);
    assert_int_equal(a.rx.last_old_inc, 1);
    assert_int_equal(a.rx.last_new_inc, 2);
    mp_peer_stats s;
    assert_int_equal(mp_transport_peer_stats(a.t, baddr, &s), MP_OK);
    assert_int_equal(s.incarnation, 2);
    assert_int_equal(s.connects, 2);
    assert_int_equal(s.reconnects, 1);
    node_close(env, &a);
    node_close(env, &b);
    destroy_env(env);
}


/* ---- cluster authentication (keyed mode) -------------------------------- */

/* Give the transports created next on env the key of `secret` (NULL: none). */
static void set_key(mp_env *env, const char *secret)
{
    memset(&env->net, 0, sizeof env->net);
    if (!secret) return;
    env->net.has_key = 1;
    for (size_t i = 0; i < MP_ENV_KEY_LEN; i++)
        env->net.key[i] = (uint8_t)(secret[i % strlen(secret)] + i);
}

static bool down_seen(void *ud) { return ((node *)ud)->rx.downs > 0; }

/* Same key both sides: frames flow; proofs went both ways. */
static void test_auth_same_secret_exchanges(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 21);
    set_key(env, "s3cret");
    node a, b;
    node_start(env, &a, 0, "test", "127.0.0.1:0", 1, NULL);
    node_start(env, &b, 1, "test", "127.0.0.1:0", 1, NULL);
    for (uint64_t i = 0; i < 50; i++) assert_int_equal(send_seq(&a, &b, i), MP_OK);
    count_wait w = {&b, 0, 50};
    run_until(env, got_all, &w);
    assert_int_equal(b.rx.bad, 0);
    mp_peer_stats tot;
    mp_transport_totals(b.t, &tot);
    assert_int_equal(tot.auth_failures, 0);
    node_close(env, &a);
    node_close(env, &b);
    set_key(env, NULL);
    destroy_env(env);
}

/* Another key: refused with MP_EAUTH on both sides, nothing delivered, the
 * failure counted and logged, and the dialer's sends fail at once. The
 * same for a peer with no key at all, and a keyless node meeting a keyed
 * one says which side lacks the secret. */
static void test_auth_wrong_secret_refused(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 22);
    log_cap cap = {"authentication failed", 0};
    env->log_sink = log_sink;
    env->log_ud = &cap;
    node a, b, c;
    set_key(env, "right");
    node_start(env, &b, 1, "test", "127.0.0.1:0", 1, NULL);
    set_key(env, "wrong");
    node_start(env, &a, 0, "test", "127.0.0.1:0", 1, NULL);
    set_key(env, NULL);
    node_start(env, &c, 2, "test", "127.0.0.1:0", 1, NULL);
    assert_int_equal(send_seq(&a, &b, 0), MP_OK);
    run_until(env, down_seen, &a);
    assert_int_equal(a.rx.last_down, MP_EAUTH);
    assert_int_equal(send_seq(&a, &b, 1), MP_EAUTH); /* fails at once now */
    assert_int_equal(b.rx.frames, 0);
    mp_peer_stats tot;
    mp_transport_totals(b.t, &tot);
    assert_true(tot.auth_failures >= 1);
    assert_int_equal(tot.connects, 0);
    assert_true(cap.hits >= 1);
    /* A keyless peer. */
    assert_int_equal(send_seq(&c, &b, 0), MP_OK);
    run_until(env, down_seen, &c);
    assert_int_equal(c.rx.last_down, MP_EAUTH);
    /* Either side may speak first: b's refusal, or c's own finding. */
    const char *why = mp_transport_peer_error(c.t, mp_transport_self_addr(b.t));
    assert_non_null(why);
    assert_true(strstr(why, "authentication failed") || strstr(why, "requires a cluster secret"));
    assert_int_equal(b.rx.frames, 0);
    node_close(env, &a);
    node_close(env, &b);
    node_close(env, &c);
    env->log_sink = NULL;
    destroy_env(env);
}

/* Frames a raw client received: the first frame with method m, or -1. */
static int raw_find(raw *r, const char *m, mp_frame *out)
{
    size_t pos = 0;
    mp_frame f;
    size_t fl;
    while (mp_frame_decode(r->in + pos, r->in_len - pos, 0, &f, &fl) == MP_OK) {
        if (mp_bytes_eq(f.method, mp_bytes_str(m))) {
            *out = f;
            return 0;
        }
        pos += fl;
    }
    return -1;
}

static bool raw_has_hello(void *ud)
{
    mp_frame f;
    return raw_find(ud, MP_HELLO_METHOD, &f) == 0;
}

static size_t ctl_frame(uint8_t *out, size_t cap, const char *method, const uint8_t *pl, size_t n)
{
    mp_frame f;
    size_t w = 0;
    mp_hello_frame(&f, method, mp_bytes_make(pl, (uint32_t)n), 0);
    assert_int_equal(mp_frame_encode(&f, out, cap, &w, 0), MP_OK);
    return w;
}

/* A raw dialer in keyed mode: HELLO with nonce, wait for b's HELLO, then
 * AUTH claiming addr/inc with a proof under key (NULL: a proof of zeros).
 * The AUTH payload is left in auth_out (for a replay). */
static void raw_keyed(mp_env *env, raw *r, node *b, const uint8_t *key, const char *ns,
                      const char *addr, uint32_t inc, uint8_t nonce_byte, uint8_t *auth_out,
                      size_t *auth_len)
{
    uint8_t buf[512], pl[MP_AUTH_MAX_PAYLOAD];
    size_t n = 0;
    raw_open(env, r, mp_transport_self_addr(b->t));
    mp_hello h;
    memset(&h, 0, sizeof h);
    h.version = MP_HELLO_VERSION;
    h.mode = MP_HELLO_KEYED;
    memset(h.nonce, nonce_byte, sizeof h.nonce);
    assert_int_equal(mp_hello_encode(&h, pl, sizeof pl, &n), MP_OK);
    raw_write(r, 0, buf, ctl_frame(buf, sizeof buf, MP_HELLO_METHOD, pl, n));
    run_until(env, raw_has_hello, r);
    mp_frame bf;
    assert_int_equal(raw_find(r, MP_HELLO_METHOD, &bf), 0);
    mp_hello bh;
    assert_int_equal(mp_hello_decode(bf.payload.ptr, bf.payload.len, &bh), MP_OK);
    assert_int_equal(bh.mode, MP_HELLO_KEYED);
    uint8_t proof[MP_HELLO_PROOF_LEN];
    memset(proof, 0, sizeof proof);
    if (key) {
        mp_proof_input in = {'D', h.nonce, bh.nonce, mp_bytes_str(ns), mp_bytes_str(addr),
                             mp_bytes_str(mp_transport_self_addr(b->t)), inc, 0};
        assert_int_equal(mp_proof_compute(key, &in, proof), MP_OK);
    }
    mp_auth a = {mp_bytes_str(addr), inc, mp_bytes_make(NULL, 0),
                 mp_bytes_make(proof, sizeof proof)};
    assert_int_equal(mp_auth_encode(&a, pl, sizeof pl, &n), MP_OK);
    if (auth_out) {
        memcpy(auth_out, pl, n);
        *auth_len = n;
    }
    raw_write(r, 1, buf, ctl_frame(buf, sizeof buf, MP_AUTH_METHOD, pl, n));
}

static bool contains(const uint8_t *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(p + i, needle, k) == 0) return true;
    return false;
}

/* A stranger without the secret: it gets b's HELLO (version, mode, nonce)
 * and a refusal that names nothing; never the namespace, b's address or
 * incarnation. A right proof, recorded, does not open a second connection
 * (replay: b's nonce is new each time). */
static void test_auth_stranger_learns_nothing_and_replay_fails(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 23);
    set_key(env, "s3cret");
    uint8_t key[MP_ENV_KEY_LEN];
    memcpy(key, env->net.key, sizeof key);
    node b;
    node_start(env, &b, 1, "hidden.ns", "127.0.0.1:0", 77, NULL);
    const char *baddr = mp_transport_self_addr(b.t);
    raw r;
    raw_keyed(env, &r, &b, NULL, "hidden.ns", "127.0.0.1:7790", 1, 0x11, NULL, NULL);
    run_until(env, raw_ended, &r);
    const char *m[8];
    assert_int_equal(raw_frames(&r, m, 8), 2);
    assert_string_equal(m[0], "hello");
    assert_string_equal(m[1], "hello_refused");
    assert_false(contains(r.in, r.in_len, "hidden"));
    assert_false(contains(r.in, r.in_len, baddr));
    char port[16];
    snprintf(port, sizeof port, "%s", strrchr(baddr, ':') + 1);
    assert_false(contains(r.in, r.in_len, port));
    mp_peer_stats tot;
    mp_transport_totals(b.t, &tot);
    assert_int_equal(tot.auth_failures, 1);
    assert_int_equal(mp_transport_peer_stats(b.t, "127.0.0.1:7790", &tot), MP_ENOTFOUND);
    raw_close(env, &r);

    /* The right key: accepted, and b's hello_ok proves b. */
    uint8_t rec[MP_AUTH_MAX_PAYLOAD];
    size_t rec_len = 0;
    raw_keyed(env, &r, &b, key, "hidden.ns", "127.0.0.1:7791", 1, 0x22, rec, &rec_len);
    run_for(env, 30 * MS);
    assert_int_equal(raw_frames(&r, m, 8), 2);
    assert_string_equal(m[1], "hello_ok");
    mp_peer_stats s;
    assert_int_equal(mp_transport_peer_stats(b.t, "127.0.0.1:7791", &s), MP_OK);
    assert_true(s.connected);
    raw_close(env, &r);
    run_until(env, went_down, &b);

    /* Replay: the same nonce and the recorded AUTH on a new connection. */
    raw_open(env, &r, baddr);
    uint8_t buf[512], pl[MP_HELLO_SIZE];
    size_t n = 0;
    mp_hello h;
    memset(&h, 0, sizeof h);
    h.version = MP_HELLO_VERSION;
    h.mode = MP_HELLO_KEYED;
    memset(h.nonce, 0x22, sizeof h.nonce);
    assert_int_equal(mp_hello_encode(&h, pl, sizeof pl, &n), MP_OK);
    raw_write(&r, 0, buf, ctl_frame(buf, sizeof buf, MP_HELLO_METHOD, pl, n));
    uint8_t buf2[512];
    raw_write(&r, 1, buf2, ctl_frame(buf2, sizeof buf2, MP_AUTH_METHOD, rec, rec_len));
    run_until(env, raw_ended, &r);
    assert_int_equal(raw_frames(&r, m, 8), 2);
    assert_string_equal(m[1], "hello_refused");
    mp_transport_totals(b.t, &tot);
    assert_int_equal(tot.auth_failures, 2);
    assert_int_equal(mp_transport_peer_stats(b.t, "127.0.0.1:7791", &s), MP_OK);
    assert_int_equal(s.connects, 1);
    raw_close(env, &r);

    /* A HELLO that sends b's own nonce back (reflection) is refused. */
    raw_open(env, &r, baddr);
    run_until(env, raw_has_hello, &r);
    mp_frame bf;
    assert_int_equal(raw_find(&r, MP_HELLO_METHOD, &bf), 0);
    raw_write(&r, 0, buf, ctl_frame(buf, sizeof buf, MP_HELLO_METHOD, bf.payload.ptr,
                                    bf.payload.len));
    run_until(env, raw_ended, &r);
    mp_transport_totals(b.t, &tot);
    assert_int_equal(tot.auth_failures, 3);
    raw_close(env, &r);
    node_close(env, &b);
    set_key(env, NULL);
    destroy_env(env);
}

/* Impersonation of a live member: a forger without the secret claims a's
 * address with a much higher incarnation. b keeps a's connection, a's
 * recorded incarnation, and a's traffic. */
static void test_auth_forged_claim_does_not_take_a_member(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 24);
    set_key(env, "s3cret");
    uint8_t key[MP_ENV_KEY_LEN];
    memcpy(key, env->net.key, sizeof key);
    node a, b;
    node_start(env, &a, 0, "test", "127.0.0.1:0", 3, NULL);
    node_start(env, &b, 1, "test", "127.0.0.1:0", 1, NULL);
    char aaddr[80];
    snprintf(aaddr, sizeof aaddr, "%s", mp_transport_self_addr(a.t));
    assert_int_equal(send_seq(&a, &b, 0), MP_OK);
    count_wait w = {&b, 0, 1};
    run_until(env, got_all, &w);
    mp_peer_stats s;
    assert_int_equal(mp_transport_peer_stats(b.t, aaddr, &s), MP_OK);
    assert_int_equal(s.incarnation, 3);
    raw r;
    raw_keyed(env, &r, &b, NULL, "test", aaddr, 1000, 0x33, NULL, NULL);
    run_until(env, raw_ended, &r);
    assert_int_equal(mp_transport_peer_stats(b.t, aaddr, &s), MP_OK);
    assert_true(s.connected);
    assert_int_equal(s.incarnation, 3);
    assert_int_equal(s.connects, 1);
    assert_int_equal(b.rx.restarts, 1);
    raw_close(env, &r);
    /* Even with the secret, a claim of a lower incarnation than the one
     * recorded is refused and changes nothing. */
    raw_keyed(env, &r, &b, key, "test", aaddr, 2, 0x44, NULL, NULL);
    run_until(env, raw_ended, &r);
    const char *m[4];
    assert_int_equal(raw_frames(&r, m, 4), 2);
    assert_string_equal(m[1], "hello_refused");
    assert_int_equal(mp_transport_peer_stats(b.t, aaddr, &s), MP_OK);
    assert_true(s.connected);
    assert_int_equal(s.incarnation, 3);
    assert_int_equal(s.connects, 1);
    /* a's traffic still flows both ways on its own connection. */
    assert_int_equal(send_seq(&a, &b, 1), MP_OK);
    count_wait w2 = {&b, 0, 2};
    run_until(env, got_all, &w2);
    assert_int_equal(send_seq(&b, &a, 0), MP_OK);
    count_wait w3 = {&a, 1, 1};
    run_until(env, got_all, &w3);
    assert_int_equal(b.rx.bad + a.rx.bad, 0);
    raw_close(env, &r);
    node_close(env, &a);
    node_close(env, &b);
    set_key(env, NULL);
    destroy_env(env);
}

/* The caps: per IP 2. Two connections in handshake: a third evicts the
 * oldest. Two past their handshake: a third is refused at once, counted. */
static void test_connection_caps(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 25);
    env->net.max_connections_per_ip = 2;
    node b;
    node_start(env, &b, 1, "test", "127.0.0.1:0", 1, NULL);
    raw r1, r2, r3;
    raw_open(env, &r1, mp_transport_self_addr(b.t));
    raw_open(env, &r2, mp_transport_self_addr(b.t));
    raw_open(env, &r3, mp_transport_self_addr(b.t));
    run_until(env, raw_ended, &r1); /* the oldest idle one made room */
    mp_peer_stats tot;
    mp_transport_totals(b.t, &tot);
    assert_int_equal(tot.handshakes_evicted, 1);
    assert_int_equal(tot.connections_refused, 0);
    raw_close(env, &r1);
    raw_close(env, &r2);
    raw_close(env, &r3);
    run_for(env, 20 * MS);
    /* Two handshaked clients, then a third socket. */
    raw_handshaked(env, &r1, &b, "127.0.0.1:7801");
    raw_handshaked(env, &r2, &b, "127.0.0.1:7802");
    run_for(env, 30 * MS);
    raw_open(env, &r3, mp_transport_self_addr(b.t));
    run_until(env, raw_ended, &r3);
    mp_transport_totals(b.t, &tot);
    assert_int_equal(tot.connections_refused, 1);
    assert_int_equal(r3.in_len, 0); /* not even a HELLO */
    mp_peer_stats s;
    assert_int_equal(mp_transport_peer_stats(b.t, "127.0.0.1:7801", &s), MP_OK);
    assert_true(s.connected);
    raw_close(env, &r3);
    raw_close(env, &r1);
    raw_close(env, &r2);
    node_close(env, &b);
    memset(&env->net, 0, sizeof env->net);
    destroy_env(env);
}

/* ---- graceful close flushes --------------------------------------------- */

static void test_close_flushes_queue(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 10);
    node a, b;
    node_start(env, &a, 0, "test", "127.0.0.1:0", 1, NULL);
    node_start(env, &b, 1, "test", "127.0.0.1:0", 1, NULL);
    /* Queued before any connection exists; close at once: the close must
     * dial, hand-shake and write them all before releasing. */
    for (uint64_t i = 0; i < 300; i++) assert_int_equal(send_seq(&a, &b, i), MP_OK);
    int done = 0;
    mp_transport_close(a.t, 5000 * MS, set_flag, &done);
    run_until(env, flag_set, &done);
    count_wait w = {&b, 0, 300};
    run_until(env, got_all, &w);
    assert_int_equal(b.rx.bad, 0);
    assert_int_equal(b.rx.frames, 300);
    node_close(env, &b);
    destroy_env(env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_codec),
        cmocka_unit_test(test_auth_codec),
        cmocka_unit_test(test_proof_binds_every_field),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_exchange_both_ways),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_namespace_refused),
        cmocka_unit_test(test_oversize_from_peer),
        cmocka_unit_test(test_frame_before_handshake),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_silent_peer_times_out),
        cmocka_unit_test(test_trickled_frame_is_closed_within_the_frame_timeout),
        cmocka_unit_test(test_peer_that_never_reads_is_cut_off),
        cmocka_unit_test(test_idle_socket_flood_does_not_lock_out_peers),
        cmocka_unit_test(test_claimed_address_is_never_dialed),
        cmocka_unit_test(test_idle_keepalives),
        cmocka_unit_test(test_restart_incarnation),
        cmocka_unit_test(test_close_flushes_queue),
        cmocka_unit_test(test_auth_same_secret_exchanges),
        cmocka_unit_test(test_auth_wrong_secret_refused),
        cmocka_unit_test(test_auth_stranger_learns_nothing_and_replay_fails),
        cmocka_unit_test(test_auth_forged_claim_does_not_take_a_member),
        cmocka_unit_test(test_connection_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
