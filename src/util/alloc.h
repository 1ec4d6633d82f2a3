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
/* Zeroed memory for a large table of randomly probed slots (hash maps), freed
 * with free(). From 4 MiB on it is 2 MiB-aligned and advised for huge pages
 * where the OS has them: a million-entry catalog is probed at random, and
 * with 4 KiB pages nearly every probe also missed the TLB (costly under
 * virtualisation). Below that, or without the advice, it is calloc. */
void *mp_util_calloc_table(size_t n, size_t size);

#endif
