/*
 * Outstanding calls: correlation ids, callbacks and timeouts of one node.
 *
 * Why one table for everything that waits for a RESPONSE: actor calls,
 * directory requests and forwarding relays all send a frame and wait for a
 * reply carrying the same correlation id; one id space and one timeout
 * structure means one code path that completes each of them exactly once,
 * whichever comes first, the reply or the deadline.
 *
 * Correlation ids are a counter starting at 1, unique per (node, incarnation):
 * peers tell incarnations apart at the transport level, so a reply for a
 * previous life never matches (the new life's table is empty).
 *
 * Timeouts: records sit in a min-heap by deadline and ONE env timer is armed
 * for the earliest deadline. Completing a call early only removes its heap
 * node; the timer is not touched (when it fires with nothing due it re-arms
 * for the new earliest), so the common path costs no timer churn. A timer
 * never fires early (checked with MP_ALWAYS); under buggify it may fire a bit
 * late, bounded to 1% of the shortest timeout so S7 (within 10%) holds.
 *
 * Records come from a free list: the steady-state call path allocates
 * nothing.
 *
 * Thread: the node's loop thread.
 */
#ifndef MP_ACTOR_CALLS_H
#define MP_ACTOR_CALLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/actor.h"
#include "moonpool/env.h"
#include "util/heap.h"
#include "util/map.h"

typedef struct mp_call_rec {
    uint64_t corr;
    mp_heap_node hn; /* key = absolute deadline (ns) */
    mp_reply_cb cb;
    void *ud;
    struct mp_call_rec *next_free;
} mp_call_rec;

typedef struct mp_calls {
    mp_env *env;
    mp_map_u64 map;
    mp_heap heap;
    mp_timer_id timer;
    uint64_t timer_at; /* deadline the timer is armed for (0: none) */
    uint64_t next_corr;
    mp_call_rec *free_list;
    size_t free_count;
    size_t limit; /* max outstanding records */
    uint64_t late, timeouts, completed;
} mp_calls;

/* Initialise. limit: max outstanding calls (0 = unlimited). */
int mp_calls_init(mp_calls *c, mp_env *env, size_t limit);

/* Correlation ids from now on start at base + 1. The node uses its
 * incarnation in the high bits, so ids never repeat across restarts: a
 * reply addressed to a previous incarnation (queued in a peer's transport
 * while this node was down) then matches no call of the new one and is
 * dropped as late, instead of completing an unrelated call. */
static inline void mp_calls_set_base(mp_calls *c, uint64_t base)
{
    c->next_corr = base + 1;
}

/* Release everything. run_callbacks: complete every outstanding call with
 * `status` (graceful shutdown) in deadline order; otherwise drop them
 * silently (simulated kill). */
void mp_calls_free(mp_calls *c, bool run_callbacks, int status);

/* Register a call that completes by timeout_ns from now. *corr gets its id.
 * Errors: MP_EQUEUEFULL (limit reached), MP_ENOMEM. cb is never run from
 * inside this function. */
int mp_calls_add(mp_calls *c, uint64_t timeout_ns, mp_reply_cb cb, void *ud,
                 uint64_t *corr);

/* The same with an absolute deadline (ns on the env's clock) computed by a
 * caller that already read the time. */
int mp_calls_add_at(mp_calls *c, uint64_t deadline, mp_reply_cb cb, void *ud,
                    uint64_t *corr);

/* Complete call `corr` with a reply: runs its cb once and forgets it.
 * Returns MP_ENOTFOUND for an unknown id (a late reply: counted, dropped). */
int mp_calls_complete(mp_calls *c, uint64_t corr, int status, const void *data,
                      size_t len);

/* Forget a call without running its callback (the caller failed to send it
 * and reports the error itself). Returns whether it existed. */
bool mp_calls_cancel(mp_calls *c, uint64_t corr);

static inline size_t mp_calls_pending(const mp_calls *c)
{
    return mp_map_u64_count(&c->map);
}

#endif
