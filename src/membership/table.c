/*
 * The membership table's codec and row helpers (format and reasons in
 * table.h). Decoding is a bounds-checked reader that stops at the first
 * problem and names it: the bytes are outside input, never trusted, and an
 * operator reading "row 3: duplicate type 'Bank'" can repair a table where
 * "corrupt" alone would leave them guessing.
 */
#include "membership/table.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "moonpool/env.h"
#include "moonpool/status.h"
#include "util/crc32c.h"
#include "util/endian.h"

#define MT_MAGIC "MPMT"
#define MT_HEADER 20 /* magic 4, format 2, reserved 2, version 8, rows 4 */

__attribute__((format(printf, 3, 4))) static int fail(char *why, size_t cap,
                                                      const char *fmt, ...)
{
    if (why && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return MP_ECORRUPT;
}

const char *mp__member_status_name(int status)
{
    switch (status) {
    case MP__MEMBER_JOINING: return "joining";
    case MP__MEMBER_ACTIVE: return "active";
    case MP__MEMBER_SHUTTING_DOWN: return "shutting_down";
    case MP__MEMBER_DEAD: return "dead";
    default: return "?";
    }
}

static bool ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

static bool ident_valid(const char *s, size_t max)
{
    if (!s) return false;
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max) return false;
    for (size_t i = 0; i < n; i++)
        if (!ident_char(s[i])) return false;
    return true;
}

bool mp__member_type_valid(const char *name) { return ident_valid(name, MP__MT_TYPE_MAX); }

bool mp__member_addr_valid(const char *addr)
{
    if (!addr) return false;
    size_t n = strnlen(addr, MP_ADDR_MAX + 1);
    if (n == 0 || n > MP_ADDR_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (addr[i] < 0x21 || addr[i] > 0x7e) return false;
    char host[MP_ADDR_MAX + 1];
    uint16_t port;
    return mp_addr_parse(addr, host, sizeof host, &port) == 0;
}

int mp__mtable_key(char *buf, size_t cap, const char *ns)
{
    if (!buf || !ident_valid(ns, MP_ACTOR_PART_MAX)) return MP_EINVAL;
    size_t n = strlen(ns) + strlen(MP__MT_KEY_SUFFIX);
    if (n + 1 > cap) return MP_ETOOBIG;
    snprintf(buf, cap, "%s%s", ns, MP__MT_KEY_SUFFIX);
    return (int)n;
}

void mp__mtable_init(mp__mtable *t)
{
    assert(t);
    t->version = 0;
    t->count = 0;
}

static int row_cmp(const char *addr_a, uint32_t inc_a, const char *addr_b, uint32_t inc_b)
{
    int c = strcmp(addr_a, addr_b);
    if (c) return c;
    return inc_a < inc_b ? -1 : inc_a > inc_b ? 1 : 0;
}

int mp__mtable_find(const mp__mtable *t, const char *addr, uint32_t incarnation)
{
    assert(t && addr);
    for (uint32_t i = 0; i < t->count; i++)
        if (row_cmp(t->rows[i].addr, t->rows[i].incarnation, addr, incarnation) == 0)
            return (int)i;
    return -1;
}

int mp__mtable_insert(mp__mtable *t, const mp__mrow *row)
{
    assert(t && row && t->count <= MP__MT_MAX_ROWS);
    uint32_t at = 0;
    while (at < t->count) {
        int c = row_cmp(t->rows[at].addr, t->rows[at].incarnation, row->addr,
                        row->incarnation);
        if (c == 0) return MP_EALREADY;
        if (c > 0) break;
        at++;
    }
    if (t->count == MP__MT_MAX_ROWS) return MP_EQUEUEFULL;
    memmove(&t->rows[at + 1], &t->rows[at], (t->count - at) * sizeof t->rows[0]);
    t->rows[at] = *row;
    t->count++;
    return (int)at;
}

void mp__mtable_remove(mp__mtable *t, uint32_t i)
{
    assert(t && i < t->count);
    memmove(&t->rows[i], &t->rows[i + 1], (t->count - i - 1) * sizeof t->rows[0]);
    t->count--;
}

/* ---- validation ---------------------------------------------------------- */

static int check_row(const mp__mtable *t, uint32_t i, char *why, size_t cap)
{
    const mp__mrow *r = &t->rows[i];
    if (!mp__member_addr_valid(r->addr))
        return fail(why, cap, "row %u: invalid address", i);
    if (r->incarnation == 0) return fail(why, cap, "row %u (%s): incarnation 0", i, r->addr);
    if (r->status < MP__MEMBER_JOINING || r->status > MP__MEMBER_DEAD)
        return fail(why, cap, "row %u (%s): unknown status %u", i, r->addr, r->status);
    if (r->flags & ~MP__MEMBER_FLAGS_KNOWN)
        return fail(why, cap, "row %u (%s): unknown flags 0x%x", i, r->addr, r->flags);
    if ((r->flags & MP__MEMBER_LEFT) && r->status != MP__MEMBER_DEAD)
        return fail(why, cap, "row %u (%s): flag 'left' on a %s row", i, r->addr,
                    mp__member_status_name(r->status));
    if (r->since > t->version)
        return fail(why, cap, "row %u (%s): since %llu after table version %llu", i, r->addr,
                    (unsigned long long)r->since, (unsigned long long)t->version);
    if (r->lease_ns == 0) return fail(why, cap, "row %u (%s): lease 0", i, r->addr);
    if (r->nsusp > MP__MT_MAX_SUSPICIONS)
        return fail(why, cap, "row %u (%s): %u suspicions (max %d)", i, r->addr, r->nsusp,
                    MP__MT_MAX_SUSPICIONS);
    for (unsigned s = 0; s < r->nsusp; s++) {
        const mp__suspicion *p = &r->susp[s];
        if (!mp__member_addr_valid(p->addr) || p->incarnation == 0)
            return fail(why, cap, "row %u (%s): suspicion %u: invalid suspecter", i, r->addr, s);
        if (strcmp(p->addr, r->addr) == 0 && p->incarnation == r->incarnation)
            return fail(why, cap, "row %u (%s): suspects itself", i, r->addr);
        if (p->heartbeat > r->heartbeat)
            return fail(why, cap, "row %u (%s): suspicion %u from the future (heartbeat %llu > %llu)",
                        i, r->addr, s, (unsigned long long)p->heartbeat,
                        (unsigned long long)r->heartbeat);
        for (unsigned q = 0; q < s; q++)
            if (strcmp(r->susp[q].addr, p->addr) == 0 &&
                r->susp[q].incarnation == p->incarnation)
                return fail(why, cap, "row %u (%s): duplicate suspicion by %s", i, r->addr,
                            p->addr);
    }
    if (r->ntypes > MP__MT_MAX_TYPES)
        return fail(why, cap, "row %u (%s): %u types (max %d)", i, r->addr, r->ntypes,
                    MP__MT_MAX_TYPES);
    for (unsigned k = 0; k < r->ntypes; k++) {
        if (!mp__member_type_valid(r->types[k]))
            return fail(why, cap, "row %u (%s): type %u: invalid name", i, r->addr, k);
        for (unsigned q = 0; q < k; q++)
            if (strcmp(r->types[q], r->types[k]) == 0)
                return fail(why, cap, "row %u (%s): duplicate type '%s'", i, r->addr,
                            r->types[k]);
    }
    if (i > 0) {
        const mp__mrow *p = &t->rows[i - 1];
        int c = row_cmp(p->addr, p->incarnation, r->addr, r->incarnation);
        if (c == 0)
            return fail(why, cap, "row %u: duplicate row %s incarnation %u", i, r->addr,
                        r->incarnation);
        if (c > 0) return fail(why, cap, "row %u (%s): rows out of order", i, r->addr);
    }
    /* At most one incarnation of an address is not dead: a join marks the
     * older ones dead in the same change. Rows are sorted, so the other
     * incarnations of this address are adjacent. */
    if (r->status != MP__MEMBER_DEAD) {
        for (uint32_t j = i; j-- > 0 && strcmp(t->rows[j].addr, r->addr) == 0;)
            if (t->rows[j].status != MP__MEMBER_DEAD)
                return fail(why, cap,
                            "address %s: incarnations %u and %u are both not dead", r->addr,
                            t->rows[j].incarnation, r->incarnation);
    }
    return 0;
}

int mp__mtable_check(const mp__mtable *t, char *why, size_t why_cap)
{
    if (!t) return fail(why, why_cap, "no table");
    if (t->count > MP__MT_MAX_ROWS)
        return fail(why, why_cap, "%u rows (max %d)", t->count, MP__MT_MAX_ROWS);
    for (uint32_t i = 0; i < t->count; i++) {
        int rc = check_row(t, i, why, why_cap);
        if (rc) return rc;
    }
    return 0;
}

/* ---- encoding ------------------------------------------------------------ */

static size_t row_size(const mp__mrow *r)
{
    size_t n = 1 + strlen(r->addr) + 4 + 1 + 1 + 8 + 8 + 8 + 1;
    for (unsigned s = 0; s < r->nsusp; s++) n += 1 + strlen(r->susp[s].addr) + 4 + 8;
    n += 1;
    for (unsigned k = 0; k < r->ntypes; k++) n += 1 + strlen(r->types[k]);
    return n;
}

size_t mp__mtable_encoded_size(const mp__mtable *t)
{
    assert(t && t->count <= MP__MT_MAX_ROWS);
    size_t n = MT_HEADER + 4;
    for (uint32_t i = 0; i < t->count; i++) n += row_size(&t->rows[i]);
    return n;
}

typedef struct wr {
    uint8_t *p;
} wr;

static void put_str(wr *w, const char *s)
{
    size_t n = strlen(s);
    assert(n <= 255);
    *w->p++ = (uint8_t)n;
    memcpy(w->p, s, n);
    w->p += n;
}

static void put_u8(wr *w, uint8_t v) { *w->p++ = v; }
static void put_u32(wr *w, uint32_t v) { mp_put_le32(w->p, v); w->p += 4; }
static void put_u64(wr *w, uint64_t v) { mp_put_le64(w->p, v); w->p += 8; }

int mp__mtable_encode(const mp__mtable *t, uint8_t *buf, size_t cap, char *why,
                      size_t why_cap)
{
    if (!t || !buf) return MP_EINVAL;
    if (mp__mtable_check(t, why, why_cap) != 0) return MP_EINVAL;
    size_t need = mp__mtable_encoded_size(t);
    if (cap < need) return MP_ETOOBIG;
    wr w = {buf};
    memcpy(w.p, MT_MAGIC, 4);
    w.p += 4;
    mp_put_le16(w.p, MP__MT_FORMAT);
    mp_put_le16(w.p + 2, 0);
    w.p += 4;
    put_u64(&w, t->version);
    put_u32(&w, t->count);
    for (uint32_t i = 0; i < t->count; i++) {
        const mp__mrow *r = &t->rows[i];
        put_str(&w, r->addr);
        put_u32(&w, r->incarnation);
        put_u8(&w, r->status);
        put_u8(&w, r->flags);
        put_u64(&w, r->since);
        put_u64(&w, r->heartbeat);
        put_u64(&w, r->lease_ns);
        put_u8(&w, r->nsusp);
        for (unsigned s = 0; s < r->nsusp; s++) {
            put_str(&w, r->susp[s].addr);
            put_u32(&w, r->susp[s].incarnation);
            put_u64(&w, r->susp[s].heartbeat);
        }
        put_u8(&w, r->ntypes);
        for (unsigned k = 0; k < r->ntypes; k++) put_str(&w, r->types[k]);
    }
    put_u32(&w, mp_crc32c(buf, (size_t)(w.p - buf)));
    assert((size_t)(w.p - buf) == need);
    return (int)need;
}

/* ---- decoding ------------------------------------------------------------ */

typedef struct rd {
    const uint8_t *p, *end;
} rd;

static bool get_u8(rd *r, uint8_t *v)
{
    if (r->end - r->p < 1) return false;
    *v = *r->p++;
    return true;
}

static bool get_u32(rd *r, uint32_t *v)
{
    if (r->end - r->p < 4) return false;
    *v = mp_get_le32(r->p);
    r->p += 4;
    return true;
}

static bool get_u64(rd *r, uint64_t *v)
{
    if (r->end - r->p < 8) return false;
    *v = mp_get_le64(r->p);
    r->p += 8;
    return true;
}

/* A length-prefixed string of 1..max bytes without NUL, into out[max+1]. */
static int get_str(rd *r, char *out, size_t max, const char *what, uint32_t row, char *why,
                   size_t cap)
{
    uint8_t n;
    if (!get_u8(r, &n)) return fail(why, cap, "row %u: truncated in %s length", row, what);
    if (n == 0 || n > max)
        return fail(why, cap, "row %u: %s length %u outside 1..%zu", row, what, n, max);
    if (r->end - r->p < n) return fail(why, cap, "row %u: truncated in %s", row, what);
    if (memchr(r->p, 0, n)) return fail(why, cap, "row %u: NUL byte in %s", row, what);
    memcpy(out, r->p, n);
    out[n] = '\0';
    r->p += n;
    return 0;
}

#define NEED(expr, what)                                                        \
    do {                                                                        \
        if (!(expr)) return fail(why, why_cap, "row %u: truncated in %s", i, what); \
    } while (0)

static int decode(const void *data, size_t len, mp__mtable *out, char *why, size_t why_cap)
{
    if (!data || len < MT_HEADER + 4)
        return fail(why, why_cap, "%zu bytes: shorter than a table header", len);
    const uint8_t *b = data;
    if (memcmp(b, MT_MAGIC, 4) != 0) return fail(why, why_cap, "not a membership table (magic)");
    uint16_t format = mp_get_le16(b + 4);
    if (format != MP__MT_FORMAT) {
        if (why && why_cap)
            snprintf(why, why_cap, "table format %u, this build reads %d", format,
                     MP__MT_FORMAT);
        return MP_EVERSION;
    }
    if (mp_get_le16(b + 6) != 0) return fail(why, why_cap, "reserved header bytes not zero");
    uint32_t crc = mp_get_le32(b + len - 4);
    if (crc != mp_crc32c(b, len - 4)) return fail(why, why_cap, "checksum mismatch");
    rd r = {b + 8, b + len - 4};
    uint64_t version = 0;
    uint32_t count = 0;
    (void)get_u64(&r, &version);
    (void)get_u32(&r, &count);
    if (count > MP__MT_MAX_ROWS)
        return fail(why, why_cap, "%u rows (max %d)", count, MP__MT_MAX_ROWS);
    out->version = version;
    for (uint32_t i = 0; i < count; i++) {
        mp__mrow *row = &out->rows[i];
        memset(row, 0, sizeof *row);
        int rc = get_str(&r, row->addr, MP_ADDR_MAX, "address", i, why, why_cap);
        if (rc) return rc;
        NEED(get_u32(&r, &row->incarnation), "incarnation");
        NEED(get_u8(&r, &row->status), "status");
        NEED(get_u8(&r, &row->flags), "flags");
        NEED(get_u64(&r, &row->since), "since");
        NEED(get_u64(&r, &row->heartbeat), "heartbeat");
        NEED(get_u64(&r, &row->lease_ns), "lease");
        NEED(get_u8(&r, &row->nsusp), "suspicion count");
        if (row->nsusp > MP__MT_MAX_SUSPICIONS)
            return fail(why, why_cap, "row %u: %u suspicions (max %d)", i, row->nsusp,
                        MP__MT_MAX_SUSPICIONS);
        for (unsigned s = 0; s < row->nsusp; s++) {
            rc = get_str(&r, row->susp[s].addr, MP_ADDR_MAX, "suspecter address", i, why,
                         why_cap);
            if (rc) return rc;
            NEED(get_u32(&r, &row->susp[s].incarnation), "suspecter incarnation");
            NEED(get_u64(&r, &row->susp[s].heartbeat), "suspicion heartbeat");
        }
        NEED(get_u8(&r, &row->ntypes), "type count");
        if (row->ntypes > MP__MT_MAX_TYPES)
            return fail(why, why_cap, "row %u: %u types (max %d)", i, row->ntypes,
                        MP__MT_MAX_TYPES);
        for (unsigned k = 0; k < row->ntypes; k++) {
            rc = get_str(&r, row->types[k], MP__MT_TYPE_MAX, "type", i, why, why_cap);
            if (rc) return rc;
        }
        out->count = i + 1;
    }
    if (r.p != r.end)
        return fail(why, why_cap, "%zu bytes after the last row", (size_t)(r.end - r.p));
    out->count = count;
    return mp__mtable_check(out, why, why_cap);
}

int mp__mtable_decode(const void *data, size_t len, mp__mtable *out, char *why,
                      size_t why_cap)
{
    if (!out) return MP_EINVAL;
    mp__mtable_init(out);
    int rc = decode(data, len, out, why, why_cap);
    if (rc) mp__mtable_init(out); /* never a half-read table */
    return rc;
}

/* ---- display -------------------------------------------------------------- */

int mp__mrow_format(const mp__mrow *r, char *buf, size_t cap)
{
    if (!r || !buf || cap == 0) return MP_EINVAL;
    char status[40];
    if (r->status == MP__MEMBER_DEAD && (r->flags & MP__MEMBER_LEFT))
        snprintf(status, sizeof status, "dead(left)");
    else if (r->nsusp)
        snprintf(status, sizeof status, "%s(%u susp)", mp__member_status_name(r->status),
                 r->nsusp);
    else
        snprintf(status, sizeof status, "%s", mp__member_status_name(r->status));
    int n = snprintf(buf, cap, "%-22s %4u  %-13s  %5llu  %9llu  %6.3fs  ", r->addr,
                     r->incarnation, status, (unsigned long long)r->since,
                     (unsigned long long)r->heartbeat, (double)r->lease_ns / MP_NS_PER_SEC);
    if (n < 0 || (size_t)n >= cap) return MP_ETOOBIG;
    size_t len = (size_t)n;
    if (r->ntypes == 0) {
        if (len + 2 > cap) return MP_ETOOBIG;
        buf[len++] = '-';
        buf[len] = '\0';
    }
    for (unsigned k = 0; k < r->ntypes; k++) {
        size_t tl = strlen(r->types[k]);
        if (len + (k ? 1 : 0) + tl + 1 > cap) return MP_ETOOBIG;
        if (k) buf[len++] = ',';
        memcpy(buf + len, r->types[k], tl + 1);
        len += tl;
    }
    return (int)len;
}
