/* util metrics and logger: histogram buckets, the registry (same family by
 * name, label validation, bounded label sets, exact counts under concurrent
 * updates), the Prometheus text (HELP/TYPE lines, label escaping, cumulative
 * buckets ending in +Inf, _sum and _count), and structured log lines (JSON
 * with fields, text with key=value). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mnemo/metrics.h"
#include "mnemo/util.h"

static const uint64_t bounds3[] = {10, 100, 1000};

static void test_histogram_buckets_are_inclusive_and_cumulative(void **state)
{
    (void)state;
    mn_histogram_t h;
    mn_histogram_init(&h, bounds3, 3);
    const uint64_t obs[] = {0, 10, 11, 100, 999, 1000, 1001, 5000};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        mn_histogram_observe(&h, obs[i]);
    mn_hist_snapshot_t s;
    mn_histogram_snapshot(&h, &s);
    assert_int_equal(s.n_bounds, 3);
    assert_int_equal(s.cumulative[0], 2); /* 0, 10 */
    assert_int_equal(s.cumulative[1], 4); /* + 11, 100 */
    assert_int_equal(s.cumulative[2], 6); /* + 999, 1000 */
    assert_int_equal(s.cumulative[3], 8); /* + 1001, 5000 */
    assert_int_equal(s.count, 8);
    assert_int_equal(s.sum, 0 + 10 + 11 + 100 + 999 + 1000 + 1001 + 5000);
}

static void test_histogram_caps_bucket_count(void **state)
{
    (void)state;
    static uint64_t many[40];
    for (int i = 0; i < 40; i++)
        many[i] = (uint64_t)i + 1;
    mn_histogram_t h;
    mn_histogram_init(&h, many, 40);
    assert_int_equal(h.n_bounds, MN_HIST_BUCKETS_MAX);
    mn_histogram_observe(&h, 1000); /* above every kept bound: the overflow bucket */
    mn_hist_snapshot_t s;
    mn_histogram_snapshot(&h, &s);
    assert_int_equal(s.cumulative[MN_HIST_BUCKETS_MAX - 1], 0);
    assert_int_equal(s.cumulative[MN_HIST_BUCKETS_MAX], 1);
}

static void test_text_escapes_label_values_and_help(void **state)
{
    (void)state;
    mn_text_t t;
    mn_text_init(&t);
    mn_prom_family(&t, "mnemo_x", "line one\nback\\slash \"quoted\"", "gauge");
    mn_prom_label_t l[2] = {{"space", "a\"b\\c\nd"}, {"kind", NULL}};
    mn_prom_sample(&t, "mnemo_x", l, 2, 1.5);
    mn_prom_sample_u64(&t, "mnemo_x", NULL, 0, 18446744073709551615ull);
    mn_prom_sample(&t, "mnemo_x", NULL, 0, 1.0 / 0.0);
    mn_prom_sample(&t, "mnemo_x", NULL, 0, 3);
    assert_false(t.oom);
    assert_string_equal(t.buf, "# HELP mnemo_x line one\\nback\\\\slash \"quoted\"\n"
                               "# TYPE mnemo_x gauge\n"
                               "mnemo_x{space=\"a\\\"b\\\\c\\nd\",kind=\"\"} 1.5\n"
                               "mnemo_x 18446744073709551615\n"
                               "mnemo_x +Inf\n"
                               "mnemo_x 3\n");
    mn_text_free(&t);
}

static void test_text_histogram_has_le_buckets_sum_and_count(void **state)
{
    (void)state;
    mn_histogram_t h;
    mn_histogram_init(&h, mn_hist_latency_ns, MN_HIST_LATENCY_N);
    mn_histogram_observe(&h, 50000);       /* 50 us: first bucket */
    mn_histogram_observe(&h, 2000000);     /* 2 ms */
    mn_histogram_observe(&h, 20000000000); /* 20 s: only +Inf */
    mn_hist_snapshot_t s;
    mn_histogram_snapshot(&h, &s);
    mn_text_t t;
    mn_text_init(&t);
    mn_prom_label_t l = {"op", "x"};
    mn_prom_histogram(&t, "mnemo_d_seconds", &l, 1, &s, 1e-9);
    assert_non_null(strstr(t.buf, "mnemo_d_seconds_bucket{op=\"x\",le=\"0.0001\"} 1\n"));
    assert_non_null(strstr(t.buf, "mnemo_d_seconds_bucket{op=\"x\",le=\"0.001\"} 1\n"));
    assert_non_null(strstr(t.buf, "mnemo_d_seconds_bucket{op=\"x\",le=\"0.0025\"} 2\n"));
    assert_non_null(strstr(t.buf, "mnemo_d_seconds_bucket{op=\"x\",le=\"10\"} 2\n"));
    assert_non_null(strstr(t.buf, "mnemo_d_seconds_bucket{op=\"x\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(t.buf, "mnemo_d_seconds_sum{op=\"x\"} 20.00205\n"));
    assert_non_null(strstr(t.buf, "mnemo_d_seconds_count{op=\"x\"} 3\n"));
    /* every bucket line, in order, never decreases */
    unsigned long long prev = 0;
    int lines = 0;
    for (const char *p = strstr(t.buf, "_bucket"); p; p = strstr(p + 1, "_bucket")) {
        const char *sp = strchr(p, ' ');
        unsigned long long v = strtoull(sp + 1, NULL, 10);
        assert_true(v >= prev);
        prev = v;
        lines++;
    }
    assert_int_equal(lines, MN_HIST_LATENCY_N + 1);
    mn_text_free(&t);
}

static void test_registry_returns_same_family_and_rejects_bad_names(void **state)
{
    (void)state;
    mn_metrics_t *m = mn_metrics_new();
    const char *lb[] = {"route", "status"};
    mn_metrics_family_t *a = mn_metrics_counter(m, "mnemo_req_total", "h", lb, 2);
    assert_non_null(a);
    assert_ptr_equal(mn_metrics_counter(m, "mnemo_req_total", "h", lb, 2), a);
    /* same name, other shape */
    assert_null(mn_metrics_counter(m, "mnemo_req_total", "h", lb, 1));
    assert_null(mn_metrics_histogram(m, "mnemo_req_total", "h", lb, 2, bounds3, 3, 1));
    /* invalid names */
    assert_null(mn_metrics_counter(m, "9bad", "h", NULL, 0));
    assert_null(mn_metrics_counter(m, "bad-name", "h", NULL, 0));
    const char *bad_label[] = {"__reserved"};
    assert_null(mn_metrics_counter(m, "mnemo_ok", "h", bad_label, 1));
    const char *le[] = {"le"};
    assert_null(mn_metrics_histogram(m, "mnemo_h", "h", le, 1, bounds3, 3, 1));
    assert_null(mn_metrics_histogram(m, "mnemo_h", "h", NULL, 0, NULL, 0, 1));
    mn_metrics_free(m);
}

static void test_registry_renders_series_in_first_seen_order(void **state)
{
    (void)state;
    mn_metrics_t *m = mn_metrics_new();
    const char *lb[] = {"route", "status"};
    mn_metrics_family_t *c = mn_metrics_counter(m, "mnemo_req_total", "Requests.", lb, 2);
    mn_metrics_family_t *h =
        mn_metrics_histogram(m, "mnemo_req_seconds", "Latency.", lb, 2, bounds3, 3, 0.001);
    const char *v1[] = {"/v1/spaces/{space}", "200"};
    const char *v2[] = {"/health", "503"};
    mn_metrics_add(c, v1, 2);
    mn_metrics_add(c, v2, 1);
    mn_metrics_add(c, v1, 3);
    mn_metrics_observe(h, v1, 50);
    mn_metrics_observe(h, v1, 5000);
    mn_metrics_add(h, v1, 1);     /* wrong type: ignored */
    mn_metrics_observe(c, v1, 1); /* wrong type: ignored */
    mn_text_t t;
    mn_text_init(&t);
    mn_metrics_render(m, &t);
    const char *want_c = "# HELP mnemo_req_total Requests.\n"
                         "# TYPE mnemo_req_total counter\n"
                         "mnemo_req_total{route=\"/v1/spaces/{space}\",status=\"200\"} 5\n"
                         "mnemo_req_total{route=\"/health\",status=\"503\"} 1\n"
                         "# HELP mnemo_req_seconds Latency.\n"
                         "# TYPE mnemo_req_seconds histogram\n"
                         "mnemo_req_seconds_bucket{route=\"/v1/spaces/{space}\",status=\"200\","
                         "le=\"0.01\"} 0\n"
                         "mnemo_req_seconds_bucket{route=\"/v1/spaces/{space}\",status=\"200\","
                         "le=\"0.1\"} 1\n"
                         "mnemo_req_seconds_bucket{route=\"/v1/spaces/{space}\",status=\"200\","
                         "le=\"1\"} 1\n"
                         "mnemo_req_seconds_bucket{route=\"/v1/spaces/{space}\",status=\"200\","
                         "le=\"+Inf\"} 2\n"
                         "mnemo_req_seconds_sum{route=\"/v1/spaces/{space}\",status=\"200\"} 5.05\n"
                         "mnemo_req_seconds_count{route=\"/v1/spaces/{space}\",status=\"200\"} 2\n";
    assert_string_equal(t.buf, want_c);
    mn_text_free(&t);
    mn_metrics_free(m);
}

static void test_registry_gauges_keep_the_value_last_set(void **state)
{
    (void)state;
    mn_metrics_t *m = mn_metrics_new();
    const char *lb[] = {"node"};
    mn_metrics_family_t *g = mn_metrics_gauge(m, "mnemo_lag_seconds", "Lag.", lb, 1, 0.001);
    assert_non_null(g);
    assert_null(mn_metrics_counter(m, "mnemo_lag_seconds", "Lag.", lb, 1)); /* another type */
    const char *v[] = {"a"};
    mn_metrics_set(g, v, 2500);
    mn_metrics_set(g, v, 1500); /* replaces, never adds */
    mn_metrics_add(g, v, 7);    /* wrong type: ignored */
    mn_text_t t;
    mn_text_init(&t);
    mn_metrics_render(m, &t);
    assert_string_equal(t.buf, "# HELP mnemo_lag_seconds Lag.\n"
                               "# TYPE mnemo_lag_seconds gauge\n"
                               "mnemo_lag_seconds{node=\"a\"} 1.5\n");
    mn_text_free(&t);
    mn_metrics_free(m);
}

static void test_registry_bounds_label_sets(void **state)
{
    (void)state;
    mn_metrics_t *m = mn_metrics_new();
    const char *lb[] = {"k"};
    mn_metrics_family_t *c = mn_metrics_counter(m, "mnemo_many_total", "", lb, 1);
    char v[32];
    const char *vals[] = {v};
    for (int i = 0; i < MN_METRICS_SERIES_MAX + 10; i++) {
        snprintf(v, sizeof v, "v%d", i);
        mn_metrics_add(c, vals, 1);
    }
    assert_int_equal(mn_metrics_dropped(m), 10);
    /* a label set already seen still counts */
    snprintf(v, sizeof v, "v0");
    mn_metrics_add(c, vals, 1);
    assert_int_equal(mn_metrics_dropped(m), 10);
    mn_text_t t;
    mn_text_init(&t);
    mn_metrics_render(m, &t);
    assert_non_null(strstr(t.buf, "mnemo_many_total{k=\"v0\"} 2\n"));
    assert_null(strstr(t.buf, "k=\"v512\""));
    mn_text_free(&t);
    mn_metrics_free(m);
}

typedef struct worker_arg {
    mn_metrics_family_t *c, *h;
    int id;
} worker_arg;

#define WORKERS 4
#define PER_WORKER 20000

static void *worker(void *p)
{
    worker_arg *a = p;
    char st[8];
    const char *vals[] = {"/r", st};
    for (int i = 0; i < PER_WORKER; i++) {
        snprintf(st, sizeof st, "%d", 200 + (i + a->id) % 3); /* three shared label sets */
        mn_metrics_add(a->c, vals, 1);
        mn_metrics_observe(a->h, vals, (uint64_t)(i % 2000));
    }
    return NULL;
}

static void test_registry_counts_exactly_under_concurrency(void **state)
{
    (void)state;
    mn_metrics_t *m = mn_metrics_new();
    const char *lb[] = {"route", "status"};
    worker_arg args[WORKERS];
    pthread_t th[WORKERS];
    mn_metrics_family_t *c = mn_metrics_counter(m, "mnemo_c_total", "", lb, 2);
    mn_metrics_family_t *h = mn_metrics_histogram(m, "mnemo_h", "", lb, 2, bounds3, 3, 1);
    for (int i = 0; i < WORKERS; i++) {
        args[i] = (worker_arg){c, h, i};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    mn_text_t t;
    mn_text_init(&t);
    mn_metrics_render(m, &t);
    unsigned long long total = 0, hist_total = 0;
    int series = 0;
    for (const char *p = strstr(t.buf, "mnemo_c_total{"); p; p = strstr(p + 1, "mnemo_c_total{")) {
        total += strtoull(strchr(p, ' ') + 1, NULL, 10);
        series++;
    }
    for (const char *p = strstr(t.buf, "mnemo_h_count{"); p; p = strstr(p + 1, "mnemo_h_count{"))
        hist_total += strtoull(strchr(p, ' ') + 1, NULL, 10);
    assert_int_equal(series, 3);
    assert_int_equal(total, (unsigned long long)WORKERS * PER_WORKER);
    assert_int_equal(hist_total, (unsigned long long)WORKERS * PER_WORKER);
    assert_int_equal(mn_metrics_dropped(m), 0);
    mn_text_free(&t);
    mn_metrics_free(m);
}

/* Runs fn with stderr sent to a temporary file; returns what was written (free()). */
static char *capture_stderr(void (*fn)(void))
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), 2) >= 0);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long n = ftell(tmp);
    if (n < 0) n = 0;
    rewind(tmp);
    char *buf = calloc(1, (size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return buf;
}

static void log_some(void)
{
    mn_log_field_t f[] = {
        {.key = "request_id", .str = "abc"}, {.key = "status", .num = 201, .in_msg = true},
        {.key = "duration_ms", .num = 1.25}, {.key = "space", .str = "bad\xff utf8 \"q\""},
        {.key = "nan", .num = 0.0 / 0.0},
    };
    mn_log_with(MN_LOG_INFO, f, 5, "did %s", "it\n");
    mn_log_with(MN_LOG_DEBUG, f, 5, "not shown at info");
}

static void test_log_json_lines_carry_fields(void **state)
{
    (void)state;
    mn_log_configure(MN_LOG_INFO, MN_LOG_FORMAT_JSON);
    assert_true(mn_log_enabled(MN_LOG_WARN));
    assert_false(mn_log_enabled(MN_LOG_DEBUG));
    char *out = capture_stderr(log_some);
    mn_log_configure(MN_LOG_INFO, MN_LOG_FORMAT_TEXT);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    assert_string_equal(nl + 1, ""); /* one line: the debug one is filtered */
    cJSON *o = cJSON_Parse(out);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "level")->valuestring, "info");
    assert_string_equal(cJSON_GetObjectItem(o, "msg")->valuestring, "did it\n");
    assert_string_equal(cJSON_GetObjectItem(o, "request_id")->valuestring, "abc");
    assert_int_equal(cJSON_GetObjectItem(o, "status")->valueint, 201);
    assert_true(cJSON_GetObjectItem(o, "duration_ms")->valuedouble == 1.25);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(o, "ts")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "nan")));
    assert_string_equal(cJSON_GetObjectItem(o, "space")->valuestring, "bad\xc3\xbf utf8 \"q\"");
    cJSON_Delete(o);
    free(out);
}

static void test_log_text_lines_append_fields_not_in_message(void **state)
{
    (void)state;
    mn_log_configure(MN_LOG_INFO, MN_LOG_FORMAT_TEXT);
    char *out = capture_stderr(log_some);
    /* the message's newline is escaped: one event, one line (util/log.c) */
    assert_non_null(strstr(out, " info  did it\\n request_id=abc duration_ms=1.25 space="));
    assert_null(strstr(out, "status="));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_histogram_buckets_are_inclusive_and_cumulative),
        cmocka_unit_test(test_histogram_caps_bucket_count),
        cmocka_unit_test(test_text_escapes_label_values_and_help),
        cmocka_unit_test(test_text_histogram_has_le_buckets_sum_and_count),
        cmocka_unit_test(test_registry_returns_same_family_and_rejects_bad_names),
        cmocka_unit_test(test_registry_renders_series_in_first_seen_order),
        cmocka_unit_test(test_registry_bounds_label_sets),
        cmocka_unit_test(test_registry_counts_exactly_under_concurrency),
        cmocka_unit_test(test_registry_gauges_keep_the_value_last_set),
        cmocka_unit_test(test_log_json_lines_carry_fields),
        cmocka_unit_test(test_log_text_lines_append_fields_not_in_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
