/*
 * Routing, directory and placement in a 3-node cluster (simulator): calls
 * from every node reach one activation per id, also actor to actor, with
 * payloads and errors crossing nodes; a burst of calls to a new id needs
 * one directory lookup (S6); two-choices placement keeps nodes within 20%
 * of the mean (S5); two nodes activating one id at once leave one
 * activation; a stale directory cache is forwarded and corrected.
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

static void test_calls_from_every_node_reach_one_activation(void **state)
{
    sc_cluster *c = counter_cluster(3, 11);
    enum { K = 30 };
    static sc_reply o[3 * K];
    memset(o, 0, sizeof o);
    for (int from = 0; from < 3; from++)
        for (int k = 0; k < K; k++) {
            char key[16];
            snprintf(key, sizeof key, "k%d", k);
            assert_int_equal(sc_call(c, from, "Counter", key, "add", NULL, 0, 0,
                                  &o[from * K + k]), MP_OK);
        }
    sc_wait(c, o, 3 * K);
    for (int k = 0; k < K; k++) {
        int seen_v[4] = {0, 0, 0, 0};
        for (int from = 0; from < 3; from++) {
            sc_reply *x = &o[from * K + k];
            assert_int_equal(x->status, 0);
            assert_true(x->value >= 1 && x->value <= 3);
            seen_v[x->value]++;
        }
        /* three adds on one activation: 1, 2, 3 in some order */
        assert_int_equal(seen_v[1], 1);
        assert_int_equal(seen_v[2], 1);
        assert_int_equal(seen_v[3], 1);
    }
    int dups;
    assert_int_equal(sc_live_activations(c, &dups), K);
    assert_int_equal(dups, 0);
    /* spread over nodes (two-choices) */
    for (int i = 0; i < 3; i++) {
        mp_node_stats st;
        mp_node_get_stats(sc_node(c, i), &st);
        assert_true(st.activations >= 3);
    }
    /* actor-to-actor across nodes */
    static sc_reply a2a[K];
    memset(a2a, 0, sizeof a2a);
    for (int k = 0; k < K; k++) {
        char key[32], other[16];
        snprintf(key, sizeof key, "caller%d", k);
        snprintf(other, sizeof other, "k%d", k);
        sc_call(c, k % 3, "Counter", key, "callother", other, strlen(other), 0, &a2a[k]);
    }
    sc_wait(c, a2a, K);
    for (int k = 0; k < K; k++) {
        assert_int_equal(a2a[k].status, 0);
        assert_int_equal(a2a[k].value, 400);
    }
    /* a large payload, read by the handler after its reply went out */
    static uint8_t pl[200];
    for (size_t i = 0; i < sizeof pl; i++) pl[i] = (uint8_t)i;
    for (int from = 0; from < 3; from++) {
        sc_reply er = {0};
        sc_call(c, from, "Counter", "k2", "echo_then_read", pl, sizeof pl, 0, &er);
        sc_wait(c, &er, 1);
        assert_int_equal(er.status, 0);
        assert_memory_equal(g_after, pl, sizeof pl);
        memset(g_after, 0, sizeof g_after);
    }
    /* errors travel back across nodes */
    sc_reply e[3];
    memset(e, 0, sizeof e);
    sc_call(c, 0, "Counter", "k1", "fail", NULL, 0, 0, &e[0]);
    sc_call(c, 1, "Counter", "k1", "nomethod", NULL, 0, 0, &e[1]);
    sc_call(c, 2, "Nope", "k1", "get", NULL, 0, 0, &e[2]);
    sc_wait(c, e, 3);
    assert_int_equal(e[0].status, MP_EACTOR);
    assert_string_equal(e[0].text, "boom");
    assert_int_equal(e[1].status, MP_ENOMETHOD);
    assert_int_equal(e[2].status, MP_ENOTYPE);
    counter_cluster_free(c);
}

/* 1000 concurrent calls to one new actor: one directory lookup, every
 * reply matched to its call (S6), all applied once. */
static void test_call_burst_needs_one_directory_lookup(void **state)
{
    sc_cluster *c = counter_cluster(3, 16);
    enum { N = 1000 };
    static sc_reply o[N];
    memset(o, 0, sizeof o);
    mp_node_stats before;
    mp_node_get_stats(sc_node(c, 0), &before);
    for (int i = 0; i < N; i++) {
        int64_t one = 1;
        assert_int_equal(sc_call(c, 0, "Counter", "burst", "add", &one, sizeof one, 0, &o[i]),
                         MP_OK);
    }
    sc_wait(c, o, N);
    static bool seen_v[N + 1];
    memset(seen_v, 0, sizeof seen_v);
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].status, 0);
        assert_true(o[i].value >= 1 && o[i].value <= N);
        assert_false(seen_v[o[i].value]);
        seen_v[o[i].value] = true;
    }
    mp_node_stats after;
    mp_node_get_stats(sc_node(c, 0), &after);
    assert_int_equal(after.dir_lookups - before.dir_lookups, 1);
    assert_int_equal(after.pending_calls, 0);
    counter_cluster_free(c);
}

/* S5: two-choices placement keeps 300 actors within 20% of the mean. */
static void test_placement_keeps_nodes_within_20_percent(void **state)
{
    sc_cluster *c = counter_cluster(3, 17);
    enum { N = 300 };
    static sc_reply o[N];
    memset(o, 0, sizeof o);
    for (int i = 0; i < N; i++) {
        char key[16];
        snprintf(key, sizeof key, "p%d", i);
        sc_call(c, i % 3, "Counter", key, "add", NULL, 0, 0, &o[i]);
        if (i % 30 == 29) mp_sim_run_until(sc_sim(c), mp_sim_now(sc_sim(c)) + 200 * MS);
    }
    sc_wait(c, o, N);
    for (int i = 0; i < 3; i++) {
        mp_node_stats st;
        mp_node_get_stats(sc_node(c, i), &st);
        assert_true(st.activations >= 80 && st.activations <= 120);
    }
    counter_cluster_free(c);
}

static void test_activation_race_leaves_one_activation(void **state)
{
    sc_cluster *c = counter_cluster(3, 12);
    enum { K = 20 };
    static sc_reply o[2 * K];
    memset(o, 0, sizeof o);
    /* Warm up: every pair of nodes connected, so that the race below is
     * decided by the directory, not by connection setup times. */
    static sc_reply w[9];
    memset(w, 0, sizeof w);
    for (int i = 0; i < 9; i++) {
        char key[16];
        snprintf(key, sizeof key, "w%d", i);
        sc_call(c, i % 3, "Local", key, "add", NULL, 0, 0, &w[i]);
    }
    sc_wait(c, w, 9);
    mp_sim_run_until(sc_sim(c), mp_sim_now(sc_sim(c)) + 1 * SEC); /* load reports */
    /* Both nodes call each new id in the same instant; prefer-local
     * placement makes both try to activate it. */
    for (int k = 0; k < K; k++) {
        char key[16];
        snprintf(key, sizeof key, "r%d", k);
        sc_call(c, 0, "Local", key, "add", NULL, 0, 0, &o[2 * k]);
        sc_call(c, 1, "Local", key, "add", NULL, 0, 0, &o[2 * k + 1]);
    }
    sc_wait(c, o, 2 * K);
    for (int k = 0; k < K; k++) {
        assert_int_equal(o[2 * k].status, 0);
        assert_int_equal(o[2 * k + 1].status, 0);
        assert_int_equal(o[2 * k].value + o[2 * k + 1].value, 3); /* 1 and 2 */
    }
    int dups;
    assert_int_equal(sc_live_activations(c, &dups), K + 9);
    assert_int_equal(dups, 0);
    assert_int_equal(g_activations, K + 9); /* losers ran no hook */
    mp_node_stats s0, s1;
    mp_node_get_stats(sc_node(c, 0), &s0);
    mp_node_get_stats(sc_node(c, 1), &s1);
    /* somebody lost races: more activations were created than survive */
    assert_true(s0.activations_total + s1.activations_total > K + 6);
    counter_cluster_free(c);
}

static void test_stale_cache_is_forwarded_and_corrected(void **state)
{
    sc_cluster *c = counter_cluster(3, 13);
    sc_reply o[8];
    memset(o, 0, sizeof o);
    /* X lives on node 0 */
    sc_call(c, 0, "Local", "X", "where", NULL, 0, 0, &o[0]);
    sc_wait(c, &o[0], 1);
    assert_string_equal(o[0].text, sc_addr(c, 0));
    /* node 2 learns that */
    sc_call(c, 2, "Local", "X", "where", NULL, 0, 0, &o[1]);
    sc_wait(c, &o[1], 1);
    assert_string_equal(o[1].text, sc_addr(c, 0));
    /* X deactivates on node 0, then node 1 activates it locally */
    sc_call(c, 0, "Local", "X", "deact", NULL, 0, 0, &o[2]);
    sc_wait(c, &o[2], 1);
    mp_sim_run_until(sc_sim(c), mp_sim_now(sc_sim(c)) + 100 * MS);
    sc_call(c, 1, "Local", "X", "where", NULL, 0, 0, &o[3]);
    sc_wait(c, &o[3], 1);
    assert_string_equal(o[3].text, sc_addr(c, 1));
    /* node 2's cache is stale (node 0): node 0 forwards, the reply
     * corrects node 2's cache */
    mp_node_stats a0, c2;
    mp_node_get_stats(sc_node(c, 0), &a0);
    uint64_t fwd0 = a0.forwards;
    sc_call(c, 2, "Local", "X", "where", NULL, 0, 0, &o[4]);
    sc_wait(c, &o[4], 1);
    assert_int_equal(o[4].status, 0);
    assert_string_equal(o[4].text, sc_addr(c, 1));
    mp_node_get_stats(sc_node(c, 0), &a0);
    mp_node_get_stats(sc_node(c, 2), &c2);
    assert_int_equal(a0.forwards, fwd0 + 1);
    assert_true(c2.cache_updates >= 1);
    /* the next call goes straight to node 1 */
    sc_call(c, 2, "Local", "X", "where", NULL, 0, 0, &o[5]);
    sc_wait(c, &o[5], 1);
    assert_string_equal(o[5].text, sc_addr(c, 1));
    mp_node_get_stats(sc_node(c, 0), &a0);
    assert_int_equal(a0.forwards, fwd0 + 1);
    counter_cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls_from_every_node_reach_one_activation),
        cmocka_unit_test(test_call_burst_needs_one_directory_lookup),
        cmocka_unit_test(test_placement_keeps_nodes_within_20_percent),
        cmocka_unit_test(test_activation_race_leaves_one_activation),
        cmocka_unit_test(test_stale_cache_is_forwarded_and_corrected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
