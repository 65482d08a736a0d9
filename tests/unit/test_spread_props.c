/* Spreading activation ranks by evidence (docs/recall.md §4), on a real
 * engine over RocksDB in a temp dir, in seeded random spaces:
 *   - the reported defects: topic clusters with a session pair A -> B; a
 *     strong match next to 20 near-duplicates; a random 16-d space of 300
 *     memories (spread keeps cosine's order unless an association lifts a
 *     memory, and then only below the memory it came from);
 *   - a cue with words and an embedding, without associations, is ranked by
 *     the documented score fusion;
 *   - three properties over many trials: a memory that matches the cue
 *     better than a cluster of near-duplicates stays above all of them;
 *     adding near-duplicates of a weak match never changes the order of what
 *     is above it; the session neighbour of the best match enters the top k
 *     when only background noise is below (embedding and words cues). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/activation.h"
#include "mnemo/engine.h"
#include "testutil.h"

typedef mn_test_eng eng;

#define MAXD 64

static void eng_open(eng *g, const char *prefix, uint32_t link_max, float link_threshold)
{
    memset(g, 0, sizeof *g);
    mn_test_eng_init(g, prefix);
    g->opts.link_max = link_max;
    g->opts.link_threshold = link_threshold;
    mn_test_eng_open(g);
}

static void eng_space(eng *g, uint32_t dim)
{
    assert_int_equal(mn_test_space(g->e, "s", dim, MN_METRIC_COSINE), MN_OK);
}

static double gauss(mn_prng_t *p)
{
    double u = mn_prng_double(p), v = mn_prng_double(p);
    if (u < 1e-12) u = 1e-12;
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static float dot(const float *a, const float *b, uint32_t dim)
{
    double s = 0;
    for (uint32_t i = 0; i < dim; i++)
        s += (double)a[i] * b[i];
    return (float)s;
}

static void normalize(float *v, uint32_t dim)
{
    float n = sqrtf(dot(v, v, dim));
    for (uint32_t i = 0; i < dim; i++)
        v[i] /= n;
}

static void unit_rand(mn_prng_t *p, float *v, uint32_t dim)
{
    for (uint32_t i = 0; i < dim; i++)
        v[i] = (float)gauss(p);
    normalize(v, dim);
}

/* A unit vector at cosine c to the unit vector q. */
static void at_cos(mn_prng_t *p, const float *q, float c, float *v, uint32_t dim)
{
    float u[MAXD];
    unit_rand(p, u, dim);
    float d = dot(u, q, dim);
    for (uint32_t i = 0; i < dim; i++)
        u[i] -= d * q[i];
    normalize(u, dim);
    float s = sqrtf(1 - c * c);
    for (uint32_t i = 0; i < dim; i++)
        v[i] = c * q[i] + s * u[i];
}

/* v + noise of norm ~eps (unit result): a near-duplicate of unit v. */
static void near_dup(mn_prng_t *p, const float *v, float eps, float *out, uint32_t dim)
{
    for (uint32_t i = 0; i < dim; i++)
        out[i] = v[i] + eps * (float)gauss(p) / sqrtf((float)dim);
    normalize(out, dim);
}

static mn_id_t put_text(eng *g, const char *content, const float *v, uint32_t dim,
                        const char *session, int64_t when)
{
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)content;
    m.content_len = strlen(content);
    m.embedding = (float *)v;
    m.dim = dim;
    m.session = (char *)session;
    m.when_ms = when;
    mn_id_t id;
    mn_error err = {0};
    if (mn_engine_remember(g->e, "s", &m, 1, &id, &err)) fail_msg("remember: %s", err.message);
    return id;
}

static mn_id_t put(eng *g, const float *v, uint32_t dim, const char *session, int64_t when)
{
    return put_text(g, "memory", v, dim, session, when);
}

static mn_recall_result_t recall_text(eng *g, const char *text, uint32_t k)
{
    mn_recall_req_t req = {0};
    mn_filter_init(&req.filter);
    req.text = text;
    req.text_len = strlen(text);
    req.k = k;
    req.spread = true;
    req.trace = true;
    mn_recall_result_t r;
    mn_error err = {0};
    if (mn_engine_recall(g->e, "s", &req, &r, &err)) fail_msg("recall: %s", err.message);
    return r;
}

static mn_recall_result_t recall(eng *g, const float *q, uint32_t dim, uint32_t k, bool spread)
{
    mn_recall_req_t req = {0};
    mn_filter_init(&req.filter);
    req.embedding = q;
    req.dim = dim;
    req.k = k;
    req.spread = spread;
    req.trace = spread;
    mn_recall_result_t r;
    mn_error err = {0};
    if (mn_engine_recall(g->e, "s", &req, &r, &err)) fail_msg("recall: %s", err.message);
    return r;
}

static long pos_of(const mn_recall_result_t *r, const mn_id_t *id)
{
    for (size_t i = 0; i < r->n_hits; i++)
        if (!mn_id_cmp(&r->hits[i].memory.id, id)) return (long)i;
    return -1;
}

/* Every hit: 0 <= similarity-match <= score <= 1, score reported as activation
 * (for a vector cue), and a lifted hit ranks below the memory it came from. */
static void check_bounded(const mn_recall_result_t *r)
{
    for (size_t i = 0; i < r->n_hits; i++) {
        const mn_recall_hit_t *h = &r->hits[i];
        float match = h->similarity > 0 ? h->similarity : 0;
        assert_true(h->score >= match - 1e-6f && h->score <= 1 + 1e-6f);
        if (!isnan(h->similarity)) assert_true(fabsf(h->activation - h->score) < 1e-6f);
        if (h->n_via) {
            long p = pos_of(r, &h->via[h->n_via - 1].from);
            if (p >= 0) assert_true((size_t)p < i && r->hits[p].score > h->score);
        }
    }
}

/* ---- the reported defects ---- */

/* 120 memories in six tight topics (32-d, each linked to its 5 nearest), then
 * A at topic 1 and B far from everything in one session (A -> B, weight 1).
 * Recalling topic 1 with k 60: B is among the 60 (the old sum left it out
 * while memories at similarity 0.41 scored 3.08), topic 1 and A come first,
 * and nothing scores above 1. */
static void test_defect_topic_clusters_session_pair(void **state)
{
    (void)state;
    enum { DIM = 32, TOPICS = 6, PER = 20 };
    eng g;
    eng_open(&g, "mnemo-spread-topics", 5, 0.3f);
    eng_space(&g, DIM);
    mn_prng_t p;
    mn_prng_seed(&p, 15);
    float centre[TOPICS][DIM], v[DIM];
    for (int t = 0; t < TOPICS; t++)
        unit_rand(&p, centre[t], DIM);
    mn_id_t topic1[PER];
    for (int i = 0; i < PER; i++)
        for (int t = 0; t < TOPICS; t++) {
            near_dup(&p, centre[t], 0.45f, v, DIM);
            mn_id_t id = put(&g, v, DIM, NULL, g.now + i * 1000);
            if (t == 0) topic1[i] = id;
        }
    near_dup(&p, centre[0], 0.2f, v, DIM);
    mn_id_t a = put(&g, v, DIM, "ab", g.now + 500000);
    float b_vec[DIM];
    at_cos(&p, centre[0], 0.0f, b_vec, DIM);
    mn_id_t b = put(&g, b_vec, DIM, "ab", g.now + 500000);
    mn_engine_wait_background(g.e);
    mn_recall_result_t r = recall(&g, centre[0], DIM, 60, true);
    check_bounded(&r);
    assert_int_equal(r.n_hits, 60);
    assert_true(pos_of(&r, &b) >= 0);
    assert_true(pos_of(&r, &a) == 0); /* the best match stays first */
    for (int i = 0; i < PER; i++) {
        long at = pos_of(&r, &topic1[i]);
        assert_true(at >= 0 && at <= PER); /* topic 1 and A are the first 21 */
    }
    const mn_recall_hit_t *hb = &r.hits[pos_of(&r, &b)];
    assert_int_equal(hb->n_via, 1); /* lifted by A */
    assert_memory_equal(hb->via[0].from.b, a.b, 16);
    assert_int_equal(hb->via[0].kind, MN_EDGE_TEMPORAL);
    /* B's score: from its own base (cosine ~0, clamped) a share hop_decay 0.75
     * x weight 1 x fan(1) = 1 of the way to A's activation */
    float bs = hb->similarity > 0 ? hb->similarity : 0;
    assert_true(fabsf(hb->score - (bs + 0.75f * (r.hits[0].score - bs))) < 1e-4f);
    mn_recall_result_clear(&r);
    mn_test_eng_free(&g);
}

/* A strong match (0.9) and a cluster of 20 near-duplicates at 0.45 among 100
 * random memories: the strong match is first with spread as without, and no
 * near-duplicate scores above the best near-duplicate's similarity. */
static void test_defect_strong_match_vs_near_duplicates(void **state)
{
    (void)state;
    enum { DIM = 32 };
    eng g;
    eng_open(&g, "mnemo-spread-dups", 5, 0.8f);
    eng_space(&g, DIM);
    mn_prng_t p;
    mn_prng_seed(&p, 16);
    float q[DIM], v[DIM], d[DIM];
    unit_rand(&p, q, DIM);
    for (int i = 0; i < 100; i++) {
        unit_rand(&p, v, DIM);
        put(&g, v, DIM, NULL, g.now + i);
    }
    at_cos(&p, q, 0.9f, v, DIM);
    mn_id_t strong = put(&g, v, DIM, NULL, g.now);
    at_cos(&p, q, 0.45f, d, DIM);
    mn_id_t dups[20];
    float best_dup = 0;
    for (int i = 0; i < 20; i++) {
        near_dup(&p, d, 0.05f, v, DIM);
        dups[i] = put(&g, v, DIM, "dups", g.now + i * 1000); /* and a temporal chain */
        if (dot(v, q, DIM) > best_dup) best_dup = dot(v, q, DIM);
    }
    mn_engine_wait_background(g.e);
    for (int spread = 0; spread < 2; spread++) {
        mn_recall_result_t r = recall(&g, q, DIM, 10, spread);
        assert_memory_equal(r.hits[0].memory.id.b, strong.b, 16);
        if (spread) {
            check_bounded(&r);
            for (int i = 0; i < 20; i++) {
                long at = pos_of(&r, &dups[i]);
                if (at >= 0) assert_true(r.hits[at].score <= best_dup + 1e-5f);
            }
        }
        mn_recall_result_clear(&r);
    }
    mn_test_eng_free(&g);
}

/* The rule for reordering (docs/recall.md §4): spread ranks by the cue's match
 * unless an association lifts a memory by at least min_activation, and a
 * lifted memory stays below the memory that lifted it. Checked on r against
 * the cosines of the hits. Returns whether r's order differs from cosine's. */
static bool check_reorder_rule(const mn_recall_result_t *r)
{
    bool reordered = false;
    for (size_t i = 0; i < r->n_hits; i++)
        for (size_t j = i + 1; j < r->n_hits; j++) {
            const mn_recall_hit_t *a = &r->hits[i], *b = &r->hits[j];
            if (!(a->similarity < b->similarity)) continue;
            reordered = true;
            float ma = a->similarity > 0 ? a->similarity : 0;
            assert_true(a->score - ma >= 0.1f - 1e-6f); /* lifted by at least min_activation */
            assert_true(a->n_via >= 1);
            long p = pos_of(r, &a->via[a->n_via - 1].from);
            assert_true(p >= 0 && (size_t)p < i);
        }
    return reordered;
}

/* Random 16-d space of 300 memories, default linking (threshold 0.8, 5 links).
 * Each in a session of its own: the only associations are the few semantic
 * links random vectors make, which do not spread for an embedding cue (they
 * are made from the vectors), so spread returns cosine's order with each score
 * its similarity, in every recall (the old sum reordered 4 of 20 and put a
 * memory at 0.49 first, above one at 0.73). Then in sessions of ten turns a
 * minute apart (temporal chains of weight 0.985): a recall where no
 * association lifted a memory by min_activation is in cosine's order; where
 * one did, only the lifted memories move up, each below the memory that
 * lifted it. */
static void test_defect_random_space_keeps_cosine_order(void **state)
{
    (void)state;
    enum { DIM = 16, N = 300, Q = 20 };
    for (int sessions = 0; sessions < 2; sessions++) {
        eng g;
        eng_open(&g, "mnemo-spread-random", 5, 0.8f);
        eng_space(&g, DIM);
        mn_prng_t p;
        mn_prng_seed(&p, 300);
        float v[DIM];
        for (int i = 0; i < N; i++) {
            char sess[16];
            snprintf(sess, sizeof sess, "s%d", sessions ? i / 10 : i);
            unit_rand(&p, v, DIM);
            put(&g, v, DIM, sess, g.now + (int64_t)i * 60000);
        }
        mn_engine_wait_background(g.e);
        int reordered = 0, n_lifted = 0;
        for (int t = 0; t < Q; t++) {
            float q[DIM];
            unit_rand(&p, q, DIM);
            mn_recall_result_t plain = recall(&g, q, DIM, 10, false),
                               sp = recall(&g, q, DIM, 10, true);
            check_bounded(&sp);
            bool lifted = false;
            for (size_t i = 0; i < sp.n_hits; i++)
                lifted |= sp.hits[i].n_via > 0;
            if (!lifted) { /* no association counted: cosine's order and scores */
                assert_int_equal(sp.n_hits, plain.n_hits);
                for (size_t i = 0; i < sp.n_hits; i++) {
                    assert_memory_equal(sp.hits[i].memory.id.b, plain.hits[i].memory.id.b, 16);
                    assert_true(fabsf(sp.hits[i].score - plain.hits[i].similarity) < 1e-6f);
                }
            } else {
                n_lifted++;
            }
            reordered += check_reorder_rule(&sp);
            mn_recall_result_clear(&plain);
            mn_recall_result_clear(&sp);
        }
        assert_true(reordered <= n_lifted);
        if (!sessions) assert_int_equal(n_lifted, 0);
        print_message("random 16-d, %s: %d of %d recalls lifted a memory, %d reordered\n",
                      sessions ? "sessions of 10" : "no sessions", n_lifted, Q, reordered);
        mn_test_eng_free(&g);
    }
}

/* A cue with words and an embedding, over memories with no associations
 * (no sessions; semantic links do not spread for it): spread ranks by the
 * base of docs/recall.md §4, (w_v clamp(cos, 0, 1) + w_t BM25 / best BM25) /
 * (w_v + w_t), each score equal to it, and the activation (what confidence
 * reads) is the match of §2, the weighted mean of the vector match and the
 * coverage. */
static void test_hybrid_without_associations_ranks_by_score_fusion(void **state)
{
    (void)state;
    enum { DIM = 16, N = 120 };
    eng g;
    eng_open(&g, "mnemo-spread-hybrid", 5, 0.8f);
    eng_space(&g, DIM);
    mn_prng_t p;
    mn_prng_seed(&p, 77);
    static const char *vocab[] = {"river", "bridge", "lantern", "harbor", "meadow", "copper"};
    float v[DIM], q[DIM];
    for (int i = 0; i < N; i++) {
        char text[64];
        snprintf(text, sizeof text, "%s %s %s", vocab[mn_prng_below(&p, 6)],
                 vocab[mn_prng_below(&p, 6)], vocab[mn_prng_below(&p, 6)]);
        unit_rand(&p, v, DIM);
        put_text(&g, text, v, DIM, NULL, g.now + i);
    }
    mn_engine_wait_background(g.e);
    for (int t = 0; t < 10; t++) {
        unit_rand(&p, q, DIM);
        char text[64];
        snprintf(text, sizeof text, "%s %s", vocab[mn_prng_below(&p, 6)],
                 vocab[mn_prng_below(&p, 6)]);
        float wt = t % 2 ? 2.0f : 1.0f;
        mn_recall_req_t req = {0};
        mn_filter_init(&req.filter);
        req.embedding = q;
        req.dim = DIM;
        req.text = text;
        req.text_len = strlen(text);
        req.text_weight = wt;
        req.vector_weight = 1;
        req.k = 1000; /* every memory either ranking returned */
        req.spread = true;
        mn_recall_result_t r;
        mn_error err = {0};
        assert_int_equal(mn_engine_recall(g.e, "s", &req, &r, &err), MN_OK);
        assert_true(r.n_hits >= 50);
        float best_kw = 0;
        for (size_t i = 0; i < r.n_hits; i++)
            if (!isnan(r.hits[i].keyword) && r.hits[i].keyword > best_kw)
                best_kw = r.hits[i].keyword;
        assert_true(best_kw > 0);
        for (size_t i = 0; i < r.n_hits; i++) {
            const mn_recall_hit_t *h = &r.hits[i];
            assert_true(h->seed && h->n_via == 0);
            float vm = h->similarity < 0 ? 0 : h->similarity > 1 ? 1 : h->similarity;
            float kw = isnan(h->keyword) ? 0 : h->keyword / best_kw;
            float cov = isnan(h->coverage) ? 0 : h->coverage;
            assert_true(fabsf(h->score - (vm + wt * kw) / (1 + wt)) < 1e-5f);
            assert_true(fabsf(h->activation - (vm + wt * cov) / (1 + wt)) < 1e-5f);
            if (i) assert_true(r.hits[i - 1].score >= h->score);
        }
        mn_recall_result_clear(&r);
    }
    mn_test_eng_free(&g);
}

/* ---- properties over random spaces ---- */

/* Background: n random memories, in sessions of 5 (temporal chains) with
 * semantic links as by default. */
static void background(eng *g, mn_prng_t *p, uint32_t dim, int n, const char *prefix)
{
    float v[MAXD];
    for (int i = 0; i < n; i++) {
        char sess[32];
        snprintf(sess, sizeof sess, "%s%d", prefix, i / 5);
        unit_rand(p, v, dim);
        put(g, v, dim, sess, g->now + (int64_t)i * 60000);
    }
}

/* A memory that matches the cue better than every member of a cluster of
 * near-duplicates (linked to each other, semantically and in a session)
 * stays above all of them, however many there are and however small the gap:
 * for an embedding cue (cosine) and for a words cue (BM25; there the
 * near-duplicates' semantic links spread too). */
static void test_prop_better_match_stays_above_near_duplicates(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 24; seed++) {
        mn_prng_t p;
        mn_prng_seed(&p, 1000 + seed);
        uint32_t dim = seed % 2 ? 16 : 32;
        eng g;
        eng_open(&g, "mnemo-spread-p1", 5, 0.8f);
        eng_space(&g, dim);
        background(&g, &p, dim, 150, "b");
        float q[MAXD], d[MAXD], v[MAXD];
        unit_rand(&p, q, dim);
        bool words = seed > 12; /* words cue: "w1 w2 w3"; dups hold w1 w2, x all three */
        static const char *vocab[] = {"w1", "amber", "basil", "cedar", "delta", "ember"};
        char text[64];
        at_cos(&p, q, 0.3f + 0.4f * (float)mn_prng_double(&p), d, dim);
        int n = 5 + (int)mn_prng_below(&p, 26);
        mn_id_t dups[30];
        float best = -1;
        for (int i = 0; i < n; i++) {
            near_dup(&p, d, 0.1f, v, dim);
            if (words) { /* w1 w2 and a word some background memories hold too */
                snprintf(text, sizeof text, "w1 w2 %s", vocab[1 + mn_prng_below(&p, 5)]);
                dups[i] = put_text(&g, text, v, dim, "dups", g.now + 10000000 + i * 1000);
            } else {
                dups[i] = put(&g, v, dim, "dups", g.now + 10000000 + i * 1000);
            }
            float c = dot(v, q, dim);
            if (c > best) best = c;
        }
        float gap = 0.01f + 0.09f * (float)mn_prng_double(&p);
        at_cos(&p, q, best + gap, v, dim);
        mn_id_t x = words ? put_text(&g, "w1 w2 w3", v, dim, "x", g.now + 20000000)
                          : put(&g, v, dim, "x", g.now + 20000000);
        if (words) /* background that shares some of the cue's words */
            for (int i = 0; i < 40; i++) {
                snprintf(text, sizeof text, "%s %s %s", vocab[mn_prng_below(&p, 6)],
                         vocab[mn_prng_below(&p, 6)], vocab[mn_prng_below(&p, 6)]);
                unit_rand(&p, v, dim);
                put_text(&g, text, v, dim, "bw", g.now + 30000000 + i * 60000);
            }
        mn_engine_wait_background(g.e);
        mn_recall_result_t r =
            words ? recall_text(&g, "w1 w2 w3", 200) : recall(&g, q, dim, 200, true);
        if (words) {
            assert_memory_equal(r.hits[0].memory.id.b, x.b, 16); /* the only one with w3 */
            bool lifted = false;
            for (size_t i = 0; i < r.n_hits; i++)
                lifted |= r.hits[i].n_via > 0;
            assert_true(lifted); /* the near-duplicates' links took part */
        }
        check_bounded(&r);
        long px = pos_of(&r, &x);
        assert_true(px >= 0);
        for (int i = 0; i < n; i++) {
            long pd = pos_of(&r, &dups[i]);
            if (pd >= 0 && pd < px)
                fail_msg("seed %lu: near-duplicate %d (score %.4f) above the better match "
                         "(similarity %.4f)",
                         (unsigned long)seed, i, r.hits[pd].score, r.hits[px].similarity);
        }
        mn_recall_result_clear(&r);
        mn_test_eng_free(&g);
    }
}

/* Adding near-duplicates of a weak match W (each at a lower cosine to the cue
 * than W, linked to W and to each other) leaves the memories ranked above W
 * where they were, in the same order. */
static void test_prop_near_duplicates_do_not_reorder_above(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 24; seed++) {
        mn_prng_t p;
        mn_prng_seed(&p, 2000 + seed);
        uint32_t dim = seed % 2 ? 16 : 24;
        eng g;
        eng_open(&g, "mnemo-spread-p2", 5, 0.8f);
        eng_space(&g, dim);
        background(&g, &p, dim, 200, "b");
        mn_engine_wait_background(g.e);
        float q[MAXD], w[MAXD];
        unit_rand(&p, q, dim);
        const uint32_t k = 20;
        mn_recall_result_t before = recall(&g, q, dim, k, true);
        check_bounded(&before);
        /* W: the memory at rank 6..12 of the cue's own ranking */
        mn_recall_result_t plain = recall(&g, q, dim, k, false);
        const mn_id_t wid = plain.hits[6 + mn_prng_below(&p, 7)].memory.id;
        long pw = pos_of(&before, &wid);
        assert_true(pw >= 0);
        mn_memory_t wm;
        mn_error err = {0};
        assert_int_equal(mn_engine_get(g.e, "s", &wid, true, &wm, &err), MN_OK);
        memcpy(w, wm.embedding, dim * sizeof(float));
        mn_memory_clear(&wm);
        normalize(w, dim);
        /* near-duplicates: W plus noise orthogonal to the cue (a lower cosine) */
        int n = 3 + (int)mn_prng_below(&p, 20);
        for (int i = 0; i < n; i++) {
            float e[MAXD], v[MAXD];
            unit_rand(&p, e, dim);
            float de = dot(e, q, dim);
            for (uint32_t j = 0; j < dim; j++)
                e[j] -= de * q[j];
            normalize(e, dim);
            for (uint32_t j = 0; j < dim; j++)
                v[j] = w[j] + 0.15f * e[j];
            put(&g, v, dim, i % 2 ? "dups" : NULL, g.now + 50000000 + i * 1000);
        }
        mn_engine_wait_background(g.e);
        mn_recall_result_t after = recall(&g, q, dim, k + (uint32_t)n, true);
        check_bounded(&after);
        /* the memories above W, in order, skipping the near-duplicates */
        size_t j = 0;
        for (size_t i = 0; i < after.n_hits && j < (size_t)pw; i++) {
            if (pos_of(&before, &after.hits[i].memory.id) < 0) continue; /* a near-duplicate */
            if (mn_id_cmp(&after.hits[i].memory.id, &before.hits[j].memory.id))
                fail_msg("seed %lu: rank %zu above W changed", (unsigned long)seed, j);
            j++;
        }
        assert_int_equal(j, (size_t)pw);
        mn_recall_result_clear(&before);
        mn_recall_result_clear(&after);
        mn_recall_result_clear(&plain);
        mn_test_eng_free(&g);
    }
}

/* The next turn Y of the best match X (cosine 0.8..0.95; Y a random vector)
 * scores at least hop_decay x w x fan(2) x X's similarity, and is in the top
 * k whenever fewer than k - 1 background memories could score that much (a
 * background memory scores at most the best similarity in its session). */
static void test_prop_session_neighbour_of_best_match_enters(void **state)
{
    (void)state;
    enum { DIM = 64, N = 300, K = 10 };
    int in_scope = 0;
    for (uint64_t seed = 1; seed <= 24; seed++) {
        mn_prng_t p;
        mn_prng_seed(&p, 3000 + seed);
        eng g;
        eng_open(&g, "mnemo-spread-p3", 5, 0.8f);
        eng_space(&g, DIM);
        float q[DIM], v[DIM];
        unit_rand(&p, q, DIM);
        /* background: half in sessions of 5, half alone; session max similarity */
        float sess_best[N / 10];
        float sim[N];
        for (int i = 0; i < N / 10; i++)
            sess_best[i] = -1;
        for (int i = 0; i < N; i++) {
            char sess[16];
            snprintf(sess, sizeof sess, "b%d", i / 5);
            unit_rand(&p, v, DIM);
            sim[i] = dot(v, q, DIM);
            bool in_session = i < N / 2;
            if (in_session && sim[i] > sess_best[i / 5]) sess_best[i / 5] = sim[i];
            put(&g, v, DIM, in_session ? sess : NULL, g.now + (int64_t)i * 60000);
        }
        /* X, then Y a minute later; X first or second in its session */
        bool x_second = mn_prng_below(&p, 2);
        int64_t t0 = g.now + 100000000;
        if (x_second) {
            unit_rand(&p, v, DIM);
            put(&g, v, DIM, "xy", t0 - 60000);
        }
        float mx = 0.8f + 0.15f * (float)mn_prng_double(&p);
        at_cos(&p, q, mx, v, DIM);
        mn_id_t x = put(&g, v, DIM, "xy", t0);
        unit_rand(&p, v, DIM);
        mn_id_t y = put(&g, v, DIM, "xy", t0 + 60000);
        mn_engine_wait_background(g.e);
        mn_recall_result_t r = recall(&g, q, DIM, K, true);
        check_bounded(&r);
        assert_memory_equal(r.hits[0].memory.id.b, x.b, 16);
        float w = 1.0f - 0.9f / 60.0f;
        float bound = 0.75f * w * mn__fan_factor(2) * r.hits[0].score;
        int above = 0;
        for (int i = 0; i < N; i++) {
            float ceiling = i < N / 2 ? sess_best[i / 5] : sim[i];
            if (ceiling >= bound) above++;
        }
        if (above < K - 1) {
            in_scope++;
            long py = pos_of(&r, &y);
            if (py < 0)
                fail_msg("seed %lu: the next turn of the best match is not in the top %d",
                         (unsigned long)seed, K);
            assert_true(r.hits[py].score >= bound - 1e-5f);
            assert_false(r.hits[py].seed && r.hits[py].n_via == 0);
        }
        mn_recall_result_clear(&r);
        mn_test_eng_free(&g);
    }
    assert_true(in_scope >= 20); /* the property was tested, not vacuous */
}

/* The same for a words cue: X holds the cue's three words, the background
 * (half in sessions of 5) holds random words of which some are the cue's (the
 * rarest, lantern, in one memory of 100); Y,
 * X's next turn, holds none. Where X is the best BM25 (base 1), Y scores at
 * least 0.75 x w x fan(2), and is in the top k whenever fewer than k - 1 other
 * memories could score that much (one's ceiling: the best BM25 / best in its
 * session, from a recall without spreading). */
static void test_prop_session_neighbour_of_best_words_match_enters(void **state)
{
    (void)state;
    enum { N = 300, K = 10 };
    static const char *vocab[] = {"kayak",   "harbor",  "lamp",  "meadow", "copper", "violin",
                                  "glacier", "orchard", "comet", "bridge", "river",  "ember"};
    int in_scope = 0;
    for (uint64_t seed = 1; seed <= 16; seed++) {
        mn_prng_t p;
        mn_prng_seed(&p, 4000 + seed);
        eng g;
        eng_open(&g, "mnemo-spread-p3w", 5, 0.8f);
        eng_space(&g, 8);
        float v[8];
        mn_id_t bg[N];
        char text[96];
        for (int i = 0; i < N; i++) {
            char sess[16];
            snprintf(sess, sizeof sess, "b%d", i / 5);
            /* the cue's rarest word, lantern, in one memory of 100 */
            snprintf(text, sizeof text, "%s %s %s %s", vocab[mn_prng_below(&p, 12)],
                     vocab[mn_prng_below(&p, 12)], vocab[mn_prng_below(&p, 12)],
                     mn_prng_below(&p, 100) ? vocab[mn_prng_below(&p, 12)] : "lantern");
            unit_rand(&p, v, 8);
            bg[i] = put_text(&g, text, v, 8, i < N / 2 ? sess : NULL, g.now + (int64_t)i * 60000);
        }
        int64_t t0 = g.now + 100000000;
        bool x_second = mn_prng_below(&p, 2);
        unit_rand(&p, v, 8);
        if (x_second) put_text(&g, "small talk first", v, 8, "xy", t0 - 60000);
        mn_id_t x = put_text(&g, "kayak harbor lantern", v, 8, "xy", t0);
        mn_id_t y = put_text(&g, "sounds wonderful", v, 8, "xy", t0 + 60000);
        mn_engine_wait_background(g.e);
        /* ceilings from the words' own ranking */
        mn_recall_req_t req = {0};
        mn_filter_init(&req.filter);
        req.text = "kayak harbor lantern";
        req.text_len = strlen(req.text);
        req.k = 1000;
        mn_recall_result_t plain;
        mn_error err = {0};
        assert_int_equal(mn_engine_recall(g.e, "s", &req, &plain, &err), MN_OK);
        if (mn_id_cmp(&plain.hits[0].memory.id, &x)) { /* a background memory matches better */
            mn_recall_result_clear(&plain);
            mn_test_eng_free(&g);
            continue;
        }
        float top = plain.hits[0].keyword, base[N], sess_best[N / 10];
        for (int i = 0; i < N; i++) {
            long at = pos_of(&plain, &bg[i]);
            base[i] = at >= 0 ? plain.hits[at].keyword / top : 0;
        }
        for (int i = 0; i < N / 10; i++)
            sess_best[i] = 0;
        for (int i = 0; i < N / 2; i++)
            if (base[i] > sess_best[i / 5]) sess_best[i / 5] = base[i];
        mn_recall_result_clear(&plain);
        mn_recall_result_t r = recall_text(&g, "kayak harbor lantern", K);
        check_bounded(&r);
        assert_memory_equal(r.hits[0].memory.id.b, x.b, 16);
        float bound = 0.75f * (1.0f - 0.9f / 60.0f) * mn__fan_factor(2);
        int above = 0;
        for (int i = 0; i < N; i++)
            above += (i < N / 2 ? sess_best[i / 5] : base[i]) >= bound;
        if (above < K - 1) {
            in_scope++;
            long py = pos_of(&r, &y);
            if (py < 0)
                fail_msg("seed %lu: the next turn of the best words match is not in the "
                         "top %d",
                         (unsigned long)seed, K);
            assert_true(r.hits[py].score >= bound - 1e-5f);
            assert_true(r.hits[py].n_via == 1);
            assert_memory_equal(r.hits[py].via[0].from.b, x.b, 16);
        }
        mn_recall_result_clear(&r);
        mn_test_eng_free(&g);
    }
    print_message("words cue: %d of 16 spaces in scope\n", in_scope);
    assert_true(in_scope >= 12); /* the property was tested, not vacuous */
}

/* The fan factor: ACT-R's S - ln(fan) as a share of S = ln 64. */
static void test_fan_factor(void **state)
{
    (void)state;
    assert_true(mn__fan_factor(0) == 1.0f && mn__fan_factor(1) == 1.0f);
    assert_true(fabsf(mn__fan_factor(2) - (1 - logf(2) / logf(64))) < 1e-6f); /* 0.8333 */
    assert_true(fabsf(mn__fan_factor(8) - 0.5f) < 1e-6f);
    assert_true(mn__fan_factor(64) == 0.0f && mn__fan_factor(1000) == 0.0f);
    for (uint32_t n = 1; n < 70; n++)
        assert_true(mn__fan_factor(n + 1) <= mn__fan_factor(n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fan_factor),
        cmocka_unit_test(test_defect_topic_clusters_session_pair),
        cmocka_unit_test(test_defect_strong_match_vs_near_duplicates),
        cmocka_unit_test(test_defect_random_space_keeps_cosine_order),
        cmocka_unit_test(test_hybrid_without_associations_ranks_by_score_fusion),
        cmocka_unit_test(test_prop_better_match_stays_above_near_duplicates),
        cmocka_unit_test(test_prop_near_duplicates_do_not_reorder_above),
        cmocka_unit_test(test_prop_session_neighbour_of_best_match_enters),
        cmocka_unit_test(test_prop_session_neighbour_of_best_words_match_enters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
