/*
 * The membership agent (src/membership/agent.c) against a shared table.
 *
 * Why a harness of its own instead of the simulator: the lease rule is
 * about clocks that run at different rates, and the simulator gives every
 * process the same clock. Here every node has an env whose clock runs at
 * its own rate and offset from the "true" time of one event queue, and all
 * nodes share one database (a storage provider on the same kv code as the
 * memory provider) whose operations take effect at a random moment between
 * request and answer, as a real database's do. A node can be paused: none
 * of its timers or storage answers run meanwhile, while its clock goes on
 * (the database still applies what it had sent).
 *
 * The property checked on many random schedules (test_lease_property):
 * when any member drops X from its list of members that may be serving
 * (the moment it would take X's actors over), X is not allowed to serve by
 * its own clock at that true time (mp__magent_may_serve), and never is
 * again — for every clock rate deviation below margin / (2 lease + margin).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "membership/agent.h"
#include "moonpool/sim.h"
#include "membership/table.h"
#include "moonpool/status.h"
#include "storage/kv.h"
#include "storage/storage_internal.h"
#include "util/prng.h"

/* ---- the harness ---------------------------------------------------------- */

#define MAXN 6
#define MAXEV 4096
#define MAXAGENTS 256
#define DB_NODE (-1)

typedef struct world world;

typedef struct denv {
    mp_env base; /* first */
    world *w;
    int node;
    double rate;     /* local ns per true ns */
    uint64_t offset; /* local time at true 0 */
    uint64_t paused_until;
    uint64_t cut_until; /* until then its storage ops fail, not applied */
    mp_prng rng;
    char name[16];
} denv;

typedef struct ev {
    uint64_t t, seq;
    int node;
    mp_timer_id id;
    void (*cb)(void *);
    void *ud;
    bool live;
} ev;

typedef struct hstore {
    mp_storage base; /* first */
    world *w;
    int node;
    int inflight;
    bool dead;
} hstore;

typedef struct agent_rec {
    mp__magent *a;
    int node;
    uint32_t inc;
    bool dropped_by_someone; /* some member took it over */
    bool dead_reported;
    bool left;
    size_t last_n; /* this agent's last view */
    char last[MP__MT_MAX_ROWS][MP_ADDR_MAX + 12];
} agent_rec;

struct world {
    uint64_t now, seq;
    mp_timer_id next_id;
    ev evs[MAXEV];
    size_t nev;
    mp_prng rng;
    mp_kv kv;
    int n;
    denv env[MAXN];
    hstore *st[MAXN];
    agent_rec agents[MAXAGENTS];
    int nagents;
    int current[MAXN]; /* agent index of each node's live incarnation */
    mp__magent_config cfg;
    /* faults */
    uint64_t lat_min, lat_max; /* database latency, each way */
    double fail_p;             /* a storage op fails (maybe applied) */
    bool rejoin;               /* restart a dead node as a new incarnation */
    /* findings */
    int violations;
    int drops, deaths, leaves;
    int liveness; /* members not serving or not agreeing after the quiet period */
    char first_violation[300];
};

static uint64_t local_now(const denv *e, uint64_t t)
{
    return e->offset + (uint64_t)((double)t * e->rate);
}

static uint64_t d_now(mp_env *env) { return local_now((denv *)env, ((denv *)env)->w->now); }

static mp_timer_id push(world *w, uint64_t t, int node, void (*cb)(void *), void *ud)
{
    assert_true(w->nev < MAXEV);
    ev *e = &w->evs[w->nev++];
    e->t = t;
    e->seq = w->seq++;
    e->node = node;
    e->id = ++w->next_id;
    e->cb = cb;
    e->ud = ud;
    e->live = true;
    return e->id;
}

static mp_timer_id d_timer_start(mp_env *env, uint64_t delay, mp_timer_cb cb, void *ud)
{
    denv *e = (denv *)env;
    uint64_t td = (uint64_t)((double)delay / e->rate) + 1; /* never early */
    return push(e->w, e->w->now + td, e->node, cb, ud);
}

static int d_timer_cancel(mp_env *env, mp_timer_id id)
{
    world *w = ((denv *)env)->w;
    for (size_t i = 0; i < w->nev; i++)
        if (w->evs[i].id == id && w->evs[i].live) {
            w->evs[i].live = false;
            return 0;
        }
    return MP_ENOTFOUND;
}

static int d_defer(mp_env *env, mp_defer_cb cb, void *ud)
{
    return d_timer_start(env, 0, cb, ud) ? 0 : MP_ENOMEM;
}

static uint64_t d_random(mp_env *env) { return mp_prng_next(&((denv *)env)->rng); }

static int d_listen(mp_env *env, const char *a, mp_accept_cb cb, void *ud, mp_listener **o)
{
    (void)env, (void)a, (void)cb, (void)ud, (void)o;
    return MP_EINVAL;
}
static int d_connect(mp_env *env, const char *a, mp_connect_cb cb, void *ud)
{
    (void)env, (void)a, (void)cb, (void)ud;
    return MP_EINVAL;
}

static const mp_env_ops d_ops = {
    .now_ns = d_now,
    .timer_start = d_timer_start,
    .timer_cancel = d_timer_cancel,
    .defer = d_defer,
    .listen = d_listen,
    .connect = d_connect,
    .random_u64 = d_random,
};

/* Pop and run the next event; false when none. A paused node's events
 * wait for the end of the pause, in their order. */
static bool step(world *w)
{
    for (;;) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < w->nev; i++) {
            if (!w->evs[i].live) continue;
            if (best == SIZE_MAX || w->evs[i].t < w->evs[best].t ||
                (w->evs[i].t == w->evs[best].t && w->evs[i].seq < w->evs[best].seq))
                best = i;
        }
        if (best == SIZE_MAX) {
            w->nev = 0;
            return false;
        }
        ev e = w->evs[best];
        w->evs[best] = w->evs[--w->nev];
        if (e.t > w->now) w->now = e.t;
        if (e.node >= 0 && w->env[e.node].paused_until > w->now) {
            e.t = w->env[e.node].paused_until;
            w->evs[w->nev++] = e; /* same seq: keeps its order */
            continue;
        }
        e.cb(e.ud);
        return true;
    }
}

static void run_until(world *w, uint64_t t);

/* ---- the shared database ---------------------------------------------------- */

typedef struct opctx {
    hstore *h;
    mp_storage_op *op;
} opctx;

static void h_release(hstore *h)
{
    if (h->inflight == 0 && (h->dead || h->base.closing)) {
        if (h->base.closing && !h->dead)
            mp_storage_finish_close_(&h->base);
        else
            free(h);
    }
}

static void h_complete(void *ud)
{
    opctx *c = ud;
    hstore *h = c->h;
    h->inflight--;
    if (h->dead)
        mp_storage_op_free_(&h->base, c->op);
    else
        mp_storage_op_complete_(&h->base, c->op);
    free(c);
    h_release(h);
}

static void check_leave_order(world *w, const mp_storage_op *op);

static void h_apply(void *ud)
{
    opctx *c = ud;
    world *w = c->h->w;
    mp_storage_op *op = c->op;
    bool fail = w->fail_p > 0 && mp_prng_chance(&w->rng, w->fail_p);
    bool cut = c->h->node >= 0 && w->env[c->h->node].cut_until > w->now;
    if (cut || (fail && mp_prng_chance(&w->rng, 0.5))) {
        op->status = MP_ESTORAGE; /* not applied */
    } else {
        if (op->kind == MP_SOP_SAVE) check_leave_order(w, op);
        mp_kv_apply(&w->kv, op);
        if (fail && op->status == 0) { /* applied, but the answer is lost */
            mp_storage_op_reset_result_(op);
            op->status = MP_ESTORAGE;
        }
    }
    uint64_t lat = w->lat_min + mp_prng_below(&w->rng, w->lat_max - w->lat_min + 1);
    push(w, w->now + lat, c->h->node, h_complete, c);
}

static int h_submit(mp_storage *s, mp_storage_op *op)
{
    hstore *h = (hstore *)s;
    world *w = h->w;
    opctx *c = malloc(sizeof *c);
    if (!c) return MP_ENOMEM;
    c->h = h;
    c->op = op;
    h->inflight++;
    uint64_t lat = w->lat_min + mp_prng_below(&w->rng, w->lat_max - w->lat_min + 1);
    push(w, w->now + lat, DB_NODE, h_apply, c);
    return 0;
}

static void h_close(mp_storage *s) { h_release((hstore *)s); }

static void h_free_now(mp_storage *s)
{
    hstore *h = (hstore *)s;
    h->dead = true;
    h_release(h);
}

static const mp_storage_vtbl h_vtbl = {"harness", h_submit, h_close, h_free_now};

/* ---- nodes and agents ------------------------------------------------------- */

static void node_addr(int node, char *buf, size_t cap)
{
    snprintf(buf, cap, "127.0.0.1:%d", 7001 + node);
}

static agent_rec *rec_of(world *w, const char *addr, uint32_t inc)
{
    for (int i = 0; i < w->nagents; i++) {
        char a[32];
        node_addr(w->agents[i].node, a, sizeof a);
        if (w->agents[i].inc == inc && strcmp(a, addr) == 0) return &w->agents[i];
    }
    return NULL;
}

static bool serving_now(world *w, agent_rec *r)
{
    denv *e = &w->env[r->node];
    return mp__magent_may_serve(r->a, local_now(e, w->now));
}

static void violation(world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violation(world *w, const char *fmt, ...)
{
    if (w->violations++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->first_violation, sizeof w->first_violation, fmt, ap);
        va_end(ap);
    }
}

typedef struct cbctx {
    world *w;
    int idx;
} cbctx;
static cbctx ctxs[MAXAGENTS];

static void on_members(void *ud, const mp__member_view *list, size_t n)
{
    cbctx *c = ud;
    world *w = c->w;
    agent_rec *me = &w->agents[c->idx];
    /* Every member that left this view: taking it over must be safe. */
    for (size_t i = 0; i < me->last_n; i++) {
        bool still = false;
        for (size_t j = 0; j < n && !still; j++) {
            char k[MP_ADDR_MAX + 12];
            snprintf(k, sizeof k, "%s/%u", list[j].addr, list[j].incarnation);
            still = strcmp(k, me->last[i]) == 0;
        }
        if (still) continue;
        char addr[MP_ADDR_MAX + 1];
        unsigned inc = 0;
        char *slash = strrchr(me->last[i], '/');
        snprintf(addr, sizeof addr, "%.*s", (int)(slash - me->last[i]), me->last[i]);
        inc = (unsigned)strtoul(slash + 1, NULL, 10);
        agent_rec *x = rec_of(w, addr, inc);
        if (!x || x == me) continue;
        w->drops++;
        x->dropped_by_someone = true;
        if (serving_now(w, x))
            violation(w, "t=%.3fs: node %d inc %u dropped %s/%u which may still serve "
                      "(lease end %llu, its now %llu)",
                      (double)w->now / 1e9, me->node, me->inc, addr, inc,
                      (unsigned long long)mp__magent_lease_end(x->a),
                      (unsigned long long)local_now(&w->env[x->node], w->now));
    }
    me->last_n = n;
    for (size_t j = 0; j < n; j++)
        snprintf(me->last[j], sizeof me->last[j], "%s/%u", list[j].addr, list[j].incarnation);
}

static int add_agent(world *w, int node, uint32_t inc);

typedef struct rejoin_ctx {
    world *w;
    int node;
    uint32_t inc;
} rejoin_ctx;
static rejoin_ctx rejoins[MAXAGENTS];

static void do_rejoin(void *ud)
{
    rejoin_ctx *r = ud;
    if (r->w->nagents >= MAXAGENTS - 1) return;
    int i = add_agent(r->w, r->node, r->inc);
    assert_int_equal(mp__magent_join(r->w->agents[i].a), 0);
}

static void on_dead(void *ud)
{
    cbctx *c = ud;
    world *w = c->w;
    agent_rec *me = &w->agents[c->idx];
    me->dead_reported = true;
    w->deaths++;
    if (w->rejoin) {
        rejoin_ctx *r = &rejoins[c->idx];
        r->w = w;
        r->node = me->node;
        r->inc = me->inc + 1;
        mp_env_timer_start(&w->env[me->node].base, 100 * MP_NS_PER_MS, do_rejoin, r);
    }
}

static int add_agent(world *w, int node, uint32_t inc)
{
    int i = w->nagents++;
    assert_true(i < MAXAGENTS);
    agent_rec *r = &w->agents[i];
    memset(r, 0, sizeof *r);
    r->node = node;
    r->inc = inc;
    ctxs[i].w = w;
    ctxs[i].idx = i;
    char addr[32];
    node_addr(node, addr, sizeof addr);
    const char *types[] = {"Bank", "Counter"};
    mp__magent_callbacks cbs = {on_members, on_dead, NULL, &ctxs[i]};
    assert_int_equal(mp__magent_create(&w->env[node].base, &w->st[node]->base, "test", addr,
                                       inc, types, 2, &w->cfg, &cbs, &r->a),
                     0);
    w->current[node] = i;
    return i;
}

/* When X writes its own row dead (graceful leave), it must already have
 * stopped serving. Checked as the database applies the save. */
static void check_leave_order(world *w, const mp_storage_op *op)
{
    mp__mtable *t = malloc(sizeof *t);
    assert_non_null(t);
    if (mp__mtable_decode(op->data, op->len, t, NULL, 0) == 0) {
        for (uint32_t i = 0; i < t->count; i++) {
            const mp__mrow *r = &t->rows[i];
            if (r->status != MP__MEMBER_DEAD || !(r->flags & MP__MEMBER_LEFT)) continue;
            agent_rec *x = rec_of(w, r->addr, r->incarnation);
            if (x && x->inc == op->writer.incarnation && serving_now(w, x))
                violation(w, "%s/%u wrote itself dead while still serving", r->addr,
                          r->incarnation);
        }
    }
    free(t);
}

static world *world_new(uint64_t seed, int n, const mp__magent_config *cfg, double drift)
{
    world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    mp_prng_seed(&w->rng, seed);
    assert_int_equal(mp_kv_init(&w->kv), 0);
    w->n = n;
    w->lat_min = 1 * MP_NS_PER_MS;
    w->lat_max = 20 * MP_NS_PER_MS;
    w->cfg = *cfg;
    for (int i = 0; i < n; i++) {
        denv *e = &w->env[i];
        e->base.ops = &d_ops;
        e->base.log_level = MP_LOG_OFF;
        snprintf(e->name, sizeof e->name, "n%d", i);
        e->base.name = e->name;
        e->w = w;
        e->node = i;
        e->rate = 1.0 + drift * (2.0 * mp_prng_unit(&w->rng) - 1.0);
        e->offset = mp_prng_below(&w->rng, 1000ull * MP_NS_PER_SEC);
        mp_prng_seed(&e->rng, seed * 131 + (uint64_t)i);
        hstore *h = calloc(1, sizeof *h);
        assert_non_null(h);
        mp_storage_init_(&h->base, &h_vtbl, &e->base);
        h->w = w;
        h->node = i;
        w->st[i] = h;
        w->current[i] = -1;
    }
    return w;
}

static void world_free(world *w)
{
    for (int i = 0; i < w->n; i++) w->env[i].paused_until = 0;
    for (int i = 0; i < w->nagents; i++) mp__magent_free(w->agents[i].a);
    while (step(w)) {
    }
    for (int i = 0; i < w->n; i++) mp_storage_close(&w->st[i]->base, NULL, NULL);
    while (step(w)) {
    }
    mp_kv_free(&w->kv);
    free(w);
}

static void run_until(world *w, uint64_t t)
{
    for (;;) {
        uint64_t next = UINT64_MAX;
        for (size_t i = 0; i < w->nev; i++)
            if (w->evs[i].live && w->evs[i].t < next) next = w->evs[i].t;
        if (next > t) break;
        step(w);
        /* A member someone took over must never serve again. */
        for (int i = 0; i < w->nagents; i++)
            if (w->agents[i].dropped_by_someone && serving_now(w, &w->agents[i]))
                violation(w, "t=%.3fs: node %d inc %u serves after being taken over",
                          (double)w->now / 1e9, w->agents[i].node, w->agents[i].inc);
    }
    if (w->now < t) w->now = t;
}

/* The stored table (decoded), or an empty one. Caller frees. */
static mp__mtable *stored(world *w)
{
    mp__mtable *t = malloc(sizeof *t);
    assert_non_null(t);
    mp__mtable_init(t);
    char key[64];
    int kl = mp__mtable_key(key, sizeof key, "test");
    mp_storage_op *op = calloc(1, sizeof *op + (size_t)kl + 1);
    op->key = (char *)(op + 1);
    memcpy(op->key, key, (size_t)kl + 1);
    op->key_len = (size_t)kl;
    op->kind = MP_SOP_LOAD;
    mp_kv_apply(&w->kv, op);
    if (op->status == 0 && op->etag != 0) {
        char why[200] = "";
        int rc = mp__mtable_decode(op->out_data, op->out_len, t, why, sizeof why);
        if (rc) fail_msg("stored table: %s", why);
    }
    free(op->out_data);
    free(op);
    return t;
}

static const mp__mrow *row(const mp__mtable *t, int node, uint32_t inc)
{
    char a[32];
    node_addr(node, a, sizeof a);
    int i = mp__mtable_find(t, a, inc);
    return i < 0 ? NULL : &t->rows[i];
}

static mp__magent_config fast_cfg(void)
{
    mp__magent_config c;
    mp__magent_config_init(&c);
    c.lease_ns = 3 * MP_NS_PER_SEC;
    c.renew_ns = 1 * MP_NS_PER_SEC;
    c.margin_ns = 600 * MP_NS_PER_MS;
    c.poll_ns = 500 * MP_NS_PER_MS;
    return c;
}

#define SEC MP_NS_PER_SEC

/* ---- tests ------------------------------------------------------------------ */

/* Five agents join at the same instant on one table and keep renewing:
 * conflicts happen, and no update is lost (each row's heartbeat equals the
 * renewals its owner saw accepted). */
static void test_concurrent_join_no_lost_update(void **state)
{
    (void)state;
    mp__magent_config cfg = fast_cfg();
    world *w = world_new(1, 5, &cfg, 0.0);
    w->lat_min = 5 * MP_NS_PER_MS;
    w->lat_max = 50 * MP_NS_PER_MS;
    for (int i = 0; i < 5; i++) add_agent(w, i, 1);
    for (int i = 0; i < 5; i++) assert_int_equal(mp__magent_join(w->agents[i].a), 0);
    assert_int_equal(mp__magent_join(w->agents[0].a), MP_EALREADY);
    run_until(w, 20 * SEC);
    mp__mtable *t = stored(w);
    assert_int_equal(t->count, 5);
    uint64_t conflicts = 0;
    for (int i = 0; i < 5; i++) {
        const mp__mrow *r = row(t, i, 1);
        assert_non_null(r);
        assert_int_equal(r->status, MP__MEMBER_ACTIVE);
        mp__magent_stats st;
        mp__magent_get_stats(w->agents[i].a, &st);
        assert_int_equal(r->heartbeat, st.renewals);
        assert_true(st.renewals >= 15); /* about one per second */
        conflicts += st.conflicts;
        assert_true(serving_now(w, &w->agents[i]));
        assert_int_equal(w->agents[i].last_n, 5); /* everyone sees everyone */
    }
    assert_true(conflicts > 0);
    assert_int_equal(w->violations, 0);
    assert_int_equal(w->deaths, 0);
    printf("5 agents, 20 s: %llu conflicts, version %llu\n", (unsigned long long)conflicts,
           (unsigned long long)t->version);
    free(t);
    world_free(w);
}

/* Storage answers lost (applied or not) and errors: still no lost update
 * and no false death. */
static void test_storage_faults(void **state)
{
    (void)state;
    mp__magent_config cfg = fast_cfg();
    world *w = world_new(2, 3, &cfg, 0.0);
    w->fail_p = 0.05;
    for (int i = 0; i < 3; i++) add_agent(w, i, 1);
    for (int i = 0; i < 3; i++) assert_int_equal(mp__magent_join(w->agents[i].a), 0);
    run_until(w, 30 * SEC);
    mp__mtable *t = stored(w);
    for (int i = 0; i < 3; i++) {
        const mp__mrow *r = row(t, i, 1);
        assert_non_null(r);
        assert_int_equal(r->status, MP__MEMBER_ACTIVE);
        mp__magent_stats st;
        mp__magent_get_stats(w->agents[i].a, &st);
        assert_true(st.errors > 0);
        /* Lost answers of applied saves: heartbeat >= accepted renewals. */
        assert_true(r->heartbeat >= st.renewals);
    }
    assert_int_equal(w->violations, 0);
    free(t);
    world_free(w);
}

/* Votes: one suspicion of three members is not enough; two are; the
 * suspect learns it is dead and reports it; the others keep it in their
 * list until its lease expired by their clock. */
static void test_votes(void **state)
{
    (void)state;
    mp__magent_config cfg = fast_cfg();
    world *w = world_new(3, 3, &cfg, 0.0);
    for (int i = 0; i < 3; i++) add_agent(w, i, 1);
    for (int i = 0; i < 3; i++) assert_int_equal(mp__magent_join(w->agents[i].a), 0);
    run_until(w, 3 * SEC);
    assert_int_equal(mp__membership_suspect(w->agents[0].a, "127.0.0.1:7003", 1), 0);
    run_until(w, 5 * SEC);
    mp__mtable *t = stored(w);
    assert_int_equal(row(t, 2, 1)->status, MP__MEMBER_ACTIVE);
    assert_int_equal(row(t, 2, 1)->nsusp, 1);
    free(t);
    assert_int_equal(mp__membership_suspect(w->agents[1].a, "127.0.0.1:7003", 1), 0);
    uint64_t t0 = w->now;
    run_until(w, t0 + 300 * MP_NS_PER_MS);
    t = stored(w);
    assert_int_equal(row(t, 2, 1)->status, MP__MEMBER_DEAD);
    assert_false(row(t, 2, 1)->flags & MP__MEMBER_LEFT);
    free(t);
    assert_int_equal(w->agents[0].last_n, 3); /* lease not expired yet */
    run_until(w, t0 + 2 * SEC);
    assert_true(w->agents[2].dead_reported);
    assert_false(serving_now(w, &w->agents[2]));
    run_until(w, t0 + 6 * SEC);
    assert_int_equal(w->agents[0].last_n, 2);
    assert_int_equal(w->agents[1].last_n, 2);
    assert_int_equal(w->violations, 0);
    /* Bad reports. */
    assert_int_equal(mp__membership_suspect(w->agents[0].a, "127.0.0.1:7001", 1), MP_EINVAL);
    assert_int_equal(mp__membership_suspect(w->agents[0].a, "nonsense", 1), MP_EINVAL);
    assert_int_equal(mp__membership_suspect(w->agents[0].a, "127.0.0.1:7002", 0), MP_EINVAL);
    assert_int_equal(mp__membership_suspect(w->agents[2].a, "127.0.0.1:7001", 1), MP_ECLOSED);
    world_free(w);
}

/* A suspicion counts only while the suspect did not renew more than the
 * window since: two suspicions far apart in time do not kill a member that
 * keeps renewing. */
static void test_votes_age_out(void **state)
{
    (void)state;
    mp__magent_config cfg = fast_cfg();
    world *w = world_new(9, 3, &cfg, 0.0);
    for (int i = 0; i < 3; i++) add_agent(w, i, 1);
    for (int i = 0; i < 3; i++) assert_int_equal(mp__magent_join(w->agents[i].a), 0);
    run_until(w, 3 * SEC);
    assert_int_equal(mp__membership_suspect(w->agents[0].a, "127.0.0.1:7003", 1), 0);
    run_until(w, 8 * SEC); /* C renews about 5 times */
    assert_int_equal(mp__membership_suspect(w->agents[1].a, "127.0.0.1:7003", 1), 0);
    run_until(w, 12 * SEC);
    mp__mtable *t = stored(w);
    assert_int_equal(row(t, 2, 1)->status, MP__MEMBER_ACTIVE);
    assert_true(row(t, 2, 1)->nsusp <= 1); /* the old one was dropped */
    free(t);
    assert_false(w->agents[2].dead_reported);
    world_free(w);
}

/* With two members, the single other one is enough ("all other active
 * members if fewer than the votes needed"). */
static void test_votes_two_members(void **state)
{
    (void)state;
    mp__magent_config cfg = fast_cfg();
    world *w = world_new(4, 2, &cfg, 0.0);
    for (int i = 0; i < 2; i++) add_agent(w, i, 1);
    for (int i = 0; i < 2; i++) assert_int_equal(mp__magent_join(w->agents[i].a), 0);
    run_until(w, 3 * SEC);
    assert_int_equal(mp__membership_suspect(w->agents[0].a, "127.0.0.1:7002", 1), 0);
    run_until(w, 4 * SEC);
    mp__mtable *t = stored(w);
    assert_int_equal(row(t, 1, 1)->status, MP__MEMBER_DEAD);
    free(t);
    run_until(w, 10 * SEC);
    assert_true(w->agents[1].dead_reported);
    assert_int_equal(w->agents[0].last_n, 1);
    assert_int_equal(w->violations, 0);
    world_free(w);
}

/* A node paused longer than its lease: it is not allowed to serve once its
 * lease ran out by its own clock (while still paused), the others declare
 * it dead only later, and on waking it learns it is dead and rejoins as
 * incarnation 2 (the harness's reaction to on_dead). */
static void test_pause_learns_dead_and_rejoins(void **state)
{
    (void)state;
    mp__magent_config cfg = fast_cfg();
    world *w = world_new(5, 3, &cfg, 0.0);
    w->rejoin = true;
    for (int i = 0; i < 3; i++) add_agent(w, i, 1);
    for (int i = 0; i < 3; i++) assert_int_equal(mp__magent_join(w->agents[i].a), 0);
    run_until(w, 3 * SEC);
    agent_rec *c = &w->agents[2];
    assert_true(serving_now(w, c));
    w->env[2].paused_until = w->now + 10 * SEC;
    uint64_t t0 = w->now;
    /* Lease 3 s: by t0 + 3 s it must have stopped, paused or not. */
    run_until(w, t0 + 3 * SEC);
    assert_false(serving_now(w, c));
    run_until(w, t0 + 9 * SEC);
    mp__mtable *t = stored(w);
    assert_int_equal(row(t, 2, 1)->status, MP__MEMBER_DEAD);
    free(t);
    assert_false(c->dead_reported); /* still paused: it does not know */
    assert_int_equal(w->agents[0].last_n, 2);
    run_until(w, t0 + 12 * SEC);
    assert_true(c->dead_reported);
    run_until(w, t0 + 20 * SEC);
    t = stored(w);
    assert_non_null(row(t, 2, 2));
    assert_int_equal(row(t, 2, 2)->status, MP__MEMBER_ACTIVE);
    assert_int_equal(row(t, 2, 1)->status, MP__MEMBER_DEAD); /* never resurrected */
    free(t);
    agent_rec *c2 = &w->agents[w->current[2]];
    assert_int_equal(c2->inc, 2);
    assert_true(serving_now(w, c2));
    for (int i = 0; i < 3; i++) assert_int_equal(w->agents[w->current[i]].last_n, 3);
    assert_int_equal(w->violations, 0);
    world_free(w);
}

/* A node cut off from the database (not from time): its renewals fail,
 * so it stops serving when its lease runs out by its own clock, before the
 * others may take over; once the database is back it learns it is dead and
 * rejoins. */
static void test_cut_from_database(void **state)
{
    (void)state;
    mp__magent_config cfg = fast_cfg();
    world *w = world_new(12, 3, &cfg, 0.0);
    w->rejoin = true;
    for (int i = 0; i < 3; i++) add_agent(w, i, 1);
    for (int i = 0; i < 3; i++) assert_int_equal(mp__magent_join(w->agents[i].a), 0);
    run_until(w, 3 * SEC);
    agent_rec *c = &w->agents[2];
    uint64_t t0 = w->now;
    w->env[2].cut_until = t0 + 10 * SEC;
    run_until(w, t0 + 3 * SEC + 1);
    assert_false(serving_now(w, c)); /* lease 3 s: over, by its own clock */
    run_until(w, t0 + 9 * SEC);
    assert_int_equal(w->agents[0].last_n, 2); /* taken over meanwhile */
    assert_false(c->dead_reported);          /* it cannot read the table */
    mp__magent_stats st;
    mp__magent_get_stats(c->a, &st);
    assert_true(st.errors > 0);
    printf("cut from the database for 9 s: %llu failed reads\n", (unsigned long long)st.errors);
    assert_true(st.errors < 60); /* failed rounds are spaced, not hammered */
    run_until(w, t0 + 20 * SEC);
    assert_true(c->dead_reported);
    agent_rec *c2 = &w->agents[w->current[2]];
    assert_int_equal(c2->inc, 2);
    assert_true(serving_now(w, c2));
    assert_int_equal(w->violations, 0);
    world_free(w);
}

static int leave_status = 1;
static void on_left(void *ud, int status)
{
    (void)ud;
    leave_status = status;
}

/* Graceful leave: shutting_down, then dead with the flag "left", written
 * only after the node stopped serving (checked as the database applies
 * it); the others drop it at their next read, without waiting for its
 * lease. */
static void test_graceful_leave(void **state)
{
    (void)state;
    mp__magent_config cfg = fast_cfg();
    world *w = world_new(6, 3, &cfg, 0.0);
    for (int i = 0; i < 3; i++) add_agent(w, i, 1);
    for (int i = 0; i < 3; i++) assert_int_equal(mp__magent_join(w->agents[i].a), 0);
    run_until(w, 3 * SEC);
    leave_status = 1;
    uint64_t t0 = w->now;
    assert_int_equal(mp__magent_leave(w->agents[1].a, on_left, NULL), 0);
    assert_int_equal(mp__magent_leave(w->agents[1].a, on_left, NULL), MP_EALREADY);
    assert_int_equal(mp__membership_suspect(w->agents[1].a, "127.0.0.1:7001", 1), MP_ECLOSED);
    run_until(w, t0 + 500 * MP_NS_PER_MS);
    assert_int_equal(leave_status, 0);
    assert_false(serving_now(w, &w->agents[1]));
    mp__mtable *t = stored(w);
    assert_int_equal(row(t, 1, 1)->status, MP__MEMBER_DEAD);
    assert_int_equal(row(t, 1, 1)->flags, MP__MEMBER_LEFT);
    free(t);
    run_until(w, t0 + 1500 * MP_NS_PER_MS); /* a poll, far less than the lease */
    assert_int_equal(w->agents[0].last_n, 2);
    assert_int_equal(w->agents[2].last_n, 2);
    assert_false(w->agents[1].dead_reported);
    assert_int_equal(w->violations, 0);
    world_free(w);
}

/* A stored table that does not decode is never overwritten: the agents
 * refuse to join and say why. */
static void test_corrupt_table_not_overwritten(void **state)
{
    (void)state;
    mp__magent_config cfg = fast_cfg();
    world *w = world_new(7, 2, &cfg, 0.0);
    char key[64];
    int kl = mp__mtable_key(key, sizeof key, "test");
    mp_storage_op *op = calloc(1, sizeof *op + (size_t)kl + 1 + 8);
    op->key = (char *)(op + 1);
    memcpy(op->key, key, (size_t)kl + 1);
    op->key_len = (size_t)kl;
    op->kind = MP_SOP_SAVE;
    op->data = op->key + kl + 1;
    memcpy(op->data, "garbage!", 8);
    op->len = 8;
    mp_kv_apply(&w->kv, op);
    assert_int_equal(op->status, 0);
    free(op);
    for (int i = 0; i < 2; i++) add_agent(w, i, 1);
    for (int i = 0; i < 2; i++) assert_int_equal(mp__magent_join(w->agents[i].a), 0);
    run_until(w, 5 * SEC);
    for (int i = 0; i < 2; i++) {
        mp__magent_stats st;
        mp__magent_get_stats(w->agents[i].a, &st);
        assert_true(st.reads > 0);
        assert_int_equal(st.writes, 0);
        assert_false(serving_now(w, &w->agents[i]));
    }
    world_free(w);
}

static void test_create_args(void **state)
{
    (void)state;
    mp__magent_config cfg = fast_cfg();
    world *w = world_new(8, 1, &cfg, 0.0);
    mp_env *env = &w->env[0].base;
    mp_storage *st = &w->st[0]->base;
    mp__magent *a = NULL;
    const char *types[] = {"Bank", "Bank"};
    const char *bad[] = {"Ba/nk"};
    assert_int_equal(mp__magent_create(env, st, "test", "x", 1, NULL, 0, NULL, NULL, &a),
                     MP_EINVAL);
    assert_int_equal(mp__magent_create(env, st, "test", "127.0.0.1:1", 0, NULL, 0, NULL, NULL, &a),
                     MP_EINVAL);
    assert_int_equal(mp__magent_create(env, st, "te/st", "127.0.0.1:1", 1, NULL, 0, NULL, NULL, &a),
                     MP_EINVAL);
    assert_int_equal(mp__magent_create(env, st, "test", "127.0.0.1:1", 1, types, 2, NULL, NULL, &a),
                     MP_EINVAL);
    assert_int_equal(mp__magent_create(env, st, "test", "127.0.0.1:1", 1, bad, 1, NULL, NULL, &a),
                     MP_EINVAL);
    assert_int_equal(mp__magent_create(env, st, "test", "127.0.0.1:1", 1, types,
                                       MP__MT_MAX_TYPES + 1, NULL, NULL, &a),
                     MP_EINVAL);
    mp__magent_config c2 = cfg;
    c2.renew_ns = c2.lease_ns;
    assert_int_equal(mp__magent_create(env, st, "test", "127.0.0.1:1", 1, types, 1, &c2, NULL, &a),
                     MP_EINVAL);
    assert_null(a);
    assert_int_equal(mp__magent_create(env, st, "test", "127.0.0.1:1", 1, types, 1, NULL, NULL, &a),
                     0);
    assert_false(mp__magent_may_serve(a, 0));
    assert_int_equal(mp__magent_leave(a, NULL, NULL), MP_EINVAL); /* never joined */
    assert_null(mp__magent_table(a));
    mp__magent_free(a);
    world_free(w);
}

/* ---- on the simulator, with the memory and the simulated-disk providers --- */

typedef struct simw {
    mp_sim *sim;
    int db_pid;
    bool use_sim_storage;
    mp__magent_config cfg;
    int joined;
} simw;

typedef struct simnode {
    simw *w;
    char addr[32];
    mp__magent *a;
} simnode;

static int simdb_boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    (void)inc;
    simw *w = arg;
    mp_storage *s = w->use_sim_storage
                        ? mp_storage_sim_create(env, mp_sim_process_disk(w->sim, w->db_pid), NULL)
                        : mp_storage_memory_create(env);
    if (!s) return MP_ENOMEM;
    *state = s;
    return 0;
}
static void simdb_teardown(void *state) { mp_storage_free_now(state); }
static const mp_sim_process_ops simdb_ops = {simdb_boot, simdb_teardown, NULL};

static void simnode_joined(void *ud, int status)
{
    simnode *n = ud;
    assert_int_equal(status, 0);
    n->w->joined++;
}

static int simnode_boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    simnode *n = arg;
    mp_storage *st = mp_sim_process_state(n->w->sim, n->w->db_pid);
    const char *types[] = {"Bank"};
    mp__magent_callbacks cbs = {NULL, NULL, simnode_joined, n};
    int rc = mp__magent_create(env, st, "simt", n->addr, inc, types, 1, &n->w->cfg, &cbs, &n->a);
    if (rc) return rc;
    *state = n;
    return mp__magent_join(n->a);
}
static void simnode_teardown(void *state)
{
    simnode *n = state;
    mp__magent_free(n->a);
    n->a = NULL;
}
static const mp_sim_process_ops simnode_ops = {simnode_boot, simnode_teardown, NULL};

/* Agents in simulated processes share one provider of another process:
 * the in-memory one and the simulated disk. They join at the same instant
 * and renew concurrently for 20 s: no lost update. */
static void test_sim_providers_no_lost_update(void **state)
{
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        mp_sim_config sc;
        mp_sim_config_init(&sc);
        sc.seed = 11 + (uint64_t)kind;
        simw w = {0};
        w.use_sim_storage = kind == 1;
        w.cfg = fast_cfg();
        w.sim = mp_sim_create(&sc);
        assert_non_null(w.sim);
        w.db_pid = mp_sim_spawn(w.sim, "10.0.0.1:1", &simdb_ops, &w);
        assert_true(w.db_pid >= 0);
        mp_sim_run_until(w.sim, mp_sim_now(w.sim) + MP_NS_PER_MS);
        simnode nodes[4];
        int pids[4];
        for (int i = 0; i < 4; i++) {
            nodes[i].w = &w;
            snprintf(nodes[i].addr, sizeof nodes[i].addr, "10.0.1.%d:7000", i + 1);
            pids[i] = mp_sim_spawn(w.sim, nodes[i].addr, &simnode_ops, &nodes[i]);
            assert_true(pids[i] >= 0);
        }
        mp_sim_run_until(w.sim, mp_sim_now(w.sim) + 20 * SEC);
        assert_int_equal(w.joined, 4);
        const mp__mtable *t = mp__magent_table(nodes[0].a);
        assert_non_null(t);
        uint64_t conflicts = 0;
        for (int i = 0; i < 4; i++) {
            mp__magent_stats st;
            mp__magent_get_stats(nodes[i].a, &st);
            conflicts += st.conflicts;
            const mp__mtable *ti = mp__magent_table(nodes[i].a);
            int r = mp__mtable_find(ti, nodes[i].addr, 1);
            assert_true(r >= 0);
            assert_int_equal(ti->rows[r].status, MP__MEMBER_ACTIVE);
            assert_true(mp__magent_may_serve(nodes[i].a, mp_env_now(mp_sim_process_env(w.sim, pids[i]))));
        }
        /* Node 0's last read is at most a poll old: each row's heartbeat
         * there is within one renewal of its owner's accepted renewals,
         * never more (a lost update would make it less and stay so). */
        mp_sim_run_until(w.sim, mp_sim_now(w.sim) + 1);
        for (int i = 0; i < 4; i++) {
            mp__magent_stats st;
            mp__magent_get_stats(nodes[i].a, &st);
            int r = mp__mtable_find(t, nodes[i].addr, 1);
            assert_true(t->rows[r].heartbeat <= st.renewals);
            assert_true(t->rows[r].heartbeat + 2 >= st.renewals);
        }
        printf("%s provider: 4 agents, 20 s simulated, %llu conflicts\n",
               kind ? "sim" : "memory", (unsigned long long)conflicts);
        /* Agents go first; the db completes what they had in flight (their
         * tickets are freed by those callbacks), then the world ends. */
        for (int i = 0; i < 4; i++) assert_int_equal(mp_sim_kill(w.sim, pids[i]), 0);
        mp_sim_run_until(w.sim, mp_sim_now(w.sim) + SEC);
        assert_int_equal(mp_sim_kill(w.sim, w.db_pid), 0);
        void **disk = mp_sim_process_disk(w.sim, w.db_pid);
        mp_storage_sim_disk_free(*disk);
        *disk = NULL;
        mp_sim_destroy(w.sim);
    }
}

/* A node torn down with its storage (mp_storage_free_now) while a read is
 * in flight: mp__magent_free_now releases everything (ASan's leak check
 * in build-asan fails without it). */
static void test_free_now_with_op_in_flight(void **state)
{
    (void)state;
    mp__magent_config cfg = fast_cfg();
    world *w = world_new(10, 1, &cfg, 0.0);
    mp_storage *mem = mp_storage_memory_create(&w->env[0].base);
    assert_non_null(mem);
    mp__magent *a = NULL;
    assert_int_equal(mp__magent_create(&w->env[0].base, mem, "test", "127.0.0.1:7001", 1, NULL,
                                       0, &cfg, NULL, &a),
                     0);
    assert_int_equal(mp__magent_join(a), 0); /* a load is now in flight */
    mp_storage_stats st;
    mp_storage_get_stats(mem, &st);
    assert_int_equal(st.pending, 1);
    mp_storage_free_now(mem);
    mp__magent_free_now(a);
    world_free(w);
}

/* The lease property over random schedules: random clock rates within the
 * bound, random offsets, database latency 1..200 ms with lost answers,
 * pauses of 0.3..3 leases, false suspicions, dead nodes rejoining. */
static int lease_run(uint64_t seed, double drift_fraction, int *deaths, int *drops,
                     int *liveness)
{
    mp_prng r;
    mp_prng_seed(&r, seed);
    mp__magent_config cfg;
    mp__magent_config_init(&cfg);
    cfg.lease_ns = (1 + mp_prng_below(&r, 5)) * SEC;
    cfg.renew_ns = cfg.lease_ns / 3;
    cfg.margin_ns = cfg.lease_ns / (2 + mp_prng_below(&r, 8));
    cfg.poll_ns = (100 + mp_prng_below(&r, 900)) * MP_NS_PER_MS;
    cfg.votes = 1 + (uint32_t)mp_prng_below(&r, 3);
    double bound = (double)cfg.margin_ns / (double)(2 * cfg.lease_ns + cfg.margin_ns);
    int n = 2 + (int)mp_prng_below(&r, 4);
    world *w = world_new(seed, n, &cfg, bound * drift_fraction);
    w->rejoin = true;
    /* Database latency each way up to 200 ms, and at most lease / 50 (a
     * lease is meant to be seconds against a database answering in ms). */
    uint64_t latdiv = getenv("MT_LATDIV") ? strtoull(getenv("MT_LATDIV"), NULL, 10) : 50;
    uint64_t lat_cap = cfg.lease_ns / (latdiv ? latdiv : 50) / MP_NS_PER_MS;
    if (lat_cap == 0) lat_cap = 1;
    w->lat_max = (1 + mp_prng_below(&r, lat_cap < 200 ? lat_cap : 200)) * MP_NS_PER_MS;
    w->fail_p = mp_prng_chance(&r, 0.5) ? 0.02 : 0.0;
    for (int i = 0; i < n; i++) add_agent(w, i, 1);
    for (int i = 0; i < n; i++) assert_int_equal(mp__magent_join(w->agents[i].a), 0);
    uint64_t end = 60 * SEC;
    while (w->now < end) {
        run_until(w, w->now + (50 + mp_prng_below(&r, 1000)) * MP_NS_PER_MS);
        uint64_t dice = mp_prng_below(&r, 100);
        int node = (int)mp_prng_below(&r, (uint64_t)n);
        if (dice < 4 && w->env[node].paused_until <= w->now) {
            uint64_t len = cfg.lease_ns * (3 + mp_prng_below(&r, 28)) / 10;
            w->env[node].paused_until = w->now + len;
        } else if (dice < 7 && w->env[node].cut_until <= w->now) {
            /* cut from the database, not from time */
            w->env[node].cut_until = w->now + cfg.lease_ns * (3 + mp_prng_below(&r, 28)) / 10;
        } else if (dice < 12) {
            int other = (int)mp_prng_below(&r, (uint64_t)n);
            agent_rec *x = &w->agents[w->current[other]];
            agent_rec *by = &w->agents[w->current[node]];
            char a[32];
            node_addr(other, a, sizeof a);
            if (other != node) (void)mp__membership_suspect(by->a, a, x->inc);
        }
    }
    /* Quiet: no more faults; everyone must end up active and agree. */
    w->fail_p = 0;
    for (int i = 0; i < n; i++) {
        if (w->env[i].paused_until > w->now) w->env[i].paused_until = w->now;
        w->env[i].cut_until = 0;
    }
    run_until(w, w->now + 6 * cfg.lease_ns + 5 * SEC);
    for (int i = 0; i < n; i++) {
        agent_rec *c = &w->agents[w->current[i]];
        if (!serving_now(w, c) || (int)c->last_n != n) {
            w->liveness++;
            violation(w, "seed %llu: after the quiet period node %d inc %u serving %d sees %zu",
                      (unsigned long long)seed, i, c->inc, serving_now(w, c), c->last_n);
        }
    }
    *liveness += w->liveness;
    int v = w->violations;
    if (v) printf("seed %llu: %s\n", (unsigned long long)seed, w->first_violation);
    if (v && getenv("MT_DEBUG")) {
        mp__mtable *t = stored(w);
        printf("  table version %llu:\n", (unsigned long long)t->version);
        for (uint32_t i = 0; i < t->count; i++)
            printf("  %s/%u %s hb %llu nsusp %u\n", t->rows[i].addr, t->rows[i].incarnation,
                   mp__member_status_name(t->rows[i].status),
                   (unsigned long long)t->rows[i].heartbeat, t->rows[i].nsusp);
        for (int i = 0; i < w->nagents; i++) {
            mp__magent_stats st;
            mp__magent_get_stats(w->agents[i].a, &st);
            printf("  lease_end %llu local now %llu\n", (unsigned long long)mp__magent_lease_end(w->agents[i].a), (unsigned long long)local_now(&w->env[w->agents[i].node], w->now));
            printf("  agent node %d inc %u: dead %d reads %llu writes %llu conf %llu err %llu gave_up %llu view %zu\n",
                   w->agents[i].node, w->agents[i].inc, w->agents[i].dead_reported,
                   (unsigned long long)st.reads, (unsigned long long)st.writes,
                   (unsigned long long)st.conflicts, (unsigned long long)st.errors,
                   (unsigned long long)st.gave_up, w->agents[i].last_n);
        }
        free(t);
    }
    *deaths += w->deaths;
    *drops += w->drops;
    world_free(w);
    return v;
}

static void test_lease_property(void **state)
{
    (void)state;
    int bad = 0, deaths = 0, drops = 0, liveness = 0;
    /* MT_DRIFT: clock rate deviation as a fraction of the bound (default
     * 0.99; above 1 the property may fail, which shows the bound matters). */
    const double drift = getenv("MT_DRIFT") ? atof(getenv("MT_DRIFT")) : 0.99;
    const int seeds = getenv("MT_SEEDS") ? atoi(getenv("MT_SEEDS")) : 150;
    const uint64_t first = getenv("MT_FIRST") ? strtoull(getenv("MT_FIRST"), NULL, 10) : 1;
    for (uint64_t s = first; s < first + (uint64_t)seeds; s++) bad += lease_run(s, drift, &deaths, &drops, &liveness);
    printf("lease property: %d seeds, %d deaths reported, %d take-overs checked, %d "
           "safety violations, %d liveness misses\n",
           seeds, deaths, drops, bad - liveness, liveness);
    assert_int_equal(bad, 0);
    assert_true(deaths > 20 && drops > 20); /* the schedules do exercise it */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_join_no_lost_update),
        cmocka_unit_test(test_storage_faults),
        cmocka_unit_test(test_sim_providers_no_lost_update),
        cmocka_unit_test(test_votes),
        cmocka_unit_test(test_votes_age_out),
        cmocka_unit_test(test_votes_two_members),
        cmocka_unit_test(test_pause_learns_dead_and_rejoins),
        cmocka_unit_test(test_cut_from_database),
        cmocka_unit_test(test_graceful_leave),
        cmocka_unit_test(test_corrupt_table_not_overwritten),
        cmocka_unit_test(test_create_args),
        cmocka_unit_test(test_free_now_with_op_in_flight),
        cmocka_unit_test(test_lease_property),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
