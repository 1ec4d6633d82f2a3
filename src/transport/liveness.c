/*
 * Liveness: keep-alives, the peer timeout, the frame timeout, and how long
 * bytes just read may have waited unread.
 *
 * One transport-wide timer ticks every heartbeat/2 while a connection is
 * open (it stops when none is, so an idle transport never wakes). Per open
 * connection it keeps two cheap facts: last_recv, the env time read once
 * per read callback (not per frame), and idle_ticks, ticks since the last
 * write was issued (a plain store in the flush, no clock read on the send
 * path). A tick closes a connection whose last_recv is peer_timeout old
 * (MP_ETIMEDOUT) or whose frame stayed incomplete for frame_timeout, and
 * writes a keep-alive on one that has issued no write for two ticks. A tick
 * that comes more than a tick late means our own loop was stalled: it
 * judges no peer, and remembers the stall for the reads that follow.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "transport/transport_int.h"
#include "util/endian.h"

/* How long bytes read now may have sat unread because our own loop did not
 * run (the process was stopped, or a callback ran long): from the last tick
 * that certainly ran to now. The tick runs every hb_tick_ns while a
 * connection is open, so a tick overdue by more than a tick says the loop
 * stalled; a tick that already fired late said so just before (reads
 * that follow it within a tick get its figure). 0 when the loop ran. The
 * requests in such bytes are aged by it (handle_frame): the sender counted
 * their ttl from when it wrote them, and a request must never start a turn
 * after its caller's deadline (node.h). */
uint64_t mp__stall_age(const mp_transport *t, uint64_t now)
{
    if (t->hb_timer && now > t->hb_due + t->hb_tick_ns)
        return now - (t->hb_due - t->hb_tick_ns);
    if (t->stall_ns && now - t->stall_seen < t->hb_tick_ns) return t->stall_ns;
    return 0;
}

static void on_ka_write(void *ud, int status)
{
    conn *c = ud;
    c->ka_writing = false;
    if (status == MP_OK)
        mp__stats_of(c)->keepalives_out++;
    else if (c->state != C_CLOSING)
        mp__conn_fail(c, status, "keep-alive write failed");
}

static void send_keepalive(conn *c)
{
    mp_transport *t = c->t;
    mp_iovec iov = {t->ka_frame, t->ka_len};
    c->idle_ticks = 0;
    int rc = mp_stream_write(c->s, &iov, 1, on_ka_write, c);
    if (rc != MP_OK) {
        mp__conn_fail(c, rc, "keep-alive write refused");
        return;
    }
    c->ka_writing = true;
}

static void on_hb_tick(void *ud)
{
    mp_transport *t = ud;
    t->hb_timer = 0;
    if (t->shutdown) return;
    uint64_t now = mp_env_now(t->env);
    uint64_t limit = t->cfg.peer_timeout_ns;
    bool judge = limit != MP_TRANSPORT_NO_PEER_TIMEOUT;
    bool stalled = now > t->hb_due + t->hb_tick_ns;
    if (stalled) {
        /* Our own loop stalled: replies may sit unread behind this timer. */
        t->stall_seen = now;
        t->stall_ns = now - (t->hb_due - t->hb_tick_ns);
        mp_env_log(t->env, MP_LOG_DEBUG,
                   "transport: heartbeat tick %.3f s late (loop stalled): no peer judged",
                   (double)(now - t->hb_due) / (double)MP_NS_PER_SEC);
        judge = false;
    }
    bool open = false;
    mp_list_node *n, *tmp;
    /* A close runs on_peer_down, which may send (a dial appends a conn) or
     * close the transport; neither frees a conn synchronously. */
    MP_LIST_FOREACH_SAFE(n, tmp, &t->conns)
    {
        conn *c = MP_CONTAINER_OF(n, conn, link);
        if (c->state != C_OPEN) continue;
        if (judge && now - c->last_recv >= limit) {
            char why[MP_HELLO_MAX_REASON + 1];
            snprintf(why, sizeof why, "no bytes from %s for %.3g s", c->p->addr,
                     (double)(now - c->last_recv) / (double)MP_NS_PER_SEC);
            c->p->st.peer_timeouts++;
            MP_SOMETIMES(true, "transport.peer_timeout");
            mp__conn_fail_at(c, MP_ETIMEDOUT, why, MP_LOG_WARN);
            continue;
        }
        if (!stalled && c->partial_since && now - c->partial_since >= t->cfg.frame_timeout_ns) {
            char why[MP_HELLO_MAX_REASON + 1];
            snprintf(why, sizeof why, "a frame from %s stayed incomplete for %.3g s",
                     c->p->addr, (double)(now - c->partial_since) / (double)MP_NS_PER_SEC);
            c->p->st.slow_frames++;
            MP_SOMETIMES(true, "transport.slow_frame");
            mp__conn_fail_at(c, MP_ETIMEDOUT, why, MP_LOG_WARN);
            continue;
        }
        if (++c->idle_ticks >= 2 && !c->writing && !c->ka_writing) send_keepalive(c);
        open = open || c->state == C_OPEN;
    }
    if (open) mp__hb_arm(t);
}

/* Runs while a connection is open: armed by conn_open, re-armed by the tick
 * while one is. */
void mp__hb_arm(mp_transport *t)
{
    if (t->hb_timer || t->shutdown) return;
    t->hb_due = mp_env_now(t->env) + t->hb_tick_ns;
    t->hb_timer = mp_env_timer_start(t->env, t->hb_tick_ns, on_hb_tick, t);
    if (!t->hb_timer)
        mp_env_log(t->env, MP_LOG_ERROR, "transport: no timer for heartbeats (until the next "
                   "connection opens)");
}

const char *mp_transport_liveness_error(uint64_t heartbeat_ns,
                                        uint64_t peer_timeout_ns)
{
    mp_transport_config d;
    mp_transport_config_init(&d);
    uint64_t hb = heartbeat_ns ? heartbeat_ns : d.heartbeat_ns;
    uint64_t pt = peer_timeout_ns ? peer_timeout_ns : d.peer_timeout_ns;
    /* Keep-alives leave up to one heartbeat apart: a timeout of two leaves
     * room for latency; less would close healthy idle connections. */
    if (hb < MP_MIN_HEARTBEAT_NS || hb > UINT64_MAX / 4) return "heartbeat_ns must be >= 1 ms";
    if (pt != MP_TRANSPORT_NO_PEER_TIMEOUT && pt <= 2 * hb)
        return "peer_timeout_ns must be more than twice heartbeat_ns";
    return NULL;
}
