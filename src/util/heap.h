/*
 * Intrusive binary min-heap, ordered by (key, seq).
 *
 * Built for call timeouts: every outgoing call inserts a node (key = its
 * deadline) and almost every node is removed again before it fires, because
 * the reply came first. So removal of an arbitrary node must be O(log n) and
 * cheap: each node remembers its position in the heap array (`index`), and
 * the heap keeps that field current on every move.
 *
 * Intrusive: the caller embeds an mp_heap_node in its own struct (recover it
 * with MP_CONTAINER_OF from util/list.h), so insert and remove never allocate;
 * only the pointer array grows, geometrically, and never shrinks.
 *
 * Ties: the heap stamps `seq` from its own counter on insert, so nodes with
 * equal keys pop in insertion order. That makes the pop order a pure function
 * of the operation sequence, never of addresses: what a deterministic
 * simulator needs when many timers share one deadline.
 */
#ifndef MP_UTIL_HEAP_H
#define MP_UTIL_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moonpool/status.h"

#define MP_HEAP_NONE UINT32_MAX /* index of a node that is in no heap */

typedef struct mp_heap_node {
    uint64_t key;   /* set by the caller before insert (e.g. a deadline) */
    uint64_t seq;   /* set by mp_heap_insert: insertion order, for ties */
    uint32_t index; /* position in the heap, MP_HEAP_NONE when not in one */
} mp_heap_node;

typedef struct mp_heap {
    mp_heap_node **nodes;
    uint32_t len, cap;
    uint64_t next_seq;
} mp_heap;

/* Mark a node as in no heap; do this once before its first insert. */
static inline void mp_heap_node_init(mp_heap_node *n)
{
    n->index = MP_HEAP_NONE;
}

/* True while the node sits in a heap. */
static inline bool mp_heap_node_linked(const mp_heap_node *n)
{
    return n->index != MP_HEAP_NONE;
}

void mp_heap_init(mp_heap *h);
/* Free the array. Nodes still inside are not touched (the heap does not own
 * them) but are left marked as linked; callers normally drain first. */
void mp_heap_free(mp_heap *h);
/* Insert a node that is in no heap, with n->key already set. MP_ENOMEM if
 * the array cannot grow (heap unchanged); MP_EINVAL if the node is already
 * linked or the heap is full (UINT32_MAX - 1 nodes). */
int mp_heap_insert(mp_heap *h, mp_heap_node *n);
/* Minimum node, or NULL when empty. */
static inline mp_heap_node *mp_heap_peek(const mp_heap *h)
{
    return h->len ? h->nodes[0] : NULL;
}
/* Remove and return the minimum node (now unlinked), or NULL when empty. */
mp_heap_node *mp_heap_pop(mp_heap *h);
/* Remove a node wherever it is. A node that is in no heap is left alone
 * (returns false), so "cancel the timeout if still armed" needs no check.
 * The node must not be linked in a different heap. */
bool mp_heap_remove(mp_heap *h, mp_heap_node *n);
static inline size_t mp_heap_count(const mp_heap *h)
{
    return h->len;
}
/* Verify the heap order and every node's index; O(n). For tests. */
bool mp_heap_check(const mp_heap *h);

#endif
