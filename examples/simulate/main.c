/*
 * simulate: your own actor type under the simulator (README, "Simulating your own actors").
 *
 * Counter keeps {"n": total, "ops": [every op id it applied]} in storage and
 * answers an "add" only once that is stored. The workload adds from three
 * clients while members are killed, paused and restarted and the network
 * and database fail; after the heal it reads every counter back and checks
 * each execution against what its caller was told:
 *   - an op is applied at most once (the actor never deduplicates: a second
 *     execution would show as a repeated id);
 *   - an add answered OK ("executed") is stored; one that failed with a
 *     "not executed" status is not; "may have executed" may go either way;
 *   - n is the sum of the applied ops' amounts.
 * Run: ./simulate --seeds 1..200   (a failing seed prints its replay line)
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "moonpool/sim_cluster.h"
#include "moonpool/state.h"

#define COUNTERS 4
#define MAX_OPS 4096
static int amount(int op) { return 1 + op % 7; }

static void stored(void *ud, int status)
{
    if (status == 0) mp_reply(ud, "ok", 2);
    else mp_reply_error(ud, status, "not stored"); /* may or may not have landed */
}
static void add(mp_actor *self, void *inst, mp_msg *msg, const void *p, size_t len)
{
    (void)inst;
    char buf[16];
    snprintf(buf, sizeof buf, "%.*s", (int)(len < 15 ? len : 15), (const char *)p);
    json_t *s = mp_state_get(self);
    if (!s) mp_state_set(self, s = json_pack("{s:i,s:[]}", "n", 0, "ops"));
    int op = atoi(buf);
    json_object_set_new(s, "n", json_integer(json_integer_value(json_object_get(s, "n")) + amount(op)));
    json_array_append_new(json_object_get(s, "ops"), json_integer(op));
    int rc = mp_state_persist(self, stored, msg);
    if (rc != 0) stored(msg, rc);
    if (rc != 0) mp_actor_deactivate(self); /* memory differs from storage: reload */
}
static void get(mp_actor *self, void *inst, mp_msg *msg, const void *p, size_t len)
{
    (void)inst, (void)p, (void)len;
    char *text = json_dumps(mp_state_get(self), JSON_COMPACT | JSON_ENCODE_ANY);
    mp_reply(msg, text ? text : "null", text ? strlen(text) : 4);
    free(text);
}
static const mp_method_def methods[] = {{"add", add}, {"get", get}};
static const mp_state_type json_state = {NULL};
static const mp_actor_type counter = {.name = "Counter", .methods = methods, .method_count = 2,
                                      .state = &json_state};

typedef struct wl wl;
typedef struct op { int key, status; } op;      /* what its caller was told */
typedef struct rd { wl *w; int k; } rd;         /* a final read */
struct wl { int next; op ops[MAX_OPS]; int seen[MAX_OPS]; rd reads[COUNTERS]; };

static int start(mp_sim_cluster *c, void **ud) { (void)c; return (*ud = calloc(1, sizeof(wl))) ? 0 : MP_ENOMEM; }
static void added(mp_sim_cluster *c, void *ud, int status, const void *d, size_t n)
{
    (void)c, (void)d, (void)n;
    ((op *)ud)->status = status;
}
static void tick(mp_sim_cluster *c, int client, void *ud)
{
    wl *w = ud;
    if (w->next == MAX_OPS) return;
    op *o = &w->ops[w->next];
    char key[8], p[16];
    snprintf(key, sizeof key, "c%d", o->key = (int)mp_sim_cluster_random_below(c, COUNTERS));
    int len = snprintf(p, sizeof p, "%d", w->next);
    if (mp_sim_cluster_call(c, client, "Counter", key, "add", p, (size_t)len, added, o) == 0) w->next++;
}
static void read_back(mp_sim_cluster *c, void *ud, int status, const void *d, size_t n)
{
    wl *w = ((rd *)ud)->w;
    int k = ((rd *)ud)->k;
    json_t *s = status == 0 ? json_loadb(d, n, JSON_DECODE_ANY, NULL) : NULL;
    json_t *ops = json_object_get(s, "ops"), *v;
    size_t i;
    long long sum = 0;
    if (status != 0) mp_sim_cluster_fail(c, "c%d: final read failed: %s", k, mp_status_name(status));
    json_array_foreach(ops, i, v) {
        int id = (int)json_integer_value(v);
        if (id < 0 || id >= w->next || w->ops[id].key != k)
            mp_sim_cluster_fail(c, "c%d: applied op %d it was never sent", k, id);
        else if (w->seen[id]++)
            mp_sim_cluster_fail(c, "c%d: op %d executed twice", k, id);
        else sum += amount(id);
    }
    if (status == 0 && json_integer_value(json_object_get(s, "n")) != sum)
        mp_sim_cluster_fail(c, "c%d: n=%lld but its ops sum to %lld", k,
                            (long long)json_integer_value(json_object_get(s, "n")), sum);
    json_decref(s);
}
static void heal(mp_sim_cluster *c, void *ud)
{
    wl *w = ud;
    for (int k = 0; k < COUNTERS; k++) {
        char key[8];
        snprintf(key, sizeof key, "c%d", k);
        w->reads[k].w = w, w->reads[k].k = k;
        mp_sim_cluster_call_until_ok(c, 0, "Counter", key, "get", NULL, 0, read_back, &w->reads[k]);
    }
}
static void check(mp_sim_cluster *c, void *ud)
{
    wl *w = ud;
    for (int i = 0; i < w->next; i++) {
        mp_call_class cls = mp_call_status_class(w->ops[i].status, 0);
        if (cls == MP_CALL_EXECUTED && !w->seen[i])
            mp_sim_cluster_fail(c, "op %d answered OK but is not stored", i);
        if (cls == MP_CALL_NOT_EXECUTED && w->seen[i])
            mp_sim_cluster_fail(c, "op %d failed with %s (not executed) but ran", i,
                                mp_status_name(w->ops[i].status));
    }
}

static const mp_actor_type *const types[] = {&counter, NULL};
/* Faults this workload must meet in any seed range (a silent no-op run
 * would pass every check). */
static const char *const reached[] = {"actor.persist_failed", "storage.sim.write_failed_but_applied",
                                      "actor.client_failover", "actor.owner_restarted",
                                      "actor.idle_deactivation", NULL};
static const mp_sim_cluster_spec spec = {
    .name = "counter", .description = "persisted Counters under kills: every execution checked",
    .required_coverage = reached, .members = 3, .clients = 3, .types = types, .storage = true, .kill_members = true,
    .idle_timeout_ns = 2 * MP_NS_PER_SEC, .start = start, .tick = tick, .heal = heal,
    .check = check, .free = free};

int main(int argc, char **argv)
{
    mp_sim_workload w;
    if (mp_sim_cluster_workload(&spec, &w) != 0) return 2;
    const mp_sim_workload *list[] = {&w};
    return mp_sim_main(argc, argv, list, 1);
}
