/* TOML reader: every feature on valid documents, the exact file:line:col of each kind of
 * error, and seeded random mutations of a valid document that must never crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/config/toml.h"

static mn_toml_value_t *parse_ok(const char *src)
{
    mn_error e = {0};
    mn_toml_value_t *v = NULL;
    mn_err rc = mn_toml_parse(src, strlen(src), "t.toml", &v, &e);
    if (rc != MN_OK) fail_msg("unexpected error %d: %s", rc, e.message);
    assert_non_null(v);
    return v;
}

/* Parses src, which must fail with exactly the message msg. */
static void expect_error(const char *src, const char *msg)
{
    mn_error e = {0};
    mn_toml_value_t *v = (mn_toml_value_t *)1;
    mn_err rc = mn_toml_parse(src, strlen(src), "t.toml", &v, &e);
    assert_int_equal(rc, MN_ERR_PARSE);
    assert_null(v);
    if (strcmp(e.message, msg) != 0)
        fail_msg("for document:\n%s\nexpected: %s\n     got: %s", src, msg, e.message);
}

/* The value at a dotted path of plain keys ("a.b.c"); fails the test if absent. */
static const mn_toml_value_t *at(const mn_toml_value_t *t, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const mn_toml_value_t *v = t;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
        v = mn_toml_get(v, k);
        if (!v) fail_msg("no value at %s", path);
    }
    return v;
}

static int64_t int_at(const mn_toml_value_t *t, const char *path)
{
    const mn_toml_value_t *v = at(t, path);
    assert_int_equal(v->type, MN_TOML_INTEGER);
    return v->u.i;
}

static const char *str_at(const mn_toml_value_t *t, const char *path)
{
    const mn_toml_value_t *v = at(t, path);
    assert_int_equal(v->type, MN_TOML_STRING);
    return v->u.str.ptr;
}

static double float_at(const mn_toml_value_t *t, const char *path)
{
    const mn_toml_value_t *v = at(t, path);
    assert_int_equal(v->type, MN_TOML_FLOAT);
    return v->u.f;
}

/* ---- valid documents ---- */

static void test_toml_parses_tables_and_dotted_headers(void **state)
{
    (void)state;
    mn_toml_value_t *d = parse_ok("top = 1\n"
                                "[a]\n"
                                "x = 2\n"
                                "[a.b]\n"
                                "y = 3\n"
                                "[ c . \"d e\" . 'f' ]\n"
                                "z = 4\n"
                                "[g.h]\n"
                                "[g]\n" /* implicit table defined later: allowed */
                                "w = 5\n");
    assert_int_equal(int_at(d, "top"), 1);
    assert_int_equal(int_at(d, "a.x"), 2);
    assert_int_equal(int_at(d, "a.b.y"), 3);
    const mn_toml_value_t *c = at(d, "c");
    const mn_toml_value_t *de = mn_toml_get(c, "d e");
    assert_non_null(de);
    assert_int_equal(int_at(de, "f.z"), 4);
    assert_int_equal(int_at(d, "g.w"), 5);
    assert_int_equal(at(d, "g.h")->type, MN_TOML_TABLE);
    /* order of entries is the document's */
    assert_string_equal(d->u.table.entries[0].key, "top");
    assert_string_equal(d->u.table.entries[1].key, "a");
    mn_toml_free(d);
}

static void test_toml_parses_arrays_of_tables(void **state)
{
    (void)state;
    mn_toml_value_t *d = parse_ok("[[auth.keys]]\n"
                                "name = \"alice\"\n"
                                "[auth.keys.limits]\n"
                                "rps = 10\n"
                                "\n"
                                "[[auth.keys]]\n"
                                "name = \"bob\"\n"
                                "[[auth.keys]]\n");
    const mn_toml_value_t *keys = at(d, "auth.keys");
    assert_int_equal(keys->type, MN_TOML_ARRAY);
    assert_int_equal(keys->u.arr.len, 3);
    assert_string_equal(str_at(keys->u.arr.items[0], "name"), "alice");
    assert_int_equal(int_at(keys->u.arr.items[0], "limits.rps"), 10);
    assert_string_equal(str_at(keys->u.arr.items[1], "name"), "bob");
    assert_int_equal(keys->u.arr.items[2]->u.table.len, 0);
    assert_int_equal(keys->u.arr.items[1]->line, 6);
    assert_int_equal(keys->u.arr.items[1]->col, 1);
    mn_toml_free(d);
}

static void test_toml_parses_dotted_and_quoted_keys(void **state)
{
    (void)state;
    mn_toml_value_t *d = parse_ok("a.b.c = 1\n"
                                "a . b . d = 2\n"
                                "\"quoted.key\" = 3\n"
                                "'lit\\eral' = 4\n"
                                "\"\" = 5\n"
                                "1234 = 6\n"
                                "-_- = 7\n"
                                "[t]\n"
                                "u.v = 8\n"
                                "[t.u.w]\n" /* sub-table of a table made by dotted keys */
                                "x = 9\n");
    assert_int_equal(int_at(d, "a.b.c"), 1);
    assert_int_equal(int_at(d, "a.b.d"), 2);
    assert_int_equal(mn_toml_get(d, "quoted.key")->u.i, 3);
    assert_int_equal(mn_toml_get(d, "lit\\eral")->u.i, 4);
    assert_int_equal(mn_toml_get(d, "")->u.i, 5);
    assert_int_equal(int_at(d, "1234"), 6);
    assert_int_equal(int_at(d, "-_-"), 7);
    assert_int_equal(int_at(d, "t.u.v"), 8);
    assert_int_equal(int_at(d, "t.u.w.x"), 9);
    const mn_toml_entry_t *e = mn_toml_find(d, "quoted.key");
    assert_int_equal(e->line, 3);
    assert_int_equal(e->col, 1);
    mn_toml_free(d);
}

static void test_toml_parses_basic_and_literal_strings(void **state)
{
    (void)state;
    mn_toml_value_t *d = parse_ok("a = \"tab\\tnl\\nq\\\"bs\\\\ \\b\\f\\r\"\n"
                                "b = \"\\u00e9\\u20AC\\U0001F600\"\n"
                                "c = 'C:\\Users\\x'\n"
                                "d = \"caf\xc3\xa9\"\n"
                                "e = \"\"\n"
                                "f = \"nul\\u0000in\"\n"
                                "g = \"a # not a comment\" # a comment\n");
    assert_string_equal(str_at(d, "a"), "tab\tnl\nq\"bs\\ \b\f\r");
    assert_string_equal(str_at(d, "b"), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    assert_string_equal(str_at(d, "c"), "C:\\Users\\x");
    assert_string_equal(str_at(d, "d"), "caf\xc3\xa9");
    assert_string_equal(str_at(d, "e"), "");
    const mn_toml_value_t *f = at(d, "f");
    assert_int_equal(f->u.str.len, 6);
    assert_memory_equal(f->u.str.ptr, "nul\0in", 7);
    assert_string_equal(str_at(d, "g"), "a # not a comment");
    mn_toml_free(d);
}

static void test_toml_parses_multiline_strings(void **state)
{
    (void)state;
    mn_toml_value_t *d = parse_ok("a = \"\"\"\nline1\nline2\"\"\"\n"
                                "b = \"\"\"one \\\n     two \\\n\n   three\"\"\"\n"
                                "c = '''\nraw \\n\n'''\n"
                                "d = \"\"\"quote \"\" inside\"\"\"\n"
                                "e = \"\"\"ends with quotes\"\"\"\"\"\n"
                                "f = '''it''s'''\n"
                                "g = \"\"\"crlf\r\nline\"\"\"\n");
    assert_string_equal(str_at(d, "a"), "line1\nline2");
    assert_string_equal(str_at(d, "b"), "one two three");
    assert_string_equal(str_at(d, "c"), "raw \\n\n");
    assert_string_equal(str_at(d, "d"), "quote \"\" inside");
    assert_string_equal(str_at(d, "e"), "ends with quotes\"\"");
    assert_string_equal(str_at(d, "f"), "it''s");
    assert_string_equal(str_at(d, "g"), "crlf\nline");
    mn_toml_free(d);
}

static void test_toml_parses_integers(void **state)
{
    (void)state;
    mn_toml_value_t *d = parse_ok("a = 42\nb = +17\nc = -5\nd = 0\ne = 1_000_000\n"
                                "f = 0xDEAD_beef\ng = 0o755\nh = 0b1101\n"
                                "i = 9223372036854775807\nj = -9223372036854775808\n"
                                "k = -0\nl = 0x7FFFFFFFFFFFFFFF\n");
    assert_int_equal(int_at(d, "a"), 42);
    assert_int_equal(int_at(d, "b"), 17);
    assert_int_equal(int_at(d, "c"), -5);
    assert_int_equal(int_at(d, "d"), 0);
    assert_int_equal(int_at(d, "e"), 1000000);
    assert_int_equal(int_at(d, "f"), 0xDEADBEEF);
    assert_int_equal(int_at(d, "g"), 0755);
    assert_int_equal(int_at(d, "h"), 13);
    assert_true(int_at(d, "i") == INT64_MAX);
    assert_true(int_at(d, "j") == INT64_MIN);
    assert_int_equal(int_at(d, "k"), 0);
    assert_true(int_at(d, "l") == INT64_MAX);
    mn_toml_free(d);
}

static void test_toml_parses_floats(void **state)
{
    (void)state;
    mn_toml_value_t *d = parse_ok("a = 3.14\nb = -0.01\nc = 5e+22\nd = 1e06\ne = -2E-2\n"
                                "f = 6.626e-34\ng = 224_617.445_991\nh = inf\ni = -inf\n"
                                "j = nan\nk = +nan\nl = 0.0\nm = 1e1_0\n");
    assert_true(float_at(d, "a") == 3.14);
    assert_true(float_at(d, "b") == -0.01);
    assert_true(float_at(d, "c") == 5e22);
    assert_true(float_at(d, "d") == 1e6);
    assert_true(float_at(d, "e") == -2e-2);
    assert_true(float_at(d, "f") == 6.626e-34);
    assert_true(float_at(d, "g") == 224617.445991);
    assert_true(isinf(float_at(d, "h")) && float_at(d, "h") > 0);
    assert_true(isinf(float_at(d, "i")) && float_at(d, "i") < 0);
    assert_true(isnan(float_at(d, "j")));
    assert_true(isnan(float_at(d, "k")));
    assert_true(float_at(d, "l") == 0.0);
    assert_true(float_at(d, "m") == 1e10);
    mn_toml_free(d);
}

static void test_toml_parses_booleans_arrays_and_inline_tables(void **state)
{
    (void)state;
    mn_toml_value_t *d = parse_ok("t = true\nf = false\n"
                                "empty = []\n"
                                "nums = [ 1, 2, 3 ]\n"
                                "multi = [\n"
                                "  \"a\", # first\n"
                                "  # a whole comment line\n"
                                "  'b',\n"
                                "]\n"
                                "nested = [[1, 2], [\"x\"], []]\n"
                                "mixed = [1, \"two\", 3.0, true, {k = 1}]\n"
                                "p = { x = 1, y.z = \"s\", q = [1] }\n"
                                "e = {}\n");
    assert_true(at(d, "t")->u.b);
    assert_false(at(d, "f")->u.b);
    assert_int_equal(at(d, "empty")->u.arr.len, 0);
    const mn_toml_value_t *nums = at(d, "nums");
    assert_int_equal(nums->u.arr.len, 3);
    assert_int_equal(nums->u.arr.items[2]->u.i, 3);
    assert_int_equal(nums->u.arr.items[2]->col, 16);
    const mn_toml_value_t *multi = at(d, "multi");
    assert_int_equal(multi->u.arr.len, 2);
    assert_string_equal(multi->u.arr.items[1]->u.str.ptr, "b");
    assert_int_equal(multi->u.arr.items[1]->line, 8);
    assert_int_equal(multi->u.arr.items[1]->col, 3);
    const mn_toml_value_t *nested = at(d, "nested");
    assert_int_equal(nested->u.arr.items[0]->u.arr.len, 2);
    assert_int_equal(nested->u.arr.items[2]->u.arr.len, 0);
    const mn_toml_value_t *mixed = at(d, "mixed");
    assert_int_equal(mixed->u.arr.items[4]->type, MN_TOML_TABLE);
    assert_int_equal(int_at(d, "p.x"), 1);
    assert_string_equal(str_at(d, "p.y.z"), "s");
    assert_int_equal(at(d, "e")->type, MN_TOML_TABLE);
    mn_toml_free(d);
}

static void test_toml_accepts_comments_crlf_bom_and_blank_documents(void **state)
{
    (void)state;
    mn_toml_value_t *d = parse_ok("\xEF\xBB\xBF# comment\r\n"
                                "\r\n"
                                "  a = 1 # trailing\r\n"
                                "\t[t] # header comment\r\n"
                                "b = \"x\"\r\n"
                                "# no newline at end");
    assert_int_equal(int_at(d, "a"), 1);
    assert_string_equal(str_at(d, "t.b"), "x");
    assert_int_equal(at(d, "a")->line, 3);
    assert_int_equal(at(d, "a")->col, 7);
    mn_toml_free(d);
    d = parse_ok("");
    assert_int_equal(d->u.table.len, 0);
    mn_toml_free(d);
    d = parse_ok("\n\n   \n# only comments\n");
    assert_int_equal(d->u.table.len, 0);
    mn_toml_free(d);
}

static void test_toml_columns_count_code_points(void **state)
{
    (void)state;
    mn_toml_value_t *d = parse_ok("\"\xc3\xa9t\xc3\xa9\" = 1\n");
    assert_int_equal(mn_toml_get(d, "\xc3\xa9t\xc3\xa9")->col, 9);
    mn_toml_free(d);
    expect_error("s = \"\xe2\x82\xac\xe2\x82\xac\" x", "t.toml:1:10: expected end of line after "
                                                       "value, found 'x'");
}

static void test_toml_parses_single_values(void **state)
{
    (void)state;
    mn_error e = {0};
    mn_toml_value_t *v = NULL;
    assert_int_equal(mn_toml_parse_value(" 8080 ", 6, "ENV", &v, &e), MN_OK);
    assert_int_equal(v->type, MN_TOML_INTEGER);
    assert_int_equal(v->u.i, 8080);
    mn_toml_free(v);
    const char *arr = "[\"a:1\",\n 'b:2', ]";
    assert_int_equal(mn_toml_parse_value(arr, strlen(arr), "ENV", &v, &e), MN_OK);
    assert_int_equal(v->u.arr.len, 2);
    mn_toml_free(v);
    assert_int_equal(mn_toml_parse_value("1 2", 3, "ENV", &v, &e), MN_ERR_PARSE);
    assert_null(v);
    assert_string_equal(e.message, "ENV:1:3: expected end of value, found '2'");
    assert_int_equal(mn_toml_parse_value("", 0, "ENV", &v, &e), MN_ERR_PARSE);
    assert_string_equal(e.message, "ENV:1:1: expected a value, found end of file");
}

static void test_toml_string_writer_round_trips(void **state)
{
    (void)state;
    const char s[] = "q\"b\\t\tn\nc\x01\x7f \xc3\xa9";
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    fputs("k = ", f);
    mn_toml_fput_string(f, s, sizeof s - 1);
    fputc('\n', f);
    fclose(f);
    mn_toml_value_t *d = parse_ok(buf);
    const mn_toml_value_t *k = at(d, "k");
    assert_int_equal(k->u.str.len, sizeof s - 1);
    assert_memory_equal(k->u.str.ptr, s, sizeof s - 1);
    mn_toml_free(d);
    free(buf);
}

static void test_toml_reads_files_and_reports_missing_ones(void **state)
{
    (void)state;
    char path[] = "/tmp/mn-toml-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("[a]\nb = 1\nc = \n", f);
    fclose(f);
    mn_error e = {0};
    mn_toml_value_t *v = NULL;
    assert_int_equal(mn_toml_parse_file(path, &v, &e), MN_ERR_PARSE);
    char want[128];
    snprintf(want, sizeof want, "%s:3:5: expected a value, found end of line", path);
    assert_string_equal(e.message, want);
    remove(path);
    assert_int_equal(mn_toml_parse_file(path, &v, &e), MN_ERR_IO);
    assert_null(v);
    assert_non_null(strstr(e.message, "cannot open"));
}

/* ---- errors, each at its exact line:col ---- */

static void test_toml_rejects_unterminated_strings(void **state)
{
    (void)state;
    expect_error("a = 1\nb = \"abc\nc = 2\n",
                 "t.toml:2:5: unterminated string (a \"...\" string ends at end of line)");
    expect_error("a = 'abc", "t.toml:1:5: unterminated string");
    expect_error("a = \"\"\"abc\n\ndef", "t.toml:1:5: unterminated string");
    expect_error("a = '''abc''", "t.toml:1:5: unterminated string");
    expect_error("a = \"abc\\", "t.toml:1:5: unterminated string");
}

static void test_toml_rejects_bad_escapes(void **state)
{
    (void)state;
    expect_error("a = \"x\\qy\"", "t.toml:1:7: invalid escape '\\q'");
    expect_error("\n  a = \"\\uD800\"", "t.toml:2:8: invalid escape: U+D800 is not a Unicode "
                                        "scalar value");
    expect_error("a = \"\\U00110000\"", "t.toml:1:6: invalid escape: U+110000 is not a Unicode "
                                        "scalar value");
    expect_error("a = \"\\u12\"", "t.toml:1:6: invalid escape: \\u needs 4 hex digits");
    expect_error("a = \"\\ \"", "t.toml:1:6: invalid escape");
    expect_error("a = \"\"\"x\\  y\"\"\"", "t.toml:1:9: invalid escape: '\\' then space");
    expect_error("a = \"x\x01\"", "t.toml:1:7: control character 0x01 in string (escape it)");
    expect_error("a = 'x\x7f'", "t.toml:1:7: control character 0x7f in string (escape it)");
    expect_error("a = \"\"\"x\"\"\"\"\"\"", "t.toml:1:9: too many quotes: three in a row end the "
                                             "string");
}

static void test_toml_rejects_duplicate_key(void **state)
{
    (void)state;
    expect_error("a = 1\na = 2\n", "t.toml:2:1: duplicate key \"a\" (first defined at 1:1)");
    expect_error("[t]\nx.y = 1\n  x.y = 2\n",
                 "t.toml:3:5: duplicate key \"x.y\" (first defined at 2:3)");
    expect_error("a = 1\n\"a\" = 2\n", "t.toml:2:1: duplicate key \"a\" (first defined at 1:1)");
    expect_error("p = { x = 1, x = 2 }", "t.toml:1:14: duplicate key \"x\" (first defined at "
                                         "1:7)");
    expect_error("a = 1\na.b = 2\n", "t.toml:2:1: key \"a\" is already an integer (defined at "
                                     "1:5), not a table");
}

static void test_toml_rejects_redefined_table(void **state)
{
    (void)state;
    expect_error("[a]\nx = 1\n[a]\n", "t.toml:3:2: table [a] defined twice (first at 1:1)");
    expect_error("[a.b]\n[ a . b ]\n", "t.toml:2:7: table [a.b] defined twice (first at 1:1)");
    expect_error("[a]\nb.c = 1\n[a.b]\n", "t.toml:3:4: table [a.b] defined twice (first at "
                                          "2:1)");
    expect_error("[a.b]\nx = 1\n[a]\nb.y = 2\n", "t.toml:4:1: cannot extend table \"b\" "
                                                 "(defined at 1:1) with dotted keys");
    expect_error("a = [1]\n[[a]]\n", "t.toml:2:3: cannot append to \"a\": it is a static array "
                                     "(defined at 1:5), not an array of tables");
    expect_error("[[a]]\n[a]\n", "t.toml:2:2: key \"a\" is already an array (defined at 1:1), "
                                 "not a table");
    expect_error("a = {x = 1}\n[a.y]\n", "t.toml:2:2: cannot add keys to inline table \"a\" (at "
                                         "1:5)");
    expect_error("a = {x = 1}\na.y = 2\n", "t.toml:2:1: cannot add keys to inline table \"a\" "
                                           "(at 1:5)");
    expect_error("a = {x = 1}\n[a]\n", "t.toml:2:2: table [a] defined twice (first at 1:5)");
    expect_error("a.b = 1\n[a]\n", "t.toml:2:2: table [a] defined twice (first at 1:1)");
}

static void test_toml_rejects_missing_equals(void **state)
{
    (void)state;
    expect_error("[http]\nbind = \"x\"\n    port 7700\n",
                 "t.toml:3:10: expected '=' after key \"port\"");
    expect_error("a.b\n", "t.toml:1:4: expected '=' after key \"a.b\"");
    expect_error("a = {x 1}", "t.toml:1:8: expected '=' after key \"x\"");
    expect_error("= 1", "t.toml:1:1: expected a key, found '='");
    expect_error("a = 1\n[]\n", "t.toml:2:2: expected a key, found ']'");
    expect_error("[a\nx = 1", "t.toml:1:3: expected ']' to close table header [a");
    expect_error("[[a]\n", "t.toml:1:4: expected ']]' to close table header [[a");
    expect_error("[a] x = 1", "t.toml:1:5: expected end of line after table header, found 'x'");
    expect_error("\"\"\"k\"\"\" = 1", "t.toml:1:1: a key cannot be a multi-line string");
}

static void test_toml_rejects_bad_values(void **state)
{
    (void)state;
    expect_error("a = 1 b", "t.toml:1:7: expected end of line after value, found 'b'");
    expect_error("a =\n", "t.toml:1:4: expected a value, found end of line");
    expect_error("a = ", "t.toml:1:5: expected a value, found end of file");
    expect_error("level = info", "t.toml:1:9: invalid value \"info\" (strings must be quoted)");
    expect_error("a = truex", "t.toml:1:5: invalid value \"truex\" (strings must be quoted)");
    expect_error("a = [1, 2\n", "t.toml:1:5: unterminated array");
    expect_error("a = [1 2]", "t.toml:1:8: expected ',' or ']' in array, found '2'");
    expect_error("a = [,]", "t.toml:1:6: expected a value, found ','");
    expect_error("a = {x = 1,}", "t.toml:1:12: trailing comma not allowed in an inline table");
    expect_error("a = {x = 1\n}", "t.toml:1:5: unterminated inline table (it must close on the "
                                  "same line)");
    expect_error("a = {x = 1 y = 2}", "t.toml:1:12: expected ',' or '}' in inline table, found "
                                      "'y'");
    expect_error("d = 1979-05-27", "t.toml:1:5: dates and times are not supported");
    expect_error("t = 07:32:00", "t.toml:1:5: dates and times are not supported");
    expect_error("a = \"x\" # bad \x01 comment", "t.toml:1:15: control character 0x01 in comment");
    expect_error("a = 1\r", "t.toml:1:6: expected end of line after value, found a carriage "
                            "return without line feed");
}

static void test_toml_rejects_bad_numbers(void **state)
{
    (void)state;
    expect_error("a = 1__0", "t.toml:1:5: invalid number \"1__0\"");
    expect_error("a = _1", "t.toml:1:5: invalid value \"_1\" (strings must be quoted)");
    expect_error("a = 1_", "t.toml:1:5: invalid number \"1_\"");
    expect_error("\n\na = 012", "t.toml:3:5: invalid number \"012\": leading zeros are not "
                                "allowed");
    expect_error("a = 9223372036854775808",
                 "t.toml:1:5: integer \"9223372036854775808\" does not fit in 64 bits");
    expect_error("a = -9223372036854775809",
                 "t.toml:1:5: integer \"-9223372036854775809\" does not fit in 64 bits");
    expect_error("a = 0x8000000000000000",
                 "t.toml:1:5: integer \"0x8000000000000000\" does not fit in 64 bits");
    expect_error("a = 0x", "t.toml:1:5: invalid number \"0x\"");
    expect_error("a = 0xG1", "t.toml:1:5: invalid number \"0xG1\"");
    expect_error("a = 0b102", "t.toml:1:5: invalid number \"0b102\"");
    expect_error("a = +0x10", "t.toml:1:5: a sign is not allowed on 0x numbers");
    expect_error("a = 1.", "t.toml:1:5: invalid number \"1.\"");
    expect_error("a = 1.e5", "t.toml:1:5: invalid number \"1.e5\"");
    expect_error("a = 1e", "t.toml:1:5: invalid number \"1e\"");
    expect_error("a = 1.5.3", "t.toml:1:5: invalid number \"1.5.3\"");
    expect_error("a = 00.5", "t.toml:1:5: invalid number \"00.5\": leading zeros are not "
                             "allowed");
    expect_error("a = 1e999", "t.toml:1:5: float \"1e999\" is out of range");
    expect_error("a = infinity", "t.toml:1:5: invalid value \"infinity\" (strings must be "
                                 "quoted)");
    expect_error("a = -", "t.toml:1:5: invalid number \"-\"");
    expect_error("a = .5", "t.toml:1:5: expected a value, found '.'");
}

static void test_toml_rejects_invalid_utf8_and_deep_nesting(void **state)
{
    (void)state;
    expect_error("a = 1\nb = \"\xc3\xa9\xff\"", "t.toml:2:7: invalid UTF-8");
    expect_error("a = \"\xed\xa0\x80\"", "t.toml:1:6: invalid UTF-8"); /* surrogate */
    expect_error("a = \"\xc0\xaf\"", "t.toml:1:6: invalid UTF-8");     /* overlong */
    expect_error("a = \"\xe2\x82", "t.toml:1:6: invalid UTF-8");       /* truncated */
    char deep[128] = "a = ";
    for (int i = 0; i < 40; i++) strcat(deep, "[");
    expect_error(deep, "t.toml:1:37: nesting deeper than 32 levels");
    char parts[256] = "";
    for (int i = 0; i < 40; i++) strcat(parts, "k.");
    strcat(parts, "k = 1");
    expect_error(parts, "t.toml:1:65: key has more than 32 parts");
}

/* ---- robustness ---- */

static const char FUZZ_BASE[] =
    "# mnemo test document\n"
    "title = \"t\\u00e9st \\\"q\\\"\"\n"
    "[http]\n"
    "bind = '127.0.0.1'\n"
    "port = 7_700\n"
    "ratio = -1.5e-3\n"
    "hex = 0xff\n"
    "on = true\n"
    "seeds = [\n  \"a:1\", # c\n  'b:2',\n]\n"
    "[a.b]\n"
    "c.d = { x = 1, y = [1, 2.0, \"z\"], z.w = false }\n"
    "m = \"\"\"\nline \\\n  more\"\"\"\n"
    "l = '''raw\nlines'''\n"
    "[[auth.keys]]\n"
    "name = \"k1\"\n"
    "[[auth.keys]]\n"
    "name = \"k2\"\n"
    "n = [[1], [inf, nan], {}]\n";

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void parse_any(const char *buf, size_t len)
{
    mn_error e = {0};
    mn_toml_value_t *v = NULL;
    mn_err rc = mn_toml_parse(buf, len, "fuzz.toml", &v, &e);
    if (rc == MN_OK) {
        assert_non_null(v);
        mn_toml_free(v);
    } else {
        assert_int_equal(rc, MN_ERR_PARSE);
        assert_null(v);
        assert_int_equal(strncmp(e.message, "fuzz.toml:", 10), 0);
    }
    rc = mn_toml_parse_value(buf, len, "fuzz", &v, &e);
    if (rc == MN_OK) mn_toml_free(v);
}

static void test_toml_survives_random_mutations(void **state)
{
    (void)state;
    static const char alphabet[] = "[]{}=\"'\\.,#\n\r\t _-+0123456789abefinoxtuEU\x01\x7f\xc3\xa9"
                                   "\xff\xed\xe2\x82";
    size_t base = sizeof FUZZ_BASE - 1;
    parse_any(FUZZ_BASE, base);
    for (size_t n = 0; n < base; n++) parse_any(FUZZ_BASE, n); /* every truncation */
    uint64_t seed = 0x6d6e656d6f; /* fixed: failures replay */
    char buf[2 * sizeof FUZZ_BASE];
    int ok = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(buf, FUZZ_BASE, base);
        size_t len = base;
        int muts = 1 + (int)(splitmix(&seed) % 4);
        for (int m = 0; m < muts; m++) {
            size_t pos = (size_t)(splitmix(&seed) % len);
            char c = alphabet[splitmix(&seed) % (sizeof alphabet - 1)];
            switch (splitmix(&seed) % 4) {
            case 0: /* replace */
                buf[pos] = c;
                break;
            case 1: /* insert */
                if (len + 1 < sizeof buf) {
                    memmove(buf + pos + 1, buf + pos, len - pos);
                    buf[pos] = c;
                    len++;
                }
                break;
            case 2: { /* delete a short run */
                size_t k = 1 + (size_t)(splitmix(&seed) % 8);
                if (pos + k > len) k = len - pos;
                memmove(buf + pos, buf + pos + k, len - pos - k);
                len -= k;
                if (len == 0) len = 1, buf[0] = c;
                break;
            }
            default: { /* duplicate a slice */
                size_t k = 1 + (size_t)(splitmix(&seed) % 24);
                if (pos + k > len) k = len - pos;
                if (len + k < sizeof buf) {
                    memmove(buf + pos + k, buf + pos, len - pos);
                    len += k;
                }
                break;
            }
            }
        }
        mn_error e = {0};
        mn_toml_value_t *v = NULL;
        if (mn_toml_parse(buf, len, "fuzz.toml", &v, &e) == MN_OK) ok++;
        mn_toml_free(v);
        parse_any(buf, len);
    }
    /* some mutations keep the document valid, most do not */
    assert_true(ok > 0 && ok < 3000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_toml_parses_tables_and_dotted_headers),
        cmocka_unit_test(test_toml_parses_arrays_of_tables),
        cmocka_unit_test(test_toml_parses_dotted_and_quoted_keys),
        cmocka_unit_test(test_toml_parses_basic_and_literal_strings),
        cmocka_unit_test(test_toml_parses_multiline_strings),
        cmocka_unit_test(test_toml_parses_integers),
        cmocka_unit_test(test_toml_parses_floats),
        cmocka_unit_test(test_toml_parses_booleans_arrays_and_inline_tables),
        cmocka_unit_test(test_toml_accepts_comments_crlf_bom_and_blank_documents),
        cmocka_unit_test(test_toml_columns_count_code_points),
        cmocka_unit_test(test_toml_parses_single_values),
        cmocka_unit_test(test_toml_string_writer_round_trips),
        cmocka_unit_test(test_toml_reads_files_and_reports_missing_ones),
        cmocka_unit_test(test_toml_rejects_unterminated_strings),
        cmocka_unit_test(test_toml_rejects_bad_escapes),
        cmocka_unit_test(test_toml_rejects_duplicate_key),
        cmocka_unit_test(test_toml_rejects_redefined_table),
        cmocka_unit_test(test_toml_rejects_missing_equals),
        cmocka_unit_test(test_toml_rejects_bad_values),
        cmocka_unit_test(test_toml_rejects_bad_numbers),
        cmocka_unit_test(test_toml_rejects_invalid_utf8_and_deep_nesting),
        cmocka_unit_test(test_toml_survives_random_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
