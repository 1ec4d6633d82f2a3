/*
 * Codec of the runtime's system messages (sysmsg.h says what each holds).
 * Decoders take bytes from peers: every length is checked before a read.
 */
#include <assert.h>
#include <string.h>

#include "runtime/sysmsg.h"
#include "util/endian.h"

/* Indexed by mp_sys_kind. */
static const char *const sys_names[MP_SYS_KIND_COUNT] = {
    [MP_SYS_NONE] = "",
    [MP_SYS_LOOKUP] = "dir.lookup",
    [MP_SYS_REGISTER] = "dir.register",
    [MP_SYS_UNREGISTER] = "dir.unregister",
    [MP_SYS_LOAD] = "load",
    [MP_SYS_REREGISTER] = "dir.reregister",
    [MP_SYS_REREGISTERED] = "dir.reregistered",
    [MP_SYS_STATS] = "stats",
    [MP_SYS_REBUILD] = "dir.rebuild",
};

mp_bytes mp_sys_method(mp_sys_kind kind)
{
    assert(kind > MP_SYS_NONE && kind < MP_SYS_KIND_COUNT);
    return mp_bytes_str(sys_names[kind]);
}

mp_sys_kind mp_sys_kind_of(mp_bytes method)
{
    for (int k = MP_SYS_NONE + 1; k < MP_SYS_KIND_COUNT; k++)
        if (mp_bytes_eq(method, mp_bytes_str(sys_names[k])))
            return (mp_sys_kind)k;
    return MP_SYS_NONE;
}

void mp_sys_reg_encode(uint8_t out[MP_SYS_REG_SIZE], const mp_sys_reg *r)
{
    mp_put_le32(out, r->incarnation);
    mp_put_le64(out + sizeof(uint32_t), r->act_id);
}

int mp_sys_reg_decode_tag(const uint8_t *p, size_t len, mp_sys_reg *r, uint64_t *tag)
{
    if (len != MP_SYS_REG_SIZE && len != MP_SYS_REG_TAGGED_SIZE) return MP_EPROTO;
    r->incarnation = mp_get_le32(p);
    r->act_id = mp_get_le64(p + sizeof(uint32_t));
    if (tag) *tag = len == MP_SYS_REG_TAGGED_SIZE ? mp_get_le64(p + MP_SYS_REG_SIZE) : 0;
    return MP_OK;
}

int mp_sys_reg_decode(const uint8_t *p, size_t len, mp_sys_reg *r)
{
    return mp_sys_reg_decode_tag(p, len, r, NULL);
}

/* found(u8) addr_len(u16) addr incarnation(u32) act_id(u64) */
#define ENTRY_HEAD (sizeof(uint8_t) + sizeof(uint16_t))
#define ENTRY_TAIL (sizeof(uint32_t) + sizeof(uint64_t))

size_t mp_sys_entry_encode(uint8_t *out, const mp_directory *d,
                           const mp_dir_entry *e)
{
    if (!e) {
        out[0] = 0;
        return 1;
    }
    const char *addr = mp_dir_addr(d, e->member);
    size_t al = strlen(addr);
    assert(al <= MP_ADDR_MAX);
    out[0] = 1;
    mp_put_le16(out + 1, (uint16_t)al);
    memcpy(out + ENTRY_HEAD, addr, al);
    mp_put_le32(out + ENTRY_HEAD + al, e->incarnation);
    mp_put_le64(out + ENTRY_HEAD + al + sizeof(uint32_t), e->act_id);
    return ENTRY_HEAD + al + ENTRY_TAIL;
}

int mp_sys_entry_decode(const mp_directory *d, const uint8_t *p, size_t len,
                        mp_dir_entry *e)
{
    if (len < 1) return MP_EPROTO;
    if (p[0] == 0) return len == 1 ? 0 : MP_EPROTO;
    if (p[0] != 1 || len < ENTRY_HEAD) return MP_EPROTO;
    size_t al = mp_get_le16(p + 1);
    if (len != ENTRY_HEAD + al + ENTRY_TAIL) return MP_EPROTO;
    int m = mp_dir_member(d, (const char *)p + ENTRY_HEAD, al);
    if (m < 0) return MP_EPROTO;
    e->member = (uint16_t)m;
    e->incarnation = mp_get_le32(p + ENTRY_HEAD + al);
    e->act_id = mp_get_le64(p + ENTRY_HEAD + al + sizeof(uint32_t));
    return 1;
}
