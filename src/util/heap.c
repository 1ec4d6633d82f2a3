/*
 * Binary min-heap over an array of node pointers (see heap.h for why it is
 * intrusive and how ties are ordered).
 *
 * Binary rather than 4-ary: every move writes the moved node's index field,
 * which is a pointer chase whatever the arity, so a wider node saves little
 * and costs more comparisons per level on the sift-down that pop and remove
 * do. Sifts move a "hole" instead of swapping, so each level costs one
 * pointer store and one index store.
 */
#include "util/heap.h"

#include <assert.h>
#include <stdlib.h>

#include "util/alloc.h"

#define MIN_CAP 16
#define MAX_LEN (UINT32_MAX - 1) /* MP_HEAP_NONE must stay out of range */

static inline bool less(const mp_heap_node *a, const mp_heap_node *b)
{
    return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static inline void put_at(mp_heap *h, uint32_t i, mp_heap_node *n)
{
    h->nodes[i] = n;
    n->index = i;
}

/* Move n up from hole i until its parent is not greater. */
static void sift_up(mp_heap *h, uint32_t i, mp_heap_node *n)
{
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        mp_heap_node *p = h->nodes[parent];
        if (!less(n, p)) break;
        put_at(h, i, p);
        i = parent;
    }
    put_at(h, i, n);
}

/* Move n down from hole i until no child is smaller. */
static void sift_down(mp_heap *h, uint32_t i, mp_heap_node *n)
{
    uint32_t len = h->len;
    for (;;) {
        uint64_t wide = 2 * (uint64_t)i + 1; /* 64-bit: cannot wrap */
        if (wide >= len) break;
        uint32_t child = (uint32_t)wide;
        mp_heap_node *c = h->nodes[child];
        if (child + 1 < len && less(h->nodes[child + 1], c)) c = h->nodes[++child];
        if (!less(c, n)) break;
        put_at(h, i, c);
        i = child;
    }
    put_at(h, i, n);
}

void mp_heap_init(mp_heap *h)
{
    h->nodes = NULL;
    h->len = h->cap = 0;
    h->next_seq = 0;
}

void mp_heap_free(mp_heap *h)
{
    free(h->nodes);
    h->nodes = NULL;
    h->len = h->cap = 0;
}

static int grow(mp_heap *h)
{
    uint32_t cap = h->cap ? h->cap : MIN_CAP / 2;
    cap = cap > MAX_LEN / 2 ? MAX_LEN : cap * 2;
#if SIZE_MAX < UINT64_MAX
    if (cap > SIZE_MAX / sizeof(*h->nodes)) return MP_ENOMEM; /* 32-bit hosts */
#endif
    mp_heap_node **nodes = mp_util_realloc(h->nodes, (size_t)cap * sizeof(*h->nodes));
    if (nodes == NULL) return MP_ENOMEM;
    h->nodes = nodes;
    h->cap = cap;
    return MP_OK;
}

int mp_heap_insert(mp_heap *h, mp_heap_node *n)
{
    if (n->index != MP_HEAP_NONE || h->len >= MAX_LEN) return MP_EINVAL;
    if (h->len == h->cap) {
        int rc = grow(h);
        if (rc != MP_OK) return rc;
    }
    n->seq = h->next_seq++;
    sift_up(h, h->len++, n);
    return MP_OK;
}

/* Take node at index i out, filling the hole with the last node. */
static void remove_at(mp_heap *h, uint32_t i)
{
    mp_heap_node *gone = h->nodes[i];
    mp_heap_node *last = h->nodes[--h->len];
    gone->index = MP_HEAP_NONE;
    if (i == h->len) return; /* it was the last one */
    /* The last node may belong above or below the hole. */
    if (i > 0 && less(last, h->nodes[(i - 1) / 2]))
        sift_up(h, i, last);
    else
        sift_down(h, i, last);
}

mp_heap_node *mp_heap_pop(mp_heap *h)
{
    if (h->len == 0) return NULL;
    mp_heap_node *top = h->nodes[0];
    remove_at(h, 0);
    return top;
}

bool mp_heap_remove(mp_heap *h, mp_heap_node *n)
{
    if (n->index == MP_HEAP_NONE) return false;
    assert(n->index < h->len && h->nodes[n->index] == n && "node is in another heap");
    remove_at(h, n->index);
    return true;
}

bool mp_heap_check(const mp_heap *h)
{
    if (h->len > h->cap || (h->cap && h->nodes == NULL)) return false;
    for (uint32_t i = 0; i < h->len; i++) {
        const mp_heap_node *n = h->nodes[i];
        if (n == NULL || n->index != i || n->seq >= h->next_seq) return false;
        if (i > 0 && less(n, h->nodes[(i - 1) / 2])) return false;
    }
    return true;
}
