/*
 * The PostgreSQL provider: one database shared by the nodes of a cluster
 * that runs on many machines.
 *
 * Same shape as the SQLite provider (batch.c): one dedicated connection,
 * used only from libuv's threadpool, one job at a time, each job running
 * every queued op in ONE transaction (group commit: one round trip for
 * BEGIN, one per op, one for COMMIT, and one WAL flush on the server).
 *
 * Optimistic concurrency lives in the SQL, so that it holds between nodes
 * that share nothing but the database:
 *   create (expected 0): INSERT ... ON CONFLICT (key) DO NOTHING RETURNING
 *   update:              UPDATE ... WHERE key = $1 AND etag = $2 RETURNING
 *   clear:               DELETE ... WHERE key = $1 AND etag = $2
 * Under READ COMMITTED, a second node racing on the same row waits for the
 * first one's row lock and then re-checks the WHERE clause (or the unique
 * index) against the committed row: exactly one wins, the other matches
 * nothing and gets MP_ECONFLICT. New ETags come from a sequence (never
 * reused, so no ABA across clears) and are forced above the old ETag.
 *
 * Failures: a deadlock between two nodes' batches (40P01) or a
 * serialization failure (40001) aborts our transaction before COMMIT, so
 * the batch is simply run again (a few times). A broken connection is
 * reset before the next batch. Any other error, or an error at COMMIT
 * (outcome unknown), fails the whole batch with MP_ESTORAGE.
 *
 * Nothing from the server is trusted: result shapes, lengths, ranges and
 * the CRC32C of each value are checked (MP_ECORRUPT for that op).
 */
#include <assert.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moonpool/env_uv.h"
#include "storage/batch.h"
#include "util/crc32c.h"
#include "util/endian.h"

#define PG_RETRIES 5

typedef struct pg_ctx {
    PGconn *conn;
    char *conninfo;
} pg_ctx;

/* Prepared statement names and texts. */
enum { Q_LOAD, Q_INSERT, Q_UPDATE, Q_DELETE, Q_EXISTS, Q_COUNT };
static const char *const q_name[Q_COUNT] = {"mp_load", "mp_insert",
                                            "mp_update", "mp_delete",
                                            "mp_exists"};
static const char *const q_sql[Q_COUNT] = {
    "SELECT etag, writer_inc, writer_act, data, crc FROM moonpool_state "
    "WHERE key = $1",
    "INSERT INTO moonpool_state (key, etag, writer_inc, writer_act, data, crc)"
    " VALUES ($1, nextval('moonpool_etag_seq'), $2, $3, $4, $5)"
    " ON CONFLICT (key) DO NOTHING RETURNING etag",
    "UPDATE moonpool_state SET etag = GREATEST(nextval('moonpool_etag_seq'), "
    "etag + 1), writer_inc = $3, writer_act = $4, data = $5, crc = $6 "
    "WHERE key = $1 AND etag = $2 RETURNING etag",
    "DELETE FROM moonpool_state WHERE key = $1 AND etag = $2",
    "SELECT 1 FROM moonpool_state WHERE key = $1",
};

static void pg_free_ctx(pg_ctx *c)
{
    if (!c) return;
    if (c->conn) PQfinish(c->conn);
    free(c->conninfo);
    free(c);
}

static void pg_shutdown(void *ctx) { pg_free_ctx(ctx); }

/* Integer field of a binary result: int8 (8 bytes) only. */
static bool field_i64(const PGresult *r, int col, int64_t *out)
{
    assert(r && out && col >= 0);
    /* The column count is the server's answer: checked, not asserted (a
     * column past it reads as NULL anyway). */
    if (col >= PQnfields(r)) return false;
    if (PQgetisnull(r, 0, col) || PQgetlength(r, 0, col) != 8 ||
        PQftype(r, col) != 20 /* INT8OID */)
        return false;
    *out = (int64_t)mp_get_be64((const unsigned char *)PQgetvalue(r, 0, col));
    return true;
}

static int prepare_all(pg_ctx *c)
{
    assert(c && c->conn);
    for (int i = 0; i < Q_COUNT; i++) {
        assert(q_name[i] && q_sql[i]);
        PGresult *r = PQprepare(c->conn, q_name[i], q_sql[i], 0, NULL);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) return -1;
    }
    return 0;
}

/* Run a command without parameters; true if it succeeded. */
static bool simple(pg_ctx *c, const char *sql)
{
    assert(c && c->conn && sql);
    PGresult *r = PQexec(c->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* Outcome of one statement inside a batch. */
typedef enum { PG_OK, PG_RETRY, PG_FAIL } pg_out;

static pg_out classify(PGresult *r)
{
    assert(r);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (state && (!strcmp(state, "40P01") || !strcmp(state, "40001")))
        return PG_RETRY;
    return PG_FAIL;
}

static pg_out exec_op(pg_ctx *c, mp_storage_op *op)
{
    unsigned char etag_be[8], inc_be[8], act_be[8], crc_be[8];
    const char *vals[6];
    int lens[6], fmts[6];
    int q, nparams;
    assert(c && c->conn);
    assert(mp__storage_op_valid(op));
    /* pg_run reset the result before this attempt. */
    assert(op->status == 0 && !op->out_data && op->out_len == 0 && op->etag == 0);
    assert(op->len <= (size_t)INT32_MAX && op->key_len <= (size_t)INT32_MAX);
    vals[0] = op->key;
    lens[0] = (int)op->key_len;
    fmts[0] = 0; /* key as text */
    switch (op->kind) {
    case MP_SOP_LOAD:
        q = Q_LOAD;
        nparams = 1;
        break;
    case MP_SOP_CLEAR:
        q = op->expected_etag ? Q_DELETE : Q_EXISTS;
        nparams = op->expected_etag ? 2 : 1;
        mp_put_be64(etag_be, op->expected_etag);
        vals[1] = (const char *)etag_be;
        lens[1] = 8;
        fmts[1] = 1;
        break;
    case MP_SOP_SAVE:
    default: {
        mp_put_be64(inc_be, op->writer.incarnation);
        mp_put_be64(act_be, op->writer.activation);
        mp_put_be64(crc_be, mp_crc32c(op->data, op->len));
        mp_put_be64(etag_be, op->expected_etag);
        static const char empty[1] = {0};
        const char *data = op->len ? (const char *)op->data : empty;
        int base;
        if (op->expected_etag == 0) {
            q = Q_INSERT;
            base = 1;
        } else {
            q = Q_UPDATE;
            vals[1] = (const char *)etag_be;
            lens[1] = 8;
            fmts[1] = 1;
            base = 2;
        }
        vals[base] = (const char *)inc_be;
        vals[base + 1] = (const char *)act_be;
        vals[base + 2] = data;
        vals[base + 3] = (const char *)crc_be;
        lens[base] = lens[base + 1] = lens[base + 3] = 8;
        lens[base + 2] = (int)op->len;
        fmts[base] = fmts[base + 1] = fmts[base + 2] = fmts[base + 3] = 1;
        nparams = base + 4;
        break;
    }
    }
    assert(q >= 0 && q < Q_COUNT && nparams >= 1 && nparams <= 6);
    assert(q != Q_LOAD || op->kind == MP_SOP_LOAD);
    assert((q != Q_DELETE && q != Q_UPDATE) || op->expected_etag != 0);
    PGresult *r = PQexecPrepared(c->conn, q_name[q], nparams, vals, lens, fmts,
                                 1 /* binary results */);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        pg_out o = classify(r);
        PQclear(r);
        return o;
    }
    int rows = st == PGRES_TUPLES_OK ? PQntuples(r) : 0;
    op->status = 0;
    switch (q) {
    case Q_LOAD:
        if (rows == 0) break;
        {
            int64_t etag, winc, wact, crc;
            bool ok = rows == 1 && PQnfields(r) == 5 &&
                      field_i64(r, 0, &etag) && etag > 0 &&
                      field_i64(r, 1, &winc) && winc >= 0 &&
                      winc <= (int64_t)UINT32_MAX && field_i64(r, 2, &wact) &&
                      field_i64(r, 4, &crc) && crc >= 0 &&
                      crc <= (int64_t)UINT32_MAX && !PQgetisnull(r, 0, 3) &&
                      PQftype(r, 3) == 17 /* BYTEAOID */;
            int n = ok ? PQgetlength(r, 0, 3) : 0;
            const char *v = ok ? PQgetvalue(r, 0, 3) : NULL;
            if (ok && (n < 0 || (size_t)n > MP_STORAGE_VALUE_MAX)) ok = false;
            if (ok && mp_crc32c(v, (size_t)n) != (uint32_t)crc) ok = false;
            if (!ok) {
                op->status = MP_ECORRUPT;
                break;
            }
            if (n > 0) {
                op->out_data = malloc((size_t)n);
                if (!op->out_data) {
                    op->status = MP_ENOMEM;
                    break;
                }
                memcpy(op->out_data, v, (size_t)n);
            }
            op->out_len = (size_t)n;
            op->etag = (uint64_t)etag;
            op->out_writer.incarnation = (uint32_t)winc;
            op->out_writer.activation = (uint64_t)wact;
        }
        break;
    case Q_INSERT:
    case Q_UPDATE: {
        int64_t etag;
        if (rows == 0) {
            op->status = MP_ECONFLICT;
        } else if (rows != 1 || !field_i64(r, 0, &etag) || etag <= 0 ||
                   (uint64_t)etag <= op->expected_etag) {
            op->status = MP_ECORRUPT;
        } else {
            op->etag = (uint64_t)etag;
            assert(op->etag > op->expected_etag);
        }
        break;
    }
    case Q_DELETE: {
        const char *t = PQcmdTuples(r);
        if (!t || strcmp(t, "1") != 0) op->status = MP_ECONFLICT;
        break;
    }
    case Q_EXISTS:
        if (rows != 0) op->status = MP_ECONFLICT;
        break;
    }
    PQclear(r);
    assert(op->status == 0 || op->status == MP_ECONFLICT || op->status == MP_ECORRUPT ||
           op->status == MP_ENOMEM);
    assert(op->status == 0 || (!op->out_data && op->out_len == 0));
    assert(op->out_len == 0 || op->out_data);
    return PG_OK;
}

/* Make sure the connection is usable (reset and re-prepare if it broke). */
static bool ensure_conn(pg_ctx *c)
{
    assert(c && c->conn);
    if (PQstatus(c->conn) == CONNECTION_OK &&
        PQtransactionStatus(c->conn) == PQTRANS_IDLE)
        return true;
    PQreset(c->conn);
    if (PQstatus(c->conn) != CONNECTION_OK) return false;
    return prepare_all(c) == 0;
}

static void fail_all(mp_storage_op **ops, size_t n, int status)
{
    assert(status < 0 && (n == 0 || ops));
    for (size_t i = 0; i < n; i++) {
        mp_storage_op_reset_result_(ops[i]);
        ops[i]->status = status;
    }
}

typedef struct pg_order {
    mp_storage_op *op;
    size_t pos;
} pg_order;

static int cmp_order(const void *a, const void *b)
{
    const pg_order *x = a, *y = b;
    assert(x->op && y->op);
    size_t n = x->op->key_len < y->op->key_len ? x->op->key_len
                                                : y->op->key_len;
    int c = memcmp(x->op->key, y->op->key, n);
    if (c) return c;
    if (x->op->key_len != y->op->key_len)
        return x->op->key_len < y->op->key_len ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static uint64_t pg_run(void *ctx, mp_storage_op **ops, size_t n)
{
    pg_ctx *c = ctx;
    assert(c && c->conn && c->conninfo);
    assert(n <= MP_BATCH_MAX && (n == 0 || ops));
    for (size_t i = 0; i < n; i++) assert(mp__storage_op_valid(ops[i]));
    /* Execute in key order (stable, so ops on one key keep issue order;
     * ops on different keys commute, and callbacks still run in issue
     * order). Every node then takes row locks in the same global order,
     * so two nodes' batches cannot deadlock each other; without it, two
     * batches over the same keys deadlock, retry, and can livelock. */
    pg_order *ord = malloc((n ? n : 1) * sizeof *ord);
    if (ord) {
        for (size_t i = 0; i < n; i++) ord[i] = (pg_order){ops[i], i};
        qsort(ord, n, sizeof *ord, cmp_order);
        for (size_t i = 1; i < n; i++) assert(cmp_order(&ord[i - 1], &ord[i]) < 0);
    }
    for (int attempt = 0; attempt < PG_RETRIES; attempt++) {
        if (attempt > 0) {
            /* Back off before a retry (deadlock with a third party). */
            struct timespec ts = {0, (long)(attempt * 5 * MP_NS_PER_MS)};
            nanosleep(&ts, NULL);
        }
        assert(attempt < PG_RETRIES);
        if (!ensure_conn(c)) break;
        for (size_t i = 0; i < n; i++) mp_storage_op_reset_result_(ops[i]);
        if (!simple(c, "BEGIN")) continue; /* connection broke: reset */
        pg_out o = PG_OK;
        for (size_t i = 0; i < n && o == PG_OK; i++)
            o = exec_op(c, ord ? ord[i].op : ops[i]);
        if (o != PG_OK) {
            (void)simple(c, "ROLLBACK");
            if (o == PG_RETRY) continue;
            break;
        }
        PGresult *r = PQexec(c->conn, "COMMIT");
        /* COMMIT of an aborted transaction answers "ROLLBACK": check the
         * tag, not only the status. */
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK &&
                  strcmp(PQcmdStatus(r), "COMMIT") == 0;
        PQclear(r);
        if (ok) {
            free(ord);
            return 1;
        }
        break; /* outcome unknown: never replay a batch that may be in */
    }
    free(ord);
    fail_all(ops, n, MP_ESTORAGE);
    return 0;
}

static const mp_storage_vtbl pg_vtbl = {
    .name = "postgres",
    .submit = mp_batch_submit,
    .close = mp_batch_close,
    .free_now = mp_batch_free_now,
};

static const mp_batch_backend pg_backend = {
    .vt = &pg_vtbl,
    .run = pg_run,
    .shutdown = pg_shutdown,
};

/* ---- open (loop thread, synchronous) ------------------------------------ */

static void ignore_notice(void *arg, const char *message) {}

static int schema(pg_ctx *c, mp_env *env)
{
    assert(c && c->conn && env);
    assert(PQstatus(c->conn) == CONNECTION_OK);
    /* Two nodes starting together would race CREATE ... IF NOT EXISTS (it
     * is not atomic against itself): serialise on an advisory lock. */
    static const char create[] =
        "BEGIN;"
        "SELECT pg_advisory_xact_lock(7309475736640317440);"
        "CREATE TABLE IF NOT EXISTS moonpool_state ("
        " key TEXT PRIMARY KEY,"
        " etag BIGINT NOT NULL,"
        " writer_inc BIGINT NOT NULL,"
        " writer_act BIGINT NOT NULL,"
        " data BYTEA NOT NULL,"
        " crc BIGINT NOT NULL);"
        "CREATE SEQUENCE IF NOT EXISTS moonpool_etag_seq;"
        "COMMIT;";
    PGresult *r = PQexec(c->conn, create);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK) {
        mp_env_log(env, MP_LOG_ERROR, "postgres: creating the schema: %s",
                   PQresultErrorMessage(r));
        PQclear(r);
        (void)simple(c, "ROLLBACK");
        return MP_ESTORAGE;
    }
    PQclear(r);
    /* An existing table must have our columns and types. */
    r = PQexecParams(c->conn,
                     "SELECT key, etag, writer_inc, writer_act, data, crc "
                     "FROM moonpool_state LIMIT 0",
                     0, NULL, NULL, NULL, NULL, 1);
    static const Oid want[6] = {25, 20, 20, 20, 17, 20};
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQnfields(r) == 6;
    for (int i = 0; ok && i < 6; i++)
        if (PQftype(r, i) != want[i]) ok = false;
    if (!ok) {
        mp_env_log(env, MP_LOG_ERROR,
                   "postgres: table moonpool_state has another schema "
                   "(expected key text, etag/writer_inc/writer_act bigint, "
                   "data bytea, crc bigint) %s",
                   PQresultErrorMessage(r));
        PQclear(r);
        return MP_EVERSION;
    }
    PQclear(r);
    return 0;
}

int mp_storage_postgres_open(mp_env *env, const char *conninfo,
                             mp_storage **out)
{
    if (out) *out = NULL;
    if (!env || !conninfo || !out) return MP_EINVAL;
    if (!mp_env_is_uv(env)) {
        mp_env_log(env, MP_LOG_ERROR,
                   "postgres storage needs the libuv env (it uses the "
                   "threadpool)");
        return MP_EINVAL;
    }
    pg_ctx *c = calloc(1, sizeof *c);
    if (!c) return MP_ENOMEM;
    c->conninfo = strdup(conninfo);
    if (!c->conninfo) {
        free(c);
        return MP_ENOMEM;
    }
    c->conn = PQconnectdb(conninfo);
    if (!c->conn) {
        pg_free_ctx(c);
        return MP_ENOMEM;
    }
    if (PQstatus(c->conn) != CONNECTION_OK) {
        mp_env_log(env, MP_LOG_ERROR, "postgres: cannot connect: %s",
                   PQerrorMessage(c->conn));
        pg_free_ctx(c);
        return MP_ECONNREFUSED;
    }
    /* Keep server notices (e.g. "relation already exists, skipping") out
     * of stderr: they are expected. */
    assert(c->conninfo && strcmp(c->conninfo, conninfo) == 0);
    PQsetNoticeProcessor(c->conn, ignore_notice, NULL);
    int rc = schema(c, env);
    if (rc == 0 && prepare_all(c) != 0) {
        mp_env_log(env, MP_LOG_ERROR, "postgres: preparing statements: %s",
                   PQerrorMessage(c->conn));
        rc = MP_EVERSION;
    }
    if (rc != 0) {
        pg_free_ctx(c);
        return rc;
    }
    assert(rc == 0 && PQstatus(c->conn) == CONNECTION_OK);
    mp_storage *s = mp_batch_create(env, &pg_backend, c);
    if (!s) {
        pg_free_ctx(c);
        return MP_ENOMEM;
    }
    *out = s;
    return 0;
}
