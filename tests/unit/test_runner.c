/*
 * Tests of the seed runner (src/sim/runner.c) and the workload registry,
 * with tiny purpose-built workloads whose failures are known in advance:
 * one that fails on its third seed, one that is deliberately
 * nondeterministic (static state that survives between runs), one that never
 * reaches a required sometimes-assertion, one that never settles. Output is
 * captured with open_memstream and checked line by line, since the printed
 * lines (replay command, closing tally) are the runner's user interface.
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
#include "moonpool/sim.h"
#include "moonpool/sim_workload.h"
#include "workloads.h"


/* ---- capture -------------------------------------------------------------- */

typedef struct capture {
    char *buf;
    size_t len;
    FILE *f;
} capture;

static void cap_open(capture *c, mp_sim_run_opts *o)
{
    memset(c, 0, sizeof *c);
    c->f = open_memstream(&c->buf, &c->len);
    assert_non_null(c->f);
    o->out = c->f;
}

static const char *cap_text(capture *c)
{
    fclose(c->f);
    c->f = NULL;
    return c->buf;
}

static void cap_free(capture *c) { free(c->buf); }

/* The last non-empty line of a text. */
static const char *last_line(const char *text, char *buf, size_t cap)
{
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == '\n') n--;
    size_t start = n;
    while (start > 0 && text[start - 1] != '\n') start--;
    size_t len = n - start < cap - 1 ? n - start : cap - 1;
    memcpy(buf, text + start, len);
    buf[len] = '\0';
    return buf;
}

/* ---- tiny workloads ------------------------------------------------------- */

typedef struct tiny {
    int run;
    bool ticked;
} tiny;

static int g_setups;  /* setups so far (tests reset it) */
static int g_fail_run; /* fail the seed whose setup has this number */
static int g_static;   /* persists across runs: the nondeterminism */

static void tiny_tick(void *ud)
{
    tiny *t = ud;
    t->ticked = true;
    MP_SOMETIMES(true, "tcov.hit");
    MP_SOMETIMES(false, "tcov.never");
}

static int tiny_setup(mp_sim *sim, const mp_workload_params *p, void **state)
{
    tiny *t = calloc(1, sizeof *t);
    if (!t) return MP_ENOMEM;
    t->run = ++g_setups;
    *state = t;
    return mp_sim_schedule(sim, 100 * MP_SIM_NS_PER_MS, tiny_tick, t);
}

static bool tiny_quiescent(mp_sim *sim, void *state)
{
    return ((tiny *)state)->ticked;
}

static void tiny_check(mp_sim *sim, void *state)
{
    tiny *t = state;
    if (t->run == g_fail_run) mp_sim_fail(sim, "boom on run %d", t->run);
}

static void tiny_destroy(void *state) { free(state); }

static const mp_sim_workload w_fail3 = {
    .name = "t_fail3",
    .description = "fails on one chosen run",
    .chaos_ns = MP_SIM_NS_PER_S,
    .heal_ns = MP_SIM_NS_PER_S,
    .setup = tiny_setup,
    .quiescent = tiny_quiescent,
    .check = tiny_check,
    .destroy = tiny_destroy,
};

/* Schedules its events at times that depend on g_static, which the second
 * run of a seed sees changed. */
static void nd_noop(void *ud) {}

static int nd_setup(mp_sim *sim, const mp_workload_params *p, void **state)
{
    int rc = tiny_setup(sim, p, state);
    if (rc) return rc;
    for (int i = 0; i < 3; i++) {
        rc = mp_sim_schedule(sim, (uint64_t)(10 + i) * MP_SIM_NS_PER_MS, nd_noop, NULL);
        if (rc) return rc;
    }
    return mp_sim_schedule(sim, (uint64_t)(20 + g_static++) * MP_SIM_NS_PER_MS,
                           nd_noop, NULL);
}

static const mp_sim_workload w_nondet = {
    .name = "t_nondet",
    .chaos_ns = MP_SIM_NS_PER_S,
    .heal_ns = MP_SIM_NS_PER_S,
    .setup = nd_setup,
    .quiescent = tiny_quiescent,
    .destroy = tiny_destroy,
};

static const char *const tcov_prefixes[] = {"tcov.", NULL};

static const mp_sim_workload w_cov = {
    .name = "t_cov",
    .required_coverage = tcov_prefixes,
    .chaos_ns = MP_SIM_NS_PER_S,
    .heal_ns = MP_SIM_NS_PER_S,
    .setup = tiny_setup,
    .quiescent = tiny_quiescent,
    .destroy = tiny_destroy,
};

static bool never(mp_sim *sim, void *state) { return false; }

static const mp_sim_workload w_stuck = {
    .name = "t_stuck",
    .chaos_ns = MP_SIM_NS_PER_S,
    .heal_ns = 2 * MP_SIM_NS_PER_S,
    .setup = tiny_setup,
    .quiescent = never,
    .destroy = tiny_destroy,
};

static int bad_setup(mp_sim *sim, const mp_workload_params *p, void **state)
{
    return MP_EINVAL;
}

static const mp_sim_workload w_badsetup = {
    .name = "t_badsetup",
    .setup = bad_setup,
    .quiescent = never,
};

static void opts_for(mp_sim_run_opts *o, uint64_t first, uint64_t last)
{
    mp_sim_run_opts_init(o);
    o->seed_first = first;
    o->seed_last = last;
    o->argv0 = "mp";
}

/* ---- tests ---------------------------------------------------------------- */

static void test_opts_defaults(void **st)
{
    mp_sim_run_opts o;
    mp_sim_run_opts_init(&o);
    assert_true(o.swarm);
    assert_true(o.buggify);
    assert_true(o.faults);
    assert_false(o.check_determinism);
    assert_int_equal(o.seed_first, 1);
    assert_int_equal(o.seed_last, 1);
}

static void test_registry(void **st)
{
    mp_sim_workloads_register_builtin();
    mp_sim_workloads_register_builtin(); /* idempotent */
    assert_ptr_equal(mp_sim_workload_find("pingpong"), &mp_workload_pingpong);
    assert_null(mp_sim_workload_find("no-such"));
    assert_null(mp_sim_workload_find(NULL));
    assert_int_equal(mp_sim_workload_register(&mp_workload_pingpong), MP_EINVAL);
    assert_int_equal(mp_sim_workload_register(NULL), MP_EINVAL);
    static const mp_sim_workload nameless = {.setup = tiny_setup,
                                             .quiescent = tiny_quiescent};
    assert_int_equal(mp_sim_workload_register(&nameless), MP_EINVAL);
    static const mp_sim_workload nosetup = {.name = "t_nosetup",
                                            .quiescent = tiny_quiescent};
    assert_int_equal(mp_sim_workload_register(&nosetup), MP_EINVAL);
    assert_int_equal(mp_sim_workload_register(&w_fail3), 0);
    assert_ptr_equal(mp_sim_workload_find("t_fail3"), &w_fail3);
    int n = 0;
    bool saw = false;
    while (mp_sim_workload_at(n)) {
        if (mp_sim_workload_at(n) == &w_fail3) saw = true;
        n++;
    }
    assert_true(saw);
    assert_null(mp_sim_workload_at(-1));
}

static void test_fail_on_seed3(void **st)
{
    mp_sim_run_opts o;
    opts_for(&o, 1, 5);
    o.params.nodes = 4;
    o.swarm = false;
    o.chaos_ns = 1500 * MP_SIM_NS_PER_MS;
    capture c;
    cap_open(&c, &o);
    g_setups = 0;
    g_fail_run = 3;
    mp_sim_run_result r;
    int rc = mp_sim_run_seeds(&w_fail3, &o, &r);
    const char *text = cap_text(&c);
    assert_int_equal(rc, 1);
    assert_int_equal(r.passed, 4);
    assert_int_equal(r.failed, 1);
    assert_true(r.events > 0);
    assert_non_null(strstr(text, "seed 3: FAIL boom on run 3 (trace 0x"));
    assert_non_null(strstr(text, "  replay: mp sim --workload t_fail3 --seed 3 "
                                 "--nodes 4 --no-swarm --chaos 1.5\n"));
    assert_non_null(strstr(text, "  faults: "));
    assert_null(strstr(text, "seed 2:")); /* not verbose: passes are quiet */
    char line[128];
    assert_string_equal(last_line(text, line, sizeof line), "4 passed, 1 failed");
    cap_free(&c);
    g_fail_run = 0;
}

static double fake_now;

/* A fake wall clock: every reading is 0.5 s after the previous one. */
static double fake_clock(void) { return fake_now += 0.5; }

static void test_verbose_and_speed(void **st)
{
    mp_sim_run_opts o;
    opts_for(&o, 7, 8);
    o.wall_clock = fake_clock;
    o.verbose = 1;
    capture c;
    cap_open(&c, &o);
    int rc = mp_sim_run_seeds(&w_fail3, &o, NULL);
    const char *text = cap_text(&c);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(text, "seed 7: faults: "));
    assert_non_null(strstr(text, "seed 7: ok (trace 0x"));
    assert_non_null(strstr(text, "seed 8: ok (trace 0x"));
    const char *speed = strstr(text, "speed: ");
    assert_non_null(speed);
    assert_non_null(strstr(speed, " events in 0.50 s wall = "));
    assert_non_null(strstr(speed, "seeds/min\n2 passed, 0 failed\n"));
    cap_free(&c);
}

static void test_determinism_catches_static_state(void **st)
{
    mp_sim_run_opts o;
    opts_for(&o, 11, 12);
    o.check_determinism = true;
    capture c;
    cap_open(&c, &o);
    mp_sim_run_result r;
    int rc = mp_sim_run_seeds(&w_nondet, &o, &r);
    const char *text = cap_text(&c);
    assert_int_equal(rc, 1);
    assert_int_equal(r.failed, 2);
    const char *p = strstr(text, "seed 11: FAIL nondeterminism: first divergence at event ");
    assert_non_null(p);
    assert_non_null(strstr(p, " vs "));
    assert_non_null(strstr(text, "--check-determinism"));
    cap_free(&c);

    /* A deterministic workload passes the same check. */
    opts_for(&o, 11, 13);
    o.check_determinism = true;
    cap_open(&c, &o);
    g_fail_run = 0;
    rc = mp_sim_run_seeds(&w_fail3, &o, &r);
    text = cap_text(&c);
    assert_int_equal(rc, 0);
    assert_int_equal(r.passed, 3);
    cap_free(&c);
}

static void test_coverage_missing(void **st)
{
    mp_sim_run_opts o;
    opts_for(&o, 1, 3);
    capture c;
    cap_open(&c, &o);
    mp_sim_run_result r;
    int rc = mp_sim_run_seeds(&w_cov, &o, &r);
    const char *text = cap_text(&c);
    assert_int_equal(rc, 1);
    assert_int_equal(r.passed, 3);
    assert_int_equal(r.failed, 0);
    assert_int_equal(r.coverage_missing, 1);
    assert_non_null(strstr(text, "coverage: never hit: tcov.never ("));
    assert_null(strstr(text, "never hit: tcov.hit"));
    assert_non_null(strstr(text, "coverage: 1/2 required sites hit\n"));
    cap_free(&c);

    /* One seed (a replay) is not judged on coverage. */
    opts_for(&o, 2, 2);
    cap_open(&c, &o);
    rc = mp_sim_run_seeds(&w_cov, &o, &r);
    text = cap_text(&c);
    assert_int_equal(rc, 0);
    assert_null(strstr(text, "coverage:"));
    cap_free(&c);
}

static void test_liveness_and_setup_failures(void **st)
{
    mp_sim_run_opts o;
    opts_for(&o, 1, 1);
    char why[256];
    uint64_t h = 0, ev = 0;
    assert_int_equal(mp_sim_run_one(&w_stuck, &o, 1, false, &h, &ev, why, sizeof why), 1);
    assert_string_equal(why, "liveness: workload did not settle within 2 s after heal");
    assert_int_equal(mp_sim_run_one(&w_badsetup, &o, 1, false, &h, &ev, why, sizeof why), 1);
    assert_non_null(strstr(why, "setup failed"));
    /* No world may be left active after a failure. */
    assert_null(mp_sim_current());

    capture c;
    opts_for(&o, 5, 1); /* empty range */
    cap_open(&c, &o);
    assert_int_equal(mp_sim_run_seeds(&w_fail3, &o, NULL), 1);
    cap_free((cap_text(&c), &c));
}

static void test_pingpong_replays(void **st)
{
    mp_sim_run_opts o;
    opts_for(&o, 1, 1);
    o.chaos_ns = 3 * MP_SIM_NS_PER_S;
    char why[512];
    uint64_t h1 = 0, h2 = 0, e1 = 0, e2 = 0;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        int rc1 = mp_sim_run_one(&mp_workload_pingpong, &o, seed, false, &h1, &e1,
                                 why, sizeof why);
        if (rc1) fprintf(stderr, "pingpong seed %llu: %s\n", (unsigned long long)seed, why);
        assert_int_equal(rc1, 0);
        assert_int_equal(mp_sim_run_one(&mp_workload_pingpong, &o, seed, true, &h2,
                                        &e2, why, sizeof why),
                         0);
        assert_true(e1 > 100);
        assert_int_equal(e1, e2);
        assert_int_equal(h1, h2);
    }
    /* A topology the workload cannot run is a setup failure, not a crash. */
    o.params.nodes = 1;
    assert_int_equal(mp_sim_run_one(&mp_workload_pingpong, &o, 1, false, &h1, &e1,
                                    why, sizeof why),
                     1);
    assert_non_null(strstr(why, "setup failed"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opts_defaults),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_fail_on_seed3),
        cmocka_unit_test(test_verbose_and_speed),
        cmocka_unit_test(test_determinism_catches_static_state),
        cmocka_unit_test(test_coverage_missing),
        cmocka_unit_test(test_liveness_and_setup_failures),
        cmocka_unit_test(test_pingpong_replays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
