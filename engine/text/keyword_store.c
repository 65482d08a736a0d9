/* Stored term lists of the keyword index: what start-up needs to rebuild the
 * BM25 index of a space without tokenising (keyword.c adds a list directly).
 *
 * A list (value of sid | id in the keywords column family) is
 *   u8 format (MN_KW_DOC_FORMAT, 2) | varint content bytes |
 *   varint tokens of each field (content, tags, who, where) | varint distinct terms |
 *   per term: u8 length, the folded and stemmed UTF-8 bytes, u8 the fields it
 *   occurs in (bit f), varint tf in each of them
 * and each field's frequencies add up to its token count, which the decoder
 * checks along with every length. Each space's header (key sid) holds the list
 * format and the tokenizer fingerprint the lists were made with: the
 * fingerprint hashes MN_TOKENIZER_VERSION, the tokenizer's behaviour (every
 * code point's folding, the tokens of probe texts, the token size limit), the
 * space's language and its stemmer's stems of probe words, so a change to
 * text.c or to libstemmer is noticed even if nobody bumps the version, and the
 * lists are rebuilt. */
#include "keyword.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"
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

/* Distinct terms of one document with their counts per field (open addressing
 * on FNV-1a). */
typedef struct tok_set {
    char (*text)[MN_TOKEN_MAX + 1];
    uint8_t *len;
    uint32_t (*tf)[MN_KW_FIELDS];
    uint32_t *table; /* index + 1, 0 = empty */
    uint32_t n, cap;
    uint32_t tokens[MN_KW_FIELDS];
    int lang, field;
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
    uint32_t(*tf)[MN_KW_FIELDS] = realloc(t->tf, cap * sizeof *tf);
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

static int on_tok(void *arg, const char *word, size_t wlen, uint32_t pos)
{
    (void)pos;
    tok_set *t = arg;
    char tok[MN_TOKEN_MAX + 1];
    size_t len = mn_text_stem(t->lang, word, wlen, tok);
    t->tokens[t->field]++;
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
            memset(t->tf[t->n], 0, sizeof t->tf[t->n]);
            t->tf[t->n][t->field] = 1;
            t->table[j] = ++t->n;
            return 0;
        }
        if (t->len[v - 1] == len && !memcmp(t->text[v - 1], tok, len)) {
            t->tf[v - 1][t->field]++;
            return 0;
        }
    }
}

static void tokenize_field(tok_set *t, int field, const char *s, size_t len)
{
    t->field = field;
    if (s && len && !t->oom) mn_text_tokenize(s, len, on_tok, t);
}

/* Each field's tokens into t: content, then every tag, every who, where. */
static void tokenize_doc(tok_set *t, const mn_kw_text_t *d)
{
    tokenize_field(t, MN_KW_CONTENT, d->content, d->content_len);
    for (size_t i = 0; i < d->n_tags; i++)
        tokenize_field(t, MN_KW_TAGS, d->tags[i], d->tags[i] ? strlen(d->tags[i]) : 0);
    for (size_t i = 0; i < d->n_who; i++)
        tokenize_field(t, MN_KW_WHO, d->who[i], d->who[i] ? strlen(d->who[i]) : 0);
    tokenize_field(t, MN_KW_WHERE, d->where, d->where ? strlen(d->where) : 0);
}

/* Writes the list of a tokenised document into a buffer of the right size. */
static uint8_t *encode_set(const tok_set *t, size_t content_len, size_t *out_len)
{
    size_t cap = 1 + (2 + MN_KW_FIELDS) * 10;
    for (uint32_t i = 0; i < t->n; i++)
        cap += 2 + t->len[i] + MN_KW_FIELDS * 5;
    uint8_t *buf = malloc(cap);
    if (!buf) return NULL;
    size_t o = 0;
    buf[o++] = MN_KW_DOC_FORMAT;
    o += put_varint(buf + o, content_len);
    for (int f = 0; f < MN_KW_FIELDS; f++)
        o += put_varint(buf + o, t->tokens[f]);
    o += put_varint(buf + o, t->n);
    for (uint32_t i = 0; i < t->n; i++) {
        buf[o++] = t->len[i];
        memcpy(buf + o, t->text[i], t->len[i]);
        o += t->len[i];
        uint8_t fields = 0;
        for (int f = 0; f < MN_KW_FIELDS; f++)
            fields |= (uint8_t)((t->tf[i][f] != 0) << f);
        buf[o++] = fields;
        for (int f = 0; f < MN_KW_FIELDS; f++)
            if (t->tf[i][f]) o += put_varint(buf + o, t->tf[i][f]);
    }
    mn_assert(o <= cap);
    *out_len = o;
    return buf;
}

mn_err mn_kw_doc_encode(int lang, const mn_kw_text_t *text, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    tok_set t = {.lang = lang};
    tokenize_doc(&t, text);
    mn_err rc = MN_OK;
    if (t.oom || !(*out = encode_set(&t, text->content_len, out_len))) rc = MN_ERR_NOMEM;
    free(t.text);
    free(t.len);
    free(t.tf);
    free(t.table);
    return rc;
}

/* The head of a list: content bytes, tokens per field, distinct terms. */
static bool decode_head(const uint8_t *doc, size_t len, size_t *o, uint64_t *cl,
                        uint64_t nt[MN_KW_FIELDS], uint64_t *n)
{
    *o = 1;
    if (!doc || len < 3 + MN_KW_FIELDS || doc[0] != MN_KW_DOC_FORMAT ||
        !get_varint(doc, len, o, cl) || *cl > UINT32_MAX)
        return false;
    uint64_t total = 0;
    for (int f = 0; f < MN_KW_FIELDS; f++) {
        if (!get_varint(doc, len, o, &nt[f]) || nt[f] > UINT32_MAX) return false;
        total += nt[f];
    }
    return get_varint(doc, len, o, n) && *n <= total;
}

mn_err mn_kw_doc_decode(const uint8_t *doc, size_t len, uint64_t *content_len,
                        uint32_t tokens[MN_KW_FIELDS], mn_kw_term_t *terms, uint32_t cap,
                        uint32_t *n_terms)
{
    *n_terms = 0;
    size_t o;
    uint64_t cl, nt[MN_KW_FIELDS], n;
    if (!decode_head(doc, len, &o, &cl, nt, &n)) return MN_ERR_CORRUPT;
    if (terms && n > cap) {
        *n_terms = (uint32_t)n;
        return MN_ERR_NOMEM;
    }
    uint64_t sum[MN_KW_FIELDS] = {0};
    for (uint64_t i = 0; i < n; i++) {
        if (o >= len) return MN_ERR_CORRUPT;
        uint32_t tl = doc[o++];
        if (!tl || tl > MN_TOKEN_MAX || tl >= len - o) return MN_ERR_CORRUPT;
        if (terms) {
            terms[i].text = (const char *)doc + o;
            terms[i].len = tl;
        }
        o += tl;
        uint8_t fields = doc[o++];
        if (!fields || fields >> MN_KW_FIELDS) return MN_ERR_CORRUPT;
        for (int f = 0; f < MN_KW_FIELDS; f++) {
            uint64_t tf = 0;
            if ((fields >> f & 1) && (!get_varint(doc, len, &o, &tf) || !tf || tf > nt[f]))
                return MN_ERR_CORRUPT;
            if (terms) terms[i].tf[f] = (uint32_t)tf;
            sum[f] += tf;
        }
    }
    if (o != len) return MN_ERR_CORRUPT;
    for (int f = 0; f < MN_KW_FIELDS; f++) {
        if (sum[f] != nt[f]) return MN_ERR_CORRUPT;
        tokens[f] = (uint32_t)nt[f];
    }
    *content_len = cl;
    *n_terms = (uint32_t)n;
    return MN_OK;
}

mn_err mn_kw_doc_content_len(const uint8_t *doc, size_t len, uint64_t *content_len)
{
    size_t o = 1;
    if (!doc || len < 3 + MN_KW_FIELDS || doc[0] != MN_KW_DOC_FORMAT ||
        !get_varint(doc, len, &o, content_len))
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
    uint32_t v[4] = {MN_KW_DOC_FORMAT, MN_TOKENIZER_VERSION, MN_TOKEN_MAX, MN_KW_FIELDS};
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

/* Words whose stems tell one stemmer (or version of it) from another. */
static const char *const stem_probes[] = {
    "running", "generously", "caresses", "ponies", "relational", "hopefully", "goodness",
    "conditional", "organization", "feudalism", "agreed", "plastered", "motoring", "sized",
    "happy", "national", "nationalite", "continuaient", "aufeinanderfolgenden", "corriendo",
    "\xd0\xb1\xd0\xb5\xd0\xb3\xd0\xb0\xd1\x8e\xd1\x89\xd0\xb8\xd0\xb5", /* бегающие */
};

uint64_t mn_kw_tokenizer_fingerprint(int lang)
{
    pthread_once(&fp_once, fp_compute);
    uint64_t h = fp_value;
    const char *name = mn_text_language_name(lang);
    fp_mix(&h, name, strlen(name) + 1);
    for (size_t i = 0; i < sizeof stem_probes / sizeof *stem_probes; i++) {
        char out[MN_TOKEN_MAX + 1];
        size_t n = mn_text_stem(lang, stem_probes[i], strlen(stem_probes[i]), out);
        fp_mix(&h, out, n + 1);
    }
    return h;
}

void mn_kw_header(int lang, uint8_t out[MN_KW_HEADER_LEN])
{
    uint64_t fp = mn_kw_tokenizer_fingerprint(lang);
    uint32_t f = MN_KW_DOC_FORMAT;
    for (int i = 0; i < 4; i++)
        out[i] = (uint8_t)(f >> (8 * i));
    for (int i = 0; i < 8; i++)
        out[4 + i] = (uint8_t)(fp >> (8 * i));
}

bool mn_kw_header_current(int lang, const void *v, size_t len)
{
    uint8_t want[MN_KW_HEADER_LEN];
    mn_kw_header(lang, want);
    return v && len == MN_KW_HEADER_LEN && !memcmp(v, want, MN_KW_HEADER_LEN);
}
