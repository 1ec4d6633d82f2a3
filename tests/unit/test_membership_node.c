/*
 * Membership in the runtime (runtime/members.c), in the simulator: nodes
 * with membership = true share the table in a never-killed "db" process's
 * simulated storage (as in test_state_sim.c), and the persisted counter
 * "Acc" tells whether state survived.
 *
 *   - a member killed for good: every actor is callable again once its
 *     lease is taken over, with every acknowledged increment kept;
 *   - a member added later (not in the others' seed lists) gets new
 *     activations;
 *   - a member paused past its lease: the others take its actors over, and
 *     when it wakes it runs no turn of them, learns it was declared dead,
 *     and a restart (new incarnation) rejoins;
 *   - a graceful shutdown leaves the table: the others take over without
 *     waiting for the lease.
 * Bounds are in simulated time: they check the protocol's timing (lease +
 * margin + polls), not the speed of this machine.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/node.h"
#include "moonpool/sim.h"
#include "moonpool/state.h"
#include "moonpool/storage.h"
#include "acc_actor.h"
#include "counter_actor.h"
#include "sim_cluster.h"

#define MS 1000000ull
#define SEC 1000000000ull
#define LEASE (500 * MS) /* peer_timeout / 2 */
#define NACTORS 30

typedef struct world {
    sc_cluster *c;
    int db_pid;
    int seeds;       /* members 0..seeds-1 are the seed list */
    int dead_calls;  /* on_declared_dead runs */
} world;

static int db_boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    (void)inc;
    world *w = arg;
    mp_storage_sim_config scfg;
    mp_storage_sim_config_init(&scfg);
    scfg.buggify = false;
    mp_storage *s = mp_storage_sim_create(env, mp_sim_process_disk(sc_sim(w->c), w->db_pid), &scfg);
    if (!s) return MP_ENOMEM;
    *state = s;
    return 0;
}

static void db_teardown(void *state) { mp_storage_free_now(state); }
static const mp_sim_process_ops db_ops = {db_boot, db_teardown, NULL};

static void on_dead(void *ud) { ((world *)ud)->dead_calls++; }

static void configure(void *ud, int idx, mp_node_config *cfg)
{
    world *w = ud;
    cfg->storage = mp_sim_process_state(sc_sim(w->c), w->db_pid);
    cfg->membership = true;
    /* The tuned setting: peer_timeout 1 s; lease (500 ms), margin
     * and poll (100 ms) are the defaults derived from it. */
    cfg->heartbeat_ns = 200 * MS;
    cfg->peer_timeout_ns = 1 * SEC;
    cfg->on_declared_dead = on_dead;
    cfg->hook_ud = w;
    /* Later members know the seeds and themselves; the seeds only know
     * each other. */
    if (idx < w->seeds) cfg->member_count = (size_t)w->seeds;
}

static bool (*g_hosts)(void *ud, int idx, const mp_actor_type *t);

static world *world_new(int members, int seeds, uint64_t seed)
{
    world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->seeds = seeds;
    sc_options o;
    sc_options_init(&o);
    o.sim.seed = seed;
    o.members = members;
    o.ns = "mb";
    o.types[0] = &acc_type;
    o.types[1] = &counter_type;
    o.hosts = g_hosts;
    o.call_timeout_ns = 2 * SEC;
    o.configure = configure;
    o.ud = w;
    w->c = sc_create(&o);
    w->db_pid = mp_sim_spawn(sc_sim(w->c), "10.0.0.100:9", &db_ops, w);
    assert_true(w->db_pid >= 0);
    mp_sim_set_killable(sc_sim(w->c), w->db_pid, false);
    sc_run_for(w->c, 1 * MS);
    sc_start(w->c);
    sc_run_for(w->c, 2 * SEC); /* joins, first views */
    return w;
}

static void world_free(world *w)
{
    int dups = 0;
    sc_live_activations(w->c, &dups);
    assert_int_equal(dups, 0);
    void *disk = *mp_sim_process_disk(sc_sim(w->c), w->db_pid);
    sc_free(w->c);
    mp_storage_sim_disk_free(disk);
    free(w);
}

static void key_of(int i, char *buf, size_t cap) { snprintf(buf, cap, "a%d", i); }

/* Call method on every actor from node `from`; returns how many answered
 * MP_OK, values in vals (may be NULL). */
static int call_all_t(world *w, int from, const char *method, int64_t *vals, uint64_t timeout);

static int call_all(world *w, int from, const char *method, int64_t *vals)
{
    return call_all_t(w, from, method, vals, 1 * SEC);
}

static int call_all_t(world *w, int from, const char *method, int64_t *vals, uint64_t timeout)
{
    sc_reply r[NACTORS];
    memset(r, 0, sizeof r);
    char key[16];
    for (int i = 0; i < NACTORS; i++) {
        key_of(i, key, sizeof key);
        r[i].sim = sc_sim(w->c);
        assert_int_equal(sc_call(w->c, from, "Acc", key, method, NULL, 0, timeout, &r[i]), MP_OK);
    }
    sc_wait(w->c, r, NACTORS);
    int ok = 0;
    for (int i = 0; i < NACTORS; i++) {
        if (r[i].status == MP_OK) ok++;
        if (vals) vals[i] = r[i].status == MP_OK ? r[i].value : -1;
    }
    return ok;
}

/* Poll `get` on every actor from `from` (250 ms timeouts, every 50 ms)
 * until all answer at once; returns the simulated time until the round
 * that succeeded began, or UINT64_MAX after `within`. */
static uint64_t until_all_callable(world *w, int from, int64_t *vals, uint64_t within)
{
    uint64_t t0 = mp_sim_now(sc_sim(w->c));
    while (mp_sim_now(sc_sim(w->c)) - t0 < within) {
        uint64_t round = mp_sim_now(sc_sim(w->c));
        if (call_all_t(w, from, "get", vals, 250 * MS) == NACTORS) return round - t0;
        sc_run_for(w->c, 50 * MS);
    }
    return UINT64_MAX;
}

static json_t *membership_of(world *w, int i)
{
    char *js = mp_node_stats_json(sc_node(w->c, i), NULL);
    assert_non_null(js);
    json_t *o = json_loads(js, 0, NULL);
    free(js);
    assert_non_null(o);
    json_t *m = json_incref(json_object_get(o, "membership"));
    json_decref(o);
    assert_non_null(m);
    return m;
}

static uint64_t mstat(world *w, int i, const char *name)
{
    json_t *m = membership_of(w, i);
    uint64_t v = (uint64_t)json_integer_value(json_object_get(m, name));
    json_decref(m);
    return v;
}

static bool mserving(world *w, int i)
{
    json_t *m = membership_of(w, i);
    bool v = json_is_true(json_object_get(m, "serving"));
    json_decref(m);
    return v;
}

static void test_kill_for_good(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        world *w = world_new(3, 3, seed);
        for (int i = 0; i < 3; i++) assert_true(mserving(w, i));
        if (seed == 1) {
            /* The table's load: 10 s of a quiet cluster, per node. */
            uint64_t r0 = mstat(w, 0, "table_reads"), w0 = mstat(w, 0, "table_writes");
            sc_run_for(w->c, 10 * SEC);
            print_message("table load per node, lease 500 ms, poll 100 ms: %.1f reads/s, "
                          "%.1f accepted writes/s\n",
                          (double)(mstat(w, 0, "table_reads") - r0) / 10.0,
                          (double)(mstat(w, 0, "table_writes") - w0) / 10.0);
        }
        assert_int_equal(call_all(w, 0, "incr", NULL), NACTORS);
        int killed = (int)(seed % 2) + 1; /* 1 or 2: node 0 keeps calling */
        assert_int_equal(sc_kill(w->c, killed), 0);
        int64_t vals[NACTORS];
        uint64_t took = until_all_callable(w, 0, vals, 30 * SEC);
        /* the bound for peer_timeout 1 s */
        print_message("seed %llu: every actor callable %.2f s after the kill\n",
                      (unsigned long long)seed, (double)took / 1e9);
        assert_true(took < 3 * SEC);
        for (int i = 0; i < NACTORS; i++) assert_int_equal(vals[i], 1);
        assert_true(mstat(w, 0, "members_taken_over") >= 1);
        /* and they keep working */
        assert_int_equal(call_all(w, 0, "incr", vals), NACTORS);
        for (int i = 0; i < NACTORS; i++) assert_int_equal(vals[i], 2);
        world_free(w);
    }
}

static void test_join_gets_placements(void **state)
{
    (void)state;
    world *w = world_new(4, 3, 7);
    /* Member 3 is not in the seeds' lists; it went down at once and joins
     * now, while the others serve. */
    assert_int_equal(sc_kill(w->c, 3), 0);
    sc_run_for(w->c, 3 * SEC); /* its first life is taken over */
    assert_int_equal(call_all(w, 0, "incr", NULL), NACTORS);
    assert_int_equal(sc_restart(w->c, 3, 0), 0);
    sc_run_for(w->c, 2 * SEC);
    assert_true(mserving(w, 3));
    mp_node_stats st;
    char key[16];
    sc_reply r[60];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 60; i++) {
        snprintf(key, sizeof key, "new%d", i);
        assert_int_equal(sc_call(w->c, i % 3, "Acc", key, "incr", NULL, 0, 2 * SEC, &r[i]), MP_OK);
    }
    sc_wait(w->c, r, 60);
    for (int i = 0; i < 60; i++) assert_int_equal(r[i].status, MP_OK);
    mp_node_get_stats(sc_node(w->c, 3), &st);
    print_message("the joined member hosts %llu of 60 new actors\n",
                  (unsigned long long)st.activations);
    assert_true(st.activations >= 5);
    /* the old actors kept their state through the rebuild */
    int64_t vals[NACTORS];
    assert_int_equal(call_all(w, 1, "get", vals), NACTORS);
    for (int i = 0; i < NACTORS; i++) assert_int_equal(vals[i], 1);
    world_free(w);
}

/* The member hosting a0 is paused for 8 leases: a0 is taken over
 * elsewhere and incremented; the paused member, awake, serves nothing,
 * is told it is dead, and its restart rejoins. */
static void test_pause_past_lease(void **state)
{
    (void)state;
    world *w = world_new(3, 3, 11);
    sc_reply r = sc_call_wait(w->c, 0, "Acc", "a0", "incr", NULL, 0, 2 * SEC, 10 * SEC);
    assert_int_equal(r.status, MP_OK);
    int host = -1;
    for (int i = 0; i < 3; i++) {
        mp_node_stats st;
        mp_node_get_stats(sc_node(w->c, i), &st);
        if (st.activations > 0) host = i;
    }
    assert_true(host >= 0);
    int caller = (host + 1) % 3;
    uint64_t wake = mp_sim_now(sc_sim(w->c)) + 8 * LEASE;
    assert_int_equal(mp_sim_pause(sc_sim(w->c), sc_pid(w->c, host), 8 * LEASE), 0);
    /* Calls fail until the take-over, then run elsewhere. */
    uint64_t t0 = mp_sim_now(sc_sim(w->c));
    int64_t v = -1;
    while (mp_sim_now(sc_sim(w->c)) - t0 < 30 * SEC) {
        r = sc_call_wait(w->c, caller, "Acc", "a0", "incr", NULL, 0, 500 * MS, 10 * SEC);
        if (r.status == MP_OK) {
            v = r.value;
            break;
        }
        sc_run_for(w->c, 100 * MS);
    }
    assert_true(v == 2 || v == 3); /* a call in doubt may have run before the pause */
    assert_true(mp_sim_now(sc_sim(w->c)) - t0 < 3 * SEC);
    int64_t after = v;
    /* The moment it wakes, before it could hear from the table: called
     * through the host itself, where the old activation of a0 (value 1)
     * lives, the answer is an error, never the stale value. */
    assert_true(mp_sim_now(sc_sim(w->c)) < wake);
    sc_run_for(w->c, wake - mp_sim_now(sc_sim(w->c)) + 1);
    assert_false(mp_sim_process_paused(sc_sim(w->c), sc_pid(w->c, host)));
    r = sc_call_wait(w->c, host, "Acc", "a0", "get", NULL, 0, 2 * SEC, 10 * SEC);
    if (r.status == MP_OK) assert_int_equal(r.value, after);
    sc_run_for(w->c, 4 * LEASE);
    assert_int_equal(w->dead_calls, 1);
    assert_false(mserving(w, host));
    /* Nothing stale anywhere: through every node, the new value. */
    for (int i = 0; i < 3; i++) {
        if (i == host) continue;
        r = sc_call_wait(w->c, i, "Acc", "a0", "get", NULL, 0, 2 * SEC, 10 * SEC);
        assert_int_equal(r.status, MP_OK);
        assert_int_equal(r.value, after);
    }
    /* Called through the woken host itself, where the old activation of
     * a0 (value 1) lived: an error, never the stale value. */
    r = sc_call_wait(w->c, host, "Acc", "a0", "get", NULL, 0, 2 * SEC, 10 * SEC);
    if (r.status == MP_OK) assert_int_equal(r.value, after);
    /* The host's process restarts as a new incarnation and rejoins. */
    assert_int_equal(sc_kill(w->c, host), 0);
    assert_int_equal(sc_restart(w->c, host, 0), 0);
    sc_run_for(w->c, 3 * LEASE);
    assert_true(mserving(w, host));
    r = sc_call_wait(w->c, host, "Acc", "a0", "get", NULL, 0, 2 * SEC, 10 * SEC);
    assert_int_equal(r.status, MP_OK);
    assert_int_equal(r.value, after);
    world_free(w);
}

/* A graceful shutdown marks the row left: the others take over at their
 * next read, well before a lease would have run out. */
static void test_graceful_leave(void **state)
{
    (void)state;
    world *w = world_new(3, 3, 5);
    assert_int_equal(call_all(w, 0, "incr", NULL), NACTORS);
    uint64_t t0 = mp_sim_now(sc_sim(w->c));
    assert_true(sc_shutdown(w->c, 2, 2 * SEC, 5 * SEC));
    int64_t vals[NACTORS];
    assert_true(until_all_callable(w, 0, vals, 30 * SEC) != UINT64_MAX);
    print_message("every actor callable %.2f s after the shutdown began\n",
                  (double)(mp_sim_now(sc_sim(w->c)) - t0) / 1e9);
    for (int i = 0; i < NACTORS; i++) assert_int_equal(vals[i], 1);
    assert_true(mp_sim_now(sc_sim(w->c)) - t0 < LEASE);
    world_free(w);
}

/* A rolling upgrade: member 2 hosts Acc but not Counter. Counters are
 * placed only on 0 and 1, Accs everywhere; a type no member hosts fails
 * "not executed". */
static bool no_counter_on_2(void *ud, int idx, const mp_actor_type *t)
{
    (void)ud;
    return !(idx == 2 && t == &counter_type);
}

static void test_types_subset(void **state)
{
    (void)state;
    g_hosts = no_counter_on_2;
    world *w = world_new(3, 3, 13);
    char key[16];
    sc_reply r[80];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 80; i++) {
        snprintf(key, sizeof key, "t%d", i);
        assert_int_equal(sc_call(w->c, i % 3, i < 40 ? "Counter" : "Acc", key, "get", NULL, 0,
                                 2 * SEC, &r[i]), MP_OK);
    }
    sc_wait(w->c, r, 80);
    for (int i = 0; i < 80; i++) assert_int_equal(r[i].status, MP_OK);
    int counters[3] = {0}, accs[3] = {0};
    for (int n = 0; n < 3; n++) {
        char *js = mp_node_stats_json(sc_node(w->c, n), NULL);
        json_t *o = json_loads(js, 0, NULL);
        free(js);
        json_t *types = json_object_get(o, "types");
        counters[n] = (int)json_integer_value(json_object_get(types, "Counter"));
        accs[n] = (int)json_integer_value(json_object_get(types, "Acc"));
        json_decref(o);
    }
    print_message("Counter on members: %d %d %d; Acc: %d %d %d\n", counters[0], counters[1],
                  counters[2], accs[0], accs[1], accs[2]);
    assert_int_equal(counters[2], 0);
    assert_int_equal(counters[0] + counters[1], 40);
    assert_true(accs[2] > 0);
    sc_reply u = sc_call_wait(w->c, 2, "Nobody", "x", "get", NULL, 0, 2 * SEC, 10 * SEC);
    assert_int_equal(u.status, MP_EUNAVAIL);
    world_free(w);
    g_hosts = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_for_good),
        cmocka_unit_test(test_join_gets_placements),
        cmocka_unit_test(test_pause_past_lease),
        cmocka_unit_test(test_graceful_leave),
        cmocka_unit_test(test_types_subset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
