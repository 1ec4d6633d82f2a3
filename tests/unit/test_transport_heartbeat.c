/*
 * Transport liveness in the deterministic simulator: keep-alives, the peer
 * timeout that closes half-open connections, and the outage log dedupe.
 *
 * Why the simulator: a half-open connection is one whose bytes stop without
 * a FIN or RST. mp_sim_partition (and mp_sim_clog) hold bytes in flight
 * without resetting anything, which is exactly that, and simulated time
 * lets a test idle for minutes and still measure when a close happens to
 * the nanosecond, with no timed assertion on a real clock.
 *
 * Timing bounds come from the contract in transport.h: the tick runs every
 * heartbeat/2, so a connection whose last byte arrived at r is closed in
 * [r + peer_timeout, r + peer_timeout + heartbeat/2]. The tests keep both
 * directions busy (a frame every millisecond, fixed 1 ms latency) up to the
 * moment they stall the path, so r is within a few ms before it.
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

#include "moonpool/env.h"
#include "moonpool/node.h"
#include "moonpool/sim.h"
#include "transport/transport.h"

#define MS MP_SIM_NS_PER_MS
#define SEC MP_SIM_NS_PER_S

/* ---- world -------------------------------------------------------------- */

typedef struct side {
    uint64_t sent;     /* application frames handed to the transport */
    uint64_t frames;   /* application frames delivered to on_frame */
    uint64_t bad;      /* anything on_frame got that we did not send */
    int downs;
    int first_down_status;
    uint64_t first_down_at;
    int last_down_status;
    /* log lines about the other node (see count_lines) */
    int connect_failed_info, connect_failed_debug, reconnected;
    char reconnected_line[256];
} side;

typedef struct world {
    mp_sim *sim;
    char addr[2][32];
    int pids[2];
    side sd[2];
    uint64_t heartbeat_ns, peer_timeout_ns; /* 0: transport default */
    bool chatter;      /* both send a frame every ms while set */
    bool one_way;      /* only 0 -> 1 chatter, every 100 ms */
} world;

typedef struct proc {
    world *w;
    int idx;
    mp_env *env;
    mp_transport *t;
} proc;

typedef struct slot {
    world *w;
    int idx;
} slot;

static slot slots[2];

static void on_frame(void *ud, const char *peer, const mp_frame *f)
{
    proc *p = ud;
    side *s = &p->w->sd[p->idx];
    /* Only our own frames may come up: ONEWAY "app" with 8 bytes. A
     * keep-alive reaching this layer would land in `bad`. */
    if (f->kind != MP_FRAME_ONEWAY || !mp_bytes_eq(f->method, mp_bytes_str("app")) ||
        f->payload.len != 8 || strcmp(peer, p->w->addr[1 - p->idx]) != 0) {
        s->bad++;
        return;
    }
    s->frames++;
}

static void on_down(void *ud, const char *peer, int status)
{
    proc *p = ud;
    side *s = &p->w->sd[p->idx];
    if (s->downs++ == 0) {
        s->first_down_status = status;
        s->first_down_at = mp_sim_now(p->w->sim);
    }
    s->last_down_status = status;
}

static const mp_transport_callbacks CBS = {on_frame, NULL, on_down, NULL};

/* Counts the lines that name the other node's outage (problem 2). */
static void count_lines(void *ud, mp_log_level level, const char *msg)
{
    proc *p = ud;
    side *s = &p->w->sd[p->idx];
    if (getenv("MP_TEST_DEBUG")) fprintf(stderr, "%s\n", msg);
    char needle[96];
    snprintf(needle, sizeof needle, "connect to %s failed", p->w->addr[1 - p->idx]);
    if (strstr(msg, needle)) {
        if (level == MP_LOG_INFO) s->connect_failed_info++;
        if (level == MP_LOG_DEBUG) s->connect_failed_debug++;
    }
    snprintf(needle, sizeof needle, "reconnected to %s after", p->w->addr[1 - p->idx]);
    if (strstr(msg, needle) && level == MP_LOG_INFO) {
        s->reconnected++;
        snprintf(s->reconnected_line, sizeof s->reconnected_line, "%s", msg);
    }
}

static int boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    slot *sl = arg;
    proc *p = calloc(1, sizeof *p);
    if (!p) return MP_ENOMEM;
    p->w = sl->w;
    p->idx = sl->idx;
    p->env = env;
    env->log_sink = count_lines;
    env->log_ud = p;
    mp_transport_config cfg;
    mp_transport_config_init(&cfg);
    cfg.cluster_namespace = "hb";
    cfg.self_addr = sl->w->addr[sl->idx];
    cfg.incarnation = inc;
    if (sl->w->heartbeat_ns) cfg.heartbeat_ns = sl->w->heartbeat_ns;
    if (sl->w->peer_timeout_ns) cfg.peer_timeout_ns = sl->w->peer_timeout_ns;
    int rc = mp_transport_create(env, &cfg, &CBS, p, &p->t);
    if (rc != MP_OK) {
        free(p);
        return rc;
    }
    *state = p;
    return MP_OK;
}

static void teardown(void *state)
{
    proc *p = state;
    mp_transport_free_now(p->t);
    free(p);
}

static const mp_sim_process_ops OPS = {boot, teardown, NULL};

static proc *proc_of(world *w, int i) { return mp_sim_process_state(w->sim, w->pids[i]); }

static void send_app(world *w, int from)
{
    proc *p = proc_of(w, from);
    if (!p) return;
    uint8_t pl[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    mp_frame f;
    memset(&f, 0, sizeof f);
    f.kind = MP_FRAME_ONEWAY;
    f.method = mp_bytes_str("app");
    f.payload = mp_bytes_make(pl, sizeof pl);
    int rc = mp_transport_send(p->t, w->addr[1 - from], &f);
    if (rc != MP_OK) mp_sim_fail(w->sim, "send %d: %s", from, mp_status_name(rc));
    else w->sd[from].sent++;
}

static void chatter_tick(void *ud)
{
    world *w = ud;
    if (!w->chatter) return;
    send_app(w, 0);
    if (!w->one_way) send_app(w, 1);
    mp_sim_schedule(w->sim, w->one_way ? 100 * MS : 1 * MS, chatter_tick, w);
}

/* Latency fixed at 1 ms unless `jitter`: then 0.1..3 ms with a 1% tail up
 * to 200 ms (the transport sim test's network). No fault generator. */
static void world_init(world *w, uint64_t seed, bool jitter, int base)
{
    memset(w, 0, sizeof *w);
    mp_sim_config cfg;
    mp_sim_config_init(&cfg);
    cfg.seed = seed;
    cfg.log_level = MP_LOG_DEBUG;
    memset(&cfg.faults, 0, sizeof cfg.faults);
    cfg.faults.latency_min_ns = jitter ? 100 * 1000 : 1 * MS;
    cfg.faults.latency_max_ns = jitter ? 3 * MS : 1 * MS;
    if (jitter) {
        cfg.faults.latency_tail_p = 0.01;
        cfg.faults.latency_tail_ns = 200 * MS;
    }
    w->sim = mp_sim_create(&cfg);
    assert_non_null(w->sim);
    for (int i = 0; i < 2; i++)
        snprintf(w->addr[i], sizeof w->addr[i], "10.0.%d.%d:4500", base, i + 1);
}

static void spawn(world *w, int i)
{
    slots[i] = (slot){w, i};
    w->pids[i] = mp_sim_spawn(w->sim, w->addr[i], &OPS, &slots[i]);
    assert_true(w->pids[i] >= 0);
}

static mp_peer_stats stats_of(world *w, int i)
{
    mp_peer_stats st;
    memset(&st, 0, sizeof st);
    proc *p = proc_of(w, i);
    assert_non_null(p);
    assert_int_equal(mp_transport_peer_stats(p->t, w->addr[1 - i], &st), MP_OK);
    return st;
}

/* Connect both ways with traffic, then stop at `stall_at`. */
static void connect_and_chatter(world *w, uint64_t stall_at)
{
    spawn(w, 0);
    spawn(w, 1);
    mp_sim_run_until(w->sim, 10 * MS);
    w->chatter = true;
    mp_sim_schedule(w->sim, 0, chatter_tick, w);
    mp_sim_run_until(w->sim, stall_at);
    w->chatter = false;
    for (int i = 0; i < 2; i++) {
        mp_peer_stats st = stats_of(w, i);
        assert_true(st.connected);
        assert_int_equal(st.connects, 1);
    }
}

/* Both sides report the peer down once, between stall + peer_timeout (less
 * the few ms of traffic still arriving before the stall) and one tick after. */
static void check_closed_in_window(world *w, uint64_t stall, uint64_t timeout, uint64_t tick)
{
    int timeouts = 0;
    for (int i = 0; i < 2; i++) {
        side *s = &w->sd[i];
        mp_peer_stats st = stats_of(w, i);
        assert_int_equal(s->downs, 1);
        assert_true(s->first_down_at >= stall + timeout - 5 * MS);
        assert_true(s->first_down_at <= stall + timeout + tick + 5 * MS);
        /* Either its own timeout, or the EOF of the other side's. */
        assert_true(s->first_down_status == MP_ETIMEDOUT || s->first_down_status == MP_EOF);
        if (s->first_down_status == MP_ETIMEDOUT) {
            timeouts++;
            assert_int_equal(st.peer_timeouts, 1);
            assert_true(s->first_down_at <= stall + timeout + tick);
        }
        assert_false(st.connected);
        assert_int_equal(s->bad, 0);
        /* Nothing was written during the stall but keep-alives. */
        assert_true(st.keepalives_out >= 1);
        assert_int_equal(st.frames_in, s->frames); /* keep-alives are not frames */
    }
    assert_true(timeouts >= 1);
    assert_false(mp_sim_failed(w->sim));
}

/* ---- tests -------------------------------------------------------------- */

/* A partition that holds bytes without resetting anything, defaults (1 s /
 * 10 s): closed after 10 s, reported down, then calls fail on the redial;
 * after the heal the queued frame is delivered. */
static void test_partition_closes_after_peer_timeout(void **state)
{
    static world w;
    world_init(&w, 11, false, 1);
    const uint64_t stall = 3 * SEC;
    connect_and_chatter(&w, stall);
    mp_sim_partition(w.sim, w.pids[0], w.pids[1], 0);
    mp_sim_run_until(w.sim, stall + 10 * SEC - 10 * MS);
    assert_int_equal(w.sd[0].downs + w.sd[1].downs, 0); /* not a tick early */
    mp_sim_run_until(w.sim, stall + 12 * SEC);
    check_closed_in_window(&w, stall, 10 * SEC, 500 * MS);
    proc *a = proc_of(&w, 0);
    /* A broken open connection alone is not "unreachable"... */
    assert_false(mp_transport_peer_unreachable(a->t, w.addr[1]));
    /* ...a failed redial is: a frame queued now makes one. */
    send_app(&w, 0);
    mp_sim_run_until(w.sim, stall + 19 * SEC);
    assert_true(mp_transport_peer_unreachable(a->t, w.addr[1]));
    assert_non_null(mp_transport_peer_error(a->t, w.addr[1]));
    assert_true(w.sd[0].downs >= 2);
    /* The first failed dial of the outage at info, the others at debug. */
    assert_int_equal(w.sd[0].connect_failed_info + w.sd[0].connect_failed_debug >= 2, 1);
    uint64_t before = w.sd[1].frames;
    mp_sim_heal(w.sim);
    mp_sim_run_until(w.sim, stall + 25 * SEC);
    assert_int_equal(w.sd[1].frames, before + 1);
    assert_true(stats_of(&w, 0).connected);
    assert_int_equal(w.sd[0].reconnected, 1);
    assert_false(mp_sim_failed(w.sim));
    mp_sim_destroy(w.sim);
}

/* A clog of one node (everything it sends and receives stalls) with a short
 * heartbeat: the same window, scaled. */
static void test_clog_closes_after_peer_timeout(void **state)
{
    static world w;
    world_init(&w, 12, false, 2);
    w.heartbeat_ns = 100 * MS;
    w.peer_timeout_ns = 450 * MS;
    const uint64_t stall = 2 * SEC;
    connect_and_chatter(&w, stall);
    mp_sim_clog(w.sim, w.pids[1], 0);
    mp_sim_run_until(w.sim, stall + 3 * SEC);
    check_closed_in_window(&w, stall, 450 * MS, 50 * MS);
    mp_sim_destroy(w.sim);
}

/* An idle but healthy connection over five simulated minutes, with latency
 * jitter and tails: never closed, keep-alives flowing both ways and never
 * reaching on_frame. Then one-way traffic: the sending side's writes stand
 * for keep-alives, the silent side keeps sending its own. */
static void test_idle_connection_stays_open(void **state)
{
    static world w;
    world_init(&w, 13, true, 3);
    spawn(&w, 0);
    spawn(&w, 1);
    mp_sim_run_until(w.sim, 10 * MS);
    send_app(&w, 0);
    send_app(&w, 1);
    const uint64_t idle = 300 * SEC;
    mp_sim_run_until(w.sim, 1 * SEC);
    mp_peer_stats s0[2];
    for (int i = 0; i < 2; i++) s0[i] = stats_of(&w, i);
    mp_sim_run_until(w.sim, 1 * SEC + idle);
    for (int i = 0; i < 2; i++) {
        mp_peer_stats st = stats_of(&w, i);
        mp_peer_stats other = stats_of(&w, 1 - i);
        assert_true(st.connected);
        assert_int_equal(st.connects, 1);
        assert_int_equal(st.peer_timeouts, 0);
        assert_int_equal(w.sd[i].downs, 0);
        assert_int_equal(w.sd[i].frames, 1);
        assert_int_equal(w.sd[i].bad, 0);
        assert_int_equal(st.frames_in, 1);
        assert_int_equal(st.queue_frames, 0);
        /* One keep-alive every heartbeat/2 .. heartbeat (1 s default). */
        uint64_t sent = st.keepalives_out - s0[i].keepalives_out;
        assert_true(sent >= idle / SEC - 1 && sent <= 2 * (idle / SEC) + 1);
        /* Every one written arrived (at most one still in flight). */
        assert_true(other.keepalives_in <= st.keepalives_out);
        assert_true(other.keepalives_in + 1 >= st.keepalives_out);
    }
    /* One way: 0 writes every 100 ms, 1 writes nothing of its own. */
    mp_peer_stats k0 = stats_of(&w, 0), k1 = stats_of(&w, 1);
    uint64_t t1 = mp_sim_now(w.sim);
    w.chatter = true;
    w.one_way = true;
    mp_sim_schedule(w.sim, 0, chatter_tick, &w);
    mp_sim_run_until(w.sim, t1 + 60 * SEC);
    w.chatter = false;
    mp_peer_stats e0 = stats_of(&w, 0), e1 = stats_of(&w, 1);
    assert_true(e0.keepalives_out - k0.keepalives_out <= 1); /* only before the first write */
    assert_true(e1.keepalives_out - k1.keepalives_out >= 59);
    assert_true(e0.connected && e1.connected);
    assert_int_equal(e0.connects, 1);
    assert_int_equal(e1.connects, 1);
    assert_int_equal(w.sd[0].downs + w.sd[1].downs, 0);
    assert_true(w.sd[1].frames >= 590);
    assert_int_equal(w.sd[0].bad + w.sd[1].bad, 0);
    assert_false(mp_sim_failed(w.sim));
    mp_sim_destroy(w.sim);
}

/* peer_timeout disabled: a stalled connection stays open (keep-alives still
 * go out), and carries frames again once the partition heals. */
static void test_peer_timeout_disabled(void **state)
{
    static world w;
    world_init(&w, 14, false, 4);
    w.peer_timeout_ns = MP_TRANSPORT_NO_PEER_TIMEOUT;
    const uint64_t stall = 1 * SEC;
    connect_and_chatter(&w, stall);
    mp_peer_stats before = stats_of(&w, 0);
    mp_sim_partition(w.sim, w.pids[0], w.pids[1], 0);
    mp_sim_run_until(w.sim, stall + 60 * SEC);
    for (int i = 0; i < 2; i++) {
        mp_peer_stats st = stats_of(&w, i);
        assert_true(st.connected);
        assert_int_equal(w.sd[i].downs, 0);
        assert_int_equal(st.peer_timeouts, 0);
    }
    assert_true(stats_of(&w, 0).keepalives_out - before.keepalives_out >= 59);
    mp_sim_heal(w.sim);
    send_app(&w, 0);
    mp_sim_run_until(w.sim, stall + 61 * SEC);
    /* Everything, also what the partition held, on the one connection. */
    assert_int_equal(w.sd[1].frames, w.sd[0].sent);
    assert_int_equal(w.sd[0].frames, w.sd[1].sent);
    assert_int_equal(stats_of(&w, 1).connects, 1);
    assert_false(mp_sim_failed(w.sim));
    mp_sim_destroy(w.sim);
}

/* Problem 2: a peer that is down is logged once per outage at info, every
 * further failed attempt at debug, and the end of the outage once at info
 * with its count. Two outages: the second is reported afresh. */
static void test_outage_logged_once(void **state)
{
    static world w;
    world_init(&w, 15, false, 5);
    spawn(&w, 0); /* node 1 not there yet: connects are refused */
    mp_sim_run_until(w.sim, 10 * MS);
    send_app(&w, 0);
    mp_sim_run_until(w.sim, 20 * SEC);
    side *s = &w.sd[0];
    assert_int_equal(s->connect_failed_info, 1);
    assert_true(s->connect_failed_debug >= 5);
    assert_int_equal(s->reconnected, 0);
    assert_int_equal(s->last_down_status, MP_ECONNREFUSED);
    int attempts = s->connect_failed_info + s->connect_failed_debug;
    spawn(&w, 1);
    mp_sim_run_until(w.sim, 23 * SEC);
    assert_int_equal(w.sd[1].frames, 1);
    assert_int_equal(s->reconnected, 1);
    char want[64];
    snprintf(want, sizeof want, "after %d failed attempts (", attempts);
    assert_non_null(strstr(s->reconnected_line, want));
    assert_int_equal(s->connect_failed_info, 1);
    /* Second outage: node 1 killed, frames queued for it, back 10 s later. */
    mp_sim_kill(w.sim, w.pids[1]);
    mp_sim_restart(w.sim, w.pids[1], 10 * SEC);
    mp_sim_run_until(w.sim, 24 * SEC);
    send_app(&w, 0);
    mp_sim_run_until(w.sim, 40 * SEC);
    assert_int_equal(s->connect_failed_info, 2);
    assert_int_equal(s->reconnected, 2);
    assert_true(stats_of(&w, 0).connected);
    assert_false(mp_sim_failed(w.sim));
    mp_sim_destroy(w.sim);
}

/* ---- through the node: its config reaches the transport ----------------- */

typedef struct node_world {
    mp_sim *sim;
    const char *members[2];
    int pids[2];
    uint64_t timeout_line_at[2]; /* first "no bytes from" line, sim time */
} node_world;

typedef struct node_slot {
    node_world *w;
    int idx;
} node_slot;

static node_slot node_slots[2];

static void node_log(void *ud, mp_log_level level, const char *msg)
{
    node_slot *ns = ud;
    if (getenv("MP_TEST_DEBUG")) fprintf(stderr, "%s\n", msg);
    char needle[96];
    snprintf(needle, sizeof needle, "no bytes from %s for", ns->w->members[1 - ns->idx]);
    if (level == MP_LOG_WARN && strstr(msg, needle) && !ns->w->timeout_line_at[ns->idx])
        ns->w->timeout_line_at[ns->idx] = mp_sim_now(ns->w->sim);
}

static int node_boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    node_slot *ns = arg;
    env->log_sink = node_log;
    env->log_ud = ns;
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    cfg.cluster_namespace = "hbn";
    cfg.self_addr = ns->w->members[ns->idx];
    cfg.members = ns->w->members;
    cfg.member_count = 2;
    cfg.incarnation = inc;
    cfg.heartbeat_ns = 100 * MS;
    cfg.peer_timeout_ns = 450 * MS;
    mp_node *node;
    int rc = mp_node_create(env, &cfg, &node);
    if (rc < 0) return rc;
    if ((rc = mp_node_start(node)) < 0) {
        mp_node_free_now(node);
        return rc;
    }
    *state = node;
    return MP_OK;
}

static void node_teardown(void *state) { mp_node_free_now(state); }

static const mp_sim_process_ops NODE_OPS = {node_boot, node_teardown, NULL};

/* Two members exchange load reports every 100 ms; a partition silences
 * them and the configured 450 ms (not the default 10 s) closes the
 * connection. Bad liveness settings are refused by mp_node_create. */
static void test_node_config_reaches_transport(void **state)
{
    static node_world w;
    memset(&w, 0, sizeof w);
    w.members[0] = "10.0.6.1:4500";
    w.members[1] = "10.0.6.2:4500";
    mp_sim_config cfg;
    mp_sim_config_init(&cfg);
    cfg.seed = 16;
    cfg.log_level = MP_LOG_INFO;
    memset(&cfg.faults, 0, sizeof cfg.faults);
    cfg.faults.latency_min_ns = cfg.faults.latency_max_ns = 1 * MS;
    w.sim = mp_sim_create(&cfg);
    assert_non_null(w.sim);
    for (int i = 0; i < 2; i++) {
        node_slots[i] = (node_slot){&w, i};
        w.pids[i] = mp_sim_spawn(w.sim, w.members[i], &NODE_OPS, &node_slots[i]);
        assert_true(w.pids[i] >= 0);
    }
    const uint64_t stall = 2 * SEC;
    mp_sim_run_until(w.sim, stall);
    assert_true(mp_sim_process_running(w.sim, w.pids[0]));
    assert_true(mp_sim_process_running(w.sim, w.pids[1]));
    mp_sim_partition(w.sim, w.pids[0], w.pids[1], 0);
    mp_sim_run_until(w.sim, stall + 2 * SEC);
    int seen = 0;
    for (int i = 0; i < 2; i++) {
        uint64_t at = w.timeout_line_at[i];
        if (!at) continue;
        seen++;
        assert_true(at >= stall + 450 * MS - 100 * MS); /* load reports: <= 100 ms apart */
        assert_true(at <= stall + 450 * MS + 50 * MS + 5 * MS);
    }
    assert_true(seen >= 1);
    /* Validation with a logged reason. */
    mp_env *env = mp_sim_process_env(w.sim, w.pids[0]);
    mp_node_config nc;
    mp_node_config_init(&nc);
    nc.cluster_namespace = "hbn";
    nc.self_addr = w.members[0];
    nc.members = w.members;
    nc.member_count = 2;
    mp_node *node = NULL;
    nc.heartbeat_ns = 1 * SEC;
    nc.peer_timeout_ns = 2 * SEC;
    assert_int_equal(mp_node_create(env, &nc, &node), MP_EINVAL);
    nc.peer_timeout_ns = 0; /* default 10 s: fine with 1 s */
    nc.heartbeat_ns = 5 * SEC;
    assert_int_equal(mp_node_create(env, &nc, &node), MP_EINVAL);
    nc.heartbeat_ns = 1000; /* 1 us */
    nc.peer_timeout_ns = MP_NODE_NO_PEER_TIMEOUT;
    assert_int_equal(mp_node_create(env, &nc, &node), MP_EINVAL);
    nc.heartbeat_ns = 5 * SEC;
    assert_int_equal(mp_node_create(env, &nc, &node), MP_OK);
    mp_node_free_now(node);
    assert_false(mp_sim_failed(w.sim));
    mp_sim_destroy(w.sim);
}

/* ---- transport config validation ----------------------------------------- */

static int cfg_boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    mp_transport_config cfg;
    mp_transport *t = NULL;
    mp_transport_config_init(&cfg);
    cfg.cluster_namespace = "hb";
    cfg.self_addr = "10.0.7.1:4500";
    /* Defaults are 1 s / 10 s; 0 means default. */
    assert_int_equal(cfg.heartbeat_ns, 1 * SEC);
    assert_int_equal(cfg.peer_timeout_ns, 10 * SEC);
    cfg.heartbeat_ns = 999 * 1000; /* < 1 ms */
    assert_int_equal(mp_transport_create(env, &cfg, &CBS, NULL, &t), MP_EINVAL);
    cfg.heartbeat_ns = 1 * SEC;
    cfg.peer_timeout_ns = 2 * SEC; /* must be > 2 x heartbeat */
    assert_int_equal(mp_transport_create(env, &cfg, &CBS, NULL, &t), MP_EINVAL);
    cfg.heartbeat_ns = 0;
    cfg.peer_timeout_ns = 1 * SEC; /* against the default heartbeat */
    assert_int_equal(mp_transport_create(env, &cfg, &CBS, NULL, &t), MP_EINVAL);
    cfg.heartbeat_ns = UINT64_MAX / 2;
    cfg.peer_timeout_ns = MP_TRANSPORT_NO_PEER_TIMEOUT;
    assert_int_equal(mp_transport_create(env, &cfg, &CBS, NULL, &t), MP_EINVAL);
    assert_null(t);
    cfg.heartbeat_ns = 1 * MS;
    cfg.peer_timeout_ns = 2 * MS + 1;
    assert_int_equal(mp_transport_create(env, &cfg, &CBS, NULL, &t), MP_OK);
    mp_transport_free_now(t);
    cfg.heartbeat_ns = 0;
    cfg.peer_timeout_ns = MP_TRANSPORT_NO_PEER_TIMEOUT;
    assert_int_equal(mp_transport_create(env, &cfg, &CBS, NULL, &t), MP_OK);
    mp_transport_free_now(t);
    *state = NULL;
    return MP_OK;
}

static void cfg_teardown(void *state) { (void)state; }

static const mp_sim_process_ops CFG_OPS = {cfg_boot, cfg_teardown, NULL};

static void test_config_validation(void **state)
{
    mp_sim_config cfg;
    mp_sim_config_init(&cfg);
    mp_sim *sim = mp_sim_create(&cfg);
    assert_non_null(sim);
    int pid = mp_sim_spawn(sim, "10.0.7.1:4500", &CFG_OPS, NULL);
    assert_true(pid >= 0);
    mp_sim_run_until(sim, 1 * MS);
    assert_true(mp_sim_process_running(sim, pid));
    mp_sim_destroy(sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partition_closes_after_peer_timeout),
        cmocka_unit_test(test_clog_closes_after_peer_timeout),
        cmocka_unit_test(test_idle_connection_stays_open),
        cmocka_unit_test(test_peer_timeout_disabled),
        cmocka_unit_test(test_outage_logged_once),
        cmocka_unit_test(test_node_config_reaches_transport),
        cmocka_unit_test(test_config_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
