/*
 * A moonpool node: one runtime instance on one env (one loop, one thread).
 *
 * A node hosts activations of the actor types registered on it, owns one
 * partition of the cluster's directory, and talks to the other members of a
 * static member list through the transport. The same node code runs on the
 * real env (a process per node) and inside the simulator (many nodes in one
 * process).
 *
 * Life: mp_node_create → mp_node_register_type (each type, before start) →
 * mp_node_start → ... → mp_node_shutdown (graceful: deactivates everything,
 * closes connections) or, in a simulated kill, mp_node_free_now.
 *
 * Thread: the env's loop thread only.
 */
#ifndef MOONPOOL_NODE_H
#define MOONPOOL_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "moonpool/actor.h"
#include "moonpool/env.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MP_MAX_MEMBERS 256

typedef struct mp_node_config {
    const char *cluster_namespace; /* [A-Za-z0-9_.-]; copied */
    const char *self_addr;         /* "host:port"; must be in members */
    const char *const *members;    /* static member list; copied */
    size_t member_count;           /* 1 .. MP_MAX_MEMBERS */
    uint32_t incarnation;          /* grows on every restart; >= 1 */
    uint64_t call_timeout_ns;      /* default 30 s */
    uint64_t idle_timeout_ns;      /* default 10 min */
    uint32_t max_message;          /* bytes per frame; default 1 MiB */
    uint32_t max_pending_calls;    /* default 1,000,000: MP_EQUEUEFULL past */
    size_t mailbox_warn_depth;     /* 0: no hook */
    /* Called when an activation's mailbox depth reaches mailbox_warn_depth
     * (once per crossing). May be NULL. */
    void (*on_mailbox_depth)(void *ud, const mp_ref *actor, size_t depth);
    void *hook_ud;
    struct mp_storage *storage;    /* storage.h; NULL: no persistence */
} mp_node_config;

/* Fill the defaults; the caller then sets namespace, addresses, members. */
void mp_node_config_init(mp_node_config *cfg);

/* Create a node on env. Validates the config: MP_EINVAL with a reason logged
 * (self not in members, duplicate member, bad namespace or address,
 * incarnation 0, max_message out of range). MP_ENOMEM. Nothing is listened
 * on or sent before mp_node_start. Strings are copied. */
int mp_node_create(mp_env *env, const mp_node_config *cfg, mp_node **out);

/* Register an actor type (before mp_node_start). The type struct must
 * outlive the node; nothing is copied. MP_EINVAL on a bad or duplicate name. */
int mp_node_register_type(mp_node *node, const mp_actor_type *type);

/* Listen and join the cluster (a one-member cluster opens no transport).
 * Starts load reports to the other members (every 500 ms). A node restarted
 * with incarnation > 1 answers directory lookups for unknown ids with
 * MP_EBUSY for 2 s, so the survivors re-register the activations its
 * partition owned before anyone places a second one (callers retry).
 * Returns 0, MP_EINVAL (already started), or a transport error. */
int mp_node_start(mp_node *node);

/* Graceful shutdown: stop taking new calls (MP_ECLOSED at once), deactivate
 * every activation (reason SHUTDOWN) as soon as its current turn ends,
 * unregistering it from the directory; requests still queued or arriving
 * fail (MP_ECLOSED for this node's callers, MP_EUNAVAIL for remote ones). At deadline_ns (or when no activation is left) the
 * hooks of activations still in a turn run anyway (their handlers must not
 * reply after on_deactivate), every outstanding call fails with MP_ECLOSED,
 * connections are flushed and closed; then cb(ud) runs (never inside this
 * call) and the node's memory is released. cb may be NULL. */
void mp_node_shutdown(mp_node *node, uint64_t deadline_ns,
                      void (*cb)(void *ud), void *ud);

/* Release everything now, without callbacks and without running
 * deactivation hooks (instance memory is freed; what an instance owns
 * leaks): for a simulated process kill only, where the env runs no callback
 * again. */
void mp_node_free_now(mp_node *node);

/* Accessors; the strings are owned by the node. */
mp_env *mp_node_env(mp_node *node);
const char *mp_node_addr(const mp_node *node);
const char *mp_node_namespace(const mp_node *node);

typedef struct mp_node_stats {
    uint64_t activations;        /* live now */
    uint64_t activations_total;  /* ever created */
    uint64_t deactivations_total;
    uint64_t calls_out, calls_in, replies_late, timeouts;
    uint64_t forwards, cache_updates, errors_sent;
    uint64_t mailbox_depth_total; /* queued messages across activations */
    uint64_t mailbox_depth_max;
    uint64_t pending_calls;
    uint64_t dir_lookups;  /* directory lookups started (one per id burst) */
    uint64_t placements;   /* new activations placed by this node */
} mp_node_stats;

/* A snapshot of the counters. activations counts activations in the
 * catalog (any state). */
void mp_node_get_stats(mp_node *node, mp_node_stats *out);

/* Visit every live activation of this node, i.e. in state Activating or
 * Valid (deterministic order: creation). fn must not call into the node.
 * For tests and the simulator's single-activation check. */
void mp_node_foreach_activation(mp_node *node,
                                void (*fn)(void *ud, const mp_ref *ref),
                                void *ud);

#ifdef __cplusplus
}
#endif
#endif
