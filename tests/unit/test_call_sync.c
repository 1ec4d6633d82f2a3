/*
 * mp_call_sync on the real backend: success with a NUL-terminated copy,
 * the callee's error with its message, the call's own timeout ending the
 * wait, a nested call refused, bad arguments refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "moonpool/call_sync.h"
#include "moonpool/env_uv.h"
#include "moonpool/node.h"

static int nested_status = 1;

static void h_echo(mp_actor *self, void *inst, mp_msg *msg, const void *p, size_t len)
{
    mp_reply(msg, p, len);
}

static void h_fail(mp_actor *self, void *inst, mp_msg *msg, const void *p, size_t len)
{
    mp_reply_error(msg, MP_EACTOR, "no funds");
}

static void h_silent(mp_actor *self, void *inst, mp_msg *msg, const void *p, size_t len)
{
    /* Never replies: only the caller's timeout can end the call. */
}

static void h_nested(mp_actor *self, void *inst, mp_msg *msg, const void *p, size_t len)
{
    nested_status = mp_call_sync(mp_actor_node(self), mp_actor_ref(self), "echo", "x", 1,
                                 NULL, NULL, NULL);
    mp_reply(msg, NULL, 0);
}

static const mp_method_def methods[] = {
    {"echo", h_echo}, {"fail", h_fail}, {"silent", h_silent}, {"nested", h_nested}};
static const mp_actor_type t_type = {.name = "T", .methods = methods, .method_count = 4};

typedef struct fixture {
    mp_env *env;
    mp_node *node;
    mp_ref ref;
} fixture;

static int setup(void **state)
{
    static fixture f;
    static const char *self = "127.0.0.1:0";
    mp_node_config cfg;
    mp_node_config_init(&cfg);
    cfg.cluster_namespace = "t";
    cfg.self_addr = self;
    cfg.members = &self;
    cfg.member_count = 1;
    f.env = mp_env_uv_create(NULL, 7);
    if (!f.env || mp_node_create(f.env, &cfg, &f.node) != 0) return -1;
    if (mp_node_register_type(f.node, &t_type) != 0 || mp_node_start(f.node) != 0) return -1;
    if (mp_ref_get(f.node, "T", "a", &f.ref) != 0) return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    mp_node_shutdown(f->node, 100000000ull, NULL, NULL);
    mp_env_uv_run(f->env);
    return mp_env_uv_destroy(f->env);
}

static void test_reply_is_a_terminated_copy(void **state)
{
    fixture *f = *state;
    char *reply = NULL;
    size_t len = 99;
    assert_int_equal(mp_call_sync(f->node, &f->ref, "echo", "abc", 3, NULL, &reply, &len), 0);
    assert_non_null(reply);
    assert_int_equal(len, 3);
    assert_string_equal(reply, "abc");
    free(reply);
    /* Empty payload: an empty string, not NULL. */
    assert_int_equal(mp_call_sync(f->node, &f->ref, "echo", NULL, 0, NULL, &reply, &len), 0);
    assert_non_null(reply);
    assert_int_equal(len, 0);
    assert_string_equal(reply, "");
    free(reply);
    /* No reply wanted. */
    assert_int_equal(mp_call_sync(f->node, &f->ref, "echo", "x", 1, NULL, NULL, NULL), 0);
}

static void test_errors_carry_their_message(void **state)
{
    fixture *f = *state;
    char *reply = NULL;
    assert_int_equal(mp_call_sync(f->node, &f->ref, "fail", NULL, 0, NULL, &reply, NULL),
                     MP_EACTOR);
    assert_string_equal(reply, "no funds");
    free(reply);
    assert_int_equal(mp_call_sync(f->node, &f->ref, "nope", NULL, 0, NULL, &reply, NULL),
                     MP_ENOMETHOD);
    free(reply);
}

static void test_timeout_ends_the_wait(void **state)
{
    fixture *f = *state;
    mp_call_opts opts = {.timeout_ns = 20000000ull};
    char *reply = NULL;
    mp_ref other;
    assert_int_equal(mp_ref_get(f->node, "T", "silent-one", &other), 0);
    assert_int_equal(mp_call_sync(f->node, &other, "silent", NULL, 0, &opts, &reply, NULL),
                     MP_ETIMEDOUT);
    free(reply);
}

static void test_nested_call_refused(void **state)
{
    fixture *f = *state;
    mp_ref other;
    assert_int_equal(mp_ref_get(f->node, "T", "nester", &other), 0);
    assert_int_equal(mp_call_sync(f->node, &other, "nested", NULL, 0, NULL, NULL, NULL), 0);
    assert_int_equal(nested_status, MP_EBUSY);
}

static void test_bad_arguments(void **state)
{
    fixture *f = *state;
    char *reply = (char *)"untouched";
    assert_int_equal(mp_call_sync(NULL, &f->ref, "echo", NULL, 0, NULL, &reply, NULL),
                     MP_EINVAL);
    assert_null(reply);
    assert_int_equal(mp_call_sync(f->node, NULL, "echo", NULL, 0, NULL, NULL, NULL), MP_EINVAL);
    assert_int_equal(mp_call_sync(f->node, &f->ref, NULL, NULL, 0, NULL, NULL, NULL), MP_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_is_a_terminated_copy),
        cmocka_unit_test(test_errors_carry_their_message),
        cmocka_unit_test(test_timeout_ends_the_wait),
        cmocka_unit_test(test_nested_call_refused),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
