/*
 * The node's operations endpoint: Prometheus text metrics, liveness and
 * readiness over minimal HTTP/1.0 (design in metrics.c). Internal to the
 * process host; mp_node_run opens it when asked for a metrics address.
 */
#ifndef MP_HOST_METRICS_H
#define MP_HOST_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/env.h"
#include "moonpool/node.h"

#define MP__METRICS_MAX_CONNS 16          /* open scrape connections */
#define MP__METRICS_MAX_REQUEST 4096u     /* bytes of request head */
#define MP__METRICS_TIMEOUT_NS (5ull * MP_NS_PER_SEC) /* whole exchange */

typedef enum mp__ready {
    MP__READY_STARTING = 0, /* /readyz 503 "starting" */
    MP__READY_SERVING = 1,  /* /readyz 200 "ready" */
    MP__READY_STOPPING = 2  /* /readyz 503 "stopping" */
} mp__ready;

typedef struct mp__metrics mp__metrics;

/* What the text rendering reads; the strings are not owned. */
typedef struct mp__metrics_view {
    const mp_node_stats *stats;
    const char *address;
    const char *cluster_namespace;
    uint32_t incarnation;
    uint64_t uptime_ns;
    mp__ready ready;
    /* Optional (NULL / 0: not rendered). */
    const mp_node_latency *call_latency, *persist_latency;
    const mp_node_member_info *members;
    size_t member_count;
    bool serving;
} mp__metrics_view;

/* Render the Prometheus text exposition (format 0.0.4) of v into buf (cap
 * bytes, NUL-terminated). Returns the full length, as snprintf: >= cap
 * means cut. */
size_t mp__metrics_render(char *buf, size_t cap, const mp__metrics_view *v);

/* Listen on addr ("host:port"; port 0 picks one) and serve node's metrics.
 * Returns 0 and *out, or MP_EADDR / MP_EADDRINUSE / MP_EIO / MP_ENOMEM.
 * node, the strings and incarnation must outlive the server. */
int mp__metrics_open(mp_env *env, const char *addr, mp_node *node, const char *address,
                     const char *cluster_namespace, uint32_t incarnation,
                     mp__metrics **out);

/* The bound port, or a negative status. */
int mp__metrics_port(mp__metrics *m);

void mp__metrics_set_ready(mp__metrics *m, mp__ready r);

/* Stop listening, close every open exchange, then cb(ud) and free m. */
void mp__metrics_close(mp__metrics *m, mp_close_cb cb, void *ud);

#endif
