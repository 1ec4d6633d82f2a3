/*
 * Unit tests: the TLS wrapper env (src/env/env_tls.c) over the real libuv
 * env, with certificates made by the openssl command for each run (a
 * cluster CA, two members it signs, and a stranger signed by another CA).
 *
 * Claims: bytes cross a TLS stream intact both ways; a peer whose
 * certificate the cluster CA did not sign is refused on both sides (it
 * never becomes an accepted stream, and gets no byte); a peer that connects and sends nothing is cut by
 * the handshake timeout; a plain-text client learns nothing; a key file
 * others can read is refused at start with a sentence naming it.
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

#include "moonpool/env.h"
#include "moonpool/env_tls.h"
#include "moonpool/env_uv.h"

#define GUARD_NS (10ull * 1000000000ull)

static char dir[64];
static char path_buf[8][128];

static const char *p(int i, const char *name)
{
    snprintf(path_buf[i], sizeof path_buf[i], "%s/%s", dir, name);
    return path_buf[i];
}

static int sh(const char *cmd)
{
    char full[2048];
    snprintf(full, sizeof full, "cd %s && { %s ; } >/dev/null 2>&1", dir, cmd);
    return system(full);
}

static int make_certs(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/mp_tls_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    char cmd[1024];
    /* cluster CA and a stranger CA */
    for (int i = 0; i < 2; i++) {
        const char *n = i ? "rogue" : "ca";
        snprintf(cmd, sizeof cmd,
                 "openssl req -x509 %s -keyout %s.key -out %s.pem -days 2 -subj /CN=%s", ec,
                 n, n, n);
        if (sh(cmd)) return -1;
    }
    /* members a and b (signed by ca), stranger s (signed by rogue) */
    const char *who[3] = {"a", "b", "s"};
    for (int i = 0; i < 3; i++) {
        const char *ca = i == 2 ? "rogue" : "ca";
        snprintf(cmd, sizeof cmd,
                 "openssl req %s -keyout %s.key -out %s.csr -subj /CN=%s && "
                 "openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -CAcreateserial "
                 "-out %s.pem -days 2 && chmod 600 %s.key",
                 ec, who[i], who[i], who[i], who[i], ca, ca, who[i], who[i]);
        if (sh(cmd)) return -1;
    }
    return 0;
}

static int remove_certs(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void set_flag(void *ud) { *(int *)ud = 1; }

/* Run the loop until cond holds; fail (rather than hang) after GUARD_NS. */
#define RUN_UNTIL(uv, cond)                                                   \
    do {                                                                      \
        int guard_ = 0;                                                       \
        mp_timer_id g_ = mp_env_timer_start((uv), GUARD_NS, set_flag, &guard_); \
        while (!(cond) && !guard_) mp_env_uv_run_once((uv), 1);               \
        assert_false(guard_);                                                 \
        mp_env_timer_cancel((uv), g_);                                        \
    } while (0)

static mp_env *tls_env(mp_env *uv, const char *who, const char *ca, uint64_t hs_timeout)
{
    char cert[128], key[128], cafile[128];
    snprintf(cert, sizeof cert, "%s/%s.pem", dir, who);
    snprintf(key, sizeof key, "%s/%s.key", dir, who);
    snprintf(cafile, sizeof cafile, "%s/%s.pem", dir, ca);
    mp_env_tls_config cfg = {cert, key, cafile, hs_timeout, 0};
    mp_env *t = NULL;
    char err[256];
    int rc = mp_env_tls_create(uv, &cfg, &t, err, sizeof err);
    if (rc) fail_msg("mp_env_tls_create: %s", err);
    return t;
}

/* ---- a tiny echo world --------------------------------------------------- */

typedef struct side {
    mp_stream *s;
    int status; /* connect/accept outcome */
    int done;
    char got[256];
    size_t got_len;
    int read_status;
    int closed;
} side;

static void on_read(void *ud, mp_stream *s, const uint8_t *data, size_t len, int status)
{
    side *x = ud;
    if (status < 0) {
        x->read_status = status;
        return;
    }
    if (x->got_len + len <= sizeof x->got) memcpy(x->got + x->got_len, data, len);
    x->got_len += len;
    /* the server echoes */
    if (x->s == s && x->status == 1) {
        mp_iovec iov = {x->got + x->got_len - len, len};
        assert_int_equal(mp_stream_write(s, &iov, 1, NULL, NULL), 0);
    }
}

static void on_accept(void *ud, mp_stream *s, int status)
{
    side *x = ud;
    assert_int_equal(status, 0);
    x->s = s;
    x->status = 1; /* marks the echoing side */
    x->done = 1;
    assert_int_equal(mp_stream_read_start(s, on_read, x), 0);
}

static void on_connect(void *ud, mp_stream *s, int status)
{
    side *x = ud;
    x->s = s;
    x->status = status;
    x->done = 1;
}

static void on_closed(void *ud) { (*(int *)ud)++; }

static int listen_any(mp_env *env, side *srv, mp_listener **l)
{
    assert_int_equal(mp_env_listen(env, "127.0.0.1:0", on_accept, srv, l), 0);
    return mp_listener_port(*l);
}

static void shut(mp_env *uv, mp_env *t1, mp_env *t2, mp_listener *l, side *a, side *b)
{
    int closed = 0, want = 1;
    mp_listener_close(l, on_closed, &closed);
    if (a && a->s) mp_stream_close(a->s, on_closed, &closed), want++;
    if (b && b->s) mp_stream_close(b->s, on_closed, &closed), want++;
    while (closed < want) mp_env_uv_run_once(uv, 1);
    for (int i = 0; i < 10; i++) mp_env_uv_run_once(uv, 0);
    mp_env_tls_free(t1);
    if (t2 != t1) mp_env_tls_free(t2);
    while (mp_env_uv_destroy(uv) != 0) mp_env_uv_run_once(uv, 0);
}

/* Connect `from` to the listener's port and wait for the outcome. */
static void connect_wait(mp_env *uv, mp_env *from, int port, side *cli)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    assert_int_equal(mp_env_connect(from, addr, on_connect, cli), 0);
    RUN_UNTIL(uv, cli->done);
}

static void test_bytes_cross_a_tls_stream_intact(void **state)
{
    mp_env *uv = mp_env_uv_create(NULL, 1);
    mp_env *ta = tls_env(uv, "a", "ca", 0), *tb = tls_env(uv, "b", "ca", 0);
    side srv = {0}, cli = {0};
    mp_listener *l;
    int port = listen_any(ta, &srv, &l);
    connect_wait(uv, tb, port, &cli);
    assert_int_equal(cli.status, 0);
    assert_int_equal(mp_stream_read_start(cli.s, on_read, &cli), 0);
    static const char msg[] = "hello over tls";
    mp_iovec iov[2] = {{msg, 6}, {msg + 6, sizeof msg - 6}};
    assert_int_equal(mp_stream_write(cli.s, iov, 2, NULL, NULL), 0);
    RUN_UNTIL(uv, cli.got_len >= sizeof msg);
    assert_memory_equal(cli.got, msg, sizeof msg);
    assert_memory_equal(srv.got, msg, sizeof msg);
    mp_env_tls_stats st;
    mp_env_tls_get_stats(ta, &st);
    assert_int_equal(st.handshakes_ok, 1);
    mp_env_tls_get_stats(tb, &st);
    assert_int_equal(st.handshakes_ok, 1);
    /* The server's close ends the client's reads with MP_EOF (close_notify),
     * not a reset. */
    int closed = 0;
    mp_stream_close(srv.s, on_closed, &closed);
    srv.s = NULL;
    RUN_UNTIL(uv, cli.read_status != 0);
    assert_int_equal(cli.read_status, MP_EOF);
    shut(uv, ta, tb, l, NULL, &cli);
}

static void test_a_stranger_certificate_is_refused_both_ways(void **state)
{
    mp_env *uv = mp_env_uv_create(NULL, 2);
    mp_env *ta = tls_env(uv, "a", "ca", 0);
    mp_env *ts = tls_env(uv, "s", "ca", 0); /* trusts ca, but its own cert is rogue's */
    side srv = {0}, cli = {0};
    mp_listener *l;
    int port = listen_any(ta, &srv, &l);
    connect_wait(uv, ts, port, &cli);
    if (cli.status == 0) {
        /* TLS 1.3: the client's side completes before the server has judged
         * the client's certificate; the refusal (an alert) ends its first
         * read, with an error, not an orderly end. */
        assert_int_equal(mp_stream_read_start(cli.s, on_read, &cli), 0);
        RUN_UNTIL(uv, cli.read_status != 0);
        assert_int_equal(cli.read_status, MP_EPROTO);
        assert_int_equal(cli.got_len, 0);
    }
    mp_env_tls_stats st = {0};
    RUN_UNTIL(uv, (mp_env_tls_get_stats(ta, &st), st.handshakes_failed > 0));
    assert_int_equal(srv.done, 0); /* never accepted */
    assert_int_equal(st.handshakes_ok, 0);

    /* And a member refuses a server holding a stranger's certificate. */
    side srv2 = {0}, cli2 = {0};
    mp_listener *l2;
    port = listen_any(ts, &srv2, &l2);
    connect_wait(uv, ta, port, &cli2);
    assert_true(cli2.status < 0);
    int closed = 0;
    mp_listener_close(l2, on_closed, &closed);
    while (!closed) mp_env_uv_run_once(uv, 1);
    assert_int_equal(srv2.done, 0);
    shut(uv, ta, ts, l, NULL, &cli);
}

static void test_a_silent_peer_is_cut_by_the_handshake_timeout(void **state)
{
    mp_env *uv = mp_env_uv_create(NULL, 3);
    mp_env *ta = tls_env(uv, "a", "ca", 200ull * 1000000ull);
    side srv = {0}, cli = {0};
    mp_listener *l;
    int port = listen_any(ta, &srv, &l);
    /* A plain client: connects, sends nothing, reads what comes. */
    connect_wait(uv, uv, port, &cli);
    assert_int_equal(cli.status, 0);
    assert_int_equal(mp_stream_read_start(cli.s, on_read, &cli), 0);
    RUN_UNTIL(uv, cli.read_status != 0);
    mp_env_tls_stats st;
    mp_env_tls_get_stats(ta, &st);
    assert_int_equal(st.handshakes_timed_out, 1);
    assert_int_equal(srv.done, 0);
    /* A TLS server speaks only after the ClientHello: nothing came. */
    assert_int_equal(cli.got_len, 0);
    shut(uv, ta, ta, l, NULL, &cli);
}

static void test_a_key_others_can_read_is_refused(void **state)
{
    mp_env *uv = mp_env_uv_create(NULL, 4);
    assert_int_equal(chmod(p(0, "a.key"), 0644), 0);
    mp_env_tls_config cfg = {p(1, "a.pem"), p(2, "a.key"), p(3, "ca.pem"), 0, 0};
    mp_env *t = NULL;
    char err[256];
    assert_int_equal(mp_env_tls_create(uv, &cfg, &t, err, sizeof err), MP_EIO);
    assert_non_null(strstr(err, "a.key"));
    assert_non_null(strstr(err, "chmod"));
    assert_int_equal(chmod(p(0, "a.key"), 0600), 0);
    /* and a certificate that is not PEM */
    cfg.cert_file = p(4, "a.csr.missing");
    assert_int_equal(mp_env_tls_create(uv, &cfg, &t, err, sizeof err), MP_EIO);
    assert_non_null(strstr(err, "a.csr.missing"));
    assert_null(t);
    while (mp_env_uv_destroy(uv) != 0) mp_env_uv_run_once(uv, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_cross_a_tls_stream_intact),
        cmocka_unit_test(test_a_stranger_certificate_is_refused_both_ways),
        cmocka_unit_test(test_a_silent_peer_is_cut_by_the_handshake_timeout),
        cmocka_unit_test(test_a_key_others_can_read_is_refused),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
