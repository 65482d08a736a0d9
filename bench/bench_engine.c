/* In-process engine benchmark: the same operations the HTTP benchmark runs
 * (bench/run_bench.py), called directly, so the HTTP overhead shows as a ratio.
 *   remember, single memory per call, T threads
 *   remember, batches of 100, T threads
 *   recall at N x DIM, k = 10, one thread, p50/p99: exact (the scan, exact: true)
 *   and the default path (the HNSW index above engine.hnsw_threshold, 2,000),
 *   and the default path with spreading (spread: true, as the doors default it)
 *   and the default path with a filter of the filter language that 10% and 1% of the
 *   memories pass (metadata.b lt 10 / lt 1, b = i mod 100), with each filtered query's
 *   recall@10 against the exact filtered scan
 * Prints one "name value unit" line per figure (parsed by run_bench.py). Seeded.
 *
 * --startup N instead measures start-up: it stores N text-only memories of
 * W/2..W words (--startup-words W, default 15; from a 5,000-word vocabulary), closes the engine and
 * times seven re-opens (the first also replays RocksDB's own log; the median is the figure). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/engine.h"

typedef struct cfg {
    const char *dir;
    int dim, threads, singles, batches, recall_n, queries;
    bool sync;
} cfg;

typedef struct warg {
    mn_engine_t *e;
    const char *space;
    int dim, calls, batch;
    bool bucket; /* metadata b = the memory's number mod 100, as text */
    uint64_t seed;
    int64_t *lat_ns;
    int fails;
} warg;

static void fill(mn_prng_t *p, float *v, int dim)
{
    for (int i = 0; i < dim; i++) v[i] = (float)(mn_prng_double(p) * 2 - 1);
}

static void *writer(void *arg)
{
    warg *w = arg;
    mn_prng_t p;
    mn_prng_seed(&p, w->seed);
    float *vecs = malloc((size_t)w->batch * w->dim * sizeof(float));
    mn_memory_t *ms = calloc((size_t)w->batch, sizeof *ms);
    mn_id_t *ids = calloc((size_t)w->batch, sizeof *ids);
    mn_kv_t *kv = calloc((size_t)w->batch, sizeof *kv);
    char(*bucket)[4] = calloc((size_t)w->batch, sizeof *bucket);
    char content[] = "the user said they prefer window seats on long flights";
    for (int c = 0; c < w->calls; c++) {
        for (int i = 0; i < w->batch; i++) {
            fill(&p, vecs + (size_t)i * w->dim, w->dim);
            mn_memory_init(&ms[i]);
            ms[i].content = content;
            ms[i].content_len = sizeof content - 1;
            ms[i].embedding = vecs + (size_t)i * w->dim;
            ms[i].dim = (uint32_t)w->dim;
            if (!w->bucket) continue;
            snprintf(bucket[i], sizeof bucket[i], "%d", (c * w->batch + i) % 100);
            kv[i] = (mn_kv_t){"b", bucket[i]};
            ms[i].metadata = &kv[i];
            ms[i].n_metadata = 1;
        }
        int64_t t0 = mn_time_mono_ns();
        if (mn_engine_remember(w->e, w->space, ms, (size_t)w->batch, ids, NULL)) w->fails++;
        w->lat_ns[c] = mn_time_mono_ns() - t0;
    }
    free(vecs);
    free(ms);
    free(ids);
    free(kv);
    free(bucket);
    return NULL;
}

/* N short memories in one space, then three timed opens. */
static int startup_bench(const char *dir, int n, int words_max)
{
    mn_engine_options_t o;
    mn_engine_options_default(&o);
    o.data_dir = dir;
    o.sync = false;
    o.expiry_interval_ms = 0;
    o.consolidate_interval_ms = 0;
    o.link_max = 0;
    mn_engine_t *e;
    mn_error err = {0};
    if (mn_engine_open(&o, &e, &err)) {
        fprintf(stderr, "open: %s\n", err.message);
        return 1;
    }
    mn_space_def_t d = {.dim = 8, .metric = MN_METRIC_COSINE};
    strcpy(d.name, "bench-s");
    if (mn_engine_space_create(e, &d, NULL, &err)) {
        fprintf(stderr, "space: %s\n", err.message);
        return 1;
    }
    mn_prng_t p;
    mn_prng_seed(&p, 5);
    enum { BATCH = 1000 };
    static char texts[BATCH][8 * 1024];
    mn_memory_t ms[BATCH];
    mn_id_t ids[BATCH];
    for (int done = 0; done < n;) {
        int b = n - done < BATCH ? n - done : BATCH;
        for (int i = 0; i < b; i++) {
            int words = words_max / 2 + (int)mn_prng_below(&p, (uint64_t)words_max / 2 + 1),
                off = 0;
            for (int w = 0; w < words; w++)
                off += snprintf(texts[i] + off, sizeof texts[i] - (size_t)off, "%sw%u",
                                w ? " " : "", (unsigned)mn_prng_below(&p, 5000));
            mn_memory_init(&ms[i]);
            ms[i].content = texts[i];
            ms[i].content_len = (size_t)off;
        }
        if (mn_engine_remember(e, "bench-s", ms, (size_t)b, ids, &err)) {
            fprintf(stderr, "remember: %s\n", err.message);
            return 1;
        }
        done += b;
    }
    mn_engine_close(e);
    enum { OPENS = 7 };
    double secs[OPENS];
    for (int r = 0; r < OPENS; r++) {
        int64_t t0 = mn_time_mono_ns();
        if (mn_engine_open(&o, &e, &err)) {
            fprintf(stderr, "open: %s\n", err.message);
            return 1;
        }
        double s = (double)(mn_time_mono_ns() - t0) / 1e9;
        printf("startup_open_%d_s %.3f\n", r + 1, s);
        secs[r] = s;
        mn_engine_metrics_t m;
        if (r == 0 && !mn_engine_get_metrics(e, &m, &err)) {
            for (size_t i = 0; i < m.n_spaces; i++)
                printf("startup_keyword_docs %llu\nstartup_keyword_terms %llu\n",
                       (unsigned long long)m.spaces[i].keyword_docs,
                       (unsigned long long)m.spaces[i].keyword_terms);
            mn_engine_metrics_clear(&m);
        }
        mn_engine_close(e);
    }
    /* median of the opens after the first */
    for (int i = 1; i < OPENS; i++)
        for (int j = i + 1; j < OPENS; j++)
            if (secs[j] < secs[i]) {
                double t = secs[i];
                secs[i] = secs[j];
                secs[j] = t;
            }
    printf("startup_memories %d\nstartup_open_median_s %.3f\n", n, (secs[3] + secs[4]) / 2);
    return 0;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(int64_t *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, cmp64);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e6;
}

static void write_phase(mn_engine_t *e, const cfg *c, const char *space, int batch, int calls,
                        bool bucket, const char *label)
{
    pthread_t th[64];
    warg args[64];
    int64_t *lat = calloc((size_t)c->threads * calls, sizeof *lat);
    int64_t t0 = mn_time_mono_ns();
    for (int t = 0; t < c->threads; t++) {
        args[t] = (warg){
            e, space, c->dim, calls, batch, bucket, 1000 + (uint64_t)t, lat + (size_t)t * calls, 0};
        pthread_create(&th[t], NULL, writer, &args[t]);
    }
    int fails = 0;
    for (int t = 0; t < c->threads; t++) {
        pthread_join(th[t], NULL);
        fails += args[t].fails;
    }
    double secs = (double)(mn_time_mono_ns() - t0) / 1e9;
    size_t n = (size_t)c->threads * calls;
    printf("%s_memories_per_s %.0f\n", label, (double)n * batch / secs);
    printf("%s_calls_per_s %.0f\n", label, (double)n / secs);
    printf("%s_p50_ms %.3f\n", label, pct(lat, n, 0.50));
    printf("%s_p99_ms %.3f\n", label, pct(lat, n, 0.99));
    if (fails) printf("%s_failures %d\n", label, fails);
    free(lat);
}

static mn_err recall_once(mn_engine_t *e, const float *q, const cfg *c, bool exact, bool spread,
                          const mn_filter_node_t *expr, mn_recall_result_t *r, mn_error *err)
{
    mn_recall_req_t req = {.embedding = q, .dim = (uint32_t)c->dim, .k = 10};
    req.exact = exact;
    req.spread = spread;
    mn_filter_init(&req.filter);
    req.filter.expr = expr;
    req.filter.n_expr = expr ? 1 : 0;
    return mn_engine_recall(e, "bench-r", &req, r, err);
}

/* The queries of one recall mode (seeded: every mode asks the same ones): p50, p99 and the
 * path; under a filter also the recall@10 of the answers against the exact filtered scan. */
static int recall_mode(mn_engine_t *e, const cfg *c, const char *label, bool exact, bool spread,
                       const mn_filter_node_t *expr)
{
    float *q = malloc((size_t)c->dim * sizeof(float));
    int64_t *lat = calloc((size_t)c->queries, sizeof *lat);
    const char *path = "?";
    size_t found = 0, wanted = 0;
    mn_prng_t p;
    mn_prng_seed(&p, 99);
    mn_error err = {0};
    int rc = 0;
    for (int i = 0; i < c->queries && !rc; i++) {
        fill(&p, q, c->dim);
        mn_recall_result_t r, x;
        int64_t t0 = mn_time_mono_ns();
        if (recall_once(e, q, c, exact, spread, expr, &r, &err)) {
            rc = 1;
            break;
        }
        lat[i] = mn_time_mono_ns() - t0;
        path = r.path;
        if (expr && !recall_once(e, q, c, true, false, expr, &x, &err)) {
            for (size_t a = 0; a < x.n_hits; a++)
                for (size_t b = 0; b < r.n_hits; b++)
                    found += !memcmp(&x.hits[a].memory.id, &r.hits[b].memory.id, sizeof(mn_id_t));
            wanted += x.n_hits;
            mn_recall_result_clear(&x);
        }
        mn_recall_result_clear(&r);
    }
    if (rc)
        fprintf(stderr, "recall: %s\n", err.message);
    else {
        printf("inproc_recall_%s_path %s\n", label, path);
        printf("inproc_recall_%s_p50_ms %.3f\n", label, pct(lat, (size_t)c->queries, 0.50));
        printf("inproc_recall_%s_p99_ms %.3f\n", label, pct(lat, (size_t)c->queries, 0.99));
        if (expr)
            printf("inproc_recall_%s_recall_at_10 %.4f\n", label,
                   (double)found / (double)(wanted ? wanted : 1));
    }
    free(q);
    free(lat);
    return rc;
}

int main(int argc, char **argv)
{
    cfg c = {NULL, 768, 4, 2000, 100, 10000, 200, true};
    int startup = 0, startup_words = 15;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dir")) c.dir = argv[i + 1];
        else if (!strcmp(argv[i], "--startup"))
            startup = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--startup-words"))
            startup_words = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dim")) c.dim = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) c.threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--singles")) c.singles = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batches")) c.batches = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--recall-n")) c.recall_n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--queries")) c.queries = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--sync")) c.sync = atoi(argv[i + 1]) != 0;
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!c.dir || c.threads < 1 || c.threads > 64) {
        fprintf(stderr,
                "usage: mn_bench_engine --dir EMPTY_DIR [--dim 768] [--threads 4] "
                "[--singles 2000] [--batches 100] [--recall-n 10000] [--queries 200]\n"
                "       mn_bench_engine --dir EMPTY_DIR --startup N [--startup-words 15]\n");
        return 2;
    }
    mn_log_configure(MN_LOG_WARN, MN_LOG_FORMAT_TEXT);
    if (startup > 0) {
        if (startup_words < 2 || startup_words > 1000) {
            fprintf(stderr, "--startup-words: 2..1000\n");
            return 2;
        }
        return startup_bench(c.dir, startup, startup_words);
    }
    mn_engine_options_t o;
    mn_engine_options_default(&o);
    o.data_dir = c.dir;
    o.sync = c.sync;
    o.expiry_interval_ms = 0;
    mn_engine_t *e;
    mn_error err = {0};
    if (mn_engine_open(&o, &e, &err)) {
        fprintf(stderr, "open: %s\n", err.message);
        return 1;
    }
    mn_space_def_t d = {.dim = (uint32_t)c.dim, .metric = MN_METRIC_COSINE};
    strcpy(d.name, "bench-w");
    if (mn_engine_space_create(e, &d, NULL, &err)) {
        fprintf(stderr, "space: %s\n", err.message);
        return 1;
    }
    write_phase(e, &c, "bench-w", 1, c.singles / c.threads, false, "inproc_remember_single");
    write_phase(e, &c, "bench-w", 100, c.batches / c.threads, false, "inproc_remember_batch100");
    mn_engine_stats_t es;
    mn_engine_get_stats(e, &es);
    printf("inproc_commits %llu\ninproc_entries %llu\ninproc_max_group %llu\n",
           (unsigned long long)es.commits, (unsigned long long)es.entries,
           (unsigned long long)es.max_group);

    /* recall: a fresh space of recall_n memories */
    strcpy(d.name, "bench-r");
    mn_engine_space_create(e, &d, NULL, &err);
    cfg rc = c;
    rc.threads = 1;
    write_phase(e, &rc, "bench-r", 100, c.recall_n / 100, true, "inproc_load_batch100");
    int64_t w0 = mn_time_mono_ns();
    mn_engine_wait_background(e); /* recall is measured on a caught-up index */
    printf("inproc_index_catch_up_s %.3f\n", (double)(mn_time_mono_ns() - w0) / 1e9);
    /* the same queries (seeded) in every mode: the exact scan (exact: true; the oracle),
     * the default path, the HNSW index above engine.hnsw_threshold (2,000; path
     * printed), the default path with spreading (as the doors default it), and the
     * default path under filters that 10% and 1% of the memories pass */
    printf("inproc_recall_n %d\n", c.recall_n);
    mn_filter_value_t ten = {.num = 10, .has_num = true}, one = {.num = 1, .has_num = true};
    mn_filter_node_t f10 = {.type = MN_FILTER_LEAF,
                            .field = MN_FILTER_FIELD_METADATA,
                            .op = MN_FILTER_OP_LT,
                            .size = 1,
                            .key = "b",
                            .vals = &ten,
                            .n_vals = 1};
    mn_filter_node_t f1 = f10;
    f1.vals = &one;
    if (recall_mode(e, &c, "exact", true, false, NULL) ||
        recall_mode(e, &c, "hnsw", false, false, NULL) ||
        recall_mode(e, &c, "spread", false, true, NULL) ||
        recall_mode(e, &c, "filter10", false, false, &f10) ||
        recall_mode(e, &c, "filter1", false, false, &f1))
        return 1;
    mn_engine_close(e);
    return 0;
}
