/*
 * Tests of the real env backend (src/env/env_uv.c) on 127.0.0.1.
 *
 * They check behaviour, never speed: timer order and cancellation, that a
 * timer never fires before its delay in now_ns terms, defer batching, a TCP
 * echo of more than 1 MB in many odd-sized writes, EOF and cancellation on
 * close, address and connect errors, destroy's refusal while handles live.
 * Every wait for I/O is bounded by a guard timer, so a bug fails the test
 * instead of hanging it; the guard's length is never asserted on.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "moonpool/env_uv.h"
#include "moonpool/env.h"
#include "moonpool/status.h"
#include "util/prng.h"

#define MS 1000000ull
#define GUARD_NS (30000ull * MS)

/* ---- helpers ------------------------------------------------------------ */

static void set_flag(void *ud) { *(int *)ud = 1; }

/* Run the loop until *flag is set; fail (rather than hang) after GUARD_NS. */
static void run_until(mp_env *env, const int *flag)
{
    int guard = 0;
    mp_timer_id g = mp_env_timer_start(env, GUARD_NS, set_flag, &guard);
    assert_true(g != 0);
    while (!*flag && !guard) mp_env_uv_run_once(env, 1);
    assert_false(guard);
    assert_int_equal(mp_env_timer_cancel(env, g), MP_OK);
}

/* Close-callbacks run on a later turn: spin until destroy accepts. */
static void destroy_env(mp_env *env)
{
    for (int i = 0; i < 1000; i++) {
        if (mp_env_uv_destroy(env) == MP_OK) return;
        mp_env_uv_run_once(env, 0);
    }
    fail_msg("env never became destroyable");
}

static void count_close(void *ud) { (*(int *)ud)++; }

/* With nothing pending the env must let the loop go idle (within a couple of
 * non-blocking turns: a turn that ran callbacks polls once more). */
static void assert_settles(mp_env *env)
{
    int alive = 1;
    for (int i = 0; i < 5 && alive; i++) alive = mp_env_uv_run_once(env, 0);
    assert_int_equal(alive, 0);
}

/* ---- time and timers ---------------------------------------------------- */

static void test_now_monotonic(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 1);
    assert_non_null(env);
    assert_string_equal(env->name, "uv");
    assert_int_equal(env->log_level, MP_LOG_WARN);
    assert_true(mp_env_is_uv(env));
    uint64_t prev = mp_env_now(env);
    for (int i = 0; i < 10000; i++) {
        uint64_t t = mp_env_now(env);
        assert_true(t >= prev);
        prev = t;
    }
    assert_int_equal(mp_env_uv_destroy(env), MP_OK);
}

typedef struct order_rec {
    int fired[64];
    int n;
} order_rec;

typedef struct order_arg {
    order_rec *rec;
    int index;
} order_arg;

static void record_order(void *ud)
{
    order_arg *a = ud;
    a->rec->fired[a->rec->n++] = a->index;
}

static void test_timers_fire_in_deadline_order(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 2);
    /* Delays in ms; equal delays must fire in start order. */
    static const int delays[] = {30, 10, 20, 0, 5, 10, 1, 25, 0, 5, 2, 15};
    enum { N = sizeof delays / sizeof delays[0] };
    order_rec rec = {.n = 0};
    order_arg args[N];
    /* Each deadline lies in [lo, hi]: now before and after its start call
     * (the calls are not instantaneous, e.g. under valgrind). */
    uint64_t lo[N], hi[N];
    for (int i = 0; i < N; i++) {
        args[i] = (order_arg){&rec, i};
        uint64_t d = (uint64_t)delays[i] * MS;
        lo[i] = mp_env_now(env) + d;
        assert_true(mp_env_timer_start(env, d, record_order, &args[i]) != 0);
        hi[i] = mp_env_now(env) + d;
    }
    while (rec.n < N) mp_env_uv_run_once(env, 1);
    assert_int_equal(rec.n, N);
    for (int x = 0; x < N; x++) {
        for (int y = x + 1; y < N; y++) {
            int a = rec.fired[x], b = rec.fired[y]; /* a fired before b */
            assert_true(lo[a] <= hi[b]);            /* never provably late */
            if (delays[a] == delays[b]) assert_true(a < b);
        }
    }
    /* Nothing left: the loop goes idle. */
    assert_settles(env);
    assert_int_equal(mp_env_uv_destroy(env), MP_OK);
}

typedef struct when_rec {
    mp_env *env;
    uint64_t at;
    int fired;
} when_rec;

static void record_when(void *ud)
{
    when_rec *w = ud;
    w->at = mp_env_now(w->env);
    w->fired++;
}

static void test_timer_never_early(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 3);
    /* Several delays, including sub-millisecond ones (rounded up, never
     * early) and the 50 ms of the brief. */
    static const uint64_t delays[] = {50 * MS, 1, 999999, 1 * MS, 3 * MS + 1};
    for (size_t k = 0; k < sizeof delays / sizeof delays[0]; k++) {
        when_rec w = {env, 0, 0};
        uint64_t start = mp_env_now(env);
        assert_true(mp_env_timer_start(env, delays[k], record_when, &w) != 0);
        run_until(env, &w.fired);
        assert_int_equal(w.fired, 1);
        assert_true(w.at - start >= delays[k]);
    }
    assert_int_equal(mp_env_uv_destroy(env), MP_OK);
}

typedef struct cancel_ctx {
    mp_env *env;
    mp_timer_id victim;
    mp_timer_id self;
    int fired_a, fired_victim, self_cancel_rc;
} cancel_ctx;

static void cancel_victim(void *ud)
{
    cancel_ctx *c = ud;
    c->fired_a++;
    assert_int_equal(mp_env_timer_cancel(c->env, c->victim), MP_OK);
    c->self_cancel_rc = mp_env_timer_cancel(c->env, c->self);
}

static void victim_cb(void *ud) { ((cancel_ctx *)ud)->fired_victim++; }

static void test_timer_cancel(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 4);
    cancel_ctx c = {.env = env};
    int fired = 0, done = 0;

    /* Cancel before it fires: it never fires; a second cancel is ENOTFOUND. */
    mp_timer_id t = mp_env_timer_start(env, 2 * MS, set_flag, &fired);
    assert_true(t != 0);
    assert_int_equal(mp_env_timer_cancel(env, t), MP_OK);
    assert_int_equal(mp_env_timer_cancel(env, t), MP_ENOTFOUND);
    mp_env_timer_start(env, 10 * MS, set_flag, &done);
    run_until(env, &done);
    assert_int_equal(fired, 0);

    /* Cancel of a fired id, of 0, of garbage. */
    assert_int_equal(mp_env_timer_cancel(env, 0), MP_ENOTFOUND);
    assert_int_equal(mp_env_timer_cancel(env, 0xdeadbeef00000007ull), MP_ENOTFOUND);
    done = 0;
    mp_timer_id f = mp_env_timer_start(env, 0, set_flag, &done);
    run_until(env, &done);
    assert_int_equal(mp_env_timer_cancel(env, f), MP_ENOTFOUND);

    /* A reused slot does not make an old id valid again. */
    mp_timer_id g = mp_env_timer_start(env, 100 * MS, set_flag, &fired);
    assert_true(g != f);
    assert_int_equal(mp_env_timer_cancel(env, f), MP_ENOTFOUND);
    assert_int_equal(mp_env_timer_cancel(env, g), MP_OK);

    /* Cancelling from inside another timer's callback, same deadline pass:
     * the victim (due at the same time, later in order) must not run; a
     * timer cancelling itself while firing gets ENOTFOUND. */
    c.self = mp_env_timer_start(env, 1 * MS, cancel_victim, &c);
    c.victim = mp_env_timer_start(env, 1 * MS, victim_cb, &c);
    done = 0;
    mp_env_timer_start(env, 20 * MS, set_flag, &done);
    run_until(env, &done);
    assert_int_equal(c.fired_a, 1);
    assert_int_equal(c.fired_victim, 0);
    assert_int_equal(c.self_cancel_rc, MP_ENOTFOUND);

    /* Many timers, half cancelled in a scattered order. */
    enum { M = 500 };
    mp_timer_id ids[M];
    int hits[M];
    memset(hits, 0, sizeof hits);
    mp_prng p;
    mp_prng_seed(&p, 99);
    for (int i = 0; i < M; i++) {
        ids[i] = mp_env_timer_start(env, mp_prng_below(&p, 5 * MS), set_flag, &hits[i]);
        assert_true(ids[i] != 0);
    }
    for (int i = 0; i < M; i += 2) assert_int_equal(mp_env_timer_cancel(env, ids[i]), MP_OK);
    done = 0;
    mp_env_timer_start(env, 10 * MS, set_flag, &done);
    run_until(env, &done);
    for (int i = 0; i < M; i++) assert_int_equal(hits[i], i % 2);
    assert_int_equal(mp_env_uv_destroy(env), MP_OK);
}

typedef struct spin_ctx {
    mp_env *env;
    int fires;
    mp_timer_id live;
} spin_ctx;

static void respin(void *ud)
{
    spin_ctx *s = ud;
    s->fires++;
    s->live = mp_env_timer_start(s->env, 0, respin, s);
    assert_true(s->live != 0);
}

static void test_zero_timer_rearm_does_not_spin(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 5);
    spin_ctx s = {env, 0, 0};
    s.live = mp_env_timer_start(env, 0, respin, &s);
    /* A timer re-arming itself at delay 0 fires at most once per pass, so a
     * single non-waiting turn returns. */
    for (int i = 0; i < 10; i++) {
        int before = s.fires;
        mp_env_uv_run_once(env, 0);
        assert_true(s.fires - before <= 1);
    }
    for (int i = 0; i < 10; i++) {
        int before = s.fires;
        mp_env_uv_run_once(env, 1);
        assert_true(s.fires - before <= 2); /* ONCE has two timer passes */
    }
    assert_true(s.fires >= 10);
    assert_int_equal(mp_env_uv_destroy(env), MP_EBUSY); /* still armed */
    assert_int_equal(mp_env_timer_cancel(env, s.live), MP_OK);
    assert_settles(env);
    assert_int_equal(mp_env_uv_destroy(env), MP_OK);
}

/* ---- defer ---------------------------------------------------------------- */

typedef struct defer_ctx {
    mp_env *env;
    int log[32];
    int n;
    int t2_saw_flush;
    int flush_saw_t2;
} defer_ctx;

typedef struct defer_arg {
    defer_ctx *c;
    int tag;
} defer_arg;

static void log_tag(void *ud)
{
    defer_arg *a = ud;
    a->c->log[a->c->n++] = a->tag;
}

static defer_arg g_nested_arg;

static void log_and_defer(void *ud)
{
    defer_arg *a = ud;
    a->c->log[a->c->n++] = a->tag;
    g_nested_arg = (defer_arg){a->c, 100 + a->tag};
    assert_int_equal(mp_env_defer(a->c->env, log_tag, &g_nested_arg), MP_OK);
}

static void test_defer_order_and_turns(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 6);
    defer_ctx c = {.env = env};
    defer_arg a[3] = {{&c, 1}, {&c, 2}, {&c, 3}};
    assert_int_equal(mp_env_defer(env, log_tag, &a[0]), MP_OK);
    assert_int_equal(mp_env_defer(env, log_and_defer, &a[1]), MP_OK);
    assert_int_equal(mp_env_defer(env, log_tag, &a[2]), MP_OK);
    assert_int_equal(c.n, 0); /* never inside the call */
    assert_int_equal(mp_env_uv_destroy(env), MP_EBUSY); /* queued work */
    mp_env_uv_run_once(env, 0);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.log[0], 1);
    assert_int_equal(c.log[1], 2);
    assert_int_equal(c.log[2], 3);
    /* The one deferred during the flush runs on the next turn, and the loop
     * did not block waiting for I/O in between (wait=1 would hang if so; the
     * idle handle makes the poll non-blocking). */
    mp_env_uv_run_once(env, 1);
    assert_int_equal(c.n, 4);
    assert_int_equal(c.log[3], 102);
    /* With nothing queued the env holds no active handle. */
    assert_settles(env);
    assert_int_equal(mp_env_defer(env, NULL, NULL), MP_EINVAL);
    assert_int_equal(mp_env_uv_destroy(env), MP_OK);
}

static int g_flushed;
static int g_t2_ran;
static int g_flush_after_t2;
static int g_t2_before_flush;

static void flush_cb(void *ud)
{
    g_flushed++;
    g_flush_after_t2 = g_t2_ran;
}

static void t1_cb(void *ud) { assert_int_equal(mp_env_defer(ud, flush_cb, NULL), MP_OK); }

static void t2_cb(void *ud)
{
    g_t2_ran = 1;
    g_t2_before_flush = !g_flushed;
}

static void test_defer_batches_a_turn(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 7);
    g_flushed = g_t2_ran = g_flush_after_t2 = g_t2_before_flush = 0;
    /* Two timers due in the same pass: the flush deferred by the first runs
     * after the second, once. */
    mp_env_timer_start(env, 0, t1_cb, env);
    mp_env_timer_start(env, 0, t2_cb, env);
    run_until(env, &g_flushed);
    assert_int_equal(g_flushed, 1);
    assert_true(g_t2_before_flush);
    assert_true(g_flush_after_t2);
    assert_int_equal(mp_env_uv_destroy(env), MP_OK);
}

/* ---- TCP ------------------------------------------------------------------ */

typedef struct echo_conn {
    mp_stream *s;
    int eof_status;
    int got_eof;
    int closed;
    size_t pending_writes;
} echo_conn;

typedef struct echo_server {
    mp_env *env;
    mp_listener *l;
    echo_conn conn;
    int accepted;
    int accept_errors;
    int listener_closed;
} echo_server;

typedef struct echo_chunk {
    echo_conn *conn;
    size_t len;
    uint8_t data[];
} echo_chunk;

static void echo_written(void *ud, int status)
{
    echo_chunk *c = ud;
    assert_int_equal(status, MP_OK);
    c->conn->pending_writes--;
    free(c);
}

static void echo_read(void *ud, mp_stream *s, const uint8_t *data, size_t len,
                      int status)
{
    echo_conn *conn = ud;
    if (status != MP_OK) {
        assert_null(data);
        assert_int_equal(len, 0);
        conn->got_eof = 1;
        conn->eof_status = status;
        mp_stream_close(s, count_close, &conn->closed);
        return;
    }
    assert_true(len > 0);
    echo_chunk *c = malloc(sizeof *c + len);
    assert_non_null(c);
    c->conn = conn;
    c->len = len;
    memcpy(c->data, data, len);
    mp_iovec iov = {c->data, len};
    assert_int_equal(mp_stream_write(s, &iov, 1, echo_written, c), MP_OK);
    conn->pending_writes++;
}

static void echo_accept(void *ud, mp_stream *s, int status)
{
    echo_server *srv = ud;
    if (status != MP_OK) {
        srv->accept_errors++;
        return;
    }
    assert_non_null(s);
    assert_int_equal(srv->accepted, 0);
    srv->accepted = 1;
    srv->conn.s = s;
    assert_ptr_equal(mp_stream_env(s), srv->env);
    assert_true(strncmp(mp_stream_peer(s), "127.0.0.1:", 10) == 0);
    assert_int_equal(mp_stream_read_start(s, echo_read, &srv->conn), MP_OK);
}

static void start_server(mp_env *env, echo_server *srv, char *addr, size_t cap)
{
    memset(srv, 0, sizeof *srv);
    srv->env = env;
    assert_int_equal(mp_env_listen(env, "127.0.0.1:0", echo_accept, srv, &srv->l), MP_OK);
    int port = mp_listener_port(srv->l);
    assert_true(port > 0 && port <= 65535);
    snprintf(addr, cap, "127.0.0.1:%d", port);
}

#define TOTAL (1200u * 1024u)

typedef struct client {
    mp_env *env;
    mp_stream *s;
    int connect_status;
    int connected;
    uint8_t *sent;
    uint8_t *recv;
    size_t nrecv;
    int writes_done;
    int write_errors;
    int all_back;
    int closed;
    int end_status;
} client;

static void client_written(void *ud, int status)
{
    client *c = ud;
    if (status != MP_OK) c->write_errors++;
    c->writes_done++;
}

static void client_read(void *ud, mp_stream *s, const uint8_t *data, size_t len,
                        int status)
{
    client *c = ud;
    if (status != MP_OK) {
        c->end_status = status;
        return;
    }
    assert_true(c->nrecv + len <= TOTAL);
    memcpy(c->recv + c->nrecv, data, len);
    c->nrecv += len;
    if (c->nrecv == TOTAL) c->all_back = 1;
}

static void client_connected(void *ud, mp_stream *s, int status)
{
    client *c = ud;
    c->connected = 1;
    c->connect_status = status;
    c->s = s;
}

static void test_tcp_echo(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 8);
    echo_server srv;
    char addr[64];
    start_server(env, &srv, addr, sizeof addr);

    client c = {.env = env};
    c.sent = malloc(TOTAL);
    c.recv = malloc(TOTAL);
    assert_non_null(c.sent);
    assert_non_null(c.recv);
    mp_prng p;
    mp_prng_seed(&p, 1234);
    for (size_t i = 0; i < TOTAL; i++) c.sent[i] = (uint8_t)mp_prng_next(&p);

    assert_int_equal(mp_env_connect(env, addr, client_connected, &c), MP_OK);
    assert_int_equal(c.connected, 0); /* never inside the call */
    run_until(env, &c.connected);
    assert_int_equal(c.connect_status, MP_OK);
    assert_string_equal(mp_stream_peer(c.s), addr);
    assert_int_equal(mp_stream_read_start(c.s, client_read, &c), MP_OK);

    /* Many writes of odd sizes, some with many iovecs (more than fit
     * inline), some empty, all queued at once. */
    static const size_t sizes[] = {1, 7, 100, 1000, 4096, 65536, 65537, 3, 200000, 13};
    size_t off = 0;
    int nwrites = 0, k = 0;
    while (off < TOTAL) {
        size_t want = sizes[k % 10];
        if (want > TOTAL - off) want = TOTAL - off;
        int parts = (k % 3 == 0) ? 1 : (k % 3 == 1 ? 5 : 20);
        mp_iovec iov[20];
        size_t left = want, o = off;
        for (int j = 0; j < parts; j++) {
            size_t len = j == parts - 1 ? left : left / (size_t)(parts - j);
            iov[j] = (mp_iovec){c.sent + o, len};
            o += len;
            left -= len;
        }
        assert_int_equal(left, 0);
        assert_int_equal(mp_stream_write(c.s, iov, parts, client_written, &c), MP_OK);
        nwrites++;
        off += want;
        k++;
        if (k % 7 == 0) {
            assert_int_equal(mp_stream_write(c.s, NULL, 0, client_written, &c), MP_OK);
            nwrites++;
        }
    }
    assert_int_equal(c.writes_done, 0);
    run_until(env, &c.all_back);
    assert_memory_equal(c.sent, c.recv, TOTAL);
    while (c.writes_done < nwrites) mp_env_uv_run_once(env, 1);
    assert_int_equal(c.write_errors, 0);

    /* Close from the client: the server sees MP_EOF, closes its end. */
    assert_int_equal(mp_env_uv_destroy(env), MP_EBUSY);
    mp_stream_close(c.s, count_close, &c.closed);
    assert_int_equal(c.closed, 0);
    run_until(env, &srv.conn.closed);
    assert_int_equal(srv.conn.eof_status, MP_EOF);
    assert_int_equal(c.closed, 1);
    assert_int_equal(srv.conn.pending_writes, 0);
    assert_int_equal(srv.accept_errors, 0);

    mp_listener_close(srv.l, count_close, &srv.listener_closed);
    run_until(env, &srv.listener_closed);
    free(c.sent);
    free(c.recv);
    destroy_env(env);
}

/* The server side closes: the client reads MP_EOF, and its read side then
 * stays ended while writes still report through their callbacks. */
static void close_on_accept(void *ud, mp_stream *s, int status)
{
    echo_server *srv = ud;
    assert_int_equal(status, MP_OK);
    srv->accepted = 1;
    mp_stream_close(s, count_close, &srv->conn.closed);
    /* After close nothing about this stream may be used; its close callback
     * has not run yet (never inside the call). */
    assert_int_equal(srv->conn.closed, 0);
}

static void eof_read(void *ud, mp_stream *s, const uint8_t *data, size_t len,
                     int status)
{
    client *c = ud;
    if (status != MP_OK) {
        c->end_status = status;
        c->all_back = 1;
    }
}

static void test_peer_close_gives_eof(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 9);
    echo_server srv = {.env = env};
    assert_int_equal(mp_env_listen(env, "localhost:0", close_on_accept, &srv, &srv.l), MP_OK);
    char addr[64];
    snprintf(addr, sizeof addr, "localhost:%d", mp_listener_port(srv.l));
    client c = {.env = env};
    assert_int_equal(mp_env_connect(env, addr, client_connected, &c), MP_OK);
    run_until(env, &c.connected);
    assert_int_equal(c.connect_status, MP_OK);
    assert_string_equal(mp_stream_peer(c.s), addr);
    assert_int_equal(mp_stream_read_start(c.s, eof_read, &c), MP_OK);
    run_until(env, &c.all_back);
    assert_int_equal(c.end_status, MP_EOF);
    assert_int_equal(mp_stream_read_start(c.s, eof_read, &c), MP_EOF);
    mp_stream_close(c.s, count_close, &c.closed);
    /* Operations on a closing stream are refused at once. */
    mp_iovec iov = {"x", 1};
    assert_int_equal(mp_stream_write(c.s, &iov, 1, client_written, &c), MP_ECLOSED);
    run_until(env, &c.closed);
    assert_int_equal(c.writes_done, 0);
    mp_listener_close(srv.l, NULL, NULL);
    destroy_env(env);
}

typedef struct hold_server {
    mp_stream *s;
    int closed;
    int reads;
} hold_server;

static void hold_accept(void *ud, mp_stream *s, int status)
{
    hold_server *h = ud;
    assert_int_equal(status, MP_OK);
    h->s = s; /* accepted, but never read: the sender's writes back up */
}

typedef struct wstat {
    int done;
    int status;
} wstat;

static void note_write(void *ud, int status)
{
    wstat *w = ud;
    w->done++;
    w->status = status;
}

static void test_pending_writes_cancelled_on_close(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 10);
    hold_server h = {0};
    mp_listener *l;
    assert_int_equal(mp_env_listen(env, "127.0.0.1:0", hold_accept, &h, &l), MP_OK);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", mp_listener_port(l));
    client c = {.env = env};
    assert_int_equal(mp_env_connect(env, addr, client_connected, &c), MP_OK);
    run_until(env, &c.connected);
    assert_int_equal(c.connect_status, MP_OK);
    while (!h.s) mp_env_uv_run_once(env, 1);

    /* Far more than the kernel buffers on loopback hold while the peer does
     * not read: the big write must still be pending at close. */
    size_t big = 64u * 1024u * 1024u;
    uint8_t *buf = calloc(1, big);
    assert_non_null(buf);
    wstat small = {0}, large = {0}, after = {0};
    mp_iovec iov1 = {buf, 10};
    mp_iovec iov2 = {buf, big};
    assert_int_equal(mp_stream_write(c.s, &iov1, 1, note_write, &small), MP_OK);
    assert_int_equal(mp_stream_write(c.s, &iov2, 1, note_write, &large), MP_OK);
    assert_int_equal(mp_stream_write(c.s, &iov1, 1, note_write, &after), MP_OK);
    for (int i = 0; i < 5; i++) mp_env_uv_run_once(env, 0);
    assert_int_equal(large.done, 0);
    mp_stream_close(c.s, count_close, &c.closed);
    assert_int_equal(large.done, 0); /* never inside the call */
    run_until(env, &c.closed);
    /* Each callback ran exactly once, before the close callback. */
    assert_int_equal(small.done, 1);
    assert_true(small.status == MP_OK || small.status == MP_ECANCELED);
    assert_int_equal(large.done, 1);
    assert_int_equal(large.status, MP_ECANCELED);
    assert_int_equal(after.done, 1);
    assert_int_equal(after.status, MP_ECANCELED);
    free(buf);
    mp_stream_close(h.s, count_close, &h.closed);
    mp_listener_close(l, NULL, NULL);
    run_until(env, &h.closed);
    destroy_env(env);
}

static void count_read(void *ud, mp_stream *s, const uint8_t *data, size_t len,
                       int status)
{
    hold_server *h = ud;
    if (status == MP_OK) h->reads += (int)len;
}

static void test_read_stop(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 11);
    hold_server h = {0};
    mp_listener *l;
    assert_int_equal(mp_env_listen(env, "127.0.0.1:0", hold_accept, &h, &l), MP_OK);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", mp_listener_port(l));
    client c = {.env = env};
    assert_int_equal(mp_env_connect(env, addr, client_connected, &c), MP_OK);
    run_until(env, &c.connected);
    while (!h.s) mp_env_uv_run_once(env, 1);
    assert_int_equal(mp_stream_read_start(h.s, count_read, &h), MP_OK);
    assert_int_equal(mp_stream_read_stop(h.s), MP_OK);
    wstat w = {0};
    mp_iovec iov = {"abcdef", 6};
    assert_int_equal(mp_stream_write(c.s, &iov, 1, note_write, &w), MP_OK);
    run_until(env, &w.done);
    assert_int_equal(w.status, MP_OK);
    for (int i = 0; i < 20; i++) mp_env_uv_run_once(env, 0);
    assert_int_equal(h.reads, 0); /* stopped: bytes stay buffered */
    assert_int_equal(mp_stream_read_start(h.s, count_read, &h), MP_OK);
    while (h.reads < 6) mp_env_uv_run_once(env, 1);
    assert_int_equal(h.reads, 6);
    mp_stream_close(h.s, count_close, &h.closed);
    mp_stream_close(c.s, count_close, &c.closed);
    mp_listener_close(l, NULL, NULL);
    run_until(env, &h.closed);
    run_until(env, &c.closed);
    destroy_env(env);
}

static void test_connect_refused(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 12);
    /* Find a port nobody listens on: bind one, learn it, close it. */
    echo_server srv;
    char addr[64];
    start_server(env, &srv, addr, sizeof addr);
    mp_listener_close(srv.l, count_close, &srv.listener_closed);
    run_until(env, &srv.listener_closed);

    client c = {.env = env};
    assert_int_equal(mp_env_connect(env, addr, client_connected, &c), MP_OK);
    assert_int_equal(c.connected, 0);
    assert_int_equal(mp_env_uv_destroy(env), MP_EBUSY); /* connect in flight */
    run_until(env, &c.connected);
    assert_int_equal(c.connect_status, MP_ECONNREFUSED);
    assert_null(c.s);
    destroy_env(env);
}

static void never_connect(void *ud, mp_stream *s, int status) { fail(); }
static void never_accept(void *ud, mp_stream *s, int status) { fail(); }

static void test_bad_addresses(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 13);
    static const char *bad[] = {
        "",           "127.0.0.1",     "127.0.0.1:",   ":80",          "127.0.0.1:65536",
        "127.0.0.1:-1", "127.0.0.1:8x", "1.2.3:80",     "256.1.1.1:80", "example.com:80",
        "1.2.3.4.5:80", "a b:80",       "[::1]:80",     "127.0.0.1:80:",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mp_listener *l = (mp_listener *)&l;
        assert_int_equal(mp_env_connect(env, bad[i], never_connect, NULL), MP_EADDR);
        assert_int_equal(mp_env_listen(env, bad[i], never_accept, NULL, &l), MP_EADDR);
        assert_null(l);
    }
    assert_int_equal(mp_env_connect(env, NULL, never_connect, NULL), MP_EADDR);
    assert_int_equal(mp_env_connect(env, "127.0.0.1:0", never_connect, NULL), MP_EADDR);
    /* Nothing was started: the env is immediately destroyable. */
    for (int i = 0; i < 3; i++) mp_env_uv_run_once(env, 0);
    assert_int_equal(mp_env_uv_destroy(env), MP_OK);
}

static void test_listen_twice(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 14);
    echo_server srv;
    char addr[64];
    start_server(env, &srv, addr, sizeof addr);
    mp_listener *l2 = NULL;
    assert_int_equal(mp_env_listen(env, addr, never_accept, NULL, &l2), MP_EADDRINUSE);
    assert_null(l2);
    assert_int_equal(mp_listener_port(NULL), MP_EINVAL);
    mp_listener_close(srv.l, count_close, &srv.listener_closed);
    run_until(env, &srv.listener_closed);
    destroy_env(env);
}

static void test_destroy_busy(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 0); /* OS-seeded */
    int fired = 0, closed = 0;
    mp_listener *l;
    assert_int_equal(mp_env_listen(env, "127.0.0.1:0", never_accept, NULL, &l), MP_OK);
    assert_int_equal(mp_env_uv_destroy(env), MP_EBUSY);
    mp_listener_close(l, count_close, &closed);
    assert_int_equal(mp_env_uv_destroy(env), MP_EBUSY); /* close cb not run yet */
    run_until(env, &closed);
    mp_timer_id t = mp_env_timer_start(env, 1000 * MS, set_flag, &fired);
    assert_int_equal(mp_env_uv_destroy(env), MP_EBUSY);
    assert_int_equal(mp_env_timer_cancel(env, t), MP_OK);
    assert_int_equal(mp_env_uv_destroy(env), MP_OK);
    assert_int_equal(fired, 0);
}

/* An env on the embedder's loop: the env never runs or closes that loop;
 * its internal handles finish closing when the owner runs it. */
static void test_borrowed_loop(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    mp_env *env = mp_env_uv_create(&loop, 15);
    assert_non_null(env);
    assert_ptr_equal(mp_env_uv_loop(env), &loop);
    int fired = 0;
    assert_true(mp_env_timer_start(env, 2 * MS, set_flag, &fired) != 0);
    uv_run(&loop, UV_RUN_DEFAULT); /* returns: nothing left once it fired */
    assert_int_equal(fired, 1);
    assert_int_equal(mp_env_uv_destroy(env), MP_OK);
    uv_run(&loop, UV_RUN_DEFAULT); /* runs the env's close callbacks */
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_random(void **state)
{
    mp_env *a = mp_env_uv_create(NULL, 77);
    mp_env *b = mp_env_uv_create(NULL, 77);
    mp_env *c = mp_env_uv_create(NULL, 78);
    int differ = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = mp_env_random(a);
        assert_true(x == mp_env_random(b));
        differ += x != mp_env_random(c);
        assert_true(mp_env_random_below(a, 10) < 10);
        (void)mp_env_random_below(b, 10);
    }
    assert_true(differ > 90);
    assert_int_equal(mp_env_uv_destroy(a), MP_OK);
    assert_int_equal(mp_env_uv_destroy(b), MP_OK);
    assert_int_equal(mp_env_uv_destroy(c), MP_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_now_monotonic),
        cmocka_unit_test(test_timers_fire_in_deadline_order),
        cmocka_unit_test(test_timer_never_early),
        cmocka_unit_test(test_timer_cancel),
        cmocka_unit_test(test_zero_timer_rearm_does_not_spin),
        cmocka_unit_test(test_defer_order_and_turns),
        cmocka_unit_test(test_defer_batches_a_turn),
        cmocka_unit_test(test_tcp_echo),
        cmocka_unit_test(test_peer_close_gives_eof),
        cmocka_unit_test(test_pending_writes_cancelled_on_close),
        cmocka_unit_test(test_read_stop),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_listen_twice),
        cmocka_unit_test(test_destroy_busy),
        cmocka_unit_test(test_borrowed_loop),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
