/* consolidation over a memory's life on a real engine: episodes a semantic
 * memory no longer lists lose their mark and link (also after restart and
 * replay); forgetting or expiring an episode re-derives the semantic memories
 * listing it in the same batch, so its words are gone from the store and the
 * WAL; a retired semantic memory comes back under its id when its cluster
 * does, a client's forget blocks the key on every engine that saw it; and
 * engines with different histories of the same episodes and forgets end with
 * the same bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "mnemo/engine.h"
#include "mnemo/wire.h"
#include "testutil.h"

typedef mn_test_eng eng;

/* A new engine with space "s" of dim dimensions (cosine). */
static void eng_open(eng *g, const char *prefix, uint32_t dim)
{
    mn_test_eng_init(g, prefix);
    mn_test_eng_open(g);
    assert_int_equal(mn_test_space(g->e, "s", dim, MN_METRIC_COSINE), MN_OK);
}

static void eng_reopen(eng *g)
{
    mn_test_eng_reopen(g);
}

static void eng_close(eng *g)
{
    mn_test_eng_free(g);
    memset(g, 0, sizeof *g);
}

static mn_id_t remember(eng *g, const char *content, const float *v, uint32_t dim, int64_t ttl_s)
{
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)content;
    m.content_len = strlen(content);
    m.embedding = (float *)v;
    m.dim = dim;
    if (ttl_s) m.ttl_seconds = ttl_s;
    mn_id_t id;
    mn_error err = {0};
    if (mn_engine_remember(g->e, "s", &m, 1, &id, &err)) fail_msg("remember: %s", err.message);
    g->now += 10;
    return id;
}

static mn_consolidate_result_t consolidate(eng *g)
{
    mn_consolidate_opts_t o = {.threshold = 0.9f, .min_support = 3};
    mn_consolidate_result_t r;
    mn_error err = {0};
    if (mn_engine_consolidate(g->e, "s", &o, &r, &err)) fail_msg("consolidate: %s", err.message);
    return r;
}

static void forget(eng *g, const mn_id_t *id, mn_err want)
{
    mn_error err = {0};
    assert_int_equal(mn_engine_forget(g->e, "s", id, MN_FORGET_DELETE, &err), want);
}

static void ingest(eng *g, const mn_test_wal *w, size_t i)
{
    mn_error err = {0};
    mn_err rc = mn_engine_ingest(g->e, w->bufs[i], w->lens[i], &err);
    /* forgets of what is forgotten here already find tombstones */
    if (rc && rc != MN_ERR_GONE) fail_msg("ingest: %s", err.message);
}

static mn_err get(eng *g, const mn_id_t *id, mn_memory_t *m)
{
    mn_error err = {0};
    return mn_engine_get(g->e, "s", id, true, m, &err);
}

/* An episode's consolidated mark, and how many consolidation edges it has. */
static bool consolidated(eng *g, const mn_id_t *id, size_t *links)
{
    mn_memory_t m;
    assert_int_equal(get(g, id, &m), MN_OK);
    bool c = m.consolidated;
    mn_memory_clear(&m);
    mn_assoc_t *a;
    size_t n;
    mn_error err = {0};
    assert_int_equal(mn_engine_associations(g->e, "s", id, &a, &n, &err), MN_OK);
    *links = 0;
    for (size_t i = 0; i < n; i++)
        *links += a[i].kind == MN_EDGE_CONSOLIDATION;
    free(a);
    return c;
}

static size_t semantic_count(eng *g)
{
    mn_space_stats_t st;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_get(g->e, "s", &st, &err), MN_OK);
    return st.semantic;
}

static void assert_same_semantic(eng *a, eng *b, size_t want)
{
    size_t la, lb, na, nb;
    uint8_t *ba = mn_test_semantic_bytes(a->e, "s", &la, &na),
            *bb = mn_test_semantic_bytes(b->e, "s", &lb, &nb);
    assert_int_equal(na, want);
    assert_int_equal(nb, want);
    assert_int_equal(la, lb);
    if (la) assert_memory_equal(ba, bb, la);
    free(ba);
    free(bb);
}

static size_t stored(eng *g, const char *word)
{
    return mn_test_count_stored(g->e, word, strlen(word));
}

/* ---- gap: marks and links of supports a memory no longer lists ---- */

static void test_lost_supports_lose_their_mark_and_link(void **state)
{
    (void)state;
    eng g = {0};
    eng_open(&g, "mnemo-cons-marks", 2);
    mn_id_t ids[5];
    for (int i = 0; i < 5; i++) {
        float v[2] = {1, 0.01f * (float)(i - 2)};
        ids[i] = remember(&g, "tide tables", v, 2, 0);
    }
    mn_consolidate_result_t r = consolidate(&g);
    assert_int_equal(r.created, 1);
    mn_id_t sem = r.ids[0];
    free(r.ids);
    size_t links;
    for (int i = 0; i < 5; i++) {
        assert_true(consolidated(&g, &ids[i], &links));
        assert_int_equal(links, 1);
    }
    /* two episodes are suppressed: no longer candidates, the memory is
     * updated without them, and they lose the mark and the link */
    mn_error err = {0};
    for (int i = 3; i < 5; i++)
        assert_int_equal(mn_engine_forget(g.e, "s", &ids[i], MN_FORGET_SUPPRESS, &err), MN_OK);
    r = consolidate(&g);
    assert_int_equal(r.updated, 1);
    free(r.ids);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(consolidated(&g, &ids[i], &links), i < 3);
        assert_int_equal(links, i < 3);
    }
    mn_assoc_t *a;
    size_t n;
    assert_int_equal(mn_engine_associations(g.e, "s", &sem, &a, &n, &err), MN_OK);
    assert_int_equal(n, 3);
    free(a);
    /* one more: under min_support, retired, and none of its episodes keeps either */
    assert_int_equal(mn_engine_forget(g.e, "s", &ids[2], MN_FORGET_SUPPRESS, &err), MN_OK);
    r = consolidate(&g);
    assert_int_equal(r.retired, 1);
    free(r.ids);
    for (int pass = 0; pass < 2; pass++) { /* and after a restart */
        for (int i = 0; i < 5; i++) {
            assert_false(consolidated(&g, &ids[i], &links));
            assert_int_equal(links, 0);
        }
        eng_reopen(&g);
    }
    /* replay: an engine fed this WAL ends the same */
    mn_test_wal w = {0};
    assert_int_equal(mn_test_wal_read(g.e, "s", 2, 0, &w), MN_OK);
    eng h = {0};
    eng_open(&h, "mnemo-cons-marks-h", 2);
    for (size_t i = 0; i < w.n; i++)
        ingest(&h, &w, i);
    mn_memory_t m;
    assert_int_equal(get(&h, &sem, &m), MN_ERR_GONE);
    for (int i = 0; i < 5; i++) {
        assert_false(consolidated(&h, &ids[i], &links));
        assert_int_equal(links, 0);
    }
    mn_test_wal_free(&w);
    eng_close(&h);
    eng_close(&g);
}

/* ---- gap: an erased episode's words inside semantic memories ---- */

/* Does content start with the medoid text want (the part before the keywords)? */
static bool medoid_is(const mn_memory_t *m, const char *want)
{
    size_t n = strlen(want);
    return m->content_len >= n && !memcmp(m->content, want, n) &&
           (m->content_len == n || m->content[n] == '\n');
}

static void test_forgetting_an_episode_erases_its_words_from_semantic_memories(void **state)
{
    (void)state;
    eng f = {0};
    eng_open(&f, "mnemo-cons-privacy", 4);
    /* cluster A near e0; a2 sits at its centre (the medoid) and alone says
     * "zanzibar" and "secret", two of the memory's five keywords */
    static const char *ta[5] = {"harbor ferry", "ferry harbor", "zanzibar harbor ferry secret",
                                "harbor ferry", "harbor ferry dawn"};
    float va[5][4] = {{1, 0.08f, 0, 0},
                      {1, 0.14f, 0, 0},
                      {1, 0.11f, 0.01f, 0},
                      {1, 0.11f, 0.03f, 0},
                      {1, 0.1f, 0.01f, 0.01f}};
    mn_id_t a[5];
    for (int i = 0; i < 4; i++)
        a[i] = remember(&f, ta[i], va[i], 4, 0);
    /* cluster B near e1: b1 expires and alone says "kilimanjaro" */
    static const char *tb[4] = {"mountain trail map", "kilimanjaro mountain trail",
                                "trail to the mountain", "mountain trail water"};
    float vb[4][4] = {
        {0, 1, 0.05f, 0}, {0, 1, 0.06f, 0}, {0, 1, 0.04f, 0.01f}, {0, 1, 0.05f, 0.02f}};
    mn_id_t bb[4];
    for (int i = 0; i < 4; i++)
        bb[i] = remember(&f, tb[i], vb[i], 4, i == 1 ? 60 : 0);
    /* cluster C near e2: exactly min_support episodes */
    float vc[3][4] = {{0, 0, 1, 0.05f}, {0, 0, 1, 0.06f}, {0.01f, 0, 1, 0.05f}};
    mn_id_t c[3];
    for (int i = 0; i < 3; i++)
        c[i] = remember(&f, "garden seeds spring", vc[i], 4, 0);
    mn_consolidate_result_t r = consolidate(&f);
    assert_int_equal(r.created, 3);
    free(r.ids);
    a[4] = remember(&f, ta[4], va[4], 4, 0); /* a reconsolidation: a second version */
    r = consolidate(&f);
    assert_int_equal(r.updated, 1);
    mn_id_t sa = r.ids[0];
    free(r.ids);
    mn_memory_t m;
    assert_int_equal(get(&f, &sa, &m), MN_OK);
    assert_true(medoid_is(&m, ta[2]));
    assert_non_null(strstr(m.content, ", secret, zanzibar]")); /* keywords too */
    mn_memory_clear(&m);
    mn_test_wal before = {0}; /* the consolidate entry as it was */
    assert_int_equal(mn_test_wal_read(f.e, "s", 2, 0, &before), MN_OK);

    forget(&f, &a[2], MN_OK);
    assert_int_equal(stored(&f, "zanzibar"), 0);
    assert_int_equal(stored(&f, "secret"), 0);
    assert_int_equal(get(&f, &sa, &m), MN_OK); /* the same memory, from the four others */
    assert_int_equal(m.n_support, 4);
    for (size_t i = 0; i < m.n_support; i++)
        assert_memory_not_equal(m.support[i].b, a[2].b, 16);
    assert_null(strstr(m.content, "secret"));
    char rederived[256];
    snprintf(rederived, sizeof rederived, "%s", m.content);
    mn_memory_clear(&m);
    /* expiry erases the same way */
    f.now += 61000;
    size_t expired = 0;
    mn_error err = {0};
    assert_int_equal(mn_engine_expire(f.e, &expired, &err), MN_OK);
    assert_int_equal(expired, 1);
    assert_int_equal(get(&f, &bb[1], &m), MN_ERR_GONE);
    assert_int_equal(stored(&f, "kilimanjaro"), 0);
    /* under min_support: retired in the same batch; its episodes keep no mark */
    forget(&f, &c[0], MN_OK);
    assert_int_equal(semantic_count(&f), 2);
    size_t links;
    assert_false(consolidated(&f, &c[1], &links));
    assert_int_equal(links, 0);
    eng_reopen(&f);
    assert_int_equal(stored(&f, "zanzibar") + stored(&f, "kilimanjaro"), 0);
    assert_int_equal(semantic_count(&f), 2);

    /* replay: an engine fed this WAL holds the same memories and none of the words */
    mn_test_wal w = {0};
    assert_int_equal(mn_test_wal_read(f.e, "s", 2, 0, &w), MN_OK);
    eng h = {0};
    eng_open(&h, "mnemo-cons-privacy-h", 4);
    h.now = f.now;
    for (size_t i = 0; i < w.n; i++)
        ingest(&h, &w, i);
    assert_same_semantic(&f, &h, 2);
    assert_int_equal(stored(&h, "zanzibar") + stored(&h, "kilimanjaro") + stored(&h, "secret"), 0);
    /* an old consolidate entry that lists the forgotten episode is not applied */
    for (size_t i = 0; i < before.n; i++) {
        mn_wal_entry_t en;
        assert_int_equal(mn_wire_wal_decode(before.bufs[i], before.lens[i], &en, &err), MN_OK);
        if (en.type == MN_WAL_OP_CONSOLIDATE) ingest(&h, &before, i);
        mn_wal_entry_clear(&en);
    }
    assert_int_equal(stored(&h, "zanzibar") + stored(&h, "secret"), 0);
    assert_same_semantic(&f, &h, 2);

    /* a fresh run over the same episodes: the same memory but for the
     * keywords (a run ranks them over every cluster, a forget only drops) */
    eng g = {0};
    eng_open(&g, "mnemo-cons-privacy-g", 4);
    g.now = f.now;
    for (size_t i = 0; i < w.n; i++) {
        mn_wal_entry_t en;
        assert_int_equal(mn_wire_wal_decode(w.bufs[i], w.lens[i], &en, &err), MN_OK);
        if (en.type == MN_WAL_OP_REMEMBER) ingest(&g, &w, i);
        mn_wal_entry_clear(&en);
    }
    r = consolidate(&g);
    free(r.ids);
    mn_memory_t fresh;
    assert_int_equal(get(&g, &sa, &fresh), MN_OK);
    assert_int_equal(get(&f, &sa, &m), MN_OK);
    assert_int_equal(fresh.n_support, m.n_support);
    assert_memory_equal(fresh.support, m.support, m.n_support * sizeof *m.support);
    assert_memory_equal(fresh.embedding, m.embedding, 4 * sizeof(float));
    assert_memory_equal(&fresh.confidence, &m.confidence, sizeof m.confidence);
    assert_int_equal(fresh.created_at_ms, m.created_at_ms);
    const char *cut = strstr(rederived, "\n[keywords: ");
    size_t medoid_len = cut ? (size_t)(cut - rederived) : strlen(rederived);
    assert_true(fresh.content_len >= medoid_len);
    assert_memory_equal(fresh.content, rederived, medoid_len);
    mn_memory_clear(&fresh);
    mn_memory_clear(&m);
    /* and the next run settles the keywords: the same bytes */
    r = consolidate(&f);
    free(r.ids);
    assert_same_semantic(&f, &g, 2);
    mn_test_wal_free(&w);
    mn_test_wal_free(&before);
    eng_close(&g);
    eng_close(&h);
    eng_close(&f);
}

/* ---- gap: retired keys come back, a client's forget blocks them ---- */

/* Six episodes of one topic remembered on a source engine (ids in time
 * order); w gets their remember entries. */
static void one_topic(mn_test_wal *w, mn_id_t *ids)
{
    eng src = {0};
    eng_open(&src, "mnemo-cons-src", 2);
    static const char *t[6] = {"rain on the roof",    "roof leaks in rain", "rain gutter roof",
                               "the roof after rain", "rain roof tiles",    "roof and rain noise"};
    for (int i = 0; i < 6; i++) {
        float v[2] = {1, 0.01f * (float)(i % 3) - 0.01f};
        ids[i] = remember(&src, t[i], v, 2, 0);
    }
    assert_int_equal(mn_test_wal_read(src.e, "s", 2, 0, w), MN_OK);
    assert_int_equal(w->n, 6);
    eng_close(&src);
}

/* The last entry of g's WAL (a forget just written). */
static void last_entry(eng *g, mn_test_wal *out)
{
    mn_test_wal all = {0};
    assert_int_equal(mn_test_wal_read(g->e, "s", 1, 0, &all), MN_OK);
    assert_true(all.n > 0);
    out->bufs = malloc(sizeof *out->bufs);
    out->lens = malloc(sizeof *out->lens);
    out->bufs[0] = all.bufs[all.n - 1];
    out->lens[0] = all.lens[all.n - 1];
    out->n = 1;
    all.n--;
    mn_test_wal_free(&all);
}

static void test_retired_key_comes_back_and_a_client_forget_blocks_it(void **state)
{
    (void)state;
    mn_test_wal w = {0};
    mn_id_t ids[6];
    one_topic(&w, ids);
    /* A: the newer half first (keyed by ids[3]), then the older half: the
     * memory of ids[3] is retired; the older three are forgotten, the
     * cluster is keyed by ids[3] again and its memory comes back, same id */
    eng a = {0};
    eng_open(&a, "mnemo-cons-a", 2);
    for (size_t i = 3; i < 6; i++)
        ingest(&a, &w, i);
    mn_consolidate_result_t r = consolidate(&a);
    assert_int_equal(r.created, 1);
    mn_id_t s4 = r.ids[0];
    free(r.ids);
    for (size_t i = 0; i < 3; i++)
        ingest(&a, &w, i);
    r = consolidate(&a);
    assert_int_equal(r.created, 1);
    assert_int_equal(r.retired, 1);
    mn_id_t s1 = r.ids[0];
    free(r.ids);
    mn_memory_t m;
    assert_int_equal(get(&a, &s4, &m), MN_ERR_GONE);
    for (int i = 0; i < 3; i++)
        forget(&a, &ids[i], MN_OK); /* s1 re-derived each time */
    assert_int_equal(get(&a, &s1, &m), MN_OK);
    assert_int_equal(m.n_support, 3);
    mn_memory_clear(&m);
    r = consolidate(&a);
    assert_int_equal(r.created, 1);
    assert_int_equal(r.retired, 1);
    assert_memory_equal(r.ids[0].b, s4.b, 16);
    free(r.ids);
    /* B never retired it: all six, the same forgets, one run */
    eng b = {0};
    eng_open(&b, "mnemo-cons-b", 2);
    for (size_t i = 0; i < 6; i++)
        ingest(&b, &w, i);
    for (int i = 0; i < 3; i++)
        forget(&b, &ids[i], MN_OK);
    r = consolidate(&b);
    assert_int_equal(r.created, 1);
    free(r.ids);
    assert_same_semantic(&a, &b, 1);

    /* a client forgets it on A: its key stays without a memory */
    forget(&a, &s4, MN_OK);
    mn_test_wal fw = {0};
    last_entry(&a, &fw);
    r = consolidate(&a);
    assert_int_equal(r.created + r.updated + r.retired, 0);
    free(r.ids);
    assert_int_equal(semantic_count(&a), 0);
    /* B sees the forget (the memory is live there) */
    ingest(&b, &fw, 0);
    r = consolidate(&b);
    assert_int_equal(r.created, 0);
    free(r.ids);
    assert_int_equal(semantic_count(&b), 0);
    /* C sees it before it ever consolidated (the id is unknown there) */
    eng c = {0};
    eng_open(&c, "mnemo-cons-c", 2);
    for (size_t i = 0; i < 6; i++)
        ingest(&c, &w, i);
    ingest(&c, &fw, 0);
    for (int i = 0; i < 3; i++)
        forget(&c, &ids[i], MN_OK);
    r = consolidate(&c);
    assert_int_equal(r.created, 0);
    free(r.ids);
    assert_int_equal(semantic_count(&c), 0);
    /* D sees it while the memory is retired there; and a local forget of a
     * retired memory blocks it the same way (then it is forgotten: 410) */
    for (int local = 0; local < 2; local++) {
        eng d = {0};
        eng_open(&d, "mnemo-cons-d", 2);
        for (size_t i = 3; i < 6; i++)
            ingest(&d, &w, i);
        r = consolidate(&d);
        free(r.ids);
        for (size_t i = 0; i < 3; i++)
            ingest(&d, &w, i);
        r = consolidate(&d);
        assert_int_equal(r.retired, 1);
        free(r.ids);
        if (local) {
            forget(&d, &s4, MN_OK);
            forget(&d, &s4, MN_ERR_GONE);
        } else {
            ingest(&d, &fw, 0);
        }
        for (int i = 0; i < 3; i++)
            forget(&d, &ids[i], MN_OK);
        r = consolidate(&d);
        assert_int_equal(r.created, 0);
        free(r.ids);
        assert_int_equal(semantic_count(&d), 0);
        eng_reopen(&d); /* and it stays so */
        r = consolidate(&d);
        assert_int_equal(r.created, 0);
        free(r.ids);
        eng_close(&d);
    }
    mn_test_wal_free(&fw);
    mn_test_wal_free(&w);
    eng_close(&a);
    eng_close(&b);
    eng_close(&c);
}

/* ---- determinism across histories, with forgets ---- */

#define TOPICS 3
#define PER_TOPIC 6
#define N_EPISODES (TOPICS * PER_TOPIC)
#define DIM 8

/* Three topics of six episodes, each episode with a word of its own
 * ("uniq<i>z"); w gets the remember entries in arrival order. */
static void topic_episodes(mn_test_wal *w, mn_id_t *ids)
{
    eng src = {0};
    eng_open(&src, "mnemo-cons-topics", DIM);
    mn_prng_t p;
    mn_prng_seed(&p, 11);
    static const char *words[TOPICS][3] = {{"espresso", "grinder", "barista"},
                                           {"marathon", "training", "tempo"},
                                           {"compiler", "linker", "symbols"}};
    for (int i = 0; i < PER_TOPIC; i++)
        for (int t = 0; t < TOPICS; t++) {
            float v[DIM];
            for (int d = 0; d < DIM; d++)
                v[d] = (d == 2 * t ? 1.0f : 0.0f) + (float)(mn_prng_double(&p) - 0.5) * 0.1f;
            char content[96];
            snprintf(content, sizeof content, "%s and %s uniq%02dz", words[t][i % 3],
                     words[t][(i + 1) % 3], i * TOPICS + t);
            ids[i * TOPICS + t] = remember(&src, content, v, DIM, 0);
        }
    assert_int_equal(mn_test_wal_read(src.e, "s", 2, 0, w), MN_OK);
    assert_int_equal(w->n, N_EPISODES);
    eng_close(&src);
}

static mn_consolidate_result_t run_free(eng *g)
{
    mn_consolidate_result_t r = consolidate(g);
    free(r.ids);
    return r;
}

static void test_engines_with_different_histories_and_forgets_agree(void **state)
{
    (void)state;
    mn_test_wal w = {0};
    mn_id_t ids[N_EPISODES];
    topic_episodes(&w, ids);
    /* the forgotten: topic 0's key (ids[0]), one of topic 1 and two of topic 2
     * (both in the newer half) */
    static const int gone[] = {0, 4, 11, 14};
    size_t n_gone = sizeof gone / sizeof *gone;

    /* A: everything, a run, the forgets, a run */
    eng a = {0};
    eng_open(&a, "mnemo-cons-ha", DIM);
    for (size_t i = 0; i < w.n; i++)
        ingest(&a, &w, i);
    assert_int_equal(run_free(&a).created, TOPICS);
    for (size_t i = 0; i < n_gone; i++)
        forget(&a, &ids[gone[i]], MN_OK);
    run_free(&a);

    /* B: the newer half first, a run, the forgets it can make, the older
     * half, a run, the other forgets (no run after them) */
    eng b = {0};
    eng_open(&b, "mnemo-cons-hb", DIM);
    for (size_t i = w.n / 2; i < w.n; i++)
        ingest(&b, &w, i);
    run_free(&b);
    for (size_t i = 0; i < n_gone; i++)
        if ((size_t)gone[i] >= w.n / 2) forget(&b, &ids[gone[i]], MN_OK);
    for (size_t i = 0; i < w.n / 2; i++)
        ingest(&b, &w, i);
    run_free(&b);
    for (size_t i = 0; i < n_gone; i++)
        if ((size_t)gone[i] < w.n / 2) forget(&b, &ids[gone[i]], MN_OK);

    /* C: a seeded shuffle, a run after every arrival and every forget, each
     * forget right after its episode arrives */
    eng c = {0};
    eng_open(&c, "mnemo-cons-hc", DIM);
    size_t order[N_EPISODES];
    for (size_t i = 0; i < w.n; i++)
        order[i] = i;
    mn_prng_t p;
    mn_prng_seed(&p, 5);
    for (size_t i = w.n - 1; i > 0; i--) {
        size_t j = mn_prng_below(&p, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < w.n; i++) {
        ingest(&c, &w, order[i]);
        run_free(&c);
        for (size_t k = 0; k < n_gone; k++)
            if ((size_t)gone[k] == order[i]) {
                forget(&c, &ids[gone[k]], MN_OK);
                run_free(&c);
            }
    }

    /* none holds a forgotten episode's word; after a last run all agree */
    eng *all[3] = {&a, &b, &c};
    for (int e = 0; e < 3; e++) {
        for (size_t i = 0; i < n_gone; i++) {
            char word[16];
            snprintf(word, sizeof word, "uniq%02dz", gone[i]);
            assert_int_equal(stored(all[e], word), 0);
        }
        run_free(all[e]);
    }
    assert_same_semantic(&a, &b, TOPICS);
    assert_same_semantic(&a, &c, TOPICS);
    /* and a replica of A's WAL as it stands now holds them too, with no run */
    mn_test_wal aw = {0};
    assert_int_equal(mn_test_wal_read(a.e, "s", 2, 0, &aw), MN_OK);
    eng d = {0};
    eng_open(&d, "mnemo-cons-hd", DIM);
    for (size_t i = 0; i < aw.n; i++)
        ingest(&d, &aw, i);
    assert_same_semantic(&a, &d, TOPICS);
    mn_test_wal_free(&aw);
    mn_test_wal_free(&w);
    eng_close(&a);
    eng_close(&b);
    eng_close(&c);
    eng_close(&d);
}

/* ---- a filter scopes which changes of a full run are applied ---- */

static mn_consolidate_result_t run_scoped(eng *g, uint32_t min_support, const mn_filter_t *f)
{
    mn_consolidate_opts_t o = {.threshold = 0.9f, .min_support = min_support, .filter = f};
    mn_consolidate_result_t r;
    mn_error err = {0};
    if (mn_engine_consolidate(g->e, "s", &o, &r, &err)) fail_msg("consolidate: %s", err.message);
    free(r.ids);
    return r;
}

/* A filter that matches episode id alone (by its when). */
static mn_filter_t only(eng *g, const mn_id_t *id)
{
    mn_memory_t m;
    assert_int_equal(get(g, id, &m), MN_OK);
    mn_filter_t f;
    mn_filter_init(&f);
    f.when_from_ms = m.when_ms;
    f.when_to_ms = m.when_ms + 1;
    mn_memory_clear(&m);
    return f;
}

/* The semantic memory in g that lists episode id (its cluster's), or fails. */
static mn_id_t semantic_of(eng *g, const mn_id_t *id)
{
    mn_list_req_t lr;
    memset(&lr, 0, sizeof lr);
    mn_filter_init(&lr.filter);
    lr.filter.kind = MN_KIND_SEMANTIC;
    lr.limit = 100;
    mn_list_result_t res;
    mn_error err = {0};
    assert_int_equal(mn_engine_list(g->e, "s", &lr, &res, &err), MN_OK);
    mn_id_t found;
    memset(&found, 0, sizeof found);
    bool any = false;
    for (size_t i = 0; i < res.n; i++)
        for (size_t k = 0; k < res.memories[i].n_support; k++)
            if (!mn_id_cmp(&res.memories[i].support[k], id)) {
                found = res.memories[i].id;
                any = true;
            }
    mn_list_result_clear(&res);
    if (!any) fail_msg("no semantic memory lists the episode");
    return found;
}

static void test_a_filtered_run_applies_only_the_matching_clusters(void **state)
{
    (void)state;
    mn_test_wal w = {0};
    mn_id_t ids[N_EPISODES];
    topic_episodes(&w, ids); /* ids[i * TOPICS + t] is of topic t */
    eng a = {0}, b = {0};
    eng_open(&a, "mnemo-cons-fa", DIM);
    eng_open(&b, "mnemo-cons-fb", DIM);
    for (size_t i = 0; i < w.n; i++) {
        ingest(&a, &w, i);
        ingest(&b, &w, i);
    }
    mn_filter_t t1 = only(&a, &ids[4]); /* topic 1's third episode */

    /* a filter on consolidate cannot look back in time */
    mn_filter_t past = t1;
    past.as_of_ms = 1;
    mn_consolidate_opts_t o = {.filter = &past};
    mn_consolidate_result_t r;
    mn_error err = {0};
    assert_int_equal(mn_engine_consolidate(a.e, "s", &o, &r, &err), MN_ERR_INVALID);
    assert_string_equal(err.message, "filter.as_of: consolidation works on the space as it is now");

    /* a filter matching nothing writes nothing and leaves every change */
    mn_filter_t none;
    mn_filter_init(&none);
    none.when_from_ms = 1;
    none.when_to_ms = 2;
    r = run_scoped(&a, 3, &none);
    assert_int_equal(r.candidates, N_EPISODES);
    assert_int_equal(r.created + r.updated + r.retired, 0);
    assert_int_equal(r.skipped, TOPICS);
    assert_int_equal(semantic_count(&a), 0);

    /* A: only topic 1's cluster is written, as B's unfiltered run writes it */
    r = run_scoped(&a, 3, &t1);
    assert_int_equal(r.created, 1);
    assert_int_equal(r.skipped, TOPICS - 1);
    assert_int_equal(r.episodes, PER_TOPIC);
    assert_int_equal(semantic_count(&a), 1);
    r = run_scoped(&b, 3, NULL);
    assert_int_equal(r.created, TOPICS);
    assert_int_equal(r.skipped, 0);
    mn_id_t sa = semantic_of(&a, &ids[4]), sb = semantic_of(&b, &ids[4]);
    assert_memory_equal(&sa, &sb, sizeof sa);
    mn_memory_t ma, mb;
    assert_int_equal(get(&a, &sa, &ma), MN_OK);
    assert_int_equal(get(&b, &sb, &mb), MN_OK);
    assert_int_equal(ma.content_len, mb.content_len);
    assert_memory_equal(ma.content, mb.content, ma.content_len);
    assert_int_equal(ma.n_support, mb.n_support);
    assert_memory_equal(ma.support, mb.support, ma.n_support * sizeof *ma.support);
    mn_memory_clear(&ma);
    mn_memory_clear(&mb);

    /* filtered then unfiltered: the state of the unfiltered run alone */
    r = run_scoped(&a, 3, NULL);
    assert_int_equal(r.created, TOPICS - 1);
    assert_int_equal(r.updated, 0);
    assert_same_semantic(&a, &b, TOPICS);

    /* retirements are scoped by the stored support: with a support no cluster
     * reaches, the filter retires topic 1's memory only */
    r = run_scoped(&a, PER_TOPIC + 1, &t1);
    assert_int_equal(r.retired, 1);
    assert_int_equal(r.skipped, TOPICS - 1);
    assert_int_equal(semantic_count(&a), TOPICS - 1);
    r = run_scoped(&a, PER_TOPIC + 1, NULL);
    assert_int_equal(r.retired, TOPICS - 1);
    assert_int_equal(run_scoped(&b, PER_TOPIC + 1, NULL).retired, TOPICS);
    assert_same_semantic(&a, &b, 0);
    /* and back: all three, the same bytes */
    assert_int_equal(run_scoped(&a, 3, &t1).created, 1);
    run_scoped(&a, 3, NULL);
    run_scoped(&b, 3, NULL);
    assert_same_semantic(&a, &b, TOPICS);
    mn_test_wal_free(&w);
    eng_close(&a);
    eng_close(&b);
}

/* The engine judges the ranges of a run's options once for every door, and holds its
 * own defaults to the same ranges when it opens. */
static void test_consolidate_options_out_of_range_are_refused_by_the_engine(void **state)
{
    (void)state;
    eng g;
    eng_open(&g, "mn-consolidate-range", 3);
    const mn_consolidate_opts_t bad[] = {{.threshold = 1.5f}, {.threshold = -0.25f},
                                       {.threshold = NAN}, {.min_support = 100001}};
    const char *msg[] = {"threshold: must be in 0..1 (0 = default)",
                         "threshold: must be in 0..1 (0 = default)",
                         "threshold: must be in 0..1 (0 = default)",
                         "min_support: must be in 0..100000 (0 = default)"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mn_consolidate_result_t r;
        mn_error err = {0};
        assert_int_equal(mn_engine_consolidate(g.e, "s", &bad[i], &r, &err), MN_ERR_INVALID);
        assert_string_equal(err.message, msg[i]);
    }
    mn_consolidate_opts_t dflt = {0}; /* 0 = the engine's defaults */
    mn_consolidate_result_t r;
    mn_error err = {0};
    assert_int_equal(mn_engine_consolidate(g.e, "s", &dflt, &r, &err), MN_OK);
    free(r.ids);
    eng_close(&g);

    mn_test_eng_init(&g, "mn-consolidate-range-open");
    g.opts.consolidate.min_support = 200000;
    mn_engine_t *e = NULL;
    assert_int_equal(mn_engine_open(&g.opts, &e, &err), MN_ERR_INVALID);
    assert_null(e);
    assert_string_equal(err.message, "min_support: must be in 0..100000 (0 = default)");
    mn_test_eng_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lost_supports_lose_their_mark_and_link),
        cmocka_unit_test(test_forgetting_an_episode_erases_its_words_from_semantic_memories),
        cmocka_unit_test(test_retired_key_comes_back_and_a_client_forget_blocks_it),
        cmocka_unit_test(test_consolidate_options_out_of_range_are_refused_by_the_engine),
        cmocka_unit_test(test_engines_with_different_histories_and_forgets_agree),
        cmocka_unit_test(test_a_filtered_run_applies_only_the_matching_clusters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
