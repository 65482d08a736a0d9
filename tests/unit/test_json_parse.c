/* Arena JSON parser (api/json_parse.c): against cJSON on seeded generated documents, node by
 * node; numbers bit for bit against strtod; the documents both refuse and the ones only the
 * strict parser refuses; nesting limit, \u0000 flag, error offsets, tree shape and the cJSON
 * readers on it; api_body_object's answers; the limits applied while parsing (where, what,
 * the field named) and compact number arrays (api_to_float of strtod, bit for bit); trees
 * passed in process (references, borrowed roots); and a bounded mutation fuzz loop, plain and
 * within limits with compact arrays (under ASan in the sanitizer build: no crash, no leak). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"

/* ---- helpers ---- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void putf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof tmp);
    put(b, tmp, (size_t)n);
}

static uint64_t below(mn_prng_t *p, uint64_t n)
{
    return mn_prng_below(p, n);
}

/* cJSON's verdict on the whole of s[0..n): a tree, or NULL (trailing data other than what
 * cJSON itself skips as whitespace is a refusal, as require_null_terminated would say). */
static cJSON *cjson_parse(const char *s, size_t n)
{
    if (n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) { /* cJSON skips it only before 2+ bytes */
        s += 3;
        n -= 3;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (!j) return NULL;
    while (end < s + n && (unsigned char)*end <= 32)
        end++;
    if (end != s + n) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static bool same_double(double a, double b)
{
    return !memcmp(&a, &b, sizeof a);
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* Node by node: types, keys, values (doubles bit for bit), and the links, including
 * child->prev = the last child. On a difference, says where in why. */
static bool same_tree(const cJSON *a, const cJSON *b, char *why, size_t len);

/* A compact array of ours against cJSON's array of numbers: the same count, and each value
 * bit for bit what api_get_floats made of cJSON's double before (api_to_float). */
static bool same_floats(const cJSON *a, const cJSON *b, char *why, size_t len)
{
    const float *f;
    size_t n;
    if (!api_json_floats(a, &f, &n) || !cJSON_IsArray(b))
        return snprintf(why, len, "compact vs type %d", b->type), false;
    size_t i = 0;
    for (const cJSON *c = b->child; c; c = c->next, i++) {
        if (i >= n || !cJSON_IsNumber(c)) return snprintf(why, len, "compact: count"), false;
        float want = api_to_float(c->valuedouble);
        if (memcmp(&want, &f[i], sizeof want))
            return snprintf(why, len, "compact [%zu]: %a vs %a", i, (double)f[i], (double)want),
                   false;
    }
    if (i != n || a->child) return snprintf(why, len, "compact: count %zu vs %zu", n, i), false;
    if (!same_str(a->string, b->string)) return snprintf(why, len, "key differs"), false;
    return true;
}

static bool same_tree(const cJSON *a, const cJSON *b, char *why, size_t len)
{
    if (a->type & API_JSON_FLOATS) return same_floats(a, b, why, len);
    if (a->type != b->type) return snprintf(why, len, "type %d vs %d", a->type, b->type), false;
    if (!same_str(a->string, b->string)) return snprintf(why, len, "key differs"), false;
    if (!same_str(a->valuestring, b->valuestring))
        return snprintf(why, len, "string differs (key %s)", a->string ? a->string : "-"), false;
    if (a->valueint != b->valueint)
        return snprintf(why, len, "valueint %d vs %d", a->valueint, b->valueint), false;
    if (!same_double(a->valuedouble, b->valuedouble))
        return snprintf(why, len, "valuedouble %.17g vs %.17g", a->valuedouble, b->valuedouble),
               false;
    const cJSON *x = a->child, *y = b->child, *px = NULL;
    for (; x && y; px = x, x = x->next, y = y->next) {
        if (px && x->prev != px) return snprintf(why, len, "a prev link is wrong"), false;
        if (!same_tree(x, y, why, len)) return false;
    }
    if (x || y) return snprintf(why, len, "child counts differ"), false;
    if (a->child && a->child->prev != px) return snprintf(why, len, "child->prev != last"), false;
    if (b->child && b->child->prev == NULL) return snprintf(why, len, "cJSON has no prev"), false;
    return true;
}

/* Parses s with both; both must accept and build the same tree. */
static void expect_same(const char *s, size_t n)
{
    api_json_result r;
    cJSON *ours = api_json_parse(s, n, &r);
    cJSON *theirs = cjson_parse(s, n);
    if (!ours) {
        size_t from = r.offset > 40 ? r.offset - 40 : 0;
        fail_msg("refused (status %d at %zu), near: %.*s<HERE>%.*s", r.status, r.offset,
                 (int)(r.offset - from), s + from, (int)(n - r.offset > 40 ? 40 : n - r.offset),
                 s + r.offset);
    }
    if (!theirs) fail_msg("cJSON refused: %.*s", (int)(n > 300 ? 300 : n), s);
    char why[200];
    if (!same_tree(ours, theirs, why, sizeof why))
        fail_msg("trees differ (%s): %.*s", why, (int)(n > 300 ? 300 : n), s);
    api_json_free(ours);
    cJSON_Delete(theirs);
}

/* ---- generated documents ---- */

static void gen_ws(mn_prng_t *p, buf *b)
{
    static const char ws[] = " \t\n\r";
    for (uint64_t i = below(p, 4) == 0 ? below(p, 3) + 1 : 0; i > 0; i--)
        put(b, &ws[below(p, 4)], 1);
}

/* Code point of random width (never a surrogate, never 0). */
static unsigned long gen_cp(mn_prng_t *p)
{
    switch (below(p, 4)) {
    case 0: { /* printable ASCII (0x7f is allowed raw too) */
        unsigned long cp = 0x20 + below(p, 0x60);
        return cp == '"' || cp == '\\' ? 'q' : cp;
    }
    case 1:
        return 0x80 + below(p, 0x800 - 0x80);
    case 2: {
        unsigned long cp = 0x800 + below(p, 0x10000 - 0x800);
        return cp >= 0xd800 && cp <= 0xdfff ? 0xe9 : cp;
    }
    default:
        return 0x10000 + below(p, 0x110000 - 0x10000);
    }
}

static void put_utf8(buf *b, unsigned long cp)
{
    unsigned char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xc0 | cp >> 6);
        u[1] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xe0 | cp >> 12);
        u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xf0 | cp >> 18);
        u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        u[3] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    put(b, u, n);
}

static void put_u16(mn_prng_t *p, buf *b, unsigned long unit)
{
    putf(b, below(p, 2) ? "\\u%04lx" : "\\u%04lX", unit);
}

/* A string with every kind of piece: plain text, each escape, \u of every width and
 * surrogate pairs, raw UTF-8 and raw bytes >= 0x80 that are not UTF-8 (copied as they are). */
static void gen_string(mn_prng_t *p, buf *b)
{
    static const char *const esc[] = {"\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"};
    put(b, "\"", 1);
    for (uint64_t i = below(p, 12); i > 0; i--) {
        switch (below(p, 7)) {
        case 0:
            puts_(b, esc[below(p, 8)]);
            break;
        case 1: { /* one code unit, not a surrogate, not 0 */
            unsigned long u = below(p, 2) ? 1 + below(p, 0x7f) : 1 + below(p, 0xfffe);
            put_u16(p, b, u >= 0xd800 && u <= 0xdfff ? u - 0x1000 : u);
            break;
        }
        case 2: {
            unsigned long cp = 0x10000 + below(p, 0x100000);
            put_u16(p, b, 0xd800 + ((cp - 0x10000) >> 10));
            put_u16(p, b, 0xdc00 + ((cp - 0x10000) & 0x3ff));
            break;
        }
        case 3:
            put_utf8(b, gen_cp(p));
            break;
        case 4: {
            unsigned char raw = (unsigned char)(0x80 + below(p, 0x80));
            put(b, &raw, 1);
            break;
        }
        default: {
            static const char plain[] = "abcXYZ019 _-.,:{}[]'~";
            put(b, &plain[below(p, sizeof plain - 1)], 1);
        }
        }
    }
    put(b, "\"", 1);
}

static double random_double(mn_prng_t *p)
{
    for (;;) {
        uint64_t bits = mn_prng_next(p);
        double d;
        memcpy(&d, &bits, sizeof d);
        if (isfinite(d)) return d;
    }
}

/* A number of one of many shapes; always valid JSON. */
static void gen_number(mn_prng_t *p, buf *b)
{
    static const char *const fixed[] = {"0",
                                        "-0",
                                        "0.0",
                                        "-0.0",
                                        "1",
                                        "-1",
                                        "0e0",
                                        "0E+5",
                                        "-0e-5",
                                        "1e308",
                                        "-1e308",
                                        "1.7976931348623157e308",
                                        "1.7976931348623158e308",
                                        "1.7976931348623159e308",
                                        "2.2250738585072011e-308",
                                        "2.2250738585072012e-308",
                                        "2.2250738585072014e-308",
                                        "1e-320",
                                        "-1e-320",
                                        "4.9e-324",
                                        "5e-324",
                                        "2.4703282292062327e-324",
                                        "2.4703282292062328e-324",
                                        "1e-400",
                                        "1e400",
                                        "-1e400",
                                        "1e99999999999999999999",
                                        "9007199254740992",
                                        "9007199254740993",
                                        "9007199254740993.0",
                                        "9007199254740992.5",
                                        "18446744073709551615",
                                        "18446744073709551616",
                                        "9999999999999999999",
                                        "10000000000000000000",
                                        "1234567890123456789e-27",
                                        "1234567890123456789e27",
                                        "1234567890123456789e28",
                                        "123456789012345678901234567890",
                                        "0.000000000000000000000000000000123456789",
                                        "1e007",
                                        "1E-007",
                                        "2147483647",
                                        "2147483648",
                                        "-2147483648",
                                        "-2147483649",
                                        "2147483647.5",
                                        "-2147483648.5",
                                        "3e9",
                                        "-3e9",
                                        "0.1",
                                        "0.2",
                                        "0.3",
                                        "1.5",
                                        "100",
                                        "1e22",
                                        "1e23",
                                        "1e-22",
                                        "1e-23",
                                        "8.98846567431158e307",
                                        "4503599627370496.5",
                                        "4503599627370497.5",
                                        "1.00000000000000011102230246251565404236316680908203125",
                                        "1.00000000000000011102230246251565404236316680908203124",
                                        "1.00000000000000011102230246251565404236316680908203126"};
    char tmp[128];
    double d;
    switch (below(p, 12)) {
    case 0:
        puts_(b, fixed[below(p, sizeof fixed / sizeof *fixed)]);
        return;
    case 1:
        putf(b, "%lld", (long long)(mn_prng_next(p) >> below(p, 64)));
        return;
    case 2:
        putf(b, "-%llu", (unsigned long long)(mn_prng_next(p) >> below(p, 64)));
        return;
    case 3:
        putf(b, "%u.%0*u", (unsigned)below(p, 100000), (int)below(p, 9) + 1,
             (unsigned)below(p, 1000000000));
        return;
    case 4: /* a float32 as clients print it */
        snprintf(tmp, sizeof tmp, "%.*g", (int)below(p, 9) + 1,
                 (double)(float)(mn_prng_double(p) * 2 - 1));
        break;
    case 5: /* a double printed with 15..17 digits: mantissas past 2^53 */
        d = random_double(p);
        snprintf(tmp, sizeof tmp, "%.*g", 15 + (int)below(p, 3), d);
        break;
    case 6: /* a moderate double with 17 digits: the long double path */
        d = (mn_prng_double(p) * 2 - 1) * pow(10, (double)below(p, 40) - 20);
        snprintf(tmp, sizeof tmp, "%.*e", 16 + (int)below(p, 3), d);
        break;
    case 7: { /* subnormal */
        uint64_t bits = mn_prng_next(p) & 0x800fffffffffffffull;
        memcpy(&d, &bits, sizeof d);
        snprintf(tmp, sizeof tmp, "%.*g", 1 + (int)below(p, 17), d);
        break;
    }
    case 8: { /* near the midpoint of two doubles: the hardest roundings */
        d = fabs(random_double(p));
        if (d >= DBL_MAX) d = 1;
        if (below(p, 2)) d = ldexp(1 + mn_prng_double(p), (int)below(p, 160) - 30);
        long double mid = ((long double)d + (long double)nextafter(d, INFINITY)) / 2;
        snprintf(tmp, sizeof tmp, "%.*Le", 15 + (int)below(p, 12), mid);
        break;
    }
    case 9: /* an explicit mantissa and exponent of every size */
        snprintf(tmp, sizeof tmp, "%llu%s%d", (unsigned long long)(mn_prng_next(p) >> below(p, 64)),
                 below(p, 2) ? "e" : "E", (int)below(p, 80) - 40);
        break;
    case 10: { /* a long run of digits */
        int n = 1 + (int)below(p, 60);
        tmp[0] = (char)('1' + below(p, 9));
        for (int i = 1; i < n; i++)
            tmp[i] = (char)('0' + below(p, 10));
        tmp[n] = '\0';
        if (below(p, 2)) snprintf(tmp + n, sizeof tmp - (size_t)n, "e-%d", (int)below(p, 400));
        break;
    }
    default:
        snprintf(tmp, sizeof tmp, "%s0.%0*d%u", below(p, 2) ? "-" : "", (int)below(p, 30), 0,
                 (unsigned)below(p, 100000000));
        break;
    }
    puts_(b, tmp);
}

static void gen_value(mn_prng_t *p, buf *b, int depth)
{
    uint64_t k = below(p, depth < 6 ? 10 : 6);
    gen_ws(p, b);
    switch (k) {
    case 0:
        puts_(b, "true");
        break;
    case 1:
        puts_(b, "false");
        break;
    case 2:
        puts_(b, "null");
        break;
    case 3:
    case 4:
        gen_string(p, b);
        break;
    case 5:
        gen_number(p, b);
        break;
    case 6:
    case 7: {
        put(b, "[", 1);
        uint64_t n = below(p, 6);
        for (uint64_t i = 0; i < n; i++) {
            if (i) put(b, ",", 1);
            gen_value(p, b, depth + 1);
        }
        gen_ws(p, b);
        put(b, "]", 1);
        break;
    }
    default: {
        put(b, "{", 1);
        uint64_t n = below(p, 6);
        for (uint64_t i = 0; i < n; i++) {
            if (i) put(b, ",", 1);
            gen_ws(p, b);
            gen_string(p, b); /* keys repeat sometimes: both keep every member */
            gen_ws(p, b);
            put(b, ":", 1);
            gen_value(p, b, depth + 1);
        }
        gen_ws(p, b);
        put(b, "}", 1);
    }
    }
    gen_ws(p, b);
}

static void test_json_parse_builds_the_tree_cjson_builds(void **state)
{
    (void)state;
    mn_prng_t p;
    mn_prng_seed(&p, 20260131);
    buf b = {0};
    for (int i = 0; i < 20000; i++) {
        b.len = 0;
        gen_value(&p, &b, 0);
        expect_same(b.p, b.len);
    }
    free(b.p);
}

static void test_json_parse_numbers_are_strtod_bit_for_bit(void **state)
{
    (void)state;
    mn_prng_t p;
    mn_prng_seed(&p, 7);
    buf b = {0};
    for (int i = 0; i < 300000; i++) {
        b.len = 0;
        put(&b, "[", 1);
        gen_number(&p, &b);
        put(&b, "]", 1);
        api_json_result r;
        cJSON *j = api_json_parse(b.p, b.len, &r);
        if (!j) fail_msg("refused %s", b.p);
        b.p[b.len - 1] = '\0';
        double want = strtod(b.p + 1, NULL);
        if (!same_double(j->child->valuedouble, want))
            fail_msg("%s: %.17g, strtod says %.17g", b.p + 1, j->child->valuedouble, want);
        if (i % 8 == 0) { /* and as cJSON, valueint included */
            b.p[b.len - 1] = ']';
            cJSON *c = cjson_parse(b.p, b.len);
            assert_non_null(c);
            assert_true(same_double(c->child->valuedouble, want));
            assert_int_equal(c->child->valueint, j->child->valueint);
            cJSON_Delete(c);
        }
        api_json_free(j);
    }
    free(b.p);
}

/* The long double path on its own: every mantissa size against every exponent it takes. */
static void test_json_parse_exact_paths_round_like_strtod(void **state)
{
    (void)state;
    mn_prng_t p;
    mn_prng_seed(&p, 99);
    char s[64];
    for (int i = 0; i < 400000; i++) {
        uint64_t m = mn_prng_next(&p) >> below(&p, 64);
        if (m > 9999999999999999999ull) m /= 2;
        int e = (int)below(&p, 61) - 30;
        snprintf(s, sizeof s, "%llue%d", (unsigned long long)m, e);
        api_json_result r;
        cJSON *j = api_json_parse(s, strlen(s), &r);
        assert_non_null(j);
        double want = strtod(s, NULL);
        if (!same_double(j->valuedouble, want))
            fail_msg("%s: %.17g, strtod says %.17g", s, j->valuedouble, want);
        api_json_free(j);
    }
}

/* ---- what is refused ---- */

static void expect_refused(const char *s, size_t n, api_json_status st, size_t offset)
{
    api_json_result r;
    cJSON *j = api_json_parse(s, n, &r);
    if (j) fail_msg("accepted: %.*s", (int)n, s);
    if (r.status != st || r.offset != offset)
        fail_msg("%.*s: status %d at %zu, expected %d at %zu", (int)n, s, r.status, r.offset, st,
                 offset);
}

#define REFUSED(lit, st, off) expect_refused(lit, sizeof lit - 1, st, off)

static void test_json_parse_refuses_what_cjson_refuses(void **state)
{
    (void)state;
    static const struct {
        const char *doc;
        size_t offset;
    } both[] = {
        {"", 0},
        {"   ", 3},
        {"[", 1},
        {"]", 0},
        {"{", 1},
        {"}", 0},
        {"[1,]", 3},
        {"{\"a\":1,}", 7},
        {"{\"a\"}", 4},
        {"{\"a\" 1}", 5},
        {"{1:2}", 1},
        {"{a:1}", 1},
        {"[1 2]", 3},
        {"tru", 0},
        {"nul", 0},
        {"[tru]", 1},
        {"True", 0},
        {"NaN", 0},
        {"Infinity", 0},
        {"-Infinity", 1},
        {"+1", 0},
        {".5", 0},
        {"[-]", 2},
        {"[1e]", 3},
        {"[1e+]", 4},
        {"[1e+-1]", 4},
        {"[--1]", 2},
        {"[0x10]", 2},
        {"'a'", 0},
        {"[\"\\x\"]", 2},
        {"[\"\\u12\"]", 2},
        {"[\"\\ud800\"]", 2},
        {"[\"\\udc00\"]", 2},
        {"[\"\\ud800\\u0041\"]", 2},
        {"[\"\\ud800\\ud800\"]", 2},
        {"[\"abc", 5},
        {"[\"abc\\", 6},
        {"{\"a\":{\"b\":[1,2]", 15},
        {"[1,,2]", 3},
        {"[,1]", 1},
        {"{,}", 1},
        {"{\"a\":1 \"b\":2}", 7},
        {"[1]]", 3},
        {"{}}", 2},
        {"\"a\" \"b\"", 4},
        {"[\"a\"\"b\"]", 4},
        {"{\"a\"::1}", 5},
        {"[nulll]", 5},
        {"[1.5.3]", 4},
        {"[\"\\ud83d\\udezz\"]", 2}, /* cJSON reads zz as 0, not a low surrogate */
    };
    for (size_t i = 0; i < sizeof both / sizeof *both; i++) {
        const char *s = both[i].doc;
        size_t n = strlen(s);
        cJSON *c = cjson_parse(s, n);
        if (c) fail_msg("cJSON accepts %s", s);
        api_json_result r;
        cJSON *j = api_json_parse(s, n, &r);
        if (j) fail_msg("accepted: %s", s);
        if (r.offset != both[i].offset)
            fail_msg("%s: offset %zu, expected %zu", s, r.offset, both[i].offset);
        bool trailing = r.status == API_JSON_TRAILING;
        assert_int_equal(r.status, trailing ? API_JSON_TRAILING : API_JSON_SYNTAX);
    }
}

/* Strict RFC 8259 where cJSON is lax: each of these is accepted by cJSON. */
static void test_json_parse_refuses_what_rfc8259_forbids(void **state)
{
    (void)state;
    static const struct {
        const char *doc;
        api_json_status st;
        size_t offset;
    } strict[] = {
        {"01", API_JSON_TRAILING, 1}, /* leading zeros */
        {"[01]", API_JSON_SYNTAX, 2},          {"[-01]", API_JSON_SYNTAX, 3},
        {"[00]", API_JSON_SYNTAX, 2},          {"[1.]", API_JSON_SYNTAX, 3}, /* digits after '.' */
        {"[1.e5]", API_JSON_SYNTAX, 3},        {"[-.5]", API_JSON_SYNTAX, 2},
        {"[\"a\tb\"]", API_JSON_SYNTAX, 3}, /* raw control characters in strings */
        {"[\"a\nb\"]", API_JSON_SYNTAX, 3},    {"[\"\x01\"]", API_JSON_SYNTAX, 2},
        {"[\"\x1f\"]", API_JSON_SYNTAX, 2},    {"\x01[1]", API_JSON_SYNTAX, 0}, /* whitespace */
        {"[ 1\x0b]", API_JSON_SYNTAX, 3},      {"[1]\x0c", API_JSON_TRAILING, 3},
        {"\x0b{}", API_JSON_SYNTAX, 0},        {"[\"\\u00zz\"]", API_JSON_SYNTAX, 2}, /* hex */
        {"[\"\\uGGGG\"]", API_JSON_SYNTAX, 2},
    };
    for (size_t i = 0; i < sizeof strict / sizeof *strict; i++) {
        const char *s = strict[i].doc;
        size_t n = strlen(s);
        cJSON *c = cjson_parse(s, n);
        if (!c) fail_msg("cJSON refuses %s: move it to the list both refuse", s);
        cJSON_Delete(c);
        expect_refused(s, n, strict[i].st, strict[i].offset);
    }
}

static void test_json_parse_accepts_edge_documents(void **state)
{
    (void)state;
    static const char *const ok[] = {"0",
                                     "-0",
                                     "\"\"",
                                     "[]",
                                     "{}",
                                     " [ ] ",
                                     "\t\r\n{}\t\r\n",
                                     "[[],{},[[]]]",
                                     "{\"\":\"\"}",
                                     "{\"a\":1,\"a\":2}",
                                     "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
                                     "\"\\u00e9\\u20AC\"",
                                     "\"\\ud83d\\ude00\"",
                                     "\"\\uDBFF\\uDFFF\"",
                                     "\"\xff\xfe\"",
                                     "\"caf\xc3\xa9\"",
                                     "\xef\xbb\xbf{\"bom\":true}",
                                     "[1e400,-1e400,1e-400,-0.0,5e-324]",
                                     "[true,false,null]",
                                     "{\"k\":[1,{\"x\":[\"y\",null]}]}"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        expect_same(ok[i], strlen(ok[i]));
}

static void test_json_parse_limits_nesting_to_1000(void **state)
{
    (void)state;
    for (int depth = 999; depth <= 1001; depth++) {
        for (int obj = 0; obj < 2; obj++) {
            buf b = {0};
            for (int i = 0; i < depth; i++)
                puts_(&b, obj ? "{\"a\":" : "[");
            puts_(&b, obj ? "1" : "1");
            for (int i = 0; i < depth; i++)
                puts_(&b, obj ? "}" : "]");
            api_json_result r;
            cJSON *j = api_json_parse(b.p, b.len, &r);
            cJSON *c = cjson_parse(b.p, b.len);
            assert_int_equal(j != NULL, c != NULL); /* the same limit as cJSON */
            if (depth <= API_JSON_DEPTH_MAX) {
                assert_non_null(j);
                char why[200];
                assert_true(same_tree(j, c, why, sizeof why));
            } else {
                assert_null(j);
                assert_int_equal(r.status, API_JSON_DEPTH);
                assert_int_equal(r.offset, (size_t)API_JSON_DEPTH_MAX * (obj ? 5 : 1));
            }
            api_json_free(j);
            cJSON_Delete(c);
            free(b.p);
        }
    }
    /* far deeper, and an empty container at the limit */
    buf b = {0};
    for (int i = 0; i < 200000; i++)
        puts_(&b, "[");
    REFUSED("[[", API_JSON_SYNTAX, 2);
    api_json_result r;
    assert_null(api_json_parse(b.p, b.len, &r));
    assert_int_equal(r.status, API_JSON_DEPTH);
    b.len = 0;
    for (int i = 0; i < API_JSON_DEPTH_MAX; i++)
        puts_(&b, "[");
    for (int i = 0; i < API_JSON_DEPTH_MAX; i++)
        puts_(&b, "]");
    cJSON *j = api_json_parse(b.p, b.len, &r);
    assert_non_null(j);
    api_json_free(j);
    free(b.p);
}

static void test_json_parse_reports_nul_escapes(void **state)
{
    (void)state;
    static const struct {
        const char *doc;
        bool nul;
    } cases[] = {{"{\"a\":\"x\\u0000y\"}", true}, {"{\"a\\u0000\":1}", true},
                 {"[\"\\u0000\"]", true},         {"{\"a\":\"\\\\u0000\"}", false},
                 {"{\"a\":\"\\u0001\"}", false},  {"{\"a\":\"u0000\"}", false},
                 {"{\"a\":\"\\u00000\"}", true}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        api_json_result r;
        cJSON *j = api_json_parse(cases[i].doc, strlen(cases[i].doc), &r);
        assert_non_null(j);
        if (r.has_nul != cases[i].nul) fail_msg("%s: has_nul %d", cases[i].doc, r.has_nul);
        api_json_free(j);
        expect_same(cases[i].doc, strlen(cases[i].doc)); /* cut short at the NUL, as cJSON */
    }
    api_json_result r;
    cJSON *j = api_json_parse("\"x\\u0000y\"", 10, &r);
    assert_non_null(j);
    assert_string_equal(j->valuestring, "x");
    assert_memory_equal(j->valuestring, "x\0y", 4);
    api_json_free(j);
}

static void test_json_parse_reports_offsets(void **state)
{
    (void)state;
    REFUSED("{\"a\":}", API_JSON_SYNTAX, 5);
    REFUSED("[1,2", API_JSON_SYNTAX, 4);
    REFUSED("{} x", API_JSON_TRAILING, 3);
    REFUSED("{}{}", API_JSON_TRAILING, 2);
    REFUSED("\"abc", API_JSON_SYNTAX, 4);
    REFUSED("[\"ab\\q\"]", API_JSON_SYNTAX, 4);
    REFUSED("{\"memories\":[{\"embedding\":[0.1,0.2,x]}]}", API_JSON_SYNTAX, 35);
    REFUSED("{\"a\":\"\\ud83d\"}", API_JSON_SYNTAX, 6);
    REFUSED("[1,2]\n\n,", API_JSON_TRAILING, 7);
    REFUSED("[1.5e]", API_JSON_SYNTAX, 5);
    REFUSED("\xef\xbb\xbf", API_JSON_SYNTAX, 3);
    REFUSED("\xef\xbb", API_JSON_SYNTAX, 0);
    /* the input need not be NUL-terminated: nothing past len is read */
    char *heap = malloc(3);
    memcpy(heap, "[12", 3);
    expect_refused(heap, 3, API_JSON_SYNTAX, 3);
    memcpy(heap, "1.5", 3);
    api_json_result r;
    cJSON *j = api_json_parse(heap, 3, &r);
    assert_non_null(j);
    assert_true(j->valuedouble == 1.5);
    api_json_free(j);
    free(heap);
}

/* ---- the tree ---- */

static void test_json_parse_tree_reads_like_cjson(void **state)
{
    (void)state;
    static const char doc[] =
        "{\"content\":\"hi\",\"embedding\":[0.5,-1,3e9,-3e9,1e400],\"tags\":[\"a\",\"b\"],"
        "\"context\":{\"where\":\"x\"},\"t\":true,\"f\":false,\"n\":null,\"ms\":1700000000000}";
    api_json_result r;
    cJSON *o = api_json_parse(doc, sizeof doc - 1, &r);
    assert_non_null(o);
    assert_false(r.has_nul);
    assert_true(cJSON_IsObject(o));
    assert_int_equal(cJSON_GetArraySize(o), 8);
    assert_ptr_equal(o->child->prev, cJSON_GetObjectItemCaseSensitive(o, "ms"));
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "embedding");
    assert_int_equal(cJSON_GetArraySize(e), 5);
    assert_int_equal(cJSON_GetArrayItem(e, 1)->valueint, -1);
    assert_int_equal(cJSON_GetArrayItem(e, 2)->valueint, INT_MAX); /* saturated as cJSON */
    assert_int_equal(cJSON_GetArrayItem(e, 3)->valueint, INT_MIN);
    assert_true(isinf(cJSON_GetArrayItem(e, 4)->valuedouble));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "t")->valueint, 1);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "f")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "n")));
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "Content"));
    assert_non_null(cJSON_GetObjectItem(o, "Content")); /* case-insensitive lookup too */

    /* the typed readers of api_json.c */
    static const char *const fields[] = {"content", "embedding", "tags", "context", "t",
                                         "f",       "n",         "ms",   NULL};
    mn_error err = {0};
    assert_int_equal(api_check_fields(o, fields, "", &err), MN_OK);
    api_arena a;
    api_arena_init(&a);
    const char *content = NULL;
    assert_int_equal(api_get_string(o, "content", "", &content, &err), MN_OK);
    assert_string_equal(content, "hi");
    float *f = NULL;
    uint32_t nf = 0;
    assert_int_equal(api_get_floats(o, "embedding", "", &a, &f, &nf, &err), MN_OK);
    assert_int_equal(nf, 5);
    assert_true(f[0] == 0.5f && f[1] == -1.0f && isinf(f[4]));
    char **tags = NULL;
    size_t nt = 0;
    assert_int_equal(api_get_strings(o, "tags", "", false, &a, &tags, &nt, &err), MN_OK);
    assert_int_equal(nt, 2);
    assert_string_equal(tags[1], "b");
    int64_t ms = 0;
    bool has = false;
    assert_int_equal(api_get_time(o, "ms", "", &has, &ms, &err), MN_OK);
    assert_true(has && ms == 1700000000000);
    bool t = false;
    assert_int_equal(api_get_bool(o, "t", "", &has, &t, &err), MN_OK);
    assert_true(t);
    assert_int_equal(api_get_int(o, "n", "", &has, &ms, &err), MN_OK);
    assert_false(has);
    api_arena_free(&a);

    /* a duplicate is an ordinary malloc'd tree, free to change */
    cJSON *copy = cJSON_Duplicate(o, 1);
    assert_non_null(copy);
    char why[200];
    assert_true(same_tree(copy, o, why, sizeof why)); /* cJSON_Compare finds inf != inf */
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "embedding");
    assert_int_equal(cJSON_GetArraySize(copy), 7);
    cJSON_Delete(copy);
    char *printed = cJSON_PrintUnformatted(o);
    assert_non_null(printed);
    cJSON_free(printed);
    api_json_free(o);
    api_json_free(NULL);
}

/* ---- api_body_object ---- */

static void expect_body_dim(const char *body, size_t n, uint32_t dim, int status,
                            const char *code, const char *message)
{
    mn_http_request_t req;
    memset(&req, 0, sizeof req);
    req.body = body;
    req.body_len = n;
    mn_http_response_t resp;
    memset(&resp, 0, sizeof resp);
    cJSON *j = api_body_object(&req, dim, &resp);
    if (!status) {
        assert_non_null(j);
        assert_null(resp.body);
        api_json_free(j);
        return;
    }
    assert_null(j);
    assert_int_equal(resp.status, status);
    cJSON *e = cJSON_ParseWithLength(resp.body, resp.body_len);
    assert_non_null(e);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(e, "error");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(err, "code")->valuestring, code);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(err, "message")->valuestring, message);
    cJSON_Delete(e);
    free(resp.body);
    free(resp.extra_headers);
}

static void expect_body(const char *body, size_t n, int status, const char *code,
                        const char *message)
{
    expect_body_dim(body, n, 0, status, code, message);
}

#define BODY(lit, status, code, msg) expect_body(lit, sizeof lit - 1, status, code, msg)

static void test_json_parse_body_object_keeps_its_answers(void **state)
{
    (void)state;
    BODY("{\"a\":[1,2]}", 0, NULL, NULL);
    BODY("", 400, "invalid_json", "empty body: expected a JSON object");
    BODY(" \n\t", 400, "invalid_json", "empty body: expected a JSON object");
    BODY("{\"a\":\"\0\"}", 400, "invalid_json", "the body contains a NUL byte");
    BODY("{\"name\": }", 400, "invalid_json", "malformed JSON at byte 9");
    BODY("{\"a\":1} trailing", 400, "invalid_json",
         "unexpected data after the JSON value at byte 8");
    BODY("[]", 422, "invalid_argument", "body: expected a JSON object");
    BODY("\"x\"", 422, "invalid_argument", "body: expected a JSON object");
    BODY("{\"a\":\"\\u0000\"}", 422, "invalid_argument",
         "strings must not contain the NUL character (\\u0000)");
    BODY("{\"a\":\"\xff\\ud800\"}", 400, "invalid_json", "malformed JSON at byte 7");
    buf b = {0};
    puts_(&b, "{\"a\":");
    for (int i = 0; i < 2000; i++)
        puts_(&b, "[");
    expect_body(b.p, b.len, 400, "invalid_json", "malformed JSON at byte 36"); /* 32 deep */
    free(b.p);
}

/* ---- limits while parsing, compact number arrays ---- */

/* Parses s with o: refused with limit `what`, count and path. */
static void expect_limit(const char *s, const api_json_opts *o, api_json_limit what, size_t count,
                         const char *path)
{
    api_json_result r;
    cJSON *j = api_json_parse_opts(s, strlen(s), o, &r);
    if (j) fail_msg("accepted: %s", s);
    assert_int_equal(r.status, API_JSON_LIMIT);
    assert_int_equal(r.limit, what);
    assert_int_equal(r.count, count);
    assert_string_equal(r.path, path);
}

static void test_json_parse_limits_apply_while_parsing(void **state)
{
    (void)state;
    api_json_opts o = {.floats_max = 2, .compact_floats = true};
    expect_limit("{\"embedding\":[1,2,3]}", &o, API_JSON_LIMIT_FLOATS, 3, "embedding");
    expect_limit("{\"memories\":[{\"content\":\"a\"},{\"embedding\":[1, 2 ,3e5,-4]}]}", &o,
                 API_JSON_LIMIT_FLOATS, 4, "memories[1].embedding");
    expect_limit("[0,1,2]", &o, API_JSON_LIMIT_FLOATS, 3, "");
    /* refused at the array, before the rest is read: the syntax error after it is not seen */
    buf b = {0};
    puts_(&b, "{\"embedding\":[");
    for (int i = 0; i < 100000; i++)
        puts_(&b, i ? ",0.125" : "0.125");
    puts_(&b, "], \"x\": }");
    api_json_result r;
    assert_null(api_json_parse_opts(b.p, b.len, &o, &r));
    assert_int_equal(r.status, API_JSON_LIMIT);
    assert_int_equal(r.count, 100000);
    assert_int_equal(r.offset, 14); /* the first value */
    free(b.p);

    o = (api_json_opts){.members_max = 2};
    expect_limit("{\"memories\":[{},{},{}]}", &o, API_JSON_LIMIT_MEMBERS, 3, "memories");
    expect_limit("{\"a\":[1,2],\"b\":{\"x\":1,\"y\":2,\"z\":3}}", &o, API_JSON_LIMIT_MEMBERS, 3,
                 "b");
    expect_limit("{\"a\":1,\"b\":2,\"c\":3}", &o, API_JSON_LIMIT_MEMBERS, 3, "");
    expect_limit("[[1],[2,[3,4,5]]]", &o, API_JSON_LIMIT_MEMBERS, 3, "[1][1]");

    o = (api_json_opts){.string_bytes_max = 4};
    expect_limit("{\"a\":{\"c\":\"12345\"}}", &o, API_JSON_LIMIT_STRING, 5, "a.c");
    expect_limit("{\"a\":[\"\\u00e9\\u00e9\\u00e9\"]}", &o, API_JSON_LIMIT_STRING, 6, "a[0]");
    expect_limit("{\"a\":{\"longkey\":1}}", &o, API_JSON_LIMIT_STRING, 7, "a"); /* a key */
    api_json_result ok;
    static const char four[] = "[\"\\u00e9\\u00e9\",\"1234\"]";
    cJSON *j = api_json_parse_opts(four, sizeof four - 1, &o, &ok);
    assert_non_null(j); /* 4 bytes decoded is within the limit, whatever the text's length */
    api_json_free(j);

    o = (api_json_opts){.nodes_max = 3};
    expect_limit("[1,\"a\",true,null]", &o, API_JSON_LIMIT_NODES, 4, ""); /* the root aside */
    o.compact_floats = true; /* a compact array is one node */
    static const char two[] = "[[1,2,3,4,5,6],[7]]";
    j = api_json_parse_opts(two, sizeof two - 1, &o, &ok);
    assert_non_null(j);
    api_json_free(j);

    o = (api_json_opts){.depth_max = 2};
    assert_null(api_json_parse_opts("[[[]]]", 6, &o, &r));
    assert_int_equal(r.status, API_JSON_DEPTH);
    assert_int_equal(r.offset, 2);
}

/* api_get_floats reads o's "embedding" as want[0..n), bit for bit. */
static void expect_floats(const cJSON *o, const float *want, size_t n)
{
    api_arena a;
    api_arena_init(&a);
    float *got = NULL;
    uint32_t ng = 0;
    mn_error err = {0};
    assert_int_equal(api_get_floats(o, "embedding", "", &a, &got, &ng, &err), MN_OK);
    assert_int_equal(ng, n);
    assert_memory_equal(got, want, n * sizeof *want);
    api_arena_free(&a);
}

/* Every number of gen_number, alone and in arrays with blanks: the compact values are
 * api_to_float(strtod(text)) bit for bit, and api_get_floats reads them. */
static void test_json_parse_compact_floats_are_strtod_then_float(void **state)
{
    (void)state;
    mn_prng_t p;
    mn_prng_seed(&p, 777);
    api_json_opts o = {.compact_floats = true};
    buf b = {0}, num = {0};
    for (int round = 0; round < 2000; round++) {
        size_t n = 1 + (size_t)below(&p, 40);
        float *want = malloc(n * sizeof *want);
        b.len = 0;
        puts_(&b, "{\"embedding\":[");
        for (size_t i = 0; i < n; i++) {
            num.len = 0;
            gen_number(&p, &num);
            want[i] = api_to_float(strtod(num.p, NULL));
            if (i) puts_(&b, below(&p, 2) ? "," : " ,\n");
            gen_ws(&p, &b);
            put(&b, num.p, num.len);
            gen_ws(&p, &b);
        }
        puts_(&b, "]}");
        api_json_result r;
        cJSON *j = api_json_parse_opts(b.p, b.len, &o, &r);
        if (!j) fail_msg("refused (%d at %zu): %s", r.status, r.offset, b.p);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "embedding");
        assert_true(cJSON_IsArray(e));
        assert_null(e->child);
        assert_int_equal(api_json_array_size(e), n);
        const float *f;
        size_t nf;
        assert_true(api_json_floats(e, &f, &nf));
        assert_int_equal(nf, n);
        for (size_t i = 0; i < n; i++)
            if (memcmp(&f[i], &want[i], sizeof *f))
                fail_msg("value %zu: %a, want %a: %s", i, (double)f[i], (double)want[i], b.p);
        expect_floats(j, want, n);
        api_json_free(j);
        free(want);
    }
    /* arrays that are not all numbers are ordinary nodes, as cJSON builds them */
    static const char *const mixed[] = {"[1,\"a\"]", "[1,[2]]", "[-1,true]", "[1,{}]",
                                        "[1,null,2]", "[\"a\",1]"};
    for (size_t i = 0; i < sizeof mixed / sizeof *mixed; i++) {
        api_json_result r;
        cJSON *j = api_json_parse_opts(mixed[i], strlen(mixed[i]), &o, &r);
        cJSON *c = cJSON_Parse(mixed[i]);
        char why[200];
        assert_non_null(j);
        assert_false(j->type & API_JSON_FLOATS);
        if (!same_tree(j, c, why, sizeof why)) fail_msg("%s: %s", why, mixed[i]);
        cJSON_Delete(c);
        api_json_free(j);
    }
    /* malformed number arrays fail where the ordinary reading fails */
    static const char *const bad[] = {"[1,,2]", "[1 2]", "[1,]", "[-]", "[1e]", "[1.]",
                                      "[01]", "[1,2", "[1e5.3]", "[--1]", "[1,-]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        api_json_result r1, r2;
        assert_null(api_json_parse_opts(bad[i], strlen(bad[i]), &o, &r1));
        assert_null(api_json_parse(bad[i], strlen(bad[i]), &r2));
        assert_int_equal(r1.status, r2.status);
        if (r1.offset != r2.offset) fail_msg("%s: at %zu, not %zu", bad[i], r1.offset, r2.offset);
    }
    free(b.p);
    free(num.p);
}

/* The MCP tools' path: references to the arguments, the REST handler's body read from the
 * tree itself (api_inproc_req), every tree freed by its owner. */
static void test_json_parse_trees_pass_in_process_without_copies(void **state)
{
    (void)state;
    static const char doc[] = "{\"space\":\"s\",\"content\":\"hi\",\"embedding\":[0.5,-1,2]}";
    api_json_opts o = {.compact_floats = true};
    api_json_result r;
    cJSON *args = api_json_parse_opts(doc, sizeof doc - 1, &o, &r);
    assert_non_null(args);
    cJSON *refs = api_json_refs(args);
    assert_non_null(refs);
    cJSON *space = cJSON_DetachItemFromObjectCaseSensitive(refs, "space");
    assert_string_equal(space->valuestring, "s");
    cJSON_Delete(space);
    cJSON_AddNumberToObject(refs, "dim", 3);

    api_inproc_req ir;
    api_inproc_init(&ir, refs);
    mn_http_response_t resp;
    memset(&resp, 0, sizeof resp);
    cJSON *body = api_body_object(&ir.http, 3, &resp);
    assert_non_null(body);
    assert_null(resp.body);
    assert_null(cJSON_GetObjectItemCaseSensitive(body, "space"));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(body, "dim")->valueint, 3);
    static const float want[] = {0.5f, -1.0f, 2.0f};
    expect_floats(body, want, 3);
    api_json_free(body); /* the borrowed root only */
    cJSON_Delete(refs); /* the references and "dim" only */
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(args, "space")->valuestring, "s");
    assert_int_equal(api_json_array_size(cJSON_GetObjectItemCaseSensitive(args, "embedding")),
                     3);
    api_json_free(args);

    api_inproc_init(&ir, NULL); /* no body: the ordinary empty-body answer */
    memset(&resp, 0, sizeof resp);
    assert_null(api_body_object(&ir.http, 0, &resp));
    assert_int_equal(resp.status, 400);
    free(resp.body);
    free(resp.extra_headers);
}

/* A body past a limit gets the engine's status and words, naming the field. */
static void test_json_parse_body_limits_name_the_field(void **state)
{
    (void)state;
    static const char five[] = "{\"k\":3,\"embedding\":[0.1,0.2,0.3,0.4,0.5]}";
    expect_body_dim(five, sizeof five - 1, 4, 422, "invalid_argument",
                    "embedding: expected 4 values, got 5");
    expect_body_dim(five, sizeof five - 1, 5, 0, NULL, NULL);
    static const char batch[] = "{\"memories\":[{\"content\":\"a\"},{\"embedding\":[1,2,3]}]}";
    expect_body_dim(batch, sizeof batch - 1, 2, 422, "invalid_argument",
                    "memories[1].embedding: expected 2 values, got 3");
    buf b = {0};
    puts_(&b, "{\"embedding\":[");
    for (int i = 0; i < MN_DIM_MAX + 1; i++)
        puts_(&b, i ? ",1" : "1");
    puts_(&b, "]}");
    expect_body_dim(b.p, b.len, 0, 422, "invalid_argument",
                    "embedding: 4097 numbers, the limit is 4096 (the largest dim)");
    b.len = 0;
    puts_(&b, "{\"memories\":[");
    for (int i = 0; i <= MN_BATCH_MAX; i++)
        puts_(&b, i ? ",{}" : "{}");
    puts_(&b, "]}");
    expect_body(b.p, b.len, 422, "invalid_argument",
                "memories: more than 1000 values in one array or object");
    b.len = 0;
    puts_(&b, "{\"content\":\"");
    for (int i = 0; i <= MN_CONTENT_MAX; i++)
        put(&b, "x", 1);
    puts_(&b, "\"}");
    expect_body(b.p, b.len, 422, "invalid_argument",
                "content: a string of 65537 bytes, the limit is 65536");
    b.len = 0; /* 300 memories of 900 tags: more nodes than the largest batch needs */
    puts_(&b, "{\"memories\":[");
    for (int i = 0; i < 300; i++) {
        puts_(&b, i ? ",{\"tags\":[" : "{\"tags\":[");
        for (int t = 0; t < 900; t++)
            puts_(&b, t ? ",\"t\"" : "\"t\"");
        puts_(&b, "]}");
    }
    puts_(&b, "]}");
    expect_body(b.p, b.len, 413, "payload_too_large", "the body holds more than 256000 JSON values");
    free(b.p);
}

/* ---- fuzz ---- */

/* One mutated input: whatever the parser accepts (with o: within its limits), cJSON accepts
 * too, with the same tree (compact arrays: the same float32 values); a refusal says where. */
static int fuzz_one(const char *in, size_t n, const api_json_opts *o)
{
    api_json_result r;
    cJSON *j = api_json_parse_opts(in, n, o, &r);
    if (!j) {
        assert_true(r.offset <= n);
        assert_true(r.status != API_JSON_OK && r.status != API_JSON_NOMEM);
        return 0;
    }
    cJSON *c = cjson_parse(in, n);
    char why[200];
    if (!c) fail_msg("cJSON refuses what we accept: %.*s", (int)n, in);
    if (!same_tree(j, c, why, sizeof why)) fail_msg("%s: %.*s", why, (int)n, in);
    cJSON_Delete(c);
    api_json_free(j);
    return 1;
}

/* Seeded mutations of generated documents: never a crash or a leak, and whatever the
 * strict parser accepts, cJSON accepts too, with the same tree. */
static void test_json_parse_survives_mutations(void **state)
{
    (void)state;
    static const char *const tokens[] = {
        "{",       "}",       "[",   "]",    "\"",    "\\", "\\u",         "\\ud800",
        "\\udc00", "\\u0000", ",",   ":",    "1e999", "-",  "0",           ".",
        "e",       "true",    "nul", "\xff", "\x01",  " ",  "\xef\xbb\xbf"};
    mn_prng_t p;
    mn_prng_seed(&p, 42);
    buf seeds[64] = {{0}};
    for (int i = 0; i < 64; i++)
        gen_value(&p, &seeds[i], 0);
    buf b = {0};
    int accepted = 0;
    api_json_opts body;
    api_body_opts(&body, 8);
    body.members_max = 4; /* low enough that mutations reach every limit */
    body.string_bytes_max = 16;
    body.nodes_max = 40;
    for (int i = 0; i < 200000; i++) {
        const buf *s = &seeds[below(&p, 64)];
        b.len = 0;
        put(&b, s->p, s->len);
        for (uint64_t k = 1 + below(&p, 4); k > 0; k--) {
            size_t pos = (size_t)below(&p, b.len + 1);
            switch (below(&p, 6)) {
            case 0: /* delete a few bytes */
                if (b.len) {
                    size_t n = 1 + (size_t)below(&p, 3);
                    if (pos + n > b.len) n = b.len - pos;
                    memmove(b.p + pos, b.p + pos + n, b.len - pos - n);
                    b.len -= n;
                }
                break;
            case 1: /* flip a byte */
                if (pos < b.len) b.p[pos] = (char)below(&p, 256);
                break;
            case 2: /* truncate */
                b.len = pos;
                break;
            default: { /* insert a token */
                const char *t = tokens[below(&p, sizeof tokens / sizeof *tokens)];
                size_t n = strlen(t), tail = b.len - pos;
                put(&b, t, n); /* grow, then move into place */
                memmove(b.p + pos + n, b.p + pos, tail);
                memcpy(b.p + pos, t, n);
            }
            }
        }
        /* an exact-size heap copy, so ASan sees any read past the end */
        char *in = malloc(b.len ? b.len : 1);
        memcpy(in, b.p, b.len);
        /* plain, then within the body limits with compact number arrays */
        accepted += fuzz_one(in, b.len, NULL);
        fuzz_one(in, b.len, &body);
        free(in);
    }
    assert_true(accepted > 1000); /* the loop reaches past the first error */
    free(b.p);
    for (int i = 0; i < 64; i++)
        free(seeds[i].p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_parse_builds_the_tree_cjson_builds),
        cmocka_unit_test(test_json_parse_numbers_are_strtod_bit_for_bit),
        cmocka_unit_test(test_json_parse_exact_paths_round_like_strtod),
        cmocka_unit_test(test_json_parse_refuses_what_cjson_refuses),
        cmocka_unit_test(test_json_parse_refuses_what_rfc8259_forbids),
        cmocka_unit_test(test_json_parse_accepts_edge_documents),
        cmocka_unit_test(test_json_parse_limits_nesting_to_1000),
        cmocka_unit_test(test_json_parse_reports_nul_escapes),
        cmocka_unit_test(test_json_parse_reports_offsets),
        cmocka_unit_test(test_json_parse_tree_reads_like_cjson),
        cmocka_unit_test(test_json_parse_body_object_keeps_its_answers),
        cmocka_unit_test(test_json_parse_limits_apply_while_parsing),
        cmocka_unit_test(test_json_parse_compact_floats_are_strtod_then_float),
        cmocka_unit_test(test_json_parse_trees_pass_in_process_without_copies),
        cmocka_unit_test(test_json_parse_body_limits_name_the_field),
        cmocka_unit_test(test_json_parse_survives_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
