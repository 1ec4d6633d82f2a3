/*
 * BankAccount (see bank.h for the protocol).
 *
 * Why op ids and a dedup set: a caller that times out does not know whether
 * its deposit was applied, and the one safe reaction, retrying, must not
 * apply it twice. So every mutating op names itself and the account keeps
 * the set of ids it applied. The set grows without bound (one entry per
 * applied op); bounding it needs either a per-client sequence window or
 * expiry tied to the callers' retry horizon, which is a later issue.
 *
 * Why the transfer holds its turn until the deposit leg succeeds: that is
 * what makes "ok" mean "the money arrived". The source withdraws, then calls
 * the destination's deposit with the derived id "<op>.d", retrying with the
 * same id after any failure (timeout, unreachable): the destination's dedup
 * makes a retry after a lost reply harmless. The leg is retried, never
 * abandoned, because the withdrawal is already applied and abandoning would
 * destroy money; under a permanent failure the transfer stays pending, which
 * the simulator reports as a liveness failure rather than a silent loss.
 *
 * A consequence of non-reentrant turns (R4): while A's transfer waits on B,
 * A takes no message, so transfers A->B and B->A running at once would wait
 * on each other forever (each deposit queues behind the other's turn). The
 * example does not solve distributed deadlock; callers must keep transfers
 * acyclic (the workload only transfers from a lower to a higher account
 * index). A transfer to oneself is refused for the same reason.
 *
 * Memory: an activation's instance holds one pointer to a heap account
 * (balance, op set, transfer in flight). Accounts are also linked on a
 * thread-local list so that mp_bank_release_node can free them when a node
 * is destroyed without deactivation hooks (a simulated kill). A transfer
 * whose deposit call is still outstanding when its account goes away is
 * orphaned, not freed, because the runtime may still deliver that call's
 * callback; the callback then frees it.
 */
#include "bank.h"

#include <assert.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "moonpool/codec.h"
#include "util/hash.h"

/* ---- op-id set ------------------------------------------------------------ */

/* Open addressing with linear probing over owned copies of the ids. No
 * removal (ids are forever), so no tombstones. The order of slots is never
 * observed (only membership), so the hash seed cannot leak into behaviour. */
typedef struct opset {
    char **slot;
    size_t cap; /* power of two, or 0 */
    size_t count;
} opset;

static uint64_t op_hash(const char *s, size_t len)
{
    return mp_hash64(s, len, MP_HASH_SEED_DEFAULT);
}

static bool opset_has(const opset *s, const char *id, size_t len)
{
    if (!s->cap) return false;
    size_t mask = s->cap - 1;
    for (size_t i = (size_t)op_hash(id, len) & mask;; i = (i + 1) & mask) {
        const char *e = s->slot[i];
        if (!e) return false;
        if (strlen(e) == len && memcmp(e, id, len) == 0) return true;
    }
}

static void opset_place(char **slot, size_t cap, char *e)
{
    size_t mask = cap - 1;
    size_t i = (size_t)op_hash(e, strlen(e)) & mask;
    while (slot[i]) i = (i + 1) & mask;
    slot[i] = e;
}

/* Add an id known to be absent. MP_ENOMEM leaves the set unchanged. */
static int opset_add(opset *s, const char *id, size_t len)
{
    assert(!opset_has(s, id, len));
    if ((s->count + 1) * 10 > s->cap * 7) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        char **ns = calloc(ncap, sizeof *ns);
        if (!ns) return MP_ENOMEM;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i]) opset_place(ns, ncap, s->slot[i]);
        free(s->slot);
        s->slot = ns;
        s->cap = ncap;
    }
    char *e = malloc(len + 1);
    if (!e) return MP_ENOMEM;
    memcpy(e, id, len);
    e[len] = '\0';
    opset_place(s->slot, s->cap, e);
    s->count++;
    return MP_OK;
}

static void opset_free(opset *s)
{
    for (size_t i = 0; i < s->cap; i++) free(s->slot[i]);
    free(s->slot);
    memset(s, 0, sizeof *s);
}

/* ---- accounts ------------------------------------------------------------- */

struct account;

typedef struct xfer {
    struct xfer *prev, *next; /* orphan list while orphaned */
    struct account *acct;     /* NULL once orphaned */
    mp_node *node;
    mp_actor *self;           /* the source activation (its turn is held) */
    mp_msg *msg;              /* the client's transfer, replied at the end */
    mp_ref to;
    char leg_op[MP_BANK_OP_MAX + 1];
    int64_t amount;
    uint32_t attempts;
    bool call_out;            /* a deposit call's callback is owed */
    mp_timer_id retry;
} xfer;

typedef struct account {
    struct account *prev, *next; /* thread-local list of live accounts */
    struct account **inst;       /* the activation's instance slot */
    mp_node *node;
    mp_env *env;
    int64_t balance;
    opset applied;
    xfer *xf; /* transfer in flight (the turn is held), or NULL */
} account;

typedef struct instance {
    account *a;
} instance;

static __thread account *g_accounts;
static __thread xfer *g_orphans;
static __thread uint64_t g_live;
static __thread uint64_t g_xfers; /* transfers with a pending deposit leg */

static void xfer_free(xfer *x)
{
    assert(!x->acct);
    if (x->prev) x->prev->next = x->next;
    else if (g_orphans == x) g_orphans = x->next;
    if (x->next) x->next->prev = x->prev;
    free(x);
}

/* Detach a transfer from its dying account. `can_cancel`: cancel its retry
 * timer (false when the env is being destroyed with the node anyway). */
static void xfer_orphan(xfer *x, bool can_cancel)
{
    account *a = x->acct;
    assert(a && a->xf == x);
    a->xf = NULL;
    assert(g_xfers > 0);
    g_xfers--;
    x->acct = NULL;
    if (x->retry && can_cancel) mp_env_timer_cancel(a->env, x->retry);
    x->retry = 0;
    if (!x->call_out) {
        free(x);
        return;
    }
    x->prev = NULL;
    x->next = g_orphans;
    if (g_orphans) g_orphans->prev = x;
    g_orphans = x;
}

static void account_free(account *a, bool can_cancel)
{
    if (a->xf) xfer_orphan(a->xf, can_cancel);
    if (a->prev) a->prev->next = a->next;
    else g_accounts = a->next;
    if (a->next) a->next->prev = a->prev;
    if (a->inst) *a->inst = NULL;
    opset_free(&a->applied);
    free(a);
    assert(g_live > 0);
    g_live--;
}

static int on_activate(mp_actor *self, void *inst_)
{
    instance *inst = inst_;
    /* A failing activation is legal (the runtime must fail the queued
     * messages cleanly and activate again later); let the simulator make
     * it happen. Nothing was allocated yet, so nothing is lost. */
    if (MP_BUGGIFY_P(0.02)) return MP_EBUSY;
    account *a = calloc(1, sizeof *a);
    if (!a) return MP_ENOMEM;
    a->inst = &inst->a;
    a->node = mp_actor_node(self);
    a->env = mp_actor_env(self);
    a->next = g_accounts;
    if (g_accounts) g_accounts->prev = a;
    g_accounts = a;
    g_live++;
    inst->a = a;
    return 0;
}

static void on_deactivate(mp_actor *self, void *inst_, mp_deactivate_reason r)
{
    instance *inst = inst_;
    if (inst->a) account_free(inst->a, true);
}

void mp_bank_release_node(mp_node *node)
{
    account *a = g_accounts;
    while (a) {
        account *next = a->next;
        if (a->node == node) account_free(a, false);
        a = next;
    }
    xfer *x = g_orphans;
    while (x) {
        xfer *next = x->next;
        if (x->node == node) xfer_free(x);
        x = next;
    }
}

uint64_t mp_bank_live_accounts(void) { return g_live; }

uint64_t mp_bank_transfers_in_flight(void) { return g_xfers; }

/* ---- payloads ------------------------------------------------------------- */

static void reply_json(mp_msg *msg, json_t *v)
{
    const mp_codec *c = mp_json_codec();
    char buf[128];
    mp_bytes b;
    mp_codec_error err;
    int rc = v ? mp_codec_encode(c, v, buf, sizeof buf, &b, &err) : MP_ENOMEM;
    json_decref(v);
    if (rc != 0) {
        mp_reply_error(msg, rc, rc == MP_ENOMEM ? "out of memory" : err.text);
        return;
    }
    mp_reply(msg, b.data, b.len);
    mp_bytes_release(&b);
}

static void reply_balance(mp_msg *msg, const account *a, bool dup)
{
    json_t *v = dup ? json_pack("{s:I,s:b}", "balance", (json_int_t)a->balance,
                                "dup", 1)
                    : json_pack("{s:I}", "balance", (json_int_t)a->balance);
    reply_json(msg, v);
}

static bool op_id_valid(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
                  c == '-';
        if (!ok) return false;
    }
    return true;
}

/* A decoded, validated request. Strings point into `root`. */
typedef struct req {
    json_t *root;
    const char *op;
    size_t op_len;
    const char *to;
    int64_t amount;
} req;

enum { F_OP = 1, F_AMOUNT = 2, F_TO = 4 };

/* Decode and validate: exactly the fields in `fields`, of the right types
 * and ranges. On error replies MP_EINVAL (or the codec's status) and
 * returns false. */
static bool parse(mp_msg *msg, const void *payload, size_t len, int fields,
                  size_t op_max, req *r)
{
    memset(r, 0, sizeof *r);
    const mp_codec *c = mp_json_codec();
    mp_codec_error err;
    void *v = NULL;
    int rc = mp_codec_decode(c, payload, len, &v, &err);
    if (rc != 0) {
        char text[MP_CODEC_ERR_MAX + 16];
        snprintf(text, sizeof text, "bad request: %s", err.text);
        mp_reply_error(msg, rc, text);
        return false;
    }
    r->root = v;
    const char *why = NULL;
    if (!json_is_object(r->root)) {
        why = "bad request: not an object";
        goto bad;
    }
    size_t want = 0;
    if (fields & F_OP) {
        want++;
        json_t *op = json_object_get(r->root, "op");
        if (!json_is_string(op)) {
            why = "bad request: \"op\" must be a string";
            goto bad;
        }
        r->op = json_string_value(op);
        r->op_len = json_string_length(op);
        if (!op_id_valid(r->op, r->op_len, op_max)) {
            why = "bad request: malformed op id";
            goto bad;
        }
    }
    if (fields & F_AMOUNT) {
        want++;
        json_t *am = json_object_get(r->root, "amount");
        if (!json_is_integer(am)) {
            why = "bad request: \"amount\" must be an integer";
            goto bad;
        }
        json_int_t n = json_integer_value(am);
        if (n < 1 || n > MP_BANK_AMOUNT_MAX) {
            why = "bad request: amount out of range";
            goto bad;
        }
        r->amount = (int64_t)n;
    }
    if (fields & F_TO) {
        want++;
        json_t *to = json_object_get(r->root, "to");
        if (!json_is_string(to) || json_string_length(to) == 0 ||
            strlen(json_string_value(to)) != json_string_length(to)) {
            why = "bad request: \"to\" must be an account key";
            goto bad;
        }
        r->to = json_string_value(to);
    }
    if (json_object_size(r->root) != want) {
        why = "bad request: unexpected fields";
        goto bad;
    }
    return true;
bad:
    mp_reply_error(msg, MP_EINVAL, why);
    json_decref(r->root);
    r->root = NULL;
    return false;
}

/* ---- handlers ------------------------------------------------------------- */

/* The instance's account; a message that arrives with none (activation ran
 * out of memory, or the node was released) is refused. */
static account *acct_of(mp_msg *msg, void *inst_)
{
    instance *inst = inst_;
    if (!inst->a) mp_reply_error(msg, MP_EINTERNAL, "account not available");
    return inst->a;
}

static void note_balance(const account *a)
{
    MP_ALWAYS(a->balance >= 0, "bank.balance_never_negative");
}

static void h_deposit(mp_actor *self, void *inst, mp_msg *msg,
                      const void *payload, size_t len)
{
    account *a = acct_of(msg, inst);
    req r;
    if (!a || !parse(msg, payload, len, F_OP | F_AMOUNT, MP_BANK_OP_MAX, &r)) return;
    if (opset_has(&a->applied, r.op, r.op_len)) {
        /* A retry whose first attempt was applied (a lost reply). */
        MP_SOMETIMES(true, "bank.deposit_dedup");
        reply_balance(msg, a, true);
    } else if (a->balance > INT64_MAX - r.amount) {
        mp_reply_error(msg, MP_EACTOR, "balance overflow");
    } else if (opset_add(&a->applied, r.op, r.op_len) != 0) {
        mp_reply_error(msg, MP_ENOMEM, "out of memory");
    } else {
        a->balance += r.amount;
        note_balance(a);
        reply_balance(msg, a, false);
    }
    json_decref(r.root);
}

/* Withdraw r->amount under op r->op: 0, or an error already replied. */
static bool withdraw_apply(account *a, mp_msg *msg, const req *r)
{
    if (a->balance < r->amount) {
        MP_SOMETIMES(true, "bank.insufficient_funds");
        mp_reply_error(msg, MP_EACTOR, "insufficient funds");
        return false;
    }
    if (opset_add(&a->applied, r->op, r->op_len) != 0) {
        mp_reply_error(msg, MP_ENOMEM, "out of memory");
        return false;
    }
    a->balance -= r->amount;
    note_balance(a);
    return true;
}

static void h_withdraw(mp_actor *self, void *inst, mp_msg *msg,
                       const void *payload, size_t len)
{
    account *a = acct_of(msg, inst);
    req r;
    if (!a || !parse(msg, payload, len, F_OP | F_AMOUNT, MP_BANK_OP_MAX, &r)) return;
    if (opset_has(&a->applied, r.op, r.op_len))
        reply_balance(msg, a, true);
    else if (withdraw_apply(a, msg, &r))
        reply_balance(msg, a, false);
    json_decref(r.root);
}

static void h_balance(mp_actor *self, void *inst, mp_msg *msg,
                      const void *payload, size_t len)
{
    account *a = acct_of(msg, inst);
    req r;
    if (!a || !parse(msg, payload, len, 0, 0, &r)) return;
    json_decref(r.root);
    note_balance(a);
    reply_balance(msg, a, false);
}

static void h_op_status(mp_actor *self, void *inst, mp_msg *msg,
                        const void *payload, size_t len)
{
    account *a = acct_of(msg, inst);
    req r;
    if (!a || !parse(msg, payload, len, F_OP, MP_BANK_OP_MAX, &r)) return;
    bool applied = opset_has(&a->applied, r.op, r.op_len);
    json_decref(r.root);
    reply_json(msg, json_pack("{s:b}", "applied", applied));
}

static void leg_send(xfer *x);

static void leg_retry_fire(void *ud)
{
    xfer *x = ud;
    x->retry = 0;
    assert(x->acct); /* an orphan's timer was cancelled */
    leg_send(x);
}

static void leg_retry(xfer *x)
{
    account *a = x->acct;
    MP_SOMETIMES(true, "bank.transfer_leg_retried");
    uint64_t d = MP_BANK_LEG_BACKOFF_NS +
                 mp_env_random_below(a->env, MP_BANK_LEG_BACKOFF_NS);
    x->retry = mp_env_timer_start(a->env, d, leg_retry_fire, x);
    if (!x->retry) {
        /* Out of memory for a timer: the transfer stays pending (its turn
         * held) rather than dropping the leg; a stuck transfer is visible,
         * lost money is not. */
        mp_env_log(a->env, MP_LOG_ERROR,
                   "bank: no timer to retry deposit leg %s", x->leg_op);
    }
}

static void leg_done(void *ud, int status, const void *data, size_t len)
{
    xfer *x = ud;
    assert(x->call_out);
    x->call_out = false;
    if (!x->acct) { /* the account went away meanwhile */
        xfer_free(x);
        return;
    }
    account *a = x->acct;
    if (status != 0) {
        mp_env_log(a->env, MP_LOG_INFO,
                   "bank: transfer deposit leg %s to %s failed: %s (%.*s); "
                   "retrying",
                   x->leg_op, x->to.id, mp_status_name(status),
                   (int)(len > 200 ? 200 : len), (const char *)data);
        leg_retry(x);
        return;
    }
    a->xf = NULL;
    x->acct = NULL;
    assert(g_xfers > 0);
    g_xfers--;
    mp_msg *msg = x->msg;
    free(x);
    reply_balance(msg, a, false);
}

static void leg_send(xfer *x)
{
    assert(x->acct && !x->call_out && !x->retry);
    x->attempts++;
    char payload[MP_BANK_OP_MAX + 64];
    int n = snprintf(payload, sizeof payload, "{\"op\":\"%s\",\"amount\":%" PRId64 "}",
                     x->leg_op, x->amount);
    assert(n > 0 && (size_t)n < sizeof payload);
    mp_call_opts opts = {.timeout_ns = MP_BANK_LEG_TIMEOUT_NS};
    /* The self pointer is only needed for the sender identity; the turn is
     * still ours, so the activation is alive. */
    int rc = mp_actor_call(x->self, &x->to, "deposit", payload, (size_t)n, &opts,
                           leg_done, x);
    if (rc != 0) {
        leg_retry(x);
        return;
    }
    x->call_out = true;
}

static void h_transfer(mp_actor *self, void *inst, mp_msg *msg,
                       const void *payload, size_t len)
{
    account *a = acct_of(msg, inst);
    req r;
    if (!a || !parse(msg, payload, len, F_OP | F_AMOUNT | F_TO,
                     MP_BANK_OP_MAX - 2, &r))
        return;
    assert(!a->xf); /* turns do not overlap */
    const mp_ref *me = mp_actor_ref(self);
    mp_ref to;
    if (strlen(r.to) == me->key_len && memcmp(r.to, me->id + me->key_off, me->key_len) == 0) {
        mp_reply_error(msg, MP_EINVAL, "bad request: transfer to self");
    } else if (mp_ref_get(a->node, MP_BANK_TYPE, r.to, &to) != 0) {
        mp_reply_error(msg, MP_EINVAL, "bad request: malformed \"to\" key");
    } else if (opset_has(&a->applied, r.op, r.op_len)) {
        /* Applied before: its deposit leg completed within that turn. */
        reply_balance(msg, a, true);
    } else {
        /* Allocate before withdrawing: once the withdrawal is recorded the
         * leg must happen. */
        xfer *x = calloc(1, sizeof *x);
        if (!x) {
            mp_reply_error(msg, MP_ENOMEM, "out of memory");
        } else if (!withdraw_apply(a, msg, &r)) {
            free(x);
        } else {
            x->acct = a;
            x->node = a->node;
            x->self = self;
            x->msg = msg;
            x->to = to;
            x->amount = r.amount;
            snprintf(x->leg_op, sizeof x->leg_op, "%.*s.d", (int)r.op_len, r.op);
            a->xf = x;
            g_xfers++;
            leg_send(x);
        }
    }
    json_decref(r.root);
}

/* ---- the type ------------------------------------------------------------- */

static const mp_method_def methods[] = {
    {"deposit", h_deposit},   {"withdraw", h_withdraw},
    {"balance", h_balance},   {"transfer", h_transfer},
    {"op_status", h_op_status},
};

static const mp_actor_type bank_type = {
    .name = MP_BANK_TYPE,
    .instance_size = sizeof(instance),
    .on_activate = on_activate,
    .on_deactivate = on_deactivate,
    .methods = methods,
    .method_count = sizeof methods / sizeof methods[0],
    .placement = MP_PLACE_TWO_CHOICES,
    .idle_timeout_ns = 0,
    .state = NULL,
};

const mp_actor_type *mp_bank_account_type(void) { return &bank_type; }
