/* Request-body parsing: cJSON_ParseWithLength + cJSON_Delete against the arena
 * parser of api/json_parse.c (api_json_parse + api_json_free) on the body of one
 * remember batch, the hot path of writes over HTTP.
 *
 *   mn_bench_json [--batch 100] [--dim 768] [--reps 40]
 *
 * The body is what bench/load sends (mn_load --op batch): `batch` memories of
 * `dim` seeded floats in [-1, 1) printed "%.6g", each with the same content;
 * and the same vectors printed "%.17g", as clients that print the double of a
 * float32 write them (the mantissas of more than 2^53 take the long double
 * path). Each figure is the median of `reps` timed parses after one warm-up;
 * both trees are checked equal once. Prints "name value unit" lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../api/api_internal.h"

static const char CONTENT[] = "the user said they prefer window seats on long flights";

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* The body of mn_load's batch i = 0 with numbers printed by fmt. */
static void batch_body(buf *b, int batch, int dim, const char *fmt)
{
    char num[40];
    put(b, "{\"memories\":[", 13);
    for (int j = 0; j < batch; j++) {
        mn_prng_t p;
        mn_prng_seed(&p, 1000003u + (uint64_t)j); /* mn_load --seed 1, request 0 */
        put(b, j ? ",{\"content\":\"" : "{\"content\":\"", j ? 13 : 12);
        put(b, CONTENT, sizeof CONTENT - 1);
        put(b, "\",\"embedding\":[", 15);
        for (int d = 0; d < dim; d++) {
            float v = (float)(mn_prng_double(&p) * 2 - 1);
            int n = snprintf(num, sizeof num, fmt, (double)v);
            if (d) put(b, ",", 1);
            put(b, num, (size_t)n);
        }
        put(b, "]}", 2);
    }
    put(b, "]}", 2);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double median_ms(int64_t *ns, int n)
{
    qsort(ns, (size_t)n, sizeof *ns, cmp_i64);
    return (double)ns[n / 2] / 1e6;
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

/* Same types, keys and values (doubles bit for bit), in the same order. */
static bool same(const cJSON *a, const cJSON *b)
{
    for (; a && b; a = a->next, b = b->next)
        if (a->type != b->type || memcmp(&a->valuedouble, &b->valuedouble, sizeof(double)) ||
            !same_str(a->string, b->string) || !same_str(a->valuestring, b->valuestring) ||
            !same(a->child, b->child))
            return false;
    return !a && !b;
}

static int run(const char *label, const buf *body, int reps, long numbers)
{
    cJSON *c = cJSON_ParseWithLength(body->p, body->len);
    api_json_result r;
    cJSON *o = api_json_parse(body->p, body->len, &r);
    if (!c || !o || !same(c, o)) {
        fprintf(stderr, "bench_json: the parsers disagree on the %s body\n", label);
        return 1;
    }
    cJSON_Delete(c);
    api_json_free(o);
    int64_t *t_cjson = malloc((size_t)reps * sizeof *t_cjson);
    int64_t *t_arena = malloc((size_t)reps * sizeof *t_arena);
    if (!t_cjson || !t_arena) abort();
    for (int i = 0; i < reps; i++) { /* interleaved, so both see the same machine */
        int64_t t0 = mn_time_mono_ns();
        c = cJSON_ParseWithLength(body->p, body->len);
        cJSON_Delete(c);
        int64_t t1 = mn_time_mono_ns();
        o = api_json_parse(body->p, body->len, &r);
        api_json_free(o);
        int64_t t2 = mn_time_mono_ns();
        if (!c || !o) abort();
        t_cjson[i] = t1 - t0;
        t_arena[i] = t2 - t1;
    }
    double mc = median_ms(t_cjson, reps), ma = median_ms(t_arena, reps);
    printf("json_%s_body_bytes %zu bytes\n", label, body->len);
    printf("json_%s_cjson_parse_free %.3f ms\n", label, mc);
    printf("json_%s_arena_parse_free %.3f ms\n", label, ma);
    printf("json_%s_cjson_per_number %.1f ns\n", label, mc * 1e6 / (double)numbers);
    printf("json_%s_arena_per_number %.1f ns\n", label, ma * 1e6 / (double)numbers);
    printf("json_%s_speedup %.2f x\n", label, mc / ma);
    free(t_cjson);
    free(t_arena);
    return 0;
}

int main(int argc, char **argv)
{
    int batch = 100, dim = 768, reps = 40;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--batch"))
            batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dim"))
            dim = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: mn_bench_json [--batch N] [--dim D] [--reps R]\n");
            return 2;
        }
    }
    if (batch < 1 || dim < 1 || reps < 1) {
        fprintf(stderr, "mn_bench_json: batch, dim and reps must be positive\n");
        return 2;
    }
    printf("# parse + free of one remember batch: %d memories x %d floats, median of %d\n", batch,
           dim, reps);
    buf b6 = {0}, b17 = {0};
    batch_body(&b6, batch, dim, "%.6g");
    batch_body(&b17, batch, dim, "%.17g");
    long numbers = (long)batch * dim;
    int rc = run("g6", &b6, reps, numbers) || run("g17", &b17, reps, numbers);
    free(b6.p);
    free(b17.p);
    return rc;
}
