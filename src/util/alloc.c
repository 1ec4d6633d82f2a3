/*
 * The allocation wrappers of util/alloc.h and their failure-injection hook.
 */
#include "util/alloc.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

_Thread_local long mp_util_alloc_fail_after = -1;

static bool alloc_should_fail(void)
{
    if (mp_util_alloc_fail_after < 0) return false;
    if (mp_util_alloc_fail_after == 0) return true;
    mp_util_alloc_fail_after--;
    return false;
}

void *mp_util_malloc(size_t n)
{
    return alloc_should_fail() ? NULL : malloc(n);
}

void *mp_util_calloc(size_t n, size_t size)
{
    return alloc_should_fail() ? NULL : calloc(n, size);
}

void *mp_util_realloc(void *p, size_t n)
{
    return alloc_should_fail() ? NULL : realloc(p, n);
}


#define TABLE_HUGE_MIN ((size_t)4 << 20)
#define HUGE_PAGE ((size_t)2 << 20)

void *mp_util_calloc_table(size_t n, size_t size)
{
    if (alloc_should_fail()) return NULL;
    if (size && n > SIZE_MAX / size) return NULL;
    size_t bytes = n * size;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= TABLE_HUGE_MIN) {
        void *p = NULL;
        if (posix_memalign(&p, HUGE_PAGE, bytes) != 0) return NULL;
        /* Advice only: refused, the table simply has small pages. */
        (void)madvise(p, bytes, MADV_HUGEPAGE);
        memset(p, 0, bytes);
        return p;
    }
#endif
    return calloc(n, size);
}
