/*
 * moonpool environment interface.
 *
 * The whole runtime reaches time, timers, the network, randomness and logging
 * through an mp_env and nothing else (a lint enforces it). Two backends exist:
 *
 *   - the real one (env_uv.h: mp_env_uv_*), one libuv loop per node;
 *   - the simulated one (see sim.h), where every node of a cluster lives in one
 *     process and one seed decides every event.
 *
 * The same runtime code runs unchanged on both, which is what lets one seed
 * replay a whole multi-node run.
 *
 * Model (libuv style): an env is single-threaded. Every function here must be
 * called on the env's loop thread, and every callback runs on it. Callbacks
 * never run re-entrantly from inside the call that schedules them: a write or
 * connect that completes at once still reports through its callback on a later
 * turn of the loop. Every stream callback carries a status (0 or a negative
 * mp_status).
 *
 * Addresses are text "host:port" (IPv4 dotted quad, or "localhost"). The
 * simulator accepts the same syntax and matches addresses as exact strings.
 */
#ifndef MOONPOOL_ENV_H
#define MOONPOOL_ENV_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/status.h"
#include "moonpool/units.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_env mp_env;
typedef struct mp_stream mp_stream;     /* one connected byte stream */
typedef struct mp_listener mp_listener; /* one listening socket */

/* Timer identifier. 0 is never a valid id, so it can mean "no timer". */
typedef uint64_t mp_timer_id;

/* A buffer to write. The bytes must stay valid and unchanged until the write
 * callback runs (libuv semantics, so the real backend can avoid a copy). */
typedef struct mp_iovec {
    const void *base;
    size_t len;
} mp_iovec;

typedef enum mp_log_level {
    MP_LOG_DEBUG = 0,
    MP_LOG_INFO = 1,
    MP_LOG_WARN = 2,
    MP_LOG_ERROR = 3,
    MP_LOG_OFF = 4
} mp_log_level;

/* How a log line is written (mp_env.log_format). */
typedef enum mp_log_format {
    MP_LOG_FORMAT_TEXT = 0, /* "TIME NAME LEVEL: message" */
    MP_LOG_FORMAT_JSON = 1  /* one JSON object per line: ts, level, node, msg */
} mp_log_format;

/* Timer fired. Not called for a cancelled timer. */
typedef void (*mp_timer_cb)(void *ud);

/* A deferred callback (see mp_env_defer). */
typedef void (*mp_defer_cb)(void *ud);

/* A connection was accepted (status 0, `s` is a new stream owned by the
 * callee, who must eventually mp_stream_close it) or accepting failed
 * (status < 0, `s` is NULL; the listener stays open). */
typedef void (*mp_accept_cb)(void *ud, mp_stream *s, int status);

/* An outgoing connection completed (status 0, `s` owned by the callee) or
 * failed (status < 0: MP_ECONNREFUSED, MP_ETIMEDOUT, MP_EADDR, ...; `s` NULL). */
typedef void (*mp_connect_cb)(void *ud, mp_stream *s, int status);

/* Bytes arrived (status 0, len > 0) or the stream ended (status MP_EOF,
 * MP_ECONNRESET or another error; data NULL, len 0). `data` belongs to the env
 * and is valid only during the call: copy what you keep. After an error or EOF
 * no further reads arrive; the owner must still call mp_stream_close. */
typedef void (*mp_read_cb)(void *ud, mp_stream *s, const uint8_t *data,
                           size_t len, int status);

/* A write finished: status 0 means every byte was handed to the network (not
 * that the peer read it). MP_ECANCELED if the stream was closed first. */
typedef void (*mp_write_cb)(void *ud, int status);

/* The stream or listener is fully released; no callback of it runs after. */
typedef void (*mp_close_cb)(void *ud);

/* Log sink: receives every line at or above the env's level. `msg` is valid
 * only during the call. */
typedef void (*mp_log_sink)(void *ud, mp_log_level level, const char *msg);

/* Backend operations. Runtime code calls the mp_env_* / mp_stream_* wrappers
 * below, never these pointers directly. A backend fills all of them. */
typedef struct mp_env_ops {
    uint64_t (*now_ns)(mp_env *env);
    mp_timer_id (*timer_start)(mp_env *env, uint64_t delay_ns, mp_timer_cb cb,
                               void *ud);
    int (*timer_cancel)(mp_env *env, mp_timer_id id);
    int (*defer)(mp_env *env, mp_defer_cb cb, void *ud);
    int (*listen)(mp_env *env, const char *addr, mp_accept_cb cb, void *ud,
                  mp_listener **out);
    void (*listener_close)(mp_listener *l, mp_close_cb cb, void *ud);
    int (*connect)(mp_env *env, const char *addr, mp_connect_cb cb, void *ud);
    int (*read_start)(mp_stream *s, mp_read_cb cb, void *ud);
    int (*read_stop)(mp_stream *s);
    int (*write)(mp_stream *s, const mp_iovec *iov, int iovcnt, mp_write_cb cb,
                 void *ud);
    void (*stream_close)(mp_stream *s, mp_close_cb cb, void *ud);
    const char *(*stream_peer)(mp_stream *s);
    uint64_t (*random_u64)(mp_env *env);
    int (*listener_port)(mp_listener *l);
    /* len unpredictable bytes (nonces, see mp_env_secure_random). NULL in
     * a test backend: mp_env_secure_random falls back to random_u64. */
    int (*secure_random)(mp_env *env, void *buf, size_t len);
} mp_env_ops;

/* Size of the cluster key (SHA-256 of the secret file). */
#define MP_ENV_KEY_LEN 32u

/* How the transports created on an env authenticate and admit
 * connections (docs/security.md). The process host fills it from the
 * config before creating the node; zero (the backends' default) means no
 * cluster secret and the default connection caps.
 *
 * Why on the env and not in mp_node_config: the key and the caps describe
 * how this process meets the outside world (the env's job), and every
 * transport of the process must use the same ones. */
typedef struct mp_env_net_policy {
    int has_key;                   /* key holds the cluster key */
    uint8_t key[MP_ENV_KEY_LEN];   /* never logged, never sent */
    uint32_t max_connections;      /* incoming, in total; 0: default */
    uint32_t max_connections_per_ip; /* incoming, per remote IP; 0: default */
} mp_env_net_policy;

/* The common head of every backend's env. Backends embed it first. */
struct mp_env {
    const mp_env_ops *ops;
    mp_log_level log_level;
    mp_log_sink log_sink; /* NULL: lines go to the backend's default (stderr) */
    void *log_ud;
    const char *name; /* shown in log lines, e.g. the node address; not owned */
    mp_env_net_policy net; /* set by the host before any transport exists */
    mp_log_format log_format; /* 0 (text) by default */
    /* Nonzero: stamp log lines with the wall clock, as RFC 3339 UTC with
     * milliseconds ("2026-12-04T14:30:01.123Z"); the real backend sets it.
     * Zero: the env's own clock in seconds ("12.000250"), which in the
     * simulator is simulated time, so a seed's log replays byte for byte. */
    int log_wall_clock;
};

/* ---- time ---------------------------------------------------------------- */

/* Monotonic time in nanoseconds since an arbitrary origin fixed per env;
 * never goes back. In the real backend, inside the env's own callbacks
 * (timers, reads, write completions, deferred work) one clock read serves up
 * to 64 calls, so a value may lag the clock by the work of those calls
 * (microseconds); outside them every call reads the clock (vDSO, nanosecond
 * resolution). In the simulator it is simulated time, which moves only
 * between events. */
static inline uint64_t mp_env_now(mp_env *env) { return env->ops->now_ns(env); }

/* ---- timers -------------------------------------------------------------- */

/* Start a one-shot timer that calls cb(ud) after delay_ns (0 = on a later loop
 * turn). Returns its id, or 0 if it could not be created (out of memory). */
static inline mp_timer_id mp_env_timer_start(mp_env *env, uint64_t delay_ns,
                                             mp_timer_cb cb, void *ud)
{
    return env->ops->timer_start(env, delay_ns, cb, ud);
}

/* Cancel a pending timer: its callback will not run. Returns 0, or
 * MP_ENOTFOUND if it already fired, was already cancelled or never existed
 * (harmless). */
static inline int mp_env_timer_cancel(mp_env *env, mp_timer_id id)
{
    return env->ops->timer_cancel(env, id);
}

/* Run cb(ud) once, after the callbacks of the current loop turn and before the
 * loop waits for I/O again. Used to batch: everything queued during one turn
 * is flushed by one deferred callback. Returns 0 or MP_ENOMEM. */
static inline int mp_env_defer(mp_env *env, mp_defer_cb cb, void *ud)
{
    return env->ops->defer(env, cb, ud);
}

/* ---- streams ------------------------------------------------------------- */

/* Listen on `addr` ("host:port"; port 0 is allowed only in the real backend).
 * On success *out is the listener, owned by the caller until
 * mp_listener_close. Errors: MP_EADDR (malformed), MP_EADDRINUSE, MP_EIO. */
static inline int mp_env_listen(mp_env *env, const char *addr, mp_accept_cb cb,
                                void *ud, mp_listener **out)
{
    return env->ops->listen(env, addr, cb, ud, out);
}

/* Stop listening. Connections already accepted are unaffected. cb may be
 * NULL. */
static inline void mp_listener_close(mp_listener *l, mp_close_cb cb, void *ud)
{
    mp_env *env = *(mp_env **)l; /* every backend's listener starts with its env */
    env->ops->listener_close(l, cb, ud);
}

/* The local port listener `l` is bound to (1..65535): the port the OS picked
 * when the address said port 0 (real backend), the port of the listened
 * address in the simulator (which never listens on port 0). The listener
 * stays owned by the caller; do not call once its close completed. Returns a
 * negative mp_status instead: MP_EINVAL if `l` is NULL (or its backend has
 * no port to tell), MP_ECLOSED between mp_listener_close and its close
 * callback (real backend), MP_EIO if the OS cannot tell. Thread: the env's
 * loop thread. */
static inline int mp_listener_port(mp_listener *l)
{
    if (!l) return MP_EINVAL;
    mp_env *env = *(mp_env **)l; /* every backend's listener starts with its env */
    if (!env->ops->listener_port) return MP_EINVAL;
    return env->ops->listener_port(l);
}

/* Connect to `addr`. Returns 0 when the attempt started (its outcome comes
 * through cb, always on a later turn) or MP_EADDR / MP_ENOMEM at once (cb is
 * then never called). */
static inline int mp_env_connect(mp_env *env, const char *addr,
                                 mp_connect_cb cb, void *ud)
{
    return env->ops->connect(env, addr, cb, ud);
}

/* Every backend's stream starts with a pointer to its env. */
static inline mp_env *mp_stream_env(mp_stream *s) { return *(mp_env **)s; }

/* Start delivering received bytes to cb. One reader per stream; calling again
 * replaces cb/ud. */
static inline int mp_stream_read_start(mp_stream *s, mp_read_cb cb, void *ud)
{
    return mp_stream_env(s)->ops->read_start(s, cb, ud);
}

/* Stop delivering bytes (flow control); bytes stay buffered until the next
 * mp_stream_read_start. */
static inline int mp_stream_read_stop(mp_stream *s)
{
    return mp_stream_env(s)->ops->read_stop(s);
}

/* Write the iovecs in order, as one unit (writes on one stream never
 * interleave). The buffers must stay valid until cb runs; cb may be NULL.
 * Returns 0 (cb will run exactly once), or MP_ECLOSED / MP_ECONNRESET /
 * MP_ENOMEM at once (cb will not run). */
static inline int mp_stream_write(mp_stream *s, const mp_iovec *iov,
                                  int iovcnt, mp_write_cb cb, void *ud)
{
    return mp_stream_env(s)->ops->write(s, iov, iovcnt, cb, ud);
}

/* Close the stream. Pending writes complete with MP_ECANCELED, no read
 * callback runs after this call, then cb(ud) runs (cb may be NULL) and the
 * stream's memory is released. The peer sees EOF (or a reset in the
 * simulator when the process was killed). */
static inline void mp_stream_close(mp_stream *s, mp_close_cb cb, void *ud)
{
    mp_stream_env(s)->ops->stream_close(s, cb, ud);
}

/* The peer's address as "host:port"; owned by the stream. */
static inline const char *mp_stream_peer(mp_stream *s)
{
    return mp_stream_env(s)->ops->stream_peer(s);
}

/* ---- randomness ---------------------------------------------------------- */

/* 64 random bits. Seeded: the real backend from its seed (config or OS
 * entropy at start); the simulator from the world's seed. */
static inline uint64_t mp_env_random(mp_env *env)
{
    return env->ops->random_u64(env);
}

/* Fill buf with len bytes an observer cannot predict (handshake nonces):
 * the real backend reads the OS (getrandom), the simulator its seeded
 * generator (so a seed still replays). Returns 0, or MP_EIO when the OS
 * cannot give entropy (then buf must not be used). */
static inline int mp_env_secure_random(mp_env *env, void *buf, size_t len)
{
    if (env->ops->secure_random) return env->ops->secure_random(env, buf, len);
    uint8_t *p = (uint8_t *)buf;
    while (len > 0) {
        uint64_t r = env->ops->random_u64(env);
        size_t n = len < sizeof r ? len : sizeof r;
        for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(r >> (8 * i));
        p += n;
        len -= n;
    }
    return MP_OK;
}

/* Uniform in [0, n) without modulo bias; n == 0 gives 0. */
uint64_t mp_env_random_below(mp_env *env, uint64_t n);

/* Uniform double in [0, 1). */
double mp_env_random_unit(mp_env *env);

/* ---- logging ------------------------------------------------------------- */

/* Log a printf-style line if level >= env->log_level. The line is prefixed by
 * the env's time and name (log_wall_clock picks the clock), or is one JSON
 * object {"ts","level","node","msg"} when log_format is MP_LOG_FORMAT_JSON.
 * The message may carry bytes from outside (peer addresses, actor names): in
 * text lines every byte outside printable ASCII, and the backslash, is
 * escaped as \xNN (\\ for the backslash), so one call is one line and no
 * control sequence reaches a terminal; in JSON lines the same bytes are
 * \u00NN escapes (with \" and \\). The line goes to env->log_sink, or to
 * stderr. Never fails visibly (a message over 1023 bytes is cut). */
void mp_env_log(mp_env *env, mp_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mp_env_vlog(mp_env *env, mp_log_level level, const char *fmt,
                 va_list ap) __attribute__((format(printf, 3, 0)));

/* Parse "debug" | "info" | "warn" | "error" | "off". Returns 0 or MP_EINVAL. */
int mp_log_level_parse(const char *text, mp_log_level *out);

/* Parse "text" | "json". Returns 0 or MP_EINVAL. */
int mp_log_format_parse(const char *text, mp_log_format *out);

/* Render one log line into buf (cap bytes, NUL-terminated, cut to fit), as
 * mp_env_vlog does: fmt_ns is the time (wall-clock ns since the Unix epoch
 * when wall is nonzero, else the env's clock), name may be NULL. Exposed so
 * the format is unit-testable. Returns the length written. */
size_t mp_log_render(char *buf, size_t cap, mp_log_format format, int wall,
                     uint64_t time_ns, const char *name, mp_log_level level,
                     const char *msg);

/* ---- address helper ------------------------------------------------------ */

/* Split "host:port" into host (copied into host_buf, NUL-terminated) and port.
 * Rejects empty host, port outside 0..65535, trailing garbage, and hosts
 * longer than host_cap - 1. Returns 0 or MP_EADDR. */
int mp_addr_parse(const char *addr, char *host_buf, size_t host_cap,
                  uint16_t *port);

#ifdef __cplusplus
}
#endif
#endif
