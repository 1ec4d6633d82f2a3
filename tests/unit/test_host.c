/*
 * Unit tests of the process host (src/host/run.c): the incarnation file
 * and directory creation, which decide whether a restarted node is told
 * apart from its previous life, and mp_node_run's refusal of bad
 * arguments and configs (exit status 2 before anything is created).
 * The running node itself (signals, ready line, shutdown) is covered by the
 * cluster tests (tests/cluster/), which use real processes.
 *
 * Tests may use the OS: each works in its own mkdtemp directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moonpool/host.h"
#include "moonpool/status.h"

static char *make_tmp(void)
{
    char *dir = strdup("/tmp/mp-test-host.XXXXXX");
    assert_non_null(dir);
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void read_text(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void test_incarnation_counts_up(void **state)
{
    (void)state;
    char *tmp = make_tmp();
    char dir[256], err[256], path[512], text[64];
    /* Nested, missing directories are created. */
    snprintf(dir, sizeof dir, "%s/a/b/c", tmp);
    uint32_t inc = 0;
    assert_int_equal(mp_host_next_incarnation(dir, "127.0.0.1:7001", &inc, err, sizeof err), 0);
    assert_int_equal(inc, 1);
    assert_int_equal(mp_host_next_incarnation(dir, "127.0.0.1:7001", &inc, err, sizeof err), 0);
    assert_int_equal(inc, 2);
    assert_int_equal(mp_host_next_incarnation(dir, "127.0.0.1:7001", &inc, err, sizeof err), 0);
    assert_int_equal(inc, 3);
    /* Another address in the same directory has its own counter. */
    assert_int_equal(mp_host_next_incarnation(dir, "127.0.0.1:7002", &inc, err, sizeof err), 0);
    assert_int_equal(inc, 1);
    /* The file is plain text, named after the address, no temp file left. */
    snprintf(path, sizeof path, "%s/incarnation.127.0.0.1_7001", dir);
    read_text(path, text, sizeof text);
    assert_string_equal(text, "3\n");
    snprintf(path, sizeof path, "%s/incarnation.127.0.0.1_7001.tmp", dir);
    assert_int_not_equal(access(path, F_OK), 0);
    rm_rf(tmp);
    free(tmp);
}

static void test_incarnation_refuses_garbage(void **state)
{
    (void)state;
    char *tmp = make_tmp();
    char err[256], path[512];
    uint32_t inc = 77;
    snprintf(path, sizeof path, "%s/incarnation.h_1", tmp);
    const char *bad[] = {"", "abc\n", "12x\n", "-3\n", "99999999999\n", "4294967295\n",
                         "7\n\n", " 7\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(path, bad[i]);
        err[0] = '\0';
        assert_int_equal(mp_host_next_incarnation(tmp, "h:1", &inc, err, sizeof err),
                         MP_ECORRUPT);
        assert_non_null(strstr(err, path));
        assert_int_equal(inc, 77); /* untouched on error */
    }
    /* Without a trailing newline is fine; the largest usable value too. */
    write_text(path, "41");
    assert_int_equal(mp_host_next_incarnation(tmp, "h:1", &inc, err, sizeof err), 0);
    assert_int_equal(inc, 42);
    write_text(path, "4294967294\n");
    assert_int_equal(mp_host_next_incarnation(tmp, "h:1", &inc, err, sizeof err), 0);
    assert_int_equal(inc, 4294967295u);
    assert_int_equal(mp_host_next_incarnation(tmp, "h:1", &inc, err, sizeof err), MP_ECORRUPT);
    rm_rf(tmp);
    free(tmp);
}

static void test_incarnation_bad_args(void **state)
{
    (void)state;
    char err[256];
    uint32_t inc;
    assert_int_equal(mp_host_next_incarnation(NULL, "a:1", &inc, err, sizeof err), MP_EINVAL);
    assert_int_equal(mp_host_next_incarnation("/tmp", "", &inc, err, sizeof err), MP_EINVAL);
    assert_int_equal(mp_host_next_incarnation("/tmp", "a:1", NULL, NULL, 0), MP_EINVAL);
    /* A file where the directory should be. */
    char *tmp = make_tmp();
    char file[300];
    snprintf(file, sizeof file, "%s/f", tmp);
    write_text(file, "x");
    assert_int_equal(mp_host_next_incarnation(file, "a:1", &inc, err, sizeof err), MP_EIO);
    char sub[320];
    snprintf(sub, sizeof sub, "%s/sub", file);
    assert_int_equal(mp_host_mkdirs(sub, err, sizeof err), MP_EIO);
    assert_non_null(strstr(err, "cannot create directory"));
    assert_int_equal(mp_host_mkdirs("", err, sizeof err), MP_EINVAL);
    /* Existing directories, trailing and doubled slashes are fine. */
    snprintf(sub, sizeof sub, "%s//x/y/", tmp);
    assert_int_equal(mp_host_mkdirs(sub, err, sizeof err), 0);
    assert_int_equal(mp_host_mkdirs(sub, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    rm_rf(tmp);
    free(tmp);
}

/* The secret file: a private regular file of 1..4096 bytes; one trailing
 * newline ignored; everything else refused with the path in the message. */
static void test_secret_file(void **state)
{
    char *dir = make_tmp();
    char path[256], err[512];
    uint8_t k1[MP_ENV_KEY_LEN], k2[MP_ENV_KEY_LEN];
    snprintf(path, sizeof path, "%s/secret", dir);
    write_text(path, "hunter2\n");
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(mp_host_load_secret(path, k1, err, sizeof err), MP_OK);
    write_text(path, "hunter2");
    assert_int_equal(mp_host_load_secret(path, k2, err, sizeof err), MP_OK);
    assert_memory_equal(k1, k2, sizeof k1);
    write_text(path, "hunter3");
    assert_int_equal(mp_host_load_secret(path, k2, err, sizeof err), MP_OK);
    assert_memory_not_equal(k1, k2, sizeof k1);
    /* Group or others may read or write: refused, with the mode. */
    const mode_t bad[] = {0640, 0620, 0604, 0602, 0666};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chmod(path, bad[i]), 0);
        assert_int_equal(mp_host_load_secret(path, k2, err, sizeof err), MP_EINVAL);
        assert_non_null(strstr(err, path));
        assert_non_null(strstr(err, "chmod 600"));
    }
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(mp_host_load_secret(path, k2, err, sizeof err), MP_OK);
    assert_int_equal(chmod(path, 0600), 0);
    write_text(path, "\n");
    assert_int_equal(mp_host_load_secret(path, k2, err, sizeof err), MP_EINVAL);
    assert_non_null(strstr(err, "empty"));
    char *big = malloc(MP_SECRET_FILE_MAX + 2);
    assert_non_null(big);
    memset(big, 'x', MP_SECRET_FILE_MAX + 1);
    big[MP_SECRET_FILE_MAX + 1] = '\0';
    write_text(path, big);
    assert_int_equal(mp_host_load_secret(path, k2, err, sizeof err), MP_EINVAL);
    big[MP_SECRET_FILE_MAX] = '\0'; /* exactly the cap: fine */
    write_text(path, big);
    assert_int_equal(mp_host_load_secret(path, k2, err, sizeof err), MP_OK);
    free(big);
    assert_int_equal(mp_host_load_secret(dir, k2, err, sizeof err), MP_EINVAL); /* a dir */
    snprintf(path, sizeof path, "%s/missing", dir);
    assert_int_equal(mp_host_load_secret(path, k2, err, sizeof err), MP_ENOTFOUND);
    /* Loopback or not. */
    assert_true(mp_host_addr_is_loopback("127.0.0.1:7000"));
    assert_true(mp_host_addr_is_loopback("127.1.2.3:1"));
    assert_true(mp_host_addr_is_loopback("localhost:7000"));
    assert_false(mp_host_addr_is_loopback("0.0.0.0:7000"));
    assert_false(mp_host_addr_is_loopback("10.0.0.1:7000"));
    assert_false(mp_host_addr_is_loopback("127.0.0.1.evil:7000"));
    assert_false(mp_host_addr_is_loopback("128.0.0.1:7000"));
    rm_rf(dir);
    free(dir);
}

static void test_node_run_config_errors(void **state)
{
    (void)state;
    char *tmp = make_tmp();
    char path[300], data[300], text[600];
    snprintf(data, sizeof data, "%s/data", tmp);
    assert_int_equal(mp_node_run(NULL, NULL, NULL, 0), MP_HOST_EXIT_CONFIG);
    snprintf(path, sizeof path, "%s/missing.conf", tmp);
    assert_int_equal(mp_node_run(path, NULL, NULL, 0), MP_HOST_EXIT_CONFIG);
    /* A typo: exit 2. */
    snprintf(path, sizeof path, "%s/typo.conf", tmp);
    snprintf(text, sizeof text,
             "[cluster]\nnamespace = t\nmembers = 127.0.0.1:1\n[node]\nadress = x\n");
    write_text(path, text);
    assert_int_equal(mp_node_run(path, NULL, NULL, 0), MP_HOST_EXIT_CONFIG);
    /* Valid file, but no address, a bad --id, or an id that is no member. */
    snprintf(path, sizeof path, "%s/ok.conf", tmp);
    snprintf(text, sizeof text,
             "[cluster]\nnamespace = t\nmembers = 127.0.0.1:1, 127.0.0.1:2\n[node]\n"
             "data_dir = %s\n",
             data);
    write_text(path, text);
    assert_int_equal(mp_node_run(path, NULL, NULL, 0), MP_HOST_EXIT_CONFIG);
    assert_int_equal(mp_node_run(path, "0", NULL, 0), MP_HOST_EXIT_CONFIG);
    assert_int_equal(mp_node_run(path, "3", NULL, 0), MP_HOST_EXIT_CONFIG);
    assert_int_equal(mp_node_run(path, "127.0.0.1:3", NULL, 0), MP_HOST_EXIT_CONFIG);
    /* Types promised but not given. */
    assert_int_equal(mp_node_run(path, "1", NULL, 2), MP_HOST_EXIT_CONFIG);
    /* Nothing was created by any of these. */
    assert_int_not_equal(access(data, F_OK), 0);
    rm_rf(tmp);
    free(tmp);
}

static void test_node_run_environment_errors(void **state)
{
    (void)state;
    char *tmp = make_tmp();
    char path[300], text[600], blocker[300];
    /* data_dir is a regular file: exit 1 (not a config mistake). */
    snprintf(blocker, sizeof blocker, "%s/file", tmp);
    write_text(blocker, "x");
    snprintf(path, sizeof path, "%s/n.conf", tmp);
    snprintf(text, sizeof text,
             "[cluster]\nnamespace = t\nmembers = 127.0.0.1:1\n[node]\naddress = 127.0.0.1:1\n"
             "data_dir = %s/sub\n",
             blocker);
    write_text(path, text);
    assert_int_equal(mp_node_run(path, NULL, NULL, 0), MP_HOST_EXIT_FAIL);
    /* A corrupt incarnation file: exit 1, and the file is left alone. */
    char dir[300], inc[400], got[64];
    snprintf(dir, sizeof dir, "%s/d", tmp);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(inc, sizeof inc, "%s/incarnation.127.0.0.1_1", dir);
    write_text(inc, "garbage\n");
    snprintf(text, sizeof text,
             "[cluster]\nnamespace = t\nmembers = 127.0.0.1:1\n[node]\naddress = 127.0.0.1:1\n"
             "data_dir = %s\n",
             dir);
    write_text(path, text);
    assert_int_equal(mp_node_run(path, NULL, NULL, 0), MP_HOST_EXIT_FAIL);
    read_text(inc, got, sizeof got);
    assert_string_equal(got, "garbage\n");
    rm_rf(tmp);
    free(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_incarnation_counts_up),
        cmocka_unit_test(test_incarnation_refuses_garbage),
        cmocka_unit_test(test_incarnation_bad_args),
        cmocka_unit_test(test_secret_file),
        cmocka_unit_test(test_node_run_config_errors),
        cmocka_unit_test(test_node_run_environment_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
