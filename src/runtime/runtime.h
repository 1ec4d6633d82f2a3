/*
 * The runtime layer's one internal header (libuv uv-common.h style).
 *
 * Why one layer and not an activation layer below a node layer: an
 * activation's every step goes through its node (the run queue, the
 * message free lists, the counters, the directory registration that
 * decides whether it may run at all), and the node's every routing
 * decision looks at activations. Split in two folders, the pair called
 * each other more than 60 times per activation step through a hand-kept
 * list of callbacks; an interface of function pointers would add an
 * indirect call per message on the hottest path and still leave both
 * sides knowing each other's structs. So activations, their catalog and
 * state, and the node are one layer, src/runtime/, with one mechanism per
 * file (node.c lists them), and the pure data structures it uses stay
 * below it: ids and the calls table (src/actor/), the directory
 * (src/directory/), the transport, the wire format, util. Nothing below
 * includes anything from here.
 *
 * Names: functions shared between files of this folder, and nothing else,
 * start with mp__ (docs/conventions.md); the public API is what
 * include/moonpool/ declares.
 *
 * struct mp_node assembles the pieces: the calls table, the catalog, the
 * directory, the transport, the run queue, the pending-lookup lists.
 *
 * Wire protocol of the runtime (on top of src/wire/frame.h):
 *   REQUEST  target = actor id, sender = calling actor id or empty,
 *            method, payload, ttl_ms = remaining time, forward_count,
 *            flags: MP_FLAG_PLACE (the sender placed a new activation here).
 *   ONEWAY   the same, correlation 0, never answered.
 *   RESPONSE correlation = the request's, status 0 + payload, or status < 0
 *            + error text; cache_updates = directory corrections.
 *   SYSTEM   directory protocol, load reports and stats: sysmsg.h.
 * Client-only nodes (not in the member list) send REQUEST/ONEWAY frames
 * with forward_count 0 to a gateway member, which treats them like any
 * peer's request (proxying with a relay record when the actor lives
 * elsewhere) and answers on the same connection. Members never send
 * requests to clients; a client answers any REQUEST with MP_EUNAVAIL.
 * All integers little-endian. Every field read from a peer is validated.
 *
 * Thread: the node's loop thread.
 */
#ifndef MP_RUNTIME_H
#define MP_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "actor/calls.h"
#include "actor/rid_window.h"
#include "directory/directory.h"
#include "moonpool/env.h"
#include "moonpool/limits.h"
#include "moonpool/units.h"
#include "moonpool/node.h"
#include "runtime/activation.h"
#include "runtime/catalog.h"
#include "runtime/sysmsg.h"
#include "transport/transport.h"
#include "util/hist.h"
#include "wire/frame.h"

/* Frame flags (mp_frame.flags) of the runtime. */
#define MP_FLAG_PLACE 0x0001u /* activate here: the caller placed it */

/* Load reports: fresh enough for placement (see directory.h), cheap (one
 * 8-byte frame per peer). */
#define MP_LOAD_INTERVAL_NS (100ull * MP_NS_PER_MS)
/* After a restart (incarnation > 1) this node's directory partition is
 * empty while the activations it owned still live on other nodes. For this
 * long it answers "busy, retry" instead of "not found", so the survivors
 * (who re-register on learning of the restart, within a load interval)
 * win back their entries before anyone places a second activation. */
#define MP_DIR_RECOVERY_NS (5ull * MP_NS_PER_SEC)
/* A re-registration that got no answer (its frame went down with a
 * connection) is sent again after this, while its activation lives. It
 * must land within the owner's recovery time, which covers a partition
 * (up to 2 s in the simulator) plus the transport's reconnect backoff
 * (up to 2 s); see the bank-durable workload. */
#define MP_REREG_RETRY_NS (100ull * MP_NS_PER_MS)
#define MP_REREG_ATTEMPTS 60
#define MP_MAX_FORWARDS 2

/* Requests waiting for one directory lookup of their target. */
typedef struct mp_rid_origin mp_rid_origin;

typedef struct mp_pending {
    mp_list_node link; /* node->pending_list */
    mp_ref ref;
    mp_list_node msgs;
    bool in_flight;
    int attempts;
    mp_timer_id retry;
    mp_node *node;
} mp_pending;

/* Context of a system request or relay waiting in the calls table. Found
 * again by ids, never by pointers to activations, so a context outliving its
 * activation is harmless. */
typedef enum mp_ctx_kind {
    MP_CTX_LOOKUP = 1,
    MP_CTX_REGISTER = 2,
    MP_CTX_UNREGISTER = 3,
    MP_CTX_RELAY = 4,
    MP_CTX_DELAYED_REGISTER = 5, /* owner side: answer later (buggify) */
    MP_CTX_REREGISTER = 6,       /* re-registration after an owner restart */
    MP_CTX_REREG_RETRY = 7       /* a lost re-registration, sent again later */
} mp_ctx_kind;

typedef struct mp_ctx {
    mp_list_node link; /* node->ctx_list */
    mp_node *node;
    uint8_t kind;
    uint16_t member;    /* relay: forwarded to */
    uint64_t act_id;    /* register / unregister */
    uint64_t orig_corr; /* relay: the original caller's correlation */
    char peer[MP_ADDR_MAX + 1]; /* relay: the original caller node */
    uint32_t incarnation;       /* delayed registration; rereg attempts */
    mp_timer_id timer;          /* delayed registration (buggify) */
    mp_ref ref;
} mp_ctx;

/* A call of a client-only node: the request is kept so that it can be
 * resent to another gateway when its gateway turns out unreachable. */
typedef struct mp_ccall {
    mp_list_node link; /* node->ccalls */
    mp_node *node;
    mp_msg *m;         /* the request (target, method, payload, deadline) */
    mp_reply_cb cb;
    void *ud;
    mp_list_node order; /* node->ccall_order: by rid_seq, for the low mark */
    uint64_t rid_seq;  /* the first attempt's id: the request id of them all */
    uint64_t corr;     /* current attempt's id in node->calls; 0: none */
    mp_timer_id timer; /* delayed next attempt */
    uint32_t tries;    /* attempts made so far */
    uint16_t gw;       /* gateway of the current attempt */
} mp_ccall;

/* Membership (members.c); NULL in a static cluster. */
typedef struct mp_members mp_members;
typedef struct mp__membership_counters {
    uint64_t view_changes;       /* live member sets applied */
    uint64_t members_taken_over; /* members dropped from the live set */
    uint64_t lapses;             /* times the lease stopped this node serving */
    uint64_t suspicions;         /* unreachable peers reported to the agent */
    uint64_t table_reads, table_writes, table_conflicts, declared_dead;
    uint64_t lease_end;          /* env time; 0: none */
    bool serving;
} mp__membership_counters;

typedef struct mp_type_slot {
    const mp_actor_type *type;
    size_t name_len;
} mp_type_slot;

struct mp_node {
    mp_env *env;
    /* config (copied) */
    char ns[MP_ACTOR_PART_MAX + 1];
    char self_addr[MP_ADDR_MAX + 1];
    /* The sender of the last frame and its member index (-1: not a
     * member): frames arrive in runs from one peer, so on_frame compares
     * the address instead of hashing it. Reset when members are added. */
    char last_from[MP_ADDR_MAX + 1];
    size_t last_from_len;
    int last_from_idx;
    uint32_t incarnation;
    uint64_t call_timeout_ns;
    uint64_t idle_timeout_ns;
    uint64_t heartbeat_ns, peer_timeout_ns; /* for the transport; 0: default */
    uint64_t frame_timeout_ns;              /* for the transport; 0: default */
    uint32_t max_message;
    uint32_t max_pending_calls;
    size_t mailbox_warn_depth;
    uint32_t max_mailbox;
    uint64_t mailbox_full_logged; /* env time of the last "mailbox full" log */
    void (*on_mailbox_depth)(void *ud, const mp_ref *actor, size_t depth);
    void *hook_ud;
    struct mp_storage *storage;
    struct {
        bool enabled;
        uint64_t lease_ns, margin_ns, poll_ns;
        uint32_t votes;
    } membership_cfg;
    void (*on_declared_dead)(void *ud);
    mp_members *members;
    /* types */
    mp_type_slot *types;
    size_t type_count, type_cap;
    /* parts */
    mp_calls calls;
    mp_catalog catalog;
    mp_directory dir;
    mp_transport *transport;
    /* run queue of mp_work, drained by one deferred callback */
    mp_list_node runq;
    bool drain_scheduled;
    bool in_drain;
    uint64_t drain_now; /* time read when the current drain started */
    /* free lists */
    mp_msg *msg_free;
    size_t msg_free_count;
    mp_act_mem act_mem; /* where activations live (activation.h) */
    /* mp_actor_ref copies: act_id -> mp_ref (activation.c) */
    mp_map_u64 pub_refs;
    mp_ref ref_scratch; /* their out-of-memory fallback */
    /* directory lookups in flight: id -> mp_pending */
    mp_map_str pending;
    mp_list_node pending_list;
    mp_list_node ctx_list;
    mp_list_node delayed; /* mp_msg.link: sends postponed by buggify */
    uint64_t next_act_id;
    mp_timer_id load_timer, sweep_timer;
    uint64_t sweep_interval_ns;
    uint64_t recover_until; /* see MP_DIR_RECOVERY_NS */
    uint32_t *rereg_count;  /* per member: re-registrations received */
    bool *rereg_done;       /* per member: its dir.reregistered matched */
    bool started, closing, freed;
    bool client_only;
    bool killing; /* inside mp_node_free_now: hooks owed are forgiven */
    bool leaving; /* shutdown: waiting for the membership row to say left */
    mp_list_node ccalls; /* mp_ccall, client-only nodes */
    mp_list_node ccall_order; /* the same, oldest request id first */
    mp_list_node sops;   /* mp_sop: storage operations in flight */
    bool release_waiting; /* shut down: memory goes when sops drain */
    bool release_after_drain; /* shut down: memory goes after the deferred drain */
    /* shutdown */
    void (*shutdown_cb)(void *ud);
    void *shutdown_ud;
    mp_timer_id shutdown_timer;
    uint64_t shutdown_deadline;
    bool transport_closing;
    mp_node_stats stats;
    /* End-to-end request ids (rid.c): this life's token as an origin, and
     * the windows of the origins whose requests ran here. */
    uint64_t rid_token;
    mp_map_u64 rid_map; /* token -> mp_rid_origin */
    struct mp_rid_origin **rid_origins; /* MP_RID_ORIGINS_MAX slots, rid_count used */
    size_t rid_count;
    struct mp_rid_origin *rid_last;
    /* persist latency histogram: bucket i counts [2^i, 2^(i+1)) us */
    mp_hist persist_hist; /* util/hist.h, the one histogram of the tree */
    mp_hist call_hist;    /* mp_call to completion (calls.c records it) */
};

/* Routing trace at debug level (off by default: one level check). */
#define MP__DBG(n, ...)                                                       \
    do {                                                                      \
        if ((n)->env->log_level <= MP_LOG_DEBUG)                              \
            mp_env_log((n)->env, MP_LOG_DEBUG, __VA_ARGS__);                  \
    } while (0)

/* A restarted directory owner still waits for the survivors'
 * re-registrations (dir_owner.c). */
static inline bool mp__recovering(const mp_node *n)
{
    return n->recover_until && mp_env_now(n->env) < n->recover_until;
}

/* A send to or a connection with a peer failed this way: a refused
 * handshake (namespace or version), not a lost connection. */
static inline bool mp__refusal_status(int status)
{
    return status == MP_ENAMESPACE || status == MP_EVERSION;
}

/* Copy a reference's used part only: the id buffer is mostly slack, and a
 * whole-struct copy (280 bytes) was 3.5% of creating an activation. */
static inline void mp__ref_copy(mp_ref *dst, const mp_ref *src)
{
    dst->len = src->len;
    dst->type_off = src->type_off;
    dst->type_len = src->type_len;
    dst->key_off = src->key_off;
    dst->key_len = src->key_len;
    dst->hash = src->hash;
    memcpy(dst->id, src->id, (size_t)src->len + 1);
}

/* members.c: membership in the runtime (NULL-safe: a static cluster has
 * no mp_members and these are no-ops or "yes"). */
int mp__members_start(mp_node *n);
void mp__members_free(mp_node *n);
void mp__members_check_lease(mp_node *n, uint64_t now);
bool mp__members_serving(mp_node *n);
/* The same with the lease checked now (a persist: its write must not
 * start once the lease is gone, even in a turn that began before). */
bool mp__members_serving_now(mp_node *n);
bool mp__members_owns(const mp_node *n, const mp_ref *ref);
const uint8_t *mp__members_placeable(mp_node *n, const mp_ref *ref);
void mp__members_on_rebuild(mp_node *n, int peer_idx, uint64_t nonce, uint64_t hash);
void mp__members_on_rebuilt(mp_node *n, int peer_idx, uint64_t nonce, uint32_t count);
void mp__members_on_rereg(mp_node *n, int peer_idx, uint64_t tag);
void mp__members_peer_restart(mp_node *n, int peer_idx);
void mp__members_suspect(mp_node *n, int peer_idx);
/* Graceful leave (shutdown.c): false if there is nothing to leave; else
 * cb(n) runs once the row is marked left (or the leave failed). */
bool mp__members_leave(mp_node *n, void (*cb)(mp_node *n));
void mp__members_counters(const mp_node *n, mp__membership_counters *out);
/* route.c: the members changed: lookups waiting to retry go now (their
 * owner may have changed; the backoff was for the old one). */
void mp__lookups_retry_now(mp_node *n);
/* Member i as last seen in the table: its newest incarnation (0: never
 * seen) and whether it is active. */
void mp__members_member(const mp_node *n, size_t i, uint32_t *inc, bool *active);

/* node.c: types and ids */
const mp_actor_type *mp__find_type(const mp_node *n, const char *name,
                                   size_t len);
const mp_actor_type *mp__type_of_ref(const mp_node *n, const mp_ref *ref);
bool mp__ns_matches(const mp_node *n, const mp_ref *ref);

/* runq.c: the run queue and how a message ends */
/* Put a work item in the run queue and make sure a drain is deferred. */
void mp__runq_push(mp_node *n, mp_work *w);
/* Complete a message toward its origin with a reply (status 0 + data, or
 * status < 0 + error text) and release it (a local reply is queued for the
 * drain first). Used by mp_reply and every failure path. */
void mp__finish(mp_node *n, mp_msg *m, int status, const void *data,
                size_t len);
/* mp__finish with an error text (NUL-terminated, may be NULL). */
void mp__fail_msg(mp_node *n, mp_msg *m, int status, const char *text);
/* Fail every message of a list (mp_msg.link); consumes the list. */
void mp__fail_list(mp_node *n, mp_list_node *msgs, int status,
                   const char *text);

/* send.c: frames out */
mp_ctx *mp__ctx_new(mp_node *n, uint8_t kind, const mp_ref *ref);
void mp__ctx_free(mp_ctx *c);
void mp__frame_init(mp_frame *f, uint8_t kind);
int mp__send_frame(mp_node *n, const char *peer, const mp_frame *f);
/* The text waiting callers get when peer refused us with status. */
void mp__refusal_text(mp_node *n, const char *peer, int status, char *buf,
                      size_t cap);
void mp__send_response(mp_node *n, const char *peer, uint64_t corr,
                       int status, const void *data, size_t len,
                       const mp_ref *cache_id, int cache_member);
/* An error response with a NUL-terminated text. */
void mp__send_error(mp_node *n, const char *peer, uint64_t corr, int status,
                    const char *text);
/* Send a request this node does not host to member (consumes m). */
void mp__send_to(mp_node *n, mp_msg *m, uint16_t member, uint16_t flags,
                 bool allow_delay);
/* Send a system request; with ctx, cb gets the answer (or the failure). */
int mp__send_system(mp_node *n, size_t member, mp_sys_kind kind,
                    const mp_ref *ref, const void *payload, size_t len,
                    mp_ctx *ctx, mp_reply_cb cb);
/* Buggify: park m on a timer, then send it (MP__DELAY_SEND, to member with
 * flags) or its reply (MP__DELAY_RESPONSE). Returns false if the timer
 * could not be made; the caller then proceeds at once. */
enum { MP__DELAY_SEND = 1, MP__DELAY_RESPONSE = 2, MP__DELAY_GHOST = 3 };
bool mp__delay_msg(mp_node *n, mp_msg *m, uint8_t kind, uint16_t member,
                   uint16_t flags);

/* route.c: routing, local delivery, lookups */
void mp__route(mp_node *n, mp_msg *m);
void mp__deliver_local(mp_node *n, mp_actor *a, mp_msg *m);
/* Host ref here: an existing activation takes msgs, else one is created
 * and registered. Consumes msgs. */
void mp__host_here(mp_node *n, const mp_ref *ref, mp_list_node *msgs);
void mp__pending_free(mp_node *n, mp_pending *p);
/* Forget p, handing its waiting messages to msgs (initialised here). */
void mp__pending_take(mp_node *n, mp_pending *p, mp_list_node *msgs);

/* register.c: the registrant's side of the directory protocol */
void mp__start_register(mp_node *n, mp_actor *a);
/* Register (kind MP_CTX_REGISTER) or re-register (MP_CTX_REREGISTER) a at
 * its owner. Returns 0 when the request left or was handled locally. */
int mp__register(mp_node *n, mp_actor *a, uint8_t kind);
/* A re-registration answering the rebuild request `tag` (members.c). */
int mp__reregister_tagged(mp_node *n, mp_actor *a, uint64_t tag);
/* Unregister (ref, act_id). With want_answer the local deactivation
 * completes when the owner answered (or the request failed). */
void mp__send_unregister(mp_node *n, const mp_ref *ref, uint64_t act_id,
                         bool want_answer);

/* lifecycle.c: an activation's life around its turns */
/* Remove an activation that never ran hooks or whose hooks are done. */
void mp__destroy_activation(mp_node *n, mp_actor *a);
/* The activation's first step after winning registration: load state, run
 * on_activate, go Valid or fail its queued messages. */
void mp__activate(mp_node *n, mp_actor *a);
/* Start deactivating a Valid, idle activation. */
void mp__deactivate(mp_node *n, mp_actor *a, mp_deactivate_reason reason);
/* The activation (Activating) cannot start: its queued messages fail with
 * MP_EACTIVATION and `why`, it is destroyed and unregistered. */
void mp__activation_failed(mp_node *n, mp_actor *a, const char *why);
/* The same when the node may not serve (members.c): MP_EUNAVAIL, not
 * executed, and no failure counted. */
void mp__activation_refused(mp_node *n, mp_actor *a, const char *why);
/* A turn ended (the message was replied to). */
void mp__turn_ended(mp_node *n, mp_actor *a);

/* dir_owner.c, recv.c, peers.c: what the transport calls */
void mp__on_system(mp_node *n, int peer_idx, const char *peer,
                   const mp_frame *f);
void mp__on_frame(void *ud, const char *peer, const mp_frame *f);
void mp__on_peer_restart(void *ud, const char *peer, uint32_t old_inc,
                         uint32_t new_inc);
void mp__on_peer_down(void *ud, const char *peer, int status);
void mp__load_timer(void *ud);

/* client.c: client-only nodes */
int mp__client_submit(mp_node *n, mp_msg *m, mp_reply_cb cb, void *ud,
                      bool oneway);
/* The gateway member is lost: unsent calls (ids sorted) fail over, the
 * others end with status and text (peers.c). */
void mp__client_peer_down(mp_node *n, uint16_t member, int status,
                          const char *text, const uint64_t *unsent,
                          size_t unsent_count);
void mp__ccall_free(mp_node *n, mp_ccall *cc);
/* Statuses with which a client-only node's call goes on to the next
 * gateway: they say the request was not taken (client.c). A handler's
 * error never carries one (mp_reply_error). */
bool mp__client_retryable(int status);
void mp__ccall_finish(mp_node *n, mp_ccall *cc, int status,
                      const void *data, size_t len);

/* idem.c: idempotency keys */
/* At a keyed message's turn: if its key already ran here, answer it from
 * the kept reply (consumes m) and return true. */
/* rid.c: MP_OK (run it), MP_EALREADY (ran here), MP_ESTALE or
 * MP_EQUEUEFULL (refused, not run). */
int mp__rid_admit(mp_node *n, mp_msg *m);
size_t mp__rid_origins(const mp_node *n);
/* Buggify: a copy of m (which just passed mp__rid_admit in a's turn)
 * reaches a again, now or a little later. */
void mp__rid_ghost(mp_node *n, mp_actor *a, const mp_msg *m);
void mp__rid_ghost_arrive(mp_node *n, mp_msg *g);
void mp__rid_free(mp_node *n);

bool mp__idem_replay(mp_node *n, mp_actor *a, mp_msg *m);
/* A keyed message's turn ended with this reply: remember it. */
void mp__idem_record(mp_node *n, mp_actor *a, const mp_msg *m, int status,
                     const void *data, size_t len);
void mp__idem_free(mp_actor *a);
/* 1..MP_IDEMPOTENCY_KEY_MAX bytes of [!-~]. */
bool mp__idem_key_ok(const char *key, size_t len);

/* idle.c */
void mp__arm_sweep(mp_node *n);

/* shutdown.c */
void mp__check_shutdown_done(mp_node *n);
/* A storage operation completed (state.c): a graceful shutdown waiting for
 * the last one finishes now. Returns true if the node was released. */
bool mp__sop_done(mp_node *n);
/* Release a shut-down node's memory and run its shutdown callback; waits
 * for a drain already deferred (the env cannot cancel a defer). */
void mp__finish_release(mp_node *n);

/* stats.c */
/* Count a persist latency (ns). */
void mp__note_persist(mp_node *n, uint64_t ns, int status);

#endif
