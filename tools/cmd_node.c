/*
 * `moonpool node --config FILE [--id ADDR|N]`: run one cluster node.
 *
 * All the work is in the library (mp_node_run, src/host/run.c) so users'
 * own programs get the same process behaviour; this command only parses
 * its flags and hosts the example actor types shipped with moonpool.
 *
 * When the membership table declares the node dead (mp_node_run returns
 * MP_HOST_EXIT_DECLARED_DEAD, see moonpool/host.h) the command re-executes
 * itself with the same arguments (execv of /proc/self/exe): the new life
 * reads the next incarnation from the incarnation file and joins as a new
 * member. The process id stays the same, so a supervisor, a pid file or a
 * test that holds the pid sees one process throughout; it prints a new
 * "moonpool node ready: ... incarnation=N+1" line.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "../examples/bank/bank.h"
#include "../examples/journal/journal.h"
#include "moonpool/host.h"

static int run(int argc, char **argv);

static void usage(FILE *out)
{
    fprintf(out,
            "usage: moonpool node -c FILE [-i ADDR|N] [--new-storage]\n"
            "\n"
            "Run one node of a cluster until SIGINT or SIGTERM (graceful shutdown).\n"
            "  -c, --config FILE  the node's config file (docs/config.md)\n"
            "  -i, --id ADDR|N    this node's address: a member address, or its 1-based\n"
            "                 position in [cluster] members; overrides [node] address\n"
            "  --new-storage  accept a new SQLite database: create it if missing and\n"
            "                 record its cluster id (without it, a node refuses a\n"
            "                 database that is missing or not the one it ran on)\n"
            "\n"
            "Prints one line 'moonpool node ready: ...' once it listens. Exit status:\n"
            "0 clean shutdown, 1 the node could not run, 2 bad config or usage.\n"
            "With [membership] mode = table, a node the cluster declared dead (paused\n"
            "or cut off past its lease) restarts itself in the same process with a new\n"
            "incarnation.\n"
            "Hosted actor types: " MP_BANK_TYPE ", " MP_JOURNAL_TYPE "\n");
}

/* Start this program again with the same arguments (argv as main got it,
 * from the command name on). Returns only on failure. */
static int reexec(int argc, char **argv)
{
    char **args = calloc((size_t)argc + 2, sizeof *args);
    if (!args) {
        fprintf(stderr, "moonpool node: out of memory re-executing\n");
        return MP_EXIT_FAIL;
    }
    args[0] = (char *)mp_program_path;
    for (int i = 0; i < argc; i++) args[i + 1] = argv[i];
    fflush(stdout);
    fflush(stderr);
    execv("/proc/self/exe", args);
    int e = errno;
    fprintf(stderr, "moonpool node: cannot re-execute /proc/self/exe: %s\n", strerror(e));
    free(args);
    return MP_EXIT_FAIL;
}

int mp_cmd_node(int argc, char **argv)
{
    /* getopt_long reorders argv: keep the order we were given for reexec. */
    char **given = calloc((size_t)argc + 1, sizeof *given);
    if (!given) {
        fprintf(stderr, "moonpool node: out of memory\n");
        return MP_EXIT_FAIL;
    }
    memcpy(given, argv, (size_t)argc * sizeof *argv);
    int st = run(argc, argv);
    if (st == MP_HOST_EXIT_DECLARED_DEAD) {
        fprintf(stderr, "moonpool node: restarting (same arguments, next incarnation)\n");
        st = reexec(argc, given);
    }
    free(given);
    return st;
}

static int run(int argc, char **argv)
{
    const char *config = NULL, *id = NULL;
    mp_node_run_options opts;
    mp_node_run_options_init(&opts);
    enum { OPT_NEW_STORAGE = 256 };
    static const struct option lopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"id", required_argument, NULL, 'i'},
        {"new-storage", no_argument, NULL, OPT_NEW_STORAGE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":c:i:h", lopts, NULL)) != -1) {
        switch (o) {
        case 'c': config = optarg; break;
        case 'i': id = optarg; break;
        case OPT_NEW_STORAGE: opts.new_storage = true; break;
        case 'h': usage(stdout); return MP_EXIT_OK;
        case ':':
            fprintf(stderr, "moonpool node: %s needs a value\n\n", argv[optind - 1]);
            usage(stderr);
            return MP_EXIT_USAGE;
        default:
            fprintf(stderr, "moonpool node: unknown option '%s'\n\n", argv[optind - 1]);
            usage(stderr);
            return MP_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "moonpool node: unexpected argument '%s'\n\n", argv[optind]);
        usage(stderr);
        return MP_EXIT_USAGE;
    }
    if (!config) {
        fprintf(stderr, "moonpool node: --config FILE is required\n\n");
        usage(stderr);
        return MP_EXIT_USAGE;
    }
    const mp_actor_type *types[] = {mp_bank_account_type(), mp_journal_type()};
    return mp_node_run_with(config, id, types, sizeof types / sizeof types[0], &opts);
}
