/*
 * Codec calls for persisted state (see state_codec.h for why this file is
 * separate). Encoding always produces a heap block the caller owns, since a
 * save copies its data anyway and the block outlives the call only until
 * the storage provider took its copy.
 */
#include "actor/state_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/codec.h"
#include "moonpool/state.h"

const void *mp_state_codec_of(const struct mp_state_type *st)
{
    return st && st->codec ? (const void *)st->codec : (const void *)mp_json_codec();
}

int mp_state_codec_encode(const void *codec, const void *value, void **data,
                          size_t *len, char *err, size_t errcap)
{
    const mp_codec *c = codec;
    mp_bytes b = {0};
    mp_codec_error e;
    e.text[0] = '\0';
    *data = NULL;
    *len = 0;
    int rc = mp_codec_encode(c, value, NULL, 0, &b, &e);
    if (rc < 0) {
        snprintf(err, errcap, "%s", e.text);
        return rc;
    }
    if (b.owned && b.owned == b.data) { /* the codec's heap block: keep it */
        *data = b.owned;
        *len = b.len;
        return MP_OK;
    }
    void *p = malloc(b.len ? b.len : 1);
    if (!p) {
        mp_bytes_release(&b);
        snprintf(err, errcap, "out of memory");
        return MP_ENOMEM;
    }
    if (b.len) memcpy(p, b.data, b.len);
    *data = p;
    *len = b.len;
    mp_bytes_release(&b);
    return MP_OK;
}

int mp_state_codec_decode(const void *codec, const void *data, size_t len,
                          void **value, char *err, size_t errcap)
{
    const mp_codec *c = codec;
    mp_codec_error e;
    e.text[0] = '\0';
    int rc = mp_codec_decode(c, data, len, value, &e);
    if (rc < 0) snprintf(err, errcap, "%s", e.text);
    return rc;
}

void mp_state_codec_free(const void *codec, void *value)
{
    const mp_codec *c = codec;
    if (value) mp_codec_free_value(c, value);
}
