/*
 * Micro benchmark of the hot data structures in src/util/ (map_u64,
 * map_str, heap): ns per operation. Reports, never asserts, speed.
 *
 * Run: build/bench/bench_util
 * (Formerly test_util's MP_UTIL_BENCH=1 run.)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"
#include "util/hash.h"
#include "util/heap.h"
#include "util/list.h"
#include "util/map.h"
#include "util/prng.h"

static char token_pool[4096]; /* values are addresses in here: non-NULL, distinct */

static void *token(uint64_t r)
{
    return &token_pool[r % sizeof token_pool];
}


static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static volatile uintptr_t bench_sink;

static void run_bench(void)
{
    enum { N = 1 << 20 };
    mp_map_u64 m;
    double t0, t1;
    uint64_t *keys = malloc(N * sizeof *keys);
    mp_prng rng;
    mp_prng_seed(&rng, 1);
    for (size_t i = 0; i < N; i++) keys[i] = mp_prng_next(&rng);

    mp_map_u64_init(&m, 0);
    t0 = now_ns();
    for (size_t i = 0; i < N; i++) mp_map_u64_put(&m, keys[i], token(i), NULL);
    t1 = now_ns();
    printf("bench: map_u64 put (growing)      %7.1f ns/op\n", (t1 - t0) / N);
    t0 = now_ns();
    for (size_t i = 0; i < N; i++) bench_sink += (uintptr_t)mp_map_u64_get(&m, keys[i]);
    t1 = now_ns();
    printf("bench: map_u64 get hit (1M keys)  %7.1f ns/op\n", (t1 - t0) / N);
    t0 = now_ns();
    for (size_t i = 0; i < N; i++) bench_sink += (uintptr_t)mp_map_u64_get(&m, keys[i] + 1);
    t1 = now_ns();
    printf("bench: map_u64 get miss (1M keys) %7.1f ns/op\n", (t1 - t0) / N);
    mp_map_u64_free(&m);

    /* Call-correlation pattern: a small live window, put + get + remove. */
    mp_map_u64_init(&m, 1024);
    t0 = now_ns();
    for (size_t i = 0; i < N; i++) {
        mp_map_u64_put(&m, i, token(i), NULL);
        if (i >= 1000) bench_sink += (uintptr_t)mp_map_u64_remove(&m, i - 1000);
    }
    t1 = now_ns();
    printf("bench: map_u64 put+remove (1k live) %5.1f ns/pair\n", (t1 - t0) / N);
    mp_map_u64_free(&m);

    /* String map, actor-id-like keys. */
    enum { NS = 100000 };
    char(*ids)[40] = malloc(NS * sizeof *ids);
    size_t *lens = malloc(NS * sizeof *lens);
    mp_map_str sm;
    mp_map_str_init(&sm, 0);
    for (size_t i = 0; i < NS; i++) lens[i] = (size_t)snprintf(ids[i], 40, "default::BankAccount/u%zu", i);
    t0 = now_ns();
    for (size_t i = 0; i < NS; i++) mp_map_str_put(&sm, ids[i], lens[i], token(i), NULL);
    t1 = now_ns();
    printf("bench: map_str put (growing)      %7.1f ns/op\n", (t1 - t0) / NS);
    t0 = now_ns();
    for (int rep = 0; rep < 10; rep++)
        for (size_t i = 0; i < NS; i++) bench_sink += (uintptr_t)mp_map_str_get(&sm, ids[i], lens[i]);
    t1 = now_ns();
    printf("bench: map_str get hit (100k)     %7.1f ns/op\n", (t1 - t0) / (10.0 * NS));
    mp_map_str_free(&sm);
    free(ids);
    free(lens);

    /* Timeout pattern: insert with growing deadlines, remove most before
     * they fire, pop the rest. */
    enum { HN = 1 << 16 };
    mp_heap_node *nodes = malloc(HN * sizeof *nodes);
    mp_heap h;
    mp_heap_init(&h);
    for (size_t i = 0; i < HN; i++) mp_heap_node_init(&nodes[i]);
    t0 = now_ns();
    for (int rep = 0; rep < 16; rep++) {
        for (size_t i = 0; i < HN; i++) {
            nodes[i].key = rep * (uint64_t)HN + i + mp_prng_below(&rng, 1000);
            mp_heap_insert(&h, &nodes[i]);
        }
        for (size_t i = 0; i < HN; i++)
            if (i % 10) mp_heap_remove(&h, &nodes[i]);
        while (mp_heap_pop(&h)) {
        }
    }
    t1 = now_ns();
    printf("bench: heap insert+remove/pop (64k) %5.1f ns/pair\n", (t1 - t0) / (16.0 * HN));
    mp_heap_free(&h);
    free(nodes);
    free(keys);
}

int main(void)
{
    run_bench();
    return 0;
}
