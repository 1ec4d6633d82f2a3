/*
 * The allocation wrappers of util/alloc.h and their failure-injection hook.
 */
#include "util/alloc.h"

#include <stdbool.h>
#include <stdlib.h>

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

