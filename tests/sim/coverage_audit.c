/*
 * sim.coverage.registry: every named sometimes-site must be required by a
 * workload or listed as unreachable in src/sim/coverage.c (see there).
 *
 *   coverage_audit                       the audit; exit 1 on a violation
 *   coverage_audit --probe W FIRST LAST  run workload W over seeds
 *                                        FIRST..LAST requiring every site,
 *                                        so the "never hit" lines show what
 *                                        W does not reach (for maintaining
 *                                        the required lists; not in ctest)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/sim_workload.h"
#include "workloads.h"

int main(int argc, char **argv)
{
    mp_sim_workloads_register_builtin();
    if (argc == 5 && strcmp(argv[1], "--probe") == 0) {
        const mp_sim_workload *w = mp_sim_workload_find(argv[2]);
        if (!w) {
            fprintf(stderr, "coverage_audit: no workload '%s'\n", argv[2]);
            return 2;
        }
        static const char *const everything[] = {"", NULL};
        mp_sim_workload probe = *w;
        probe.required_coverage = everything;
        mp_sim_run_opts o;
        mp_sim_run_opts_init(&o);
        o.seed_first = strtoull(argv[3], NULL, 10);
        o.seed_last = strtoull(argv[4], NULL, 10);
        o.argv0 = argv[0];
        mp_sim_run_seeds(&probe, &o, NULL);
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: %s [--probe WORKLOAD FIRST LAST]\n", argv[0]);
        return 2;
    }
    return mp_sim_coverage_audit(stdout) == 0 ? 0 : 1;
}
