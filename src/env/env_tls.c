/*
 * TLS wrapper env (env_tls.h has the why). Each stream is an OpenSSL
 * session between two memory BIOs: ciphertext read from the inner stream
 * is written into `rbio`, plaintext comes out of SSL_read; SSL_write puts
 * ciphertext into `wbio`, which is drained into inner writes. So OpenSSL
 * never blocks and never touches a socket, and the inner env keeps owning
 * all I/O (libuv, or the simulator).
 *
 * Lifetimes. A stream under handshake belongs to this file (it sits in the
 * env's handshake list, oldest first); once the handshake completes it is
 * handed to the user's connect or accept callback and belongs to the user,
 * who closes it. An inner write carries its own copy of the ciphertext and
 * the user's callback; closing a stream closes the inner one, whose pending
 * writes end MP_ECANCELED before its close callback runs (env.h), which is
 * when the session is freed.
 *
 * Re-entrancy: the user's read callback may close the stream. Reading loops
 * check `state` after every callback and stop; the memory is freed only by
 * the inner close callback, which runs on a later turn.
 */
#include "moonpool/env_tls.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define DEFAULT_HS_TIMEOUT_NS (10ull * 1000000000ull)
#define DEFAULT_MAX_HS 1024u
#define READ_CHUNK 16384

typedef struct tls_env tls_env;
typedef struct tls_listener tls_listener;

enum { TS_HANDSHAKE = 0, TS_OPEN = 1, TS_CLOSED = 2 };

typedef struct tls_stream {
    mp_env *env; /* first: every stream starts with its env (env.h) */
    tls_env *te;
    mp_stream *inner;
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    int state;
    bool server;
    bool inner_reading;
    /* handshake: who gets the stream when it completes */
    mp_connect_cb ccb;
    tls_listener *lis;
    void *hud;
    mp_timer_id timer;
    struct tls_stream *hs_prev, *hs_next;
    /* the user's reader */
    mp_read_cb rcb;
    void *rud;
    bool reading, ended;
    mp_close_cb close_cb;
    void *close_ud;
} tls_stream;

struct tls_listener {
    mp_env *env; /* first */
    tls_env *te;
    mp_listener *inner;
    mp_accept_cb cb;
    void *ud;
    mp_close_cb close_cb;
    void *close_ud;
    unsigned live; /* its streams not yet handed over nor freed */
    bool closing;
};

struct tls_env {
    mp_env base; /* first: the env handed out */
    mp_env *inner;
    SSL_CTX *ctx;
    uint64_t hs_timeout_ns;
    unsigned max_hs, hs_count;
    tls_stream *hs_head, *hs_tail;
    mp_env_tls_stats stats;
};

typedef struct tls_write {
    mp_write_cb cb;
    void *ud;
    uint8_t data[];
} tls_write;

static tls_env *te_of(mp_env *e) { return (tls_env *)(void *)e; }

/* ---- forwarded operations ------------------------------------------------ */

static uint64_t t_now(mp_env *e) { return mp_env_now(te_of(e)->inner); }
static mp_timer_id t_timer_start(mp_env *e, uint64_t d, mp_timer_cb cb, void *ud)
{
    return mp_env_timer_start(te_of(e)->inner, d, cb, ud);
}
static int t_timer_cancel(mp_env *e, mp_timer_id id) { return mp_env_timer_cancel(te_of(e)->inner, id); }
static int t_defer(mp_env *e, mp_defer_cb cb, void *ud) { return mp_env_defer(te_of(e)->inner, cb, ud); }
static uint64_t t_random(mp_env *e) { return mp_env_random(te_of(e)->inner); }

/* ---- handshake list ------------------------------------------------------ */

static void hs_unlink(tls_stream *ts)
{
    tls_env *te = ts->te;
    if (ts->hs_prev) ts->hs_prev->hs_next = ts->hs_next;
    else if (te->hs_head == ts) te->hs_head = ts->hs_next;
    else return; /* not linked */
    if (ts->hs_next) ts->hs_next->hs_prev = ts->hs_prev;
    else te->hs_tail = ts->hs_prev;
    ts->hs_prev = ts->hs_next = NULL;
    te->hs_count--;
}

static void hs_link(tls_stream *ts)
{
    tls_env *te = ts->te;
    ts->hs_prev = te->hs_tail;
    ts->hs_next = NULL;
    if (te->hs_tail) te->hs_tail->hs_next = ts;
    else te->hs_head = ts;
    te->hs_tail = ts;
    te->hs_count++;
}

/* ---- stream teardown ----------------------------------------------------- */

static void listener_maybe_closed(tls_listener *l);

static void inner_closed(void *ud)
{
    tls_stream *ts = ud;
    mp_close_cb cb = ts->close_cb;
    void *cud = ts->close_ud;
    tls_listener *lis = ts->lis;
    SSL_free(ts->ssl);
    free(ts);
    if (lis) {
        lis->live--;
        listener_maybe_closed(lis);
    }
    if (cb) cb(cud);
}

static void write_done(void *ud, int status)
{
    tls_write *w = ud;
    if (w->cb) w->cb(w->ud, status);
    free(w);
}

/* Hand the ciphertext waiting in wbio to the inner stream; cb (may be
 * NULL) runs when it is written. */
static int flush_out(tls_stream *ts, mp_write_cb cb, void *ud)
{
    size_t n = (size_t)BIO_ctrl_pending(ts->wbio);
    tls_write *w = malloc(sizeof *w + n);
    if (!w) return MP_ENOMEM;
    w->cb = cb;
    w->ud = ud;
    if (n && BIO_read(ts->wbio, w->data, (int)n) != (int)n) {
        free(w);
        return MP_EINTERNAL;
    }
    mp_iovec iov = {w->data, n};
    int rc = mp_stream_write(ts->inner, &iov, 1, write_done, w);
    if (rc) free(w);
    return rc;
}

/* A stream that never reached its user: closed and forgotten. */
static void hs_abandon(tls_stream *ts)
{
    hs_unlink(ts);
    if (ts->timer) mp_env_timer_cancel(ts->te->inner, ts->timer);
    ts->timer = 0;
    ts->state = TS_CLOSED;
    mp_stream_close(ts->inner, inner_closed, ts);
}

/* How a read ended, from SSL_get_error: close_notify is an orderly end,
 * anything else a protocol failure. */
static int ssl_end_status(int ssl_error)
{
    return ssl_error == SSL_ERROR_ZERO_RETURN ? MP_EOF : MP_EPROTO;
}

static void log_ssl_failure(tls_stream *ts, const char *what)
{
    char buf[256];
    unsigned long e = ERR_get_error();
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    else snprintf(buf, sizeof buf, "connection closed");
    ERR_clear_error();
    long v = SSL_get_verify_result(ts->ssl);
    mp_env_log(&ts->te->base, MP_LOG_INFO, "tls: %s %s failed: %s%s%s", what,
               mp_stream_peer(ts->inner), buf, v != X509_V_OK ? "; certificate: " : "",
               v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
}

/* The handshake failed (status): the connect callback hears it; an
 * accepted connection is just closed. */
static void hs_fail(tls_stream *ts, int status)
{
    tls_env *te = ts->te;
    if (status == MP_ETIMEDOUT) te->stats.handshakes_timed_out++;
    else te->stats.handshakes_failed++;
    mp_connect_cb ccb = ts->ccb;
    void *hud = ts->hud;
    hs_abandon(ts);
    if (ccb) ccb(hud, NULL, status);
}

/* ---- reading ------------------------------------------------------------- */

static void inner_read(void *ud, mp_stream *s, const uint8_t *data, size_t len, int status);

/* Deliver the plaintext OpenSSL holds, while the user reads. */
static void pump_plaintext(tls_stream *ts)
{
    uint8_t buf[READ_CHUNK];
    while (ts->state == TS_OPEN && ts->reading && !ts->ended) {
        int r = SSL_read(ts->ssl, buf, sizeof buf);
        if (r > 0) {
            ts->rcb(ts->rud, (mp_stream *)ts, buf, (size_t)r, 0);
            continue;
        }
        int e = SSL_get_error(ts->ssl, r);
        if (e == SSL_ERROR_WANT_READ) break;
        ts->ended = true;
        ts->rcb(ts->rud, (mp_stream *)ts, NULL, 0, ssl_end_status(e));
        break;
    }
    /* Reading may have produced records to send (alerts, key updates). */
    if (ts->state == TS_OPEN && BIO_ctrl_pending(ts->wbio)) flush_out(ts, NULL, NULL);
}

static void hs_step(tls_stream *ts)
{
    int r = SSL_do_handshake(ts->ssl);
    if (BIO_ctrl_pending(ts->wbio) && flush_out(ts, NULL, NULL) != 0) {
        hs_fail(ts, MP_ECONNRESET);
        return;
    }
    if (r != 1) {
        int e = SSL_get_error(ts->ssl, r);
        if (e == SSL_ERROR_WANT_READ) return;
        log_ssl_failure(ts, ts->server ? "handshake from" : "handshake to");
        hs_fail(ts, MP_EPROTO);
        return;
    }
    /* Done: the stream goes to its user, who starts reading when ready
     * (bytes that came with the last flight stay in rbio until then). */
    ts->te->stats.handshakes_ok++;
    hs_unlink(ts);
    if (ts->timer) mp_env_timer_cancel(ts->te->inner, ts->timer);
    ts->timer = 0;
    ts->state = TS_OPEN;
    mp_stream_read_stop(ts->inner);
    ts->inner_reading = false;
    if (ts->ccb) {
        ts->ccb(ts->hud, (mp_stream *)ts, 0);
    } else {
        tls_listener *l = ts->lis;
        ts->lis = NULL; /* the stream is the user's now */
        l->live--;
        l->cb(l->ud, (mp_stream *)ts, 0);
        listener_maybe_closed(l);
    }
}

static void inner_read(void *ud, mp_stream *s, const uint8_t *data, size_t len, int status)
{
    (void)s;
    tls_stream *ts = ud;
    if (ts->state == TS_CLOSED) return;
    if (status < 0) {
        if (ts->state == TS_HANDSHAKE) {
            hs_fail(ts, status == MP_EOF ? MP_ECONNRESET : status);
            return;
        }
        if (!ts->ended && ts->reading) {
            /* A clean TLS end is close_notify, which pump_plaintext reports
             * as MP_EOF; a TCP end without it is a truncation. */
            pump_plaintext(ts);
            if (ts->state == TS_OPEN && !ts->ended && ts->reading) {
                ts->ended = true;
                ts->rcb(ts->rud, (mp_stream *)ts, NULL, 0, status == MP_EOF ? MP_ECONNRESET : status);
            }
        }
        return;
    }
    if (len && BIO_write(ts->rbio, data, (int)len) != (int)len) {
        if (ts->state == TS_HANDSHAKE) hs_fail(ts, MP_ENOMEM);
        return;
    }
    if (ts->state == TS_HANDSHAKE) hs_step(ts);
    else pump_plaintext(ts);
}

static void hs_timeout(void *ud)
{
    tls_stream *ts = ud;
    ts->timer = 0;
    mp_env_log(&ts->te->base, MP_LOG_INFO, "tls: handshake %s %s timed out",
               ts->server ? "from" : "to", mp_stream_peer(ts->inner));
    hs_fail(ts, MP_ETIMEDOUT);
}

/* A new session on an inner stream: starts the handshake. */
static tls_stream *stream_new(tls_env *te, mp_stream *inner, bool server)
{
    if (te->hs_count >= te->max_hs && te->hs_head) {
        /* The oldest handshake gives way: idle sockets cannot hold every
         * slot for long against fresh ones. */
        te->stats.handshakes_evicted++;
        hs_fail(te->hs_head, MP_EBUSY);
    }
    tls_stream *ts = calloc(1, sizeof *ts);
    if (!ts) return NULL;
    ts->env = &te->base;
    ts->te = te;
    ts->inner = inner;
    ts->server = server;
    ts->ssl = SSL_new(te->ctx);
    ts->rbio = BIO_new(BIO_s_mem());
    ts->wbio = BIO_new(BIO_s_mem());
    if (!ts->ssl || !ts->rbio || !ts->wbio) {
        BIO_free(ts->rbio);
        BIO_free(ts->wbio);
        SSL_free(ts->ssl);
        free(ts);
        return NULL;
    }
    SSL_set_bio(ts->ssl, ts->rbio, ts->wbio);
    if (server) SSL_set_accept_state(ts->ssl);
    else SSL_set_connect_state(ts->ssl);
    return ts;
}

static int stream_start(tls_stream *ts)
{
    tls_env *te = ts->te;
    hs_link(ts);
    ts->timer = mp_env_timer_start(te->inner, te->hs_timeout_ns, hs_timeout, ts);
    if (!ts->timer || mp_stream_read_start(ts->inner, inner_read, ts) != 0) return MP_ENOMEM;
    ts->inner_reading = true;
    if (!ts->server) hs_step(ts); /* the ClientHello */
    return 0;
}

/* ---- stream operations --------------------------------------------------- */

static void deliver_later(void *ud)
{
    tls_stream *ts = ud;
    if (ts->state == TS_OPEN) pump_plaintext(ts);
}

static int t_read_start(mp_stream *s, mp_read_cb cb, void *ud)
{
    tls_stream *ts = (tls_stream *)s;
    if (ts->state != TS_OPEN) return MP_ECLOSED;
    ts->rcb = cb;
    ts->rud = ud;
    ts->reading = true;
    if (!ts->inner_reading) {
        int rc = mp_stream_read_start(ts->inner, inner_read, ts);
        if (rc) return rc;
        ts->inner_reading = true;
    }
    /* Plaintext already decrypted or buffered: delivered on a later turn,
     * never from inside this call. */
    if (BIO_ctrl_pending(ts->rbio) || SSL_pending(ts->ssl))
        return mp_env_defer(ts->te->inner, deliver_later, ts);
    return 0;
}

static int t_read_stop(mp_stream *s)
{
    tls_stream *ts = (tls_stream *)s;
    ts->reading = false;
    if (ts->inner_reading) {
        ts->inner_reading = false;
        return mp_stream_read_stop(ts->inner);
    }
    return 0;
}

static int t_write(mp_stream *s, const mp_iovec *iov, int iovcnt, mp_write_cb cb, void *ud)
{
    tls_stream *ts = (tls_stream *)s;
    if (ts->state != TS_OPEN) return MP_ECLOSED;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].len == 0) continue;
        if (iov[i].len > INT32_MAX) return MP_ETOOBIG;
        /* A memory BIO takes everything: SSL_write completes whole. */
        if (SSL_write(ts->ssl, iov[i].base, (int)iov[i].len) != (int)iov[i].len) {
            ERR_clear_error();
            return MP_ECONNRESET;
        }
    }
    return flush_out(ts, cb, ud);
}

static void t_stream_close(mp_stream *s, mp_close_cb cb, void *ud)
{
    tls_stream *ts = (tls_stream *)s;
    assert(ts->state == TS_OPEN);
    ts->state = TS_CLOSED;
    ts->close_cb = cb;
    ts->close_ud = ud;
    /* close_notify, best effort: the peer then tells an end from a cut. */
    if (SSL_shutdown(ts->ssl) >= 0 && BIO_ctrl_pending(ts->wbio)) flush_out(ts, NULL, NULL);
    ERR_clear_error();
    mp_stream_close(ts->inner, inner_closed, ts);
}

static const char *t_stream_peer(mp_stream *s)
{
    return mp_stream_peer(((tls_stream *)s)->inner);
}

/* ---- connect and listen -------------------------------------------------- */

typedef struct tls_connect {
    tls_env *te;
    mp_connect_cb cb;
    void *ud;
} tls_connect;

static void connected(void *ud, mp_stream *inner, int status)
{
    tls_connect c = *(tls_connect *)ud;
    free(ud);
    if (status < 0) {
        c.cb(c.ud, NULL, status);
        return;
    }
    tls_stream *ts = stream_new(c.te, inner, false);
    if (!ts) {
        mp_stream_close(inner, NULL, NULL);
        c.cb(c.ud, NULL, MP_ENOMEM);
        return;
    }
    ts->ccb = c.cb;
    ts->hud = c.ud;
    if (stream_start(ts) != 0) hs_fail(ts, MP_ENOMEM);
}

static int t_connect(mp_env *e, const char *addr, mp_connect_cb cb, void *ud)
{
    tls_connect *c = malloc(sizeof *c);
    if (!c) return MP_ENOMEM;
    c->te = te_of(e);
    c->cb = cb;
    c->ud = ud;
    int rc = mp_env_connect(te_of(e)->inner, addr, connected, c);
    if (rc) free(c);
    return rc;
}

static void accepted(void *ud, mp_stream *inner, int status)
{
    tls_listener *l = ud;
    if (status < 0) {
        l->cb(l->ud, NULL, status);
        return;
    }
    if (l->closing) {
        mp_stream_close(inner, NULL, NULL);
        return;
    }
    tls_stream *ts = stream_new(l->te, inner, true);
    if (!ts) {
        mp_stream_close(inner, NULL, NULL);
        return;
    }
    ts->lis = l;
    l->live++; /* until the stream is handed over or closed */
    if (stream_start(ts) != 0) hs_fail(ts, MP_ENOMEM);
}

static int t_listen(mp_env *e, const char *addr, mp_accept_cb cb, void *ud, mp_listener **out)
{
    tls_listener *l = calloc(1, sizeof *l);
    if (!l) return MP_ENOMEM;
    l->env = e;
    l->te = te_of(e);
    l->cb = cb;
    l->ud = ud;
    int rc = mp_env_listen(te_of(e)->inner, addr, accepted, l, &l->inner);
    if (rc) {
        free(l);
        return rc;
    }
    *out = (mp_listener *)l;
    return 0;
}

static void listener_inner_closed(void *ud)
{
    tls_listener *l = ud;
    l->inner = NULL;
    listener_maybe_closed(l);
}

/* The listener's memory goes when its inner listener is closed and no
 * handshake of it is left (they point at it). */
static void listener_maybe_closed(tls_listener *l)
{
    if (!l->closing || l->inner || l->live) return;
    mp_close_cb cb = l->close_cb;
    void *ud = l->close_ud;
    free(l);
    if (cb) cb(ud);
}

static void t_listener_close(mp_listener *ml, mp_close_cb cb, void *ud)
{
    tls_listener *l = (tls_listener *)ml;
    l->closing = true;
    l->close_cb = cb;
    l->close_ud = ud;
    /* Handshakes in progress end now: their streams would have nobody to
     * go to. */
    for (tls_stream *ts = l->te->hs_head, *next; ts; ts = next) {
        next = ts->hs_next;
        if (ts->lis == l) hs_fail(ts, MP_ECLOSED);
    }
    mp_listener_close(l->inner, listener_inner_closed, l);
}

static int t_listener_port(mp_listener *ml)
{
    return mp_listener_port(((tls_listener *)ml)->inner);
}

static const mp_env_ops tls_ops = {
    .now_ns = t_now,
    .timer_start = t_timer_start,
    .timer_cancel = t_timer_cancel,
    .defer = t_defer,
    .listen = t_listen,
    .listener_close = t_listener_close,
    .connect = t_connect,
    .read_start = t_read_start,
    .read_stop = t_read_stop,
    .write = t_write,
    .stream_close = t_stream_close,
    .stream_peer = t_stream_peer,
    .random_u64 = t_random,
    .listener_port = t_listener_port,
};

/* ---- create -------------------------------------------------------------- */

/* "tls: <what> <path>: <OpenSSL's reason>" */
static int fail(char *err, size_t errlen, int rc, const char *what, const char *path)
{
    char why[256] = "";
    unsigned long e = ERR_get_error();
    if (e) ERR_error_string_n(e, why, sizeof why);
    ERR_clear_error();
    if (err && errlen)
        snprintf(err, errlen, "tls: %s %s%s%s", what, path, why[0] ? ": " : "", why);
    return rc;
}

int mp_env_tls_create(mp_env *inner, const mp_env_tls_config *cfg, mp_env **out,
                      char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!inner || !cfg || !out || !cfg->cert_file || !cfg->key_file || !cfg->ca_file)
        return MP_EINVAL;
    struct stat st;
    if (stat(cfg->key_file, &st) != 0)
        return fail(err, errlen, MP_EIO, "cannot read key file", cfg->key_file);
    if (st.st_mode & 077)
        return fail(err, errlen, MP_EIO, "key file readable by group or others (chmod 600):",
                    cfg->key_file);
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (!ctx) return MP_ENOMEM;
    int rc = 0;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1)
        rc = fail(err, errlen, MP_EIO, "TLS 1.3 unavailable", "");
    else if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1)
        rc = fail(err, errlen, MP_EIO, "bad certificate file", cfg->cert_file);
    else if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1)
        rc = fail(err, errlen, MP_EIO, "bad key file", cfg->key_file);
    else if (SSL_CTX_check_private_key(ctx) != 1)
        rc = fail(err, errlen, MP_EIO, "key does not match the certificate:", cfg->key_file);
    else if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1)
        rc = fail(err, errlen, MP_EIO, "bad CA file", cfg->ca_file);
    if (rc) {
        SSL_CTX_free(ctx);
        return rc;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    tls_env *te = calloc(1, sizeof *te);
    if (!te) {
        SSL_CTX_free(ctx);
        return MP_ENOMEM;
    }
    te->base = *inner; /* log level, sink and name as the inner env's */
    te->base.ops = &tls_ops;
    te->inner = inner;
    te->ctx = ctx;
    te->hs_timeout_ns = cfg->handshake_timeout_ns ? cfg->handshake_timeout_ns : DEFAULT_HS_TIMEOUT_NS;
    te->max_hs = cfg->max_handshakes ? cfg->max_handshakes : DEFAULT_MAX_HS;
    *out = &te->base;
    return 0;
}

void mp_env_tls_free(mp_env *env)
{
    if (!env) return;
    tls_env *te = te_of(env);
    /* Dials still in their handshake end now (their callers hear
     * MP_ECLOSED); the inner closes complete on later turns of the inner
     * loop, which needs nothing of te (each SSL holds its own reference to
     * the context). */
    while (te->hs_head) hs_fail(te->hs_head, MP_ECLOSED);
    SSL_CTX_free(te->ctx);
    free(te);
}

void mp_env_tls_get_stats(mp_env *env, mp_env_tls_stats *out)
{
    *out = te_of(env)->stats;
}
