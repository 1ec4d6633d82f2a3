/*
 * Frames from peers: requests, responses, stats requests; system requests
 * go to the directory owner's side (dir_owner.c).
 *
 * Members speak the whole protocol; a non-member (a client-only node) may
 * send requests and ask for stats, nothing that touches the directory.
 * Every field read from a peer is validated before it is believed.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "runtime/runtime.h"

static void on_request(mp_node *n, int peer_idx, const char *peer,
                       const mp_frame *f)
{
    bool oneway = f->kind == MP_FRAME_ONEWAY;
    mp_ref ref;
    const char *why = NULL;
    int status = MP_EINVAL;
    if (mp_ref_parse(&ref, (const char *)f->target.ptr, f->target.len) != MP_OK)
        why = "malformed actor id";
    else if (!mp__ns_matches(n, &ref))
        why = "actor id of another namespace";
    else if (f->method.len == 0 || f->method.len > MP_METHOD_MAX ||
             memchr(f->method.ptr, 0, f->method.len))
        why = "malformed method";
    else if (f->sender.len > MP_ACTOR_ID_MAX)
        why = "malformed sender";
    else if (f->request_key.len &&
             !mp__idem_key_ok((const char *)f->request_key.ptr, f->request_key.len))
        why = "malformed idempotency key";
    if (why) {
        if (!oneway) mp__send_response(n, peer, f->correlation_id, status, why,
                                   strlen(why), NULL, -1);
        return;
    }
    if (f->ttl_ms == 0) return; /* already expired */
    mp_msg *m = mp_msg_alloc(n);
    if (!m || mp_msg_set_payload(m, f->payload.ptr, f->payload.len) != MP_OK) {
        if (m) mp_msg_release(n, m);
        if (!oneway) mp__send_response(n, peer, f->correlation_id, MP_ENOMEM,
                                   "out of memory", 13, NULL, -1);
        return;
    }
    m->origin = oneway ? MP_ORIGIN_NONE : MP_ORIGIN_REMOTE;
    m->corr = f->correlation_id;
    m->forward_count = f->forward_count;
    m->flags = f->flags;
    m->remote_in = true;
    m->deadline = mp_env_now(n->env) + (uint64_t)f->ttl_ms * MP_NS_PER_MS;
    size_t pl = strlen(peer);
    if (pl > MP_ADDR_MAX) pl = MP_ADDR_MAX;
    memcpy(m->peer, peer, pl);
    m->peer[pl] = '\0';
    m->target = ref;
    memcpy(m->method, f->method.ptr, f->method.len);
    m->method[f->method.len] = '\0';
    m->method_len = (uint8_t)f->method.len;
    if (f->sender.len) memcpy(m->sender, f->sender.ptr, f->sender.len);
    m->sender[f->sender.len] = '\0';
    m->sender_len = (uint16_t)f->sender.len;
    if (f->request_key.len) memcpy(m->key, f->request_key.ptr, f->request_key.len);
    m->key_len = (uint8_t)f->request_key.len;
    m->rid_origin = f->rid_origin; /* 0 for one-way frames (frame.c) */
    m->rid_seq = f->rid_seq;
    m->rid_low = f->rid_low;
    MP__DBG(n, "recv %s.%s from %s fc=%u flags=%u corr=%llu", ref.id, m->method, peer,
        f->forward_count, f->flags, (unsigned long long)f->correlation_id);

    assert(m->method_len == f->method.len && m->sender_len == f->sender.len);
    if (n->closing) {
        mp__fail_msg(n, m, MP_EUNAVAIL, "node shutting down");
        return;
    }
    mp_actor *a = mp_catalog_find(&n->catalog, &ref);
    if (a && a->state != MP_ACT_INVALID) {
        mp__deliver_local(n, a, m);
        return;
    }
    if (f->flags & MP_FLAG_PLACE) {
        mp_list_node one;
        mp_list_init(&one);
        mp_list_push_back(&one, &m->link);
        mp__host_here(n, &ref, &one);
        return;
    }
    /* Not here (stale cache at the sender): the owner knows where. */
    MP_SOMETIMES(true, "actor.request_not_hosted");
    mp_dir_cache_remove(&n->dir, ref.id, ref.len);
    mp__route(n, m);
}

static void on_response(mp_node *n, const mp_frame *f)
{
    MP__DBG(n, "response corr=%llu status=%d", (unsigned long long)f->correlation_id,
        f->status);
    /* Client-only nodes learn too: it steers their next call (see
     * client_attempt_once). Their self is no member, so no entry is theirs. */
    for (uint16_t i = 0; i < f->cache_update_count; i++) {
        const mp_frame_cache_update *u = &f->cache_updates[i];
        mp_ref r;
        if (mp_ref_parse(&r, (const char *)u->actor_id.ptr, u->actor_id.len) != MP_OK)
            continue;
        int mb = mp_dir_member(&n->dir, (const char *)u->addr.ptr, u->addr.len);
        if (mb < 0) continue;
        if ((size_t)mb == n->dir.self) {
            mp_dir_cache_remove(&n->dir, r.id, r.len);
        } else {
            int old = mp_dir_cache_get(&n->dir, r.id, r.len);
            mp_dir_cache_put(&n->dir, r.id, r.len, (uint16_t)mb, u->incarnation);
            MP_SOMETIMES(old != mb, "actor.cache_corrected");
        }
        n->stats.cache_updates++;
    }
    int rc = mp_calls_complete(&n->calls, f->correlation_id, f->status,
                               f->payload.ptr, f->payload.len);
    (void)rc;
}

static void on_stats_request(mp_node *n, const char *peer, const mp_frame *f)
{
    if (!f->correlation_id) return;
    size_t len = 0;
    char *json = mp_node_stats_json(n, &len);
    if (!json) {
        mp__send_response(n, peer, f->correlation_id, MP_ENOMEM, "out of memory",
                      13, NULL, -1);
        return;
    }
    mp__send_response(n, peer, f->correlation_id, 0, json, len, NULL, -1);
    free(json);
}

/* Frames from any handshaken peer of our namespace. Members speak the whole
 * protocol; a non-member (a client-only node) may send requests and ask for
 * stats, nothing that touches the directory. */
void mp__on_frame(void *ud, const char *peer, const mp_frame *f)
{
    mp_node *n = ud;
    if (n->freed || !peer) return;
    size_t plen = strlen(peer);
    int idx;
    if (plen == n->last_from_len && memcmp(peer, n->last_from, plen) == 0) {
        idx = n->last_from_idx;
    } else {
        idx = mp_dir_member(&n->dir, peer, plen);
        if (plen <= MP_ADDR_MAX) {
            memcpy(n->last_from, peer, plen + 1);
            n->last_from_len = plen;
            n->last_from_idx = idx;
        }
    }
    if (idx >= 0 && (size_t)idx == n->dir.self) {
        mp_env_log(n->env, MP_LOG_WARN, "node: frame from own address %s dropped",
                   peer);
        return;
    }
    switch (f->kind) {
    case MP_FRAME_REQUEST:
    case MP_FRAME_ONEWAY:
        if (n->client_only) {
            static const char no[] = "a client-only node hosts no actors";
            if (f->kind == MP_FRAME_REQUEST)
                mp__send_response(n, peer, f->correlation_id, MP_EUNAVAIL, no,
                              sizeof no - 1, NULL, -1);
            break;
        }
        if (idx < 0) MP_SOMETIMES(true, "actor.request_from_client");
        on_request(n, idx, peer, f);
        break;
    case MP_FRAME_RESPONSE:
        /* Only members are ever asked anything: a response from anyone
         * else answers nothing of ours (and must not complete a call). */
        if (idx >= 0) on_response(n, f);
        break;
    case MP_FRAME_SYSTEM:
        if (mp_sys_kind_of(f->method) == MP_SYS_STATS) {
            on_stats_request(n, peer, f);
        } else if (idx < 0 || n->client_only) {
            static const char no[] = "system request refused: not a member";
            /* With membership, a member that just joined speaks before
             * this node read the table: expected, and retried. */
            mp_env_log(n->env, n->members ? MP_LOG_DEBUG : MP_LOG_WARN,
                       "node: system request from non-member %s refused", peer);
            if (f->correlation_id)
                mp__send_response(n, peer, f->correlation_id, MP_EPROTO, no,
                              sizeof no - 1, NULL, -1);
        } else {
            mp__on_system(n, idx, peer, f);
        }
        break;
    default: break;
    }
}
