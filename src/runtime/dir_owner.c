/*
 * The directory owner's side of the protocol: lookups, first-wins
 * registration, unregistration, the recovery of a restarted owner, and the
 * load reports that placement reads.
 *
 * After a restart (incarnation > 1) this node's partition is empty while
 * the activations it owned still live on other nodes. For a while
 * (MP_DIR_RECOVERY_NS) it answers "busy, retry" instead of "not found" and
 * refuses new registrations of unknown ids, so the survivors (who
 * re-register on learning of the restart) win back their entries before
 * anyone places a second activation. Each survivor then says how many it
 * sent (dir.reregistered), which lets the owner end its recovery early.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "runtime/runtime.h"
#include "util/endian.h"

static const char recovering_text[] = "directory recovering";
static const char not_serving_text[] = "directory owner without a valid membership lease";
static const char not_owner_text[] = "not this id's directory owner in this node's membership view";

static void owner_register(mp_node *n, const char *peer, int peer_idx,
                           uint64_t corr, const mp_ref *ref, uint32_t inc,
                           uint64_t act_id)
{
    mp_dir_entry w;
    int rc = mp_dir_register(&n->dir, ref, (uint16_t)peer_idx, inc, act_id, &w);
    if (rc < 0) {
        mp__send_response(n, peer, corr, rc, "", 0, NULL, -1);
        return;
    }
    uint8_t buf[MP_SYS_ENTRY_MAX];
    size_t len = mp_sys_entry_encode(buf, &n->dir, &w);
    mp__send_response(n, peer, corr, 0, buf, len, NULL, -1);
}

static void delayed_register(void *ud)
{
    mp_ctx *c = ud;
    c->timer = 0;
    mp_node *n = c->node;
    int idx = mp_dir_member(&n->dir, c->peer, strlen(c->peer));
    if (idx >= 0)
        owner_register(n, c->peer, idx, c->orig_corr, &c->ref, c->incarnation,
                       c->act_id);
    mp__ctx_free(c);
}

/* A system request from member peer_idx, its target already validated
 * (NULL for the kinds without one). */
typedef struct sys_req {
    mp_node *n;
    int peer_idx;
    const char *peer;
    const mp_frame *f;
    const mp_ref *ref;
} sys_req;

static void reply_bad(const sys_req *q, const char *why)
{
    if (q->f->correlation_id)
        mp__send_error(q->n, q->peer, q->f->correlation_id, MP_EPROTO, why);
}

static void on_load(const sys_req *q)
{
    if (q->f->payload.len == MP_SYS_LOAD_SIZE)
        mp_dir_load_report(&q->n->dir, (uint16_t)q->peer_idx,
                           mp_get_le64(q->f->payload.ptr));
}

static void on_reregistered(const sys_req *q)
{
    mp_node *n = q->n;
    if (q->f->payload.len == MP_SYS_REBUILT_SIZE) {
        mp__members_on_rebuilt(n, q->peer_idx, mp_get_le64(q->f->payload.ptr),
                               mp_get_le32(q->f->payload.ptr + 8));
        return;
    }
    if (q->f->payload.len != MP_SYS_COUNT_SIZE || !mp__recovering(n) ||
        !n->rereg_done || !n->rereg_count)
        return;
    uint32_t want = mp_get_le32(q->f->payload.ptr);
    if (n->rereg_count[q->peer_idx] >= want) n->rereg_done[q->peer_idx] = true;
    size_t done = 0;
    for (size_t i = 0; i < n->dir.n; i++)
        done += i == n->dir.self || n->rereg_done[i];
    if (done == n->dir.n) {
        MP_SOMETIMES(true, "actor.directory_recovered_early");
        n->recover_until = 0;
    }
}

static void on_rebuild(const sys_req *q)
{
    if (q->f->payload.len == MP_SYS_REBUILD_SIZE)
        mp__members_on_rebuild(q->n, q->peer_idx, mp_get_le64(q->f->payload.ptr),
                               mp_get_le64(q->f->payload.ptr + 8));
}

static void on_lookup(const sys_req *q)
{
    mp_node *n = q->n;
    if (!mp__members_serving_now(n)) {
        /* Without a valid lease this node may have been taken over: its
         * table may be stale, and its "not found" would let a second
         * activation be placed (members workload, seed 2120: an owner woken
         * from a pause accepted a registration before learning it was
         * dead). */
        MP_SOMETIMES(true, "actor.directory_not_serving");
        mp__send_error(n, q->peer, q->f->correlation_id, MP_EBUSY, not_serving_text);
        return;
    }
    if (!mp__members_owns(n, q->ref)) {
        /* The asker's view of the members differs from ours: a retry meets
         * views that agree (members.c). */
        MP_SOMETIMES(true, "actor.lookup_not_owner");
        mp__send_error(n, q->peer, q->f->correlation_id, MP_EBUSY, not_owner_text);
        return;
    }
    const mp_dir_entry *e = mp_dir_table_get(&n->dir, q->ref->id, q->ref->len);
    if (!e && mp__recovering(n)) {
        MP_SOMETIMES(true, "actor.directory_recovering");
        mp__send_error(n, q->peer, q->f->correlation_id, MP_EBUSY,
                       recovering_text);
        return;
    }
    uint8_t buf[MP_SYS_ENTRY_MAX];
    size_t len = mp_sys_entry_encode(buf, &n->dir, e);
    mp__send_response(n, q->peer, q->f->correlation_id, 0, buf, len, NULL, -1);
}

static void delayed_unregister(void *ud)
{
    mp_ctx *c = ud;
    c->timer = 0;
    mp_node *n = c->node;
    int idx = mp_dir_member(&n->dir, c->peer, strlen(c->peer));
    if (idx >= 0) {
        MP_SOMETIMES(true, "actor.unregister_delayed");
        /* The registrant may have restarted meanwhile and registered the
         * same id again under the same activation id (ids restart with the
         * process): only the incarnation that sent this may be removed. */
        const mp_dir_entry *e =
            mp_dir_table_get(&n->dir, c->ref.id, c->ref.len);
        if (!e || e->incarnation == c->incarnation)
            mp_dir_unregister(&n->dir, c->ref.id, c->ref.len, (uint16_t)idx,
                              c->act_id);
        if (c->orig_corr)
            mp__send_response(n, c->peer, c->orig_corr, 0, "", 0, NULL, -1);
    }
    mp__ctx_free(c);
}

static void on_unregister(const sys_req *q)
{
    mp_sys_reg r;
    if (mp_sys_reg_decode(q->f->payload.ptr, q->f->payload.len, &r) < 0) {
        reply_bad(q, "bad system request");
        return;
    }
    if (MP_BUGGIFY_P(0.2)) {
        /* The unregistration reaches the owner late: lookups meanwhile
         * still name the deactivated activation, a new activation of the
         * id may register first (the stale unregister must not remove
         * it), and the registrant's deactivation waits for the answer. */
        mp_ctx *c = mp__ctx_new(q->n, MP_CTX_DELAYED_REGISTER, q->ref);
        if (c) {
            c->orig_corr = q->f->correlation_id;
            c->incarnation = r.incarnation;
            c->act_id = r.act_id;
            snprintf(c->peer, sizeof c->peer, "%s", q->peer);
            c->timer = mp_env_timer_start(
                q->n->env, mp_env_random_below(q->n->env, 20 * MP_NS_PER_MS) + 1,
                delayed_unregister, c);
            if (c->timer) return;
            mp__ctx_free(c);
        }
    }
    mp_dir_unregister(&q->n->dir, q->ref->id, q->ref->len,
                      (uint16_t)q->peer_idx, r.act_id);
    if (q->f->correlation_id)
        mp__send_response(q->n, q->peer, q->f->correlation_id, 0, "", 0, NULL,
                          -1);
}

static void register_common(const sys_req *q, bool rereg)
{
    mp_node *n = q->n;
    mp_sys_reg r;
    uint64_t tag = 0;
    if (mp_sys_reg_decode_tag(q->f->payload.ptr, q->f->payload.len, &r, &tag) < 0) {
        reply_bad(q, "bad system request");
        return;
    }
    if (rereg && mp__recovering(n) && n->rereg_count) n->rereg_count[q->peer_idx]++;
    if (rereg) mp__members_on_rereg(n, q->peer_idx, tag);
    if (!rereg && !mp__members_serving_now(n)) {
        mp__send_error(n, q->peer, q->f->correlation_id, MP_EBUSY, not_serving_text);
        return;
    }
    if (!rereg && !mp__members_owns(n, q->ref)) {
        MP_SOMETIMES(true, "actor.register_not_owner");
        mp__send_error(n, q->peer, q->f->correlation_id, MP_EBUSY, not_owner_text);
        return;
    }
    if (!rereg && mp__recovering(n) &&
        !mp_dir_table_get(&n->dir, q->ref->id, q->ref->len)) {
        /* A new registration while the survivors' re-registrations may
         * still be on their way: first-wins would let it beat a live
         * activation. The registrant retries (register.c). */
        mp__send_error(n, q->peer, q->f->correlation_id, MP_EBUSY,
                       recovering_text);
        return;
    }
    /* Never delayed while recovering: the recovery must not end before the
     * re-registrations it counted are in the table. */
    /* The draw happens for a re-registration too, so that static clusters
     * replay the seeds they always did. */
    bool delay = !mp__recovering(n) && MP_BUGGIFY_P(0.2);
    if (delay && !rereg) {
        /* Delay the owner's answer (never a re-registration: with
         * membership it may arrive before this node's own recovery starts,
         * and the recovery must find it in the table; members.c): registrations of racing activations
         * then overlap in every order. */
        mp_ctx *c = mp__ctx_new(n, MP_CTX_DELAYED_REGISTER, q->ref);
        if (c) {
            c->orig_corr = q->f->correlation_id;
            c->incarnation = r.incarnation;
            c->act_id = r.act_id;
            snprintf(c->peer, sizeof c->peer, "%s", q->peer);
            c->timer = mp_env_timer_start(
                n->env, mp_env_random_below(n->env, 20 * MP_NS_PER_MS) + 1,
                delayed_register, c);
            if (c->timer) return;
            mp__ctx_free(c);
        }
    }
    owner_register(n, q->peer, q->peer_idx, q->f->correlation_id, q->ref,
                   r.incarnation, r.act_id);
    if (MP_BUGGIFY_P(0.1)) {
        /* The same registration processed twice (a registrant's retry
         * whose first attempt did land looks like this). First-wins is
         * idempotent for the same (member, activation): the second pass
         * must name the same winner and change nothing. Its answer reaches
         * the registrant as a late reply to an already answered call. */
        mp_dir_entry before, after;
        const mp_dir_entry *e = mp_dir_table_get(&n->dir, q->ref->id, q->ref->len);
        bool had = e != NULL;
        if (e) before = *e;
        MP_SOMETIMES(had, "actor.register_duplicated");
        if (had && mp_dir_register(&n->dir, q->ref, (uint16_t)q->peer_idx,
                                   r.incarnation, r.act_id, &after) == MP_OK)
            MP_ALWAYS(after.member == before.member &&
                          after.act_id == before.act_id &&
                          after.incarnation == before.incarnation,
                      "actor.register_duplicate_idempotent");
        owner_register(n, q->peer, q->peer_idx, q->f->correlation_id, q->ref,
                       r.incarnation, r.act_id);
    }
}

static void on_register(const sys_req *q) { register_common(q, false); }
static void on_reregister(const sys_req *q) { register_common(q, true); }

/* Indexed by mp_sys_kind. Stats requests never get here (recv.c answers
 * them for anyone); a kind without a handler is refused as malformed. */
static const struct {
    void (*fn)(const sys_req *q);
    bool has_target; /* the request names an actor id */
} sys_handlers[MP_SYS_KIND_COUNT] = {
    [MP_SYS_LOOKUP] = {on_lookup, true},
    [MP_SYS_REGISTER] = {on_register, true},
    [MP_SYS_UNREGISTER] = {on_unregister, true},
    [MP_SYS_LOAD] = {on_load, false},
    [MP_SYS_REREGISTER] = {on_reregister, true},
    [MP_SYS_REREGISTERED] = {on_reregistered, false},
    [MP_SYS_REBUILD] = {on_rebuild, false},
};

void mp__on_system(mp_node *n, int peer_idx, const char *peer,
                   const mp_frame *f)
{
    assert(peer_idx >= 0 && (size_t)peer_idx < n->dir.n);
    sys_req q = {n, peer_idx, peer, f, NULL};
    mp_sys_kind kind = mp_sys_kind_of(f->method);
    if (kind != MP_SYS_NONE && sys_handlers[kind].fn && !sys_handlers[kind].has_target) {
        sys_handlers[kind].fn(&q);
        return;
    }
    mp_ref ref;
    if (mp_ref_parse(&ref, (const char *)f->target.ptr, f->target.len) != MP_OK ||
        !mp__ns_matches(n, &ref)) {
        reply_bad(&q, "bad id");
        return;
    }
    if (kind == MP_SYS_NONE || !sys_handlers[kind].fn) {
        reply_bad(&q, "bad system request");
        return;
    }
    q.ref = &ref;
    sys_handlers[kind].fn(&q);
}

void mp__load_timer(void *ud)
{
    mp_node *n = ud;
    n->load_timer = 0;
    if (n->closing) return;
    uint8_t p[MP_SYS_LOAD_SIZE];
    mp_put_le64(p, mp_catalog_count(&n->catalog));
    for (size_t i = 0; i < n->dir.n; i++)
        if (i != n->dir.self && mp_dir_is_live(&n->dir, i))
            mp__send_system(n, i, MP_SYS_LOAD, NULL, p, sizeof p, NULL, NULL);
    n->load_timer = mp_env_timer_start(n->env, MP_LOAD_INTERVAL_NS, mp__load_timer, n);
}
