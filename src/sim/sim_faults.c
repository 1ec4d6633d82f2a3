/*
 * Fault configuration and the fault generator.
 *
 * The generator is one periodic event (every FAULT_TICK_NS of simulated time)
 * that draws, per fault family, whether a fault starts in this tick
 * (Bernoulli with rate * tick, i.e. a Poisson process discretised at 10 ms).
 * A single periodic event keeps the draws from the faults stream in a fixed
 * order per tick, so changing one family's rate never reshuffles another's
 * timing, and it costs 100 events per simulated second, nothing next to the
 * traffic. The tick only runs while some rate is non-zero, so a world without
 * faults has an empty queue once its processes go quiet.
 *
 * Kills: only processes marked killable, and never more than half of them
 * (at least one) down at once because of the generator, so a cluster can still
 * make progress through the chaos phase. Each generator kill schedules its own
 * restart (up to restart_max_ns later); mp_sim_heal brings the remaining ones
 * back at once.
 *
 * Swarm testing (mp_sim_faults_swarm): each family is on with probability 1/2
 * and its intensity is drawn, buggify is on with probability 3/4. The minimum
 * rates are chosen so a 10 s chaos phase sees several faults of each enabled
 * family.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"

#define FAULT_TICK_NS (10 * MP_NS_PER_MS)
#define MS MP_NS_PER_MS
#define US MP_NS_PER_US

void mp_sim_config_init(mp_sim_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->seed = 1;
    cfg->faults.latency_min_ns = 50 * US;
    cfg->faults.latency_max_ns = 2 * MS;
    cfg->faults.latency_tail_p = 0.01;
    cfg->faults.latency_tail_ns = 100 * MS;
    cfg->log_level = MP_LOG_WARN;
}

void mp_sim_faults_swarm(uint64_t seed, mp_sim_faults *out)
{
    mp_prng r;
    mp_prng_seed(&r, mp_mix64(seed, SIM_STREAM_CONFIG));
    memset(out, 0, sizeof *out);
    static const uint64_t max_lat[] = {1 * MS, 2 * MS, 5 * MS, 20 * MS};
    out->latency_min_ns = 50 * US;
    out->latency_max_ns = max_lat[mp_prng_below(&r, 4)];
    if (mp_prng_chance(&r, 0.75)) {
        out->latency_tail_p = 0.002 + 0.02 * mp_prng_unit(&r);
        out->latency_tail_ns = 100 * MS + mp_prng_below(&r, 400 * MS);
    }
    if (mp_prng_chance(&r, 0.5))
        out->connect_fail_p = 0.02 + 0.18 * mp_prng_unit(&r);
    if (mp_prng_chance(&r, 0.5)) out->reset_rate = 0.3 + 1.7 * mp_prng_unit(&r);
    if (mp_prng_chance(&r, 0.5)) {
        out->partition_rate = 0.3 + 0.7 * mp_prng_unit(&r);
        out->partition_max_ns = 100 * MS + mp_prng_below(&r, 1900 * MS);
    }
    if (mp_prng_chance(&r, 0.5)) {
        out->clog_rate = 0.3 + 1.7 * mp_prng_unit(&r);
        out->clog_max_ns = 10 * MS + mp_prng_below(&r, 490 * MS);
    }
    if (mp_prng_chance(&r, 0.5)) {
        out->kill_rate = 0.3 + 0.4 * mp_prng_unit(&r);
        out->restart_max_ns = 100 * MS + mp_prng_below(&r, 1900 * MS);
    }
    out->buggify = mp_prng_chance(&r, 0.75);
}

static double ms_of(uint64_t ns) { return (double)ns / (double)MS; }

static bool generator_active(const mp_sim_faults *f);

void mp_sim_faults_swarm_process(uint64_t seed, uint64_t peer_timeout_ns,
                                 mp_sim_faults *f)
{
    if (!generator_active(f)) return; /* --no-faults: stay a calm world */
    mp_prng r;
    mp_prng_seed(&r, mp_mix64(seed, SIM_STREAM_PROCFAULTS));
    uint64_t pt = peer_timeout_ns ? peer_timeout_ns : MP_SIM_NS_PER_S;
    f->long_fault_ns = pt;
    if (mp_prng_chance(&r, 0.5)) {
        f->pause_rate = 0.2 + 0.4 * mp_prng_unit(&r);
        /* Most pauses outlast the peer timeout (1.5..3 x), a quarter of the
         * seeds also see short ones (from 0.5 x). */
        f->pause_min_ns = mp_prng_chance(&r, 0.25) ? pt / 2 : pt + pt / 2;
        f->pause_max_ns = 3 * pt;
    }
    if (mp_prng_chance(&r, 0.5)) {
        f->stop_rate = 0.2 + 0.4 * mp_prng_unit(&r);
        f->stop_deadline_ns = 200 * MS + mp_prng_below(&r, 1800 * MS);
        if (f->restart_max_ns == 0)
            f->restart_max_ns = 100 * MS + mp_prng_below(&r, 1900 * MS);
    }
    if (mp_prng_chance(&r, 0.5)) {
        f->oneway_rate = 0.2 + 0.6 * mp_prng_unit(&r);
        if (f->partition_max_ns == 0)
            f->partition_max_ns = 100 * MS + mp_prng_below(&r, 1900 * MS);
    }
    if ((f->partition_rate > 0 || f->oneway_rate > 0) &&
        mp_prng_chance(&r, 0.5) && f->partition_max_ns < 3 * pt)
        f->partition_max_ns = 3 * pt; /* longer than the peer timeout */
    if (mp_prng_chance(&r, 0.5)) f->write_fail_p = 0.001 + 0.009 * mp_prng_unit(&r);
    if (mp_prng_chance(&r, 0.5)) f->clock_offset_max_ns = 3600ull * MP_SIM_NS_PER_S;
}

void mp_sim_faults_format(const mp_sim_faults *f, char *buf, size_t cap)
{
    if (!buf || cap == 0) return;
    snprintf(buf, cap,
             "lat=%.3f..%.3fms tail=%.3f@%.0fms connfail=%.3f reset=%.2f/s "
             "part=%.2f/s<=%.0fms clog=%.2f/s<=%.0fms kill=%.2f/s "
             "restart<=%.0fms buggify=%s",
             ms_of(f->latency_min_ns), ms_of(f->latency_max_ns),
             f->latency_tail_p, ms_of(f->latency_tail_ns), f->connect_fail_p,
             f->reset_rate, f->partition_rate, ms_of(f->partition_max_ns),
             f->clog_rate, ms_of(f->clog_max_ns), f->kill_rate,
             ms_of(f->restart_max_ns), f->buggify ? "on" : "off");
    /* Process faults only when on: lines of other workloads stay as they
     * were. */
    if (f->pause_rate > 0 || f->stop_rate > 0 || f->oneway_rate > 0) {
        size_t n = strlen(buf);
        if (n < cap)
            snprintf(buf + n, cap - n,
                     " pause=%.2f/s:%.0f..%.0fms stop=%.2f/s<=%.0fms "
                     "oneway=%.2f/s",
                     f->pause_rate, ms_of(f->pause_min_ns),
                     ms_of(f->pause_max_ns), f->stop_rate,
                     ms_of(f->stop_deadline_ns), f->oneway_rate);
    }
    if (f->write_fail_p > 0) {
        size_t n = strlen(buf);
        if (n < cap) snprintf(buf + n, cap - n, " wfail=%.4f", f->write_fail_p);
    }
    if (f->clock_offset_max_ns > 0) {
        size_t n = strlen(buf);
        if (n < cap) snprintf(buf + n, cap - n, " clock<=%.0fs", (double)f->clock_offset_max_ns / 1e9);
    }
}

static bool generator_active(const mp_sim_faults *f)
{
    return f->reset_rate > 0 || f->partition_rate > 0 || f->clog_rate > 0 ||
           f->kill_rate > 0 || f->pause_rate > 0 || f->stop_rate > 0 ||
           f->oneway_rate > 0;
}

void sim_faults_start(mp_sim *sim)
{
    if (sim->tick_scheduled || !generator_active(&sim->faults)) return;
    sim_event *ev = sim_ev_alloc(sim, EV_FAULT_TICK, -1, 0);
    if (!ev) {
        mp_sim_fail(sim, "simulator out of memory (fault generator)");
        return;
    }
    sim->tick_scheduled = true;
    sim_ev_push(sim, ev, sim->now + FAULT_TICK_NS);
}

/* Bernoulli approximation of "a Poisson(rate) event happens in this tick". */
static bool fires(mp_sim *sim, double rate)
{
    if (rate <= 0) return false;
    return mp_prng_chance(&sim->rng_faults,
                          rate * ((double)FAULT_TICK_NS / MP_NS_PER_SEC));
}

static uint64_t duration_upto(mp_sim *sim, uint64_t max_ns, uint64_t dflt)
{
    if (max_ns == 0) max_ns = dflt;
    uint64_t lo = max_ns / 10 + 1;
    return lo + mp_prng_below(&sim->rng_faults, max_ns - lo + 1);
}

static void gen_partition(mp_sim *sim)
{
    if (sim->nprocs < 2) return;
    int a = (int)mp_prng_below(&sim->rng_faults, (uint64_t)sim->nprocs);
    int b = (int)mp_prng_below(&sim->rng_faults, (uint64_t)sim->nprocs - 1);
    if (b >= a) b++;
    uint64_t d = duration_upto(sim, sim->faults.partition_max_ns, 500 * MS);
    mp_sim_partition(sim, a, b, d);
}

static void gen_clog(mp_sim *sim)
{
    if (sim->nprocs < 1) return;
    int p = (int)mp_prng_below(&sim->rng_faults, (uint64_t)sim->nprocs);
    mp_sim_clog(sim, p, duration_upto(sim, sim->faults.clog_max_ns, 100 * MS));
}

static bool conn_resettable(const sim_conn *c)
{
    return !c->reset && c->end[0] && c->end[1] && !c->end[0]->senv->dead &&
           !c->end[1]->senv->dead;
}

static void gen_reset(mp_sim *sim)
{
    uint64_t n = 0;
    for (sim_link *l = sim->conns.next; l != &sim->conns; l = l->next)
        if (conn_resettable(SIM_CONTAINER(l, sim_conn, wlink))) n++;
    if (n == 0) return;
    uint64_t k = mp_prng_below(&sim->rng_faults, n);
    for (sim_link *l = sim->conns.next; l != &sim->conns; l = l->next) {
        sim_conn *c = SIM_CONTAINER(l, sim_conn, wlink);
        if (!conn_resettable(c)) continue;
        if (k-- == 0) {
            uint64_t d0 = sim_net_latency(sim), d1 = sim_net_latency(sim);
            sim_conn_reset(sim, c, d0, d1);
            return;
        }
    }
}

static void gen_kill(mp_sim *sim)
{
    int killable = 0, down = 0, candidates = 0;
    for (int i = 0; i < sim->nprocs; i++) {
        sim_proc *p = sim->procs[i];
        if (!p->killable) continue;
        killable++;
        if (p->killed_by_gen && p->state != PROC_RUNNING) down++;
        if (p->state == PROC_RUNNING) candidates++;
    }
    int limit = killable / 2 > 1 ? killable / 2 : 1;
    if (candidates == 0 || down >= limit) return;
    uint64_t k = mp_prng_below(&sim->rng_faults, (uint64_t)candidates);
    for (int i = 0; i < sim->nprocs; i++) {
        sim_proc *p = sim->procs[i];
        if (!p->killable || p->state != PROC_RUNNING) continue;
        if (k-- > 0) continue;
        uint64_t delay = mp_prng_below(&sim->rng_faults,
                                       sim->faults.restart_max_ns + 1);
        sim->stats.kills++;
        sim_proc_kill(sim, p, true);
        p->killed_by_gen = true;
        if (sim_schedule_boot(sim, p, delay) != MP_OK)
            mp_sim_fail(sim, "simulator out of memory (restart)");
        return;
    }
}

/* Processes the generator may pause or stop: killable, running, neither
 * paused nor stopping; and no more than the kill limit of them unavailable
 * (killed, paused or stopping because of the generator) at once. */
static bool proc_fault_target(mp_sim *sim, const sim_proc *p)
{
    return p->killable && p->state == PROC_RUNNING && !p->stopping &&
           !sim_proc_paused(sim, p);
}

static sim_proc *pick_proc_target(mp_sim *sim)
{
    int killable = 0, down = 0, candidates = 0;
    for (int i = 0; i < sim->nprocs; i++) {
        sim_proc *p = sim->procs[i];
        if (!p->killable) continue;
        killable++;
        if ((p->killed_by_gen && p->state != PROC_RUNNING) || p->stopping ||
            sim_proc_paused(sim, p))
            down++;
        if (proc_fault_target(sim, p)) candidates++;
    }
    int limit = killable / 2 > 1 ? killable / 2 : 1;
    if (candidates == 0 || down >= limit) return NULL;
    uint64_t k = mp_prng_below(&sim->rng_faults, (uint64_t)candidates);
    for (int i = 0; i < sim->nprocs; i++) {
        sim_proc *p = sim->procs[i];
        if (!proc_fault_target(sim, p)) continue;
        if (k-- == 0) return p;
    }
    return NULL;
}

static void gen_pause(mp_sim *sim)
{
    sim_proc *p = pick_proc_target(sim);
    if (!p) return;
    const mp_sim_faults *f = &sim->faults;
    uint64_t lo = f->pause_min_ns, hi = f->pause_max_ns;
    if (hi < lo) hi = lo;
    uint64_t d = lo + mp_prng_below(&sim->rng_faults, hi - lo + 1);
    if (d == 0) return;
    mp_sim_pause(sim, p->pid, d);
    MP_SOMETIMES(true, "sim.fault.pause");
    if (f->long_fault_ns && d >= f->long_fault_ns + f->long_fault_ns / 2)
        MP_SOMETIMES(true, "sim.fault.pause_long");
}

static void gen_stop(mp_sim *sim)
{
    sim_proc *p = pick_proc_target(sim);
    if (!p) return;
    const mp_sim_faults *f = &sim->faults;
    uint64_t deadline = f->stop_deadline_ns ? f->stop_deadline_ns
                                            : 2 * MP_SIM_NS_PER_S;
    uint64_t delay = mp_prng_below(&sim->rng_faults, f->restart_max_ns + 1);
    if (mp_sim_stop(sim, p->pid, deadline, delay) == MP_OK)
        MP_SOMETIMES(true, "sim.fault.stop");
}

static void gen_oneway(mp_sim *sim)
{
    if (sim->nprocs < 2) return;
    int a = (int)mp_prng_below(&sim->rng_faults, (uint64_t)sim->nprocs);
    int b = (int)mp_prng_below(&sim->rng_faults, (uint64_t)sim->nprocs - 1);
    if (b >= a) b++;
    uint64_t d = duration_upto(sim, sim->faults.partition_max_ns, 500 * MS);
    mp_sim_partition_oneway(sim, a, b, d);
}

void sim_faults_on_tick(mp_sim *sim, sim_event *ev)
{
    sim->tick_scheduled = false;
    const mp_sim_faults *f = &sim->faults;
    if (!generator_active(f)) return;
    /* Fixed order of draws per tick (determinism). */
    bool part = fires(sim, f->partition_rate);
    bool clog = fires(sim, f->clog_rate);
    bool reset = fires(sim, f->reset_rate);
    bool kill = fires(sim, f->kill_rate);
    /* Process faults draw only when on (fires() draws nothing at rate 0),
     * so worlds without them see the same stream as before. */
    bool pause = fires(sim, f->pause_rate);
    bool stop = fires(sim, f->stop_rate);
    bool oneway = fires(sim, f->oneway_rate);
    if (part) gen_partition(sim);
    if (clog) gen_clog(sim);
    if (reset) gen_reset(sim);
    if (kill) gen_kill(sim);
    if (pause) gen_pause(sim);
    if (stop) gen_stop(sim);
    if (oneway) gen_oneway(sim);
    sim->tick_scheduled = true;
    sim_ev_push(sim, ev, sim->now + FAULT_TICK_NS); /* reuse the event */
}

/* ---- public fault API ------------------------------------------------------------- */

void mp_sim_set_faults(mp_sim *sim, const mp_sim_faults *faults)
{
    if (!sim || !faults) return;
    sim->faults = *faults;
    sim->healed = false;
    sim_faults_start(sim);
}

const mp_sim_faults *mp_sim_get_faults(mp_sim *sim) { return &sim->faults; }

int mp_sim_partition(mp_sim *sim, int pid_a, int pid_b, uint64_t duration_ns)
{
    if (!sim_proc_get(sim, pid_a) || !sim_proc_get(sim, pid_b))
        return MP_ENOTFOUND;
    if (pid_a == pid_b) return MP_EINVAL;
    int rc = sim_partition_add(sim, pid_a, pid_b, false, duration_ns);
    if (rc != MP_OK) return rc;
    sim->stats.partitions++;
    if (sim->faults.long_fault_ns && duration_ns >= sim->faults.long_fault_ns)
        MP_SOMETIMES(true, "sim.fault.partition_long");
    return MP_OK;
}

int mp_sim_partition_oneway(mp_sim *sim, int from_pid, int to_pid,
                            uint64_t duration_ns)
{
    if (!sim_proc_get(sim, from_pid) || !sim_proc_get(sim, to_pid))
        return MP_ENOTFOUND;
    if (from_pid == to_pid) return MP_EINVAL;
    int rc = sim_partition_add(sim, from_pid, to_pid, true, duration_ns);
    if (rc != MP_OK) return rc;
    sim->stats.oneway_partitions++;
    MP_SOMETIMES(true, "sim.fault.partition_oneway");
    if (sim->faults.long_fault_ns && duration_ns >= sim->faults.long_fault_ns)
        MP_SOMETIMES(true, "sim.fault.partition_oneway_long");
    return MP_OK;
}

int mp_sim_clog(mp_sim *sim, int pid, uint64_t duration_ns)
{
    sim_proc *p = sim_proc_get(sim, pid);
    if (!p) return MP_ENOTFOUND;
    uint64_t until = UINT64_MAX;
    if (duration_ns) {
        until = sim->now + duration_ns;
        if (until < sim->now) until = UINT64_MAX;
    }
    if (until > p->clog_until) p->clog_until = until;
    sim->stats.clogs++;
    return MP_OK;
}

int mp_sim_reset_connections(mp_sim *sim, int pid_a, int pid_b)
{
    if (!sim_proc_get(sim, pid_a) || !sim_proc_get(sim, pid_b))
        return MP_ENOTFOUND;
    for (sim_link *l = sim->conns.next; l != &sim->conns; l = l->next) {
        sim_conn *c = SIM_CONTAINER(l, sim_conn, wlink);
        bool match = (c->pid[0] == pid_a && c->pid[1] == pid_b) ||
                     (c->pid[0] == pid_b && c->pid[1] == pid_a);
        if (!match || c->reset) continue;
        uint64_t d0 = sim_net_latency(sim), d1 = sim_net_latency(sim);
        sim_conn_reset(sim, c, d0, d1);
    }
    return MP_OK;
}

void mp_sim_heal(mp_sim *sim)
{
    mp_sim_faults *f = &sim->faults;
    sim->healed = true;
    f->reset_rate = f->partition_rate = f->clog_rate = f->kill_rate = 0;
    f->pause_rate = f->stop_rate = f->oneway_rate = 0;
    f->connect_fail_p = 0;
    f->latency_tail_p = 0;
    f->buggify = false;
    sim->nparts = 0;
    for (int i = 0; i < sim->nprocs; i++) {
        sim_proc *p = sim->procs[i];
        p->clog_until = 0;
        if (p->killed_by_gen && p->state != PROC_RUNNING) {
            /* Bring it back now; a later boot event of the old schedule is
             * stale (token) and dropped. */
            if (sim_schedule_boot(sim, p, 0) != MP_OK)
                mp_sim_fail(sim, "simulator out of memory (heal restart)");
        }
        p->killed_by_gen = false;
    }
    sim_net_kick_all(sim);
}
