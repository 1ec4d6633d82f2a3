/*
 * Node internals shared by the runtime's modules (private).
 *
 * struct mp_node assembles the pieces: the calls table, the catalog, the
 * directory, the transport, the run queue, the pending-lookup lists. The
 * definition lives here (not in node.c) so activation.c can reach the run
 * queue and the free lists without a call per message.
 *
 * Wire protocol of the runtime (on top of src/wire/frame.h):
 *   REQUEST  target = actor id, sender = calling actor id or empty,
 *            method, payload, ttl_ms = remaining time, forward_count,
 *            flags: MP_FLAG_PLACE (the sender placed a new activation here).
 *   ONEWAY   the same, correlation 0, never answered.
 *   RESPONSE correlation = the request's, status 0 + payload, or status < 0
 *            + error text; cache_updates = directory corrections.
 *   SYSTEM   method "dir.lookup" | "dir.register" | "dir.unregister" |
 *            "load"; target = actor id (empty for load); answered with a
 *            RESPONSE except "load" (correlation 0).
 *     dir.register / dir.unregister payload: u32 incarnation, u64 act_id
 *       (the member is the transport peer: a node speaks only for itself).
 *     dir.lookup / dir.register answer payload: u8 found; if found:
 *       u16 addr_len, addr, u32 incarnation, u64 act_id.
 *     load payload: u64 live activation count.
 *     dir.reregister: as dir.register, sent for every activation a
 *       restarted owner used to know; then dir.reregistered (payload u32
 *       count of them, no answer) lets the owner end its recovery early
 *       once it has received that many from every other member.
 *     stats: empty target and payload; answered with a RESPONSE whose
 *       payload is the node's counters as a JSON object
 *       (mp_node_stats_json). The only SYSTEM request a non-member (a
 *       client-only node) may send.
 * Client-only nodes (not in the member list) send REQUEST/ONEWAY frames
 * with forward_count 0 to a gateway member, which treats them like any
 * peer's request (proxying with a relay record when the actor lives
 * elsewhere) and answers on the same connection. Members never send
 * requests to clients; a client answers any REQUEST with MP_EUNAVAIL.
 * All integers little-endian. Every field read from a peer is validated.
 *
 * Thread: the node's loop thread.
 */
#ifndef MP_NODE_INTERNAL_H
#define MP_NODE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "actor/activation.h"
#include "actor/calls.h"
#include "actor/catalog.h"
#include "directory/directory.h"
#include "moonpool/node.h"
#include "transport/transport.h"

/* Frame flags (mp_frame.flags) of the runtime. */
#define MP_FLAG_PLACE 0x0001u /* activate here: the caller placed it */

#define MP_SYS_LOOKUP "dir.lookup"
#define MP_SYS_REGISTER "dir.register"
#define MP_SYS_UNREGISTER "dir.unregister"
#define MP_SYS_LOAD "load"
#define MP_SYS_REREGISTER "dir.reregister"     /* as register, after a restart */
#define MP_SYS_REREGISTERED "dir.reregistered" /* u32: re-registrations sent */
#define MP_SYS_STATS "stats"                   /* answer: JSON counters */

/* Load reports: fresh enough for placement (see directory.h), cheap (one
 * 8-byte frame per peer). */
#define MP_LOAD_INTERVAL_NS (100ull * 1000 * 1000)
/* After a restart (incarnation > 1) this node's directory partition is
 * empty while the activations it owned still live on other nodes. For this
 * long it answers "busy, retry" instead of "not found", so the survivors
 * (who re-register on learning of the restart, within a load interval)
 * win back their entries before anyone places a second activation. */
#define MP_DIR_RECOVERY_NS (5000ull * 1000 * 1000)
/* A re-registration that got no answer (its frame went down with a
 * connection) is sent again after this, while its activation lives. It
 * must land within the owner's recovery time, which covers a partition
 * (up to 2 s in the simulator) plus the transport's reconnect backoff
 * (up to 2 s); see the bank-durable workload. */
#define MP_REREG_RETRY_NS (100ull * 1000 * 1000)
#define MP_REREG_ATTEMPTS 60
#define MP_MAX_FORWARDS 2
#define MP_PERSIST_BUCKETS 40

/* Requests waiting for one directory lookup of their target. */
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
    uint64_t corr;     /* current attempt's id in node->calls; 0: none */
    mp_timer_id timer; /* delayed next attempt */
    uint32_t tries;    /* attempts made so far */
    uint16_t gw;       /* gateway of the current attempt */
} mp_ccall;

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
     * member): frames arrive in runs from one peer, and members never
     * change, so on_frame compares the address instead of hashing it. */
    char last_from[MP_ADDR_MAX + 1];
    size_t last_from_len;
    int last_from_idx;
    uint32_t incarnation;
    uint64_t call_timeout_ns;
    uint64_t idle_timeout_ns;
    uint64_t heartbeat_ns, peer_timeout_ns; /* for the transport; 0: default */
    uint32_t max_message;
    uint32_t max_pending_calls;
    size_t mailbox_warn_depth;
    void (*on_mailbox_depth)(void *ud, const mp_ref *actor, size_t depth);
    void *hook_ud;
    struct mp_storage *storage;
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
    mp_list_node ccalls; /* mp_ccall, client-only nodes */
    mp_list_node sops;   /* mp_sop: storage operations in flight */
    bool release_waiting; /* shut down: memory goes when sops drain */
    /* shutdown */
    void (*shutdown_cb)(void *ud);
    void *shutdown_ud;
    mp_timer_id shutdown_timer;
    uint64_t shutdown_deadline;
    bool transport_closing;
    mp_node_stats stats;
    /* persist latency histogram: bucket i counts [2^i, 2^(i+1)) us */
    uint64_t persist_hist[MP_PERSIST_BUCKETS];
    uint64_t persist_count;
};

/* Put a work item in the run queue and make sure a drain is deferred. */
void mp_node_runq_push(mp_node *n, mp_work *w);
/* Complete a message toward its origin with a reply (status 0 + data, or
 * status < 0 + error text) and release it (a local reply is queued for the
 * drain first). Used by mp_reply and every failure path. */
void mp_node_finish(mp_node *n, mp_msg *m, int status, const void *data,
                    size_t len);
/* The activation's first step after winning registration: load state, run
 * on_activate, go Valid or fail its queued messages. */
void mp_node_activate(mp_node *n, mp_actor *a);
/* Start deactivating a Valid, idle activation. */
void mp_node_deactivate(mp_node *n, mp_actor *a, mp_deactivate_reason reason);
/* The activation (Activating) cannot start: its queued messages fail with
 * MP_EACTIVATION and `why`, it is destroyed and unregistered. */
void mp_node_activation_failed(mp_node *n, mp_actor *a, const char *why);
/* A storage operation completed (state.c): a graceful shutdown waiting for
 * the last one finishes now. Returns true if the node was released. */
bool mp_node_sop_done(mp_node *n);
/* Count a persist latency (ns). */
void mp_node_note_persist(mp_node *n, uint64_t ns, int status);
/* A turn ended (the message was replied to). */
void mp_node_turn_ended(mp_node *n, mp_actor *a);

#endif
