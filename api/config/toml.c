/* TOML reader: a hand-written recursive-descent parser for TOML v1.0.0
 * (https://toml.io/en/v1.0.0), producing the tree declared in toml.h.
 *
 * Shape: the input is first checked to be UTF-8 (RFC 3629); then a cursor walks it byte by
 * byte, keeping line and column (columns count code points). Values are parsed by
 * parse_value; statements (key = value, [table], [[array]]) are placed in the tree by
 * insert_kv and open_header, which enforce the TOML rules on (re)definition:
 *   - a key is defined once;
 *   - a table is defined once, by a [header] or by dotted keys, never both;
 *   - dotted keys may only extend tables that dotted keys created (in this section);
 *   - [header] may create sub-tables of a table made by dotted keys;
 *   - inline tables and static arrays are closed once written;
 *   - [[a]] appends to an array of tables; [a.b] after it refers to the last element.
 * Invariants: every node is owned by exactly one parent (entry or array slot); on error
 * the partial tree is freed and nothing leaks; nesting (arrays, inline tables) and key
 * length in parts are bounded, so recursion depth is bounded.
 * Date/time values are not supported and are rejected with their own message.
 * Floats are converted by strtod after the TOML grammar is checked here; that assumes the
 * C locale's decimal point, which mnemo never changes. */
#include "toml.h"

#include "mnemo/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32          /* nested arrays / inline tables */
#define MAX_KEY_PARTS 32      /* parts of one dotted key */
#define MAX_FILE_BYTES (1u << 20)
#define MAX_NUMBER_LEN 128

enum {
    F_DEFINED = 1, /* table: defined by a [header] (or [[header]] element) */
    F_DOTTED = 2,  /* table: created by dotted keys */
    F_INLINE = 4,  /* table: inline, closed */
    F_AOT = 8,     /* array: array of tables made by [[header]] */
};

typedef struct parser {
    const char *s;
    size_t n, i;
    int line, col;
    const char *name;
    mn_error *err;
    mn_err rc; /* first error, 0 if none */
    mn_toml_value_t *root;
    int depth;
} parser;

typedef struct keypart {
    char *s;
    size_t len;
    int line, col;
} keypart;

typedef struct key {
    keypart parts[MAX_KEY_PARTS];
    size_t n;
} dkey;

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

/* ---- errors ---- */

static bool fail_at(parser *p, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool fail_at(parser *p, int line, int col, const char *fmt, ...)
{
    if (p->rc) return false;
    char msg[MN_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->rc = MN_ERR_PARSE;
    mn_error_set(p->err, MN_ERR_PARSE, "%s:%d:%d: %s", p->name, line, col, msg);
    return false;
}

static bool oom(parser *p)
{
    if (p->rc) return false;
    p->rc = MN_ERR_NOMEM;
    mn_error_set(p->err, MN_ERR_NOMEM, "%s: out of memory", p->name);
    return false;
}

/* ---- cursor ---- */

static int peek_at(const parser *p, size_t k)
{
    return p->i + k < p->n ? (unsigned char)p->s[p->i + k] : -1;
}

static int peek(const parser *p)
{
    return peek_at(p, 0);
}

static void adv(parser *p)
{
    unsigned char c = (unsigned char)p->s[p->i++];
    if (c == '\n') {
        p->line++;
        p->col = 1;
    } else if ((c & 0xC0) != 0x80) {
        p->col++;
    }
}

static void adv_n(parser *p, size_t k)
{
    while (k-- > 0 && p->i < p->n) adv(p);
}

static bool at_newline(const parser *p)
{
    int c = peek(p);
    return c == '\n' || (c == '\r' && peek_at(p, 1) == '\n');
}

static void skip_newline(parser *p)
{
    if (peek(p) == '\r') adv(p);
    adv(p);
}

static void skip_ws(parser *p)
{
    while (peek(p) == ' ' || peek(p) == '\t') adv(p);
}

/* Describes the character under the cursor for "found ..." in messages. */
static const char *describe(const parser *p, char *buf, size_t len)
{
    int c = peek(p);
    if (c < 0) return "end of file";
    if (c == '\n' || (c == '\r' && peek_at(p, 1) == '\n')) return "end of line";
    if (c == '\r') return "a carriage return without line feed";
    if (c == ' ') return "a space";
    if (c == '\t') return "a tab";
    if (c > 0x20 && c < 0x7f) {
        snprintf(buf, len, "'%c'", c);
        return buf;
    }
    if (c >= 0x80) return "a non-ASCII character";
    snprintf(buf, len, "control character 0x%02x", (unsigned)c);
    return buf;
}

/* "expected <what>, found <the character at the cursor>" at line:col. */
static bool fail_expected(parser *p, int line, int col, const char *what)
{
    char d[32];
    return fail_at(p, line, col, "expected %s, found %s", what, describe(p, d, sizeof d));
}

/* Control characters other than tab are not allowed in comments and strings. */
static bool is_control(int c)
{
    return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}

static bool is_bare(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

/* Skips a comment starting at '#', up to (not including) the end of line. */
static bool skip_comment(parser *p)
{
    adv(p);
    while (peek(p) >= 0 && !at_newline(p)) {
        if (is_control(peek(p)))
            return fail_at(p, p->line, p->col, "control character 0x%02x in comment",
                           (unsigned)peek(p));
        adv(p);
    }
    return true;
}

/* Whitespace, newlines and comments (inside arrays). */
static bool skip_ws_nl(parser *p)
{
    for (;;) {
        skip_ws(p);
        if (peek(p) == '#') {
            if (!skip_comment(p)) return false;
        } else if (at_newline(p)) {
            skip_newline(p);
        } else {
            return true;
        }
    }
}

/* After a statement: optional whitespace and comment, then end of line or file. */
static bool expect_eol(parser *p, const char *after)
{
    skip_ws(p);
    if (peek(p) == '#' && !skip_comment(p)) return false;
    if (peek(p) < 0) return true;
    if (at_newline(p)) {
        skip_newline(p);
        return true;
    }
    char b[32];
    return fail_at(p, p->line, p->col, "expected end of line after %s, found %s", after,
                   describe(p, b, sizeof b));
}

/* ---- UTF-8 ---- */

static bool check_utf8(parser *p)
{
    const unsigned char *s = (const unsigned char *)p->s;
    int line = 1, col = 1;
    size_t i = p->i; /* after a byte order mark */
    while (i < p->n) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (c == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            need = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return fail_at(p, line, col, "invalid UTF-8");
        }
        if (p->n - i <= need) return fail_at(p, line, col, "invalid UTF-8");
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return fail_at(p, line, col, "invalid UTF-8");
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return fail_at(p, line, col, "invalid UTF-8");
        i += need + 1;
        col++;
    }
    return true;
}

/* ---- growable string ---- */

static bool sb_put(parser *p, sbuf *b, const char *s, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 32;
        while (cap < b->len + len + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) return oom(p);
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, len);
    b->len += len;
    b->p[b->len] = '\0';
    return true;
}

static bool sb_putc(parser *p, sbuf *b, char c)
{
    return sb_put(p, b, &c, 1);
}

/* ---- tree ---- */

static mn_toml_value_t *new_value(parser *p, mn_toml_type_t t, int line, int col)
{
    mn_toml_value_t *v = calloc(1, sizeof *v);
    if (!v) {
        oom(p);
        return NULL;
    }
    v->type = t;
    v->line = line;
    v->col = col;
    return v;
}

void mn_toml_free(mn_toml_value_t *v)
{
    if (!v) return;
    switch (v->type) {
    case MN_TOML_STRING:
        free(v->u.str.ptr);
        break;
    case MN_TOML_ARRAY:
        for (size_t i = 0; i < v->u.arr.len; i++) mn_toml_free(v->u.arr.items[i]);
        free(v->u.arr.items);
        break;
    case MN_TOML_TABLE:
        for (size_t i = 0; i < v->u.table.len; i++) {
            free(v->u.table.entries[i].key);
            mn_toml_free(v->u.table.entries[i].value);
        }
        free(v->u.table.entries);
        break;
    default:
        break;
    }
    free(v);
}

static mn_toml_entry_t *find_entry(const mn_toml_value_t *t, const char *k, size_t len)
{
    for (size_t i = 0; i < t->u.table.len; i++) {
        mn_toml_entry_t *e = &t->u.table.entries[i];
        if (e->key_len == len && memcmp(e->key, k, len) == 0) return e;
    }
    return NULL;
}

/* Adds key -> v to table t (the key must be absent). Takes ownership of v, even on failure. */
static bool table_add(parser *p, mn_toml_value_t *t, const keypart *kp, mn_toml_value_t *v)
{
    if (t->u.table.len == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        mn_toml_entry_t *ne = realloc(t->u.table.entries, cap * sizeof *ne);
        if (!ne) {
            mn_toml_free(v);
            return oom(p);
        }
        t->u.table.entries = ne;
        t->cap = cap;
    }
    char *k = malloc(kp->len + 1);
    if (!k) {
        mn_toml_free(v);
        return oom(p);
    }
    memcpy(k, kp->s, kp->len);
    k[kp->len] = '\0';
    t->u.table.entries[t->u.table.len++] =
        (mn_toml_entry_t){.key = k, .key_len = kp->len, .line = kp->line, .col = kp->col, .value = v};
    return true;
}

/* Appends v to array a. Takes ownership of v, even on failure. */
static bool array_push(parser *p, mn_toml_value_t *a, mn_toml_value_t *v)
{
    if (a->u.arr.len == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        mn_toml_value_t **ni = realloc(a->u.arr.items, cap * sizeof *ni);
        if (!ni) {
            mn_toml_free(v);
            return oom(p);
        }
        a->u.arr.items = ni;
        a->cap = cap;
    }
    a->u.arr.items[a->u.arr.len++] = v;
    return true;
}

static void mark_inline(mn_toml_value_t *t)
{
    t->flags |= F_INLINE;
    for (size_t i = 0; i < t->u.table.len; i++) {
        mn_toml_value_t *v = t->u.table.entries[i].value;
        if (v->type == MN_TOML_TABLE) mark_inline(v);
    }
}

/* ---- keys ---- */

static void key_free(dkey *k)
{
    for (size_t i = 0; i < k->n; i++) free(k->parts[i].s);
    k->n = 0;
}

/* The key as written, parts joined by '.', truncated to fit buf. */
static const char *key_text(const dkey *k, size_t upto, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < upto && i < k->n && o + 1 < len; i++) {
        int w = snprintf(buf + o, len - o, "%s%.*s", i ? "." : "", (int)k->parts[i].len,
                         k->parts[i].s);
        if (w < 0) break;
        o += (size_t)w;
    }
    if (o >= len && len > 4) memcpy(buf + len - 4, "...", 4);
    return buf;
}

static bool parse_string(parser *p, sbuf *b, bool multi);

/* key = part ('.' part)*; part = bare | "basic" | 'literal'. */
static bool parse_key(parser *p, dkey *k)
{
    k->n = 0;
    for (;;) {
        skip_ws(p);
        if (k->n == MAX_KEY_PARTS)
            return fail_at(p, p->line, p->col, "key has more than %d parts", MAX_KEY_PARTS);
        keypart *kp = &k->parts[k->n];
        kp->line = p->line;
        kp->col = p->col;
        sbuf b = {0};
        int c = peek(p);
        bool ok;
        if (c == '"' || c == '\'') {
            if (peek_at(p, 1) == c && peek_at(p, 2) == c)
                return fail_at(p, p->line, p->col, "a key cannot be a multi-line string");
            ok = parse_string(p, &b, false);
            if (ok && !b.p) ok = sb_put(p, &b, "", 0);
        } else if (is_bare(c)) {
            size_t start = p->i;
            while (is_bare(peek(p))) adv(p);
            ok = sb_put(p, &b, p->s + start, p->i - start);
        } else {
            return fail_expected(p, p->line, p->col, "a key");
        }
        if (!ok) {
            free(b.p);
            return false;
        }
        kp->s = b.p;
        kp->len = b.len;
        k->n++;
        skip_ws(p);
        if (peek(p) != '.') return true;
        adv(p);
    }
}

/* ---- strings ---- */

static bool parse_hex_escape(parser *p, sbuf *b, int line, int col, int digits)
{
    uint32_t cp = 0;
    for (int k = 0; k < digits; k++) {
        int c = peek(p);
        int d = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d < 0)
            return fail_at(p, line, col, "invalid escape: \\%c needs %d hex digits",
                           digits == 4 ? 'u' : 'U', digits);
        cp = cp * 16 + (uint32_t)d;
        adv(p);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return fail_at(p, line, col, "invalid escape: U+%04X is not a Unicode scalar value",
                       (unsigned)cp);
    char u[4];
    return sb_put(p, b, u, mn_utf8_encode(cp, u));
}

/* At a backslash inside a basic string. */
static bool parse_escape(parser *p, sbuf *b, bool multi)
{
    int line = p->line, col = p->col;
    adv(p);
    int c = peek(p);
    char out;
    switch (c) {
    case 'b': out = '\b'; break;
    case 't': out = '\t'; break;
    case 'n': out = '\n'; break;
    case 'f': out = '\f'; break;
    case 'r': out = '\r'; break;
    case '"': out = '"'; break;
    case '\\': out = '\\'; break;
    case 'u':
    case 'U':
        adv(p);
        return parse_hex_escape(p, b, line, col, c == 'u' ? 4 : 8);
    default:
        if (multi && (c == ' ' || c == '\t' || at_newline(p))) {
            /* line-ending backslash: trims whitespace up to the next non-blank */
            skip_ws(p);
            if (!at_newline(p)) return fail_at(p, line, col, "invalid escape: '\\' then space");
            for (;;) {
                skip_ws(p);
                if (!at_newline(p)) return true;
                skip_newline(p);
            }
        }
        if (c > 0x20 && c < 0x7f) return fail_at(p, line, col, "invalid escape '\\%c'", c);
        return fail_at(p, line, col, "invalid escape");
    }
    adv(p);
    return sb_putc(p, b, out);
}

/* Appends the run of quote characters q at the cursor; in a multi-line string a run of 3
 * to 5 closes it (the first run-3 quotes are content). Returns 1 closed, 0 open, -1 error. */
static int quote_run(parser *p, sbuf *b, int q)
{
    size_t r = 0;
    while (peek_at(p, r) == q) r++;
    if (r >= 3) {
        if (r > 5) {
            fail_at(p, p->line, p->col, "too many quotes: three in a row end the string");
            return -1;
        }
        char qs[2] = {(char)q, (char)q};
        if (!sb_put(p, b, qs, r - 3)) return -1;
        adv_n(p, r);
        return 1;
    }
    char qs[2] = {(char)q, (char)q};
    if (!sb_put(p, b, qs, r)) return -1;
    adv_n(p, r);
    return 0;
}

/* A string body after its opening quote(s); basic = escapes allowed. */
static bool string_body(parser *p, sbuf *b, bool multi, bool basic, int line, int col)
{
    int q = basic ? '"' : '\'';
    if (multi && at_newline(p)) skip_newline(p); /* a newline right after the opener is trimmed */
    for (;;) {
        int c = peek(p);
        if (c < 0) return fail_at(p, line, col, "unterminated string");
        if (c == q) {
            if (!multi) {
                adv(p);
                return true;
            }
            int r = quote_run(p, b, q);
            if (r < 0) return false;
            if (r > 0) return true;
            continue;
        }
        if (at_newline(p)) {
            if (!multi)
                return fail_at(p, line, col, "unterminated string (a %s string ends at end of "
                               "line)", basic ? "\"...\"" : "'...'");
            if (!sb_putc(p, b, '\n')) return false;
            skip_newline(p);
            continue;
        }
        if (basic && c == '\\') {
            if (peek_at(p, 1) < 0) return fail_at(p, line, col, "unterminated string");
            if (!parse_escape(p, b, multi)) return false;
            continue;
        }
        if (is_control(c))
            return fail_at(p, p->line, p->col, "control character 0x%02x in string (escape it)",
                           (unsigned)c);
        size_t start = p->i;
        adv(p);
        while (peek(p) >= 0x80 && (peek(p) & 0xC0) == 0x80) adv(p);
        if (!sb_put(p, b, p->s + start, p->i - start)) return false;
    }
}

/* A string at its opening quote(s): "basic" (escapes) or 'literal', multi = tripled. */
static bool parse_string(parser *p, sbuf *b, bool multi)
{
    int line = p->line, col = p->col;
    bool basic = peek(p) == '"';
    adv_n(p, multi ? 3 : 1);
    return string_body(p, b, multi, basic, line, col);
}

/* ---- numbers ---- */

static int digit_value(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return 99;
}

/* Digits of base with '_' only between two digits; at least one digit. */
static bool digits_ok(const char *s, size_t n, int base)
{
    if (n == 0 || s[0] == '_' || s[n - 1] == '_') return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') {
            if (s[i + 1] == '_') return false;
        } else if (digit_value((unsigned char)s[i]) >= base) {
            return false;
        }
    }
    return true;
}

static bool parse_number(parser *p, mn_toml_value_t **out)
{
    int line = p->line, col = p->col;
    size_t n = 0;
    for (;;) {
        int c = peek_at(p, n);
        if (!(is_bare(c) || c == '+' || c == '.')) break;
        n++;
    }
    const char *t = p->s + p->i;
    if (n == 0) {
        return fail_expected(p, line, col, "a value");
    }
    if ((n >= 5 && digits_ok(t, 4, 10) && t[4] == '-') || (n == 2 && peek_at(p, 2) == ':'))
        return fail_at(p, line, col, "dates and times are not supported");
    if (n > MAX_NUMBER_LEN) return fail_at(p, line, col, "number too long");

    const char *s = t;
    size_t len = n;
    bool neg = false, sign = false;
    if (*s == '+' || *s == '-') {
        neg = *s == '-';
        sign = true;
        s++;
        len--;
    }
    mn_toml_value_t *v = NULL;
    if ((len == 3 && memcmp(s, "inf", 3) == 0) || (len == 3 && memcmp(s, "nan", 3) == 0)) {
        if (!(v = new_value(p, MN_TOML_FLOAT, line, col))) return false;
        v->u.f = s[0] == 'i' ? (neg ? -INFINITY : INFINITY) : (neg ? -NAN : NAN);
    } else if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o' || s[1] == 'b')) {
        int base = s[1] == 'x' ? 16 : s[1] == 'o' ? 8 : 2;
        if (sign) return fail_at(p, line, col, "a sign is not allowed on 0%c numbers", s[1]);
        if (!digits_ok(s + 2, len - 2, base))
            return fail_at(p, line, col, "invalid number \"%.*s\"", (int)n, t);
        uint64_t acc = 0;
        for (size_t i = 2; i < len; i++) {
            if (s[i] == '_') continue;
            unsigned d = (unsigned)digit_value((unsigned char)s[i]);
            if (acc > ((uint64_t)INT64_MAX - d) / (uint64_t)base)
                return fail_at(p, line, col, "integer \"%.*s\" does not fit in 64 bits", (int)n,
                               t);
            acc = acc * (uint64_t)base + d;
        }
        if (!(v = new_value(p, MN_TOML_INTEGER, line, col))) return false;
        v->u.i = (int64_t)acc;
    } else {
        /* decimal: int [. frac] [e exp] */
        size_t ip = 0;
        while (ip < len && s[ip] != '.' && s[ip] != 'e' && s[ip] != 'E') ip++;
        if (!digits_ok(s, ip, 10))
            return fail_at(p, line, col, "invalid number \"%.*s\"", (int)n, t);
        if (ip > 1 && s[0] == '0')
            return fail_at(p, line, col, "invalid number \"%.*s\": leading zeros are not allowed",
                           (int)n, t);
        if (ip == len) {
            uint64_t acc = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
            for (size_t i = 0; i < len; i++) {
                if (s[i] == '_') continue;
                unsigned d = (unsigned)(s[i] - '0');
                if (acc > (lim - d) / 10)
                    return fail_at(p, line, col, "integer \"%.*s\" does not fit in 64 bits",
                                   (int)n, t);
                acc = acc * 10 + d;
            }
            if (!(v = new_value(p, MN_TOML_INTEGER, line, col))) return false;
            v->u.i = neg ? (int64_t)(0 - acc) : (int64_t)acc;
        } else {
            size_t q = ip;
            if (s[q] == '.') {
                size_t f = ++q;
                while (q < len && s[q] != 'e' && s[q] != 'E') q++;
                if (!digits_ok(s + f, q - f, 10))
                    return fail_at(p, line, col, "invalid number \"%.*s\"", (int)n, t);
            }
            if (q < len) {
                size_t e = ++q;
                if (e < len && (s[e] == '+' || s[e] == '-')) e++;
                if (!digits_ok(s + e, len - e, 10))
                    return fail_at(p, line, col, "invalid number \"%.*s\"", (int)n, t);
            }
            char buf[MAX_NUMBER_LEN + 1];
            size_t o = 0;
            for (size_t i = 0; i < n; i++)
                if (t[i] != '_') buf[o++] = t[i];
            buf[o] = '\0';
            errno = 0;
            double d = strtod(buf, NULL);
            if (errno == ERANGE && isinf(d))
                return fail_at(p, line, col, "float \"%.*s\" is out of range", (int)n, t);
            if (!(v = new_value(p, MN_TOML_FLOAT, line, col))) return false;
            v->u.f = d;
        }
    }
    adv_n(p, n);
    *out = v;
    return true;
}

/* ---- values ---- */

static mn_toml_value_t *parse_value(parser *p);
static bool insert_kv(parser *p, mn_toml_value_t *t, const dkey *k, mn_toml_value_t *v);

static mn_toml_value_t *parse_array(parser *p)
{
    int line = p->line, col = p->col;
    mn_toml_value_t *a = new_value(p, MN_TOML_ARRAY, line, col);
    if (!a) return NULL;
    adv(p);
    for (;;) {
        if (!skip_ws_nl(p)) break;
        if (peek(p) == ']') {
            adv(p);
            return a;
        }
        mn_toml_value_t *v = parse_value(p);
        if (!v || !array_push(p, a, v)) break;
        if (!skip_ws_nl(p)) break;
        if (peek(p) == ',') {
            adv(p);
            continue;
        }
        if (peek(p) == ']') {
            adv(p);
            return a;
        }
        if (peek(p) < 0) {
            fail_at(p, line, col, "unterminated array");
        } else {
            fail_expected(p, p->line, p->col, "',' or ']' in array");
        }
        break;
    }
    mn_toml_free(a);
    return NULL;
}

static mn_toml_value_t *parse_inline_table(parser *p)
{
    int line = p->line, col = p->col;
    mn_toml_value_t *t = new_value(p, MN_TOML_TABLE, line, col);
    if (!t) return NULL;
    adv(p);
    skip_ws(p);
    if (peek(p) == '}') {
        adv(p);
        t->flags |= F_INLINE;
        return t;
    }
    dkey k = {.n = 0};
    for (;;) {
        if (!parse_key(p, &k)) break;
        if (peek(p) != '=') {
            char kt[96];
            fail_at(p, p->line, p->col, "expected '=' after key \"%s\"",
                    key_text(&k, k.n, kt, sizeof kt));
            break;
        }
        adv(p);
        skip_ws(p);
        mn_toml_value_t *v = parse_value(p);
        if (!v || !insert_kv(p, t, &k, v)) break;
        key_free(&k);
        skip_ws(p);
        int c = peek(p);
        if (c == ',') {
            adv(p);
            skip_ws(p);
            if (peek(p) == '}') {
                fail_at(p, p->line, p->col, "trailing comma not allowed in an inline table");
                break;
            }
            continue;
        }
        if (c == '}') {
            adv(p);
            mark_inline(t);
            return t;
        }
        if (c < 0 || at_newline(p)) {
            fail_at(p, line, col, "unterminated inline table (it must close on the same line)");
        } else {
            fail_expected(p, p->line, p->col, "',' or '}' in inline table");
        }
        break;
    }
    key_free(&k);
    mn_toml_free(t);
    return NULL;
}

static bool match_word(const parser *p, const char *w)
{
    size_t n = strlen(w);
    return p->n - p->i >= n && memcmp(p->s + p->i, w, n) == 0 && !is_bare(peek_at(p, n));
}

static mn_toml_value_t *parse_value(parser *p)
{
    int line = p->line, col = p->col;
    int c = peek(p);
    mn_toml_value_t *v = NULL;
    if (c == '"' || c == '\'') {
        bool multi = peek_at(p, 1) == c && peek_at(p, 2) == c;
        sbuf b = {0};
        bool ok = parse_string(p, &b, multi);
        if (ok && !b.p) ok = sb_put(p, &b, "", 0);
        if (ok) v = new_value(p, MN_TOML_STRING, line, col);
        if (!v) {
            free(b.p);
            return NULL;
        }
        v->u.str.ptr = b.p;
        v->u.str.len = b.len;
        return v;
    }
    if (match_word(p, "true") || match_word(p, "false")) {
        if (!(v = new_value(p, MN_TOML_BOOL, line, col))) return NULL;
        v->u.b = c == 't';
        adv_n(p, c == 't' ? 4 : 5);
        return v;
    }
    if (c == '[' || c == '{') {
        if (p->depth >= MAX_DEPTH) {
            fail_at(p, line, col, "nesting deeper than %d levels", MAX_DEPTH);
            return NULL;
        }
        p->depth++;
        v = c == '[' ? parse_array(p) : parse_inline_table(p);
        p->depth--;
        return v;
    }
    if ((c >= '0' && c <= '9') || c == '+' || c == '-' || match_word(p, "inf") ||
        match_word(p, "nan")) {
        if (!parse_number(p, &v)) return NULL;
        return v;
    }
    if (is_bare(c)) {
        size_t n = 0;
        while (is_bare(peek_at(p, n)) && n < 40) n++;
        fail_at(p, line, col, "invalid value \"%.*s\" (strings must be quoted)", (int)n,
                p->s + p->i);
        return NULL;
    }
    fail_expected(p, line, col, "a value");
    return NULL;
}

/* ---- placing statements in the tree ---- */

static bool not_a_table(parser *p, const dkey *k, size_t i, const mn_toml_value_t *v)
{
    char kt[96];
    return fail_at(p, k->parts[i].line, k->parts[i].col,
                   "key \"%s\" is already %s %s (defined at %d:%d), not a table",
                   key_text(k, i + 1, kt, sizeof kt),
                   v->type == MN_TOML_ARRAY || v->type == MN_TOML_INTEGER ? "an" : "a",
                   mn_toml_type_name(v->type), v->line, v->col);
}

/* key = value inside table t. Takes ownership of v, even on failure. */
static bool insert_kv(parser *p, mn_toml_value_t *t, const dkey *k, mn_toml_value_t *v)
{
    char kt[96];
    for (size_t i = 0; i + 1 < k->n; i++) {
        const keypart *kp = &k->parts[i];
        mn_toml_entry_t *e = find_entry(t, kp->s, kp->len);
        if (!e) {
            mn_toml_value_t *nt = new_value(p, MN_TOML_TABLE, kp->line, kp->col);
            if (!nt || !table_add(p, t, kp, nt)) goto fail;
            nt->flags |= F_DOTTED;
            t = nt;
            continue;
        }
        mn_toml_value_t *x = e->value;
        if (x->type != MN_TOML_TABLE) {
            not_a_table(p, k, i, x);
            goto fail;
        }
        if (x->flags & F_INLINE) {
            fail_at(p, kp->line, kp->col, "cannot add keys to inline table \"%s\" (at %d:%d)",
                    key_text(k, i + 1, kt, sizeof kt), x->line, x->col);
            goto fail;
        }
        if (!(x->flags & F_DOTTED)) {
            fail_at(p, kp->line, kp->col,
                    "cannot extend table \"%s\" (defined at %d:%d) with dotted keys",
                    key_text(k, i + 1, kt, sizeof kt), x->line, x->col);
            goto fail;
        }
        t = x;
    }
    const keypart *last = &k->parts[k->n - 1];
    mn_toml_entry_t *e = find_entry(t, last->s, last->len);
    if (e) {
        fail_at(p, last->line, last->col, "duplicate key \"%s\" (first defined at %d:%d)",
                key_text(k, k->n, kt, sizeof kt), e->line, e->col);
        goto fail;
    }
    return table_add(p, t, last, v);
fail:
    mn_toml_free(v);
    return false;
}

/* [a.b.c] or [[a.b.c]] at the cursor; on success *cur is the table that follows. */
static bool open_header(parser *p, mn_toml_value_t **cur)
{
    int line = p->line, col = p->col;
    bool aot = peek_at(p, 1) == '[';
    adv_n(p, aot ? 2 : 1);
    dkey k = {.n = 0};
    char kt[96];
    if (!parse_key(p, &k)) goto fail;
    if (peek(p) != ']' || (aot && peek_at(p, 1) != ']')) {
        fail_at(p, p->line, p->col, "expected '%s' to close table header [%s%s", aot ? "]]" : "]",
                aot ? "[" : "", key_text(&k, k.n, kt, sizeof kt));
        goto fail;
    }
    adv_n(p, aot ? 2 : 1);
    if (!expect_eol(p, "table header")) goto fail;

    mn_toml_value_t *t = p->root;
    for (size_t i = 0; i + 1 < k.n; i++) {
        const keypart *kp = &k.parts[i];
        mn_toml_entry_t *e = find_entry(t, kp->s, kp->len);
        if (!e) {
            mn_toml_value_t *nt = new_value(p, MN_TOML_TABLE, line, col);
            if (!nt || !table_add(p, t, kp, nt)) goto fail;
            t = nt;
            continue;
        }
        mn_toml_value_t *x = e->value;
        if (x->type == MN_TOML_ARRAY && (x->flags & F_AOT)) {
            t = x->u.arr.items[x->u.arr.len - 1];
            continue;
        }
        if (x->type != MN_TOML_TABLE) {
            not_a_table(p, &k, i, x);
            goto fail;
        }
        if (x->flags & F_INLINE) {
            fail_at(p, kp->line, kp->col, "cannot add keys to inline table \"%s\" (at %d:%d)",
                    key_text(&k, i + 1, kt, sizeof kt), x->line, x->col);
            goto fail;
        }
        t = x;
    }
    const keypart *last = &k.parts[k.n - 1];
    mn_toml_entry_t *e = find_entry(t, last->s, last->len);
    mn_toml_value_t *x = e ? e->value : NULL;
    key_text(&k, k.n, kt, sizeof kt);
    if (!aot) {
        if (!x) {
            x = new_value(p, MN_TOML_TABLE, line, col);
            if (!x || !table_add(p, t, last, x)) goto fail;
        } else if (x->type != MN_TOML_TABLE) {
            not_a_table(p, &k, k.n - 1, x);
            goto fail;
        } else if (x->flags & (F_DEFINED | F_DOTTED | F_INLINE)) {
            fail_at(p, last->line, last->col, "table [%s] defined twice (first at %d:%d)", kt,
                    x->line, x->col);
            goto fail;
        } else {
            x->line = line; /* implicit until now: this header defines it */
            x->col = col;
        }
        x->flags |= F_DEFINED;
        *cur = x;
    } else {
        if (!x) {
            x = new_value(p, MN_TOML_ARRAY, line, col);
            if (!x || !table_add(p, t, last, x)) goto fail;
            x->flags |= F_AOT;
        } else if (x->type != MN_TOML_ARRAY || !(x->flags & F_AOT)) {
            fail_at(p, last->line, last->col,
                    "cannot append to \"%s\": it is %s %s (defined at %d:%d), not an array of "
                    "tables",
                    kt, x->type == MN_TOML_INTEGER ? "an" : "a",
                    x->type == MN_TOML_ARRAY ? "static array" : mn_toml_type_name(x->type),
                    x->line, x->col);
            goto fail;
        }
        mn_toml_value_t *el = new_value(p, MN_TOML_TABLE, line, col);
        if (!el || !array_push(p, x, el)) goto fail;
        el->flags |= F_DEFINED;
        *cur = el;
    }
    key_free(&k);
    return true;
fail:
    key_free(&k);
    return false;
}

static bool parse_statement(parser *p, mn_toml_value_t *cur)
{
    dkey k = {.n = 0};
    char kt[96];
    mn_toml_value_t *v;
    if (!parse_key(p, &k)) goto fail;
    if (peek(p) != '=') {
        fail_at(p, p->line, p->col, "expected '=' after key \"%s\"",
                key_text(&k, k.n, kt, sizeof kt));
        goto fail;
    }
    adv(p);
    skip_ws(p);
    if (!(v = parse_value(p)) || !insert_kv(p, cur, &k, v)) goto fail;
    key_free(&k);
    return expect_eol(p, "value");
fail:
    key_free(&k);
    return false;
}

/* ---- entry points ---- */

static void parser_init(parser *p, const char *src, size_t len, const char *name,
                        mn_error *err)
{
    *p = (parser){.s = src, .n = len, .line = 1, .col = 1, .name = name ? name : "<toml>",
                  .err = err};
    if (len >= 3 && memcmp(src, "\xEF\xBB\xBF", 3) == 0) p->i = 3; /* UTF-8 byte order mark */
}

mn_err mn_toml_parse(const char *src, size_t len, const char *name, mn_toml_value_t **out,
                     mn_error *err)
{
    parser p;
    parser_init(&p, src, len, name, err);
    *out = NULL;
    if (!check_utf8(&p)) return p.rc;
    if (!(p.root = new_value(&p, MN_TOML_TABLE, 1, 1))) return p.rc;
    p.root->flags |= F_DEFINED;
    mn_toml_value_t *cur = p.root;
    while (p.i < p.n) {
        skip_ws(&p);
        int c = peek(&p);
        bool ok = true;
        if (c < 0) {
            break;
        } else if (c == '#' || at_newline(&p)) {
            ok = expect_eol(&p, "comment");
        } else if (c == '[') {
            ok = open_header(&p, &cur);
        } else {
            ok = parse_statement(&p, cur);
        }
        if (!ok) {
            mn_toml_free(p.root);
            return p.rc ? p.rc : MN_ERR_INTERNAL;
        }
    }
    *out = p.root;
    return MN_OK;
}

mn_err mn_toml_parse_value(const char *src, size_t len, const char *name, mn_toml_value_t **out,
                           mn_error *err)
{
    parser p;
    parser_init(&p, src, len, name, err);
    *out = NULL;
    if (!check_utf8(&p)) return p.rc;
    skip_ws(&p);
    mn_toml_value_t *v = parse_value(&p);
    if (!v) return p.rc ? p.rc : MN_ERR_INTERNAL;
    skip_ws(&p);
    if (peek(&p) >= 0) {
        char d[32];
        fail_at(&p, p.line, p.col, "expected end of value, found %s", describe(&p, d, sizeof d));
        mn_toml_free(v);
        return p.rc;
    }
    *out = v;
    return MN_OK;
}

mn_err mn_toml_parse_file(const char *path, mn_toml_value_t **out, mn_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return mn_error_set(err, MN_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    char *buf = malloc(MAX_FILE_BYTES + 1);
    if (!buf) {
        fclose(f);
        return mn_error_set(err, MN_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, MAX_FILE_BYTES + 1, f);
    int rerr = ferror(f);
    fclose(f);
    mn_err rc;
    if (rerr)
        rc = mn_error_set(err, MN_ERR_IO, "cannot read %s", path);
    else if (n > MAX_FILE_BYTES)
        rc = mn_error_set(err, MN_ERR_TOO_LARGE, "%s: larger than %u bytes", path,
                          MAX_FILE_BYTES);
    else
        rc = mn_toml_parse(buf, n, path, out, err);
    free(buf);
    return rc;
}

const mn_toml_entry_t *mn_toml_find(const mn_toml_value_t *t, const char *key)
{
    if (!t || t->type != MN_TOML_TABLE) return NULL;
    return find_entry(t, key, strlen(key));
}

const mn_toml_value_t *mn_toml_get(const mn_toml_value_t *t, const char *key)
{
    const mn_toml_entry_t *e = mn_toml_find(t, key);
    return e ? e->value : NULL;
}

const char *mn_toml_type_name(mn_toml_type_t t)
{
    switch (t) {
    case MN_TOML_TABLE: return "table";
    case MN_TOML_ARRAY: return "array";
    case MN_TOML_STRING: return "string";
    case MN_TOML_INTEGER: return "integer";
    case MN_TOML_FLOAT: return "float";
    case MN_TOML_BOOL: return "boolean";
    }
    return "?";
}

void mn_toml_fput_string(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\b': fputs("\\b", f); break;
        case '\t': fputs("\\t", f); break;
        case '\n': fputs("\\n", f); break;
        case '\f': fputs("\\f", f); break;
        case '\r': fputs("\\r", f); break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\u%04X", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
}
