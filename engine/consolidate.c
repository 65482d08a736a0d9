/* Consolidation: episodes that keep coming back to one topic become a semantic
 * memory ("systems consolidation": McClelland, McNaughton & O'Reilly, "Why
 * there are complementary learning systems in the hippocampus and neocortex",
 * Psychological Review 1995 — here reduced to clustering and summarising).
 *
 * One run over a space, all steps deterministic and independent of the order
 * the episodes arrived in (the cluster layer syncs semantic memories by Merkle
 * gossip and relies on two nodes computing the same bytes):
 *  1. candidates: live, unsuppressed, unconsolidated episodes with a vector,
 *     sorted by id; vectors compared by cosine whatever the space's metric;
 *  2. reconsolidation: each candidate joins the existing semantic memory whose
 *     centroid is most similar, if that similarity >= threshold (centroids are
 *     fixed during the step, so the order of candidates does not matter);
 *  3. the rest are clustered in id order: a candidate joins the cluster whose
 *     running centroid is most similar if >= threshold, else starts a new one
 *     (sequential "leader" clustering with centroid updates); then one
 *     synchronous refinement pass against the exact cluster centroids;
 *  4. clusters with at least min_support members become semantic memories;
 *     smaller ones wait for a later run.
 * A semantic memory's fields are functions of its support set: centroid
 * embedding (normalised mean, summed in id order), content = the medoid's text
 * plus the cluster's top keywords, when = earliest episode, created_at = latest
 * episode's, importance = max, tags = those on at least half the episodes,
 * who = union, confidence = cohesion x (1 - exp(-support / 3)). Its id is
 * derived from the cluster's leader (lowest id): the leader's 48-bit time,
 * version 8, and a hash of the leader id. */
#include "engine_internal.h"
#include "keyword.h"
#include "text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYWORDS_MAX 5
#define CONTENT_KEYWORDS_PREFIX "\n[keywords: "

typedef struct cand {
    uint32_t slot;
    mn_id_t id;
    int32_t cluster; /* index into clusters, or -1 */
} cand;

typedef struct cluster {
    mn_id_t sem_id;     /* existing semantic memory, or derived from the leader */
    bool existing;
    uint32_t sem_slot;  /* existing: its slot */
    uint32_t leader;    /* new: index of the leading candidate */
    double *sum;        /* sum of member unit vectors */
    float *centroid;    /* unit centroid */
    uint32_t n;         /* members among the candidates */
} cluster;

static int cand_cmp(const void *a, const void *b)
{
    return mn_id_cmp(&((const cand *)a)->id, &((const cand *)b)->id);
}

static int id_cmp(const void *a, const void *b)
{
    return mn_id_cmp(a, b);
}

static void unit(const float *v, uint32_t dim, float *out)
{
    memcpy(out, v, dim * sizeof(float));
    mn_vec_normalize(out, dim);
}

static void centroid_of(const double *sum, uint32_t dim, float *out)
{
    double nn = 0;
    for (uint32_t i = 0; i < dim; i++) nn += sum[i] * sum[i];
    double inv = nn > 0 ? 1.0 / sqrt(nn) : 0;
    for (uint32_t i = 0; i < dim; i++) out[i] = (float)(sum[i] * inv);
}

static uint64_t fnv64(const uint8_t *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* RFC 9562 version 8 (custom) id: leader time, then a hash of the leader id. */
static mn_id_t semantic_id(const mn_id_t *leader)
{
    mn_id_t id = *leader;
    uint64_t h1 = fnv64(leader->b, 16, 14695981039346656037ull ^ 0x73656d616e746963ull);
    uint64_t h2 = fnv64(leader->b, 16, h1 ^ 0x636f6e736f6c6964ull);
    for (int i = 0; i < 2; i++) id.b[6 + i] = (uint8_t)(h1 >> (8 * i));
    for (int i = 0; i < 8; i++) id.b[8 + i] = (uint8_t)(h2 >> (8 * i));
    id.b[6] = (uint8_t)(0x80 | (id.b[6] & 0x0f));
    id.b[8] = (uint8_t)(0x80 | (id.b[8] & 0x3f));
    return id;
}

/* ---- keywords of a cluster ---- */
typedef struct kwcount {
    char word[MN_TOKEN_MAX + 1];
    uint32_t docs;   /* members containing it */
    uint32_t last;   /* last member counted (dedup within a member) */
    double score;
} kwcount;

typedef struct kwctx {
    kwcount *w;
    size_t n, cap;
    uint32_t member;
    bool oom;
} kwctx;

static int kw_token(void *arg, const char *tok, size_t len, uint32_t pos)
{
    (void)pos;
    kwctx *c = arg;
    if (len < 3) return 0; /* short words are rarely topical */
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->w[i].word, tok)) {
            if (c->w[i].last != c->member) {
                c->w[i].docs++;
                c->w[i].last = c->member;
            }
            return 0;
        }
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 64;
        kwcount *nw = realloc(c->w, nc * sizeof *nw);
        if (!nw) {
            c->oom = true;
            return 1;
        }
        c->w = nw;
        c->cap = nc;
    }
    kwcount *k = &c->w[c->n++];
    memcpy(k->word, tok, len + 1);
    k->docs = 1;
    k->last = c->member;
    k->score = 0;
    return 0;
}

static int kw_best_first(const void *a, const void *b)
{
    const kwcount *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return strcmp(x->word, y->word);
}

/* ---- building a semantic memory from its members ---- */
typedef struct member {
    mn_id_t id;
    mn_memory_t mem; /* from the store, with embedding */
} member;

static int member_cmp(const void *a, const void *b)
{
    return mn_id_cmp(&((const member *)a)->id, &((const member *)b)->id);
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

/* Fills sem from members (sorted by id, all with embeddings). */
static mn_err build_semantic(const mn_space *sp, const mn_id_t *sem_id, member *ms, size_t n,
                             mn_memory_t *sem)
{
    uint32_t dim = sp->def.dim;
    mn_memory_init(sem);
    sem->id = *sem_id;
    sem->kind = MN_KIND_SEMANTIC;
    sem->lifecycle = MN_LIFECYCLE_PERSISTENT;
    sem->dim = dim;
    double *sum = calloc(dim, sizeof *sum);
    float *u = malloc(dim * sizeof *u);
    sem->embedding = malloc(dim * sizeof(float));
    sem->support = malloc(n * sizeof *sem->support);
    if (!sum || !u || !sem->embedding || !sem->support) {
        free(sum);
        free(u);
        return MN_ERR_NOMEM;
    }
    sem->n_support = n;
    int64_t when = INT64_MAX, created = INT64_MIN;
    float importance = 0;
    for (size_t i = 0; i < n; i++) {
        const mn_memory_t *m = &ms[i].mem;
        sem->support[i] = ms[i].id;
        unit(m->embedding, dim, u);
        for (uint32_t d = 0; d < dim; d++) sum[d] += u[d];
        if (m->when_ms < when) when = m->when_ms;
        if (m->created_at_ms > created) created = m->created_at_ms;
        if (m->importance > importance) importance = m->importance;
    }
    centroid_of(sum, dim, sem->embedding);
    /* cohesion and medoid (closest to the centroid; ties: lowest id) */
    double cohesion = 0;
    float best = -2;
    size_t medoid = 0;
    for (size_t i = 0; i < n; i++) {
        unit(ms[i].mem.embedding, dim, u);
        float c = mn_vec_dot(u, sem->embedding, dim);
        cohesion += c;
        if (c > best) {
            best = c;
            medoid = i;
        }
    }
    cohesion /= (double)n;
    free(sum);
    free(u);
    sem->when_ms = when;
    sem->created_at_ms = created;
    sem->importance = importance;
    float conf = (float)(cohesion * (1.0 - exp(-(double)n / 3.0)));
    sem->confidence = conf < 0 ? 0 : conf > 1 ? 1 : conf;

    /* keywords: words on many members and rare in the space */
    kwctx kc = {0};
    for (size_t i = 0; i < n && !kc.oom; i++) {
        kc.member = (uint32_t)i + 1;
        mn_text_tokenize(ms[i].mem.content, ms[i].mem.content_len, kw_token, &kc);
    }
    if (kc.oom) {
        free(kc.w);
        return MN_ERR_NOMEM;
    }
    double docs = (double)mn_kw_docs(sp->kw) + 1;
    for (size_t i = 0; i < kc.n; i++) {
        uint32_t df = mn_kw_df(sp->kw, kc.w[i].word, strlen(kc.w[i].word));
        kc.w[i].score = kc.w[i].docs * log(1.0 + (docs - df + 0.5) / (df + 0.5));
    }
    if (kc.n) qsort(kc.w, kc.n, sizeof *kc.w, kw_best_first);
    size_t nk = kc.n < KEYWORDS_MAX ? kc.n : KEYWORDS_MAX;
    const mn_memory_t *med = &ms[medoid].mem;
    size_t len = med->content_len + sizeof CONTENT_KEYWORDS_PREFIX + nk * (MN_TOKEN_MAX + 2) + 2;
    sem->content = malloc(len);
    if (!sem->content) {
        free(kc.w);
        return MN_ERR_NOMEM;
    }
    size_t off = (size_t)snprintf(sem->content, len, "%.*s", (int)med->content_len, med->content);
    if (nk) {
        off += (size_t)snprintf(sem->content + off, len - off, "%s", CONTENT_KEYWORDS_PREFIX);
        for (size_t i = 0; i < nk; i++)
            off += (size_t)snprintf(sem->content + off, len - off, "%s%s", i ? ", " : "",
                                    kc.w[i].word);
        off += (size_t)snprintf(sem->content + off, len - off, "]");
    }
    if (off > MN_CONTENT_MAX) off = MN_CONTENT_MAX; /* keep within the content limit */
    while (off > 0 && ((unsigned char)sem->content[off] & 0xC0) == 0x80) off--;
    sem->content[off] = '\0';
    sem->content_len = off;
    free(kc.w);

    /* tags on at least half the members; who = union; both sorted */
    char **tags = NULL, **who = NULL;
    size_t nt = 0, nw = 0;
    for (size_t i = 0; i < n; i++) {
        const mn_memory_t *m = &ms[i].mem;
        for (size_t t = 0; t < m->n_tags; t++) {
            bool seen = false;
            for (size_t j = 0; j < nt && !seen; j++) seen = !strcmp(tags[j], m->tags[t]);
            if (seen) continue;
            size_t count = 0;
            for (size_t j = 0; j < n; j++)
                for (size_t x = 0; x < ms[j].mem.n_tags; x++)
                    if (!strcmp(ms[j].mem.tags[x], m->tags[t])) {
                        count++;
                        break;
                    }
            if (count * 2 < n || nt == MN_TAGS_MAX) continue;
            char **ntg = realloc(tags, (nt + 1) * sizeof *ntg);
            if (!ntg) break;
            tags = ntg;
            tags[nt++] = sdup(m->tags[t]);
        }
        for (size_t w = 0; w < m->n_who && nw < MN_WHO_MAX; w++) {
            bool seen = false;
            for (size_t j = 0; j < nw && !seen; j++) seen = !strcmp(who[j], m->who[w]);
            if (seen) continue;
            char **nwh = realloc(who, (nw + 1) * sizeof *nwh);
            if (!nwh) break;
            who = nwh;
            who[nw++] = sdup(m->who[w]);
        }
    }
    if (nt) qsort(tags, nt, sizeof *tags, str_cmp);
    if (nw) qsort(who, nw, sizeof *who, str_cmp);
    sem->tags = tags;
    sem->n_tags = nt;
    sem->who = who;
    sem->n_who = nw;
    for (size_t i = 0; i < nt; i++)
        if (!tags[i]) return MN_ERR_NOMEM;
    for (size_t i = 0; i < nw; i++)
        if (!who[i]) return MN_ERR_NOMEM;
    return MN_OK;
}

/* Reads members' records (with embeddings); drops ids that are gone. */
static mn_err load_members(mn_engine *e, mn_space *sp, const mn_id_t *ids, size_t n, member **out,
                           size_t *n_out)
{
    member *ms = calloc(n ? n : 1, sizeof *ms);
    if (!ms) return MN_ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        mn_error rerr = {0};
        mn_err rc = mn_engine_read_memory(e, sp, &ids[i], true, &ms[k].mem, &rerr);
        if (rc == MN_ERR_GONE || rc == MN_ERR_NOT_FOUND) continue;
        if (rc) {
            for (size_t j = 0; j < k; j++) mn_memory_clear(&ms[j].mem);
            free(ms);
            return rc;
        }
        if (!ms[k].mem.embedding) {
            mn_memory_clear(&ms[k].mem);
            continue;
        }
        ms[k].id = ids[i];
        k++;
    }
    qsort(ms, k, sizeof *ms, member_cmp);
    *out = ms;
    *n_out = k;
    return MN_OK;
}

static void free_clusters(cluster *cl, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(cl[i].sum);
        free(cl[i].centroid);
    }
    free(cl);
}

static mn_err consolidate_op(mn_engine_t *e, const char *space, const mn_consolidate_opts *opts,
                             mn_consolidate_result *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    float tau = opts && opts->threshold > 0 ? opts->threshold : 0.75f;
    uint32_t min_support = opts && opts->min_support ? opts->min_support : 3;
    if (!(tau > 0 && tau <= 1))
        return mn_error_set(err, MN_ERR_INVALID, "threshold: must be in (0, 1]");
    if (min_support > 100000)
        return mn_error_set(err, MN_ERR_INVALID, "min_support: at most 100000");
    mn_space *sp = mn_engine_space_acquire(e, space);
    if (!sp) return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", space);
    pthread_mutex_lock(&sp->consolidate_mu);
    uint32_t dim = sp->def.dim;
    int64_t now = mn_engine_now(e);
    mn_err rc = MN_OK;
    cand *cs = NULL;
    cluster *cl = NULL;
    size_t nc = 0, ncl = 0, cap_cl = 0;
    float *u = malloc(dim * sizeof *u);
    mn_id_t **support_ids = NULL; /* per cluster: member ids (existing support + new) */
    size_t *n_support = NULL;

    /* 1-3 under the read lock: candidates, reconsolidation, clustering */
    pthread_rwlock_rdlock(&sp->lock);
    cs = malloc((sp->n_slots ? sp->n_slots : 1) * sizeof *cs);
    if (!cs || !u) rc = MN_ERR_NOMEM;
    for (uint32_t i = 0; !rc && i < sp->n_slots; i++) {
        const mn_slot *s = &sp->slots[i];
        if (s->state != SLOT_LIVE) continue;
        if (s->expires_at_ms && s->expires_at_ms <= now) continue;
        if (s->kind == MN_KIND_SEMANTIC) {
            if (!s->has_vec) continue;
            if (ncl == cap_cl) {
                cap_cl = cap_cl ? cap_cl * 2 : 16;
                cluster *ncp = realloc(cl, cap_cl * sizeof *ncp);
                if (!ncp) {
                    rc = MN_ERR_NOMEM;
                    break;
                }
                cl = ncp;
            }
            cluster *c = &cl[ncl++];
            memset(c, 0, sizeof *c);
            c->sem_id = s->id;
            c->existing = true;
            c->sem_slot = i;
            c->centroid = malloc(dim * sizeof(float));
            if (!c->centroid) {
                rc = MN_ERR_NOMEM;
                break;
            }
            unit(sp->vecs + (size_t)i * dim, dim, c->centroid);
            continue;
        }
        if (!s->has_vec || s->suppressed || s->consolidated) continue;
        cs[nc++] = (cand){i, s->id, -1};
    }
    /* existing semantic memories in id order, so cluster indexes are deterministic */
    size_t n_existing = ncl;
    for (size_t i = 1; !rc && i < n_existing; i++)
        for (size_t j = i; j > 0 && mn_id_cmp(&cl[j - 1].sem_id, &cl[j].sem_id) > 0; j--) {
            cluster t = cl[j];
            cl[j] = cl[j - 1];
            cl[j - 1] = t;
        }
    if (!rc) qsort(cs, nc, sizeof *cs, cand_cmp);
    out->candidates = nc;
    /* 2: join existing semantic memories */
    for (size_t i = 0; !rc && i < nc; i++) {
        unit(sp->vecs + (size_t)cs[i].slot * dim, dim, u);
        float best = tau;
        for (size_t c = 0; c < n_existing; c++) {
            float sim = mn_vec_dot(u, cl[c].centroid, dim);
            if (sim >= best) { /* ties: the lower-id semantic memory (found first) wins */
                if (sim > best || cs[i].cluster < 0) cs[i].cluster = (int32_t)c;
                best = sim;
            }
        }
    }
    /* 3: sequential clustering of the rest, in id order: join the cluster
     * whose running centroid is most similar, else start one */
    for (size_t i = 0; !rc && i < nc; i++) {
        if (cs[i].cluster >= 0) continue;
        unit(sp->vecs + (size_t)cs[i].slot * dim, dim, u);
        int32_t pick = -1;
        float best = tau;
        for (size_t c = n_existing; c < ncl; c++) {
            float sim = mn_vec_dot(u, cl[c].centroid, dim);
            if (sim >= best && (pick < 0 || sim > best)) {
                pick = (int32_t)c;
                best = sim;
            }
        }
        if (pick >= 0) {
            cs[i].cluster = pick;
            double *sum = cl[pick].sum;
            for (uint32_t d = 0; d < dim; d++) sum[d] += u[d];
            centroid_of(sum, dim, cl[pick].centroid);
            continue;
        }
        if (ncl == cap_cl) {
            cap_cl = cap_cl ? cap_cl * 2 : 16;
            cluster *ncp = realloc(cl, cap_cl * sizeof *ncp);
            if (!ncp) {
                rc = MN_ERR_NOMEM;
                break;
            }
            cl = ncp;
        }
        cluster *c = &cl[ncl];
        memset(c, 0, sizeof *c);
        c->leader = (uint32_t)i;
        c->sem_id = semantic_id(&cs[i].id);
        c->centroid = malloc(dim * sizeof(float));
        if (!c->centroid) {
            rc = MN_ERR_NOMEM;
            break;
        }
        memcpy(c->centroid, u, dim * sizeof(float));
        c->sum = calloc(dim, sizeof(double));
        if (!c->sum) {
            rc = MN_ERR_NOMEM;
            break;
        }
        for (uint32_t d = 0; d < dim; d++) c->sum[d] = u[d];
        cs[i].cluster = (int32_t)ncl++;
    }
    /* refinement: exact centroids of the new clusters, then one synchronous reassignment */
    for (size_t c = n_existing; !rc && c < ncl; c++) memset(cl[c].sum, 0, dim * sizeof(double));
    for (size_t i = 0; !rc && i < nc; i++) {
        if ((size_t)cs[i].cluster < n_existing) continue;
        unit(sp->vecs + (size_t)cs[i].slot * dim, dim, u);
        double *sum = cl[cs[i].cluster].sum;
        for (uint32_t d = 0; d < dim; d++) sum[d] += u[d];
    }
    for (size_t c = n_existing; !rc && c < ncl; c++) centroid_of(cl[c].sum, dim, cl[c].centroid);
    for (size_t i = 0; !rc && i < nc; i++) {
        if ((size_t)cs[i].cluster < n_existing) continue;
        unit(sp->vecs + (size_t)cs[i].slot * dim, dim, u);
        int32_t pick = cs[i].cluster;
        float best = mn_vec_dot(u, cl[pick].centroid, dim);
        for (size_t c = n_existing; c < ncl; c++) {
            float sim = mn_vec_dot(u, cl[c].centroid, dim);
            if (sim > best && sim >= tau) {
                best = sim;
                pick = (int32_t)c;
            }
        }
        cs[i].cluster = pick;
    }
    /* gather each cluster's support: existing support + new members */
    if (!rc) {
        support_ids = calloc(ncl ? ncl : 1, sizeof *support_ids);
        n_support = calloc(ncl ? ncl : 1, sizeof *n_support);
        if (!support_ids || !n_support) rc = MN_ERR_NOMEM;
    }
    for (size_t i = 0; !rc && i < nc; i++) cl[cs[i].cluster].n++;
    for (size_t c = 0; !rc && c < ncl; c++) {
        bool keep = cl[c].existing ? cl[c].n > 0 : cl[c].n >= min_support;
        if (!keep) continue;
        size_t base = 0;
        const mn_id_t *old = NULL;
        mn_memory_t rec = {0};
        if (cl[c].existing) {
            /* the current support list lives in the record */
            mn_error rerr = {0};
            if (mn_engine_read_memory(e, sp, &cl[c].sem_id, false, &rec, &rerr) == MN_OK) {
                old = rec.support;
                base = rec.n_support;
            }
        }
        support_ids[c] = malloc((base + cl[c].n) * sizeof(mn_id_t));
        if (!support_ids[c]) {
            mn_memory_clear(&rec);
            rc = MN_ERR_NOMEM;
            break;
        }
        if (base) memcpy(support_ids[c], old, base * sizeof(mn_id_t));
        n_support[c] = base;
        mn_memory_clear(&rec);
    }
    for (size_t i = 0; !rc && i < nc; i++) {
        size_t c = (size_t)cs[i].cluster;
        if (support_ids[c]) support_ids[c][n_support[c]++] = cs[i].id;
    }
    pthread_rwlock_unlock(&sp->lock);

    /* 4: build the semantic memories from their members' records */
    mn_memory_t *sems = NULL;
    size_t n_sems = 0;
    if (!rc) {
        sems = calloc(ncl ? ncl : 1, sizeof *sems);
        out->ids = malloc((ncl ? ncl : 1) * sizeof *out->ids);
        if (!sems || !out->ids) rc = MN_ERR_NOMEM;
    }
    for (size_t c = 0; !rc && c < ncl; c++) {
        if (!support_ids[c]) continue;
        qsort(support_ids[c], n_support[c], sizeof(mn_id_t), id_cmp);
        member *ms = NULL;
        size_t nm = 0;
        rc = load_members(e, sp, support_ids[c], n_support[c], &ms, &nm);
        if (rc) break;
        if (nm > 0 && (cl[c].existing || nm >= min_support)) {
            rc = build_semantic(sp, &cl[c].sem_id, ms, nm, &sems[n_sems]);
            if (!rc) {
                out->ids[out->n_ids++] = cl[c].sem_id;
                if (cl[c].existing) out->updated++;
                else out->created++;
                out->episodes += cl[c].n;
                n_sems++;
            } else {
                mn_memory_clear(&sems[n_sems]);
            }
        }
        for (size_t i = 0; i < nm; i++) mn_memory_clear(&ms[i].mem);
        free(ms);
    }
    if (!rc && n_sems) {
        mn_pending p = {0};
        p.entry.type = MN_WAL_OP_CONSOLIDATE;
        snprintf(p.entry.space, sizeof p.entry.space, "%s", sp->def.name);
        p.entry.op.consolidate.mems = sems;
        p.entry.op.consolidate.n = n_sems;
        p.sp = sp;
        p.sync = true;
        rc = mn_commit_submit(e, &p);
        if (rc && err) *err = p.err;
    } else if (rc) {
        mn_error_set(err, rc, "consolidation failed: %s", mn_strerror(rc));
    }
    for (size_t i = 0; sems && i < n_sems; i++) mn_memory_clear(&sems[i]);
    free(sems);
    for (size_t c = 0; support_ids && c < ncl; c++) free(support_ids[c]);
    free(support_ids);
    free(n_support);
    free_clusters(cl, ncl);
    free(cs);
    free(u);
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
