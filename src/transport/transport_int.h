/*
 * The transport's internal header: its objects, shared by the files of
 * one mechanism each: connections, handshake and reads (transport.c), the
 * send queue and flushing (queue.c), liveness (liveness.c), closing
 * (close.c). transport.c's top comment explains the objects.
 *
 * Functions shared between these files, and nothing else, start with mp__.
 */
#ifndef MP_TRANSPORT_INT_H
#define MP_TRANSPORT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/limits.h"
#include "moonpool/units.h"
#include "transport/handshake.h"
#include "transport/transport.h"
#include "util/buf.h"
#include "util/list.h"
#include "util/map.h"

#define ADDR_CAP (MP_HELLO_MAX_ADDR + 1)
#define HOST_CAP 64
/* A HELLO frame: header + method + payload; generous. */
#define HELLO_FRAME_CAP (MP_FRAME_MIN_SIZE + 16 + MP_HELLO_SIZE)
/* An AUTH frame (auth or hello_ok). */
#define AUTH_FRAME_CAP (MP_FRAME_MIN_SIZE + 16 + MP_AUTH_MAX_PAYLOAD)
#define REPLY_FRAME_CAP (MP_FRAME_MIN_SIZE + 16 + MP_HELLO_MAX_REASON)
#define MIN_MAX_FRAME 512u
/* Incoming connections still in handshake, beyond which accepts are closed
 * at once: an unknown client cannot make us hold unbounded state. */
#define MAX_UNATTRIBUTED 1024u
/* Incoming connections at once, in total and per remote IP (any state):
 * defaults of mp_env_net_policy's caps. Per IP stays at or above the
 * handshake slots so that slot eviction, not refusal, meets a flood from
 * one address (members on the same host must still get in). */
#define MAX_INCOMING MP_DEFAULT_MAX_CONNECTIONS
#define MAX_INCOMING_PER_IP MP_DEFAULT_MAX_CONNECTIONS_PER_IP
#define BUGGIFY_FLUSH_DELAY_NS (2 * MP_NS_PER_MS)
/* The keep-alive frame: an empty system frame with its method. */
#define KA_FRAME_CAP (MP_FRAME_MIN_SIZE + sizeof MP_KEEPALIVE_METHOD)

enum conn_state {
    C_DIALING,   /* connect in flight, no stream yet */
    C_HANDSHAKE, /* stream up, HELLO sent */
    C_OPEN,      /* data flows */
    C_REFUSING,  /* refusal written, closes from its write callback */
    C_CLOSING    /* mp_stream_close called (or dial abandoned) */
};

typedef struct peer peer;

typedef struct conn {
    mp_list_node link; /* t->conns */
    mp_transport *t;
    peer *p; /* outgoing: the dialed peer; incoming: set once accepted */
    mp_stream *s;
    int state;
    bool outgoing;
    bool got_hello; /* the peer's HELLO was valid (its nonce is known) */
    bool sent_auth; /* dialer: our AUTH is out, hello_ok awaited */
    bool counted;   /* incoming, counted in t->incoming (the caps) */
    uint8_t nonce[MP_HELLO_NONCE_LEN];      /* ours, fresh per connection */
    uint8_t peer_nonce[MP_HELLO_NONCE_LEN]; /* the peer's */
    char ip[HOST_CAP]; /* incoming: the socket peer's host, for the caps */
    mp_timer_id hs_timer;
    mp_frame_decoder dec;
    mp_buf wbuf;      /* frames being written (swapped from peer->pending) */
    uint32_t wframes; /* frames in wbuf */
    bool writing;
    bool ka_writing;     /* a keep-alive write is in flight */
    uint32_t idle_ticks; /* heartbeat ticks since the last write issued */
    uint64_t last_recv;  /* env time of the last read callback with bytes */
    /* After a silence (transport.c on_read): until backlog_until, bytes
     * may still be the held backlog, as old as now - backlog_from. */
    uint64_t backlog_from, backlog_until;
    uint64_t partial_since; /* env time a still incomplete frame began; 0: none */
    uint8_t hello[HELLO_FRAME_CAP];
    uint8_t auth[AUTH_FRAME_CAP]; /* our auth (dialer) or hello_ok (acceptor) */
    uint8_t reply[REPLY_FRAME_CAP];
} conn;

struct peer {
    mp_list_node link;       /* t->peers */
    mp_list_node dirty_link; /* t->dirty while a flush is wanted */
    mp_transport *t;
    char addr[ADDR_CAP];
    size_t addr_len;
    conn *out;  /* our dial, before it is open */
    conn *conn; /* the open connection */
    mp_buf pending;
    uint32_t pending_frames;
    uint64_t pending_since; /* env time the oldest pending frame was queued */
    uint32_t q_frames; /* pending + in flight */
    uint64_t q_bytes;
    mp_timer_id retry_timer;
    uint32_t attempts; /* failures since the last open connection */
    mp_peer_stats st;  /* counters; queue/connected filled on read */
    /* MP_ENAMESPACE / MP_EVERSION while the last handshake was refused for
     * that (cleared by an open connection): sends fail at once. */
    int refused;
    bool probe; /* a send was refused: keep redialing though none queued */
    uint32_t fails;   /* failed dials/handshakes since the last open: logs, unreachable */
    bool in_outage;   /* lost since the last open connection */
    uint64_t outage_since; /* env time the outage began */
    char why[MP_HELLO_MAX_REASON + 1]; /* last failure, for the layer above */
};

struct mp_transport {
    mp_env *env;
    mp_transport_config cfg;
    char ns[MP_HELLO_MAX_NS + 1];
    char self[ADDR_CAP];
    mp_transport_callbacks cbs;
    void *ud;
    mp_listener *listener;
    bool listener_open; /* its close callback has not run yet */
    mp_map_str peer_map;
    mp_list_node peers;
    mp_list_node conns;
    mp_list_node dirty;
    peer *last; /* the peer of the latest send (see mp_transport_send) */
    uint32_t unattributed; /* incoming conns in handshake */
    uint32_t incoming;     /* incoming conns not yet closing (the caps) */
    /* Authentication (mp_env_net_policy, copied at create). */
    bool keyed;
    uint8_t key[MP_HELLO_KEY_LEN];
    uint32_t max_incoming, max_incoming_per_ip;
    uint64_t auth_failures, auth_logged; /* count; env time of the last line */
    uint64_t conn_refused, refuse_logged;
    uint64_t evicted;      /* handshaking conns closed to make room */
    uint64_t evict_logged; /* env time of the last eviction log line */
    bool flush_scheduled;
    bool defer_pending; /* a defer we cannot cancel is queued */
    mp_timer_id flush_timer;
    mp_peer_stats orphan; /* counters of conns never attributed to a peer */
    /* liveness (see the top comment) */
    mp_timer_id hb_timer;
    uint64_t hb_tick_ns; /* heartbeat / 2 */
    uint64_t hb_due;     /* when the armed tick should fire */
    /* The last stall of our own loop a tick saw: when, and how long the
     * loop had not run (see stall_age). */
    uint64_t stall_seen, stall_ns;
    uint32_t read_age_ms; /* requests of the current read: their wait */
    uint8_t ka_frame[KA_FRAME_CAP];
    size_t ka_len;
    /* graceful close */
    bool closing, shutdown;
    mp_timer_id close_timer;
    void (*close_cb)(void *ud);
    void *close_ud;
};

/* transport.c */
mp_peer_stats *mp__stats_of(conn *c);
bool mp__addr_ok(const char *addr);
peer *mp__peer_named(mp_transport *t, const char *addr);
peer *mp__peer_get(mp_transport *t, const char *addr, size_t len);
/* Redial after a backoff while frames wait (and the peer may be dialed). */
void mp__schedule_retry(peer *p);
void mp__peer_dial(peer *p);
void mp__conn_close(conn *c);
/* Close c for status (logged at level, or by status when level < 0) and
 * tell the layer above the peer is down. */
void mp__conn_fail_at(conn *c, int status, const char *why, int level);
void mp__conn_fail(conn *c, int status, const char *why);

/* queue.c */
void mp__peer_mark_dirty(peer *p);
/* Graceful close: drop what waits for a peer without a connection. */
void mp__peer_drop_pending(peer *p, const char *why);
void mp__peer_flush(peer *p);
void mp__schedule_flush(mp_transport *t);

/* liveness.c */
/* How long bytes read now may have waited unread (our loop stalled). */
uint64_t mp__stall_age(const mp_transport *t, uint64_t now);
void mp__hb_arm(mp_transport *t);

/* close.c */
void mp__close_progress(mp_transport *t);

#endif
