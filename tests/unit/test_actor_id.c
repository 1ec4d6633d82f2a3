/*
 * Unit tests: actor ids and references (src/actor/id.c) and the directory's
 * pure parts (src/directory/directory.c): rendezvous owners, first-wins
 * registration, guarded unregistration, cache, peer restart purge,
 * placement strategies.
 *
 * The directory tests need an env only for randomness; a tiny fake env with
 * a fixed PRNG keeps them independent of any backend.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "directory/directory.h"
#include "moonpool/actor.h"
#include "util/hash.h"
#include "util/prng.h"

/* ---- ids ---- */

static void test_ref_init_ok(void **state)
{
    mp_ref r;
    assert_int_equal(mp_ref_init(&r, "bank", "BankAccount", "alice"), MP_OK);
    assert_string_equal(r.id, "bank::BankAccount/alice");
    assert_int_equal(r.len, strlen("bank::BankAccount/alice"));
    assert_int_equal(r.type_off, 6);
    assert_int_equal(r.type_len, 11);
    assert_memory_equal(r.id + r.key_off, "alice", 5);
    assert_int_equal(r.key_len, 5);
    assert_true(r.hash == mp_hash64(r.id, r.len, MP_HASH_SEED_DEFAULT));
}

static void test_ref_parse_roundtrip(void **state)
{
    mp_ref a, b;
    assert_int_equal(mp_ref_init(&a, "ns", "T", "k/with:colons"), MP_OK);
    assert_int_equal(mp_ref_parse(&b, a.id, a.len), MP_OK);
    assert_string_equal(a.id, b.id);
    assert_int_equal(a.len, b.len);
    assert_int_equal(a.type_off, b.type_off);
    assert_int_equal(a.type_len, b.type_len);
    assert_int_equal(a.key_off, b.key_off);
    assert_int_equal(a.key_len, b.key_len);
    assert_true(a.hash == b.hash);
    assert_string_equal(b.id + b.key_off, "k/with:colons");
    /* Parse does not need a NUL: only len bytes are read. */
    char buf[32] = "x::Y/zzzGARBAGE";
    assert_int_equal(mp_ref_parse(&b, buf, 8), MP_OK);
    assert_string_equal(b.id, "x::Y/zzz");
}

static void test_ref_invalid(void **state)
{
    mp_ref r;
    assert_int_equal(mp_ref_init(&r, "", "T", "k"), MP_EINVAL);
    assert_int_equal(mp_ref_init(&r, "n", "", "k"), MP_EINVAL);
    assert_int_equal(mp_ref_init(&r, "n", "T", ""), MP_EINVAL);
    assert_int_equal(mp_ref_init(&r, "n s", "T", "k"), MP_EINVAL);
    assert_int_equal(mp_ref_init(&r, "n", "T/x", "k"), MP_EINVAL);
    assert_int_equal(mp_ref_init(&r, "n:", "T", "k"), MP_EINVAL);
    assert_int_equal(mp_ref_init(&r, "n", "T", "a\nb"), MP_EINVAL);
    assert_int_equal(mp_ref_init(&r, "n", "T", "a\x7f"), MP_EINVAL);
    assert_int_equal(mp_ref_init(NULL, "n", "T", "k"), MP_EINVAL);
    assert_int_equal(mp_ref_init(&r, NULL, "T", "k"), MP_EINVAL);
    char big[300];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(mp_ref_init(&r, "n", "T", big), MP_EINVAL);
    /* exactly 256 bytes total is allowed, 257 is not */
    big[256 - 5] = 0; /* "n::T/" is 5 bytes */
    assert_int_equal(mp_ref_init(&r, "n", "T", big), MP_OK);
    assert_int_equal(r.len, 256);
    big[256 - 5] = 'k';
    big[257 - 5] = 0;
    assert_int_equal(mp_ref_init(&r, "n", "T", big), MP_EINVAL);
    char part[70];
    memset(part, 'a', 65);
    part[65] = 0;
    assert_int_equal(mp_ref_init(&r, part, "T", "k"), MP_EINVAL);
    part[64] = 0;
    assert_int_equal(mp_ref_init(&r, part, "T", "k"), MP_OK);

    const char *bad[] = {"", "ns", "ns::", "ns::T", "ns::T/", "::T/k", "ns::/k",
                         "ns:T/k", "n s::T/k", "ns::T/\x01"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(mp_ref_parse(&r, bad[i], strlen(bad[i])), MP_EINVAL);
    assert_int_equal(mp_ref_parse(&r, NULL, 3), MP_EINVAL);
    assert_int_equal(mp_ref_parse(&r, big, 300), MP_EINVAL);
}

static void test_reason_names(void **state)
{
    assert_string_equal(mp_deactivate_reason_name(MP_DEACTIVATE_IDLE), "idle");
    assert_string_equal(mp_deactivate_reason_name(MP_DEACTIVATE_LOST_RACE),
                        "lost_race");
    assert_string_equal(mp_deactivate_reason_name((mp_deactivate_reason)99),
                        "unknown");
}

/* ---- a fake env: randomness only ---- */

typedef struct fake_env {
    mp_env env;
    mp_prng rng;
} fake_env;

static uint64_t fake_random(mp_env *e)
{
    return mp_prng_next(&((fake_env *)(void *)e)->rng);
}

static const mp_env_ops fake_ops = {.random_u64 = fake_random};

static void fake_init(fake_env *f, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    f->env.ops = &fake_ops;
    mp_prng_seed(&f->rng, seed);
}

static const char *const members3[] = {"10.0.0.1:7000", "10.0.0.2:7000",
                                       "10.0.0.3:7000"};

/* ---- directory ---- */

static void test_dir_owner_agrees(void **state)
{
    /* Every node computes the same owner, whatever its member order. */
    const char *const rev[] = {members3[2], members3[0], members3[1]};
    mp_directory a, b;
    assert_int_equal(mp_dir_init(&a, members3, 3, 0, 1), MP_OK);
    assert_int_equal(mp_dir_init(&b, rev, 3, 1, 2), MP_OK);
    size_t per[3] = {0, 0, 0};
    for (int i = 0; i < 3000; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        mp_ref r;
        assert_int_equal(mp_ref_init(&r, "ns", "T", key), MP_OK);
        size_t oa = mp_dir_owner(&a, &r);
        size_t ob = mp_dir_owner(&b, &r);
        assert_string_equal(mp_dir_addr(&a, oa), mp_dir_addr(&b, ob));
        per[oa]++;
    }
    /* Roughly balanced partitions. */
    for (int i = 0; i < 3; i++) assert_true(per[i] > 800 && per[i] < 1200);
    assert_int_equal(mp_dir_member(&a, "10.0.0.2:7000", 13), 1);
    assert_int_equal(mp_dir_member(&a, "10.0.0.9:7000", 13), -1);
    mp_dir_free(&a);
    mp_dir_free(&b);
}

static void test_dir_first_wins(void **state)
{
    mp_directory d;
    assert_int_equal(mp_dir_init(&d, members3, 3, 0, 1), MP_OK);
    mp_ref r;
    mp_ref_init(&r, "ns", "T", "x");
    mp_dir_entry w;
    assert_int_equal(mp_dir_register(&d, &r, 1, 1, 10, &w), MP_OK);
    assert_int_equal(w.member, 1);
    assert_int_equal(w.act_id, 10);
    /* A second node loses. */
    assert_int_equal(mp_dir_register(&d, &r, 2, 1, 20, &w), MP_OK);
    assert_int_equal(w.member, 1);
    assert_int_equal(w.act_id, 10);
    /* The same node re-registering replaces its own entry. */
    assert_int_equal(mp_dir_register(&d, &r, 1, 1, 11, &w), MP_OK);
    assert_int_equal(w.member, 1);
    assert_int_equal(w.act_id, 11);
    /* Unregister only if it still matches. */
    assert_false(mp_dir_unregister(&d, r.id, r.len, 1, 10));
    assert_false(mp_dir_unregister(&d, r.id, r.len, 2, 11));
    assert_non_null(mp_dir_table_get(&d, r.id, r.len));
    assert_true(mp_dir_unregister(&d, r.id, r.len, 1, 11));
    assert_null(mp_dir_table_get(&d, r.id, r.len));
    assert_int_equal(mp_dir_table_count(&d), 0);
    mp_dir_free(&d);
}

/* Local entries (directory.h): this node's own activations are found
 * through the hook, not stored; the table behaves exactly as with stored
 * entries. A fake catalog of one activation stands in for the node's. */
struct fake_act {
    mp_ref ref;
    uint64_t act_id;
    bool registered;
    bool present;
    int calls;
};

static bool *fake_local(void *ud, uint64_t ref_hash, const char *id, size_t len,
                        uint64_t *act_id)
{
    struct fake_act *a = ud;
    a->calls++;
    if (!a->present || ref_hash != a->ref.hash || len != a->ref.len ||
        memcmp(id, a->ref.id, len) != 0)
        return NULL;
    *act_id = a->act_id;
    return &a->registered;
}

static void test_dir_local_entries(void **state)
{
    (void)state;
    mp_directory d;
    assert_int_equal(mp_dir_init(&d, members3, 3, 0, 1), MP_OK);
    struct fake_act act;
    memset(&act, 0, sizeof act);
    mp_ref_init(&act.ref, "ns", "T", "mine");
    act.act_id = 77;
    act.present = true;
    mp_dir_set_local(&d, fake_local, &act, 4);
    mp_dir_entry w;
    /* Self registering its own activation: a local entry, nothing stored. */
    assert_int_equal(mp_dir_register(&d, &act.ref, 0, 4, 77, &w), MP_OK);
    assert_true(act.registered);
    assert_int_equal(w.member, 0);
    assert_int_equal(w.incarnation, 4);
    assert_int_equal(w.act_id, 77);
    assert_int_equal(mp_map_str_count(&d.table), 0);
    assert_int_equal(mp_dir_table_count(&d), 1);
    const mp_dir_entry *e = mp_dir_table_get(&d, act.ref.id, act.ref.len);
    assert_non_null(e);
    assert_int_equal(e->member, 0);
    assert_int_equal(e->act_id, 77);
    e = mp_dir_table_get_ref(&d, &act.ref);
    assert_non_null(e);
    assert_int_equal(e->incarnation, 4);
    /* The stored-only lookup does not see it. */
    assert_null(mp_dir_table_get_stored(&d, &act.ref));
    /* First wins against another member. */
    assert_int_equal(mp_dir_register(&d, &act.ref, 1, 9, 5, &w), MP_OK);
    assert_int_equal(w.member, 0);
    assert_int_equal(w.act_id, 77);
    assert_int_equal(mp_map_str_count(&d.table), 0);
    /* A peer restart never touches this node's entries. */
    mp_dir_peer_restart(&d, 1, 10);
    assert_true(act.registered);
    /* Unregistration must match member and act_id. */
    assert_false(mp_dir_unregister(&d, act.ref.id, act.ref.len, 1, 77));
    assert_false(mp_dir_unregister(&d, act.ref.id, act.ref.len, 0, 76));
    assert_true(act.registered);
    assert_true(mp_dir_unregister(&d, act.ref.id, act.ref.len, 0, 77));
    assert_false(act.registered);
    assert_null(mp_dir_table_get(&d, act.ref.id, act.ref.len));
    assert_int_equal(mp_dir_table_count(&d), 0);
    /* Another member registered first: stored, and self then loses. */
    assert_int_equal(mp_dir_register(&d, &act.ref, 2, 1, 8, &w), MP_OK);
    assert_int_equal(w.member, 2);
    assert_int_equal(mp_dir_register(&d, &act.ref, 0, 4, 77, &w), MP_OK);
    assert_int_equal(w.member, 2);
    assert_int_equal(w.act_id, 8);
    assert_false(act.registered);
    assert_true(mp_dir_unregister(&d, act.ref.id, act.ref.len, 2, 8));
    /* No activation here: a self registration is stored as before. */
    act.present = false;
    assert_int_equal(mp_dir_register(&d, &act.ref, 0, 4, 77, &w), MP_OK);
    assert_int_equal(mp_map_str_count(&d.table), 1);
    assert_true(mp_dir_unregister(&d, act.ref.id, act.ref.len, 0, 77));
    assert_int_equal(mp_dir_table_count(&d), 0);
    /* With no local entry registered, lookups do not call the hook. */
    act.present = true;
    act.calls = 0;
    assert_null(mp_dir_table_get(&d, act.ref.id, act.ref.len));
    assert_int_equal(act.calls, 0);
    mp_dir_free(&d);
}

static void test_dir_cache_and_restart(void **state)
{
    mp_directory d;
    assert_int_equal(mp_dir_init(&d, members3, 3, 0, 1), MP_OK);
    mp_ref a, b, c;
    mp_ref_init(&a, "ns", "T", "a");
    mp_ref_init(&b, "ns", "T", "b");
    mp_ref_init(&c, "ns", "T", "c");
    assert_int_equal(mp_dir_cache_get(&d, a.id, a.len), -1);
    mp_dir_cache_put(&d, a.id, a.len, 1, 1);
    mp_dir_cache_put(&d, b.id, b.len, 2, 1);
    mp_dir_cache_put(&d, a.id, a.len, 2, 1); /* update */
    assert_int_equal(mp_dir_cache_get(&d, a.id, a.len), 2);
    assert_int_equal(mp_dir_cache_count(&d), 2);
    mp_dir_entry w;
    mp_dir_register(&d, &a, 2, 1, 5, &w);
    mp_dir_register(&d, &b, 1, 1, 6, &w);
    mp_dir_register(&d, &c, 2, 3, 7, &w); /* a newer incarnation */
    /* member 2 restarts with incarnation 3: its cache entries go, and its
     * registrations from incarnations < 3 go. */
    mp_dir_peer_restart(&d, 2, 3);
    assert_int_equal(mp_dir_cache_get(&d, a.id, a.len), -1);
    assert_int_equal(mp_dir_cache_get(&d, b.id, b.len), -1);
    assert_null(mp_dir_table_get(&d, a.id, a.len));
    assert_non_null(mp_dir_table_get(&d, b.id, b.len));
    assert_non_null(mp_dir_table_get(&d, c.id, c.len));
    /* bounded cache evicts the oldest */
    d.cache_max = 2;
    mp_dir_cache_put(&d, a.id, a.len, 1, 1);
    mp_dir_cache_put(&d, b.id, b.len, 1, 1);
    mp_dir_cache_put(&d, c.id, c.len, 1, 1);
    assert_int_equal(mp_dir_cache_count(&d), 2);
    assert_int_equal(mp_dir_cache_get(&d, a.id, a.len), -1);
    mp_dir_cache_remove(&d, b.id, b.len);
    assert_int_equal(mp_dir_cache_get(&d, b.id, b.len), -1);
    mp_dir_free(&d);
}

static void test_dir_placement(void **state)
{
    fake_env fe;
    fake_init(&fe, 42);
    mp_directory d;
    assert_int_equal(mp_dir_init(&d, members3, 3, 0, 1), MP_OK);
    mp_ref r;
    mp_ref_init(&r, "ns", "T", "p");
    for (int i = 0; i < 10; i++)
        assert_int_equal(mp_dir_place(&d, MP_PLACE_PREFER_LOCAL, &r, 0, &fe.env, NULL), 0);
    size_t h = mp_dir_place(&d, MP_PLACE_HASH, &r, 0, &fe.env, NULL);
    for (int i = 0; i < 10; i++)
        assert_int_equal(mp_dir_place(&d, MP_PLACE_HASH, &r, 0, &fe.env, NULL), h);
    int seen[3] = {0, 0, 0};
    for (int i = 0; i < 300; i++)
        seen[mp_dir_place(&d, MP_PLACE_RANDOM, &r, 0, &fe.env, NULL)]++;
    for (int i = 0; i < 3; i++) assert_true(seen[i] > 50);

    /* Two choices: loads 0 (self) / 1000 / 1000 reported: self is the
     * lighter of any pair that includes it, and the others balance. */
    mp_dir_load_report(&d, 1, 1000);
    mp_dir_load_report(&d, 2, 1000);
    uint64_t self_load = 0;
    for (int i = 0; i < 6000; i++) {
        size_t p = mp_dir_place(&d, MP_PLACE_TWO_CHOICES, &r, self_load, &fe.env, NULL);
        if (p == 0) self_load++;
    }
    /* every member ends near (1000 + 1000 + 6000) / 3, within 5% */
    uint64_t l1 = d.known_load[1] + d.placed[1];
    uint64_t l2 = d.known_load[2] + d.placed[2];
    assert_int_equal(self_load + l1 + l2, 8000);
    assert_true(self_load > 2533 && self_load < 2800);
    assert_true(l1 > 2533 && l1 < 2800);
    assert_true(l2 > 2533 && l2 < 2800);
    /* a report resets the placements counted since the last one */
    mp_dir_load_report(&d, 1, 7);
    assert_int_equal(d.placed[1], 0);
    mp_dir_free(&d);

    /* one member: always self */
    assert_int_equal(mp_dir_init(&d, members3, 1, 0, 1), MP_OK);
    assert_int_equal(mp_dir_place(&d, MP_PLACE_TWO_CHOICES, &r, 5, &fe.env, NULL), 0);
    mp_dir_free(&d);
}

/* Membership mode (runtime/members.c): only live members own partitions,
 * a member added later takes exactly the ids it now wins, the ok mask
 * limits placement, and entries of ids no longer owned are dropped. */
static void test_dir_live_set(void **state)
{
    (void)state;
    fake_env fe;
    fake_init(&fe, 7);
    mp_directory d, all;
    assert_int_equal(mp_dir_init(&d, members3, 3, 0, 1), MP_OK);
    assert_int_equal(mp_dir_init(&all, members3, 3, 0, 1), MP_OK);
    mp_dir_use_live_set(&d);
    mp_dir_set_live(&d, 0, true);
    mp_dir_set_live(&d, 1, true);
    assert_int_equal(d.live_count, 2);
    /* Member 2 not live: its ids go to whichever of 0 and 1 weighs more;
     * the others' ids do not move. */
    char key[32];
    size_t moved = 0;
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        mp_ref r;
        mp_ref_init(&r, "ns", "T", key);
        size_t o = mp_dir_owner(&d, &r), oa = mp_dir_owner(&all, &r);
        assert_true(o == 0 || o == 1);
        if (oa != 2) assert_int_equal(o, oa);
        else moved++;
    }
    assert_true(moved > 800 && moved < 1200);
    /* A member learnt later: appended, not live until said so. */
    int idx = mp_dir_add_member(&d, "127.0.0.1:9999");
    assert_int_equal(idx, 3);
    assert_int_equal(mp_dir_add_member(&d, "127.0.0.1:9999"), 3);
    assert_int_equal(mp_dir_member(&d, "127.0.0.1:9999", 14), 3);
    assert_false(mp_dir_is_live(&d, 3));
    mp_dir_set_live(&d, 3, true);
    /* Placement only where ok says. */
    uint8_t ok[MP_MAX_MEMBERS] = {0};
    mp_ref r;
    mp_ref_init(&r, "ns", "T", "p");
    ok[3] = 1;
    for (int i = 0; i < 50; i++) {
        assert_int_equal(mp_dir_place(&d, MP_PLACE_TWO_CHOICES, &r, 0, &fe.env, ok), 3);
        assert_int_equal(mp_dir_place(&d, MP_PLACE_PREFER_LOCAL, &r, 0, &fe.env, ok), 3);
    }
    ok[3] = 0;
    assert_int_equal(mp_dir_place(&d, MP_PLACE_RANDOM, &r, 0, &fe.env, ok), SIZE_MAX);
    /* Entries of ids this node (0) no longer owns are dropped. */
    size_t mine = 0, stored = 0;
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "k%d", i);
        mp_ref_init(&r, "ns", "T", key);
        mp_dir_entry w;
        assert_int_equal(mp_dir_register(&d, &r, 1, 1, (uint64_t)i + 1, &w), MP_OK);
        stored++;
        mine += mp_dir_owner(&d, &r) == 0;
    }
    assert_int_equal(mp_dir_table_count(&d), stored);
    assert_int_equal(mp_dir_drop_not_owned(&d), stored - mine);
    assert_int_equal(mp_dir_table_count(&d), mine);
    /* Nobody live: the node answers itself (and refuses by its own rules). */
    for (size_t i = 0; i < d.n; i++) mp_dir_set_live(&d, i, false);
    assert_int_equal(mp_dir_owner(&d, &r), 0);
    mp_dir_free(&d);
    mp_dir_free(&all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_init_ok),
        cmocka_unit_test(test_ref_parse_roundtrip),
        cmocka_unit_test(test_ref_invalid),
        cmocka_unit_test(test_reason_names),
        cmocka_unit_test(test_dir_owner_agrees),
        cmocka_unit_test(test_dir_first_wins),
        cmocka_unit_test(test_dir_local_entries),
        cmocka_unit_test(test_dir_cache_and_restart),
        cmocka_unit_test(test_dir_placement),
        cmocka_unit_test(test_dir_live_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
