/*
 * Persistent actor state in the simulator (state.h): load before
 * on_activate, persist with ETags, stale activations that can never commit,
 * ambiguous storage failures, activation failures on bad state, and the
 * hook accounting of S9 under kills.
 *
 * Storage lives in a separate, never-killed "db" process of the world (a
 * database server): every node uses that one simulated provider, so an
 * actor reactivated on another node or after a restart finds its state.
 * Calling a provider that belongs to another process's env is fine in the
 * simulator (one thread; callbacks are that process's events).
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
#include "sim_cluster.h"

#define MS 1000000ull
#define SEC 1000000000ull

/* The test actor: tests/support/acc_actor.c. */

/* ---- world: a db process and a sim_cluster of nodes ---- */

typedef struct world {
    sc_cluster *c;
    int db_pid;
    mp_storage_sim_config scfg;
    bool separate; /* each node its own one-member cluster */
    uint64_t idle_ns;
} world;

static int db_boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    world *w = arg;
    mp_storage *s = mp_storage_sim_create(
        env, mp_sim_process_disk(sc_sim(w->c), w->db_pid), &w->scfg);
    if (!s) return MP_ENOMEM;
    *state = s;
    return 0;
}

static void db_teardown(void *state) { mp_storage_free_now(state); }

static const mp_sim_process_ops db_ops = {db_boot, db_teardown, NULL};

static mp_storage *db(world *w)
{
    return mp_sim_process_state(sc_sim(w->c), w->db_pid);
}

/* Every node uses the db; `separate` gives each its own cluster. */
static void node_configure(void *ud, int idx, mp_node_config *cfg)
{
    world *w = ud;
    if (w->separate) {
        cfg->members = &sc_member_addrs(w->c)[idx];
        cfg->member_count = 1;
    }
    cfg->storage = db(w);
    if (w->idle_ns) cfg->idle_timeout_ns = w->idle_ns;
}

static world *world_new(int n, uint64_t seed, bool separate,
                        const mp_storage_sim_config *scfg)
{
    world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    g_act_ok = g_deact = g_release = g_killed_live = g_twice = 0;
    sc_options o;
    sc_options_init(&o);
    o.sim.seed = seed;
    o.members = n;
    o.ns = "st";
    o.types[0] = &acc_type;
    o.call_timeout_ns = 5 * SEC;
    o.configure = node_configure;
    o.ud = w;
    w->c = sc_create(&o);
    w->separate = separate;
    if (scfg) {
        w->scfg = *scfg;
    } else {
        mp_storage_sim_config_init(&w->scfg);
        w->scfg.buggify = false;
    }
    w->db_pid = mp_sim_spawn(sc_sim(w->c), "10.0.0.100:9", &db_ops, w);
    assert_true(w->db_pid >= 0);
    mp_sim_set_killable(sc_sim(w->c), w->db_pid, false);
    return w;
}

static void world_start(world *w)
{
    sc_run_for(w->c, 1 * MS); /* db first */
    assert_non_null(db(w));
    sc_start(w->c);
}

static mp_node *node_at(world *w, int i) { return sc_node(w->c, i); }

static void world_free(world *w)
{
    void *disk = *mp_sim_process_disk(sc_sim(w->c), w->db_pid);
    sc_free(w->c);
    mp_storage_sim_disk_free(disk);
    free(w);
}

/* Call and wait for the reply. */
static sc_reply call(world *w, int from, const char *key, const char *method,
                     const void *p, size_t len)
{
    return sc_call_wait(w->c, from, "Acc", key, method, p, len, 10 * SEC, 60 * SEC);
}

/* Direct access to the db, as a test oracle. */
typedef struct dbres {
    int calls, status;
    uint64_t etag;
    char data[256];
    size_t len;
    mp_storage_writer writer;
} dbres;

static void db_load_cb(void *ud, int status, const mp_storage_record *rec)
{
    dbres *r = ud;
    r->calls++;
    r->status = status;
    if (status == 0) {
        r->etag = rec->etag;
        r->writer = rec->writer;
        r->len = rec->len < sizeof r->data - 1 ? rec->len : sizeof r->data - 1;
        if (r->len) memcpy(r->data, rec->data, r->len);
        r->data[r->len] = 0;
    }
}

static void db_save_cb(void *ud, int status, uint64_t etag)
{
    dbres *r = ud;
    r->calls++;
    r->status = status;
    r->etag = etag;
}

static bool dbdone(void *ud) { return ((dbres *)ud)->calls > 0; }

static dbres db_load(world *w, const char *key)
{
    char k[MP_STORAGE_KEY_MAX + 1];
    int kl = mp_storage_key(k, sizeof k, "st", "Acc", key);
    assert_true(kl > 0);
    dbres r = {0};
    assert_int_equal(mp_storage_load_record(db(w), k, (size_t)kl, db_load_cb, &r), 0);
    assert_true(mp_sim_run_while_not(sc_sim(w->c), dbdone, &r, mp_sim_now(sc_sim(w->c)) + SEC));
    return r;
}

static dbres db_save(world *w, const char *key, const char *text, uint64_t etag)
{
    char k[MP_STORAGE_KEY_MAX + 1];
    int kl = mp_storage_key(k, sizeof k, "st", "Acc", key);
    dbres r = {0};
    assert_int_equal(mp_storage_save(db(w), k, (size_t)kl, text, strlen(text),
                                     etag, NULL, db_save_cb, &r), 0);
    assert_true(mp_sim_run_while_not(sc_sim(w->c), dbdone, &r, mp_sim_now(sc_sim(w->c)) + SEC));
    return r;
}

static int live_count(world *w)
{
    int total = 0;
    for (int i = 0; i < sc_members(w->c); i++) {
        mp_node *node = node_at(w, i);
        if (!node) continue;
        mp_node_stats st;
        mp_node_get_stats(node, &st);
        total += (int)st.activations;
    }
    return total;
}

/* ---- tests ---- */

/* S11: state survives deactivation and reactivation; on_activate sees it;
 * a new actor sees none; keys are namespace/type::key. */
static void test_load_before_activate(void **state)
{
    world *w = world_new(1, 1, false, NULL);
    world_start(w);
    sc_reply o = call(w, 0, "a", "get", NULL, 0);
    assert_int_equal(o.status, 0);
    assert_int_equal(g_seen_at_activate, -1); /* nothing stored */
    for (int i = 1; i <= 3; i++) {
        o = call(w, 0, "a", "incr", NULL, 0);
        assert_int_equal(o.status, 0);
        assert_int_equal(o.value, i);
    }
    dbres r = db_load(w, "a");
    assert_int_equal(r.status, 0);
    assert_true(r.etag > 0);
    assert_string_equal(r.data, "{\"n\":3}");
    assert_int_equal(r.writer.incarnation, 1);
    assert_true(r.writer.activation > 0);
    o = call(w, 0, "a", "deact", NULL, 0);
    assert_int_equal(o.status, 0);
    mp_sim_run_until(sc_sim(w->c), mp_sim_now(sc_sim(w->c)) + 100 * MS);
    assert_int_equal(live_count(w), 0);
    assert_int_equal(g_deact, 1);
    o = call(w, 0, "a", "get", NULL, 0);
    assert_int_equal(o.value, 3);
    assert_int_equal(g_seen_at_activate, 3);
    assert_int_equal(g_act_ok, 2);
    /* one persist at a time */
    o = call(w, 0, "a", "double", NULL, 0);
    assert_int_equal(o.status, 0);
    /* persist latency now shows in the stats */
    size_t len;
    char *js = mp_node_stats_json(node_at(w, 0), &len);
    assert_non_null(js);
    json_t *j = json_loads(js, 0, NULL);
    assert_true(json_is_real(json_object_get(j, "persist_p50_ms")));
    /* In milliseconds: simulated disk writes take well under a second. */
    double p50 = json_real_value(json_object_get(j, "persist_p50_ms"));
    double p99 = json_real_value(json_object_get(j, "persist_p99_ms"));
    assert_true(p50 > 0 && p50 <= p99 && p99 < 1000.0);
    assert_true(json_integer_value(json_object_get(j, "persists")) >= 4);
    assert_true(json_integer_value(json_object_get(j, "state_loads")) >= 2);
    json_decref(j);
    free(js);
    world_free(w);
}

/* Undecodable state fails the activation with a clear message; nothing
 * remains; once the state is fixed, the next message activates. */
static void test_bad_state_fails_activation(void **state)
{
    world *w = world_new(1, 2, false, NULL);
    world_start(w);
    dbres s = db_save(w, "b", "this is not json", 0);
    assert_int_equal(s.status, 0);
    sc_reply o = call(w, 0, "b", "get", NULL, 0);
    assert_int_equal(o.status, MP_EACTIVATION);
    assert_non_null(strstr(o.text, "does not decode"));
    assert_int_equal(live_count(w), 0);
    assert_int_equal(g_act_ok, 0);
    assert_int_equal(g_release, 1); /* the instance was released */
    mp_node_stats st;
    mp_node_get_stats(node_at(w, 0), &st);
    assert_int_equal(st.state_load_errors, 1);
    assert_int_equal(st.activation_failures, 1);
    /* again: still failing (tries anew) */
    o = call(w, 0, "b", "get", NULL, 0);
    assert_int_equal(o.status, MP_EACTIVATION);
    s = db_save(w, "b", "{\"n\":41}", s.etag);
    assert_int_equal(s.status, 0);
    o = call(w, 0, "b", "incr", NULL, 0);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.value, 42);
    world_free(w);
}

/* A key whose escaped storage key is longer than MP_STORAGE_KEY_MAX: its
 * activation fails with a text naming the limit, not "out of memory". */
static void test_overlong_storage_key_fails_activation_clearly(void **state)
{
    world *w = world_new(1, 2, false, NULL);
    world_start(w);
    char key[201];
    memset(key, '~', 200); /* each '~' escapes to 3 bytes: 600 > 512 */
    key[200] = '\0';
    sc_reply o = call(w, 0, key, "get", NULL, 0);
    assert_int_equal(o.status, MP_EACTIVATION);
    assert_non_null(strstr(o.text, "MP_STORAGE_KEY_MAX"));
    assert_null(strstr(o.text, "memory"));
    assert_int_equal(live_count(w), 0);
    world_free(w);
}

/* Two activations of one actor (two clusters sharing one database: the
 * directory cannot prevent it): the stale one can never commit. */
static void test_stale_activation_conflict(void **state)
{
    world *w = world_new(2, 3, true, NULL);
    world_start(w);
    sc_reply a = call(w, 0, "x", "get", NULL, 0);
    sc_reply b = call(w, 1, "x", "get", NULL, 0);
    assert_int_equal(a.status, 0);
    assert_int_equal(b.status, 0);
    assert_int_equal(live_count(w), 2); /* both loaded "none" */
    a = call(w, 0, "x", "incr", NULL, 0);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.value, 1);
    b = call(w, 1, "x", "incr", NULL, 0);
    assert_int_equal(b.status, MP_ECONFLICT);
    /* the stale one was deactivated; its next activation reloads */
    mp_sim_run_until(sc_sim(w->c), mp_sim_now(sc_sim(w->c)) + 100 * MS);
    mp_node_stats st;
    mp_node_get_stats(node_at(w, 1), &st);
    assert_int_equal(st.activations, 0);
    b = call(w, 1, "x", "incr", NULL, 0);
    assert_int_equal(b.status, 0);
    assert_int_equal(b.value, 2);
    /* now node 0's activation is the stale one */
    a = call(w, 0, "x", "incr", NULL, 0);
    assert_int_equal(a.status, MP_ECONFLICT);
    dbres r = db_load(w, "x");
    assert_string_equal(r.data, "{\"n\":2}");
    assert_int_equal(g_twice, 0);
    world_free(w);
}

/* Ambiguous write failures (some landed, some not): the activation keeps
 * its memory, reloads the ETag and goes on; it never conflicts with
 * itself, and the final stored value is its memory's. */
static void test_estorage_reload(void **state)
{
    mp_storage_sim_config sc;
    mp_storage_sim_config_init(&sc);
    sc.buggify = false;
    sc.write_fail_p = 0.4;
    sc.write_fail_applied_p = 0.5;
    world *w = world_new(1, 4, false, &sc);
    world_start(w);
    int ok = 0, failed = 0;
    int64_t last = 0;
    for (int i = 0; i < 60; i++) {
        sc_reply o = call(w, 0, "e", "incr", NULL, 0);
        if (o.status == 0) {
            ok++;
            last = o.value;
            assert_int_equal(o.value, i + 1); /* memory keeps every incr */
        } else {
            assert_int_equal(o.status, MP_ESTORAGE);
            failed++;
        }
    }
    assert_true(ok > 0 && failed > 0);
    /* make the last one stick, then compare with the db */
    sc_reply o;
    do {
        o = call(w, 0, "e", "incr", NULL, 0);
        assert_true(o.status == 0 || o.status == MP_ESTORAGE);
    } while (o.status != 0);
    last = o.value;
    dbres r = db_load(w, "e");
    char want[32];
    snprintf(want, sizeof want, "{\"n\":%lld}", (long long)last);
    assert_string_equal(r.data, want);
    world_free(w);
}

/* A failing storage read fails the activation (MP_EACTIVATION, "state
 * load"); with deactivate-on-failure the state on disk stays the truth. */
static void test_load_error(void **state)
{
    mp_storage_sim_config sc;
    mp_storage_sim_config_init(&sc);
    sc.buggify = false;
    sc.read_fail_p = 1.0;
    world *w = world_new(1, 5, false, &sc);
    world_start(w);
    sc_reply o = call(w, 0, "l", "get", NULL, 0);
    assert_int_equal(o.status, MP_EACTIVATION);
    assert_non_null(strstr(o.text, "state load"));
    assert_int_equal(live_count(w), 0);
    assert_int_equal(g_act_ok, 0);
    world_free(w);
}

/* S9 under kills: every activation whose on_activate succeeded ran
 * on_deactivate exactly once, unless its process was killed; every
 * instance was released exactly once. Idle deactivation (short idle time)
 * and reactivation with state on other nodes run all along. */
typedef struct traffic {
    world *w;
    sc_reply o[64];
    int issued, done_before;
    uint64_t stop_at;
} traffic;

static void traffic_tick(void *ud);

static void traffic_call(traffic *t, int slot)
{
    world *w = t->w;
    int from = (int)mp_sim_random_below(sc_sim(w->c), (uint64_t)sc_members(w->c));
    mp_node *node = node_at(w, from);
    if (!node) return;
    char key[16];
    snprintf(key, sizeof key, "k%d", (int)mp_sim_random_below(sc_sim(w->c), 20));
    mp_ref r;
    mp_ref_get(node, "Acc", key, &r);
    mp_call_opts opts = {.timeout_ns = 2 * SEC};
    static const uint8_t deact = 1;
    memset(&t->o[slot], 0, sizeof t->o[slot]);
    if (mp_call(node, &r, "incr", &deact, 1, &opts, sc_on_reply, &t->o[slot]) == 0)
        t->issued++;
}

static void traffic_tick(void *ud)
{
    traffic *t = ud;
    world *w = t->w;
    if (mp_sim_now(sc_sim(w->c)) >= t->stop_at) return;
    for (int i = 0; i < 4; i++) traffic_call(t, (int)mp_sim_random_below(sc_sim(w->c), 64));
    /* sometimes kill a node and restart it */
    if (mp_sim_random_below(sc_sim(w->c), 40) == 0) {
        int k = (int)mp_sim_random_below(sc_sim(w->c), (uint64_t)sc_members(w->c));
        if (mp_sim_process_running(sc_sim(w->c), sc_pid(w->c, k))) {
            mp_sim_kill(sc_sim(w->c), sc_pid(w->c, k));
            mp_sim_restart(sc_sim(w->c), sc_pid(w->c, k), 300 * MS);
        }
    }
    mp_sim_schedule(sc_sim(w->c), 50 * MS, traffic_tick, t);
}

static void test_hooks_under_kills(void **state)
{
    for (uint64_t seed = 10; seed < 14; seed++) {
        mp_storage_sim_config sc;
        mp_storage_sim_config_init(&sc);
        sc.write_fail_p = 0.05;
        sc.write_fail_applied_p = 0.5;
        world *w = world_new(3, seed, false, &sc);
        w->idle_ns = 500 * MS;
        world_start(w);
        static traffic t;
        memset(&t, 0, sizeof t);
        t.w = w;
        t.stop_at = mp_sim_now(sc_sim(w->c)) + 20 * SEC;
        mp_sim_schedule(sc_sim(w->c), 1 * MS, traffic_tick, &t);
        mp_sim_run_until(sc_sim(w->c), t.stop_at + 10 * SEC);
        assert_true(t.issued > 100);
        assert_true(g_act_ok > 20);
        /* everything idle by now: only kills left hooks unrun so far */
        assert_int_equal(g_act_ok, g_deact + g_killed_live);
        assert_int_equal(g_twice, 0);
        world_free(w); /* teardown = kill of the live ones */
        /* every instance released, failed and lost-race ones included */
        assert_true(g_release >= g_act_ok);
        assert_int_equal(g_act_ok, g_deact + g_killed_live);
        assert_int_equal(g_twice, 0);
    }
}


/* A graceful shutdown while a persist is in flight: the node waits for the
 * storage operation before freeing itself (no callback into freed memory),
 * the handler's persist callback does not run after on_deactivate, and
 * the release hook runs. */
static int idle_boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    *state = arg;
    return 0;
}
static void idle_teardown(void *state) {}
static const mp_sim_process_ops idle_ops = {idle_boot, idle_teardown, NULL};

static void shut_cb(void *ud) { (*(int *)ud)++; }

static void test_shutdown_waits_for_storage(void **state)
{
    mp_storage_sim_config sc;
    mp_storage_sim_config_init(&sc);
    sc.buggify = false;
    sc.latency_min_ns = 400 * MS;
    sc.latency_max_ns = 400 * MS;
    world *w = world_new(0, 6, false, &sc);
    world_start(w);
    static int dummy;
    int hpid = mp_sim_spawn(sc_sim(w->c), "10.0.0.50:1", &idle_ops, &dummy);
    assert_true(hpid >= 0);
    mp_sim_run_until(sc_sim(w->c), mp_sim_now(sc_sim(w->c)) + 1 * MS);
    mp_env *env = mp_sim_process_env(sc_sim(w->c), hpid);
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    const char *m[] = {"10.0.0.50:1"};
    cfg.cluster_namespace = "st";
    cfg.self_addr = m[0];
    cfg.members = m;
    cfg.member_count = 1;
    cfg.storage = db(w);
    mp_node *node;
    assert_int_equal(mp_node_create(env, &cfg, &node), MP_OK);
    assert_int_equal(mp_node_register_type(node, &acc_type), MP_OK);
    assert_int_equal(mp_node_start(node), MP_OK);
    mp_ref r;
    mp_ref_get(node, "Acc", "s", &r);
    sc_reply o = {0};
    assert_int_equal(mp_call(node, &r, "incr", NULL, 0, NULL, sc_on_reply, &o), MP_OK);
    /* load (400 ms) done, persist (400 ms) in flight */
    mp_sim_run_until(sc_sim(w->c), mp_sim_now(sc_sim(w->c)) + 600 * MS);
    assert_int_equal(g_act_ok, 1);
    assert_int_equal(o.calls, 0);
    int shut = 0;
    mp_node_shutdown(node, 50 * MS, shut_cb, &shut);
    mp_sim_run_until(sc_sim(w->c), mp_sim_now(sc_sim(w->c)) + 100 * MS);
    assert_int_equal(shut, 0);      /* still waiting for the save */
    assert_int_equal(g_deact, 1);   /* hooks ran at the deadline */
    assert_int_equal(o.calls, 1);   /* the caller got MP_ECLOSED */
    assert_int_equal(o.status, MP_ECLOSED);
    mp_sim_run_until(sc_sim(w->c), mp_sim_now(sc_sim(w->c)) + 1 * SEC);
    assert_int_equal(shut, 1);      /* released once the save completed */
    assert_int_equal(g_release, 1);
    /* the save itself landed: the next activation sees it */
    dbres rr = db_load(w, "s");
    assert_string_equal(rr.data, "{\"n\":1}");
    world_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_before_activate),
        cmocka_unit_test(test_bad_state_fails_activation),
        cmocka_unit_test(test_overlong_storage_key_fails_activation_clearly),
        cmocka_unit_test(test_stale_activation_conflict),
        cmocka_unit_test(test_estorage_reload),
        cmocka_unit_test(test_load_error),
        cmocka_unit_test(test_hooks_under_kills),
        cmocka_unit_test(test_shutdown_waits_for_storage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
