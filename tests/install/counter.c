/*
 * A program outside the tree, built against the INSTALLED moonpool by
 * tests/install/install_test.sh (once with pkg-config, once with
 * find_package). A Counter actor whose count persists in SQLite: each run
 * calls counter "c1" once, so the first run prints 1 and the next 2.
 *
 *   counter DB_PATH     prints "header X library Y" and "count N"
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/moonpool.h"

static void persisted(void *ud, int status)
{
    mp_msg *msg = ud;
    if (status) mp_reply_error(msg, status, "persist failed");
    else mp_reply(msg, "ok", 2);
}

static void incr(mp_actor *self, void *inst, mp_msg *msg, const void *p, size_t len)
{
    json_t *s = mp_state_get(self);
    if (!s) mp_state_set(self, s = json_pack("{s:i}", "n", 0));
    json_object_set_new(s, "n", json_integer(json_integer_value(json_object_get(s, "n")) + 1));
    int rc = mp_state_persist(self, persisted, msg);
    if (rc) mp_reply_error(msg, rc, "persist refused");
}

static void get(mp_actor *self, void *inst, mp_msg *msg, const void *p, size_t len)
{
    char out[32];
    json_t *s = mp_state_get(self);
    int n = snprintf(out, sizeof out, "%lld",
                     s ? (long long)json_integer_value(json_object_get(s, "n")) : 0LL);
    mp_reply(msg, out, (size_t)n);
}

static const mp_state_type counter_state = {.codec = NULL}; /* JSON */
static const mp_method_def methods[] = {{"incr", incr}, {"get", get}};
static const mp_actor_type counter_type = {.name = "Counter", .methods = methods,
                                           .method_count = 2, .state = &counter_state};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: counter DB_PATH\n");
        return 2;
    }
    printf("header %s library %s\n", MP_VERSION_STRING, mp_version());
    const char *self = "127.0.0.1:0";
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    cfg.cluster_namespace = "counter", cfg.self_addr = self, cfg.members = &self;
    cfg.member_count = 1;
    mp_env *env = mp_env_uv_create(NULL, 0);
    mp_storage *storage = NULL;
    mp_node *node = NULL;
    if (!env || mp_storage_sqlite_open(env, argv[1], &storage)) return 1;
    cfg.storage = storage;
    if (mp_node_create(env, &cfg, &node) || mp_node_register_type(node, &counter_type) ||
        mp_node_start(node))
        return 1;
    mp_ref c1;
    mp_ref_get(node, "Counter", "c1", &c1);
    char *reply = NULL;
    int rc = mp_call_sync(node, &c1, "incr", "", 0, NULL, &reply, NULL);
    free(reply);
    reply = NULL;
    if (rc == 0) rc = mp_call_sync(node, &c1, "get", "", 0, NULL, &reply, NULL);
    if (rc) printf("error %s\n", mp_strerror(rc));
    else printf("count %s\n", reply);
    free(reply);
    mp_node_shutdown(node, 1000000000ull, NULL, NULL);
    mp_env_uv_run(env);
    mp_storage_close(storage, NULL, NULL); /* after the node: it waits for it */
    mp_env_uv_run(env);
    return mp_env_uv_destroy(env) || rc;
}
