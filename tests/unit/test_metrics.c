/*
 * Tests for the Prometheus text rendering of the node's operations endpoint
 * (src/host/metrics.c, mp__metrics_render): every sample has a HELP and a
 * TYPE line before it and a well-formed "name value" line, counters end in
 * _total, label values are escaped, and the snprintf-style length lets a
 * caller size its buffer exactly (a cut render is still NUL-terminated).
 * The HTTP side is tested with a running node in test_host and with real
 * processes in tests/cluster/test_cluster_metrics.sh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/metrics.h"

static void test_metrics_render_format(void **state)
{
    (void)state;
    mp_node_stats st;
    memset(&st, 0, sizeof st);
    st.calls_in = 42;
    st.activations = 3;
    st.mailbox_rejected = 7;
    st.calls_not_executed = 4;
    mp_node_latency call;
    memset(&call, 0, sizeof call);
    call.count = 12;
    call.sum_ns = 3 * MP_NS_PER_SEC / 2;
    for (size_t i = 0; i < MP_NODE_LATENCY_BOUNDS; i++) call.le[i] = i < 10 ? i : 10;
    mp_node_member_info mem[2] = {{"127.0.0.1:7001", 5, true, true, false},
                                  {"127.0.0.1:7002", 2, true, false, true}};
    mp__metrics_view v = {&st, "127.0.0.1:7001", "ba\"n\\k\n", 5, 1500 * MP_NS_PER_MS,
                          MP__READY_SERVING, &call, NULL, mem, 2, true};
    size_t need = mp__metrics_render(NULL, 0, &v);
    char *b = malloc(need + 1);
    assert_non_null(b);
    assert_int_equal(mp__metrics_render(b, need + 1, &v), need);
    assert_int_equal(strlen(b), need);
    assert_non_null(strstr(b, "\nmoonpool_calls_in_total 42\n"));
    assert_non_null(strstr(b, "\nmoonpool_activations 3\n"));
    assert_non_null(strstr(b, "\nmoonpool_mailbox_rejected_total 7\n"));
    assert_non_null(strstr(b, "\nmoonpool_calls_completed_total{outcome=\"not_executed\"} 4\n"));
    assert_non_null(strstr(b, "\nmoonpool_calls_completed_total{outcome=\"ok\"} 0\n"));
    assert_non_null(strstr(b, "\nmoonpool_uptime_seconds 1.500\n"));
    assert_non_null(strstr(b, "\nmoonpool_ready 1\n"));
    assert_non_null(strstr(b, "\nmoonpool_call_latency_seconds_bucket{le=\"0.0001\"} 0\n"));
    assert_non_null(strstr(b, "\nmoonpool_call_latency_seconds_bucket{le=\"0.001\"} 3\n"));
    assert_non_null(strstr(b, "\nmoonpool_call_latency_seconds_bucket{le=\"10\"} 10\n"));
    assert_non_null(strstr(b, "\nmoonpool_call_latency_seconds_bucket{le=\"+Inf\"} 12\n"));
    assert_non_null(strstr(b, "\nmoonpool_call_latency_seconds_sum 1.500000000\n"));
    assert_non_null(strstr(b, "\nmoonpool_call_latency_seconds_count 12\n"));
    assert_null(strstr(b, "persist_latency"));
    assert_non_null(strstr(b, "\nmoonpool_member_active{address=\"127.0.0.1:7002\",incarnation=\"2\"} 0\n"));
    assert_non_null(strstr(b, "\nmoonpool_member_live{address=\"127.0.0.1:7002\",incarnation=\"2\"} 1\n"));
    assert_non_null(strstr(b, "\nmoonpool_serving 1\n"));
    assert_non_null(strstr(b, "\nmoonpool_peer_connected{address=\"127.0.0.1:7002\"} 1\n"));
    assert_null(strstr(b, "moonpool_peer_connected{address=\"127.0.0.1:7001\"}")); /* itself */
    assert_non_null(strstr(b, "\nmoonpool_build_info{version=\""));
    assert_non_null(strstr(b, "moonpool_node_info{address=\"127.0.0.1:7001\","
                              "namespace=\"ba\\\"n\\\\k\\n\",incarnation=\"5\"} 1\n"));
    /* Line by line: HELP, TYPE, then samples of that name only. */
    char cur[128] = "";
    int samples = 0;
    for (char *line = strtok(b, "\n"); line; line = strtok(NULL, "\n")) {
        char name[128], type[32];
        if (sscanf(line, "# HELP %127s", name) == 1) {
            snprintf(cur, sizeof cur, "%s", name);
            continue;
        }
        if (sscanf(line, "# TYPE %127s %31s", name, type) == 2) {
            assert_string_equal(name, cur);
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                        strcmp(type, "histogram") == 0);
            size_t n = strlen(name);
            int is_total = n > 6 && strcmp(name + n - 6, "_total") == 0;
            assert_int_equal(is_total, strcmp(type, "counter") == 0);
            continue;
        }
        assert_true(line[0] != '#');
        assert_int_equal(strncmp(line, cur, strlen(cur)), 0);
        const char *rest = line + strlen(cur);
        /* a histogram's samples are name_bucket{le=..}, name_sum, name_count */
        if (strncmp(rest, "_bucket{", 8) == 0) rest += 7;
        else if (strncmp(rest, "_sum ", 5) == 0) rest += 4;
        else if (strncmp(rest, "_count ", 7) == 0) rest += 6;
        assert_true(*rest == ' ' || *rest == '{');
        assert_non_null(strrchr(line, ' '));
        samples++;
    }
    /* 21 node counters, uptime, ready, node_info, build_info, serving, one
     * histogram (16 bounds, +Inf, sum, count), two gauges of 2 members,
     * peer_connected of the other member, calls_completed by 4 outcomes */
    assert_int_equal(samples, 21 + 5 + 19 + 4 + 1 + 4);
    free(b);
}

static void test_metrics_render_cut(void **state)
{
    (void)state;
    mp_node_stats st;
    memset(&st, 0, sizeof st);
    mp__metrics_view v = {&st, "a", "n", 1, 0, MP__READY_STOPPING, NULL, NULL, NULL, 0, false};
    char small[64];
    size_t need = mp__metrics_render(small, sizeof small, &v);
    assert_true(need >= sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
    char *b = malloc(need + 1);
    assert_non_null(b);
    mp__metrics_render(b, need + 1, &v);
    assert_non_null(strstr(b, "\nmoonpool_ready 0\n"));
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_render_format),
        cmocka_unit_test(test_metrics_render_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
