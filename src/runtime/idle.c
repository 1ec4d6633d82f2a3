/*
 * Idle collection: a periodic sweep deactivates activations idle longer
 * than their type's (or the node's) idle timeout. The sweep runs only while
 * the node hosts something, every quarter of the shortest idle timeout, so
 * an idle activation goes within 125% of its timeout.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "runtime/runtime.h"

static uint64_t idle_of(const mp_node *n, const mp_actor *a)
{
    return a->type->idle_timeout_ns ? a->type->idle_timeout_ns
                                    : n->idle_timeout_ns;
}

static void sweep_timer(void *ud)
{
    mp_node *n = ud;
    assert(!n->freed);
    n->sweep_timer = 0;
    if (n->closing) return;
    uint64_t now = mp_env_now(n->env);
    mp_list_node *ln, *tmp;
    MP_LIST_FOREACH_SAFE(ln, tmp, &n->catalog.list)
    {
        mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
        if (a->state == MP_ACT_VALID && !a->current &&
            mp_list_empty(&a->mailbox) && !mp_list_node_linked(&a->work.link) &&
            now - a->last_used >= idle_of(n, a)) {
            a->deactivate_requested = true;
            a->deact_reason = MP_DEACTIVATE_IDLE;
            mp_actor_schedule(a);
        }
    }
    mp__arm_sweep(n);
}

void mp__arm_sweep(mp_node *n)
{
    if (n->sweep_timer || n->closing || n->freed) return;
    if (mp_catalog_count(&n->catalog) == 0) return;
    n->sweep_timer = mp_env_timer_start(n->env, n->sweep_interval_ns,
                                        sweep_timer, n);
}
