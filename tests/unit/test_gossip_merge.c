/* The gossip merge rule and the Merkle trees (gossip/gossip_record.c,
 * gossip_tree.c, gossip_space.c): property tests over random records and
 * random histories, fixed seeds, many iterations. The merge must be
 * commutative, associative and idempotent; any order of deliveries (with
 * repeats) must leave the same state and the same roots; the incremental
 * trees must equal a rebuild; tombstones win and are collected only past
 * the horizon; bad records are refused with the field named. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "mnemo/gossip.h"

typedef struct trec {
    mn_gossip_record_t r;
    mn_id_t sup[MN_GOSSIP_SUPPORT_MAX], fgt[MN_GOSSIP_FORGOTTEN_MAX];
} trec;

static mn_id_t id_n(uint64_t n)
{
    mn_id_t id;
    mn_put_be64(id.b, 0x0190000000000000ull + n);
    mn_put_be64(id.b + 8, 0x8000000000000000ull | n);
    return id;
}

static void tcopy(trec *dst, const mn_gossip_record_t *src)
{
    dst->r = *src;
    if (src->n_support) memcpy(dst->sup, src->support, src->n_support * sizeof(mn_id_t));
    if (src->n_forgotten_eps)
        memcpy(dst->fgt, src->forgotten_eps, src->n_forgotten_eps * sizeof(mn_id_t));
    dst->r.support = dst->sup;
    dst->r.forgotten_eps = dst->fgt;
}

/* n sorted unique ids drawn from a universe of `universe`. */
static size_t random_ids(mn_prng_t *p, mn_id_t *out, size_t max, uint64_t universe)
{
    size_t n = 0, want = (size_t)mn_prng_below(p, max + 1);
    for (uint64_t u = 0; u < universe && n < want; u++)
        if (mn_prng_below(p, universe) < want) out[n++] = id_n(1000 + u);
    return n;
}

/* A random record of id `key`: a small version space so that equal stamps
 * (ties broken by the later fields) happen often; one in eight a tombstone. */
static void random_rec(mn_prng_t *p, uint64_t key, trec *t)
{
    memset(t, 0, sizeof *t);
    t->r.id = id_n(key);
    t->r.support = t->sup;
    t->r.forgotten_eps = t->fgt;
    if (mn_prng_below(p, 8) == 0) {
        t->r.forgotten_hlc = mn_hlc_make(1000 + (int64_t)mn_prng_below(p, 4), 0);
        return;
    }
    t->r.epoch = 1 + mn_prng_below(p, 2);
    t->r.hlc = mn_hlc_make(1000 + (int64_t)mn_prng_below(p, 3), 0);
    t->r.support_n = (uint32_t)mn_prng_below(p, 3);
    t->r.confidence = (float)mn_prng_below(p, 3) / 2.0f;
    t->r.retired = mn_prng_below(p, 2);
    t->r.digest[0] = (uint8_t)mn_prng_below(p, 3);
    t->r.n_support =
        random_ids(p, t->sup, 80 > MN_GOSSIP_SUPPORT_MAX ? MN_GOSSIP_SUPPORT_MAX : 80, 120);
    t->r.n_forgotten_eps = random_ids(p, t->fgt, 4, 120);
    static const char *payloads[] = {"centroid and medoid text", "another summary", "x"};
    uint64_t k = mn_prng_below(p, 4); /* one in four without a payload */
    if (k == 3) return;
    t->r.payload = (const uint8_t *)payloads[k];
    t->r.payload_len = strlen(payloads[k]);
    mn_gossip_payload_digest(t->r.payload, t->r.payload_len, t->r.digest);
}

static void merge(const mn_gossip_record_t *a, const mn_gossip_record_t *b, trec *out)
{
    trec tmp;
    mn_gossip_record_merge(a, b, &tmp.r, tmp.sup, tmp.fgt);
    tcopy(out, &tmp.r);
    assert_int_equal(mn_gossip_record_check(&out->r, NULL), MN_OK);
}

static void test_gossip_merge_is_commutative_associative_idempotent(void **state)
{
    (void)state;
    mn_prng_t p;
    mn_prng_seed(&p, 18);
    for (int it = 0; it < 20000; it++) {
        trec a, b, c, ab, ba, ab_c, bc, a_bc, aa;
        random_rec(&p, 7, &a);
        random_rec(&p, 7, &b);
        random_rec(&p, 7, &c);
        assert_int_equal(mn_gossip_record_check(&a.r, NULL), MN_OK);
        merge(&a.r, &b.r, &ab);
        merge(&b.r, &a.r, &ba);
        assert_true(mn_gossip_record_equal(&ab.r, &ba.r));
        merge(&ab.r, &c.r, &ab_c);
        merge(&b.r, &c.r, &bc);
        merge(&a.r, &bc.r, &a_bc);
        assert_true(mn_gossip_record_equal(&ab_c.r, &a_bc.r));
        merge(&a.r, &a.r, &aa);
        assert_true(mn_gossip_record_equal(&aa.r, &a.r));
        uint8_t h1[MN_GOSSIP_DIGEST_LEN], h2[MN_GOSSIP_DIGEST_LEN];
        mn_gossip_record_hash(&ab_c.r, h1);
        mn_gossip_record_hash(&a_bc.r, h2);
        assert_memory_equal(h1, h2, sizeof h1);
    }
}

static void test_gossip_merge_tombstone_wins_and_stays(void **state)
{
    (void)state;
    mn_prng_t p;
    mn_prng_seed(&p, 181);
    for (int it = 0; it < 2000; it++) {
        trec t, live, m;
        memset(&t, 0, sizeof t);
        t.r.id = id_n(7);
        t.r.forgotten_hlc = mn_hlc_make(5, 0);
        do
            random_rec(&p, 7, &live);
        while (live.r.forgotten_hlc);
        live.r.epoch = 99; /* a much newer version still loses */
        merge(&live.r, &t.r, &m);
        assert_true(m.r.forgotten_hlc == t.r.forgotten_hlc);
        assert_int_equal(m.r.n_support, 0);
        merge(&m.r, &live.r, &m);
        assert_true(mn_gossip_record_equal(&m.r, &t.r));
    }
}

static void test_gossip_merge_orders_versions_by_stamp_then_support_confidence_digest(void **state)
{
    (void)state;
    trec a, b, m;
    memset(&a, 0, sizeof a);
    a.r.id = id_n(1);
    a.r.epoch = 1;
    a.r.hlc = mn_hlc_make(100, 0);
    a.r.support_n = 9;
    a.r.confidence = 0.9f;
    b = a;
    b.r.hlc = mn_hlc_make(101, 0); /* re-derived later, after a forget: less support */
    b.r.support_n = 2;
    b.r.confidence = 0.3f;
    merge(&a.r, &b.r, &m);
    assert_int_equal(m.r.support_n, 2);
    b.r.hlc = a.r.hlc; /* equal stamps: higher support wins */
    merge(&a.r, &b.r, &m);
    assert_int_equal(m.r.support_n, 9);
    b.r.support_n = 9; /* then confidence */
    merge(&a.r, &b.r, &m);
    assert_true(m.r.confidence == 0.9f);
    b.r.confidence = 0.9f; /* then the digest bytes */
    b.r.digest[0] = 1;
    merge(&a.r, &b.r, &m);
    assert_int_equal(m.r.digest[0], 1);
    b = a;
    b.r.epoch = 2; /* a newer primary's version wins over any older-epoch one */
    b.r.hlc = mn_hlc_make(50, 0);
    merge(&a.r, &b.r, &m);
    assert_int_equal(m.r.epoch, 2);
}

static void test_gossip_merge_unions_support_keeping_the_lowest(void **state)
{
    (void)state;
    trec a, b, m;
    memset(&a, 0, sizeof a);
    a.r.id = id_n(1);
    a.r.epoch = 1;
    a.r.hlc = 1;
    b = a;
    a.r.support = a.sup;
    b.r.support = b.sup;
    for (int i = 0; i < MN_GOSSIP_SUPPORT_MAX; i++) { /* evens and odds */
        a.sup[i] = id_n(2 * (uint64_t)i);
        b.sup[i] = id_n(2 * (uint64_t)i + 1);
    }
    a.r.n_support = b.r.n_support = MN_GOSSIP_SUPPORT_MAX;
    b.r.forgotten_eps = b.fgt;
    b.fgt[0] = id_n(3);
    b.r.n_forgotten_eps = 1;
    merge(&a.r, &b.r, &m);
    assert_int_equal(m.r.n_support, MN_GOSSIP_SUPPORT_MAX);
    for (int i = 0; i < MN_GOSSIP_SUPPORT_MAX; i++) {
        mn_id_t want = id_n((uint64_t)i);
        assert_int_equal(mn_id_cmp(&m.r.support[i], &want), 0);
    }
    assert_int_equal(m.r.n_forgotten_eps, 1);
}

static void expect_invalid(const mn_gossip_record_t *r, const char *field)
{
    mn_error err;
    assert_int_equal(mn_gossip_record_check(r, &err), MN_ERR_INVALID);
    if (!strstr(err.message, field)) fail_msg("'%s' does not name %s", err.message, field);
}

static void test_gossip_record_check_refuses_bad_records_naming_the_field(void **state)
{
    (void)state;
    trec t;
    memset(&t, 0, sizeof t);
    t.r.id = id_n(1);
    t.r.hlc = 1;
    t.r.support = t.sup;
    assert_int_equal(mn_gossip_record_check(&t.r, NULL), MN_OK);
    trec b = t;
    memset(&b.r.id, 0, sizeof b.r.id);
    expect_invalid(&b.r, "id");
    b = t;
    b.r.hlc = 0;
    expect_invalid(&b.r, "hlc");
    float bad[] = {NAN, -0.0f, -0.5f, 1.5f, INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        b = t;
        b.r.confidence = bad[i];
        expect_invalid(&b.r, "confidence");
    }
    b = t;
    b.r.support = b.sup;
    b.sup[0] = id_n(5);
    b.sup[1] = id_n(4);
    b.r.n_support = 2;
    expect_invalid(&b.r, "support");
    b.r.n_support = MN_GOSSIP_SUPPORT_MAX + 1;
    expect_invalid(&b.r, "support");
    b = t;
    b.r.forgotten_hlc = 5; /* a tombstone with a version */
    expect_invalid(&b.r, "forgotten_hlc");
    b = t;
    b.r.payload = (const uint8_t *)"bytes";
    b.r.payload_len = 5; /* its digest is not the payload's */
    expect_invalid(&b.r, "digest");
    mn_gossip_payload_digest(b.r.payload, 5, b.r.digest);
    assert_int_equal(mn_gossip_record_check(&b.r, NULL), MN_OK);
    b.r.payload_len = MN_GOSSIP_PAYLOAD_MAX + 1;
    expect_invalid(&b.r, "payload");
}

/* ---- histories on cores ---- */

static void nosend(void *user, const char *to, const uint8_t *frame, size_t len)
{
    (void)user, (void)to, (void)frame, (void)len;
}

static mn_gossip_t *core(const char *id)
{
    mn_gossip_cb_t cb = {.send = nosend};
    mn_gossip_t *g;
    assert_int_equal(mn_gossip_new(id, NULL, &cb, 1, 0, &g, NULL), MN_OK);
    return g;
}

#define HIST 300

static void test_gossip_any_delivery_order_gives_the_same_state_and_roots(void **state)
{
    (void)state;
    static trec hist[HIST];
    static const char *spaces[] = {"a", "b", "c"};
    mn_prng_t p;
    mn_prng_seed(&p, 1818);
    for (int it = 0; it < 20; it++) {
        for (int i = 0; i < HIST; i++)
            random_rec(&p, 1 + mn_prng_below(&p, 40), &hist[i]);
        uint8_t want[MN_GOSSIP_DIGEST_LEN] = {0};
        for (int order = 0; order < 4; order++) {
            mn_gossip_t *g = core("n1");
            int idx[HIST];
            for (int i = 0; i < HIST; i++)
                idx[i] = i;
            for (int i = HIST - 1; order && i > 0; i--) { /* a shuffle, order 0 as made */
                int j = (int)mn_prng_below(&p, (uint64_t)i + 1), t = idx[i];
                idx[i] = idx[j];
                idx[j] = t;
            }
            for (int i = 0; i < HIST; i++) {
                const trec *t = &hist[idx[i]];
                const char *sp = spaces[mn_get_be64(t->r.id.b + 8) % 3];
                assert_int_equal(mn_gossip_put(g, sp, &t->r, NULL), MN_OK);
                if (mn_prng_below(&p, 4) == 0) /* a repeat delivery */
                    assert_int_equal(mn_gossip_put(g, sp, &t->r, NULL), MN_OK);
            }
            assert_true(mn_gossip_verify(g));
            uint8_t root[MN_GOSSIP_DIGEST_LEN];
            uint64_t n;
            mn_gossip_root(g, NULL, root, &n);
            assert_int_equal(n, 3);
            if (order == 0)
                memcpy(want, root, sizeof root);
            else
                assert_memory_equal(root, want, sizeof root);
            mn_gossip_free(g);
        }
    }
}

static void test_gossip_trees_equal_a_rebuild_after_many_changes(void **state)
{
    (void)state;
    mn_prng_t p;
    mn_prng_seed(&p, 77);
    mn_gossip_t *g = core("n1");
    mn_gossip_config_t c;
    mn_gossip_config_default(&c);
    for (int i = 0; i < 5000; i++) {
        trec t;
        random_rec(&p, mn_prng_below(&p, 3000), &t);
        assert_int_equal(mn_gossip_put(g, i % 7 ? "big" : "small", &t.r, NULL), MN_OK);
        if (i % 500 == 0) assert_true(mn_gossip_verify(g));
    }
    mn_gossip_gc(g, 1000 + c.gc_horizon_ms + 10); /* every tombstone goes */
    assert_true(mn_gossip_verify(g));
    mn_gossip_stats_t st;
    mn_gossip_stats(g, &st);
    assert_true(st.tombstones_collected > 0);
    mn_gossip_free(g);
}

static void test_gossip_gc_collects_old_tombstones_and_refuses_them_after(void **state)
{
    (void)state;
    mn_gossip_config_t c;
    mn_gossip_config_default(&c);
    mn_gossip_t *g = core("n1"), *clean = core("n2");
    trec live, tomb;
    memset(&live, 0, sizeof live);
    live.r.id = id_n(1);
    live.r.hlc = mn_hlc_make(10, 0);
    memset(&tomb, 0, sizeof tomb);
    tomb.r.id = id_n(2);
    tomb.r.forgotten_hlc = mn_hlc_make(10, 0);
    assert_int_equal(mn_gossip_put(g, "s", &live.r, NULL), MN_OK);
    assert_int_equal(mn_gossip_put(g, "s", &tomb.r, NULL), MN_OK);
    assert_int_equal(mn_gossip_put(clean, "s", &live.r, NULL), MN_OK);
    mn_gossip_gc(g, 10 + c.gc_horizon_ms); /* exactly at the horizon: kept */
    mn_gossip_record_t r;
    assert_int_equal(mn_gossip_get(g, "s", &tomb.r.id, &r), MN_OK);
    mn_gossip_gc(g, 11 + c.gc_horizon_ms);
    assert_int_equal(mn_gossip_get(g, "s", &tomb.r.id, &r), MN_ERR_NOT_FOUND);
    assert_int_equal(mn_gossip_get(g, "s", &live.r.id, &r), MN_OK); /* live records stay */
    assert_int_equal(mn_gossip_put(g, "s", &tomb.r, NULL), MN_OK);  /* refused, quietly */
    assert_int_equal(mn_gossip_get(g, "s", &tomb.r.id, &r), MN_ERR_NOT_FOUND);
    uint8_t a[MN_GOSSIP_DIGEST_LEN], b[MN_GOSSIP_DIGEST_LEN];
    mn_gossip_root(g, NULL, a, NULL);
    mn_gossip_root(clean, NULL, b, NULL);
    assert_memory_equal(a, b, sizeof a);
    mn_gossip_free(g);
    mn_gossip_free(clean);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gossip_merge_is_commutative_associative_idempotent),
        cmocka_unit_test(test_gossip_merge_tombstone_wins_and_stays),
        cmocka_unit_test(test_gossip_merge_orders_versions_by_stamp_then_support_confidence_digest),
        cmocka_unit_test(test_gossip_merge_unions_support_keeping_the_lowest),
        cmocka_unit_test(test_gossip_record_check_refuses_bad_records_naming_the_field),
        cmocka_unit_test(test_gossip_any_delivery_order_gives_the_same_state_and_roots),
        cmocka_unit_test(test_gossip_trees_equal_a_rebuild_after_many_changes),
        cmocka_unit_test(test_gossip_gc_collects_old_tombstones_and_refuses_them_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
