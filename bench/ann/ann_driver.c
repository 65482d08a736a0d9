/* ANN benchmark driver for mnemo's HNSW index: builds the index from an fvecs
 * file single-threaded, then for each ef runs every query one after another
 * and prints one JSON object: build seconds, memory, and per ef recall@k
 * against an ivecs ground truth and queries per second. Driven by
 * bench/ann/run.py, which runs hnswlib and FAISS on the same files.
 *
 * --churn F measures deletes instead: the first m = n / (1 + F) rows are
 * inserted, n - m of them (seeded random choice) removed, and the remaining
 * rows inserted into the freed slots (vectors in the caller's array, as in
 * the engine); recall@k against the exact top k of the final m points
 * (brute force here; --gt is not read), beside a fresh build of those points. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/hnsw/hnsw.h"
#include "engine/hnsw/vec_kernels.h"
#include "mnemo/util.h"

static float *read_fvecs(const char *path, uint32_t *n, uint32_t *dim)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    int32_t d;
    if (fread(&d, 4, 1, f) != 1 || d <= 0 || d > 65536) {
        fprintf(stderr, "%s: bad fvecs header\n", path);
        fclose(f);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t row = 4 + (size_t)d * 4, rows = (size_t)size / row;
    float *x = malloc(rows * (size_t)d * sizeof(float));
    for (size_t r = 0; x && r < rows; r++) {
        int32_t dd;
        if (fread(&dd, 4, 1, f) != 1 || dd != d ||
            fread(x + r * (size_t)d, 4, (size_t)d, f) != (size_t)d) {
            fprintf(stderr, "%s: short read at row %zu\n", path, r);
            free(x);
            x = NULL;
        }
    }
    fclose(f);
    *n = (uint32_t)rows;
    *dim = (uint32_t)d;
    return x;
}

static int32_t *read_ivecs(const char *path, uint32_t *n, uint32_t *k)
{
    uint32_t kk;
    float *x = read_fvecs(path, n, &kk); /* same layout, 4-byte items */
    *k = kk;
    return (int32_t *)x;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    long kb = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

static double now_s(void)
{
    return (double)mn_time_mono_ns() / 1e9;
}

/* Exact top k of each query among the n vectors of base (l2), into gt[nq][k]. */
static void brute_force(const float *base, uint32_t n, uint32_t dim, const float *q, uint32_t nq,
                        uint32_t k, int32_t *gt)
{
    const mn_vec_kernels_t *kern = mn_vec_kernels_best();
    float *best = malloc((size_t)k * sizeof *best);
    for (uint32_t i = 0; i < nq; i++) {
        int32_t *out = gt + (size_t)i * k;
        uint32_t nb = 0;
        for (uint32_t s = 0; s < n; s++) {
            float d = kern->l2sq(q + (size_t)i * dim, base + (size_t)s * dim, dim);
            if (nb == k && d >= best[k - 1]) continue;
            uint32_t j = nb < k ? nb++ : k - 1;
            while (j > 0 && best[j - 1] > d) {
                best[j] = best[j - 1];
                out[j] = out[j - 1];
                j--;
            }
            best[j] = d;
            out[j] = (int32_t)s;
        }
    }
    free(best);
}

/* One pass of every query at ef; returns recall@k against gt and sets *qps (best of reps). */
static double sweep_one(mn_hnsw_t *h, const float *q, uint32_t nq, uint32_t dim, uint32_t k,
                        uint32_t ef, const int32_t *gt, uint32_t kgt, uint32_t reps, double *qps)
{
    mn_hnsw_hit_t *hits = malloc((size_t)k * sizeof *hits);
    uint64_t found = 0;
    double secs = 0;
    for (uint32_t rep = 0; rep < reps; rep++) {
        double s0 = now_s();
        for (uint32_t i = 0; i < nq; i++) {
            size_t nh = mn_hnsw_search(h, q + (size_t)i * dim, k, ef, NULL, NULL, hits, NULL);
            if (rep) continue;
            for (size_t a = 0; a < nh; a++)
                for (uint32_t b = 0; b < k; b++)
                    if ((int32_t)hits[a].slot == gt[(size_t)i * kgt + b]) found++;
        }
        double t = now_s() - s0;
        if (!rep || t < secs) secs = t;
    }
    free(hits);
    *qps = nq / secs;
    return (double)found / ((double)nq * k);
}

static int churn_run(const mn_hnsw_params_t *p, float *x, uint32_t n, const float *q, uint32_t nq,
                     uint32_t k, double frac, const char *efs, uint32_t reps)
{
    uint32_t dim = p->dim, m = (uint32_t)((double)n / (1.0 + frac)), d = n - m;
    if (!m || d > m) {
        fprintf(stderr, "--churn: need 0 < F <= 1\n");
        return 2;
    }
    float *arr = malloc((size_t)m * dim * sizeof(float));
    uint8_t *gone = calloc(m, 1);
    uint32_t *freed = malloc((d ? d : 1) * sizeof *freed);
    int32_t *gt = malloc((size_t)nq * k * sizeof *gt);
    if (!arr || !gone || !freed || !gt) return 1;
    memcpy(arr, x, (size_t)m * dim * sizeof(float));
    mn_hnsw_t *h = NULL, *f = NULL;
    mn_error err = {0};
    if (mn_hnsw_new(p, &arr, &h, &err) || mn_hnsw_reserve(h, m, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    double t0 = now_s();
    for (uint32_t i = 0; i < m; i++)
        if (mn_hnsw_insert(h, i, arr + (size_t)i * dim, &err)) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
    double build_s = now_s() - t0;
    mn_prng_t pr;
    mn_prng_seed(&pr, 99);
    for (uint32_t nf = 0; nf < d;) {
        uint32_t s = (uint32_t)mn_prng_below(&pr, m);
        if (gone[s]) continue;
        gone[s] = 1;
        freed[nf++] = s;
    }
    t0 = now_s();
    for (uint32_t i = 0; i < d; i++)
        mn_hnsw_remove(h, freed[i]);
    double remove_s = now_s() - t0;
    t0 = now_s();
    for (uint32_t i = 0; i < d; i++) {
        uint32_t s = freed[i];
        memcpy(arr + (size_t)s * dim, x + (size_t)(m + i) * dim, dim * sizeof(float));
        if (mn_hnsw_insert(h, s, arr + (size_t)s * dim, &err)) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
    }
    double reinsert_s = now_s() - t0;
    brute_force(arr, m, dim, q, nq, k, gt);
    if (mn_hnsw_new(p, &arr, &f, &err) || mn_hnsw_reserve(f, m, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    for (uint32_t i = 0; i < m; i++)
        if (mn_hnsw_insert(f, i, arr + (size_t)i * dim, &err)) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
    printf("{\"system\": \"mnemo-churn\", \"n\": %u, \"dim\": %u, \"removed\": %u, "
           "\"build_s\": %.3f, \"remove_s\": %.3f, \"reinsert_s\": %.3f, \"runs\": [",
           m, dim, d, build_s, remove_s, reinsert_s);
    char *list = strdup(efs);
    bool first = true;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        uint32_t ef = (uint32_t)atoi(tok);
        double qa, qb;
        double ra = sweep_one(h, q, nq, dim, k, ef, gt, k, reps, &qa);
        double rb = sweep_one(f, q, nq, dim, k, ef, gt, k, reps, &qb);
        printf("%s{\"ef\": %u, \"recall\": %.4f, \"qps\": %.1f, \"fresh_recall\": %.4f, "
               "\"fresh_qps\": %.1f}",
               first ? "" : ", ", ef, ra, qa, rb, qb);
        fflush(stdout);
        first = false;
    }
    printf("]}\n");
    free(list);
    mn_hnsw_free(h);
    mn_hnsw_free(f);
    free(arr);
    free(gone);
    free(freed);
    free(gt);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: mn_ann_driver --base F --queries F --gt F [--metric l2|cosine|dot]\n"
                    "       [--M 16] [--efc 200] [--efs 16,32,64,128,256] [--k 10] [--int8]\n"
                    "       [--ext] [--save PATH] [--load PATH] [--reps 3] [--churn F]\n");
}

int main(int argc, char **argv)
{
    const char *base_path = NULL, *q_path = NULL, *gt_path = NULL, *save = NULL, *load = NULL;
    const char *efs = "16,32,64,128,256";
    mn_metric_t metric = MN_METRIC_L2;
    uint32_t M = 16, efc = 200, k = 10, reps = 3;
    bool int8 = false, ext = false;
    double churn = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--int8"))
            int8 = true;
        else if (!strcmp(a, "--ext"))
            ext = true;
        else if (!v) {
            usage();
            return 2;
        } else if (!strcmp(a, "--base"))
            base_path = v, i++;
        else if (!strcmp(a, "--queries"))
            q_path = v, i++;
        else if (!strcmp(a, "--gt"))
            gt_path = v, i++;
        else if (!strcmp(a, "--save"))
            save = v, i++;
        else if (!strcmp(a, "--load"))
            load = v, i++; /* skip the build: search a saved graph */
        else if (!strcmp(a, "--efs"))
            efs = v, i++;
        else if (!strcmp(a, "--M"))
            M = (uint32_t)atoi(v), i++;
        else if (!strcmp(a, "--efc"))
            efc = (uint32_t)atoi(v), i++;
        else if (!strcmp(a, "--k"))
            k = (uint32_t)atoi(v), i++;
        else if (!strcmp(a, "--reps"))
            reps = (uint32_t)atoi(v), i++;
        else if (!strcmp(a, "--churn"))
            churn = atof(v), i++;
        else if (!strcmp(a, "--metric")) {
            if (mn_metric_parse(v, &metric)) {
                usage();
                return 2;
            }
            i++;
        } else {
            usage();
            return 2;
        }
    }
    if (!base_path || !q_path || (!gt_path && churn <= 0) || !k || !reps) {
        usage();
        return 2;
    }
    uint32_t n, dim, nq, qdim, ngt, kgt;
    float *x = read_fvecs(base_path, &n, &dim);
    float *q = read_fvecs(q_path, &nq, &qdim);
    if (churn > 0) {
        if (!x || !q || qdim != dim) {
            fprintf(stderr, "inputs do not match\n");
            return 1;
        }
        mn_hnsw_params_t cp = {.dim = dim,
                             .metric = metric,
                             .M = M,
                             .ef_construction = efc,
                             .quantize = int8,
                             .seed = 1};
        int rc = churn_run(&cp, x, n, q, nq, k, churn, efs, reps);
        free(x);
        free((void *)q);
        return rc;
    }
    int32_t *gt = read_ivecs(gt_path, &ngt, &kgt);
    if (!x || !q || !gt || qdim != dim || ngt != nq || kgt < k) {
        fprintf(stderr, "inputs do not match\n");
        return 1;
    }
    mn_hnsw_params_t p = {
        .dim = dim, .metric = metric, .M = M, .ef_construction = efc, .quantize = int8, .seed = 1};
    mn_hnsw_t *h = NULL;
    mn_error err = {0};
    long rss0 = rss_kb();
    if (mn_hnsw_new(&p, ext ? &x : NULL, &h, &err) || mn_hnsw_reserve(h, n, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    double t0 = now_s();
    if (load) {
        mn_hnsw_free(h);
        if (mn_hnsw_load(load, &p, ext ? &x : NULL, NULL, NULL, NULL, &h, NULL, &err)) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
    }
    for (uint32_t i = 0; i < n && !load; i++) {
        if (mn_hnsw_insert(h, i, x + (size_t)i * dim, &err)) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
    }
    double build_s = now_s() - t0;
    long rss1 = rss_kb();
    mn_hnsw_info_t info;
    mn_hnsw_get_info(h, &info);
    printf("{\"system\": \"mnemo%s\", \"n\": %u, \"dim\": %u, \"simd\": \"%s\", \"build_s\": %.3f, "
           "\"index_bytes\": %llu, \"vector_bytes_owned\": %llu, \"rss_delta_bytes\": %ld, "
           "\"max_level\": %u, \"runs\": [",
           int8 ? "-int8" : "", n, dim, info.simd, build_s, (unsigned long long)info.bytes,
           (unsigned long long)info.vector_bytes, (rss1 - rss0) * 1024, info.max_level);
    mn_hnsw_hit_t *hits = malloc((size_t)nq * k * sizeof *hits);
    uint32_t *nres = malloc((size_t)nq * sizeof *nres);
    char *list = strdup(efs);
    bool first = true;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        uint32_t ef = (uint32_t)atoi(tok);
        uint64_t found = 0;
        mn_hnsw_stats_t st = {0};
        double secs = 0;
        /* best of `reps` passes (the machine may be shared); recall from the first */
        for (uint32_t rep = 0; rep < reps; rep++) {
            double s0 = now_s();
            for (uint32_t i = 0; i < nq; i++) {
                size_t nh = mn_hnsw_search(h, q + (size_t)i * dim, k, ef, NULL, NULL,
                                           hits + (size_t)i * k, rep ? NULL : &st);
                nres[i] = (uint32_t)nh;
            }
            double t = now_s() - s0;
            if (!rep || t < secs) secs = t;
        }
        for (uint32_t i = 0; i < nq; i++) {
            const int32_t *truth = gt + (size_t)i * kgt;
            for (size_t a = 0; a < nres[i]; a++)
                for (uint32_t b = 0; b < k; b++)
                    if ((int32_t)hits[(size_t)i * k + a].slot == truth[b]) found++;
        }
        printf("%s{\"ef\": %u, \"recall\": %.4f, \"qps\": %.1f, \"visited\": %.1f}",
               first ? "" : ", ", ef, (double)found / ((double)nq * k), nq / secs,
               (double)st.visited / nq);
        fflush(stdout);
        first = false;
    }
    printf("]");
    if (save) {
        double s0 = now_s();
        if (mn_hnsw_save(h, save, 1, NULL, NULL, &err)) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        double ws = now_s() - s0;
        mn_hnsw_free(h);
        s0 = now_s();
        if (mn_hnsw_load(save, &p, ext ? &x : NULL, NULL, NULL, NULL, &h, NULL, &err)) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        printf(", \"save_s\": %.3f, \"load_s\": %.3f", ws, now_s() - s0);
    }
    printf("}\n");
    free(list);
    free(hits);
    free(nres);
    mn_hnsw_free(h);
    free(x);
    free(q);
    free(gt);
    return 0;
}
