/*
 * Tests of the JSON codec (src/codec/json_codec.c): round trips through the
 * caller buffer and the heap path, strict rejection of malformed input (the
 * decoder is a trust boundary: every case must come back as an error with a
 * message, never a crash or a partial value), and the size and depth limits
 * in both directions.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/codec.h"
#include "moonpool/status.h"

static json_t *decode_ok(const mp_codec *c, const char *text)
{
    void *v = NULL;
    mp_codec_error err;
    int rc = mp_codec_decode(c, text, strlen(text), &v, &err);
    if (rc != 0) fail_msg("decode of '%s' failed: %s", text, err.text);
    assert_non_null(v);
    assert_string_equal(err.text, "");
    return v;
}

static int decode_bad(const mp_codec *c, const void *data, size_t len)
{
    void *v = (void *)1;
    mp_codec_error err;
    int rc = mp_codec_decode(c, data, len, &v, &err);
    assert_true(rc < 0);
    assert_null(v);
    assert_true(strlen(err.text) > 0); /* always a reason */
    return rc;
}

static void test_round_trip_small(void **unused)
{
    const mp_codec *c = mp_json_codec();
    assert_string_equal(c->name, "json");
    json_t *v = json_pack("{s:s, s:I, s:[i,b,n], s:f}", "op", "w1-7", "amount",
                          (json_int_t)1234567890123LL, "xs", 1, 1, "r", 0.5);
    assert_non_null(v);
    char buf[256];
    mp_bytes b;
    mp_codec_error err;
    assert_int_equal(mp_codec_encode(c, v, buf, sizeof buf, &b, &err), 0);
    assert_ptr_equal(b.data, buf); /* fits: no allocation */
    assert_null(b.owned);
    /* Compact and in insertion order: the exact bytes are the contract. */
    const char *want = "{\"op\":\"w1-7\",\"amount\":1234567890123,"
                       "\"xs\":[1,true,null],\"r\":0.5}";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);

    void *back = NULL;
    assert_int_equal(mp_codec_decode(c, b.data, b.len, &back, &err), 0);
    assert_true(json_equal(v, back));
    mp_codec_free_value(c, back);
    mp_bytes_release(&b);
    mp_bytes_release(&b); /* idempotent */
    json_decref(v);
}

static void test_round_trip_heap(void **unused)
{
    const mp_codec *c = mp_json_codec();
    json_t *arr = json_array();
    for (int i = 0; i < 1000; i++) json_array_append_new(arr, json_integer(i));
    char small[16];
    mp_bytes b;
    assert_int_equal(mp_codec_encode(c, arr, small, sizeof small, &b, NULL), 0);
    assert_non_null(b.owned);
    assert_ptr_equal(b.data, b.owned);
    assert_true(b.len > sizeof small);
    void *back = NULL;
    assert_int_equal(mp_codec_decode(c, b.data, b.len, &back, NULL), 0);
    assert_true(json_equal(arr, back));
    mp_codec_free_value(c, back);
    mp_bytes_release(&b);
    assert_null(b.owned);

    /* No caller buffer at all: always the heap. */
    assert_int_equal(mp_codec_encode(c, arr, NULL, 0, &b, NULL), 0);
    assert_non_null(b.owned);
    mp_bytes_release(&b);
    json_decref(arr);
}

static void test_unicode_and_escapes(void **unused)
{
    const mp_codec *c = mp_json_codec();
    json_t *v = decode_ok(c, "{\"k\":\"caf\\u00e9 \\\"q\\\" \xe2\x82\xac [{\"}");
    const char *s = json_string_value(json_object_get(v, "k"));
    assert_string_equal(s, "caf\xc3\xa9 \"q\" \xe2\x82\xac [{");
    char buf[128];
    mp_bytes b;
    assert_int_equal(mp_codec_encode(c, v, buf, sizeof buf, &b, NULL), 0);
    void *back = NULL;
    assert_int_equal(mp_codec_decode(c, b.data, b.len, &back, NULL), 0);
    assert_true(json_equal(v, back));
    mp_codec_free_value(c, back);
    mp_bytes_release(&b);
    json_decref(v);
}

static void test_malformed(void **unused)
{
    const mp_codec *c = mp_json_codec();
    static const char *const bad[] = {
        "",
        " ",
        "{",
        "}",
        "{\"a\":}",
        "{\"a\":1,}",
        "[1,2",
        "{\"a\":1} trailing",
        "{\"a\":1}{}",
        "{'a':1}",
        "{\"a\":01}",
        "{\"a\":1e999}",
        "{\"a\":99999999999999999999999}",
        "{\"a\":\"\\u0000\"}",  /* NUL in a string */
        "{\"a\":\"\\x41\"}",    /* bad escape */
        "{\"a\":\"\xff\xfe\"}", /* invalid UTF-8 */
        "{\"a\":\"\xc0\xaf\"}", /* overlong encoding */
        "{\"a\":1,\"a\":2}",    /* duplicate key */
        "{\"a\":NaN}",
        "{\"a\":tru}",
        "\"just a string\"",    /* scalar top level: refused by default */
        "42",
        "null",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = decode_bad(c, bad[i], strlen(bad[i]));
        if (rc != MP_EINVAL) fail_msg("input %zu '%s' gave %d", i, bad[i], rc);
    }
    /* Raw NUL bytes inside the buffer (length-delimited input). */
    static const char nul[] = {'{', '"', 'a', '"', ':', '1', '}', '\0', ' '};
    assert_int_equal(decode_bad(c, nul, sizeof nul), MP_EINVAL);
    static const char nul_in_str[] = {'[', '"', 'a', '\0', 'b', '"', ']'};
    assert_int_equal(decode_bad(c, nul_in_str, sizeof nul_in_str), MP_EINVAL);
    /* NULL data. */
    assert_int_equal(decode_bad(c, NULL, 0), MP_EINVAL);
    /* The message says where. */
    void *v = NULL;
    mp_codec_error err;
    assert_int_equal(mp_codec_decode(c, "{\"a\":1,\"a\":2}", 13, &v, &err), MP_EINVAL);
    assert_non_null(strstr(err.text, "duplicate"));
}

static void test_every_truncation_fails(void **unused)
{
    /* Every strict prefix of a valid message is an error, never a value. */
    const mp_codec *c = mp_json_codec();
    const char *text = "{\"op\":\"t9\",\"to\":\"acct-17\",\"amount\":250,"
                       "\"meta\":{\"xs\":[1,2,{\"y\":null}]}}";
    size_t n = strlen(text);
    for (size_t i = 0; i < n; i++) decode_bad(c, text, i);
    json_decref(decode_ok(c, text));
}

static void test_depth_limit(void **unused)
{
    const mp_codec *c = mp_json_codec();
    char text[2 * MP_JSON_DEFAULT_MAX_DEPTH + 8];
    /* Exactly the limit is fine. */
    int d = MP_JSON_DEFAULT_MAX_DEPTH;
    for (int i = 0; i < d; i++) text[i] = '[';
    for (int i = 0; i < d; i++) text[d + i] = ']';
    text[2 * d] = '\0';
    json_t *v = decode_ok(c, text);
    char buf[256];
    mp_bytes b;
    assert_int_equal(mp_codec_encode(c, v, buf, sizeof buf, &b, NULL), 0);
    mp_bytes_release(&b);
    /* One deeper is refused on both sides. */
    json_t *outer = json_array();
    json_array_append(outer, v);
    mp_codec_error err;
    assert_int_equal(mp_codec_encode(c, outer, buf, sizeof buf, &b, &err), MP_EINVAL);
    assert_non_null(strstr(err.text, "deeper"));
    assert_null(b.data);
    json_decref(outer);
    json_decref(v);
    for (int i = 0; i <= d; i++) text[i] = '[';
    for (int i = 0; i <= d; i++) text[d + 1 + i] = ']';
    text[2 * d + 2] = '\0';
    assert_int_equal(decode_bad(c, text, strlen(text)), MP_EINVAL);

    /* Brackets inside strings do not count. */
    json_decref(decode_ok(c, "[\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[\"]"));

    /* A hostile deep input is refused before parsing, whatever its length. */
    size_t big = 100000;
    char *deep = malloc(big);
    assert_non_null(deep);
    memset(deep, '[', big);
    assert_int_equal(mp_codec_decode(c, deep, big, (void **)&v, &err), MP_EINVAL);
    assert_non_null(strstr(err.text, "nesting"));
    free(deep);

    /* A custom codec with a small depth. */
    mp_json_custom jc;
    mp_json_limits lim = {.max_depth = 2};
    mp_json_custom_init(&jc, &lim);
    json_decref(decode_ok(&jc.codec, "{\"a\":[1]}"));
    assert_int_equal(decode_bad(&jc.codec, "{\"a\":[[1]]}", 11), MP_EINVAL);
}

static void test_size_limit(void **unused)
{
    mp_json_custom jc;
    mp_json_limits lim = {.max_bytes = 32};
    mp_json_custom_init(&jc, &lim);
    const mp_codec *c = &jc.codec;
    const char *ok = "{\"a\":\"012345678901234567890123\"}"; /* 32: the limit */
    assert_int_equal(strlen(ok), 32);
    json_t *v = decode_ok(c, ok);
    const char *big = "{\"a\":\"0123456789012345678901234\"}"; /* 33 */
    assert_int_equal(strlen(big), 33);
    assert_int_equal(decode_bad(c, big, strlen(big)), MP_ETOOBIG);

    mp_bytes b;
    mp_codec_error err;
    assert_int_equal(mp_codec_encode(c, v, NULL, 0, &b, &err), 0);
    assert_int_equal(b.len, 32);
    mp_bytes_release(&b);
    json_object_set_new(v, "b", json_integer(1));
    assert_int_equal(mp_codec_encode(c, v, NULL, 0, &b, &err), MP_ETOOBIG);
    assert_non_null(strstr(err.text, "limit"));
    assert_null(b.owned);
    json_decref(v);
}

static void test_top_level(void **unused)
{
    const mp_codec *c = mp_json_codec();
    json_t *s = json_string("x");
    mp_bytes b;
    char buf[16];
    assert_int_equal(mp_codec_encode(c, s, buf, sizeof buf, &b, NULL), MP_EINVAL);
    assert_int_equal(mp_codec_encode(c, NULL, buf, sizeof buf, &b, NULL), MP_EINVAL);

    mp_json_custom jc;
    mp_json_limits lim = {.any_top_level = true};
    mp_json_custom_init(&jc, &lim);
    assert_int_equal(mp_codec_encode(&jc.codec, s, buf, sizeof buf, &b, NULL), 0);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "\"x\"", 3);
    json_t *n = decode_ok(&jc.codec, "42");
    assert_int_equal(json_integer_value(n), 42);
    json_decref(n);
    json_decref(s);
    mp_codec_free_value(c, NULL); /* harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_small),
        cmocka_unit_test(test_round_trip_heap),
        cmocka_unit_test(test_unicode_and_escapes),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_every_truncation_fails),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_top_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
