/* Gossip frames (wire/gossip.fbs, wire/gossip_shim.cc): every kind round
 * trips; the CRC32C catches a changed byte of content; another major
 * version is refused; malformed frames are refused on encode; and hostile
 * bytes (random, truncated, bit-flipped, spliced) never crash the decoder or
 * a core fed with them, only count as rejected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/gossip.h"
#include "mnemo/wire_gossip.h"

typedef struct store {
    mn_wire_gossip_node_t nodes[MN_WIRE_GOSSIP_MAX_NODES];
    mn_wire_gossip_record_t recs[MN_WIRE_GOSSIP_MAX_RECORDS];
    const char *names[MN_WIRE_GOSSIP_MAX_KEYS];
    size_t lens[MN_WIRE_GOSSIP_MAX_KEYS];
    mn_wire_gossip_storage_t st;
} store;

static store *store_new(void)
{
    store *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->st = (mn_wire_gossip_storage_t){
        s->nodes, MN_WIRE_GOSSIP_MAX_NODES, s->recs, MN_WIRE_GOSSIP_MAX_RECORDS, s->names,
        s->lens,  MN_WIRE_GOSSIP_MAX_KEYS};
    return s;
}

static uint8_t ID[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static uint8_t DIG[16] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
static uint8_t SUP[32] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                          2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2};

/* One frame of each kind, filled in. */
static mn_wire_gossip_frame_t sample(int kind, mn_wire_gossip_node_t *nodes,
                                     mn_wire_gossip_record_t *rec)
{
    static const char *names[] = {"alpha", "beta"};
    static const size_t lens[] = {5, 4};
    static uint8_t keys[32], digests[32];
    mn_wire_gossip_frame_t f = {
        .kind = (uint8_t)kind, .from = "n1", .from_len = 2, .space = "agent-1", .space_len = 7};
    switch (kind) {
    case MN_WIRE_GOSSIP_NODES:
        nodes[0] = (mn_wire_gossip_node_t){.level = 0, .index = 0, .count = 7};
        nodes[1] = (mn_wire_gossip_node_t){.level = 3, .index = 4095, .count = 1};
        memcpy(nodes[1].digest, DIG, 16);
        f.nodes = nodes;
        f.n_nodes = 2;
        break;
    case MN_WIRE_GOSSIP_SUMMARY:
        f.level = 2;
        f.index = 255;
        f.space_len = 0; /* the directory: names */
        f.names = names;
        f.name_lens = lens;
        f.digests = digests;
        f.n_keys = 2;
        break;
    case MN_WIRE_GOSSIP_PULL:
        f.keys = keys;
        f.n_keys = 2;
        break;
    default:
        *rec = (mn_wire_gossip_record_t){.id = ID,
                                         .digest = DIG,
                                         .confidence = 0.75f,
                                         .epoch = 3,
                                         .hlc = 12345,
                                         .support_n = 5,
                                         .retired = true,
                                         .support = SUP,
                                         .n_support = 2,
                                         .forgotten = SUP + 16,
                                         .payload = (const uint8_t *)"the memory's bytes",
                                         .payload_len = 18,
                                         .n_forgotten = 1};
        f.records = rec;
        f.n_records = 1;
        break;
    }
    return f;
}

static const uint8_t *encode(mn_wire_gossip_enc_t *e, const mn_wire_gossip_frame_t *f, size_t *len)
{
    const uint8_t *out;
    assert_int_equal(mn_wire_gossip_encode(e, f, &out, len), MN_OK);
    return out;
}

static uint8_t *aligned_dup(const uint8_t *p, size_t len)
{
    uint8_t *b = aligned_alloc(8, (len + 7) & ~(size_t)7);
    assert_non_null(b);
    memcpy(b, p, len);
    return b;
}

static void test_gossip_wire_round_trips_every_kind(void **state)
{
    (void)state;
    mn_wire_gossip_enc_t *e = mn_wire_gossip_enc_new();
    store *s = store_new();
    for (int kind = 1; kind <= MN_WIRE_GOSSIP_KIND_MAX; kind++) {
        mn_wire_gossip_node_t nodes[2];
        mn_wire_gossip_record_t rec;
        mn_wire_gossip_frame_t f = sample(kind, nodes, &rec), d;
        size_t len;
        const uint8_t *out = encode(e, &f, &len);
        uint8_t *buf = aligned_dup(out, len);
        assert_int_equal(mn_wire_gossip_decode(buf, len, &d, &s->st), MN_OK);
        assert_int_equal(d.version, MN_WIRE_GOSSIP_VERSION);
        assert_int_equal(d.kind, kind);
        assert_int_equal(d.space_len, f.space_len);
        assert_int_equal(d.n_nodes, f.n_nodes);
        assert_int_equal(d.n_keys, f.n_keys);
        assert_int_equal(d.n_records, f.n_records);
        if (kind == MN_WIRE_GOSSIP_NODES) {
            assert_int_equal(d.nodes[1].index, 4095);
            assert_int_equal(d.nodes[1].count, 1);
            assert_memory_equal(d.nodes[1].digest, DIG, 16);
        }
        if (kind == MN_WIRE_GOSSIP_SUMMARY) {
            assert_int_equal(d.name_lens[1], 4);
            assert_memory_equal(d.names[1], "beta", 4);
            assert_int_equal(d.level, 2);
        }
        if (kind == MN_WIRE_GOSSIP_PUSH) {
            const mn_wire_gossip_record_t *r = &d.records[0];
            assert_memory_equal(r->id, ID, 16);
            assert_true(r->confidence == 0.75f && r->epoch == 3 && r->hlc == 12345 &&
                        r->support_n == 5 && r->retired && r->n_support == 2 &&
                        r->n_forgotten == 1);
            assert_memory_equal(r->forgotten, SUP + 16, 16);
            assert_int_equal(r->payload_len, 18);
            assert_memory_equal(r->payload, "the memory's bytes", 18);
        }
        free(buf);
    }
    free(s);
    mn_wire_gossip_enc_free(e);
}

static void test_gossip_wire_refuses_malformed_frames_on_encode(void **state)
{
    (void)state;
    mn_wire_gossip_enc_t *e = mn_wire_gossip_enc_new();
    mn_wire_gossip_node_t nodes[2];
    mn_wire_gossip_record_t rec;
    const uint8_t *out;
    size_t len;
    mn_wire_gossip_frame_t f = sample(MN_WIRE_GOSSIP_NODES, nodes, &rec);
    f.kind = 9;
    assert_int_equal(mn_wire_gossip_encode(e, &f, &out, &len), MN_ERR_INVALID);
    f = sample(MN_WIRE_GOSSIP_NODES, nodes, &rec);
    nodes[0].level = 1;
    nodes[0].index = 16; /* level 1 has 16 nodes */
    assert_int_equal(mn_wire_gossip_encode(e, &f, &out, &len), MN_ERR_INVALID);
    f = sample(MN_WIRE_GOSSIP_NODES, nodes, &rec);
    f.from = "n\x01";
    assert_int_equal(mn_wire_gossip_encode(e, &f, &out, &len), MN_ERR_INVALID);
    f = sample(MN_WIRE_GOSSIP_PUSH, nodes, &rec);
    rec.n_support = MN_WIRE_GOSSIP_MAX_IDS + 1;
    assert_int_equal(mn_wire_gossip_encode(e, &f, &out, &len), MN_ERR_INVALID);
    mn_wire_gossip_enc_free(e);
}

/* Finds the bytes of needle in buf (the content to tamper with). */
static size_t find(const uint8_t *buf, size_t len, const uint8_t *needle, size_t n)
{
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, needle, n) == 0) return i;
    fail_msg("needle not found");
    return 0;
}

static void test_gossip_wire_crc_catches_changed_content_and_versions_are_checked(void **state)
{
    (void)state;
    mn_wire_gossip_enc_t *e = mn_wire_gossip_enc_new();
    store *s = store_new();
    mn_wire_gossip_node_t nodes[2];
    mn_wire_gossip_record_t rec;
    mn_wire_gossip_frame_t f = sample(MN_WIRE_GOSSIP_PUSH, nodes, &rec), d;
    size_t len;
    const uint8_t *out = encode(e, &f, &len);
    uint8_t *buf = aligned_dup(out, len);
    size_t at = find(buf, len, DIG, 16);
    buf[at] ^= 1; /* a digest byte: the verifier cannot see it, the CRC does */
    assert_int_equal(mn_wire_gossip_decode(buf, len, &d, &s->st), MN_ERR_CORRUPT);
    buf[at] ^= 1;
    assert_int_equal(mn_wire_gossip_decode(buf, len, &d, &s->st), MN_OK);
    uint8_t ver[2] = {MN_WIRE_GOSSIP_VERSION & 0xff, MN_WIRE_GOSSIP_VERSION >> 8};
    at = find(buf, len, ver, 2); /* the version field, little-endian */
    buf[at + 1] = MN_WIRE_GOSSIP_MAJOR + 1;
    assert_int_equal(mn_wire_gossip_decode(buf, len, &d, &s->st), MN_ERR_UNSUPPORTED);
    free(buf);
    free(s);
    mn_wire_gossip_enc_free(e);
}

static void nosend(void *user, const char *to, const uint8_t *frame, size_t len)
{
    (void)user, (void)to, (void)frame, (void)len;
}

static void test_gossip_wire_hostile_bytes_never_crash_decoder_or_core(void **state)
{
    (void)state;
    mn_wire_gossip_enc_t *e = mn_wire_gossip_enc_new();
    store *s = store_new();
    mn_gossip_cb_t cb = {.send = nosend};
    mn_gossip_t *g;
    assert_int_equal(mn_gossip_new("n2", NULL, &cb, 1, 0, &g, NULL), MN_OK);
    mn_prng_t p;
    mn_prng_seed(&p, 1818);
    uint8_t *buf = aligned_alloc(8, 4096);
    assert_non_null(buf);
    uint64_t accepted = 0, tries = 0;
    for (int it = 0; it < 40000; it++) {
        mn_wire_gossip_node_t nodes[2];
        mn_wire_gossip_record_t rec;
        mn_wire_gossip_frame_t f = sample(1 + (int)mn_prng_below(&p, 4), nodes, &rec), d;
        size_t len;
        const uint8_t *good = encode(e, &f, &len);
        memcpy(buf, good, len);
        switch (it % 4) {
        case 0: /* random bytes */
            len = (size_t)mn_prng_below(&p, 600);
            for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t)mn_prng_next(&p);
            break;
        case 1: /* a truncation */
            len = (size_t)mn_prng_below(&p, len);
            break;
        case 2: /* a few flipped bits */
            for (int k = 0; k < 1 + (int)mn_prng_below(&p, 4); k++)
                buf[mn_prng_below(&p, len)] ^= (uint8_t)(1u << mn_prng_below(&p, 8));
            break;
        default: /* random bytes spliced into a valid frame */
            for (size_t i = mn_prng_below(&p, len); i < len; i += 1 + mn_prng_below(&p, 9))
                buf[i] = (uint8_t)mn_prng_next(&p);
            break;
        }
        mn_err rc = mn_wire_gossip_decode(buf, len, &d, &s->st);
        assert_true(rc == MN_OK || rc == MN_ERR_CORRUPT || rc == MN_ERR_UNSUPPORTED);
        accepted += rc == MN_OK;
        tries++;
        mn_gossip_on_message(g, 0, buf, len);
        mn_gossip_on_message(g, 0, buf + 1, len ? len - 1 : 0); /* misaligned */
    }
    mn_gossip_stats_t st;
    mn_gossip_stats(g, &st);
    assert_true(st.frames_rejected >= tries - accepted); /* the same bytes, the same verdict */
    assert_true(accepted < tries / 4);
    assert_true(mn_gossip_verify(g));
    free(buf);
    mn_gossip_free(g);
    free(s);
    mn_wire_gossip_enc_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gossip_wire_round_trips_every_kind),
        cmocka_unit_test(test_gossip_wire_refuses_malformed_frames_on_encode),
        cmocka_unit_test(test_gossip_wire_crc_catches_changed_content_and_versions_are_checked),
        cmocka_unit_test(test_gossip_wire_hostile_bytes_never_crash_decoder_or_core),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
