/*
 * The simulated-cluster harness for users' workloads (sim_cluster.h).
 *
 * It is a workload like the built-in ones (processes spawned into the
 * world, a world-level driver, bookkeeping of what is pending) whose
 * particular parts are the spec's callbacks. Why a world-level driver
 * rather than timers inside the client processes: clients are never killed,
 * so nothing is gained by running inside them, and a world event is where
 * the spec's callbacks may also look at members (which a client process
 * could not do without reaching across processes).
 *
 * Every call the workload issues is a `wcall` on one list until its
 * completion ran: that list is the quiescence test (nothing pending after
 * the heal) and what is freed when a seed ends early (a failed seed destroys
 * the world with calls in flight, whose callbacks then never run).
 */
#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/sim_cluster.h"

#define SC_NS "sim"
#define SC_PORT 4000
#define SC_DB_ADDR "10.0.9.1:4000"
#define SC_HEARTBEAT_NS (100 * MP_NS_PER_MS)
#define SC_PEER_TIMEOUT_NS (1 * MP_NS_PER_SEC)
#define SC_CALL_TIMEOUT_NS (4 * MP_NS_PER_SEC)
#define SC_TICK_NS (20 * MP_NS_PER_MS)
#define SC_MAX_IN_FLIGHT 4
#define SC_RETRY_NS (100 * MP_NS_PER_MS)
#define SC_NAME_MAX 256

typedef struct sc_slot {
    mp_sim_cluster *c;
    int index; /* member index, or client index */
    bool client;
    int pid;
    mp_env *env;
    mp_node *node; /* NULL while down, or once a graceful stop freed it */
    char addr[32];
} sc_slot;

typedef struct wcall wcall;
struct wcall {
    wcall *prev, *next;
    mp_sim_cluster *c;
    int client;
    bool until_ok;
    mp_sim_cluster_reply_cb cb;
    void *ud;
    /* For a retry: the call's names and payload, owned. */
    char *type, *key, *method;
    void *payload;
    size_t len;
};

struct mp_sim_cluster {
    const mp_sim_cluster_spec *spec;
    mp_sim *sim;
    int members, clients;
    bool trace;
    bool chaos;     /* before the heal */
    bool healed;    /* spec->heal ran (it runs within one event) */
    int db_pid;
    void *disk; /* the database's simulated disk (freed with the cluster) */
    sc_slot member[MP_SIM_CLUSTER_MAX_MEMBERS];
    sc_slot client[MP_SIM_CLUSTER_MAX_CLIENTS];
    const char *member_addrs[MP_SIM_CLUSTER_MAX_MEMBERS];
    uint32_t in_flight[MP_SIM_CLUSTER_MAX_CLIENTS];
    uint64_t pending;
    wcall calls; /* list head of pending calls */
    void *ud;    /* what spec->start returned */
};

/* ---- processes ------------------------------------------------------------ */

static int node_boot(mp_env *env, void *arg, uint32_t incarnation, void **out)
{
    sc_slot *s = arg;
    mp_sim_cluster *c = s->c;
    const mp_sim_cluster_spec *spec = c->spec;
    /* The world's level otherwise (errors; warnings with -v). */
    if (c->trace) env->log_level = MP_LOG_DEBUG;
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    cfg.cluster_namespace = SC_NS;
    cfg.self_addr = s->addr;
    cfg.members = c->member_addrs;
    cfg.member_count = (size_t)c->members;
    cfg.incarnation = incarnation;
    cfg.heartbeat_ns = SC_HEARTBEAT_NS;
    cfg.peer_timeout_ns = SC_PEER_TIMEOUT_NS;
    cfg.call_timeout_ns = spec->call_timeout_ns ? spec->call_timeout_ns : SC_CALL_TIMEOUT_NS;
    cfg.client_only = s->client;
    if (!s->client && spec->idle_timeout_ns) cfg.idle_timeout_ns = spec->idle_timeout_ns;
    if (!s->client && spec->storage) {
        /* The database boots first (spawned first, never killed). */
        cfg.storage = mp_sim_process_state(c->sim, c->db_pid);
        if (!cfg.storage) return MP_EUNAVAIL;
    }
    mp_node *node;
    int rc = mp_node_create(env, &cfg, &node);
    if (rc != 0) return rc;
    for (int t = 0; !s->client && rc == 0 && spec->types[t]; t++)
        rc = mp_node_register_type(node, spec->types[t]);
    if (rc == 0) rc = mp_node_start(node);
    if (rc != 0) {
        mp_node_free_now(node);
        return rc;
    }
    s->env = env;
    s->node = node;
    *out = s;
    return 0;
}

static void node_teardown(void *state)
{
    sc_slot *s = state;
    if (s->node) mp_node_free_now(s->node);
    s->node = NULL;
    s->env = NULL;
}

static void node_stopped(void *ud)
{
    sc_slot *s = ud;
    s->node = NULL; /* the runtime released it */
    mp_sim_process_exit(s->env);
}

static void node_stop(void *state, uint64_t deadline_ns)
{
    sc_slot *s = state;
    if (!s->node) return;
    mp_node *node = s->node;
    mp_node_shutdown(node, deadline_ns, node_stopped, s);
}

static const mp_sim_process_ops node_ops = {node_boot, node_teardown, node_stop};

static int db_boot(mp_env *env, void *arg, uint32_t incarnation, void **out)
{
    (void)incarnation;
    mp_sim_cluster *c = arg;
    mp_storage_sim_config sc;
    mp_storage_sim_config_init(&sc);
    sc.buggify = true;
    sc.write_fail_applied_p = 0.5;
    void **slot = mp_sim_process_disk(c->sim, c->db_pid);
    mp_storage *s = mp_storage_sim_create(env, slot, &sc);
    if (!s) return MP_ENOMEM;
    c->disk = *slot;
    *out = s;
    return 0;
}

static void db_teardown(void *state) { mp_storage_free_now(state); }

static const mp_sim_process_ops db_ops = {db_boot, db_teardown, NULL};

/* ---- calls ---------------------------------------------------------------- */

static void wcall_free(wcall *w)
{
    w->prev->next = w->next;
    w->next->prev = w->prev;
    free(w->type);
    free(w->key);
    free(w->method);
    free(w->payload);
    free(w);
}

static bool retry_cannot_help(int status)
{
    return status == MP_EACTOR || status == MP_ENOTYPE || status == MP_ENOMETHOD ||
           status == MP_EINVAL || status == MP_ETOOBIG;
}

static void heal_when_settled(void *ud);

/* The call's end: its completion runs, then it is forgotten. */
static void wcall_done(mp_sim_cluster *c, wcall *w, int status, const void *data,
                       size_t len)
{
    assert(c->pending > 0 && c->in_flight[w->client] > 0);
    c->pending--;
    c->in_flight[w->client]--;
    if (w->cb) w->cb(c, w->ud, status, data, len);
    wcall_free(w);
    if (!c->chaos && !c->healed && c->pending == 0 &&
        mp_sim_schedule(c->sim, 0, heal_when_settled, c) != 0)
        mp_sim_fail(c->sim, "sim-cluster: out of memory scheduling the heal");
}

static int wcall_attempt(wcall *w);

static void wcall_retry(void *ud)
{
    wcall *w = ud;
    int rc = wcall_attempt(w);
    if (rc != 0) wcall_done(w->c, w, rc, NULL, 0);
}

/* An until_ok call that failed in a way a retry may mend goes again
 * SC_RETRY_NS later. Returns false when it does not (the outcome stands). */
static bool wcall_again(wcall *w, int status)
{
    if (!w->until_ok || status == 0 || retry_cannot_help(status)) return false;
    mp_sim_cluster *c = w->c;
    if (c->trace)
        fprintf(stderr, "sim-cluster: %s %s/%s.%s: %s, again in 100 ms\n",
                c->client[w->client].addr, w->type, w->key, w->method,
                mp_status_name(status));
    return mp_sim_schedule(c->sim, SC_RETRY_NS, wcall_retry, w) == 0;
}

static void wcall_replied(void *ud, int status, const void *data, size_t len)
{
    wcall *w = ud;
    if (!wcall_again(w, status)) wcall_done(w->c, w, status, data, len);
}

/* One attempt. Returns 0 (a completion or a retry will follow) or the
 * status the call ends with at once. */
static int wcall_attempt(wcall *w)
{
    mp_node *node = w->c->client[w->client].node;
    mp_ref ref;
    int rc = !node ? MP_ECLOSED : mp_ref_get(node, w->type, w->key, &ref);
    if (rc == 0)
        rc = mp_call(node, &ref, w->method, w->payload, w->len, NULL, wcall_replied, w);
    return rc == 0 || wcall_again(w, rc) ? 0 : rc;
}

static bool name_ok(const char *s) { return s && *s && strlen(s) < SC_NAME_MAX; }

static int call_common(mp_sim_cluster *c, int client, const char *type,
                       const char *key, const char *method, const void *payload,
                       size_t len, bool until_ok, mp_sim_cluster_reply_cb cb,
                       void *ud)
{
    if (!c || client < 0 || client >= c->clients || (len && !payload) || !name_ok(type) ||
        !name_ok(key) || !name_ok(method))
        return MP_EINVAL;
    wcall *w = calloc(1, sizeof *w);
    if (!w) return MP_ENOMEM;
    w->prev = w->next = w; /* alone until linked: wcall_free may unlink */
    w->c = c;
    w->client = client;
    w->until_ok = until_ok;
    w->cb = cb;
    w->ud = ud;
    w->type = strdup(type);
    w->key = strdup(key);
    w->method = strdup(method);
    w->len = len;
    w->payload = len ? malloc(len) : NULL;
    if (!w->type || !w->key || !w->method || (len && !w->payload)) {
        wcall_free(w);
        return MP_ENOMEM;
    }
    if (len) memcpy(w->payload, payload, len);
    /* Counted and listed before the attempt, which may end it at once. */
    w->prev = c->calls.prev;
    w->next = &c->calls;
    c->calls.prev->next = w;
    c->calls.prev = w;
    c->pending++;
    c->in_flight[client]++;
    int rc = wcall_attempt(w);
    if (rc != 0) {
        /* It never left: no completion, as for mp_call. */
        c->pending--;
        c->in_flight[client]--;
        wcall_free(w);
    }
    return rc;
}

int mp_sim_cluster_call(mp_sim_cluster *c, int client, const char *type,
                        const char *key, const char *method,
                        const void *payload, size_t len,
                        mp_sim_cluster_reply_cb cb, void *ud)
{
    return call_common(c, client, type, key, method, payload, len, false, cb, ud);
}

int mp_sim_cluster_call_until_ok(mp_sim_cluster *c, int client,
                                 const char *type, const char *key,
                                 const char *method, const void *payload,
                                 size_t len, mp_sim_cluster_reply_cb cb,
                                 void *ud)
{
    return call_common(c, client, type, key, method, payload, len, true, cb, ud);
}

/* ---- the driver ----------------------------------------------------------- */

static void driver_tick(void *ud)
{
    mp_sim_cluster *c = ud;
    if (!c->chaos) return;
    int cap = c->spec->max_in_flight > 0 ? c->spec->max_in_flight : SC_MAX_IN_FLIGHT;
    for (int i = 0; i < c->clients && !mp_sim_failed(c->sim); i++)
        if (c->in_flight[i] < (uint32_t)cap) c->spec->tick(c, i, c->ud);
    uint64_t tick = c->spec->tick_ns ? c->spec->tick_ns : SC_TICK_NS;
    if (mp_sim_schedule(c->sim, tick, driver_tick, c) != 0)
        mp_sim_fail(c->sim, "sim-cluster: out of memory scheduling the driver");
}

/* spec->heal runs once the chaos phase's calls have all completed, so that
 * its reads see every write whose outcome the workload knows. */
static void heal_when_settled(void *ud)
{
    mp_sim_cluster *c = ud;
    if (c->healed || c->pending > 0) return;
    c->healed = true;
    if (c->spec->heal) c->spec->heal(c, c->ud);
}

/* ---- the workload face ---------------------------------------------------- */

static void sc_destroy(void *state)
{
    mp_sim_cluster *c = state;
    /* The world is gone: calls still listed never completed. */
    while (c->calls.next != &c->calls) wcall_free(c->calls.next);
    if (c->spec->free && c->ud) c->spec->free(c->ud);
    if (c->disk) mp_storage_sim_disk_free(c->disk);
    free(c);
}

static void slot_init(mp_sim_cluster *c, sc_slot *s, int index, bool client)
{
    s->c = c;
    s->index = index;
    s->client = client;
    s->pid = -1;
    snprintf(s->addr, sizeof s->addr, "10.0.%d.%d:%d", client ? 2 : 1, index + 1, SC_PORT);
}

static int sc_setup(mp_sim *sim, const mp_workload_params *params, const void *ctx,
                    void **state)
{
    const mp_sim_cluster_spec *spec = ctx;
    int members = params && params->nodes ? params->nodes : spec->members;
    int clients = params && params->workers ? params->workers : spec->clients;
    if (members < 1 || members > MP_SIM_CLUSTER_MAX_MEMBERS || clients < 1 ||
        clients > MP_SIM_CLUSTER_MAX_CLIENTS)
        return MP_EINVAL;
    mp_sim_cluster *c = calloc(1, sizeof *c);
    if (!c) return MP_ENOMEM;
    *state = c; /* destroyed by the runner whatever happens next */
    c->spec = spec;
    c->sim = sim;
    c->members = members;
    c->clients = clients;
    c->trace = params && params->trace;
    c->chaos = true;
    c->db_pid = -1;
    c->calls.prev = c->calls.next = &c->calls;
    if (spec->tune_faults) {
        mp_sim_faults f = *mp_sim_get_faults(sim);
        spec->tune_faults(c, &f);
        mp_sim_set_faults(sim, &f);
    }
    if (spec->storage) {
        c->db_pid = mp_sim_spawn(sim, SC_DB_ADDR, &db_ops, c);
        if (c->db_pid < 0) return c->db_pid;
        mp_sim_set_killable(sim, c->db_pid, false);
    }
    for (int i = 0; i < members; i++) {
        slot_init(c, &c->member[i], i, false);
        c->member_addrs[i] = c->member[i].addr;
    }
    for (int i = 0; i < members; i++) {
        sc_slot *s = &c->member[i];
        s->pid = mp_sim_spawn(sim, s->addr, &node_ops, s);
        if (s->pid < 0) return s->pid;
        mp_sim_set_killable(sim, s->pid, spec->kill_members);
    }
    for (int i = 0; i < clients; i++) {
        sc_slot *s = &c->client[i];
        slot_init(c, s, i, true);
        s->pid = mp_sim_spawn(sim, s->addr, &node_ops, s);
        if (s->pid < 0) return s->pid;
        mp_sim_set_killable(sim, s->pid, false);
    }
    /* Boot everything (spawns are events) before the workload starts. */
    mp_sim_run_until(sim, mp_sim_now(sim) + MP_NS_PER_MS);
    int rc = spec->start(c, &c->ud);
    if (rc != 0) return rc;
    return mp_sim_schedule(sim, 0, driver_tick, c);
}

static void sc_on_heal(mp_sim *sim, void *state)
{
    mp_sim_cluster *c = state;
    c->chaos = false;
    /* The runner heals the world right after this returns: spec->heal runs
     * as an event after it, once no chaos-phase call is pending. */
    if (mp_sim_schedule(sim, 0, heal_when_settled, c) != 0)
        mp_sim_fail(sim, "sim-cluster: out of memory scheduling the heal");
}

static bool sc_quiescent(mp_sim *sim, void *state)
{
    (void)sim;
    mp_sim_cluster *c = state;
    return !c->chaos && c->healed && c->pending == 0;
}

static void sc_check(mp_sim *sim, void *state)
{
    (void)sim;
    mp_sim_cluster *c = state;
    if (c->spec->check) c->spec->check(c, c->ud);
}

/* Pauses, graceful restarts and one-way partitions too: members that come
 * back, and members that stall past their peers' timeout, are where a
 * runtime's bugs live. They target killable processes only. */
static void sc_tune_faults(uint64_t seed, mp_sim_faults *f)
{
    mp_sim_faults_swarm_process(seed, SC_PEER_TIMEOUT_NS, f);
    f->long_fault_ns = SC_PEER_TIMEOUT_NS;
}

int mp_sim_cluster_workload(const mp_sim_cluster_spec *spec, mp_sim_workload *out)
{
    if (!spec || !out || !spec->name || !spec->name[0] || !spec->start || !spec->tick ||
        !spec->types || !spec->types[0] || spec->members < 1 ||
        spec->members > MP_SIM_CLUSTER_MAX_MEMBERS || spec->clients < 1 ||
        spec->clients > MP_SIM_CLUSTER_MAX_CLIENTS || spec->max_in_flight < 0)
        return MP_EINVAL;
    memset(out, 0, sizeof *out);
    out->name = spec->name;
    out->description = spec->description;
    out->required_coverage = spec->required_coverage;
    out->chaos_ns = spec->chaos_ns;
    out->heal_ns = spec->heal_ns;
    out->tune_faults = sc_tune_faults;
    out->setup_ctx = sc_setup;
    out->ctx = spec;
    out->on_heal = sc_on_heal;
    out->quiescent = sc_quiescent;
    out->check = sc_check;
    out->destroy = sc_destroy;
    return 0;
}

/* ---- access --------------------------------------------------------------- */

mp_sim *mp_sim_cluster_sim(mp_sim_cluster *c) { return c->sim; }
int mp_sim_cluster_members(const mp_sim_cluster *c) { return c->members; }
int mp_sim_cluster_clients(const mp_sim_cluster *c) { return c->clients; }
bool mp_sim_cluster_in_chaos(const mp_sim_cluster *c) { return c->chaos; }
bool mp_sim_cluster_tracing(const mp_sim_cluster *c) { return c->trace; }
uint64_t mp_sim_cluster_pending(const mp_sim_cluster *c) { return c->pending; }

mp_node *mp_sim_cluster_member(mp_sim_cluster *c, int i)
{
    if (i < 0 || i >= c->members) return NULL;
    sc_slot *s = &c->member[i];
    if (s->pid < 0 || !mp_sim_process_running(c->sim, s->pid)) return NULL;
    return s->node;
}

mp_storage *mp_sim_cluster_storage(mp_sim_cluster *c)
{
    if (c->db_pid < 0) return NULL;
    return mp_sim_process_state(c->sim, c->db_pid);
}

uint64_t mp_sim_cluster_random_below(mp_sim_cluster *c, uint64_t n)
{
    return mp_sim_random_below(c->sim, n);
}

void mp_sim_cluster_fail(mp_sim_cluster *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mp_sim_fail(c->sim, "%s", msg);
}

int mp_sim_cluster_kill(mp_sim_cluster *c, int i)
{
    if (i < 0 || i >= c->members) return MP_EINVAL;
    return mp_sim_kill(c->sim, c->member[i].pid);
}

int mp_sim_cluster_restart(mp_sim_cluster *c, int i, uint64_t delay_ns)
{
    if (i < 0 || i >= c->members) return MP_EINVAL;
    return mp_sim_restart(c->sim, c->member[i].pid, delay_ns);
}
