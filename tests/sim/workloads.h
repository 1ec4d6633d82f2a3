/*
 * The simulation workloads shipped with moonpool. Each lives in its own file
 * under tests/sim/ and exposes one descriptor; this header gathers them so the
 * CLI and the tests can register them all with one call.
 */
#ifndef MP_TESTS_SIM_WORKLOADS_H
#define MP_TESTS_SIM_WORKLOADS_H

#include "moonpool/sim_workload.h"

/* Register every built-in workload. Idempotent: later calls do nothing. */
void mp_sim_workloads_register_builtin(void);

/* Echo traffic between nodes under faults (tests/sim/pingpong.c). */
extern const mp_sim_workload mp_workload_pingpong;

/* Bank accounts, deposits, withdrawals and transfers through actors, with
 * a ledger checked after heal (tests/sim/bank.c). */
extern const mp_sim_workload mp_workload_bank;

#endif
