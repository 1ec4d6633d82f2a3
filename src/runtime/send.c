/*
 * Frames out: requests this node does not host, system requests, responses.
 *
 * A request that arrived from a peer and must go elsewhere is proxied: this
 * node keeps a relay record (its own correlation id -> original caller and
 * correlation) and relays the reply back with a cache update, so the
 * caller's cache gets corrected. forward_count bounds the chain (R19: at
 * most 2 forwards). Our own calls go with their own correlation id.
 *
 * Every record waiting in the calls table for a peer's answer carries that
 * peer's member index (mp_call_rec.peer), so that losing the peer can fail
 * it at once (peers.c) instead of letting it wait for its timeout.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "runtime/runtime.h"

/* Directory requests are idempotent (lookups, first-wins registration that
 * a node may repeat for itself), so a short timeout and a retry beat waiting
 * long for a frame lost with a broken connection. */
#define SYS_TIMEOUT_MAX_NS (1000ull * MP_NS_PER_MS)

mp_ctx *mp__ctx_new(mp_node *n, uint8_t kind, const mp_ref *ref)
{
    mp_ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->node = n;
    c->kind = kind;
    if (ref) c->ref = *ref;
    mp_list_node_init(&c->link);
    mp_list_push_back(&n->ctx_list, &c->link);
    return c;
}

void mp__ctx_free(mp_ctx *c)
{
    mp_list_remove(&c->link);
    if (c->timer) mp_env_timer_cancel(c->node->env, c->timer);
    free(c);
}

void mp__frame_init(mp_frame *f, uint8_t kind)
{
    memset(f, 0, offsetof(mp_frame, cache_updates));
    f->kind = kind;
    f->payload = mp_bytes_make(NULL, 0);
}

int mp__send_frame(mp_node *n, const char *peer, const mp_frame *f)
{
    if (!n->transport) return MP_EUNAVAIL;
    return mp_transport_send(n->transport, peer, f);
}

void mp__refusal_text(mp_node *n, const char *peer, int status, char *buf,
                         size_t cap)
{
    const char *why = n->transport ? mp_transport_peer_error(n->transport, peer) : NULL;
    snprintf(buf, cap, "cannot talk to %s: %s", peer,
             why ? why : mp_strerror(status));
}

void mp__send_response(mp_node *n, const char *peer, uint64_t corr,
                          int status, const void *data, size_t len,
                          const mp_ref *cache_id, int cache_member)
{
    mp_frame f;
    mp__frame_init(&f, MP_FRAME_RESPONSE);
    f.correlation_id = corr;
    f.status = status;
    f.payload = mp_bytes_make(data, (uint32_t)len);
    if (cache_id && cache_member >= 0) {
        f.cache_update_count = 1;
        f.cache_updates[0].actor_id = mp_bytes_make(cache_id->id, cache_id->len);
        f.cache_updates[0].addr = mp_bytes_str(mp_dir_addr(&n->dir, (size_t)cache_member));
        f.cache_updates[0].incarnation = 0;
    }
    int rc = mp__send_frame(n, peer, &f);
    if (rc == MP_ETOOBIG && status == 0) {
        static const char msg[] = "reply larger than the maximum message size";
        f.status = MP_ETOOBIG;
        f.payload = mp_bytes_make(msg, sizeof msg - 1);
        rc = mp__send_frame(n, peer, &f);
    }
    if (rc < 0)
        mp_env_log(n->env, MP_LOG_DEBUG, "node: response to %s lost: %s", peer,
                   mp_strerror(rc));
}

/* A request sent to a peer remembers which member it went to (in its calls
 * record), so that losing that peer can fail it at once (peers.c) instead of
 * letting it wait for its timeout. */
static void relay_cb(void *ud, int status, const void *data, size_t len);

static void track_sent(mp_node *n, uint64_t corr, uint16_t member)
{
    mp_call_rec *r = mp_calls_find(&n->calls, corr);
    if (r) r->peer = (int32_t)member;
}

static void delayed_fire(void *ud)
{
    mp_msg *m = ud;
    mp_node *n = m->node;
    m->delay_timer = 0;
    mp_list_remove(&m->link);
    if (m->delay_kind == MP__DELAY_RESPONSE) {
        mp__send_response(n, m->peer, m->corr, m->status, m->rdata, m->rlen, NULL,
                      -1);
        mp_msg_release(n, m);
    } else if (m->delay_kind == MP__DELAY_GHOST) {
        mp__rid_ghost_arrive(n, m);
    } else {
        mp__send_to(n, m, m->delay_member, m->delay_flags, false);
    }
}

/* Park a message on a timer (buggify delays). Returns false if the timer
 * could not be made (the caller then proceeds at once). */
bool mp__delay_msg(mp_node *n, mp_msg *m, uint8_t kind, uint16_t member,
                      uint16_t flags)
{
    uint64_t d = mp_env_random_below(n->env, 20 * MP_NS_PER_MS) + 1;
    m->delay_kind = kind;
    m->delay_member = member;
    m->delay_flags = flags;
    m->delay_timer = mp_env_timer_start(n->env, d, delayed_fire, m);
    if (!m->delay_timer) return false;
    mp_list_push_back(&n->delayed, &m->link);
    return true;
}

/* Send a request that this node does not host to `member`. A message that
 * arrived from a peer is proxied (relay record); our own calls go with their
 * own correlation id. Consumes m. */
void mp__send_to(mp_node *n, mp_msg *m, uint16_t member, uint16_t flags,
                    bool allow_delay)
{
    assert(member != n->dir.self);
    uint64_t now = mp_env_now(n->env);
    if (m->deadline && now >= m->deadline) {
        mp_msg_release(n, m); /* expired: the caller's timeout reports it */
        return;
    }
    if (m->origin == MP_ORIGIN_LOCAL && !mp_calls_find(&n->calls, m->corr)) {
        /* Our own call already ended (its caller was told, e.g. "not
         * executed" when a peer was found unreachable while this message
         * waited in a list being handed on): sending it now could run it
         * after that answer (exec seed 3245, the rid low-mark assertion). */
        mp_msg_release(n, m);
        return;
    }
    uint8_t fc = m->forward_count;
    if (m->remote_in) {
        /* Buggify: routes that flapped until the message reached the limit
         * (rare on its own: it needs views changing at every hop). */
        if (fc < MP_MAX_FORWARDS && MP_BUGGIFY_P(0.003)) fc = MP_MAX_FORWARDS;
        if (fc >= MP_MAX_FORWARDS) {
            MP_SOMETIMES(true, "actor.too_many_forwards");
            mp__fail_msg(n, m, MP_EFORWARDS, "message forwarded too many times");
            return;
        }
        fc++;
        if (allow_delay && MP_BUGGIFY_P(0.1) &&
            mp__delay_msg(n, m, MP__DELAY_SEND, member, flags))
            return;
    }
    uint64_t remaining = m->deadline ? m->deadline - now : n->call_timeout_ns;
    uint64_t ttl_ms = (remaining + MP_NS_PER_MS - 1) / MP_NS_PER_MS;
    if (ttl_ms > UINT32_MAX) ttl_ms = UINT32_MAX;

    mp_frame f;
    mp__frame_init(&f, m->origin == MP_ORIGIN_NONE ? MP_FRAME_ONEWAY
                                                : MP_FRAME_REQUEST);
    f.flags = flags;
    f.forward_count = fc;
    f.ttl_ms = (uint32_t)ttl_ms;
    f.target = mp_bytes_make(m->target.id, m->target.len);
    f.sender = mp_bytes_make(m->sender, m->sender_len);
    f.method = mp_bytes_make(m->method, m->method_len);
    f.request_key = mp_bytes_make(m->key, m->key_len);
    f.payload = mp_bytes_make(m->data, m->len);
    if (f.kind == MP_FRAME_REQUEST) {
        f.rid_origin = m->rid_origin;
        f.rid_seq = m->rid_seq;
        /* Our own call: the low mark as of now (the call is out, so it is
         * not above the call's own sequence). Another origin's: as it came. */
        f.rid_low = m->rid_origin == n->rid_token ? mp_calls_low(&n->calls) : m->rid_low;
        assert(f.rid_seq == 0 || f.rid_low <= f.rid_seq || m->remote_in);
    }

    mp_ctx *relay = NULL;
    if (m->origin == MP_ORIGIN_LOCAL) {
        f.correlation_id = m->corr;
    } else if (m->origin == MP_ORIGIN_REMOTE) {
        relay = mp__ctx_new(n, MP_CTX_RELAY, &m->target);
        if (!relay) {
            mp__fail_msg(n, m, MP_ENOMEM, "out of memory");
            return;
        }
        relay->member = member;
        relay->orig_corr = m->corr;
        memcpy(relay->peer, m->peer, sizeof relay->peer);
        int rc = mp_calls_add(&n->calls, remaining, relay_cb, relay,
                              &f.correlation_id);
        if (rc < 0) {
            mp__ctx_free(relay);
            mp__fail_msg(n, m, rc, mp_strerror(rc));
            return;
        }
    }
    if (m->remote_in) {
        n->stats.forwards++;
        MP_SOMETIMES(true, "actor.forwarded");
    }
    int rc = mp__send_frame(n, mp_dir_addr(&n->dir, member), &f);
    MP__DBG(n, "send %s.%s to %s fc=%u flags=%u origin=%u corr=%llu rc=%d", m->target.id,
        m->method, mp_dir_addr(&n->dir, member), fc, flags, m->origin,
        (unsigned long long)f.correlation_id, rc);
    if (rc < 0) {
        if (relay) {
            mp_calls_cancel(&n->calls, f.correlation_id);
            mp__ctx_free(relay);
        }
        if (mp__refusal_status(rc)) {
            char why[MP_ADDR_MAX + 200];
            mp__refusal_text(n, mp_dir_addr(&n->dir, member), rc, why, sizeof why);
            mp__fail_msg(n, m, rc, why);
            return;
        }
        mp__fail_msg(n, m, rc, mp_strerror(rc));
        return;
    }
    if (m->origin != MP_ORIGIN_NONE) track_sent(n, f.correlation_id, member);
    mp_msg_release(n, m);
}

static void relay_cb(void *ud, int status, const void *data, size_t len)
{
    mp_ctx *c = ud;
    mp_node *n = c->node;
    /* The cache was already updated from the reply's own cache updates (see
     * on_response), so it holds the freshest location to pass back. */
    int where = mp_dir_cache_get(&n->dir, c->ref.id, c->ref.len);
    if (where < 0) where = c->member;
    /* This node shut down with the relay out: the request was sent on and
     * may have run. MP_ECLOSED would say "your call never left" (node.h). */
    if (status == MP_ECLOSED) {
        static const char why[] = "the relaying node shut down; the call may or may not have run";
        status = MP_EINDOUBT;
        data = why;
        len = sizeof why - 1;
    }
    mp__send_response(n, c->peer, c->orig_corr, status, data, len, &c->ref, where);
    mp__ctx_free(c);
}

static uint64_t sys_timeout(const mp_node *n)
{
    return n->call_timeout_ns < SYS_TIMEOUT_MAX_NS ? n->call_timeout_ns
                                                   : SYS_TIMEOUT_MAX_NS;
}

int mp__send_system(mp_node *n, size_t member, mp_sys_kind kind,
                       const mp_ref *ref, const void *payload, size_t len,
                       mp_ctx *ctx, mp_reply_cb cb)
{
    assert(member < n->dir.n && member != n->dir.self);
    assert(!ctx || cb);
    mp_frame f;
    mp__frame_init(&f, MP_FRAME_SYSTEM);
    f.method = mp_sys_method(kind);
    if (ref) f.target = mp_bytes_make(ref->id, ref->len);
    f.payload = mp_bytes_make(payload, (uint32_t)len);
    f.ttl_ms = (uint32_t)(sys_timeout(n) / MP_NS_PER_MS);
    if (ctx) {
        ctx->member = (uint16_t)member;
        int rc = mp_calls_add(&n->calls, sys_timeout(n), cb, ctx,
                              &f.correlation_id);
        if (rc < 0) return rc;
        track_sent(n, f.correlation_id, (uint16_t)member);
    }
    int rc = mp__send_frame(n, mp_dir_addr(&n->dir, member), &f);
    MP__DBG(n, "sys %.*s %s to %s corr=%llu rc=%d", (int)f.method.len, (const char *)f.method.ptr, ref ? ref->id : "-",
        mp_dir_addr(&n->dir, member), (unsigned long long)f.correlation_id, rc);
    if (rc < 0 && ctx) mp_calls_cancel(&n->calls, f.correlation_id);
    return rc;
}

void mp__send_error(mp_node *n, const char *peer, uint64_t corr, int status,
                    const char *text)
{
    assert(status < 0 && text);
    mp__send_response(n, peer, corr, status, text, strlen(text), NULL, -1);
}
