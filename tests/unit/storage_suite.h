/*
 * The provider-independent storage conformance suite, included by
 * test_storage.c (memory, SQLite, simulated) and test_storage_pg.c
 * (PostgreSQL). Each includer provides a fixture (st_fix) whose run_until
 * drives its env until a callback has set a flag, and cmocka
 * setup/teardown functions that put an st_fix in *state.
 *
 * Why one suite: the runtime must not be able to tell providers apart by
 * behaviour (ETag rules, ordering, callback timing, errors). Every check
 * here runs against every provider.
 *
 * Keys carry the fixture's prefix so that fixtures sharing a backing store
 * (one PostgreSQL database for the whole run) never see each other's rows.
 */
#ifndef MP_TESTS_STORAGE_SUITE_H
#define MP_TESTS_STORAGE_SUITE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/storage.h"

typedef struct st_fix st_fix;
struct st_fix {
    mp_storage *s;
    mp_env *env;
    /* Drive the env until *flag != 0 (fail the test rather than hang). */
    void (*run_until)(st_fix *f, const int *flag);
    /* Close the provider gracefully and open a new one on the same backing
     * store (NULL when the provider keeps nothing). Returns 0. */
    int (*reopen)(st_fix *f);
    char prefix[32];
    void *impl;
};

typedef struct st_res {
    int done;
    int status;
    uint64_t etag;
    size_t len;
    unsigned char *data; /* malloc'd copy for loads */
    mp_storage_writer writer;
    int seq;             /* completion order, from st_seq */
} st_res;

static int st_seq;

static void st_res_clear(st_res *r)
{
    free(r->data);
    memset(r, 0, sizeof *r);
}

static void st_on_load(void *ud, int status, const void *data, size_t len,
                       uint64_t etag)
{
    st_res *r = ud;
    assert_int_equal(r->done, 0);
    r->done = 1;
    r->status = status;
    r->etag = etag;
    r->len = len;
    r->seq = ++st_seq;
    free(r->data);
    r->data = NULL;
    if (status == 0 && len > 0) {
        assert_non_null(data);
        r->data = malloc(len);
        memcpy(r->data, data, len);
    }
    if (status != 0) {
        assert_null(data);
        assert_int_equal(len, 0);
        assert_int_equal(etag, 0);
    }
}

static void st_on_load_record(void *ud, int status,
                              const mp_storage_record *rec)
{
    st_res *r = ud;
    r->done = 1;
    r->status = status;
    r->seq = ++st_seq;
    if (status == 0) {
        assert_non_null(rec);
        r->etag = rec->etag;
        r->len = rec->len;
        r->writer = rec->writer;
        if (rec->len) {
            r->data = malloc(rec->len);
            memcpy(r->data, rec->data, rec->len);
        }
    } else {
        assert_null(rec);
    }
}

static void st_on_save(void *ud, int status, uint64_t etag)
{
    st_res *r = ud;
    assert_int_equal(r->done, 0);
    r->done = 1;
    r->status = status;
    r->etag = etag;
    r->seq = ++st_seq;
    if (status != 0) assert_int_equal(etag, 0);
}

static void st_on_clear(void *ud, int status)
{
    st_res *r = ud;
    assert_int_equal(r->done, 0);
    r->done = 1;
    r->status = status;
    r->seq = ++st_seq;
}

static const char *st_key(st_fix *f, const char *name)
{
    static char buf[8][MP_STORAGE_KEY_MAX + 1];
    static int slot;
    char *b = buf[slot++ & 7];
    snprintf(b, sizeof buf[0], "%s/T::%s", f->prefix, name);
    return b;
}

static void st_load(st_fix *f, const char *key, st_res *r)
{
    st_res_clear(r);
    assert_int_equal(mp_storage_load(f->s, key, strlen(key), st_on_load, r), 0);
    assert_int_equal(r->done, 0); /* never inside the call */
    f->run_until(f, &r->done);
}

static void st_save(st_fix *f, const char *key, const void *data, size_t len,
                    uint64_t expected, st_res *r)
{
    st_res_clear(r);
    mp_storage_writer w = {7, 0x1122334455667788ull};
    assert_int_equal(mp_storage_save(f->s, key, strlen(key), data, len,
                                     expected, &w, st_on_save, r),
                     0);
    assert_int_equal(r->done, 0);
    f->run_until(f, &r->done);
}

static void st_clear(st_fix *f, const char *key, uint64_t expected, st_res *r)
{
    st_res_clear(r);
    assert_int_equal(
        mp_storage_clear(f->s, key, strlen(key), expected, st_on_clear, r), 0);
    assert_int_equal(r->done, 0);
    f->run_until(f, &r->done);
}

/* Save and expect success; returns the new etag. */
static uint64_t st_put(st_fix *f, const char *key, const char *text,
                       uint64_t expected)
{
    st_res r = {0};
    st_save(f, key, text, strlen(text), expected, &r);
    assert_int_equal(r.status, 0);
    assert_true(r.etag > expected);
    return r.etag;
}

static void st_expect(st_fix *f, const char *key, const char *text,
                      uint64_t etag)
{
    st_res r = {0};
    st_load(f, key, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.etag, etag);
    if (!text) {
        assert_int_equal(r.len, 0);
    } else {
        assert_int_equal(r.len, strlen(text));
        assert_memory_equal(r.data, text, r.len);
    }
    st_res_clear(&r);
}

/* ---- the suite ----------------------------------------------------------- */

static void suite_load_missing(void **state)
{
    st_fix *f = *state;
    st_res r = {0};
    st_load(f, st_key(f, "nobody"), &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.etag, 0);
    assert_int_equal(r.len, 0);
    st_res_clear(&r);
}

static void suite_save_load_roundtrip(void **state)
{
    st_fix *f = *state;
    const char *k = st_key(f, "alice");
    uint64_t e1 = st_put(f, k, "{\"balance\":10}", 0);
    st_expect(f, k, "{\"balance\":10}", e1);
    uint64_t e2 = st_put(f, k, "{\"balance\":25}", e1);
    assert_true(e2 > e1);
    st_expect(f, k, "{\"balance\":25}", e2);
    /* The writer travels with the record. */
    st_res r = {0};
    assert_int_equal(mp_storage_load_record(f->s, k, strlen(k),
                                            st_on_load_record, &r),
                     0);
    f->run_until(f, &r.done);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.etag, e2);
    assert_int_equal(r.writer.incarnation, 7);
    assert_true(r.writer.activation == 0x1122334455667788ull);
    st_res_clear(&r);
}

static void suite_conflicts(void **state)
{
    st_fix *f = *state;
    const char *k = st_key(f, "bob");
    st_res r = {0};
    /* Expecting a record that does not exist. */
    st_save(f, k, "x", 1, 42, &r);
    assert_int_equal(r.status, MP_ECONFLICT);
    uint64_t e1 = st_put(f, k, "one", 0);
    /* Creating again: the key exists. */
    st_save(f, k, "two", 3, 0, &r);
    assert_int_equal(r.status, MP_ECONFLICT);
    /* A stale etag. */
    uint64_t e2 = st_put(f, k, "two", e1);
    st_save(f, k, "stale", 5, e1, &r);
    assert_int_equal(r.status, MP_ECONFLICT);
    st_save(f, k, "future", 6, e2 + 1000, &r);
    assert_int_equal(r.status, MP_ECONFLICT);
    /* Nothing changed. */
    st_expect(f, k, "two", e2);
    mp_storage_stats stats;
    mp_storage_get_stats(f->s, &stats);
    assert_true(stats.conflicts >= 4);
    st_res_clear(&r);
}

static void suite_clear(void **state)
{
    st_fix *f = *state;
    const char *k = st_key(f, "carol");
    st_res r = {0};
    st_clear(f, k, 0, &r); /* nothing there: fine */
    assert_int_equal(r.status, 0);
    uint64_t e1 = st_put(f, k, "v1", 0);
    st_clear(f, k, 0, &r);
    assert_int_equal(r.status, MP_ECONFLICT);
    st_clear(f, k, e1 + 1, &r);
    assert_int_equal(r.status, MP_ECONFLICT);
    st_expect(f, k, "v1", e1);
    st_clear(f, k, e1, &r);
    assert_int_equal(r.status, 0);
    st_load(f, k, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.etag, 0);
    /* A writer holding the etag from before the clear must not win, and a
     * new record never reuses an old etag (no ABA). */
    st_save(f, k, "stale", 5, e1, &r);
    assert_int_equal(r.status, MP_ECONFLICT);
    uint64_t e2 = st_put(f, k, "v2", 0);
    assert_true(e2 > e1);
    st_save(f, k, "stale", 5, e1, &r);
    assert_int_equal(r.status, MP_ECONFLICT);
    st_expect(f, k, "v2", e2);
    st_res_clear(&r);
}

static void suite_empty_and_binary_values(void **state)
{
    st_fix *f = *state;
    const char *k = st_key(f, "empty");
    st_res r = {0};
    st_save(f, k, NULL, 0, 0, &r);
    assert_int_equal(r.status, 0);
    uint64_t e = r.etag;
    assert_true(e > 0);
    st_expect(f, k, NULL, e); /* a record with an empty value, not "none" */
    /* Binary with NULs and every byte value, 1 MiB. */
    size_t n = 1 << 20;
    unsigned char *big = malloc(n);
    for (size_t i = 0; i < n; i++) big[i] = (unsigned char)(i * 131 + (i >> 8));
    const char *kb = st_key(f, "big");
    st_save(f, kb, big, n, 0, &r);
    assert_int_equal(r.status, 0);
    e = r.etag;
    st_load(f, kb, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.etag, e);
    assert_int_equal(r.len, n);
    assert_memory_equal(r.data, big, n);
    free(big);
    st_res_clear(&r);
}

static void st_noop_save(void *ud, int status, uint64_t etag) { (void)ud; }

static void suite_bad_input(void **state)
{
    st_fix *f = *state;
    char key[MP_STORAGE_KEY_MAX + 2];
    memset(key, 'k', sizeof key);
    static const char v[] = "v";
    /* Bad keys: refused at once, no callback. */
    assert_int_equal(mp_storage_save(f->s, key, 0, v, 1, 0, NULL,
                                     st_noop_save, NULL),
                     MP_EINVAL);
    assert_int_equal(mp_storage_save(f->s, key, MP_STORAGE_KEY_MAX + 1, v, 1,
                                     0, NULL, st_noop_save, NULL),
                     MP_EINVAL);
    assert_int_equal(mp_storage_save(f->s, "a b", 3, v, 1, 0, NULL,
                                     st_noop_save, NULL),
                     MP_EINVAL);
    assert_int_equal(mp_storage_save(f->s, "a\0b", 3, v, 1, 0, NULL,
                                     st_noop_save, NULL),
                     MP_EINVAL);
    assert_int_equal(mp_storage_save(f->s, "a\nb", 3, v, 1, 0, NULL,
                                     st_noop_save, NULL),
                     MP_EINVAL);
    assert_int_equal(mp_storage_save(f->s, "\xc3\xa9", 2, v, 1, 0, NULL,
                                     st_noop_save, NULL),
                     MP_EINVAL);
    assert_int_equal(mp_storage_save(f->s, NULL, 3, v, 1, 0, NULL,
                                     st_noop_save, NULL),
                     MP_EINVAL);
    /* NULL callback, NULL data with a length, too big, etag out of range. */
    assert_int_equal(mp_storage_save(f->s, "k", 1, v, 1, 0, NULL, NULL, NULL),
                     MP_EINVAL);
    assert_int_equal(mp_storage_save(f->s, "k", 1, NULL, 1, 0, NULL,
                                     st_noop_save, NULL),
                     MP_EINVAL);
    assert_int_equal(mp_storage_save(f->s, "k", 1, v,
                                     MP_STORAGE_VALUE_MAX + 1, 0, NULL,
                                     st_noop_save, NULL),
                     MP_ETOOBIG);
    assert_int_equal(mp_storage_save(f->s, "k", 1, v, 1, UINT64_MAX, NULL,
                                     st_noop_save, NULL),
                     MP_EINVAL);
    assert_int_equal(mp_storage_load(NULL, "k", 1, st_on_load, NULL),
                     MP_EINVAL);
    assert_int_equal(mp_storage_load(f->s, "k", 1, NULL, NULL), MP_EINVAL);
    mp_storage_stats stats;
    mp_storage_get_stats(f->s, &stats);
    assert_int_equal(stats.pending, 0);
    /* The longest key works. */
    int plen = snprintf(key, sizeof key, "%s/", f->prefix);
    memset(key + plen, 'z', MP_STORAGE_KEY_MAX - (size_t)plen);
    key[MP_STORAGE_KEY_MAX] = '\0';
    uint64_t e = st_put(f, key, "long", 0);
    st_expect(f, key, "long", e);
}

/* Issue several ops in one turn without waiting: effects and callbacks
 * follow issue order. */
static void suite_ordering(void **state)
{
    st_fix *f = *state;
    const char *k = st_key(f, "order");
    st_res a = {0}, b = {0}, c = {0}, d = {0}, e = {0};
    assert_int_equal(mp_storage_save(f->s, k, strlen(k), "first", 5, 0, NULL,
                                     st_on_save, &a),
                     0);
    assert_int_equal(mp_storage_load(f->s, k, strlen(k), st_on_load, &b), 0);
    /* Conflicts: the first save made the key exist. */
    assert_int_equal(mp_storage_save(f->s, k, strlen(k), "second", 6, 0,
                                     NULL, st_on_save, &c),
                     0);
    assert_int_equal(mp_storage_clear(f->s, k, strlen(k), 0, st_on_clear, &d),
                     0);
    assert_int_equal(mp_storage_load(f->s, k, strlen(k), st_on_load, &e), 0);
    assert_false(a.done || b.done || c.done || d.done || e.done);
    f->run_until(f, &e.done);
    assert_true(a.done && b.done && c.done && d.done);
    assert_true(a.seq < b.seq && b.seq < c.seq && c.seq < d.seq &&
                d.seq < e.seq);
    assert_int_equal(a.status, 0);
    assert_int_equal(b.status, 0);
    assert_int_equal(b.etag, a.etag);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "first", 5);
    assert_int_equal(c.status, MP_ECONFLICT);
    assert_int_equal(d.status, MP_ECONFLICT);
    assert_int_equal(e.status, 0);
    assert_int_equal(e.etag, a.etag);
    st_res_clear(&b);
    st_res_clear(&e);
}

/* Many keys in flight at once: each keeps its own value. */
static void suite_many_keys(void **state)
{
    st_fix *f = *state;
    enum { N = 200 };
    st_res *r = calloc(N, sizeof *r);
    char key[128], val[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "%s/Acct::k%d", f->prefix, i);
        snprintf(val, sizeof val, "value-%d", i * 7);
        assert_int_equal(mp_storage_save(f->s, key, strlen(key), val,
                                         strlen(val), 0, NULL, st_on_save,
                                         &r[i]),
                         0);
    }
    f->run_until(f, &r[N - 1].done);
    for (int i = 0; i < N; i++) {
        assert_true(r[i].done);
        assert_int_equal(r[i].status, 0);
    }
    for (int i = 0; i < N; i++) {
        uint64_t etag = r[i].etag;
        snprintf(key, sizeof key, "%s/Acct::k%d", f->prefix, i);
        snprintf(val, sizeof val, "value-%d", i * 7);
        st_res_clear(&r[i]);
        st_expect(f, key, val, etag);
    }
    free(r);
}

static void st_close_done(void *ud) { *(int *)ud = 1; }

/* Close: accepted ops still complete, later ops are refused, then the close
 * callback runs. The fixture's teardown must not close again: it sees
 * f->s == NULL. */
static void suite_close_drains(void **state)
{
    st_fix *f = *state;
    const char *k = st_key(f, "close");
    st_res a = {0};
    int closed = 0;
    assert_int_equal(mp_storage_save(f->s, k, strlen(k), "v", 1, 0, NULL,
                                     st_on_save, &a),
                     0);
    mp_storage_close(f->s, st_close_done, &closed);
    assert_int_equal(mp_storage_save(f->s, k, strlen(k), "w", 1, 0, NULL,
                                     st_noop_save, NULL),
                     MP_ECLOSED);
    assert_int_equal(a.done, 0);
    assert_int_equal(closed, 0);
    f->run_until(f, &closed);
    assert_true(a.done);
    assert_int_equal(a.status, 0);
    f->s = NULL;
    if (f->reopen) {
        assert_int_equal(f->reopen(f), 0);
        st_expect(f, k, "v", a.etag);
    }
}

/* free_now with operations pending: no callback ever runs, nothing leaks
 * (ASan/valgrind check the latter). */
static void suite_free_now_pending(void **state)
{
    st_fix *f = *state;
    const char *k = st_key(f, "freenow");
    st_res a = {0}, b = {0};
    assert_int_equal(mp_storage_save(f->s, k, strlen(k), "v", 1, 0, NULL,
                                     st_on_save, &a),
                     0);
    assert_int_equal(mp_storage_load(f->s, k, strlen(k), st_on_load, &b), 0);
    mp_storage_free_now(f->s);
    f->s = NULL;
    /* Let the env run what it still holds (threadpool job, timers). */
    int flag = 0;
    mp_timer_id t = mp_env_timer_start(f->env, 20 * 1000 * 1000ull,
                                       st_close_done, &flag);
    assert_true(t != 0);
    f->run_until(f, &flag);
    assert_int_equal(a.done, 0);
    assert_int_equal(b.done, 0);
}

static void suite_key_builder(void **state)
{
    (void)state;
    char buf[MP_STORAGE_KEY_MAX + 1];
    assert_int_equal(mp_storage_key(buf, sizeof buf, "bank", "Account", "alice"),
                     (int)strlen("bank/Account::alice"));
    assert_string_equal(buf, "bank/Account::alice");
    assert_int_equal(mp_storage_key(buf, sizeof buf, "ns", "T", "a b%/:\xff"),
                     (int)strlen("ns/T::a%20b%25/:%FF"));
    assert_string_equal(buf, "ns/T::a%20b%25/:%FF");
    assert_true(mp_storage_key_valid(buf, strlen(buf)));
    assert_int_equal(mp_storage_key(buf, sizeof buf, "", "T", "k"), MP_EINVAL);
    assert_int_equal(mp_storage_key(buf, sizeof buf, "n/s", "T", "k"),
                     MP_EINVAL);
    assert_int_equal(mp_storage_key(buf, sizeof buf, "ns", "T:", "k"),
                     MP_EINVAL);
    assert_int_equal(mp_storage_key(buf, sizeof buf, "ns", "T", ""), MP_EINVAL);
    assert_int_equal(mp_storage_key(NULL, 10, "ns", "T", "k"), MP_EINVAL);
    assert_int_equal(mp_storage_key(buf, 9, "ns", "T", "key"), MP_ETOOBIG);
    assert_int_equal(mp_storage_key(buf, 10, "ns", "T", "key"), 9);
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(mp_storage_key(buf, sizeof buf, "ns", "T", big),
                     MP_ETOOBIG);
    /* Distinct triples give distinct keys. */
    char b2[64];
    mp_storage_key(buf, sizeof buf, "a", "b", "c::d");
    mp_storage_key(b2, sizeof b2, "a", "b", "c%3A%3Ad");
    assert_string_not_equal(buf, b2);
}

/* ---- benchmark (MP_STORAGE_BENCH=1): reported, never asserted ----------- */

#include <time.h>

typedef struct st_bench_writer {
    st_fix *f;
    char key[96];
    uint64_t etag;
    uint64_t started_ns;
    struct st_bench *b;
} st_bench_writer;

typedef struct st_bench {
    uint64_t end_ns;
    uint64_t done;
    uint64_t errors;
    uint64_t *lat; /* microseconds */
    size_t nlat, caplat;
    int active;
    int finished;
} st_bench;

static uint64_t st_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void st_bench_issue(st_bench_writer *w);

static void st_bench_saved(void *ud, int status, uint64_t etag)
{
    st_bench_writer *w = ud;
    st_bench *b = w->b;
    uint64_t now = st_wall_ns();
    if (status == 0) {
        w->etag = etag;
        b->done++;
        if (b->nlat == b->caplat) {
            b->caplat = b->caplat ? b->caplat * 2 : 4096;
            b->lat = realloc(b->lat, b->caplat * sizeof *b->lat);
        }
        b->lat[b->nlat++] = (now - w->started_ns) / 1000;
    } else {
        b->errors++;
    }
    if (now < b->end_ns && b->errors < 100) {
        st_bench_issue(w);
    } else if (--b->active == 0) {
        b->finished = 1;
    }
}

static void st_bench_issue(st_bench_writer *w)
{
    static const char payload[] = "{\"balance\":1234567,\"history\":[1,2,3]}";
    w->started_ns = st_wall_ns();
    int rc = mp_storage_save(w->f->s, w->key, strlen(w->key), payload,
                             sizeof payload - 1, w->etag, NULL,
                             st_bench_saved, w);
    assert_int_equal(rc, 0);
}

static int st_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Persisted updates per second with `writers` concurrent writers, each
 * saving, waiting for its callback, and saving again, for `secs`. */
__attribute__((unused)) static void st_bench_run(st_fix *f, const char *label, int writers,
                         double secs)
{
    st_bench b = {0};
    st_bench_writer *w = calloc((size_t)writers, sizeof *w);
    mp_storage_stats s0, s1;
    mp_storage_get_stats(f->s, &s0);
    uint64_t t0 = st_wall_ns();
    b.end_ns = t0 + (uint64_t)(secs * 1e9);
    b.active = writers;
    for (int i = 0; i < writers; i++) {
        w[i].f = f;
        w[i].b = &b;
        snprintf(w[i].key, sizeof w[i].key, "%s/Bench::w%d-%d", f->prefix,
                 writers, i);
        st_bench_issue(&w[i]);
    }
    f->run_until(f, &b.finished);
    uint64_t t1 = st_wall_ns();
    mp_storage_get_stats(f->s, &s1);
    qsort(b.lat, b.nlat, sizeof *b.lat, st_cmp_u64);
    uint64_t p50 = b.nlat ? b.lat[b.nlat / 2] : 0;
    uint64_t p99 = b.nlat ? b.lat[(b.nlat * 99) / 100] : 0;
    double rate = (double)b.done / ((double)(t1 - t0) / 1e9);
    uint64_t tx = s1.transactions - s0.transactions;
    printf("bench %-8s writers=%-5d updates/s=%-9.0f p50=%lluus p99=%lluus "
           "txns=%llu avg_batch=%.1f errors=%llu\n",
           label, writers, rate, (unsigned long long)p50,
           (unsigned long long)p99, (unsigned long long)tx,
           tx ? (double)b.done / (double)tx : 0.0,
           (unsigned long long)b.errors);
    fflush(stdout);
    free(b.lat);
    free(w);
}

#define ST_SUITE(setup, teardown)                                             \
    cmocka_unit_test_setup_teardown(suite_load_missing, setup, teardown),     \
        cmocka_unit_test_setup_teardown(suite_save_load_roundtrip, setup,     \
                                        teardown),                            \
        cmocka_unit_test_setup_teardown(suite_conflicts, setup, teardown),    \
        cmocka_unit_test_setup_teardown(suite_clear, setup, teardown),        \
        cmocka_unit_test_setup_teardown(suite_empty_and_binary_values, setup, \
                                        teardown),                            \
        cmocka_unit_test_setup_teardown(suite_bad_input, setup, teardown),    \
        cmocka_unit_test_setup_teardown(suite_ordering, setup, teardown),     \
        cmocka_unit_test_setup_teardown(suite_many_keys, setup, teardown),    \
        cmocka_unit_test_setup_teardown(suite_close_drains, setup, teardown), \
        cmocka_unit_test_setup_teardown(suite_free_now_pending, setup,        \
                                        teardown)

#endif
