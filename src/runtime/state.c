/*
 * Persistent actor state: load before activation, persist during turns
 * (see include/moonpool/state.h for the contract).
 *
 * Why every storage operation is a record on the node's list (mp_sop)
 * found again by (actor id, activation id): storage callbacks arrive on a
 * later loop turn, when the activation may be gone (lost a race, failed,
 * deactivated at a shutdown deadline). Looking it up by ids makes a late
 * completion harmless: it finds nothing and only frees its record. The
 * node's graceful shutdown waits for the list to drain before freeing its
 * memory (storage callbacks always come); a simulated kill frees the list
 * together with the storage provider, whose callbacks then never run.
 *
 * Why the provider's ud is a token looked up in a thread-local table, not
 * the record's address: a provider may outlive the node (one database
 * shared by many nodes: a simulated "db" process, PostgreSQL). When a node
 * is killed (mp_node_free_now) its records go at once, and a completion
 * arriving later finds no token and does nothing. A pointer would dangle;
 * keeping records alive for callbacks that may never come (a provider
 * freed with the node) would leak. Tokens only identify: nothing depends
 * on their values.
 *
 * Why the reload before a save after MP_ESTORAGE: such a failure is
 * ambiguous (the write may have landed), so the ETag we hold may be stale
 * through our own doing. The stored writer (incarnation, activation id) is
 * our fencing token: a record written by us is adopted, a record whose ETag
 * is still ours means the write did not land, anything else is somebody
 * else's write and a conflict. Without the reload every persist after an
 * ambiguous failure would conflict forever, and adopting blindly would let
 * a stale activation overwrite a winner.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor/state_codec.h"
#include "moonpool/buggify.h"
#include "runtime/runtime.h"

/* state.h without codec.h: the runtime's wire header has its own mp_bytes,
 * so codec calls go through state_codec.c. */
bool mp_state_available(const mp_actor *self);
void *mp_state_get(mp_actor *self);
void mp_state_set(mp_actor *self, void *value);
uint64_t mp_state_etag(const mp_actor *self);
int mp_state_persist(mp_actor *self, void (*cb)(void *ud, int status),
                     void *ud);

static const void *codec_of(const mp_actor *a)
{
    return mp_state_codec_of(a->type->state);
}

bool mp_state_available(const mp_actor *self)
{
    return self && self->type->state && self->node->storage;
}

void *mp_state_get(mp_actor *self) { return self ? self->state_value : NULL; }

void mp_state_set(mp_actor *self, void *value)
{
    if (!self) return;
    if (self->state_value && self->state_value != value)
        mp_state_codec_free(codec_of(self), self->state_value);
    self->state_value = value;
}

uint64_t mp_state_etag(const mp_actor *self) { return self ? self->etag : 0; }

void mp_state_drop(mp_actor *a)
{
    if (a->state_value) mp_state_codec_free(codec_of(a), a->state_value);
    a->state_value = NULL;
}

/* ---- operation records ---- */

static __thread mp_map_u64 *g_sops; /* token -> mp_sop (this thread's nodes) */
static __thread uint64_t g_next_token;

static void *token_ud(const mp_sop *op) { return (void *)(uintptr_t)op->token; }

/* The record of a completion, or NULL if its node forgot it. */
static mp_sop *sop_of(void *ud)
{
    return g_sops ? mp_map_u64_get(g_sops, (uint64_t)(uintptr_t)ud) : NULL;
}

/* Returns MP_OK and *out, MP_ENOMEM, or MP_EINVAL when the actor's storage
 * key is longer than MP_STORAGE_KEY_MAX once escaped (a long key full of
 * bytes that escape to three each): never mistaken for lack of memory. */
static int sop_new(mp_node *n, mp_actor *a, uint8_t kind, mp_sop **out)
{
    *out = NULL;
    mp_sop *op = calloc(1, sizeof *op);
    if (!op) return MP_ENOMEM;
    op->node = n;
    mp_actor_fill_ref(a, &op->ref);
    op->act_id = a->act_id;
    op->kind = kind;
    op->started = mp_env_now(n->env);
    /* The key is built from the id's parts; ns and type are identifiers
     * already, the key is escaped by mp_storage_key. */
    char type[MP_ACTOR_PART_MAX + 1], key[MP_ACTOR_ID_MAX + 1];
    memcpy(type, op->ref.id + op->ref.type_off, op->ref.type_len);
    type[op->ref.type_len] = '\0';
    memcpy(key, op->ref.id + op->ref.key_off, op->ref.key_len);
    key[op->ref.key_len] = '\0';
    int len = mp_storage_key(op->key, sizeof op->key, n->ns, type, key);
    if (len < 0) {
        free(op);
        return len == MP_ENOMEM ? MP_ENOMEM : MP_EINVAL;
    }
    op->key_len = (size_t)len;
    if (!g_sops) {
        g_sops = malloc(sizeof *g_sops);
        if (!g_sops || mp_map_u64_init(g_sops, 16) != MP_OK) {
            free(g_sops);
            g_sops = NULL;
            free(op);
            return MP_ENOMEM;
        }
    }
    /* uintptr_t may be 32 bits: tokens stay below its range */
    op->token = ++g_next_token & (uint64_t)(UINTPTR_MAX >> 1);
    if (op->token == 0) op->token = g_next_token = 1;
    if (mp_map_u64_put(g_sops, op->token, op, NULL) != MP_OK) {
        free(op);
        return MP_ENOMEM;
    }
    mp_list_node_init(&op->link);
    mp_list_push_back(&n->sops, &op->link);
    *out = op;
    return MP_OK;
}

static void sop_free(mp_sop *op)
{
    mp_map_u64_remove(g_sops, op->token);
    if (mp_map_u64_count(g_sops) == 0) { /* nothing left on this thread */
        mp_map_u64_free(g_sops);
        free(g_sops);
        g_sops = NULL;
    }
    mp_list_remove(&op->link);
    free(op->data);
    free(op);
}

void mp_state_node_free(mp_node *n)
{
    mp_list_node *ln;
    while ((ln = mp_list_front(&n->sops)) != NULL)
        sop_free(MP_CONTAINER_OF(ln, mp_sop, link));
}

/* The activation an operation was for, if it still exists. */
static mp_actor *sop_actor(mp_sop *op)
{
    mp_node *n = op->node;
    if (n->freed) return NULL;
    mp_actor *a = mp_catalog_get(&n->catalog, op->ref.id, op->ref.len);
    return a && a->act_id == op->act_id ? a : NULL;
}

/* Free the record; true if the node went away with it (shutdown done). */
static bool sop_finish(mp_sop *op)
{
    mp_node *n = op->node;
    sop_free(op);
    return mp__sop_done(n);
}

/* ---- load ---- */

static void load_finish(mp_sop *op, int status, const mp_storage_record *rec);

/* A load completion handed over late (buggify): op->data holds the header
 * below then the record's bytes; the timer's ud is the token, so a node
 * killed meanwhile leaves nothing to free or to touch. */
typedef struct delayed_load {
    int status;
    uint64_t etag;
    size_t len;
} delayed_load;

static void load_delayed_fire(void *ud)
{
    mp_sop *op = sop_of(ud);
    if (!op || !op->data) return; /* its node was killed */
    delayed_load h;
    memcpy(&h, op->data, sizeof h);
    mp_storage_record rec;
    memset(&rec, 0, sizeof rec);
    rec.etag = h.etag;
    rec.len = h.len;
    rec.data = h.len ? (const char *)op->data + sizeof h : NULL;
    MP_SOMETIMES(true, "actor.load_delayed");
    load_finish(op, h.status, &rec);
}

static void load_cb(void *ud, int status, const mp_storage_record *rec)
{
    mp_sop *op = sop_of(ud);
    if (!op) return; /* its node was killed */
    if (!op->data && MP_BUGGIFY_P(0.2)) {
        /* The storage answered, but the activation hears of it a little
         * later: whatever happens to it meanwhile (a shutdown, a lost
         * race, a kill) meets a load still in flight. */
        size_t len = status < 0 ? 0 : rec->len;
        delayed_load h = {status, status < 0 ? 0 : rec->etag, len};
        char *buf = malloc(sizeof h + len + 1);
        if (buf) {
            memcpy(buf, &h, sizeof h);
            if (len) memcpy(buf + sizeof h, rec->data, len);
            op->data = buf;
            mp_node *n = op->node;
            if (mp_env_timer_start(
                    n->env, mp_env_random_below(n->env, 20 * MP_NS_PER_MS) + 1,
                    load_delayed_fire, ud))
                return;
            free(buf);
            op->data = NULL;
        }
    }
    load_finish(op, status, rec);
}

static void load_finish(mp_sop *op, int status, const mp_storage_record *rec)
{
    mp_node *n = op->node;
    mp_actor *a = sop_actor(op);
    if (!a || a->state != MP_ACT_ACTIVATING || !a->loading) {
        sop_finish(op);
        return;
    }
    a->loading = false;
    n->stats.state_loads++;
    char why[MP_STATE_ERR_MAX + 96];
    why[0] = '\0';
    if (status < 0) {
        snprintf(why, sizeof why, "activation failed: state load: %s (%s)",
                 mp_strerror(status), mp_status_name(status));
    } else if (rec->etag == 0) {
        a->etag = 0; /* a new actor: no state yet */
    } else {
        void *v = NULL;
        char err[MP_STATE_ERR_MAX];
        int rc = mp_state_codec_decode(codec_of(a), rec->data, rec->len, &v,
                                       err, sizeof err);
        if (rc < 0) {
            snprintf(why, sizeof why,
                     "activation failed: stored state does not decode (%s): %s",
                     mp_status_name(rc), err);
        } else {
            mp_state_set(a, v);
            a->etag = rec->etag;
        }
    }
    if (why[0]) {
        MP_SOMETIMES(true, "actor.state_load_failed");
        n->stats.state_load_errors++;
        if (!sop_finish(op)) mp__activation_failed(n, a, why);
        return;
    }
    a->state_loaded = true;
    mp_actor_schedule(a); /* on_activate runs from the drain */
    sop_finish(op);
}

int mp_state_load_start(mp_node *n, mp_actor *a)
{
    assert(a->state == MP_ACT_ACTIVATING && !a->loading);
    if (!a->type->state || !n->storage) {
        a->state_loaded = true;
        return MP_OK;
    }
    mp_sop *op;
    int nrc = sop_new(n, a, MP_SOP_LOAD, &op);
    if (nrc < 0) return nrc;
    int rc = mp_storage_load_record(n->storage, op->key, op->key_len, load_cb,
                                    token_ud(op));
    if (rc < 0) {
        sop_free(op);
        return rc;
    }
    a->loading = true;
    return MP_OK;
}

/* ---- persist ---- */

static void save_cb(void *ud, int status, uint64_t new_etag);
static void clear_cb(void *ud, int status) { save_cb(ud, status, 0); }

/* Complete a persist: bookkeeping on the activation, then the actor's
 * callback (if the activation is still there to receive it). */
static void persist_done(mp_sop *op, int status, uint64_t new_etag)
{
    mp_node *n = op->node;
    mp_actor *a = sop_actor(op);
    mp__note_persist(n, mp_env_now(n->env) - op->started, status);
    void (*cb)(void *, int) = op->cb;
    void *ud = op->ud;
    if (sop_finish(op)) return; /* the node is gone (shutdown) */
    if (!a || !a->persisting) return;
    a->persisting = false;
    if (status == 0) {
        a->etag = new_etag;
        a->etag_unsure = false;
    } else if (status == MP_ECONFLICT) {
        /* Someone else committed after our load: this activation is stale
         * and must not keep serving from its memory. */
        MP_SOMETIMES(true, "actor.persist_conflict");
        if (a->state == MP_ACT_VALID && !a->deactivate_requested) {
            a->deactivate_requested = true;
            a->deact_reason = MP_DEACTIVATE_EXPLICIT;
        }
    } else {
        MP_SOMETIMES(true, "actor.persist_failed");
        a->etag_unsure = true;
    }
    /* Past a shutdown's deadline the hooks ran already: no more user code
     * for this activation. */
    if (!a->activated) return;
    cb(ud, status);
}

static void save_cb(void *ud, int status, uint64_t new_etag)
{
    mp_sop *op = sop_of(ud);
    if (op) persist_done(op, status, new_etag);
}

static int issue_save(mp_node *n, mp_actor *a, mp_sop *op)
{
    op->kind = MP_SOP_SAVE;
    if (op->clear)
        return mp_storage_clear(n->storage, op->key, op->key_len, a->etag,
                                clear_cb, token_ud(op));
    mp_storage_writer w = {n->incarnation, a->act_id};
    return mp_storage_save(n->storage, op->key, op->key_len, op->data,
                           op->len, a->etag, &w, save_cb, token_ud(op));
}

static void reload_cb(void *ud, int status, const mp_storage_record *rec)
{
    mp_sop *op = sop_of(ud);
    if (!op) return;
    mp_node *n = op->node;
    mp_actor *a = sop_actor(op);
    if (!a || !a->persisting || n->closing) {
        persist_done(op, status < 0 ? status : MP_ECLOSED, 0);
        return;
    }
    if (status < 0) {
        persist_done(op, status, 0);
        return;
    }
    bool ours = rec->etag != 0 && rec->writer.incarnation == n->incarnation &&
                rec->writer.activation == a->act_id;
    if (rec->etag == a->etag) {
        MP_SOMETIMES(true, "actor.persist_reload_not_applied");
    } else if (ours) {
        MP_SOMETIMES(true, "actor.persist_reload_applied");
        a->etag = rec->etag;
    } else if (rec->etag == 0 && op->clear) {
        a->etag = 0; /* our clear landed (a clear leaves no writer) */
    } else {
        persist_done(op, MP_ECONFLICT, 0);
        return;
    }
    a->etag_unsure = false;
    int rc = issue_save(n, a, op);
    if (rc < 0) persist_done(op, rc, 0);
}

int mp_state_persist(mp_actor *self, void (*cb)(void *ud, int status),
                     void *ud)
{
    if (!self || !cb || !mp_state_available(self)) return MP_EINVAL;
    mp_node *n = self->node;
    if (self->state != MP_ACT_VALID || !self->activated) return MP_EINVAL;
    if (self->persisting) return MP_EBUSY;
    if (!mp__members_serving_now(n)) {
        MP_SOMETIMES(true, "actor.persist_refused_no_lease");
        return MP_EUNAVAIL;
    }
    mp_sop *op;
    int nrc = sop_new(n, self, MP_SOP_SAVE, &op);
    if (nrc < 0) return nrc;
    op->cb = cb;
    op->ud = ud;
    if (self->state_value) {
        char err[MP_STATE_ERR_MAX];
        int rc = mp_state_codec_encode(codec_of(self), self->state_value,
                                       &op->data, &op->len, err, sizeof err);
        if (rc < 0) {
            mp_env_log(n->env, MP_LOG_WARN, "state of %s does not encode: %s",
                       self->id, err);
            sop_free(op);
            return rc;
        }
    } else {
        op->clear = true;
    }
    int rc;
    if (self->etag_unsure) {
        op->kind = MP_SOP_RELOAD;
        rc = mp_storage_load_record(n->storage, op->key, op->key_len, reload_cb,
                                    token_ud(op));
    } else {
        rc = issue_save(n, self, op);
    }
    if (rc < 0) {
        sop_free(op);
        return rc;
    }
    self->persisting = true;
    return MP_OK;
}
