/*
 * The Counter test actor of the node tests (test_node_*.c).
 *
 * Its methods cover the runtime's contract: replies now ("add", "get",
 * "echo") or 10 ms later ("later": the actor stays busy meanwhile), errors
 * ("fail"), never replying ("hang"), an oversized reply ("big"), calling
 * another actor before replying ("callother": add on the Counter named by
 * the payload, answer x100; "callback": makes that actor call back here),
 * explicit deactivation ("deact"), the hosting node's address ("where"),
 * reading its payload after replying ("echo_then_read", into g_after).
 * Keys starting with "bad" fail on_activate. Each instance counts
 * overlapping turns (R4) into g_overlaps.
 *
 * "Local" has the same methods with prefer-local placement: two nodes
 * calling a new id at once both try to activate it.
 *
 * counter_cluster* build a sim_cluster whose members register both types;
 * counter_cluster_free also checks the world invariants: no id with two
 * live activations (R10), no overlapping turns.
 */
#ifndef MP_TEST_COUNTER_ACTOR_H
#define MP_TEST_COUNTER_ACTOR_H

#include <stdint.h>

#include "moonpool/node.h"
#include "sim_cluster.h"

extern const mp_actor_type counter_type;
extern const mp_actor_type local_type;

/* Hook counts since the last counter_options (reset there). */
extern int g_activations, g_deactivations, g_overlaps, g_releases;
extern int g_deact_reasons[8]; /* by mp_deactivate_reason */
extern uint8_t g_after[256];   /* what echo_then_read read after replying */

/* Options for `members` members with seed `seed` and both types; log level
 * from MP_NODE_DEBUG. Resets the hook counts. */
void counter_options(sc_options *o, int members, uint64_t seed);
/* sc_create + sc_start. */
sc_cluster *counter_cluster_new(const sc_options *o);
/* counter_options defaults, created and started. */
sc_cluster *counter_cluster(int members, uint64_t seed);
/* Check the invariants (no duplicate activation, no overlap), sc_free. */
void counter_cluster_free(sc_cluster *c);

#endif
