/*
 * mp_call_sync (call_sync.h): mp_call plus a loop that turns the node's
 * libuv loop until the callback ran.
 *
 * The wait uses mp_env_uv_run_once(env, 1), which blocks in the kernel until
 * something happens, so a waiting program burns no CPU. Termination needs no
 * extra timer: the runtime completes every accepted call exactly once (reply,
 * error, or MP_ETIMEDOUT from its own timeout wheel). If the loop ever runs
 * dry while the call is still open, something is badly wrong (the node was
 * freed or shut down under us), and we report MP_ECLOSED instead of spinning.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/call_sync.h"
#include "moonpool/node.h"
#include "moonpool/env_uv.h"

typedef struct sync_wait {
    bool done;
    int status;
    char *data;
    size_t len;
    bool want_copy;
} sync_wait;

/* Nested mp_call_sync from inside the loop it is turning would re-enter
 * uv_run; refuse it. One node loop per thread, so a thread-local depth is
 * exact. */
static _Thread_local int sync_depth;

static void on_reply(void *ud, int status, const void *data, size_t len)
{
    sync_wait *w = ud;
    w->done = true;
    w->status = status;
    if (!w->want_copy) return;
    w->data = malloc(len + 1);
    if (!w->data) {
        if (status == 0) w->status = MP_ENOMEM;
        return;
    }
    if (len) memcpy(w->data, data, len);
    w->data[len] = '\0';
    w->len = len;
}

int mp_call_sync(mp_node *node, const mp_ref *ref, const char *method,
                 const void *payload, size_t len, const mp_call_opts *opts,
                 char **reply, size_t *reply_len)
{
    if (reply) *reply = NULL;
    if (reply_len) *reply_len = 0;
    if (!node || !ref || !method) return MP_EINVAL;
    mp_env *env = mp_node_env(node);
    if (!mp_env_is_uv(env)) return MP_EINVAL;
    if (sync_depth > 0) return MP_EBUSY;

    sync_wait w = {.want_copy = reply != NULL};
    int rc = mp_call(node, ref, method, payload, len, opts, on_reply, &w);
    if (rc < 0) return rc;
    sync_depth++;
    while (!w.done) {
        if (!mp_env_uv_run_once(env, 1) && !w.done) {
            /* Nothing left that could ever complete the call. The callback
             * cannot run later either: the node is gone. */
            sync_depth--;
            return MP_ECLOSED;
        }
    }
    sync_depth--;
    if (reply) *reply = w.data;
    else free(w.data);
    if (reply_len) *reply_len = w.len;
    return w.status;
}
