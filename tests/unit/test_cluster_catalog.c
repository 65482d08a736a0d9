/* api/cluster_catalog_set.c and cluster_catalog_json.c: the catalog's merge is a join
 * (any order, any repetition of the same entries gives the same set), a tombstone wins over
 * the live entry of its incarnation, a later incarnation wins over an older tombstone,
 * tombstones are collected only past the horizon, and entries survive JSON and the file
 * unchanged (and with them the digest). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "api/cluster_catalog.h"
#include "mnemo/util.h"
#include "testutil.h"

static cl_catalog_entry entry(const char *name, int64_t created, int64_t dropped, uint32_t dim)
{
    cl_catalog_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.def.name, sizeof e.def.name, "%s", name);
    snprintf(e.def.text_language, sizeof e.def.text_language, "english");
    e.def.dim = dim;
    e.def.metric = MN_METRIC_COSINE;
    e.def.default_lifecycle = MN_LIFECYCLE_PERSISTENT;
    e.def.index = (mn_index_def_t){16, 200, 64, MN_QUANTIZE_NONE};
    e.def.created_at_ms = created;
    e.dropped_ms = dropped;
    return e;
}

static void merge(cl_catalog_set *s, const cl_catalog_entry *e)
{
    assert_int_equal(cl_catalog_set_merge(s, e, NULL), MN_OK);
}

static void assert_same_sets(const cl_catalog_set *a, const cl_catalog_set *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_string_equal(a->e[i].def.name, b->e[i].def.name);
        assert_int_equal(cl_catalog_entry_cmp(&a->e[i], &b->e[i]), 0);
        assert_string_equal(a->e[i].creator, b->e[i].creator);
        assert_int_equal(mn_spaces_record_cmp(&a->e[i].rec, &b->e[i].rec), 0);
    }
}

/* A record of epoch e, version v over nodes "n0".."n<k-1>", the last catching up. */
static mn_spaces_record_t record(uint64_t e, uint64_t v, int k)
{
    mn_spaces_record_t r;
    memset(&r, 0, sizeof r);
    r.epoch = e;
    r.version = v;
    for (int i = 0; i < k; i++) {
        snprintf(r.holders[i].node, sizeof r.holders[i].node, "n%d", (i + (int)e) % 5);
        r.holders[i].role = i == 0       ? MN_SPACES_PRIMARY
                            : i == k - 1 ? MN_SPACES_CATCHING_UP
                                         : MN_SPACES_REPLICA;
    }
    r.n_holders = (uint8_t)k;
    return r;
}

/* A pool of conflicting entries over few names: several incarnations, definitions and
 * tombstones per name. */
#define POOL 60
static void make_pool(cl_catalog_entry *pool, mn_prng_t *rng)
{
    for (int i = 0; i < POOL; i++) {
        char name[16];
        snprintf(name, sizeof name, "s-%d", (int)mn_prng_below(rng, 7));
        int64_t created = 1000 + (int64_t)mn_prng_below(rng, 4);
        int64_t dropped = mn_prng_below(rng, 3) ? 0 : 2000 + (int64_t)mn_prng_below(rng, 3);
        pool[i] = entry(name, created, dropped, 1 + (uint32_t)mn_prng_below(rng, 3));
        if (mn_prng_below(rng, 2)) pool[i].def.dedup_threshold = 0.5f;
        int c = (int)mn_prng_below(rng, 3); /* "" (not known), n1 or n2 */
        if (c) snprintf(pool[i].creator, sizeof pool[i].creator, "n%d", c);
        uint64_t e = mn_prng_below(rng, 3); /* 0: no record */
        if (e) pool[i].rec = record(e, 1 + mn_prng_below(rng, 3), 2 + (int)mn_prng_below(rng, 2));
    }
}

static void test_catalog_merge_is_order_and_repeat_free(void **state)
{
    (void)state;
    mn_prng_t rng;
    mn_prng_seed(&rng, 42);
    for (int round = 0; round < 50; round++) {
        cl_catalog_entry pool[POOL], shuffled[POOL];
        make_pool(pool, &rng);
        memcpy(shuffled, pool, sizeof pool);
        for (int i = POOL - 1; i > 0; i--) {
            int j = (int)mn_prng_below(&rng, (uint64_t)i + 1);
            cl_catalog_entry t = shuffled[i];
            shuffled[i] = shuffled[j];
            shuffled[j] = t;
        }
        cl_catalog_set a, b, ab;
        cl_catalog_set_init(&a);
        cl_catalog_set_init(&b);
        cl_catalog_set_init(&ab);
        for (int i = 0; i < POOL; i++)
            merge(&a, &pool[i]);
        for (int i = 0; i < POOL; i++) { /* another order, each entry twice */
            merge(&b, &shuffled[i]);
            merge(&b, &shuffled[(i * 7) % POOL]);
        }
        assert_same_sets(&a, &b);
        /* merging two halves merged apart = merging all (associative) */
        cl_catalog_set h1, h2;
        cl_catalog_set_init(&h1);
        cl_catalog_set_init(&h2);
        for (int i = 0; i < POOL; i++)
            merge(i % 2 ? &h1 : &h2, &pool[i]);
        for (size_t i = 0; i < h2.n; i++)
            merge(&h1, &h2.e[i]);
        assert_same_sets(&a, &h1);
        /* idempotent: a merged into itself does not change */
        assert_int_equal(cl_catalog_set_copy(&ab, &a), MN_OK);
        for (size_t i = 0; i < a.n; i++) {
            bool changed = true;
            assert_int_equal(cl_catalog_set_merge(&ab, &a.e[i], &changed), MN_OK);
            assert_false(changed);
        }
        char da[65], db[65];
        cl_catalog_set_digest(&a, da);
        cl_catalog_set_digest(&b, db);
        assert_string_equal(da, db);
        cl_catalog_set_free(&a);
        cl_catalog_set_free(&b);
        cl_catalog_set_free(&ab);
        cl_catalog_set_free(&h1);
        cl_catalog_set_free(&h2);
    }
}

static void test_catalog_tombstone_wins_over_its_incarnation(void **state)
{
    (void)state;
    cl_catalog_set s;
    cl_catalog_set_init(&s);
    cl_catalog_entry live = entry("agent", 1000, 0, 4), dead = entry("agent", 1000, 5000, 4);
    merge(&s, &dead);
    bool changed = true;
    assert_int_equal(cl_catalog_set_merge(&s, &live, &changed), MN_OK);
    assert_false(changed); /* the live entry comes late: the tombstone stays */
    assert_int_equal(cl_catalog_set_find(&s, "agent")->dropped_ms, 5000);
    assert_int_equal(cl_catalog_set_live(&s), 0);
    /* a later tombstone of the same incarnation replaces an earlier one */
    cl_catalog_entry later = entry("agent", 1000, 6000, 4);
    merge(&s, &later);
    assert_int_equal(cl_catalog_set_find(&s, "agent")->dropped_ms, 6000);
    /* created again after the drop: a later incarnation, live again */
    cl_catalog_entry again = entry("agent", 7000, 0, 8);
    merge(&s, &again);
    const cl_catalog_entry *e = cl_catalog_set_find(&s, "agent");
    assert_int_equal(e->dropped_ms, 0);
    assert_int_equal(e->def.dim, 8);
    /* and the old tombstone arriving late changes nothing */
    assert_int_equal(cl_catalog_set_merge(&s, &dead, &changed), MN_OK);
    assert_false(changed);
    assert_int_equal(cl_catalog_set_live(&s), 1);
    cl_catalog_set_free(&s);
}

static void test_catalog_refuses_bad_names(void **state)
{
    (void)state;
    cl_catalog_set s;
    cl_catalog_set_init(&s);
    cl_catalog_entry bad = entry("Bad Name", 1, 0, 4);
    assert_int_equal(cl_catalog_set_merge(&s, &bad, NULL), MN_ERR_INVALID);
    assert_int_equal(s.n, 0);
    cl_catalog_set_free(&s);
}

static void test_catalog_collects_only_old_tombstones(void **state)
{
    (void)state;
    cl_catalog_set s;
    cl_catalog_set_init(&s);
    cl_catalog_entry a = entry("a", 10, 100, 4), b = entry("b", 10, 300, 4),
                     c = entry("c", 10, 0, 4);
    merge(&s, &a);
    merge(&s, &b);
    merge(&s, &c);
    assert_int_equal(cl_catalog_set_collect(&s, 200), 1);
    assert_null(cl_catalog_set_find(&s, "a"));
    assert_non_null(cl_catalog_set_find(&s, "b"));
    assert_non_null(cl_catalog_set_find(&s, "c"));
    assert_int_equal(cl_catalog_set_collect(&s, 1000), 1); /* a live entry never goes */
    assert_int_equal(s.n, 1);
    assert_string_equal(s.e[0].def.name, "c");
    cl_catalog_set_free(&s);
}

static void test_catalog_entry_survives_json(void **state)
{
    (void)state;
    cl_catalog_entry e = entry("x-1", 1700000000123, 1700000009999, 384);
    e.def.metric = MN_METRIC_DOT;
    e.def.dedup = MN_DEDUP_OFF;
    e.def.dedup_threshold = 0.93f;
    e.def.embedding_model_set = true;
    snprintf(e.def.embedding_model, sizeof e.def.embedding_model, "nomic-embed-text");
    e.def.index.quantize = MN_QUANTIZE_INT8;
    snprintf(e.def.text_language, sizeof e.def.text_language, "french");
    cJSON *o = cl_catalog_entry_json(&e);
    char *text = cJSON_PrintUnformatted(o);
    api_json_result res;
    cJSON *back = api_json_parse(text, strlen(text), &res);
    cl_catalog_entry r;
    mn_error err = {0};
    assert_int_equal(cl_catalog_entry_from_json(back, "", &r, &err), MN_OK);
    assert_int_equal(cl_catalog_entry_cmp(&e, &r), 0);
    assert_string_equal(r.def.embedding_model, "nomic-embed-text");
    api_json_free(back);
    cJSON_free(text);
    cJSON_Delete(o);
}

/* The creator and the holder record survive JSON; an entry without them (a catalog of an
 * older version) still loads; within one incarnation the newer record and the known creator
 * win whatever the order. */
static void test_catalog_creator_and_record(void **state)
{
    (void)state;
    cl_catalog_entry e = entry("x-2", 1700000000123, 0, 8);
    snprintf(e.creator, sizeof e.creator, "node-a");
    e.rec = record(3, 7, 4);
    cJSON *o = cl_catalog_entry_json(&e);
    char *text = cJSON_PrintUnformatted(o);
    assert_non_null(strstr(text, "\"creator\":\"node-a\""));
    api_json_result res;
    cJSON *back = api_json_parse(text, strlen(text), &res);
    cl_catalog_entry r;
    mn_error err = {0};
    assert_int_equal(cl_catalog_entry_from_json(back, "", &r, &err), MN_OK);
    assert_string_equal(r.creator, "node-a");
    assert_int_equal(mn_spaces_record_cmp(&e.rec, &r.rec), 0);
    /* without creator and record: an older catalog */
    cJSON_DetachItemFromObjectCaseSensitive(back, "creator"); /* the arena frees it */
    cJSON_DetachItemFromObjectCaseSensitive(back, "record");
    assert_int_equal(cl_catalog_entry_from_json(back, "", &r, &err), MN_OK);
    assert_string_equal(r.creator, "");
    assert_int_equal(r.rec.epoch, 0);
    /* fields of a newer minor version, in the entry and in what it holds: ignored */
    cl_catalog_entry n;
    cJSON *newer = cl_catalog_entry_json(&e);
    cJSON_AddStringToObject(newer, "shard_hint", "x");
    cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(newer, "index"), "levels", 3);
    cJSON *rec = cJSON_GetObjectItemCaseSensitive(newer, "record");
    cJSON_AddNumberToObject(rec, "term", 9);
    cJSON_AddStringToObject(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rec, "holders"), 0),
                            "zone", "z1");
    assert_int_equal(cl_catalog_entry_from_json(newer, "", &n, &err), MN_OK);
    assert_int_equal(cl_catalog_entry_cmp(&e, &n), 0);
    assert_string_equal(n.creator, "node-a");
    assert_int_equal(mn_spaces_record_cmp(&e.rec, &n.rec), 0);
    cJSON_Delete(newer);
    api_json_free(back);
    cJSON_free(text);
    cJSON_Delete(o);
    /* field-wise join: the newer record of one, the creator of the other */
    cl_catalog_entry a = entry("x-2", 5, 0, 8), b = a;
    snprintf(a.creator, sizeof a.creator, "node-a");
    a.rec = record(1, 1, 3);
    b.rec = record(2, 1, 3);
    cl_catalog_set s1, s2;
    cl_catalog_set_init(&s1);
    cl_catalog_set_init(&s2);
    merge(&s1, &a);
    merge(&s1, &b);
    merge(&s2, &b);
    merge(&s2, &a);
    assert_same_sets(&s1, &s2);
    assert_string_equal(s1.e[0].creator, "node-a");
    assert_int_equal(s1.e[0].rec.epoch, 2);
    cl_catalog_set_free(&s1);
    cl_catalog_set_free(&s2);
}

static void test_catalog_refusals_name_the_field(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *msg;
    } bad[] = {
        {"{\"spaces\":[{\"name\":\"a\"}]}", "spaces[0].dim: required"},
        {"{\"spaces\":3}", "spaces: expected an array"},
        {"{\"spaces\":[{\"name\":\"a\",\"dim\":4,\"metric\":\"cosine\",\"text_language\":"
         "\"english\",\"dedup\":\"exact\",\"index\":{\"m\":16,\"ef_construction\":200,"
         "\"ef_search\":64,\"quantize\":\"none\"},\"created_at_ms\":1,\"dropped_at_ms\":-4}]}",
         "spaces[0].dropped_at_ms: must be positive or null"},
        {"{\"spaces\":[{\"name\":\"a\",\"dim\":4,\"metric\":\"cos\",\"created_at_ms\":1,"
         "\"text_language\":\"english\",\"dedup\":\"exact\"}]}",
         "spaces[0].metric: must be cosine, l2 or dot"},
        {"{\"spaces\":[{\"name\":\"a\",\"dim\":4,\"metric\":\"cosine\",\"text_language\":"
         "\"english\",\"dedup\":\"exact\",\"index\":{\"m\":16,\"ef_construction\":200,"
         "\"ef_search\":64,\"quantize\":\"none\"},\"created_at_ms\":1,\"record\":{\"epoch\":1,"
         "\"version\":1,\"holders\":[{\"node\":\"b\",\"role\":\"replica\"}]}}]}",
         "spaces[0].record: holder 0: the first holder, and only it, is the primary"},
        {"{\"spaces\":[{\"name\":\"a\",\"dim\":4,\"metric\":\"cosine\",\"text_language\":"
         "\"english\",\"dedup\":\"exact\",\"index\":{\"m\":16,\"ef_construction\":200,"
         "\"ef_search\":64,\"quantize\":\"none\"},\"created_at_ms\":1,\"record\":{\"epoch\":1,"
         "\"version\":1,\"holders\":[{\"node\":\"b\",\"role\":\"boss\"}]}}]}",
         "spaces[0].record.holders[0].role: must be primary, replica or catching_up"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        api_json_result res;
        cJSON *doc = api_json_parse(bad[i].doc, strlen(bad[i].doc), &res);
        assert_non_null(doc);
        cl_catalog_set s;
        cl_catalog_set_init(&s);
        mn_error err = {0};
        assert_int_equal(cl_catalog_set_from_json(doc, &s, &err), MN_ERR_INVALID);
        if (strncmp(err.message, bad[i].msg, strlen(bad[i].msg)) != 0)
            fail_msg("%s: got \"%s\"", bad[i].msg, err.message);
        assert_int_equal(s.n, 0);
        cl_catalog_set_free(&s);
        api_json_free(doc);
    }
}

static void test_catalog_file_round_trip(void **state)
{
    (void)state;
    char *dir = mn_test_tmpdir("catalog");
    char path[4096];
    snprintf(path, sizeof path, "%s/cluster_catalog.json", dir);
    cl_catalog_set s, r;
    cl_catalog_set_init(&s);
    cl_catalog_set_init(&r);
    mn_error err = {0};
    assert_int_equal(cl_catalog_load(path, &r, &err), MN_OK); /* missing: empty */
    assert_int_equal(r.n, 0);
    for (int i = 0; i < 30; i++) {
        char name[16];
        snprintf(name, sizeof name, "space-%02d", i);
        cl_catalog_entry e = entry(name, 1000 + i, i % 3 ? 0 : 5000 + i, 8);
        merge(&s, &e);
    }
    assert_int_equal(cl_catalog_save(&s, path, &err), MN_OK);
    assert_int_equal(cl_catalog_load(path, &r, &err), MN_OK);
    assert_same_sets(&s, &r);
    char ds[65], dr[65];
    cl_catalog_set_digest(&s, ds);
    cl_catalog_set_digest(&r, dr);
    assert_string_equal(ds, dr);
    /* a damaged file is refused, naming it */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"format\":1,\"spaces\":[{", f);
    fclose(f);
    cl_catalog_set_free(&r);
    assert_int_equal(cl_catalog_load(path, &r, &err), MN_ERR_CORRUPT);
    assert_non_null(strstr(err.message, "cluster_catalog.json"));
    cl_catalog_set_free(&s);
    cl_catalog_set_free(&r);
    mn_test_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catalog_merge_is_order_and_repeat_free),
        cmocka_unit_test(test_catalog_tombstone_wins_over_its_incarnation),
        cmocka_unit_test(test_catalog_refuses_bad_names),
        cmocka_unit_test(test_catalog_collects_only_old_tombstones),
        cmocka_unit_test(test_catalog_entry_survives_json),
        cmocka_unit_test(test_catalog_creator_and_record),
        cmocka_unit_test(test_catalog_refusals_name_the_field),
        cmocka_unit_test(test_catalog_file_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
