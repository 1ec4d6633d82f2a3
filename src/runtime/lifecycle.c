/*
 * An activation's life around its turns: creation ends in registration
 * (register.c); then load persisted state, run on_activate and go Valid, or
 * fail its queued messages; deactivate when idle or asked; destroy.
 *
 * Persisted state (state.c) slots in between winning the registration and
 * on_activate: the activation stays Activating while its load is out, and a
 * load failure is an activation failure like a failing hook.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "runtime/runtime.h"

/* Remove an activation that never ran hooks or whose hooks are done. */
void mp__destroy_activation(mp_node *n, mp_actor *a)
{
    assert(mp_list_empty(&a->mailbox));
    /* Its local directory entry (directory.h) lives in it, so it goes now:
     * every path already unregisters, before (deactivation) or just after
     * (failed activation); this keeps the flag from outliving its place. */
    if (a->dir_registered)
        mp_dir_unregister(&n->dir, a->id, a->len, (uint16_t)n->dir.self,
                          a->act_id);
    assert(!a->dir_registered);
    mp_catalog_remove(&n->catalog, a);
    mp_list_remove(&a->work.link);
    if (a->timer) mp_env_timer_cancel(n->env, a->timer);
    a->timer = 0;
    mp_actor_delete(a);
    if (n->closing && !n->freed) mp__check_shutdown_done(n);
}

void mp__deactivate(mp_node *n, mp_actor *a, mp_deactivate_reason reason)
{
    assert(a->state == MP_ACT_VALID && !a->current);
    a->deactivate_requested = false;
    if (!mp_actor_set_state(a, MP_ACT_DEACTIVATING)) return;
    /* A Valid activation always passed on_activate: its hook is owed. */
    MP_ALWAYS(a->activated, "actor.deactivate_hook_owed");
    if (a->activated) {
        a->activated = false;
        if (a->type->on_deactivate)
            a->type->on_deactivate(a, a->instance, reason);
    }
    n->stats.deactivations_total++;
    MP_SOMETIMES(reason == MP_DEACTIVATE_IDLE, "actor.idle_deactivation");
    mp_ref ref;
    mp_actor_fill_ref(a, &ref);
    mp__send_unregister(n, &ref, a->act_id, true);
}

/* The activation goes before its first turn; its queued messages fail
 * with status. */
static void activation_ends(mp_node *n, mp_actor *a, int status, const char *why)
{
    mp_actor_set_state(a, MP_ACT_INVALID);
    mp_list_node msgs;
    mp_list_init(&msgs);
    mp_msg *m;
    while ((m = mp_actor_pop(a)) != NULL) mp_list_push_back(&msgs, &m->link);
    mp_ref ref;
    mp_actor_fill_ref(a, &ref);
    uint64_t act_id = a->act_id;
    mp__destroy_activation(n, a);
    mp__send_unregister(n, &ref, act_id, false);
    mp_env_log(n->env, status == MP_EACTIVATION ? MP_LOG_INFO : MP_LOG_DEBUG,
               "node: activation of %s failed: %s", ref.id, why);
    mp__fail_list(n, &msgs, status, why);
    if (n->closing) mp__check_shutdown_done(n);
}

void mp__activation_failed(mp_node *n, mp_actor *a, const char *why)
{
    MP_SOMETIMES(true, "actor.activation_failed");
    n->stats.activation_failures++;
    activation_ends(n, a, MP_EACTIVATION, why);
}

void mp__activation_refused(mp_node *n, mp_actor *a, const char *why)
{
    MP_SOMETIMES(true, "actor.activation_refused_not_serving");
    activation_ends(n, a, MP_EUNAVAIL, why);
}

void mp__activate(mp_node *n, mp_actor *a)
{
    assert(a->state == MP_ACT_ACTIVATING);
    if (a->loading) return; /* its completion schedules us again */
    if (!a->state_loaded) {
        /* Persisted state first (state.h): on_activate sees it. */
        int lrc = mp_state_load_start(n, a);
        if (lrc < 0) {
            char why[160];
            if (lrc == MP_EINVAL)
                snprintf(why, sizeof why,
                         "activation failed: the actor's storage key is longer than %d "
                         "bytes once escaped (MP_STORAGE_KEY_MAX)",
                         MP_STORAGE_KEY_MAX);
            else
                snprintf(why, sizeof why, "activation failed: cannot load state: %s",
                         mp_strerror(lrc));
            mp__activation_failed(n, a, why);
            return;
        }
        if (!a->state_loaded) return; /* loading */
    }
    int rc = 0;
    if (a->type->on_activate) rc = a->type->on_activate(a, a->instance);
    if (rc == 0) {
        a->activated = true;
        mp_actor_set_state(a, MP_ACT_VALID);
        a->last_used = mp_env_now(n->env);
        mp__arm_sweep(n);
        if (n->closing) {
            a->deactivate_requested = true;
            a->deact_reason = MP_DEACTIVATE_SHUTDOWN;
        }
        mp_actor_schedule(a);
        return;
    }
    /* The hook failed: queued messages fail, no activation remains. */
    char why[96];
    snprintf(why, sizeof why, "activation failed: on_activate returned %s",
             mp_status_name(rc));
    mp__activation_failed(n, a, why);
}

void mp__turn_ended(mp_node *n, mp_actor *a)
{
    /* Inside the drain the time read at its start is close enough for idle
     * accounting (it only makes an activation look a bit older). */
    a->last_used = n->in_drain ? n->drain_now : mp_env_now(n->env);
    if (n->closing && a->state == MP_ACT_VALID) {
        a->deactivate_requested = true;
        a->deact_reason = MP_DEACTIVATE_SHUTDOWN;
    }
    mp_actor_schedule(a);
}
