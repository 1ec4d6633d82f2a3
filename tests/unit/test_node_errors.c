/*
 * Errors and timeouts of calls (simulator): an actor's error reaches its
 * caller and the actor survives it; unknown types and methods fail without
 * activating; a failed on_activate fails every queued call; a timed-out
 * call never sees its late reply (locally and across nodes); calls to a
 * dead peer fail fast with MP_EUNAVAIL; calls to a member of another
 * namespace fail at once with MP_ENAMESPACE.
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

static void test_actor_errors_reach_the_caller_and_the_actor_survives(void **state)
{
    sc_cluster *c = counter_cluster(1, 4);
    sc_reply o[6];
    memset(o, 0, sizeof o);
    sc_call(c, 0, "Counter", "e", "add", NULL, 0, 0, &o[0]);
    sc_call(c, 0, "Counter", "e", "fail", NULL, 0, 0, &o[1]);
    sc_call(c, 0, "Counter", "e", "get", NULL, 0, 0, &o[2]);
    sc_call(c, 0, "Nope", "e", "get", NULL, 0, 0, &o[3]);
    sc_call(c, 0, "Counter", "e", "nomethod", NULL, 0, 0, &o[4]);
    sc_call(c, 0, "Counter", "fresh", "nomethod", NULL, 0, 0, &o[5]);
    sc_wait(c, o, 6);
    assert_int_equal(o[0].status, 0);
    assert_int_equal(o[1].status, MP_EACTOR);
    assert_string_equal(o[1].text, "boom");
    assert_int_equal(o[2].status, 0); /* the actor survived its error */
    assert_int_equal(o[2].value, 1);
    assert_int_equal(o[3].status, MP_ENOTYPE);
    assert_int_equal(o[4].status, MP_ENOMETHOD);
    assert_int_equal(o[5].status, MP_ENOMETHOD);
    /* unknown methods never create activations */
    assert_int_equal(g_activations, 1);
    mp_node_stats st;
    mp_node_get_stats(sc_node(c, 0), &st);
    assert_int_equal(st.activations, 1);
    counter_cluster_free(c);
}

static void test_timed_out_call_never_sees_its_late_reply(void **state)
{
    sc_cluster *c = counter_cluster(1, 5);
    sc_reply o[2];
    memset(o, 0, sizeof o);
    uint64_t t0 = mp_sim_now(sc_sim(c));
    sc_call(c, 0, "Counter", "h", "hang", NULL, 0, 100 * MS, &o[0]);
    /* "later" replies after 10 ms: a 5 ms timeout loses the race */
    sc_call(c, 0, "Counter", "l", "later", NULL, 0, 5 * MS, &o[1]);
    sc_wait(c, o, 2);
    assert_int_equal(o[0].status, MP_ETIMEDOUT);
    assert_true(o[0].at - t0 >= 100 * MS && o[0].at - t0 <= 110 * MS);
    assert_int_equal(o[1].status, MP_ETIMEDOUT);
    assert_true(o[1].at - t0 >= 5 * MS && o[1].at - t0 <= 6 * MS);
    mp_sim_run_until(sc_sim(c), mp_sim_now(sc_sim(c)) + 50 * MS);
    assert_int_equal(o[1].calls, 1); /* the late reply never reaches the cb */
    mp_node_stats st;
    mp_node_get_stats(sc_node(c, 0), &st);
    assert_int_equal(st.replies_late, 1);
    assert_int_equal(st.timeouts, 2);
    counter_cluster_free(c);
}


static void test_failed_activation_fails_every_queued_call(void **state)
{
    sc_cluster *c = counter_cluster(1, 7);
    sc_reply o[4];
    memset(o, 0, sizeof o);
    for (int i = 0; i < 3; i++) sc_call(c, 0, "Counter", "bad1", "add", NULL, 0, 0, &o[i]);
    sc_wait(c, o, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(o[i].status, MP_EACTIVATION);
    mp_node_stats st;
    mp_node_get_stats(sc_node(c, 0), &st);
    assert_int_equal(st.activations, 0);
    assert_int_equal(g_deactivations, 0); /* no on_deactivate after a failed on_activate */
    sc_call(c, 0, "Counter", "bad1", "add", NULL, 0, 0, &o[3]);
    sc_wait(c, &o[3], 1);
    assert_int_equal(o[3].status, MP_EACTIVATION);
    counter_cluster_free(c);
}


static void test_remote_timed_out_call_counts_the_late_reply(void **state)
{
    sc_cluster *c = counter_cluster(3, 14);
    sc_reply o[2];
    memset(o, 0, sizeof o);
    /* place on node 1 (prefer-local from node 1), call from node 0 */
    sc_call(c, 1, "Local", "T", "get", NULL, 0, 0, &o[0]);
    sc_wait(c, &o[0], 1);
    sc_call(c, 0, "Local", "T", "later", NULL, 0, 5 * MS, &o[1]);
    sc_wait(c, &o[1], 1);
    assert_int_equal(o[1].status, MP_ETIMEDOUT);
    mp_sim_run_until(sc_sim(c), mp_sim_now(sc_sim(c)) + 100 * MS);
    mp_node_stats st;
    mp_node_get_stats(sc_node(c, 0), &st);
    assert_int_equal(st.replies_late, 1);
    counter_cluster_free(c);
}


/* A key of type Local whose directory owner is member `want_not_owner`'s
 * complement: its directory entry survives when that member dies. */
static void key_not_owned_by(sc_cluster *c, int member, char *key, size_t cap)
{
    mp_directory d;
    assert_int_equal(mp_dir_init(&d, sc_member_addrs(c), (size_t)sc_members(c), 0, 1), MP_OK);
    for (int k = 0; k < 1000; k++) {
        snprintf(key, cap, "pk%d", k);
        mp_ref r;
        mp_ref_init(&r, "t", "Local", key);
        if (mp_dir_owner(&d, &r) != (size_t)member) break;
    }
    mp_dir_free(&d);
}

/* Calls in flight to a node that dies fail as soon as the connection is
 * seen to break, not after their (30 s) timeout, with MP_EINDOUBT: their
 * frames were sent and may have run. Calls issued while it stays down fail
 * at the next failed reconnect attempt (within the transport's 2 s backoff
 * cap) with MP_EUNAVAIL: their frames were dropped unsent, nothing ran. */
static void test_calls_to_a_dead_peer_fail_fast(void **state)
{
    sc_cluster *c = counter_cluster(3, 31);
    char key[16];
    key_not_owned_by(c, 1, key, sizeof key);
    sc_reply o[6];
    memset(o, 0, sizeof o);
    sc_call(c, 1, "Local", key, "get", NULL, 0, 0, &o[0]); /* lives on node 1 */
    sc_wait(c, &o[0], 1);
    sc_call(c, 0, "Local", key, "get", NULL, 0, 0, &o[1]); /* node 0 caches it */
    sc_wait(c, &o[1], 1);
    assert_int_equal(o[1].status, 0);
    /* in flight: never answered (default 30 s timeout) */
    assert_int_equal(sc_call(c, 0, "Local", key, "hang", NULL, 0, 0, &o[2]), MP_OK);
    assert_int_equal(sc_call(c, 0, "Local", key, "hang", NULL, 0, 0, &o[3]), MP_OK);
    mp_sim_run_until(sc_sim(c), mp_sim_now(sc_sim(c)) + 50 * MS);
    assert_int_equal(o[2].calls, 0);
    uint64_t t0 = mp_sim_now(sc_sim(c));
    assert_int_equal(mp_sim_kill(sc_sim(c), sc_pid(c, 1)), MP_OK);
    sc_wait(c, &o[2], 2);
    for (int i = 2; i < 4; i++) {
        assert_int_equal(o[i].status, MP_EINDOUBT);
        assert_true(o[i].at - t0 < 1 * SEC);
        assert_non_null(strstr(o[i].text, "connection to 10.0.0.2:4000 lost"));
    }
    /* while it stays down: new calls fail fast too (the directory still
     * names node 1: its owner is alive) */
    mp_sim_run_until(sc_sim(c), mp_sim_now(sc_sim(c)) + 5 * SEC);
    uint64_t t1 = mp_sim_now(sc_sim(c));
    assert_int_equal(sc_call(c, 0, "Local", key, "get", NULL, 0, 0, &o[4]), MP_OK);
    assert_int_equal(sc_call(c, 2, "Local", key, "get", NULL, 0, 0, &o[5]), MP_OK);
    sc_wait(c, &o[4], 2);
    for (int i = 4; i < 6; i++) {
        assert_int_equal(o[i].status, MP_EUNAVAIL);
        assert_true(o[i].at - t1 < 3 * SEC);
    }
    counter_cluster_free(c);
}


/* Member 2 is configured with namespace "other". */
static void other_namespace_at_2(void *ud, int idx, mp_node_config *cfg)
{
    if (idx == 2) cfg->cluster_namespace = "other";
}

/* Follow-up 3: a member configured with another namespace refuses our
 * handshakes (and we refuse its). A call whose directory owner is that
 * member ends with MP_ENAMESPACE naming both namespaces, at once, not with
 * a timeout; so does a new call while the refusal stands. */
static void test_namespace_mismatch_fails_calls_at_once(void **state)
{
    sc_options opt;
    counter_options(&opt, 3, 33);
    opt.configure = other_namespace_at_2;
    sc_cluster *c = counter_cluster_new(&opt);
    mp_directory d;
    assert_int_equal(mp_dir_init(&d, sc_member_addrs(c), 3, 0, 1), MP_OK);
    char key[16];
    for (int k = 0; k < 1000; k++) {
        snprintf(key, sizeof key, "nk%d", k);
        mp_ref r;
        mp_ref_init(&r, "t", "Counter", key);
        if (mp_dir_owner(&d, &r) == 2) break;
    }
    mp_dir_free(&d);
    sc_reply o[2];
    memset(o, 0, sizeof o);
    uint64_t t0 = mp_sim_now(sc_sim(c));
    assert_int_equal(sc_call(c, 0, "Counter", key, "get", NULL, 0, 0, &o[0]), MP_OK);
    sc_wait(c, &o[0], 1);
    assert_int_equal(o[0].status, MP_ENAMESPACE);
    assert_true(o[0].at - t0 < 1 * SEC);
    if (getenv("MP_NODE_VERBOSE")) fprintf(stderr, "refused: %s\n", o[0].text);
    assert_non_null(strstr(o[0].text, "'t'"));
    assert_non_null(strstr(o[0].text, "'other'"));
    /* later: the refusal is known, a new call fails without waiting */
    mp_sim_run_until(sc_sim(c), mp_sim_now(sc_sim(c)) + 3 * SEC);
    uint64_t t1 = mp_sim_now(sc_sim(c));
    assert_int_equal(sc_call(c, 0, "Counter", key, "get", NULL, 0, 0, &o[1]), MP_OK);
    sc_wait(c, &o[1], 1);
    assert_int_equal(o[1].status, MP_ENAMESPACE);
    assert_true(o[1].at - t1 < 10 * MS);
    counter_cluster_free(c);
}

static void small_mailbox(void *ud, int idx, mp_node_config *cfg) { cfg->max_mailbox = 3; }

/* A mailbox holds at most max_mailbox messages: past it a call fails at
 * once with MP_EQUEUEFULL (not executed, counted), from this node or
 * another, and the queued ones still run. */
static void test_full_mailbox_refuses_calls_as_not_executed(void **state)
{
    sc_options o;
    counter_options(&o, 2, 41);
    o.configure = small_mailbox;
    sc_cluster *c = counter_cluster_new(&o);
    sc_reply r[7];
    memset(r, 0, sizeof r);
    /* Six calls queued at once on the node hosting the actor (prefer-local
     * placement), before any turn runs: the first 3 fill the
     * mailbox ("later" then holds its turn 10 ms), the next 3 are refused. */
    sc_reply w = sc_call_wait(c, 0, "Local", "mb", "add", NULL, 0, 0, 10 * SEC);
    assert_int_equal(w.status, 0);
    assert_int_equal(sc_call(c, 0, "Local", "mb", "later", NULL, 0, 0, &r[0]), MP_OK);
    for (int i = 1; i < 6; i++)
        assert_int_equal(sc_call(c, 0, "Local", "mb", "add", NULL, 0, 0, &r[i]), MP_OK);
    sc_wait(c, r, 6);
    for (int i = 0; i < 3; i++) assert_int_equal(r[i].status, 0);
    for (int i = 3; i < 6; i++) {
        assert_int_equal(r[i].status, MP_EQUEUEFULL);
        assert_non_null(strstr(r[i].text, "mailbox full"));
    }
    sc_reply g = sc_call_wait(c, 1, "Local", "mb", "get", NULL, 0, 0, 10 * SEC);
    assert_int_equal(g.value, 4); /* add, later, 2 adds: the refused never ran */
    mp_node_stats st;
    uint64_t rejected = 0;
    for (int i = 0; i < 2; i++) {
        mp_node_get_stats(sc_node(c, i), &st);
        rejected += st.mailbox_rejected;
    }
    assert_int_equal(rejected, 3);
    counter_cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_actor_errors_reach_the_caller_and_the_actor_survives),
        cmocka_unit_test(test_timed_out_call_never_sees_its_late_reply),
        cmocka_unit_test(test_failed_activation_fails_every_queued_call),
        cmocka_unit_test(test_remote_timed_out_call_counts_the_late_reply),
        cmocka_unit_test(test_calls_to_a_dead_peer_fail_fast),
        cmocka_unit_test(test_namespace_mismatch_fails_calls_at_once),
        cmocka_unit_test(test_full_mailbox_refuses_calls_as_not_executed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
