/*
 * The Counter test actor of the node tests (test_node_*.c), and their
 * cluster helpers on the sim_cluster harness. See counter_actor.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counter_actor.h"

#define MS 1000000ull
#define SEC 1000000000ull

/* ---- the test actor ---- */

typedef struct counter {
    int64_t value;
    int in_turn;
    mp_msg *held;
    mp_actor *self;
    mp_timer_id timer;
} counter;

int g_activations, g_deactivations, g_overlaps, g_releases;
int g_deact_reasons[8];

static void reply_value(mp_msg *msg, int64_t v) { mp_reply(msg, &v, sizeof v); }

static void m_add(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                  size_t len)
{
    counter *c = inst;
    if (c->in_turn) g_overlaps++;
    int64_t d = 1;
    if (len == sizeof d) memcpy(&d, p, sizeof d);
    c->value += d;
    reply_value(msg, c->value);
}

static void m_get(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                  size_t len)
{
    reply_value(msg, ((counter *)inst)->value);
}

static void m_echo(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                   size_t len)
{
    mp_reply(msg, p, len); /* replies with its own payload buffer */
}

uint8_t g_after[256];
/* Replies first, then reads its payload: legal until the handler returns. */
static void m_echo_then_read(mp_actor *self, void *inst, mp_msg *msg,
                             const void *p, size_t len)
{
    mp_reply(msg, p, len);
    memcpy(g_after, p, len < sizeof g_after ? len : sizeof g_after);
}

static void m_fail(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                   size_t len)
{
    mp_reply_error(msg, MP_EACTOR, "boom");
}

/* Adds 1, then fails with a status that says "did not run", as a handler
 * relaying its own call's MP_EUNAVAIL does. */
static void m_add_relay_unavail(mp_actor *self, void *inst, mp_msg *msg,
                                const void *p, size_t len)
{
    ((counter *)inst)->value++;
    mp_reply_error(msg, MP_EUNAVAIL, "downstream unavailable");
}

static void later_fire(void *ud)
{
    counter *c = ud;
    c->timer = 0;
    c->in_turn = 0;
    c->value++;
    mp_msg *m = c->held;
    c->held = NULL;
    reply_value(m, c->value);
}

/* Replies 10 ms later: the actor stays busy meanwhile. */
static void m_later(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                    size_t len)
{
    counter *c = inst;
    if (c->in_turn || c->held) g_overlaps++;
    c->in_turn = 1;
    c->held = msg;
    c->timer = mp_env_timer_start(mp_actor_env(self), 10 * MS, later_fire, c);
}

static void m_hang(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                   size_t len)
{
    /* never replies */
}

static void m_big(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                  size_t len)
{
    static char buf[8192];
    mp_reply(msg, buf, sizeof buf);
}

static void other_replied(void *ud, int status, const void *data, size_t len)
{
    counter *c = ud;
    mp_msg *m = c->held;
    c->held = NULL;
    c->in_turn = 0;
    if (status < 0) {
        mp_reply_error(m, status, "callee failed");
        return;
    }
    int64_t v = 0;
    if (len == sizeof v) memcpy(&v, data, sizeof v);
    reply_value(m, v * 100);
}

/* Holds msg's turn while calling `method` (with arg) on the Counter whose
 * key is the payload; other_replied answers msg. */
static void hold_and_call(mp_actor *self, counter *c, mp_msg *msg, const void *p,
                          size_t len, const char *method, const void *arg,
                          size_t arg_len)
{
    char key[64];
    if (len >= sizeof key) len = sizeof key - 1;
    memcpy(key, p, len);
    key[len] = 0;
    mp_ref other;
    if (mp_ref_get(mp_actor_node(self), "Counter", key, &other) != MP_OK) {
        mp_reply_error(msg, MP_EINVAL, "bad key");
        return;
    }
    c->held = msg;
    c->in_turn = 1;
    /* a short inner timeout: a lost callee must not keep this actor busy
     * for longer than its own callers wait */
    mp_call_opts opts = {.timeout_ns = 2 * SEC};
    int rc = mp_actor_call(self, &other, method, arg, arg_len, &opts, other_replied, c);
    if (rc < 0) {
        c->held = NULL;
        mp_reply_error(msg, rc, "call failed");
    }
}

/* Calls "add" on the Counter named by the payload, replies its answer x100. */
static void m_callother(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                        size_t len)
{
    hold_and_call(self, inst, msg, p, len, "add", NULL, 0);
}

/* Calls "callother" on the Counter named by the payload with this actor's
 * own key: that actor calls back "add" here while this turn waits for it. */
static void m_callback(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                       size_t len)
{
    const mp_ref *me = mp_actor_ref(self);
    hold_and_call(self, inst, msg, p, len, "callother", me->id + me->key_off,
                  me->key_len);
}

static void m_where(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                    size_t len)
{
    const char *a = mp_node_addr(mp_actor_node(self));
    mp_reply(msg, a, strlen(a));
}

static void m_deact(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                    size_t len)
{
    mp_actor_deactivate(self);
    mp_reply(msg, NULL, 0);
}

static int on_activate(mp_actor *self, void *inst)
{
    const mp_ref *r = mp_actor_ref(self);
    /* The activation keeps its id compactly; the reference built from it is
     * whole (as parsing the id gives) and the same pointer every time. */
    mp_ref parsed;
    assert_int_equal(mp_ref_parse(&parsed, r->id, r->len), MP_OK);
    assert_int_equal(parsed.type_off, r->type_off);
    assert_int_equal(parsed.type_len, r->type_len);
    assert_int_equal(parsed.key_off, r->key_off);
    assert_int_equal(parsed.key_len, r->key_len);
    assert_true(parsed.hash == r->hash);
    assert_ptr_equal(mp_actor_ref(self), r);
    if (r->key_len >= 3 && memcmp(r->id + r->key_off, "bad", 3) == 0)
        return MP_EACTOR;
    ((counter *)inst)->self = self;
    g_activations++;
    return 0;
}

static void on_deactivate(mp_actor *self, void *inst, mp_deactivate_reason why)
{
    counter *c = inst;
    if (c->timer) mp_env_timer_cancel(mp_actor_env(self), c->timer);
    g_deactivations++;
    if ((int)why < 8) g_deact_reasons[why]++;
}

/* The release hook: runs for every activation whose memory goes. */
static void counter_release(void *inst)
{
    (void)inst;
    g_releases++;
}

static const mp_method_def counter_methods[] = {
    {"add", m_add},       {"get", m_get},     {"echo", m_echo},
    {"fail", m_fail},     {"later", m_later}, {"hang", m_hang},
    {"big", m_big},       {"callother", m_callother},
    {"where", m_where},   {"deact", m_deact},     {"callback", m_callback},
    {"echo_then_read", m_echo_then_read}, {"add_relay_unavail", m_add_relay_unavail},
};

const mp_actor_type counter_type = {
    .name = "Counter",
    .instance_size = sizeof(counter),
    .on_activate = on_activate,
    .on_deactivate = on_deactivate,
    .methods = counter_methods,
    .method_count = sizeof counter_methods / sizeof *counter_methods,
    .release = counter_release,
};

/* Same methods, placed on the calling node: makes activation races certain
 * when two nodes call a new id at once. */
const mp_actor_type local_type = {
    .name = "Local",
    .instance_size = sizeof(counter),
    .on_activate = on_activate,
    .on_deactivate = on_deactivate,
    .methods = counter_methods,
    .method_count = sizeof counter_methods / sizeof *counter_methods,
    .placement = MP_PLACE_PREFER_LOCAL,
};

void counter_options(sc_options *o, int members, uint64_t seed)
{
    sc_options_init(o);
    o->sim.seed = seed;
    o->sim.log_level = getenv("MP_NODE_DEBUG") ? MP_LOG_DEBUG : MP_LOG_ERROR;
    o->members = members;
    o->types[0] = &counter_type;
    o->types[1] = &local_type;
    g_activations = g_deactivations = g_overlaps = g_releases = 0;
    memset(g_deact_reasons, 0, sizeof g_deact_reasons);
}

sc_cluster *counter_cluster_new(const sc_options *o)
{
    sc_cluster *c = sc_create(o);
    sc_start(c);
    return c;
}

sc_cluster *counter_cluster(int members, uint64_t seed)
{
    sc_options o;
    counter_options(&o, members, seed);
    return counter_cluster_new(&o);
}

void counter_cluster_free(sc_cluster *c)
{
    int dups;
    sc_live_activations(c, &dups);
    assert_int_equal(dups, 0);
    assert_int_equal(g_overlaps, 0);
    sc_free(c);
}
