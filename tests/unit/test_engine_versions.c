/* engine: corrections (issue 20). An update writes a new version that supersedes the
 * current one; reads see the current version under the lineage id, as-of reads the
 * version current then, the history every version; a forget erases every version;
 * concurrent corrections lose nothing, and a version precondition refuses a stale one;
 * an invalidated memory stays, flagged. Everything survives a restart and replicates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/commit.h"
#include "mnemo/engine.h"
#include "testutil.h"

#define T0 1700000000000LL

typedef mn_test_eng fx;

static int setup(void **state)
{
    int rc = mn_test_eng_setup(state, "mnemo-versions", true);
    fx *f = *state;
    assert_int_equal(mn_test_space(f->e, "s", 2, MN_METRIC_COSINE), MN_OK);
    return rc;
}

static mn_id_t remember(fx *f, const char *text, float x)
{
    float v[2] = {x, 1 - x};
    char *tags[1] = {"x"};
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)text;
    m.content_len = strlen(text);
    m.embedding = v;
    m.dim = 2;
    m.tags = tags;
    m.n_tags = 1;
    mn_id_t id;
    mn_error err = {0};
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &id, &err), MN_OK);
    return id;
}

/* A correction of the content (and the vector, when v is not NULL). */
static mn_err correct(fx *f, const mn_id_t *id, const char *text, const float *v, uint32_t expected,
                      mn_memory_t *out)
{
    mn_update_req_t r = {0};
    r.content = text;
    r.content_len = strlen(text);
    r.embedding = v;
    r.dim = v ? 2 : 0;
    r.expected_version = expected;
    r.by = "tester";
    mn_error err = {0};
    return mn_engine_update(f->e, "s", id, &r, out, &err);
}

static void expect_content(fx *f, const mn_id_t *id, const char *text, uint32_t version)
{
    mn_memory_t m;
    mn_error err = {0};
    assert_int_equal(mn_engine_get(f->e, "s", id, false, &m, &err), MN_OK);
    assert_int_equal(mn_id_cmp(&m.id, id), 0);
    assert_string_equal(m.content, text);
    assert_int_equal(m.version, version);
    assert_int_equal(m.valid_to_ms, 0);
    mn_memory_clear(&m);
}

/* The ids and contents a text recall finds. */
static size_t recall_text(fx *f, const char *text, int64_t as_of, mn_recall_hit_t *first)
{
    mn_recall_req_t q = {0};
    q.text = text;
    q.text_len = strlen(text);
    q.k = 10;
    mn_filter_init(&q.filter);
    q.filter.as_of_ms = as_of;
    mn_recall_result_t r;
    mn_error err = {0};
    assert_int_equal(mn_engine_recall(f->e, "s", &q, &r, &err), MN_OK);
    size_t n = r.n_hits;
    if (first && n) {
        *first = r.hits[0];
        memset(&r.hits[0].memory, 0, sizeof r.hits[0].memory); /* moved to the caller */
    }
    mn_recall_result_clear(&r);
    return n;
}

static void test_update_writes_a_version_that_supersedes(void **state)
{
    fx *f = *state;
    mn_id_t a = remember(f, "the sky is green", 0.9f);
    f->now += 1000;
    float v2[2] = {0.1f, 0.9f};
    mn_memory_t out;
    assert_int_equal(correct(f, &a, "the sky is blue", v2, 0, &out), MN_OK);
    assert_int_equal(mn_id_cmp(&out.id, &a), 0);
    assert_int_equal(out.version, 2);
    assert_int_not_equal(mn_id_cmp(&out.version_id, &a), 0);
    assert_int_equal(mn_id_cmp(&out.supersedes, &a), 0);
    assert_int_equal(out.valid_from_ms, T0 + 1000);
    assert_int_equal(out.created_at_ms, T0); /* the memory's, not the version's */
    assert_int_equal(out.n_tags, 1);         /* carried over */
    assert_string_equal(out.tags[0], "x");
    assert_int_equal(out.changed, MN_CHANGED_CONTENT | MN_CHANGED_EMBEDDING);
    assert_string_equal(out.changed_by, "tester");
    mn_memory_clear(&out);
    expect_content(f, &a, "the sky is blue", 2);

    /* default reads see the current version only: words, vectors, lists, counts */
    assert_int_equal(recall_text(f, "green", MN_TIME_UNSET, NULL), 0);
    mn_recall_hit_t h;
    assert_int_equal(recall_text(f, "blue", MN_TIME_UNSET, &h), 1);
    assert_int_equal(mn_id_cmp(&h.memory.id, &a), 0);
    mn_memory_clear(&h.memory);
    mn_recall_req_t q = {0};
    float cue[2] = {0.9f, 0.1f}; /* nearer the old vector */
    q.embedding = cue;
    q.dim = 2;
    q.k = 10;
    mn_filter_init(&q.filter);
    mn_recall_result_t r;
    mn_error err = {0};
    assert_int_equal(mn_engine_recall(f->e, "s", &q, &r, &err), MN_OK);
    assert_int_equal(r.n_hits, 1);
    assert_string_equal(r.hits[0].memory.content, "the sky is blue");
    mn_recall_result_clear(&r);
    mn_list_req_t lr = {0};
    mn_filter_init(&lr.filter);
    mn_list_result_t l;
    assert_int_equal(mn_engine_list(f->e, "s", &lr, &l, &err), MN_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(mn_id_cmp(&l.memories[0].id, &a), 0);
    assert_int_equal(l.memories[0].version, 2);
    mn_list_result_clear(&l);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.memories, 1);
}

static void expect_history(fx *f, const mn_id_t *a, size_t n, const char *const *contents)
{
    mn_memory_t *h;
    size_t nh;
    mn_error err = {0};
    assert_int_equal(mn_engine_history(f->e, "s", a, &h, &nh, &err), MN_OK);
    assert_int_equal(nh, n);
    for (size_t i = 0; i < nh; i++) {
        assert_int_equal(mn_id_cmp(&h[i].id, a), 0);
        assert_int_equal(h[i].version, i + 1);
        assert_string_equal(h[i].content, contents[i]);
        assert_int_equal(h[i].superseded, i + 1 < nh);
        if (i) assert_int_equal(mn_id_cmp(&h[i].supersedes, &h[i - 1].version_id), 0);
        if (i + 1 < nh) assert_int_equal(h[i].valid_to_ms, h[i + 1].valid_from_ms);
        if (i) assert_int_equal(h[i].changed, MN_CHANGED_CONTENT);
    }
    for (size_t i = 0; i < nh; i++)
        mn_memory_clear(&h[i]);
    free(h);
}

static void test_history_and_as_of_survive_a_restart(void **state)
{
    fx *f = *state;
    mn_id_t a = remember(f, "alpha one", 0.5f);
    f->now = T0 + 1000;
    assert_int_equal(correct(f, &a, "bravo two", NULL, 0, NULL), MN_OK);
    f->now = T0 + 2000;
    assert_int_equal(correct(f, &a, "charlie three", NULL, 2, NULL), MN_OK);
    const char *const contents[] = {"alpha one", "bravo two", "charlie three"};
    for (int round = 0; round < 2; round++) {
        expect_history(f, &a, 3, contents);
        expect_content(f, &a, "charlie three", 3);
        mn_recall_hit_t h;
        /* as of a time, the version current then, under the lineage id */
        assert_int_equal(recall_text(f, "alpha", T0 + 500, &h), 1);
        assert_int_equal(mn_id_cmp(&h.memory.id, &a), 0);
        assert_int_equal(h.memory.version, 1);
        mn_memory_clear(&h.memory);
        assert_int_equal(recall_text(f, "bravo", T0 + 1500, NULL), 1);
        assert_int_equal(recall_text(f, "bravo", T0 + 2000, NULL), 0); /* [from, to) */
        assert_int_equal(recall_text(f, "charlie", T0 + 1500, NULL), 0);
        assert_int_equal(recall_text(f, "alpha", MN_TIME_UNSET, NULL), 0);
        static const struct {
            int64_t at;
            const char *content;
        } at[] = {{T0, "alpha one"},
                  {T0 + 999, "alpha one"},
                  {T0 + 1000, "bravo two"},
                  {T0 + 2000, "charlie three"}};
        for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
            mn_memory_t m;
            mn_error gerr = {0};
            assert_int_equal(mn_engine_get_as_of(f->e, "s", &a, at[i].at, false, &m, &gerr), MN_OK);
            assert_string_equal(m.content, at[i].content);
            assert_int_equal(mn_id_cmp(&m.id, &a), 0);
            mn_memory_clear(&m);
        }
        mn_memory_t none;
        mn_error gerr = {0};
        assert_int_equal(mn_engine_get_as_of(f->e, "s", &a, T0 - 1, false, &none, &gerr),
                         MN_ERR_NOT_FOUND);
        mn_list_req_t lr = {0};
        mn_filter_init(&lr.filter);
        lr.filter.as_of_ms = T0 + 1500;
        mn_list_result_t l;
        mn_error err = {0};
        assert_int_equal(mn_engine_list(f->e, "s", &lr, &l, &err), MN_OK);
        assert_int_equal(l.n, 1);
        assert_string_equal(l.memories[0].content, "bravo two");
        mn_list_result_clear(&l);
        mn_test_eng_reopen(f);
    }
}

static void test_forget_erases_every_version(void **state)
{
    fx *f = *state;
    mn_id_t a = remember(f, "zebraoldword", 0.25f);
    float v2[2] = {0.123f, 0.877f};
    f->now += 10;
    mn_memory_t out;
    assert_int_equal(correct(f, &a, "zebranewword", v2, 0, &out), MN_OK);
    mn_id_t v2id = out.version_id;
    mn_memory_clear(&out);
    assert_true(mn_test_count_stored(f->e, "zebraoldword", 12) > 0);
    assert_true(mn_test_count_stored(f->e, v2, sizeof v2) > 0);
    mn_error err = {0};
    /* a version's own id stands for its lineage */
    assert_int_equal(mn_engine_forget(f->e, "s", &v2id, MN_FORGET_DELETE, &err), MN_OK);
    assert_int_equal(mn_test_count_stored(f->e, "zebraoldword", 12), 0);
    assert_int_equal(mn_test_count_stored(f->e, "zebranewword", 12), 0);
    assert_int_equal(mn_test_count_stored(f->e, v2, sizeof v2), 0);
    mn_memory_t m;
    assert_int_equal(mn_engine_get(f->e, "s", &a, false, &m, &err), MN_ERR_GONE);
    mn_memory_t *h;
    size_t nh;
    assert_int_equal(mn_engine_history(f->e, "s", &a, &h, &nh, &err), MN_ERR_GONE);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.memories, 0);
    mn_test_eng_reopen(f);
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.memories, 0);
    assert_int_equal(recall_text(f, "zebraoldword zebranewword", MN_TIME_UNSET, NULL), 0);
}

static void test_version_precondition_refuses_a_stale_correction(void **state)
{
    fx *f = *state;
    mn_id_t a = remember(f, "one", 0.5f);
    assert_int_equal(correct(f, &a, "two", NULL, 1, NULL), MN_OK);
    assert_int_equal(correct(f, &a, "three", NULL, 1, NULL), MN_ERR_CONFLICT);
    expect_content(f, &a, "two", 2);
    assert_int_equal(correct(f, &a, "three", NULL, 2, NULL), MN_OK);
    expect_content(f, &a, "three", 3);
}

typedef struct racer {
    fx *f;
    mn_id_t id;
    int which;
    uint32_t expected;
    mn_err rc;
} racer;

/* Each racer sets one field of its own (or all expect version 1). */
static void *race(void *arg)
{
    racer *r = arg;
    char tag[16], key[16], val[16];
    snprintf(tag, sizeof tag, "t%d", r->which);
    snprintf(key, sizeof key, "k%d", r->which);
    snprintf(val, sizeof val, "v%d", r->which);
    char *tags[1] = {tag};
    mn_kv_t kv = {key, val};
    mn_update_req_t u = {0};
    if (r->which == 0) u.has_tags = true, u.tags = tags, u.n_tags = 1;
    if (r->which == 1) u.has_metadata = true, u.metadata = &kv, u.n_metadata = 1;
    if (r->which == 2) u.has_importance = true, u.importance = 0.9f;
    if (r->which == 3) u.content = "raced", u.content_len = 5;
    if (r->which >= 4) u.has_where = true, u.where = val;
    u.expected_version = r->expected;
    mn_error err = {0};
    r->rc = mn_engine_update(r->f->e, "s", &r->id, &u, NULL, &err);
    return NULL;
}

static void run_racers(racer *rs, size_t n)
{
    pthread_t th[8];
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    for (size_t i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

static void test_concurrent_corrections_lose_nothing(void **state)
{
    fx *f = *state;
    mn_id_t a = remember(f, "base", 0.5f);
    racer rs[4];
    for (int i = 0; i < 4; i++)
        rs[i] = (racer){f, a, i, 0, -99};
    run_racers(rs, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rs[i].rc, MN_OK);
    mn_memory_t m;
    mn_error err = {0};
    assert_int_equal(mn_engine_get(f->e, "s", &a, false, &m, &err), MN_OK);
    assert_int_equal(m.version, 5);
    assert_string_equal(m.content, "raced");
    assert_int_equal(m.n_tags, 1);
    assert_string_equal(m.tags[0], "t0");
    assert_int_equal(m.n_metadata, 1);
    assert_string_equal(m.metadata[0].value, "v1");
    assert_true(m.importance > 0.89f);
    mn_memory_clear(&m);

    /* all expecting the same version: exactly one wins */
    mn_id_t b = remember(f, "other", 0.5f);
    racer ws[6];
    for (int i = 0; i < 6; i++)
        ws[i] = (racer){f, b, 4 + i, 1, -99};
    run_racers(ws, 6);
    int won = 0;
    for (int i = 0; i < 6; i++) {
        assert_true(ws[i].rc == MN_OK || ws[i].rc == MN_ERR_CONFLICT);
        won += ws[i].rc == MN_OK;
    }
    assert_int_equal(won, 1);
    assert_int_equal(mn_engine_get(f->e, "s", &b, false, &m, &err), MN_OK);
    assert_int_equal(m.version, 2);
    mn_memory_clear(&m);
}

static void test_idempotent_correction_is_written_once(void **state)
{
    fx *f = *state;
    mn_id_t a = remember(f, "first", 0.5f);
    mn_update_req_t u = {0};
    u.content = "second";
    u.content_len = 6;
    u.idempotency_key = "fix-1";
    mn_memory_t o1, o2;
    mn_error err = {0};
    assert_int_equal(mn_engine_update(f->e, "s", &a, &u, &o1, &err), MN_OK);
    assert_int_equal(mn_engine_update(f->e, "s", &a, &u, &o2, &err), MN_OK);
    assert_int_equal(o2.version, 2);
    assert_int_equal(mn_id_cmp(&o1.version_id, &o2.version_id), 0);
    mn_memory_clear(&o1);
    mn_memory_clear(&o2);
    /* the same key on another memory is another write's */
    mn_id_t b = remember(f, "other", 0.5f);
    assert_int_equal(mn_engine_update(f->e, "s", &b, &u, NULL, &err), MN_ERR_EXISTS);
    expect_content(f, &b, "other", 1);
}

static void test_bad_corrections_change_nothing(void **state)
{
    fx *f = *state;
    mn_id_t a = remember(f, "kept", 0.5f);
    mn_update_req_t u = {0};
    mn_error err = {0};
    assert_int_equal(mn_engine_update(f->e, "s", &a, &u, NULL, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "nothing to change"));
    float v3[3] = {1, 2, 3};
    u.embedding = v3;
    u.dim = 3;
    assert_int_equal(mn_engine_update(f->e, "s", &a, &u, NULL, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "embedding"));
    u.embedding = NULL;
    u.has_importance = true;
    u.importance = 2;
    assert_int_equal(mn_engine_update(f->e, "s", &a, &u, NULL, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "importance"));
    mn_id_t unknown = {{1, 2, 3}};
    u.importance = 0.5f;
    assert_int_equal(mn_engine_update(f->e, "s", &unknown, &u, NULL, &err), MN_ERR_NOT_FOUND);
    expect_content(f, &a, "kept", 1);
    assert_int_equal(mn_engine_forget(f->e, "s", &a, MN_FORGET_DELETE, &err), MN_OK);
    assert_int_equal(mn_engine_update(f->e, "s", &a, &u, NULL, &err), MN_ERR_GONE);
}

static void test_invalidated_memory_stays_flagged(void **state)
{
    fx *f = *state;
    mn_id_t a = remember(f, "meeting on monday", 0.5f);
    mn_id_t b = remember(f, "meeting moved to tuesday", 0.5f);
    f->now += 100;
    mn_memory_t m;
    mn_error err = {0};
    assert_int_equal(mn_engine_invalidate(f->e, "s", &a, &b, "moved", &m, &err), MN_OK);
    assert_int_equal(m.valid_to_ms, f->now);
    assert_int_equal(mn_id_cmp(&m.invalidated_by, &b), 0);
    assert_string_equal(m.invalid_reason, "moved");
    mn_memory_clear(&m);
    /* again: nothing changes */
    f->now += 100;
    assert_int_equal(mn_engine_invalidate(f->e, "s", &a, NULL, NULL, &m, &err), MN_OK);
    assert_int_equal(m.valid_to_ms, f->now - 100);
    mn_memory_clear(&m);
    assert_int_equal(mn_engine_invalidate(f->e, "s", &a, &a, NULL, NULL, &err), MN_ERR_INVALID);
    for (int round = 0; round < 2; round++) {
        mn_recall_hit_t h;
        assert_int_equal(recall_text(f, "monday", MN_TIME_UNSET, &h), 1);
        assert_true(h.confidence.reasons & MN_REASON_SUPERSEDED);
        mn_memory_clear(&h.memory);
        assert_int_equal(recall_text(f, "monday", f->now - 150, &h), 1); /* before: valid */
        assert_false(h.confidence.reasons & MN_REASON_SUPERSEDED);
        mn_memory_clear(&h.memory);
        mn_test_eng_reopen(f);
    }
}

static void test_associations_follow_the_current_version(void **state)
{
    fx *f = *state;
    mn_id_t a = remember(f, "left", 0.5f);
    mn_id_t b = remember(f, "right", 0.5f);
    mn_edge_t e = {a, b, MN_EDGE_EXPLICIT, 0.5f};
    mn_error err = {0};
    assert_int_equal(mn_engine_associate(f->e, "s", &e, 1, &err), MN_OK);
    assert_int_equal(correct(f, &a, "left corrected", NULL, 0, NULL), MN_OK);
    assert_int_equal(correct(f, &b, "right corrected", NULL, 0, NULL), MN_OK);
    /* a new edge to a corrected memory's id joins its current version */
    mn_id_t c = remember(f, "third", 0.5f);
    mn_edge_t e2 = {c, a, MN_EDGE_CAUSAL, 0.7f};
    assert_int_equal(mn_engine_associate(f->e, "s", &e2, 1, &err), MN_OK);
    for (int round = 0; round < 2; round++) {
        mn_assoc_t *as;
        size_t n;
        assert_int_equal(mn_engine_associations(f->e, "s", &a, &as, &n, &err), MN_OK);
        assert_int_equal(n, 2);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(mn_id_cmp(&as[i].other, as[i].kind == MN_EDGE_CAUSAL ? &c : &b), 0);
        free(as);
        mn_test_eng_reopen(f);
    }
}

/* One op of a group: an associate of a to b (which 0) or a correction of a (which 1). */
typedef struct group_op {
    fx *f;
    mn_id_t a, b;
    int which;
    mn_err rc;
} group_op;

static void *run_group_op(void *arg)
{
    group_op *o = arg;
    mn_edge_t e = {o->a, o->b, MN_EDGE_CAUSAL, 0.6f};
    mn_error err = {0};
    if (o->which == 0)
        o->rc = mn_engine_associate(o->f->e, "s", &e, 1, &err);
    else
        o->rc = correct(o->f, &o->a, "left corrected", NULL, 0, NULL);
    return NULL;
}

/* a's one association, to b, as the engine reads it (the current version's). */
static void expect_one_edge(fx *f, const mn_id_t *a, const mn_id_t *b)
{
    mn_assoc_t *as;
    size_t n;
    mn_error err = {0};
    assert_int_equal(mn_engine_associations(f->e, "s", a, &as, &n, &err), MN_OK);
    assert_int_equal(n, 1);
    assert_int_equal(mn_id_cmp(&as[0].other, b), 0);
    assert_int_equal(as[0].kind, MN_EDGE_CAUSAL);
    free(as);
}

/* An associate and a correction of the same memory in one commit group, in either order:
 * the stored edge joins the current version (a restart reads it back from the store). */
static void test_an_associate_and_a_correction_in_one_group(void **state)
{
    fx *f = *state;
    for (int first = 0; first < 2; first++) {
        mn_id_t a = remember(f, first ? "left one" : "left two", 0.5f);
        mn_id_t b = remember(f, first ? "right one" : "right two", 0.5f);
        group_op ops[2] = {{f, a, b, first, MN_OK}, {f, a, b, !first, MN_OK}};
        pthread_t th[2];
        mn__commit_hold(f->e, true);
        for (size_t i = 0; i < 2; i++) {
            assert_int_equal(pthread_create(&th[i], NULL, run_group_op, &ops[i]), 0);
            for (int waited = 0; mn__commit_queued(f->e) < i + 1; waited++) { /* 10 s */
                assert_true(waited < 10000);
                struct timespec ts = {0, 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        mn__commit_hold(f->e, false);
        for (size_t i = 0; i < 2; i++) {
            pthread_join(th[i], NULL);
            assert_int_equal(ops[i].rc, MN_OK);
        }
        expect_one_edge(f, &a, &b);
        expect_one_edge(f, &b, &a);
        mn_test_eng_reopen(f);
        expect_one_edge(f, &a, &b);
        expect_one_edge(f, &b, &a);
    }
}

/* A memory's two versions are one memory: no edge between them. */
static void test_an_edge_between_versions_of_one_memory_is_refused(void **state)
{
    fx *f = *state;
    mn_id_t a = remember(f, "alone", 0.5f);
    mn_memory_t v2;
    assert_int_equal(correct(f, &a, "alone corrected", NULL, 0, &v2), MN_OK);
    mn_edge_t e = {a, v2.version_id, MN_EDGE_EXPLICIT, 0.5f};
    mn_memory_clear(&v2);
    mn_error err = {0};
    assert_int_equal(mn_engine_associate(f->e, "s", &e, 1, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "itself"));
}

static void test_versions_replicate_through_the_wal(void **state)
{
    fx *f = *state;
    mn_id_t a = remember(f, "primary text", 0.5f);
    assert_int_equal(correct(f, &a, "corrected text", NULL, 0, NULL), MN_OK);
    mn_test_wal w = {0};
    assert_int_equal(mn_test_wal_read(f->e, "s", 2, 0, &w), MN_OK);
    mn_test_eng g;
    mn_test_eng_init(&g, "mnemo-versions-replica");
    mn_test_eng_open(&g);
    assert_int_equal(mn_test_space(g.e, "s", 2, MN_METRIC_COSINE), MN_OK);
    mn_error err = {0};
    for (size_t i = 0; i < w.n; i++)
        assert_int_equal(mn_engine_ingest(g.e, w.bufs[i], w.lens[i], &err), MN_OK);
    mn_memory_t m;
    assert_int_equal(mn_engine_get(g.e, "s", &a, false, &m, &err), MN_OK);
    assert_string_equal(m.content, "corrected text");
    assert_int_equal(m.version, 2);
    mn_memory_clear(&m);
    mn_test_wal_free(&w);
    mn_test_eng_free(&g);
}

static void test_a_correction_is_an_update_event(void **state)
{
    fx *f = *state;
    mn_id_t a = remember(f, "event me", 0.5f);
    mn_engine_sub_t *sub;
    mn_error err = {0};
    assert_int_equal(mn_engine_subscribe(f->e, "s", 0, NULL, NULL, &sub, &err), MN_OK);
    assert_int_equal(correct(f, &a, "evented", NULL, 0, NULL), MN_OK);
    mn_event_t ev;
    bool ended = false;
    assert_int_equal(mn_engine_sub_next(sub, &ev, 1, 10000, &ended), 1);
    assert_int_equal(ev.kind, MN_EVENT_UPDATE);
    assert_string_equal(mn_event_kind_name(ev.kind), "update");
    assert_int_equal(mn_id_cmp(&ev.id, &a), 0);
    assert_int_equal(ev.count, 2);
    assert_true(ev.lsn > 0);
    mn_engine_unsubscribe(sub);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, mn_test_eng_teardown)
    const struct CMUnitTest tests[] = {
        T(test_update_writes_a_version_that_supersedes),
        T(test_history_and_as_of_survive_a_restart),
        T(test_forget_erases_every_version),
        T(test_version_precondition_refuses_a_stale_correction),
        T(test_concurrent_corrections_lose_nothing),
        T(test_idempotent_correction_is_written_once),
        T(test_bad_corrections_change_nothing),
        T(test_invalidated_memory_stays_flagged),
        T(test_an_associate_and_a_correction_in_one_group),
        T(test_an_edge_between_versions_of_one_memory_is_refused),
        T(test_associations_follow_the_current_version),
        T(test_versions_replicate_through_the_wal),
        T(test_a_correction_is_an_update_event),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
