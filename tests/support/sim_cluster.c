/* The simulated-cluster harness of the unit tests: see sim_cluster.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_cluster.h"

#define SC_MS 1000000ull
#define SC_SEC 1000000000ull

/* One node slot: the process state of its simulator process. */
typedef struct sc_slot {
    sc_cluster *c;
    int idx;
    bool client;
    int pid;
    mp_node *node; /* NULL once killed or shut down */
    bool shut_down;
    char addr[64];
} sc_slot;

struct sc_cluster {
    sc_options o;
    mp_sim *sim;
    int n; /* slots in use: members, then clients */
    sc_slot slots[SC_MAX_NODES];
    const char *members[SC_MAX_NODES];
};

void sc_options_init(sc_options *o)
{
    memset(o, 0, sizeof *o);
    mp_sim_config_init(&o->sim);
    o->sim.log_level = MP_LOG_ERROR;
    o->addr_net = "10.0.0.";
    o->addr_port = 4000;
    o->ns = "t";
    o->boot_ns = 1 * SC_MS;
}

static int slot_boot(mp_env *env, void *arg, uint32_t inc, void **state)
{
    sc_slot *s = arg;
    sc_cluster *c = s->c;
    const sc_options *o = &c->o;
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    cfg.cluster_namespace = o->ns;
    cfg.self_addr = s->addr;
    cfg.members = c->members;
    cfg.member_count = (size_t)o->members;
    cfg.incarnation = inc;
    if (s->client) {
        cfg.client_only = true;
    } else {
        if (o->idle_timeout_ns) cfg.idle_timeout_ns = o->idle_timeout_ns;
        if (o->call_timeout_ns) cfg.call_timeout_ns = o->call_timeout_ns;
        if (o->max_message) cfg.max_message = o->max_message;
        cfg.mailbox_warn_depth = o->mailbox_warn_depth;
    }
    if (o->configure) o->configure(o->ud, s->idx, &cfg);
    mp_node *node;
    int rc = mp_node_create(env, &cfg, &node);
    if (rc < 0) return rc;
    for (int t = 0; !s->client && rc >= 0 && o->types[t]; t++)
        if (!o->hosts || o->hosts(o->ud, s->idx, o->types[t]))
            rc = mp_node_register_type(node, o->types[t]);
    if (rc >= 0) rc = mp_node_start(node);
    if (rc < 0) {
        mp_node_free_now(node);
        return rc;
    }
    s->node = node;
    s->shut_down = false;
    *state = s;
    return 0;
}

/* A node shut down gracefully has freed itself: nothing left to free. */
static void slot_teardown(void *state)
{
    sc_slot *s = state;
    if (!s->node) return;
    if (s->c->o.before_free) s->c->o.before_free(s->c->o.ud, s->node);
    mp_node_free_now(s->node);
    s->node = NULL;
}

static const mp_sim_process_ops slot_ops = {slot_boot, slot_teardown, NULL};

sc_cluster *sc_create(const sc_options *o)
{
    assert_true(o->members >= 0 && o->members <= SC_MAX_NODES);
    sc_cluster *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->o = *o;
    c->sim = mp_sim_create(&c->o.sim);
    if (!c->sim) {
        free(c);
        fail_msg("mp_sim_create failed (another world alive?)");
    }
    c->n = o->members;
    for (int i = 0; i < c->n; i++) {
        sc_slot *s = &c->slots[i];
        s->c = c;
        s->idx = i;
        s->pid = -1;
        snprintf(s->addr, sizeof s->addr, "%s%d:%u", o->addr_net, i + 1,
                 (unsigned)o->addr_port);
        c->members[i] = s->addr;
    }
    return c;
}

void sc_start(sc_cluster *c)
{
    for (int i = 0; i < c->o.members; i++) {
        c->slots[i].pid = mp_sim_spawn(c->sim, c->slots[i].addr, &slot_ops, &c->slots[i]);
        assert_true(c->slots[i].pid >= 0);
    }
    mp_sim_run_until(c->sim, mp_sim_now(c->sim) + c->o.boot_ns);
    for (int i = 0; i < c->o.members; i++) assert_non_null(sc_node(c, i));
}

int sc_add_client(sc_cluster *c, const char *addr)
{
    assert_true(c->n < SC_MAX_NODES);
    int i = c->n++;
    sc_slot *s = &c->slots[i];
    s->c = c;
    s->idx = i;
    s->client = true;
    snprintf(s->addr, sizeof s->addr, "%s", addr);
    s->pid = mp_sim_spawn(c->sim, s->addr, &slot_ops, s);
    assert_true(s->pid >= 0);
    mp_sim_run_until(c->sim, mp_sim_now(c->sim) + 1 * SC_MS);
    assert_non_null(sc_node(c, i));
    return i;
}

void sc_free(sc_cluster *c)
{
    char why[512] = "";
    if (mp_sim_failed(c->sim)) snprintf(why, sizeof why, "%s", mp_sim_failure(c->sim));
    mp_sim_destroy(c->sim);
    free(c);
    if (why[0]) fail_msg("sim failed: %s", why);
}

/* ---- access ---- */

mp_sim *sc_sim(sc_cluster *c) { return c->sim; }
int sc_members(sc_cluster *c) { return c->o.members; }
const char **sc_member_addrs(sc_cluster *c) { return c->members; }

static sc_slot *slot_at(sc_cluster *c, int i)
{
    assert_true(i >= 0 && i < c->n);
    return &c->slots[i];
}

const char *sc_addr(sc_cluster *c, int i) { return slot_at(c, i)->addr; }
int sc_pid(sc_cluster *c, int i) { return slot_at(c, i)->pid; }

mp_env *sc_env(sc_cluster *c, int i)
{
    sc_slot *s = slot_at(c, i);
    return s->pid < 0 ? NULL : mp_sim_process_env(c->sim, s->pid);
}

mp_node *sc_node(sc_cluster *c, int i)
{
    sc_slot *s = slot_at(c, i);
    if (s->pid < 0 || !mp_sim_process_running(c->sim, s->pid)) return NULL;
    return s->node;
}

/* ---- running ---- */

void sc_run_for(sc_cluster *c, uint64_t ns)
{
    mp_sim_run_until(c->sim, mp_sim_now(c->sim) + ns);
}

bool sc_run_until(sc_cluster *c, bool (*pred)(void *ud), void *ud,
                  uint64_t within_ns)
{
    return mp_sim_run_while_not(c->sim, pred, ud, mp_sim_now(c->sim) + within_ns);
}

int sc_kill(sc_cluster *c, int i) { return mp_sim_kill(c->sim, slot_at(c, i)->pid); }

int sc_restart(sc_cluster *c, int i, uint64_t delay_ns)
{
    return mp_sim_restart(c->sim, slot_at(c, i)->pid, delay_ns);
}

static void slot_shut(void *ud)
{
    sc_slot *s = ud;
    s->node = NULL; /* freed by the node itself */
    s->shut_down = true;
}

static bool slot_is_shut(void *ud) { return ((sc_slot *)ud)->shut_down; }

bool sc_shutdown(sc_cluster *c, int i, uint64_t deadline_ns, uint64_t within_ns)
{
    sc_slot *s = slot_at(c, i);
    assert_non_null(sc_node(c, i));
    mp_node_shutdown(s->node, deadline_ns, slot_shut, s);
    return sc_run_until(c, slot_is_shut, s, within_ns);
}

/* World invariant: no id has two live activations. */
typedef struct sc_seen {
    char ids[4096][MP_ACTOR_ID_MAX + 1];
    int count;
    int dups;
} sc_seen;

static void seen_visit(void *ud, const mp_ref *ref)
{
    sc_seen *s = ud;
    for (int i = 0; i < s->count; i++)
        if (strcmp(s->ids[i], ref->id) == 0) s->dups++;
    if (s->count < 4096) memcpy(s->ids[s->count++], ref->id, ref->len + 1);
}

int sc_live_activations(sc_cluster *c, int *dups)
{
    static sc_seen s;
    s.count = 0;
    s.dups = 0;
    for (int i = 0; i < c->o.members; i++)
        if (sc_node(c, i)) mp_node_foreach_activation(sc_node(c, i), seen_visit, &s);
    if (dups) *dups = s.dups;
    return s.count;
}

/* ---- calls ---- */

void sc_on_reply(void *ud, int status, const void *data, size_t len)
{
    sc_reply *o = ud;
    o->calls++;
    o->status = status;
    o->at = o->sim ? mp_sim_now(o->sim) : 0;
    o->value = 0;
    if (status == 0 && len == sizeof o->value) memcpy(&o->value, data, len);
    size_t n = len < sizeof o->text - 1 ? len : sizeof o->text - 1;
    if (n) memcpy(o->text, data, n);
    o->text[n] = 0;
    o->len = len;
}

int sc_call(sc_cluster *c, int from, const char *type, const char *key,
            const char *method, const void *p, size_t len, uint64_t timeout_ns,
            sc_reply *o)
{
    mp_ref r;
    mp_node *node = sc_node(c, from);
    assert_non_null(node);
    assert_int_equal(mp_ref_get(node, type, key, &r), MP_OK);
    o->sim = c->sim;
    mp_call_opts opts = {.timeout_ns = timeout_ns};
    return mp_call(node, &r, method, p, len, &opts, sc_on_reply, o);
}

typedef struct sc_wait_all {
    sc_reply *o;
    int n;
} sc_wait_all;

static bool all_done(void *ud)
{
    sc_wait_all *w = ud;
    for (int i = 0; i < w->n; i++)
        if (w->o[i].calls == 0) return false;
    return true;
}

void sc_wait_within(sc_cluster *c, sc_reply *o, int n, uint64_t within_ns)
{
    sc_wait_all w = {o, n};
    assert_true(sc_run_until(c, all_done, &w, within_ns));
    for (int i = 0; i < n; i++) assert_int_equal(o[i].calls, 1);
}

void sc_wait(sc_cluster *c, sc_reply *o, int n) { sc_wait_within(c, o, n, 120 * SC_SEC); }

sc_reply sc_call_wait(sc_cluster *c, int from, const char *type, const char *key,
                      const char *method, const void *p, size_t len,
                      uint64_t timeout_ns, uint64_t within_ns)
{
    sc_reply o;
    memset(&o, 0, sizeof o);
    assert_int_equal(sc_call(c, from, type, key, method, p, len, timeout_ns, &o), MP_OK);
    sc_wait_within(c, &o, 1, within_ns);
    return o;
}
