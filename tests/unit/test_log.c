/*
 * Tests for log line rendering (mp_log_render, src/env/env_common.c): the
 * wall-clock RFC 3339 stamp, the simulator's seconds stamp, the JSON format,
 * escaping of bytes from outside in both formats, and cutting an over-long
 * line without breaking an escape or the JSON object. The real env must
 * stamp lines with the wall clock, the simulator with its own clock.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "moonpool/env.h"
#include "moonpool/env_uv.h"

/* 2026-12-04T14:30:01.123Z */
#define T_WALL (UINT64_C(1796394601) * MP_NS_PER_SEC + 123456789u)

static void test_log_text_wall(void **state)
{
    (void)state;
    char b[256];
    size_t n = mp_log_render(b, sizeof b, MP_LOG_FORMAT_TEXT, 1, T_WALL, "127.0.0.1:7001",
                             MP_LOG_INFO, "node running");
    assert_string_equal(b, "2026-12-04T14:30:01.123Z 127.0.0.1:7001 info: node running");
    assert_int_equal(n, strlen(b));
}

static void test_log_text_sim_time(void **state)
{
    (void)state;
    char b[256];
    mp_log_render(b, sizeof b, MP_LOG_FORMAT_TEXT, 0, 12 * MP_NS_PER_SEC + 250 * MP_NS_PER_US,
                  NULL, MP_LOG_WARN, "x");
    assert_string_equal(b, "12.000250 - warn: x");
}

static void test_log_text_escapes(void **state)
{
    (void)state;
    char b[256];
    mp_log_render(b, sizeof b, MP_LOG_FORMAT_TEXT, 0, 0, "n", MP_LOG_INFO,
                  "a\nb\x1b[31m\\c\xff\"");
    assert_string_equal(b, "0.000000 n info: a\\x0ab\\x1b[31m\\\\c\\xff\"");
}

static void test_log_json(void **state)
{
    (void)state;
    char b[256];
    mp_log_render(b, sizeof b, MP_LOG_FORMAT_JSON, 1, T_WALL, "n\"1", MP_LOG_ERROR,
                  "say \"hi\"\\\n\x01");
    assert_string_equal(b, "{\"ts\":\"2026-12-04T14:30:01.123Z\",\"level\":\"error\","
                           "\"node\":\"n\\\"1\",\"msg\":\"say \\\"hi\\\"\\\\\\u000a\\u0001\"}");
}

static void test_log_cut(void **state)
{
    (void)state;
    char b[80];
    char msg[200];
    memset(msg, '\n', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    size_t n = mp_log_render(b, sizeof b, MP_LOG_FORMAT_JSON, 0, 0, "n", MP_LOG_INFO, msg);
    assert_int_equal(n, strlen(b));
    assert_true(n < sizeof b);
    /* still one closed JSON object, escapes whole */
    assert_memory_equal(b + n - 2, "\"}", 2);
    const char *m = strstr(b, "\"msg\":\"") + 7;
    assert_int_equal((size_t)(b + n - 2 - m) % 6, 0);
    n = mp_log_render(b, sizeof b, MP_LOG_FORMAT_TEXT, 0, 0, "n", MP_LOG_INFO, msg);
    assert_int_equal(n, strlen(b));
    m = strstr(b, ": ") + 2;
    assert_int_equal((size_t)(b + n - m) % 4, 0);
}

static void test_log_format_parse(void **state)
{
    (void)state;
    mp_log_format f = MP_LOG_FORMAT_TEXT;
    assert_int_equal(mp_log_format_parse("json", &f), 0);
    assert_int_equal(f, MP_LOG_FORMAT_JSON);
    assert_int_equal(mp_log_format_parse("text", &f), 0);
    assert_int_equal(f, MP_LOG_FORMAT_TEXT);
    assert_int_equal(mp_log_format_parse("JSON", &f), MP_EINVAL);
    assert_int_equal(mp_log_format_parse(NULL, &f), MP_EINVAL);
}

static char last[512];
static void sink(void *ud, mp_log_level level, const char *msg)
{
    (void)ud, (void)level;
    snprintf(last, sizeof last, "%s", msg);
}

static void test_log_real_env_is_wall_clock(void **state)
{
    (void)state;
    mp_env *env = mp_env_uv_create(NULL, 1);
    assert_non_null(env);
    env->log_level = MP_LOG_DEBUG;
    env->log_sink = sink;
    env->name = "n";
    mp_env_log(env, MP_LOG_INFO, "hello %d", 7);
    /* "YYYY-MM-DDTHH:MM:SS.mmmZ n info: hello 7" */
    assert_int_equal(strlen(last), 24 + strlen(" n info: hello 7"));
    assert_int_equal(last[4], '-');
    assert_int_equal(last[10], 'T');
    assert_int_equal(last[23], 'Z');
    assert_string_equal(last + 24, " n info: hello 7");
    env->log_format = MP_LOG_FORMAT_JSON;
    mp_env_log(env, MP_LOG_INFO, "hello");
    assert_memory_equal(last, "{\"ts\":\"", 7);
    assert_int_equal(mp_env_uv_destroy(env), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_text_wall),
        cmocka_unit_test(test_log_text_sim_time),
        cmocka_unit_test(test_log_text_escapes),
        cmocka_unit_test(test_log_json),
        cmocka_unit_test(test_log_cut),
        cmocka_unit_test(test_log_format_parse),
        cmocka_unit_test(test_log_real_env_is_wall_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
