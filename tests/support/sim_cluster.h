/*
 * sim_cluster: the one simulated-cluster harness of the unit tests.
 *
 * A test describes a cluster in sc_options (world seed and faults, member
 * count and addresses, the actor types every member registers, node
 * settings), creates the world with sc_create, boots the members with
 * sc_start and drives the world in simulated time with sc_run_for /
 * sc_run_until, or with the call helpers (sc_call + sc_wait, or
 * sc_call_wait) that run the world until replies arrive. Nodes can be
 * killed and restarted (sc_kill / sc_restart), shut down gracefully
 * (sc_shutdown), and client-only nodes added (sc_add_client). sc_free
 * fails the test if the world failed, and destroys everything: every live
 * node is freed by its process teardown, nothing leaks.
 *
 * Node i (0-based) is member i for i < members; clients get the indices
 * after the members, in the order they were added. Member i's address is
 * addr_net, i + 1 and addr_port ("10.0.0.1:4000", ...).
 *
 * Other processes (a database server, a hand-built node) are spawned with
 * mp_sim_spawn on sc_sim(c): the harness only owns the nodes it booted.
 *
 * The cmocka assertions used here fail the running test (these functions
 * are for tests only). One world per thread at a time (mp_sim_create).
 */
#ifndef MP_TEST_SIM_CLUSTER_H
#define MP_TEST_SIM_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/node.h"
#include "moonpool/sim.h"

#define SC_MAX_NODES 16 /* members and clients together */
#define SC_MAX_TYPES 8

typedef struct sc_cluster sc_cluster;

typedef struct sc_options {
    /* The world: seed, faults, log level (mp_sim_config_init's defaults;
     * sc_options_init sets log_level to MP_LOG_ERROR). */
    mp_sim_config sim;
    int members;             /* member nodes (0 .. SC_MAX_NODES) */
    const char *addr_net; /* member i's address: addr_net, i + 1, ":", addr_port */
    uint16_t addr_port;
    const char *ns;          /* cluster namespace of every node */
    /* Registered on every member, in order; NULL-terminated. */
    const mp_actor_type *types[SC_MAX_TYPES + 1];
    /* Node settings of members; 0 keeps mp_node_config_init's value. */
    uint64_t idle_timeout_ns;
    uint64_t call_timeout_ns;
    uint32_t max_message;
    size_t mailbox_warn_depth;
    /* sc_start runs the world this long after spawning the members. */
    uint64_t boot_ns;
    /* Optional: last word on node idx's config before mp_node_create
     * (members and clients; storage, separate member lists, ...). */
    void (*configure)(void *ud, int idx, mp_node_config *cfg);
    /* Optional: whether member idx registers type t (default: every type;
     * a subset is a rolling upgrade). */
    bool (*hosts)(void *ud, int idx, const mp_actor_type *t);
    /* Optional: runs before a node is freed by a kill or teardown. */
    void (*before_free)(void *ud, mp_node *node);
    void *ud;
} sc_options;

/* Defaults: seed 1, no members, "10.0.0.%d:4000", namespace "t", no types,
 * node defaults, boot 1 ms, log level MP_LOG_ERROR. */
void sc_options_init(sc_options *o);

/* Create the world (mp_sim_create) and the member addresses; boots
 * nothing yet. `o` is copied. */
sc_cluster *sc_create(const sc_options *o);

/* Spawn every member, run boot_ns, and assert that each one is up. */
void sc_start(sc_cluster *c);

/* Spawn a client-only node (no types, not a member) at `addr`, run 1 ms,
 * assert that it is up; returns its node index. */
int sc_add_client(sc_cluster *c, const char *addr);

/* Fail the test if the world failed; destroy the world (every node still
 * alive is freed by its teardown) and the cluster. */
void sc_free(sc_cluster *c);

/* ---- access -------------------------------------------------------------- */

mp_sim *sc_sim(sc_cluster *c);
int sc_members(sc_cluster *c);            /* member count */
const char **sc_member_addrs(sc_cluster *c); /* the members' addresses */
const char *sc_addr(sc_cluster *c, int i);
int sc_pid(sc_cluster *c, int i);         /* simulator process id */
mp_env *sc_env(sc_cluster *c, int i);     /* NULL when not running */
/* Node i, NULL when killed, shut down or not booted. */
mp_node *sc_node(sc_cluster *c, int i);

/* ---- running ------------------------------------------------------------- */

/* Run the world for `ns` of simulated time. */
void sc_run_for(sc_cluster *c, uint64_t ns);

/* Run until pred(ud) holds, at most `within_ns` of simulated time; true
 * iff it came to hold (mp_sim_run_while_not). */
bool sc_run_until(sc_cluster *c, bool (*pred)(void *ud), void *ud,
                  uint64_t within_ns);

/* Kill node i now / boot it again after delay_ns (mp_sim_kill/restart). */
int sc_kill(sc_cluster *c, int i);
int sc_restart(sc_cluster *c, int i, uint64_t delay_ns);

/* Graceful mp_node_shutdown of node i with `deadline_ns`; runs until the
 * node has freed itself, at most within_ns. True iff it did; sc_node(c, i)
 * is NULL afterwards. */
bool sc_shutdown(sc_cluster *c, int i, uint64_t deadline_ns, uint64_t within_ns);

/* Live activations on the running members (mp_node_foreach_activation);
 * *dups (if given) counts ids seen twice: two live activations of one id. */
int sc_live_activations(sc_cluster *c, int *dups);

/* ---- calls --------------------------------------------------------------- */

/* The outcome of one call: completions counted (must end at 1), status,
 * an 8-byte reply as `value`, the reply (or error message) as NUL-ended
 * text, and the simulated time of the completion. */
typedef struct sc_reply {
    int calls;
    int status;
    int64_t value;
    char text[512];
    size_t len;
    uint64_t at;
    mp_sim *sim;
} sc_reply;

/* mp_call_reply_fn recording into the sc_reply `ud` (set ud->sim first to
 * get `at`). */
void sc_on_reply(void *ud, int status, const void *data, size_t len);

/* mp_call from node `from` to type/key (asserts the reference is valid);
 * timeout_ns 0: the node's default. Returns mp_call's status. */
int sc_call(sc_cluster *c, int from, const char *type, const char *key,
            const char *method, const void *p, size_t len, uint64_t timeout_ns,
            sc_reply *o);

/* Run until all n replies arrived (asserted, within 120 s of simulated
 * time), and assert that each call completed exactly once. */
void sc_wait(sc_cluster *c, sc_reply *o, int n);
void sc_wait_within(sc_cluster *c, sc_reply *o, int n, uint64_t within_ns);

/* sc_call, asserted MP_OK, then sc_wait_within(within_ns). */
sc_reply sc_call_wait(sc_cluster *c, int from, const char *type, const char *key,
                      const char *method, const void *p, size_t len,
                      uint64_t timeout_ns, uint64_t within_ns);

#endif
