/* engine + HNSW: a space past the threshold recalls through the index (path
 * "hnsw") with the exact path's answers, follows forgets and reuses, applies
 * filters inside the search (exact path for very selective ones), honours
 * "exact", and comes back after a restart from its saved graph, or from a
 * rebuild when the file is corrupt or stale. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/engine.h"
#include "testutil.h"

#define DIM 16
#define N 1200
#define THRESHOLD 500
#define K 10

typedef struct fx {
    char *dir;
    mn_engine_t *e;
    float *vecs;
    mn_id_t *ids;
    bool *gone;
} fx;

static void open_engine(fx *f)
{
    mn_engine_options o;
    mn_test_engine_options(&o, f->dir);
    o.hnsw_threshold = THRESHOLD;
    o.hnsw_m = 8;
    o.hnsw_ef_construction = 64;
    mn_error err = {0};
    assert_int_equal(mn_engine_open(&o, &f->e, &err), MN_OK);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->dir = mn_test_tmpdir("mnemo-hnsw");
    f->vecs = malloc((size_t)N * DIM * sizeof(float));
    f->ids = calloc(N, sizeof *f->ids);
    f->gone = calloc(N, sizeof *f->gone);
    open_engine(f);
    mn_space_def d = {0};
    snprintf(d.name, sizeof d.name, "s");
    d.dim = DIM;
    d.metric = MN_METRIC_COSINE;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_create(f->e, &d, NULL, &err), MN_OK);
    mn_prng_t p;
    mn_prng_seed(&p, 3);
    for (size_t i = 0; i < (size_t)N * DIM; i++)
        f->vecs[i] = (float)(mn_prng_double(&p) * 2 - 1);
    /* in batches; every tenth memory is tagged "rare" */
    enum { B = 100 };
    static char *rare[1] = {"rare"};
    for (uint32_t b = 0; b < N; b += B) {
        mn_memory_t batch[B];
        for (uint32_t i = 0; i < B; i++) {
            mn_memory_init(&batch[i]);
            batch[i].content = "m";
            batch[i].content_len = 1;
            batch[i].embedding = f->vecs + (size_t)(b + i) * DIM;
            batch[i].dim = DIM;
            if ((b + i) % 10 == 0) {
                batch[i].tags = rare;
                batch[i].n_tags = 1;
            }
        }
        assert_int_equal(mn_engine_remember(f->e, "s", batch, B, f->ids + b, &err), MN_OK);
    }
    mn_engine_wait_background(f->e); /* the index thread built the graph */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    mn_engine_close(f->e);
    mn_test_rmrf(f->dir);
    free(f->dir);
    free(f->vecs);
    free(f->ids);
    free(f->gone);
    free(f);
    return 0;
}

static mn_recall_result recall(fx *f, const float *q, bool exact, const char *tag)
{
    mn_recall_req req = {0};
    req.embedding = q;
    req.dim = DIM;
    req.k = K;
    req.exact = exact;
    req.ef = 64;
    mn_filter_init(&req.filter);
    char *tags[1] = {(char *)tag};
    if (tag) {
        req.filter.tags_any = tags;
        req.filter.n_tags_any = 1;
    }
    mn_recall_result r;
    mn_error err = {0};
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    return r;
}

/* Mean share of the exact top k that the index path found, over nq queries. */
static double agreement(fx *f, uint32_t nq, const char *tag, const char *want_path)
{
    mn_prng_t p;
    mn_prng_seed(&p, 17);
    double sum = 0;
    for (uint32_t i = 0; i < nq; i++) {
        float q[DIM];
        for (int d = 0; d < DIM; d++)
            q[d] = (float)(mn_prng_double(&p) * 2 - 1);
        mn_recall_result a = recall(f, q, false, tag), b = recall(f, q, true, tag);
        if (want_path) assert_string_equal(a.path, want_path);
        assert_string_equal(b.path, "exact");
        size_t found = 0;
        for (size_t x = 0; x < a.n_hits; x++) {
            for (uint32_t s = 0; s < N; s++)
                if (!memcmp(a.hits[x].memory.id.b, f->ids[s].b, 16)) assert_false(f->gone[s]);
            for (size_t y = 0; y < b.n_hits; y++)
                if (!memcmp(a.hits[x].memory.id.b, b.hits[y].memory.id.b, 16)) found++;
        }
        sum += b.n_hits ? (double)found / b.n_hits : 1.0;
        mn_recall_result_clear(&a);
        mn_recall_result_clear(&b);
    }
    return sum / nq;
}

static void test_large_space_recalls_through_the_index(void **state)
{
    fx *f = *state;
    double r = agreement(f, 50, NULL, "hnsw");
    print_message("hnsw vs exact: %.3f\n", r);
    assert_true(r >= 0.95);
    /* a filter passing 10% of 1200: s^2 N = 12 < 4 ef, so the scan is cheaper */
    double rt = agreement(f, 20, "rare", "exact");
    assert_true(rt == 1.0);
}

static void test_forget_and_new_memories_follow_the_index(void **state)
{
    fx *f = *state;
    mn_error err = {0};
    for (uint32_t s = 0; s < N; s += 3) {
        assert_int_equal(mn_engine_forget(f->e, "s", &f->ids[s], MN_FORGET_DELETE, &err), MN_OK);
        f->gone[s] = true;
    }
    /* forgotten memories are gone from recall at once, whatever the index thread did yet */
    double a0 = agreement(f, 10, NULL, "hnsw");
    assert_true(a0 >= 0.9);
    mn_engine_wait_background(f->e); /* the graph has repaired its lists */
    /* new memories take the freed slots; one is the query itself */
    float q[DIM];
    for (int d = 0; d < DIM; d++)
        q[d] = 0.5f - (float)d / DIM;
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = "new";
    m.content_len = 3;
    m.embedding = q;
    m.dim = DIM;
    mn_id_t nid;
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &nid, &err), MN_OK);
    mn_recall_result r = recall(f, q, false, NULL);
    assert_string_equal(r.path, "hnsw");
    assert_true(r.n_hits > 0);
    assert_memory_equal(r.hits[0].memory.id.b, nid.b, 16);
    mn_recall_result_clear(&r);
    double a = agreement(f, 30, NULL, "hnsw");
    print_message("after forgetting a third: %.3f\n", a);
    assert_true(a >= 0.95);
}

static void test_restart_loads_the_saved_graph_or_rebuilds(void **state)
{
    fx *f = *state;
    mn_engine_close(f->e);
    char path[600];
    snprintf(path, sizeof path, "%s/hnsw", f->dir);
    /* a saved graph exists after a clean shutdown */
    char file[700] = {0};
    for (uint32_t sid = 1; sid < 8 && !file[0]; sid++) {
        snprintf(file, sizeof file, "%s/%u.hnsw", path, sid);
        FILE *fp = fopen(file, "rb");
        if (fp)
            fclose(fp);
        else
            file[0] = 0;
    }
    assert_true(file[0] != 0);
    open_engine(f);
    assert_true(agreement(f, 20, NULL, "hnsw") >= 0.95);
    /* corrupt it: the engine rebuilds and still answers through the index */
    mn_engine_close(f->e);
    FILE *fp = fopen(file, "r+b");
    assert_non_null(fp);
    fseek(fp, 300, SEEK_SET);
    fputc(0x77, fp);
    fclose(fp);
    open_engine(f);
    /* the graph is rebuilt in the background; recalls are right meanwhile */
    assert_true(agreement(f, 20, NULL, NULL) >= 0.95);
    mn_engine_wait_background(f->e);
    assert_true(agreement(f, 20, NULL, "hnsw") >= 0.95);
}

/* Writers remember and forget while the index thread catches up: a memory is
 * found by its own vector as soon as remember returns (from the unindexed tail
 * or the graph), and a forgotten one never comes back. */
typedef struct fresh_arg {
    fx *f;
    uint64_t seed;
    uint32_t base; /* forgets f->ids[base + 2i] */
    int found, missed, resurrected, hnsw;
} fresh_arg;

static void *fresh_writer(void *arg)
{
    fresh_arg *a = arg;
    mn_prng_t p;
    mn_prng_seed(&p, a->seed);
    for (int it = 0; it < 250; it++) {
        float v[DIM];
        for (int d = 0; d < DIM; d++)
            v[d] = (float)(mn_prng_double(&p) * 2 - 1);
        mn_memory_t m;
        mn_memory_init(&m);
        m.content = "fresh";
        m.content_len = 5;
        m.embedding = v;
        m.dim = DIM;
        mn_id_t id;
        mn_error err = {0};
        if (mn_engine_remember(a->f->e, "s", &m, 1, &id, &err)) return NULL;
        mn_recall_req req = {.embedding = v, .dim = DIM, .k = 1};
        mn_filter_init(&req.filter);
        mn_recall_result r;
        if (mn_engine_recall(a->f->e, "s", &req, &r, &err)) return NULL;
        if (!strcmp(r.path, "hnsw")) a->hnsw++;
        if (r.n_hits == 1 && !memcmp(r.hits[0].memory.id.b, id.b, 16))
            a->found++;
        else
            a->missed++;
        mn_recall_result_clear(&r);
        if (it % 2 == 0) {
            uint32_t old = a->base + (uint32_t)it;
            const float *ov = a->f->vecs + (size_t)old * DIM;
            if (mn_engine_forget(a->f->e, "s", &a->f->ids[old], MN_FORGET_DELETE, &err))
                return NULL;
            req.embedding = ov;
            if (mn_engine_recall(a->f->e, "s", &req, &r, &err)) return NULL;
            if (r.n_hits == 1 && !memcmp(r.hits[0].memory.id.b, a->f->ids[old].b, 16))
                a->resurrected++;
            mn_recall_result_clear(&r);
        }
    }
    return NULL;
}

static void test_fresh_writes_are_found_while_the_index_catches_up(void **state)
{
    fx *f = *state;
    fresh_arg args[2] = {{.f = f, .seed = 11, .base = 0}, {.f = f, .seed = 12, .base = 600}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, fresh_writer, &args[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        print_message("writer %d: found %d missed %d resurrected %d (hnsw path %d)\n", i,
                      args[i].found, args[i].missed, args[i].resurrected, args[i].hnsw);
        assert_int_equal(args[i].found, 250);
        assert_int_equal(args[i].resurrected, 0);
        assert_int_equal(args[i].hnsw, 250);
    }
}

static void test_small_space_stays_exact(void **state)
{
    fx *f = *state;
    mn_space_def d = {0};
    snprintf(d.name, sizeof d.name, "small");
    d.dim = DIM;
    d.metric = MN_METRIC_L2;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_create(f->e, &d, NULL, &err), MN_OK);
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = "x";
    m.content_len = 1;
    m.embedding = f->vecs;
    m.dim = DIM;
    mn_id_t id;
    assert_int_equal(mn_engine_remember(f->e, "small", &m, 1, &id, &err), MN_OK);
    mn_recall_req req = {0};
    req.embedding = f->vecs;
    req.dim = DIM;
    req.k = 3;
    mn_filter_init(&req.filter);
    mn_recall_result r;
    assert_int_equal(mn_engine_recall(f->e, "small", &req, &r, &err), MN_OK);
    assert_string_equal(r.path, "exact");
    assert_int_equal(r.n_hits, 1);
    mn_recall_result_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_large_space_recalls_through_the_index, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_forget_and_new_memories_follow_the_index, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_restart_loads_the_saved_graph_or_rebuilds, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fresh_writes_are_found_while_the_index_catches_up,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_space_stays_exact, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
