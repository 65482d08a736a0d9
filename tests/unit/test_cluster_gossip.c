/* api/cluster_gossip_store.c: the store follows the core's record states (a live version is
 * searchable, a retired one or a tombstone is not, a later live version brings it back), and
 * a partition-mode recall ranks by the cue's cosine and words, at most k, with reason
 * partition and the documented confidence 0.5 * match * encoding * support, over the
 * memories that pass the request's filter (none for as_of). The feeder (cluster_gossip_feed.c,
 * on a real engine): a forget of a semantic memory the core never held is a tombstone; a
 * suppression a retired version, an unsuppression live again, and a re-derivation keeps the
 * suppression. The store's file
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

/* The fields of a memory a filter reads, beyond its words and vector. */
typedef struct fields {
    const char *tag; /* one tag, or NULL */
    int64_t when_ms; /* 0: MN_TIME_UNSET */
} fields;

/* A live version of memory id: content and a 2-d vector, support_n episodes, the fields; with
 * a core, merged into it and the store following the merged state (as the server does). */
static void put_live_id(fixture *f, const mn_id_t *id, const char *content, float x, float y,
                        uint32_t support_n, fields fl)
{
    float v[2] = {x, y};
    char *tags[1] = {(char *)fl.tag};
    mn_memory_record_t mr;
    memset(&mr, 0, sizeof mr);
    mn_memory_init(&mr.mem);
    mr.mem.kind = MN_KIND_SEMANTIC;
    mr.mem.content = (char *)content;
    mr.mem.content_len = strlen(content);
    mr.mem.embedding = v;
    mr.mem.dim = 2;
    mr.mem.tags = fl.tag ? tags : NULL;
    mr.mem.n_tags = fl.tag ? 1 : 0;
    mr.mem.when_ms = fl.when_ms ? fl.when_ms : mr.mem.when_ms;
    mr.mem.created_at_ms = fl.when_ms;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(mn_wire_memory_encode(&mr, true, &buf, &len), MN_OK);
    f->payloads[f->n_payloads++] = buf;
    mn_gossip_record_t r;
    memset(&r, 0, sizeof r);
    r.id = *id;
    r.hlc = 1;
    r.confidence = 0.8f;
    r.support_n = support_n;
    r.payload = buf;
    r.payload_len = len;
    mn_gossip_payload_digest(buf, len, r.digest);
    mn_gossip_record_t now;
    if (f->g.g) {
        assert_int_equal(mn_gossip_put(f->g.g, "s", &r, NULL), MN_OK);
        assert_int_equal(mn_gossip_get(f->g.g, "s", id, &now), MN_OK);
    }
    cg_store_apply(&f->g, "s", f->g.g ? &now : &r);
}

/* A live version of memory b: content and a 2-d vector, support_n episodes. */
static void put_live(fixture *f, uint8_t b, const char *content, float x, float y,
                     uint32_t support_n)
{
    mn_id_t id = id_of(b);
    put_live_id(f, &id, content, x, y, support_n, (fields){0});
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

/* A recall request as the doors make it: no filter (mn_filter_init), no time. */
static mn_recall_req_t cue_of(const char *text, const float *emb, uint32_t k)
{
    mn_recall_req_t q;
    memset(&q, 0, sizeof q);
    mn_filter_init(&q.filter);
    q.text = text;
    q.text_len = text ? strlen(text) : 0;
    q.embedding = emb;
    q.dim = emb ? 2 : 0;
    q.k = k;
    return q;
}

static mn_recall_result_t recall(fixture *f, const char *text, const float *emb, uint32_t k,
                                 mn_err want)
{
    mn_recall_req_t q = cue_of(text, emb, k);
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
    mn_recall_req_t q = cue_of("x", NULL, 10);
    mn_error err = {0};
    assert_int_equal(cl_gossip_recall(&f->g, "other", &q, &res, &err), MN_ERR_NOT_FOUND);
}

#define DAY_MS (24LL * 3600 * 1000)

/* q's answer has n hits, the first of them first (when not NULL). */
static void expect(fixture *f, const mn_recall_req_t *q, size_t n, const mn_id_t *first)
{
    mn_recall_result_t res;
    mn_error err = {0};
    assert_int_equal(cl_gossip_recall(&f->g, "s", q, &res, &err), MN_OK);
    assert_int_equal(res.n_hits, n);
    if (first) assert_int_equal(mn_id_cmp(&res.hits[0].memory.id, first), 0);
    mn_recall_result_clear(&res);
}

/* A stand-in passes the request's filter exactly as the holder's recall would (the engine's
 * matcher): kind, tags, when, confidence, an expression, the window of a time the text names
 * under time = filter. An as_of request gets none: gossip keeps no history. */
static void test_a_partition_answer_applies_the_requests_filter(void **state)
{
    fixture *f = *state;
    int64_t now = mn_time_now_ms();
    mn_id_t a = id_of(1), b = id_of(2);
    put_live_id(f, &a, "canary deploy notes", 1, 0, 3, (fields){"ops", now - DAY_MS});
    put_live_id(f, &b, "canary deploy rollback", 1, 0, 3, (fields){"hr", now - 10 * DAY_MS});
    mn_recall_req_t q = cue_of("canary deploy", NULL, 10);
    expect(f, &q, 2, NULL);
    q.filter.kind = MN_KIND_EPISODIC; /* stand-ins are semantic memories */
    expect(f, &q, 0, NULL);
    q.filter.kind = MN_KIND_SEMANTIC;
    expect(f, &q, 2, NULL);
    char *ops[] = {"ops"};
    q.filter.tags_any = ops;
    q.filter.n_tags_any = 1;
    expect(f, &q, 1, &a);
    mn_filter_init(&q.filter);
    q.filter.when_from_ms = now - 2 * DAY_MS;
    expect(f, &q, 1, &a);
    mn_filter_init(&q.filter);
    q.filter.min_confidence = 0.9f; /* both were encoded at 0.8 */
    expect(f, &q, 0, NULL);
    mn_filter_init(&q.filter);
    mn_filter_value_t hr = {.s = "hr"};
    mn_filter_node_t leaf = {.type = MN_FILTER_LEAF,
                             .field = MN_FILTER_FIELD_TAGS,
                             .op = MN_FILTER_OP_CONTAINS,
                             .size = 1,
                             .vals = &hr,
                             .n_vals = 1};
    q.filter.expr = &leaf;
    q.filter.n_expr = 1;
    expect(f, &q, 1, &b);

    /* the text names yesterday: boosted (both come), or kept to it (a alone) */
    mn_recall_req_t t = cue_of("canary deploy notes from yesterday", NULL, 10);
    t.time = MN_RECALL_TIME_BOOST;
    expect(f, &t, 2, &a);
    t.time = MN_RECALL_TIME_FILTER;
    expect(f, &t, 1, &a);
    mn_recall_result_t res;
    mn_error err = {0};
    assert_int_equal(cl_gossip_recall(&f->g, "s", &t, &res, &err), MN_OK);
    assert_true(res.has_time_window); /* said as a recall of the space says it */
    assert_string_equal(res.time_window.applied, "filter");
    mn_recall_result_clear(&res);

    /* as_of: none stands in, and the error says why; a filter a recall refuses: invalid */
    mn_filter_init(&q.filter);
    q.filter.as_of_ms = now - DAY_MS;
    assert_int_equal(cl_gossip_recall(&f->g, "s", &q, &res, &err), MN_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.message, "as_of"));
    assert_int_equal(res.n_hits, 0);
    mn_filter_init(&q.filter);
    q.filter.kind = 7;
    assert_int_equal(cl_gossip_recall(&f->g, "s", &q, &res, &err), MN_ERR_INVALID);
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
    mn_recall_req_t q = cue_of("canary", NULL, 10);
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

/* ---- the feeder (cluster_gossip_feed.c) on a real engine that leads space "s" ---- */

static void lead_init(fixture *f, mn_test_eng *t)
{
    mn_test_eng_init(t, "gossip_feed");
    mn_test_eng_defaults(t);
    mn_test_eng_open(t);
    assert_int_equal(mn_test_space(t->e, "s", 2, MN_METRIC_COSINE), MN_OK);
    f->g.engine = t->e;
    f->g.g = core_new(&f->g, "a");
}

static void lead_free(fixture *f, mn_test_eng *t)
{
    mn_gossip_free(f->g.g);
    f->g.g = NULL;
    mn_test_eng_free(t);
}

static mn_id_t remember(mn_engine_t *e, mn_kind_t kind, const char *content, float x, float y)
{
    float v[2] = {x, y};
    mn_memory_t m;
    memset(&m, 0, sizeof m);
    mn_memory_init(&m);
    m.kind = kind;
    m.content = (char *)content;
    m.content_len = strlen(content);
    m.embedding = v;
    m.dim = 2;
    mn_id_t id;
    mn_error err = {0};
    assert_int_equal(mn_engine_remember(e, "s", &m, 1, &id, &err), MN_OK);
    return id;
}

/* The position after the last WAL entry of "s". */
static uint64_t wal_end(mn_engine_t *e)
{
    uint64_t last = 0, epoch = 0;
    assert_int_equal(mn_engine_space_position(e, "s", &last, &epoch, NULL), MN_OK);
    return last + 1;
}

static void forget(mn_engine_t *e, const mn_id_t *id, mn_forget_mode_t mode)
{
    mn_error err = {0};
    assert_int_equal(mn_engine_forget(e, "s", id, mode, &err), MN_OK);
}

/* The core's record of id ("s"): MN_ERR_NOT_FOUND when it holds none. */
static mn_err core_rec(fixture *f, const mn_id_t *id, mn_gossip_record_t *r)
{
    return mn_gossip_get(f->g.g, "s", id, r);
}

/* A forget of a semantic memory whose version the core never got (the entries that carried
 * it were trimmed before the feeder read them, or the core lost them) is a tombstone all the
 * same, so the live version a peer pushes later stays out. An episode's is nothing. */
static void test_a_forget_writes_a_tombstone_the_core_never_held(void **state)
{
    fixture *f = *state;
    mn_test_eng t;
    lead_init(f, &t);
    mn_id_t sem = remember(t.e, MN_KIND_SEMANTIC, "badges open the north door", 1, 0);
    mn_id_t ep = remember(t.e, MN_KIND_EPISODIC, "a badge was lost today", 0, 1);
    uint64_t pos = wal_end(t.e); /* the feeder reads on from here: it never saw the two */
    forget(t.e, &sem, MN_FORGET_DELETE);
    forget(t.e, &ep, MN_FORGET_DELETE);
    mn_kind_t kind;
    mn_error err = {0};
    assert_int_equal(mn_engine_kind(t.e, "s", &sem, &kind, &err), MN_OK); /* kept when gone */
    assert_int_equal(kind, MN_KIND_SEMANTIC);
    mn_id_t unknown = id_of(9);
    assert_int_equal(mn_engine_kind(t.e, "s", &unknown, &kind, &err), MN_ERR_NOT_FOUND);
    cg_feed_space(&f->g, "s", &pos);
    assert_int_equal(pos, wal_end(t.e));
    mn_gossip_record_t r;
    assert_int_equal(core_rec(f, &sem, &r), MN_OK);
    assert_true(r.forgotten_hlc != 0);
    assert_int_equal(core_rec(f, &ep, &r), MN_ERR_NOT_FOUND); /* episodes are not gossiped */
    put_live_id(f, &sem, "badges open the north door", 1, 0, 0, (fields){0}); /* a peer's */
    assert_int_equal(core_rec(f, &sem, &r), MN_OK);
    assert_true(r.forgotten_hlc != 0); /* the tombstone wins */
    recall(f, "badges north door", NULL, 10, MN_ERR_NOT_FOUND);
    lead_free(f, &t);
}

/* A suppressed semantic memory is a retired version: no partition answer returns it (the
 * holder's recall would not); unsuppressed, it is live again. A suppression of one the core
 * never held is a retired version too. */
static void test_a_suppressed_semantic_memory_leaves_the_partition_answers(void **state)
{
    fixture *f = *state;
    mn_test_eng t;
    lead_init(f, &t);
    mn_id_t sem = remember(t.e, MN_KIND_SEMANTIC, "the wifi password rotates on monday", 1, 0);
    uint64_t pos = 0;
    cg_feed_space(&f->g, "s", &pos);
    mn_recall_result_t res = recall(f, "wifi password", NULL, 10, MN_OK);
    assert_int_equal(res.n_hits, 1);
    mn_recall_result_clear(&res);
    forget(t.e, &sem, MN_FORGET_SUPPRESS);
    cg_feed_space(&f->g, "s", &pos);
    mn_gossip_record_t r;
    assert_int_equal(core_rec(f, &sem, &r), MN_OK);
    assert_true(r.retired && !r.forgotten_hlc);
    recall(f, "wifi password", NULL, 10, MN_ERR_NOT_FOUND); /* nothing live is left */
    mn_error err = {0};
    assert_int_equal(mn_engine_unsuppress(t.e, "s", &sem, &err), MN_OK);
    cg_feed_space(&f->g, "s", &pos);
    res = recall(f, "wifi password", NULL, 10, MN_OK);
    assert_int_equal(res.n_hits, 1);
    assert_int_equal(mn_id_cmp(&res.hits[0].memory.id, &sem), 0);
    assert_true(strstr(res.hits[0].memory.content, "monday") != NULL);
    mn_recall_result_clear(&res);

    mn_id_t other = remember(t.e, MN_KIND_SEMANTIC, "badges open the north door", 0, 1);
    pos = wal_end(t.e); /* never read: the core does not hold it */
    forget(t.e, &other, MN_FORGET_SUPPRESS);
    cg_feed_space(&f->g, "s", &pos);
    assert_int_equal(core_rec(f, &other, &r), MN_OK);
    assert_true(r.retired && !r.forgotten_hlc);
    lead_free(f, &t);
}

/* Forgetting an episode re-derives the semantic memories it supported, and the re-derived
 * version keeps a client's suppression: gossip keeps it retired, not live again. */
static void test_a_rederived_suppressed_memory_stays_retired(void **state)
{
    fixture *f = *state;
    mn_test_eng t;
    lead_init(f, &t);
    mn_id_t ep[4];
    for (int i = 0; i < 4; i++)
        ep[i] =
            remember(t.e, MN_KIND_EPISODIC, "the canary deploy runs at noon", 1, 0.001f * (float)i);
    mn_consolidate_opts_t opts = {.threshold = 0.9f, .min_support = 3};
    mn_consolidate_result_t cr;
    mn_error err = {0};
    assert_int_equal(mn_engine_consolidate(t.e, "s", &opts, &cr, &err), MN_OK);
    assert_int_equal(cr.created, 1);
    mn_id_t sem = cr.ids[0];
    free(cr.ids);
    forget(t.e, &sem, MN_FORGET_SUPPRESS);
    forget(t.e, &ep[0], MN_FORGET_DELETE); /* three episodes left: re-derived, still suppressed */
    mn_memory_t m;
    assert_int_equal(mn_engine_get(t.e, "s", &sem, false, &m, &err), MN_OK);
    assert_true(m.suppressed);
    assert_int_equal(m.n_support, 3);
    mn_memory_clear(&m);
    uint64_t pos = 0;
    cg_feed_space(&f->g, "s", &pos);
    mn_gossip_record_t r;
    assert_int_equal(core_rec(f, &sem, &r), MN_OK);
    assert_true(r.retired && !r.forgotten_hlc);
    recall(f, "canary deploy", NULL, 10, MN_ERR_NOT_FOUND);
    lead_free(f, &t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ranking_and_confidence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retired_and_forgotten_leave_the_answer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_partition_answer_applies_the_requests_filter, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_the_store_file_round_trips_and_refuses_damage, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_appended_blocks_replay_to_the_last_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_forget_writes_a_tombstone_the_core_never_held, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_suppressed_semantic_memory_leaves_the_partition_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_rederived_suppressed_memory_stays_retired, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
