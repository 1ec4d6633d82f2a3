/*
 * mp_sim_main: the simulation command line (`moonpool sim`, and a user's
 * own simulation program) in front of the seed runner (src/sim/runner.c).
 *
 * It parses and validates flags, then hands everything to
 * mp_sim_run_seeds. Validation is strict (whole-string numbers, ranges
 * checked) because a typo in a replay command that silently ran another seed
 * would waste an afternoon. Usage errors exit 2, failed seeds exit 1.
 *
 * It lives with the host (src/host may reach the OS) because the runner may
 * not read a clock: this lends it the wall clock (CLOCK_MONOTONIC) for the
 * speed line.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moonpool/sim_cluster.h"
#include "moonpool/sim_workload.h"

#define EXIT_USAGE 2
#define DEFAULT_FIRST 1
#define DEFAULT_LAST 100
#define MAX_SECONDS 1e6

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The command as users type it ("moonpool sim", "./mysim"), for messages,
 * usage and replay lines. */
static const char *prog = "moonpool sim";

static void usage(FILE *f, const char *default_name)
{
    fprintf(f,
            "usage: %s [options]\n"
            "\n"
            "Run a simulation workload over seeds. Each seed builds a simulated\n"
            "cluster, runs a chaos phase with faults, heals, requires the workload\n"
            "to settle, then checks its invariants. A failing seed prints the one\n"
            "command that replays it.\n"
            "\n"
            "  --workload NAME       workload to run (default %s; see --list)\n"
            "  --seed S              run one seed\n"
            "  --seeds A..B          run seeds A to B inclusive (default %d..%d)\n"
            "  --check-determinism   run each seed twice, compare every event\n"
            "  --nodes N             nodes in the cluster (workload default if unset)\n"
            "  --workers M           client workers per node (workload default)\n"
            "  --no-swarm            fixed moderate faults instead of per-seed draws\n"
            "  --no-faults           perfect network (base latency only)\n"
            "  --no-buggify          never fire buggify sites\n"
            "  --chaos SECONDS       simulated length of the chaos phase (default 10)\n"
            "  --heal SECONDS        simulated time allowed to settle (default 30)\n"
            "  -v, --verbose         one line per seed, with its fault mix\n"
            "  --trace               the workload's operations and the nodes' routing\n"
            "                        on stderr (for replaying one seed)\n"
            "  --list                list the workloads\n"
            "  -h, --help            this text\n"
            "\n"
            "When more than one seed runs, every sometimes-assertion the workload\n"
            "requires must hold in at least one seed (coverage); a single-seed\n"
            "replay is not judged on coverage.\n"
            "\n"
            "Exit status: 0 all seeds passed (and coverage complete), 1 some\n"
            "failed, 2 bad usage.\n",
            prog, default_name, DEFAULT_FIRST, DEFAULT_LAST);
}

/* Whole-string unsigned decimal; rejects signs, spaces, overflow. */
static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9') return false;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE || !end || *end != '\0') return false;
    *out = (uint64_t)v;
    return true;
}

static bool parse_int_range(const char *s, int lo, int hi, int *out)
{
    uint64_t v;
    if (!parse_u64(s, &v) || v < (uint64_t)lo || v > (uint64_t)hi) return false;
    *out = (int)v;
    return true;
}

/* "A..B" with A <= B. */
static bool parse_range(const char *s, uint64_t *a, uint64_t *b)
{
    const char *dots = strstr(s, "..");
    if (!dots || dots == s) return false;
    char first[32];
    size_t n = (size_t)(dots - s);
    if (n >= sizeof first) return false;
    memcpy(first, s, n);
    first[n] = '\0';
    if (!parse_u64(first, a) || !parse_u64(dots + 2, b)) return false;
    return *a <= *b;
}

/* Positive decimal seconds (fractions allowed) into nanoseconds. */
static bool parse_seconds(const char *s, uint64_t *ns)
{
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ') return false;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno || !end || *end != '\0' || !isfinite(v) || v <= 0 || v > MAX_SECONDS)
        return false;
    uint64_t r = (uint64_t)llround(v * 1e9);
    if (r == 0) return false;
    *ns = r;
    return true;
}

static void list_workloads(FILE *f, const mp_sim_workload *const *ws, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const mp_sim_workload *w = ws[i];
        fprintf(f, "  %-12s %s\n", w->name, w->description ? w->description : "");
    }
}

enum {
    OPT_WORKLOAD = 256,
    OPT_SEED,
    OPT_SEEDS,
    OPT_DETERMINISM,
    OPT_NODES,
    OPT_WORKERS,
    OPT_NO_SWARM,
    OPT_NO_FAULTS,
    OPT_NO_BUGGIFY,
    OPT_CHAOS,
    OPT_HEAL,
    OPT_LIST,
    OPT_TRACE,
};

static int bad(const char *what, const char *value)
{
    fprintf(stderr, "%s: invalid %s '%s'\n", prog, what, value ? value : "");
    fprintf(stderr, "Run '%s --help' for the options.\n", prog);
    return EXIT_USAGE;
}

static int twice(void)
{
    fprintf(stderr, "%s: give one --seed or one --seeds, not several\n", prog);
    return EXIT_USAGE;
}

/* argv[0] without its directories ("./build/moonpool sim" -> "moonpool
 * sim"). */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

int mp_sim_main(int argc, char **argv, const mp_sim_workload *const *workloads,
                size_t count)
{
    static const struct option longopts[] = {
        {"workload", required_argument, NULL, OPT_WORKLOAD},
        {"seed", required_argument, NULL, OPT_SEED},
        {"seeds", required_argument, NULL, OPT_SEEDS},
        {"check-determinism", no_argument, NULL, OPT_DETERMINISM},
        {"nodes", required_argument, NULL, OPT_NODES},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"no-swarm", no_argument, NULL, OPT_NO_SWARM},
        {"no-faults", no_argument, NULL, OPT_NO_FAULTS},
        {"no-buggify", no_argument, NULL, OPT_NO_BUGGIFY},
        {"chaos", required_argument, NULL, OPT_CHAOS},
        {"heal", required_argument, NULL, OPT_HEAL},
        {"verbose", no_argument, NULL, 'v'},
        {"list", no_argument, NULL, OPT_LIST},
        {"trace", no_argument, NULL, OPT_TRACE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };

    if (argc < 1 || !argv || !argv[0] || !workloads || count == 0) {
        fprintf(stderr, "mp_sim_main: no program name or no workload\n");
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < count; i++)
        if (!workloads[i] || !workloads[i]->name) {
            fprintf(stderr, "mp_sim_main: workload %zu has no name\n", i);
            return EXIT_USAGE;
        }
    prog = base_name(argv[0]);
    mp_sim_run_opts opts;
    mp_sim_run_opts_init(&opts);
    opts.seed_first = DEFAULT_FIRST;
    opts.seed_last = DEFAULT_LAST;
    opts.argv0 = argv[0];
    opts.command = argv[0];
    const char *workload = workloads[0]->name;
    bool seed_given = false, list = false;

    opterr = 0; /* we print our own messages */
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":vh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_WORKLOAD: workload = optarg; break;
        case OPT_SEED:
            if (seed_given) return twice();
            if (!parse_u64(optarg, &opts.seed_first)) return bad("seed", optarg);
            opts.seed_last = opts.seed_first;
            seed_given = true;
            break;
        case OPT_SEEDS:
            if (seed_given) return twice();
            if (!parse_range(optarg, &opts.seed_first, &opts.seed_last))
                return bad("seed range (want A..B with A <= B)", optarg);
            seed_given = true;
            break;
        case OPT_DETERMINISM: opts.check_determinism = true; break;
        case OPT_NODES:
            if (!parse_int_range(optarg, 1, 10000, &opts.params.nodes))
                return bad("node count", optarg);
            break;
        case OPT_WORKERS:
            if (!parse_int_range(optarg, 1, 10000, &opts.params.workers))
                return bad("worker count", optarg);
            break;
        case OPT_NO_SWARM: opts.swarm = false; break;
        case OPT_NO_FAULTS: opts.faults = false; break;
        case OPT_NO_BUGGIFY: opts.buggify = false; break;
        case OPT_CHAOS:
            if (!parse_seconds(optarg, &opts.chaos_ns)) return bad("chaos seconds", optarg);
            break;
        case OPT_HEAL:
            if (!parse_seconds(optarg, &opts.heal_ns)) return bad("heal seconds", optarg);
            break;
        case 'v': opts.verbose = 1; break;
        case OPT_TRACE: opts.params.trace = true; break;
        case OPT_LIST: list = true; break;
        case 'h': usage(stdout, workloads[0]->name); return 0;
        case ':':
            fprintf(stderr, "%s: option '%s' needs a value\n", prog,
                    argv[optind - 1]);
            return EXIT_USAGE;
        default:
            fprintf(stderr, "%s: unknown option '%s'\n", prog, argv[optind - 1]);
            fprintf(stderr, "Run '%s --help' for the options.\n", prog);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        return EXIT_USAGE;
    }
    if (list) {
        printf("workloads:\n");
        list_workloads(stdout, workloads, count);
        return 0;
    }
    const mp_sim_workload *w = NULL;
    for (size_t i = 0; i < count && !w; i++)
        if (workloads[i] && strcmp(workloads[i]->name, workload) == 0) w = workloads[i];
    if (!w) {
        fprintf(stderr, "%s: unknown workload '%s'; known:\n", prog, workload);
        list_workloads(stderr, workloads, count);
        return EXIT_USAGE;
    }

    opts.wall_clock = wall_seconds;
    int rc = mp_sim_run_seeds(w, &opts, NULL);
    return rc == 0 ? 0 : 1;
}
