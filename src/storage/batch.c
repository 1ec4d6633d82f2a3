/*
 * Group commit on libuv's threadpool (see batch.h for the design).
 *
 * Life of an op: submit -> `queued` (and a defer "kick" is requested so the
 * batch closes at the end of this loop turn) -> a job takes the whole queue
 * -> worker runs the backend -> after_work completes every op in issue
 * order on the loop thread -> if ops were queued meanwhile, the next job
 * starts at once.
 *
 * Teardown: close() lets queued ops finish, then runs a last job that
 * shuts the backend down on the worker (sqlite3_close can checkpoint the
 * WAL: not work for the loop thread), then frees. free_now() cannot stop a
 * job already in the threadpool nor cancel a requested defer: it marks the
 * provider dead and whichever of them runs last frees it.
 */
#include "storage/batch.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/env_uv.h"

static void start_job(mp_batch *b);

static void abandon_queue(mp_batch *b)
{
    mp_list_node *n;
    while ((n = mp_list_pop_front(&b->queued)))
        mp_storage_op_free_(&b->base, MP_CONTAINER_OF(n, mp_storage_op, link));
}

static void destroy(mp_batch *b)
{
    assert(!b->job_active && !b->kick_pending);
    abandon_queue(b);
    if (b->ctx) b->be->shutdown(b->ctx);
    b->ctx = NULL;
    free(b->job);
    free(b);
}

static void work_cb(uv_work_t *req)
{
    mp_batch *b = req->data;
    if (b->job_shutdown) {
        b->be->shutdown(b->ctx);
        return;
    }
    b->job_txns = b->be->run(b->ctx, b->job, b->job_n);
}

static void after_cb(uv_work_t *req, int uvstatus)
{
    mp_batch *b = req->data;
    assert(b->job_active);
    b->job_active = false;
    if (b->job_shutdown) {
        b->ctx = NULL;
        free(b->job);
        b->job = NULL;
        if (b->dead) {
            free(b);
            return;
        }
        mp_storage_finish_close_(&b->base);
        return;
    }
    size_t n = b->job_n;
    b->job_n = 0;
    if (uvstatus != 0) {
        /* Cancelled before running (uv_cancel is never called, so this is
         * defensive): report a storage failure rather than lose the ops. */
        for (size_t i = 0; i < n; i++) {
            mp_storage_op_reset_result_(b->job[i]);
            b->job[i]->status = MP_ESTORAGE;
        }
    } else {
        b->base.stats.transactions += b->job_txns;
        if (n > b->base.stats.max_batch) b->base.stats.max_batch = n;
        if (b->be->after_job) b->be->after_job(b->ctx);
    }
    /* Ops issued from the callbacks below join `queued`; job_active is
     * false but `completing` keeps submit from requesting a kick, because
     * this function starts the next job itself. */
    b->completing = true;
    for (size_t i = 0; i < n; i++) {
        mp_storage_op *op = b->job[i];
        b->job[i] = NULL;
        if (b->dead) {
            mp_storage_op_free_(&b->base, op);
            continue;
        }
        mp_storage_op_complete_(&b->base, op);
    }
    b->completing = false;
    if (b->dead) {
        if (!b->kick_pending) destroy(b);
        return;
    }
    start_job(b);
}

static void kick_cb(void *ud)
{
    mp_batch *b = ud;
    b->kick_pending = false;
    if (b->dead) {
        if (!b->job_active) destroy(b);
        return;
    }
    if (!b->job_active) start_job(b);
}

static void fail_queue(mp_batch *b, int status)
{
    /* Only from kick/after_work (never inside a caller's call), so running
     * callbacks here keeps the contract. */
    mp_list_node *n;
    b->completing = true;
    while ((n = mp_list_pop_front(&b->queued))) {
        mp_storage_op *op = MP_CONTAINER_OF(n, mp_storage_op, link);
        op->status = status;
        mp_storage_op_complete_(&b->base, op);
        if (b->dead) break;
    }
    b->completing = false;
    if (b->dead && !b->kick_pending) destroy(b);
}

/* Start the next job if there is work; loop thread; no job active. */
static void start_job(mp_batch *b)
{
    assert(!b->job_active && !b->dead);
    if (mp_list_empty(&b->queued)) {
        if (!b->base.closing) return;
        b->job_shutdown = true;
    } else {
        size_t want = mp_list_count(&b->queued);
        if (want > MP_BATCH_MAX) want = MP_BATCH_MAX;
        if (want > b->job_cap) {
            mp_storage_op **nj = realloc(b->job, want * sizeof *nj);
            if (!nj) {
                fail_queue(b, MP_ENOMEM);
                return;
            }
            b->job = nj;
            b->job_cap = want;
        }
        b->job_n = 0;
        while (b->job_n < want) {
            mp_list_node *n = mp_list_pop_front(&b->queued);
            b->job[b->job_n++] = MP_CONTAINER_OF(n, mp_storage_op, link);
        }
    }
    b->req.data = b;
    if (uv_queue_work(b->loop, &b->req, work_cb, after_cb) != 0) {
        /* libuv refuses only on bad arguments; treat as a backend failure. */
        for (size_t i = 0; i < b->job_n; i++)
            mp_list_push_back(&b->queued, &b->job[i]->link);
        b->job_n = 0;
        if (b->job_shutdown) {
            b->be->shutdown(b->ctx);
            b->ctx = NULL;
            mp_storage_finish_close_(&b->base);
            return;
        }
        fail_queue(b, MP_ESTORAGE);
        return;
    }
    b->job_active = true;
}

int mp_batch_submit(mp_storage *s, mp_storage_op *op)
{
    mp_batch *b = (mp_batch *)s;
    if (!b->job_active && !b->completing && !b->kick_pending) {
        int rc = mp_env_defer(s->env, kick_cb, b);
        if (rc) return rc;
        b->kick_pending = true;
    }
    mp_list_push_back(&b->queued, &op->link);
    return 0;
}

void mp_batch_close(mp_storage *s)
{
    mp_batch *b = (mp_batch *)s;
    /* A running job, a pending kick or after_work's loop will reach
     * start_job, which sees `closing` once the queue is empty. */
    if (b->job_active || b->kick_pending || b->completing) return;
    if (mp_env_defer(s->env, kick_cb, b) == 0) {
        b->kick_pending = true;
        return;
    }
    /* No memory for a defer: shut down through the threadpool directly;
     * its after_work runs on a later turn, so cb still runs later. */
    start_job(b);
}

void mp_batch_free_now(mp_storage *s)
{
    mp_batch *b = (mp_batch *)s;
    b->dead = true;
    if (b->job_active || b->kick_pending || b->completing) return;
    destroy(b);
}

mp_storage *mp_batch_create(mp_env *env, const mp_batch_backend *be, void *ctx)
{
    mp_batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    mp_storage_init_(&b->base, be->vt, env);
    b->be = be;
    b->ctx = ctx;
    b->loop = mp_env_uv_loop(env);
    mp_list_init(&b->queued);
    return &b->base;
}
