/*
 * Micro benchmark of the wire format: frame encode, decode (in place and
 * split in two), CRC32C (hardware and table paths). Reports, never asserts,
 * speed.
 *
 * Run: build/bench/bench_wire
 * (Formerly test_wire's MP_WIRE_BENCH=1 test.)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moonpool/status.h"
#include "util/crc32c.h"
#include "wire/frame.h"

/* A failed check ends the benchmark: its figures would mean nothing. */
#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                 \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

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


static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void)
{
    enum { N = 2000000, BATCH = 1000 };
    uint8_t payload[100];
    memset(payload, 'x', sizeof payload);
    mp_frame f = simple_frame(MP_FRAME_REQUEST);
    f.payload = mp_bytes_make(payload, sizeof payload);
    size_t fsize = mp_frame_encoded_size(&f);
    uint8_t *buf = malloc(fsize * BATCH);
    CHECK(buf != NULL);
    size_t w;
    volatile uint64_t sink = 0;

    double t0 = now_sec();
    for (int i = 0; i < N; i++) {
        f.correlation_id = (uint64_t)i;
        int rc = mp_frame_encode(&f, buf + (size_t)(i % BATCH) * fsize, fsize, &w, 0);
        sink += (uint64_t)rc + w;
    }
    double enc = now_sec() - t0;

    mp_frame_decoder dec;
    CHECK(mp_frame_decoder_init(&dec, 0) == 0);
    mp_frame g;
    t0 = now_sec();
    for (int i = 0; i < N / BATCH; i++) {
        mp_frame_decoder_feed(&dec, buf, fsize * BATCH);
        while (mp_frame_decoder_next(&dec, &g) == 1) sink += g.correlation_id;
    }
    double decs = now_sec() - t0;
    /* Worst case for copies: every frame split in two. */
    t0 = now_sec();
    int nsplit = N / 10;
    for (int i = 0; i < nsplit; i++) {
        mp_frame_decoder_feed(&dec, buf, fsize / 2);
        while (mp_frame_decoder_next(&dec, &g) == 1) sink++;
        mp_frame_decoder_feed(&dec, buf + fsize / 2, fsize - fsize / 2);
        while (mp_frame_decoder_next(&dec, &g) == 1) sink++;
    }
    double spl = now_sec() - t0;
    mp_frame_decoder_free(&dec);

    uint8_t *big = malloc(1 << 20);
    CHECK(big != NULL);
    memset(big, 1, 1 << 20);
    t0 = now_sec();
    for (int i = 0; i < 200; i++) sink += mp_crc32c(big, 1 << 20);
    double crc = now_sec() - t0;
    t0 = now_sec();
    for (int i = 0; i < 50; i++) sink += mp_crc32c_sw_update(0, big, 1 << 20);
    double crcsw = now_sec() - t0;
    free(big);

    double mb = (double)fsize * N / 1e6;
    printf("wire bench: frame %zu bytes (100-byte payload)\n", fsize);
    printf("  encode          %10.0f frames/s %8.1f MB/s\n", N / enc, mb / enc);
    printf("  decode in place %10.0f frames/s %8.1f MB/s\n", N / decs, mb / decs);
    printf("  decode split    %10.0f frames/s %8.1f MB/s\n", nsplit / spl,
           (double)fsize * nsplit / 1e6 / spl);
    printf("  crc32c %s    %8.1f MB/s; table path %8.1f MB/s\n",
           mp_crc32c_hw_available() ? "hw" : "sw", 200 * 1.048576 / crc, 50 * 1.048576 / crcsw);
    (void)sink;
    free(buf);
    return 0;
}
