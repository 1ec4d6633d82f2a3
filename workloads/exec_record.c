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
 * Half the clients send every op with an idempotency key (its op id) and
 * retry it, up to EX_KEYED_ATTEMPTS sends, while it ends "may have
 * executed" (node.h, "Exactly once for callers that retry"). For those ops
 * I1 becomes: at most once per activation (the activation that ran it
 * answers a retry from its memory; a new activation may run it again),
 * and an OK reply must name an activation that ran it. I3 then holds only
 * for an op sent once, and I4 uses the latest attempt's deadline.
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
 * A violation names the op, its executions (node, time), the caller's
 * outcome and the first invariant violated.
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
#define EX_MAX_MAILBOX 2
#define EX_KEYED_ATTEMPTS 3 /* a keyed op is sent at most this many times */
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

typedef enum { O_PENDING = 0, O_OK, O_ERROR, O_SYNC_ERROR, O_LOST } ex_outcome;

typedef struct ex_exec {
    int node;     /* node index */
    uint32_t inc; /* its incarnation */
    uint64_t at;  /* sim time the turn started */
    uint64_t act; /* the activation that ran it (ex_world.next_act) */
} ex_exec;

typedef struct ex_op {
    uint16_t client;
    uint32_t seq;
    uint16_t actor;
    uint8_t outcome;
    int status;
    uint64_t issued_at, deadline; /* deadline: of the latest attempt */
    bool keyed;       /* sent with an idempotency key (its op id), retried */
    uint8_t attempts; /* sends so far */
    uint64_t reply_act; /* the activation an OK reply names */
    char err[48];
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
    uint64_t n_ok, n_err, n_lost, n_sync, n_retries;
    uint64_t next_act; /* activation ids, from 1 */
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
        n += (size_t)snprintf(buf + n, cap - n, "%snode %s inc %u at %.3f s",
                              i ? ", " : "", node_name(op->exec[i].node, nm, sizeof nm),
                              op->exec[i].inc, (double)op->exec[i].at / 1e9);
    }
    if (n >= cap) return;
    const char *oc = op->outcome == O_PENDING  ? "pending"
                     : op->outcome == O_OK     ? "OK"
                     : op->outcome == O_LOST   ? "lost (caller's node died)"
                     : op->outcome == O_ERROR  ? "error"
                                               : "synchronous error";
    char cn[16];
    n += (size_t)snprintf(buf + n, cap - n,
                          "); caller client %u on node %s issued at %.3f s, "
                          "deadline %.3f s, outcome %s",
                          op->client,
                          node_name(op->client / EX_CLIENTS_PER_NODE, cn, sizeof cn),
                          (double)op->issued_at / 1e9, (double)op->deadline / 1e9, oc);
    if (n < cap && (op->outcome == O_ERROR || op->outcome == O_SYNC_ERROR))
        snprintf(buf + n, cap - n, " %s '%s'", mp_status_name(op->status), op->err);
    (void)w;
}

static void violation(ex_world *w, const ex_op *op, const char *inv)
{
    char d[700];
    describe(w, op, d, sizeof d);
    mp_sim_fail(w->sim, "exec: %s violated: %s", inv, d);
}

/* Checks that hold at any moment (I1, I2, I3). */
static void check_op(ex_world *w, const ex_op *op, bool final)
{
    if (op->keyed) {
        /* A keyed op is retried: each activation runs it at most once (the
         * activation that ran it answers a retry from its memory; a new
         * activation, after a kill, stop or deactivation, may run it
         * again: node.h's window). */
        uint32_t shown = op->nexec < EX_MAX_EXEC ? op->nexec : EX_MAX_EXEC;
        for (uint32_t i = 0; i < shown; i++)
            for (uint32_t j = i + 1; j < shown; j++)
                if (op->exec[i].act == op->exec[j].act) {
                    violation(w, op, "I1 keyed: at most once per activation");
                    return;
                }
        if (op->outcome == O_OK) {
            bool named = false;
            for (uint32_t i = 0; i < shown; i++) named |= op->exec[i].act == op->reply_act;
            if (op->nexec == 0 || !named) {
                violation(w, op, "I2 keyed: an OK reply comes from an execution of it");
                return;
            }
        }
    } else if (op->nexec > 1) {
        violation(w, op, op->outcome == O_OK ? "I1 at most once (acknowledged op)"
                                             : "I1 at most once");
        return;
    }
    if (op->outcome == O_OK && op->nexec == 0) {
        violation(w, op, "I2 acknowledged => executed once");
        return;
    }
    /* A keyed op retried after a "may have executed" attempt: the last
     * attempt's "not executed" speaks for that attempt only. */
    if ((op->outcome == O_ERROR || op->outcome == O_SYNC_ERROR) &&
        not_executed(op->status, op->outcome == O_SYNC_ERROR) && op->nexec > 0 &&
        op->attempts <= 1) {
        violation(w, op, final ? "I3 'not executed' error => no execution"
                               : "I3 'not executed' error => no execution");
        return;
    }
}

/* ---- the actor ---------------------------------------------------------------- */

static int node_of_env(ex_world *w, mp_env *env)
{
    for (int i = 0; i < EX_NODES; i++)
        if (env->name && strcmp(env->name, w->addrs[i]) == 0) return i;
    return -1;
}

/* An activation: its id, and the message whose save is out (one turn at
 * a time, so one at most). */
typedef struct ex_inst {
    uint64_t act;
    mp_msg *saving;
} ex_inst;

static int ex_activate(mp_actor *self, void *inst)
{
    ex_world *w = g_world;
    ((ex_inst *)inst)->act = w ? ++w->next_act : 0;
    return 0;
}

/* The reply names the activation that ran the request: a retry answered
 * from the idempotency memory must name that same activation. */
static void persisted(void *ud, int status)
{
    ex_inst *in = ud;
    mp_msg *msg = in->saving;
    in->saving = NULL;
    if (status == 0) {
        char r[32];
        int n = snprintf(r, sizeof r, "ok %llu", (unsigned long long)in->act);
        mp_reply(msg, r, (size_t)n);
    } else {
        mp_reply_error(msg, status, "persist failed");
    }
}

static void h_exec(mp_actor *self, void *inst, mp_msg *msg, const void *payload,
                   size_t len)
{
    ex_world *w = g_world;
    char buf[64];
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, payload, len);
    buf[len] = 0;
    unsigned idx = 0, client = 0, seq = 0;
    if (!w || sscanf(buf, "%u %u:%u", &idx, &client, &seq) != 3 || idx >= w->nops ||
        w->ops[idx].client != client || w->ops[idx].seq != seq) {
        if (w) mp_sim_fail(w->sim, "exec: malformed request '%s'", buf);
        mp_reply_error(msg, MP_EINVAL, "malformed");
        return;
    }
    ex_op *op = &w->ops[idx];
    mp_env *env = mp_actor_env(self);
    uint64_t now = mp_sim_now(w->sim); /* one clock for the oracle: nodes' may differ */
    int node = node_of_env(w, env);
    if (op->nexec < EX_MAX_EXEC) {
        op->exec[op->nexec] = (ex_exec){
            node, node >= 0 ? mp_sim_process_incarnation(w->sim, w->pids[node]) : 0, now,
            ((ex_inst *)inst)->act};
    }
    op->nexec++;
    MP_SOMETIMES(true, "exec.executed");
    if (now > op->deadline + EX_LATE_MAX_NS) {
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
    ((ex_inst *)inst)->saving = msg;
    int rc = mp_state_persist(self, persisted, inst);
    if (rc != 0) {
        ((ex_inst *)inst)->saving = NULL;
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
    .methods = ex_methods,
    .method_count = 1,
    .state = &ex_state,
};

/* ---- clients ------------------------------------------------------------------ */

static void client_schedule(ex_client *c);
static int send_attempt(ex_client *c, uint32_t i);

static void client_reply(void *ud, int status, const void *data, size_t len)
{
    ex_client *c = ud;
    ex_world *w = c->n->w;
    assert(c->waiting);
    c->waiting = false;
    assert(w->outstanding > 0);
    w->outstanding--;
    ex_op *op = &w->ops[c->op];
    op->status = status;
    if (op->keyed && mp_call_status_class(status, 0) == MP_CALL_MAY_HAVE_RUN &&
        op->attempts < EX_KEYED_ATTEMPTS && !w->healing && !c->n->stopping && c->n->node) {
        /* The caller that must know retries with the same key. */
        w->n_retries++;
        MP_SOMETIMES(true, "exec.keyed_retry");
        if (send_attempt(c, c->op) == 0) return;
    }
    if (status == 0) {
        char r[32];
        size_t n = len < sizeof r - 1 ? len : sizeof r - 1;
        memcpy(r, data, n);
        r[n] = '\0';
        unsigned long long act = 0;
        if (sscanf(r, "ok %llu", &act) == 1) op->reply_act = act;
        op->outcome = O_OK;
        w->n_ok++;
        MP_SOMETIMES(true, "exec.acknowledged");
        if (c->n->index >= EX_MEMBERS) MP_SOMETIMES(true, "exec.client_only_acknowledged");
    } else {
        op->outcome = O_ERROR;
        w->n_err++;
        snprintf(op->err, sizeof op->err, "%.*s", (int)(len > 40 ? 40 : len),
                 (const char *)data);
        MP_SOMETIMES(true, "exec.call_failed");
    }
    check_op(w, op, false);
    client_schedule(c);
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
    op->actor = (uint16_t)mp_env_random_below(n->env, EX_ACTORS);
    op->issued_at = mp_sim_now(w->sim);
    op->keyed = c->id % 2 == 1; /* half the clients retry with a key */
    int rc = send_attempt(c, i);
    if (rc != 0) {
        op->outcome = O_SYNC_ERROR;
        op->status = rc;
        w->n_sync++;
        check_op(w, op, false);
        client_schedule(c);
    }
}

/* Send (or resend, keyed) op i. Its deadline is the latest attempt's. */
static int send_attempt(ex_client *c, uint32_t i)
{
    ex_node *n = c->n;
    ex_world *w = n->w;
    ex_op *op = &w->ops[i];
    op->attempts++;
    op->deadline = mp_sim_now(w->sim) + EX_CALL_TIMEOUT_NS;
    char key[16], payload[64], idem[32];
    snprintf(key, sizeof key, "r-%u", op->actor);
    int pl = snprintf(payload, sizeof payload, "%u %u:%u", i, op->client, op->seq);
    snprintf(idem, sizeof idem, "op-%u:%u", op->client, op->seq);
    mp_ref ref;
    int rc = mp_ref_get(n->node, EX_TYPE, key, &ref);
    assert(rc == 0);
    mp_call_opts opts = {.timeout_ns = EX_CALL_TIMEOUT_NS,
                         .idempotency_key = op->keyed ? idem : NULL};
    c->op = i;
    c->waiting = true;
    w->outstanding++;
    rc = mp_call(n->node, &ref, "exec", payload, (size_t)pl, &opts, client_reply, c);
    if (rc != 0) {
        c->waiting = false;
        w->outstanding--;
    }
    return rc;
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
    /* A tiny mailbox bound: some calls are refused MP_EQUEUEFULL, and I3
     * checks that a refused call never ran. */
    cfg.max_mailbox = EX_MAX_MAILBOX;
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
            /* A keyed op may be stored once per activation that ran it
             * (I1 keyed checks the activations). */
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
    "actor.mailbox_full",
    "actor.idempotent_replay",
    "actor.rid_ghost",
    "actor.rid_duplicate",
    "actor.rid_stale",
    "exec.keyed_retry",
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
                   "deadlines, keyed retries",
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
