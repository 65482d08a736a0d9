/* Exact duplicates on the way in (engine/dedup.c): a remember equal to a live
 * memory (normalised content, context, embedding) gets its id and writes
 * nothing; concurrent identical remembers store exactly one; the index
 * survives a restart and forgets with its memory. */
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
#include "engine/engine_internal.h"
#include "mnemo/engine.h"
#include "testutil.h"

typedef mn_test_eng fx;

static int setup(void **state)
{
    return mn_test_eng_setup(state, "mnemo-dedup", true);
}

static void make_space(fx *f, const char *name, mn_dedup_mode_t mode)
{
    mn_space_def_t d = {0};
    snprintf(d.name, sizeof d.name, "%s", name);
    d.dim = 2;
    d.dedup = mode;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_create(f->e, &d, NULL, &err), MN_OK);
}

static mn_memory_t mem(const char *content, float *v)
{
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)content;
    m.content_len = strlen(content);
    m.embedding = v;
    m.dim = v ? 2 : 0;
    return m;
}

/* Remembers m; *dup says whether it was a duplicate. */
static mn_id_t put(fx *f, const char *space, const mn_memory_t *m, bool *dup)
{
    mn_id_t id;
    bool d = true;
    mn_error err = {0};
    assert_int_equal(mn_engine_remember_dedup(f->e, space, m, 1, &id, &d, &err), MN_OK);
    if (dup) *dup = d;
    return id;
}

static uint64_t live(fx *f, const char *space)
{
    mn_space_stats_t st;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_get(f->e, space, &st, &err), MN_OK);
    return st.memories;
}

static uint64_t last_lsn(fx *f, const char *space)
{
    mn_space_stats_t st;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_get(f->e, space, &st, &err), MN_OK);
    return st.last_lsn;
}

static void test_exact_duplicate_gets_the_existing_id_and_writes_nothing(void **state)
{
    fx *f = *state;
    make_space(f, "s", MN_DEDUP_EXACT);
    float v[2] = {1, 0};
    mn_memory_t m = mem("the kettle is broken", v);
    bool dup;
    mn_id_t a = put(f, "s", &m, &dup);
    assert_false(dup);
    uint64_t lsn = last_lsn(f, "s");
    f->now += 60000;
    mn_id_t b = put(f, "s", &m, &dup);
    assert_true(dup);
    assert_memory_equal(a.b, b.b, 16);
    assert_int_equal(live(f, "s"), 1);
    assert_int_equal(last_lsn(f, "s"), lsn); /* no WAL entry */
    /* the plain remember answers the same id */
    mn_id_t c;
    mn_error err = {0};
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &c, &err), MN_OK);
    assert_memory_equal(a.b, c.b, 16);
}

static void test_whitespace_is_normalised_and_case_kept(void **state)
{
    fx *f = *state;
    make_space(f, "s", MN_DEDUP_EXACT);
    mn_memory_t m = mem("the kettle is broken", NULL);
    mn_id_t a = put(f, "s", &m, NULL);
    bool dup;
    /* tabs, newlines, runs, ends, a no-break space (U+00A0), an ideographic space (U+3000) */
    const char *same[] = {"  the kettle\tis\n\nbroken  ", "the\xc2\xa0kettle is broken",
                          "the kettle\xe3\x80\x80is   broken\r\n"};
    for (size_t i = 0; i < 3; i++) {
        mn_memory_t x = mem(same[i], NULL);
        mn_id_t b = put(f, "s", &x, &dup);
        assert_true(dup);
        assert_memory_equal(a.b, b.b, 16);
    }
    const char *other[] = {"The kettle is broken", "thekettle is broken", "the kettle is broken."};
    for (size_t i = 0; i < 3; i++) {
        mn_memory_t x = mem(other[i], NULL);
        put(f, "s", &x, &dup);
        assert_false(dup);
    }
    assert_int_equal(live(f, "s"), 4);
}

static void test_context_embedding_or_given_time_that_differs_is_not_a_duplicate(void **state)
{
    fx *f = *state;
    make_space(f, "s", MN_DEDUP_EXACT);
    float v[2] = {1, 0}, w[2] = {1, 0.5f};
    char *ann_bob[] = {"ann", "bob"}, *bob_ann[] = {"bob", "ann"};
    mn_memory_t m = mem("ok", v);
    m.session = "s1";
    m.where = "kitchen";
    m.who = ann_bob;
    m.n_who = 2;
    mn_id_t a = put(f, "s", &m, NULL);
    bool dup;
    mn_memory_t x = m;
    x.who = bob_ann; /* who is a set */
    mn_id_t b = put(f, "s", &x, &dup);
    assert_true(dup);
    assert_memory_equal(a.b, b.b, 16);
    x = m;
    x.session = "s2";
    put(f, "s", &x, &dup);
    assert_false(dup);
    x = m;
    x.where = NULL;
    put(f, "s", &x, &dup);
    assert_false(dup);
    x = m;
    x.n_who = 1;
    put(f, "s", &x, &dup);
    assert_false(dup);
    x = m;
    x.embedding = w;
    put(f, "s", &x, &dup);
    assert_false(dup);
    x = m;
    x.embedding = NULL;
    x.dim = 0;
    put(f, "s", &x, &dup);
    assert_false(dup);
    /* "ok" said again at a time the caller gives is another episode */
    x = m;
    x.when_ms = f->now - 5000;
    put(f, "s", &x, &dup);
    assert_false(dup);
    assert_int_equal(live(f, "s"), 7);
}

static void test_dedup_off_stores_every_copy(void **state)
{
    fx *f = *state;
    make_space(f, "s", MN_DEDUP_OFF);
    mn_memory_t m = mem("again", NULL);
    bool dup;
    mn_id_t a = put(f, "s", &m, &dup);
    mn_id_t b = put(f, "s", &m, &dup);
    assert_false(dup);
    assert_memory_not_equal(a.b, b.b, 16);
    assert_int_equal(live(f, "s"), 2);
    mn_space_stats_t st;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_int_equal(st.def.dedup, MN_DEDUP_OFF);
}

static void test_forgotten_or_suppressed_original_is_stored_anew(void **state)
{
    fx *f = *state;
    make_space(f, "s", MN_DEDUP_EXACT);
    mn_memory_t m = mem("a passing thought", NULL);
    mn_error err = {0};
    bool dup;
    mn_id_t a = put(f, "s", &m, NULL);
    assert_int_equal(mn_engine_forget(f->e, "s", &a, MN_FORGET_DELETE, &err), MN_OK);
    mn_id_t b = put(f, "s", &m, &dup);
    assert_false(dup);
    assert_memory_not_equal(a.b, b.b, 16);
    assert_int_equal(mn_engine_forget(f->e, "s", &b, MN_FORGET_SUPPRESS, &err), MN_OK);
    mn_id_t c = put(f, "s", &m, &dup);
    assert_false(dup);
    assert_memory_not_equal(b.b, c.b, 16);
    /* the newest holds the hash now: forgetting the suppressed one leaves it */
    assert_int_equal(mn_engine_forget(f->e, "s", &b, MN_FORGET_DELETE, &err), MN_OK);
    mn_id_t d = put(f, "s", &m, &dup);
    assert_true(dup);
    assert_memory_equal(c.b, d.b, 16);
}

static void test_restart_keeps_the_index_and_the_option(void **state)
{
    fx *f = *state;
    make_space(f, "s", MN_DEDUP_EXACT);
    make_space(f, "o", MN_DEDUP_OFF);
    float v[2] = {0.5f, 0.5f};
    mn_memory_t m = mem("kept across restarts", v);
    mn_id_t a = put(f, "s", &m, NULL);
    put(f, "o", &m, NULL);
    mn_test_eng_reopen(f);
    bool dup;
    mn_id_t b = put(f, "s", &m, &dup);
    assert_true(dup);
    assert_memory_equal(a.b, b.b, 16);
    put(f, "o", &m, &dup);
    assert_false(dup);
    assert_int_equal(live(f, "o"), 2);
}

static void test_batch_duplicates_within_and_against_the_store(void **state)
{
    fx *f = *state;
    make_space(f, "s", MN_DEDUP_EXACT);
    mn_memory_t old = mem("stored before", NULL);
    mn_id_t o = put(f, "s", &old, NULL);
    mn_memory_t ms[4] = {mem("one", NULL), mem(" one ", NULL), mem("stored  before", NULL),
                         mem("two", NULL)};
    mn_id_t ids[6];
    bool dups[4];
    mn_error err = {0};
    assert_int_equal(mn_engine_remember_dedup(f->e, "s", ms, 4, ids, dups, &err), MN_OK);
    assert_false(dups[0]);
    assert_true(dups[1]);
    assert_memory_equal(ids[0].b, ids[1].b, 16);
    assert_true(dups[2]);
    assert_memory_equal(ids[2].b, o.b, 16);
    assert_false(dups[3]);
    assert_int_equal(live(f, "s"), 3);
}

static void test_an_idempotency_key_seen_before_wins(void **state)
{
    fx *f = *state;
    make_space(f, "s", MN_DEDUP_EXACT);
    mn_memory_t m = mem("content A", NULL);
    m.idempotency_key = "k1";
    mn_id_t a = put(f, "s", &m, NULL);
    bool dup;
    mn_memory_t x = mem("content B", NULL); /* a retry of k1: its id, whatever the content */
    x.idempotency_key = "k1";
    mn_id_t b = put(f, "s", &x, &dup);
    assert_false(dup);
    assert_memory_equal(a.b, b.b, 16);
    x = mem("content A", NULL); /* a new key, the same content: a duplicate */
    x.idempotency_key = "k2";
    mn_id_t c = put(f, "s", &x, &dup);
    assert_true(dup);
    assert_memory_equal(a.b, c.b, 16);
    assert_int_equal(live(f, "s"), 1);
}

static void test_space_options_are_checked_and_kept(void **state)
{
    fx *f = *state;
    mn_space_def_t d = {0};
    snprintf(d.name, sizeof d.name, "t");
    d.dim = 2;
    d.dedup_threshold = 1.5f;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_create(f->e, &d, NULL, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "dedup_threshold"));
    d.dedup_threshold = 0.95f;
    d.dedup = (mn_dedup_mode_t)7;
    assert_int_equal(mn_engine_space_create(f->e, &d, NULL, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "dedup"));
    d.dedup = MN_DEDUP_OFF;
    assert_int_equal(mn_engine_space_create(f->e, &d, NULL, &err), MN_OK);
    mn_test_eng_reopen(f);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->e, "t", &st, &err), MN_OK);
    assert_int_equal(st.def.dedup, MN_DEDUP_OFF);
    assert_true(st.def.dedup_threshold == 0.95f);
}

/* ---- near-duplicates: linked in the background, folded by recall ---- */

/* The other end of id's outgoing duplicate edge (*found says). */
static mn_id_t duplicate_of(fx *f, const mn_id_t *id, bool *found)
{
    mn_assoc_t *as = NULL;
    size_t n = 0;
    mn_error err = {0};
    assert_int_equal(mn_engine_associations(f->e, "s", id, &as, &n, &err), MN_OK);
    mn_id_t to = {{0}};
    *found = false;
    for (size_t i = 0; i < n; i++)
        if (as[i].kind == MN_EDGE_DUPLICATE && as[i].outgoing) {
            assert_false(*found); /* one canonical */
            to = as[i].other;
            *found = true;
        }
    free(as);
    return to;
}

static void near_dup_space(fx *f, mn_id_t *ids)
{
    f->opts.link_max = 5; /* the background linker finds near-duplicates */
    mn_test_eng_reopen(f);
    mn_space_def_t d = {0};
    snprintf(d.name, sizeof d.name, "s");
    d.dim = 2;
    d.dedup_threshold = 0.99f;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_create(f->e, &d, NULL, &err), MN_OK);
    float va[2] = {1, 0}, vb[2] = {1, 0.02f}, vc[2] = {1, -0.03f}, vd[2] = {0.6f, 0.8f};
    mn_memory_t a = mem("the meeting moved to 3pm", va), b = mem("meeting moved to 3 pm", vb),
                c = mem("the meeting is now at 3pm", vc), o = mem("lunch with ann", vd);
    ids[0] = put(f, "s", &a, NULL);
    __atomic_add_fetch(&f->now, 1000, __ATOMIC_SEQ_CST); /* the linker thread reads it */
    ids[1] = put(f, "s", &b, NULL);
    __atomic_add_fetch(&f->now, 1000, __ATOMIC_SEQ_CST); /* the linker thread reads it */
    ids[2] = put(f, "s", &c, NULL);
    ids[3] = put(f, "s", &o, NULL);
    /* two more of the group: with k = 2 its five fill the first ranking (2k deep) */
    float ve[2] = {1, 0.01f}, vf[2] = {1, -0.01f};
    mn_memory_t x = mem("meeting: 3pm now", ve), y = mem("3pm is the meeting", vf);
    ids[4] = put(f, "s", &x, NULL);
    ids[5] = put(f, "s", &y, NULL);
    mn_engine_wait_background(f->e);
}

static void test_near_duplicates_link_to_the_oldest_of_their_group(void **state)
{
    fx *f = *state;
    mn_id_t ids[6];
    near_dup_space(f, ids);
    bool found;
    duplicate_of(f, &ids[0], &found);
    assert_false(found); /* the canonical */
    mn_id_t to = duplicate_of(f, &ids[1], &found);
    assert_true(found);
    assert_memory_equal(to.b, ids[0].b, 16);
    to = duplicate_of(f, &ids[2], &found); /* nearest may be b: still linked to a */
    assert_true(found);
    assert_memory_equal(to.b, ids[0].b, 16);
    duplicate_of(f, &ids[3], &found);
    assert_false(found);
    for (int i = 4; i < 6; i++) {
        to = duplicate_of(f, &ids[i], &found);
        assert_true(found);
        assert_memory_equal(to.b, ids[0].b, 16);
    }
    assert_int_equal(live(f, "s"), 6); /* all stored */
    mn_test_eng_reopen(f);             /* the links are durable */
    to = duplicate_of(f, &ids[2], &found);
    assert_true(found);
    assert_memory_equal(to.b, ids[0].b, 16);
}

static mn_recall_result_t recall_k2(fx *f, bool keep, bool spread)
{
    float q[2] = {1, 0.001f};
    mn_recall_req_t r = {0};
    r.embedding = q;
    r.dim = 2;
    r.k = 2;
    mn_filter_init(&r.filter);
    r.keep_duplicates = keep;
    r.spread = spread;
    mn_recall_result_t res;
    mn_error err = {0};
    assert_int_equal(mn_engine_recall(f->e, "s", &r, &res, &err), MN_OK);
    return res;
}

static bool has_id(const mn_id_t *ids, size_t n, const mn_id_t *id)
{
    for (size_t i = 0; i < n; i++)
        if (!mn_id_cmp(&ids[i], id)) return true;
    return false;
}

static void test_recall_folds_near_duplicates_and_still_returns_k(void **state)
{
    fx *f = *state;
    mn_id_t ids[6];
    near_dup_space(f, ids);
    for (int spread = 0; spread < 2; spread++) {
        mn_recall_result_t res = recall_k2(f, false, spread);
        /* the five of a group are one result; the other still comes (ranked deeper) */
        assert_int_equal(res.n_hits, 2);
        mn_id_t group[5] = {ids[0], ids[1], ids[2], ids[4], ids[5]};
        assert_true(has_id(group, 5, &res.hits[0].memory.id));
        assert_int_equal(res.hits[0].duplicates, 4);
        for (uint32_t i = 0; i < 4; i++) {
            assert_true(has_id(group, 5, &res.hits[0].duplicate_ids[i]));
            assert_memory_not_equal(res.hits[0].duplicate_ids[i].b, res.hits[0].memory.id.b, 16);
        }
        assert_memory_equal(res.hits[1].memory.id.b, ids[3].b, 16);
        assert_int_equal(res.hits[1].duplicates, 0);
        mn_recall_result_clear(&res);
    }
    mn_recall_result_t res = recall_k2(f, true, false); /* collapse_duplicates: false */
    assert_int_equal(res.n_hits, 2);
    mn_id_t group[5] = {ids[0], ids[1], ids[2], ids[4], ids[5]};
    assert_true(has_id(group, 5, &res.hits[0].memory.id));
    assert_true(has_id(group, 5, &res.hits[1].memory.id));
    assert_int_equal(res.hits[0].duplicates + res.hits[1].duplicates, 0);
    mn_recall_result_clear(&res);
}

/* ---- concurrency: identical remembers from many threads store one ---- */

typedef struct writer {
    fx *f;
    int per;
    mn_id_t first;
    int differing, failures, stored;
} writer;

static void *write_same(void *arg)
{
    writer *w = arg;
    float v[2] = {0.25f, 0.75f};
    mn_memory_t m = mem("everyone says this at once", v);
    m.session = "race";
    for (int i = 0; i < w->per; i++) {
        mn_id_t id;
        bool dup = false;
        if (mn_engine_remember_dedup(w->f->e, "s", &m, 1, &id, &dup, NULL)) {
            w->failures++;
            continue;
        }
        w->stored += !dup;
        if (i == 0) w->first = id;
        if (mn_id_cmp(&id, &w->first)) w->differing++;
    }
    return NULL;
}

static void run_writers(fx *f, writer *w, int n, int per, bool held)
{
    pthread_t th[16];
    if (held) mn__commit_hold(f->e, true);
    for (int i = 0; i < n; i++) {
        w[i] = (writer){.f = f, .per = per};
        assert_int_equal(pthread_create(&th[i], NULL, write_same, &w[i]), 0);
    }
    if (held) { /* every writer queued behind the held committer: one group (10 s deadline) */
        for (int waited = 0; mn__commit_queued(f->e) < (size_t)n; waited++) {
            assert_true(waited < 10000);
            struct timespec ts = {0, 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        mn__commit_hold(f->e, false);
    }
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

static void assert_one_stored(fx *f, const writer *w, int n)
{
    int stored = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(w[i].failures, 0);
        assert_int_equal(w[i].differing, 0);
        assert_memory_equal(w[i].first.b, w[0].first.b, 16);
        stored += w[i].stored;
    }
    assert_int_equal(stored, 1);
    assert_int_equal(live(f, "s"), 1);
}

static void test_concurrent_identical_remembers_in_one_group_store_one(void **state)
{
    fx *f = *state;
    make_space(f, "s", MN_DEDUP_EXACT);
    enum { T = 12 };
    writer w[T];
    run_writers(f, w, T, 1, true);
    assert_one_stored(f, w, T);
    assert_int_equal(last_lsn(f, "s"), 2); /* create, one remember */
}

static void test_concurrent_identical_remembers_from_many_threads_store_one(void **state)
{
    fx *f = *state;
    make_space(f, "s", MN_DEDUP_EXACT);
    enum { T = 8, PER = 50 };
    writer w[T];
    run_writers(f, w, T, PER, false);
    assert_one_stored(f, w, T);
    mn_test_eng_reopen(f); /* and so it stays */
    assert_int_equal(live(f, "s"), 1);
}

/* A correction of the content of memory id in space. */
static void correct(fx *f, const char *space, const mn_id_t *id, const char *text)
{
    mn_update_req_t r = {0};
    r.content = text;
    r.content_len = strlen(text);
    mn_error err = {0};
    assert_int_equal(mn_engine_update(f->e, space, id, &r, NULL, &err), MN_OK);
}

/* A correction moves the lineage's dedup entry: the corrected text is a duplicate of the
 * lineage (its id), the old text is not any more; across a restart too. */
static void test_a_correction_moves_the_dedup_entry_to_the_new_content(void **state)
{
    fx *f = *state;
    make_space(f, "s", MN_DEDUP_EXACT);
    mn_memory_t mon = mem("the meeting is on monday", NULL);
    mn_memory_t tue = mem("the meeting is on tuesday", NULL);
    mn_memory_t wed = mem("the meeting is on wednesday", NULL);
    bool dup;
    mn_id_t a = put(f, "s", &mon, NULL);
    correct(f, "s", &a, "the meeting is on tuesday");
    mn_id_t b = put(f, "s", &tue, &dup);
    assert_true(dup);
    assert_memory_equal(a.b, b.b, 16); /* the lineage id, not the version's */
    mn_id_t c = put(f, "s", &mon, &dup);
    assert_false(dup);
    assert_memory_not_equal(a.b, c.b, 16);
    mn_test_eng_reopen(f);
    b = put(f, "s", &tue, &dup);
    assert_true(dup);
    assert_memory_equal(a.b, b.b, 16);
    b = put(f, "s", &mon, &dup);
    assert_true(dup);
    assert_memory_equal(c.b, b.b, 16);
    /* a second correction moves it again; a forget of the lineage takes it away */
    correct(f, "s", &a, "the meeting is on wednesday");
    b = put(f, "s", &wed, &dup);
    assert_true(dup);
    assert_memory_equal(a.b, b.b, 16);
    mn_id_t d = put(f, "s", &tue, &dup);
    assert_false(dup);
    assert_memory_not_equal(a.b, d.b, 16);
    mn_error err = {0};
    assert_int_equal(mn_engine_forget(f->e, "s", &a, MN_FORGET_DELETE, &err), MN_OK);
    b = put(f, "s", &wed, &dup);
    assert_false(dup);
    assert_memory_not_equal(a.b, b.b, 16);
}

/* With dedup off a correction writes no dedup entry: the corrected text is stored again. */
static void test_a_correction_in_a_space_without_dedup_indexes_nothing(void **state)
{
    fx *f = *state;
    make_space(f, "o", MN_DEDUP_OFF);
    mn_memory_t mon = mem("the meeting is on monday", NULL);
    mn_memory_t tue = mem("the meeting is on tuesday", NULL);
    bool dup;
    mn_id_t a = put(f, "o", &mon, NULL);
    correct(f, "o", &a, "the meeting is on tuesday");
    mn_id_t b = put(f, "o", &tue, &dup);
    assert_false(dup);
    assert_memory_not_equal(a.b, b.b, 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_correction_moves_the_dedup_entry_to_the_new_content,
                                        setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_a_correction_in_a_space_without_dedup_indexes_nothing,
                                        setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(
            test_exact_duplicate_gets_the_existing_id_and_writes_nothing, setup,
            mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_whitespace_is_normalised_and_case_kept, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(
            test_context_embedding_or_given_time_that_differs_is_not_a_duplicate, setup,
            mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_dedup_off_stores_every_copy, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_forgotten_or_suppressed_original_is_stored_anew, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_the_index_and_the_option, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_batch_duplicates_within_and_against_the_store, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_an_idempotency_key_seen_before_wins, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_near_duplicates_link_to_the_oldest_of_their_group,
                                        setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_recall_folds_near_duplicates_and_still_returns_k,
                                        setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_space_options_are_checked_and_kept, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_identical_remembers_in_one_group_store_one,
                                        setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(
            test_concurrent_identical_remembers_from_many_threads_store_one, setup,
            mn_test_eng_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
