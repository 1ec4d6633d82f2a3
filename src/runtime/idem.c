/*
 * Idempotency keys: exactly once for callers that retry.
 *
 * The runtime itself never sends a request twice (node.h, "At most once"),
 * so a call that ends MP_EINDOUBT or MP_ETIMEDOUT may have run once or not
 * at all. A caller that must know retries it with the same idempotency key
 * (mp_call_opts.idempotency_key). The key travels with the request
 * unchanged through forwards and a client-only node's fail-over; the
 * activation that runs a keyed request remembers the key with the reply it
 * gave, and a later request with that key is answered from there without a
 * turn: the first reply, not a second execution.
 *
 * Why in the activation: it is the one place every copy of a request for
 * one actor must pass, one turn at a time, so a duplicate can never race
 * its original (the original has replied before the duplicate's turn
 * starts). The memory is bounded per activation
 * (MP_IDEMPOTENCY_KEYS_PER_ACTIVATION entries, replies up to
 * MP_IDEMPOTENCY_REPLY_MAX_BYTES, each kept MP_IDEMPOTENCY_WINDOW_NS) and
 * only keyed calls use it, so unkeyed calls pay one branch.
 *
 * The window ends early when the activation goes (idle deactivation, a
 * crash of its node): a retry then runs again. node.h states the window.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "runtime/runtime.h"

typedef struct mp_idem_entry {
    uint64_t expires; /* env time; past it the key is forgotten */
    int32_t status;
    uint32_t rlen;
    uint8_t *reply;  /* NULL: none kept (rlen 0, or too large) */
    bool kept;       /* reply (even empty) is the one given */
    uint8_t klen;
    char key[MP_IDEMPOTENCY_KEY_MAX];
} mp_idem_entry;

/* A ring in recording order: the oldest entry is the first to go. */
struct mp_idem {
    uint32_t head, count;
    mp_idem_entry e[MP_IDEMPOTENCY_KEYS_PER_ACTIVATION];
};

static mp_idem_entry *find(struct mp_idem *c, const char *key, uint8_t klen,
                           uint64_t now)
{
    for (uint32_t i = 0; i < c->count; i++) {
        mp_idem_entry *e = &c->e[(c->head + i) % MP_IDEMPOTENCY_KEYS_PER_ACTIVATION];
        if (e->expires > now && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    }
    return NULL;
}

static void drop_oldest(struct mp_idem *c)
{
    assert(c->count > 0);
    mp_idem_entry *e = &c->e[c->head];
    free(e->reply);
    memset(e, 0, sizeof *e);
    c->head = (c->head + 1) % MP_IDEMPOTENCY_KEYS_PER_ACTIVATION;
    c->count--;
}

bool mp__idem_replay(mp_node *n, mp_actor *a, mp_msg *m)
{
    assert(m->key_len > 0 && m->key_len <= MP_IDEMPOTENCY_KEY_MAX);
    if (!a->idem) return false;
    mp_idem_entry *e = find(a->idem, m->key, m->key_len, n->drain_now);
    if (!e) return false;
    MP_SOMETIMES(true, "actor.idempotent_replay");
    if (e->kept) {
        mp__finish(n, m, e->status, e->reply, e->rlen);
    } else {
        static const char gone[] = "this idempotency key already ran; its reply was not kept";
        mp__finish(n, m, MP_EALREADY, gone, sizeof gone - 1);
    }
    return true;
}

void mp__idem_record(mp_node *n, mp_actor *a, const mp_msg *m, int status,
                     const void *data, size_t len)
{
    assert(m->key_len > 0 && m->key_len <= MP_IDEMPOTENCY_KEY_MAX);
    if (!a->idem) {
        a->idem = calloc(1, sizeof *a->idem);
        if (!a->idem) return; /* a retry would run again: logged below */
    }
    struct mp_idem *c = a->idem;
    uint64_t now = mp_env_now(n->env);
    /* Forget what expired (from the oldest), then make room. */
    while (c->count && c->e[c->head].expires <= now) drop_oldest(c);
    if (c->count == MP_IDEMPOTENCY_KEYS_PER_ACTIVATION) {
        MP_SOMETIMES(true, "actor.idempotency_key_evicted");
        mp_env_log(n->env, MP_LOG_DEBUG, "node: %s forgets an idempotency key early (%u kept)",
                   a->id, (unsigned)c->count);
        drop_oldest(c);
    }
    mp_idem_entry *e = &c->e[(c->head + c->count) % MP_IDEMPOTENCY_KEYS_PER_ACTIVATION];
    assert(!e->reply);
    e->expires = now + MP_IDEMPOTENCY_WINDOW_NS;
    e->status = status;
    e->klen = m->key_len;
    memcpy(e->key, m->key, m->key_len);
    e->kept = len <= MP_IDEMPOTENCY_REPLY_MAX_BYTES;
    if (e->kept && len) {
        e->reply = malloc(len);
        if (e->reply) {
            memcpy(e->reply, data, len);
            e->rlen = (uint32_t)len;
        } else {
            e->kept = false;
        }
    }
    c->count++;
}

void mp__idem_free(mp_actor *a)
{
    struct mp_idem *c = a->idem;
    if (!c) return;
    while (c->count) drop_oldest(c);
    free(c);
    a->idem = NULL;
}

bool mp__idem_key_ok(const char *key, size_t len)
{
    if (len == 0 || len > MP_IDEMPOTENCY_KEY_MAX) return false;
    for (size_t i = 0; i < len; i++)
        if (key[i] < '!' || key[i] > '~') return false;
    return true;
}
