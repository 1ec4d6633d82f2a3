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
 * runtime turns such a cycle of two into MP_EDEADLOCK at once, but a leg is
 * retried while its turn is held, so the cycle would persist: callers must
 * keep transfers acyclic (the workload only transfers from a lower to a higher account
 * index). A transfer to oneself is refused for the same reason.
 *
 * Memory: an activation's instance holds one pointer to a heap account
 * (balance, op set, transfer in flight), freed by the type's release hook,
 * which the runtime runs on every path, a simulated kill included. The
 * runtime guarantees that none of the activation's calls completes after
 * release, so a transfer whose deposit call is still outstanding is simply
 * freed with its account. A thread-local count of live accounts lets tests
 * check that nothing leaks.
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
#include "moonpool/state.h"

/* ---- op-id set ------------------------------------------------------------ */

/* Open addressing with linear probing over owned copies of the ids. No
 * removal (ids are forever), so no tombstones. The order of slots is never
 * observed (only membership), so the hash seed cannot leak into behaviour. */
typedef struct opset {
    char **slot;
    size_t cap; /* power of two, or 0 */
    size_t count;
} opset;

/* FNV-1a, 64 bits: an example builds against the public headers alone, and
 * op ids are short, so a simple byte-at-a-time hash is enough. */
static uint64_t op_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
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

static void reply_bal(mp_msg *msg, int64_t balance, bool dup)
{
    json_t *v = dup ? json_pack("{s:I,s:b}", "balance", (json_int_t)balance,
                                "dup", 1)
                    : json_pack("{s:I}", "balance", (json_int_t)balance);
    reply_json(msg, v);
}

#define reply_balance(msg, a, dup) reply_bal((msg), (a)->balance, (dup))

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

/* ---- accounts ------------------------------------------------------------- */

struct account;

/* A transfer's deposit leg that is owed: recorded (and persisted) with the
 * withdrawal, removed once the destination accepted the deposit. */
typedef struct leg {
    char op[MP_BANK_OP_MAX + 1]; /* "<transfer op>.d" */
    char to[MP_BANK_OP_MAX + 1]; /* destination account key */
    int64_t amount;
} leg;

/* The deposit leg being driven (the turn is held meanwhile). */
typedef struct xfer {
    struct account *acct;
    mp_actor *self;  /* the source activation (its turn is held) */
    mp_msg *msg;     /* the transfer (or resume) being answered at the end */
    mp_ref to;
    char leg_op[MP_BANK_OP_MAX + 1];
    int64_t amount;
    uint32_t attempts;
    bool call_out;   /* a deposit call's callback is owed */
    bool resume;     /* driving legs loaded from storage */
    mp_timer_id retry;
} xfer;

typedef void (*persist_k)(struct account *a, int status);

typedef struct account {
    mp_node *node;
    mp_env *env;
    mp_actor *self;
    bool durable;  /* state persisted (mp_state_available) */
    int64_t balance;
    opset applied;
    leg *legs;     /* owed deposit legs */
    size_t nlegs, caplegs;
    xfer *xf;      /* leg in flight (the turn is held), or NULL */
    /* a persist in flight: its continuation and the message it answers */
    persist_k pk;
    mp_msg *pmsg;
} account;

typedef struct instance {
    account *a;
} instance;

static __thread uint64_t g_live;
static __thread uint64_t g_xfers; /* owed deposit legs in live accounts */

static int legs_add(account *a, const char *op, size_t op_len, const char *to,
                    int64_t amount)
{
    if (op_len > MP_BANK_OP_MAX || strlen(to) > MP_BANK_OP_MAX) return MP_EINVAL;
    if (a->nlegs == a->caplegs) {
        size_t cap = a->caplegs ? a->caplegs * 2 : 2;
        leg *p = realloc(a->legs, cap * sizeof *p);
        if (!p) return MP_ENOMEM;
        a->legs = p;
        a->caplegs = cap;
    }
    leg *l = &a->legs[a->nlegs++];
    memcpy(l->op, op, op_len);
    l->op[op_len] = '\0';
    snprintf(l->to, sizeof l->to, "%s", to);
    l->amount = amount;
    g_xfers++;
    return MP_OK;
}

static void legs_remove(account *a, const char *op)
{
    for (size_t i = 0; i < a->nlegs; i++) {
        if (strcmp(a->legs[i].op, op) != 0) continue;
        memmove(&a->legs[i], &a->legs[i + 1], (a->nlegs - i - 1) * sizeof *a->legs);
        a->nlegs--;
        assert(g_xfers > 0);
        g_xfers--;
        return;
    }
}

static void xfer_drop(account *a)
{
    xfer *x = a->xf;
    if (!x) return;
    a->xf = NULL;
    if (x->retry) mp_env_timer_cancel(a->env, x->retry);
    free(x);
}

static void account_free(account *a)
{
    xfer_drop(a);
    assert(g_xfers >= a->nlegs);
    g_xfers -= a->nlegs;
    free(a->legs);
    opset_free(&a->applied);
    free(a);
    assert(g_live > 0);
    g_live--;
}

/* ---- state (durable accounts) -------------------------------------------- */

/* The stored form: {"balance":B,"ops":[ids...],"legs":[{"op","to","amount"}]}
 * built from the account before each persist (state.h: the runtime holds
 * the JSON value; the account keeps its own C form for fast lookups). */
static json_t *state_of(const account *a)
{
    json_t *ops = json_array();
    json_t *legs = json_array();
    if (!ops || !legs) goto oom;
    for (size_t i = 0; i < a->applied.cap; i++)
        if (a->applied.slot[i] &&
            json_array_append_new(ops, json_string(a->applied.slot[i])) != 0)
            goto oom;
    for (size_t i = 0; i < a->nlegs; i++) {
        json_t *l = json_pack("{s:s,s:s,s:I}", "op", a->legs[i].op, "to",
                              a->legs[i].to, "amount",
                              (json_int_t)a->legs[i].amount);
        if (!l || json_array_append_new(legs, l) != 0) goto oom;
    }
    return json_pack("{s:I,s:o,s:o}", "balance", (json_int_t)a->balance, "ops",
                     ops, "legs", legs);
oom:
    json_decref(ops);
    json_decref(legs);
    return NULL;
}

/* Fill a fresh account from its stored state. Every field is validated:
 * storage is input too. */
static int state_load(account *a, json_t *s)
{
    json_t *bal = json_object_get(s, "balance");
    json_t *ops = json_object_get(s, "ops");
    json_t *legs = json_object_get(s, "legs");
    if (!json_is_object(s) || json_object_size(s) != 3 || !json_is_integer(bal) ||
        !json_is_array(ops) || !json_is_array(legs))
        return MP_ECORRUPT;
    json_int_t b = json_integer_value(bal);
    if (b < 0) return MP_ECORRUPT;
    a->balance = (int64_t)b;
    size_t i;
    json_t *v;
    json_array_foreach(ops, i, v)
    {
        if (!json_is_string(v)) return MP_ECORRUPT;
        const char *id = json_string_value(v);
        size_t len = json_string_length(v);
        if (!op_id_valid(id, len, MP_BANK_OP_MAX) || opset_has(&a->applied, id, len))
            return MP_ECORRUPT;
        if (opset_add(&a->applied, id, len) != 0) return MP_ENOMEM;
    }
    json_array_foreach(legs, i, v)
    {
        json_t *op = json_object_get(v, "op");
        json_t *to = json_object_get(v, "to");
        json_t *am = json_object_get(v, "amount");
        if (!json_is_object(v) || json_object_size(v) != 3 || !json_is_string(op) ||
            !json_is_string(to) || !json_is_integer(am) ||
            !op_id_valid(json_string_value(op), json_string_length(op),
                         MP_BANK_OP_MAX) ||
            json_string_length(to) == 0 ||
            strlen(json_string_value(to)) != json_string_length(to) ||
            json_integer_value(am) < 1 || json_integer_value(am) > MP_BANK_AMOUNT_MAX)
            return MP_ECORRUPT;
        int rc = legs_add(a, json_string_value(op), json_string_length(op),
                          json_string_value(to), (int64_t)json_integer_value(am));
        if (rc != 0) return rc == MP_ENOMEM ? rc : MP_ECORRUPT;
    }
    return MP_OK;
}

static void persist_cb(void *ud, int status)
{
    account *a = ud;
    persist_k k = a->pk;
    a->pk = NULL;
    assert(k);
    k(a, status);
}

/* Store the account's state, then continue with k(a, status). Memory
 * accounts continue at once with 0. */
static void persist(account *a, mp_msg *msg, persist_k k)
{
    assert(!a->pk);
    a->pmsg = msg;
    if (!a->durable) {
        k(a, 0);
        return;
    }
    json_t *s = state_of(a);
    int rc = s ? 0 : MP_ENOMEM;
    if (s) {
        mp_state_set(a->self, s);
        a->pk = k;
        rc = mp_state_persist(a->self, persist_cb, a);
        if (rc != 0) a->pk = NULL;
    }
    if (rc != 0) k(a, rc);
}

/* A failed persist: memory may hold what storage does not. Report it and
 * let a fresh activation reload the truth (S12: the caller hears the
 * error, never success). */
static void persist_failed(account *a, mp_msg *msg, int status)
{
    char text[96];
    snprintf(text, sizeof text, "persist failed: %s", mp_strerror(status));
    MP_SOMETIMES(true, "bank_durable.persist_failed_reported");
    mp_actor_deactivate(a->self);
    mp_reply_error(msg, status, text);
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
    g_live++;
    inst->a = a; /* from here release frees it, whatever happens */
    a->node = mp_actor_node(self);
    a->env = mp_actor_env(self);
    a->self = self;
    a->durable = mp_state_available(self);
    json_t *s = a->durable ? mp_state_get(self) : NULL;
    if (s) {
        int rc = state_load(a, s);
        if (rc != 0) {
            mp_env_log(a->env, MP_LOG_ERROR, "bank: stored state of %s is invalid",
                       mp_actor_ref(self)->id);
            return rc;
        }
        if (a->nlegs) {
            /* Deposit legs owed from before (a kill, a failed persist):
             * drive them in a turn of their own. */
            MP_SOMETIMES(true, "bank_durable.legs_resumed");
            int rc2 = mp_send(a->node, mp_actor_ref(self), "resume", "{}", 2);
            if (rc2 != 0) return rc2;
        }
    }
    return 0;
}

/* Every path that frees an activation ends here (kills included). */
static void release(void *inst_)
{
    instance *inst = inst_;
    if (inst->a) account_free(inst->a);
    inst->a = NULL;
}

void mp_bank_release_node(mp_node *node) { (void)node; }

uint64_t mp_bank_live_accounts(void) { return g_live; }

uint64_t mp_bank_transfers_in_flight(void) { return g_xfers; }

/* ---- handlers ------------------------------------------------------------- */

/* The instance's account; a message that arrives with none (activation ran
 * out of memory) is refused. */
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

/* A deposit or withdrawal was applied in memory: answer once stored. */
static void mutation_stored(account *a, int status)
{
    mp_msg *msg = a->pmsg;
    a->pmsg = NULL;
    if (status != 0) {
        persist_failed(a, msg, status);
        return;
    }
    reply_balance(msg, a, false);
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
        persist(a, msg, mutation_stored);
    }
    json_decref(r.root);
}

/* Withdraw r->amount under op r->op: true, or false with an error replied. */
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
        persist(a, msg, mutation_stored);
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
static bool leg_start(account *a, mp_msg *msg, const leg *l, bool resume);

static void leg_retry_fire(void *ud)
{
    xfer *x = ud;
    x->retry = 0;
    assert(x->acct); /* a dropped transfer's timer was cancelled */
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

/* A resume: after a loaded leg completed and its removal was stored (or
 * not: a leg left in storage is driven again later, harmlessly, since the
 * destination dedups it): drive the next owed leg, or end the turn. */
static void leg_cleanup_stored(account *a, int status)
{
    mp_msg *msg = a->pmsg;
    a->pmsg = NULL;
    assert(a->xf && a->xf->resume);
    xfer_drop(a);
    if (a->nlegs && leg_start(a, msg, &a->legs[0], true)) return;
    mp_reply(msg, NULL, 0);
}

static void leg_done(void *ud, int status, const void *data, size_t len)
{
    xfer *x = ud;
    assert(x->call_out && x->acct);
    x->call_out = false;
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
    legs_remove(a, x->leg_op);
    if (!x->resume) {
        /* The destination stored the deposit: the transfer is complete and
         * is answered now. The leg's removal is not stored by itself: it
         * goes with this account's next save. Until then storage still
         * lists the leg as owed, and if this activation ends first, the
         * next one drives it again (resume), which the destination answers
         * as a duplicate: harmless, and rare, while a third save per
         * transfer (after the withdrawal and the deposit) would be paid by
         * every transfer. */
        mp_msg *msg = x->msg;
        xfer_drop(a);
        reply_balance(msg, a, false);
        return;
    }
    persist(a, x->msg, leg_cleanup_stored);
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

/* Start driving leg l (the turn is held until it succeeded). False (and
 * nothing started) on a leg that cannot be driven: out of memory, or a
 * malformed destination, which the caller reports. */
static bool leg_start(account *a, mp_msg *msg, const leg *l, bool resume)
{
    assert(!a->xf);
    xfer *x = calloc(1, sizeof *x);
    if (!x) return false;
    if (mp_ref_get(a->node, MP_BANK_TYPE, l->to, &x->to) != 0) {
        free(x);
        return false;
    }
    x->acct = a;
    x->self = a->self;
    x->msg = msg;
    x->amount = l->amount;
    x->resume = resume;
    snprintf(x->leg_op, sizeof x->leg_op, "%s", l->op);
    a->xf = x;
    leg_send(x);
    return true;
}

/* The withdrawal (with its owed leg) was stored: drive the leg. */
static void withdrawal_stored(account *a, int status)
{
    mp_msg *msg = a->pmsg;
    a->pmsg = NULL;
    assert(a->nlegs > 0);
    if (status != 0) {
        persist_failed(a, msg, status); /* the leg is dropped with memory */
        return;
    }
    if (!leg_start(a, msg, &a->legs[a->nlegs - 1], false)) {
        /* Stored but not startable now (out of memory): a later
         * activation resumes it. */
        mp_actor_deactivate(a->self);
        mp_reply_error(msg, MP_ENOMEM, "out of memory");
    }
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
    char leg_op[MP_BANK_OP_MAX + 1];
    snprintf(leg_op, sizeof leg_op, "%.*s.d", (int)r.op_len, r.op);
    if (strlen(r.to) == me->key_len && memcmp(r.to, me->id + me->key_off, me->key_len) == 0) {
        mp_reply_error(msg, MP_EINVAL, "bad request: transfer to self");
    } else if (strlen(r.to) > MP_BANK_OP_MAX ||
               mp_ref_get(a->node, MP_BANK_TYPE, r.to, &to) != 0) {
        mp_reply_error(msg, MP_EINVAL, "bad request: malformed \"to\" key");
    } else if (opset_has(&a->applied, r.op, r.op_len)) {
        /* Applied before: its deposit leg completed, or is owed and will
         * be driven by this account. */
        reply_balance(msg, a, true);
    } else if (a->balance < r.amount) {
        MP_SOMETIMES(true, "bank.insufficient_funds");
        mp_reply_error(msg, MP_EACTOR, "insufficient funds");
    } else if (legs_add(a, leg_op, strlen(leg_op), r.to, r.amount) != 0) {
        mp_reply_error(msg, MP_ENOMEM, "out of memory");
    } else if (!withdraw_apply(a, msg, &r)) {
        legs_remove(a, leg_op);
    } else {
        /* The withdrawal and the owed leg are stored together: after that,
         * the leg happens whatever dies (a later activation resumes it). */
        persist(a, msg, withdrawal_stored);
    }
    json_decref(r.root);
}

/* Drive the legs owed from before this activation (sent to itself by
 * on_activate); holds the turn until all are delivered. */
static void h_resume(mp_actor *self, void *inst, mp_msg *msg,
                     const void *payload, size_t len)
{
    account *a = acct_of(msg, inst);
    if (!a) return;
    if (a->nlegs == 0 || !leg_start(a, msg, &a->legs[0], true))
        mp_reply(msg, NULL, 0);
}

/* ---- the type ------------------------------------------------------------- */

static const mp_method_def methods[] = {
    {"deposit", h_deposit},   {"withdraw", h_withdraw},
    {"balance", h_balance},   {"transfer", h_transfer},
    {"op_status", h_op_status}, {"resume", h_resume},
};

static const mp_state_type bank_state = {.codec = NULL}; /* JSON */

static const mp_actor_type bank_type = {
    .name = MP_BANK_TYPE,
    .instance_size = sizeof(instance),
    .on_activate = on_activate,
    .on_deactivate = NULL,
    .methods = methods,
    .method_count = sizeof methods / sizeof methods[0],
    .placement = MP_PLACE_TWO_CHOICES,
    .idle_timeout_ns = 0,
    .state = &bank_state,
    .release = release,
};

const mp_actor_type *mp_bank_account_type(void) { return &bank_type; }
