/*
 * Peer transport: one connection per pair of nodes, carrying wire frames.
 *
 * A node owns one mp_transport. It listens on the node's address and dials
 * peers on demand when a frame is sent to them. Each connection starts with a
 * handshake (handshake.h): HELLO both ways (protocol version, mode, a fresh
 * nonce), then the dialer's AUTH and the acceptor's hello_ok (node address,
 * incarnation, and either the namespace or, with a cluster key on the env
 * (env.h: mp_env_net_policy), an HMAC proof of the key over both nonces,
 * the namespace, both addresses and incarnations). A peer from another
 * namespace, of an incompatible version, or without the key is refused
 * with a logged reason; a peer without the key learns nothing about us.
 * Incoming connections are capped in total and per remote IP (the env's
 * policy): a full cap first evicts the oldest connection in handshake.
 *
 * One connection per pair: when both nodes dial each other at once, the
 * connection dialed by the node with the smaller address (byte-wise compare)
 * wins; the acceptor of the losing dial refuses it (HELLO_DUP: hello_refused
 * with status MP_EBUSY, see handshake.h) before any frame flows on it, so no
 * frame is ever lost to the tie-break. Rule at the acceptor X of a dial from
 * Y: refuse iff X has its own outgoing connection to Y and X < Y, unless the
 * HELLO shows a newer incarnation of Y; otherwise the new connection replaces
 * whatever X had for Y. Frames are queued per peer and written only on a
 * connection whose handshake completed.
 *
 * Delivery contract: frames to one peer are written in send order. A frame
 * handed to a connection that then breaks may or may not arrive (TCP gives no
 * more); frames not yet written when a connection breaks stay queued for the
 * next connection. The layer above (calls, with correlation and timeouts) owns
 * end-to-end outcomes.
 *
 * Reconnect: exponential backoff with jitter between backoff_initial and
 * backoff_max while frames wait. The queue per peer is bounded (frames and
 * bytes); past it mp_transport_send returns MP_EQUEUEFULL at once.
 *
 * Batching: frames sent during one loop turn are encoded into the peer's
 * pending buffer and flushed by one deferred callback as one write.
 *
 * Incarnations: a peer's incarnation is learnt at each handshake; a change is
 * reported through on_peer_restart (the directory needs it).
 *
 * Liveness (half-open connections). A peer that vanishes without a FIN or
 * RST (machine off, cable pulled, a path that stalls) would otherwise leave
 * its connection "open" forever. So an open connection that has written
 * nothing for about heartbeat_ns sends a keep-alive (a system frame with
 * method MP_KEEPALIVE_METHOD; the receiver counts it and never hands it to
 * on_frame), and one on which nothing at all arrived for peer_timeout_ns is
 * closed with MP_ETIMEDOUT and a logged reason ("no bytes from X for 10.2
 * s"), which runs on_peer_down and the usual reconnect. One timer per
 * transport drives both, ticking every heartbeat_ns / 2 while a connection
 * is open: a keep-alive leaves between heartbeat/2 and heartbeat after the
 * last write, and a dead connection is closed between peer_timeout and
 * peer_timeout + heartbeat/2 after its last received byte. A dial (connect
 * plus handshake) is bounded by handshake_timeout_ns, so a redial to a
 * machine that is gone fails in that time, not the kernel's SYN timeout.
 *
 * Log noise. The first failed dial of an outage is logged at info, repeats
 * at debug; the connection that ends the outage logs once at info
 * "reconnected to X after N failed attempts (T s)".
 *
 * Addresses are compared as exact strings (the simulator's rule): use one
 * canonical form per node ("127.0.0.1:7000", not "localhost:7000"). A peer
 * is known by the address it announces in its HELLO, which must be the one
 * others dial.
 *
 * Thread: the env's loop thread only.
 */
#ifndef MP_TRANSPORT_H
#define MP_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "moonpool/env.h"
#include "wire/frame.h"

typedef struct mp_transport mp_transport;

typedef struct mp_transport_config {
    const char *cluster_namespace; /* copied */
    const char *self_addr;         /* "host:port", listened on; copied. Port 0
                                      (real backend only): the OS picks one
                                      and mp_transport_self_addr tells it */
    uint32_t incarnation;          /* >= 1, grows on every restart; default 1 */
    uint32_t max_frame;            /* bytes; default 1 MiB */
    uint64_t backoff_initial_ns;   /* default 10 ms */
    uint64_t backoff_max_ns;       /* default 2 s */
    uint64_t handshake_timeout_ns; /* connect + handshake; default 5 s */
    uint32_t max_queue_frames;     /* per peer; default 65536 */
    uint64_t max_queue_bytes;      /* per peer; default 64 MiB */
    uint64_t heartbeat_ns;         /* keep-alive after this long without a
                                      write; default 1 s; >= 1 ms */
    uint64_t peer_timeout_ns;      /* close a connection that received
                                      nothing for this long; default 10 s;
                                      must be > 2 x heartbeat_ns;
                                      MP_TRANSPORT_NO_PEER_TIMEOUT: never */
    uint64_t frame_timeout_ns;     /* a frame begun must be whole within this
                                      (checked each heartbeat tick); default
                                      MP_DEFAULT_FRAME_TIMEOUT_NS */
    uint32_t max_handshakes;       /* incoming connections in handshake at
                                      once; when full the oldest is closed
                                      for a new one; default 1024 */
} mp_transport_config;

/* peer_timeout_ns value that disables the receive timeout (keep-alives are
 * still sent, so the peer can judge us). */
#define MP_TRANSPORT_NO_PEER_TIMEOUT UINT64_MAX
/* The method of the keep-alive system frame (empty target, sender, payload). */
#define MP_KEEPALIVE_METHOD "keepalive"

typedef struct mp_transport_callbacks {
    /* A frame arrived from `peer` (its node address). The frame and its views
     * are valid only during the call. */
    void (*on_frame)(void *ud, const char *peer, const mp_frame *frame);
    /* A peer was seen with a new incarnation (old is 0 the first time). */
    void (*on_peer_restart)(void *ud, const char *peer, uint32_t old_inc,
                            uint32_t new_inc);
    /* The connection to peer broke or could not be made (status says why;
     * mp_transport_peer_unreachable tells which). Frames still queued stay
     * queued and reconnecting goes on. May be NULL. */
    void (*on_peer_down)(void *ud, const char *peer, int status);
    /* Whether the transport may dial peer (NULL: any). A peer it may not
     * dial (a client, or a stranger that claimed an address in its
     * handshake) is written to only while it keeps its own connection
     * open: a send to it otherwise fails at once with MP_EUNAVAIL, and a
     * lost connection to it is never redialed. */
    bool (*may_dial)(void *ud, const char *peer);
} mp_transport_callbacks;

typedef struct mp_peer_stats {
    uint64_t frames_out, frames_in, bytes_out, bytes_in;
    uint64_t connects, reconnects, decode_errors, oversize_frames;
    uint64_t refused_handshakes;
    uint64_t dropped_frames; /* queued, never written: dropped at close */
    /* Keep-alives written / received (not in frames_* or bytes_*, which
     * count the frames of the layer above), and connections closed because
     * nothing arrived for peer_timeout_ns. */
    uint64_t keepalives_out, keepalives_in, peer_timeouts;
    /* Connections closed because a frame stayed incomplete for
     * frame_timeout_ns, or because the peer stopped reading and its queue
     * reached max_queue_frames/bytes (the output buffer limit). */
    uint64_t slow_frames, output_limit_closes;
    /* Totals only: incoming connections closed in handshake to admit new
     * ones (max_handshakes, or a connection cap), handshakes refused
     * because the peer did not prove the cluster secret, and incoming
     * connections refused at accept by max_connections(_per_ip). */
    uint64_t handshakes_evicted;
    uint64_t auth_failures;
    uint64_t connections_refused;
    uint32_t queue_frames;
    uint64_t queue_bytes;
    uint32_t incarnation; /* last seen; 0 if never connected */
    bool connected;
} mp_peer_stats;

/* Defaults as above. Numeric fields left 0 also mean "default".
 * mp_transport_create fails with MP_EINVAL when heartbeat_ns < 1 ms or
 * peer_timeout_ns <= 2 x heartbeat_ns (unless MP_TRANSPORT_NO_PEER_TIMEOUT):
 * keep-alives must have room to arrive before the peer gives up. */
void mp_transport_config_init(mp_transport_config *cfg);

/* The rule above for a heartbeat and peer timeout (0: their defaults):
 * NULL when mp_transport_create would accept them, else why not (a static
 * string), for callers that report bad settings before creating one. */
const char *mp_transport_liveness_error(uint64_t heartbeat_ns,
                                        uint64_t peer_timeout_ns);

/* Create a transport on env and start listening on cfg->self_addr. Returns 0
 * and *out, or MP_EINVAL / MP_EADDR / MP_EADDRINUSE / MP_ENOMEM. */
int mp_transport_create(mp_env *env, const mp_transport_config *cfg,
                        const mp_transport_callbacks *cbs, void *ud,
                        mp_transport **out);

/* Queue a frame to a peer (encoded at once into the peer's buffer: the frame
 * and its views may be reused as soon as this returns). Dials if needed.
 * Errors at once: MP_ETOOBIG (over max_frame, nothing queued), MP_EQUEUEFULL,
 * MP_EINVAL (bad frame or addr), MP_ECLOSED (transport closing),
 * MP_ENAMESPACE / MP_EVERSION (the peer's last handshake was refused for
 * that and no connection opened since: nothing is queued, and redialing
 * with backoff goes on so that a peer fixed meanwhile is found). Sending to
 * self_addr is MP_EINVAL: the layer above delivers local frames itself. */
int mp_transport_send(mp_transport *t, const char *peer, const mp_frame *frame);

/* True when a dial or handshake to peer failed since its last open
 * connection (and none is open now): the peer is down, refusing, or out of
 * reach. A broken open connection alone does not make a peer unreachable:
 * the other side may be alive with replies queued for the next connection,
 * so only a failed redial says it is gone. on_peer_down callbacks use it to
 * decide whether what waits on the peer can still be answered. */
bool mp_transport_peer_unreachable(mp_transport *t, const char *peer);

/* Called for each frame mp_transport_drop_queued drops: its kind
 * (mp_frame_kind) and correlation id. */
typedef void (*mp_transport_dropped_cb)(void *ud, uint8_t kind, uint64_t corr);

/* Drop the frames queued for peer that no connection has taken yet: they
 * were never written, so the peer cannot have seen them. Frames already
 * handed to a connection are not touched (they may have arrived). Calls
 * on_dropped (may be NULL) for each, in queue order, and returns how many.
 * Why: the runtime fails the calls waiting on a peer it declared lost; a
 * queued frame delivered after that (the peer came back) would run a
 * request whose caller was already told it failed (at most once). */
size_t mp_transport_drop_queued(mp_transport *t, const char *peer,
                                mp_transport_dropped_cb on_dropped, void *ud);

/* Why the last connection to peer failed or was refused (a namespace or
 * version refusal names both sides' values), or NULL: unknown peer, or no
 * failure since its last open connection. Valid until the next transport
 * call. */
const char *mp_transport_peer_error(mp_transport *t, const char *peer);

/* Counters for one peer; MP_ENOTFOUND if the peer was never seen. */
int mp_transport_peer_stats(mp_transport *t, const char *peer,
                            mp_peer_stats *out);

/* Sums of every peer's counters plus those of connections that never got
 * attributed to a peer (a refused or broken handshake from an unknown
 * address). queue_*, incarnation and connected are left 0. Never fails. */
void mp_transport_totals(mp_transport *t, mp_peer_stats *out);

/* The address this transport announces (cfg->self_addr, with the bound port
 * when port 0 was asked). Valid until the transport is released. */
const char *mp_transport_self_addr(const mp_transport *t);

/* Graceful close: stop accepting, flush what is queued for up to
 * flush_timeout_ns, close every connection and the listener, then run cb(ud)
 * once everything is released (the transport's memory too). cb may be NULL.
 * Only open connections get to flush: frames queued for a peer without one
 * (it is down, refusing, or its dial fails during the close) are dropped at
 * once and counted (dropped_frames), with no redial, so a close with dead
 * peers takes as long as the live connections need, not the timeout. A
 * first dial (or a reconnect with no failure yet) still under way when the
 * close starts may finish and flush. */
void mp_transport_close(mp_transport *t, uint64_t flush_timeout_ns,
                        void (*cb)(void *ud), void *ud);

/* Abrupt release for a process teardown in which the env will run no callback
 * again (simulated kill): close every handle without waiting and free all
 * memory now. Never use it on a live real-mode loop. */
void mp_transport_free_now(mp_transport *t);

#endif
