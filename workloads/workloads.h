/*
 * The simulation workloads shipped with moonpool. Each lives in its own file
 * under workloads/ and exposes one descriptor; this header gathers them so the
 * CLI and the tests can register them all with one call.
 */
#ifndef MP_WORKLOADS_WORKLOADS_H
#define MP_WORKLOADS_WORKLOADS_H

#include "moonpool/sim_workload.h"

/* Register every built-in workload. Idempotent: later calls do nothing. */
void mp_sim_workloads_register_builtin(void);

/* Echo traffic between nodes under faults (workloads/pingpong.c). */
extern const mp_sim_workload mp_workload_pingpong;

/* Bank accounts, deposits, withdrawals and transfers through actors, with
 * a ledger checked after heal (no duplicate delivery, not-executed ops not
 * applied) and a steady phase with idle deactivation in which every call
 * must succeed (workloads/bank.c). */
extern const mp_sim_workload mp_workload_bank;

/* The bank with persisted accounts, killed and restarted nodes, short idle
 * timeouts and a final check of the stored records (workloads/
 * bank_durable.c). */
extern const mp_sim_workload mp_workload_bank_durable;

/* Issue 11: every execution of every call observed (workloads/exec_record.c). */
extern const mp_sim_workload mp_workload_exec;

/* Issue 13: membership under joins, leaves, kills, pauses past the lease and
 * partitions; every turn observed (workloads/members.c). */
extern const mp_sim_workload mp_workload_members;

/* The bank driver's callbacks (workloads/bank.c), shared by both. */
int mp_bank_wl_setup_durable(mp_sim *sim, const mp_workload_params *params,
                             void **state);
void mp_bank_wl_on_heal(mp_sim *sim, void *state);
bool mp_bank_wl_quiescent(mp_sim *sim, void *state);
void mp_bank_wl_check(mp_sim *sim, void *state);
void mp_bank_wl_destroy(void *state);

#endif
