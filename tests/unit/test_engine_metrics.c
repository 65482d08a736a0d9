/* engine metrics (mn_engine_get_metrics): operation histograms count
 * successful calls only, group commits are counted with their size, per-space
 * memories by kind and keyword index size follow remember and forget, RocksDB
 * figures are read, and a dropped space disappears from the figures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/engine.h"
#include "testutil.h"

typedef mn_test_eng fx;

static int setup(void **state)
{
    return mn_test_eng_setup(state, "mnemo-metrics", false);
}

static void make_space(fx *f, const char *name)
{
    assert_int_equal(mn_test_space(f->e, name, 2, MN_METRIC_COSINE), MN_OK);
}

static mn_err remember(fx *f, const char *space, const char *content, mn_id_t *id)
{
    float v[2] = {1, 0.5f};
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)content;
    m.content_len = strlen(content);
    m.embedding = v;
    m.dim = 2;
    mn_error err = {0};
    return mn_engine_remember(f->e, space, &m, 1, id, &err);
}

static const mn_space_metrics_t *space_of(const mn_engine_metrics_t *m, const char *name)
{
    for (size_t i = 0; i < m->n_spaces; i++)
        if (!strcmp(m->spaces[i].name, name)) return &m->spaces[i];
    return NULL;
}

static void test_metrics_follow_operations(void **state)
{
    fx *f = *state;
    make_space(f, "alpha");
    make_space(f, "beta");
    mn_id_t ids[3];
    assert_int_equal(remember(f, "alpha", "red apple", &ids[0]), MN_OK);
    assert_int_equal(remember(f, "alpha", "green pear", &ids[1]), MN_OK);
    assert_int_equal(remember(f, "beta", "blue sky", &ids[2]), MN_OK);
    /* a failing call is not observed */
    mn_id_t none;
    assert_int_equal(remember(f, "missing", "x", &none), MN_ERR_NOT_FOUND);
    mn_error err = {0};
    assert_int_equal(mn_engine_forget(f->e, "alpha", &ids[1], MN_FORGET_DELETE, &err), MN_OK);
    mn_recall_req_t rq = {0};
    rq.text = "apple";
    rq.text_len = 5;
    mn_filter_init(&rq.filter);
    mn_recall_result_t rr;
    assert_int_equal(mn_engine_recall(f->e, "alpha", &rq, &rr, &err), MN_OK);
    mn_recall_result_clear(&rr);
    mn_consolidate_result_t cr;
    assert_int_equal(mn_engine_consolidate(f->e, "beta", NULL, &cr, &err), MN_OK);
    free(cr.ids);

    mn_engine_metrics_t m;
    assert_int_equal(mn_engine_get_metrics(f->e, &m, &err), MN_OK);
    assert_int_equal(m.remember_ns.count, 3);
    assert_int_equal(m.recall_ns.count, 1);
    assert_int_equal(m.consolidate_ns.count, 1);
    assert_true(m.remember_ns.sum > 0);
    /* 2 space creations + 3 remembers + 1 forget, each its own group here */
    assert_int_equal(m.group_entries.sum, m.stats.entries);
    assert_int_equal(m.group_entries.count, m.stats.commits);
    assert_int_equal(m.group_synced.count, m.stats.synced_commits);
    assert_int_equal(m.commit_write_ns.count, m.stats.commits);
    assert_true(m.stats.entries >= 6);
    assert_int_equal(m.n_spaces, 2);
    const mn_space_metrics_t *a = space_of(&m, "alpha");
    const mn_space_metrics_t *b = space_of(&m, "beta");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->episodic, 1);
    assert_int_equal(a->semantic, 0);
    assert_int_equal(a->tombstones, 1);
    assert_int_equal(a->keyword_docs, 1);
    assert_int_equal(a->keyword_terms, 2);
    assert_int_equal(a->hnsw_nodes, 0); /* below engine.hnsw_threshold: no index */
    assert_int_equal(b->episodic, 1);
    assert_true(a->last_lsn >= 4);
    assert_int_equal(m.n_cf, 7);
    assert_string_equal(m.cf[6].name, "keywords");
    assert_string_equal(m.cf[2].name, "wal");
    assert_true(m.block_cache_capacity >= 8u << 20);
    assert_true(m.cf[2].memtable_bytes > 0);
    mn_engine_metrics_clear(&m);

    assert_int_equal(mn_engine_space_drop(f->e, "beta", &err), MN_OK);
    assert_int_equal(mn_engine_get_metrics(f->e, &m, &err), MN_OK);
    assert_int_equal(m.n_spaces, 1);
    assert_null(space_of(&m, "beta"));
    mn_engine_metrics_clear(&m);
}

static void test_metrics_with_no_spaces(void **state)
{
    fx *f = *state;
    mn_engine_metrics_t m;
    mn_error err = {0};
    assert_int_equal(mn_engine_get_metrics(f->e, &m, &err), MN_OK);
    assert_int_equal(m.n_spaces, 0);
    assert_int_equal(m.remember_ns.count, 0);
    assert_int_equal(m.remember_ns.n_bounds, MN_HIST_LATENCY_N);
    mn_engine_metrics_clear(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_follow_operations, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_with_no_spaces, setup, mn_test_eng_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
