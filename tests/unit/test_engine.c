/* engine: spaces, remember/get/recall/list/forget on a real RocksDB in a temp
 * dir; restart keeps data and tombstones; TTL expiry via an injected clock;
 * lsns stay dense under concurrent writers. */
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
#include "mnemo/wire.h"
#include "testutil.h"

typedef mn_test_eng fx;

static int setup(void **state)
{
    return mn_test_eng_setup(state, "mnemo-engine", true);
}

static void reopen(fx *f)
{
    mn_test_eng_reopen(f);
}

static void make_space(fx *f, const char *name, uint32_t dim, mn_metric_t metric)
{
    mn_space_def_t d = {0};
    snprintf(d.name, sizeof d.name, "%s", name);
    d.dim = dim;
    d.metric = metric;
    d.dedup = MN_DEDUP_OFF; /* identical memories on purpose: dedup is test_engine_dedup.c's */
    mn_error err = {0};
    assert_int_equal(mn_engine_space_create(f->e, &d, NULL, &err), MN_OK);
}

static mn_id_t remember1(fx *f, const char *space, const char *content, float *emb, uint32_t dim)
{
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)content;
    m.content_len = strlen(content);
    m.embedding = emb;
    m.dim = dim;
    mn_id_t id;
    mn_error err = {0};
    mn_err rc = mn_engine_remember(f->e, space, &m, 1, &id, &err);
    if (rc) fprintf(stderr, "remember: %s\n", err.message);
    assert_int_equal(rc, MN_OK);
    return id;
}

static void test_space_lifecycle_and_errors(void **state)
{
    fx *f = *state;
    make_space(f, "agent-1", 4, MN_METRIC_COSINE);
    mn_space_def_t d = {0};
    strcpy(d.name, "agent-1");
    d.dim = 4;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_create(f->e, &d, NULL, &err), MN_ERR_EXISTS);
    strcpy(d.name, "Bad Name");
    assert_int_equal(mn_engine_space_create(f->e, &d, NULL, &err), MN_ERR_INVALID);
    strcpy(d.name, "ok");
    d.dim = 0;
    assert_int_equal(mn_engine_space_create(f->e, &d, NULL, &err), MN_ERR_INVALID);
    d.dim = 5000;
    assert_int_equal(mn_engine_space_create(f->e, &d, NULL, &err), MN_ERR_INVALID);
    make_space(f, "b-space", 2, MN_METRIC_L2);
    mn_space_def_t *list;
    size_t n;
    assert_int_equal(mn_engine_space_list(f->e, &list, &n, &err), MN_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "agent-1");
    free(list);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->e, "agent-1", &st, &err), MN_OK);
    assert_int_equal(st.def.dim, 4);
    assert_int_equal(st.last_lsn, 1); /* the create entry */
    assert_int_equal(st.def.default_lifecycle, MN_LIFECYCLE_PERSISTENT);
    assert_int_equal(mn_engine_space_drop(f->e, "b-space", &err), MN_OK);
    assert_int_equal(mn_engine_space_get(f->e, "b-space", &st, &err), MN_ERR_NOT_FOUND);
    reopen(f);
    assert_int_equal(mn_engine_space_list(f->e, &list, &n, &err), MN_OK);
    assert_int_equal(n, 1);
    free(list);
    /* re-creating a dropped name starts empty */
    make_space(f, "b-space", 2, MN_METRIC_L2);
    assert_int_equal(mn_engine_space_get(f->e, "b-space", &st, &err), MN_OK);
    assert_int_equal(st.memories, 0);
}

static void test_remember_validates_input(void **state)
{
    fx *f = *state;
    make_space(f, "s", 3, MN_METRIC_COSINE);
    float emb[3] = {1, 0, 0};
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = "x";
    m.content_len = 1;
    m.embedding = emb;
    m.dim = 2;
    mn_id_t id;
    mn_error err = {0};
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &id, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "embedding"));
    m.dim = 3;
    emb[1] = NAN;
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &id, &err), MN_ERR_INVALID);
    emb[1] = 0;
    emb[0] = 0;
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &id, &err), MN_ERR_INVALID);
    emb[0] = 1;
    m.confidence = 1.5f;
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &id, &err), MN_ERR_INVALID);
    m.confidence = 1;
    m.content = "\xc3\x28";
    m.content_len = 2;
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &id, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "UTF-8"));
    m.content = "ok";
    assert_int_equal(mn_engine_remember(f->e, "nope", &m, 1, &id, &err), MN_ERR_NOT_FOUND);
    /* batch: one bad memory rejects all */
    mn_memory_t batch[3] = {m, m, m};
    batch[2].dim = 7;
    mn_id_t ids[3];
    assert_int_equal(mn_engine_remember(f->e, "s", batch, 3, ids, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "memories[2]"));
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.memories, 0);
    assert_int_equal(st.last_lsn, 1);
}

/* Brute force in double precision for comparison. */
static double ref_score(mn_metric_t m, const float *q, const float *v, uint32_t dim)
{
    double dot = 0, nq = 0, nv = 0, l2 = 0;
    for (uint32_t i = 0; i < dim; i++) {
        dot += (double)q[i] * v[i];
        nq += (double)q[i] * q[i];
        nv += (double)v[i] * v[i];
        l2 += ((double)q[i] - v[i]) * ((double)q[i] - v[i]);
    }
    if (m == MN_METRIC_COSINE) return dot / sqrt(nq * nv);
    if (m == MN_METRIC_DOT) return dot;
    return 1.0 / (1.0 + sqrt(l2));
}

static void test_recall_matches_brute_force_every_metric(void **state)
{
    fx *f = *state;
    enum { N = 500, DIM = 16, K = 10 };
    mn_metric_t metrics[3] = {MN_METRIC_COSINE, MN_METRIC_L2, MN_METRIC_DOT};
    mn_prng_t p;
    mn_prng_seed(&p, 11);
    static float vecs[N][DIM];
    static mn_id_t ids[N];
    for (int mi = 0; mi < 3; mi++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", mi);
        make_space(f, name, DIM, metrics[mi]);
        mn_memory_t batch[100];
        for (int b = 0; b < N / 100; b++) {
            for (int i = 0; i < 100; i++) {
                float *v = vecs[b * 100 + i];
                for (int d = 0; d < DIM; d++)
                    v[d] = (float)(mn_prng_double(&p) * 2 - 1);
                mn_memory_init(&batch[i]);
                batch[i].content = "c";
                batch[i].content_len = 1;
                batch[i].embedding = v;
                batch[i].dim = DIM;
            }
            mn_error err = {0};
            assert_int_equal(mn_engine_remember(f->e, name, batch, 100, &ids[b * 100], &err),
                             MN_OK);
        }
        for (int qn = 0; qn < 5; qn++) {
            float q[DIM];
            for (int d = 0; d < DIM; d++)
                q[d] = (float)(mn_prng_double(&p) * 2 - 1);
            mn_recall_req_t req = {0};
            req.embedding = q;
            req.dim = DIM;
            req.k = K;
            mn_filter_init(&req.filter);
            mn_recall_result_t r;
            mn_error err = {0};
            assert_int_equal(mn_engine_recall(f->e, name, &req, &r, &err), MN_OK);
            assert_int_equal(r.n_hits, K);
            assert_string_equal(r.path, "exact");
            /* reference top-k */
            double best[N];
            int order[N];
            for (int i = 0; i < N; i++) {
                best[i] = ref_score(metrics[mi], q, vecs[i], DIM);
                order[i] = i;
            }
            for (int i = 0; i < K; i++)
                for (int j = i + 1; j < N; j++)
                    if (best[order[j]] > best[order[i]]) {
                        int t = order[i];
                        order[i] = order[j];
                        order[j] = t;
                    }
            for (int i = 0; i < K; i++) {
                assert_true(fabs(r.hits[i].score - best[order[i]]) < 1e-4);
                if (i + 1 < K && fabs(best[order[i]] - best[order[i + 1]]) > 1e-5)
                    assert_memory_equal(r.hits[i].memory.id.b, ids[order[i]].b, 16);
                assert_true(r.hits[i].confidence.value >= 0 && r.hits[i].confidence.value <= 1);
            }
            mn_recall_result_clear(&r);
        }
    }
}

static void test_filters_threshold_and_list_pagination(void **state)
{
    fx *f = *state;
    make_space(f, "s", 2, MN_METRIC_COSINE);
    char *tag_a[] = {"a"}, *tag_ab[] = {"a", "b"};
    mn_kv_t md[] = {{"user", "ann"}};
    mn_id_t ids[30];
    for (int i = 0; i < 30; i++) {
        float v[2] = {1, (float)i / 30};
        mn_memory_t m;
        mn_memory_init(&m);
        m.content = "m";
        m.content_len = 1;
        m.embedding = v;
        m.dim = 2;
        m.when_ms = 1000 + (i % 10) * 100; /* duplicate times: ties broken by id */
        m.kind = i % 3 == 0 ? MN_KIND_SEMANTIC : MN_KIND_EPISODIC;
        m.confidence = i < 15 ? 0.5f : 1.0f;
        if (i % 2) {
            m.tags = tag_a;
            m.n_tags = 1;
        } else if (i % 5 == 0) {
            m.tags = tag_ab;
            m.n_tags = 2;
            m.metadata = md;
            m.n_metadata = 1;
        }
        mn_error err = {0};
        assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &ids[i], &err), MN_OK);
    }
    float q[2] = {1, 0};
    mn_recall_req_t req = {0};
    req.embedding = q;
    req.dim = 2;
    req.k = 100;
    mn_filter_init(&req.filter);
    char *all_b[] = {"b"};
    req.filter.tags_all = all_b;
    req.filter.n_tags_all = 1;
    mn_recall_result_t r;
    mn_error err = {0};
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    assert_int_equal(r.n_hits, 3); /* i = 0, 10, 20 */
    mn_recall_result_clear(&r);
    req.filter.n_tags_all = 0;
    req.filter.metadata = md;
    req.filter.n_metadata = 1;
    req.filter.kind = MN_KIND_SEMANTIC;
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    assert_int_equal(r.n_hits, 1); /* of 0, 10, 20 only 0 is semantic */
    mn_recall_result_clear(&r);
    mn_filter_init(&req.filter);
    req.filter.min_confidence = 0.9f;
    req.filter.when_from_ms = 1200;
    req.filter.when_to_ms = 1500;
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    for (size_t i = 0; i < r.n_hits; i++) {
        assert_true(r.hits[i].memory.when_ms >= 1200 && r.hits[i].memory.when_ms < 1500);
        assert_true(r.hits[i].memory.confidence >= 0.9f);
    }
    assert_int_equal(r.n_hits, 3); /* i in 15..29 with i%10 in 2..4: 22, 23, 24 */
    mn_recall_result_clear(&r);
    mn_filter_init(&req.filter);
    req.has_threshold = true;
    req.threshold = 0.999f;
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    for (size_t i = 0; i < r.n_hits; i++)
        assert_true(r.hits[i].score >= 0.999f);
    assert_true(r.n_hits >= 1 && r.n_hits < 30);
    mn_recall_result_clear(&r);

    /* list: pages of 7 cover everything once, in (when, id) order */
    mn_list_req_t lr = {0};
    mn_filter_init(&lr.filter);
    lr.limit = 7;
    int seen = 0;
    int64_t last_when = INT64_MIN;
    mn_id_t last_id = {{0}};
    char *cursor = NULL;
    for (int page = 0; page < 10; page++) {
        lr.cursor = cursor;
        mn_list_result_t out;
        assert_int_equal(mn_engine_list(f->e, "s", &lr, &out, &err), MN_OK);
        for (size_t i = 0; i < out.n; i++) {
            const mn_memory_t *m = &out.memories[i];
            assert_true(m->when_ms > last_when ||
                        (m->when_ms == last_when && mn_id_cmp(&m->id, &last_id) > 0));
            last_when = m->when_ms;
            last_id = m->id;
            seen++;
        }
        free(cursor);
        cursor = out.next ? strdup(out.next) : NULL;
        mn_list_result_clear(&out);
        if (!cursor) break;
    }
    assert_int_equal(seen, 30);
    lr.cursor = "zz";
    mn_list_result_t out;
    assert_int_equal(mn_engine_list(f->e, "s", &lr, &out, &err), MN_ERR_INVALID);
}

static void test_forget_delete_and_suppress_survive_restart(void **state)
{
    fx *f = *state;
    make_space(f, "s", 2, MN_METRIC_COSINE);
    float v[2] = {1, 0};
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = "secret";
    m.content_len = 6;
    m.embedding = v;
    m.dim = 2;
    m.idempotency_key = "k1";
    mn_id_t a, b;
    mn_error err = {0};
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &a, &err), MN_OK);
    m.idempotency_key = NULL;
    b = remember1(f, "s", "keep", v, 2);
    assert_int_equal(mn_engine_forget(f->e, "s", &a, MN_FORGET_DELETE, &err), MN_OK);
    assert_int_equal(mn_engine_forget(f->e, "s", &a, MN_FORGET_DELETE, &err), MN_ERR_GONE);
    assert_int_equal(mn_engine_forget(f->e, "s", &b, MN_FORGET_SUPPRESS, &err), MN_OK);
    mn_memory_t out;
    assert_int_equal(mn_engine_get(f->e, "s", &a, false, &out, &err), MN_ERR_GONE);
    assert_int_equal(mn_engine_get(f->e, "s", &b, false, &out, &err), MN_OK);
    assert_true(out.suppressed);
    mn_memory_clear(&out);
    mn_recall_req_t req = {0};
    req.embedding = v;
    req.dim = 2;
    mn_filter_init(&req.filter);
    mn_recall_result_t r;
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    assert_int_equal(r.n_hits, 0);
    mn_recall_result_clear(&r);
    reopen(f);
    assert_int_equal(mn_engine_get(f->e, "s", &a, false, &out, &err), MN_ERR_GONE);
    /* a retry with the same idempotency key returns the old id, does not resurrect */
    m.idempotency_key = "k1";
    mn_id_t again;
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &again, &err), MN_OK);
    assert_memory_equal(again.b, a.b, 16);
    assert_int_equal(mn_engine_get(f->e, "s", &a, false, &out, &err), MN_ERR_GONE);
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    assert_int_equal(r.n_hits, 0);
    mn_recall_result_clear(&r);
    assert_int_equal(mn_engine_unsuppress(f->e, "s", &b, &err), MN_OK);
    reopen(f);
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    assert_int_equal(r.n_hits, 1);
    assert_memory_equal(r.hits[0].memory.id.b, b.b, 16);
    assert_string_equal(r.hits[0].memory.content, "keep");
    mn_recall_result_clear(&r);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.memories, 1);
    assert_int_equal(st.tombstones, 1);
    /* create, remember, remember, forget, suppress, unsuppress: dense lsns */
    assert_int_equal(st.last_lsn, 6);
}

static void test_ttl_expiry_through_forget_path(void **state)
{
    fx *f = *state;
    make_space(f, "s", 2, MN_METRIC_COSINE);
    float v[2] = {1, 1};
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = "short";
    m.content_len = 5;
    m.embedding = v;
    m.dim = 2;
    m.ttl_seconds = 10;
    mn_id_t a, eph, keep;
    mn_error err = {0};
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &a, &err), MN_OK);
    m.ttl_seconds = -1;
    m.lifecycle = MN_LIFECYCLE_EPHEMERAL;
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &eph, &err), MN_OK);
    keep = remember1(f, "s", "forever", v, 2);
    mn_memory_t out;
    assert_int_equal(mn_engine_get(f->e, "s", &eph, false, &out, &err), MN_OK);
    assert_int_equal(out.expires_at_ms, f->now + 3600 * 1000);
    assert_int_equal(out.lifecycle, MN_LIFECYCLE_EPHEMERAL);
    mn_memory_clear(&out);
    f->now += 11 * 1000;
    /* invisible at once, before any sweep */
    assert_int_equal(mn_engine_get(f->e, "s", &a, false, &out, &err), MN_ERR_GONE);
    size_t n = 0;
    assert_int_equal(mn_engine_expire(f->e, &n, &err), MN_OK);
    assert_int_equal(n, 1);
    f->now += 3600 * 1000;
    assert_int_equal(mn_engine_expire(f->e, &n, &err), MN_OK);
    assert_int_equal(n, 1);
    reopen(f);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.memories, 1);
    assert_int_equal(st.tombstones, 2);
    assert_int_equal(mn_engine_get(f->e, "s", &keep, false, &out, &err), MN_OK);
    assert_int_equal(out.expires_at_ms, 0);
    mn_memory_clear(&out);
}

typedef struct writer_arg {
    fx *f;
    int n;
    int failures;
} writer_arg;

static void *writer(void *arg)
{
    writer_arg *w = arg;
    for (int i = 0; i < w->n; i++) {
        float v[2] = {1, (float)i};
        mn_memory_t m;
        mn_memory_init(&m);
        m.content = "w";
        m.content_len = 1;
        m.embedding = v;
        m.dim = 2;
        mn_id_t id;
        if (mn_engine_remember(w->f->e, "s", &m, 1, &id, NULL)) w->failures++;
    }
    return NULL;
}

static void test_concurrent_writers_keep_lsns_dense(void **state)
{
    fx *f = *state;
    make_space(f, "s", 2, MN_METRIC_COSINE);
    enum { T = 8, PER = 100 };
    pthread_t th[T];
    writer_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (writer_arg){f, PER, 0};
        pthread_create(&th[i], NULL, writer, &args[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    mn_space_stats_t st;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.memories, T * PER);
    assert_int_equal(st.last_lsn, 1 + T * PER);
    mn_engine_stats_t es;
    mn_engine_get_stats(f->e, &es);
    assert_int_equal(es.entries, 1 + T * PER);
    /* that they share fsyncs is proven deterministically in test_engine_wal.c */
    reopen(f);
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.memories, T * PER);
    assert_int_equal(st.last_lsn, 1 + T * PER);
}

static void test_checkpoint_opens_as_a_copy(void **state)
{
    fx *f = *state;
    make_space(f, "s", 2, MN_METRIC_DOT);
    float v[2] = {3, 4};
    mn_id_t id = remember1(f, "s", "backed up", v, 2);
    char *cp = mn_test_tmpdir("mnemo-cp");
    char path[512];
    snprintf(path, sizeof path, "%s/backup", cp);
    mn_error err = {0};
    assert_int_equal(mn_engine_checkpoint(f->e, path, &err), MN_OK);
    assert_int_equal(mn_engine_checkpoint(f->e, path, &err), MN_ERR_EXISTS);
    /* the copy is a data dir of its own */
    mn_engine_options_t o;
    mn_engine_options_default(&o);
    o.data_dir = path;
    o.expiry_interval_ms = 0;
    mn_engine_t *e2;
    assert_int_equal(mn_engine_open(&o, &e2, &err), MN_OK);
    mn_memory_t out;
    assert_int_equal(mn_engine_get(e2, "s", &id, true, &out, &err), MN_OK);
    assert_string_equal(out.content, "backed up");
    assert_true(out.embedding[1] == 4.0f);
    mn_memory_clear(&out);
    mn_engine_close(e2);
    mn_test_rmrf(cp);
    free(cp);
}

static void test_wal_trim_keeps_the_newest_entries(void **state)
{
    fx *f = *state;
    mn_engine_close(f->e);
    mn_engine_options_t o;
    mn_engine_options_default(&o);
    o.data_dir = f->dir;
    o.expiry_interval_ms = 0;
    o.wal_retain_entries = 10;
    o.link_max = 0;
    mn_error err = {0};
    assert_int_equal(mn_engine_open(&o, &f->e, &err), MN_OK);
    make_space(f, "s", 2, MN_METRIC_COSINE);
    float v[2] = {1, 2};
    for (int i = 0; i < 30; i++)
        remember1(f, "s", "x", v, 2);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.wal_first_lsn, 1);
    assert_int_equal(st.last_lsn, 31);
    assert_int_equal(mn_engine_trim_wal(f->e, &err), MN_OK);
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.wal_first_lsn, 22);
    /* after a restart the first kept entry is found from the store */
    mn_engine_close(f->e);
    assert_int_equal(mn_engine_open(&o, &f->e, &err), MN_OK);
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.wal_first_lsn, 22);
    assert_int_equal(st.last_lsn, 31);
    assert_int_equal(st.memories, 30);
}

static mn_id_t remember_text(fx *f, const char *space, const char *content, float *emb)
{
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)content;
    m.content_len = strlen(content);
    m.embedding = emb;
    m.dim = emb ? 2 : 0;
    mn_id_t id;
    mn_error err = {0};
    assert_int_equal(mn_engine_remember(f->e, space, &m, 1, &id, &err), MN_OK);
    return id;
}

static void test_text_only_memories_and_keyword_and_hybrid_recall(void **state)
{
    fx *f = *state;
    make_space(f, "s", 2, MN_METRIC_COSINE);
    float east[2] = {1, 0}, north[2] = {0, 1};
    mn_id_t seats = remember_text(f, "s", "Ann prefers window seats on long flights", NULL);
    mn_id_t tea = remember_text(f, "s", "Bob drinks green tea every morning", east);
    mn_id_t trip = remember_text(f, "s", "The Lisbon trip is booked for May", north);
    mn_error err = {0};
    mn_recall_req_t req = {0};
    mn_filter_init(&req.filter);
    mn_recall_result_t r;
    /* no cue at all */
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_ERR_INVALID);
    /* text only: finds the text-only memory, folds case */
    req.text = "WINDOW seats?";
    req.text_len = strlen(req.text);
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    assert_string_equal(r.path, "keyword");
    assert_int_equal(r.n_hits, 1);
    assert_memory_equal(r.hits[0].memory.id.b, seats.b, 16);
    assert_true(isnan(r.hits[0].similarity));
    assert_true(r.hits[0].coverage > 0.99f);
    assert_true(r.hits[0].confidence.value > 0.99f);
    mn_recall_result_clear(&r);
    /* vector only never returns the text-only memory */
    req.text = NULL;
    req.embedding = north;
    req.dim = 2;
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    assert_string_equal(r.path, "exact");
    assert_int_equal(r.n_hits, 2);
    assert_memory_equal(r.hits[0].memory.id.b, trip.b, 16);
    mn_recall_result_clear(&r);
    /* hybrid: the keyword cue pulls up what the vector alone ranks last */
    req.text = "green tea";
    req.text_len = strlen(req.text);
    req.vector_weight = 0.2f;
    req.text_weight = 1.0f;
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    assert_string_equal(r.path, "exact+keyword");
    assert_memory_equal(r.hits[0].memory.id.b, tea.b, 16);
    assert_false(isnan(r.hits[0].similarity));
    assert_false(isnan(r.hits[0].keyword));
    mn_recall_result_clear(&r);
    /* text threshold applies to coverage: half the words known is not enough for 0.9 */
    req.embedding = NULL;
    req.text = "green dragons";
    req.text_len = strlen(req.text);
    req.has_threshold = true;
    req.threshold = 0.9f;
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    assert_int_equal(r.n_hits, 0);
    mn_recall_result_clear(&r);
    /* keyword index follows forget and restart */
    assert_int_equal(mn_engine_forget(f->e, "s", &seats, MN_FORGET_DELETE, &err), MN_OK);
    reopen(f);
    req.has_threshold = false;
    req.text = "window tea";
    req.text_len = strlen(req.text);
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    assert_int_equal(r.n_hits, 1);
    assert_memory_equal(r.hits[0].memory.id.b, tea.b, 16);
    mn_recall_result_clear(&r);
    /* a memory with neither embedding nor content is refused */
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = "";
    mn_id_t id;
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &id, &err), MN_ERR_INVALID);
}

static mn_id_t remember_turn(fx *f, const char *content, float *emb, const char *session,
                             int64_t when)
{
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)content;
    m.content_len = strlen(content);
    m.embedding = emb;
    m.dim = 2;
    m.session = (char *)session;
    m.when_ms = when;
    mn_id_t id;
    mn_error err = {0};
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &id, &err), MN_OK);
    return id;
}

static bool has_assoc(fx *f, const mn_id_t *id, const mn_id_t *other, mn_edge_kind_t kind)
{
    mn_assoc_t *a;
    size_t n;
    mn_error err = {0};
    assert_int_equal(mn_engine_associations(f->e, "s", id, &a, &n, &err), MN_OK);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        if (!mn_id_cmp(&a[i].other, other) && a[i].kind == kind) found = true;
    free(a);
    return found;
}

static void test_associations_and_spreading_activation(void **state)
{
    fx *f = *state;
    mn_engine_options_t dflt;
    mn_engine_options_default(&dflt);
    f->opts.link_max = dflt.link_max; /* background semantic linking, as by default */
    reopen(f);
    make_space(f, "s", 2, MN_METRIC_COSINE);
    float east[2] = {1, 0}, north[2] = {0, 1}, ne[2] = {0.6f, 0.8f};
    int64_t t = f->now;
    /* a session of three turns: temporal links a -> b -> c */
    mn_id_t a = remember_turn(f, "we land in Lisbon at nine", east, "trip", t);
    mn_id_t b = remember_turn(f, "the hotel is near the river", north, "trip", t + 60000);
    mn_id_t c = remember_turn(f, "dinner booked at eight", north, "trip", t + 120000);
    /* an unrelated session and a memory outside the window */
    mn_id_t d = remember_turn(f, "other talk", north, "work", t + 1000);
    mn_id_t late = remember_turn(f, "much later", north, "trip", t + 4 * 3600 * 1000);
    mn_engine_wait_background(f->e); /* semantic links are made in the background */
    mn_engine_stats_t es;
    mn_engine_get_stats(f->e, &es);
    assert_true(es.links > 0);
    assert_int_equal(es.links_dropped, 0);
    assert_true(has_assoc(f, &a, &b, MN_EDGE_TEMPORAL));
    assert_true(has_assoc(f, &b, &c, MN_EDGE_TEMPORAL));
    assert_false(has_assoc(f, &a, &c, MN_EDGE_TEMPORAL));
    assert_false(has_assoc(f, &c, &late, MN_EDGE_TEMPORAL));
    /* semantic auto-links: c is identical in direction to b, d and late */
    assert_true(has_assoc(f, &c, &b, MN_EDGE_SEMANTIC));
    assert_false(has_assoc(f, &b, &a, MN_EDGE_SEMANTIC)); /* orthogonal */

    mn_recall_req_t req = {0};
    mn_filter_init(&req.filter);
    req.embedding = east;
    req.dim = 2;
    req.k = 1;
    mn_recall_result_t r;
    mn_error err = {0};
    /* without spread: only the best vector match */
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    assert_int_equal(r.n_hits, 1);
    assert_memory_equal(r.hits[0].memory.id.b, a.b, 16);
    assert_true(isnan(r.hits[0].activation));
    mn_recall_result_clear(&r);
    /* with spread: a seeds; b is one hop away, c two */
    req.spread = true;
    req.trace = true;
    req.k = 3;
    req.filter.n_tags_any = 0;
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    /* the vector ranking seeds a (1.0) and the orthogonal ones at match 0 */
    bool saw_b = false;
    for (size_t i = 0; i < r.n_hits; i++) {
        mn_recall_hit_t *h = &r.hits[i];
        assert_true(h->activation >= 0 && h->activation <= 1);
        if (!mn_id_cmp(&h->memory.id, &b)) {
            saw_b = true;
            assert_true(h->activation > 0.4f);
            if (!h->seed) {
                assert_int_equal(h->n_via, 1);
                assert_memory_equal(h->via[0].from.b, a.b, 16);
                assert_int_equal(h->via[0].kind, MN_EDGE_TEMPORAL);
                assert_true(h->confidence.reasons & MN_REASON_ASSOCIATIVE);
            }
        }
    }
    assert_memory_equal(r.hits[0].memory.id.b, a.b, 16);
    assert_true(saw_b);
    mn_recall_result_clear(&r);
    /* a filter keeps activation inside what it allows */
    req.filter.when_to_ms = t + 90000;
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    for (size_t i = 0; i < r.n_hits; i++)
        assert_true(r.hits[i].memory.when_ms < t + 90000);
    mn_recall_result_clear(&r);
    mn_filter_init(&req.filter);
    req.max_hops = 9;
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_ERR_INVALID);
    req.max_hops = 0;

    /* explicit associations: validated, stored, listed, gone with a forget, kept by restart */
    mn_edge_t ed = {.from = d, .to = a, .kind = MN_EDGE_CAUSAL, .weight = 0.9f};
    assert_int_equal(mn_engine_associate(f->e, "s", &ed, 1, &err), MN_OK);
    assert_true(has_assoc(f, &a, &d, MN_EDGE_CAUSAL));
    mn_edge_t bad = ed;
    bad.kind = MN_EDGE_SEMANTIC;
    assert_int_equal(mn_engine_associate(f->e, "s", &bad, 1, &err), MN_ERR_INVALID);
    bad = ed;
    bad.weight = 0;
    assert_int_equal(mn_engine_associate(f->e, "s", &bad, 1, &err), MN_ERR_INVALID);
    bad = ed;
    bad.to.b[15] ^= 1; /* unknown memory */
    assert_int_equal(mn_engine_associate(f->e, "s", &bad, 1, &err), MN_ERR_NOT_FOUND);
    reopen(f);
    assert_true(has_assoc(f, &a, &d, MN_EDGE_CAUSAL));
    assert_true(has_assoc(f, &b, &c, MN_EDGE_TEMPORAL));
    assert_int_equal(mn_engine_forget(f->e, "s", &b, MN_FORGET_DELETE, &err), MN_OK);
    assert_false(has_assoc(f, &a, &b, MN_EDGE_TEMPORAL));
    assert_false(has_assoc(f, &c, &b, MN_EDGE_SEMANTIC));
    reopen(f);
    assert_false(has_assoc(f, &a, &b, MN_EDGE_TEMPORAL));
    assert_true(has_assoc(f, &d, &a, MN_EDGE_CAUSAL));
    (void)ne;
}

static void test_decay_lowers_confidence_and_reinforce_strengthens(void **state)
{
    fx *f = *state;
    make_space(f, "s", 2, MN_METRIC_COSINE);
    float v[2] = {1, 0};
    mn_id_t id = remember1(f, "s", "the door code is 4711", v, 2);
    mn_recall_req_t req = {0};
    mn_filter_init(&req.filter);
    req.embedding = v;
    req.dim = 2;
    mn_recall_result_t r;
    mn_error err = {0};
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    assert_true(fabsf(r.hits[0].retention - 1.0f) < 1e-6f);
    float fresh = r.hits[0].confidence.value;
    assert_true(fresh > 0.99f);
    mn_recall_result_clear(&r);
    /* 63 days = 9 x the initial 7-day stability: retention 0.5 */
    f->now += 63LL * 86400 * 1000;
    req.reinforce = true;
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    assert_true(fabsf(r.hits[0].retention - 0.5f) < 1e-4f);
    assert_true(r.hits[0].confidence.value < fresh);
    assert_true(fabsf(r.hits[0].confidence.value - 0.75f) < 1e-3f);
    assert_true(r.hits[0].confidence.reasons & MN_REASON_DECAYED);
    mn_recall_result_clear(&r);
    mn_engine_wait_background(f->e);
    mn_engine_stats_t es;
    mn_engine_get_stats(f->e, &es);
    assert_int_equal(es.reinforced, 1);
    mn_memory_t m;
    assert_int_equal(mn_engine_get(f->e, "s", &id, false, &m, &err), MN_OK);
    /* spacing effect: S' = 7 x (1 + 0.1 + 3 x (1 - 0.5)) */
    assert_true(fabsf(m.stability_days - 18.2f) < 1e-3f);
    assert_int_equal(m.access_count, 1);
    assert_int_equal(m.last_access_ms, f->now);
    mn_memory_clear(&m);
    /* just accessed: full retention again; and it survives a restart */
    req.reinforce = false;
    reopen(f);
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    assert_true(fabsf(r.hits[0].retention - 1.0f) < 1e-6f);
    mn_recall_result_clear(&r);
    assert_int_equal(mn_engine_get(f->e, "s", &id, false, &m, &err), MN_OK);
    assert_true(fabsf(m.stability_days - 18.2f) < 1e-3f);
    mn_memory_clear(&m);
}

static void test_confidence_is_bounded_and_monotonic_in_similarity(void **state)
{
    fx *f = *state;
    make_space(f, "s", 8, MN_METRIC_COSINE);
    mn_prng_t p;
    mn_prng_seed(&p, 5);
    for (int i = 0; i < 200; i++) {
        float v[8];
        for (int d = 0; d < 8; d++)
            v[d] = (float)(mn_prng_double(&p) * 2 - 1);
        remember1(f, "s", "x", v, 8);
    }
    for (int qn = 0; qn < 20; qn++) {
        float q[8];
        for (int d = 0; d < 8; d++)
            q[d] = (float)(mn_prng_double(&p) * 2 - 1);
        mn_recall_req_t req = {0};
        mn_filter_init(&req.filter);
        req.embedding = q;
        req.dim = 8;
        req.k = 200;
        mn_recall_result_t r;
        mn_error err = {0};
        assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
        for (size_t i = 0; i < r.n_hits; i++) {
            float c = r.hits[i].confidence.value;
            assert_true(c >= 0 && c <= 1);
            /* same encoding confidence and retention: best first means non-increasing confidence */
            if (i) assert_true(c <= r.hits[i - 1].confidence.value + 1e-6f);
            if (r.hits[i].similarity <= 0) assert_true(c == 0);
            assert_true(c <= r.recall_confidence);
        }
        if (r.n_hits) assert_true(r.recall_confidence == r.hits[0].confidence.value);
        mn_recall_result_clear(&r);
    }
}

typedef struct wal_copy {
    uint8_t **bufs;
    size_t *lens;
    size_t n;
} wal_copy;

static int collect_entry(void *arg, uint64_t lsn, const uint8_t *bytes, size_t len)
{
    (void)lsn;
    wal_copy *w = arg;
    w->bufs = realloc(w->bufs, (w->n + 1) * sizeof *w->bufs);
    w->lens = realloc(w->lens, (w->n + 1) * sizeof *w->lens);
    w->bufs[w->n] = malloc(len);
    memcpy(w->bufs[w->n], bytes, len);
    w->lens[w->n++] = len;
    return 0;
}

static const char *topic_words[4][3] = {
    {"espresso", "barista", "grinder"},
    {"marathon", "training", "pace"},
    {"python", "compiler", "segfault"},
    {"garden", "tomatoes", "compost"},
};

static void remember_topics(fx *f, const char *space, int per_topic, int round, mn_prng_t *p)
{
    for (int i = 0; i < per_topic; i++)
        for (int t = 0; t < 4; t++) {
            float v[8];
            for (int d = 0; d < 8; d++)
                v[d] = (d == 2 * t ? 1.0f : 0.0f) + (float)(mn_prng_double(p) - 0.5) * 0.2f;
            char content[128];
            snprintf(content, sizeof content, "note %d.%d about %s and %s with %s", round, i,
                     topic_words[t][0], topic_words[t][1], topic_words[t][i % 3 == 0 ? 2 : 0]);
            remember1(f, space, content, v, 8);
        }
}

static int sem_cmp(const void *a, const void *b)
{
    return mn_id_cmp(a, b);
}

static void test_consolidation_is_deterministic_and_reconsolidates(void **state)
{
    fx *f = *state;
    make_space(f, "s", 8, MN_METRIC_COSINE);
    mn_prng_t p;
    mn_prng_seed(&p, 42);
    remember_topics(f, "s", 15, 0, &p);

    /* a second engine gets the same episodes, in another order */
    fx g = {.now = f->now};
    mn_test_eng_init(&g, "mnemo-engine-b");
    mn_test_eng_open(&g);
    make_space(&g, "s", 8, MN_METRIC_COSINE);
    wal_copy w = {0};
    mn_error err = {0};
    assert_int_equal(mn_engine_wal_read(f->e, "s", 2, 0, collect_entry, &w, &err), MN_OK);
    assert_int_equal(w.n, 60);
    for (size_t i = w.n - 1; i > 0; i--) { /* seeded shuffle */
        size_t j = mn_prng_below(&p, i + 1);
        uint8_t *tb = w.bufs[i];
        size_t tl = w.lens[i];
        w.bufs[i] = w.bufs[j];
        w.lens[i] = w.lens[j];
        w.bufs[j] = tb;
        w.lens[j] = tl;
    }
    for (size_t i = 0; i < w.n; i++) {
        assert_int_equal(mn_engine_ingest(g.e, w.bufs[i], w.lens[i], &err), MN_OK);
        /* ingesting twice changes nothing */
        assert_int_equal(mn_engine_ingest(g.e, w.bufs[i], w.lens[i], &err), MN_OK);
        free(w.bufs[i]);
    }
    free(w.bufs);
    free(w.lens);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(g.e, "s", &st, &err), MN_OK);
    assert_int_equal(st.memories, 60);

    mn_consolidate_opts_t opts = {.threshold = 0.8f, .min_support = 3};
    mn_consolidate_result_t ra, rb;
    assert_int_equal(mn_engine_consolidate(f->e, "s", &opts, &ra, &err), MN_OK);
    assert_int_equal(mn_engine_consolidate(g.e, "s", &opts, &rb, &err), MN_OK);
    assert_int_equal(ra.candidates, 60);
    assert_int_equal(ra.created, 4); /* the four planted topics */
    assert_int_equal(ra.episodes, 60);
    assert_int_equal(rb.created, 4);
    assert_int_equal(ra.n_ids, rb.n_ids);
    qsort(ra.ids, ra.n_ids, sizeof *ra.ids, sem_cmp);
    qsort(rb.ids, rb.n_ids, sizeof *rb.ids, sem_cmp);
    for (size_t i = 0; i < ra.n_ids; i++) {
        assert_memory_equal(ra.ids[i].b, rb.ids[i].b, 16);
        mn_memory_t ma, mb;
        assert_int_equal(mn_engine_get(f->e, "s", &ra.ids[i], true, &ma, &err), MN_OK);
        assert_int_equal(mn_engine_get(g.e, "s", &rb.ids[i], true, &mb, &err), MN_OK);
        assert_int_equal(ma.kind, MN_KIND_SEMANTIC);
        assert_int_equal(ma.n_support, 15);
        assert_non_null(strstr(ma.content, "[keywords: "));
        /* byte-identical records, embedding included */
        mn_memory_record_t xa = {.mem = ma}, xb = {.mem = mb};
        uint8_t *ba, *bb;
        size_t la, lb;
        assert_int_equal(mn_wire_memory_encode(&xa, true, &ba, &la), MN_OK);
        assert_int_equal(mn_wire_memory_encode(&xb, true, &bb, &lb), MN_OK);
        assert_int_equal(la, lb);
        assert_memory_equal(ba, bb, la);
        free(ba);
        free(bb);
        mn_memory_clear(&ma);
        mn_memory_clear(&mb);
    }
    free(rb.ids);
    mn_test_eng_free(&g);

    /* nothing left to do: a second run (over every episode again) changes nothing */
    mn_consolidate_result_t r2;
    assert_int_equal(mn_engine_consolidate(f->e, "s", &opts, &r2, &err), MN_OK);
    assert_int_equal(r2.candidates, 60);
    assert_int_equal(r2.created + r2.updated + r2.retired, 0);
    free(r2.ids);
    /* reconsolidation: new episodes join the semantic memories, same ids */
    remember_topics(f, "s", 2, 1, &p);
    reopen(f); /* the consolidated marks survive a restart */
    assert_int_equal(mn_engine_consolidate(f->e, "s", &opts, &r2, &err), MN_OK);
    assert_int_equal(r2.candidates, 68);
    assert_int_equal(r2.created, 0);
    assert_int_equal(r2.updated, 4);
    assert_int_equal(r2.retired, 0);
    for (size_t i = 0; i < r2.n_ids; i++) {
        assert_non_null(bsearch(&r2.ids[i], ra.ids, ra.n_ids, sizeof *ra.ids, sem_cmp));
        mn_memory_t m;
        assert_int_equal(mn_engine_get(f->e, "s", &r2.ids[i], false, &m, &err), MN_OK);
        assert_int_equal(m.n_support, 17);
        mn_memory_clear(&m);
    }
    free(r2.ids);
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.semantic, 4);
    assert_int_equal(st.episodic, 68);
    free(ra.ids);
}

static mn_id_t remember_ctx(fx *f, const char *content, float *emb, const char *who,
                            const char *where, int64_t when)
{
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)content;
    m.content_len = strlen(content);
    m.embedding = emb;
    m.dim = emb ? 2 : 0;
    char *w[1] = {(char *)who};
    m.who = w;
    m.n_who = who ? 1 : 0;
    m.where = (char *)where;
    m.when_ms = when;
    mn_id_t id;
    mn_error err = {0};
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &id, &err), MN_OK);
    return id;
}

static void test_recognize_reminisce_complete_and_as_of(void **state)
{
    fx *f = *state;
    make_space(f, "s", 2, MN_METRIC_COSINE);
    float v1[2] = {1, 0}, v2[2] = {0, 1}, v3[2] = {-1, 0};
    int64_t t0 = f->now;
    mn_id_t a = remember_ctx(f, "Ann ordered the paella", v1, "ann", "valencia", t0 - 5000);
    remember_ctx(f, "Ann walked along the beach", v2, "ann", "valencia", t0 - 4000);
    remember_ctx(f, "Bob fixed the bike", v3, "bob", "berlin", t0 - 3000);
    mn_error err = {0};
    /* recognize: a seen cue is familiar, an unrelated one is not */
    mn_recognize_req_t rq = {0};
    mn_filter_init(&rq.filter);
    rq.embedding = v1;
    rq.dim = 2;
    mn_recognize_result_t rr;
    assert_int_equal(mn_engine_recognize(f->e, "s", &rq, &rr, &err), MN_OK);
    assert_true(rr.recognized);
    assert_memory_equal(rr.best.b, a.b, 16);
    rq.embedding = NULL;
    rq.text = "quantum chromodynamics";
    rq.text_len = strlen(rq.text);
    assert_int_equal(mn_engine_recognize(f->e, "s", &rq, &rr, &err), MN_OK);
    assert_false(rr.recognized);
    /* reminisce: by who and place, in time order; by topic */
    mn_reminisce_req_t mq = {0};
    mn_filter_init(&mq.filter);
    mq.filter.who = "ann";
    mn_list_result_t lr;
    assert_int_equal(mn_engine_reminisce(f->e, "s", &mq, &lr, &err), MN_OK);
    assert_int_equal(lr.n, 2);
    assert_true(lr.memories[0].when_ms < lr.memories[1].when_ms);
    mn_list_result_clear(&lr);
    mq.filter.who = NULL;
    mq.filter.where = "berlin";
    assert_int_equal(mn_engine_reminisce(f->e, "s", &mq, &lr, &err), MN_OK);
    assert_int_equal(lr.n, 1);
    mn_list_result_clear(&lr);
    mq.filter.where = NULL;
    mq.topic = "paella";
    mq.topic_len = 6;
    assert_int_equal(mn_engine_reminisce(f->e, "s", &mq, &lr, &err), MN_OK);
    assert_int_equal(lr.n, 1);
    assert_memory_equal(lr.memories[0].id.b, a.b, 16);
    mn_list_result_clear(&lr);
    /* complete: who and a few words -> where */
    mn_memory_t partial;
    mn_memory_init(&partial);
    partial.content = "Ann beach";
    partial.content_len = strlen(partial.content);
    char *who[1] = {"ann"};
    partial.who = who;
    partial.n_who = 1;
    mn_complete_result_t cr;
    assert_int_equal(mn_engine_complete(f->e, "s", &partial, 3, &cr, &err), MN_OK);
    assert_true(cr.candidates.n_hits >= 1);
    bool saw_where = false;
    for (size_t i = 0; i < cr.n_fields; i++) {
        assert_true(cr.fields[i].field != MN_FIELD_WHO); /* given, so not guessed */
        assert_true(cr.fields[i].confidence >= 0 && cr.fields[i].confidence <= 1);
        if (cr.fields[i].field == MN_FIELD_WHERE) {
            saw_where = true;
            assert_string_equal(cr.fields[i].value, "valencia");
        }
    }
    assert_true(saw_where);
    mn_complete_result_clear(&cr);
    /* as-of: a memory created later is not there yet; too far back is refused */
    f->now += 60000;
    mn_id_t later = remember_ctx(f, "Ann flew home", v1, "ann", "airport", f->now);
    mn_recall_req_t req = {0};
    mn_filter_init(&req.filter);
    req.embedding = v1;
    req.dim = 2;
    req.k = 10;
    req.filter.as_of_ms = f->now - 1000;
    mn_recall_result_t r;
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    for (size_t i = 0; i < r.n_hits; i++)
        assert_true(mn_id_cmp(&r.hits[i].memory.id, &later));
    assert_int_equal(r.n_hits, 3);
    mn_recall_result_clear(&r);
    req.filter.as_of_ms = f->now - 31LL * 86400 * 1000;
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "as_of"));
    req.filter.as_of_ms = f->now + 1000;
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_space_lifecycle_and_errors, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_remember_validates_input, setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_recall_matches_brute_force_every_metric, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_filters_threshold_and_list_pagination, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_forget_delete_and_suppress_survive_restart, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_ttl_expiry_through_forget_path, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers_keep_lsns_dense, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_opens_as_a_copy, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_wal_trim_keeps_the_newest_entries, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_text_only_memories_and_keyword_and_hybrid_recall,
                                        setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_associations_and_spreading_activation, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_decay_lowers_confidence_and_reinforce_strengthens,
                                        setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_confidence_is_bounded_and_monotonic_in_similarity,
                                        setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_consolidation_is_deterministic_and_reconsolidates,
                                        setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_recognize_reminisce_complete_and_as_of, setup,
                                        mn_test_eng_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
