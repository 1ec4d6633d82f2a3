/*
 * The registrant's side of the directory protocol: registering a new
 * activation at its id's partition owner, re-registering after the owner
 * restarted, unregistering on deactivation.
 *
 * A new activation starts Creating with its messages queued and registers
 * at the owner; first registration wins. The winner activates
 * (lifecycle.c); a loser forwards its queue to the winner and vanishes
 * without running hooks.
 *
 * Restarts. A restarted owner refuses new registrations of ids it does not
 * know while it recovers (MP_EBUSY, the registrant retries), and survivors
 * resend re-registrations that got no answer: together they keep single
 * activation across owner restarts (bank-durable workload).
 *
 * Registrations wait by (actor id, activation id), never by pointer: an
 * activation that died meanwhile is simply not found.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "runtime/runtime.h"
#include "util/endian.h"

/* A registration lost with a broken connection is tried this many times
 * before the activation's messages fail with "directory unreachable". */
#define REGISTER_ATTEMPTS 3
/* A recovering owner answers "busy": ask again this much later. */
#define BUSY_RETRY_NS (200ull * MP_NS_PER_MS)

static void register_timer(void *ud);
static void rereg_retry_fire(void *ud);
static int do_register_n(mp_node *n, mp_actor *a, uint8_t kind,
                         uint32_t attempt, uint64_t tag);

static void register_done(mp_node *n, const mp_ref *ref, uint64_t act_id,
                          int status, const mp_dir_entry *w, size_t sent_to)
{
    mp_actor *a = mp_catalog_find(&n->catalog, ref);
    MP__DBG(n, "register_done %s act=%llu st=%d winner=%s/%llu", ref->id,
        (unsigned long long)act_id, status,
        status == MP_OK ? mp_dir_addr(&n->dir, w->member) : "-",
        status == MP_OK ? (unsigned long long)w->act_id : 0ull);
    if (!a || a->act_id != act_id || a->state != MP_ACT_CREATING) {
        /* The activation is gone; do not leave a registration naming it. */
        if (status == MP_OK && w->member == n->dir.self && w->act_id == act_id)
            mp__send_unregister(n, ref, act_id, false);
        return;
    }
    if (status == MP_OK && sent_to != SIZE_MAX && w->member == n->dir.self &&
        w->act_id == act_id && mp_dir_owner(&n->dir, ref) != sent_to) {
        /* The members changed while the registration was out: the new
         * owner never heard of it (members.c). Register there, anew. */
        MP_SOMETIMES(true, "actor.register_owner_moved");
        mp__start_register(n, a);
        return;
    }
    if (status == MP_EBUSY && !n->closing &&
        a->busy_retries++ < (int)(MP_DIR_RECOVERY_NS / BUSY_RETRY_NS) + 5) {
        /* The owner restarted and is still recovering its table: it takes
         * no new registrations until the survivors re-registered theirs
         * (else a new activation could win against a live one). */
        MP_SOMETIMES(true, "actor.register_while_recovering");
        a->timer = mp_env_timer_start(n->env, BUSY_RETRY_NS, register_timer, a);
        if (a->timer) return;
    }
    if (status < 0) {
        if (++a->register_attempts < REGISTER_ATTEMPTS && !n->closing) {
            mp__start_register(n, a);
            return;
        }
        mp_actor_set_state(a, MP_ACT_INVALID);
        mp_list_node msgs;
        mp_list_init(&msgs);
        mp_msg *m;
        while ((m = mp_actor_pop(a)) != NULL) mp_list_push_back(&msgs, &m->link);
        mp__destroy_activation(n, a);
        mp__fail_list(n, &msgs, MP_EUNAVAIL, "directory unreachable");
        return;
    }
    if (w->member == n->dir.self && w->act_id == act_id) {
        mp_actor_set_state(a, MP_ACT_ACTIVATING);
        mp_actor_schedule(a);
        return;
    }
    /* Lost the race: hand every queued message to the winner. No hook ran,
     * so there is nothing to undo. */
    MP_SOMETIMES(true, "actor.activation_race_lost");
    mp_actor_set_state(a, MP_ACT_INVALID);
    mp_list_node msgs;
    mp_list_init(&msgs);
    mp_msg *m;
    while ((m = mp_actor_pop(a)) != NULL) mp_list_push_back(&msgs, &m->link);
    mp__destroy_activation(n, a);
    mp_list_node *ln;
    if (w->member == n->dir.self) {
        /* Cannot happen (the owner replaces our own older entry); re-route
         * rather than lose anything. */
        while ((ln = mp_list_pop_front(&msgs)) != NULL)
            mp__route(n, MP_CONTAINER_OF(ln, mp_msg, link));
        return;
    }
    mp_dir_cache_put(&n->dir, ref->id, ref->len, w->member, w->incarnation);
    while ((ln = mp_list_pop_front(&msgs)) != NULL) {
        mp_msg *mm = MP_CONTAINER_OF(ln, mp_msg, link);
        mm->mdef = NULL;
        mp__send_to(n, mm, w->member, 0, true);
    }
}

/* Send a re-registration again later (attempt counts them). */
static void rereg_schedule(mp_node *n, const mp_ref *ref, uint64_t act_id,
                           uint32_t attempt)
{
    if (attempt >= MP_REREG_ATTEMPTS || n->closing) return;
    MP_SOMETIMES(true, "actor.reregister_retried");
    mp_ctx *r = mp__ctx_new(n, MP_CTX_REREG_RETRY, ref);
    if (!r) return;
    r->act_id = act_id;
    r->incarnation = attempt;
    r->timer = mp_env_timer_start(n->env, MP_REREG_RETRY_NS, rereg_retry_fire, r);
    if (!r->timer) mp__ctx_free(r);
}

static void register_cb(void *ud, int status, const void *data, size_t len)
{
    mp_ctx *c = ud;
    mp_node *n = c->node;
    mp_dir_entry w;
    memset(&w, 0, sizeof w);
    if (status == MP_OK) {
        int rc = mp_sys_entry_decode(&n->dir, data, len, &w);
        if (rc != 1) status = MP_EPROTO;
    }
    mp_ref ref = c->ref;
    uint64_t act_id = c->act_id;
    uint8_t kind = c->kind;
    uint32_t attempts = c->incarnation;
    size_t sent_to = c->member;
    mp__ctx_free(c);
    if (kind == MP_CTX_REREGISTER) {
        mp_actor *a = mp_catalog_find(&n->catalog, &ref);
        if (status < 0 && status != MP_EPROTO && a && a->act_id == act_id &&
            (a->state == MP_ACT_VALID || a->state == MP_ACT_ACTIVATING) &&
            !n->closing) {
            /* Lost with a broken connection, most likely: the restarted
             * owner must learn of this activation before its recovery
             * ends, or it lets a second one be placed. */
            rereg_schedule(n, &ref, act_id, attempts + 1);
            return;
        }
        if (status == MP_OK && a && a->act_id == act_id &&
            !(w.member == n->dir.self && w.act_id == act_id) &&
            a->state == MP_ACT_VALID) {
            /* Someone else registered while the owner was away: ours must
             * go (its queued messages are re-routed to the winner). */
            a->deactivate_requested = true;
            a->deact_reason = MP_DEACTIVATE_DIRECTORY;
            mp_actor_schedule(a);
        }
        return;
    }
    register_done(n, &ref, act_id, status, &w, sent_to);
}

static void rereg_retry_fire(void *ud)
{
    mp_ctx *r = ud;
    r->timer = 0;
    mp_node *n = r->node;
    mp_ref ref = r->ref;
    uint64_t act_id = r->act_id;
    uint32_t attempt = r->incarnation;
    mp__ctx_free(r);
    mp_actor *a = mp_catalog_find(&n->catalog, &ref);
    if (a && a->act_id == act_id && !n->closing &&
        (a->state == MP_ACT_VALID || a->state == MP_ACT_ACTIVATING))
        (void)do_register_n(n, a, MP_CTX_REREGISTER, attempt, 0);
}

int mp__register(mp_node *n, mp_actor *a, uint8_t kind)
{
    return do_register_n(n, a, kind, 0, 0);
}

int mp__reregister_tagged(mp_node *n, mp_actor *a, uint64_t tag)
{
    return do_register_n(n, a, MP_CTX_REREGISTER, 0, tag);
}

/* Returns 0 when the request left (or was handled locally). tag: the
 * nonce of the rebuild request it answers (members.c), 0: none. */
static int do_register_n(mp_node *n, mp_actor *a, uint8_t kind,
                         uint32_t attempt, uint64_t tag)
{
    assert(kind == MP_CTX_REGISTER || kind == MP_CTX_REREGISTER);
    assert(kind == MP_CTX_REREGISTER || a->state == MP_ACT_CREATING);
    mp_ref ref; /* a copy: register_done may free a */
    mp_actor_fill_ref(a, &ref);
    uint64_t act_id = a->act_id;
    size_t owner = mp_dir_owner(&n->dir, &ref);
    if (owner == n->dir.self) {
        mp_dir_entry w;
        int rc = MP_EBUSY;
        /* A re-registration here is this node's own live activation whose
         * partition moved to this node (members.c): it must be in the
         * table before the recovery ends, like a peer's. */
        if (kind == MP_CTX_REREGISTER || !mp__recovering(n) ||
            mp_dir_table_get_ref(&n->dir, &ref))
            rc = mp_dir_register(&n->dir, &ref, (uint16_t)n->dir.self,
                                 n->incarnation, act_id, &w);
        if (kind == MP_CTX_REGISTER) {
            register_done(n, &ref, act_id, rc, &w, SIZE_MAX);
        } else if (rc == MP_OK && !(w.member == n->dir.self && w.act_id == act_id) &&
                   a->state == MP_ACT_VALID) {
            /* Another activation got there first: ours goes. */
            a->deactivate_requested = true;
            a->deact_reason = MP_DEACTIVATE_DIRECTORY;
            mp_actor_schedule(a);
        }
        return rc;
    }
    mp_ctx *c = mp__ctx_new(n, kind, &ref);
    int rc = MP_ENOMEM;
    if (c) {
        c->act_id = a->act_id;
        c->incarnation = attempt;
        uint8_t p[MP_SYS_REG_TAGGED_SIZE];
        mp_sys_reg_encode(p, &(mp_sys_reg){n->incarnation, a->act_id});
        if (tag) mp_put_le64(p + MP_SYS_REG_SIZE, tag);
        rc = mp__send_system(n, owner,
                         kind == MP_CTX_REREGISTER ? MP_SYS_REREGISTER
                                                   : MP_SYS_REGISTER,
                         &ref, p, tag ? MP_SYS_REG_TAGGED_SIZE : MP_SYS_REG_SIZE, c,
                         register_cb);
        if (rc < 0) mp__ctx_free(c);
    }
    if (rc < 0 && kind == MP_CTX_REREGISTER)
        rereg_schedule(n, &ref, act_id, attempt + 1);
    if (rc < 0 && kind == MP_CTX_REGISTER)
        register_done(n, &ref, act_id, rc, NULL, SIZE_MAX);
    return rc;
}

static void register_timer(void *ud)
{
    mp_actor *a = ud;
    a->timer = 0;
    (void)mp__register(a->node, a, MP_CTX_REGISTER);
}

void mp__start_register(mp_node *n, mp_actor *a)
{
    assert(a->state == MP_ACT_CREATING && !a->timer);
    uint64_t delay = 0;
    if (a->register_attempts > 0)
        delay = (uint64_t)a->register_attempts * 50 * MP_NS_PER_MS;
    else if (MP_BUGGIFY_P(0.2))
        delay = mp_env_random_below(n->env, 10 * MP_NS_PER_MS) + 1;
    if (delay) {
        a->timer = mp_env_timer_start(n->env, delay, register_timer, a);
        if (a->timer) return;
    }
    (void)mp__register(n, a, MP_CTX_REGISTER);
}

static void deactivation_done(mp_node *n, const mp_ref *ref, uint64_t act_id)
{
    MP__DBG(n, "deactivation_done %s act=%llu", ref->id, (unsigned long long)act_id);
    mp_actor *a = mp_catalog_find(&n->catalog, ref);
    if (!a || a->act_id != act_id || a->state != MP_ACT_DEACTIVATING) return;
    mp_actor_set_state(a, MP_ACT_INVALID);
    mp_dir_cache_remove(&n->dir, ref->id, ref->len);
    mp_list_node msgs;
    mp_list_init(&msgs);
    mp_msg *m;
    while ((m = mp_actor_pop(a)) != NULL) mp_list_push_back(&msgs, &m->link);
    mp__destroy_activation(n, a);
    /* Messages that arrived meanwhile are re-routed, never dropped. */
    mp_list_node *ln;
    if (!mp_list_empty(&msgs)) MP_SOMETIMES(true, "actor.rerouted_after_deactivation");
    while ((ln = mp_list_pop_front(&msgs)) != NULL) {
        mp_msg *mm = MP_CONTAINER_OF(ln, mp_msg, link);
        if (mm->ghost) { /* a buggify copy is for this node only (rid.c) */
            mp_msg_release(n, mm);
            continue;
        }
        mm->mdef = NULL;
        mp__route(n, mm);
    }
    if (n->closing) mp__check_shutdown_done(n);
}

static void unregister_cb(void *ud, int status, const void *data, size_t len)
{
    mp_ctx *c = ud;
    mp_node *n = c->node;
    mp_ref ref = c->ref;
    uint64_t act_id = c->act_id;
    mp__ctx_free(c);
    deactivation_done(n, &ref, act_id);
}

/* Unregister (ref, act_id). With want_answer the local deactivation
 * completes when the owner answered (or the request failed). */
void mp__send_unregister(mp_node *n, const mp_ref *ref, uint64_t act_id,
                            bool want_answer)
{
    assert(act_id != 0 && act_id <= n->next_act_id);
    size_t owner = mp_dir_owner(&n->dir, ref);
    if (owner == n->dir.self) {
        mp_dir_unregister(&n->dir, ref->id, ref->len, (uint16_t)n->dir.self,
                          act_id);
        if (want_answer) deactivation_done(n, ref, act_id);
        return;
    }
    uint8_t p[MP_SYS_REG_SIZE];
    mp_sys_reg_encode(p, &(mp_sys_reg){n->incarnation, act_id});
    mp_ctx *c = want_answer ? mp__ctx_new(n, MP_CTX_UNREGISTER, ref) : NULL;
    if (c) c->act_id = act_id;
    int rc = mp__send_system(n, owner, MP_SYS_UNREGISTER, ref, p, sizeof p, c,
                         unregister_cb);
    if (rc < 0 && want_answer) {
        if (c) mp__ctx_free(c);
        deactivation_done(n, ref, act_id);
    }
}
