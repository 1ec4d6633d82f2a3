/*
 * Request-id windows (rid_window.h has the why). The bits form a ring:
 * sequence s lives at bit s % MP_RID_WINDOW while s is in
 * [base, base + MP_RID_WINDOW). Moving base up clears the bits of the
 * sequences that leave, a word at a time where it can, so the work is
 * proportional to how far base moves, and a jump of a whole window or more
 * is one memset.
 */
#include "actor/rid_window.h"

#include <assert.h>
#include <string.h>

#define MASK ((uint64_t)MP_RID_WINDOW - 1)
_Static_assert((MP_RID_WINDOW & (MP_RID_WINDOW - 1)) == 0, "window is a power of two");
_Static_assert(MP_RID_WINDOW % 64 == 0, "window is whole words");

void mp_rid_window_init(mp_rid_window *w)
{
    memset(w, 0, sizeof *w);
}

/* Raise base to `to`, forgetting the sequences below it. */
static void raise_base(mp_rid_window *w, uint64_t to)
{
    if (to <= w->base) return;
    if (to - w->base >= MP_RID_WINDOW) {
        memset(w->bits, 0, sizeof w->bits);
        w->base = to;
        return;
    }
    uint64_t s = w->base;
    while (s < to) {
        uint64_t i = s & MASK;
        if ((i & 63) == 0 && to - s >= 64) {
            w->bits[i >> 6] = 0;
            s += 64;
        } else {
            w->bits[i >> 6] &= ~(1ull << (i & 63));
            s++;
        }
    }
    w->base = to;
}

mp_rid_verdict mp_rid_window_admit(mp_rid_window *w, uint64_t seq, uint64_t low)
{
    assert(seq >= 1);
    raise_base(w, low);
    if (seq < w->base) return MP_RID_STALE;
    if (seq - w->base >= MP_RID_WINDOW) {
        raise_base(w, seq - MP_RID_WINDOW + 1);
        w->slides++;
    }
    uint64_t i = seq & MASK;
    uint64_t bit = 1ull << (i & 63);
    if (w->bits[i >> 6] & bit) return MP_RID_DUPLICATE;
    w->bits[i >> 6] |= bit;
    return MP_RID_RUN;
}
