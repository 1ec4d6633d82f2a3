/*
 * The call API: mp_call, mp_actor_call, mp_send, mp_node_request_stats.
 *
 * Every argument is checked here, before anything is queued, so local and
 * remote calls fail alike (R16); then the message is routed (route.c) or,
 * on a client-only node, handed to a gateway (client.c).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "runtime/runtime.h"

static bool ref_ok(const mp_ref *r)
{
    return r->len >= 5 && r->len <= MP_ACTOR_ID_MAX && r->id[r->len] == '\0' &&
           r->type_off >= 3 && (size_t)r->type_off + r->type_len < r->len &&
           r->key_off == r->type_off + r->type_len + 1 &&
           (size_t)r->key_off + r->key_len == r->len;
}

static int submit(mp_node *n, const mp_actor *sender, const mp_ref *ref,
                  const char *method, const void *payload, size_t len,
                  const mp_call_opts *opts, mp_reply_cb cb, void *ud,
                  bool oneway)
{
    if (!n || !ref || !method || (!payload && len) || (!oneway && !cb))
        return MP_EINVAL;
    if (n->closing || !n->started) return MP_ECLOSED;
    if (!ref_ok(ref)) return MP_EINVAL;
    size_t mlen = strnlen(method, MP_METHOD_MAX + 1);
    if (mlen == 0 || mlen > MP_METHOD_MAX) return MP_EINVAL;
    size_t slen = sender ? sender->len : 0;
    /* The same bound the wire enforces, checked before anything is queued
     * so local and remote calls fail alike (R16). */
    size_t klen = opts && opts->idempotency_key
                      ? strnlen(opts->idempotency_key, MP_IDEMPOTENCY_KEY_MAX + 1)
                      : 0;
    size_t frame = (size_t)MP_FRAME_MIN_SIZE + ref->len + slen + mlen + klen;
    if (len > n->max_message || frame + len > n->max_message) return MP_ETOOBIG;

    mp_msg *m = mp_msg_alloc(n);
    if (!m) return MP_ENOMEM;
    if (mp_msg_set_payload(m, payload, len) != MP_OK) {
        mp_msg_release(n, m);
        return MP_ENOMEM;
    }
    uint64_t timeout = opts && opts->timeout_ns ? opts->timeout_ns
                                                : n->call_timeout_ns;
    uint64_t now = mp_env_now(n->env);
    m->deadline = now + timeout < now ? UINT64_MAX : now + timeout;
    mp__ref_copy(&m->target, ref);
    memcpy(m->method, method, mlen + 1);
    m->method_len = (uint8_t)mlen;
    if (sender) {
        memcpy(m->sender, sender->id, slen + 1);
        m->sender_len = (uint16_t)slen;
    }
    if (opts && opts->idempotency_key) {
        size_t kl = strnlen(opts->idempotency_key, MP_IDEMPOTENCY_KEY_MAX + 1);
        if (!mp__idem_key_ok(opts->idempotency_key, kl)) {
            mp_msg_release(n, m);
            return MP_EINVAL;
        }
        memcpy(m->key, opts->idempotency_key, kl);
        m->key_len = (uint8_t)kl;
    }
    assert(m->deadline > now); /* timeout > 0, saturated on overflow */
    if (n->client_only) return mp__client_submit(n, m, cb, ud, oneway);
    if (oneway) {
        m->origin = MP_ORIGIN_NONE;
    } else {
        int rc = mp_calls_add_timed(&n->calls, now, m->deadline, cb, ud, &m->corr);
        if (rc < 0) {
            mp_msg_release(n, m);
            return rc;
        }
        m->origin = MP_ORIGIN_LOCAL;
        m->rid_origin = n->rid_token;
        m->rid_seq = m->corr;
        if (sender && sender->current) {
            sender->current->await_corr = m->corr;
            sender->current->await_hash = ref->hash;
        }
    }
    n->stats.calls_out++;
    mp__route(n, m);
    return MP_OK;
}

int mp_call(mp_node *node, const mp_ref *ref, const char *method,
            const void *payload, size_t len, const mp_call_opts *opts,
            mp_reply_cb cb, void *ud)
{
    return submit(node, NULL, ref, method, payload, len, opts, cb, ud, false);
}

int mp_actor_call(mp_actor *self, const mp_ref *ref, const char *method,
                  const void *payload, size_t len, const mp_call_opts *opts,
                  mp_reply_cb cb, void *ud)
{
    if (!self) return MP_EINVAL;
    return submit(self->node, self, ref, method, payload, len, opts, cb, ud,
                  false);
}

int mp_send(mp_node *node, const mp_ref *ref, const char *method,
            const void *payload, size_t len)
{
    return submit(node, NULL, ref, method, payload, len, NULL, NULL, NULL,
                  true);
}

int mp_node_request_stats(mp_node *n, const char *member_addr, mp_reply_cb cb,
                          void *ud)
{
    if (!n || !member_addr || !cb) return MP_EINVAL;
    if (n->closing || !n->started) return MP_ECLOSED;
    if (strcmp(member_addr, n->self_addr) == 0) {
        /* Our own counters: the same path as a local call's reply, so cb
         * runs from the drain, never inside this call. */
        size_t len = 0;
        char *json = mp_node_stats_json(n, &len);
        if (!json) return MP_ENOMEM;
        mp_msg *m = mp_msg_alloc(n);
        int rc = m ? mp_calls_add(&n->calls, n->call_timeout_ns, cb, ud, &m->corr)
                   : MP_ENOMEM;
        if (rc < 0) {
            if (m) mp_msg_release(n, m);
            free(json);
            return rc;
        }
        m->origin = MP_ORIGIN_LOCAL;
        mp__finish(n, m, 0, json, len);
        free(json);
        return MP_OK;
    }
    int idx = mp_dir_member(&n->dir, member_addr, strlen(member_addr));
    if (idx < 0) return MP_EINVAL;
    mp_frame f;
    mp__frame_init(&f, MP_FRAME_SYSTEM);
    f.method = mp_sys_method(MP_SYS_STATS);
    f.ttl_ms = (uint32_t)(n->call_timeout_ns / MP_NS_PER_MS);
    int rc = mp_calls_add(&n->calls, n->call_timeout_ns, cb, ud, &f.correlation_id);
    if (rc < 0) return rc;
    rc = mp__send_frame(n, mp_dir_addr(&n->dir, (size_t)idx), &f);
    if (rc < 0) {
        mp_calls_cancel(&n->calls, f.correlation_id);
        return rc;
    }
    return MP_OK;
}
