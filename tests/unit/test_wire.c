/*
 * Tests for the wire layer: CRC32C, frame encode/decode, streaming decoder.
 *
 * The streaming decoder is the one piece that eats bytes straight from the
 * network, so most of this file attacks it: every two-part split of a
 * multi-frame stream, one byte at a time, seeded random splits, every single
 * byte corrupted, oversize and undersize announcements. Each fed chunk is
 * copied into its own exact-size heap block and freed after the decoder has
 * drained it, so ASan catches any read past the input or any use of the input
 * after the decoder said it was done with it.
 *
 * One opt-in extra driven by an environment variable (off in ctest):
 *   MP_WIRE_CORPUS_DIR=path  write the fuzz seed corpus for
 *                            tests/fuzz/fuzz_wire_decoder.c into path.
 * (The encode/decode throughput benchmark is bench/bench_wire.c.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moonpool/status.h"
#include "util/crc32c.h"
#include "util/prng.h"
#include "wire/frame.h"

/* ---- helpers ------------------------------------------------------------ */

/* Bitwise reference CRC32C, straight from the definition. */
static uint32_t crc_ref(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    }
    return ~c;
}

static void put32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Re-seal a hand-modified frame so that only the intended defect remains. */
static void reseal(uint8_t *buf, size_t frame_len)
{
    put32le(buf + frame_len - 4, crc_ref(buf + 4, frame_len - 8));
}

static void assert_bytes_eq(mp_bytes a, mp_bytes b)
{
    assert_int_equal(a.len, b.len);
    if (a.len) assert_memory_equal(a.ptr, b.ptr, a.len);
}

static void assert_frame_eq(const mp_frame *a, const mp_frame *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->flags, b->flags);
    assert_true(a->correlation_id == b->correlation_id);
    assert_int_equal(a->forward_count, b->forward_count);
    assert_int_equal(a->ttl_ms, b->ttl_ms);
    assert_int_equal(a->status, b->status);
    assert_bytes_eq(a->target, b->target);
    assert_bytes_eq(a->sender, b->sender);
    assert_bytes_eq(a->method, b->method);
    assert_true(a->rid_origin == b->rid_origin && a->rid_seq == b->rid_seq &&
                a->rid_low == b->rid_low);
    assert_int_equal(a->cache_update_count, b->cache_update_count);
    for (unsigned i = 0; i < a->cache_update_count; i++) {
        assert_bytes_eq(a->cache_updates[i].actor_id, b->cache_updates[i].actor_id);
        assert_bytes_eq(a->cache_updates[i].addr, b->cache_updates[i].addr);
        assert_int_equal(a->cache_updates[i].incarnation, b->cache_updates[i].incarnation);
    }
    assert_bytes_eq(a->payload, b->payload);
}

/* Encode f into a fresh heap buffer of exactly its size. */
static uint8_t *encode_alloc(const mp_frame *f, size_t *len)
{
    size_t n = mp_frame_encoded_size(f);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    size_t w = 0;
    assert_int_equal(mp_frame_encode(f, buf, n, &w, 0), 0);
    assert_int_equal(w, n);
    *len = n;
    return buf;
}

static mp_frame simple_frame(uint8_t kind)
{
    mp_frame f;
    memset(&f, 0, sizeof f);
    f.kind = kind;
    f.flags = 0x1234;
    f.correlation_id = 0x0102030405060708ull;
    f.forward_count = 1;
    f.ttl_ms = 30000;
    f.target = mp_bytes_str("app::BankAccount/alice");
    f.sender = mp_bytes_str("app::Teller/t1");
    f.method = mp_bytes_str("deposit");
    f.payload = mp_bytes_str("{\"amount\":100}");
    return f;
}

/* A random, valid frame whose variable fields live in `arena` (which must
 * stay alive while the frame is used). Sizes are mostly small with an
 * occasional large payload. */
#define ARENA_SIZE (256 * 1024)
static mp_frame random_frame(mp_prng *rng, uint8_t *arena, size_t *used, uint32_t max_payload)
{
    mp_frame f;
    memset(&f, 0, sizeof f);
#define RAND_VIEW(dst, cap)                                                            \
    do {                                                                               \
        uint32_t n_ = (uint32_t)mp_prng_below(rng, (uint64_t)(cap) + 1);               \
        assert_true(*used + n_ <= ARENA_SIZE);                                         \
        for (uint32_t i_ = 0; i_ < n_; i_++) arena[*used + i_] = (uint8_t)mp_prng_next(rng); \
        (dst) = mp_bytes_make(n_ ? arena + *used : NULL, n_);                          \
        *used += n_;                                                                   \
    } while (0)
    f.kind = (uint8_t)(1 + mp_prng_below(rng, 4));
    f.flags = (uint16_t)mp_prng_next(rng);
    f.correlation_id = mp_prng_next(rng);
    f.forward_count = (uint8_t)mp_prng_below(rng, 3);
    f.ttl_ms = (uint32_t)mp_prng_next(rng);
    if (f.kind == MP_FRAME_RESPONSE || f.kind == MP_FRAME_SYSTEM)
        f.status = -(int32_t)mp_prng_below(rng, (uint64_t)(-MP_STATUS_MIN_) + 1);
    if (f.kind == MP_FRAME_REQUEST && mp_prng_chance(rng, 0.8)) {
        f.rid_origin = mp_prng_next(rng) | 1;
        f.rid_seq = mp_prng_next(rng) | 1;
        f.rid_low = mp_prng_next(rng);
    }
    RAND_VIEW(f.target, mp_prng_chance(rng, 0.8) ? 40 : MP_FRAME_MAX_TARGET);
    RAND_VIEW(f.sender, 40);
    RAND_VIEW(f.method, 20);
    if (mp_prng_chance(rng, 0.3)) {
        f.cache_update_count = (uint16_t)mp_prng_below(rng, MP_FRAME_MAX_CACHE_UPDATES + 1);
        for (unsigned i = 0; i < f.cache_update_count; i++) {
            RAND_VIEW(f.cache_updates[i].actor_id, 30);
            RAND_VIEW(f.cache_updates[i].addr, MP_FRAME_MAX_CACHE_ADDR);
            f.cache_updates[i].incarnation = (uint32_t)mp_prng_next(rng);
        }
    }
    RAND_VIEW(f.payload, mp_prng_chance(rng, 0.9) ? 200 : max_payload);
#undef RAND_VIEW
    return f;
}

/* A stream of n random frames, kept with the frames for comparison. */
typedef struct stream {
    uint8_t *bytes;
    size_t len;
    int n;
    mp_frame frames[64];
    size_t offsets[65]; /* frame i is bytes[offsets[i], offsets[i+1]) */
    uint8_t arena[ARENA_SIZE];
} stream;

static stream *make_stream(uint64_t seed, int n, uint32_t max_payload)
{
    assert_true(n <= 64);
    stream *s = calloc(1, sizeof *s);
    assert_non_null(s);
    mp_prng rng;
    mp_prng_seed(&rng, seed);
    size_t used = 0, total = 0;
    for (int i = 0; i < n; i++) {
        s->frames[i] = random_frame(&rng, s->arena, &used, max_payload);
        total += mp_frame_encoded_size(&s->frames[i]);
    }
    s->bytes = malloc(total);
    assert_non_null(s->bytes);
    s->n = n;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t w = 0;
        s->offsets[i] = off;
        assert_int_equal(mp_frame_encode(&s->frames[i], s->bytes + off, total - off, &w, 0), 0);
        off += w;
    }
    s->offsets[n] = off;
    s->len = total;
    assert_int_equal(off, total);
    return s;
}

static void free_stream(stream *s)
{
    free(s->bytes);
    free(s);
}

/*
 * Feed `data` to the decoder in chunks whose ends are `cuts` (ascending,
 * last == len). Each chunk lives in its own exact-size heap block, freed once
 * drained. Decoded frames are checked against `expect` as they come. Returns
 * the number of frames decoded, and in *status the first error (0 if none).
 */
static int feed_chunks(mp_frame_decoder *dec, const uint8_t *data, const size_t *cuts,
                       size_t ncuts, const mp_frame *expect, int nexpect, int *status)
{
    int got = 0;
    size_t start = 0;
    *status = 0;
    for (size_t c = 0; c < ncuts; c++) {
        size_t n = cuts[c] - start;
        uint8_t *chunk = malloc(n ? n : 1);
        assert_non_null(chunk);
        if (n) memcpy(chunk, data + start, n);
        int rc = mp_frame_decoder_feed(dec, chunk, n);
        if (rc < 0) {
            free(chunk);
            *status = rc;
            return got;
        }
        mp_frame f;
        while ((rc = mp_frame_decoder_next(dec, &f)) == 1) {
            if (expect) {
                assert_true(got < nexpect);
                assert_frame_eq(&f, &expect[got]);
            }
            got++;
        }
        free(chunk);
        if (rc < 0) {
            *status = rc;
            return got;
        }
        start = cuts[c];
    }
    return got;
}

/* ---- CRC32C ------------------------------------------------------------- */

static void test_crc32c_check_value(void **state)
{
    assert_int_equal(mp_crc32c("123456789", 9), 0xE3069283u);
    assert_int_equal(mp_crc32c_sw_update(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(mp_crc32c(NULL, 0), 0);
    /* RFC 3720 (iSCSI) B.4 vectors: 32 zero bytes, 32 0xFF bytes. */
    uint8_t z[32];
    memset(z, 0, sizeof z);
    assert_int_equal(mp_crc32c(z, 32), 0x8A9136AAu);
    memset(z, 0xff, sizeof z);
    assert_int_equal(mp_crc32c(z, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++) z[i] = (uint8_t)i;
    assert_int_equal(mp_crc32c(z, 32), 0x46DD794Eu);
}

static void test_crc32c_paths_agree(void **state)
{
    enum { N = 1100 };
    uint8_t *buf = malloc(N);
    assert_non_null(buf);
    mp_prng rng;
    mp_prng_seed(&rng, 42);
    for (size_t i = 0; i < N; i++) buf[i] = (uint8_t)mp_prng_next(&rng);
    /* Every length and several misalignments: table and hardware paths
     * against the bitwise definition. */
    for (size_t off = 0; off < 9; off++) {
        for (size_t len = 0; off + len <= N; len += (len < 80 ? 1 : 37)) {
            uint32_t want = crc_ref(buf + off, len);
            assert_int_equal(mp_crc32c_sw_update(0, buf + off, len), want);
            assert_int_equal(mp_crc32c(buf + off, len), want);
        }
    }
    /* Chaining across arbitrary cuts equals one pass. */
    uint32_t whole = mp_crc32c(buf, N);
    for (size_t cut = 0; cut <= N; cut += 13) {
        assert_int_equal(mp_crc32c_update(mp_crc32c(buf, cut), buf + cut, N - cut), whole);
        assert_int_equal(mp_crc32c_sw_update(mp_crc32c_sw_update(0, buf, cut), buf + cut, N - cut),
                         whole);
    }
    print_message("crc32c hardware path: %s\n", mp_crc32c_hw_available() ? "yes" : "no");
    free(buf);
}

/* ---- encode / one-shot decode ------------------------------------------- */

static void test_roundtrip_each_kind(void **state)
{
    for (uint8_t kind = MP_FRAME_REQUEST; kind <= MP_FRAME_SYSTEM; kind++) {
        mp_frame f = simple_frame(kind);
        if (kind == MP_FRAME_RESPONSE) f.status = MP_ENOMETHOD;
        if (kind == MP_FRAME_SYSTEM) {
            f.target = mp_bytes_make(NULL, 0);
            f.status = MP_ENAMESPACE;
        }
        size_t len;
        uint8_t *buf = encode_alloc(&f, &len);
        assert_int_equal(get32le(buf), len - 4);
        assert_memory_equal(buf + 4, "MPOL", 4);
        assert_int_equal(buf[8], MP_FRAME_VERSION);
        assert_int_equal(buf[9], kind);
        mp_frame g;
        size_t flen = 0;
        assert_int_equal(mp_frame_decode(buf, len, 0, &g, &flen), 0);
        assert_int_equal(flen, len);
        assert_frame_eq(&f, &g);
        /* Views point into the decoded buffer, nothing was copied. */
        assert_true(g.payload.ptr >= buf && g.payload.ptr + g.payload.len <= buf + len);
        free(buf);
    }
}

static void test_roundtrip_empty(void **state)
{
    mp_frame f;
    memset(&f, 0, sizeof f);
    f.kind = MP_FRAME_ONEWAY;
    assert_int_equal(mp_frame_encoded_size(&f), MP_FRAME_MIN_SIZE);
    size_t len;
    uint8_t *buf = encode_alloc(&f, &len);
    assert_int_equal(len, MP_FRAME_MIN_SIZE);
    mp_frame g;
    assert_int_equal(mp_frame_decode(buf, len, 0, &g, NULL), 0);
    assert_frame_eq(&f, &g);
    assert_int_equal(g.payload.len, 0);
    free(buf);
}

static void test_roundtrip_extremes(void **state)
{
    static uint8_t target[MP_FRAME_MAX_TARGET], sender[MP_FRAME_MAX_SENDER],
        method[MP_FRAME_MAX_METHOD];
    static uint8_t ids[MP_FRAME_MAX_CACHE_UPDATES][MP_FRAME_MAX_CACHE_ID];
    static uint8_t addrs[MP_FRAME_MAX_CACHE_UPDATES][MP_FRAME_MAX_CACHE_ADDR];
    memset(target, 't', sizeof target);
    memset(sender, 's', sizeof sender);
    memset(method, 'm', sizeof method);
    mp_frame f;
    memset(&f, 0, sizeof f);
    f.kind = MP_FRAME_RESPONSE;
    f.flags = 0xffff;
    f.correlation_id = UINT64_MAX;
    f.forward_count = 255;
    f.ttl_ms = UINT32_MAX;
    f.status = MP_STATUS_MIN_;
    f.target = mp_bytes_make(target, sizeof target);
    f.sender = mp_bytes_make(sender, sizeof sender);
    f.method = mp_bytes_make(method, sizeof method);
    f.cache_update_count = MP_FRAME_MAX_CACHE_UPDATES;
    for (unsigned i = 0; i < MP_FRAME_MAX_CACHE_UPDATES; i++) {
        memset(ids[i], 'a' + (int)i, MP_FRAME_MAX_CACHE_ID);
        memset(addrs[i], '0' + (int)i, MP_FRAME_MAX_CACHE_ADDR);
        f.cache_updates[i].actor_id = mp_bytes_make(ids[i], MP_FRAME_MAX_CACHE_ID);
        f.cache_updates[i].addr = mp_bytes_make(addrs[i], MP_FRAME_MAX_CACHE_ADDR);
        f.cache_updates[i].incarnation = UINT32_MAX - i;
    }
    /* Payload filling the default maximum frame exactly. */
    size_t headroom = mp_frame_encoded_size(&f);
    uint32_t plen = (uint32_t)(MP_FRAME_DEFAULT_MAX - headroom);
    uint8_t *payload = malloc(plen);
    assert_non_null(payload);
    for (uint32_t i = 0; i < plen; i++) payload[i] = (uint8_t)(i * 7u + 3u);
    f.payload = mp_bytes_make(payload, plen);
    assert_int_equal(mp_frame_encoded_size(&f), MP_FRAME_DEFAULT_MAX);

    size_t len;
    uint8_t *buf = encode_alloc(&f, &len);
    mp_frame g;
    assert_int_equal(mp_frame_decode(buf, len, MP_FRAME_DEFAULT_MAX, &g, NULL), 0);
    assert_frame_eq(&f, &g);

    /* The same through the streaming decoder, in three uneven pieces. */
    mp_frame_decoder dec;
    assert_int_equal(mp_frame_decoder_init(&dec, 0), 0);
    size_t cuts[] = {5, len / 3, len};
    int st;
    assert_int_equal(feed_chunks(&dec, buf, cuts, 3, &f, 1, &st), 1);
    assert_int_equal(st, 0);
    mp_frame_decoder_free(&dec);

    /* One byte more is refused by both sides. */
    f.payload.len++;
    size_t w = 7;
    uint8_t *big = malloc(len + 1);
    assert_non_null(big);
    assert_int_equal(mp_frame_encode(&f, big, len + 1, &w, 0), MP_ETOOBIG);
    assert_int_equal(w, 0);
    free(big);
    put32le(buf, (uint32_t)len - 3); /* announce one byte more */
    assert_int_equal(mp_frame_decode(buf, len, 0, &g, NULL), MP_ETOOBIG);

    free(buf);
    free(payload);
}

static void test_status_values(void **state)
{
    const int32_t good[] = {0, -1, MP_ETIMEDOUT, MP_STATUS_MIN_};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        for (uint8_t kind = MP_FRAME_RESPONSE; kind <= MP_FRAME_SYSTEM; kind += 2) {
            mp_frame f = simple_frame(kind);
            f.status = good[i];
            size_t len;
            uint8_t *buf = encode_alloc(&f, &len);
            mp_frame g;
            assert_int_equal(mp_frame_decode(buf, len, 0, &g, NULL), 0);
            assert_int_equal(g.status, good[i]);
            free(buf);
        }
    }
    /* The encoder refuses what the decoder would refuse. */
    uint8_t buf[512];
    size_t w;
    mp_frame f = simple_frame(MP_FRAME_RESPONSE);
    f.status = 1;
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, 0), MP_EINVAL);
    f.status = MP_STATUS_MIN_ - 1;
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, 0), MP_EINVAL);
    f = simple_frame(MP_FRAME_REQUEST);
    f.status = MP_EINVAL;
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, 0), MP_EINVAL);
    f = simple_frame(MP_FRAME_ONEWAY);
    f.status = MP_EINVAL;
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, 0), MP_EINVAL);

    /* And the decoder refuses hand-made frames with bad statuses. */
    const struct {
        uint8_t kind;
        int32_t status;
    } bad[] = {{MP_FRAME_RESPONSE, 1},
               {MP_FRAME_RESPONSE, MP_STATUS_MIN_ - 1},
               {MP_FRAME_SYSTEM, INT32_MIN},
               {MP_FRAME_SYSTEM, INT32_MAX},
               {MP_FRAME_REQUEST, -1},
               {MP_FRAME_ONEWAY, -1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = simple_frame(bad[i].kind);
        assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, 0), 0);
        put32le(buf + 26, (uint32_t)bad[i].status);
        reseal(buf, w);
        mp_frame g;
        assert_int_equal(mp_frame_decode(buf, w, 0, &g, NULL), MP_EPROTO);
    }
}

static void test_encode_refusals(void **state)
{
    uint8_t buf[1024];
    size_t w = 99;
    mp_frame f = simple_frame(MP_FRAME_REQUEST);
    size_t need = mp_frame_encoded_size(&f);

    /* Too small a buffer: MP_EINVAL, nothing written. */
    memset(buf, 0xAA, sizeof buf);
    assert_int_equal(mp_frame_encode(&f, buf, need - 1, &w, 0), MP_EINVAL);
    assert_int_equal(w, 0);
    for (size_t i = 0; i < sizeof buf; i++) assert_int_equal(buf[i], 0xAA);

    /* Over max_frame: MP_ETOOBIG before writing, even with room. */
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, (uint32_t)need - 1), MP_ETOOBIG);
    for (size_t i = 0; i < sizeof buf; i++) assert_int_equal(buf[i], 0xAA);
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, (uint32_t)need), 0);
    assert_int_equal(w, need);

    /* Bad max_frame values. */
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, MP_FRAME_MIN_SIZE - 1), MP_EINVAL);
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, MP_FRAME_MAX_LIMIT + 1), MP_EINVAL);

    /* Field caps and malformed views. */
    static uint8_t big[300];
    memset(big, 'x', sizeof big);
    f.target = mp_bytes_make(big, MP_FRAME_MAX_TARGET + 1);
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, 0), MP_EINVAL);
    f = simple_frame(MP_FRAME_REQUEST);
    f.sender = mp_bytes_make(big, MP_FRAME_MAX_SENDER + 1);
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, 0), MP_EINVAL);
    f = simple_frame(MP_FRAME_REQUEST);
    f.method = mp_bytes_make(big, MP_FRAME_MAX_METHOD + 1);
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, 0), MP_EINVAL);
    f = simple_frame(MP_FRAME_REQUEST);
    f.payload = mp_bytes_make(NULL, 3);
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, 0), MP_EINVAL);
    f = simple_frame(MP_FRAME_RESPONSE);
    f.cache_update_count = MP_FRAME_MAX_CACHE_UPDATES + 1;
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, 0), MP_EINVAL);
    f = simple_frame(MP_FRAME_RESPONSE);
    f.cache_update_count = 1;
    f.cache_updates[0].actor_id = mp_bytes_str("a");
    f.cache_updates[0].addr = mp_bytes_make(big, MP_FRAME_MAX_CACHE_ADDR + 1);
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, 0), MP_EINVAL);
    f.cache_updates[0].addr = mp_bytes_str("10.0.0.1:4000");
    f.cache_updates[0].actor_id = mp_bytes_make(big, MP_FRAME_MAX_CACHE_ID + 1);
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, 0), MP_EINVAL);
    f = simple_frame(0);
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, 0), MP_EINVAL);
    f = simple_frame(5);
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, 0), MP_EINVAL);
    f = simple_frame(MP_FRAME_REQUEST);
    assert_int_equal(mp_frame_encode(NULL, buf, sizeof buf, &w, 0), MP_EINVAL);
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, NULL, 0), MP_EINVAL);
    assert_int_equal(mp_frame_encode(&f, NULL, 0, &w, 0), MP_EINVAL);
}

/* Build a frame, apply `patch` at offset `at` (negative: from the crc), and
 * optionally re-seal it; return the one-shot decode status. */
static int decode_patched(const mp_frame *f, size_t at, const void *patch, size_t plen,
                          int seal)
{
    uint8_t buf[2048];
    size_t w;
    assert_int_equal(mp_frame_encode(f, buf, sizeof buf, &w, 0), 0);
    memcpy(buf + at, patch, plen);
    if (seal) reseal(buf, w);
    mp_frame g;
    int rc = mp_frame_decode(buf, w, 0, &g, NULL);
    /* The streaming decoder must agree, whole and byte by byte. */
    for (int mode = 0; mode < 2; mode++) {
        mp_frame_decoder dec;
        assert_int_equal(mp_frame_decoder_init(&dec, 0), 0);
        size_t cuts[2048];
        size_t ncuts = 0;
        if (mode == 0) {
            cuts[ncuts++] = w;
        } else {
            for (size_t i = 1; i <= w; i++) cuts[ncuts++] = i;
        }
        int st;
        int got = feed_chunks(&dec, buf, cuts, ncuts, NULL, 0, &st);
        assert_int_equal(got, rc == 0 ? 1 : 0);
        assert_int_equal(st, rc);
        mp_frame_decoder_free(&dec);
    }
    return rc;
}

static void test_decode_rejections(void **state)
{
    mp_frame f = simple_frame(MP_FRAME_RESPONSE);
    f.cache_update_count = 1;
    f.cache_updates[0].actor_id = mp_bytes_str("app::BankAccount/alice");
    f.cache_updates[0].addr = mp_bytes_str("10.0.0.2:4000");
    f.cache_updates[0].incarnation = 3;
    const size_t tgt = 30; /* offset of target_len */
    const size_t snd = tgt + 2 + f.target.len;
    const size_t mth = snd + 2 + f.sender.len;
    const size_t key = mth + 2 + f.method.len;
    const size_t cnt = key + 2 + f.request_key.len;
    const size_t rec = cnt + 2;
    uint8_t b[4];

    assert_int_equal(decode_patched(&f, 4, "MPOX", 4, 0), MP_EBADMAGIC);
    assert_int_equal(decode_patched(&f, 4, "MPOX", 4, 1), MP_EBADMAGIC);
    assert_int_equal(decode_patched(&f, 8, "\x04", 1, 1), MP_EVERSION);
    assert_int_equal(decode_patched(&f, 8, "\x02", 1, 1), MP_EVERSION); /* no request id */
    assert_int_equal(decode_patched(&f, 8, "\x01", 1, 1), MP_EVERSION); /* no key field */
    assert_int_equal(decode_patched(&f, 8, "\x00", 1, 1), MP_EVERSION);
    assert_int_equal(decode_patched(&f, 60, "\xff", 1, 0), MP_ECHECKSUM);
    assert_int_equal(decode_patched(&f, 9, "\x00", 1, 1), MP_EPROTO); /* kind 0 */
    assert_int_equal(decode_patched(&f, 9, "\x05", 1, 1), MP_EPROTO); /* kind 5 */
    assert_int_equal(decode_patched(&f, 9, "\x05", 1, 0), MP_ECHECKSUM);
    assert_int_equal(decode_patched(&f, 21, "\x01", 1, 1), MP_EPROTO); /* reserved */
    /* Lengths over their caps. */
    assert_int_equal(decode_patched(&f, tgt, "\x01\x01", 2, 1), MP_EPROTO); /* 257 */
    assert_int_equal(decode_patched(&f, snd, "\x01\x01", 2, 1), MP_EPROTO);
    assert_int_equal(decode_patched(&f, mth, "\x81\x00", 2, 1), MP_EPROTO); /* 129 */
    assert_int_equal(decode_patched(&f, key, "\x41\x00", 2, 1), MP_EPROTO); /* 65 */
    assert_int_equal(decode_patched(&f, cnt, "\x11\x00", 2, 1), MP_EPROTO); /* 17 */
    assert_int_equal(decode_patched(&f, rec, "\x01\x01", 2, 1), MP_EPROTO);
    assert_int_equal(decode_patched(&f, rec + 2 + f.cache_updates[0].actor_id.len, "\x41\x00",
                                    2, 1),
                     MP_EPROTO); /* addr 65 */
    /* Lengths within caps but past the frame. */
    assert_int_equal(decode_patched(&f, tgt, "\xff\x00", 2, 1), MP_ETRUNCATED);
    {
        /* One record announced in a frame with none and an empty payload:
         * the record's fixed part reads zero lengths, then its incarnation
         * runs into the checksum. */
        mp_frame e = simple_frame(MP_FRAME_RESPONSE);
        e.payload = mp_bytes_make(NULL, 0);
        assert_int_equal(decode_patched(&e, cnt, "\x01\x00", 2, 1), MP_ETRUNCATED);
    }
    size_t pl = rec + 2 + f.cache_updates[0].actor_id.len + 2 + f.cache_updates[0].addr.len + 4;
    put32le(b, 0xffffffffu);
    assert_int_equal(decode_patched(&f, pl, b, 4, 1), MP_ETRUNCATED);
    /* Payload shorter than the room left: bytes left over inside the frame. */
    put32le(b, f.payload.len - 1);
    assert_int_equal(decode_patched(&f, pl, b, 4, 1), MP_ETRUNCATED);
    /* Fewer cache records than the room: leftover too. */
    assert_int_equal(decode_patched(&f, cnt, "\x00\x00", 2, 1), MP_ETRUNCATED);
    /* Announced length below the empty frame. */
    put32le(b, MP_FRAME_MIN_SIZE - 5);
    assert_int_equal(decode_patched(&f, 0, b, 4, 0), MP_ETRUNCATED);
    put32le(b, 0);
    assert_int_equal(decode_patched(&f, 0, b, 4, 0), MP_ETRUNCATED);
    put32le(b, 0xffffffffu);
    assert_int_equal(decode_patched(&f, 0, b, 4, 0), MP_ETOOBIG);
    /* Unpatched: fine. */
    assert_int_equal(decode_patched(&f, 9, "\x02", 1, 1), 0);

    /* One-shot decode of a buffer shorter than its frame. */
    uint8_t buf[512];
    size_t w;
    assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, 0), 0);
    mp_frame g;
    for (size_t n = 0; n < w; n++) {
        int rc = mp_frame_decode(buf, n, 0, &g, NULL);
        assert_int_equal(rc, MP_ETRUNCATED);
    }
    assert_int_equal(mp_frame_decode(NULL, 0, 0, &g, NULL), MP_ETRUNCATED);
    assert_int_equal(mp_frame_decode(buf, w, 0, NULL, NULL), MP_EINVAL);
    assert_int_equal(mp_frame_decode(buf, w, 10, &g, NULL), MP_EINVAL);
    /* Trailing bytes after the frame are not its business. */
    size_t flen = 0;
    assert_int_equal(mp_frame_decode(buf, sizeof buf, 0, &g, &flen), 0);
    assert_int_equal(flen, w);
    /* A bad magic is seen from its first wrong byte, before the length. */
    assert_int_equal(mp_frame_decode((const uint8_t *)"\xff\xff\xff\xffX", 5, 0, &g, NULL),
                     MP_EBADMAGIC);
}

/* Every single byte of a small frame corrupted (several ways): never a
 * crash, never a silent success; payload and header damage is a checksum
 * error; and the streaming decoder reports the same status as the one-shot
 * decoder however the bytes arrive. */
static void test_corrupt_every_byte(void **state)
{
    mp_frame f = simple_frame(MP_FRAME_RESPONSE);
    f.status = MP_EACTOR;
    f.cache_update_count = 2;
    f.cache_updates[0].actor_id = mp_bytes_str("a::B/c");
    f.cache_updates[0].addr = mp_bytes_str("127.0.0.1:1");
    f.cache_updates[1].actor_id = mp_bytes_str("a::B/d");
    f.cache_updates[1].addr = mp_bytes_str("127.0.0.1:2");
    size_t len;
    uint8_t *good = encode_alloc(&f, &len);
    mp_frame tail = simple_frame(MP_FRAME_ONEWAY);
    size_t tlen;
    uint8_t *tailb = encode_alloc(&tail, &tlen);
    const uint8_t xors[] = {0x01, 0x80, 0xff, 0x5a};
    uint8_t *buf = malloc(len + tlen);
    assert_non_null(buf);
    for (size_t pos = 0; pos < len; pos++) {
        for (size_t x = 0; x < sizeof xors; x++) {
            memcpy(buf, good, len);
            memcpy(buf + len, tailb, tlen);
            buf[pos] ^= xors[x];
            mp_frame g;
            int rc = mp_frame_decode(buf, len, 0, &g, NULL);
            assert_true(rc < 0);
            if (pos >= 4 && pos < 8) assert_int_equal(rc, MP_EBADMAGIC);
            else if (pos == 8) assert_int_equal(rc, MP_EVERSION);
            else if (pos >= 9) assert_int_equal(rc, MP_ECHECKSUM);
            else assert_true(rc == MP_ETOOBIG || rc == MP_ETRUNCATED || rc == MP_ECHECKSUM);

            /* Streaming: the corrupted frame followed by a good one. With a
             * damaged length the decoder may legitimately wait for more
             * bytes (status 0, no frame) or misframe into a checksum error;
             * it must never hand out a frame. */
            int whole_status = 0;
            for (int mode = 0; mode < 3; mode++) {
                mp_frame_decoder dec;
                assert_int_equal(mp_frame_decoder_init(&dec, 0), 0);
                size_t cuts[1024];
                size_t n = 0, total = len + tlen;
                if (mode == 0) cuts[n++] = total;
                else if (mode == 1)
                    for (size_t i = 1; i <= total; i++) cuts[n++] = i;
                else {
                    cuts[n++] = pos + 1;
                    cuts[n++] = total;
                }
                int st;
                int got = feed_chunks(&dec, buf, cuts, n, NULL, 0, &st);
                assert_int_equal(got, 0);
                if (mode == 0) whole_status = st;
                else assert_int_equal(st, whole_status);
                if (pos >= 4) assert_int_equal(st, rc);
                mp_frame_decoder_free(&dec);
            }
        }
    }
    free(buf);
    free(good);
    free(tailb);
}

/* ---- in-place ttl rewrite (the transport's queue aging) ----------------- */

/* mp_frame_set_ttl on an encoded frame gives exactly the bytes of that frame
 * encoded with the new ttl: the ttl field and the checksum change, nothing
 * else, and the result decodes (checksum valid) to the same frame with the
 * new ttl. Checked on every kind, on random frames (cache updates, large
 * payloads), on ttl 0 and UINT32_MAX, and on a frame in the middle of a
 * queue of frames back to back (its neighbours are untouched). The peek
 * helpers read kind, ttl and whole size of the same bytes. */
static void check_set_ttl(const mp_frame *f, uint32_t ttl)
{
    size_t len;
    uint8_t *buf = encode_alloc(f, &len);
    mp_frame g = *f;
    g.ttl_ms = ttl;
    size_t want_len;
    uint8_t *want = encode_alloc(&g, &want_len);
    assert_int_equal(want_len, len);
    assert_int_equal(mp_frame_peek_size(buf), len);
    assert_int_equal(mp_frame_peek_kind(buf), f->kind);
    assert_int_equal(mp_frame_peek_ttl(buf), f->ttl_ms);
    mp_frame_set_ttl(buf, ttl);
    assert_memory_equal(buf, want, len);
    assert_int_equal(mp_frame_peek_ttl(buf), ttl);
    assert_int_equal(mp_frame_peek_size(buf), len);
    mp_frame d;
    size_t flen = 0;
    assert_int_equal(mp_frame_decode(buf, len, 0, &d, &flen), 0);
    assert_int_equal(flen, len);
    assert_frame_eq(&g, &d);
    free(want);
    free(buf);
}

static void test_set_ttl_rewrites_only_ttl_and_checksum(void **state)
{
    static const uint32_t ttls[] = {0, 1, 29999, 30001, UINT32_MAX};
    for (uint8_t kind = MP_FRAME_REQUEST; kind <= MP_FRAME_SYSTEM; kind++) {
        mp_frame f = simple_frame(kind);
        if (kind == MP_FRAME_RESPONSE) f.status = MP_ENOMETHOD;
        if (kind == MP_FRAME_SYSTEM) {
            f.target = mp_bytes_make(NULL, 0);
            f.status = MP_ENAMESPACE;
        }
        for (size_t i = 0; i < sizeof ttls / sizeof ttls[0]; i++) check_set_ttl(&f, ttls[i]);
    }
    mp_prng rng;
    mp_prng_seed(&rng, 7);
    uint8_t *arena = malloc(ARENA_SIZE);
    assert_non_null(arena);
    for (int i = 0; i < 200; i++) {
        size_t used = 0;
        mp_frame f = random_frame(&rng, arena, &used, 4096);
        check_set_ttl(&f, (uint32_t)mp_prng_next(&rng));
    }
    free(arena);

    /* In a queue: rewrite the middle frame of three. */
    stream *s = make_stream(11, 3, 512);
    uint8_t *orig = malloc(s->len);
    assert_non_null(orig);
    memcpy(orig, s->bytes, s->len);
    uint8_t *mid = s->bytes + s->offsets[1];
    assert_int_equal(mp_frame_peek_size(mid), s->offsets[2] - s->offsets[1]);
    mp_frame_set_ttl(mid, 1234);
    assert_memory_equal(s->bytes, orig, s->offsets[1]);
    assert_memory_equal(s->bytes + s->offsets[2], orig + s->offsets[2], s->len - s->offsets[2]);
    mp_frame d;
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        size_t flen = 0;
        assert_int_equal(mp_frame_decode(s->bytes + off, s->len - off, 0, &d, &flen), 0);
        mp_frame want = s->frames[i];
        if (i == 1) want.ttl_ms = 1234;
        assert_frame_eq(&want, &d);
        off += flen;
    }
    assert_int_equal(off, s->len);
    free(orig);
    free_stream(s);
}

/* ---- streaming decoder -------------------------------------------------- */

static void test_stream_whole_in_place(void **state)
{
    stream *s = make_stream(7, 40, 3000);
    mp_frame_decoder dec;
    assert_int_equal(mp_frame_decoder_init(&dec, 0), 0);
    assert_int_equal(mp_frame_decoder_feed(&dec, s->bytes, s->len), 0);
    mp_frame f;
    for (int i = 0; i < s->n; i++) {
        assert_int_equal(mp_frame_decoder_next(&dec, &f), 1);
        assert_frame_eq(&f, &s->frames[i]);
        /* Decoded in place: the views point into the fed bytes. */
        if (f.payload.len)
            assert_ptr_equal(f.payload.ptr, s->bytes + s->offsets[i + 1] - 4 - f.payload.len);
    }
    assert_int_equal(mp_frame_decoder_next(&dec, &f), 0);
    assert_int_equal(mp_frame_decoder_next(&dec, &f), 0);
    /* Nothing was copied or allocated. */
    assert_null(dec.buf);
    assert_int_equal(mp_frame_decoder_buffered(&dec), 0);
    assert_int_equal((int)dec.frames, s->n);
    mp_frame_decoder_free(&dec);
    free_stream(s);
}

static void test_stream_every_two_part_split(void **state)
{
    stream *s = make_stream(11, 12, 400);
    for (size_t cut = 0; cut <= s->len; cut++) {
        mp_frame_decoder dec;
        assert_int_equal(mp_frame_decoder_init(&dec, 0), 0);
        size_t cuts[2] = {cut, s->len};
        int st;
        assert_int_equal(feed_chunks(&dec, s->bytes, cuts, 2, s->frames, s->n, &st), s->n);
        assert_int_equal(st, 0);
        assert_int_equal(mp_frame_decoder_buffered(&dec), 0);
        mp_frame_decoder_free(&dec);
    }
    free_stream(s);
}

static void test_stream_one_byte_at_a_time(void **state)
{
    stream *s = make_stream(12, 30, 3000);
    size_t *cuts = malloc(s->len * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t i = 0; i < s->len; i++) cuts[i] = i + 1;
    mp_frame_decoder dec;
    assert_int_equal(mp_frame_decoder_init(&dec, 0), 0);
    int st;
    assert_int_equal(feed_chunks(&dec, s->bytes, cuts, s->len, s->frames, s->n, &st), s->n);
    assert_int_equal(st, 0);
    /* The buffer never grew beyond the largest frame. */
    size_t largest = 0;
    for (int i = 0; i < s->n; i++)
        if (s->offsets[i + 1] - s->offsets[i] > largest) largest = s->offsets[i + 1] - s->offsets[i];
    assert_true(dec.buf_cap <= (largest > 256 ? largest : 256));
    mp_frame_decoder_free(&dec);
    free(cuts);
    free_stream(s);
}

static void test_stream_random_splits(void **state)
{
    stream *s = make_stream(13, 60, 5000);
    size_t *cuts = malloc((s->len + 1) * sizeof *cuts);
    assert_non_null(cuts);
    mp_prng rng;
    mp_prng_seed(&rng, 2024);
    for (int round = 0; round < 200; round++) {
        size_t n = 0, pos = 0;
        /* Mix tiny, medium and large chunks, and empty feeds. */
        uint64_t scale = round % 3 == 0 ? 4 : round % 3 == 1 ? 300 : 20000;
        while (pos < s->len) {
            pos += mp_prng_below(&rng, scale + 1);
            if (pos > s->len) pos = s->len;
            cuts[n++] = pos;
        }
        mp_frame_decoder dec;
        assert_int_equal(mp_frame_decoder_init(&dec, 0), 0);
        int st;
        assert_int_equal(feed_chunks(&dec, s->bytes, cuts, n, s->frames, s->n, &st), s->n);
        assert_int_equal(st, 0);
        assert_int_equal(mp_frame_decoder_buffered(&dec), 0);
        mp_frame_decoder_free(&dec);
    }
    free(cuts);
    free_stream(s);
}

static void test_stream_oversize_at_once(void **state)
{
    /* A header announcing 2 MiB against a 1 MiB limit fails after 8 bytes,
     * long before any body. */
    uint8_t hdr[8];
    put32le(hdr, 2u * 1024 * 1024);
    memcpy(hdr + 4, "MPOL", 4);
    mp_frame_decoder dec;
    assert_int_equal(mp_frame_decoder_init(&dec, 0), 0);
    mp_frame f;
    assert_int_equal(mp_frame_decoder_feed(&dec, hdr, 7), 0);
    assert_int_equal(mp_frame_decoder_next(&dec, &f), 0);
    assert_int_equal(mp_frame_decoder_feed(&dec, hdr + 7, 1), 0);
    assert_int_equal(mp_frame_decoder_next(&dec, &f), MP_ETOOBIG);
    /* Sticky. */
    assert_int_equal(mp_frame_decoder_next(&dec, &f), MP_ETOOBIG);
    assert_int_equal(mp_frame_decoder_feed(&dec, hdr, 8), MP_ETOOBIG);
    /* Reset clears it; a custom small limit is honoured to the byte. */
    mp_frame_decoder_free(&dec);
    assert_int_equal(mp_frame_decoder_init(&dec, 100), 0);
    put32le(hdr, 97); /* 101 bytes total */
    assert_int_equal(mp_frame_decoder_feed(&dec, hdr, 8), 0);
    assert_int_equal(mp_frame_decoder_next(&dec, &f), MP_ETOOBIG);
    mp_frame_decoder_reset(&dec);
    put32le(hdr, 96); /* exactly 100: fine, waits for the body */
    assert_int_equal(mp_frame_decoder_feed(&dec, hdr, 8), 0);
    assert_int_equal(mp_frame_decoder_next(&dec, &f), 0);
    assert_int_equal(mp_frame_decoder_buffered(&dec), 8);
    mp_frame_decoder_free(&dec);

    assert_int_equal(mp_frame_decoder_init(&dec, MP_FRAME_MIN_SIZE - 1), MP_EINVAL);
    assert_int_equal(mp_frame_decoder_init(&dec, MP_FRAME_MAX_LIMIT + 1), MP_EINVAL);
    assert_int_equal(mp_frame_decoder_init(&dec, MP_FRAME_MAX_LIMIT), 0);
    mp_frame_decoder_free(&dec);
}

/* The request id: only REQUEST frames carry it (24 bytes after the fixed
 * header), it survives a round trip, and half an id is a protocol error. */
static void test_request_id_travels_with_requests_only(void **state)
{
    mp_frame f = simple_frame(MP_FRAME_REQUEST);
    f.rid_origin = 0x1111222233334444ull;
    f.rid_seq = 77;
    f.rid_low = 70;
    mp_frame g = simple_frame(MP_FRAME_ONEWAY);
    g.rid_origin = f.rid_origin; /* ignored: one-way frames carry no id */
    g.rid_seq = 5;
    assert_int_equal(mp_frame_encoded_size(&f), mp_frame_encoded_size(&g) + MP_FRAME_RID_SIZE);
    size_t len;
    uint8_t *buf = encode_alloc(&f, &len);
    mp_frame d;
    assert_int_equal(mp_frame_decode(buf, len, 0, &d, NULL), 0);
    assert_frame_eq(&f, &d);
    free(buf);
    buf = encode_alloc(&g, &len);
    assert_int_equal(mp_frame_decode(buf, len, 0, &d, NULL), 0);
    assert_true(d.rid_origin == 0 && d.rid_seq == 0 && d.rid_low == 0);
    free(buf);

    /* Half an id: refused by the encoder, and by the decoder on the wire. */
    f.rid_origin = 0;
    uint8_t b[512];
    size_t w;
    assert_int_equal(mp_frame_encode(&f, b, sizeof b, &w, 0), MP_EINVAL);
    f.rid_origin = 9;
    assert_int_equal(decode_patched(&f, MP_FRAME_FIXED_HEADER, "\0\0\0\0\0\0\0\0", 8, 1),
                     MP_EPROTO);
    f.rid_seq = 0;
    assert_int_equal(mp_frame_encode(&f, b, sizeof b, &w, 0), MP_EINVAL);
    f.rid_origin = 0;
    assert_int_equal(decode_patched(&f, MP_FRAME_FIXED_HEADER, "\1", 1, 1), MP_EPROTO);
}

static void test_stream_memory_follows_bytes(void **state)
{
    /* A peer announcing a 1 MiB frame and sending 9 bytes costs a small
     * buffer, not 1 MiB. */
    uint8_t hdr[9];
    put32le(hdr, MP_FRAME_DEFAULT_MAX - 4);
    memcpy(hdr + 4, "MPOL\x03", 5);
    mp_frame_decoder dec;
    assert_int_equal(mp_frame_decoder_init(&dec, 0), 0);
    mp_frame f;
    assert_int_equal(mp_frame_decoder_feed(&dec, hdr, sizeof hdr), 0);
    assert_int_equal(mp_frame_decoder_next(&dec, &f), 0);
    assert_true(dec.buf_cap <= 256);
    mp_frame_decoder_free(&dec);

    /* After a large split frame the buffer is given back. */
    static uint8_t payload[200000];
    memset(payload, 'p', sizeof payload);
    mp_frame big = simple_frame(MP_FRAME_ONEWAY);
    big.payload = mp_bytes_make(payload, sizeof payload);
    mp_frame small = simple_frame(MP_FRAME_REQUEST);
    size_t blen, slen;
    uint8_t *bb = encode_alloc(&big, &blen);
    uint8_t *sb = encode_alloc(&small, &slen);
    assert_int_equal(mp_frame_decoder_init(&dec, 0), 0);
    size_t cuts[] = {1000, blen};
    int st;
    assert_int_equal(feed_chunks(&dec, bb, cuts, 2, &big, 1, &st), 1);
    assert_int_equal(st, 0);
    assert_true(dec.buf_cap >= blen);
    size_t cuts2[] = {10, slen};
    assert_int_equal(feed_chunks(&dec, sb, cuts2, 2, &small, 1, &st), 1);
    assert_int_equal(st, 0);
    assert_true(dec.buf_cap <= 1024);
    mp_frame_decoder_free(&dec);
    free(bb);
    free(sb);
}

static void test_stream_api_misuse(void **state)
{
    mp_frame f = simple_frame(MP_FRAME_REQUEST);
    size_t len;
    uint8_t *one = encode_alloc(&f, &len);
    uint8_t *two = malloc(2 * len);
    assert_non_null(two);
    memcpy(two, one, len);
    memcpy(two + len, one, len);
    mp_frame_decoder dec;
    assert_int_equal(mp_frame_decoder_init(&dec, 0), 0);
    mp_frame g;
    assert_int_equal(mp_frame_decoder_feed(&dec, two, 2 * len), 0);
    assert_int_equal(mp_frame_decoder_next(&dec, &g), 1);
    /* Feeding before draining is refused, without harm. */
    assert_int_equal(mp_frame_decoder_feed(&dec, one, len), MP_EINVAL);
    assert_int_equal(mp_frame_decoder_next(&dec, &g), 1);
    assert_frame_eq(&g, &f);
    /* Fully taken (even before next() says 0): feeding is fine again. */
    assert_int_equal(mp_frame_decoder_feed(&dec, one, len), 0);
    assert_int_equal(mp_frame_decoder_next(&dec, &g), 1);
    assert_int_equal(mp_frame_decoder_next(&dec, &g), 0);
    assert_int_equal(mp_frame_decoder_feed(&dec, NULL, 0), 0);
    assert_int_equal(mp_frame_decoder_next(&dec, &g), 0);
    assert_int_equal(mp_frame_decoder_feed(&dec, NULL, 3), MP_EINVAL);
    assert_int_equal(mp_frame_decoder_next(&dec, NULL), MP_EINVAL);
    /* A garbage stream fails sticky; reset recovers. */
    assert_int_equal(mp_frame_decoder_feed(&dec, (const uint8_t *)"GET / HTTP/1.1\r\n", 16), 0);
    assert_int_equal(mp_frame_decoder_next(&dec, &g), MP_EBADMAGIC);
    assert_int_equal(mp_frame_decoder_feed(&dec, one, len), MP_EBADMAGIC);
    mp_frame_decoder_reset(&dec);
    assert_int_equal(mp_frame_decoder_feed(&dec, one, len), 0);
    assert_int_equal(mp_frame_decoder_next(&dec, &g), 1);
    mp_frame_decoder_free(&dec);
    mp_frame_decoder_free(&dec); /* idempotent */
    mp_frame_decoder zero;
    memset(&zero, 0, sizeof zero);
    assert_int_equal(mp_frame_decoder_feed(&zero, one, len), MP_EINVAL);
    mp_frame_decoder_free(&zero);
    free(one);
    free(two);
}

/* ---- fuzz corpus generator (MP_WIRE_CORPUS_DIR) ------------------------- */

/* Input format of tests/fuzz/fuzz_wire_decoder.c: byte 0 = options (bit 0:
 * small max_frame of 512; bit 1: the target re-seals every frame's CRC),
 * byte 1 = split seed, then the stream. */
static void write_seed(const char *dir, const char *name, uint8_t opts, uint8_t seed,
                       const uint8_t *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_true(len + 2 <= 4096);
    fputc(opts, fp);
    fputc(seed, fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void test_write_corpus(void **state)
{
    const char *dir = getenv("MP_WIRE_CORPUS_DIR");
    if (!dir || !*dir) {
        skip();
        return;
    }
    uint8_t buf[4096];
    size_t w;
    char name[64];
    /* One valid frame of each kind. */
    for (uint8_t kind = MP_FRAME_REQUEST; kind <= MP_FRAME_SYSTEM; kind++) {
        mp_frame f = simple_frame(kind);
        if (kind == MP_FRAME_RESPONSE) {
            f.status = MP_EACTOR;
            f.cache_update_count = 2;
            f.cache_updates[0].actor_id = mp_bytes_str("app::BankAccount/alice");
            f.cache_updates[0].addr = mp_bytes_str("127.0.0.1:4001");
            f.cache_updates[0].incarnation = 2;
            f.cache_updates[1].actor_id = mp_bytes_str("app::BankAccount/bob");
            f.cache_updates[1].addr = mp_bytes_str("127.0.0.1:4002");
            f.cache_updates[1].incarnation = 5;
        }
        if (kind == MP_FRAME_SYSTEM) f.target = mp_bytes_make(NULL, 0);
        assert_int_equal(mp_frame_encode(&f, buf, sizeof buf, &w, 0), 0);
        snprintf(name, sizeof name, "kind-%u", kind);
        write_seed(dir, name, 0, kind, buf, w);
    }
    /* The empty frame; a max-field frame (16 records) under the small limit
     * and under the default one. */
    mp_frame e;
    memset(&e, 0, sizeof e);
    e.kind = MP_FRAME_ONEWAY;
    assert_int_equal(mp_frame_encode(&e, buf, sizeof buf, &w, 0), 0);
    write_seed(dir, "empty", 0, 0, buf, w);
    static uint8_t id[40], addr[MP_FRAME_MAX_CACHE_ADDR];
    memset(id, 'i', sizeof id);
    memset(addr, 'a', sizeof addr);
    mp_frame m = simple_frame(MP_FRAME_RESPONSE);
    m.cache_update_count = MP_FRAME_MAX_CACHE_UPDATES;
    for (unsigned i = 0; i < MP_FRAME_MAX_CACHE_UPDATES; i++) {
        m.cache_updates[i].actor_id = mp_bytes_make(id, (uint32_t)(i * 2 + 1));
        m.cache_updates[i].addr = mp_bytes_make(addr, (uint32_t)(i * 4));
        m.cache_updates[i].incarnation = i;
    }
    assert_int_equal(mp_frame_encode(&m, buf, sizeof buf, &w, 0), 0);
    write_seed(dir, "cache16", 0, 3, buf, w);
    write_seed(dir, "cache16-smallmax", 1, 3, buf, w);
    /* Several frames concatenated, split in different ways. */
    for (int k = 0; k < 4; k++) {
        mp_prng rng;
        mp_prng_seed(&rng, 100 + (uint64_t)k);
        static uint8_t arena[ARENA_SIZE];
        size_t used = 0, off = 0;
        int n = 2 + k * 2;
        for (int i = 0; i < n; i++) {
            mp_frame f = random_frame(&rng, arena, &used, 300);
            if (mp_frame_encoded_size(&f) > sizeof buf - 2 - off) break;
            assert_int_equal(mp_frame_encode(&f, buf + off, sizeof buf - 2 - off, &w, 0), 0);
            off += w;
        }
        snprintf(name, sizeof name, "multi-%d", k);
        write_seed(dir, name, (uint8_t)(k & 1), (uint8_t)(k * 37 + 1), buf, off);
        if (k == 2) write_seed(dir, "sealed-multi-2", 2, 77, buf, off);
    }
    /* Corrupted ones: each defect on a valid response frame. */
    mp_frame c = simple_frame(MP_FRAME_RESPONSE);
    size_t clen;
    assert_int_equal(mp_frame_encode(&c, buf, sizeof buf, &clen, 0), 0);
    static const struct {
        const char *name;
        size_t at;
        uint8_t val;
        int seal;
    } defects[] = {{"bad-magic", 5, 'X', 0},     {"bad-version", 8, 2, 1},
                   {"bad-crc", 40, 0xEE, 0},     {"bad-kind", 9, 9, 1},
                   {"bad-reserved", 21, 1, 1},   {"bad-status", 26, 0x05, 1},
                   {"long-target", 31, 0x01, 1}, {"short-length", 0, 20, 0},
                   {"huge-length", 3, 0x7f, 0}};
    uint8_t tmp[4096];
    for (size_t i = 0; i < sizeof defects / sizeof defects[0]; i++) {
        memcpy(tmp, buf, clen);
        tmp[defects[i].at] = defects[i].val;
        if (defects[i].seal) reseal(tmp, clen);
        write_seed(dir, defects[i].name, 0, (uint8_t)i, tmp, clen);
    }
    /* Sealed variants: the fuzzer mutates these and the target fixes the
     * CRC, so mutations reach the field parser. */
    write_seed(dir, "sealed-kind-2", 2, 1, buf, clen);
    memcpy(tmp, buf, clen);
    tmp[40] ^= 0x55; /* would be a checksum error, sealed it parses */
    write_seed(dir, "sealed-bad-crc", 2, 2, tmp, clen);
    assert_int_equal(mp_frame_encode(&m, tmp, sizeof tmp, &w, 0), 0);
    write_seed(dir, "sealed-cache16", 2, 3, tmp, w);
    /* A good frame followed by a truncated one, and garbage. */
    memcpy(tmp, buf, clen);
    memcpy(tmp + clen, buf, clen / 2);
    write_seed(dir, "truncated-second", 0, 9, tmp, clen + clen / 2);
    write_seed(dir, "http", 0, 0, (const uint8_t *)"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    print_message("corpus written to %s\n", dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_check_value),
        cmocka_unit_test(test_crc32c_paths_agree),
        cmocka_unit_test(test_roundtrip_each_kind),
        cmocka_unit_test(test_roundtrip_empty),
        cmocka_unit_test(test_roundtrip_extremes),
        cmocka_unit_test(test_status_values),
        cmocka_unit_test(test_encode_refusals),
        cmocka_unit_test(test_decode_rejections),
        cmocka_unit_test(test_request_id_travels_with_requests_only),
        cmocka_unit_test(test_corrupt_every_byte),
        cmocka_unit_test(test_set_ttl_rewrites_only_ttl_and_checksum),
        cmocka_unit_test(test_stream_whole_in_place),
        cmocka_unit_test(test_stream_every_two_part_split),
        cmocka_unit_test(test_stream_one_byte_at_a_time),
        cmocka_unit_test(test_stream_random_splits),
        cmocka_unit_test(test_stream_oversize_at_once),
        cmocka_unit_test(test_stream_memory_follows_bytes),
        cmocka_unit_test(test_stream_api_misuse),
        cmocka_unit_test(test_write_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
