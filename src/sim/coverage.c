/*
 * The coverage registry: every named sometimes-site linked into the program
 * (MP_SOMETIMES / MP_REACHABLE, found through the "mp_sites" section, so a
 * renamed or new site cannot drift away from this check) must be either
 *
 *   - required by at least one registered workload (its required_coverage
 *     prefixes; the workload's ctest seed set then fails when the site is
 *     never hit), or
 *   - listed below as unreachable in simulation, with the reason.
 *
 * mp_sim_coverage_audit reports every site that is neither, every entry of
 * the list that names no site (stale), and every entry that a workload also
 * requires (contradiction). tests/sim/coverage_audit.c runs it in ctest
 * (sim.coverage.registry).
 *
 * An entry here is a debt, not a licence: it says which situation no
 * workload produces today and why. Remove it when a workload reaches the
 * site (and require the site there).
 */
#include <stdio.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "moonpool/sim_workload.h"

typedef struct unreachable_site {
    const char *name;
    const char *why;
} unreachable_site;

/* Sorted by name. */
static const unreachable_site unreachable[] = {
    {"actor.call_cycle",
     "needs an actor whose turn calls an actor that calls it back (A->B->A); "
     "no workload actor type calls another actor (bank transfer legs are "
     "one-way deposits); tests/unit/test_node_calls.c covers it"},
    {"actor.rid_origin_reused",
     "needs more than MP_RID_ORIGINS_MAX (1024) calling nodes (origins) "
     "at one host; simulated clusters have a dozen"},
    {"actor.lookup_refused",
     "needs a directory owner that refuses our handshake (other namespace "
     "or protocol version); simulated clusters are homogeneous and no fault "
     "misconfigures a node"},
    {"actor.persist_conflict",
     "needs a save to lose against another writer's commit: two live "
     "activations of one id (single activation, which bank-durable checks, "
     "forbids it) or a writer outside the runtime (no workload has one)"},
    {"actor.persist_refused_no_lease",
     "needs a turn that waits (a timer, a call) between its start and its "
     "persist while the lease lapses; the members workload's writes persist "
     "in the turn's first step, right after the drain's lease check; "
     "no unit test reaches it either (a debt)"},
    {"bank_durable.stale_leg_in_storage",
     "a stored record still owing a leg that the receiver already holds "
     "at the final check; never seen in bank-durable 1..500 (coverage_audit "
     "--probe): the wake phase settles every owed leg before the check"},
    {"storage.sim.conflict",
     "the storage side of actor.persist_conflict (same reason)"},
    {"storage.sim.kill_applied_unsynced",
     "needs the database process killed with writes queued; bank-durable "
     "kills member nodes only, never its shared database process"},
    {"storage.sim.kill_lost_unsynced",
     "as storage.sim.kill_applied_unsynced"},
    {"transport.auth_failed",
     "needs a process without the cluster secret; simulated clusters share "
     "one key or none; test_transport_auth covers it"},
    {"transport.connection_refused",
     "needs more incoming connections than max_connections(_per_ip), all "
     "past their handshake; test_transport_auth covers it"},
    {"transport.handshake_evicted",
     "needs more than max_handshakes (1024) sockets in handshake at once; no "
     "simulated process opens idle sockets; test_transport_uv covers it"},
    {"transport.output_limit",
     "needs a peer that stops reading until 64 MiB queue; simulated streams "
     "always read; test_transport_uv covers it"},
    {"transport.slow_frame",
     "needs a peer that writes a frame byte by byte; the runtime writes whole "
     "frames; test_transport_uv covers it"},
};

static const size_t n_unreachable = sizeof unreachable / sizeof unreachable[0];

const char *mp_sim_coverage_unreachable_reason(const char *name)
{
    if (!name) return NULL;
    for (size_t i = 0; i < n_unreachable; i++)
        if (strcmp(unreachable[i].name, name) == 0) return unreachable[i].why;
    return NULL;
}

static bool is_coverage_site(const mp_site *s)
{
    return s->name &&
           (s->kind == MP_SITE_SOMETIMES || s->kind == MP_SITE_REACHABLE);
}

static bool prefix_match(const char *name, const char *prefix)
{
    return strncmp(name, prefix, strlen(prefix)) == 0;
}

/* The first registered workload requiring `name`, or NULL. */
const mp_sim_workload *mp_sim_coverage_required_by(const char *name)
{
    for (int i = 0;; i++) {
        const mp_sim_workload *w = mp_sim_workload_at(i);
        if (!w) return NULL;
        if (!w->required_coverage) continue;
        for (const char *const *p = w->required_coverage; *p; p++)
            if (prefix_match(name, *p)) return w;
    }
}

typedef struct audit {
    FILE *out;
    int problems;
    bool listed_seen[sizeof unreachable / sizeof unreachable[0]];
    int sites;
    int required;
    int listed;
} audit;

static void audit_site(mp_site *s, void *ud)
{
    audit *a = ud;
    if (!is_coverage_site(s)) return;
    a->sites++;
    const mp_sim_workload *w = mp_sim_coverage_required_by(s->name);
    const char *why = NULL;
    for (size_t i = 0; i < n_unreachable; i++)
        if (strcmp(unreachable[i].name, s->name) == 0) {
            a->listed_seen[i] = true;
            why = unreachable[i].why;
        }
    if (w && why) {
        a->problems++;
        fprintf(a->out,
                "coverage-audit: %s (%s:%d) is required by workload %s but "
                "listed as unreachable in src/sim/coverage.c\n",
                s->name, s->file, s->line, w->name);
    } else if (w) {
        a->required++;
    } else if (why) {
        a->listed++;
    } else {
        a->problems++;
        fprintf(a->out,
                "coverage-audit: %s (%s:%d) is neither required by a workload "
                "(required_coverage) nor listed as unreachable in "
                "src/sim/coverage.c\n",
                s->name, s->file, s->line);
    }
}

int mp_sim_coverage_audit(FILE *out)
{
    audit a;
    memset(&a, 0, sizeof a);
    a.out = out ? out : stdout;
    mp_sites_foreach(audit_site, &a);
    for (size_t i = 0; i < n_unreachable; i++) {
        if (a.listed_seen[i]) continue;
        a.problems++;
        fprintf(a.out,
                "coverage-audit: src/sim/coverage.c lists %s, which names no "
                "sometimes-site (renamed or removed?)\n",
                unreachable[i].name);
    }
    fprintf(a.out,
            "coverage-audit: %d sometimes-sites: %d required by a workload, "
            "%d listed unreachable, %d problems\n",
            a.sites, a.required, a.listed, a.problems);
    return a.problems;
}

