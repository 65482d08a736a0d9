/* engine: as-of reads see the space as it was: memories created by then,
 * suppressed or not as they were then; a memory deleted or expired after as_of
 * is a redacted entry in lists (its content is erased) and is never ranked by
 * recall; tombstones keep their time across restarts; the as-of index is
 * pruned once no as-of read can reach it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "engine/filter.h"
#include "engine/sweeper.h"
#include "mnemo/engine.h"
#include "testutil.h"

#define T0 1700000000000LL

typedef mn_test_eng fx;

static int setup(void **state)
{
    return mn_test_eng_setup(state, "mnemo-asof", true);
}

static void reopen(fx *f)
{
    mn_test_eng_reopen(f);
}

static mn_id_t remember_at(fx *f, const char *text, float x, int64_t when, int64_t ttl_s)
{
    float v[2] = {x, 1 - x};
    char *tags[1] = {"x"};
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)text;
    m.content_len = strlen(text);
    m.embedding = v;
    m.dim = 2;
    m.when_ms = when;
    m.tags = tags;
    m.n_tags = 1;
    if (ttl_s) m.ttl_seconds = ttl_s;
    mn_id_t id;
    mn_error err = {0};
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &id, &err), MN_OK);
    return id;
}

/* One listed entry, as the test sees it. */
typedef struct seen {
    mn_id_t id;
    bool forgotten, suppressed;
    int64_t forgotten_at;
    char content[64];
} seen;

static size_t list_as_of(fx *f, int64_t as_of, const mn_filter_t *base, seen *out, size_t cap)
{
    mn_list_req_t req = {0};
    if (base)
        req.filter = *base;
    else
        mn_filter_init(&req.filter);
    req.filter.as_of_ms = as_of;
    size_t n = 0;
    char *cursor = NULL;
    for (int page = 0; page < 100; page++) { /* one at a time: pages cross both indexes */
        req.limit = 1;
        req.cursor = cursor;
        mn_list_result_t r;
        mn_error err = {0};
        assert_int_equal(mn_engine_list(f->e, "s", &req, &r, &err), MN_OK);
        for (size_t i = 0; i < r.n && n < cap; i++, n++) {
            out[n].id = r.memories[i].id;
            out[n].forgotten = r.memories[i].forgotten;
            out[n].suppressed = r.memories[i].suppressed;
            out[n].forgotten_at = r.memories[i].forgotten_at_ms;
            snprintf(out[n].content, sizeof out[n].content, "%s",
                     r.memories[i].content ? r.memories[i].content : "(null)");
            if (r.memories[i].forgotten) {
                assert_int_equal(r.memories[i].content_len, 0);
                assert_null(r.memories[i].embedding);
            }
        }
        free(cursor);
        cursor = r.next ? strdup(r.next) : NULL;
        mn_list_result_clear(&r);
        if (!cursor) break;
    }
    free(cursor);
    return n;
}

static size_t recall_as_of(fx *f, int64_t as_of, mn_id_t *ids, bool *suppressed, size_t cap)
{
    float q[2] = {0.9f, 0.1f};
    mn_recall_req_t req = {0};
    req.embedding = q;
    req.dim = 2;
    req.k = 10;
    mn_filter_init(&req.filter);
    req.filter.as_of_ms = as_of;
    req.filter.include_suppressed = false;
    mn_recall_result_t r;
    mn_error err = {0};
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    size_t n = 0;
    for (size_t i = 0; i < r.n_hits && n < cap; i++, n++) {
        ids[n] = r.hits[i].memory.id;
        if (suppressed) suppressed[n] = r.hits[i].memory.suppressed;
    }
    mn_recall_result_clear(&r);
    return n;
}

static bool has(const mn_id_t *ids, size_t n, const mn_id_t *id)
{
    for (size_t i = 0; i < n; i++)
        if (!mn_id_cmp(&ids[i], id)) return true;
    return false;
}

#define SAME(x, y) assert_memory_equal((x).b, (y).b, 16)

typedef struct world {
    mn_id_t a, b, c, d, g;
} world;

/* A (suppressed at +10 s), B (deleted at +40 s), C (suppressed +20..+30 s),
 * D (TTL 100 s), all created at T0; G created at +50 s; now is +200 s. */
static world build(fx *f)
{
    world w;
    assert_int_equal(mn_test_space(f->e, "s", 2, MN_METRIC_COSINE), MN_OK);
    w.a = remember_at(f, "apple pie", 1.0f, T0 - 4000, 0);
    w.b = remember_at(f, "banana bread", 0.95f, T0 - 3000, 0);
    w.c = remember_at(f, "cherry tart", 0.9f, T0 - 2000, 0);
    w.d = remember_at(f, "date cake", 0.85f, T0 - 1000, 100);
    mn_error err = {0};
    f->now = T0 + 10000;
    assert_int_equal(mn_engine_forget(f->e, "s", &w.a, MN_FORGET_SUPPRESS, &err), MN_OK);
    f->now = T0 + 20000;
    assert_int_equal(mn_engine_forget(f->e, "s", &w.c, MN_FORGET_SUPPRESS, &err), MN_OK);
    f->now = T0 + 30000;
    assert_int_equal(mn_engine_unsuppress(f->e, "s", &w.c, &err), MN_OK);
    f->now = T0 + 40000;
    assert_int_equal(mn_engine_forget(f->e, "s", &w.b, MN_FORGET_DELETE, &err), MN_OK);
    f->now = T0 + 50000;
    w.g = remember_at(f, "fig jam", 0.2f, T0 + 50000, 0);
    f->now = T0 + 200000; /* D expired at +100 s; not swept yet */
    return w;
}

/* What the views at +5 s and +25 s must show. */
static void check_early_views(fx *f, const world *w)
{
    seen s[16];
    /* +5 s: everything but G was there, nothing hidden yet */
    size_t n = list_as_of(f, T0 + 5000, NULL, s, 16);
    assert_int_equal(n, 4);
    SAME(s[0].id, w->a);
    assert_false(s[0].forgotten);
    assert_false(s[0].suppressed); /* not yet, then */
    assert_string_equal(s[0].content, "apple pie");
    SAME(s[1].id, w->b);
    assert_true(s[1].forgotten);
    assert_int_equal(s[1].forgotten_at, T0 + 40000);
    assert_string_equal(s[1].content, "");
    SAME(s[2].id, w->c);
    assert_false(s[2].forgotten);
    assert_string_equal(s[2].content, "cherry tart");
    SAME(s[3].id, w->d);
    assert_true(s[3].forgotten);
    assert_int_equal(s[3].forgotten_at, T0 + 100000); /* when its TTL ran out */
    /* recall ranks what has content only */
    mn_id_t ids[16];
    bool sup[16];
    n = recall_as_of(f, T0 + 5000, ids, sup, 16);
    assert_int_equal(n, 2);
    assert_true(has(ids, n, &w->a) && has(ids, n, &w->c));
    for (size_t i = 0; i < n; i++)
        assert_false(sup[i]);
    /* +25 s: A and C were suppressed then */
    n = list_as_of(f, T0 + 25000, NULL, s, 16);
    assert_int_equal(n, 2);
    SAME(s[0].id, w->b);
    SAME(s[1].id, w->d);
    assert_true(s[0].forgotten && s[1].forgotten);
    mn_filter_t fl;
    mn_filter_init(&fl);
    fl.include_suppressed = true;
    n = list_as_of(f, T0 + 25000, &fl, s, 16);
    assert_int_equal(n, 4);
    assert_true(s[0].suppressed && !s[0].forgotten); /* A */
    assert_true(s[2].suppressed && !s[2].forgotten); /* C */
    assert_int_equal(recall_as_of(f, T0 + 25000, ids, NULL, 16), 0);
}

static void test_as_of_views_show_what_was_there(void **state)
{
    fx *f = *state;
    world w = build(f);
    check_early_views(f, &w);
    seen s[16];
    mn_id_t ids[16];
    /* +35 s: C unsuppressed again, A still suppressed */
    size_t n = list_as_of(f, T0 + 35000, NULL, s, 16);
    assert_int_equal(n, 3);
    SAME(s[0].id, w.b);
    SAME(s[1].id, w.c);
    assert_false(s[1].suppressed);
    SAME(s[2].id, w.d);
    /* +45 s: B was gone by then, not even redacted */
    n = list_as_of(f, T0 + 45000, NULL, s, 16);
    assert_int_equal(n, 2);
    SAME(s[0].id, w.c);
    SAME(s[1].id, w.d);
    /* +60 s: G is there */
    n = list_as_of(f, T0 + 60000, NULL, s, 16);
    assert_int_equal(n, 3);
    SAME(s[2].id, w.g);
    n = recall_as_of(f, T0 + 60000, ids, NULL, 16);
    assert_true(has(ids, n, &w.g) && has(ids, n, &w.c) && !has(ids, n, &w.d));
    /* now (no as-of): C and G; A suppressed, B deleted, D expired */
    mn_list_req_t req = {0};
    mn_filter_init(&req.filter);
    mn_list_result_t r;
    mn_error err = {0};
    assert_int_equal(mn_engine_list(f->e, "s", &req, &r, &err), MN_OK);
    assert_int_equal(r.n, 2);
    for (size_t i = 0; i < r.n; i++)
        assert_false(r.memories[i].forgotten);
    mn_list_result_clear(&r);

    /* the sweep keeps D's time: expired at +100 s, not swept at +200 s */
    size_t expired = 0;
    assert_int_equal(mn_engine_expire(f->e, &expired, &err), MN_OK);
    assert_int_equal(expired, 1);
    check_early_views(f, &w);
    /* and a restart keeps it all */
    reopen(f);
    check_early_views(f, &w);
}

static void test_as_of_filters_on_redacted_entries(void **state)
{
    fx *f = *state;
    world w = build(f);
    seen s[16];
    mn_filter_t fl;
    mn_filter_init(&fl);
    /* tags cannot be checked on what is left of B and D: they stay out */
    char *tags[1] = {"x"};
    fl.tags_any = tags;
    fl.n_tags_any = 1;
    size_t n = list_as_of(f, T0 + 5000, &fl, s, 16);
    assert_int_equal(n, 2);
    SAME(s[0].id, w.a);
    SAME(s[1].id, w.c);
    /* kind and when can */
    mn_filter_init(&fl);
    fl.when_from_ms = T0 - 3000;
    fl.when_to_ms = T0 - 1500;
    n = list_as_of(f, T0 + 5000, &fl, s, 16);
    assert_int_equal(n, 2);
    SAME(s[0].id, w.b);
    assert_true(s[0].forgotten);
    SAME(s[1].id, w.c);
    mn_filter_init(&fl);
    fl.kind = MN_KIND_SEMANTIC;
    assert_int_equal(list_as_of(f, T0 + 5000, &fl, s, 16), 0);
    /* reminisce without a topic lists, redacted entries included */
    mn_reminisce_req_t rq = {0};
    mn_filter_init(&rq.filter);
    rq.filter.as_of_ms = T0 + 5000;
    mn_list_result_t r;
    mn_error err = {0};
    assert_int_equal(mn_engine_reminisce(f->e, "s", &rq, &r, &err), MN_OK);
    assert_int_equal(r.n, 4);
    assert_true(r.memories[1].forgotten);
    mn_list_result_clear(&r);
}

static size_t count_gone_keys(fx *f)
{
    mn_engine_t *e = (mn_engine_t *)f->e;
    mn__space *sp = mn__registry_acquire(&e->reg, "s");
    uint8_t pre[KEY_SID_LEN + 1];
    mn__key_sid(pre, sp->sid);
    mn__space_unref(sp);
    size_t n = 0;
    for (int which = 0; which < 2; which++) {
        pre[KEY_SID_LEN] = which ? 'G' : 'g';
        rocksdb_iterator_t *it =
            rocksdb_create_iterator_cf(e->store.db, e->store.ropts, e->store.cf[CF_INDEX]);
        for (rocksdb_iter_seek(it, (const char *)pre, sizeof pre); rocksdb_iter_valid(it);
             rocksdb_iter_next(it)) {
            size_t kl;
            const char *k = rocksdb_iter_key(it, &kl);
            if (kl < sizeof pre || memcmp(k, pre, sizeof pre)) break;
            n++;
        }
        rocksdb_iter_destroy(it);
    }
    return n;
}

static void test_as_of_index_is_pruned_past_the_reachable_age(void **state)
{
    fx *f = *state;
    world w = build(f);
    (void)w;
    mn_error err = {0};
    size_t expired = 0;
    assert_int_equal(mn_engine_expire(f->e, &expired, &err), MN_OK);
    assert_int_equal(count_gone_keys(f), 4); /* B and D, by when and by time gone */
    assert_int_equal(mn__prune_gone((mn_engine_t *)f->e, &err), MN_OK);
    assert_int_equal(count_gone_keys(f), 4);        /* still reachable */
    f->now = T0 + 100000 + 30LL * 86400 * 1000 - 1; /* D's time is still within reach */
    assert_int_equal(mn__prune_gone((mn_engine_t *)f->e, &err), MN_OK);
    assert_int_equal(count_gone_keys(f), 2);
    f->now += 2;
    assert_int_equal(mn__prune_gone((mn_engine_t *)f->e, &err), MN_OK);
    assert_int_equal(count_gone_keys(f), 0);
    /* the oldest view there can be: C and G, nothing redacted (D expired before it) */
    seen s[16];
    size_t n = list_as_of(f, f->now - 30LL * 86400 * 1000, NULL, s, 16);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        assert_false(s[i].forgotten);
}

static void test_as_of_follows_created_at_of_semantic_memories(void **state)
{
    fx *f = *state;
    assert_int_equal(mn_test_space(f->e, "s", 2, MN_METRIC_COSINE), MN_OK);
    for (int i = 0; i < 3; i++) {
        f->now = T0 + i * 1000;
        remember_at(f, "the same thought", 1.0f - 0.001f * (float)i, f->now, 0);
    }
    f->now = T0 + 10000;
    mn_consolidate_opts_t opts = {.threshold = 0.9f, .min_support = 3};
    mn_consolidate_result_t r;
    mn_error err = {0};
    assert_int_equal(mn_engine_consolidate(f->e, "s", &opts, &r, &err), MN_OK);
    assert_int_equal(r.created, 1);
    mn_id_t sem = r.ids[0];
    free(r.ids);
    mn_memory_t m;
    assert_int_equal(mn_engine_get(f->e, "s", &sem, false, &m, &err), MN_OK);
    int64_t created = m.created_at_ms;
    mn_memory_clear(&m);
    f->now = T0 + 20000;
    mn_filter_t fl;
    mn_filter_init(&fl);
    fl.kind = MN_KIND_SEMANTIC;
    seen s[4];
    /* whatever consolidation says created_at is, the view follows it */
    assert_int_equal(list_as_of(f, created - 1, &fl, s, 4), 0);
    assert_int_equal(list_as_of(f, created, &fl, s, 4), 1);
    SAME(s[0].id, sem);
}

static void test_suppressed_at_rules(void **state)
{
    (void)state;
    /* suppressed now, since 100 */
    assert_false(mn__filter_suppressed_at(true, 100, 0, 99));
    assert_true(mn__filter_suppressed_at(true, 100, 0, 100));
    /* suppressed 100..200 */
    assert_false(mn__filter_suppressed_at(false, 100, 200, 99));
    assert_true(mn__filter_suppressed_at(false, 100, 200, 150));
    assert_false(mn__filter_suppressed_at(false, 100, 200, 200));
    /* never suppressed */
    assert_false(mn__filter_suppressed_at(false, 0, 0, 5));
    /* suppressed before its time was recorded: hidden at every time */
    assert_true(mn__filter_suppressed_at(true, 0, 0, 5));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_as_of_views_show_what_was_there, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_as_of_filters_on_redacted_entries, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_as_of_index_is_pruned_past_the_reachable_age, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_as_of_follows_created_at_of_semantic_memories, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test(test_suppressed_at_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
