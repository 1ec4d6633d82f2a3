/*
 * The run queue and how a message ends.
 *
 * Why all user code runs from the drain: mp_call, mp_reply and frame arrival
 * only queue work (see activation.c), and routing itself never runs user
 * code, so hooks and callbacks always run from a loop callback with nothing
 * of the runtime's on the stack. Routing may therefore be synchronous even
 * when the directory owner is this node.
 *
 * A message ends in exactly one place, mp__finish: a local caller gets its
 * reply through the run queue (never inside the call that produced it), a
 * remote caller gets a RESPONSE frame, a one-way message is just released.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "runtime/runtime.h"

static void drain(void *ud);

static void schedule_drain(mp_node *n)
{
    if (n->drain_scheduled || n->in_drain || n->freed) return;
    if (mp_env_defer(n->env, drain, n) == MP_OK ||
        mp_env_timer_start(n->env, 0, drain, n) != 0) {
        n->drain_scheduled = true;
    } else {
        mp_env_log(n->env, MP_LOG_ERROR, "node: cannot schedule the run queue");
    }
}

void mp__runq_push(mp_node *n, mp_work *w)
{
    assert(!mp_list_node_linked(&w->link));
    mp_list_push_back(&n->runq, &w->link);
    schedule_drain(n);
}

static void deliver_local_reply(mp_node *n, mp_msg *m)
{
    mp_calls_complete(&n->calls, m->corr, m->status, m->rdata, m->rlen);
    mp_msg_release(n, m);
}

static void drain(void *ud)
{
    mp_node *n = ud;
    n->drain_scheduled = false;
    n->in_drain = true;
    n->drain_now = mp_env_now(n->env);
    /* Every turn starts in a drain: one lease check per drain gates them
     * all (members.c). */
    if (n->members) mp__members_check_lease(n, n->drain_now);
    /* A budget keeps one drain from starving I/O when handlers keep
     * producing work; the rest goes to the next loop turn. */
    size_t budget = 1u << 16;
    mp_list_node *ln;
    while (budget-- && (ln = mp_list_pop_front(&n->runq)) != NULL) {
        mp_work *w = MP_CONTAINER_OF(ln, mp_work, link);
        if (w->kind == MP_WORK_REPLY)
            deliver_local_reply(n, MP_CONTAINER_OF(w, mp_msg, work));
        else
            mp_actor_step(MP_CONTAINER_OF(w, mp_actor, work));
    }
    n->in_drain = false;
    if (!mp_list_empty(&n->runq)) schedule_drain(n);
    if (n->release_after_drain && !n->drain_scheduled) mp__finish_release(n);
}

void mp__finish(mp_node *n, mp_msg *m, int status, const void *data,
                    size_t len)
{
    assert(!mp_list_node_linked(&m->link));
    switch (m->origin) {
    case MP_ORIGIN_LOCAL: {
        if (status == 0 && len > n->max_message) {
            static const char big[] = "reply larger than the maximum message size";
            status = MP_ETOOBIG;
            data = big;
            len = sizeof big - 1;
        }
        if (mp_msg_set_reply(m, status, data, len) != MP_OK)
            mp_msg_set_reply(m, MP_ENOMEM, "", 0);
        m->work.kind = MP_WORK_REPLY;
        mp__runq_push(n, &m->work);
        return;
    }
    case MP_ORIGIN_REMOTE:
        /* Every path that ends a remote caller's message with MP_ECLOSED
         * (this node shutting down) ends it before it ran: a remote caller
         * is told MP_EUNAVAIL, "not executed, try elsewhere" (node.h). */
        if (status == MP_ECLOSED) status = MP_EUNAVAIL;
        if (MP_BUGGIFY_P(0.05) && !n->closing) {
            if (mp_msg_set_reply(m, status, data, len) == MP_OK &&
                mp__delay_msg(n, m, MP__DELAY_RESPONSE, 0, 0))
                return;
        }
        mp__send_response(n, m->peer, m->corr, status, data, len, NULL, -1);
        mp_msg_release(n, m);
        return;
    default:
        mp_msg_release(n, m);
        return;
    }
}

void mp__fail_msg(mp_node *n, mp_msg *m, int status, const char *text)
{
    mp__finish(n, m, status, text, text ? strlen(text) : 0);
}

void mp__fail_list(mp_node *n, mp_list_node *msgs, int status,
                      const char *text)
{
    mp_list_node *ln;
    while ((ln = mp_list_pop_front(msgs)) != NULL)
        mp__fail_msg(n, MP_CONTAINER_OF(ln, mp_msg, link), status, text);
}
