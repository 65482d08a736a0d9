/* Recall latency with and without spreading activation, in-process, on a
 * space where spreading has work to do: N memories (random unit vectors and
 * five random words each) in sessions of ten turns a minute apart (temporal
 * chains), semantic links as by default. The same seeded queries four ways:
 * an embedding cue and a words cue, each with spread off and on; k = 10, one
 * thread. Prints "name value" lines (p50/p99 in ms). Seeded; every loop bounded.
 * Usage: mn_bench_spread --dir EMPTY_DIR [--n 10000] [--dim 64] [--queries 400] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/engine.h"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(int64_t *lat, size_t n, double q)
{
    qsort(lat, n, sizeof *lat, cmp_i64);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)lat[i < n ? i : n - 1] / 1e6;
}

static void fill(mn_prng_t *p, float *v, int dim)
{
    for (int i = 0; i < dim; i++)
        v[i] = (float)(mn_prng_double(p) * 2 - 1);
}

static void words(mn_prng_t *p, char *out, size_t cap, int n)
{
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < n && len + 16 < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%sw%u", i ? " " : "",
                                (unsigned)mn_prng_below(p, 2000));
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    int n = 10000, dim = 64, queries = 400;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--n"))
            n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dim"))
            dim = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--queries"))
            queries = atoi(argv[i + 1]);
    }
    if (!dir || n < 10 || n > 1000000 || dim < 2 || dim > 4096 || queries < 1 || queries > 100000) {
        fprintf(stderr, "usage: mn_bench_spread --dir EMPTY_DIR [--n 10000] [--dim 64] "
                        "[--queries 400]\n");
        return 2;
    }
    mn_engine_options_t o;
    mn_engine_options_default(&o);
    o.data_dir = dir;
    o.sync = false;
    o.consolidate_interval_ms = 0;
    mn_engine_t *e;
    mn_error err = {0};
    if (mn_engine_open(&o, &e, &err)) {
        fprintf(stderr, "open: %s\n", err.message);
        return 1;
    }
    mn_space_def_t d = {.name = "sp", .dim = (uint32_t)dim, .metric = MN_METRIC_COSINE};
    if (mn_engine_space_create(e, &d, NULL, &err)) {
        fprintf(stderr, "space: %s\n", err.message);
        return 1;
    }
    mn_prng_t p;
    mn_prng_seed(&p, 7);
    enum { BATCH = 100 };
    float *vecs = malloc((size_t)BATCH * (size_t)dim * sizeof(float));
    char(*texts)[128] = malloc(BATCH * sizeof *texts);
    char(*sess)[32] = malloc(BATCH * sizeof *sess);
    mn_memory_t *ms = calloc(BATCH, sizeof *ms);
    mn_id_t *ids = calloc(BATCH, sizeof *ids);
    if (!vecs || !texts || !sess || !ms || !ids) return 1;
    int64_t t0 = 1700000000000;
    for (int b = 0; b < n / BATCH; b++) {
        for (int i = 0; i < BATCH; i++) {
            int at = b * BATCH + i;
            fill(&p, vecs + (size_t)i * (size_t)dim, dim);
            words(&p, texts[i], sizeof texts[i], 5);
            snprintf(sess[i], sizeof sess[i], "s%d", at / 10);
            mn_memory_init(&ms[i]);
            ms[i].content = texts[i];
            ms[i].content_len = strlen(texts[i]);
            ms[i].embedding = vecs + (size_t)i * (size_t)dim;
            ms[i].dim = (uint32_t)dim;
            ms[i].session = sess[i];
            ms[i].when_ms = t0 + (int64_t)at * 60000;
        }
        if (mn_engine_remember(e, "sp", ms, BATCH, ids, &err)) {
            fprintf(stderr, "remember: %s\n", err.message);
            return 1;
        }
    }
    mn_engine_wait_background(e);
    float *q = malloc((size_t)dim * sizeof(float));
    int64_t *lat = calloc((size_t)queries, sizeof *lat);
    if (!q || !lat) return 1;
    printf("spread_n %d\nspread_dim %d\n", n, dim);
    for (int mode = 0; mode < 4; mode++) {
        bool by_text = mode >= 2, spread = mode % 2;
        const char *label[] = {"vector", "vector_spread", "words", "words_spread"};
        mn_prng_seed(&p, 99);
        size_t hits = 0;
        for (int i = 0; i < queries; i++) {
            char text[128];
            fill(&p, q, dim);
            words(&p, text, sizeof text, 3);
            mn_recall_req_t req = {.k = 10, .spread = spread};
            mn_filter_init(&req.filter);
            if (by_text) {
                req.text = text;
                req.text_len = strlen(text);
            } else {
                req.embedding = q;
                req.dim = (uint32_t)dim;
            }
            mn_recall_result_t r;
            int64_t s = mn_time_mono_ns();
            if (mn_engine_recall(e, "sp", &req, &r, &err)) {
                fprintf(stderr, "recall: %s\n", err.message);
                return 1;
            }
            lat[i] = mn_time_mono_ns() - s;
            hits += r.n_hits;
            mn_recall_result_clear(&r);
        }
        printf("recall_%s_p50_ms %.3f\n", label[mode], pct(lat, (size_t)queries, 0.50));
        printf("recall_%s_p99_ms %.3f\n", label[mode], pct(lat, (size_t)queries, 0.99));
        printf("recall_%s_hits_per_query %.2f\n", label[mode], (double)hits / queries);
    }
    free(q);
    free(lat);
    free(vecs);
    free(texts);
    free(sess);
    free(ms);
    free(ids);
    mn_engine_close(e);
    return 0;
}
