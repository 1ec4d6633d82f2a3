/*
 * Child node processes for the demo and the cluster tests: spawn, wait for
 * the "ready" line, signal, reap — and never leave one behind.
 *
 * Every child joins one process group (the group of the first child) so a
 * single kill(-pgid) reaches all of them on an error path, and asks the
 * kernel to SIGKILL it if its parent dies (PR_SET_PDEATHSIG): even a demo
 * killed with SIGKILL leaves no node running. The group is separate from
 * the terminal's foreground group, so the parent decides how its nodes stop
 * (a Ctrl-C reaches the parent, which shuts the nodes down in order).
 *
 * A child's stdout and stderr go to one log file; the parent learns that a
 * node listens by finding its "ready" line there (polling the file: the
 * parent is a tool, it may sleep; no pipe means a parent that stops reading
 * can never block a node).
 */
#ifndef MP_TOOLS_PROC_H
#define MP_TOOLS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MP_PROC_MAX 16

typedef struct mp_proc {
    pid_t pid;        /* 0: not running (never started or reaped) */
    int status;       /* waitpid status once reaped */
    bool reaped;
    char log_path[1024];
} mp_proc;

typedef struct mp_proc_group {
    pid_t pgid;       /* 0 until the first child */
    mp_proc procs[MP_PROC_MAX];
    size_t count;
} mp_proc_group;

/* Absolute path of the running executable (/proc/self/exe resolved), so
 * children run the very same binary. Returns 0 or -1. */
int mp_proc_self_exe(char *buf, size_t cap);

/* Start argv[0] with argv (NULL-terminated) as a new member of g, its
 * output appended to log_path. Returns the slot index (>= 0) or -1 with a
 * reason on stderr. */
int mp_proc_spawn(mp_proc_group *g, const char *const *argv, const char *log_path);

/* Start again in the same slot (after the previous child was reaped). */
int mp_proc_respawn(mp_proc_group *g, int slot, const char *const *argv);

/* Wait until the log of slot contains a line with `needle` that was not
 * there before `from_offset` (bytes of the log to skip), for at most
 * timeout_ms. Copies that line (without newline) into line (may be NULL).
 * Returns 0, -1 on timeout, -2 if the child exited (reaped), -3 if
 * interrupted (mp_proc_interrupted). */
int mp_proc_wait_line(mp_proc_group *g, int slot, const char *needle, long from_offset,
                      int timeout_ms, char *line, size_t cap);

/* Current size of slot's log (to wait for lines after this point). */
long mp_proc_log_size(const mp_proc_group *g, int slot);

/* Send sig to the child in slot (if running). Returns 0 or -1. */
int mp_proc_signal(mp_proc_group *g, int slot, int sig);

/* Reap the child in slot, waiting at most timeout_ms; then SIGKILL and
 * reap. Returns its exit status (0..255), 128+signal if killed by a signal,
 * or -1 if it was not running. */
int mp_proc_reap(mp_proc_group *g, int slot, int timeout_ms);

/* Graceful stop of every running child: SIGTERM, wait up to timeout_ms in
 * total, SIGKILL the rest (whole group), reap all. Safe to call twice. */
void mp_proc_stop_all(mp_proc_group *g, int timeout_ms);

/* SIGKILL the whole group and reap: the error path. */
void mp_proc_kill_all(mp_proc_group *g);

/* Whether the child in slot is still running (reaps it if it exited). */
bool mp_proc_running(mp_proc_group *g, int slot);

/* Pick n distinct free TCP ports on 127.0.0.1 (bound together, then
 * released: another program could still take one before a node does; the
 * caller retries on "address in use"). Returns 0 or -1. */
int mp_proc_free_ports(int n, uint16_t *ports);

/* SIGINT/SIGTERM/SIGHUP set a flag instead of killing the parent, so it can
 * stop its children in order. Installs handlers once. */
void mp_proc_catch_signals(void);
bool mp_proc_interrupted(void);

/* Sleep for ms milliseconds (tools only; interrupted early by a signal). */
void mp_proc_sleep_ms(int ms);

/* Monotonic time in nanoseconds (tools only). */
uint64_t mp_proc_now_ns(void);

/* Remove directory `path` and everything under it. Refuses (returns -2)
 * unless the directory is missing, empty, or holds `marker` (a file the
 * tool itself created), so a mistyped --data cannot wipe a home
 * directory. Returns 0, -1 on error (message on stderr) or -2. */
int mp_proc_wipe_dir(const char *path, const char *marker);

#endif
