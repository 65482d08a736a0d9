/* query: a recall over many spaces (include/mnemo/query.h, docs/recall.md §11). The plan
 * (lists, prefixes, the key's right, the limits), the merge (score, then id; duplicates), the
 * missing-partition factor, and runs on a real engine: the merged top k equals the spaces' own
 * answers merged by score, a stalled space (the test hook) is missing with "timeout", and a
 * space that answers after the run gave up is dropped on the run's own copy of the request. */
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

#include "mnemo/query.h"
#include "testutil.h"

/* ---- plan ---- */

static bool not_secret(void *arg, const char *space)
{
    (void)arg;
    return strncmp(space, "secret", 6) != 0;
}

static const char *const KNOWN[] = {"team-b", "team-a", "secret-x", "team-c", "other"};

static mn_err plan(const char *const *names, size_t n, const char *prefix, mn_query_plan_t *p,
                   mn_error *err)
{
    mn_query_plan_in_t in = {.names = names,
                             .n_names = n,
                             .prefix = prefix,
                             .known = KNOWN,
                             .n_known = 5,
                             .may_read = not_secret};
    return mn_query_plan(&in, p, err);
}

static void test_plan_list_is_sorted_without_duplicates(void **state)
{
    (void)state;
    const char *names[] = {"team-c", "team-a", "team-c"};
    mn_query_plan_t p;
    mn_error err = {0};
    assert_int_equal(plan(names, 3, NULL, &p, &err), MN_OK);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.spaces[0], "team-a");
    assert_string_equal(p.spaces[1], "team-c");
    mn_query_plan_clear(&p);
}

static void test_plan_prefix_expands_to_readable_spaces_only(void **state)
{
    (void)state;
    mn_query_plan_t p;
    mn_error err = {0};
    assert_int_equal(plan(NULL, 0, "team-", &p, &err), MN_OK);
    assert_int_equal(p.n, 3);
    assert_string_equal(p.spaces[0], "team-a");
    assert_string_equal(p.spaces[2], "team-c");
    mn_query_plan_clear(&p);
    assert_int_equal(plan(NULL, 0, "secret", &p, &err), MN_OK); /* unreadable: not named */
    assert_int_equal(p.n, 0);
    mn_query_plan_clear(&p);
    assert_int_equal(plan(NULL, 0, "zzz", &p, &err), MN_OK);
    assert_int_equal(p.n, 0);
    mn_query_plan_clear(&p);
}

static void test_plan_refuses_unreadable_before_unknown(void **state)
{
    (void)state;
    const char *names[] = {"nope", "secret-x"};
    mn_query_plan_t p;
    mn_error err = {0};
    assert_int_equal(plan(names, 2, NULL, &p, &err), MN_ERR_INVALID);
    assert_string_equal(p.denied, "secret-x");
    assert_non_null(strstr(err.message, "secret-x"));
    const char *unknown[] = {"team-a", "nope"};
    assert_int_equal(plan(unknown, 2, NULL, &p, &err), MN_ERR_NOT_FOUND);
    assert_string_equal(p.denied, "");
    assert_non_null(strstr(err.message, "\"nope\""));
}

static void test_plan_bad_input_names_the_field(void **state)
{
    (void)state;
    mn_query_plan_t p;
    mn_error err = {0};
    const char *one[] = {"team-a"};
    assert_int_equal(plan(one, 1, "team-", &p, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "exactly one"));
    assert_int_equal(plan(NULL, 0, NULL, &p, &err), MN_ERR_INVALID);
    assert_int_equal(plan(one, 0, NULL, &p, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "spaces"));
    const char *bad[] = {"team-a", "Bad Name"};
    assert_int_equal(plan(bad, 2, NULL, &p, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "spaces[1]"));
    assert_int_equal(plan(NULL, 0, "", &p, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "space_prefix"));
}

static void test_plan_bounds_the_number_of_spaces(void **state)
{
    (void)state;
    enum { N = MN_QUERY_SPACES_MAX + 1 };
    static char store[N][16];
    const char *names[N];
    for (int i = 0; i < N; i++) {
        snprintf(store[i], sizeof store[i], "s-%04d", i);
        names[i] = store[i];
    }
    mn_query_plan_t p;
    mn_error err = {0};
    mn_query_plan_in_t in = {.names = names, .n_names = N, .known = names, .n_known = N};
    assert_int_equal(mn_query_plan(&in, &p, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "at most 256"));
    in = (mn_query_plan_in_t){.prefix = "s-", .known = names, .n_known = N};
    assert_int_equal(mn_query_plan(&in, &p, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "matches 257"));
    in.n_known = N - 1; /* exactly the limit */
    assert_int_equal(mn_query_plan(&in, &p, &err), MN_OK);
    assert_int_equal(p.n, MN_QUERY_SPACES_MAX);
    mn_query_plan_clear(&p);
}

/* ---- the missing-partition factor ---- */

static void test_reachable_weighs_spaces_by_their_data(void **state)
{
    (void)state;
    double w[] = {90, 10, 0};
    bool got[] = {false, true, true};
    assert_float_equal(mn_query_reachable(w, got, 3), 0.1f, 1e-6f);
    bool empty_missing[] = {true, true, false};
    assert_float_equal(mn_query_reachable(w, empty_missing, 3), 1.0f, 1e-6f);
    double unknown[] = {-1, 10, 30}; /* unknown: the mean of the known ones, 20 */
    assert_float_equal(mn_query_reachable(unknown, got, 3), 40.0f / 60.0f, 1e-6f);
    assert_float_equal(mn_query_reachable(NULL, got, 3), 2.0f / 3.0f, 1e-6f); /* all weigh 1 */
    double zero[] = {0, 0};
    bool none[] = {false, false};
    assert_float_equal(mn_query_reachable(zero, none, 2), 1.0f, 1e-6f); /* no data missed */
}

static void test_missing_factor_keeps_at_least_half(void **state)
{
    (void)state;
    assert_float_equal(mn_query_missing_factor(1), 1.0f, 1e-6f);
    assert_float_equal(mn_query_missing_factor(0), 0.5f, 1e-6f);
    assert_float_equal(mn_query_missing_factor(0.5f), 0.75f, 1e-6f);
    assert_float_equal(mn_query_missing_factor(NAN), 0.5f, 1e-6f);
    /* the same line as Engram's max(c (1 - 0.5 (1 - r)), 0.5 c) */
    for (float r = 0; r <= 1.0f; r += 0.125f) {
        float c = 0.9f, engram = fmaxf(c * (1 - 0.5f * (1 - r)), 0.5f * c);
        assert_float_equal(c * mn_query_missing_factor(r), engram, 1e-6f);
    }
    mn_confidence_t c = {.value = 0.9f, .category = "high", .reasons = MN_REASON_DECAYED};
    mn_query_confidence_missing(&c, 0.5f);
    assert_float_equal(c.value, 0.675f, 1e-6f);
    assert_string_equal(c.category, "medium");
    assert_int_equal(c.reasons, MN_REASON_DECAYED | MN_REASON_MISSING_PARTITION);
}

/* ---- merge ---- */

static void set_hit(mn_recall_hit_t *h, uint8_t id, float score)
{
    memset(h, 0, sizeof *h);
    mn_memory_init(&h->memory);
    h->memory.id.b[15] = id;
    h->score = score;
}

static void answer_of(mn_query_answer_t *a, const uint8_t *ids, const float *scores, size_t n)
{
    memset(a, 0, sizeof *a);
    a->res.hits = calloc(n, sizeof *a->res.hits);
    a->res.n_hits = n;
    for (size_t i = 0; i < n; i++)
        set_hit(&a->res.hits[i], ids[i], scores[i]);
}

static void test_merge_orders_by_score_then_id_and_drops_duplicates(void **state)
{
    (void)state;
    mn_query_answer_t a[3];
    answer_of(&a[0], (uint8_t[]){5, 3}, (float[]){0.9f, 0.5f}, 2);
    answer_of(&a[1], (uint8_t[]){2, 5, 7}, (float[]){0.5f, 0.4f, 0.95f}, 3); /* 5 again */
    answer_of(&a[2], (uint8_t[]){9}, (float[]){0.99f}, 1);
    a[2].rc = MN_ERR_NOT_FOUND; /* not answered: its hits are not taken */
    mn_query_result_t out = {0};
    mn_error err = {0};
    assert_int_equal(mn_query_merge(a, 3, 4, &out, &err), MN_OK);
    assert_int_equal(out.n_hits, 4);
    uint8_t want_id[] = {7, 5, 2, 3};  /* 0.95, 0.9, then 0.5 by id: 2 before 3 */
    uint32_t want_sp[] = {1, 0, 1, 0}; /* 5 kept where it ranks best (space 0) */
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(out.hits[i].memory.id.b[15], want_id[i]);
        assert_int_equal(out.hit_space[i], want_sp[i]);
    }
    assert_int_equal(a[0].res.n_hits, 0); /* moved out */
    mn_recall_result_clear(&a[2].res);
    mn_query_result_clear(&out);
}

/* A stand-in's score (gossip's mean of cosine and word coverage, ~0.5-1) is on another scale
 * than a space's own hybrid answer (RRF, ~0.03): stand-ins rank after every real hit, by
 * their own score, and a memory both gave is kept where the real answer put it. */
static void test_merge_puts_stand_ins_after_every_real_hit(void **state)
{
    (void)state;
    mn_query_answer_t a[2];
    answer_of(&a[0], (uint8_t[]){3, 4}, (float[]){0.03f, 0.02f}, 2);
    answer_of(&a[1], (uint8_t[]){1, 4, 2}, (float[]){0.6f, 0.99f, 0.9f}, 3);
    a[1].missing = MN_QUERY_MISSING_PARTITION; /* a stand-in's answer */
    mn_query_result_t out = {0};
    mn_error err = {0};
    assert_int_equal(mn_query_merge(a, 2, 4, &out, &err), MN_OK);
    assert_int_equal(out.n_hits, 4);
    uint8_t want_id[] = {3, 4, 2, 1};  /* the real ones, then the stand-ins by score */
    uint32_t want_sp[] = {0, 0, 1, 1}; /* 4 kept where the real answer has it */
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(out.hits[i].memory.id.b[15], want_id[i]);
        assert_int_equal(out.hit_space[i], want_sp[i]);
    }
    mn_query_result_clear(&out);
    /* k smaller than the real hits: no stand-in takes a real one's place */
    answer_of(&a[0], (uint8_t[]){3, 4}, (float[]){0.03f, 0.02f}, 2);
    answer_of(&a[1], (uint8_t[]){1}, (float[]){0.9f}, 1);
    a[1].missing = MN_QUERY_MISSING_PARTITION;
    assert_int_equal(mn_query_merge(a, 2, 2, &out, &err), MN_OK);
    assert_int_equal(out.n_hits, 2);
    assert_int_equal(out.hits[0].memory.id.b[15], 3);
    assert_int_equal(out.hits[1].memory.id.b[15], 4);
    mn_query_result_clear(&out);
}

/* ---- runs on a real engine ---- */

#define DIM 8
#define SPACES 4
#define PER_SPACE 40

typedef struct fx {
    mn_test_eng t;
    mn_query_t *q;
} fx;

static void engine_exec(void *arg, const char *const *spaces, size_t n, const mn_recall_req_t *req,
                        const void *caller, int64_t deadline_ns, mn_query_answer_t *out)
{
    (void)caller;
    (void)deadline_ns;
    for (size_t i = 0; i < n; i++)
        out[i].rc = mn_engine_recall(arg, spaces[i], req, &out[i].res, &out[i].err);
}

static const char *const NAMES[SPACES] = {"q-a", "q-b", "q-c", "q-d"};

static void fill(mn_engine_t *e)
{
    mn_prng_t rng;
    mn_prng_seed(&rng, 19);
    for (int s = 0; s < SPACES; s++) {
        assert_int_equal(mn_test_space(e, NAMES[s], DIM, MN_METRIC_COSINE), MN_OK);
        for (int i = 0; i < PER_SPACE + 10 * s; i++) {
            float v[DIM];
            for (int d = 0; d < DIM; d++)
                v[d] = (float)(mn_prng_double(&rng) - 0.5);
            char text[64];
            snprintf(text, sizeof text, "note %d of %s about apples and pears", i, NAMES[s]);
            mn_memory_t m;
            mn_memory_init(&m);
            m.content = text;
            m.content_len = strlen(text);
            m.embedding = v;
            m.dim = DIM;
            mn_id_t id;
            mn_error err = {0};
            assert_int_equal(mn_engine_remember(e, NAMES[s], &m, 1, &id, &err), MN_OK);
        }
    }
}

static int setup_run(void **state)
{
    fx *f = calloc(1, sizeof *f);
    mn_test_eng_init(&f->t, "mnemo-query");
    mn_test_eng_open(&f->t);
    fill(f->t.e);
    *state = f;
    return 0;
}

static int teardown_run(void **state)
{
    fx *f = *state;
    mn_query_free(f->q);
    mn_test_eng_free(&f->t);
    free(f);
    return 0;
}

static void start(fx *f)
{
    mn_query_holder_t local = {"local", engine_exec, f->t.e, 1};
    mn_query_opts_t o = {.threads = 3, .holders = &local, .n_holders = 1};
    mn_error err = {0};
    assert_int_equal(mn_query_new(&o, &f->q, &err), MN_OK);
}

static mn_recall_req_t cue(const float *v, uint32_t k)
{
    mn_recall_req_t r;
    memset(&r, 0, sizeof r);
    mn_filter_init(&r.filter);
    r.embedding = v;
    r.dim = DIM;
    r.k = k;
    return r;
}

typedef struct flat {
    mn_id_t id;
    float score;
} flat;

static int cmp_flat(const void *pa, const void *pb)
{
    const flat *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return memcmp(a->id.b, b->id.b, 16);
}

/* The spaces' own answers to r, merged by score then id, top k: what a run must give. */
static size_t merged_by_hand(mn_engine_t *e, const mn_recall_req_t *r, flat *out)
{
    size_t n = 0;
    for (int s = 0; s < SPACES; s++) {
        mn_recall_result_t res;
        mn_error err = {0};
        assert_int_equal(mn_engine_recall(e, NAMES[s], r, &res, &err), MN_OK);
        for (size_t i = 0; i < res.n_hits; i++)
            out[n++] = (flat){res.hits[i].memory.id, res.hits[i].score};
        mn_recall_result_clear(&res);
    }
    qsort(out, n, sizeof *out, cmp_flat);
    return n < r->k ? n : r->k;
}

static void check_equal_to_hand_merge(fx *f, mn_recall_req_t *r)
{
    flat want[SPACES * 100];
    size_t n_want = merged_by_hand(f->t.e, r, want);
    mn_query_result_t res;
    mn_error err = {0};
    assert_int_equal(mn_query_run(f->q, NAMES, NULL, SPACES, r, 10000, &res, &err), MN_OK);
    assert_int_equal(res.n_missing, 0);
    assert_float_equal(res.reachable, 1.0f, 0);
    assert_int_equal(res.n_hits, n_want);
    for (size_t i = 0; i < n_want; i++) {
        assert_memory_equal(res.hits[i].memory.id.b, want[i].id.b, 16);
        assert_true(res.hits[i].score == want[i].score); /* the very same score */
        assert_int_equal(res.hits[i].confidence.reasons & MN_REASON_MISSING_PARTITION, 0);
    }
    mn_query_result_clear(&res);
}

static void test_run_equals_the_spaces_answers_merged(void **state)
{
    fx *f = *state;
    start(f);
    const float v[DIM] = {0.3f, -0.2f, 0.1f, 0.4f, -0.1f, 0.2f, 0.0f, -0.3f};
    mn_recall_req_t r = cue(v, 10);
    check_equal_to_hand_merge(f, &r); /* by vector */
    r.spread = true;
    check_equal_to_hand_merge(f, &r); /* activations, many ties: ids decide */
    mn_recall_req_t t = cue(NULL, 25);
    t.dim = 0;
    t.text = "apples";
    t.text_len = 6;
    check_equal_to_hand_merge(f, &t); /* by words */
}

static void test_run_lists_a_stalled_space_as_missing(void **state)
{
    fx *f = *state;
    setenv("MNEMO_TEST_RECALL_STALL", "q-b", 1);
    start(f);
    unsetenv("MNEMO_TEST_RECALL_STALL");
    const float v[DIM] = {0.3f, -0.2f, 0.1f, 0.4f, -0.1f, 0.2f, 0.0f, -0.3f};
    mn_recall_req_t r = cue(v, 5);
    double w[SPACES] = {40, 50, 60, 70}; /* PER_SPACE + 10 s live memories each */
    mn_query_result_t res;
    mn_error err = {0};
    assert_int_equal(mn_query_run(f->q, NAMES, w, SPACES, &r, 1500, &res, &err), MN_OK);
    assert_int_equal(res.n_missing, 1);
    assert_string_equal(NAMES[res.missing[0].space], "q-b");
    assert_string_equal(res.missing[0].reason, MN_QUERY_MISSING_TIMEOUT);
    assert_float_equal(res.reachable, 170.0f / 220.0f, 1e-6f);
    assert_int_equal(res.n_hits, 5);
    float factor = mn_query_missing_factor(res.reachable);
    float best = 0;
    for (size_t i = 0; i < res.n_hits; i++) {
        assert_string_not_equal(NAMES[res.hit_space[i]], "q-b");
        assert_true(res.hits[i].confidence.reasons & MN_REASON_MISSING_PARTITION);
        /* the space's own confidence, times the factor */
        mn_recall_result_t one;
        assert_int_equal(mn_engine_recall(f->t.e, NAMES[res.hit_space[i]], &r, &one, &err), MN_OK);
        bool found = false;
        for (size_t j = 0; j < one.n_hits; j++)
            if (!memcmp(one.hits[j].memory.id.b, res.hits[i].memory.id.b, 16)) {
                assert_float_equal(res.hits[i].confidence.value,
                                   one.hits[j].confidence.value * factor, 1e-6f);
                found = true;
            }
        assert_true(found);
        mn_recall_result_clear(&one);
        best = fmaxf(best, res.hits[i].confidence.value);
    }
    assert_float_equal(res.recall_confidence, best, 0);
    mn_query_result_clear(&res);
}

static void test_run_fails_on_a_cue_that_does_not_fit_a_space(void **state)
{
    fx *f = *state;
    start(f);
    const float v[3] = {1, 0, 0};
    mn_recall_req_t r = cue(v, 5);
    r.dim = 3;
    mn_query_result_t res;
    mn_error err = {0};
    assert_int_equal(mn_query_run(f->q, NAMES, NULL, SPACES, &r, 10000, &res, &err),
                     MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "space q-a: "));
    assert_int_equal(res.n_hits, 0);
    mn_recall_req_t ok = cue(v, 5);
    assert_int_equal(mn_query_run(f->q, NAMES, NULL, SPACES, &ok, 0, &res, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "timeout_ms"));
}

/* A holder whose space "q-d" answers only once the test lets it, after the run gave up on it:
 * the late job must run on the run's own copy of the request (the caller's is freed by then:
 * ASan would see a use after free) and its answer must be dropped, not leaked. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    mn_engine_t *e;
} gate;

static void gated_exec(void *arg, const char *const *spaces, size_t n, const mn_recall_req_t *req,
                       const void *caller, int64_t deadline_ns, mn_query_answer_t *out)
{
    (void)caller;
    gate *g = arg;
    (void)deadline_ns;
    bool late = n == 1 && !strcmp(spaces[0], "q-d");
    pthread_mutex_lock(&g->mu);
    while (late && !g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    for (size_t i = 0; i < n; i++)
        out[i].rc = mn_engine_recall(g->e, spaces[i], req, &out[i].res, &out[i].err);
}

static void test_run_drops_a_late_answer_on_its_own_copy(void **state)
{
    fx *f = *state;
    gate g = {.e = f->t.e};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    mn_query_holder_t h = {"gated", gated_exec, &g, 1};
    mn_query_opts_t o = {.threads = 2, .holders = &h, .n_holders = 1};
    mn_error err = {0};
    assert_int_equal(mn_query_new(&o, &f->q, &err), MN_OK);
    float *v = calloc(DIM, sizeof *v);
    char *text = strdup("apples");
    v[0] = 1;
    mn_recall_req_t r = cue(v, 5);
    r.text = text;
    r.text_len = strlen(text);
    mn_query_result_t res;
    assert_int_equal(mn_query_run(f->q, NAMES, NULL, SPACES, &r, 50, &res, &err), MN_OK);
    free(v); /* the late job must not read these */
    free(text);
    bool d_missing = false;
    for (size_t i = 0; i < res.n_missing; i++)
        if (!strcmp(NAMES[res.missing[i].space], "q-d")) {
            d_missing = true;
            assert_string_equal(res.missing[i].reason, MN_QUERY_MISSING_TIMEOUT);
        }
    assert_true(d_missing);
    for (size_t i = 0; i < res.n_hits; i++)
        assert_string_not_equal(NAMES[res.hit_space[i]], "q-d");
    mn_query_result_clear(&res);
    /* let it answer now (if its job started before the deadline, else the job skips) */
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    mn_query_free(f->q); /* joins: the late job has run and released the run */
    f->q = NULL;
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}

/* Which holder answers a space: "q-d" a remote node, every other space this node. */
static uint32_t d_is_remote(void *arg, const char *space)
{
    (void)arg;
    return !strcmp(space, "q-d");
}

/* A node stalled for the whole run (its exec waits until the test opens its gate) does not
 * starve this node's spaces: with one local thread and as many runs at once as there are
 * remote threads, every run still gets each local space's answer, and "q-d" times out. */
static void test_a_stalled_node_starves_no_local_space(void **state)
{
    fx *f = *state;
    gate g = {.e = f->t.e};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    mn_query_holder_t h[2] = {{"local", engine_exec, f->t.e, 1}, {"stalled", gated_exec, &g, 1}};
    mn_query_opts_t o = {.threads = 1, .remote_threads = 1, .holders = h, .n_holders = 2,
                         .locate = d_is_remote};
    mn_error err = {0};
    assert_int_equal(mn_query_new(&o, &f->q, &err), MN_OK);
    float v[DIM] = {1};
    mn_recall_req_t r = cue(v, 50);
    for (int run = 0; run < 3; run++) { /* the first blocks the remote thread; the others queue */
        mn_query_result_t res;
        assert_int_equal(mn_query_run(f->q, NAMES, NULL, SPACES, &r, 200, &res, &err), MN_OK);
        assert_int_equal(res.n_missing, 1);
        assert_string_equal(NAMES[res.missing[0].space], "q-d");
        assert_string_equal(res.missing[0].reason, MN_QUERY_MISSING_TIMEOUT);
        bool seen[SPACES] = {false};
        for (size_t i = 0; i < res.n_hits; i++)
            seen[res.hit_space[i]] = true;
        for (size_t s = 0; s < SPACES; s++)
            assert_true(seen[s] == (strcmp(NAMES[s], "q-d") != 0));
        mn_query_result_clear(&res);
    }
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    mn_query_free(f->q); /* joins the stalled jobs */
    f->q = NULL;
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}

/* ---- a stand-in's answer, and a run without the penalty ---- */

/* Space "q-b" is answered by a stand-in (the gossip of issue 18): its hits, marked missing. */
static void standin_exec(void *arg, const char *const *spaces, size_t n, const mn_recall_req_t *req,
                         const void *caller, int64_t deadline_ns, mn_query_answer_t *out)
{
    engine_exec(arg, spaces, n, req, caller, deadline_ns, out);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(spaces[i], "q-b")) out[i].missing = MN_QUERY_MISSING_PARTITION;
}

static void test_a_stand_in_is_merged_and_listed_missing(void **state)
{
    fx *f = *state;
    mn_query_holder_t h = {"standin", standin_exec, f->t.e, 1};
    mn_query_opts_t o = {.threads = 2, .holders = &h, .n_holders = 1};
    mn_error err = {0};
    assert_int_equal(mn_query_new(&o, &f->q, &err), MN_OK);
    float v[DIM] = {1};
    mn_recall_req_t r = cue(v, 200);
    mn_query_result_t res, raw;
    assert_int_equal(mn_query_run(f->q, NAMES, NULL, SPACES, &r, 10000, &res, &err), MN_OK);
    assert_int_equal(res.n_missing, 1);
    assert_string_equal(NAMES[res.missing[0].space], "q-b");
    assert_string_equal(res.missing[0].reason, MN_QUERY_MISSING_PARTITION);
    assert_float_equal(res.reachable, 0.75f, 1e-6); /* weights 1 each: 3 of 4 reached */
    bool from_b = false;
    for (size_t i = 0; i < res.n_hits; i++) {
        from_b |= !strcmp(NAMES[res.hit_space[i]], "q-b");
        assert_true(res.hits[i].confidence.reasons & MN_REASON_MISSING_PARTITION);
    }
    assert_true(from_b); /* the stand-in's hits are merged */
    /* no_penalty: the same run, confidences as the spaces gave them */
    mn_query_run_opts_t ro = {.timeout_ms = 10000, .no_penalty = true};
    assert_int_equal(mn_query_run_ex(f->q, NAMES, SPACES, &r, &ro, &raw, &err), MN_OK);
    assert_int_equal(raw.n_hits, res.n_hits);
    for (size_t i = 0; i < raw.n_hits; i++) {
        assert_false(raw.hits[i].confidence.reasons & MN_REASON_MISSING_PARTITION);
        assert_float_equal(res.hits[i].confidence.value,
                           raw.hits[i].confidence.value * mn_query_missing_factor(0.75f), 1e-6);
    }
    mn_query_result_clear(&res);
    mn_query_result_clear(&raw);
}

/* ---- the request copy the jobs own ---- */

static void test_recall_req_dup_outlives_its_source(void **state)
{
    (void)state;
    char text[] = "apples";
    char tag[] = "fruit", key[] = "k", val[] = "v", who[] = "ann";
    char *tags[] = {tag};
    mn_kv_t kv = {key, val};
    float emb[2] = {1, 2};
    mn_recall_req_t r;
    memset(&r, 0, sizeof r);
    mn_filter_init(&r.filter);
    r.embedding = emb;
    r.dim = 2;
    r.text = text;
    r.text_len = 5; /* "apple": the copy ends where text_len says */
    r.filter.tags_any = tags;
    r.filter.n_tags_any = 1;
    r.filter.metadata = &kv;
    r.filter.n_metadata = 1;
    r.filter.who = who;
    mn_recall_req_t *c = mn_recall_req_dup(&r);
    assert_non_null(c);
    memset(text, 'x', 6);
    memset(tag, 'x', 5);
    memset(val, 'x', 1);
    memset(who, 'x', 3);
    emb[0] = 9;
    assert_string_equal(c->text, "apple");
    assert_int_equal(c->text_len, 5);
    assert_float_equal(c->embedding[0], 1.0f, 0);
    assert_string_equal(c->filter.tags_any[0], "fruit");
    assert_string_equal(c->filter.metadata[0].value, "v");
    assert_string_equal(c->filter.who, "ann");
    mn_recall_req_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_list_is_sorted_without_duplicates),
        cmocka_unit_test(test_plan_prefix_expands_to_readable_spaces_only),
        cmocka_unit_test(test_plan_refuses_unreadable_before_unknown),
        cmocka_unit_test(test_plan_bad_input_names_the_field),
        cmocka_unit_test(test_plan_bounds_the_number_of_spaces),
        cmocka_unit_test(test_reachable_weighs_spaces_by_their_data),
        cmocka_unit_test(test_missing_factor_keeps_at_least_half),
        cmocka_unit_test(test_merge_orders_by_score_then_id_and_drops_duplicates),
        cmocka_unit_test(test_merge_puts_stand_ins_after_every_real_hit),
        cmocka_unit_test_setup_teardown(test_run_equals_the_spaces_answers_merged, setup_run,
                                        teardown_run),
        cmocka_unit_test_setup_teardown(test_run_lists_a_stalled_space_as_missing, setup_run,
                                        teardown_run),
        cmocka_unit_test_setup_teardown(test_run_fails_on_a_cue_that_does_not_fit_a_space,
                                        setup_run, teardown_run),
        cmocka_unit_test_setup_teardown(test_run_drops_a_late_answer_on_its_own_copy, setup_run,
                                        teardown_run),
        cmocka_unit_test_setup_teardown(test_a_stand_in_is_merged_and_listed_missing, setup_run,
                                        teardown_run),
        cmocka_unit_test_setup_teardown(test_a_stalled_node_starves_no_local_space, setup_run,
                                        teardown_run),
        cmocka_unit_test(test_recall_req_dup_outlives_its_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
