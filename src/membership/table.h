/*
 * The membership table: who is in the cluster, in one storage record.
 *
 * Why one record: the table is small (at most MP__MT_MAX_ROWS rows), and
 * keeping it whole under one key ("<namespace>/__membership") lets the
 * storage's ETag compare-and-set arbitrate every change: the ETag is the
 * table's version row of Orleans' membership table. Two members that change
 * the table at once both read version V and both ask "save if still V"; the
 * storage accepts exactly one, the other gets MP_ECONFLICT, reads again and
 * re-applies its change on top of the winner's (agent.c). No consensus
 * protocol of our own, no lost update, and it works on every provider
 * (memory, sim, SQLite, PostgreSQL) because it uses only load and
 * conditional save.
 *
 * What a row says (one per (address, incarnation)):
 *   - status: joining, active, shutting_down, dead; `since` is the table
 *     version (mp__mtable.version, counted by this table, not the ETag) at
 *     which the status was set;
 *   - heartbeat: a counter the owner bumps at every lease renewal. Nobody
 *     compares clocks across processes: an observer measures, by its own
 *     clock, how long it has seen the same heartbeat value (agent.c);
 *   - lease_ns: the owner's lease duration;
 *   - suspicions: who suspects the row (suspecter address + incarnation)
 *     and the row's heartbeat when it did, so a suspicion from long ago
 *     does not count once the owner renewed since;
 *   - types: the actor types the member hosts (placement picks only
 *     members hosting the type: a rolling upgrade can add a type).
 *   - flag LEFT on a dead row: the owner wrote it itself (graceful leave),
 *     after it stopped serving, so others need not wait for its lease.
 *
 * The stored bytes come from outside (any process with the database can
 * write them, a disk can rot), so decoding validates everything and names
 * the first problem: magic, format version, checksum, lengths, counts,
 * statuses, address syntax, type-name syntax, duplicate rows, suspicions
 * and types, order, and the "one non-dead incarnation per address" rule.
 * Encoding is canonical (rows sorted by address then incarnation), so equal
 * tables encode to equal bytes.
 *
 * Format 1, little-endian (util/endian.h):
 *   "MPMT" | u16 format=1 | u16 reserved=0 | u64 version | u32 rows
 *   per row: u8 addr_len | addr | u32 incarnation | u8 status | u8 flags |
 *            u64 since | u64 heartbeat | u64 lease_ns |
 *            u8 suspicions, each: u8 addr_len | addr | u32 incarnation |
 *                                 u64 heartbeat |
 *            u8 types, each: u8 len | name
 *   u32 crc32c of everything before it.
 *
 * Thread: pure functions on caller memory; any thread.
 */
#ifndef MP_MEMBERSHIP_TABLE_H
#define MP_MEMBERSHIP_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/actor.h"
#include "moonpool/limits.h"

#define MP__MT_FORMAT 1
#define MP__MT_MAX_ROWS MP_MAX_MEMBERS     /* rows in the table */
#define MP__MT_MAX_TYPES 32                /* actor types per member */
#define MP__MT_TYPE_MAX MP_ACTOR_PART_MAX  /* bytes of a type name */
#define MP__MT_MAX_SUSPICIONS 8            /* suspicions per row */
#define MP__MT_KEY_SUFFIX "/__membership"

typedef enum mp__member_status {
    MP__MEMBER_JOINING = 1,
    MP__MEMBER_ACTIVE = 2,
    MP__MEMBER_SHUTTING_DOWN = 3,
    MP__MEMBER_DEAD = 4
} mp__member_status;

/* Row flags. */
#define MP__MEMBER_LEFT 0x01u /* dead by its own graceful leave */
#define MP__MEMBER_FLAGS_KNOWN MP__MEMBER_LEFT

typedef struct mp__suspicion {
    char addr[MP_ADDR_MAX + 1];
    uint32_t incarnation;
    uint64_t heartbeat; /* the suspect's heartbeat when suspected */
} mp__suspicion;

typedef struct mp__mrow {
    char addr[MP_ADDR_MAX + 1];
    uint32_t incarnation; /* > 0 */
    uint8_t status;       /* mp__member_status */
    uint8_t flags;        /* MP__MEMBER_* */
    uint64_t since;       /* table version when status was set */
    uint64_t heartbeat;
    uint64_t lease_ns;    /* > 0 */
    uint8_t nsusp;
    mp__suspicion susp[MP__MT_MAX_SUSPICIONS];
    uint8_t ntypes;
    char types[MP__MT_MAX_TYPES][MP__MT_TYPE_MAX + 1];
} mp__mrow;

/* The whole table. Large (about 600 KiB at the maximum): allocate it on
 * the heap. */
typedef struct mp__mtable {
    uint64_t version; /* changes applied; 0 for the empty table */
    uint32_t count;
    mp__mrow rows[MP__MT_MAX_ROWS]; /* sorted by (addr, incarnation) */
} mp__mtable;

/* "joining", "active", "shutting_down", "dead", or "?" */
const char *mp__member_status_name(int status);

/* Build "<ns>/__membership" into buf. ns: 1..MP_ACTOR_PART_MAX bytes of
 * [A-Za-z0-9_.-]. Returns the length, or MP_EINVAL (bad ns, NULL) /
 * MP_ETOOBIG (cap too small). */
int mp__mtable_key(char *buf, size_t cap, const char *ns);

/* Empty table, version 0. */
void mp__mtable_init(mp__mtable *t);

/* Whether addr is a valid member address (1..MP_ADDR_MAX bytes, host:port
 * as mp_addr_parse accepts). */
bool mp__member_addr_valid(const char *addr);

/* Whether name is a valid actor type name (1..MP__MT_TYPE_MAX bytes of
 * [A-Za-z0-9_.-]). */
bool mp__member_type_valid(const char *name);

/* Row index of (addr, incarnation), or -1. */
int mp__mtable_find(const mp__mtable *t, const char *addr, uint32_t incarnation);

/* Insert a copy of row, keeping the order. Returns its index, or
 * MP_EQUEUEFULL (table full), MP_EALREADY (that (addr, inc) exists). */
int mp__mtable_insert(mp__mtable *t, const mp__mrow *row);

/* Remove row i (0 <= i < count). */
void mp__mtable_remove(mp__mtable *t, uint32_t i);

/* Bytes mp__mtable_encode writes for t. */
size_t mp__mtable_encoded_size(const mp__mtable *t);

/* Encode t into buf (cap >= mp__mtable_encoded_size(t)). t must be valid
 * (mp__mtable_check). Returns the length, or MP_ETOOBIG (cap too small) /
 * MP_EINVAL (t invalid: a bug of the caller, message in why). */
int mp__mtable_encode(const mp__mtable *t, uint8_t *buf, size_t cap, char *why,
                      size_t why_cap);

/* Decode and validate stored bytes into *out (every field written).
 * Returns 0, or MP_ECORRUPT (damaged or invalid content) / MP_EVERSION
 * (a newer format) with the reason in why (may be NULL). len 0 (no record)
 * is not a table: the caller treats etag 0 as the empty table. */
int mp__mtable_decode(const void *data, size_t len, mp__mtable *out, char *why,
                      size_t why_cap);

/* Validate a table in memory (what decode checks after parsing). Returns 0
 * or MP_ECORRUPT with the reason in why. */
int mp__mtable_check(const mp__mtable *t, char *why, size_t why_cap);

/* The column header of mp__mrow_format's lines (no newline). */
#define MP__MROW_HEADER \
    "ADDRESS                 INC  STATUS         SINCE  HEARTBEAT    LEASE  TYPES"

/* One row as a line for people (no newline): address, incarnation, status
 * (with "(left)" for a graceful leave and the number of suspicions when
 * any), since, heartbeat, lease in seconds, types comma-separated ("-" for
 * none). Returns the length, or MP_ETOOBIG (cap too small: 3 KiB always
 * suffices). */
int mp__mrow_format(const mp__mrow *r, char *buf, size_t cap);

#endif
