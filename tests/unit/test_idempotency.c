/*
 * Exactly once for callers that retry (src/runtime/idem.c, node.h): a
 * request retried with the same idempotency key gets the first reply and
 * does not run again, from whichever node it comes; keys are validated;
 * a reply too large to keep is answered MP_EALREADY; the error classes of
 * node.h ("What an error says") are what mp_call_status_class returns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "counter_actor.h"
#include "moonpool/node.h"
#include "moonpool/sim.h"
#include "sim_cluster.h"

#define SEC MP_SIM_NS_PER_S

static int keyed_call(sc_cluster *c, int from, const char *key, const char *method,
                      const void *p, size_t len, const char *idem, sc_reply *o)
{
    mp_ref r;
    mp_node *node = sc_node(c, from);
    assert_non_null(node);
    assert_int_equal(mp_ref_get(node, "Counter", key, &r), MP_OK);
    o->sim = sc_sim(c);
    mp_call_opts opts = {.timeout_ns = 5 * SEC, .idempotency_key = idem};
    return mp_call(node, &r, method, p, len, &opts, sc_on_reply, o);
}

static int64_t keyed_add(sc_cluster *c, int from, const char *key, int64_t d,
                         const char *idem)
{
    sc_reply o;
    memset(&o, 0, sizeof o);
    assert_int_equal(keyed_call(c, from, key, "add", &d, sizeof d, idem, &o), MP_OK);
    sc_wait(c, &o, 1);
    assert_int_equal(o.status, 0);
    return o.value;
}

static void test_keyed_retry_gets_the_first_reply_and_runs_once(void **state)
{
    sc_cluster *c = counter_cluster(3, 71);
    assert_int_equal(keyed_add(c, 0, "acct", 5, "op-1"), 5);
    /* The retry, from this node and from the others (forwarded to the
     * activation, or through another gateway): the first reply. */
    for (int from = 0; from < 3; from++) assert_int_equal(keyed_add(c, from, "acct", 5, "op-1"), 5);
    /* Another key runs; no key always runs. */
    assert_int_equal(keyed_add(c, 1, "acct", 5, "op-2"), 10);
    assert_int_equal(keyed_add(c, 2, "acct", 5, NULL), 15);
    /* Keys belong to one actor: the same key on another actor runs there. */
    assert_int_equal(keyed_add(c, 0, "other", 7, "op-1"), 7);
    sc_reply g = sc_call_wait(c, 1, "Counter", "acct", "get", NULL, 0, 0, 10 * SEC);
    assert_int_equal(g.value, 15);
    counter_cluster_free(c);
}

static void test_bad_idempotency_keys_are_refused_at_once(void **state)
{
    sc_cluster *c = counter_cluster(1, 72);
    sc_reply o;
    memset(&o, 0, sizeof o);
    char long_key[MP_IDEMPOTENCY_KEY_MAX + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    const char *bad[] = {"", "has space", "tab\tkey", long_key};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(keyed_call(c, 0, "acct", "add", NULL, 0, bad[i], &o), MP_EINVAL);
    long_key[MP_IDEMPOTENCY_KEY_MAX] = '\0'; /* exactly the maximum: fine */
    assert_int_equal(keyed_call(c, 0, "acct", "add", NULL, 0, long_key, &o), MP_OK);
    sc_wait(c, &o, 1);
    assert_int_equal(o.status, 0);
    counter_cluster_free(c);
}

static void test_reply_too_large_to_keep_is_answered_already(void **state)
{
    sc_cluster *c = counter_cluster(2, 73);
    static uint8_t payload[MP_IDEMPOTENCY_REPLY_MAX_BYTES + 100];
    memset(payload, 'x', sizeof payload);
    sc_reply o[2];
    memset(o, 0, sizeof o);
    assert_int_equal(keyed_call(c, 0, "big", "echo", payload, sizeof payload, "e-1", &o[0]), MP_OK);
    sc_wait(c, &o[0], 1);
    assert_int_equal(o[0].status, 0);
    assert_int_equal(o[0].len, sizeof payload);
    assert_int_equal(keyed_call(c, 1, "big", "echo", payload, sizeof payload, "e-1", &o[1]), MP_OK);
    sc_wait(c, &o[1], 1);
    assert_int_equal(o[1].status, MP_EALREADY);
    counter_cluster_free(c);
}

static void test_error_classes_follow_node_h(void **state)
{
    const int not_run[] = {MP_EUNAVAIL, MP_EQUEUEFULL, MP_EINVAL, MP_ENOTYPE,
                           MP_ENOMETHOD, MP_ETOOBIG, MP_EACTIVATION, MP_EDEADLOCK,
                           MP_EFORWARDS, MP_ENAMESPACE, MP_EVERSION};
    for (size_t i = 0; i < sizeof not_run / sizeof not_run[0]; i++) {
        assert_int_equal(mp_call_status_class(not_run[i], 0), MP_CALL_NOT_EXECUTED);
        assert_int_equal(mp_call_status_class(not_run[i], 1), MP_CALL_NOT_EXECUTED);
    }
    const int maybe[] = {MP_EINDOUBT, MP_ETIMEDOUT, MP_ESTORAGE, MP_ECONNRESET};
    for (size_t i = 0; i < sizeof maybe / sizeof maybe[0]; i++)
        assert_int_equal(mp_call_status_class(maybe[i], 0), MP_CALL_MAY_HAVE_RUN);
    /* Returned by mp_call: the call never left. Through the callback: this
     * node shut down (or ran out of memory) with the call out. */
    assert_int_equal(mp_call_status_class(MP_ECLOSED, 1), MP_CALL_NOT_EXECUTED);
    assert_int_equal(mp_call_status_class(MP_ECLOSED, 0), MP_CALL_MAY_HAVE_RUN);
    assert_int_equal(mp_call_status_class(MP_ENOMEM, 0), MP_CALL_MAY_HAVE_RUN);
    assert_int_equal(mp_call_status_class(0, 0), MP_CALL_EXECUTED);
    assert_int_equal(mp_call_status_class(MP_EACTOR, 0), MP_CALL_EXECUTED);
    assert_int_equal(mp_call_status_class(MP_EALREADY, 0), MP_CALL_EXECUTED);
    assert_string_equal(mp_call_class_name(MP_CALL_MAY_HAVE_RUN), "may have executed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyed_retry_gets_the_first_reply_and_runs_once),
        cmocka_unit_test(test_bad_idempotency_keys_are_refused_at_once),
        cmocka_unit_test(test_reply_too_large_to_keep_is_answered_already),
        cmocka_unit_test(test_error_classes_follow_node_h),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
