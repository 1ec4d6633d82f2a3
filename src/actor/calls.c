/*
 * Outstanding calls (see calls.h for the design: one id space, a heap of
 * deadlines, one env timer armed lazily for the earliest one).
 *
 * Exactly-once completion is structural: a record is in the map iff it can
 * still complete, and both completion paths (reply, timeout) remove it from
 * the map and the heap before running its callback. A callback may therefore
 * add or complete other calls freely.
 */
#include "actor/calls.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "util/list.h"

#define FREE_LIST_MAX 4096

static void arm(mp_calls *c);

int mp_calls_init(mp_calls *c, mp_env *env, size_t limit)
{
    assert(c && env);
    memset(c, 0, sizeof *c);
    c->env = env;
    c->limit = limit;
    c->next_corr = 1;
    mp_heap_init(&c->heap);
    return mp_map_u64_init(&c->map, 0);
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

void mp_calls_free(mp_calls *c, bool run_callbacks, int status)
{
    if (c->timer) mp_env_timer_cancel(c->env, c->timer);
    c->timer = 0;
    c->timer_at = 0;
    mp_heap_node *hn;
    while ((hn = mp_heap_pop(&c->heap)) != NULL) {
        mp_call_rec *r = MP_CONTAINER_OF(hn, mp_call_rec, hn);
        void *got = mp_map_u64_remove(&c->map, r->corr);
        assert(got == r);
        (void)got;
        mp_reply_cb cb = r->cb;
        void *ud = r->ud;
        free(r);
        if (run_callbacks && cb) cb(ud, status, "", 0);
    }
    assert(mp_map_u64_count(&c->map) == 0);
    mp_map_u64_free(&c->map);
    mp_heap_free(&c->heap);
    while (c->free_list) {
        mp_call_rec *r = c->free_list;
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
    mp_heap_node *hn;
    while ((hn = mp_heap_peek(&c->heap)) != NULL && hn->key <= now) {
        mp_heap_pop(&c->heap);
        mp_call_rec *r = MP_CONTAINER_OF(hn, mp_call_rec, hn);
        void *got = mp_map_u64_remove(&c->map, r->corr);
        MP_ALWAYS(got == r, "actor.call_completes_once");
        mp_reply_cb cb = r->cb;
        void *cud = r->ud;
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
    mp_heap_node *hn = mp_heap_peek(&c->heap);
    if (!hn) return;
    if (c->timer && c->timer_at <= hn->key) return;
    if (c->timer) {
        mp_env_timer_cancel(c->env, c->timer);
        c->timer = 0;
    }
    uint64_t now = mp_env_now(c->env);
    uint64_t delay = hn->key > now ? hn->key - now : 0;
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

int mp_calls_add_at(mp_calls *c, uint64_t deadline, mp_reply_cb cb, void *ud,
                    uint64_t *corr)
{
    if (c->limit && mp_map_u64_count(&c->map) >= c->limit)
        return MP_EQUEUEFULL;
    mp_call_rec *r = rec_alloc(c);
    if (!r) return MP_ENOMEM;
    r->corr = c->next_corr++;
    r->cb = cb;
    r->ud = ud;
    mp_heap_node_init(&r->hn);
    r->hn.key = deadline;
    int rc = mp_map_u64_put(&c->map, r->corr, r, NULL);
    if (rc == MP_OK) {
        rc = mp_heap_insert(&c->heap, &r->hn);
        if (rc != MP_OK) mp_map_u64_remove(&c->map, r->corr);
    }
    if (rc != MP_OK) {
        rec_release(c, r);
        return rc;
    }
    arm(c);
    if (!c->timer) {
        /* No timer means no timeout: refuse rather than risk a call that
         * never completes. */
        mp_heap_remove(&c->heap, &r->hn);
        mp_map_u64_remove(&c->map, r->corr);
        rec_release(c, r);
        return MP_ENOMEM;
    }
    *corr = r->corr;
    return MP_OK;
}

int mp_calls_complete(mp_calls *c, uint64_t corr, int status, const void *data,
                      size_t len)
{
    mp_call_rec *r = mp_map_u64_remove(&c->map, corr);
    if (!r) {
        c->late++;
        MP_SOMETIMES(true, "actor.late_reply");
        return MP_ENOTFOUND;
    }
    bool was = mp_heap_remove(&c->heap, &r->hn);
    MP_ALWAYS(was, "actor.call_completes_once");
    mp_reply_cb cb = r->cb;
    void *ud = r->ud;
    rec_release(c, r);
    c->completed++;
    if (cb) cb(ud, status, data ? data : "", data ? len : 0);
    return MP_OK;
}

bool mp_calls_cancel(mp_calls *c, uint64_t corr)
{
    mp_call_rec *r = mp_map_u64_remove(&c->map, corr);
    if (!r) return false;
    mp_heap_remove(&c->heap, &r->hn);
    rec_release(c, r);
    return true;
}
