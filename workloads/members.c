/*
 * The members workload (issue 13, item 6): membership under joins, graceful
 * leaves, permanent kills, pauses longer than the lease, and partitions that
 * cut a member from its peers but not from the database, or from the
 * database but not from its peers; an oracle that watches every turn of
 * every activation checks single activation, at-most-once and fresh reads.
 *
 * Why a workload of its own: the bank and exec run a static member list,
 * where nobody takes a member's actors over. With membership a member that
 * stops renewing its lease loses its actors to the others; the danger is a
 * member that was paused or cut off, wakes up and serves its old
 * activations after someone else re-activated them. Only an oracle that
 * sees every turn (in the one simulated clock) can tell.
 *
 * Cluster: MB_SEEDS seed members (10.0.4.1..3, the seed list) start at
 * once; 1..3 more (drawn per seed, N = 4..6 in all) start during the chaos
 * phase with an address that is in no seed list (joins). All have
 * membership = true (lease 1 s, margin 200 ms, poll 200 ms, heartbeat
 * 100 ms, peer timeout 500 ms) and share the table and the actors' state in
 * one db process's simulated storage (never faulted). Each member runs
 * MB_CLIENTS_PER_NODE client loops calling MB_ACTORS `Reg` actors (r-0 ..
 * r-19) with `write` or `read`, one call at a time, each with a unique op id
 * (its index in the world's op table).
 *
 * Chaos, scripted from the seed (the network faults of the swarm stay; the
 * generator's own kills, pauses, stops and partitions are off so that every
 * process fault is one of ours): every 0.5..1.5 s one of
 *   pause a member for 1.5..3 leases (mp_sim_pause);
 *   cut a member from every other member, not from the db, 0.5..3 s;
 *   cut a member from the db, not from its peers, 0.5..3 s;
 *   graceful leave (mp_sim_stop: mp_node_shutdown, then the process boots
 *     again 0.5..3 s later as a new incarnation and rejoins);
 *   permanent kill (never restarted; at most MB_MAX_KILLS per seed, and
 *     never below MB_MIN_ALIVE members).
 * A member whose on_declared_dead runs is killed and restarted by the
 * workload (new incarnation), as a host would re-execute itself.
 *
 * Two limits of the simulator as it is today (docs/membership.md,
 * "Simulation"): every node calls the db process's simulated storage
 * directly, not over the simulated network, so a partition between a
 * member and the db changes nothing for its storage operations (the "cut
 * from the db" fault is in place for when storage goes through the
 * network), and a storage callback runs in its caller's process even while
 * that process is paused (a write turn ends during a pause instead of
 * spanning it).
 *
 * The actor Reg keeps {"ver": n, "op": i} in persisted state: write(i) sets
 * ver + 1 and op i, persists, and replies only when the save reported back
 * (on failure it puts the old value back and deactivates); read replies
 * "ver op". Neither deduplicates anything.
 *
 * Invariants, checked as things happen (simulated time, one clock):
 *   I1 no two activations of one actor have turns open at the same moment
 *      (a turn runs from the handler's start to its reply, or to the
 *      activation's release if its process died);
 *   I2 each op id executes at most once (counted in the handler);
 *   I3 a read returns the latest committed write: when it executes, its
 *      version is at least that of every write whose save was reported
 *      successful (to its activation) before, and (version, op) names a write
 *      that executed with that version; two successful saves never carry
 *      the same version (a lost update);
 *   I4 liveness: after heal, once the last fault has ended (pauses run out,
 *      restarts done: t_quiet), every actor answers a read within
 *      MB_LIVENESS_NS = lease 1 s + margin 0.2 s + 2 polls 0.4 s + directory
 *      recovery 5 s (MP_DIR_RECOVERY_NS) + slack 1.4 s = 8 s of t_quiet;
 *   I5 (end) each stored record's version is at least the highest
 *      acknowledged one and names a write that executed with it.
 * A violation names the actor, the activations (node, incarnation, id,
 * created, ended), the ops and the times.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/actor.h"
#include "moonpool/buggify.h"
#include "moonpool/codec.h"
#include "moonpool/node.h"
#include "moonpool/sim.h"
#include "moonpool/sim_workload.h"
#include "moonpool/state.h"
#include "moonpool/storage.h"
#include "workloads.h"

#define MS MP_SIM_NS_PER_MS
#define SEC MP_SIM_NS_PER_S

#define MB_PORT 4800
#define MB_NS "members"
#define MB_TYPE "Reg"
#define MB_DB_ADDR "10.0.9.9:4800"
#define MB_SEEDS 3
#define MB_MAX_NODES 6
#define MB_CLIENTS_PER_NODE 2
#define MB_ACTORS 20
#define MB_LEASE_NS (1 * SEC)
#define MB_MARGIN_NS (200 * MS)
#define MB_POLL_NS (200 * MS)
#define MB_HEARTBEAT_NS (100 * MS)
#define MB_PEER_TIMEOUT_NS (500 * MS)
#define MB_CALL_TIMEOUT_NS (2 * SEC)
#define MB_THINK_MAX_NS (60 * MS)
#define MB_TICK_NS (100 * MS)
#define MB_CHAOS_NS (16 * SEC)
#define MB_HEAL_NS (40 * SEC)
#define MB_MAX_KILLS 1
#define MB_MIN_ALIVE 3
/* Directory recovery after a view change (docs/membership.md). */
#define MB_RECOVERY_NS (5 * SEC)
#define MB_LIVENESS_NS \
    (MB_LEASE_NS + MB_MARGIN_NS + 2 * MB_POLL_NS + MB_RECOVERY_NS + 1400 * MS)
#define MB_PROBE_TIMEOUT_NS (1 * SEC)
#define MB_PROBE_RETRY_NS (100 * MS)

typedef enum { OP_WRITE = 0, OP_READ = 1 } mb_kind;

typedef struct mb_op {
    uint8_t kind;
    uint16_t actor;
    uint16_t client;
    uint32_t nexec;
    uint32_t act;       /* activation of the first execution */
    uint64_t exec_at;   /* sim time of the first execution */
    int64_t ver;        /* write: the version it wrote (first execution) */
    int8_t committed;   /* write: 1 save OK, -1 refused, 0 unknown */
} mb_op;

/* One activation of Reg: numbered at on_activate. */
typedef struct mb_act {
    int node;
    uint32_t inc;
    uint16_t actor;
    uint64_t created, ended; /* ended 0: alive */
} mb_act;

typedef struct mb_actor_obs {
    uint32_t open_act;   /* activation with a turn open (0: none) */
    uint32_t open_op;
    uint64_t open_since;
    int64_t acked_ver;   /* highest version whose save was reported OK */
    uint32_t acked_op;
    uint64_t acked_at;
    uint64_t turns;
} mb_actor_obs;

struct mb_world;

typedef struct mb_client {
    struct mb_node *n;
    int id;
    mp_timer_id timer;
    bool waiting;
    uint32_t op;
} mb_client;

typedef struct mb_node {
    struct mb_world *w;
    int index;
    mp_env *env;
    mp_node *node; /* NULL once a graceful shutdown released it */
    bool stopping;
    mb_client clients[MB_CLIENTS_PER_NODE];
} mb_node;

typedef struct mb_arg {
    struct mb_world *w;
    int index;
} mb_arg;

typedef enum { P_CHAOS = 0, P_DRAIN, P_PROBE, P_STORED, P_DONE } mb_phase;

typedef struct mb_probe {
    struct mb_world *w;
    int actor;
    bool waiting, ok;
    uint64_t ok_at;
    uint64_t next_at;
    int status;
} mb_probe;

typedef struct mb_stored {
    bool done;
    bool present;
    int64_t ver;
    int64_t op;
} mb_stored;

typedef struct mb_world {
    bool trace;
    mp_sim *sim;
    int nodes; /* N: 4..6 */
    char addrs[MB_MAX_NODES][32];
    const char *members[MB_MAX_NODES + 1]; /* seeds, then self for joiners */
    int pids[MB_MAX_NODES];
    bool spawned[MB_MAX_NODES];
    bool killed[MB_MAX_NODES]; /* permanently */
    struct mb_restart {
        struct mb_world *w;
        int index;
        uint32_t inc; /* incarnation declared dead (0: none pending) */
    } restarts[MB_MAX_NODES];
    mb_arg args[MB_MAX_NODES];
    int db_pid;
    void *disk;
    mb_op *ops;
    uint32_t nops, cap;
    mb_act *acts;
    uint32_t nacts, acts_cap;
    mb_actor_obs obs[MB_ACTORS];
    uint32_t outstanding;
    bool healing;
    mb_phase phase;
    uint64_t heal_at, quiet_at; /* t_quiet: every fault over */
    int kills;
    mb_probe probes[MB_ACTORS];
    int probe_rr;
    mb_stored stored[MB_ACTORS];
    int stored_done;
    uint64_t n_ok, n_err, n_reads_ok, n_writes_ok, n_dead_restarts;
    uint64_t worst_probe_ns;
} mb_world;

static __thread mb_world *g_world;

/* --trace: the oracle's events on stderr, one line each, in simulated time. */
static void tr(mb_world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tr(mb_world *w, const char *fmt, ...)
{
    if (!w->trace) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%.6f members: ", (double)mp_sim_now(w->sim) / 1e9);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- reporting -------------------------------------------------------------- */

static void push_quiet(mb_world *w, uint64_t until)
{
    if (until > w->quiet_at) w->quiet_at = until;
}

static int act_desc(const mb_world *w, uint32_t id, char *buf, size_t cap)
{
    if (id == 0 || id >= w->nacts) return snprintf(buf, cap, "activation ?");
    const mb_act *a = &w->acts[id];
    bool paused = a->node >= 0 && w->spawned[a->node] &&
                  mp_sim_process_paused(w->sim, w->pids[a->node]);
    return snprintf(buf, cap,
                    "activation %u on m%d inc %u (created %.3f s, %s %.3f s%s)", id, a->node,
                    a->inc, (double)a->created / 1e9, a->ended ? "ended" : "alive at",
                    (double)(a->ended ? a->ended : mp_sim_now(w->sim)) / 1e9,
                    paused ? ", its node paused now" : "");
}

static const char *kind_name(uint8_t k) { return k == OP_WRITE ? "write" : "read"; }

/* ---- the actor ---------------------------------------------------------------- */

static int node_of_env(mb_world *w, mp_env *env)
{
    for (int i = 0; i < w->nodes; i++)
        if (env->name && strcmp(env->name, w->addrs[i]) == 0) return i;
    return -1;
}

typedef struct mb_inst {
    uint32_t act;
    mp_actor *self;
    mp_msg *msg;     /* the write waiting for its save */
    uint32_t op;
    int64_t prev_ver, prev_op;
    char reply[48];
} mb_inst;

static int reg_activate(mp_actor *self, void *instance)
{
    mb_world *w = g_world;
    mb_inst *in = instance;
    if (!w) return MP_EINVAL;
    if (w->nacts == w->acts_cap) {
        uint32_t cap = w->acts_cap ? w->acts_cap * 2 : 64;
        mb_act *na = realloc(w->acts, cap * sizeof *na);
        if (!na) return MP_ENOMEM;
        w->acts = na;
        w->acts_cap = cap;
    }
    if (w->nacts == 0) {
        memset(&w->acts[0], 0, sizeof w->acts[0]);
        w->nacts = 1;
    }
    const mp_ref *ref = mp_actor_ref(self);
    unsigned a = 0;
    char key[16] = "";
    if (ref && ref->key_len < sizeof key) {
        memcpy(key, ref->id + ref->key_off, ref->key_len);
        key[ref->key_len] = 0;
    }
    if (!ref || sscanf(key, "r-%u", &a) != 1 || a >= MB_ACTORS) {
        mp_sim_fail(w->sim, "members: activation of an unknown key");
        return MP_EINVAL;
    }
    uint32_t id = w->nacts++;
    int node = node_of_env(w, mp_actor_env(self));
    w->acts[id] = (mb_act){.node = node,
                           .inc = node >= 0 ? mp_sim_process_incarnation(w->sim, w->pids[node])
                                            : 0,
                           .actor = (uint16_t)a,
                           .created = mp_sim_now(w->sim)};
    in->act = id;
    in->self = self;
    tr(w, "r-%u activation %u created on m%d inc %u", a, id, node, w->acts[id].inc);
    return 0;
}

/* The turn of activation `act` ends now. */
static void turn_end(mb_world *w, uint32_t act)
{
    mb_actor_obs *o = &w->obs[w->acts[act].actor];
    if (o->open_act == act) o->open_act = 0;
    tr(w, "r-%u activation %u turn ends", w->acts[act].actor, act);
}

/* A turn of activation `act` starts now (I1). */
static void turn_start(mb_world *w, uint32_t act, uint32_t op)
{
    mb_actor_obs *o = &w->obs[w->acts[act].actor];
    uint64_t now = mp_sim_now(w->sim);
    o->turns++;
    tr(w, "r-%u activation %u turn starts: %s op %u", w->acts[act].actor, act,
       kind_name(w->ops[op].kind), op);
    if (o->open_act != 0 && !mp_sim_failed(w->sim)) {
        char a[200], b[200];
        act_desc(w, o->open_act, a, sizeof a);
        act_desc(w, act, b, sizeof b);
        mp_sim_fail(w->sim,
                    "members: I1 single activation violated: r-%u: %s of op %u starts at "
                    "%.3f s in %s while the turn of %s op %u opened at %.3f s in %s is "
                    "still open",
                    w->acts[act].actor, kind_name(w->ops[op].kind), op, (double)now / 1e9, b,
                    kind_name(w->ops[o->open_op].kind), o->open_op,
                    (double)o->open_since / 1e9, a);
    }
    o->open_act = act;
    o->open_op = op;
    o->open_since = now;
}

static void act_ended(mb_inst *in)
{
    mb_world *w = g_world;
    if (!w || in->act == 0 || in->act >= w->nacts) return;
    mb_act *a = &w->acts[in->act];
    if (!a->ended) {
        a->ended = mp_sim_now(w->sim);
        tr(w, "r-%u activation %u ended", a->actor, in->act);
    }
    turn_end(w, in->act); /* a turn its process's death cut short */
    in->msg = NULL;
}

static void reg_deactivate(mp_actor *self, void *instance, mp_deactivate_reason reason)
{
    (void)self;
    (void)reason;
    act_ended(instance);
}

static void reg_release(void *instance) { act_ended(instance); }

static void state_of(mp_actor *self, int64_t *ver, int64_t *op)
{
    json_t *s = mp_state_get(self);
    *ver = 0;
    *op = -1;
    if (json_is_object(s)) {
        *ver = json_integer_value(json_object_get(s, "ver"));
        *op = json_integer_value(json_object_get(s, "op"));
    }
}

static void reply_and_end(mb_world *w, mb_inst *in, mp_msg *msg, int status, const char *text)
{
    turn_end(w, in->act);
    if (status == 0)
        mp_reply(msg, text, strlen(text));
    else
        mp_reply_error(msg, status, text);
}

/* Decode "<op index>" and count the execution (I2). NULL on a bad request. */
static mb_op *begin_exec(mb_world *w, mb_inst *in, mp_msg *msg, const void *payload,
                         size_t len, uint8_t kind)
{
    char buf[32];
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, payload, len);
    buf[len] = 0;
    unsigned idx = 0;
    if (sscanf(buf, "%u", &idx) != 1 || idx >= w->nops || w->ops[idx].kind != kind ||
        in->act == 0 || in->act >= w->nacts || w->ops[idx].actor != w->acts[in->act].actor) {
        mp_sim_fail(w->sim, "members: malformed request '%s'", buf);
        mp_reply_error(msg, MP_EINVAL, "malformed");
        return NULL;
    }
    mb_op *op = &w->ops[idx];
    op->nexec++;
    if (op->nexec == 1) {
        op->act = in->act;
        op->exec_at = mp_sim_now(w->sim);
    } else if (!mp_sim_failed(w->sim)) {
        char a[200], b[200];
        act_desc(w, op->act, a, sizeof a);
        act_desc(w, in->act, b, sizeof b);
        mp_sim_fail(w->sim,
                    "members: I2 at most once violated: %s op %u on r-%u executed %u times: "
                    "first at %.3f s in %s, again at %.3f s in %s",
                    kind_name(kind), idx, op->actor, op->nexec, (double)op->exec_at / 1e9, a,
                    (double)mp_sim_now(w->sim) / 1e9, b);
    }
    turn_start(w, in->act, idx);
    return op;
}

/* I3 for a value (ver, op) seen by a read (or stored at the end). */
static void check_value(mb_world *w, unsigned actor, int64_t ver, int64_t opi, const char *who,
                        uint32_t reader_op, uint32_t act)
{
    if (mp_sim_failed(w->sim)) return;
    mb_actor_obs *o = &w->obs[actor];
    char a[200] = "";
    if (act) act_desc(w, act, a, sizeof a);
    if (ver < o->acked_ver || (ver == o->acked_ver && ver > 0 && opi != (int64_t)o->acked_op)) {
        char b[200];
        act_desc(w, w->ops[o->acked_op].act, b, sizeof b);
        mp_sim_fail(w->sim,
                    "members: I3 stale read: r-%u: %s (op %u) at %.3f s in %s returns version "
                    "%" PRId64 " (write op %" PRId64 "), but write op %u saved version %" PRId64
                    " at %.3f s in %s",
                    actor, who, reader_op, (double)mp_sim_now(w->sim) / 1e9, a, ver, opi,
                    o->acked_op, o->acked_ver, (double)o->acked_at / 1e9, b);
        return;
    }
    if (ver == 0) return;
    if (opi < 0 || (uint64_t)opi >= w->nops || w->ops[opi].kind != OP_WRITE ||
        w->ops[opi].actor != actor || w->ops[opi].nexec == 0 || w->ops[opi].ver != ver ||
        w->ops[opi].committed < 0) {
        mp_sim_fail(w->sim,
                    "members: I3 read of a value no write produced: r-%u: %s (op %u) at %.3f s "
                    "%s returns version %" PRId64 " op %" PRId64,
                    actor, who, reader_op, (double)mp_sim_now(w->sim) / 1e9, a, ver, opi);
    }
}

static void h_read(mp_actor *self, void *inst, mp_msg *msg, const void *payload, size_t len)
{
    mb_world *w = g_world;
    mb_inst *in = inst;
    if (!w) {
        mp_reply_error(msg, MP_EINVAL, "no world");
        return;
    }
    mb_op *op = begin_exec(w, in, msg, payload, len, OP_READ);
    if (!op) return;
    int64_t ver, opi;
    state_of(self, &ver, &opi);
    tr(w, "r-%u activation %u read op %u: version %" PRId64 " op %" PRId64, op->actor, in->act,
       (unsigned)(op - w->ops), ver, opi);
    check_value(w, op->actor, ver, opi, "read", (uint32_t)(op - w->ops), in->act);
    /* A value another activation wrote, read by this one. */
    MP_SOMETIMES(ver > 0 && opi >= 0 && (uint64_t)opi < w->nops &&
                     w->ops[opi].act != in->act,
                 "members.read_after_reactivation");
    char r[48];
    snprintf(r, sizeof r, "%" PRId64 " %" PRId64, ver, opi);
    reply_and_end(w, in, msg, 0, r);
}

static void persisted(void *ud, int status)
{
    mb_world *w = g_world;
    mb_inst *in = ud;
    if (!w || !in->msg) return;
    mp_msg *msg = in->msg;
    in->msg = NULL;
    mb_op *op = &w->ops[in->op];
    mb_actor_obs *o = &w->obs[op->actor];
    tr(w, "r-%u activation %u write op %u version %" PRId64 " saved: %s", op->actor, in->act,
       in->op, op->ver, mp_status_name(status));
    if (status == 0) {
        op->committed = 1;
        if (op->ver <= o->acked_ver && !mp_sim_failed(w->sim)) {
            char a[200];
            act_desc(w, in->act, a, sizeof a);
            mp_sim_fail(w->sim,
                        "members: I3 lost update: r-%u: write op %u saved version %" PRId64
                        " at %.3f s in %s, but write op %u had saved version %" PRId64
                        " at %.3f s",
                        op->actor, in->op, op->ver, (double)mp_sim_now(w->sim) / 1e9, a,
                        o->acked_op, o->acked_ver, (double)o->acked_at / 1e9);
        }
        o->acked_ver = op->ver;
        o->acked_op = in->op;
        o->acked_at = mp_sim_now(w->sim);
        reply_and_end(w, in, msg, 0, in->reply);
        return;
    }
    if (status == MP_ECONFLICT) op->committed = -1;
    MP_SOMETIMES(true, "members.persist_failed");
    /* Not stored (or not known to be): back to the stored value, and a
     * fresh activation for the next turn. */
    json_t *s = json_pack("{s:I,s:I}", "ver", (json_int_t)in->prev_ver, "op",
                          (json_int_t)in->prev_op);
    if (s) mp_state_set(in->self, s);
    mp_actor_deactivate(in->self);
    reply_and_end(w, in, msg, status, "persist failed");
}

static void h_write(mp_actor *self, void *inst, mp_msg *msg, const void *payload, size_t len)
{
    mb_world *w = g_world;
    mb_inst *in = inst;
    if (!w) {
        mp_reply_error(msg, MP_EINVAL, "no world");
        return;
    }
    mb_op *op = begin_exec(w, in, msg, payload, len, OP_WRITE);
    if (!op) return;
    uint32_t idx = (uint32_t)(op - w->ops);
    int64_t ver, opi;
    state_of(self, &ver, &opi);
    in->prev_ver = ver;
    in->prev_op = opi;
    if (op->nexec == 1) op->ver = ver + 1;
    tr(w, "r-%u activation %u write op %u: version %" PRId64 " -> %" PRId64, op->actor, in->act,
       idx, ver, ver + 1);
    json_t *s = json_pack("{s:I,s:I}", "ver", (json_int_t)(ver + 1), "op", (json_int_t)idx);
    if (!s) {
        reply_and_end(w, in, msg, MP_ENOMEM, "no memory");
        return;
    }
    mp_state_set(self, s);
    snprintf(in->reply, sizeof in->reply, "%" PRId64, ver + 1);
    in->msg = msg;
    in->op = idx;
    int rc = mp_state_persist(self, persisted, in);
    if (rc != 0) {
        in->msg = NULL;
        op->committed = -1;
        json_t *p = json_pack("{s:I,s:I}", "ver", (json_int_t)ver, "op", (json_int_t)opi);
        if (p) mp_state_set(self, p);
        mp_actor_deactivate(self);
        reply_and_end(w, in, msg, rc, "persist refused");
    }
}

static const mp_method_def reg_methods[] = {{"write", h_write}, {"read", h_read}};
static const mp_state_type reg_state = {.codec = NULL};

static const mp_actor_type reg_type = {
    .name = MB_TYPE,
    .instance_size = sizeof(mb_inst),
    .on_activate = reg_activate,
    .on_deactivate = reg_deactivate,
    .release = reg_release,
    .methods = reg_methods,
    .method_count = 2,
    .state = &reg_state,
};

/* ---- clients ------------------------------------------------------------------ */

static void client_schedule(mb_client *c);

static void client_reply(void *ud, int status, const void *data, size_t len)
{
    (void)data;
    (void)len;
    mb_client *c = ud;
    mb_world *w = c->n->w;
    assert(c->waiting);
    c->waiting = false;
    assert(w->outstanding > 0);
    w->outstanding--;
    mb_op *op = &w->ops[c->op];
    if (status == 0) {
        w->n_ok++;
        if (op->kind == OP_READ) w->n_reads_ok++;
        else w->n_writes_ok++;
        if (op->nexec == 0)
            mp_sim_fail(w->sim, "members: op %u acknowledged but never executed", c->op);
    } else {
        w->n_err++;
        MP_SOMETIMES(true, "members.call_failed");
    }
    client_schedule(c);
}

static void client_issue(mb_client *c)
{
    mb_node *n = c->n;
    mb_world *w = n->w;
    if (w->nops == w->cap) {
        uint32_t cap = w->cap ? w->cap * 2 : 1024;
        mb_op *no = realloc(w->ops, cap * sizeof *no);
        if (!no) {
            mp_sim_fail(w->sim, "members: out of memory (ops)");
            return;
        }
        w->ops = no;
        w->cap = cap;
    }
    uint32_t i = w->nops++;
    mb_op *op = &w->ops[i];
    memset(op, 0, sizeof *op);
    op->kind = (uint8_t)mp_env_random_below(n->env, 2);
    op->actor = (uint16_t)mp_env_random_below(n->env, MB_ACTORS);
    op->client = (uint16_t)c->id;
    c->op = i;
    char key[16], payload[16];
    snprintf(key, sizeof key, "r-%u", op->actor);
    int pl = snprintf(payload, sizeof payload, "%u", i);
    mp_ref ref;
    int rc = mp_ref_get(n->node, MB_TYPE, key, &ref);
    assert(rc == 0);
    mp_call_opts opts = {.timeout_ns = MB_CALL_TIMEOUT_NS};
    c->waiting = true;
    w->outstanding++;
    rc = mp_call(n->node, &ref, kind_name(op->kind), payload, (size_t)pl, &opts, client_reply,
                 c);
    if (rc != 0) {
        c->waiting = false;
        w->outstanding--;
        client_schedule(c);
    }
}

static void client_fire(void *ud)
{
    mb_client *c = ud;
    c->timer = 0;
    if (c->n->w->healing || c->n->stopping || !c->n->node) return;
    client_issue(c);
}

static void client_schedule(mb_client *c)
{
    mb_node *n = c->n;
    if (n->w->healing || n->stopping || !n->node) return;
    uint64_t d = 1 + mp_env_random_below(n->env, MB_THINK_MAX_NS);
    c->timer = mp_env_timer_start(n->env, d, client_fire, c);
    if (!c->timer) mp_sim_fail(n->w->sim, "members: out of memory (timer)");
}

/* ---- processes ------------------------------------------------------------------ */

static void node_teardown(void *state)
{
    mb_node *n = state;
    if (!n) return;
    mb_world *w = n->w;
    for (int i = 0; i < MB_CLIENTS_PER_NODE; i++) {
        mb_client *c = &n->clients[i];
        if (c->timer) mp_env_timer_cancel(n->env, c->timer);
        if (c->waiting) {
            c->waiting = false;
            assert(w->outstanding > 0);
            w->outstanding--;
        }
    }
    if (n->node) mp_node_free_now(n->node);
    free(n);
}

static void shutdown_done(void *ud)
{
    mb_node *n = ud;
    n->node = NULL;
    mp_sim_process_exit(n->env);
}

static void node_stop(void *state, uint64_t deadline_ns)
{
    mb_node *n = state;
    if (!n || !n->node || n->stopping) return;
    n->stopping = true;
    for (int i = 0; i < MB_CLIENTS_PER_NODE; i++) {
        mb_client *c = &n->clients[i];
        if (c->timer) mp_env_timer_cancel(n->env, c->timer);
        c->timer = 0;
    }
    mp_node_shutdown(n->node, deadline_ns, shutdown_done, n);
}

typedef struct mb_restart mb_restart;

/* World level: kill the incarnation declared dead and boot a new one. */
static void restart_dead(void *ud)
{
    mb_restart *r = ud;
    mb_world *w = r->w;
    int pid = w->pids[r->index];
    if (!w->killed[r->index] && mp_sim_process_running(w->sim, pid) &&
        mp_sim_process_incarnation(w->sim, pid) == r->inc) {
        uint64_t delay = mp_sim_random_below(w->sim, 300 * MS);
        tr(w, "m%d inc %u declared dead: killed, restarts in %.3f s", r->index, r->inc,
           (double)delay / 1e9);
        mp_sim_kill(w->sim, pid);
        if (mp_sim_restart(w->sim, pid, delay) == 0) {
            w->n_dead_restarts++;
            push_quiet(w, mp_sim_now(w->sim) + delay);
            MP_SOMETIMES(true, "members.dead_restarted");
        }
    }
    r->inc = 0;
}

static void on_declared_dead(void *ud)
{
    mb_node *n = ud;
    mb_world *w = n->w;
    mb_restart *r = &w->restarts[n->index];
    MP_SOMETIMES(true, "members.declared_dead");
    if (r->inc != 0) return; /* a restart is already scheduled */
    *r = (mb_restart){w, n->index, mp_sim_process_incarnation(w->sim, w->pids[n->index])};
    if (mp_sim_schedule(w->sim, 0, restart_dead, r) != 0)
        mp_sim_fail(w->sim, "members: out of memory (restart)");
}

static int node_boot(mp_env *env, void *arg, uint32_t incarnation, void **out)
{
    mb_arg *a = arg;
    mb_world *w = a->w;
    if (w->trace) env->log_level = MP_LOG_DEBUG;
    mb_node *n = calloc(1, sizeof *n);
    if (!n) return MP_ENOMEM;
    n->w = w;
    n->index = a->index;
    n->env = env;
    const char *members[MB_SEEDS + 1];
    size_t count = 0;
    for (int i = 0; i < MB_SEEDS; i++) members[count++] = w->addrs[i];
    if (a->index >= MB_SEEDS) members[count++] = w->addrs[a->index];
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    cfg.cluster_namespace = MB_NS;
    cfg.self_addr = w->addrs[a->index];
    cfg.members = members;
    cfg.member_count = count;
    cfg.incarnation = incarnation;
    cfg.heartbeat_ns = MB_HEARTBEAT_NS;
    cfg.peer_timeout_ns = MB_PEER_TIMEOUT_NS;
    cfg.call_timeout_ns = MB_CALL_TIMEOUT_NS;
    cfg.membership = true;
    cfg.lease_ns = MB_LEASE_NS;
    cfg.lease_margin_ns = MB_MARGIN_NS;
    cfg.membership_poll_ns = MB_POLL_NS;
    cfg.on_declared_dead = on_declared_dead;
    cfg.hook_ud = n;
    cfg.storage = mp_sim_process_state(w->sim, w->db_pid);
    if (!cfg.storage) {
        free(n);
        return MP_EUNAVAIL;
    }
    int rc = mp_node_create(env, &cfg, &n->node);
    if (rc == 0) rc = mp_node_register_type(n->node, &reg_type);
    if (rc == 0) rc = mp_node_start(n->node);
    if (rc != 0) {
        node_teardown(n);
        return rc;
    }
    for (int i = 0; i < MB_CLIENTS_PER_NODE; i++) {
        n->clients[i].n = n;
        n->clients[i].id = a->index * MB_CLIENTS_PER_NODE + i;
    }
    *out = n;
    if (incarnation > 1) MP_SOMETIMES(true, "members.rejoined");
    for (int i = 0; i < MB_CLIENTS_PER_NODE; i++) client_schedule(&n->clients[i]);
    return 0;
}

static const mp_sim_process_ops mb_ops = {node_boot, node_teardown, node_stop};

static int db_boot(mp_env *env, void *arg, uint32_t incarnation, void **out)
{
    (void)incarnation;
    mb_world *w = arg;
    mp_storage_sim_config sc;
    mp_storage_sim_config_init(&sc);
    sc.buggify = true; /* its failures reach the writes' failure path (members.persist_failed) */
    void **slot = mp_sim_process_disk(w->sim, w->db_pid);
    mp_storage *s = mp_storage_sim_create(env, slot, &sc);
    if (!s) return MP_ENOMEM;
    w->disk = *slot;
    *out = s;
    return 0;
}

static void db_teardown(void *state) { mp_storage_free_now(state); }

static const mp_sim_process_ops db_ops = {db_boot, db_teardown, NULL};

/* ---- chaos ------------------------------------------------------------------------ */

static int spawn_node(mb_world *w, int i)
{
    int pid = mp_sim_spawn(w->sim, w->addrs[i], &mb_ops, &w->args[i]);
    if (pid < 0) return pid;
    w->pids[i] = pid;
    w->spawned[i] = true;
    return 0;
}

static void join_cb(void *ud)
{
    mb_arg *a = ud;
    mb_world *w = a->w;
    if (w->spawned[a->index] || w->healing) return;
    if (spawn_node(w, a->index) != 0) {
        mp_sim_fail(w->sim, "members: cannot spawn joiner m%d", a->index);
        return;
    }
    tr(w, "m%d joins", a->index);
    MP_SOMETIMES(true, "members.join");
}

/* A running member not killed for good, chosen at random (-1: none). */
static int pick_member(mb_world *w, bool allow_paused)
{
    int cand[MB_MAX_NODES], n = 0;
    for (int i = 0; i < w->nodes; i++) {
        if (!w->spawned[i] || w->killed[i]) continue;
        if (!mp_sim_process_running(w->sim, w->pids[i])) continue;
        if (!allow_paused && mp_sim_process_paused(w->sim, w->pids[i])) continue;
        cand[n++] = i;
    }
    if (n == 0) return -1;
    return cand[mp_sim_random_below(w->sim, (uint64_t)n)];
}

static int alive_members(mb_world *w)
{
    int n = 0;
    for (int i = 0; i < w->nodes; i++)
        if (w->spawned[i] && !w->killed[i]) n++;
    return n;
}

static void chaos(void *ud)
{
    mb_world *w = ud;
    if (w->healing || mp_sim_failed(w->sim)) return;
    uint64_t now = mp_sim_now(w->sim);
    int m = pick_member(w, false);
    if (m >= 0) {
        int pid = w->pids[m];
        switch (mp_sim_random_below(w->sim, 10)) {
        case 0:
        case 1:
        case 2: { /* pause longer than the lease */
            uint64_t d = MB_LEASE_NS + MB_LEASE_NS / 2 +
                         mp_sim_random_below(w->sim, MB_LEASE_NS + MB_LEASE_NS / 2);
            tr(w, "chaos: pause m%d for %.3f s", m, (double)d / 1e9);
            if (mp_sim_pause(w->sim, pid, d) == 0) {
                push_quiet(w, now + d);
                MP_SOMETIMES(true, "members.pause");
            }
            break;
        }
        case 3:
        case 4: { /* cut from every peer, not from the db */
            uint64_t d = 500 * MS + mp_sim_random_below(w->sim, 2500 * MS);
            for (int j = 0; j < w->nodes; j++)
                if (j != m && w->spawned[j]) mp_sim_partition(w->sim, pid, w->pids[j], d);
            push_quiet(w, now + d);
            tr(w, "chaos: cut m%d from its peers for %.3f s", m, (double)d / 1e9);
            MP_SOMETIMES(true, "members.cut_from_peers");
            if (d > MB_LEASE_NS + MB_MARGIN_NS) MP_SOMETIMES(true, "members.cut_from_peers_long");
            break;
        }
        case 5:
        case 6: { /* cut from the db, not from the peers */
            uint64_t d = 500 * MS + mp_sim_random_below(w->sim, 2500 * MS);
            mp_sim_partition(w->sim, pid, w->db_pid, d);
            push_quiet(w, now + d);
            tr(w, "chaos: cut m%d from the db for %.3f s", m, (double)d / 1e9);
            MP_SOMETIMES(true, "members.cut_from_db");
            if (d > MB_LEASE_NS + MB_MARGIN_NS) MP_SOMETIMES(true, "members.cut_from_db_long");
            break;
        }
        case 7:
        case 8: { /* graceful leave, then rejoin as a new incarnation */
            uint64_t deadline = 1 * SEC;
            uint64_t delay = 500 * MS + mp_sim_random_below(w->sim, 2500 * MS);
            tr(w, "chaos: graceful leave of m%d, back in %.3f s", m, (double)delay / 1e9);
            if (mp_sim_stop(w->sim, pid, deadline, delay) == 0) {
                push_quiet(w, now + deadline + 1 * SEC + delay);
                MP_SOMETIMES(true, "members.leave");
            }
            break;
        }
        default: /* permanent kill */
            if (w->kills < MB_MAX_KILLS && alive_members(w) > MB_MIN_ALIVE &&
                mp_sim_kill(w->sim, pid) == 0) {
                w->killed[m] = true;
                tr(w, "chaos: m%d killed for good", m);
                w->kills++;
                MP_SOMETIMES(true, "members.kill");
            }
            break;
        }
    }
    uint64_t next = 500 * MS + mp_sim_random_below(w->sim, 1000 * MS);
    if (mp_sim_schedule(w->sim, next, chaos, w) != 0)
        mp_sim_fail(w->sim, "members: out of memory (chaos)");
}

/* ---- liveness and the end -------------------------------------------------------- */

static void probe_reply(void *ud, int status, const void *data, size_t len)
{
    (void)data;
    (void)len;
    mb_probe *p = ud;
    mb_world *w = p->w;
    p->waiting = false;
    p->status = status;
    if (status == 0 && !p->ok) {
        p->ok = true;
        p->ok_at = mp_sim_now(w->sim);
    } else if (status != 0) {
        p->next_at = mp_sim_now(w->sim) + MB_PROBE_RETRY_NS;
    }
}

/* A running, serving member to call from (round robin), or NULL. */
static mb_node *probe_node(mb_world *w)
{
    for (int k = 0; k < w->nodes; k++) {
        int i = (w->probe_rr + k) % w->nodes;
        if (!w->spawned[i] || w->killed[i]) continue;
        if (!mp_sim_process_running(w->sim, w->pids[i])) continue;
        if (mp_sim_process_paused(w->sim, w->pids[i])) continue;
        mb_node *n = mp_sim_process_state(w->sim, w->pids[i]);
        if (!n || !n->node || n->stopping || !mp_node_serving(n->node)) continue;
        w->probe_rr = i + 1;
        return n;
    }
    return NULL;
}

static void probe_send(mb_world *w, int a)
{
    mb_probe *p = &w->probes[a];
    mb_node *n = probe_node(w);
    if (!n) {
        p->next_at = mp_sim_now(w->sim) + MB_PROBE_RETRY_NS;
        return;
    }
    /* A probe is a read op like any other: the oracle checks it. */
    if (w->nops == w->cap) {
        uint32_t cap = w->cap ? w->cap * 2 : 1024;
        mb_op *no = realloc(w->ops, cap * sizeof *no);
        if (!no) {
            mp_sim_fail(w->sim, "members: out of memory (ops)");
            return;
        }
        w->ops = no;
        w->cap = cap;
    }
    uint32_t i = w->nops++;
    mb_op *op = &w->ops[i];
    memset(op, 0, sizeof *op);
    op->kind = OP_READ;
    op->actor = (uint16_t)a;
    op->client = UINT16_MAX;
    char key[16], payload[16];
    snprintf(key, sizeof key, "r-%d", a);
    int pl = snprintf(payload, sizeof payload, "%u", i);
    mp_ref ref;
    if (mp_ref_get(n->node, MB_TYPE, key, &ref) != 0) return;
    p->w = w;
    p->actor = a;
    mp_call_opts opts = {.timeout_ns = MB_PROBE_TIMEOUT_NS};
    p->waiting = true;
    int rc = mp_call(n->node, &ref, "read", payload, (size_t)pl, &opts, probe_reply, p);
    if (rc != 0) {
        p->waiting = false;
        p->next_at = mp_sim_now(w->sim) + MB_PROBE_RETRY_NS;
    }
}

static void stored_cb(void *ud, int status, const mp_storage_record *rec)
{
    mb_stored *st = ud;
    mb_world *w = g_world;
    st->done = true;
    w->stored_done++;
    if (status != 0) {
        mp_sim_fail(w->sim, "members: reading a stored record failed: %s",
                    mp_status_name(status));
        return;
    }
    if (rec->etag == 0) return;
    void *v = NULL;
    if (mp_codec_decode(mp_json_codec(), rec->data, rec->len, &v, NULL) != 0) {
        mp_sim_fail(w->sim, "members: a stored record does not decode");
        return;
    }
    st->present = true;
    st->ver = json_integer_value(json_object_get(v, "ver"));
    st->op = json_integer_value(json_object_get(v, "op"));
    json_decref(v);
}

static void start_stored(mb_world *w)
{
    mp_storage *db = mp_sim_process_state(w->sim, w->db_pid);
    for (int a = 0; a < MB_ACTORS; a++) {
        char key[16], skey[MP_STORAGE_KEY_MAX + 1];
        snprintf(key, sizeof key, "r-%d", a);
        int kl = mp_storage_key(skey, sizeof skey, MB_NS, MB_TYPE, key);
        if (kl < 0 || !db ||
            mp_storage_load_record(db, skey, (size_t)kl, stored_cb, &w->stored[a]) != 0) {
            mp_sim_fail(w->sim, "members: cannot read the stored record of r-%d", a);
            return;
        }
    }
}

static void tick(void *ud)
{
    mb_world *w = ud;
    if (mp_sim_failed(w->sim)) return;
    uint64_t now = mp_sim_now(w->sim);
    switch (w->phase) {
    case P_CHAOS:
        break;
    case P_DRAIN:
        if (w->outstanding == 0 && now >= w->quiet_at) {
            w->phase = P_PROBE;
            for (int a = 0; a < MB_ACTORS; a++) w->probes[a].next_at = now;
        }
        break;
    case P_PROBE: {
        int ok = 0;
        for (int a = 0; a < MB_ACTORS && !mp_sim_failed(w->sim); a++) {
            mb_probe *p = &w->probes[a];
            if (p->ok) {
                ok++;
                continue;
            }
            if (now > w->quiet_at + MB_LIVENESS_NS && !p->waiting) {
                mp_sim_fail(w->sim,
                            "members: I4 liveness: r-%d did not answer within %.1f s of the "
                            "end of the last fault (%.3f s; heal at %.3f s); last status %s",
                            a, (double)MB_LIVENESS_NS / 1e9, (double)w->quiet_at / 1e9,
                            (double)w->heal_at / 1e9, mp_status_name(p->status));
                return;
            }
            if (!p->waiting && now >= p->next_at) probe_send(w, a);
        }
        if (ok == MB_ACTORS) {
            for (int a = 0; a < MB_ACTORS; a++) {
                uint64_t t = w->probes[a].ok_at - w->quiet_at;
                if (w->probes[a].ok_at < w->quiet_at) t = 0;
                if (t > w->worst_probe_ns) w->worst_probe_ns = t;
                if (t > MB_LIVENESS_NS) {
                    mp_sim_fail(w->sim,
                                "members: I4 liveness: r-%d answered %.3f s after the end "
                                "of the last fault (bound %.1f s)",
                                a, (double)t / 1e9, (double)MB_LIVENESS_NS / 1e9);
                    return;
                }
            }
            w->phase = P_STORED;
            start_stored(w);
        }
        break;
    }
    case P_STORED:
        if (w->stored_done == MB_ACTORS) {
            for (int a = 0; a < MB_ACTORS && !mp_sim_failed(w->sim); a++) {
                mb_stored *st = &w->stored[a];
                check_value(w, (unsigned)a, st->present ? st->ver : 0,
                            st->present ? st->op : -1, "I5 the stored record", 0, 0);
            }
            MP_SOMETIMES(true, "members.stored_checked");
            w->phase = P_DONE;
        }
        break;
    case P_DONE:
        return;
    }
    if (mp_sim_schedule(w->sim, MB_TICK_NS, tick, w) != 0)
        mp_sim_fail(w->sim, "members: out of memory (tick)");
}

static void mb_tune(uint64_t seed, mp_sim_faults *f)
{
    (void)seed;
    /* Every process fault is the workload's own (scripted above). */
    f->kill_rate = 0;
    f->partition_rate = 0;
    f->pause_rate = 0;
    f->stop_rate = 0;
    f->oneway_rate = 0;
    f->long_fault_ns = MB_PEER_TIMEOUT_NS;
}

static int mb_setup(mp_sim *sim, const mp_workload_params *params, void **state)
{
    mb_world *w = calloc(1, sizeof *w);
    if (!w) return MP_ENOMEM;
    *state = w;
    g_world = w;
    w->sim = sim;
    w->trace = params && params->trace;
    w->nodes = params && params->nodes >= MB_SEEDS + 1 && params->nodes <= MB_MAX_NODES
                   ? params->nodes
                   : 4 + (int)mp_sim_random_below(sim, 3);
    for (int i = 0; i < w->nodes; i++) {
        snprintf(w->addrs[i], sizeof w->addrs[i], "10.0.4.%d:%d", i + 1, MB_PORT);
        w->args[i] = (mb_arg){w, i};
    }
    w->db_pid = mp_sim_spawn(sim, MB_DB_ADDR, &db_ops, w);
    if (w->db_pid < 0) return w->db_pid;
    mp_sim_set_killable(sim, w->db_pid, false);
    for (int i = 0; i < MB_SEEDS; i++) {
        int rc = spawn_node(w, i);
        if (rc != 0) return rc;
    }
    for (int i = MB_SEEDS; i < w->nodes; i++) {
        uint64_t at = 1 * SEC + mp_sim_random_below(sim, MB_CHAOS_NS / 2);
        int rc = mp_sim_schedule(sim, at, join_cb, &w->args[i]);
        if (rc != 0) return rc;
    }
    int rc = mp_sim_schedule(sim, 2 * SEC, chaos, w);
    if (rc == 0) rc = mp_sim_schedule(sim, MB_TICK_NS, tick, w);
    return rc;
}

static void mb_on_heal(mp_sim *sim, void *state)
{
    mb_world *w = state;
    w->healing = true;
    w->phase = P_DRAIN;
    w->heal_at = mp_sim_now(sim);
    push_quiet(w, w->heal_at);
    for (int i = 0; i < w->nodes; i++) {
        if (!w->spawned[i] || !mp_sim_process_running(sim, w->pids[i])) continue;
        mb_node *n = mp_sim_process_state(sim, w->pids[i]);
        if (!n) continue;
        for (int j = 0; j < MB_CLIENTS_PER_NODE; j++) {
            if (n->clients[j].timer) mp_env_timer_cancel(n->env, n->clients[j].timer);
            n->clients[j].timer = 0;
        }
    }
}

static bool mb_quiescent(mp_sim *sim, void *state)
{
    (void)sim;
    mb_world *w = state;
    return w->phase == P_DONE;
}

static void mb_check(mp_sim *sim, void *state)
{
    mb_world *w = state;
    if (w->n_writes_ok == 0 || w->n_reads_ok == 0)
        mp_sim_fail(sim, "members: no write or no read was ever acknowledged");
}

static void mb_destroy(void *state)
{
    mb_world *w = state;
    if (!w) return;
    free(w->ops);
    free(w->acts);
    if (w->disk) mp_storage_sim_disk_free(w->disk);
    if (g_world == w) g_world = NULL;
    free(w);
}

static const char *const mb_coverage[] = {
    "members.join",
    "members.pause",
    "members.cut_from_peers",
    "members.cut_from_db",
    "members.leave",
    "members.kill",
    "members.declared_dead",
    "members.dead_restarted",
    "members.rejoined",
    "members.call_failed",
    "members.read_after_reactivation",
    "members.stored_checked",
    "members.persist_failed",
    /* the runtime's membership sites (src/runtime) */
    "actor.register_not_owner",
    "actor.directory_not_serving",
    "actor.lookup_not_owner",
    "actor.activation_refused_not_serving",
    "actor.declared_dead",
    "actor.membership_reregistered",
    "actor.member_taken_over",
    "actor.membership_pushed",
    "actor.membership_rebuilt",
    "actor.membership_rebuild_deferred",
    "actor.membership_rebuild_asked_again",
    "actor.membership_rebuild_short",
    "actor.lease_lapsed",
    "actor.lease_serving_again",
    "actor.register_owner_moved",
    "actor.no_member_hosts_type",
    "actor.lookup_retried_on_view_change",
    "actor.refused_not_serving",
    NULL,
};

const mp_sim_workload mp_workload_members = {
    .name = "members",
    .description = "membership table (lease 1 s): joins, graceful leaves, permanent kills, "
                   "pauses past the lease, members cut from their peers or from the db; "
                   "every turn observed: single activation, at most once, no stale read, "
                   "every actor callable within 8 s of the last fault",
    .required_coverage = mb_coverage,
    .chaos_ns = MB_CHAOS_NS,
    .heal_ns = MB_HEAL_NS,
    .tune_faults = mb_tune,
    .setup = mb_setup,
    .on_heal = mb_on_heal,
    .quiescent = mb_quiescent,
    .check = mb_check,
    .destroy = mb_destroy,
};
