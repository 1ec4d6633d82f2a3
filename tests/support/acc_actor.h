/*
 * The persisted-counter test actor "Acc" (acc_actor.c says what it does).
 */
#ifndef MP_TEST_ACC_ACTOR_H
#define MP_TEST_ACC_ACTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "moonpool/actor.h"
#include "moonpool/node.h"
#include "moonpool/state.h"

typedef struct acc {
    bool activated;    /* on_activate succeeded */
    bool deactivated;  /* on_deactivate ran */
    mp_msg *held;
    mp_actor *self;
    bool deact_on_fail;
} acc;

extern const mp_actor_type acc_type;
/* Hook counts (reset by the tests): activations that succeeded, on_deactivate
 * runs, releases, instances released while still active (kills), hooks run
 * twice; n seen by the last on_activate (-1: none). */
extern int g_act_ok, g_deact, g_release, g_killed_live, g_twice;
extern int64_t g_seen_at_activate;

/* The counter in an activation's state. */
int64_t acc_value_of(mp_actor *self);

#endif
