/*
 * The simulated mp_env backend: one sim_env per process incarnation.
 *
 * Why a fresh env per incarnation: a restarted process must not see anything
 * of its previous life (timers, streams, listeners); tagging every event with
 * (pid, incarnation) and building a new env at each boot makes that automatic,
 * and lets stale timer ids from the old life miss harmlessly.
 *
 * Every callback goes through the world's event queue, never re-entrantly
 * from inside the call that caused it (env.h's contract), which is also what
 * makes each callback a separately traced event.
 *
 * Dead env (during and after teardown): calls are accepted but nothing they
 * schedule can run. Timers and defers are still queued (their tag is dead so
 * they are dropped when popped, and cancel still finds them), connects start
 * nothing, writes answer MP_ECLOSED (so no callback is promised), closes free
 * at once. listen() on a dead env answers MP_ECLOSED: a process being torn
 * down must not take an address.
 *
 * Timer ids are derived from the event pool slot and its generation, so they
 * depend only on the sequence of allocations, never on pointer values.
 */
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "sim/sim_internal.h"

static inline sim_env *senv_of(mp_env *e) { return (sim_env *)(void *)e; }

/* Each life's clock may be shifted (mp_sim_faults.clock_offset_max_ns);
 * timers take delays, so only readings move. */
static uint64_t env_now(mp_env *e) { return senv_of(e)->sim->now + senv_of(e)->clock_offset; }

static uint64_t deadline(mp_sim *sim, uint64_t delay_ns)
{
    uint64_t t = sim->now + delay_ns;
    return t < sim->now ? UINT64_MAX : t;
}

static mp_timer_id env_timer_start(mp_env *e, uint64_t delay_ns,
                                   mp_timer_cb cb, void *ud)
{
    sim_env *env = senv_of(e);
    if (!cb) return 0;
    sim_event *ev = sim_ev_alloc(env->sim, EV_TIMER, env->pid, env->inc);
    if (!ev) return 0;
    ev->fn.timer = cb;
    ev->ud = ud;
    sim_ev_push(env->sim, ev, deadline(env->sim, delay_ns));
    return sim_ev_id(ev);
}

static int env_timer_cancel(mp_env *e, mp_timer_id id)
{
    sim_env *env = senv_of(e);
    sim_event *ev = sim_ev_by_id(env->sim, id);
    /* Queued, a timer, and this env's: anything else is someone else's id, a
     * fired or cancelled timer, or garbage. */
    if (!ev || ev->heap_pos == SIM_HEAP_NONE || ev->kind != EV_TIMER ||
        ev->pid != env->pid || ev->inc != env->inc)
        return MP_ENOTFOUND;
    sim_ev_free(env->sim, ev);
    return MP_OK;
}

static int env_defer(mp_env *e, mp_defer_cb cb, void *ud)
{
    sim_env *env = senv_of(e);
    if (!cb) return MP_EINVAL;
    sim_event *ev = sim_ev_alloc(env->sim, EV_DEFER, env->pid, env->inc);
    if (!ev) return MP_ENOMEM;
    ev->fn.defer = cb;
    ev->ud = ud;
    sim_ev_push(env->sim, ev, env->sim->now);
    return MP_OK;
}

static int env_listen(mp_env *e, const char *addr, mp_accept_cb cb, void *ud,
                      mp_listener **out)
{
    sim_env *env = senv_of(e);
    if (!addr || !cb || !out) return MP_EINVAL;
    char host[64];
    uint16_t port;
    if (mp_addr_parse(addr, host, sizeof host, &port) != MP_OK || port == 0)
        return MP_EADDR;
    if (env->dead) return MP_ECLOSED;
    if (sim_net_find_listener(env->sim, addr)) return MP_EADDRINUSE;
    sim_listener *l = calloc(1, sizeof *l);
    if (!l) return MP_ENOMEM;
    l->addr = strdup(addr);
    if (!l->addr) {
        free(l);
        return MP_ENOMEM;
    }
    l->env = &env->base;
    l->senv = env;
    l->cb = cb;
    l->ud = ud;
    l->registered = true;
    sim_link_append(&env->sim->listeners, &l->wlink);
    sim_link_append(&env->listeners, &l->elink);
    *out = (mp_listener *)(void *)l;
    return MP_OK;
}

/* The simulator listens only on explicit ports (env_listen refuses port 0),
 * so the bound port is the one of the listened address. */
static int env_listener_port(mp_listener *ml)
{
    sim_listener *l = (sim_listener *)(void *)ml;
    char host[64];
    uint16_t port;
    if (mp_addr_parse(l->addr, host, sizeof host, &port) != MP_OK) return MP_EINVAL;
    return port;
}

static void listener_free(sim_listener *l)
{
    if (l->registered) {
        sim_link_unlink(&l->wlink);
        l->registered = false;
    }
    sim_link_unlink(&l->elink);
    free(l->addr);
    free(l);
}

static void env_listener_close(mp_listener *ml, mp_close_cb cb, void *ud)
{
    sim_listener *l = (sim_listener *)(void *)ml;
    sim_env *env = l->senv;
    listener_free(l);
    if (!cb || env->dead) return;
    sim_event *ev = sim_ev_alloc(env->sim, EV_CLOSE_DONE, env->pid, env->inc);
    if (!ev) {
        mp_sim_fail(env->sim, "simulator out of memory (listener close)");
        return;
    }
    ev->fn.close = cb;
    ev->ud = ud;
    sim_ev_push(env->sim, ev, env->sim->now);
}

static int env_connect(mp_env *e, const char *addr, mp_connect_cb cb, void *ud)
{
    return sim_net_connect(senv_of(e), addr, cb, ud);
}

static int env_read_start(mp_stream *ms, mp_read_cb cb, void *ud)
{
    sim_stream *s = (sim_stream *)(void *)ms;
    if (!cb) return MP_EINVAL;
    s->read_cb = cb;
    s->read_ud = ud;
    s->reading = true;
    sim_stream_schedule(s->senv->sim, s);
    return MP_OK;
}

static int env_read_stop(mp_stream *ms)
{
    sim_stream *s = (sim_stream *)(void *)ms;
    s->reading = false;
    sim_stream_schedule(s->senv->sim, s);
    return MP_OK;
}

static int env_write(mp_stream *ms, const mp_iovec *iov, int iovcnt,
                     mp_write_cb cb, void *ud)
{
    return sim_net_write((sim_stream *)(void *)ms, iov, iovcnt, cb, ud);
}

static void env_stream_close(mp_stream *ms, mp_close_cb cb, void *ud)
{
    sim_net_close((sim_stream *)(void *)ms, cb, ud);
}

static const char *env_stream_peer(mp_stream *ms)
{
    return ((sim_stream *)(void *)ms)->peer;
}

static uint64_t env_random(mp_env *e) { return mp_prng_next(&senv_of(e)->rng); }

/* "Secure" randomness is the process's seeded generator here: a seed must
 * replay the whole run, handshake nonces included. */
static int env_secure_random(mp_env *e, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        uint64_t r = mp_prng_next(&senv_of(e)->rng);
        size_t n = len < sizeof r ? len : sizeof r;
        for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(r >> (8 * i));
        p += n;
        len -= n;
    }
    return MP_OK;
}

static const mp_env_ops sim_env_ops = {
    .now_ns = env_now,
    .timer_start = env_timer_start,
    .timer_cancel = env_timer_cancel,
    .defer = env_defer,
    .listen = env_listen,
    .listener_close = env_listener_close,
    .connect = env_connect,
    .read_start = env_read_start,
    .read_stop = env_read_stop,
    .write = env_write,
    .stream_close = env_stream_close,
    .stream_peer = env_stream_peer,
    .random_u64 = env_random,
    .listener_port = env_listener_port,
    .secure_random = env_secure_random,
};

sim_env *sim_env_create(mp_sim *sim, sim_proc *p)
{
    sim_env *env = calloc(1, sizeof *env);
    if (!env) return NULL;
    env->base.ops = &sim_env_ops;
    env->base.log_level = sim->cfg.log_level;
    env->base.name = p->addr;
    env->sim = sim;
    env->pid = p->pid;
    env->inc = p->inc;
    mp_prng_seed(&env->rng,
                 mp_mix64(mp_mix64(sim->seed, (uint64_t)p->pid), p->inc));
    sim_link_init(&env->streams);
    sim_link_init(&env->listeners);
    /* From a hash, not a stream: drawing it would shift every later draw of
     * the world for workloads that do not opt in. */
    uint64_t max = sim->faults.clock_offset_max_ns;
    if (max) {
        env->clock_offset = mp_mix64(mp_mix64(sim->seed ^ 0xc10cull, (uint64_t)p->pid), p->inc) % max;
        MP_SOMETIMES(env->clock_offset > 0, "sim.fault.clock_offset");
    }
    return env;
}

void sim_env_kill_objects(sim_env *env, bool reset_conns)
{
    mp_sim *sim = env->sim;
    assert(env->dead);
    for (sim_link *l = env->streams.next; l != &env->streams; l = l->next) {
        sim_stream *s = SIM_CONTAINER(l, sim_stream, elink);
        sim_stream_drop_events(sim, s);
        if (reset_conns && !s->conn->reset) {
            /* The dead side's delay is unused (no reader will run). */
            uint64_t d[2] = {0, 0};
            d[1 - s->side] = sim_net_latency(sim);
            sim_conn_reset(sim, s->conn, d[0], d[1]);
        }
    }
    for (sim_link *l = env->listeners.next; l != &env->listeners;
         l = l->next) {
        sim_listener *li = SIM_CONTAINER(l, sim_listener, elink);
        if (li->registered) {
            sim_link_unlink(&li->wlink);
            li->registered = false;
        }
    }
}

void sim_env_free_objects(sim_env *env)
{
    while (!sim_link_empty(&env->streams)) {
        sim_stream *s = SIM_CONTAINER(env->streams.next, sim_stream, elink);
        sim_stream_free(env->sim, s);
    }
    while (!sim_link_empty(&env->listeners)) {
        sim_listener *l =
            SIM_CONTAINER(env->listeners.next, sim_listener, elink);
        listener_free(l);
    }
}

void sim_env_free(sim_env *env)
{
    assert(sim_link_empty(&env->streams) && sim_link_empty(&env->listeners));
    free(env);
}
