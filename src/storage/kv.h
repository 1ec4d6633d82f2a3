/*
 * An in-memory table of records with the ETag rules of storage.h, shared by
 * the memory provider and the simulated disk.
 *
 * Why shared: the conflict rules (expected ETag must match, 0 = absent, new
 * ETag from a table-wide counter that only grows) are the heart of the
 * storage contract; writing them once means the provider used by unit tests
 * and the one used by the simulator cannot disagree.
 *
 * Records live in a byte-keyed map for lookup and on an intrusive list for
 * teardown (the map has no iteration, see util/map.h). Single-threaded.
 */
#ifndef MP_STORAGE_KV_H
#define MP_STORAGE_KV_H

#include <stddef.h>
#include <stdint.h>

#include "storage/storage_internal.h"
#include "util/list.h"
#include "util/map.h"

typedef struct mp_kv {
    mp_map_str map;
    mp_list_node recs;
    uint64_t etag_counter; /* last ETag handed out */
} mp_kv;

int mp_kv_init(mp_kv *kv);
void mp_kv_free(mp_kv *kv);
size_t mp_kv_count(const mp_kv *kv);

/* Apply op (load, save or clear) now and fill its result fields (status,
 * etag, out_data...). Conflicts and out-of-memory are results, not
 * failures of the call. */
void mp_kv_apply(mp_kv *kv, mp_storage_op *op);

#endif
