/*
 * The node: routing, directory protocol, activation lifecycle glue, the run
 * queue, stats and shutdown.
 *
 * Routing of a request for actor X (route()):
 *   1. the local catalog (fast path: straight into the mailbox, no encoding);
 *   2. the directory cache: send the REQUEST to the cached node;
 *   3. otherwise ask X's partition owner ("dir.lookup"); requests that wait
 *      for the answer are parked in one pending list per id, so 1000
 *      concurrent calls to a new actor cost ONE lookup. If the owner knows
 *      no activation, the caller places X by its type's strategy and sends
 *      the requests there with MP_FLAG_PLACE.
 * A node that receives a request for an X it does not host creates an
 * activation only when asked to place it (or when the owner names this very
 * node); otherwise it routes the request onward itself, as a proxy: it keeps
 * a relay record (its own correlation id -> original caller and correlation)
 * and relays the reply back with a cache update, so the caller's cache gets
 * corrected. forward_count bounds the chain (R19: at most 2 forwards).
 *
 * Activation: a new activation starts Creating with its messages queued and
 * registers at the owner; first registration wins. The winner activates; a
 * loser forwards its queue to the winner and vanishes without running hooks.
 *
 * Why all user code runs from the drain: mp_call, mp_reply and frame arrival
 * only queue work (see activation.c), and routing itself never runs user
 * code, so hooks and callbacks always run from a loop callback with nothing
 * of the runtime's on the stack. Routing may therefore be synchronous even
 * when the directory owner is this node.
 *
 * Everything that waits (lookups, registrations, relays) is found again by
 * actor id and activation id, never through a pointer kept across a wait, so
 * an activation that died meanwhile is simply not found.
 *
 * Persisted state (src/actor/state.c) slots in between winning the
 * registration and on_activate: the activation stays Activating while its
 * load is out, and a load failure is an activation failure like a failing
 * hook. A graceful shutdown keeps the node's memory until its storage
 * operations completed (their callbacks always come).
 *
 * Restarts. Correlation ids carry the incarnation in their high bits, so a
 * reply addressed to a previous incarnation (queued at a peer while this
 * node was down) matches nothing. A restarted owner refuses new
 * registrations of ids it does not know while it recovers (MP_EBUSY, the
 * registrant retries), and survivors resend re-registrations that got no
 * answer: together they keep single activation across owner restarts
 * (bank-durable workload).
 *
 * Client-only nodes skip all of the above: mp_call goes to a gateway member
 * (client_submit), with fail-over to the next member when the connection to
 * the gateway breaks or it answers MP_EUNAVAIL.
 */
#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "node/node.h"
#include "util/hash.h"
#include "wire/frame.h"

#define NS_PER_MS 1000000ull
/* Directory requests are idempotent (lookups, first-wins registration that
 * a node may repeat for itself), so a short timeout and a retry beat waiting
 * long for a frame lost with a broken connection. */
#define SYS_TIMEOUT_MAX_NS (1000ull * NS_PER_MS)
#define REGISTER_ATTEMPTS 3
#define BUSY_RETRY_NS (200ull * NS_PER_MS)
#define DEFAULT_CALL_TIMEOUT_NS (30ull * 1000 * NS_PER_MS)
#define DEFAULT_IDLE_TIMEOUT_NS (600ull * 1000 * NS_PER_MS)

enum { DELAY_SEND = 1, DELAY_RESPONSE = 2 };

/* Routing trace at debug level (off by default: one level check). */
#define DBG(n, ...)                                                           \
    do {                                                                      \
        if ((n)->env->log_level <= MP_LOG_DEBUG)                              \
            mp_env_log((n)->env, MP_LOG_DEBUG, __VA_ARGS__);                  \
    } while (0)

static void route(mp_node *n, mp_msg *m);
static void send_to(mp_node *n, mp_msg *m, uint16_t member, uint16_t flags,
                    bool allow_delay);
static void start_register(mp_node *n, mp_actor *a);
static void check_shutdown_done(mp_node *n);
static void arm_sweep(mp_node *n);

/* ---- small helpers ---- */

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static bool recovering(mp_node *n)
{
    return n->recover_until && mp_env_now(n->env) < n->recover_until;
}

static uint64_t sys_timeout(const mp_node *n)
{
    return n->call_timeout_ns < SYS_TIMEOUT_MAX_NS ? n->call_timeout_ns
                                                   : SYS_TIMEOUT_MAX_NS;
}

static const mp_actor_type *find_type(const mp_node *n, const char *name,
                                      size_t len)
{
    for (size_t i = 0; i < n->type_count; i++)
        if (n->types[i].name_len == len &&
            memcmp(n->types[i].type->name, name, len) == 0)
            return n->types[i].type;
    return NULL;
}

static const mp_actor_type *type_of_ref(const mp_node *n, const mp_ref *ref)
{
    return find_type(n, ref->id + ref->type_off, ref->type_len);
}

static bool ns_matches(const mp_node *n, const mp_ref *ref)
{
    size_t ns_len = (size_t)ref->type_off - 2;
    return strlen(n->ns) == ns_len && memcmp(n->ns, ref->id, ns_len) == 0;
}

static mp_ctx *ctx_new(mp_node *n, uint8_t kind, const mp_ref *ref)
{
    mp_ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->node = n;
    c->kind = kind;
    if (ref) c->ref = *ref;
    mp_list_node_init(&c->link);
    mp_list_push_back(&n->ctx_list, &c->link);
    return c;
}

static void ctx_free(mp_ctx *c)
{
    mp_list_remove(&c->link);
    if (c->timer) mp_env_timer_cancel(c->node->env, c->timer);
    free(c);
}

/* ---- run queue ---- */

static void drain(void *ud);

static void schedule_drain(mp_node *n)
{
    if (n->drain_scheduled || n->in_drain || n->freed) return;
    if (mp_env_defer(n->env, drain, n) == MP_OK ||
        mp_env_timer_start(n->env, 0, drain, n) != 0) {
        n->drain_scheduled = true;
    } else {
        mp_env_log(n->env, MP_LOG_ERROR, "node: cannot schedule the run queue");
    }
}

void mp_node_runq_push(mp_node *n, mp_work *w)
{
    assert(!mp_list_node_linked(&w->link));
    mp_list_push_back(&n->runq, &w->link);
    schedule_drain(n);
}

static void deliver_local_reply(mp_node *n, mp_msg *m)
{
    mp_calls_complete(&n->calls, m->corr, m->status, m->rdata, m->rlen);
    mp_msg_release(n, m);
}

static void drain(void *ud)
{
    mp_node *n = ud;
    n->drain_scheduled = false;
    n->in_drain = true;
    n->drain_now = mp_env_now(n->env);
    /* A budget keeps one drain from starving I/O when handlers keep
     * producing work; the rest goes to the next loop turn. */
    size_t budget = 1u << 16;
    mp_list_node *ln;
    while (budget-- && (ln = mp_list_pop_front(&n->runq)) != NULL) {
        mp_work *w = MP_CONTAINER_OF(ln, mp_work, link);
        if (w->kind == MP_WORK_REPLY)
            deliver_local_reply(n, MP_CONTAINER_OF(w, mp_msg, work));
        else
            mp_actor_step(MP_CONTAINER_OF(w, mp_actor, work));
    }
    n->in_drain = false;
    if (!mp_list_empty(&n->runq)) schedule_drain(n);
}

/* ---- frames ---- */

static void frame_init(mp_frame *f, uint8_t kind)
{
    memset(f, 0, offsetof(mp_frame, cache_updates));
    f->kind = kind;
    f->payload = mp_bytes_make(NULL, 0);
}

static int send_frame(mp_node *n, const char *peer, const mp_frame *f)
{
    if (!n->transport) return MP_EUNAVAIL;
    return mp_transport_send(n->transport, peer, f);
}

/* A send to or a connection with peer failed with status: the text the
 * waiting callers get. A refused handshake (MP_ENAMESPACE, MP_EVERSION)
 * keeps its status and says both sides' values (the transport's reason). */
static bool refusal_status(int status)
{
    return status == MP_ENAMESPACE || status == MP_EVERSION;
}

static void refusal_text(mp_node *n, const char *peer, int status, char *buf,
                         size_t cap)
{
    const char *why = n->transport ? mp_transport_peer_error(n->transport, peer) : NULL;
    snprintf(buf, cap, "cannot talk to %s: %s", peer,
             why ? why : mp_strerror(status));
}

static void send_response(mp_node *n, const char *peer, uint64_t corr,
                          int status, const void *data, size_t len,
                          const mp_ref *cache_id, int cache_member)
{
    mp_frame f;
    frame_init(&f, MP_FRAME_RESPONSE);
    f.correlation_id = corr;
    f.status = status;
    f.payload = mp_bytes_make(data, (uint32_t)len);
    if (cache_id && cache_member >= 0) {
        f.cache_update_count = 1;
        f.cache_updates[0].actor_id = mp_bytes_make(cache_id->id, cache_id->len);
        f.cache_updates[0].addr = mp_bytes_str(mp_dir_addr(&n->dir, (size_t)cache_member));
        f.cache_updates[0].incarnation = 0;
    }
    int rc = send_frame(n, peer, &f);
    if (rc == MP_ETOOBIG && status == 0) {
        static const char msg[] = "reply larger than the maximum message size";
        f.status = MP_ETOOBIG;
        f.payload = mp_bytes_make(msg, sizeof msg - 1);
        rc = send_frame(n, peer, &f);
    }
    if (rc < 0)
        mp_env_log(n->env, MP_LOG_DEBUG, "node: response to %s lost: %s", peer,
                   mp_strerror(rc));
}

/* ---- finishing messages ---- */

static void delayed_fire(void *ud)
{
    mp_msg *m = ud;
    mp_node *n = m->node;
    m->delay_timer = 0;
    mp_list_remove(&m->link);
    if (m->delay_kind == DELAY_RESPONSE) {
        send_response(n, m->peer, m->corr, m->status, m->rdata, m->rlen, NULL,
                      -1);
        mp_msg_release(n, m);
    } else {
        send_to(n, m, m->delay_member, m->delay_flags, false);
    }
}

/* Park a message on a timer (buggify delays). Returns false if the timer
 * could not be made (the caller then proceeds at once). */
static bool delay_msg(mp_node *n, mp_msg *m, uint8_t kind, uint16_t member,
                      uint16_t flags)
{
    uint64_t d = mp_env_random_below(n->env, 20 * NS_PER_MS) + 1;
    m->delay_kind = kind;
    m->delay_member = member;
    m->delay_flags = flags;
    m->delay_timer = mp_env_timer_start(n->env, d, delayed_fire, m);
    if (!m->delay_timer) return false;
    mp_list_push_back(&n->delayed, &m->link);
    return true;
}

void mp_node_finish(mp_node *n, mp_msg *m, int status, const void *data,
                    size_t len)
{
    assert(!mp_list_node_linked(&m->link));
    switch (m->origin) {
    case MP_ORIGIN_LOCAL: {
        if (status == 0 && len > n->max_message) {
            static const char big[] = "reply larger than the maximum message size";
            status = MP_ETOOBIG;
            data = big;
            len = sizeof big - 1;
        }
        if (mp_msg_set_reply(m, status, data, len) != MP_OK)
            mp_msg_set_reply(m, MP_ENOMEM, "", 0);
        m->work.kind = MP_WORK_REPLY;
        mp_node_runq_push(n, &m->work);
        return;
    }
    case MP_ORIGIN_REMOTE:
        if (MP_BUGGIFY_P(0.05) && !n->closing) {
            if (mp_msg_set_reply(m, status, data, len) == MP_OK &&
                delay_msg(n, m, DELAY_RESPONSE, 0, 0))
                return;
        }
        send_response(n, m->peer, m->corr, status, data, len, NULL, -1);
        mp_msg_release(n, m);
        return;
    default:
        mp_msg_release(n, m);
        return;
    }
}

static void fail_msg(mp_node *n, mp_msg *m, int status, const char *text)
{
    mp_node_finish(n, m, status, text, text ? strlen(text) : 0);
}

/* ---- sending requests to a peer ---- */

static void relay_cb(void *ud, int status, const void *data, size_t len);

/* Our own call sent to a peer remembers which member it went to (in its
 * calls record), so that losing that peer can fail it at once (fail_waiting)
 * instead of letting it wait for its timeout. Relays and directory requests
 * need no mark: their mp_ctx already carries the member. */
static void track_sent(mp_node *n, uint64_t corr, uint16_t member)
{
    mp_call_rec *r = mp_calls_find(&n->calls, corr);
    if (r) r->peer = (int32_t)member;
}

/* Send a request that this node does not host to `member`. A message that
 * arrived from a peer is proxied (relay record); our own calls go with their
 * own correlation id. Consumes m. */
static void send_to(mp_node *n, mp_msg *m, uint16_t member, uint16_t flags,
                    bool allow_delay)
{
    assert(member != n->dir.self);
    uint64_t now = mp_env_now(n->env);
    if (m->deadline && now >= m->deadline) {
        mp_msg_release(n, m); /* expired: the caller's timeout reports it */
        return;
    }
    uint8_t fc = m->forward_count;
    if (m->remote_in) {
        if (fc >= MP_MAX_FORWARDS) {
            MP_SOMETIMES(true, "actor.too_many_forwards");
            fail_msg(n, m, MP_EFORWARDS, "message forwarded too many times");
            return;
        }
        fc++;
        if (allow_delay && MP_BUGGIFY_P(0.1) &&
            delay_msg(n, m, DELAY_SEND, member, flags))
            return;
    }
    uint64_t remaining = m->deadline ? m->deadline - now : n->call_timeout_ns;
    uint64_t ttl_ms = (remaining + NS_PER_MS - 1) / NS_PER_MS;
    if (ttl_ms > UINT32_MAX) ttl_ms = UINT32_MAX;

    mp_frame f;
    frame_init(&f, m->origin == MP_ORIGIN_NONE ? MP_FRAME_ONEWAY
                                                : MP_FRAME_REQUEST);
    f.flags = flags;
    f.forward_count = fc;
    f.ttl_ms = (uint32_t)ttl_ms;
    f.target = mp_bytes_make(m->target.id, m->target.len);
    f.sender = mp_bytes_make(m->sender, m->sender_len);
    f.method = mp_bytes_make(m->method, m->method_len);
    f.payload = mp_bytes_make(m->data, m->len);

    mp_ctx *relay = NULL;
    if (m->origin == MP_ORIGIN_LOCAL) {
        f.correlation_id = m->corr;
    } else if (m->origin == MP_ORIGIN_REMOTE) {
        relay = ctx_new(n, MP_CTX_RELAY, &m->target);
        if (!relay) {
            fail_msg(n, m, MP_ENOMEM, "out of memory");
            return;
        }
        relay->member = member;
        relay->orig_corr = m->corr;
        memcpy(relay->peer, m->peer, sizeof relay->peer);
        int rc = mp_calls_add(&n->calls, remaining, relay_cb, relay,
                              &f.correlation_id);
        if (rc < 0) {
            ctx_free(relay);
            fail_msg(n, m, rc, mp_strerror(rc));
            return;
        }
    }
    if (m->remote_in) {
        n->stats.forwards++;
        MP_SOMETIMES(true, "actor.forwarded");
    }
    int rc = send_frame(n, mp_dir_addr(&n->dir, member), &f);
    DBG(n, "send %s.%s to %s fc=%u flags=%u origin=%u corr=%llu rc=%d", m->target.id,
        m->method, mp_dir_addr(&n->dir, member), fc, flags, m->origin,
        (unsigned long long)f.correlation_id, rc);
    if (rc < 0) {
        if (relay) {
            mp_calls_cancel(&n->calls, f.correlation_id);
            ctx_free(relay);
        }
        if (refusal_status(rc)) {
            char why[MP_ADDR_MAX + 200];
            refusal_text(n, mp_dir_addr(&n->dir, member), rc, why, sizeof why);
            fail_msg(n, m, rc, why);
            return;
        }
        fail_msg(n, m, rc, mp_strerror(rc));
        return;
    }
    if (m->origin == MP_ORIGIN_LOCAL) track_sent(n, f.correlation_id, member);
    mp_msg_release(n, m);
}

static void relay_cb(void *ud, int status, const void *data, size_t len)
{
    mp_ctx *c = ud;
    mp_node *n = c->node;
    /* The cache was already updated from the reply's own cache updates (see
     * on_response), so it holds the freshest location to pass back. */
    int where = mp_dir_cache_get(&n->dir, c->ref.id, c->ref.len);
    if (where < 0) where = c->member;
    send_response(n, c->peer, c->orig_corr, status, data, len, &c->ref, where);
    ctx_free(c);
}

/* ---- local delivery and activation creation ---- */

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

static void deliver_local(mp_node *n, mp_actor *a, mp_msg *m)
{
    const mp_method_def *d = mp_actor_type_method(a->type, m->method, m->method_len);
    if (!d) {
        fail_msg(n, m, MP_ENOMETHOD, "unknown method");
        return;
    }
    if (a->current && call_cycle(n, a, m)) {
        MP_SOMETIMES(true, "actor.call_cycle");
        char why[2 * MP_ACTOR_ID_MAX + 96];
        snprintf(why, sizeof why, "call cycle: %s is waiting for %s, which called it back",
                 a->id, m->sender);
        fail_msg(n, m, MP_EDEADLOCK, why);
        return;
    }
    m->mdef = d;
    mp_actor_enqueue(a, m);
}

static void fail_list(mp_node *n, mp_list_node *msgs, int status,
                      const char *text)
{
    mp_list_node *ln;
    while ((ln = mp_list_pop_front(msgs)) != NULL)
        fail_msg(n, MP_CONTAINER_OF(ln, mp_msg, link), status, text);
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
            deliver_local(n, a, MP_CONTAINER_OF(ln, mp_msg, link));
        return;
    }
    if (n->closing) {
        fail_list(n, msgs, MP_EUNAVAIL, "node shutting down");
        return;
    }
    const mp_actor_type *t = type_of_ref(n, ref);
    if (!t) {
        fail_list(n, msgs, MP_ENOTYPE, "unknown actor type");
        return;
    }
    mp_list_node ok;
    mp_list_init(&ok);
    while ((ln = mp_list_pop_front(msgs)) != NULL) {
        mp_msg *m = MP_CONTAINER_OF(ln, mp_msg, link);
        m->mdef = mp_actor_type_method(t, m->method, m->method_len);
        if (!m->mdef)
            fail_msg(n, m, MP_ENOMETHOD, "unknown method");
        else
            mp_list_push_back(&ok, &m->link);
    }
    if (mp_list_empty(&ok)) return;
    a = mp_actor_new(n, t, ref, ++n->next_act_id);
    if (!a || mp_catalog_add(&n->catalog, a) != MP_OK) {
        if (a) mp_actor_delete(a);
        fail_list(n, &ok, MP_ENOMEM, "out of memory");
        return;
    }
    n->stats.activations_total++;
    /* The cache describes other nodes only: an entry for an id hosted here
     * would outlive this activation and misroute its re-routed messages. */
    mp_dir_cache_remove_ref(&n->dir, ref);
    DBG(n, "create %s act=%llu", ref->id, (unsigned long long)a->act_id);
    while ((ln = mp_list_pop_front(&ok)) != NULL)
        mp_actor_enqueue(a, MP_CONTAINER_OF(ln, mp_msg, link));
    start_register(n, a);
}

static void host_here(mp_node *n, const mp_ref *ref, mp_list_node *msgs)
{
    host_here_a(n, ref, msgs, mp_catalog_find(&n->catalog, ref));
}

/* Remove an activation that never ran hooks or whose hooks are done. */
static void destroy_activation(mp_node *n, mp_actor *a)
{
    assert(mp_list_empty(&a->mailbox));
    /* Its local directory entry (directory.h) lives in it, so it goes now:
     * every path already unregisters, before (deactivation) or just after
     * (failed activation); this keeps the flag from outliving its place. */
    if (a->dir_registered)
        mp_dir_unregister(&n->dir, a->id, a->len, (uint16_t)n->dir.self,
                          a->act_id);
    assert(!a->dir_registered);
    mp_catalog_remove(&n->catalog, a);
    mp_list_remove(&a->work.link);
    if (a->timer) mp_env_timer_cancel(n->env, a->timer);
    a->timer = 0;
    mp_actor_delete(a);
    if (n->closing && !n->freed) check_shutdown_done(n);
}

/* ---- registration ---- */

/* The directory's local-entry hook (directory.h): the registration flag of
 * this node's activation of an id. */
static bool *dir_local(void *ud, uint64_t ref_hash, const char *id, size_t len,
                       uint64_t *act_id)
{
    mp_node *n = ud;
    mp_actor *a = mp_catalog_get_h(&n->catalog, ref_hash, id, len);
    if (!a) return NULL;
    *act_id = a->act_id;
    return &a->dir_registered;
}

static void encode_entry(uint8_t *buf, size_t *len, const mp_directory *d,
                         const mp_dir_entry *e)
{
    if (!e) {
        buf[0] = 0;
        *len = 1;
        return;
    }
    const char *addr = mp_dir_addr(d, e->member);
    size_t al = strlen(addr);
    buf[0] = 1;
    put_u16(buf + 1, (uint16_t)al);
    memcpy(buf + 3, addr, al);
    put_u32(buf + 3 + al, e->incarnation);
    put_u64(buf + 7 + al, e->act_id);
    *len = 15 + al;
}

/* Returns 1 found (e filled), 0 not found, MP_EPROTO malformed. */
static int decode_entry(const mp_directory *d, const uint8_t *p, size_t len,
                        mp_dir_entry *e)
{
    if (len < 1) return MP_EPROTO;
    if (p[0] == 0) return len == 1 ? 0 : MP_EPROTO;
    if (p[0] != 1 || len < 3) return MP_EPROTO;
    size_t al = get_u16(p + 1);
    if (len != 15 + al) return MP_EPROTO;
    int m = mp_dir_member(d, (const char *)p + 3, al);
    if (m < 0) return MP_EPROTO;
    e->member = (uint16_t)m;
    e->incarnation = get_u32(p + 3 + al);
    e->act_id = get_u64(p + 7 + al);
    return 1;
}

static void send_unregister(mp_node *n, const mp_ref *ref, uint64_t act_id,
                            bool want_answer);
static void register_timer(void *ud);

static void register_done(mp_node *n, const mp_ref *ref, uint64_t act_id,
                          int status, const mp_dir_entry *w)
{
    mp_actor *a = mp_catalog_find(&n->catalog, ref);
    DBG(n, "register_done %s act=%llu st=%d winner=%s/%llu", ref->id,
        (unsigned long long)act_id, status,
        status == MP_OK ? mp_dir_addr(&n->dir, w->member) : "-",
        status == MP_OK ? (unsigned long long)w->act_id : 0ull);
    if (!a || a->act_id != act_id || a->state != MP_ACT_CREATING) {
        /* The activation is gone; do not leave a registration naming it. */
        if (status == MP_OK && w->member == n->dir.self && w->act_id == act_id)
            send_unregister(n, ref, act_id, false);
        return;
    }
    if (status == MP_EBUSY && !n->closing &&
        a->busy_retries++ < (int)(MP_DIR_RECOVERY_NS / BUSY_RETRY_NS) + 5) {
        /* The owner restarted and is still recovering its table: it takes
         * no new registrations until the survivors re-registered theirs
         * (else a new activation could win against a live one). */
        MP_SOMETIMES(true, "actor.register_while_recovering");
        a->timer = mp_env_timer_start(n->env, BUSY_RETRY_NS, register_timer, a);
        if (a->timer) return;
    }
    if (status < 0) {
        if (++a->register_attempts < REGISTER_ATTEMPTS && !n->closing) {
            start_register(n, a);
            return;
        }
        mp_actor_set_state(a, MP_ACT_INVALID);
        mp_list_node msgs;
        mp_list_init(&msgs);
        mp_msg *m;
        while ((m = mp_actor_pop(a)) != NULL) mp_list_push_back(&msgs, &m->link);
        destroy_activation(n, a);
        fail_list(n, &msgs, MP_EUNAVAIL, "directory unreachable");
        return;
    }
    if (w->member == n->dir.self && w->act_id == act_id) {
        mp_actor_set_state(a, MP_ACT_ACTIVATING);
        mp_actor_schedule(a);
        return;
    }
    /* Lost the race: hand every queued message to the winner. No hook ran,
     * so there is nothing to undo. */
    MP_SOMETIMES(true, "actor.activation_race_lost");
    mp_actor_set_state(a, MP_ACT_INVALID);
    mp_list_node msgs;
    mp_list_init(&msgs);
    mp_msg *m;
    while ((m = mp_actor_pop(a)) != NULL) mp_list_push_back(&msgs, &m->link);
    destroy_activation(n, a);
    mp_list_node *ln;
    if (w->member == n->dir.self) {
        /* Cannot happen (the owner replaces our own older entry); re-route
         * rather than lose anything. */
        while ((ln = mp_list_pop_front(&msgs)) != NULL)
            route(n, MP_CONTAINER_OF(ln, mp_msg, link));
        return;
    }
    mp_dir_cache_put(&n->dir, ref->id, ref->len, w->member, w->incarnation);
    while ((ln = mp_list_pop_front(&msgs)) != NULL) {
        mp_msg *mm = MP_CONTAINER_OF(ln, mp_msg, link);
        mm->mdef = NULL;
        send_to(n, mm, w->member, 0, true);
    }
}

static void rereg_retry_fire(void *ud);

/* Send a re-registration again later (attempt counts them). */
static void rereg_schedule(mp_node *n, const mp_ref *ref, uint64_t act_id,
                           uint32_t attempt)
{
    if (attempt >= MP_REREG_ATTEMPTS || n->closing) return;
    MP_SOMETIMES(true, "actor.reregister_retried");
    mp_ctx *r = ctx_new(n, MP_CTX_REREG_RETRY, ref);
    if (!r) return;
    r->act_id = act_id;
    r->incarnation = attempt;
    r->timer = mp_env_timer_start(n->env, MP_REREG_RETRY_NS, rereg_retry_fire, r);
    if (!r->timer) ctx_free(r);
}

static void register_cb(void *ud, int status, const void *data, size_t len)
{
    mp_ctx *c = ud;
    mp_node *n = c->node;
    mp_dir_entry w;
    memset(&w, 0, sizeof w);
    if (status == MP_OK) {
        int rc = decode_entry(&n->dir, data, len, &w);
        if (rc != 1) status = MP_EPROTO;
    }
    mp_ref ref = c->ref;
    uint64_t act_id = c->act_id;
    uint8_t kind = c->kind;
    uint32_t attempts = c->incarnation;
    ctx_free(c);
    if (kind == MP_CTX_REREGISTER) {
        mp_actor *a = mp_catalog_find(&n->catalog, &ref);
        if (status < 0 && status != MP_EPROTO && a && a->act_id == act_id &&
            (a->state == MP_ACT_VALID || a->state == MP_ACT_ACTIVATING) &&
            !n->closing) {
            /* Lost with a broken connection, most likely: the restarted
             * owner must learn of this activation before its recovery
             * ends, or it lets a second one be placed. */
            rereg_schedule(n, &ref, act_id, attempts + 1);
            return;
        }
        if (status == MP_OK && a && a->act_id == act_id &&
            !(w.member == n->dir.self && w.act_id == act_id) &&
            a->state == MP_ACT_VALID) {
            /* Someone else registered while the owner was away: ours must
             * go (its queued messages are re-routed to the winner). */
            a->deactivate_requested = true;
            a->deact_reason = MP_DEACTIVATE_DIRECTORY;
            mp_actor_schedule(a);
        }
        return;
    }
    register_done(n, &ref, act_id, status, &w);
}

static int send_system(mp_node *n, size_t member, const char *method,
                       const mp_ref *ref, const void *payload, size_t len,
                       mp_ctx *ctx, mp_reply_cb cb)
{
    mp_frame f;
    frame_init(&f, MP_FRAME_SYSTEM);
    f.method = mp_bytes_str(method);
    if (ref) f.target = mp_bytes_make(ref->id, ref->len);
    f.payload = mp_bytes_make(payload, (uint32_t)len);
    f.ttl_ms = (uint32_t)(sys_timeout(n) / NS_PER_MS);
    if (ctx) {
        ctx->member = (uint16_t)member; /* see fail_waiting */
        int rc = mp_calls_add(&n->calls, sys_timeout(n), cb, ctx,
                              &f.correlation_id);
        if (rc < 0) return rc;
    }
    int rc = send_frame(n, mp_dir_addr(&n->dir, member), &f);
    DBG(n, "sys %s %s to %s corr=%llu rc=%d", method, ref ? ref->id : "-",
        mp_dir_addr(&n->dir, member), (unsigned long long)f.correlation_id, rc);
    if (rc < 0 && ctx) mp_calls_cancel(&n->calls, f.correlation_id);
    return rc;
}

static int do_register_n(mp_node *n, mp_actor *a, uint8_t kind,
                         uint32_t attempt);

static void rereg_retry_fire(void *ud)
{
    mp_ctx *r = ud;
    r->timer = 0;
    mp_node *n = r->node;
    mp_ref ref = r->ref;
    uint64_t act_id = r->act_id;
    uint32_t attempt = r->incarnation;
    ctx_free(r);
    mp_actor *a = mp_catalog_find(&n->catalog, &ref);
    if (a && a->act_id == act_id && !n->closing &&
        (a->state == MP_ACT_VALID || a->state == MP_ACT_ACTIVATING))
        (void)do_register_n(n, a, MP_CTX_REREGISTER, attempt);
}

static int do_register(mp_node *n, mp_actor *a, uint8_t kind)
{
    return do_register_n(n, a, kind, 0);
}

/* Returns 0 when the request left (or was handled locally). */
static int do_register_n(mp_node *n, mp_actor *a, uint8_t kind,
                         uint32_t attempt)
{
    mp_ref ref; /* a copy: register_done may free a */
    mp_actor_fill_ref(a, &ref);
    uint64_t act_id = a->act_id;
    size_t owner = mp_dir_owner(&n->dir, &ref);
    if (owner == n->dir.self) {
        mp_dir_entry w;
        int rc = MP_EBUSY;
        if (!recovering(n) || mp_dir_table_get_ref(&n->dir, &ref))
            rc = mp_dir_register(&n->dir, &ref, (uint16_t)n->dir.self,
                                 n->incarnation, act_id, &w);
        if (kind == MP_CTX_REGISTER) register_done(n, &ref, act_id, rc, &w);
        return rc;
    }
    mp_ctx *c = ctx_new(n, kind, &ref);
    int rc = MP_ENOMEM;
    if (c) {
        c->act_id = a->act_id;
        c->incarnation = attempt;
        uint8_t p[12];
        put_u32(p, n->incarnation);
        put_u64(p + 4, a->act_id);
        rc = send_system(n, owner,
                         kind == MP_CTX_REREGISTER ? MP_SYS_REREGISTER
                                                   : MP_SYS_REGISTER,
                         &ref, p, sizeof p, c, register_cb);
        if (rc < 0) ctx_free(c);
    }
    if (rc < 0 && kind == MP_CTX_REREGISTER)
        rereg_schedule(n, &ref, act_id, attempt + 1);
    if (rc < 0 && kind == MP_CTX_REGISTER)
        register_done(n, &ref, act_id, rc, NULL);
    return rc;
}

static void register_timer(void *ud)
{
    mp_actor *a = ud;
    a->timer = 0;
    (void)do_register(a->node, a, MP_CTX_REGISTER);
}

static void start_register(mp_node *n, mp_actor *a)
{
    uint64_t delay = 0;
    if (a->register_attempts > 0)
        delay = (uint64_t)a->register_attempts * 50 * NS_PER_MS;
    else if (MP_BUGGIFY_P(0.2))
        delay = mp_env_random_below(n->env, 10 * NS_PER_MS) + 1;
    if (delay) {
        a->timer = mp_env_timer_start(n->env, delay, register_timer, a);
        if (a->timer) return;
    }
    (void)do_register(n, a, MP_CTX_REGISTER);
}

/* ---- unregistration and deactivation ---- */

static void deactivation_done(mp_node *n, const mp_ref *ref, uint64_t act_id)
{
    DBG(n, "deactivation_done %s act=%llu", ref->id, (unsigned long long)act_id);
    mp_actor *a = mp_catalog_find(&n->catalog, ref);
    if (!a || a->act_id != act_id || a->state != MP_ACT_DEACTIVATING) return;
    mp_actor_set_state(a, MP_ACT_INVALID);
    mp_dir_cache_remove(&n->dir, ref->id, ref->len);
    mp_list_node msgs;
    mp_list_init(&msgs);
    mp_msg *m;
    while ((m = mp_actor_pop(a)) != NULL) mp_list_push_back(&msgs, &m->link);
    destroy_activation(n, a);
    /* Messages that arrived meanwhile are re-routed, never dropped. */
    mp_list_node *ln;
    if (!mp_list_empty(&msgs)) MP_SOMETIMES(true, "actor.rerouted_after_deactivation");
    while ((ln = mp_list_pop_front(&msgs)) != NULL) {
        mp_msg *mm = MP_CONTAINER_OF(ln, mp_msg, link);
        mm->mdef = NULL;
        route(n, mm);
    }
    if (n->closing) check_shutdown_done(n);
}

static void unregister_cb(void *ud, int status, const void *data, size_t len)
{
    mp_ctx *c = ud;
    mp_node *n = c->node;
    mp_ref ref = c->ref;
    uint64_t act_id = c->act_id;
    ctx_free(c);
    deactivation_done(n, &ref, act_id);
}

/* Unregister (ref, act_id). With want_answer the local deactivation
 * completes when the owner answered (or the request failed). */
static void send_unregister(mp_node *n, const mp_ref *ref, uint64_t act_id,
                            bool want_answer)
{
    size_t owner = mp_dir_owner(&n->dir, ref);
    if (owner == n->dir.self) {
        mp_dir_unregister(&n->dir, ref->id, ref->len, (uint16_t)n->dir.self,
                          act_id);
        if (want_answer) deactivation_done(n, ref, act_id);
        return;
    }
    uint8_t p[12];
    put_u32(p, n->incarnation);
    put_u64(p + 4, act_id);
    mp_ctx *c = want_answer ? ctx_new(n, MP_CTX_UNREGISTER, ref) : NULL;
    if (c) c->act_id = act_id;
    int rc = send_system(n, owner, MP_SYS_UNREGISTER, ref, p, sizeof p, c,
                         unregister_cb);
    if (rc < 0 && want_answer) {
        if (c) ctx_free(c);
        deactivation_done(n, ref, act_id);
    }
}

void mp_node_deactivate(mp_node *n, mp_actor *a, mp_deactivate_reason reason)
{
    assert(a->state == MP_ACT_VALID && !a->current);
    a->deactivate_requested = false;
    if (!mp_actor_set_state(a, MP_ACT_DEACTIVATING)) return;
    /* A Valid activation always passed on_activate: its hook is owed. */
    MP_ALWAYS(a->activated, "actor.deactivate_hook_owed");
    if (a->activated) {
        a->activated = false;
        if (a->type->on_deactivate)
            a->type->on_deactivate(a, a->instance, reason);
    }
    n->stats.deactivations_total++;
    MP_SOMETIMES(reason == MP_DEACTIVATE_IDLE, "actor.idle_deactivation");
    mp_ref ref;
    mp_actor_fill_ref(a, &ref);
    send_unregister(n, &ref, a->act_id, true);
}

void mp_node_activation_failed(mp_node *n, mp_actor *a, const char *why)
{
    MP_SOMETIMES(true, "actor.activation_failed");
    n->stats.activation_failures++;
    mp_actor_set_state(a, MP_ACT_INVALID);
    mp_list_node msgs;
    mp_list_init(&msgs);
    mp_msg *m;
    while ((m = mp_actor_pop(a)) != NULL) mp_list_push_back(&msgs, &m->link);
    mp_ref ref;
    mp_actor_fill_ref(a, &ref);
    uint64_t act_id = a->act_id;
    destroy_activation(n, a);
    send_unregister(n, &ref, act_id, false);
    mp_env_log(n->env, MP_LOG_INFO, "node: activation of %s failed: %s", ref.id,
               why);
    fail_list(n, &msgs, MP_EACTIVATION, why);
    if (n->closing) check_shutdown_done(n);
}

void mp_node_activate(mp_node *n, mp_actor *a)
{
    assert(a->state == MP_ACT_ACTIVATING);
    if (a->loading) return; /* its completion schedules us again */
    if (!a->state_loaded) {
        /* Persisted state first (state.h): on_activate sees it. */
        int lrc = mp_state_load_start(n, a);
        if (lrc < 0) {
            char why[128];
            snprintf(why, sizeof why, "activation failed: cannot load state: %s",
                     mp_strerror(lrc));
            mp_node_activation_failed(n, a, why);
            return;
        }
        if (!a->state_loaded) return; /* loading */
    }
    int rc = 0;
    if (a->type->on_activate) rc = a->type->on_activate(a, a->instance);
    if (rc == 0) {
        a->activated = true;
        mp_actor_set_state(a, MP_ACT_VALID);
        a->last_used = mp_env_now(n->env);
        arm_sweep(n);
        if (n->closing) {
            a->deactivate_requested = true;
            a->deact_reason = MP_DEACTIVATE_SHUTDOWN;
        }
        mp_actor_schedule(a);
        return;
    }
    /* The hook failed: queued messages fail, no activation remains. */
    char why[96];
    snprintf(why, sizeof why, "activation failed: on_activate returned %s",
             mp_status_name(rc));
    mp_node_activation_failed(n, a, why);
}

void mp_node_turn_ended(mp_node *n, mp_actor *a)
{
    /* Inside the drain the time read at its start is close enough for idle
     * accounting (it only makes an activation look a bit older). */
    a->last_used = n->in_drain ? n->drain_now : mp_env_now(n->env);
    if (n->closing && a->state == MP_ACT_VALID) {
        a->deactivate_requested = true;
        a->deact_reason = MP_DEACTIVATE_SHUTDOWN;
    }
    mp_actor_schedule(a);
}

/* ---- lookups ---- */

static void lookup_done(mp_node *n, const mp_ref *ref, int status,
                        const mp_dir_entry *e);
static void lookup_resolved(mp_node *n, const mp_ref *rp, const mp_dir_entry *e,
                            mp_list_node *msgs_in);
static void lookup_resolved_a(mp_node *n, const mp_ref *rp,
                              const mp_dir_entry *e, mp_list_node *msgs_in,
                              mp_actor *here);

/* Copy a reference's used part only: the id buffer is mostly slack, and a
 * whole-struct copy (280 bytes) was 3.5% of creating an activation. */
static void ref_copy(mp_ref *dst, const mp_ref *src)
{
    dst->len = src->len;
    dst->type_off = src->type_off;
    dst->type_len = src->type_len;
    dst->key_off = src->key_off;
    dst->key_len = src->key_len;
    dst->hash = src->hash;
    memcpy(dst->id, src->id, (size_t)src->len + 1);
}

static void pending_free(mp_node *n, mp_pending *p)
{
    mp_map_str_remove(&n->pending, p->ref.id, p->ref.len);
    mp_list_remove(&p->link);
    if (p->retry) mp_env_timer_cancel(n->env, p->retry);
    free(p);
}

/* Forget p, handing its waiting messages to msgs (initialised here). */
static void pending_take(mp_node *n, mp_pending *p, mp_list_node *msgs)
{
    mp_list_init(msgs);
    mp_list_splice_back(msgs, &p->msgs);
    pending_free(n, p);
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
    pending_take(n, p, &msgs);
    fail_list(n, &msgs, status, text);
}

static void lookup_cb(void *ud, int status, const void *data, size_t len)
{
    mp_ctx *c = ud;
    mp_node *n = c->node;
    mp_ref ref = c->ref;
    ctx_free(c);
    if (refusal_status(status)) {
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
        found = decode_entry(&n->dir, data, len, &e);
        if (found < 0) status = found;
    }
    lookup_done(n, &ref, status, status == MP_OK && found == 1 ? &e : NULL);
}

static void start_lookup(mp_node *n, mp_pending *p)
{
    p->in_flight = true;
    n->stats.dir_lookups++;
    size_t owner = mp_dir_owner(&n->dir, &p->ref);
    if (owner == n->dir.self) {
        const mp_dir_entry *e =
            mp_dir_table_get(&n->dir, p->ref.id, p->ref.len);
        mp_dir_entry copy;
        if (e) copy = *e;
        mp_ref ref = p->ref;
        int st = !e && recovering(n) ? MP_EBUSY : MP_OK;
        lookup_done(n, &ref, st, e ? &copy : NULL);
        return;
    }
    mp_ctx *c = ctx_new(n, MP_CTX_LOOKUP, &p->ref);
    int rc = MP_ENOMEM;
    if (c) {
        rc = send_system(n, owner, MP_SYS_LOOKUP, &p->ref, NULL, 0, c,
                         lookup_cb);
        if (rc < 0) ctx_free(c);
    }
    if (refusal_status(rc)) {
        char text[MP_ADDR_MAX + 200];
        refusal_text(n, mp_dir_addr(&n->dir, owner), rc, text, sizeof text);
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

static void lookup_done(mp_node *n, const mp_ref *ref, int status,
                        const mp_dir_entry *e)
{
    DBG(n, "lookup_done %s st=%d -> %s", ref->id, status,
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
                    fail_msg(n, m, MP_EUNAVAIL, "node shutting down");
                else
                    mp_msg_release(n, m);
            }
        }
        if (mp_list_empty(&p->msgs)) {
            pending_free(n, p);
            return;
        }
        p->attempts++;
        uint64_t d = 50 * NS_PER_MS << (p->attempts < 5 ? p->attempts : 5);
        d += mp_env_random_below(n->env, d / 2 + 1);
        p->retry = mp_env_timer_start(n->env, d, lookup_retry, p);
        if (!p->retry) {
            fail_list(n, &p->msgs, MP_ENOMEM, "out of memory");
            pending_free(n, p);
        }
        return;
    }
    mp_ref r = p->ref;
    mp_list_node msgs;
    pending_take(n, p, &msgs);
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
static void lookup_resolved_a(mp_node *n, const mp_ref *rp,
                              const mp_dir_entry *e, mp_list_node *msgs_in,
                              mp_actor *here)
{
    mp_ref r; /* rp may point into something freed below */
    ref_copy(&r, rp);
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
        const mp_actor_type *t = type_of_ref(n, &r);
        mp_placement strat = t ? t->placement : MP_PLACE_TWO_CHOICES;
        dst = mp_dir_place(&n->dir, strat, &r, mp_catalog_count(&n->catalog),
                           n->env);
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
        send_to(n, MP_CONTAINER_OF(ln, mp_msg, link), (uint16_t)dst, flags,
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
        fail_msg(n, m, MP_ENOMEM, "out of memory");
        return;
    }
    p->node = n;
    p->ref = m->target;
    mp_list_init(&p->msgs);
    mp_list_node_init(&p->link);
    if (mp_map_str_put(&n->pending, p->ref.id, p->ref.len, p, NULL) != MP_OK) {
        free(p);
        fail_msg(n, m, MP_ENOMEM, "out of memory");
        return;
    }
    mp_list_push_back(&n->pending_list, &p->link);
    mp_list_push_back(&p->msgs, &m->link);
    start_lookup(n, p);
}

/* ---- routing ---- */

static void route(mp_node *n, mp_msg *m)
{
    mp_actor *a = mp_catalog_find(&n->catalog, &m->target);
    if (a && a->state != MP_ACT_INVALID) {
        deliver_local(n, a, m);
        return;
    }
    if (n->closing) {
        fail_msg(n, m, m->origin == MP_ORIGIN_LOCAL ? MP_ECLOSED : MP_EUNAVAIL,
                 "node shutting down");
        return;
    }
    int c = mp_dir_cache_get_ref(&n->dir, &m->target);
    if (c >= 0 && (size_t)c != n->dir.self) {
        send_to(n, m, (uint16_t)c, 0, true);
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
        if (e || !recovering(n)) {
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

/* ---- client-only nodes ---- */

/* A gateway attempt failed in a way another member may not share: the
 * connection to it broke or was refused, or it said it cannot serve. */
static bool client_retryable(int status)
{
    return status == MP_EUNAVAIL || status == MP_ECONNRESET ||
           status == MP_ECONNREFUSED || status == MP_EOF ||
           status == MP_EQUEUEFULL;
}

/* Every member is tried once per round; a call then waits a little before
 * the next round (the cluster may be restarting), up to its deadline. */
#define CLIENT_ROUNDS 4
#define CLIENT_ROUND_PAUSE_NS (100ull * NS_PER_MS)

static int client_frame(mp_node *n, const mp_msg *m, size_t gw, uint64_t corr)
{
    uint64_t now = mp_env_now(n->env);
    if (m->deadline && now >= m->deadline) return MP_ETIMEDOUT;
    uint64_t remaining = m->deadline ? m->deadline - now : n->call_timeout_ns;
    uint64_t ttl_ms = (remaining + NS_PER_MS - 1) / NS_PER_MS;
    if (ttl_ms > UINT32_MAX) ttl_ms = UINT32_MAX;
    mp_frame f;
    frame_init(&f, corr ? MP_FRAME_REQUEST : MP_FRAME_ONEWAY);
    f.correlation_id = corr;
    f.ttl_ms = (uint32_t)ttl_ms;
    f.target = mp_bytes_make(m->target.id, m->target.len);
    f.method = mp_bytes_make(m->method, m->method_len);
    f.payload = mp_bytes_make(m->data, m->len);
    int rc = send_frame(n, mp_dir_addr(&n->dir, gw), &f);
    DBG(n, "client send %s.%s to %s corr=%llu rc=%d", m->target.id, m->method,
        mp_dir_addr(&n->dir, gw), (unsigned long long)corr, rc);
    return rc;
}

static void ccall_cb(void *ud, int status, const void *data, size_t len);

static void ccall_free(mp_node *n, mp_ccall *cc)
{
    mp_list_remove(&cc->link);
    if (cc->timer) mp_env_timer_cancel(n->env, cc->timer);
    if (cc->corr) mp_calls_cancel(&n->calls, cc->corr);
    mp_msg_release(n, cc->m);
    free(cc);
}

/* The call's outcome: runs the caller's callback (from a loop callback,
 * never inside mp_call) and forgets the call. */
static void ccall_finish(mp_node *n, mp_ccall *cc, int status,
                         const void *data, size_t len)
{
    mp_reply_cb cb = cc->cb;
    void *ud = cc->ud;
    cc->corr = 0;
    ccall_free(n, cc);
    cb(ud, status, data, len);
}

/* Send the next attempt. Returns the send status; on failure nothing is
 * registered. The first attempt goes to the member that hosted the actor
 * last time (learnt from the cache updates of earlier replies), so a client
 * call costs one hop, not two (gateway, then host): in the 3-node demo 70%
 * of requests were relayed before. Without a hint, and for fail-over
 * attempts, the gateway is drawn from the id's hash, so one client spreads
 * its calls over every member. */
static int client_attempt_once(mp_node *n, mp_ccall *cc)
{
    int hint = cc->tries == 0 ? mp_dir_cache_get_ref(&n->dir, &cc->m->target) : -1;
    cc->gw = hint >= 0 ? (uint16_t)hint
                       : (uint16_t)((cc->m->target.hash + cc->tries) % n->dir.n);
    int rc = mp_calls_add_at(&n->calls, cc->m->deadline, ccall_cb, cc,
                             &cc->corr);
    if (rc < 0) {
        cc->corr = 0;
        return rc;
    }
    rc = client_frame(n, cc->m, cc->gw, cc->corr);
    if (rc < 0) {
        mp_calls_cancel(&n->calls, cc->corr);
        cc->corr = 0;
    }
    return rc;
}

static void client_next(mp_node *n, mp_ccall *cc, int status,
                        const void *data, size_t len);

static void client_retry_fire(void *ud)
{
    mp_ccall *cc = ud;
    cc->timer = 0;
    mp_node *n = cc->node;
    int rc = client_attempt_once(n, cc);
    if (rc < 0) client_next(n, cc, rc, mp_strerror(rc), strlen(mp_strerror(rc)));
}

/* The current attempt failed with `status`: fail over to the next gateway
 * while that makes sense, else report the failure. Runs from loop
 * callbacks only. */
static void client_next(mp_node *n, mp_ccall *cc, int status,
                        const void *data, size_t len)
{
    for (;;) {
        uint64_t now = mp_env_now(n->env);
        bool more = client_retryable(status) && !n->closing &&
                    cc->tries + 1 < CLIENT_ROUNDS * n->dir.n &&
                    (!cc->m->deadline || now < cc->m->deadline);
        if (!more) {
            ccall_finish(n, cc, status, data, len);
            return;
        }
        MP_SOMETIMES(true, "actor.client_failover");
        cc->tries++;
        if (cc->tries % n->dir.n == 0) {
            cc->timer = mp_env_timer_start(n->env, CLIENT_ROUND_PAUSE_NS,
                                           client_retry_fire, cc);
            if (cc->timer) return;
        }
        int rc = client_attempt_once(n, cc);
        if (rc == 0) return;
        status = rc;
        data = mp_strerror(rc);
        len = strlen(data);
    }
}

static void ccall_cb(void *ud, int status, const void *data, size_t len)
{
    mp_ccall *cc = ud;
    mp_node *n = cc->node;
    cc->corr = 0;
    if (client_retryable(status)) {
        /* The hinted host may be gone: later calls start from the hash. */
        mp_dir_cache_remove_ref(&n->dir, &cc->m->target);
        client_next(n, cc, status, data, len);
    } else {
        ccall_finish(n, cc, status, data, len);
    }
}

/* A gateway's connection broke or could not be made: the calls waiting on
 * it go to the next member (their frame may still arrive there later: a
 * failed-over request can run twice, see node.h). */
static void client_peer_down(mp_node *n, uint16_t member, int status)
{
    mp_list_node moved;
    mp_list_init(&moved);
    mp_list_node *ln, *tmp;
    MP_LIST_FOREACH_SAFE(ln, tmp, &n->ccalls)
    {
        mp_ccall *cc = MP_CONTAINER_OF(ln, mp_ccall, link);
        if (cc->corr && cc->gw == member) {
            mp_list_remove(&cc->link);
            mp_list_push_back(&moved, &cc->link);
        }
    }
    if (status >= 0) status = MP_ECONNRESET;
    static const char why[] = "connection to the gateway lost";
    /* One at a time, each back in the main list before anything runs:
     * callbacks may add calls (never remove others). */
    while ((ln = mp_list_pop_front(&moved)) != NULL) {
        mp_ccall *cc = MP_CONTAINER_OF(ln, mp_ccall, link);
        mp_list_push_back(&n->ccalls, &cc->link);
        mp_calls_cancel(&n->calls, cc->corr);
        cc->corr = 0;
        client_next(n, cc, status, why, sizeof why - 1);
    }
}

/* Submit from a client-only node: consumes m. */
static int client_submit(mp_node *n, mp_msg *m, mp_reply_cb cb, void *ud,
                         bool oneway)
{
    int rc = MP_EUNAVAIL;
    if (oneway) {
        for (size_t i = 0; i < n->dir.n && rc < 0; i++)
            rc = client_frame(n, m, (m->target.hash + i) % n->dir.n, 0);
        mp_msg_release(n, m);
        if (rc == 0) n->stats.calls_out++;
        return rc < 0 ? rc : MP_OK;
    }
    mp_ccall *cc = calloc(1, sizeof *cc);
    if (!cc) {
        mp_msg_release(n, m);
        return MP_ENOMEM;
    }
    cc->node = n;
    cc->m = m;
    cc->cb = cb;
    cc->ud = ud;
    m->origin = MP_ORIGIN_LOCAL;
    mp_list_node_init(&cc->link);
    mp_list_push_back(&n->ccalls, &cc->link);
    /* The first round is tried at once; if no gateway takes the frame the
     * call fails here and cb never runs. */
    for (;;) {
        rc = client_attempt_once(n, cc);
        if (rc == 0) break;
        if (!client_retryable(rc) || cc->tries + 1 >= n->dir.n) {
            ccall_free(n, cc);
            return rc;
        }
        cc->tries++;
    }
    n->stats.calls_out++;
    return MP_OK;
}

/* ---- the call API ---- */

static bool ref_ok(const mp_ref *r)
{
    return r->len >= 5 && r->len <= MP_ACTOR_ID_MAX && r->id[r->len] == '\0' &&
           r->type_off >= 3 && (size_t)r->type_off + r->type_len < r->len &&
           r->key_off == r->type_off + r->type_len + 1 &&
           (size_t)r->key_off + r->key_len == r->len;
}

static int submit(mp_node *n, const mp_actor *sender, const mp_ref *ref,
                  const char *method, const void *payload, size_t len,
                  const mp_call_opts *opts, mp_reply_cb cb, void *ud,
                  bool oneway)
{
    if (!n || !ref || !method || (!payload && len) || (!oneway && !cb))
        return MP_EINVAL;
    if (n->closing || !n->started) return MP_ECLOSED;
    if (!ref_ok(ref)) return MP_EINVAL;
    size_t mlen = strnlen(method, MP_METHOD_MAX + 1);
    if (mlen == 0 || mlen > MP_METHOD_MAX) return MP_EINVAL;
    size_t slen = sender ? sender->len : 0;
    /* The same bound the wire enforces, checked before anything is queued
     * so local and remote calls fail alike (R16). */
    size_t frame = (size_t)MP_FRAME_MIN_SIZE + ref->len + slen + mlen;
    if (len > n->max_message || frame + len > n->max_message) return MP_ETOOBIG;

    mp_msg *m = mp_msg_alloc(n);
    if (!m) return MP_ENOMEM;
    if (mp_msg_set_payload(m, payload, len) != MP_OK) {
        mp_msg_release(n, m);
        return MP_ENOMEM;
    }
    uint64_t timeout = opts && opts->timeout_ns ? opts->timeout_ns
                                                : n->call_timeout_ns;
    uint64_t now = mp_env_now(n->env);
    m->deadline = now + timeout < now ? UINT64_MAX : now + timeout;
    ref_copy(&m->target, ref);
    memcpy(m->method, method, mlen + 1);
    m->method_len = (uint8_t)mlen;
    if (sender) {
        memcpy(m->sender, sender->id, slen + 1);
        m->sender_len = (uint16_t)slen;
    }
    if (n->client_only) return client_submit(n, m, cb, ud, oneway);
    if (oneway) {
        m->origin = MP_ORIGIN_NONE;
    } else {
        int rc = mp_calls_add_at(&n->calls, m->deadline, cb, ud, &m->corr);
        if (rc < 0) {
            mp_msg_release(n, m);
            return rc;
        }
        m->origin = MP_ORIGIN_LOCAL;
        if (sender && sender->current) {
            sender->current->await_corr = m->corr;
            sender->current->await_hash = ref->hash;
        }
    }
    n->stats.calls_out++;
    route(n, m);
    return MP_OK;
}

int mp_call(mp_node *node, const mp_ref *ref, const char *method,
            const void *payload, size_t len, const mp_call_opts *opts,
            mp_reply_cb cb, void *ud)
{
    return submit(node, NULL, ref, method, payload, len, opts, cb, ud, false);
}

int mp_actor_call(mp_actor *self, const mp_ref *ref, const char *method,
                  const void *payload, size_t len, const mp_call_opts *opts,
                  mp_reply_cb cb, void *ud)
{
    if (!self) return MP_EINVAL;
    return submit(self->node, self, ref, method, payload, len, opts, cb, ud,
                  false);
}

int mp_send(mp_node *node, const mp_ref *ref, const char *method,
            const void *payload, size_t len)
{
    return submit(node, NULL, ref, method, payload, len, NULL, NULL, NULL,
                  true);
}

/* ---- frames from peers ---- */

static void on_request(mp_node *n, int peer_idx, const char *peer,
                       const mp_frame *f)
{
    bool oneway = f->kind == MP_FRAME_ONEWAY;
    mp_ref ref;
    const char *why = NULL;
    int status = MP_EINVAL;
    if (mp_ref_parse(&ref, (const char *)f->target.ptr, f->target.len) != MP_OK)
        why = "malformed actor id";
    else if (!ns_matches(n, &ref))
        why = "actor id of another namespace";
    else if (f->method.len == 0 || f->method.len > MP_METHOD_MAX ||
             memchr(f->method.ptr, 0, f->method.len))
        why = "malformed method";
    else if (f->sender.len > MP_ACTOR_ID_MAX)
        why = "malformed sender";
    if (why) {
        if (!oneway) send_response(n, peer, f->correlation_id, status, why,
                                   strlen(why), NULL, -1);
        return;
    }
    if (f->ttl_ms == 0) return; /* already expired */
    mp_msg *m = mp_msg_alloc(n);
    if (!m || mp_msg_set_payload(m, f->payload.ptr, f->payload.len) != MP_OK) {
        if (m) mp_msg_release(n, m);
        if (!oneway) send_response(n, peer, f->correlation_id, MP_ENOMEM,
                                   "out of memory", 13, NULL, -1);
        return;
    }
    m->origin = oneway ? MP_ORIGIN_NONE : MP_ORIGIN_REMOTE;
    m->corr = f->correlation_id;
    m->forward_count = f->forward_count;
    m->flags = f->flags;
    m->remote_in = true;
    m->deadline = mp_env_now(n->env) + (uint64_t)f->ttl_ms * NS_PER_MS;
    size_t pl = strlen(peer);
    if (pl > MP_ADDR_MAX) pl = MP_ADDR_MAX;
    memcpy(m->peer, peer, pl);
    m->peer[pl] = '\0';
    m->target = ref;
    memcpy(m->method, f->method.ptr, f->method.len);
    m->method[f->method.len] = '\0';
    m->method_len = (uint8_t)f->method.len;
    if (f->sender.len) memcpy(m->sender, f->sender.ptr, f->sender.len);
    m->sender[f->sender.len] = '\0';
    m->sender_len = (uint16_t)f->sender.len;
    DBG(n, "recv %s.%s from %s fc=%u flags=%u corr=%llu", ref.id, m->method, peer,
        f->forward_count, f->flags, (unsigned long long)f->correlation_id);

    if (n->closing) {
        fail_msg(n, m, MP_EUNAVAIL, "node shutting down");
        return;
    }
    mp_actor *a = mp_catalog_find(&n->catalog, &ref);
    if (a && a->state != MP_ACT_INVALID) {
        deliver_local(n, a, m);
        return;
    }
    if (f->flags & MP_FLAG_PLACE) {
        mp_list_node one;
        mp_list_init(&one);
        mp_list_push_back(&one, &m->link);
        host_here(n, &ref, &one);
        return;
    }
    /* Not here (stale cache at the sender): the owner knows where. */
    MP_SOMETIMES(true, "actor.request_not_hosted");
    mp_dir_cache_remove(&n->dir, ref.id, ref.len);
    route(n, m);
}

static void on_response(mp_node *n, const mp_frame *f)
{
    DBG(n, "response corr=%llu status=%d", (unsigned long long)f->correlation_id,
        f->status);
    /* Client-only nodes learn too: it steers their next call (see
     * client_attempt_once). Their self is no member, so no entry is theirs. */
    for (uint16_t i = 0; i < f->cache_update_count; i++) {
        const mp_frame_cache_update *u = &f->cache_updates[i];
        mp_ref r;
        if (mp_ref_parse(&r, (const char *)u->actor_id.ptr, u->actor_id.len) != MP_OK)
            continue;
        int mb = mp_dir_member(&n->dir, (const char *)u->addr.ptr, u->addr.len);
        if (mb < 0) continue;
        if ((size_t)mb == n->dir.self) {
            mp_dir_cache_remove(&n->dir, r.id, r.len);
        } else {
            int old = mp_dir_cache_get(&n->dir, r.id, r.len);
            mp_dir_cache_put(&n->dir, r.id, r.len, (uint16_t)mb, u->incarnation);
            MP_SOMETIMES(old != mb, "actor.cache_corrected");
        }
        n->stats.cache_updates++;
    }
    int rc = mp_calls_complete(&n->calls, f->correlation_id, f->status,
                               f->payload.ptr, f->payload.len);
    (void)rc;
}

static void owner_register(mp_node *n, const char *peer, int peer_idx,
                           uint64_t corr, const mp_ref *ref, uint32_t inc,
                           uint64_t act_id)
{
    mp_dir_entry w;
    int rc = mp_dir_register(&n->dir, ref, (uint16_t)peer_idx, inc, act_id, &w);
    if (rc < 0) {
        send_response(n, peer, corr, rc, "", 0, NULL, -1);
        return;
    }
    uint8_t buf[16 + MP_ADDR_MAX + 8];
    size_t len;
    encode_entry(buf, &len, &n->dir, &w);
    send_response(n, peer, corr, 0, buf, len, NULL, -1);
}

static void delayed_register(void *ud)
{
    mp_ctx *c = ud;
    c->timer = 0;
    mp_node *n = c->node;
    int idx = mp_dir_member(&n->dir, c->peer, strlen(c->peer));
    if (idx >= 0)
        owner_register(n, c->peer, idx, c->orig_corr, &c->ref, c->incarnation,
                       c->act_id);
    ctx_free(c);
}

static void on_system(mp_node *n, int peer_idx, const char *peer,
                      const mp_frame *f)
{
    mp_bytes meth = f->method;
    if (mp_bytes_eq(meth, mp_bytes_str(MP_SYS_LOAD))) {
        if (f->payload.len == 8)
            mp_dir_load_report(&n->dir, (uint16_t)peer_idx,
                               get_u64(f->payload.ptr));
        return;
    }
    if (mp_bytes_eq(meth, mp_bytes_str(MP_SYS_REREGISTERED))) {
        if (f->payload.len == 4 && recovering(n) && n->rereg_done &&
            n->rereg_count) {
            uint32_t want = get_u32(f->payload.ptr);
            if (n->rereg_count[peer_idx] >= want) n->rereg_done[peer_idx] = true;
            size_t done = 0;
            for (size_t i = 0; i < n->dir.n; i++)
                done += i == n->dir.self || n->rereg_done[i];
            if (done == n->dir.n) {
                MP_SOMETIMES(true, "actor.directory_recovered_early");
                n->recover_until = 0;
            }
        }
        return;
    }
    mp_ref ref;
    if (mp_ref_parse(&ref, (const char *)f->target.ptr, f->target.len) != MP_OK ||
        !ns_matches(n, &ref)) {
        if (f->correlation_id)
            send_response(n, peer, f->correlation_id, MP_EPROTO, "bad id", 6,
                          NULL, -1);
        return;
    }
    if (mp_bytes_eq(meth, mp_bytes_str(MP_SYS_LOOKUP))) {
        const mp_dir_entry *e = mp_dir_table_get(&n->dir, ref.id, ref.len);
        if (!e && recovering(n)) {
            MP_SOMETIMES(true, "actor.directory_recovering");
            send_response(n, peer, f->correlation_id, MP_EBUSY,
                          "directory recovering", 20, NULL, -1);
            return;
        }
        uint8_t buf[16 + MP_ADDR_MAX + 8];
        size_t len;
        encode_entry(buf, &len, &n->dir, e);
        send_response(n, peer, f->correlation_id, 0, buf, len, NULL, -1);
        return;
    }
    bool rereg = mp_bytes_eq(meth, mp_bytes_str(MP_SYS_REREGISTER));
    bool reg = rereg || mp_bytes_eq(meth, mp_bytes_str(MP_SYS_REGISTER));
    bool unreg = mp_bytes_eq(meth, mp_bytes_str(MP_SYS_UNREGISTER));
    if ((!reg && !unreg) || f->payload.len != 12) {
        if (f->correlation_id)
            send_response(n, peer, f->correlation_id, MP_EPROTO,
                          "bad system request", 18, NULL, -1);
        return;
    }
    uint32_t inc = get_u32(f->payload.ptr);
    uint64_t act_id = get_u64(f->payload.ptr + 4);
    if (unreg) {
        mp_dir_unregister(&n->dir, ref.id, ref.len, (uint16_t)peer_idx, act_id);
        if (f->correlation_id)
            send_response(n, peer, f->correlation_id, 0, "", 0, NULL, -1);
        return;
    }
    if (rereg && recovering(n) && n->rereg_count) n->rereg_count[peer_idx]++;
    if (!rereg && recovering(n) && !mp_dir_table_get(&n->dir, ref.id, ref.len)) {
        /* A new registration while the survivors' re-registrations may
         * still be on their way: first-wins would let it beat a live
         * activation. The registrant retries (register_done). */
        send_response(n, peer, f->correlation_id, MP_EBUSY,
                      "directory recovering", 20, NULL, -1);
        return;
    }
    /* Never delayed while recovering: the recovery must not end before the
     * re-registrations it counted are in the table. */
    if (!recovering(n) && MP_BUGGIFY_P(0.2)) {
        /* Delay the owner's answer: registrations of racing activations
         * then overlap in every order. */
        mp_ctx *c = ctx_new(n, MP_CTX_DELAYED_REGISTER, &ref);
        if (c) {
            c->orig_corr = f->correlation_id;
            c->incarnation = inc;
            c->act_id = act_id;
            snprintf(c->peer, sizeof c->peer, "%s", peer);
            c->timer = mp_env_timer_start(
                n->env, mp_env_random_below(n->env, 20 * NS_PER_MS) + 1,
                delayed_register, c);
            if (c->timer) return;
            ctx_free(c);
        }
    }
    owner_register(n, peer, peer_idx, f->correlation_id, &ref, inc, act_id);
}

static void on_stats_request(mp_node *n, const char *peer, const mp_frame *f)
{
    if (!f->correlation_id) return;
    size_t len = 0;
    char *json = mp_node_stats_json(n, &len);
    if (!json) {
        send_response(n, peer, f->correlation_id, MP_ENOMEM, "out of memory",
                      13, NULL, -1);
        return;
    }
    send_response(n, peer, f->correlation_id, 0, json, len, NULL, -1);
    free(json);
}

/* Frames from any handshaken peer of our namespace. Members speak the whole
 * protocol; a non-member (a client-only node) may send requests and ask for
 * stats, nothing that touches the directory. */
static void on_frame(void *ud, const char *peer, const mp_frame *f)
{
    mp_node *n = ud;
    if (n->freed || !peer) return;
    size_t plen = strlen(peer);
    int idx;
    if (plen == n->last_from_len && memcmp(peer, n->last_from, plen) == 0) {
        idx = n->last_from_idx;
    } else {
        idx = mp_dir_member(&n->dir, peer, plen);
        if (plen <= MP_ADDR_MAX) {
            memcpy(n->last_from, peer, plen + 1);
            n->last_from_len = plen;
            n->last_from_idx = idx;
        }
    }
    if (idx >= 0 && (size_t)idx == n->dir.self) {
        mp_env_log(n->env, MP_LOG_WARN, "node: frame from own address %s dropped",
                   peer);
        return;
    }
    switch (f->kind) {
    case MP_FRAME_REQUEST:
    case MP_FRAME_ONEWAY:
        if (n->client_only) {
            static const char no[] = "a client-only node hosts no actors";
            if (f->kind == MP_FRAME_REQUEST)
                send_response(n, peer, f->correlation_id, MP_EUNAVAIL, no,
                              sizeof no - 1, NULL, -1);
            break;
        }
        if (idx < 0) MP_SOMETIMES(true, "actor.request_from_client");
        on_request(n, idx, peer, f);
        break;
    case MP_FRAME_RESPONSE:
        /* Only members are ever asked anything: a response from anyone
         * else answers nothing of ours (and must not complete a call). */
        if (idx >= 0) on_response(n, f);
        break;
    case MP_FRAME_SYSTEM:
        if (mp_bytes_eq(f->method, mp_bytes_str(MP_SYS_STATS))) {
            on_stats_request(n, peer, f);
        } else if (idx < 0 || n->client_only) {
            static const char no[] = "system request refused: not a member";
            mp_env_log(n->env, MP_LOG_WARN,
                       "node: system request from non-member %s refused", peer);
            if (f->correlation_id)
                send_response(n, peer, f->correlation_id, MP_EPROTO, no,
                              sizeof no - 1, NULL, -1);
        } else {
            on_system(n, idx, peer, f);
        }
        break;
    default: break;
    }
}

/* ---- a lost peer: what waits on it fails at once ----
 *
 * Why: a request whose frame went to a peer that then died gets no reply;
 * waiting for its timeout (30 s by default) only hides a fact the transport
 * already knows. When the transport reports the peer down (its connection
 * broke, or a dial or handshake failed) or restarted, every call, relay and
 * directory request whose frame went to it or still waits in its queue ends
 * now: calls and relays with MP_EUNAVAIL ("may or may not have run": a
 * frame handed to TCP may have been processed, and a queued frame is still
 * delivered if the peer comes back), directory requests through their
 * normal retry paths (they are idempotent), and a refused handshake
 * (namespace or version mismatch) with its own status.
 *
 * "Down" means a dial or handshake failed (mp_transport_peer_unreachable),
 * not merely that an open connection broke: after a break the transport
 * redials at once, and a live peer answers on the new connection what it
 * received (its replies wait in its queue), so calls are failed only when
 * that redial fails, a few milliseconds after a crash. Requests lost in the
 * write that broke still end by timeout.
 *
 * Calls issued while the peer stays down are queued behind the transport's
 * reconnect attempts and fail at the next failed attempt, so they wait at
 * most one backoff step (transport backoff_max_ns, 2 s by default), never
 * their whole timeout; a peer that comes back in between serves them. No
 * "down" flag is kept, so no stale state can refuse calls after a heal.
 *
 * The waiting records are found by walking the calls table (rare event;
 * its heap order is deterministic) and completed in correlation-id order,
 * i.e. in send order. */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The member a waiting record's frame went to, or -1: a client's call (see
 * client_peer_down), a stats request or anything else not tracked. */
static int waiter_member(mp_call_rec *r)
{
    if (r->peer >= 0) return r->peer;
    if (r->cb == relay_cb || r->cb == lookup_cb || r->cb == register_cb ||
        r->cb == unregister_cb)
        return ((mp_ctx *)r->ud)->member;
    return -1;
}

/* Complete every record waiting on member with status and text. Returns how
 * many. Callbacks may send (and add records) but never free the node. */
typedef struct waiting_ids {
    int member;
    uint64_t *ids;
    size_t count, cap;
} waiting_ids;

static void collect_waiting(void *arg, mp_call_rec *r)
{
    waiting_ids *w = arg;
    if (waiter_member(r) != w->member) return;
    if (w->count == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 16;
        uint64_t *g = realloc(w->ids, nc * sizeof *g);
        if (!g) return; /* the rest end by reply or timeout */
        w->ids = g;
        w->cap = nc;
    }
    w->ids[w->count++] = r->corr;
}

static size_t fail_waiting(mp_node *n, uint16_t member, int status,
                           const char *text)
{
    waiting_ids w = {member, NULL, 0, 0};
    mp_calls_foreach(&n->calls, collect_waiting, &w);
    uint64_t *ids = w.ids;
    size_t count = w.count;
    if (count > 1) qsort(ids, count, sizeof *ids, cmp_u64);
    size_t failed = 0, tlen = strlen(text);
    for (size_t i = 0; i < count; i++) {
        /* An earlier callback may have completed it meanwhile. */
        if (!mp_calls_find(&n->calls, ids[i])) continue;
        mp_calls_complete(&n->calls, ids[i], status, text, tlen);
        failed++;
    }
    free(ids);
    if (failed)
        mp_env_log(n->env, MP_LOG_INFO, "node: %zu request(s) to %s failed at once: %s",
                   failed, mp_dir_addr(&n->dir, member), text);
    return failed;
}

static void on_peer_restart(void *ud, const char *peer, uint32_t old_inc,
                            uint32_t new_inc)
{
    mp_node *n = ud;
    if (n->freed || !peer) return;
    int idx = mp_dir_member(&n->dir, peer, strlen(peer));
    if (idx < 0 || (size_t)idx == n->dir.self) return;
    if (old_inc != 0) {
        /* The old process is gone with whatever it was doing: nothing sent
         * to it will be answered. */
        char why[MP_ADDR_MAX + 96];
        snprintf(why, sizeof why,
                 "%s restarted (incarnation %u -> %u); the call may or may not have run",
                 peer, (unsigned)old_inc, (unsigned)new_inc);
        if (n->client_only)
            client_peer_down(n, (uint16_t)idx, MP_ECONNRESET);
        else
            fail_waiting(n, (uint16_t)idx, MP_EUNAVAIL, why);
    }
    mp_dir_peer_restart(&n->dir, (uint16_t)idx, new_inc);
    if (n->client_only) return; /* no activations, no say in recovery */
    /* The peer lost its owner table: re-register our activations whose
     * owner it is, or a lookup there would place a second one. Then tell
     * it how many we sent (also when we had none, or never knew it), so it
     * can end its recovery early. */
    uint32_t sent = 0;
    if (old_inc != 0) {
        MP_SOMETIMES(true, "actor.owner_restarted");
        mp_list_node *ln, *tmp;
        MP_LIST_FOREACH_SAFE(ln, tmp, &n->catalog.list)
        {
            mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
            if ((a->state == MP_ACT_VALID || a->state == MP_ACT_ACTIVATING) &&
                mp_dir_owner_h(&n->dir, a->hash) == (size_t)idx &&
                do_register(n, a, MP_CTX_REREGISTER) == MP_OK)
                sent++;
        }
    }
    uint8_t p[4];
    put_u32(p, sent);
    send_system(n, (size_t)idx, MP_SYS_REREGISTERED, NULL, p, sizeof p, NULL, NULL);
}

/* A connection to a peer broke or could not be made: the ids cached there
 * may have moved (a shutdown unregistered them), so the next calls ask the
 * directory instead of queueing behind a dead peer. */
static void on_peer_down(void *ud, const char *peer, int status)
{
    mp_node *n = ud;
    if (n->freed || !peer) return;
    int idx = mp_dir_member(&n->dir, peer, strlen(peer));
    if (idx < 0 || (size_t)idx == n->dir.self) return;
    mp_dir_cache_drop_member(&n->dir, (uint16_t)idx);
    if (n->client_only) {
        client_peer_down(n, (uint16_t)idx, status);
        return;
    }
    char why[MP_ADDR_MAX + 200];
    if (refusal_status(status)) {
        /* Not a lost connection: the peer is of another cluster or
         * protocol, and nothing sent to it ever ran. */
        refusal_text(n, peer, status, why, sizeof why);
        fail_waiting(n, (uint16_t)idx, status, why);
        return;
    }
    /* A connection that just broke is redialed at once: if the peer is
     * alive, what it received is answered on the next connection (its
     * replies wait in its queue), so the waiting calls wait too. The peer
     * is gone only when a dial or handshake fails. */
    if (n->transport && !mp_transport_peer_unreachable(n->transport, peer)) return;
    snprintf(why, sizeof why,
             "connection to %s lost (%s); the call may or may not have run", peer,
             mp_status_name(status));
    fail_waiting(n, (uint16_t)idx, MP_EUNAVAIL, why);
}

/* ---- timers: load reports, idle sweep ---- */

static void load_timer(void *ud)
{
    mp_node *n = ud;
    n->load_timer = 0;
    if (n->closing) return;
    uint8_t p[8];
    put_u64(p, mp_catalog_count(&n->catalog));
    for (size_t i = 0; i < n->dir.n; i++)
        if (i != n->dir.self)
            send_system(n, i, MP_SYS_LOAD, NULL, p, sizeof p, NULL, NULL);
    n->load_timer = mp_env_timer_start(n->env, MP_LOAD_INTERVAL_NS, load_timer, n);
}

static uint64_t idle_of(const mp_node *n, const mp_actor *a)
{
    return a->type->idle_timeout_ns ? a->type->idle_timeout_ns
                                    : n->idle_timeout_ns;
}

static void sweep_timer(void *ud)
{
    mp_node *n = ud;
    n->sweep_timer = 0;
    if (n->closing) return;
    uint64_t now = mp_env_now(n->env);
    mp_list_node *ln, *tmp;
    MP_LIST_FOREACH_SAFE(ln, tmp, &n->catalog.list)
    {
        mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
        if (a->state == MP_ACT_VALID && !a->current &&
            mp_list_empty(&a->mailbox) && !mp_list_node_linked(&a->work.link) &&
            now - a->last_used >= idle_of(n, a)) {
            a->deactivate_requested = true;
            a->deact_reason = MP_DEACTIVATE_IDLE;
            mp_actor_schedule(a);
        }
    }
    arm_sweep(n);
}

static void arm_sweep(mp_node *n)
{
    if (n->sweep_timer || n->closing || n->freed) return;
    if (mp_catalog_count(&n->catalog) == 0) return;
    n->sweep_timer = mp_env_timer_start(n->env, n->sweep_interval_ns,
                                        sweep_timer, n);
}

/* ---- life ---- */

void mp_node_config_init(mp_node_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->incarnation = 1;
    cfg->call_timeout_ns = DEFAULT_CALL_TIMEOUT_NS;
    cfg->idle_timeout_ns = DEFAULT_IDLE_TIMEOUT_NS;
    cfg->max_message = MP_FRAME_DEFAULT_MAX;
    cfg->max_pending_calls = 1000000;
}

static bool ident_ok(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static bool addr_ok(const char *a)
{
    char host[MP_ADDR_MAX + 1];
    uint16_t port;
    return a && strnlen(a, MP_ADDR_MAX + 1) <= MP_ADDR_MAX &&
           mp_addr_parse(a, host, sizeof host, &port) == MP_OK;
}

static int bad_config(mp_env *env, const char *why)
{
    mp_env_log(env, MP_LOG_ERROR, "node config: %s", why);
    return MP_EINVAL;
}

int mp_node_create(mp_env *env, const mp_node_config *cfg, mp_node **out)
{
    if (!env || !cfg || !out) return MP_EINVAL;
    *out = NULL;
    if (!cfg->cluster_namespace || !ident_ok(cfg->cluster_namespace, MP_ACTOR_PART_MAX))
        return bad_config(env, "bad namespace ([A-Za-z0-9_.-], 1..64 bytes)");
    if (!addr_ok(cfg->self_addr)) return bad_config(env, "bad self address");
    if (!cfg->members || cfg->member_count < 1 || cfg->member_count > MP_MAX_MEMBERS)
        return bad_config(env, "member list must hold 1..256 addresses");
    size_t self = SIZE_MAX;
    for (size_t i = 0; i < cfg->member_count; i++) {
        if (!addr_ok(cfg->members[i])) return bad_config(env, "bad member address");
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->members[i], cfg->members[j]) == 0)
                return bad_config(env, "duplicate member");
        if (strcmp(cfg->members[i], cfg->self_addr) == 0) self = i;
    }
    if (cfg->client_only && self != SIZE_MAX)
        return bad_config(env, "a client-only node must not be in members");
    if (!cfg->client_only && self == SIZE_MAX)
        return bad_config(env, "self address not in members");
    if (cfg->incarnation < 1) return bad_config(env, "incarnation must be >= 1");
    if (cfg->max_message && (cfg->max_message < MP_FRAME_MIN_SIZE + 64 ||
                             cfg->max_message > MP_FRAME_MAX_LIMIT))
        return bad_config(env, "max_message out of range");
    /* The transport's own rule, checked now so that the reason is logged
     * (0 is its default, and the "never" values are equal, see below). */
    const char *liveness = mp_transport_liveness_error(cfg->heartbeat_ns, cfg->peer_timeout_ns);
    if (liveness) return bad_config(env, liveness);

    mp_node *n = calloc(1, sizeof *n);
    if (!n) return MP_ENOMEM;
    n->env = env;
    snprintf(n->ns, sizeof n->ns, "%s", cfg->cluster_namespace);
    snprintf(n->self_addr, sizeof n->self_addr, "%s", cfg->self_addr);
    n->incarnation = cfg->incarnation;
    n->call_timeout_ns = cfg->call_timeout_ns ? cfg->call_timeout_ns : DEFAULT_CALL_TIMEOUT_NS;
    n->idle_timeout_ns = cfg->idle_timeout_ns ? cfg->idle_timeout_ns : DEFAULT_IDLE_TIMEOUT_NS;
    n->max_message = cfg->max_message ? cfg->max_message : MP_FRAME_DEFAULT_MAX;
    n->heartbeat_ns = cfg->heartbeat_ns;
    n->peer_timeout_ns = cfg->peer_timeout_ns;
    n->max_pending_calls = cfg->max_pending_calls;
    n->mailbox_warn_depth = cfg->mailbox_warn_depth;
    n->on_mailbox_depth = cfg->on_mailbox_depth;
    n->hook_ud = cfg->hook_ud;
    n->storage = cfg->storage;
    n->client_only = cfg->client_only;
    n->last_from_idx = -1; /* with last_from "": an empty address is no member */
    mp_list_init(&n->ccalls);
    mp_list_init(&n->sops);
    mp_list_init(&n->runq);
    mp_list_init(&n->pending_list);
    mp_list_init(&n->ctx_list);
    mp_list_init(&n->delayed);
    uint64_t seed = mp_env_random(env);
    if (mp_calls_init(&n->calls, env, n->max_pending_calls) != MP_OK ||
        mp_catalog_init(&n->catalog, seed) != MP_OK ||
        mp_map_str_init_seeded(&n->pending, 0, seed ^ 7) != MP_OK ||
        mp_map_u64_init(&n->pub_refs, 0) != MP_OK ||
        mp_dir_init(&n->dir, cfg->members, cfg->member_count,
                    self == SIZE_MAX ? MP_DIR_NO_SELF : self, seed ^ 9) != MP_OK) {
        mp_calls_free(&n->calls, false, 0);
        mp_catalog_free(&n->catalog);
        mp_map_str_free(&n->pending);
        mp_dir_free(&n->dir);
        free(n);
        return MP_ENOMEM;
    }
    mp_calls_set_base(&n->calls, (uint64_t)n->incarnation << 40);
    mp_dir_set_local(&n->dir, dir_local, n, n->incarnation);
    *out = n;
    return MP_OK;
}

int mp_node_register_type(mp_node *n, const mp_actor_type *t)
{
    if (!n || !t || !t->name || n->started) return MP_EINVAL;
    if (!ident_ok(t->name, MP_ACTOR_PART_MAX)) return MP_EINVAL;
    if (t->method_count && !t->methods) return MP_EINVAL;
    for (size_t i = 0; i < t->method_count; i++) {
        const char *mn = t->methods[i].name;
        if (!mn || !t->methods[i].fn) return MP_EINVAL;
        size_t l = strnlen(mn, MP_METHOD_MAX + 1);
        if (l == 0 || l > MP_METHOD_MAX) return MP_EINVAL;
    }
    if ((unsigned)t->placement > MP_PLACE_HASH) return MP_EINVAL;
    size_t len = strlen(t->name);
    if (find_type(n, t->name, len)) return MP_EINVAL;
    if (n->type_count == n->type_cap) {
        size_t cap = n->type_cap ? n->type_cap * 2 : 8;
        mp_type_slot *p = realloc(n->types, cap * sizeof *p);
        if (!p) return MP_ENOMEM;
        n->types = p;
        n->type_cap = cap;
    }
    n->types[n->type_count].type = t;
    n->types[n->type_count].name_len = len;
    n->type_count++;
    return MP_OK;
}

int mp_node_start(mp_node *n)
{
    if (!n || n->started || n->closing) return MP_EINVAL;
    /* Idle sweep period: a quarter of the shortest idle timeout, so an idle
     * activation goes within 125% of its timeout. */
    uint64_t min_idle = n->idle_timeout_ns;
    for (size_t i = 0; i < n->type_count; i++)
        if (n->types[i].type->idle_timeout_ns &&
            n->types[i].type->idle_timeout_ns < min_idle)
            min_idle = n->types[i].type->idle_timeout_ns;
    n->sweep_interval_ns = min_idle / 4 ? min_idle / 4 : 1;
    /* Every node listens, a one-member cluster too: client-only nodes
     * (moonpool call, stats) reach the cluster through any member. */
    {
        mp_transport_config tc;
        mp_transport_config_init(&tc);
        tc.cluster_namespace = n->ns;
        tc.self_addr = n->self_addr;
        tc.incarnation = n->incarnation;
        tc.max_frame = n->max_message;
        _Static_assert(MP_NODE_NO_PEER_TIMEOUT == MP_TRANSPORT_NO_PEER_TIMEOUT,
                       "the node passes peer_timeout_ns through unchanged");
        tc.heartbeat_ns = n->heartbeat_ns;       /* 0: the transport's default */
        tc.peer_timeout_ns = n->peer_timeout_ns; /* 0: the transport's default */
        static const mp_transport_callbacks cbs = {on_frame, on_peer_restart, on_peer_down};
        int rc = mp_transport_create(n->env, &tc, &cbs, n, &n->transport);
        if (rc < 0) return rc;
        /* Port 0 (real mode): announce what the OS bound. */
        snprintf(n->self_addr, sizeof n->self_addr, "%s",
                 mp_transport_self_addr(n->transport));
        if (!n->client_only && n->dir.n > 1)
            n->load_timer = mp_env_timer_start(n->env, MP_LOAD_INTERVAL_NS,
                                               load_timer, n);
    }
    if (n->incarnation > 1 && n->dir.n > 1 && !n->client_only) {
        n->rereg_count = calloc(n->dir.n, sizeof *n->rereg_count);
        n->rereg_done = calloc(n->dir.n, sizeof *n->rereg_done);
        /* Without the counters recovery simply lasts its full time. */
        n->recover_until = mp_env_now(n->env) + MP_DIR_RECOVERY_NS;
    }
    n->started = true;
    return MP_OK;
}

/* Free every structure. Callbacks never run from here. */
static void release_all(mp_node *n)
{
    n->freed = true;
    mp_env *env = n->env;
    if (n->load_timer) mp_env_timer_cancel(env, n->load_timer);
    if (n->sweep_timer) mp_env_timer_cancel(env, n->sweep_timer);
    if (n->shutdown_timer) mp_env_timer_cancel(env, n->shutdown_timer);
    n->load_timer = n->sweep_timer = n->shutdown_timer = 0;
    mp_list_node *ln;
    /* run queue: local replies (their calls are completed or dropped) */
    while ((ln = mp_list_pop_front(&n->runq)) != NULL) {
        mp_work *w = MP_CONTAINER_OF(ln, mp_work, link);
        if (w->kind == MP_WORK_REPLY)
            mp_msg_release(n, MP_CONTAINER_OF(w, mp_msg, work));
    }
    /* activations */
    while ((ln = mp_list_front(&n->catalog.list)) != NULL) {
        mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
        mp_msg *m;
        while ((m = mp_actor_pop(a)) != NULL) mp_msg_release(n, m);
        if (a->current) {
            /* A handler that never replied: its message goes with the node. */
            mp_msg *cm = a->current;
            a->current = NULL;
            mp_list_remove(&cm->link);
            mp_list_remove(&cm->work.link);
            mp_msg_release(n, cm);
        }
        destroy_activation(n, a);
    }
    while ((ln = mp_list_front(&n->pending_list)) != NULL) {
        mp_pending *p = MP_CONTAINER_OF(ln, mp_pending, link);
        mp_list_node *ml;
        while ((ml = mp_list_pop_front(&p->msgs)) != NULL)
            mp_msg_release(n, MP_CONTAINER_OF(ml, mp_msg, link));
        pending_free(n, p);
    }
    while ((ln = mp_list_pop_front(&n->delayed)) != NULL) {
        mp_msg *m = MP_CONTAINER_OF(ln, mp_msg, link);
        if (m->delay_timer) mp_env_timer_cancel(env, m->delay_timer);
        mp_msg_release(n, m);
    }
    while ((ln = mp_list_front(&n->ctx_list)) != NULL)
        ctx_free(MP_CONTAINER_OF(ln, mp_ctx, link));
    while ((ln = mp_list_front(&n->ccalls)) != NULL)
        ccall_free(n, MP_CONTAINER_OF(ln, mp_ccall, link));
    mp_state_node_free(n);
    mp_calls_free(&n->calls, false, 0);
    mp_catalog_free(&n->catalog);
    mp_map_str_free(&n->pending);
    mp_map_u64_free(&n->pub_refs); /* empty: each activation removed its own */
    mp_act_mem_release(&n->act_mem); /* every activation is gone */
    mp_dir_free(&n->dir);
    while (n->msg_free) {
        mp_msg *m = n->msg_free;
        n->msg_free = m->next_free;
        free(m);
    }
    free(n->types);
    free(n->rereg_count);
    free(n->rereg_done);
    free(n);
}

void mp_node_free_now(mp_node *n)
{
    if (!n) return;
    n->killing = true;
    if (n->transport) mp_transport_free_now(n->transport);
    n->transport = NULL;
    release_all(n);
}

static void finish_release(mp_node *n)
{
    void (*cb)(void *) = n->shutdown_cb;
    void *cud = n->shutdown_ud;
    release_all(n);
    if (cb) cb(cud);
}

static void transport_closed(void *ud)
{
    mp_node *n = ud;
    n->transport = NULL;
    /* Storage operations still out hold pointers to this node: their
     * callbacks always come (storage.h), so the memory waits for them. */
    if (!mp_list_empty(&n->sops)) {
        n->release_waiting = true;
        return;
    }
    finish_release(n);
}

bool mp_node_sop_done(mp_node *n)
{
    if (!n->release_waiting || !mp_list_empty(&n->sops)) return false;
    n->release_waiting = false;
    finish_release(n);
    return true;
}

void mp_node_note_persist(mp_node *n, uint64_t ns, int status)
{
    n->stats.persists++;
    if (status < 0) n->stats.persist_errors++;
    uint64_t us = ns / 1000;
    int b = 0;
    while (us > 1 && b < MP_PERSIST_BUCKETS - 1) {
        us >>= 1;
        b++;
    }
    n->persist_hist[b]++;
    n->persist_count++;
}

static void shutdown_finish(mp_node *n)
{
    if (n->transport_closing) return;
    n->transport_closing = true;
    if (n->shutdown_timer) mp_env_timer_cancel(n->env, n->shutdown_timer);
    n->shutdown_timer = 0;
    mp_list_node *ln, *tmp;
    /* Pending lookups fail, then every outstanding call with MP_ECLOSED,
     * before any hook runs: an instance released afterwards can rely on
     * none of its calls calling back later (actor.h, release). */
    while ((ln = mp_list_front(&n->pending_list)) != NULL) {
        mp_pending *p = MP_CONTAINER_OF(ln, mp_pending, link);
        mp_list_node msgs;
        pending_take(n, p, &msgs);
        fail_list(n, &msgs, MP_ECLOSED, "node shutting down");
    }
    /* Client calls waiting to fail over: they end now too. */
    MP_LIST_FOREACH_SAFE(ln, tmp, &n->ccalls)
    {
        /* Those with an attempt out are completed by mp_calls_free. */
        mp_ccall *cc = MP_CONTAINER_OF(ln, mp_ccall, link);
        static const char why[] = "node shutting down";
        if (!cc->corr) ccall_finish(n, cc, MP_ECLOSED, why, sizeof why - 1);
    }
    uint64_t next = n->calls.next_corr;
    mp_calls_free(&n->calls, true, MP_ECLOSED);
    mp_calls_init(&n->calls, n->env, 0); /* empty table: late replies drop */
    n->calls.next_corr = next;
    /* Activations still busy at the deadline: their hooks run now. */
    MP_LIST_FOREACH_SAFE(ln, tmp, &n->catalog.list)
    {
        mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
        if (a->activated) {
            a->activated = false;
            if (a->type->on_deactivate)
                a->type->on_deactivate(a, a->instance, MP_DEACTIVATE_SHUTDOWN);
            n->stats.deactivations_total++;
        }
        mp_msg *m;
        while ((m = mp_actor_pop(a)) != NULL)
            fail_msg(n, m, MP_EUNAVAIL, "node shutting down");
    }
    if (n->transport) {
        uint64_t now = mp_env_now(n->env);
        uint64_t left = n->shutdown_deadline > now ? n->shutdown_deadline - now : 0;
        mp_transport_close(n->transport, left, transport_closed, n);
    } else {
        /* Defer so the caller's stack unwinds before the memory goes. */
        if (mp_env_timer_start(n->env, 0, transport_closed, n) == 0)
            mp_env_log(n->env, MP_LOG_ERROR, "node: shutdown stalled (no timer)");
    }
}

static void check_shutdown_done(mp_node *n)
{
    if (!n->closing || n->transport_closing) return;
    if (mp_catalog_count(&n->catalog) == 0) shutdown_finish(n);
}

static void shutdown_deadline_cb(void *ud)
{
    mp_node *n = ud;
    n->shutdown_timer = 0;
    shutdown_finish(n);
}

static void shutdown_start(void *ud)
{
    mp_node *n = ud;
    mp_list_node *ln, *tmp;
    MP_LIST_FOREACH_SAFE(ln, tmp, &n->catalog.list)
    {
        mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
        if (a->state == MP_ACT_VALID) {
            a->deactivate_requested = true;
            a->deact_reason = MP_DEACTIVATE_SHUTDOWN;
            mp_actor_schedule(a);
        }
    }
    check_shutdown_done(n);
}

void mp_node_shutdown(mp_node *n, uint64_t deadline_ns, void (*cb)(void *ud),
                      void *ud)
{
    if (!n || n->closing) return;
    n->closing = true;
    n->shutdown_cb = cb;
    n->shutdown_ud = ud;
    n->shutdown_deadline = mp_env_now(n->env) + deadline_ns;
    if (n->load_timer) mp_env_timer_cancel(n->env, n->load_timer);
    if (n->sweep_timer) mp_env_timer_cancel(n->env, n->sweep_timer);
    n->load_timer = n->sweep_timer = 0;
    n->shutdown_timer = mp_env_timer_start(n->env, deadline_ns, shutdown_deadline_cb, n);
    /* Hooks run from a loop callback, not inside this call. */
    if (mp_env_timer_start(n->env, 0, shutdown_start, n) == 0) shutdown_start(n);
}

/* ---- accessors ---- */

mp_env *mp_node_env(mp_node *n) { return n->env; }
const char *mp_node_addr(const mp_node *n) { return n->self_addr; }
const char *mp_node_namespace(const mp_node *n) { return n->ns; }

void mp_node_get_stats(mp_node *n, mp_node_stats *out)
{
    *out = n->stats;
    out->activations = mp_catalog_count(&n->catalog);
    out->replies_late = n->calls.late;
    out->timeouts = n->calls.timeouts;
    out->pending_calls = mp_calls_pending(&n->calls);
}

/* A percentile of the persist latency histogram, in ms (the upper bound
 * of the bucket holding it), or -1 when nothing was persisted. */
static double persist_pct_ms(const mp_node *n, double q)
{
    if (!n->persist_count) return -1;
    uint64_t want = (uint64_t)((double)n->persist_count * q);
    if (want >= n->persist_count) want = n->persist_count - 1;
    uint64_t seen = 0;
    for (int i = 0; i < MP_PERSIST_BUCKETS; i++) {
        seen += n->persist_hist[i];
        if (seen > want) return (double)(2ull << i) / 1000.0;
    }
    return (double)(2ull << (MP_PERSIST_BUCKETS - 1)) / 1000.0;
}

char *mp_node_stats_json(mp_node *n, size_t *len)
{
    if (len) *len = 0;
    if (!n) return NULL;
    mp_node_stats st;
    mp_node_get_stats(n, &st);
    json_t *o = json_object();
    json_t *types = json_object();
    if (!o || !types) {
        json_decref(o);
        json_decref(types);
        return NULL;
    }
    int bad = 0;
#define SET_U(f) bad |= json_object_set_new(o, #f, json_integer((json_int_t)st.f))
    SET_U(activations);
    SET_U(activations_total);
    SET_U(deactivations_total);
    SET_U(calls_out);
    SET_U(calls_in);
    SET_U(replies_late);
    SET_U(timeouts);
    SET_U(forwards);
    SET_U(cache_updates);
    SET_U(errors_sent);
    SET_U(mailbox_depth_total);
    SET_U(mailbox_depth_max);
    SET_U(pending_calls);
    SET_U(dir_lookups);
    SET_U(placements);
    SET_U(state_loads);
    SET_U(state_load_errors);
    SET_U(persists);
    SET_U(persist_errors);
    SET_U(activation_failures);
#undef SET_U
    bad |= json_object_set_new(o, "addr", json_string(n->self_addr));
    bad |= json_object_set_new(o, "namespace", json_string(n->ns));
    bad |= json_object_set_new(o, "incarnation", json_integer(n->incarnation));
    bad |= json_object_set_new(o, "client_only", json_boolean(n->client_only));
    bad |= json_object_set_new(o, "members", json_integer((json_int_t)n->dir.n));
    for (size_t i = 0; i < n->type_count; i++) {
        json_int_t c = 0;
        mp_list_node *ln, *tmp;
        MP_LIST_FOREACH_SAFE(ln, tmp, &n->catalog.list)
        {
            mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
            if (a->type == n->types[i].type) c++;
        }
        bad |= json_object_set_new(types, n->types[i].type->name, json_integer(c));
    }
    bad |= json_object_set_new(o, "types", types);
    double p50 = persist_pct_ms(n, 0.5), p99 = persist_pct_ms(n, 0.99);
    bad |= json_object_set_new(o, "persist_p50_ms", p50 < 0 ? json_null() : json_real(p50));
    bad |= json_object_set_new(o, "persist_p99_ms", p99 < 0 ? json_null() : json_real(p99));
    char *text = bad ? NULL : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (text && len) *len = strlen(text);
    return text;
}

int mp_node_request_stats(mp_node *n, const char *member_addr, mp_reply_cb cb,
                          void *ud)
{
    if (!n || !member_addr || !cb) return MP_EINVAL;
    if (n->closing || !n->started) return MP_ECLOSED;
    if (strcmp(member_addr, n->self_addr) == 0) {
        /* Our own counters: the same path as a local call's reply, so cb
         * runs from the drain, never inside this call. */
        size_t len = 0;
        char *json = mp_node_stats_json(n, &len);
        if (!json) return MP_ENOMEM;
        mp_msg *m = mp_msg_alloc(n);
        int rc = m ? mp_calls_add(&n->calls, n->call_timeout_ns, cb, ud, &m->corr)
                   : MP_ENOMEM;
        if (rc < 0) {
            if (m) mp_msg_release(n, m);
            free(json);
            return rc;
        }
        m->origin = MP_ORIGIN_LOCAL;
        mp_node_finish(n, m, 0, json, len);
        free(json);
        return MP_OK;
    }
    int idx = mp_dir_member(&n->dir, member_addr, strlen(member_addr));
    if (idx < 0) return MP_EINVAL;
    mp_frame f;
    frame_init(&f, MP_FRAME_SYSTEM);
    f.method = mp_bytes_str(MP_SYS_STATS);
    f.ttl_ms = (uint32_t)(n->call_timeout_ns / NS_PER_MS);
    int rc = mp_calls_add(&n->calls, n->call_timeout_ns, cb, ud, &f.correlation_id);
    if (rc < 0) return rc;
    rc = send_frame(n, mp_dir_addr(&n->dir, (size_t)idx), &f);
    if (rc < 0) {
        mp_calls_cancel(&n->calls, f.correlation_id);
        return rc;
    }
    return MP_OK;
}

void mp_node_foreach_activation(mp_node *n,
                                void (*fn)(void *ud, const mp_ref *ref),
                                void *ud)
{
    mp_list_node *ln, *tmp;
    MP_LIST_FOREACH_SAFE(ln, tmp, &n->catalog.list)
    {
        mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
        if (a->state == MP_ACT_VALID || a->state == MP_ACT_ACTIVATING) {
            mp_ref ref;
            mp_actor_fill_ref(a, &ref);
            fn(ud, &ref);
        }
    }
}
