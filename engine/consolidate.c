/* Consolidation: episodes that keep coming back to one topic become a semantic
 * memory ("systems consolidation": McClelland, McNaughton & O'Reilly, "Why
 * there are complementary learning systems in the hippocampus and neocortex",
 * Psychological Review 1995 — here reduced to clustering and summarising).
 *
 * Invariant (the cluster layer syncs semantic memories by Merkle gossip and
 * relies on it): the live semantic memories a run leaves — ids and bytes — are
 * a function of the space's eligible episodes and the options only, whatever
 * order the episodes arrived in and however many runs came before. So every
 * run recomputes the clusters from scratch:
 *  1. candidates: every live, unsuppressed, unexpired episode with a vector,
 *     sorted by id (consolidated or not); vectors compared by cosine whatever
 *     the space's metric, with the fixed-order scalar kernels (same bits on
 *     every machine);
 *  2. affinity(episode, cluster) = cos(episode, centroid) + SESSION_BONUS if
 *     the cluster holds one of the episode's session neighbours (the episodes
 *     just before and after it in its context.session, by when, within the
 *     temporal window): related turns of one conversation stay together;
 *  3. sequential "leader" clustering in id order: an episode joins the cluster
 *     of highest affinity if that is >= threshold (ties: the older cluster),
 *     else starts one; then REFINE_PASSES synchronous reassignments to the
 *     exact centroids (neighbours' clusters taken from the previous pass);
 *  4. clusters with at least min_support members become semantic memories,
 *     keyed by their lowest member id: the memory's id is derived from that
 *     key, so a later run that finds the cluster again (with more or fewer
 *     members) updates the same memory (reconsolidation), never a duplicate;
 *  5. a semantic memory this module made (a version 8 id) whose key the run
 *     does not find is retired: an erased stub marked retired in the run's
 *     entry. A retired memory comes back, same id, when a later run finds its
 *     key again; one a client forgot stays forgotten, and its key gets no
 *     memory (apply.c: the two kinds of tombstone).
 * The run is one consolidate entry: created, updated and revived memories and
 * the retirement stubs (apply.c keeps marks, links and the WAL's latest
 * version right; it skips a memory that lists an episode forgotten since the
 * run read it, so the answer counts what was applied).
 *
 * Between runs, forgetting an episode re-derives the semantic memories that
 * list it (mn_consolidate_rederive, from the commit thread, in the forget's
 * batch): the remaining members give centroid, cohesion, medoid and summary
 * as here; the keywords are the old ones a remaining member holds (ranking
 * needs the word counts of every cluster: the next run ranks them again);
 * under the engine's min_support the memory is retired. So an erased
 * episode's words never outlive it in a semantic memory, and the next run
 * leaves the bytes a fresh run would.
 * A semantic memory's fields are functions of its support set (and of the
 * word counts over all supported episodes, for its keywords): centroid
 * embedding (normalised mean, summed in id order in double precision),
 * content = the medoid's text plus the cluster's top keywords, when =
 * earliest episode, created_at = latest episode's created_at (the first
 * moment it could have existed: a deterministic time, unlike the run's
 * clock), importance = max, tags = those on at least half the episodes, who =
 * union, confidence = cohesion (mean cosine of members to the centroid; the
 * support enters recall confidence, recall.c). Its id is the key's 48-bit
 * time, version 8, and a hash of the key. Unchanged memories are not
 * rewritten. */
#include "engine_internal.h"
#include "keyword.h"
#include "text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYWORDS_MAX 5
#define CONTENT_KEYWORDS_PREFIX "\n[keywords: "
#define SESSION_BONUS 0.05f /* affinity added for a session neighbour's cluster */
#define REFINE_PASSES 2

typedef struct cand {
    mn_id_t id;
    uint32_t slot;
    int64_t when_ms;
    uint64_t session;   /* hash of context.session; 0 = none */
    int32_t prev, next; /* session neighbours (candidate indexes), or -1 */
    int32_t cluster;
} cand;

typedef struct cluster {
    double *sum;     /* sum of member unit vectors, in id order */
    float *centroid; /* unit centroid */
    uint32_t n;
} cluster;

/* A cluster that becomes a semantic memory: what the build needs, copied out
 * from under the space's lock. */
typedef struct kept {
    mn_id_t id;        /* the semantic memory's id, derived from the key */
    mn_id_t *members;  /* sorted by id; members[0] is the key */
    size_t n;
    float *centroid;
    double cohesion;
    size_t medoid;     /* index into members */
    bool skip;         /* a member vanished before the build: wait for the next run */
} kept;

static int cand_cmp(const void *a, const void *b)
{
    return mn_id_cmp(&((const cand *)a)->id, &((const cand *)b)->id);
}

static uint64_t fnv64(const uint8_t *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* RFC 9562 version 8 (custom) id: the key's time, then a hash of the key. */
static mn_id_t semantic_id(const mn_id_t *key)
{
    mn_id_t id = *key;
    uint64_t h1 = fnv64(key->b, 16, 14695981039346656037ull ^ 0x73656d616e746963ull);
    uint64_t h2 = fnv64(key->b, 16, h1 ^ 0x636f6e736f6c6964ull);
    for (int i = 0; i < 2; i++) id.b[6 + i] = (uint8_t)(h1 >> (8 * i));
    for (int i = 0; i < 8; i++) id.b[8 + i] = (uint8_t)(h2 >> (8 * i));
    id.b[6] = (uint8_t)(0x80 | (id.b[6] & 0x0f));
    id.b[8] = (uint8_t)(0x80 | (id.b[8] & 0x3f));
    return id;
}

bool mn_consolidate_made(const mn_id_t *id)
{
    return (id->b[6] >> 4) == 8 && (id->b[8] & 0xc0) == 0x80;
}

static void centroid_of(const double *sum, uint32_t dim, float *out)
{
    double nn = 0;
    for (uint32_t i = 0; i < dim; i++) nn += sum[i] * sum[i];
    double inv = nn > 0 ? 1.0 / sqrt(nn) : 0;
    for (uint32_t i = 0; i < dim; i++) out[i] = (float)(sum[i] * inv);
}

/* ---- words: a small open-addressing map from a token to counts ---- */
typedef struct wentry {
    char word[MN_TOKEN_MAX + 1];
    uint32_t count; /* members (or, globally, supported episodes) containing it */
    uint32_t last;  /* last member counted: a word counts once per member */
    double score;
} wentry;

typedef struct wmap {
    wentry *e;
    size_t n, cap;
    uint32_t *ix; /* entry + 1; 0 = empty */
    size_t ix_cap;
} wmap;

static void wmap_free(wmap *m)
{
    free(m->e);
    free(m->ix);
    memset(m, 0, sizeof *m);
}

static uint64_t word_hash(const char *w, size_t len)
{
    return fnv64((const uint8_t *)w, len, 14695981039346656037ull);
}

/* The entry of word w (created with count 0), or NULL when out of memory. */
static wentry *wmap_get(wmap *m, const char *w, size_t len, bool create)
{
    if (m->ix_cap) {
        size_t mask = m->ix_cap - 1;
        for (size_t i = word_hash(w, len) & mask;; i = (i + 1) & mask) {
            if (!m->ix[i]) break;
            wentry *x = &m->e[m->ix[i] - 1];
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
            while (ni[j]) j = (j + 1) & (nc - 1);
            ni[j] = (uint32_t)k + 1;
        }
        free(m->ix);
        m->ix = ni;
        m->ix_cap = nc;
    }
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 32;
        wentry *ne = realloc(m->e, nc * sizeof *ne);
        if (!ne) return NULL;
        m->e = ne;
        m->cap = nc;
    }
    wentry *x = &m->e[m->n];
    memcpy(x->word, w, len + 1);
    x->count = 0;
    x->last = 0;
    x->score = 0;
    size_t j = word_hash(w, len) & (m->ix_cap - 1);
    while (m->ix[j]) j = (j + 1) & (m->ix_cap - 1);
    m->ix[j] = (uint32_t)++m->n;
    return x;
}

typedef struct kwctx {
    wmap *words;
    uint32_t member; /* 1-based */
    bool oom;
} kwctx;

static int kw_token(void *arg, const char *tok, size_t len, uint32_t pos)
{
    (void)pos;
    kwctx *c = arg;
    if (len < 3) return 0; /* short words are rarely topical */
    wentry *x = wmap_get(c->words, tok, len, true);
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
    const wentry *x = a, *y = b;
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

/* What a cluster's semantic memory takes from its members' records. */
typedef struct summary {
    wmap words;
    char *medoid_content;
    size_t medoid_len;
    int64_t when, created;
    float importance;
    char **tags, **who;
    size_t n_tags, n_who;
} summary;

static void summary_free(summary *s)
{
    wmap_free(&s->words);
    free(s->medoid_content);
    for (size_t i = 0; i < s->n_tags; i++) free(s->tags[i]);
    for (size_t i = 0; i < s->n_who; i++) free(s->who[i]);
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
static mn_err summarise_records(const mn_memory_t *ms, size_t n, size_t medoid, summary *s)
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
            for (size_t j = 0; j < s->n_who && !seen; j++) seen = !strcmp(s->who[j], m->who[w]);
            if (!seen) rc = push_str(&s->who, &s->n_who, m->who[w]);
        }
    }
    /* tags on at least half the members: count each tag's members by sorting
     * the (tag, member) pairs (a member lists a tag once) */
    const char **pairs = !rc ? malloc((n_pairs ? n_pairs : 1) * sizeof *pairs) : NULL;
    if (!rc && !pairs) rc = MN_ERR_NOMEM;
    size_t np = 0;
    for (size_t i = 0; !rc && i < n; i++)
        for (size_t t = 0; t < ms[i].n_tags; t++) pairs[np++] = ms[i].tags[t];
    if (!rc && np) qsort(pairs, np, sizeof *pairs, str_cmp);
    for (size_t i = 0; !rc && i < np;) {
        size_t j = i + 1;
        while (j < np && !strcmp(pairs[j], pairs[i])) j++;
        if ((j - i) * 2 >= n && s->n_tags < MN_TAGS_MAX)
            rc = push_str(&s->tags, &s->n_tags, pairs[i]);
        i = j;
    }
    free(pairs);
    if (!rc) {
        const mn_memory_t *med = &ms[medoid];
        s->medoid_len = med->content_len;
        s->medoid_content = malloc(med->content_len + 1);
        if (!s->medoid_content) rc = MN_ERR_NOMEM;
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
static mn_err summarise(mn_engine *e, mn_space *sp, const kept *k, summary *s)
{
    memset(s, 0, sizeof *s);
    mn_memory_t *ms = calloc(k->n, sizeof *ms);
    if (!ms) return MN_ERR_NOMEM;
    mn_err rc = MN_OK;
    size_t loaded = 0;
    for (; loaded < k->n && !rc; loaded++) {
        mn_error rerr = {0};
        rc = mn_engine_read_memory(e, sp, &k->members[loaded], false, &ms[loaded], &rerr);
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
static mn_err fill_semantic(const mn_space *sp, const kept *k, summary *s, mn_memory_t *sem)
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
static mn_err set_content(mn_memory_t *sem, const summary *s, const char *const *kw, size_t nk)
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
    while (off > 0 && ((unsigned char)sem->content[off] & 0xC0) == 0x80) off--;
    sem->content[off] = '\0';
    sem->content_len = off;
    return MN_OK;
}

/* Fills sem from a cluster and its summary; the top keywords score
 * (members holding the word) x idf over every supported episode. Moves the
 * summary's strings. */
static mn_err build_semantic(const mn_space *sp, const kept *k, summary *s, const wmap *df,
                             double n_docs, mn_memory_t *sem)
{
    mn_err rc = fill_semantic(sp, k, s, sem);
    if (rc) return rc;
    for (size_t i = 0; i < s->words.n; i++) {
        wentry *w = &s->words.e[i];
        const wentry *g = wmap_get((wmap *)df, w->word, strlen(w->word), false);
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
static bool same_semantic(const mn_memory_t *a, const mn_memory_t *old)
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

/* ---- clustering (under the space's read lock) ---- */
typedef struct clustering {
    const mn_space *sp;
    uint32_t dim;
    float tau;
    cand *cs;
    size_t nc;
    cluster *cl;
    size_t ncl, cap;
    float *u; /* scratch unit vector */
} clustering;

/* The unit vector of candidate i: the slot's own for cosine spaces (stored
 * normalised), else normalised into c->u. */
static const float *cand_vec(clustering *c, size_t i)
{
    const float *v = c->sp->vecs + (size_t)c->cs[i].slot * c->dim;
    if (c->sp->def.metric == MN_METRIC_COSINE) return v;
    memcpy(c->u, v, c->dim * sizeof(float));
    mn_vec_normalize(c->u, c->dim);
    return c->u;
}

static float affinity(const clustering *c, const float *u, size_t i, int32_t k,
                      const int32_t *assign)
{
    float a = mn_vec_dot(u, c->cl[k].centroid, c->dim);
    int32_t p = c->cs[i].prev, n = c->cs[i].next;
    if ((p >= 0 && assign[p] == k) || (n >= 0 && assign[n] == k)) a += SESSION_BONUS;
    return a;
}

static mn_err new_cluster(clustering *c, const float *u)
{
    if (c->ncl == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        cluster *ncl = realloc(c->cl, nc * sizeof *ncl);
        if (!ncl) return MN_ERR_NOMEM;
        c->cl = ncl;
        c->cap = nc;
    }
    cluster *k = &c->cl[c->ncl];
    k->sum = malloc(c->dim * sizeof(double));
    k->centroid = malloc(c->dim * sizeof(float));
    k->n = 1;
    if (!k->sum || !k->centroid) {
        free(k->sum);
        free(k->centroid);
        return MN_ERR_NOMEM;
    }
    for (uint32_t d = 0; d < c->dim; d++) k->sum[d] = u[d];
    memcpy(k->centroid, u, c->dim * sizeof(float));
    c->ncl++;
    return MN_OK;
}

/* Exact sums and centroids of the current assignment, members in id order. */
static void recompute_centroids(clustering *c)
{
    for (size_t k = 0; k < c->ncl; k++) {
        memset(c->cl[k].sum, 0, c->dim * sizeof(double));
        c->cl[k].n = 0;
    }
    for (size_t i = 0; i < c->nc; i++) {
        const float *u = cand_vec(c, i);
        cluster *k = &c->cl[c->cs[i].cluster];
        for (uint32_t d = 0; d < c->dim; d++) k->sum[d] += u[d];
        k->n++;
    }
    for (size_t k = 0; k < c->ncl; k++) centroid_of(c->cl[k].sum, c->dim, c->cl[k].centroid);
}

static int by_session_when(const void *a, const void *b)
{
    const cand *x = *(const cand *const *)a, *y = *(const cand *const *)b;
    if (x->session != y->session) return x->session < y->session ? -1 : 1;
    if (x->when_ms != y->when_ms) return x->when_ms < y->when_ms ? -1 : 1;
    return mn_id_cmp(&x->id, &y->id);
}

/* prev/next: each candidate's neighbours in its session by (when, id), when
 * they are within the temporal window. */
static mn_err session_neighbours(cand *cs, size_t nc, int64_t window)
{
    for (size_t i = 0; i < nc; i++) cs[i].prev = cs[i].next = -1;
    if (window <= 0) return MN_OK;
    cand **order = malloc((nc ? nc : 1) * sizeof *order);
    if (!order) return MN_ERR_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < nc; i++)
        if (cs[i].session) order[n++] = &cs[i];
    qsort(order, n, sizeof *order, by_session_when);
    for (size_t i = 1; i < n; i++) {
        cand *a = order[i - 1], *b = order[i];
        if (a->session != b->session || b->when_ms - a->when_ms > window) continue;
        a->next = (int32_t)(b - cs);
        b->prev = (int32_t)(a - cs);
    }
    free(order);
    return MN_OK;
}

static mn_err cluster_candidates(clustering *c)
{
    size_t nc = c->nc;
    int32_t *assign = malloc((nc ? nc : 1) * sizeof *assign);
    int32_t *next = malloc((nc ? nc : 1) * sizeof *next);
    if (!assign || !next) {
        free(assign);
        free(next);
        return MN_ERR_NOMEM;
    }
    mn_err rc = MN_OK;
    for (size_t i = 0; i < nc; i++) assign[i] = -1;
    /* leader pass in id order, with running centroids */
    for (size_t i = 0; i < nc && !rc; i++) {
        const float *u = cand_vec(c, i);
        int32_t pick = -1;
        float best = 0;
        for (size_t k = 0; k < c->ncl; k++) {
            float a = affinity(c, u, i, (int32_t)k, assign);
            if (pick < 0 || a > best) {
                pick = (int32_t)k;
                best = a;
            }
        }
        if (pick >= 0 && best >= c->tau) {
            cluster *k = &c->cl[pick];
            for (uint32_t d = 0; d < c->dim; d++) k->sum[d] += u[d];
            k->n++;
            centroid_of(k->sum, c->dim, k->centroid);
            assign[i] = pick;
        } else {
            rc = new_cluster(c, u);
            assign[i] = (int32_t)c->ncl - 1;
        }
    }
    for (size_t i = 0; i < nc && !rc; i++) c->cs[i].cluster = assign[i];
    /* synchronous refinement: every candidate against the exact centroids */
    for (int pass = 0; pass < REFINE_PASSES && !rc; pass++) {
        recompute_centroids(c);
        bool moved = false;
        for (size_t i = 0; i < nc; i++) {
            const float *u = cand_vec(c, i);
            int32_t pick = assign[i];
            float best = affinity(c, u, i, pick, assign);
            for (size_t k = 0; k < c->ncl; k++) {
                if ((int32_t)k == assign[i] || !c->cl[k].n) continue;
                float a = affinity(c, u, i, (int32_t)k, assign);
                if (a > best && a >= c->tau) {
                    best = a;
                    pick = (int32_t)k;
                }
            }
            next[i] = pick;
            moved |= pick != assign[i];
        }
        memcpy(assign, next, nc * sizeof *assign);
        for (size_t i = 0; i < nc; i++) c->cs[i].cluster = assign[i];
        if (!moved) break;
    }
    if (!rc) recompute_centroids(c);
    free(assign);
    free(next);
    return rc;
}

static void free_kept(kept *k, size_t n)
{
    for (size_t i = 0; k && i < n; i++) {
        free(k[i].members);
        free(k[i].centroid);
    }
    free(k);
}

/* A live semantic memory when the run began. */
typedef struct existing {
    mn_id_t id;
    int64_t when_ms, created_at_ms;
} existing;

/* Steps 1-4 under the read lock: the clusters worth a semantic memory, and
 * the live semantic memories of the space. */
static mn_err find_clusters(mn_engine *e, mn_space *sp, float tau, uint32_t min_support,
                            int64_t now, kept **out, size_t *n_out, existing **sems, size_t *n_sems,
                            uint64_t *candidates)
{
    uint32_t dim = sp->def.dim;
    clustering c = {.sp = sp, .dim = dim, .tau = tau};
    mn_err rc = MN_OK;
    kept *ks = NULL;
    size_t nk = 0;
    pthread_rwlock_rdlock(&sp->lock);
    c.cs = malloc((sp->n_slots ? sp->n_slots : 1) * sizeof *c.cs);
    *sems = malloc((sp->n_semantic ? sp->n_semantic : 1) * sizeof **sems);
    c.u = malloc(dim * sizeof(float));
    if (!c.cs || !*sems || !c.u) rc = MN_ERR_NOMEM;
    for (uint32_t i = 0; !rc && i < sp->n_slots; i++) {
        const mn_slot *s = &sp->slots[i];
        if (s->state != SLOT_LIVE) continue;
        if (s->expires_at_ms && s->expires_at_ms <= now) continue;
        if (s->kind == MN_KIND_SEMANTIC) {
            if (*n_sems < sp->n_semantic)
                (*sems)[(*n_sems)++] = (existing){s->id, s->when_ms, s->created_at_ms};
            continue;
        }
        if (!s->has_vec || s->suppressed) continue;
        cand *x = &c.cs[c.nc++];
        x->id = s->id;
        x->slot = i;
        x->when_ms = s->when_ms;
        x->session = 0;
        if (s->session) {
            x->session = fnv64((const uint8_t *)s->session, strlen(s->session),
                               14695981039346656037ull);
            if (!x->session) x->session = 1;
        }
        x->cluster = -1;
    }
    *candidates = c.nc;
    if (!rc) {
        qsort(c.cs, c.nc, sizeof *c.cs, cand_cmp);
        rc = session_neighbours(c.cs, c.nc, e->opts.temporal_window_ms);
    }
    if (!rc) rc = cluster_candidates(&c);
    if (!rc) {
        size_t want = 0;
        for (size_t k = 0; k < c.ncl; k++) want += c.cl[k].n >= min_support;
        ks = calloc(want ? want : 1, sizeof *ks);
        if (!ks) rc = MN_ERR_NOMEM;
    }
    /* each kept cluster: members in id order (candidates are), cohesion, medoid */
    int32_t *kept_of = !rc ? malloc((c.ncl ? c.ncl : 1) * sizeof *kept_of) : NULL;
    if (!rc && !kept_of) rc = MN_ERR_NOMEM;
    for (size_t k = 0; !rc && k < c.ncl; k++) {
        kept_of[k] = -1;
        if (c.cl[k].n < min_support) continue;
        kept *x = &ks[nk];
        x->members = malloc(c.cl[k].n * sizeof *x->members);
        x->centroid = malloc(dim * sizeof(float));
        if (!x->members || !x->centroid) {
            free(x->members);
            free(x->centroid);
            rc = MN_ERR_NOMEM;
            break;
        }
        memcpy(x->centroid, c.cl[k].centroid, dim * sizeof(float));
        kept_of[k] = (int32_t)nk++;
    }
    float *best = !rc ? malloc((nk ? nk : 1) * sizeof *best) : NULL;
    if (!rc && !best) rc = MN_ERR_NOMEM;
    for (size_t i = 0; !rc && i < c.nc; i++) {
        int32_t kx = kept_of[c.cs[i].cluster];
        if (kx < 0) continue;
        kept *x = &ks[kx];
        float sim = mn_vec_dot(cand_vec(&c, i), x->centroid, dim);
        x->cohesion += sim;
        if (!x->n || sim > best[kx]) { /* ties: the lower id */
            best[kx] = sim;
            x->medoid = x->n;
        }
        x->members[x->n++] = c.cs[i].id;
    }
    for (size_t k = 0; !rc && k < nk; k++) {
        ks[k].cohesion /= (double)ks[k].n;
        ks[k].id = semantic_id(&ks[k].members[0]);
    }
    pthread_rwlock_unlock(&sp->lock);
    free(best);
    free(kept_of);
    for (size_t k = 0; k < c.ncl; k++) {
        free(c.cl[k].sum);
        free(c.cl[k].centroid);
    }
    free(c.cl);
    free(c.cs);
    free(c.u);
    if (rc) {
        free_kept(ks, nk);
        nk = 0;
        ks = NULL;
    }
    *out = ks;
    *n_out = nk;
    return rc;
}

static int id_cmp(const void *a, const void *b)
{
    return mn_id_cmp(a, b);
}

/* Is the tombstone of id a retired semantic memory (not one a client forgot)? */
static mn_err tombstone_retired(mn_engine *e, mn_space *sp, const mn_id_t *id, bool *retired)
{
    uint8_t k[KEY_MEM_LEN];
    mn_key_mem(k, sp->sid, id);
    char *v;
    size_t vl;
    *retired = false;
    mn_err rc = mn_store_get(&e->store, CF_MEMORIES, k, sizeof k, &v, &vl, NULL);
    if (rc || !v) return rc;
    mn_memory_record rec;
    if (!mn_wire_memory_decode_meta((const uint8_t *)v, vl, &rec, NULL)) {
        *retired = rec.tombstone && rec.mem.retired;
        mn_memory_clear(&rec.mem);
    }
    free(v);
    return MN_OK;
}

static mn_err consolidate_op(mn_engine_t *e, const char *space, const mn_consolidate_opts *opts,
                             mn_consolidate_result *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    /* options left at 0 take the engine's (engine.consolidate_*), so on-demand
     * and scheduled runs agree and do not undo each other */
    const mn_consolidate_opts *dflt = &e->opts.consolidate;
    float tau = opts && opts->threshold > 0 ? opts->threshold
                : dflt->threshold > 0       ? dflt->threshold
                                            : 0.75f;
    uint32_t min_support = opts && opts->min_support ? opts->min_support
                           : dflt->min_support       ? dflt->min_support
                                                     : 3;
    if (!(tau > 0 && tau <= 1))
        return mn_error_set(err, MN_ERR_INVALID, "threshold: must be in (0, 1]");
    if (min_support > 100000)
        return mn_error_set(err, MN_ERR_INVALID, "min_support: at most 100000");
    mn_space *sp = mn_engine_space_acquire(e, space);
    if (!sp) return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", space);
    pthread_mutex_lock(&sp->consolidate_mu);
    int64_t now = mn_engine_now(e);
    kept *ks = NULL;
    size_t nk = 0, n_existing = 0;
    existing *existing_ = NULL;
    mn_err rc = find_clusters(e, sp, tau, min_support, now, &ks, &nk, &existing_, &n_existing,
                              &out->candidates);

    /* the members' records: words, times, tags, people; a global word count */
    summary *sums = !rc ? calloc(nk ? nk : 1, sizeof *sums) : NULL;
    if (!rc && !sums) rc = MN_ERR_NOMEM;
    wmap df = {0};
    double n_docs = 0;
    for (size_t k = 0; !rc && k < nk; k++) {
        mn_err sr = summarise(e, sp, &ks[k], &sums[k]);
        if (sr == MN_ERR_NOT_FOUND) { /* forgotten meanwhile: the next run sees the new set */
            summary_free(&sums[k]);
            ks[k].skip = true;
            continue;
        }
        if ((rc = sr)) break;
        n_docs += (double)ks[k].n;
        for (size_t i = 0; !rc && i < sums[k].words.n; i++) {
            const wentry *w = &sums[k].words.e[i];
            wentry *g = wmap_get(&df, w->word, strlen(w->word), true);
            if (!g) rc = MN_ERR_NOMEM;
            else g->count += w->count;
        }
    }

    /* build, and compare with what is stored: created (or revived), updated,
     * unchanged, or blocked by a client's forget; then the retirements */
    enum { CREATED = 1, UPDATED, RETIRED };
    mn_memory_t *sems = !rc ? calloc(nk + n_existing + 1, sizeof *sems) : NULL;
    uint8_t *what = !rc ? calloc(nk + n_existing + 1, 1) : NULL;
    size_t n_sems = 0;
    if (!rc) out->ids = malloc((nk ? nk : 1) * sizeof *out->ids);
    if (!rc && (!sems || !what || !out->ids)) rc = MN_ERR_NOMEM;
    for (size_t k = 0; !rc && k < nk; k++) {
        if (ks[k].skip) continue;
        mn_memory_t *m = &sems[n_sems];
        if ((rc = build_semantic(sp, &ks[k], &sums[k], &df, n_docs, m))) {
            mn_memory_clear(m);
            break;
        }
        mn_memory_t old;
        mn_error rerr = {0};
        mn_err gr = mn_engine_read_memory(e, sp, &m->id, true, &old, &rerr);
        if (gr == MN_ERR_GONE) {
            bool retired = false;
            if ((rc = tombstone_retired(e, sp, &m->id, &retired))) {
                mn_memory_clear(m);
                break;
            }
            if (!retired) { /* forgotten by a client: its key stays without a memory */
                mn_memory_clear(m);
                continue;
            }
            what[n_sems] = CREATED; /* retired before, and its cluster is back */
        } else if (gr && gr != MN_ERR_NOT_FOUND) {
            mn_memory_clear(m);
            rc = gr;
            break;
        } else if (!gr) {
            /* a client's suppression stays */
            m->suppressed = old.suppressed;
            m->suppressed_at_ms = old.suppressed_at_ms;
            m->unsuppressed_at_ms = old.unsuppressed_at_ms;
            bool same = same_semantic(m, &old) && m->suppressed == old.suppressed;
            mn_memory_clear(&old);
            if (same) {
                mn_memory_clear(m);
                continue;
            }
            what[n_sems] = UPDATED;
        } else {
            what[n_sems] = CREATED;
        }
        n_sems++;
    }

    /* retire what this module made and no cluster is keyed by any more: an
     * erased stub in the same entry */
    mn_id_t *keep = !rc ? malloc((nk ? nk : 1) * sizeof *keep) : NULL;
    if (!rc && !keep) rc = MN_ERR_NOMEM;
    for (size_t k = 0; !rc && k < nk; k++)
        keep[k] = ks[k].id; /* skipped ones too */
    if (!rc) qsort(keep, nk, sizeof *keep, id_cmp);
    for (size_t i = 0; !rc && i < n_existing; i++) {
        if (bsearch(&existing_[i].id, keep, nk, sizeof *keep, id_cmp)) continue;
        if (!mn_consolidate_made(&existing_[i].id)) continue; /* a client remembered it */
        mn_memory_t *st = &sems[n_sems];
        mn_memory_init(st);
        st->id = existing_[i].id;
        st->kind = MN_KIND_SEMANTIC;
        st->when_ms = existing_[i].when_ms;
        st->created_at_ms = existing_[i].created_at_ms;
        st->forgotten = true;
        st->retired = true;
        st->forgotten_at_ms = now;
        what[n_sems++] = RETIRED;
    }
    if (!rc && n_sems) {
        mn_pending p = {0};
        p.entry.type = MN_WAL_OP_CONSOLIDATE;
        snprintf(p.entry.space, sizeof p.entry.space, "%s", sp->def.name);
        p.entry.op.consolidate.mems = sems;
        p.entry.op.consolidate.n = n_sems;
        p.sp = sp;
        p.sync = true;
        p.keep_accepted = true;
        rc = mn_commit_submit(e, &p);
        if (rc && err) *err = p.err;
        /* what the apply took: a memory listing an episode forgotten meanwhile is not */
        for (size_t i = 0; !rc && i < n_sems; i++) {
            if (!p.accepted || !p.accepted[i]) continue;
            if (what[i] == RETIRED) {
                out->retired++;
                continue;
            }
            if (what[i] == CREATED)
                out->created++;
            else
                out->updated++;
            out->episodes += (uint32_t)sems[i].n_support;
            out->ids[out->n_ids++] = sems[i].id;
        }
        free(p.accepted);
    } else if (rc) {
        mn_error_set(err, rc, "consolidation failed: %s", mn_strerror(rc));
    }
    free(keep);
    free(what);
    for (size_t i = 0; sems && i < n_sems; i++) mn_memory_clear(&sems[i]);
    free(sems);
    for (size_t k = 0; sums && k < nk; k++) summary_free(&sums[k]);
    free(sums);
    wmap_free(&df);
    free_kept(ks, nk);
    free(existing_);
    pthread_mutex_unlock(&sp->consolidate_mu);
    mn_engine_space_release(e, sp);
    if (rc) {
        free(out->ids);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

mn_err mn_engine_consolidate(mn_engine_t *e, const char *space, const mn_consolidate_opts *opts,
                             mn_consolidate_result *out, mn_error *err)
{
    int64_t t0 = mn_time_mono_ns();
    return mn_engine_timed(&e->h_consolidate, t0, consolidate_op(e, space, opts, out, err));
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
static mn_err read_member(mn_engine *e, mn_space *sp, rocksdb_writebatch_wi_t *b, const mn_id_t *id,
                          mn_memory_t *m, float *unit, bool *ok, mn_error *err)
{
    mn_memory_record rec;
    bool found;
    *ok = false;
    mn_err rc = mn_apply_read_record(e, b, sp, id, &rec, &found, err);
    if (rc || !found) return rc;
    if (rec.tombstone) {
        mn_memory_clear(&rec.mem);
        return MN_OK;
    }
    uint8_t k[KEY_MEM_LEN];
    mn_key_mem(k, sp->sid, id);
    char *v;
    size_t vl;
    if ((rc = mn_store_get_wi(&e->store, b, CF_VECTORS, k, sizeof k, &v, &vl, err))) {
        mn_memory_clear(&rec.mem);
        return rc;
    }
    if (v && vl == (size_t)sp->def.dim * sizeof(float)) {
        /* the same unit vector a run compares (space.c normalises cosine vectors alike) */
        memcpy(unit, v, vl);
        *ok = mn_vec_normalize(unit, sp->def.dim);
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
static mn_err rebuild(const mn_space *sp, const mn_memory_t *old, const mn_memory_t *ms,
                      const float *units, size_t nr, mn_memory_t *sem)
{
    uint32_t dim = sp->def.dim;
    kept k = {.id = old->id, .n = nr};
    k.members = malloc(nr * sizeof *k.members);
    k.centroid = malloc(dim * sizeof(float));
    double *sum = calloc(dim, sizeof *sum);
    char *buf = malloc(old->content_len + 1);
    summary s = {0};
    mn_err rc = k.members && k.centroid && sum && buf ? MN_OK : MN_ERR_NOMEM;
    mn_memory_init(sem);
    for (size_t i = 0; !rc && i < nr; i++) {
        k.members[i] = ms[i].id;
        for (uint32_t d = 0; d < dim; d++)
            sum[d] += units[(size_t)i * dim + d];
    }
    if (!rc) {
        centroid_of(sum, dim, k.centroid);
        float best = 0;
        for (size_t i = 0; i < nr; i++) {
            float sim = mn_vec_dot(units + (size_t)i * dim, k.centroid, dim);
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
            if (wmap_get(&s.words, kw[i], strlen(kw[i]), false)) keep[nkeep++] = kw[i];
        rc = set_content(sem, &s, keep, nkeep);
    }
    if (!rc) { /* a client's suppression stays */
        sem->suppressed = old->suppressed;
        sem->suppressed_at_ms = old->suppressed_at_ms;
        sem->unsuppressed_at_ms = old->unsuppressed_at_ms;
    }
    summary_free(&s);
    free(k.members);
    free(k.centroid);
    free(sum);
    free(buf);
    return rc;
}

mn_err mn_consolidate_rederive(mn_engine *e, mn_space *sp, rocksdb_writebatch_wi_t *b,
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
        mn_memory_record srec;
        bool found;
        if ((rc = mn_apply_read_record(e, b, sp, &ids[i], &srec, &found, err))) break;
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
