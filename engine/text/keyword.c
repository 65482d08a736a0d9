/* BM25 inverted index (Robertson & Zaragoza, "The Probabilistic Relevance
 * Framework: BM25 and Beyond", 2009), with k1 = 1.2, b = 0.75 and the
 * non-negative idf ln(1 + (N - df + 0.5) / (df + 0.5)) used by Lucene.
 *
 * Terms live in an open-addressing table; each term has a postings array of
 * (slot, tf). Each document keeps the ids of its distinct terms so removal can
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
    uint32_t tf;
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
    uint32_t len; /* tokens; 0 when not indexed */
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
    uint64_t total_len;
    uint64_t live_terms;

};

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

mn_kw_index_t *mn_kw_new(void)
{
    return calloc(1, sizeof(mn_kw_index_t));
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

/* Tokens of one document, gathered before touching the index. */
typedef struct collect {
    mn_kw_index_t *ix;
    uint32_t *ids;
    uint32_t *tfs;
    uint32_t n, cap;
    uint32_t len;
    bool oom;
} collect;

static int on_token(void *arg, const char *tok, size_t len, uint32_t pos)
{
    (void)pos;
    collect *c = arg;
    c->len++;
    uint32_t id = intern(c->ix, tok, len);
    if (id == UINT32_MAX) {
        c->oom = true;
        return 1;
    }
    for (uint32_t i = 0; i < c->n; i++)
        if (c->ids[i] == id) {
            c->tfs[i]++;
            return 0;
        }
    if (c->n == c->cap) {
        uint32_t nc = c->cap ? c->cap * 2 : 32;
        uint32_t *ni = realloc(c->ids, nc * sizeof *ni);
        if (!ni) {
            c->oom = true;
            return 1;
        }
        c->ids = ni;
        uint32_t *nt = realloc(c->tfs, nc * sizeof *nt);
        if (!nt) {
            c->oom = true;
            return 1;
        }
        c->tfs = nt;
        c->cap = nc;
    }
    c->ids[c->n] = id;
    c->tfs[c->n++] = 1;
    return 0;
}

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

mn_err mn_kw_add(mn_kw_index_t *ix, uint32_t slot, const char *text, size_t len)
{
    if (doc_slot(ix, slot)) return MN_ERR_NOMEM;
    collect c = {.ix = ix};
    mn_text_tokenize(text, len, on_token, &c);
    if (c.oom) {
        free(c.ids);
        free(c.tfs);
        return MN_ERR_NOMEM;
    }
    return add_postings(ix, slot, &c);
}

mn_err mn_kw_add_encoded(mn_kw_index_t *ix, uint32_t slot, const uint8_t *blob, size_t blen)
{
    uint64_t content_len = 0;
    uint32_t tokens = 0, n = 0;
    mn_kw_term_t stack[64], *terms = stack;
    mn_err rc = mn_kw_doc_decode(blob, blen, &content_len, &tokens, terms, 64, &n);
    if (rc == MN_ERR_NOMEM) { /* more terms than the stack holds: n is how many */
        if (!(terms = malloc(n * sizeof *terms))) return MN_ERR_NOMEM;
        rc = mn_kw_doc_decode(blob, blen, &content_len, &tokens, terms, n, &n);
    }
    if (!rc) rc = doc_slot(ix, slot);
    collect c = {.ix = ix, .len = tokens};
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
        c.tfs[c.n++] = terms[i].tf;
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
        tm->post[tm->n++] = (posting){slot, d->gen, c.tfs[i]};
        if (tm->df++ == 0) ix->live_terms++;
    }
    free(c.tfs);
    d->terms = c.ids;
    d->n_terms = c.n;
    d->len = c.len;
    d->live = true;
    ix->live_docs++;
    ix->total_len += c.len;
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
    ix->total_len -= d->len;
    for (uint32_t i = 0; i < d->n_terms; i++) {
        term *tm = &ix->terms[d->terms[i]];
        if (--tm->df == 0) ix->live_terms--;
        if (tm->n >= 8 && tm->df * 2 < tm->n) compact(ix, tm);
    }
    free(d->terms);
    d->terms = NULL;
    d->n_terms = 0;
    d->len = 0;
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

typedef struct qterms {
    const mn_kw_index_t *ix;
    uint32_t ids[QUERY_TERMS_MAX];
    uint32_t n;
    uint32_t unknown; /* distinct words absent from the index */
    char seen[QUERY_TERMS_MAX][MN_TOKEN_MAX + 1];
    uint32_t n_seen;
} qterms;

static int on_query_token(void *arg, const char *tok, size_t len, uint32_t pos)
{
    (void)pos;
    qterms *q = arg;
    for (uint32_t i = 0; i < q->n_seen; i++)
        if (!strcmp(q->seen[i], tok)) return 0; /* repeated query words count once */
    if (q->n_seen == QUERY_TERMS_MAX) return 1;
    memcpy(q->seen[q->n_seen++], tok, len + 1);
    uint32_t id = lookup(q->ix, tok, len, fnv1a(tok, len));
    if (id == UINT32_MAX || !q->ix->terms[id].df) q->unknown++;
    else q->ids[q->n++] = id;
    return 0;
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

size_t mn_kw_search(const mn_kw_index_t *ix, const char *query, size_t len,
                    bool (*accept)(void *arg, uint32_t slot), void *arg, size_t k,
                    mn_kw_hit_t *out)
{
    if (!k || !ix->live_docs) return 0;
    qterms q;
    q.ix = ix;
    q.n = q.unknown = q.n_seen = 0;
    mn_text_tokenize(query, len, on_query_token, &q);
    if (!q.n) return 0;
    /* Per-query scratch, so concurrent searches under a read lock never share
     * state. Large callocs come from fresh zero pages: only touched pages cost. */
    float *acc = calloc(ix->n_docs_cap, sizeof *acc);
    float *cov = calloc(ix->n_docs_cap, sizeof *cov);
    uint32_t *touched = malloc(ix->n_docs_cap * sizeof *touched);
    if (!acc || !cov || !touched) {
        free(acc);
        free(cov);
        free(touched);
        return 0;
    }
    uint32_t n_touched = 0;
    const double k1 = 1.2, b = 0.75;
    double n_docs = (double)ix->live_docs;
    double avgdl = (double)ix->total_len / n_docs;
    if (avgdl <= 0) avgdl = 1;
    double idf_total = q.unknown * log(1.0 + (n_docs + 0.5) / 0.5);
    for (uint32_t t = 0; t < q.n; t++) {
        const term *tm = &ix->terms[q.ids[t]];
        idf_total += log(1.0 + (n_docs - tm->df + 0.5) / (tm->df + 0.5));
    }
    for (uint32_t t = 0; t < q.n; t++) {
        const term *tm = &ix->terms[q.ids[t]];
        double idf = log(1.0 + (n_docs - tm->df + 0.5) / (tm->df + 0.5));
        for (uint32_t i = 0; i < tm->n; i++) {
            const posting *p = &tm->post[i];
            const doc *d = &ix->docs[p->slot];
            if (!d->live || d->gen != p->gen) continue;
            double tf = p->tf;
            /* every term score is > 0 (idf > 0, tf > 0), so 0 means untouched */
            if (acc[p->slot] == 0) touched[n_touched++] = p->slot;
            acc[p->slot] += (float)(idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * d->len / avgdl)));
            cov[p->slot] += (float)(idf / idf_total);
        }
    }
    size_t n = 0;
    for (uint32_t i = 0; i < n_touched; i++) {
        uint32_t s = touched[i];
        mn_kw_hit_t h = {s, acc[s], cov[s] > 1 ? 1 : cov[s]};
        if (accept && !accept(arg, s)) continue;
        if (n < k) {
            out[n++] = h;
            heap_up(out, n - 1);
        } else if (hit_worse(&out[0], &h)) {
            out[0] = h;
            heap_down(out, n, 0);
        }
    }
    free(acc);
    free(cov);
    free(touched);
    qsort(out, n, sizeof *out, hit_cmp);
    return n;
}
