/*
 * Benchmark: activations per second with persistent state (state.h) on the
 * real env with the memory storage provider. Two phases over N actors:
 *   (1) new actors: load "none" + on_activate + one persist each;
 *   (2) a fresh node over the same storage: load of an existing record +
 *       decode + on_activate.
 * Reports, never asserts, speed. (`moonpool bench` measures activations
 * without state and persists, not the load of stored state.)
 *
 * Run: build/bench/bench_state_activation [N]   (default N = 200000)
 * (Formerly test_state_sim's MP_STATE_BENCH=1 test.)
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moonpool/env_uv.h"
#include "moonpool/node.h"
#include "moonpool/state.h"
#include "moonpool/storage.h"
#include "acc_actor.h"

/* A failed check ends the benchmark: its figures would mean nothing. */
#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                 \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

/* The actor: the state tests' Acc (tests/support/acc_actor.c). */

/* ---- activation rate with state loads (real env, memory storage) ---- */

typedef struct sbench {
    mp_env *env;
    mp_node *node;
    const char *method;
    uint64_t next, total, done, window, failed;
} sbench;

static void sbench_issue(sbench *b);

static void sbench_reply(void *ud, int status, const void *data, size_t len)
{
    sbench *b = ud;
    b->done++;
    if (status != 0) b->failed++;
    if (b->done == b->total) mp_env_uv_stop(b->env);
    if (b->next < b->total) sbench_issue(b);
}

static void sbench_issue(sbench *b)
{
    char key[32];
    snprintf(key, sizeof key, "a%llu", (unsigned long long)b->next++);
    mp_ref r;
    mp_ref_get(b->node, "Acc", key, &r);
    mp_call(b->node, &r, b->method, NULL, 0, NULL, sbench_reply, b);
}

static double sbench_phase(mp_env *env, mp_node *node, const char *method,
                           uint64_t n)
{
    sbench b = {.env = env, .node = node, .method = method, .total = n};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t i = 0; i < 1000 && b.next < n; i++) sbench_issue(&b);
    mp_env_uv_run(env);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(b.done == n);
    CHECK(b.failed == 0);
    return (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

static mp_node *sbench_node(mp_env *env, mp_storage *st)
{
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    const char *m[] = {"127.0.0.1:1"};
    cfg.cluster_namespace = "st";
    cfg.self_addr = m[0];
    cfg.members = m;
    cfg.member_count = 1;
    cfg.storage = st;
    mp_node *node;
    CHECK(mp_node_create(env, &cfg, &node) == MP_OK);
    CHECK(mp_node_register_type(node, &acc_type) == MP_OK);
    CHECK(mp_node_start(node) == MP_OK);
    return node;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000;
    mp_env *env = mp_env_uv_create(NULL, 1);
    CHECK(env != NULL);
    mp_storage *st = mp_storage_memory_create(env);
    CHECK(st != NULL);
    mp_node *a = sbench_node(env, st);
    double s1 = sbench_phase(env, a, "incr", n);
    mp_node_free_now(a);
    mp_node *b = sbench_node(env, st);
    double s2 = sbench_phase(env, b, "get", n);
    printf("bench: %llu new activations (load none + persist) in %.3f s: %.0f/s\n",
           (unsigned long long)n, s1, (double)n / s1);
    printf("bench: %llu activations loading stored state in %.3f s: %.0f/s\n",
           (unsigned long long)n, s2, (double)n / s2);
    mp_node_free_now(b);
    mp_storage_free_now(st);
    mp_env_uv_run(env);
    mp_env_uv_destroy(env);
    return 0;
}
