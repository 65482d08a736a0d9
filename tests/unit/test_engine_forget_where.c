/* engine: forget by filter (forget_where.c): the selection is a snapshot, the
 * run goes in chunks of MN_FORGET_CHUNK ids (one forget batch WAL entry each),
 * delete erases like a forget, suppress hides, a memory written after the
 * selection survives, a run can be stopped between chunks, and what a run did
 * survives a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/engine.h"
#include "mnemo/wire.h"
#include "testutil.h"

typedef mn_test_eng fx;

static int setup(void **state)
{
    return mn_test_eng_setup(state, "mnemo-forget-where", true);
}

static void make_space(fx *f)
{
    mn_space_def_t d = {0};
    snprintf(d.name, sizeof d.name, "s");
    d.dim = 2;
    d.metric = MN_METRIC_COSINE;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_create(f->e, &d, NULL, &err), MN_OK);
}

/* Remembers n memories in batches of MN_BATCH_MAX: even ones tagged red with
 * content "red-secret-<i>", odd ones blue. */
static void remember_colours(fx *f, size_t n)
{
    static char *red[] = {"red"}, *blue[] = {"blue"};
    float v[2] = {1, 0};
    mn_memory_t *ms = calloc(MN_BATCH_MAX, sizeof *ms);
    char(*txt)[32] = calloc(MN_BATCH_MAX, sizeof *txt);
    mn_id_t *ids = calloc(MN_BATCH_MAX, sizeof *ids);
    assert_non_null(ms);
    assert_non_null(txt);
    assert_non_null(ids);
    for (size_t done = 0; done < n;) {
        size_t k = n - done < MN_BATCH_MAX ? n - done : MN_BATCH_MAX;
        for (size_t j = 0; j < k; j++) {
            size_t i = done + j;
            mn_memory_init(&ms[j]);
            snprintf(txt[j], sizeof txt[j], "%s-secret-%zu", i % 2 ? "blue" : "red", i);
            ms[j].content = txt[j];
            ms[j].content_len = strlen(txt[j]);
            ms[j].embedding = v;
            ms[j].dim = 2;
            ms[j].tags = i % 2 ? blue : red;
            ms[j].n_tags = 1;
        }
        mn_error err = {0};
        assert_int_equal(mn_engine_remember(f->e, "s", ms, k, ids, &err), MN_OK);
        done += k;
    }
    free(ms);
    free(txt);
    free(ids);
}

static void select_tag(fx *f, const char *tag, mn_forget_mode_t mode, mn_id_t **ids, size_t *n)
{
    char *tags[] = {(char *)tag};
    mn_filter_t flt;
    mn_filter_init(&flt);
    flt.tags_any = tags;
    flt.n_tags_any = 1;
    mn_error err = {0};
    assert_int_equal(mn_engine_forget_select(f->e, "s", &flt, mode, ids, n, &err), MN_OK);
}

static size_t count_tag(fx *f, const char *tag, mn_forget_mode_t mode)
{
    mn_id_t *ids;
    size_t n;
    select_tag(f, tag, mode, &ids, &n);
    free(ids);
    return n;
}

/* A space of n memories (remember_colours) and the selection of its red ones. */
static size_t seed_red(fx *f, size_t n, mn_id_t **ids)
{
    make_space(f);
    remember_colours(f, n);
    size_t m;
    select_tag(f, "red", MN_FORGET_DELETE, ids, &m);
    assert_int_equal(m, (n + 1) / 2);
    return m;
}

typedef struct calls {
    size_t n;
    size_t stop_after; /* 0: never stop */
    mn_forget_progress_t last;
} calls;

static bool on_progress(void *arg, const mn_forget_progress_t *p)
{
    calls *c = arg;
    assert_true(p->done > c->last.done);
    c->last = *p;
    c->n++;
    return !c->stop_after || c->n < c->stop_after;
}

static void test_delete_goes_in_chunks_and_erases(void **state)
{
    fx *f = *state;
    mn_id_t *ids;
    size_t n = seed_red(f, 2500, &ids); /* 3 remember entries */
    calls c = {0};
    mn_forget_progress_t pr;
    mn_error err = {0};
    assert_int_equal(
        mn_engine_forget_ids(f->e, "s", MN_FORGET_DELETE, ids, n, 0, on_progress, &c, &pr, &err),
        MN_OK);
    assert_int_equal(c.n, 2); /* 1000 + 250 */
    assert_int_equal(pr.total, 1250);
    assert_int_equal(pr.done, 1250);
    assert_int_equal(pr.forgotten, 1250);
    assert_int_equal(pr.chunks, 2);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.memories, 1250);
    assert_int_equal(st.tombstones, 1250);
    assert_int_equal(st.last_lsn, 1 + 3 + 2); /* one WAL entry per chunk */
    assert_int_equal(mn_test_count_stored(f->e, "red-secret", 10), 0);
    assert_true(mn_test_count_stored(f->e, "blue-secret", 11) > 0);
    mn_memory_t out;
    assert_int_equal(mn_engine_get(f->e, "s", &ids[0], false, &out, &err), MN_ERR_GONE);
    mn_test_eng_reopen(f);
    assert_int_equal(mn_engine_get(f->e, "s", &ids[1249], false, &out, &err), MN_ERR_GONE);
    assert_int_equal(count_tag(f, "red", MN_FORGET_DELETE), 0);
    assert_int_equal(count_tag(f, "blue", MN_FORGET_DELETE), 1250);
    free(ids);
}

static void test_suppress_hides_and_delete_takes_suppressed(void **state)
{
    fx *f = *state;
    make_space(f);
    remember_colours(f, 40);
    mn_id_t *ids;
    size_t n;
    select_tag(f, "blue", MN_FORGET_SUPPRESS, &ids, &n);
    assert_int_equal(n, 20);
    mn_forget_progress_t pr;
    mn_error err = {0};
    assert_int_equal(
        mn_engine_forget_ids(f->e, "s", MN_FORGET_SUPPRESS, ids, n, 0, NULL, NULL, &pr, &err), MN_OK);
    assert_int_equal(pr.forgotten, 20);
    mn_memory_t out;
    assert_int_equal(mn_engine_get(f->e, "s", &ids[3], false, &out, &err), MN_OK);
    assert_true(out.suppressed);
    mn_memory_clear(&out);
    mn_list_req_t lr = {0};
    mn_filter_init(&lr.filter);
    mn_list_result_t res;
    assert_int_equal(mn_engine_list(f->e, "s", &lr, &res, &err), MN_OK);
    assert_int_equal(res.n, 20); /* the red ones */
    mn_list_result_clear(&res);
    /* a suppress has nothing left to do; a delete takes the hidden ones too */
    assert_int_equal(count_tag(f, "blue", MN_FORGET_SUPPRESS), 0);
    assert_int_equal(count_tag(f, "blue", MN_FORGET_DELETE), 20);
    assert_int_equal(mn_engine_unsuppress(f->e, "s", &ids[3], &err), MN_OK);
    free(ids);
}

static void test_memory_written_after_the_selection_survives(void **state)
{
    fx *f = *state;
    make_space(f);
    remember_colours(f, 10);
    mn_id_t *ids;
    size_t n;
    select_tag(f, "red", MN_FORGET_DELETE, &ids, &n);
    assert_int_equal(n, 5);
    remember_colours(f, 2); /* one more red one, after the selection */
    mn_error err = {0};
    /* one of the selection goes on its own before the run: skipped, not an error */
    assert_int_equal(mn_engine_forget(f->e, "s", &ids[2], MN_FORGET_DELETE, &err), MN_OK);
    mn_forget_progress_t pr;
    assert_int_equal(
        mn_engine_forget_ids(f->e, "s", MN_FORGET_DELETE, ids, n, 0, NULL, NULL, &pr, &err), MN_OK);
    assert_int_equal(pr.done, 5);
    assert_int_equal(pr.forgotten, 4);
    assert_int_equal(count_tag(f, "red", MN_FORGET_DELETE), 1);
    /* a run over ids that are all gone changes nothing and takes no lsn */
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    uint64_t lsn = st.last_lsn;
    assert_int_equal(
        mn_engine_forget_ids(f->e, "s", MN_FORGET_DELETE, ids, n, 0, NULL, NULL, &pr, &err), MN_OK);
    assert_int_equal(pr.forgotten, 0);
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.last_lsn, lsn);
    free(ids);
}

static void test_run_stops_between_chunks_when_asked(void **state)
{
    fx *f = *state;
    mn_id_t *ids;
    size_t n = seed_red(f, 5000, &ids);
    calls c = {.stop_after = 1};
    mn_forget_progress_t pr;
    mn_error err = {0};
    assert_int_equal(
        mn_engine_forget_ids(f->e, "s", MN_FORGET_DELETE, ids, n, 0, on_progress, &c, &pr, &err),
        MN_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(pr.done, MN_FORGET_CHUNK);
    assert_int_equal(count_tag(f, "red", MN_FORGET_DELETE), 2500 - MN_FORGET_CHUNK);
    free(ids);
}

static void test_a_paced_run_sizes_its_chunks_within_bounds(void **state)
{
    fx *f = *state;
    mn_id_t *ids;
    size_t n = seed_red(f, 5000, &ids);
    calls c = {0};
    mn_forget_progress_t pr;
    mn_error err = {0};
    assert_int_equal(
        mn_engine_forget_ids(f->e, "s", MN_FORGET_DELETE, ids, n, 1, on_progress, &c, &pr, &err),
        MN_OK);
    assert_int_equal(pr.done, 2500);
    assert_int_equal(pr.forgotten, 2500);
    /* it starts at 2 x MN_FORGET_CHUNK_MIN and at most doubles: 100, 200, 400, 800, 1000 at
     * the fastest; never below MN_FORGET_CHUNK_MIN */
    assert_true(pr.chunks >= 5);
    assert_true(pr.chunks <= 2500 / MN_FORGET_CHUNK_MIN);
    assert_int_equal(c.n, pr.chunks);
    assert_int_equal(count_tag(f, "red", MN_FORGET_DELETE), 0);
    free(ids);
}

static void test_bad_requests_are_refused(void **state)
{
    fx *f = *state;
    make_space(f);
    mn_filter_t flt;
    mn_filter_init(&flt);
    mn_id_t *ids;
    size_t n;
    mn_error err = {0};
    assert_int_equal(mn_engine_forget_select(f->e, "nope", &flt, MN_FORGET_DELETE, &ids, &n, &err),
                     MN_ERR_NOT_FOUND);
    assert_int_equal(mn_engine_forget_select(f->e, "s", &flt, (mn_forget_mode_t)7, &ids, &n, &err),
                     MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "mode"));
    flt.as_of_ms = f->now - 1000;
    assert_int_equal(mn_engine_forget_select(f->e, "s", &flt, MN_FORGET_DELETE, &ids, &n, &err),
                     MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "as_of"));
    mn_forget_progress_t pr;
    mn_id_t one = {{0}};
    assert_int_equal(
        mn_engine_forget_ids(f->e, "nope", MN_FORGET_DELETE, &one, 1, 0, NULL, NULL, &pr, &err),
        MN_ERR_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delete_goes_in_chunks_and_erases, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_suppress_hides_and_delete_takes_suppressed, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_memory_written_after_the_selection_survives, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_run_stops_between_chunks_when_asked, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_a_paced_run_sizes_its_chunks_within_bounds, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests_are_refused, setup, mn_test_eng_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
