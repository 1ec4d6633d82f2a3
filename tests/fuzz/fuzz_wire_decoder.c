/*
 * libFuzzer target for the streaming frame decoder (src/wire/frame.c).
 *
 * Input: byte 0 = options, byte 1 = seed of the chunking, then the byte
 * stream a peer would send. Options:
 *   bit 0: max_frame 512 instead of the default, so the oversize path is
 *          reachable with small inputs;
 *   bit 1: "seal" the stream first: walk it frame by frame by the announced
 *          lengths and write the correct CRC32C at the end of each frame.
 *          Without this nearly every mutation dies at the checksum and the
 *          fuzzer never explores the parsing of the variable fields behind
 *          it, which is exactly where a crafted (validly sealed) frame from a
 *          buggy or hostile peer would attack.
 *
 * It is a differential test, not just a crash test: the stream is decoded
 * twice, by the streaming decoder fed in chunks derived from the seed (each
 * chunk in its own exact-size heap block, freed after draining, so ASan sees
 * any read past or after the input), and by repeated one-shot
 * mp_frame_decode over the contiguous bytes. Both must yield the same frames
 * and end in the same status. Each decoded frame is re-encoded: since every
 * byte of a valid frame is determined by its fields (reserved 0, exact
 * lengths, no slack), the encoding must reproduce the original bytes exactly,
 * and decoding that must give the same frame back. Any disagreement traps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/crc32c.h"
#include "util/prng.h"
#include "wire/frame.h"

#define CHECK(c)                      \
    do {                              \
        if (!(c)) __builtin_trap();   \
    } while (0)

static int bytes_eq(mp_bytes a, mp_bytes b)
{
    return mp_bytes_eq(a, b);
}

static int frames_eq(const mp_frame *a, const mp_frame *b)
{
    if (a->kind != b->kind || a->flags != b->flags || a->correlation_id != b->correlation_id ||
        a->forward_count != b->forward_count || a->ttl_ms != b->ttl_ms ||
        a->status != b->status || !bytes_eq(a->target, b->target) ||
        !bytes_eq(a->sender, b->sender) || !bytes_eq(a->method, b->method) ||
        a->cache_update_count != b->cache_update_count || !bytes_eq(a->payload, b->payload))
        return 0;
    for (unsigned i = 0; i < a->cache_update_count; i++) {
        const mp_frame_cache_update *x = &a->cache_updates[i], *y = &b->cache_updates[i];
        if (!bytes_eq(x->actor_id, y->actor_id) || !bytes_eq(x->addr, y->addr) ||
            x->incarnation != y->incarnation)
            return 0;
    }
    return 1;
}

/* Oracle state: the one-shot decoder walking the same contiguous bytes. */
typedef struct oracle {
    const uint8_t *data;
    size_t len, pos;
    uint32_t max_frame;
} oracle;

static void check_frame(oracle *o, const mp_frame *f)
{
    mp_frame want;
    size_t flen = 0;
    CHECK(mp_frame_decode(o->data + o->pos, o->len - o->pos, o->max_frame, &want, &flen) == 0);
    CHECK(frames_eq(f, &want));

    /* Canonical encoding: re-encoding reproduces the original bytes. */
    size_t n = mp_frame_encoded_size(f);
    CHECK(n == flen);
    uint8_t *buf = malloc(n);
    CHECK(buf != NULL);
    size_t w = 0;
    CHECK(mp_frame_encode(f, buf, n, &w, o->max_frame) == 0);
    CHECK(w == n);
    CHECK(memcmp(buf, o->data + o->pos, n) == 0);
    mp_frame again;
    CHECK(mp_frame_decode(buf, n, o->max_frame, &again, NULL) == 0);
    CHECK(frames_eq(f, &again));
    free(buf);
    o->pos += flen;
}

/* Write the right checksum into every whole frame the lengths delimit. */
static void seal(uint8_t *p, size_t size)
{
    size_t pos = 0;
    while (size - pos >= 8) {
        uint64_t total = (uint64_t)(p[pos] | (uint32_t)p[pos + 1] << 8 |
                                    (uint32_t)p[pos + 2] << 16 | (uint32_t)p[pos + 3] << 24) +
                         4;
        if (total < MP_FRAME_MIN_SIZE || total > size - pos) break;
        size_t end = pos + (size_t)total;
        uint32_t c = mp_crc32c(p + pos + 4, (size_t)total - 8);
        p[end - 4] = (uint8_t)c;
        p[end - 3] = (uint8_t)(c >> 8);
        p[end - 2] = (uint8_t)(c >> 16);
        p[end - 1] = (uint8_t)(c >> 24);
        pos = end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    uint32_t max_frame = (data[0] & 1) ? 512 : 0;
    mp_prng rng;
    mp_prng_seed(&rng, data[1]);
    unsigned mode = data[1] % 4; /* whole, one byte, small, medium chunks */
    int sealed = (data[0] & 2) != 0;
    data += 2;
    size -= 2;
    uint8_t *copy = NULL;
    if (sealed && size > 0) {
        copy = malloc(size);
        CHECK(copy != NULL);
        memcpy(copy, data, size);
        seal(copy, size);
        data = copy;
    }

    oracle o = {data, size, 0, max_frame ? max_frame : MP_FRAME_DEFAULT_MAX};
    mp_frame_decoder dec;
    CHECK(mp_frame_decoder_init(&dec, max_frame) == 0);
    int status = 0;
    size_t pos = 0;
    while (pos < size && status == 0) {
        size_t n = size - pos;
        if (mode == 1) n = 1;
        else if (mode == 2) n = 1 + (size_t)mp_prng_below(&rng, 16);
        else if (mode == 3) n = (size_t)mp_prng_below(&rng, 300); /* empty feeds too */
        if (n > size - pos) n = size - pos;
        uint8_t *chunk = malloc(n ? n : 1);
        CHECK(chunk != NULL);
        if (n) memcpy(chunk, data + pos, n);
        status = mp_frame_decoder_feed(&dec, chunk, n);
        CHECK(status == 0);
        mp_frame f;
        int rc;
        while ((rc = mp_frame_decoder_next(&dec, &f)) == 1) check_frame(&o, &f);
        free(chunk);
        if (rc < 0) status = rc;
        pos += n;
    }
    /* The oracle must end where the streaming decoder ended. */
    if (status < 0) {
        mp_frame f;
        int rc = mp_frame_decode(o.data + o.pos, o.len - o.pos, o.max_frame, &f, NULL);
        CHECK(rc == status);
        /* Sticky. */
        CHECK(mp_frame_decoder_next(&dec, &f) == status);
    } else {
        /* Every byte after the last frame is a partial frame, held. */
        CHECK(mp_frame_decoder_buffered(&dec) == o.len - o.pos);
        if (o.len > o.pos) {
            mp_frame f;
            CHECK(mp_frame_decode(o.data + o.pos, o.len - o.pos, o.max_frame, &f, NULL) ==
                  MP_ETRUNCATED);
        }
    }
    mp_frame_decoder_free(&dec);
    free(copy);
    return 0;
}
