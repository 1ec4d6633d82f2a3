/*
 * Tests of the public simulation harness (moonpool/sim_cluster.h) through
 * the seed runner, with the test Counter actor: the spec is validated; a
 * fault-free run completes every call it issues and reads them all back
 * after the heal (which waits for the chaos phase's calls); tune_faults
 * reaches the world; a member killed by the workload and restarted at the
 * heal is read through mp_sim_cluster_call_until_ok; a failure reported
 * by the check fails the seed with its message; and two runs of a seed
 * agree event for event.
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

#include "counter_actor.h"
#include "moonpool/sim_cluster.h"

#define SEC 1000000000ull

/* What the workload saw, for the test to check after the run. */
static struct {
    int issued, ok, failed, reads_ok, heal_pending_nonzero, ticks;
    int64_t read_total;
    bool tuned_seen;
    uint64_t partition_rate_seen; /* x1000, as drawn for the seed */
    double clog_rate_in_world;    /* as the world uses it after tuning */
    int nomethod;                 /* final "nosuch" calls ended MP_ENOMETHOD */
    bool storage_seen, member0_down_seen;
} g;
/* What the workload does, set by each test. */
static bool g_kill, g_fail_check;

static int w_start(mp_sim_cluster *c, void **ud)
{
    g.clog_rate_in_world = mp_sim_get_faults(mp_sim_cluster_sim(c))->clog_rate;
    g.storage_seen = mp_sim_cluster_storage(c) != NULL;
    /* Bad input is refused at once, and nothing is left pending. */
    assert_int_equal(mp_sim_cluster_call(c, 2, "Counter", "k", "add", NULL, 0, NULL, NULL),
                     MP_EINVAL); /* two clients: 0 and 1 */
    assert_int_equal(mp_sim_cluster_call(c, -1, "Counter", "k", "add", NULL, 0, NULL, NULL),
                     MP_EINVAL);
    assert_int_equal(mp_sim_cluster_call(c, 0, NULL, "k", "add", NULL, 0, NULL, NULL),
                     MP_EINVAL);
    assert_int_equal(mp_sim_cluster_call(c, 0, "Counter", "", "add", NULL, 0, NULL, NULL),
                     MP_EINVAL);
    assert_int_equal(mp_sim_cluster_call(c, 0, "Counter", "k", "add", NULL, 4, NULL, NULL),
                     MP_EINVAL); /* a length without a payload */
    assert_int_equal(mp_sim_cluster_call_until_ok(c, 0, "Count er", "k", "get", NULL, 0,
                                                  NULL, NULL),
                     MP_EINVAL); /* mp_ref_get refuses it: retrying cannot help */
    assert_int_equal(mp_sim_cluster_pending(c), 0);
    assert_true(mp_sim_cluster_in_chaos(c));
    *ud = &g;
    return 0;
}

static void added(mp_sim_cluster *c, void *ud, int status, const void *d, size_t n)
{
    (void)c, (void)ud, (void)d, (void)n;
    if (status == 0) g.ok++;
    else g.failed++;
}

static void w_tick(mp_sim_cluster *c, int client, void *ud)
{
    (void)ud;
    g.ticks++;
    assert_true(mp_sim_cluster_in_chaos(c));
    if (g_kill && g.ticks == 10) {
        assert_non_null(mp_sim_cluster_member(c, 0));
        assert_int_equal(mp_sim_cluster_kill(c, 0), 0);
        g.member0_down_seen = mp_sim_cluster_member(c, 0) == NULL;
    }
    char key[8];
    snprintf(key, sizeof key, "k%d", (int)mp_sim_cluster_random_below(c, 4));
    if (mp_sim_cluster_call(c, client, "Counter", key, "add", NULL, 0, added, NULL) == 0)
        g.issued++;
}

static void read_back(mp_sim_cluster *c, void *ud, int status, const void *d, size_t n)
{
    (void)c, (void)ud;
    if (status != 0 || n != sizeof(int64_t)) return;
    int64_t v;
    memcpy(&v, d, sizeof v);
    g.read_total += v;
    g.reads_ok++;
}

static void no_method(mp_sim_cluster *c, void *ud, int status, const void *d, size_t n)
{
    (void)c, (void)ud, (void)d, (void)n;
    if (status == MP_ENOMETHOD) g.nomethod++;
}

static void w_heal(mp_sim_cluster *c, void *ud)
{
    (void)ud;
    assert_false(mp_sim_cluster_in_chaos(c));
    if (mp_sim_cluster_pending(c) != 0) g.heal_pending_nonzero++;
    /* An outcome a retry cannot change ends the call, once. */
    assert_int_equal(mp_sim_cluster_call_until_ok(c, 1, "Counter", "k0", "nosuch", NULL, 0,
                                                  no_method, NULL), 0);
    if (g_kill) mp_sim_cluster_restart(c, 0, 0);
    for (int k = 0; k < 4; k++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", k);
        assert_int_equal(mp_sim_cluster_call_until_ok(c, 0, "Counter", key, "get", NULL, 0,
                                                      read_back, NULL), 0);
    }
}

static void w_check(mp_sim_cluster *c, void *ud)
{
    (void)ud;
    if (g_fail_check) mp_sim_cluster_fail(c, "check says no (%d ops)", g.issued);
}

static void w_tune(mp_sim_cluster *c, mp_sim_faults *f)
{
    (void)c;
    g.tuned_seen = true;
    g.partition_rate_seen = (uint64_t)(f->partition_rate * 1000);
    f->clog_rate = 0.125; /* a mark the world must carry */
}

static const mp_actor_type *const types[] = {&counter_type, NULL};

static mp_sim_cluster_spec base_spec(void)
{
    mp_sim_cluster_spec s = {.name = "t", .members = 3, .clients = 2, .types = types,
                             .chaos_ns = 2 * SEC, .heal_ns = 20 * SEC, .start = w_start,
                             .tick = w_tick, .heal = w_heal, .check = w_check,
                             .tune_faults = w_tune};
    return s;
}

static int run_seed(const mp_sim_cluster_spec *spec, uint64_t seed, bool faults,
                    uint64_t *hash, char *why, size_t cap)
{
    mp_sim_workload w;
    assert_int_equal(mp_sim_cluster_workload(spec, &w), 0);
    mp_sim_run_opts o;
    mp_sim_run_opts_init(&o);
    o.faults = faults;
    uint64_t events = 0;
    memset(&g, 0, sizeof g);
    return mp_sim_run_one(&w, &o, seed, false, hash, &events, why, cap);
}

static void test_spec_is_validated(void **state)
{
    (void)state;
    mp_sim_workload w;
    mp_sim_cluster_spec s = base_spec();
    assert_int_equal(mp_sim_cluster_workload(NULL, &w), MP_EINVAL);
    s.members = 0;
    assert_int_equal(mp_sim_cluster_workload(&s, &w), MP_EINVAL);
    s = base_spec();
    s.clients = MP_SIM_CLUSTER_MAX_CLIENTS + 1;
    assert_int_equal(mp_sim_cluster_workload(&s, &w), MP_EINVAL);
    s = base_spec();
    s.tick = NULL;
    assert_int_equal(mp_sim_cluster_workload(&s, &w), MP_EINVAL);
    s = base_spec();
    s.types = NULL;
    assert_int_equal(mp_sim_cluster_workload(&s, &w), MP_EINVAL);
}

/* Without faults every add succeeds, and the reads after the heal see them
 * all: the heal waited for the chaos phase's calls. */
static void test_fault_free_run_reads_every_add(void **state)
{
    (void)state;
    mp_sim_cluster_spec s = base_spec();
    char why[256];
    uint64_t h;
    g_kill = g_fail_check = false;
    assert_int_equal(run_seed(&s, 5, false, &h, why, sizeof why), 0);
    assert_true(g.issued > 100);
    assert_int_equal(g.ok, g.issued);
    assert_int_equal(g.failed, 0);
    assert_int_equal(g.reads_ok, 4);
    assert_int_equal(g.read_total, g.issued);
    assert_int_equal(g.heal_pending_nonzero, 0);
    assert_int_equal(g.nomethod, 1);
    assert_false(g.storage_seen);
    assert_true(g.tuned_seen);
    assert_int_equal(g.partition_rate_seen, 0); /* --no-faults: all zero */
    assert_true(g.clog_rate_in_world == 0.125);
}

/* Member 0 killed by the workload: calls fail or succeed elsewhere, and the
 * final reads retry until it is back (the Counter is in memory only, so the
 * total may be lower than the adds that succeeded, never higher). */
static void test_killed_member_is_read_after_restart(void **state)
{
    (void)state;
    mp_sim_cluster_spec s = base_spec();
    char why[256];
    uint64_t h;
    g_kill = true;
    g_fail_check = false;
    assert_int_equal(run_seed(&s, 6, false, &h, why, sizeof why), 0);
    assert_int_equal(g.reads_ok, 4);
    assert_true(g.read_total <= g.ok);
    assert_int_equal(g.ok + g.failed, g.issued);
    assert_true(g.failed > 0); /* calls met the dead member */
    assert_true(g.member0_down_seen);
    g_kill = false;
}

static void test_check_failure_fails_the_seed(void **state)
{
    (void)state;
    mp_sim_cluster_spec s = base_spec();
    char why[256];
    uint64_t h;
    g_fail_check = true;
    assert_int_equal(run_seed(&s, 7, true, &h, why, sizeof why), 1);
    assert_non_null(strstr(why, "check says no"));
    g_fail_check = false;
}

static void test_seed_replays_exactly(void **state)
{
    (void)state;
    mp_sim_cluster_spec s = base_spec();
    s.kill_members = true;
    s.storage = true;
    char why[256];
    uint64_t h1, h2, h3;
    assert_int_equal(run_seed(&s, 11, true, &h1, why, sizeof why), 0);
    assert_true(g.storage_seen);
    int issued = g.issued;
    assert_int_equal(run_seed(&s, 11, true, &h2, why, sizeof why), 0);
    assert_int_equal(g.issued, issued);
    assert_true(h1 == h2);
    assert_int_equal(run_seed(&s, 12, true, &h3, why, sizeof why), 0);
    assert_true(h3 != h1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_is_validated),
        cmocka_unit_test(test_fault_free_run_reads_every_add),
        cmocka_unit_test(test_killed_member_is_read_after_restart),
        cmocka_unit_test(test_check_failure_fails_the_seed),
        cmocka_unit_test(test_seed_replays_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
