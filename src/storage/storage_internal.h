/*
 * What every storage provider shares: the provider head (struct mp_storage),
 * the operation record, and the completion path.
 *
 * Why one operation record for every provider: the public functions validate
 * input and copy the caller's key and data exactly once (storage.c), then
 * hand a self-contained op to the provider. A provider only decides WHEN and
 * HOW an op takes effect and fills its result fields; running the callback,
 * counting stats and freeing the op is common (mp_storage_op_complete_), so
 * the callback contract (status always set, data valid only during the call,
 * stats consistent) is implemented once.
 */
#ifndef MP_STORAGE_STORAGE_INTERNAL_H
#define MP_STORAGE_STORAGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/storage.h"
#include "util/list.h"

typedef enum mp_sop_kind {
    MP_SOP_LOAD = 1,
    MP_SOP_SAVE = 2,
    MP_SOP_CLEAR = 3
} mp_sop_kind;

typedef struct mp_storage_op {
    mp_list_node link;  /* in the provider's queue; owned by the provider */
    mp_sop_kind kind;
    /* request */
    char *key;          /* NUL-terminated copy (inside the op's allocation) */
    size_t key_len;
    void *data;         /* save: owned copy of the value (NULL if len 0) */
    size_t len;
    uint64_t expected_etag;
    mp_storage_writer writer;
    /* result (set by the provider before completion) */
    int status;
    uint64_t etag;                  /* load: stored etag; save: new etag */
    void *out_data;                 /* load: malloc'd copy, freed after cb */
    size_t out_len;
    mp_storage_writer out_writer;
    /* provider scratch */
    uint64_t aux;
    uint64_t aux2;
    /* callback */
    union {
        mp_storage_load_cb load;
        mp_storage_load_record_cb load_record;
        mp_storage_save_cb save;
        mp_storage_clear_cb clear;
    } cb;
    bool record_cb; /* load: cb.load_record instead of cb.load */
    void *ud;
} mp_storage_op;

typedef struct mp_storage_vtbl {
    const char *name;
    /* Accept an op (ownership passes to the provider on 0). Called only
     * while the provider is open. Return 0 or MP_ENOMEM. */
    int (*submit)(mp_storage *s, mp_storage_op *op);
    /* Begin a graceful close (s->closing is already set and the close
     * callback stored): finish accepted ops, release resources, then call
     * mp_storage_finish_close_ on a later loop turn. */
    void (*close)(mp_storage *s);
    /* Release everything now, no callbacks. */
    void (*free_now)(mp_storage *s);
} mp_storage_vtbl;

struct mp_storage {
    const struct mp_storage_vtbl *vt;
    mp_env *env;
    bool closing;
    mp_storage_close_cb close_cb;
    void *close_ud;
    mp_storage_stats stats;
};

/* Initialise the head of a new provider. */
void mp_storage_init_(mp_storage *s, const struct mp_storage_vtbl *vt,
                      mp_env *env);

/* Run op's callback with its result, count it, free it. Loop thread only.
 * The op must not be in any list. */
void mp_storage_op_complete_(mp_storage *s, mp_storage_op *op);

/* Free an op without running its callback (abandoned: free_now). */
void mp_storage_op_free_(mp_storage *s, mp_storage_op *op);

/* Reset an op's result fields (before a retry). */
void mp_storage_op_reset_result_(mp_storage_op *op);

/* The provider has released everything except the memory of `s` itself:
 * this frees `s` (with free(), so providers allocate their struct with
 * malloc and put mp_storage first) and then runs the close callback. */
void mp_storage_finish_close_(mp_storage *s);

/* Whether op is as the public functions queue it (storage.c validated and
 * copied the input): a NUL-terminated key of 1..MP_STORAGE_KEY_MAX bytes, a
 * known kind, a value of at most MP_STORAGE_VALUE_MAX bytes. For providers'
 * asserts: an op that fails this is a bug in moonpool, not bad input. */
static inline bool mp__storage_op_valid(const mp_storage_op *op)
{
    return op && op->key && op->key_len > 0 && op->key_len <= MP_STORAGE_KEY_MAX &&
           op->key[op->key_len] == '\0' && op->kind >= MP_SOP_LOAD &&
           op->kind <= MP_SOP_CLEAR && op->len <= MP_STORAGE_VALUE_MAX &&
           (op->len == 0 || op->data);
}

#endif
