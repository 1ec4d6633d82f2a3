/*
 * The Journal actor: a deliberately NON-deduplicating actor, the subject of
 * the real-process at-most-once test (tests/cluster/test_cluster_at_most_once.sh)
 * as workloads/exec_record.c is the simulator's.
 *
 * Why: the bank remembers the op ids it applied and absorbs a request that
 * is delivered twice, so no bank test can see a call executed twice. A
 * Journal stores every execution: if the runtime ever ran one call twice,
 * its op id would be stored twice.
 *
 * Type "Journal", key = journal name. State (state.h, JSON codec):
 * {"ops":["<op id>", ...]} in execution order.
 *
 *   append  payload = the op id: 1..MP_JOURNAL_OP_MAX bytes of
 *           [A-Za-z0-9_.:-], raw or as a JSON string ("\"id\"", so that
 *           `moonpool call` can send it)          -> {"n":N} (entries stored)
 *           Appends the op id, persists, and replies only once the save
 *           reported back. A repeated op id is appended again: no dedup.
 *           A failed save is answered with its error (MP_ESTORAGE,
 *           MP_ECONFLICT: may or may not be stored) and the journal
 *           deactivates, so its next activation reloads what storage holds.
 *   list    {} (any payload)                      -> {"ops":[...]}
 *
 * On a node without storage a journal lives in memory only.
 *
 * Thread: the node's loop thread, like every actor.
 */
#ifndef MOONPOOL_EXAMPLES_JOURNAL_H
#define MOONPOOL_EXAMPLES_JOURNAL_H

#include "moonpool/actor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MP_JOURNAL_TYPE "Journal"
#define MP_JOURNAL_OP_MAX 64

/* The Journal type, to register on a node. */
const mp_actor_type *mp_journal_type(void);

#ifdef __cplusplus
}
#endif
#endif
