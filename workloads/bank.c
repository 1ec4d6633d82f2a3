/*
 * The bank workload: BankAccount actors (examples/bank) under faults, with a
 * ledger that proves S2 (consistency), S3 (delivery after heal), S6 (reply
 * matching under a burst) and R10 (single activation), and reports S5
 * (placement balance).
 *
 * Cluster. `nodes` processes at 10.0.1.<i+1>:4600, each an mp_node with the
 * BankAccount type. `workers` client loops live inside the nodes (worker w
 * on node w % nodes), each with BK_SLOTS operations in flight, issuing
 * deposits, withdrawals, transfers and balance reads on random accounts
 * through mp_call. Defaults (params 0): a topology drawn per seed among
 * 1x1, 2x2 and 10x10.
 *
 * Why the ledger lives outside the processes: it is the ground truth the
 * accounts are checked against, so nothing a node does (or loses) may touch
 * it. Every op gets a ledger index and an id "o<index>" (unique in the run),
 * its kind, accounts, amount and outcome: ok, refused (insufficient funds:
 * not applied), not executed (a status node.h lists as "not executed",
 * MP_EUNAVAIL say: must not have been applied) or unknown (MP_EINDOUBT,
 * MP_ETIMEDOUT...: maybe applied); status_not_executed() holds that table.
 * Unknown and not-executed ops are resolved after heal by asking the
 * account (op_status), which is exact because accounts record op ids; a
 * not-executed op found applied fails the seed. An op answered as a
 * duplicate ({"dup":true}) fails the seed too: clients never resend, so
 * the runtime delivered it twice (n_dup == 0, at most once).
 *
 * Phases after heal (a world-level tick every 50 ms drives them):
 *   drain    no client op outstanding, no transfer leg pending in any
 *            account, no call pending and no mailbox depth on any node;
 *   settle   wait past the longest call deadline so that no request still
 *            in the network can apply after we look (the runtime drops
 *            requests past their deadline);
 *   resolve  op_status for every unknown op (both legs of a transfer) and
 *            for a sample of ok and refused ops (must be applied / not);
 *   final    one balance call per account from a random node: 100% ok and
 *            equal to the ledger (S3, S2);
 *   burst    BK_BURST concurrent balance calls from random nodes, every
 *            reply ok and equal to its account's ledger balance (S6);
 *   steady   BK_STEADY_NS with idle deactivation on (bank: 1 s, switched on
 *            here through the workload's copy of the account type; durable:
 *            2 s): chains of deposit, transfer, withdraw and balance calls
 *            on accounts seen deactivated, so each re-activates on demand;
 *            every call must answer 0 with the ledger's balance (an
 *            in-memory account starts again from 0: its lost balance is
 *            kept aside for the conservation check);
 * then quiescent. Every call after heal must succeed: the cluster is static
 * and healed, so any failure is a delivery bug.
 *
 * Why transfers only go from a lower to a higher account index: a transfer
 * holds the source's turn until the destination's deposit succeeds, so a
 * cycle of concurrent transfers would deadlock (examples/bank/bank.c).
 *
 * Why nodes are not killable here: without storage accounts keep their
 * state in memory, so a kill legitimately destroys money and the ledger
 * could prove nothing. The durable mode of this driver (the bank-durable
 * workload, workloads/bank_durable.c) adds a shared simulated database,
 * kills, 2 s idle timeouts, a wake phase after heal (owed transfer legs
 * resume on activation) and a final check of every stored record (S11).
 * There, a client op whose node was killed counts as unknown.
 *
 * moonpool sim --trace (replaying one seed): the nodes' routing trace and one
 * line per client op outcome, on stderr.
 *
 * The single-activation check runs every tick during the whole run: it
 * walks every running node's activations and fails on an account active on
 * two nodes at once.
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

#include "bank/bank.h"
#include "moonpool/actor.h"
#include "moonpool/buggify.h"
#include "moonpool/codec.h"
#include "moonpool/node.h"
#include "moonpool/sim.h"
#include "moonpool/sim_workload.h"
#include "moonpool/storage.h"
#include "workloads.h"

#define BK_PORT 4600
#define BK_NS "bank"
#define BK_ACCOUNTS 120
#define BK_MAX_NODES MP_BANK_REPORT_NODES
#define BK_MAX_WORKERS 256
#define BK_SLOTS 8
#define BK_TIMEOUT_NS (3 * MP_SIM_NS_PER_S)
#define BK_TICK_NS (50 * MP_SIM_NS_PER_MS)
#define BK_SETTLE_NS (BK_TIMEOUT_NS + 500 * MP_SIM_NS_PER_MS)
#define BK_AMOUNT_MAX 100
#define BK_OPS_PER_S 400 /* target op rate of the whole cluster */
#define BK_SAMPLE 200    /* ok/refused ops re-checked with op_status */
#define BK_BURST 1200

enum { K_DEPOSIT = 1, K_WITHDRAW, K_TRANSFER, K_BALANCE };
/* O_NOTEXEC: the call ended with a "not executed" status (status_not_
 * executed): it must not have been applied, which the resolve phase checks
 * for every such op. */
enum { O_PENDING = 0, O_OK, O_REFUSED, O_UNKNOWN, O_NOTEXEC };
enum {
    P_CHAOS = 0,
    P_WAKE,   /* durable: every account activated (owed legs resume) */
    P_DRAIN,
    P_SETTLE,
    P_RESOLVE,
    P_FINAL,
    P_BURST,
    P_STEADY, /* idle deactivation on; every call must succeed */
    P_STORED, /* durable: the stored records against the ledger (S11) */
    P_DONE
};

#define BK_DURABLE_OPS_PER_S 150
#define BK_DURABLE_IDLE_NS (2 * MP_SIM_NS_PER_S)
/* bank: the nodes' idle timeout (its sweep runs every quarter of it); the
 * account type's own timeout overrides it with BK_IDLE_OFF_NS until the
 * steady phase, since in-memory accounts lose their state on deactivation */
#define BK_IDLE_NS (1 * MP_SIM_NS_PER_S)
#define BK_IDLE_OFF_NS (3600 * MP_SIM_NS_PER_S)
#define BK_STEADY_NS (8 * MP_SIM_NS_PER_S)
#define BK_STEADY_CHAINS 6
#define BK_DB_ADDR "10.0.0.250:5432"

/* What a call's final status says about whether it ran: the table of
 * include/moonpool/node.h ("What an error says"), kept here and nowhere
 * else in the workloads. True: not executed (the op must not have been
 * applied). False: executed (0, MP_EACTOR) or may have executed
 * (MP_EINDOUBT, MP_ETIMEDOUT, MP_ECLOSED through the callback, MP_ESTORAGE,
 * and anything node.h does not list as not executed). `sync`: returned by
 * mp_call itself rather than through the reply callback. */
static bool status_not_executed(int status, bool sync)
{
    switch (status) {
    case MP_EUNAVAIL:
    case MP_EQUEUEFULL:
    case MP_EINVAL:
    case MP_ENOTYPE:
    case MP_ENOMETHOD:
    case MP_ETOOBIG:
    case MP_EACTIVATION:
    case MP_EDEADLOCK:
    case MP_EFORWARDS:
    case MP_ENAMESPACE:
    case MP_EVERSION:
        return true;
    case MP_ECLOSED:
    case MP_ENOMEM:
        return sync; /* the call never left */
    default:
        return false;
    }
}

static const char *outcome_name(int o)
{
    switch (o) {
    case O_OK: return "ok";
    case O_REFUSED: return "refused";
    case O_UNKNOWN: return "may have executed";
    case O_NOTEXEC: return "not executed";
    default: return "pending";
    }
}

static const char *kind_name(int k)
{
    switch (k) {
    case K_DEPOSIT: return "deposit";
    case K_WITHDRAW: return "withdraw";
    case K_TRANSFER: return "transfer";
    case K_BALANCE: return "balance";
    default: return "?";
    }
}

/* ---- ledger --------------------------------------------------------------- */

typedef struct bk_op {
    uint8_t kind;
    uint8_t outcome;
    /* After resolution: whether each leg applied (src: the op at account a;
     * dst: a transfer's deposit leg at b). */
    bool src_applied, dst_applied;
    bool src_known, dst_known;
    uint16_t a, b;
    int16_t status; /* the status the call ended with (0: ok) */
    bool sync;      /* ... returned by mp_call itself (never sent) */
    int64_t amount;
} bk_op;

struct bk_world;

typedef struct bk_slot_arg { /* boot argument of node `index` */
    struct bk_world *w;
    int index;
} bk_slot_arg;

/* A call made by the driver after heal (resolve, final, burst). */
typedef struct bk_fcall {
    struct bk_world *w;
    uint32_t op;  /* ledger index (resolve) */
    uint16_t acct;
    uint8_t what; /* F_SRC, F_DST, F_BALANCE */
    bool expect;  /* resolve of a sampled ok/refused op: expected applied */
    bool sampled;
} bk_fcall;

enum { F_SRC = 1, F_DST, F_BALANCE };

/* Steady phase: a chain of calls on two accounts just deactivated (a < b):
 * deposit a, transfer a -> b, withdraw b, balance a, balance b, each
 * issued from a random node once the previous one answered, each required
 * to answer 0 with the exact balance. */
typedef struct bk_chain {
    struct bk_world *w;
    bool busy;
    uint16_t a, b;
    int step;
    uint32_t op;  /* ledger index of the current call */
    int node;     /* the node it was issued from */
    uint64_t t0;  /* when it was issued */
} bk_chain;

enum { ST_TOUCHED = 0, ST_FRESH, ST_BUSY }; /* per account, steady phase */

typedef struct bk_world {
    bool trace; /* mp_workload_params.trace */
    mp_sim *sim;
    int nodes, workers;
    int *pids;
    bk_slot_arg *args;
    char (*addrs)[32];
    const char **members;
    uint64_t think_mean_ns;
    /* ledger */
    bk_op *ops;
    uint32_t nops, cap;
    uint64_t outstanding; /* client ops issued and not ended */
    uint64_t n_ok, n_refused, n_unknown, n_resolved_applied, n_dup;
    uint64_t n_notexec; /* ops that ended "not executed" (all resolved) */
    /* phases */
    int phase;
    bool healing;
    uint64_t settle_until;
    bk_fcall *fcalls; /* the current phase's calls */
    uint32_t f_total, f_done;
    bk_fcall *old_fcalls[3];
    int64_t expected[BK_ACCOUNTS];
    int64_t final_bal[BK_ACCOUNTS];
    bool final_seen[BK_ACCOUNTS];
    uint64_t final_calls, burst_calls;
    int16_t act_seen[BK_ACCOUNTS]; /* dup check scratch: node index + 1 */
    /* The BankAccount type as registered on every node: a copy whose idle
     * timeout the workload owns (the runtime reads it at each idle sweep;
     * actor.h: the type struct is not copied). */
    mp_actor_type acct_type;
    /* steady phase */
    uint64_t steady_until;
    uint8_t st[BK_ACCOUNTS];       /* ST_* */
    bk_chain chains[BK_STEADY_CHAINS];
    uint64_t steady_calls, steady_chains, steady_deacts;
    int64_t idle_lost;             /* bank: balances lost with idle accounts */
    /* Placement (S5) as the burst ended, before the steady phase lets
     * accounts go idle: per node, the accounts in its catalog. */
    uint64_t placed[BK_MAX_NODES];
    bool tick_armed;
    /* durable mode (bank-durable): accounts persist in a shared simulated
     * database process; nodes are killable */
    bool durable;
    int db_pid;
    void *disk;               /* the db's simulated disk (freed at destroy) */
    uint64_t n_persist_err;   /* ops answered MP_ESTORAGE / MP_ECONFLICT */
    uint64_t n_lost_kill;     /* ops whose client died with its node */
    bool wake_ok[BK_ACCOUNTS];
    bk_fcall wake[BK_ACCOUNTS];
    uint32_t wake_out;        /* wake calls in flight */
    struct bk_stored *stored; /* P_STORED: the records read back */
    uint32_t stored_done;
} bk_world;

/* A record read back from the db after the run. */
typedef struct bk_stored {
    bk_world *w;
    int acct;
    bool done, present;
    int64_t balance;
    json_t *ops;  /* the record's op ids (object used as a set) */
    json_t *legs; /* owed legs still stored */
} bk_stored;

/* ---- processes ------------------------------------------------------------ */

struct bk_node;

typedef struct bk_cslot { /* one in-flight client op of a worker */
    struct bk_node *n;
    int worker;
    uint32_t op; /* ledger index while waiting */
    bool waiting;
    mp_timer_id timer;
} bk_cslot;

typedef struct bk_node {
    bk_world *w;
    int index;
    mp_env *env;
    mp_node *node;
    bk_cslot *slots;
    int nslots;
} bk_node;

static void slot_schedule(bk_cslot *s);

static void node_addr(int index, char *buf, size_t cap)
{
    snprintf(buf, cap, "10.0.1.%d:%d", index + 1, BK_PORT);
}

static void acct_key(int i, char *buf, size_t cap) { snprintf(buf, cap, "acct-%d", i); }

/* The account index of a ref in this workload's namespace, or -1. */
static int acct_of_ref(const mp_ref *ref)
{
    if (ref->key_len < 6 || ref->key_len > 10) return -1;
    const char *k = ref->id + ref->key_off;
    if (memcmp(k, "acct-", 5) != 0) return -1;
    int v = 0;
    for (size_t i = 5; i < ref->key_len; i++) {
        if (k[i] < '0' || k[i] > '9') return -1;
        v = v * 10 + (k[i] - '0');
        if (v >= BK_ACCOUNTS) return -1;
    }
    return v;
}

static int ref_for(mp_node *node, int acct, mp_ref *ref)
{
    char key[32];
    acct_key(acct, key, sizeof key);
    return mp_ref_get(node, MP_BANK_TYPE, key, ref);
}

static int64_t json_balance(bk_world *w, const void *data, size_t len,
                            bool *ok, bool *dup)
{
    *ok = false;
    if (dup) *dup = false;
    void *v = NULL;
    if (mp_codec_decode(mp_json_codec(), data, len, &v, NULL) != 0) return 0;
    json_t *b = json_object_get(v, "balance");
    int64_t bal = 0;
    if (json_is_integer(b)) {
        bal = (int64_t)json_integer_value(b);
        *ok = true;
    }
    if (dup) *dup = json_is_true(json_object_get(v, "dup"));
    json_decref(v);
    return bal;
}

/* ---- ledger --------------------------------------------------------------- */

static uint32_t ledger_new(bk_world *w)
{
    if (w->nops == w->cap) {
        uint32_t cap = w->cap ? w->cap * 2 : 4096;
        bk_op *n = realloc(w->ops, (size_t)cap * sizeof *n);
        if (!n) return UINT32_MAX;
        w->ops = n;
        w->cap = cap;
    }
    uint32_t i = w->nops++;
    memset(&w->ops[i], 0, sizeof w->ops[i]);
    return i;
}

/* ---- client ops ----------------------------------------------------------- */

static int host_of(bk_world *w, int acct);

/* n_dup == 0 is an invariant (issue 11): every op id is sent once by its
 * client (never retried), so an account that answers {"dup":true} saw the
 * same request twice, i.e. the runtime delivered it twice. Checked on every
 * reply (here) and again at the end (bk_check). */
static void dup_seen(bk_world *w, uint32_t i, int node, const char *what)
{
    const bk_op *op = &w->ops[i];
    w->n_dup++;
    mp_sim_fail(w->sim, "bank: %s %s o%u on acct-%u (issued from node %d, "
                        "account hosted on node %d) answered as a duplicate at "
                        "t=%.6f s: the runtime delivered it twice",
                what, kind_name(op->kind), i, op->a, node, host_of(w, op->a),
                (double)mp_sim_now(w->sim) / 1e9);
}

static void op_reply(void *ud, int status, const void *data, size_t len)
{
    bk_cslot *s = ud;
    bk_node *n = s->n;
    bk_world *w = n->w;
    assert(s->waiting);
    s->waiting = false;
    bk_op *op = &w->ops[s->op];
    assert(op->outcome == O_PENDING);
    assert(w->outstanding > 0);
    w->outstanding--;
    op->status = (int16_t)status;
    if (w->trace)
        fprintf(stderr, "%.6f op o%u %s acct-%u status=%d '%.*s'\n",
                (double)mp_sim_now(w->sim) / 1e9, s->op, kind_name(op->kind),
                op->a, status, (int)(len > 60 ? 60 : len), (const char *)data);
    if (status == 0) {
        op->outcome = O_OK;
        w->n_ok++;
        bool ok, dup;
        int64_t bal = json_balance(w, data, len, &ok, &dup);
        if (!ok) {
            mp_sim_fail(w->sim, "bank: %s o%u on acct-%u: malformed reply '%.*s'",
                        kind_name(op->kind), s->op, op->a,
                        (int)(len > 100 ? 100 : len), (const char *)data);
        } else if (bal < 0) {
            mp_sim_fail(w->sim, "bank: %s o%u on acct-%u: negative balance %" PRId64,
                        kind_name(op->kind), s->op, op->a, bal);
        }
        /* A first-time op answered as a duplicate: the runtime delivered
         * the request twice and the account's dedup absorbed it. The
         * runtime promises at most once (node.h), so this is a delivery
         * bug, not noise: fail the seed here. */
        if (dup) dup_seen(w, s->op, n->index, "client op");
    } else if (status == MP_EACTOR && len == 18 &&
               memcmp(data, "insufficient funds", 18) == 0 &&
               (op->kind == K_WITHDRAW || op->kind == K_TRANSFER)) {
        op->outcome = O_REFUSED;
        w->n_refused++;
    } else if (status == MP_EINVAL || status == MP_ENOMETHOD ||
               status == MP_ENOTYPE || (status == MP_EACTOR)) {
        op->outcome = O_UNKNOWN; /* keep the ledger whole, but it is a bug */
        mp_sim_fail(w->sim, "bank: %s o%u on acct-%u: unexpected error %s '%.*s'",
                    kind_name(op->kind), s->op, op->a, mp_status_name(status),
                    (int)(len > 100 ? 100 : len), (const char *)data);
    } else if (status_not_executed(status, false)) {
        /* Unreachable, queue full, failed activation...: the runtime says
         * it never ran, so it must not have been applied (resolve). */
        op->outcome = O_NOTEXEC;
        w->n_notexec++;
    } else {
        /* May have executed: in doubt, timed out, and (durable) failed
         * persists, which must reach the caller as errors (S12). */
        if (status == MP_ESTORAGE || status == MP_ECONFLICT) {
            w->n_persist_err++;
            MP_SOMETIMES(true, "bank_durable.client_saw_persist_error");
        }
        op->outcome = O_UNKNOWN;
        w->n_unknown++;
    }
    slot_schedule(s);
}

static void op_issue(bk_cslot *s)
{
    bk_node *n = s->n;
    bk_world *w = n->w;
    uint32_t i = ledger_new(w);
    if (i == UINT32_MAX) {
        mp_sim_fail(w->sim, "bank: out of memory (ledger)");
        return;
    }
    bk_op *op = &w->ops[i];
    uint64_t r = mp_env_random_below(n->env, 100);
    op->kind = r < 30 ? K_DEPOSIT : r < 55 ? K_WITHDRAW : r < 85 ? K_TRANSFER : K_BALANCE;
    op->amount = 1 + (int64_t)mp_env_random_below(n->env, BK_AMOUNT_MAX);
    if (op->kind == K_TRANSFER) {
        /* Lower index to higher: transfers never form a cycle. */
        int x = (int)mp_env_random_below(n->env, BK_ACCOUNTS);
        int y = (int)mp_env_random_below(n->env, BK_ACCOUNTS - 1);
        if (y >= x) y++;
        op->a = (uint16_t)(x < y ? x : y);
        op->b = (uint16_t)(x < y ? y : x);
    } else {
        op->a = (uint16_t)mp_env_random_below(n->env, BK_ACCOUNTS);
    }
    char payload[160];
    char key[32];
    const char *method = kind_name(op->kind);
    if (op->kind == K_BALANCE) {
        snprintf(payload, sizeof payload, "{}");
    } else if (op->kind == K_TRANSFER) {
        acct_key(op->b, key, sizeof key);
        snprintf(payload, sizeof payload, "{\"op\":\"o%u\",\"to\":\"%s\",\"amount\":%" PRId64 "}",
                 i, key, op->amount);
    } else {
        snprintf(payload, sizeof payload, "{\"op\":\"o%u\",\"amount\":%" PRId64 "}", i,
                 op->amount);
    }
    mp_ref ref;
    int rc = ref_for(n->node, op->a, &ref);
    assert(rc == 0);
    mp_call_opts opts = {.timeout_ns = BK_TIMEOUT_NS};
    s->op = i;
    s->waiting = true;
    w->outstanding++;
    rc = mp_call(n->node, &ref, method, payload, strlen(payload), &opts, op_reply, s);
    if (rc != 0) {
        /* Refused at once: never sent, so never applied (resolve checks). */
        s->waiting = false;
        w->outstanding--;
        op->status = (int16_t)rc;
        op->sync = true;
        if (!status_not_executed(rc, true)) {
            mp_sim_fail(w->sim, "bank: mp_call of %s o%u returned %s, which "
                                "node.h does not list",
                        kind_name(op->kind), i, mp_status_name(rc));
            return;
        }
        op->outcome = O_NOTEXEC;
        w->n_notexec++;
        slot_schedule(s);
    }
}

static void slot_fire(void *ud)
{
    bk_cslot *s = ud;
    s->timer = 0;
    if (s->n->w->healing) return;
    op_issue(s);
}

static void slot_schedule(bk_cslot *s)
{
    bk_node *n = s->n;
    if (n->w->healing) return;
    uint64_t d = mp_env_random_below(n->env, 2 * n->w->think_mean_ns + 1);
    s->timer = mp_env_timer_start(n->env, d, slot_fire, s);
    if (!s->timer) mp_sim_fail(n->w->sim, "bank: out of memory (timer)");
}

/* ---- boot and teardown ---------------------------------------------------- */

static void node_teardown(void *state)
{
    bk_node *n = state;
    if (!n) return;
    bk_world *w = n->w;
    for (int i = 0; i < n->nslots; i++) {
        bk_cslot *s = &n->slots[i];
        if (s->timer) mp_env_timer_cancel(n->env, s->timer);
        if (s->waiting) {
            /* The client died with its node (a kill): the op may or may
             * not have been applied; resolved like any unknown. */
            s->waiting = false;
            bk_op *op = &w->ops[s->op];
            op->outcome = O_UNKNOWN;
            w->n_unknown++;
            w->n_lost_kill++;
            assert(w->outstanding > 0);
            w->outstanding--;
        }
    }
    if (n->node) mp_node_free_now(n->node); /* accounts: release hook */
    free(n->slots);
    free(n);
}

static int node_boot(mp_env *env, void *arg, uint32_t incarnation, void **out)
{
    bk_slot_arg *sa = arg;
    bk_world *w = sa->w;
    /* moonpool sim --trace: the nodes' routing trace (replaying one seed). */
    if (w->trace) env->log_level = MP_LOG_DEBUG;
    bk_node *n = calloc(1, sizeof *n);
    if (!n) return MP_ENOMEM;
    n->w = w;
    n->index = sa->index;
    n->env = env;
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    cfg.cluster_namespace = BK_NS;
    cfg.self_addr = w->addrs[sa->index];
    cfg.members = w->members;
    cfg.member_count = (size_t)w->nodes;
    cfg.incarnation = incarnation;
    cfg.idle_timeout_ns = BK_IDLE_NS; /* accounts: acct_type's until steady */
    if (w->durable) {
        cfg.storage = mp_sim_process_state(w->sim, w->db_pid);
        cfg.idle_timeout_ns = BK_DURABLE_IDLE_NS;
        if (!cfg.storage) {
            node_teardown(n);
            return MP_EUNAVAIL;
        }
    }
    int rc = mp_node_create(env, &cfg, &n->node);
    if (rc == 0) rc = mp_node_register_type(n->node, &w->acct_type);
    if (rc == 0) rc = mp_node_start(n->node);
    if (rc != 0) {
        node_teardown(n);
        return rc;
    }
    /* This node's workers: w % nodes == index. */
    int mine = 0;
    for (int k = n->index; k < w->workers; k += w->nodes) mine++;
    n->nslots = mine * BK_SLOTS;
    n->slots = calloc((size_t)(n->nslots ? n->nslots : 1), sizeof *n->slots);
    if (!n->slots) {
        node_teardown(n);
        return MP_ENOMEM;
    }
    int j = 0;
    for (int k = n->index; k < w->workers; k += w->nodes)
        for (int q = 0; q < BK_SLOTS; q++, j++) {
            n->slots[j].n = n;
            n->slots[j].worker = k;
        }
    *out = n;
    for (int i = 0; i < n->nslots; i++) slot_schedule(&n->slots[i]);
    return 0;
}

static const mp_sim_process_ops bk_ops = {node_boot, node_teardown, NULL};

/* The database (durable mode): a never-killed process owning one simulated
 * disk, whose provider every node uses, like a PostgreSQL server shared by
 * the cluster. Storage faults come from its buggify sites (failed reads and
 * writes, some writes failing yet landing), so they stop at heal. */
static int db_boot(mp_env *env, void *arg, uint32_t incarnation, void **out)
{
    bk_world *w = arg;
    mp_storage_sim_config sc;
    mp_storage_sim_config_init(&sc);
    sc.buggify = true;
    sc.write_fail_applied_p = 0.5;
    void **slot = mp_sim_process_disk(w->sim, w->db_pid);
    mp_storage *s = mp_storage_sim_create(env, slot, &sc);
    if (!s) return MP_ENOMEM;
    w->disk = *slot;
    *out = s;
    return 0;
}

static void db_teardown(void *state) { mp_storage_free_now(state); }

static const mp_sim_process_ops db_ops = {db_boot, db_teardown, NULL};

/* ---- the driver (world level) --------------------------------------------- */

static bk_node *node_at(bk_world *w, int i)
{
    if (!mp_sim_process_running(w->sim, w->pids[i])) return NULL;
    bk_node *n = mp_sim_process_state(w->sim, w->pids[i]);
    return n && n->node ? n : NULL;
}

typedef struct dup_ctx {
    bk_world *w;
    int node;
} dup_ctx;

static void dup_visit(void *ud, const mp_ref *ref)
{
    dup_ctx *c = ud;
    int a = acct_of_ref(ref);
    if (a < 0) return;
    int16_t prev = c->w->act_seen[a];
    bool single = prev == 0 || prev == c->node + 1;
    MP_ALWAYS(single, "bank.single_activation");
    if (!single) {
        mp_sim_fail(c->w->sim, "bank: acct-%d is active on node %d and node %d "
                               "at once (%s)",
                    a, prev - 1, c->node, ref->id);
        return;
    }
    c->w->act_seen[a] = (int16_t)(c->node + 1);
}

static void check_single_activation(bk_world *w)
{
    memset(w->act_seen, 0, sizeof w->act_seen);
    for (int i = 0; i < w->nodes; i++) {
        bk_node *n = node_at(w, i);
        if (!n) continue;
        dup_ctx c = {w, i};
        mp_node_foreach_activation(n->node, dup_visit, &c);
    }
}

typedef struct host_ctx {
    int acct, found;
} host_ctx;

static void host_visit(void *ud, const mp_ref *ref)
{
    host_ctx *c = ud;
    if (acct_of_ref(ref) == c->acct) c->found = 1;
}

/* The node whose catalog holds acct now, or -1 (for failure messages). */
static int host_of(bk_world *w, int acct)
{
    for (int i = 0; i < w->nodes; i++) {
        bk_node *n = node_at(w, i);
        if (!n) continue;
        host_ctx c = {acct, 0};
        mp_node_foreach_activation(n->node, host_visit, &c);
        if (c.found) return i;
    }
    return -1;
}

static bool drained(bk_world *w)
{
    if (w->outstanding || mp_bank_transfers_in_flight()) return false;
    for (int i = 0; i < w->nodes; i++) {
        bk_node *n = node_at(w, i);
        if (!n) continue;
        mp_node_stats st;
        mp_node_get_stats(n->node, &st);
        if (st.pending_calls || st.mailbox_depth_total) return false;
    }
    return true;
}

static bk_node *random_node(bk_world *w)
{
    int start = (int)mp_sim_random_below(w->sim, (uint64_t)w->nodes);
    for (int k = 0; k < w->nodes; k++) {
        bk_node *n = node_at(w, (start + k) % w->nodes);
        if (n) return n;
    }
    return NULL;
}

static void fcall_done(bk_world *w)
{
    w->f_done++;
    assert(w->f_done <= w->f_total);
}

static void resolve_reply(void *ud, int status, const void *data, size_t len)
{
    bk_fcall *f = ud;
    bk_world *w = f->w;
    bk_op *op = &w->ops[f->op];
    fcall_done(w);
    int acct = f->what == F_SRC ? op->a : op->b;
    if (status != 0) {
        mp_sim_fail(w->sim, "bank: after heal, op_status of o%u%s at acct-%d "
                            "failed: %s '%.*s'",
                    f->op, f->what == F_DST ? ".d" : "", acct,
                    mp_status_name(status), (int)(len > 100 ? 100 : len),
                    (const char *)data);
        return;
    }
    void *v = NULL;
    json_t *ap = NULL;
    if (mp_codec_decode(mp_json_codec(), data, len, &v, NULL) == 0)
        ap = json_object_get(v, "applied");
    if (!json_is_boolean(ap)) {
        json_decref(v);
        mp_sim_fail(w->sim, "bank: op_status of o%u: malformed reply", f->op);
        return;
    }
    bool applied = json_is_true(ap);
    json_decref(v);
    if (f->sampled && op->outcome == O_NOTEXEC) {
        /* node.h: this status means the request never ran. */
        if (applied) {
            mp_sim_fail(w->sim, "bank: %s o%u (acct-%u -> acct-%u, %" PRId64
                                ") ended %s%s (not executed, node.h) but "
                                "op_status%s at acct-%d says it was applied",
                        kind_name(op->kind), f->op, op->a, op->b, op->amount,
                        mp_status_name(op->status),
                        op->sync ? " from mp_call" : "",
                        f->what == F_DST ? " of its deposit leg" : "", acct);
        } else {
            MP_SOMETIMES(true, "bank.not_executed_checked");
        }
        return;
    }
    if (f->sampled) {
        if (applied != f->expect)
            mp_sim_fail(w->sim, "bank: %s o%u (acct-%u -> acct-%u, %" PRId64
                                ") was %s to the client but op_status%s at "
                                "acct-%d says applied=%d",
                        kind_name(op->kind), f->op, op->a, op->b, op->amount,
                        outcome_name(op->outcome),
                        f->what == F_DST ? " of its deposit leg" : "", acct,
                        applied);
        return;
    }
    if (f->what == F_DST) {
        op->dst_applied = applied;
        op->dst_known = true;
    } else {
        op->src_applied = applied;
        op->src_known = true;
    }
}

static int issue_fcall(bk_world *w, bk_fcall *f, const char *method,
                       const char *payload, mp_reply_cb cb)
{
    bk_node *n = random_node(w);
    if (!n) {
        mp_sim_fail(w->sim, "bank: no running node after heal");
        return MP_EUNAVAIL;
    }
    mp_ref ref;
    int rc = ref_for(n->node, f->acct, &ref);
    assert(rc == 0);
    mp_call_opts opts = {.timeout_ns = BK_TIMEOUT_NS};
    rc = mp_call(n->node, &ref, method, payload, strlen(payload), &opts, cb, f);
    if (rc != 0) {
        mp_sim_fail(w->sim, "bank: after heal, %s on acct-%u refused at once: %s",
                    method, f->acct, mp_status_name(rc));
        fcall_done(w);
    }
    return rc;
}

static bk_fcall *fcalls_new(bk_world *w, uint32_t count, int slot)
{
    bk_fcall *f = calloc(count ? count : 1, sizeof *f);
    if (!f) {
        mp_sim_fail(w->sim, "bank: out of memory (final calls)");
        return NULL;
    }
    assert(!w->old_fcalls[slot]);
    w->old_fcalls[slot] = f; /* freed with the world: replies may lag */
    w->fcalls = f;
    w->f_total = count;
    w->f_done = 0;
    return f;
}

static void start_resolve(bk_world *w)
{
    /* Unknown and not-executed ops: one call per leg (the latter must
     * say not applied). Sample: evenly spaced ok/refused mutating ops
     * (deterministic, spread over the whole run). */
    uint32_t count = 0, mut = 0;
    for (uint32_t i = 0; i < w->nops; i++) {
        bk_op *op = &w->ops[i];
        if (op->kind == K_BALANCE) continue;
        if (op->outcome == O_UNKNOWN || op->outcome == O_NOTEXEC)
            count += op->kind == K_TRANSFER ? 2 : 1;
        else mut++;
    }
    uint32_t step = mut / BK_SAMPLE + 1;
    count += (mut / step + 1) * 2;
    bk_fcall *f = fcalls_new(w, count, 0);
    if (!f) return;
    uint32_t k = 0, m = 0;
    for (uint32_t i = 0; i < w->nops; i++) {
        bk_op *op = &w->ops[i];
        if (op->kind == K_BALANCE) continue;
        bool sample = op->outcome == O_NOTEXEC;
        if (op->outcome == O_OK || op->outcome == O_REFUSED) {
            sample = m++ % step == 0;
            if (!sample) continue;
        }
        int legs = op->kind == K_TRANSFER ? 2 : 1;
        for (int leg = 0; leg < legs; leg++) {
            assert(k < count);
            bk_fcall *c = &f[k++];
            c->w = w;
            c->op = i;
            c->what = leg ? F_DST : F_SRC;
            c->acct = leg ? op->b : op->a;
            c->sampled = sample;
            c->expect = op->outcome == O_OK;
        }
    }
    w->f_total = k;
    for (uint32_t j = 0; j < k && !mp_sim_failed(w->sim); j++) {
        char payload[64];
        snprintf(payload, sizeof payload, "{\"op\":\"o%u%s\"}", f[j].op,
                 f[j].what == F_DST ? ".d" : "");
        issue_fcall(w, &f[j], "op_status", payload, resolve_reply);
    }
}

/* The ledger's balance of every account, from resolved outcomes. False
 * (and the seed failed) on an inconsistent transfer. */
static bool compute_expected(bk_world *w)
{
    memset(w->expected, 0, sizeof w->expected);
    for (uint32_t i = 0; i < w->nops; i++) {
        bk_op *op = &w->ops[i];
        bool src, dst;
        switch (op->outcome) {
        case O_OK: src = dst = true; break;
        case O_REFUSED:
        case O_NOTEXEC: src = dst = false; break;
        case O_UNKNOWN:
            if (op->kind == K_BALANCE) continue;
            if (!op->src_known || (op->kind == K_TRANSFER && !op->dst_known)) {
                mp_sim_fail(w->sim, "bank: o%u was never resolved", i);
                return false;
            }
            src = op->src_applied;
            dst = op->kind == K_TRANSFER ? op->dst_applied : src;
            if (src) {
                w->n_resolved_applied++;
                MP_SOMETIMES(true, "bank.unknown_resolved_applied");
            } else {
                MP_SOMETIMES(true, "bank.unknown_resolved_not_applied");
            }
            break;
        default:
            mp_sim_fail(w->sim, "bank: o%u still pending after drain", i);
            return false;
        }
        switch (op->kind) {
        case K_DEPOSIT:
            if (src) w->expected[op->a] += op->amount;
            break;
        case K_WITHDRAW:
            if (src) w->expected[op->a] -= op->amount;
            break;
        case K_TRANSFER:
            if (src != dst) {
                mp_sim_fail(w->sim, "bank: transfer o%u acct-%u -> acct-%u (%" PRId64
                                    "): withdrawal applied=%d but deposit leg "
                                    "applied=%d",
                            i, op->a, op->b, op->amount, src, dst);
                return false;
            }
            if (src) {
                w->expected[op->a] -= op->amount;
                w->expected[op->b] += op->amount;
            }
            break;
        default: break;
        }
    }
    for (int a = 0; a < BK_ACCOUNTS; a++) {
        if (w->expected[a] < 0 && w->trace) {
            for (uint32_t i = 0; i < w->nops; i++) {
                bk_op *op = &w->ops[i];
                if (op->a != a && !(op->kind == K_TRANSFER && op->b == a)) continue;
                fprintf(stderr, "ledger acct-%d: o%u %s a=%u b=%u amount=%" PRId64
                                " outcome=%d src=%d/%d dst=%d/%d\n",
                        a, i, kind_name(op->kind), op->a, op->b, op->amount,
                        op->outcome, op->src_known, op->src_applied,
                        op->dst_known, op->dst_applied);
            }
        }
        if (w->expected[a] < 0) {
            mp_sim_fail(w->sim, "bank: ledger of acct-%d is negative (%" PRId64
                                "): a refused withdrawal was applied or an ok one "
                                "was not",
                        a, w->expected[a]);
            return false;
        }
    }
    return true;
}

static void balance_reply(void *ud, int status, const void *data, size_t len)
{
    bk_fcall *f = ud;
    bk_world *w = f->w;
    fcall_done(w);
    const char *phase = w->phase == P_FINAL ? "final read" : "burst";
    if (status != 0) {
        mp_sim_fail(w->sim, "bank: %s balance of acct-%u failed after heal: "
                            "%s '%.*s'",
                    phase, f->acct, mp_status_name(status),
                    (int)(len > 100 ? 100 : len), (const char *)data);
        return;
    }
    bool ok;
    int64_t bal = json_balance(w, data, len, &ok, NULL);
    if (!ok) {
        mp_sim_fail(w->sim, "bank: %s of acct-%u: malformed reply", phase, f->acct);
        return;
    }
    if (bal != w->expected[f->acct]) {
        mp_sim_fail(w->sim, "bank: %s of acct-%u: balance %" PRId64
                            ", ledger says %" PRId64,
                    phase, f->acct, bal, w->expected[f->acct]);
        return;
    }
    w->final_bal[f->acct] = bal;
    w->final_seen[f->acct] = true;
}

static void start_balances(bk_world *w, uint32_t count, int slot)
{
    bk_fcall *f = fcalls_new(w, count, slot);
    if (!f) return;
    for (uint32_t j = 0; j < count; j++) {
        f[j].w = w;
        f[j].what = F_BALANCE;
        /* Final read: every account once, in order. Burst: random. */
        f[j].acct = (uint16_t)(slot == 1 ? j % BK_ACCOUNTS
                                         : mp_sim_random_below(w->sim, BK_ACCOUNTS));
    }
    for (uint32_t j = 0; j < count && !mp_sim_failed(w->sim); j++)
        issue_fcall(w, &f[j], "balance", "{}", balance_reply);
}

/* ---- durable mode: waking accounts, reading the stored records --------- */

static void wake_reply(void *ud, int status, const void *data, size_t len)
{
    bk_fcall *f = ud;
    bk_world *w = f->w;
    assert(w->wake_out > 0);
    w->wake_out--;
    /* Failures are retried by the next tick: right after heal, restarted
     * nodes may still be recovering their directory partitions. */
    if (status == 0) w->wake_ok[f->acct] = true;
}

/* One balance call to every account not yet woken (each activation
 * resumes the transfer legs its state owes); true once all answered. */
static bool wake_step(bk_world *w)
{
    if (w->wake_out) return false;
    bool all = true;
    bk_fcall *wake = w->wake;
    for (int a = 0; a < BK_ACCOUNTS; a++) {
        if (w->wake_ok[a]) continue;
        all = false;
        bk_node *n = random_node(w);
        if (!n) return false;
        mp_ref ref;
        int rc = ref_for(n->node, a, &ref);
        assert(rc == 0);
        (void)rc;
        wake[a].w = w;
        wake[a].acct = (uint16_t)a;
        mp_call_opts opts = {.timeout_ns = BK_TIMEOUT_NS};
        if (mp_call(n->node, &ref, "balance", "{}", 2, &opts, wake_reply, &wake[a]) == 0)
            w->wake_out++;
    }
    return all;
}

static void stored_cb(void *ud, int status, const mp_storage_record *rec)
{
    bk_stored *st = ud;
    bk_world *w = st->w;
    st->done = true;
    w->stored_done++;
    if (status != 0) {
        mp_sim_fail(w->sim, "bank: reading the stored record of acct-%d failed: %s",
                    st->acct, mp_status_name(status));
        return;
    }
    if (rec->etag == 0) return; /* never stored */
    st->present = true;
    void *v = NULL;
    if (mp_codec_decode(mp_json_codec(), rec->data, rec->len, &v, NULL) != 0) {
        mp_sim_fail(w->sim, "bank: stored record of acct-%d does not decode", st->acct);
        return;
    }
    json_t *bal = json_object_get(v, "balance");
    json_t *ops = json_object_get(v, "ops");
    json_t *legs = json_object_get(v, "legs");
    if (!json_is_integer(bal) || !json_is_array(ops) || !json_is_array(legs)) {
        json_decref(v);
        mp_sim_fail(w->sim, "bank: stored record of acct-%d is malformed", st->acct);
        return;
    }
    st->balance = (int64_t)json_integer_value(bal);
    st->ops = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(ops, i, e)
        if (json_is_string(e)) json_object_set_new(st->ops, json_string_value(e), json_true());
    st->legs = json_incref(legs);
    json_decref(v);
}

static void start_stored(bk_world *w)
{
    w->stored = calloc(BK_ACCOUNTS, sizeof *w->stored);
    if (!w->stored) {
        mp_sim_fail(w->sim, "bank: out of memory (stored check)");
        return;
    }
    mp_storage *db = mp_sim_process_state(w->sim, w->db_pid);
    for (int a = 0; a < BK_ACCOUNTS; a++) {
        bk_stored *st = &w->stored[a];
        st->w = w;
        st->acct = a;
        char key[32], skey[MP_STORAGE_KEY_MAX + 1];
        acct_key(a, key, sizeof key);
        int kl = mp_storage_key(skey, sizeof skey, BK_NS, MP_BANK_TYPE, key);
        if (kl < 0 || !db ||
            mp_storage_load_record(db, skey, (size_t)kl, stored_cb, st) != 0) {
            mp_sim_fail(w->sim, "bank: cannot read the stored record of acct-%d", a);
            return;
        }
    }
}

static bool stored_has(const bk_stored *st, const char *id)
{
    return st->present && json_object_get(st->ops, id) != NULL;
}

/* S11: the stored records agree with the ledger: balances, and for every
 * mutating op whether it was applied (ok ops: stored; refused: not;
 * unknown: as op_status said), transfer legs included; a leg still owed in
 * storage was delivered. */
static void check_stored(bk_world *w)
{
    if (mp_sim_failed(w->sim)) return;
    for (int a = 0; a < BK_ACCOUNTS; a++) {
        bk_stored *st = &w->stored[a];
        int64_t bal = st->present ? st->balance : 0;
        if (bal != w->expected[a]) {
            mp_sim_fail(w->sim, "bank: stored balance of acct-%d is %" PRId64
                                ", ledger says %" PRId64,
                        a, bal, w->expected[a]);
            return;
        }
    }
    char id[48];
    for (uint32_t i = 0; i < w->nops; i++) {
        const bk_op *op = &w->ops[i];
        if (op->kind == K_BALANCE) continue;
        bool src = op->outcome == O_OK ||
                   (op->outcome == O_UNKNOWN && op->src_applied);
        snprintf(id, sizeof id, "o%u", i);
        if (stored_has(&w->stored[op->a], id) != src) {
            mp_sim_fail(w->sim, "bank: %s o%u (%s to the client) is %s the stored "
                                "record of acct-%u",
                        kind_name(op->kind), i,
                        outcome_name(op->outcome),
                        src ? "missing from" : "present in", op->a);
            return;
        }
        if (op->kind != K_TRANSFER) continue;
        snprintf(id, sizeof id, "o%u.d", i);
        if (stored_has(&w->stored[op->b], id) != src) {
            mp_sim_fail(w->sim, "bank: deposit leg of transfer o%u is %s the stored "
                                "record of acct-%u",
                        i, src ? "missing from" : "present in", op->b);
            return;
        }
    }
    for (int a = 0; a < BK_ACCOUNTS; a++) {
        bk_stored *st = &w->stored[a];
        if (!st->present) continue;
        size_t i;
        json_t *l;
        json_array_foreach(st->legs, i, l)
        {
            const char *lop = json_string_value(json_object_get(l, "op"));
            const char *to = json_string_value(json_object_get(l, "to"));
            int b = -1;
            if (to && strncmp(to, "acct-", 5) == 0) b = atoi(to + 5);
            if (!lop || b < 0 || b >= BK_ACCOUNTS || !stored_has(&w->stored[b], lop)) {
                mp_sim_fail(w->sim, "bank: acct-%d still owes leg %s to %s, "
                                    "never delivered",
                            a, lop ? lop : "?", to ? to : "?");
                return;
            }
            MP_SOMETIMES(true, "bank_durable.stale_leg_in_storage");
        }
    }
    MP_SOMETIMES(true, "bank_durable.stored_state_checked");
}

typedef struct count_ctx {
    uint64_t n;
} count_ctx;

static void count_visit(void *ud, const mp_ref *ref)
{
    count_ctx *c = ud;
    if (acct_of_ref(ref) >= 0) c->n++;
}

/* Where the accounts live as the burst ended (the report's S5 figures). */
static void snapshot_placement(bk_world *w)
{
    for (int i = 0; i < w->nodes; i++) {
        bk_node *n = node_at(w, i);
        count_ctx c = {0};
        if (n) mp_node_foreach_activation(n->node, count_visit, &c);
        w->placed[i] = c.n;
    }
}

/* ---- steady phase ---------------------------------------------------------- */

/* After the burst: faults are off since heal and client traffic stopped.
 * Idle deactivation runs (bank: the type's timeout drops to the nodes' 1 s
 * now; durable: 2 s all along), and for BK_STEADY_NS the driver runs
 * chains of calls on accounts it saw deactivated (absent from every node's
 * catalog), so each chain re-activates them on demand. Every call must
 * answer 0 with the balance the ledger predicts: the cluster is healed and
 * static, so any error is a bug. Only the driver calls an account in this
 * phase (durable: plus the duplicate legs a re-activated account resumes,
 * which change no balance), so "absent from every catalog" means its
 * activation is gone: for in-memory accounts (bank) its balance and op ids
 * went with it, moved to idle_lost for the conservation check. */

static void chain_issue(bk_chain *c);

static void chain_next(void *ud)
{
    bk_chain *c = ud;
    if (mp_sim_failed(c->w->sim)) return;
    chain_issue(c);
}

static void steady_reply(void *ud, int status, const void *data, size_t len)
{
    bk_chain *c = ud;
    bk_world *w = c->w;
    bk_op *op = &w->ops[c->op];
    int acct = c->step == 4 || c->step == 2 ? c->b : c->a;
    if (mp_sim_failed(w->sim)) return;
    op->status = (int16_t)status;
    if (w->trace)
        fprintf(stderr, "%.6f steady o%u %s acct-%d status=%d '%.*s'\n",
                (double)mp_sim_now(w->sim) / 1e9, c->op, kind_name(op->kind),
                acct, status, (int)(len > 60 ? 60 : len), (const char *)data);
    if (status != 0) {
        op->outcome = O_UNKNOWN; /* the seed fails: keep the ledger sane */
        mp_sim_fail(w->sim, "bank: steady phase: %s o%u on acct-%d (from node "
                            "%d at t=%.6f s) failed at t=%.6f s: %s '%.*s'",
                    kind_name(op->kind), c->op, acct, c->node,
                    (double)c->t0 / 1e9, (double)mp_sim_now(w->sim) / 1e9,
                    mp_status_name(status), (int)(len > 100 ? 100 : len),
                    (const char *)data);
        return;
    }
    op->outcome = O_OK;
    bool ok, dup;
    int64_t bal = json_balance(w, data, len, &ok, &dup);
    if (dup) {
        dup_seen(w, c->op, c->node, "steady-phase");
        return;
    }
    if (!ok || bal != w->expected[acct]) {
        mp_sim_fail(w->sim, "bank: steady phase: %s o%u on acct-%d answered "
                            "'%.*s', ledger says balance %" PRId64,
                    kind_name(op->kind), c->op, acct,
                    (int)(len > 100 ? 100 : len), (const char *)data,
                    w->expected[acct]);
        return;
    }
    w->final_bal[c->a] = w->expected[c->a];
    w->final_bal[c->b] = w->expected[c->b];
    if (++c->step == 5) {
        c->busy = false;
        w->st[c->a] = w->st[c->b] = ST_TOUCHED;
        MP_SOMETIMES(true, "bank.steady_chain_done");
        return;
    }
    if (mp_sim_schedule(w->sim, 1000, chain_next, c) != 0)
        mp_sim_fail(w->sim, "bank: out of memory (steady)");
}

/* Issue step c->step of the chain; the ledger's expected balances move
 * when the call is issued (the reply is checked against them). */
static void chain_issue(bk_chain *c)
{
    bk_world *w = c->w;
    bk_node *n = random_node(w);
    if (!n) {
        mp_sim_fail(w->sim, "bank: steady phase: no running node");
        return;
    }
    uint32_t i = ledger_new(w);
    if (i == UINT32_MAX) {
        mp_sim_fail(w->sim, "bank: out of memory (ledger)");
        return;
    }
    bk_op *op = &w->ops[i];
    int acct = c->a;
    char payload[160], key[32];
    switch (c->step) {
    case 0:
        op->kind = K_DEPOSIT;
        op->amount = 1 + (int64_t)mp_sim_random_below(w->sim, BK_AMOUNT_MAX);
        w->expected[c->a] += op->amount;
        break;
    case 1:
        op->kind = K_TRANSFER;
        op->amount = 1 + (int64_t)mp_sim_random_below(w->sim, (uint64_t)w->expected[c->a]);
        w->expected[c->a] -= op->amount;
        w->expected[c->b] += op->amount;
        break;
    case 2:
        op->kind = K_WITHDRAW;
        acct = c->b;
        op->amount = 1 + (int64_t)mp_sim_random_below(w->sim, (uint64_t)w->expected[c->b]);
        w->expected[c->b] -= op->amount;
        break;
    default:
        op->kind = K_BALANCE;
        if (c->step == 4) acct = c->b;
        break;
    }
    op->a = (uint16_t)acct;
    op->b = c->b;
    op->outcome = O_PENDING;
    if (op->kind == K_BALANCE) {
        snprintf(payload, sizeof payload, "{}");
    } else if (op->kind == K_TRANSFER) {
        acct_key(c->b, key, sizeof key);
        snprintf(payload, sizeof payload,
                 "{\"op\":\"o%u\",\"to\":\"%s\",\"amount\":%" PRId64 "}", i, key,
                 op->amount);
    } else {
        snprintf(payload, sizeof payload, "{\"op\":\"o%u\",\"amount\":%" PRId64 "}",
                 i, op->amount);
    }
    c->op = i;
    c->node = n->index;
    c->t0 = mp_sim_now(w->sim);
    w->steady_calls++;
    mp_ref ref;
    int rc = ref_for(n->node, acct, &ref);
    assert(rc == 0);
    mp_call_opts opts = {.timeout_ns = BK_TIMEOUT_NS};
    rc = mp_call(n->node, &ref, kind_name(op->kind), payload, strlen(payload),
                 &opts, steady_reply, c);
    if (rc != 0) {
        op->status = (int16_t)rc;
        op->sync = true;
        op->outcome = O_NOTEXEC;
        mp_sim_fail(w->sim, "bank: steady phase: mp_call of %s o%u on acct-%d "
                            "(node %d) returned %s",
                    kind_name(op->kind), i, acct, n->index, mp_status_name(rc));
    }
}

static void start_steady(bk_world *w)
{
    w->steady_until = mp_sim_now(w->sim) + BK_STEADY_NS;
    /* Every account was just read (final, burst): active somewhere. */
    memset(w->st, ST_TOUCHED, sizeof w->st);
    for (int k = 0; k < BK_STEADY_CHAINS; k++) w->chains[k].w = w;
    /* From now on in-memory accounts go idle too (the sweep, armed at
     * start from the nodes' 1 s, reads the type's timeout each time). */
    w->acct_type.idle_timeout_ns = 0;
}

/* One tick of the steady phase (act_seen is fresh: the single-activation
 * check just walked every catalog). True once over. */
static bool steady_step(bk_world *w)
{
    if (mp_sim_failed(w->sim)) return false;
    uint16_t fresh[BK_ACCOUNTS];
    int nfresh = 0;
    for (int a = 0; a < BK_ACCOUNTS; a++) {
        bool active = w->act_seen[a] != 0;
        if (w->st[a] == ST_TOUCHED && !active) {
            w->st[a] = ST_FRESH;
            w->steady_deacts++;
            MP_SOMETIMES(true, "bank.steady_idle_deactivated");
            if (!w->durable) { /* its balance went with the activation */
                w->idle_lost += w->expected[a];
                w->expected[a] = 0;
                w->final_bal[a] = 0;
            }
        } else if (w->st[a] == ST_FRESH && active) {
            w->st[a] = ST_TOUCHED; /* durable: woken by a resumed leg */
        }
        if (w->st[a] == ST_FRESH) fresh[nfresh++] = (uint16_t)a;
    }
    bool busy = false;
    for (int k = 0; k < BK_STEADY_CHAINS; k++) {
        bk_chain *c = &w->chains[k];
        if (c->busy) {
            busy = true;
            continue;
        }
        if (mp_sim_now(w->sim) >= w->steady_until || nfresh < 2) continue;
        int x = (int)mp_sim_random_below(w->sim, (uint64_t)nfresh);
        uint16_t p = fresh[x];
        fresh[x] = fresh[--nfresh];
        int y = (int)mp_sim_random_below(w->sim, (uint64_t)nfresh);
        uint16_t q = fresh[y];
        fresh[y] = fresh[--nfresh];
        c->a = p < q ? p : q;
        c->b = p < q ? q : p;
        c->step = 0;
        c->busy = busy = true;
        w->st[c->a] = w->st[c->b] = ST_BUSY;
        w->steady_chains++;
        chain_issue(c);
        if (mp_sim_failed(w->sim)) return false;
    }
    if (busy || mp_sim_now(w->sim) < w->steady_until) return false;
    if (w->steady_chains == 0) {
        mp_sim_fail(w->sim, "bank: steady phase: no account was deactivated "
                            "for idleness (%" PRIu64 " deactivations seen)",
                    w->steady_deacts);
        return false;
    }
    return true;
}

static void tick(void *ud)
{
    bk_world *w = ud;
    w->tick_armed = false;
    if (mp_sim_failed(w->sim)) return;
    check_single_activation(w);
    switch (w->phase) {
    case P_CHAOS: break;
    case P_WAKE:
        if (w->outstanding == 0 && wake_step(w)) w->phase = P_DRAIN;
        break;
    case P_STORED:
        if (w->stored_done == BK_ACCOUNTS) {
            check_stored(w);
            w->phase = P_DONE;
        }
        break;
    case P_DRAIN:
        if (drained(w)) {
            w->phase = P_SETTLE;
            w->settle_until = mp_sim_now(w->sim) + BK_SETTLE_NS;
        }
        break;
    case P_SETTLE:
        if (!drained(w)) { /* something woke up: drain again */
            w->phase = P_DRAIN;
        } else if (mp_sim_now(w->sim) >= w->settle_until) {
            w->phase = P_RESOLVE;
            start_resolve(w);
        }
        break;
    case P_RESOLVE:
        if (w->f_done == w->f_total && compute_expected(w)) {
            w->phase = P_FINAL;
            w->final_calls = BK_ACCOUNTS;
            start_balances(w, BK_ACCOUNTS, 1);
        }
        break;
    case P_FINAL:
        if (w->f_done == w->f_total) {
            for (int a = 0; a < BK_ACCOUNTS; a++)
                if (!w->final_seen[a]) return; /* already failed */
            w->phase = P_BURST;
            w->burst_calls = BK_BURST;
            start_balances(w, BK_BURST, 2);
        }
        break;
    case P_BURST:
        if (w->f_done == w->f_total) {
            snapshot_placement(w);
            w->phase = P_STEADY;
            start_steady(w);
        }
        break;
    case P_STEADY:
        if (steady_step(w)) {
            if (w->durable) {
                w->phase = P_STORED;
                start_stored(w);
            } else {
                w->phase = P_DONE;
            }
        }
        break;
    default: break;
    }
    if (w->phase != P_DONE && !mp_sim_failed(w->sim)) {
        if (mp_sim_schedule(w->sim, BK_TICK_NS, tick, w) == 0)
            w->tick_armed = true;
        else
            mp_sim_fail(w->sim, "bank: out of memory (tick)");
    }
}

/* ---- last report ---------------------------------------------------------- */

static __thread mp_bank_report g_report;

void mp_bank_last_report(mp_bank_report *out) { *out = g_report; }

static void fill_report(bk_world *w)
{
    /* the placement as the burst ended (snapshot_placement) */
    mp_bank_report *r = &g_report;
    memset(r, 0, sizeof *r);
    r->nodes = w->nodes;
    r->workers = w->workers;
    r->accounts = BK_ACCOUNTS;
    r->ops = w->nops;
    r->ok = w->n_ok;
    r->refused = w->n_refused;
    r->unknown = w->n_unknown;
    r->resolved_applied = w->n_resolved_applied;
    r->final_calls = w->final_calls;
    r->burst_calls = w->burst_calls;
    uint64_t total = 0;
    for (int i = 0; i < w->nodes; i++) {
        r->per_node[i] = w->placed[i];
        total += w->placed[i];
    }
    double mean = (double)total / w->nodes;
    for (int i = 0; i < w->nodes && mean > 0; i++) {
        double d = ((double)r->per_node[i] - mean) / mean;
        if (d < 0) d = -d;
        if (d > r->max_dev) r->max_dev = d;
    }
}

/* ---- workload callbacks --------------------------------------------------- */

static void bk_destroy(void *state)
{
    bk_world *w = state;
    if (!w) return;
    for (int i = 0; i < 3; i++) free(w->old_fcalls[i]);
    if (w->stored) {
        for (int a = 0; a < BK_ACCOUNTS; a++) {
            json_decref(w->stored[a].ops);
            json_decref(w->stored[a].legs);
        }
        free(w->stored);
    }
    /* the world is gone: its db provider released the disk */
    mp_storage_sim_disk_free(w->disk);
    free(w->ops);
    free(w->pids);
    free(w->args);
    free(w->addrs);
    free(w->members);
    free(w);
}

static int setup_any(mp_sim *sim, const mp_workload_params *params,
                     void **state, bool durable)
{
    int nodes = params ? params->nodes : 0;
    int workers = params ? params->workers : 0;
    if (nodes == 0 && workers == 0) {
        static const int topo[3] = {1, 2, 10};
        static const int topo_durable[3] = {1, 3, 5};
        nodes = workers = (durable ? topo_durable : topo)[mp_sim_random_below(sim, 3)];
    } else if (nodes == 0) {
        nodes = workers;
    } else if (workers == 0) {
        workers = nodes;
    }
    if (nodes < 1 || nodes > BK_MAX_NODES || workers < 1 || workers > BK_MAX_WORKERS)
        return MP_EINVAL;
    bk_world *w = calloc(1, sizeof *w);
    if (!w) return MP_ENOMEM;
    *state = w; /* the runner owns it from here, even on error */
    memset(&g_report, 0, sizeof g_report);
    w->sim = sim;
    w->durable = durable;
    w->acct_type = *mp_bank_account_type();
    /* bank: no idle deactivation before the steady phase (it would destroy
     * in-memory balances the ledger counts on); durable: the node's 2 s. */
    w->acct_type.idle_timeout_ns = durable ? 0 : BK_IDLE_OFF_NS;
    w->trace = params && params->trace;
    w->nodes = nodes;
    w->workers = workers;
    /* The cluster's op rate stays near BK_OPS_PER_S whatever the topology:
     * more slots think longer. */
    uint64_t slots = (uint64_t)workers * BK_SLOTS;
    w->think_mean_ns = slots * MP_SIM_NS_PER_S /
                       (durable ? BK_DURABLE_OPS_PER_S : BK_OPS_PER_S);
    w->pids = calloc((size_t)nodes, sizeof *w->pids);
    w->args = calloc((size_t)nodes, sizeof *w->args);
    w->addrs = calloc((size_t)nodes, sizeof *w->addrs);
    w->members = calloc((size_t)nodes, sizeof *w->members);
    if (!w->pids || !w->args || !w->addrs || !w->members) return MP_ENOMEM;
    for (int i = 0; i < nodes; i++) {
        node_addr(i, w->addrs[i], sizeof w->addrs[i]);
        w->members[i] = w->addrs[i];
        w->args[i].w = w;
        w->args[i].index = i;
    }
    if (durable) {
        /* Booted first (same instant, earlier event): nodes find it. */
        w->db_pid = mp_sim_spawn(sim, BK_DB_ADDR, &db_ops, w);
        if (w->db_pid < 0) return w->db_pid;
        mp_sim_set_killable(sim, w->db_pid, false);
    }
    for (int i = 0; i < nodes; i++) {
        int pid = mp_sim_spawn(sim, w->addrs[i], &bk_ops, &w->args[i]);
        if (pid < 0) return pid;
        w->pids[i] = pid;
        /* With persistence a kill loses nothing acknowledged. */
        mp_sim_set_killable(sim, pid, durable);
    }
    int rc = mp_sim_schedule(sim, BK_TICK_NS, tick, w);
    if (rc != 0) return rc;
    w->tick_armed = true;
    return 0;
}

static int bk_setup(mp_sim *sim, const mp_workload_params *params, void **state)
{
    return setup_any(sim, params, state, false);
}


static void bk_on_heal(mp_sim *sim, void *state)
{
    bk_world *w = state;
    w->healing = true;
    w->phase = w->durable ? P_WAKE : P_DRAIN;
    /* Stop the idle client slots now; busy ones stop when their op ends. */
    for (int i = 0; i < w->nodes; i++) {
        bk_node *n = node_at(w, i);
        if (!n) continue;
        for (int j = 0; j < n->nslots; j++) {
            if (n->slots[j].timer) mp_env_timer_cancel(n->env, n->slots[j].timer);
            n->slots[j].timer = 0;
        }
    }
}

static bool bk_quiescent(mp_sim *sim, void *state)
{
    bk_world *w = state;
    return w->phase == P_DONE;
}

static void bk_check(mp_sim *sim, void *state)
{
    bk_world *w = state;
    fill_report(w);
    /* The end-of-run side of the n_dup invariant (dup_seen fails at once;
     * this catches a duplicate counted on a path that did not fail). */
    if (w->n_dup != 0) {
        mp_sim_fail(sim, "bank: %" PRIu64 " requests were delivered twice "
                         "(answered as duplicates)", w->n_dup);
        return;
    }
    /* In-memory balances that went with an idle activation (steady). */
    int64_t sum = w->idle_lost, external = 0;
    for (int a = 0; a < BK_ACCOUNTS; a++) {
        if (!w->final_seen[a]) {
            mp_sim_fail(sim, "bank: acct-%d never answered the final read", a);
            return;
        }
        sum += w->final_bal[a];
    }
    for (uint32_t i = 0; i < w->nops; i++) {
        const bk_op *op = &w->ops[i];
        bool applied = op->outcome == O_OK ||
                       (op->outcome == O_UNKNOWN && op->src_applied);
        if (!applied) continue;
        if (op->kind == K_DEPOSIT) external += op->amount;
        if (op->kind == K_WITHDRAW) external -= op->amount;
    }
    if (sum != external) {
        mp_sim_fail(sim, "bank: money not conserved: balances sum to %" PRId64
                         ", applied deposits - withdrawals = %" PRId64,
                    sum, external);
        return;
    }
    if (w->n_ok == 0) mp_sim_fail(sim, "bank: no operation ever succeeded");
}

/* The runtime's sometimes-assertions this workload can reach. Not the whole
 * "actor." family: rerouting after deactivation and owner restarts need
 * accounts that survive deactivation and kills: the durable mode requires
 * those (workloads/bank_durable.c). Idle deactivation happens in the
 * steady phase. */
static const char *const bk_coverage[] = {
    "bank.",
    "actor.idle_deactivation",
    "actor.activation_race_lost",
    "actor.activation_failed",
    "actor.forwarded",
    "actor.cache_corrected",
    "actor.timeout",
    "actor.late_reply",
    "actor.request_not_hosted",
    "actor.register_duplicated",
    "actor.unregister_delayed",
    "actor.ttl_expired_drop",
    NULL,
};

const mp_sim_workload mp_workload_bank = {
    .name = "bank",
    .description = "BankAccount actors under faults: deposits, withdrawals, "
                   "transfers; ledger-checked balances, money conservation, "
                   "single activation, full delivery after heal "
                   "(--nodes/--workers: 1x1, 2x2 or 10x10 per seed)",
    .required_coverage = bk_coverage,
    .chaos_ns = 0,
    .heal_ns = 45ull * MP_SIM_NS_PER_S, /* drain .. burst, then the steady phase */
    .setup = bk_setup,
    .on_heal = bk_on_heal,
    .quiescent = bk_quiescent,
    .check = bk_check,
    .destroy = bk_destroy,
};

/* The same driver with persistence (workloads/bank_durable.c describes
 * it); exported through workloads.h. */
int mp_bank_wl_setup_durable(mp_sim *sim, const mp_workload_params *params,
                             void **state)
{
    return setup_any(sim, params, state, true);
}
void mp_bank_wl_on_heal(mp_sim *sim, void *state) { bk_on_heal(sim, state); }
bool mp_bank_wl_quiescent(mp_sim *sim, void *state) { return bk_quiescent(sim, state); }
void mp_bank_wl_check(mp_sim *sim, void *state) { bk_check(sim, state); }
void mp_bank_wl_destroy(void *state) { bk_destroy(state); }
