/* cognitive recall on a real engine: consolidation as a function of the
 * episodes (arrival order, runs at different points, retirement, the session
 * bonus, scheduled runs), spreading activation (parameters, the worked example
 * of docs/recall.md §4, multi-step paths), batched reinforcement, temporal
 * links in time order, and confidence properties over random data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/confidence.h"
#include "mnemo/engine.h"
#include "mnemo/wire.h"
#include "testutil.h"

typedef mn_test_eng eng;

static void eng_open_with(eng *g, const char *prefix, void (*tweak)(mn_engine_options_t *))
{
    if (!g->dir)
        mn_test_eng_init(g, prefix);
    else
        mn_test_eng_defaults(g);
    if (tweak) tweak(&g->opts);
    mn_test_eng_open(g);
}

static void eng_open(eng *g, const char *prefix)
{
    eng_open_with(g, prefix, NULL);
}

static void eng_close(eng *g)
{
    mn_test_eng_free(g);
    memset(g, 0, sizeof *g);
}

static mn_id_t remember(eng *g, const char *content, const float *v, uint32_t dim,
                        const char *session, int64_t when)
{
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)content;
    m.content_len = strlen(content);
    m.embedding = (float *)v;
    m.dim = v ? dim : 0;
    m.session = (char *)session;
    m.when_ms = when;
    mn_id_t id;
    mn_error err = {0};
    mn_err rc = mn_engine_remember(g->e, "s", &m, 1, &id, &err);
    if (rc) fail_msg("remember: %s", err.message);
    return id;
}

/* ---- WAL entries carried from one engine to another ---- */
static void ingest(eng *g, const mn_test_wal *w, size_t i)
{
    mn_error err = {0};
    mn_err rc = mn_engine_ingest(g->e, w->bufs[i], w->lens[i], &err);
    if (rc) fail_msg("ingest: %s", err.message);
}

static mn_consolidate_result_t consolidate(eng *g, float threshold, uint32_t min_support)
{
    mn_consolidate_opts_t o = {.threshold = threshold, .min_support = min_support};
    mn_consolidate_result_t r;
    mn_error err = {0};
    mn_err rc = mn_engine_consolidate(g->e, "s", &o, &r, &err);
    if (rc) fail_msg("consolidate: %s", err.message);
    return r;
}

static void assert_same_semantic(eng *a, eng *b, size_t want)
{
    size_t la, lb, na, nb;
    uint8_t *ba = mn_test_semantic_bytes(a->e, "s", &la, &na),
            *bb = mn_test_semantic_bytes(b->e, "s", &lb, &nb);
    assert_int_equal(na, want);
    assert_int_equal(nb, want);
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);
    free(ba);
    free(bb);
}

#define DIM 8

/* Two topics, six episodes each (three sessions), remembered on a source
 * engine; returns its remember entries in arrival order. */
static void topic_episodes(mn_test_wal *w)
{
    eng src = {0};
    eng_open(&src, "mnemo-cog-src");
    assert_int_equal(mn_test_space(src.e, "s", DIM, MN_METRIC_COSINE), MN_OK);
    mn_prng_t p;
    mn_prng_seed(&p, 9);
    static const char *words[2][3] = {{"espresso", "grinder", "barista"},
                                      {"marathon", "training", "tempo"}};
    for (int i = 0; i < 6; i++)
        for (int t = 0; t < 2; t++) {
            float v[DIM];
            for (int d = 0; d < DIM; d++)
                v[d] = (d == 3 * t ? 1.0f : 0.0f) + (float)(mn_prng_double(&p) - 0.5) * 0.2f;
            char content[96], session[16];
            snprintf(content, sizeof content, "day %d: %s and %s", i, words[t][i % 3],
                     words[t][(i + 1) % 3]);
            snprintf(session, sizeof session, "t%d-%d", t, i / 2);
            remember(&src, content, v, DIM, session, src.now + (int64_t)(i * 2 + t) * 60000);
            src.now += 10;
        }
    assert_int_equal(mn_test_wal_read(src.e, "s", 2, 0, w), MN_OK);
    assert_int_equal(w->n, 12);
    eng_close(&src);
}

static void test_consolidation_ignores_arrival_order_and_run_points(void **state)
{
    (void)state;
    mn_test_wal w = {0};
    topic_episodes(&w);
    /* A: everything, one run */
    eng a = {0};
    eng_open(&a, "mnemo-cog-a");
    assert_int_equal(mn_test_space(a.e, "s", DIM, MN_METRIC_COSINE), MN_OK);
    for (size_t i = 0; i < w.n; i++)
        ingest(&a, &w, i);
    mn_consolidate_result_t ra = consolidate(&a, 0.8f, 3);
    assert_int_equal(ra.candidates, 12);
    assert_int_equal(ra.created, 2);
    assert_int_equal(ra.episodes, 12);
    free(ra.ids);

    /* B: the newest half first, a run, then the older half, another run: the
     * first run's clusters are keyed by newer episodes and must give way */
    eng b = {0};
    eng_open(&b, "mnemo-cog-b");
    assert_int_equal(mn_test_space(b.e, "s", DIM, MN_METRIC_COSINE), MN_OK);
    for (size_t i = w.n / 2; i < w.n; i++)
        ingest(&b, &w, i);
    mn_consolidate_result_t rb = consolidate(&b, 0.8f, 3);
    assert_int_equal(rb.created, 2);
    free(rb.ids);
    for (size_t i = 0; i < w.n / 2; i++)
        ingest(&b, &w, i);
    rb = consolidate(&b, 0.8f, 3);
    assert_int_equal(rb.created, 2);
    assert_int_equal(rb.retired, 2);
    free(rb.ids);
    assert_same_semantic(&a, &b, 2);

    /* C: a seeded shuffle, a run after every arrival */
    eng c = {0};
    eng_open(&c, "mnemo-cog-c");
    assert_int_equal(mn_test_space(c.e, "s", DIM, MN_METRIC_COSINE), MN_OK);
    size_t order[12];
    for (size_t i = 0; i < w.n; i++)
        order[i] = i;
    mn_prng_t p;
    mn_prng_seed(&p, 3);
    for (size_t i = w.n - 1; i > 0; i--) {
        size_t j = mn_prng_below(&p, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < w.n; i++) {
        ingest(&c, &w, order[i]);
        mn_consolidate_result_t rc = consolidate(&c, 0.8f, 3);
        free(rc.ids);
    }
    assert_same_semantic(&a, &c, 2);

    /* and a run with nothing new changes nothing, anywhere */
    mn_consolidate_result_t again = consolidate(&b, 0.8f, 3);
    assert_int_equal(again.created + again.updated + again.retired, 0);
    assert_int_equal(again.n_ids, 0);
    free(again.ids);
    mn_space_stats_t st;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_get(b.e, "s", &st, &err), MN_OK);
    assert_int_equal(st.semantic, 2);
    eng_close(&a);
    eng_close(&b);
    eng_close(&c);
    mn_test_wal_free(&w);
}

static void test_consolidation_retires_a_cluster_that_falls_apart(void **state)
{
    (void)state;
    eng g = {0};
    eng_open(&g, "mnemo-cog-retire");
    assert_int_equal(mn_test_space(g.e, "s", 2, MN_METRIC_COSINE), MN_OK);
    float v[3][2] = {{1, 0.01f}, {1, 0}, {1, -0.01f}};
    mn_id_t ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = remember(&g, "a quiet morning", v[i], 2, NULL, 0);
    mn_consolidate_result_t r = consolidate(&g, 0.9f, 3);
    assert_int_equal(r.created, 1);
    mn_id_t sem = r.ids[0];
    free(r.ids);
    mn_memory_t m;
    mn_error err = {0};
    assert_int_equal(mn_engine_get(g.e, "s", &sem, false, &m, &err), MN_OK);
    assert_int_equal(m.n_support, 3);
    assert_memory_equal(m.support[0].b, ids[0].b, 16); /* keyed by the lowest id */
    mn_memory_clear(&m);
    /* below min_support: the forget retires the semantic memory in its own
     * batch (it would hold the episode's words), the next run has nothing to do */
    assert_int_equal(mn_engine_forget(g.e, "s", &ids[1], MN_FORGET_DELETE, &err), MN_OK);
    assert_int_equal(mn_engine_get(g.e, "s", &sem, false, &m, &err), MN_ERR_GONE);
    r = consolidate(&g, 0.9f, 3);
    assert_int_equal(r.retired + r.created + r.updated, 0);
    free(r.ids);
    /* a run retires a cluster that falls apart: a new episode leads it, the
     * old key's memory goes (and the client's is never retired, below) */
    float w[4][2] = {{0.01f, 1}, {0, 1}, {-0.01f, 1}, {0.02f, 1}};
    mn_id_t eve[4];
    for (int i = 0; i < 4; i++)
        eve[i] = remember(&g, "a quiet evening", w[i], 2, NULL, 0);
    r = consolidate(&g, 0.9f, 3);
    assert_int_equal(r.created, 1);
    mn_id_t sem2 = r.ids[0];
    free(r.ids);
    assert_int_equal(mn_engine_forget(g.e, "s", &eve[0], MN_FORGET_DELETE, &err), MN_OK);
    assert_int_equal(mn_engine_get(g.e, "s", &sem2, false, &m, &err), MN_OK); /* re-derived */
    assert_int_equal(m.n_support, 3);
    mn_memory_clear(&m);
    r = consolidate(&g, 0.9f, 3); /* keyed by another episode now */
    assert_int_equal(r.created, 1);
    assert_int_equal(r.retired, 1);
    free(r.ids);
    assert_int_equal(mn_engine_get(g.e, "s", &sem2, false, &m, &err), MN_ERR_GONE);
    /* a semantic memory a client remembered is never retired */
    mn_memory_t own;
    mn_memory_init(&own);
    own.kind = MN_KIND_SEMANTIC;
    own.content = "mornings are quiet";
    own.content_len = strlen(own.content);
    own.embedding = v[1];
    own.dim = 2;
    mn_id_t own_id;
    assert_int_equal(mn_engine_remember(g.e, "s", &own, 1, &own_id, &err), MN_OK);
    r = consolidate(&g, 0.9f, 3);
    assert_int_equal(r.retired, 0);
    free(r.ids);
    assert_int_equal(mn_engine_get(g.e, "s", &own_id, false, &m, &err), MN_OK);
    mn_memory_clear(&m);
    eng_close(&g);
}

static void test_consolidation_keeps_session_neighbours_together(void **state)
{
    (void)state;
    for (int same_session = 0; same_session < 2; same_session++) {
        eng g = {0};
        eng_open(&g, "mnemo-cog-session");
        assert_int_equal(mn_test_space(g.e, "s", 2, MN_METRIC_COSINE), MN_OK);
        int64_t t = g.now;
        float tight[3][2] = {{1, 0.02f}, {1, 0}, {1, -0.02f}};
        for (int i = 0; i < 3; i++)
            remember(&g, "standup notes", tight[i], 2, "s1", t + i * 60000);
        /* cos to the centroid 0.777: under the threshold 0.8, over it with the
         * 0.05 session bonus */
        float x[2] = {0.777f, 0.6295f};
        remember(&g, "standup follow-up", x, 2, same_session ? "s1" : "s2", t + 3 * 60000);
        mn_consolidate_result_t r = consolidate(&g, 0.8f, 3);
        assert_int_equal(r.created, 1);
        assert_int_equal(r.episodes, same_session ? 4 : 3);
        free(r.ids);
        eng_close(&g);
    }
}

/* Scheduled consolidation runs on the background thread, also without the
 * expiry sweeper (engine.expiry_interval_ms = 0). */
static void fast_schedule(mn_engine_options_t *o)
{
    o->expiry_interval_ms = 0;
    o->consolidate_interval_ms = 20;
}

static void test_scheduled_consolidation_runs_without_the_sweeper(void **state)
{
    (void)state;
    eng g = {0};
    eng_open_with(&g, "mnemo-cog-sched", fast_schedule);
    assert_int_equal(mn_test_space(g.e, "s", 2, MN_METRIC_COSINE), MN_OK);
    float v[2] = {1, 0};
    for (int i = 0; i < 3; i++)
        remember(&g, "scheduled", v, 2, NULL, 0);
    mn_space_stats_t st = {0};
    mn_error err = {0};
    /* a deadline, not a duration: the run happens within a few intervals */
    for (int i = 0; i < 2000 && st.semantic == 0; i++) {
        mn_engine_wait_background(g.e);
        assert_int_equal(mn_engine_space_get(g.e, "s", &st, &err), MN_OK);
        if (!st.semantic) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    assert_int_equal(st.semantic, 1);
    eng_close(&g);
}

/* ---- confidence ---- */

static void test_confidence_function_is_bounded_monotonic_and_explained(void **state)
{
    (void)state;
    mn_prng_t p;
    mn_prng_seed(&p, 17);
    for (int i = 0; i < 20000; i++) {
        /* inputs a little outside [0, 1] too: they are clamped */
        float f[4], g[4];
        for (int j = 0; j < 4; j++)
            f[j] = g[j] = (float)(mn_prng_double(&p) * 1.2 - 0.1);
        int which = (int)mn_prng_below(&p, 4);
        g[which] = f[which] + (float)mn_prng_double(&p) * 0.5f; /* one factor grows */
        mn_confidence_t a, b;
        mn__confidence_of(f[0], f[1], f[2], f[3], &a);
        mn__confidence_of(g[0], g[1], g[2], g[3], &b);
        assert_true(a.value >= 0 && a.value <= 1);
        assert_true(b.value >= a.value);
        assert_true(((a.reasons & MN_REASON_LOW_SIMILARITY) != 0) == (f[0] < 0.5f));
        assert_true(((a.reasons & MN_REASON_LOW_ENCODING_CONFIDENCE) != 0) == (f[1] < 0.9f));
        assert_true(((a.reasons & MN_REASON_DECAYED) != 0) == (f[2] < 0.7f));
        assert_true(((a.reasons & MN_REASON_LOW_SUPPORT) != 0) == (f[3] < 0.9f));
    }
    mn_confidence_t c;
    mn__confidence_of(NAN, 1, 1, 1, &c);
    assert_true(c.value == 0);
    /* support: episodes 1; semantic 1 - e^(-n/3): under 0.9 below 7 episodes */
    assert_true(mn__support_factor(false, 50) == 1.0f);
    assert_true(mn__support_factor(true, 0) == 1.0f);
    assert_true(fabsf(mn__support_factor(true, 3) - 0.6321f) < 1e-4f);
    assert_true(mn__support_factor(true, 6) < 0.9f && mn__support_factor(true, 7) >= 0.9f);
    assert_string_equal(mn_reason_name(4), "low_support");
    assert_string_equal(mn_reason_name(5), "embedding_unavailable"); /* set by api/embed */
    assert_string_equal(mn_reason_name(6), "superseded"); /* invalidated (versions) */
    assert_string_equal(mn_reason_name(7), "missing_partition"); /* query/: spaces missing */
    assert_string_equal(mn_reason_name(8), "partition"); /* cluster: answered from gossip */
    assert_int_equal(MN_REASON_COUNT, 10);
    /* the worked example of docs/recall.md §6: cosine 0.9, encoding 1, R 0.5 */
    mn__confidence_of(0.9f, 1, 0.5f, 1, &c);
    assert_true(fabsf(c.value - 0.675f) < 1e-6f);
    assert_string_equal(c.category, "medium");
    assert_int_equal(c.reasons, MN_REASON_DECAYED);
}

/* A hit's confidence recomputed from its own fields by the documented formula. */
static float expected_confidence(const mn_recall_hit_t *h, bool by_vec, bool by_text, bool spread)
{
    float match;
    if (spread) {
        match = h->activation;
    } else {
        float vm = isnan(h->similarity) ? NAN : h->similarity < 0 ? 0 : h->similarity;
        if (vm > 1) vm = 1;
        float cov = isnan(h->coverage) ? 0 : h->coverage;
        if (by_vec && by_text && !isnan(vm))
            match = (vm + cov) / 2;
        else if (by_vec && !isnan(vm))
            match = vm;
        else
            match = cov;
    }
    mn_confidence_t c;
    mn__confidence_of(match, h->memory.confidence, h->retention,
                      mn__support_factor(h->memory.kind == MN_KIND_SEMANTIC, h->memory.n_support),
                      &c);
    return c.value;
}

static float match_of(const mn_recall_hit_t *h, bool by_vec, bool by_text, bool spread)
{
    mn_confidence_t c;
    float v = expected_confidence(h, by_vec, by_text, spread);
    /* divide the other factors out: comparable only within equal factors */
    mn__confidence_of(1, h->memory.confidence, h->retention,
                      mn__support_factor(h->memory.kind == MN_KIND_SEMANTIC, h->memory.n_support),
                      &c);
    return c.value > 0 ? v / c.value : 0;
}

static bool same_factors(const mn_recall_hit_t *a, const mn_recall_hit_t *b)
{
    return a->memory.confidence == b->memory.confidence && a->retention == b->retention &&
           a->memory.kind == b->memory.kind && a->memory.n_support == b->memory.n_support;
}

static void test_confidence_properties_over_random_recalls(void **state)
{
    (void)state;
    eng g = {0};
    eng_open(&g, "mnemo-cog-conf");
    assert_int_equal(mn_test_space(g.e, "s", DIM, MN_METRIC_COSINE), MN_OK);
    mn_prng_t p;
    mn_prng_seed(&p, 23);
    static const char *vocab[] = {"river",  "bridge", "lantern", "harbor",  "meadow",
                                  "copper", "violin", "glacier", "orchard", "comet"};
    static const float encodings[] = {0.6f, 0.85f, 1.0f};
    /* random episodes in sessions (temporal links), some clustered (semantic
     * memories with different support), random encoding confidence */
    for (int i = 0; i < 160; i++) {
        float v[DIM];
        int topic = (int)mn_prng_below(&p, 4);
        for (int d = 0; d < DIM; d++)
            v[d] = (i < 60 && d == topic ? 1.5f : 0.0f) + (float)(mn_prng_double(&p) * 2 - 1);
        char content[96], session[16];
        snprintf(content, sizeof content, "%s %s %s", vocab[mn_prng_below(&p, 10)],
                 vocab[mn_prng_below(&p, 10)], vocab[mn_prng_below(&p, 10)]);
        snprintf(session, sizeof session, "s%d", i / 8);
        mn_memory_t m;
        mn_memory_init(&m);
        m.content = content;
        m.content_len = strlen(content);
        m.embedding = v;
        m.dim = DIM;
        m.session = session;
        m.when_ms = g.now + i * 60000;
        m.confidence = encodings[mn_prng_below(&p, 3)];
        mn_id_t id;
        mn_error err = {0};
        assert_int_equal(mn_engine_remember(g.e, "s", &m, 1, &id, &err), MN_OK);
    }
    mn_consolidate_result_t cr = consolidate(&g, 0.6f, 3);
    assert_true(cr.created >= 1);
    free(cr.ids);
    mn_error err = {0};
    bool saw_semantic = false, saw_low_support = false;
    for (int cfg = 0; cfg < 6; cfg++) {
        bool by_vec = cfg != 2, by_text = cfg >= 1 && cfg != 3, spread = cfg >= 3;
        for (int q = 0; q < 10; q++) {
            float cue[DIM];
            for (int d = 0; d < DIM; d++)
                cue[d] = (float)(mn_prng_double(&p) * 2 - 1);
            cue[mn_prng_below(&p, 4)] += 1.5f;
            char text[64];
            snprintf(text, sizeof text, "%s %s", vocab[mn_prng_below(&p, 10)],
                     vocab[mn_prng_below(&p, 10)]);
            mn_recall_req_t req = {0};
            mn_filter_init(&req.filter);
            req.embedding = by_vec ? cue : NULL;
            req.dim = DIM;
            req.text = by_text ? text : NULL;
            req.text_len = by_text ? strlen(text) : 0;
            req.k = 60;
            req.spread = spread;
            mn_recall_result_t before, after;
            assert_int_equal(mn_engine_recall(g.e, "s", &req, &before, &err), MN_OK);
            for (size_t i = 0; i < before.n_hits; i++) {
                const mn_recall_hit_t *h = &before.hits[i];
                assert_true(h->confidence.value >= 0 && h->confidence.value <= 1);
                assert_true(fabsf(h->confidence.value -
                                  expected_confidence(h, by_vec, by_text, spread)) < 1e-5f);
                assert_true(h->confidence.value <= before.recall_confidence);
                if (h->memory.kind == MN_KIND_SEMANTIC) {
                    saw_semantic = true;
                    bool low = mn__support_factor(true, h->memory.n_support) < 0.9f;
                    assert_true(((h->confidence.reasons & MN_REASON_LOW_SUPPORT) != 0) == low);
                    saw_low_support |= low;
                } else {
                    assert_false(h->confidence.reasons & MN_REASON_LOW_SUPPORT);
                }
                /* monotonic in the match for equal other factors */
                for (size_t j = 0; j < i; j++) {
                    const mn_recall_hit_t *o = &before.hits[j];
                    if (!same_factors(h, o)) continue;
                    float mh = match_of(h, by_vec, by_text, spread),
                          mo = match_of(o, by_vec, by_text, spread);
                    if (mh > mo) assert_true(h->confidence.value >= o->confidence.value);
                    if (mh < mo) assert_true(h->confidence.value <= o->confidence.value);
                }
            }
            /* lower after decay: 30 days on, the same hits, each less confident */
            g.now += 30LL * 86400 * 1000;
            assert_int_equal(mn_engine_recall(g.e, "s", &req, &after, &err), MN_OK);
            g.now -= 30LL * 86400 * 1000;
            assert_int_equal(after.n_hits, before.n_hits);
            for (size_t i = 0; i < after.n_hits; i++) {
                assert_memory_equal(after.hits[i].memory.id.b, before.hits[i].memory.id.b, 16);
                assert_true(after.hits[i].retention < before.hits[i].retention);
                if (before.hits[i].confidence.value > 0)
                    assert_true(after.hits[i].confidence.value < before.hits[i].confidence.value);
            }
            mn_recall_result_clear(&before);
            mn_recall_result_clear(&after);
        }
    }
    assert_true(saw_semantic);
    assert_true(saw_low_support);
    eng_close(&g);
}

/* ---- spreading activation ---- */

static mn_recall_result_t spread_recall(eng *g, const float *cue, uint32_t dim,
                                      void (*set)(mn_recall_req_t *))
{
    mn_recall_req_t req = {0};
    mn_filter_init(&req.filter);
    req.embedding = cue;
    req.dim = dim;
    req.k = 10;
    req.has_threshold = true;
    req.threshold = 0.99f; /* only the cue's own memory seeds */
    req.spread = true;
    req.trace = true;
    if (set) set(&req);
    mn_recall_result_t r;
    mn_error err = {0};
    mn_err rc = mn_engine_recall(g->e, "s", &req, &r, &err);
    if (rc) fail_msg("recall: %s", err.message);
    return r;
}

static const mn_recall_hit_t *hit_of(const mn_recall_result_t *r, const mn_id_t *id)
{
    for (size_t i = 0; i < r->n_hits; i++)
        if (!mn_id_cmp(&r->hits[i].memory.id, id)) return &r->hits[i];
    return NULL;
}

static void set_hops3(mn_recall_req_t *r)
{
    r->max_hops = 3;
}
static void set_min_act(mn_recall_req_t *r)
{
    r->min_activation = 0.5f;
}
static void set_visited2(mn_recall_req_t *r)
{
    r->max_visited = 2;
}
static void set_decay_half_again(mn_recall_req_t *r)
{
    r->hop_decay = 0.25f;
}

static void test_spreading_worked_example_and_parameters(void **state)
{
    (void)state;
    eng g = {0};
    eng_open(&g, "mnemo-cog-spread");
    assert_int_equal(mn_test_space(g.e, "s", 4, MN_METRIC_COSINE), MN_OK);
    float v[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    mn_id_t id[4];
    /* a chain A -> B -> C -> D one minute apart in a one-hour window: weight 0.985 */
    for (int i = 0; i < 4; i++)
        id[i] = remember(&g, "turn", v[i], 4, "chat", g.now + i * 60000);
    const float w = 1.0f - 0.9f / 60.0f;

    /* docs/recall.md §4: A's base is 1, the others' 0 (orthogonal); default
     * max_hops 2, hop_decay 0.75. B: A has one temporal association (fan 1), so S = 0.75 x w;
     * C: B has two (fan 2: 1 - ln 2 / ln 64 = 5/6); nothing comes back to A,
     * whose activation is already above B's */
    const float fan2 = 1.0f - logf(2.0f) / logf(64.0f);
    mn_recall_result_t r = spread_recall(&g, v[0], 4, NULL);
    assert_int_equal(r.n_hits, 3); /* D is three hops away */
    const mn_recall_hit_t *a = hit_of(&r, &id[0]), *b = hit_of(&r, &id[1]), *c = hit_of(&r, &id[2]);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_null(hit_of(&r, &id[3]));
    assert_true(fabsf(b->score - w * 0.75f) < 1e-5f);                          /* 0.7388 */
    assert_true(fabsf(c->score - w * 0.75f * fan2 * w * 0.75f) < 1e-5f);       /* 0.4548 */
    assert_true(fabsf(a->score - 1.0f) < 1e-6f);                               /* no echo */
    assert_true(fabsf(b->score - 0.7388f) < 1e-4f && fabsf(c->score - 0.4548f) < 1e-4f);
    assert_true(b->activation == b->score && c->activation == c->score); /* a vector cue */
    assert_memory_equal(r.hits[0].memory.id.b, id[0].b, 16); /* ranked first */
    assert_true(a->activation == 1.0f);
    assert_true(a->seed && !b->seed && !c->seed);
    /* multi-step via, seed first */
    assert_int_equal(c->n_via, 2);
    assert_memory_equal(c->via[0].from.b, id[0].b, 16);
    assert_memory_equal(c->via[1].from.b, id[1].b, 16);
    assert_int_equal(c->via[0].kind, MN_EDGE_TEMPORAL);
    assert_true(fabsf(c->via[1].weight - w) < 1e-6f);
    assert_int_equal(b->n_via, 1);
    assert_int_equal(a->n_via, 0);
    assert_true(c->confidence.reasons & MN_REASON_ASSOCIATIVE);
    assert_false(a->confidence.reasons & MN_REASON_ASSOCIATIVE);
    mn_recall_result_clear(&r);

    /* max_hops 3 reaches D: 0.4548 x 0.985 x 0.75 x 5/6 = 0.2800 */
    r = spread_recall(&g, v[0], 4, set_hops3);
    const mn_recall_hit_t *d = hit_of(&r, &id[3]);
    assert_non_null(d);
    assert_true(fabsf(d->score - w * w * w * 0.421875f * fan2 * fan2) < 1e-5f);
    assert_true(fabsf(d->score - 0.2800f) < 1e-4f);
    assert_int_equal(d->n_via, 3);
    mn_recall_result_clear(&r);

    /* min_activation 0.5 drops C's 0.4548 */
    r = spread_recall(&g, v[0], 4, set_min_act);
    assert_int_equal(r.n_hits, 2);
    assert_null(hit_of(&r, &id[2]));
    assert_true(fabsf(hit_of(&r, &id[0])->score - 1.0f) < 1e-6f);
    mn_recall_result_clear(&r);

    /* max_visited 2: the seed and one more */
    r = spread_recall(&g, v[0], 4, set_visited2);
    assert_int_equal(r.n_hits, 2);
    assert_non_null(hit_of(&r, &id[1]));
    mn_recall_result_clear(&r);

    /* hop_decay 0.25: B gets 0.985 x 0.25 */
    r = spread_recall(&g, v[0], 4, set_decay_half_again);
    assert_true(fabsf(hit_of(&r, &id[1])->score - w * 0.25f) < 1e-5f);
    mn_recall_result_clear(&r);

    /* from the far end, backwards along the chain at half strength (D's fan 1) */
    r = spread_recall(&g, v[3], 4, NULL);
    const mn_recall_hit_t *cb = hit_of(&r, &id[2]);
    assert_non_null(cb);
    assert_true(fabsf(cb->score - w * 0.75f * 0.5f) < 1e-5f); /* 0.3694 */
    mn_recall_result_clear(&r);
    eng_close(&g);
}

/* ---- temporal links in time order, whatever the arrival order ---- */

typedef struct link_row {
    char from[16], to[16];
    float weight;
} link_row;

static int row_cmp(const void *a, const void *b)
{
    const link_row *x = a, *y = b;
    int c = strcmp(x->from, y->from);
    return c ? c : strcmp(x->to, y->to);
}

/* Remembers turns named by their minute in the given order; returns the
 * temporal links as (from, to, weight) rows, sorted. */
static size_t temporal_rows(const int *minutes, size_t n, link_row *rows)
{
    eng g = {0};
    eng_open(&g, "mnemo-cog-temporal");
    assert_int_equal(mn_test_space(g.e, "s", 2, MN_METRIC_COSINE), MN_OK);
    int64_t t0 = g.now;
    mn_id_t ids[16];
    char names[16][16];
    float v[2] = {1, 0};
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "m%d", minutes[i]);
        ids[i] = remember(&g, names[i], v, 2, "chat", t0 + (int64_t)minutes[i] * 60000);
        g.now += 5; /* later arrivals get later ids */
    }
    size_t nr = 0;
    for (size_t i = 0; i < n; i++) {
        mn_assoc_t *as;
        size_t na;
        mn_error err = {0};
        assert_int_equal(mn_engine_associations(g.e, "s", &ids[i], &as, &na, &err), MN_OK);
        for (size_t j = 0; j < na; j++) {
            if (as[j].kind != MN_EDGE_TEMPORAL || !as[j].outgoing) continue;
            size_t o = 0;
            while (o < n && mn_id_cmp(&ids[o], &as[j].other))
                o++;
            assert_true(o < n);
            memcpy(rows[nr].from, names[i], sizeof rows[nr].from);
            memcpy(rows[nr].to, names[o], sizeof rows[nr].to);
            rows[nr++].weight = as[j].weight;
        }
        free(as);
    }
    qsort(rows, nr, sizeof *rows, row_cmp);
    eng_close(&g);
    return nr;
}

static void test_temporal_links_follow_time_not_arrival(void **state)
{
    (void)state;
    /* minutes; 200 is outside the one-hour window from 30 */
    const int in_order[] = {0, 10, 20, 30, 200, 210};
    const int shuffled[] = {20, 210, 0, 30, 10, 200};
    const int reversed[] = {210, 200, 30, 20, 10, 0};
    link_row a[32], b[32], c[32];
    size_t na = temporal_rows(in_order, 6, a), nb = temporal_rows(shuffled, 6, b),
           nc = temporal_rows(reversed, 6, c);
    /* consecutive turns only: 0->10->20->30, 200->210 */
    assert_int_equal(na, 4);
    assert_string_equal(a[0].from, "m0");
    assert_string_equal(a[0].to, "m10");
    assert_string_equal(a[3].from, "m200");
    assert_string_equal(a[3].to, "m210"); /* rows sorted by name: m0, m10, m20, m200 */
    assert_int_equal(nb, na);
    assert_int_equal(nc, na);
    for (size_t i = 0; i < na; i++) {
        assert_string_equal(a[i].from, b[i].from);
        assert_string_equal(a[i].to, b[i].to);
        assert_string_equal(a[i].from, c[i].from);
        assert_string_equal(a[i].to, c[i].to);
        assert_true(a[i].weight == b[i].weight && a[i].weight == c[i].weight);
        assert_true(fabsf(a[i].weight - (1.0f - 0.9f * 10.0f / 60.0f)) < 1e-6f);
    }
}

/* ---- reinforcement is batched ---- */

static void test_reinforcement_is_batched_without_fsync(void **state)
{
    (void)state;
    eng g = {0};
    eng_open(&g, "mnemo-cog-reinforce");
    assert_int_equal(mn_test_space(g.e, "s", 2, MN_METRIC_COSINE), MN_OK);
    float v[2] = {1, 0}, u[2] = {0.8f, 0.6f};
    mn_id_t id = remember(&g, "the gate code", v, 2, NULL, 0);
    remember(&g, "the other gate", u, 2, NULL, 0);
    mn_engine_wait_background(g.e);
    mn_engine_stats_t before, after;
    mn_engine_get_stats(g.e, &before);
    mn_recall_req_t req = {0};
    mn_filter_init(&req.filter);
    req.embedding = v;
    req.dim = 2;
    req.k = 2;
    req.reinforce = true;
    const int hits = 1000;
    int64_t t0 = mn_time_mono_ns();
    for (int i = 0; i < hits; i++) {
        mn_recall_result_t r;
        mn_error err = {0};
        assert_int_equal(mn_engine_recall(g.e, "s", &req, &r, &err), MN_OK);
        mn_recall_result_clear(&r);
        /* each recall a second after the last (the clock is read by the engine's threads) */
        __atomic_add_fetch(&g.now, 1000, __ATOMIC_SEQ_CST);
    }
    double took_ms = (double)(mn_time_mono_ns() - t0) / 1e6;
    mn_engine_wait_background(g.e);
    mn_engine_get_stats(g.e, &after);
    /* every hit counted, none fsynced, and at most one entry per coalescing
     * window (50 ms) or per 256 queued jobs: a bound from the rule, not a time */
    uint64_t entries = after.entries - before.entries;
    uint64_t jobs = (uint64_t)hits * req.k; /* a job per returned memory */
    uint64_t bound = (uint64_t)(took_ms / 50.0) + (jobs + 255) / 256 + 2;
    fprintf(stderr, "%d reinforcing recalls in %.1f ms: %llu WAL entries\n", hits, took_ms,
            (unsigned long long)entries);
    assert_true(entries >= 1);
    assert_true(entries <= bound);
    assert_true(entries < (uint64_t)hits / 10);
    assert_int_equal(after.synced_commits, before.synced_commits);
    mn_memory_t m;
    mn_error err = {0};
    assert_int_equal(mn_engine_get(g.e, "s", &id, false, &m, &err), MN_OK);
    assert_int_equal(m.access_count, hits);
    assert_true(m.stability_days > 7);
    mn_memory_clear(&m);
    eng_close(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consolidation_ignores_arrival_order_and_run_points),
        cmocka_unit_test(test_consolidation_retires_a_cluster_that_falls_apart),
        cmocka_unit_test(test_consolidation_keeps_session_neighbours_together),
        cmocka_unit_test(test_scheduled_consolidation_runs_without_the_sweeper),
        cmocka_unit_test(test_confidence_function_is_bounded_monotonic_and_explained),
        cmocka_unit_test(test_confidence_properties_over_random_recalls),
        cmocka_unit_test(test_spreading_worked_example_and_parameters),
        cmocka_unit_test(test_temporal_links_follow_time_not_arrival),
        cmocka_unit_test(test_reinforcement_is_batched_without_fsync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
