/*
 * The deterministic simulator.
 *
 * A world (mp_sim) holds simulated processes ("nodes"), each with its own
 * address and its own mp_env. Nothing in the world reads a real clock: time is
 * a number that jumps to the next event of one queue ordered by (time,
 * insertion sequence). Every random choice comes from the world's seed, split
 * into independent streams (configuration, faults, network scheduling,
 * buggify, and one per process incarnation), so the same seed replays the same
 * run event for event. Every processed event is folded into a rolling trace
 * hash; two runs of one seed must agree on every intermediate value.
 *
 * The network gives each connection TCP semantics (ordered, reliable until
 * broken) with latencies, connect failures, resets, partitions between process
 * pairs and clogging, all drawn from the seed when fault generation is on.
 * Received bytes are delivered in randomly sized pieces so that decoders see
 * every kind of split.
 *
 * A process is described by mp_sim_process_ops: `boot` builds it on its env,
 * `teardown` frees it. Killing a process resets its connections (peers see
 * MP_ECONNRESET), drops its timers and pending callbacks, then calls its
 * teardown, during which env calls are accepted but no callback ever runs
 * again. A restart boots it afresh with a higher incarnation; what it had on
 * its simulated disk survives (storage arrives with the storage layer; the
 * seam is mp_sim_process_disk).
 *
 * Thread: a world and everything in it runs on the thread that created it.
 */
#ifndef MOONPOOL_SIM_H
#define MOONPOOL_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/buggify.h"
#include "moonpool/env.h"
#include "moonpool/units.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_sim mp_sim;

/* Older names of MP_NS_PER_MS / MP_NS_PER_SEC (moonpool/units.h). */
#define MP_SIM_NS_PER_MS MP_NS_PER_MS
#define MP_SIM_NS_PER_S MP_NS_PER_SEC

/* Fault intensities. All zero: a perfect network with fixed base latency. */
typedef struct mp_sim_faults {
    /* One-way latency of a delivered chunk: uniform in [min, max], and with
     * probability latency_tail_p a tail value up to latency_tail_ns. */
    uint64_t latency_min_ns;
    uint64_t latency_max_ns;
    double latency_tail_p;
    uint64_t latency_tail_ns;
    double connect_fail_p;     /* a connect attempt is refused */
    double reset_rate;         /* random connection resets per simulated s */
    double partition_rate;     /* new partitions per simulated second */
    uint64_t partition_max_ns; /* a partition heals after up to this long */
    double clog_rate;          /* process clogs per simulated second */
    uint64_t clog_max_ns;      /* a clog lasts up to this long */
    double kill_rate;          /* kills of killable processes per sim second */
    uint64_t restart_max_ns;   /* a killed process restarts after up to this */
    bool buggify;              /* buggify sites may fire */
    /* Process faults (issue 11). All zero unless a workload opts in
     * (mp_sim_faults_swarm never draws them, so seeds of workloads that do
     * not opt in run exactly as before). Targets are killable processes. */
    double pause_rate;         /* pauses per simulated second (mp_sim_pause) */
    uint64_t pause_min_ns;     /* a pause lasts uniformly in [min, max] */
    uint64_t pause_max_ns;
    double stop_rate;          /* graceful restarts per sim s (mp_sim_stop) */
    uint64_t stop_deadline_ns; /* shutdown deadline given to the process */
    double oneway_rate;        /* one-way partitions per sim s; their length
                                  is drawn like partition_max_ns's */
    double write_fail_p;       /* a write the stream accepted then fails: the
                                  connection resets, its bytes are lost, the
                                  write callback says MP_ECONNRESET */
    uint64_t clock_offset_max_ns; /* each process life reads its clock
                                  (mp_env_now) shifted by up to this much,
                                  as machines' monotonic clocks are: no
                                  two nodes may compare their readings */
    /* Coverage only: faults at least this long count as "long" (set it to
     * the cluster's peer timeout). 0: none is long. */
    uint64_t long_fault_ns;
} mp_sim_faults;

typedef struct mp_sim_config {
    uint64_t seed;
    /* true: draw which fault families are on, and how strong, from the seed
     * (swarm testing); `faults` is then ignored. */
    bool swarm;
    mp_sim_faults faults;
    /* Keep the per-event hash sequence and labels for mp_sim_trace_at and
     * mp_sim_trace_label (determinism check). Costs 24 bytes per event. */
    bool record_trace;
    mp_log_level log_level; /* processes' env log level (default WARN) */
} mp_sim_config;

/* The defaults: seed 1, no swarm, moderate latency only, buggify off. */
void mp_sim_config_init(mp_sim_config *cfg);

/* Draw a swarm configuration of faults from a seed (deterministic). */
void mp_sim_faults_swarm(uint64_t seed, mp_sim_faults *out);

/* Opt into the process faults (pause, graceful restart, one-way and long
 * partitions), drawn from the seed on a stream of their own (so the families
 * drawn by mp_sim_faults_swarm keep their values): each family is on with
 * probability 1/2; pauses last 0.5..3 x peer_timeout_ns (most of them
 * 1.5..3 x); when partitions are on, partition_max_ns is raised to
 * 3 x peer_timeout_ns half of the time. Leaves a configuration without any
 * fault generation (rates all zero: --no-faults) unchanged. */
void mp_sim_faults_swarm_process(uint64_t seed, uint64_t peer_timeout_ns,
                                 mp_sim_faults *f);

/* Print a fault configuration on one line into buf (for run headers). */
void mp_sim_faults_format(const mp_sim_faults *f, char *buf, size_t cap);

/* Create and destroy a world. Creating a world makes it the thread's active
 * simulation (buggify and assertions report into it) until it is destroyed.
 * Only one world per thread at a time: returns NULL if one is active or on
 * out-of-memory. Destroy tears down every live process first. */
mp_sim *mp_sim_create(const mp_sim_config *cfg);
void mp_sim_destroy(mp_sim *sim);

/* ---- processes ----------------------------------------------------------- */

typedef struct mp_sim_process_ops {
    /* Build the process on `env` (which stays valid until teardown). Return 0
     * and the process state in *state, or an error: the process then counts
     * as crashed and is not running. `arg` is what was given to spawn. */
    int (*boot)(mp_env *env, void *arg, uint32_t incarnation, void **state);
    /* Release everything the process owns. After a kill no callback will run
     * again; env calls made here (closing streams, cancelling timers) are
     * accepted and complete without callbacks. Also called at
     * world destruction (for every process still running). */
    void (*teardown)(void *state);
    /* Graceful stop (mp_sim_stop), may be NULL (a stop is then a kill):
     * begin shutting down (mp_node_shutdown with deadline_ns, an absolute
     * env time) and call mp_sim_process_exit(env) once done. The world then
     * runs teardown (as after a kill) and boots the process again. */
    void (*stop)(void *state, uint64_t deadline_ns);
} mp_sim_process_ops;

/* Spawn a process listening on nothing yet, reachable at `addr` once it
 * listens. `addr` is copied; `ops` and `arg` must outlive the world. Boots at
 * the current simulated time (as an event). Returns the process id (>= 0) or
 * MP_EINVAL (duplicate or malformed address) / MP_ENOMEM. */
int mp_sim_spawn(mp_sim *sim, const char *addr, const mp_sim_process_ops *ops,
                 void *arg);

/* Kill a process now: connections reset, timers and callbacks vanish,
 * teardown runs. Returns 0 or MP_ENOTFOUND / MP_EINVAL (not running). */
int mp_sim_kill(mp_sim *sim, int pid);

/* Boot a killed process again after delay_ns, with incarnation + 1. */
int mp_sim_restart(mp_sim *sim, int pid, uint64_t delay_ns);

/* Pause a running process for duration_ns: none of its timers, deferred
 * callbacks, deliveries, connects or write/close completions run, nobody can
 * complete a connect to it, and it writes nothing (it runs no code); bytes
 * it wrote before stay in flight. At the end it resumes with its memory
 * intact and the events that fell due meanwhile run in their original
 * order. A kill or stop ends a pause. Pausing a paused process extends the
 * pause. Returns 0, MP_ENOTFOUND, or MP_EINVAL (not running). */
int mp_sim_pause(mp_sim *sim, int pid, uint64_t duration_ns);

/* Whether the process is paused now. */
bool mp_sim_process_paused(mp_sim *sim, int pid);

/* Graceful restart: ask a running process to stop (its ops->stop with the
 * absolute deadline now + deadline_ns); when it calls mp_sim_process_exit,
 * or at the deadline + 1 s if it never does, it is torn down and booted
 * again restart_delay_ns later with incarnation + 1. Returns 0,
 * MP_ENOTFOUND, or MP_EINVAL (not running, or already stopping). */
int mp_sim_stop(mp_sim *sim, int pid, uint64_t deadline_ns,
                uint64_t restart_delay_ns);

/* Called by a process (from its own callback) whose graceful stop is done:
 * the world tears it down as an event at the current time. Ignored unless
 * the process was asked to stop. */
void mp_sim_process_exit(mp_env *env);

/* Whether a process is running (booted and not killed). */
bool mp_sim_process_running(mp_sim *sim, int pid);

/* Current incarnation (1 at first boot, +1 per restart). */
uint32_t mp_sim_process_incarnation(mp_sim *sim, int pid);

/* The process's state as returned by boot, NULL if not running. */
void *mp_sim_process_state(mp_sim *sim, int pid);

/* The process's env, NULL if not running. */
mp_env *mp_sim_process_env(mp_sim *sim, int pid);

/* Allow the fault generator to kill (and later restart) this process. */
void mp_sim_set_killable(mp_sim *sim, int pid, bool killable);

/* Number of processes ever spawned (pids are 0 .. count-1). */
int mp_sim_process_count(mp_sim *sim);

/* Storage seam: one opaque per-process pointer that survives kill and
 * restart, owned by whoever sets it (the storage layer). */
void **mp_sim_process_disk(mp_sim *sim, int pid);

/* ---- running ------------------------------------------------------------- */

uint64_t mp_sim_now(mp_sim *sim);

/* Process the next event. Returns true if one was processed, false when the
 * queue is empty. */
bool mp_sim_step(mp_sim *sim);

/* Process events while their time is <= t_ns, then set the clock to t_ns.
 * Returns the number of events processed. Stops early if the seed failed. */
uint64_t mp_sim_run_until(mp_sim *sim, uint64_t t_ns);

/* Run until pred(ud) is true (checked after each event), the queue empties,
 * the seed fails, or simulated time passes deadline_ns. Returns true iff pred
 * became true. */
bool mp_sim_run_while_not(mp_sim *sim, bool (*pred)(void *ud), void *ud,
                          uint64_t deadline_ns);

/* Schedule a world-level callback (workload driver, not inside a process) at
 * now + delay_ns. It is an event like any other. Returns 0 or MP_ENOMEM. */
int mp_sim_schedule(mp_sim *sim, uint64_t delay_ns, void (*cb)(void *ud),
                    void *ud);

/* World-level randomness for workload drivers (its own stream). */
uint64_t mp_sim_random(mp_sim *sim);
uint64_t mp_sim_random_below(mp_sim *sim, uint64_t n);

/* ---- faults -------------------------------------------------------------- */

/* Replace the fault intensities (the generator uses them from now on). */
void mp_sim_set_faults(mp_sim *sim, const mp_sim_faults *faults);
const mp_sim_faults *mp_sim_get_faults(mp_sim *sim);

/* Cut the network between two processes in both directions for duration_ns
 * (0 = until healed). Bytes in flight wait; connects fail. */
int mp_sim_partition(mp_sim *sim, int pid_a, int pid_b, uint64_t duration_ns);

/* Drop-and-hold the direction from -> to only for duration_ns (0 = until
 * healed): bytes from `from` to `to` wait in flight while the other
 * direction flows; connects between the two fail either way (the handshake
 * needs both directions). */
int mp_sim_partition_oneway(mp_sim *sim, int from_pid, int to_pid,
                            uint64_t duration_ns);

/* Stall everything a process sends and receives for duration_ns. */
int mp_sim_clog(mp_sim *sim, int pid, uint64_t duration_ns);

/* Reset every connection between two processes now. */
int mp_sim_reset_connections(mp_sim *sim, int pid_a, int pid_b);

/* Heal phase: stop generating faults (buggify included), heal partitions and
 * clogs, restart every killed process that was killed by the generator, and
 * use base latency from now on. Pauses run to their end and graceful stops
 * under way complete (and restart): both are bounded. */
void mp_sim_heal(mp_sim *sim);

/* ---- outcome ------------------------------------------------------------- */

/* Fail the seed with a message (first failure wins; later ones are counted).
 * Workload checks use it; MP_ALWAYS uses it. */
void mp_sim_fail(mp_sim *sim, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
bool mp_sim_failed(mp_sim *sim);
const char *mp_sim_failure(mp_sim *sim); /* NULL when not failed */

/* The active world of this thread, or NULL. */
mp_sim *mp_sim_current(void);

/* Trace: a rolling 64-bit hash over every processed event. */
uint64_t mp_sim_trace_hash(mp_sim *sim);
uint64_t mp_sim_event_count(mp_sim *sim);
/* Hash after event i (0-based) when record_trace was on, else 0. */
uint64_t mp_sim_trace_at(mp_sim *sim, uint64_t i);
/* Short description of the kind of event i ("timer pid=2"), or NULL when not
 * recorded. Owned by the world. */
const char *mp_sim_trace_label(mp_sim *sim, uint64_t i);

/* Counters of what the world did (for reports and coverage). */
typedef struct mp_sim_stats {
    uint64_t events;
    uint64_t bytes_delivered;
    uint64_t connects, connect_failures, resets, partitions, clogs, kills,
        restarts, buggify_fired;
    uint64_t pauses, stops, oneway_partitions;
} mp_sim_stats;
void mp_sim_get_stats(mp_sim *sim, mp_sim_stats *out);

#ifdef __cplusplus
}
#endif
#endif
