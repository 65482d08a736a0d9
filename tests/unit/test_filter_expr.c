/* The filter language: the api layer's compiler (api/api_filter.c) and the engine's shape
 * check and evaluator (engine/filter_expr.c) on hand-made slots. Laws of the language are
 * checked on random slots and random filters (not not f = f, De Morgan, ne = not eq, nin =
 * not in); the brute-force comparison over real memories is tests/integration/test_filter.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "engine/filter.h"
#include "engine/filter_expr.h"

/* A compiled filter and what it lives in. */
typedef struct compiled {
    api_arena a;
    mn_filter_t f;
    mn_error err;
    mn_err rc;
} compiled;

static void compile(compiled *c, const char *json)
{
    api_arena_init(&c->a);
    mn_filter_init(&c->f);
    memset(&c->err, 0, sizeof c->err);
    c->rc = api_filter_from_text(json, strlen(json), &c->a, &c->f, &c->err);
    if (!c->rc) assert_int_equal(mn__filter_expr_check(c->f.expr, c->f.n_expr, &c->err), MN_OK);
}

static void release(compiled *c)
{
    api_arena_free(&c->a);
}

static bool matches(const char *json, const mn__slot *s)
{
    compiled c;
    compile(&c, json);
    assert_int_equal(c.rc, MN_OK);
    bool r = mn__filter_match(s, &c.f, 0);
    release(&c);
    return r;
}

static void refused(const char *json, const char *message)
{
    compiled c;
    compile(&c, json);
    assert_int_equal(c.rc, MN_ERR_INVALID);
    if (!strstr(c.err.message, message))
        fail_msg("%s: got \"%s\", want \"%s\"", json, c.err.message, message);
    release(&c);
}

static char *red_blue[] = {"red", "blue"};
static char *ann[] = {"ann"};
static mn_kv_t meta[] = {{"n", "7"}, {"s", "abc"}, {"d", "2024-05-01"}};

/* An episodic persistent memory: tags red, blue; who ann; where home; no session;
 * metadata n=7, s=abc, d=2024-05-01; importance 0.7; when 1000; created_at 2000. */
static mn__slot sample(void)
{
    return (mn__slot){.state = SLOT_LIVE,
                      .kind = MN_KIND_EPISODIC,
                      .lifecycle = MN_LIFECYCLE_PERSISTENT,
                      .confidence = 1,
                      .when_ms = 1000,
                      .created_at_ms = 2000,
                      .tags = red_blue,
                      .n_tags = 2,
                      .who = ann,
                      .n_who = 1,
                      .where = "home",
                      .metadata = meta,
                      .n_metadata = 3,
                      .importance = 0.7f};
}

static void test_filter_sets_tags_and_who(void **state)
{
    (void)state;
    mn__slot s = sample();
    assert_true(matches("{\"tags\": {\"contains\": \"red\"}}", &s));
    assert_true(matches("{\"tags\": {\"contains\": [\"red\", \"blue\"]}}", &s));
    assert_false(matches("{\"tags\": {\"contains\": [\"red\", \"green\"]}}", &s));
    assert_true(matches("{\"tags\": {\"eq\": \"blue\"}}", &s));
    assert_false(matches("{\"tags\": {\"ne\": \"blue\"}}", &s));
    assert_true(matches("{\"tags\": {\"in\": [\"green\", \"blue\"]}}", &s));
    assert_false(matches("{\"tags\": {\"in\": []}}", &s));
    assert_true(matches("{\"tags\": {\"nin\": [\"green\"]}}", &s));
    assert_true(matches("{\"context.who\": {\"contains\": \"ann\"}}", &s));
    assert_true(matches("{\"context.who\": {\"exists\": true}}", &s));
    s.n_who = 0;
    assert_true(matches("{\"context.who\": {\"exists\": false}}", &s));
    assert_true(matches("{\"context.who\": {\"nin\": [\"ann\"]}}", &s));
}

static void test_filter_missing_field_is_false_but_for_ne_and_nin(void **state)
{
    (void)state;
    mn__slot s = sample();
    assert_false(matches("{\"context.session\": {\"eq\": \"s1\"}}", &s));
    assert_true(matches("{\"context.session\": {\"ne\": \"s1\"}}", &s));
    assert_true(matches("{\"context.session\": {\"nin\": [\"s1\"]}}", &s));
    assert_false(matches("{\"context.session\": {\"exists\": true}}", &s));
    assert_false(matches("{\"metadata.zz\": {\"gte\": 0}}", &s));
    assert_false(matches("{\"metadata.zz\": {\"lt\": 0}}", &s));
    assert_true(matches("{\"metadata.zz\": {\"ne\": 3}}", &s));
    assert_true(matches("{\"context.where\": {\"eq\": \"home\"}}", &s));
}

static void test_filter_metadata_numbers_and_strings(void **state)
{
    (void)state;
    mn__slot s = sample();
    assert_true(matches("{\"metadata.n\": {\"gte\": 5}}", &s));
    assert_true(matches("{\"metadata.n\": {\"gt\": \"10\"}}", &s) == false);
    assert_true(matches("{\"metadata.n\": {\"eq\": 7.0}}", &s));
    assert_false(matches("{\"metadata.n\": {\"eq\": \"7.0\"}}", &s)); /* strings: bytes */
    assert_true(matches("{\"metadata.s\": {\"gt\": \"abb\"}}", &s));  /* bytewise */
    assert_false(matches("{\"metadata.s\": {\"gt\": 1}}", &s));       /* not a number */
    assert_true(matches("{\"metadata.d\": {\"lt\": \"2024-06-01\"}}", &s));
    assert_true(matches("{\"metadata.n\": {\"in\": [1, 7]}}", &s));
    double d;
    assert_true(mn_filter_number("-3.5e2", &d) && d == -350);
    assert_true(mn_filter_number("5.", &d) && mn_filter_number(".5", &d));
    assert_false(mn_filter_number("0x10", &d) || mn_filter_number("inf", &d) ||
                 mn_filter_number(" 1", &d) || mn_filter_number(".", &d) ||
                 mn_filter_number("1e", &d) || mn_filter_number("", &d));
}

static void test_filter_scalars_and_times(void **state)
{
    (void)state;
    mn__slot s = sample();
    assert_true(matches("{\"kind\": {\"eq\": \"episodic\"}}", &s));
    assert_true(matches("{\"lifecycle\": {\"nin\": [\"ephemeral\", \"session\"]}}", &s));
    assert_true(matches("{\"importance\": {\"eq\": 0.7}}", &s)); /* as float32 */
    assert_true(matches("{\"importance\": {\"gte\": 0.7, \"lt\": 0.8}}", &s));
    assert_true(matches("{\"when\": {\"lt\": \"1970-01-01T00:00:01.001Z\"}}", &s));
    assert_true(matches("{\"created_at\": {\"in\": [2000]}}", &s));
    assert_true(matches("{\"created_at\": {\"exists\": true}}", &s));
}

static void test_filter_nesting_and_empty(void **state)
{
    (void)state;
    mn__slot s = sample();
    const char *example = "{\"or\": [{\"and\": [{\"tags\": {\"contains\": \"red\"}}, "
                          "{\"metadata.n\": {\"gte\": 5}}]}, {\"not\": {\"context.who\": "
                          "{\"in\": [\"ann\"]}}}]}";
    assert_true(matches(example, &s));
    s.n_tags = 0;
    assert_false(matches(example, &s));
    assert_true(matches("{}", &s));
    assert_true(matches("{\"and\": []}", &s));
    assert_false(matches("{\"or\": []}", &s));
    assert_false(matches("{\"not\": {}}", &s));
    /* several members: their AND */
    assert_false(matches("{\"kind\": {\"eq\": \"episodic\"}, \"tags\": {\"exists\": true}}", &s));
}

static void test_filter_refusals_name_the_path(void **state)
{
    (void)state;
    refused("{\"or\": [{\"and\": [{\"tags\": {\"eq\": \"x\"}}, {\"metadata.n\": {\"gte\": "
            "true}}]}]}",
            "filter.or[0].and[1][\"metadata.n\"].gte: expects a string or a number");
    refused("{\"tags\": {\"gt\": \"a\"}}", "filter.tags.gt: applies to metadata.<key>");
    refused("{\"when\": {\"in\": [1, \"noon\"]}}", "filter.when.in[1]: expects a time");
    refused("{\"kind\": {\"eq\": \"dream\"}}", "filter.kind.eq: expects \"episodic\"");
    refused("{\"not\": {\"x\": {}}}", "filter.not.x: unknown field");
    refused("{\"tags\": {\"eq\": \"a\"}, \"tags\": {\"eq\": \"b\"}}", "filter.tags: duplicate");
    refused("[]", "filter: expects an object");
    refused("{\"tags\":", "filter: not a JSON filter");
    char deep[512] = "";
    for (int i = 0; i < MN_FILTER_DEPTH_MAX + 1; i++)
        strcat(deep, "{\"not\": ");
    strcat(deep, "{}");
    for (int i = 0; i < MN_FILTER_DEPTH_MAX + 1; i++)
        strcat(deep, "}");
    refused(deep, "nested deeper than 10");
}

static void test_filter_engine_check_refuses_malformed_arrays(void **state)
{
    (void)state;
    mn_error err = {0};
    mn_filter_value_t v = {.s = "red"};
    mn_filter_node_t leaf = {.type = MN_FILTER_LEAF,
                             .field = MN_FILTER_FIELD_TAGS,
                             .op = MN_FILTER_OP_EQ,
                             .size = 1,
                             .vals = &v,
                             .n_vals = 1};
    mn_filter_node_t x[3] = {{.type = MN_FILTER_NOT, .size = 3}, leaf, leaf};
    assert_int_equal(mn__filter_expr_check(x, 3, &err), MN_ERR_INVALID); /* not of two */
    x[0].type = MN_FILTER_AND;
    assert_int_equal(mn__filter_expr_check(x, 3, &err), MN_OK);
    x[0].size = 2; /* does not cover the array */
    assert_int_equal(mn__filter_expr_check(x, 3, &err), MN_ERR_INVALID);
    x[0].size = 3;
    x[2].op = MN_FILTER_OP_GT; /* gt on tags */
    assert_int_equal(mn__filter_expr_check(x, 3, &err), MN_ERR_INVALID);
    x[2] = leaf;
    x[2].field = MN_FILTER_FIELD_IMPORTANCE; /* a string operand for a number */
    assert_int_equal(mn__filter_expr_check(x, 3, &err), MN_ERR_INVALID);
    x[2] = leaf;
    x[2].size = 2;
    assert_int_equal(mn__filter_expr_check(x, 3, &err), MN_ERR_INVALID);
}

static void test_filter_gone_memories_answer_only_kind_and_times(void **state)
{
    (void)state;
    compiled c;
    compile(&c, "{\"when\": {\"gte\": 500}, \"kind\": {\"eq\": \"episodic\"}}");
    c.f.as_of_ms = 3000;
    assert_true(mn__filter_match_gone(MN_KIND_EPISODIC, 1000, 2000, 4000, &c.f));
    assert_false(mn__filter_match_gone(MN_KIND_EPISODIC, 100, 2000, 4000, &c.f));
    release(&c);
    compile(&c, "{\"not\": {\"tags\": {\"eq\": \"red\"}}}"); /* erased: cannot be answered */
    c.f.as_of_ms = 3000;
    assert_false(mn__filter_match_gone(MN_KIND_EPISODIC, 1000, 2000, 4000, &c.f));
    release(&c);
}

static void test_filter_copy_stands_alone(void **state)
{
    (void)state;
    compiled c;
    compile(&c, "{\"or\": [{\"metadata.n\": {\"in\": [\"7\", 8]}}, {\"tags\": "
                "{\"contains\": [\"red\", \"blue\"]}}, {\"kind\": {\"exists\": false}}]}");
    assert_int_equal(c.rc, MN_OK);
    mn_filter_node_t *copy = mn__filter_expr_dup(c.f.expr, c.f.n_expr);
    uint32_t n = c.f.n_expr;
    release(&c); /* the copy owns everything it points to */
    assert_non_null(copy);
    mn_error err = {0};
    assert_int_equal(mn__filter_expr_check(copy, n, &err), MN_OK);
    mn__slot s = sample();
    assert_true(mn__filter_expr_match(copy, n, &s));
    s.n_metadata = 0;
    assert_true(mn__filter_expr_match(copy, n, &s)); /* still red and blue */
    s.n_tags = 1;
    assert_false(mn__filter_expr_match(copy, n, &s));
    free(copy);
}

/* ---- laws on random slots and random filters ---- */

static const char *const pool[] = {"red", "blue", "ann", "home", "7", "abc", "-2"};

static void rand_leaf(mn_prng_t *p, char *out, size_t len)
{
    static const char *const fields[] = {"tags",       "context.who", "context.where", "metadata.n",
                                         "importance", "when",        "kind"};
    static const char *const ops[] = {"eq", "ne", "in", "nin", "exists"};
    int f = (int)mn_prng_below(p, 7), o = (int)mn_prng_below(p, 5);
    const char *v = pool[mn_prng_below(p, 7)];
    char val[64];
    if (o == 4)
        snprintf(val, sizeof val, "%s", mn_prng_below(p, 2) ? "true" : "false");
    else if (f == 4 || f == 5)
        snprintf(val, sizeof val, "%d", (int)mn_prng_below(p, 3) * 500);
    else if (f == 6)
        snprintf(val, sizeof val, "\"%s\"", mn_prng_below(p, 2) ? "episodic" : "semantic");
    else
        snprintf(val, sizeof val, "\"%s\"", v);
    if (o == 2 || o == 3)
        snprintf(out, len, "{\"%s\": {\"%s\": [%s]}}", fields[f], ops[o], val);
    else
        snprintf(out, len, "{\"%s\": {\"%s\": %s}}", fields[f], ops[o], val);
}

static mn__slot rand_slot(mn_prng_t *p, char **tags, mn_kv_t *kv)
{
    mn__slot s = sample();
    s.n_tags = (uint32_t)mn_prng_below(p, 3);
    for (uint32_t i = 0; i < s.n_tags; i++)
        tags[i] = (char *)pool[mn_prng_below(p, 7)];
    s.tags = tags;
    s.who = tags;
    s.n_who = s.n_tags ? 1 : 0;
    s.where = mn_prng_below(p, 2) ? (char *)pool[mn_prng_below(p, 7)] : NULL;
    kv->key = "n";
    kv->value = (char *)pool[mn_prng_below(p, 7)];
    s.metadata = kv;
    s.n_metadata = (uint32_t)mn_prng_below(p, 2);
    s.importance = (float)mn_prng_below(p, 3) * 500;
    s.when_ms = (int64_t)mn_prng_below(p, 3) * 500;
    s.kind = (uint8_t)mn_prng_below(p, 2);
    return s;
}

static void test_filter_laws_hold_on_random_slots(void **state)
{
    (void)state;
    mn_prng_t p;
    mn_prng_seed(&p, 42);
    char a[160], b[160], e[512];
    for (int trial = 0; trial < 3000; trial++) {
        char *tags[2];
        mn_kv_t kv;
        mn__slot s = rand_slot(&p, tags, &kv);
        rand_leaf(&p, a, sizeof a);
        rand_leaf(&p, b, sizeof b);
        bool va = matches(a, &s), vb = matches(b, &s);
        snprintf(e, sizeof e, "{\"not\": {\"not\": %s}}", a);
        assert_true(matches(e, &s) == va);
        snprintf(e, sizeof e, "{\"not\": {\"and\": [%s, %s]}}", a, b);
        bool nand = matches(e, &s);
        snprintf(e, sizeof e, "{\"or\": [{\"not\": %s}, {\"not\": %s}]}", a, b);
        assert_true(matches(e, &s) == nand);
        assert_true(nand == !(va && vb));
        snprintf(e, sizeof e, "{\"or\": [%s, %s]}", a, b);
        assert_true(matches(e, &s) == (va || vb));
        /* ne = not eq, nin = not in: swap the operator in a's text */
        char *op = strstr(a, "\"eq\"");
        if (op) {
            memcpy(e, a, sizeof a);
            memcpy(e + (op - a), "\"ne\"", 4);
            assert_true(matches(e, &s) == !va);
        }
        op = strstr(a, "\"in\"");
        if (op) {
            snprintf(e, sizeof e, "%.*s\"nin\"%s", (int)(op - a), a, op + 4);
            assert_true(matches(e, &s) == !va);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_sets_tags_and_who),
        cmocka_unit_test(test_filter_missing_field_is_false_but_for_ne_and_nin),
        cmocka_unit_test(test_filter_metadata_numbers_and_strings),
        cmocka_unit_test(test_filter_scalars_and_times),
        cmocka_unit_test(test_filter_nesting_and_empty),
        cmocka_unit_test(test_filter_refusals_name_the_path),
        cmocka_unit_test(test_filter_engine_check_refuses_malformed_arrays),
        cmocka_unit_test(test_filter_gone_memories_answer_only_kind_and_times),
        cmocka_unit_test(test_filter_copy_stands_alone),
        cmocka_unit_test(test_filter_laws_hold_on_random_slots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
