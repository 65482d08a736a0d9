/* cluster_query_wire: the query channel's frames. A request (cue, filter and its expression,
 * the caller's grant) and an answer (hits with their memories, missing spaces with reasons, a
 * refused cue) read back as written; every truncation of a frame, trailing bytes, a wrong
 * header, and thousands of random byte flips are refused or read without harm (run under
 * ASan: no read outside the frame, nothing leaked). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/cluster_query_wire.h"
#include "testutil.h"

static const float EMB[4] = {0.25f, -0.5f, 1.0f, 0.125f};
static const char *const SPACES[] = {"a-1", "b-2", "c-3"};

static void make_req(mn_recall_req_t *q, mn_filter_node_t *e, mn_filter_value_t *v)
{
    static char *tags[] = {"x", "y"};
    static mn_kv_t meta[] = {{"k", "v"}};
    memset(q, 0, sizeof *q);
    q->embedding = EMB;
    q->dim = 4;
    q->text = "apples and pears";
    q->text_len = strlen(q->text);
    q->k = 7;
    q->spread = true;
    q->max_hops = 3;
    q->hop_decay = 0.5f;
    q->time = MN_RECALL_TIME_BOOST;
    mn_filter_init(&q->filter);
    q->filter.tags_any = tags;
    q->filter.n_tags_any = 2;
    q->filter.metadata = meta;
    q->filter.n_metadata = 1;
    q->filter.who = "ann";
    v[0] = (mn_filter_value_t){.s = "red", .num = 0, .has_num = false};
    v[1] = (mn_filter_value_t){.s = NULL, .num = 0.5, .has_num = true};
    e[0] = (mn_filter_node_t){.type = MN_FILTER_AND, .size = 3};
    e[1] = (mn_filter_node_t){.type = MN_FILTER_LEAF,
                              .field = MN_FILTER_FIELD_TAGS,
                              .op = MN_FILTER_OP_CONTAINS,
                              .size = 1,
                              .vals = &v[0],
                              .n_vals = 1};
    e[2] = (mn_filter_node_t){.type = MN_FILTER_LEAF,
                              .field = MN_FILTER_FIELD_IMPORTANCE,
                              .op = MN_FILTER_OP_GT,
                              .size = 1,
                              .vals = &v[1],
                              .n_vals = 1};
    q->filter.expr = e;
    q->filter.n_expr = 3;
}

static void request_frame(uint8_t **buf, size_t *len, bool every)
{
    mn_recall_req_t q;
    mn_filter_node_t e[3];
    mn_filter_value_t v[2];
    make_req(&q, e, v);
    api_many_caller c = {.read = API_READ_NEAREST, .role = MN_AUTH_READ, .every_space = every};
    snprintf(c.key_name, sizeof c.key_name, "reader");
    mn_error err = {0};
    assert_int_equal(clq_request_encode(42, 900, &c, SPACES, 3, &q, buf, len, &err), MN_OK);
}

static void test_request_round_trip(void **state)
{
    (void)state;
    uint8_t *buf;
    size_t len;
    request_frame(&buf, &len, false);
    clq_request r;
    mn_error err = {0};
    assert_int_equal(clq_request_decode(buf, len, &r, &err), MN_OK);
    assert_int_equal(r.id, 42);
    assert_int_equal(r.timeout_ms, 900);
    assert_int_equal(r.caller.read, API_READ_NEAREST);
    assert_int_equal(r.caller.role, MN_AUTH_READ);
    assert_string_equal(r.caller.key_name, "reader");
    assert_string_equal(r.grant_spaces, "a-1,b-2,c-3"); /* the batch: each checked at the origin */
    assert_int_equal(r.n, 3);
    assert_string_equal(r.spaces[2], "c-3");
    const mn_recall_req_t *q = r.req;
    assert_int_equal(q->dim, 4);
    assert_memory_equal(q->embedding, EMB, sizeof EMB);
    assert_int_equal(q->text_len, strlen("apples and pears"));
    assert_memory_equal(q->text, "apples and pears", q->text_len);
    assert_int_equal(q->k, 7);
    assert_true(q->spread);
    assert_int_equal(q->max_hops, 3);
    assert_true(q->hop_decay == 0.5f);
    assert_int_equal(q->time, MN_RECALL_TIME_BOOST);
    assert_int_equal(q->filter.n_tags_any, 2);
    assert_string_equal(q->filter.tags_any[1], "y");
    assert_string_equal(q->filter.metadata[0].value, "v");
    assert_string_equal(q->filter.who, "ann");
    assert_null(q->filter.where);
    assert_int_equal(q->filter.n_expr, 3);
    assert_int_equal(q->filter.expr[0].size, 3);
    assert_string_equal(q->filter.expr[1].vals[0].s, "red");
    assert_true(q->filter.expr[2].vals[0].has_num && q->filter.expr[2].vals[0].num == 0.5);
    clq_request_clear(&r);
    free(buf);
    request_frame(&buf, &len, true);
    assert_int_equal(clq_request_decode(buf, len, &r, &err), MN_OK);
    assert_string_equal(r.grant_spaces, "*");
    clq_request_clear(&r);
    free(buf);
}

static void fill_hit(mn_recall_hit_t *h, uint8_t tag)
{
    memset(h, 0, sizeof *h);
    h->memory.id.b[0] = tag;
    h->memory.kind = MN_KIND_EPISODIC;
    h->memory.content = strdup("a note");
    h->memory.content_len = 6;
    h->memory.created_at_ms = 1000 + tag;
    h->memory.when_ms = 1000 + tag;
    h->memory.confidence = 1;
    h->memory.importance = 0.5f;
    h->memory.access_count = 3;
    h->score = 0.9f - 0.1f * tag;
    h->distance = NAN;
    h->similarity = h->score;
    h->keyword = NAN;
    h->coverage = NAN;
    h->activation = NAN;
    h->retention = 1;
    h->seed = true;
    h->confidence.value = 0.7f;
    h->confidence.reasons = MN_REASON_DECAYED;
    h->duplicates = 1;
    h->duplicate_ids = calloc(1, sizeof *h->duplicate_ids);
    h->duplicate_ids[0].b[15] = tag;
}

static void answer_frame(uint8_t **buf, size_t *len)
{
    mn_query_answer_t a[3] = {0};
    a[0].res.hits = calloc(2, sizeof *a[0].res.hits);
    a[0].res.n_hits = 2;
    fill_hit(&a[0].res.hits[0], 1);
    fill_hit(&a[0].res.hits[1], 2);
    a[0].res.scanned = 17;
    a[1].rc = MN_ERR_NOT_FOUND;
    a[1].missing = MN_QUERY_MISSING_NOT_HELD;
    a[2].rc = MN_ERR_INVALID;
    snprintf(a[2].err.message, sizeof a[2].err.message, "embedding: 3 floats, the space has 4");
    mn_error err = {0};
    assert_int_equal(clq_answer_encode(42, SPACES, a, 3, buf, len, &err), MN_OK);
    mn_recall_result_clear(&a[0].res);
}

static void test_answer_round_trip(void **state)
{
    (void)state;
    uint8_t *buf;
    size_t len;
    answer_frame(&buf, &len);
    uint64_t id = 0;
    assert_int_equal(clq_frame_head(buf, len, &id), CLQ_ANSWER);
    assert_int_equal(id, 42);
    clq_space_answer *a;
    size_t n;
    mn_error err = {0};
    assert_int_equal(clq_answer_decode(buf, len, &a, &n, &err), MN_OK);
    assert_int_equal(n, 3);
    assert_string_equal(a[0].space, "a-1");
    assert_int_equal(a[0].a.rc, MN_OK);
    assert_int_equal(a[0].a.res.n_hits, 2);
    assert_int_equal(a[0].a.res.scanned, 17);
    const mn_recall_hit_t *h = &a[0].a.res.hits[1];
    assert_int_equal(h->memory.id.b[0], 2);
    assert_memory_equal(h->memory.content, "a note", 6);
    assert_int_equal(h->memory.access_count, 3);
    assert_true(h->score == 0.9f - 0.2f);
    assert_true(isnan(h->keyword));
    assert_true(h->confidence.value == 0.7f);
    assert_string_equal(h->confidence.category, mn_confidence_category(0.7f));
    assert_int_equal(h->confidence.reasons, MN_REASON_DECAYED);
    assert_int_equal(h->duplicate_ids[0].b[15], 2);
    assert_int_equal(a[1].a.rc, MN_ERR_NOT_FOUND);
    assert_string_equal(a[1].a.missing, MN_QUERY_MISSING_NOT_HELD);
    assert_int_equal(a[2].a.rc, MN_ERR_INVALID);
    assert_null(a[2].a.missing);
    assert_string_equal(a[2].a.err.message, "embedding: 3 floats, the space has 4");
    clq_answers_free(a, n);
    free(buf);
}

/* Decodes buf[0 .. len) as what it claims to be; whatever it holds, no harm. */
static bool decodes(const uint8_t *buf, size_t len)
{
    uint64_t id;
    mn_error err = {0};
    int type = clq_frame_head(buf, len, &id);
    if (type == CLQ_REQUEST) {
        clq_request *r = malloc(sizeof *r);
        bool ok = clq_request_decode(buf, len, r, &err) == MN_OK;
        if (ok) clq_request_clear(r);
        free(r);
        return ok;
    }
    if (type == CLQ_ANSWER) {
        clq_space_answer *a;
        size_t n;
        bool ok = clq_answer_decode(buf, len, &a, &n, &err) == MN_OK;
        if (ok) clq_answers_free(a, n);
        return ok;
    }
    return false;
}

static void hostile(uint8_t *buf, size_t len)
{
    for (size_t cut = 0; cut < len; cut++) { /* every truncation is refused */
        uint8_t *part = malloc(cut ? cut : 1);
        memcpy(part, buf, cut);
        assert_false(decodes(part, cut));
        free(part);
    }
    uint8_t *more = malloc(len + 1); /* trailing bytes are refused */
    memcpy(more, buf, len);
    more[len] = 0;
    assert_false(decodes(more, len + 1));
    free(more);
    uint8_t *flip = malloc(len);
    uint64_t seed = 19;
    for (int round = 0; round < 3000; round++) { /* random flips: refused or read, no harm */
        memcpy(flip, buf, len);
        for (int k = 0; k < 1 + round % 4; k++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            flip[(seed >> 33) % len] ^= (uint8_t)(1u << ((seed >> 20) % 8));
        }
        (void)decodes(flip, len);
    }
    free(flip);
}

static void test_malformed_frames_are_harmless(void **state)
{
    (void)state;
    uint8_t *buf;
    size_t len;
    request_frame(&buf, &len, false);
    assert_true(decodes(buf, len));
    hostile(buf, len);
    buf[2] = CLQ_VERSION + 1; /* another version: not a query frame */
    assert_false(decodes(buf, len));
    free(buf);
    answer_frame(&buf, &len);
    assert_true(decodes(buf, len));
    hostile(buf, len);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_answer_round_trip),
        cmocka_unit_test(test_malformed_frames_are_harmless),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
