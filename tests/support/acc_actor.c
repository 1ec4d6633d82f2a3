/*
 * The persisted-counter test actor "Acc" ({"n": N} in its state): the
 * subject of the state tests (tests/unit/test_state_sim.c) and of the state
 * activation benchmark (bench/bench_state_activation.c). Its hooks count
 * into the g_* globals below, which the tests reset and read.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "acc_actor.h"

/* ---- the test actor: a persisted counter {"n": N} ---- */

int g_act_ok, g_deact, g_release, g_killed_live, g_twice;
int64_t g_seen_at_activate; /* n seen by the last on_activate (-1: none) */

int64_t acc_value_of(mp_actor *self)
{
    json_t *s = mp_state_get(self);
    return s ? (int64_t)json_integer_value(json_object_get(s, "n")) : 0;
}

static void reply_n(mp_msg *msg, int64_t v) { mp_reply(msg, &v, sizeof v); }

static int acc_activate(mp_actor *self, void *inst)
{
    acc *a = inst;
    json_t *s = mp_state_get(self);
    g_seen_at_activate = s ? acc_value_of(self) : -1;
    if (!s) mp_state_set(self, json_pack("{s:I}", "n", (json_int_t)0));
    a->self = self;
    a->activated = true;
    g_act_ok++;
    return 0;
}

static void acc_deactivate(mp_actor *self, void *inst, mp_deactivate_reason r)
{
    acc *a = inst;
    if (a->deactivated) g_twice++;
    a->deactivated = true;
    g_deact++;
}

static void acc_release(void *inst)
{
    acc *a = inst;
    g_release++;
    if (a->activated && !a->deactivated) g_killed_live++;
}

static void persisted(void *ud, int status)
{
    acc *a = ud;
    mp_msg *m = a->held;
    a->held = NULL;
    if (status < 0) {
        mp_reply_error(m, status, "persist failed");
        if (a->deact_on_fail) mp_actor_deactivate(a->self);
        return;
    }
    reply_n(m, acc_value_of(a->self));
}

/* payload: optional u8 "deactivate on failure" */
static void m_incr(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                   size_t len)
{
    acc *a = inst;
    a->deact_on_fail = len == 1 && ((const uint8_t *)p)[0];
    json_t *s = mp_state_get(self);
    json_object_set_new(s, "n", json_integer(acc_value_of(self) + 1));
    a->held = msg;
    int rc = mp_state_persist(self, persisted, a);
    if (rc < 0) {
        a->held = NULL;
        mp_reply_error(msg, rc, "persist refused");
    }
}

static void m_get(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                  size_t len)
{
    reply_n(msg, acc_value_of(self));
}

static void m_deact(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                    size_t len)
{
    mp_actor_deactivate(self);
    mp_reply(msg, NULL, 0);
}

/* A second persist while one is in flight is refused (MP_EBUSY). */
static void m_double(mp_actor *self, void *inst, mp_msg *msg, const void *p,
                     size_t len)
{
    acc *a = inst;
    a->held = msg;
    a->deact_on_fail = false;
    int rc = mp_state_persist(self, persisted, a);
    int rc2 = mp_state_persist(self, persisted, a);
    if (rc < 0 || rc2 != MP_EBUSY) {
        a->held = NULL;
        mp_reply_error(msg, MP_EINTERNAL, "double persist not refused");
    }
}

static const mp_method_def acc_methods[] = {
    {"incr", m_incr}, {"get", m_get}, {"deact", m_deact}, {"double", m_double},
};

static const mp_state_type acc_state = {.codec = NULL};

const mp_actor_type acc_type = {
    .name = "Acc",
    .instance_size = sizeof(acc),
    .on_activate = acc_activate,
    .on_deactivate = acc_deactivate,
    .methods = acc_methods,
    .method_count = sizeof acc_methods / sizeof *acc_methods,
    .state = &acc_state,
    .release = acc_release,
};

