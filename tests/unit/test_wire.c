/* wire: WAL entries and memory records round-trip, and corruption is caught by
 * the CRC or the FlatBuffers verifier (never a crash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/engine.h"
#include "mnemo/wire.h"

static void fill_memory(mn_memory_t *m, float *emb, char **tags, mn_kv_t *md)
{
    mn_memory_init(m);
    for (int i = 0; i < 16; i++) m->id.b[i] = (uint8_t)(i * 7 + 1);
    m->content = "the cat sat on the mat";
    m->content_len = strlen(m->content);
    m->embedding = emb;
    m->dim = 4;
    m->when_ms = 1700000000123;
    m->created_at_ms = 1700000000456;
    m->confidence = 0.75f;
    m->tags = tags;
    m->n_tags = 2;
    m->metadata = md;
    m->n_metadata = 1;
    m->session = "s-1";
    m->lifecycle = MN_LIFECYCLE_SESSION;
    m->expires_at_ms = 1700086400456;
    m->idempotency_key = "turn-42";
}

static void test_wal_remember_round_trips(void **state)
{
    (void)state;
    float emb[4] = {0.5f, -1.25f, 3.0f, 0.0f};
    char *tags[2] = {"a", "b"};
    mn_kv_t md[1] = {{"k", "v"}};
    mn_memory_t m;
    fill_memory(&m, emb, tags, md);
    mn_wal_entry_t e = {0};
    strcpy(e.space, "agent-1");
    e.epoch = 3;
    e.lsn = 99;
    e.hlc = mn_hlc_make(1700000000000, 5);
    e.type = MN_WAL_OP_REMEMBER;
    e.op.remember.mems = &m;
    e.op.remember.n = 1;
    uint8_t *buf;
    size_t len;
    assert_int_equal(mn_wire_wal_encode(&e, &buf, &len), MN_OK);
    mn_wal_entry_t d;
    mn_error err = {0};
    assert_int_equal(mn_wire_wal_decode(buf, len, &d, &err), MN_OK);
    assert_string_equal(d.space, "agent-1");
    assert_int_equal(d.epoch, 3);
    assert_int_equal(d.lsn, 99);
    assert_int_equal(d.hlc, e.hlc);
    assert_int_equal(d.type, MN_WAL_OP_REMEMBER);
    assert_int_equal(d.op.remember.n, 1);
    mn_memory_t *r = &d.op.remember.mems[0];
    assert_memory_equal(r->id.b, m.id.b, 16);
    assert_string_equal(r->content, m.content);
    assert_int_equal(r->dim, 4);
    assert_memory_equal(r->embedding, emb, sizeof emb);
    assert_int_equal(r->when_ms, m.when_ms);
    assert_true(r->confidence == 0.75f);
    assert_int_equal(r->n_tags, 2);
    assert_string_equal(r->tags[1], "b");
    assert_string_equal(r->metadata[0].value, "v");
    assert_string_equal(r->session, "s-1");
    assert_null(r->where);
    assert_int_equal(r->lifecycle, MN_LIFECYCLE_SESSION);
    assert_string_equal(r->idempotency_key, "turn-42");
    mn_wal_entry_clear(&d);
    free(buf);
}

static void test_wal_rejects_bad_crc_and_garbage(void **state)
{
    (void)state;
    mn_wal_entry_t e = {0};
    strcpy(e.space, "s");
    e.lsn = 1;
    e.type = MN_WAL_OP_FORGET;
    e.op.forget.mode = MN_FORGET_SUPPRESS;
    e.op.forget.id.b[0] = 1;
    uint8_t *buf;
    size_t len;
    assert_int_equal(mn_wire_wal_encode(&e, &buf, &len), MN_OK);
    mn_wal_entry_t d;
    mn_error err = {0};
    assert_int_equal(mn_wire_wal_decode(buf, len, &d, &err), MN_OK);
    assert_int_equal(d.op.forget.mode, MN_FORGET_SUPPRESS);
    mn_wal_entry_clear(&d);
    /* every single-bit flip anywhere is caught */
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1 << bit);
            assert_int_equal(mn_wire_wal_decode(buf, len, &d, &err), MN_ERR_CORRUPT);
            buf[i] ^= (uint8_t)(1 << bit);
        }
    }
    /* truncation */
    assert_int_equal(mn_wire_wal_decode(buf, len - 1, &d, &err), MN_ERR_CORRUPT);
    assert_int_equal(mn_wire_wal_decode(buf, 3, &d, &err), MN_ERR_CORRUPT);
    free(buf);
    /* random garbage with a valid CRC must fail verification, not crash */
    mn_prng_t p;
    mn_prng_seed(&p, 1);
    uint8_t g[256];
    for (int round = 0; round < 2000; round++) {
        size_t n = 12 + mn_prng_below(&p, sizeof g - 12);
        for (size_t i = 4; i < n; i++) g[i] = (uint8_t)mn_prng_next(&p);
        uint32_t c = mn_crc32c(0, g + 4, n - 4);
        for (int i = 0; i < 4; i++) g[i] = (uint8_t)(c >> (8 * i));
        mn_err rc = mn_wire_wal_decode(g, n, &d, &err);
        if (rc == MN_OK) mn_wal_entry_clear(&d);
        else assert_int_equal(rc, MN_ERR_CORRUPT);
    }
}

static void test_memory_record_tombstone_keeps_no_content(void **state)
{
    (void)state;
    float emb[4] = {1, 2, 3, 4};
    char *tags[2] = {"a", "b"};
    mn_kv_t md[1] = {{"k", "v"}};
    mn_memory_record_t r = {0};
    fill_memory(&r.mem, emb, tags, md);
    r.tombstone = true;
    r.forgotten_at_ms = 1800000000000;
    uint8_t *buf;
    size_t len;
    assert_int_equal(mn_wire_memory_encode(&r, true, &buf, &len), MN_OK);
    mn_memory_record_t d;
    assert_int_equal(mn_wire_memory_decode(buf, len, &d, NULL), MN_OK);
    assert_true(d.tombstone);
    assert_int_equal(d.forgotten_at_ms, 1800000000000);
    assert_null(d.mem.content);
    assert_null(d.mem.embedding);
    assert_int_equal(d.mem.n_tags, 0);
    assert_int_equal(d.mem.n_metadata, 0);
    assert_memory_equal(d.mem.id.b, r.mem.id.b, 16);
    mn_memory_clear(&d.mem);
    free(buf);
    /* a live record without its embedding */
    r.tombstone = false;
    assert_int_equal(mn_wire_memory_encode(&r, false, &buf, &len), MN_OK);
    assert_int_equal(mn_wire_memory_decode(buf, len, &d, NULL), MN_OK);
    assert_false(d.tombstone);
    assert_null(d.mem.embedding);
    assert_string_equal(d.mem.content, "the cat sat on the mat");
    mn_memory_clear(&d.mem);
    free(buf);
}

static void test_wal_erased_memory_round_trips_without_content(void **state)
{
    (void)state;
    float emb[4] = {0.5f, -1.25f, 3.0f, 0.0f};
    char *tags[2] = {"a", "b"};
    mn_kv_t md[1] = {{"k", "v"}};
    mn_memory_t m[2];
    fill_memory(&m[0], emb, tags, md);
    fill_memory(&m[1], emb, tags, md);
    m[1].id.b[0] ^= 0xff;
    m[1].forgotten = true; /* erased after the entry was written */
    m[1].forgotten_at_ms = 1800000000000;
    mn_wal_entry_t e = {0};
    strcpy(e.space, "s");
    e.epoch = 2;
    e.lsn = 7;
    e.hlc = 77;
    e.type = MN_WAL_OP_REMEMBER;
    e.op.remember.mems = m;
    e.op.remember.n = 2;
    uint8_t *buf;
    size_t len;
    assert_int_equal(mn_wire_wal_encode(&e, &buf, &len), MN_OK);
    /* neither the content nor the vector of the erased memory are in the bytes
     * (the other memory, with the same values, keeps them once) */
    const char *c = m[0].content;
    size_t hits = 0;
    for (size_t i = 0; i + strlen(c) <= len; i++)
        if (!memcmp(buf + i, c, strlen(c))) hits++;
    assert_int_equal(hits, 1);
    hits = 0;
    for (size_t i = 0; i + sizeof emb <= len; i++)
        if (!memcmp(buf + i, emb, sizeof emb)) hits++;
    assert_int_equal(hits, 1);
    mn_wal_entry_t d;
    mn_error err = {0};
    assert_int_equal(mn_wire_wal_decode(buf, len, &d, &err), MN_OK);
    assert_int_equal(d.lsn, 7);
    assert_int_equal(d.epoch, 2);
    assert_int_equal(d.op.remember.n, 2);
    assert_false(d.op.remember.mems[0].forgotten);
    assert_string_equal(d.op.remember.mems[0].content, c);
    const mn_memory_t *x = &d.op.remember.mems[1];
    assert_true(x->forgotten);
    assert_int_equal(x->forgotten_at_ms, 1800000000000);
    assert_memory_equal(x->id.b, m[1].id.b, 16);
    assert_int_equal(x->when_ms, m[1].when_ms);
    assert_int_equal(x->created_at_ms, m[1].created_at_ms);
    assert_null(x->content);
    assert_null(x->embedding);
    assert_int_equal(x->n_tags, 0);
    assert_null(x->idempotency_key);
    mn_wal_entry_clear(&d);
    free(buf);
}

static void test_wal_space_drop_and_unsuppress_round_trip(void **state)
{
    (void)state;
    mn_wal_entry_t e = {0};
    strcpy(e.space, "notes");
    e.epoch = 4;
    e.lsn = 12;
    e.type = MN_WAL_OP_SPACE_DROP;
    e.op.space_drop.space_id = 9;
    e.op.space_drop.at_ms = 1700000000999;
    uint8_t *buf;
    size_t len;
    assert_int_equal(mn_wire_wal_encode(&e, &buf, &len), MN_OK);
    mn_wal_entry_t d;
    mn_error err = {0};
    assert_int_equal(mn_wire_wal_decode(buf, len, &d, &err), MN_OK);
    assert_int_equal(d.type, MN_WAL_OP_SPACE_DROP);
    assert_string_equal(d.space, "notes");
    assert_int_equal(d.epoch, 4);
    assert_int_equal(d.op.space_drop.space_id, 9);
    assert_int_equal(d.op.space_drop.at_ms, 1700000000999);
    mn_wal_entry_clear(&d);
    free(buf);
    memset(&e, 0, sizeof e);
    strcpy(e.space, "notes");
    e.type = MN_WAL_OP_UNSUPPRESS;
    e.op.unsuppress.id.b[3] = 3;
    e.op.unsuppress.at_ms = 1700000001000;
    assert_int_equal(mn_wire_wal_encode(&e, &buf, &len), MN_OK);
    assert_int_equal(mn_wire_wal_decode(buf, len, &d, &err), MN_OK);
    assert_int_equal(d.type, MN_WAL_OP_UNSUPPRESS);
    assert_int_equal(d.op.unsuppress.id.b[3], 3);
    assert_int_equal(d.op.unsuppress.at_ms, 1700000001000);
    mn_wal_entry_clear(&d);
    free(buf);
}

static void test_wal_forget_batch_round_trips(void **state)
{
    (void)state;
    mn_id_t ids[3] = {{{0}}};
    for (int i = 0; i < 3; i++) ids[i].b[15] = (uint8_t)(i + 1);
    mn_wal_entry_t e = {0};
    strcpy(e.space, "notes");
    e.lsn = 7;
    e.type = MN_WAL_OP_FORGET_BATCH;
    e.op.forget_batch.ids = ids;
    e.op.forget_batch.n = 3;
    e.op.forget_batch.mode = MN_FORGET_SUPPRESS;
    e.op.forget_batch.reason = MN_FORGET_REASON_CLIENT;
    e.op.forget_batch.at_ms = 1700000002000;
    uint8_t *buf;
    size_t len;
    assert_int_equal(mn_wire_wal_encode(&e, &buf, &len), MN_OK);
    mn_wal_entry_t d;
    mn_error err = {0};
    assert_int_equal(mn_wire_wal_decode(buf, len, &d, &err), MN_OK);
    assert_int_equal(d.type, MN_WAL_OP_FORGET_BATCH);
    assert_int_equal(d.lsn, 7);
    assert_int_equal(d.op.forget_batch.n, 3);
    for (int i = 0; i < 3; i++) assert_memory_equal(d.op.forget_batch.ids[i].b, ids[i].b, 16);
    assert_int_equal(d.op.forget_batch.mode, MN_FORGET_SUPPRESS);
    assert_int_equal(d.op.forget_batch.at_ms, 1700000002000);
    mn_wal_entry_clear(&d);
    free(buf);
}

static void test_memory_record_keeps_suppress_times(void **state)
{
    (void)state;
    float emb[4] = {1, 2, 3, 4};
    char *tags[2] = {"a", "b"};
    mn_kv_t md[1] = {{"k", "v"}};
    mn_memory_record_t r = {0};
    fill_memory(&r.mem, emb, tags, md);
    r.mem.suppressed = true;
    r.mem.suppressed_at_ms = 1700000005000;
    r.mem.unsuppressed_at_ms = 1700000004000;
    uint8_t *buf;
    size_t len;
    assert_int_equal(mn_wire_memory_encode(&r, false, &buf, &len), MN_OK);
    mn_memory_record_t d;
    assert_int_equal(mn_wire_memory_decode(buf, len, &d, NULL), MN_OK);
    assert_true(d.mem.suppressed);
    assert_int_equal(d.mem.suppressed_at_ms, 1700000005000);
    assert_int_equal(d.mem.unsuppressed_at_ms, 1700000004000);
    assert_false(d.mem.forgotten);
    mn_memory_clear(&d.mem);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wal_remember_round_trips),
        cmocka_unit_test(test_wal_rejects_bad_crc_and_garbage),
        cmocka_unit_test(test_memory_record_tombstone_keeps_no_content),
        cmocka_unit_test(test_wal_erased_memory_round_trips_without_content),
        cmocka_unit_test(test_wal_space_drop_and_unsuppress_round_trip),
        cmocka_unit_test(test_memory_record_keeps_suppress_times),
        cmocka_unit_test(test_wal_forget_batch_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
