/*
 * Closing the transport: gracefully (queues drain, bounded by a deadline,
 * then everything closes and the transport frees itself from the last
 * close callback, never synchronously inside a caller's frame), or at once
 * for a dead simulated env (free_now: no callback runs).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "transport/transport_int.h"
#include "util/endian.h"

static void free_memory(mp_transport *t)
{
    mp_list_node *n;
    while ((n = mp_list_pop_front(&t->peers)) != NULL) {
        peer *p = MP_CONTAINER_OF(n, peer, link);
        mp_buf_free(&p->pending);
        free(p);
    }
    mp_map_str_free(&t->peer_map);
    free(t);
}

static bool drained(mp_transport *t)
{
    mp_list_node *n, *tmp;
    MP_LIST_FOREACH_SAFE(n, tmp, &t->peers)
    {
        peer *p = MP_CONTAINER_OF(n, peer, link);
        if (p->q_frames > 0) return false;
    }
    return true;
}

static void on_listener_closed(void *ud)
{
    mp_transport *t = ud;
    t->listener_open = false;
    mp__close_progress(t);
}

/* Stop everything: timers, connections. Frees happen in close callbacks. */
static void shut_down(mp_transport *t)
{
    assert(t->closing && !t->shutdown);
    t->shutdown = true;
    if (t->close_timer) {
        mp_env_timer_cancel(t->env, t->close_timer);
        t->close_timer = 0;
    }
    if (t->flush_timer) {
        mp_env_timer_cancel(t->env, t->flush_timer);
        t->flush_timer = 0;
        t->flush_scheduled = false;
    }
    if (t->hb_timer) {
        mp_env_timer_cancel(t->env, t->hb_timer);
        t->hb_timer = 0;
    }
    mp_list_node *n, *tmp;
    MP_LIST_FOREACH_SAFE(n, tmp, &t->peers)
    {
        peer *p = MP_CONTAINER_OF(n, peer, link);
        if (p->retry_timer) {
            mp_env_timer_cancel(t->env, p->retry_timer);
            p->retry_timer = 0;
        }
    }
    /* mp__conn_close never frees synchronously in a live env, so the walk is
     * safe; the conns leave the list from their close callbacks. */
    MP_LIST_FOREACH_SAFE(n, tmp, &t->conns)
    {
        mp__conn_close(MP_CONTAINER_OF(n, conn, link));
    }
}

/* Called after anything that may let a graceful close move on. */
void mp__close_progress(mp_transport *t)
{
    if (!t->closing) return;
    if (!t->shutdown) {
        if (!drained(t)) return;
        shut_down(t);
    }
    if (!mp_list_empty(&t->conns) || t->listener_open || t->defer_pending) return;
    void (*cb)(void *) = t->close_cb;
    void *ud = t->close_ud;
    t->close_cb = NULL;
    free_memory(t);
    if (cb) cb(ud);
}

static void on_close_timeout(void *ud)
{
    mp_transport *t = ud;
    t->close_timer = 0;
    if (!t->shutdown) {
        mp_env_log(t->env, MP_LOG_WARN, "transport: close timed out, dropping queued frames");
        shut_down(t);
    }
    mp__close_progress(t);
}

void mp_transport_close(mp_transport *t, uint64_t flush_timeout_ns, void (*cb)(void *ud),
                        void *ud)
{
    assert(t && !t->closing);
    if (!t || t->closing) return;
    t->closing = true;
    t->close_cb = cb;
    t->close_ud = ud;
    mp_listener_close(t->listener, on_listener_closed, t);
    t->listener = NULL;
    /* Peers in an outage (no open connection, and either no dial under way
     * or at least one failure since the last open one) lose their queue at
     * once. A first dial or a fresh reconnect may still finish and flush;
     * if it fails instead, mp__schedule_retry drops the queue then. */
    mp_list_node *n, *tmp;
    MP_LIST_FOREACH_SAFE(n, tmp, &t->peers)
    {
        peer *p = MP_CONTAINER_OF(n, peer, link);
        if (p->conn || (p->out && p->attempts == 0)) continue;
        if (p->out) {
            MP_SOMETIMES(true, "transport.close_abandons_dial");
            mp__conn_close(p->out);
        }
        mp__peer_drop_pending(p, "no open connection");
    }
    if (!drained(t)) {
        t->close_timer = mp_env_timer_start(t->env, flush_timeout_ns, on_close_timeout, t);
        if (!t->close_timer) shut_down(t);
    } else {
        shut_down(t);
    }
    /* Never finishes here: the listener's close callback is still due. */
    assert(t->listener_open);
}

void mp_transport_free_now(mp_transport *t)
{
    if (!t) return;
    mp_env *env = t->env;
    if (t->listener) mp_listener_close(t->listener, NULL, NULL);
    if (t->flush_timer) mp_env_timer_cancel(env, t->flush_timer);
    if (t->close_timer) mp_env_timer_cancel(env, t->close_timer);
    if (t->hb_timer) mp_env_timer_cancel(env, t->hb_timer);
    mp_list_node *n;
    while ((n = mp_list_pop_front(&t->conns)) != NULL) {
        conn *c = MP_CONTAINER_OF(n, conn, link);
        if (c->hs_timer) mp_env_timer_cancel(env, c->hs_timer);
        /* A dead env frees the stream at once and runs no callback; a conn
         * already closing has no stream left to close. */
        if (c->s && c->state != C_CLOSING) mp_stream_close(c->s, NULL, NULL);
        mp_frame_decoder_free(&c->dec);
        mp_buf_free(&c->wbuf);
        free(c);
    }
    mp_list_node *tmp;
    MP_LIST_FOREACH_SAFE(n, tmp, &t->peers)
    {
        peer *p = MP_CONTAINER_OF(n, peer, link);
        if (p->retry_timer) mp_env_timer_cancel(env, p->retry_timer);
    }
    free_memory(t);
}
