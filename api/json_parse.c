/* Request bodies: a strict RFC 8259 parser that builds ordinary cJSON trees in
 * one arena owned by the root (api_json_parse, api_json_free).
 *
 * Why not cJSON_Parse: on remember batches it spent most of its time in
 * malloc/free (one 64-byte node per number) and strtod. Here every node and
 * string of a document is cut from a few geometrically growing chunks that
 * hang off the root, so building is a pointer bump and freeing a few free()s,
 * and most numbers never reach strtod (below).
 *
 * The tree is plain cJSON, as cJSON_Parse builds it: the same type flags, keys
 * in ->string, child->prev = the last child, valueint saturated to int, true
 * with valueint 1. So every reader works on it unchanged (cJSON_GetObjectItem*,
 * the cJSON_Is* tests, ->child/->next walks, cJSON_Duplicate, cJSON_Print).
 * Invariant: nothing mutates it with cJSON functions (Add*, Detach*, Replace*,
 * Delete*), which would free() arena memory; cJSON_Duplicate makes an ordinary
 * malloc'd copy where a caller needs one.
 *
 * Grammar: RFC 8259 §2-§7 exactly, nesting at most API_JSON_DEPTH_MAX deep
 * (cJSON's CJSON_NESTING_LIMIT). That is stricter than cJSON, which accepts
 * leading zeros ("01"), "1." and "-.5", raw control characters in strings,
 * every byte <= 0x20 as whitespace, and non-hex digits in \u escapes (read as
 * \u0000). Two latitudes the RFC leaves are taken: a leading UTF-8 byte order
 * mark is skipped (§8.1), and bytes >= 0x80 inside strings are copied without
 * a UTF-8 check (the engine checks every stored string and names the field in
 * its 422). A \u0000 is decoded (the C string then reads cut short there) and
 * reported, so that callers can refuse it.
 *
 * Numbers come out bit-identical to strtod in the C locale (mnemo never calls
 * setlocale). Fast paths after Clinger, "How to read floating point numbers
 * accurately" (PLDI 1990): a decimal mantissa m <= 2^53 and 10^k, k <= 22, are
 * exact doubles, so m * 10^k or m / 10^k, one IEEE operation, is the correctly
 * rounded value. With the x87 64-bit long double, m < 2^64 and 10^k, k <= 27,
 * are exact, the one operation rounds to 64 bits, and rounding that again to 53
 * bits gives the correctly rounded double unless the 64-bit result is itself a
 * midpoint between two doubles (its 11 low bits are 0x400): that covers the
 * 17-digit mantissas of printed doubles. Every other number is strtod on a
 * NUL-terminated copy of its text.
 *
 * Limits (api_json_parse_opts): a body is refused at the first value past a limit, before
 * the rest of it becomes nodes, so what a refused body costs is what was read up to there.
 * Nesting, members of one container, bytes of one string and nodes of the document are
 * counted as they are made. With compact_floats an array that holds only numbers is one
 * node whose float32 values sit in the arena (4 bytes a value instead of a 64-byte node):
 * a scan of its text counts the values first, so an array longer than floats_max is
 * refused before a value is converted, with its exact length. The compact node is a
 * cJSON_Array with no children; the API_JSON_FLOATS bit of its type says to read it with
 * api_json_floats (the values, after api_to_float, bit-identical to strtod then a float32
 * conversion), valuestring points at the values and valueint holds their count. */
#include "api_internal.h"

#include <assert.h>
#include <float.h>
#include <limits.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && LDBL_MANT_DIG == 64
#define HAVE_X87_LONG_DOUBLE 1
#else
#define HAVE_X87_LONG_DOUBLE 0
#endif

/* ---- the arena ---- */

typedef struct jchunk {
    struct jchunk *next;
    _Alignas(16) unsigned char data[];
} jchunk;

#define CHUNK_FIRST_MIN 4096
#define CHUNK_MAX (4u << 20)
#define DOC_MAGIC 0x4a534f4eu

/* The head of the first chunk: the root's address leads back to the chunks. */
typedef struct jdoc {
    uint32_t magic;
    jchunk *chunks;
    cJSON root;
} jdoc;

/* An open array or object and the members it has so far. */
typedef struct level {
    cJSON *node;
    size_t members;
} level;

typedef struct parser {
    const unsigned char *p, *begin, *end;
    unsigned char *cur, *lim; /* the free part of the newest chunk */
    jchunk *chunks;           /* newest first; the one holding the jdoc is last */
    size_t next_cap;
    bool has_nul;
    api_json_status status;
    api_json_opts o;       /* every limit set (0 replaced by "none") */
    size_t nodes;          /* made so far */
    api_json_limit limit;  /* with API_JSON_LIMIT: which one, */
    size_t count;          /* what was found, */
    int path_levels;       /* and the open containers whose members name the place */
    int depth;             /* open containers */
    level open[API_JSON_DEPTH_MAX];
} parser;

/* n bytes at the start of a new chunk (the rest of the current one is left unused). */
static void *grow(parser *ps, size_t n)
{
    size_t cap = ps->next_cap > n ? ps->next_cap : n;
    jchunk *c = malloc(sizeof *c + cap);
    if (!c) return NULL;
    c->next = ps->chunks;
    ps->chunks = c;
    if (ps->next_cap < CHUNK_MAX) ps->next_cap *= 2;
    ps->cur = c->data + n;
    ps->lim = c->data + cap;
    return c->data;
}

static bool fail(parser *ps, const unsigned char *at, api_json_status st)
{
    ps->p = at;
    ps->status = st;
    return false;
}

static bool nomem(parser *ps)
{
    return fail(ps, ps->p, API_JSON_NOMEM);
}

/* A limit broken: the place is named by the current members of the first `levels` open
 * containers (api_json_parse_opts writes it out). */
static bool over(parser *ps, api_json_limit what, size_t count, int levels)
{
    ps->limit = what;
    ps->count = count;
    ps->path_levels = levels;
    return fail(ps, ps->p, API_JSON_LIMIT);
}

static cJSON *node(parser *ps)
{
    if (ps->nodes == ps->o.nodes_max) {
        over(ps, API_JSON_LIMIT_NODES, ps->nodes + 1, 0);
        return NULL;
    }
    ps->nodes++;
    size_t pad = (size_t)(-(uintptr_t)ps->cur & (alignof(cJSON) - 1));
    cJSON *n;
    if ((size_t)(ps->lim - ps->cur) >= pad + sizeof *n) {
        n = (cJSON *)(void *)(ps->cur + pad);
        ps->cur += pad + sizeof *n;
    } else if (!(n = grow(ps, sizeof *n))) {
        nomem(ps);
        return NULL;
    }
    memset(n, 0, sizeof *n);
    return n;
}

/* n bytes, unaligned; the caller may give back the tail by lowering ps->cur. */
static char *bytes(parser *ps, size_t n)
{
    if ((size_t)(ps->lim - ps->cur) >= n) {
        char *s = (char *)ps->cur;
        ps->cur += n;
        return s;
    }
    return grow(ps, n);
}

/* ---- lexical pieces ---- */

static void skip_ws(parser *ps)
{
    const unsigned char *p = ps->p, *e = ps->end;
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    ps->p = p;
}

static bool at(const parser *ps, unsigned char c)
{
    return ps->p < ps->end && *ps->p == c;
}

/* The code unit of the 4 hex digits at p (before e), or -1. */
static long hex4(const unsigned char *p, const unsigned char *e)
{
    if (e - p < 4) return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t utf8_put(char *d, unsigned long cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xc0 | cp >> 6);
        d[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xe0 | cp >> 12);
        d[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        d[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (char)(0xf0 | cp >> 18);
    d[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    d[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    d[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes the escape at r (a backslash, before the closing quote q) into d; returns the
 * bytes written and moves *rp past it, or returns 0 on an invalid escape. */
static size_t unescape(parser *ps, const unsigned char **rp, const unsigned char *q, char *d)
{
    const unsigned char *r = *rp;
    static const char simple[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
    for (size_t i = 0; i < sizeof simple - 1; i += 2)
        if (r[1] == (unsigned char)simple[i]) {
            *d = simple[i + 1];
            *rp = r + 2;
            return 1;
        }
    if (r[1] != 'u') return 0;
    long cp = hex4(r + 2, q);
    if (cp < 0 || (cp >= 0xdc00 && cp <= 0xdfff)) return 0; /* a low surrogate alone */
    r += 6;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        long lo = q - r >= 6 && r[0] == '\\' && r[1] == 'u' ? hex4(r + 2, q) : -1;
        if (lo < 0xdc00 || lo > 0xdfff) return 0; /* a high surrogate without its pair */
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        r += 6;
    }
    if (cp == 0) ps->has_nul = true;
    *rp = r;
    return utf8_put(d, (unsigned long)cp);
}

/* The string whose opening quote is at ps->p, NUL-terminated in the arena. */
static bool string(parser *ps, char **out)
{
    const unsigned char *s = ps->p + 1, *p = s, *e = ps->end;
    while (p < e && *p != '"' && *p != '\\' && *p >= 0x20)
        p++;
    if (p < e && *p == '"') { /* no escape: the common case */
        size_t n = (size_t)(p - s);
        if (n > ps->o.string_bytes_max) return over(ps, API_JSON_LIMIT_STRING, n, ps->depth);
        char *d = bytes(ps, n + 1);
        if (!d) return nomem(ps);
        memcpy(d, s, n);
        d[n] = '\0';
        *out = d;
        ps->p = p + 1;
        return true;
    }
    /* find the closing quote; escapes are checked while decoding */
    const unsigned char *q = p;
    while (q < e && *q != '"') {
        if (*q < 0x20) return fail(ps, q, API_JSON_SYNTAX);
        if (*q == '\\' && ++q == e) break;
        q++;
    }
    if (q >= e) return fail(ps, e, API_JSON_SYNTAX);
    /* decoded, a string is never longer than its text */
    char *d = bytes(ps, (size_t)(q - s) + 1);
    if (!d) return nomem(ps);
    size_t o = (size_t)(p - s);
    memcpy(d, s, o);
    for (const unsigned char *r = p; r < q;) {
        if (*r != '\\') {
            d[o++] = (char)*r++;
            continue;
        }
        size_t w = unescape(ps, &r, q, d + o);
        if (!w) return fail(ps, r, API_JSON_SYNTAX);
        o += w;
    }
    d[o] = '\0';
    ps->cur = (unsigned char *)d + o + 1; /* give back what the escapes saved */
    if (o > ps->o.string_bytes_max) return over(ps, API_JSON_LIMIT_STRING, o, ps->depth);
    *out = d;
    ps->p = q + 1;
    return true;
}

/* ---- numbers ---- */

#if FLT_EVAL_METHOD == 0
static const double pow10_d[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
#endif
#if HAVE_X87_LONG_DOUBLE
static const long double pow10_ld[] = {1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,
                                       1e7L,  1e8L,  1e9L,  1e10L, 1e11L, 1e12L, 1e13L,
                                       1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L, 1e20L,
                                       1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L};
#endif

/* m * 10^e10 correctly rounded when one exact operation gives it (see the file comment). */
static bool fast_value(uint64_t m, int e10, double *out)
{
    if (m == 0) {
        *out = 0;
        return true;
    }
#if FLT_EVAL_METHOD == 0
    if (m <= UINT64_C(1) << 53 && e10 >= -22 && e10 <= 22) {
        double x = (double)m;
        *out = e10 < 0 ? x / pow10_d[-e10] : x * pow10_d[e10];
        return true;
    }
#endif
#if HAVE_X87_LONG_DOUBLE
    if (e10 >= -27 && e10 <= 27) {
        long double x = (long double)m;
        long double r = e10 < 0 ? x / pow10_ld[-e10] : x * pow10_ld[e10];
        uint64_t significand; /* the low 8 bytes of the x87 format */
        memcpy(&significand, &r, sizeof significand);
        if ((significand & 0x7ff) == 0x400) return false; /* a midpoint: round once, in strtod */
        *out = (double)r;
        return true;
    }
#endif
    (void)e10;
    return false;
}

static bool is_digit(const parser *ps, const unsigned char *p)
{
    return p < ps->end && *p >= '0' && *p <= '9';
}

/* The number at ps->p into *out. */
static bool read_number(parser *ps, double *out)
{
    const unsigned char *start = ps->p, *p = start;
    bool neg = *p == '-';
    p += neg;
    uint64_t m = 0;
    int digits = 0, e10 = 0;
    bool exact = true; /* every significant digit is in m */
    if (!is_digit(ps, p)) return fail(ps, p, API_JSON_SYNTAX);
    if (*p == '0') {
        p++;
    } else {
        for (; is_digit(ps, p); p++) {
            if (digits == 19) {
                exact = false;
                continue;
            }
            m = m * 10 + (uint64_t)(*p - '0');
            digits++;
        }
    }
    if (p < ps->end && *p == '.') {
        if (!is_digit(ps, ++p)) return fail(ps, p, API_JSON_SYNTAX);
        for (; is_digit(ps, p); p++) {
            if (digits == 19) {
                exact = false;
                continue;
            }
            m = m * 10 + (uint64_t)(*p - '0');
            digits += m != 0; /* leading zeros of the fraction only move the point */
            e10--;
        }
    }
    if (p < ps->end && (*p == 'e' || *p == 'E')) {
        p++;
        bool eneg = p < ps->end && *p == '-';
        if (p < ps->end && (*p == '-' || *p == '+')) p++;
        if (!is_digit(ps, p)) return fail(ps, p, API_JSON_SYNTAX);
        int x = 0;
        for (; is_digit(ps, p); p++)
            if (x < 1000000) x = x * 10 + (*p - '0');
        e10 += eneg ? -x : x;
    }
    double v;
    if (exact && fast_value(m, e10, &v)) {
        if (neg) v = -v;
    } else {
        size_t len = (size_t)(p - start);
        char small[64], *t = len < sizeof small ? small : malloc(len + 1);
        if (!t) return nomem(ps);
        memcpy(t, start, len);
        t[len] = '\0';
        char *stop;
        v = strtod(t, &stop);
        assert(stop == t + len); /* JSON's number grammar is a subset of strtod's */
        if (t != small) free(t);
    }
    ps->p = p;
    *out = v;
    return true;
}

/* The number at ps->p into n. */
static bool number(parser *ps, cJSON *n)
{
    double v;
    if (!read_number(ps, &v)) return false;
    n->type = cJSON_Number;
    n->valuedouble = v;
    /* saturated as cJSON does */
    n->valueint = v >= INT_MAX ? INT_MAX : v <= (double)INT_MIN ? INT_MIN : (int)v;
    return true;
}

/* ---- all-number arrays, compact ---- */

/* With ps->p on the first value of an array: its number of values when its text, up to the
 * closing bracket, has only the bytes of numbers, commas and blanks; else 0. Nothing is
 * allocated, so an array too long for floats_max costs only this scan. */
static size_t count_numbers(const parser *ps)
{
    size_t n = 1;
    for (const unsigned char *p = ps->p; p < ps->end; p++) {
        unsigned char c = *p;
        if (c == ']') return n;
        if (c == ',') n++;
        else if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' ||
                   c == 'E' || c == ' ' || c == '\t' || c == '\n' || c == '\r'))
            return 0;
    }
    return 0;
}

/* The array at ps->p (its '[' read, blanks skipped, a number next) into n as a compact node
 * when it holds only numbers: true and *done. *done false (ps->p unchanged) means: read it
 * as ordinary nodes. Malformed text fails where the ordinary reading fails. */
static bool floats(parser *ps, cJSON *n, bool *done)
{
    size_t cnt = count_numbers(ps);
    *done = cnt != 0;
    if (!cnt) return true;
    if (cnt > ps->o.floats_max) return over(ps, API_JSON_LIMIT_FLOATS, cnt, ps->depth);
    /* one float more, 0: its zero bytes end valuestring for strdup (cJSON_Duplicate) */
    char *raw = bytes(ps, (cnt + 1) * sizeof(float) + alignof(float) - 1);
    if (!raw) return nomem(ps);
    float *f = (float *)(void *)(raw + (-(uintptr_t)raw & (alignof(float) - 1)));
    for (size_t i = 0; i < cnt; i++) {
        double d;
        skip_ws(ps);
        if (!read_number(ps, &d)) return false;
        f[i] = api_to_float(d);
        skip_ws(ps);
        if (!at(ps, i + 1 < cnt ? ',' : ']')) return fail(ps, ps->p, API_JSON_SYNTAX);
        ps->p++;
    }
    f[cnt] = 0;
    n->type = cJSON_Array | API_JSON_FLOATS;
    n->valuestring = (char *)f;
    n->valueint = cnt > INT_MAX ? INT_MAX : (int)cnt;
    n->valuedouble = (double)cnt;
    return true;
}

bool api_json_floats(const cJSON *v, const float **out, size_t *n)
{
    if (!v || !(v->type & API_JSON_FLOATS) || (v->type & 0xff) != cJSON_Array) return false;
    *out = (const float *)(const void *)v->valuestring;
    *n = (size_t)v->valuedouble;
    return true;
}

size_t api_json_array_size(const cJSON *v)
{
    const float *f;
    size_t n = 0;
    if (api_json_floats(v, &f, &n)) return n;
    if (!cJSON_IsArray(v)) return 0;
    for (const cJSON *c = v->child; c; c = c->next)
        n++;
    return n;
}

/* ---- values ---- */

static bool literal(parser *ps, cJSON *n, const char *word, size_t len, int type)
{
    if ((size_t)(ps->end - ps->p) < len || memcmp(ps->p, word, len))
        return fail(ps, ps->p, API_JSON_SYNTAX);
    ps->p += len;
    n->type = type;
    n->valueint = type == cJSON_True;
    return true;
}

/* A scalar value at ps->p into n. */
static bool scalar(parser *ps, cJSON *n)
{
    switch (*ps->p) {
    case '"':
        n->type = cJSON_String;
        return string(ps, &n->valuestring);
    case 't':
        return literal(ps, n, "true", 4, cJSON_True);
    case 'f':
        return literal(ps, n, "false", 5, cJSON_False);
    case 'n':
        return literal(ps, n, "null", 4, cJSON_NULL);
    default:
        return number(ps, n);
    }
}

/* A new last child of the innermost open container; in an object, with its key read
 * (through the ':'). */
static cJSON *member(parser *ps)
{
    level *lv = &ps->open[ps->depth - 1];
    cJSON *c = lv->node;
    if (lv->members == ps->o.members_max) {
        /* named by the container itself: its parent's current member */
        over(ps, API_JSON_LIMIT_MEMBERS, lv->members + 1, ps->depth - 1);
        return NULL;
    }
    cJSON *n = node(ps);
    if (!n) return NULL;
    if (!c->child) {
        c->child = n;
    } else {
        cJSON *last = c->child->prev;
        last->next = n;
        n->prev = last;
    }
    c->child->prev = n;
    lv->members++;
    if (c->type == cJSON_Object) {
        skip_ws(ps);
        if (!at(ps, '"')) {
            fail(ps, ps->p, API_JSON_SYNTAX);
            return NULL;
        }
        if (!string(ps, &n->string)) return NULL;
        skip_ws(ps);
        if (!at(ps, ':')) {
            fail(ps, ps->p, API_JSON_SYNTAX);
            return NULL;
        }
        ps->p++;
    }
    return n;
}

/* Is the value being read inside the value of a member named o.plain_member? */
static bool in_plain_member(const parser *ps)
{
    if (!ps->o.plain_member) return false;
    for (int i = 0; i < ps->depth; i++) {
        const cJSON *c = ps->open[i].node;
        if (c->type == cJSON_Object && c->child && c->child->prev->string &&
            !strcmp(c->child->prev->string, ps->o.plain_member))
            return true;
    }
    return false;
}

/* The '[' or '{' at ps->p into n: true with *n_out the first member to read, or NULL when
 * the container is complete already (empty, or a compact number array). */
static bool open_container(parser *ps, cJSON *n, cJSON **n_out)
{
    unsigned char c = *ps->p;
    *n_out = NULL;
    if (ps->depth == (int)ps->o.depth_max) return fail(ps, ps->p, API_JSON_DEPTH);
    n->type = c == '[' ? cJSON_Array : cJSON_Object;
    ps->p++;
    skip_ws(ps);
    if (at(ps, c == '[' ? ']' : '}')) {
        ps->p++;
        return true;
    }
    if (c == '[' && ps->o.compact_floats && ps->p < ps->end &&
        (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) && !in_plain_member(ps)) {
        bool done;
        if (!floats(ps, n, &done)) return false;
        if (done) return true;
    }
    ps->open[ps->depth++] = (level){n, 0};
    return (*n_out = member(ps)) != NULL;
}

/* The value at ps->p into root. Iterative: open containers are on an explicit stack. */
static bool parse_value(parser *ps, cJSON *root)
{
    cJSON *n = root;
    for (;;) {
        skip_ws(ps);
        if (ps->p == ps->end) return fail(ps, ps->p, API_JSON_SYNTAX);
        unsigned char c = *ps->p;
        if (c == '[' || c == '{') {
            cJSON *next;
            if (!open_container(ps, n, &next)) return false;
            if (next) {
                n = next;
                continue;
            }
        } else if (!scalar(ps, n)) {
            return false;
        }
        /* after a value: close what ends here, then on to the next member */
        for (;;) {
            if (ps->depth == 0) return true;
            cJSON *top = ps->open[ps->depth - 1].node;
            skip_ws(ps);
            if (at(ps, ',')) {
                ps->p++;
                if (!(n = member(ps))) return false;
                break;
            }
            if (!at(ps, top->type == cJSON_Array ? ']' : '}'))
                return fail(ps, ps->p, API_JSON_SYNTAX);
            ps->p++;
            ps->depth--;
        }
    }
}

/* ---- documents ---- */

static void free_chunks(jchunk *c)
{
    while (c) {
        jchunk *next = c->next;
        free(c);
        c = next;
    }
}

/* Writes where a limit broke: the current member of each of the first ps->path_levels open
 * containers ("memories[3].embedding"); "" for the document itself. */
static void limit_path(const parser *ps, char *out, size_t len)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < ps->path_levels && o < len; i++) {
        const cJSON *c = ps->open[i].node, *last = c->child ? c->child->prev : NULL;
        int w;
        if (!last || (c->type == cJSON_Object && !last->string)) break;
        if (c->type == cJSON_Object)
            w = snprintf(out + o, len - o, "%s%.64s", o ? "." : "", last->string);
        else
            w = snprintf(out + o, len - o, "[%zu]", ps->open[i].members - 1);
        if (w < 0) break;
        o += (size_t)w;
    }
}

/* Every limit of o set: 0 becomes "none" (the nesting limit, API_JSON_DEPTH_MAX). */
static api_json_opts resolve(const api_json_opts *o)
{
    api_json_opts r = o ? *o : (api_json_opts){0};
    if (!r.depth_max || r.depth_max > API_JSON_DEPTH_MAX) r.depth_max = API_JSON_DEPTH_MAX;
    if (!r.members_max) r.members_max = SIZE_MAX;
    if (!r.floats_max) r.floats_max = SIZE_MAX;
    if (!r.string_bytes_max) r.string_bytes_max = SIZE_MAX;
    if (!r.nodes_max) r.nodes_max = SIZE_MAX;
    return r;
}

cJSON *api_json_parse_opts(const char *text, size_t len, const api_json_opts *opts,
                           api_json_result *res)
{
    parser *ps = malloc(sizeof *ps); /* the stack of open containers is 16 KiB */
    memset(res, 0, sizeof *res);
    if (!ps) {
        res->status = API_JSON_NOMEM;
        return NULL;
    }
    memset(ps, 0, offsetof(parser, open));
    ps->o = resolve(opts);
    ps->begin = (const unsigned char *)(text ? text : "");
    ps->p = ps->begin;
    ps->end = ps->begin + (text ? len : 0);
    /* a node for every few bytes of a large document: start big enough for a small one */
    size_t first = len < CHUNK_FIRST_MIN ? CHUNK_FIRST_MIN : len < CHUNK_MAX ? len : CHUNK_MAX;
    ps->next_cap = first;
    jdoc *d = grow(ps, sizeof *d);
    cJSON *root = NULL;
    if (!d) {
        res->status = API_JSON_NOMEM;
        goto out;
    }
    memset(d, 0, sizeof *d);
    d->magic = DOC_MAGIC;
    if (ps->end - ps->p >= 3 && !memcmp(ps->p, "\xef\xbb\xbf", 3)) ps->p += 3;
    bool ok = parse_value(ps, &d->root);
    if (ok) {
        skip_ws(ps);
        if (ps->p != ps->end) ok = fail(ps, ps->p, API_JSON_TRAILING);
    }
    res->status = ok ? API_JSON_OK : ps->status;
    res->offset = (size_t)(ps->p - ps->begin);
    res->has_nul = ps->has_nul;
    if (!ok && ps->status == API_JSON_LIMIT) {
        res->limit = ps->limit;
        res->count = ps->count;
        limit_path(ps, res->path, sizeof res->path);
    }
    if (!ok) {
        free_chunks(ps->chunks);
        goto out;
    }
    d->chunks = ps->chunks;
    root = &d->root;
out:
    free(ps);
    return root;
}

cJSON *api_json_parse(const char *text, size_t len, api_json_result *res)
{
    return api_json_parse_opts(text, len, NULL, res);
}

cJSON *api_json_borrow(const cJSON *obj)
{
    jchunk *c = malloc(sizeof *c + sizeof(jdoc));
    if (!c) return NULL;
    c->next = NULL;
    jdoc *d = (jdoc *)(void *)c->data;
    memset(d, 0, sizeof *d);
    d->magic = DOC_MAGIC;
    d->chunks = c;
    d->root.type = cJSON_Object;
    d->root.child = obj->child; /* shared, read-only: freeing d never reaches them */
    return &d->root;
}

void api_json_free(cJSON *root)
{
    if (!root) return;
    jdoc *d = (jdoc *)(void *)((char *)root - offsetof(jdoc, root));
    assert(d->magic == DOC_MAGIC); /* a tree of api_json_parse, freed once */
    d->magic = 0;
    free_chunks(d->chunks);
}
