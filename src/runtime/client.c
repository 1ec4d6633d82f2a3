/*
 * Client-only nodes: a process that calls actors but hosts none (moonpool
 * call, stats, user programs). It is not in the member list; mp_call goes
 * to a gateway member, which treats it like any peer's request.
 *
 * The request is kept so that it can be resent to another gateway when its
 * gateway turns out unreachable (fail-over to the next member).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "runtime/runtime.h"

/* A gateway attempt failed in a way another member may not share: the
 * connection to it broke or was refused, or it said it cannot serve. */
/* Retried on another gateway: statuses that say the request did not run.
 * MP_EUNAVAIL and MP_EQUEUEFULL are answered by a gateway that did not take
 * it (node.h); the transport statuses come only from a send that failed at
 * once, i.e. queued nothing. Nothing that may have run is ever retried. */
bool mp__client_retryable(int status)
{
    return status == MP_EUNAVAIL || status == MP_ECONNRESET ||
           status == MP_ECONNREFUSED || status == MP_EOF ||
           status == MP_EQUEUEFULL;
}
/* Every member is tried once per round; a call then waits a little before
 * the next round (the cluster may be restarting), up to its deadline. */
#define CLIENT_ROUNDS 4
#define CLIENT_ROUND_PAUSE_NS (100ull * MP_NS_PER_MS)

static void ccall_cb(void *ud, int status, const void *data, size_t len);
static void client_next(mp_node *n, mp_ccall *cc, int status,
                        const void *data, size_t len);

static int client_frame(mp_node *n, const mp_msg *m, size_t gw, uint64_t corr)
{
    uint64_t now = mp_env_now(n->env);
    if (m->deadline && now >= m->deadline) return MP_ETIMEDOUT;
    uint64_t remaining = m->deadline ? m->deadline - now : n->call_timeout_ns;
    uint64_t ttl_ms = (remaining + MP_NS_PER_MS - 1) / MP_NS_PER_MS;
    if (ttl_ms > UINT32_MAX) ttl_ms = UINT32_MAX;
    mp_frame f;
    mp__frame_init(&f, corr ? MP_FRAME_REQUEST : MP_FRAME_ONEWAY);
    f.correlation_id = corr;
    f.ttl_ms = (uint32_t)ttl_ms;
    f.target = mp_bytes_make(m->target.id, m->target.len);
    f.method = mp_bytes_make(m->method, m->method_len);
    f.request_key = mp_bytes_make(m->key, m->key_len);
    f.payload = mp_bytes_make(m->data, m->len);
    int rc = mp__send_frame(n, mp_dir_addr(&n->dir, gw), &f);
    MP__DBG(n, "client send %s.%s to %s corr=%llu rc=%d", m->target.id, m->method,
        mp_dir_addr(&n->dir, gw), (unsigned long long)corr, rc);
    return rc;
}

void mp__ccall_free(mp_node *n, mp_ccall *cc)
{
    mp_list_remove(&cc->link);
    if (cc->timer) mp_env_timer_cancel(n->env, cc->timer);
    if (cc->corr) mp_calls_cancel(&n->calls, cc->corr);
    mp_msg_release(n, cc->m);
    free(cc);
}

/* The call's outcome: runs the caller's callback (from a loop callback,
 * never inside mp_call) and forgets the call. */
void mp__ccall_finish(mp_node *n, mp_ccall *cc, int status,
                         const void *data, size_t len)
{
    assert(cc->cb);
    mp_reply_cb cb = cc->cb;
    void *ud = cc->ud;
    cc->corr = 0;
    mp__ccall_free(n, cc);
    cb(ud, status, data, len);
}

/* Send the next attempt. Returns the send status; on failure nothing is
 * registered. The first attempt goes to the member that hosted the actor
 * last time (learnt from the cache updates of earlier replies), so a client
 * call costs one hop, not two (gateway, then host): in the 3-node demo 70%
 * of requests were relayed before. Without a hint, and for fail-over
 * attempts, the gateway is drawn from the id's hash, so one client spreads
 * its calls over every member. */
static int client_attempt_once(mp_node *n, mp_ccall *cc)
{
    assert(n->client_only && n->dir.n > 0);
    assert(cc->corr == 0 && !cc->timer); /* one attempt out at a time */
    int hint = cc->tries == 0 ? mp_dir_cache_get_ref(&n->dir, &cc->m->target) : -1;
    cc->gw = hint >= 0 ? (uint16_t)hint
                       : (uint16_t)((cc->m->target.hash + cc->tries) % n->dir.n);
    int rc = mp_calls_add_at(&n->calls, cc->m->deadline, ccall_cb, cc,
                             &cc->corr);
    if (rc < 0) {
        cc->corr = 0;
        return rc;
    }
    rc = client_frame(n, cc->m, cc->gw, cc->corr);
    if (rc < 0) {
        mp_calls_cancel(&n->calls, cc->corr);
        cc->corr = 0;
    }
    return rc;
}

static void client_retry_fire(void *ud)
{
    mp_ccall *cc = ud;
    cc->timer = 0;
    mp_node *n = cc->node;
    int rc = client_attempt_once(n, cc);
    if (rc < 0) client_next(n, cc, rc, mp_strerror(rc), strlen(mp_strerror(rc)));
}

/* The current attempt failed with `status`: fail over to the next gateway
 * while that makes sense, else report the failure. Runs from loop
 * callbacks only. */
static void client_next(mp_node *n, mp_ccall *cc, int status,
                        const void *data, size_t len)
{
    for (;;) {
        uint64_t now = mp_env_now(n->env);
        bool more = mp__client_retryable(status) && !n->closing &&
                    cc->tries + 1 < CLIENT_ROUNDS * n->dir.n &&
                    (!cc->m->deadline || now < cc->m->deadline);
        if (!more) {
            mp__ccall_finish(n, cc, status, data, len);
            return;
        }
        MP_SOMETIMES(true, "actor.client_failover");
        cc->tries++;
        if (cc->tries % n->dir.n == 0) {
            cc->timer = mp_env_timer_start(n->env, CLIENT_ROUND_PAUSE_NS,
                                           client_retry_fire, cc);
            if (cc->timer) return;
        }
        int rc = client_attempt_once(n, cc);
        if (rc == 0) return;
        status = rc;
        data = mp_strerror(rc);
        len = strlen(data);
    }
}

static void ccall_cb(void *ud, int status, const void *data, size_t len)
{
    mp_ccall *cc = ud;
    mp_node *n = cc->node;
    cc->corr = 0;
    if (mp__client_retryable(status)) {
        /* The hinted host may be gone: later calls start from the hash. */
        mp_dir_cache_remove_ref(&n->dir, &cc->m->target);
        client_next(n, cc, status, data, len);
    } else {
        mp__ccall_finish(n, cc, status, data, len);
    }
}

static int cmp_corr(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The gateway `member` is lost (unreachable, restarted or refusing; see
 * peers.c). A call whose frame was never sent (its id in unsent, sorted)
 * did not run: it fails over to the next gateway. A call whose frame was
 * sent may have run: it ends with status and text, and is never sent
 * again (at most once; node.h). */
void mp__client_peer_down(mp_node *n, uint16_t member, int status,
                          const char *text, const uint64_t *unsent,
                          size_t unsent_count)
{
    assert(status < 0 && text);
    mp_list_node moved;
    mp_list_init(&moved);
    mp_list_node *ln, *tmp;
    MP_LIST_FOREACH_SAFE(ln, tmp, &n->ccalls)
    {
        mp_ccall *cc = MP_CONTAINER_OF(ln, mp_ccall, link);
        if (cc->corr && cc->gw == member) {
            mp_list_remove(&cc->link);
            mp_list_push_back(&moved, &cc->link);
        }
    }
    static const char not_sent[] = "gateway unreachable; the request was not sent";
    /* One at a time, each back in the main list before anything runs:
     * callbacks may add calls (never remove others). */
    while ((ln = mp_list_pop_front(&moved)) != NULL) {
        mp_ccall *cc = MP_CONTAINER_OF(ln, mp_ccall, link);
        mp_list_push_back(&n->ccalls, &cc->link);
        uint64_t corr = cc->corr;
        mp_calls_cancel(&n->calls, corr);
        cc->corr = 0;
        bool dropped = unsent_count &&
                       bsearch(&corr, unsent, unsent_count, sizeof corr, cmp_corr);
        if (dropped) {
            MP_SOMETIMES(true, "actor.client_failover_unsent");
            client_next(n, cc, MP_EUNAVAIL, not_sent, sizeof not_sent - 1);
        } else {
            mp__ccall_finish(n, cc, status, text, strlen(text));
        }
    }
}

/* Submit from a client-only node: consumes m. */
int mp__client_submit(mp_node *n, mp_msg *m, mp_reply_cb cb, void *ud,
                         bool oneway)
{
    int rc = MP_EUNAVAIL;
    if (oneway) {
        for (size_t i = 0; i < n->dir.n && rc < 0; i++)
            rc = client_frame(n, m, (m->target.hash + i) % n->dir.n, 0);
        mp_msg_release(n, m);
        if (rc == 0) n->stats.calls_out++;
        return rc < 0 ? rc : MP_OK;
    }
    mp_ccall *cc = calloc(1, sizeof *cc);
    if (!cc) {
        mp_msg_release(n, m);
        return MP_ENOMEM;
    }
    cc->node = n;
    cc->m = m;
    cc->cb = cb;
    cc->ud = ud;
    m->origin = MP_ORIGIN_LOCAL;
    mp_list_node_init(&cc->link);
    mp_list_push_back(&n->ccalls, &cc->link);
    /* The first round is tried at once; if no gateway takes the frame the
     * call fails here and cb never runs. */
    for (;;) {
        rc = client_attempt_once(n, cc);
        if (rc == 0) break;
        if (!mp__client_retryable(rc) || cc->tries + 1 >= n->dir.n) {
            mp__ccall_free(n, cc);
            return rc;
        }
        cc->tries++;
    }
    n->stats.calls_out++;
    return MP_OK;
}
