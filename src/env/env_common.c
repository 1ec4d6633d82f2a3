/*
 * Backend-independent parts of the env interface: logging, bounded random
 * draws, address parsing. They only use the ops table, so both the libuv and
 * the simulated backend share them.
 *
 * Log lines: one rendering function (mp_log_render) for both formats, so
 * text and JSON cannot drift apart and a unit test pins both. The time is
 * the wall clock only when the backend asks for it (log_wall_clock, set by
 * env_uv): operators correlate a real node's lines with other systems' logs
 * by absolute time, while a simulated world must print its own clock or a
 * replayed seed would not reproduce its log. The message is escaped here,
 * after formatting, because its arguments (peer addresses, actor names,
 * reasons from a database) may come from outside.
 */
#include "moonpool/env.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/prng.h"

uint64_t mp_env_random_below(mp_env *env, uint64_t n)
{
    if (n == 0) return 0;
    for (;;) {
        uint64_t x = mp_env_random(env);
        __uint128_t m = (__uint128_t)x * n;
        uint64_t lo = (uint64_t)m;
        if (lo >= n || lo >= (-n) % n) return (uint64_t)(m >> 64);
    }
}

double mp_env_random_unit(mp_env *env)
{
    return (double)(mp_env_random(env) >> 11) * (1.0 / 9007199254740992.0);
}

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

int mp_log_level_parse(const char *text, mp_log_level *out)
{
    if (!text) return MP_EINVAL;
    for (int i = 0; i <= MP_LOG_OFF; i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (mp_log_level)i;
            return MP_OK;
        }
    }
    return MP_EINVAL;
}

int mp_log_format_parse(const char *text, mp_log_format *out)
{
    if (!text || !out) return MP_EINVAL;
    if (strcmp(text, "text") == 0) {
        *out = MP_LOG_FORMAT_TEXT;
        return MP_OK;
    }
    if (strcmp(text, "json") == 0) {
        *out = MP_LOG_FORMAT_JSON;
        return MP_OK;
    }
    return MP_EINVAL;
}

/* A bounded output cursor: appends are cut at cap - 1 and the NUL kept. */
typedef struct out {
    char *p;
    size_t n, cap;
} out;

static void put_c(out *o, char c)
{
    if (o->n + 1 < o->cap) o->p[o->n++] = c;
    o->p[o->n] = '\0';
}

static void put_s(out *o, const char *s)
{
    while (*s) put_c(o, *s++);
}

/* Append s escaped: JSON string escapes, or \xNN in text. Never splits an
 * escape at the cut (an escape that does not fit whole is dropped). */
static void put_escaped(out *o, const char *s, int json)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
        char e[8];
        size_t k = 0;
        unsigned char c = *u;
        if (c == '\\') {
            e[k++] = '\\', e[k++] = '\\';
        } else if (json && c == '"') {
            e[k++] = '\\', e[k++] = '"';
        } else if (c >= 0x20 && c < 0x7f) {
            e[k++] = (char)c;
        } else if (json) {
            e[k++] = '\\', e[k++] = 'u', e[k++] = '0', e[k++] = '0';
            e[k++] = hex[c >> 4], e[k++] = hex[c & 15];
        } else {
            e[k++] = '\\', e[k++] = 'x', e[k++] = hex[c >> 4], e[k++] = hex[c & 15];
        }
        if (o->n + k + 1 > o->cap) return;
        for (size_t i = 0; i < k; i++) put_c(o, e[i]);
    }
}

/* RFC 3339 UTC with milliseconds, from ns since the Unix epoch. */
static void put_wall(out *o, uint64_t ns)
{
    time_t secs = (time_t)(ns / MP_NS_PER_SEC);
    struct tm tm;
    char t[96];
    if (!gmtime_r(&secs, &tm)) {
        put_s(o, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(t, sizeof t, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(ns % MP_NS_PER_SEC / MP_NS_PER_MS));
    put_s(o, t);
}

static void put_time(out *o, int wall, uint64_t ns)
{
    if (wall) {
        put_wall(o, ns);
        return;
    }
    char t[48];
    snprintf(t, sizeof t, "%llu.%06llu", (unsigned long long)(ns / MP_NS_PER_SEC),
             (unsigned long long)(ns % MP_NS_PER_SEC / MP_NS_PER_US));
    put_s(o, t);
}

size_t mp_log_render(char *buf, size_t cap, mp_log_format format, int wall,
                     uint64_t time_ns, const char *name, mp_log_level level,
                     const char *msg)
{
    if (!buf || cap == 0) return 0;
    out o = {buf, 0, cap};
    buf[0] = '\0';
    const char *lv = (unsigned)level < MP_LOG_OFF ? level_names[level] : "?";
    if (!name) name = "-";
    if (!msg) msg = "";
    if (format == MP_LOG_FORMAT_JSON) {
        put_s(&o, "{\"ts\":\"");
        put_time(&o, wall, time_ns);
        put_s(&o, "\",\"level\":\"");
        put_s(&o, lv);
        put_s(&o, "\",\"node\":\"");
        put_escaped(&o, name, 1);
        put_s(&o, "\",\"msg\":\"");
        /* keep room for the closing "} so a cut line is still JSON */
        if (o.cap > 3) {
            o.cap -= 2;
            put_escaped(&o, msg, 1);
            o.cap += 2;
        }
        put_s(&o, "\"}");
    } else {
        put_time(&o, wall, time_ns);
        put_c(&o, ' ');
        put_escaped(&o, name, 0);
        put_c(&o, ' ');
        put_s(&o, lv);
        put_s(&o, ": ");
        put_escaped(&o, msg, 0);
    }
    return o.n;
}

static uint64_t wall_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * MP_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

void mp_env_vlog(mp_env *env, mp_log_level level, const char *fmt, va_list ap)
{
    if (level < env->log_level || level >= MP_LOG_OFF) return;
    char msg[1024];
    char line[4600]; /* worst case: every byte of msg escaped as \u00NN */
    if (vsnprintf(msg, sizeof msg, fmt, ap) < 0) msg[0] = '\0';
    uint64_t now = env->log_wall_clock ? wall_ns() : mp_env_now(env);
    mp_log_render(line, sizeof line, env->log_format, env->log_wall_clock, now, env->name,
                  level, msg);
    if (env->log_sink) {
        env->log_sink(env->log_ud, level, line);
    } else {
        fprintf(stderr, "%s\n", line);
    }
}

void mp_env_log(mp_env *env, mp_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mp_env_vlog(env, level, fmt, ap);
    va_end(ap);
}

int mp_addr_parse(const char *addr, char *host_buf, size_t host_cap,
                  uint16_t *port)
{
    if (!addr || !host_buf || host_cap == 0) return MP_EADDR;
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr) return MP_EADDR;
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= host_cap) return MP_EADDR;
    for (size_t i = 0; i < hlen; i++) {
        char c = addr[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
        if (!ok) return MP_EADDR;
    }
    const char *p = colon + 1;
    if (*p == '\0') return MP_EADDR;
    unsigned long v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return MP_EADDR;
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > 65535) return MP_EADDR;
    }
    memcpy(host_buf, addr, hlen);
    host_buf[hlen] = '\0';
    *port = (uint16_t)v;
    return MP_OK;
}
