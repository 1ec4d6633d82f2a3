/*
 * The transport's at-most-once guards, one focused test each, in the
 * deterministic simulator (two processes, a fixed 1 ms latency, no random
 * faults: every time below is exact, so the bounds are tight).
 *
 *  - mp_transport_drop_queued: frames queued for a peer that no connection
 *    took are reported (kind, correlation id, queue order) and never written;
 *    frames already written (held in flight by a partition) are not reported
 *    and still arrive; frames sent after the drop arrive.
 *  - peer_age_pending: a request that waited D in a peer's queue (nobody
 *    listening yet) reaches the peer with ttl T - D; one whose ttl ran out in
 *    the queue is never written and counts in dropped_frames.
 *  - stall_age: a request that sat unread while the receiving process was
 *    paused reaches on_frame with its ttl reduced by the pause.
 *  - the silence rule: a request held on the way (one-way partition) longer
 *    than two heartbeats reaches on_frame with its ttl reduced by the
 *    silence.
 *
 * The stall test pauses the receiver for 1.5 heartbeats on purpose: longer
 * than two heartbeats the silence rule alone ages the same request (the
 * paused receiver read nothing either), so breaking stall_age would go
 * unseen. Likewise the silence test keeps the receiver's loop running (its
 * ticks are on time), so only the silence rule can age the request.
 *
 * Each world is created and destroyed inside one test; a failed check
 * leaves it to the test's teardown (one world per thread at a time).
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

#include "moonpool/env.h"
#include "moonpool/sim.h"
#include "transport/transport.h"

#define MS MP_SIM_NS_PER_MS
#define SEC MP_SIM_NS_PER_S
#define MAXRX 64

typedef struct rx {
    int to;          /* receiving process index */
    uint8_t kind;
    uint64_t corr;
    uint32_t ttl_ms; /* as on_frame saw it */
    uint64_t at;     /* world time of on_frame */
} rx;

typedef struct world {
    mp_sim *sim;
    char addr[2][32];
    int pids[2];
    uint64_t heartbeat_ns, peer_timeout_ns;
    rx got[MAXRX];
    int ngot;
    uint64_t sent_at[MAXRX]; /* by corr id */
} world;

typedef struct proc {
    world *w;
    int idx;
    mp_env *env;
    mp_transport *t;
} proc;

typedef struct slot {
    world *w;
    int idx;
} slot;

static slot slots[2];
static world *g_live; /* the world of the running test, until destroyed */

static void on_frame(void *ud, const char *peer, const mp_frame *f)
{
    proc *p = ud;
    world *w = p->w;
    if (w->ngot == MAXRX) {
        mp_sim_fail(w->sim, "too many frames");
        return;
    }
    w->got[w->ngot++] = (rx){p->idx, f->kind, f->correlation_id, f->ttl_ms, mp_sim_now(w->sim)};
}

static const mp_transport_callbacks CBS = {on_frame, NULL, NULL, NULL};

static int boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    slot *s = arg;
    proc *p = calloc(1, sizeof *p);
    if (!p) return MP_ENOMEM;
    p->w = s->w;
    p->idx = s->idx;
    p->env = env;
    mp_transport_config cfg;
    mp_transport_config_init(&cfg);
    cfg.cluster_namespace = "sim";
    cfg.self_addr = s->w->addr[s->idx];
    cfg.incarnation = inc;
    cfg.backoff_initial_ns = 2 * MS;
    cfg.backoff_max_ns = 10 * MS;
    cfg.heartbeat_ns = s->w->heartbeat_ns;
    cfg.peer_timeout_ns = s->w->peer_timeout_ns;
    int rc = mp_transport_create(env, &cfg, &CBS, p, &p->t);
    if (rc != MP_OK) {
        free(p);
        return rc;
    }
    *state = p;
    return MP_OK;
}

static void teardown(void *state)
{
    proc *p = state;
    mp_transport_free_now(p->t);
    free(p);
}

static const mp_sim_process_ops OPS = {boot, teardown, NULL};

/* A world of two processes (0 sends, 1 receives); 1 is spawned only when
 * spawn_receiver (else see spawn_at). Heartbeat 100 ms (ticks every 50 ms),
 * peer timeout 10 s: no connection closes for silence here. */
static void world_init(world *w, uint64_t seed, bool spawn_receiver)
{
    memset(w, 0, sizeof *w);
    w->heartbeat_ns = 100 * MS;
    w->peer_timeout_ns = 10 * SEC;
    mp_sim_config cfg;
    mp_sim_config_init(&cfg);
    cfg.seed = seed;
    cfg.faults.latency_min_ns = 1 * MS;
    cfg.faults.latency_max_ns = 1 * MS;
    cfg.faults.latency_tail_p = 0;
    cfg.faults.connect_fail_p = 0;
    if (getenv("MP_TEST_DEBUG")) cfg.log_level = MP_LOG_DEBUG;
    w->sim = mp_sim_create(&cfg);
    assert_non_null(w->sim);
    g_live = w;
    for (int i = 0; i < 2; i++) {
        snprintf(w->addr[i], sizeof w->addr[i], "10.0.3.%d:4500", i + 1);
        slots[i] = (slot){w, i};
        w->pids[i] = -1;
    }
    w->pids[0] = mp_sim_spawn(w->sim, w->addr[0], &OPS, &slots[0]);
    assert_true(w->pids[0] >= 0);
    if (spawn_receiver) {
        w->pids[1] = mp_sim_spawn(w->sim, w->addr[1], &OPS, &slots[1]);
        assert_true(w->pids[1] >= 0);
    }
    mp_sim_run_until(w->sim, 1 * MS); /* boots */
}

static proc *proc_of(world *w, int i) { return mp_sim_process_state(w->sim, w->pids[i]); }

/* Process 0 sends one frame to process 1 now (world-level code, as a
 * workload driver would). */
static void send_frame(world *w, uint8_t kind, uint64_t corr, uint32_t ttl_ms)
{
    mp_frame f;
    memset(&f, 0, sizeof f);
    f.kind = kind;
    f.correlation_id = corr;
    f.ttl_ms = ttl_ms;
    f.method = mp_bytes_str("m");
    f.payload = mp_bytes_str("x");
    assert_true(corr < MAXRX);
    w->sent_at[corr] = mp_sim_now(w->sim);
    assert_int_equal(mp_transport_send(proc_of(w, 0)->t, w->addr[1], &f), MP_OK);
}

static void run_for(world *w, uint64_t ns) { mp_sim_run_until(w->sim, mp_sim_now(w->sim) + ns); }

static const rx *find_rx(const world *w, uint64_t corr)
{
    for (int i = 0; i < w->ngot; i++)
        if (w->got[i].corr == corr) return &w->got[i];
    return NULL;
}

static mp_peer_stats stats_0_of_1(world *w)
{
    mp_peer_stats st;
    assert_int_equal(mp_transport_peer_stats(proc_of(w, 0)->t, w->addr[1], &st), MP_OK);
    return st;
}

/* Open the connection 0 -> 1 with one ONEWAY (corr 63, no ttl). */
static void connect_pair(world *w)
{
    send_frame(w, MP_FRAME_ONEWAY, 63, 0);
    run_for(w, 200 * MS);
    assert_non_null(find_rx(w, 63));
    assert_true(stats_0_of_1(w).connected);
}

static void destroy_checked(world *w)
{
    char err[256] = "";
    if (mp_sim_failed(w->sim)) snprintf(err, sizeof err, "%s", mp_sim_failure(w->sim));
    mp_sim_destroy(w->sim);
    w->sim = NULL;
    g_live = NULL;
    if (err[0]) fail_msg("%s", err);
}

static int destroy_left(void **state)
{
    if (g_live && g_live->sim) mp_sim_destroy(g_live->sim);
    g_live = NULL;
    return 0;
}

/* ---- mp_transport_drop_queued ------------------------------------------- */

typedef struct drop_log {
    int n;
    uint8_t kind[16];
    uint64_t corr[16];
} drop_log;

static void on_dropped(void *ud, uint8_t kind, uint64_t corr)
{
    drop_log *d = ud;
    if (d->n < 16) {
        d->kind[d->n] = kind;
        d->corr[d->n] = corr;
    }
    d->n++;
}

static void test_dropped_queued_frames_are_never_written(void **state)
{
    static world w;
    world_init(&w, 11, true);
    connect_pair(&w);

    /* Written, held in flight by a partition: not the queue's any more. */
    assert_int_equal(mp_sim_partition(w.sim, w.pids[0], w.pids[1], 100 * MS), 0);
    send_frame(&w, MP_FRAME_REQUEST, 1, 0);
    send_frame(&w, MP_FRAME_REQUEST, 2, 0);
    run_for(&w, 10 * MS); /* flushed into the connection, not delivered */
    assert_null(find_rx(&w, 1));
    assert_int_equal(stats_0_of_1(&w).queue_frames, 0);
    drop_log d = {0};
    assert_int_equal(mp_transport_drop_queued(proc_of(&w, 0)->t, w.addr[1], on_dropped, &d), 0);
    assert_int_equal(d.n, 0);
    run_for(&w, 200 * MS); /* healed */
    assert_non_null(find_rx(&w, 1));
    assert_non_null(find_rx(&w, 2));

    /* No connection: a partition, and the connection reset under it. */
    assert_int_equal(mp_sim_partition(w.sim, w.pids[0], w.pids[1], 0), 0);
    assert_int_equal(mp_sim_reset_connections(w.sim, w.pids[0], w.pids[1]), 0);
    run_for(&w, 20 * MS);
    assert_false(stats_0_of_1(&w).connected);
    uint64_t dropped_before = stats_0_of_1(&w).dropped_frames;
    for (uint64_t c = 3; c <= 7; c++)
        send_frame(&w, c == 5 ? MP_FRAME_ONEWAY : MP_FRAME_REQUEST, c, 0);
    run_for(&w, 30 * MS); /* redials into the partition meanwhile */
    assert_int_equal(stats_0_of_1(&w).queue_frames, 5);
    memset(&d, 0, sizeof d);
    assert_int_equal(mp_transport_drop_queued(proc_of(&w, 0)->t, w.addr[1], on_dropped, &d), 5);
    assert_int_equal(d.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(d.corr[i], 3 + (uint64_t)i); /* queue order */
        assert_int_equal(d.kind[i], i == 2 ? MP_FRAME_ONEWAY : MP_FRAME_REQUEST);
    }
    mp_peer_stats st = stats_0_of_1(&w);
    assert_int_equal(st.queue_frames, 0);
    assert_int_equal(st.queue_bytes, 0);
    assert_int_equal(st.dropped_frames, dropped_before + 5);
    /* Twice is nothing more. */
    assert_int_equal(mp_transport_drop_queued(proc_of(&w, 0)->t, w.addr[1], on_dropped, &d), 0);
    assert_int_equal(d.n, 5);

    send_frame(&w, MP_FRAME_REQUEST, 8, 0);
    send_frame(&w, MP_FRAME_ONEWAY, 9, 0);
    mp_sim_heal(w.sim);
    run_for(&w, 2 * SEC); /* the redial times out, backs off, reconnects */
    assert_true(stats_0_of_1(&w).connected);
    assert_non_null(find_rx(&w, 8));
    assert_non_null(find_rx(&w, 9));
    for (uint64_t c = 3; c <= 7; c++)
        if (find_rx(&w, c)) fail_msg("dropped frame %llu was delivered", (unsigned long long)c);
    assert_int_equal(w.ngot, 5); /* 63, 1, 2, 8, 9 */
    destroy_checked(&w);
}

/* ---- aging in the peer's queue ------------------------------------------ */

/* Nobody listens at 1 for `down`: a REQUEST (corr 1, ttl) and a ONEWAY
 * marker (corr 2, no ttl) wait in 0's queue, then 1 starts. */
static void queue_while_down(world *w, uint32_t ttl_ms, uint64_t down)
{
    world_init(w, 12, false);
    run_for(w, 100 * MS); /* the wait counts from the queueing, not from 0 */
    send_frame(w, MP_FRAME_REQUEST, 1, ttl_ms);
    send_frame(w, MP_FRAME_ONEWAY, 2, 0);
    run_for(w, down);
    assert_false(stats_0_of_1(w).connected);
    assert_int_equal(stats_0_of_1(w).queue_frames, 2);
    w->pids[1] = mp_sim_spawn(w->sim, w->addr[1], &OPS, &slots[1]);
    assert_true(w->pids[1] >= 0);
    run_for(w, 1 * SEC);
    assert_true(stats_0_of_1(w).connected);
    assert_int_equal(stats_0_of_1(w).queue_frames, 0);
    assert_non_null(find_rx(w, 2)); /* the queue was written */
}

static void test_queued_request_arrives_aged_by_its_wait(void **state)
{
    static world w;
    const uint32_t ttl = 1000;
    const uint64_t down = 400 * MS;
    queue_while_down(&w, ttl, down);
    const rx *r = find_rx(&w, 1);
    assert_non_null(r);
    /* Aged by the whole wait in the queue: at least `down`, at most until it
     * arrived (the flush is one latency before). */
    uint64_t waited_max = (r->at - w.sent_at[1]) / MS;
    print_message("ttl %u after %llu ms down, arrived %llu ms after the send: ttl seen %u\n",
                  ttl, (unsigned long long)(down / MS), (unsigned long long)waited_max,
                  r->ttl_ms);
    assert_true(r->ttl_ms <= ttl - down / MS);
    assert_true(r->ttl_ms >= ttl - waited_max);
    assert_true(r->ttl_ms >= ttl - down / MS - 20); /* reconnect within backoff_max + 1 rtt */
    assert_int_equal(stats_0_of_1(&w).dropped_frames, 0);
    destroy_checked(&w);
}

static void test_queued_request_expired_is_never_written(void **state)
{
    static world w;
    queue_while_down(&w, 100, 400 * MS);
    assert_null(find_rx(&w, 1));
    assert_int_equal(w.ngot, 1); /* the marker only */
    assert_int_equal(stats_0_of_1(&w).dropped_frames, 1);
    destroy_checked(&w);
}

/* ---- aging on read: our own stall, the connection's silence ------------- */

/* The last bytes 1 read before t0 arrive at t0 - 1 ms (a ONEWAY sent at
 * t0 - 2 ms), so 1's silence at any later read is measured from there. */
static void quiet_until_t0(world *w)
{
    connect_pair(w);
    send_frame(w, MP_FRAME_ONEWAY, 62, 0);
    run_for(w, 2 * MS); /* t0 */
    assert_non_null(find_rx(w, 62));
}

static void test_request_read_after_a_stall_is_aged_by_it(void **state)
{
    static world w;
    world_init(&w, 13, true);
    quiet_until_t0(&w);
    /* 1.5 heartbeats: a stall (its tick overdue by more than a tick) but
     * not a silence (<= 2 heartbeats since its last read). */
    const uint64_t pause = 150 * MS;
    uint64_t t0 = mp_sim_now(w.sim);
    assert_int_equal(mp_sim_pause(w.sim, w.pids[1], pause), 0);
    run_for(&w, 1 * MS);
    send_frame(&w, MP_FRAME_REQUEST, 1, 1000);
    send_frame(&w, MP_FRAME_REQUEST, 2, 100); /* less than the pause */
    run_for(&w, 300 * MS);
    const rx *a = find_rx(&w, 1), *b = find_rx(&w, 2);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->at, t0 + pause); /* read at the resume */
    print_message("paused %llu ms: ttl 1000 seen as %u, ttl 100 as %u\n",
                  (unsigned long long)(pause / MS), a->ttl_ms, b->ttl_ms);
    /* The stall counts from the tick before the pause (<= t0, > t0 - 1
     * tick): aged by the pause, at most a tick more. */
    assert_true(a->ttl_ms <= 1000 - pause / MS);
    assert_true(a->ttl_ms >= 1000 - pause / MS - 50);
    assert_int_equal(b->ttl_ms, 0);
    destroy_checked(&w);
}

static void test_request_held_beyond_two_heartbeats_is_aged_by_the_silence(void **state)
{
    static world w;
    world_init(&w, 14, true);
    quiet_until_t0(&w);
    /* 0 -> 1 held for 5 heartbeats; 1 -> 0 flows and 1's loop runs on time. */
    const uint64_t hold = 500 * MS;
    uint64_t t0 = mp_sim_now(w.sim);
    assert_int_equal(mp_sim_partition_oneway(w.sim, w.pids[0], w.pids[1], hold), 0);
    run_for(&w, 1 * MS);
    send_frame(&w, MP_FRAME_REQUEST, 1, 1000);
    send_frame(&w, MP_FRAME_REQUEST, 2, 300); /* less than the hold */
    run_for(&w, 800 * MS);
    assert_true(stats_0_of_1(&w).connected);
    const rx *a = find_rx(&w, 1), *b = find_rx(&w, 2);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a->at >= t0 + hold);
    uint64_t silent = (a->at - (t0 - 1 * MS) + MS - 1) / MS; /* since the last read */
    print_message("held %llu ms, read %llu ms after the last read: ttl 1000 seen as %u, "
                  "ttl 300 as %u\n", (unsigned long long)(hold / MS),
                  (unsigned long long)silent, a->ttl_ms, b->ttl_ms);
    /* Aged by the silence: at least the request's own wait on the way. */
    assert_true(a->ttl_ms <= 1000 - (a->at - w.sent_at[1]) / MS);
    assert_true(a->ttl_ms >= 1000 - silent);
    assert_int_equal(b->ttl_ms, 0);
    destroy_checked(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_dropped_queued_frames_are_never_written, destroy_left),
        cmocka_unit_test_teardown(test_queued_request_arrives_aged_by_its_wait, destroy_left),
        cmocka_unit_test_teardown(test_queued_request_expired_is_never_written, destroy_left),
        cmocka_unit_test_teardown(test_request_read_after_a_stall_is_aged_by_it, destroy_left),
        cmocka_unit_test_teardown(test_request_held_beyond_two_heartbeats_is_aged_by_the_silence, destroy_left),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
