/*
 * The exec workload (issue 11): an oracle that sees every execution of every
 * call, under the faults that make one mp_call run several times.
 *
 * Why: the bank deduplicates operation ids, so a request delivered twice is
 * absorbed and no workload noticed that one mp_call can run up to 12 times
 * under restarts, pauses and partitions. Here the actor (ExecRecord) does
 * NOT deduplicate: each execution of its `exec` method appends (op id,
 * execution count) to its persisted state and, because every simulated node
 * lives in this one program, to a workload-global execution log (op, node,
 * incarnation, sim time of the turn start) that the checker reads directly.
 *
 * Cluster: EX_MEMBERS members (10.0.2.x) hosting the actors, EX_CLIENT_NODES
 * client-only nodes (10.0.3.x) that fail over across gateways, and one db
 * process (never faulted) owning the simulated disk every member persists
 * to. Each node (members and client-only alike) runs EX_CLIENTS_PER_NODE
 * client loops, one call at a time, each call with a unique op id
 * "<client>:<seq>" chosen here (the sequence lives in the world, so it stays
 * unique across restarts of the client's node). Members and client-only
 * nodes are killable; the seed opts into the process faults
 * (mp_sim_faults_swarm_process): pauses of 0.5..3 x peer_timeout, graceful
 * restarts (ops->stop -> mp_node_shutdown -> mp_sim_process_exit), one-way
 * partitions and partitions longer than peer_timeout.
 *
 * Invariants, checked at every execution, at every reply and at the end:
 *   I1 at most one execution per op id;
 *   I2 acknowledged (OK) => exactly one execution;
 *   I3 an error documented as "not executed" (NOT_EXECUTED below) => zero
 *      executions;
 *   I4 no execution starts after its caller's deadline plus EX_LATE_MAX_NS
 *      (both from the one
 *      simulated clock);
 *   I5 (end) the persisted records agree: every stored entry is an
 *      execution of the log, no op id stored twice, every acknowledged op
 *      stored (the actor replies only after its save reported back).
 *
 * Keyed retries: clients with an even id send every op with idempotency key
 * = its op id and, when an attempt ends "may have executed", send the same
 * op again (same key, same op id, the attempt number in the payload) up to
 * EX_MAX_ATTEMPTS attempts; they favour r-0 so that one activation sees more
 * than MP_IDEMPOTENCY_KEYS_PER_ACTIVATION keys. Each activation gets an id
 * at on_activate (kept in the instance, logged with each execution) and is
 * dead from its on_deactivate or release, whichever comes first. For a
 * keyed op, I1 becomes (I1k): at most one execution per attempt; two
 * executions in one activation only if more than
 * MP_IDEMPOTENCY_KEYS_PER_ACTIVATION other keyed executions ran in it
 * between them (the key was evicted); an execution in another activation
 * only once the activation of every earlier execution had died. I2 for a
 * keyed op: OK => at least one execution (exactly one unless I1k allows
 * more). I3 and I4 hold per attempt. An OK reply names its execution ("ok
 * <op index> <execution number> <activation>"): it must be an execution of
 * that op, and a reply replayed from the key cache must be the first
 * execution of its activation. MP_EALREADY (replies here are small) fails.
 * I5 allows a keyed op stored as often as it executed. Members set
 * max_mailbox EX_MAX_MAILBOX, so some calls end MP_EQUEUEFULL (I3: never
 * ran).
 *
 * A violation names the op, its executions (node, activation, attempt,
 * time), the caller's outcome and the first invariant violated.
 *
 * After heal: clients stop, every outstanding call ends, then the world
 * waits EX_SETTLE_NS (past every deadline: a late copy still in flight would
 * execute within it), reads every stored record back, and checks.
 *
 * Before the at-most-once work 266 of seeds 1..300 failed (sim_tests.cmake).
 */
#include <assert.h>
#include <inttypes.h>
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

/* ---- error classification --------------------------------------------------
 * Which caller outcomes promise that the request was NOT executed: the
 * runtime's classification (include/moonpool/node.h, "What an error says").
 * `sync_only`: only when mp_call itself returned the error (the call never
 * left); the same status through the callback may have executed.
 * Everything absent (MP_EINDOUBT, MP_ETIMEDOUT, MP_EACTOR, MP_ESTORAGE, a
 * node killed under its caller...) may have executed: 0 or 1 execution. */
static const struct {
    int status;
    bool sync_only;
} NOT_EXECUTED[] = {
    {MP_EINVAL, false},    {MP_ENOTYPE, false},    {MP_ENOMETHOD, false},
    {MP_ETOOBIG, false},   {MP_ECLOSED, true},     {MP_ENOMEM, true},
    {MP_EQUEUEFULL, false}, {MP_ENAMESPACE, false}, {MP_EVERSION, false},
    {MP_EUNAVAIL, false},  {MP_EACTIVATION, false}, {MP_EDEADLOCK, false},
    {MP_EFORWARDS, false},
};

static bool not_executed(int status, bool sync)
{
    for (size_t i = 0; i < sizeof NOT_EXECUTED / sizeof NOT_EXECUTED[0]; i++)
        if (NOT_EXECUTED[i].status == status && (sync || !NOT_EXECUTED[i].sync_only))
            return true;
    return false;
}

#define EX_PORT 4700
#define EX_NS "exec"
#define EX_TYPE "ExecRecord"
#define EX_DB_ADDR "10.0.9.1:4700"
#define EX_MEMBERS 3
#define EX_CLIENT_NODES 2
#define EX_NODES (EX_MEMBERS + EX_CLIENT_NODES)
#define EX_CLIENTS_PER_NODE 2
#define EX_CLIENTS (EX_NODES * EX_CLIENTS_PER_NODE)
#define EX_ACTORS 8
#define EX_MAX_EXEC 16 /* executions remembered per op (more are counted) */
#define EX_HEARTBEAT_NS (100 * MP_SIM_NS_PER_MS)
#define EX_PEER_TIMEOUT_NS (1 * MP_SIM_NS_PER_S)
#define EX_CALL_TIMEOUT_NS (4 * MP_SIM_NS_PER_S)
#define EX_THINK_MAX_NS (150 * MP_SIM_NS_PER_MS)
#define EX_TICK_NS (100 * MP_SIM_NS_PER_MS)
/* The contract's bound on a late start (node.h, "Deadlines"): with no
 * shared clock a node cannot see transit time, so each hop may add up to
 * two heartbeats of undetected delay (a longer one shows as a silence on
 * the connection and ages the request) plus a millisecond of ttl rounding.
 * Calls here take at most three hops (client node, gateway, forward). */
#define EX_HOPS_MAX 3
#define EX_LATE_MAX_NS (EX_HOPS_MAX * (2 * EX_HEARTBEAT_NS + MP_SIM_NS_PER_MS))
#define EX_SETTLE_NS (EX_CALL_TIMEOUT_NS + 2 * MP_SIM_NS_PER_S)
/* Keyed clients (even client ids) send every op with idempotency key = its
 * op id and, when an attempt ends "may have executed", send it again with
 * the same key and op id, up to EX_MAX_ATTEMPTS attempts in all. */
#define EX_MAX_ATTEMPTS 3
/* Members bound their mailboxes this low so that some calls are refused
 * with MP_EQUEUEFULL (not executed: I3 checks they never ran). */
#define EX_MAX_MAILBOX 2

typedef enum { O_PENDING = 0, O_OK, O_ERROR, O_SYNC_ERROR, O_LOST } ex_outcome;

typedef struct ex_exec {
    int node;         /* node index */
    uint32_t inc;     /* its incarnation */
    uint64_t at;      /* sim time the turn started */
    uint32_t act;     /* activation id (ex_act index) */
    uint32_t act_ord; /* keyed executions the activation had started before */
    uint8_t attempt;  /* which attempt of the op this is (0 = first) */
} ex_exec;

/* One activation of ExecRecord: numbered at on_activate, dead from its
 * on_deactivate or release (the earlier), whatever ended it. */
typedef struct ex_act {
    int node;
    uint32_t inc;
    uint64_t dead_at; /* 0: alive */
    uint32_t keyed;   /* keyed executions started in it */
    mp_msg *msg;      /* the turn waiting for its persist */
    char reply[48];
} ex_act;

typedef struct ex_op {
    uint16_t client;
    uint32_t seq;
    uint16_t actor;
    bool keyed;
    uint8_t attempts; /* attempts sent */
    uint8_t outcome;
    int status;
    uint64_t issued_at, deadline;
    char err[48];
    /* Per attempt: how it ended (outcome/status), its deadline. */
    uint8_t att_outcome[EX_MAX_ATTEMPTS];
    int att_status[EX_MAX_ATTEMPTS];
    uint64_t att_deadline[EX_MAX_ATTEMPTS];
    uint32_t nexec;
    ex_exec exec[EX_MAX_EXEC];
} ex_op;

struct ex_world;

typedef struct ex_client {
    struct ex_node *n;
    int id;
    mp_timer_id timer;
    bool waiting;
    uint32_t op;
} ex_client;

typedef struct ex_node {
    struct ex_world *w;
    int index;
    mp_env *env;
    mp_node *node; /* NULL once a graceful shutdown released it */
    bool stopping;
    ex_client clients[EX_CLIENTS_PER_NODE];
} ex_node;

typedef struct ex_arg {
    struct ex_world *w;
    int index;
} ex_arg;

typedef enum { P_CHAOS = 0, P_DRAIN, P_SETTLE, P_STORED, P_DONE } ex_phase;

typedef struct ex_stored {
    bool done;
    json_t *entries; /* array of [op id, count] or NULL */
} ex_stored;

typedef struct ex_world {
    bool trace; /* mp_workload_params.trace: nodes log at debug */
    mp_sim *sim;
    char addrs[EX_NODES][32];
    const char *members[EX_MEMBERS];
    int pids[EX_NODES];
    ex_arg args[EX_NODES];
    int db_pid;
    void *disk;
    uint32_t next_seq[EX_CLIENTS];
    ex_op *ops;
    uint32_t nops, cap;
    uint32_t outstanding;
    bool healing;
    ex_phase phase;
    uint64_t settle_until;
    ex_stored stored[EX_ACTORS];
    int stored_done;
    uint64_t n_ok, n_err, n_lost, n_sync, n_retry, n_replayed;
    ex_act *acts;
    uint32_t nacts, acts_cap;
} ex_world;

/* The actor handlers reach the world through this (one world per thread). */
static __thread ex_world *g_world;

/* ---- reporting -------------------------------------------------------------- */

static const char *node_name(int i, char *buf, size_t cap)
{
    if (i < EX_MEMBERS)
        snprintf(buf, cap, "m%d", i);
    else
        snprintf(buf, cap, "c%d", i - EX_MEMBERS);
    return buf;
}

static void describe(const ex_world *w, const ex_op *op, char *buf, size_t cap)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "op %u:%u (actor r-%u) executed %u time%s (",
                          op->client, op->seq, op->actor, op->nexec,
                          op->nexec == 1 ? "" : "s");
    uint32_t shown = op->nexec < EX_MAX_EXEC ? op->nexec : EX_MAX_EXEC;
    for (uint32_t i = 0; i < shown && n < cap; i++) {
        char nm[16];
        n += (size_t)snprintf(buf + n, cap - n,
                              "%snode %s inc %u activation %u (%s %.3f s) attempt %u at %.3f s",
                              i ? ", " : "", node_name(op->exec[i].node, nm, sizeof nm),
                              op->exec[i].inc, op->exec[i].act,
                              w->acts[op->exec[i].act].dead_at ? "dead at" : "alive at",
                              (double)(w->acts[op->exec[i].act].dead_at
                                           ? w->acts[op->exec[i].act].dead_at
                                           : mp_sim_now(w->sim)) / 1e9,
                              op->exec[i].attempt + 1u, (double)op->exec[i].at / 1e9);
    }
    if (n >= cap) return;
    const char *oc = op->outcome == O_PENDING  ? "pending"
                     : op->outcome == O_OK     ? "OK"
                     : op->outcome == O_LOST   ? "lost (caller's node died)"
                     : op->outcome == O_ERROR  ? "error"
                                               : "synchronous error";
    char cn[16];
    n += (size_t)snprintf(buf + n, cap - n,
                          "); %s, %u attempt%s; caller client %u on node %s issued at %.3f s, "
                          "deadline %.3f s, outcome %s",
                          op->keyed ? "keyed" : "unkeyed", op->attempts,
                          op->attempts == 1 ? "" : "s", op->client,
                          node_name(op->client / EX_CLIENTS_PER_NODE, cn, sizeof cn),
                          (double)op->issued_at / 1e9, (double)op->deadline / 1e9, oc);
    for (unsigned a = 0; a + 1 < op->attempts && n < cap; a++)
        n += (size_t)snprintf(buf + n, cap - n, "%s attempt %u ended %s",
                              a ? "," : "; earlier:", a + 1,
                              mp_status_name(op->att_status[a]));
    if (n >= cap) return;
    if (n < cap && (op->outcome == O_ERROR || op->outcome == O_SYNC_ERROR))
        snprintf(buf + n, cap - n, " %s '%s'", mp_status_name(op->status), op->err);
    (void)w;
}

static void violation(ex_world *w, const ex_op *op, const char *inv)
{
    char d[1400];
    describe(w, op, d, sizeof d);
    mp_sim_fail(w->sim, "exec: %s violated: %s", inv, d);
}

/* Checks that hold at any moment (I1, I2, I3). */
static void check_op(ex_world *w, const ex_op *op, bool final)
{
    (void)final;
    uint32_t shown = op->nexec < EX_MAX_EXEC ? op->nexec : EX_MAX_EXEC;
    if (!op->keyed && op->nexec > 1) {
        violation(w, op, op->outcome == O_OK ? "I1 at most once (acknowledged op)"
                                             : "I1 at most once");
        return;
    }
    if (op->keyed) {
        /* Each attempt is one request: at most one execution each. */
        if (op->nexec > op->attempts || op->nexec > EX_MAX_EXEC) {
            violation(w, op, "I1k at most one execution per attempt");
            return;
        }
        for (uint32_t j = 0; j < shown; j++) {
            const ex_exec *b = &op->exec[j];
            for (uint32_t i = 0; i < j; i++) {
                const ex_exec *a = &op->exec[i];
                if (a->attempt == b->attempt) {
                    violation(w, op, "I1k at most one execution per attempt");
                    return;
                }
                if (a->act == b->act) {
                    /* Same activation: only once its key was evicted, i.e.
                     * MP_IDEMPOTENCY_KEYS_PER_ACTIVATION other keyed turns
                     * ran in it between the two. */
                    if (b->act_ord - a->act_ord <= MP_IDEMPOTENCY_KEYS_PER_ACTIVATION) {
                        violation(w, op, "I1k keyed op executed twice by one activation");
                        return;
                    }
                } else {
                    const ex_act *aa = &w->acts[a->act];
                    if (aa->dead_at == 0 || aa->dead_at > b->at) {
                        violation(w, op,
                                  "I1k keyed op executed again while the activation that "
                                  "ran it was alive");
                        return;
                    }
                }
            }
        }
    }
    if (op->outcome == O_OK && op->nexec == 0) {
        violation(w, op, "I2 acknowledged => executed");
        return;
    }
    for (unsigned at = 0; at < op->attempts; at++) {
        uint8_t oc = op->att_outcome[at];
        if ((oc == O_ERROR || oc == O_SYNC_ERROR) &&
            not_executed(op->att_status[at], oc == O_SYNC_ERROR)) {
            for (uint32_t i = 0; i < shown; i++)
                if (op->exec[i].attempt == at) {
                    violation(w, op, "I3 'not executed' error => no execution");
                    return;
                }
        }
    }
}

/* ---- the actor ---------------------------------------------------------------- */

static int node_of_env(ex_world *w, mp_env *env)
{
    for (int i = 0; i < EX_NODES; i++)
        if (env->name && strcmp(env->name, w->addrs[i]) == 0) return i;
    return -1;
}

/* The activation's instance: its id in w->acts (0: on_activate never ran). */
typedef struct ex_inst {
    uint32_t act;
} ex_inst;

static int ex_activate(mp_actor *self, void *instance)
{
    ex_world *w = g_world;
    ex_inst *in = instance;
    if (!w) return MP_EINVAL;
    if (w->nacts == w->acts_cap) {
        uint32_t cap = w->acts_cap ? w->acts_cap * 2 : 64;
        ex_act *na = realloc(w->acts, cap * sizeof *na);
        if (!na) return MP_ENOMEM;
        w->acts = na;
        w->acts_cap = cap;
    }
    if (w->nacts == 0) {
        memset(&w->acts[0], 0, sizeof w->acts[0]); /* id 0: none */
        w->nacts = 1;
    }
    uint32_t id = w->nacts++;
    int node = node_of_env(w, mp_actor_env(self));
    w->acts[id] = (ex_act){.node = node,
                           .inc = node >= 0 ? mp_sim_process_incarnation(w->sim, w->pids[node])
                                            : 0};
    in->act = id;
    return 0;
}

static void act_ended(ex_inst *in)
{
    ex_world *w = g_world;
    if (!w || in->act == 0 || in->act >= w->nacts) return;
    ex_act *a = &w->acts[in->act];
    if (!a->dead_at) a->dead_at = mp_sim_now(w->sim);
    a->msg = NULL;
}

static void ex_deactivate(mp_actor *self, void *instance, mp_deactivate_reason reason)
{
    (void)self;
    (void)reason;
    act_ended(instance);
}

static void ex_release(void *instance) { act_ended(instance); }

static void persisted(void *ud, int status)
{
    ex_world *w = g_world;
    uint32_t id = (uint32_t)(uintptr_t)ud;
    if (!w || id == 0 || id >= w->nacts || !w->acts[id].msg) return;
    ex_act *a = &w->acts[id];
    mp_msg *msg = a->msg;
    a->msg = NULL;
    if (status == 0) {
        mp_reply(msg, a->reply, strlen(a->reply));
    } else {
        mp_reply_error(msg, status, "persist failed");
    }
}

static void h_exec(mp_actor *self, void *inst, mp_msg *msg, const void *payload,
                   size_t len)
{
    ex_inst *in = inst;
    ex_world *w = g_world;
    char buf[64];
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, payload, len);
    buf[len] = 0;
    unsigned idx = 0, client = 0, seq = 0, attempt = 0;
    if (!w || sscanf(buf, "%u %u:%u %u", &idx, &client, &seq, &attempt) != 4 ||
        idx >= w->nops || w->ops[idx].client != client || w->ops[idx].seq != seq ||
        attempt >= w->ops[idx].attempts || in->act == 0 || in->act >= w->nacts) {
        if (w) mp_sim_fail(w->sim, "exec: malformed request '%s'", buf);
        mp_reply_error(msg, MP_EINVAL, "malformed");
        return;
    }
    ex_op *op = &w->ops[idx];
    mp_env *env = mp_actor_env(self);
    uint64_t now = mp_sim_now(w->sim); /* one clock for the oracle: nodes' may differ */
    int node = node_of_env(w, env);
    ex_act *act = &w->acts[in->act];
    uint32_t k = op->nexec;
    if (op->nexec < EX_MAX_EXEC) {
        op->exec[op->nexec] = (ex_exec){
            node, node >= 0 ? mp_sim_process_incarnation(w->sim, w->pids[node]) : 0, now,
            in->act, act->keyed, (uint8_t)attempt};
    }
    if (op->keyed) act->keyed++;
    op->nexec++;
    MP_SOMETIMES(true, "exec.executed");
    if (attempt > 0) MP_SOMETIMES(true, "exec.retry_executed");
    if (op->keyed && op->nexec > 1) MP_SOMETIMES(true, "exec.keyed_executed_again");
    if (now > op->att_deadline[attempt] + EX_LATE_MAX_NS) {
        violation(w, op, "I4 no execution after the caller's deadline");
    } else {
        check_op(w, op, false);
    }
    /* Persist (op id, execution count) appended to the record. */
    char opid[32];
    snprintf(opid, sizeof opid, "%u:%u", client, seq);
    json_t *s = mp_state_get(self);
    if (!s) {
        s = json_pack("{s:[]}", "ex");
        mp_state_set(self, s);
    }
    json_t *ex = json_object_get(s, "ex");
    if (!json_is_array(ex)) {
        mp_reply_error(msg, MP_ECORRUPT, "malformed state");
        return;
    }
    json_int_t count = 1;
    size_t i;
    json_t *e;
    json_array_foreach(ex, i, e) {
        const char *id = json_string_value(json_array_get(e, 0));
        if (id && strcmp(id, opid) == 0) count++;
    }
    json_array_append_new(ex, json_pack("[s,I]", opid, count));
    /* The reply names this execution (op index, execution number,
     * activation): a retry answered from the key cache must carry it. */
    snprintf(act->reply, sizeof act->reply, "ok %u %u %u", idx, k, in->act);
    act->msg = msg;
    int rc = mp_state_persist(self, persisted, (void *)(uintptr_t)in->act);
    if (rc != 0) {
        act->msg = NULL;
        mp_reply_error(msg, rc, "persist refused");
        mp_actor_deactivate(self);
    }
}

static const mp_method_def ex_methods[] = {{"exec", h_exec}};
static const mp_state_type ex_state = {.codec = NULL};

static const mp_actor_type ex_type = {
    .name = EX_TYPE,
    .instance_size = sizeof(ex_inst),
    .on_activate = ex_activate,
    .on_deactivate = ex_deactivate,
    .release = ex_release,
    .methods = ex_methods,
    .method_count = 1,
    .state = &ex_state,
};

/* ---- clients ------------------------------------------------------------------ */

static void client_schedule(ex_client *c);

static void client_send(ex_client *c);

/* Whether a keyed client sends the op again after this attempt: it ended
 * "may have executed" (node.h, "What an error says"). */
static bool may_retry(const ex_client *c, const ex_op *op, int status)
{
    if (!op->keyed || op->attempts >= EX_MAX_ATTEMPTS) return false;
    if (c->n->stopping || !c->n->node) return false;
    return status != 0 && status != MP_EACTOR && !not_executed(status, false);
}

/* An OK reply names the execution that produced it ("ok idx k act"). */
static void check_reply(ex_world *w, const ex_op *op, unsigned attempt, const void *data,
                        size_t len)
{
    char buf[64];
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, data, len);
    buf[len] = 0;
    unsigned idx, k, act;
    if (sscanf(buf, "ok %u %u %u", &idx, &k, &act) != 3 || &w->ops[idx] != op ||
        k >= op->nexec || k >= EX_MAX_EXEC || op->exec[k].act != act) {
        mp_sim_fail(w->sim, "exec: op %u:%u attempt %u: reply '%s' names no execution of it",
                    op->client, op->seq, attempt + 1, buf);
        return;
    }
    if (op->exec[k].attempt != attempt) {
        /* Answered from the key cache: the first reply of that activation. */
        w->n_replayed++;
        MP_SOMETIMES(true, "exec.replayed_reply");
        for (unsigned i = 0; i < k; i++)
            if (op->exec[i].act == act) {
                mp_sim_fail(w->sim,
                            "exec: op %u:%u attempt %u: replayed reply '%s' is not the "
                            "first reply of activation %u",
                            op->client, op->seq, attempt + 1, buf, act);
                return;
            }
    }
}

static void client_reply(void *ud, int status, const void *data, size_t len)
{
    ex_client *c = ud;
    ex_world *w = c->n->w;
    assert(c->waiting);
    c->waiting = false;
    assert(w->outstanding > 0);
    w->outstanding--;
    ex_op *op = &w->ops[c->op];
    unsigned attempt = op->attempts - 1u;
    op->status = status;
    op->att_status[attempt] = status;
    if (status == 0) {
        op->outcome = O_OK;
        w->n_ok++;
        MP_SOMETIMES(true, "exec.acknowledged");
        if (attempt > 0) MP_SOMETIMES(true, "exec.retry_acknowledged");
        if (c->n->index >= EX_MEMBERS) MP_SOMETIMES(true, "exec.client_only_acknowledged");
        check_reply(w, op, attempt, data, len);
    } else {
        op->outcome = O_ERROR;
        w->n_err++;
        snprintf(op->err, sizeof op->err, "%.*s", (int)(len > 40 ? 40 : len),
                 (const char *)data);
        MP_SOMETIMES(true, "exec.call_failed");
        if (status == MP_EQUEUEFULL) MP_SOMETIMES(true, "exec.queue_full");
        if (status == MP_EALREADY)
            mp_sim_fail(w->sim, "exec: op %u:%u attempt %u: MP_EALREADY for a small reply",
                        op->client, op->seq, attempt + 1);
    }
    op->att_outcome[attempt] = op->outcome;
    check_op(w, op, false);
    if (may_retry(c, op, status)) {
        w->n_retry++;
        MP_SOMETIMES(true, "exec.retry_sent");
        client_send(c);
        return;
    }
    client_schedule(c);
}

/* Send attempt op->attempts of the client's current op. */
static void client_send(ex_client *c)
{
    ex_node *n = c->n;
    ex_world *w = n->w;
    ex_op *op = &w->ops[c->op];
    unsigned attempt = op->attempts++;
    uint64_t now = mp_sim_now(w->sim); /* the oracle's one clock */
    op->att_deadline[attempt] = now + EX_CALL_TIMEOUT_NS;
    op->deadline = op->att_deadline[attempt];
    op->outcome = O_PENDING;
    char key[16], payload[64], ikey[32];
    snprintf(key, sizeof key, "r-%u", op->actor);
    int pl = snprintf(payload, sizeof payload, "%u %u:%u %u", c->op, op->client, op->seq,
                      attempt);
    snprintf(ikey, sizeof ikey, "%u:%u", op->client, op->seq);
    mp_ref ref;
    int rc = mp_ref_get(n->node, EX_TYPE, key, &ref);
    assert(rc == 0);
    mp_call_opts opts = {.timeout_ns = EX_CALL_TIMEOUT_NS,
                         .idempotency_key = op->keyed ? ikey : NULL};
    c->waiting = true;
    w->outstanding++;
    rc = mp_call(n->node, &ref, "exec", payload, (size_t)pl, &opts, client_reply, c);
    if (rc != 0) {
        c->waiting = false;
        w->outstanding--;
        op->outcome = O_SYNC_ERROR;
        op->status = rc;
        op->att_outcome[attempt] = O_SYNC_ERROR;
        op->att_status[attempt] = rc;
        w->n_sync++;
        check_op(w, op, false);
        client_schedule(c);
    }
}

static void client_issue(ex_client *c)
{
    ex_node *n = c->n;
    ex_world *w = n->w;
    if (w->nops == w->cap) {
        uint32_t cap = w->cap ? w->cap * 2 : 1024;
        ex_op *no = realloc(w->ops, cap * sizeof *no);
        if (!no) {
            mp_sim_fail(w->sim, "exec: out of memory (ops)");
            return;
        }
        w->ops = no;
        w->cap = cap;
    }
    uint32_t i = w->nops++;
    ex_op *op = &w->ops[i];
    memset(op, 0, sizeof *op);
    op->client = (uint16_t)c->id;
    op->seq = ++w->next_seq[c->id];
    op->keyed = c->id % 2 == 0;
    /* Keyed ops favour r-0, so that one activation sees more than
     * MP_IDEMPOTENCY_KEYS_PER_ACTIVATION keys (actor.idempotency_key_evicted). */
    if (op->keyed && mp_env_random_below(n->env, 4) != 0)
        op->actor = 0;
    else
        op->actor = (uint16_t)mp_env_random_below(n->env, EX_ACTORS);
    op->issued_at = mp_sim_now(w->sim);
    c->op = i;
    client_send(c);
}

static void client_fire(void *ud)
{
    ex_client *c = ud;
    c->timer = 0;
    if (c->n->w->healing || c->n->stopping || !c->n->node) return;
    client_issue(c);
}

static void client_schedule(ex_client *c)
{
    ex_node *n = c->n;
    if (n->w->healing || n->stopping || !n->node) return;
    uint64_t d = 1 + mp_env_random_below(n->env, EX_THINK_MAX_NS);
    c->timer = mp_env_timer_start(n->env, d, client_fire, c);
    if (!c->timer) mp_sim_fail(n->w->sim, "exec: out of memory (timer)");
}

/* ---- processes ------------------------------------------------------------------ */

static void node_teardown(void *state)
{
    ex_node *n = state;
    if (!n) return;
    ex_world *w = n->w;
    for (int i = 0; i < EX_CLIENTS_PER_NODE; i++) {
        ex_client *c = &n->clients[i];
        if (c->timer) mp_env_timer_cancel(n->env, c->timer);
        if (c->waiting) {
            /* The caller died with its node: may have executed. */
            c->waiting = false;
            w->ops[c->op].outcome = O_LOST;
            w->ops[c->op].att_outcome[w->ops[c->op].attempts - 1u] = O_LOST;
            w->n_lost++;
            assert(w->outstanding > 0);
            w->outstanding--;
        }
    }
    if (n->node) mp_node_free_now(n->node);
    free(n);
}

static void shutdown_done(void *ud)
{
    ex_node *n = ud;
    n->node = NULL; /* released by the runtime */
    mp_sim_process_exit(n->env);
}

static void node_stop(void *state, uint64_t deadline_ns)
{
    ex_node *n = state;
    if (!n || !n->node || n->stopping) return;
    n->stopping = true;
    for (int i = 0; i < EX_CLIENTS_PER_NODE; i++) {
        ex_client *c = &n->clients[i];
        if (c->timer) mp_env_timer_cancel(n->env, c->timer);
        c->timer = 0;
    }
    MP_SOMETIMES(true, "exec.graceful_shutdown");
    mp_node_shutdown(n->node, deadline_ns, shutdown_done, n);
}

static int node_boot(mp_env *env, void *arg, uint32_t incarnation, void **out)
{
    if (((ex_arg *)arg)->w->trace) env->log_level = MP_LOG_DEBUG;
    ex_arg *a = arg;
    ex_world *w = a->w;
    ex_node *n = calloc(1, sizeof *n);
    if (!n) return MP_ENOMEM;
    n->w = w;
    n->index = a->index;
    n->env = env;
    bool client_only = a->index >= EX_MEMBERS;
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    cfg.cluster_namespace = EX_NS;
    cfg.self_addr = w->addrs[a->index];
    cfg.members = w->members;
    cfg.member_count = EX_MEMBERS;
    cfg.incarnation = incarnation;
    cfg.heartbeat_ns = EX_HEARTBEAT_NS;
    cfg.peer_timeout_ns = EX_PEER_TIMEOUT_NS;
    cfg.client_only = client_only;
    if (!client_only) cfg.max_mailbox = EX_MAX_MAILBOX;
    if (!client_only) {
        cfg.storage = mp_sim_process_state(w->sim, w->db_pid);
        if (!cfg.storage) {
            free(n);
            return MP_EUNAVAIL;
        }
    }
    int rc = mp_node_create(env, &cfg, &n->node);
    if (rc == 0 && !client_only) rc = mp_node_register_type(n->node, &ex_type);
    if (rc == 0) rc = mp_node_start(n->node);
    if (rc != 0) {
        node_teardown(n);
        return rc;
    }
    for (int i = 0; i < EX_CLIENTS_PER_NODE; i++) {
        n->clients[i].n = n;
        n->clients[i].id = a->index * EX_CLIENTS_PER_NODE + i;
    }
    *out = n;
    for (int i = 0; i < EX_CLIENTS_PER_NODE; i++) client_schedule(&n->clients[i]);
    return 0;
}

static const mp_sim_process_ops ex_ops = {node_boot, node_teardown, node_stop};

static int db_boot(mp_env *env, void *arg, uint32_t incarnation, void **out)
{
    (void)incarnation;
    ex_world *w = arg;
    mp_storage_sim_config sc;
    mp_storage_sim_config_init(&sc);
    sc.buggify = false; /* storage faults are the bank's subject, not ours */
    void **slot = mp_sim_process_disk(w->sim, w->db_pid);
    mp_storage *s = mp_storage_sim_create(env, slot, &sc);
    if (!s) return MP_ENOMEM;
    w->disk = *slot;
    *out = s;
    return 0;
}

static void db_teardown(void *state) { mp_storage_free_now(state); }

static const mp_sim_process_ops db_ops = {db_boot, db_teardown, NULL};

/* ---- the driver ------------------------------------------------------------------ */

static void stored_cb(void *ud, int status, const mp_storage_record *rec)
{
    ex_stored *st = ud;
    ex_world *w = g_world;
    st->done = true;
    w->stored_done++;
    if (status != 0) {
        mp_sim_fail(w->sim, "exec: reading a stored record failed: %s", mp_status_name(status));
        return;
    }
    if (rec->etag == 0) return;
    void *v = NULL;
    if (mp_codec_decode(mp_json_codec(), rec->data, rec->len, &v, NULL) != 0) {
        mp_sim_fail(w->sim, "exec: a stored record does not decode");
        return;
    }
    json_t *ex = json_object_get(v, "ex");
    if (json_is_array(ex)) st->entries = json_incref(ex);
    json_decref(v);
}

static void start_stored(ex_world *w)
{
    mp_storage *db = mp_sim_process_state(w->sim, w->db_pid);
    for (int a = 0; a < EX_ACTORS; a++) {
        char key[16], skey[MP_STORAGE_KEY_MAX + 1];
        snprintf(key, sizeof key, "r-%d", a);
        int kl = mp_storage_key(skey, sizeof skey, EX_NS, EX_TYPE, key);
        if (kl < 0 || !db ||
            mp_storage_load_record(db, skey, (size_t)kl, stored_cb, &w->stored[a]) != 0) {
            mp_sim_fail(w->sim, "exec: cannot read the stored record of r-%d", a);
            return;
        }
    }
}

static ex_op *find_op(ex_world *w, unsigned client, unsigned seq)
{
    /* Ops of one client are issued in seq order: binary search would do,
     * a linear scan is enough at this size. */
    for (uint32_t i = 0; i < w->nops; i++)
        if (w->ops[i].client == client && w->ops[i].seq == seq) return &w->ops[i];
    return NULL;
}

static void check_stored(ex_world *w)
{
    uint32_t *stored_n = calloc(w->nops ? w->nops : 1, sizeof *stored_n);
    if (!stored_n) {
        mp_sim_fail(w->sim, "exec: out of memory (stored check)");
        return;
    }
    for (int a = 0; a < EX_ACTORS && !mp_sim_failed(w->sim); a++) {
        json_t *ex = w->stored[a].entries;
        size_t i;
        json_t *e;
        json_array_foreach(ex, i, e) {
            unsigned client, seq;
            const char *id = json_string_value(json_array_get(e, 0));
            json_int_t count = json_integer_value(json_array_get(e, 1));
            if (!id || sscanf(id, "%u:%u", &client, &seq) != 2) {
                mp_sim_fail(w->sim, "exec: r-%d stores a malformed entry", a);
                break;
            }
            ex_op *op = find_op(w, client, seq);
            if (!op) {
                mp_sim_fail(w->sim, "exec: r-%d stores op %s that was never issued", a, id);
                break;
            }
            uint32_t k = (uint32_t)(op - w->ops);
            stored_n[k]++;
            if (!op->keyed && (count > 1 || stored_n[k] > 1)) {
                violation(w, op, "I1 at most once (persisted record holds a second execution)");
                break;
            }
            if (stored_n[k] > op->nexec) {
                violation(w, op, "I5 persisted execution missing from the execution log");
                break;
            }
        }
    }
    for (uint32_t k = 0; k < w->nops && !mp_sim_failed(w->sim); k++) {
        if (w->ops[k].outcome == O_OK && stored_n[k] == 0)
            violation(w, &w->ops[k], "I5 acknowledged op missing from the persisted record");
    }
    free(stored_n);
    MP_SOMETIMES(true, "exec.stored_checked");
}

static void tick(void *ud)
{
    ex_world *w = ud;
    if (mp_sim_failed(w->sim)) return;
    switch (w->phase) {
    case P_CHAOS:
        break;
    case P_DRAIN:
        if (w->outstanding == 0) {
            w->phase = P_SETTLE;
            w->settle_until = mp_sim_now(w->sim) + EX_SETTLE_NS;
        }
        break;
    case P_SETTLE:
        if (mp_sim_now(w->sim) >= w->settle_until) {
            w->phase = P_STORED;
            start_stored(w);
        }
        break;
    case P_STORED:
        if (w->stored_done == EX_ACTORS) {
            for (uint32_t i = 0; i < w->nops && !mp_sim_failed(w->sim); i++)
                check_op(w, &w->ops[i], true);
            if (!mp_sim_failed(w->sim)) check_stored(w);
            w->phase = P_DONE;
        }
        break;
    case P_DONE:
        return;
    }
    if (mp_sim_schedule(w->sim, EX_TICK_NS, tick, w) != 0)
        mp_sim_fail(w->sim, "exec: out of memory (tick)");
}

static void ex_tune(uint64_t seed, mp_sim_faults *f)
{
    mp_sim_faults_swarm_process(seed, EX_PEER_TIMEOUT_NS, f);
}

static int ex_setup(mp_sim *sim, const mp_workload_params *params, void **state)
{
    ex_world *w = calloc(1, sizeof *w);
    if (!w) return MP_ENOMEM;
    *state = w;
    g_world = w;
    w->sim = sim;
    w->trace = params && params->trace;
    for (int i = 0; i < EX_NODES; i++) {
        if (i < EX_MEMBERS)
            snprintf(w->addrs[i], sizeof w->addrs[i], "10.0.2.%d:%d", i + 1, EX_PORT);
        else
            snprintf(w->addrs[i], sizeof w->addrs[i], "10.0.3.%d:%d", i - EX_MEMBERS + 1,
                     EX_PORT);
        if (i < EX_MEMBERS) w->members[i] = w->addrs[i];
        w->args[i] = (ex_arg){w, i};
    }
    w->db_pid = mp_sim_spawn(sim, EX_DB_ADDR, &db_ops, w);
    if (w->db_pid < 0) return w->db_pid;
    mp_sim_set_killable(sim, w->db_pid, false);
    for (int i = 0; i < EX_NODES; i++) {
        int pid = mp_sim_spawn(sim, w->addrs[i], &ex_ops, &w->args[i]);
        if (pid < 0) return pid;
        w->pids[i] = pid;
        mp_sim_set_killable(sim, pid, true);
    }
    return mp_sim_schedule(sim, EX_TICK_NS, tick, w);
}

static void ex_on_heal(mp_sim *sim, void *state)
{
    ex_world *w = state;
    w->healing = true;
    w->phase = P_DRAIN;
    for (int i = 0; i < EX_NODES; i++) {
        if (!mp_sim_process_running(sim, w->pids[i])) continue;
        ex_node *n = mp_sim_process_state(sim, w->pids[i]);
        if (!n) continue;
        for (int j = 0; j < EX_CLIENTS_PER_NODE; j++) {
            if (n->clients[j].timer) mp_env_timer_cancel(n->env, n->clients[j].timer);
            n->clients[j].timer = 0;
        }
    }
}

static bool ex_quiescent(mp_sim *sim, void *state)
{
    (void)sim;
    ex_world *w = state;
    return w->phase == P_DONE;
}

static void ex_check(mp_sim *sim, void *state)
{
    ex_world *w = state;
    if (w->n_ok == 0) mp_sim_fail(sim, "exec: no call was ever acknowledged");
}

static void ex_destroy(void *state)
{
    ex_world *w = state;
    if (!w) return;
    for (int a = 0; a < EX_ACTORS; a++) json_decref(w->stored[a].entries);
    free(w->ops);
    free(w->acts);
    if (w->disk) mp_storage_sim_disk_free(w->disk);
    if (g_world == w) g_world = NULL;
    free(w);
}

static const char *const ex_coverage[] = {
    "exec.executed",
    "exec.acknowledged",
    "exec.client_only_acknowledged",
    "exec.call_failed",
    "exec.graceful_shutdown",
    "exec.stored_checked",
    "sim.fault.pause",
    "sim.fault.pause_long",
    "sim.fault.stop",
    "sim.fault.stop_graceful_exit",
    "sim.fault.partition_oneway",
    "sim.fault.partition_long",
    "sim.fault.partition_oneway_long",
    "sim.fault.write_failed",
    "sim.fault.clock_offset",
    "actor.client_failover",
    "actor.client_failover_unsent",
    "actor.request_from_client",
    "actor.directory_recovering",
    "actor.directory_recovered_early",
    "actor.register_while_recovering",
    "actor.reregister_retried",
    "actor.rerouted_after_deactivation",
    "actor.too_many_forwards",
    "actor.idempotent_replay",
    "actor.mailbox_full",
    "actor.idempotency_key_evicted",
    "exec.retry_sent",
    "exec.retry_executed",
    "exec.retry_acknowledged",
    "exec.replayed_reply",
    "exec.keyed_executed_again",
    "exec.queue_full",
    "actor.rid_ghost",
    "actor.rid_duplicate",
    "actor.rid_stale",
    "transport.close_abandons_dial",
    "transport.flush_after_reconnect",
    "transport.incarnation_change",
    "transport.no_dial_to_stranger",
    "transport.peer_timeout",
    "transport.queued_dropped",
    "transport.queued_request_expired",
    "transport.read_after_silence",
    "transport.read_in_backlog",
    "transport.reconnect",
    "transport.request_aged_by_stall",
    "transport.tie_break",
    NULL,
};

const mp_sim_workload mp_workload_exec = {
    .name = "exec",
    .description = "ExecRecord actors that never deduplicate, every execution "
                   "logged (memory and storage); members and client-only nodes "
                   "under pauses, graceful restarts, one-way and long partitions, "
                   "kills; at-most-once, ack => once, 'not executed' errors, "
                   "deadlines, keyed retries (per attempt, per activation)",
    .required_coverage = ex_coverage,
    .chaos_ns = 12ull * MP_SIM_NS_PER_S,
    .heal_ns = 60ull * MP_SIM_NS_PER_S,
    .tune_faults = ex_tune,
    .setup = ex_setup,
    .on_heal = ex_on_heal,
    .quiescent = ex_quiescent,
    .check = ex_check,
    .destroy = ex_destroy,
};
