/*
 * Registration of the built-in simulation workloads.
 *
 * Explicit registration (instead of constructor attributes or a linker
 * section) keeps the set visible in one place and the order of `--list`
 * stable. Add new workloads (bank, ...) to the table below.
 */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>

#include "workloads.h"

static const mp_sim_workload *const builtin[] = {
    &mp_workload_pingpong,
    &mp_workload_bank,
    &mp_workload_bank_durable,
    &mp_workload_exec,
    &mp_workload_members,
};

void mp_sim_workloads_register_builtin(void)
{
    static bool done;
    if (done) return;
    done = true;
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
        /* A built-in that cannot register is a programming error (duplicate
         * name or a full registry), not bad input. */
        int rc = mp_sim_workload_register(builtin[i]);
        assert(rc == 0);
        (void)rc;
    }
}
