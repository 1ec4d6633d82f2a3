/*
 * Node configuration parser (format and reference: include/moonpool/config.h,
 * docs/config.md).
 *
 * Design:
 *   - One pass over the text, line by line, never trusting it: every byte is
 *     checked (no NUL, no control characters), every line is bounded, every
 *     number is parsed with overflow checks, every value is range-checked
 *     with a message that names the file, the line and what was expected.
 *     The first error stops the parse; one precise message beats a list of
 *     consequential ones.
 *   - During the pass values are kept as (pointer, length) slices of the
 *     caller's text and numbers as integers. Only when the whole config is
 *     valid is one arena allocated, sized exactly, and the strings copied
 *     into it: a failed parse allocates nothing, and a parsed config is
 *     released by one free.
 *   - The key table drives everything (lookup, duplicates, ranges,
 *     formatting), so adding a key is one table line plus its field.
 *   - mp_config_format writes every key explicitly in canonical units; since
 *     the parser strips blanks and comments, a parsed value can never hold
 *     what the formatter could not write back (a leading '#', a blank
 *     followed by '#', surrounding blanks), which is what makes the
 *     parse -> format -> parse round trip exact (checked by the fuzzer).
 *
 * No I/O here: reading files is src/host/config_file.c's job.
 */
#include "moonpool/config.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest list line the formatter writes before wrapping (readability only;
 * the parser's bound is MP_CONFIG_MAX_LINE). */
#define FORMAT_WRAP 76

_Static_assert(MP_CONFIG_MAX_MEMBERS == MP_MAX_MEMBERS,
               "config and node must agree on the member limit");

/* ------------------------------------------------------------ key table */

enum section { SEC_CLUSTER, SEC_NODE, SEC_STORAGE, SEC_TIMEOUTS, SEC_LIMITS, SEC_SECURITY,
               SEC_MEMBERSHIP, SEC_COUNT_ };

static const char *const section_names[SEC_COUNT_] = {
    "cluster", "node", "storage", "timeouts", "limits", "security", "membership",
};

enum key {
    K_NAMESPACE, K_MEMBERS,
    K_ADDRESS, K_DATA_DIR, K_LOG_LEVEL, K_METRICS_ADDRESS, K_LOG_FORMAT,
    K_PROVIDER, K_PATH, K_CONNINFO,
    K_CALL, K_IDLE, K_SHUTDOWN, K_HEARTBEAT, K_PEER_TIMEOUT, K_FRAME_TIMEOUT,
    K_MAX_MESSAGE, K_MAX_PENDING, K_MAILBOX_WARN, K_MAX_MAILBOX,
    K_MAX_CONNECTIONS, K_MAX_CONNECTIONS_PER_IP,
    K_SECRET_FILE, K_TLS_CERT, K_TLS_KEY, K_TLS_CA,
    K_MODE, K_LEASE, K_MARGIN, K_POLL, K_VOTES,
    K_COUNT_
};

enum kind { V_NAMESPACE, V_MEMBERS, V_ADDRESS, V_TEXT, V_LOG_LEVEL, V_PROVIDER,
            V_DURATION, V_SIZE, V_COUNT, V_MODE };

typedef struct keydef {
    enum section sec;
    const char *name;
    enum kind kind;
    uint64_t min, max; /* numbers: inclusive range in ns / bytes / units */
} keydef;

static const keydef keys[K_COUNT_] = {
    [K_NAMESPACE] = {SEC_CLUSTER, "namespace", V_NAMESPACE, 0, 0},
    [K_MEMBERS] = {SEC_CLUSTER, "members", V_MEMBERS, 0, 0},
    [K_ADDRESS] = {SEC_NODE, "address", V_ADDRESS, 0, 0},
    [K_DATA_DIR] = {SEC_NODE, "data_dir", V_TEXT, 0, 0},
    [K_LOG_LEVEL] = {SEC_NODE, "log_level", V_LOG_LEVEL, 0, 0},
    [K_METRICS_ADDRESS] = {SEC_NODE, "metrics_address", V_TEXT, 0, 0},
    [K_LOG_FORMAT] = {SEC_NODE, "log_format", V_TEXT, 0, 0},
    [K_PROVIDER] = {SEC_STORAGE, "provider", V_PROVIDER, 0, 0},
    [K_PATH] = {SEC_STORAGE, "path", V_TEXT, 0, 0},
    [K_CONNINFO] = {SEC_STORAGE, "conninfo", V_TEXT, 0, 0},
    [K_CALL] = {SEC_TIMEOUTS, "call", V_DURATION, MP_NS_PER_MS, 24 * MP_NS_PER_HOUR},
    [K_IDLE] = {SEC_TIMEOUTS, "idle", V_DURATION, MP_NS_PER_SEC, 7 * 24 * MP_NS_PER_HOUR},
    [K_SHUTDOWN] = {SEC_TIMEOUTS, "shutdown", V_DURATION, MP_NS_PER_MS, MP_NS_PER_HOUR},
    [K_HEARTBEAT] = {SEC_TIMEOUTS, "heartbeat", V_DURATION, 10 * MP_NS_PER_MS, MP_NS_PER_HOUR},
    /* 0 disables it; otherwise > 2 x heartbeat (validate) */
    [K_PEER_TIMEOUT] = {SEC_TIMEOUTS, "peer_timeout", V_DURATION, 0, 24 * MP_NS_PER_HOUR},
    [K_FRAME_TIMEOUT] = {SEC_TIMEOUTS, "frame", V_DURATION, 100 * MP_NS_PER_MS, MP_NS_PER_HOUR},
    [K_MAX_MESSAGE] = {SEC_LIMITS, "max_message", V_SIZE, 4 * MP_KIB, MP_MAX_MESSAGE_LIMIT_BYTES},
    [K_MAX_PENDING] = {SEC_LIMITS, "max_pending_calls", V_COUNT, 1, 1000000000ull},
    [K_MAILBOX_WARN] = {SEC_LIMITS, "mailbox_warn_depth", V_COUNT, 0, 1000000000ull},
    [K_MAX_MAILBOX] = {SEC_LIMITS, "max_mailbox", V_COUNT, 1, 1000000000ull},
    [K_MAX_CONNECTIONS] = {SEC_LIMITS, "max_connections", V_COUNT, 1, 1000000ull},
    [K_MAX_CONNECTIONS_PER_IP] = {SEC_LIMITS, "max_connections_per_ip", V_COUNT, 1, 1000000ull},
    [K_SECRET_FILE] = {SEC_SECURITY, "secret_file", V_TEXT, 0, 0},
    [K_TLS_CERT] = {SEC_SECURITY, "tls_cert", V_TEXT, 0, 0},
    [K_TLS_KEY] = {SEC_SECURITY, "tls_key", V_TEXT, 0, 0},
    [K_TLS_CA] = {SEC_SECURITY, "tls_ca", V_TEXT, 0, 0},
    /* [membership]: lease, margin and poll also at most the lease (validate);
     * margin starts at 1ms because the node config's 0 means "lease / 5". */
    [K_MODE] = {SEC_MEMBERSHIP, "mode", V_MODE, 0, 0},
    [K_LEASE] = {SEC_MEMBERSHIP, "lease", V_DURATION, 100 * MP_NS_PER_MS, MP_NS_PER_HOUR},
    [K_MARGIN] = {SEC_MEMBERSHIP, "margin", V_DURATION, MP_NS_PER_MS, MP_NS_PER_HOUR},
    [K_POLL] = {SEC_MEMBERSHIP, "poll", V_DURATION, 10 * MP_NS_PER_MS, MP_NS_PER_HOUR},
    [K_VOTES] = {SEC_MEMBERSHIP, "votes", V_COUNT, 1, MP_MAX_MEMBERS},
};

static const char *const storage_names[] = {
    [MP_CONFIG_STORAGE_SQLITE] = "sqlite",
    [MP_CONFIG_STORAGE_POSTGRES] = "postgres",
    [MP_CONFIG_STORAGE_MEMORY] = "memory",
};

/* Must match mp_log_level_parse (env_common.c); the unit test checks it. */
static const char *const log_level_names[] = {"debug", "info", "warn", "error", "off"};

const char *mp_config_storage_name(mp_config_storage s)
{
    if ((unsigned)s >= sizeof storage_names / sizeof storage_names[0]) return "?";
    return storage_names[s];
}

const char *mp_config_log_level_name(mp_log_level l)
{
    if ((unsigned)l >= sizeof log_level_names / sizeof log_level_names[0]) return "?";
    return log_level_names[l];
}

/* ------------------------------------------------------------ parse state */

typedef struct slice {
    const char *p;
    size_t n;
} slice;

typedef struct member_item {
    slice s;
    int line;
} member_item;

typedef struct parser {
    const char *origin;
    mp_config_error *err;
    int line;                  /* current line, 1-based */
    int section;               /* current section, -1 before the first */
    int section_line[SEC_COUNT_];
    int key_line[K_COUNT_];    /* 0: not seen */
    slice text[K_COUNT_];      /* string values */
    uint64_t num[K_COUNT_];    /* numeric values */
    mp_log_level log_level;
    mp_config_storage storage;
    bool membership_table;     /* [membership] mode = table */
    member_item members[MP_CONFIG_MAX_MEMBERS];
    size_t member_count;
    int list_open_line;        /* members line ending in ',', 0: none */
} parser;

/* ------------------------------------------------------------ messages */

/* Copy s into buf for quoting in a message: at most 48 bytes shown,
 * anything unprintable (bytes a terminal could interpret) as '?'. */
static const char *quote(char *buf, size_t cap, const char *p, size_t n)
{
    assert(cap >= 52);
    size_t shown = n > 48 ? 45 : n, o = 0;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)p[i];
        buf[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (shown < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* The origin as shown in messages: its last 100 bytes (a file name is at
 * the end of its path) so the reason itself is never cut off. */
__attribute__((format(printf, 4, 0)))
static void set_error(mp_config_error *err, const char *origin, int line,
                      const char *fmt, va_list ap)
{
    if (!err) return;
    if (!origin) origin = "<config>";
    size_t olen = strlen(origin);
    const char *ell = "";
    if (olen > 100) {
        origin += olen - 100;
        ell = "...";
    }
    int n;
    if (line > 0)
        n = snprintf(err->message, sizeof err->message, "%s%s:%d: ", ell, origin, line);
    else
        n = snprintf(err->message, sizeof err->message, "%s%s: ", ell, origin);
    if (n < 0) n = 0;
    if ((size_t)n < sizeof err->message)
        vsnprintf(err->message + n, sizeof err->message - (size_t)n, fmt, ap);
    err->line = line;
}

__attribute__((format(printf, 4, 5)))
static int fail_at(parser *ps, int line, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error(ps->err, ps->origin, line, fmt, ap);
    va_end(ap);
    return status;
}

#define FAIL(ps, ...) fail_at((ps), (ps)->line, MP_EINVAL, __VA_ARGS__)

__attribute__((format(printf, 4, 5)))
static int fail_plain(mp_config_error *err, const char *origin, int status,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error(err, origin, 0, fmt, ap);
    va_end(ap);
    return status;
}

/* Edit distance for "did you mean" hints, on short ASCII words only. */
static size_t edit_distance(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    if (an > 32 || bn > 32) return 99;
    size_t prev[33], cur[33];
    for (size_t j = 0; j <= bn; j++) prev[j] = j;
    for (size_t i = 1; i <= an; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= bn; j++) {
            char x = a[i - 1], y = b[j - 1];
            if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
            size_t sub = prev[j - 1] + (x != y);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof prev);
    }
    return prev[bn];
}

/* ------------------------------------------------------------ lexing */

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

static slice trim(slice s)
{
    while (s.n && is_blank(s.p[0])) s.p++, s.n--;
    while (s.n && is_blank(s.p[s.n - 1])) s.n--;
    return s;
}

static bool slice_eq(slice s, const char *z)
{
    size_t n = strlen(z);
    return s.n == n && memcmp(s.p, z, n) == 0;
}

static bool ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

/* Digits, then optional blanks, then the unit in *unit. */
static int parse_number(slice v, uint64_t *out, slice *unit)
{
    size_t i = 0;
    uint64_t x = 0;
    if (v.n == 0 || v.p[0] < '0' || v.p[0] > '9') return MP_EINVAL;
    for (; i < v.n && v.p[i] >= '0' && v.p[i] <= '9'; i++) {
        uint64_t d = (uint64_t)(v.p[i] - '0');
        if (x > (UINT64_MAX - d) / 10) return MP_ETOOBIG;
        x = x * 10 + d;
    }
    while (i < v.n && is_blank(v.p[i])) i++;
    unit->p = v.p + i;
    unit->n = v.n - i;
    *out = x;
    return MP_OK;
}

typedef struct unitdef {
    const char *name;
    uint64_t mult;
} unitdef;

static const unitdef duration_units[] = {
    {"h", MP_NS_PER_HOUR}, {"m", MP_NS_PER_MIN}, {"s", MP_NS_PER_SEC}, {"ms", MP_NS_PER_MS}, {NULL, 0}};
static const unitdef size_units[] = {
    {"GiB", MP_GIB}, {"MiB", MP_MIB}, {"KiB", MP_KIB}, {"B", 1}, {NULL, 0}};

/* Canonical text of a value: the largest unit that divides it exactly. */
static void format_units(char *buf, size_t cap, uint64_t v, const unitdef *u)
{
    for (; u->name; u++) {
        if (u->mult == 1 || (v % u->mult == 0 && v != 0) || !u[1].name) {
            snprintf(buf, cap, "%llu%s", (unsigned long long)(v / u->mult), u->name);
            return;
        }
    }
}

static void format_value(char *buf, size_t cap, enum kind kind, uint64_t v)
{
    if (kind == V_DURATION) format_units(buf, cap, v, duration_units);
    else if (kind == V_SIZE) format_units(buf, cap, v, size_units);
    else snprintf(buf, cap, "%llu", (unsigned long long)v);
}

int mp_config_parse_duration(const char *text, uint64_t *ns)
{
    if (!text || !ns) return MP_EINVAL;
    slice v = {text, strlen(text)}, unit;
    uint64_t x;
    int rc = parse_number(v, &x, &unit);
    if (rc != MP_OK) return rc;
    for (const unitdef *u = duration_units; u->name; u++) {
        if (!slice_eq(unit, u->name)) continue;
        if (x > UINT64_MAX / u->mult) return MP_ETOOBIG;
        *ns = x * u->mult;
        return MP_OK;
    }
    return MP_EINVAL;
}

static int parse_with_units(parser *ps, enum key k, slice v, const unitdef *units,
                            const char *what, const char *example)
{
    const keydef *kd = &keys[k];
    char q[64], lo[32], hi[32];
    uint64_t x;
    slice unit;
    int rc = parse_number(v, &x, &unit);
    format_value(lo, sizeof lo, kd->kind, kd->min);
    format_value(hi, sizeof hi, kd->kind, kd->max);
    if (rc == MP_ETOOBIG)
        return FAIL(ps, "'%s' must be between %s and %s (got '%s')", kd->name, lo, hi,
                    quote(q, sizeof q, v.p, v.n));
    if (rc != MP_OK)
        return FAIL(ps, "bad %s '%s' for '%s': expected a number and a unit, e.g. %s",
                    what, quote(q, sizeof q, v.p, v.n), kd->name, example);
    const unitdef *u = units;
    for (; u->name; u++)
        if (slice_eq(unit, u->name)) break;
    if (!u->name) {
        if (unit.n == 0)
            return FAIL(ps, "%s '%s' for '%s' needs a unit (%s), e.g. %s", what,
                        quote(q, sizeof q, v.p, v.n), kd->name,
                        units == duration_units ? "ms, s, m, h" : "B, KiB, MiB, GiB",
                        example);
        char qu[64];
        return FAIL(ps, "unknown unit '%s' in '%s' for '%s' (use %s)",
                    quote(qu, sizeof qu, unit.p, unit.n), quote(q, sizeof q, v.p, v.n),
                    kd->name, units == duration_units ? "ms, s, m, h" : "B, KiB, MiB, GiB");
    }
    if (x > UINT64_MAX / u->mult || x * u->mult < kd->min || x * u->mult > kd->max)
        return FAIL(ps, "'%s' must be between %s and %s (got '%s')", kd->name, lo, hi,
                    quote(q, sizeof q, v.p, v.n));
    ps->num[k] = x * u->mult;
    return MP_OK;
}

static int parse_count(parser *ps, enum key k, slice v)
{
    const keydef *kd = &keys[k];
    char q[64];
    uint64_t x;
    slice unit;
    int rc = parse_number(v, &x, &unit);
    if (rc == MP_OK && unit.n != 0) rc = MP_EINVAL;
    if (rc == MP_EINVAL)
        return FAIL(ps, "bad number '%s' for '%s': expected a plain decimal integer",
                    quote(q, sizeof q, v.p, v.n), kd->name);
    if (rc != MP_OK || x < kd->min || x > kd->max)
        return FAIL(ps, "'%s' must be between %llu and %llu (got '%s')", kd->name,
                    (unsigned long long)kd->min, (unsigned long long)kd->max,
                    quote(q, sizeof q, v.p, v.n));
    ps->num[k] = x;
    return MP_OK;
}

/* A member or node address: "host:port" as mp_addr_parse accepts it, at
 * most MP_CONFIG_ADDR_MAX bytes, port not 0 (nobody can connect to it). */
static int check_address(parser *ps, slice a, const char *what)
{
    char q[64], buf[MP_CONFIG_ADDR_MAX + 1], host[MP_CONFIG_ADDR_MAX + 1];
    uint16_t port = 0;
    if (a.n > MP_CONFIG_ADDR_MAX)
        return FAIL(ps, "%s '%s' is longer than %u bytes", what, quote(q, sizeof q, a.p, a.n),
                    MP_CONFIG_ADDR_MAX);
    memcpy(buf, a.p, a.n);
    buf[a.n] = '\0';
    if (mp_addr_parse(buf, host, sizeof host, &port) != MP_OK || port == 0)
        return FAIL(ps, "bad %s '%s': expected host:port with port 1..65535", what,
                    quote(q, sizeof q, a.p, a.n));
    return MP_OK;
}

/* Items of one line of the members list; sets list_open_line when the line
 * ends with ',' so the list continues on the next line. */
static int parse_member_line(parser *ps, slice v)
{
    char q[64];
    assert(v.n > 0);
    ps->list_open_line = 0;
    size_t start = 0;
    for (size_t i = 0; i <= v.n; i++) {
        if (i < v.n && v.p[i] != ',') continue;
        slice item = trim((slice){v.p + start, i - start});
        start = i + 1;
        if (i == v.n && item.n == 0) {
            /* only reachable after a trailing ',' (v is trimmed, non-empty) */
            ps->list_open_line = ps->line;
            break;
        }
        if (item.n == 0) return FAIL(ps, "empty item in 'members' list");
        int rc = check_address(ps, item, "member address");
        if (rc) return rc;
        for (size_t j = 0; j < ps->member_count; j++) {
            const member_item *m = &ps->members[j];
            if (m->s.n == item.n && memcmp(m->s.p, item.p, item.n) == 0)
                return FAIL(ps, "duplicate member '%s' (first at line %d)",
                            quote(q, sizeof q, item.p, item.n), m->line);
        }
        if (ps->member_count == MP_CONFIG_MAX_MEMBERS)
            return FAIL(ps, "too many members (at most %u)", MP_CONFIG_MAX_MEMBERS);
        ps->members[ps->member_count++] = (member_item){item, ps->line};
    }
    return MP_OK;
}

static int parse_value(parser *ps, enum key k, slice v)
{
    char q[64];
    const keydef *kd = &keys[k];
    switch (kd->kind) {
    case V_NAMESPACE:
        if (v.n > MP_CONFIG_NAMESPACE_MAX)
            return FAIL(ps, "namespace '%s' is longer than %u bytes",
                        quote(q, sizeof q, v.p, v.n), MP_CONFIG_NAMESPACE_MAX);
        for (size_t i = 0; i < v.n; i++)
            if (!ident_char(v.p[i]))
                return FAIL(ps, "bad namespace '%s': allowed characters are A-Z a-z 0-9 _ . -",
                            quote(q, sizeof q, v.p, v.n));
        ps->text[k] = v;
        return MP_OK;
    case V_MEMBERS:
        return parse_member_line(ps, v);
    case V_ADDRESS: {
        int rc = check_address(ps, v, "address");
        if (rc) return rc;
        ps->text[k] = v;
        return MP_OK;
    }
    case V_TEXT:
        ps->text[k] = v;
        return MP_OK;
    case V_LOG_LEVEL:
        for (size_t i = 0; i < sizeof log_level_names / sizeof log_level_names[0]; i++) {
            if (slice_eq(v, log_level_names[i])) {
                /* The same table as mp_log_level_parse, asserted equal there. */
                mp_log_level l;
                int rc = mp_log_level_parse(log_level_names[i], &l);
                assert(rc == MP_OK && (size_t)l == i);
                (void)rc;
                ps->log_level = l;
                return MP_OK;
            }
        }
        return FAIL(ps, "bad log_level '%s' (use debug, info, warn, error or off)",
                    quote(q, sizeof q, v.p, v.n));
    case V_PROVIDER:
        for (size_t i = 0; i < sizeof storage_names / sizeof storage_names[0]; i++) {
            if (slice_eq(v, storage_names[i])) {
                ps->storage = (mp_config_storage)i;
                return MP_OK;
            }
        }
        return FAIL(ps, "unknown storage provider '%s' (use sqlite, postgres or memory)",
                    quote(q, sizeof q, v.p, v.n));
    case V_MODE:
        if (slice_eq(v, "static") || slice_eq(v, "table")) {
            ps->membership_table = slice_eq(v, "table");
            return MP_OK;
        }
        return FAIL(ps, "bad membership mode '%s' (use static or table)",
                    quote(q, sizeof q, v.p, v.n));
    case V_DURATION:
        return parse_with_units(ps, k, v, duration_units, "duration", "30s");
    case V_SIZE:
        return parse_with_units(ps, k, v, size_units, "size", "1MiB");
    case V_COUNT:
        return parse_count(ps, k, v);
    }
    assert(0 && "unreachable");
    return MP_EINTERNAL;
}

static int parse_section(parser *ps, slice s)
{
    char q[64];
    assert(s.n >= 1 && s.p[0] == '[');
    if (s.p[s.n - 1] != ']')
        return FAIL(ps, "bad section header '%s': expected [name]", quote(q, sizeof q, s.p, s.n));
    slice name = trim((slice){s.p + 1, s.n - 2});
    for (int i = 0; i < SEC_COUNT_; i++) {
        if (!slice_eq(name, section_names[i])) continue;
        if (ps->section_line[i])
            return FAIL(ps, "duplicate section [%s] (first at line %d)", section_names[i],
                        ps->section_line[i]);
        ps->section = i;
        ps->section_line[i] = ps->line;
        return MP_OK;
    }
    const char *best = NULL;
    size_t bestd = 3;
    for (int i = 0; i < SEC_COUNT_; i++) {
        size_t d = edit_distance(name.p, name.n, section_names[i]);
        if (d < bestd) bestd = d, best = section_names[i];
    }
    if (best)
        return FAIL(ps, "unknown section [%s] (did you mean [%s]?)",
                    quote(q, sizeof q, name.p, name.n), best);
    return FAIL(ps, "unknown section [%s] (sections: cluster, node, storage, timeouts, limits, security, membership)",
                quote(q, sizeof q, name.p, name.n));
}

static int parse_assignment(parser *ps, slice s)
{
    char q[64];
    const char *eq = memchr(s.p, '=', s.n);
    if (!eq)
        return FAIL(ps, "expected 'key = value' or '[section]', got '%s'",
                    quote(q, sizeof q, s.p, s.n));
    slice key = trim((slice){s.p, (size_t)(eq - s.p)});
    slice val = trim((slice){eq + 1, s.n - (size_t)(eq - s.p) - 1});
    if (key.n == 0) return FAIL(ps, "missing key name before '='");
    if (ps->section < 0)
        return FAIL(ps, "key '%s' outside of any section (start with [cluster])",
                    quote(q, sizeof q, key.p, key.n));
    int k = -1;
    for (int i = 0; i < K_COUNT_; i++) {
        if ((int)keys[i].sec == ps->section && slice_eq(key, keys[i].name)) {
            k = i;
            break;
        }
    }
    const char *sec = section_names[ps->section];
    if (k < 0) {
        for (int i = 0; i < K_COUNT_; i++)
            if (slice_eq(key, keys[i].name))
                return FAIL(ps, "key '%s' belongs in [%s], not in [%s]", keys[i].name,
                            section_names[keys[i].sec], sec);
        const char *best = NULL;
        size_t bestd = 3;
        for (int i = 0; i < K_COUNT_; i++) {
            if ((int)keys[i].sec != ps->section) continue;
            size_t d = edit_distance(key.p, key.n, keys[i].name);
            if (d < bestd) bestd = d, best = keys[i].name;
        }
        if (best)
            return FAIL(ps, "unknown key '%s' in [%s] (did you mean '%s'?)",
                        quote(q, sizeof q, key.p, key.n), sec, best);
        return FAIL(ps, "unknown key '%s' in [%s]", quote(q, sizeof q, key.p, key.n), sec);
    }
    if (ps->key_line[k])
        return FAIL(ps, "duplicate key '%s' in [%s] (first at line %d)", keys[k].name, sec,
                    ps->key_line[k]);
    ps->key_line[k] = ps->line;
    if (val.n == 0) return FAIL(ps, "empty value for '%s'", keys[k].name);
    return parse_value(ps, (enum key)k, val);
}

/* One line without its terminator. Checks its bytes, strips the comment
 * and dispatches. */
static int parse_line(parser *ps, slice raw)
{
    if (raw.n > MP_CONFIG_MAX_LINE)
        return FAIL(ps, "line is longer than %u bytes", MP_CONFIG_MAX_LINE);
    /* '#' starts a comment at the start of the line or of a value, or after
     * a blank: "a#b" stays a value, "a # b" is "a". Only the first '='
     * starts a value: "conninfo = password=#x" keeps its '#'. */
    size_t end = raw.n;
    bool value_start = true; /* nothing but blanks since line start or first '=' */
    bool seen_eq = false;
    for (size_t i = 0; i < raw.n; i++) {
        unsigned char c = (unsigned char)raw.p[i];
        if (c == '\0') return FAIL(ps, "NUL byte in config text");
        if (c == '\r') return FAIL(ps, "stray carriage return (line endings are LF or CRLF)");
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return FAIL(ps, "control character 0x%02x in config text", c);
        if (end == raw.n) {
            if (c == '#' && (value_start || is_blank(raw.p[i - 1]))) end = i;
            else if (c == '=' && !seen_eq) value_start = seen_eq = true;
            else if (!is_blank((char)c)) value_start = false;
        }
    }
    slice s = trim((slice){raw.p, end});
    if (s.n == 0) return MP_OK;

    if (ps->list_open_line) {
        /* The members list ended with ',' and continues here, unless this
         * line is clearly something else. */
        if (s.p[0] == '[' || memchr(s.p, '=', s.n))
            return fail_at(ps, ps->list_open_line, MP_EINVAL,
                           "'members' list ends with ',' but no member follows");
        return parse_member_line(ps, s);
    }
    if (s.p[0] == '[') return parse_section(ps, s);
    return parse_assignment(ps, s);
}

/* [membership]: the lease keys only mean something with the table (a
 * static member list has no lease: a key set there would be silently
 * ignored), the table lives in storage every member shares, and margin and
 * poll fit in the lease, explicit or derived from peer_timeout as the node
 * derives it (mp_node_create). */
static int validate_membership(parser *ps)
{
    static const enum key lease_keys[] = {K_LEASE, K_MARGIN, K_POLL, K_VOTES};
    if (!ps->membership_table) {
        for (size_t i = 0; i < sizeof lease_keys / sizeof lease_keys[0]; i++) {
            enum key k = lease_keys[i];
            if (ps->key_line[k])
                return fail_at(ps, ps->key_line[k], MP_EINVAL,
                               "'%s' applies only with 'mode = table' in [membership] "
                               "(the mode is static%s)",
                               keys[k].name, ps->key_line[K_MODE] ? "" : ", the default");
        }
        return MP_OK;
    }
    if (ps->storage == MP_CONFIG_STORAGE_MEMORY)
        return fail_at(ps, ps->key_line[K_MODE], MP_EINVAL,
                       "'mode = table' keeps the membership table in storage every member "
                       "shares: use provider sqlite (one file for all nodes) or postgres; "
                       "memory storage is private to each process");
    char vl[32], v[32];
    uint64_t lease = ps->num[K_LEASE];
    if (!ps->key_line[K_LEASE]) {
        uint64_t pt = ps->num[K_PEER_TIMEOUT] ? ps->num[K_PEER_TIMEOUT]
                                              : MP_DEFAULT_PEER_TIMEOUT_NS;
        lease = pt / 2;
        if (lease < keys[K_LEASE].min || lease > keys[K_LEASE].max) {
            format_value(vl, sizeof vl, V_DURATION, lease);
            return fail_at(ps, ps->key_line[K_MODE], MP_EINVAL,
                           "the lease (peer_timeout / 2 = %s, the default) must be between "
                           "100ms and 1h: set 'lease' in [membership]", vl);
        }
    }
    format_value(vl, sizeof vl, V_DURATION, lease);
    static const enum key in_lease[] = {K_MARGIN, K_POLL};
    for (size_t i = 0; i < sizeof in_lease / sizeof in_lease[0]; i++) {
        enum key k = in_lease[i];
        if (!ps->key_line[k] || ps->num[k] <= lease) continue;
        format_value(v, sizeof v, V_DURATION, ps->num[k]);
        return fail_at(ps, ps->key_line[k], MP_EINVAL,
                       "'%s' (%s) must be at most the lease (%s%s)", keys[k].name, v, vl,
                       ps->key_line[K_LEASE] ? "" : ", peer_timeout / 2");
    }
    return MP_OK;
}

/* Cross-key rules, once the whole text is read. */
static int validate(parser *ps)
{
    if (ps->list_open_line)
        return fail_at(ps, ps->list_open_line, MP_EINVAL,
                       "'members' list ends with ',' but no member follows");
    static const enum key required[] = {K_NAMESPACE, K_MEMBERS};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        const keydef *kd = &keys[required[i]];
        if (ps->key_line[required[i]]) continue;
        if (ps->section_line[kd->sec])
            return fail_at(ps, ps->section_line[kd->sec], MP_EINVAL,
                           "missing required key '%s' in [%s]", kd->name,
                           section_names[kd->sec]);
        return fail_at(ps, 0, MP_EINVAL, "missing section [%s] (it needs 'namespace' and "
                       "'members')", section_names[kd->sec]);
    }
    assert(ps->member_count >= 1);

    if (ps->key_line[K_LOG_FORMAT]) {
        slice f = ps->text[K_LOG_FORMAT];
        if (!slice_eq(f, "text") && !slice_eq(f, "json")) {
            char q[64];
            return fail_at(ps, ps->key_line[K_LOG_FORMAT], MP_EINVAL,
                           "log_format '%s': use text or json", quote(q, sizeof q, f.p, f.n));
        }
    }

    /* TLS needs the three files: one alone would silently mean no TLS. */
    int tls_keys = !!ps->key_line[K_TLS_CERT] + !!ps->key_line[K_TLS_KEY] + !!ps->key_line[K_TLS_CA];
    if (tls_keys != 0 && tls_keys != 3)
        return fail_at(ps, ps->section_line[SEC_SECURITY], MP_EINVAL,
                       "tls_cert, tls_key and tls_ca go together (set all three for TLS, "
                       "or none)");

    if (ps->key_line[K_ADDRESS]) {
        slice a = ps->text[K_ADDRESS];
        bool found = false;
        for (size_t j = 0; j < ps->member_count && !found; j++)
            found = ps->members[j].s.n == a.n && memcmp(ps->members[j].s.p, a.p, a.n) == 0;
        if (!found) {
            char q[64];
            return fail_at(ps, ps->key_line[K_ADDRESS], MP_EINVAL,
                           "address '%s' is not one of the members", quote(q, sizeof q, a.p, a.n));
        }
    }

    const char *prov = storage_names[ps->storage];
    const char *how = ps->key_line[K_PROVIDER] ? "" : " (the default)";
    if (ps->storage != MP_CONFIG_STORAGE_SQLITE && ps->key_line[K_PATH])
        return fail_at(ps, ps->key_line[K_PATH], MP_EINVAL,
                       "'path' is only for provider sqlite (provider is %s)", prov);
    if (ps->storage != MP_CONFIG_STORAGE_POSTGRES && ps->key_line[K_CONNINFO])
        return fail_at(ps, ps->key_line[K_CONNINFO], MP_EINVAL,
                       "'conninfo' is only for provider postgres (provider is %s%s)", prov, how);
    if (ps->storage == MP_CONFIG_STORAGE_POSTGRES && !ps->key_line[K_CONNINFO])
        return fail_at(ps, ps->key_line[K_PROVIDER], MP_EINVAL,
                       "provider postgres needs 'conninfo' in [storage]");

    /* Keep-alives leave up to one heartbeat apart: a peer timeout of two or
     * less would close healthy idle connections. The error names the line
     * of whichever of the two keys the file sets (peer_timeout if both). */
    uint64_t hb = ps->num[K_HEARTBEAT], pt = ps->num[K_PEER_TIMEOUT];
    if (pt != 0 && pt <= 2 * hb) { /* hb <= 1h: no overflow */
        char vh[32], vp[32];
        format_value(vh, sizeof vh, V_DURATION, hb);
        format_value(vp, sizeof vp, V_DURATION, pt);
        int line = ps->key_line[K_PEER_TIMEOUT] ? ps->key_line[K_PEER_TIMEOUT]
                                                 : ps->key_line[K_HEARTBEAT];
        return fail_at(ps, line, MP_EINVAL,
                       "'peer_timeout' (%s%s) must be more than twice 'heartbeat' (%s%s), "
                       "or 0s to disable it", vp,
                       ps->key_line[K_PEER_TIMEOUT] ? "" : ", the default", vh,
                       ps->key_line[K_HEARTBEAT] ? "" : ", the default");
    }
    return validate_membership(ps);
}

/* ------------------------------------------------------------ arena */

typedef struct arena {
    char *base;
    size_t used, cap;
} arena;

static const char *arena_str(arena *a, const char *p, size_t n)
{
    assert(a->used + n + 1 <= a->cap);
    char *d = a->base + a->used;
    if (n) memcpy(d, p, n);
    d[n] = '\0';
    a->used += n + 1;
    return d;
}

static const char DEFAULT_DATA_DIR[] = ".";
static const char DEFAULT_DB_NAME[] = "state.db";

int mp_config_parse(const char *text, size_t len, const char *origin, mp_config *out,
                    mp_config_error *err)
{
    if (err) {
        err->line = 0;
        err->message[0] = '\0';
    }
    if (out) memset(out, 0, sizeof *out);
    if (!out || (!text && len))
        return fail_plain(err, origin, MP_EINVAL, "no config text or no output");
    if (len > MP_CONFIG_MAX_SIZE)
        return fail_plain(err, origin, MP_ETOOBIG, "config is larger than 1 MiB (%zu bytes)",
                          len);

    parser *ps = calloc(1, sizeof *ps);
    if (!ps) return fail_plain(err, origin, MP_ENOMEM, "out of memory");
    ps->origin = origin;
    ps->err = err;
    ps->section = -1;
    ps->log_level = MP_LOG_INFO;
    ps->storage = MP_CONFIG_STORAGE_SQLITE;
    ps->num[K_CALL] = MP_DEFAULT_CALL_TIMEOUT_NS;
    ps->num[K_IDLE] = MP_DEFAULT_IDLE_TIMEOUT_NS;
    ps->num[K_SHUTDOWN] = MP_DEFAULT_SHUTDOWN_TIMEOUT_NS;
    ps->num[K_HEARTBEAT] = MP_DEFAULT_HEARTBEAT_NS;
    ps->num[K_PEER_TIMEOUT] = MP_DEFAULT_PEER_TIMEOUT_NS;
    ps->num[K_FRAME_TIMEOUT] = MP_DEFAULT_FRAME_TIMEOUT_NS;
    ps->num[K_MAX_MESSAGE] = MP_DEFAULT_MAX_MESSAGE_BYTES;
    ps->num[K_MAX_PENDING] = MP_DEFAULT_MAX_PENDING_CALLS;
    ps->num[K_MAILBOX_WARN] = MP_DEFAULT_MAILBOX_WARN_DEPTH;
    ps->num[K_MAX_MAILBOX] = MP_DEFAULT_MAX_MAILBOX;
    ps->num[K_MAX_CONNECTIONS] = MP_DEFAULT_MAX_CONNECTIONS;
    ps->num[K_MAX_CONNECTIONS_PER_IP] = MP_DEFAULT_MAX_CONNECTIONS_PER_IP;

    int rc = MP_OK;
    size_t pos = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) pos = 3; /* UTF-8 BOM */
    while (pos < len && rc == MP_OK) {
        ps->line++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        slice raw = {text + pos, end - pos};
        if (raw.n && raw.p[raw.n - 1] == '\r') raw.n--; /* CRLF (also unterminated) */
        rc = parse_line(ps, raw);
        pos = nl ? end + 1 : len;
    }
    if (rc == MP_OK) rc = validate(ps);
    if (rc != MP_OK) {
        free(ps);
        return rc;
    }

    /* Size the arena exactly: pointer array first (malloc alignment), then
     * every string with its NUL. */
    size_t olen = strlen(origin ? origin : "<config>");
    slice data_dir = ps->key_line[K_DATA_DIR] ? ps->text[K_DATA_DIR]
                                              : (slice){DEFAULT_DATA_DIR, 1};
    bool default_path = ps->storage == MP_CONFIG_STORAGE_SQLITE && !ps->key_line[K_PATH];
    bool dir_slash = data_dir.p[data_dir.n - 1] == '/';
    size_t path_len = default_path ? data_dir.n + !dir_slash + strlen(DEFAULT_DB_NAME)
                                   : ps->text[K_PATH].n;
    size_t cap = ps->member_count * sizeof(char *) + olen + 1 + ps->text[K_NAMESPACE].n + 1 +
                 data_dir.n + 1 + path_len + 1 + ps->text[K_CONNINFO].n + 1 +
                 ps->text[K_SECRET_FILE].n + 1 + ps->text[K_TLS_CERT].n + 1 +
                 ps->text[K_TLS_KEY].n + 1 + ps->text[K_TLS_CA].n + 1 +
                 ps->text[K_METRICS_ADDRESS].n + 1;
    for (size_t i = 0; i < ps->member_count; i++) cap += ps->members[i].s.n + 1;
    arena a = {malloc(cap), 0, cap};
    if (!a.base) {
        free(ps);
        return fail_plain(err, origin, MP_ENOMEM, "out of memory");
    }
    const char **members = (const char **)(void *)a.base;
    a.used = ps->member_count * sizeof(char *);

    out->origin = arena_str(&a, origin ? origin : "<config>", olen);
    out->cluster_namespace = arena_str(&a, ps->text[K_NAMESPACE].p, ps->text[K_NAMESPACE].n);
    for (size_t i = 0; i < ps->member_count; i++) {
        members[i] = arena_str(&a, ps->members[i].s.p, ps->members[i].s.n);
        if (ps->key_line[K_ADDRESS] && slice_eq(ps->text[K_ADDRESS], members[i]))
            out->address = members[i];
    }
    out->members = members;
    out->member_count = ps->member_count;
    assert(!ps->key_line[K_ADDRESS] || out->address);
    out->data_dir = arena_str(&a, data_dir.p, data_dir.n);
    out->log_level = ps->log_level;
    out->storage = ps->storage;
    if (default_path) {
        /* data_dir + "/" (unless it ends in one) + "state.db", built from
         * the source slice: no copy overlaps its destination. */
        assert(a.used + path_len + 1 <= a.cap);
        char *p = a.base + a.used;
        memcpy(p, data_dir.p, data_dir.n);
        size_t n = data_dir.n;
        if (!dir_slash) p[n++] = '/';
        memcpy(p + n, DEFAULT_DB_NAME, sizeof DEFAULT_DB_NAME); /* with its NUL */
        assert(n + strlen(DEFAULT_DB_NAME) == path_len);
        a.used += path_len + 1;
        out->storage_path = p;
    } else if (ps->key_line[K_PATH]) {
        out->storage_path = arena_str(&a, ps->text[K_PATH].p, ps->text[K_PATH].n);
    }
    if (ps->key_line[K_CONNINFO])
        out->storage_conninfo = arena_str(&a, ps->text[K_CONNINFO].p, ps->text[K_CONNINFO].n);
    if (ps->key_line[K_SECRET_FILE])
        out->secret_file = arena_str(&a, ps->text[K_SECRET_FILE].p, ps->text[K_SECRET_FILE].n);
    if (ps->key_line[K_METRICS_ADDRESS])
        out->metrics_address =
            arena_str(&a, ps->text[K_METRICS_ADDRESS].p, ps->text[K_METRICS_ADDRESS].n);
    out->log_json = ps->key_line[K_LOG_FORMAT] && slice_eq(ps->text[K_LOG_FORMAT], "json");
    if (ps->key_line[K_TLS_CERT]) {
        out->tls_cert = arena_str(&a, ps->text[K_TLS_CERT].p, ps->text[K_TLS_CERT].n);
        out->tls_key = arena_str(&a, ps->text[K_TLS_KEY].p, ps->text[K_TLS_KEY].n);
        out->tls_ca = arena_str(&a, ps->text[K_TLS_CA].p, ps->text[K_TLS_CA].n);
    }
    assert(a.used <= a.cap);
    out->call_timeout_ns = ps->num[K_CALL];
    out->idle_timeout_ns = ps->num[K_IDLE];
    out->shutdown_timeout_ns = ps->num[K_SHUTDOWN];
    out->heartbeat_ns = ps->num[K_HEARTBEAT];
    out->peer_timeout_ns = ps->num[K_PEER_TIMEOUT];
    out->frame_timeout_ns = ps->num[K_FRAME_TIMEOUT];
    out->max_message = ps->num[K_MAX_MESSAGE];
    out->max_pending_calls = ps->num[K_MAX_PENDING];
    out->mailbox_warn_depth = ps->num[K_MAILBOX_WARN];
    out->max_mailbox = ps->num[K_MAX_MAILBOX];
    out->max_connections = ps->num[K_MAX_CONNECTIONS];
    out->max_connections_per_ip = ps->num[K_MAX_CONNECTIONS_PER_IP];
    out->membership_table = ps->membership_table;
    out->lease_ns = ps->num[K_LEASE];
    out->lease_margin_ns = ps->num[K_MARGIN];
    out->membership_poll_ns = ps->num[K_POLL];
    out->membership_votes = ps->num[K_VOTES];
    out->arena_ = a.base;
    free(ps);
    return MP_OK;
}

void mp_config_free(mp_config *c)
{
    if (!c) return;
    free(c->arena_);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------ overrides */

int mp_config_set_address(mp_config *c, const char *addr, mp_config_error *err)
{
    if (err) {
        err->line = 0;
        err->message[0] = '\0';
    }
    if (!c || !c->arena_ || !addr)
        return fail_plain(err, c ? c->origin : NULL, MP_EINVAL, "no config or no address");
    for (size_t i = 0; i < c->member_count; i++) {
        if (strcmp(c->members[i], addr) == 0) {
            c->address = c->members[i];
            return MP_OK;
        }
    }
    char q[64];
    return fail_plain(err, c->origin, MP_EINVAL, "address '%s' is not one of the %zu members",
                      quote(q, sizeof q, addr, strlen(addr)), c->member_count);
}

int mp_config_select_member(mp_config *c, size_t id, mp_config_error *err)
{
    if (err) {
        err->line = 0;
        err->message[0] = '\0';
    }
    if (!c || !c->arena_) return fail_plain(err, NULL, MP_EINVAL, "no config");
    if (id < 1 || id > c->member_count)
        return fail_plain(err, c->origin, MP_EINVAL, "member id %zu out of range 1..%zu", id,
                          c->member_count);
    c->address = c->members[id - 1];
    return MP_OK;
}

int mp_config_to_node_config(const mp_config *c, mp_node_config *out)
{
    if (!c || !out || !c->arena_ || !c->address) return MP_EINVAL;
    /* Ranges were enforced by the parser; these are the runtime's types. */
    assert(c->max_message <= UINT32_MAX && c->max_pending_calls <= UINT32_MAX);
    assert(c->mailbox_warn_depth <= SIZE_MAX && c->max_mailbox <= UINT32_MAX);
    mp_node_config_init(out);
    out->cluster_namespace = c->cluster_namespace;
    out->self_addr = c->address;
    out->members = c->members;
    out->member_count = c->member_count;
    out->call_timeout_ns = c->call_timeout_ns;
    out->idle_timeout_ns = c->idle_timeout_ns;
    out->heartbeat_ns = c->heartbeat_ns;
    out->peer_timeout_ns = c->peer_timeout_ns ? c->peer_timeout_ns : MP_NODE_NO_PEER_TIMEOUT;
    out->frame_timeout_ns = c->frame_timeout_ns;
    out->max_message = (uint32_t)c->max_message;
    out->max_pending_calls = (uint32_t)c->max_pending_calls;
    out->mailbox_warn_depth = (size_t)c->mailbox_warn_depth;
    out->max_mailbox = (uint32_t)c->max_mailbox;
    out->membership = c->membership_table;
    out->lease_ns = c->lease_ns;
    out->lease_margin_ns = c->lease_margin_ns;
    out->membership_poll_ns = c->membership_poll_ns;
    assert(c->membership_votes <= UINT32_MAX);
    out->membership_votes = (uint32_t)c->membership_votes;
    return MP_OK;
}

/* ------------------------------------------------------------ format */

typedef struct outbuf {
    char *buf;
    size_t cap, len; /* len counts every byte, also those past cap */
} outbuf;

__attribute__((format(printf, 2, 3)))
static void put(outbuf *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char dummy[1];
    char *dst = o->len < o->cap ? o->buf + o->len : dummy;
    size_t room = o->len < o->cap ? o->cap - o->len : sizeof dummy;
    int n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    assert(n >= 0);
    o->len += (size_t)n;
}

int mp_config_format(const mp_config *c, char *buf, size_t cap)
{
    if (!c || !c->arena_ || (!buf && cap)) return MP_EINVAL;
    outbuf o = {buf, cap, 0};
    char v[32];
    put(&o, "[cluster]\nnamespace = %s\nmembers =", c->cluster_namespace);
    size_t col = strlen("members =");
    for (size_t i = 0; i < c->member_count; i++) {
        size_t need = strlen(c->members[i]) + 2;
        if (i > 0 && col + need > FORMAT_WRAP) {
            put(&o, ",\n   ");
            col = 3;
        } else if (i > 0) {
            put(&o, ",");
            col++;
        }
        put(&o, " %s", c->members[i]);
        col += need - 1;
    }
    put(&o, "\n\n[node]\n");
    if (c->address) put(&o, "address = %s\n", c->address);
    put(&o, "data_dir = %s\nlog_level = %s\n", c->data_dir, mp_config_log_level_name(c->log_level));
    if (c->metrics_address) put(&o, "metrics_address = %s\n", c->metrics_address);
    if (c->log_json) put(&o, "log_format = json\n");
    put(&o, "\n[storage]\nprovider = %s\n", mp_config_storage_name(c->storage));
    if (c->storage_path) put(&o, "path = %s\n", c->storage_path);
    if (c->storage_conninfo) put(&o, "conninfo = %s\n", c->storage_conninfo);
    put(&o, "\n[timeouts]\n");
    format_value(v, sizeof v, V_DURATION, c->call_timeout_ns);
    put(&o, "call = %s\n", v);
    format_value(v, sizeof v, V_DURATION, c->idle_timeout_ns);
    put(&o, "idle = %s\n", v);
    format_value(v, sizeof v, V_DURATION, c->shutdown_timeout_ns);
    put(&o, "shutdown = %s\n", v);
    format_value(v, sizeof v, V_DURATION, c->heartbeat_ns);
    put(&o, "heartbeat = %s\n", v);
    format_value(v, sizeof v, V_DURATION, c->peer_timeout_ns);
    put(&o, "peer_timeout = %s\n", v);
    format_value(v, sizeof v, V_DURATION, c->frame_timeout_ns);
    put(&o, "frame = %s\n", v);
    format_value(v, sizeof v, V_SIZE, c->max_message);
    put(&o, "\n[limits]\nmax_message = %s\n", v);
    put(&o, "max_pending_calls = %llu\nmailbox_warn_depth = %llu\nmax_mailbox = %llu\n",
        (unsigned long long)c->max_pending_calls, (unsigned long long)c->mailbox_warn_depth,
        (unsigned long long)c->max_mailbox);
    put(&o, "max_connections = %llu\nmax_connections_per_ip = %llu\n",
        (unsigned long long)c->max_connections, (unsigned long long)c->max_connections_per_ip);
    if (c->secret_file || c->tls_cert) put(&o, "\n[security]\n");
    if (c->secret_file) put(&o, "secret_file = %s\n", c->secret_file);
    if (c->tls_cert)
        put(&o, "tls_cert = %s\ntls_key = %s\ntls_ca = %s\n", c->tls_cert, c->tls_key, c->tls_ca);
    /* The lease keys only when set: unset, the node derives them from
     * peer_timeout (so a formatted file keeps following it). */
    put(&o, "\n[membership]\nmode = %s\n", c->membership_table ? "table" : "static");
    if (c->lease_ns) {
        format_value(v, sizeof v, V_DURATION, c->lease_ns);
        put(&o, "lease = %s\n", v);
    }
    if (c->lease_margin_ns) {
        format_value(v, sizeof v, V_DURATION, c->lease_margin_ns);
        put(&o, "margin = %s\n", v);
    }
    if (c->membership_poll_ns) {
        format_value(v, sizeof v, V_DURATION, c->membership_poll_ns);
        put(&o, "poll = %s\n", v);
    }
    if (c->membership_votes) put(&o, "votes = %llu\n", (unsigned long long)c->membership_votes);
    if (o.len > (size_t)INT32_MAX) return MP_ETOOBIG; /* cannot happen: bounded fields */
    return (int)o.len;
}

static bool str_eq(const char *a, const char *b)
{
    if (!a || !b) return a == b;
    return strcmp(a, b) == 0;
}

bool mp_config_equal(const mp_config *a, const mp_config *b)
{
    if (!a || !b) return a == b;
    if (a->member_count != b->member_count) return false;
    for (size_t i = 0; i < a->member_count; i++)
        if (!str_eq(a->members[i], b->members[i])) return false;
    return str_eq(a->cluster_namespace, b->cluster_namespace) &&
           str_eq(a->address, b->address) && str_eq(a->data_dir, b->data_dir) &&
           str_eq(a->metrics_address, b->metrics_address) && a->log_json == b->log_json &&
           a->log_level == b->log_level && a->storage == b->storage &&
           str_eq(a->storage_path, b->storage_path) &&
           str_eq(a->storage_conninfo, b->storage_conninfo) &&
           a->call_timeout_ns == b->call_timeout_ns &&
           a->idle_timeout_ns == b->idle_timeout_ns &&
           a->shutdown_timeout_ns == b->shutdown_timeout_ns &&
           a->heartbeat_ns == b->heartbeat_ns && a->peer_timeout_ns == b->peer_timeout_ns &&
           a->frame_timeout_ns == b->frame_timeout_ns && a->max_mailbox == b->max_mailbox &&
           a->max_message == b->max_message && a->max_pending_calls == b->max_pending_calls &&
           a->mailbox_warn_depth == b->mailbox_warn_depth &&
           a->max_connections == b->max_connections &&
           a->max_connections_per_ip == b->max_connections_per_ip &&
           str_eq(a->secret_file, b->secret_file) && str_eq(a->tls_cert, b->tls_cert) &&
           str_eq(a->tls_key, b->tls_key) && str_eq(a->tls_ca, b->tls_ca) &&
           a->membership_table == b->membership_table && a->lease_ns == b->lease_ns &&
           a->lease_margin_ns == b->lease_margin_ns &&
           a->membership_poll_ns == b->membership_poll_ns &&
           a->membership_votes == b->membership_votes;
}
