/*
 * `moonpool demo`: a real 3-node cluster on this machine, driven by the
 * bank workload, checked, crashed, restarted and shut down.
 *
 * What it shows, in order:
 *   1. three `moonpool node` processes (fork+exec of this very binary) on
 *      127.0.0.1, free ports, SQLite under ./demo-data/nodeN/;
 *   2. a client node inside this process opening thousands of accounts and
 *      running deposits, withdrawals and transfers, many at once, with a
 *      live progress line;
 *   3. a summary: operations, throughput, p50/p99 latency, activations per
 *      node (stats requests over the transport) and the invariant check;
 *   4. SIGKILL of one node, restart (new incarnation), and every account
 *      read again: with durable accounts each must show its balance;
 *   5. SIGTERM to every node, each must exit 0; no process left behind.
 *
 * How the invariant is checked without trusting the cluster: the demo
 * keeps its own ledger. An operation counts only when acknowledged (or when
 * an op_status query proves it was applied); each account's balance must
 * then equal the sum of its acknowledged operations (no lost and no doubled
 * op), and the sum of all balances must equal deposits minus withdrawals
 * (money conserved). Every mutating op carries an op id, so an op whose
 * reply was lost (a node died, a timeout) is simply retried with the same
 * id: the account applies it at most once and answers "dup".
 *
 * The same driver serves the cluster tests (tests/cluster/): --kill-mid
 * kills and restarts a node in the middle of the workload, --data puts
 * everything in a temporary directory, and the exit status says whether
 * every check held (0), a check failed (1), or the setup did (1, with the
 * reason), 77 when a requested check cannot apply to this build.
 *
 * Process hygiene: all nodes are in one process group with a parent-death
 * signal (proc.c); every exit path stops them, and Ctrl-C stops them in
 * order.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../examples/bank/bank.h"
#include "../src/util/hist.h"
#include "cluster_client.h"
#include "commands.h"
#include "moonpool/host.h"
#include "proc.h"

#define DEMO_MARKER ".moonpool-demo"

/* The demo's traffic generator: xoshiro256** seeded through splitmix64, the
 * same sequence as the runtime's internal generator (so a --seed draws the
 * same traffic as before), kept local because the tool builds against the
 * public headers alone. */
typedef struct demo_rng {
    uint64_t s[4];
} demo_rng;

static uint64_t demo_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static void demo_rng_seed(demo_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        uint64_t z = (x += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        r->s[i] = z ^ (z >> 31);
    }
}

static uint64_t demo_rng_next(demo_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = demo_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = demo_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n), Lemire's rejection method; n == 0 gives 0. */
static uint64_t demo_rng_below(demo_rng *r, uint64_t n)
{
    if (n == 0) return 0;
    for (;;) {
        uint64_t x = demo_rng_next(r);
        __uint128_t m = (__uint128_t)x * n;
        uint64_t lo = (uint64_t)m;
        if (lo >= n || lo >= (-n) % n) return (uint64_t)(m >> 64);
    }
}
#define DEMO_MAX_NODES 8
#define INITIAL_BALANCE 1000
#define CALL_TIMEOUT_NS 10000000000ull /* per attempt */
#define OP_DEADLINE_NS 30000000000ull  /* then the op is "unknown" */
/* Whatever happens, the demo ends this long after its workload budget. */
#define DEMO_SLACK_NS 75000000000ull
#define READY_TIMEOUT_MS 20000

typedef struct demo_opts {
    const char *data;
    int nodes;
    int accounts;
    int ops;
    int seconds;
    int concurrency;
    uint64_t seed;
    bool kill;     /* phase 4 */
    bool kill_mid; /* kill+restart during the workload */
    bool require_durable;
    const char *storage;
} demo_opts;

enum { J_DEPOSIT, J_WITHDRAW, J_TRANSFER, J_BALANCE, J_STATUS };
enum { R_NONE, R_APPLIED, R_REFUSED, R_UNKNOWN, R_FAILED };

struct demo;

typedef struct job {
    struct demo *d;
    int kind;
    int acct, to;
    int64_t amount;
    char op[24];      /* op id ("" for balance) */
    uint64_t t0, deadline;
    int attempts;
    bool busy;        /* a call or a retry timer is outstanding */
    /* results */
    int result;
    int64_t balance;  /* J_BALANCE */
    bool applied;     /* J_STATUS */
    int last_status;
    size_t index;     /* position in the phase */
} job;

typedef struct phase {
    const char *label;
    size_t total;
    size_t next, done;
    uint64_t stop_at_ns; /* 0: none; stop starting new jobs after this */
    void (*make)(struct demo *, size_t i, job *);
    void (*finish)(struct demo *, job *);
    void (*tick)(struct demo *); /* every loop turn; may be NULL */
} phase;

typedef struct demo {
    demo_opts o;
    char exe[1024];
    char conf[DEMO_MAX_NODES][1200];
    char addr[DEMO_MAX_NODES][32];
    mp_proc_group g;
    mp_cc cc;
    bool cc_open;
    demo_rng rng;
    bool tty;
    /* ledger */
    int64_t *expected;
    int64_t *actual;
    bool *read_ok;
    int64_t deposited, withdrawn;
    uint64_t acked, refused, unknown, failed, retries, dups;
    uint64_t retry_cause[-MP_STATUS_MIN_ + 1]; /* retries by -status */
    /* latencies of acknowledged (or refused) ops: all, and by kind
     * (J_DEPOSIT, J_WITHDRAW, J_TRANSFER); the shared log-linear histogram,
     * so memory stays fixed however long the run */
    mp_hist lat, lat_kind[3];
    /* unknown ops, resolved after the workload */
    job *unknowns;
    size_t unk_n, unk_cap;
    /* the running phase */
    job *slots;
    phase *ph;
    size_t inflight;
    uint64_t last_progress;
    uint64_t phase_t0;
    /* kill in the middle */
    bool mid_done;
    bool closing; /* interrupted: jobs end without retry or ledger */
    uint64_t hard_deadline; /* no job runs past this (bounded demo) */
    bool overtime;
} demo;

static uint64_t now_ns(void) { return mp_proc_now_ns(); }

/* ---- setup ---------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: moonpool demo [options]\n"
            "\n"
            "Start a local cluster of node processes, drive the bank workload through\n"
            "it, check that no money was created or lost, kill one node with SIGKILL,\n"
            "restart it, read every account again, and shut everything down.\n"
            "  --data DIR         data directory, wiped at start (default ./demo-data;\n"
            "                     refused if it is not empty and not a demo directory)\n"
            "  --nodes N          nodes (default 3, at most %d)\n"
            "  --accounts N       accounts (default 2000)\n"
            "  --ops N            workload operations (default 30000)\n"
            "  --seconds S        stop starting operations after S seconds (default 15)\n"
            "  --concurrency N    operations in flight (default 200)\n"
            "  --seed N           operation mix seed (default 1)\n"
            "  --storage sqlite|memory   node storage (default sqlite)\n"
            "  --no-kill          skip the kill/restart phase\n"
            "  --kill-mid         also kill and restart a node during the workload\n"
            "  --require-durable  exit 77 (skip) if accounts do not persist their state\n"
            "Exit status: 0 every check held, 1 a check or the setup failed, 2 usage.\n",
            DEMO_MAX_NODES);
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, demo_opts *o)
{
    o->data = "./demo-data";
    o->nodes = 3;
    o->accounts = 2000;
    o->ops = 30000;
    o->seconds = 15;
    o->concurrency = 200;
    o->seed = 1;
    o->kill = true;
    o->storage = "sqlite";
    enum { O_DATA = 256, O_NODES, O_ACCOUNTS, O_OPS, O_SECONDS, O_CONC, O_SEED, O_STORAGE,
           O_NO_KILL, O_KILL_MID, O_DURABLE };
    static const struct option lopts[] = {
        {"data", required_argument, NULL, O_DATA},
        {"nodes", required_argument, NULL, O_NODES},
        {"accounts", required_argument, NULL, O_ACCOUNTS},
        {"ops", required_argument, NULL, O_OPS},
        {"seconds", required_argument, NULL, O_SECONDS},
        {"concurrency", required_argument, NULL, O_CONC},
        {"seed", required_argument, NULL, O_SEED},
        {"storage", required_argument, NULL, O_STORAGE},
        {"no-kill", no_argument, NULL, O_NO_KILL},
        {"kill-mid", no_argument, NULL, O_KILL_MID},
        {"require-durable", no_argument, NULL, O_DURABLE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c, n, ok = 1, li = -1;
    while (ok && (li = -1, c = getopt_long(argc, argv, ":h", lopts, &li)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return 1;
        case O_NO_KILL: o->kill = false; break;
        case O_KILL_MID: o->kill_mid = true; break;
        case O_DURABLE: o->require_durable = true; break;
        case O_DATA: o->data = optarg; break;
        case O_STORAGE:
            ok = strcmp(optarg, "sqlite") == 0 || strcmp(optarg, "memory") == 0;
            if (ok) o->storage = optarg;
            break;
        case O_NODES: ok = parse_int(optarg, 2, DEMO_MAX_NODES, &n) == 0 && (o->nodes = n, 1); break;
        case O_ACCOUNTS: ok = parse_int(optarg, 2, 1000000, &n) == 0 && (o->accounts = n, 1); break;
        case O_OPS: ok = parse_int(optarg, 0, 100000000, &n) == 0 && (o->ops = n, 1); break;
        case O_SECONDS: ok = parse_int(optarg, 1, 3600, &n) == 0 && (o->seconds = n, 1); break;
        case O_CONC: ok = parse_int(optarg, 1, 100000, &n) == 0 && (o->concurrency = n, 1); break;
        case O_SEED: ok = parse_int(optarg, 0, 2000000000, &n) == 0 && (o->seed = (uint64_t)n, 1); break;
        default: ok = 0; break;
        }
    }
    if (!ok && li >= 0 && optarg) {
        fprintf(stderr, "moonpool demo: bad value '%s' for --%s\n\n", optarg, lopts[li].name);
        usage(stderr);
        return -1;
    }
    if (!ok || optind < argc) {
        fprintf(stderr, "moonpool demo: bad or incomplete option '%s'\n\n",
                ok ? argv[optind] : argv[optind - 1]);
        usage(stderr);
        return -1;
    }
    return 0;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "moonpool demo: cannot write '%s': %s\n", path, strerror(errno));
        return -1;
    }
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

static int write_configs(demo *d, const uint16_t *ports)
{
    char members[DEMO_MAX_NODES * 32] = "";
    for (int i = 0; i < d->o.nodes; i++) {
        snprintf(d->addr[i], sizeof d->addr[i], "127.0.0.1:%u", (unsigned)ports[i]);
        if (i) strcat(members, ", ");
        strcat(members, d->addr[i]);
    }
    bool sqlite = strcmp(d->o.storage, "sqlite") == 0;
    for (int i = 0; i < d->o.nodes; i++) {
        char text[4096];
        snprintf(d->conf[i], sizeof d->conf[i], "%s/node%d.conf", d->o.data, i + 1);
        snprintf(text, sizeof text,
                 "# Written by `moonpool demo`: node %d of %d.\n"
                 "[cluster]\n"
                 "namespace = demo\n"
                 "members = %s\n"
                 "\n"
                 "[node]\n"
                 "address = %s\n"
                 "data_dir = %s/node%d\n"
                 "log_level = info\n"
                 "\n"
                 "[storage]\n"
                 "provider = %s\n"
                 "%s%s%s"
                 "\n"
                 "[timeouts]\n"
                 "call = 10s\n"
                 "shutdown = 10s\n",
                 i + 1, d->o.nodes, members, d->addr[i], d->o.data, i + 1, d->o.storage,
                 sqlite ? "# one database shared by every node on this machine, so an\n"
                          "# account's state does not depend on which node activates it\n"
                          "path = " : "",
                 sqlite ? d->o.data : "", sqlite ? "/state.db\n" : "");
        if (write_file(d->conf[i], text) < 0) return -1;
    }
    return 0;
}

static const char *const *node_argv(demo *d, int i)
{
    static const char *argv[5];
    argv[0] = d->exe;
    argv[1] = "node";
    argv[2] = "--config";
    argv[3] = d->conf[i];
    argv[4] = NULL;
    return argv;
}

static int wait_ready(demo *d, int slot, long from, char *line, size_t cap)
{
    int rc = mp_proc_wait_line(&d->g, slot, "moonpool node ready:", from, READY_TIMEOUT_MS,
                               line, cap);
    if (rc == 0) return 0;
    if (rc == -3) {
        fprintf(stderr, "moonpool demo: interrupted\n");
    } else {
        fprintf(stderr, "moonpool demo: node %d did not become ready (%s); its log %s says:\n",
                slot + 1, rc == -2 ? "it exited" : "timeout", d->g.procs[slot].log_path);
        char cmd[1300];
        snprintf(cmd, sizeof cmd, "tail -n 5 '%s' >&2", d->g.procs[slot].log_path);
        if (system(cmd) != 0) {
        }
    }
    return -1;
}

/* Whether a node's log says its listen address was in use. */
static bool port_taken(demo *d)
{
    for (size_t i = 0; i < d->g.count; i++) {
        FILE *f = fopen(d->g.procs[i].log_path, "r");
        if (!f) continue;
        char buf[1024];
        bool hit = false;
        while (!hit && fgets(buf, sizeof buf, f))
            hit = strstr(buf, "cannot start on") && strstr(buf, "in use");
        fclose(f);
        if (hit) return true;
    }
    return false;
}

/* Start the nodes; on a port someone else took meanwhile, try new ports. */
static int start_cluster(demo *d)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        uint16_t ports[DEMO_MAX_NODES];
        if (mp_proc_free_ports(d->o.nodes, ports) < 0) {
            fprintf(stderr, "moonpool demo: cannot find free ports on 127.0.0.1\n");
            return -1;
        }
        if (write_configs(d, ports) < 0) return -1;
        memset(&d->g, 0, sizeof d->g);
        bool ok = true;
        /* Node 1 first: with one shared SQLite file, the first node to open
         * it creates the schema; the others then find it (concurrent
         * first opens of a new file can race in schema creation). */
        for (int i = 0; i < d->o.nodes && ok; i++) {
            char log[1200];
            snprintf(log, sizeof log, "%s/node%d.log", d->o.data, i + 1);
            if (mp_proc_spawn(&d->g, node_argv(d, i), log) != i) ok = false;
            if (ok && i == 0) {
                char line[512];
                if (wait_ready(d, 0, 0, line, sizeof line) < 0) {
                    ok = false;
                    break;
                }
                printf("  node 1: %s\n", line + strlen("moonpool node ready: "));
            }
        }
        for (int i = 1; i < d->o.nodes && ok; i++) {
            char line[512];
            if (wait_ready(d, i, 0, line, sizeof line) < 0) {
                ok = false;
                break;
            }
            printf("  node %d: %s\n", i + 1, line + strlen("moonpool node ready: "));
        }
        if (ok) return 0;
        mp_proc_kill_all(&d->g);
        if (mp_proc_interrupted() || !port_taken(d)) return -1;
        fprintf(stderr, "moonpool demo: a port was taken meanwhile; retrying with other ports\n");
    }
    return -1;
}

/* ---- the job engine ---------------------------------------------------------- */

static void key_of(int acct, char *buf, size_t cap) { snprintf(buf, cap, "acct-%05d", acct); }

static void send_job(job *j);

static void job_done(job *j);

static void retry_timer(void *ud)
{
    job *j = ud;
    if (j->d->closing) {
        job_done(j);
        return;
    }
    send_job(j);
}

static void count_retry(demo *d, int status)
{
    d->retries++;
    if (status <= 0 && status >= MP_STATUS_MIN_) d->retry_cause[-status]++;
}

static void schedule_retry(job *j)
{
    demo *d = j->d;
    count_retry(d, j->last_status);
    uint64_t delay = 20000000ull * (uint64_t)(j->attempts < 10 ? j->attempts : 10);
    if (mp_env_timer_start(d->cc.env, delay, retry_timer, j) == 0) send_job(j);
}

static int64_t json_int(const char *data, size_t len, const char *field, bool *ok)
{
    json_t *v = json_loadb(data, len, 0, NULL);
    json_t *f = v ? json_object_get(v, field) : NULL;
    int64_t r = 0;
    *ok = false;
    if (f && json_is_integer(f)) {
        r = (int64_t)json_integer_value(f);
        *ok = true;
    } else if (f && json_is_boolean(f)) {
        r = json_is_true(f);
        *ok = true;
    }
    json_decref(v);
    return r;
}

static bool json_has_dup(const char *data, size_t len)
{
    json_t *v = json_loadb(data, len, 0, NULL);
    bool dup = v && json_is_true(json_object_get(v, "dup"));
    json_decref(v);
    return dup;
}

static void on_job_reply(void *ud, int status, const void *data, size_t len)
{
    job *j = ud;
    demo *d = j->d;
    j->last_status = status;
    if (d->closing) { /* the client is going away: no retry, no ledger */
        job_done(j);
        return;
    }
    if (status == 0) {
        bool ok = true;
        switch (j->kind) {
        case J_BALANCE:
            j->balance = json_int(data, len, "balance", &ok);
            break;
        case J_STATUS:
            j->applied = json_int(data, len, "applied", &ok) != 0;
            break;
        default:
            if (json_has_dup(data, len)) d->dups++;
            break;
        }
        j->result = ok ? R_APPLIED : R_FAILED;
        job_done(j);
        return;
    }
    bool refused = status == MP_EACTOR && len >= 12 && memmem(data, len, "insufficient", 12);
    if (refused) {
        j->result = R_REFUSED;
        job_done(j);
        return;
    }
    /* Definitive errors: a request the actor will never accept. */
    if (status == MP_EINVAL || status == MP_ENOTYPE || status == MP_ENOMETHOD ||
        status == MP_ETOOBIG || status == MP_ENAMESPACE) {
        if (d->failed < 5)
            fprintf(stderr, "\nmoonpool demo: %s on acct-%05d failed: %s: %.*s\n",
                    j->kind == J_BALANCE ? "balance" : j->op, j->acct, mp_status_name(status),
                    (int)len, (const char *)data);
        j->result = R_FAILED;
        job_done(j);
        return;
    }
    /* Anything else (timeout, unavailable, busy, closed connection, a
     * storage error reported by the actor): the outcome is unknown, so
     * retry with the same op id until the op's deadline. */
    if (now_ns() >= j->deadline) {
        j->result = R_UNKNOWN;
        job_done(j);
        return;
    }
    j->attempts++;
    schedule_retry(j);
}

static void send_job(job *j)
{
    demo *d = j->d;
    char key[32], to[32], payload[200];
    const char *method = "balance";
    key_of(j->acct, key, sizeof key);
    switch (j->kind) {
    case J_DEPOSIT:
        method = "deposit";
        snprintf(payload, sizeof payload, "{\"op\":\"%s\",\"amount\":%" PRId64 "}", j->op,
                 j->amount);
        break;
    case J_WITHDRAW:
        method = "withdraw";
        snprintf(payload, sizeof payload, "{\"op\":\"%s\",\"amount\":%" PRId64 "}", j->op,
                 j->amount);
        break;
    case J_TRANSFER:
        method = "transfer";
        key_of(j->to, to, sizeof to);
        snprintf(payload, sizeof payload,
                 "{\"op\":\"%s\",\"to\":\"%s\",\"amount\":%" PRId64 "}", j->op, to, j->amount);
        break;
    case J_STATUS:
        method = "op_status";
        snprintf(payload, sizeof payload, "{\"op\":\"%s\"}", j->op);
        break;
    default:
        snprintf(payload, sizeof payload, "{}");
        break;
    }
    mp_ref ref;
    int rc = mp_ref_get(d->cc.node, MP_BANK_TYPE, key, &ref);
    assert(rc == 0);
    mp_call_opts opts = {.timeout_ns = CALL_TIMEOUT_NS};
    rc = mp_call(d->cc.node, &ref, method, payload, strlen(payload), &opts, on_job_reply, j);
    if (rc < 0) {
        /* Refused at once (queue full, closing): same as a failed attempt,
         * but never inside mp_call's caller's stack twice: use the timer. */
        j->last_status = rc;
        if (now_ns() >= j->deadline || rc == MP_EINVAL) {
            j->result = rc == MP_EINVAL ? R_FAILED : R_UNKNOWN;
            job_done(j);
            return;
        }
        j->attempts++;
        count_retry(d, rc);
        if (mp_env_timer_start(d->cc.env, 50000000ull, retry_timer, j) == 0) {
            j->result = R_UNKNOWN;
            job_done(j);
        }
    }
}

static void start_job(demo *d, job *j, size_t index)
{
    memset(j, 0, sizeof *j);
    j->d = d;
    j->index = index;
    d->ph->make(d, index, j);
    j->t0 = now_ns();
    j->deadline = j->t0 + OP_DEADLINE_NS;
    if (j->deadline > d->hard_deadline) j->deadline = d->hard_deadline;
    j->busy = true;
    d->inflight++;
    send_job(j);
}

static void job_done(job *j)
{
    demo *d = j->d;
    assert(j->busy);
    j->busy = false;
    d->inflight--;
    if (d->closing) return; /* the phase is gone */
    d->ph->done++;
    d->ph->finish(d, j);
}

static void progress(demo *d, bool final)
{
    uint64_t now = now_ns();
    if (!final && now - d->last_progress < (d->tty ? 200000000ull : 2000000000ull)) return;
    d->last_progress = now;
    double secs = (double)(now - d->phase_t0) / 1e9;
    phase *p = d->ph;
    printf("%s  %-10s %7zu/%-7zu %8.0f ops/s  in flight %4zu  retries %-6" PRIu64
           " unknown %" PRIu64 "  failed %" PRIu64 "%s",
           d->tty ? "\r" : "", p->label, p->done, p->total, secs > 0 ? (double)p->done / secs : 0,
           d->inflight, d->retries, d->unknown, d->failed, d->tty ? "\033[K" : "\n");
    if (final && d->tty) printf("\n");
    fflush(stdout);
}

/* Run one phase to completion: keep `concurrency` jobs in flight. Returns
 * the wall time in seconds, or -1 if interrupted. */
static double run_phase(demo *d, phase *p)
{
    d->ph = p;
    p->next = p->done = 0;
    d->inflight = 0;
    d->phase_t0 = now_ns();
    d->last_progress = 0;
    size_t slots = (size_t)d->o.concurrency;
    for (;;) {
        bool stop_new = p->stop_at_ns && now_ns() >= p->stop_at_ns;
        if (now_ns() >= d->hard_deadline) {
            if (!d->overtime)
                fprintf(stderr, "\nmoonpool demo: out of time; finishing the operations in flight\n");
            d->overtime = true;
            stop_new = true;
        }
        if (stop_new && p->next < p->total) p->total = p->next; /* time budget spent */
        for (size_t s = 0; s < slots && p->next < p->total; s++)
            if (!d->slots[s].busy) start_job(d, &d->slots[s], p->next++);
        if (p->done >= p->total && d->inflight == 0) break;
        if (mp_proc_interrupted()) return -1;
        mp_cc_run_once(&d->cc, 1);
        if (p->tick) p->tick(d);
        progress(d, false);
    }
    progress(d, true);
    return (double)(now_ns() - d->phase_t0) / 1e9;
}

/* ---- phases ---------------------------------------------------------------------- */

static void lat_add(demo *d, const job *j, uint64_t ns)
{
    mp_hist_record(&d->lat, ns);
    if (j->kind >= J_DEPOSIT && j->kind <= J_TRANSFER) mp_hist_record(&d->lat_kind[j->kind], ns);
}

static void apply(demo *d, const job *j)
{
    switch (j->kind) {
    case J_DEPOSIT:
        d->expected[j->acct] += j->amount;
        d->deposited += j->amount;
        break;
    case J_WITHDRAW:
        d->expected[j->acct] -= j->amount;
        d->withdrawn += j->amount;
        break;
    case J_TRANSFER:
        d->expected[j->acct] -= j->amount;
        d->expected[j->to] += j->amount;
        break;
    default:
        break;
    }
}

static void remember_unknown(demo *d, const job *j)
{
    if (d->unk_n == d->unk_cap) {
        size_t cap = d->unk_cap ? d->unk_cap * 2 : 64;
        job *p = realloc(d->unknowns, cap * sizeof *p);
        if (!p) {
            fprintf(stderr, "moonpool demo: out of memory\n");
            return;
        }
        d->unknowns = p;
        d->unk_cap = cap;
    }
    d->unknowns[d->unk_n++] = *j;
}

static void finish_op(demo *d, job *j)
{
    switch (j->result) {
    case R_APPLIED:
        d->acked++;
        apply(d, j);
        lat_add(d, j, now_ns() - j->t0);
        break;
    case R_REFUSED:
        d->refused++;
        lat_add(d, j, now_ns() - j->t0);
        break;
    case R_UNKNOWN:
        d->unknown++;
        remember_unknown(d, j);
        break;
    default:
        d->failed++;
        break;
    }
}

static void make_init(demo *d, size_t i, job *j)
{
    j->kind = J_DEPOSIT;
    j->acct = (int)i;
    j->amount = INITIAL_BALANCE;
    snprintf(j->op, sizeof j->op, "i%zu", i);
}

static void make_op(demo *d, size_t i, job *j)
{
    uint64_t r = demo_rng_below(&d->rng, 100);
    j->acct = (int)demo_rng_below(&d->rng, (uint64_t)d->o.accounts);
    j->amount = 1 + (int64_t)demo_rng_below(&d->rng, 100);
    snprintf(j->op, sizeof j->op, "o%zu", i);
    if (r < 35) {
        j->kind = J_DEPOSIT;
    } else if (r < 65) {
        j->kind = J_WITHDRAW;
    } else {
        j->kind = J_TRANSFER;
        j->to = (int)demo_rng_below(&d->rng, (uint64_t)d->o.accounts - 1);
        if (j->to >= j->acct) j->to++;
        /* Always from the lower to the higher account number, so transfers
         * in flight can never wait on each other in a cycle: the example's
         * transfer keeps its source busy until the deposit leg succeeds
         * (actors take one message at a time), so A->B racing B->A would
         * wait on each other forever. */
        if (j->acct > j->to) {
            int t = j->acct;
            j->acct = j->to;
            j->to = t;
        }
    }
}

/* --kill-mid: at 40% of the workload, SIGKILL node 2 and start it again. */
static void mid_tick(demo *d)
{
    if (!d->o.kill_mid || d->mid_done) return;
    if (d->ph->done * 10 < d->ph->total * 4) return;
    d->mid_done = true;
    int slot = 1;
    pid_t pid = d->g.procs[slot].pid;
    long from = mp_proc_log_size(&d->g, slot);
    mp_proc_signal(&d->g, slot, SIGKILL);
    int st = mp_proc_reap(&d->g, slot, 5000);
    printf("%s  -- killed node 2 (pid %ld, SIGKILL, status %d) at op %zu; restarting it --\n",
           d->tty ? "\n" : "", (long)pid, st, d->ph->done);
    if (mp_proc_respawn(&d->g, slot, node_argv(d, slot)) < 0) {
        fprintf(stderr, "moonpool demo: cannot restart node 2\n");
        return;
    }
    char line[512];
    if (wait_ready(d, slot, from, line, sizeof line) == 0)
        printf("  node 2 back: %s\n", line + strlen("moonpool node ready: "));
}

static void make_balance(demo *d, size_t i, job *j)
{
    j->kind = J_BALANCE;
    j->acct = (int)i;
}

static void finish_balance(demo *d, job *j)
{
    if (j->result == R_APPLIED) {
        d->actual[j->acct] = j->balance;
        d->read_ok[j->acct] = true;
    } else {
        d->read_ok[j->acct] = false;
    }
}

/* Unknown ops: ask the account whether it applied the op id. A transfer
 * that the source applied also had its deposit leg retried by the source
 * until it succeeded; the leg is checked separately ("<id>.d"). */
static void make_status(demo *d, size_t i, job *j)
{
    const job *u = &d->unknowns[i];
    j->kind = J_STATUS;
    j->acct = u->acct;
    snprintf(j->op, sizeof j->op, "%s", u->op);
}

static void finish_status(demo *d, job *j)
{
    job *u = &d->unknowns[j->index];
    if (j->result != R_APPLIED) {
        u->result = R_UNKNOWN; /* still unknown: reported */
        return;
    }
    u->result = j->applied ? R_APPLIED : R_REFUSED;
    if (j->applied) {
        d->unknown--;
        d->acked++;
        apply(d, u);
    } else {
        d->unknown--;
    }
}

/* ---- summary helpers ----------------------------------------------------------- */

/* Percentile q of a latency histogram, in ms. */
static double pct_ms(const mp_hist *h, double q)
{
    return mp_hist_quantile_ms(h, q);
}

/* A number field of a JSON object (integer or real); NAN if absent/null. */
static double json_num(const char *data, size_t len, const char *field)
{
    json_t *v = json_loadb(data, len, 0, NULL);
    json_t *f = v ? json_object_get(v, field) : NULL;
    double r = f && json_is_number(f) ? json_number_value(f) : NAN;
    json_decref(v);
    return r;
}

/* One stats request per node (a SYSTEM request over the transport, as
 * `moonpool stats` sends): live activations, and persist latency when the
 * node persisted anything. */
static void print_stats(demo *d)
{
    char persist[DEMO_MAX_NODES][64];
    bool any_persist = false;
    char fwd[DEMO_MAX_NODES * 40] = "";
    printf("  activations per node:");
    for (int i = 0; i < d->o.nodes; i++) {
        char *reply = NULL;
        size_t len = 0;
        int rc = mp_cc_stats(&d->cc, d->addr[i], &reply, &len);
        bool ok = false;
        int64_t act = rc == 0 ? json_int(reply, len, "activations", &ok) : 0;
        persist[i][0] = '\0';
        if (ok) {
            printf("  node%d %" PRId64, i + 1, act);
            /* Messages this node passed on to the owner of the actor: a
             * client call enters through a gateway member chosen by the
             * actor's hash, not by its placement, so many take this extra
             * hop. */
            bool ok_in = false, ok_fwd = false;
            int64_t in = json_int(reply, len, "calls_in", &ok_in);
            int64_t fw = json_int(reply, len, "forwards", &ok_fwd);
            if (ok_in && ok_fwd) {
                size_t used = strlen(fwd);
                snprintf(fwd + used, sizeof fwd - used, "  node%d %" PRId64 "/%" PRId64, i + 1,
                         fw, in);
            }
            double p50 = json_num(reply, len, "persist_p50_ms");
            double p99 = json_num(reply, len, "persist_p99_ms");
            if (!isnan(p50) && !isnan(p99)) {
                snprintf(persist[i], sizeof persist[i], "node%d %.1f/%.1f ms", i + 1, p50, p99);
                any_persist = true;
            }
        } else {
            printf("  node%d ? (%s)", i + 1, mp_status_name(rc));
        }
        free(reply);
    }
    printf("\n");
    if (fwd[0]) printf("  messages forwarded/received per node:%s\n", fwd);
    if (any_persist) {
        printf("  state persist latency p50/p99:");
        for (int i = 0; i < d->o.nodes; i++)
            if (persist[i][0]) printf("  %s", persist[i]);
        printf("\n");
    }
}

/* Read every balance; returns the number of accounts whose balance equals
 * the ledger, and the number that could be read at all. */
static int read_all(demo *d, const char *label, size_t *readable, int64_t *sum)
{
    phase p = {label, (size_t)d->o.accounts, 0, 0, 0, make_balance, finish_balance, NULL};
    if (run_phase(d, &p) < 0) return -1;
    int match = 0;
    *readable = 0;
    *sum = 0;
    for (int i = 0; i < d->o.accounts; i++) {
        if (!d->read_ok[i]) continue;
        (*readable)++;
        *sum += d->actual[i];
        if (d->actual[i] == d->expected[i]) match++;
    }
    return match;
}

/* ---- main ------------------------------------------------------------------------ */

static int demo_main(demo *d)
{
    const mp_actor_type *bank = mp_bank_account_type();
    bool durable = bank->state != NULL && strcmp(d->o.storage, "memory") != 0;
    if (d->o.require_durable && !durable) {
        printf("SKIPPED: the BankAccount example keeps its state in memory in this build (or "
               "--storage memory), so a killed node loses its accounts' balances.\n");
        return 77;
    }

    printf("== moonpool demo: %d nodes on 127.0.0.1, %s storage under %s ==\n", d->o.nodes,
           d->o.storage, d->o.data);
    if (start_cluster(d) < 0) return MP_EXIT_FAIL;

    char err[300];
    if (mp_cc_open(&d->cc, d->conf[0], NULL, MP_LOG_ERROR, err, sizeof err) < 0) {
        fprintf(stderr, "moonpool demo: client: %s\n", err);
        return MP_EXIT_FAIL;
    }
    d->cc_open = true;

    size_t n = (size_t)d->o.accounts;
    d->expected = calloc(n, sizeof *d->expected);
    d->actual = calloc(n, sizeof *d->actual);
    d->read_ok = calloc(n, sizeof *d->read_ok);
    d->slots = calloc((size_t)d->o.concurrency, sizeof *d->slots);
    if (!d->expected || !d->actual || !d->read_ok || !d->slots) {
        fprintf(stderr, "moonpool demo: out of memory\n");
        return MP_EXIT_FAIL;
    }

    printf("\n== opening %d accounts (deposit %d each), then %d operations "
           "(35%% deposits, 30%% withdrawals, 35%% transfers), %d in flight ==\n",
           d->o.accounts, INITIAL_BALANCE, d->o.ops, d->o.concurrency);
    d->hard_deadline = now_ns() + DEMO_SLACK_NS;
    phase init = {"open", n, 0, 0, 0, make_init, finish_op, NULL};
    if (run_phase(d, &init) < 0) return MP_EXIT_FAIL;
    /* Latency and throughput figures are for the mixed workload only. */
    mp_hist_init(&d->lat);
    for (int k = 0; k < 3; k++) mp_hist_init(&d->lat_kind[k]);
    uint64_t acked0 = d->acked, refused0 = d->refused;
    d->hard_deadline = now_ns() + (uint64_t)d->o.seconds * 1000000000ull + DEMO_SLACK_NS;
    phase work = {"workload", (size_t)d->o.ops, 0, 0, 0, make_op, finish_op, mid_tick};
    work.stop_at_ns = now_ns() + (uint64_t)d->o.seconds * 1000000000ull;
    double secs = run_phase(d, &work);
    if (secs < 0) return MP_EXIT_FAIL;
    size_t ops_done = work.done;

    if (d->unk_n) {
        printf("  resolving %zu operations whose outcome was not learnt (op_status)\n",
               d->unk_n);
        phase st = {"op_status", d->unk_n, 0, 0, 0, make_status, finish_status, NULL};
        if (run_phase(d, &st) < 0) return MP_EXIT_FAIL;
        /* Unknown transfers that the source applied: their deposit leg is
         * retried by the source until it succeeds, so the ledger counts the
         * transfer whole. A source that died before the leg (no
         * persistence) shows up as a mismatch below, as it should. */
    }

    printf("\n== summary ==\n");
    printf("  operations: %zu (%" PRIu64 " applied, %" PRIu64 " refused: insufficient funds, %"
           PRIu64 " unknown, %" PRIu64 " failed; %" PRIu64 " retries, %" PRIu64
           " answered as duplicates)\n",
           ops_done, d->acked - acked0, d->refused - refused0, d->unknown, d->failed,
           d->retries, d->dups);
    if (d->retries) {
        printf("  retries by cause:");
        for (int st = 0; st <= -MP_STATUS_MIN_; st++)
            if (d->retry_cause[st]) printf(" %s %" PRIu64, mp_status_name(-st), d->retry_cause[st]);
        printf("\n");
    }
    printf("  throughput: %.0f ops/s over %.1f s\n", secs > 0 ? (double)ops_done / secs : 0,
           secs);
    printf("  latency: p50 %.2f ms, p99 %.2f ms (client to actor and back, with retries)\n",
           pct_ms(&d->lat, 0.50), pct_ms(&d->lat, 0.99));
    /* A transfer persists twice in sequence (the withdrawal with its owed
     * leg, then the deposit leg at the destination) and makes one more
     * call, so it is expected at a bit over 2x a deposit. */
    printf("  by kind p50/p99: deposit %.2f/%.2f ms, withdraw %.2f/%.2f ms, transfer %.2f/%.2f "
           "ms\n",
           pct_ms(&d->lat_kind[J_DEPOSIT], 0.50), pct_ms(&d->lat_kind[J_DEPOSIT], 0.99),
           pct_ms(&d->lat_kind[J_WITHDRAW], 0.50), pct_ms(&d->lat_kind[J_WITHDRAW], 0.99),
           pct_ms(&d->lat_kind[J_TRANSFER], 0.50), pct_ms(&d->lat_kind[J_TRANSFER], 0.99));
    print_stats(d);

    size_t readable = 0;
    int64_t sum = 0;
    int match = read_all(d, "check", &readable, &sum);
    if (match < 0) return MP_EXIT_FAIL;
    int64_t want = d->deposited - d->withdrawn;
    bool conserved = readable == n && sum == want;
    bool none_lost = (size_t)match == n && d->unknown == 0 && d->failed == 0;
    printf("  money conserved: %s (sum of %zu balances %" PRId64
           " %s deposits - withdrawals %" PRId64 ")\n",
           conserved ? "yes" : "NO", readable, sum, sum == want ? "==" : "!=", want);
    printf("  acknowledged operations lost or doubled: %s (%d of %zu accounts hold exactly the "
           "sum of their acknowledged operations)\n",
           none_lost ? "none" : "SOME", match, n);
    bool ok = conserved && none_lost;
    if (d->o.kill_mid && !ok && !durable)
        printf("  (expected here: a node was killed mid-workload and its accounts' state "
               "was not durable)\n");

    if (d->o.kill && !mp_proc_interrupted()) {
        int slot = 1;
        printf("\n== crash: SIGKILL node 2 (%s), restart it, read every account again ==\n",
               d->addr[slot]);
        long from = mp_proc_log_size(&d->g, slot);
        mp_proc_signal(&d->g, slot, SIGKILL);
        int st = mp_proc_reap(&d->g, slot, 5000);
        printf("  node 2 exited with status %d (128+9: killed)\n", st);
        if (mp_proc_respawn(&d->g, slot, node_argv(d, slot)) < 0) return MP_EXIT_FAIL;
        char line[512];
        if (wait_ready(d, slot, from, line, sizeof line) < 0) return MP_EXIT_FAIL;
        printf("  node 2 restarted: %s\n", line + strlen("moonpool node ready: "));
        int64_t sum2 = 0;
        size_t readable2 = 0;
        int match2 = read_all(d, "reread", &readable2, &sum2);
        if (match2 < 0) return MP_EXIT_FAIL;
        printf("  accounts reachable again: %zu/%zu\n", readable2, n);
        int zero = 0;
        for (size_t i = 0; i < n; i++)
            if (d->read_ok[i] && d->actual[i] != d->expected[i] && d->actual[i] == 0) zero++;
        printf("  accounts showing their balance from before the crash: %d/%zu"
               " (of the others, %d show 0, %zu another balance)\n",
               match2, n, zero, readable2 - (size_t)match2 - (size_t)zero);
        if (!durable) {
            printf("  note: %s, so the %zu accounts that lived on node 2 came back empty "
                   "(balance 0).\n",
                   bank->state ? "--storage memory keeps each node's state in its own memory"
                               : "the BankAccount example keeps no persistent state in this "
                                 "build",
                   n - (size_t)match2);
        } else if ((size_t)match2 != n) {
            ok = false;
        }
        if (readable2 != n) ok = false; /* reachability holds with or without state */
        print_stats(d);
    }
    return ok ? MP_EXIT_OK : MP_EXIT_FAIL;
}

int mp_cmd_demo(int argc, char **argv)
{
    demo d;
    memset(&d, 0, sizeof d);
    mp_hist_init(&d.lat);
    for (int k = 0; k < 3; k++) mp_hist_init(&d.lat_kind[k]);
    int rc = parse_args(argc, argv, &d.o);
    if (rc) return rc > 0 ? MP_EXIT_OK : MP_EXIT_USAGE;
    d.tty = isatty(1);
    demo_rng_seed(&d.rng, d.o.seed);
    mp_proc_catch_signals();
    if (mp_proc_self_exe(d.exe, sizeof d.exe) < 0) {
        fprintf(stderr, "moonpool demo: cannot find my own executable\n");
        return MP_EXIT_FAIL;
    }
    rc = mp_proc_wipe_dir(d.o.data, DEMO_MARKER);
    if (rc < 0) return rc == -2 ? MP_EXIT_USAGE : MP_EXIT_FAIL;
    char err[512], marker[1200];
    if (mp_host_mkdirs(d.o.data, err, sizeof err) < 0) {
        fprintf(stderr, "moonpool demo: %s\n", err);
        return MP_EXIT_FAIL;
    }
    snprintf(marker, sizeof marker, "%s/%s", d.o.data, DEMO_MARKER);
    if (write_file(marker, "moonpool demo data: safe to delete\n") < 0) return MP_EXIT_FAIL;

    uint64_t t0 = now_ns();
    int status = demo_main(&d);
    if (mp_proc_interrupted()) status = MP_EXIT_FAIL;

    /* Always: the client first (so no call is pending on a node that goes
     * away), then every node with SIGTERM, each expected to exit 0. */
    d.closing = true;
    if (d.cc_open) mp_cc_close(&d.cc);
    if (d.g.count) {
        printf("\n== shutdown: SIGTERM to every node ==\n");
        for (size_t i = 0; i < d.g.count; i++)
            if (d.g.procs[i].pid > 0) mp_proc_signal(&d.g, (int)i, SIGTERM);
        for (size_t i = 0; i < d.g.count; i++) {
            if (d.g.procs[i].pid <= 0) continue;
            int st = mp_proc_reap(&d.g, (int)i, 15000);
            printf("  node %zu exited with status %d%s\n", i + 1, st,
                   st == 0 ? " (clean)" : "");
            if (st != 0 && status == MP_EXIT_OK) status = MP_EXIT_FAIL;
        }
        mp_proc_kill_all(&d.g);
        printf("  logs: %s/node*.log\n", d.o.data);
    }
    if (status != 77)
        printf("\n== demo %s in %.1f s ==\n",
               mp_proc_interrupted() ? "interrupted" : status == 0 ? "passed" : "FAILED",
               (double)(now_ns() - t0) / 1e9);
    free(d.expected);
    free(d.actual);
    free(d.read_ok);
    free(d.slots);
    free(d.unknowns);
    return status;
}
