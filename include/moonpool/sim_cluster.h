/*
 * Simulating your own actor types: a cluster harness for workloads.
 *
 * A workload written against sim_workload.h alone builds its own processes,
 * nodes, database, clients and bookkeeping (the built-in bank workload is
 * 1,700 lines of it). This harness does that part, so a workload is only
 * what is particular to the user's actors: what the clients call, and what
 * must hold.
 *
 * Describe the cluster and the callbacks in an mp_sim_cluster_spec, turn it
 * into an mp_sim_workload with mp_sim_cluster_workload, and hand that to
 * mp_sim_main (your program then has `moonpool sim`'s command line: seeds,
 * --check-determinism, --trace, the replay line of a failing seed).
 *
 * Per seed, the harness spawns:
 *   - `members` member nodes at 10.0.1.1:4000, 10.0.1.2:4000, ... hosting
 *     every type of spec->types; with kill_members the fault generator kills,
 *     pauses, and gracefully restarts them (a swarm-drawn mix per seed);
 *   - with `storage`, one never-killed database process owning a simulated
 *     disk; every member uses it as its storage provider (actor state survives
 *     kills; its reads and writes fail now and then until heal, and some
 *     failed writes land anyway, as a real database's do);
 *   - `clients` client-only nodes (10.0.2.1:4000, ...), never killed, from
 *     which the workload's calls leave.
 * Then the seed's life (sim_workload.h): start; a chaos phase in which every
 * tick_ns each client with fewer than max_in_flight calls pending is handed
 * to spec->tick; the heal (faults stop, killed members restart) and, once
 * every call of the chaos phase completed, spec->heal; quiescence once every call the workload issued has completed;
 * spec->check. Network faults (latency, resets, partitions, clogs, connect
 * failures) reach every process.
 *
 * Calls: mp_sim_cluster_call from client i, with a completion that says what
 * happened (mp_call_status_class tells "executed", "not executed" and "may
 * have run" apart: an oracle must accept exactly what the class allows,
 * never "anything during chaos"). mp_sim_cluster_call_until_ok retries until
 * the call succeeds: for reads after the heal.
 *
 * Failing a seed: mp_sim_cluster_fail (or an MP_ALWAYS assertion) from any
 * callback; the first failure is the seed's message.
 *
 * Thread: everything runs on the simulation's thread, inside the seed
 * runner. Callbacks never run after the world is destroyed.
 */
#ifndef MOONPOOL_SIM_CLUSTER_H
#define MOONPOOL_SIM_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/actor.h"
#include "moonpool/node.h"
#include "moonpool/sim.h"
#include "moonpool/sim_workload.h"
#include "moonpool/storage.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MP_SIM_CLUSTER_MAX_MEMBERS 16
#define MP_SIM_CLUSTER_MAX_CLIENTS 16

typedef struct mp_sim_cluster mp_sim_cluster;

typedef struct mp_sim_cluster_spec {
    const char *name;        /* the workload's name (--workload NAME) */
    const char *description; /* one line for --list */
    /* Sometimes-site prefixes every seed range must reach (sim_workload.h);
     * NULL: none. */
    const char *const *required_coverage;

    /* ---- the cluster ---- */
    int members;  /* 1..MP_SIM_CLUSTER_MAX_MEMBERS; --nodes overrides */
    int clients;  /* 1..MP_SIM_CLUSTER_MAX_CLIENTS; --workers overrides */
    /* Actor types every member registers; NULL-terminated. They must
     * outlive the program run (static tables). */
    const mp_actor_type *const *types;
    bool storage;      /* the shared simulated database (above) */
    bool kill_members; /* members may be killed, paused, restarted */
    /* Node settings; 0: 4 s call timeout, the node's idle timeout. The
     * peer timeout is 1 s (heartbeat 100 ms) so that dead peers are noticed
     * well within a seed. */
    uint64_t call_timeout_ns;
    uint64_t idle_timeout_ns;
    /* The driver: 0 gives 20 ms and 4. */
    uint64_t tick_ns;
    int max_in_flight; /* calls pending per client before its tick skips */
    /* Phase lengths; 0: the runner's defaults (10 s chaos, 30 s heal). */
    uint64_t chaos_ns;
    uint64_t heal_ns;
    /* The fault configuration: called before anything is spawned with the
     * faults drawn for the seed (swarm, or fixed with --no-swarm; all zero
     * with --no-faults), to change in place (turn a family off, lengthen
     * latencies, ...); the world uses the result. The seed's -v line shows
     * the faults as drawn. May be NULL. */
    void (*tune_faults)(mp_sim_cluster *c, mp_sim_faults *faults);

    /* ---- the workload ---- (ud is what start returned) */
    /* Create the workload's state; calls may start here. Return 0, or an
     * error status (the seed fails with it). Required. */
    int (*start)(mp_sim_cluster *c, void **ud);
    /* A client's turn during the chaos phase: issue calls (or not).
     * Required. */
    void (*tick)(mp_sim_cluster *c, int client, void *ud);
    /* The chaos phase is over, the world healed, and every call issued
     * before completed: issue the final calls (reads for check). May be
     * NULL. */
    void (*heal)(mp_sim_cluster *c, void *ud);
    /* Every call completed after the heal: check the invariants and report
     * a violation with mp_sim_cluster_fail. May be NULL. */
    void (*check)(mp_sim_cluster *c, void *ud);
    /* Free the state (after the world is gone). May be NULL. */
    void (*free)(void *ud);
} mp_sim_cluster_spec;

/* Fill *out (a workload for mp_sim_main or mp_sim_run_seeds) from spec.
 * `spec` is not copied: it must outlive every run (a static). Returns 0, or
 * MP_EINVAL (NULL, no name, no start or tick, no types, counts out of
 * range). */
int mp_sim_cluster_workload(const mp_sim_cluster_spec *spec,
                            mp_sim_workload *out);

/* ---- inside the callbacks ------------------------------------------------ */

mp_sim *mp_sim_cluster_sim(mp_sim_cluster *c);
int mp_sim_cluster_members(const mp_sim_cluster *c); /* this seed's counts */
int mp_sim_cluster_clients(const mp_sim_cluster *c);
/* Member i's node, NULL while it is down (killed, stopping, not booted). */
mp_node *mp_sim_cluster_member(mp_sim_cluster *c, int i);
/* The database's provider (spec->storage), NULL otherwise: check may read
 * stored records with mp_storage_load. */
mp_storage *mp_sim_cluster_storage(mp_sim_cluster *c);
/* True during the chaos phase (before the heal). */
bool mp_sim_cluster_in_chaos(const mp_sim_cluster *c);
/* --trace was given: print what the workload does (stderr). */
bool mp_sim_cluster_tracing(const mp_sim_cluster *c);
/* Calls issued by the workload that have not completed yet. */
uint64_t mp_sim_cluster_pending(const mp_sim_cluster *c);
/* A number in [0, n) from the seed (n > 0): the workload's own choices. */
uint64_t mp_sim_cluster_random_below(mp_sim_cluster *c, uint64_t n);
/* Fail the seed with a message (printf format); the first failure wins. */
void mp_sim_cluster_fail(mp_sim_cluster *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Kill member i now / boot it again after delay_ns (scripted faults beside
 * the generator's). Return 0 or MP_EINVAL / MP_ENOTFOUND (mp_sim_kill). */
int mp_sim_cluster_kill(mp_sim_cluster *c, int i);
int mp_sim_cluster_restart(mp_sim_cluster *c, int i, uint64_t delay_ns);

/* ---- calls --------------------------------------------------------------- */

/* Completion of a call: status and reply as mp_reply_cb (data valid only
 * during the call). Runs exactly once per call that returned 0. */
typedef void (*mp_sim_cluster_reply_cb)(mp_sim_cluster *c, void *ud,
                                        int status, const void *data,
                                        size_t len);

/* Call type/key's `method` from client i (payload copied), with the spec's
 * call timeout. Returns 0 (cb runs once, later) or an error at once (cb
 * never runs; the call did not leave): MP_EINVAL (bad client index or
 * name), and mp_call's immediate errors. */
int mp_sim_cluster_call(mp_sim_cluster *c, int client, const char *type,
                        const char *key, const char *method,
                        const void *payload, size_t len,
                        mp_sim_cluster_reply_cb cb, void *ud);

/* The same, retried (100 ms apart) until it succeeds or fails with a
 * status that retrying cannot change (MP_EACTOR, MP_ENOTYPE, MP_ENOMETHOD,
 * MP_EINVAL, MP_ETOOBIG); cb then runs once with that outcome. For
 * idempotent calls only (reads): a retried call may run more than once.
 * Never settling before the heal phase ends fails the seed (liveness). */
int mp_sim_cluster_call_until_ok(mp_sim_cluster *c, int client,
                                 const char *type, const char *key,
                                 const char *method, const void *payload,
                                 size_t len, mp_sim_cluster_reply_cb cb,
                                 void *ud);

/* ---- the command line ---------------------------------------------------- */

/* `moonpool sim`'s command line for a program's own workloads: parses
 * argv (--workload, --seed/--seeds, --check-determinism, --nodes,
 * --workers, --no-swarm, --no-faults, --no-buggify, --chaos, --heal, -v,
 * --trace, --list, --help), runs the seeds and prints a replay command for
 * each failing one. The first workload is the default. Returns the exit
 * status for main: 0 every seed passed (and coverage is complete), 1 some
 * failed, 2 bad usage (message on stderr). Reads the wall clock only for
 * the speed line. Call it once, from main's thread. */
int mp_sim_main(int argc, char **argv, const mp_sim_workload *const *workloads,
                size_t count);

#ifdef __cplusplus
}
#endif
#endif
