/*
 * Group commit on libuv's threadpool, shared by the SQLite and PostgreSQL
 * providers.
 *
 * Why this design: a database handle must not be used by two threads at
 * once, and an fsync (or a round trip to PostgreSQL) costs the same for one
 * row as for a thousand. So at most ONE worker job runs at a time per
 * provider, and each job takes EVERY op queued so far — all ops issued
 * during one loop turn, plus all ops issued while the previous job ran —
 * and the backend executes them in one transaction. Under load the batch
 * grows by itself, so throughput rises with concurrency while a lone
 * writer still gets one transaction per save.
 *
 * Threads: the queue, the callbacks and everything in mp_batch except what
 * the backend's `run` touches belong to the loop thread. `run` and
 * `shutdown` execute on a threadpool thread, one job at a time; libuv's
 * queue_work/after_work hand-off orders memory between the two, so no lock
 * is needed.
 */
#ifndef MP_STORAGE_BATCH_H
#define MP_STORAGE_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "storage/storage_internal.h"

typedef struct mp_batch_backend {
    const mp_storage_vtbl *vt; /* used for the provider head */
    /* Worker thread. Execute ops[0..n) in order, in as few transactions as
     * the backend can (ideally one), filling each op's result fields.
     * Return the number of committed transactions. */
    uint64_t (*run)(void *ctx, mp_storage_op **ops, size_t n);
    /* Worker thread (or the loop thread when no job can run any more):
     * close the handle and free ctx. */
    void (*shutdown)(void *ctx);
    /* Loop thread, optional: after each job, before its ops complete; what
     * `run` wrote in ctx is visible (libuv orders the hand-off). For what
     * only the loop thread may do, e.g. logging. */
    void (*after_job)(void *ctx);
} mp_batch_backend;

typedef struct mp_batch {
    mp_storage base; /* first: freed by mp_storage_finish_close_ */
    const mp_batch_backend *be;
    void *ctx;
    uv_loop_t *loop;
    uv_work_t req;
    mp_list_node queued;  /* accepted, waiting for the next job */
    mp_storage_op **job;  /* the running job's ops */
    size_t job_n, job_cap;
    uint64_t job_txns;
    bool job_active;      /* a work request is in the threadpool */
    bool job_shutdown;    /* the running job closes the backend */
    bool kick_pending;    /* a defer will start the next job */
    bool completing;      /* inside after_work's callback loop */
    bool dead;            /* free_now called: no more callbacks */
} mp_batch;

/* Most ops in one transaction: bounds one job's latency and memory. */
#define MP_BATCH_MAX 4096

/* Make the provider on env's uv loop (the caller checked mp_env_is_uv). On
 * error the caller still owns ctx. Returns NULL on out-of-memory. */
mp_storage *mp_batch_create(mp_env *env, const mp_batch_backend *be,
                            void *ctx);

/* vtable entries for the providers' vtbl. */
int mp_batch_submit(mp_storage *s, mp_storage_op *op);
void mp_batch_close(mp_storage *s);
void mp_batch_free_now(mp_storage *s);

#endif
