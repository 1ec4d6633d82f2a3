/*
 * Routing a request for actor X, and the directory lookups it needs.
 *
 *   1. the local catalog (fast path: straight into the mailbox, no encoding);
 *   2. the directory cache: send the REQUEST to the cached node;
 *   3. otherwise ask X's partition owner ("dir.lookup"); requests that wait
 *      for the answer are parked in one pending list per id, so 1000
 *      concurrent calls to a new actor cost ONE lookup. If the owner knows
 *      no activation, the caller places X by its type's strategy and sends
 *      the requests there with MP_FLAG_PLACE.
 * A node that receives a request for an X it does not host creates an
 * activation only when asked to place it (or when the owner names this very
 * node); otherwise it routes the request onward itself, as a proxy (send.c).
 *
 * Everything that waits (lookups) is found again by actor id, never through
 * a pointer kept across a wait, so an activation that died meanwhile is
 * simply not found.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "runtime/runtime.h"

#include "util/hash.h"

static void lookup_done(mp_node *n, const mp_ref *ref, int status,
                        const mp_dir_entry *e);
static void lookup_resolved(mp_node *n, const mp_ref *rp, const mp_dir_entry *e,
                            mp_list_node *msgs_in);
static void lookup_resolved_a(mp_node *n, const mp_ref *rp,
                              const mp_dir_entry *e, mp_list_node *msgs_in,
                              mp_actor *here);

/* A request from S to actor A, whose current turn is waiting for its own
 * call to S: S cannot reply before A does, and A takes no message before
 * its turn ends (turns are not reentrant, R4), so both would wait until a
 * timeout. The request fails at once with MP_EDEADLOCK instead (Orleans
 * does the same); S's handler sees the error and can reply, which unblocks
 * A. Covers cycles of two (A -> S -> A, and A -> S with S -> A at once)
 * through the latest call of A's turn; longer cycles would need the call
 * chain carried in every request and still end by timeout. */
static bool call_cycle(mp_node *n, const mp_actor *a, const mp_msg *m)
{
    const mp_msg *cur = a->current;
    if (!cur || cur == m || !cur->await_corr || m->sender_len == 0 ||
        m->origin == MP_ORIGIN_NONE)
        return false;
    if (mp_hash64(m->sender, m->sender_len, MP_HASH_SEED_DEFAULT) != cur->await_hash)
        return false;
    /* The call may have completed while the turn waits on something else. */
    return mp_calls_find(&n->calls, cur->await_corr) != NULL;
}

/* The mailbox bound (mp_node_config.max_mailbox): a message past it fails
 * at once with MP_EQUEUEFULL, which says it did not run, so its caller may
 * retry. One log line per second at most: an overloaded node must not also
 * flood its log. Returns true when m was refused (and consumed). */
static bool mailbox_full(mp_node *n, const mp_actor *a, mp_msg *m)
{
    if (a->depth < n->max_mailbox) return false;
    MP_SOMETIMES(true, "actor.mailbox_full");
    n->stats.mailbox_rejected++;
    uint64_t now = mp_env_now(n->env);
    if (!n->mailbox_full_logged || now - n->mailbox_full_logged >= MP_NS_PER_SEC) {
        n->mailbox_full_logged = now;
        mp_env_log(n->env, MP_LOG_WARN,
                   "node: mailbox of %s full (%u messages): calls refused (%llu so far)",
                   a->id, (unsigned)a->depth, (unsigned long long)n->stats.mailbox_rejected);
    }
    char why[64];
    snprintf(why, sizeof why, "mailbox full (%u messages)", (unsigned)n->max_mailbox);
    mp__fail_msg(n, m, MP_EQUEUEFULL, why);
    return true;
}

void mp__deliver_local(mp_node *n, mp_actor *a, mp_msg *m)
{
    assert(a->state != MP_ACT_INVALID);
    assert(!mp_list_node_linked(&m->link));
    const mp_method_def *d = mp_actor_type_method(a->type, m->method, m->method_len);
    if (!d) {
        mp__fail_msg(n, m, MP_ENOMETHOD, "unknown method");
        return;
    }
    if (a->current && call_cycle(n, a, m)) {
        MP_SOMETIMES(true, "actor.call_cycle");
        char why[2 * MP_ACTOR_ID_MAX + 96];
        snprintf(why, sizeof why, "call cycle: %s is waiting for %s, which called it back",
                 a->id, m->sender);
        mp__fail_msg(n, m, MP_EDEADLOCK, why);
        return;
    }
    if (mailbox_full(n, a, m)) return;
    m->mdef = d;
    mp_actor_enqueue(a, m);
}

/* Host X here: an existing activation takes the messages; otherwise a new
 * one is created (after checking the type and each method, so unknown types
 * and methods never create activations) and registered. Consumes msgs.
 * `a`: the catalog's activation of ref, which the caller just looked up
 * (a miss in the catalog is a cache miss per new activation: look once). */
static void host_here_a(mp_node *n, const mp_ref *ref, mp_list_node *msgs,
                        mp_actor *a)
{
    mp_list_node *ln;
    if (a) {
        while ((ln = mp_list_pop_front(msgs)) != NULL)
            mp__deliver_local(n, a, MP_CONTAINER_OF(ln, mp_msg, link));
        return;
    }
    if (n->closing) {
        mp__fail_list(n, msgs, MP_EUNAVAIL, "node shutting down");
        return;
    }
    if (!mp__members_serving(n)) {
        MP_SOMETIMES(true, "actor.refused_not_serving");
        mp__fail_list(n, msgs, MP_EUNAVAIL,
                      "node not serving (no valid membership lease); not executed");
        return;
    }
    const mp_actor_type *t = mp__type_of_ref(n, ref);
    if (!t) {
        mp__fail_list(n, msgs, MP_ENOTYPE, "unknown actor type");
        return;
    }
    mp_list_node ok;
    mp_list_init(&ok);
    while ((ln = mp_list_pop_front(msgs)) != NULL) {
        mp_msg *m = MP_CONTAINER_OF(ln, mp_msg, link);
        m->mdef = mp_actor_type_method(t, m->method, m->method_len);
        if (!m->mdef)
            mp__fail_msg(n, m, MP_ENOMETHOD, "unknown method");
        else
            mp_list_push_back(&ok, &m->link);
    }
    if (mp_list_empty(&ok)) return;
    a = mp_actor_new(n, t, ref, ++n->next_act_id);
    if (!a || mp_catalog_add(&n->catalog, a) != MP_OK) {
        if (a) mp_actor_delete(a);
        mp__fail_list(n, &ok, MP_ENOMEM, "out of memory");
        return;
    }
    assert(a->state == MP_ACT_CREATING && a->act_id == n->next_act_id);
    n->stats.activations_total++;
    /* The cache describes other nodes only: an entry for an id hosted here
     * would outlive this activation and misroute its re-routed messages. */
    mp_dir_cache_remove_ref(&n->dir, ref);
    MP__DBG(n, "create %s act=%llu", ref->id, (unsigned long long)a->act_id);
    while ((ln = mp_list_pop_front(&ok)) != NULL) {
        mp_msg *m = MP_CONTAINER_OF(ln, mp_msg, link);
        if (!mailbox_full(n, a, m)) mp_actor_enqueue(a, m);
    }
    mp__start_register(n, a);
}

void mp__host_here(mp_node *n, const mp_ref *ref, mp_list_node *msgs)
{
    host_here_a(n, ref, msgs, mp_catalog_find(&n->catalog, ref));
}

void mp__pending_free(mp_node *n, mp_pending *p)
{
    assert(mp_list_empty(&p->msgs)); /* its messages were handed on */
    mp_map_str_remove(&n->pending, p->ref.id, p->ref.len);
    mp_list_remove(&p->link);
    if (p->retry) mp_env_timer_cancel(n->env, p->retry);
    free(p);
}

/* Forget p, handing its waiting messages to msgs (initialised here). */
void mp__pending_take(mp_node *n, mp_pending *p, mp_list_node *msgs)
{
    mp_list_init(msgs);
    mp_list_splice_back(msgs, &p->msgs);
    mp__pending_free(n, p);
}

/* The directory owner of ref refused our handshake (namespace or version):
 * retrying cannot help, so the requests waiting for the lookup fail now with
 * that status instead of timing out. */
static void lookup_refused(mp_node *n, const mp_ref *ref, int status,
                           const char *text)
{
    mp_pending *p = mp_map_str_get(&n->pending, ref->id, ref->len);
    if (!p) return;
    MP_SOMETIMES(true, "actor.lookup_refused");
    mp_list_node msgs;
    mp__pending_take(n, p, &msgs);
    mp__fail_list(n, &msgs, status, text);
}

static void lookup_cb(void *ud, int status, const void *data, size_t len)
{
    mp_ctx *c = ud;
    mp_node *n = c->node;
    mp_ref ref = c->ref;
    mp__ctx_free(c);
    if (mp__refusal_status(status)) {
        char text[MP_ADDR_MAX + 200];
        size_t tl = len < sizeof text - 1 ? len : sizeof text - 1;
        memcpy(text, data, tl);
        text[tl] = '\0';
        lookup_refused(n, &ref, status, text);
        return;
    }
    mp_dir_entry e;
    int found = 0;
    if (status == MP_OK) {
        found = mp_sys_entry_decode(&n->dir, data, len, &e);
        if (found < 0) status = found;
    }
    lookup_done(n, &ref, status, status == MP_OK && found == 1 ? &e : NULL);
}

static void start_lookup(mp_node *n, mp_pending *p)
{
    assert(!p->in_flight && !p->retry);
    assert(!mp_list_empty(&p->msgs)); /* nobody waits: no lookup */
    p->in_flight = true;
    n->stats.dir_lookups++;
    size_t owner = mp_dir_owner(&n->dir, &p->ref);
    if (owner == n->dir.self) {
        const mp_dir_entry *e =
            mp_dir_table_get(&n->dir, p->ref.id, p->ref.len);
        mp_dir_entry copy;
        if (e) copy = *e;
        mp_ref ref = p->ref;
        int st = !e && mp__recovering(n) ? MP_EBUSY : MP_OK;
        lookup_done(n, &ref, st, e ? &copy : NULL);
        return;
    }
    mp_ctx *c = mp__ctx_new(n, MP_CTX_LOOKUP, &p->ref);
    int rc = MP_ENOMEM;
    if (c) {
        rc = mp__send_system(n, owner, MP_SYS_LOOKUP, &p->ref, NULL, 0, c,
                         lookup_cb);
        if (rc < 0) mp__ctx_free(c);
    }
    if (mp__refusal_status(rc)) {
        char text[MP_ADDR_MAX + 200];
        mp__refusal_text(n, mp_dir_addr(&n->dir, owner), rc, text, sizeof text);
        mp_ref ref = p->ref;
        lookup_refused(n, &ref, rc, text);
        return;
    }
    if (rc < 0) {
        mp_ref ref = p->ref;
        lookup_done(n, &ref, rc, NULL);
    }
}

static void lookup_retry(void *ud)
{
    mp_pending *p = ud;
    p->retry = 0;
    start_lookup(p->node, p);
}

void mp__lookups_retry_now(mp_node *n)
{
    mp_list_node *ln, *tmp;
    MP_LIST_FOREACH_SAFE(ln, tmp, &n->pending_list)
    {
        mp_pending *p = MP_CONTAINER_OF(ln, mp_pending, link);
        if (!p->retry) continue;
        mp_env_timer_cancel(n->env, p->retry);
        p->retry = 0;
        p->attempts = 0;
        MP_SOMETIMES(true, "actor.lookup_retried_on_view_change");
        start_lookup(n, p);
    }
}

static void lookup_done(mp_node *n, const mp_ref *ref, int status,
                        const mp_dir_entry *e)
{
    MP__DBG(n, "lookup_done %s st=%d -> %s", ref->id, status,
        e ? mp_dir_addr(&n->dir, e->member) : "none");
    mp_pending *p = mp_map_str_get(&n->pending, ref->id, ref->len);
    if (!p) return;
    p->in_flight = false;
    if (status < 0) {
        /* The owner is unreachable for now: retry while someone waits.
         * Expired requests are dropped (their callers time out). */
        uint64_t now = mp_env_now(n->env);
        mp_list_node *ln, *tmp;
        MP_LIST_FOREACH_SAFE(ln, tmp, &p->msgs)
        {
            mp_msg *m = MP_CONTAINER_OF(ln, mp_msg, link);
            if (n->closing || (m->deadline && now >= m->deadline)) {
                mp_list_remove(&m->link);
                if (n->closing)
                    mp__fail_msg(n, m, MP_EUNAVAIL, "node shutting down");
                else
                    mp_msg_release(n, m);
            }
        }
        if (mp_list_empty(&p->msgs)) {
            mp__pending_free(n, p);
            return;
        }
        p->attempts++;
        uint64_t d = 50 * MP_NS_PER_MS << (p->attempts < 5 ? p->attempts : 5);
        d += mp_env_random_below(n->env, d / 2 + 1);
        p->retry = mp_env_timer_start(n->env, d, lookup_retry, p);
        if (!p->retry) {
            mp__fail_list(n, &p->msgs, MP_ENOMEM, "out of memory");
            mp__pending_free(n, p);
        }
        return;
    }
    mp_ref r = p->ref;
    mp_list_node msgs;
    mp__pending_take(n, p, &msgs);
    lookup_resolved(n, &r, e, &msgs);
}

/* Where the directory says ref lives (e, or NULL: nowhere yet, place it):
 * send msgs there or host them here. Consumes msgs. */
static void lookup_resolved(mp_node *n, const mp_ref *rp, const mp_dir_entry *e,
                            mp_list_node *msgs_in)
{
    /* An activation may have appeared here while the lookup was out (a
     * placement from another node): it takes the messages. */
    lookup_resolved_a(n, rp, e, msgs_in, mp_catalog_find(&n->catalog, rp));
}

/* The same with the catalog's activation of rp already looked up. */
static void lookup_resolved(mp_node *n, const mp_ref *rp, const mp_dir_entry *e,
                            mp_list_node *msgs_in);
static void lookup_resolved_a(mp_node *n, const mp_ref *rp,
                              const mp_dir_entry *e, mp_list_node *msgs_in,
                              mp_actor *here)
{
    mp_ref r; /* rp may point into something freed below */
    mp__ref_copy(&r, rp);
    mp_list_node msgs;
    mp_list_init(&msgs);
    mp_list_splice_back(&msgs, msgs_in);
    mp_list_node *ln;

    if (here && here->state != MP_ACT_INVALID) {
        host_here_a(n, &r, &msgs, here);
        return;
    }

    size_t dst;
    uint16_t flags = 0;
    if (e) {
        dst = e->member;
        if (dst != n->dir.self)
            mp_dir_cache_put(&n->dir, r.id, r.len, e->member, e->incarnation);
    } else {
        const mp_actor_type *t = mp__type_of_ref(n, &r);
        mp_placement strat = t ? t->placement : MP_PLACE_TWO_CHOICES;
        dst = mp_dir_place(&n->dir, strat, &r, mp_catalog_count(&n->catalog),
                           n->env, mp__members_placeable(n, &r));
        if (dst == SIZE_MAX) {
            MP_SOMETIMES(true, "actor.no_member_hosts_type");
            mp__fail_list(n, &msgs, MP_EUNAVAIL,
                          "no active member hosts this actor type; not executed");
            return;
        }
        n->stats.placements++;
        if (dst != n->dir.self) {
            flags = MP_FLAG_PLACE;
            /* Optimistic: later calls go straight there and find the new
             * activation (or get forwarded with a cache update). */
            mp_dir_cache_put(&n->dir, r.id, r.len, (uint16_t)dst, 0);
        }
    }
    if (dst == n->dir.self) {
        /* Nothing above touched the catalog (placement and the cache do
         * not): here is still its answer. */
        host_here_a(n, &r, &msgs, here);
        return;
    }
    while ((ln = mp_list_pop_front(&msgs)) != NULL)
        mp__send_to(n, MP_CONTAINER_OF(ln, mp_msg, link), (uint16_t)dst, flags,
                true);
}

static void pending_add(mp_node *n, mp_msg *m)
{
    mp_pending *p = mp_map_str_get(&n->pending, m->target.id, m->target.len);
    if (p) {
        mp_list_push_back(&p->msgs, &m->link);
        return;
    }
    p = calloc(1, sizeof *p);
    if (!p) {
        mp__fail_msg(n, m, MP_ENOMEM, "out of memory");
        return;
    }
    p->node = n;
    p->ref = m->target;
    mp_list_init(&p->msgs);
    mp_list_node_init(&p->link);
    if (mp_map_str_put(&n->pending, p->ref.id, p->ref.len, p, NULL) != MP_OK) {
        free(p);
        mp__fail_msg(n, m, MP_ENOMEM, "out of memory");
        return;
    }
    mp_list_push_back(&n->pending_list, &p->link);
    mp_list_push_back(&p->msgs, &m->link);
    start_lookup(n, p);
}

void mp__route(mp_node *n, mp_msg *m)
{
    assert(!n->client_only); /* client calls go to a gateway (client.c) */
    assert(!mp_list_node_linked(&m->link));
    mp_actor *a = mp_catalog_find(&n->catalog, &m->target);
    if (a && a->state != MP_ACT_INVALID) {
        mp__deliver_local(n, a, m);
        return;
    }
    if (n->closing) {
        mp__fail_msg(n, m, m->origin == MP_ORIGIN_LOCAL ? MP_ECLOSED : MP_EUNAVAIL,
                 "node shutting down");
        return;
    }
    int c = mp_dir_cache_get_ref(&n->dir, &m->target);
    if (c >= 0 && (size_t)c != n->dir.self) {
        mp__send_to(n, m, (uint16_t)c, 0, true);
        return;
    }
    if (c >= 0) mp_dir_cache_remove_ref(&n->dir, &m->target);
    /* This node owns the id's directory entry and no lookup for it is
     * waiting (which would hold earlier messages): the answer is local and
     * immediate, so skip the pending-lookup record (an allocation and two
     * map operations per new activation) and resolve in place, exactly as
     * start_lookup + lookup_done would. A recovering owner without an entry
     * says "busy", which needs the record's retry: the slow path. */
    if (mp_dir_owner(&n->dir, &m->target) == n->dir.self &&
        (mp_map_str_count(&n->pending) == 0 ||
         !mp_map_str_get(&n->pending, m->target.id, m->target.len))) {
        /* No activation here (a is NULL): no local entry either
         * (directory.h), so only the stored table is asked. */
        const mp_dir_entry *e = a ? mp_dir_table_get_ref(&n->dir, &m->target)
                                  : mp_dir_table_get_stored(&n->dir, &m->target);
        if (e || !mp__recovering(n)) {
            mp_dir_entry copy;
            if (e) copy = *e;
            n->stats.dir_lookups++;
            mp_list_node one;
            mp_list_init(&one);
            mp_list_push_back(&one, &m->link);
            lookup_resolved_a(n, &m->target, e ? &copy : NULL, &one, a);
            return;
        }
    }
    pending_add(n, m);
}
