/*
 * The SQLite provider: moonpool's embedded, durable default.
 *
 * One database file per node (or shared by the nodes of one machine), one
 * connection for the data (plus one that only checkpoints, see
 * sq_wal_hook), used only from libuv's
 * threadpool, one job at a time (batch.c): every op queued while the
 * previous job ran commits in ONE transaction, so one fsync covers a whole
 * batch (group commit).
 *
 * Durability: journal_mode=WAL with synchronous=FULL. In WAL mode NORMAL
 * skips the fsync at commit: it survives a process crash (kill -9: the
 * WAL pages are in the OS's cache) but can lose the last transactions on
 * power loss or an OS crash, which would break "the callback said saved,
 * so it is saved"; FULL fsyncs the WAL at every commit, and group commit
 * pays that once per batch, not once per save. The price shows when
 * several node processes share one file: their commits, fsync included,
 * are serialised by SQLite's write lock (the demo: 3 nodes, ~2-5 ms per
 * commit under load, about 5,000 bank ops/s; NORMAL measured about twice
 * that, the same as the memory provider). We keep FULL: the bound is the
 * disk's, and weakening what "saved" means is not a tuning decision.
 *
 * Several processes on one file: the write lock is polled by sq_busy at
 * the scale of a commit (not SQLite's default sleeps of up to 100 ms), and
 * WAL checkpoints run on a thread of their own, outside the batches'
 * commits (sq_wal_hook).
 *
 * ETags come from a counter in moonpool_meta that only grows (read and
 * written inside each write transaction, under SQLite's write lock, so
 * even two processes sharing a file never hand out the same value), and
 * the new ETag is also above the row's old one. A cleared key written
 * again can therefore never reuse an ETag (no ABA for stale writers).
 *
 * Nothing read from the file is trusted: types, ranges and a CRC32C of the
 * value are checked, and a row that fails is reported as MP_ECORRUPT for
 * that op only. A failure of the database itself (I/O, full disk, locked
 * beyond the busy timeout) rolls the transaction back and fails every op
 * of that batch with MP_ESTORAGE: they were all in the one transaction.
 *
 * Schema identity: PRAGMA user_version holds MP_SQLITE_SCHEMA; a database
 * with other tables or another version is refused (MP_EVERSION), never
 * modified.
 *
 * Cluster identity: a database is created with a random cluster id (row
 * 'cluster_id' of moonpool_meta; a database made before it existed gets
 * one at its next open). The process host records the id in the node's
 * data dir and refuses to start on a database with another id, or to
 * create a missing one (MP_SQLITE_NO_CREATE), unless told to: that is how
 * a deleted or replaced file is told from a first start (src/host/run.c).
 * While the node runs, deleting or replacing the file is invisible to
 * SQLite: it keeps writing into the unlinked inode, and everything is gone
 * at the next start. So every batch first asks the VFS whether the
 * database or its WAL file is still the one at its path
 * (SQLITE_FCNTL_HAS_MOVED: one stat() each, nothing next to an fsync), and
 * every write batch reads the cluster id back. Once either fails, every
 * batch fails with MP_ESTORAGE until the process restarts (sticky: a file
 * recreated at the path by someone else is not ours either), and the loop
 * thread logs it as an error (sq_after_job).
 */
#include <assert.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "moonpool/env_uv.h"
#include "storage/batch.h"
#include "util/crc32c.h"

/* "mp" + schema 1: a value no other application is likely to use. */
#define MP_SQLITE_SCHEMA 0x6d700001

/* How long a transaction waits for another connection (usually another
 * node process sharing the file) to release its lock before the batch fails
 * with MP_ESTORAGE. */
#define SQ_BUSY_TIMEOUT_NS 5000000000ull
/* Durability level of every connection (see the top of the file). */
#define SQ_SYNC_PRAGMA "PRAGMA synchronous=FULL"
/* The busy handler's pauses: from SQ_BUSY_MIN_NS doubling up to
 * SQ_BUSY_MAX_NS (see sq_busy). */
#define SQ_BUSY_MIN_NS 20000ull  /* 20 us */
#define SQ_BUSY_MAX_NS (500 * MP_NS_PER_US)

/* Why a batch found the database not to be its own (sq_ctx.lost). */
enum { SQ_OURS = 0, SQ_MOVED, SQ_WAL_MOVED, SQ_OTHER_ID };

typedef struct sq_ctx {
    sqlite3 *db;
    sqlite3_stmt *begin_r, *begin_w, *commit, *rollback;
    sqlite3_stmt *get, *get_etag, *put, *del, *ctr_get, *ctr_put, *id_get;
    mp_env *env; /* for logging from open and sq_after_job (loop thread) */
    char *path;
    char *wal_path;      /* NULL: no WAL file found at open (not checked) */
    dev_t wal_dev;
    ino_t wal_ino;
    uint64_t cluster_id; /* read at open */
    /* Written by the worker (sq_run), read by the loop thread after the
     * job (sq_after_job): libuv's hand-off orders them. */
    int lost;              /* SQ_OURS, or why every batch now fails */
    uint64_t lost_batches; /* batches failed for it */
    uint64_t lost_logged;  /* loop thread: lost_batches at the last log line */
    /* Busy handler (the thread using db): when the current wait gives up. */
    uint64_t busy_deadline_ns;
    /* The checkpointer (see sq_wal_hook): its own connection and thread;
     * `ckpt_due` and `ckpt_stop` are guarded by ckpt_mu. */
    sqlite3 *ckpt_db;
    uv_thread_t ckpt_thread;
    uv_mutex_t ckpt_mu;
    uv_cond_t ckpt_cv;
    bool ckpt_started; /* thread, mutex and cond exist */
    bool ckpt_due, ckpt_stop;
} sq_ctx;

static void ckpt_stop(sq_ctx *c);

static void sq_close_ctx(sq_ctx *c)
{
    if (!c) return;
    ckpt_stop(c);
    assert(!c->ckpt_started && !c->ckpt_db);
    sqlite3_stmt **all[] = {&c->begin_r, &c->begin_w, &c->commit,
                            &c->rollback, &c->get, &c->get_etag,
                            &c->put, &c->del, &c->ctr_get, &c->ctr_put,
                            &c->id_get};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
    if (c->db) sqlite3_close_v2(c->db);
    c->db = NULL;
    free(c->path);
    free(c->wal_path);
    free(c);
}

static void sq_shutdown(void *ctx) { sq_close_ctx(ctx); }

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * MP_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* SQLite's busy handler: another connection holds the lock we need.
 *
 * Why not sqlite3_busy_timeout: it sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25,
 * 50, 50, 100 ms between attempts. Node processes sharing one file each
 * hold the write lock for one group-commit transaction (about one fsync,
 * ~1 ms), so a waiter that sleeps 25 ms wakes long after the lock was
 * free, and the whole cluster's persists queue behind those sleeps (the
 * demo measured ~45% of each node's worker time asleep, persist p99 over
 * 250 ms). SQLite offers no blocking wait on the lock (its SETLK_TIMEOUT
 * option is not in the system library), so we poll, but at the scale of
 * the lock's hold time: 20 us doubling to 0.5 ms, until
 * SQ_BUSY_TIMEOUT_NS has passed since the first attempt of this wait.
 * A retry is a few fcntl() calls on the file: cheap at this rate. */
static int sq_busy(void *ud, int count)
{
    sq_ctx *c = ud;
    assert(c && count >= 0);
    uint64_t now = mono_ns();
    if (count == 0) c->busy_deadline_ns = now + SQ_BUSY_TIMEOUT_NS;
    if (now >= c->busy_deadline_ns) return 0; /* give up: SQLITE_BUSY */
    uint64_t d = SQ_BUSY_MIN_NS << (count < 5 ? count : 5);
    if (d > SQ_BUSY_MAX_NS) d = SQ_BUSY_MAX_NS;
    assert(d >= SQ_BUSY_MIN_NS && d <= SQ_BUSY_MAX_NS && d < MP_NS_PER_SEC);
    struct timespec ts = {0, (long)d};
    nanosleep(&ts, NULL);
    return 1;
}

/* ---- checkpoints off the commit path ---------------------------------------
 *
 * In WAL mode every commit appends pages to the -wal file, and SQLite's
 * default auto-checkpoint (at 1000 pages) copies them back into the database
 * inside the COMMIT of whichever connection crossed the mark: ~1000 page
 * writes and, with synchronous=FULL, two fsyncs, i.e. tens of ms during
 * which that batch's saves are not answered (in the demo, about one batch
 * in 30 paid for one). So the batch connection only notes that a checkpoint is
 * due (sq_wal_hook replaces the auto-checkpoint) and a thread of our own
 * runs it on a second connection. A PASSIVE checkpoint takes no lock that
 * writers or readers wait on, so batches commit while it runs; it copies
 * what it can and the next one continues. With several node processes on
 * one file, each has its checkpointer; two at once simply find the
 * checkpoint lock taken (SQLITE_BUSY, ignored). */

/* WAL pages after which a checkpoint is requested (SQLite's default). */
#define SQ_CKPT_PAGES 1000

static void ckpt_main(void *ud)
{
    sq_ctx *c = ud;
    assert(c && c->ckpt_db);
    uv_mutex_lock(&c->ckpt_mu);
    for (;;) {
        while (!c->ckpt_due && !c->ckpt_stop) uv_cond_wait(&c->ckpt_cv, &c->ckpt_mu);
        assert(c->ckpt_due || c->ckpt_stop);
        if (c->ckpt_stop) break;
        c->ckpt_due = false;
        uv_mutex_unlock(&c->ckpt_mu);
        /* BUSY (another process checkpoints) or an I/O error: the WAL just
         * grows a little more until the next request; commits are not
         * affected, and a database failure shows up in the batches. */
        (void)sqlite3_wal_checkpoint_v2(c->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                        NULL);
        uv_mutex_lock(&c->ckpt_mu);
    }
    uv_mutex_unlock(&c->ckpt_mu);
}

/* After each commit of the batch connection (its thread), with the number
 * of pages now in the WAL. */
static int sq_wal_hook(void *ud, sqlite3 *db, const char *name, int pages)
{
    (void)db;
    (void)name;
    sq_ctx *c = ud;
    assert(c && c->ckpt_started && db == c->db);
    assert(pages >= 0);
    if (pages >= SQ_CKPT_PAGES) {
        uv_mutex_lock(&c->ckpt_mu);
        c->ckpt_due = true;
        uv_cond_signal(&c->ckpt_cv);
        uv_mutex_unlock(&c->ckpt_mu);
    }
    return SQLITE_OK;
}

/* Open the checkpointer's connection and thread, then take over from the
 * auto-checkpoint. On failure the batch connection keeps SQLite's own
 * auto-checkpoint: slower, never wrong. */
static void ckpt_start(sq_ctx *c, const char *path)
{
    assert(c && c->db && path);
    assert(!c->ckpt_started && !c->ckpt_db && !c->ckpt_due && !c->ckpt_stop);
    if (sqlite3_open_v2(path, &c->ckpt_db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                        NULL) != SQLITE_OK)
        goto fail;
    /* The checkpoint must fsync the database before the WAL it copied may
     * be reused: the same sync level as the batch connection. */
    if (sqlite3_exec(c->ckpt_db, SQ_SYNC_PRAGMA, NULL, NULL, NULL) != SQLITE_OK) goto fail;
    if (uv_mutex_init(&c->ckpt_mu) != 0) goto fail;
    if (uv_cond_init(&c->ckpt_cv) != 0) {
        uv_mutex_destroy(&c->ckpt_mu);
        goto fail;
    }
    if (uv_thread_create(&c->ckpt_thread, ckpt_main, c) != 0) {
        uv_cond_destroy(&c->ckpt_cv);
        uv_mutex_destroy(&c->ckpt_mu);
        goto fail;
    }
    c->ckpt_started = true;
    assert(c->ckpt_db);
    sqlite3_wal_hook(c->db, sq_wal_hook, c); /* replaces the auto-checkpoint */
    return;
fail:
    mp_env_log(c->env, MP_LOG_WARN,
               "sqlite %s: no checkpoint thread; checkpoints run inside commits", path);
    sqlite3_close_v2(c->ckpt_db);
    c->ckpt_db = NULL;
}

/* Stop and join the checkpointer (a checkpoint in progress finishes
 * first), close its connection. Safe when it never started. */
static void ckpt_stop(sq_ctx *c)
{
    assert(c);
    if (c->ckpt_started) {
        assert(c->ckpt_db);
        /* No commit may signal a mutex about to be destroyed. */
        if (c->db) sqlite3_wal_hook(c->db, NULL, NULL);
        uv_mutex_lock(&c->ckpt_mu);
        c->ckpt_stop = true;
        uv_cond_signal(&c->ckpt_cv);
        uv_mutex_unlock(&c->ckpt_mu);
        uv_thread_join(&c->ckpt_thread);
        uv_cond_destroy(&c->ckpt_cv);
        uv_mutex_destroy(&c->ckpt_mu);
        c->ckpt_started = false;
    }
    if (c->ckpt_db) sqlite3_close_v2(c->ckpt_db);
    c->ckpt_db = NULL;
    assert(!c->ckpt_started);
}

/* One statement that returns no rows; 0 or the SQLite error. */
static int step_done(sqlite3_stmt *st)
{
    assert(st);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Read the stored etag of key: 1 found (*etag set), 0 absent, or a negative
 * mp_status (MP_ESTORAGE: database failure; MP_ECORRUPT: bad value). */
static int read_etag(sq_ctx *c, const mp_storage_op *op, uint64_t *etag)
{
    assert(c && c->get_etag && etag);
    assert(mp__storage_op_valid(op) && op->kind != MP_SOP_LOAD);
    sqlite3_stmt *st = c->get_etag;
    sqlite3_bind_text(st, 1, op->key, (int)op->key_len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int out;
    if (rc == SQLITE_DONE) {
        out = 0;
    } else if (rc == SQLITE_ROW) {
        sqlite3_int64 v = sqlite3_column_int64(st, 0);
        if (sqlite3_column_type(st, 0) != SQLITE_INTEGER || v <= 0) {
            out = MP_ECORRUPT;
        } else {
            *etag = (uint64_t)v;
            out = 1;
        }
    } else {
        out = MP_ESTORAGE;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    assert(out == 0 || out == 1 || out == MP_ECORRUPT || out == MP_ESTORAGE);
    assert(out != 1 || *etag > 0);
    return out;
}

/* Load: fills op; returns MP_ESTORAGE only for a database failure (which
 * fails the batch); a bad row is the op's own MP_ECORRUPT. */
static int do_load(sq_ctx *c, mp_storage_op *op)
{
    assert(c && c->get);
    assert(mp__storage_op_valid(op) && op->kind == MP_SOP_LOAD);
    assert(!op->out_data && op->out_len == 0);
    sqlite3_stmt *st = c->get;
    sqlite3_bind_text(st, 1, op->key, (int)op->key_len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int out = 0;
    if (rc == SQLITE_DONE) {
        op->status = 0;
        op->etag = 0;
    } else if (rc == SQLITE_ROW) {
        /* columns: etag, writer_inc, writer_act, data, crc */
        sqlite3_int64 etag = sqlite3_column_int64(st, 0);
        sqlite3_int64 winc = sqlite3_column_int64(st, 1);
        sqlite3_int64 wact = sqlite3_column_int64(st, 2);
        sqlite3_int64 crc = sqlite3_column_int64(st, 4);
        bool ok = sqlite3_column_type(st, 0) == SQLITE_INTEGER && etag > 0 &&
                  sqlite3_column_type(st, 1) == SQLITE_INTEGER && winc >= 0 &&
                  winc <= (sqlite3_int64)UINT32_MAX &&
                  sqlite3_column_type(st, 2) == SQLITE_INTEGER &&
                  sqlite3_column_type(st, 3) == SQLITE_BLOB &&
                  sqlite3_column_type(st, 4) == SQLITE_INTEGER && crc >= 0 &&
                  crc <= (sqlite3_int64)UINT32_MAX;
        const void *blob = ok ? sqlite3_column_blob(st, 3) : NULL;
        int n = ok ? sqlite3_column_bytes(st, 3) : 0;
        if (ok && (n < 0 || (size_t)n > MP_STORAGE_VALUE_MAX || (n > 0 && !blob)))
            ok = false;
        if (ok && mp_crc32c(blob, (size_t)n) != (uint32_t)crc) ok = false;
        if (!ok) {
            op->status = MP_ECORRUPT;
        } else {
            if (n > 0) {
                op->out_data = malloc((size_t)n);
                if (!op->out_data) {
                    op->status = MP_ENOMEM;
                    goto done;
                }
                memcpy(op->out_data, blob, (size_t)n);
            }
            op->out_len = (size_t)n;
            op->etag = (uint64_t)etag;
            op->out_writer.incarnation = (uint32_t)winc;
            op->out_writer.activation = (uint64_t)wact;
            op->status = 0;
        }
    } else {
        out = MP_ESTORAGE;
    }
done:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    assert(out == 0 || out == MP_ESTORAGE);
    assert(op->status <= 0);
    assert(op->status != 0 || op->out_len == 0 || op->out_data);
    return out;
}

static int do_save(sq_ctx *c, mp_storage_op *op, uint64_t *counter)
{
    assert(c && c->put && counter);
    assert(mp__storage_op_valid(op) && op->kind == MP_SOP_SAVE);
    uint64_t cur = 0;
    int rc = read_etag(c, op, &cur);
    if (rc == MP_ESTORAGE) return rc;
    if (rc == MP_ECORRUPT) {
        op->status = MP_ECORRUPT;
        return 0;
    }
    if (cur != op->expected_etag) {
        op->status = MP_ECONFLICT;
        return 0;
    }
    uint64_t e = *counter + 1;
    if (e <= cur) e = cur + 1;
    if (e > (uint64_t)INT64_MAX) {
        op->status = MP_ESTORAGE; /* 2^63 saves: never in practice */
        return 0;
    }
    sqlite3_stmt *st = c->put;
    sqlite3_bind_text(st, 1, op->key, (int)op->key_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)e);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)op->writer.incarnation);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)op->writer.activation);
    if (op->len > 0)
        sqlite3_bind_blob64(st, 5, op->data, op->len, SQLITE_STATIC);
    else
        sqlite3_bind_zeroblob(st, 5, 0);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)mp_crc32c(op->data, op->len));
    rc = step_done(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_OK) return MP_ESTORAGE;
    assert(e > cur && e > *counter && e > op->expected_etag);
    *counter = e;
    op->etag = e;
    op->status = 0;
    return 0;
}

static int do_clear(sq_ctx *c, mp_storage_op *op)
{
    assert(c && c->del);
    assert(mp__storage_op_valid(op) && op->kind == MP_SOP_CLEAR);
    uint64_t cur = 0;
    int rc = read_etag(c, op, &cur);
    if (rc == MP_ESTORAGE) return rc;
    if (rc == MP_ECORRUPT) {
        op->status = MP_ECORRUPT;
        return 0;
    }
    if (cur != op->expected_etag) {
        op->status = MP_ECONFLICT;
        return 0;
    }
    if (cur != 0) {
        sqlite3_bind_text(c->del, 1, op->key, (int)op->key_len, SQLITE_STATIC);
        rc = step_done(c->del);
        sqlite3_clear_bindings(c->del);
        if (rc != SQLITE_OK) return MP_ESTORAGE;
    }
    op->status = 0;
    return 0;
}

static int read_counter(sq_ctx *c, uint64_t *out)
{
    assert(c && c->ctr_get && out);
    int rc = sqlite3_step(c->ctr_get);
    int res = 0;
    if (rc == SQLITE_ROW) {
        sqlite3_int64 v = sqlite3_column_int64(c->ctr_get, 0);
        if (sqlite3_column_type(c->ctr_get, 0) != SQLITE_INTEGER || v < 0)
            res = MP_ECORRUPT;
        else
            *out = (uint64_t)v;
    } else if (rc == SQLITE_DONE) {
        *out = 0; /* created lazily */
    } else {
        res = MP_ESTORAGE;
    }
    sqlite3_reset(c->ctr_get);
    return res;
}

/* Worker thread: is the file at our path (and its WAL) still the one this
 * connection has open? Sets c->lost when not. */
static void check_not_moved(sq_ctx *c)
{
    int moved = 0;
    if (sqlite3_file_control(c->db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK &&
        moved) {
        c->lost = SQ_MOVED;
        return;
    }
    /* SQLite's unix VFS answers HAS_MOVED for the main file only, so the
     * WAL is compared with the inode it had at open: it stays while any
     * connection has the database open (ours does), a checkpoint rewinds
     * it in place. */
    struct stat st;
    if (c->wal_path && (stat(c->wal_path, &st) != 0 || st.st_ino != c->wal_ino ||
                        st.st_dev != c->wal_dev))
        c->lost = SQ_WAL_MOVED;
}

/* Worker thread, inside a write transaction: the cluster id row. */
static int check_cluster_id(sq_ctx *c)
{
    assert(c && c->id_get);
    int rc = sqlite3_step(c->id_get);
    int res = 0;
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_type(c->id_get, 0) != SQLITE_INTEGER ||
            (uint64_t)sqlite3_column_int64(c->id_get, 0) != c->cluster_id)
            c->lost = SQ_OTHER_ID;
    } else if (rc == SQLITE_DONE) {
        c->lost = SQ_OTHER_ID;
    } else {
        res = MP_ESTORAGE;
    }
    sqlite3_reset(c->id_get);
    return c->lost ? MP_ESTORAGE : res;
}

/* Loop thread, after each batch: say loudly that the database is gone,
 * on the first failed batch and then once per 1,000 more. */
static void sq_after_job(void *ctx)
{
    sq_ctx *c = ctx;
    if (!c->lost || (c->lost_logged && c->lost_batches - c->lost_logged < 1000)) return;
    c->lost_logged = c->lost_batches;
    const char *why = c->lost == SQ_MOVED       ? "the database file was deleted or replaced"
                      : c->lost == SQ_WAL_MOVED ? "its -wal file was deleted or replaced"
                                                : "it no longer holds this cluster's id";
    mp_env_log(c->env, MP_LOG_ERROR,
               "sqlite %s: %s while the node ran (cluster id %016llx): every storage "
               "operation fails (MP_ESTORAGE) so that nothing is written where it would be "
               "lost; %llu batch(es) failed so far. Restore the file and restart the node "
               "(docs/config.md, [storage])",
               c->path, why, (unsigned long long)c->cluster_id,
               (unsigned long long)c->lost_batches);
}

static uint64_t sq_run(void *ctx, mp_storage_op **ops, size_t n)
{
    sq_ctx *c = ctx;
    assert(c && c->db && c->begin_r && c->begin_w && c->commit && c->rollback);
    assert(n <= MP_BATCH_MAX && (n == 0 || ops));
    bool writes = false;
    for (size_t i = 0; i < n; i++) {
        assert(ops[i] && ops[i]->kind >= MP_SOP_LOAD && ops[i]->kind <= MP_SOP_CLEAR);
        if (ops[i]->kind != MP_SOP_LOAD) writes = true;
    }
    /* BEGIN IMMEDIATE takes the write lock up front, so the counter read
     * below cannot race another process sharing the file. */
    int fail = 0;
    uint64_t counter = 0, counter0 = 0;
    if (!c->lost) check_not_moved(c);
    if (c->lost) {
        c->lost_batches++;
        fail = MP_ESTORAGE;
        goto out;
    }
    if (step_done(writes ? c->begin_w : c->begin_r) != SQLITE_OK) {
        fail = MP_ESTORAGE;
        goto out;
    }
    if (writes) {
        fail = read_counter(c, &counter);
        if (fail == MP_ECORRUPT) fail = MP_ESTORAGE;
        if (!fail) fail = check_cluster_id(c);
        if (c->lost) c->lost_batches++;
        if (fail) goto rollback;
        counter0 = counter;
    }
    for (size_t i = 0; i < n && !fail; i++) {
        mp_storage_op *op = ops[i];
        switch (op->kind) {
        case MP_SOP_LOAD: fail = do_load(c, op); break;
        case MP_SOP_SAVE: fail = do_save(c, op, &counter); break;
        case MP_SOP_CLEAR: fail = do_clear(c, op); break;
        }
    }
    if (fail) goto rollback;
    assert(counter >= counter0);
    assert(writes || counter == counter0);
    if (counter != counter0) {
        sqlite3_bind_int64(c->ctr_put, 1, (sqlite3_int64)counter);
        if (step_done(c->ctr_put) != SQLITE_OK) {
            fail = MP_ESTORAGE;
            goto rollback;
        }
    }
    if (step_done(c->commit) != SQLITE_OK) {
        fail = MP_ESTORAGE;
        goto rollback;
    }
    return 1;
rollback:
    assert(fail < 0);
    step_done(c->rollback);
out:
    assert(fail < 0);
    for (size_t i = 0; i < n; i++) {
        mp_storage_op_reset_result_(ops[i]);
        ops[i]->status = fail;
    }
    return 0;
}

static const mp_storage_vtbl sq_vtbl = {
    .name = "sqlite",
    .submit = mp_batch_submit,
    .close = mp_batch_close,
    .free_now = mp_batch_free_now,
};

static const mp_batch_backend sq_backend = {
    .vt = &sq_vtbl,
    .run = sq_run,
    .shutdown = sq_shutdown,
    .after_job = sq_after_job,
};

/* ---- open (loop thread, synchronous) ------------------------------------ */

static int map_open_error(int rc)
{
    assert(rc != SQLITE_OK);
    switch (rc & 0xff) {
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_AUTH:
        return MP_EIO;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return MP_ECORRUPT;
    case SQLITE_NOMEM:
        return MP_ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return MP_EBUSY; /* only open retries on it; see setup_with_retry */
    default:
        return MP_ESTORAGE;
    }
}

static int exec(sq_ctx *c, const char *path, const char *sql)
{
    assert(c && c->db && path && sql);
    char *err = NULL;
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        mp_env_log(c->env, MP_LOG_ERROR, "sqlite %s: %s: %s", path, sql,
                   err ? err : sqlite3_errstr(rc));
        sqlite3_free(err);
        return map_open_error(rc);
    }
    return 0;
}

/* Run a query returning one integer. */
static int query_int(sq_ctx *c, const char *path, const char *sql,
                     sqlite3_int64 *out)
{
    assert(c && c->db && path && sql && out);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        mp_env_log(c->env, MP_LOG_ERROR, "sqlite %s: %s: %s", path, sql,
                   sqlite3_errmsg(c->db));
        return map_open_error(rc);
    }
    return 0;
}

static const char SCHEMA[] =
    "CREATE TABLE moonpool_state ("
    " key TEXT PRIMARY KEY NOT NULL,"
    " etag INTEGER NOT NULL,"
    " writer_inc INTEGER NOT NULL,"
    " writer_act INTEGER NOT NULL,"
    " data BLOB NOT NULL,"
    " crc INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE moonpool_meta (k TEXT PRIMARY KEY NOT NULL, v INTEGER NOT NULL);"
    "INSERT INTO moonpool_meta VALUES ('etag', 0);"
    "PRAGMA user_version = 1836056577;"; /* MP_SQLITE_SCHEMA */

/* The cluster id of a new database (or of one made before ids existed):
 * 63 random bits from SQLite's generator (seeded by the OS), never 0. */
static const char ADD_CLUSTER_ID[] =
    "INSERT OR IGNORE INTO moonpool_meta VALUES "
    "('cluster_id', (random() & 0x7fffffffffffffff) | 1)";

/* Create the schema of a new file, or check the one found. Several node
 * processes may open one shared file for the first time at once, so the
 * "is it new?" check and the creation happen inside one write transaction
 * (BEGIN IMMEDIATE waits for the others through the busy timeout): the
 * second opener then sees the first one's schema instead of failing on
 * "table already exists". */
static int setup_schema(sq_ctx *c, const char *path)
{
    assert(c && c->db && path);
    sqlite3_int64 ver = 0, tables = 0;
    int rc = query_int(c, path, "PRAGMA user_version", &ver);
    if (rc) return rc;
    if (ver == 0) {
        if ((rc = exec(c, path, "BEGIN IMMEDIATE"))) return rc;
        if ((rc = query_int(c, path, "PRAGMA user_version", &ver)) ||
            (ver == 0 &&
             (rc = query_int(c, path, "SELECT count(*) FROM sqlite_master", &tables)))) {
            (void)sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
        if (ver == 0 && tables != 0) {
            (void)sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
            mp_env_log(c->env, MP_LOG_ERROR,
                       "sqlite %s: not a moonpool database (has %lld other "
                       "objects); refusing to touch it",
                       path, (long long)tables);
            return MP_EVERSION;
        }
        if ((ver == 0 && (rc = exec(c, path, SCHEMA))) ||
            (ver == 0 && (rc = exec(c, path, ADD_CLUSTER_ID))) ||
            (rc = exec(c, path, "COMMIT"))) {
            (void)sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
        if ((rc = query_int(c, path, "PRAGMA user_version", &ver))) return rc;
    }
    if (ver != MP_SQLITE_SCHEMA) {
        mp_env_log(c->env, MP_LOG_ERROR,
                   "sqlite %s: schema version %lld, expected %d (moonpool "
                   "schema 1); refusing to open",
                   path, (long long)ver, MP_SQLITE_SCHEMA);
        return MP_EVERSION;
    }
    assert(ver == MP_SQLITE_SCHEMA);
    return 0;
}

/* Journal mode, sync level and schema. Processes opening one new shared
 * file together can meet an SQLITE_BUSY that SQLite does not hand to the
 * busy handler (another connection is switching the file to WAL or running
 * its recovery). It is transient, so the setup is retried with a growing
 * pause (about 2 s in all) before it counts as the file being unusable. */
static int setup_with_retry(sq_ctx *c, const char *path)
{
    assert(c && c->db && path);
    for (unsigned attempt = 1;; attempt++) {
        assert(attempt <= 20);
        sqlite3_int64 mode;
        int rc;
        if (!(rc = query_int(c, path, "PRAGMA journal_mode=WAL", &mode)) &&
            !(rc = exec(c, path, SQ_SYNC_PRAGMA)) &&
            !(rc = setup_schema(c, path)))
            return 0;
        if (rc != MP_EBUSY) return rc;
        if (attempt == 20) return MP_EIO;
        mp_env_log(c->env, MP_LOG_INFO, "sqlite %s: busy while opening; retry %u",
                   path, attempt);
        usleep(attempt * 10000u);
    }
}

static int prepare(sq_ctx *c, const char *path, const char *sql,
                   sqlite3_stmt **out)
{
    assert(c && c->db && path && sql && out && !*out);
    int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                out, NULL);
    if (rc != SQLITE_OK) {
        mp_env_log(c->env, MP_LOG_ERROR,
                   "sqlite %s: schema mismatch: %s: %s", path, sql,
                   sqlite3_errmsg(c->db));
        return (rc & 0xff) == SQLITE_ERROR ? MP_EVERSION : map_open_error(rc);
    }
    assert(*out);
    return 0;
}

/* The cluster id: added if missing (a database from before ids), then
 * read. */
static int load_cluster_id(sq_ctx *c, const char *path)
{
    sqlite3_int64 id = 0, rows = 0;
    int rc = query_int(c, path, "SELECT count(*) FROM moonpool_meta WHERE k = 'cluster_id'", &rows);
    if (rc) return rc;
    if (rows == 0) {
        if ((rc = exec(c, path, ADD_CLUSTER_ID))) return rc;
        mp_env_log(c->env, MP_LOG_INFO, "sqlite %s: no cluster id yet (older database): added",
                   path);
    }
    if ((rc = query_int(c, path, "SELECT v FROM moonpool_meta WHERE k = 'cluster_id'", &id)))
        return rc;
    if (id <= 0) {
        mp_env_log(c->env, MP_LOG_ERROR, "sqlite %s: cluster id %lld is not valid", path,
                   (long long)id);
        return MP_ECORRUPT;
    }
    c->cluster_id = (uint64_t)id;
    return 0;
}

int mp_storage_sqlite_open(mp_env *env, const char *path, mp_storage **out)
{
    return mp_storage_sqlite_open_ex(env, path, 0, out, NULL);
}

int mp_storage_sqlite_open_ex(mp_env *env, const char *path, unsigned flags, mp_storage **out,
                              uint64_t *cluster_id)
{
    if (out) *out = NULL;
    if (cluster_id) *cluster_id = 0;
    if (!env || !path || !*path || !out || (flags & ~MP_SQLITE_NO_CREATE)) return MP_EINVAL;
    if (!mp_env_is_uv(env)) {
        mp_env_log(env, MP_LOG_ERROR,
                   "sqlite storage needs the libuv env (it uses the threadpool)");
        return MP_EINVAL;
    }
    if (strlen(path) > 4096) return MP_EINVAL;
    if ((flags & MP_SQLITE_NO_CREATE) && access(path, F_OK) != 0) {
        mp_env_log(env, MP_LOG_ERROR, "sqlite %s: no database there (not creating one)", path);
        return MP_ENOTFOUND;
    }
    sq_ctx *c = calloc(1, sizeof *c);
    if (!c) return MP_ENOMEM;
    c->env = env;
    c->path = strdup(path);
    if (!c->path) {
        free(c);
        return MP_ENOMEM;
    }
    int rc = sqlite3_open_v2(path, &c->db,
                             SQLITE_OPEN_READWRITE |
                                 ((flags & MP_SQLITE_NO_CREATE) ? 0 : SQLITE_OPEN_CREATE) |
                                 SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                             NULL);
    if (rc != SQLITE_OK) {
        mp_env_log(env, MP_LOG_ERROR, "sqlite %s: cannot open: %s", path,
                   c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        int st = map_open_error(rc);
        sq_close_ctx(c);
        return st;
    }
    /* Another process holding the write lock: wait a while (short polls,
     * see sq_busy), then fail the batch with MP_ESTORAGE rather than block
     * forever. */
    sqlite3_busy_handler(c->db, sq_busy, c);
    if ((rc = setup_with_retry(c, path)) || (rc = load_cluster_id(c, path)) ||
        (rc = prepare(c, path, "BEGIN", &c->begin_r)) ||
        (rc = prepare(c, path, "BEGIN IMMEDIATE", &c->begin_w)) ||
        (rc = prepare(c, path, "COMMIT", &c->commit)) ||
        (rc = prepare(c, path, "ROLLBACK", &c->rollback)) ||
        (rc = prepare(c, path,
                      "SELECT etag, writer_inc, writer_act, data, crc "
                      "FROM moonpool_state WHERE key = ?1",
                      &c->get)) ||
        (rc = prepare(c, path, "SELECT etag FROM moonpool_state WHERE key = ?1",
                      &c->get_etag)) ||
        (rc = prepare(c, path,
                      "INSERT INTO moonpool_state "
                      "(key, etag, writer_inc, writer_act, data, crc) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
                      "ON CONFLICT(key) DO UPDATE SET etag = excluded.etag, "
                      "writer_inc = excluded.writer_inc, "
                      "writer_act = excluded.writer_act, "
                      "data = excluded.data, crc = excluded.crc",
                      &c->put)) ||
        (rc = prepare(c, path, "DELETE FROM moonpool_state WHERE key = ?1",
                      &c->del)) ||
        (rc = prepare(c, path,
                      "SELECT v FROM moonpool_meta WHERE k = 'etag'",
                      &c->ctr_get)) ||
        (rc = prepare(c, path,
                      "INSERT INTO moonpool_meta (k, v) VALUES ('etag', ?1) "
                      "ON CONFLICT(k) DO UPDATE SET v = excluded.v",
                      &c->ctr_put)) ||
        (rc = prepare(c, path, "SELECT v FROM moonpool_meta WHERE k = 'cluster_id'",
                      &c->id_get))) {
        sq_close_ctx(c);
        return rc == MP_EBUSY ? MP_EIO : rc; /* locked for good: unusable */
    }
    assert(c->begin_r && c->begin_w && c->commit && c->rollback && c->get && c->get_etag &&
           c->put && c->del && c->ctr_get && c->ctr_put);
    ckpt_start(c, path);
    size_t wl = strlen(path) + 5;
    struct stat st;
    c->wal_path = malloc(wl);
    if (!c->wal_path) {
        sq_close_ctx(c);
        return MP_ENOMEM;
    }
    snprintf(c->wal_path, wl, "%s-wal", path);
    if (stat(c->wal_path, &st) == 0) {
        c->wal_dev = st.st_dev;
        c->wal_ino = st.st_ino;
    } else {
        mp_env_log(env, MP_LOG_WARN, "sqlite %s: no -wal file after open; its deletion will "
                   "not be detected", path);
        free(c->wal_path);
        c->wal_path = NULL;
    }
    mp_storage *s = mp_batch_create(env, &sq_backend, c);
    if (!s) {
        sq_close_ctx(c);
        return MP_ENOMEM;
    }
    if (cluster_id) *cluster_id = c->cluster_id;
    *out = s;
    return 0;
}
