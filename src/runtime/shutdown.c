/*
 * Shutdown and release.
 *
 * A graceful shutdown deactivates every activation (hooks run), then fails
 * what still waits with MP_ECLOSED, then closes the transport, flushing
 * what it can until the deadline. The node's memory waits for its storage
 * operations in flight: their callbacks always come (storage.h) and hold
 * pointers to the node. mp_node_free_now (a killed process in the
 * simulator) releases everything at once and runs no hook.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "runtime/runtime.h"

/* Free every structure. Callbacks never run from here. */
static void release_all(mp_node *n)
{
    n->freed = true;
    mp_env *env = n->env;
    if (n->load_timer) mp_env_timer_cancel(env, n->load_timer);
    if (n->sweep_timer) mp_env_timer_cancel(env, n->sweep_timer);
    if (n->shutdown_timer) mp_env_timer_cancel(env, n->shutdown_timer);
    n->load_timer = n->sweep_timer = n->shutdown_timer = 0;
    mp_list_node *ln;
    /* run queue: local replies (their calls are completed or dropped) */
    while ((ln = mp_list_pop_front(&n->runq)) != NULL) {
        mp_work *w = MP_CONTAINER_OF(ln, mp_work, link);
        if (w->kind == MP_WORK_REPLY)
            mp_msg_release(n, MP_CONTAINER_OF(w, mp_msg, work));
    }
    /* activations */
    while ((ln = mp_list_front(&n->catalog.list)) != NULL) {
        mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
        mp_msg *m;
        while ((m = mp_actor_pop(a)) != NULL) mp_msg_release(n, m);
        if (a->current) {
            /* A handler that never replied: its message goes with the node. */
            mp_msg *cm = a->current;
            a->current = NULL;
            mp_list_remove(&cm->link);
            mp_list_remove(&cm->work.link);
            mp_msg_release(n, cm);
        }
        mp__destroy_activation(n, a);
    }
    while ((ln = mp_list_front(&n->pending_list)) != NULL) {
        mp_pending *p = MP_CONTAINER_OF(ln, mp_pending, link);
        mp_list_node *ml;
        while ((ml = mp_list_pop_front(&p->msgs)) != NULL)
            mp_msg_release(n, MP_CONTAINER_OF(ml, mp_msg, link));
        mp__pending_free(n, p);
    }
    while ((ln = mp_list_pop_front(&n->delayed)) != NULL) {
        mp_msg *m = MP_CONTAINER_OF(ln, mp_msg, link);
        if (m->delay_timer) mp_env_timer_cancel(env, m->delay_timer);
        mp_msg_release(n, m);
    }
    while ((ln = mp_list_front(&n->ctx_list)) != NULL)
        mp__ctx_free(MP_CONTAINER_OF(ln, mp_ctx, link));
    while ((ln = mp_list_front(&n->ccalls)) != NULL)
        mp__ccall_free(n, MP_CONTAINER_OF(ln, mp_ccall, link));
    assert(mp_catalog_count(&n->catalog) == 0);
    assert(mp_list_empty(&n->pending_list) && mp_list_empty(&n->ctx_list));
    mp__members_free(n);
    mp_state_node_free(n);
    mp_calls_free(&n->calls, false, 0);
    mp_catalog_free(&n->catalog);
    mp_map_str_free(&n->pending);
    mp_map_u64_free(&n->pub_refs); /* empty: each activation removed its own */
    mp__rid_free(n);
    mp_act_mem_release(&n->act_mem); /* every activation is gone */
    mp_dir_free(&n->dir);
    while (n->msg_free) {
        mp_msg *m = n->msg_free;
        n->msg_free = m->next_free;
        free(m);
    }
    free(n->types);
    free(n->rereg_count);
    free(n->rereg_done);
    free(n);
}

void mp_node_free_now(mp_node *n)
{
    if (!n) return;
    n->killing = true;
    if (n->transport) mp_transport_free_now(n->transport);
    n->transport = NULL;
    release_all(n);
}

void mp__finish_release(mp_node *n)
{
    /* A deferred drain holds n and cannot be cancelled: the memory goes
     * when it has run (runq.c), or it would run on freed memory (seed 101
     * of the exec workload: a graceful stop whose last failures queued
     * local replies just before the transport closed). */
    if (n->drain_scheduled) {
        n->release_after_drain = true;
        return;
    }
    void (*cb)(void *) = n->shutdown_cb;
    void *cud = n->shutdown_ud;
    release_all(n);
    if (cb) cb(cud);
}

static void transport_closed(void *ud)
{
    mp_node *n = ud;
    n->transport = NULL;
    /* Storage operations still out hold pointers to this node: their
     * callbacks always come (storage.h), so the memory waits for them. */
    if (!mp_list_empty(&n->sops)) {
        n->release_waiting = true;
        return;
    }
    mp__finish_release(n);
}

bool mp__sop_done(mp_node *n)
{
    if (!n->release_waiting || !mp_list_empty(&n->sops)) return false;
    n->release_waiting = false;
    mp__finish_release(n);
    return true;
}

static void shutdown_finish(mp_node *n)
{
    assert(n->closing);
    if (n->transport_closing) return;
    n->transport_closing = true;
    if (n->shutdown_timer) mp_env_timer_cancel(n->env, n->shutdown_timer);
    n->shutdown_timer = 0;
    mp_list_node *ln, *tmp;
    /* Pending lookups fail, then every outstanding call with MP_ECLOSED,
     * before any hook runs: an instance released afterwards can rely on
     * none of its calls calling back later (actor.h, release). */
    while ((ln = mp_list_front(&n->pending_list)) != NULL) {
        mp_pending *p = MP_CONTAINER_OF(ln, mp_pending, link);
        mp_list_node msgs;
        mp__pending_take(n, p, &msgs);
        mp__fail_list(n, &msgs, MP_ECLOSED, "node shutting down");
    }
    /* Client calls waiting to fail over: they end now too. */
    MP_LIST_FOREACH_SAFE(ln, tmp, &n->ccalls)
    {
        /* Those with an attempt out are completed by mp_calls_free. */
        mp_ccall *cc = MP_CONTAINER_OF(ln, mp_ccall, link);
        static const char why[] = "node shutting down";
        if (!cc->corr) mp__ccall_finish(n, cc, MP_ECLOSED, why, sizeof why - 1);
    }
    uint64_t next = n->calls.next_corr;
    mp_calls_free(&n->calls, true, MP_ECLOSED);
    mp_calls_init(&n->calls, n->env, 0); /* empty table: late replies drop */
    mp_calls_set_base(&n->calls, next - 1);
    /* Activations still busy at the deadline: their hooks run now. */
    MP_LIST_FOREACH_SAFE(ln, tmp, &n->catalog.list)
    {
        mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
        if (a->activated) {
            a->activated = false;
            if (a->type->on_deactivate)
                a->type->on_deactivate(a, a->instance, MP_DEACTIVATE_SHUTDOWN);
            n->stats.deactivations_total++;
        }
        mp_msg *m;
        while ((m = mp_actor_pop(a)) != NULL)
            mp__fail_msg(n, m, MP_EUNAVAIL, "node shutting down");
    }
    if (n->transport) {
        uint64_t now = mp_env_now(n->env);
        uint64_t left = n->shutdown_deadline > now ? n->shutdown_deadline - now : 0;
        mp_transport_close(n->transport, left, transport_closed, n);
    } else {
        /* Defer so the caller's stack unwinds before the memory goes. */
        if (mp_env_timer_start(n->env, 0, transport_closed, n) == 0)
            mp_env_log(n->env, MP_LOG_ERROR, "node: shutdown stalled (no timer)");
    }
}

static void left_cluster(mp_node *n)
{
    if (!n->freed) shutdown_finish(n);
}

void mp__check_shutdown_done(mp_node *n)
{
    if (!n->closing || n->transport_closing || n->leaving) return;
    if (mp_catalog_count(&n->catalog) != 0) return;
    /* Nothing of ours runs any more: the row can say so (dead, left), and
     * the others take over at once instead of after the lease. The
     * deadline still ends the shutdown if the storage does not answer. */
    if (mp__members_leave(n, left_cluster)) {
        n->leaving = true;
        return;
    }
    shutdown_finish(n);
}

static void shutdown_deadline_cb(void *ud)
{
    mp_node *n = ud;
    n->shutdown_timer = 0;
    shutdown_finish(n);
}

static void shutdown_start(void *ud)
{
    mp_node *n = ud;
    mp_list_node *ln, *tmp;
    MP_LIST_FOREACH_SAFE(ln, tmp, &n->catalog.list)
    {
        mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
        if (a->state == MP_ACT_VALID) {
            a->deactivate_requested = true;
            a->deact_reason = MP_DEACTIVATE_SHUTDOWN;
            mp_actor_schedule(a);
        }
    }
    mp__check_shutdown_done(n);
}

void mp_node_shutdown(mp_node *n, uint64_t deadline_ns, void (*cb)(void *ud),
                      void *ud)
{
    if (!n || n->closing) return;
    n->closing = true;
    n->shutdown_cb = cb;
    n->shutdown_ud = ud;
    n->shutdown_deadline = mp_env_now(n->env) + deadline_ns;
    if (n->load_timer) mp_env_timer_cancel(n->env, n->load_timer);
    if (n->sweep_timer) mp_env_timer_cancel(n->env, n->sweep_timer);
    n->load_timer = n->sweep_timer = 0;
    n->shutdown_timer = mp_env_timer_start(n->env, deadline_ns, shutdown_deadline_cb, n);
    /* Hooks run from a loop callback, not inside this call. */
    if (mp_env_timer_start(n->env, 0, shutdown_start, n) == 0) shutdown_start(n);
}
