/*
 * The membership agent (contract and lease rule: agent.h).
 *
 * Why one kind of "round" for everything: join, renewal, suspicion,
 * declaration and leave are all "read the table, change it, save it if
 * nobody changed it meanwhile". A round reads, decides every change this
 * node wants right now from the fresh table (modify), and saves once. One
 * round at a time (a request during a round sets `again`), so the agent
 * never races itself and never has more than one storage operation in
 * flight. A conflict restarts the read after a jittered backoff that
 * doubles per attempt, up to max_retries; a round that gives up is retried
 * by the next tick. Every write this node makes while serving also bumps
 * its heartbeat: any accepted write is a lease renewal.
 *
 * Storage callbacks carry a token, not the agent: a number looked up in a
 * thread-local table (as runtime/state.c does). Freeing the agent while a
 * load or save is in flight removes its token, and the completion, which a
 * shared storage still delivers later, finds nothing and returns. Nothing
 * is allocated per operation, so nothing leaks when the storage is freed
 * without callbacks either (a simulated world's end).
 */
#include "membership/agent.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/status.h"
#include "util/map.h"

typedef enum a_state {
    A_IDLE = 0,     /* created, not joined */
    A_INSERT,       /* join: own row not written yet */
    A_JOINING,      /* own row written as joining */
    A_ACTIVE,       /* own row active */
    A_LEAVING1,     /* leave: writing shutting_down */
    A_LEAVING2,     /* leave: stopped serving, writing dead */
    A_LEFT,         /* gone by its own leave */
    A_DEAD          /* found dead: must rejoin as a new incarnation */
} a_state;

static __thread mp_map_u64 *g_tokens; /* token -> agent with an op in flight */
static __thread uint64_t g_next_token;

typedef struct obs {
    char addr[MP_ADDR_MAX + 1];
    uint32_t incarnation;
    uint64_t heartbeat;
    uint64_t first_seen; /* local time of the first read showing it */
} obs;

typedef struct pending {
    char addr[MP_ADDR_MAX + 1];
    uint32_t incarnation;
} pending;

struct mp__magent {
    mp_env *env;
    mp_storage *st;
    mp__magent_config cfg;
    mp__magent_callbacks cbs;
    char key[MP_ACTOR_PART_MAX + sizeof MP__MT_KEY_SUFFIX];
    size_t key_len;
    mp__mrow me; /* template of own row: addr, incarnation, types */
    a_state state;

    uint64_t lease_end; /* local time; 0 none */

    /* the round */
    bool busy, again;
    uint64_t tk; /* token of the load or save in flight; 0: none */
    uint32_t attempt;
    mp_timer_id tick_timer, retry_timer;
    uint64_t next_poll;   /* local time of the next periodic read */
    uint64_t quiet_until; /* after a failed round, no new round before */
    uint64_t send_time;   /* local time just before the pending save */
    bool save_renews;
    a_state save_next;    /* state once the pending save is accepted */
    uint32_t save_declared;
    unsigned save_applied_susp; /* pending suspicions consumed */

    mp__mtable *table; /* last known stored table */
    uint64_t etag;
    bool have_table;
    mp__mtable *work;

    obs *obs;
    uint32_t nobs;
    obs *obs_tmp;

    pending pend[MP__MT_MAX_SUSPICIONS];
    unsigned npend;

    mp__member_view *view, *view_tmp;
    size_t nview;
    bool view_sent;

    bool leave_requested;
    mp__magent_done_cb leave_cb;
    void *leave_ud;
    mp__magent_stats stats;
};

static void start_round(mp__magent *a);
static void schedule(mp__magent *a);

void mp__magent_config_init(mp__magent_config *cfg)
{
    assert(cfg);
    memset(cfg, 0, sizeof *cfg);
    cfg->lease_ns = MP__MEMBERSHIP_DEFAULT_LEASE_NS;
    cfg->renew_ns = cfg->lease_ns / 3;
    cfg->margin_ns = MP__MEMBERSHIP_DEFAULT_MARGIN_NS;
    cfg->poll_ns = MP__MEMBERSHIP_DEFAULT_POLL_NS;
    cfg->votes = MP__MEMBERSHIP_DEFAULT_VOTES;
    cfg->max_retries = MP__MEMBERSHIP_DEFAULT_RETRIES;
    cfg->backoff_ns = MP__MEMBERSHIP_DEFAULT_BACKOFF_NS;
}

static bool serving_state(a_state s) { return s == A_ACTIVE || s == A_LEAVING1; }

/* States in which the own row is (believed) in the table. */
static bool row_written(a_state s)
{
    return s == A_JOINING || s == A_ACTIVE || s == A_LEAVING1 || s == A_LEAVING2;
}

/* ---- observations and the view ------------------------------------------ */

static obs *find_obs(obs *o, uint32_t n, const char *addr, uint32_t inc)
{
    for (uint32_t i = 0; i < n; i++)
        if (o[i].incarnation == inc && strcmp(o[i].addr, addr) == 0) return &o[i];
    return NULL;
}

/* Record what table t shows at local time now: a heartbeat value seen for
 * the first time starts its clock now (the read completed after the value
 * was applied, so now is never earlier than the owner's renewal). */
static void observe(mp__magent *a, const mp__mtable *t, uint64_t now)
{
    for (uint32_t i = 0; i < t->count; i++) {
        const mp__mrow *r = &t->rows[i];
        obs *prev = find_obs(a->obs, a->nobs, r->addr, r->incarnation);
        obs *o = &a->obs_tmp[i];
        memcpy(o->addr, r->addr, sizeof o->addr);
        o->incarnation = r->incarnation;
        o->heartbeat = r->heartbeat;
        o->first_seen = (prev && prev->heartbeat == r->heartbeat) ? prev->first_seen : now;
    }
    obs *swap = a->obs;
    a->obs = a->obs_tmp;
    a->obs_tmp = swap;
    a->nobs = t->count;
}

/* Whether this agent has observed row r's lease expired at local time now. */
static bool expired(const mp__magent *a, const mp__mrow *r, uint64_t now)
{
    const obs *o = find_obs(a->obs, a->nobs, r->addr, r->incarnation);
    if (!o || o->heartbeat != r->heartbeat) return false;
    return now - o->first_seen >= r->lease_ns + a->cfg.margin_ns;
}

static bool is_self(const mp__magent *a, const char *addr, uint32_t inc)
{
    return inc == a->me.incarnation && strcmp(addr, a->me.addr) == 0;
}

/* May row r still be serving, as far as this agent can tell? */
static bool may_be_serving(const mp__magent *a, const mp__mrow *r, uint64_t now)
{
    switch (r->status) {
    case MP__MEMBER_ACTIVE:
    case MP__MEMBER_SHUTTING_DOWN:
        /* Even when its lease looks expired here: until a declaration is
         * accepted, the owner may still renew (its renewal would win the
         * compare-and-set) and serve on. */
        return true;
    case MP__MEMBER_DEAD:
        if (r->flags & MP__MEMBER_LEFT) return false;
        if (is_self(a, r->addr, r->incarnation)) return false;
        return !expired(a, r, now);
    default: return false; /* joining: not serving yet */
    }
}

static bool view_eq(const mp__member_view *x, const mp__member_view *y)
{
    if (x->incarnation != y->incarnation || x->status != y->status ||
        x->ntypes != y->ntypes || strcmp(x->addr, y->addr) != 0)
        return false;
    for (unsigned k = 0; k < x->ntypes; k++)
        if (strcmp(x->types[k], y->types[k]) != 0) return false;
    return true;
}

static void update_view(mp__magent *a, uint64_t now)
{
    const mp__mtable *t = a->table;
    size_t n = 0;
    for (uint32_t i = 0; i < t->count; i++) {
        const mp__mrow *r = &t->rows[i];
        if (!may_be_serving(a, r, now)) continue;
        mp__member_view *v = &a->view_tmp[n++];
        memcpy(v->addr, r->addr, sizeof v->addr);
        v->incarnation = r->incarnation;
        v->status = r->status;
        v->ntypes = r->ntypes;
        memcpy(v->types, r->types, sizeof v->types);
    }
    bool same = a->view_sent && n == a->nview;
    for (size_t i = 0; same && i < n; i++) same = view_eq(&a->view[i], &a->view_tmp[i]);
    if (same) return;
    mp__member_view *swap = a->view;
    a->view = a->view_tmp;
    a->view_tmp = swap;
    a->nview = n;
    a->view_sent = true;
    if (a->cbs.on_members) a->cbs.on_members(a->cbs.ud, a->view, a->nview);
}

/* ---- deciding the changes ------------------------------------------------- */

static void set_status(mp__mrow *r, uint8_t status, uint64_t version)
{
    r->status = status;
    r->since = version;
}

static void add_suspicion(mp__magent *a, mp__mrow *r)
{
    for (unsigned s = 0; s < r->nsusp; s++)
        if (is_self(a, r->susp[s].addr, r->susp[s].incarnation)) return; /* already */
    if (r->nsusp == MP__MT_MAX_SUSPICIONS) {
        unsigned oldest = 0;
        for (unsigned s = 1; s < r->nsusp; s++)
            if (r->susp[s].heartbeat < r->susp[oldest].heartbeat) oldest = s;
        r->susp[oldest] = r->susp[--r->nsusp];
    }
    mp__suspicion *p = &r->susp[r->nsusp++];
    memcpy(p->addr, a->me.addr, sizeof p->addr);
    p->incarnation = a->me.incarnation;
    p->heartbeat = r->heartbeat;
}

static bool active_row(const mp__mtable *t, const char *addr, uint32_t inc)
{
    int i = mp__mtable_find(t, addr, inc);
    return i >= 0 && t->rows[i].status == MP__MEMBER_ACTIVE;
}

/* Drop suspicions that no longer count: the suspecter is not active any
 * more, or the suspect renewed since (beyond the window). */
static bool prune_suspicions(const mp__mtable *t, mp__mrow *r)
{
    bool changed = false;
    for (unsigned s = 0; s < r->nsusp;) {
        const mp__suspicion *p = &r->susp[s];
        if (!active_row(t, p->addr, p->incarnation) ||
            r->heartbeat > p->heartbeat + MP__MEMBERSHIP_SUSPICION_WINDOW) {
            r->susp[s] = r->susp[--r->nsusp];
            changed = true;
        } else {
            s++;
        }
    }
    return changed;
}

static bool votes_suffice(const mp__magent *a, const mp__mtable *t, const mp__mrow *r)
{
    uint32_t others = 0;
    for (uint32_t i = 0; i < t->count; i++)
        if (t->rows[i].status == MP__MEMBER_ACTIVE &&
            !(t->rows[i].incarnation == r->incarnation &&
              strcmp(t->rows[i].addr, r->addr) == 0))
            others++;
    uint32_t need = a->cfg.votes < others ? a->cfg.votes : others;
    if (need == 0) need = 1;
    uint32_t have = 0;
    for (unsigned s = 0; s < r->nsusp; s++) {
        const mp__suspicion *p = &r->susp[s];
        if (active_row(t, p->addr, p->incarnation) &&
            r->heartbeat <= p->heartbeat + MP__MEMBERSHIP_SUSPICION_WINDOW)
            have++;
    }
    return have >= need;
}

/* A dead row that no one can still be served from, as far as this agent
 * observed: safe to delete (the owner stopped serving before this agent's
 * observation of expiry could complete, whatever others observed). */
static bool removable(const mp__magent *a, const mp__mrow *r, uint64_t now)
{
    if (r->status != MP__MEMBER_DEAD || is_self(a, r->addr, r->incarnation)) return false;
    return (r->flags & MP__MEMBER_LEFT) || expired(a, r, now);
}

/* Apply to w (a copy of the stored table) every change this node wants
 * now. Returns whether anything changed; sets the save_* fields. */
static bool modify(mp__magent *a, mp__mtable *w, uint64_t now)
{
    const uint64_t nv = w->version + 1;
    bool changed = false;
    a->save_renews = false;
    a->save_next = a->state;
    a->save_declared = 0;
    a->save_applied_susp = 0;

    int me = mp__mtable_find(w, a->me.addr, a->me.incarnation);
    if (a->state == A_INSERT && me < 0) {
        /* Older incarnations of this address are dead: a process at this
         * address now is this one. Dead rows of the address that are safe
         * to forget go, so restarts do not fill the table. */
        for (uint32_t i = 0; i < w->count;) {
            mp__mrow *r = &w->rows[i];
            if (strcmp(r->addr, a->me.addr) == 0 && r->incarnation < a->me.incarnation) {
                if (r->status != MP__MEMBER_DEAD) {
                    set_status(r, MP__MEMBER_DEAD, nv);
                    changed = true;
                } else if (removable(a, r, now)) {
                    mp__mtable_remove(w, i);
                    changed = true;
                    continue;
                }
            }
            i++;
        }
        if (w->count == MP__MT_MAX_ROWS) {
            for (uint32_t i = 0; i < w->count; i++)
                if (removable(a, &w->rows[i], now)) {
                    mp__mtable_remove(w, i);
                    break;
                }
        }
        mp__mrow row = a->me;
        row.status = MP__MEMBER_JOINING;
        row.since = nv;
        row.heartbeat = 0; /* bumped below */
        int rc = mp__mtable_insert(w, &row);
        if (rc < 0) {
            mp_env_log(a->env, MP_LOG_WARN, "membership: cannot join %s: %s", a->me.addr,
                       rc == MP_EQUEUEFULL ? "the table is full" : mp_strerror(rc));
            a->quiet_until = now + a->cfg.poll_ns; /* try again later */
            return false;
        }
        me = rc;
        changed = true;
        a->save_next = A_JOINING;
    } else if (a->state == A_INSERT) {
        a->state = A_JOINING; /* an earlier save whose answer was lost */
        a->save_next = A_JOINING;
    }
    if (me >= 0 && w->rows[me].status != MP__MEMBER_DEAD) {
        mp__mrow *r = &w->rows[me];
        switch (a->state) {
        case A_JOINING:
            set_status(r, MP__MEMBER_ACTIVE, nv);
            a->save_next = A_ACTIVE;
            changed = true;
            break;
        case A_LEAVING1:
            if (r->status != MP__MEMBER_SHUTTING_DOWN)
                set_status(r, MP__MEMBER_SHUTTING_DOWN, nv);
            changed = true; /* a write (with its renewal) moves to step 2 */
            a->save_next = A_LEAVING2;
            break;
        case A_LEAVING2:
            set_status(r, MP__MEMBER_DEAD, nv);
            r->flags |= MP__MEMBER_LEFT;
            r->nsusp = 0;
            a->save_next = A_LEFT;
            changed = true;
            break;
        default: break;
        }
    }

    /* Suspicions reported by the failure detector (only an active member
     * votes). */
    if (a->state == A_ACTIVE) {
        for (unsigned p = 0; p < a->npend; p++) {
            int i = mp__mtable_find(w, a->pend[p].addr, a->pend[p].incarnation);
            if (i < 0 || w->rows[i].status == MP__MEMBER_DEAD) continue;
            (void)prune_suspicions(w, &w->rows[i]);
            add_suspicion(a, &w->rows[i]);
            changed = true;
        }
        a->save_applied_susp = a->npend;
    }

    /* Declarations: by votes, or by a lease this agent saw expire. */
    if (row_written(a->state) || a->state == A_INSERT) {
        for (uint32_t i = 0; i < w->count; i++) {
            mp__mrow *r = &w->rows[i];
            if (r->status == MP__MEMBER_DEAD || is_self(a, r->addr, r->incarnation)) continue;
            if (prune_suspicions(w, r)) changed = true;
            if (votes_suffice(a, w, r) || expired(a, r, now)) {
                set_status(r, MP__MEMBER_DEAD, nv);
                a->save_declared++;
                changed = true;
            }
        }
        /* Keep a quarter of the table free: forget dead rows that are safe
         * to forget. */
        for (uint32_t i = 0; w->count > MP__MT_MAX_ROWS * 3 / 4 && i < w->count;) {
            if (removable(a, &w->rows[i], now)) {
                mp__mtable_remove(w, i);
                changed = true;
            } else {
                i++;
            }
        }
    }

    /* Renewal: due, or free with any other write while the row is ours. */
    me = mp__mtable_find(w, a->me.addr, a->me.incarnation);
    bool due = a->lease_end == 0 || now + a->cfg.lease_ns - a->cfg.renew_ns >= a->lease_end;
    if (me >= 0 && w->rows[me].status != MP__MEMBER_DEAD &&
        (changed || due) && a->save_next != A_LEFT) {
        w->rows[me].heartbeat++;
        w->rows[me].lease_ns = a->cfg.lease_ns;
        a->save_renews = true;
        changed = true;
    }
    if (changed) w->version = nv;
    return changed;
}

/* ---- the round ------------------------------------------------------------ */

static void become_dead(mp__magent *a)
{
    if (a->state == A_DEAD) return;
    mp_env_log(a->env, MP_LOG_WARN,
               "membership: %s incarnation %u was declared dead; must rejoin", a->me.addr,
               a->me.incarnation);
    a->state = A_DEAD;
    a->lease_end = 0;
    a->npend = 0;
    if (a->leave_cb) {
        mp__magent_done_cb cb = a->leave_cb;
        a->leave_cb = NULL;
        cb(a->leave_ud, MP_ECLOSED);
    }
    if (a->cbs.on_dead) a->cbs.on_dead(a->cbs.ud);
}

static void finish_leave(mp__magent *a)
{
    a->state = A_LEFT;
    a->lease_end = 0;
    if (a->leave_cb) {
        mp__magent_done_cb cb = a->leave_cb;
        a->leave_cb = NULL;
        cb(a->leave_ud, 0);
    }
}

static void end_round(mp__magent *a, int status)
{
    a->busy = false;
    a->attempt = 0;
    if (status != 0) {
        mp_env_log(a->env, MP_LOG_WARN, "membership: round failed: %s", mp_strerror(status));
        /* Not again at once: a storage that is down should not be hammered
         * (a quarter of the renew period still leaves renewals slack). */
        uint64_t quiet = a->cfg.renew_ns / 4;
        if (quiet < a->cfg.backoff_ns * 8) quiet = a->cfg.backoff_ns * 8;
        a->quiet_until = mp_env_now(a->env) + quiet;
    }
    if (a->state == A_DEAD || a->state == A_LEFT || a->state == A_IDLE) return;
    if (a->again) {
        a->again = false;
        if (status == 0) {
            start_round(a);
            return;
        }
    }
    schedule(a);
}

static void drop_token(uint64_t tk)
{
    if (!g_tokens || !tk) return;
    mp_map_u64_remove(g_tokens, tk);
    if (mp_map_u64_count(g_tokens) == 0) { /* nothing left on this thread */
        mp_map_u64_free(g_tokens);
        free(g_tokens);
        g_tokens = NULL;
    }
}

/* A token for a's next operation (the storage's ud), or NULL. */
static void *new_ticket(mp__magent *a)
{
    assert(!a->tk);
    if (!g_tokens) {
        g_tokens = malloc(sizeof *g_tokens);
        if (!g_tokens || mp_map_u64_init(g_tokens, 16) != MP_OK) {
            free(g_tokens);
            g_tokens = NULL;
            return NULL;
        }
    }
    /* uintptr_t may be 32 bits: tokens stay below its range, never 0 */
    uint64_t tk = ++g_next_token & (uint64_t)(UINTPTR_MAX >> 1);
    if (tk == 0) tk = g_next_token = 1;
    if (mp_map_u64_put(g_tokens, tk, a, NULL) != MP_OK) {
        drop_token(0);
        return NULL;
    }
    a->tk = tk;
    return (void *)(uintptr_t)tk;
}

/* The agent of a completion, or NULL if it was freed meanwhile. */
static mp__magent *take_ticket(void *ud)
{
    uint64_t tk = (uint64_t)(uintptr_t)ud;
    mp__magent *a = g_tokens ? mp_map_u64_get(g_tokens, tk) : NULL;
    drop_token(tk);
    if (a) a->tk = 0;
    return a;
}

/* An operation that did not start: forget its token. */
static void cancel_ticket(mp__magent *a)
{
    drop_token(a->tk);
    a->tk = 0;
}

static void on_save(void *ud, int status, uint64_t new_etag);

static void on_load(void *ud, int status, const void *data, size_t len, uint64_t etag)
{
    mp__magent *a = take_ticket(ud);
    if (!a) return;
    if (status != 0) {
        a->stats.errors++;
        end_round(a, status);
        return;
    }
    a->stats.reads++;
    char why[200] = "";
    int rc = etag == 0 ? 0 : mp__mtable_decode(data, len, a->work, why, sizeof why);
    if (etag == 0) mp__mtable_init(a->work);
    if (rc != 0) {
        mp_env_log(a->env, MP_LOG_ERROR, "membership: stored table %s is unusable: %s",
                   a->key, why);
        end_round(a, rc);
        return;
    }
    uint64_t now = mp_env_now(a->env);
    memcpy(a->table, a->work, sizeof *a->table);
    a->etag = etag;
    a->have_table = true;
    observe(a, a->table, now);
    a->next_poll = now + a->cfg.poll_ns - mp_env_random_below(a->env, a->cfg.poll_ns / 10 + 1);

    /* Is this node still in the table? */
    int me = mp__mtable_find(a->table, a->me.addr, a->me.incarnation);
    const mp__mrow *mine = me >= 0 ? &a->table->rows[me] : NULL;
    if (a->state == A_LEAVING2 && mine && mine->status == MP__MEMBER_DEAD &&
        (mine->flags & MP__MEMBER_LEFT)) {
        finish_leave(a); /* our earlier save made it, its answer was lost */
        update_view(a, now);
        end_round(a, 0);
        return;
    }
    bool newer = false; /* a later incarnation of this address joined */
    for (uint32_t i = 0; i < a->table->count; i++)
        if (strcmp(a->table->rows[i].addr, a->me.addr) == 0 &&
            a->table->rows[i].incarnation > a->me.incarnation)
            newer = true;
    if ((row_written(a->state) && (!mine || mine->status == MP__MEMBER_DEAD)) ||
        (a->state == A_INSERT && ((mine && mine->status == MP__MEMBER_DEAD) || newer))) {
        become_dead(a);
        update_view(a, now);
        end_round(a, 0);
        return;
    }
    update_view(a, now);

    if (!modify(a, a->work, now)) {
        end_round(a, 0);
        return;
    }
    size_t need = mp__mtable_encoded_size(a->work);
    uint8_t *buf = malloc(need);
    if (!buf) {
        end_round(a, MP_ENOMEM);
        return;
    }
    rc = mp__mtable_encode(a->work, buf, need, why, sizeof why);
    if (rc < 0) {
        /* A change of ours broke a table rule: a bug, never saved. */
        mp_env_log(a->env, MP_LOG_ERROR, "membership: refusing to save an invalid table: %s",
                   why);
        free(buf);
        end_round(a, MP_EINTERNAL);
        return;
    }
    mp_storage_writer writer = {a->me.incarnation, 0};
    void *t = new_ticket(a);
    if (!t) {
        free(buf);
        end_round(a, MP_ENOMEM);
        return;
    }
    a->send_time = mp_env_now(a->env);
    rc = mp_storage_save(a->st, a->key, a->key_len, buf, need, a->etag, &writer, on_save, t);
    free(buf);
    if (rc != 0) {
        cancel_ticket(a);
        end_round(a, rc);
    }
}

static void do_load(mp__magent *a)
{
    void *t = new_ticket(a);
    if (!t) {
        end_round(a, MP_ENOMEM);
        return;
    }
    int rc = mp_storage_load(a->st, a->key, a->key_len, on_load, t);
    if (rc != 0) {
        cancel_ticket(a);
        end_round(a, rc);
    }
}

static void on_retry(void *ud)
{
    mp__magent *a = ud;
    a->retry_timer = 0;
    do_load(a);
}

static void on_save(void *ud, int status, uint64_t new_etag)
{
    mp__magent *a = take_ticket(ud);
    if (!a) return;
    if (status == MP_ECONFLICT) {
        a->stats.conflicts++;
        if (++a->attempt >= a->cfg.max_retries) {
            a->stats.gave_up++;
            end_round(a, MP_ECONFLICT);
            return;
        }
        unsigned shift = a->attempt - 1 < 10 ? a->attempt - 1 : 10;
        uint64_t d = a->cfg.backoff_ns << shift;
        /* Never wait so long that the lease could run out meanwhile. */
        uint64_t cap = a->cfg.renew_ns / 4 > a->cfg.backoff_ns ? a->cfg.renew_ns / 4
                                                                 : a->cfg.backoff_ns;
        if (d > cap) d = cap;
        d = d / 2 + mp_env_random_below(a->env, d / 2 + 1);
        a->retry_timer = mp_env_timer_start(a->env, d, on_retry, a);
        if (!a->retry_timer) end_round(a, MP_ENOMEM);
        return;
    }
    if (status != 0) {
        /* The save may or may not have been applied: extend nothing; the
         * next read tells. */
        a->stats.errors++;
        end_round(a, status);
        return;
    }
    a->stats.writes++;
    uint64_t now = mp_env_now(a->env);
    if (a->save_renews && serving_state(a->save_next)) {
        a->lease_end = a->send_time + a->cfg.lease_ns;
        a->stats.renewals++;
    } else if (a->save_renews && a->save_next == A_JOINING) {
        a->stats.renewals++; /* counts for others; serving starts when active */
        a->lease_end = a->send_time + a->cfg.lease_ns;
    }
    a->stats.declared_dead += a->save_declared;
    /* Consumed suspicions leave the queue; ones added meanwhile stay. */
    memmove(&a->pend[0], &a->pend[a->save_applied_susp],
            (a->npend - a->save_applied_susp) * sizeof a->pend[0]);
    a->npend -= a->save_applied_susp;
    memcpy(a->table, a->work, sizeof *a->table);
    a->etag = new_etag;
    observe(a, a->table, now);
    a_state before = a->state;
    a->state = a->save_next;
    if (before != A_ACTIVE && a->state == A_ACTIVE && a->cbs.on_joined)
        a->cbs.on_joined(a->cbs.ud, 0);
    if (a->state == A_JOINING || a->state == A_LEAVING2 ||
        (a->state == A_ACTIVE && a->leave_requested))
        a->again = true; /* next step */
    if (a->state == A_LEAVING2) a->lease_end = 0; /* stop serving before dead */
    if (a->state == A_LEFT) finish_leave(a);
    update_view(a, now);
    end_round(a, 0);
}

static void start_round(mp__magent *a)
{
    if (a->state == A_DEAD || a->state == A_LEFT || a->state == A_IDLE) return;
    if (a->leave_requested && a->state == A_ACTIVE && !a->busy) {
        a->state = A_LEAVING1;
        a->npend = 0;
    }
    if (a->busy) {
        a->again = true;
        return;
    }
    if (a->tick_timer) {
        mp_env_timer_cancel(a->env, a->tick_timer);
        a->tick_timer = 0;
    }
    a->busy = true;
    a->attempt = 0;
    do_load(a);
}

static void on_tick(void *ud)
{
    mp__magent *a = ud;
    a->tick_timer = 0;
    start_round(a);
}

/* Arm the tick for the next renewal or poll, whichever comes first. */
static void schedule(mp__magent *a)
{
    assert(!a->busy);
    uint64_t now = mp_env_now(a->env);
    uint64_t at = a->next_poll;
    if (row_written(a->state) && a->lease_end) {
        uint64_t renew_at = a->lease_end - a->cfg.lease_ns + a->cfg.renew_ns;
        if (renew_at < at) at = renew_at;
    }
    if (a->state == A_INSERT || (a->state == A_ACTIVE && a->npend))
        at = now; /* still work to do */
    if (at < a->quiet_until) at = a->quiet_until;
    if (a->tick_timer) mp_env_timer_cancel(a->env, a->tick_timer);
    a->tick_timer = mp_env_timer_start(a->env, at > now ? at - now : 0, on_tick, a);
}

/* ---- API ------------------------------------------------------------------ */

int mp__magent_create(mp_env *env, mp_storage *storage, const char *ns, const char *addr,
                      uint32_t incarnation, const char *const *types, size_t ntypes,
                      const mp__magent_config *cfg, const mp__magent_callbacks *cbs,
                      mp__magent **out)
{
    if (!out) return MP_EINVAL;
    *out = NULL;
    if (!env || !storage || !mp__member_addr_valid(addr) || incarnation == 0 ||
        ntypes > MP__MT_MAX_TYPES || (ntypes && !types))
        return MP_EINVAL;
    for (size_t k = 0; k < ntypes; k++) {
        if (!mp__member_type_valid(types[k])) return MP_EINVAL;
        for (size_t q = 0; q < k; q++)
            if (strcmp(types[q], types[k]) == 0) return MP_EINVAL;
    }
    mp__magent_config c;
    mp__magent_config_init(&c);
    if (cfg) {
        c = *cfg;
        if (!c.lease_ns) c.lease_ns = MP__MEMBERSHIP_DEFAULT_LEASE_NS;
        if (!c.renew_ns) c.renew_ns = c.lease_ns / 3;
        if (!c.poll_ns) c.poll_ns = MP__MEMBERSHIP_DEFAULT_POLL_NS;
        if (!c.votes) c.votes = MP__MEMBERSHIP_DEFAULT_VOTES;
        if (!c.max_retries) c.max_retries = MP__MEMBERSHIP_DEFAULT_RETRIES;
        if (!c.backoff_ns) c.backoff_ns = MP__MEMBERSHIP_DEFAULT_BACKOFF_NS;
    }
    if (c.renew_ns >= c.lease_ns) return MP_EINVAL;
    mp__magent *a = calloc(1, sizeof *a);
    if (!a) return MP_ENOMEM;
    int kl = mp__mtable_key(a->key, sizeof a->key, ns);
    if (kl < 0) {
        free(a);
        return MP_EINVAL;
    }
    a->key_len = (size_t)kl;
    a->table = malloc(sizeof *a->table);
    a->work = malloc(sizeof *a->work);
    a->obs = malloc(MP__MT_MAX_ROWS * sizeof *a->obs);
    a->obs_tmp = malloc(MP__MT_MAX_ROWS * sizeof *a->obs_tmp);
    a->view = malloc(MP__MT_MAX_ROWS * sizeof *a->view);
    a->view_tmp = malloc(MP__MT_MAX_ROWS * sizeof *a->view_tmp);
    if (!a->table || !a->work || !a->obs || !a->obs_tmp || !a->view || !a->view_tmp) {
        mp__magent_free(a);
        return MP_ENOMEM;
    }
    mp__mtable_init(a->table);
    a->env = env;
    a->st = storage;
    a->cfg = c;
    if (cbs) a->cbs = *cbs;
    snprintf(a->me.addr, sizeof a->me.addr, "%s", addr);
    a->me.incarnation = incarnation;
    a->me.lease_ns = c.lease_ns;
    a->me.ntypes = (uint8_t)ntypes;
    for (size_t k = 0; k < ntypes; k++)
        snprintf(a->me.types[k], sizeof a->me.types[k], "%s", types[k]);
    *out = a;
    return 0;
}

int mp__magent_join(mp__magent *a)
{
    if (!a) return MP_EINVAL;
    if (a->state == A_DEAD || a->state == A_LEFT) return MP_ECLOSED;
    if (a->state != A_IDLE) return MP_EALREADY;
    a->state = A_INSERT;
    start_round(a);
    return 0;
}

bool mp__magent_may_serve(const mp__magent *a, uint64_t now)
{
    return a && serving_state(a->state) && a->lease_end && now < a->lease_end;
}

uint64_t mp__magent_lease_end(const mp__magent *a) { return a ? a->lease_end : 0; }

int mp__membership_suspect(mp__magent *a, const char *addr, uint32_t incarnation)
{
    if (!a || !mp__member_addr_valid(addr) || incarnation == 0 ||
        is_self(a, addr, incarnation))
        return MP_EINVAL;
    if (a->state == A_DEAD || a->state == A_LEFT || a->state == A_LEAVING1 ||
        a->state == A_LEAVING2)
        return MP_ECLOSED;
    for (unsigned p = 0; p < a->npend; p++)
        if (a->pend[p].incarnation == incarnation && strcmp(a->pend[p].addr, addr) == 0)
            return 0;
    if (a->npend == MP__MT_MAX_SUSPICIONS) return MP_EQUEUEFULL;
    snprintf(a->pend[a->npend].addr, sizeof a->pend[0].addr, "%s", addr);
    a->pend[a->npend].incarnation = incarnation;
    a->npend++;
    start_round(a);
    return 0;
}

int mp__magent_leave(mp__magent *a, mp__magent_done_cb cb, void *ud)
{
    if (!a) return MP_EINVAL;
    if (a->state == A_DEAD) return MP_ECLOSED;
    if (a->state == A_LEAVING1 || a->state == A_LEAVING2 || a->state == A_LEFT)
        return MP_EALREADY;
    if (a->state == A_IDLE || a->leave_requested) return a->leave_requested ? MP_EALREADY : MP_EINVAL;
    /* Joining: the leave starts once active. During a round: once it ends. */
    a->leave_requested = true;
    a->leave_cb = cb;
    a->leave_ud = ud;
    start_round(a);
    return 0;
}

const mp__mtable *mp__magent_table(const mp__magent *a)
{
    return a && a->have_table ? a->table : NULL;
}

void mp__magent_get_stats(const mp__magent *a, mp__magent_stats *out)
{
    assert(a && out);
    *out = a->stats;
}

void mp__magent_free(mp__magent *a)
{
    if (!a) return;
    if (a->tick_timer) mp_env_timer_cancel(a->env, a->tick_timer);
    if (a->retry_timer) mp_env_timer_cancel(a->env, a->retry_timer);
    cancel_ticket(a); /* a completion arriving later finds nothing */
    free(a->table);
    free(a->work);
    free(a->obs);
    free(a->obs_tmp);
    free(a->view);
    free(a->view_tmp);
    free(a);
}

void mp__magent_free_now(mp__magent *a)
{
    if (!a) return;
    mp__magent_free(a); /* the same: the token table holds nothing of it */
}
