/*
 * mp_call_sync: a blocking call, for programs that do not run their own loop.
 *
 * moonpool is callback-driven: mp_call returns at once and its callback runs
 * later from the node's loop. A small program (a command-line client, a
 * test, a script-like tool) often just wants "call and give me the answer".
 * mp_call_sync issues an ordinary mp_call and then turns the node's libuv
 * loop itself until the reply callback ran, so every other activity of the
 * node (actors it hosts, peers, timers) keeps running while it waits. The
 * call's own timeout (opts or the node's default) bounds the wait: the
 * runtime always completes an accepted call, with MP_ETIMEDOUT at worst.
 *
 * Only the real (libuv) backend can block: on a simulated env it returns
 * MP_EINVAL, because the simulator owns time and must never be run from
 * inside a node.
 *
 * Thread: the node's loop thread, and never from inside a callback of that
 * loop (a handler, a reply callback, a timer): libuv loops are not
 * reentrant. A nested mp_call_sync is detected and refused with MP_EBUSY;
 * other reentrant uses are the caller's bug.
 */
#ifndef MOONPOOL_CALL_SYNC_H
#define MOONPOOL_CALL_SYNC_H

#include <stddef.h>

#include "moonpool/actor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Call `method` on ref with `payload` (len bytes, copied) and wait for the
 * outcome. Returns 0 on success or the call's error (the immediate errors
 * of mp_call, or the one its callback reported: MP_ETIMEDOUT, MP_EACTOR,
 * MP_ENOTYPE, ...).
 *
 * Reply ownership: if `reply` is not NULL, *reply receives a malloc'ed copy
 * of the reply payload on success, or of the error message on failure
 * (empty string if none), always NUL-terminated (the terminator is not
 * counted in *reply_len), which the caller frees with free(). It is set to
 * NULL when the call failed before being sent or when memory ran out (then
 * the status is MP_ENOMEM unless the call already failed). `reply_len` may
 * be NULL.
 *
 * Whether a failed call ran: mp_call_status_class(status, *reply == NULL)
 * (status.h): "not executed" may be retried as is; "may have executed"
 * only with the same opts->idempotency_key (node.h). */
int mp_call_sync(mp_node *node, const mp_ref *ref, const char *method,
                 const void *payload, size_t len, const mp_call_opts *opts,
                 char **reply, size_t *reply_len);

#ifdef __cplusplus
}
#endif
#endif
