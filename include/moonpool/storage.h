/*
 * moonpool storage providers: asynchronous load/save/clear of one opaque
 * value per key, with ETags for optimistic concurrency.
 *
 * Why this shape:
 *   - Asynchronous with callbacks, like the env (env.h): a node is one
 *     single-threaded loop, so a provider that touches a disk or a database
 *     works elsewhere (libuv threadpool) and reports back on the loop thread.
 *   - ETags instead of locks: two activations of one actor that somehow
 *     coexist (a race, a partition, a restarted node) must not silently
 *     overwrite each other. Every save names the ETag it read; the provider
 *     refuses it with MP_ECONFLICT when the stored ETag differs. The stale
 *     writer learns it is stale instead of destroying the winner's update.
 *   - ETags are drawn from a counter that only grows per provider store
 *     (database, disk), not per key, so a key that is cleared and written
 *     again never reuses an old ETag: a writer holding an ETag from before a
 *     clear cannot succeed by accident (no ABA). 0 always means "no record".
 *   - The writer (node incarnation + activation id) is stored with each row
 *     as a fencing token, for diagnosis and for the runtime's checks.
 *
 * Keys are text built by the caller as "namespace/type::key" (mp_storage_key
 * below), 1..MP_STORAGE_KEY_MAX bytes of printable ASCII (0x21..0x7E). The
 * provider validates them and never interprets them otherwise.
 *
 * Threading and callbacks (same contract as env.h): every function must be
 * called on the env's loop thread; every callback runs on it, always on a
 * later loop turn, never from inside the call that started the operation.
 * A function that returns 0 promises exactly one callback; a function that
 * returns an error (MP_EINVAL, MP_ETOOBIG, MP_ECLOSED, MP_ENOMEM) runs no
 * callback. Every callback carries a status.
 *
 * Ordering: operations of one provider instance take effect in the order
 * they were issued, and their callbacks run in that order too (an operation
 * issued after a save's callback reported success sees that save).
 *
 * Durability: a save whose callback reported 0 survives a crash of the
 * process (SQLite: synchronous=FULL; PostgreSQL: a committed transaction;
 * simulator: the record is on the simulated disk). A save whose callback
 * did not run yet, or reported an error, may or may not have been applied —
 * as with any real disk or database (a lost connection after COMMIT).
 *
 * Errors reported in callbacks:
 *   MP_ENOMEM     out of memory while completing (a load's copy);
 *   MP_ECONFLICT  the stored ETag is not the expected one (nothing changed);
 *   MP_ESTORAGE   the backend failed (I/O, lost connection, injected fault);
 *   MP_ECORRUPT   the stored record failed validation (checksum, types);
 *   MP_ECLOSED    the provider was closed before the operation could run.
 */
#ifndef MOONPOOL_STORAGE_H
#define MOONPOOL_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/env.h"
#include "moonpool/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A provider instance. */
typedef struct mp_storage mp_storage;

/* Longest key, in bytes. */
#define MP_STORAGE_KEY_MAX 512
/* Largest value a provider accepts, in bytes (64 MiB); larger saves fail at
 * once with MP_ETOOBIG. Actor state is expected to be far smaller. */
#define MP_STORAGE_VALUE_MAX ((size_t)64 << 20)

/* Who wrote a record: the fencing token stored with it. */
typedef struct mp_storage_writer {
    uint32_t incarnation; /* the writing node's incarnation */
    uint64_t activation;  /* the writing activation's id on that node */
} mp_storage_writer;

/* A loaded record. `data` belongs to the provider and is valid only during
 * the load callback: copy what you keep. */
typedef struct mp_storage_record {
    const void *data; /* NULL when len == 0 */
    size_t len;
    uint64_t etag;    /* 0: no record stored */
    mp_storage_writer writer; /* zero when etag == 0 */
} mp_storage_record;

/* Load finished. status 0 with etag 0 and len 0 means "no state stored".
 * status 0 with etag > 0 is a record (len may be 0: an empty value). On an
 * error (MP_ESTORAGE, MP_ECORRUPT, MP_ECLOSED) data is NULL, len and etag 0.
 * `data` is valid only during the call. */
typedef void (*mp_storage_load_cb)(void *ud, int status, const void *data,
                                   size_t len, uint64_t etag);

/* As mp_storage_load_cb, with the writer of the record too (NULL on error). */
typedef void (*mp_storage_load_record_cb)(void *ud, int status,
                                          const mp_storage_record *rec);

/* Save finished: status 0 and the record's new ETag (> 0, strictly greater
 * than the ETag it replaced), or an error (MP_ECONFLICT, MP_ESTORAGE,
 * MP_ECORRUPT, MP_ECLOSED) and new_etag 0. */
typedef void (*mp_storage_save_cb)(void *ud, int status, uint64_t new_etag);

/* Clear finished: 0, MP_ECONFLICT, MP_ESTORAGE, MP_ECORRUPT or MP_ECLOSED. */
typedef void (*mp_storage_clear_cb)(void *ud, int status);

/* The provider is closed and freed; no callback of it runs after this. */
typedef void (*mp_storage_close_cb)(void *ud);

/* ---- operations ---------------------------------------------------------- */

/* Read the record stored under key. Returns 0 (cb runs once, later) or at
 * once: MP_EINVAL (NULL storage/cb, bad key), MP_ECLOSED (closing),
 * MP_ENOMEM. The key bytes are copied. */
int mp_storage_load(mp_storage *s, const char *key, size_t key_len,
                    mp_storage_load_cb cb, void *ud);

/* The same, reporting the whole record (with its writer). */
int mp_storage_load_record(mp_storage *s, const char *key, size_t key_len,
                           mp_storage_load_record_cb cb, void *ud);

/* Store `data` (len bytes; data may be NULL when len == 0) under key if the
 * stored ETag equals expected_etag (0: the key must hold no record), else
 * fail with MP_ECONFLICT and change nothing: never a silent overwrite.
 * `writer` (may be NULL: stored as zeros) is stored with the record. Key and
 * data are copied: the caller may reuse its buffers at once. Returns 0 (cb
 * runs once, later) or at once MP_EINVAL, MP_ETOOBIG (len >
 * MP_STORAGE_VALUE_MAX), MP_ECLOSED, MP_ENOMEM. */
int mp_storage_save(mp_storage *s, const char *key, size_t key_len,
                    const void *data, size_t len, uint64_t expected_etag,
                    const mp_storage_writer *writer, mp_storage_save_cb cb,
                    void *ud);

/* Delete the record under key if its ETag equals expected_etag, else
 * MP_ECONFLICT. Clearing with expected_etag 0 succeeds when there is no
 * record (and conflicts when there is one). Returns as mp_storage_save. */
int mp_storage_clear(mp_storage *s, const char *key, size_t key_len,
                     uint64_t expected_etag, mp_storage_clear_cb cb, void *ud);

/* Graceful close: new operations fail at once with MP_ECLOSED; operations
 * already accepted complete normally (their callbacks run), then files and
 * connections are released, then cb(ud) runs (cb may be NULL) and the
 * provider's memory is freed. Call once. */
void mp_storage_close(mp_storage *s, mp_storage_close_cb cb, void *ud);

/* Immediate release for a process that dies (the simulator's kill, a
 * node's teardown): no callback of the provider ever runs again, accepted
 * operations are abandoned (a pending save may or may not have reached the
 * disk). The simulated provider decides each unsynced write from the env's
 * randomness. The SQLite/PostgreSQL providers cannot interrupt a threadpool
 * job in progress: its memory and handles are released when the loop runs
 * that job's completion (so keep running the loop before destroying it).
 * NULL is ignored. */
void mp_storage_free_now(mp_storage *s);

/* Provider name ("memory", "sim", "sqlite", "postgres"); static string. */
const char *mp_storage_name(const mp_storage *s);

/* Counters, for tests, metrics and benchmarks. */
typedef struct mp_storage_stats {
    uint64_t loads, saves, clears;  /* completed operations, any status */
    uint64_t conflicts;             /* completed with MP_ECONFLICT */
    uint64_t errors;                /* completed with another error */
    uint64_t transactions;          /* committed backend transactions (SQL) */
    uint64_t max_batch;             /* most operations in one transaction */
    uint64_t pending;               /* accepted, callback not yet run */
} mp_storage_stats;

void mp_storage_get_stats(const mp_storage *s, mp_storage_stats *out);

/* ---- keys ---------------------------------------------------------------- */

/* Whether key is a valid storage key (1..MP_STORAGE_KEY_MAX bytes, each in
 * 0x21..0x7E). Pure. */
bool mp_storage_key_valid(const char *key, size_t key_len);

/* Build "namespace/type::key" into buf (NUL-terminated). ns and type must be
 * non-empty [A-Za-z0-9_.-]; key must be non-empty; key bytes outside
 * [A-Za-z0-9_.-] and ':' / '/' are written %XX (uppercase hex), so the text
 * is a valid storage key and distinct (ns, type, key) give distinct texts.
 * Returns the length written (without the NUL), or MP_EINVAL (NULL, empty or
 * bad part), MP_ETOOBIG (longer than MP_STORAGE_KEY_MAX or than cap - 1).
 * Pure, any thread. */
int mp_storage_key(char *buf, size_t cap, const char *ns, const char *type,
                   const char *key);

/* ---- providers ----------------------------------------------------------- */

/* In-memory provider (tests): nothing survives free. Completions arrive on
 * a later loop turn. Returns NULL on out-of-memory. Works on any env. */
mp_storage *mp_storage_memory_create(mp_env *env);

/* Simulated disk provider (simulator). */
typedef struct mp_storage_sim_config {
    uint64_t latency_min_ns;    /* each operation takes [min, max] */
    uint64_t latency_max_ns;
    double read_fail_p;         /* a load fails with MP_ESTORAGE */
    double write_fail_p;        /* a save/clear fails with MP_ESTORAGE */
    double write_fail_applied_p; /* ...yet reached the disk anyway */
    double corrupt_read_p;      /* a load reports MP_ECORRUPT */
    double kill_apply_p;        /* an unsynced write survives a kill */
    bool buggify;               /* MP_BUGGIFY sites may add delays/faults */
} mp_storage_sim_config;

/* Defaults: latency 50us..2ms, no failures, kill_apply_p 0.5, buggify on. */
void mp_storage_sim_config_init(mp_storage_sim_config *cfg);

/* Create a provider whose records live in *disk_slot (typically
 * mp_sim_process_disk(sim, pid)), so they survive kill and restart: when
 * *disk_slot is NULL a new empty disk is made and stored there; otherwise
 * the existing disk is used. At most one live provider per disk (a second
 * create returns NULL). cfg NULL: defaults. Randomness (latency, faults)
 * comes from the env, so a simulation seed replays it. Returns NULL on
 * out-of-memory or misuse (NULL env/slot, foreign pointer in the slot). */
mp_storage *mp_storage_sim_create(mp_env *env, void **disk_slot,
                                  const mp_storage_sim_config *cfg);

/* Free a simulated disk at world teardown (after its provider is gone).
 * NULL is ignored. */
void mp_storage_sim_disk_free(void *disk);

/* Number of records on a simulated disk (for workload checks). */
size_t mp_storage_sim_disk_count(const void *disk);

/* SQLite provider (embedded default): one database file at `path`, created
 * if missing (its directory must exist). Needs the libuv env backend (the
 * work runs on libuv's threadpool). Opening is synchronous (at startup).
 * Returns 0 and *out, or MP_EINVAL (NULL/empty path, env not libuv),
 * MP_EIO (cannot open or create the file), MP_EVERSION (the file is a
 * database with another schema), MP_ECORRUPT (not a database / corrupt),
 * MP_ENOMEM. The reason is also logged through the env. */
int mp_storage_sqlite_open(mp_env *env, const char *path, mp_storage **out);

/* Flag of mp_storage_sqlite_open_ex: fail with MP_ENOTFOUND when no file is
 * at `path` instead of creating an empty database. */
#define MP_SQLITE_NO_CREATE 1u

/* mp_storage_sqlite_open with flags (0 or MP_SQLITE_NO_CREATE; others are
 * MP_EINVAL) and, when cluster_id is not NULL, the database's cluster id in
 * *cluster_id: a random nonzero number created with the database (added to
 * a database from before ids at its first open), the same for every node
 * sharing the file. A host records it to tell, at its next start, a deleted
 * or replaced database from its own (moonpool node does, src/host/run.c).
 * While the provider runs, every batch checks that the file at `path` and
 * its WAL are still the ones it opened, and every write batch that the
 * cluster id is unchanged; once not, every operation fails with
 * MP_ESTORAGE (logged as an error) until the process restarts. Errors as
 * mp_storage_sqlite_open, plus MP_ENOTFOUND (no file, with
 * MP_SQLITE_NO_CREATE). Loop thread, at startup. */
int mp_storage_sqlite_open_ex(mp_env *env, const char *path, unsigned flags,
                              mp_storage **out, uint64_t *cluster_id);

/* PostgreSQL provider (clusters on many machines sharing one database):
 * `conninfo` is a libpq connection string. Connects synchronously, creates
 * the table if missing. Needs the libuv env backend. Returns 0 and *out, or
 * MP_EINVAL, MP_ECONNREFUSED (cannot connect), MP_EVERSION (table exists
 * with another schema), MP_ESTORAGE (other server errors), MP_ENOMEM. */
int mp_storage_postgres_open(mp_env *env, const char *conninfo,
                             mp_storage **out);

#ifdef __cplusplus
}
#endif
#endif
