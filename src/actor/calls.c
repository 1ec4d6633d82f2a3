/*
 * Outstanding calls (see calls.h for the design: one id space, records found
 * by a direct-mapped array on the id's low bits, deadlines in a few FIFO
 * lists plus a heap for odd ones, one env timer armed lazily for the
 * earliest).
 *
 * Exactly-once completion is structural: a record is indexed (slot or
 * overflow map) iff it can still complete, and both completion paths (reply,
 * timeout) unindex it and unlink its deadline before running its callback. A
 * callback may therefore add or complete other calls freely.
 *
 * Why not a hash map and a heap for everything (the first version): at 256
 * calls in flight the heap's remove of a completed call (it sits anywhere in
 * the heap) was 31% of a local call's CPU and the u64 map put/remove another
 * 11%; both are O(1) now on the common path.
 */
#include "actor/calls.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "moonpool/status.h"
#include "util/list.h"

#define FREE_LIST_MAX 4096
#define MIN_SLOTS 64

static void arm(mp_calls *c);

int mp_calls_init(mp_calls *c, mp_env *env, size_t limit)
{
    assert(c && env);
    memset(c, 0, sizeof *c);
    c->env = env;
    c->limit = limit;
    c->next_corr = 1;
    c->low = 1;
    mp_heap_init(&c->heap);
    for (size_t i = 0; i < MP_CALLS_FIFOS; i++) mp_list_init(&c->fifo[i]);
    return mp_map_u64_init(&c->overflow, 0);
}

static mp_call_rec *rec_alloc(mp_calls *c)
{
    mp_call_rec *r = c->free_list;
    if (r) {
        c->free_list = r->next_free;
        c->free_count--;
        return r;
    }
    return malloc(sizeof *r);
}

static void rec_release(mp_calls *c, mp_call_rec *r)
{
    if (c->free_count < FREE_LIST_MAX) {
        r->next_free = c->free_list;
        c->free_list = r;
        c->free_count++;
    } else {
        free(r);
    }
}

/* ---- index by correlation id ---- */

/* Double the slot array (or create it), moving every direct record to its
 * new slot. Two direct records never collide after doubling (their old slots
 * differed in the low bits, which the new mask keeps). MP_ENOMEM leaves
 * everything as it was. */
static int grow_slots(mp_calls *c)
{
    size_t ncap = c->cap ? c->cap * 2 : MIN_SLOTS;
    if (ncap > SIZE_MAX / sizeof *c->slots) return MP_ENOMEM;
    mp_call_rec **ns = calloc(ncap, sizeof *ns);
    if (!ns) return MP_ENOMEM;
    for (size_t i = 0; i < c->cap; i++) {
        mp_call_rec *r = c->slots[i];
        if (!r) continue;
        size_t j = (size_t)r->corr & (ncap - 1);
        assert(!ns[j]);
        ns[j] = r;
    }
    free(c->slots);
    c->slots = ns;
    c->cap = ncap;
    return MP_OK;
}

static int index_put(mp_calls *c, mp_call_rec *r)
{
    if (c->count + 1 > c->cap / 2) {
        int rc = grow_slots(c);
        /* Still room to work with a full-ish array: only fail when there is
         * no array at all. */
        if (rc != MP_OK && c->cap == 0) return rc;
    }
    size_t i = (size_t)r->corr & (c->cap - 1);
    if (!c->slots[i]) {
        c->slots[i] = r;
        r->direct = true;
    } else {
        /* Slot held by an older call still outstanding: overflow. */
        int rc = mp_map_u64_put(&c->overflow, r->corr, r, NULL);
        if (rc != MP_OK) return rc;
        r->direct = false;
    }
    c->count++;
    return MP_OK;
}

/* Unindex and return the record of corr, or NULL. */
static mp_call_rec *index_take(mp_calls *c, uint64_t corr)
{
    if (c->cap) {
        size_t i = (size_t)corr & (c->cap - 1);
        mp_call_rec *r = c->slots[i];
        if (r && r->corr == corr) {
            c->slots[i] = NULL;
            c->count--;
            return r;
        }
    }
    if (mp_map_u64_count(&c->overflow) == 0) return NULL;
    mp_call_rec *r = mp_map_u64_remove(&c->overflow, corr);
    if (r) c->count--;
    return r;
}

static void index_remove(mp_calls *c, mp_call_rec *r)
{
    mp_call_rec *got = index_take(c, r->corr);
    MP_ALWAYS(got == r, "actor.call_completes_once");
    (void)got;
}

/* ---- deadlines ---- */

static int deadline_put(mp_calls *c, mp_call_rec *r)
{
    /* Best fit: the list whose tail deadline is the largest one not after
     * ours (keeps one list per distinct timeout); else an empty list; else
     * the heap. Fast path, with the same answer: with at most one list in
     * use (one timeout for every call, the usual case) that list fits if
     * its tail is not after ours, and an empty table takes list 0. */
    unsigned used = c->fifo_used;
    if ((used & (used - 1)) == 0) {
        int q = used ? __builtin_ctz(used) : 0;
        if (!used || MP_CONTAINER_OF(c->fifo[q].prev, mp_call_rec, dlink)
                             ->deadline <= r->deadline) {
            mp_list_push_back(&c->fifo[q], &r->dlink);
            c->fifo_used |= 1u << q;
            r->q = (uint8_t)(q + 1);
            return MP_OK;
        }
    }
    int best = -1, empty = -1;
    uint64_t best_tail = 0;
    for (int q = 0; q < MP_CALLS_FIFOS; q++) {
        mp_list_node *tail = c->fifo[q].prev;
        if (tail == &c->fifo[q]) {
            if (empty < 0) empty = q;
            continue;
        }
        uint64_t t = MP_CONTAINER_OF(tail, mp_call_rec, dlink)->deadline;
        if (t <= r->deadline && (best < 0 || t > best_tail)) {
            best = q;
            best_tail = t;
        }
    }
    if (best < 0) best = empty;
    if (best >= 0) {
        mp_list_push_back(&c->fifo[best], &r->dlink);
        c->fifo_used |= 1u << best;
        r->q = (uint8_t)(best + 1);
        return MP_OK;
    }
    r->q = 0;
    mp_heap_node_init(&r->hn);
    r->hn.key = r->deadline;
    return mp_heap_insert(&c->heap, &r->hn);
}

static void deadline_remove(mp_calls *c, mp_call_rec *r)
{
    if (r->q) {
        assert(mp_list_node_linked(&r->dlink));
        mp_list_remove(&r->dlink); /* leaves it self-linked */
        if (mp_list_empty(&c->fifo[r->q - 1])) c->fifo_used &= ~(1u << (r->q - 1));
    } else {
        bool was = mp_heap_remove(&c->heap, &r->hn);
        MP_ALWAYS(was, "actor.call_completes_once");
    }
}

/* The record with the earliest deadline (ties: lists in index order, then
 * the heap), or NULL. */
static mp_call_rec *earliest(const mp_calls *c)
{
    mp_call_rec *best = NULL;
    for (int q = 0; q < MP_CALLS_FIFOS; q++) {
        mp_list_node *h = mp_list_front(&c->fifo[q]);
        if (!h) continue;
        mp_call_rec *r = MP_CONTAINER_OF(h, mp_call_rec, dlink);
        if (!best || r->deadline < best->deadline) best = r;
    }
    mp_heap_node *hn = mp_heap_peek(&c->heap);
    if (hn) {
        mp_call_rec *r = MP_CONTAINER_OF(hn, mp_call_rec, hn);
        if (!best || r->deadline < best->deadline) best = r;
    }
    return best;
}

/* ---- lifecycle ---- */

void mp_calls_free(mp_calls *c, bool run_callbacks, int status)
{
    if (c->timer) mp_env_timer_cancel(c->env, c->timer);
    c->timer = 0;
    c->timer_at = 0;
    mp_call_rec *r;
    while ((r = earliest(c)) != NULL) {
        deadline_remove(c, r);
        index_remove(c, r);
        mp_reply_cb cb = r->cb;
        void *ud = r->ud;
        free(r);
        if (run_callbacks && cb) cb(ud, status, "", 0);
    }
    assert(c->count == 0);
    mp_map_u64_free(&c->overflow);
    free(c->slots);
    c->slots = NULL;
    c->cap = 0;
    mp_heap_free(&c->heap);
    while (c->free_list) {
        r = c->free_list;
        c->free_list = r->next_free;
        free(r);
    }
    c->free_count = 0;
}

static void on_timer(void *ud)
{
    mp_calls *c = ud;
    c->timer = 0;
    uint64_t armed_for = c->timer_at;
    c->timer_at = 0;
    uint64_t now = mp_env_now(c->env);
    MP_ALWAYS(now >= armed_for, "actor.call_timer_not_early");
    mp_call_rec *r;
    while ((r = earliest(c)) != NULL && r->deadline <= now) {
        deadline_remove(c, r);
        index_remove(c, r);
        mp_reply_cb cb = r->cb;
        void *cud = r->ud;
        if (r->user) c->outcomes[1 + MP_CALL_MAY_HAVE_RUN]++;
        if (r->started && c->latency) mp_hist_record(c->latency, now - r->started);
        rec_release(c, r);
        c->timeouts++;
        MP_SOMETIMES(true, "actor.timeout");
        if (cb) cb(cud, MP_ETIMEDOUT, "call timed out", 14);
    }
    arm(c);
}

/* Make sure the timer fires no later than the earliest deadline (and never
 * before it). */
static void arm(mp_calls *c)
{
    mp_call_rec *e = earliest(c);
    if (!e) return;
    if (c->timer && c->timer_at <= e->deadline) return;
    if (c->timer) {
        mp_env_timer_cancel(c->env, c->timer);
        c->timer = 0;
    }
    uint64_t now = mp_env_now(c->env);
    uint64_t delay = e->deadline > now ? e->deadline - now : 0;
    /* Buggify: fire slightly late, never early. 1% of the remaining time
     * keeps S7's 10% promise with room to spare. */
    if (MP_BUGGIFY()) delay += delay / 100;
    c->timer = mp_env_timer_start(c->env, delay, on_timer, c);
    c->timer_at = c->timer ? now + delay : 0;
}

int mp_calls_add(mp_calls *c, uint64_t timeout_ns, mp_reply_cb cb, void *ud,
                 uint64_t *corr)
{
    uint64_t now = mp_env_now(c->env);
    uint64_t deadline = now + timeout_ns < now ? UINT64_MAX : now + timeout_ns;
    return mp_calls_add_at(c, deadline, cb, ud, corr);
}

static int calls_add(mp_calls *c, bool user, uint64_t started, uint64_t deadline,
                     mp_reply_cb cb, void *ud, uint64_t *corr);

int mp_calls_add_at(mp_calls *c, uint64_t deadline, mp_reply_cb cb, void *ud,
                    uint64_t *corr)
{
    return calls_add(c, false, 0, deadline, cb, ud, corr);
}

int mp_calls_add_timed(mp_calls *c, uint64_t started, uint64_t deadline, mp_reply_cb cb,
                       void *ud, uint64_t *corr)
{
    return calls_add(c, true, started, deadline, cb, ud, corr);
}

static int calls_add(mp_calls *c, bool user, uint64_t started, uint64_t deadline,
                     mp_reply_cb cb, void *ud, uint64_t *corr)
{
    if (c->limit && c->count >= c->limit) return MP_EQUEUEFULL;
    mp_call_rec *r = rec_alloc(c);
    if (!r) return MP_ENOMEM;
    r->corr = c->next_corr++;
    /* One call in MP_CALLS_TIMED_EVERY is timed: a clock read costs 27 ns
     * here (kvm-clock), 5% of a core at 2M calls/s, and a sample of one in
     * eight gives the same distribution for a fraction of it. */
    r->started = (r->corr % MP_CALLS_TIMED_EVERY) == 0 ? started : 0;
    r->deadline = deadline;
    r->user = user;
    r->cb = cb;
    r->ud = ud;
    r->peer = -1;
    mp_list_node_init(&r->dlink);
    int rc = index_put(c, r);
    if (rc == MP_OK) {
        rc = deadline_put(c, r);
        if (rc != MP_OK) index_remove(c, r);
    }
    if (rc != MP_OK) {
        rec_release(c, r);
        return rc;
    }
    /* The timer already fires no later than this deadline: nothing to arm
     * (the common case: deadlines of one timeout only grow). */
    if (!(c->timer && c->timer_at <= deadline)) arm(c);
    if (!c->timer) {
        /* No timer means no timeout: refuse rather than risk a call that
         * never completes. */
        deadline_remove(c, r);
        index_remove(c, r);
        rec_release(c, r);
        return MP_ENOMEM;
    }
    *corr = r->corr;
    return MP_OK;
}

int mp_calls_complete(mp_calls *c, uint64_t corr, int status, const void *data,
                      size_t len)
{
    mp_call_rec *r = index_take(c, corr);
    if (!r) {
        c->late++;
        MP_SOMETIMES(true, "actor.late_reply");
        return MP_ENOTFOUND;
    }
    deadline_remove(c, r);
    mp_reply_cb cb = r->cb;
    void *ud = r->ud;
    if (r->user) c->outcomes[status == 0 ? 0 : 1 + mp_call_status_class(status, 0)]++;
    if (r->started && c->latency) {
        uint64_t now = mp_env_now(c->env);
        mp_hist_record(c->latency, now > r->started ? now - r->started : 0);
    }
    rec_release(c, r);
    c->completed++;
    if (cb) cb(ud, status, data ? data : "", data ? len : 0);
    return MP_OK;
}

bool mp_calls_cancel(mp_calls *c, uint64_t corr)
{
    mp_call_rec *r = index_take(c, corr);
    if (!r) return false;
    deadline_remove(c, r);
    rec_release(c, r);
    return true;
}

uint64_t mp_calls_low(mp_calls *c)
{
    while (c->low < c->next_corr && !mp_calls_find(c, c->low)) c->low++;
    return c->low;
}

mp_call_rec *mp_calls_find(mp_calls *c, uint64_t corr)
{
    if (c->cap) {
        mp_call_rec *r = c->slots[(size_t)corr & (c->cap - 1)];
        if (r && r->corr == corr) return r;
    }
    if (mp_map_u64_count(&c->overflow) == 0) return NULL;
    return mp_map_u64_get(&c->overflow, corr);
}

void mp_calls_foreach(mp_calls *c, void (*fn)(void *arg, mp_call_rec *r),
                      void *arg)
{
    for (int q = 0; q < MP_CALLS_FIFOS; q++) {
        mp_list_node *ln, *tmp;
        MP_LIST_FOREACH_SAFE(ln, tmp, &c->fifo[q])
        fn(arg, MP_CONTAINER_OF(ln, mp_call_rec, dlink));
    }
    for (uint32_t i = 0; i < c->heap.len; i++)
        fn(arg, MP_CONTAINER_OF(c->heap.nodes[i], mp_call_rec, hn));
}
