/*
 * Unit tests: the outstanding-calls table (src/actor/calls.c).
 *
 * Runs on a simulated env (one process in a world) so that time is exact:
 * timeouts must fire at their deadline, never before, and within 10% after
 * (S7), replies must complete calls exactly once, late replies must be
 * counted and dropped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "actor/calls.h"
#include "moonpool/sim.h"

#define MS 1000000ull

typedef struct world {
    mp_sim *sim;
    mp_env *env;
} world;

static int boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    *state = env;
    return 0;
}
static void teardown_proc(void *state) {}
static const mp_sim_process_ops ops = {boot, teardown_proc, NULL};

static int setup(void **state)
{
    static world w;
    mp_sim_config cfg;
    mp_sim_config_init(&cfg);
    cfg.seed = 7;
    w.sim = mp_sim_create(&cfg);
    assert_non_null(w.sim);
    int pid = mp_sim_spawn(w.sim, "10.0.0.1:1", &ops, NULL);
    assert_true(pid >= 0);
    mp_sim_run_until(w.sim, mp_sim_now(w.sim) + 1);
    w.env = mp_sim_process_env(w.sim, pid);
    assert_non_null(w.env);
    *state = &w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    mp_sim_destroy(w->sim);
    return 0;
}

typedef struct outcome {
    int calls;
    int status;
    uint64_t at;
    char data[32];
    size_t len;
    mp_env *env;
} outcome;

static void record(void *ud, int status, const void *data, size_t len)
{
    outcome *o = ud;
    o->calls++;
    o->status = status;
    o->at = mp_env_now(o->env);
    o->len = len < sizeof o->data ? len : sizeof o->data;
    memcpy(o->data, data, o->len);
}

static void test_reply_completes_once(void **state)
{
    world *w = *state;
    mp_calls c;
    assert_int_equal(mp_calls_init(&c, w->env, 0), MP_OK);
    outcome o = {.env = w->env};
    uint64_t id1, id2;
    assert_int_equal(mp_calls_add(&c, 100 * MS, record, &o, &id1), MP_OK);
    assert_int_equal(mp_calls_add(&c, 100 * MS, record, &o, &id2), MP_OK);
    assert_true(id1 != id2 && id1 != 0 && id2 != 0);
    assert_int_equal(mp_calls_pending(&c), 2);
    assert_int_equal(o.calls, 0); /* never inside add */
    assert_int_equal(mp_calls_complete(&c, id1, 0, "hi", 2), MP_OK);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, 0);
    assert_memory_equal(o.data, "hi", 2);
    /* a second reply for the same id is late */
    assert_int_equal(mp_calls_complete(&c, id1, 0, "x", 1), MP_ENOTFOUND);
    assert_int_equal(o.calls, 1);
    assert_int_equal(c.late, 1);
    /* unknown id */
    assert_int_equal(mp_calls_complete(&c, 999, 0, NULL, 0), MP_ENOTFOUND);
    assert_int_equal(c.late, 2);
    /* the timer fires for id2 only, once */
    mp_sim_run_until(w->sim, mp_sim_now(w->sim) + 200 * MS);
    assert_int_equal(o.calls, 2);
    assert_int_equal(o.status, MP_ETIMEDOUT);
    assert_int_equal(c.timeouts, 1);
    assert_int_equal(mp_calls_pending(&c), 0);
    /* a reply after the timeout is late */
    assert_int_equal(mp_calls_complete(&c, id2, 0, NULL, 0), MP_ENOTFOUND);
    assert_int_equal(o.calls, 2);
    assert_int_equal(c.late, 3);
    mp_calls_free(&c, false, 0);
}

/* Timed calls: one in MP_CALLS_TIMED_EVERY records its latency, by reply
 * or by timeout; untimed ones (system requests) never do. */
static void test_latency_sampled(void **state)
{
    world *w = *state;
    mp_calls c;
    assert_int_equal(mp_calls_init(&c, w->env, 0), MP_OK);
    mp_hist h;
    mp_hist_init(&h);
    c.latency = &h;
    outcome o = {.env = w->env};
    uint64_t ids[32];
    uint64_t t0 = mp_env_now(w->env);
    for (int i = 0; i < 32; i++)
        assert_int_equal(mp_calls_add_timed(&c, t0, t0 + 100 * MS, record, &o, &ids[i]), MP_OK);
    uint64_t untimed;
    assert_int_equal(mp_calls_add(&c, 100 * MS, record, &o, &untimed), MP_OK);
    mp_sim_run_until(w->sim, t0 + 5 * MS);
    for (int i = 0; i < 16; i++) assert_int_equal(mp_calls_complete(&c, ids[i], 0, NULL, 0), MP_OK);
    assert_int_equal(mp_calls_complete(&c, untimed, 0, NULL, 0), MP_OK);
    assert_int_equal(h.count, 16 / MP_CALLS_TIMED_EVERY);
    assert_true(h.min_ns >= 5 * MS && h.max_ns < 6 * MS);
    mp_sim_run_until(w->sim, t0 + 200 * MS); /* the other 16 time out */
    assert_int_equal(o.calls, 33);
    assert_int_equal(h.count, 32 / MP_CALLS_TIMED_EVERY);
    assert_true(h.max_ns >= 100 * MS);
    mp_calls_free(&c, false, 0);
}

static void test_timeouts_on_time(void **state)
{
    world *w = *state;
    mp_calls c;
    assert_int_equal(mp_calls_init(&c, w->env, 0), MP_OK);
    /* Deadlines out of order, some completed early: each timeout fires at
     * its deadline (never before, within 10% after), and the earliest
     * re-arms the single timer. */
    enum { N = 8 };
    static const uint64_t tmo[N] = {500, 100, 300, 50, 1000, 100, 20, 700};
    outcome o[N];
    uint64_t ids[N];
    uint64_t t0 = mp_sim_now(w->sim);
    for (int i = 0; i < N; i++) {
        memset(&o[i], 0, sizeof o[i]);
        o[i].env = w->env;
        assert_int_equal(mp_calls_add(&c, tmo[i] * MS, record, &o[i], &ids[i]),
                         MP_OK);
    }
    assert_int_equal(mp_calls_complete(&c, ids[3], 0, NULL, 0), MP_OK); /* 50 */
    assert_int_equal(mp_calls_complete(&c, ids[4], 0, NULL, 0), MP_OK); /* 1000 */
    mp_sim_run_until(w->sim, t0 + 2000 * MS);
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].calls, 1);
        if (i == 3 || i == 4) {
            assert_int_equal(o[i].status, 0);
            continue;
        }
        assert_int_equal(o[i].status, MP_ETIMEDOUT);
        uint64_t took = o[i].at - t0;
        assert_true(took >= tmo[i] * MS);
        assert_true(took <= tmo[i] * MS + tmo[i] * MS / 10);
    }
    assert_int_equal(c.timeouts, 6);
    mp_calls_free(&c, false, 0);
}

static void test_limit_and_cancel(void **state)
{
    world *w = *state;
    mp_calls c;
    assert_int_equal(mp_calls_init(&c, w->env, 2), MP_OK);
    outcome o = {.env = w->env};
    uint64_t a, b, d;
    assert_int_equal(mp_calls_add(&c, 10 * MS, record, &o, &a), MP_OK);
    assert_int_equal(mp_calls_add(&c, 10 * MS, record, &o, &b), MP_OK);
    assert_int_equal(mp_calls_add(&c, 10 * MS, record, &o, &d), MP_EQUEUEFULL);
    assert_true(mp_calls_cancel(&c, a));
    assert_false(mp_calls_cancel(&c, a));
    assert_int_equal(mp_calls_add(&c, 10 * MS, record, &o, &d), MP_OK);
    mp_sim_run_until(w->sim, mp_sim_now(w->sim) + 20 * MS);
    assert_int_equal(o.calls, 2); /* b and d time out, a never runs */
    mp_calls_free(&c, false, 0);
}

static void test_free_runs_or_drops(void **state)
{
    world *w = *state;
    mp_calls c;
    outcome o = {.env = w->env};
    uint64_t id;
    assert_int_equal(mp_calls_init(&c, w->env, 0), MP_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(mp_calls_add(&c, 10 * MS, record, &o, &id), MP_OK);
    mp_calls_free(&c, true, MP_ECLOSED);
    assert_int_equal(o.calls, 3);
    assert_int_equal(o.status, MP_ECLOSED);

    o.calls = 0;
    assert_int_equal(mp_calls_init(&c, w->env, 0), MP_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(mp_calls_add(&c, 10 * MS, record, &o, &id), MP_OK);
    mp_calls_free(&c, false, 0);
    mp_sim_run_until(w->sim, mp_sim_now(w->sim) + 20 * MS);
    assert_int_equal(o.calls, 0); /* dropped, and the timer was cancelled */
}

/* Many calls with random deadlines and random early completions: every call
 * completes exactly once. */
static void test_many_exactly_once(void **state)
{
    world *w = *state;
    mp_calls c;
    assert_int_equal(mp_calls_init(&c, w->env, 0), MP_OK);
    enum { N = 2000 };
    static outcome o[N];
    static uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        memset(&o[i], 0, sizeof o[i]);
        o[i].env = w->env;
        uint64_t t = (mp_sim_random_below(w->sim, 1000) + 1) * MS;
        assert_int_equal(mp_calls_add(&c, t, record, &o[i], &ids[i]), MP_OK);
    }
    for (int i = 0; i < N; i += 3) mp_calls_complete(&c, ids[i], 0, NULL, 0);
    mp_sim_run_until(w->sim, mp_sim_now(w->sim) + 500 * MS);
    for (int i = 1; i < N; i += 3) mp_calls_complete(&c, ids[i], 0, NULL, 0);
    mp_sim_run_until(w->sim, mp_sim_now(w->sim) + 1000 * MS);
    for (int i = 0; i < N; i++) assert_int_equal(o[i].calls, 1);
    assert_int_equal(c.timeouts + c.completed, N);
    assert_int_equal(mp_calls_pending(&c), 0);
    assert_true(mp_heap_check(&c.heap));
    mp_calls_free(&c, false, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_completes_once),
        cmocka_unit_test(test_latency_sampled),
        cmocka_unit_test(test_timeouts_on_time),
        cmocka_unit_test(test_limit_and_cancel),
        cmocka_unit_test(test_free_runs_or_drops),
        cmocka_unit_test(test_many_exactly_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
