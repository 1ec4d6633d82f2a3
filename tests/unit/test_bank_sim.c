/*
 * Tests of the BankAccount actor (examples/bank) and of the `bank`
 * simulation workload (workloads/bank.c).
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
#include "sim_cluster.h"

/* ---- a tiny cluster for protocol tests (sim_cluster) ---------------------- */

static void release_bank_node(void *ud, mp_node *node) { mp_bank_release_node(node); }

static sc_cluster *cluster_up(int nodes)
{
    sc_options o;
    sc_options_init(&o);
    o.sim.seed = 7;
    o.sim.log_level = MP_LOG_WARN; /* mp_sim_config_init's level */
    o.members = nodes;
    o.addr_net = "10.0.9.";
    o.addr_port = 4600;
    o.types[0] = mp_bank_account_type();
    o.boot_ns = 100 * MP_SIM_NS_PER_MS;
    o.before_free = release_bank_node;
    sc_cluster *c = sc_create(&o);
    sc_start(c);
    return c;
}

static void cluster_down(sc_cluster *c)
{
    sc_free(c);
    assert_int_equal(mp_bank_live_accounts(), 0);
    assert_int_equal(mp_bank_transfers_in_flight(), 0);
}

/* Call `method` on account `key` from node `from`; returns the reply. */
static sc_reply call(sc_cluster *c, int from, const char *key, const char *method,
                     const char *payload)
{
    return sc_call_wait(c, from, MP_BANK_TYPE, key, method, payload, strlen(payload),
                        0, 60 * MP_SIM_NS_PER_S);
}

static void expect_ok(sc_reply r, const char *want, int line)
{
    if (r.status != 0)
        fail_msg("line %d: status %s '%s'", line, mp_status_name(r.status), r.text);
    if (strcmp(r.text, want) != 0)
        fail_msg("line %d: got '%s', want '%s'", line, r.text, want);
}

static void expect_err(sc_reply r, int status, const char *text, int line)
{
    if (r.status != status)
        fail_msg("line %d: status %s '%s', want %s", line, mp_status_name(r.status),
                 r.text, mp_status_name(status));
    if (text && !strstr(r.text, text))
        fail_msg("line %d: message '%s' lacks '%s'", line, r.text, text);
}

#define EXPECT_OK(r, want) expect_ok((r), (want), __LINE__)
#define EXPECT_ERR(r, st, text) expect_err((r), (st), (text), __LINE__)

static void test_account_ops_apply_once_and_refusals_are_forgotten(void **unused)
{
    sc_cluster *c = cluster_up(1);
    EXPECT_OK(call(c, 0, "alice", "balance", "{}"), "{\"balance\":0}");
    EXPECT_OK(call(c, 0, "alice", "deposit", "{\"op\":\"d1\",\"amount\":100}"),
              "{\"balance\":100}");
    /* The same op id again: not applied twice. */
    EXPECT_OK(call(c, 0, "alice", "deposit", "{\"op\":\"d1\",\"amount\":100}"),
              "{\"balance\":100,\"dup\":true}");
    EXPECT_OK(call(c, 0, "alice", "withdraw", "{\"op\":\"w1\",\"amount\":30}"),
              "{\"balance\":70}");
    EXPECT_ERR(call(c, 0, "alice", "withdraw", "{\"op\":\"w2\",\"amount\":71}"),
               MP_EACTOR, "insufficient funds");
    EXPECT_OK(call(c, 0, "alice", "op_status", "{\"op\":\"w1\"}"),
              "{\"applied\":true}");
    EXPECT_OK(call(c, 0, "alice", "op_status", "{\"op\":\"w2\"}"),
              "{\"applied\":false}");
    /* A refused op is not remembered: it may succeed later. */
    EXPECT_OK(call(c, 0, "alice", "deposit", "{\"op\":\"d2\",\"amount\":1}"),
              "{\"balance\":71}");
    EXPECT_OK(call(c, 0, "alice", "withdraw", "{\"op\":\"w2\",\"amount\":71}"),
              "{\"balance\":0}");
    EXPECT_OK(call(c, 0, "alice", "withdraw", "{\"op\":\"w2\",\"amount\":71}"),
              "{\"balance\":0,\"dup\":true}");
    /* Another account is independent. */
    EXPECT_OK(call(c, 0, "bob", "balance", "{}"), "{\"balance\":0}");
    cluster_down(c);
}

static void test_malformed_requests_are_refused_without_effect(void **unused)
{
    sc_cluster *c = cluster_up(1);
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
        sc_reply r = call(c, 0, "carol", "deposit", bad_deposit[i]);
        if (r.status != MP_EINVAL)
            fail_msg("payload %zu '%s' gave %s '%s'", i, bad_deposit[i],
                     mp_status_name(r.status), r.text);
        assert_non_null(strstr(r.text, "bad request"));
    }
    EXPECT_ERR(call(c, 0, "carol", "balance", "{\"x\":1}"), MP_EINVAL, "bad request");
    EXPECT_ERR(call(c, 0, "carol", "op_status", "{}"), MP_EINVAL, "bad request");
    EXPECT_ERR(call(c, 0, "carol", "transfer",
                    "{\"op\":\"t1\",\"to\":\"carol\",\"amount\":1}"),
               MP_EINVAL, "self");
    EXPECT_ERR(call(c, 0, "carol", "transfer",
                    "{\"op\":\"t1\",\"to\":\"a\\u0001b\",\"amount\":1}"),
               MP_EINVAL, "bad request");
    EXPECT_ERR(call(c, 0, "carol", "transfer", "{\"op\":\"t1\",\"amount\":1}"),
               MP_EINVAL, "bad request");
    EXPECT_ERR(call(c, 0, "carol", "nosuch", "{}"), MP_ENOMETHOD, NULL);
    /* Nothing above changed the account. */
    EXPECT_OK(call(c, 0, "carol", "balance", "{}"), "{\"balance\":0}");
    cluster_down(c);
}

static void test_transfers_move_funds_exactly_once(void **unused)
{
    sc_cluster *c = cluster_up(2);
    EXPECT_OK(call(c, 0, "src", "deposit", "{\"op\":\"d\",\"amount\":50}"),
              "{\"balance\":50}");
    EXPECT_ERR(call(c, 1, "src", "transfer",
                    "{\"op\":\"t0\",\"to\":\"dst\",\"amount\":51}"),
               MP_EACTOR, "insufficient funds");
    EXPECT_OK(call(c, 1, "src", "transfer",
                   "{\"op\":\"t1\",\"to\":\"dst\",\"amount\":20}"),
              "{\"balance\":30}");
    EXPECT_OK(call(c, 0, "dst", "balance", "{}"), "{\"balance\":20}");
    EXPECT_OK(call(c, 0, "dst", "op_status", "{\"op\":\"t1.d\"}"),
              "{\"applied\":true}");
    EXPECT_OK(call(c, 0, "src", "op_status", "{\"op\":\"t1\"}"),
              "{\"applied\":true}");
    EXPECT_OK(call(c, 0, "src", "op_status", "{\"op\":\"t0\"}"),
              "{\"applied\":false}");
    /* Repeating the transfer id neither withdraws nor deposits again. */
    EXPECT_OK(call(c, 1, "src", "transfer",
                   "{\"op\":\"t1\",\"to\":\"dst\",\"amount\":20}"),
              "{\"balance\":30,\"dup\":true}");
    EXPECT_OK(call(c, 1, "dst", "balance", "{}"), "{\"balance\":20}");
    /* A chain of transfers, each from a lower to a higher name. */
    EXPECT_OK(call(c, 0, "dst", "transfer",
                   "{\"op\":\"t2\",\"to\":\"zed\",\"amount\":20}"),
              "{\"balance\":0}");
    EXPECT_OK(call(c, 1, "zed", "balance", "{}"), "{\"balance\":20}");
    assert_int_equal(mp_bank_transfers_in_flight(), 0);
    cluster_down(c);
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

static void test_workload_1x1_passes_its_ledger_checks(void **unused)
{
    run_seeds(1, 1, false, 1, 2);
    run_seeds(1, 1, true, 1, 3);
}

static void test_workload_2x2_passes_its_ledger_checks(void **unused)
{
    run_seeds(2, 2, false, 1, 2);
    run_seeds(2, 2, true, 1, 3);
}

static void test_workload_10x10_passes_its_ledger_checks(void **unused)
{
    run_seeds(10, 10, false, 1, 1);
    run_seeds(10, 10, true, 1, 2);
}

static void test_same_seed_gives_the_same_trace(void **unused)
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

static void test_placement_within_20_percent_on_3_nodes(void **unused) { placement(3); }
static void test_placement_within_20_percent_on_10_nodes(void **unused) { placement(10); }

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
        cmocka_unit_test_teardown(test_account_ops_apply_once_and_refusals_are_forgotten, destroy_world),
        cmocka_unit_test_teardown(test_malformed_requests_are_refused_without_effect, destroy_world),
        cmocka_unit_test_teardown(test_transfers_move_funds_exactly_once, destroy_world),
        cmocka_unit_test_teardown(test_workload_1x1_passes_its_ledger_checks, destroy_world),
        cmocka_unit_test_teardown(test_workload_2x2_passes_its_ledger_checks, destroy_world),
        cmocka_unit_test_teardown(test_workload_10x10_passes_its_ledger_checks, destroy_world),
        cmocka_unit_test_teardown(test_same_seed_gives_the_same_trace, destroy_world),
        cmocka_unit_test_teardown(test_placement_within_20_percent_on_3_nodes, destroy_world),
        cmocka_unit_test_teardown(test_placement_within_20_percent_on_10_nodes, destroy_world),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
