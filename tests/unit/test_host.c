/*
 * Unit tests of the process host (src/host/run.c): the incarnation file
 * and directory creation, which decide whether a restarted node is told
 * apart from its previous life, and mp_node_run's refusal of bad
 * arguments and configs (exit status 2 before anything is created).
 * The running node itself (signals, ready line, shutdown) is covered by the
 * cluster tests (tests/cluster/), which use real processes; the hooks of
 * mp_node_run_with are tested here in-process: a started hook calls an
 * actor, scrapes its own node's /metrics, /healthz, /readyz and a wrong
 * path through the env (the counters must show the call), then stops the
 * node; the stopping hook must run once, after started.
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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "counter_actor.h"
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

/* ---- hooks ---------------------------------------------------------------- */

/* A port nobody listens on right now (the node binds it next). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

enum { GET_METRICS, GET_HEALTHZ, GET_READYZ, GET_NOPE, GET_POST, GET_DONE };
static const char *const requests[] = {
    "GET /metrics HTTP/1.0\r\n\r\n", "GET /healthz HTTP/1.0\r\n\r\n",
    "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", "GET /nope HTTP/1.0\r\n\r\n",
    "POST /metrics HTTP/1.0\r\n\r\n"};

typedef struct hook_state {
    mp_host *host;
    int started, stopping, stopping_after_started;
    int call_status;
    int step;
    char resp[GET_DONE][8192];
    size_t rlen;
    mp_stream *s;
    char port[16];
} hook_state;

static void next_request(hook_state *hs);

static void scrape_closed(void *ud)
{
    hook_state *hs = ud;
    hs->step++;
    next_request(hs);
}

static void scrape_read(void *ud, mp_stream *s, const uint8_t *data, size_t len, int status)
{
    hook_state *hs = ud;
    if (status != 0) { /* EOF: the server closes after its answer */
        mp_stream_close(s, scrape_closed, hs);
        return;
    }
    char *r = hs->resp[hs->step];
    size_t room = sizeof hs->resp[0] - 1 - hs->rlen;
    if (len > room) len = room;
    memcpy(r + hs->rlen, data, len);
    hs->rlen += len;
    r[hs->rlen] = '\0';
}

static void scrape_connected(void *ud, mp_stream *s, int status)
{
    hook_state *hs = ud;
    assert_int_equal(status, 0);
    hs->s = s;
    hs->rlen = 0;
    const char *req = requests[hs->step];
    mp_iovec iov = {req, strlen(req)};
    assert_int_equal(mp_stream_write(s, &iov, 1, NULL, NULL), 0);
    assert_int_equal(mp_stream_read_start(s, scrape_read, hs), 0);
}

static void next_request(hook_state *hs)
{
    if (hs->step == GET_DONE) {
        mp_host_stop(hs->host);
        return;
    }
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", mp_host_metrics_port(hs->host));
    assert_int_equal(mp_env_connect(mp_host_env(hs->host), addr, scrape_connected, hs), 0);
}

static void echo_replied(void *ud, int status, const void *data, size_t len)
{
    hook_state *hs = ud;
    hs->call_status = status;
    assert_int_equal(status, 0);
    assert_int_equal(len, 2);
    assert_memory_equal(data, "hi", 2);
    next_request(hs);
}

static void on_started(void *ud, mp_host *host)
{
    hook_state *hs = ud;
    hs->host = host;
    hs->started++;
    assert_non_null(mp_host_env(host));
    assert_non_null(mp_host_node(host));
    assert_true(mp_host_metrics_port(host) > 0);
    mp_ref ref;
    assert_int_equal(mp_ref_get(mp_host_node(host), "Counter", "c1", &ref), 0);
    assert_int_equal(mp_call(mp_host_node(host), &ref, "echo", "hi", 2, NULL, echo_replied, hs),
                     0);
}

static void on_stopping(void *ud, mp_host *host)
{
    hook_state *hs = ud;
    assert_ptr_equal(host, hs->host);
    hs->stopping++;
    hs->stopping_after_started = hs->started == 1;
}

static void test_node_run_hooks_and_metrics(void **state)
{
    (void)state;
    char *tmp = make_tmp();
    char path[300], text[600];
    int port = free_port();
    snprintf(path, sizeof path, "%s/n.conf", tmp);
    snprintf(text, sizeof text,
             "[cluster]\nnamespace = t\nmembers = 127.0.0.1:%d\n[node]\naddress = 127.0.0.1:%d\n"
             "data_dir = %s\nlog_level = warn\n[storage]\nprovider = memory\n",
             port, port, tmp);
    write_text(path, text);
    static hook_state hs;
    memset(&hs, 0, sizeof hs);
    mp_node_run_options o;
    mp_node_run_options_init(&o);
    o.started = on_started;
    o.stopping = on_stopping;
    o.ud = &hs;
    o.metrics_address = "127.0.0.1:0";
    const mp_actor_type *types[] = {&counter_type};
    assert_int_equal(mp_node_run_with(path, NULL, types, 1, &o), MP_HOST_EXIT_OK);
    assert_int_equal(hs.started, 1);
    assert_int_equal(hs.stopping, 1);
    assert_true(hs.stopping_after_started);
    assert_int_equal(hs.step, GET_DONE);

    const char *m = hs.resp[GET_METRICS];
    assert_non_null(strstr(m, "HTTP/1.0 200 OK\r\n"));
    assert_non_null(strstr(m, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(m, "# TYPE moonpool_calls_out_total counter\n"));
    assert_non_null(strstr(m, "\nmoonpool_calls_out_total 1\n"));
    assert_non_null(strstr(m, "\nmoonpool_activations 1\n"));
    assert_non_null(strstr(m, "\nmoonpool_ready 1\n"));
    assert_non_null(strstr(m, "moonpool_node_info{address=\"127.0.0.1:"));
    assert_non_null(strstr(hs.resp[GET_HEALTHZ], "HTTP/1.0 200 OK\r\n"));
    assert_non_null(strstr(hs.resp[GET_HEALTHZ], "\r\n\r\nok\n"));
    assert_non_null(strstr(hs.resp[GET_READYZ], "HTTP/1.0 200 OK\r\n"));
    assert_non_null(strstr(hs.resp[GET_NOPE], "HTTP/1.0 404 "));
    assert_non_null(strstr(hs.resp[GET_POST], "HTTP/1.0 405 "));
    rm_rf(tmp);
    free(tmp);
}

/* A bad metrics address is a configuration error, found before anything. */
static void test_node_run_bad_metrics_address(void **state)
{
    (void)state;
    char *tmp = make_tmp();
    char path[300];
    snprintf(path, sizeof path, "%s/n.conf", tmp);
    write_text(path, "[cluster]\nnamespace = t\nmembers = 127.0.0.1:1\n[node]\n"
                     "address = 127.0.0.1:1\n[storage]\nprovider = memory\n");
    mp_node_run_options o;
    mp_node_run_options_init(&o);
    o.metrics_address = "no-port";
    assert_int_equal(mp_node_run_with(path, NULL, NULL, 0, &o), MP_HOST_EXIT_CONFIG);
    o.metrics_address = NULL;
    o.log_format = (mp_log_format)7;
    assert_int_equal(mp_node_run_with(path, NULL, NULL, 0, &o), MP_HOST_EXIT_CONFIG);
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
        cmocka_unit_test(test_node_run_hooks_and_metrics),
        cmocka_unit_test(test_node_run_bad_metrics_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
