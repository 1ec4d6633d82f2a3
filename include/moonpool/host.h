/*
 * The process host: run one moonpool node as a whole program.
 *
 * The runtime (node.h) is a library that never touches the OS by itself; a
 * real process around a node still has to read a config file, create its
 * data directory, remember its incarnation across restarts, open storage,
 * and turn SIGINT/SIGTERM into a graceful shutdown. mp_node_run does all of
 * that, so a user's own program that hosts its own actor types is a
 * ten-line main():
 *
 *     int main(int argc, char **argv) {
 *         const mp_actor_type *types[] = { my_type() };
 *         return mp_node_run(argv[1], argc > 2 ? argv[2] : NULL, types, 1);
 *     }
 *
 * `moonpool node --config FILE [--id ADDR|N]` is exactly this with the
 * example types (tools/cmd_node.c). A program that adds its own work beside
 * the node (timers, clients, endpoints) passes hooks to mp_node_run_with
 * instead of copying the host (see below).
 *
 * Why the incarnation lives in a file: a node restarted at the same address
 * must be told apart from its previous life (peers drop its old
 * connections, the directory re-registers what it owned, correlation ids
 * never repeat). The file is incremented and fsync'ed before the node
 * listens, so a crash at any point can only skip a number, never reuse one.
 * It is named after the node address, so several nodes may share one data
 * directory (they still need distinct SQLite files: use [storage] path).
 *
 * Exit statuses returned by mp_node_run:
 *   0  clean shutdown after SIGINT or SIGTERM;
 *   1  the node could not run: data directory, incarnation file, storage,
 *      listen address in use, ...; the reason is printed on stderr;
 *   2  bad configuration or arguments; the message names the file and line
 *      ("cluster.conf:7: unknown key 'adress' in [node] ...").
 *   3  MP_HOST_EXIT_DECLARED_DEAD: with [membership] mode = table, the
 *      membership table declared this node dead (it was paused, or cut off
 *      from the storage, past its lease, and the other members may have
 *      taken over its actors). The node had already stopped serving; it
 *      logs "declared dead by the cluster (paused or cut off past its
 *      lease): restarting with a new incarnation" at warn and shuts down at
 *      once (deadline 500 ms at most). Run the program again, with the same
 *      arguments: the incarnation file gives it the next incarnation and it
 *      joins as a new member (`moonpool node` does this itself, re-executing
 *      /proc/self/exe in the same process). A SIGINT or SIGTERM during that
 *      shutdown makes it a normal stop (status 0).
 *
 * Output: one line on stdout once the node listens, for scripts and
 * supervisors to wait for:
 *   moonpool node ready: address=127.0.0.1:7001 namespace=bank incarnation=3 storage=sqlite pid=4242
 * Logs go to stderr at the config's log level.
 *
 * Thread: call from the process's main thread; it runs the node's loop on
 * it until shutdown. It installs handlers for SIGINT and SIGTERM (through
 * libuv) and ignores SIGPIPE (a peer that vanishes mid-write must surface as
 * a connection error, not kill the node). When a signal stopped the node,
 * SIGINT and SIGTERM stay ignored after mp_node_run returns: the program is
 * about to exit, and a supervisor that repeats its SIGTERM (many do) must
 * not turn a clean stop (status 0) into a kill (143). Otherwise (an error)
 * the program's own dispositions are restored.
 */
#ifndef MOONPOOL_HOST_H
#define MOONPOOL_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stdbool.h>

#include "moonpool/actor.h"
#include "moonpool/config.h"
#include "moonpool/env.h"
#include "moonpool/node.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MP_HOST_EXIT_OK 0
#define MP_HOST_EXIT_FAIL 1
#define MP_HOST_EXIT_CONFIG 2
#define MP_HOST_EXIT_DECLARED_DEAD 3 /* start again: see above */

/* Run one node from the config file at config_path until SIGINT/SIGTERM.
 * id_override (may be NULL) picks this node's address: a member address
 * ("127.0.0.1:7002") or a 1-based position in the member list ("2"); it
 * overrides [node] address. types: the actor types to host (ntypes of them;
 * they must outlive the call). Returns the exit status (see above). */
int mp_node_run(const char *config_path, const char *id_override,
                const mp_actor_type *const *types, size_t ntypes);

/* Endpoint (mp_node_run_options.metrics_address): HTTP/1.0, one GET per
 * connection. /metrics answers 200 text/plain; version=0.0.4 with the
 * mp_node_get_stats counters as moonpool_* metrics (HELP and TYPE lines),
 * moonpool_uptime_seconds, moonpool_ready, moonpool_node_info (address,
 * namespace, incarnation labels), moonpool_build_info (version), the
 * histograms moonpool_call_latency_seconds and moonpool_persist_latency_
 * seconds (mp_node_get_latency), moonpool_serving and, per member,
 * moonpool_member_live / moonpool_member_active (mp_node_member_info_at);
 * /healthz 200 "ok" while the loop runs;
 * /readyz 200 "ready" while the node serves, 503 "stopping" once shutdown
 * began; other paths 404, other methods 405. A request head is at most 4 KiB
 * (431), an exchange at most 5 s, at most 16 connections are open (more are
 * closed at once). */

/* ---- hooks and options (mp_node_run_with) ----------------------------------
 *
 * A service that needs its own timers, clients or endpoints beside the node
 * does not copy the host: it passes hooks. Both run on the node's loop
 * thread (the thread that called mp_node_run_with), as ordinary loop
 * callbacks, so they may call any mp_node_* / mp_env_* function.
 *
 *   started(ud, host)  once, after the node serves: it listens, the ready
 *                      line is printed, the metrics endpoint (if any) is
 *                      up. Start your own work here on mp_host_env(host)
 *                      (timers, connections, listeners) or make calls
 *                      through mp_host_node(host).
 *   stopping(ud, host) once, when shutdown begins (SIGINT/SIGTERM,
 *                      mp_host_stop, or the loop running dry), before the
 *                      node deactivates its actors; only if started ran.
 *                      Cancel your timers and close your streams and
 *                      listeners here: the loop ends when the node and
 *                      storage are down, and what is still open then is
 *                      never called back (the env refuses to be destroyed
 *                      while streams are open and the host then reports
 *                      that the loop did not drain).
 *
 * Ownership: the mp_host, its env and its node belong to mp_node_run_with;
 * they are valid from started until stopping returns (the env until
 * mp_node_run_with returns). Errors: a hook returns nothing; to fail, log
 * and call mp_host_stop (the exit status stays 0) or remember the failure
 * in ud and turn it into your own exit status. */
typedef struct mp_host mp_host;
typedef void (*mp_host_hook_cb)(void *ud, mp_host *host);

typedef struct mp_node_run_options {
    mp_host_hook_cb started;  /* may be NULL */
    mp_host_hook_cb stopping; /* may be NULL */
    void *ud;                 /* passed to both hooks */
    /* "host:port" to serve GET /metrics (Prometheus text 0.0.4), /healthz
     * and /readyz on, from the node's own loop; NULL: no endpoint; port 0
     * picks a free one (mp_host_metrics_port tells which). The address is
     * copied. A bad or busy address makes mp_node_run_with fail (exit 1). */
    const char *metrics_address;
    /* Log line format (moonpool/env.h); default MP_LOG_FORMAT_TEXT. */
    mp_log_format log_format;
    /* Accept a new SQLite database. A node records the cluster id of the
     * database it runs on in its data dir ("storage-id.<address>") and at
     * its next start refuses, with exit status 1 and a message, a database
     * that is missing (it does not create one) or holds another cluster id:
     * it was deleted or replaced, and starting would serve empty or other
     * state. With new_storage the database is created if missing and its id
     * recorded (docs/config.md, [storage]). A first start (no record) needs
     * no flag. */
    bool new_storage;
} mp_node_run_options;

/* Defaults: no hooks, no metrics endpoint, text logs. Environment variables
 * fill what the config file cannot say yet (interim, until the config file
 * has keys for them): MOONPOOL_METRICS_ADDRESS (host:port) and
 * MOONPOOL_LOG_FORMAT (text|json); mp_node_run_with checks them and exits
 * with status 2 on a bad value. */
void mp_node_run_options_init(mp_node_run_options *o);

/* mp_node_run with options (NULL: defaults, as mp_node_run). Same exit
 * statuses. */
int mp_node_run_with(const char *config_path, const char *id_override,
                     const mp_actor_type *const *types, size_t ntypes,
                     const mp_node_run_options *opts);

/* The running node's env (its loop) and the node itself; see above for
 * lifetimes. Thread: the loop thread. */
mp_env *mp_host_env(mp_host *host);
mp_node *mp_host_node(mp_host *host);

/* The metrics endpoint's bound port, or MP_EINVAL if there is none. */
int mp_host_metrics_port(mp_host *host);

/* Begin a graceful shutdown, as SIGTERM would (stopping runs, the node
 * deactivates its actors, storage closes, mp_node_run_with returns 0). A
 * second call while stopping is ignored. Thread: the loop thread. */
void mp_host_stop(mp_host *host);

/* Read, increment, write back and fsync the incarnation counter of node
 * `addr` in directory `dir` (created with its parents if missing). A missing
 * file counts as 0, so the first run gets 1. A file that does not hold a
 * decimal counter, or a counter at UINT32_MAX, is an error: guessing could
 * reuse an incarnation. Returns 0 and *out, or MP_EIO / MP_ECORRUPT /
 * MP_EINVAL with a reason in err (err_cap bytes; err may be NULL). */
int mp_host_next_incarnation(const char *dir, const char *addr, uint32_t *out,
                             char *err, size_t err_cap);

/* Create directory `path` and its missing parents (mode 0755); an existing
 * directory is fine. Returns 0 or MP_EIO/MP_EINVAL with a reason in err. */
int mp_host_mkdirs(const char *path, char *err, size_t err_cap);

/* Read the cluster secret file at path and derive the cluster key from it
 * (SHA-256 of its bytes, one trailing "\n" or "\r\n" removed so that
 * `echo` and `printf` write the same secret). Refused, with a reason naming
 * the path in err: a file group or others may read or write (mode & 066;
 * the mode is given: "chmod 600 PATH"), not a regular file, empty (after
 * the newline), larger than MP_SECRET_FILE_MAX bytes, unreadable. Returns
 * 0, MP_EINVAL (the file's content or mode), MP_ENOTFOUND or MP_EIO. The
 * secret's bytes are wiped from memory after use. */
int mp_host_load_secret(const char *path, uint8_t key[MP_ENV_KEY_LEN], char *err,
                        size_t err_cap);

/* Whether "host:port" names a loopback address (127.0.0.0/8 or
 * "localhost"). */
bool mp_host_addr_is_loopback(const char *addr);

/* Set env's network policy (env.h) from a parsed config: the connection
 * caps, and the cluster key when [security] secret_file is set. With
 * self_addr (a node's own address; NULL for a client): without a secret
 * only a loopback address is accepted ("protected mode"). Returns 0, or
 * MP_EINVAL / MP_ENOTFOUND / MP_EIO with the reason in err. Logs nothing. */
int mp_host_apply_security(const mp_config *c, const char *self_addr, mp_env *env, char *err,
                           size_t err_cap);

#ifdef __cplusplus
}
#endif
#endif
