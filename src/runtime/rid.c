/*
 * Request ids at the host: one window per origin (actor/rid_window.h).
 *
 * Checked where a request starts its turn (activation.c), after a keyed
 * request's replay (a keyed duplicate gets its first reply back, which is
 * better than MP_EALREADY): the turn is the one place every copy of a
 * request for an actor passes, one at a time, so a copy can never race its
 * original. Only requests that came over the wire are checked: calls made
 * on this node and run here have a single copy by construction.
 *
 * Memory: MP_RID_ORIGINS_MAX windows of sizeof(mp_rid_window) (8 KiB) at
 * most, whatever the call rate (node.h states the bound). A node that
 * meets more origins than that reuses the window of an origin that has
 * been quiet past every deadline it brought (no copy of its requests can
 * start a turn any more); if none has, the request is refused
 * MP_EQUEUEFULL, not executed.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "runtime/runtime.h"

/* Past the latest deadline an origin's requests carried, a copy may still
 * be in flight for the transit a hop cannot see (node.h, "Deadlines": two
 * heartbeats and a millisecond per hop); this covers it with room. */
#define RID_QUIET_MARGIN_NS (10ull * MP_NS_PER_SEC)

struct mp_rid_origin {
    uint64_t token;
    uint64_t quiet_at; /* env time: no copy of its requests can run after */
    mp_rid_window win;
};

/* A window to reuse: the origin quiet the longest, if it is quiet. */
static mp_rid_origin *reclaim(mp_node *n, uint64_t now)
{
    mp_rid_origin *best = NULL;
    for (size_t i = 0; i < n->rid_count; i++) {
        mp_rid_origin *o = n->rid_origins[i];
        if (o->quiet_at + RID_QUIET_MARGIN_NS <= now &&
            (!best || o->quiet_at < best->quiet_at))
            best = o;
    }
    if (best) mp_map_u64_remove(&n->rid_map, best->token);
    return best;
}

static mp_rid_origin *origin_of(mp_node *n, uint64_t token, uint64_t now)
{
    if (n->rid_last && n->rid_last->token == token) return n->rid_last;
    mp_rid_origin *o = mp_map_u64_get(&n->rid_map, token);
    if (!o) {
        if (n->rid_count < MP_RID_ORIGINS_MAX) {
            o = malloc(sizeof *o);
            if (!o) return NULL;
            if (!n->rid_origins) {
                n->rid_origins = calloc(MP_RID_ORIGINS_MAX, sizeof *n->rid_origins);
                if (!n->rid_origins) {
                    free(o);
                    return NULL;
                }
            }
            n->rid_origins[n->rid_count++] = o;
        } else {
            o = reclaim(n, now);
            if (!o) return NULL;
            MP_SOMETIMES(true, "actor.rid_origin_reused");
        }
        o->token = token;
        o->quiet_at = 0;
        mp_rid_window_init(&o->win);
        if (mp_map_u64_put(&n->rid_map, token, o, NULL) != MP_OK) {
            /* Kept in the array, unreachable by token: reclaimed later. */
            return NULL;
        }
    }
    n->rid_last = o;
    return o;
}

int mp__rid_admit(mp_node *n, mp_msg *m)
{
    if (!m->remote_in || m->rid_seq == 0) return MP_OK;
    assert(m->rid_origin != 0);
    mp_rid_origin *o = origin_of(n, m->rid_origin, n->drain_now);
    if (!o) {
        n->stats.rid_refused++;
        return MP_EQUEUEFULL;
    }
    switch (mp_rid_window_admit(&o->win, m->rid_seq, m->rid_low)) {
    case MP_RID_RUN:
        if (m->deadline > o->quiet_at) o->quiet_at = m->deadline;
        return MP_OK;
    case MP_RID_DUPLICATE:
        MP_SOMETIMES(true, "actor.rid_duplicate");
        n->stats.rid_duplicates++;
        return MP_EALREADY;
    case MP_RID_STALE:
        MP_SOMETIMES(true, "actor.rid_stale");
        n->stats.rid_stale++;
        return MP_ESTALE;
    }
    return MP_EINTERNAL;
}

/*
 * Buggify: the duplicate the window exists for. The runtime never sends a
 * request twice, so without this no workload would ever show the window
 * working; the exec workload counts executions and fails if a copy runs.
 * The copy reaches the node that ran the original (a duplicate reaching
 * another node, after the actor moved or its node restarted, is beyond
 * what a node's memory can answer: node.h states the scope), and it is
 * one-way, so that its refusal answers nobody: the caller's outcome stays
 * the original's.
 */
void mp__rid_ghost(mp_node *n, mp_actor *a, const mp_msg *m)
{
    if (a->depth + 1 >= n->max_mailbox) return; /* the copy must not crowd out calls */
    mp_msg *g = mp_msg_alloc(n);
    if (!g || mp_msg_set_payload(g, m->data, m->len) != MP_OK) {
        if (g) mp_msg_release(n, g);
        return;
    }
    MP_SOMETIMES(true, "actor.rid_ghost");
    g->origin = MP_ORIGIN_NONE;
    g->ghost = true;
    g->remote_in = true;
    g->forward_count = m->forward_count;
    g->deadline = m->deadline;
    g->rid_origin = m->rid_origin;
    g->rid_seq = m->rid_seq;
    g->rid_low = m->rid_low;
    mp__ref_copy(&g->target, &m->target);
    memcpy(g->method, m->method, (size_t)m->method_len + 1);
    g->method_len = m->method_len;
    g->sender[0] = '\0'; /* no call-cycle verdicts for a copy */
    g->sender_len = 0;
    memcpy(g->key, m->key, m->key_len);
    g->key_len = m->key_len;
    if (MP_BUGGIFY_P(0.5) && mp__delay_msg(n, g, MP__DELAY_GHOST, 0, 0)) return;
    mp__rid_ghost_arrive(n, g);
}

/* The copy arrives: into the mailbox of the activation that ran the
 * original, if it is still here; otherwise it is lost (see above). */
void mp__rid_ghost_arrive(mp_node *n, mp_msg *g)
{
    mp_actor *a = mp_catalog_find(&n->catalog, &g->target);
    if (!a || a->state != MP_ACT_VALID || a->depth + 1 >= n->max_mailbox) {
        mp_msg_release(n, g);
        return;
    }
    mp__deliver_local(n, a, g);
}

size_t mp__rid_origins(const mp_node *n)
{
    return n->rid_count;
}

void mp__rid_free(mp_node *n)
{
    for (size_t i = 0; i < n->rid_count; i++) free(n->rid_origins[i]);
    free(n->rid_origins);
    n->rid_origins = NULL;
    n->rid_count = 0;
    n->rid_last = NULL;
    mp_map_u64_free(&n->rid_map);
}
