/*
 * The `moonpool` program: one binary, one subcommand per job (git style).
 * Each subcommand lives in its own tools/cmd_*.c file and owns its flags; this
 * file only dispatches and prints the overview.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "moonpool/version.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"node", mp_cmd_node, "run one cluster node from a config file"},
    {"call", mp_cmd_call, "call an actor method from the shell, print the reply as JSON"},
    {"stats", mp_cmd_stats, "print a running node's metrics"},
    {"members", mp_cmd_members, "print the membership table kept in the cluster's storage"},
    {"demo", mp_cmd_demo, "start a local 3-node cluster and drive the bank workload"},
    {"bench", mp_cmd_bench, "run the benchmarks and print one table"},
    {"sim", mp_cmd_sim, "run simulation workloads over seeds (deterministic, with faults)"},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: moonpool <command> [options]\n"
            "\n"
            "moonpool is a distributed virtual-actor runtime with a deterministic\n"
            "simulator. Commands:\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'moonpool <command> --help' for the options of one command,\n"
                 "'moonpool --version' for the version.\n");
}

const char *mp_program_path = "moonpool";

int main(int argc, char **argv)
{
    mp_program_path = argv[0];
    if (argc < 2) {
        usage(stderr);
        return MP_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return MP_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        /* The library's version (this program links its own copy of it). */
        printf("moonpool %s\n", mp_version());
        return MP_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    /* Hidden: a driver of tests/cluster/test_cluster_at_most_once.sh. */
    if (strcmp(argv[1], "journal-load") == 0) return mp_cmd_journal_load(argc - 1, argv + 1);
    fprintf(stderr, "moonpool: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return MP_EXIT_USAGE;
}
