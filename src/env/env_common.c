/*
 * Backend-independent parts of the env interface: logging, bounded random
 * draws, address parsing. They only use the ops table, so both the libuv and
 * the simulated backend share them.
 */
#include "moonpool/env.h"

#include <stdio.h>
#include <string.h>

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

void mp_env_vlog(mp_env *env, mp_log_level level, const char *fmt, va_list ap)
{
    if (level < env->log_level || level >= MP_LOG_OFF) return;
    char line[1024];
    uint64_t now = mp_env_now(env);
    int n = snprintf(line, sizeof line, "%llu.%06llu %s %s: ",
                     (unsigned long long)(now / MP_NS_PER_SEC),
                     (unsigned long long)(now % MP_NS_PER_SEC / MP_NS_PER_US),
                     env->name ? env->name : "-", level_names[level]);
    if (n < 0) return;
    if ((size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
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
