/* cluster_hints_store: the hints of partition writes on a real directory. A hint keeps the
 * ids chosen for it (api_hint_id) and survives a reopen; an idempotency key pending answers
 * its first id and keeps nothing twice; the cap refuses what would pass it and keeps nothing;
 * removing deletes the file (or sets it aside as rejected); a file that does not decode is
 * set aside at open and a leftover *.tmp is dropped. The primary's side
 * (mn_engine_remember_hinted): the ids and times are kept, a re-sent hint stores nothing twice,
 * a key the space has seen answers its first id, and a hint needs its ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/cluster_hints.h"
#include "mnemo/wire.h"
#include "testutil.h"

static const float VEC[4] = {0.9f, 0.1f, 0.05f, 0.02f};

static mn_memory_t mem(const char *content, const char *key)
{
    mn_memory_t m;
    memset(&m, 0, sizeof m);
    m.kind = MN_KIND_EPISODIC;
    m.content = (char *)content;
    m.content_len = strlen(content);
    m.embedding = (float *)VEC;
    m.dim = 4;
    m.when_ms = MN_TIME_UNSET;
    m.confidence = 1.0f;
    m.importance = 0.5f;
    m.idempotency_key = (char *)key;
    m.ttl_seconds = -1;
    return m;
}

static mn_id_t base_at(int64_t ms)
{
    mn_idgen_t g;
    mn_idgen_init(&g, 42);
    mn_id_t id = mn_idgen_next(&g, ms);
    mn_idgen_destroy(&g);
    return id;
}

static bool exists(const char *dir, uint64_t seq, const char *ext)
{
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/%016llx.%s", dir, (unsigned long long)seq, ext);
    return stat(p, &st) == 0;
}

static void test_hints_keep_their_ids_across_a_reopen(void **state)
{
    (void)state;
    char *root = mn_test_tmpdir("hints"), dir[4096];
    snprintf(dir, sizeof dir, "%s/hints", root);
    cl_hints *h;
    mn_error err = {0};
    assert_int_equal(cl_hints_open(dir, 100, &h, &err), MN_OK);
    mn_memory_t ms[2] = {mem("one", NULL), mem("two", "k2")};
    mn_id_t base = base_at(1700000000000), ids[2];
    assert_int_equal(cl_hints_add(h, "s", ms, 2, &base, ids, &err), MN_OK);
    mn_id_t want1 = api_hint_id(&base, 1);
    assert_memory_equal(&ids[0], &base, sizeof base);
    assert_memory_equal(&ids[1], &want1, sizeof want1);
    assert_int_not_equal(mn_id_cmp(&ids[0], &ids[1]), 0);
    assert_int_equal(cl_hints_pending(h, NULL), 2);
    cl_hints_close(h);

    assert_int_equal(cl_hints_open(dir, 100, &h, &err), MN_OK);
    assert_int_equal(cl_hints_pending(h, "s"), 2);
    assert_int_equal(cl_hints_pending(h, "other"), 0);
    cl_hint_ref refs[4];
    assert_int_equal(cl_hints_peek(h, refs, 4), 1);
    assert_string_equal(refs[0].space, "s");
    assert_int_equal(refs[0].n, 2);
    uint8_t *data;
    size_t len;
    assert_int_equal(cl_hints_read(h, refs[0].seq, &data, &len, &err), MN_OK);
    mn_wal_entry_t en;
    assert_int_equal(mn_wire_wal_decode(data, len, &en, &err), MN_OK);
    assert_int_equal(en.type, MN_WAL_OP_REMEMBER);
    assert_int_equal(en.op.remember.n, 2);
    assert_memory_equal(&en.op.remember.mems[1].id, &want1, sizeof want1);
    assert_int_equal(en.op.remember.mems[1].created_at_ms, 1700000000000);
    assert_string_equal(en.op.remember.mems[1].idempotency_key, "k2");
    mn_wal_entry_clear(&en);
    free(data);
    /* the key is still known after the reopen: a retry answers its id */
    mn_memory_t again = mem("two", "k2");
    mn_id_t other = base_at(1700000005000), got;
    assert_int_equal(cl_hints_add(h, "s", &again, 1, &other, &got, &err), MN_OK);
    assert_memory_equal(&got, &want1, sizeof want1);
    assert_int_equal(cl_hints_pending(h, NULL), 2);
    cl_hints_close(h);
    mn_test_rmrf(root);
    free(root);
}

static void test_hints_cap_refuses_and_keeps_nothing(void **state)
{
    (void)state;
    char *root = mn_test_tmpdir("hints");
    cl_hints *h;
    mn_error err = {0};
    assert_int_equal(cl_hints_open(root, 2, &h, &err), MN_OK);
    mn_memory_t ms[3] = {mem("a", NULL), mem("b", NULL), mem("c", NULL)};
    mn_id_t base = base_at(1700000000000), ids[3];
    assert_int_equal(cl_hints_add(h, "s", ms, 3, &base, ids, &err), MN_ERR_LIMIT);
    assert_non_null(strstr(err.message, "partition_writes_max"));
    assert_int_equal(cl_hints_pending(h, NULL), 0);
    assert_int_equal(cl_hints_add(h, "s", ms, 2, &base, ids, &err), MN_OK);
    mn_id_t b2 = base_at(1700000001000);
    assert_int_equal(cl_hints_add(h, "t", ms, 1, &b2, ids, &err), MN_ERR_LIMIT);
    assert_int_equal(cl_hints_pending(h, NULL), 2);
    cl_hints_close(h);
    mn_test_rmrf(root);
    free(root);
}

static void count_space(void *arg, const char *space, size_t n)
{
    size_t *c = arg;
    c[strcmp(space, "s") == 0 ? 0 : 1] += n;
}

static void test_hints_remove_deletes_or_sets_aside(void **state)
{
    (void)state;
    char *root = mn_test_tmpdir("hints");
    cl_hints *h;
    mn_error err = {0};
    assert_int_equal(cl_hints_open(root, 10, &h, &err), MN_OK);
    mn_memory_t m = mem("x", NULL);
    mn_id_t b1 = base_at(1700000000000), b2 = base_at(1700000001000), id;
    assert_int_equal(cl_hints_add(h, "s", &m, 1, &b1, &id, &err), MN_OK);
    assert_int_equal(cl_hints_add(h, "t", &m, 1, &b2, &id, &err), MN_OK);
    size_t c[2] = {0, 0};
    cl_hints_each_space(h, count_space, c);
    assert_int_equal(c[0], 1);
    assert_int_equal(c[1], 1);
    cl_hint_ref refs[4];
    assert_int_equal(cl_hints_peek(h, refs, 4), 2);
    assert_true(refs[0].seq < refs[1].seq);
    assert_int_equal(cl_hints_remove(h, refs[0].seq, false, &err), MN_OK);
    assert_false(exists(root, refs[0].seq, "hint"));
    assert_int_equal(cl_hints_remove(h, refs[1].seq, true, &err), MN_OK);
    assert_true(exists(root, refs[1].seq, "rejected"));
    assert_int_equal(cl_hints_remove(h, refs[1].seq, false, &err), MN_ERR_NOT_FOUND);
    assert_int_equal(cl_hints_pending(h, NULL), 0);
    cl_hints_close(h);
    mn_test_rmrf(root);
    free(root);
}

/* The rule of the test below: space "gone" dropped, "again" created at 1700000010000. */
static int64_t fake_stale_before(void *arg, const char *space)
{
    (void)arg;
    if (!strcmp(space, "gone")) return INT64_MAX;
    if (!strcmp(space, "again")) return 1700000010000;
    return INT64_MIN;
}

static void test_hints_drop_stale_takes_only_the_hints_the_rule_names(void **state)
{
    (void)state;
    char *root = mn_test_tmpdir("hints");
    cl_hints *h;
    mn_error err = {0};
    assert_int_equal(cl_hints_open(root, 10, &h, &err), MN_OK);
    mn_memory_t ms[2] = {mem("x", "kx"), mem("y", NULL)};
    mn_id_t old = base_at(1700000000000), young = base_at(1700000020000), ids[2];
    assert_int_equal(cl_hints_add(h, "gone", ms, 2, &young, ids, &err), MN_OK);
    assert_int_equal(cl_hints_add(h, "again", ms, 1, &old, ids, &err), MN_OK);
    assert_int_equal(cl_hints_add(h, "again", &ms[1], 1, &young, ids, &err), MN_OK);
    assert_int_equal(cl_hints_add(h, "kept", ms, 1, &old, ids, &err), MN_OK);
    cl_hint_ref refs[8];
    assert_int_equal(cl_hints_peek(h, refs, 8), 4);
    /* the dropped space's two memories and the hint older than "again"'s incarnation go */
    assert_int_equal(cl_hints_drop_stale(h, fake_stale_before, NULL), 3);
    assert_false(exists(root, refs[0].seq, "hint"));
    assert_false(exists(root, refs[1].seq, "hint"));
    assert_true(exists(root, refs[2].seq, "hint"));
    assert_true(exists(root, refs[3].seq, "hint"));
    assert_int_equal(cl_hints_pending(h, NULL), 2);
    assert_int_equal(cl_hints_pending(h, "gone"), 0);
    assert_int_equal(cl_hints_pending(h, "again"), 1);
    cl_hint_ref left[8];
    assert_int_equal(cl_hints_peek(h, left, 8), 2);
    assert_true(left[0].seq == refs[2].seq && left[1].seq == refs[3].seq);
    /* nothing more to drop; a dropped hint's key no longer answers its id */
    assert_int_equal(cl_hints_drop_stale(h, fake_stale_before, NULL), 0);
    mn_id_t got;
    assert_int_equal(cl_hints_add(h, "gone", ms, 1, &old, &got, &err), MN_OK);
    assert_memory_equal(&got, &old, sizeof got);
    cl_hints_close(h);
    /* what is left survives a reopen */
    assert_int_equal(cl_hints_open(root, 10, &h, &err), MN_OK);
    assert_int_equal(cl_hints_pending(h, NULL), 3);
    cl_hints_close(h);
    mn_test_rmrf(root);
    free(root);
}

static void test_hints_open_sets_aside_what_does_not_decode(void **state)
{
    (void)state;
    char *root = mn_test_tmpdir("hints"), p[4200];
    snprintf(p, sizeof p, "%s/%016llx.hint", root, 7ULL);
    FILE *f = fopen(p, "w");
    fputs("not a wal entry", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/%016llx.tmp", root, 9ULL);
    f = fopen(p, "w");
    fputs("half", f);
    fclose(f);
    cl_hints *h;
    mn_error err = {0};
    assert_int_equal(cl_hints_open(root, 10, &h, &err), MN_OK);
    assert_int_equal(cl_hints_pending(h, NULL), 0);
    assert_true(exists(root, 7, "bad"));
    assert_false(exists(root, 9, "tmp"));
    /* a new hint never reuses a number seen on disk */
    mn_memory_t m = mem("x", NULL);
    mn_id_t b = base_at(1700000000000), id;
    assert_int_equal(cl_hints_add(h, "s", &m, 1, &b, &id, &err), MN_OK);
    cl_hint_ref ref;
    assert_int_equal(cl_hints_peek(h, &ref, 1), 1);
    assert_true(ref.seq > 9);
    cl_hints_close(h);
    mn_test_rmrf(root);
    free(root);
}

static void test_engine_remember_hinted_keeps_ids_and_is_idempotent(void **state)
{
    mn_test_eng *t = *state;
    assert_int_equal(mn_test_space(t->e, "s", 4, MN_METRIC_COSINE), MN_OK);
    mn_memory_t ms[2] = {mem("one", NULL), mem("two", "k2")};
    mn_id_t base = base_at(1690000000000), ids[2];
    for (int i = 0; i < 2; i++) {
        ms[i].id = api_hint_id(&base, (size_t)i);
        ms[i].created_at_ms = 1690000000000;
    }
    mn_error err = {0};
    assert_int_equal(mn_engine_remember_hinted(t->e, "s", ms, 2, ids, NULL, &err), MN_OK);
    assert_memory_equal(&ids[1], &ms[1].id, sizeof ids[1]);
    mn_memory_t got;
    assert_int_equal(mn_engine_get(t->e, "s", &ms[1].id, false, &got, &err), MN_OK);
    assert_int_equal(got.created_at_ms, 1690000000000);
    assert_int_equal(got.when_ms, 1690000000000);
    mn_memory_clear(&got);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(t->e, "s", &st, &err), MN_OK);
    uint64_t lsn = st.last_lsn;
    /* sent again (a drainer that crashed before the hint was deleted): nothing new */
    assert_int_equal(mn_engine_remember_hinted(t->e, "s", ms, 2, ids, NULL, &err), MN_OK);
    assert_int_equal(mn_engine_space_get(t->e, "s", &st, &err), MN_OK);
    assert_true(st.last_lsn <= lsn + 1);
    mn_id_t first;
    assert_int_equal(mn_engine_remember_hinted(t->e, "s", ms, 1, &first, NULL, &err), MN_OK);
    assert_memory_equal(&first, &ms[0].id, sizeof first);
    /* another id with a key seen before: the key's first id answers */
    mn_memory_t again = mem("two", "k2");
    again.id = base_at(1690000009000);
    mn_id_t id;
    assert_int_equal(mn_engine_remember_hinted(t->e, "s", &again, 1, &id, NULL, &err), MN_OK);
    assert_memory_equal(&id, &ms[1].id, sizeof id);
    assert_int_equal(mn_engine_get(t->e, "s", &again.id, false, &got, &err), MN_ERR_NOT_FOUND);
    /* a hint's memory must carry its id */
    mn_memory_t none = mem("three", NULL);
    assert_int_equal(mn_engine_remember_hinted(t->e, "s", &none, 1, &id, NULL, &err),
                     MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "id"));
}

static int eng_setup(void **state)
{
    return mn_test_eng_setup(state, "hinted", false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hints_keep_their_ids_across_a_reopen),
        cmocka_unit_test(test_hints_cap_refuses_and_keeps_nothing),
        cmocka_unit_test(test_hints_remove_deletes_or_sets_aside),
        cmocka_unit_test(test_hints_drop_stale_takes_only_the_hints_the_rule_names),
        cmocka_unit_test(test_hints_open_sets_aside_what_does_not_decode),
        cmocka_unit_test_setup_teardown(test_engine_remember_hinted_keeps_ids_and_is_idempotent,
                                        eng_setup, mn_test_eng_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
