/*
 * The runtime's system messages (SYSTEM frames, internal): their names on
 * the wire, their payloads, and the one table that maps a received method
 * to its kind. Handlers dispatch on the kind (dir_owner.c), never on
 * strings, and payload lengths come from sizeof of the fields below, never
 * from hand-counted numbers.
 *
 * Payloads (all integers little-endian):
 *   dir.register, dir.reregister, dir.unregister: mp_sys_reg (the member is
 *     the transport peer: a node speaks only for itself);
 *   dir.lookup, dir.register answers: an entry, u8 found, and if found:
 *     u16 addr_len, addr, u32 incarnation, u64 act_id;
 *   load: u64 live activation count;
 *   dir.reregistered: u32 count of re-registrations sent;
 *   stats: empty; answered with the node's counters as JSON.
 * The names are part of the wire protocol: they never change.
 */
#ifndef MP_RUNTIME_SYSMSG_H
#define MP_RUNTIME_SYSMSG_H

#include <stddef.h>
#include <stdint.h>

#include "directory/directory.h"
#include "runtime/activation.h" /* MP_ADDR_MAX */
#include "wire/frame.h"

typedef enum mp_sys_kind {
    MP_SYS_NONE = 0, /* not a system method we know */
    MP_SYS_LOOKUP,
    MP_SYS_REGISTER,
    MP_SYS_UNREGISTER,
    MP_SYS_LOAD,
    MP_SYS_REREGISTER,   /* as register, after the owner restarted */
    MP_SYS_REREGISTERED, /* u32: re-registrations sent to the owner */
    MP_SYS_STATS,        /* answer: JSON counters */
    MP_SYS_REBUILD,      /* membership: u64 nonce, u64 view hash (members.c) */
    MP_SYS_KIND_COUNT
} mp_sys_kind;

/* The method name of a kind on the wire. */
mp_bytes mp_sys_method(mp_sys_kind kind);
/* The kind of a received method name; MP_SYS_NONE when unknown. */
mp_sys_kind mp_sys_kind_of(mp_bytes method);

/* dir.register / dir.reregister / dir.unregister. */
typedef struct mp_sys_reg {
    uint32_t incarnation;
    uint64_t act_id;
} mp_sys_reg;
#define MP_SYS_REG_SIZE (sizeof(uint32_t) + sizeof(uint64_t))
#define MP_SYS_LOAD_SIZE sizeof(uint64_t)
#define MP_SYS_COUNT_SIZE sizeof(uint32_t)
/* Membership (members.c): dir.rebuild asks the receiver to re-register
 * every activation the sender owns in the view named by the hash; each
 * re-registration then carries the request's nonce after the mp_sys_reg,
 * and dir.reregistered answers with the nonce and how many it sent. */
#define MP_SYS_REBUILD_SIZE (2 * sizeof(uint64_t))
#define MP_SYS_REG_TAGGED_SIZE (MP_SYS_REG_SIZE + sizeof(uint64_t))
#define MP_SYS_REBUILT_SIZE (sizeof(uint64_t) + sizeof(uint32_t))
/* Largest encoded directory entry. */
#define MP_SYS_ENTRY_MAX                                                      \
    (sizeof(uint8_t) + sizeof(uint16_t) + MP_ADDR_MAX + sizeof(uint32_t) +    \
     sizeof(uint64_t))

void mp_sys_reg_encode(uint8_t out[MP_SYS_REG_SIZE], const mp_sys_reg *r);
/* Returns MP_OK, or MP_EPROTO when len is neither MP_SYS_REG_SIZE nor
 * MP_SYS_REG_TAGGED_SIZE; *tag (may be NULL) gets the nonce of a tagged
 * one, else 0. */
int mp_sys_reg_decode(const uint8_t *p, size_t len, mp_sys_reg *r);
int mp_sys_reg_decode_tag(const uint8_t *p, size_t len, mp_sys_reg *r, uint64_t *tag);

/* A directory entry (e NULL: "not found") into out (MP_SYS_ENTRY_MAX
 * bytes); returns the length written. */
size_t mp_sys_entry_encode(uint8_t *out, const mp_directory *d,
                           const mp_dir_entry *e);
/* Returns 1 found (e filled), 0 not found, MP_EPROTO malformed or naming
 * no member. */
int mp_sys_entry_decode(const mp_directory *d, const uint8_t *p, size_t len,
                        mp_dir_entry *e);

#endif
