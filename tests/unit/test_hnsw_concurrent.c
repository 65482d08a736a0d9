/* HNSW under concurrency: inserters, a remover that reuses slots, searchers
 * and a saver run at once on one index (owned vectors, then the caller's
 * array). Searches must return sorted results of inserted nodes only, every
 * save must succeed and load back, and the graph must be as good as a serial
 * build afterwards. Meant to run under TSan too (configure with -DMN_TSAN=ON;
 * see bench/ann/README.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/hnsw/hnsw.h"
#include "mnemo/util.h"
#include "testutil.h"

#define DIM 16
#define N 3000
#define K 10
#define INSERTERS 2
#define SEARCHERS 2

typedef struct shared {
    mn_hnsw_t *h;
    char path[600]; /* the saver's file */
    atomic_int saves, bad_saves;
    float *x;             /* N + N/10 vectors: the points, then replacements */
    _Atomic uint8_t *ins; /* 1: an insert started, 2: it returned */
    atomic_int inserters_left;
    atomic_uint_fast64_t searches, bad;
} shared;

typedef struct worker {
    shared *s;
    int id;
} worker;

static void *insert_main(void *arg)
{
    worker *w = arg;
    for (uint32_t slot = (uint32_t)w->id; slot < N; slot += INSERTERS) {
        atomic_store(&w->s->ins[slot], 1);
        if (mn_hnsw_insert(w->s->h, slot, w->s->x + (size_t)slot * DIM, NULL))
            atomic_fetch_add(&w->s->bad, 1);
        atomic_store(&w->s->ins[slot], 2); /* done: the churner may take it */
    }
    atomic_fetch_sub(&w->s->inserters_left, 1);
    return NULL;
}

/* Removes and re-inserts a few slots already inserted (same vector), while
 * the inserters run: exercises repair and reuse under readers. */
static void *churn_main(void *arg)
{
    shared *s = arg;
    mn_prng_t p;
    mn_prng_seed(&p, 5);
    for (int i = 0; i < 300; i++) {
        uint32_t slot = (uint32_t)mn_prng_below(&p, N);
        if (atomic_load(&s->ins[slot]) != 2) continue; /* one operation per slot at a time */
        mn_hnsw_remove(s->h, slot);
        mn_hnsw_insert(s->h, slot, s->x + (size_t)slot * DIM, NULL);
    }
    return NULL;
}

/* Saves the graph again and again while the others run (a save waits for
 * running inserts and removes and holds new ones off; searches go on). */
static void *save_main(void *arg)
{
    shared *s = arg;
    while (atomic_load(&s->inserters_left) > 0 && atomic_load(&s->saves) < 20) {
        mn_error err = {0};
        if (mn_hnsw_save(s->h, s->path, 1, NULL, NULL, &err)) atomic_fetch_add(&s->bad_saves, 1);
        atomic_fetch_add(&s->saves, 1);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void *search_main(void *arg)
{
    worker *w = arg;
    shared *s = w->s;
    mn_prng_t p;
    mn_prng_seed(&p, 100 + (uint64_t)w->id);
    /* bounded: stops when the inserters finish, or after many rounds */
    for (uint32_t round = 0; round < 2000000 && atomic_load(&s->inserters_left) > 0; round++) {
        const float *q = s->x + (size_t)mn_prng_below(&p, N) * DIM;
        mn_hnsw_hit_t hits[K];
        size_t n = mn_hnsw_search(s->h, q, K, 32, NULL, NULL, hits, NULL);
        for (size_t i = 0; i < n; i++) {
            if (hits[i].slot >= N || !atomic_load(&s->ins[hits[i].slot]))
                atomic_fetch_add(&s->bad, 1);
            if (i && hits[i - 1].dist > hits[i].dist) atomic_fetch_add(&s->bad, 1);
        }
        atomic_fetch_add(&s->searches, 1);
    }
    return NULL;
}

static void run(bool ext_mode)
{
    shared s;
    memset(&s, 0, sizeof s);
    s.x = malloc((size_t)N * DIM * sizeof(float));
    s.ins = calloc(N, 1);
    assert_non_null(s.x);
    assert_non_null(s.ins);
    mn_prng_t p;
    mn_prng_seed(&p, 77);
    for (size_t i = 0; i < (size_t)N * DIM; i++)
        s.x[i] = (float)mn_prng_double(&p);
    float *base = s.x;
    mn_hnsw_params_t hp = {
        .dim = DIM, .metric = MN_METRIC_L2, .M = 8, .ef_construction = 64, .seed = 3};
    assert_int_equal(mn_hnsw_new(&hp, ext_mode ? &base : NULL, &s.h, NULL), MN_OK);
    atomic_store(&s.inserters_left, INSERTERS);
    pthread_t ti[INSERTERS], ts[SEARCHERS], tc;
    worker wi[INSERTERS], ws[SEARCHERS];
    for (int i = 0; i < INSERTERS; i++) {
        wi[i] = (worker){&s, i};
        assert_int_equal(pthread_create(&ti[i], NULL, insert_main, &wi[i]), 0);
    }
    for (int i = 0; i < SEARCHERS; i++) {
        ws[i] = (worker){&s, i};
        assert_int_equal(pthread_create(&ts[i], NULL, search_main, &ws[i]), 0);
    }
    assert_int_equal(pthread_create(&tc, NULL, churn_main, &s), 0);
    char *dir = mn_test_tmpdir("hnsw-save");
    snprintf(s.path, sizeof s.path, "%s/g.hnsw", dir);
    pthread_t tsv;
    assert_int_equal(pthread_create(&tsv, NULL, save_main, &s), 0);
    for (int i = 0; i < INSERTERS; i++)
        pthread_join(ti[i], NULL);
    for (int i = 0; i < SEARCHERS; i++)
        pthread_join(ts[i], NULL);
    pthread_join(tc, NULL);
    pthread_join(tsv, NULL);
    assert_int_equal(atomic_load(&s.bad), 0);
    assert_int_equal(atomic_load(&s.bad_saves), 0);
    assert_true(atomic_load(&s.saves) > 0);
    /* the last save taken during the inserts is a consistent graph */
    mn_hnsw_t *g = NULL;
    mn_error err = {0};
    assert_int_equal(
        mn_hnsw_load(s.path, &hp, ext_mode ? &base : NULL, NULL, NULL, NULL, &g, NULL, &err),
        MN_OK);
    mn_hnsw_info_t gi;
    mn_hnsw_get_info(g, &gi);
    assert_true(gi.live <= N);
    mn_hnsw_free(g);
    mn_test_rmrf(dir);
    free(dir);
    mn_hnsw_info_t info;
    mn_hnsw_get_info(s.h, &info);
    assert_int_equal(info.live, N);
    /* every point finds itself */
    uint32_t self = 0;
    for (uint32_t i = 0; i < N; i += 10) {
        mn_hnsw_hit_t hits[K];
        size_t n = mn_hnsw_search(s.h, s.x + (size_t)i * DIM, K, 64, NULL, NULL, hits, NULL);
        if (n && hits[0].slot == i) self++;
    }
    print_message("%s: %lu searches and %d saves during inserts; self-recall %.3f\n",
                  ext_mode ? "ext" : "owned", (unsigned long)atomic_load(&s.searches),
                  atomic_load(&s.saves), self / (double)(N / 10));
    assert_true(self >= (N / 10) * 95 / 100);
    mn_hnsw_free(s.h);
    free(s.x);
    free((void *)s.ins);
}

/* One inserter and one searcher: every node whose insert returned is found by its own
 * vector from then on (k 1), whatever insert runs meanwhile. A node used to be linked from
 * the layers above before its layer-0 list was written: a search descending through it
 * ended there, about 4 searches in 1000 (fixed by publishing links bottom-up). */
#define FRESH_N 600
#define FRESH_DIM 32

typedef struct fresh {
    mn_hnsw_t *h;
    float *x;
    atomic_uint done; /* nodes whose insert returned: slots below it */
    atomic_bool stop;
    atomic_uint_fast64_t searches, misses;
} fresh;

static void *fresh_search_main(void *arg)
{
    fresh *f = arg;
    mn_prng_t p;
    mn_prng_seed(&p, 11);
    for (uint32_t round = 0; round < 20000000 && !atomic_load(&f->stop); round++) {
        uint32_t n = atomic_load(&f->done);
        if (n < 2) continue;
        uint32_t j = (uint32_t)mn_prng_below(&p, n);
        mn_hnsw_hit_t hit;
        if (mn_hnsw_search(f->h, f->x + (size_t)j * FRESH_DIM, 1, 64, NULL, NULL, &hit, NULL) !=
                1 ||
            hit.slot != j)
            atomic_fetch_add(&f->misses, 1);
        atomic_fetch_add(&f->searches, 1);
    }
    return NULL;
}

static void test_a_node_is_found_once_its_insert_returned(void **state)
{
    (void)state;
    uint64_t searches = 0, misses = 0;
    for (uint64_t trial = 0; trial < 40; trial++) {
        fresh f;
        memset(&f, 0, sizeof f);
        f.x = malloc((size_t)FRESH_N * FRESH_DIM * sizeof(float));
        assert_non_null(f.x);
        mn_prng_t p;
        mn_prng_seed(&p, 1000 + trial);
        for (uint32_t i = 0; i < FRESH_N; i++) {
            float *v = f.x + (size_t)i * FRESH_DIM;
            for (uint32_t d = 0; d < FRESH_DIM; d++)
                v[d] = (float)mn_prng_double(&p) - 0.5f;
            mn_test_unit_vec(v, FRESH_DIM);
        }
        mn_hnsw_params_t hp = {.dim = FRESH_DIM, .metric = MN_METRIC_COSINE, .seed = trial};
        assert_int_equal(mn_hnsw_new(&hp, NULL, &f.h, NULL), MN_OK);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, fresh_search_main, &f), 0);
        for (uint32_t i = 0; i < FRESH_N; i++) {
            assert_int_equal(mn_hnsw_insert(f.h, i, f.x + (size_t)i * FRESH_DIM, NULL), MN_OK);
            atomic_store(&f.done, i + 1);
        }
        atomic_store(&f.stop, true);
        pthread_join(t, NULL);
        searches += atomic_load(&f.searches);
        misses += atomic_load(&f.misses);
        mn_hnsw_free(f.h);
        free(f.x);
    }
    print_message("%llu searches during inserts, %llu missed their own node\n",
                  (unsigned long long)searches, (unsigned long long)misses);
    assert_true(searches > 0);
    assert_int_equal(misses, 0);
}

static void test_concurrent_insert_search_owned_vectors(void **state)
{
    (void)state;
    run(false);
}

static void test_concurrent_insert_search_caller_vectors(void **state)
{
    (void)state;
    run(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_insert_search_owned_vectors),
        cmocka_unit_test(test_concurrent_insert_search_caller_vectors),
        cmocka_unit_test(test_a_node_is_found_once_its_insert_returned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
