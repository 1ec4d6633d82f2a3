/*
 * Counters: the node's stats, the persist latency histogram, and their JSON
 * form (answered to "stats" requests, printed by moonpool stats).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/buggify.h"
#include "runtime/runtime.h"
#include "util/hist.h"

#include <jansson.h>

void mp__note_persist(mp_node *n, uint64_t ns, int status)
{
    n->stats.persists++;
    if (status < 0) n->stats.persist_errors++;
    mp_hist_record(&n->persist_hist, ns);
}

void mp_node_get_stats(mp_node *n, mp_node_stats *out)
{
    *out = n->stats;
    out->activations = mp_catalog_count(&n->catalog);
    out->replies_late = n->calls.late;
    out->timeouts = n->calls.timeouts;
    out->calls_ok = n->calls.outcomes[0];
    out->calls_failed_executed = n->calls.outcomes[1 + MP_CALL_EXECUTED];
    out->calls_not_executed = n->calls.outcomes[1 + MP_CALL_NOT_EXECUTED];
    out->calls_may_have_run = n->calls.outcomes[1 + MP_CALL_MAY_HAVE_RUN];
    out->pending_calls = mp_calls_pending(&n->calls);
    out->rid_origins = mp__rid_origins(n);
}

/* A percentile of the persist latency histogram in ms (util/hist.h: within
 * 0.8%), or -1 when nothing was persisted. */
static double persist_pct_ms(const mp_node *n, double q)
{
    return n->persist_hist.count ? mp_hist_quantile_ms(&n->persist_hist, q) : -1;
}

/* The node's view of the members: {"mode": "static"} or the table mode's
 * counters and members (docs/membership.md). */
static json_t *membership_json(const mp_node *n)
{
    json_t *m = json_object();
    if (!m) return NULL;
    if (!n->members) {
        json_object_set_new(m, "mode", json_string("static"));
        return m;
    }
    mp__membership_counters c;
    mp__members_counters(n, &c);
    uint64_t now = mp_env_now(n->env);
    json_object_set_new(m, "mode", json_string("table"));
    json_object_set_new(m, "serving", json_boolean(c.serving));
    json_object_set_new(m, "lease_left_ms",
                        json_integer(c.lease_end > now ? (json_int_t)((c.lease_end - now) / MP_NS_PER_MS) : 0));
    json_object_set_new(m, "view_changes", json_integer((json_int_t)c.view_changes));
    json_object_set_new(m, "members_taken_over", json_integer((json_int_t)c.members_taken_over));
    json_object_set_new(m, "lapses", json_integer((json_int_t)c.lapses));
    json_object_set_new(m, "suspicions", json_integer((json_int_t)c.suspicions));
    json_object_set_new(m, "declared_dead", json_integer((json_int_t)c.declared_dead));
    json_object_set_new(m, "table_reads", json_integer((json_int_t)c.table_reads));
    json_object_set_new(m, "table_writes", json_integer((json_int_t)c.table_writes));
    json_object_set_new(m, "table_conflicts", json_integer((json_int_t)c.table_conflicts));
    json_t *list = json_array();
    for (size_t i = 0; list && i < n->dir.n; i++) {
        uint32_t inc;
        bool active;
        mp__members_member(n, i, &inc, &active);
        json_t *e = json_object();
        if (!e) break;
        json_object_set_new(e, "addr", json_string(mp_dir_addr(&n->dir, i)));
        json_object_set_new(e, "incarnation", json_integer(inc));
        json_object_set_new(e, "live", json_boolean(mp_dir_is_live(&n->dir, i)));
        json_object_set_new(e, "active", json_boolean(active));
        json_array_append_new(list, e);
    }
    json_object_set_new(m, "members", list);
    return m;
}

char *mp_node_stats_json(mp_node *n, size_t *len)
{
    if (len) *len = 0;
    if (!n) return NULL;
    mp_node_stats st;
    mp_node_get_stats(n, &st);
    json_t *o = json_object();
    json_t *types = json_object();
    if (!o || !types) {
        json_decref(o);
        json_decref(types);
        return NULL;
    }
    int bad = 0;
#define SET_U(f) bad |= json_object_set_new(o, #f, json_integer((json_int_t)st.f))
    SET_U(activations);
    SET_U(activations_total);
    SET_U(deactivations_total);
    SET_U(calls_out);
    SET_U(calls_in);
    SET_U(replies_late);
    SET_U(timeouts);
    SET_U(forwards);
    SET_U(cache_updates);
    SET_U(errors_sent);
    SET_U(mailbox_depth_total);
    SET_U(mailbox_depth_max);
    SET_U(pending_calls);
    SET_U(dir_lookups);
    SET_U(placements);
    SET_U(state_loads);
    SET_U(state_load_errors);
    SET_U(persists);
    SET_U(persist_errors);
    SET_U(activation_failures);
    SET_U(mailbox_rejected);
    SET_U(rid_origins);
    SET_U(rid_duplicates);
    SET_U(rid_stale);
    SET_U(rid_refused);
    SET_U(calls_ok);
    SET_U(calls_failed_executed);
    SET_U(calls_not_executed);
    SET_U(calls_may_have_run);
#undef SET_U
    bad |= json_object_set_new(o, "addr", json_string(n->self_addr));
    bad |= json_object_set_new(o, "namespace", json_string(n->ns));
    bad |= json_object_set_new(o, "incarnation", json_integer(n->incarnation));
    bad |= json_object_set_new(o, "client_only", json_boolean(n->client_only));
    bad |= json_object_set_new(o, "members", json_integer((json_int_t)n->dir.n));
    for (size_t i = 0; i < n->type_count; i++) {
        json_int_t c = 0;
        mp_list_node *ln, *tmp;
        MP_LIST_FOREACH_SAFE(ln, tmp, &n->catalog.list)
        {
            mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
            if (a->type == n->types[i].type) c++;
        }
        bad |= json_object_set_new(types, n->types[i].type->name, json_integer(c));
    }
    bad |= json_object_set_new(o, "types", types);
    bad |= json_object_set_new(o, "membership", membership_json(n));
    /* The transport's protective limits: what outsiders tried. */
    if (n->transport) {
        mp_peer_stats tt;
        mp_transport_totals(n->transport, &tt);
        json_t *tr = json_object();
        if (!tr) {
            json_decref(o);
            return NULL;
        }
        bad |= json_object_set_new(tr, "peer_timeouts", json_integer((json_int_t)tt.peer_timeouts));
        bad |= json_object_set_new(tr, "slow_frames", json_integer((json_int_t)tt.slow_frames));
        bad |= json_object_set_new(tr, "output_limit_closes",
                                   json_integer((json_int_t)tt.output_limit_closes));
        bad |= json_object_set_new(tr, "handshakes_evicted",
                                   json_integer((json_int_t)tt.handshakes_evicted));
        bad |= json_object_set_new(tr, "decode_errors", json_integer((json_int_t)tt.decode_errors));
        bad |= json_object_set_new(tr, "dropped_frames", json_integer((json_int_t)tt.dropped_frames));
        bad |= json_object_set_new(tr, "auth_failures", json_integer((json_int_t)tt.auth_failures));
        bad |= json_object_set_new(tr, "connections_refused",
                                   json_integer((json_int_t)tt.connections_refused));
        bad |= json_object_set_new(o, "transport", tr);
    }
    double p50 = persist_pct_ms(n, 0.5), p99 = persist_pct_ms(n, 0.99);
    bad |= json_object_set_new(o, "persist_p50_ms", p50 < 0 ? json_null() : json_real(p50));
    bad |= json_object_set_new(o, "persist_p99_ms", p99 < 0 ? json_null() : json_real(p99));
    char *text = bad ? NULL : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (text && len) *len = strlen(text);
    return text;
}

void mp_node_foreach_activation(mp_node *n,
                                void (*fn)(void *ud, const mp_ref *ref),
                                void *ud)
{
    mp_list_node *ln, *tmp;
    MP_LIST_FOREACH_SAFE(ln, tmp, &n->catalog.list)
    {
        mp_actor *a = MP_CONTAINER_OF(ln, mp_actor, cat_link);
        if (a->state == MP_ACT_VALID || a->state == MP_ACT_ACTIVATING) {
            mp_ref ref;
            mp_actor_fill_ref(a, &ref);
            fn(ud, &ref);
        }
    }
}

static const uint64_t latency_bounds_ns[MP_NODE_LATENCY_BOUNDS] = {
    100 * MP_NS_PER_US, 250 * MP_NS_PER_US, 500 * MP_NS_PER_US,
    1 * MP_NS_PER_MS,   2500 * MP_NS_PER_US, 5 * MP_NS_PER_MS,
    10 * MP_NS_PER_MS,  25 * MP_NS_PER_MS,  50 * MP_NS_PER_MS,
    100 * MP_NS_PER_MS, 250 * MP_NS_PER_MS, 500 * MP_NS_PER_MS,
    1 * MP_NS_PER_SEC,  2500 * MP_NS_PER_MS, 5 * MP_NS_PER_SEC,
    10 * MP_NS_PER_SEC,
};

uint64_t mp_node_latency_bound_ns(size_t i)
{
    return i < MP_NODE_LATENCY_BOUNDS ? latency_bounds_ns[i] : 0;
}

static void latency_of(const mp_hist *h, mp_node_latency *out)
{
    if (!out) return;
    out->count = h->count;
    out->sum_ns = h->sum_ns;
    for (size_t i = 0; i < MP_NODE_LATENCY_BOUNDS; i++)
        out->le[i] = mp_hist_count_le(h, latency_bounds_ns[i]);
}

void mp_node_get_latency(mp_node *node, mp_node_latency *call, mp_node_latency *persist)
{
    if (!node) return;
    latency_of(&node->call_hist, call);
    latency_of(&node->persist_hist, persist);
}

size_t mp_node_member_info_at(mp_node *node, size_t i, mp_node_member_info *out)
{
    if (!node) return 0;
    if (out && i < node->dir.n) {
        out->addr = mp_dir_addr(&node->dir, i);
        mp__members_member(node, i, &out->incarnation, &out->active);
        out->live = mp_dir_is_live(&node->dir, i);
        mp_peer_stats ps;
        out->connected = node->transport &&
                         mp_transport_peer_stats(node->transport, out->addr, &ps) == 0 &&
                         ps.connected;
    }
    return node->dir.n;
}

bool mp_node_serving(mp_node *node) { return node && mp__members_serving(node); }
