/*
 * The in-memory provider: the storage contract with nothing behind it, for
 * unit tests and for nodes that do not need persistence.
 *
 * An op takes effect the moment it is submitted (so effects follow issue
 * order trivially) and its completion waits in a FIFO until a zero-delay
 * env timer flushes the whole FIFO on a later loop turn: one wake-up per
 * turn however many ops were issued, and callbacks never run inside the
 * call that started them.
 *
 * Why a zero-delay timer rather than mp_env_defer: a deferred callback
 * cannot be cancelled, so mp_storage_free_now (a node's teardown, the
 * simulator's kill) could not free the provider while a flush is pending
 * without leaving the env a dangling pointer. A timer can be cancelled on
 * both backends, including on a dead simulated process.
 */
#include <assert.h>
#include <stdlib.h>

#include "storage/kv.h"
#include "storage/storage_internal.h"

typedef struct mem_storage {
    mp_storage base; /* first: freed by mp_storage_finish_close_ */
    mp_kv kv;
    mp_list_node done;    /* applied, callback not yet run */
    mp_list_node running; /* being completed by the current flush */
    mp_timer_id timer;    /* pending flush, 0 if none */
    bool flushing;
    bool dead; /* free_now called during a flush */
} mem_storage;

static void flush(void *ud);

static int arm(mem_storage *m)
{
    if (m->timer) return 0;
    m->timer = mp_env_timer_start(m->base.env, 0, flush, m);
    return m->timer ? 0 : MP_ENOMEM;
}

static void release(mem_storage *m)
{
    mp_list_node *n;
    if (m->timer) mp_env_timer_cancel(m->base.env, m->timer);
    m->timer = 0;
    while ((n = mp_list_pop_front(&m->running)))
        mp_storage_op_free_(&m->base, MP_CONTAINER_OF(n, mp_storage_op, link));
    while ((n = mp_list_pop_front(&m->done)))
        mp_storage_op_free_(&m->base, MP_CONTAINER_OF(n, mp_storage_op, link));
    mp_kv_free(&m->kv);
}

static void flush(void *ud)
{
    mem_storage *m = ud;
    m->timer = 0;
    m->flushing = true;
    /* Take this turn's batch; ops issued by the callbacks below go to the
     * next flush, so a callback that keeps re-issuing cannot starve the
     * loop. */
    assert(mp_list_empty(&m->running));
    while (!mp_list_empty(&m->done))
        mp_list_push_back(&m->running, mp_list_pop_front(&m->done));
    mp_list_node *n;
    while ((n = mp_list_pop_front(&m->running))) {
        mp_storage_op_complete_(&m->base, MP_CONTAINER_OF(n, mp_storage_op, link));
        if (m->dead) {
            release(m);
            free(m);
            return;
        }
    }
    m->flushing = false;
    if (m->base.closing && mp_list_empty(&m->done)) {
        if (m->timer) mp_env_timer_cancel(m->base.env, m->timer);
        m->timer = 0;
        mp_kv_free(&m->kv);
        mp_storage_finish_close_(&m->base);
    }
}

static int mem_submit(mp_storage *s, mp_storage_op *op)
{
    mem_storage *m = (mem_storage *)s;
    int rc = arm(m);
    if (rc) return rc;
    mp_kv_apply(&m->kv, op);
    mp_list_push_back(&m->done, &op->link);
    return 0;
}

static void mem_close(mp_storage *s)
{
    mem_storage *m = (mem_storage *)s;
    if (m->flushing) return; /* the running flush finishes the close */
    if (arm(m) != 0) {
        /* No timer to finish on a later turn: the only way left that keeps
         * the promise (cb later, never inside) is a defer. */
        (void)mp_env_defer(s->env, flush, m);
    }
}

static void mem_free_now(mp_storage *s)
{
    mem_storage *m = (mem_storage *)s;
    if (m->flushing) {
        m->dead = true;
        return;
    }
    release(m);
    free(m);
}

static const mp_storage_vtbl mem_vtbl = {
    .name = "memory",
    .submit = mem_submit,
    .close = mem_close,
    .free_now = mem_free_now,
};

mp_storage *mp_storage_memory_create(mp_env *env)
{
    if (!env) return NULL;
    mem_storage *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    mp_storage_init_(&m->base, &mem_vtbl, env);
    mp_list_init(&m->done);
    mp_list_init(&m->running);
    if (mp_kv_init(&m->kv) != 0) {
        free(m);
        return NULL;
    }
    return &m->base;
}
