/*
 * `moonpool sim`: the built-in simulation workloads behind mp_sim_main, the
 * command line every simulation program shares (src/host/sim_main.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "moonpool/sim_cluster.h"
#include "workloads.h"

int mp_cmd_sim(int argc, char **argv)
{
    mp_sim_workloads_register_builtin();
    const mp_sim_workload *list[64];
    size_t n = 0;
    for (const mp_sim_workload *w; n < 64 && (w = mp_sim_workload_at((int)n)); n++)
        list[n] = w;
    /* "PATH sim" as the program name: messages say "moonpool sim", and a
     * failing seed's replay line is "PATH sim --workload ...". */
    size_t len = strlen(mp_program_path) + sizeof " sim";
    char *prog = malloc(len);
    if (!prog) {
        fprintf(stderr, "moonpool sim: out of memory\n");
        return MP_EXIT_FAIL;
    }
    snprintf(prog, len, "%s sim", mp_program_path);
    char *saved = argc > 0 ? argv[0] : NULL;
    if (argc > 0) argv[0] = prog;
    int rc = argc > 0 ? mp_sim_main(argc, argv, list, n) : MP_EXIT_USAGE;
    if (argc > 0) argv[0] = saved;
    free(prog);
    return rc;
}
