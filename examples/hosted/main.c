/* hosted: a node process with its own work beside the node, through the
 * hooks of mp_node_run_with (moonpool/host.h) instead of a copy of the host.
 *
 *   build/examples/hosted CONFIG [ID] [METRICS_ADDR]   (ID "" = the config's)
 *
 * It hosts a Counter actor type, logs a line with the node's counters
 * every 10 s from a timer it starts when the node serves and cancels when
 * the node stops, and serves /metrics, /healthz and /readyz when given a
 * metrics address (e.g. 127.0.0.1:9100). */
#include <stdio.h>

#include "moonpool/host.h"

typedef struct counter { long n; } counter; /* one per activation */

static void add(mp_actor *self, void *inst, mp_msg *msg, const void *p, size_t len)
{
    (void)self, (void)p, (void)len;
    char out[32];
    int k = snprintf(out, sizeof out, "%ld", ++((counter *)inst)->n);
    mp_reply(msg, out, (size_t)k);
}
static const mp_method_def methods[] = {{"add", add}};
static const mp_actor_type counter_type = {.name = "Counter", .instance_size = sizeof(counter),
                                           .methods = methods, .method_count = 1};

typedef struct app { mp_host *host; mp_timer_id timer; } app;

static void report(void *ud)
{
    app *a = ud;
    mp_node_stats st;
    mp_node_get_stats(mp_host_node(a->host), &st);
    mp_env_log(mp_host_env(a->host), MP_LOG_INFO, "hosted: %llu activations, %llu calls in",
               (unsigned long long)st.activations, (unsigned long long)st.calls_in);
    a->timer = mp_env_timer_start(mp_host_env(a->host), 10 * MP_NS_PER_SEC, report, a);
}
static void started(void *ud, mp_host *host)
{
    app *a = ud;
    a->host = host;
    a->timer = mp_env_timer_start(mp_host_env(host), 10 * MP_NS_PER_SEC, report, a);
}
static void stopping(void *ud, mp_host *host)
{
    app *a = ud;
    if (a->timer) mp_env_timer_cancel(mp_host_env(host), a->timer); /* our work ends first */
    a->timer = 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: hosted CONFIG [ID] [METRICS_ADDR]\n");
        return MP_HOST_EXIT_CONFIG;
    }
    app a = {0};
    mp_node_run_options o;
    mp_node_run_options_init(&o);
    o.started = started, o.stopping = stopping, o.ud = &a;
    o.metrics_address = argc > 3 ? argv[3] : NULL;
    const mp_actor_type *types[] = {&counter_type};
    const char *id = argc > 2 && argv[2][0] ? argv[2] : NULL; /* "": the config's address */
    return mp_node_run_with(argv[1], id, types, 1, &o);
}
