/*
 * The simulated disk provider: the storage contract under the simulator's
 * control, with latency, failures and crashes drawn from the seed.
 *
 * Records live in a "disk" object that the caller parks in the process's
 * disk slot (mp_sim_process_disk), outside the process, so they survive
 * kill and restart while everything else of the process vanishes.
 *
 * The provider models one disk queue: each op gets a completion time
 * max(previous op's, now + latency), and takes effect on the disk exactly
 * when its callback is about to run. So effects and callbacks follow issue
 * order (the contract), and "synced" means precisely "its callback ran".
 * On a kill (mp_storage_free_now from the process's teardown), every write
 * still queued is applied or dropped at random (kill_apply_p), like a disk
 * that may or may not have reached the platter; reads are simply dropped.
 *
 * Faults: failed reads (MP_ESTORAGE), failed writes (MP_ESTORAGE; with
 * write_fail_applied_p the write still reached the disk, the ambiguous
 * case a real database has when the connection drops after COMMIT),
 * corrupt reads (MP_ECORRUPT), and buggify sites adding latency spikes and
 * spurious failures. Every random draw comes from the process's env, which
 * the simulator seeds, so a seed replays the same faults.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "storage/kv.h"
#include "storage/storage_internal.h"

#define SIM_DISK_MAGIC 0x6d70646b31ull /* "mpdk1" */

typedef struct sim_disk {
    uint64_t magic;
    mp_kv kv;
    bool in_use; /* a live provider uses it */
} sim_disk;

typedef struct sim_storage {
    mp_storage base; /* first: freed by mp_storage_finish_close_ */
    sim_disk *disk;
    mp_storage_sim_config cfg;
    mp_list_node queue; /* issue order; op->aux = timer id */
    uint64_t last_due;  /* completion time of the last queued op */
    mp_timer_id close_timer;
    bool completing;
    bool dead;
} sim_storage;

void mp_storage_sim_config_init(mp_storage_sim_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->latency_min_ns = 50 * MP_NS_PER_US;
    cfg->latency_max_ns = 2 * MP_NS_PER_MS;
    cfg->kill_apply_p = 0.5;
    cfg->buggify = true;
}

static bool chance(mp_env *env, double p)
{
    if (p <= 0) return false;
    if (p >= 1) return true;
    return mp_env_random_unit(env) < p;
}

static void sim_release_disk(sim_storage *ss)
{
    ss->disk->in_use = false;
}

static void op_due(void *ud);

static void finish_close_cb(void *ud)
{
    sim_storage *ss = ud;
    ss->close_timer = 0;
    sim_release_disk(ss);
    mp_storage_finish_close_(&ss->base);
}

static void maybe_finish_close(sim_storage *ss)
{
    if (!ss->base.closing || !mp_list_empty(&ss->queue) || ss->close_timer)
        return;
    ss->close_timer = mp_env_timer_start(ss->base.env, 0, finish_close_cb, ss);
    /* Out of memory for a timer: a defer cannot be cancelled, but nothing
     * is pending any more, so only free_now could race it; accept that. */
    if (!ss->close_timer) (void)mp_env_defer(ss->base.env, finish_close_cb, ss);
}

static void free_all(sim_storage *ss, bool crash)
{
    mp_list_node *n;
    if (ss->close_timer) mp_env_timer_cancel(ss->base.env, ss->close_timer);
    ss->close_timer = 0;
    while ((n = mp_list_pop_front(&ss->queue))) {
        mp_storage_op *op = MP_CONTAINER_OF(n, mp_storage_op, link);
        if (op->aux) mp_env_timer_cancel(ss->base.env, op->aux);
        if (crash && op->kind != MP_SOP_LOAD) {
            bool applied = chance(ss->base.env, ss->cfg.kill_apply_p);
            MP_SOMETIMES(applied, "storage.sim.kill_applied_unsynced");
            MP_SOMETIMES(!applied, "storage.sim.kill_lost_unsynced");
            if (applied) mp_kv_apply(&ss->disk->kv, op);
        }
        mp_storage_op_free_(&ss->base, op);
    }
    sim_release_disk(ss);
    free(ss);
}

/* Decide the fault for an op at its completion and apply it to the disk. */
static void apply(sim_storage *ss, mp_storage_op *op)
{
    mp_env *env = ss->base.env;
    bool bug = ss->cfg.buggify;
    if (op->kind == MP_SOP_LOAD) {
        if (chance(env, ss->cfg.read_fail_p) || (bug && MP_BUGGIFY_P(0.02))) {
            MP_REACHABLE("storage.sim.read_failed");
            op->status = MP_ESTORAGE;
            return;
        }
        if (chance(env, ss->cfg.corrupt_read_p)) {
            op->status = MP_ECORRUPT;
            return;
        }
        mp_kv_apply(&ss->disk->kv, op);
        return;
    }
    if (chance(env, ss->cfg.write_fail_p) || (bug && MP_BUGGIFY_P(0.02))) {
        bool applied = chance(env, ss->cfg.write_fail_applied_p);
        MP_REACHABLE("storage.sim.write_failed");
        if (applied) {
            mp_kv_apply(&ss->disk->kv, op);
            MP_REACHABLE("storage.sim.write_failed_but_applied");
        }
        mp_storage_op_reset_result_(op);
        op->status = MP_ESTORAGE;
        return;
    }
    mp_kv_apply(&ss->disk->kv, op);
    MP_SOMETIMES(op->status == MP_ECONFLICT, "storage.sim.conflict");
}

static void op_due(void *ud)
{
    mp_storage_op *op = ud;
    sim_storage *ss = (sim_storage *)(uintptr_t)op->aux2;
    /* Timers due at the same instant fire in insertion order, and due
     * times never decrease along the queue, so the op due is the head. */
    assert(mp_list_front(&ss->queue) == &op->link);
    op->aux = 0;
    mp_list_remove(&op->link);
    apply(ss, op);
    ss->completing = true;
    mp_storage_op_complete_(&ss->base, op);
    ss->completing = false;
    if (ss->dead) {
        free_all(ss, true);
        return;
    }
    maybe_finish_close(ss);
}

static int sim_submit(mp_storage *s, mp_storage_op *op)
{
    sim_storage *ss = (sim_storage *)s;
    mp_env *env = s->env;
    uint64_t lo = ss->cfg.latency_min_ns, hi = ss->cfg.latency_max_ns;
    if (hi < lo) hi = lo;
    uint64_t lat = lo + mp_env_random_below(env, hi - lo + 1);
    if (ss->cfg.buggify && MP_BUGGIFY_P(0.05)) lat += 100 * MP_NS_PER_MS;
    uint64_t now = mp_env_now(env);
    uint64_t due = now + lat;
    if (due < ss->last_due) due = ss->last_due;
    op->aux2 = (uint64_t)(uintptr_t)ss;
    op->aux = mp_env_timer_start(env, due - now, op_due, op);
    if (!op->aux) return MP_ENOMEM;
    ss->last_due = due;
    mp_list_push_back(&ss->queue, &op->link);
    return 0;
}

static void sim_close(mp_storage *s)
{
    sim_storage *ss = (sim_storage *)s;
    if (ss->completing) return; /* op_due finishes the close */
    maybe_finish_close(ss);
}

static void sim_free_now(mp_storage *s)
{
    sim_storage *ss = (sim_storage *)s;
    if (ss->completing) {
        ss->dead = true;
        return;
    }
    free_all(ss, true);
}

static const mp_storage_vtbl sim_vtbl = {
    .name = "sim",
    .submit = sim_submit,
    .close = sim_close,
    .free_now = sim_free_now,
};

mp_storage *mp_storage_sim_create(mp_env *env, void **disk_slot,
                                  const mp_storage_sim_config *cfg)
{
    if (!env || !disk_slot) return NULL;
    sim_disk *d = *disk_slot;
    bool fresh = false;
    if (d) {
        if (d->magic != SIM_DISK_MAGIC || d->in_use) return NULL;
    } else {
        d = calloc(1, sizeof *d);
        if (!d) return NULL;
        d->magic = SIM_DISK_MAGIC;
        if (mp_kv_init(&d->kv) != 0) {
            free(d);
            return NULL;
        }
        fresh = true;
    }
    sim_storage *ss = calloc(1, sizeof *ss);
    if (!ss) {
        if (fresh) mp_storage_sim_disk_free(d);
        return NULL;
    }
    mp_storage_init_(&ss->base, &sim_vtbl, env);
    if (cfg)
        ss->cfg = *cfg;
    else
        mp_storage_sim_config_init(&ss->cfg);
    mp_list_init(&ss->queue);
    ss->disk = d;
    d->in_use = true;
    *disk_slot = d;
    return &ss->base;
}

void mp_storage_sim_disk_free(void *disk)
{
    sim_disk *d = disk;
    if (!d) return;
    assert(d->magic == SIM_DISK_MAGIC && !d->in_use);
    mp_kv_free(&d->kv);
    d->magic = 0;
    free(d);
}

size_t mp_storage_sim_disk_count(const void *disk)
{
    const sim_disk *d = disk;
    return d && d->magic == SIM_DISK_MAGIC ? mp_kv_count(&d->kv) : 0;
}
