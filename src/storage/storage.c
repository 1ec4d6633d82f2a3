/*
 * The provider-independent half of storage.h: argument validation, key
 * building, the single copy of the caller's key and value into an op, and
 * the completion path (callback, stats, free).
 *
 * Why validate here and not in each provider: every provider must refuse
 * the same bad input the same way (the conformance suite checks it), and a
 * provider then never sees an op it has to second-guess. Validation failures
 * return at once and run no callback, like env.h's immediate errors.
 *
 * Why one allocation per op (op + key + value): a save is the hot path of
 * persistence; one malloc and one memcpy of the value is the floor when the
 * caller may reuse its buffer as soon as the call returns.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage_internal.h"

bool mp_storage_key_valid(const char *key, size_t key_len)
{
    if (!key || key_len == 0 || key_len > MP_STORAGE_KEY_MAX) return false;
    for (size_t i = 0; i < key_len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x21 || c > 0x7E) return false;
    }
    return true;
}

static bool name_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

static bool name_valid(const char *s)
{
    if (!s || !*s) return false;
    for (const char *p = s; *p; p++)
        if (!name_char((unsigned char)*p)) return false;
    return true;
}

int mp_storage_key(char *buf, size_t cap, const char *ns, const char *type,
                   const char *key)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!buf || !name_valid(ns) || !name_valid(type) || !key || !*key)
        return MP_EINVAL;
    size_t limit = cap == 0 ? 0 : cap - 1;
    if (limit > MP_STORAGE_KEY_MAX) limit = MP_STORAGE_KEY_MAX;
    size_t n = 0;
    bool too_big = false;
#define PUT(ch)                                                               \
    do {                                                                      \
        if (n >= limit) {                                                     \
            too_big = true;                                                   \
            goto done;                                                        \
        }                                                                     \
        buf[n++] = (char)(ch);                                                \
    } while (0)
    for (const char *p = ns; *p; p++) PUT(*p);
    PUT('/');
    for (const char *p = type; *p; p++) PUT(*p);
    PUT(':');
    PUT(':');
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        /* ':' and '/' are kept readable: the key is the tail after the first
         * "::", so they cannot make two triples collide. '%' is escaped so
         * the escaping is reversible. */
        if (name_char(*p) || *p == ':' || *p == '/') {
            PUT(*p);
        } else {
            PUT('%');
            PUT(hex[*p >> 4]);
            PUT(hex[*p & 15]);
        }
    }
#undef PUT
done:
    if (too_big) {
        if (cap > 0) buf[0] = '\0';
        return MP_ETOOBIG;
    }
    buf[n] = '\0';
    assert(mp_storage_key_valid(buf, n));
    return (int)n;
}

void mp_storage_init_(mp_storage *s, const mp_storage_vtbl *vt, mp_env *env)
{
    memset(s, 0, sizeof *s);
    s->vt = vt;
    s->env = env;
}

static mp_storage_op *op_new(const char *key, size_t key_len, const void *data,
                             size_t len)
{
    /* Layout: op | key + NUL | value. Overflow is impossible: both lengths
     * were capped by the caller's validation. */
    size_t size = sizeof(mp_storage_op) + key_len + 1 + len;
    mp_storage_op *op = calloc(1, size);
    if (!op) return NULL;
    mp_list_node_init(&op->link);
    op->key = (char *)(op + 1);
    memcpy(op->key, key, key_len);
    op->key[key_len] = '\0';
    op->key_len = key_len;
    if (len > 0) {
        op->data = op->key + key_len + 1;
        memcpy(op->data, data, len);
    }
    op->len = len;
    return op;
}

static int submit(mp_storage *s, mp_storage_op *op)
{
    int rc = s->vt->submit(s, op);
    if (rc != 0) {
        free(op);
        return rc;
    }
    s->stats.pending++;
    return 0;
}

static int check_common(mp_storage *s, const char *key, size_t key_len,
                        const void *cb)
{
    if (!s || !cb) return MP_EINVAL;
    if (!mp_storage_key_valid(key, key_len)) return MP_EINVAL;
    if (s->closing) return MP_ECLOSED;
    return 0;
}

int mp_storage_load(mp_storage *s, const char *key, size_t key_len,
                    mp_storage_load_cb cb, void *ud)
{
    int rc = check_common(s, key, key_len, (const void *)cb);
    if (rc) return rc;
    mp_storage_op *op = op_new(key, key_len, NULL, 0);
    if (!op) return MP_ENOMEM;
    op->kind = MP_SOP_LOAD;
    op->cb.load = cb;
    op->ud = ud;
    return submit(s, op);
}

int mp_storage_load_record(mp_storage *s, const char *key, size_t key_len,
                           mp_storage_load_record_cb cb, void *ud)
{
    int rc = check_common(s, key, key_len, (const void *)cb);
    if (rc) return rc;
    mp_storage_op *op = op_new(key, key_len, NULL, 0);
    if (!op) return MP_ENOMEM;
    op->kind = MP_SOP_LOAD;
    op->cb.load_record = cb;
    op->record_cb = true;
    op->ud = ud;
    return submit(s, op);
}

int mp_storage_save(mp_storage *s, const char *key, size_t key_len,
                    const void *data, size_t len, uint64_t expected_etag,
                    const mp_storage_writer *writer, mp_storage_save_cb cb,
                    void *ud)
{
    int rc = check_common(s, key, key_len, (const void *)cb);
    if (rc) return rc;
    if (len > 0 && !data) return MP_EINVAL;
    if (len > MP_STORAGE_VALUE_MAX) return MP_ETOOBIG;
    /* Etags are stored as signed 64-bit integers by the SQL providers. */
    if (expected_etag > (uint64_t)INT64_MAX) return MP_EINVAL;
    mp_storage_op *op = op_new(key, key_len, data, len);
    if (!op) return MP_ENOMEM;
    op->kind = MP_SOP_SAVE;
    op->expected_etag = expected_etag;
    if (writer) op->writer = *writer;
    op->cb.save = cb;
    op->ud = ud;
    return submit(s, op);
}

int mp_storage_clear(mp_storage *s, const char *key, size_t key_len,
                     uint64_t expected_etag, mp_storage_clear_cb cb, void *ud)
{
    int rc = check_common(s, key, key_len, (const void *)cb);
    if (rc) return rc;
    if (expected_etag > (uint64_t)INT64_MAX) return MP_EINVAL;
    mp_storage_op *op = op_new(key, key_len, NULL, 0);
    if (!op) return MP_ENOMEM;
    op->kind = MP_SOP_CLEAR;
    op->expected_etag = expected_etag;
    op->cb.clear = cb;
    op->ud = ud;
    return submit(s, op);
}

void mp_storage_op_reset_result_(mp_storage_op *op)
{
    free(op->out_data);
    op->out_data = NULL;
    op->out_len = 0;
    op->status = 0;
    op->etag = 0;
    memset(&op->out_writer, 0, sizeof op->out_writer);
}

void mp_storage_op_free_(mp_storage *s, mp_storage_op *op)
{
    assert(!mp_list_node_linked(&op->link));
    assert(s->stats.pending > 0);
    s->stats.pending--;
    free(op->out_data);
    free(op);
}

void mp_storage_op_complete_(mp_storage *s, mp_storage_op *op)
{
    assert(!mp_list_node_linked(&op->link));
    assert(op->status <= 0);
    int st = op->status;
    if (st == MP_ECONFLICT)
        s->stats.conflicts++;
    else if (st != 0)
        s->stats.errors++;
    switch (op->kind) {
    case MP_SOP_LOAD: {
        s->stats.loads++;
        mp_storage_record rec = {0};
        if (st == 0) {
            assert(op->etag != 0 || op->out_len == 0);
            rec.data = op->out_len ? op->out_data : NULL;
            rec.len = op->out_len;
            rec.etag = op->etag;
            rec.writer = op->out_writer;
        }
        /* Count before the callback: it may close or free the provider. */
        s->stats.pending--;
        if (op->record_cb)
            op->cb.load_record(op->ud, st, st == 0 ? &rec : NULL);
        else
            op->cb.load(op->ud, st, rec.data, rec.len, rec.etag);
        break;
    }
    case MP_SOP_SAVE:
        s->stats.saves++;
        assert(st != 0 || op->etag > op->expected_etag);
        s->stats.pending--;
        op->cb.save(op->ud, st, st == 0 ? op->etag : 0);
        break;
    case MP_SOP_CLEAR:
        s->stats.clears++;
        s->stats.pending--;
        op->cb.clear(op->ud, st);
        break;
    }
    free(op->out_data);
    free(op);
}

void mp_storage_close(mp_storage *s, mp_storage_close_cb cb, void *ud)
{
    if (!s) return;
    assert(!s->closing);
    if (s->closing) return;
    s->closing = true;
    s->close_cb = cb;
    s->close_ud = ud;
    s->vt->close(s);
}

void mp_storage_finish_close_(mp_storage *s)
{
    assert(s->closing);
    mp_storage_close_cb cb = s->close_cb;
    void *ud = s->close_ud;
    free(s);
    if (cb) cb(ud);
}

void mp_storage_free_now(mp_storage *s)
{
    if (!s) return;
    s->vt->free_now(s);
}

const char *mp_storage_name(const mp_storage *s)
{
    return s ? s->vt->name : "none";
}

void mp_storage_get_stats(const mp_storage *s, mp_storage_stats *out)
{
    if (!out) return;
    if (!s) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = s->stats;
}
