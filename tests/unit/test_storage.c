/*
 * Tests of the storage providers: the shared conformance suite
 * (storage_suite.h) against the memory provider, SQLite (real files in a
 * mkdtemp directory) and the simulated disk, plus what is specific to each:
 * SQLite reopen, corruption detection, group commit, open errors; the
 * simulated disk's faults, kill/restart semantics and determinism.
 *
 * (SQLite throughput/latency with 1, 64 and 1024 writers is measured by
 * `moonpool bench persist`, row "persist(provider)".)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "moonpool/env_uv.h"
#include "moonpool/env.h"
#include "moonpool/sim.h"
#include "moonpool/storage.h"
#include "storage_suite.h"

#define MS 1000000ull
#define GUARD_NS (60000ull * MS)

/* ---- real env fixtures (memory, sqlite) --------------------------------- */

typedef struct uv_fix {
    st_fix f;
    char dir[64];
    char path[128];
} uv_fix;

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

static int fix_counter;

static uv_fix *uv_fix_new(void)
{
    uv_fix *u = calloc(1, sizeof *u);
    u->f.env = mp_env_uv_create(NULL, 12345);
    assert_non_null(u->f.env);
    u->f.env->log_level = MP_LOG_OFF;
    u->f.run_until = uv_run_until;
    snprintf(u->f.prefix, sizeof u->f.prefix, "t%d", ++fix_counter);
    return u;
}

static void close_storage(st_fix *f)
{
    if (!f->s) return;
    int closed = 0;
    mp_storage_close(f->s, set_flag, &closed);
    f->s = NULL;
    f->run_until(f, &closed);
}

static void uv_fix_free(uv_fix *u)
{
    close_storage(&u->f);
    for (int i = 0; i < 100000; i++) {
        if (mp_env_uv_destroy(u->f.env) == MP_OK) break;
        mp_env_uv_run_once(u->f.env, 0);
        if (i == 99999) fail_msg("env never became destroyable");
    }
    if (u->dir[0]) {
        static const char *suffix[] = {"", "-wal", "-shm", "-journal"};
        char p[160];
        for (int i = 0; i < 4; i++) {
            snprintf(p, sizeof p, "%s%s", u->path, suffix[i]);
            unlink(p);
        }
        snprintf(p, sizeof p, "%s/other.db", u->dir);
        unlink(p);
        assert_int_equal(rmdir(u->dir), 0);
    }
    free(u);
}

static int mem_setup(void **state)
{
    uv_fix *u = uv_fix_new();
    u->f.s = mp_storage_memory_create(u->f.env);
    assert_non_null(u->f.s);
    assert_string_equal(mp_storage_name(u->f.s), "memory");
    *state = &u->f;
    return 0;
}

static int uv_teardown(void **state)
{
    uv_fix_free((uv_fix *)*state);
    return 0;
}

static int sqlite_reopen(st_fix *f)
{
    uv_fix *u = (uv_fix *)f;
    close_storage(f);
    return mp_storage_sqlite_open(f->env, u->path, &f->s);
}

static uv_fix *sqlite_fix_new(void)
{
    uv_fix *u = uv_fix_new();
    strcpy(u->dir, "/tmp/mp_storage_XXXXXX");
    assert_non_null(mkdtemp(u->dir));
    snprintf(u->path, sizeof u->path, "%s/state.db", u->dir);
    u->f.reopen = sqlite_reopen;
    return u;
}

static int sqlite_setup(void **state)
{
    uv_fix *u = sqlite_fix_new();
    assert_int_equal(mp_storage_sqlite_open(u->f.env, u->path, &u->f.s), 0);
    assert_string_equal(mp_storage_name(u->f.s), "sqlite");
    *state = &u->f;
    return 0;
}

/* ---- simulated fixture -------------------------------------------------- */

typedef struct sim_fix {
    st_fix f;
    mp_sim *sim;
    int pid;
    mp_storage_sim_config cfg;
} sim_fix;

static int sp_boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    sim_fix *sf = arg;
    sf->f.env = env;
    *state = sf;
    return 0;
}

/* A killed process loses its provider (pending callbacks never run). */
static void sp_teardown(void *state)
{
    sim_fix *sf = state;
    mp_storage_free_now(sf->f.s);
    sf->f.s = NULL;
    sf->f.env = NULL;
}

static const mp_sim_process_ops sp_ops = {sp_boot, sp_teardown, NULL};

static bool flag_pred(void *ud) { return *(const int *)ud != 0; }

static void sim_run_until(st_fix *f, const int *flag)
{
    sim_fix *sf = (sim_fix *)f;
    bool ok = mp_sim_run_while_not(sf->sim, flag_pred, (void *)flag,
                                   mp_sim_now(sf->sim) + 3600 * MP_SIM_NS_PER_S);
    assert_true(ok);
}

static void sim_boot_and_open(sim_fix *sf)
{
    while (!mp_sim_process_running(sf->sim, sf->pid))
        assert_true(mp_sim_step(sf->sim));
    assert_non_null(sf->f.env);
    sf->f.s = mp_storage_sim_create(sf->f.env,
                                    mp_sim_process_disk(sf->sim, sf->pid),
                                    &sf->cfg);
    assert_non_null(sf->f.s);
}

static int sim_reopen(st_fix *f)
{
    sim_fix *sf = (sim_fix *)f;
    close_storage(f);
    f->s = mp_storage_sim_create(f->env, mp_sim_process_disk(sf->sim, sf->pid),
                                 &sf->cfg);
    return f->s ? 0 : MP_ENOMEM;
}

static sim_fix *sim_fix_new(uint64_t seed, const mp_storage_sim_config *cfg)
{
    sim_fix *sf = calloc(1, sizeof *sf);
    mp_sim_config sc;
    mp_sim_config_init(&sc);
    sc.seed = seed;
    sf->sim = mp_sim_create(&sc);
    assert_non_null(sf->sim);
    if (cfg)
        sf->cfg = *cfg;
    else
        mp_storage_sim_config_init(&sf->cfg);
    sf->f.run_until = sim_run_until;
    sf->f.reopen = sim_reopen;
    snprintf(sf->f.prefix, sizeof sf->f.prefix, "t%d", ++fix_counter);
    sf->pid = mp_sim_spawn(sf->sim, "10.0.0.1:4500", &sp_ops, sf);
    assert_true(sf->pid >= 0);
    sim_boot_and_open(sf);
    return sf;
}

static void sim_fix_free(sim_fix *sf)
{
    if (sf->f.s && mp_sim_process_running(sf->sim, sf->pid)) close_storage(&sf->f);
    void *disk = *mp_sim_process_disk(sf->sim, sf->pid);
    mp_sim_destroy(sf->sim); /* tears the process down */
    mp_storage_sim_disk_free(disk);
    free(sf);
}

static int sim_setup(void **state)
{
    sim_fix *sf = sim_fix_new(7, NULL);
    assert_string_equal(mp_storage_name(sf->f.s), "sim");
    *state = &sf->f;
    return 0;
}

static int sim_teardown(void **state)
{
    sim_fix_free((sim_fix *)*state);
    return 0;
}

/* ---- SQLite specifics --------------------------------------------------- */

static void test_sqlite_reopen_same_state(void **state)
{
    st_fix *f = *state;
    char key[128], val[64];
    uint64_t etags[50];
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "%s/A::%d", f->prefix, i);
        snprintf(val, sizeof val, "v%d", i * i);
        etags[i] = st_put(f, key, val, 0);
    }
    /* Clear one, update one. */
    snprintf(key, sizeof key, "%s/A::%d", f->prefix, 3);
    st_res r = {0};
    st_clear(f, key, etags[3], &r);
    assert_int_equal(r.status, 0);
    snprintf(key, sizeof key, "%s/A::%d", f->prefix, 4);
    etags[4] = st_put(f, key, "updated", etags[4]);
    uint64_t max_etag = 0;
    for (int i = 0; i < 50; i++)
        if (etags[i] > max_etag) max_etag = etags[i];
    assert_int_equal(f->reopen(f), 0);
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "%s/A::%d", f->prefix, i);
        snprintf(val, sizeof val, "v%d", i * i);
        if (i == 3) {
            st_load(f, key, &r);
            assert_int_equal(r.status, 0);
            assert_int_equal(r.etag, 0);
        } else {
            st_expect(f, key, i == 4 ? "updated" : val, etags[i]);
        }
    }
    /* The etag counter survived too: new etags stay above every old one. */
    snprintf(key, sizeof key, "%s/A::%d", f->prefix, 3);
    assert_true(st_put(f, key, "again", 0) > max_etag);
    st_res_clear(&r);
}

static sqlite3 *raw_open(st_fix *f)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(((uv_fix *)f)->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static void raw_exec(sqlite3 *db, const char *sql, const char *key)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (key) sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

static void test_sqlite_corrupt_row(void **state)
{
    st_fix *f = *state;
    const char *k1 = st_key(f, "flip");
    const char *k2 = st_key(f, "type");
    const char *k3 = st_key(f, "healthy");
    uint64_t e1 = st_put(f, k1, "important balance", 0);
    uint64_t e2 = st_put(f, k2, "x", 0);
    uint64_t e3 = st_put(f, k3, "fine", 0);
    sqlite3 *db = raw_open(f);
    /* Flip one byte of the value, leave the checksum. */
    raw_exec(db,
             "UPDATE moonpool_state SET data = "
             "CAST(replace(CAST(data AS TEXT), 'balance', 'balancf') AS BLOB)"
             " WHERE key = ?1",
             k1);
    /* A value of the wrong type in the etag column. */
    raw_exec(db, "UPDATE moonpool_state SET etag = 'oops' WHERE key = ?1", k2);
    sqlite3_close(db);
    st_res r = {0};
    st_load(f, k1, &r);
    assert_int_equal(r.status, MP_ECORRUPT);
    st_load(f, k2, &r);
    assert_int_equal(r.status, MP_ECORRUPT);
    /* A save over the corrupt etag is refused too, not a blind overwrite. */
    st_save(f, k2, "y", 1, e2, &r);
    assert_int_equal(r.status, MP_ECORRUPT);
    /* Other rows are unaffected, and the corrupt one can be replaced by a
     * writer that knows its etag (the checksum covers data, not etag). */
    st_expect(f, k3, "fine", e3);
    uint64_t e1b = st_put(f, k1, "repaired", e1);
    st_expect(f, k1, "repaired", e1b);
    mp_storage_stats s;
    mp_storage_get_stats(f->s, &s);
    assert_true(s.errors >= 3);
    st_res_clear(&r);
}

static void test_sqlite_group_commit(void **state)
{
    st_fix *f = *state;
    enum { N = 64 };
    st_res r[N];
    memset(r, 0, sizeof r);
    mp_storage_stats s0, s1;
    mp_storage_get_stats(f->s, &s0);
    char key[128];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "%s/G::%d", f->prefix, i);
        assert_int_equal(mp_storage_save(f->s, key, strlen(key), "v", 1, 0,
                                         NULL, st_on_save, &r[i]),
                         0);
    }
    mp_storage_get_stats(f->s, &s1);
    assert_int_equal(s1.pending, N);
    f->run_until(f, &r[N - 1].done);
    mp_storage_get_stats(f->s, &s1);
    for (int i = 0; i < N; i++) assert_int_equal(r[i].status, 0);
    /* All 64 saves issued in one turn: one transaction. */
    assert_int_equal(s1.transactions - s0.transactions, 1);
    assert_int_equal(s1.max_batch, N);
    assert_int_equal(s1.saves - s0.saves, N);
    assert_int_equal(s1.pending, 0);

    /* Writers that re-save from their callbacks while a job runs: batches
     * form by themselves, so far fewer transactions than saves. */
    enum { W = 256, ROUNDS = 4 };
    static st_res w[W];
    uint64_t etag[W];
    memset(w, 0, sizeof w);
    for (int i = 0; i < W; i++) etag[i] = 0;
    mp_storage_get_stats(f->s, &s0);
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < W; i++) {
            snprintf(key, sizeof key, "%s/W::%d", f->prefix, i);
            memset(&w[i], 0, sizeof w[i]);
            assert_int_equal(mp_storage_save(f->s, key, strlen(key), "vv", 2,
                                             etag[i], NULL, st_on_save, &w[i]),
                             0);
            /* Let the loop turn between some issues so batches differ. */
            if (i % 64 == 63) mp_env_uv_run_once(f->env, 0);
        }
        f->run_until(f, &w[W - 1].done);
        for (int i = 0; i < W; i++) {
            assert_true(w[i].done);
            assert_int_equal(w[i].status, 0);
            etag[i] = w[i].etag;
        }
    }
    mp_storage_get_stats(f->s, &s1);
    assert_int_equal(s1.saves - s0.saves, W * ROUNDS);
    assert_true(s1.transactions - s0.transactions < (uint64_t)W * ROUNDS / 4);
}

static void test_sqlite_open_errors(void **state)
{
    (void)state;
    uv_fix *u = sqlite_fix_new();
    mp_env *env = u->f.env;
    mp_storage *s = (mp_storage *)&s; /* must be reset to NULL on error */
    assert_int_equal(mp_storage_sqlite_open(env, "", &s), MP_EINVAL);
    assert_null(s);
    assert_int_equal(mp_storage_sqlite_open(env, NULL, &s), MP_EINVAL);
    assert_int_equal(mp_storage_sqlite_open(NULL, u->path, &s), MP_EINVAL);
    assert_int_equal(mp_storage_sqlite_open(env, u->path, NULL), MP_EINVAL);
    /* Unwritable location: the directory does not exist. */
    assert_int_equal(
        mp_storage_sqlite_open(env, "/nonexistent-moonpool-dir/x/state.db", &s),
        MP_EIO);
    assert_null(s);
    /* A directory is not a database file. */
    assert_int_equal(mp_storage_sqlite_open(env, u->dir, &s), MP_EIO);
    /* A file that is not a database. */
    FILE *fp = fopen(u->path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 200; i++) fputs("this is not a sqlite database\n", fp);
    fclose(fp);
    assert_int_equal(mp_storage_sqlite_open(env, u->path, &s), MP_ECORRUPT);
    assert_null(s);
    unlink(u->path);
    /* Another application's database: refused, never modified. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(u->path, &db), SQLITE_OK);
    raw_exec(db, "CREATE TABLE accounts (id INTEGER)", NULL);
    sqlite3_close(db);
    assert_int_equal(mp_storage_sqlite_open(env, u->path, &s), MP_EVERSION);
    assert_null(s);
    unlink(u->path);
    /* A moonpool database of a future schema version. */
    assert_int_equal(mp_storage_sqlite_open(env, u->path, &s), 0);
    close_storage(&(st_fix){.s = s, .env = env, .run_until = uv_run_until});
    assert_int_equal(sqlite3_open(u->path, &db), SQLITE_OK);
    raw_exec(db, "PRAGMA user_version = 1836056578", NULL);
    sqlite3_close(db);
    assert_int_equal(mp_storage_sqlite_open(env, u->path, &s), MP_EVERSION);
    /* A moonpool version whose table lost a column. */
    assert_int_equal(sqlite3_open(u->path, &db), SQLITE_OK);
    raw_exec(db, "PRAGMA user_version = 1836056577", NULL);
    raw_exec(db, "ALTER TABLE moonpool_state DROP COLUMN crc", NULL);
    sqlite3_close(db);
    assert_int_equal(mp_storage_sqlite_open(env, u->path, &s), MP_EVERSION);
    assert_null(s);
    uv_fix_free(u);

    /* The SQLite provider needs the real env. */
    mp_sim_config sc;
    mp_sim_config_init(&sc);
    mp_sim *sim = mp_sim_create(&sc);
    sim_fix dummy = {0};
    int pid = mp_sim_spawn(sim, "10.0.0.9:1", &sp_ops, &dummy);
    while (!mp_sim_process_running(sim, pid)) mp_sim_step(sim);
    dummy.f.env->log_level = MP_LOG_OFF;
    assert_int_equal(mp_storage_sqlite_open(dummy.f.env, "/tmp/x.db", &s),
                     MP_EINVAL);
    mp_sim_destroy(sim);
}

/* Two providers on one file (two processes sharing a database): ETags stay
 * unique and a stale writer still loses. */
/* The cluster id: created with the database, the same at every open,
 * MP_SQLITE_NO_CREATE refuses a missing file (and creates none). */
static void test_sqlite_cluster_id(void **state)
{
    st_fix *f = *state;
    uv_fix *u = (uv_fix *)f;
    close_storage(f);
    uint64_t id1 = 0, id2 = 0, id3 = 0;
    assert_int_equal(mp_storage_sqlite_open_ex(f->env, u->path, 0, &f->s, &id1), 0);
    assert_true(id1 != 0);
    close_storage(f);
    assert_int_equal(mp_storage_sqlite_open_ex(f->env, u->path, MP_SQLITE_NO_CREATE, &f->s, &id2),
                     0);
    assert_true(id2 == id1);
    close_storage(f);
    char other[160];
    snprintf(other, sizeof other, "%s/other.db", u->dir);
    mp_storage *s = NULL;
    assert_int_equal(mp_storage_sqlite_open_ex(f->env, other, MP_SQLITE_NO_CREATE, &s, &id3),
                     MP_ENOTFOUND);
    assert_null(s);
    assert_int_equal(access(other, F_OK), -1);
    assert_int_equal(mp_storage_sqlite_open_ex(f->env, other, 4, &s, NULL), MP_EINVAL);
    /* A new database gets another id. */
    assert_int_equal(mp_storage_sqlite_open_ex(f->env, other, 0, &s, &id3), 0);
    assert_true(id3 != 0 && id3 != id1);
    f->s = s;
    close_storage(f);
    assert_int_equal(mp_storage_sqlite_open(f->env, u->path, &f->s), 0);
}

/* The running provider notices its files deleted or its id changed: every
 * batch fails with MP_ESTORAGE from then on (nothing is written into a
 * deleted file), loads too. */
static void unlink_suffix(uv_fix *u, const char *suffix)
{
    char p[160];
    snprintf(p, sizeof p, "%s%s", u->path, suffix);
    assert_int_equal(unlink(p), 0);
}

static void expect_lost(st_fix *f, const char *key)
{
    st_res r = {0};
    st_save(f, key, "lost", 4, 0, &r);
    assert_int_equal(r.status, MP_ESTORAGE);
    st_load(f, key, &r);
    assert_int_equal(r.status, MP_ESTORAGE);
    st_res_clear(&r);
}

static void test_sqlite_deleted_while_open(void **state)
{
    st_fix *f = *state;
    uv_fix *u = (uv_fix *)f;
    st_put(f, st_key(f, "a"), "one", 0);
    unlink_suffix(u, "");
    expect_lost(f, st_key(f, "b"));
    expect_lost(f, st_key(f, "c")); /* sticky */
}

static void test_sqlite_wal_deleted_while_open(void **state)
{
    st_fix *f = *state;
    uv_fix *u = (uv_fix *)f;
    st_put(f, st_key(f, "a"), "one", 0);
    unlink_suffix(u, "-wal");
    expect_lost(f, st_key(f, "b"));
}

static void test_sqlite_other_id_while_open(void **state)
{
    st_fix *f = *state;
    st_put(f, st_key(f, "a"), "one", 0);
    sqlite3 *db = raw_open(f);
    raw_exec(db, "UPDATE moonpool_meta SET v = 5 WHERE k = 'cluster_id'", NULL);
    sqlite3_close(db);
    st_res r = {0};
    st_save(f, st_key(f, "b"), "x", 1, 0, &r);
    assert_int_equal(r.status, MP_ESTORAGE);
    st_res_clear(&r);
}

static void test_sqlite_two_handles(void **state)
{
    st_fix *f = *state;
    uv_fix *u = (uv_fix *)f;
    st_fix g = *f;
    assert_int_equal(mp_storage_sqlite_open(f->env, u->path, &g.s), 0);
    const char *k = st_key(f, "shared");
    uint64_t e1 = st_put(f, k, "from f", 0);
    st_res r = {0};
    st_save(&g, k, "from g", 6, 0, &r);
    assert_int_equal(r.status, MP_ECONFLICT);
    uint64_t e2 = st_put(&g, k, "from g", e1);
    st_save(f, k, "stale f", 7, e1, &r);
    assert_int_equal(r.status, MP_ECONFLICT);
    st_expect(f, k, "from g", e2);
    close_storage(&g);
    st_res_clear(&r);
}

/* Two providers on one file writing at once, as node processes sharing a
 * database do: their jobs run on two threadpool threads and take turns at
 * SQLite's write lock (the provider's busy handler), and enough pages go
 * through the WAL to pass the checkpoint mark several times (checkpoints
 * then run on the providers' own threads, beside the commits). Every save
 * succeeds, and every value reads back, through the other handle and
 * after a reopen. */
static void test_sqlite_shared_heavy(void **state)
{
    st_fix *f = *state;
    uv_fix *u = (uv_fix *)f;
    st_fix g = *f;
    assert_int_equal(mp_storage_sqlite_open(f->env, u->path, &g.s), 0);
    enum { K = 400, ROUNDS = 3, VLEN = 3000 };
    st_fix *h[2] = {f, &g};
    static st_res r[2][K];
    static uint64_t etag[2][K];
    static char val[VLEN + 1];
    char key[128];
    memset(etag, 0, sizeof etag);
    for (int round = 0; round < ROUNDS; round++) {
        /* ~2 * K pages per round (each value fills most of a page). */
        memset(val, 'a' + round, VLEN);
        val[VLEN] = '\0';
        memset(r, 0, sizeof r);
        for (int i = 0; i < K; i++) {
            for (int w = 0; w < 2; w++) {
                snprintf(key, sizeof key, "%s/H%d::%d", f->prefix, w, i);
                assert_int_equal(mp_storage_save(h[w]->s, key, strlen(key), val, VLEN,
                                                 etag[w][i], NULL, st_on_save, &r[w][i]),
                                 0);
            }
            /* Let jobs start while saves keep coming: many batches. */
            if (i % 50 == 49) mp_env_uv_run_once(f->env, 0);
        }
        f->run_until(f, &r[0][K - 1].done);
        f->run_until(f, &r[1][K - 1].done);
        for (int w = 0; w < 2; w++) {
            for (int i = 0; i < K; i++) {
                assert_true(r[w][i].done);
                assert_int_equal(r[w][i].status, 0);
                etag[w][i] = r[w][i].etag;
            }
        }
    }
    /* Each handle sees what the other wrote. */
    for (int i = 0; i < K; i += 37) {
        snprintf(key, sizeof key, "%s/H0::%d", f->prefix, i);
        st_expect(&g, key, val, etag[0][i]);
        snprintf(key, sizeof key, "%s/H1::%d", f->prefix, i);
        st_expect(f, key, val, etag[1][i]);
    }
    close_storage(&g);
    assert_int_equal(f->reopen(f), 0);
    for (int w = 0; w < 2; w++) {
        for (int i = 0; i < K; i++) {
            snprintf(key, sizeof key, "%s/H%d::%d", f->prefix, w, i);
            st_expect(f, key, val, etag[w][i]);
        }
    }
    /* And the file is sound. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(u->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* Several node processes opening one new shared file at the same moment:
 * exactly one creates the schema, every one of them opens it. Children wait
 * on a pipe so that they all start together when the parent closes it. */
static void test_sqlite_concurrent_first_open(void **state)
{
    (void)state;
    enum { N = 6 };
    char dir[] = "/tmp/mp_storage_XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/shared.db", dir);
    int gate[2];
    assert_int_equal(pipe(gate), 0);
    pid_t kids[N];
    for (int i = 0; i < N; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            char b;
            close(gate[1]);
            while (read(gate[0], &b, 1) > 0) {
            }
            /* Closed in order even here: under valgrind a child that just
             * exits reports its open database and loop as leaks. */
            uv_fix *u = uv_fix_new();
            mp_storage *s = NULL;
            int rc = mp_storage_sqlite_open(u->f.env, path, &s);
            if (rc == 0 && s)
                close_storage(&(st_fix){.s = s, .env = u->f.env, .run_until = uv_run_until});
            uv_fix_free(u);
            _exit(rc == 0 && s ? 0 : 1);
        }
    }
    close(gate[0]);
    close(gate[1]); /* go */
    for (int i = 0; i < N; i++) {
        int st = 0;
        assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    uv_fix *u = uv_fix_new();
    mp_storage *s = NULL;
    assert_int_equal(mp_storage_sqlite_open(u->f.env, path, &s), 0);
    close_storage(&(st_fix){.s = s, .env = u->f.env, .run_until = uv_run_until});
    uv_fix_free(u);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- simulated disk specifics ------------------------------------------- */

static void test_sim_synced_survives_kill(void **state)
{
    sim_fix *sf = sim_fix_new(11, NULL);
    st_fix *f = &sf->f;
    const char *k = st_key(f, "durable");
    uint64_t e = st_put(f, k, "synced", 0);
    assert_int_equal(mp_sim_kill(sf->sim, sf->pid), 0);
    assert_null(f->s);
    assert_int_equal(mp_sim_restart(sf->sim, sf->pid, 10 * MS), 0);
    sim_boot_and_open(sf);
    st_expect(f, k, "synced", e);
    assert_int_equal(mp_storage_sim_disk_count(*mp_sim_process_disk(sf->sim, sf->pid)), 1);
    /* A second live provider on the same disk is refused. */
    assert_null(mp_storage_sim_create(f->env, mp_sim_process_disk(sf->sim, sf->pid), NULL));
    sim_fix_free(sf);
}

/* Unsynced writes at a kill: lost or applied, decided by the seed; both
 * outcomes happen across seeds, and the record is always whole. */
static void test_sim_unsynced_at_kill(void **state)
{
    int applied = 0, lost = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        sim_fix *sf = sim_fix_new(seed, NULL);
        st_fix *f = &sf->f;
        const char *k = st_key(f, "pending");
        uint64_t e = st_put(f, k, "old", 0);
        st_res r = {0};
        assert_int_equal(mp_storage_save(f->s, k, strlen(k), "new", 3, e,
                                         NULL, st_on_save, &r),
                         0);
        assert_int_equal(mp_sim_kill(sf->sim, sf->pid), 0);
        assert_int_equal(mp_sim_restart(sf->sim, sf->pid, MS), 0);
        sim_boot_and_open(sf);
        assert_int_equal(r.done, 0); /* the dead process heard nothing */
        st_load(f, k, &r);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.len, 3);
        if (memcmp(r.data, "new", 3) == 0) {
            assert_true(r.etag > e);
            applied++;
        } else {
            assert_memory_equal(r.data, "old", 3);
            assert_int_equal(r.etag, e);
            lost++;
        }
        st_res_clear(&r);
        sim_fix_free(sf);
    }
    assert_true(applied > 0);
    assert_true(lost > 0);
}

static void test_sim_faults(void **state)
{
    mp_storage_sim_config cfg;
    mp_storage_sim_config_init(&cfg);
    cfg.write_fail_p = 1.0;
    sim_fix *sf = sim_fix_new(3, &cfg);
    st_fix *f = &sf->f;
    const char *k = st_key(f, "f");
    st_res r = {0};
    st_save(f, k, "x", 1, 0, &r);
    assert_int_equal(r.status, MP_ESTORAGE);
    st_load(f, k, &r);
    assert_int_equal(r.etag, 0); /* not applied */
    st_clear(f, k, 0, &r);
    assert_int_equal(r.status, MP_ESTORAGE);
    sim_fix_free(sf);

    /* A failed write that still reached the disk (the ambiguous case). */
    cfg.write_fail_applied_p = 1.0;
    sf = sim_fix_new(3, &cfg);
    f = &sf->f;
    k = st_key(f, "g");
    st_save(f, k, "x", 1, 0, &r);
    assert_int_equal(r.status, MP_ESTORAGE);
    st_load(f, k, &r);
    assert_int_equal(r.status, 0);
    assert_true(r.etag > 0);
    sim_fix_free(sf);

    mp_storage_sim_config_init(&cfg);
    cfg.read_fail_p = 1.0;
    sf = sim_fix_new(3, &cfg);
    f = &sf->f;
    k = st_key(f, "h");
    uint64_t e = st_put(f, k, "x", 0);
    assert_true(e > 0);
    st_load(f, k, &r);
    assert_int_equal(r.status, MP_ESTORAGE);
    sim_fix_free(sf);

    mp_storage_sim_config_init(&cfg);
    cfg.corrupt_read_p = 1.0;
    sf = sim_fix_new(3, &cfg);
    f = &sf->f;
    st_load(f, st_key(f, "i"), &r);
    assert_int_equal(r.status, MP_ECORRUPT);
    mp_storage_stats s;
    mp_storage_get_stats(f->s, &s);
    assert_int_equal(s.errors, 1);
    sim_fix_free(sf);
    st_res_clear(&r);
}

/* Same seed, same latencies and outcomes; latency stays within bounds. */
static void run_trace(uint64_t seed, uint64_t out[20])
{
    mp_storage_sim_config cfg;
    mp_storage_sim_config_init(&cfg);
    cfg.write_fail_p = 0.3;
    sim_fix *sf = sim_fix_new(seed, &cfg);
    st_fix *f = &sf->f;
    for (int i = 0; i < 10; i++) {
        st_res r = {0};
        uint64_t t0 = mp_sim_now(sf->sim);
        st_save(f, st_key(f, "d"), "x", 1, 0, &r);
        uint64_t dt = mp_sim_now(sf->sim) - t0;
        assert_true(dt >= cfg.latency_min_ns && dt <= cfg.latency_max_ns);
        out[2 * i] = dt;
        out[2 * i + 1] = (uint64_t)(int64_t)r.status;
        if (r.status == 0) {
            st_clear(f, st_key(f, "d"), r.etag, &r);
            if (r.status != 0) {
                /* Clear failed: remove it with a fresh load. */
                st_res l = {0};
                st_load(f, st_key(f, "d"), &l);
                st_clear(f, st_key(f, "d"), l.etag, &r);
                while (r.status != 0) st_clear(f, st_key(f, "d"), l.etag, &r);
                st_res_clear(&l);
            }
        }
    }
    sim_fix_free(sf);
}

static void test_sim_deterministic(void **state)
{
    uint64_t a[20], b[20], c[20];
    run_trace(99, a);
    run_trace(99, b);
    run_trace(100, c);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(suite_key_builder),
        ST_SUITE(mem_setup, uv_teardown),
        ST_SUITE(sqlite_setup, uv_teardown),
        ST_SUITE(sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_reopen_same_state,
                                        sqlite_setup, uv_teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_corrupt_row, sqlite_setup,
                                        uv_teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_group_commit, sqlite_setup,
                                        uv_teardown),
        cmocka_unit_test(test_sqlite_open_errors),
        cmocka_unit_test_setup_teardown(test_sqlite_cluster_id, sqlite_setup, uv_teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_deleted_while_open, sqlite_setup,
                                        uv_teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_wal_deleted_while_open, sqlite_setup,
                                        uv_teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_other_id_while_open, sqlite_setup,
                                        uv_teardown),
        cmocka_unit_test(test_sqlite_concurrent_first_open),
        cmocka_unit_test_setup_teardown(test_sqlite_two_handles, sqlite_setup,
                                        uv_teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_shared_heavy, sqlite_setup,
                                        uv_teardown),
        cmocka_unit_test(test_sim_synced_survives_kill),
        cmocka_unit_test(test_sim_unsynced_at_kill),
        cmocka_unit_test(test_sim_faults),
        cmocka_unit_test(test_sim_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
