/* wire/swim: SWIM packet bodies round-trip, always fit the size they were
 * given, and hostile bytes are rejected by the verifier without a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/util.h"
#include "mnemo/wire_swim.h"

static _Alignas(8) uint8_t abuf[4096];

static mn_wire_swim_entry_t entry(const char *id, uint64_t inc, uint8_t state, const char *from)
{
    mn_wire_swim_entry_t e;
    memset(&e, 0, sizeof e);
    e.id = id;
    e.id_len = strlen(id);
    e.incarnation = inc;
    e.state = state;
    e.from = from;
    e.from_len = from ? strlen(from) : 0;
    e.addr.family = 4;
    e.addr.port = 7946;
    e.addr.ip[0] = 10;
    e.addr.ip[3] = (uint8_t)inc;
    return e;
}

static void test_swim_wire_round_trips_every_field(void **state)
{
    (void)state;
    mn_wire_swim_enc_t *enc = mn_wire_swim_enc_new();
    assert_non_null(enc);
    mn_wire_swim_entry_t st[2] = {entry("alpha", 7, 0, NULL),
                                  entry("beta", 1ull << 40, 2, "alpha")};
    mn_wire_swim_entry_t up[1] = {entry("gamma", 3, 1, "beta")};
    st[0].meta = "api=10.0.0.1:7700;zone=z1";
    st[0].meta_len = strlen(st[0].meta);
    mn_wire_swim_msg_t m = {.kind = MN_WIRE_SWIM_SYNC,
                            .seq = 0xdeadbeef,
                            .src = "alpha",
                            .src_len = 5,
                            .target = "beta",
                            .target_len = 4,
                            .flags = MN_WIRE_SWIM_FLAG_REPLY,
                            .chunk = 3,
                            .chunks = 9,
                            .known = 42,
                            .state = st,
                            .n_state = 2,
                            .updates = up,
                            .n_updates = 1};
    m.target_addr.family = 6;
    m.target_addr.port = 1;
    m.target_addr.ip[15] = 1;
    size_t ns = 0, nu = 0, len = 0;
    const uint8_t *out = NULL;
    assert_int_equal(mn_wire_swim_encode(enc, &m, 1360, &ns, &nu, &out, &len), MN_OK);
    assert_int_equal(ns, 2);
    assert_int_equal(nu, 1);
    memcpy(abuf, out, len);
    mn_wire_swim_msg_t d;
    mn_wire_swim_entry_t storage[MN_WIRE_SWIM_MAX_ENTRIES];
    assert_int_equal(mn_wire_swim_decode(abuf, len, &d, storage, MN_WIRE_SWIM_MAX_ENTRIES), MN_OK);
    assert_int_equal(d.kind, MN_WIRE_SWIM_SYNC);
    assert_int_equal(d.seq, 0xdeadbeef);
    assert_int_equal(d.src_len, 5);
    assert_memory_equal(d.src, "alpha", 5);
    assert_memory_equal(d.target, "beta", 4);
    assert_int_equal(d.target_addr.family, 6);
    assert_int_equal(d.target_addr.ip[15], 1);
    assert_int_equal(d.flags, MN_WIRE_SWIM_FLAG_REPLY);
    assert_int_equal(d.chunk, 3);
    assert_int_equal(d.chunks, 9);
    assert_int_equal(d.known, 42);
    assert_int_equal(d.n_state, 2);
    assert_int_equal(d.n_updates, 1);
    assert_int_equal(d.state[1].incarnation, 1ull << 40);
    assert_int_equal(d.state[1].state, 2);
    assert_int_equal(d.state[1].from_len, 5);
    assert_memory_equal(d.state[1].from, "alpha", 5);
    assert_int_equal(d.state[0].from_len, 0);
    assert_int_equal(d.state[0].meta_len, strlen(st[0].meta));
    assert_memory_equal(d.state[0].meta, st[0].meta, d.state[0].meta_len);
    assert_int_equal(d.state[1].meta_len, 0);
    assert_null(d.state[1].meta);
    assert_int_equal(d.updates[0].state, 1);
    assert_memory_equal(d.updates[0].id, "gamma", 5);
    assert_int_equal(d.updates[0].addr.port, 7946);
    assert_int_equal(d.updates[0].addr.ip[3], 3);
    mn_wire_swim_enc_free(enc);
}

static void test_swim_wire_encoder_never_exceeds_cap(void **state)
{
    (void)state;
    mn_wire_swim_enc_t *enc = mn_wire_swim_enc_new();
    mn_prng_t p;
    mn_prng_seed(&p, 99);
    static char ids[2 * MN_WIRE_SWIM_MAX_ENTRIES][MN_WIRE_SWIM_ID_MAX + 1];
    static char froms[MN_WIRE_SWIM_ID_MAX + 1], metas[MN_WIRE_SWIM_META_MAX + 1];
    memset(froms, 'f', MN_WIRE_SWIM_ID_MAX);
    memset(metas, 'm', MN_WIRE_SWIM_META_MAX);
    mn_wire_swim_entry_t es[2 * MN_WIRE_SWIM_MAX_ENTRIES];
    mn_wire_swim_entry_t storage[MN_WIRE_SWIM_MAX_ENTRIES];
    for (int it = 0; it < 3000; it++) {
        size_t n = (size_t)mn_prng_below(&p, 2 * MN_WIRE_SWIM_MAX_ENTRIES + 1);
        /* short ids (many small entries) and long ones alternate */
        size_t maxlen = it % 2 ? MN_WIRE_SWIM_ID_MAX : 3;
        for (size_t i = 0; i < n; i++) {
            size_t l = 1 + (size_t)mn_prng_below(&p, maxlen);
            memset(ids[i], 'a' + (int)(i % 26), l);
            ids[i][l] = 0;
            es[i] = entry(ids[i], mn_prng_next(&p) >> (mn_prng_below(&p, 64)),
                          (uint8_t)mn_prng_below(&p, 4), NULL);
            if (mn_prng_below(&p, 2)) {
                es[i].from = froms;
                es[i].from_len = 1 + (size_t)mn_prng_below(&p, MN_WIRE_SWIM_ID_MAX);
            }
            if (mn_prng_below(&p, 2)) {
                es[i].meta = metas;
                es[i].meta_len = 1 + (size_t)mn_prng_below(&p, MN_WIRE_SWIM_META_MAX);
            }
        }
        size_t split = n ? (size_t)mn_prng_below(&p, n + 1) : 0;
        mn_wire_swim_msg_t m = {.kind = (uint8_t)(1 + mn_prng_below(&p, 6)),
                                .seq = (uint32_t)mn_prng_next(&p),
                                .src = "source-node",
                                .src_len = 11,
                                .target = "target",
                                .target_len = 6,
                                .known = 7,
                                .state = es,
                                .n_state = split,
                                .updates = es + split,
                                .n_updates = n - split};
        size_t cap = 400 + (size_t)mn_prng_below(&p, 1000);
        size_t ns = 0, nu = 0, len = 0;
        const uint8_t *out = NULL;
        assert_int_equal(mn_wire_swim_encode(enc, &m, cap, &ns, &nu, &out, &len), MN_OK);
        assert_true(len <= cap);
        assert_true(ns <= split && nu <= n - split);
        /* the room left after a cut is smaller than one more entry could need */
        if (ns < split && ns + nu < MN_WIRE_SWIM_MAX_ENTRIES)
            assert_true(len + 4 * (ns + nu) + mn_wire_swim_entry_cost(&es[ns]) > cap - 128);
        memcpy(abuf, out, len);
        mn_wire_swim_msg_t d;
        assert_int_equal(mn_wire_swim_decode(abuf, len, &d, storage, MN_WIRE_SWIM_MAX_ENTRIES),
                         MN_OK);
        assert_int_equal(d.n_state, ns);
        assert_int_equal(d.n_updates, nu);
        for (size_t i = 0; i < ns; i++) {
            assert_int_equal(d.state[i].id_len, es[i].id_len);
            assert_int_equal(d.state[i].incarnation, es[i].incarnation);
            assert_int_equal(d.state[i].meta_len, es[i].meta_len);
        }
    }
    mn_wire_swim_enc_free(enc);
}

static void test_swim_wire_encoder_rejects_malformed_messages(void **state)
{
    (void)state;
    mn_wire_swim_enc_t *enc = mn_wire_swim_enc_new();
    size_t len;
    const uint8_t *out;
    mn_wire_swim_msg_t m = {.kind = MN_WIRE_SWIM_PING, .src = "", .src_len = 0};
    assert_int_equal(mn_wire_swim_encode(enc, &m, 1360, NULL, NULL, &out, &len), MN_ERR_INVALID);
    char longid[MN_WIRE_SWIM_ID_MAX + 2];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    m.src = longid;
    m.src_len = strlen(longid);
    assert_int_equal(mn_wire_swim_encode(enc, &m, 1360, NULL, NULL, &out, &len), MN_ERR_INVALID);
    m.src = "ok\x01";
    m.src_len = 3;
    assert_int_equal(mn_wire_swim_encode(enc, &m, 1360, NULL, NULL, &out, &len), MN_ERR_INVALID);
    m.src = "ok";
    m.src_len = 2;
    m.kind = 9;
    assert_int_equal(mn_wire_swim_encode(enc, &m, 1360, NULL, NULL, &out, &len), MN_ERR_INVALID);
    m.kind = MN_WIRE_SWIM_ACK;
    mn_wire_swim_entry_t bad = entry("x", 1, 7, NULL);
    m.updates = &bad;
    m.n_updates = 1;
    assert_int_equal(mn_wire_swim_encode(enc, &m, 1360, NULL, NULL, &out, &len), MN_ERR_INVALID);
    m.n_updates = 0;
    assert_int_equal(mn_wire_swim_encode(enc, &m, 60, NULL, NULL, &out, &len), MN_ERR_TOO_LARGE);
    mn_wire_swim_enc_free(enc);
}

static void test_swim_wire_decoder_rejects_garbage_and_damage(void **state)
{
    (void)state;
    mn_wire_swim_enc_t *enc = mn_wire_swim_enc_new();
    mn_wire_swim_entry_t up[3] = {entry("a", 1, 0, NULL), entry("bb", 2, 1, "a"),
                                  entry("ccc", 3, 2, "bb")};
    mn_wire_swim_msg_t m = {
        .kind = MN_WIRE_SWIM_GOSSIP, .src = "src", .src_len = 3, .updates = up, .n_updates = 3};
    size_t len;
    const uint8_t *out;
    assert_int_equal(mn_wire_swim_encode(enc, &m, 1360, NULL, NULL, &out, &len), MN_OK);
    static _Alignas(8) uint8_t good[1400];
    memcpy(good, out, len);
    mn_wire_swim_msg_t d;
    mn_wire_swim_entry_t storage[MN_WIRE_SWIM_MAX_ENTRIES];
    mn_prng_t p;
    mn_prng_seed(&p, 7);
    int rejected = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(abuf, good, len);
        size_t l = len;
        switch (it % 3) {
        case 0: /* flip a few bytes */
            for (int k = 0; k < 1 + (int)mn_prng_below(&p, 4); k++)
                abuf[mn_prng_below(&p, len)] ^= (uint8_t)(1 + mn_prng_below(&p, 255));
            break;
        case 1: /* truncate */
            l = (size_t)mn_prng_below(&p, len);
            break;
        default: /* random bytes with a valid identifier */
            for (size_t i = 0; i < len; i++)
                abuf[i] = (uint8_t)mn_prng_next(&p);
            memcpy(abuf + 4, "MNSW", 4);
            break;
        }
        mn_err rc = mn_wire_swim_decode(abuf, l, &d, storage, MN_WIRE_SWIM_MAX_ENTRIES);
        if (rc != MN_OK) {
            assert_int_equal(rc, MN_ERR_CORRUPT);
            rejected++;
            continue;
        }
        /* what passes is well-formed: every id within bounds, every state known */
        assert_true(d.src_len >= 1 && d.src_len <= MN_WIRE_SWIM_ID_MAX);
        for (size_t i = 0; i < d.n_updates; i++) {
            assert_true(d.updates[i].id_len >= 1 && d.updates[i].id_len <= MN_WIRE_SWIM_ID_MAX);
            assert_true(d.updates[i].state <= 3);
        }
    }
    assert_true(rejected > 10000);
    /* a misaligned buffer and too small a storage are refused */
    memcpy(abuf + 1, good, len);
    assert_int_equal(mn_wire_swim_decode(abuf + 1, len, &d, storage, MN_WIRE_SWIM_MAX_ENTRIES),
                     MN_ERR_CORRUPT);
    memcpy(abuf, good, len);
    assert_int_equal(mn_wire_swim_decode(abuf, len, &d, storage, 2), MN_ERR_CORRUPT);
    assert_int_equal(mn_wire_swim_decode(abuf, len, &d, storage, 3), MN_OK);
    mn_wire_swim_enc_free(enc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swim_wire_round_trips_every_field),
        cmocka_unit_test(test_swim_wire_encoder_never_exceeds_cap),
        cmocka_unit_test(test_swim_wire_encoder_rejects_malformed_messages),
        cmocka_unit_test(test_swim_wire_decoder_rejects_garbage_and_damage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
