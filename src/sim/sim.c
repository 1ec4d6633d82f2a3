/*
 * The simulated world: event queue, processes, run loop, trace hash, outcome.
 *
 * Why one queue for everything: a seed must replay exactly, so every source
 * of activity (timers, network deliveries, faults, workload callbacks,
 * process boots) goes through one total order, (time, insertion seq). The
 * clock only moves when an event pops, so "time passing" is never observed
 * without an event that explains it.
 *
 * Why events carry (pid, incarnation) tags: killing a process must make its
 * pending timers and callbacks vanish at once. Finding and removing them all
 * would need per-process indexes; instead a popped event whose process is no
 * longer running that incarnation is dropped without effect (and without
 * entering the trace). Events that point at world objects are removed from the
 * queue when the object is freed (see sim_internal.h), so dropping by tag
 * never touches freed memory.
 *
 * Why a graveyard: a process may be killed from inside one of its own
 * callbacks (a workload doing mp_sim_kill from a world callback is the common
 * case, but a process could do it too). Its env and leftover streams are freed
 * only after the current event returns, so no caller is left holding a freed
 * env.
 *
 * Randomness: every stream is seeded with mp_mix64(seed, STREAM_CONST); a
 * process incarnation's env gets mp_mix64(mp_mix64(seed, pid), incarnation),
 * so adding randomness use in one subsystem never shifts another's draws.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"

static __thread mp_sim *current_world;

static const char *const kind_names[EV_KIND_COUNT_] = {
    [EV_BOOT] = "boot",
    [EV_TIMER] = "timer",
    [EV_DEFER] = "defer",
    [EV_CONNECT] = "connect",
    [EV_CONNECT_DONE] = "connected",
    [EV_CONNECT_FAIL] = "connect-fail",
    [EV_DELIVER] = "deliver",
    [EV_WRITE_DONE] = "write-done",
    [EV_CLOSE_DONE] = "close-done",
    [EV_FAULT_TICK] = "fault-tick",
    [EV_WORLD] = "world",
    [EV_EXIT] = "exit",
};

/* ---- heap ------------------------------------------------------------------ */

static inline bool ent_less(const sim_heap_entry *a, const sim_heap_entry *b)
{
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static void heap_up(mp_sim *sim, uint32_t i)
{
    sim_heap_entry e = sim->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!ent_less(&e, &sim->heap[parent])) break;
        sim->heap[i] = sim->heap[parent];
        sim->heap[i].ev->heap_pos = i;
        i = parent;
    }
    sim->heap[i] = e;
    e.ev->heap_pos = i;
}

static void heap_down(mp_sim *sim, uint32_t i)
{
    sim_heap_entry e = sim->heap[i];
    uint32_t n = sim->heap_len;
    for (;;) {
        uint32_t l = 2 * i + 1;
        if (l >= n) break;
        uint32_t m = l;
        if (l + 1 < n && ent_less(&sim->heap[l + 1], &sim->heap[l])) m = l + 1;
        if (!ent_less(&sim->heap[m], &e)) break;
        sim->heap[i] = sim->heap[m];
        sim->heap[i].ev->heap_pos = i;
        i = m;
    }
    sim->heap[i] = e;
    e.ev->heap_pos = i;
}

void sim_ev_push(mp_sim *sim, sim_event *ev, uint64_t time)
{
    assert(ev->heap_pos == SIM_HEAP_NONE);
    /* The heap always has room for every pool event (grown with the pool). */
    assert(sim->heap_len < sim->heap_cap);
    if (time < sim->now) time = sim->now;
    ev->time = time;
    ev->seq = sim->seq++;
    uint32_t i = sim->heap_len++;
    sim->heap[i] = (sim_heap_entry){time, ev->seq, ev};
    heap_up(sim, i);
}

void sim_ev_remove(mp_sim *sim, sim_event *ev)
{
    uint32_t i = ev->heap_pos;
    if (i == SIM_HEAP_NONE) return;
    assert(i < sim->heap_len && sim->heap[i].ev == ev);
    ev->heap_pos = SIM_HEAP_NONE;
    uint32_t last = --sim->heap_len;
    if (i == last) return;
    sim->heap[i] = sim->heap[last];
    sim->heap[i].ev->heap_pos = i;
    if (i > 0 && ent_less(&sim->heap[i], &sim->heap[(i - 1) / 2]))
        heap_up(sim, i);
    else
        heap_down(sim, i);
}

static sim_event *heap_pop(mp_sim *sim)
{
    if (sim->heap_len == 0) return NULL;
    sim_event *ev = sim->heap[0].ev;
    sim_ev_remove(sim, ev);
    return ev;
}

/* ---- event pool ------------------------------------------------------------ */

static bool pool_grow(mp_sim *sim)
{
    if (sim->pool_chunks == sim->pool_chunk_cap) {
        uint32_t cap = sim->pool_chunk_cap ? sim->pool_chunk_cap * 2 : 16;
        sim_event **np = realloc(sim->pool, cap * sizeof *np);
        if (!np) return false;
        sim->pool = np;
        sim->pool_chunk_cap = cap;
    }
    uint64_t total = (uint64_t)(sim->pool_chunks + 1) * SIM_POOL_CHUNK;
    if (total > UINT32_MAX / 2) return false;
    if (sim->heap_cap < total) {
        sim_heap_entry *nh = realloc(sim->heap, total * sizeof *nh);
        if (!nh) return false;
        sim->heap = nh;
        sim->heap_cap = (uint32_t)total;
    }
    sim_event *chunk = calloc(SIM_POOL_CHUNK, sizeof *chunk);
    if (!chunk) return false;
    sim->pool[sim->pool_chunks++] = chunk;
    return true;
}

sim_event *sim_ev_alloc(mp_sim *sim, sim_ev_kind kind, int pid, uint32_t inc)
{
    sim_event *ev;
    if (!sim_link_empty(&sim->free_events)) {
        sim_link *l = sim->free_events.next;
        sim_link_unlink(l);
        ev = SIM_CONTAINER(l, sim_event, olink);
    } else {
        if (sim->pool_used == sim->pool_chunks * SIM_POOL_CHUNK &&
            !pool_grow(sim))
            return NULL;
        uint32_t idx = sim->pool_used++;
        ev = &sim->pool[idx >> SIM_POOL_SHIFT][idx & (SIM_POOL_CHUNK - 1)];
        ev->idx = idx;
        ev->gen = 1;
    }
    ev->heap_pos = SIM_HEAP_NONE;
    ev->kind = (uint8_t)kind;
    ev->pid = pid;
    ev->inc = inc;
    ev->fn.timer = NULL;
    ev->ud = NULL;
    ev->obj = NULL;
    ev->status = 0;
    ev->aux = 0;
    sim_link_init(&ev->olink);
    return ev;
}

void sim_ev_free(mp_sim *sim, sim_event *ev)
{
    sim_ev_remove(sim, ev);
    sim_link_unlink(&ev->olink);
    if (ev->kind == EV_CONNECT) free(ev->obj); /* owned address copy */
    ev->obj = NULL;
    ev->gen++;
    if (ev->gen == 0) ev->gen = 1;
    sim_link_append(&sim->free_events, &ev->olink);
}

mp_timer_id sim_ev_id(const sim_event *ev)
{
    return ((uint64_t)ev->gen << 32) | ((uint64_t)ev->idx + 1);
}

sim_event *sim_ev_by_id(mp_sim *sim, mp_timer_id id)
{
    uint32_t low = (uint32_t)id;
    if (low == 0) return NULL;
    uint32_t idx = low - 1;
    if (idx >= sim->pool_used) return NULL;
    sim_event *ev = &sim->pool[idx >> SIM_POOL_SHIFT][idx & (SIM_POOL_CHUNK - 1)];
    if (ev->gen != (uint32_t)(id >> 32)) return NULL;
    return ev;
}

/* ---- helpers ----------------------------------------------------------------- */

uint64_t sim_hash_bytes(const uint8_t *p, size_t n)
{
    /* Word-at-a-time multiplicative hash: cheap enough for every delivery and
     * good enough to tell two byte sequences apart in the trace. */
    uint64_t h = 0x243f6a8885a308d3ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    uint64_t w = 0;
    for (size_t k = 0; i < n; i++, k++) w |= (uint64_t)p[i] << (8 * k);
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 32);
}

static void sweep_graveyard(mp_sim *sim)
{
    while (sim->graveyard) {
        sim_env *env = sim->graveyard;
        sim->graveyard = env->grave_next;
        sim_env_free_objects(env);
        sim_env_free(env);
    }
}

static void bury(mp_sim *sim, sim_env *env)
{
    env->grave_next = sim->graveyard;
    sim->graveyard = env;
    if (!sim->dispatching) sweep_graveyard(sim);
}

/* ---- processes ----------------------------------------------------------------- */

void sim_proc_kill(mp_sim *sim, sim_proc *p, bool reset_conns)
{
    assert(p->state == PROC_RUNNING && p->env);
    sim_env *env = p->env;
    p->state = PROC_DEAD;
    p->paused_until = 0;
    p->stopping = false;
    env->dead = true;
    sim_env_kill_objects(env, reset_conns);
    void *st = p->state_ptr;
    p->state_ptr = NULL;
    if (p->ops->teardown) p->ops->teardown(st);
    p->env = NULL;
    bury(sim, env);
}

int sim_schedule_boot(mp_sim *sim, sim_proc *p, uint64_t delay_ns)
{
    sim_event *ev = sim_ev_alloc(sim, EV_BOOT, p->pid, 0);
    if (!ev) return MP_ENOMEM;
    ev->aux = ++p->boot_token;
    p->boot_pending = true;
    uint64_t t = sim->now + delay_ns;
    if (t < sim->now) t = UINT64_MAX; /* saturate */
    sim_ev_push(sim, ev, t);
    return MP_OK;
}

static void boot_process(mp_sim *sim, sim_event *ev)
{
    sim_proc *p = sim->procs[ev->pid];
    assert(p->boot_pending && ev->aux == p->boot_token);
    p->boot_pending = false;
    p->paused_until = 0;
    p->stopping = false;
    p->inc++;
    sim_env *env = sim_env_create(sim, p);
    if (!env) {
        p->state = PROC_DEAD;
        mp_sim_fail(sim, "out of memory booting process %d (%s)", p->pid,
                    p->addr);
        return;
    }
    if (p->inc > 1) sim->stats.restarts++;
    p->env = env;
    p->state = PROC_RUNNING;
    p->state_ptr = NULL;
    void *st = NULL;
    int rc = p->ops->boot(&env->base, p->arg, p->inc, &st);
    if (p->env != env || p->state != PROC_RUNNING) return; /* killed inside */
    if (rc != 0) {
        /* A failed boot is a crash: no teardown (there is no state), but
         * whatever it opened is released. */
        p->state = PROC_DEAD;
        env->dead = true;
        sim_env_kill_objects(env, true);
        p->env = NULL;
        bury(sim, env);
        return;
    }
    p->state_ptr = st;
}

/* ---- world -------------------------------------------------------------------- */

mp_sim *mp_sim_current(void) { return current_world; }

mp_sim *mp_sim_create(const mp_sim_config *cfg)
{
    if (current_world || !cfg) return NULL;
    mp_sim *sim = calloc(1, sizeof *sim);
    if (!sim) return NULL;
    sim->cfg = *cfg;
    sim->seed = cfg->seed;
    if (cfg->swarm)
        mp_sim_faults_swarm(cfg->seed, &sim->faults);
    else
        sim->faults = cfg->faults;
    sim->cfg.faults = sim->faults;
    static uint64_t epochs;
    sim->epoch = __atomic_add_fetch(&epochs, 1, __ATOMIC_RELAXED);
    sim_link_init(&sim->free_events);
    sim_link_init(&sim->conns);
    sim_link_init(&sim->listeners);
    mp_prng_seed(&sim->rng_faults, mp_mix64(sim->seed, SIM_STREAM_FAULTS));
    mp_prng_seed(&sim->rng_net, mp_mix64(sim->seed, SIM_STREAM_NET));
    mp_prng_seed(&sim->rng_buggify, mp_mix64(sim->seed, SIM_STREAM_BUGGIFY));
    mp_prng_seed(&sim->rng_world, mp_mix64(sim->seed, SIM_STREAM_WORLD));
    sim->trace_hash = mp_mix64(sim->seed, 0x7472616365ull);
    sim->scratch_cap = 64 * 1024;
    sim->scratch = malloc(sim->scratch_cap);
    if (!sim->scratch || !pool_grow(sim)) {
        free(sim->scratch);
        free(sim->pool ? sim->pool[0] : NULL);
        free(sim->pool);
        free(sim->heap);
        free(sim);
        return NULL;
    }
    current_world = sim;
    mp_sim_active_ = 1;
    mp_sites_reset_();
    sim_faults_start(sim);
    return sim;
}

void mp_sim_destroy(mp_sim *sim)
{
    if (!sim) return;
    /* Destroying from inside one of its own events would free the event
     * being dispatched under the dispatcher's feet. */
    assert(!sim->dispatching);
    for (int i = 0; i < sim->nprocs; i++) {
        sim_proc *p = sim->procs[i];
        if (p->state == PROC_RUNNING) sim_proc_kill(sim, p, false);
    }
    sweep_graveyard(sim);
    for (uint32_t i = 0; i < sim->heap_len; i++) {
        sim_event *ev = sim->heap[i].ev;
        if (ev->kind == EV_CONNECT) free(ev->obj);
    }
    sim_net_free_all(sim);
    for (uint32_t c = 0; c < sim->pool_chunks; c++) free(sim->pool[c]);
    free(sim->pool);
    free(sim->heap);
    for (int i = 0; i < sim->nprocs; i++) {
        free(sim->procs[i]->addr);
        free(sim->procs[i]);
    }
    free(sim->procs);
    free(sim->parts);
    free(sim->scratch);
    free(sim->trace);
    free(sim->labels);
    if (current_world == sim) {
        current_world = NULL;
        mp_sim_active_ = 0;
    }
    free(sim);
}

/* ---- process API ---------------------------------------------------------------- */

int mp_sim_spawn(mp_sim *sim, const char *addr, const mp_sim_process_ops *ops,
                 void *arg)
{
    if (!sim || !addr || !ops || !ops->boot) return MP_EINVAL;
    char host[64];
    uint16_t port;
    if (mp_addr_parse(addr, host, sizeof host, &port) != MP_OK)
        return MP_EINVAL;
    for (int i = 0; i < sim->nprocs; i++)
        if (strcmp(sim->procs[i]->addr, addr) == 0) return MP_EINVAL;
    if (sim->nprocs == sim->procs_cap) {
        int cap = sim->procs_cap ? sim->procs_cap * 2 : 8;
        sim_proc **np = realloc(sim->procs, (size_t)cap * sizeof *np);
        if (!np) return MP_ENOMEM;
        sim->procs = np;
        sim->procs_cap = cap;
    }
    sim_proc *p = calloc(1, sizeof *p);
    if (!p) return MP_ENOMEM;
    p->addr = strdup(addr);
    if (!p->addr) {
        free(p);
        return MP_ENOMEM;
    }
    memcpy(p->host, host, sizeof host);
    p->pid = sim->nprocs;
    p->ops = ops;
    p->arg = arg;
    p->state = PROC_NEW;
    sim->procs[sim->nprocs++] = p;
    int rc = sim_schedule_boot(sim, p, 0);
    if (rc != MP_OK) {
        sim->nprocs--;
        free(p->addr);
        free(p);
        return rc;
    }
    return p->pid;
}

int mp_sim_kill(mp_sim *sim, int pid)
{
    sim_proc *p = sim_proc_get(sim, pid);
    if (!p) return MP_ENOTFOUND;
    if (p->state != PROC_RUNNING) return MP_EINVAL;
    sim->stats.kills++;
    p->killed_by_gen = false;
    sim_proc_kill(sim, p, true);
    return MP_OK;
}

int mp_sim_restart(mp_sim *sim, int pid, uint64_t delay_ns)
{
    sim_proc *p = sim_proc_get(sim, pid);
    if (!p) return MP_ENOTFOUND;
    if (p->state != PROC_DEAD || p->boot_pending) return MP_EINVAL;
    return sim_schedule_boot(sim, p, delay_ns);
}

int mp_sim_pause(mp_sim *sim, int pid, uint64_t duration_ns)
{
    sim_proc *p = sim_proc_get(sim, pid);
    if (!p) return MP_ENOTFOUND;
    if (p->state != PROC_RUNNING) return MP_EINVAL;
    uint64_t until = sim->now + duration_ns;
    if (until < sim->now) until = UINT64_MAX;
    if (until > p->paused_until) p->paused_until = until;
    sim->stats.pauses++;
    return MP_OK;
}

bool mp_sim_process_paused(mp_sim *sim, int pid)
{
    sim_proc *p = sim_proc_get(sim, pid);
    return p && sim_proc_paused(sim, p);
}

static int push_exit(mp_sim *sim, sim_proc *p, uint64_t delay_ns)
{
    sim_event *ev = sim_ev_alloc(sim, EV_EXIT, p->pid, p->inc);
    if (!ev) return MP_ENOMEM;
    uint64_t t = sim->now + delay_ns;
    if (t < sim->now) t = UINT64_MAX;
    sim_ev_push(sim, ev, t);
    return MP_OK;
}

int mp_sim_stop(mp_sim *sim, int pid, uint64_t deadline_ns,
                uint64_t restart_delay_ns)
{
    sim_proc *p = sim_proc_get(sim, pid);
    if (!p) return MP_ENOTFOUND;
    if (p->state != PROC_RUNNING || p->stopping || sim_proc_paused(sim, p))
        return MP_EINVAL;
    /* The forced exit first: it is there whatever stop() does. */
    uint64_t grace = deadline_ns + MP_SIM_NS_PER_S;
    if (grace < deadline_ns) grace = UINT64_MAX;
    int rc = push_exit(sim, p, p->ops->stop ? grace : 0);
    if (rc != MP_OK) return rc;
    p->stopping = true;
    p->stop_restart_delay = restart_delay_ns;
    sim->stats.stops++;
    if (p->ops->stop) {
        uint64_t dl = sim->now + deadline_ns;
        if (dl < sim->now) dl = UINT64_MAX;
        p->ops->stop(p->state_ptr, dl);
    }
    return MP_OK;
}

void mp_sim_process_exit(mp_env *env)
{
    if (!env) return;
    sim_env *se = (sim_env *)(void *)env;
    mp_sim *sim = se->sim;
    sim_proc *p = sim_proc_get(sim, se->pid);
    if (se->dead || !p || p->env != se || !p->stopping) return;
    MP_SOMETIMES(true, "sim.fault.stop_graceful_exit");
    if (push_exit(sim, p, 0) != MP_OK)
        mp_sim_fail(sim, "simulator out of memory (process exit)");
}

bool mp_sim_process_running(mp_sim *sim, int pid)
{
    sim_proc *p = sim_proc_get(sim, pid);
    return p && p->state == PROC_RUNNING;
}

uint32_t mp_sim_process_incarnation(mp_sim *sim, int pid)
{
    sim_proc *p = sim_proc_get(sim, pid);
    return p ? p->inc : 0;
}

void *mp_sim_process_state(mp_sim *sim, int pid)
{
    sim_proc *p = sim_proc_get(sim, pid);
    return p && p->state == PROC_RUNNING ? p->state_ptr : NULL;
}

mp_env *mp_sim_process_env(mp_sim *sim, int pid)
{
    sim_proc *p = sim_proc_get(sim, pid);
    return p && p->state == PROC_RUNNING && p->env ? &p->env->base : NULL;
}

void mp_sim_set_killable(mp_sim *sim, int pid, bool killable)
{
    sim_proc *p = sim_proc_get(sim, pid);
    if (p) p->killable = killable;
}

int mp_sim_process_count(mp_sim *sim) { return sim ? sim->nprocs : 0; }

void **mp_sim_process_disk(mp_sim *sim, int pid)
{
    sim_proc *p = sim_proc_get(sim, pid);
    return p ? &p->disk : NULL;
}

/* ---- running ------------------------------------------------------------------ */

uint64_t mp_sim_now(mp_sim *sim) { return sim->now; }

static bool ev_live(mp_sim *sim, const sim_event *ev)
{
    if (ev->kind == EV_BOOT) {
        sim_proc *p = sim->procs[ev->pid];
        return p->boot_pending && p->boot_token == ev->aux &&
               p->state != PROC_RUNNING;
    }
    if (ev->pid < 0) return true;
    sim_proc *p = sim->procs[ev->pid];
    return p->state == PROC_RUNNING && p->inc == ev->inc;
}

static void trace_record(mp_sim *sim, uint8_t kind, int32_t pid, uint64_t time)
{
    if (sim->events >= sim->trace_cap) {
        uint64_t cap = sim->trace_cap ? sim->trace_cap * 2 : 4096;
        uint64_t *nt = realloc(sim->trace, cap * sizeof *nt);
        if (!nt) {
            sim->cfg.record_trace = false; /* degrade, never crash */
            return;
        }
        sim->trace = nt;
        sim_label *nl = realloc(sim->labels, cap * sizeof *nl);
        if (!nl) {
            sim->cfg.record_trace = false;
            return;
        }
        sim->labels = nl;
        sim->trace_cap = cap;
    }
    sim->trace[sim->events] = sim->trace_hash;
    sim->labels[sim->events] = (sim_label){time, pid, kind};
}

bool sim_proc_paused(mp_sim *sim, const sim_proc *p)
{
    return p->state == PROC_RUNNING && p->paused_until > sim->now;
}

/* Events that run the process's code (everything but boot and exit), which
 * a pause holds back. */
static bool ev_runs_process(const sim_event *ev)
{
    return ev->pid >= 0 && ev->kind != EV_BOOT && ev->kind != EV_EXIT;
}

/* A graceful stop ends: teardown as after a kill, then the reboot. */
static void finish_stop(mp_sim *sim, sim_proc *p)
{
    uint64_t delay = p->stop_restart_delay;
    sim_proc_kill(sim, p, true);
    if (sim_schedule_boot(sim, p, delay) != MP_OK)
        mp_sim_fail(sim, "simulator out of memory (restart after stop)");
}

/* Pop and run one event. Returns 1 processed, 0 dropped (stale) or held
 * back (paused process), -1 empty. */
static int dispatch_one(mp_sim *sim)
{
    sim_event *ev = heap_pop(sim);
    if (!ev) return -1;
    assert(ev->time >= sim->now);
    sim->now = ev->time;
    if (!ev_live(sim, ev)) {
        sim_ev_free(sim, ev);
        return 0;
    }
    if (ev_runs_process(ev) && sim_proc_paused(sim, sim->procs[ev->pid])) {
        /* Held until the pause ends. Events pop in (time, seq) order and
         * are re-queued in that order at one instant, so they keep their
         * relative order when the process resumes. */
        sim_ev_push(sim, ev, sim->procs[ev->pid]->paused_until);
        return 0;
    }
    const uint64_t seq = ev->seq, time = ev->time;
    const uint8_t kind = ev->kind;
    const int32_t pid = ev->pid;
    sim->dispatching = true;
    sim->trace_extra = 0;
    switch ((sim_ev_kind)kind) {
    case EV_BOOT:
        boot_process(sim, ev);
        break;
    case EV_TIMER:
        ev->fn.timer(ev->ud);
        break;
    case EV_DEFER:
        ev->fn.defer(ev->ud);
        break;
    case EV_CONNECT:
        sim_net_on_connect(sim, ev);
        break;
    case EV_CONNECT_DONE:
        /* Unlink before the callback: it may close the stream, which frees
         * the events still linked to it. */
        sim_link_unlink(&ev->olink);
        ev->fn.connect(ev->ud, (mp_stream *)ev->obj, 0);
        break;
    case EV_CONNECT_FAIL:
        ev->fn.connect(ev->ud, NULL, ev->status);
        break;
    case EV_DELIVER:
        sim_net_on_deliver(sim, ev);
        break;
    case EV_WRITE_DONE:
        sim_link_unlink(&ev->olink);
        sim->trace_extra = (uint64_t)(int64_t)ev->status;
        if (ev->fn.write) ev->fn.write(ev->ud, ev->status);
        break;
    case EV_CLOSE_DONE:
        if (ev->fn.close) ev->fn.close(ev->ud);
        break;
    case EV_FAULT_TICK:
        sim_faults_on_tick(sim, ev);
        break;
    case EV_WORLD:
        ev->fn.world(ev->ud);
        break;
    case EV_EXIT:
        if (sim->procs[pid]->stopping) finish_stop(sim, sim->procs[pid]);
        break;
    case EV_KIND_COUNT_:
        assert(0);
        break;
    }
    sim->dispatching = false;
    /* Fold the event into the trace. */
    uint64_t h = sim->trace_hash;
    h = mp_mix64(h, seq);
    h = mp_mix64(h, time);
    h = mp_mix64(h, ((uint64_t)kind << 32) | (uint32_t)pid);
    h = mp_mix64(h, sim->trace_extra);
    sim->trace_hash = h;
    if (sim->cfg.record_trace) trace_record(sim, kind, pid, time);
    sim->events++;
    /* A handler may have re-queued the event (a delayed connect). */
    if (ev->heap_pos == SIM_HEAP_NONE) sim_ev_free(sim, ev);
    if (sim->graveyard) sweep_graveyard(sim);
    return 1;
}

bool mp_sim_step(mp_sim *sim)
{
    if (sim->dispatching) return false; /* not from inside an event */
    for (;;) {
        int r = dispatch_one(sim);
        if (r < 0) return false;
        if (r > 0) return true;
    }
}

uint64_t mp_sim_run_until(mp_sim *sim, uint64_t t_ns)
{
    uint64_t n = 0;
    if (sim->dispatching) return 0; /* not from inside an event */
    while (!sim->failed && sim->heap_len > 0 && sim->heap[0].time <= t_ns) {
        if (dispatch_one(sim) > 0) n++;
    }
    if (!sim->failed && sim->now < t_ns) sim->now = t_ns;
    return n;
}

bool mp_sim_run_while_not(mp_sim *sim, bool (*pred)(void *ud), void *ud,
                          uint64_t deadline_ns)
{
    if (pred(ud)) return true;
    if (sim->dispatching) return false; /* not from inside an event */
    while (!sim->failed && sim->heap_len > 0 &&
           sim->heap[0].time <= deadline_ns) {
        if (dispatch_one(sim) > 0 && pred(ud)) return true;
    }
    return pred(ud);
}

int mp_sim_schedule(mp_sim *sim, uint64_t delay_ns, void (*cb)(void *ud),
                    void *ud)
{
    if (!sim || !cb) return MP_EINVAL;
    sim_event *ev = sim_ev_alloc(sim, EV_WORLD, -1, 0);
    if (!ev) return MP_ENOMEM;
    ev->fn.world = cb;
    ev->ud = ud;
    uint64_t t = sim->now + delay_ns;
    if (t < sim->now) t = UINT64_MAX;
    sim_ev_push(sim, ev, t);
    return MP_OK;
}

uint64_t mp_sim_random(mp_sim *sim) { return mp_prng_next(&sim->rng_world); }

uint64_t mp_sim_random_below(mp_sim *sim, uint64_t n)
{
    return mp_prng_below(&sim->rng_world, n);
}

/* ---- outcome ------------------------------------------------------------------ */

void mp_sim_fail(mp_sim *sim, const char *fmt, ...)
{
    if (!sim) return;
    sim->failures++;
    if (sim->failed) return;
    sim->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sim->failure, sizeof sim->failure, fmt, ap);
    va_end(ap);
}

bool mp_sim_failed(mp_sim *sim) { return sim && sim->failed; }

const char *mp_sim_failure(mp_sim *sim)
{
    return sim && sim->failed ? sim->failure : NULL;
}

uint64_t mp_sim_trace_hash(mp_sim *sim) { return sim->trace_hash; }

uint64_t mp_sim_event_count(mp_sim *sim) { return sim->events; }

uint64_t mp_sim_trace_at(mp_sim *sim, uint64_t i)
{
    if (!sim->trace || i >= sim->events || i >= sim->trace_cap) return 0;
    return sim->trace[i];
}

const char *mp_sim_trace_label(mp_sim *sim, uint64_t i)
{
    if (!sim->labels || i >= sim->events || i >= sim->trace_cap) return NULL;
    const sim_label *l = &sim->labels[i];
    const char *kn = l->kind < EV_KIND_COUNT_ ? kind_names[l->kind] : "?";
    snprintf(sim->label_buf, sizeof sim->label_buf,
             "%s pid=%d t=%llu.%09llu", kn, (int)l->pid,
             (unsigned long long)(l->time / MP_NS_PER_SEC),
             (unsigned long long)(l->time % MP_NS_PER_SEC));
    return sim->label_buf;
}

void mp_sim_get_stats(mp_sim *sim, mp_sim_stats *out)
{
    *out = sim->stats;
    out->events = sim->events;
}
