/*
 * Child node processes for the demo and the cluster tests (see proc.h).
 *
 * Tools may use the OS directly: this is the outside of the simulated
 * world. The rule that matters here is "no process left behind": every
 * child is in one process group we can kill at once, carries a parent-death
 * signal, and every path out of a tool goes through mp_proc_stop_all or
 * mp_proc_kill_all.
 */
#define _GNU_SOURCE
#include "proc.h"

#include <arpa/inet.h>
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

void mp_proc_catch_signals(void)
{
    static bool installed;
    if (installed) return;
    installed = true;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool mp_proc_interrupted(void) { return interrupted != 0; }

void mp_proc_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* EINTR: return early, the caller checks the flag */
}

uint64_t mp_proc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int mp_proc_self_exe(char *buf, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0 || (size_t)n >= cap - 1) return -1;
    buf[n] = '\0';
    return 0;
}

static int start_child(mp_proc_group *g, mp_proc *p, const char *const *argv)
{
    pid_t parent = getpid();
    /* A dead group (every member gone) cannot be joined again. */
    if (g->pgid > 0 && kill(-g->pgid, 0) != 0 && errno == ESRCH) g->pgid = 0;
    pid_t pgid = g->pgid;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "moonpool: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* Child: only async-signal-safe calls until exec. */
        if (setpgid(0, pgid) != 0) setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127); /* the parent already died */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        int fd = open(p->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || nul < 0) _exit(126);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    /* Parent: set the group too, so it is right whichever runs first. */
    if (setpgid(pid, pgid ? pgid : pid) != 0 && pgid) setpgid(pid, pid);
    if (g->pgid == 0) g->pgid = pid;
    p->pid = pid;
    p->reaped = false;
    p->status = 0;
    return 0;
}

int mp_proc_spawn(mp_proc_group *g, const char *const *argv, const char *log_path)
{
    if (g->count >= MP_PROC_MAX) return -1;
    mp_proc *p = &g->procs[g->count];
    memset(p, 0, sizeof *p);
    if (snprintf(p->log_path, sizeof p->log_path, "%s", log_path) >= (int)sizeof p->log_path)
        return -1;
    if (start_child(g, p, argv) < 0) return -1;
    return (int)g->count++;
}

int mp_proc_respawn(mp_proc_group *g, int slot, const char *const *argv)
{
    assert(slot >= 0 && (size_t)slot < g->count);
    mp_proc *p = &g->procs[slot];
    if (p->pid > 0 && !p->reaped) return -1;
    return start_child(g, p, argv) < 0 ? -1 : slot;
}

static void note_exit(mp_proc *p, int status)
{
    p->status = status;
    p->reaped = true;
    p->pid = 0;
}

static int exit_code(int status)
{
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 255;
}

bool mp_proc_running(mp_proc_group *g, int slot)
{
    mp_proc *p = &g->procs[slot];
    if (p->pid <= 0) return false;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        note_exit(p, st);
        return false;
    }
    return true;
}

long mp_proc_log_size(const mp_proc_group *g, int slot)
{
    struct stat st;
    if (stat(g->procs[slot].log_path, &st) != 0) return 0;
    return (long)st.st_size;
}

int mp_proc_wait_line(mp_proc_group *g, int slot, const char *needle, long from_offset,
                      int timeout_ms, char *line, size_t cap)
{
    uint64_t end = mp_proc_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    char buf[4096];
    for (;;) {
        FILE *f = fopen(g->procs[slot].log_path, "r");
        if (f) {
            if (from_offset > 0) fseek(f, from_offset, SEEK_SET);
            while (fgets(buf, sizeof buf, f)) {
                if (strstr(buf, needle)) {
                    fclose(f);
                    if (line && cap) {
                        buf[strcspn(buf, "\n")] = '\0';
                        snprintf(line, cap, "%s", buf);
                    }
                    return 0;
                }
            }
            fclose(f);
        }
        if (!mp_proc_running(g, slot)) return -2;
        if (mp_proc_interrupted()) return -3;
        if (mp_proc_now_ns() >= end) return -1;
        mp_proc_sleep_ms(20);
    }
}

int mp_proc_signal(mp_proc_group *g, int slot, int sig)
{
    mp_proc *p = &g->procs[slot];
    if (p->pid <= 0) return -1;
    return kill(p->pid, sig);
}

int mp_proc_reap(mp_proc_group *g, int slot, int timeout_ms)
{
    mp_proc *p = &g->procs[slot];
    if (p->pid <= 0) return p->reaped ? exit_code(p->status) : -1;
    uint64_t end = mp_proc_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid || (r < 0 && errno == ECHILD)) {
            note_exit(p, r == p->pid ? st : 0);
            return exit_code(p->status);
        }
        if (mp_proc_now_ns() >= end) break;
        mp_proc_sleep_ms(10);
    }
    kill(p->pid, SIGKILL);
    int st = 0;
    while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR) {
    }
    note_exit(p, st);
    return exit_code(st);
}

void mp_proc_stop_all(mp_proc_group *g, int timeout_ms)
{
    for (size_t i = 0; i < g->count; i++)
        if (g->procs[i].pid > 0) kill(g->procs[i].pid, SIGTERM);
    uint64_t end = mp_proc_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (size_t i = 0; i < g->count; i++) {
        uint64_t now = mp_proc_now_ns();
        int left = now >= end ? 0 : (int)((end - now) / 1000000ull);
        if (g->procs[i].pid > 0) mp_proc_reap(g, (int)i, left);
    }
    mp_proc_kill_all(g);
}

void mp_proc_kill_all(mp_proc_group *g)
{
    /* The group first (catches anything a child may have started), then
     * each known child by pid in case it left the group. */
    if (g->pgid > 0) kill(-g->pgid, SIGKILL);
    for (size_t i = 0; i < g->count; i++) {
        mp_proc *p = &g->procs[i];
        if (p->pid <= 0) continue;
        kill(p->pid, SIGKILL);
        int st = 0;
        while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR) {
        }
        note_exit(p, st);
    }
}

int mp_proc_free_ports(int n, uint16_t *ports)
{
    int fds[MP_PROC_MAX];
    if (n <= 0 || n > MP_PROC_MAX) return -1;
    int rc = 0, made = 0;
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = -1;
            break;
        }
        fds[made++] = fd;
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = 0;
        socklen_t len = sizeof a;
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
            getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
            rc = -1;
            break;
        }
        ports[i] = ntohs(a.sin_port);
    }
    for (int i = 0; i < made; i++) close(fds[i]);
    return rc;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    int rc = (flag == FTW_DP) ? rmdir(path) : unlink(path);
    if (rc != 0 && errno != ENOENT) {
        fprintf(stderr, "moonpool: cannot remove '%s': %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int mp_proc_wipe_dir(const char *path, const char *marker)
{
    struct stat st;
    if (stat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "moonpool: '%s' is not a directory\n", path);
        return -2;
    }
    char mpath[1200];
    snprintf(mpath, sizeof mpath, "%s/%s", path, marker);
    bool marked = access(mpath, F_OK) == 0;
    if (!marked) {
        DIR *d = opendir(path);
        if (!d) return -1;
        struct dirent *e;
        bool empty = true;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                empty = false;
                break;
            }
        }
        closedir(d);
        if (!empty) {
            fprintf(stderr,
                    "moonpool: refusing to wipe '%s': it is not empty and was not made by "
                    "moonpool (no %s file)\n",
                    path, marker);
            return -2;
        }
    }
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}
