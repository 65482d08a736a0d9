/* ANN benchmark driver for mnemo's HNSW index: builds the index from an fvecs
 * file single-threaded, then for each ef runs every query one after another
 * and prints one JSON object: build seconds, memory, and per ef recall@k
 * against an ivecs ground truth and queries per second. Driven by
 * bench/ann/run.py, which runs hnswlib and FAISS on the same files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/hnsw.h"
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

static void usage(void)
{
    fprintf(stderr, "usage: mn_ann_driver --base F --queries F --gt F [--metric l2|cosine|dot]\n"
                    "       [--M 16] [--efc 200] [--efs 16,32,64,128,256] [--k 10] [--int8]\n"
                    "       [--ext] [--save PATH] [--load PATH] [--reps 3]\n");
}

int main(int argc, char **argv)
{
    const char *base_path = NULL, *q_path = NULL, *gt_path = NULL, *save = NULL, *load = NULL;
    const char *efs = "16,32,64,128,256";
    mn_metric metric = MN_METRIC_L2;
    uint32_t M = 16, efc = 200, k = 10, reps = 3;
    bool int8 = false, ext = false;
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
    if (!base_path || !q_path || !gt_path || !k || !reps) {
        usage();
        return 2;
    }
    uint32_t n, dim, nq, qdim, ngt, kgt;
    float *x = read_fvecs(base_path, &n, &dim);
    float *q = read_fvecs(q_path, &nq, &qdim);
    int32_t *gt = read_ivecs(gt_path, &ngt, &kgt);
    if (!x || !q || !gt || qdim != dim || ngt != nq || kgt < k) {
        fprintf(stderr, "inputs do not match\n");
        return 1;
    }
    mn_hnsw_params p = {
        .dim = dim, .metric = metric, .M = M, .ef_construction = efc, .quantize = int8, .seed = 1};
    mn_hnsw *h = NULL;
    mn_error err = {0};
    long rss0 = rss_kb();
    if (mn_hnsw_new(&p, ext ? &x : NULL, &h, &err) || mn_hnsw_reserve(h, n, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    double t0 = now_s();
    if (load) {
        mn_hnsw_free(h);
        if (mn_hnsw_load(load, &p, ext ? &x : NULL, NULL, NULL, NULL, &h, &err)) {
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
    mn_hnsw_info info;
    mn_hnsw_get_info(h, &info);
    printf("{\"system\": \"mnemo%s\", \"n\": %u, \"dim\": %u, \"simd\": \"%s\", \"build_s\": %.3f, "
           "\"index_bytes\": %llu, \"vector_bytes_owned\": %llu, \"rss_delta_bytes\": %ld, "
           "\"max_level\": %u, \"runs\": [",
           int8 ? "-int8" : "", n, dim, info.simd, build_s, (unsigned long long)info.bytes,
           (unsigned long long)info.vector_bytes, (rss1 - rss0) * 1024, info.max_level);
    mn_hnsw_hit *hits = malloc((size_t)nq * k * sizeof *hits);
    uint32_t *nres = malloc((size_t)nq * sizeof *nres);
    char *list = strdup(efs);
    bool first = true;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        uint32_t ef = (uint32_t)atoi(tok);
        uint64_t found = 0;
        mn_hnsw_stats st = {0};
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
        if (mn_hnsw_load(save, &p, ext ? &x : NULL, NULL, NULL, NULL, &h, &err)) {
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
