/*
 * The membership table's codec (src/membership/table.c) and the rendezvous
 * helper (src/membership/rendezvous.c).
 *
 * The stored table is outside input: every test below patches the bytes of
 * a valid encoding (recomputing the checksum where the point is to reach a
 * later check) and expects the decoder to refuse with MP_ECORRUPT (or
 * MP_EVERSION) and a reason naming the problem, and never to hand back a
 * half-read table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "membership/rendezvous.h"
#include "membership/table.h"
#include "moonpool/status.h"
#include "moonpool/storage.h"
#include "util/crc32c.h"
#include "util/endian.h"
#include "util/prng.h"

static mp__mrow mkrow(const char *addr, uint32_t inc, uint8_t status, uint64_t hb)
{
    mp__mrow r;
    memset(&r, 0, sizeof r);
    snprintf(r.addr, sizeof r.addr, "%s", addr);
    r.incarnation = inc;
    r.status = status;
    r.since = 1;
    r.heartbeat = hb;
    r.lease_ns = 5ull * MP_NS_PER_SEC;
    return r;
}

/* The valid table every corruption starts from. */
static mp__mtable *sample(void)
{
    mp__mtable *t = malloc(sizeof *t);
    assert_non_null(t);
    mp__mtable_init(t);
    t->version = 12;
    mp__mrow r0 = mkrow("127.0.0.1:7001", 1, MP__MEMBER_ACTIVE, 10);
    r0.nsusp = 1;
    snprintf(r0.susp[0].addr, sizeof r0.susp[0].addr, "127.0.0.1:7002");
    r0.susp[0].incarnation = 1;
    r0.susp[0].heartbeat = 9;
    r0.ntypes = 2;
    strcpy(r0.types[0], "Bank");
    strcpy(r0.types[1], "Counter");
    mp__mrow r1 = mkrow("127.0.0.1:7002", 1, MP__MEMBER_ACTIVE, 5);
    r1.ntypes = 1;
    strcpy(r1.types[0], "Bank");
    mp__mrow r2 = mkrow("127.0.0.1:7003", 2, MP__MEMBER_DEAD, 3);
    r2.flags = MP__MEMBER_LEFT;
    r2.since = 12;
    assert_true(mp__mtable_insert(t, &r2) >= 0);
    assert_true(mp__mtable_insert(t, &r0) >= 0);
    assert_true(mp__mtable_insert(t, &r1) >= 0);
    return t;
}

typedef struct enc {
    uint8_t buf[4096];
    size_t len;
} enc;

static void encode(const mp__mtable *t, enc *e)
{
    char why[200] = "";
    int n = mp__mtable_encode(t, e->buf, sizeof e->buf, why, sizeof why);
    if (n < 0) fail_msg("encode: %s", why);
    e->len = (size_t)n;
}

static void fix_crc(enc *e) { mp_put_le32(e->buf + e->len - 4, mp_crc32c(e->buf, e->len - 4)); }

/* Offset of row i in an encoding (walks the format). */
static size_t row_off(const enc *e, unsigned i)
{
    size_t p = 20;
    for (unsigned k = 0; k < i; k++) {
        p += 1 + e->buf[p];   /* addr */
        p += 4 + 1 + 1 + 24;  /* inc, status, flags, since, hb, lease */
        unsigned ns = e->buf[p++];
        for (unsigned s = 0; s < ns; s++) p += 1 + e->buf[p] + 12;
        unsigned nt = e->buf[p++];
        for (unsigned t = 0; t < nt; t++) p += 1 + e->buf[p];
    }
    return p;
}

/* Offset of the field after the address of row i. */
static size_t fields_off(const enc *e, unsigned i)
{
    size_t p = row_off(e, i);
    return p + 1 + e->buf[p];
}
#define F_INC 0
#define F_STATUS 4
#define F_FLAGS 5
#define F_SINCE 6
#define F_HB 14
#define F_LEASE 22
#define F_NSUSP 30

static void expect_bad(enc *e, int want, const char *reason)
{
    mp__mtable *t = malloc(sizeof *t);
    assert_non_null(t);
    char why[200] = "";
    int rc = mp__mtable_decode(e->buf, e->len, t, why, sizeof why);
    if (rc != want || !strstr(why, reason))
        fail_msg("want %s '%s', got %s '%s'", mp_status_name(want), reason,
                 mp_status_name(rc), why);
    assert_int_equal(t->count, 0); /* never half a table */
    free(t);
}

static void test_roundtrip(void **state)
{
    (void)state;
    mp__mtable *t = sample();
    enc e;
    encode(t, &e);
    assert_int_equal(e.len, mp__mtable_encoded_size(t));
    mp__mtable *d = malloc(sizeof *d);
    char why[200] = "";
    assert_int_equal(mp__mtable_decode(e.buf, e.len, d, why, sizeof why), 0);
    assert_int_equal(d->version, 12);
    assert_int_equal(d->count, 3);
    assert_string_equal(d->rows[0].addr, "127.0.0.1:7001");
    assert_string_equal(d->rows[0].types[1], "Counter");
    assert_string_equal(d->rows[0].susp[0].addr, "127.0.0.1:7002");
    assert_int_equal(d->rows[0].susp[0].heartbeat, 9);
    assert_int_equal(d->rows[2].flags, MP__MEMBER_LEFT);
    enc e2;
    encode(d, &e2); /* canonical: same bytes */
    assert_int_equal(e2.len, e.len);
    assert_memory_equal(e2.buf, e.buf, e.len);
    free(d);
    free(t);
}

/* Random tables of every size, up to the bounds, survive the round trip
 * byte for byte; the largest table fits a storage value. */
static void test_roundtrip_random(void **state)
{
    (void)state;
    mp_prng rng;
    mp_prng_seed(&rng, 13);
    mp__mtable *t = malloc(sizeof *t), *d = malloc(sizeof *d);
    size_t cap = 1u << 20;
    uint8_t *b1 = malloc(cap), *b2 = malloc(cap);
    for (int iter = 0; iter < 60; iter++) {
        mp__mtable_init(t);
        t->version = 1000;
        bool full = iter == 59;
        unsigned n = full ? MP__MT_MAX_ROWS : (unsigned)mp_prng_below(&rng, 40);
        for (unsigned i = 0; i < n; i++) {
            char addr[32];
            snprintf(addr, sizeof addr, "10.0.%u.%u:%u", i / 200, i % 200,
                     1000 + (unsigned)mp_prng_below(&rng, 60000));
            mp__mrow r = mkrow(addr, 1 + (uint32_t)mp_prng_below(&rng, 1000),
                               (uint8_t)(1 + mp_prng_below(&rng, 4)),
                               100 + mp_prng_below(&rng, 1000));
            r.since = mp_prng_below(&rng, 1001);
            if (r.status == MP__MEMBER_DEAD && mp_prng_below(&rng, 2)) r.flags = MP__MEMBER_LEFT;
            r.nsusp = (uint8_t)(full ? MP__MT_MAX_SUSPICIONS : mp_prng_below(&rng, 4));
            for (unsigned s = 0; s < r.nsusp; s++) {
                snprintf(r.susp[s].addr, sizeof r.susp[s].addr, "10.9.9.%u:1", s);
                r.susp[s].incarnation = 1;
                r.susp[s].heartbeat = mp_prng_below(&rng, r.heartbeat + 1);
            }
            r.ntypes = (uint8_t)(full ? MP__MT_MAX_TYPES : mp_prng_below(&rng, 5));
            for (unsigned k = 0; k < r.ntypes; k++) {
                if (full) { /* the longest names: 64 bytes */
                    memset(r.types[k], 'x', MP__MT_TYPE_MAX);
                    r.types[k][MP__MT_TYPE_MAX] = '\0';
                    r.types[k][0] = (char)('a' + k % 26);
                    r.types[k][1] = (char)('a' + k / 26);
                } else
                    snprintf(r.types[k], sizeof r.types[k], "Type%u", k);
            }
            if (mp__mtable_insert(t, &r) < 0) continue; /* same address and port */
        }
        char why[200] = "";
        int len = mp__mtable_encode(t, b1, cap, why, sizeof why);
        if (len < 0) fail_msg("iter %d: %s", iter, why);
        assert_int_equal(mp__mtable_decode(b1, (size_t)len, d, why, sizeof why), 0);
        assert_int_equal(d->count, t->count);
        int len2 = mp__mtable_encode(d, b2, cap, why, sizeof why);
        assert_int_equal(len2, len);
        assert_memory_equal(b1, b2, (size_t)len);
        if (full) {
            assert_int_equal(t->count, MP__MT_MAX_ROWS);
            assert_true((size_t)len < MP_STORAGE_VALUE_MAX);
            mp__mrow extra = mkrow("10.10.10.10:1", 1, MP__MEMBER_ACTIVE, 1);
            assert_int_equal(mp__mtable_insert(t, &extra), MP_EQUEUEFULL);
        }
    }
    free(b1);
    free(b2);
    free(t);
    free(d);
}

static void test_reject_header(void **state)
{
    (void)state;
    mp__mtable *t = sample();
    enc e, base;
    encode(t, &base);
    free(t);

    e = base;
    e.len = 10;
    expect_bad(&e, MP_ECORRUPT, "shorter than a table header");
    e = base;
    e.buf[0] = 'X';
    expect_bad(&e, MP_ECORRUPT, "magic");
    e = base;
    mp_put_le16(e.buf + 4, 2);
    fix_crc(&e);
    expect_bad(&e, MP_EVERSION, "table format 2");
    e = base;
    e.buf[7] = 1;
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "reserved");
    e = base;
    e.buf[30] ^= 0x40;
    expect_bad(&e, MP_ECORRUPT, "checksum mismatch");
    e = base;
    mp_put_le32(e.buf + 16, MP__MT_MAX_ROWS + 1);
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "rows (max 256)");
    e = base;
    mp_put_le32(e.buf + 16, 4);
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "row 3: truncated");
    e = base;
    mp_put_le32(e.buf + 16, 2);
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "bytes after the last row");
    /* Cut inside every field of the last row: always "truncated". */
    for (size_t cut = row_off(&base, 2) + 1; cut < base.len - 4; cut++) {
        e = base;
        memmove(e.buf + cut, e.buf + base.len - 4, 4);
        e.len = cut + 4;
        fix_crc(&e);
        expect_bad(&e, MP_ECORRUPT, "row 2: truncated");
    }
}

static void test_reject_row_fields(void **state)
{
    (void)state;
    mp__mtable *t = sample();
    enc e, base;
    encode(t, &base);
    free(t);
    size_t r0 = row_off(&base, 0), f0 = fields_off(&base, 0), f1 = fields_off(&base, 1);
    size_t f2 = fields_off(&base, 2);

    e = base;
    e.buf[r0] = 0;
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "row 0: address length 0 outside 1..64");
    e = base;
    e.buf[r0] = 65;
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "address length 65");
    e = base;
    e.buf[r0 + 3] = '\0';
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "NUL byte in address");
    e = base;
    e.buf[r0 + 10] = 'x'; /* "127.0.0.1x7001": no port */
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "row 0: invalid address");
    e = base;
    mp_put_le32(e.buf + f0 + F_INC, 0);
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "incarnation 0");
    e = base;
    e.buf[f0 + F_STATUS] = 0;
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "unknown status 0");
    e = base;
    e.buf[f0 + F_STATUS] = 5;
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "unknown status 5");
    e = base;
    e.buf[f0 + F_FLAGS] = 0x80;
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "unknown flags 0x80");
    e = base;
    e.buf[f0 + F_FLAGS] = MP__MEMBER_LEFT;
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "flag 'left' on a active row");
    e = base;
    mp_put_le64(e.buf + f0 + F_SINCE, 13);
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "since 13 after table version 12");
    e = base;
    mp_put_le64(e.buf + f0 + F_LEASE, 0);
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "lease 0");
    e = base;
    e.buf[f1 + F_NSUSP] = MP__MT_MAX_SUSPICIONS + 1;
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "row 1: 9 suspicions (max 8)");
    e = base;
    e.buf[f1 + F_NSUSP + 1] = MP__MT_MAX_TYPES + 1; /* row 1 has no suspicion */
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "row 1: 33 types (max 32)");
    e = base;
    e.buf[f1 + F_NSUSP + 3] = '/'; /* "Bank" -> "B/nk" */
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "type 0: invalid name");
    e = base;
    e.buf[f1 + F_NSUSP + 2] = 0; /* type length 0 */
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "type length 0");
    (void)f2;
}

static void test_reject_relations(void **state)
{
    (void)state;
    mp__mtable *t = sample();
    enc e, base;
    encode(t, &base);
    size_t f0 = fields_off(&base, 0);
    size_t s0 = f0 + F_NSUSP + 1; /* row 0's suspicion: len, "127.0.0.1:7002", inc, hb */

    e = base;
    e.buf[s0 + 14] = '1'; /* the suspecter becomes 127.0.0.1:7001 inc 1: itself */
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "row 0 (127.0.0.1:7001): suspects itself");
    e = base;
    mp_put_le64(e.buf + s0 + 1 + 14 + 4, 11); /* heartbeat 11 > row's 10 */
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "suspicion 0 from the future");
    e = base;
    mp_put_le32(e.buf + s0 + 1 + 14, 0);
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "suspicion 0: invalid suspecter");
    /* Row 0's second type "Counter" -> "Bank\0..."? Same length needed: use
     * a table where both types are "Bank" written by patching "Counter"'s
     * length byte and name is not possible in place; build it instead. */
    mp__mtable *u = sample();
    strcpy(u->rows[0].types[1], "Bank");
    char why[200] = "";
    assert_int_equal(mp__mtable_check(u, why, sizeof why), MP_ECORRUPT);
    assert_non_null(strstr(why, "duplicate type 'Bank'"));
    /* ...and the encoder refuses to write it. */
    assert_int_equal(mp__mtable_encode(u, e.buf, sizeof e.buf, why, sizeof why), MP_EINVAL);
    free(u);
    /* Duplicate suspicion: row 0 suspected twice by the same member. */
    u = sample();
    u->rows[0].susp[1] = u->rows[0].susp[0];
    u->rows[0].nsusp = 2;
    assert_int_equal(mp__mtable_check(u, why, sizeof why), MP_ECORRUPT);
    assert_non_null(strstr(why, "duplicate suspicion by 127.0.0.1:7002"));
    free(u);

    /* Rows: 127.0.0.1:7001/1, :7002/1, :7003/2. Patch row 1's port. */
    size_t r1 = row_off(&base, 1);
    e = base;
    e.buf[r1 + 14] = '1'; /* :7001 inc 1 again */
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "row 1: duplicate row 127.0.0.1:7001 incarnation 1");
    e = base;
    e.buf[r1 + 14] = '0'; /* :7000 after :7001 */
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "rows out of order");
    e = base;
    e.buf[r1 + 14] = '1';
    mp_put_le32(e.buf + fields_off(&base, 1) + F_INC, 2); /* :7001 inc 2, active */
    fix_crc(&e);
    expect_bad(&e, MP_ECORRUPT, "address 127.0.0.1:7001: incarnations 1 and 2 are both not dead");
    /* The same with the older one dead is fine. */
    e.buf[f0 + F_STATUS] = MP__MEMBER_DEAD;
    fix_crc(&e);
    mp__mtable *d = malloc(sizeof *d);
    assert_int_equal(mp__mtable_decode(e.buf, e.len, d, why, sizeof why), 0);
    free(d);
    free(t);
}

static void test_key_and_names(void **state)
{
    (void)state;
    char k[128];
    assert_int_equal(mp__mtable_key(k, sizeof k, "prod"), 17);
    assert_string_equal(k, "prod/__membership");
    assert_true(mp_storage_key_valid(k, 17));
    assert_int_equal(mp__mtable_key(k, sizeof k, ""), MP_EINVAL);
    assert_int_equal(mp__mtable_key(k, sizeof k, "a/b"), MP_EINVAL);
    assert_int_equal(mp__mtable_key(k, 5, "prod"), MP_ETOOBIG);
    assert_true(mp__member_addr_valid("127.0.0.1:7001"));
    assert_false(mp__member_addr_valid("127.0.0.1"));
    assert_false(mp__member_addr_valid("127.0.0.1:99999"));
    assert_false(mp__member_addr_valid(""));
    assert_true(mp__member_type_valid("Bank.v2"));
    assert_false(mp__member_type_valid("Bank/x"));
    assert_string_equal(mp__member_status_name(MP__MEMBER_SHUTTING_DOWN), "shutting_down");
}

/* ---- rendezvous ------------------------------------------------------------ */

#define RV_KEYS 20000

static void owners(const mp__rv_member *m, size_t n, int *out)
{
    for (int k = 0; k < RV_KEYS; k++) {
        char key[32];
        int len = snprintf(key, sizeof key, "Bank/acct-%d", k);
        int o = mp__rv_owner(m, n, key, (size_t)len);
        assert_true(o >= 0 && (size_t)o < n);
        out[k] = o;
    }
}

/* Removing one of N members moves only its keys (about 1/N of all), and
 * none of the keys owned by the others; adding one back moves only the
 * keys it now wins; the order of the list does not matter. */
static void test_rendezvous(void **state)
{
    (void)state;
    enum { N = 5 };
    mp__rv_member m[N] = {{"10.0.0.1:7000", 1}, {"10.0.0.2:7000", 1}, {"10.0.0.3:7000", 1},
                          {"10.0.0.4:7000", 1}, {"10.0.0.5:7000", 1}};
    static int before[RV_KEYS], after[RV_KEYS], rev[RV_KEYS];
    owners(m, N, before);
    int per[N] = {0};
    for (int k = 0; k < RV_KEYS; k++) per[before[k]]++;
    for (int i = 0; i < N; i++) /* spread: each near 1/N (4000 +- 10%) */
        assert_true(per[i] > RV_KEYS / N * 9 / 10 && per[i] < RV_KEYS / N * 11 / 10);
    /* Reversed list: same owners (by identity). */
    mp__rv_member r[N];
    for (int i = 0; i < N; i++) r[i] = m[N - 1 - i];
    owners(r, N, rev);
    for (int k = 0; k < RV_KEYS; k++) assert_int_equal(N - 1 - rev[k], before[k]);
    /* Member 2 leaves. */
    mp__rv_member less[N - 1] = {m[0], m[1], m[3], m[4]};
    const int map[N - 1] = {0, 1, 3, 4};
    owners(less, N - 1, after);
    int moved = 0;
    for (int k = 0; k < RV_KEYS; k++) {
        int now = map[after[k]];
        if (before[k] == 2) {
            moved++;
            assert_int_not_equal(now, 2);
        } else {
            assert_int_equal(now, before[k]); /* unaffected keys stay */
        }
    }
    assert_int_equal(moved, per[2]);
    printf("rendezvous: %d of %d keys moved when 1 of %d members left (%.1f%%)\n", moved,
           RV_KEYS, N, 100.0 * moved / RV_KEYS);
    /* A restarted member (new incarnation) is a different member. */
    mp__rv_member m2[N];
    memcpy(m2, m, sizeof m);
    m2[2].incarnation = 2;
    owners(m2, N, after);
    int changed = 0;
    for (int k = 0; k < RV_KEYS; k++) {
        if (before[k] != 2 && after[k] != 2) assert_int_equal(after[k], before[k]);
        if (after[k] != before[k]) changed++;
    }
    assert_true(changed > 0);
    assert_int_equal(mp__rv_owner(NULL, 0, "k", 1), -1);
    assert_int_equal(mp__rv_owner(m, 0, "k", 1), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_roundtrip_random),
        cmocka_unit_test(test_reject_header),
        cmocka_unit_test(test_reject_row_fields),
        cmocka_unit_test(test_reject_relations),
        cmocka_unit_test(test_key_and_names),
        cmocka_unit_test(test_rendezvous),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
