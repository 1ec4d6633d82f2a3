/*
 * Registry of simulation workloads.
 *
 * A plain static array: workloads are few (tens), registered once at program
 * start, and looked up by name from the command line, so a linear scan is
 * both the simplest and fast enough. Iteration order is registration order,
 * never anything derived from pointers, so `moonpool sim --list` is stable.
 *
 * Workload descriptors are static and owned by whoever registered them; the
 * registry keeps only pointers. Not thread-safe: registration happens on the
 * main thread before any simulation runs.
 */
#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "moonpool/sim_workload.h"

#define MP_WORKLOAD_MAX 64

static const mp_sim_workload *registry[MP_WORKLOAD_MAX];
static int registry_count;

const mp_sim_workload *mp_sim_workload_find(const char *name)
{
    if (!name) return NULL;
    for (int i = 0; i < registry_count; i++) {
        assert(registry[i] && registry[i]->name);
        if (strcmp(registry[i]->name, name) == 0) return registry[i];
    }
    return NULL;
}

const mp_sim_workload *mp_sim_workload_at(int i)
{
    if (i < 0 || i >= registry_count) return NULL;
    return registry[i];
}

int mp_sim_workload_register(const mp_sim_workload *w)
{
    /* A workload without a name, a setup or a quiescence test cannot be run
     * by the seed runner; reject it here rather than crash later. */
    if (!w || !w->name || !w->name[0] || (!w->setup && !w->setup_ctx) || !w->quiescent)
        return MP_EINVAL;
    if (mp_sim_workload_find(w->name)) return MP_EINVAL;
    if (registry_count >= MP_WORKLOAD_MAX) return MP_ENOMEM;
    registry[registry_count++] = w;
    return MP_OK;
}
