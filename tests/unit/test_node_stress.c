/*
 * Hostile runs of a 3-node cluster (simulator), a fixed set of seeds each:
 * buggify, connection resets, a node killed and restarted while idle
 * collection races with traffic. Every call completes exactly once and no
 * id ever has two live activations; the same seed gives the same trace.
 *
 * Environment knobs (none needed for CI):
 *   MP_NODE_SWEEP=N      N more kill/restart seeds (from 1000)
 *   MP_NODE_SEED=S       replay one kill/restart seed only
 *   MP_NODE_BSEED=S      replay one buggify seed only
 *   MP_NODE_VERBOSE=1    per-seed summary and failed calls
 *   MP_NODE_DEBUG=1      the nodes' routing trace (debug log level)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counter_actor.h"
#include "moonpool/node.h"
#include "moonpool/sim.h"
#include "sim_cluster.h"

#define MS 1000000ull
#define SEC 1000000000ull

enum { STRESS_CALLS = 400, STRESS_KEYS = 24 };

typedef struct stress {
    sc_cluster *c;
    sc_reply o[STRESS_CALLS];
    int issued;
    int dup_seen;
    int kill; /* node killed and restarted during the run, or -1 */
    char what[STRESS_CALLS][64];
} stress;

static void stress_kill(void *ud)
{
    stress *s = ud;
    assert_int_equal(mp_sim_kill(sc_sim(s->c), sc_pid(s->c, s->kill)), MP_OK);
    assert_int_equal(mp_sim_restart(sc_sim(s->c), sc_pid(s->c, s->kill), 500 * MS), MP_OK);
}

static void stress_issue(void *ud)
{
    stress *s = ud;
    sc_cluster *c = s->c;
    int i = s->issued++;
    /* calls come from nodes that stay up: a killed node's callers die */
    int from = (int)mp_sim_random_below(sc_sim(c), (uint64_t)(s->kill >= 0 ? sc_members(c) - 1 : sc_members(c)));
    char key[16], other[16];
    snprintf(key, sizeof key, "s%d", (int)mp_sim_random_below(sc_sim(c), STRESS_KEYS));
    snprintf(other, sizeof other, "s%d", (int)mp_sim_random_below(sc_sim(c), STRESS_KEYS));
    const char *type = mp_sim_random_below(sc_sim(c), 2) ? "Counter" : "Local";
    uint64_t r = mp_sim_random_below(sc_sim(c), 100);
    const char *method = r < 60 ? "add" : r < 80 ? "later" : r < 95 ? "callother" : "deact";
    /* callother only targets Counter ids: keep Local ids "Local"-only */
    const void *p = NULL;
    size_t len = 0;
    if (strcmp(method, "callother") == 0) {
        type = "Counter";
        if (strcmp(key, other) == 0) method = "add"; /* never call itself */
        p = other;
        len = strlen(other);
    }
    snprintf(s->what[i], sizeof s->what[i], "%d->%s/%s.%s(%s) t=%.3f", from, type,
             key, method, p ? other : "", (double)mp_sim_now(sc_sim(c)) / 1e9);
    int rc = sc_call(c, from, type, key, method, p, len, 10 * SEC, &s->o[i]);
    assert_int_equal(rc, MP_OK);
    if (s->issued < STRESS_CALLS)
        mp_sim_schedule(sc_sim(c), mp_sim_random_below(sc_sim(c), 10 * MS), stress_issue, s);
}

static void stress_check(void *ud)
{
    stress *s = ud;
    int dups;
    sc_live_activations(s->c, &dups);
    if (dups) s->dup_seen++;
    if (mp_sim_now(sc_sim(s->c)) < 60 * SEC)
        mp_sim_schedule(sc_sim(s->c), 1 * MS, stress_check, s);
}

static uint64_t run_stress(uint64_t seed, bool buggify, double reset_rate,
                           bool expect_all_ok, int kill)
{
    static stress s;
    memset(&s, 0, sizeof s);
    s.kill = kill;
    sc_options opt;
    counter_options(&opt, 3, seed);
    opt.sim.faults.buggify = buggify;
    opt.sim.faults.reset_rate = reset_rate;
    opt.idle_timeout_ns = 300 * MS; /* idle collection races with traffic */
    sc_cluster *c = counter_cluster_new(&opt);
    s.c = c;
    mp_sim_schedule(sc_sim(c), 0, stress_issue, &s);
    mp_sim_schedule(sc_sim(c), 0, stress_check, &s);
    if (kill >= 0) mp_sim_schedule(sc_sim(c), 1500 * MS, stress_kill, &s);
    mp_sim_run_until(sc_sim(c), mp_sim_now(sc_sim(c)) + 30 * SEC);
    int ok = 0, timeouts = 0;
    for (int i = 0; i < STRESS_CALLS; i++) {
        if (s.o[i].calls != 1)
            fail_msg("seed %llu: call %d completed %d times",
                     (unsigned long long)seed, i, s.o[i].calls);
        if (s.o[i].status != 0 && getenv("MP_NODE_VERBOSE"))
            print_message("  call %d %s: %s %s at %.3f\n", i, s.what[i],
                          mp_status_name(s.o[i].status), s.o[i].text,
                          (double)s.o[i].at / 1e9);
        if (s.o[i].status == 0) ok++;
        /* The outcomes a fault-free run may still see under buggify, both
         * rare: a request written to a connection that buggify then broke
         * ends by its timeout (peers.c: after a break the peer is redialed,
         * not declared lost), "may have run"; and a redial whose handshake
         * buggify drops at its end (transport.c) makes the peer look
         * unreachable, so what waited unsent fails MP_EUNAVAIL, "not
         * executed" (seed 106, once the buggify sites of the membership
         * work moved the schedules); and a forward that buggify takes for
         * one past the limit (send.c) fails MP_EFORWARDS, "not executed"
         * (seed 100, once an include moved the lines of calls.c's buggify
         * site and so its draw). */
        else if (expect_all_ok && (s.o[i].status == MP_ETIMEDOUT ||
                                   s.o[i].status == MP_EFORWARDS ||
                                   (s.o[i].status == MP_EUNAVAIL &&
                                    strstr(s.o[i].text, "was not sent"))))
            timeouts++;
        else if (expect_all_ok)
            fail_msg("seed %llu: call %d failed: %s (%s)", (unsigned long long)seed,
                     i, mp_status_name(s.o[i].status), s.o[i].text);
    }
    assert_true(ok > STRESS_CALLS / 2);
    if (timeouts > STRESS_CALLS / 100)
        fail_msg("seed %llu: %d calls timed out or were not sent", (unsigned long long)seed, timeouts);
    if (getenv("MP_NODE_VERBOSE")) {
        mp_sim_stats ss;
        mp_sim_get_stats(sc_sim(c), &ss);
        uint64_t fw = 0, tot = 0, late = 0;
        for (int i = 0; i < sc_members(c); i++) {
            mp_node_stats st;
            if (!sc_node(c, i)) continue;
            mp_node_get_stats(sc_node(c, i), &st);
            fw += st.forwards;
            tot += st.activations_total;
            late += st.replies_late;
        }
        print_message("kill %d seed %llu: ok %d/%d buggify %llu resets %llu forwards %llu "
                      "created %llu hooks %d deact %d late %llu\n",
                      kill, (unsigned long long)seed, ok, STRESS_CALLS,
                      (unsigned long long)ss.buggify_fired,
                      (unsigned long long)ss.resets, (unsigned long long)fw,
                      (unsigned long long)tot, g_activations, g_deactivations,
                      (unsigned long long)late);
    }
    if (s.dup_seen)
        fail_msg("seed %llu: two live activations of one id seen %d times",
                 (unsigned long long)seed, s.dup_seen);
    uint64_t hash = mp_sim_trace_hash(sc_sim(c));
    counter_cluster_free(c);
    return hash;
}

/* Same seed, same run: the whole cluster's trace hash matches. */
static void test_same_seed_gives_the_same_trace(void **state)
{
    if (getenv("MP_NODE_SEED")) skip();
    uint64_t a = run_stress(77, true, 0.5, false, 2);
    uint64_t b = run_stress(77, true, 0.5, false, 2);
    uint64_t c = run_stress(78, true, 0.5, false, 2);
    assert_true(a == b);
    assert_true(a != c);
}

static void test_buggify_runs_complete_every_call_once(void **state)
{
    if (getenv("MP_NODE_SEED")) skip(); /* replaying one kill seed */
    const char *one = getenv("MP_NODE_BSEED");
    if (one) {
        run_stress(strtoull(one, NULL, 10), true, 0, true, -1);
        return;
    }
    for (uint64_t seed = 100; seed < 112; seed++) run_stress(seed, true, 0, true, -1);
}

static void test_connection_resets_complete_every_call_once(void **state)
{
    if (getenv("MP_NODE_SEED")) skip();
    for (uint64_t seed = 200; seed < 206; seed++) run_stress(seed, true, 0.5, false, -1);
}

/* A node is killed (its activations and directory partition vanish) and
 * restarts: calls keep completing, never two live activations. */
static void test_kill_restart_never_duplicates_an_activation(void **state)
{
    const char *one = getenv("MP_NODE_SEED");
    if (one) {
        run_stress(strtoull(one, NULL, 10), strtoull(one, NULL, 10) & 1, 0, false, 2);
        return;
    }
    const char *sweep = getenv("MP_NODE_SWEEP"); /* more seeds, on demand */
    uint64_t last = sweep ? 1000 + strtoull(sweep, NULL, 10) : 0;
    for (uint64_t seed = 1000; seed < last; seed++)
        run_stress(seed, true, (double)(seed % 3) * 0.5, false, 2);
    for (uint64_t seed = 300; seed < 308; seed++) run_stress(seed, seed & 1, 0, false, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buggify_runs_complete_every_call_once),
        cmocka_unit_test(test_connection_resets_complete_every_call_once),
        cmocka_unit_test(test_kill_restart_never_duplicates_an_activation),
        cmocka_unit_test(test_same_seed_gives_the_same_trace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
