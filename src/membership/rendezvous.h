/*
 * Rendezvous (highest random weight) hashing: which member owns a key.
 *
 * Why rendezvous and not a ring: every node computes the owner from the
 * member list alone, with no shared state and no virtual nodes to tune, and
 * a change of the list moves only what it must. Each member m gets the
 * weight hash(m, key); the owner is the member of highest weight. When a
 * member leaves, only the keys it owned move (to each one's second-highest
 * member, spread evenly); keys owned by the others keep their owner, since
 * their highest weight is unchanged. When a member joins, only the keys for
 * which it is the new highest move, about 1/N of them.
 *
 * A member is named by (address, incarnation): a restarted process is a
 * new member, as in the table. Ties (equal 64-bit weights, practically
 * never) go to the smaller (address, incarnation), so the choice is a pure
 * function of the list as a set: its order does not matter.
 *
 * Thread: pure functions; any thread.
 */
#ifndef MP_MEMBERSHIP_RENDEZVOUS_H
#define MP_MEMBERSHIP_RENDEZVOUS_H

#include <stddef.h>
#include <stdint.h>

/* One candidate: what the caller kept of the active member list after
 * filtering it to the members hosting the key's actor type. */
typedef struct mp__rv_member {
    const char *addr; /* NUL-terminated "host:port" */
    uint32_t incarnation;
} mp__rv_member;

/* The weight of member m for key (key_len bytes). Stable across builds and
 * platforms (util/hash.h's stable hash). */
uint64_t mp__rv_weight(const mp__rv_member *m, const void *key, size_t key_len);

/* Index in members[0..n) of key's owner, or -1 when n == 0 or members is
 * NULL. */
int mp__rv_owner(const mp__rv_member *members, size_t n, const void *key, size_t key_len);

#endif
