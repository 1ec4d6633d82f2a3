/*
 * Intrusive circular doubly-linked list with a sentinel head.
 *
 * Intrusive because the runtime's objects (activations, pending calls,
 * queued messages) already exist as structs: embedding a node links them
 * with no allocation and O(1) removal given only the object. Circular with a
 * sentinel so that no operation has a NULL or first/last special case: an
 * empty list is a head pointing at itself.
 *
 * A node that is in no list points at itself (mp_list_node_init, and
 * mp_list_remove leaves it so), which makes removing twice harmless and lets
 * mp_list_node_linked answer "is it queued?".
 *
 * The runtime relies on list order for determinism (maps expose no
 * iteration, see util/map.h), so this list keeps insertion order exactly.
 */
#ifndef MP_UTIL_LIST_H
#define MP_UTIL_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct mp_list_node {
    struct mp_list_node *prev, *next;
} mp_list_node;

/* Pointer to the struct of type `type` whose member `member` is at `ptr`. */
#define MP_CONTAINER_OF(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Initialise a list head (empty) or a free-standing node (unlinked). */
static inline void mp_list_init(mp_list_node *head)
{
    head->prev = head->next = head;
}

static inline void mp_list_node_init(mp_list_node *node)
{
    mp_list_init(node);
}

static inline bool mp_list_empty(const mp_list_node *head)
{
    return head->next == head;
}

/* True while the node is in some list. */
static inline bool mp_list_node_linked(const mp_list_node *node)
{
    return node->next != node;
}

/* Link `node` between `prev` and `next`, which are adjacent. */
static inline void mp_list_link_(mp_list_node *node, mp_list_node *prev, mp_list_node *next)
{
    node->prev = prev;
    node->next = next;
    prev->next = node;
    next->prev = node;
}

/* Insert at the tail. The node must not be in a list. */
static inline void mp_list_push_back(mp_list_node *head, mp_list_node *node)
{
    mp_list_link_(node, head->prev, head);
}

/* Insert at the front. The node must not be in a list. */
static inline void mp_list_push_front(mp_list_node *head, mp_list_node *node)
{
    mp_list_link_(node, head, head->next);
}

/* Unlink a node from whatever list holds it; a no-op on an unlinked node.
 * Never pass a list head here. */
static inline void mp_list_remove(mp_list_node *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = node;
}

/* Unlink and return the first node, or NULL when empty. */
static inline mp_list_node *mp_list_pop_front(mp_list_node *head)
{
    if (mp_list_empty(head)) return NULL;
    mp_list_node *node = head->next;
    mp_list_remove(node);
    return node;
}

/* Move every node of `from` to the tail of `to`, in order; `from` ends
 * empty. O(1). */
static inline void mp_list_splice_back(mp_list_node *to, mp_list_node *from)
{
    if (mp_list_empty(from)) return;
    mp_list_node *first = from->next, *last = from->prev;
    first->prev = to->prev;
    to->prev->next = first;
    last->next = to;
    to->prev = last;
    mp_list_init(from);
}

/* First node, or NULL when empty. */
static inline mp_list_node *mp_list_front(const mp_list_node *head)
{
    return mp_list_empty(head) ? NULL : head->next;
}

/* Number of nodes; O(n), for tests and diagnostics. */
static inline size_t mp_list_count(const mp_list_node *head)
{
    size_t n = 0;
    for (const mp_list_node *it = head->next; it != head; it = it->next) n++;
    return n;
}

/* Iterate front to back. `node` and `tmp` are mp_list_node * variables. The
 * body may unlink (or free) `node`, the current node; it must not unlink
 * `tmp`, the next one, which is already fetched. Nodes pushed at the back
 * during the walk are visited too, so re-queueing the current node at the
 * back of the same list would loop forever: move it to another list. */
#define MP_LIST_FOREACH_SAFE(node, tmp, head)                           \
    for ((node) = (head)->next, (tmp) = (node)->next; (node) != (head); \
         (node) = (tmp), (tmp) = (node)->next)

#endif
