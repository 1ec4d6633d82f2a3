/*
 * Tests of the deterministic simulator core (src/sim/): event order, the
 * simulated network (splits, EOF, partitions, resets), process kill and
 * restart, determinism of the trace, the fault generator, and the
 * buggify/assertion runtime.
 *
 * The tests drive small hand-written processes through the public mp_env
 * interface, exactly as runtime code would, and check behaviour through what
 * those processes observe. They never depend on wall time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "moonpool/env.h"
#include "moonpool/sim.h"

#define MS MP_SIM_NS_PER_MS
#define SEC MP_SIM_NS_PER_S

static mp_sim *new_world(uint64_t seed)
{
    mp_sim_config cfg;
    mp_sim_config_init(&cfg);
    cfg.seed = seed;
    mp_sim *sim = mp_sim_create(&cfg);
    assert_non_null(sim);
    return sim;
}

/* ---- timers, defer, clock --------------------------------------------------- */

typedef struct fire {
    int tag;
    uint64_t t;
} fire;

static fire fires[64];
static int nfires;

typedef struct tmr_ctx {
    mp_env *env;
    int tag;
} tmr_ctx;

static tmr_ctx tctx[16];

static void record(int tag, mp_env *env)
{
    assert_true(nfires < 64);
    fires[nfires++] = (fire){tag, mp_env_now(env)};
}

static void on_defer(void *ud)
{
    tmr_ctx *c = ud;
    record(100 + c->tag, c->env);
}

static void on_timer(void *ud)
{
    tmr_ctx *c = ud;
    record(c->tag, c->env);
    if (c->tag == 1) {
        /* A defer and a zero timer queued from inside an event run after the
         * events already queued for this instant, never re-entrantly. */
        tctx[10] = (tmr_ctx){c->env, 10};
        tctx[11] = (tmr_ctx){c->env, 11};
        assert_int_equal(mp_env_defer(c->env, on_defer, &tctx[11]), 0);
        assert_int_not_equal(mp_env_timer_start(c->env, 0, on_timer, &tctx[10]),
                             0);
        assert_int_equal(nfires, 1); /* nothing ran synchronously */
    }
}

static int timer_boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    static const uint64_t delays[] = {30 * MS, 10 * MS, 10 * MS,
                                      20 * MS, 10 * MS, 5 * MS};
    mp_timer_id ids[6];
    for (int i = 0; i < 6; i++) {
        tctx[i] = (tmr_ctx){env, i};
        ids[i] = mp_env_timer_start(env, delays[i], on_timer, &tctx[i]);
        assert_int_not_equal(ids[i], 0);
    }
    assert_int_equal(mp_env_timer_cancel(env, ids[5]), 0);
    assert_int_equal(mp_env_timer_cancel(env, ids[5]), MP_ENOTFOUND);
    assert_int_equal(mp_env_timer_cancel(env, 0), MP_ENOTFOUND);
    assert_int_equal(mp_env_timer_cancel(env, 0xdeadbeef00000007ull),
                     MP_ENOTFOUND);
    *(mp_timer_id *)arg = ids[0];
    *state = NULL;
    return 0;
}

static void noop_teardown(void *state) { (void)state; }

static const mp_sim_process_ops timer_ops = {timer_boot, noop_teardown, NULL};

static int idle_boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    *state = arg;
    return 0;
}
static const mp_sim_process_ops idle_ops = {idle_boot, noop_teardown, NULL};

static void test_timers_order(void **unused)
{
    nfires = 0;
    mp_sim *sim = new_world(1);
    assert_null(mp_sim_create(&(mp_sim_config){.seed = 2})); /* one per thread */
    mp_timer_id id0 = 0;
    int pid = mp_sim_spawn(sim, "10.0.0.1:4500", &timer_ops, &id0);
    assert_int_equal(pid, 0);
    int other = mp_sim_spawn(sim, "10.0.0.2:4500", &idle_ops, NULL);
    assert_int_equal(other, 1);
    assert_int_equal(mp_sim_spawn(sim, "10.0.0.1:4500", &idle_ops, NULL),
                     MP_EINVAL);
    assert_int_equal(mp_sim_spawn(sim, "nope", &idle_ops, NULL), MP_EINVAL);

    assert_int_equal(mp_sim_now(sim), 0);
    assert_true(mp_sim_step(sim)); /* boot 0 */
    assert_true(mp_sim_step(sim)); /* boot 1 */
    assert_int_equal(mp_sim_now(sim), 0);
    assert_true(mp_sim_process_running(sim, pid));
    assert_int_equal(mp_sim_process_incarnation(sim, pid), 1);

    /* A timer id is only valid on its own env. */
    assert_int_equal(mp_env_timer_cancel(mp_sim_process_env(sim, other), id0),
                     MP_ENOTFOUND);

    assert_int_equal(mp_sim_run_until(sim, 15 * MS), 5);
    assert_int_equal(mp_sim_now(sim), 15 * MS);
    /* 10 ms: tags 1, 2, 4 in scheduling order, then the defer and the zero
     * timer queued by tag 1. The cancelled 5 ms timer never ran. */
    int expect1[] = {1, 2, 4, 111, 10};
    assert_int_equal(nfires, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fires[i].tag, expect1[i]);
        assert_int_equal(fires[i].t, 10 * MS);
    }
    assert_true(mp_sim_step(sim));
    assert_int_equal(mp_sim_now(sim), 20 * MS);
    assert_int_equal(fires[5].tag, 3);
    assert_true(mp_sim_step(sim));
    assert_int_equal(fires[6].tag, 0);
    assert_int_equal(fires[6].t, 30 * MS);
    assert_false(mp_sim_step(sim)); /* queue empty: the clock stays */
    assert_int_equal(mp_sim_now(sim), 30 * MS);
    assert_int_equal(mp_env_timer_cancel(mp_sim_process_env(sim, pid), id0),
                     MP_ENOTFOUND);
    mp_sim_destroy(sim);
    assert_null(mp_sim_current());
}

/* ---- streams ------------------------------------------------------------------ */

#define XFER_MAX (256 * 1024)

typedef struct xfer {
    /* client side */
    uint8_t *out;
    size_t out_len;
    size_t bounds[512]; /* cumulative write boundaries */
    int nwrites;
    int writes_done;
    int write_errors;
    mp_stream *cs;
    int connect_status;
    int refused_status;
    /* server side */
    mp_listener *l;
    mp_stream *ss;
    uint8_t *in;
    size_t in_len;
    int reads;
    int small_reads;
    int split_inside;   /* a read ended inside a write */
    int merged_writes;  /* a read spanned a write boundary */
    int eofs;
    int after_eof;
    int closes;
} xfer;

static void srv_read(void *ud, mp_stream *s, const uint8_t *data, size_t len,
                     int status)
{
    xfer *x = ud;
    if (x->eofs) x->after_eof++;
    if (status == MP_EOF) {
        x->eofs++;
        mp_stream_close(s, NULL, NULL);
        x->ss = NULL;
        return;
    }
    assert_int_equal(status, 0);
    assert_true(len > 0 && x->in_len + len <= x->out_len);
    size_t start = x->in_len, end = start + len;
    memcpy(x->in + x->in_len, data, len);
    x->in_len += len;
    x->reads++;
    if (len < 16) x->small_reads++;
    bool end_on_bound = false;
    for (int i = 0; i < x->nwrites; i++) {
        if (x->bounds[i] == end) end_on_bound = true;
        if (x->bounds[i] > start && x->bounds[i] < end) x->merged_writes++;
    }
    if (!end_on_bound) x->split_inside++;
}

static void srv_accept(void *ud, mp_stream *s, int status)
{
    xfer *x = ud;
    assert_int_equal(status, 0);
    assert_null(x->ss);
    x->ss = s;
    assert_non_null(mp_stream_peer(s));
    assert_int_equal(mp_stream_read_start(s, srv_read, x), 0);
}

static int srv_boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    xfer *x = arg;
    assert_int_equal(mp_env_listen(env, "10.0.0.1:4500", srv_accept, x, &x->l),
                     0);
    *state = x;
    return 0;
}

static void srv_teardown(void *state)
{
    xfer *x = state;
    if (x->l) mp_listener_close(x->l, NULL, NULL);
    x->l = NULL;
}

static const mp_sim_process_ops srv_ops = {srv_boot, srv_teardown, NULL};

static void cli_closed(void *ud) { ((xfer *)ud)->closes++; }

static void cli_write_done(void *ud, int status)
{
    xfer *x = ud;
    if (status != 0) x->write_errors++;
    if (++x->writes_done == x->nwrites) {
        mp_stream_close(x->cs, cli_closed, x);
        x->cs = NULL;
    }
}

static void cli_connected(void *ud, mp_stream *s, int status)
{
    xfer *x = ud;
    x->connect_status = status;
    assert_int_equal(status, 0);
    assert_string_equal(mp_stream_peer(s), "10.0.0.1:4500");
    x->cs = s;
    size_t off = 0;
    for (int i = 0; i < x->nwrites; i++) {
        size_t len = x->bounds[i] - off;
        /* two iovecs per write: the stream must keep them as one unit */
        mp_iovec iov[2] = {{x->out + off, len / 2},
                           {x->out + off + len / 2, len - len / 2}};
        assert_int_equal(mp_stream_write(s, iov, 2, cli_write_done, x), 0);
        off = x->bounds[i];
    }
}

static void cli_refused(void *ud, mp_stream *s, int status)
{
    xfer *x = ud;
    assert_null(s);
    x->refused_status = status;
}

static int cli_boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    xfer *x = arg;
    mp_listener *l2;
    assert_int_equal(mp_env_listen(env, "10.0.0.1:4500", srv_accept, x, &l2),
                     MP_EADDRINUSE);
    assert_int_equal(mp_env_listen(env, "10.0.0.2:0", srv_accept, x, &l2),
                     MP_EADDR);
    assert_int_equal(mp_env_listen(env, "bad address", srv_accept, x, &l2),
                     MP_EADDR);
    assert_int_equal(mp_env_connect(env, "10.0.0.9", cli_refused, x), MP_EADDR);
    assert_int_equal(mp_env_connect(env, "10.0.0.9:1", cli_refused, x), 0);
    assert_int_equal(mp_env_connect(env, "10.0.0.1:4500", cli_connected, x), 0);
    *state = x;
    return 0;
}

static const mp_sim_process_ops cli_ops = {cli_boot, noop_teardown, NULL};

static void test_stream_exchange(void **unused)
{
    static xfer x;
    memset(&x, 0, sizeof x);
    x.out = malloc(XFER_MAX);
    x.in = malloc(XFER_MAX);
    assert_non_null(x.out);
    assert_non_null(x.in);
    uint64_t r = 12345;
    size_t off = 0;
    x.nwrites = 300;
    for (int i = 0; i < x.nwrites; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        size_t len = 1 + (size_t)((r >> 33) % 800);
        for (size_t k = 0; k < len; k++) x.out[off + k] = (uint8_t)(r >> (k % 56));
        off += len;
        x.bounds[i] = off;
    }
    x.out_len = off;

    mp_sim *sim = new_world(7);
    assert_int_equal(mp_sim_spawn(sim, "10.0.0.1:4500", &srv_ops, &x), 0);
    assert_int_equal(mp_sim_spawn(sim, "10.0.0.2:4500", &cli_ops, &x), 1);
    mp_sim_run_until(sim, 10 * SEC);
    assert_false(mp_sim_failed(sim));
    assert_int_equal(x.refused_status, MP_ECONNREFUSED);
    assert_int_equal(x.connect_status, 0);
    assert_int_equal(x.writes_done, x.nwrites);
    assert_int_equal(x.write_errors, 0);
    assert_int_equal(x.closes, 1);
    assert_int_equal(x.in_len, x.out_len);
    assert_memory_equal(x.in, x.out, x.out_len);
    assert_int_equal(x.eofs, 1);
    assert_int_equal(x.after_eof, 0);
    /* Pieces really are random: cut inside writes, merged across them,
     * sometimes tiny. */
    assert_true(x.reads != x.nwrites);
    assert_true(x.split_inside > 0);
    assert_true(x.merged_writes > 0);
    assert_true(x.small_reads > 0);
    mp_sim_stats st;
    mp_sim_get_stats(sim, &st);
    assert_int_equal(st.bytes_delivered, x.out_len);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.connect_failures, 1);
    mp_sim_destroy(sim);
    free(x.out);
    free(x.in);
}

/* ---- partition, reset, kill ----------------------------------------------------- */

typedef struct pnode {
    mp_env *env;
    mp_listener *l;
    mp_stream *streams[8];
    int nstreams;
    uint8_t rx[4096];
    size_t rx_len;
    int rx_status; /* last end status seen */
    int connects_ok, connect_err;
    mp_stream *last;
    int teardowns;
    int timer_fired;
    uint32_t booted_inc;
    bool close_in_teardown;
    const char *listen_addr;
} pnode;

static void p_read(void *ud, mp_stream *s, const uint8_t *data, size_t len,
                   int status)
{
    pnode *n = ud;
    if (status < 0) {
        n->rx_status = status;
        return;
    }
    assert_true(n->rx_len + len <= sizeof n->rx);
    memcpy(n->rx + n->rx_len, data, len);
    n->rx_len += len;
}

static void p_add(pnode *n, mp_stream *s)
{
    assert_true(n->nstreams < 8);
    n->streams[n->nstreams++] = s;
    n->last = s;
    assert_int_equal(mp_stream_read_start(s, p_read, n), 0);
}

static void p_accept(void *ud, mp_stream *s, int status)
{
    assert_int_equal(status, 0);
    p_add(ud, s);
}

static void p_connected(void *ud, mp_stream *s, int status)
{
    pnode *n = ud;
    if (status < 0) {
        n->connect_err = status;
        return;
    }
    n->connects_ok++;
    p_add(n, s);
}

static void p_timer(void *ud) { ((pnode *)ud)->timer_fired++; }

static int p_boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    pnode *n = arg;
    n->env = env;
    n->booted_inc = inc;
    n->nstreams = 0;
    n->l = NULL;
    if (n->listen_addr)
        assert_int_equal(mp_env_listen(env, n->listen_addr, p_accept, n, &n->l),
                         0);
    *state = n;
    return 0;
}

static void p_teardown(void *state)
{
    pnode *n = state;
    n->teardowns++;
    if (!n->close_in_teardown) return; /* leave streams for the world to free */
    for (int i = 0; i < n->nstreams; i++)
        mp_stream_close(n->streams[i], NULL, NULL);
    n->nstreams = 0;
    if (n->l) mp_listener_close(n->l, NULL, NULL);
}

static const mp_sim_process_ops p_ops = {p_boot, p_teardown, NULL};

static void write_str(mp_stream *s, const char *text)
{
    mp_iovec iov = {text, strlen(text)};
    assert_int_equal(mp_stream_write(s, &iov, 1, NULL, NULL), 0);
}

static void test_partition(void **unused)
{
    static pnode a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.listen_addr = "10.0.0.1:1";
    a.close_in_teardown = true;
    mp_sim *sim = new_world(3);
    int pa = mp_sim_spawn(sim, "10.0.0.1:1", &p_ops, &a);
    int pb = mp_sim_spawn(sim, "10.0.0.2:1", &p_ops, &b);
    mp_sim_run_until(sim, 1 * MS);
    assert_int_equal(mp_env_connect(b.env, "10.0.0.1:1", p_connected, &b), 0);
    mp_sim_run_until(sim, 500 * MS);
    assert_int_equal(b.connects_ok, 1);
    assert_int_equal(a.nstreams, 1);

    /* An indefinite partition holds bytes and fails new connects. */
    assert_int_equal(mp_sim_partition(sim, pa, pb, 0), 0);
    write_str(b.last, "held-bytes");
    assert_int_equal(mp_env_connect(b.env, "10.0.0.1:1", p_connected, &b), 0);
    mp_sim_run_until(sim, 3 * SEC);
    assert_int_equal(a.rx_len, 0);
    assert_int_equal(b.connect_err, MP_ETIMEDOUT);
    assert_int_equal(b.connects_ok, 1);

    /* Heal delivers the held bytes, and connects work again. */
    mp_sim_heal(sim);
    mp_sim_run_until(sim, 4 * SEC);
    assert_int_equal(a.rx_len, 10);
    assert_memory_equal(a.rx, "held-bytes", 10);
    assert_int_equal(mp_env_connect(b.env, "10.0.0.1:1", p_connected, &b), 0);
    mp_sim_run_until(sim, 5 * SEC);
    assert_int_equal(b.connects_ok, 2);

    /* A timed partition releases its bytes by itself. */
    uint64_t t0 = mp_sim_now(sim);
    assert_int_equal(mp_sim_partition(sim, pb, pa, 500 * MS), 0);
    write_str(b.streams[0], "later");
    mp_sim_run_until(sim, t0 + 400 * MS);
    assert_int_equal(a.rx_len, 10);
    mp_sim_run_until(sim, t0 + 1 * SEC);
    assert_int_equal(a.rx_len, 15);
    assert_memory_equal(a.rx + 10, "later", 5);

    /* A clog stalls too, then lets go. */
    t0 = mp_sim_now(sim);
    assert_int_equal(mp_sim_clog(sim, pa, 300 * MS), 0);
    write_str(b.streams[0], "clog");
    mp_sim_run_until(sim, t0 + 250 * MS);
    assert_int_equal(a.rx_len, 15);
    mp_sim_run_until(sim, t0 + 1 * SEC);
    assert_int_equal(a.rx_len, 19);

    /* Explicit reset: both readers see it, writes fail at once. */
    assert_int_equal(mp_sim_reset_connections(sim, pa, pb), 0);
    mp_iovec iov = {"x", 1};
    assert_int_equal(mp_stream_write(b.streams[0], &iov, 1, NULL, NULL),
                     MP_ECONNRESET);
    mp_sim_run_until(sim, t0 + 2 * SEC);
    assert_int_equal(a.rx_status, MP_ECONNRESET);
    assert_int_equal(b.rx_status, MP_ECONNRESET);
    mp_sim_stats st;
    mp_sim_get_stats(sim, &st);
    assert_int_equal(st.partitions, 2);
    assert_int_equal(st.clogs, 1);
    assert_int_equal(st.resets, 2);
    assert_false(mp_sim_failed(sim));
    mp_sim_destroy(sim);
    assert_int_equal(a.teardowns, 1);
    assert_int_equal(b.teardowns, 1);
}

static void test_kill_restart(void **unused)
{
    static pnode a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.listen_addr = "10.0.0.1:1";
    b.listen_addr = "10.0.0.2:1";
    mp_sim *sim = new_world(5);
    int pa = mp_sim_spawn(sim, "10.0.0.1:1", &p_ops, &a);
    int pb = mp_sim_spawn(sim, "10.0.0.2:1", &p_ops, &b);
    assert_int_equal(mp_sim_kill(sim, pb), MP_EINVAL); /* not booted yet */
    assert_int_equal(mp_sim_kill(sim, 99), MP_ENOTFOUND);
    mp_sim_run_until(sim, 1 * MS);
    assert_int_equal(mp_env_connect(b.env, "10.0.0.1:1", p_connected, &b), 0);
    assert_int_equal(mp_env_connect(a.env, "10.0.0.2:1", p_connected, &a), 0);
    mp_sim_run_until(sim, 500 * MS);
    assert_int_equal(a.nstreams, 2);
    assert_int_equal(b.nstreams, 2);
    assert_int_not_equal(mp_env_timer_start(b.env, 1 * SEC, p_timer, &b), 0);
    /* Bytes in flight to b when it dies are simply lost. */
    write_str(a.streams[0], "to-the-dead");
    static int disk_thing;
    *mp_sim_process_disk(sim, pb) = &disk_thing;

    assert_int_equal(mp_sim_kill(sim, pb), 0);
    assert_int_equal(b.teardowns, 1);
    assert_false(mp_sim_process_running(sim, pb));
    assert_null(mp_sim_process_state(sim, pb));
    assert_null(mp_sim_process_env(sim, pb));
    assert_int_equal(mp_sim_kill(sim, pb), MP_EINVAL);
    assert_int_equal(mp_sim_restart(sim, pa, 0), MP_EINVAL); /* running */
    mp_sim_run_until(sim, 3 * SEC);
    assert_int_equal(a.rx_status, MP_ECONNRESET);
    assert_int_equal(b.timer_fired, 0);
    assert_int_equal(b.teardowns, 1);
    /* Its address is free again: nobody listens there now. */
    assert_int_equal(mp_env_connect(a.env, "10.0.0.2:1", p_connected, &a), 0);
    a.connect_err = 0;
    mp_sim_run_until(sim, 4 * SEC);
    assert_int_equal(a.connect_err, MP_ECONNREFUSED);

    assert_int_equal(mp_sim_restart(sim, pb, 100 * MS), 0);
    assert_int_equal(mp_sim_restart(sim, pb, 100 * MS), MP_EINVAL);
    mp_sim_run_until(sim, 4 * SEC + 50 * MS);
    assert_false(mp_sim_process_running(sim, pb));
    mp_sim_run_until(sim, 5 * SEC);
    assert_true(mp_sim_process_running(sim, pb));
    assert_int_equal(mp_sim_process_incarnation(sim, pb), 2);
    assert_int_equal(b.booted_inc, 2);
    assert_ptr_equal(*mp_sim_process_disk(sim, pb), &disk_thing);
    assert_ptr_equal(mp_sim_process_state(sim, pb), &b);
    assert_int_equal(b.nstreams, 0);
    /* The new incarnation is reachable again. */
    assert_int_equal(mp_env_connect(a.env, "10.0.0.2:1", p_connected, &a), 0);
    mp_sim_run_until(sim, 6 * SEC);
    assert_int_equal(b.nstreams, 1);
    mp_sim_stats st;
    mp_sim_get_stats(sim, &st);
    assert_int_equal(st.kills, 1);
    assert_int_equal(st.restarts, 1);
    /* Kill a with open streams and an open listener that its teardown
     * ignores: the world frees them (checked by ASan / valgrind). */
    assert_int_equal(mp_sim_kill(sim, pa), 0);
    mp_sim_run_until(sim, 7 * SEC);
    assert_int_equal(b.rx_status, MP_ECONNRESET);
    assert_false(mp_sim_failed(sim));
    mp_sim_destroy(sim); /* b still running, streams open */
    assert_int_equal(b.teardowns, 2);
    assert_int_equal(a.teardowns, 1);
}

/* ---- a chatty node for chaos and determinism --------------------------------------- */

static uint8_t pattern[70000];

static uint8_t pat(uint64_t off) { return (uint8_t)(off * 31 + 7); }

typedef struct cconn {
    struct cnode *n;
    mp_stream *s;
    uint64_t rx, tx;
    bool accepted;
    struct cconn *next, *prev;
} cconn;

typedef struct cnode {
    mp_sim *sim;
    mp_env *env;
    int idx, count;
    mp_listener *l;
    mp_timer_id timer;
    cconn head; /* sentinel */
    uint64_t bytes_ok;
    uint64_t writes_done;
} cnode;

static const char *caddr(int i)
{
    static char bufs[16][32];
    snprintf(bufs[i], sizeof bufs[i], "10.1.0.%d:7000", i + 1);
    return bufs[i];
}

static void cc_close(cconn *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    mp_stream_close(c->s, NULL, NULL);
    free(c);
}

static void cc_write(cconn *c, size_t len);

static void cc_write_done(void *ud, int status)
{
    cnode *n = ud;
    n->writes_done++;
}

static void cc_write(cconn *c, size_t len)
{
    mp_iovec iov = {pattern + (c->tx % 256), len};
    int rc = mp_stream_write(c->s, &iov, 1, cc_write_done, c->n);
    if (rc == 0) c->tx += len;
}

static void cc_read(void *ud, mp_stream *s, const uint8_t *data, size_t len,
                    int status)
{
    cconn *c = ud;
    if (status < 0) {
        cc_close(c);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        if (data[i] != pat(c->rx + i)) {
            mp_sim_fail(c->n->sim, "byte %llu corrupted",
                        (unsigned long long)(c->rx + i));
            break;
        }
    }
    c->rx += len;
    c->n->bytes_ok += len;
    if (c->accepted) {
        cc_write(c, len); /* echo the same amount */
    } else if (c->rx >= c->tx && mp_env_random_below(c->n->env, 3) == 0) {
        cc_close(c);
    } else if (c->rx >= c->tx) {
        cc_write(c, 1 + mp_env_random_below(c->n->env, 3000));
    }
}

static cconn *cc_new(cnode *n, mp_stream *s, bool accepted)
{
    cconn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->n = n;
    c->s = s;
    c->accepted = accepted;
    c->next = n->head.next;
    c->prev = &n->head;
    n->head.next->prev = c;
    n->head.next = c;
    assert_int_equal(mp_stream_read_start(s, cc_read, c), 0);
    return c;
}

static void cn_accept(void *ud, mp_stream *s, int status)
{
    if (status == 0) cc_new(ud, s, true);
}

static void cn_connected(void *ud, mp_stream *s, int status)
{
    cnode *n = ud;
    if (status < 0) return;
    cconn *c = cc_new(n, s, false);
    cc_write(c, 1 + mp_env_random_below(n->env, 65000));
}

static void cn_tick(void *ud)
{
    cnode *n = ud;
    int peer = (int)mp_env_random_below(n->env, (uint64_t)n->count);
    if (peer != n->idx)
        assert_int_equal(mp_env_connect(n->env, caddr(peer), cn_connected, n),
                         0);
    n->timer = mp_env_timer_start(
        n->env, MS + mp_env_random_below(n->env, 50 * MS), cn_tick, n);
}

static int cn_boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    cnode *n = calloc(1, sizeof *n);
    if (!n) return MP_ENOMEM;
    const cnode *proto = arg;
    *n = *proto;
    n->env = env;
    n->head.next = n->head.prev = &n->head;
    int rc = mp_env_listen(env, caddr(n->idx), cn_accept, n, &n->l);
    if (rc != 0) {
        free(n);
        return rc;
    }
    n->timer = mp_env_timer_start(env, mp_env_random_below(env, 10 * MS),
                                  cn_tick, n);
    *state = n;
    return 0;
}

static void cn_teardown(void *state)
{
    cnode *n = state;
    while (n->head.next != &n->head) cc_close(n->head.next);
    mp_listener_close(n->l, NULL, NULL);
    mp_env_timer_cancel(n->env, n->timer);
    free(n);
}

static const mp_sim_process_ops cn_ops = {cn_boot, cn_teardown, NULL};

static cnode protos[16];

static mp_sim *chaos_world(uint64_t seed, int count, bool record,
                           const mp_sim_faults *faults)
{
    mp_sim_config cfg;
    mp_sim_config_init(&cfg);
    cfg.seed = seed;
    cfg.record_trace = record;
    if (faults) cfg.faults = *faults;
    mp_sim *sim = mp_sim_create(&cfg);
    assert_non_null(sim);
    for (int i = 0; i < count; i++) {
        protos[i] = (cnode){.sim = sim, .idx = i, .count = count};
        assert_int_equal(mp_sim_spawn(sim, caddr(i), &cn_ops, &protos[i]), i);
        mp_sim_set_killable(sim, i, true);
    }
    return sim;
}

static void all_faults(mp_sim_faults *f)
{
    mp_sim_config cfg;
    mp_sim_config_init(&cfg);
    *f = cfg.faults;
    f->latency_max_ns = 5 * MS;
    f->connect_fail_p = 0.05;
    f->reset_rate = 2;
    f->partition_rate = 1;
    f->partition_max_ns = 1 * SEC;
    f->clog_rate = 1;
    f->clog_max_ns = 200 * MS;
    f->kill_rate = 0.5;
    f->restart_max_ns = 1 * SEC;
    f->buggify = true;
}

static void test_determinism(void **unused)
{
    mp_sim_faults f;
    all_faults(&f);
    uint64_t hash[3], count[3];
    uint64_t *trace = NULL;
    for (int run = 0; run < 3; run++) {
        mp_sim *sim = chaos_world(run < 2 ? 42 : 43, 4, true, &f);
        mp_sim_run_until(sim, 3 * SEC);
        assert_false(mp_sim_failed(sim));
        hash[run] = mp_sim_trace_hash(sim);
        count[run] = mp_sim_event_count(sim);
        assert_true(count[run] > 1000);
        assert_non_null(mp_sim_trace_label(sim, 0));
        assert_null(mp_sim_trace_label(sim, count[run]));
        assert_int_equal(mp_sim_trace_at(sim, count[run] - 1), hash[run]);
        if (run == 0) {
            trace = malloc(count[0] * sizeof *trace);
            assert_non_null(trace);
            for (uint64_t i = 0; i < count[0]; i++)
                trace[i] = mp_sim_trace_at(sim, i);
        } else if (run == 1) {
            assert_int_equal(count[1], count[0]);
            for (uint64_t i = 0; i < count[0]; i++)
                if (trace[i] != mp_sim_trace_at(sim, i))
                    fail_msg("diverged at event %llu (%s)",
                             (unsigned long long)i, mp_sim_trace_label(sim, i));
        }
        mp_sim_destroy(sim);
    }
    free(trace);
    assert_int_equal(hash[0], hash[1]);
    assert_int_not_equal(hash[0], hash[2]);

    /* Without record_trace, the hash is the same and nothing is kept. */
    mp_sim *sim = chaos_world(42, 4, false, &f);
    mp_sim_run_until(sim, 3 * SEC);
    assert_int_equal(mp_sim_trace_hash(sim), hash[0]);
    assert_int_equal(mp_sim_trace_at(sim, 0), 0);
    assert_null(mp_sim_trace_label(sim, 0));
    mp_sim_destroy(sim);
}

static void test_chaos_and_heal(void **unused)
{
    mp_sim_faults f;
    all_faults(&f);
    mp_sim *sim = chaos_world(9, 6, false, &f);
    mp_sim_run_until(sim, 10 * SEC);
    assert_false(mp_sim_failed(sim));
    mp_sim_stats st;
    mp_sim_get_stats(sim, &st);
    assert_true(st.partitions >= 3);
    assert_true(st.clogs >= 3);
    assert_true(st.resets >= 3);
    assert_true(st.kills >= 2);
    assert_true(st.restarts >= 1);
    assert_true(st.connect_failures >= 1);
    assert_true(st.bytes_delivered > 100000);
    mp_sim_heal(sim);
    const mp_sim_faults *hf = mp_sim_get_faults(sim);
    assert_false(hf->buggify);
    assert_true(hf->kill_rate == 0 && hf->latency_tail_p == 0);
    mp_sim_run_until(sim, 11 * SEC);
    for (int i = 0; i < 6; i++) assert_true(mp_sim_process_running(sim, i));
    mp_sim_stats st2;
    mp_sim_get_stats(sim, &st2);
    mp_sim_run_until(sim, 13 * SEC);
    mp_sim_stats st3;
    mp_sim_get_stats(sim, &st3);
    assert_int_equal(st3.kills, st2.kills);
    assert_int_equal(st3.partitions, st2.partitions);
    assert_true(st3.bytes_delivered > st2.bytes_delivered);
    assert_false(mp_sim_failed(sim));
    mp_sim_destroy(sim);
}

static void test_swarm_config(void **unused)
{
    int fam_on[6] = {0}, bug_on = 0;
    const int n = 400;
    for (int s = 0; s < n; s++) {
        mp_sim_faults a, b;
        mp_sim_faults_swarm((uint64_t)s, &a);
        mp_sim_faults_swarm((uint64_t)s, &b);
        assert_memory_equal(&a, &b, sizeof a);
        fam_on[0] += a.connect_fail_p > 0;
        fam_on[1] += a.reset_rate > 0;
        fam_on[2] += a.partition_rate > 0;
        fam_on[3] += a.clog_rate > 0;
        fam_on[4] += a.kill_rate > 0;
        bug_on += a.buggify;
        assert_true(a.latency_min_ns <= a.latency_max_ns);
    }
    for (int i = 0; i < 5; i++) {
        assert_true(fam_on[i] > n / 2 - 80 && fam_on[i] < n / 2 + 80);
    }
    assert_true(bug_on > 3 * n / 4 - 70 && bug_on < 3 * n / 4 + 70);
    char buf[512];
    mp_sim_faults f;
    mp_sim_faults_swarm(1, &f);
    mp_sim_faults_format(&f, buf, sizeof buf);
    assert_non_null(strstr(buf, "buggify="));
    /* A swarm world uses the drawn faults. */
    mp_sim_config cfg;
    mp_sim_config_init(&cfg);
    cfg.seed = 1;
    cfg.swarm = true;
    mp_sim *sim = mp_sim_create(&cfg);
    assert_memory_equal(mp_sim_get_faults(sim), &f, sizeof f);
    mp_sim_destroy(sim);
}

/* ---- buggify and assertions ------------------------------------------------------- */

#define NSITES 8

static bool site_eval(int i)
{
    switch (i) {
    case 0: return MP_BUGGIFY();
    case 1: return MP_BUGGIFY();
    case 2: return MP_BUGGIFY();
    case 3: return MP_BUGGIFY();
    case 4: return MP_BUGGIFY();
    case 5: return MP_BUGGIFY();
    case 6: return MP_BUGGIFY();
    default: return MP_BUGGIFY();
    }
}

typedef struct site_scan {
    int enabled;
    int buggify_sites;
    uint64_t evals_enabled, hits;
} site_scan;

static void scan_site(mp_site *site, void *ud)
{
    site_scan *sc = ud;
    if (site->kind != MP_SITE_BUGGIFY || !strstr(site->file, "test_sim.c"))
        return;
    sc->buggify_sites++;
    if (site->enabled) {
        sc->enabled++;
        sc->evals_enabled += site->evals;
    }
    sc->hits += site->hits;
}

static void test_buggify_stats(void **unused)
{
    for (int i = 0; i < NSITES; i++) assert_false(site_eval(i)); /* no world */
    const int worlds = 200, per = 200;
    int enabled = 0;
    uint64_t evals = 0, hits = 0, fired_stat = 0;
    for (int w = 0; w < worlds; w++) {
        mp_sim_config cfg;
        mp_sim_config_init(&cfg);
        cfg.seed = 1000 + (uint64_t)w;
        cfg.faults.buggify = true;
        mp_sim *sim = mp_sim_create(&cfg);
        assert_non_null(sim);
        for (int k = 0; k < per; k++)
            for (int i = 0; i < NSITES; i++) site_eval(i);
        site_scan sc = {0};
        mp_sites_foreach(scan_site, &sc);
        assert_int_equal(sc.buggify_sites, NSITES);
        enabled += sc.enabled;
        evals += sc.evals_enabled;
        hits += sc.hits;
        mp_sim_stats st;
        mp_sim_get_stats(sim, &st);
        fired_stat += st.buggify_fired;
        /* The decision is per seed: the same seed decides the same way. */
        mp_sim_destroy(sim);
    }
    assert_int_equal(fired_stat, hits);
    /* Half the sites enabled: n = 1600, sigma = 20, 4 sigma = 80. */
    int n = worlds * NSITES;
    assert_true(enabled > n / 2 - 80 && enabled < n / 2 + 80);
    /* Enabled sites fire 25%: sigma = sqrt(N * 0.1875). */
    double rate = (double)hits / (double)evals;
    double sigma = 0.433 / __builtin_sqrt((double)evals);
    assert_true(rate > 0.25 - 4 * sigma && rate < 0.25 + 4 * sigma);

    /* Buggify off in the world: never fires, even on enabled sites. */
    mp_sim *sim = new_world(1000);
    for (int k = 0; k < 100; k++)
        for (int i = 0; i < NSITES; i++) assert_false(site_eval(i));
    mp_sim_destroy(sim);
}

typedef struct named_scan {
    const char *name;
    mp_site *site;
} named_scan;

static void find_named(mp_site *site, void *ud)
{
    named_scan *ns = ud;
    if (site->name && strcmp(site->name, ns->name) == 0) ns->site = site;
}

static mp_site *site_named(const char *name)
{
    named_scan ns = {name, NULL};
    mp_sites_foreach(find_named, &ns);
    return ns.site;
}

/* Read at run time so no compiler can drop the site below as dead code. */
static volatile int never_flag;

static void must_not_run(void *ud) { fail_msg("ran after the seed failed"); }

static void test_assertions(void **unused)
{
    uint64_t real0 = mp_always_failures_real();
    MP_ALWAYS(1 + 1 == 3, "test.real_mode_failure");
    assert_int_equal(mp_always_failures_real(), real0 + 1);

    mp_sim *sim = new_world(77);
    for (int i = 0; i < 30; i++) MP_SOMETIMES(i % 3 == 0, "test.sometimes");
    MP_REACHABLE("test.reachable");
    MP_ALWAYS(true, "test.always_true");
    assert_false(mp_sim_failed(sim));
    mp_site *s = site_named("test.sometimes");
    assert_non_null(s);
    assert_int_equal(s->evals, 30);
    assert_int_equal(s->hits, 10);
    assert_non_null(site_named("test.reachable"));
    assert_int_equal(site_named("test.reachable")->hits, 1);
    assert_non_null(site_named("test.never")); /* listed though never run */
    assert_int_equal(site_named("test.never")->evals, 0);
    MP_ALWAYS(1 + 1 == 3, "test.always_false");
    assert_true(mp_sim_failed(sim));
    assert_non_null(strstr(mp_sim_failure(sim), "test.always_false"));
    assert_non_null(strstr(mp_sim_failure(sim), "sim time"));
    mp_sim_fail(sim, "second %d", 2); /* counted, first message kept */
    assert_non_null(strstr(mp_sim_failure(sim), "test.always_false"));
    assert_int_equal(mp_always_failures_real(), real0 + 1);
    /* A failed seed stops the run functions. */
    assert_int_equal(mp_sim_schedule(sim, 1 * MS, must_not_run, NULL), 0);
    assert_int_equal(mp_sim_run_until(sim, 1 * SEC), 0);
    mp_sim_destroy(sim);

    /* Counters restart with each world. */
    sim = new_world(78);
    assert_int_equal(s->evals, 0);
    assert_int_equal(s->hits, 0);
    mp_sim_destroy(sim);
    if (never_flag) MP_SOMETIMES(true, "test.never");
}

/* ---- close semantics, flow control, self-kill ------------------------------------- */

typedef struct cs_ctx {
    mp_stream *srv, *cli;
    mp_listener *l;
    int order[8];
    int norder;
    uint8_t rx[64];
    size_t rx_len;
    int eof;
    int teardowns;
    int pid;
    mp_env *env;
    int late_timer;
} cs_ctx;

static void cs_write_done(void *ud, int status)
{
    cs_ctx *c = ud;
    c->order[c->norder++] = status; /* MP_ECANCELED expected */
}

static void cs_closed(void *ud)
{
    cs_ctx *c = ud;
    c->order[c->norder++] = 1;
}

static void cs_read(void *ud, mp_stream *s, const uint8_t *data, size_t len,
                    int status)
{
    cs_ctx *c = ud;
    if (status == MP_EOF) {
        c->eof++;
        return;
    }
    assert_int_equal(status, 0);
    memcpy(c->rx + c->rx_len, data, len);
    c->rx_len += len;
}

static void cs_accept(void *ud, mp_stream *s, int status)
{
    cs_ctx *c = ud;
    c->srv = s; /* not reading yet: bytes must wait */
}

static void cs_connected(void *ud, mp_stream *s, int status)
{
    cs_ctx *c = ud;
    assert_int_equal(status, 0);
    mp_iovec iov[3] = {{"abc", 3}, {"defg", 4}, {"hi", 2}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(mp_stream_write(s, &iov[i], 1, cs_write_done, c), 0);
    mp_stream_close(s, cs_closed, c); /* same turn: writes are cancelled */
}

static int cs_boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    cs_ctx *c = arg;
    c->env = env;
    if (inc == 1 && !c->l) {
        assert_int_equal(mp_env_listen(env, "10.0.0.1:1", cs_accept, c, &c->l),
                         0);
        assert_int_equal(mp_env_connect(env, "10.0.0.1:1", cs_connected, c), 0);
    }
    *state = c;
    return 0;
}

static void late_timer(void *ud) { ((cs_ctx *)ud)->late_timer++; }

static void cs_teardown(void *state)
{
    cs_ctx *c = state;
    c->teardowns++;
    /* Env calls during teardown are accepted and call nothing back. */
    assert_int_not_equal(mp_env_timer_start(c->env, 1, late_timer, c), 0);
    if (c->srv) mp_stream_close(c->srv, cs_closed, c);
    c->srv = NULL;
    if (c->l) mp_listener_close(c->l, cs_closed, c);
    c->l = NULL;
}

static const mp_sim_process_ops cs_ops = {cs_boot, cs_teardown, NULL};

static void suicide(void *ud)
{
    cs_ctx *c = ud;
    assert_int_equal(mp_sim_kill(mp_sim_current(), c->pid), 0);
    assert_int_equal(c->teardowns, 1);
    /* The env stays usable until this event returns; nothing runs later. */
    assert_true(mp_env_now(c->env) > 0);
    mp_env_timer_start(c->env, 0, late_timer, c);
}

static void test_close_and_self_kill(void **unused)
{
    static cs_ctx c;
    memset(&c, 0, sizeof c);
    mp_sim *sim = new_world(11);
    c.pid = mp_sim_spawn(sim, "10.0.0.1:1", &cs_ops, &c);
    mp_sim_run_until(sim, 1 * SEC);
    /* Write completions ran cancelled, before the close callback. */
    assert_int_equal(c.norder, 4);
    for (int i = 0; i < 3; i++) assert_int_equal(c.order[i], MP_ECANCELED);
    assert_int_equal(c.order[3], 1);
    /* The bytes still travelled; they wait for read_start. */
    assert_non_null(c.srv);
    assert_int_equal(c.rx_len, 0);
    assert_int_equal(mp_stream_read_start(c.srv, cs_read, &c), 0);
    mp_sim_run_until(sim, 2 * SEC);
    assert_int_equal(c.rx_len, 9);
    assert_memory_equal(c.rx, "abcdefghi", 9);
    assert_int_equal(c.eof, 1);
    /* Writing to a closed peer: accepted once, then the stream is reset. */
    mp_iovec iov = {"x", 1};
    assert_int_equal(mp_stream_write(c.srv, &iov, 1, NULL, NULL), 0);
    assert_int_equal(mp_stream_write(c.srv, &iov, 1, NULL, NULL),
                     MP_ECONNRESET);
    assert_int_equal(mp_stream_read_stop(c.srv), 0);
    /* A process killing itself from its own timer. */
    assert_int_not_equal(mp_env_timer_start(c.env, 10 * MS, suicide, &c), 0);
    mp_sim_run_until(sim, 3 * SEC);
    assert_int_equal(c.teardowns, 1);
    assert_int_equal(c.late_timer, 0);
    assert_int_equal(c.norder, 4); /* teardown closes called nothing back */
    assert_false(mp_sim_process_running(sim, c.pid));
    assert_int_equal(mp_sim_restart(sim, c.pid, 0), 0);
    mp_sim_run_until(sim, 4 * SEC);
    assert_int_equal(mp_sim_process_incarnation(sim, c.pid), 2);
    assert_false(mp_sim_failed(sim));
    mp_sim_destroy(sim);
    assert_int_equal(c.teardowns, 2);
}

/* ---- world callbacks, run_while_not ------------------------------------------------ */

static int world_calls;
static void world_cb(void *ud)
{
    world_calls++;
    mp_sim *sim = ud;
    if (world_calls < 5) mp_sim_schedule(sim, 10 * MS, world_cb, sim);
}
static bool five_calls(void *ud) { return world_calls >= 5; }
static bool never(void *ud) { return false; }

static void test_world_schedule(void **unused)
{
    world_calls = 0;
    mp_sim *sim = new_world(4);
    uint64_t r1 = mp_sim_random(sim);
    assert_true(mp_sim_random_below(sim, 10) < 10);
    assert_int_equal(mp_sim_schedule(sim, 5 * MS, world_cb, sim), 0);
    assert_true(mp_sim_run_while_not(sim, five_calls, NULL, 1 * SEC));
    assert_int_equal(mp_sim_now(sim), 45 * MS);
    assert_int_equal(mp_sim_schedule(sim, 2 * SEC, world_cb, sim), 0);
    assert_false(mp_sim_run_while_not(sim, never, NULL, 1 * SEC));
    assert_int_equal(mp_sim_now(sim), 45 * MS);
    assert_false(mp_sim_run_while_not(sim, never, NULL, 3 * SEC)); /* empties */
    assert_int_equal(world_calls, 6);
    mp_sim_destroy(sim);
    sim = new_world(4);
    assert_int_equal(mp_sim_random(sim), r1); /* world stream is seeded */
    mp_sim_destroy(sim);
}

int main(void)
{
    for (size_t i = 0; i < sizeof pattern; i++) pattern[i] = pat(i);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_order),
        cmocka_unit_test(test_stream_exchange),
        cmocka_unit_test(test_partition),
        cmocka_unit_test(test_kill_restart),
        cmocka_unit_test(test_close_and_self_kill),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_chaos_and_heal),
        cmocka_unit_test(test_swarm_config),
        cmocka_unit_test(test_buggify_stats),
        cmocka_unit_test(test_assertions),
        cmocka_unit_test(test_world_schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
