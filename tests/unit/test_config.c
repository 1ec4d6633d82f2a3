/*
 * Tests for the node configuration parser (src/config/config.c) and its
 * file loader (tools/config_file.c).
 *
 * The parser's promise is that every mistake in a config file is reported
 * with the right file, the right line and a reason an operator can act on,
 * so most tests here feed a small broken text and check the exact line
 * number and the key words of the message. The good paths check every field,
 * the defaults, line-ending and comment handling, the command-line override
 * of the address, the mapping onto mp_node_config, and that the formatter's
 * output parses back to an equal config.
 *
 * The loader is not part of the runtime library (the lint keeps file I/O
 * out of src/), so its one source file is compiled into this test directly.
 * Files are written under the system temp directory; tests may use the OS.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "moonpool/config.h"



#define ORIGIN "test.conf"

static const char FULL[] =
    "# comment\n"                                                    /* 1 */
    "[cluster]\n"                                                    /* 2 */
    "namespace = bank\n"                                             /* 3 */
    "members = 127.0.0.1:7001, 127.0.0.1:7002, 127.0.0.1:7003\n"     /* 4 */
    "[node]\n"                                                       /* 5 */
    "address = 127.0.0.1:7002        # may be overridden by --id\n"  /* 6 */
    "data_dir = ./demo-data/node1\n"                                 /* 7 */
    "log_level = warn\n"                                             /* 8 */
    "[storage]\n"                                                    /* 9 */
    "provider = sqlite               # sqlite | postgres | memory\n" /* 10 */
    "path = ./demo-data/node1/state.db\n"                            /* 11 */
    "[timeouts]\n"                                                   /* 12 */
    "call = 250ms\n"                                                 /* 13 */
    "idle = 2h\n"                                                    /* 14 */
    "shutdown = 10s\n"                                               /* 15 */
    "[limits]\n"                                                     /* 16 */
    "max_message = 2MiB\n"                                           /* 17 */
    "max_pending_calls = 5000\n"                                     /* 18 */
    "mailbox_warn_depth = 0\n";                                      /* 19 */

/* Lines 1-3 of most error tests. */
#define BASE "[cluster]\nnamespace = bank\nmembers = 127.0.0.1:7001, 127.0.0.1:7002\n"

static int parse(const char *text, mp_config *c, mp_config_error *err)
{
    return mp_config_parse(text, strlen(text), ORIGIN, c, err);
}

/* Parse must fail with MP_EINVAL at `line`, the message must start with
 * "test.conf:LINE: " (or "test.conf: " for line 0) and contain `needle`. */
static void expect_error_rc(const char *text, size_t len, int rc_want, int line,
                            const char *needle)
{
    mp_config c;
    mp_config_error err;
    memset(&c, 0x5a, sizeof c);
    int rc = mp_config_parse(text, len, ORIGIN, &c, &err);
    if (rc != rc_want || err.line != line || !strstr(err.message, needle))
        print_error("text:\n%.*s\ngot rc %d line %d message '%s', want rc %d line %d '%s'\n",
                    (int)(len > 400 ? 400 : len), text, rc, err.line, err.message, rc_want,
                    line, needle);
    assert_int_equal(rc, rc_want);
    assert_int_equal(err.line, line);
    assert_non_null(strstr(err.message, needle));
    char prefix[64];
    if (line > 0) snprintf(prefix, sizeof prefix, ORIGIN ":%d: ", line);
    else snprintf(prefix, sizeof prefix, ORIGIN ": ");
    assert_memory_equal(err.message, prefix, strlen(prefix));
    /* A failed parse leaves nothing allocated and the output zeroed. */
    assert_null(c.arena_);
    assert_null(c.members);
    mp_config_free(&c);
}

static void expect_error(const char *text, int line, const char *needle)
{
    expect_error_rc(text, strlen(text), MP_EINVAL, line, needle);
}

/* format -> parse must give an equal config, and formatting that gives the
 * same text again (a fixed point). */
static void check_round_trip(const mp_config *c)
{
    int n = mp_config_format(c, NULL, 0);
    assert_true(n > 0);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(mp_config_format(c, buf, (size_t)n + 1), n);
    assert_int_equal(strlen(buf), (size_t)n);
    mp_config d;
    mp_config_error err;
    int rc = mp_config_parse(buf, (size_t)n, "formatted", &d, &err);
    if (rc) print_error("%s\n%s\n", err.message, buf);
    assert_int_equal(rc, MP_OK);
    assert_true(mp_config_equal(c, &d));
    char *buf2 = malloc((size_t)n + 1);
    assert_non_null(buf2);
    assert_int_equal(mp_config_format(&d, buf2, (size_t)n + 1), n);
    assert_string_equal(buf, buf2);
    free(buf2);
    free(buf);
    mp_config_free(&d);
}

/* ------------------------------------------------------------ good files */

static void test_full_file(void **state)
{
    (void)state;
    mp_config c;
    mp_config_error err;
    assert_int_equal(parse(FULL, &c, &err), MP_OK);
    assert_int_equal(err.line, 0);
    assert_string_equal(err.message, "");
    assert_string_equal(c.origin, ORIGIN);
    assert_string_equal(c.cluster_namespace, "bank");
    assert_int_equal(c.member_count, 3);
    assert_string_equal(c.members[0], "127.0.0.1:7001");
    assert_string_equal(c.members[1], "127.0.0.1:7002");
    assert_string_equal(c.members[2], "127.0.0.1:7003");
    assert_ptr_equal(c.address, c.members[1]);
    assert_string_equal(c.data_dir, "./demo-data/node1");
    assert_int_equal(c.log_level, MP_LOG_WARN);
    assert_int_equal(c.storage, MP_CONFIG_STORAGE_SQLITE);
    assert_string_equal(c.storage_path, "./demo-data/node1/state.db");
    assert_null(c.storage_conninfo);
    assert_int_equal(c.call_timeout_ns, 250ull * 1000000);
    assert_int_equal(c.idle_timeout_ns, 2ull * 3600 * 1000000000);
    assert_int_equal(c.shutdown_timeout_ns, 10ull * 1000000000);
    assert_int_equal(c.max_message, 2u * 1024 * 1024);
    assert_int_equal(c.max_pending_calls, 5000);
    assert_int_equal(c.mailbox_warn_depth, 0);
    check_round_trip(&c);
    mp_config_free(&c);
    assert_null(c.arena_);
    mp_config_free(&c); /* twice is harmless */
}

static void test_defaults(void **state)
{
    (void)state;
    mp_config c;
    assert_int_equal(parse("[cluster]\nnamespace=x\nmembers=localhost:1\n", &c, NULL), MP_OK);
    assert_string_equal(c.cluster_namespace, "x");
    assert_int_equal(c.member_count, 1);
    assert_null(c.address);
    assert_string_equal(c.data_dir, ".");
    assert_int_equal(c.log_level, MP_LOG_INFO);
    assert_int_equal(c.storage, MP_CONFIG_STORAGE_SQLITE);
    assert_string_equal(c.storage_path, "./state.db");
    assert_int_equal(c.call_timeout_ns, 30ull * 1000000000);
    assert_int_equal(c.idle_timeout_ns, 600ull * 1000000000);
    assert_int_equal(c.shutdown_timeout_ns, 10ull * 1000000000);
    assert_int_equal(c.max_message, 1024 * 1024);
    assert_int_equal(c.max_pending_calls, 1000000);
    assert_int_equal(c.mailbox_warn_depth, 10000);
    check_round_trip(&c);
    mp_config_free(&c);

    /* The default sqlite path follows data_dir, with or without a slash. */
    assert_int_equal(parse(BASE "[node]\ndata_dir = /var/lib/mp/\n", &c, NULL), MP_OK);
    assert_string_equal(c.storage_path, "/var/lib/mp/state.db");
    mp_config_free(&c);
    assert_int_equal(parse(BASE "[node]\ndata_dir = /var/lib/mp\n", &c, NULL), MP_OK);
    assert_string_equal(c.storage_path, "/var/lib/mp/state.db");
    mp_config_free(&c);
}

static void test_storage_providers(void **state)
{
    (void)state;
    mp_config c;
    assert_int_equal(parse(BASE "[storage]\nprovider = postgres\n"
                                "conninfo = host=db1 dbname=mp password=a#b  # c\n",
                           &c, NULL),
                     MP_OK);
    assert_int_equal(c.storage, MP_CONFIG_STORAGE_POSTGRES);
    assert_null(c.storage_path);
    assert_string_equal(c.storage_conninfo, "host=db1 dbname=mp password=a#b");
    check_round_trip(&c);
    mp_config_free(&c);

    /* A '#' right after the key's '=' is a comment, one after a later '='
     * is not: postgres passwords may hold '#'. */
    assert_int_equal(parse(BASE "[storage]\nprovider = postgres\n"
                                "conninfo=password=#x\n",
                           &c, NULL),
                     MP_OK);
    assert_string_equal(c.storage_conninfo, "password=#x");
    check_round_trip(&c);
    mp_config_free(&c);

    assert_int_equal(parse(BASE "[storage]\nprovider = memory\n", &c, NULL), MP_OK);
    assert_int_equal(c.storage, MP_CONFIG_STORAGE_MEMORY);
    assert_null(c.storage_path);
    assert_null(c.storage_conninfo);
    check_round_trip(&c);
    mp_config_free(&c);
}

static void test_crlf_bom_comments_whitespace(void **state)
{
    (void)state;
    static const char text[] =
        "\xEF\xBB\xBF# written on Windows\r\n"
        "\r\n"
        "  [ cluster ]  # section comment\r\n"
        "\tnamespace\t=\tbank.prod-1_a\t\r\n"
        "members=127.0.0.1:7001,127.0.0.1:7002   \r\n"
        "   # indented comment\r\n"
        "[node]\r\n"
        "address =127.0.0.1:7001#not a comment? no: part of the address\r\n";
    mp_config c;
    mp_config_error err;
    /* "127.0.0.1:7001#not" is one value (no blank before '#'): bad address. */
    assert_int_equal(parse(text, &c, &err), MP_EINVAL);
    assert_int_equal(err.line, 8);

    static const char good[] =
        "\xEF\xBB\xBF# written on Windows\r\n"
        "\r\n"
        "  [ cluster ]  # section comment\r\n"
        "\tnamespace\t=\tbank.prod-1_a\t\r\n"
        "members=127.0.0.1:7001,127.0.0.1:7002   \r\n"
        "   # indented comment\r\n"
        "[node]\r\n"
        "address =127.0.0.1:7001 #comment\r\n"
        "data_dir = /srv/my data   \r\n"
        "[timeouts]\r\n"
        "call = 5 s\r\n"
        "idle = 90m\r"; /* last line: CR but no LF */
    assert_int_equal(parse(good, &c, &err), MP_OK);
    assert_string_equal(c.cluster_namespace, "bank.prod-1_a");
    assert_int_equal(c.member_count, 2);
    assert_string_equal(c.members[1], "127.0.0.1:7002");
    assert_string_equal(c.address, "127.0.0.1:7001");
    assert_string_equal(c.data_dir, "/srv/my data");
    assert_int_equal(c.call_timeout_ns, 5ull * 1000000000);
    assert_int_equal(c.idle_timeout_ns, 90ull * 60 * 1000000000);
    check_round_trip(&c);
    mp_config_free(&c);

    /* No trailing newline, empty file parts. */
    assert_int_equal(parse("[cluster]\nnamespace = a\nmembers = h:1", &c, NULL), MP_OK);
    assert_string_equal(c.members[0], "h:1");
    mp_config_free(&c);
}

static void test_member_continuation(void **state)
{
    (void)state;
    mp_config c;
    mp_config_error err;
    assert_int_equal(parse("[cluster]\n"
                           "namespace = n\n"
                           "members = a:1, b:2,   # first rack\n"
                           "\n"
                           "  # second rack\n"
                           "          c:3,\n"
                           "          d:4\n"
                           "[node]\naddress = d:4\n",
                           &c, &err),
                     MP_OK);
    assert_int_equal(c.member_count, 4);
    assert_string_equal(c.members[2], "c:3");
    assert_string_equal(c.address, "d:4");
    mp_config_free(&c);

    /* 256 members with long names need many lines; the formatter wraps. */
    size_t cap = 256 * 80 + 256;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t n = (size_t)snprintf(text, cap, "[cluster]\nnamespace = n\nmembers = ");
    for (int i = 0; i < 256; i++)
        n += (size_t)snprintf(text + n, cap - n, "%s%s%052d.example:%d", i ? "," : "",
                              i % 4 == 0 && i ? "\n  " : " ", i, 1 + i);
    n += (size_t)snprintf(text + n, cap - n, "\n");
    assert_int_equal(mp_config_parse(text, n, ORIGIN, &c, &err), MP_OK);
    assert_int_equal(c.member_count, 256);
    assert_int_equal(strlen(c.members[255]), 64);
    check_round_trip(&c);
    assert_int_equal(mp_config_select_member(&c, 256, &err), MP_OK);
    check_round_trip(&c);
    mp_config_free(&c);
    free(text);
}

/* ------------------------------------------------------------ errors */

static void test_error_structure(void **state)
{
    (void)state;
    /* The message from the brief, with a hint. */
    expect_error(BASE "[node]\nadress = 127.0.0.1:7001\n", 5,
                 "unknown key 'adress' in [node] (did you mean 'address'?)");
    expect_error(BASE "[node]\nfoo = 1\n", 5, "unknown key 'foo' in [node]");
    expect_error(BASE "[nodes]\n", 4, "unknown section [nodes] (did you mean [node]?)");
    expect_error(BASE "[zzzzzzzz]\n", 4, "unknown section [zzzzzzzz]");
    expect_error(BASE "[node]\ncall = 1s\n", 5, "key 'call' belongs in [timeouts], not in [node]");
    expect_error(BASE "[node]\nlog_level = info\nlog_level = warn\n", 6,
                 "duplicate key 'log_level' in [node] (first at line 5)");
    expect_error(BASE "[node]\n[limits]\n[node]\n", 6, "duplicate section [node] (first at line 4)");
    expect_error("namespace = x\n", 1, "outside of any section");
    expect_error(BASE "[node]\njust words\n", 5, "expected 'key = value' or '[section]'");
    expect_error(BASE "[node]\n= x\n", 5, "missing key name");
    expect_error(BASE "[node\n", 4, "bad section header");
    expect_error(BASE "[node]\ndata_dir =   # nothing\n", 5, "empty value for 'data_dir'");
    expect_error(BASE "[node]\ndata_dir=#x\n", 5, "empty value for 'data_dir'");
    expect_error(BASE "[cluster]\n", 4, "duplicate section [cluster]");
}

static void test_error_missing(void **state)
{
    (void)state;
    expect_error("", 0, "missing section [cluster]");
    expect_error("# nothing\n[node]\n", 0, "missing section [cluster]");
    expect_error("# x\n[cluster]\nnamespace = a\n", 2, "missing required key 'members' in [cluster]");
    expect_error("[cluster]\nmembers = a:1\n", 1, "missing required key 'namespace' in [cluster]");
    expect_error(BASE "[storage]\nprovider = postgres\n", 5,
                 "provider postgres needs 'conninfo'");
}

static void test_error_values(void **state)
{
    (void)state;
    expect_error("[cluster]\nnamespace = ba nk\n", 2, "bad namespace 'ba nk'");
    expect_error("[cluster]\nnamespace = b/k\n", 2, "allowed characters");
    expect_error("[cluster]\nnamespace = "
                 "a234567890123456789012345678901234567890123456789012345678901234X\n",
                 2, "longer than 64 bytes");
    expect_error("[cluster]\nnamespace = x\nmembers = 1.2.3.4\n", 3, "bad member address '1.2.3.4'");
    expect_error("[cluster]\nnamespace = x\nmembers = 1.2.3.4:0\n", 3, "port 1..65535");
    expect_error("[cluster]\nnamespace = x\nmembers = 1.2.3.4:65536\n", 3, "bad member address");
    expect_error("[cluster]\nnamespace = x\nmembers = a:1, a:2, a:1\n", 3,
                 "duplicate member 'a:1' (first at line 3)");
    expect_error("[cluster]\nnamespace = x\nmembers = a:1,\n b:2,\n\n a:1\n", 6,
                 "duplicate member 'a:1' (first at line 3)");
    expect_error("[cluster]\nnamespace = x\nmembers = a:1,,b:2\n", 3, "empty item");
    expect_error("[cluster]\nnamespace = x\nmembers = a:1,\n", 3, "ends with ','");
    expect_error("[cluster]\nnamespace = x\nmembers = a:1,\n# c\n[node]\n", 3, "ends with ','");
    expect_error("[cluster]\nmembers = a:1,\nnamespace = x\n", 2, "ends with ','");
    expect_error(BASE "[node]\naddress = 127.0.0.1:7009\n", 5,
                 "address '127.0.0.1:7009' is not one of the members");
    expect_error(BASE "[node]\naddress = nope\n", 5, "bad address 'nope'");
    expect_error(BASE "[node]\nlog_level = verbose\n", 5, "bad log_level 'verbose'");
    expect_error(BASE "[node]\nlog_level = INFO\n", 5, "bad log_level");
    expect_error(BASE "[storage]\nprovider = mysql\n", 5, "unknown storage provider 'mysql'");
    expect_error(BASE "[storage]\nconninfo = host=x\n", 5,
                 "'conninfo' is only for provider postgres (provider is sqlite (the default))");
    expect_error(BASE "[storage]\npath = x.db\nprovider = memory\n", 5,
                 "'path' is only for provider sqlite (provider is memory)");

    /* Too many members: 257 distinct addresses on continuation lines. */
    char *text = malloc(257 * 24 + 64);
    assert_non_null(text);
    size_t n = (size_t)sprintf(text, "[cluster]\nnamespace = x\nmembers = h:1");
    for (int i = 2; i <= 257; i++) n += (size_t)sprintf(text + n, ",\n h:%d", i);
    expect_error(text, 3 + 256, "too many members (at most 256)");
    free(text);
}

static void test_error_numbers(void **state)
{
    (void)state;
    expect_error(BASE "[timeouts]\ncall = 30\n", 5, "needs a unit (ms, s, m, h), e.g. 30s");
    expect_error(BASE "[timeouts]\ncall = 30sec\n", 5, "unknown unit 'sec' in '30sec'");
    expect_error(BASE "[timeouts]\ncall = s\n", 5, "bad duration 's'");
    expect_error(BASE "[timeouts]\ncall = -5s\n", 5, "bad duration '-5s'");
    expect_error(BASE "[timeouts]\ncall = 1.5s\n", 5, "unknown unit '.5s'");
    expect_error(BASE "[timeouts]\ncall = 0ms\n", 5, "'call' must be between 1ms and 24h");
    expect_error(BASE "[timeouts]\ncall = 25h\n", 5, "'call' must be between 1ms and 24h (got '25h')");
    expect_error(BASE "[timeouts]\nidle = 999ms\n", 5, "'idle' must be between 1s and 168h");
    expect_error(BASE "[timeouts]\nshutdown = 99999999999999999999999h\n", 5, "must be between");
    expect_error(BASE "[timeouts]\nshutdown = 18446744073709551615h\n", 5, "must be between");
    expect_error(BASE "[limits]\nmax_message = 1048576\n", 5, "needs a unit (B, KiB, MiB, GiB)");
    expect_error(BASE "[limits]\nmax_message = 1MB\n", 5, "unknown unit 'MB'");
    expect_error(BASE "[limits]\nmax_message = 2GiB\n", 5,
                 "'max_message' must be between 4KiB and 1GiB");
    expect_error(BASE "[limits]\nmax_message = 4095B\n", 5, "must be between 4KiB and 1GiB");
    expect_error(BASE "[limits]\nmax_pending_calls = 0\n", 5,
                 "'max_pending_calls' must be between 1 and 1000000000");
    expect_error(BASE "[limits]\nmax_pending_calls = 10k\n", 5, "bad number '10k'");
    expect_error(BASE "[limits]\nmax_pending_calls = 0x10\n", 5, "bad number");
    expect_error(BASE "[limits]\nmailbox_warn_depth = 1000000001\n", 5, "must be between 0 and");

    /* The bounds themselves are accepted. */
    mp_config c;
    assert_int_equal(parse(BASE "[timeouts]\ncall = 1ms\nidle = 168h\nshutdown = 3600s\n"
                                "[limits]\nmax_message = 1GiB\nmax_pending_calls = 1\n"
                                "mailbox_warn_depth = 1000000000\n",
                           &c, NULL),
                     MP_OK);
    assert_int_equal(c.call_timeout_ns, 1000000);
    assert_int_equal(c.idle_timeout_ns, 168ull * 3600 * 1000000000);
    assert_int_equal(c.shutdown_timeout_ns, 3600ull * 1000000000);
    assert_int_equal(c.max_message, 1024u * 1024 * 1024);
    check_round_trip(&c);
    mp_config_free(&c);
    assert_int_equal(parse(BASE "[limits]\nmax_message = 4096B\n", &c, NULL), MP_OK);
    assert_int_equal(c.max_message, 4096);
    mp_config_free(&c);
}

static void test_error_bytes_and_limits(void **state)
{
    (void)state;
    static const char nul[] = BASE "[node]\nlog_level = in\0fo\n";
    expect_error_rc(nul, sizeof nul - 1, MP_EINVAL, 5, "NUL byte");
    expect_error(BASE "[node]\nlog_level = in\x01" "fo\n", 5, "control character 0x01");
    expect_error(BASE "[node]\nlog_level = in\x7f" "fo\n", 5, "control character 0x7f");
    expect_error(BASE "[node]\nlog_level = in\rfo\n", 5, "stray carriage return");
    expect_error(BASE "\r\r\n", 4, "stray carriage return");

    /* Line length: 4096 bytes pass (a comment), 4097 do not. */
    char *text = malloc(2 * MP_CONFIG_MAX_LINE + 256);
    assert_non_null(text);
    strcpy(text, BASE "#");
    size_t n = strlen(text);
    memset(text + n, 'x', MP_CONFIG_MAX_LINE - 1);
    n += MP_CONFIG_MAX_LINE - 1;
    strcpy(text + n, "\r\n");
    mp_config c;
    assert_int_equal(parse(text, &c, NULL), MP_OK);
    mp_config_free(&c);
    strcpy(text + n, "x\n");
    expect_error(text, 4, "line is longer than 4096 bytes");
    free(text);

    /* Text size: 1 MiB of comments passes, one byte more does not. */
    size_t big = MP_CONFIG_MAX_SIZE + 1;
    text = malloc(big);
    assert_non_null(text);
    memset(text, '\n', big);
    memcpy(text, BASE, strlen(BASE));
    assert_int_equal(mp_config_parse(text, big - 1, ORIGIN, &c, NULL), MP_OK);
    mp_config_free(&c);
    expect_error_rc(text, big, MP_ETOOBIG, 0, "larger than 1 MiB");
    free(text);

    /* Non-ASCII bytes are fine in free text (UTF-8 paths), shown as '?' in
     * messages. */
    assert_int_equal(parse(BASE "[node]\ndata_dir = /srv/d\xc3\xa9j\xc3\xa0\n", &c, NULL), MP_OK);
    assert_string_equal(c.data_dir, "/srv/d\xc3\xa9j\xc3\xa0");
    check_round_trip(&c);
    mp_config_free(&c);
    expect_error(BASE "[n\xc3\xa9ud]\n", 4, "unknown section [n??ud]");

    /* Arguments. */
    mp_config_error err;
    assert_int_equal(mp_config_parse(NULL, 3, ORIGIN, &c, &err), MP_EINVAL);
    assert_int_equal(mp_config_parse("", 0, ORIGIN, NULL, &err), MP_EINVAL);
    assert_int_equal(mp_config_parse(NULL, 0, NULL, &c, &err), MP_EINVAL);
    assert_string_equal(err.message, "<config>: missing section [cluster] (it needs 'namespace' "
                                     "and 'members')");
}

static void test_long_origin_and_value_in_message(void **state)
{
    (void)state;
    char origin[400];
    memset(origin, 'd', sizeof origin);
    memcpy(origin + sizeof origin - 12, "/clust.conf", 12);
    char text[300];
    snprintf(text, sizeof text, BASE "[node]\nlog_level = %0200d\n", 7);
    mp_config c;
    mp_config_error err;
    assert_int_equal(mp_config_parse(text, strlen(text), origin, &c, &err), MP_EINVAL);
    /* The origin is cut at the front, the reason survives. */
    assert_memory_equal(err.message, "...", 3);
    assert_non_null(strstr(err.message, "/clust.conf:5: bad log_level '000"));
    assert_non_null(strstr(err.message, "...' (use debug"));
    assert_true(strlen(err.message) < sizeof err.message - 1);
}

/* ------------------------------------------------------------ overrides */

static void test_address_override(void **state)
{
    (void)state;
    mp_config c;
    mp_config_error err;
    mp_node_config nc;
    assert_int_equal(parse(BASE, &c, &err), MP_OK);
    assert_null(c.address);
    /* No address yet: the runtime struct cannot be filled. */
    assert_int_equal(mp_config_to_node_config(&c, &nc), MP_EINVAL);

    assert_int_equal(mp_config_set_address(&c, "127.0.0.1:7003", &err), MP_EINVAL);
    assert_string_equal(err.message,
                        ORIGIN ": address '127.0.0.1:7003' is not one of the 2 members");
    assert_null(c.address);
    assert_int_equal(mp_config_set_address(&c, "127.0.0.1:7002", &err), MP_OK);
    assert_ptr_equal(c.address, c.members[1]);

    assert_int_equal(mp_config_select_member(&c, 0, &err), MP_EINVAL);
    assert_string_equal(err.message, ORIGIN ": member id 0 out of range 1..2");
    assert_int_equal(mp_config_select_member(&c, 3, &err), MP_EINVAL);
    assert_ptr_equal(c.address, c.members[1]); /* unchanged by a failure */
    assert_int_equal(mp_config_select_member(&c, 1, &err), MP_OK);
    assert_string_equal(c.address, "127.0.0.1:7001");
    check_round_trip(&c);
    mp_config_free(&c);

    /* The command line overrides an address given in the file. */
    assert_int_equal(parse(FULL, &c, &err), MP_OK);
    assert_string_equal(c.address, "127.0.0.1:7002");
    assert_int_equal(mp_config_select_member(&c, 3, &err), MP_OK);
    assert_string_equal(c.address, "127.0.0.1:7003");
    mp_config_free(&c);

    assert_int_equal(mp_config_set_address(NULL, "a:1", &err), MP_EINVAL);
    assert_int_equal(mp_config_set_address(&c, "a:1", NULL), MP_EINVAL); /* freed config */
}

static void test_to_node_config(void **state)
{
    (void)state;
    mp_config c;
    mp_node_config nc, defaults;
    assert_int_equal(parse(FULL, &c, NULL), MP_OK);
    memset(&nc, 0x5a, sizeof nc);
    assert_int_equal(mp_config_to_node_config(&c, &nc), MP_OK);
    mp_node_config_init(&defaults);
    assert_ptr_equal(nc.cluster_namespace, c.cluster_namespace);
    assert_ptr_equal(nc.self_addr, c.address);
    assert_ptr_equal(nc.members, c.members);
    assert_int_equal(nc.member_count, 3);
    assert_int_equal(nc.incarnation, defaults.incarnation);
    assert_int_equal(nc.call_timeout_ns, 250ull * 1000000);
    assert_int_equal(nc.idle_timeout_ns, 2ull * 3600 * 1000000000);
    assert_int_equal(nc.max_message, 2u * 1024 * 1024);
    assert_int_equal(nc.max_pending_calls, 5000);
    assert_int_equal(nc.mailbox_warn_depth, 0);
    assert_null(nc.on_mailbox_depth);
    assert_null(nc.hook_ud);
    assert_null(nc.storage);
    mp_config_free(&c);

    /* The config defaults agree with the runtime's own. */
    assert_int_equal(parse(BASE "[node]\naddress = 127.0.0.1:7001\n", &c, NULL), MP_OK);
    assert_int_equal(mp_config_to_node_config(&c, &nc), MP_OK);
    assert_int_equal(nc.call_timeout_ns, defaults.call_timeout_ns);
    assert_int_equal(nc.idle_timeout_ns, defaults.idle_timeout_ns);
    assert_int_equal(nc.max_message, defaults.max_message);
    assert_int_equal(nc.max_pending_calls, defaults.max_pending_calls);
    mp_config_free(&c);
    assert_int_equal(mp_config_to_node_config(NULL, &nc), MP_EINVAL);
}

/* [timeouts] heartbeat and peer_timeout: defaults, ranges, the cross-key
 * rule (peer_timeout > 2 x heartbeat, or 0s = disabled) reported at the
 * right line, the mapping onto mp_node_config, the round trip. */
static void test_liveness_keys(void **state)
{
    (void)state;
    const uint64_t ms = 1000000ull, s = 1000ull * ms;
    mp_config c;
    mp_node_config nc;
    assert_int_equal(parse(BASE "[node]\naddress = 127.0.0.1:7001\n", &c, NULL), MP_OK);
    assert_int_equal(c.heartbeat_ns, 1 * s);
    assert_int_equal(c.peer_timeout_ns, 10 * s);
    assert_int_equal(mp_config_to_node_config(&c, &nc), MP_OK);
    assert_int_equal(nc.heartbeat_ns, 1 * s);
    assert_int_equal(nc.peer_timeout_ns, 10 * s);
    mp_config_free(&c);

    assert_int_equal(parse(BASE "[node]\naddress = 127.0.0.1:7001\n"
                                "[timeouts]\nheartbeat = 250ms\npeer_timeout = 2s\n",
                           &c, NULL),
                     MP_OK);
    assert_int_equal(c.heartbeat_ns, 250 * ms);
    assert_int_equal(c.peer_timeout_ns, 2 * s);
    assert_int_equal(mp_config_to_node_config(&c, &nc), MP_OK);
    assert_int_equal(nc.heartbeat_ns, 250 * ms);
    assert_int_equal(nc.peer_timeout_ns, 2 * s);
    char buf[1024];
    int n = mp_config_format(&c, buf, sizeof buf);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    assert_non_null(strstr(buf, "shutdown = 10s\nheartbeat = 250ms\npeer_timeout = 2s\n"));
    check_round_trip(&c);
    mp_config d;
    assert_int_equal(parse(BASE "[node]\naddress = 127.0.0.1:7001\n"
                                "[timeouts]\nheartbeat = 250ms\npeer_timeout = 3s\n",
                           &d, NULL),
                     MP_OK);
    assert_false(mp_config_equal(&c, &d));
    mp_config_free(&d);
    mp_config_free(&c);

    /* 0s disables the timeout: the node gets MP_NODE_NO_PEER_TIMEOUT. */
    assert_int_equal(parse(BASE "[node]\naddress = 127.0.0.1:7001\n"
                                "[timeouts]\npeer_timeout = 0s\nheartbeat = 1h\n",
                           &c, NULL),
                     MP_OK);
    assert_int_equal(c.peer_timeout_ns, 0);
    assert_int_equal(mp_config_to_node_config(&c, &nc), MP_OK);
    assert_int_equal(nc.peer_timeout_ns, MP_NODE_NO_PEER_TIMEOUT);
    assert_int_equal(nc.heartbeat_ns, 3600 * s);
    check_round_trip(&c);
    mp_config_free(&c);

    /* Just over twice is enough. */
    assert_int_equal(parse(BASE "[timeouts]\nheartbeat = 1s\npeer_timeout = 2001ms\n", &c, NULL),
                     MP_OK);
    mp_config_free(&c);

    /* Ranges, and the cross-key rule at the line of the key the file set
     * (peer_timeout when both are). */
    expect_error(BASE "[timeouts]\nheartbeat = 9ms\n", 5,
                 "'heartbeat' must be between 10ms and 1h (got '9ms')");
    expect_error(BASE "[timeouts]\nheartbeat = 61m\n", 5, "'heartbeat' must be between");
    expect_error(BASE "[timeouts]\nheartbeat = 1\n", 5, "needs a unit");
    expect_error(BASE "[timeouts]\npeer_timeout = 25h\n", 5,
                 "'peer_timeout' must be between 0ms and 24h");
    expect_error(BASE "[timeouts]\nheartbeat = 5s\n", 5,
                 "'peer_timeout' (10s, the default) must be more than twice 'heartbeat' (5s)");
    expect_error(BASE "[timeouts]\npeer_timeout = 2s\n", 5,
                 "'peer_timeout' (2s) must be more than twice 'heartbeat' (1s, the default), "
                 "or 0s to disable it");
    expect_error(BASE "[timeouts]\npeer_timeout = 2s\ncall = 1s\nheartbeat = 1s\n", 5,
                 "'peer_timeout' (2s) must be more than twice 'heartbeat' (1s)");
    expect_error(BASE "[timeouts]\nheartbeat = 1s\n\npeer_timeout = 1500ms\n", 7,
                 "must be more than twice");
    expect_error(BASE "[timeouts]\nheartbeat = 1s\nheartbeat = 2s\n", 6, "duplicate key");
    expect_error(BASE "[timeouts]\nheartbeet = 1s\n", 5, "did you mean 'heartbeat'");
}

/* [security] secret_file and the connection caps: parsed, defaulted,
 * range-checked, formatted back. */
static void test_security_keys(void **state)
{
    (void)state;
    mp_config c;
    mp_config_error e;
    assert_int_equal(parse(BASE "[node]\naddress = 127.0.0.1:7001\n", &c, NULL), MP_OK);
    assert_null(c.secret_file);
    assert_int_equal(c.max_connections, MP_DEFAULT_MAX_CONNECTIONS);
    assert_int_equal(c.max_connections_per_ip, MP_DEFAULT_MAX_CONNECTIONS_PER_IP);
    check_round_trip(&c);
    mp_config_free(&c);
    assert_int_equal(parse(BASE "[limits]\nmax_connections = 10\nmax_connections_per_ip = 3\n"
                                "[security]\nsecret_file = /etc/mp/secret\n",
                           &c, NULL),
                     MP_OK);
    assert_string_equal(c.secret_file, "/etc/mp/secret");
    assert_int_equal(c.max_connections, 10);
    assert_int_equal(c.max_connections_per_ip, 3);
    check_round_trip(&c);
    mp_config_free(&c);
    assert_int_equal(parse(BASE "[limits]\nmax_connections = 0\n", &c, &e), MP_EINVAL);
    assert_non_null(strstr(e.message, "max_connections"));
    assert_int_equal(parse(BASE "[security]\nsecret_file =\n", &c, &e), MP_EINVAL);
    assert_int_equal(parse(BASE "[security]\nsecret = x\n", &c, &e), MP_EINVAL);
    assert_non_null(strstr(e.message, "unknown key 'secret' in [security]"));
}

/* [security] tls_* (all three or none) and [node] metrics_address,
 * log_format: parsed, round-tripped, and refused when half-set or unknown. */
static void test_tls_and_operations_keys(void **state)
{
    (void)state;
    mp_config c;
    mp_config_error e;
    assert_int_equal(parse(BASE "[node]\naddress = 127.0.0.1:7001\nmetrics_address = 127.0.0.1:9100\n"
                                "log_format = json\n"
                                "[security]\ntls_cert = /p/n1.pem\ntls_key = /p/n1.key\ntls_ca = /p/ca.pem\n",
                           &c, NULL),
                     MP_OK);
    assert_string_equal(c.tls_cert, "/p/n1.pem");
    assert_string_equal(c.tls_key, "/p/n1.key");
    assert_string_equal(c.tls_ca, "/p/ca.pem");
    assert_string_equal(c.metrics_address, "127.0.0.1:9100");
    assert_true(c.log_json);
    check_round_trip(&c);
    mp_config_free(&c);
    assert_int_equal(parse(BASE "[node]\naddress = 127.0.0.1:7001\n", &c, NULL), MP_OK);
    assert_null(c.tls_cert);
    assert_null(c.metrics_address);
    assert_false(c.log_json);
    mp_config_free(&c);
    assert_int_equal(parse(BASE "[security]\ntls_cert = /p/n1.pem\ntls_ca = /p/ca.pem\n", &c, &e),
                     MP_EINVAL);
    assert_non_null(strstr(e.message, "go together"));
    assert_int_equal(parse(BASE "[node]\nlog_format = yaml\n", &c, &e), MP_EINVAL);
    assert_non_null(strstr(e.message, "use text or json"));
}

/* [membership]: mode, the lease keys, their ranges and cross-key rules,
 * mapped onto mp_node_config and formatted back. */
static void test_membership_keys(void **state)
{
    (void)state;
    const uint64_t ms = 1000000ull, s = 1000ull * ms;
    mp_config c;
    mp_node_config nc;
    char buf[2048];
    /* Default: static, nothing set, the node config's defaults (0). */
    assert_int_equal(parse(BASE "[node]\naddress = 127.0.0.1:7001\n", &c, NULL), MP_OK);
    assert_false(c.membership_table);
    assert_int_equal(c.lease_ns, 0);
    assert_int_equal(c.membership_votes, 0);
    assert_int_equal(mp_config_to_node_config(&c, &nc), MP_OK);
    assert_false(nc.membership);
    assert_int_equal(nc.lease_ns, 0);
    int n = mp_config_format(&c, buf, sizeof buf);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    assert_non_null(strstr(buf, "\n[membership]\nmode = static\n"));
    assert_null(strstr(buf, "lease"));
    check_round_trip(&c);
    mp_config_free(&c);

    /* Table mode with every key: parsed, passed on, formatted back. */
    assert_int_equal(parse(BASE "[node]\naddress = 127.0.0.1:7001\n"
                                "[membership]\nmode = table\nlease = 2s\nmargin = 400ms\n"
                                "poll = 250ms\nvotes = 3\n",
                           &c, NULL),
                     MP_OK);
    assert_true(c.membership_table);
    assert_int_equal(c.lease_ns, 2 * s);
    assert_int_equal(c.lease_margin_ns, 400 * ms);
    assert_int_equal(c.membership_poll_ns, 250 * ms);
    assert_int_equal(c.membership_votes, 3);
    assert_int_equal(mp_config_to_node_config(&c, &nc), MP_OK);
    assert_true(nc.membership);
    assert_int_equal(nc.lease_ns, 2 * s);
    assert_int_equal(nc.lease_margin_ns, 400 * ms);
    assert_int_equal(nc.membership_poll_ns, 250 * ms);
    assert_int_equal(nc.membership_votes, 3);
    assert_null(nc.on_declared_dead); /* the host sets it */
    n = mp_config_format(&c, buf, sizeof buf);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    assert_non_null(strstr(buf, "\n[membership]\nmode = table\nlease = 2s\nmargin = 400ms\n"
                                "poll = 250ms\nvotes = 3\n"));
    check_round_trip(&c);
    mp_config d;
    assert_int_equal(parse(BASE "[node]\naddress = 127.0.0.1:7001\n"
                                "[membership]\nmode = table\nlease = 2s\nmargin = 400ms\n"
                                "poll = 250ms\nvotes = 2\n",
                           &d, NULL),
                     MP_OK);
    assert_false(mp_config_equal(&c, &d));
    mp_config_free(&d);
    mp_config_free(&c);

    /* Table mode alone: the lease follows peer_timeout in the node; the
     * bounds are inclusive (margin and poll equal to the lease). */
    assert_int_equal(parse(BASE "[storage]\nprovider = postgres\nconninfo = dbname=x\n"
                                "[membership]\nmode = table\n",
                           &c, NULL),
                     MP_OK);
    assert_true(c.membership_table);
    assert_int_equal(c.lease_ns, 0);
    check_round_trip(&c);
    mp_config_free(&c);
    assert_int_equal(parse(BASE "[timeouts]\nheartbeat = 200ms\npeer_timeout = 1s\n"
                                "[membership]\nmode = table\nmargin = 500ms\npoll = 500ms\n",
                           &c, NULL),
                     MP_OK);
    mp_config_free(&c);
    assert_int_equal(parse(BASE "[membership]\nmode = table\nlease = 100ms\nmargin = 1ms\n"
                                "poll = 10ms\nvotes = 256\n",
                           &c, NULL),
                     MP_OK);
    check_round_trip(&c);
    mp_config_free(&c);
    assert_int_equal(parse(BASE "[membership]\nmode = static\n", &c, NULL), MP_OK);
    assert_false(c.membership_table);
    mp_config_free(&c);

    /* Errors: each names its line and says what to do. */
    expect_error(BASE "[membership]\nmode = dynamic\n", 5,
                 "bad membership mode 'dynamic' (use static or table)");
    expect_error(BASE "[storage]\nprovider = memory\n[membership]\nmode = table\n", 7,
                 "'mode = table' keeps the membership table in storage every member shares: "
                 "use provider sqlite (one file for all nodes) or postgres; memory storage is "
                 "private to each process");
    expect_error(BASE "[membership]\nlease = 2s\n", 5,
                 "'lease' applies only with 'mode = table' in [membership] (the mode is "
                 "static, the default)");
    expect_error(BASE "[membership]\nmode = static\nvotes = 2\n", 6,
                 "'votes' applies only with 'mode = table' in [membership] (the mode is static)");
    expect_error(BASE "[membership]\nmode = table\nlease = 99ms\n", 6,
                 "'lease' must be between 100ms and 1h (got '99ms')");
    expect_error(BASE "[membership]\nmode = table\nlease = 61m\n", 6,
                 "'lease' must be between 100ms and 1h (got '61m')");
    expect_error(BASE "[membership]\nmode = table\nmargin = 0ms\n", 6,
                 "'margin' must be between 1ms and 1h (got '0ms')");
    expect_error(BASE "[membership]\nmode = table\npoll = 9ms\n", 6,
                 "'poll' must be between 10ms and 1h (got '9ms')");
    expect_error(BASE "[membership]\nmode = table\nvotes = 0\n", 6,
                 "'votes' must be between 1 and 256 (got '0')");
    expect_error(BASE "[membership]\nmode = table\nvotes = 257\n", 6,
                 "'votes' must be between 1 and 256 (got '257')");
    expect_error(BASE "[membership]\nmode = table\nvotes = two\n", 6,
                 "bad number 'two' for 'votes'");
    expect_error(BASE "[membership]\nmode = table\nlease = 1s\nmargin = 1001ms\n", 7,
                 "'margin' (1001ms) must be at most the lease (1s)");
    expect_error(BASE "[membership]\nmode = table\nlease = 1s\npoll = 2s\n", 7,
                 "'poll' (2s) must be at most the lease (1s)");
    expect_error(BASE "[timeouts]\nheartbeat = 200ms\npeer_timeout = 1s\n"
                      "[membership]\nmode = table\nmargin = 501ms\n",
                 9, "'margin' (501ms) must be at most the lease (500ms, peer_timeout / 2)");
    expect_error(BASE "[timeouts]\nheartbeat = 10ms\npeer_timeout = 150ms\n"
                      "[membership]\nmode = table\n",
                 8, "the lease (peer_timeout / 2 = 75ms, the default) must be between 100ms "
                    "and 1h: set 'lease' in [membership]");
    expect_error(BASE "[timeouts]\npeer_timeout = 3h\n[membership]\nmode = table\n", 7,
                 "the lease (peer_timeout / 2 = 90m, the default) must be between");
    expect_error(BASE "[membership]\nmode = table\nlease = 2s\nlease = 3s\n", 7,
                 "duplicate key 'lease' in [membership]");
    expect_error(BASE "[membership]\nleese = 2s\n", 5, "did you mean 'lease'");
    expect_error(BASE "[membership]\nmembers = 127.0.0.1:1\n", 5,
                 "key 'members' belongs in [cluster], not in [membership]");
    expect_error(BASE "[timeouts]\nlease = 2s\n", 5,
                 "key 'lease' belongs in [membership], not in [timeouts]");
    expect_error(BASE "[membershp]\n", 4, "did you mean [membership]");
}

static void test_names_match_runtime(void **state)
{
    (void)state;
    for (int l = MP_LOG_DEBUG; l <= MP_LOG_OFF; l++) {
        mp_log_level back;
        assert_int_equal(mp_log_level_parse(mp_config_log_level_name((mp_log_level)l), &back),
                         MP_OK);
        assert_int_equal(back, l);
    }
    assert_string_equal(mp_config_log_level_name((mp_log_level)9), "?");
    assert_string_equal(mp_config_storage_name(MP_CONFIG_STORAGE_POSTGRES), "postgres");
    assert_string_equal(mp_config_storage_name((mp_config_storage)7), "?");
}

/* ------------------------------------------------------------ format */

static void test_format_buffer(void **state)
{
    (void)state;
    mp_config c;
    assert_int_equal(parse(FULL, &c, NULL), MP_OK);
    int n = mp_config_format(&c, NULL, 0);
    assert_true(n > 100);
    char small[32];
    memset(small, 'z', sizeof small);
    /* Too small: snprintf semantics, a NUL-terminated prefix. */
    assert_int_equal(mp_config_format(&c, small, sizeof small), n);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, "[cluster]\nnamespace = bank\n", 27);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(mp_config_format(&c, buf, (size_t)n + 1), n);
    assert_non_null(strstr(buf, "call = 250ms\nidle = 2h\nshutdown = 10s\n"));
    assert_non_null(strstr(buf, "max_message = 2MiB\n"));
    assert_non_null(strstr(buf, "members = 127.0.0.1:7001, 127.0.0.1:7002, 127.0.0.1:7003\n"));
    free(buf);
    assert_int_equal(mp_config_format(NULL, small, sizeof small), MP_EINVAL);
    assert_int_equal(mp_config_format(&c, NULL, 5), MP_EINVAL);

    /* Canonical units: 90s stays 90s, 120s becomes 2m, 3072KiB becomes 3MiB. */
    mp_config d;
    assert_int_equal(parse(BASE "[timeouts]\ncall = 90s\nidle = 120s\n"
                                "[limits]\nmax_message = 3072KiB\n",
                           &d, NULL),
                     MP_OK);
    n = mp_config_format(&d, NULL, 0);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    mp_config_format(&d, buf, (size_t)n + 1);
    assert_non_null(strstr(buf, "call = 90s\nidle = 2m\n"));
    assert_non_null(strstr(buf, "max_message = 3MiB\n"));
    free(buf);
    assert_false(mp_config_equal(&c, &d));
    assert_true(mp_config_equal(&d, &d));
    mp_config_free(&d);
    mp_config_free(&c);
}

/* ------------------------------------------------------------ files */

static void tmp_path(char *buf, size_t cap, const char *name)
{
    const char *dir = getenv("TMPDIR");
    snprintf(buf, cap, "%s/mp_test_config_%ld_%s", dir && *dir ? dir : "/tmp", (long)getpid(),
             name);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[512];
    mp_config c;
    mp_config_error err;
    tmp_path(path, sizeof path, "missing.conf");
    assert_int_equal(mp_config_load(path, &c, &err), MP_ENOTFOUND);
    assert_int_equal(err.line, 0);
    assert_memory_equal(err.message, path, strlen(path));
    assert_non_null(strstr(err.message, ": cannot open config file: No such file"));

    tmp_path(path, sizeof path, "cluster.conf");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(BASE "[node]\nadress = 127.0.0.1:7001\n", f);
    fclose(f);
    assert_int_equal(mp_config_load(path, &c, &err), MP_EINVAL);
    assert_int_equal(err.line, 5);
    char want[600];
    snprintf(want, sizeof want, "%s:5: unknown key 'adress' in [node]", path);
    assert_memory_equal(err.message, want, strlen(want));

    f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(FULL, 1, sizeof FULL - 1, f);
    fclose(f);
    assert_int_equal(mp_config_load(path, &c, &err), MP_OK);
    assert_string_equal(c.origin, path);
    assert_string_equal(c.address, "127.0.0.1:7002");
    mp_config_free(&c);

    /* Over 1 MiB: rejected without parsing. */
    f = fopen(path, "wb");
    assert_non_null(f);
    for (unsigned i = 0; i <= MP_CONFIG_MAX_SIZE; i++) fputc('\n', f);
    fclose(f);
    assert_int_equal(mp_config_load(path, &c, &err), MP_ETOOBIG);
    assert_non_null(strstr(err.message, "larger than 1 MiB"));
    unlink(path);

    /* A directory is not a config file. */
    const char *dir = getenv("TMPDIR");
    assert_int_equal(mp_config_load(dir && *dir ? dir : "/tmp", &c, &err), MP_EIO);
    assert_non_null(strstr(err.message, "cannot read config file"));
    assert_null(c.arena_);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_storage_providers),
        cmocka_unit_test(test_crlf_bom_comments_whitespace),
        cmocka_unit_test(test_member_continuation),
        cmocka_unit_test(test_error_structure),
        cmocka_unit_test(test_error_missing),
        cmocka_unit_test(test_error_values),
        cmocka_unit_test(test_error_numbers),
        cmocka_unit_test(test_error_bytes_and_limits),
        cmocka_unit_test(test_long_origin_and_value_in_message),
        cmocka_unit_test(test_address_override),
        cmocka_unit_test(test_to_node_config),
        cmocka_unit_test(test_liveness_keys),
        cmocka_unit_test(test_security_keys),
        cmocka_unit_test(test_tls_and_operations_keys),
        cmocka_unit_test(test_membership_keys),
        cmocka_unit_test(test_names_match_runtime),
        cmocka_unit_test(test_format_buffer),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
