/* engine: vectors that arrive after their memory (mn_engine_embed, the embed WAL op):
 * a text-only memory gets its vector through the WAL and is then ranked by vector, kept
 * across a restart and shipped to another engine; a memory forgotten first never gets
 * one, a forget after erases it from the store and the WAL; a memory that has a vector
 * keeps it; the backfill scan lists exactly the memories without one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/engine.h"
#include "mnemo/wire.h"
#include "testutil.h"

typedef mn_test_eng fx;

static int setup(void **state)
{
    return mn_test_eng_setup(state, "mnemo-embed", true);
}

static mn_id_t remember_text(mn_engine_t *e, const char *space, const char *text)
{
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)text;
    m.content_len = strlen(text);
    mn_id_t id;
    mn_error err = {0};
    assert_int_equal(mn_engine_remember(e, space, &m, 1, &id, &err), MN_OK);
    return id;
}

static mn_err embed_one(mn_engine_t *e, const char *space, const mn_id_t *id, const float *v,
                        uint32_t dim)
{
    mn_err rc1 = MN_ERR_INTERNAL;
    const float *vp[1] = {v};
    mn_err rc = mn_engine_embed(e, space, id, vp, dim, 1, &rc1, NULL);
    return rc ? rc : rc1;
}

static bool has_vector(mn_engine_t *e, const char *space, const mn_id_t *id, float first)
{
    mn_memory_t m;
    if (mn_engine_get(e, space, id, true, &m, NULL)) return false;
    bool yes = m.embedding && fabsf(m.embedding[0] - first) < 1e-6f;
    mn_memory_clear(&m);
    return yes;
}

/* The best hit of a vector-only recall. */
static bool recall_top(mn_engine_t *e, const char *space, const float *v, uint32_t dim,
                       const mn_id_t *want)
{
    mn_recall_req_t r;
    memset(&r, 0, sizeof r);
    mn_filter_init(&r.filter);
    r.embedding = v;
    r.dim = dim;
    r.k = 1;
    mn_recall_result_t res = {0};
    assert_int_equal(mn_engine_recall(e, space, &r, &res, NULL), MN_OK);
    bool yes = res.n_hits == 1 && !mn_id_cmp(&res.hits[0].memory.id, want);
    mn_recall_result_clear(&res);
    return yes;
}

static void test_embed_later(void **state)
{
    fx *f = *state;
    assert_int_equal(mn_test_space(f->e, "s", 2, MN_METRIC_L2), MN_OK);
    mn_id_t a = remember_text(f->e, "s", "alpha words");
    mn_id_t b = remember_text(f->e, "s", "beta words");
    float va[2] = {1, 0}, vb[2] = {0, 1}, other[2] = {5, 5};

    /* the scan lists both, then only the one still without a vector */
    mn_id_t ids[8];
    size_t n;
    uint32_t cur = 0;
    assert_int_equal(mn_engine_unembedded(f->e, "s", &cur, 8, ids, &n, NULL), MN_OK);
    assert_int_equal(n, 2);
    assert_int_equal(cur, UINT32_MAX);
    assert_false(recall_top(f->e, "s", va, 2, &a)); /* no vector: not ranked by one */

    assert_int_equal(embed_one(f->e, "s", &a, va, 2), MN_OK);
    assert_true(has_vector(f->e, "s", &a, 1.0f));
    assert_true(recall_top(f->e, "s", va, 2, &a));
    cur = 0;
    assert_int_equal(mn_engine_unembedded(f->e, "s", &cur, 8, ids, &n, NULL), MN_OK);
    assert_int_equal(n, 1);
    assert_int_equal(mn_id_cmp(&ids[0], &b), 0);

    /* one that has a vector keeps it; a wrong dim is refused */
    assert_int_equal(embed_one(f->e, "s", &a, other, 2), MN_ERR_EXISTS);
    assert_true(has_vector(f->e, "s", &a, 1.0f));
    assert_int_equal(embed_one(f->e, "s", &b, other, 1), MN_ERR_INVALID);
    float nan2[2] = {NAN, 0};
    assert_int_equal(embed_one(f->e, "s", &b, nan2, 2), MN_ERR_INVALID);

    /* the vector is durable and came through the WAL: a restart keeps it, and another
     * engine fed the WAL gets it too */
    assert_int_equal(embed_one(f->e, "s", &b, vb, 2), MN_OK);
    mn_test_wal w = {0};
    assert_int_equal(mn_test_wal_read(f->e, "s", 1, 0, &w), MN_OK);
    mn_test_eng_reopen(f);
    assert_true(has_vector(f->e, "s", &a, 1.0f));
    assert_true(has_vector(f->e, "s", &b, 0.0f));
    assert_true(recall_top(f->e, "s", vb, 2, &b));

    mn_test_eng g;
    mn_test_eng_init(&g, "mnemo-embed-replica");
    mn_test_eng_open(&g);
    assert_int_equal(mn_test_space(g.e, "s", 2, MN_METRIC_L2), MN_OK);
    size_t embeds = 0;
    for (size_t i = 0; i < w.n; i++) {
        mn_wal_entry_t en;
        assert_int_equal(mn_wire_wal_decode(w.bufs[i], w.lens[i], &en, NULL), MN_OK);
        embeds += en.type == MN_WAL_OP_EMBED;
        mn_wal_entry_clear(&en);
        if (i == 0) continue; /* the space's creation */
        assert_int_equal(mn_engine_ingest(g.e, w.bufs[i], w.lens[i], NULL), MN_OK);
    }
    assert_int_equal(embeds, 2);
    assert_true(has_vector(g.e, "s", &a, 1.0f));
    assert_true(recall_top(g.e, "s", vb, 2, &b));
    mn_test_eng_free(&g);
    mn_test_wal_free(&w);
}

static void test_forget_wins(void **state)
{
    fx *f = *state;
    assert_int_equal(mn_test_space(f->e, "s", 3, MN_METRIC_COSINE), MN_OK);
    /* forgotten before its vector came: it never gets one, and no entry is written */
    mn_id_t a = remember_text(f->e, "s", "gone before");
    mn_space_stats_t st;
    assert_int_equal(mn_engine_forget(f->e, "s", &a, MN_FORGET_DELETE, NULL), MN_OK);
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, NULL), MN_OK);
    uint64_t lsn = st.last_lsn;
    float va[3] = {0.25f, 0.5f, 0.75f};
    assert_int_equal(embed_one(f->e, "s", &a, va, 3), MN_ERR_GONE);
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, NULL), MN_OK);
    assert_int_equal(st.last_lsn, lsn);
    float zero[3] = {0, 0, 0};
    mn_id_t z = remember_text(f->e, "s", "zero");
    assert_int_equal(embed_one(f->e, "s", &z, zero, 3), MN_ERR_INVALID); /* no direction */

    /* forgotten after: the vector goes from the store and from the embed entry */
    mn_id_t b = remember_text(f->e, "s", "gone after");
    float vb[3] = {0.123456789f, 0.987654321f, 0.5f};
    assert_int_equal(embed_one(f->e, "s", &b, vb, 3), MN_OK);
    assert_true(mn_test_count_stored(f->e, vb, sizeof vb) > 0); /* the entry and the vector */
    assert_int_equal(mn_engine_forget(f->e, "s", &b, MN_FORGET_DELETE, NULL), MN_OK);
    assert_int_equal(mn_test_count_stored(f->e, vb, sizeof vb), 0);
    mn_test_eng_reopen(f);
    mn_memory_t m;
    assert_int_equal(mn_engine_get(f->e, "s", &b, true, &m, NULL), MN_ERR_GONE);
    uint32_t cur = 0;
    mn_id_t ids[4];
    size_t n;
    assert_int_equal(mn_engine_unembedded(f->e, "s", &cur, 4, ids, &n, NULL), MN_OK);
    assert_int_equal(n, 1); /* z, whose zero vector was refused */
    assert_int_equal(mn_id_cmp(&ids[0], &z), 0);
}

/* With an HNSW index: the embedded memories go into the graph and recall finds them there. */
static void test_embedded_memories_enter_the_index(void **state)
{
    (void)state;
    mn_test_eng t;
    mn_test_eng_init(&t, "mnemo-embed-hnsw");
    t.opts.hnsw_threshold = 4;
    mn_test_eng_open(&t);
    assert_int_equal(mn_test_space(t.e, "h", 4, MN_METRIC_COSINE), MN_OK);
    enum { N = 40 };
    mn_id_t ids[N];
    char text[32];
    for (int i = 0; i < N; i++) {
        snprintf(text, sizeof text, "memory number %d", i);
        ids[i] = remember_text(t.e, "h", text);
    }
    mn_engine_wait_background(t.e);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(t.e, "h", &st, NULL), MN_OK);
    assert_int_equal(st.index_nodes, 0); /* text only: nothing to index */
    for (int i = 0; i < N; i++) {
        float v[4] = {cosf((float)i * 0.15f), sinf((float)i * 0.15f), (float)(i % 3) * 0.1f, 1};
        assert_int_equal(embed_one(t.e, "h", &ids[i], v, 4), MN_OK);
    }
    mn_engine_wait_background(t.e);
    assert_int_equal(mn_engine_space_get(t.e, "h", &st, NULL), MN_OK);
    assert_int_equal(st.index_nodes, N);
    float q[4] = {cosf(17 * 0.15f), sinf(17 * 0.15f), (float)(17 % 3) * 0.1f, 1};
    mn_recall_req_t r;
    memset(&r, 0, sizeof r);
    mn_filter_init(&r.filter);
    r.embedding = q;
    r.dim = 4;
    r.k = 1;
    r.ef = 8; /* the graph beats a scan of 40 at this width (space_index.c) */
    mn_recall_result_t res = {0};
    assert_int_equal(mn_engine_recall(t.e, "h", &r, &res, NULL), MN_OK);
    assert_string_equal(res.path, "hnsw");
    assert_int_equal(res.n_hits, 1);
    assert_int_equal(mn_id_cmp(&res.hits[0].memory.id, &ids[17]), 0);
    mn_recall_result_clear(&res);
    mn_test_eng_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_embed_later, setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_forget_wins, setup, mn_test_eng_teardown),
        cmocka_unit_test(test_embedded_memories_enter_the_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
