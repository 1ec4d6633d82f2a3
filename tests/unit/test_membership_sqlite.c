/*
 * Membership agents on the real env (libuv) and the SQLite provider: two
 * members join one table in a database file, one leaves gracefully, and the
 * stored table reads back as `moonpool members` prints it (the command and
 * this test share mp__mrow_format). The drifting-clock harness in
 * test_membership_agent covers the rules; this covers the real provider.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "membership/agent.h"
#include "membership/table.h"
#include "moonpool/env_uv.h"
#include "moonpool/status.h"
#include "moonpool/storage.h"

typedef struct flags {
    int joined, left, left_status;
} flags;

static void on_joined(void *ud, int status)
{
    flags *f = ud;
    assert_int_equal(status, 0);
    f->joined++;
}

static void on_left(void *ud, int status)
{
    flags *f = ud;
    f->left++;
    f->left_status = status;
}

/* Run the loop until *counter >= want; fail (not hang) after 20 s. */
static void run_until_count(mp_env *env, const int *counter, int want)
{
    uint64_t deadline = mp_env_now(env) + 20 * MP_NS_PER_SEC;
    while (*counter < want) {
        if (mp_env_now(env) > deadline) fail_msg("condition not reached within 20 s");
        mp_env_uv_run_once(env, 1);
    }
}

typedef struct loaded {
    int done, status;
    mp__mtable *t;
} loaded;

static void on_load(void *ud, int status, const void *data, size_t len, uint64_t etag)
{
    loaded *l = ud;
    l->status = status;
    assert_int_equal(status, 0);
    assert_true(etag > 0);
    char why[200] = "";
    int rc = mp__mtable_decode(data, len, l->t, why, sizeof why);
    if (rc) fail_msg("decode: %s", why);
    l->done = 1;
}

static int closed;
static void on_closed(void *ud)
{
    (void)ud;
    closed = 1;
}

static void test_sqlite_join_leave_and_print(void **state)
{
    (void)state;
    char dir[] = "/tmp/mp_membership_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/state.db", dir);
    mp_env *env = mp_env_uv_create(NULL, 7);
    assert_non_null(env);
    env->log_level = MP_LOG_ERROR;
    mp_storage *st = NULL;
    assert_int_equal(mp_storage_sqlite_open(env, path, &st), 0);

    mp__magent_config cfg;
    mp__magent_config_init(&cfg);
    cfg.lease_ns = 2 * MP_NS_PER_SEC;
    cfg.renew_ns = 500 * MP_NS_PER_MS;
    cfg.poll_ns = 200 * MP_NS_PER_MS;
    flags f = {0};
    mp__magent_callbacks cbs = {NULL, NULL, on_joined, &f};
    const char *ta[] = {"Bank", "Counter"};
    const char *tb[] = {"Bank"};
    mp__magent *a = NULL, *b = NULL;
    assert_int_equal(
        mp__magent_create(env, st, "sq", "127.0.0.1:7001", 1, ta, 2, &cfg, &cbs, &a), 0);
    assert_int_equal(
        mp__magent_create(env, st, "sq", "127.0.0.1:7002", 3, tb, 1, &cfg, &cbs, &b), 0);
    assert_int_equal(mp__magent_join(a), 0);
    assert_int_equal(mp__magent_join(b), 0);
    run_until_count(env, &f.joined, 2);
    assert_true(mp__magent_may_serve(a, mp_env_now(env)));
    assert_true(mp__magent_may_serve(b, mp_env_now(env)));
    assert_int_equal(mp__magent_leave(b, on_left, &f), 0);
    run_until_count(env, &f.left, 1);
    assert_int_equal(f.left_status, 0);
    assert_false(mp__magent_may_serve(b, mp_env_now(env)));
    mp__magent_free(a);
    mp__magent_free(b);

    loaded l = {0};
    l.t = malloc(sizeof *l.t);
    char key[64];
    int kl = mp__mtable_key(key, sizeof key, "sq");
    assert_int_equal(mp_storage_load(st, key, (size_t)kl, on_load, &l), 0);
    run_until_count(env, &l.done, 1);
    assert_int_equal(l.t->count, 2);
    char line[4096];
    assert_true(mp__mrow_format(&l.t->rows[0], line, sizeof line) > 0);
    printf("%s\n%s\n", MP__MROW_HEADER, line);
    /* "127.0.0.1:7001            1  active         ..." */
    assert_int_equal(strncmp(line, "127.0.0.1:7001            1  active   ", 38), 0);
    assert_non_null(strstr(line, "2.000s  Bank,Counter"));
    assert_true(mp__mrow_format(&l.t->rows[1], line, sizeof line) > 0);
    printf("%s\n", line);
    assert_int_equal(strncmp(line, "127.0.0.1:7002            3  dead(left)  ", 41), 0);
    assert_non_null(strstr(line, "s  Bank"));
    assert_int_equal(mp__mrow_format(&l.t->rows[1], line, 20), MP_ETOOBIG);
    free(l.t);

    mp_storage_close(st, on_closed, NULL);
    run_until_count(env, &closed, 1);
    assert_int_equal(mp_env_uv_destroy(env), 0);
    char f2[160];
    unlink(path);
    snprintf(f2, sizeof f2, "%s-wal", path);
    unlink(f2);
    snprintf(f2, sizeof f2, "%s-shm", path);
    unlink(f2);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlite_join_leave_and_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
