/*
 * libFuzzer target for the node configuration parser (src/config/config.c).
 *
 * Input: the config text itself, any bytes. A config file is operator input,
 * and the parser's promise is "a clear error, never a crash": ASan/UBSan
 * catch memory and arithmetic bugs, libFuzzer's leak check catches a failed
 * parse that keeps memory. On top of that the target checks properties:
 *
 *   - a failure returns MP_EINVAL or MP_ETOOBIG with a NUL-terminated
 *     message that starts with the origin, a line number that exists in the
 *     text, and the output left zeroed (nothing allocated);
 *   - a success satisfies the documented invariants (member count and
 *     uniqueness, address among members, storage keys per provider, ranges);
 *   - it round-trips: mp_config_format's text parses to an equal config, the
 *     same text again when formatted (a fixed point), and the same config
 *     once more with CRLF line endings; choosing a member as the address
 *     round-trips too.
 *
 * Any violated property traps, so libFuzzer saves the input as a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moonpool/config.h"

#define CHECK(c)                    \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

static char *format_alloc(const mp_config *c, size_t *len)
{
    int n = mp_config_format(c, NULL, 0);
    CHECK(n > 0);
    char *buf = malloc((size_t)n + 1);
    CHECK(buf != NULL);
    CHECK(mp_config_format(c, buf, (size_t)n + 1) == n);
    CHECK(strlen(buf) == (size_t)n);
    *len = (size_t)n;
    return buf;
}

static void check_round_trip(const mp_config *c)
{
    size_t n, n2;
    char *text = format_alloc(c, &n);
    mp_config d;
    mp_config_error err;
    CHECK(mp_config_parse(text, n, "formatted", &d, &err) == MP_OK);
    CHECK(mp_config_equal(c, &d));
    char *again = format_alloc(&d, &n2);
    CHECK(n2 == n && memcmp(text, again, n) == 0);
    free(again);
    mp_config_free(&d);

    /* The same text with CRLF line endings. */
    size_t lines = 0;
    for (size_t i = 0; i < n; i++) lines += text[i] == '\n';
    char *crlf = malloc(n + lines);
    CHECK(crlf != NULL);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\n') crlf[o++] = '\r';
        crlf[o++] = text[i];
    }
    CHECK(mp_config_parse(crlf, o, "crlf", &d, &err) == MP_OK);
    CHECK(mp_config_equal(c, &d));
    mp_config_free(&d);
    free(crlf);
    free(text);
}

static void check_invariants(const mp_config *c)
{
    CHECK(c->arena_ != NULL && c->cluster_namespace != NULL);
    size_t ns = strlen(c->cluster_namespace);
    CHECK(ns >= 1 && ns <= MP_CONFIG_NAMESPACE_MAX);
    CHECK(c->member_count >= 1 && c->member_count <= MP_CONFIG_MAX_MEMBERS);
    int self = 0;
    for (size_t i = 0; i < c->member_count; i++) {
        size_t l = strlen(c->members[i]);
        CHECK(l >= 3 && l <= MP_CONFIG_ADDR_MAX);
        for (size_t j = 0; j < i; j++) CHECK(strcmp(c->members[i], c->members[j]) != 0);
        self += c->address == c->members[i];
    }
    CHECK(c->address == NULL || self == 1);
    CHECK(c->data_dir != NULL && c->data_dir[0] != '\0');
    CHECK((c->storage == MP_CONFIG_STORAGE_SQLITE) == (c->storage_path != NULL));
    CHECK((c->storage == MP_CONFIG_STORAGE_POSTGRES) == (c->storage_conninfo != NULL));
    CHECK(c->call_timeout_ns >= 1000000 && c->call_timeout_ns % 1000000 == 0);
    CHECK(c->idle_timeout_ns >= 1000000000 && c->shutdown_timeout_ns >= 1000000);
    CHECK(c->max_message >= 4096 && c->max_message <= (1u << 30));
    CHECK(c->max_pending_calls >= 1 && c->max_pending_calls <= 1000000000);
    CHECK(c->mailbox_warn_depth <= 1000000000);
    CHECK(c->log_level >= MP_LOG_DEBUG && c->log_level <= MP_LOG_OFF);

    mp_node_config nc;
    int rc = mp_config_to_node_config(c, &nc);
    CHECK(c->address ? rc == MP_OK : rc == MP_EINVAL);
    if (rc == MP_OK) CHECK(nc.self_addr == c->address && nc.member_count == c->member_count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); /* libFuzzer entry */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mp_config c;
    mp_config_error err;
    int rc = mp_config_parse((const char *)data, size, "fuzz.conf", &c, &err);
    if (rc != MP_OK) {
        CHECK(rc == MP_EINVAL || rc == MP_ETOOBIG);
        CHECK(c.arena_ == NULL && c.members == NULL);
        CHECK(memchr(err.message, '\0', sizeof err.message) != NULL);
        CHECK(strncmp(err.message, "fuzz.conf:", 10) == 0);
        size_t lines = 1;
        for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
        CHECK(err.line >= 0 && (size_t)err.line <= lines);
        return 0;
    }
    check_invariants(&c);
    check_round_trip(&c);
    if (mp_config_select_member(&c, c.member_count, &err) == MP_OK) {
        CHECK(c.address == c.members[c.member_count - 1]);
        check_round_trip(&c);
    } else {
        CHECK(0);
    }
    mp_config_free(&c);
    return 0;
}
