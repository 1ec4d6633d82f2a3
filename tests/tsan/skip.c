/*
 * Linked into every unit test in a ThreadSanitizer build (MP_TSAN) only.
 *
 * Why: TSan cannot follow a process that forks after it ran threads and
 * then starts threads in the child ("dup thread with used id"; libuv's
 * threadpool threads of the parent never exit). test_storage's
 * test_sqlite_concurrent_first_open does exactly that on purpose (several
 * node processes opening one SQLite file); it tests processes, not
 * threads, and runs in every other build. So the TSan build skips the
 * cmocka tests named by the pattern in MP_TSAN_SKIP (cmocka's own
 * wildcards), set by `make tsan`, instead of editing the tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

__attribute__((constructor)) static void mp_tsan_skip(void)
{
    const char *pattern = getenv("MP_TSAN_SKIP");
    if (pattern && *pattern) cmocka_set_skip_filter(pattern);
}
