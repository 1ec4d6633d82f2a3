/*
 * Cluster client for the command-line tools (see cluster_client.h).
 *
 * The blocking helpers simply turn the loop until their callback has run;
 * that is fine for a tool (nothing else shares the thread) and keeps the
 * commands linear. The demo drives many calls at once on the same node
 * with mp_call directly and turns the loop itself.
 */
#include "cluster_client.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moonpool/actor.h"
#include "moonpool/env_tls.h"
#include "moonpool/env_uv.h"
#include "moonpool/host.h"

int mp_cc_split_target(const char *target, char *type_buf, size_t type_cap, const char **key)
{
    const char *slash = target ? strchr(target, '/') : NULL;
    if (!slash || slash == target || !slash[1]) return MP_EINVAL;
    size_t n = (size_t)(slash - target);
    if (n >= type_cap) return MP_EINVAL;
    memcpy(type_buf, target, n);
    type_buf[n] = '\0';
    *key = slash + 1;
    return 0;
}

int mp_cc_open(mp_cc *cc, const char *cluster_file, const char *secret_file,
               mp_log_level log_level, char *err, size_t err_cap)
{
    memset(cc, 0, sizeof *cc);
    mp_config_error cerr;
    int rc = mp_config_load(cluster_file, &cc->cfg, &cerr);
    if (rc < 0) {
        snprintf(err, err_cap, "%s", cerr.message);
        return MP_EINVAL;
    }
    cc->env = mp_env_uv_create(NULL, 0);
    if (!cc->env) {
        snprintf(err, err_cap, "out of memory");
        mp_config_free(&cc->cfg);
        return MP_ENOMEM;
    }
    cc->env->log_level = log_level;
    cc->env->name = "client";
    /* The cluster key (a client listens on loopback: no protected-mode
     * check). A bad secret file is the caller's mistake, like the config. */
    if (secret_file) cc->cfg.secret_file = secret_file;
    rc = mp_host_apply_security(&cc->cfg, NULL, cc->env, err, err_cap);
    if (rc < 0) {
        mp_cc_close(cc);
        return MP_EINVAL;
    }
    if (cc->cfg.tls_cert) {
        /* A client proves membership with a certificate of the cluster CA
         * too (the same files as the nodes', or its own). */
        mp_env_tls_config tc = {cc->cfg.tls_cert, cc->cfg.tls_key, cc->cfg.tls_ca, 0, 0};
        rc = mp_env_tls_create(cc->env, &tc, &cc->tls, err, err_cap);
        if (rc < 0) {
            mp_cc_close(cc);
            return MP_EINVAL;
        }
    }

    mp_node_config nc;
    mp_node_config_init(&nc);
    nc.cluster_namespace = cc->cfg.cluster_namespace;
    nc.members = cc->cfg.members;
    nc.member_count = cc->cfg.member_count;
    nc.self_addr = "127.0.0.1:0";
    nc.client_only = true;
    nc.call_timeout_ns = cc->cfg.call_timeout_ns;
    nc.max_message = cc->cfg.max_message > UINT32_MAX ? UINT32_MAX : (uint32_t)cc->cfg.max_message;
    /* Wall-clock seconds: grows across client runs (see the header). */
    uint32_t inc = (uint32_t)(time(NULL) & 0x7fffffff);
    nc.incarnation = inc ? inc : 1;
    rc = mp_node_create(cc->tls ? cc->tls : cc->env, &nc, &cc->node);
    if (rc == 0) rc = mp_node_start(cc->node);
    if (rc < 0) {
        snprintf(err, err_cap, "cannot start the client node: %s", mp_strerror(rc));
        mp_cc_close(cc);
        return rc;
    }
    return 0;
}

static void node_down(void *ud)
{
    bool *done = ud;
    *done = true;
}

void mp_cc_close(mp_cc *cc)
{
    if (cc->node) {
        bool done = false;
        mp_node_shutdown(cc->node, 2000000000ull, node_down, &done);
        for (int i = 0; i < 100000 && !done; i++) mp_env_uv_run_once(cc->env, 1);
        cc->node = NULL;
    }
    mp_env_tls_free(cc->tls);
    cc->tls = NULL;
    if (cc->env) {
        /* Pending timers (a caller's retries) keep the env busy until they
         * fire: block for events, bounded. */
        for (int i = 0; i < 10000; i++) {
            if (mp_env_uv_destroy(cc->env) == 0) break;
            mp_env_uv_run_once(cc->env, 1);
        }
        cc->env = NULL;
    }
    mp_config_free(&cc->cfg);
}

void mp_cc_run_once(mp_cc *cc, int wait) { mp_env_uv_run_once(cc->env, wait); }

typedef struct waiter {
    bool done;
    int status;
    char *data;
    size_t len;
} waiter;

static void on_reply(void *ud, int status, const void *data, size_t len)
{
    waiter *w = ud;
    w->done = true;
    w->status = status;
    w->data = malloc(len + 1);
    if (w->data) {
        if (len) memcpy(w->data, data, len);
        w->data[len] = '\0';
        w->len = len;
    } else if (status == 0) {
        w->status = MP_ENOMEM;
    }
}

static int wait_for(mp_cc *cc, waiter *w, char **reply, size_t *reply_len)
{
    while (!w->done) mp_env_uv_run_once(cc->env, 1);
    *reply = w->data;
    if (reply_len) *reply_len = w->len;
    return w->status;
}

int mp_cc_call(mp_cc *cc, const char *type, const char *key, const char *method,
               const void *payload, size_t len, uint64_t timeout_ns, char **reply,
               size_t *reply_len)
{
    *reply = NULL;
    if (reply_len) *reply_len = 0;
    mp_ref ref;
    int rc = mp_ref_get(cc->node, type, key, &ref);
    if (rc < 0) return rc;
    waiter w = {0};
    mp_call_opts opts = {.timeout_ns = timeout_ns, .idempotency_key = cc->idempotency_key};
    rc = mp_call(cc->node, &ref, method, payload, len, &opts, on_reply, &w);
    cc->at_once = rc < 0;
    if (rc < 0) return rc;
    return wait_for(cc, &w, reply, reply_len);
}

int mp_cc_stats(mp_cc *cc, const char *addr, char **reply, size_t *reply_len)
{
    *reply = NULL;
    if (reply_len) *reply_len = 0;
    waiter w = {0};
    int rc = mp_node_request_stats(cc->node, addr, on_reply, &w);
    if (rc < 0) return rc;
    return wait_for(cc, &w, reply, reply_len);
}
