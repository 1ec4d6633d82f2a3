/*
 * The storage conformance suite (storage_suite.h) against a REAL
 * PostgreSQL, plus what only a shared database can show: two providers
 * ("two nodes") racing saves on the same keys get exactly one winner per
 * key, the other MP_ECONFLICT.
 *
 * The test starts its own throwaway server (scripts/pg_test_server.sh:
 * initdb in a mkdtemp directory, a free loopback port, trust auth, run as
 * the postgres user when we are root), and stops and deletes it at the
 * end. Without the postgresql package it FAILS with a clear message: a
 * silently skipped database test is a test nobody runs.
 *
 * MP_STORAGE_BENCH=1 adds the throughput/latency benchmark (1, 64, 1024
 * writers) with fsync on; it reports, never asserts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "moonpool/env.h"
#include "moonpool/env_uv.h"
#include "moonpool/storage.h"
#include "storage_suite.h"

#define MS 1000000ull
#define GUARD_NS (120000ull * MS)

static char g_conninfo[256];
static char g_dir[64];
static char g_script[1024];

typedef struct pg_fix {
    st_fix f;
} pg_fix;

static void set_flag(void *ud) { *(int *)ud = 1; }

static void uv_run_until(st_fix *f, const int *flag)
{
    int guard = 0;
    mp_timer_id g = mp_env_timer_start(f->env, GUARD_NS, set_flag, &guard);
    assert_true(g != 0);
    while (!*flag && !guard) mp_env_uv_run_once(f->env, 1);
    assert_false(guard);
    mp_env_timer_cancel(f->env, g);
}

static void close_storage(st_fix *f)
{
    if (!f->s) return;
    int closed = 0;
    mp_storage_close(f->s, set_flag, &closed);
    f->s = NULL;
    f->run_until(f, &closed);
}

static int pg_reopen(st_fix *f)
{
    close_storage(f);
    return mp_storage_postgres_open(f->env, g_conninfo, &f->s);
}

static int fix_counter;

static int pg_setup(void **state)
{
    pg_fix *p = calloc(1, sizeof *p);
    p->f.env = mp_env_uv_create(NULL, 777);
    assert_non_null(p->f.env);
    p->f.env->log_level = MP_LOG_OFF;
    p->f.run_until = uv_run_until;
    p->f.reopen = pg_reopen;
    /* Rows of every fixture share one database: a per-run unique prefix. */
    snprintf(p->f.prefix, sizeof p->f.prefix, "p%d-%d", (int)getpid(),
             ++fix_counter);
    assert_int_equal(mp_storage_postgres_open(p->f.env, g_conninfo, &p->f.s), 0);
    assert_string_equal(mp_storage_name(p->f.s), "postgres");
    *state = &p->f;
    return 0;
}

static int pg_teardown(void **state)
{
    pg_fix *p = *state;
    close_storage(&p->f);
    for (int i = 0; i < 100000; i++) {
        if (mp_env_uv_destroy(p->f.env) == MP_OK) break;
        mp_env_uv_run_once(p->f.env, 0);
        if (i == 99999) fail_msg("env never became destroyable");
    }
    free(p);
    return 0;
}

static void quiet_notice(void *arg, const char *msg) {}

static PGconn *raw_conn(const char *dbname)
{
    char ci[320];
    snprintf(ci, sizeof ci, "%s%s%s", g_conninfo, dbname ? " dbname=" : "",
             dbname ? dbname : "");
    PGconn *c = PQconnectdb(ci);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    return c;
}

static void raw_exec(PGconn *c, const char *sql, const char *key)
{
    const char *vals[1] = {key};
    PGresult *r = PQexecParams(c, sql, key ? 1 : 0, NULL, key ? vals : NULL,
                               NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

/* ---- PostgreSQL specifics ----------------------------------------------- */

/* Two nodes, each with its own provider and connection, race on the same
 * keys, issuing in opposite orders (so their batch transactions can also
 * deadlock, which the provider must retry): one winner per key. */
static void test_pg_two_nodes_race(void **state)
{
    st_fix *a = *state;
    st_fix b = *a;
    assert_int_equal(mp_storage_postgres_open(a->env, g_conninfo, &b.s), 0);
    enum { K = 16, ROUNDS = 6 };
    uint64_t etag[K] = {0};
    char key[K][96];
    for (int i = 0; i < K; i++)
        snprintf(key[i], sizeof key[i], "%s/Race::k%d", a->prefix, i);
    int wins_a = 0, wins_b = 0;
    for (int round = 0; round < ROUNDS; round++) {
        st_res ra[K], rb[K];
        memset(ra, 0, sizeof ra);
        memset(rb, 0, sizeof rb);
        for (int i = 0; i < K; i++) {
            int j = K - 1 - i;
            assert_int_equal(mp_storage_save(a->s, key[i], strlen(key[i]),
                                             "A", 1, etag[i], NULL,
                                             st_on_save, &ra[i]),
                             0);
            assert_int_equal(mp_storage_save(b.s, key[j], strlen(key[j]), "B",
                                             1, etag[j], NULL, st_on_save,
                                             &rb[j]),
                             0);
        }
        int all = 0;
        while (!all) {
            a->run_until(a, &ra[K - 1].done);
            a->run_until(a, &rb[0].done);
            all = 1;
            for (int i = 0; i < K; i++)
                if (!ra[i].done || !rb[i].done) all = 0;
        }
        for (int i = 0; i < K; i++) {
            int oka = ra[i].status == 0, okb = rb[i].status == 0;
            if (!(oka ^ okb))
                fail_msg("key %d round %d: a=%s b=%s", i, round,
                         mp_status_name(ra[i].status),
                         mp_status_name(rb[i].status));
            assert_int_equal(oka ? rb[i].status : ra[i].status, MP_ECONFLICT);
            uint64_t e = oka ? ra[i].etag : rb[i].etag;
            assert_true(e > etag[i]);
            etag[i] = e;
            wins_a += oka;
            wins_b += okb;
            st_expect(a, key[i], oka ? "A" : "B", e);
        }
    }
    assert_int_equal(wins_a + wins_b, K * ROUNDS);
    print_message("race: node A won %d, node B won %d\n", wins_a, wins_b);
    close_storage(&b);
}

static void test_pg_corrupt_row(void **state)
{
    st_fix *f = *state;
    const char *k = st_key(f, "flip");
    const char *k2 = st_key(f, "neg");
    uint64_t e = st_put(f, k, "important balance", 0);
    st_put(f, k2, "x", 0);
    PGconn *c = raw_conn(NULL);
    raw_exec(c,
             "UPDATE moonpool_state SET data = set_byte(data, 3, "
             "get_byte(data, 3) # 1) WHERE key = $1",
             k);
    raw_exec(c, "UPDATE moonpool_state SET writer_inc = -5 WHERE key = $1", k2);
    PQfinish(c);
    st_res r = {0};
    st_load(f, k, &r);
    assert_int_equal(r.status, MP_ECORRUPT);
    st_load(f, k2, &r);
    assert_int_equal(r.status, MP_ECORRUPT);
    uint64_t e2 = st_put(f, k, "repaired", e);
    st_expect(f, k, "repaired", e2);
    st_res_clear(&r);
}

static void test_pg_group_commit(void **state)
{
    st_fix *f = *state;
    enum { N = 64 };
    st_res r[N];
    memset(r, 0, sizeof r);
    mp_storage_stats s0, s1;
    mp_storage_get_stats(f->s, &s0);
    char key[96];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "%s/G::%d", f->prefix, i);
        assert_int_equal(mp_storage_save(f->s, key, strlen(key), "v", 1, 0,
                                         NULL, st_on_save, &r[i]),
                         0);
    }
    f->run_until(f, &r[N - 1].done);
    mp_storage_get_stats(f->s, &s1);
    for (int i = 0; i < N; i++) assert_int_equal(r[i].status, 0);
    assert_int_equal(s1.transactions - s0.transactions, 1);
    assert_int_equal(s1.max_batch, N);
}

static void test_pg_open_errors(void **state)
{
    (void)state;
    mp_env *env = mp_env_uv_create(NULL, 1);
    env->log_level = MP_LOG_OFF;
    mp_storage *s = (mp_storage *)&s;
    assert_int_equal(mp_storage_postgres_open(env, NULL, &s), MP_EINVAL);
    assert_null(s);
    /* Nobody listens on port 1. */
    assert_int_equal(mp_storage_postgres_open(
                         env, "host=127.0.0.1 port=1 connect_timeout=5", &s),
                     MP_ECONNREFUSED);
    assert_int_equal(mp_storage_postgres_open(env, "this is = not valid '", &s),
                     MP_ECONNREFUSED);
    /* A database whose moonpool_state has another schema. */
    PGconn *c = raw_conn(NULL);
    raw_exec(c, "DROP DATABASE IF EXISTS mp_other", NULL);
    raw_exec(c, "CREATE DATABASE mp_other", NULL);
    PQfinish(c);
    c = raw_conn("mp_other");
    raw_exec(c, "CREATE TABLE moonpool_state (key TEXT PRIMARY KEY, etag TEXT)",
             NULL);
    PQfinish(c);
    char ci[320];
    snprintf(ci, sizeof ci, "%s dbname=mp_other", g_conninfo);
    assert_int_equal(mp_storage_postgres_open(env, ci, &s), MP_EVERSION);
    assert_null(s);
    assert_int_equal(mp_env_uv_destroy(env), 0);
}

static void test_pg_bench(void **state)
{
    st_fix *f = *state;
    if (!getenv("MP_STORAGE_BENCH")) {
        skip();
        return;
    }
    st_bench_run(f, "postgres", 1, 2.0);
    st_bench_run(f, "postgres", 64, 2.0);
    st_bench_run(f, "postgres", 1024, 3.0);
}

/* ---- server ------------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int run_script(const char *args)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "sh '%s' %s", g_script, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

int main(void)
{
    /* The script sits at ../../scripts relative to this source file (an
     * absolute path in CMake builds); MP_PG_TEST_SCRIPT overrides. */
    snprintf(g_script, sizeof g_script, "%s", __FILE__);
    char *slash = strrchr(g_script, '/');
    if (slash)
        slash[1] = '\0';
    else
        g_script[0] = '\0';
    strncat(g_script, "../../scripts/pg_test_server.sh",
            sizeof g_script - strlen(g_script) - 1);
    if (getenv("MP_PG_TEST_SCRIPT"))
        snprintf(g_script, sizeof g_script, "%s", getenv("MP_PG_TEST_SCRIPT"));
    if (access(g_script, R_OK) != 0) {
        fprintf(stderr, "test_storage_pg: cannot find %s\n", g_script);
        return 1;
    }
    strcpy(g_dir, "/tmp/mp_pg_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    if (getenv("MP_STORAGE_BENCH")) setenv("MP_PG_FSYNC", "on", 1);
    int rc = -1;
    int port = -1;
    for (int attempt = 0; attempt < 3 && rc != 0 && rc != 3; attempt++) {
        port = free_port();
        char args[160];
        snprintf(args, sizeof args, "start '%s' %d", g_dir, port);
        if (attempt > 0) {
            char stop[160];
            snprintf(stop, sizeof stop, "stop '%s'", g_dir);
            run_script(stop);
            remove_dir();
            if (!mkdtemp(strcpy(g_dir, "/tmp/mp_pg_XXXXXX"))) return 1;
        }
        rc = port > 0 ? run_script(args) : -1;
    }
    if (rc != 0) {
        fprintf(stderr,
                "test_storage_pg: FAILED: could not start a PostgreSQL test "
                "server%s\n",
                rc == 3 ? ": PostgreSQL is not installed. Install the "
                          "'postgresql' package (apt-get install postgresql);"
                          " `make test` should install it with the core deps."
                        : " (see the messages above)");
        remove_dir();
        return 1;
    }
    snprintf(g_conninfo, sizeof g_conninfo,
             "host=127.0.0.1 port=%d user=moonpool dbname=moonpool_test "
             "connect_timeout=10",
             port);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(suite_key_builder),
        ST_SUITE(pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(test_pg_two_nodes_race, pg_setup,
                                        pg_teardown),
        cmocka_unit_test_setup_teardown(test_pg_corrupt_row, pg_setup,
                                        pg_teardown),
        cmocka_unit_test_setup_teardown(test_pg_group_commit, pg_setup,
                                        pg_teardown),
        cmocka_unit_test(test_pg_open_errors),
        cmocka_unit_test_setup_teardown(test_pg_bench, pg_setup, pg_teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char args[160];
    snprintf(args, sizeof args, "stop '%s'", g_dir);
    run_script(args);
    remove_dir();
    return failed;
}
