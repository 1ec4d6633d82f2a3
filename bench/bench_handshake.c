/*
 * Benchmark of the connect-time cost of cluster authentication: on the real
 * libuv backend, on 127.0.0.1, a fresh transport dials a listening one,
 * completes the handshake and delivers one frame, then closes; repeated,
 * in alternating rounds without a cluster key (open mode) and with one
 * (HMAC-SHA256 proofs both ways), so that machine noise hits both alike.
 * Prints the median time per connection of each mode. Reports, never
 * asserts, speed.
 *
 * Run: build/bench/bench_handshake [CONNECTIONS_PER_ROUND] [ROUNDS]
 *      (default 500 x 10)
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moonpool/env.h"
#include "moonpool/env_uv.h"
#include "moonpool/status.h"
#include "transport/transport.h"

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                 \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

static uint64_t got;
static int closed;

static void on_frame(void *ud, const char *peer, const mp_frame *f) { got++; }
static void on_closed(void *ud) { closed = 1; }

static const mp_transport_callbacks CBS = {on_frame, NULL, NULL, NULL};

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static mp_transport *make(mp_env *env, const char *addr, uint32_t inc)
{
    mp_transport_config cfg;
    mp_transport_config_init(&cfg);
    cfg.cluster_namespace = "bench";
    cfg.self_addr = addr;
    cfg.incarnation = inc;
    mp_transport *t = NULL;
    CHECK(mp_transport_create(env, &cfg, &CBS, NULL, &t) == MP_OK);
    return t;
}

/* Seconds per connection over n connections (dial + handshake + 1 frame). */
static double round_of(mp_env *env, bool keyed, int n)
{
    memset(&env->net, 0, sizeof env->net);
    if (keyed) {
        env->net.has_key = 1;
        memset(env->net.key, 0x5a, sizeof env->net.key);
    }
    mp_transport *b = make(env, "127.0.0.1:0", 1);
    char baddr[80];
    snprintf(baddr, sizeof baddr, "%s", mp_transport_self_addr(b));
    uint64_t t0 = wall_ns();
    for (int i = 0; i < n; i++) {
        mp_transport *a = make(env, "127.0.0.1:0", (uint32_t)i + 1);
        mp_frame f;
        memset(&f, 0, sizeof f);
        f.kind = MP_FRAME_ONEWAY;
        f.method = mp_bytes_str("m");
        uint64_t want = got + 1;
        CHECK(mp_transport_send(a, baddr, &f) == MP_OK);
        while (got < want) mp_env_uv_run_once(env, 1);
        closed = 0;
        mp_transport_close(a, 0, on_closed, NULL);
        while (!closed) mp_env_uv_run_once(env, 1);
    }
    uint64_t t1 = wall_ns();
    closed = 0;
    mp_transport_close(b, 0, on_closed, NULL);
    while (!closed) mp_env_uv_run_once(env, 1);
    return (double)(t1 - t0) / 1e9 / n;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 500;
    int rounds = argc > 2 ? atoi(argv[2]) : 10;
    CHECK(n > 0 && rounds > 0 && rounds <= 100);
    mp_env *env = mp_env_uv_create(NULL, 1);
    CHECK(env);
    double open_s[100], keyed_s[100];
    for (int r = 0; r < rounds; r++) {
        open_s[r] = round_of(env, false, n);
        keyed_s[r] = round_of(env, true, n);
    }
    qsort(open_s, (size_t)rounds, sizeof(double), cmp_double);
    qsort(keyed_s, (size_t)rounds, sizeof(double), cmp_double);
    double o = open_s[rounds / 2], k = keyed_s[rounds / 2];
    printf("connect + handshake + 1 frame, %d connections x %d rounds (median round):\n", n,
           rounds);
    printf("  no key:    %.1f us per connection\n", o * 1e6);
    printf("  keyed:     %.1f us per connection (%+.1f us, %+.1f%%)\n", k * 1e6, (k - o) * 1e6,
           (k / o - 1) * 100);
    memset(&env->net, 0, sizeof env->net);
    for (int i = 0; i < 100 && mp_env_uv_destroy(env) != MP_OK; i++) mp_env_uv_run_once(env, 0);
    return 0;
}
