/*
 * Membership in the runtime: the table's view applied to the directory,
 * and the lease applied to turns (docs/membership.md).
 *
 * The agent (membership/agent.c) keeps this node's row in the table and
 * reports the members that may be serving. This file turns that into:
 *
 *   - Ownership. A member is live while any row of its address may serve;
 *     the directory's partitions are spread by rendezvous hashing over the
 *     live members only (directory.c), so when the set changes exactly the
 *     partitions of the members that came or went move. A member leaves
 *     the list only once taking over is safe (dead in the table and its
 *     lease observed expired here, or left gracefully): its actors then
 *     have no running activation anywhere, so its table entries and cache
 *     entries are dropped and the next call places them anew.
 *
 *   - Rebuilding moved partitions. Each node, on applying a new set,
 *     re-registers at their new owner its activations whose owner changed
 *     (a push, for speed), then asks every live peer to re-register
 *     everything it owns in the new view (a pull, for exactness: see
 *     "Rebuilding" below). Until every live peer has answered, it says
 *     "busy" for unknown ids (lookups, new registrations). A lookup or
 *     registration for an id this node does not own in its current view
 *     answers "busy" too: the asker's view is older or newer, and a retry
 *     meets views that agree. Entries of ids this node no longer owns are
 *     dropped. A registration whose answer comes back after the set
 *     changed is sent again, as a new registration, to the id's current
 *     owner (register.c): the old owner's entry is not known to the new
 *     one.
 *
 *   - Placement only on active members hosting the actor's type (a member
 *     that is shutting down, or declared dead but not yet taken over,
 *     owns its partitions but gets no new activation).
 *
 *   - The lease. The node runs turns only while the agent says its lease is
 *     valid (mp__magent_may_serve at the start of every drain, the only
 *     place turns start). When it lapses (a pause, a cut from the
 *     storage), every activation is asked to deactivate before its next
 *     turn and new work is refused with MP_EUNAVAIL ("not executed"); the
 *     others take over only after the lease plus a margin by their own
 *     clock (agent.c says why that ordering holds). When the table says
 *     this node is dead it never serves again: the host restarts it with a
 *     new incarnation (on_declared_dead).
 *
 *   - Suspicion. A peer the transport finds unreachable (a dial or
 *     handshake failed) is reported to the agent, whose votes may declare
 *     it dead before its lease runs out (it then stops at its next
 *     renewal, which fails).
 *
 * Static clusters (membership = false) skip all of this: every configured
 * member is live forever, as before.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "membership/agent.h"
#include "moonpool/buggify.h"
#include "runtime/runtime.h"
#include "util/endian.h"
#include "util/hash.h"
#include "util/prng.h"

struct mp_members {
    mp__magent *agent;
    bool joined, dead, serving;
    bool first_view_applied;
    uint64_t view_hash;            /* hash of the live addresses applied */
    uint8_t active[MP_MAX_MEMBERS]; /* status active: placement may use it */
    uint32_t inc[MP_MAX_MEMBERS];  /* the newest incarnation in the view */
    char *types[MP_MAX_MEMBERS];   /* ",A,B," of the active row; NULL: none */
    uint8_t ok[MP_MAX_MEMBERS];    /* placement scratch */
    /* Rebuilding (see above), per member index. */
    uint64_t rb_nonce[MP_MAX_MEMBERS];   /* our request to it; 0: none */
    uint32_t rb_recv[MP_MAX_MEMBERS];    /* re-registrations tagged with it */
    bool rb_done[MP_MAX_MEMBERS];        /* it answered, all arrived */
    uint64_t pend_nonce[MP_MAX_MEMBERS]; /* its request, for a view not ours yet */
    uint64_t pend_hash[MP_MAX_MEMBERS];
    uint64_t next_nonce;
    uint64_t rebuild_retry_ns;
    mp_timer_id rb_timer;
    bool recovering;                     /* for view_hash */
    void (*leave_cb)(mp_node *n);
    mp__membership_counters c;
};

static void apply_view(void *ud, const mp__member_view *list, size_t cnt);

static uint64_t set_hash(const mp_node *n)
{
    /* Order-free: a sum of per-address hashes (the set, not the list). */
    uint64_t h = 0x6d656d62ull;
    for (size_t i = 0; i < n->dir.n; i++)
        if (mp_dir_is_live(&n->dir, i))
            h += mp_mix64(n->dir.member_hash[i], 0x6c697665ull);
    return h;
}

/* ---- the lease and turns ---- */

static void lapse(mp_node *n, const char *why)
{
    mp_members *ms = n->members;
    if (ms->serving) {
        ms->c.lapses++;
        mp_env_log(n->env, MP_LOG_WARN,
                   "node: %s: serving nothing; %zu activation(s) deactivate", why,
                   mp_catalog_count(&n->catalog));
    }
    ms->serving = false;
    mp_list_node *ln, *tmp;
    MP_LIST_FOREACH_SAFE(ln, tmp, &n->catalog.list)
    {
        mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
        if (a->state == MP_ACT_VALID && !a->deactivate_requested) {
            a->deactivate_requested = true;
            a->deact_reason = MP_DEACTIVATE_LEASE;
            mp_actor_schedule(a);
        }
    }
}

void mp__members_check_lease(mp_node *n, uint64_t now)
{
    mp_members *ms = n->members;
    /* Not before the first view either: until then this node's directory
     * is the static list, which the others no longer use. */
    bool may = !ms->dead && ms->joined && ms->first_view_applied &&
               mp__magent_may_serve(ms->agent, now);
    if (may == ms->serving) return;
    if (may) {
        ms->serving = true;
        MP_SOMETIMES(ms->c.lapses > 0, "actor.lease_serving_again");
        mp_env_log(n->env, ms->c.lapses ? MP_LOG_INFO : MP_LOG_DEBUG,
                   "node: membership lease valid: serving");
        return;
    }
    MP_SOMETIMES(true, "actor.lease_lapsed");
    lapse(n, "membership lease not valid (paused, or cut off from the storage)");
}

bool mp__members_serving(mp_node *n)
{
    if (!n->members) return true;
    /* A node that is not serving looks again (the lease may have been
     * renewed since the last drain); one that is, is checked at the start
     * of the drain that would run the turn. */
    if (!n->members->serving) mp__members_check_lease(n, mp_env_now(n->env));
    return n->members->serving;
}

bool mp__members_serving_now(mp_node *n)
{
    if (!n->members) return true;
    mp__members_check_lease(n, mp_env_now(n->env));
    return n->members->serving;
}

/* ---- the view ---- */

static bool hosts_type(const char *types, const char *name, size_t len)
{
    if (!types) return false;
    for (const char *p = types; (p = strchr(p, ',')) != NULL && p[1]; p++) {
        const char *e = strchr(p + 1, ',');
        if (e && (size_t)(e - p - 1) == len && memcmp(p + 1, name, len) == 0) return true;
    }
    return false;
}

const uint8_t *mp__members_placeable(mp_node *n, const mp_ref *ref)
{
    mp_members *ms = n->members;
    if (!ms || !ms->first_view_applied) return NULL;
    const char *name = ref->id + ref->type_off;
    for (size_t i = 0; i < n->dir.n; i++)
        ms->ok[i] = ms->active[i] && hosts_type(ms->types[i], name, ref->type_len);
    return ms->ok;
}

static char *types_text(const mp__member_view *v)
{
    size_t len = 2;
    for (size_t t = 0; t < v->ntypes; t++) len += strlen(v->types[t]) + 1;
    char *s = malloc(len);
    if (!s) return NULL;
    char *p = s;
    *p++ = ',';
    for (size_t t = 0; t < v->ntypes; t++) {
        size_t l = strlen(v->types[t]);
        memcpy(p, v->types[t], l);
        p += l;
        *p++ = ',';
    }
    *p = '\0';
    return s;
}


/* Rebuilding, pulled by the new owner: after applying a view, a node asks
 * every live peer (dir.rebuild, with a nonce and the view's hash) to
 * re-register every activation it owns in that view, and stays "busy" for
 * unknown ids until each peer answered (dir.reregistered: the nonce and how
 * many it sent) and all those re-registrations, tagged with the nonce,
 * arrived. A peer whose view is not that one yet keeps the request and
 * answers when it gets there. Asking (rather than each host pushing what
 * it thinks moved) is what makes it exact: a host cannot know that the new
 * owner dropped its entry in between, while the views were apart (members
 * workload, seed 227: a member that just joined still listed a dead one,
 * so a partition left it and came back). There is no time limit: a peer
 * that never answers is either dead, and leaves the view once its lease is
 * observed expired, or alive, and may still run the activations we would
 * otherwise place twice. Unanswered requests are sent again, with a new
 * nonce, every rebuild_retry_ns. */

static void send_rebuilt(mp_node *n, size_t i, uint64_t nonce, uint32_t count)
{
    uint8_t p[MP_SYS_REBUILT_SIZE];
    mp_put_le64(p, nonce);
    mp_put_le32(p + 8, count);
    mp__send_system(n, i, MP_SYS_REREGISTERED, NULL, p, sizeof p, NULL, NULL);
}

static void request_rebuild(mp_node *n, size_t i)
{
    mp_members *ms = n->members;
    ms->rb_nonce[i] = ++ms->next_nonce;
    ms->rb_recv[i] = 0;
    ms->rb_done[i] = false;
    uint8_t p[MP_SYS_REBUILD_SIZE];
    mp_put_le64(p, ms->rb_nonce[i]);
    mp_put_le64(p + 8, ms->view_hash);
    mp__send_system(n, i, MP_SYS_REBUILD, NULL, p, sizeof p, NULL, NULL);
}

static void serve_rebuild(mp_node *n, size_t i, uint64_t nonce)
{
    uint32_t sent = 0;
    mp_list_node *ln, *tmp;
    MP_LIST_FOREACH_SAFE(ln, tmp, &n->catalog.list)
    {
        mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
        if (!((a->state == MP_ACT_VALID || a->state == MP_ACT_ACTIVATING) &&
              mp_dir_owner_h(&n->dir, a->hash) == i))
            continue;
        /* Buggify: as if this one were lost with a broken connection. */
        if (MP_BUGGIFY_P(0.02) || mp__reregister_tagged(n, a, nonce) == MP_OK) sent++;
    }
    MP_SOMETIMES(sent > 0, "actor.membership_reregistered");
    send_rebuilt(n, i, nonce, sent);
}

static void maybe_end_recovery(mp_node *n)
{
    mp_members *ms = n->members;
    if (!ms->recovering) return;
    for (size_t i = 0; i < n->dir.n; i++) {
        if (i == n->dir.self || !mp_dir_is_live(&n->dir, i)) continue;
        if (!ms->rb_done[i]) return;
    }
    ms->recovering = false;
    MP_SOMETIMES(true, "actor.membership_rebuilt");
    n->recover_until = 0;
    if (ms->rb_timer) mp_env_timer_cancel(n->env, ms->rb_timer);
    ms->rb_timer = 0;
}

static void rebuild_retry(void *ud)
{
    mp_node *n = ud;
    mp_members *ms = n->members;
    ms->rb_timer = 0;
    if (!ms->recovering || n->freed) return;
    for (size_t i = 0; i < n->dir.n; i++)
        if (i != n->dir.self && mp_dir_is_live(&n->dir, i) && !ms->rb_done[i]) {
            MP_SOMETIMES(true, "actor.membership_rebuild_asked_again");
            request_rebuild(n, i);
        }
    ms->rb_timer = mp_env_timer_start(n->env, ms->rebuild_retry_ns, rebuild_retry, n);
}

void mp__members_on_rebuild(mp_node *n, int peer_idx, uint64_t nonce, uint64_t hash)
{
    mp_members *ms = n->members;
    if (!ms || peer_idx < 0 || nonce == 0) return;
    if (!ms->first_view_applied || hash != ms->view_hash) {
        /* Our view is not that one (yet): answer when it is. */
        MP_SOMETIMES(true, "actor.membership_rebuild_deferred");
        ms->pend_nonce[peer_idx] = nonce;
        ms->pend_hash[peer_idx] = hash;
        return;
    }
    ms->pend_nonce[peer_idx] = 0;
    serve_rebuild(n, (size_t)peer_idx, nonce);
}

void mp__members_on_rebuilt(mp_node *n, int peer_idx, uint64_t nonce, uint32_t count)
{
    mp_members *ms = n->members;
    if (!ms || peer_idx < 0 || nonce == 0 || nonce != ms->rb_nonce[peer_idx]) return;
    if (ms->rb_recv[peer_idx] >= count) {
        ms->rb_done[peer_idx] = true;
        maybe_end_recovery(n);
    } else {
        /* Some were lost with a connection: ask again. */
        MP_SOMETIMES(true, "actor.membership_rebuild_short");
        request_rebuild(n, (size_t)peer_idx);
    }
}

void mp__members_on_rereg(mp_node *n, int peer_idx, uint64_t tag)
{
    mp_members *ms = n->members;
    if (!ms || peer_idx < 0 || tag == 0) return;
    if (tag == ms->rb_nonce[peer_idx]) ms->rb_recv[peer_idx]++;
}

void mp__members_peer_restart(mp_node *n, int peer_idx)
{
    mp_members *ms = n->members;
    if (!ms || peer_idx < 0) return;
    /* Its old life's answers and requests mean nothing now. */
    ms->pend_nonce[peer_idx] = 0;
    if (ms->recovering && mp_dir_is_live(&n->dir, (size_t)peer_idx) &&
        (size_t)peer_idx != n->dir.self)
        request_rebuild(n, (size_t)peer_idx);
}

bool mp__members_owns(const mp_node *n, const mp_ref *ref)
{
    return !n->members || mp_dir_owner(&n->dir, ref) == n->dir.self;
}

static void apply_view(void *ud, const mp__member_view *list, size_t cnt)
{
    mp_node *n = ud;
    mp_members *ms = n->members;
    if (n->freed || ms->dead) return;
    uint8_t live[MP_MAX_MEMBERS] = {0};
    memset(ms->active, 0, sizeof ms->active);
    for (size_t k = 0; k < cnt; k++) {
        int idx = mp_dir_add_member(&n->dir, list[k].addr);
        if (idx < 0) {
            mp_env_log(n->env, MP_LOG_ERROR, "node: membership: cannot track %s: %s",
                       list[k].addr, mp_strerror(idx));
            continue;
        }
        live[idx] = 1;
        if (list[k].incarnation >= ms->inc[idx]) ms->inc[idx] = list[k].incarnation;
        if (list[k].status == MP__MEMBER_ACTIVE) {
            ms->active[idx] = 1;
            char *t = types_text(&list[k]);
            if (t) {
                free(ms->types[idx]);
                ms->types[idx] = t;
            }
        }
    }
    /* recv.c caches the index of the last sender: a member just added may
     * be that sender, known as "no member" until now. */
    n->last_from_len = 0;
    n->last_from[0] = '\0';
    n->last_from_idx = -1;
    bool first = !ms->first_view_applied;
    bool changed = first;
    for (size_t i = 0; i < n->dir.n && !changed; i++)
        changed = (live[i] != 0) != mp_dir_is_live(&n->dir, i);
    if (!changed) return;
    /* Owners before the change, for the activations that must move. */
    size_t count = mp_catalog_count(&n->catalog);
    uint16_t *before = count ? malloc(count * sizeof *before) : NULL;
    size_t j = 0;
    mp_list_node *ln, *tmp;
    if (before)
        MP_LIST_FOREACH_SAFE(ln, tmp, &n->catalog.list)
        {
            mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
            before[j++] = (uint16_t)mp_dir_owner_h(&n->dir, a->hash);
        }
    if (first) mp_dir_use_live_set(&n->dir);
    size_t gone = 0;
    for (size_t i = 0; i < n->dir.n; i++) {
        bool was = !first && n->dir.live[i];
        if (was && !live[i] && i != n->dir.self) {
            /* Taken over: nothing of it runs any more (agent.c). */
            gone++;
            mp_dir_peer_restart(&n->dir, (uint16_t)i, UINT32_MAX);
            mp_env_log(n->env, MP_LOG_INFO, "node: membership: %s left the cluster; "
                       "its partitions and actors are taken over", mp_dir_addr(&n->dir, i));
        }
        mp_dir_set_live(&n->dir, i, live[i] != 0);
    }
    ms->first_view_applied = true;
    if (first) mp__members_check_lease(n, mp_env_now(n->env));
    ms->view_hash = set_hash(n);
    ms->c.view_changes++;
    ms->c.members_taken_over += gone;
    MP_SOMETIMES(gone > 0, "actor.member_taken_over");
    mp_dir_drop_not_owned(&n->dir);
    /* Re-register what moved, then report. */
    j = 0;
    uint32_t moved = 0;
    MP_LIST_FOREACH_SAFE(ln, tmp, &n->catalog.list)
    {
        mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
        size_t was = before && j < count ? before[j] : SIZE_MAX;
        j++;
        if ((a->state == MP_ACT_VALID || a->state == MP_ACT_ACTIVATING) &&
            mp_dir_owner_h(&n->dir, a->hash) != was &&
            mp__register(n, a, MP_CTX_REREGISTER) == MP_OK)
            moved++;
    }
    free(before);
    MP_SOMETIMES(moved > 0, "actor.membership_pushed");
    ms->recovering = n->dir.live_count > 1;
    n->recover_until = ms->recovering ? UINT64_MAX : 0;
    for (size_t i = 0; i < n->dir.n; i++) {
        if (i == n->dir.self || !mp_dir_is_live(&n->dir, i)) {
            ms->rb_done[i] = true;
            continue;
        }
        request_rebuild(n, i);
        /* A request of theirs for the view we just reached. */
        if (ms->pend_nonce[i] && ms->pend_hash[i] == ms->view_hash) {
            uint64_t nonce = ms->pend_nonce[i];
            ms->pend_nonce[i] = 0;
            serve_rebuild(n, i, nonce);
        }
    }
    if (ms->recovering && !ms->rb_timer)
        ms->rb_timer = mp_env_timer_start(n->env, ms->rebuild_retry_ns, rebuild_retry, n);
    maybe_end_recovery(n);
    mp__lookups_retry_now(n);
    mp_env_log(n->env, first ? MP_LOG_DEBUG : MP_LOG_INFO,
               "node: membership: %zu live member(s); %u activation(s) re-registered",
               n->dir.live_count, moved);
}

/* ---- agent callbacks ---- */

static void on_dead(void *ud)
{
    mp_node *n = ud;
    mp_members *ms = n->members;
    if (n->freed || ms->dead) return;
    ms->dead = true;
    MP_SOMETIMES(true, "actor.declared_dead");
    lapse(n, "declared dead by the cluster");
    if (n->on_declared_dead) n->on_declared_dead(n->hook_ud);
}

static void on_joined(void *ud, int status)
{
    mp_node *n = ud;
    if (n->freed) return;
    if (status == MP_OK) {
        n->members->joined = true;
        mp__members_check_lease(n, mp_env_now(n->env));
    }
}

int mp__members_start(mp_node *n)
{
    if (!n->membership_cfg.enabled) return MP_OK;
    if (n->type_count > MP__MT_MAX_TYPES) {
        mp_env_log(n->env, MP_LOG_ERROR,
                   "node: membership: %zu actor types registered; the table records at most %d "
                   "per member", n->type_count, MP__MT_MAX_TYPES);
        return MP_EINVAL;
    }
    mp_members *ms = calloc(1, sizeof *ms);
    if (!ms) return MP_ENOMEM;
    const char *names[MP__MT_MAX_TYPES];
    size_t nt = n->type_count;
    for (size_t i = 0; i < nt; i++) names[i] = n->types[i].type->name;
    /* A request unanswered for a few polls is asked again. */
    ms->rebuild_retry_ns = 4 * n->membership_cfg.poll_ns;
    if (ms->rebuild_retry_ns < 200 * MP_NS_PER_MS) ms->rebuild_retry_ns = 200 * MP_NS_PER_MS;
    mp__magent_config ac;
    mp__magent_config_init(&ac);
    ac.lease_ns = n->membership_cfg.lease_ns;
    ac.margin_ns = n->membership_cfg.margin_ns;
    ac.poll_ns = n->membership_cfg.poll_ns;
    ac.renew_ns = ac.lease_ns / 3;
    ac.votes = n->membership_cfg.votes;
    mp__magent_callbacks cbs = {apply_view, on_dead, on_joined, n};
    int rc = mp__magent_create(n->env, n->storage, n->ns, n->self_addr, n->incarnation,
                               names, nt, &ac, &cbs, &ms->agent);
    if (rc < 0) {
        free(ms);
        return rc;
    }
    n->members = ms;
    rc = mp__magent_join(ms->agent);
    if (rc < 0) {
        mp__members_free(n);
        return rc;
    }
    return MP_OK;
}

void mp__members_suspect(mp_node *n, int peer_idx)
{
    mp_members *ms = n->members;
    if (!ms || ms->dead || peer_idx < 0 || !ms->inc[peer_idx]) return;
    if (mp__membership_suspect(ms->agent, mp_dir_addr(&n->dir, (size_t)peer_idx),
                               ms->inc[peer_idx]) == MP_OK)
        ms->c.suspicions++;
}

static void left(void *ud, int status)
{
    mp_node *n = ud;
    if (status < 0)
        mp_env_log(n->env, MP_LOG_WARN, "node: membership: leave ended with %s",
                   mp_status_name(status));
    n->members->leave_cb(n);
}

bool mp__members_leave(mp_node *n, void (*cb)(mp_node *n))
{
    mp_members *ms = n->members;
    if (!ms || ms->dead || !ms->joined) return false;
    ms->leave_cb = cb;
    return mp__magent_leave(ms->agent, left, n) == MP_OK;
}

void mp__members_free(mp_node *n)
{
    mp_members *ms = n->members;
    if (!ms) return;
    if (ms->rb_timer) mp_env_timer_cancel(n->env, ms->rb_timer);
    /* Also for a kill: the table's storage is shared and lives on, and a
     * load or save in flight completes later into a token that names
     * nothing (agent.c; freeing a per-operation ticket here instead was a
     * double free: members workload, seeds 14..16). */
    mp__magent_free(ms->agent);
    for (size_t i = 0; i < MP_MAX_MEMBERS; i++) free(ms->types[i]);
    free(ms);
    n->members = NULL;
}

void mp__members_counters(const mp_node *n, mp__membership_counters *out)
{
    memset(out, 0, sizeof *out);
    if (!n->members) return;
    *out = n->members->c;
    mp__magent_stats st;
    mp__magent_get_stats(n->members->agent, &st);
    out->table_reads = st.reads;
    out->table_writes = st.writes;
    out->table_conflicts = st.conflicts;
    out->declared_dead = st.declared_dead;
    out->serving = n->members->serving;
    out->lease_end = mp__magent_lease_end(n->members->agent);
}

void mp__members_member(const mp_node *n, size_t i, uint32_t *inc, bool *active)
{
    *inc = n->members ? n->members->inc[i] : 0;
    *active = n->members ? n->members->active[i] != 0 : true;
}
