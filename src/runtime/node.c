/*
 * A node's life: configuration, creation, registration of actor types,
 * start; accessors.
 *
 * The runtime is one layer (runtime.h says why): this file assembles it.
 * Other files: run queue and message outcomes (runq.c), frames out
 * (send.c), routing and lookups (route.c), registration (register.c),
 * activation life (lifecycle.c, activation.c, state.c, catalog.c), the
 * directory owner's side (dir_owner.c), frames in (recv.c), lost and
 * restarted peers (peers.c), client-only nodes (client.c), the call API
 * (call.c), idle collection (idle.c), shutdown and release (shutdown.c),
 * counters (stats.c), the system-message codec (sysmsg.c).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "runtime/runtime.h"
#include "util/hash.h"

const mp_actor_type *mp__find_type(const mp_node *n, const char *name,
                                      size_t len)
{
    for (size_t i = 0; i < n->type_count; i++)
        if (n->types[i].name_len == len &&
            memcmp(n->types[i].type->name, name, len) == 0)
            return n->types[i].type;
    return NULL;
}

const mp_actor_type *mp__type_of_ref(const mp_node *n, const mp_ref *ref)
{
    return mp__find_type(n, ref->id + ref->type_off, ref->type_len);
}

bool mp__ns_matches(const mp_node *n, const mp_ref *ref)
{
    size_t ns_len = (size_t)ref->type_off - 2;
    return strlen(n->ns) == ns_len && memcmp(n->ns, ref->id, ns_len) == 0;
}

/* The directory's local-entry hook (directory.h): the registration flag of
 * this node's activation of an id. */
static bool *dir_local(void *ud, uint64_t ref_hash, const char *id, size_t len,
                       uint64_t *act_id)
{
    mp_node *n = ud;
    mp_actor *a = mp_catalog_get_h(&n->catalog, ref_hash, id, len);
    if (!a) return NULL;
    *act_id = a->act_id;
    return &a->dir_registered;
}

void mp_node_config_init(mp_node_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->incarnation = 1;
    cfg->call_timeout_ns = MP_DEFAULT_CALL_TIMEOUT_NS;
    cfg->idle_timeout_ns = MP_DEFAULT_IDLE_TIMEOUT_NS;
    cfg->max_message = MP_DEFAULT_MAX_MESSAGE_BYTES;
    cfg->max_pending_calls = MP_DEFAULT_MAX_PENDING_CALLS;
    cfg->mailbox_warn_depth = MP_DEFAULT_MAILBOX_WARN_DEPTH;
    cfg->max_mailbox = MP_DEFAULT_MAX_MAILBOX;
}

static bool ident_ok(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static bool addr_ok(const char *a)
{
    char host[MP_ADDR_MAX + 1];
    uint16_t port;
    return a && strnlen(a, MP_ADDR_MAX + 1) <= MP_ADDR_MAX &&
           mp_addr_parse(a, host, sizeof host, &port) == MP_OK;
}

static int bad_config(mp_env *env, const char *why)
{
    mp_env_log(env, MP_LOG_ERROR, "node config: %s", why);
    return MP_EINVAL;
}

int mp_node_create(mp_env *env, const mp_node_config *cfg, mp_node **out)
{
    if (!env || !cfg || !out) return MP_EINVAL;
    *out = NULL;
    if (!cfg->cluster_namespace || !ident_ok(cfg->cluster_namespace, MP_ACTOR_PART_MAX))
        return bad_config(env, "bad namespace ([A-Za-z0-9_.-], 1..64 bytes)");
    if (!addr_ok(cfg->self_addr)) return bad_config(env, "bad self address");
    if (!cfg->members || cfg->member_count < 1 || cfg->member_count > MP_MAX_MEMBERS)
        return bad_config(env, "member list must hold 1..256 addresses");
    size_t self = SIZE_MAX;
    for (size_t i = 0; i < cfg->member_count; i++) {
        if (!addr_ok(cfg->members[i])) return bad_config(env, "bad member address");
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->members[i], cfg->members[j]) == 0)
                return bad_config(env, "duplicate member");
        if (strcmp(cfg->members[i], cfg->self_addr) == 0) self = i;
    }
    if (cfg->client_only && self != SIZE_MAX)
        return bad_config(env, "a client-only node must not be in members");
    if (!cfg->client_only && self == SIZE_MAX)
        return bad_config(env, "self address not in members");
    if (cfg->incarnation < 1) return bad_config(env, "incarnation must be >= 1");
    if (cfg->membership && cfg->client_only)
        return bad_config(env, "a client-only node takes no part in membership");
    if (cfg->membership && !cfg->storage)
        return bad_config(env, "membership needs the storage shared by every member");
    /* The lease: half the silence that declares a peer lost, so a member
     * that died is taken over about when its connections time out. */
    uint64_t peer_timeout = cfg->peer_timeout_ns ? cfg->peer_timeout_ns : MP_DEFAULT_PEER_TIMEOUT_NS;
    if (peer_timeout == MP_NODE_NO_PEER_TIMEOUT) peer_timeout = MP_DEFAULT_PEER_TIMEOUT_NS;
    uint64_t lease = cfg->lease_ns ? cfg->lease_ns : peer_timeout / 2;
    if (cfg->membership && lease < 10 * MP_NS_PER_MS)
        return bad_config(env, "membership lease must be at least 10 ms");
    uint64_t margin = cfg->lease_margin_ns ? cfg->lease_margin_ns : lease / 5;
    uint64_t poll = cfg->membership_poll_ns ? cfg->membership_poll_ns : lease / 5;
    if (cfg->membership && (margin > lease || poll > lease || poll == 0))
        return bad_config(env, "membership margin and poll must be at most the lease");
    if (cfg->max_message && (cfg->max_message < MP_FRAME_MIN_SIZE + 64 ||
                             cfg->max_message > MP_FRAME_MAX_LIMIT))
        return bad_config(env, "max_message out of range");
    /* The transport's own rule, checked now so that the reason is logged
     * (0 is its default, and the "never" values are equal, see below). */
    const char *liveness = mp_transport_liveness_error(cfg->heartbeat_ns, cfg->peer_timeout_ns);
    if (liveness) return bad_config(env, liveness);

    mp_node *n = calloc(1, sizeof *n);
    if (!n) return MP_ENOMEM;
    n->env = env;
    snprintf(n->ns, sizeof n->ns, "%s", cfg->cluster_namespace);
    snprintf(n->self_addr, sizeof n->self_addr, "%s", cfg->self_addr);
    n->incarnation = cfg->incarnation;
    n->call_timeout_ns = cfg->call_timeout_ns ? cfg->call_timeout_ns : MP_DEFAULT_CALL_TIMEOUT_NS;
    n->idle_timeout_ns = cfg->idle_timeout_ns ? cfg->idle_timeout_ns : MP_DEFAULT_IDLE_TIMEOUT_NS;
    n->max_message = cfg->max_message ? cfg->max_message : MP_DEFAULT_MAX_MESSAGE_BYTES;
    n->heartbeat_ns = cfg->heartbeat_ns;
    n->peer_timeout_ns = cfg->peer_timeout_ns;
    n->frame_timeout_ns = cfg->frame_timeout_ns;
    n->max_pending_calls = cfg->max_pending_calls;
    n->mailbox_warn_depth = cfg->mailbox_warn_depth;
    n->max_mailbox = cfg->max_mailbox ? cfg->max_mailbox : MP_DEFAULT_MAX_MAILBOX;
    n->on_mailbox_depth = cfg->on_mailbox_depth;
    n->hook_ud = cfg->hook_ud;
    n->storage = cfg->storage;
    n->client_only = cfg->client_only;
    n->membership_cfg.enabled = cfg->membership;
    n->membership_cfg.lease_ns = lease;
    n->membership_cfg.margin_ns = margin;
    n->membership_cfg.poll_ns = poll;
    n->membership_cfg.votes = cfg->membership_votes;
    n->on_declared_dead = cfg->on_declared_dead;
    n->last_from_idx = -1; /* with last_from "": an empty address is no member */
    mp_list_init(&n->ccalls);
    mp_list_init(&n->ccall_order);
    mp_list_init(&n->sops);
    mp_list_init(&n->runq);
    mp_list_init(&n->pending_list);
    mp_list_init(&n->ctx_list);
    mp_list_init(&n->delayed);
    mp_hist_init(&n->persist_hist);
    mp_hist_init(&n->call_hist);
    uint64_t seed = mp_env_random(env);
    if (mp_calls_init(&n->calls, env, n->max_pending_calls) != MP_OK ||
        mp_catalog_init(&n->catalog, seed) != MP_OK ||
        mp_map_str_init_seeded(&n->pending, 0, seed ^ 7) != MP_OK ||
        mp_map_u64_init(&n->pub_refs, 0) != MP_OK ||
        mp_map_u64_init(&n->rid_map, 0) != MP_OK ||
        mp_dir_init(&n->dir, cfg->members, cfg->member_count,
                    self == SIZE_MAX ? MP_DIR_NO_SELF : self, seed ^ 9) != MP_OK) {
        mp_calls_free(&n->calls, false, 0);
        mp_catalog_free(&n->catalog);
        mp_map_str_free(&n->pending);
        mp_map_u64_free(&n->pub_refs);
        mp_map_u64_free(&n->rid_map);
        mp_dir_free(&n->dir);
        free(n);
        return MP_ENOMEM;
    }
    mp_calls_set_base(&n->calls, (uint64_t)n->incarnation << 40);
    /* The origin token of this life (rid.c): address and incarnation name
     * it; the random draw keeps two client-only processes that share a
     * name apart. Never 0 (0 means "no id" on the wire). */
    n->rid_token = mp_hash64(n->self_addr, strlen(n->self_addr),
                             mp_hash_u64(((uint64_t)n->incarnation << 32) ^ mp_env_random(env)));
    if (n->rid_token == 0) n->rid_token = 1;
    mp_dir_set_local(&n->dir, dir_local, n, n->incarnation);
    n->calls.latency = &n->call_hist;
    *out = n;
    return MP_OK;
}

int mp_node_register_type(mp_node *n, const mp_actor_type *t)
{
    if (!n || !t || !t->name || n->started) return MP_EINVAL;
    if (!ident_ok(t->name, MP_ACTOR_PART_MAX)) return MP_EINVAL;
    if (t->method_count && !t->methods) return MP_EINVAL;
    for (size_t i = 0; i < t->method_count; i++) {
        const char *mn = t->methods[i].name;
        if (!mn || !t->methods[i].fn) return MP_EINVAL;
        size_t l = strnlen(mn, MP_METHOD_MAX + 1);
        if (l == 0 || l > MP_METHOD_MAX) return MP_EINVAL;
    }
    if ((unsigned)t->placement > MP_PLACE_HASH) return MP_EINVAL;
    size_t len = strlen(t->name);
    if (mp__find_type(n, t->name, len)) return MP_EINVAL;
    if (n->type_count == n->type_cap) {
        size_t cap = n->type_cap ? n->type_cap * 2 : 8;
        mp_type_slot *p = realloc(n->types, cap * sizeof *p);
        if (!p) return MP_ENOMEM;
        n->types = p;
        n->type_cap = cap;
    }
    n->types[n->type_count].type = t;
    n->types[n->type_count].name_len = len;
    n->type_count++;
    return MP_OK;
}

/* The node dials members only: a client-only node or a stranger that
 * claimed an address is answered on its own connection, never called
 * back (a forged claim cannot make us redial an address). */
static bool may_dial(void *ud, const char *peer)
{
    mp_node *n = ud;
    return mp_dir_member(&n->dir, peer, strlen(peer)) >= 0;
}

int mp_node_start(mp_node *n)
{
    if (!n || n->started || n->closing) return MP_EINVAL;
    /* Idle sweep period: a quarter of the shortest idle timeout, so an idle
     * activation goes within 125% of its timeout. */
    uint64_t min_idle = n->idle_timeout_ns;
    for (size_t i = 0; i < n->type_count; i++)
        if (n->types[i].type->idle_timeout_ns &&
            n->types[i].type->idle_timeout_ns < min_idle)
            min_idle = n->types[i].type->idle_timeout_ns;
    n->sweep_interval_ns = min_idle / 4 ? min_idle / 4 : 1;
    /* Every node listens, a one-member cluster too: client-only nodes
     * (moonpool call, stats) reach the cluster through any member. */
    {
        mp_transport_config tc;
        mp_transport_config_init(&tc);
        tc.cluster_namespace = n->ns;
        tc.self_addr = n->self_addr;
        tc.incarnation = n->incarnation;
        tc.max_frame = n->max_message;
        _Static_assert(MP_NODE_NO_PEER_TIMEOUT == MP_TRANSPORT_NO_PEER_TIMEOUT,
                       "the node passes peer_timeout_ns through unchanged");
        tc.heartbeat_ns = n->heartbeat_ns;       /* 0: the transport's default */
        tc.peer_timeout_ns = n->peer_timeout_ns; /* 0: the transport's default */
        tc.frame_timeout_ns = n->frame_timeout_ns; /* 0: the transport's default */
        static const mp_transport_callbacks cbs = {mp__on_frame, mp__on_peer_restart,
                                                   mp__on_peer_down, may_dial};
        int rc = mp_transport_create(n->env, &tc, &cbs, n, &n->transport);
        if (rc < 0) return rc;
        /* Port 0 (real mode): announce what the OS bound. */
        snprintf(n->self_addr, sizeof n->self_addr, "%s",
                 mp_transport_self_addr(n->transport));
        if (!n->client_only && (n->dir.n > 1 || n->membership_cfg.enabled))
            n->load_timer = mp_env_timer_start(n->env, MP_LOAD_INTERVAL_NS,
                                               mp__load_timer, n);
    }
    if (n->membership_cfg.enabled) {
        /* No partition is ours before the first view of the table: unknown
         * ids are "busy" until then (members.c ends it). */
        n->recover_until = UINT64_MAX;
        int rc = mp__members_start(n);
        if (rc < 0) return rc;
    } else if (n->incarnation > 1 && n->dir.n > 1 && !n->client_only) {
        n->rereg_count = calloc(n->dir.n, sizeof *n->rereg_count);
        n->rereg_done = calloc(n->dir.n, sizeof *n->rereg_done);
        /* Without the counters recovery simply lasts its full time. */
        n->recover_until = mp_env_now(n->env) + MP_DIR_RECOVERY_NS;
    }
    n->started = true;
    return MP_OK;
}
mp_env *mp_node_env(mp_node *n) { return n->env; }
const char *mp_node_addr(const mp_node *n) { return n->self_addr; }
const char *mp_node_namespace(const mp_node *n) { return n->ns; }
