/*
 * Unit tests: request-id windows (src/actor/rid_window.c) and the calls
 * table's low mark that feeds them (mp_calls_low, src/actor/calls.c).
 *
 * Claims: a sequence runs at most once while it is inside the window,
 * whatever the order copies arrive in; a sequence below the origin's low
 * mark, or left behind by a slide, is stale and never runs; the memory is
 * the struct, whatever the number of sequences; the low mark is the
 * smallest outstanding id. A reference model (a plain set of every
 * sequence ever admitted) checks random schedules.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "actor/calls.h"
#include "actor/rid_window.h"
#include "moonpool/sim.h"
#include "util/prng.h"

static mp_rid_window win;

static void test_a_copy_that_ran_is_a_duplicate(void **state)
{
    mp_rid_window_init(&win);
    assert_int_equal(mp_rid_window_admit(&win, 5, 1), MP_RID_RUN);
    assert_int_equal(mp_rid_window_admit(&win, 3, 1), MP_RID_RUN); /* out of order */
    assert_int_equal(mp_rid_window_admit(&win, 5, 1), MP_RID_DUPLICATE);
    assert_int_equal(mp_rid_window_admit(&win, 3, 2), MP_RID_DUPLICATE);
    assert_int_equal(mp_rid_window_admit(&win, 4, 2), MP_RID_RUN);
}

static void test_below_the_low_mark_is_stale(void **state)
{
    mp_rid_window_init(&win);
    assert_int_equal(mp_rid_window_admit(&win, 10, 10), MP_RID_RUN);
    /* The origin says every call below 12 has ended. */
    assert_int_equal(mp_rid_window_admit(&win, 12, 12), MP_RID_RUN);
    assert_int_equal(mp_rid_window_admit(&win, 10, 12), MP_RID_STALE);
    assert_int_equal(mp_rid_window_admit(&win, 11, 12), MP_RID_STALE);
    /* An older frame with a lower mark does not lower it. */
    assert_int_equal(mp_rid_window_admit(&win, 11, 1), MP_RID_STALE);
}

static void test_a_far_sequence_slides_the_window(void **state)
{
    mp_rid_window_init(&win);
    assert_int_equal(mp_rid_window_admit(&win, 1, 1), MP_RID_RUN);
    assert_int_equal(mp_rid_window_admit(&win, 2, 1), MP_RID_RUN);
    uint64_t far = 2 + MP_RID_WINDOW;
    assert_int_equal(mp_rid_window_admit(&win, far, 1), MP_RID_RUN);
    assert_int_equal(win.slides, 1);
    assert_int_equal(mp_rid_window_admit(&win, 2, 1), MP_RID_STALE); /* left behind */
    assert_int_equal(mp_rid_window_admit(&win, far, 1), MP_RID_DUPLICATE);
    assert_int_equal(mp_rid_window_admit(&win, 3, 1), MP_RID_RUN); /* still inside */
    assert_int_equal(mp_rid_window_admit(&win, 3, 1), MP_RID_DUPLICATE);
    /* A jump of many windows clears every bit: nothing stale runs twice
     * and the sequences above the new base start fresh. */
    uint64_t jump = far + 5ull * MP_RID_WINDOW;
    assert_int_equal(mp_rid_window_admit(&win, jump, jump - 3), MP_RID_RUN);
    assert_int_equal(mp_rid_window_admit(&win, jump - 1, 1), MP_RID_RUN);
    assert_int_equal(mp_rid_window_admit(&win, far, 1), MP_RID_STALE);
}

/* Random schedules against a model: the set of every sequence admitted.
 * A sequence may be admitted (RUN) only if it never ran before; once it
 * ran, every later copy is DUPLICATE or STALE; and a sequence below the
 * largest low mark given is STALE. */
static void test_random_copies_never_run_twice(void **state)
{
    enum { SPAN = 3 * MP_RID_WINDOW, OPS = 400000 };
    uint8_t *ran = calloc(SPAN + 1, 1);
    assert_non_null(ran);
    for (uint64_t seed = 1; seed <= 8; seed++) {
        mp_prng rng;
        mp_prng_seed(&rng, seed);
        memset(ran, 0, SPAN + 1);
        mp_rid_window_init(&win);
        uint64_t low = 1, head = 1, stale = 0, dup = 0;
        for (int i = 0; i < OPS; i++) {
            /* Mostly new sequences near the head, some old copies, a
             * slowly rising low mark (the origin's oldest call ending). */
            if (head < SPAN && mp_prng_chance(&rng, 0.6)) head++;
            uint64_t back = mp_prng_chance(&rng, 0.9) ? mp_prng_below(&rng, 64)
                                                      : mp_prng_below(&rng, MP_RID_WINDOW + 100);
            uint64_t seq = head > back ? head - back : 1;
            if (mp_prng_chance(&rng, 0.01) && low < head) low += mp_prng_below(&rng, head - low);
            mp_rid_verdict v = mp_rid_window_admit(&win, seq, low);
            if (v == MP_RID_RUN) {
                if (ran[seq]) fail_msg("seed %llu: sequence %llu ran twice",
                                       (unsigned long long)seed, (unsigned long long)seq);
                if (seq < low) fail_msg("seq %llu below the low mark %llu ran",
                                        (unsigned long long)seq, (unsigned long long)low);
                ran[seq] = 1;
            } else if (v == MP_RID_DUPLICATE) {
                assert_true(ran[seq]); /* never a false duplicate */
                dup++;
            } else {
                stale++;
            }
        }
        assert_true(dup > 0 && stale > 0); /* both paths were taken */
    }
    free(ran);
}

/* ---- mp_calls_low ---- */

static int boot(mp_env *env, void *arg, uint32_t inc, void **st)
{
    *st = env;
    return 0;
}
static void teardown_proc(void *st) {}
static const mp_sim_process_ops ops = {boot, teardown_proc, NULL};

static void noop(void *ud, int status, const void *data, size_t len) {}

static void test_low_mark_is_the_oldest_outstanding_call(void **state)
{
    mp_sim_config cfg;
    mp_sim_config_init(&cfg);
    cfg.seed = 3;
    mp_sim *sim = mp_sim_create(&cfg);
    assert_non_null(sim);
    int pid = mp_sim_spawn(sim, "10.0.0.1:1", &ops, NULL);
    mp_sim_run_until(sim, mp_sim_now(sim) + 1);
    mp_env *env = mp_sim_process_env(sim, pid);
    mp_calls c;
    assert_int_equal(mp_calls_init(&c, env, 0), 0);
    mp_calls_set_base(&c, 1000);
    assert_true(mp_calls_low(&c) == 1001); /* nothing out: the next id */
    uint64_t id[300];
    for (int i = 0; i < 300; i++)
        assert_int_equal(mp_calls_add(&c, 1000000000ull, noop, NULL, &id[i]), 0);
    assert_true(mp_calls_low(&c) == id[0]);
    /* Completing out of order: the mark waits for the oldest. */
    assert_int_equal(mp_calls_complete(&c, id[5], 0, NULL, 0), 0);
    assert_true(mp_calls_low(&c) == id[0]);
    assert_true(mp_calls_cancel(&c, id[0]));
    assert_true(mp_calls_low(&c) == id[1]);
    for (int i = 1; i < 299; i++)
        if (i != 5) assert_int_equal(mp_calls_complete(&c, id[i], 0, NULL, 0), 0);
    assert_true(mp_calls_low(&c) == id[299]);
    assert_int_equal(mp_calls_complete(&c, id[299], 0, NULL, 0), 0);
    assert_true(mp_calls_low(&c) == c.next_corr);
    mp_calls_free(&c, false, 0);
    mp_sim_destroy(sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_copy_that_ran_is_a_duplicate),
        cmocka_unit_test(test_below_the_low_mark_is_stale),
        cmocka_unit_test(test_a_far_sequence_slides_the_window),
        cmocka_unit_test(test_random_copies_never_run_twice),
        cmocka_unit_test(test_low_mark_is_the_oldest_outstanding_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
