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
 * A scoped run (mn_consolidate_opts_t.filter) computes all of the above as
 * usual, then writes only the changes to clusters with a member matching the
 * filter, and the retirements of memories whose stored support lists one; the
 * others stay as they are for a later run (counted as skipped). Every memory
 * it writes is byte for byte the one an unscoped run would write, so a scoped
 * run followed by an unscoped one leaves what the unscoped one alone would.
 *
 * Between runs, forgetting an episode re-derives the semantic memories that
 * list it (mn__consolidate_rederive, semantic_build.c, from the commit thread
 * in the forget's batch): the remaining members give centroid, cohesion,
 * medoid and summary as here; the keywords are the old ones a remaining
 * member holds (ranking needs the word counts of every cluster: the next run
 * ranks them again); under the engine's min_support the memory is retired.
 * So an erased episode's words never outlive it in a semantic memory, and the
 * next run leaves the bytes a fresh run would.
 *
 * A semantic memory's fields (semantic_build.c) are functions of its support
 * set (and of the word counts over all supported episodes, for its
 * keywords): centroid embedding (normalised mean, summed in id order in
 * double precision), content = the medoid's text plus the cluster's top
 * keywords, when =
 * earliest episode, created_at = latest episode's created_at (the first
 * moment it could have existed: a deterministic time, unlike the run's
 * clock), importance = max, tags = those on at least half the episodes, who =
 * union, confidence = cohesion (mean cosine of members to the centroid; the
 * support enters recall confidence, recall.c). Its id is the key's 48-bit
 * time, version 8, and a hash of the key. Unchanged memories are not
 * rewritten. */
#include "commit.h"
#include "consolidate.h"
#include "filter.h"
#include "metrics.h"
#include "record.h"
#include "replica.h"
#include "semantic_build.h"
#include "text/keyword.h"
#include "validate.h"
#include "vec.h"

#include "mnemo/assert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int cand_cmp(const void *a, const void *b)
{
    return mn_id_cmp(&((const cand *)a)->id, &((const cand *)b)->id);
}

static uint64_t fnv64(const uint8_t *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* RFC 9562 version 8 (custom) id: the key's time, then a hash of the key. */
static mn_id_t semantic_id(const mn_id_t *key)
{
    mn_id_t id = *key;
    uint64_t h1 = fnv64(key->b, 16, 14695981039346656037ull ^ 0x73656d616e746963ull);
    uint64_t h2 = fnv64(key->b, 16, h1 ^ 0x636f6e736f6c6964ull);
    for (int i = 0; i < 2; i++)
        id.b[6 + i] = (uint8_t)(h1 >> (8 * i));
    for (int i = 0; i < 8; i++)
        id.b[8 + i] = (uint8_t)(h2 >> (8 * i));
    id.b[6] = (uint8_t)(0x80 | (id.b[6] & 0x0f));
    id.b[8] = (uint8_t)(0x80 | (id.b[8] & 0x3f));
    return id;
}

bool mn__consolidate_made(const mn_id_t *id)
{
    return (id->b[6] >> 4) == 8 && (id->b[8] & 0xc0) == 0x80;
}

/* ---- clustering (under the space's read lock) ---- */
typedef struct clustering {
    const mn__space *sp;
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
    mn__vec_normalize(c->u, c->dim);
    return c->u;
}

static float affinity(const clustering *c, const float *u, size_t i, int32_t k,
                      const int32_t *assign)
{
    float a = mn__vec_dot(u, c->cl[k].centroid, c->dim);
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
    for (uint32_t d = 0; d < c->dim; d++)
        k->sum[d] = u[d];
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
        for (uint32_t d = 0; d < c->dim; d++)
            k->sum[d] += u[d];
        k->n++;
    }
    for (size_t k = 0; k < c->ncl; k++)
        mn__sem_centroid(c->cl[k].sum, c->dim, c->cl[k].centroid);
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
    for (size_t i = 0; i < nc; i++)
        cs[i].prev = cs[i].next = -1;
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
    for (size_t i = 0; i < nc; i++)
        assign[i] = -1;
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
            for (uint32_t d = 0; d < c->dim; d++)
                k->sum[d] += u[d];
            k->n++;
            mn__sem_centroid(k->sum, c->dim, k->centroid);
            assign[i] = pick;
        } else {
            rc = new_cluster(c, u);
            assign[i] = (int32_t)c->ncl - 1;
        }
    }
    for (size_t i = 0; i < nc && !rc; i++)
        c->cs[i].cluster = assign[i];
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
        for (size_t i = 0; i < nc; i++)
            c->cs[i].cluster = assign[i];
        if (!moved) break;
    }
    if (!rc) recompute_centroids(c);
    free(assign);
    free(next);
    return rc;
}

static void free_kept(mn__sem_cluster *k, size_t n)
{
    for (size_t i = 0; k && i < n; i++) {
        free(k[i].members);
        free(k[i].centroid);
    }
    free(k);
}

/* The clusters a run keeps. */
typedef struct cluster_list {
    mn__sem_cluster *ks;
    size_t n;
} cluster_list;

/* A live semantic memory when the run began. */
typedef struct existing {
    mn_id_t id;
    int64_t when_ms, created_at_ms;
} existing;

/* Step 1 (read lock held): the candidates into c, sorted by id, and the
 * space's live semantic memories into sems[*n_sems]. */
static void gather_candidates(const mn__space *sp, int64_t now_ms, clustering *c, existing *sems,
                              size_t *n_sems)
{
    for (uint32_t i = 0; i < sp->n_slots; i++) {
        const mn__slot *s = &sp->slots[i];
        if (s->state != SLOT_LIVE) continue;
        if (s->expires_at_ms && s->expires_at_ms <= now_ms) continue;
        if (s->kind == MN_KIND_SEMANTIC) {
            if (*n_sems < sp->n_semantic)
                sems[(*n_sems)++] = (existing){s->id, s->when_ms, s->created_at_ms};
            continue;
        }
        if (!s->has_vec || s->suppressed || s->superseded) continue;
        cand *x = &c->cs[c->nc++];
        x->id = s->id;
        x->slot = i;
        x->when_ms = s->when_ms;
        x->session = 0;
        if (s->session) {
            x->session =
                fnv64((const uint8_t *)s->session, strlen(s->session), 14695981039346656037ull);
            if (!x->session) x->session = 1;
        }
        x->cluster = -1;
    }
    qsort(c->cs, c->nc, sizeof *c->cs, cand_cmp);
}

/* Step 4 (read lock held): the clusters of at least min_support members, each
 * with its members in id order (candidates are), centroid, cohesion, medoid. */
static mn_err keep_clusters(clustering *c, uint32_t min_support, cluster_list *out)
{
    uint32_t dim = c->dim;
    size_t want = 0, nk = 0;
    for (size_t k = 0; k < c->ncl; k++)
        want += c->cl[k].n >= min_support;
    mn__sem_cluster *ks = calloc(want ? want : 1, sizeof *ks);
    int32_t *kept_of = malloc((c->ncl ? c->ncl : 1) * sizeof *kept_of);
    float *best = malloc((want ? want : 1) * sizeof *best);
    mn_err rc = MN_OK;
    if (!ks || !kept_of || !best) {
        rc = MN_ERR_NOMEM;
        goto out;
    }
    for (size_t k = 0; k < c->ncl; k++) {
        kept_of[k] = -1;
        if (c->cl[k].n < min_support) continue;
        mn__sem_cluster *x = &ks[nk];
        x->members = malloc(c->cl[k].n * sizeof *x->members);
        x->centroid = malloc(dim * sizeof(float));
        if (!x->members || !x->centroid) {
            free(x->members);
            free(x->centroid);
            rc = MN_ERR_NOMEM;
            goto out;
        }
        memcpy(x->centroid, c->cl[k].centroid, dim * sizeof(float));
        kept_of[k] = (int32_t)nk++;
    }
    for (size_t i = 0; i < c->nc; i++) {
        int32_t kx = kept_of[c->cs[i].cluster];
        if (kx < 0) continue;
        mn__sem_cluster *x = &ks[kx];
        float sim = mn__vec_dot(cand_vec(c, i), x->centroid, dim);
        x->cohesion += sim;
        if (!x->n || sim > best[kx]) { /* ties: the lower id */
            best[kx] = sim;
            x->medoid = x->n;
        }
        x->members[x->n++] = c->cs[i].id;
    }
    for (size_t k = 0; k < nk; k++) {
        ks[k].cohesion /= (double)ks[k].n;
        ks[k].id = semantic_id(&ks[k].members[0]);
    }
out:
    free(best);
    free(kept_of);
    if (rc) {
        free_kept(ks, nk);
        ks = NULL;
        nk = 0;
    }
    out->ks = ks;
    out->n = nk;
    return rc;
}

static void clustering_free(clustering *c)
{
    for (size_t k = 0; k < c->ncl; k++) {
        free(c->cl[k].sum);
        free(c->cl[k].centroid);
    }
    free(c->cl);
    free(c->cs);
    free(c->u);
}

static int id_cmp(const void *a, const void *b)
{
    return mn_id_cmp(a, b);
}

/* A scoped run's episodes that match its filter (read lock held), sorted. */
typedef struct id_set {
    mn_id_t *ids;
    size_t n;
} id_set;

static mn_err gather_matching(const mn__space *sp, const mn_filter_t *f, int64_t now_ms,
                              id_set *out)
{
    out->ids = malloc((sp->n_slots ? sp->n_slots : 1) * sizeof *out->ids);
    if (!out->ids) return MN_ERR_NOMEM;
    for (uint32_t i = 0; i < sp->n_slots; i++) {
        const mn__slot *s = &sp->slots[i];
        if (s->kind != MN_KIND_SEMANTIC && mn__filter_match(s, f, now_ms))
            out->ids[out->n++] = s->id;
    }
    qsort(out->ids, out->n, sizeof *out->ids, id_cmp);
    return MN_OK;
}

/* Does the scope take a change to a memory supported by ids? (no scope: all) */
static bool in_scope(const mn_filter_t *scope, const id_set *match, const mn_id_t *ids, size_t n)
{
    if (!scope) return true;
    for (size_t i = 0; i < n; i++)
        if (bsearch(&ids[i], match->ids, match->n, sizeof *match->ids, id_cmp)) return true;
    return false;
}

/* Steps 1-4 under the read lock: the clusters worth a semantic memory, the
 * live semantic memories of the space, and a scope's matching episodes. */
static mn_err find_clusters(mn_engine_t *e, mn__space *sp, float tau, uint32_t min_support,
                            int64_t now_ms, cluster_list *out, existing **sems, size_t *n_sems,
                            const mn_filter_t *scope, id_set *match, uint64_t *candidates)
{
    clustering c = {.sp = sp, .dim = sp->def.dim, .tau = tau};
    mn_err rc = MN_OK;
    out->ks = NULL;
    out->n = 0;
    pthread_rwlock_rdlock(&sp->lock);
    c.cs = malloc((sp->n_slots ? sp->n_slots : 1) * sizeof *c.cs);
    *sems = malloc((sp->n_semantic ? sp->n_semantic : 1) * sizeof **sems);
    c.u = malloc(c.dim * sizeof(float));
    if (!c.cs || !*sems || !c.u) rc = MN_ERR_NOMEM;
    if (!rc) gather_candidates(sp, now_ms, &c, *sems, n_sems);
    *candidates = c.nc;
    if (!rc && scope) rc = gather_matching(sp, scope, now_ms, match);
    if (!rc) rc = session_neighbours(c.cs, c.nc, e->opts.temporal_window_ms);
    if (!rc) rc = cluster_candidates(&c);
    if (!rc) rc = keep_clusters(&c, min_support, out);
    pthread_rwlock_unlock(&sp->lock);
    clustering_free(&c);
    return rc;
}

/* What a run made of a semantic memory. */
enum { CREATED = 1, UPDATED, RETIRED };

/* One run's working state. */
typedef struct run {
    mn_engine_t *e;
    mn__space *sp;
    int64_t now_ms;
    const mn_filter_t *scope; /* NULL = apply every change */
    id_set match;             /* the scope's matching episodes */
    uint32_t skipped;         /* changes outside the scope */
    cluster_list kept;
    existing *existing; /* live semantic memories when the run began */
    size_t n_existing;
    mn__sem_summary *sums; /* per kept cluster */
    mn__sem_words df;      /* word counts over all supported episodes */
    double n_docs;
    mn_memory_t *sems; /* the entry's memories */
    uint8_t *what;     /* per memory: CREATED, UPDATED or RETIRED */
    size_t n_sems;
} run;

/* Options left at 0 take the engine's (engine.consolidate_*), so on-demand
 * and scheduled runs agree and do not undo each other. */
static mn_err run_options(const mn_engine_t *e, const mn_consolidate_opts_t *opts, float *tau,
                          uint32_t *min_support, mn_error *err)
{
    mn_err rc = mn__validate_consolidate_opts(opts, err);
    if (rc) return rc;
    const mn_consolidate_opts_t *dflt = &e->opts.consolidate;
    *tau = opts && opts->threshold > 0 ? opts->threshold
           : dflt->threshold > 0       ? dflt->threshold
                                       : 0.75f;
    *min_support = opts && opts->min_support ? opts->min_support
                   : dflt->min_support       ? dflt->min_support
                                             : 3;
    /* the defaults come from the config, whose key table holds them to the same ranges */
    mn_assert(*tau > 0 && *tau <= 1);
    mn_assert(*min_support >= 1 && *min_support <= MN_CONSOLIDATE_MIN_SUPPORT_MAX);
    return MN_OK;
}

/* The members' records of each kept cluster (words, times, tags, people) and
 * the global word counts. A cluster with a member forgotten meanwhile is
 * skipped: the next run sees the new set. */
static mn_err summarise(run *r)
{
    size_t nk = r->kept.n;
    if (!(r->sums = calloc(nk ? nk : 1, sizeof *r->sums))) return MN_ERR_NOMEM;
    for (size_t k = 0; k < nk; k++) {
        mn__sem_cluster *kc = &r->kept.ks[k];
        mn_err sr = mn__sem_summarise(r->e, r->sp, kc, &r->sums[k]);
        if (sr == MN_ERR_NOT_FOUND) {
            mn__sem_summary_free(&r->sums[k]);
            kc->skip = true;
            continue;
        }
        if (sr) return sr;
        r->n_docs += (double)kc->n;
        for (size_t i = 0; i < r->sums[k].words.n; i++) {
            const mn__sem_word *w = &r->sums[k].words.e[i];
            mn__sem_word *g = mn__sem_words_get(&r->df, w->word, strlen(w->word), true);
            if (!g) return MN_ERR_NOMEM;
            g->count += w->count;
        }
    }
    return MN_OK;
}

/* How built memory m compares with what is stored: *what CREATED (new, or
 * retired before and its cluster is back) or UPDATED, or 0 to leave it out
 * (unchanged, or forgotten by a client: its key stays without a memory). */
static mn_err compare_stored(run *r, mn_memory_t *m, uint8_t *what)
{
    mn_memory_t old;
    mn_error rerr = {0};
    mn_err gr = mn__record_read(&r->e->store, r->e->opts.initial_stability_days, r->sp, &m->id,
                                true, &old, &rerr);
    *what = 0;
    if (gr == MN_ERR_NOT_FOUND) {
        *what = CREATED;
    } else if (gr == MN_ERR_GONE) {
        bool retired = false;
        mn_err rc = mn__record_retired(&r->e->store, r->sp, &m->id, &retired);
        if (rc) return rc;
        if (retired) *what = CREATED;
    } else if (gr) {
        return gr;
    } else {
        /* a client's suppression stays */
        m->suppressed = old.suppressed;
        m->suppressed_at_ms = old.suppressed_at_ms;
        m->unsuppressed_at_ms = old.unsuppressed_at_ms;
        bool same = mn__sem_same(m, &old) && m->suppressed == old.suppressed;
        mn_memory_clear(&old);
        if (!same) *what = UPDATED;
    }
    return MN_OK;
}

/* Builds each kept cluster's memory and keeps those that change something. */
static mn_err build_memories(run *r)
{
    for (size_t k = 0; k < r->kept.n; k++) {
        if (r->kept.ks[k].skip) continue;
        mn_memory_t *m = &r->sems[r->n_sems];
        mn_err rc = mn__sem_build(r->sp, &r->kept.ks[k], &r->sums[k], &r->df, r->n_docs, m);
        uint8_t what = 0;
        if (!rc) rc = compare_stored(r, m, &what);
        if (!rc && what && !in_scope(r->scope, &r->match, m->support, m->n_support)) {
            r->skipped++;
            what = 0;
        }
        if (rc || !what) mn_memory_clear(m);
        if (rc) return rc;
        if (what) r->what[r->n_sems++] = what;
    }
    return MN_OK;
}

/* Does the scope take the retirement of x? Judged by its stored support: the
 * episodes it was made of. One gone meanwhile is left too (not counted). */
static mn_err retire_in_scope(run *r, const existing *x, bool *take)
{
    *take = true;
    if (!r->scope) return MN_OK;
    mn_memory_t old;
    mn_error rerr = {0};
    mn_err gr = mn__record_read(&r->e->store, r->e->opts.initial_stability_days, r->sp, &x->id,
                                false, &old, &rerr);
    *take = false;
    if (gr == MN_ERR_NOT_FOUND || gr == MN_ERR_GONE) return MN_OK;
    if (gr) return gr;
    *take = in_scope(r->scope, &r->match, old.support, old.n_support);
    if (!*take) r->skipped++;
    mn_memory_clear(&old);
    return MN_OK;
}

/* Step 5: retires what this module made and no cluster is keyed by any more,
 * as erased stubs in the same entry. */
static mn_err retire_stale(run *r)
{
    size_t nk = r->kept.n;
    mn_id_t *keep = malloc((nk ? nk : 1) * sizeof *keep);
    if (!keep) return MN_ERR_NOMEM;
    for (size_t k = 0; k < nk; k++)
        keep[k] = r->kept.ks[k].id; /* skipped ones too */
    qsort(keep, nk, sizeof *keep, id_cmp);
    for (size_t i = 0; i < r->n_existing; i++) {
        const existing *x = &r->existing[i];
        if (bsearch(&x->id, keep, nk, sizeof *keep, id_cmp)) continue;
        if (!mn__consolidate_made(&x->id)) continue; /* a client remembered it */
        bool take = true;
        mn_err rc = retire_in_scope(r, x, &take);
        if (rc) {
            free(keep);
            return rc;
        }
        if (!take) continue;
        mn_memory_t *st = &r->sems[r->n_sems];
        mn_memory_init(st);
        st->id = x->id;
        st->kind = MN_KIND_SEMANTIC;
        st->when_ms = x->when_ms;
        st->created_at_ms = x->created_at_ms;
        st->forgotten = true;
        st->retired = true;
        st->forgotten_at_ms = r->now_ms;
        r->what[r->n_sems++] = RETIRED;
    }
    free(keep);
    return MN_OK;
}

/* Commits the run's entry and counts what the apply took: a memory listing
 * an episode forgotten meanwhile is not. */
static mn_err commit_run(run *r, mn_consolidate_result_t *out, mn_error *err)
{
    mn__pending p;
    mn__pending_init(&p, MN_WAL_OP_CONSOLIDATE, r->sp, true);
    p.entry.op.consolidate.mems = r->sems;
    p.entry.op.consolidate.n = r->n_sems;
    p.keep_accepted = true;
    mn_err rc = mn__commit_submit(r->e, &p);
    if (rc && err) *err = p.err;
    for (size_t i = 0; !rc && i < r->n_sems; i++) {
        if (!p.accepted || !p.accepted[i]) continue;
        if (r->what[i] == RETIRED) {
            out->retired++;
            continue;
        }
        if (r->what[i] == CREATED)
            out->created++;
        else
            out->updated++;
        out->episodes += (uint32_t)r->sems[i].n_support;
        out->ids[out->n_ids++] = r->sems[i].id;
    }
    free(p.accepted);
    return rc;
}

static void run_free(run *r)
{
    free(r->what);
    for (size_t i = 0; r->sems && i < r->n_sems; i++)
        mn_memory_clear(&r->sems[i]);
    free(r->sems);
    for (size_t k = 0; r->sums && k < r->kept.n; k++)
        mn__sem_summary_free(&r->sums[k]);
    free(r->sums);
    mn__sem_words_free(&r->df);
    free_kept(r->kept.ks, r->kept.n);
    free(r->existing);
    free(r->match.ids);
}

/* A run over space sp (its consolidation lock held). */
static mn_err consolidate_space(run *r, float tau, uint32_t min_support, mn_consolidate_result_t *out,
                                mn_error *err)
{
    size_t nk;
    mn_err rc = find_clusters(r->e, r->sp, tau, min_support, r->now_ms, &r->kept, &r->existing,
                              &r->n_existing, r->scope, &r->match, &out->candidates);
    if (!rc) rc = summarise(r);
    nk = r->kept.n;
    if (!rc) {
        r->sems = calloc(nk + r->n_existing + 1, sizeof *r->sems);
        r->what = calloc(nk + r->n_existing + 1, 1);
        out->ids = malloc((nk ? nk : 1) * sizeof *out->ids);
        if (!r->sems || !r->what || !out->ids) rc = MN_ERR_NOMEM;
    }
    if (!rc) rc = build_memories(r);
    if (!rc) rc = retire_stale(r);
    if (rc) return mn_error_set(err, rc, "consolidation failed: %s", mn_strerror(rc));
    out->skipped = r->skipped;
    return r->n_sems ? commit_run(r, out, err) : MN_OK;
}

static mn_err consolidate_op(mn_engine_t *e, const char *space, const mn_consolidate_opts_t *opts,
                             mn_consolidate_result_t *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    float tau;
    uint32_t min_support;
    mn_err rc = run_options(e, opts, &tau, &min_support, err);
    if (rc) return rc;
    mn__space *sp = mn__registry_acquire(&e->reg, space);
    if (!sp) return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", space);
    if (mn__space_writable(sp, err)) {
        mn__space_unref(sp);
        return MN_ERR_UNAVAILABLE;
    }
    pthread_mutex_lock(&sp->consolidate_mu);
    run r = {.e = e, .sp = sp, .now_ms = mn__now(e), .scope = opts ? opts->filter : NULL};
    rc = consolidate_space(&r, tau, min_support, out, err);
    run_free(&r);
    pthread_mutex_unlock(&sp->consolidate_mu);
    mn__space_unref(sp);
    if (rc) {
        free(out->ids);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

mn_err mn_engine_consolidate(mn_engine_t *e, const char *space, const mn_consolidate_opts_t *opts,
                             mn_consolidate_result_t *out, mn_error *err)
{
    int64_t t0 = mn_time_mono_ns();
    return mn__timed(&e->h_consolidate, t0, consolidate_op(e, space, opts, out, err));
}
