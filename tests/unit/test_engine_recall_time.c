/* engine: a time named in a recall's text (docs/recall.md §9). The reference
 * time is time_ref, else as_of, else the clock; boost multiplies the words'
 * score of the memories of the window, filter keeps only them, off (the
 * engine's zero value) ignores the text's time; bad values are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mnemo/engine.h"
#include "testutil.h"

#define T0 1700000000000LL /* 2023-11-14T22:13:20Z, the fake clock at remember */
#define DAY 86400000LL
#define DAY0 (T0 / DAY * DAY) /* 2023-11-14T00:00Z */

typedef mn_test_eng fx;

static int setup(void **state)
{
    return mn_test_eng_setup(state, "mnemo-rtime", true);
}

static void remember_at(fx *f, const char *text, int64_t when, mn_id_t *id)
{
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)text;
    m.content_len = strlen(text);
    m.when_ms = when;
    mn_error err = {0};
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, id, &err), MN_OK);
}

/* Five short memories about pasta weeks ago, one long one on the day before
 * DAY0: by words alone the short ones win. */
static mn_id_t fill(fx *f)
{
    assert_int_equal(mn_test_space(f->e, "s", 2, MN_METRIC_COSINE), MN_OK);
    mn_id_t id;
    for (int i = 0; i < 5; i++)
        remember_at(f, "pasta again", DAY0 - (20 + i) * DAY, &id);
    remember_at(f, "dinner with friends: salad, bread, wine and the pasta she made",
                DAY0 - DAY + 19 * 3600000LL, &id);
    return id;
}

static mn_recall_req_t cue(const char *text, mn_recall_time_t t)
{
    mn_recall_req_t r;
    memset(&r, 0, sizeof r);
    mn_filter_init(&r.filter);
    r.text = text;
    r.text_len = strlen(text);
    r.k = 3;
    r.time = t;
    return r;
}

static bool first_is(fx *f, const mn_recall_req_t *r, const mn_id_t *id, mn_recall_result_t *res)
{
    mn_error err = {0};
    assert_int_equal(mn_engine_recall(f->e, "s", r, res, &err), MN_OK);
    return res->n_hits && !mn_id_cmp(&res->hits[0].memory.id, id);
}

static void test_reference_is_time_ref_then_as_of_then_now(void **state)
{
    fx *f = *state;
    mn_id_t target = fill(f);
    f->now = T0 + 10 * DAY; /* "yesterday" by the clock is 9 days after the memory */
    mn_recall_result_t res;

    mn_recall_req_t r = cue("which pasta yesterday", MN_RECALL_TIME_BOOST);
    assert_false(first_is(f, &r, &target, &res));
    assert_true(res.has_time_window);
    assert_int_equal(res.time_window.from_ms, DAY0 + 9 * DAY);
    assert_string_equal(res.time_window.text, "yesterday");
    assert_string_equal(res.time_window.unit, "day");
    assert_string_equal(res.time_window.applied, "boost");
    mn_recall_result_clear(&res);

    r.filter.as_of_ms = T0 + 3600000; /* as it was the evening the memories were made */
    assert_true(first_is(f, &r, &target, &res));
    assert_int_equal(res.time_window.from_ms, DAY0 - DAY);
    assert_int_equal(res.time_window.to_ms, DAY0);
    /* the boost is on the words' score only: 3 times the long memory's BM25 */
    float boosted = res.hits[0].keyword;
    mn_recall_result_clear(&res);

    r.has_time_ref = true; /* time_ref wins over as_of */
    r.time_ref_ms = T0 + 5 * DAY;
    assert_false(first_is(f, &r, &target, &res));
    assert_int_equal(res.time_window.from_ms, DAY0 + 4 * DAY);
    mn_recall_result_clear(&res);

    r.time_ref_ms = T0;
    r.filter.as_of_ms = MN_TIME_UNSET;
    assert_true(first_is(f, &r, &target, &res));
    mn_recall_result_clear(&res);

    r.time = MN_RECALL_TIME_OFF;
    r.k = 10;
    assert_false(first_is(f, &r, &target, &res));
    assert_false(res.has_time_window);
    bool found = false;
    for (size_t i = 0; i < res.n_hits; i++)
        if (!mn_id_cmp(&res.hits[i].memory.id, &target)) {
            assert_float_equal(boosted, MN_RECALL_TIME_BOOST_DEFAULT * res.hits[i].keyword, 1e-6);
            found = true;
        }
    assert_true(found);
    mn_recall_result_clear(&res);
}

static void test_filter_keeps_only_the_window(void **state)
{
    fx *f = *state;
    mn_id_t target = fill(f);
    mn_recall_result_t res;
    mn_recall_req_t r = cue("which pasta yesterday", MN_RECALL_TIME_FILTER);
    r.has_time_ref = true;
    r.time_ref_ms = T0;
    assert_true(first_is(f, &r, &target, &res));
    assert_int_equal(res.n_hits, 1);
    assert_string_equal(res.time_window.applied, "filter");
    mn_recall_result_clear(&res);
    /* a request's own `when` range narrows it further: nothing left */
    r.filter.when_to_ms = DAY0 - 10 * DAY;
    assert_false(first_is(f, &r, &target, &res));
    assert_int_equal(res.n_hits, 0);
    mn_recall_result_clear(&res);
}

static void test_zeroed_request_and_years_leave_the_ranking_alone(void **state)
{
    fx *f = *state;
    mn_id_t target = fill(f);
    mn_recall_result_t res;
    mn_recall_req_t r = cue("which pasta on 13 Nov 2023", MN_RECALL_TIME_OFF);
    assert_false(first_is(f, &r, &target, &res)); /* the engine's default is off */
    assert_false(res.has_time_window);
    mn_recall_result_clear(&res);
    r.time = MN_RECALL_TIME_BOOST;
    assert_true(first_is(f, &r, &target, &res));
    assert_string_equal(res.time_window.text, "13 Nov 2023");
    mn_recall_result_clear(&res);
    r = cue("which pasta in 2023", MN_RECALL_TIME_BOOST);
    assert_false(first_is(f, &r, &target, &res));
    assert_string_equal(res.time_window.unit, "year");
    assert_string_equal(res.time_window.applied, "none");
    mn_recall_result_clear(&res);
    r = cue("which pasta before 14 Nov 2023", MN_RECALL_TIME_FILTER);
    assert_false(first_is(f, &r, &target, &res));
    assert_string_equal(res.time_window.unit, "range");
    assert_false(res.time_window.has_from);
    assert_string_equal(res.time_window.applied, "none");
    assert_int_equal(res.n_hits, 3); /* not a filter either */
    mn_recall_result_clear(&res);
}

static void test_bad_time_fields_are_refused(void **state)
{
    fx *f = *state;
    fill(f);
    mn_recall_result_t res;
    mn_error err = {0};
    mn_recall_req_t r = cue("pasta yesterday", (mn_recall_time_t)7);
    assert_int_equal(mn_engine_recall(f->e, "s", &r, &res, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "time"));
    float bad[] = {0.5f, -1, 1001, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = cue("pasta yesterday", MN_RECALL_TIME_BOOST);
        r.time_boost = bad[i];
        assert_int_equal(mn_engine_recall(f->e, "s", &r, &res, &err), MN_ERR_INVALID);
        assert_non_null(strstr(err.message, "time_boost"));
    }
    /* any reference time is accepted (clamped inside the parser) */
    int64_t refs[] = {INT64_MIN, INT64_MAX, 0, -1};
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        r = cue("pasta two weeks ago", MN_RECALL_TIME_BOOST);
        r.has_time_ref = true;
        r.time_ref_ms = refs[i];
        assert_int_equal(mn_engine_recall(f->e, "s", &r, &res, &err), MN_OK);
        mn_recall_result_clear(&res);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reference_is_time_ref_then_as_of_then_now, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_filter_keeps_only_the_window, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_zeroed_request_and_years_leave_the_ranking_alone,
                                        setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_bad_time_fields_are_refused, setup,
                                        mn_test_eng_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
