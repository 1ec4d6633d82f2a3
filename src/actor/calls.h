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
 * Finding a record by id: a direct-mapped array indexed by the id's low
 * bits (ids are consecutive, so the outstanding ones spread over the slots
 * without hashing), kept at least twice the number of outstanding calls.
 * A call that outlives `cap` later calls finds its slot taken by a newer one
 * and goes to an overflow u64 map instead; lookups check the slot, then the
 * map only when it is non-empty. Ids stay the plain counter (exact
 * uniqueness, no generation wrap), and the common path hashes nothing.
 *
 * Timeouts: deadline = now + timeout only grows for a given timeout, and
 * nearly every call uses the node's default, so records sit in one of a few
 * FIFO lists whose deadlines are non-decreasing (appended to the list whose
 * tail deadline is the largest one not after theirs); completing a call is an
 * O(1) unlink. A deadline that fits no list (a shorter timeout than every
 * list's tail, with all lists in use) goes to a min-heap. ONE env timer is
 * armed for the earliest of the list heads and the heap top. Completing a
 * call early only unlinks it; the timer is not touched (when it fires with
 * nothing due it re-arms for the new earliest), so the common path costs no
 * timer churn. A timer never fires early (checked with MP_ALWAYS); under
 * buggify it may fire a bit late, bounded to 1% of the shortest timeout so S7
 * (within 10%) holds. Expired records fire in deadline order (ties: lists in
 * index order, then the heap), which depends only on the call sequence.
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
#include "util/hist.h"
#include "util/list.h"
#include "util/map.h"

#define MP_CALLS_FIFOS 4

typedef struct mp_call_rec {
    uint64_t corr;
    uint64_t deadline;   /* absolute ns */
    mp_list_node dlink;  /* in fifo[q - 1] when q > 0 */
    mp_heap_node hn;     /* in the heap when q == 0; key = deadline */
    uint8_t q;           /* 0: heap, 1..MP_CALLS_FIFOS: that FIFO */
    bool direct;         /* indexed by slots[corr & mask], else in overflow */
    bool user;           /* mp_calls_add_timed: counted in c->outcomes */
    int32_t peer;        /* member the request went to, -1: not marked */
    uint64_t started;    /* mp_calls_add_timed: when the call began; 0: not timed */
    mp_reply_cb cb;
    void *ud;
    struct mp_call_rec *next_free;
} mp_call_rec;

typedef struct mp_calls {
    mp_env *env;
    mp_call_rec **slots; /* direct-mapped by corr & (cap - 1) */
    size_t cap;          /* 0 or a power of two */
    size_t count;        /* outstanding records (slots + overflow) */
    mp_map_u64 overflow; /* corr -> record whose slot was taken */
    mp_list_node fifo[MP_CALLS_FIFOS];
    unsigned fifo_used; /* bit q: fifo[q] is not empty */
    mp_heap heap;
    mp_timer_id timer;
    uint64_t timer_at; /* deadline the timer is armed for (0: none) */
    uint64_t next_corr;
    uint64_t low; /* mp_calls_low: no id below it is outstanding */
    mp_call_rec *free_list;
    size_t free_count;
    size_t limit; /* max outstanding records */
    uint64_t late, timeouts, completed;
    /* Completions of user calls (mp_calls_add_timed: replies, errors,
     * timeouts) by what they say about the call: [0] succeeded, then by
     * mp_call_class + 1 (executed with an error, not executed, may have
     * run). */
    uint64_t outcomes[4];
    mp_hist *latency; /* timed records' call-to-completion times; NULL: none */
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
    c->low = base + 1;
}

/* The smallest id that may still be outstanding: every call below it has
 * completed, timed out or been cancelled (next_corr when none is out). It
 * travels with requests as their origin's low mark (src/actor/rid_window.h).
 * Amortised O(1): the mark only moves up, one id at a time. */
uint64_t mp_calls_low(mp_calls *c);

/* Release everything. run_callbacks: complete every outstanding call with
 * `status` (graceful shutdown) in deadline order; otherwise drop them
 * silently (simulated kill). */
void mp_calls_free(mp_calls *c, bool run_callbacks, int status);

/* Register a call that completes by timeout_ns from now. *corr gets its id.
 * Errors: MP_EQUEUEFULL (limit reached), MP_ENOMEM. cb is never run from
 * inside this function. */
int mp_calls_add(mp_calls *c, uint64_t timeout_ns, mp_reply_cb cb, void *ud,
                 uint64_t *corr);

/* A timed call (the node's user calls): like mp_calls_add_at, and when it
 * completes (reply, error or timeout) the time since `started` goes to
 * c->latency, for one call in MP_CALLS_TIMED_EVERY (by id): one clock read
 * per sampled completion. */
#define MP_CALLS_TIMED_EVERY 8
int mp_calls_add_timed(mp_calls *c, uint64_t started, uint64_t deadline, mp_reply_cb cb,
                       void *ud, uint64_t *corr);

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

/* The outstanding record of corr, or NULL. The record stays valid until the
 * call completes, is cancelled or the table is freed; a caller may re-point
 * its peer mark (-1 when added) but must not touch the other fields. */
mp_call_rec *mp_calls_find(mp_calls *c, uint64_t corr);

/* Run fn on every outstanding record, in deadline order per structure (the
 * FIFO lists in index order, then the heap): an order that depends only on
 * the call sequence. fn must not add, complete or cancel calls (collect ids
 * and act after the walk). Rare paths only: it visits every record. */
void mp_calls_foreach(mp_calls *c, void (*fn)(void *arg, mp_call_rec *r),
                      void *arg);

static inline size_t mp_calls_pending(const mp_calls *c)
{
    return c->count;
}

#endif
