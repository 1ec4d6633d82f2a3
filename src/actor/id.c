/*
 * Actor ids and references.
 *
 * An id is kept in its text form "namespace::type/key" only, with offsets to
 * its parts: the text form is what travels on the wire, what the directory
 * hashes and what keys the catalog, so building it once when the reference is
 * made means routing never formats anything again (S1: getting a reference is
 * local and instant).
 *
 * Why these character rules: namespace and type are identifiers chosen by
 * programmers ([A-Za-z0-9_.-]), so the separators "::" and "/" can never
 * appear in them and parsing is unambiguous: the namespace ends at the first
 * "::", the type at the first "/" after it, and the key is everything after
 * (it may itself contain '/' or ':'). Keys come from users (account names,
 * e-mail addresses), so they are wider: any byte except control characters
 * (< 0x20 and 0x7f), which keeps ids printable in logs. Callers escape
 * anything else.
 *
 * Every id that arrives from the network goes through mp_ref_parse, so the
 * same rules protect the catalog and the directory from hostile bytes.
 *
 * The hash is mp_hash64 with the default seed: it decides directory owners on
 * every node, so it must be the same function of the bytes everywhere.
 */
#include <string.h>

#include "moonpool/actor.h"
#include "moonpool/node.h"
#include "util/hash.h"

/* Character classes by table: building a reference validates every byte of
 * the id, and the branchy range tests were ~30% of mp_ref_init, which runs
 * once per call a program makes with a fresh reference. */
#define IDENT 1 /* [A-Za-z0-9_.-] */
#define KEY 2   /* >= 0x20 and != 0x7f */
#define R10(x) x, x, x, x, x, x, x, x, x, x
static const unsigned char char_class[256] = {
    /* 0x00..0x1f: control */
    R10(0), R10(0), R10(0), 0, 0,
    /* 0x20 ' ' .. 0x2c ',' */
    KEY, KEY, KEY, KEY, KEY, KEY, KEY, KEY, KEY, KEY, KEY, KEY, KEY,
    /* 0x2d '-', 0x2e '.' */
    KEY | IDENT, KEY | IDENT,
    /* 0x2f '/' */
    KEY,
    /* 0x30..0x39 '0'..'9' */
    R10(KEY | IDENT),
    /* 0x3a ':' .. 0x40 '@' */
    KEY, KEY, KEY, KEY, KEY, KEY, KEY,
    /* 0x41..0x5a 'A'..'Z' */
    R10(KEY | IDENT), R10(KEY | IDENT), KEY | IDENT, KEY | IDENT, KEY | IDENT,
    KEY | IDENT, KEY | IDENT, KEY | IDENT,
    /* 0x5b '[' .. 0x5e '^' */
    KEY, KEY, KEY, KEY,
    /* 0x5f '_' */
    KEY | IDENT,
    /* 0x60 '`' */
    KEY,
    /* 0x61..0x7a 'a'..'z' */
    R10(KEY | IDENT), R10(KEY | IDENT), KEY | IDENT, KEY | IDENT, KEY | IDENT,
    KEY | IDENT, KEY | IDENT, KEY | IDENT,
    /* 0x7b '{' .. 0x7e '~' */
    KEY, KEY, KEY, KEY,
    /* 0x7f DEL */
    0,
    /* 0x80..0xff */
    R10(KEY), R10(KEY), R10(KEY), R10(KEY), R10(KEY), R10(KEY), R10(KEY),
    R10(KEY), R10(KEY), R10(KEY), R10(KEY), R10(KEY), KEY, KEY, KEY, KEY, KEY,
    KEY, KEY, KEY};
#undef R10

static bool valid_ident(const char *s, size_t n)
{
    if (n == 0 || n > MP_ACTOR_PART_MAX) return false;
    unsigned char all = IDENT;
    for (size_t i = 0; i < n; i++) all &= char_class[(unsigned char)s[i]];
    return all != 0;
}

static bool valid_key(const char *s, size_t n)
{
    if (n == 0) return false;
    unsigned char all = KEY;
    for (size_t i = 0; i < n; i++) all &= char_class[(unsigned char)s[i]];
    return all != 0;
}

/* Assemble the reference from validated parts. */
static int build(mp_ref *ref, const char *ns, size_t ns_len, const char *type,
                 size_t type_len, const char *key, size_t key_len)
{
    if (!valid_ident(ns, ns_len) || !valid_ident(type, type_len) ||
        !valid_key(key, key_len))
        return MP_EINVAL;
    size_t total = ns_len + 2 + type_len + 1 + key_len;
    if (total > MP_ACTOR_ID_MAX) return MP_EINVAL;
    char *p = ref->id;
    memcpy(p, ns, ns_len);
    p += ns_len;
    *p++ = ':';
    *p++ = ':';
    memcpy(p, type, type_len);
    p += type_len;
    *p++ = '/';
    memcpy(p, key, key_len);
    p += key_len;
    *p = '\0';
    ref->len = (uint16_t)total;
    ref->type_off = (uint16_t)(ns_len + 2);
    ref->type_len = (uint16_t)type_len;
    ref->key_off = (uint16_t)(ns_len + 2 + type_len + 1);
    ref->key_len = (uint16_t)key_len;
    ref->hash = mp_hash64(ref->id, total, MP_HASH_SEED_DEFAULT);
    return MP_OK;
}

int mp_ref_init(mp_ref *ref, const char *ns, const char *type, const char *key)
{
    if (!ref || !ns || !type || !key) return MP_EINVAL;
    /* strnlen bounds the scan: a missing NUL in a hostile buffer cannot walk
     * past what an id could hold. */
    size_t a = strnlen(ns, MP_ACTOR_ID_MAX + 1);
    size_t b = strnlen(type, MP_ACTOR_ID_MAX + 1);
    size_t c = strnlen(key, MP_ACTOR_ID_MAX + 1);
    return build(ref, ns, a, type, b, key, c);
}

int mp_ref_parse(mp_ref *ref, const char *text, size_t len)
{
    if (!ref || (!text && len)) return MP_EINVAL;
    if (len == 0 || len > MP_ACTOR_ID_MAX) return MP_EINVAL;
    const char *sep = NULL;
    for (size_t i = 0; i + 1 < len; i++) {
        if (text[i] == ':' && text[i + 1] == ':') {
            sep = text + i;
            break;
        }
    }
    if (!sep) return MP_EINVAL;
    size_t ns_len = (size_t)(sep - text);
    const char *type = sep + 2;
    const char *end = text + len;
    const char *slash = memchr(type, '/', (size_t)(end - type));
    if (!slash) return MP_EINVAL;
    size_t type_len = (size_t)(slash - type);
    const char *key = slash + 1;
    size_t key_len = (size_t)(end - key);
    return build(ref, text, ns_len, type, type_len, key, key_len);
}

int mp_ref_get(mp_node *node, const char *type, const char *key, mp_ref *ref)
{
    if (!node) return MP_EINVAL;
    return mp_ref_init(ref, mp_node_namespace(node), type, key);
}

const char *mp_deactivate_reason_name(mp_deactivate_reason r)
{
    switch (r) {
    case MP_DEACTIVATE_IDLE: return "idle";
    case MP_DEACTIVATE_SHUTDOWN: return "shutdown";
    case MP_DEACTIVATE_EXPLICIT: return "explicit";
    case MP_DEACTIVATE_ACTIVATION_FAILED: return "activation_failed";
    case MP_DEACTIVATE_LOST_RACE: return "lost_race";
    case MP_DEACTIVATE_DIRECTORY: return "directory";
    case MP_DEACTIVATE_LEASE: return "lease";
    }
    return "unknown";
}
