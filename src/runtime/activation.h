/*
 * Activations, messages and turns (private to the runtime).
 *
 * An activation (struct mp_actor) is one live instance of an actor id on this
 * node. Its life is a guarded state machine:
 *
 *   Creating --(directory says we won)--> Activating --(on_activate ok)--> Valid
 *   Creating --(lost the race / registration failed)--> Invalid
 *   Activating --(on_activate failed)--> Invalid
 *   Valid --(idle, explicit, shutdown)--> Deactivating --(unregistered)--> Invalid
 *
 * Every transition goes through mp_actor_set_state, which checks legality with
 * MP_ALWAYS: in the simulator an illegal transition fails the seed.
 *
 * Messages (struct mp_msg) are the unit of everything that waits: a request
 * in a mailbox or in a directory-lookup pending list, the reply handle a
 * handler holds, and a local reply waiting in the node's run queue for
 * delivery. One struct carries a call from mp_call to the caller's callback
 * on the local path (no other allocation: they come from a free list), and
 * payloads of up to MP_MSG_INLINE bytes live inside it.
 *
 * Turns: the node's run queue holds work items (activations with something
 * to do, local replies to deliver), drained by one deferred callback. An
 * activation runs one message at a time: `current` is the message whose turn
 * is running, and the activation is not scheduled again until that message
 * is replied to (MP_ALWAYS "actor.one_turn_at_a_time").
 *
 * Thread: the node's loop thread.
 */
#ifndef MP_ACTOR_ACTIVATION_H
#define MP_ACTOR_ACTIVATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "moonpool/actor.h"
#include "moonpool/limits.h" /* MP_ADDR_MAX */
#include "moonpool/storage.h"
#include "util/list.h"

#define MP_MSG_INLINE 64 /* payload bytes stored inside the message */

typedef enum mp_act_state {
    MP_ACT_CREATING = 0,
    MP_ACT_ACTIVATING = 1,
    MP_ACT_VALID = 2,
    MP_ACT_DEACTIVATING = 3,
    MP_ACT_INVALID = 4
} mp_act_state;

const char *mp_act_state_name(mp_act_state s);

/* An item of the node's run queue. */
typedef enum mp_work_kind {
    MP_WORK_ACTOR = 1, /* an activation with a message, activation or
                          deactivation step to run */
    MP_WORK_REPLY = 2  /* a local reply to hand to the caller's callback */
} mp_work_kind;

typedef struct mp_work {
    mp_list_node link;
    uint8_t kind; /* mp_work_kind */
} mp_work;

/* Where a message's reply goes. */
typedef enum mp_origin {
    MP_ORIGIN_NONE = 0,   /* one-way: nowhere */
    MP_ORIGIN_LOCAL = 1,  /* a call record of this node (corr) */
    MP_ORIGIN_REMOTE = 2  /* a peer node (peer, corr) */
} mp_origin;

struct mp_msg {
    mp_work work;      /* run queue (local reply delivery) */
    mp_list_node link; /* mailbox or pending-lookup list */
    mp_node *node;
    mp_actor *actor; /* the activation running it (during its turn) */
    uint8_t origin;  /* mp_origin */
    uint8_t forward_count;
    uint16_t flags;       /* MP_FLAG_* of the request as received */
    bool remote_in;       /* arrived from a peer (a resend is a forward) */
    bool replied;
    bool in_handler;      /* its handler is on the stack: keep the payload */
    bool release_pending; /* released once the handler returns */
    bool ghost;           /* a buggify duplicate (send.c): its reply is dropped */
    uint64_t corr;        /* caller's correlation id */
    uint64_t deadline;    /* absolute ns; past it the request is dropped */
    /* While this message's turn runs: the latest call the turn made
     * (correlation id, 0: none) and its target's mp_ref.hash, for call-cycle
     * detection (route.c, mp__deliver_local). Reset by mp_msg_alloc. */
    uint64_t await_corr;
    uint64_t await_hash;
    uint8_t key_len; /* idempotency key (idem.c); 0: none */
    /* End-to-end request id (rid.c): the origin node's token and sequence,
     * and the origin's low mark when it sent. 0: none (one-way messages). */
    uint64_t rid_origin, rid_seq, rid_low;
    char peer[MP_ADDR_MAX + 1];
    mp_ref target;
    const mp_method_def *mdef; /* resolved at delivery */
    uint16_t sender_len;
    uint8_t method_len;
    char sender[MP_ACTOR_ID_MAX + 1];
    char method[MP_METHOD_MAX + 1];
    char key[MP_IDEMPOTENCY_KEY_MAX];
    /* request payload */
    uint8_t *data;
    uint32_t len, cap;
    /* reply */
    int status;
    uint8_t *rdata;
    uint32_t rlen, rcap;
    /* a send postponed by buggify (send.c): what to do when the timer fires */
    mp_timer_id delay_timer;
    uint8_t delay_kind;
    uint16_t delay_member, delay_flags;
    uint8_t ibuf[MP_MSG_INLINE];
    uint8_t rbuf[MP_MSG_INLINE];
    mp_msg *next_free;
};

/* One allocation per activation: this header, then the id bytes (id[],
 * NUL-terminated), then the instance (16-byte aligned; none when the type's
 * instance_size is 0). Why this shape: an idle activation is mostly
 * bookkeeping, and a million of them must fit in ~256 bytes each. The id is
 * stored once, here: the catalog's map reads its key from the activation
 * (mp_map_obj), and the directory entry of an activation whose id this node
 * owns is the dir_registered flag (directory.h, local entries), not a copy.
 * A full mp_ref (280 bytes, mostly slack) is built on demand:
 * mp_actor_fill_ref on the stack for the runtime, and a heap copy kept by
 * the node for mp_actor_ref, made the first time a handler asks. Counters
 * are as narrow as their bounds allow; small fields are packed at the end. */
struct mp_actor {
    mp_work work;           /* run queue */
    mp_list_node cat_link;  /* catalog, creation order */
    mp_node *node;
    const mp_actor_type *type;
    uint64_t act_id; /* unique per (node, incarnation) */
    mp_list_node mailbox;
    mp_msg *current; /* message whose turn runs, NULL when idle */
    uint64_t last_used; /* ns, end of the last turn */
    mp_timer_id timer; /* registration delay or retry */
    void *instance;    /* inside this allocation, or NULL (size 0) */
    /* persisted state (state.c) */
    void *state_value;   /* codec value; NULL: none */
    uint64_t etag;       /* of the last load/save; 0: no record */
    uint64_t hash;       /* mp_ref.hash of the id */
    uint32_t depth;      /* mailbox length */
    uint16_t len;        /* id length (the catalog's key length) */
    uint16_t register_attempts;
    uint16_t busy_retries; /* registrations refused by a recovering owner */
    uint8_t type_off, type_len; /* type part inside id (key: the rest) */
    uint8_t state;              /* mp_act_state */
    uint8_t deact_reason;       /* mp_deactivate_reason */
    bool activated;  /* on_activate succeeded: on_deactivate is owed */
    bool deactivate_requested;
    bool depth_warned;
    bool dir_registered; /* this node's directory names it (local entry) */
    bool has_pub_ref;    /* the node holds an mp_ref for it (mp_actor_ref) */
    bool state_loaded;   /* load done (or not needed): on_activate may run */
    bool loading;        /* load in flight */
    bool persisting;     /* save (or reload + save) in flight */
    bool etag_unsure;    /* last save failed ambiguously: reload first */
    struct mp_idem *idem; /* idempotency keys it ran (idem.c); NULL: none */
    char id[];           /* len bytes + NUL */
};

/* A's id as a full reference (for the functions that take one). */
static inline void mp_actor_fill_ref(const mp_actor *a, mp_ref *out)
{
    memcpy(out->id, a->id, (size_t)a->len + 1);
    out->len = a->len;
    out->type_off = a->type_off;
    out->type_len = a->type_len;
    out->key_off = (uint16_t)(a->type_off + a->type_len + 1);
    out->key_len = (uint16_t)(a->len - out->key_off);
    out->hash = a->hash;
}

/* ---- activation memory ---- */

/* Where activations live: per-node chunks carved into 16-byte size classes
 * (up to 512 bytes; larger activations use calloc), with a free list per
 * class. Why not malloc: creating a million activations was 45% page faults
 * (each 4 KiB of heap faulted on first touch, ~10 us under virtualisation),
 * and malloc's heap cannot ask for huge pages. Chunks double from 64 KiB to
 * 4 MiB, and 4 MiB chunks are huge-page backed where the OS allows
 * (mp_util_calloc_table): 2 faults per 4 MiB instead of 1024. Freed blocks
 * are reused by their class and all chunks go with the node. Under
 * sanitizers (MP_SANITIZED) every block is its own calloc, so ASan still
 * sees each activation's bounds and lifetime. */
#define MP_ACT_MEM_CLASSES 32
typedef struct mp_act_mem {
    void *free[MP_ACT_MEM_CLASSES]; /* class c: blocks of (c + 1) * 16 B */
    unsigned char *bump, *end;      /* unused rest of the newest chunk */
    void *chunks;                   /* all chunks, linked by their first word */
    size_t next_chunk;              /* size of the next chunk, 0: the first */
} mp_act_mem;

/* Free every chunk (the node's activations are all gone). */
void mp_act_mem_release(mp_act_mem *m);

/* ---- messages ---- */

/* A message from the node's free list, zeroed where it matters. NULL on
 * out-of-memory. */
mp_msg *mp_msg_alloc(mp_node *node);
/* Return a message to the free list (its buffers are released if large). */
void mp_msg_release(mp_node *node, mp_msg *m);
/* Copy the request payload in. MP_ENOMEM. */
int mp_msg_set_payload(mp_msg *m, const void *data, size_t len);
/* Copy the reply (status, payload or error text) in. MP_ENOMEM. */
int mp_msg_set_reply(mp_msg *m, int status, const void *data, size_t len);

/* ---- activations ---- */

/* A new activation in state Creating, instance zeroed. NULL on OOM. */
mp_actor *mp_actor_new(mp_node *node, const mp_actor_type *type,
                       const mp_ref *ref, uint64_t act_id);
/* Free memory (mailbox must be empty, not in the run queue). */
void mp_actor_delete(mp_actor *a);
/* Guarded transition; returns whether it was legal (illegal ones are
 * reported through MP_ALWAYS and not applied). */
bool mp_actor_set_state(mp_actor *a, mp_act_state to);
/* Append to the mailbox (depth accounting, depth hook) and schedule when
 * runnable. */
void mp_actor_enqueue(mp_actor *a, mp_msg *m);
/* Put the activation in the run queue if it has something to do now. */
void mp_actor_schedule(mp_actor *a);
/* Pop the first queued message (depth accounting), or NULL. */
mp_msg *mp_actor_pop(mp_actor *a);
/* Run one step: activation, deactivation request or one message's turn.
 * Called by the node's drain only. */
void mp_actor_step(mp_actor *a);
/* ---- persisted state (state.c) ---- */

/* Storage operation in flight. Found again by (ref, act_id), never by an
 * activation pointer, so an activation gone meanwhile is simply not
 * found. Owned by the node's list; freed at completion or with the node.
 * The provider gets a token, not the pointer (state.c says why). */
typedef struct mp_sop {
    mp_list_node link; /* node->sops */
    mp_node *node;
    uint64_t token;    /* the provider's ud: looked up, never dereferenced */
    mp_ref ref;
    uint64_t act_id;
    uint8_t kind; /* MP_SOP_* */
    void (*cb)(void *ud, int status);
    void *ud;
    void *data;      /* encoded value of a save (malloc'd), NULL: clear */
    size_t len;
    bool clear;
    uint64_t started;
    char key[MP_STORAGE_KEY_MAX + 1];
    size_t key_len;
} mp_sop;

enum { MP_SOP_LOAD = 1, MP_SOP_RELOAD = 2, MP_SOP_SAVE = 3 };

/* Start loading a's state (a is Activating). Returns 0 (the activation
 * continues when it completes) or an error (the caller fails the
 * activation). A type without state, or a node without storage, is marked
 * loaded at once. */
int mp_state_load_start(mp_node *node, mp_actor *a);
/* Free a's state value (at delete). */
void mp_state_drop(mp_actor *a);
/* Free every storage op record of a node being released. */
void mp_state_node_free(mp_node *node);

/* Resolve a method by name; NULL if the type has none. */
const mp_method_def *mp_actor_type_method(const mp_actor_type *t,
                                          const char *name, size_t len);

#endif
