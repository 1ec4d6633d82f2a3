/*
 * The JSON codec (codec.h) over jansson.
 *
 * Why jansson: it is small, strict by default (rejects invalid UTF-8, NUL in
 * strings unless asked, integers that overflow json_int_t) and has a
 * length-taking loader, so network bytes never need a NUL terminator or a
 * copy. What it lacks we add here:
 *
 *  - a depth limit below its compile-time 2048: the input is pre-scanned for
 *    bracket nesting before parsing, so a hostile "[[[[..." is rejected in
 *    one linear pass without building (or recursing into) a tree;
 *  - a byte limit on both directions, so a codec user cannot produce a
 *    message the node would refuse anyway, and a decoder never parses more
 *    than the configured cap;
 *  - duplicate keys are rejected (JSON_REJECT_DUPLICATES): with duplicates
 *    "last wins" in one parser and "first wins" in another, which is how two
 *    components come to disagree about one message.
 *
 * Encoding is compact (no spaces) and deterministic: jansson keeps object
 * keys in insertion order, so the same value built the same way gives the
 * same bytes on every run, which the simulator's trace hash relies on.
 * (jansson seeds its internal hash tables from the OS on first use; that
 * seed only affects bucket placement, never iteration or output order.)
 *
 * Encode first tries the caller's buffer: json_dumpb reports the size it
 * needs, so a too-small buffer costs one extra dump into an exact-size heap
 * block, never a guess-and-grow loop.
 */
#include "moonpool/codec.h"

#include <assert.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_DEPTH_CAP 1024

void mp_bytes_release(mp_bytes *b)
{
    if (!b) return;
    free(b->owned);
    b->data = NULL;
    b->len = 0;
    b->owned = NULL;
}

static void set_err(mp_codec_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_err(mp_codec_error *err, const char *fmt, ...)
{
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
}

static void clear_err(mp_codec_error *err)
{
    if (err) err->text[0] = '\0';
}

static const mp_json_limits *limits_of(const mp_codec *codec)
{
    const mp_json_limits *l = codec->config;
    assert(l && l->max_bytes > 0 && l->max_depth > 0);
    return l;
}

/* ---- depth checks ---------------------------------------------------------- */

/* Nesting depth of the raw text, stopping as soon as it passes max. Strings
 * are skipped (with their escapes) so brackets inside them do not count.
 * Returns the byte offset where the limit was passed, or SIZE_MAX if the
 * text stays within it. Malformed text is the parser's job: the scan only
 * has to be right for well-formed input and never read out of bounds. */
static size_t scan_depth(const char *s, size_t len, int max)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++; /* skip the escaped byte; \uXXXX digits are harmless */
            else if (c == '"')
                in_str = false;
            continue;
        }
        switch (c) {
        case '"': in_str = true; break;
        case '[':
        case '{':
            if (++depth > max) return i;
            break;
        case ']':
        case '}':
            if (depth > 0) depth--;
            break;
        default: break;
        }
    }
    return SIZE_MAX;
}

/* Whether a value nests deeper than `left` more levels. Recursion is bounded
 * by max_depth + 1 frames (<= JSON_DEPTH_CAP). */
static bool too_deep(const json_t *v, int left)
{
    if (!json_is_object(v) && !json_is_array(v)) return false;
    if (left == 0) return true;
    if (json_is_array(v)) {
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e)
        {
            if (too_deep(e, left - 1)) return true;
        }
        return false;
    }
    const char *k;
    const json_t *e;
    /* json_object_foreach wants a non-const object; it does not modify it. */
    json_t *obj = (json_t *)v;
    json_object_foreach(obj, k, e)
    {
        if (too_deep(e, left - 1)) return true;
    }
    return false;
}

/* ---- vtable ---------------------------------------------------------------- */

static int json_encode(const mp_codec *codec, const void *value, void *buf,
                       size_t cap, mp_bytes *out, mp_codec_error *err)
{
    const mp_json_limits *l = limits_of(codec);
    if (!out) return MP_EINVAL;
    memset(out, 0, sizeof *out);
    clear_err(err);
    const json_t *v = value;
    if (!v) {
        set_err(err, "json: no value to encode");
        return MP_EINVAL;
    }
    if (!l->any_top_level && !json_is_object(v) && !json_is_array(v)) {
        set_err(err, "json: top level must be an object or an array");
        return MP_EINVAL;
    }
    if (too_deep(v, l->max_depth)) {
        set_err(err, "json: value nests deeper than %d", l->max_depth);
        return MP_EINVAL;
    }
    size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    if (!buf) cap = 0;
    size_t need = json_dumpb(v, cap ? buf : NULL, cap, flags);
    if (need == 0) {
        /* jansson fails on a value it cannot represent (a cycle) or when out
         * of memory; it does not say which. */
        set_err(err, "json: value cannot be encoded");
        return MP_EINVAL;
    }
    if (need > l->max_bytes) {
        set_err(err, "json: encoded size %zu exceeds the limit of %zu bytes",
                need, l->max_bytes);
        return MP_ETOOBIG;
    }
    if (need <= cap) {
        out->data = buf;
        out->len = need;
        return MP_OK;
    }
    char *heap = malloc(need);
    if (!heap) {
        set_err(err, "json: out of memory (%zu bytes)", need);
        return MP_ENOMEM;
    }
    size_t got = json_dumpb(v, heap, need, flags);
    if (got != need) { /* the value cannot change between the two dumps */
        free(heap);
        set_err(err, "json: value cannot be encoded");
        return MP_EINVAL;
    }
    out->data = heap;
    out->len = need;
    out->owned = heap;
    return MP_OK;
}

static int json_decode(const mp_codec *codec, const void *data, size_t len,
                       void **value, mp_codec_error *err)
{
    const mp_json_limits *l = limits_of(codec);
    if (!value) return MP_EINVAL;
    *value = NULL;
    clear_err(err);
    if (!data || len == 0) {
        set_err(err, "json: empty input");
        return MP_EINVAL;
    }
    if (len > l->max_bytes) {
        set_err(err, "json: input of %zu bytes exceeds the limit of %zu bytes",
                len, l->max_bytes);
        return MP_ETOOBIG;
    }
    size_t at = scan_depth(data, len, l->max_depth);
    if (at != SIZE_MAX) {
        set_err(err, "json: nesting deeper than %d at byte %zu", l->max_depth,
                at);
        return MP_EINVAL;
    }
    size_t flags = JSON_REJECT_DUPLICATES;
    if (l->any_top_level) flags |= JSON_DECODE_ANY;
    json_error_t je;
    json_t *v = json_loadb(data, len, flags, &je);
    if (!v) {
        if (json_error_code(&je) == json_error_out_of_memory) {
            set_err(err, "json: out of memory");
            return MP_ENOMEM;
        }
        set_err(err, "json: %s (line %d, column %d, byte %d)", je.text,
                je.line, je.column, je.position);
        return MP_EINVAL;
    }
    *value = v;
    return MP_OK;
}

static void json_free_value(const mp_codec *codec, void *value)
{
    json_decref((json_t *)value);
}

/* ---- construction ---------------------------------------------------------- */

void mp_json_custom_init(mp_json_custom *jc, const mp_json_limits *limits)
{
    assert(jc);
    memset(jc, 0, sizeof *jc);
    if (limits) jc->limits = *limits;
    if (jc->limits.max_bytes == 0) jc->limits.max_bytes = MP_JSON_DEFAULT_MAX_BYTES;
    if (jc->limits.max_depth <= 0) jc->limits.max_depth = MP_JSON_DEFAULT_MAX_DEPTH;
    if (jc->limits.max_depth > JSON_DEPTH_CAP) jc->limits.max_depth = JSON_DEPTH_CAP;
    jc->codec.name = "json";
    jc->codec.encode = json_encode;
    jc->codec.decode = json_decode;
    jc->codec.free_value = json_free_value;
    jc->codec.config = &jc->limits;
}

static const mp_json_limits default_limits = {
    .max_bytes = MP_JSON_DEFAULT_MAX_BYTES,
    .max_depth = MP_JSON_DEFAULT_MAX_DEPTH,
    .any_top_level = false,
};

static const mp_codec default_codec = {
    .name = "json",
    .encode = json_encode,
    .decode = json_decode,
    .free_value = json_free_value,
    .config = &default_limits,
};

const mp_codec *mp_json_codec(void) { return &default_codec; }
