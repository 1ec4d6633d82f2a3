/*
 * Calls on one node (simulator): replies arrive in order on one activation,
 * never inside mp_call; an actor runs one turn at a time (R4) and its
 * mailbox depth is reported; oversized messages are refused; an actor calls
 * another and call cycles fail fast with MP_EDEADLOCK (one node and three);
 * a node refuses an invalid configuration.
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

static void test_local_calls_complete_in_order_on_one_activation(void **state)
{
    sc_cluster *c = counter_cluster(1, 1);
    sc_reply o[3];
    memset(o, 0, sizeof o);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sc_call(c, 0, "Counter", "a", "add", NULL, 0, 0, &o[i]), MP_OK);
        assert_int_equal(o[i].calls, 0); /* never inside mp_call */
    }
    sc_wait(c, o, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(o[i].status, 0);
        assert_int_equal(o[i].value, i + 1); /* FIFO, one activation */
    }
    assert_int_equal(g_activations, 1);
    sc_reply e = {0};
    assert_int_equal(sc_call(c, 0, "Counter", "a", "echo", "hello", 5, 0, &e), MP_OK);
    sc_wait(c, &e, 1);
    assert_string_equal(e.text, "hello");
    /* one-way */
    mp_ref r;
    mp_ref_get(sc_node(c, 0), "Counter", "a", &r);
    int64_t ten = 10;
    assert_int_equal(mp_send(sc_node(c, 0), &r, "add", &ten, sizeof ten), MP_OK);
    sc_reply g = {0};
    sc_call(c, 0, "Counter", "a", "get", NULL, 0, 0, &g);
    sc_wait(c, &g, 1);
    assert_int_equal(g.value, 13);

    mp_node_stats st;
    mp_node_get_stats(sc_node(c, 0), &st);
    assert_int_equal(st.activations, 1);
    assert_int_equal(st.activations_total, 1);
    assert_int_equal(st.pending_calls, 0);
    assert_int_equal(st.calls_in, 6);
    assert_int_equal(st.mailbox_depth_total, 0);
    /* invalid arguments fail at once */
    assert_int_equal(mp_call(sc_node(c, 0), &r, "", NULL, 0, NULL, sc_on_reply, &g), MP_EINVAL);
    assert_int_equal(mp_call(sc_node(c, 0), &r, "get", NULL, 0, NULL, NULL, &g), MP_EINVAL);
    assert_int_equal(mp_call(sc_node(c, 0), NULL, "get", NULL, 0, NULL, sc_on_reply, &g), MP_EINVAL);
    counter_cluster_free(c);
}

static void test_an_actor_runs_one_turn_at_a_time(void **state)
{
    sc_options opt;
    counter_options(&opt, 1, 2);
    opt.mailbox_warn_depth = 3;
    sc_cluster *c = counter_cluster_new(&opt);
    /* the hook config is set at boot; route it to this cluster */
    mp_node *node = sc_node(c, 0);
    (void)node;
    sc_reply o[6];
    memset(o, 0, sizeof o);
    uint64_t t0 = mp_sim_now(sc_sim(c));
    for (int i = 0; i < 6; i++)
        assert_int_equal(sc_call(c, 0, "Counter", "slow", "later", NULL, 0, 0, &o[i]), MP_OK);
    sc_wait(c, o, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(o[i].status, 0);
        assert_int_equal(o[i].value, i + 1);
        /* each waits for the previous one's 10 ms */
        assert_true(o[i].at - t0 >= (uint64_t)(i + 1) * 10 * MS);
        if (i) assert_true(o[i].at - o[i - 1].at >= 10 * MS);
    }
    mp_node_stats st;
    mp_node_get_stats(sc_node(c, 0), &st);
    assert_true(st.mailbox_depth_max >= 5);
    assert_int_equal(st.mailbox_depth_total, 0);
    counter_cluster_free(c);
}

static int hook_calls;
static void count_hook(void *ud, const mp_ref *actor, size_t depth) { hook_calls++; }

static void test_mailbox_depth_hook_fires_once_per_crossing(void **state)
{
    /* A node built by hand on a sim env, to install the hook. */
    sc_cluster *c = counter_cluster(1, 3);
    mp_env *env = sc_env(c, 0);
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    const char *m[] = {"10.0.0.9:1"};
    cfg.cluster_namespace = "t";
    cfg.self_addr = m[0];
    cfg.members = m;
    cfg.member_count = 1;
    cfg.mailbox_warn_depth = 3;
    cfg.on_mailbox_depth = count_hook;
    mp_node *node;
    assert_int_equal(mp_node_create(env, &cfg, &node), MP_OK);
    assert_int_equal(mp_node_register_type(node, &counter_type), MP_OK);
    assert_int_equal(mp_node_register_type(node, &counter_type), MP_EINVAL);
    assert_int_equal(mp_node_start(node), MP_OK);
    assert_int_equal(mp_node_register_type(node, &local_type), MP_EINVAL);
    hook_calls = 0;
    mp_ref r;
    mp_ref_get(node, "Counter", "deep", &r);
    sc_reply o[8];
    memset(o, 0, sizeof o);
    for (int i = 0; i < 8; i++) {
        o[i].sim = sc_sim(c);
        assert_int_equal(mp_call(node, &r, "later", NULL, 0, NULL, sc_on_reply, &o[i]), MP_OK);
    }
    sc_wait(c, o, 8);
    assert_int_equal(hook_calls, 1); /* once per crossing */
    mp_node_free_now(node);
    counter_cluster_free(c);
}


static void test_oversized_messages_are_refused(void **state)
{
    sc_options opt;
    counter_options(&opt, 1, 6);
    opt.max_message = 4096;
    sc_cluster *c = counter_cluster_new(&opt);
    static char big[5000];
    sc_reply o = {0};
    assert_int_equal(sc_call(c, 0, "Counter", "b", "echo", big, sizeof big, 0, &o), MP_ETOOBIG);
    assert_int_equal(sc_call(c, 0, "Counter", "b", "echo", big, 4000, 0, &o), MP_OK);
    sc_wait(c, &o, 1);
    assert_int_equal(o.status, 0);
    sc_reply r = {0};
    sc_call(c, 0, "Counter", "b", "big", NULL, 0, 0, &r);
    sc_wait(c, &r, 1);
    assert_int_equal(r.status, MP_ETOOBIG);
    counter_cluster_free(c);
}


static void test_actor_calls_another_actor_on_its_node(void **state)
{
    sc_cluster *c = counter_cluster(1, 8);
    sc_reply o[2];
    memset(o, 0, sizeof o);
    sc_call(c, 0, "Counter", "A", "callother", "B", 1, 0, &o[0]);
    sc_call(c, 0, "Counter", "A", "callother", "B", 1, 0, &o[1]);
    sc_wait(c, o, 2);
    assert_int_equal(o[0].status, 0);
    assert_int_equal(o[0].value, 100);
    assert_int_equal(o[1].value, 200);
    assert_int_equal(g_activations, 2);
    counter_cluster_free(c);
}

/* Call cycles of two fail at once with MP_EDEADLOCK (the inner calls' own
 * timeout is 2 s): A -> B -> A, and A -> B with B -> A at the same time;
 * on one node and across nodes. A call to an actor that is busy with
 * something else still waits its turn. */
static void check_call_cycles(int nodes, uint64_t seed)
{
    sc_cluster *c = counter_cluster(nodes, seed);
    /* A -> B -> A: B's call back fails, B replies that error, A too. */
    sc_reply o = {0};
    uint64_t t0 = mp_sim_now(sc_sim(c));
    sc_call(c, 0, "Counter", "A", "callback", "B", 1, 0, &o);
    sc_wait(c, &o, 1);
    assert_int_equal(o.status, MP_EDEADLOCK);
    assert_true(mp_sim_now(sc_sim(c)) - t0 < 500 * MS);
    /* both actors are free again and were never deactivated */
    sc_reply after[2];
    memset(after, 0, sizeof after);
    sc_call(c, nodes - 1, "Counter", "A", "add", NULL, 0, 0, &after[0]);
    sc_call(c, nodes - 1, "Counter", "B", "add", NULL, 0, 0, &after[1]);
    sc_wait(c, after, 2);
    assert_int_equal(after[0].status, 0);
    assert_int_equal(after[1].status, 0);
    /* A -> B and B -> A at once: each one's call reaches the other while
     * it waits; both fail fast instead of waiting 2 s. */
    enum { R = 5 };
    for (int r = 0; r < R; r++) {
        char a[8], b[8];
        snprintf(a, sizeof a, "x%d", r);
        snprintf(b, sizeof b, "y%d", r);
        sc_reply p[2];
        memset(p, 0, sizeof p);
        t0 = mp_sim_now(sc_sim(c));
        sc_call(c, 0, "Counter", a, "callother", b, strlen(b), 0, &p[0]);
        sc_call(c, nodes - 1, "Counter", b, "callother", a, strlen(a), 0, &p[1]);
        sc_wait(c, p, 2);
        assert_true(mp_sim_now(sc_sim(c)) - t0 < 500 * MS);
        /* at least one side saw the cycle; a side whose call ran first
         * (before the other started) may have succeeded */
        assert_true(p[0].status == MP_EDEADLOCK || p[1].status == MP_EDEADLOCK ||
                    (p[0].status == 0 && p[1].status == 0));
        for (int i = 0; i < 2; i++)
            assert_true(p[i].status == 0 || p[i].status == MP_EDEADLOCK);
    }
    /* no cycle: A waits for B while B is busy with its own call to C;
     * both complete normally */
    sc_reply q[2];
    memset(q, 0, sizeof q);
    sc_call(c, 0, "Counter", "B2", "callother", "C2", 2, 0, &q[0]);
    sc_call(c, nodes - 1, "Counter", "A2", "callother", "B2", 2, 0, &q[1]);
    sc_wait(c, q, 2);
    assert_int_equal(q[0].status, 0);
    assert_int_equal(q[1].status, 0);
    counter_cluster_free(c);
}

static void test_call_cycles_fail_fast_with_edeadlock(void **state)
{
    check_call_cycles(1, 31);
    check_call_cycles(3, 32);
}


static void test_invalid_node_config_is_refused(void **state)
{
    sc_cluster *c = counter_cluster(1, 10);
    mp_env *env = sc_env(c, 0);
    env->log_level = MP_LOG_OFF;
    mp_node_config cfg;
    mp_node *node = NULL;
    const char *two[] = {"10.0.0.1:1", "10.0.0.1:1"};
    const char *one[] = {"10.0.0.1:1"};
    mp_node_config_init(&cfg);
    cfg.cluster_namespace = "t";
    cfg.self_addr = "10.0.0.1:1";
    cfg.members = two;
    cfg.member_count = 2;
    assert_int_equal(mp_node_create(env, &cfg, &node), MP_EINVAL); /* duplicate */
    cfg.members = one;
    cfg.member_count = 1;
    cfg.self_addr = "10.0.0.2:1";
    assert_int_equal(mp_node_create(env, &cfg, &node), MP_EINVAL); /* not a member */
    cfg.self_addr = "10.0.0.1:1";
    cfg.cluster_namespace = "bad ns";
    assert_int_equal(mp_node_create(env, &cfg, &node), MP_EINVAL);
    cfg.cluster_namespace = "t";
    cfg.member_count = 0;
    assert_int_equal(mp_node_create(env, &cfg, &node), MP_EINVAL);
    cfg.member_count = 1;
    cfg.incarnation = 0;
    assert_int_equal(mp_node_create(env, &cfg, &node), MP_EINVAL);
    cfg.incarnation = 1;
    assert_int_equal(mp_node_create(env, &cfg, &node), MP_OK);
    mp_actor_type bad = counter_type;
    bad.name = "has space";
    assert_int_equal(mp_node_register_type(node, &bad), MP_EINVAL);
    mp_ref r;
    mp_ref_get(node, "Counter", "x", &r);
    sc_reply o = {0};
    /* not started */
    assert_int_equal(mp_call(node, &r, "get", NULL, 0, NULL, sc_on_reply, &o), MP_ECLOSED);
    mp_node_free_now(node);
    env->log_level = MP_LOG_WARN;
    counter_cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_calls_complete_in_order_on_one_activation),
        cmocka_unit_test(test_an_actor_runs_one_turn_at_a_time),
        cmocka_unit_test(test_mailbox_depth_hook_fires_once_per_crossing),
        cmocka_unit_test(test_oversized_messages_are_refused),
        cmocka_unit_test(test_actor_calls_another_actor_on_its_node),
        cmocka_unit_test(test_call_cycles_fail_fast_with_edeadlock),
        cmocka_unit_test(test_invalid_node_config_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
