/*
 * moonpool defaults and limits: the one place each tunable's value lives.
 *
 * Why one header: a default written in two places drifts (the mailbox
 * warning was 0 through the API and 10,000 through a config file; the call
 * timeout, heartbeat and peer timeout were each written twice). The API
 * (mp_node_config_init, mp_transport_config_init), the config-file loader
 * (src/config/config.c) and the docs all take their values from here, so a
 * node built from code and one built from a file behave the same. Public
 * because operators and users want to know the defaults without reading
 * the source.
 *
 * Each entry says what it is, its unit, and where it is set:
 *   API   = a field of mp_node_config (node.h)
 *   file  = a key of the config file (config.h, docs/config.md)
 *   fixed = not configurable (a protocol or memory bound).
 * Durations are nanoseconds, sizes bytes (units.h).
 */
#ifndef MOONPOOL_LIMITS_H
#define MOONPOOL_LIMITS_H

#include "moonpool/units.h"

/* ---- timeouts ----------------------------------------------------------- */

/* A call's deadline. API call_timeout_ns; file [timeouts] call. */
#define MP_DEFAULT_CALL_TIMEOUT_NS (30ull * MP_NS_PER_SEC)
/* An activation idle this long is deactivated. API idle_timeout_ns; file
 * [timeouts] idle. */
#define MP_DEFAULT_IDLE_TIMEOUT_NS (10ull * MP_NS_PER_MIN)
/* Graceful shutdown deadline of a node process (moonpool-node). File
 * [timeouts] shutdown; the API takes it as mp_node_shutdown's argument. */
#define MP_DEFAULT_SHUTDOWN_TIMEOUT_NS (10ull * MP_NS_PER_SEC)
/* A connection that wrote nothing for this long sends a keep-alive. API
 * heartbeat_ns (0: this); file [timeouts] heartbeat. */
#define MP_DEFAULT_HEARTBEAT_NS (1ull * MP_NS_PER_SEC)
/* The smallest heartbeat the transport accepts (the API's bound; the file
 * asks for at least 10 ms). */
#define MP_MIN_HEARTBEAT_NS (1ull * MP_NS_PER_MS)
/* A connection that received nothing for this long is closed as dead; must
 * be > 2 x heartbeat. API peer_timeout_ns (0: this; MP_NODE_NO_PEER_TIMEOUT:
 * never); file [timeouts] peer_timeout (0: never). */
#define MP_DEFAULT_PEER_TIMEOUT_NS (10ull * MP_NS_PER_SEC)
/* Connect + HELLO exchange of one dial. Fixed for a node (transport config
 * handshake_timeout_ns, internal). */
/* A frame whose first byte arrived must be whole within this ([timeouts]
 * frame): a peer that trickles bytes (slowloris) is closed. */
#define MP_DEFAULT_FRAME_TIMEOUT_NS (10ull * MP_NS_PER_SEC)
#define MP_DEFAULT_HANDSHAKE_TIMEOUT_NS (5ull * MP_NS_PER_SEC)
/* Redial backoff: first delay, doubling up to the cap (with jitter). Fixed
 * for a node (transport config, internal). */
#define MP_DEFAULT_BACKOFF_INITIAL_NS (10ull * MP_NS_PER_MS)
#define MP_DEFAULT_BACKOFF_MAX_NS (2ull * MP_NS_PER_SEC)

/* ---- sizes and counts --------------------------------------------------- */

/* Largest frame (one message with its header) sent or accepted. API
 * max_message; file [limits] max_message. */
#define MP_DEFAULT_MAX_MESSAGE_BYTES (1024u * 1024u)
/* Upper bound any max_message may take (the wire format's, fixed). */
#define MP_MAX_MESSAGE_LIMIT_BYTES (1024u * 1024u * 1024u)
/* Calls a node has outstanding before mp_call fails with MP_EQUEUEFULL.
 * API max_pending_calls; file [limits] max_pending_calls. */
#define MP_DEFAULT_MAX_PENDING_CALLS 1000000u
/* An activation's mailbox depth at which on_mailbox_depth runs (once per
 * crossing; the process host logs a warning). 0 disables it. API
 * mailbox_warn_depth; file [limits] mailbox_warn_depth. */
#define MP_DEFAULT_MAILBOX_WARN_DEPTH 10000u
/* Messages one activation's mailbox holds at most ([limits] max_mailbox,
 * mp_node_config.max_mailbox): past it a call fails at once with
 * MP_EQUEUEFULL (not executed), so one hot actor cannot grow a node without
 * bound. */
#define MP_DEFAULT_MAX_MAILBOX 100000u
/* Frames / bytes queued for one peer before a send fails with
 * MP_EQUEUEFULL. Fixed for a node (transport config, internal). */
#define MP_DEFAULT_PEER_QUEUE_FRAMES 65536u
#define MP_DEFAULT_PEER_QUEUE_BYTES (64ull * MP_MIB)

/* Incoming connections a node holds at once, in total and from one remote
 * IP ([limits] max_connections, max_connections_per_ip; the host sets them
 * on the env, mp_env_net_policy). When a cap is full the oldest connection
 * still in handshake is closed for the new one; only when none is left is
 * the new one refused (counted in stats: transport.connections_refused).
 * Per IP is as large as the handshake slots (1024, fixed) so that a flood
 * from the host of a member meets slot eviction, not refusal. */
#define MP_DEFAULT_MAX_CONNECTIONS 4096u
#define MP_DEFAULT_MAX_CONNECTIONS_PER_IP 1024u
/* The cluster secret file ([security] secret_file) holds at most this many
 * bytes. */
#define MP_SECRET_FILE_MAX 4096u

/* Node address text "host:port", in bytes without the NUL. Fixed (the
 * HELLO carries it; file and API validate it). Written as a plain int
 * literal on purpose: an identical redefinition elsewhere stays legal. */
#define MP_ADDR_MAX 64
/* Members of one cluster (API member_count, file cluster.members). Fixed:
 * per-member tables are sized by it. */
#define MP_MAX_MEMBERS 256

/* Membership (issue 13; src/membership/agent.h, not configurable yet: the
 * agent is not wired into the node). A member's lease in the membership
 * table; it renews every lease / 3. Others take over only after seeing its
 * heartbeat unchanged for lease + margin by their own clock (the margin
 * covers clock-rate drift). The table is read every poll interval. A
 * member is declared dead when this many active members suspect it (or
 * all others, if fewer). A change refused by the storage (ETag conflict)
 * is retried after a backoff doubling from the first value, at most the
 * given number of times per round. */
#define MP_DEFAULT_MEMBERSHIP_LEASE_NS (5ull * MP_NS_PER_SEC)
#define MP_DEFAULT_MEMBERSHIP_MARGIN_NS (1ull * MP_NS_PER_SEC)
#define MP_DEFAULT_MEMBERSHIP_POLL_NS (1ull * MP_NS_PER_SEC)
#define MP_DEFAULT_MEMBERSHIP_VOTES 2u
#define MP_DEFAULT_MEMBERSHIP_RETRIES 16u
#define MP_DEFAULT_MEMBERSHIP_BACKOFF_NS (5ull * MP_NS_PER_MS)

/* Idempotency keys (mp_call_opts.idempotency_key, node.h "Exactly once
 * for callers that retry"): the longest key, in bytes of [!-~]; how many
 * keys one activation remembers; how long; the largest reply kept for a
 * replay (a larger one is answered MP_EALREADY). Not configurable yet. */
#define MP_IDEMPOTENCY_KEY_MAX 64
#define MP_IDEMPOTENCY_KEYS_PER_ACTIVATION 256u
#define MP_IDEMPOTENCY_WINDOW_NS (5ull * MP_NS_PER_MIN)
#define MP_IDEMPOTENCY_REPLY_MAX_BYTES 4096u

/* Request ids (node.h "At most once"): a node keeps one 8 KiB window of
 * executed request ids per calling node (origin), for at most this many
 * origins: 8 MiB at most, whatever the call rate. Not configurable yet. */
#define MP_RID_ORIGINS_MAX 1024u
#define MP_RID_WINDOW_BITS 65536u

#endif
