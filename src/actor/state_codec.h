/*
 * Codec calls for persisted state, behind plain types (private).
 *
 * Why a separate file: the runtime's wire header (src/wire/frame.h) and the
 * public codec header both define an `mp_bytes`, so no file can include
 * both; state.c needs the node internals (which include the wire header),
 * so the codec side lives here, in a file that includes only codec.h.
 */
#ifndef MP_ACTOR_STATE_CODEC_H
#define MP_ACTOR_STATE_CODEC_H

#include <stddef.h>

struct mp_state_type;

#define MP_STATE_ERR_MAX 192

/* The codec of a state type (its own or the JSON default). */
const void *mp_state_codec_of(const struct mp_state_type *st);
/* value -> malloc'd bytes (*data, *len). Error text into err. */
int mp_state_codec_encode(const void *codec, const void *value, void **data,
                          size_t *len, char *err, size_t errcap);
/* bytes -> new value. Error text into err. */
int mp_state_codec_decode(const void *codec, const void *data, size_t len,
                          void **value, char *err, size_t errcap);
void mp_state_codec_free(const void *codec, void *value);

#endif
