/* BM25F inverted index (Robertson, Zaragoza & Taylor, "Simple BM25 extension
 * to multiple weighted fields", CIKM 2004; Robertson & Zaragoza, "The
 * Probabilistic Relevance Framework: BM25 and Beyond", 2009) with the
 * non-negative idf ln(1 + (N - df + 0.5) / (df + 0.5)) used by Lucene. A
 * term's frequencies in the fields are length-normalised each in its field,
 * weighted and added before the one saturation:
 *   tf~(t, d) = sum_f w_f * tf_f / (1 - b_f + b_f * len_f(d) / avglen_f)
 *   score(d)  = sum_t idf(t) * tf~ * (k1 + 1) / (tf~ + k1)
 * so with the content field alone (w = 1) it is BM25.
 *
 * Terms live in an open-addressing table; each term has a postings array of
 * (slot, tf per field). Each document keeps the ids of its distinct terms so removal can
 * decrement document frequencies at once; its postings are dropped lazily: a
 * removed slot's entries are skipped during search (the slot's generation no
 * longer matches) and a term's postings are compacted when half of them are
 * dead. Search accumulates scores per slot in a dense array and keeps a
 * bounded heap of the best k. */
#include "keyword.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

typedef struct posting {
    uint32_t slot;
    uint32_t gen;
    uint16_t tf[MN_KW_FIELDS]; /* saturated at 65535 (content holds at most 32768 tokens) */
} posting;

typedef struct term {
    char *text;
    uint32_t len; /* bytes of text */
    uint32_t hash;
    uint32_t df;     /* live documents containing the term */
    uint32_t n, cap; /* postings, live and dead */
    posting *post;
} term;

typedef struct doc {
    uint32_t gen; /* bumped on removal; 0 = never indexed */
    uint32_t len[MN_KW_FIELDS]; /* tokens per field; 0 when not indexed */
    uint32_t n_terms;
    uint32_t *terms; /* distinct term ids */
    bool live;
} doc;

struct mn_kw_index {
    term *terms;
    uint32_t n_terms, cap_terms;
    uint32_t *table; /* term id + 1, 0 = empty */
    uint32_t table_cap;
    doc *docs;
    uint32_t n_docs_cap;
    uint64_t live_docs;
    uint64_t total_len[MN_KW_FIELDS];
    uint64_t live_terms;
    int lang;
    mn_kw_params_t params;
};

/* k1, content's b and who's weight were chosen on a conversation benchmark
 * (REALTALK, bench/conv/run.py; docs/recall.md §1 gives the figures): short
 * turns want a low k1 and a low b (0.4..0.9 and 0.2..0.4 score within 0.007 of
 * each other; Lucene's 1.2 / 0.75 lose 0.02 of recall@10), and the speaker
 * field adds 0.02 at weight 1 (0.5: -0.004, 2: +0.001). Tags and where have no
 * test data yet: weight 1 like content, a mild b. */
const mn_kw_params_t mn_kw_params_default = {
    .k1 = 0.6,
    .weight = {[MN_KW_CONTENT] = 1.0, [MN_KW_TAGS] = 1.0, [MN_KW_WHO] = 1.0, [MN_KW_WHERE] = 1.0},
    .b = {[MN_KW_CONTENT] = 0.3, [MN_KW_TAGS] = 0.5, [MN_KW_WHO] = 0.5, [MN_KW_WHERE] = 0.5},
};

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

mn_kw_index_t *mn_kw_new(int lang)
{
    mn_kw_index_t *ix = calloc(1, sizeof(mn_kw_index_t));
    if (!ix) return NULL;
    ix->lang = lang;
    ix->params = mn_kw_params_default;
    return ix;
}

int mn_kw_language(const mn_kw_index_t *ix)
{
    return ix->lang;
}

void mn_kw_set_params(mn_kw_index_t *ix, const mn_kw_params_t *p)
{
    ix->params = *p;
}

void mn_kw_free(mn_kw_index_t *ix)
{
    if (!ix) return;
    for (uint32_t i = 0; i < ix->n_terms; i++) {
        free(ix->terms[i].text);
        free(ix->terms[i].post);
    }
    for (uint32_t i = 0; i < ix->n_docs_cap; i++) free(ix->docs[i].terms);
    free(ix->terms);
    free(ix->table);
    free(ix->docs);
    free(ix);
}

static uint32_t lookup(const mn_kw_index_t *ix, const char *t, size_t n, uint32_t h)
{
    if (!ix->table_cap) return UINT32_MAX;
    uint32_t mask = ix->table_cap - 1;
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t v = ix->table[i];
        if (!v) return UINT32_MAX;
        const term *tm = &ix->terms[v - 1];
        if (tm->hash == h && tm->len == n && !memcmp(tm->text, t, n)) return v - 1;
    }
}

static mn_err table_grow(mn_kw_index_t *ix)
{
    uint32_t cap = ix->table_cap ? ix->table_cap * 2 : 1024;
    uint32_t *t = calloc(cap, sizeof *t);
    if (!t) return MN_ERR_NOMEM;
    for (uint32_t id = 0; id < ix->n_terms; id++) {
        uint32_t i = ix->terms[id].hash & (cap - 1);
        while (t[i]) i = (i + 1) & (cap - 1);
        t[i] = id + 1;
    }
    free(ix->table);
    ix->table = t;
    ix->table_cap = cap;
    return MN_OK;
}

static uint32_t intern(mn_kw_index_t *ix, const char *t, size_t n)
{
    uint32_t h = fnv1a(t, n);
    uint32_t id = lookup(ix, t, n, h);
    if (id != UINT32_MAX) return id;
    if ((ix->n_terms + 1) * 2 > ix->table_cap && table_grow(ix)) return UINT32_MAX;
    if (ix->n_terms == ix->cap_terms) {
        uint32_t nc = ix->cap_terms ? ix->cap_terms * 2 : 256;
        term *nt = realloc(ix->terms, nc * sizeof *nt);
        if (!nt) return UINT32_MAX;
        ix->terms = nt;
        ix->cap_terms = nc;
    }
    term *tm = &ix->terms[ix->n_terms];
    memset(tm, 0, sizeof *tm);
    tm->text = malloc(n + 1);
    if (!tm->text) return UINT32_MAX;
    memcpy(tm->text, t, n);
    tm->text[n] = '\0';
    tm->len = (uint32_t)n;
    tm->hash = h;
    id = ix->n_terms++;
    uint32_t i = h & (ix->table_cap - 1);
    while (ix->table[i]) i = (i + 1) & (ix->table_cap - 1);
    ix->table[i] = id + 1;
    return id;
}

/* A document's distinct term ids and frequencies, gathered before touching
 * the index. */
typedef struct collect {
    uint32_t *ids;
    uint16_t (*tfs)[MN_KW_FIELDS];
    uint32_t n;
    uint32_t len[MN_KW_FIELDS];
} collect;

/* Makes room for slot's document and clears a previous one. */
static mn_err doc_slot(mn_kw_index_t *ix, uint32_t slot)
{
    if (slot >= ix->n_docs_cap) {
        uint32_t nc = ix->n_docs_cap ? ix->n_docs_cap : 256;
        while (nc <= slot) nc *= 2;
        doc *nd = realloc(ix->docs, nc * sizeof *nd);
        if (!nd) return MN_ERR_NOMEM;
        memset(nd + ix->n_docs_cap, 0, (nc - ix->n_docs_cap) * sizeof *nd);
        ix->docs = nd;
        ix->n_docs_cap = nc;
    }
    if (ix->docs[slot].live) mn_kw_remove(ix, slot);
    return MN_OK;
}

static mn_err add_postings(mn_kw_index_t *ix, uint32_t slot, collect *c);

mn_err mn_kw_add(mn_kw_index_t *ix, uint32_t slot, const mn_kw_text_t *text)
{
    uint8_t *list;
    size_t len;
    mn_err rc = mn_kw_doc_encode(ix->lang, text, &list, &len);
    if (rc) return rc;
    rc = mn_kw_add_encoded(ix, slot, list, len);
    free(list);
    return rc == MN_ERR_CORRUPT ? MN_ERR_NOMEM : rc; /* a list just made always parses */
}

mn_err mn_kw_add_encoded(mn_kw_index_t *ix, uint32_t slot, const uint8_t *blob, size_t blen)
{
    uint64_t content_len = 0;
    uint32_t n = 0;
    collect c = {0};
    mn_kw_term_t stack[64], *terms = stack;
    mn_err rc = mn_kw_doc_decode(blob, blen, &content_len, c.len, terms, 64, &n);
    if (rc == MN_ERR_NOMEM) { /* more terms than the stack holds: n is how many */
        if (!(terms = malloc(n * sizeof *terms))) return MN_ERR_NOMEM;
        rc = mn_kw_doc_decode(blob, blen, &content_len, c.len, terms, n, &n);
    }
    if (!rc) rc = doc_slot(ix, slot);
    if (!rc && n) {
        c.ids = malloc(n * sizeof *c.ids);
        c.tfs = malloc(n * sizeof *c.tfs);
        if (!c.ids || !c.tfs) rc = MN_ERR_NOMEM;
    }
    for (uint32_t i = 0; !rc && i < n; i++) {
        uint32_t id = intern(ix, terms[i].text, terms[i].len);
        if (id == UINT32_MAX) {
            rc = MN_ERR_NOMEM;
            break;
        }
        c.ids[c.n] = id;
        for (int f = 0; f < MN_KW_FIELDS; f++)
            c.tfs[c.n][f] = (uint16_t)(terms[i].tf[f] > UINT16_MAX ? UINT16_MAX : terms[i].tf[f]);
        c.n++;
    }
    if (terms != stack) free(terms);
    if (rc) {
        free(c.ids);
        free(c.tfs);
        return rc;
    }
    return add_postings(ix, slot, &c);
}

/* Adds the postings of a collected document (takes c's arrays). */
static mn_err add_postings(mn_kw_index_t *ix, uint32_t slot, collect *cp)
{
    collect c = *cp;
    doc *d = &ix->docs[slot];
    for (uint32_t i = 0; i < c.n; i++) {
        term *tm = &ix->terms[c.ids[i]];
        if (tm->n == tm->cap) {
            uint32_t nc = tm->cap ? tm->cap * 2 : 4;
            posting *np = realloc(tm->post, nc * sizeof *np);
            if (!np) {
                /* undo the postings added so far */
                for (uint32_t j = 0; j < i; j++) {
                    ix->terms[c.ids[j]].n--;
                    if (--ix->terms[c.ids[j]].df == 0) ix->live_terms--;
                }
                free(c.ids);
                free(c.tfs);
                return MN_ERR_NOMEM;
            }
            tm->post = np;
            tm->cap = nc;
        }
        posting *p = &tm->post[tm->n++];
        p->slot = slot;
        p->gen = d->gen;
        memcpy(p->tf, c.tfs[i], sizeof p->tf);
        if (tm->df++ == 0) ix->live_terms++;
    }
    free(c.tfs);
    d->terms = c.ids;
    d->n_terms = c.n;
    memcpy(d->len, c.len, sizeof d->len);
    d->live = true;
    ix->live_docs++;
    for (int f = 0; f < MN_KW_FIELDS; f++) ix->total_len[f] += c.len[f];
    return MN_OK;
}

static void compact(mn_kw_index_t *ix, term *tm)
{
    uint32_t w = 0;
    for (uint32_t r = 0; r < tm->n; r++) {
        const posting *p = &tm->post[r];
        const doc *d = &ix->docs[p->slot];
        if (d->live && d->gen == p->gen) tm->post[w++] = *p;
    }
    tm->n = w;
}

void mn_kw_remove(mn_kw_index_t *ix, uint32_t slot)
{
    if (slot >= ix->n_docs_cap || !ix->docs[slot].live) return;
    doc *d = &ix->docs[slot];
    d->live = false;
    d->gen++;
    ix->live_docs--;
    for (int f = 0; f < MN_KW_FIELDS; f++) ix->total_len[f] -= d->len[f];
    for (uint32_t i = 0; i < d->n_terms; i++) {
        term *tm = &ix->terms[d->terms[i]];
        if (--tm->df == 0) ix->live_terms--;
        if (tm->n >= 8 && tm->df * 2 < tm->n) compact(ix, tm);
    }
    free(d->terms);
    d->terms = NULL;
    d->n_terms = 0;
    memset(d->len, 0, sizeof d->len);
}

uint32_t mn_kw_df(const mn_kw_index_t *ix, const char *word, size_t len)
{
    uint32_t id = lookup(ix, word, len, fnv1a(word, len));
    return id == UINT32_MAX ? 0 : ix->terms[id].df;
}

uint64_t mn_kw_docs(const mn_kw_index_t *ix)
{
    return ix->live_docs;
}

uint64_t mn_kw_terms(const mn_kw_index_t *ix)
{
    return ix->live_terms;
}

#define QUERY_TERMS_MAX 64

/* The distinct stems of a query, each marked a stop word when every word it
 * came from is one. */
typedef struct qwords {
    int lang;
    char stem[QUERY_TERMS_MAX][MN_TOKEN_MAX + 1];
    bool stop[QUERY_TERMS_MAX];
    uint32_t n, n_content; /* stems, and those not stop words */
} qwords;

static int on_query_token(void *arg, const char *tok, size_t len, uint32_t pos)
{
    (void)pos;
    qwords *q = arg;
    char st[MN_TOKEN_MAX + 1];
    mn_text_stem(q->lang, tok, len, st);
    bool stop = mn_text_stopword(q->lang, tok);
    for (uint32_t i = 0; i < q->n; i++)
        if (!strcmp(q->stem[i], st)) { /* repeated query words count once */
            if (q->stop[i] && !stop) {
                q->stop[i] = false;
                q->n_content++;
            }
            return 0;
        }
    if (q->n == QUERY_TERMS_MAX) return 1;
    memcpy(q->stem[q->n], st, strlen(st) + 1);
    q->stop[q->n++] = stop;
    q->n_content += !stop;
    return 0;
}

/* The query's terms: its stems, without the stop words when another word is
 * left; those the index knows in ids, the others counted in *unknown. */
typedef struct qterms {
    uint32_t ids[QUERY_TERMS_MAX];
    uint32_t n;
    uint32_t unknown;
} qterms;

static void query_terms(const mn_kw_index_t *ix, const char *query, size_t len, qterms *out)
{
    qwords *q = malloc(sizeof *q); /* 4 KiB: off the stack of a worker thread */
    out->n = out->unknown = 0;
    if (!q) return;
    q->lang = ix->lang;
    q->n = q->n_content = 0;
    mn_text_tokenize(query, len, on_query_token, q);
    for (uint32_t i = 0; i < q->n; i++) {
        if (q->stop[i] && q->n_content) continue;
        size_t sl = strlen(q->stem[i]);
        uint32_t id = lookup(ix, q->stem[i], sl, fnv1a(q->stem[i], sl));
        if (id == UINT32_MAX || !ix->terms[id].df) out->unknown++;
        else out->ids[out->n++] = id;
    }
    free(q);
}

static bool hit_worse(const mn_kw_hit_t *a, const mn_kw_hit_t *b)
{
    return a->score < b->score || (a->score == b->score && a->slot > b->slot);
}

static void heap_down(mn_kw_hit_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && hit_worse(&h[l], &h[m])) m = l;
        if (r < n && hit_worse(&h[r], &h[m])) m = r;
        if (m == i) return;
        mn_kw_hit_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_up(mn_kw_hit_t *h, size_t i)
{
    while (i) {
        size_t p = (i - 1) / 2;
        if (!hit_worse(&h[i], &h[p])) return;
        mn_kw_hit_t t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

static int hit_cmp(const void *a, const void *b)
{
    const mn_kw_hit_t *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* A term's idf, ln(1 + (N - df + 0.5) / (df + 0.5)): positive for any df <= N. */
static double idf_of(double n_docs, double df)
{
    return log(1.0 + (n_docs - df + 0.5) / (df + 0.5));
}

/* Per-query scratch, so concurrent searches under a read lock never share
 * state. Large callocs come from fresh zero pages: only touched pages cost. */
typedef struct scratch {
    float *acc, *cov;
    uint32_t *touched;
    uint32_t n_touched;
} scratch;

/* Adds one term's BM25F contributions to every live document that has it;
 * cov_share is what the term adds to their coverage. */
static void score_term(const mn_kw_index_t *ix, const term *tm, double idf, double cov_share,
                       const double norm_b[MN_KW_FIELDS], const double inv_avg[MN_KW_FIELDS],
                       scratch *sc)
{
    const mn_kw_params_t *p = &ix->params;
    for (uint32_t i = 0; i < tm->n; i++) {
        const posting *po = &tm->post[i];
        const doc *d = &ix->docs[po->slot];
        if (!d->live || d->gen != po->gen) continue;
        double tf = 0;
        for (int f = 0; f < MN_KW_FIELDS; f++)
            if (po->tf[f])
                tf += p->weight[f] * po->tf[f] /
                      (1 - norm_b[f] + norm_b[f] * d->len[f] * inv_avg[f]);
        if (tf <= 0) continue; /* only in fields of weight 0 */
        /* every term score is > 0 (idf > 0, tf > 0), so 0 means untouched */
        if (sc->acc[po->slot] == 0) sc->touched[sc->n_touched++] = po->slot;
        sc->acc[po->slot] += (float)(idf * tf * (p->k1 + 1) / (tf + p->k1));
        sc->cov[po->slot] += (float)cov_share;
    }
}

/* The k best accepted documents of the scores, as a heap (unsorted). */
static size_t best_of(const scratch *sc, bool (*accept)(void *arg, uint32_t slot), void *arg,
                      size_t k, mn_kw_hit_t *out)
{
    size_t n = 0;
    for (uint32_t i = 0; i < sc->n_touched; i++) {
        uint32_t s = sc->touched[i];
        mn_kw_hit_t h = {s, sc->acc[s], sc->cov[s] > 1 ? 1 : sc->cov[s]};
        if (accept && !accept(arg, s)) continue;
        if (n < k) {
            out[n++] = h;
            heap_up(out, n - 1);
        } else if (hit_worse(&out[0], &h)) {
            out[0] = h;
            heap_down(out, n, 0);
        }
    }
    return n;
}

size_t mn_kw_search(const mn_kw_index_t *ix, const char *query, size_t len,
                    bool (*accept)(void *arg, uint32_t slot), void *arg, size_t k,
                    mn_kw_hit_t *out)
{
    if (!k || !ix->live_docs) return 0;
    qterms q;
    query_terms(ix, query, len, &q);
    if (!q.n) return 0;
    scratch sc = {.acc = calloc(ix->n_docs_cap, sizeof(float)),
                  .cov = calloc(ix->n_docs_cap, sizeof(float)),
                  .touched = malloc(ix->n_docs_cap * sizeof(uint32_t))};
    size_t n = 0;
    if (!sc.acc || !sc.cov || !sc.touched) goto out;
    double n_docs = (double)ix->live_docs;
    double norm_b[MN_KW_FIELDS], inv_avg[MN_KW_FIELDS];
    for (int f = 0; f < MN_KW_FIELDS; f++) {
        double avg = (double)ix->total_len[f] / n_docs;
        /* a field nobody has text in normalises nothing */
        norm_b[f] = avg > 0 ? ix->params.b[f] : 0;
        inv_avg[f] = avg > 0 ? 1 / avg : 0;
    }
    double idf_total = q.unknown * idf_of(n_docs, 0);
    for (uint32_t t = 0; t < q.n; t++) idf_total += idf_of(n_docs, ix->terms[q.ids[t]].df);
    for (uint32_t t = 0; t < q.n; t++) {
        const term *tm = &ix->terms[q.ids[t]];
        double idf = idf_of(n_docs, tm->df);
        score_term(ix, tm, idf, idf / idf_total, norm_b, inv_avg, &sc);
    }
    n = best_of(&sc, accept, arg, k, out);
    qsort(out, n, sizeof *out, hit_cmp);
out:
    free(sc.acc);
    free(sc.cov);
    free(sc.touched);
    return n;
}
