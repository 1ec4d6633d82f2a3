/*
 * Benchmark of the peer transport on the real libuv backend: a pipelined
 * echo of 1,000,000 small frames between two transports on 127.0.0.1
 * (window 4096); prints frames/s and MB/s. Reports, never asserts, speed.
 * (`moonpool bench remote` measures calls through whole nodes, not the
 * transport alone.)
 *
 * Run: build/bench/bench_transport_echo
 * (Formerly test_transport_uv's MP_TRANSPORT_BENCH=1 test.)
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A failed check ends the benchmark: its figures would mean nothing. */
#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                 \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

#include "moonpool/env_uv.h"
#include "moonpool/env.h"
#include "moonpool/status.h"
#include "transport/handshake.h"
#include "transport/transport.h"

#define MS 1000000ull
#define GUARD_NS (20000ull * MS)

/* ---- harness ------------------------------------------------------------ */

typedef struct rx_log {
    uint64_t frames;
    uint64_t next_seq[4]; /* per sender id: the seq expected next */
    uint64_t bad;         /* out of order / malformed payloads */
    int restarts;
    uint32_t last_old_inc, last_new_inc;
    int downs;
    int last_down;
    char last_peer[80];
} rx_log;

typedef struct node {
    mp_transport *t;
    rx_log rx;
    int id;
    /* echo mode: every frame is sent back */
    int echo;
} node;

static void on_frame(void *ud, const char *peer, const mp_frame *f)
{
    node *n = ud;
    rx_log *r = &n->rx;
    snprintf(r->last_peer, sizeof r->last_peer, "%s", peer);
    r->frames++;
    if (n->echo) {
        int rc = mp_transport_send(n->t, peer, f);
        if (rc != MP_OK) r->bad++;
        return;
    }
    if (f->payload.len != 16) {
        r->bad++;
        return;
    }
    uint32_t sender;
    uint64_t seq;
    memcpy(&sender, f->payload.ptr, 4);
    memcpy(&seq, f->payload.ptr + 4, 8);
    if (sender >= 4 || seq != r->next_seq[sender]) {
        r->bad++;
        return;
    }
    r->next_seq[sender]++;
}


static void set_flag(void *ud) { *(int *)ud = 1; }

static bool flag_set(void *ud) { return *(int *)ud != 0; }

static void destroy_env(mp_env *env)
{
    for (int i = 0; i < 1000; i++) {
        if (mp_env_uv_destroy(env) == MP_OK) return;
        mp_env_uv_run_once(env, 0);
    }
    fprintf(stderr, "env never became destroyable\n");
    exit(1);
}

typedef bool (*pred_fn)(void *ud);
typedef struct count_wait {
    node *n;
    int sender;
    uint64_t want;
} count_wait;


/* Run until pred holds; fail (not hang) after the guard. */
static void run_until(mp_env *env, pred_fn pred, void *ud)
{
    int guard = 0;
    mp_timer_id g = mp_env_timer_start(env, GUARD_NS, set_flag, &guard);
    CHECK(g != 0);
    while (!pred(ud) && !guard) mp_env_uv_run_once(env, 1);
    if (guard) {
        count_wait *w = ud;
        fprintf(stderr, "guard: frames %llu next %llu bad %llu\n", (unsigned long long)w->n->rx.frames, (unsigned long long)w->n->rx.next_seq[w->sender], (unsigned long long)w->n->rx.bad);
    }
    CHECK(!(guard));
    mp_env_timer_cancel(env, g);
}

static void node_close(mp_env *env, node *n)
{
    int done = 0;
    mp_transport_close(n->t, 1000 * MS, set_flag, &done);
    run_until(env, flag_set, &done);
    n->t = NULL;
}

static void make_frame(mp_frame *f, uint8_t *payload, uint32_t sender, uint64_t seq)
{
    memset(f, 0, sizeof *f);
    f->kind = MP_FRAME_ONEWAY;
    f->method = mp_bytes_str("m");
    memcpy(payload, &sender, 4);
    memcpy(payload + 4, &seq, 8);
    memset(payload + 12, 0xab, 4);
    f->payload = mp_bytes_make(payload, 16);
}

static int send_seq(node *from, node *to, uint64_t seq)
{
    mp_frame f;
    uint8_t pl[16];
    make_frame(&f, pl, (uint32_t)from->id, seq);
    return mp_transport_send(from->t, mp_transport_self_addr(to->t), &f);
}



typedef struct bench {
    node *a, *b;
    uint64_t sent, total, window;
    uint64_t back; /* echoes received by a */
} bench;

static bench *g_bench;

static void bench_on_frame(void *ud, const char *peer, const mp_frame *f)
{
    node *n = ud;
    if (n->echo) {
        on_frame(ud, peer, f);
        return;
    }
    bench *B = g_bench;
    B->back++;
    /* Keep the window full. */
    while (B->sent < B->total && B->sent - B->back < B->window) {
        if (send_seq(B->a, B->b, B->sent) != MP_OK) break;
        B->sent++;
    }
}

static bool bench_done(void *ud)
{
    bench *B = ud;
    return B->back >= B->total;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void)
{
    mp_env *env = mp_env_uv_create(NULL, 9);
    static const mp_transport_callbacks bcbs = {bench_on_frame, NULL, NULL, NULL};
    node a, b;
    mp_transport_config cfg;
    mp_transport_config_init(&cfg);
    cfg.cluster_namespace = "bench";
    cfg.self_addr = "127.0.0.1:0";
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.id = 0;
    b.id = 1;
    b.echo = 1;
    CHECK((mp_transport_create(env, &cfg, &bcbs, &a, &a.t)) == (MP_OK));
    CHECK((mp_transport_create(env, &cfg, &bcbs, &b, &b.t)) == (MP_OK));
    bench B = {&a, &b, 0, 1000000, 4096, 0};
    g_bench = &B;
    double t0 = wall_s();
    while (B.sent < B.window) CHECK((send_seq(&a, &b, B.sent++)) == (MP_OK));
    run_until(env, bench_done, &B);
    double dt = wall_s() - t0;
    mp_peer_stats s;
    CHECK((mp_transport_peer_stats(a.t, mp_transport_self_addr(b.t), &s)) == (MP_OK));
    double mb = (double)(s.bytes_out + s.bytes_in) / 1e6;
    printf("transport bench: %llu frames each way (16-byte payload, %llu B on the wire), "
           "window %llu: %.0f frames/s round trip, %.1f MB/s both directions, %.2f s\n",
           (unsigned long long)B.total, (unsigned long long)(s.bytes_out / B.total),
           (unsigned long long)B.window, (double)B.total / dt, mb / dt, dt);
    node_close(env, &a);
    node_close(env, &b);
    destroy_env(env);
    return 0;
}
