/*
 * Allocation for moonpool's own containers and runtime structures, with a
 * test hook that makes allocations fail on demand, so tests can prove that an
 * out-of-memory path leaves every structure consistent (the SQLite way).
 *
 * Test hook: while mp_util_alloc_fail_after >= 0, that many more allocations
 * succeed and every later one fails (returns NULL) until the hook is set back
 * to -1 (the default). Thread-local so that tests of one node thread cannot
 * disturb another. It costs one branch per allocation, never per operation.
 */
#ifndef MP_UTIL_ALLOC_H
#define MP_UTIL_ALLOC_H

#include <stddef.h>

extern _Thread_local long mp_util_alloc_fail_after;
void *mp_util_malloc(size_t n);
void *mp_util_calloc(size_t n, size_t size);
void *mp_util_realloc(void *p, size_t n);

#endif
