/*
 * Virtual actors: types, references, calls, replies.
 *
 * An actor is named by (namespace, type, key); its text form is
 * "namespace::type/key". A program never says where an actor lives: it makes
 * a reference (local, instant, no network) and calls a method on it. The node
 * routes the call through the cluster's directory to the one activation of
 * that actor, activating it on some node first if needed.
 *
 * Turns. An activation takes one message at a time. The handler receives the
 * message and a reply handle (mp_msg); it may reply at once or later, after
 * its own calls or a state persist complete. Until it replies, the actor takes
 * no other message. Replying ends the turn. A handler error (mp_reply_error)
 * fails that message only; the actor stays active.
 *
 * Payload bytes are opaque to the runtime; codecs (mp_codec, codec.h) turn
 * them into values. Buffers passed in are copied before the call returns
 * unless stated otherwise; buffers passed to callbacks are valid only during
 * the callback.
 *
 * Thread: every function here runs on the node's loop thread (inside handlers
 * and callbacks, or in code the loop runs), except where noted.
 */
#ifndef MOONPOOL_ACTOR_H
#define MOONPOOL_ACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/env.h"
#include "moonpool/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_node mp_node;   /* one runtime node (node.h) */
typedef struct mp_actor mp_actor; /* one activation, as seen by its handlers */
typedef struct mp_msg mp_msg;     /* one message being handled: reply handle */

/* Limits of actor ids: the whole id is at most 256 bytes. */
#define MP_ACTOR_ID_MAX 256
#define MP_ACTOR_PART_MAX 64 /* namespace and type */
#define MP_METHOD_MAX 128

/* ---- actor ids and references ------------------------------------------- */

/* A reference: the actor's id in text form plus where its parts are. Plain
 * value, copyable with memcpy, no ownership. */
typedef struct mp_ref {
    char id[MP_ACTOR_ID_MAX + 1]; /* "namespace::type/key", NUL-terminated */
    uint16_t len;
    uint16_t type_off, type_len; /* type part inside id */
    uint16_t key_off, key_len;   /* key part inside id */
    uint64_t hash;               /* stable hash of id (directory placement) */
} mp_ref;

/* Build a reference from parts. Namespace and type use [A-Za-z0-9_.-]
 * (1..64 bytes each); the key is 1+ bytes of anything but control
 * characters (< 0x20 and 0x7f), '/' and ':' included (the text form is
 * parsed at the first "::" and the first '/' after it, so the key is simply
 * the rest). Keys with other bytes must be escaped by the caller. The whole
 * text form is at most MP_ACTOR_ID_MAX bytes. Errors: MP_EINVAL (NULL, empty
 * part, bad character, too long). No network, no allocation. Any thread. */
int mp_ref_init(mp_ref *ref, const char *ns, const char *type,
                const char *key);

/* Parse the text form "namespace::type/key" (len bytes, no NUL needed);
 * the same rules as mp_ref_init. MP_EINVAL if malformed. Any thread. */
int mp_ref_parse(mp_ref *ref, const char *text, size_t len);

/* Same as mp_ref_init with the node's namespace: the usual way to get one.
 * Local and instant: it sends no message and does not wait (the actor is
 * found, or activated, by the first call to it). */
int mp_ref_get(mp_node *node, const char *type, const char *key, mp_ref *ref);

/* ---- actor types --------------------------------------------------------- */

typedef enum mp_deactivate_reason {
    MP_DEACTIVATE_IDLE = 1,
    MP_DEACTIVATE_SHUTDOWN = 2,
    MP_DEACTIVATE_EXPLICIT = 3,
    MP_DEACTIVATE_ACTIVATION_FAILED = 4,
    MP_DEACTIVATE_LOST_RACE = 5, /* another activation of the id won */
    MP_DEACTIVATE_DIRECTORY = 6, /* the directory no longer names this node */
    MP_DEACTIVATE_LEASE = 7      /* the node's membership lease lapsed or it was
                                    declared dead (node.h, membership) */
} mp_deactivate_reason;

const char *mp_deactivate_reason_name(mp_deactivate_reason r);

typedef enum mp_placement {
    MP_PLACE_TWO_CHOICES = 0, /* default: random nodes, the one with fewer
                                 activations wins (two samples; three on
                                 clusters of 3+, see directory.h) */
    MP_PLACE_RANDOM = 1,
    MP_PLACE_PREFER_LOCAL = 2,
    MP_PLACE_HASH = 3 /* a node chosen by the actor id's hash */
} mp_placement;

/* A method handler. `instance` is the activation's memory (instance_size
 * bytes, zeroed at activation). `payload` is valid until the handler returns
 * (even if it replies first): copy what you need to keep for a later reply.
 * The handler must eventually call mp_reply or mp_reply_error on `msg`
 * exactly once (also for one-way sends, where the reply goes nowhere but
 * still ends the turn); after that `msg` is invalid. A reply is never
 * delivered to the caller inside mp_reply: the node's run queue does it. */
typedef void (*mp_handler_fn)(mp_actor *self, void *instance, mp_msg *msg,
                              const void *payload, size_t len);

typedef struct mp_method_def {
    const char *name;
    mp_handler_fn fn;
} mp_method_def;

typedef struct mp_actor_type {
    const char *name;     /* [A-Za-z0-9_.-], <= 64 bytes */
    size_t instance_size; /* may be 0 */
    /* Runs before the first message, after persisted state was loaded. Return
     * 0, or an error to fail the activation: queued messages then fail with
     * MP_EACTIVATION and no activation remains. May be NULL. */
    int (*on_activate)(mp_actor *self, void *instance);
    /* Runs exactly once for every activation whose on_activate succeeded,
     * unless its process died (mp_node_free_now), whatever the reason:
     *   IDLE, EXPLICIT, DIRECTORY, SHUTDOWN: after the current turn ended
     *     (SHUTDOWN past the shutdown deadline: even while a turn is still
     *     open; the handler must then not reply);
     *   ACTIVATION_FAILED, LOST_RACE: never (on_activate did not succeed or
     *     never ran).
     * Persisted state is not saved here automatically: persist during turns.
     * May be NULL. */
    void (*on_deactivate)(mp_actor *self, void *instance,
                          mp_deactivate_reason reason);
    const mp_method_def *methods;
    size_t method_count;
    mp_placement placement;
    uint64_t idle_timeout_ns; /* 0: the node's default */
    const struct mp_state_type *state; /* persisted state (state.h); NULL: none */
    /* Runs exactly once for every activation, just before its instance
     * memory is freed, on every path: after on_deactivate on graceful paths,
     * after a failed or never-run on_activate (the instance is then as
     * on_activate left it, or zeroed), and alone (no on_deactivate) in
     * mp_node_free_now. Free what the instance owns here, so nothing leaks
     * at a simulated kill. It must not call into the node (no calls, no
     * replies): the node may be half torn down. Outstanding calls of the
     * activation never complete after it ran. May be NULL. */
    void (*release)(void *instance);
} mp_actor_type;

/* ---- inside a handler ---------------------------------------------------- */

/* Reply with success. `data` is copied (it may point into the request's
 * payload). Ends the turn. A reply larger than the node's max_message
 * reaches the caller as MP_ETOOBIG. */
void mp_reply(mp_msg *msg, const void *data, size_t len);

/* Reply with an error: status (usually MP_EACTOR, any negative mp_status)
 * and a human-readable message (copied; may be NULL). Ends the turn; the
 * actor stays active. The handler ran, so its error never says the
 * request was not taken: MP_EUNAVAIL, MP_EQUEUEFULL and the connection
 * statuses (MP_ECONNRESET, MP_ECONNREFUSED, MP_EOF), e.g. relayed from the
 * handler's own call, reach the caller as MP_EACTOR with the message
 * "MP_EUNAVAIL: <message>" (a client-only caller would otherwise send the
 * request to another member, which would run it again). Other statuses are
 * passed as given: a handler that relays one whose class is "not executed"
 * (mp_call_status_class) should have changed nothing. */
void mp_reply_error(mp_msg *msg, int status, const char *message);

/* Whether the message expects a reply (false for one-way sends). */
bool mp_msg_wants_reply(const mp_msg *msg);

/* Method name of the message (valid until the reply). */
const char *mp_msg_method(const mp_msg *msg);

const mp_ref *mp_actor_ref(const mp_actor *self);
mp_node *mp_actor_node(mp_actor *self);
mp_env *mp_actor_env(mp_actor *self);

/* Ask for this activation to be deactivated once the current turn ends
 * (reason MP_DEACTIVATE_EXPLICIT). Messages queued behind it are re-routed
 * (a new activation takes them), never dropped. */
void mp_actor_deactivate(mp_actor *self);

/* ---- calls --------------------------------------------------------------- */

/* The outcome of a call. status 0: `data` is the reply payload. status < 0:
 * the call failed (MP_ETIMEDOUT, MP_EACTOR, MP_ENOTYPE, MP_ENOMETHOD,
 * MP_ETOOBIG, MP_EUNAVAIL, MP_EINDOUBT, MP_EFORWARDS, MP_EACTIVATION,
 * MP_EDEADLOCK, ...; node.h, "What an error says", tells which of them
 * promise the call did not run)
 * and `data` holds the error message text (not NUL-terminated; may be
 * empty). `data` is valid
 * only during the callback. Runs exactly once per accepted call. */
typedef void (*mp_reply_cb)(void *ud, int status, const void *data,
                            size_t len);

typedef struct mp_call_opts {
    uint64_t timeout_ns; /* 0: the node's default (30 s) */
    /* NULL, or the caller's idempotency key for this request: 1 to
     * MP_IDEMPOTENCY_KEY_MAX bytes of [!-~], copied. The activation that runs
     * a keyed request remembers the key and its reply; a request with the
     * same key to the same actor within MP_IDEMPOTENCY_WINDOW_NS is answered
     * with that reply and does not run again (node.h, "Exactly once for
     * callers that retry"). A bad key: MP_EINVAL. */
    const char *idempotency_key;
} mp_call_opts;

/* Call `method` on the actor named by ref, from outside any actor. The
 * payload is copied. Returns 0 (cb will run exactly once, never inside this
 * call) or an error at once (cb never runs): MP_EINVAL, MP_ETOOBIG (the
 * request frame would exceed the node's max_message), MP_ECLOSED (node not
 * started or shutting down), MP_EQUEUEFULL (max_pending_calls reached),
 * MP_ENOMEM. Unknown types and methods are reported through cb
 * (MP_ENOTYPE, MP_ENOMETHOD). A request whose timeout passes before its turn
 * starts is dropped by the callee (the caller sees MP_ETIMEDOUT). */
int mp_call(mp_node *node, const mp_ref *ref, const char *method,
            const void *payload, size_t len, const mp_call_opts *opts,
            mp_reply_cb cb, void *ud);

/* The same from inside a handler: the callee sees this actor as the sender.
 * The caller stays busy (it has not replied) while it waits. Turns are not
 * reentrant, so a call back into a waiting actor could never run: when the
 * callee (directly, or at the same time through its own call) calls back an
 * actor whose turn waits for that callee, the call back fails at once with
 * MP_EDEADLOCK instead of waiting for its timeout. Only cycles of two are
 * detected (through the latest call of the waiting turn); longer cycles end
 * by timeout. */
int mp_actor_call(mp_actor *self, const mp_ref *ref, const char *method,
                  const void *payload, size_t len, const mp_call_opts *opts,
                  mp_reply_cb cb, void *ud);

/* One-way: deliver at most once, no reply, no error report beyond the
 * immediate return value (the same errors as mp_call). The message expires
 * after the node's call timeout. */
int mp_send(mp_node *node, const mp_ref *ref, const char *method,
            const void *payload, size_t len);

#ifdef __cplusplus
}
#endif
#endif
