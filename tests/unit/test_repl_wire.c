/* wire/repl: replication frames round-trip every field, carry the format
 * version, and hostile bytes (random, truncated, bit-flipped, another major
 * version) are refused by the verifier without a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/util.h"
#include "mnemo/wire_repl.h"

static _Alignas(8) uint8_t abuf[1 << 16];
static mn_wire_repl_entry_t storage[MN_WIRE_REPL_MAX_ENTRIES];

static mn_wire_repl_frame_t sample(mn_wire_repl_entry_t *e, const uint8_t *d1, const uint8_t *d2)
{
    e[0] = (mn_wire_repl_entry_t){7, 41, mn_wire_repl_entry_crc("agent-1", 7, 7, 41, d1, 5), d1, 5};
    e[1] = (mn_wire_repl_entry_t){8, 42, mn_wire_repl_entry_crc("agent-1", 7, 8, 42, d2, 3), d2, 3};
    mn_wire_repl_frame_t f;
    memset(&f, 0, sizeof f);
    f.kind = MN_WIRE_REPL_APPEND;
    f.space = "agent-1";
    f.space_len = 7;
    f.from = "node-a";
    f.from_len = 6;
    f.epoch = 8;
    f.lsn = 42;
    f.last_epoch = 3;
    f.leader = "node-b";
    f.leader_len = 6;
    f.flags = MN_WIRE_REPL_FLAG_CHECKED;
    f.entries = e;
    f.n_entries = 2;
    f.echo_us = 123456;
    f.incarnation = 1796618977395ull;
    return f;
}

static size_t encode_sample(mn_wire_repl_enc_t *enc)
{
    static const uint8_t d1[5] = {1, 2, 3, 4, 5}, d2[3] = {9, 8, 7};
    mn_wire_repl_entry_t e[2];
    mn_wire_repl_frame_t f = sample(e, d1, d2);
    const uint8_t *out;
    size_t len;
    assert_int_equal(mn_wire_repl_encode(enc, &f, &out, &len), MN_OK);
    assert_true(len <= sizeof abuf);
    memcpy(abuf, out, len);
    return len;
}

static void test_repl_wire_round_trips_every_field(void **state)
{
    (void)state;
    mn_wire_repl_enc_t *enc = mn_wire_repl_enc_new();
    size_t len = encode_sample(enc);
    mn_wire_repl_frame_t g;
    assert_int_equal(mn_wire_repl_decode(abuf, len, &g, storage, MN_WIRE_REPL_MAX_ENTRIES), MN_OK);
    assert_int_equal(g.version, MN_WIRE_REPL_VERSION);
    assert_int_equal(g.kind, MN_WIRE_REPL_APPEND);
    assert_memory_equal(g.space, "agent-1", 7);
    assert_memory_equal(g.from, "node-a", 6);
    assert_memory_equal(g.leader, "node-b", 6);
    assert_true(g.epoch == 8 && g.lsn == 42 && g.last_epoch == 3);
    assert_int_equal(g.flags, MN_WIRE_REPL_FLAG_CHECKED);
    assert_true(g.echo_us == 123456 && g.incarnation == 1796618977395ull);
    assert_int_equal(g.n_entries, 2);
    assert_true(g.entries[1].epoch == 8 && g.entries[1].lsn == 42 && g.entries[1].len == 3);
    assert_int_equal(g.entries[1].data[0], 9);
    assert_int_equal(g.entries[0].crc,
                     mn_wire_repl_entry_crc("agent-1", 7, 7, 41, g.entries[0].data, 5));
    /* the checksum covers the labels: another lsn or space gives another crc */
    assert_int_not_equal(g.entries[0].crc,
                         mn_wire_repl_entry_crc("agent-1", 7, 7, 42, g.entries[0].data, 5));
    assert_int_not_equal(g.entries[0].crc,
                         mn_wire_repl_entry_crc("agent-2", 7, 7, 41, g.entries[0].data, 5));
    mn_wire_repl_enc_free(enc);
}

static void test_repl_wire_encoder_rejects_malformed_frames(void **state)
{
    (void)state;
    mn_wire_repl_enc_t *enc = mn_wire_repl_enc_new();
    static const uint8_t d[8] = {0};
    mn_wire_repl_entry_t e[2];
    const uint8_t *out;
    size_t len;
    mn_wire_repl_frame_t f = sample(e, d, d);
    f.kind = 0;
    assert_int_equal(mn_wire_repl_encode(enc, &f, &out, &len), MN_ERR_INVALID);
    f = sample(e, d, d);
    f.space_len = 0;
    assert_int_equal(mn_wire_repl_encode(enc, &f, &out, &len), MN_ERR_INVALID);
    f = sample(e, d, d);
    f.from = "bad\nid";
    f.from_len = 6;
    assert_int_equal(mn_wire_repl_encode(enc, &f, &out, &len), MN_ERR_INVALID);
    f = sample(e, d, d);
    f.n_entries = MN_WIRE_REPL_MAX_ENTRIES + 1;
    assert_int_equal(mn_wire_repl_encode(enc, &f, &out, &len), MN_ERR_INVALID);
    mn_wire_repl_enc_free(enc);
}

static void test_repl_wire_refuses_another_major_version(void **state)
{
    (void)state;
    mn_wire_repl_enc_t *enc = mn_wire_repl_enc_new();
    size_t len = encode_sample(enc);
    /* find the version field (a ushort equal to the current version) and
     * bump its major byte; FlatBuffers stores scalars little-endian */
    bool found = false;
    for (size_t i = 0; i + 1 < len && !found; i += 2)
        if (abuf[i] == (MN_WIRE_REPL_VERSION & 0xff) && abuf[i + 1] == MN_WIRE_REPL_VERSION >> 8) {
            abuf[i + 1]++;
            mn_wire_repl_frame_t g;
            if (mn_wire_repl_decode(abuf, len, &g, storage, MN_WIRE_REPL_MAX_ENTRIES) ==
                MN_ERR_UNSUPPORTED)
                found = true;
            else
                abuf[i + 1]--;
        }
    assert_true(found);
    mn_wire_repl_enc_free(enc);
}

static void test_repl_wire_hostile_bytes_are_refused_without_a_crash(void **state)
{
    (void)state;
    mn_wire_repl_enc_t *enc = mn_wire_repl_enc_new();
    mn_prng_t prng;
    mn_prng_seed(&prng, 20261206);
    mn_wire_repl_frame_t g;
    int accepted = 0;
    /* random bytes, of random lengths */
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)mn_prng_below(&prng, 512);
        for (size_t j = 0; j < len; j++)
            abuf[j] = (uint8_t)mn_prng_next(&prng);
        accepted += mn_wire_repl_decode(abuf, len, &g, storage, MN_WIRE_REPL_MAX_ENTRIES) == MN_OK;
    }
    assert_int_equal(accepted, 0);
    /* a valid frame, truncated or with bytes flipped: decoded frames must be
     * self-consistent (what the verifier lets through is in bounds) */
    size_t good = encode_sample(enc);
    uint8_t copy[1024];
    memcpy(copy, abuf, good);
    for (int i = 0; i < 20000; i++) {
        memcpy(abuf, copy, good);
        size_t len = good;
        if (i % 3 == 0)
            len = (size_t)mn_prng_below(&prng, good);
        else
            for (int k = 0; k < 1 + i % 4; k++)
                abuf[mn_prng_below(&prng, good)] ^= (uint8_t)(1u << mn_prng_below(&prng, 8));
        if (mn_wire_repl_decode(abuf, len, &g, storage, 4) != MN_OK) continue;
        assert_true(g.space_len >= 1 && g.space_len <= MN_WIRE_REPL_SPACE_MAX);
        assert_true(g.from_len >= 1 && g.from_len <= MN_WIRE_REPL_ID_MAX);
        assert_true(g.n_entries <= 4);
        for (size_t k = 0; k < g.n_entries; k++)
            assert_true(
                g.entries[k].data == NULL ||
                (g.entries[k].data >= abuf && g.entries[k].data + g.entries[k].len <= abuf + len));
    }
    /* too many entries for the caller's storage */
    assert_int_equal(mn_wire_repl_decode(copy, good, &g, storage, 1), MN_ERR_CORRUPT);
    /* misaligned */
    memcpy(abuf + 1, copy, good);
    assert_int_equal(mn_wire_repl_decode(abuf + 1, good, &g, storage, 4), MN_ERR_CORRUPT);
    mn_wire_repl_enc_free(enc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repl_wire_round_trips_every_field),
        cmocka_unit_test(test_repl_wire_encoder_rejects_malformed_frames),
        cmocka_unit_test(test_repl_wire_refuses_another_major_version),
        cmocka_unit_test(test_repl_wire_hostile_bytes_are_refused_without_a_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
