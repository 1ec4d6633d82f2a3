/*
 * moonpool status codes.
 *
 * Every fallible moonpool call returns an int: 0 (MP_OK) on success or one of
 * the negative codes below. Callbacks receive the same codes in their `status`
 * argument. Codes are stable: they travel on the wire inside error replies, so
 * never renumber an existing one; append new ones at the end.
 *
 * Thread safety: mp_strerror and mp_status_name are pure and may be called from
 * any thread.
 */
#ifndef MOONPOOL_STATUS_H
#define MOONPOOL_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mp_status {
    MP_OK = 0,
    MP_EINVAL = -1,        /* invalid argument or malformed input */
    MP_ENOMEM = -2,        /* allocation failed */
    MP_ETIMEDOUT = -3,     /* a call or operation ran out of time */
    MP_ECONNREFUSED = -4,  /* nobody listens at the address */
    MP_ECONNRESET = -5,    /* the connection broke */
    MP_EOF = -6,           /* the peer closed its end in order */
    MP_ECANCELED = -7,     /* the operation was cancelled (handle closed) */
    MP_EADDRINUSE = -8,    /* listen address already taken */
    MP_ETOOBIG = -9,       /* message larger than the configured maximum */
    MP_EQUEUEFULL = -10,   /* a bounded queue is full */
    MP_EPROTO = -11,       /* protocol violation by the peer */
    MP_EBADMAGIC = -12,    /* frame does not start with the moonpool magic */
    MP_EVERSION = -13,     /* unknown or incompatible protocol version */
    MP_ECHECKSUM = -14,    /* frame checksum mismatch */
    MP_ETRUNCATED = -15,   /* a field runs past the end of its frame */
    MP_ENOTFOUND = -16,    /* no such entity (actor, key, address) */
    MP_EUNAVAIL = -17,     /* the destination is unreachable right now */
    MP_ECONFLICT = -18,    /* optimistic concurrency: stale ETag */
    MP_EACTOR = -19,       /* the actor's handler returned an error */
    MP_ENOTYPE = -20,      /* unknown actor type */
    MP_ENOMETHOD = -21,    /* unknown method on a known actor type */
    MP_EFORWARDS = -22,    /* the message was forwarded too many times */
    MP_ESTORAGE = -23,     /* the storage provider failed */
    MP_ECLOSED = -24,      /* the handle or node is shut down */
    MP_EIO = -25,          /* an operating-system I/O error */
    MP_ENAMESPACE = -26,   /* the peer belongs to another cluster namespace */
    MP_EBUSY = -27,        /* resource is busy; try again later */
    MP_EADDR = -28,        /* malformed or unresolvable address */
    MP_EACTIVATION = -29,  /* the actor's activation failed */
    MP_ECORRUPT = -30,     /* stored data failed validation */
    MP_EINTERNAL = -31,    /* a bug in moonpool: an invariant broke */
    MP_EDEADLOCK = -32,    /* the callee is busy waiting for the caller */
    MP_EINDOUBT = -33,     /* the request may have executed: its answer was
                              lost (node.h, "What an error says") */
    MP_EALREADY = -34,     /* the request already ran (a duplicate of it
                              arrived, or a keyed retry); its reply was not
                              kept */
    MP_ESTALE = -35,       /* the request is older than its host's
                              duplicate window; it did not run there */
    MP_EAUTH = -36,        /* the peer did not prove the cluster secret (or
                              we could not prove it to the peer) */
    MP_STATUS_MIN_ = -36
} mp_status;

/* Human-readable sentence for a status; unknown codes give "unknown error".
 * The returned string is static: never free it. */
const char *mp_strerror(int status);

/* Symbolic name ("MP_ETIMEDOUT") for logs and the CLI; static string. */
const char *mp_status_name(int status);

/* What a call's outcome says about its execution (node.h, "What an error
 * says"). */
typedef enum mp_call_class {
    MP_CALL_EXECUTED = 0,       /* ran: 0, MP_EACTOR, MP_EALREADY */
    MP_CALL_NOT_EXECUTED = 1,   /* did not run: safe to retry */
    MP_CALL_MAY_HAVE_RUN = 2    /* unknown: retry only with an idempotency key */
} mp_call_class;

/* The class of a call's status. returned_at_once: mp_call itself returned
 * it (the call never left), as opposed to the reply callback. A status no
 * call path produces is MP_CALL_MAY_HAVE_RUN (the safe answer). */
mp_call_class mp_call_status_class(int status, int returned_at_once);

/* "executed", "not executed", "may have executed"; static string. */
const char *mp_call_class_name(mp_call_class c);

#ifdef __cplusplus
}
#endif
#endif
