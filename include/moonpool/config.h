/*
 * moonpool node configuration file: parser, validation and formatter.
 *
 * A node process runs from one small text file. The format is INI-like
 * because every operator can read and edit it without a manual, and a
 * hand-written strict parser for it is a few hundred lines (a TOML library
 * would be more code than the runtime needs, and still accept much more
 * than we want). Strictness is the point: every mistake (unknown section or
 * key, duplicate key, bad value, missing required key) is an error naming
 * the file and line, e.g.
 *
 *     cluster.conf:7: unknown key 'adress' in [node] (did you mean 'address'?)
 *
 * because a typo that silently falls back to a default is a production
 * incident waiting to happen. The full reference is docs/config.md.
 *
 * Format:
 *   - Lines end with LF or CRLF; a UTF-8 byte-order mark at the start is
 *     skipped. A line holds at most MP_CONFIG_MAX_LINE bytes, the whole text
 *     at most MP_CONFIG_MAX_SIZE bytes; NUL and other control bytes (except
 *     tab) are errors.
 *   - '#' starts a comment at the start of a line or after a space or tab
 *     (so "password=a#b" keeps its '#').
 *   - "[section]" opens a section; each section at most once.
 *   - "key = value" inside a section; each key at most once. Values are
 *     taken verbatim (no quotes, no escapes) with surrounding blanks removed.
 *   - A list value (cluster.members) is comma-separated; a list line that
 *     ends with ',' continues on the next line.
 *   - Durations need a unit: 250ms, 30s, 10m, 1h. Sizes need a unit:
 *     512B, 64KiB, 1MiB, 1GiB.
 *
 *   [cluster]  namespace (required), members (required)
 *   [node]     address, data_dir, log_level, metrics_address, log_format
 *   [storage]  provider (sqlite|postgres|memory), path, conninfo
 *   [timeouts] call, idle, shutdown, heartbeat, peer_timeout
 *   [limits]   max_message, max_pending_calls, mailbox_warn_depth, max_mailbox,
 *              max_connections, max_connections_per_ip
 *   [security] secret_file (the cluster secret; read by the host, never here)
 *              tls_cert, tls_key, tls_ca (all three or none: TLS on every
 *              link; the files are read by the host)
 *   [membership] mode (static|table), lease, margin, poll, votes (the last
 *              four only with mode = table; docs/membership.md)
 *
 * node.address may be left out of a file shared by every node of a cluster;
 * the tool then picks it from the command line (mp_config_set_address,
 * mp_config_select_member) before mp_config_to_node_config.
 *
 * Memory: a parsed mp_config owns all its strings in one allocation,
 * released by mp_config_free. Thread safety: none needed; functions touch
 * only their arguments.
 *
 * Parsing is pure (no I/O) and belongs to the runtime library. Reading the
 * file (mp_config_load) belongs to the process host (src/host/), the only
 * part of the library besides env and storage allowed to touch the OS.
 */
#ifndef MOONPOOL_CONFIG_H
#define MOONPOOL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/env.h"
#include "moonpool/limits.h"
#include "moonpool/node.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MP_CONFIG_MAX_SIZE (1024u * 1024u) /* bytes of config text */
#define MP_CONFIG_MAX_LINE 4096u           /* bytes per line, without EOL */
/* Defaults of the keys below: moonpool/limits.h (the API uses the same). */
#define MP_CONFIG_NAMESPACE_MAX ((unsigned)MP_ACTOR_PART_MAX) /* as the API */
#define MP_CONFIG_ADDR_MAX ((unsigned)MP_ADDR_MAX)     /* "host:port" text */
#define MP_CONFIG_MAX_MEMBERS ((unsigned)MP_MAX_MEMBERS)

typedef enum mp_config_storage {
    MP_CONFIG_STORAGE_SQLITE = 0, /* default; path defaults to data_dir/state.db */
    MP_CONFIG_STORAGE_POSTGRES = 1, /* needs conninfo */
    MP_CONFIG_STORAGE_MEMORY = 2  /* volatile; tests and demos */
} mp_config_storage;

typedef struct mp_config {
    const char *origin;            /* the name errors use (file path) */
    /* [cluster] */
    const char *cluster_namespace;
    const char *const *members;    /* member_count addresses, no duplicates */
    size_t member_count;           /* 1 .. MP_CONFIG_MAX_MEMBERS */
    /* [node] */
    const char *address;           /* one of members[]; NULL if not given */
    const char *data_dir;          /* default "." */
    mp_log_level log_level;        /* default MP_LOG_INFO */
    const char *metrics_address;   /* "host:port" of GET /metrics, /healthz,
                                      /readyz (host.h); NULL: none */
    bool log_json;                 /* log_format = json (one object a line) */
    /* [storage] */
    mp_config_storage storage;     /* default sqlite */
    const char *storage_path;      /* sqlite only; NULL otherwise */
    const char *storage_conninfo;  /* postgres only; NULL otherwise */
    /* [timeouts], nanoseconds */
    uint64_t call_timeout_ns;      /* default 30 s */
    uint64_t idle_timeout_ns;      /* default 10 min */
    uint64_t shutdown_timeout_ns;  /* default 10 s */
    uint64_t heartbeat_ns;         /* keep-alive interval; default 1 s */
    uint64_t peer_timeout_ns;      /* silence that closes a connection;
                                      default 10 s; 0: never (disabled) */
    uint64_t frame_timeout_ns;     /* a started frame must be whole within
                                      this; default 10 s */
    /* [limits] */
    uint64_t max_message;          /* bytes; default 1 MiB */
    uint64_t max_pending_calls;    /* default 1,000,000 */
    uint64_t mailbox_warn_depth;   /* default 10,000; 0 disables the warning */
    uint64_t max_mailbox;          /* default 100,000 messages per activation */
    uint64_t max_connections;      /* incoming connections at once; default 4096 */
    uint64_t max_connections_per_ip; /* incoming from one IP; default 1024 */
    /* [security] */
    const char *secret_file;       /* path of the cluster secret; NULL: none
                                      (the node then stays on loopback) */
    /* TLS on every link (moonpool/env_tls.h): all three PEM files, or NULL */
    const char *tls_cert, *tls_key, *tls_ca;
    /* [membership] (docs/membership.md, "Running it") */
    bool membership_table;         /* mode = table: join the membership table
                                      in the shared storage (sqlite or
                                      postgres); default false (static) */
    uint64_t lease_ns;             /* 100ms..1h; 0: unset, the node uses
                                      peer_timeout / 2 */
    uint64_t lease_margin_ns;      /* 1ms..lease; 0: unset (lease / 5) */
    uint64_t membership_poll_ns;   /* 10ms..lease; 0: unset (lease / 5) */
    uint64_t membership_votes;     /* 1..256; 0: unset (2) */
    void *arena_;                  /* private: the one allocation */
} mp_config;

/* Where and why parsing failed. line is 1-based, 0 when the error is not
 * tied to one line (missing file, missing section). message is complete and
 * printable as is: "origin:line: reason" (or "origin: reason"). */
typedef struct mp_config_error {
    int line;
    char message[256];
} mp_config_error;

/* Parse and validate len bytes of text (need not be NUL-terminated).
 * origin names the source in messages (NULL: "<config>"). On success *out
 * owns its memory (mp_config_free). On failure *out is zeroed, nothing is
 * allocated, err (may be NULL) says why, and the result is MP_EINVAL
 * (MP_ETOOBIG for text over MP_CONFIG_MAX_SIZE, MP_ENOMEM). */
int mp_config_parse(const char *text, size_t len, const char *origin,
                    mp_config *out, mp_config_error *err);

/* Read the file at path and parse it (origin = path). A missing or
 * unreadable file is MP_ENOTFOUND / MP_EIO with the reason in err.
 * Defined in src/host/config_file.c. Call from the process's main thread. */
int mp_config_load(const char *path, mp_config *out, mp_config_error *err);

/* Release the memory of a parsed config and zero it. Safe on a zeroed
 * struct and twice. */
void mp_config_free(mp_config *c);

/* Command-line override of node.address: addr must be one of the members.
 * MP_EINVAL (reason in err, may be NULL) otherwise; c is unchanged then. */
int mp_config_set_address(mp_config *c, const char *addr, mp_config_error *err);

/* The same, choosing the member by its 1-based position in the list
 * (--id 2 is the second member). */
int mp_config_select_member(mp_config *c, size_t id, mp_config_error *err);

/* Fill the runtime struct: mp_node_config_init defaults, then every field
 * the file sets. Pointers point into c, which must outlive *out. Fields the
 * file cannot express (incarnation, hooks, storage handle) keep their
 * defaults for the caller to set. MP_EINVAL if c has no address yet. */
int mp_config_to_node_config(const mp_config *c, mp_node_config *out);

/* Write c as config text that parses back to an equal config (every key
 * explicit, canonical units, comments dropped). Returns the length of the
 * whole text without its NUL; if that is >= cap, buf holds a NUL-terminated
 * prefix (when cap > 0) and the caller retries with a larger buffer, as
 * with snprintf. MP_EINVAL if c is NULL or not a parsed config. */
int mp_config_format(const mp_config *c, char *buf, size_t cap);

/* Whether two configs hold the same settings (origin not compared). */
bool mp_config_equal(const mp_config *a, const mp_config *b);

/* Names used in the file, for messages: "sqlite", "info", ... */
const char *mp_config_storage_name(mp_config_storage s);
const char *mp_config_log_level_name(mp_log_level l);

/* A duration as the file writes one: digits, optional blanks, a unit of
 * ms, s, m or h ("250ms", "2s", "1 h"). Returns 0 and *ns, MP_EINVAL (no
 * digits, no unit or an unknown one, trailing text) or MP_ETOOBIG
 * (overflows 64 bits of nanoseconds). For command lines that take the
 * file's units. Pure; any thread. */
int mp_config_parse_duration(const char *text, uint64_t *ns);

#ifdef __cplusplus
}
#endif
#endif
