/*
 * The record table behind the memory and simulated providers (see kv.h).
 *
 * A save replaces the whole record (new allocation, then swap) so that an
 * out-of-memory in the middle leaves the old record intact: a failed save
 * must never destroy the state it was meant to replace.
 */
#include "storage/kv.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

typedef struct kv_rec {
    mp_list_node link;
    uint64_t etag;
    mp_storage_writer writer;
    void *data; /* inside the allocation, NULL when len == 0 */
    size_t len;
    size_t key_len;
    char key[];
} kv_rec;

int mp_kv_init(mp_kv *kv)
{
    memset(kv, 0, sizeof *kv);
    mp_list_init(&kv->recs);
    return mp_map_str_init(&kv->map, 0);
}

void mp_kv_free(mp_kv *kv)
{
    mp_list_node *n, *t;
    MP_LIST_FOREACH_SAFE(n, t, &kv->recs)
    {
        mp_list_remove(n);
        free(MP_CONTAINER_OF(n, kv_rec, link));
    }
    mp_map_str_free(&kv->map);
}

size_t mp_kv_count(const mp_kv *kv) { return mp_map_str_count(&kv->map); }

static uint64_t next_etag(mp_kv *kv, uint64_t old)
{
    uint64_t e = kv->etag_counter + 1;
    if (e <= old) e = old + 1;
    kv->etag_counter = e;
    return e;
}

void mp_kv_apply(mp_kv *kv, mp_storage_op *op)
{
    kv_rec *r = mp_map_str_get(&kv->map, op->key, op->key_len);
    uint64_t cur = r ? r->etag : 0;
    assert(!r || r->etag > 0);
    switch (op->kind) {
    case MP_SOP_LOAD:
        if (!r) {
            op->status = 0;
            op->etag = 0;
            return;
        }
        if (r->len > 0) {
            op->out_data = malloc(r->len);
            if (!op->out_data) {
                op->status = MP_ENOMEM;
                return;
            }
            memcpy(op->out_data, r->data, r->len);
        }
        op->out_len = r->len;
        op->etag = r->etag;
        op->out_writer = r->writer;
        op->status = 0;
        return;
    case MP_SOP_SAVE: {
        if (cur != op->expected_etag) {
            op->status = MP_ECONFLICT;
            return;
        }
        kv_rec *nr = malloc(sizeof *nr + op->key_len + 1 + op->len);
        if (!nr) {
            op->status = MP_ENOMEM;
            return;
        }
        mp_list_node_init(&nr->link);
        nr->key_len = op->key_len;
        memcpy(nr->key, op->key, op->key_len);
        nr->key[op->key_len] = '\0';
        nr->len = op->len;
        nr->data = NULL;
        if (op->len) {
            nr->data = nr->key + op->key_len + 1;
            memcpy(nr->data, op->data, op->len);
        }
        nr->writer = op->writer;
        void *old = NULL;
        if (mp_map_str_put(&kv->map, nr->key, nr->key_len, nr, &old) != 0) {
            free(nr);
            op->status = MP_ENOMEM;
            return;
        }
        assert(old == r);
        nr->etag = next_etag(kv, cur);
        if (r) {
            mp_list_remove(&r->link);
            free(r);
        }
        mp_list_push_back(&kv->recs, &nr->link);
        op->etag = nr->etag;
        op->status = 0;
        return;
    }
    case MP_SOP_CLEAR:
        if (cur != op->expected_etag) {
            op->status = MP_ECONFLICT;
            return;
        }
        if (r) {
            void *gone = mp_map_str_remove(&kv->map, r->key, r->key_len);
            assert(gone == r);
            (void)gone;
            mp_list_remove(&r->link);
            free(r);
        }
        op->status = 0;
        return;
    }
    assert(0 && "unknown op kind");
    op->status = MP_EINTERNAL;
}
