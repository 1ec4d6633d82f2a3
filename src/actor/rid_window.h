/*
 * Request-id windows: which requests of one origin already ran here.
 *
 * Every REQUEST frame carries an end-to-end id (wire/frame.h): the origin
 * node's token for its current life, the call's sequence number there (its
 * correlation id, which only grows), and the origin's low mark (every call
 * of that origin below it has ended: replied, failed or timed out). The id
 * is unchanged across forwards and a client-only node's fail-over.
 *
 * The runtime never sends a request twice (node.h, "At most once"); this
 * is the second line: if a copy of a request ever reaches the node that ran
 * it (a bug, a future retry path), it is answered MP_EALREADY instead of
 * running again; and a copy older than anything the origin still waits for
 * is refused MP_ESTALE.
 *
 * Why a watermark plus a bit window, as transport protocols do, and not a
 * set of ids with expiry: a set grows with the call rate times the
 * timeout (2M calls/s x 30 s = 60M ids); the window is a fixed
 * MP_RID_WINDOW bits per origin whatever the rate:
 *   - base: sequences below it are stale. It rises to the origin's low
 *     mark (nothing below is awaited) and, when a sequence arrives more than
 *     MP_RID_WINDOW above it, to just below that sequence (the window
 *     slides; a request that far behind its origin's newer ones at this
 *     node is refused MP_ESTALE, never run twice);
 *   - one bit per sequence in [base, base + MP_RID_WINDOW): ran here.
 * Sequences of one origin spread over many hosts, so a host sees a sparse
 * subset: nothing here assumes they are dense.
 *
 * Thread: one node's loop thread. Pure data structure (no env, no node).
 */
#ifndef MP_ACTOR_RID_WINDOW_H
#define MP_ACTOR_RID_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#include "moonpool/limits.h"

#define MP_RID_WINDOW MP_RID_WINDOW_BITS /* 8 KiB per origin */

typedef enum mp_rid_verdict {
    MP_RID_RUN = 0,       /* first copy: recorded, run it */
    MP_RID_DUPLICATE = 1, /* ran here already */
    MP_RID_STALE = 2      /* below the window: cannot tell, never run */
} mp_rid_verdict;

typedef struct mp_rid_window {
    uint64_t base;  /* sequences below: stale */
    uint64_t slides; /* times a far-ahead sequence moved base (stats) */
    uint64_t bits[MP_RID_WINDOW / 64];
} mp_rid_window;

/* An empty window (base 0: nothing is stale yet). */
void mp_rid_window_init(mp_rid_window *w);

/* Judge request `seq` (>= 1) of this origin, whose frame carried the
 * origin's low mark `low`, and record it when it is to run. */
mp_rid_verdict mp_rid_window_admit(mp_rid_window *w, uint64_t seq, uint64_t low);

#endif
