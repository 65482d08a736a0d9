/* api/cluster_gossip_store.c: the store follows the core's record states (a live version is
 * searchable, a retired one or a tombstone is not, a later live version brings it back), and
 * a partition-mode recall ranks by the cue's cosine and words, at most k, with reason
 * partition and the documented confidence 0.5 * match * encoding * support. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ranking_and_confidence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retired_and_forgotten_leave_the_answer, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
