/*
 * Tests of the BankAccount actor (examples/bank) and of the `bank`
 * simulation workload (tests/sim/bank.c).
 *
 * The protocol tests drive one account through a one- or two-node simulated
 * cluster with a perfect network: they pin the reply bodies and error codes
 * a client sees (validation, insufficient funds, dedup of repeated op ids,
 * op_status, transfers), since that is the contract the workload's ledger
 * relies on. The simulator is used rather than a real loop because it is
 * deterministic and needs no sockets.
 *
 * The workload tests run a few seeds per fixed topology (1x1, 2x2, 10x10)
 * with faults off and on through mp_sim_run_one, and the placement test
 * (S5) checks that with 3 and 10 nodes and 120 accounts every node hosts
 * within 20% of the mean number of activations (faults off: placement is
 * then judged on its own, without partitions skewing what nodes see).
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

#include "../../examples/bank/bank.h"
#include "workloads.h"
#include "moonpool/node.h"
#include "moonpool/sim.h"
#include "moonpool/sim_workload.h"

/* ---- a tiny cluster for protocol tests ------------------------------------ */

#define T_NODES_MAX 2

typedef struct t_proc {
    mp_node *node;
} t_proc;

static const char *t_addrs[T_NODES_MAX] = {"10.0.9.1:4600", "10.0.9.2:4600"};
static int t_nodes;

static int t_boot(mp_env *env, void *arg, uint32_t inc, void **out)
{
    int index = (int)(intptr_t)arg;
    t_proc *p = calloc(1, sizeof *p);
    if (!p) return MP_ENOMEM;
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    cfg.cluster_namespace = "t";
    cfg.self_addr = t_addrs[index];
    cfg.members = t_addrs;
    cfg.member_count = (size_t)t_nodes;
    cfg.incarnation = inc;
    int rc = mp_node_create(env, &cfg, &p->node);
    if (rc == 0) rc = mp_node_register_type(p->node, mp_bank_account_type());
    if (rc == 0) rc = mp_node_start(p->node);
    if (rc != 0) {
        if (p->node) mp_node_free_now(p->node);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static void t_teardown(void *state)
{
    t_proc *p = state;
    mp_bank_release_node(p->node);
    mp_node_free_now(p->node);
    free(p);
}

static const mp_sim_process_ops t_ops = {t_boot, t_teardown};

typedef struct t_cluster {
    mp_sim *sim;
    int pids[T_NODES_MAX];
} t_cluster;

static void cluster_up(t_cluster *c, int nodes)
{
    mp_sim_config cfg;
    mp_sim_config_init(&cfg);
    cfg.seed = 7;
    c->sim = mp_sim_create(&cfg);
    assert_non_null(c->sim);
    t_nodes = nodes;
    for (int i = 0; i < nodes; i++) {
        c->pids[i] = mp_sim_spawn(c->sim, t_addrs[i], &t_ops, (void *)(intptr_t)i);
        assert_true(c->pids[i] >= 0);
    }
    mp_sim_run_until(c->sim, mp_sim_now(c->sim) + 100 * MP_SIM_NS_PER_MS);
    for (int i = 0; i < nodes; i++)
        assert_true(mp_sim_process_running(c->sim, c->pids[i]));
}

static void cluster_down(t_cluster *c)
{
    assert_false(mp_sim_failed(c->sim));
    mp_sim_destroy(c->sim);
    assert_int_equal(mp_bank_live_accounts(), 0);
    assert_int_equal(mp_bank_transfers_in_flight(), 0);
}

typedef struct t_reply {
    bool done;
    int status;
    char body[512];
} t_reply;

static void t_on_reply(void *ud, int status, const void *data, size_t len)
{
    t_reply *r = ud;
    assert_false(r->done);
    r->done = true;
    r->status = status;
    if (len >= sizeof r->body) len = sizeof r->body - 1;
    memcpy(r->body, data, len);
    r->body[len] = '\0';
}

static bool t_is_done(void *ud) { return ((t_reply *)ud)->done; }

/* Call `method` on account `key` from node `from`; returns the reply. */
static t_reply call(t_cluster *c, int from, const char *key, const char *method,
                    const char *payload)
{
    t_proc *p = mp_sim_process_state(c->sim, c->pids[from]);
    assert_non_null(p);
    mp_ref ref;
    assert_int_equal(mp_ref_get(p->node, MP_BANK_TYPE, key, &ref), 0);
    t_reply r;
    memset(&r, 0, sizeof r);
    assert_int_equal(mp_call(p->node, &ref, method, payload, strlen(payload),
                             NULL, t_on_reply, &r),
                     0);
    bool ok = mp_sim_run_while_not(c->sim, t_is_done, &r,
                                   mp_sim_now(c->sim) + 60 * MP_SIM_NS_PER_S);
    assert_true(ok);
    return r;
}

static void expect_ok(t_reply r, const char *want, int line)
{
    if (r.status != 0)
        fail_msg("line %d: status %s '%s'", line, mp_status_name(r.status), r.body);
    if (strcmp(r.body, want) != 0)
        fail_msg("line %d: got '%s', want '%s'", line, r.body, want);
}

static void expect_err(t_reply r, int status, const char *text, int line)
{
    if (r.status != status)
        fail_msg("line %d: status %s '%s', want %s", line, mp_status_name(r.status),
                 r.body, mp_status_name(status));
    if (text && !strstr(r.body, text))
        fail_msg("line %d: message '%s' lacks '%s'", line, r.body, text);
}

#define EXPECT_OK(r, want) expect_ok((r), (want), __LINE__)
#define EXPECT_ERR(r, st, text) expect_err((r), (st), (text), __LINE__)

static void test_protocol_basic(void **unused)
{
    t_cluster c;
    cluster_up(&c, 1);
    EXPECT_OK(call(&c, 0, "alice", "balance", "{}"), "{\"balance\":0}");
    EXPECT_OK(call(&c, 0, "alice", "deposit", "{\"op\":\"d1\",\"amount\":100}"),
              "{\"balance\":100}");
    /* The same op id again: not applied twice. */
    EXPECT_OK(call(&c, 0, "alice", "deposit", "{\"op\":\"d1\",\"amount\":100}"),
              "{\"balance\":100,\"dup\":true}");
    EXPECT_OK(call(&c, 0, "alice", "withdraw", "{\"op\":\"w1\",\"amount\":30}"),
              "{\"balance\":70}");
    EXPECT_ERR(call(&c, 0, "alice", "withdraw", "{\"op\":\"w2\",\"amount\":71}"),
               MP_EACTOR, "insufficient funds");
    EXPECT_OK(call(&c, 0, "alice", "op_status", "{\"op\":\"w1\"}"),
              "{\"applied\":true}");
    EXPECT_OK(call(&c, 0, "alice", "op_status", "{\"op\":\"w2\"}"),
              "{\"applied\":false}");
    /* A refused op is not remembered: it may succeed later. */
    EXPECT_OK(call(&c, 0, "alice", "deposit", "{\"op\":\"d2\",\"amount\":1}"),
              "{\"balance\":71}");
    EXPECT_OK(call(&c, 0, "alice", "withdraw", "{\"op\":\"w2\",\"amount\":71}"),
              "{\"balance\":0}");
    EXPECT_OK(call(&c, 0, "alice", "withdraw", "{\"op\":\"w2\",\"amount\":71}"),
              "{\"balance\":0,\"dup\":true}");
    /* Another account is independent. */
    EXPECT_OK(call(&c, 0, "bob", "balance", "{}"), "{\"balance\":0}");
    cluster_down(&c);
}

static void test_protocol_validation(void **unused)
{
    t_cluster c;
    cluster_up(&c, 1);
    static const char *const bad_deposit[] = {
        "",
        "not json",
        "[]",
        "{}",
        "{\"op\":\"x\"}",
        "{\"amount\":5}",
        "{\"op\":\"x\",\"amount\":0}",
        "{\"op\":\"x\",\"amount\":-5}",
        "{\"op\":\"x\",\"amount\":1.5}",
        "{\"op\":\"x\",\"amount\":\"5\"}",
        "{\"op\":\"x\",\"amount\":1000000000001}",
        "{\"op\":\"\",\"amount\":5}",
        "{\"op\":\"a b\",\"amount\":5}",
        "{\"op\":\"x/y\",\"amount\":5}",
        "{\"op\":7,\"amount\":5}",
        "{\"op\":\"x\",\"amount\":5,\"extra\":1}",
        "{\"op\":\"x\",\"amount\":5,\"op\":\"y\"}",
        ("{\"op\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\","
         "\"amount\":5}"), /* op over 64 characters */
    };
    for (size_t i = 0; i < sizeof bad_deposit / sizeof bad_deposit[0]; i++) {
        t_reply r = call(&c, 0, "carol", "deposit", bad_deposit[i]);
        if (r.status != MP_EINVAL)
            fail_msg("payload %zu '%s' gave %s '%s'", i, bad_deposit[i],
                     mp_status_name(r.status), r.body);
        assert_non_null(strstr(r.body, "bad request"));
    }
    EXPECT_ERR(call(&c, 0, "carol", "balance", "{\"x\":1}"), MP_EINVAL, "bad request");
    EXPECT_ERR(call(&c, 0, "carol", "op_status", "{}"), MP_EINVAL, "bad request");
    EXPECT_ERR(call(&c, 0, "carol", "transfer",
                    "{\"op\":\"t1\",\"to\":\"carol\",\"amount\":1}"),
               MP_EINVAL, "self");
    EXPECT_ERR(call(&c, 0, "carol", "transfer",
                    "{\"op\":\"t1\",\"to\":\"a\\u0001b\",\"amount\":1}"),
               MP_EINVAL, "bad request");
    EXPECT_ERR(call(&c, 0, "carol", "transfer", "{\"op\":\"t1\",\"amount\":1}"),
               MP_EINVAL, "bad request");
    EXPECT_ERR(call(&c, 0, "carol", "nosuch", "{}"), MP_ENOMETHOD, NULL);
    /* Nothing above changed the account. */
    EXPECT_OK(call(&c, 0, "carol", "balance", "{}"), "{\"balance\":0}");
    cluster_down(&c);
}

static void test_protocol_transfer(void **unused)
{
    t_cluster c;
    cluster_up(&c, 2);
    EXPECT_OK(call(&c, 0, "src", "deposit", "{\"op\":\"d\",\"amount\":50}"),
              "{\"balance\":50}");
    EXPECT_ERR(call(&c, 1, "src", "transfer",
                    "{\"op\":\"t0\",\"to\":\"dst\",\"amount\":51}"),
               MP_EACTOR, "insufficient funds");
    EXPECT_OK(call(&c, 1, "src", "transfer",
                   "{\"op\":\"t1\",\"to\":\"dst\",\"amount\":20}"),
              "{\"balance\":30}");
    EXPECT_OK(call(&c, 0, "dst", "balance", "{}"), "{\"balance\":20}");
    EXPECT_OK(call(&c, 0, "dst", "op_status", "{\"op\":\"t1.d\"}"),
              "{\"applied\":true}");
    EXPECT_OK(call(&c, 0, "src", "op_status", "{\"op\":\"t1\"}"),
              "{\"applied\":true}");
    EXPECT_OK(call(&c, 0, "src", "op_status", "{\"op\":\"t0\"}"),
              "{\"applied\":false}");
    /* Repeating the transfer id neither withdraws nor deposits again. */
    EXPECT_OK(call(&c, 1, "src", "transfer",
                   "{\"op\":\"t1\",\"to\":\"dst\",\"amount\":20}"),
              "{\"balance\":30,\"dup\":true}");
    EXPECT_OK(call(&c, 1, "dst", "balance", "{}"), "{\"balance\":20}");
    /* A chain of transfers, each from a lower to a higher name. */
    EXPECT_OK(call(&c, 0, "dst", "transfer",
                   "{\"op\":\"t2\",\"to\":\"zed\",\"amount\":20}"),
              "{\"balance\":0}");
    EXPECT_OK(call(&c, 1, "zed", "balance", "{}"), "{\"balance\":20}");
    assert_int_equal(mp_bank_transfers_in_flight(), 0);
    cluster_down(&c);
}

/* ---- the workload --------------------------------------------------------- */

static void run_seeds(int nodes, int workers, bool faults, uint64_t first,
                      uint64_t last)
{
    const mp_sim_workload *w = mp_sim_workload_find("bank");
    assert_non_null(w);
    mp_sim_run_opts o;
    mp_sim_run_opts_init(&o);
    o.faults = faults;
    o.buggify = faults;
    o.params.nodes = nodes;
    o.params.workers = workers;
    for (uint64_t seed = first; seed <= last; seed++) {
        char why[512];
        uint64_t hash = 0, events = 0;
        int rc = mp_sim_run_one(w, &o, seed, false, &hash, &events, why, sizeof why);
        if (rc != 0)
            fail_msg("bank %dx%d faults=%d seed %llu failed: %s", nodes, workers,
                     faults, (unsigned long long)seed, why);
        mp_bank_report r;
        mp_bank_last_report(&r);
        assert_int_equal(r.nodes, nodes);
        assert_int_equal(r.workers, workers);
        assert_true(r.ok > 0);
        assert_int_equal(r.final_calls, (uint64_t)r.accounts);
        assert_true(r.burst_calls >= 1000);
        assert_int_equal(mp_bank_live_accounts(), 0);
        print_message("bank %dx%d faults=%d seed %llu: %llu ops, %llu ok, %llu "
                      "refused, %llu unknown (%llu applied), %llu events\n",
                      nodes, workers, faults, (unsigned long long)seed,
                      (unsigned long long)r.ops, (unsigned long long)r.ok,
                      (unsigned long long)r.refused, (unsigned long long)r.unknown,
                      (unsigned long long)r.resolved_applied,
                      (unsigned long long)events);
    }
}

static void test_workload_1x1(void **unused)
{
    run_seeds(1, 1, false, 1, 2);
    run_seeds(1, 1, true, 1, 3);
}

static void test_workload_2x2(void **unused)
{
    run_seeds(2, 2, false, 1, 2);
    run_seeds(2, 2, true, 1, 3);
}

static void test_workload_10x10(void **unused)
{
    run_seeds(10, 10, false, 1, 1);
    run_seeds(10, 10, true, 1, 2);
}

static void test_determinism(void **unused)
{
    const mp_sim_workload *w = mp_sim_workload_find("bank");
    assert_non_null(w);
    mp_sim_run_opts o;
    mp_sim_run_opts_init(&o);
    o.params.nodes = 2;
    o.params.workers = 2;
    uint64_t h1, h2, e1, e2;
    char why[512];
    assert_int_equal(mp_sim_run_one(w, &o, 42, false, &h1, &e1, why, sizeof why), 0);
    assert_int_equal(mp_sim_run_one(w, &o, 42, false, &h2, &e2, why, sizeof why), 0);
    assert_int_equal(e1, e2);
    assert_true(h1 == h2);
}

static void placement(int nodes)
{
    const mp_sim_workload *w = mp_sim_workload_find("bank");
    mp_sim_run_opts o;
    mp_sim_run_opts_init(&o);
    o.faults = false;
    o.buggify = false;
    o.params.nodes = nodes;
    o.params.workers = nodes;
    char worst[512] = "";
    double worst_dev = 0;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        char why[512];
        uint64_t hash, events;
        int rc = mp_sim_run_one(w, &o, seed, false, &hash, &events, why, sizeof why);
        if (rc != 0) fail_msg("placement %d nodes seed %llu: %s", nodes,
                              (unsigned long long)seed, why);
        mp_bank_report r;
        mp_bank_last_report(&r);
        char line[512];
        int len = snprintf(line, sizeof line, "placement %d nodes seed %llu: max "
                                              "deviation %.1f%%, per node:",
                           nodes, (unsigned long long)seed, r.max_dev * 100.0);
        uint64_t total = 0;
        for (int i = 0; i < nodes; i++) {
            total += r.per_node[i];
            if (len > 0 && (size_t)len < sizeof line)
                len += snprintf(line + len, sizeof line - (size_t)len, " %llu",
                                (unsigned long long)r.per_node[i]);
        }
        print_message("%s\n", line);
        assert_int_equal(total, (uint64_t)r.accounts); /* every account lives */
        if (r.max_dev > worst_dev) {
            worst_dev = r.max_dev;
            snprintf(worst, sizeof worst, "%s", line);
        }
    }
    /* Judged after every seed printed its figures. */
    if (worst_dev > 0.20) fail_msg("S5 (within 20%% of the mean): %s", worst);
}

static void test_placement_3(void **unused) { placement(3); }
static void test_placement_10(void **unused) { placement(10); }

/* A failed assertion leaves its world alive; destroy it so that the next
 * test can create one. */
static int destroy_world(void **unused)
{
    mp_sim *sim = mp_sim_current();
    if (sim) mp_sim_destroy(sim);
    return 0;
}

int main(void)
{
    mp_sim_workloads_register_builtin();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_protocol_basic, destroy_world),
        cmocka_unit_test_teardown(test_protocol_validation, destroy_world),
        cmocka_unit_test_teardown(test_protocol_transfer, destroy_world),
        cmocka_unit_test_teardown(test_workload_1x1, destroy_world),
        cmocka_unit_test_teardown(test_workload_2x2, destroy_world),
        cmocka_unit_test_teardown(test_workload_10x10, destroy_world),
        cmocka_unit_test_teardown(test_determinism, destroy_world),
        cmocka_unit_test_teardown(test_placement_3, destroy_world),
        cmocka_unit_test_teardown(test_placement_10, destroy_world),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
