/*
 * The transport's send side: per-peer queues, batching into one write per
 * connection per loop turn, and the limits on what waits.
 *
 * mp_transport_send encodes a frame at once at the end of its peer's
 * pending buffer. A single transport-wide deferred flush walks the peers
 * made dirty during the turn; a peer whose connection is open and idle
 * swaps its pending buffer with the connection's (empty) write buffer and
 * writes it as ONE mp_stream_write (transport.c's top comment says why the
 * write buffer belongs to the connection).
 *
 * What waits is bounded (max_queue_frames/bytes per peer): a peer that
 * stops reading is cut off (the output buffer limit). What waited too long
 * is aged or dropped before it is written, and what the runtime declares
 * lost is dropped unsent (mp_transport_drop_queued): a request is never
 * delivered after its caller was told it failed.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "transport/transport_int.h"
#include "util/endian.h"

void mp__peer_mark_dirty(peer *p)
{
    if (!mp_list_node_linked(&p->dirty_link)) mp_list_push_back(&p->t->dirty, &p->dirty_link);
    mp__schedule_flush(p->t);
}

/* Graceful close: frames queued for a peer that has no open connection
 * would only hold the close until its deadline (a dead or refusing peer
 * never takes them), so they are dropped, counted and logged. Frames
 * already handed to a connection (in flight) are left to its write
 * callback. */
void mp__peer_drop_pending(peer *p, const char *why)
{
    if (p->pending_frames == 0) return;
    mp_transport *t = p->t;
    assert(p->q_frames >= p->pending_frames && p->q_bytes >= p->pending.len);
    p->q_frames -= p->pending_frames;
    p->q_bytes -= p->pending.len;
    p->st.dropped_frames += p->pending_frames;
    mp_env_log(t->env, MP_LOG_INFO, "transport: closing: dropped %u frame(s) queued for %s (%s)",
               (unsigned)p->pending_frames, p->addr, why);
    p->pending_frames = 0;
    mp_buf_reset(&p->pending);
    if (mp_list_node_linked(&p->dirty_link)) mp_list_remove(&p->dirty_link);
    if (p->retry_timer) {
        mp_env_timer_cancel(t->env, p->retry_timer);
        p->retry_timer = 0;
    }
}

size_t mp_transport_drop_queued(mp_transport *t, const char *addr,
                                mp_transport_dropped_cb on_dropped, void *ud)
{
    peer *p = t && addr ? mp__peer_named(t, addr) : NULL;
    if (!p || p->pending_frames == 0) return 0;
    size_t count = p->pending_frames;
    /* pending holds whole encoded frames back to back (frame.h layout):
     * u32 length of the rest, then magic, version, kind at 9, correlation
     * id at 12. They were encoded here, so the walk trusts the lengths. */
    const uint8_t *b = p->pending.data;
    size_t off = 0, seen = 0;
    while (off < p->pending.len) {
        assert(p->pending.len - off >= MP_FRAME_MIN_SIZE);
        size_t flen = 4 + (size_t)mp_get_le32(b + off);
        assert(flen <= p->pending.len - off);
        if (on_dropped) on_dropped(ud, b[off + 9], mp_get_le64(b + off + 12));
        off += flen;
        seen++;
    }
    assert(seen == count);
    MP_SOMETIMES(true, "transport.queued_dropped");
    assert(p->q_frames >= p->pending_frames && p->q_bytes >= p->pending.len);
    p->q_frames -= p->pending_frames;
    p->q_bytes -= p->pending.len;
    p->st.dropped_frames += p->pending_frames;
    p->pending_frames = 0;
    mp_buf_reset(&p->pending);
    if (mp_list_node_linked(&p->dirty_link)) mp_list_remove(&p->dirty_link);
    mp_env_log(t->env, MP_LOG_DEBUG, "transport: dropped %zu frame(s) queued for %s", count,
               p->addr);
    return count;
}

static void on_data_write(void *ud, int status)
{
    conn *c = ud;
    peer *p = c->p;
    assert(p && c->writing);
    assert(p->q_frames >= c->wframes && p->q_bytes >= c->wbuf.len);
    p->q_frames -= c->wframes;
    p->q_bytes -= c->wbuf.len;
    if (status == MP_OK) {
        p->st.frames_out += c->wframes;
        p->st.bytes_out += c->wbuf.len;
    }
    c->wframes = 0;
    mp_buf_reset(&c->wbuf);
    c->writing = false;
    if (status < 0) {
        if (c->state != C_CLOSING) mp__conn_fail(c, status, "write failed");
    } else if (c->state == C_OPEN && p->pending.len > 0) {
        mp__peer_mark_dirty(p);
    }
    mp__close_progress(c->t);
}

/* Requests that waited in the queue (the connection was down) have less
 * time left than their ttl says: the ttl was computed when they were queued,
 * and the receiver counts its deadline from their arrival. Every pending
 * frame is aged by the wait of the oldest (never more time than it has,
 * sometimes less), and one with no time left is dropped: its caller has
 * given up, and it must not start a turn after its deadline (at most once,
 * node.h). Below a millisecond (the usual one-turn wait) nothing changes. */
static void peer_age_pending(peer *p)
{
    mp_transport *t = p->t;
    uint64_t waited = mp_env_now(t->env) - p->pending_since;
    if (waited < MP_NS_PER_MS) return;
    uint64_t waited_ms = waited / MP_NS_PER_MS;
    uint8_t *b = p->pending.data;
    size_t off = 0, end = p->pending.len;
    uint32_t expired = 0;
    while (off < end) {
        size_t flen = mp_frame_peek_size(b + off);
        assert(flen >= MP_FRAME_MIN_SIZE && flen <= end - off);
        uint8_t kind = mp_frame_peek_kind(b + off);
        uint32_t ttl = mp_frame_peek_ttl(b + off);
        if ((kind == MP_FRAME_REQUEST || kind == MP_FRAME_ONEWAY) && ttl > 0) {
            if (ttl <= waited_ms) {
                memmove(b + off, b + off + flen, end - off - flen);
                end -= flen;
                expired++;
                assert(p->q_frames > 0 && p->q_bytes >= flen && p->pending_frames > 0);
                p->pending_frames--;
                p->q_frames--;
                p->q_bytes -= flen;
                continue;
            }
            mp_frame_set_ttl(b + off, ttl - (uint32_t)waited_ms);
        }
        off += flen;
    }
    p->pending.len = end;
    if (expired) {
        MP_SOMETIMES(true, "transport.queued_request_expired");
        p->st.dropped_frames += expired;
        mp_env_log(t->env, MP_LOG_DEBUG,
                   "transport: %u request(s) queued for %s expired before they could be sent",
                   (unsigned)expired, p->addr);
    }
}

void mp__peer_flush(peer *p)
{
    conn *c = p->conn;
    if (!c || c->state != C_OPEN || c->writing || p->pending.len == 0) return;
    peer_age_pending(p);
    if (p->pending.len == 0) return;
    assert(c->wbuf.len == 0 && c->wframes == 0);
    mp_buf tmp = c->wbuf;
    c->wbuf = p->pending;
    p->pending = tmp;
    c->wframes = p->pending_frames;
    p->pending_frames = 0;
    c->writing = true;
    c->idle_ticks = 0; /* a write is as good as a keep-alive */
    mp_iovec iov = {c->wbuf.data, c->wbuf.len};
    int rc = mp_stream_write(c->s, &iov, 1, on_data_write, c);
    if (rc != MP_OK) {
        /* Nothing was written: the frames go back to the queue, in front of
         * nothing (pending was empty since the swap). */
        tmp = p->pending;
        p->pending = c->wbuf;
        c->wbuf = tmp;
        p->pending_frames = c->wframes;
        c->wframes = 0;
        c->writing = false;
        mp__conn_fail(c, rc, "write refused");
    }
}

static void flush_all(mp_transport *t)
{
    t->flush_scheduled = false;
    mp_list_node *n;
    while ((n = mp_list_pop_front(&t->dirty)) != NULL)
        mp__peer_flush(MP_CONTAINER_OF(n, peer, dirty_link));
    mp__close_progress(t);
}

static void on_flush_defer(void *ud)
{
    mp_transport *t = ud;
    t->defer_pending = false;
    flush_all(t);
}

static void on_flush_timer(void *ud)
{
    mp_transport *t = ud;
    t->flush_timer = 0;
    flush_all(t);
}

void mp__schedule_flush(mp_transport *t)
{
    if (t->flush_scheduled) return;
    t->flush_scheduled = true;
    if (!MP_BUGGIFY() && !t->defer_pending && mp_env_defer(t->env, on_flush_defer, t) == MP_OK) {
        t->defer_pending = true;
        return;
    }
    /* Buggify: a late flush lets more frames pile up and lets connection
     * events overtake it. Also the fallback when defer has no memory. */
    uint64_t d = mp_env_random_below(t->env, BUGGIFY_FLUSH_DELAY_NS);
    t->flush_timer = mp_env_timer_start(t->env, d, on_flush_timer, t);
    if (!t->flush_timer) {
        t->flush_scheduled = false;
        mp_env_log(t->env, MP_LOG_ERROR, "transport: cannot schedule a flush");
    }
}

int mp_transport_send(mp_transport *t, const char *addr, const mp_frame *frame)
{
    if (!t || !frame || !addr) return MP_EINVAL;
    if (t->closing) return MP_ECLOSED;
    /* Fast path: the same peer as the last send (one strcmp instead of
     * parsing the address and a map lookup: the sends of a turn mostly go
     * to one peer). Its address was validated when the peer was made, and
     * peers live as long as the transport. */
    peer *p = t->last;
    if (!p || strcmp(addr, p->addr) != 0) {
        p = NULL;
        if (!mp__addr_ok(addr) || strcmp(addr, t->self) == 0) return MP_EINVAL;
    }
    size_t size = mp_frame_encoded_size(frame);
    if (size > t->cfg.max_frame) {
        /* Let the encoder say whether the frame is malformed (EINVAL) or
         * only too large (ETOOBIG); it checks both before touching buf. */
        uint8_t dummy;
        size_t w;
        int rc = mp_frame_encode(frame, &dummy, 0, &w, t->cfg.max_frame);
        assert(rc < 0);
        return rc < 0 ? rc : MP_EINVAL;
    }
    if (!p) {
        p = mp__peer_get(t, addr, strlen(addr));
        if (!p) return MP_ENOMEM;
        t->last = p;
    }
    if (!(p->conn && p->conn->state == C_OPEN) && t->cbs.may_dial &&
        !t->cbs.may_dial(t->ud, p->addr)) {
        MP_SOMETIMES(true, "transport.no_dial_to_stranger");
        return MP_EUNAVAIL;
    }
    if (p->refused && !p->conn) {
        /* Refused for namespace or version: queueing would only make the
         * caller wait. Redialing goes on (probe) so a fixed peer is found. */
        p->probe = true;
        if (!p->out) mp__schedule_retry(p);
        return p->refused;
    }
    if (p->q_frames >= t->cfg.max_queue_frames || p->q_bytes + size > t->cfg.max_queue_bytes) {
        /* The output buffer limit (Redis's client-output-buffer-limit): a
         * peer whose connection is up but whose queue filled does not read
         * what we write. It is cut off, and what waits for it is dropped
         * unsent (the runtime hears of it through on_peer_down), so a
         * client that never reads cannot hold the node's memory. */
        conn *c = p->conn;
        if (c && c->state == C_OPEN && c->writing) {
            p->st.output_limit_closes++;
            MP_SOMETIMES(true, "transport.output_limit");
            char why[MP_HELLO_MAX_REASON + 1];
            snprintf(why, sizeof why, "%s does not read: %u frames, %llu bytes queued",
                     p->addr, (unsigned)p->q_frames, (unsigned long long)p->q_bytes);
            /* Dropped first, so no redial follows for them (a client's
             * address is never dialed for its replies). */
            mp_transport_drop_queued(t, p->addr, NULL, NULL);
            mp__conn_fail_at(c, MP_EQUEUEFULL, why, MP_LOG_WARN);
        }
        return MP_EQUEUEFULL;
    }
    int rc = mp_buf_reserve(&p->pending, size);
    if (rc != MP_OK) return rc == MP_ETOOBIG ? MP_ENOMEM : rc;
    size_t w = 0;
    rc = mp_frame_encode(frame, mp_buf_tail(&p->pending), size, &w, t->cfg.max_frame);
    if (rc != MP_OK) return rc;
    assert(w == size);
    rc = mp_buf_commit(&p->pending, w);
    assert(rc == MP_OK);
    if (p->pending_frames == 0) p->pending_since = mp_env_now(t->env);
    p->pending_frames++;
    p->q_frames++;
    p->q_bytes += w;
    if (p->conn && p->conn->state == C_OPEN)
        mp__peer_mark_dirty(p);
    else if (!p->out && !p->conn && !p->retry_timer)
        mp__peer_dial(p);
    return MP_OK;
}

static void fill_stats(const peer *p, mp_peer_stats *out)
{
    *out = p->st;
    out->queue_frames = p->q_frames;
    out->queue_bytes = p->q_bytes;
    out->connected = p->conn && p->conn->state == C_OPEN;
}

int mp_transport_peer_stats(mp_transport *t, const char *addr, mp_peer_stats *out)
{
    if (!t || !addr || !out) return MP_EINVAL;
    peer *p = mp__peer_named(t, addr);
    if (!p) return MP_ENOTFOUND;
    fill_stats(p, out);
    return MP_OK;
}

void mp_transport_totals(mp_transport *t, mp_peer_stats *out)
{
    memset(out, 0, sizeof *out);
    mp_peer_stats all = t->orphan;
    mp_list_node *n, *tmp;
    MP_LIST_FOREACH_SAFE(n, tmp, &t->peers)
    {
        const mp_peer_stats *s = &MP_CONTAINER_OF(n, peer, link)->st;
        all.frames_out += s->frames_out;
        all.frames_in += s->frames_in;
        all.bytes_out += s->bytes_out;
        all.bytes_in += s->bytes_in;
        all.connects += s->connects;
        all.reconnects += s->reconnects;
        all.decode_errors += s->decode_errors;
        all.oversize_frames += s->oversize_frames;
        all.refused_handshakes += s->refused_handshakes;
        all.dropped_frames += s->dropped_frames;
        all.keepalives_out += s->keepalives_out;
        all.keepalives_in += s->keepalives_in;
        all.peer_timeouts += s->peer_timeouts;
        all.slow_frames += s->slow_frames;
        all.output_limit_closes += s->output_limit_closes;
    }
    all.handshakes_evicted = t->evicted;
    all.auth_failures = t->auth_failures;
    all.connections_refused = t->conn_refused;
    all.queue_frames = 0;
    all.queue_bytes = 0;
    all.incarnation = 0;
    all.connected = false;
    *out = all;
}
