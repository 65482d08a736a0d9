/* api/cluster_gossip_store.c: the store follows the core's record states (a live version is
 * searchable, a retired one or a tombstone is not, a later live version brings it back), and
 * a partition-mode recall ranks by the cue's cosine and words, at most k, with reason
 * partition and the documented confidence 0.5 * match * encoding * support. The store's file
 * (cluster_gossip_save.c): its records loaded into another core give the same root and the
 * same answers; appended blocks replay to the last saved state in any order; a last block cut
 * short is left out and said; a damaged or foreign file is refused whole; version 1 is read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/cluster_gossip_internal.h"
#include "mnemo/wire.h"
#include "testutil.h"

typedef struct fixture {
    cl_gossip g;
    uint8_t *payloads[8];
    size_t n_payloads;
} fixture;

static mn_id_t id_of(uint8_t b)
{
    mn_id_t id;
    memset(&id, 0, sizeof id);
    id.b[15] = b;
    return id;
}

/* A live version of memory b: content and a 2-d vector, support_n episodes. */
static void put_live(fixture *f, uint8_t b, const char *content, float x, float y,
                     uint32_t support_n)
{
    float v[2] = {x, y};
    mn_memory_record_t mr;
    memset(&mr, 0, sizeof mr);
    mn_memory_init(&mr.mem);
    mr.mem.kind = MN_KIND_SEMANTIC;
    mr.mem.content = (char *)content;
    mr.mem.content_len = strlen(content);
    mr.mem.embedding = v;
    mr.mem.dim = 2;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(mn_wire_memory_encode(&mr, true, &buf, &len), MN_OK);
    f->payloads[f->n_payloads++] = buf;
    mn_gossip_record_t r;
    memset(&r, 0, sizeof r);
    r.id = id_of(b);
    r.hlc = 1;
    r.confidence = 0.8f;
    r.support_n = support_n;
    r.payload = buf;
    r.payload_len = len;
    mn_gossip_payload_digest(buf, len, r.digest);
    if (f->g.g) assert_int_equal(mn_gossip_put(f->g.g, "s", &r, NULL), MN_OK);
    cg_store_apply(&f->g, "s", &r);
}

static void put_dead(fixture *f, uint8_t b, bool tombstone)
{
    mn_gossip_record_t r;
    memset(&r, 0, sizeof r);
    r.id = id_of(b);
    if (tombstone)
        r.forgotten_hlc = 5;
    else {
        r.hlc = 5;
        r.retired = true;
    }
    if (f->g.g) assert_int_equal(mn_gossip_put(f->g.g, "s", &r, NULL), MN_OK);
    cg_store_apply(&f->g, "s", &r);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    pthread_mutex_init(&f->g.mu, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cg_store_free(&f->g);
    for (size_t i = 0; i < f->n_payloads; i++)
        free(f->payloads[i]);
    pthread_mutex_destroy(&f->g.mu);
    free(f);
    return 0;
}

static mn_recall_result_t recall(fixture *f, const char *text, const float *emb, uint32_t k,
                                 mn_err want)
{
    mn_recall_req_t q;
    memset(&q, 0, sizeof q);
    q.text = text;
    q.text_len = text ? strlen(text) : 0;
    q.embedding = emb;
    q.dim = emb ? 2 : 0;
    q.k = k;
    mn_recall_result_t res;
    mn_error err = {0};
    assert_int_equal(cl_gossip_recall(&f->g, "s", &q, &res, &err), want);
    return res;
}

static void test_ranking_and_confidence(void **state)
{
    fixture *f = *state;
    put_live(f, 1, "the deploy pipeline runs canary checks", 1, 0, 6);
    put_live(f, 2, "lunch orders arrive at noon", 0, 1, 3);
    put_live(f, 3, "canary deploys need a rollback plan", 0.7f, 0.7f, 3);
    float cue[2] = {1, 0};
    mn_recall_result_t res = recall(f, "canary deploy pipeline", cue, 10, MN_OK);
    assert_string_equal(res.path, "partition");
    assert_int_equal(res.n_hits, 2); /* memory 2 matches neither the vector nor a word */
    mn_id_t best = id_of(1);
    assert_int_equal(mn_id_cmp(&res.hits[0].memory.id, &best), 0);
    for (size_t i = 0; i < res.n_hits; i++) {
        const mn_recall_hit_t *h = &res.hits[i];
        assert_true(h->confidence.reasons & MN_REASON_PARTITION);
        assert_int_equal(h->memory.kind, MN_KIND_SEMANTIC);
        float support = 1.0f - expf(-(float)(i == 0 ? 6 : 3) / 3.0f);
        assert_float_equal(h->confidence.value, 0.5f * h->score * 0.8f * support, 1e-5);
        if (i) assert_true(h->score <= res.hits[i - 1].score);
    }
    assert_float_equal(res.hits[0].score, 1.0f, 1e-5); /* cosine 1, all three words */
    assert_float_equal(res.recall_confidence, res.hits[0].confidence.value, 1e-7);
    assert_true(res.recall_confidence < 0.5f);
    mn_recall_result_clear(&res);
    res = recall(f, "canary", NULL, 1, MN_OK); /* words alone, k = 1 */
    assert_int_equal(res.n_hits, 1);
    mn_recall_result_clear(&res);
}

static void test_retired_and_forgotten_leave_the_answer(void **state)
{
    fixture *f = *state;
    put_live(f, 1, "canary checks", 1, 0, 3);
    put_live(f, 2, "canary rollback", 1, 0, 3);
    put_dead(f, 1, false); /* retired */
    put_dead(f, 2, true);  /* forgotten */
    cg_space *s = cg_space_of(&f->g, "s", false);
    assert_non_null(s);
    assert_int_equal(s->n, 2);
    assert_int_equal(s->live, 0);
    mn_recall_result_t res = recall(f, "canary", NULL, 10, MN_ERR_NOT_FOUND);
    assert_int_equal(res.n_hits, 0);
    put_live(f, 1, "canary checks again", 1, 0, 4); /* a later version revives it */
    assert_int_equal(s->live, 1);
    res = recall(f, "canary", NULL, 10, MN_OK);
    assert_int_equal(res.n_hits, 1);
    mn_recall_result_clear(&res);
    mn_recall_req_t q = {.text = "x", .text_len = 1};
    mn_error err = {0};
    assert_int_equal(cl_gossip_recall(&f->g, "other", &q, &res, &err), MN_ERR_NOT_FOUND);
}

static void no_send(void *user, const char *to, const uint8_t *frame, size_t len)
{
    (void)user, (void)to, (void)frame, (void)len;
}

static mn_gossip_t *core_new(cl_gossip *g, const char *id)
{
    mn_gossip_cb_t cb = {.user = g, .send = no_send};
    mn_gossip_t *c = NULL;
    assert_int_equal(mn_gossip_new(id, NULL, &cb, 7, 0, &c, NULL), MN_OK);
    return c;
}

typedef struct loaded {
    cl_gossip *g;
    size_t n;
} loaded;

static void load_into(void *arg, const char *space, const mn_gossip_record_t *rec)
{
    loaded *l = arg;
    assert_int_equal(mn_gossip_put(l->g->g, space, rec, NULL), MN_OK);
    mn_gossip_record_t now;
    assert_int_equal(mn_gossip_get(l->g->g, space, &rec->id, &now), MN_OK);
    cg_store_apply(l->g, space, &now);
    l->n++;
}

/* A second node's state: a core and a store, empty. */
static void other_init(cl_gossip *b)
{
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    b->g = core_new(b, "b");
}

static void other_free(cl_gossip *b)
{
    cg_store_free(b);
    mn_gossip_free(b->g);
    pthread_mutex_destroy(&b->mu);
}

static void assert_same_root(cl_gossip *a, cl_gossip *b, uint64_t want)
{
    uint8_t ra[MN_GOSSIP_DIGEST_LEN], rb[MN_GOSSIP_DIGEST_LEN];
    uint64_t ca, cb;
    mn_gossip_root(a->g, "s", ra, &ca);
    mn_gossip_root(b->g, "s", rb, &cb);
    assert_int_equal(ca, want);
    assert_int_equal(cb, want);
    assert_memory_equal(ra, rb, sizeof ra); /* the same records, so the same Merkle root */
}

static uint8_t *concat(const uint8_t *x, size_t nx, const uint8_t *y, size_t ny)
{
    uint8_t *p = malloc(nx + ny);
    assert_non_null(p);
    memcpy(p, x, nx);
    memcpy(p + nx, y, ny);
    return p;
}

static void test_the_store_file_round_trips_and_refuses_damage(void **state)
{
    fixture *f = *state;
    f->g.g = core_new(&f->g, "a");
    put_live(f, 1, "the deploy pipeline runs canary checks", 1, 0, 6);
    put_live(f, 2, "lunch orders arrive at noon", 0, 1, 3);
    put_dead(f, 3, true);
    uint8_t *data = NULL;
    size_t len = 0, n = 0;
    assert_int_equal(cg_save_encode(&f->g, true, &data, &len, &n), MN_OK);
    assert_int_equal(n, 3);
    cl_gossip b;
    other_init(&b);
    loaded l = {.g = &b};
    mn_error err = {0};
    cg_save_info info;
    assert_int_equal(cg_save_decode(data, len, load_into, &l, &info, &err), MN_OK);
    assert_int_equal(l.n, 3);
    assert_int_equal(info.version, 2);
    assert_int_equal(info.blocks, 1);
    assert_false(info.torn);
    assert_int_equal(info.good_len, len);
    assert_same_root(&f->g, &b, 3);
    assert_int_equal(cg_space_of(&b, "s", false)->live, 2);
    mn_recall_req_t q = {.text = "canary", .text_len = 6};
    mn_recall_result_t res;
    assert_int_equal(cl_gossip_recall(&b, "s", &q, &res, &err), MN_OK);
    assert_int_equal(res.n_hits, 1);
    mn_recall_result_clear(&res);
    /* the only block cut short (an append a crash interrupted): nothing handed on, said */
    size_t cuts[] = {len / 2, len - 1, 19, 16};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        l.n = 0;
        assert_int_equal(cg_save_decode(data, cuts[i], load_into, &l, &info, &err), MN_OK);
        assert_int_equal(l.n, 0);
        assert_int_equal(info.blocks, 0);
        assert_int_equal(info.good_len, 16);
        assert_int_equal(info.torn, cuts[i] > 16);
    }
    /* a cut header, a whole block damaged, another magic: refused whole, nothing handed on */
    size_t bad_cuts[] = {0, 10, 15};
    for (size_t i = 0; i < sizeof bad_cuts / sizeof bad_cuts[0]; i++) {
        assert_int_equal(cg_save_decode(data, bad_cuts[i], load_into, &l, &info, &err),
                         MN_ERR_CORRUPT);
        assert_int_equal(l.n, 0);
    }
    data[len - 3] ^= 0x40;
    assert_int_equal(cg_save_decode(data, len, load_into, &l, &info, &err), MN_ERR_CORRUPT);
    assert_non_null(strstr(err.message, "CRC32C"));
    data[len - 3] ^= 0x40;
    data[9] ^= 0x01; /* the version: the header's CRC catches it first */
    assert_int_equal(cg_save_decode(data, len, load_into, &l, &info, &err), MN_ERR_CORRUPT);
    data[9] ^= 0x01;
    data[0] = 'X';
    assert_int_equal(cg_save_decode(data, len, load_into, &l, &info, &err), MN_ERR_CORRUPT);
    assert_int_equal(l.n, 0);
    free(data);
    other_free(&b);
    mn_gossip_free(f->g.g);
    f->g.g = NULL;
}

/* A save appends only the changed records; the blocks replayed in the file's order, or in
 * another, give the state of the last save (the merge is a join); a block cut short at the
 * end leaves the ones before it; a damaged block before the end refuses the file; a version 1
 * file is still read. */
static void test_appended_blocks_replay_to_the_last_state(void **state)
{
    fixture *f = *state;
    f->g.g = core_new(&f->g, "a");
    put_live(f, 1, "the deploy pipeline runs canary checks", 1, 0, 6);
    put_live(f, 2, "lunch orders arrive at noon", 0, 1, 3);
    put_dead(f, 3, true);
    uint8_t *whole = NULL, *b1 = NULL, *b2 = NULL;
    size_t lw = 0, l1 = 0, l2 = 0, n = 0;
    assert_int_equal(cg_save_encode(&f->g, true, &whole, &lw, &n), MN_OK);
    assert_int_equal(n, 3);
    put_dead(f, 1, true); /* memory 1 forgotten after the rewrite */
    put_live(f, 4, "canary rollback plans", 1, 0, 4);
    assert_int_equal(cg_save_encode(&f->g, false, &b1, &l1, &n), MN_OK);
    assert_int_equal(n, 2); /* memories 1 and 4, not 2 and 3 */
    assert_int_equal(cg_save_encode(&f->g, false, &b2, &l2, &n), MN_OK);
    assert_int_equal(n, 0); /* nothing changed since: an empty block */
    uint8_t *t = concat(whole, lw, b1, l1);
    uint8_t *file = concat(t, lw + l1, b2, l2);
    size_t len = lw + l1 + l2;
    free(t);
    cl_gossip b;
    other_init(&b);
    loaded l = {.g = &b};
    mn_error err = {0};
    cg_save_info info;
    assert_int_equal(cg_save_decode(file, len, load_into, &l, &info, &err), MN_OK);
    assert_int_equal(info.blocks, 3);
    assert_false(info.torn);
    assert_int_equal(l.n, 5);
    assert_same_root(&f->g, &b, 4);
    assert_int_equal(cg_space_of(&b, "s", false)->live, 2); /* 2 and 4: 1 stays forgotten */
    other_free(&b);

    /* the appended block first, the whole one after it: the same state */
    uint8_t *rev = concat(whole, 16, b1, l1);
    uint8_t *rev2 = concat(rev, 16 + l1, whole + 16, lw - 16);
    other_init(&b);
    l = (loaded){.g = &b};
    assert_int_equal(cg_save_decode(rev2, lw + l1, load_into, &l, &info, &err), MN_OK);
    assert_same_root(&f->g, &b, 4);
    assert_int_equal(cg_space_of(&b, "s", false)->live, 2);
    other_free(&b);
    free(rev);
    free(rev2);

    /* a third block cut short: the two before it stand, and the cut is said */
    other_init(&b);
    l = (loaded){.g = &b};
    assert_int_equal(cg_save_decode(file, lw + l1 + 5, load_into, &l, &info, &err), MN_OK);
    assert_true(info.torn);
    assert_int_equal(info.blocks, 2);
    assert_int_equal(info.good_len, lw + l1);
    assert_same_root(&f->g, &b, 4);
    other_free(&b);

    /* the first block damaged while whole blocks follow: refused, nothing handed on */
    file[lw - 3] ^= 0x40;
    l.n = 0;
    assert_int_equal(cg_save_decode(file, len, load_into, &l, &info, &err), MN_ERR_CORRUPT);
    assert_non_null(strstr(err.message, "block 0"));
    assert_int_equal(l.n, 0);
    file[lw - 3] ^= 0x40;

    /* version 1: one CRC over the rest, then the body of a block */
    size_t lv1 = 16 + (lw - 24);
    uint8_t *v1 = malloc(lv1);
    assert_non_null(v1);
    memcpy(v1, "MNGOSSIP\x01\x00\x00\x00", 12);
    memcpy(v1 + 16, whole + 24, lw - 24);
    uint32_t crc = mn_crc32c(0, v1 + 16, lv1 - 16);
    for (size_t i = 0; i < 4; i++)
        v1[12 + i] = (uint8_t)(crc >> (8 * i));
    other_init(&b);
    l = (loaded){.g = &b};
    assert_int_equal(cg_save_decode(v1, lv1, load_into, &l, &info, &err), MN_OK);
    assert_int_equal(info.version, 1);
    assert_int_equal(l.n, 3);
    v1[lv1 - 1] ^= 0x01;
    assert_int_equal(cg_save_decode(v1, lv1, NULL, NULL, &info, &err), MN_ERR_CORRUPT);
    other_free(&b);
    free(v1);
    free(whole);
    free(b1);
    free(b2);
    free(file);
    mn_gossip_free(f->g.g);
    f->g.g = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ranking_and_confidence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retired_and_forgotten_leave_the_answer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_the_store_file_round_trips_and_refuses_damage, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_appended_blocks_replay_to_the_last_state, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
