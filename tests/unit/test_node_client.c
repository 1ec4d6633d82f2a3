/*
 * Client-only nodes: a client (not a member) calls into a 3-node simulated
 * cluster through gateways, learns where actors live, fails over when its
 * gateway dies, hosts nothing and reads members' stats; and the same on
 * the real (libuv) env with a one-member cluster on 127.0.0.1.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "counter_actor.h"
#include "moonpool/node.h"
#include "moonpool/env_uv.h"
#include "moonpool/sim.h"
#include "sim_cluster.h"

#define MS 1000000ull
#define SEC 1000000000ull

typedef struct stats_out {
    int calls, status;
    json_t *j;
} stats_out;

static void on_stats(void *ud, int status, const void *data, size_t len)
{
    stats_out *so = ud;
    so->calls++;
    so->status = status;
    if (status == 0) so->j = json_loadb(data, len, 0, NULL);
}

static bool stats_done(void *ud) { return ((stats_out *)ud)->calls > 0; }

static json_t *get_stats(sc_cluster *c, mp_node *from, const char *addr)
{
    stats_out so = {0};
    assert_int_equal(mp_node_request_stats(from, addr, on_stats, &so), MP_OK);
    assert_int_equal(so.calls, 0); /* never inside the call */
    assert_true(mp_sim_run_while_not(sc_sim(c), stats_done, &so,
                                     mp_sim_now(sc_sim(c)) + 10 * SEC));
    assert_int_equal(so.calls, 1);
    assert_int_equal(so.status, 0);
    assert_non_null(so.j);
    return so.j;
}

/* A client process (not a member) calls into a 3-node cluster through
 * gateways, keeps working when its gateway dies (fail-over), and reads
 * the members' stats. */
static void test_client_node_calls_through_gateways_and_fails_over(void **state)
{
    sc_cluster *c = counter_cluster(3, 21);
    int ci = sc_add_client(c, "10.0.9.1:5000");
    mp_node *cl = sc_node(c, ci);

    enum { K = 30 };
    static sc_reply o[K];
    memset(o, 0, sizeof o);
    for (int k = 0; k < K; k++) {
        char key[16];
        snprintf(key, sizeof key, "c%d", k);
        assert_int_equal(sc_call(c, ci, "Counter", key, "add", NULL, 0, 5 * SEC, &o[k]), MP_OK);
        assert_int_equal(o[k].calls, 0);
    }
    sc_wait(c, o, K);
    for (int k = 0; k < K; k++) {
        assert_int_equal(o[k].status, 0);
        assert_int_equal(o[k].value, 1);
    }
    /* A second round on the same actors goes straight to their hosts: the
     * first round's replies told the client where each one lives. */
    uint64_t fw_before = 0, fw_after = 0, relayed_first = 0;
    for (int i = 0; i < 3; i++) {
        mp_node_stats st;
        mp_node_get_stats(sc_node(c, i), &st);
        fw_before += st.forwards;
    }
    mp_node_stats cst0;
    mp_node_get_stats(cl, &cst0);
    relayed_first = cst0.cache_updates;
    assert_true(relayed_first > 0); /* some gateways were not the host */
    static sc_reply o2[K];
    memset(o2, 0, sizeof o2);
    for (int k = 0; k < K; k++) {
        char key[16];
        snprintf(key, sizeof key, "c%d", k);
        assert_int_equal(sc_call(c, ci, "Counter", key, "add", NULL, 0, 5 * SEC, &o2[k]), MP_OK);
    }
    sc_wait(c, o2, K);
    for (int k = 0; k < K; k++) {
        assert_int_equal(o2[k].status, 0);
        assert_int_equal(o2[k].value, 2);
    }
    for (int i = 0; i < 3; i++) {
        mp_node_stats st;
        mp_node_get_stats(sc_node(c, i), &st);
        fw_after += st.forwards;
    }
    assert_int_equal(fw_after, fw_before);

    /* errors come back through the gateway too */
    sc_reply e = {0};
    sc_call(c, ci, "Counter", "c1", "nomethod", NULL, 0, 5 * SEC, &e);
    sc_wait(c, &e, 1);
    assert_int_equal(e.status, MP_ENOMETHOD);
    /* the client hosts nothing; the members host everything */
    mp_node_stats cst;
    mp_node_get_stats(cl, &cst);
    assert_int_equal(cst.activations, 0);
    assert_int_equal(cst.activations_total, 0);
    assert_int_equal(sc_live_activations(c, NULL), K);

    /* stats of a member, asked by the client */
    json_t *j = get_stats(c, cl, sc_addr(c, 1));
    assert_string_equal(json_string_value(json_object_get(j, "addr")), sc_addr(c, 1));
    assert_int_equal(json_integer_value(json_object_get(j, "incarnation")), 1);
    mp_node_stats st1;
    mp_node_get_stats(sc_node(c, 1), &st1);
    assert_int_equal(json_integer_value(json_object_get(j, "activations")),
                     (json_int_t)st1.activations);
    json_t *types = json_object_get(j, "types");
    assert_true(json_is_object(types));
    assert_int_equal(json_integer_value(json_object_get(types, "Counter")),
                     (json_int_t)st1.activations);
    assert_true(json_is_false(json_object_get(j, "client_only")));
    assert_true(json_is_null(json_object_get(j, "persist_p50_ms")));
    json_decref(j);
    /* its own stats, and a member asking another member */
    j = get_stats(c, cl, sc_addr(c, ci));
    assert_true(json_is_true(json_object_get(j, "client_only")));
    assert_int_equal(json_integer_value(json_object_get(j, "calls_out")),
                     (json_int_t)cst.calls_out);
    json_decref(j);
    j = get_stats(c, sc_node(c, 0), sc_addr(c, 2));
    assert_string_equal(json_string_value(json_object_get(j, "addr")), sc_addr(c, 2));
    json_decref(j);
    stats_out bad = {0};
    assert_int_equal(mp_node_request_stats(cl, "10.9.9.9:1", on_stats, &bad),
                     MP_EINVAL);

    /* kill member 0 (it restarts 1 s later): calls whose gateway it was
     * fail over; every call still succeeds */
    assert_int_equal(mp_sim_kill(sc_sim(c), sc_pid(c, 0)), MP_OK);
    assert_int_equal(mp_sim_restart(sc_sim(c), sc_pid(c, 0), 1 * SEC), MP_OK);
    static sc_reply f[K];
    memset(f, 0, sizeof f);
    for (int k = 0; k < K; k++) {
        char key[16];
        snprintf(key, sizeof key, "f%d", k);
        assert_int_equal(sc_call(c, ci, "Counter", key, "add", NULL, 0, 20 * SEC, &f[k]), MP_OK);
    }
    /* before the restart, calls whose first gateway is the dead member
     * already completed: they failed over */
    uint64_t t_kill = mp_sim_now(sc_sim(c));
    mp_sim_run_until(sc_sim(c), t_kill + 900 * MS);
    int early_gw0 = 0;
    for (int k = 0; k < K; k++) {
        char key[16];
        snprintf(key, sizeof key, "f%d", k);
        mp_ref r;
        mp_ref_get(cl, "Counter", key, &r);
        if (r.hash % 3 == 0 && f[k].calls == 1 && f[k].status == 0) early_gw0++;
    }
    assert_true(early_gw0 > 0);
    sc_wait(c, f, K);
    for (int k = 0; k < K; k++) assert_int_equal(f[k].status, 0);
    mp_node_stats after;
    mp_node_get_stats(cl, &after);
    assert_int_equal(after.activations_total, 0);

    /* a client-only node cannot be a member too */
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    cfg.cluster_namespace = "t";
    cfg.self_addr = sc_addr(c, 0);
    cfg.members = sc_member_addrs(c);
    cfg.member_count = 3;
    cfg.client_only = true;
    mp_node *bad_node = NULL;
    assert_int_equal(mp_node_create(sc_env(c, ci), &cfg,
                                    &bad_node), MP_EINVAL);
    counter_cluster_free(c);
}


/* Real mode (libuv, 127.0.0.1): a one-member cluster listening on port 0
 * and a client-only node on port 0 calling into it and asking its stats. */
typedef struct real_client {
    mp_env *env;
    int replies, status;
    int64_t value;
    json_t *stats;
} real_client;

/* A handler that ran and replied MP_EUNAVAIL (relaying its own call's
 * error) is not taken for a gateway that refused the request: the client
 * gets MP_EACTOR naming the status, and the handler ran once (before, the
 * client sent it on to the next gateway, which ran it again). */
static void test_handler_error_saying_not_run_runs_once(void **state)
{
    sc_cluster *c = counter_cluster(3, 22);
    int ci = sc_add_client(c, "10.0.9.1:5000");
    sc_reply o = sc_call_wait(c, ci, "Counter", "relay", "add_relay_unavail", NULL, 0,
                              5 * SEC, 30 * SEC);
    assert_int_equal(o.status, MP_EACTOR);
    assert_non_null(strstr(o.text, "MP_EUNAVAIL: downstream unavailable"));
    assert_int_equal(mp_call_status_class(o.status, 0), MP_CALL_EXECUTED);
    sc_reply g = sc_call_wait(c, ci, "Counter", "relay", "get", NULL, 0, 5 * SEC, 30 * SEC);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.value, 1);
    counter_cluster_free(c);
}

/* The outcomes of a member's calls, the members it knows and its
 * connections to them (what /metrics shows as calls_completed_total,
 * member_live, member_active and peer_connected). */
static void test_call_outcomes_and_member_connections(void **state)
{
    sc_cluster *c = counter_cluster(3, 23);
    enum { K = 12 };
    sc_reply o[K];
    memset(o, 0, sizeof o);
    for (int k = 0; k < K; k++) {
        char key[16];
        snprintf(key, sizeof key, "m%d", k);
        sc_call(c, 0, "Counter", key, "add", NULL, 0, 5 * SEC, &o[k]);
    }
    sc_wait(c, o, K);
    sc_reply f = sc_call_wait(c, 0, "Counter", "m0", "fail", NULL, 0, 5 * SEC, 10 * SEC);
    sc_reply u = sc_call_wait(c, 0, "Counter", "m1", "nosuch", NULL, 0, 5 * SEC, 10 * SEC);
    assert_int_equal(f.status, MP_EACTOR);
    assert_int_equal(u.status, MP_ENOMETHOD);
    mp_node *n0 = sc_node(c, 0);
    /* The completions by outcome (moonpool_calls_completed_total). */
    mp_node_stats st;
    mp_node_get_stats(n0, &st);
    assert_int_equal(st.calls_ok, K);
    assert_int_equal(st.calls_failed_executed, 1);
    assert_int_equal(st.calls_not_executed, 1);
    assert_int_equal(st.calls_may_have_run, 0);
    assert_int_equal(mp_node_member_info_at(n0, 0, NULL), 3);
    mp_node_member_info mi[3];
    for (size_t i = 0; i < 3; i++) {
        mp_node_member_info_at(n0, i, &mi[i]);
        assert_string_equal(mi[i].addr, sc_addr(c, (int)i));
        assert_true(mi[i].live && mi[i].active); /* a static cluster */
        assert_int_equal(mi[i].connected, i != 0);
    }
    sc_kill(c, 2);
    sc_run_for(c, 15 * SEC); /* past the peer timeout */
    mp_node_member_info_at(n0, 1, &mi[1]);
    mp_node_member_info_at(n0, 2, &mi[2]);
    assert_true(mi[1].connected);
    assert_false(mi[2].connected);
    counter_cluster_free(c);
}

static void real_reply(void *ud, int status, const void *data, size_t len)
{
    real_client *rc = ud;
    rc->replies++;
    rc->status = status;
    if (status == 0 && len == sizeof rc->value) memcpy(&rc->value, data, len);
    if (rc->replies == 2) mp_env_uv_stop(rc->env);
}

static void real_stats(void *ud, int status, const void *data, size_t len)
{
    real_client *rc = ud;
    rc->replies++;
    if (status == 0) rc->stats = json_loadb(data, len, 0, NULL);
    if (rc->replies == 2) mp_env_uv_stop(rc->env);
}

static void real_timeout(void *ud) { mp_env_uv_stop(ud); }

static void shut_count(void *ud) { (*(int *)ud)++; }

static void test_client_node_calls_a_real_cluster(void **state)
{
    mp_env *env = mp_env_uv_create(NULL, 1);
    assert_non_null(env);
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    const char *m[] = {"127.0.0.1:0"};
    cfg.cluster_namespace = "rc";
    cfg.self_addr = m[0];
    cfg.members = m;
    cfg.member_count = 1;
    mp_node *member;
    assert_int_equal(mp_node_create(env, &cfg, &member), MP_OK);
    assert_int_equal(mp_node_register_type(member, &counter_type), MP_OK);
    assert_int_equal(mp_node_start(member), MP_OK);
    char maddr[64];
    snprintf(maddr, sizeof maddr, "%s", mp_node_addr(member));
    assert_string_not_equal(maddr, "127.0.0.1:0");
    const char *cm[] = {maddr};
    mp_node_config cc;
    mp_node_config_init(&cc);
    cc.cluster_namespace = "rc";
    cc.self_addr = "127.0.0.1:0";
    cc.members = cm;
    cc.member_count = 1;
    cc.client_only = true;
    cc.call_timeout_ns = 5 * SEC;
    mp_node *client;
    assert_int_equal(mp_node_create(env, &cc, &client), MP_OK);
    assert_int_equal(mp_node_start(client), MP_OK);
    real_client rc = {.env = env};
    mp_ref r;
    assert_int_equal(mp_ref_get(client, "Counter", "x", &r), MP_OK);
    int64_t five = 5;
    assert_int_equal(mp_call(client, &r, "add", &five, sizeof five, NULL,
                             real_reply, &rc), MP_OK);
    assert_int_equal(mp_node_request_stats(client, maddr, real_stats, &rc), MP_OK);
    mp_timer_id t = mp_env_timer_start(env, 10 * SEC, real_timeout, env);
    mp_env_uv_run(env);
    mp_env_timer_cancel(env, t);
    assert_int_equal(rc.replies, 2);
    assert_int_equal(rc.status, 0);
    assert_int_equal(rc.value, 5);
    assert_non_null(rc.stats);
    assert_string_equal(json_string_value(json_object_get(rc.stats, "addr")), maddr);
    json_decref(rc.stats);
    /* graceful: free_now is for simulated kills only (never on a live
     * libuv loop) */
    int down = 0;
    mp_node_shutdown(client, 1 * SEC, shut_count, &down);
    mp_node_shutdown(member, 1 * SEC, shut_count, &down);
    mp_env_uv_run(env);
    assert_int_equal(down, 2);
    mp_env_uv_destroy(env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_node_calls_through_gateways_and_fails_over),
        cmocka_unit_test(test_client_node_calls_a_real_cluster),
        cmocka_unit_test(test_handler_error_saying_not_run_runs_once),
        cmocka_unit_test(test_call_outcomes_and_member_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
