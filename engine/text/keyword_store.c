/* Stored term lists of the keyword index: what start-up needs to rebuild the
 * BM25 index of a space without tokenising (keyword.c adds a list directly).
 *
 * A list (value of sid | id in the keywords column family) is
 *   u8 format (MN_KW_DOC_FORMAT) | varint content bytes | varint tokens |
 *   varint distinct terms | per term: u8 length, the folded UTF-8 bytes, varint tf
 * and the frequencies add up to the token count, which the decoder checks along
 * with every length. Each space's header (key sid) holds the list format and
 * the tokenizer fingerprint the lists were made with: the fingerprint hashes
 * MN_TOKENIZER_VERSION and the tokenizer's behaviour (every code point's
 * folding, the tokens of probe texts, the token size limit), so a change to
 * text.c is noticed even if nobody bumps the version, and the lists are
 * rebuilt. */
#include "keyword.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static bool get_varint(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64 && *off < len; shift += 7) {
        uint8_t b = p[(*off)++];
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* Distinct tokens of one text with their counts (open addressing on FNV-1a). */
typedef struct tok_set {
    char (*text)[MN_TOKEN_MAX + 1];
    uint8_t *len;
    uint32_t *tf;
    uint32_t *table; /* index + 1, 0 = empty */
    uint32_t n, cap, tokens;
    bool oom;
} tok_set;

static uint32_t fnv(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static bool set_grow(tok_set *t)
{
    uint32_t cap = t->cap ? t->cap * 2 : 64;
    char(*text)[MN_TOKEN_MAX + 1] = realloc(t->text, cap * sizeof *text);
    if (text) t->text = text;
    uint8_t *len = realloc(t->len, cap);
    if (len) t->len = len;
    uint32_t *tf = realloc(t->tf, cap * sizeof *tf);
    if (tf) t->tf = tf;
    uint32_t *table = calloc(cap * 2, sizeof *table);
    if (!text || !len || !tf || !table) {
        free(table);
        return false;
    }
    for (uint32_t i = 0; i < t->n; i++) {
        uint32_t j = fnv(t->text[i], t->len[i]) & (cap * 2 - 1);
        while (table[j])
            j = (j + 1) & (cap * 2 - 1);
        table[j] = i + 1;
    }
    free(t->table);
    t->table = table;
    t->cap = cap;
    return true;
}

static int on_tok(void *arg, const char *tok, size_t len, uint32_t pos)
{
    (void)pos;
    tok_set *t = arg;
    t->tokens++;
    if (t->n == t->cap && !set_grow(t)) {
        t->oom = true;
        return 1;
    }
    uint32_t mask = t->cap * 2 - 1;
    for (uint32_t j = fnv(tok, len) & mask;; j = (j + 1) & mask) {
        uint32_t v = t->table[j];
        if (!v) {
            memcpy(t->text[t->n], tok, len);
            t->len[t->n] = (uint8_t)len;
            t->tf[t->n] = 1;
            t->table[j] = ++t->n;
            return 0;
        }
        if (t->len[v - 1] == len && !memcmp(t->text[v - 1], tok, len)) {
            t->tf[v - 1]++;
            return 0;
        }
    }
}

mn_err mn_kw_doc_encode(const char *text, size_t len, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    tok_set t = {0};
    if (text && len) mn_text_tokenize(text, len, on_tok, &t);
    mn_err rc = MN_OK;
    uint8_t *buf = NULL;
    if (t.oom) {
        rc = MN_ERR_NOMEM;
    } else {
        size_t cap = 1 + 3 * 10;
        for (uint32_t i = 0; i < t.n; i++)
            cap += 1 + t.len[i] + 5;
        buf = malloc(cap);
        if (!buf) {
            rc = MN_ERR_NOMEM;
        } else {
            size_t o = 0;
            buf[o++] = MN_KW_DOC_FORMAT;
            o += put_varint(buf + o, len);
            o += put_varint(buf + o, t.tokens);
            o += put_varint(buf + o, t.n);
            for (uint32_t i = 0; i < t.n; i++) {
                buf[o++] = t.len[i];
                memcpy(buf + o, t.text[i], t.len[i]);
                o += t.len[i];
                o += put_varint(buf + o, t.tf[i]);
            }
            *out = buf;
            *out_len = o;
        }
    }
    free(t.text);
    free(t.len);
    free(t.tf);
    free(t.table);
    return rc;
}

mn_err mn_kw_doc_decode(const uint8_t *doc, size_t len, uint64_t *content_len, uint32_t *tokens,
                        mn_kw_term_t *terms, uint32_t cap, uint32_t *n_terms)
{
    *n_terms = 0;
    size_t o = 1;
    uint64_t cl, nt, n;
    if (!doc || len < 4 || doc[0] != MN_KW_DOC_FORMAT || !get_varint(doc, len, &o, &cl) ||
        !get_varint(doc, len, &o, &nt) || !get_varint(doc, len, &o, &n) || nt > UINT32_MAX ||
        n > nt || cl > UINT32_MAX)
        return MN_ERR_CORRUPT;
    if (terms && n > cap) {
        *n_terms = (uint32_t)n;
        return MN_ERR_NOMEM;
    }
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (o >= len) return MN_ERR_CORRUPT;
        uint32_t tl = doc[o++];
        uint64_t tf;
        if (!tl || tl > MN_TOKEN_MAX || tl > len - o) return MN_ERR_CORRUPT;
        if (terms) {
            terms[i].text = (const char *)doc + o;
            terms[i].len = tl;
        }
        o += tl;
        if (!get_varint(doc, len, &o, &tf) || !tf || tf > nt) return MN_ERR_CORRUPT;
        if (terms) terms[i].tf = (uint32_t)tf;
        sum += tf;
    }
    if (o != len || sum != nt) return MN_ERR_CORRUPT;
    *content_len = cl;
    *tokens = (uint32_t)nt;
    *n_terms = (uint32_t)n;
    return MN_OK;
}

mn_err mn_kw_doc_content_len(const uint8_t *doc, size_t len, uint64_t *content_len)
{
    size_t o = 1;
    if (!doc || len < 4 || doc[0] != MN_KW_DOC_FORMAT || !get_varint(doc, len, &o, content_len))
        return MN_ERR_CORRUPT;
    return MN_OK;
}

/* ---- the tokenizer's fingerprint ---- */

static uint64_t fp_value;
static pthread_once_t fp_once = PTHREAD_ONCE_INIT;

static void fp_mix(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ s[i]) * 1099511628211ull;
}

static int fp_tok(void *arg, const char *tok, size_t len, uint32_t pos)
{
    uint64_t *h = arg;
    fp_mix(h, &pos, sizeof pos);
    fp_mix(h, tok, len);
    fp_mix(h, "|", 1);
    return 0;
}

static void fp_compute(void)
{
    uint64_t h = 1469598103934665603ull;
    uint32_t v[3] = {MN_KW_DOC_FORMAT, MN_TOKENIZER_VERSION, MN_TOKEN_MAX};
    fp_mix(&h, v, sizeof v);
    for (uint32_t cp = 0; cp < 0x110000; cp++) {
        if (cp >= 0xD800 && cp < 0xE000) continue; /* surrogates are not characters */
        uint32_t out[MN_TEXT_FOLD_MAX];
        int k = mn_text_fold(cp, out);
        fp_mix(&h, &k, sizeof k);
        if (k > 0) fp_mix(&h, out, (size_t)k * sizeof *out);
    }
    /* behaviour beyond single code points: combining marks, ligatures, sharp s,
     * mixed scripts, digits and punctuation, apostrophes, long runs */
    static const char *const probes[] = {
        "Caf\xc3\xa9 cafe\xcc\x81 na\xc3\xafve \xef\xac\x81le Stra\xc3\x9f"
        "e",
        "\xce\x9f\xce\x94\xce\xa5\xce\xa3\xce\xa3\xce\x95\xce\xa5\xce\xa3 "
        "\xd0\x9c\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0",
        "\xe6\x9d\xb1\xe4\xba\xac\xe3\x80\x81\xe5\xa4\xa7\xe9\x98\xaa\xe3\x80\x82 "
        "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7",
        "don't stop-me-now 3.14 x86_64 e-mail@host.org #tag $100 50%",
        "\xef\xbc\xa1\xef\xbd\x82\xef\xbd\x83 \xe2\x80\x9cquoted\xe2\x80\x9d \xe2\x80\x94 dash",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 b",
    };
    for (size_t i = 0; i < sizeof probes / sizeof *probes; i++)
        fp_mix(&h, &(uint32_t){mn_text_tokenize(probes[i], strlen(probes[i]), fp_tok, &h)},
               sizeof(uint32_t));
    fp_value = h;
}

uint64_t mn_kw_tokenizer_fingerprint(void)
{
    pthread_once(&fp_once, fp_compute);
    return fp_value;
}

void mn_kw_header(uint8_t out[MN_KW_HEADER_LEN])
{
    uint64_t fp = mn_kw_tokenizer_fingerprint();
    uint32_t f = MN_KW_DOC_FORMAT;
    for (int i = 0; i < 4; i++)
        out[i] = (uint8_t)(f >> (8 * i));
    for (int i = 0; i < 8; i++)
        out[4 + i] = (uint8_t)(fp >> (8 * i));
}

bool mn_kw_header_current(const void *v, size_t len)
{
    uint8_t want[MN_KW_HEADER_LEN];
    mn_kw_header(want);
    return v && len == MN_KW_HEADER_LEN && !memcmp(v, want, MN_KW_HEADER_LEN);
}
