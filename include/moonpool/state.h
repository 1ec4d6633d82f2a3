/*
 * Persistent actor state: typed state loaded before activation, an
 * explicit persist that reports its error to the actor, keys isolated per
 * namespace/type/key; a persisted state is restored whole after
 * deactivation and reactivation, and a storage failure reaches the actor
 * as an error, never silently.
 *
 * Design: the runtime holds ONE value per activation, in the form the
 * state type's codec works with (for the default JSON codec: a jansson
 * `json_t *`). The framework loads it from the node's storage provider
 * before on_activate runs; the actor reads it (mp_state_get), changes it in
 * place or replaces it (mp_state_set), and calls mp_state_persist during a
 * turn, replying to its caller only when the save reported back. Why a value
 * held by the runtime rather than encode/decode callbacks over the instance:
 * a JSON actor then needs no code at all to load its state (it is simply
 * there in on_activate), and an actor that prefers a C struct converts in
 * two obvious places (on_activate: value -> struct; before persisting:
 * struct -> value with mp_state_set), which is the same code the callbacks
 * would have held, without a second set of hooks to learn.
 *
 *   static const mp_state_type counter_state = { .codec = NULL }; // JSON
 *   static const mp_actor_type t = { ..., .state = &counter_state };
 *
 *   int on_activate(mp_actor *self, void *inst) {
 *       json_t *s = mp_state_get(self);          // NULL: never stored
 *       if (!s) mp_state_set(self, s = json_pack("{s:i}", "n", 0));
 *       ...
 *   }
 *   void h_incr(mp_actor *self, void *inst, mp_msg *msg, ...) {
 *       json_t *s = mp_state_get(self);
 *       json_object_set_new(s, "n", json_integer(json_integer_value(
 *                               json_object_get(s, "n")) + 1));
 *       mp_state_persist(self, persisted, msg);  // reply in `persisted`
 *   }
 *
 * Keys: "namespace/type::key" (mp_storage_key), so namespaces and types
 * never share records.
 *
 * Loading: done after the activation won its directory registration and
 * before on_activate. "No record" gives a NULL value. A load error
 * (MP_ESTORAGE, MP_ECORRUPT, ...) or a value the codec cannot decode fails
 * the activation: its queued messages fail with MP_EACTIVATION and a message
 * saying why, no activation and no directory entry remain, and the next
 * message to the actor tries again from scratch. on_deactivate does not run
 * (on_activate never did); release does.
 *
 * Saving: optimistic concurrency with the ETag of the last successful load
 * or save, and the fencing token (node incarnation, activation id) stored
 * as the record's writer. A stale or duplicate activation (one that lost a
 * race the directory could not prevent, or survived a partition) therefore
 * never commits: its save fails with MP_ECONFLICT, and the runtime then
 * deactivates it once its turn ends (reason EXPLICIT), so the next message
 * reaches a fresh activation that loads the winner's state. After an
 * ambiguous failure (MP_ESTORAGE: the write may or may not have landed) the
 * next persist first reloads the record: if its writer is this activation
 * (our write landed) or its ETag is still ours (it did not), the save goes
 * on with the stored ETag; otherwise someone else wrote and it fails with
 * MP_ECONFLICT.
 *
 * A failed persist changes nothing the runtime holds: the value in memory
 * keeps the caller's change although it may not be stored. Actors usually
 * reply with the error and call mp_actor_deactivate(self), so the next turn
 * sees what storage holds (examples/bank does).
 *
 * A type with state on a node without storage (mp_node_config.storage
 * NULL) activates with a NULL value and mp_state_available() false;
 * mp_state_persist then fails at once with MP_EINVAL.
 *
 * Thread: the node's loop thread (inside handlers and hooks).
 */
#ifndef MOONPOOL_STATE_H
#define MOONPOOL_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "moonpool/actor.h"
#include "moonpool/codec.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_state_type {
    /* Codec of the stored value; NULL: mp_json_codec() (values are json_t *,
     * objects or arrays at the top level). Must outlive the node. */
    const mp_codec *codec;
} mp_state_type;

/* Whether this activation has persistent state: its type has a state type
 * and its node a storage provider. */
bool mp_state_available(const mp_actor *self);

/* The current value (borrowed: valid until mp_state_set or the
 * activation's end; the actor may change it in place). NULL when nothing
 * was ever stored and nothing was set. */
void *mp_state_get(mp_actor *self);

/* Replace the value. The runtime takes ownership of `value` (may be NULL:
 * the next persist then deletes the record) and frees the previous one with
 * the codec's free_value (unless it is the same pointer). */
void mp_state_set(mp_actor *self, void *value);

/* ETag of the record as last loaded or saved by this activation (0: none
 * stored). */
uint64_t mp_state_etag(const mp_actor *self);

/* Encode the current value and save it (a NULL value clears the record).
 * Asynchronous: returns 0 and cb(ud, status) runs exactly once later, with
 * 0 (stored durably), MP_ECONFLICT (stale activation: someone else wrote),
 * MP_ESTORAGE (the provider failed; the write may or may not have landed),
 * MP_ECORRUPT or MP_ECLOSED. cb never runs if the activation is released
 * first (a kill, or a shutdown past its deadline). Call it during a turn
 * and reply only from cb: the actor stays busy until it replies. One
 * persist at a time per activation. Errors at once (cb never runs):
 * MP_EINVAL (NULL, no state available, activation not valid), MP_EBUSY (a
 * persist is in flight), MP_EUNAVAIL (membership: the node's lease is not
 * valid, so another activation may exist: nothing is written), the codec's
 * encode error (MP_EINVAL, MP_ETOOBIG), or the provider's (MP_ECLOSED,
 * MP_ETOOBIG, MP_ENOMEM). */
int mp_state_persist(mp_actor *self, void (*cb)(void *ud, int status),
                     void *ud);

#ifdef __cplusplus
}
#endif
#endif
