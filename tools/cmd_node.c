/*
 * `moonpool node --config FILE [--id ADDR|N]`: run one cluster node.
 *
 * All the work is in the library (mp_node_run, src/host/run.c) so users'
 * own programs get the same process behaviour; this command only parses
 * its flags and hosts the example actor types shipped with moonpool.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "../examples/bank/bank.h"
#include "../examples/journal/journal.h"
#include "moonpool/host.h"

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
            "Hosted actor types: " MP_BANK_TYPE ", " MP_JOURNAL_TYPE "\n");
}

int mp_cmd_node(int argc, char **argv)
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
