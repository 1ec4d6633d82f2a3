/*
 * The seed runner: runs a workload over a range of seeds, each seed in a fresh
 * world, and turns the outcomes into the lines a developer acts on.
 *
 * Why it is shaped this way:
 *
 *  - One seed = one world, built and destroyed here, so nothing a seed does
 *    can leak into the next one (except bugs that keep static state, which
 *    --check-determinism is there to expose).
 *  - Every failing seed prints the single command line that replays it with
 *    the same options, because a failure nobody can replay is worth little.
 *    The fault configuration is always printed with a failure: with swarm
 *    testing it differs per seed and explains most failures at a glance.
 *  - The determinism check runs a seed twice. The simulator allows one world
 *    per thread, so the first run's per-event hashes (and interned event
 *    labels, 4 bytes per event) are copied out before its world is destroyed;
 *    the second run is compared against them while its own world still
 *    lives, which is the only moment its labels can be read.
 *  - Coverage is aggregated across seeds: a sometimes-assertion only has to
 *    hold in one seed of the set. Sites are static, so their pointers are
 *    stable keys; the aggregate is an array built from a first
 *    mp_sites_foreach pass (the section order is fixed, so later passes visit
 *    sites in the same order and the lookup is a cursor, with a linear search
 *    as a fallback). The report is sorted by name, file, line — never by
 *    pointer — so it is identical from run to run. Coverage only applies when
 *    more than one seed ran, and not with --check-determinism: replaying
 *    one seed must not fail because that seed alone does not reach every
 *    rare path, and a determinism set is sized for replays, not for reach.
 *  - This file is runtime code (under src/) and may not read a clock. The
 *    wall time for the speed line comes from a callback installed by the
 *    tool (mp_sim_run_opts.wall_clock); without one the speed line is
 *    omitted.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "moonpool/sim.h"
#include "moonpool/sim_workload.h"

#define DEFAULT_CHAOS_NS (10 * MP_NS_PER_SEC)
#define DEFAULT_HEAL_NS (30 * MP_NS_PER_SEC)

/* ---- options -------------------------------------------------------------- */

void mp_sim_run_opts_init(mp_sim_run_opts *o)
{
    assert(o);
    memset(o, 0, sizeof *o);
    o->seed_first = 1;
    o->seed_last = 1;
    o->swarm = true;
    o->buggify = true;
    o->faults = true;
    o->argv0 = "moonpool";
}

static FILE *out_of(const mp_sim_run_opts *o) { return o->out ? o->out : stdout; }

/* Exact decimal seconds for a duration, so a replay line reproduces it. */
static void fmt_seconds(uint64_t ns, char *buf, size_t cap)
{
    uint64_t s = ns / MP_NS_PER_SEC, frac = ns % MP_NS_PER_SEC;
    if (frac == 0) {
        snprintf(buf, cap, "%" PRIu64, s);
        return;
    }
    char f[16];
    snprintf(f, sizeof f, "%09" PRIu64, frac);
    for (int i = 8; i > 0 && f[i] == '0'; i--) f[i] = '\0';
    snprintf(buf, cap, "%" PRIu64 ".%s", s, f);
}

static uint64_t chaos_ns_of(const mp_sim_workload *w, const mp_sim_run_opts *o)
{
    if (o->chaos_ns) return o->chaos_ns;
    if (w->chaos_ns) return w->chaos_ns;
    return DEFAULT_CHAOS_NS;
}

static uint64_t heal_ns_of(const mp_sim_workload *w, const mp_sim_run_opts *o)
{
    if (o->heal_ns) return o->heal_ns;
    if (w->heal_ns) return w->heal_ns;
    return DEFAULT_HEAL_NS;
}

/* The faults a seed runs with. Swarm draws them from the seed here (not
 * inside the world) so that what is printed is exactly what ran, and so that
 * --no-buggify can still switch buggify off in a swarm run. Without swarm a
 * fixed moderate mix is used; --no-faults keeps only the base latency. */
static void seed_faults_base(const mp_sim_run_opts *o, uint64_t seed,
                             mp_sim_faults *f);

static void seed_faults(const mp_sim_workload *w, const mp_sim_run_opts *o,
                        uint64_t seed, mp_sim_faults *f)
{
    seed_faults_base(o, seed, f);
    if (o->faults && w->tune_faults) w->tune_faults(seed, f);
}

static void seed_faults_base(const mp_sim_run_opts *o, uint64_t seed,
                             mp_sim_faults *f)
{
    mp_sim_config defaults;
    mp_sim_config_init(&defaults);
    if (!o->faults) {
        memset(f, 0, sizeof *f);
        f->latency_min_ns = defaults.faults.latency_min_ns;
        f->latency_max_ns = defaults.faults.latency_max_ns;
        f->buggify = o->buggify;
        return;
    }
    if (o->swarm) {
        mp_sim_faults_swarm(seed, f);
        if (!o->buggify) f->buggify = false;
        return;
    }
    *f = defaults.faults;
    f->latency_tail_p = 0.01;
    f->latency_tail_ns = 200 * MP_NS_PER_MS;
    f->connect_fail_p = 0.02;
    f->reset_rate = 0.05;
    f->partition_rate = 0.05;
    f->partition_max_ns = 2 * MP_NS_PER_SEC;
    f->clog_rate = 0.05;
    f->clog_max_ns = 500 * MP_NS_PER_MS;
    f->kill_rate = 0.03;
    f->restart_max_ns = 2 * MP_NS_PER_SEC;
    f->buggify = o->buggify;
}

/* ---- trace copy (determinism check) --------------------------------------- */

typedef struct trace_copy {
    uint64_t n;
    uint64_t *hash;   /* hash after event i */
    uint32_t *label;  /* interned label of event i */
    char **strings;   /* distinct labels, in first-seen order */
    uint32_t nstrings, cap_strings;
    uint32_t *table;  /* open addressing: string index + 1, 0 = empty */
    uint32_t table_cap;
} trace_copy;

static void trace_free(trace_copy *t)
{
    for (uint32_t i = 0; i < t->nstrings; i++) free(t->strings[i]);
    free(t->strings);
    free(t->table);
    free(t->hash);
    free(t->label);
    memset(t, 0, sizeof *t);
}

static uint64_t str_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a: content only, no pointers */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static bool trace_table_grow(trace_copy *t)
{
    uint32_t cap = t->table_cap ? t->table_cap * 2 : 64;
    uint32_t *tab = calloc(cap, sizeof *tab);
    if (!tab) return false;
    for (uint32_t i = 0; i < t->nstrings; i++) {
        uint32_t j = (uint32_t)(str_hash(t->strings[i]) & (cap - 1));
        while (tab[j]) j = (j + 1) & (cap - 1);
        tab[j] = i + 1;
    }
    free(t->table);
    t->table = tab;
    t->table_cap = cap;
    return true;
}

/* Index of `s` in the pool, adding it if new; UINT32_MAX on out-of-memory. */
static uint32_t trace_intern(trace_copy *t, const char *s)
{
    if ((uint64_t)(t->nstrings + 1) * 2 > t->table_cap && !trace_table_grow(t))
        return UINT32_MAX;
    uint32_t mask = t->table_cap - 1;
    uint32_t j = (uint32_t)(str_hash(s) & mask);
    while (t->table[j]) {
        uint32_t idx = t->table[j] - 1;
        if (strcmp(t->strings[idx], s) == 0) return idx;
        j = (j + 1) & mask;
    }
    if (t->nstrings == t->cap_strings) {
        uint32_t cap = t->cap_strings ? t->cap_strings * 2 : 32;
        char **ns = realloc(t->strings, cap * sizeof *ns);
        if (!ns) return UINT32_MAX;
        t->strings = ns;
        t->cap_strings = cap;
    }
    char *copy = strdup(s);
    if (!copy) return UINT32_MAX;
    t->strings[t->nstrings] = copy;
    t->table[j] = t->nstrings + 1;
    return t->nstrings++;
}

/* Copy the world's recorded trace. Returns false on out-of-memory. */
static bool trace_save(trace_copy *t, mp_sim *sim)
{
    uint64_t n = mp_sim_event_count(sim);
    t->n = n;
    t->hash = malloc((n ? n : 1) * sizeof *t->hash);
    t->label = malloc((n ? n : 1) * sizeof *t->label);
    if (!t->hash || !t->label) return false;
    for (uint64_t i = 0; i < n; i++) {
        t->hash[i] = mp_sim_trace_at(sim, i);
        const char *l = mp_sim_trace_label(sim, i);
        uint32_t idx = trace_intern(t, l ? l : "?");
        if (idx == UINT32_MAX) return false;
        t->label[i] = idx;
    }
    return true;
}

static const char *trace_label(const trace_copy *t, uint64_t i)
{
    if (i >= t->n) return "<end of run>";
    return t->strings[t->label[i]];
}

/* ---- coverage ------------------------------------------------------------- */

typedef struct coverage {
    const char *const *prefixes;
    mp_site **sites;   /* required sites, in section order */
    uint64_t *hits;    /* aggregated over seeds */
    size_t n, cap;
    size_t cursor;     /* aggregation pass position */
    bool oom;
} coverage;

static bool site_required(const coverage *c, const mp_site *s)
{
    if (s->kind != MP_SITE_SOMETIMES && s->kind != MP_SITE_REACHABLE) return false;
    if (!s->name) return false;
    for (const char *const *p = c->prefixes; *p; p++)
        if (strncmp(s->name, *p, strlen(*p)) == 0) return true;
    return false;
}

static void cov_collect(mp_site *s, void *ud)
{
    coverage *c = ud;
    if (!site_required(c, s) || c->oom) return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        mp_site **ns = realloc(c->sites, cap * sizeof *ns);
        uint64_t *nh = ns ? realloc(c->hits, cap * sizeof *nh) : NULL;
        if (ns) c->sites = ns;
        if (!nh) {
            c->oom = true;
            return;
        }
        c->hits = nh;
        c->cap = cap;
    }
    c->sites[c->n] = s;
    c->hits[c->n] = 0;
    c->n++;
}

static void cov_add(mp_site *s, void *ud)
{
    coverage *c = ud;
    if (!site_required(c, s)) return;
    size_t i = c->cursor;
    if (i >= c->n || c->sites[i] != s) {
        /* The section order should never change between passes; if it does,
         * fall back to a search by identity rather than miscount. */
        for (i = 0; i < c->n && c->sites[i] != s; i++) {
        }
        if (i == c->n) return;
    }
    c->hits[i] += s->hits;
    c->cursor = i + 1;
}

static void cov_aggregate(coverage *c)
{
    if (!c || c->oom) return;
    c->cursor = 0;
    mp_sites_foreach(cov_add, c);
}

static int site_cmp(const mp_site *a, const mp_site *b)
{
    int r = strcmp(a->name, b->name);
    if (r) return r;
    r = strcmp(a->file ? a->file : "", b->file ? b->file : "");
    if (r) return r;
    return (a->line > b->line) - (a->line < b->line);
}

/* Sort sites (and their hit counts with them) by name, file, line. Insertion
 * sort: the list is short and this runs once per seed set. */
static void cov_sort(coverage *c)
{
    for (size_t i = 1; i < c->n; i++) {
        mp_site *s = c->sites[i];
        uint64_t h = c->hits[i];
        size_t j = i;
        while (j > 0 && site_cmp(c->sites[j - 1], s) > 0) {
            c->sites[j] = c->sites[j - 1];
            c->hits[j] = c->hits[j - 1];
            j--;
        }
        c->sites[j] = s;
        c->hits[j] = h;
    }
}

/* ---- one seed ------------------------------------------------------------- */

typedef struct seed_outcome {
    bool failed;
    char why[512];
    uint64_t trace_hash;
    uint64_t events;
    uint64_t sim_ns;
    mp_sim_faults faults;
    /* Filled when compared against a previous run. */
    bool diverged;
    uint64_t div_index;
    char div_label[128]; /* this run's label at div_index */
} seed_outcome;

static void outcome_fail(seed_outcome *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void outcome_fail(seed_outcome *o, const char *fmt, ...)
{
    if (o->failed) return; /* the first failure is the cause */
    o->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->why, sizeof o->why, fmt, ap);
    va_end(ap);
}

typedef struct quiesce_arg {
    const mp_sim_workload *w;
    mp_sim *sim;
    void *state;
} quiesce_arg;

static bool quiesce_pred(void *ud)
{
    quiesce_arg *q = ud;
    return q->w->quiescent(q->sim, q->state);
}

/* Compare this live world's trace against a saved one. */
static void trace_compare(mp_sim *sim, const trace_copy *ref, seed_outcome *o)
{
    uint64_t n = mp_sim_event_count(sim);
    uint64_t m = n < ref->n ? n : ref->n;
    uint64_t i = 0;
    while (i < m && mp_sim_trace_at(sim, i) == ref->hash[i]) i++;
    if (i == m && n == ref->n) return;
    o->diverged = true;
    o->div_index = i;
    const char *l = i < n ? mp_sim_trace_label(sim, i) : "<end of run>";
    snprintf(o->div_label, sizeof o->div_label, "%s", l ? l : "?");
}

/*
 * The life of one seed (see sim_workload.h). `save` receives the trace when
 * non-NULL (record must be on); `ref` is compared against before the world
 * is destroyed; `cov` aggregates coverage when non-NULL.
 */
static void run_seed(const mp_sim_workload *w, const mp_sim_run_opts *opts,
                     uint64_t seed, bool record, trace_copy *save,
                     const trace_copy *ref, coverage *cov, seed_outcome *o)
{
    memset(o, 0, sizeof *o);
    seed_faults(w, opts, seed, &o->faults);

    mp_sim_config cfg;
    mp_sim_config_init(&cfg);
    cfg.seed = seed;
    cfg.swarm = false; /* drawn above, identically */
    cfg.faults = o->faults;
    cfg.record_trace = record || save || ref;
    /* A seed's peers time out and its mailboxes fill on purpose: warnings
     * at every seed would bury the per-seed lines. -v shows them; --trace
     * (the workloads raise it to debug) shows everything. */
    cfg.log_level = opts->verbose ? MP_LOG_WARN : MP_LOG_ERROR;

    mp_sim *sim = mp_sim_create(&cfg);
    if (!sim) {
        outcome_fail(o, "could not create the world (another is active, or "
                        "out of memory)");
        return;
    }

    uint64_t chaos = chaos_ns_of(w, opts), heal = heal_ns_of(w, opts);
    mp_workload_params params = opts->params;
    void *state = NULL;
    int rc = w->setup_ctx ? w->setup_ctx(sim, &params, w->ctx, &state)
                          : w->setup(sim, &params, &state);
    if (rc != 0) {
        outcome_fail(o, "setup failed: %s", mp_strerror(rc));
    } else {
        mp_sim_run_until(sim, mp_sim_now(sim) + chaos);
        if (!mp_sim_failed(sim)) {
            if (w->on_heal) w->on_heal(sim, state);
            mp_sim_heal(sim);
            uint64_t deadline = mp_sim_now(sim) + heal;
            quiesce_arg q = {w, sim, state};
            bool settled = w->quiescent(sim, state) ||
                           mp_sim_run_while_not(sim, quiesce_pred, &q, deadline);
            if (!settled && !mp_sim_failed(sim)) {
                char hs[32];
                fmt_seconds(heal, hs, sizeof hs);
                outcome_fail(o, "liveness: workload did not settle within %s s "
                                "after heal", hs);
            }
        }
        if (!mp_sim_failed(sim) && !o->failed && w->check) w->check(sim, state);
    }
    /* The world's own verdict (assertions, mp_sim_fail) comes first: it
     * happened earlier than any liveness or setup conclusion drawn here. */
    if (mp_sim_failed(sim)) {
        const char *why = mp_sim_failure(sim);
        bool had = o->failed;
        char mine[sizeof o->why];
        memcpy(mine, o->why, sizeof mine);
        o->failed = false;
        outcome_fail(o, "%s", why ? why : "failed");
        if (had && strcmp(mine, o->why) != 0) {
            size_t len = strlen(o->why);
            snprintf(o->why + len, sizeof o->why - len, "; then %s", mine);
        }
    }

    o->trace_hash = mp_sim_trace_hash(sim);
    o->events = mp_sim_event_count(sim);
    o->sim_ns = mp_sim_now(sim);
    if (save && !trace_save(save, sim))
        outcome_fail(o, "out of memory copying the trace");
    if (ref) trace_compare(sim, ref, o);
    cov_aggregate(cov);

    mp_sim_destroy(sim);
    /* After the world: process teardowns may still use the workload's state
     * (a ledger that outlives kills, say). */
    if (state && w->destroy) w->destroy(state);
}

int mp_sim_run_one(const mp_sim_workload *w, const mp_sim_run_opts *opts,
                   uint64_t seed, bool record_trace, uint64_t *trace_hash,
                   uint64_t *events, char *why, size_t why_cap)
{
    if (why && why_cap) why[0] = '\0';
    if (!w || !opts || (!w->setup && !w->setup_ctx) || !w->quiescent) {
        if (why && why_cap) snprintf(why, why_cap, "invalid workload or options");
        return 1;
    }
    seed_outcome *o = malloc(sizeof *o);
    if (!o) {
        if (why && why_cap) snprintf(why, why_cap, "out of memory");
        return 1;
    }
    run_seed(w, opts, seed, record_trace, NULL, NULL, NULL, o);
    if (trace_hash) *trace_hash = o->trace_hash;
    if (events) *events = o->events;
    if (o->failed && why && why_cap) snprintf(why, why_cap, "%s", o->why);
    int rc = o->failed ? 1 : 0;
    free(o);
    return rc;
}

/* ---- reporting ------------------------------------------------------------ */

static void print_replay(FILE *f, const mp_sim_workload *w,
                         const mp_sim_run_opts *o, uint64_t seed)
{
    if (o->command)
        fprintf(f, "  replay: %s --workload %s --seed %" PRIu64, o->command,
                w->name, seed);
    else
        fprintf(f, "  replay: %s sim --workload %s --seed %" PRIu64,
                o->argv0 ? o->argv0 : "moonpool", w->name, seed);
    if (o->params.nodes) fprintf(f, " --nodes %d", o->params.nodes);
    if (o->params.workers) fprintf(f, " --workers %d", o->params.workers);
    if (!o->swarm) fprintf(f, " --no-swarm");
    if (!o->faults) fprintf(f, " --no-faults");
    if (!o->buggify) fprintf(f, " --no-buggify");
    char s[32];
    if (o->chaos_ns) {
        fmt_seconds(o->chaos_ns, s, sizeof s);
        fprintf(f, " --chaos %s", s);
    }
    if (o->heal_ns) {
        fmt_seconds(o->heal_ns, s, sizeof s);
        fprintf(f, " --heal %s", s);
    }
    if (o->check_determinism) fprintf(f, " --check-determinism");
    fprintf(f, "\n");
}

static void print_faults(FILE *f, const char *indent, uint64_t seed,
                         const mp_sim_faults *faults)
{
    char buf[512];
    mp_sim_faults_format(faults, buf, sizeof buf);
    if (indent)
        fprintf(f, "%sfaults: %s\n", indent, buf);
    else
        fprintf(f, "seed %" PRIu64 ": faults: %s\n", seed, buf);
}

static void print_outcome(FILE *f, uint64_t seed, const seed_outcome *o,
                          const char *status)
{
    fprintf(f, "seed %" PRIu64 ": %s (trace 0x%016" PRIx64 ", events %" PRIu64
               ", sim %.1f s)\n",
            seed, status, o->trace_hash, o->events,
            (double)o->sim_ns / (double)MP_NS_PER_SEC);
}

/* ---- the seed set --------------------------------------------------------- */

int mp_sim_run_seeds(const mp_sim_workload *w, const mp_sim_run_opts *opts,
                     mp_sim_run_result *result)
{
    mp_sim_run_result local;
    mp_sim_run_result *r = result ? result : &local;
    memset(r, 0, sizeof *r);
    if (!opts) return 1;
    FILE *f = out_of(opts);
    if (!w || (!w->setup && !w->setup_ctx) || !w->quiescent) {
        fprintf(f, "sim: invalid workload\n");
        return 1;
    }
    if (opts->seed_first > opts->seed_last) {
        fprintf(f, "sim: empty seed range %" PRIu64 "..%" PRIu64 "\n",
                opts->seed_first, opts->seed_last);
        return 1;
    }

    double (*wall_clock_fn)(void) = opts->wall_clock;
    double wall0 = wall_clock_fn ? wall_clock_fn() : 0.0;
    uint64_t nseeds = 0;
    bool multi = opts->seed_last > opts->seed_first;
    coverage cov = {0};
    coverage *covp = NULL;
    /* A determinism set runs each seed twice and is kept small for that:
     * it checks replay, not reach. Coverage is judged on the seed sets
     * (tests/sim/sim_tests.cmake), which must hit every required site. */
    if (multi && !opts->check_determinism && w->required_coverage &&
        w->required_coverage[0]) {
        cov.prefixes = w->required_coverage;
        mp_sites_foreach(cov_collect, &cov);
        covp = &cov;
    }

    seed_outcome *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        free(cov.sites);
        free(cov.hits);
        fprintf(f, "sim: out of memory\n");
        return 1;
    }

    for (uint64_t seed = opts->seed_first;; seed++) {
        nseeds++;
        if (opts->verbose) {
            mp_sim_faults fz;
            seed_faults(w, opts, seed, &fz);
            print_faults(f, NULL, seed, &fz);
            fflush(f);
        }
        trace_copy tc = {0};
        run_seed(w, opts, seed, opts->check_determinism,
                 opts->check_determinism ? &tc : NULL, NULL, covp, a);
        r->events += a->events;
        r->sim_ns += a->sim_ns;

        char status[sizeof a->why + 160];
        bool failed = a->failed;
        if (failed) {
            snprintf(status, sizeof status, "FAIL %s", a->why);
        } else if (opts->check_determinism) {
            run_seed(w, opts, seed, true, NULL, &tc, NULL, b);
            r->events += b->events;
            r->sim_ns += b->sim_ns;
            if (b->diverged) {
                failed = true;
                snprintf(status, sizeof status,
                         "FAIL nondeterminism: first divergence at event %" PRIu64
                         " (%s vs %s)",
                         b->div_index, trace_label(&tc, b->div_index),
                         b->div_label);
            } else if (b->failed) {
                failed = true;
                snprintf(status, sizeof status,
                         "FAIL nondeterminism: same events but the second run "
                         "failed: %s", b->why);
            }
        }
        trace_free(&tc);

        if (failed) {
            r->failed++;
            print_outcome(f, seed, a, status);
            print_faults(f, "  ", seed, &a->faults);
            print_replay(f, w, opts, seed);
        } else {
            r->passed++;
            if (opts->verbose) print_outcome(f, seed, a, "ok");
        }
        fflush(f);
        if (seed == opts->seed_last) break;
    }
    free(a);
    free(b);

    if (covp) {
        if (cov.oom) {
            fprintf(f, "coverage: out of memory, not checked\n");
        } else {
            cov_sort(&cov);
            uint64_t hit = 0;
            for (size_t i = 0; i < cov.n; i++) {
                if (cov.hits[i]) {
                    hit++;
                    continue;
                }
                r->coverage_missing++;
                fprintf(f, "coverage: never hit: %s (%s:%d)\n",
                        cov.sites[i]->name, cov.sites[i]->file,
                        cov.sites[i]->line);
            }
            fprintf(f, "coverage: %" PRIu64 "/%zu required sites hit\n", hit,
                    cov.n);
            if (hit < cov.n && (!opts->faults || !opts->buggify))
                fprintf(f, "coverage: note: faults or buggify were off, so "
                           "some rare paths may be unreachable\n");
            if (cov.n == 0) {
                /* Asking for coverage and finding no site at all means the
                 * workload's code was not linked or its names changed. */
                fprintf(f, "coverage: no site matches the required prefixes\n");
                r->coverage_missing++;
            }
        }
        free(cov.sites);
        free(cov.hits);
    }

    if (wall_clock_fn) {
        double wall = wall_clock_fn() - wall0;
        if (wall < 1e-9) wall = 1e-9;
        r->wall_s = wall;
        fprintf(f,
                "speed: %" PRIu64 " events in %.2f s wall = %.0f events/s, "
                "%.1f sim-s/wall-s, %.1f seeds/min\n",
                r->events, wall, (double)r->events / wall,
                (double)r->sim_ns / (double)MP_NS_PER_SEC / wall,
                (double)nseeds * 60.0 / wall);
    }
    fprintf(f, "%" PRIu64 " passed, %" PRIu64 " failed\n", r->passed, r->failed);
    fflush(f);
    return (r->failed == 0 && r->coverage_missing == 0) ? 0 : 1;
}
