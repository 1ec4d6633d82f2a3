/* hello: an actor type and two calls to it (the README shows this file). */
#include <stdio.h>
#include <stdlib.h>
#include "moonpool/call_sync.h"
#include "moonpool/env_uv.h"
#include "moonpool/node.h"

typedef struct greeter { int greetings; } greeter; /* one per activation */

static void greet(mp_actor *self, void *inst, mp_msg *msg, const void *p, size_t len)
{
    char out[300];
    int n = snprintf(out, sizeof out, "hello %.*s, I am %s (greeting %d)", (int)len,
                     (const char *)p, mp_actor_ref(self)->id, ++((greeter *)inst)->greetings);
    mp_reply(msg, out, (size_t)n);
}
static const mp_method_def methods[] = {{"greet", greet}};
static const mp_actor_type greeter_type = {.name = "Greeter", .instance_size = sizeof(greeter),
                                           .methods = methods, .method_count = 1};
int main(int argc, char **argv)
{
    const char *self = argc > 1 ? argv[1] : "127.0.0.1:7450"; /* a one-node cluster */
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    cfg.cluster_namespace = "hello", cfg.self_addr = self, cfg.members = &self, cfg.member_count = 1;
    mp_env *env = mp_env_uv_create(NULL, 0);
    mp_node *node;
    if (!env || mp_node_create(env, &cfg, &node) || mp_node_register_type(node, &greeter_type) ||
        mp_node_start(node)) return 1;
    mp_ref alice; /* a name only: getting it costs no round trip */
    mp_ref_get(node, "Greeter", "alice", &alice);
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        char *reply;
        rc = mp_call_sync(node, &alice, "greet", "world", 5, NULL, &reply, NULL);
        printf("%s: %s\n", rc ? mp_strerror(rc) : "reply", reply ? reply : "");
        free(reply);
    }
    mp_node_shutdown(node, 1000000000ull, NULL, NULL); /* deactivates alice */
    mp_env_uv_run(env);
    return mp_env_uv_destroy(env) || rc;
}
