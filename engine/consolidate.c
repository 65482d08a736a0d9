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
 * list it (mn_consolidate_rederive, semantic_build.c, from the commit thread
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
#include "text/keyword.h"
#include "semantic_build.h"

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
    for (size_t k = 0; k < c->ncl; k++)
        mn_sem_centroid(c->cl[k].sum, c->dim, c->cl[k].centroid);
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
            mn_sem_centroid(k->sum, c->dim, k->centroid);
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

static void free_kept(mn_sem_cluster *k, size_t n)
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
                            int64_t now, mn_sem_cluster **out, size_t *n_out, existing **sems,
                            size_t *n_sems, uint64_t *candidates)
{
    uint32_t dim = sp->def.dim;
    clustering c = {.sp = sp, .dim = dim, .tau = tau};
    mn_err rc = MN_OK;
    mn_sem_cluster *ks = NULL;
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
    /* each mn_sem_cluster cluster: members in id order (candidates are), cohesion, medoid */
    int32_t *kept_of = !rc ? malloc((c.ncl ? c.ncl : 1) * sizeof *kept_of) : NULL;
    if (!rc && !kept_of) rc = MN_ERR_NOMEM;
    for (size_t k = 0; !rc && k < c.ncl; k++) {
        kept_of[k] = -1;
        if (c.cl[k].n < min_support) continue;
        mn_sem_cluster *x = &ks[nk];
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
        mn_sem_cluster *x = &ks[kx];
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
    mn_sem_cluster *ks = NULL;
    size_t nk = 0, n_existing = 0;
    existing *existing_ = NULL;
    mn_err rc = find_clusters(e, sp, tau, min_support, now, &ks, &nk, &existing_, &n_existing,
                              &out->candidates);

    /* the members' records: words, times, tags, people; a global word count */
    mn_sem_summary *sums = !rc ? calloc(nk ? nk : 1, sizeof *sums) : NULL;
    if (!rc && !sums) rc = MN_ERR_NOMEM;
    mn_sem_words df = {0};
    double n_docs = 0;
    for (size_t k = 0; !rc && k < nk; k++) {
        mn_err sr = mn_sem_summarise(e, sp, &ks[k], &sums[k]);
        if (sr == MN_ERR_NOT_FOUND) { /* forgotten meanwhile: the next run sees the new set */
            mn_sem_summary_free(&sums[k]);
            ks[k].skip = true;
            continue;
        }
        if ((rc = sr)) break;
        n_docs += (double)ks[k].n;
        for (size_t i = 0; !rc && i < sums[k].words.n; i++) {
            const mn_sem_word *w = &sums[k].words.e[i];
            mn_sem_word *g = mn_sem_words_get(&df, w->word, strlen(w->word), true);
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
        if ((rc = mn_sem_build(sp, &ks[k], &sums[k], &df, n_docs, m))) {
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
            bool same = mn_sem_same(m, &old) && m->suppressed == old.suppressed;
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
    for (size_t k = 0; sums && k < nk; k++)
        mn_sem_summary_free(&sums[k]);
    free(sums);
    mn_sem_words_free(&df);
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
