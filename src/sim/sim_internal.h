/*
 * Private structures of the simulated world, shared by the src/sim files only.
 *
 * Ownership model (the part that keeps the simulator free of dangling
 * pointers): every queued event that points at a world object (a stream) is
 * linked into that object's event list, so freeing the object removes its
 * events from the queue first. Events that point at nothing of ours (timers,
 * defers, completion callbacks) carry a (pid, incarnation) tag instead and
 * are simply ignored when they pop after their process died. Together the two
 * rules mean a popped event never dereferences freed memory.
 *
 * The queue is a binary min-heap of (time, seq, event*) entries; seq is a
 * global insertion counter, so ties in time resolve in scheduling order and
 * the order never depends on pointer values. Each event remembers its heap
 * position so a cancelled timer is removed in O(log n). Events come from a
 * pool of fixed-size chunks with a free list: no malloc per event, and a
 * stable pool index lets a timer id ((generation << 32) | index + 1) be
 * resolved in O(1) and rejected once stale.
 */
#ifndef MP_SIM_INTERNAL_H
#define MP_SIM_INTERNAL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/env.h"
#include "moonpool/sim.h"
#include "util/prng.h"

/* ---- intrusive circular doubly-linked list ------------------------------- */

typedef struct sim_link {
    struct sim_link *prev, *next;
} sim_link;

#define SIM_CONTAINER(ptr, type, member)                                      \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void sim_link_init(sim_link *l) { l->prev = l->next = l; }
static inline bool sim_link_empty(const sim_link *l) { return l->next == l; }
static inline void sim_link_unlink(sim_link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}
/* Append `l` at the tail of list `head`. */
static inline void sim_link_append(sim_link *head, sim_link *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

/* ---- events --------------------------------------------------------------- */

typedef enum sim_ev_kind {
    EV_BOOT = 0,     /* boot (or reboot) a process */
    EV_TIMER,        /* env timer */
    EV_DEFER,        /* env defer */
    EV_CONNECT,      /* a connect attempt reaches its destination */
    EV_CONNECT_DONE, /* connector learns of success (stream linked) */
    EV_CONNECT_FAIL, /* connector learns of failure */
    EV_DELIVER,      /* bytes / EOF / error to a reading stream */
    EV_WRITE_DONE,   /* write completion */
    EV_CLOSE_DONE,   /* stream or listener close completion */
    EV_FAULT_TICK,   /* fault generator */
    EV_WORLD,        /* mp_sim_schedule callback */
    EV_EXIT,         /* a stopping process exits (or its deadline passed) */
    EV_KIND_COUNT_
} sim_ev_kind;

#define SIM_HEAP_NONE UINT32_MAX

typedef struct sim_event {
    uint64_t time;
    uint64_t seq;
    uint32_t idx;      /* pool index (stable) */
    uint32_t gen;      /* bumped at every free: stale timer ids miss */
    uint32_t heap_pos; /* SIM_HEAP_NONE when not queued */
    uint8_t kind;
    int32_t pid;  /* owning process, -1 for world events */
    uint32_t inc; /* owning incarnation */
    union {
        mp_timer_cb timer;
        mp_defer_cb defer;
        mp_connect_cb connect;
        mp_write_cb write;
        mp_close_cb close;
        void (*world)(void *ud);
    } fn;
    void *ud;
    void *obj;   /* kind-specific: stream, owned address copy, ... */
    int status;
    uint64_t aux; /* kind-specific: boot token, ... */
    sim_link olink; /* link in an object's event list; also the free list */
} sim_event;

typedef struct sim_heap_entry {
    uint64_t time;
    uint64_t seq;
    sim_event *ev;
} sim_heap_entry;

#define SIM_POOL_SHIFT 10
#define SIM_POOL_CHUNK (1u << SIM_POOL_SHIFT)

/* ---- network -------------------------------------------------------------- */

typedef struct sim_chunk {
    struct sim_chunk *next;
    uint64_t deliver_at;
    size_t len;
    size_t off; /* bytes of it already delivered */
    uint8_t data[];
} sim_chunk;

/* Bytes flowing from conn->end[i] to conn->end[1 - i]. */
typedef struct sim_dir {
    sim_chunk *head, *tail;
    uint64_t last_deliver_at; /* keeps chunks of one direction in order */
    bool fin;                 /* sender closed: EOF after the queued bytes */
    uint64_t fin_at;
} sim_dir;

struct sim_stream;

typedef struct sim_conn {
    struct sim_stream *end[2]; /* NULL once that end is freed */
    int pid[2];                /* processes of the two ends (kept after free) */
    sim_dir dir[2];
    bool reset;
    uint64_t serial;
    sim_link wlink; /* world's list of connections, in creation order */
} sim_conn;

struct sim_env;

typedef struct sim_stream {
    mp_env *env; /* MUST be first: env.h reads *(mp_env **)stream */
    struct sim_env *senv;
    sim_conn *conn;
    int side;
    mp_read_cb read_cb;
    void *read_ud;
    bool reading;
    bool ended; /* EOF or error delivered: no more reads */
    int err;    /* pending error (MP_ECONNRESET) or 0 */
    uint64_t err_at;
    sim_event *deliver_ev;
    sim_link evs;   /* events pointing at this stream */
    sim_link elink; /* env's stream list */
    char peer[72];
} sim_stream;

typedef struct sim_listener {
    mp_env *env; /* MUST be first: env.h reads *(mp_env **)listener */
    struct sim_env *senv;
    char *addr;
    mp_accept_cb cb;
    void *ud;
    bool registered; /* in the world's address registry */
    sim_link elink;  /* env's listener list */
    sim_link wlink;  /* world's registry of open listeners */
} sim_listener;

/* ---- processes ------------------------------------------------------------ */

typedef struct sim_env {
    mp_env base; /* first: the mp_env handed to the process */
    mp_sim *sim;
    uint64_t clock_offset; /* added to its clock readings (sim_env.c) */
    int pid;
    uint32_t inc;
    bool dead;
    mp_prng rng;
    sim_link streams;
    sim_link listeners;
    struct sim_env *grave_next;
} sim_env;

typedef enum sim_proc_state {
    PROC_NEW = 0,     /* spawned, first boot pending */
    PROC_RUNNING = 1, /* booted */
    PROC_DEAD = 2     /* killed, or boot failed */
} sim_proc_state;

typedef struct sim_proc {
    int pid;
    char *addr;
    char host[64];
    const mp_sim_process_ops *ops;
    void *arg;
    uint32_t inc;
    sim_proc_state state;
    bool killable;
    bool killed_by_gen;
    bool boot_pending;
    uint64_t boot_token;
    void *state_ptr;
    sim_env *env;
    void *disk;
    uint64_t clog_until; /* 0 = not clogged; UINT64_MAX = until healed */
    uint64_t paused_until; /* events of it before this time wait for it */
    bool stopping;         /* mp_sim_stop asked, exit pending */
    uint64_t stop_restart_delay;
} sim_proc;

typedef struct sim_partition {
    int a, b;
    bool oneway; /* only a -> b is cut */
    uint64_t until; /* UINT64_MAX = until healed */
} sim_partition;

typedef struct sim_label {
    uint64_t time;
    int32_t pid;
    uint8_t kind;
} sim_label;

struct mp_sim {
    mp_sim_config cfg;
    mp_sim_faults faults;
    uint64_t seed;
    uint64_t epoch; /* buggify decision epoch, unique per world */
    uint64_t now;
    uint64_t seq;

    /* queue */
    sim_heap_entry *heap;
    uint32_t heap_len, heap_cap;
    sim_event **pool; /* chunks */
    uint32_t pool_chunks, pool_chunk_cap;
    uint32_t pool_used; /* events handed out from the chunks so far */
    sim_link free_events;

    /* randomness streams */
    mp_prng rng_faults, rng_net, rng_buggify, rng_world;

    /* processes */
    sim_proc **procs;
    int nprocs, procs_cap;
    sim_env *graveyard;
    bool dispatching;

    /* network */
    sim_link conns;
    sim_link listeners;
    uint64_t conn_serial;
    sim_partition *parts;
    int nparts, parts_cap;
    uint8_t *scratch;
    size_t scratch_cap;

    /* fault generator */
    bool tick_scheduled;
    bool healed;

    /* trace */
    uint64_t trace_hash;
    uint64_t events;
    uint64_t trace_extra; /* folded for the current event (data hash) */
    uint64_t *trace;
    sim_label *labels;
    uint64_t trace_cap;
    char label_buf[96];

    /* outcome */
    bool failed;
    uint64_t failures;
    char failure[1024];

    mp_sim_stats stats;
};

/* ---- sim.c ---------------------------------------------------------------- */
sim_event *sim_ev_alloc(mp_sim *sim, sim_ev_kind kind, int pid, uint32_t inc);
void sim_ev_push(mp_sim *sim, sim_event *ev, uint64_t time);
void sim_ev_remove(mp_sim *sim, sim_event *ev); /* out of the heap */
void sim_ev_free(mp_sim *sim, sim_event *ev);   /* releases payload too */
sim_event *sim_ev_by_id(mp_sim *sim, mp_timer_id id);
mp_timer_id sim_ev_id(const sim_event *ev);
void sim_proc_kill(mp_sim *sim, sim_proc *p, bool reset_conns);
int sim_schedule_boot(mp_sim *sim, sim_proc *p, uint64_t delay_ns);
bool sim_proc_paused(mp_sim *sim, const sim_proc *p);
uint64_t sim_hash_bytes(const uint8_t *p, size_t n);

static inline sim_proc *sim_proc_get(mp_sim *sim, int pid)
{
    if (!sim || pid < 0 || pid >= sim->nprocs) return NULL;
    return sim->procs[pid];
}

/* ---- sim_env.c ------------------------------------------------------------ */
sim_env *sim_env_create(mp_sim *sim, sim_proc *p);
/* At a kill: reset connections, unregister listeners, drop stream events. */
void sim_env_kill_objects(sim_env *env, bool reset_conns);
/* After teardown: free whatever streams and listeners remain. */
void sim_env_free_objects(sim_env *env);
void sim_env_free(sim_env *env);

/* ---- sim_net.c ------------------------------------------------------------ */
uint64_t sim_net_latency(mp_sim *sim);
bool sim_net_blocked(mp_sim *sim, int a, int b, uint64_t *until);
int sim_partition_add(mp_sim *sim, int a, int b, bool oneway,
                      uint64_t duration_ns);
sim_stream *sim_stream_new(sim_env *env, sim_conn *c, int side,
                           const char *peer);
void sim_stream_free(mp_sim *sim, sim_stream *s);
void sim_stream_schedule(mp_sim *sim, sim_stream *s);
void sim_stream_drop_events(mp_sim *sim, sim_stream *s);
int sim_net_write(sim_stream *s, const mp_iovec *iov, int iovcnt,
                  mp_write_cb cb, void *ud);
void sim_net_close(sim_stream *s, mp_close_cb cb, void *ud);
int sim_net_connect(sim_env *env, const char *addr, mp_connect_cb cb,
                    void *ud);
void sim_net_on_connect(mp_sim *sim, sim_event *ev);
void sim_net_on_deliver(mp_sim *sim, sim_event *ev);
void sim_conn_reset(mp_sim *sim, sim_conn *c, uint64_t delay0,
                    uint64_t delay1);
void sim_net_kick_all(mp_sim *sim);
sim_listener *sim_net_find_listener(mp_sim *sim, const char *addr);
void sim_net_free_all(mp_sim *sim);

/* ---- sim_faults.c --------------------------------------------------------- */
void sim_faults_on_tick(mp_sim *sim, sim_event *ev);
void sim_faults_start(mp_sim *sim);

/* ---- sites.c -------------------------------------------------------------- */
/* Zero every linked site's counters and decisions (at world creation). */
void mp_sites_reset_(void);

/* Stream constants for mp_mix64(seed, STREAM): independent randomness. */
#define SIM_STREAM_CONFIG 0x636f6e666967ull  /* "config" */
#define SIM_STREAM_FAULTS 0x6661756c7473ull  /* "faults" */
#define SIM_STREAM_NET 0x6e6574776f726bull   /* "network" */
#define SIM_STREAM_BUGGIFY 0x62756767ull     /* "bugg" */
#define SIM_STREAM_WORLD 0x776f726c64ull     /* "world" */
#define SIM_STREAM_SITES 0x7369746573ull     /* "sites" */
#define SIM_STREAM_PROCFAULTS 0x70726f63ull  /* "proc" */

#endif
