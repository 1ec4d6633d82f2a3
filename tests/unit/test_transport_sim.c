/*
 * The peer transport in the deterministic simulator: two and five nodes
 * exchanging frames while connections reset, partitions come and go, nodes
 * are killed and restarted, and buggify fires.
 *
 * The ledger (why it proves what transport.h promises). Every frame carries
 * (sender index, seq) with seq counted per ordered pair (sender, receiver)
 * in world state that survives kills, so a restarted sender continues the
 * sequence. The transport may lose the frames of a write whose connection
 * then broke, and nothing else; frames written on one connection are a
 * contiguous run of the sender's queue, and the next connection carries only
 * later frames. So the receiver checks, per pair:
 *   - seq strictly increases, across everything (no duplicate, no reorder,
 *     not even across restarts of either side);
 *   - seq == last + 1 unless the receiver's "connection epoch" for that
 *     sender changed in between: epoch = (receiver incarnation, number of
 *     handshakes the receiver completed with that sender). A gap on one
 *     connection would be a lost frame in the middle of a live connection.
 * A refused handshake is a failure too, with one exception: an
 * acceptor refuses a HELLO of an incarnation older than one it already
 * talks to ("stale incarnation"). That HELLO comes from a dial the dead
 * process had abandoned (tie-break) or closed, whose bytes and EOF still
 * travel, slowly with a latency tail, after its successor connected:
 * refusing it is right, so such refusals are counted from the log and
 * allowed. After the fault phase the world heals, every node sends a last batch to
 * every other node, and every pair must then have received exactly up to the
 * last seq sent (100% delivery on a healed network: reconnect works). Each
 * on_peer_restart must announce a growing incarnation that the sender
 * really had, and at the end every node must know every other node's current
 * incarnation.
 *
 * Liveness: with the default heartbeat (1 s) and peer timeout (10 s) the
 * faults here (partitions up to 2 s, clogs up to 0.5 s) never close a
 * connection for silence. One swarm set runs with a 25 ms heartbeat and a
 * 120 ms peer timeout instead, so that stalls and latency tails do close
 * connections as dead (ETIMEDOUT) while frames are in flight: the ledger
 * above must hold all the same (a timeout is one more way for a connection
 * to break, with the same contract).
 *
 * Coverage: across the seeds, the transport's sometimes-assertions
 * (reconnect, flush after reconnect, tie-break, incarnation change, peer
 * timeout) must all have held at least once. One seed is run twice to check the trace hash is
 * identical (the transport adds no nondeterminism).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "moonpool/env.h"
#include "moonpool/sim.h"
#include "transport/handshake.h"
#include "transport/transport.h"

#define MS MP_SIM_NS_PER_MS
#define SEC MP_SIM_NS_PER_S
#define MAXN 6
#define FINAL_BATCH 20

/* ---- world state (survives kills) --------------------------------------- */

typedef struct pair {
    uint64_t next_send; /* sender side: next seq to hand to the transport */
    uint64_t last_recv; /* receiver side: last seq received, 0 = none */
    uint64_t epoch;     /* receiver's connection epoch at last_recv */
    uint64_t gaps;
    uint32_t inc_seen; /* receiver: last incarnation announced */
} pair;

typedef struct world {
    mp_sim *sim;
    int n;
    int pids[MAXN];
    char addr[MAXN][32];
    pair pr[MAXN][MAXN]; /* [sender][receiver] */
    uint64_t sent, received, full;
    bool final_phase;
    bool faults;
    const char *ns[MAXN]; /* NULL: "sim" */
    const char *key[MAXN]; /* cluster secret per node; NULL: none */
    uint64_t ns_logged;   /* log lines naming a namespace mismatch */
    uint64_t refused_sends; /* sends failed MP_ENAMESPACE after a refusal */
    uint64_t heartbeat_ns, peer_timeout_ns; /* 0: the transport's defaults */
    uint64_t timeout_lines; /* "no bytes from" warnings (short heartbeat) */
    uint64_t stale_lines;   /* refusals of a dead incarnation's HELLO */
} world;

typedef struct proc {
    world *w;
    int idx;
    mp_env *env;
    uint32_t inc;
    mp_transport *t;
    mp_timer_id tick;
} proc;

typedef struct slot {
    world *w;
    int idx;
} slot;

static slot slots[MAXN];

static int idx_of(world *w, const char *addr)
{
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->addr[i], addr) == 0) return i;
    return -1;
}

static void on_frame(void *ud, const char *peer, const mp_frame *f)
{
    proc *p = ud;
    world *w = p->w;
    int from = idx_of(w, peer);
    if (from < 0 || f->payload.len != 16) {
        mp_sim_fail(w->sim, "frame from unknown %s or bad payload", peer);
        return;
    }
    uint32_t sender;
    uint64_t seq;
    memcpy(&sender, f->payload.ptr, 4);
    memcpy(&seq, f->payload.ptr + 4, 8);
    if ((int)sender != from) {
        mp_sim_fail(w->sim, "frame says sender %u but came from %s", sender, peer);
        return;
    }
    mp_peer_stats st;
    if (mp_transport_peer_stats(p->t, peer, &st) != MP_OK) {
        mp_sim_fail(w->sim, "no stats for %s", peer);
        return;
    }
    uint64_t epoch = ((uint64_t)p->inc << 32) | st.connects;
    pair *pr = &w->pr[from][p->idx];
    if (seq <= pr->last_recv && pr->last_recv != 0) {
        mp_sim_fail(w->sim, "%d->%d: seq %llu after %llu (duplicate or reorder)", from, p->idx,
                    (unsigned long long)seq, (unsigned long long)pr->last_recv);
        return;
    }
    if (seq != pr->last_recv + 1) {
        if (epoch == pr->epoch) {
            mp_sim_fail(w->sim, "%d->%d: gap %llu..%llu inside one connection", from, p->idx,
                        (unsigned long long)pr->last_recv, (unsigned long long)seq);
            return;
        }
        pr->gaps++;
    }
    pr->last_recv = seq;
    pr->epoch = epoch;
    w->received++;
}

static void on_restart(void *ud, const char *peer, uint32_t old_inc, uint32_t new_inc)
{
    proc *p = ud;
    world *w = p->w;
    int from = idx_of(w, peer);
    if (from < 0) {
        mp_sim_fail(w->sim, "restart of unknown %s", peer);
        return;
    }
    pair *pr = &w->pr[from][p->idx];
    uint32_t real = mp_sim_process_incarnation(w->sim, w->pids[from]);
    /* old is what this transport instance knew (0 after our own restart). */
    if (new_inc <= old_inc || new_inc > real || new_inc < pr->inc_seen) {
        mp_sim_fail(w->sim, "%d sees %d restart %u -> %u (real %u, seen %u)", p->idx, from,
                    old_inc, new_inc, real, pr->inc_seen);
        return;
    }
    pr->inc_seen = new_inc;
}

static const mp_transport_callbacks CBS = {on_frame, on_restart, NULL, NULL};

static void send_one(proc *p, int to)
{
    world *w = p->w;
    pair *pr = &w->pr[p->idx][to];
    uint8_t pl[16];
    uint32_t s = (uint32_t)p->idx;
    uint64_t seq = pr->next_send + 1;
    memcpy(pl, &s, 4);
    memcpy(pl + 4, &seq, 8);
    memset(pl + 12, 0x5a, 4);
    mp_frame f;
    memset(&f, 0, sizeof f);
    f.kind = MP_FRAME_ONEWAY;
    f.method = mp_bytes_str("t");
    f.payload = mp_bytes_make(pl, 16);
    int rc = mp_transport_send(p->t, w->addr[to], &f);
    if (rc == MP_OK) {
        pr->next_send = seq;
        w->sent++;
    } else if (rc == MP_EQUEUEFULL) {
        w->full++;
    } else if ((rc == MP_ENAMESPACE && (w->ns[to] || w->ns[p->idx])) ||
               (rc == MP_EAUTH && w->key[to] != w->key[p->idx])) {
        w->refused_sends++; /* fails fast once the peer refused us */
    } else {
        mp_sim_fail(w->sim, "send %d->%d: %s", p->idx, to, mp_status_name(rc));
    }
}

static void on_tick(void *ud)
{
    proc *p = ud;
    world *w = p->w;
    p->tick = 0;
    if (w->final_phase) return;
    int burst = 1 + (int)mp_env_random_below(p->env, 6);
    for (int i = 0; i < burst; i++) {
        int to = (int)mp_env_random_below(p->env, (uint64_t)w->n - 1);
        if (to >= p->idx) to++;
        send_one(p, to);
    }
    p->tick = mp_env_timer_start(p->env, (1 + mp_env_random_below(p->env, 30)) * MS, on_tick, p);
}

static void count_ns_lines(void *ud, mp_log_level level, const char *msg)
{
    world *w = ud;
    if (strstr(msg, "namespace mismatch") || strstr(msg, "authentication failed") ||
        strstr(msg, "did not prove the cluster secret"))
        w->ns_logged++;
}

/* Counts the stale-incarnation refusals (see the top comment) and, in the
 * short-heartbeat runs, the timeouts' warnings, expected by the hundred,
 * instead of printing them; every other line goes to stderr as usual. */
static void watch_lines(void *ud, mp_log_level level, const char *msg)
{
    world *w = ud;
    if (strstr(msg, "refusing connection from") && strstr(msg, "stale incarnation"))
        w->stale_lines++;
    if (w->heartbeat_ns && level == MP_LOG_WARN && strstr(msg, "no bytes from")) {
        w->timeout_lines++;
        return;
    }
    fprintf(stderr, "%s\n", msg);
}

static uint64_t g_timeout_lines;

static int boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    slot *s = arg;
    /* Each simulated process has its own env: its own key. */
    memset(&env->net, 0, sizeof env->net);
    if (s->w->key[s->idx]) {
        const char *k = s->w->key[s->idx];
        env->net.has_key = 1;
        for (size_t i = 0; i < MP_ENV_KEY_LEN; i++)
            env->net.key[i] = (uint8_t)(k[i % strlen(k)] ^ (uint8_t)i);
    }
    if (s->w->ns[0] || s->w->ns[1] || s->w->key[0] != s->w->key[1]) { /* refusal tests: capture the log */
        env->log_sink = count_ns_lines;
        env->log_ud = s->w;
    } else {
        env->log_sink = watch_lines;
        env->log_ud = s->w;
    }
    proc *p = calloc(1, sizeof *p);
    if (!p) return MP_ENOMEM;
    p->w = s->w;
    p->idx = s->idx;
    p->env = env;
    p->inc = inc;
    mp_transport_config cfg;
    mp_transport_config_init(&cfg);
    cfg.cluster_namespace = s->w->ns[s->idx] ? s->w->ns[s->idx] : "sim";
    cfg.self_addr = s->w->addr[s->idx];
    cfg.incarnation = inc;
    cfg.backoff_initial_ns = 5 * MS;
    cfg.backoff_max_ns = 400 * MS;
    cfg.handshake_timeout_ns = 1 * SEC;
    cfg.max_queue_frames = 2000;
    cfg.heartbeat_ns = s->w->heartbeat_ns;
    cfg.peer_timeout_ns = s->w->peer_timeout_ns;
    int rc = mp_transport_create(env, &cfg, &CBS, p, &p->t);
    if (rc != MP_OK) {
        free(p);
        return rc;
    }
    p->tick = mp_env_timer_start(env, mp_env_random_below(env, 10 * MS), on_tick, p);
    *state = p;
    return MP_OK;
}

static void teardown(void *state)
{
    proc *p = state;
    if (p->tick) mp_env_timer_cancel(p->env, p->tick);
    mp_transport_free_now(p->t);
    free(p);
}

static const mp_sim_process_ops OPS = {boot, teardown, NULL};

/* ---- fault driver (world-level events) ---------------------------------- */

static void fault_tick(void *ud)
{
    world *w = ud;
    if (!w->faults) return;
    mp_sim *sim = w->sim;
    int a = (int)mp_sim_random_below(sim, (uint64_t)w->n);
    int b = (int)mp_sim_random_below(sim, (uint64_t)w->n - 1);
    if (b >= a) b++;
    switch (mp_sim_random_below(sim, 10)) {
    case 0:
    case 1:
    case 2:
    case 3:
        mp_sim_reset_connections(sim, w->pids[a], w->pids[b]);
        break;
    case 4:
    case 5:
        mp_sim_partition(sim, w->pids[a], w->pids[b], (50 + mp_sim_random_below(sim, 1500)) * MS);
        break;
    case 6:
        if (mp_sim_process_running(sim, w->pids[a])) {
            mp_sim_kill(sim, w->pids[a]);
            mp_sim_restart(sim, w->pids[a], (10 + mp_sim_random_below(sim, 800)) * MS);
        }
        break;
    default:
        break; /* quiet */
    }
    mp_sim_schedule(sim, (20 + mp_sim_random_below(sim, 400)) * MS, fault_tick, w);
}

static void final_sends(void *ud)
{
    world *w = ud;
    for (int i = 0; i < w->n; i++) {
        proc *p = mp_sim_process_state(w->sim, w->pids[i]);
        if (!p) {
            mp_sim_fail(w->sim, "node %d not running in the final phase", i);
            return;
        }
        for (int j = 0; j < w->n; j++)
            if (j != i)
                for (int k = 0; k < FINAL_BATCH; k++) send_one(p, j);
    }
}

/* ---- coverage of sometimes-assertions across seeds ---------------------- */

static const char *want_sites[] = {"transport.reconnect", "transport.flush_after_reconnect",
                                   "transport.tie_break", "transport.incarnation_change",
                                   "transport.peer_timeout"};
#define NWANT (sizeof want_sites / sizeof want_sites[0])
static uint64_t site_hits[NWANT];

static void visit_site(mp_site *s, void *ud)
{
    if (!s->name) return;
    for (size_t i = 0; i < NWANT; i++)
        if (strcmp(s->name, want_sites[i]) == 0) site_hits[i] += s->hits;
}

/* ---- one seed ----------------------------------------------------------- */

typedef struct outcome {
    uint64_t trace, sent, received, gaps, full;
    mp_sim_stats st;
} outcome;

static uint64_t g_heartbeat_ns, g_peer_timeout_ns; /* for the next seeds */
static const char *g_key; /* every node's secret for the next seeds; NULL: none */

static void run_seed_ex(uint64_t seed, int n, bool buggify, bool swarm, outcome *out)
{
    static world w;
    memset(&w, 0, sizeof w);
    w.heartbeat_ns = g_heartbeat_ns;
    w.peer_timeout_ns = g_peer_timeout_ns;
    for (int i = 0; i < MAXN; i++) w.key[i] = g_key;
    mp_sim_config cfg;
    mp_sim_config_init(&cfg);
    cfg.seed = seed;
    cfg.swarm = swarm; /* the simulator's own fault generator on top */
    cfg.faults.buggify = buggify;
    cfg.faults.latency_min_ns = 100 * 1000;
    cfg.faults.latency_max_ns = 3 * MS;
    cfg.faults.latency_tail_p = 0.01;
    cfg.faults.latency_tail_ns = 200 * MS;
    cfg.faults.connect_fail_p = 0.05;
    if (getenv("MP_TEST_DEBUG")) cfg.log_level = MP_LOG_DEBUG; /* to replay one seed */
    w.sim = mp_sim_create(&cfg);
    assert_non_null(w.sim);
    w.n = n;
    w.faults = true;
    for (int i = 0; i < n; i++) {
        snprintf(w.addr[i], sizeof w.addr[i], "10.0.0.%d:4500", i + 1);
        slots[i] = (slot){&w, i};
        w.pids[i] = mp_sim_spawn(w.sim, w.addr[i], &OPS, &slots[i]);
        assert_true(w.pids[i] >= 0);
        if (swarm) mp_sim_set_killable(w.sim, w.pids[i], true);
    }
    mp_sim_schedule(w.sim, 50 * MS, fault_tick, &w);
    const uint64_t fault_end = 15 * SEC;
    mp_sim_run_until(w.sim, fault_end);
    /* Heal: no more faults, every node up again before the final batch. */
    w.faults = false;
    mp_sim_heal(w.sim);
    mp_sim_run_until(w.sim, fault_end + 1 * SEC);
    for (int i = 0; i < n; i++)
        if (!mp_sim_process_running(w.sim, w.pids[i])) mp_sim_restart(w.sim, w.pids[i], 0);
    mp_sim_run_until(w.sim, fault_end + 2 * SEC);
    w.final_phase = true;
    mp_sim_schedule(w.sim, 0, final_sends, &w);
    mp_sim_run_until(w.sim, fault_end + 12 * SEC);

    /* Collect the verdict first, destroy the world, then fail: a world left
     * alive would block every later test (one world per thread). */
    char err[512] = "";
    memset(out, 0, sizeof *out);
    if (mp_sim_failed(w.sim)) snprintf(err, sizeof err, "%s", mp_sim_failure(w.sim));
    uint64_t refused = 0;
    for (int i = 0; i < n && !err[0]; i++) {
        proc *p = mp_sim_process_state(w.sim, w.pids[i]);
        if (!p) {
            snprintf(err, sizeof err, "node %d not running at the end", i);
            break;
        }
        for (int j = 0; j < n && !err[0]; j++) {
            if (i == j) continue;
            pair *pr = &w.pr[j][i];
            uint32_t real = mp_sim_process_incarnation(w.sim, w.pids[j]);
            mp_peer_stats st;
            int rc = mp_transport_peer_stats(p->t, w.addr[j], &st);
            if (pr->last_recv != pr->next_send)
                snprintf(err, sizeof err, "%d->%d received up to %llu of %llu", j, i,
                         (unsigned long long)pr->last_recv, (unsigned long long)pr->next_send);
            else if (pr->inc_seen != real)
                snprintf(err, sizeof err, "%d knows %d at incarnation %u, real %u", i, j,
                         pr->inc_seen, real);
            else if (rc != MP_OK || !st.connected || st.queue_frames || st.incarnation != real ||
                     st.decode_errors || st.oversize_frames)
                snprintf(err, sizeof err, "%d's stats of %d: rc %d connected %d queue %u inc %u "
                         "decode errors %llu refused %llu", i, j, rc, (int)st.connected,
                         st.queue_frames, st.incarnation,
                         (unsigned long long)st.decode_errors,
                         (unsigned long long)st.refused_handshakes);
            out->gaps += pr->gaps;
            refused += st.refused_handshakes;
        }
    }
    if (!err[0] && refused > w.stale_lines)
        snprintf(err, sizeof err, "%llu refused handshakes, %llu of them stale incarnations",
                 (unsigned long long)refused, (unsigned long long)w.stale_lines);
    mp_sites_foreach(visit_site, NULL);
    out->trace = mp_sim_trace_hash(w.sim);
    out->sent = w.sent;
    out->received = w.received;
    out->full = w.full;
    g_timeout_lines += w.timeout_lines;
    mp_sim_get_stats(w.sim, &out->st);
    mp_sim_destroy(w.sim);
    if (err[0]) fail_msg("seed %llu (%d nodes, buggify %d): %s", (unsigned long long)seed, n,
                         (int)buggify, err);
}

static void run_seed(uint64_t seed, int n, bool buggify, outcome *out)
{
    run_seed_ex(seed, n, buggify, false, out);
}

static void run_seeds(int n, uint64_t first, int count)
{
    const char *env_seeds = getenv("MP_TRANSPORT_SEEDS");
    if (env_seeds) count = atoi(env_seeds);
    uint64_t sent = 0, recv = 0, gaps = 0, resets = 0, kills = 0;
    for (int i = 0; i < count; i++) {
        outcome o;
        run_seed(first + (uint64_t)i, n, i % 2 == 1, &o);
        sent += o.sent;
        recv += o.received;
        gaps += o.gaps;
        resets += o.st.resets;
        kills += o.st.kills;
    }
    printf("  %d nodes, %d seeds: %llu frames sent, %llu received, %llu gaps across breaks, "
           "%llu resets, %llu kills\n",
           n, count, (unsigned long long)sent, (unsigned long long)recv,
           (unsigned long long)gaps, (unsigned long long)resets, (unsigned long long)kills);
    assert_true(recv > 0 && recv <= sent);
}

static void test_two_nodes(void **state) { run_seeds(2, 1000, 30); }

static void test_five_nodes(void **state) { run_seeds(5, 2000, 20); }

/* The simulator's swarm fault generator (clogs, its own resets, partitions
 * and kills) on top of the driver's faults. */
static void test_swarm(void **state)
{
    const char *env_seeds = getenv("MP_TRANSPORT_SEEDS");
    int count = env_seeds ? atoi(env_seeds) : 10;
    uint64_t clogs = 0, parts = 0, kills = 0, recv = 0;
    for (int i = 0; i < count; i++) {
        outcome o;
        run_seed_ex(3000 + (uint64_t)i, 4, true, true, &o);
        clogs += o.st.clogs;
        parts += o.st.partitions;
        kills += o.st.kills;
        recv += o.received;
    }
    printf("  swarm, 4 nodes, %d seeds: %llu received, %llu clogs, %llu partitions, %llu kills\n",
           count, (unsigned long long)recv, (unsigned long long)clogs, (unsigned long long)parts,
           (unsigned long long)kills);
}

/* The swarm again with a short heartbeat: connections now also die of
 * silence (stalls, 200 ms latency tails) with frames in flight. */
static void test_swarm_short_heartbeat(void **state)
{
    const char *env_seeds = getenv("MP_TRANSPORT_SEEDS");
    int count = env_seeds ? atoi(env_seeds) : 10;
    uint64_t recv = 0, gaps = 0;
    const char *first_env = getenv("MP_TRANSPORT_FIRST_SEED"); /* replay one seed */
    uint64_t first = first_env ? strtoull(first_env, NULL, 10) : 4000;
    g_heartbeat_ns = 25 * MS;
    g_peer_timeout_ns = 120 * MS;
    for (int i = 0; i < count; i++) {
        outcome o;
        run_seed_ex(first + (uint64_t)i, 4, (first + (uint64_t)i) % 2 == 1, true, &o);
        recv += o.received;
        gaps += o.gaps;
    }
    g_heartbeat_ns = g_peer_timeout_ns = 0;
    printf("  swarm, short heartbeat, %d seeds: %llu received, %llu gaps across breaks, "
           "%llu connections closed for silence\n", count, (unsigned long long)recv,
           (unsigned long long)gaps, (unsigned long long)g_timeout_lines);
    assert_true(g_timeout_lines > 0); /* the path really ran, with its reason logged */
}

/* Every node holds the same secret: every handshake proves it both ways,
 * and the whole ledger holds under the same faults (resets, partitions,
 * kills, buggify) as without one. */
static void test_keyed_cluster(void **state)
{
    g_key = "sim-secret";
    run_seeds(3, 5000, 10);
    g_key = NULL;
}

static void test_deterministic(void **state)
{
    outcome a, b;
    run_seed(77, 5, true, &a);
    run_seed(77, 5, true, &b);
    assert_int_equal(a.trace, b.trace);
    assert_int_equal(a.sent, b.sent);
    assert_int_equal(a.received, b.received);
}

static void test_coverage(void **state)
{
    for (size_t i = 0; i < NWANT; i++) {
        printf("  %s: %llu\n", want_sites[i], (unsigned long long)site_hits[i]);
        if (site_hits[i] == 0) fail_msg("sometimes-assertion %s never held", want_sites[i]);
    }
}

/* ---- a node of another namespace ---------------------------------------- */

static void test_foreign_namespace(void **state)
{
    static world w;
    memset(&w, 0, sizeof w);
    mp_sim_config cfg;
    mp_sim_config_init(&cfg);
    cfg.seed = 5;
    w.sim = mp_sim_create(&cfg);
    assert_non_null(w.sim);
    w.n = 2;
    w.ns[1] = "other";
    for (int i = 0; i < 2; i++) {
        snprintf(w.addr[i], sizeof w.addr[i], "10.0.1.%d:4500", i + 1);
        slots[i] = (slot){&w, i};
        w.pids[i] = mp_sim_spawn(w.sim, w.addr[i], &OPS, &slots[i]);
    }
    w.final_phase = false;
    mp_sim_run_until(w.sim, 2 * SEC);
    w.final_phase = true;
    assert_false(mp_sim_failed(w.sim));
    assert_int_equal(w.received, 0);
    assert_true(w.ns_logged >= 4); /* each side says why, as dialer and acceptor */
    assert_true(w.refused_sends > 0); /* later sends fail at once, not queue */
    for (int i = 0; i < 2; i++) {
        proc *p = mp_sim_process_state(w.sim, w.pids[i]);
        mp_peer_stats tot;
        mp_transport_totals(p->t, &tot);
        assert_true(tot.refused_handshakes >= 2); /* as dialer and as acceptor */
        assert_int_equal(tot.connects, 0);
        mp_peer_stats st;
        assert_int_equal(mp_transport_peer_stats(p->t, w.addr[1 - i], &st), MP_OK);
        assert_true(st.refused_handshakes >= 1);
        assert_true(st.queue_frames > 0); /* nothing delivered, nothing lost */
    }
    mp_sim_destroy(w.sim);
}

/* Node 1 holds another secret (then none): nothing crosses, both sides
 * say why, and sends fail at once with MP_EAUTH instead of queueing. */
static void test_foreign_secret(void **state)
{
    for (int round = 0; round < 2; round++) {
        static world w;
        memset(&w, 0, sizeof w);
        mp_sim_config cfg;
        mp_sim_config_init(&cfg);
        cfg.seed = 6 + (uint64_t)round;
        w.sim = mp_sim_create(&cfg);
        assert_non_null(w.sim);
        w.n = 2;
        w.key[0] = "ours";
        w.key[1] = round == 0 ? "theirs" : NULL;
        for (int i = 0; i < 2; i++) {
            snprintf(w.addr[i], sizeof w.addr[i], "10.0.2.%d:4500", i + 1);
            slots[i] = (slot){&w, i};
            w.pids[i] = mp_sim_spawn(w.sim, w.addr[i], &OPS, &slots[i]);
        }
        mp_sim_run_until(w.sim, 2 * SEC);
        w.final_phase = true;
        assert_false(mp_sim_failed(w.sim));
        assert_int_equal(w.received, 0);
        assert_true(w.ns_logged >= 2);
        assert_true(w.refused_sends > 0);
        uint64_t failures = 0;
        for (int i = 0; i < 2; i++) {
            proc *p = mp_sim_process_state(w.sim, w.pids[i]);
            mp_peer_stats tot;
            mp_transport_totals(p->t, &tot);
            assert_int_equal(tot.connects, 0);
            failures += tot.auth_failures;
        }
        assert_true(failures >= 2);
        mp_sim_destroy(w.sim);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_nodes),
        cmocka_unit_test(test_five_nodes),
        cmocka_unit_test(test_swarm),
        cmocka_unit_test(test_swarm_short_heartbeat),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_coverage),
        cmocka_unit_test(test_foreign_namespace),
        cmocka_unit_test(test_keyed_cluster),
        cmocka_unit_test(test_foreign_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
