/*
 * The real env backend: include/moonpool/env.h on libuv (1.44).
 *
 * This is the only runtime file allowed to ask the OS for time, sockets and
 * entropy; everything above it sees only mp_env, so the same code also runs in
 * the simulator. The choices below are the readings of env.h we picked where
 * it leaves room, and why.
 *
 * Time. now_ns is uv_hrtime() minus an origin taken when the env is created,
 * with nanosecond resolution (not the loop's millisecond uv_now(), which
 * would make short timeouts off by more than the 10% S7 allows). The clock
 * is read when the loop enters one of our hot callbacks (timer pass,
 * deferred flush, read, write completion), and inside it that value serves
 * the next UE_NOW_REUSE now_ns calls before the clock is read again. Why:
 * the runtime reads the time on every call it submits and every request it
 * receives, and the vDSO read was ~12% of a local call (profile in
 * docs/bench.md). Correctness: time stays monotonic; a value is at most 64
 * reads old (the work of ~64 calls, microseconds), so a deadline computed
 * from it is early by no more than that, far inside S7's 10%, even in a
 * long callback such as a run-queue drain of 65536 turns (a value frozen for
 * a whole callback would have been milliseconds early there). Timers still
 * fire in deadline order and never before now_ns reaches their deadline.
 * Outside those callbacks (tests, tools, embedders' own callbacks on a
 * borrowed loop, rare connect/accept/close callbacks) every call reads the
 * clock.
 *
 * Timers. We keep our own binary min-heap of (deadline_ns, start sequence)
 * and drive it with ONE uv_timer armed for the earliest deadline. Why not one
 * uv_timer per mp timer: libuv orders timers by whole milliseconds of a loop
 * clock that is only refreshed once per turn, so two timers whose deadlines
 * differ by less than the loop's lateness could fire out of order, and libuv
 * 1.44 runs a 0 ms timer started from a timer callback in the same timer pass
 * (a timer re-arming itself with 0 would spin there and starve I/O). With our
 * heap, timers fire in exact deadline order, ties in start order; a timer
 * never fires before now_ns has reached its deadline (if the loop's coarse
 * clock wakes us early we just re-arm); sub-millisecond delays wait for the
 * next millisecond tick of the loop (libuv's granularity). A timer started
 * from a timer callback never fires in that same pass: when the earliest
 * deadline is already due at the end of a pass, the uv_timer is re-armed from
 * the prepare phase, so it fires after the loop has polled for I/O (delay 0
 * = "a later loop turn", as env.h says). Ids are (generation << 32 | slot)
 * into a slot table that also holds the timer itself (no allocation per
 * timer), so lookup on cancel is O(1) (removal O(log n)) and a stale id
 * (fired, cancelled, or of a reused slot) gets MP_ENOTFOUND.
 *
 * Defer. A "turn" is everything the loop runs between two polls for I/O.
 * Deferred callbacks run in the prepare phase, the last thing before the
 * poll, so everything queued by timers, I/O and close callbacks of the turn
 * is flushed together (the batching the transport relies on). The queue is
 * swapped out before it runs: callbacks deferred by deferred callbacks run on
 * the next turn, and an idle handle is kept active meanwhile so that the poll
 * does not block while work is queued. The prepare and idle handles are active
 * only while there is work, so an idle env does not keep uv_run alive.
 *
 * Run once. mp_env_uv_run_once(env, 1) is uv_run(UV_RUN_ONCE), whose poll
 * would block even when timers already fired earlier in the same turn, so a
 * test's `while (!done) mp_env_uv_run_once(env, 1)` could sleep until an
 * unrelated event. A turn that ran any of our timer or deferred callbacks
 * before its poll therefore polls without blocking (the idle handle again):
 * run_once(env, 1) returns soon after something happened. Only inside
 * run_once: under uv_run (mp_env_uv_run, a borrowed loop) nothing returns
 * after a turn, so that extra non-blocking poll would be one wasted
 * epoll_wait per turn (one per remote call at 1 in flight, docs/bench.md).
 *
 * Streams. TCP with TCP_NODELAY (the transport batches itself). Every
 * libuv-reported status goes through one mapping function (map_uv_err). Reads
 * land in one 64 KiB buffer per stream, reused for every read (data is valid
 * only during the read callback, as env.h says). Writes hand the caller's
 * buffers to uv_write without a copy; the uv_buf_t array itself is copied by
 * libuv, so it lives on our stack (or the heap for many iovecs) only for the
 * call. No uv_try_write: libuv's uv_write already writes at once when it can
 * and still reports through the callback on a later turn, which is exactly
 * env.h's rule. Closing a stream is abrupt (uv_close, no shutdown): libuv
 * completes queued writes with UV_ECANCELED (MP_ECANCELED) before our close
 * callback (a write that had fully completed still reports 0), and a closing
 * flag guarantees no read callback runs after mp_stream_close. The peer still
 * receives what the kernel already buffered, then EOF.
 *
 * Connect. Only MP_EADDR (and MP_EINVAL / MP_ENOMEM) come back at once.
 * Every other failure, even one libuv reports synchronously, is delivered
 * through the callback after the half-made handle is fully closed, so the
 * "never re-entrant" rule holds. Addresses are "a.b.c.d:port" or
 * "localhost:port" (mapped to 127.0.0.1); there is no DNS; connecting to port
 * 0 is MP_EADDR. The peer string of a connected stream is the address as
 * given (normalised "host:port"), like the simulator; for an accepted stream
 * it is the remote "ip:port".
 *
 * Accounting and destroy. The env counts what the user can still hear from:
 * pending timers, queued defers, in-flight connects, open streams and
 * listeners (until their close callback has run). mp_env_uv_destroy refuses
 * with MP_EBUSY while any remains, or when called from inside this env's
 * timer pass, defer flush or mp_env_uv_run*. (From a stream's or listener's
 * close callback on a borrowed loop it works: nothing touches the env after
 * that callback returns.) Internal handles live in a separate block that
 * frees itself when libuv has closed them, so destroy never has to run a
 * borrowed loop.
 *
 * Randomness: an mp_prng seeded from the given seed, or from uv_random (the
 * OS) when the seed is 0.
 *
 * Known limit: if allocating the stream for an accepted connection fails, the
 * accept callback gets MP_ENOMEM and libuv keeps that connection pending,
 * which pauses the listener until it can be accepted.
 */
#include "moonpool/env_uv.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "moonpool/env.h"
#include "util/prng.h"

#define UE_READ_BUF_SIZE (64u * 1024u)
#define UE_INLINE_IOV 8
#define UE_NONE UINT32_MAX
/* now_ns reads served from the cache before the clock is read again inside
 * one callback (see "Time"). */
#define UE_NOW_REUSE 64u

typedef struct ue_env ue_env;

/* The env's own libuv handles. Allocated apart from the env so that
 * destroying an env on a borrowed loop can return before libuv has run their
 * close callbacks. */
typedef struct ue_hooks {
    uv_timer_t tick;  /* armed for the earliest timer deadline */
    uv_prepare_t prep; /* runs deferred work before the poll */
    uv_idle_t idle;   /* keeps the poll from blocking while work waits */
    ue_env *env;      /* NULL once the env is destroyed */
    int active;       /* prep and idle started */
    int open;         /* handles not yet closed; the block is freed at 0 */
} ue_hooks;

/* One timer, stored in its slot. */
typedef struct ue_slot {
    uint64_t deadline_ns; /* in now_ns terms */
    uint64_t seq;         /* start order: breaks deadline ties */
    mp_timer_cb cb;       /* NULL when the slot is free */
    void *ud;
    uint32_t gen;  /* never 0, so no id is 0 */
    uint32_t link; /* heap index when used, next free slot when free */
} ue_slot;

typedef struct ue_defer_item {
    mp_defer_cb cb;
    void *ud;
} ue_defer_item;

typedef struct ue_dqueue {
    ue_defer_item *items;
    size_t len, cap;
} ue_dqueue;

struct ue_env {
    mp_env base; /* first: an mp_env * is a ue_env * */
    uv_loop_t *loop;
    int owns_loop;
    int running;      /* inside mp_env_uv_run / run_once */
    int flushing;     /* inside the deferred-callback flush */
    int firing;       /* inside the timer pass */
    int tick_pending; /* arm the tick from the prepare phase */
    int ran;          /* a timer or deferred callback ran this turn */
    int once;         /* inside mp_env_uv_run_once: see "Run once" */
    uint32_t now_depth; /* inside a callback that caches now_ns */
    uint32_t now_uses;  /* reads served from now_cache since it was read */
    uint64_t now_cache; /* now_ns when last read from the clock */
    uint64_t origin_ns;
    struct ue_write_req *wfree; /* recycled write requests */
    uint32_t nwfree;
    mp_prng prng;
    ue_hooks *hooks;
    ue_dqueue defers; /* queued for the next flush */
    ue_dqueue spare;  /* storage recycled between flushes */
    ue_slot *slots;
    uint32_t nslots, cap_slots, free_head;
    uint32_t *heap; /* slot indices, min-heap on (deadline_ns, seq) */
    uint32_t nheap;
    uint64_t next_seq;
    size_t nstreams, nlisteners, nconnects;
};

enum ue_stream_state { ST_CONNECTING, ST_OPEN, ST_CLOSING, ST_FAILED };

typedef struct ue_stream {
    mp_env *env; /* first: env.h reads *(mp_env **)stream */
    uv_tcp_t tcp;
    uv_connect_t creq;
    enum ue_stream_state state;
    int reading;
    int end_status; /* 0 while the read side is open, else why it ended */
    mp_read_cb read_cb;
    void *read_ud;
    uint8_t *rbuf;
    mp_connect_cb connect_cb;
    void *connect_ud;
    int connect_status;
    mp_close_cb close_cb;
    void *close_ud;
    char peer[80];
} ue_stream;

typedef struct ue_listener {
    mp_env *env; /* first: env.h reads *(mp_env **)listener */
    uv_tcp_t tcp;
    mp_accept_cb cb;
    void *ud;
    int closing;
    mp_close_cb close_cb;
    void *close_ud;
} ue_listener;

typedef struct ue_write_req {
    uv_write_t req;
    mp_write_cb cb;
    void *ud;
    struct ue_write_req *next_free;
} ue_write_req;

/* Write requests kept for reuse: one malloc/free per write was measurable on
 * the cross-node path; a few cover every stream's in-flight writes. */
#define UE_WREQ_KEEP 64

static const mp_env_ops ue_ops;

static ue_env *ue(mp_env *e)
{
    assert(e && e->ops == &ue_ops);
    return (ue_env *)e;
}

/* The one place libuv errors become mp_status codes. */
static int map_uv_err(int err)
{
    switch (err) {
    case 0: return MP_OK;
    case UV_ECONNREFUSED: return MP_ECONNREFUSED;
    case UV_ETIMEDOUT: return MP_ETIMEDOUT;
    case UV_ECONNRESET:
    case UV_EPIPE:
    case UV_ECONNABORTED: return MP_ECONNRESET;
    case UV_EOF: return MP_EOF;
    case UV_ECANCELED: return MP_ECANCELED;
    case UV_EADDRINUSE: return MP_EADDRINUSE;
    case UV_EADDRNOTAVAIL: return MP_EADDR;
    case UV_ENOMEM:
    case UV_ENOBUFS: return MP_ENOMEM;
    default: return err < 0 ? MP_EIO : MP_OK;
    }
}

/* ---- time ---------------------------------------------------------------- */

static uint64_t ue_now(mp_env *e)
{
    ue_env *env = ue(e);
    if (env->now_depth > 0 && env->now_uses < UE_NOW_REUSE) {
        env->now_uses++;
        return env->now_cache;
    }
    uint64_t t = uv_hrtime() - env->origin_ns;
    if (env->now_depth > 0) {
        env->now_cache = t; /* never older than UE_NOW_REUSE reads */
        env->now_uses = 0;
    }
    return t;
}

/* Start caching now_ns for the callback the loop is entering ("Time"). Every
 * now_enter is paired with a now_leave before the env can be destroyed:
 * only used in callbacks during which destroy refuses (a timer pass, a
 * flush, an open stream's read or write callback). */
static void now_enter(ue_env *env)
{
    if (env->now_depth++ == 0) {
        env->now_cache = uv_hrtime() - env->origin_ns;
        env->now_uses = 0;
    }
}

static void now_leave(ue_env *env)
{
    assert(env->now_depth > 0);
    env->now_depth--;
}

/* ---- deferred work hooks --------------------------------------------------- */

static void on_prepare(uv_prepare_t *p);
static void on_idle(uv_idle_t *i);

static void hooks_update(ue_env *env)
{
    ue_hooks *hk = env->hooks;
    int want = env->defers.len > 0 || env->tick_pending || (env->ran && env->once);
    if (want == hk->active) return;
    hk->active = want;
    if (want) {
        uv_prepare_start(&hk->prep, on_prepare);
        uv_idle_start(&hk->idle, on_idle);
    } else {
        uv_prepare_stop(&hk->prep);
        uv_idle_stop(&hk->idle);
    }
}

/* ---- timers ---------------------------------------------------------------- */

static int slot_before(const ue_env *env, uint32_t a, uint32_t b)
{
    const ue_slot *x = &env->slots[a], *y = &env->slots[b];
    if (x->deadline_ns != y->deadline_ns) return x->deadline_ns < y->deadline_ns;
    return x->seq < y->seq;
}

static void heap_set(ue_env *env, uint32_t i, uint32_t slot)
{
    env->heap[i] = slot;
    env->slots[slot].link = i;
}

static void heap_up(ue_env *env, uint32_t i)
{
    uint32_t slot = env->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!slot_before(env, slot, env->heap[parent])) break;
        heap_set(env, i, env->heap[parent]);
        i = parent;
    }
    heap_set(env, i, slot);
}

static void heap_down(ue_env *env, uint32_t i)
{
    uint32_t slot = env->heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1, best = l;
        if (l >= env->nheap) break;
        if (l + 1 < env->nheap && slot_before(env, env->heap[l + 1], env->heap[l])) {
            best = l + 1;
        }
        if (!slot_before(env, env->heap[best], slot)) break;
        heap_set(env, i, env->heap[best]);
        i = best;
    }
    heap_set(env, i, slot);
}

static void heap_remove(ue_env *env, uint32_t i)
{
    assert(i < env->nheap);
    uint32_t last = env->heap[--env->nheap];
    if (i == env->nheap) return;
    heap_set(env, i, last);
    heap_up(env, i);
    heap_down(env, env->slots[last].link);
}

static void slot_release(ue_env *env, uint32_t i)
{
    assert(i < env->nslots && env->slots[i].cb != NULL);
    ue_slot *s = &env->slots[i];
    s->cb = NULL;
    s->ud = NULL;
    if (++s->gen == 0) s->gen = 1;
    s->link = env->free_head;
    env->free_head = i;
}

static void on_tick(uv_timer_t *h);

/* Point the libuv timer at the earliest deadline (or stop it). */
static void tick_update(ue_env *env)
{
    ue_hooks *hk = env->hooks;
    if (env->firing) return; /* on_tick re-arms at the end of its pass */
    if (env->nheap == 0) {
        uv_timer_stop(&hk->tick);
        return;
    }
    uint64_t deadline = env->slots[env->heap[0]].deadline_ns;
    uint64_t now = ue_now(&env->base);
    uint64_t timeout = 0;
    if (deadline > now) {
        /* The first loop millisecond at or after the deadline. uv_now and
         * uv_hrtime share one origin and libuv's due time is uv_now +
         * timeout, so an absolute target makes a stale uv_now harmless. */
        uint64_t abs_ns = env->origin_ns + deadline;
        if (abs_ns < deadline) abs_ns = UINT64_MAX;
        uint64_t due_ms = abs_ns / MP_NS_PER_MS + (abs_ns % MP_NS_PER_MS != 0);
        uint64_t loop_ms = uv_now(env->loop);
        timeout = due_ms > loop_ms ? due_ms - loop_ms : 1;
    }
    int rc = uv_timer_start(&hk->tick, on_tick, timeout, 0);
    assert(rc == 0); /* fails only for a closing handle or a NULL cb */
    (void)rc;
}

static void on_tick(uv_timer_t *h)
{
    ue_hooks *hk = h->data;
    ue_env *env = hk->env;
    assert(env && !env->firing);
    env->firing = 1;
    now_enter(env);
    /* Timers started by these callbacks wait for a later pass, even at
     * delay 0: `limit` excludes them and `now` is fixed for the pass. */
    uint64_t now = ue_now(&env->base);
    uint64_t limit = env->next_seq;
    while (env->nheap > 0) {
        uint32_t i = env->heap[0];
        ue_slot *s = &env->slots[i];
        if (s->deadline_ns > now || s->seq >= limit) break;
        mp_timer_cb cb = s->cb;
        void *ud = s->ud;
        heap_remove(env, 0);
        slot_release(env, i); /* before cb: cancelling its own id is ENOTFOUND */
        env->ran = 1;
        cb(ud);
    }
    env->firing = 0;
    now_leave(env); /* the check below wants the live clock */
    hooks_update(env); /* env->ran: this turn's poll must not block */
    if (env->nheap > 0 && env->slots[env->heap[0]].deadline_ns <= ue_now(&env->base)) {
        /* Due already: arming with 0 here would run it in this same libuv
         * timer pass. Arm from the prepare phase instead (after the poll). */
        uv_timer_stop(&hk->tick);
        env->tick_pending = 1;
        hooks_update(env);
    } else {
        tick_update(env);
    }
}

static mp_timer_id ue_timer_start(mp_env *e, uint64_t delay_ns, mp_timer_cb cb,
                                  void *ud)
{
    ue_env *env = ue(e);
    if (!cb) return 0;
    uint32_t i;
    if (env->free_head != UE_NONE) {
        i = env->free_head;
        assert(i < env->nslots && env->slots[i].cb == NULL);
        env->free_head = env->slots[i].link;
    } else {
        if (env->nslots == env->cap_slots) {
            if (env->cap_slots >= UE_NONE / 4) return 0;
            uint32_t cap = env->cap_slots ? env->cap_slots * 2 : 16;
            ue_slot *s = realloc(env->slots, (size_t)cap * sizeof *s);
            if (!s) return 0;
            env->slots = s;
            uint32_t *hp = realloc(env->heap, (size_t)cap * sizeof *hp);
            if (!hp) return 0; /* slots grew, harmless */
            env->heap = hp;
            env->cap_slots = cap;
        }
        i = env->nslots++;
        env->slots[i] = (ue_slot){.gen = 1, .link = UE_NONE};
    }
    ue_slot *s = &env->slots[i];
    uint64_t now = ue_now(e);
    s->deadline_ns = delay_ns > UINT64_MAX - now ? UINT64_MAX : now + delay_ns;
    s->seq = env->next_seq++;
    s->cb = cb;
    s->ud = ud;
    assert(env->nheap < env->cap_slots);
    env->heap[env->nheap] = i;
    s->link = env->nheap++;
    heap_up(env, s->link);
    if (env->heap[0] == i) tick_update(env);
    return ((uint64_t)s->gen << 32) | i;
}

static int ue_timer_cancel(mp_env *e, mp_timer_id id)
{
    ue_env *env = ue(e);
    uint32_t i = (uint32_t)id;
    uint32_t gen = (uint32_t)(id >> 32);
    if (id == 0 || i >= env->nslots) return MP_ENOTFOUND;
    ue_slot *s = &env->slots[i];
    if (s->cb == NULL || s->gen != gen) return MP_ENOTFOUND;
    assert(s->link < env->nheap && env->heap[s->link] == i);
    int was_first = s->link == 0;
    heap_remove(env, s->link);
    slot_release(env, i);
    /* An earlier-than-needed wakeup is harmless, but an armed tick with no
     * timer left would keep uv_run from returning. */
    if (was_first && env->nheap == 0) tick_update(env);
    return MP_OK;
}

/* ---- defer ----------------------------------------------------------------- */

static int ue_defer(mp_env *e, mp_defer_cb cb, void *ud)
{
    ue_env *env = ue(e);
    if (!cb) return MP_EINVAL;
    ue_dqueue *q = &env->defers;
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 32;
        ue_defer_item *items = realloc(q->items, cap * sizeof *items);
        if (!items) return MP_ENOMEM;
        q->items = items;
        q->cap = cap;
    }
    q->items[q->len++] = (ue_defer_item){cb, ud};
    hooks_update(env);
    return MP_OK;
}

static void on_prepare(uv_prepare_t *p)
{
    ue_hooks *hk = p->data;
    ue_env *env = hk->env;
    assert(env && !env->flushing);
    env->flushing = 1;
    now_enter(env);
    /* Run this turn's batch; what it defers goes to a fresh queue. */
    ue_dqueue batch = env->defers;
    env->defers = env->spare;
    env->spare = (ue_dqueue){0};
    assert(env->defers.len == 0);
    for (size_t i = 0; i < batch.len; i++) batch.items[i].cb(batch.items[i].ud);
    int ran = env->ran || batch.len > 0;
    batch.len = 0;
    assert(env->spare.items == NULL);
    env->spare = batch;
    env->flushing = 0;
    now_leave(env);
    if (env->tick_pending) {
        env->tick_pending = 0;
        tick_update(env); /* due timers fire after this turn's poll */
    }
    /* If this turn already ran callbacks of ours, keep the idle handle for
     * this one poll so it does not block: mp_env_uv_run_once(env, 1) then
     * returns once something happened instead of waiting for the next
     * event. The next prepare (nothing ran) stops it. */
    env->ran = 0;
    hooks_update(env);
    if (ran && env->once && !env->hooks->active) {
        env->hooks->active = 1;
        uv_prepare_start(&env->hooks->prep, on_prepare);
        uv_idle_start(&env->hooks->idle, on_idle);
    }
}

static void on_idle(uv_idle_t *i)
{
    /* Nothing: being active keeps the poll from blocking while work waits. */
}

static void on_hook_closed(uv_handle_t *h)
{
    ue_hooks *hk = h->data;
    assert(hk->open > 0);
    if (--hk->open == 0) free(hk);
}

/* ---- addresses ------------------------------------------------------------- */

static int resolve(const char *addr, int allow_port0, struct sockaddr_in *sa,
                   char *norm, size_t norm_cap)
{
    char host[64];
    uint16_t port;
    if (mp_addr_parse(addr, host, sizeof host, &port) != MP_OK) return MP_EADDR;
    if (port == 0 && !allow_port0) return MP_EADDR;
    const char *ip = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    if (uv_ip4_addr(ip, port, sa) != 0) return MP_EADDR;
    if (norm) snprintf(norm, norm_cap, "%s:%u", host, (unsigned)port);
    return MP_OK;
}

static void name_of(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char ip[64];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        if (uv_ip4_name(in, ip, sizeof ip) == 0) {
            snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
            return;
        }
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        if (uv_ip6_name(in6, ip, sizeof ip) == 0) {
            snprintf(out, cap, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
            return;
        }
    }
    snprintf(out, cap, "unknown:0");
}

/* ---- streams --------------------------------------------------------------- */

static ue_stream *stream_new(ue_env *env)
{
    ue_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->env = &env->base;
    int rc = uv_tcp_init(env->loop, &s->tcp);
    if (rc != 0) {
        free(s);
        return NULL;
    }
    s->tcp.data = s;
    s->creq.data = s;
    return s;
}

static void on_stream_abort_closed(uv_handle_t *h)
{
    /* A stream that was never handed out: only free it. */
    ue_stream *s = h->data;
    free(s->rbuf);
    free(s);
}

static void on_stream_closed(uv_handle_t *h)
{
    ue_stream *s = h->data;
    ue_env *env = ue(s->env);
    assert(s->state == ST_CLOSING);
    mp_close_cb cb = s->close_cb;
    void *ud = s->close_ud;
    assert(env->nstreams > 0);
    env->nstreams--;
    free(s->rbuf);
    free(s);
    if (cb) cb(ud); /* last: may destroy the env */
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    ue_stream *s = h->data;
    assert(s->rbuf);
    buf->base = (char *)s->rbuf;
    buf->len = UE_READ_BUF_SIZE;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    ue_stream *s = st->data;
    if (s->state != ST_OPEN || !s->reading) return; /* closed or stopped */
    if (nread > 0) {
        assert((size_t)nread <= UE_READ_BUF_SIZE);
        ue_env *env = ue(s->env);
        now_enter(env);
        s->read_cb(s->read_ud, (mp_stream *)s, (const uint8_t *)buf->base,
                   (size_t)nread, MP_OK);
        now_leave(env);
        return;
    }
    if (nread == 0) return; /* EAGAIN: nothing this time */
    uv_read_stop(st);
    s->reading = 0;
    s->end_status = map_uv_err((int)nread);
    if (s->end_status == MP_OK) s->end_status = MP_EIO;
    s->read_cb(s->read_ud, (mp_stream *)s, NULL, 0, s->end_status);
}

static int ue_read_start(mp_stream *ms, mp_read_cb cb, void *ud)
{
    ue_stream *s = (ue_stream *)ms;
    if (!cb) return MP_EINVAL;
    if (s->state != ST_OPEN) return MP_ECLOSED;
    if (s->end_status != MP_OK) return s->end_status;
    if (!s->rbuf) {
        s->rbuf = malloc(UE_READ_BUF_SIZE);
        if (!s->rbuf) return MP_ENOMEM;
    }
    s->read_cb = cb;
    s->read_ud = ud;
    if (!s->reading) {
        int rc = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
        if (rc != 0) return map_uv_err(rc);
        s->reading = 1;
    }
    return MP_OK;
}

static int ue_read_stop(mp_stream *ms)
{
    ue_stream *s = (ue_stream *)ms;
    if (s->state != ST_OPEN) return MP_ECLOSED;
    if (s->reading) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->reading = 0;
    }
    return MP_OK;
}

static ue_write_req *wreq_get(ue_env *env)
{
    ue_write_req *w = env->wfree;
    if (!w) return malloc(sizeof *w);
    env->wfree = w->next_free;
    env->nwfree--;
    return w;
}

static void wreq_put(ue_env *env, ue_write_req *w)
{
    if (env->nwfree >= UE_WREQ_KEEP) {
        free(w);
        return;
    }
    w->next_free = env->wfree;
    env->wfree = w;
    env->nwfree++;
}

static void on_write(uv_write_t *req, int status)
{
    ue_write_req *w = req->data;
    /* The stream (and so the env) outlives its write callbacks: libuv runs
     * them, cancelled ones included, before the stream's close callback. */
    ue_stream *s = req->handle->data;
    ue_env *env = ue(s->env);
    mp_write_cb cb = w->cb;
    void *ud = w->ud;
    wreq_put(env, w);
    if (cb) {
        now_enter(env);
        cb(ud, map_uv_err(status));
        now_leave(env);
    }
}

static int ue_write(mp_stream *ms, const mp_iovec *iov, int iovcnt,
                    mp_write_cb cb, void *ud)
{
    ue_stream *s = (ue_stream *)ms;
    if (s->state != ST_OPEN) return MP_ECLOSED;
    if (iovcnt < 0 || (iovcnt > 0 && !iov)) return MP_EINVAL;
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].base && iov[i].len) return MP_EINVAL;
    }
    ue_env *env = ue(s->env);
    ue_write_req *w = wreq_get(env);
    if (!w) return MP_ENOMEM;
    uv_buf_t inline_bufs[UE_INLINE_IOV];
    uv_buf_t *bufs = inline_bufs;
    unsigned n = iovcnt == 0 ? 1u : (unsigned)iovcnt;
    if (n > UE_INLINE_IOV) {
        bufs = malloc(n * sizeof *bufs);
        if (!bufs) {
            wreq_put(env, w);
            return MP_ENOMEM;
        }
    }
    if (iovcnt == 0) {
        bufs[0].base = NULL; /* an empty write still completes via cb */
        bufs[0].len = 0;
    }
    for (int i = 0; i < iovcnt; i++) {
        /* libuv never writes through base; the cast only drops const. */
        bufs[i].base = (char *)(uintptr_t)iov[i].base;
        bufs[i].len = iov[i].len;
    }
    w->cb = cb;
    w->ud = ud;
    w->req.data = w;
    int rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, bufs, n, on_write);
    if (bufs != inline_bufs) free(bufs); /* uv_write copied the array */
    if (rc != 0) {
        wreq_put(env, w);
        rc = map_uv_err(rc);
        return rc == MP_ENOMEM || rc == MP_ECONNRESET ? rc : MP_ECLOSED;
    }
    return MP_OK;
}

static void ue_stream_close(mp_stream *ms, mp_close_cb cb, void *ud)
{
    ue_stream *s = (ue_stream *)ms;
    if (s->state == ST_CLOSING) {
        mp_env_log(s->env, MP_LOG_WARN, "stream %s closed twice", s->peer);
        return;
    }
    assert(s->state == ST_OPEN);
    s->state = ST_CLOSING; /* from here on_read delivers nothing */
    s->close_cb = cb;
    s->close_ud = ud;
    if (s->reading) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->reading = 0;
    }
    uv_close((uv_handle_t *)&s->tcp, on_stream_closed);
}

static const char *ue_stream_peer(mp_stream *ms)
{
    return ((ue_stream *)ms)->peer;
}

/* ---- connect --------------------------------------------------------------- */

static void on_connect_failed_closed(uv_handle_t *h)
{
    ue_stream *s = h->data;
    ue_env *env = ue(s->env);
    assert(s->state == ST_FAILED && s->connect_status < 0);
    mp_connect_cb cb = s->connect_cb;
    void *ud = s->connect_ud;
    int status = s->connect_status;
    assert(env->nconnects > 0);
    env->nconnects--;
    free(s->rbuf);
    free(s);
    cb(ud, NULL, status); /* last: may destroy the env */
}

static void connect_fail(ue_stream *s, int uv_status)
{
    s->state = ST_FAILED;
    s->connect_status = map_uv_err(uv_status);
    if (s->connect_status == MP_OK) s->connect_status = MP_EIO;
    uv_close((uv_handle_t *)&s->tcp, on_connect_failed_closed);
}

static void on_connect(uv_connect_t *req, int status)
{
    ue_stream *s = req->data;
    ue_env *env = ue(s->env);
    assert(s->state == ST_CONNECTING);
    if (status != 0) {
        connect_fail(s, status);
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    s->state = ST_OPEN;
    assert(env->nconnects > 0);
    env->nconnects--;
    env->nstreams++;
    s->connect_cb(s->connect_ud, (mp_stream *)s, MP_OK);
}

static int ue_connect(mp_env *e, const char *addr, mp_connect_cb cb, void *ud)
{
    ue_env *env = ue(e);
    if (!cb) return MP_EINVAL;
    struct sockaddr_in sa;
    char norm[80];
    int rc = resolve(addr, 0, &sa, norm, sizeof norm);
    if (rc != MP_OK) return rc;
    ue_stream *s = stream_new(env);
    if (!s) return MP_ENOMEM;
    s->state = ST_CONNECTING;
    s->connect_cb = cb;
    s->connect_ud = ud;
    snprintf(s->peer, sizeof s->peer, "%s", norm);
    env->nconnects++;
    rc = uv_tcp_connect(&s->creq, &s->tcp, (const struct sockaddr *)&sa,
                        on_connect);
    if (rc != 0) connect_fail(s, rc); /* reported through cb, later */
    return MP_OK;
}

/* ---- listeners ------------------------------------------------------------- */

static void on_listener_abort_closed(uv_handle_t *h) { free(h->data); }

static void on_listener_closed(uv_handle_t *h)
{
    ue_listener *l = h->data;
    ue_env *env = ue(l->env);
    mp_close_cb cb = l->close_cb;
    void *ud = l->close_ud;
    assert(env->nlisteners > 0);
    env->nlisteners--;
    free(l);
    if (cb) cb(ud); /* last: may destroy the env */
}

static void on_connection(uv_stream_t *server, int status)
{
    ue_listener *l = server->data;
    ue_env *env = ue(l->env);
    if (l->closing) return;
    if (status < 0) {
        int st = map_uv_err(status);
        mp_env_log(l->env, MP_LOG_WARN, "accept failed: %s", uv_strerror(status));
        l->cb(l->ud, NULL, st == MP_OK ? MP_EIO : st);
        return;
    }
    ue_stream *s = stream_new(env);
    if (!s) {
        l->cb(l->ud, NULL, MP_ENOMEM);
        return;
    }
    int rc = uv_accept(server, (uv_stream_t *)&s->tcp);
    if (rc != 0) {
        s->state = ST_FAILED;
        uv_close((uv_handle_t *)&s->tcp, on_stream_abort_closed);
        rc = map_uv_err(rc);
        l->cb(l->ud, NULL, rc == MP_OK ? MP_EIO : rc);
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) != 0) {
        ss.ss_family = AF_UNSPEC;
    }
    name_of(&ss, s->peer, sizeof s->peer);
    s->state = ST_OPEN;
    env->nstreams++;
    l->cb(l->ud, (mp_stream *)s, MP_OK);
}

static int ue_listen(mp_env *e, const char *addr, mp_accept_cb cb, void *ud,
                     mp_listener **out)
{
    ue_env *env = ue(e);
    if (!out) return MP_EINVAL;
    *out = NULL;
    if (!cb) return MP_EINVAL;
    struct sockaddr_in sa;
    int rc = resolve(addr, 1, &sa, NULL, 0);
    if (rc != MP_OK) return rc;
    ue_listener *l = calloc(1, sizeof *l);
    if (!l) return MP_ENOMEM;
    l->env = e;
    l->cb = cb;
    l->ud = ud;
    rc = uv_tcp_init(env->loop, &l->tcp);
    if (rc != 0) {
        free(l);
        return map_uv_err(rc) == MP_ENOMEM ? MP_ENOMEM : MP_EIO;
    }
    l->tcp.data = l;
    rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&sa, 0);
    /* libuv may defer a bind error (EADDRINUSE) until uv_listen. */
    if (rc == 0) rc = uv_listen((uv_stream_t *)&l->tcp, SOMAXCONN, on_connection);
    if (rc != 0) {
        uv_close((uv_handle_t *)&l->tcp, on_listener_abort_closed);
        rc = map_uv_err(rc);
        return rc == MP_EADDRINUSE || rc == MP_ENOMEM || rc == MP_EADDR ? rc
                                                                       : MP_EIO;
    }
    env->nlisteners++;
    *out = (mp_listener *)l;
    return MP_OK;
}

static void ue_listener_close(mp_listener *ml, mp_close_cb cb, void *ud)
{
    ue_listener *l = (ue_listener *)ml;
    if (l->closing) {
        mp_env_log(l->env, MP_LOG_WARN, "listener closed twice");
        return;
    }
    l->closing = 1;
    l->close_cb = cb;
    l->close_ud = ud;
    uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
}

static int ue_listener_port(mp_listener *ml)
{
    ue_listener *l = (ue_listener *)ml;
    if (l->closing) return MP_ECLOSED;
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len) != 0) return MP_EIO;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return MP_EIO;
}

/* ---- randomness ------------------------------------------------------------ */

static uint64_t ue_random(mp_env *e) { return mp_prng_next(&ue(e)->prng); }

/* Nonces must be unpredictable to a peer: the OS's generator (getrandom
 * through libuv, synchronous), never the seeded PRNG above. */
static int ue_secure_random(mp_env *e, void *buf, size_t len)
{
    (void)e;
    if (len == 0) return MP_OK;
    return uv_random(NULL, NULL, buf, len, 0, NULL) == 0 ? MP_OK : MP_EIO;
}

/* ---- the ops table and the env's life ------------------------------------- */

static const mp_env_ops ue_ops = {
    .now_ns = ue_now,
    .timer_start = ue_timer_start,
    .timer_cancel = ue_timer_cancel,
    .defer = ue_defer,
    .listen = ue_listen,
    .listener_close = ue_listener_close,
    .connect = ue_connect,
    .read_start = ue_read_start,
    .read_stop = ue_read_stop,
    .write = ue_write,
    .stream_close = ue_stream_close,
    .stream_peer = ue_stream_peer,
    .random_u64 = ue_random,
    .listener_port = ue_listener_port,
    .secure_random = ue_secure_random,
};

int mp_env_is_uv(mp_env *env) { return env && env->ops == &ue_ops; }

mp_env *mp_env_uv_create(struct uv_loop_s *loop, uint64_t seed)
{
    ue_env *env = calloc(1, sizeof *env);
    ue_hooks *hk = calloc(1, sizeof *hk);
    if (!env || !hk) goto fail;
    if (loop) {
        env->loop = loop;
    } else {
        env->loop = malloc(sizeof *env->loop);
        if (!env->loop) goto fail;
        if (uv_loop_init(env->loop) != 0) {
            free(env->loop);
            env->loop = NULL;
            goto fail;
        }
        env->owns_loop = 1;
    }
    uv_timer_init(env->loop, &hk->tick);
    uv_prepare_init(env->loop, &hk->prep);
    uv_idle_init(env->loop, &hk->idle);
    hk->tick.data = hk;
    hk->prep.data = hk;
    hk->idle.data = hk;
    hk->env = env;
    hk->open = 3;
    env->hooks = hk;

    env->base.ops = &ue_ops;
    env->base.log_level = MP_LOG_WARN;
    env->base.log_sink = NULL;
    env->base.log_ud = NULL;
    env->base.name = "uv";
    env->base.log_format = MP_LOG_FORMAT_TEXT;
    env->base.log_wall_clock = 1; /* a real process logs real time */
    env->origin_ns = uv_hrtime();
    env->free_head = UE_NONE;
    if (seed == 0) {
        if (uv_random(NULL, NULL, &seed, sizeof seed, 0, NULL) != 0 || seed == 0) {
            uint64_t x = uv_hrtime();
            seed = mp_splitmix64(&x);
        }
    }
    mp_prng_seed(&env->prng, seed);
    return &env->base;
fail:
    free(env);
    free(hk);
    return NULL;
}

int mp_env_uv_run(mp_env *e)
{
    ue_env *env = ue(e);
    assert(!env->running && "mp_env_uv_run is not re-entrant");
    if (env->running) return MP_EBUSY;
    env->running = 1;
    uv_run(env->loop, UV_RUN_DEFAULT);
    env->running = 0;
    return MP_OK;
}

void mp_env_uv_stop(mp_env *e) { uv_stop(ue(e)->loop); }

int mp_env_uv_run_once(mp_env *e, int wait)
{
    ue_env *env = ue(e);
    assert(!env->running && "mp_env_uv_run_once is not re-entrant");
    if (env->running) return 0;
    env->running = 1;
    env->once = 1;
    int r = uv_run(env->loop, wait ? UV_RUN_ONCE : UV_RUN_NOWAIT);
    env->once = 0;
    env->running = 0;
    return r != 0;
}

struct uv_loop_s *mp_env_uv_loop(mp_env *e) { return ue(e)->loop; }

typedef struct walk_ctx {
    ue_hooks *hooks;
    int foreign;
} walk_ctx;

static void walk_count(uv_handle_t *h, void *arg)
{
    walk_ctx *w = arg;
    ue_hooks *hk = w->hooks;
    if (h == (uv_handle_t *)&hk->tick || h == (uv_handle_t *)&hk->prep ||
        h == (uv_handle_t *)&hk->idle) {
        return;
    }
    if (!uv_is_closing(h)) w->foreign++;
}

int mp_env_uv_destroy(mp_env *e)
{
    if (!e) return MP_OK;
    ue_env *env = ue(e);
    if (env->running || env->flushing || env->firing) return MP_EBUSY;
    if (env->nheap || env->nstreams || env->nlisteners || env->nconnects ||
        env->defers.len) {
        return MP_EBUSY;
    }
    if (env->owns_loop) {
        /* Someone else's handle or request on our loop would stop
         * uv_loop_close: refuse before tearing anything down. */
        walk_ctx w = {env->hooks, 0};
        uv_walk(env->loop, walk_count, &w);
        if (w.foreign > 0 || env->loop->active_reqs.count > 0) return MP_EBUSY;
    }
    ue_hooks *hk = env->hooks;
    hk->env = NULL;
    uv_timer_stop(&hk->tick);
    uv_prepare_stop(&hk->prep);
    uv_idle_stop(&hk->idle);
    uv_close((uv_handle_t *)&hk->tick, on_hook_closed);
    uv_close((uv_handle_t *)&hk->prep, on_hook_closed);
    uv_close((uv_handle_t *)&hk->idle, on_hook_closed);
    int rc = MP_OK;
    if (env->owns_loop) {
        /* Only closing handles remain: each NOWAIT turn finishes them. */
        int closed = UV_EBUSY;
        for (int i = 0; i < 16 && closed == UV_EBUSY; i++) {
            uv_run(env->loop, UV_RUN_NOWAIT);
            closed = uv_loop_close(env->loop);
        }
        if (closed == 0) {
            free(env->loop);
        } else {
            rc = MP_EINTERNAL; /* leak the loop rather than free it in use */
        }
    }
    while (env->wfree) {
        ue_write_req *w = env->wfree;
        env->wfree = w->next_free;
        free(w);
    }
    free(env->slots);
    free(env->heap);
    free(env->defers.items);
    free(env->spare.items);
    free(env);
    return rc;
}
