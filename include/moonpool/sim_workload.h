/*
 * Simulation workloads and the seed runner.
 *
 * A workload builds a cluster inside a world, drives traffic, and checks
 * invariants. The runner gives every seed the same two-phase life:
 *
 *   1. chaos: faults on (swarm-drawn per seed unless fixed), buggify on, for
 *      chaos_ns of simulated time;
 *   2. heal: mp_sim_heal, then the workload must become quiescent (all its
 *      work answered) within heal_ns, or the seed fails as a liveness failure;
 *
 * then the workload's final check runs. A seed fails on an always-assertion,
 * a workload failure (mp_sim_fail), a liveness failure or a final check
 * failure, and prints the one command that replays it.
 *
 * Thread: everything runs on the calling thread.
 */
#ifndef MOONPOOL_SIM_WORKLOAD_H
#define MOONPOOL_SIM_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "moonpool/sim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per-run knobs a workload may read (set from the command line). 0 means
 * "the workload's default" for each. */
typedef struct mp_workload_params {
    int nodes;
    int workers;
    /* Trace on stderr for replaying one seed (moonpool sim --trace): the
     * workload's operations and the nodes' routing at debug level. Adds
     * output only; never changes the simulated run. */
    bool trace;
} mp_workload_params;

typedef struct mp_sim_workload {
    const char *name;
    const char *description;
    /* Sometimes-assertion name prefixes that must all be hit at least once
     * across a seed set (NULL-terminated; NULL = no coverage demand). */
    const char *const *required_coverage;
    /* Simulated durations of the two phases (0 = runner defaults). */
    uint64_t chaos_ns;
    uint64_t heal_ns;
    /* Adjust the fault configuration drawn for a seed (swarm or fixed) before
     * the world is created, e.g. mp_sim_faults_swarm_process to opt into the
     * process faults. Not called with --no-faults. May be NULL. */
    void (*tune_faults)(uint64_t seed, mp_sim_faults *faults);
    /* Build the cluster and start traffic. Return 0 and the state, or an
     * error (the seed fails). */
    int (*setup)(mp_sim *sim, const mp_workload_params *params, void **state);
    /* Called once when the chaos phase ends (stop issuing new work, say). May
     * be NULL. */
    void (*on_heal)(mp_sim *sim, void *state);
    /* True when everything the workload started has settled. */
    bool (*quiescent)(mp_sim *sim, void *state);
    /* Final invariants after quiescence; report with mp_sim_fail. May be
     * NULL. */
    void (*check)(mp_sim *sim, void *state);
    /* Free the workload's own state (processes are torn down by the world). */
    void (*destroy)(void *state);
    /* Instead of setup (which is then unused): setup given `ctx`, so that one
     * function serves many workloads (mp_sim_cluster_workload does). */
    int (*setup_ctx)(mp_sim *sim, const mp_workload_params *params,
                     const void *ctx, void **state);
    const void *ctx;
} mp_sim_workload;

/* Registry of the workloads linked into this program. */
const mp_sim_workload *mp_sim_workload_find(const char *name);
/* Iterate: i from 0 until NULL. */
const mp_sim_workload *mp_sim_workload_at(int i);
/* Register a workload (the built-ins register themselves at startup).
 * Returns 0 or MP_EINVAL (duplicate name) / MP_ENOMEM. */
int mp_sim_workload_register(const mp_sim_workload *w);

typedef struct mp_sim_run_opts {
    uint64_t seed_first;
    uint64_t seed_last;       /* inclusive */
    bool check_determinism;   /* run each seed twice, compare event by event */
    bool swarm;               /* default true */
    bool buggify;             /* default true (when not swarm-drawn) */
    bool faults;              /* default true: false = perfect network */
    uint64_t chaos_ns;        /* 0: the workload's, else the runner default */
    uint64_t heal_ns;
    mp_workload_params params;
    int verbose;              /* 0: one line per failing seed; 1: per seed */
    FILE *out;                /* where lines go (stdout if NULL) */
    const char *argv0;        /* for the replay command line: "ARGV0 sim" */
    /* The replay line's command instead ("./mysim": a program of its own
     * running mp_sim_main); NULL: argv0 followed by " sim". */
    const char *command;
    /* Monotonic wall clock in seconds for the speed line, supplied by the
     * tool (runtime code may not read clocks); NULL: no speed line. */
    double (*wall_clock)(void);
} mp_sim_run_opts;

typedef struct mp_sim_run_result {
    uint64_t passed;
    uint64_t failed;
    uint64_t events;          /* summed over seeds */
    uint64_t sim_ns;          /* simulated time, summed */
    double wall_s;            /* wall time of the whole run */
    uint64_t coverage_missing; /* required sites never hit */
} mp_sim_run_result;

void mp_sim_run_opts_init(mp_sim_run_opts *o);

/* Run seeds of a workload; prints per-seed lines as asked, the coverage
 * report and the closing "N passed, M failed" line. Returns 0 if every seed
 * passed and coverage is complete, else 1. */
int mp_sim_run_seeds(const mp_sim_workload *w, const mp_sim_run_opts *opts,
                     mp_sim_run_result *result);

/* Run one seed once; fills *trace_hash and *events. Returns 0 (passed) or 1.
 * The failure message, if any, is written to `why`. Used by the runner and by
 * tests. */
int mp_sim_run_one(const mp_sim_workload *w, const mp_sim_run_opts *opts,
                   uint64_t seed, bool record_trace, uint64_t *trace_hash,
                   uint64_t *events, char *why, size_t why_cap);

/* The coverage registry (src/sim/coverage.c). Every named sometimes-site
 * must be required by a registered workload or listed there as unreachable
 * in simulation, with the reason. mp_sim_coverage_audit prints each
 * violation (and a summary line) and returns how many there are (0: the
 * registry is complete). */
int mp_sim_coverage_audit(FILE *out);
/* Why `name` is listed as unreachable, or NULL when it is not listed. */
const char *mp_sim_coverage_unreachable_reason(const char *name);
/* The first registered workload whose required_coverage matches `name`. */
const mp_sim_workload *mp_sim_coverage_required_by(const char *name);

#ifdef __cplusplus
}
#endif
#endif
