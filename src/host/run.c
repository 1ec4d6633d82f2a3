/*
 * mp_node_run: the process shell around one node (see moonpool/host.h).
 *
 * Design notes:
 *   - Everything that can be checked before the node exists is checked
 *     first (config, address, data directory, incarnation, storage), so a
 *     mistake costs the operator one clear line and exit status 2 (config)
 *     or 1 (environment), never a half-started node.
 *   - Signals go through uv_signal_t on the node's own loop: the handler
 *     runs as an ordinary loop callback, so it may call mp_node_shutdown
 *     directly (the runtime is single-threaded and not async-signal-safe).
 *   - Shutdown order matters: the node first (its deactivation hooks may
 *     still persist state), then storage (mp_storage_close lets accepted
 *     saves finish), then the signal handles, and only then the loop ends.
 *     A second signal during shutdown is reported and otherwise ignored:
 *     the node's own deadline already bounds how long it can take.
 *   - Hooks (started, stopping) let a program add its own work on the
 *     node's loop instead of copying this file. stopping runs before the
 *     node begins to stop, so the program's own timers and streams close
 *     while the node can still answer; the metrics endpoint stays up until
 *     the node is down, so /readyz says 503 for the whole shutdown.
 *   - With [membership] mode = table the table can declare this node dead
 *     (it was paused or cut off past its lease, and the others may already
 *     run its actors). The node has stopped serving by then and can never
 *     serve again under its incarnation, so the host shuts it down quickly
 *     and mp_node_run returns MP_HOST_EXIT_DECLARED_DEAD; the program
 *     starts again (`moonpool node` re-executes itself), which reads the
 *     next incarnation from the file and joins as a new member. Restarting
 *     the process rather than creating a second node in this one keeps one
 *     rule: one process life, one incarnation.
 *   - The incarnation counter is written to a temporary file, fsync'ed,
 *     renamed over the old one and the directory fsync'ed, so a crash
 *     leaves either the old or the new value, never a torn one; the node
 *     only listens after that, so no two lives share an incarnation.
 *
 * This file may use the OS: src/host/ is the process host (scripts/lint.sh).
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <uv.h>

#include "moonpool/config.h"
#include "moonpool/env_tls.h"
#include "moonpool/env_uv.h"
#include "moonpool/host.h"
#include "moonpool/node.h"
#include "moonpool/storage.h"
#include "host/host_int.h"
#include "host/metrics.h"

int mp__host_set_err(char *err, size_t cap, int status, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* ---- directories and the incarnation file --------------------------------- */

int mp_host_mkdirs(const char *path, char *err, size_t err_cap)
{
    if (!path || !*path) return mp__host_set_err(err, err_cap, MP_EINVAL, "empty directory path");
    size_t len = strlen(path);
    if (len >= HOST_PATH_MAX)
        return mp__host_set_err(err, err_cap, MP_EINVAL, "directory path too long");
    char buf[HOST_PATH_MAX];
    memcpy(buf, path, len + 1);
    /* Create each prefix in turn; EEXIST is fine as long as it is a dir. */
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        if (buf[i - 1] == '/') continue; /* "a//b" */
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            return mp__host_set_err(err, err_cap, MP_EIO, "cannot create directory '%s': %s", buf,
                           strerror(e));
        }
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return mp__host_set_err(err, err_cap, MP_EIO, "'%s' is not a directory", path);
    return 0;
}

/* ("incarnation", "127.0.0.1:7001") -> "DIR/incarnation.127.0.0.1_7001": a
 * file name made only of safe characters, one per node address. */
int mp__host_node_file(const char *dir, const char *prefix, const char *addr, char *out,
                       size_t cap)
{
    char name[MP_CONFIG_ADDR_MAX + 32];
    size_t n = 0;
    n += (size_t)snprintf(name, sizeof name, "%s.", prefix);
    for (const char *p = addr; *p && n + 1 < sizeof name; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-';
        name[n++] = ok ? c : '_';
    }
    name[n] = '\0';
    int w = snprintf(out, cap, "%s/%s", dir, name);
    return (w < 0 || (size_t)w >= cap) ? MP_EINVAL : 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int mp_host_next_incarnation(const char *dir, const char *addr, uint32_t *out, char *err,
                             size_t err_cap)
{
    if (!dir || !addr || !*addr || !out)
        return mp__host_set_err(err, err_cap, MP_EINVAL, "incarnation: missing directory or address");
    int rc = mp_host_mkdirs(dir, err, err_cap);
    if (rc < 0) return rc;
    char path[HOST_PATH_MAX];
    if (mp__host_node_file(dir, "incarnation", addr, path, sizeof path) < 0)
        return mp__host_set_err(err, err_cap, MP_EINVAL, "incarnation: path too long");

    uint64_t prev = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char buf[32];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        int e = errno;
        close(fd);
        if (n < 0)
            return mp__host_set_err(err, err_cap, MP_EIO, "cannot read '%s': %s", path, strerror(e));
        buf[n] = '\0';
        /* Strictly digits, then an optional newline. */
        size_t i = 0;
        while (i < (size_t)n && buf[i] >= '0' && buf[i] <= '9' && prev <= UINT32_MAX) {
            prev = prev * 10 + (uint64_t)(buf[i] - '0');
            i++;
        }
        if (i == 0 || prev > UINT32_MAX || (buf[i] != '\0' && strcmp(buf + i, "\n") != 0))
            return mp__host_set_err(err, err_cap, MP_ECORRUPT,
                           "'%s' does not hold an incarnation counter (fix or delete it "
                           "only if no node with this address is running)",
                           path);
        if (prev == UINT32_MAX)
            return mp__host_set_err(err, err_cap, MP_ECORRUPT, "'%s': incarnation counter exhausted",
                           path);
    } else if (errno != ENOENT) {
        int e = errno;
        return mp__host_set_err(err, err_cap, MP_EIO, "cannot open '%s': %s", path, strerror(e));
    }

    uint32_t next = (uint32_t)prev + 1;
    char text[16];
    int len = snprintf(text, sizeof text, "%" PRIu32 "\n", next);
    assert(len > 0 && (size_t)len < sizeof text);
    rc = mp__host_write_file(dir, path, text, (size_t)len, err, err_cap);
    if (rc < 0) return rc;
    *out = next;
    return 0;
}

int mp__host_write_file(const char *dir, const char *path, const char *text, size_t len,
                        char *err, size_t err_cap)
{
    char tmp[HOST_PATH_MAX + 8];
    int w0 = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (w0 < 0 || (size_t)w0 >= sizeof tmp)
        return mp__host_set_err(err, err_cap, MP_EINVAL, "'%s': path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        return mp__host_set_err(err, err_cap, MP_EIO, "cannot create '%s': %s", tmp, strerror(e));
    }
    ssize_t w = write(fd, text, len);
    int e = errno;
    if (w != (ssize_t)len || fsync(fd) != 0) {
        if (w == (ssize_t)len) e = errno;
        close(fd);
        unlink(tmp);
        return mp__host_set_err(err, err_cap, MP_EIO, "cannot write '%s': %s", tmp,
                       w >= 0 && w != (ssize_t)len ? "short write" : strerror(e));
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return mp__host_set_err(err, err_cap, MP_EIO, "cannot replace '%s': %s", path, strerror(e));
    }
    if (fsync_dir(dir) != 0) {
        e = errno;
        return mp__host_set_err(err, err_cap, MP_EIO, "cannot sync directory '%s': %s", dir,
                       strerror(e));
    }
    return 0;
}

/* ---- the running node ------------------------------------------------------- */

typedef struct mp_host {
    mp_node_run_options opts;
    char metrics_addr[MP_ADDR_MAX + 1];
    mp__metrics *metrics;
    bool started_ran, stopping_ran;
    mp_env *env;
    mp_env *tls; /* [security] tls_*: the node's streams go through it */
    mp_node *node;
    mp_storage *storage;
    uv_signal_t sig_int, sig_term;
    bool signals_on;
    int signals_open; /* handles not yet closed */
    bool shutting_down;
    uint64_t shutdown_ns;
    int exit_status;
    bool dispositions_saved;
    bool stopped_by_signal;
    bool declared_dead; /* the table said so: exit MP_HOST_EXIT_DECLARED_DEAD */
    struct sigaction old_int, old_term; /* before mp_node_run */
} host;

/* [limits] mailbox_warn_depth: a node process says when an actor's mailbox
 * crosses it (the runtime calls this once per crossing, so a hot actor
 * cannot flood the log). */
static void mailbox_warn(void *ud, const mp_ref *actor, size_t depth)
{
    host *H = ud;
    mp_env_log(H->env, MP_LOG_WARN,
               "mailbox of %s reached %zu messages (mailbox_warn_depth); calls past "
               "max_mailbox are refused",
               actor->id, depth);
}

static void signal_closed(uv_handle_t *h)
{
    host *H = h->data;
    assert(H->signals_open > 0);
    H->signals_open--;
}

static void close_signals(host *H)
{
    if (!H->signals_on) return;
    H->signals_on = false;
    uv_close((uv_handle_t *)&H->sig_int, signal_closed);
    uv_close((uv_handle_t *)&H->sig_term, signal_closed);
    /* Closing the last libuv watcher of a signal restores its default
     * action, and a supervisor that repeats its SIGTERM (many do) would then
     * kill a node that already stopped cleanly, turning exit status 0 into
     * 143. The node is past the point where a signal could matter: ignore
     * them until mp_node_run returns, which restores what the program had. */
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    (void)sigaction(SIGINT, &ign, NULL);
    (void)sigaction(SIGTERM, &ign, NULL);
}

/* mp_node_run is a library call: leave the caller's signal dispositions as
 * they were, except after a signal stopped the node (see host.h: a repeat
 * of it must not kill a process that stopped cleanly and is exiting). */
static void restore_signals(host *H)
{
    if (!H->dispositions_saved || H->stopped_by_signal) return;
    (void)sigaction(SIGINT, &H->old_int, NULL);
    (void)sigaction(SIGTERM, &H->old_term, NULL);
}

static void storage_closed(void *ud)
{
    host *H = ud;
    H->storage = NULL;
    close_signals(H);
    mp_env_uv_stop(H->env);
}

static void metrics_closed(void *ud)
{
    host *H = ud;
    H->metrics = NULL;
    if (H->storage) {
        mp_storage_close(H->storage, storage_closed, H);
    } else {
        storage_closed(H);
    }
}

static void node_down(void *ud)
{
    host *H = ud;
    H->node = NULL;
    if (H->metrics) {
        mp__metrics_close(H->metrics, metrics_closed, H);
    } else {
        metrics_closed(H);
    }
}

static void run_stopping(host *H)
{
    if (H->metrics) mp__metrics_set_ready(H->metrics, MP__READY_STOPPING);
    if (!H->started_ran || H->stopping_ran) return;
    H->stopping_ran = true;
    if (H->opts.stopping) H->opts.stopping(H->opts.ud, H);
}

static void begin_shutdown(host *H, const char *why)
{
    if (H->shutting_down) {
        mp_env_log(H->env, MP_LOG_WARN, "%s: shutdown already in progress", why);
        return;
    }
    H->shutting_down = true;
    mp__sd_notify("STOPPING=1");
    run_stopping(H);
    mp_env_log(H->env, MP_LOG_INFO, "%s: shutting down (deadline %" PRIu64 " ms)", why,
               (uint64_t)(H->shutdown_ns / MP_NS_PER_MS));
    if (H->node) {
        mp_node_shutdown(H->node, H->shutdown_ns, node_down, H);
    } else {
        node_down(H);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    host *H = s->data;
    H->stopped_by_signal = true;
    /* A stop asked for while restarting after a death: stop, no restart. */
    if (H->declared_dead) H->exit_status = MP_HOST_EXIT_OK;
    begin_shutdown(H, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* Longest graceful shutdown after the table declared the node dead: it
 * already serves nothing (every activation deactivated when the lease
 * lapsed), so only its connections and storage remain to close. */
#define DEAD_SHUTDOWN_NS (500 * MP_NS_PER_MS)

static void dead_shutdown(void *ud)
{
    host *H = ud;
    if (H->shutting_down) return; /* a signal came first: that stop wins */
    if (H->shutdown_ns > DEAD_SHUTDOWN_NS) H->shutdown_ns = DEAD_SHUTDOWN_NS;
    H->exit_status = MP_HOST_EXIT_DECLARED_DEAD;
    begin_shutdown(H, "declared dead");
}

/* mp_node_config.on_declared_dead: runs inside the runtime's membership
 * callback, so the shutdown starts from a fresh loop callback. */
static void on_declared_dead(void *ud)
{
    host *H = ud;
    if (H->declared_dead) return;
    H->declared_dead = true;
    mp_env_log(H->env, MP_LOG_WARN,
               "declared dead by the cluster (paused or cut off past its lease): "
               "restarting with a new incarnation");
    if (H->shutting_down) return;
    if (mp_env_timer_start(H->env, 0, dead_shutdown, H) == 0) dead_shutdown(H);
}

static int start_signals(host *H)
{
    uv_loop_t *loop = mp_env_uv_loop(H->env);
    if (sigaction(SIGINT, NULL, &H->old_int) == 0 && sigaction(SIGTERM, NULL, &H->old_term) == 0)
        H->dispositions_saved = true;
    if (uv_signal_init(loop, &H->sig_int) != 0) return MP_EIO;
    H->sig_int.data = H;
    H->signals_open++;
    if (uv_signal_init(loop, &H->sig_term) != 0) {
        uv_close((uv_handle_t *)&H->sig_int, signal_closed);
        return MP_EIO;
    }
    H->sig_term.data = H;
    H->signals_open++;
    H->signals_on = true;
    if (uv_signal_start(&H->sig_int, on_signal, SIGINT) != 0 ||
        uv_signal_start(&H->sig_term, on_signal, SIGTERM) != 0) {
        close_signals(H);
        return MP_EIO;
    }
    return 0;
}

/* Run the loop until every handle the host or the node opened is closed,
 * then destroy the env. Bounded: a handle that never closes is a bug, and
 * the process is about to exit anyway. */
static void drain_and_destroy(host *H)
{
    mp_env_tls_free(H->tls); /* its handshakes' closes drain below */
    H->tls = NULL;
    for (int i = 0; i < 100000; i++) {
        if (H->signals_open == 0 && mp_env_uv_destroy(H->env) == 0) {
            H->env = NULL;
            return;
        }
        mp_env_uv_run_once(H->env, 0);
    }
    fprintf(stderr, "moonpool node: the event loop did not drain; exiting anyway\n");
}

/* The SQLite database and its identity (storage_id.c says why). */
static int open_sqlite(host *H, const mp_config *c, bool new_storage)
{
    char err[512], rec[HOST_PATH_MAX];
    uint64_t want = 0, got = 0;
    int rc = mp__host_storage_id_read(c->data_dir, c->address, &want, rec, sizeof rec, err,
                                      sizeof err);
    if (rc < 0) {
        fprintf(stderr, "moonpool node: %s\n", err);
        return rc;
    }
    unsigned flags = want && !new_storage ? MP_SQLITE_NO_CREATE : 0;
    rc = mp_storage_sqlite_open_ex(H->env, c->storage_path, flags, &H->storage, &got);
    if (rc == MP_ENOTFOUND) {
        fprintf(stderr,
                "moonpool node: the SQLite database '%s' is missing, but this node ran on "
                "cluster database %016" PRIx64 " there (%s): it was deleted or moved, and "
                "starting would serve empty state. Restore the file (with its -wal file), "
                "or start with --new-storage to begin an empty database (the old state is "
                "lost)\n",
                c->storage_path, want, rec);
        return rc;
    }
    if (rc < 0) {
        fprintf(stderr, "moonpool node: cannot open SQLite storage '%s': %s\n",
                c->storage_path, mp_strerror(rc));
        return rc;
    }
    if (want && got != want && !new_storage) {
        fprintf(stderr,
                "moonpool node: the SQLite database '%s' holds cluster database %016" PRIx64
                ", but this node ran on %016" PRIx64 " (%s): the file was replaced or the "
                "config points at another database; starting would serve other state. "
                "Restore the file, or start with --new-storage to adopt this database\n",
                c->storage_path, got, want, rec);
        return MP_ECONFLICT;
    }
    if (got != want) {
        rc = mp__host_storage_id_write(c->data_dir, rec, got, err, sizeof err);
        if (rc < 0) {
            fprintf(stderr, "moonpool node: %s\n", err);
            return rc;
        }
        mp_env_log(H->env, MP_LOG_INFO, "storage: cluster database %016" PRIx64 " recorded in %s%s",
                   got, rec, want ? " (--new-storage: replaces the old record)" : "");
    }
    return 0;
}

static int open_storage(host *H, const mp_config *c, bool new_storage)
{
    char err[512];
    int rc;
    switch (c->storage) {
    case MP_CONFIG_STORAGE_MEMORY:
        H->storage = mp_storage_memory_create(H->env);
        if (!H->storage) {
            fprintf(stderr, "moonpool node: out of memory creating the memory storage\n");
            return MP_ENOMEM;
        }
        return 0;
    case MP_CONFIG_STORAGE_POSTGRES:
        rc = mp_storage_postgres_open(H->env, c->storage_conninfo, &H->storage);
        if (rc < 0)
            fprintf(stderr, "moonpool node: %s: cannot open PostgreSQL storage: %s\n",
                    c->origin, mp_strerror(rc));
        return rc;
    case MP_CONFIG_STORAGE_SQLITE:
    default: {
        assert(c->storage_path);
        /* The database's directory must exist before SQLite can create it. */
        char dir[HOST_PATH_MAX];
        size_t n = strlen(c->storage_path);
        if (n >= sizeof dir) {
            fprintf(stderr, "moonpool node: %s: storage path too long\n", c->origin);
            return MP_EINVAL;
        }
        memcpy(dir, c->storage_path, n + 1);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            if ((rc = mp_host_mkdirs(dir, err, sizeof err)) < 0) {
                fprintf(stderr, "moonpool node: %s\n", err);
                return rc;
            }
        }
        return open_sqlite(H, c, new_storage);
    }
    }
}

static bool all_digits(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

mp_env *mp_host_env(mp_host *h)
{
    assert(h);
    return h->env;
}

mp_node *mp_host_node(mp_host *h)
{
    assert(h);
    return h->node;
}

int mp_host_metrics_port(mp_host *h)
{
    assert(h);
    return h->metrics ? mp__metrics_port(h->metrics) : MP_EINVAL;
}

void mp_host_stop(mp_host *h)
{
    assert(h);
    if (h->shutting_down) return;
    begin_shutdown(h, "host program");
}

void mp_node_run_options_init(mp_node_run_options *o)
{
    assert(o);
    memset(o, 0, sizeof *o);
    o->log_format = MP_LOG_FORMAT_TEXT;
}

int mp_node_run(const char *config_path, const char *id_override,
                const mp_actor_type *const *types, size_t ntypes)
{
    return mp_node_run_with(config_path, id_override, types, ntypes, NULL);
}

/* The interim environment variables (host.h): fill what opts left unset. */
static int env_options(mp_node_run_options *o)
{
    const char *v = getenv("MOONPOOL_METRICS_ADDRESS");
    if (v && *v && !o->metrics_address) o->metrics_address = v;
    v = getenv("MOONPOOL_LOG_FORMAT");
    if (v && *v && mp_log_format_parse(v, &o->log_format) < 0) {
        fprintf(stderr, "moonpool node: MOONPOOL_LOG_FORMAT='%s': use text or json\n", v);
        return MP_EINVAL;
    }
    if (o->log_format != MP_LOG_FORMAT_TEXT && o->log_format != MP_LOG_FORMAT_JSON) {
        fprintf(stderr, "moonpool node: unknown log format %d\n", (int)o->log_format);
        return MP_EINVAL;
    }
    if (o->metrics_address) {
        char hbuf[MP_ADDR_MAX + 1];
        uint16_t port;
        if (strlen(o->metrics_address) > MP_ADDR_MAX ||
            mp_addr_parse(o->metrics_address, hbuf, sizeof hbuf, &port) < 0) {
            fprintf(stderr, "moonpool node: bad metrics address '%s' (want HOST:PORT)\n",
                    o->metrics_address);
            return MP_EINVAL;
        }
    }
    return 0;
}

int mp_node_run_with(const char *config_path, const char *id_override,
                     const mp_actor_type *const *types, size_t ntypes,
                     const mp_node_run_options *opts)
{
    mp_node_run_options o;
    if (opts) {
        o = *opts;
    } else {
        mp_node_run_options_init(&o);
    }
    if (env_options(&o) < 0) return MP_HOST_EXIT_CONFIG;
    bool new_storage = o.new_storage;
    if (!config_path || !*config_path) {
        fprintf(stderr, "moonpool node: no config file given\n");
        return MP_HOST_EXIT_CONFIG;
    }
    if (ntypes && !types) {
        fprintf(stderr, "moonpool node: no actor types given\n");
        return MP_HOST_EXIT_CONFIG;
    }

    /* 1. The config and this node's address: every mistake is exit 2. */
    mp_config cfg;
    mp_config_error cerr;
    int rc = mp_config_load(config_path, &cfg, &cerr);
    if (rc < 0) {
        fprintf(stderr, "moonpool node: %s\n", cerr.message);
        return MP_HOST_EXIT_CONFIG;
    }
    if (id_override) {
        if (all_digits(id_override)) {
            char *end = NULL;
            unsigned long id = strtoul(id_override, &end, 10);
            rc = (id == 0 || id > cfg.member_count || *end)
                     ? MP_EINVAL
                     : mp_config_select_member(&cfg, (size_t)id, &cerr);
            if (rc < 0 && (id == 0 || id > cfg.member_count))
                snprintf(cerr.message, sizeof cerr.message,
                         "%s: --id %s: the cluster has %zu members (counting from 1)",
                         config_path, id_override, cfg.member_count);
        } else {
            rc = mp_config_set_address(&cfg, id_override, &cerr);
        }
        if (rc < 0) {
            fprintf(stderr, "moonpool node: %s\n", cerr.message);
            mp_config_free(&cfg);
            return MP_HOST_EXIT_CONFIG;
        }
    }
    if (!cfg.address) {
        fprintf(stderr,
                "moonpool node: %s: no node address: set 'address' in [node] or pass "
                "--id ADDR|N\n",
                config_path);
        mp_config_free(&cfg);
        return MP_HOST_EXIT_CONFIG;
    }

    /* 2. Data directory and incarnation: environment problems are exit 1. */
    char err[512];
    uint32_t incarnation = 0;
    rc = mp_host_next_incarnation(cfg.data_dir, cfg.address, &incarnation, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "moonpool node: %s\n", err);
        mp_config_free(&cfg);
        return MP_HOST_EXIT_FAIL;
    }

    /* A vanished peer must show up as a write error, not kill the node. */
    signal(SIGPIPE, SIG_IGN);

    host H;
    memset(&H, 0, sizeof H);
    H.opts = o;
    if (o.metrics_address) {
        snprintf(H.metrics_addr, sizeof H.metrics_addr, "%s", o.metrics_address);
        H.opts.metrics_address = H.metrics_addr;
    }
    H.exit_status = MP_HOST_EXIT_OK;
    H.shutdown_ns = cfg.shutdown_timeout_ns;
    H.env = mp_env_uv_create(NULL, 0);
    if (!H.env) {
        fprintf(stderr, "moonpool node: out of memory creating the event loop\n");
        mp_config_free(&cfg);
        return MP_HOST_EXIT_FAIL;
    }
    H.env->log_level = cfg.log_level;
    H.env->name = cfg.address;
    /* The cluster key and connection caps, before anything listens; no
     * secret: loopback only (protected mode). */
    rc = mp_host_apply_security(&cfg, cfg.address, H.env, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "moonpool node: %s\n", err);
        H.exit_status = rc == MP_EINVAL ? MP_HOST_EXIT_CONFIG : MP_HOST_EXIT_FAIL;
        goto teardown;
    }
    /* The config file's [node] keys, where the options left them unset. */
    if (cfg.log_json && o.log_format == MP_LOG_FORMAT_TEXT) o.log_format = MP_LOG_FORMAT_JSON;
    if (cfg.metrics_address && !H.opts.metrics_address) {
        snprintf(H.metrics_addr, sizeof H.metrics_addr, "%s", cfg.metrics_address);
        H.opts.metrics_address = H.metrics_addr;
    }
    H.env->log_format = o.log_format;
    if (cfg.tls_cert) {
        /* After the security policy: the wrapper copies the env's head. */
        mp_env_tls_config tc = {cfg.tls_cert, cfg.tls_key, cfg.tls_ca, 0, 0};
        if (mp_env_tls_create(H.env, &tc, &H.tls, err, sizeof err) < 0) {
            fprintf(stderr, "moonpool node: %s: %s\n", config_path, err);
            H.exit_status = MP_HOST_EXIT_CONFIG;
            goto teardown;
        }
        mp_env_log(H.env, MP_LOG_INFO, "tls on every link (certificate %s, CA %s)",
                   cfg.tls_cert, cfg.tls_ca);
    }

    if (start_signals(&H) < 0) {
        fprintf(stderr, "moonpool node: cannot install signal handlers\n");
        H.exit_status = MP_HOST_EXIT_FAIL;
        goto teardown;
    }
    if (open_storage(&H, &cfg, new_storage) < 0) {
        H.exit_status = MP_HOST_EXIT_FAIL;
        goto teardown;
    }

    /* 3. The node itself. */
    mp_node_config nc;
    rc = mp_config_to_node_config(&cfg, &nc);
    if (rc < 0) { /* cannot happen: the address is set; never run half-configured */
        fprintf(stderr, "moonpool node: %s: %s\n", config_path, mp_strerror(rc));
        H.exit_status = MP_HOST_EXIT_CONFIG;
        goto teardown;
    }
    nc.incarnation = incarnation;
    nc.storage = H.storage;
    nc.on_mailbox_depth = mailbox_warn;
    nc.on_declared_dead = on_declared_dead;
    nc.hook_ud = &H;
    rc = mp_node_create(H.tls ? H.tls : H.env, &nc, &H.node);
    if (rc < 0) {
        fprintf(stderr, "moonpool node: %s: the runtime refused the config: %s\n",
                config_path, mp_strerror(rc));
        H.node = NULL;
        H.exit_status = MP_HOST_EXIT_CONFIG;
        goto teardown;
    }
    for (size_t i = 0; i < ntypes; i++) {
        rc = mp_node_register_type(H.node, types[i]);
        if (rc < 0) {
            fprintf(stderr, "moonpool node: cannot register actor type '%s': %s\n",
                    types[i] && types[i]->name ? types[i]->name : "?", mp_strerror(rc));
            H.exit_status = MP_HOST_EXIT_FAIL;
            goto teardown;
        }
    }
    rc = mp_node_start(H.node);
    if (rc < 0) {
        fprintf(stderr, "moonpool node: cannot start on %s: %s\n", cfg.address,
                mp_strerror(rc));
        H.exit_status = MP_HOST_EXIT_FAIL;
        goto teardown;
    }
    if (H.opts.metrics_address) {
        rc = mp__metrics_open(H.env, H.opts.metrics_address, H.node, cfg.address,
                              cfg.cluster_namespace, incarnation, &H.metrics);
        if (rc < 0) {
            fprintf(stderr, "moonpool node: cannot serve metrics on %s: %s\n",
                    H.opts.metrics_address, mp_strerror(rc));
            H.metrics = NULL;
            H.exit_status = MP_HOST_EXIT_FAIL;
            goto teardown;
        }
        mp__metrics_set_ready(H.metrics, MP__READY_SERVING);
        mp_env_log(H.env, MP_LOG_INFO, "metrics, /healthz and /readyz on %s (port %d)",
                   H.opts.metrics_address, mp__metrics_port(H.metrics));
    }
    printf("moonpool node ready: address=%s namespace=%s incarnation=%" PRIu32
           " storage=%s pid=%ld\n",
           cfg.address, cfg.cluster_namespace, incarnation, mp_config_storage_name(cfg.storage),
           (long)getpid());
    fflush(stdout);
    if (mp__sd_notify("READY=1") < 0)
        mp_env_log(H.env, MP_LOG_WARN, "NOTIFY_SOCKET is set but READY=1 could not be sent to it");
    mp_env_log(H.env, MP_LOG_INFO, "node %s (namespace %s, incarnation %" PRIu32 ", %zu members) running",
               cfg.address, cfg.cluster_namespace, incarnation, cfg.member_count);
    if (!cfg.secret_file)
        mp_env_log(H.env, MP_LOG_INFO,
                   "no [security] secret_file: loopback only (any local process may join; "
                   "docs/security.md)");
    else
        mp_env_log(H.env, MP_LOG_INFO, "cluster authentication on (secret file %s)",
                   cfg.secret_file);
    H.started_ran = true;
    if (H.opts.started) H.opts.started(H.opts.ud, &H);

    rc = mp_env_uv_run(H.env);
    if (rc < 0) {
        fprintf(stderr, "moonpool node: event loop error: %s\n", mp_strerror(rc));
        H.exit_status = MP_HOST_EXIT_FAIL;
    }
    if (!H.shutting_down) {
        /* The loop ran dry without a signal: shut down in order anyway. */
        goto teardown;
    }
    goto done;

teardown:
    /* An error path (or a loop that returned early): stop the node and the
     * storage in the same order as a signal would, running the loop until
     * both reported. */
    if (!H.shutting_down) run_stopping(&H);
    H.shutting_down = true;
    if (H.node) {
        mp_node_shutdown(H.node, H.shutdown_ns, node_down, &H);
    } else if (H.metrics) {
        mp__metrics_close(H.metrics, metrics_closed, &H);
    } else if (H.storage) {
        mp_storage_close(H.storage, storage_closed, &H);
    } else {
        close_signals(&H);
    }
    while (H.node || H.metrics || H.storage) {
        if (!mp_env_uv_run_once(H.env, 1)) break;
    }
    close_signals(&H);
done:
    drain_and_destroy(&H);
    restore_signals(&H);
    if (H.exit_status == MP_HOST_EXIT_OK)
        fprintf(stderr, "moonpool node %s: stopped\n", cfg.address);
    else if (H.exit_status == MP_HOST_EXIT_DECLARED_DEAD)
        fprintf(stderr, "moonpool node %s: stopped, declared dead as incarnation %" PRIu32
                        " (exit status %d: start again to rejoin as a new incarnation)\n",
                cfg.address, incarnation, MP_HOST_EXIT_DECLARED_DEAD);
    mp_config_free(&cfg);
    return H.exit_status;
}
