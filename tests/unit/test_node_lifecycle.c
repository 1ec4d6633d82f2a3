/*
 * The life of an activation (simulator): an idle activation is deactivated
 * (and the next message activates afresh), explicit deactivation re-routes
 * queued messages, the release hook runs for every activation (deactivated,
 * failed or killed); a graceful shutdown waits for a busy turn, runs the
 * SHUTDOWN hooks and lets the ids activate elsewhere, and does not wait
 * for dead peers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory/directory.h"

#include "counter_actor.h"
#include "moonpool/node.h"
#include "moonpool/sim.h"
#include "sim_cluster.h"

#define MS 1000000ull
#define SEC 1000000000ull

static void test_idle_activation_is_deactivated(void **state)
{
    sc_options opt;
    counter_options(&opt, 1, 9);
    opt.idle_timeout_ns = 1 * SEC;
    sc_cluster *c = counter_cluster_new(&opt);
    sc_reply o = {0};
    sc_call(c, 0, "Counter", "i", "add", NULL, 0, 0, &o);
    sc_wait(c, &o, 1);
    mp_sim_run_until(sc_sim(c), mp_sim_now(sc_sim(c)) + 500 * MS);
    assert_int_equal(g_deactivations, 0);
    mp_sim_run_until(sc_sim(c), mp_sim_now(sc_sim(c)) + 1500 * MS);
    assert_int_equal(g_deactivations, 1);
    assert_int_equal(g_deact_reasons[MP_DEACTIVATE_IDLE], 1);
    mp_node_stats st;
    mp_node_get_stats(sc_node(c, 0), &st);
    assert_int_equal(st.activations, 0);
    assert_int_equal(st.deactivations_total, 1);
    /* next message activates again (fresh state) */
    sc_reply p = {0};
    sc_call(c, 0, "Counter", "i", "add", NULL, 0, 0, &p);
    sc_wait(c, &p, 1);
    assert_int_equal(p.value, 1);
    assert_int_equal(g_activations, 2);
    /* explicit deactivation, with messages queued behind it: re-routed */
    sc_reply q[3];
    memset(q, 0, sizeof q);
    sc_call(c, 0, "Counter", "i", "deact", NULL, 0, 0, &q[0]);
    sc_call(c, 0, "Counter", "i", "add", NULL, 0, 0, &q[1]);
    sc_wait(c, q, 2);
    assert_int_equal(q[1].status, 0);
    assert_int_equal(g_deact_reasons[MP_DEACTIVATE_EXPLICIT], 1);
    counter_cluster_free(c);
}



/* The release hook runs for every activation: after on_deactivate when
 * deactivated, alone when the process is killed. */
static void test_release_hook_runs_for_every_activation(void **state)
{
    sc_options opt;
    counter_options(&opt, 1, 23);
    opt.idle_timeout_ns = 1 * SEC;
    sc_cluster *c = counter_cluster_new(&opt);
    sc_reply o[5];
    memset(o, 0, sizeof o);
    for (int k = 0; k < 5; k++) {
        char key[16];
        snprintf(key, sizeof key, "r%d", k);
        sc_call(c, 0, "Counter", key, "add", NULL, 0, 0, &o[k]);
    }
    sc_wait(c, o, 5);
    assert_int_equal(g_releases, 0);
    /* idle: on_deactivate then release */
    mp_sim_run_until(sc_sim(c), mp_sim_now(sc_sim(c)) + 3 * SEC);
    assert_int_equal(g_deactivations, 5);
    assert_int_equal(g_releases, 5);
    /* a failed activation releases its instance too */
    sc_reply b = {0};
    sc_call(c, 0, "Counter", "bad1", "add", NULL, 0, 0, &b);
    sc_wait(c, &b, 1);
    assert_int_equal(b.status, MP_EACTIVATION);
    assert_int_equal(g_releases, 6);
    /* a kill: release without on_deactivate */
    memset(o, 0, sizeof o);
    for (int k = 0; k < 5; k++) {
        char key[16];
        snprintf(key, sizeof key, "r%d", k);
        sc_call(c, 0, "Counter", key, "add", NULL, 0, 0, &o[k]);
    }
    sc_wait(c, o, 5);
    assert_int_equal(mp_sim_kill(sc_sim(c), sc_pid(c, 0)), MP_OK);
    assert_int_equal(g_deactivations, 5);
    assert_int_equal(g_releases, 11);
    counter_cluster_free(c);
}


static int shut_done;
static void on_shut(void *ud) { (*(int *)ud)++; }

static void test_shutdown_waits_for_the_busy_turn_then_closes(void **state)
{
    sc_cluster *c = counter_cluster(1, 15);
    sc_reply o[2];
    memset(o, 0, sizeof o);
    sc_call(c, 0, "Counter", "s1", "add", NULL, 0, 0, &o[0]);
    sc_call(c, 0, "Counter", "s2", "add", NULL, 0, 0, &o[1]);
    sc_wait(c, o, 2);
    /* the node frees itself: detach it from the sim process first by
     * building our own node on the process env */
    mp_env *env = sc_env(c, 0);
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    const char *m[] = {"10.0.0.9:1"};
    cfg.cluster_namespace = "t";
    cfg.self_addr = m[0];
    cfg.members = m;
    cfg.member_count = 1;
    mp_node *node;
    assert_int_equal(mp_node_create(env, &cfg, &node), MP_OK);
    assert_int_equal(mp_node_register_type(node, &counter_type), MP_OK);
    assert_int_equal(mp_node_start(node), MP_OK);
    mp_ref r;
    mp_ref_get(node, "Counter", "z", &r);
    sc_reply p[3];
    memset(p, 0, sizeof p);
    for (int i = 0; i < 3; i++) p[i].sim = sc_sim(c);
    mp_call(node, &r, "add", NULL, 0, NULL, sc_on_reply, &p[0]);
    sc_wait(c, p, 1);
    mp_call(node, &r, "hang", NULL, 0, NULL, sc_on_reply, &p[1]);
    mp_sim_run_until(sc_sim(c), mp_sim_now(sc_sim(c)) + 1 * MS);
    int before = g_deactivations;
    shut_done = 0;
    mp_node_shutdown(node, 100 * MS, on_shut, &shut_done);
    assert_int_equal(mp_call(node, &r, "get", NULL, 0, NULL, sc_on_reply, &p[2]), MP_ECLOSED);
    assert_int_equal(shut_done, 0); /* never inside the call */
    sc_wait(c, &p[1], 1);
    assert_int_equal(p[1].status, MP_ECLOSED);
    assert_true(mp_sim_now(sc_sim(c)) - p[0].at >= 100 * MS); /* waited for the busy turn */
    mp_sim_run_until(sc_sim(c), mp_sim_now(sc_sim(c)) + 1 * MS);
    assert_int_equal(shut_done, 1);
    assert_int_equal(g_deactivations, before + 1);
    counter_cluster_free(c);
}

/* Graceful shutdown of one member of three: its activations run their
 * hooks (SHUTDOWN) and leave the directory; afterwards their ids are
 * activated elsewhere (those whose directory owner is still up). */
static void test_member_shutdown_deactivates_and_its_ids_move(void **state)
{
    if (getenv("MP_NODE_SEED") || getenv("MP_NODE_BSEED")) skip();
    sc_cluster *c = counter_cluster(3, 18);
    enum { K = 12 };
    static sc_reply o[K];
    memset(o, 0, sizeof o);
    for (int k = 0; k < K; k++) {
        char key[16];
        snprintf(key, sizeof key, "d%d", k);
        sc_call(c, 2, "Local", key, "add", NULL, 0, 0, &o[k]); /* lives on node 2 */
        sc_wait(c, &o[k], 1);
        sc_reply w = {0};
        sc_call(c, 0, "Local", key, "get", NULL, 0, 0, &w); /* node 0 caches it */
        sc_wait(c, &w, 1);
        assert_int_equal(w.value, 1);
    }
    int deact_before = g_deactivations;
    assert_true(sc_shutdown(c, 2, 500 * MS, 5 * SEC));
    assert_int_equal(g_deactivations - deact_before, K);
    assert_int_equal(g_deact_reasons[MP_DEACTIVATE_SHUTDOWN], K);
    /* let the survivors see the connections close (their caches drop) */
    mp_sim_run_until(sc_sim(c), mp_sim_now(sc_sim(c)) + 100 * MS);

    mp_directory d;
    assert_int_equal(mp_dir_init(&d, sc_member_addrs(c), 3, 0, 1), MP_OK);
    static sc_reply p[K];
    memset(p, 0, sizeof p);
    for (int k = 0; k < K; k++) {
        char key[16];
        snprintf(key, sizeof key, "d%d", k);
        sc_call(c, 0, "Local", key, "where", NULL, 0, 3 * SEC, &p[k]);
    }
    sc_wait(c, p, K);
    int moved = 0;
    for (int k = 0; k < K; k++) {
        char key[16];
        snprintf(key, sizeof key, "d%d", k);
        mp_ref r;
        mp_ref_init(&r, "t", "Local", key);
        if (mp_dir_owner(&d, &r) == 2) continue; /* its owner is gone */
        assert_int_equal(p[k].status, 0);
        assert_string_equal(p[k].text, sc_addr(c, 0)); /* prefer-local */
        moved++;
    }
    assert_true(moved > 0);
    mp_dir_free(&d);
    counter_cluster_free(c);
}


/* Follow-up 2: a graceful shutdown of a node whose peers are all dead
 * (frames queued for them: load reports, a call) must not wait for its
 * deadline: frames for peers without an open connection are dropped at
 * close. Asserted on simulated time. */
static void test_shutdown_with_dead_peers_is_prompt(void **state)
{
    sc_cluster *c = counter_cluster(3, 32);
    mp_sim_run_until(sc_sim(c), mp_sim_now(sc_sim(c)) + 300 * MS);
    assert_int_equal(mp_sim_kill(sc_sim(c), sc_pid(c, 1)), MP_OK);
    assert_int_equal(mp_sim_kill(sc_sim(c), sc_pid(c, 2)), MP_OK);
    /* load reports keep queueing for the dead peers meanwhile */
    mp_sim_run_until(sc_sim(c), mp_sim_now(sc_sim(c)) + 1 * SEC);
    uint64_t t0 = mp_sim_now(sc_sim(c));
    assert_true(sc_shutdown(c, 0, 20 * SEC, 30 * SEC));
    uint64_t took = mp_sim_now(sc_sim(c)) - t0;
    if (getenv("MP_NODE_VERBOSE"))
        fprintf(stderr, "shutdown with dead peers took %.3f s\n", (double)took / 1e9);
    assert_true(took < 1 * SEC);
    counter_cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_activation_is_deactivated),
        cmocka_unit_test(test_release_hook_runs_for_every_activation),
        cmocka_unit_test(test_shutdown_waits_for_the_busy_turn_then_closes),
        cmocka_unit_test(test_member_shutdown_deactivates_and_its_ids_move),
        cmocka_unit_test(test_shutdown_with_dead_peers_is_prompt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
