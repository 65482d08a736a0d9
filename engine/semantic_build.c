/* Building a semantic memory from its members (semantic_build.h), and
 * re-deriving one whose supports were erased (mn__consolidate_rederive).
 *
 * Fields are functions of the member records (docs/recall.md §7): centroid
 * (normalised mean of unit vectors, summed in id order in double precision),
 * cohesion and medoid (fixed-order scalar dot products, so the same bits on
 * every machine), when = earliest, created_at = latest, importance = max,
 * tags on at least half the members, who = union; content = the medoid's text
 * and "[keywords: ...]". A run ranks keywords with word counts over every
 * cluster it keeps; a re-derivation keeps the old keywords that a remaining
 * member holds (it cannot see the other clusters' counts), and the next run
 * ranks them again. */
#include "semantic_build.h"

#include "consolidate.h"
#include "record.h"
#include "vec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYWORDS_MAX 5
#define CONTENT_KEYWORDS_PREFIX "\n[keywords: "

void mn__sem_centroid(const double *sum, uint32_t dim, float *out)
{
    double nn = 0;
    for (uint32_t i = 0; i < dim; i++)
        nn += sum[i] * sum[i];
    double inv = nn > 0 ? 1.0 / sqrt(nn) : 0;
    for (uint32_t i = 0; i < dim; i++)
        out[i] = (float)(sum[i] * inv);
}

/* ---- words: a small open-addressing map from a token to counts ---- */
void mn__sem_words_free(mn__sem_words *m)
{
    free(m->e);
    free(m->ix);
    memset(m, 0, sizeof *m);
}

static uint64_t word_hash(const char *w, size_t len)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)w[i]) * 1099511628211ull;
    return h;
}

/* The entry of word w (created with count 0), or NULL when out of memory. */
mn__sem_word *mn__sem_words_get(mn__sem_words *m, const char *w, size_t len, bool create)
{
    if (m->ix_cap) {
        size_t mask = m->ix_cap - 1;
        for (size_t i = word_hash(w, len) & mask;; i = (i + 1) & mask) {
            if (!m->ix[i]) break;
            mn__sem_word *x = &m->e[m->ix[i] - 1];
            if (!strcmp(x->word, w)) return x;
        }
    }
    if (!create) return NULL;
    if ((m->n + 1) * 2 > m->ix_cap) { /* grow the index, rehash */
        size_t nc = m->ix_cap ? m->ix_cap * 2 : 64;
        uint32_t *ni = calloc(nc, sizeof *ni);
        if (!ni) return NULL;
        for (size_t k = 0; k < m->n; k++) {
            size_t j = word_hash(m->e[k].word, strlen(m->e[k].word)) & (nc - 1);
            while (ni[j])
                j = (j + 1) & (nc - 1);
            ni[j] = (uint32_t)k + 1;
        }
        free(m->ix);
        m->ix = ni;
        m->ix_cap = nc;
    }
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 32;
        mn__sem_word *ne = realloc(m->e, nc * sizeof *ne);
        if (!ne) return NULL;
        m->e = ne;
        m->cap = nc;
    }
    mn__sem_word *x = &m->e[m->n];
    memcpy(x->word, w, len + 1);
    x->count = 0;
    x->last = 0;
    x->score = 0;
    size_t j = word_hash(w, len) & (m->ix_cap - 1);
    while (m->ix[j])
        j = (j + 1) & (m->ix_cap - 1);
    m->ix[j] = (uint32_t)++m->n;
    return x;
}

typedef struct kwctx {
    mn__sem_words *words;
    uint32_t member; /* 1-based */
    bool oom;
} kwctx;

static int kw_token(void *arg, const char *tok, size_t len, uint32_t pos)
{
    (void)pos;
    kwctx *c = arg;
    if (len < 3) return 0; /* short words are rarely topical */
    mn__sem_word *x = mn__sem_words_get(c->words, tok, len, true);
    if (!x) {
        c->oom = true;
        return 1;
    }
    if (x->last != c->member) {
        x->count++;
        x->last = c->member;
    }
    return 0;
}

static int kw_best_first(const void *a, const void *b)
{
    const mn__sem_word *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return strcmp(x->word, y->word);
}

static char *sdup(const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void mn__sem_summary_free(mn__sem_summary *s)
{
    mn__sem_words_free(&s->words);
    free(s->medoid_content);
    for (size_t i = 0; i < s->n_tags; i++)
        free(s->tags[i]);
    for (size_t i = 0; i < s->n_who; i++)
        free(s->who[i]);
    free(s->tags);
    free(s->who);
    memset(s, 0, sizeof *s);
}

static mn_err push_str(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (!nv) return MN_ERR_NOMEM;
    *v = nv;
    if (!(nv[*n] = sdup(s))) return MN_ERR_NOMEM;
    (*n)++;
    return MN_OK;
}

/* Fills *s from the members' records ms[n] (sorted by id; ms[medoid] is the
 * medoid): words, times, tags, people. */
static mn_err summarise_records(const mn_memory_t *ms, size_t n, size_t medoid, mn__sem_summary *s)
{
    memset(s, 0, sizeof *s);
    s->when = INT64_MAX;
    s->created = INT64_MIN;
    mn_err rc = MN_OK;
    kwctx kc = {&s->words, 0, false};
    size_t n_pairs = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        const mn_memory_t *m = &ms[i];
        kc.member = (uint32_t)i + 1;
        if (m->content) mn_text_tokenize(m->content, m->content_len, kw_token, &kc);
        if (kc.oom) rc = MN_ERR_NOMEM;
        if (m->when_ms < s->when) s->when = m->when_ms;
        if (m->created_at_ms > s->created) s->created = m->created_at_ms;
        if (m->importance > s->importance) s->importance = m->importance;
        n_pairs += m->n_tags;
        for (size_t w = 0; !rc && w < m->n_who && s->n_who < MN_WHO_MAX; w++) {
            bool seen = false;
            for (size_t j = 0; j < s->n_who && !seen; j++)
                seen = !strcmp(s->who[j], m->who[w]);
            if (!seen) rc = push_str(&s->who, &s->n_who, m->who[w]);
        }
    }
    /* tags on at least half the members: count each tag's members by sorting
     * the (tag, member) pairs (a member lists a tag once) */
    const char **pairs = !rc ? malloc((n_pairs ? n_pairs : 1) * sizeof *pairs) : NULL;
    if (!rc && !pairs) rc = MN_ERR_NOMEM;
    size_t np = 0;
    for (size_t i = 0; !rc && i < n; i++)
        for (size_t t = 0; t < ms[i].n_tags; t++)
            pairs[np++] = ms[i].tags[t];
    if (!rc && np) qsort(pairs, np, sizeof *pairs, str_cmp);
    for (size_t i = 0; !rc && i < np;) {
        size_t j = i + 1;
        while (j < np && !strcmp(pairs[j], pairs[i]))
            j++;
        if ((j - i) * 2 >= n && s->n_tags < MN_TAGS_MAX)
            rc = push_str(&s->tags, &s->n_tags, pairs[i]);
        i = j;
    }
    free(pairs);
    if (!rc) {
        const mn_memory_t *med = &ms[medoid];
        s->medoid_len = med->content_len;
        s->medoid_content = malloc(med->content_len + 1);
        if (!s->medoid_content)
            rc = MN_ERR_NOMEM;
        else {
            if (med->content_len) memcpy(s->medoid_content, med->content, med->content_len);
            s->medoid_content[med->content_len] = '\0';
        }
    }
    if (!rc) {
        if (s->n_tags) qsort(s->tags, s->n_tags, sizeof *s->tags, str_cmp);
        if (s->n_who) qsort(s->who, s->n_who, sizeof *s->who, str_cmp);
    }
    return rc;
}

/* Reads the members' records (sorted by id) into *s. MN_ERR_NOT_FOUND when
 * one is gone since the clustering: the cluster waits for the next run. */
mn_err mn__sem_summarise(mn_engine_t *e, mn__space *sp, const mn__sem_cluster *k,
                         mn__sem_summary *s)
{
    memset(s, 0, sizeof *s);
    mn_memory_t *ms = calloc(k->n, sizeof *ms);
    if (!ms) return MN_ERR_NOMEM;
    mn_err rc = MN_OK;
    size_t loaded = 0;
    for (; loaded < k->n && !rc; loaded++) {
        mn_error rerr = {0};
        rc = mn__record_read(&e->store, e->opts.initial_stability_days, sp, &k->members[loaded],
                             false, &ms[loaded], &rerr);
        if (rc == MN_ERR_GONE) rc = MN_ERR_NOT_FOUND;
    }
    if (rc) loaded--; /* the failed read left nothing to clear */
    if (!rc) rc = summarise_records(ms, k->n, k->medoid, s);
    for (size_t i = 0; i < loaded; i++)
        mn_memory_clear(&ms[i]);
    free(ms);
    return rc;
}

/* Fills every field of sem but its content from a cluster and its summary
 * (moves the summary's tags and people). */
static mn_err fill_semantic(const mn__space *sp, const mn__sem_cluster *k, mn__sem_summary *s,
                            mn_memory_t *sem)
{
    uint32_t dim = sp->def.dim;
    mn_memory_init(sem);
    sem->id = k->id;
    sem->kind = MN_KIND_SEMANTIC;
    sem->lifecycle = MN_LIFECYCLE_PERSISTENT;
    sem->dim = dim;
    sem->embedding = malloc(dim * sizeof(float));
    sem->support = malloc(k->n * sizeof *sem->support);
    if (!sem->embedding || !sem->support) return MN_ERR_NOMEM;
    memcpy(sem->embedding, k->centroid, dim * sizeof(float));
    memcpy(sem->support, k->members, k->n * sizeof *sem->support);
    sem->n_support = k->n;
    sem->when_ms = s->when;
    sem->created_at_ms = s->created;
    sem->importance = s->importance;
    float conf = (float)k->cohesion;
    sem->confidence = conf < 0 ? 0 : conf > 1 ? 1 : conf;
    sem->tags = s->tags;
    sem->n_tags = s->n_tags;
    sem->who = s->who;
    sem->n_who = s->n_who;
    s->tags = s->who = NULL;
    s->n_tags = s->n_who = 0;
    return MN_OK;
}

/* content = the medoid's text, then "[keywords: ...]" with kw[nk], cut to the
 * content limit at a character boundary. */
static mn_err set_content(mn_memory_t *sem, const mn__sem_summary *s, const char *const *kw,
                          size_t nk)
{
    size_t len = s->medoid_len + sizeof CONTENT_KEYWORDS_PREFIX + nk * (MN_TOKEN_MAX + 2) + 2;
    sem->content = malloc(len);
    if (!sem->content) return MN_ERR_NOMEM;
    size_t off = (size_t)snprintf(sem->content, len, "%.*s", (int)s->medoid_len, s->medoid_content);
    if (nk) {
        off += (size_t)snprintf(sem->content + off, len - off, "%s", CONTENT_KEYWORDS_PREFIX);
        for (size_t i = 0; i < nk; i++)
            off += (size_t)snprintf(sem->content + off, len - off, "%s%s", i ? ", " : "", kw[i]);
        off += (size_t)snprintf(sem->content + off, len - off, "]");
    }
    if (off > MN_CONTENT_MAX) off = MN_CONTENT_MAX; /* keep within the content limit */
    while (off > 0 && ((unsigned char)sem->content[off] & 0xC0) == 0x80)
        off--;
    sem->content[off] = '\0';
    sem->content_len = off;
    return MN_OK;
}

/* Fills sem from a cluster and its summary; the top keywords score
 * (members holding the word) x idf over every supported episode. Moves the
 * summary's strings. */
mn_err mn__sem_build(const mn__space *sp, const mn__sem_cluster *k, mn__sem_summary *s,
                     const mn__sem_words *df, double n_docs, mn_memory_t *sem)
{
    mn_err rc = fill_semantic(sp, k, s, sem);
    if (rc) return rc;
    for (size_t i = 0; i < s->words.n; i++) {
        mn__sem_word *w = &s->words.e[i];
        const mn__sem_word *g =
            mn__sem_words_get((mn__sem_words *)df, w->word, strlen(w->word), false);
        double d = g ? g->count : w->count;
        w->score = w->count * log(1.0 + (n_docs - d + 0.5) / (d + 0.5));
    }
    if (s->words.n) qsort(s->words.e, s->words.n, sizeof *s->words.e, kw_best_first);
    size_t nk = s->words.n < KEYWORDS_MAX ? s->words.n : KEYWORDS_MAX;
    const char *kw[KEYWORDS_MAX];
    for (size_t i = 0; i < nk; i++)
        kw[i] = s->words.e[i].word;
    return set_content(sem, s, kw, nk);
}

static bool same_strv(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb) return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i])) return false;
    return true;
}

/* Does the stored semantic memory old already hold what a run computed? */
bool mn__sem_same(const mn_memory_t *a, const mn_memory_t *old)
{
    return a->content_len == old->content_len && old->content &&
           !memcmp(a->content, old->content, a->content_len) && old->embedding &&
           a->dim == old->dim && !memcmp(a->embedding, old->embedding, a->dim * sizeof(float)) &&
           a->n_support == old->n_support &&
           !memcmp(a->support, old->support, a->n_support * sizeof(mn_id_t)) &&
           a->when_ms == old->when_ms && a->created_at_ms == old->created_at_ms &&
           !memcmp(&a->importance, &old->importance, sizeof(float)) &&
           !memcmp(&a->confidence, &old->confidence, sizeof(float)) &&
           a->lifecycle == old->lifecycle && a->kind == old->kind &&
           same_strv(a->tags, a->n_tags, old->tags, old->n_tags) &&
           same_strv(a->who, a->n_who, old->who, old->n_who);
}

/* ---- re-derivation when supports are erased (commit thread) ---- */

/* The keywords that content ends with (set_content's "[keywords: a, b]"),
 * copied into buf (content_len + 1 bytes) and pointed to by kw; how many. */
static size_t parse_keywords(const char *content, size_t len, char *buf, const char **kw)
{
    size_t pl = sizeof CONTENT_KEYWORDS_PREFIX - 1;
    if (!content || len < pl + 1 || content[len - 1] != ']') return 0;
    size_t at = len - pl;
    for (;; at--) {
        if (!memcmp(content + at, CONTENT_KEYWORDS_PREFIX, pl)) break;
        if (at == 0) return 0;
    }
    size_t n = len - 1 - (at + pl);
    memcpy(buf, content + at + pl, n);
    buf[n] = '\0';
    size_t nk = 0;
    for (char *w = buf; nk < KEYWORDS_MAX && *w;) {
        char *end = strstr(w, ", ");
        if (end) *end = '\0';
        if (*w) kw[nk++] = w;
        if (!end) break;
        w = end + 2;
    }
    return nk;
}

/* A member of a semantic memory, as the batch sees it: live, with its record
 * and unit vector; false when it is gone (or has no usable vector). */
static mn_err read_member(mn_engine_t *e, mn__space *sp, rocksdb_writebatch_wi_t *b,
                          const mn_id_t *id, mn_memory_t *m, float *unit, bool *ok, mn_error *err)
{
    mn_memory_record_t rec;
    bool found;
    *ok = false;
    mn_err rc = mn__record_get_wi(&e->store, b, sp, id, &rec, &found, err);
    if (rc || !found) return rc;
    if (rec.tombstone) {
        mn_memory_clear(&rec.mem);
        return MN_OK;
    }
    uint8_t k[KEY_MEM_LEN];
    mn__key_mem(k, sp->sid, id);
    char *v;
    size_t vl;
    if ((rc = mn__store_get_wi(&e->store, b, CF_VECTORS, k, sizeof k, &v, &vl, err))) {
        mn_memory_clear(&rec.mem);
        return rc;
    }
    if (v && vl == (size_t)sp->def.dim * sizeof(float)) {
        /* the same unit vector a run compares (space.c normalises cosine vectors alike) */
        memcpy(unit, v, vl);
        *ok = mn__vec_normalize(unit, sp->def.dim);
    }
    free(v);
    if (*ok)
        *m = rec.mem;
    else
        mn_memory_clear(&rec.mem);
    return MN_OK;
}

/* Rebuilds semantic memory old from its remaining members (ms, units: nr of
 * them, in id order) as a run builds a cluster: centroid, cohesion, medoid,
 * summary; its keywords are those of old that a remaining member holds (a
 * run's idf needs every cluster: the next run ranks them again). */
static mn_err rebuild(const mn__space *sp, const mn_memory_t *old, const mn_memory_t *ms,
                      const float *units, size_t nr, mn_memory_t *sem)
{
    uint32_t dim = sp->def.dim;
    mn__sem_cluster k = {.id = old->id, .n = nr};
    k.members = malloc(nr * sizeof *k.members);
    k.centroid = malloc(dim * sizeof(float));
    double *sum = calloc(dim, sizeof *sum);
    char *buf = malloc(old->content_len + 1);
    mn__sem_summary s = {0};
    mn_err rc = k.members && k.centroid && sum && buf ? MN_OK : MN_ERR_NOMEM;
    mn_memory_init(sem);
    for (size_t i = 0; !rc && i < nr; i++) {
        k.members[i] = ms[i].id;
        for (uint32_t d = 0; d < dim; d++)
            sum[d] += units[(size_t)i * dim + d];
    }
    if (!rc) {
        mn__sem_centroid(sum, dim, k.centroid);
        float best = 0;
        for (size_t i = 0; i < nr; i++) {
            float sim = mn__vec_dot(units + (size_t)i * dim, k.centroid, dim);
            k.cohesion += sim;
            if (!i || sim > best) { /* ties: the lower id */
                best = sim;
                k.medoid = i;
            }
        }
        k.cohesion /= (double)nr;
        rc = summarise_records(ms, nr, k.medoid, &s);
    }
    if (!rc) rc = fill_semantic(sp, &k, &s, sem);
    if (!rc) {
        const char *kw[KEYWORDS_MAX], *keep[KEYWORDS_MAX];
        size_t nk = parse_keywords(old->content, old->content_len, buf, kw), nkeep = 0;
        for (size_t i = 0; i < nk; i++)
            if (mn__sem_words_get(&s.words, kw[i], strlen(kw[i]), false)) keep[nkeep++] = kw[i];
        rc = set_content(sem, &s, keep, nkeep);
    }
    if (!rc) { /* a client's suppression stays */
        sem->suppressed = old->suppressed;
        sem->suppressed_at_ms = old->suppressed_at_ms;
        sem->unsuppressed_at_ms = old->unsuppressed_at_ms;
    }
    mn__sem_summary_free(&s);
    free(k.members);
    free(k.centroid);
    free(sum);
    free(buf);
    return rc;
}

mn_err mn__consolidate_rederive(mn_engine_t *e, mn__space *sp, rocksdb_writebatch_wi_t *b,
                                const mn_id_t *ids, size_t n, int64_t at_ms, mn_memory_t **out,
                                size_t *n_out, mn_error *err)
{
    uint32_t min_support = e->opts.consolidate.min_support ? e->opts.consolidate.min_support : 3;
    uint32_t dim = sp->def.dim;
    *n_out = 0;
    *out = calloc(n ? n : 1, sizeof **out);
    if (!*out) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    mn_err rc = MN_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        mn_memory_record_t srec;
        bool found;
        if ((rc = mn__record_get_wi(&e->store, b, sp, &ids[i], &srec, &found, err))) break;
        if (!found) continue;
        const mn_memory_t *old = &srec.mem;
        if (srec.tombstone || old->kind != MN_KIND_SEMANTIC || !old->n_support) {
            mn_memory_clear(&srec.mem);
            continue;
        }
        mn_memory_t *ms = calloc(old->n_support, sizeof *ms);
        float *units = malloc(old->n_support * dim * sizeof(float));
        size_t nr = 0;
        if (!ms || !units) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        for (size_t j = 0; j < old->n_support && !rc; j++) {
            bool ok;
            rc = read_member(e, sp, b, &old->support[j], &ms[nr], units + nr * dim, &ok, err);
            nr += !rc && ok;
        }
        mn_memory_t *m = &(*out)[*n_out];
        if (rc || nr == old->n_support) {
            /* nothing lost: it stays as it is */
        } else if (nr < min_support) { /* too few left: retired, in the same entry */
            mn_memory_init(m);
            m->id = old->id;
            m->kind = MN_KIND_SEMANTIC;
            m->when_ms = old->when_ms;
            m->created_at_ms = old->created_at_ms;
            m->forgotten = true;
            m->retired = true;
            m->forgotten_at_ms = at_ms;
            (*n_out)++;
        } else if ((rc = rebuild(sp, old, ms, units, nr, m))) {
            mn_memory_clear(m);
            mn_error_set(err, rc, "re-deriving a semantic memory: %s", mn_strerror(rc));
        } else {
            (*n_out)++;
        }
        for (size_t j = 0; ms && j < nr; j++)
            mn_memory_clear(&ms[j]);
        free(ms);
        free(units);
        mn_memory_clear(&srec.mem);
    }
    if (rc) {
        for (size_t i = 0; i < *n_out; i++)
            mn_memory_clear(&(*out)[i]);
        free(*out);
        *out = NULL;
        *n_out = 0;
    }
    return rc;
}
