/*
 * Codecs: values <-> bytes, for actor messages and persisted state.
 *
 * The runtime treats payloads as opaque bytes (actor.h). A codec is the
 * plug-in point that turns a program's values into those bytes and
 * back, so an actor type can speak JSON today and something denser later
 * without the runtime knowing. It is a small vtable rather than a fixed
 * function set because a codec may carry settings (limits) and because the
 * value type is the codec's business: for the JSON codec a value is a
 * jansson `json_t *`.
 *
 * Decoding is the trust boundary: the bytes come from the network or from
 * storage. A codec validates strictly (well-formed, within its size and
 * depth limits) and reports a clear error through the status and an
 * optional message buffer; it never aborts on bad input.
 *
 * Encoding writes into a caller buffer when the result fits (the common
 * case for small messages, with no allocation at all), otherwise into a heap
 * block the result owns; mp_bytes_release frees it in both cases, so callers
 * have one cleanup path whatever happened.
 *
 * Thread: a codec object is immutable after init and may be shared by any
 * number of threads; values and mp_bytes belong to their caller.
 */
#ifndef MOONPOOL_CODEC_H
#define MOONPOOL_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Encoded bytes. `data` points either into the caller's buffer given to
 * encode (owned == NULL) or at a heap block (owned == data) that
 * mp_bytes_release frees. */
typedef struct mp_bytes {
    const void *data;
    size_t len;
    void *owned;
} mp_bytes;

/* Free what an mp_bytes owns and reset it to empty. Safe on an empty or
 * zeroed mp_bytes and when called twice. */
void mp_bytes_release(mp_bytes *b);

/* Room for a codec's error message (jansson's messages fit). */
#define MP_CODEC_ERR_MAX 192

typedef struct mp_codec_error {
    char text[MP_CODEC_ERR_MAX]; /* NUL-terminated; "" when no error */
} mp_codec_error;

typedef struct mp_codec mp_codec;

struct mp_codec {
    const char *name; /* "json", ... */
    /* value -> bytes. `buf`/`cap` is a caller buffer (may be NULL/0). On
     * success *out holds the bytes (release them with mp_bytes_release). On
     * error *out is empty and err (may be NULL) says why. */
    int (*encode)(const mp_codec *codec, const void *value, void *buf,
                  size_t cap, mp_bytes *out, mp_codec_error *err);
    /* bytes -> value. On success *value is a new value the caller owns
     * (free it with free_value). On error *value is NULL. `data` is only
     * read during the call. */
    int (*decode)(const mp_codec *codec, const void *data, size_t len,
                  void **value, mp_codec_error *err);
    /* Release a value returned by decode (NULL is ignored). */
    void (*free_value)(const mp_codec *codec, void *value);
    /* The codec's own settings; opaque to callers. */
    const void *config;
};

static inline int mp_codec_encode(const mp_codec *c, const void *value,
                                  void *buf, size_t cap, mp_bytes *out,
                                  mp_codec_error *err)
{
    return c->encode(c, value, buf, cap, out, err);
}

static inline int mp_codec_decode(const mp_codec *c, const void *data,
                                  size_t len, void **value,
                                  mp_codec_error *err)
{
    return c->decode(c, data, len, value, err);
}

static inline void mp_codec_free_value(const mp_codec *c, void *value)
{
    c->free_value(c, value);
}

/* ---- JSON (jansson) ------------------------------------------------------ */

/* Values are `json_t *` (jansson). decode returns a new reference
 * (json_decref it, or use free_value); encode borrows the value.
 *
 * Decoding is strict: the whole input must be exactly one JSON text (no
 * trailing bytes), valid UTF-8, no duplicate object keys, no "\u0000" in
 * strings, within max_bytes and max_depth. Errors:
 *   MP_EINVAL  malformed, duplicate key, too deep, NULL value, bad top level;
 *   MP_ETOOBIG input (decode) or output (encode) longer than max_bytes;
 *   MP_ENOMEM  allocation failed. */

#define MP_JSON_DEFAULT_MAX_BYTES (1u << 20) /* the default message cap */
#define MP_JSON_DEFAULT_MAX_DEPTH 32

typedef struct mp_json_limits {
    size_t max_bytes;   /* 0: MP_JSON_DEFAULT_MAX_BYTES */
    int max_depth;      /* nesting of arrays/objects; <= 0: the default; a
                           scalar has depth 0, {} and [] depth 1 */
    bool any_top_level; /* false: the top level must be an object or array */
} mp_json_limits;

/* A JSON codec with its own limits. Do not copy or move it after init: the
 * codec points at its limits. */
typedef struct mp_json_custom {
    mp_codec codec;
    mp_json_limits limits;
} mp_json_custom;

/* Initialise with limits (NULL: all defaults). Values above the defaults
 * are allowed; max_depth is capped at 1024 (jansson's parser stops at
 * 2048). */
void mp_json_custom_init(mp_json_custom *jc, const mp_json_limits *limits);

/* A shared JSON codec with the default limits (objects or arrays only). */
const mp_codec *mp_json_codec(void);

#ifdef __cplusplus
}
#endif
#endif
