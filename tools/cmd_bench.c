/*
 * `moonpool bench`: the benchmark table of issue 7.
 *
 * Design, and why:
 *   - Real mode only (libuv env, TCP on 127.0.0.1): the point is the speed a
 *     user gets. The simulator's own speed is one scenario among others.
 *   - Closed-loop load: a scenario keeps exactly K calls in flight (each
 *     reply issues the next call), so "in flight" is a controlled setting and
 *     latency is not inflated by an unbounded queue we built ourselves.
 *   - A warm-up phase precedes every measured window (activations exist,
 *     connections are up, directory caches are filled, allocators warm), and
 *     a window is closed by an env timer, so no clock is read on the local
 *     hot path; where latency is wanted one clock read per call suffices
 *     (the completion time of one call is the start time of the next).
 *   - Every scenario runs `reps` times and the table shows the median of the
 *     repetitions for each figure (a percentile row is the median of the
 *     per-rep percentiles), so one noisy repetition does not move the table.
 *   - The remote node B runs in a fork()ed child (a real second process with
 *     its own loop, as in production) and hosts the actors: its actor types
 *     are registered only on B with prefer-local placement and B activates
 *     them itself before the parent starts, so A's directory lookups find
 *     them on B and A never places anything (A has no types: a misplaced
 *     call would fail loudly with MP_ENOTYPE and show in the errors column).
 *     The child gets PR_SET_PDEATHSIG and is always SIGKILLed and reaped.
 *   - The activation scenario runs in its own child process too: resident
 *     memory growth per activation is only meaningful in a process whose
 *     allocator has not been warmed by other scenarios, and the child can
 *     _exit without a slow graceful shutdown of a million activations.
 *   - Persistence is measured twice: through the runtime (an actor with
 *     JSON state calling mp_state_persist, replying when the save is
 *     durable: row "persist") and on the SQLite provider alone (row
 *     "persist(provider)"), so the runtime's share of the cost shows.
 *   - Tools may read the OS clock (clock_gettime) and use fork/pipes/files;
 *     the runtime under test never does (it goes through mp_env).
 *
 * Output: one table on stdout, every line starting with the scenario name
 * (the column header goes to stderr with the progress lines), and the same
 * figures as JSON with --json FILE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../src/util/hist.h"
#include "workloads.h"
#include "commands.h"
#include "moonpool/actor.h"
#include "moonpool/env.h"
#include "moonpool/env_tls.h"
#include "moonpool/env_uv.h"
#include "moonpool/limits.h"
#include "moonpool/node.h"
#include "moonpool/sim_workload.h"
#include "moonpool/state.h"
#include "moonpool/storage.h"

#define NS_PER_S 1000000000ull
#define NS_PER_MS 1000000ull
#define N_ACTORS 1000
#define MAX_FIGS 256
#define MAX_REPS 16

/* ---- settings ------------------------------------------------------------ */

typedef struct bench_cfg {
    bool quick;
    int reps;
    uint64_t warm_ns;    /* warm-up before each measured window */
    uint64_t measure_ns; /* measured window */
    uint64_t activations;
    uint64_t sim_seeds;
    const char *only;
    const char *match; /* run only settings containing this (profiling) */
    const char *json;
} bench_cfg;

static bool matches(const bench_cfg *cfg, const char *settings)
{
    return !cfg->match || strstr(settings, cfg->match) != NULL;
}

/* ---- wall clock (tools may read it) -------------------------------------- */

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static double wall_s(void) { return (double)wall_ns() * 1e-9; }

/* ---- figures: one row per (scenario, figure, settings), reps collected --- */

typedef struct fig {
    char scn[24];
    char name[24];
    char unit[12];
    char settings[96];
    double v[MAX_REPS];
    int n;
} fig;

static fig g_figs[MAX_FIGS];
static char g_loadavg[64] = "?";
static int g_nfigs;

static void record(const char *scn, const char *name, const char *unit,
                   const char *settings, double v)
{
    fig *f = NULL;
    for (int i = 0; i < g_nfigs; i++) {
        if (!strcmp(g_figs[i].scn, scn) && !strcmp(g_figs[i].name, name) &&
            !strcmp(g_figs[i].settings, settings)) {
            f = &g_figs[i];
            break;
        }
    }
    if (!f) {
        if (g_nfigs == MAX_FIGS) return;
        f = &g_figs[g_nfigs++];
        memset(f, 0, sizeof *f);
        snprintf(f->scn, sizeof f->scn, "%s", scn);
        snprintf(f->name, sizeof f->name, "%s", name);
        snprintf(f->unit, sizeof f->unit, "%s", unit);
        snprintf(f->settings, sizeof f->settings, "%s", settings);
    }
    if (f->n < MAX_REPS) f->v[f->n++] = v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double fig_median(const fig *f)
{
    double tmp[MAX_REPS];
    memcpy(tmp, f->v, sizeof(double) * (size_t)f->n);
    qsort(tmp, (size_t)f->n, sizeof tmp[0], cmp_double);
    if (f->n == 0) return 0;
    return f->n % 2 ? tmp[f->n / 2] : (tmp[f->n / 2 - 1] + tmp[f->n / 2]) / 2;
}

static void fmt_value(char *buf, size_t cap, double v)
{
    if (v >= 1000 || v == (double)(int64_t)v)
        snprintf(buf, cap, "%.0f", v);
    else if (v >= 10)
        snprintf(buf, cap, "%.1f", v);
    else
        snprintf(buf, cap, "%.2f", v);
}

static void print_table(FILE *out)
{
    fprintf(stderr, "%-18s %-13s %14s %-10s %s\n", "scenario", "figure", "value",
            "unit", "settings (median of reps)");
    for (int i = 0; i < g_nfigs; i++) {
        char v[32];
        fmt_value(v, sizeof v, fig_median(&g_figs[i]));
        fprintf(out, "%-18s %-13s %14s %-10s %s\n", g_figs[i].scn,
                g_figs[i].name, v, g_figs[i].unit, g_figs[i].settings);
    }
    fflush(out);
}

static int write_json(const char *path, const bench_cfg *cfg)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "moonpool bench: cannot write %s: %s\n", path,
                strerror(errno));
        return -1;
    }
    /* Every string here is ours (no quotes or backslashes), so plain
     * printing is valid JSON. */
    fprintf(f,
            "{\n  \"quick\": %s,\n  \"reps\": %d,\n  \"loadavg_start\": \"%s\",\n"
            "  \"figures\": [\n",
            cfg->quick ? "true" : "false", cfg->reps, g_loadavg);
    for (int i = 0; i < g_nfigs; i++) {
        const fig *g = &g_figs[i];
        fprintf(f,
                "    {\"scenario\": \"%s\", \"figure\": \"%s\", \"value\": %.6g, "
                "\"unit\": \"%s\", \"settings\": \"%s\", \"reps\": [",
                g->scn, g->name, fig_median(g), g->unit, g->settings);
        for (int r = 0; r < g->n; r++)
            fprintf(f, "%s%.6g", r ? ", " : "", g->v[r]);
        fprintf(f, "]}%s\n", i + 1 < g_nfigs ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    int rc = ferror(f) ? -1 : 0;
    if (fclose(f) != 0) rc = -1;
    return rc;
}

/* ---- small OS helpers ----------------------------------------------------- */

/* A port the OS says is free right now (bind to 0, read it, close). A race
 * with another program is possible but harmless here: node start fails. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, res = 0;
    int n = fscanf(f, "%lu %lu", &size, &res);
    fclose(f);
    return n == 2 ? (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

static bool write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

static bool read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        len -= (size_t)r;
    }
    return true;
}

/* ---- actor types used by the scenarios ------------------------------------ */

static uint64_t g_sink_hits; /* one-way arrivals counted in node B */

static void h_echo(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                   size_t len)
{
    mp_reply(msg, p, len);
}

static void h_touch(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                    size_t len)
{
    mp_reply(msg, NULL, 0);
}

static void h_hit(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                  size_t len)
{
    g_sink_hits++;
    mp_reply(msg, NULL, 0);
}

static void h_count(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                    size_t len)
{
    uint64_t v = g_sink_hits;
    mp_reply(msg, &v, sizeof v);
}

static const mp_method_def echo_methods[] = {{"echo", h_echo}};
static const mp_actor_type echo_type = {
    .name = "Echo",
    .methods = echo_methods,
    .method_count = 1,
    .placement = MP_PLACE_PREFER_LOCAL,
};

static const mp_method_def sink_methods[] = {{"hit", h_hit}, {"count", h_count}};
static const mp_actor_type sink_type = {
    .name = "Sink",
    .methods = sink_methods,
    .method_count = 2,
    .placement = MP_PLACE_PREFER_LOCAL,
};

static const mp_method_def idle_methods[] = {{"touch", h_touch}};
static const mp_actor_type idle_type = {
    .name = "Idle",
    .methods = idle_methods,
    .method_count = 1,
    .placement = MP_PLACE_PREFER_LOCAL,
};

/* ---- a node on its own real env ------------------------------------------- */

typedef struct bnode {
    mp_env *env; /* the libuv env: loops and timers run on it */
    mp_env *tls; /* --tls: the node's streams go through this wrapper */
    mp_node *node;
    bool down;
} bnode;

/* --tls DIR: every node-to-node link of the remote scenarios is TLS, with
 * DIR/ca.pem, DIR/node.pem and DIR/node.key (scripts/make-certs.sh). */
static const char *g_tls_dir;

static int bnode_tls(bnode *b)
{
    char cert[512], key[512], ca[512], err[256];
    snprintf(cert, sizeof cert, "%s/node.pem", g_tls_dir);
    snprintf(key, sizeof key, "%s/node.key", g_tls_dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", g_tls_dir);
    mp_env_tls_config tc = {cert, key, ca, 0, 0};
    int rc = mp_env_tls_create(b->env, &tc, &b->tls, err, sizeof err);
    if (rc) fprintf(stderr, "moonpool bench: %s\n", err);
    return rc;
}

static int bnode_start(bnode *b, const char *self, const char *const *members,
                       size_t n, const mp_actor_type *const *types,
                       size_t ntypes)
{
    memset(b, 0, sizeof *b);
    b->env = mp_env_uv_create(NULL, 0);
    if (!b->env) return MP_ENOMEM;
    b->env->log_level = MP_LOG_WARN;
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    cfg.cluster_namespace = "bench";
    cfg.self_addr = self;
    cfg.members = members;
    cfg.member_count = n;
    cfg.max_pending_calls = 4000000;
    int rc = g_tls_dir ? bnode_tls(b) : 0;
    if (rc == 0) rc = mp_node_create(b->tls ? b->tls : b->env, &cfg, &b->node);
    for (size_t i = 0; rc == 0 && i < ntypes; i++)
        rc = mp_node_register_type(b->node, types[i]);
    if (rc == 0) rc = mp_node_start(b->node);
    return rc;
}

static void bnode_down_cb(void *ud)
{
    bnode *b = ud;
    b->down = true;
    mp_env_uv_stop(b->env);
}

static void bnode_stop(bnode *b)
{
    if (b->node) {
        mp_node_shutdown(b->node, 500 * NS_PER_MS, bnode_down_cb, b);
        uint64_t until = wall_ns() + 5 * NS_PER_S;
        while (!b->down && wall_ns() < until) mp_env_uv_run_once(b->env, 1);
        /* Let closes finish. */
        for (int i = 0; i < 100 && mp_env_uv_run_once(b->env, 0); i++) {}
        b->node = NULL;
    }
    mp_env_tls_free(b->tls);
    b->tls = NULL;
    if (b->env && mp_env_uv_destroy(b->env) != 0)
        fprintf(stderr, "moonpool bench: env still busy at teardown (leaked)\n");
    b->env = NULL;
}

/* ---- latency histogram ----------------------------------------------------
 * The shared log-linear histogram (src/util/hist.h): every sample costs one
 * increment, percentiles are within 0.8%, and nothing is sorted or grown
 * while a window runs, so the driver's own cost per call stays flat and out
 * of the profile. */

/* ---- closed-loop call driver ---------------------------------------------- */

typedef struct driver driver;

typedef struct slot {
    driver *d;
    uint64_t t0;
    size_t idx; /* with fixed: this slot always calls refs[idx] */
} slot;

enum { PH_WARM, PH_MEASURE, PH_STOP };

struct driver {
    mp_env *env;
    mp_node *node;
    const mp_ref *refs;
    size_t nrefs, next;
    const char *method;
    const void *payload;
    size_t len;
    bool want_lat;
    bool fixed; /* one slot per ref (one update in flight per actor) */
    int phase;
    size_t inflight;
    uint64_t done, errors;
    int first_err;
    uint64_t t_start, t_end;
    mp_hist *lat;
    uint64_t total; /* completions in every phase (per-call profiling) */
    slot *slots;
};

static void drv_issue(driver *d, slot *s, uint64_t now);

static void drv_cb(void *ud, int status, const void *data, size_t len)
{
    slot *s = ud;
    driver *d = s->d;
    d->inflight--;
    d->total++;
    uint64_t now = 0;
    if (d->phase == PH_MEASURE) {
        if (status < 0) {
            d->errors++;
            if (!d->first_err) d->first_err = status;
        } else {
            d->done++;
        }
        if (d->want_lat) {
            now = wall_ns();
            mp_hist_record(d->lat, now - s->t0);
        }
    } else if (status < 0 && d->phase == PH_WARM) {
        d->errors++;
        if (!d->first_err) d->first_err = status;
    }
    if (d->phase != PH_STOP) {
        drv_issue(d, s, now);
    } else if (d->inflight == 0) {
        mp_env_uv_stop(d->env);
    }
}

static void drv_issue(driver *d, slot *s, uint64_t now)
{
    const mp_ref *r;
    if (d->fixed) {
        r = &d->refs[s->idx];
    } else {
        r = &d->refs[d->next];
        if (++d->next == d->nrefs) d->next = 0;
    }
    if (d->want_lat) s->t0 = now ? now : wall_ns();
    int rc = mp_call(d->node, r, d->method, d->payload, d->len, NULL, drv_cb, s);
    if (rc < 0) {
        d->errors++;
        if (!d->first_err) d->first_err = rc;
        if (d->inflight == 0 && d->phase == PH_STOP) mp_env_uv_stop(d->env);
        return;
    }
    d->inflight++;
}

static void drv_phase_timer(void *ud)
{
    driver *d = ud;
    if (d->phase == PH_WARM) {
        d->phase = PH_MEASURE;
        d->done = d->errors = 0;
        d->first_err = 0;
        if (d->lat) mp_hist_init(d->lat);
        d->t_start = wall_ns();
    } else {
        d->phase = PH_STOP;
        d->t_end = wall_ns();
        if (d->inflight == 0) mp_env_uv_stop(d->env);
    }
}

typedef struct run_result {
    double rate; /* completed calls per second of the window */
    double p50_us, p99_us, p999_us;
    uint64_t errors;
    int first_err;
} run_result;

static int drive(mp_env *env, mp_node *node, const mp_ref *refs, size_t nrefs,
                 const char *method, const void *payload, size_t len,
                 size_t inflight, bool want_lat, bool fixed,
                 const bench_cfg *cfg, run_result *out)
{
    driver d;
    memset(&d, 0, sizeof d);
    memset(out, 0, sizeof *out);
    d.env = env;
    d.node = node;
    d.refs = refs;
    d.nrefs = nrefs;
    d.method = method;
    d.payload = payload;
    d.len = len;
    d.want_lat = want_lat;
    d.fixed = fixed && inflight <= nrefs;
    d.slots = calloc(inflight, sizeof *d.slots);
    if (want_lat && (d.lat = malloc(sizeof *d.lat)) != NULL) mp_hist_init(d.lat);
    if (!d.slots || (want_lat && !d.lat)) {
        free(d.slots);
        free(d.lat);
        return MP_ENOMEM;
    }
    if (!mp_env_timer_start(env, cfg->warm_ns, drv_phase_timer, &d) ||
        !mp_env_timer_start(env, cfg->warm_ns + cfg->measure_ns,
                            drv_phase_timer, &d)) {
        /* Cannot happen short of OOM; a dangling timer would fire on a dead
         * driver, so give up on the whole program. */
        fprintf(stderr, "moonpool bench: cannot start timers\n");
        exit(MP_EXIT_FAIL);
    }
    for (size_t i = 0; i < inflight; i++) {
        d.slots[i].d = &d;
        d.slots[i].idx = i;
        drv_issue(&d, &d.slots[i], 0);
    }
    /* Returns when the window closed and every call came back (or when
     * nothing is left to do, which would mean the calls were lost). */
    while (!(d.phase == PH_STOP && d.inflight == 0)) {
        mp_env_uv_run(env);
        if (d.phase == PH_STOP && d.inflight == 0) break;
        if (d.phase != PH_STOP) continue;
        /* Stopped with calls still out (timeouts pending): keep running. */
    }
    double secs = (double)(d.t_end - d.t_start) * 1e-9;
    out->rate = secs > 0 ? (double)d.done / secs : 0;
    out->errors = d.errors;
    out->first_err = d.first_err;
    if (want_lat) {
        out->p50_us = mp_hist_quantile_us(d.lat, 0.50);
        out->p99_us = mp_hist_quantile_us(d.lat, 0.99);
        out->p999_us = mp_hist_quantile_us(d.lat, 0.999);
    }
    if (cfg->match)
        fprintf(stderr,
                "bench:   %" PRIu64 " calls in the window, %" PRIu64
                " in all (warm-up included)\n",
                d.done, d.total);
    free(d.slots);
    free(d.lat);
    return 0;
}

static void report_errors(const char *scn, const char *settings,
                          const run_result *r)
{
    if (r->errors)
        fprintf(stderr, "moonpool bench: %s %s: %" PRIu64 " errors (first: %s)\n",
                scn, settings, r->errors, mp_strerror(r->first_err));
    record(scn, "errors", "calls", settings, (double)r->errors);
}

static int make_refs(const char *type, size_t n, mp_ref **out)
{
    mp_ref *refs = calloc(n, sizeof *refs);
    if (!refs) return MP_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%zu", i);
        int rc = mp_ref_init(&refs[i], "bench", type, key);
        if (rc < 0) {
            free(refs);
            return rc;
        }
    }
    *out = refs;
    return 0;
}

/* ---- warm-up: call every ref once, retrying until each has succeeded ----- */

typedef struct warm {
    mp_env *env;
    mp_node *node;
    const mp_ref *refs;
    const char *method;
    size_t n, ok, out;
    bool *done;
    uint64_t deadline;
    bool failed;
} warm;

typedef struct warm_slot {
    warm *w;
    size_t i;
} warm_slot;

static void warm_send(warm *w, warm_slot *s);

static void warm_cb(void *ud, int status, const void *data, size_t len)
{
    warm_slot *s = ud;
    warm *w = s->w;
    w->out--;
    if (status == 0 && !w->done[s->i]) {
        w->done[s->i] = true;
        w->ok++;
    } else if (status != 0 && wall_ns() < w->deadline) {
        warm_send(w, s); /* the other node may not be up yet: retry */
        if (w->out) return;
    } else if (status != 0) {
        w->failed = true;
    }
    if (w->out == 0) mp_env_uv_stop(w->env);
}

static void warm_send(warm *w, warm_slot *s)
{
    mp_call_opts o = {.timeout_ns = 2 * NS_PER_S};
    if (mp_call(w->node, &w->refs[s->i], w->method, NULL, 0, &o, warm_cb, s) ==
        0)
        w->out++;
    else
        w->failed = true;
}

/* Calls method on every ref until each answered once (or 30 s pass). */
static int warm_up(mp_env *env, mp_node *node, const mp_ref *refs, size_t n,
                   const char *method)
{
    warm w;
    memset(&w, 0, sizeof w);
    w.env = env;
    w.node = node;
    w.refs = refs;
    w.method = method;
    w.n = n;
    w.done = calloc(n, sizeof *w.done);
    warm_slot *slots = calloc(n, sizeof *slots);
    if (!w.done || !slots) {
        free(w.done);
        free(slots);
        return MP_ENOMEM;
    }
    w.deadline = wall_ns() + 30 * NS_PER_S;
    mp_call_opts o = {.timeout_ns = 2 * NS_PER_S};
    for (size_t i = 0; i < n; i++) {
        slots[i].w = &w;
        slots[i].i = i;
        if (mp_call(node, &refs[i], method, NULL, 0, &o, warm_cb, &slots[i]) ==
            0)
            w.out++;
        else
            w.failed = true;
    }
    while (w.out) mp_env_uv_run(env);
    int rc = w.ok == n && !w.failed ? 0 : MP_ETIMEDOUT;
    free(w.done);
    free(slots);
    return rc;
}

/* ---- scenario 1: local ---------------------------------------------------- */

static int scn_local(const bench_cfg *cfg)
{
    char addr[32];
    int port = free_port();
    if (port < 0) return MP_EIO;
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    const char *members[] = {addr};
    const mp_actor_type *types[] = {&echo_type};
    bnode b;
    int rc = bnode_start(&b, addr, members, 1, types, 1);
    mp_ref *refs = NULL;
    if (rc == 0) rc = make_refs("Echo", N_ACTORS, &refs);
    if (rc == 0) rc = warm_up(b.env, b.node, refs, N_ACTORS, "echo");
    static const size_t inflights[] = {1, 256};
    char payload[16] = "0123456789abcde";
    for (size_t k = 0; rc == 0 && k < 2; k++) {
        char set[96];
        snprintf(set, sizeof set, "inflight=%zu actors=%d payload=16B",
                 inflights[k], N_ACTORS);
        if (!matches(cfg, set)) continue;
        for (int rep = 0; rc == 0 && rep < cfg->reps; rep++) {
            fprintf(stderr, "bench: local %s rep %d/%d\n", set, rep + 1,
                    cfg->reps);
            run_result r;
            rc = drive(b.env, b.node, refs, N_ACTORS, "echo", payload,
                       sizeof payload, inflights[k], false, false, cfg, &r);
            if (rc) break;
            record("local", "calls/s", "calls/s", set, r.rate);
            /* One node is one thread: per core equals per node. */
            record("local", "calls/s/core", "calls/s", set, r.rate);
            report_errors("local", set, &r);
        }
    }
    free(refs);
    if (b.env) bnode_stop(&b);
    return rc;
}

/* ---- scenarios 2 and 3: remote and oneway (node B in a child) ------------- */

static pid_t g_child = -1;

static void kill_child(void)
{
    if (g_child > 0) {
        kill(g_child, SIGKILL);
        while (waitpid(g_child, NULL, 0) < 0 && errno == EINTR) {}
        g_child = -1;
    }
}

/* Node B: host Echo and Sink actors, activate them, report ready, serve
 * until killed. Never returns. */
static void remote_child(const char *addr_a, const char *addr_b, int ready_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) _exit(1);
    const char *members[] = {addr_a, addr_b};
    const mp_actor_type *types[] = {&echo_type, &sink_type};
    bnode b;
    mp_ref *echo = NULL, *sink = NULL;
    int rc = bnode_start(&b, addr_b, members, 2, types, 2);
    if (rc == 0) rc = make_refs("Echo", N_ACTORS, &echo);
    if (rc == 0) rc = make_refs("Sink", N_ACTORS, &sink);
    if (rc == 0) rc = warm_up(b.env, b.node, echo, N_ACTORS, "echo");
    if (rc == 0) rc = warm_up(b.env, b.node, sink, N_ACTORS, "count");
    char c = rc == 0 ? 'R' : 'F';
    if (!write_all(ready_fd, &c, 1) || rc != 0) _exit(1);
    close(ready_fd);
    for (;;) mp_env_uv_run(b.env);
}

typedef struct ready_wait {
    mp_env *env;
    int fd;
    char got;
    uint64_t deadline;
} ready_wait;

static void ready_poll(void *ud)
{
    ready_wait *r = ud;
    char c;
    ssize_t n = read(r->fd, &c, 1);
    if (n == 1) {
        r->got = c;
    } else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
               wall_ns() > r->deadline) {
        r->got = 'F';
    }
    if (r->got) {
        mp_env_uv_stop(r->env);
        return;
    }
    mp_env_timer_start(r->env, NS_PER_MS, ready_poll, r);
}

/* One-way sends: a defer-driven sender keeps at most `window` messages not
 * yet counted by B, and a counter call polls B's arrival count. */
typedef struct oneway {
    mp_env *env;
    mp_node *node;
    const mp_ref *sink;
    mp_ref ctl;
    uint64_t base, arrived, sent, send_errs;
    uint64_t t_start, t_stop, t_done, deadline;
    bool counting, stop_sending, have_base, finished;
    size_t next;
} oneway;

static void ow_count(oneway *o);

static void ow_count_cb(void *ud, int status, const void *data, size_t len)
{
    oneway *o = ud;
    o->counting = false;
    if (status == 0 && len == sizeof(uint64_t)) {
        uint64_t v;
        memcpy(&v, data, sizeof v);
        if (!o->have_base) {
            o->base = v;
            o->have_base = true;
        } else {
            o->arrived = v - o->base;
        }
    }
    uint64_t now = wall_ns();
    if (o->stop_sending && (o->arrived >= o->sent || now > o->deadline)) {
        o->t_done = now;
        o->finished = true;
        mp_env_uv_stop(o->env);
        return;
    }
    ow_count(o);
}

static void ow_count(oneway *o)
{
    if (o->counting) return;
    if (mp_call(o->node, &o->ctl, "count", NULL, 0, NULL, ow_count_cb, o) == 0)
        o->counting = true;
}

static void ow_send(void *ud)
{
    oneway *o = ud;
    if (o->stop_sending) return;
    uint64_t window = 1u << 16;
    char payload[16] = "0123456789abcde";
    for (int i = 0; i < 1024 && o->sent - o->arrived < window; i++) {
        if (mp_send(o->node, &o->sink[o->next], "hit", payload, sizeof payload) ==
            0)
            o->sent++;
        else
            o->send_errs++;
        if (++o->next == N_ACTORS) o->next = 0;
    }
    if (mp_env_defer(o->env, ow_send, o) != 0)
        mp_env_timer_start(o->env, 0, ow_send, o);
}

static void ow_stop(void *ud)
{
    oneway *o = ud;
    o->stop_sending = true;
    o->t_stop = wall_ns();
    o->deadline = o->t_stop + 5 * NS_PER_S;
}

static void ow_start(void *ud)
{
    oneway *o = ud;
    o->t_start = wall_ns();
    ow_send(o);
}

static int run_oneway(bnode *a, const mp_ref *sink, const bench_cfg *cfg,
                      double *rate, uint64_t *errs)
{
    oneway o;
    memset(&o, 0, sizeof o);
    o.env = a->env;
    o.node = a->node;
    o.sink = sink;
    o.ctl = sink[0];
    /* Baseline count first. */
    ow_count(&o);
    while (!o.have_base && o.counting) mp_env_uv_run_once(a->env, 1);
    if (!o.have_base) return MP_EUNAVAIL;
    mp_env_timer_start(a->env, 1, ow_start, &o);
    mp_env_timer_start(a->env, cfg->measure_ns, ow_stop, &o);
    ow_count(&o);
    while (!o.finished) mp_env_uv_run(a->env);
    double secs = (double)(o.t_done - o.t_start) * 1e-9;
    *rate = secs > 0 ? (double)o.arrived / secs : 0;
    *errs = o.send_errs + (o.sent - (o.arrived < o.sent ? o.arrived : o.sent));
    return 0;
}

/* B's request-id memory after every remote run (node.h, "Request ids"):
 * the windows it holds, whatever the number of calls it ran. */
typedef struct stats_wait {
    mp_env *env;
    bool done;
    json_int_t origins, calls_in;
} stats_wait;

static void stats_got(void *ud, int status, const void *data, size_t len)
{
    stats_wait *w = ud;
    w->done = true;
    mp_env_uv_stop(w->env);
    if (status != 0) return;
    json_t *o = json_loadb(data, len, 0, NULL);
    w->origins = json_integer_value(json_object_get(o, "rid_origins"));
    w->calls_in = json_integer_value(json_object_get(o, "calls_in"));
    json_decref(o);
}

static void record_rid_memory(bnode *a, const char *addr_b)
{
    stats_wait w = {a->env, false, -1, -1};
    if (mp_node_request_stats(a->node, addr_b, stats_got, &w) != 0) return;
    while (!w.done) mp_env_uv_run(a->env);
    if (w.origins < 0) return;
    const char *set = "node B after every remote run";
    record("remote", "B calls run", "calls", set, (double)w.calls_in);
    record("remote", "B rid windows", "windows", set, (double)w.origins);
    record("remote", "B rid window memory", "KiB", set,
           (double)w.origins * (MP_RID_WINDOW_BITS / 8) / 1024.0);
}

static int scn_remote(const bench_cfg *cfg, bool do_remote, bool do_oneway)
{
    char addr_a[32], addr_b[32];
    int pa = free_port(), pb = free_port();
    if (pa < 0 || pb < 0 || pa == pb) return MP_EIO;
    snprintf(addr_a, sizeof addr_a, "127.0.0.1:%d", pa);
    snprintf(addr_b, sizeof addr_b, "127.0.0.1:%d", pb);
    int pfd[2];
    if (pipe(pfd) != 0) return MP_EIO;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return MP_EIO;
    }
    if (pid == 0) {
        close(pfd[0]);
        remote_child(addr_a, addr_b, pfd[1]);
        _exit(1);
    }
    g_child = pid;
    close(pfd[1]);
    fcntl(pfd[0], F_SETFL, fcntl(pfd[0], F_GETFL) | O_NONBLOCK);

    const char *members[] = {addr_a, addr_b};
    bnode a;
    mp_ref *echo = NULL, *sink = NULL;
    int rc = bnode_start(&a, addr_a, members, 2, NULL, 0);
    if (rc == 0) rc = make_refs("Echo", N_ACTORS, &echo);
    if (rc == 0) rc = make_refs("Sink", N_ACTORS, &sink);
    if (rc == 0) {
        ready_wait rw = {a.env, pfd[0], 0, wall_ns() + 60 * NS_PER_S};
        mp_env_timer_start(a.env, NS_PER_MS, ready_poll, &rw);
        while (!rw.got) mp_env_uv_run(a.env);
        if (rw.got != 'R') {
            fprintf(stderr, "moonpool bench: node B did not get ready\n");
            rc = MP_EUNAVAIL;
        }
    }
    close(pfd[0]);
    /* A's caches: one call per actor routes through the directory once. */
    if (rc == 0) rc = warm_up(a.env, a.node, echo, N_ACTORS, "echo");

    static const struct {
        size_t payload, inflight;
    } runs[] = {{16, 1},    {16, 64},    {16, 256},  {16, 1024},
                {1024, 1},  {1024, 256}, {65536, 1}, {65536, 64}};
    uint8_t *payload = calloc(1, 65536);
    if (!payload) rc = MP_ENOMEM;
    for (size_t k = 0; do_remote && rc == 0 && k < sizeof runs / sizeof runs[0];
         k++) {
        char set[96];
        snprintf(set, sizeof set, "inflight=%zu payload=%zuB actors=%d echo",
                 runs[k].inflight, runs[k].payload, N_ACTORS);
        if (!matches(cfg, set)) continue;
        for (int rep = 0; rc == 0 && rep < cfg->reps; rep++) {
            fprintf(stderr, "bench: remote %s rep %d/%d\n", set, rep + 1,
                    cfg->reps);
            run_result r;
            rc = drive(a.env, a.node, echo, N_ACTORS, "echo", payload,
                       runs[k].payload, runs[k].inflight, true, false, cfg,
                       &r);
            if (rc) break;
            record("remote", "calls/s", "calls/s", set, r.rate);
            record("remote", "p50", "us", set, r.p50_us);
            record("remote", "p99", "us", set, r.p99_us);
            record("remote", "p999", "us", set, r.p999_us);
            if (runs[k].payload >= 65536)
                record("remote", "MB/s", "MB/s", set,
                       r.rate * (double)runs[k].payload / 1e6);
            report_errors("remote", set, &r);
        }
    }
    if (do_remote && rc == 0) record_rid_memory(&a, addr_b);
    for (int rep = 0; do_oneway && rc == 0 && rep < cfg->reps; rep++) {
        fprintf(stderr, "bench: oneway rep %d/%d\n", rep + 1, cfg->reps);
        double rate = 0;
        uint64_t errs = 0;
        rc = run_oneway(&a, sink, cfg, &rate, &errs);
        if (rc) break;
        const char *set = "payload=16B actors=1000 window=65536 counted-in-B";
        record("oneway", "msgs/s", "msgs/s", set, rate);
        record("oneway", "lost", "msgs", set, (double)errs);
    }
    free(payload);
    free(echo);
    free(sink);
    if (a.env) bnode_stop(&a);
    kill_child();
    return rc;
}

/* ---- scenario 4: activations (in a child) --------------------------------- */

typedef struct act_run {
    mp_env *env;
    mp_node *node;
    uint64_t n, next, done, errors;
    size_t inflight;
} act_run;

static void act_issue(act_run *r);

static void act_cb(void *ud, int status, const void *data, size_t len)
{
    act_run *r = ud;
    r->inflight--;
    if (status == 0)
        r->done++;
    else
        r->errors++;
    if (r->next < r->n)
        act_issue(r);
    else if (r->inflight == 0)
        mp_env_uv_stop(r->env);
}

static void act_issue(act_run *r)
{
    char key[32];
    snprintf(key, sizeof key, "a%" PRIu64, r->next++);
    mp_ref ref;
    if (mp_ref_init(&ref, "bench", "Idle", key) < 0 ||
        mp_call(r->node, &ref, "touch", NULL, 0, NULL, act_cb, r) < 0) {
        r->errors++;
        return;
    }
    r->inflight++;
}

/* Child: result doubles {rate, bytes per activation, live activations,
 * errors}. */
static void activations_child(uint64_t n, int fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    double res[4] = {0, 0, 0, 0};
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
    const char *members[] = {addr};
    const mp_actor_type *types[] = {&idle_type};
    bnode b;
    if (bnode_start(&b, addr, members, 1, types, 1) == 0) {
        act_run r = {b.env, b.node, n, 0, 0, 0, 0};
        /* Let the node settle, then measure from a steady RSS. */
        mp_env_uv_run_once(b.env, 0);
        uint64_t rss0 = rss_bytes();
        uint64_t t0 = wall_ns();
        for (int i = 0; i < 1024 && r.next < r.n; i++) act_issue(&r);
        while (r.inflight) mp_env_uv_run(b.env);
        uint64_t t1 = wall_ns();
        uint64_t rss1 = rss_bytes();
        mp_node_stats st;
        mp_node_get_stats(b.node, &st);
        res[0] = (double)r.done / ((double)(t1 - t0) * 1e-9);
        res[1] = st.activations ? (double)(rss1 - rss0) / (double)st.activations
                                : 0;
        res[2] = (double)st.activations;
        res[3] = (double)r.errors;
    }
    write_all(fd, res, sizeof res);
    _exit(0); /* no graceful shutdown of a million activations */
}

static int scn_activations(const bench_cfg *cfg)
{
    for (int rep = 0; rep < cfg->reps; rep++) {
        fprintf(stderr, "bench: activations n=%" PRIu64 " rep %d/%d\n",
                cfg->activations, rep + 1, cfg->reps);
        int pfd[2];
        if (pipe(pfd) != 0) return MP_EIO;
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) return MP_EIO;
        if (pid == 0) {
            close(pfd[0]);
            activations_child(cfg->activations, pfd[1]);
        }
        close(pfd[1]);
        double res[4];
        bool ok = read_all(pfd[0], res, sizeof res);
        close(pfd[0]);
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        if (!ok || res[2] == 0) {
            fprintf(stderr, "moonpool bench: activations child failed\n");
            return MP_EIO;
        }
        char set[96];
        snprintf(set, sizeof set, "n=%" PRIu64 " stateless inflight=1024",
                 cfg->activations);
        record("activations", "act/s", "act/s", set, res[0]);
        record("activations", "bytes/idle", "B", set, res[1]);
        record("activations", "live", "actors", set, res[2]);
        record("activations", "errors", "calls", set, res[3]);
    }
    return 0;
}

/* ---- scenario 5: persisted updates through the SQLite provider ----------- */

typedef struct pkey {
    struct persist *p;
    char key[48];
    size_t klen;
    uint64_t etag, t0;
} pkey;

typedef struct persist {
    mp_env *env;
    mp_storage *s;
    pkey *keys;
    size_t nkeys, inflight;
    int phase;
    uint64_t done, errors, t_start, t_end;
    mp_hist *lat;
    bool closed;
} persist;

static void p_save(pkey *k);

static void p_cb(void *ud, int status, uint64_t new_etag)
{
    pkey *k = ud;
    persist *p = k->p;
    p->inflight--;
    uint64_t now = wall_ns();
    if (status == 0) k->etag = new_etag;
    if (p->phase == PH_MEASURE) {
        if (status == 0) {
            p->done++;
            mp_hist_record(p->lat, now - k->t0);
        } else {
            p->errors++;
        }
    }
    if (p->phase != PH_STOP)
        p_save(k);
    else if (p->inflight == 0)
        mp_env_uv_stop(p->env);
}

static void p_save(pkey *k)
{
    static const char value[64] = "{\"balance\":12345,\"ops\":[\"x\",\"y\"]}";
    k->t0 = wall_ns();
    if (mp_storage_save(k->p->s, k->key, k->klen, value, sizeof value, k->etag,
                        NULL, p_cb, k) == 0)
        k->p->inflight++;
    else
        k->p->errors++;
}

static void p_phase(void *ud)
{
    persist *p = ud;
    if (p->phase == PH_WARM) {
        p->phase = PH_MEASURE;
        p->done = p->errors = 0;
        mp_hist_init(p->lat);
        p->t_start = wall_ns();
    } else {
        p->phase = PH_STOP;
        p->t_end = wall_ns();
        if (p->inflight == 0) mp_env_uv_stop(p->env);
    }
}

static void p_closed(void *ud)
{
    persist *p = ud;
    p->closed = true;
    mp_env_uv_stop(p->env);
}

static int run_persist(const char *dir, size_t nkeys, const bench_cfg *cfg,
                       double *rate, double *p99, double *p50, uint64_t *errs)
{
    char path[256];
    snprintf(path, sizeof path, "%s/bench-%zu.db", dir, nkeys);
    persist p;
    memset(&p, 0, sizeof p);
    p.env = mp_env_uv_create(NULL, 0);
    if (!p.env) return MP_ENOMEM;
    p.env->log_level = MP_LOG_WARN;
    int rc = mp_storage_sqlite_open(p.env, path, &p.s);
    p.keys = calloc(nkeys, sizeof *p.keys);
    p.lat = malloc(sizeof *p.lat);
    if (p.lat) mp_hist_init(p.lat);
    if (rc == 0 && (!p.keys || !p.lat)) rc = MP_ENOMEM;
    if (rc == 0) {
        p.nkeys = nkeys;
        for (size_t i = 0; i < nkeys; i++) {
            char k[24];
            snprintf(k, sizeof k, "k%zu", i);
            int l = mp_storage_key(p.keys[i].key, sizeof p.keys[i].key, "bench",
                                   "Counter", k);
            if (l < 0) {
                rc = l;
                break;
            }
            p.keys[i].klen = (size_t)l;
            p.keys[i].p = &p;
        }
    }
    if (rc == 0) {
        mp_env_timer_start(p.env, cfg->warm_ns, p_phase, &p);
        mp_env_timer_start(p.env, cfg->warm_ns + cfg->measure_ns, p_phase, &p);
        for (size_t i = 0; i < nkeys; i++) p_save(&p.keys[i]);
        while (!(p.phase == PH_STOP && p.inflight == 0)) mp_env_uv_run(p.env);
        double secs = (double)(p.t_end - p.t_start) * 1e-9;
        *rate = secs > 0 ? (double)p.done / secs : 0;
        *p99 = mp_hist_quantile_us(p.lat, 0.99);
        *p50 = mp_hist_quantile_us(p.lat, 0.50);
        *errs = p.errors;
    }
    if (p.s) {
        mp_storage_close(p.s, p_closed, &p);
        while (!p.closed) mp_env_uv_run(p.env);
    }
    while (mp_env_uv_run_once(p.env, 0)) {}
    mp_env_uv_destroy(p.env);
    free(p.keys);
    free(p.lat);
    unlink(path);
    char side[300];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    return rc;
}

/* ---- scenario 5b: persisted updates through the runtime (mp_state) ------- */

static void counter_persisted(void *ud, int status)
{
    mp_msg *msg = ud;
    if (status < 0)
        mp_reply_error(msg, status, "persist failed");
    else
        mp_reply(msg, NULL, 0);
}

/* incr: n += 1 in the JSON state, persist, reply when the save is durable. */
static void h_incr(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                   size_t len)
{
    json_t *st = mp_state_get(self);
    if (!st) {
        st = json_object();
        if (!st) {
            mp_reply_error(msg, MP_ENOMEM, "out of memory");
            return;
        }
        mp_state_set(self, st);
    }
    json_int_t n = json_integer_value(json_object_get(st, "n"));
    if (json_object_set_new(st, "n", json_integer(n + 1)) != 0) {
        mp_reply_error(msg, MP_ENOMEM, "out of memory");
        return;
    }
    int rc = mp_state_persist(self, counter_persisted, msg);
    if (rc < 0) mp_reply_error(msg, rc, "persist refused");
}

static const mp_state_type counter_state = {.codec = NULL}; /* JSON */
static const mp_method_def counter_methods[] = {{"incr", h_incr}};
static const mp_actor_type counter_type = {
    .name = "Counter",
    .methods = counter_methods,
    .method_count = 1,
    .placement = MP_PLACE_PREFER_LOCAL,
    .state = &counter_state,
};

static void storage_closed(void *ud)
{
    bool *done = ud;
    *done = true;
}

/* One node with a SQLite provider; nactors Counter actors, each with one
 * incr (= one durable save) in flight. */
static int run_state_persist(const char *dir, size_t nactors,
                             const bench_cfg *cfg, run_result *r)
{
    char path[256], addr[32];
    snprintf(path, sizeof path, "%s/state-%zu.db", dir, nactors);
    int port = free_port();
    if (port < 0) return MP_EIO;
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    bnode b;
    memset(&b, 0, sizeof b);
    b.env = mp_env_uv_create(NULL, 0);
    if (!b.env) return MP_ENOMEM;
    b.env->log_level = MP_LOG_WARN;
    mp_storage *st = NULL;
    mp_ref *refs = NULL;
    int rc = mp_storage_sqlite_open(b.env, path, &st);
    if (rc == 0) {
        const char *members[] = {addr};
        mp_node_config nc;
        mp_node_config_init(&nc);
        nc.cluster_namespace = "bench";
        nc.self_addr = addr;
        nc.members = members;
        nc.member_count = 1;
        nc.storage = st;
        rc = mp_node_create(b.env, &nc, &b.node);
        if (rc == 0) rc = mp_node_register_type(b.node, &counter_type);
        if (rc == 0) rc = mp_node_start(b.node);
    }
    if (rc == 0) rc = make_refs("Counter", nactors, &refs);
    if (rc == 0)
        rc = drive(b.env, b.node, refs, nactors, "incr", NULL, 0, nactors,
                   true, true, cfg, r);
    free(refs);
    if (b.node) {
        mp_node_shutdown(b.node, 2 * NS_PER_S, bnode_down_cb, &b);
        while (!b.down) mp_env_uv_run_once(b.env, 1);
        b.node = NULL;
    }
    if (st) {
        bool closed = false;
        mp_storage_close(st, storage_closed, &closed);
        while (!closed) mp_env_uv_run_once(b.env, 1);
    }
    for (int i = 0; i < 100 && mp_env_uv_run_once(b.env, 0); i++) {}
    if (mp_env_uv_destroy(b.env) != 0)
        fprintf(stderr, "moonpool bench: env still busy at teardown (leaked)\n");
    unlink(path);
    char side[300];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    return rc;
}

static int scn_persist(const bench_cfg *cfg)
{
    char dir[] = "/tmp/moonpool-bench-XXXXXX";
    if (!mkdtemp(dir)) return MP_EIO;
    static const size_t nkeys[] = {1, 64, 1024};
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < 3; k++) {
        for (int rep = 0; rc == 0 && rep < cfg->reps; rep++) {
            fprintf(stderr, "bench: persist actors=%zu rep %d/%d\n", nkeys[k],
                    rep + 1, cfg->reps);
            run_result r;
            rc = run_state_persist(dir, nkeys[k], cfg, &r);
            if (rc) break;
            char set[96];
            snprintf(set, sizeof set,
                     "actors=%zu sqlite-default mp_state_persist json 1/actor",
                     nkeys[k]);
            record("persist", "updates/s", "updates/s", set, r.rate);
            record("persist", "p50", "us", set, r.p50_us);
            record("persist", "p99", "us", set, r.p99_us);
            report_errors("persist", set, &r);
        }
    }
    for (size_t k = 0; rc == 0 && k < 3; k++) {
        for (int rep = 0; rc == 0 && rep < cfg->reps; rep++) {
            fprintf(stderr, "bench: persist(provider) actors=%zu rep %d/%d\n",
                    nkeys[k], rep + 1, cfg->reps);
            double rate = 0, p99 = 0, p50 = 0;
            uint64_t errs = 0;
            rc = run_persist(dir, nkeys[k], cfg, &rate, &p99, &p50, &errs);
            if (rc) break;
            char set[96];
            snprintf(set, sizeof set,
                     "actors=%zu sqlite-default value=64B 1-update-in-flight/actor",
                     nkeys[k]);
            record("persist(provider)", "updates/s", "updates/s", set, rate);
            record("persist(provider)", "p50", "us", set, p50);
            record("persist(provider)", "p99", "us", set, p99);
            record("persist(provider)", "errors", "updates", set, (double)errs);
        }
    }
    rmdir(dir);
    return rc;
}

/* ---- scenario 6: simulator speed ------------------------------------------ */

static int scn_sim(const bench_cfg *cfg)
{
    mp_sim_workloads_register_builtin();
    const mp_sim_workload *w = mp_sim_workload_find("bank");
    if (!w) return MP_ENOTFOUND;
    FILE *devnull = fopen("/dev/null", "w");
    if (!devnull) return MP_EIO;
    int rc = 0;
    for (int rep = 0; rep < cfg->reps; rep++) {
        fprintf(stderr, "bench: sim bank seeds=%" PRIu64 " rep %d/%d\n",
                cfg->sim_seeds, rep + 1, cfg->reps);
        mp_sim_run_opts o;
        mp_sim_run_opts_init(&o);
        o.seed_first = 1 + (uint64_t)rep * cfg->sim_seeds;
        o.seed_last = o.seed_first + cfg->sim_seeds - 1;
        o.out = devnull;
        o.argv0 = mp_program_path;
        o.wall_clock = wall_s;
        mp_sim_run_result r;
        memset(&r, 0, sizeof r);
        mp_sim_run_seeds(w, &o, &r);
        if (r.wall_s <= 0) {
            rc = MP_EINTERNAL;
            break;
        }
        char set[96];
        snprintf(set, sizeof set, "workload=bank seeds=%" PRIu64 " swarm buggify",
                 cfg->sim_seeds);
        record("sim", "events/s", "events/s", set, (double)r.events / r.wall_s);
        record("sim", "seeds/min", "seeds/min", set,
               (double)(r.passed + r.failed) * 60.0 / r.wall_s);
        record("sim", "sim-s/wall-s", "ratio", set,
               (double)r.sim_ns * 1e-9 / r.wall_s);
        record("sim", "failed", "seeds", set, (double)r.failed);
    }
    fclose(devnull);
    return rc;
}

/* ---- command -------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: moonpool bench [--quick] [--json FILE] [--only SCENARIO] [--reps N]\n"
            "                      [--match TEXT] [--tls DIR]\n"
            "\n"
            "Run the benchmarks in real mode on 127.0.0.1 and print one table\n"
            "(every line starts with the scenario name; each figure is the\n"
            "median of its repetitions). Scenarios: local, remote, oneway,\n"
            "activations, persist, sim.\n"
            "\n"
            "  --quick          short windows (whole run under a minute)\n"
            "  --json FILE      also write the figures as JSON\n"
            "  --only SCENARIO  run one scenario\n"
            "  --reps N         repetitions per figure (default 3)\n"
            "  --match TEXT     local/remote: only the settings containing TEXT\n"
            "                   (e.g. --only remote --match 'inflight=256 payload=16B'\n"
            "                   to profile one configuration)\n"
            "  --tls DIR        remote/oneway over TLS with DIR/ca.pem, DIR/node.pem,\n"
            "                   DIR/node.key (scripts/make-certs.sh DIR makes them)\n"
            "  -h, --help       this text\n");
}

static bool want(const bench_cfg *cfg, const char *name)
{
    return !cfg->only || strcmp(cfg->only, name) == 0;
}

int mp_cmd_bench(int argc, char **argv)
{
    bench_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.reps = 3;
    static const struct option opts[] = {
        {"quick", no_argument, NULL, 'q'},
        {"json", required_argument, NULL, 'j'},
        {"only", required_argument, NULL, 'o'},
        {"reps", required_argument, NULL, 'r'},
        {"match", required_argument, NULL, 'm'},
        {"tls", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'q': cfg.quick = true; break;
        case 'j': cfg.json = optarg; break;
        case 'o': cfg.only = optarg; break;
        case 'm': cfg.match = optarg; break;
        case 't': g_tls_dir = optarg; break;
        case 'r': {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (!end || *end || v < 1 || v > MAX_REPS) {
                fprintf(stderr, "moonpool bench: --reps takes 1..%d\n", MAX_REPS);
                return MP_EXIT_USAGE;
            }
            cfg.reps = (int)v;
            break;
        }
        case 'h': usage(stdout); return MP_EXIT_OK;
        default: usage(stderr); return MP_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return MP_EXIT_USAGE;
    }
    static const char *const names[] = {"local", "remote", "oneway",
                                        "activations", "persist", "sim"};
    if (cfg.only) {
        bool ok = false;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            ok = ok || strcmp(cfg.only, names[i]) == 0;
        if (!ok) {
            fprintf(stderr, "moonpool bench: unknown scenario '%s'\n", cfg.only);
            usage(stderr);
            return MP_EXIT_USAGE;
        }
    }
    cfg.warm_ns = cfg.quick ? 100 * NS_PER_MS : 300 * NS_PER_MS;
    cfg.measure_ns = cfg.quick ? 300 * NS_PER_MS : 2 * NS_PER_S;
    cfg.activations = cfg.quick ? 100000 : 1000000;
    cfg.sim_seeds = cfg.quick ? 20 : 100;
    signal(SIGPIPE, SIG_IGN);

    /* Other processes on the machine skew every figure: say how busy it
     * was (1-minute load average at the start; 2 cores on the reference
     * machine). */
    char loadavg[64] = "?";
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (!fgets(loadavg, sizeof loadavg, lf)) snprintf(loadavg, sizeof loadavg, "?");
        fclose(lf);
        loadavg[strcspn(loadavg, " \n")] = '\0';
    }
    snprintf(g_loadavg, sizeof g_loadavg, "%s", loadavg);
    fprintf(stderr, "bench: load average at start %s, %ld cores\n", g_loadavg,
            sysconf(_SC_NPROCESSORS_ONLN));
    uint64_t t0 = wall_ns();
    int rc = 0, failed = 0;
#define RUN(name, expr)                                                       \
    do {                                                                      \
        if (want(&cfg, name)) {                                               \
            rc = (expr);                                                      \
            if (rc) {                                                         \
                fprintf(stderr, "moonpool bench: %s failed: %s\n", name,      \
                        mp_strerror(rc));                                     \
                failed++;                                                     \
            }                                                                 \
        }                                                                     \
    } while (0)
    RUN("local", scn_local(&cfg));
    if (want(&cfg, "remote") || want(&cfg, "oneway")) {
        rc = scn_remote(&cfg, want(&cfg, "remote"), want(&cfg, "oneway"));
        if (rc) {
            fprintf(stderr, "moonpool bench: remote/oneway failed: %s\n",
                    mp_strerror(rc));
            failed++;
        }
    }
    RUN("activations", scn_activations(&cfg));
    RUN("persist", scn_persist(&cfg));
    RUN("sim", scn_sim(&cfg));
#undef RUN
    kill_child();
    fprintf(stderr, "bench: done in %.1f s (%s, %d reps)\n",
            (double)(wall_ns() - t0) * 1e-9, cfg.quick ? "quick" : "full",
            cfg.reps);
    print_table(stdout);
    if (cfg.json && write_json(cfg.json, &cfg) != 0) failed++;
    return failed ? MP_EXIT_FAIL : MP_EXIT_OK;
}
