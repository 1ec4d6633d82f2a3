/*
 * Text for mp_status codes. One table indexed by -code keeps the sentence and
 * the symbolic name side by side so they cannot drift apart.
 */
#include "moonpool/status.h"

#include <stddef.h>

struct status_text {
    const char *name;
    const char *text;
};

static const struct status_text table[] = {
    [0] = {"MP_OK", "success"},
    [1] = {"MP_EINVAL", "invalid argument"},
    [2] = {"MP_ENOMEM", "out of memory"},
    [3] = {"MP_ETIMEDOUT", "timed out"},
    [4] = {"MP_ECONNREFUSED", "connection refused"},
    [5] = {"MP_ECONNRESET", "connection reset"},
    [6] = {"MP_EOF", "end of stream"},
    [7] = {"MP_ECANCELED", "operation cancelled"},
    [8] = {"MP_EADDRINUSE", "address already in use"},
    [9] = {"MP_ETOOBIG", "message too big"},
    [10] = {"MP_EQUEUEFULL", "queue full"},
    [11] = {"MP_EPROTO", "protocol error"},
    [12] = {"MP_EBADMAGIC", "bad frame magic"},
    [13] = {"MP_EVERSION", "unsupported protocol version"},
    [14] = {"MP_ECHECKSUM", "checksum mismatch"},
    [15] = {"MP_ETRUNCATED", "truncated or inconsistent field"},
    [16] = {"MP_ENOTFOUND", "not found"},
    [17] = {"MP_EUNAVAIL", "destination unavailable"},
    [18] = {"MP_ECONFLICT", "conflict: stale etag"},
    [19] = {"MP_EACTOR", "actor handler error"},
    [20] = {"MP_ENOTYPE", "unknown actor type"},
    [21] = {"MP_ENOMETHOD", "unknown method"},
    [22] = {"MP_EFORWARDS", "too many forwards"},
    [23] = {"MP_ESTORAGE", "storage error"},
    [24] = {"MP_ECLOSED", "closed"},
    [25] = {"MP_EIO", "i/o error"},
    [26] = {"MP_ENAMESPACE", "peer in another cluster namespace"},
    [27] = {"MP_EBUSY", "busy"},
    [28] = {"MP_EADDR", "bad address"},
    [29] = {"MP_EACTIVATION", "actor activation failed"},
    [30] = {"MP_ECORRUPT", "corrupt data"},
    [31] = {"MP_EINTERNAL", "internal error"},
    [32] = {"MP_EDEADLOCK", "call cycle: the callee is waiting for the caller"},
    [33] = {"MP_EINDOUBT", "the request may or may not have executed (its answer was lost)"},
    [34] = {"MP_EALREADY", "the request already ran; its reply was not kept"},
    [35] = {"MP_ESTALE", "the request is too old for its host's duplicate window; it did not run"},
    [36] = {"MP_EAUTH", "authentication failed (cluster secret)"},
};

_Static_assert(sizeof table / sizeof table[0] == (size_t)(-MP_STATUS_MIN_) + 1,
               "every mp_status needs a text");

static const struct status_text *lookup(int status)
{
    if (status > 0 || status < MP_STATUS_MIN_) return NULL;
    return &table[-status];
}

const char *mp_strerror(int status)
{
    const struct status_text *t = lookup(status);
    return t ? t->text : "unknown error";
}

const char *mp_status_name(int status)
{
    const struct status_text *t = lookup(status);
    return t ? t->name : "MP_E?";
}

mp_call_class mp_call_status_class(int status, int returned_at_once)
{
    switch (status) {
    case MP_OK:
    case MP_EACTOR:
    case MP_EALREADY: return MP_CALL_EXECUTED;
    case MP_EUNAVAIL:
    case MP_ESTALE:
    case MP_EQUEUEFULL:
    case MP_EINVAL:
    case MP_ENOTYPE:
    case MP_ENOMETHOD:
    case MP_ETOOBIG:
    case MP_EACTIVATION:
    case MP_EDEADLOCK:
    case MP_EFORWARDS:
    case MP_ENAMESPACE:
    case MP_EAUTH:
    case MP_EVERSION: return MP_CALL_NOT_EXECUTED;
    case MP_ECLOSED:
    case MP_ENOMEM: return returned_at_once ? MP_CALL_NOT_EXECUTED : MP_CALL_MAY_HAVE_RUN;
    default: return MP_CALL_MAY_HAVE_RUN;
    }
}

const char *mp_call_class_name(mp_call_class c)
{
    switch (c) {
    case MP_CALL_EXECUTED: return "executed";
    case MP_CALL_NOT_EXECUTED: return "not executed";
    default: return "may have executed";
    }
}
