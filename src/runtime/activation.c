/*
 * Activations, mailboxes, turns and the reply handle (see activation.h).
 *
 * Why turns never run inside the call that causes them: mp_call, mp_reply and
 * frame arrival only queue work (a message in a mailbox, an activation in the
 * node's run queue); one deferred drain runs it. A handler that replies at
 * once therefore never recurses into the next message, and a caller's
 * callback never runs inside its own mp_call. The drain is a loop, so a long
 * mailbox is processed iteratively with constant stack.
 *
 * Messages come from a per-node free list; payloads up to MP_MSG_INLINE bytes
 * live in the message itself, so the local call path allocates nothing in
 * steady state.
 */
#include "runtime/activation.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "util/alloc.h"
#include "runtime/runtime.h"

#define MSG_FREE_MAX 4096

const char *mp_act_state_name(mp_act_state s)
{
    switch (s) {
    case MP_ACT_CREATING: return "creating";
    case MP_ACT_ACTIVATING: return "activating";
    case MP_ACT_VALID: return "valid";
    case MP_ACT_DEACTIVATING: return "deactivating";
    case MP_ACT_INVALID: return "invalid";
    }
    return "?";
}

/* ---- messages ---- */

mp_msg *mp_msg_alloc(mp_node *n)
{
    mp_msg *m = n->msg_free;
    if (m) {
        n->msg_free = m->next_free;
        n->msg_free_count--;
    } else {
        m = malloc(sizeof *m);
        if (!m) return NULL;
    }
    /* Only the header is reset: the big buffers (ids, inline payloads) are
     * written before they are read. */
    memset(m, 0, offsetof(mp_msg, peer));
    mp_list_node_init(&m->work.link);
    mp_list_node_init(&m->link);
    m->work.kind = MP_WORK_REPLY;
    m->node = n;
    m->peer[0] = '\0';
    m->mdef = NULL;
    m->sender_len = 0;
    m->method_len = 0;
    m->method[0] = '\0';
    m->data = m->ibuf;
    m->len = 0;
    m->cap = MP_MSG_INLINE;
    m->status = 0;
    m->rdata = m->rbuf;
    m->rlen = 0;
    m->rcap = MP_MSG_INLINE;
    m->delay_timer = 0;
    m->delay_kind = 0;
    return m;
}

static void msg_free_buffers(mp_msg *m)
{
    if (m->data != m->ibuf) free(m->data);
    if (m->rdata != m->rbuf) free(m->rdata);
    m->data = m->ibuf;
    m->rdata = m->rbuf;
}

void mp_msg_release(mp_node *n, mp_msg *m)
{
    if (m->in_handler) {
        m->release_pending = true; /* mp_actor_step releases it */
        return;
    }
    assert(!mp_list_node_linked(&m->link));
    assert(!mp_list_node_linked(&m->work.link));
    msg_free_buffers(m);
    if (n->msg_free_count < MSG_FREE_MAX && !n->freed) {
        m->next_free = n->msg_free;
        n->msg_free = m;
        n->msg_free_count++;
    } else {
        free(m);
    }
}

/* Copy into a message buffer (inline or heap); the source may overlap the
 * destination (a handler echoing its own payload). */
static int copy_in(uint8_t **buf, uint32_t *blen, uint32_t *cap,
                   uint8_t *inline_buf, const void *data, size_t len)
{
    if (len > UINT32_MAX) return MP_ETOOBIG;
    if (len <= *cap) {
        if (len) memmove(*buf, data, len);
        *blen = (uint32_t)len;
        return MP_OK;
    }
    uint8_t *p = malloc(len);
    if (!p) return MP_ENOMEM;
    memcpy(p, data, len);
    if (*buf != inline_buf) free(*buf);
    *buf = p;
    *blen = (uint32_t)len;
    *cap = (uint32_t)len;
    return MP_OK;
}

int mp_msg_set_payload(mp_msg *m, const void *data, size_t len)
{
    return copy_in(&m->data, &m->len, &m->cap, m->ibuf, data, len);
}

int mp_msg_set_reply(mp_msg *m, int status, const void *data, size_t len)
{
    m->status = status;
    return copy_in(&m->rdata, &m->rlen, &m->rcap, m->rbuf, data, len);
}

/* ---- activation memory (see activation.h) ---- */

#define ACT_GRAIN 16
#define ACT_CHUNK_MIN ((size_t)64 << 10)
#define ACT_CHUNK_MAX ((size_t)4 << 20)

/* Zeroed block of `size` bytes, 16-aligned. NULL on OOM. */
static void *act_mem_alloc(mp_act_mem *m, size_t size)
{
#if defined(MP_SANITIZED)
    (void)m;
    return calloc(1, size);
#else
    size_t cls = (size + ACT_GRAIN - 1) / ACT_GRAIN;
    if (cls == 0 || cls > MP_ACT_MEM_CLASSES) return calloc(1, size);
    size_t bytes = cls * ACT_GRAIN;
    void *p = m->free[cls - 1];
    if (p) {
        memcpy(&m->free[cls - 1], p, sizeof p);
        memset(p, 0, bytes);
        return p;
    }
    if ((size_t)(m->end - m->bump) < bytes) {
        size_t csz = m->next_chunk ? m->next_chunk : ACT_CHUNK_MIN;
        unsigned char *c = mp_util_calloc_table(1, csz);
        if (!c) return NULL;
        m->next_chunk = csz < ACT_CHUNK_MAX ? csz * 2 : csz;
        memcpy(c, &m->chunks, sizeof m->chunks); /* first word: the link */
        m->chunks = c;
        m->bump = c + ACT_GRAIN;
        m->end = c + csz;
    }
    p = m->bump; /* fresh chunk memory is zeroed */
    m->bump += bytes;
    return p;
#endif
}

static void act_mem_free(mp_act_mem *m, void *p, size_t size)
{
#if defined(MP_SANITIZED)
    (void)m;
    (void)size;
    free(p);
#else
    size_t cls = (size + ACT_GRAIN - 1) / ACT_GRAIN;
    if (cls == 0 || cls > MP_ACT_MEM_CLASSES) {
        free(p);
        return;
    }
    memcpy(p, &m->free[cls - 1], sizeof m->free[0]);
    m->free[cls - 1] = p;
#endif
}

void mp_act_mem_release(mp_act_mem *m)
{
    void *c = m->chunks;
    while (c) {
        void *next;
        memcpy(&next, c, sizeof next);
        free(c);
        c = next;
    }
    memset(m, 0, sizeof *m);
}

/* ---- activations ---- */

/* Header, id, instance in one block (activation.h). The instance starts
 * 16-aligned, like calloc'd memory, whatever it holds. 0 if too large. */
static size_t actor_size(const mp_actor_type *type, size_t id_len,
                         size_t *inst_off)
{
    *inst_off = (offsetof(mp_actor, id) + id_len + 1 + 15) & ~(size_t)15;
    if (!type->instance_size) return offsetof(mp_actor, id) + id_len + 1;
    if (type->instance_size > SIZE_MAX - *inst_off) return 0;
    return *inst_off + type->instance_size;
}

mp_actor *mp_actor_new(mp_node *n, const mp_actor_type *type,
                       const mp_ref *ref, uint64_t act_id)
{
    size_t inst_off;
    size_t total = actor_size(type, ref->len, &inst_off);
    if (!total) return NULL;
    /* The id's offsets fit the narrow fields: mp_ref_init/parse bound the
     * namespace and type to MP_ACTOR_PART_MAX. */
    if (ref->type_off > UINT8_MAX || ref->type_len > UINT8_MAX) return NULL;
    mp_actor *a = act_mem_alloc(&n->act_mem, total);
    if (!a) return NULL;
    if (type->instance_size) a->instance = (char *)a + inst_off;
    mp_list_node_init(&a->work.link);
    a->work.kind = MP_WORK_ACTOR;
    mp_list_node_init(&a->cat_link);
    mp_list_init(&a->mailbox);
    a->node = n;
    a->type = type;
    memcpy(a->id, ref->id, ref->len);
    a->id[ref->len] = '\0';
    a->len = ref->len;
    a->type_off = (uint8_t)ref->type_off;
    a->type_len = (uint8_t)ref->type_len;
    a->hash = ref->hash;
    a->act_id = act_id;
    a->state = MP_ACT_CREATING;
    return a;
}

void mp_actor_delete(mp_actor *a)
{
    assert(mp_list_empty(&a->mailbox));
    assert(!mp_list_node_linked(&a->work.link));
    assert(!mp_list_node_linked(&a->cat_link));
    /* S9: on_deactivate is owed to every activation whose on_activate
     * succeeded, except when its process dies. */
    MP_ALWAYS(!a->activated || a->node->killing, "actor.deactivate_hook_ran");
    if (a->type->release) a->type->release(a->instance);
    mp_state_drop(a);
    mp__idem_free(a);
    if (a->has_pub_ref)
        free(mp_map_u64_remove(&a->node->pub_refs, a->act_id));
    size_t inst_off;
    act_mem_free(&a->node->act_mem, a, actor_size(a->type, a->len, &inst_off));
}

static bool legal(mp_act_state from, mp_act_state to)
{
    switch (from) {
    case MP_ACT_CREATING:
        return to == MP_ACT_ACTIVATING || to == MP_ACT_INVALID;
    case MP_ACT_ACTIVATING:
        return to == MP_ACT_VALID || to == MP_ACT_INVALID;
    case MP_ACT_VALID: return to == MP_ACT_DEACTIVATING;
    case MP_ACT_DEACTIVATING: return to == MP_ACT_INVALID;
    case MP_ACT_INVALID: return false;
    }
    return false;
}

bool mp_actor_set_state(mp_actor *a, mp_act_state to)
{
    bool ok = legal(a->state, to);
    MP_ALWAYS(ok, "actor.state_transition_legal");
    if (!ok) {
        mp_env_log(a->node->env, MP_LOG_ERROR,
                   "illegal activation transition %s -> %s for %s",
                   mp_act_state_name(a->state), mp_act_state_name(to),
                   a->id);
        return false;
    }
    a->state = to;
    return true;
}

void mp_actor_schedule(mp_actor *a)
{
    if (mp_list_node_linked(&a->work.link)) return;
    bool runnable = false;
    if (a->state == MP_ACT_ACTIVATING) {
        runnable = !a->loading; /* the load's completion reschedules */
    } else if (a->state == MP_ACT_VALID && !a->current) {
        runnable = a->deactivate_requested || !mp_list_empty(&a->mailbox);
    }
    if (runnable) mp__runq_push(a->node, &a->work);
}

void mp_actor_enqueue(mp_actor *a, mp_msg *m)
{
    mp_node *n = a->node;
    assert(a->state != MP_ACT_INVALID);
    mp_list_push_back(&a->mailbox, &m->link);
    a->depth++;
    n->stats.mailbox_depth_total++;
    if (a->depth > n->stats.mailbox_depth_max)
        n->stats.mailbox_depth_max = a->depth;
    if (n->mailbox_warn_depth && a->depth >= n->mailbox_warn_depth &&
        !a->depth_warned) {
        a->depth_warned = true;
        if (n->on_mailbox_depth) {
            mp_ref ref;
            mp_actor_fill_ref(a, &ref);
            n->on_mailbox_depth(n->hook_ud, &ref, a->depth);
        }
    }
    mp_actor_schedule(a);
}

mp_msg *mp_actor_pop(mp_actor *a)
{
    mp_list_node *ln = mp_list_pop_front(&a->mailbox);
    if (!ln) return NULL;
    mp_node *n = a->node;
    assert(a->depth > 0 && n->stats.mailbox_depth_total > 0);
    a->depth--;
    n->stats.mailbox_depth_total--;
    if (a->depth_warned && a->depth < n->mailbox_warn_depth)
        a->depth_warned = false; /* re-arm: the hook fires once per crossing */
    return MP_CONTAINER_OF(ln, mp_msg, link);
}

const mp_method_def *mp_actor_type_method(const mp_actor_type *t,
                                          const char *name, size_t len)
{
    /* Inline compare, not strncmp: this runs once per delivered message and
     * the libc call was 7% of a local call. name holds no NUL within len
     * (both callers validate that), so a mismatch at mn's terminator ends the
     * compare before reading past it. */
    for (size_t i = 0; i < t->method_count; i++) {
        const char *mn = t->methods[i].name;
        if (!mn) continue;
        size_t k = 0;
        while (k < len && mn[k] == name[k]) k++;
        if (k == len && mn[len] == '\0') return &t->methods[i];
    }
    return NULL;
}

void mp_actor_step(mp_actor *a)
{
    mp_node *n = a->node;
    switch (a->state) {
    case MP_ACT_ACTIVATING:
        if (!mp__members_serving(n)) {
            mp__activation_refused(n, a, "node not serving (no valid membership lease); not executed");
            return;
        }
        mp__activate(n, a);
        return;
    case MP_ACT_VALID:
        break;
    default:
        return;
    }
    MP_ALWAYS(a->current == NULL, "actor.one_turn_at_a_time");
    if (a->current) return;
    if (a->deactivate_requested) {
        mp__deactivate(n, a, a->deact_reason);
        return;
    }
    if (!mp__members_serving(n)) {
        /* The lease lapsed after this activation was asked to go: its
         * deactivation is requested above; nothing more runs here. */
        mp__deactivate(n, a, MP_DEACTIVATE_LEASE);
        return;
    }
    mp_msg *m = mp_actor_pop(a);
    if (!m) return;
    /* The drain's start time: a request whose TTL ran out during this very
     * drain still runs, which only errs on the side of doing the work. */
    if (m->deadline && n->drain_now >= m->deadline) {
        /* The caller has given up (or is about to): running the turn would
         * only waste it. Dropped, not answered: the caller's own timeout
         * reports it. */
        MP_SOMETIMES(true, "actor.ttl_expired_drop");
        mp_msg_release(n, m);
        mp_actor_schedule(a);
        return;
    }
    if (m->key_len && mp__idem_replay(n, a, m)) {
        mp_actor_schedule(a);
        return;
    }
    int admit = mp__rid_admit(n, m);
    if (admit != MP_OK) {
        mp__fail_msg(n, m, admit, admit == MP_EALREADY
                                      ? "this request already ran here; its reply was not kept"
                                      : mp_strerror(admit));
        mp_actor_schedule(a);
        return;
    }
    assert(m->mdef);
    a->current = m;
    m->actor = a;
    n->stats.calls_in++;
    /* After current is set: the copy waits in the mailbox for this turn. */
    if (m->rid_seq && m->remote_in && !m->ghost && MP_BUGGIFY_P(0.05)) mp__rid_ghost(n, a, m);
    /* The payload must outlive the handler even if it replies first (and
     * the reply goes out, releasing the message): mp_msg_release defers while in_handler. */
    m->in_handler = true;
    m->mdef->fn(a, a->instance, m, m->data, m->len);
    m->in_handler = false;
    if (m->release_pending) mp_msg_release(n, m);
}

/* ---- inside a handler ---- */

static void end_turn(mp_msg *msg, int status, const void *data, size_t len)
{
    MP_ALWAYS(!msg->replied, "actor.reply_once");
    if (msg->replied) return;
    msg->replied = true;
    mp_actor *a = msg->actor;
    mp_node *n = msg->node;
    if (a) {
        MP_ALWAYS(a->current == msg, "actor.reply_matches_turn");
        a->current = NULL;
        if (msg->key_len) mp__idem_record(n, a, msg, status, data, len);
    }
    mp__finish(n, msg, status, data, len); /* msg may be gone now */
    if (a) mp__turn_ended(n, a);
}

void mp_reply(mp_msg *msg, const void *data, size_t len)
{
    if (!msg) return;
    if (!data) len = 0;
    end_turn(msg, 0, data, len);
}

void mp_reply_error(mp_msg *msg, int status, const char *message)
{
    if (!msg) return;
    if (status >= 0 || status < MP_STATUS_MIN_) status = MP_EACTOR;
    size_t len = message ? strnlen(message, 1024) : 0;
    msg->node->stats.errors_sent++;
    if (mp__client_retryable(status)) {
        /* The handler ran, so its error may not say "not taken": a
         * client-only caller would send the request to another gateway,
         * where it would run again. MP_EACTOR, the status named in the
         * message. */
        char text[1100];
        int tl = snprintf(text, sizeof text, "%s: %.*s", mp_status_name(status), (int)len,
                          message ? message : "");
        end_turn(msg, MP_EACTOR, text, tl < 0 ? 0 : strnlen(text, sizeof text));
        return;
    }
    end_turn(msg, status, message, len);
}

bool mp_msg_wants_reply(const mp_msg *msg)
{
    return msg && msg->origin != MP_ORIGIN_NONE;
}

const char *mp_msg_method(const mp_msg *msg) { return msg ? msg->method : ""; }

/* The activation stores its id compactly (activation.h); the mp_ref a
 * handler asks for is built once and kept by the node (keyed by act_id,
 * unique on the node) until the activation is freed, so the pointer stays
 * valid for the activation's life, as before. Out of memory, the node's
 * scratch copy is returned instead: valid until the next such failure. */
const mp_ref *mp_actor_ref(const mp_actor *self)
{
    mp_node *n = self->node;
    if (self->has_pub_ref) {
        mp_ref *r = mp_map_u64_get(&n->pub_refs, self->act_id);
        if (r) return r;
    }
    mp_ref *r = malloc(sizeof *r);
    if (r && mp_map_u64_put(&n->pub_refs, self->act_id, r, NULL) != MP_OK) {
        free(r);
        r = NULL;
    }
    if (!r) r = &n->ref_scratch;
    mp_actor_fill_ref(self, r);
    /* The flag is bookkeeping of the node's table, not of the activation's
     * observable state: writable through the const handle. */
    if (r != &n->ref_scratch) ((mp_actor *)self)->has_pub_ref = true;
    return r;
}

mp_node *mp_actor_node(mp_actor *self) { return self->node; }

mp_env *mp_actor_env(mp_actor *self) { return self->node->env; }

void mp_actor_deactivate(mp_actor *self)
{
    if (!self || self->state != MP_ACT_VALID) return;
    if (!self->deactivate_requested) {
        self->deactivate_requested = true;
        self->deact_reason = MP_DEACTIVATE_EXPLICIT;
    }
    mp_actor_schedule(self);
}
