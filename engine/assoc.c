/* Associations between memories: the in-memory adjacency of a space and the
 * links made automatically when a memory is remembered.
 *
 * Each edge is kept on both endpoints (with its direction), so activation can
 * spread either way and forgetting a memory can drop the other halves. The
 * store holds one key per edge (sid | 'a' | from | to | kind); a memory's slot holds
 * its adjacency. Every link travels in a WAL entry, so replicas and restarts
 * see exactly the links this node chose: temporal links are computed on the
 * remembering thread under the space's read lock and travel inside the
 * remember entry; semantic links are computed by the background linker
 * (background.c) after the memory is durable and travel in an associate entry.
 *
 * Temporal links follow a session's episodes in (when, id) order: a new
 * episode links to its neighbours either side within the window, and when it
 * lands between two linked episodes (it arrived with an earlier `when`) their
 * edge is rewritten with weight 0, which unlinks (the WAL has no edge
 * deletion; a weight-0 edge is never in the adjacency). So the links are the
 * same whatever order the episodes arrived in. */
#include "assoc.h"

#include "session_index.h"
#include "vec.h"

#include <stdlib.h>
#include <string.h>

/* Sets (or, with weight 0, removes) one half of an edge. */
static void adj_put(mn__slot *s, const mn_id_t *other, uint8_t kind, uint8_t out, float w)
{
    for (uint32_t i = 0; i < s->n_adj; i++) {
        mn__adj *a = &s->adj[i];
        if (a->kind == kind && a->out == out && !memcmp(a->other.b, other->b, 16)) {
            if (w > 0)
                a->weight = w;
            else
                s->adj[i] = s->adj[--s->n_adj];
            return;
        }
    }
    if (!(w > 0)) return;
    if (s->n_adj == s->cap_adj) {
        uint32_t nc = s->cap_adj ? s->cap_adj * 2 : 4;
        mn__adj *na = realloc(s->adj, nc * sizeof *na);
        if (!na) return; /* the edge stays in the store; a restart restores it */
        s->adj = na;
        s->cap_adj = nc;
    }
    s->adj[s->n_adj++] = (mn__adj){*other, w, kind, out};
}

void mn__space_link(mn__space *sp, const mn_edge_t *e)
{
    uint32_t a = mn__space_find(sp, &e->from), b = mn__space_find(sp, &e->to);
    if (a == UINT32_MAX || b == UINT32_MAX || a == b) return;
    adj_put(&sp->slots[a], &e->to, e->kind, 1, e->weight);
    adj_put(&sp->slots[b], &e->from, e->kind, 0, e->weight);
}

static int id_order(const void *a, const void *b)
{
    return mn_id_cmp(a, b);
}

void mn__space_link_supports(mn__space *sp, const mn_id_t *sem, const mn_id_t *ids, size_t n)
{
    uint32_t slot = mn__space_find(sp, sem);
    if (slot == UINT32_MAX) return;
    mn__slot *s = &sp->slots[slot];
    /* the episodes linked now, sorted; those it no longer lists are unlinked */
    mn_id_t *have = malloc((s->n_adj ? s->n_adj : 1) * sizeof *have);
    size_t nh = 0;
    for (uint32_t a = 0; a < s->n_adj;) {
        mn__adj x = s->adj[a];
        if (x.kind != MN_EDGE_CONSOLIDATION || x.out) {
            a++;
            continue;
        }
        if (bsearch(&x.other, ids, n, sizeof *ids, id_order)) {
            if (have) have[nh++] = x.other;
            a++;
            continue;
        }
        s->adj[a] = s->adj[--s->n_adj];
        uint32_t o = mn__space_find(sp, &x.other);
        if (o != UINT32_MAX) adj_put(&sp->slots[o], sem, MN_EDGE_CONSOLIDATION, 1, 0);
    }
    if (have) qsort(have, nh, sizeof *have, id_order);
    /* new ones: appended on the memory's side without a search (a memory of
     * n episodes would cost n^2), the episode's short list as usual */
    for (size_t i = 0; i < n; i++) {
        if (have ? bsearch(&ids[i], have, nh, sizeof *have, id_order) != NULL : false) continue;
        uint32_t o = mn__space_find(sp, &ids[i]);
        if (o == UINT32_MAX || o == slot) continue;
        if (!have) { /* out of memory above: the searching path */
            mn_edge_t ed = {ids[i], *sem, MN_EDGE_CONSOLIDATION, 1.0f};
            mn__space_link(sp, &ed);
            continue;
        }
        adj_put(&sp->slots[o], sem, MN_EDGE_CONSOLIDATION, 1, 1.0f);
        s = &sp->slots[slot];
        if (s->n_adj == s->cap_adj) {
            uint32_t nc = s->cap_adj ? s->cap_adj * 2 : 4;
            mn__adj *na = realloc(s->adj, nc * sizeof *na);
            if (!na) continue; /* the edge stays in the store; a restart restores it */
            s->adj = na;
            s->cap_adj = nc;
        }
        s->adj[s->n_adj++] = (mn__adj){ids[i], 1.0f, MN_EDGE_CONSOLIDATION, 0};
    }
    free(have);
}

/* Keeps the n best (similarity, id) pairs, best first; n is small (link_max). */
static void keep_best(mn_edge_t *best, float *sims, size_t *n, size_t max, const mn_id_t *id,
                      float sim)
{
    size_t pos = *n;
    while (pos > 0 &&
           (sims[pos - 1] < sim || (sims[pos - 1] == sim && mn_id_cmp(&best[pos - 1].to, id) > 0)))
        pos--;
    if (pos >= max) return;
    size_t last = *n < max ? *n : max - 1;
    for (size_t i = last; i > pos; i--) {
        best[i] = best[i - 1];
        sims[i] = sims[i - 1];
    }
    best[pos].to = *id;
    sims[pos] = sim;
    if (*n < max) (*n)++;
}

/* (when a, id a) comes before (when b, id b): the order of a session's episodes. */
static bool before(int64_t wa, const mn_id_t *a, int64_t wb, const mn_id_t *b)
{
    return wa != wb ? wa < wb : mn_id_cmp(a, b) < 0;
}

/* A session neighbour: a stored memory or an earlier one of the same request. */
typedef struct neighbour {
    bool found;
    mn_id_t id;
    int64_t when;
} neighbour;

/* 1 for back-to-back turns, 0.1 at the window's edge. */
static float temporal_weight(int64_t gap_ms, int64_t window_ms)
{
    return 1.0f - 0.9f * (float)gap_ms / (float)window_ms;
}

static bool has_temporal_out(const mn__slot *s, const mn_id_t *to)
{
    for (uint32_t i = 0; i < s->n_adj; i++)
        if (s->adj[i].kind == MN_EDGE_TEMPORAL && s->adj[i].out && s->adj[i].weight > 0 &&
            !memcmp(s->adj[i].other.b, to->b, 16))
            return true;
    return false;
}

static mn_err push(mn_edge_t **edges, size_t *n, size_t *cap, const mn_edge_t *e)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        mn_edge_t *ne = realloc(*edges, nc * sizeof *ne);
        if (!ne) return MN_ERR_NOMEM;
        *edges = ne;
        *cap = nc;
    }
    (*edges)[(*n)++] = *e;
    return MN_OK;
}

/* Up to link_max semantic neighbours of m among the candidate slots (NULL:
 * every slot) whose similarity is >= link_threshold, best first. */
static mn_err link_semantic(const mn__space *sp, const mn_memory_t *m, const uint32_t *cands,
                            size_t n_cands, float link_threshold, uint32_t link_max, int64_t now_ms,
                            mn_edge_t **edges, size_t *n, size_t *cap)
{
    uint32_t dim = sp->def.dim;
    float *q = malloc(dim * sizeof(float));
    mn_edge_t *best = calloc(link_max, sizeof *best);
    float *sims = calloc(link_max, sizeof *sims);
    mn_err rc = MN_OK;
    if (!q || !best || !sims) {
        rc = MN_ERR_NOMEM;
        goto out;
    }
    memcpy(q, m->embedding, dim * sizeof(float));
    if (sp->def.metric == MN_METRIC_COSINE) mn__vec_normalize(q, dim);
    size_t nb = 0;
    size_t n_scan = cands ? n_cands : sp->n_slots;
    for (size_t c = 0; c < n_scan; c++) {
        uint32_t i = cands ? cands[c] : (uint32_t)c;
        if (i >= sp->n_slots) continue;
        const mn__slot *s = &sp->slots[i];
        if (s->state != SLOT_LIVE || !s->has_vec) continue;
        if (!memcmp(s->id.b, m->id.b, 16)) continue; /* itself (background linking) */
        if (s->expires_at_ms && s->expires_at_ms <= now_ms) continue;
        float score = mn__vec_score(sp->def.metric, q, sp->vecs + (size_t)i * dim, dim, NULL);
        float sim = mn__vec_match(sp->def.metric, score);
        if (sim >= link_threshold) keep_best(best, sims, &nb, link_max, &s->id, sim);
    }
    for (size_t i = 0; i < nb && !rc; i++) {
        mn_edge_t e = {.from = m->id,
                     .to = best[i].to,
                     .kind = MN_EDGE_SEMANTIC,
                     .weight = sims[i] > 0 ? sims[i] : 1e-3f};
        rc = push(edges, n, cap, &e);
    }
out:
    free(q);
    free(best);
    free(sims);
    return rc;
}

/* m's neighbours either side in its session, in (when, id) order: among the
 * space's episodes (*sp_prev / *sp_next: their slots) and the earlier
 * memories of the same request (a conversation sent as a batch). */
static void session_neighbours(const mn__space *sp, const mn_memory_t *m, const mn_memory_t *batch,
                               size_t n_batch, const mn__slot **sp_prev, const mn__slot **sp_next,
                               neighbour *prev, neighbour *next)
{
    *sp_prev = *sp_next = NULL;
    size_t n_sess = 0;
    const uint32_t *sess = mn__session_ix_slots(sp->sessions, m->session, &n_sess);
    for (size_t k = 0; k < n_sess; k++) {
        const mn__slot *s = &sp->slots[sess[k]];
        if (s->state != SLOT_LIVE || !s->session || strcmp(s->session, m->session)) continue;
        if (s->kind != MN_KIND_EPISODIC || !memcmp(s->id.b, m->id.b, 16)) continue;
        if (before(s->when_ms, &s->id, m->when_ms, &m->id)) {
            if (!*sp_prev || before((*sp_prev)->when_ms, &(*sp_prev)->id, s->when_ms, &s->id))
                *sp_prev = s;
        } else if (!*sp_next || before(s->when_ms, &s->id, (*sp_next)->when_ms, &(*sp_next)->id)) {
            *sp_next = s;
        }
    }
    *prev = (neighbour){false, {{0}}, 0};
    *next = (neighbour){false, {{0}}, 0};
    if (*sp_prev) *prev = (neighbour){true, (*sp_prev)->id, (*sp_prev)->when_ms};
    if (*sp_next) *next = (neighbour){true, (*sp_next)->id, (*sp_next)->when_ms};
    for (size_t i = 0; i < n_batch; i++) {
        const mn_memory_t *b = &batch[i];
        if (!b->session || strcmp(b->session, m->session) || b->kind != MN_KIND_EPISODIC) continue;
        if (before(b->when_ms, &b->id, m->when_ms, &m->id)) {
            if (!prev->found || before(prev->when, &prev->id, b->when_ms, &b->id))
                *prev = (neighbour){true, b->id, b->when_ms};
        } else if (!next->found || before(b->when_ms, &b->id, next->when, &next->id)) {
            *next = (neighbour){true, b->id, b->when_ms};
        }
    }
}

/* m now sits between prev and next: their edge goes. One not written yet (in
 * *edges) is dropped; a stored one is rewritten with weight 0, which unlinks. */
static mn_err unlink_around(const mn__slot *sp_prev, const neighbour *prev, const neighbour *next,
                            mn_edge_t **edges, size_t *n, size_t *cap)
{
    for (size_t i = 0; i < *n; i++) {
        mn_edge_t *x = &(*edges)[i];
        if (x->kind == MN_EDGE_TEMPORAL && !mn_id_cmp(&x->from, &prev->id) &&
            !mn_id_cmp(&x->to, &next->id)) {
            (*edges)[i] = (*edges)[--(*n)];
            return MN_OK;
        }
    }
    if (!sp_prev || mn_id_cmp(&sp_prev->id, &prev->id) || !has_temporal_out(sp_prev, &next->id))
        return MN_OK;
    mn_edge_t e = {.from = prev->id, .to = next->id, .kind = MN_EDGE_TEMPORAL, .weight = 0};
    return push(edges, n, cap, &e);
}

/* The session's episodes in (when, id) order: link m to its neighbours
 * either side within the window, and unlink the two from each other (an
 * episode may arrive with an earlier `when` than ones stored). */
static mn_err link_temporal(const mn__space *sp, const mn_memory_t *m, const mn_memory_t *batch,
                            size_t n_batch, int64_t window_ms, mn_edge_t **edges, size_t *n,
                            size_t *cap)
{
    const mn__slot *sp_prev, *sp_next;
    neighbour prev, next;
    session_neighbours(sp, m, batch, n_batch, &sp_prev, &sp_next, &prev, &next);
    bool link_prev = prev.found && m->when_ms - prev.when <= window_ms;
    bool link_next = next.found && next.when - m->when_ms <= window_ms;
    mn_err rc = MN_OK;
    if (prev.found && next.found) rc = unlink_around(sp_prev, &prev, &next, edges, n, cap);
    if (!rc && link_prev) {
        mn_edge_t e = {.from = prev.id,
                     .to = m->id,
                     .kind = MN_EDGE_TEMPORAL,
                     .weight = temporal_weight(m->when_ms - prev.when, window_ms)};
        rc = push(edges, n, cap, &e);
    }
    if (!rc && link_next) {
        mn_edge_t e = {.from = m->id,
                     .to = next.id,
                     .kind = MN_EDGE_TEMPORAL,
                     .weight = temporal_weight(next.when - m->when_ms, window_ms)};
        rc = push(edges, n, cap, &e);
    }
    return rc;
}

mn_id_t mn__slot_canonical(const mn__slot *s)
{
    for (uint32_t i = 0; i < s->n_adj; i++)
        if (s->adj[i].kind == MN_EDGE_DUPLICATE && s->adj[i].out) return s->adj[i].other;
    return s->id;
}

mn_err mn__space_link_duplicate(const mn__space *sp, const mn_id_t *id, float threshold,
                                size_t from, mn_edge_t **edges, size_t *n, size_t *cap)
{
    if (!(threshold > 0)) return MN_OK;
    size_t end = *n;
    for (size_t i = from; i < end; i++) {
        const mn_edge_t x = (*edges)[i];
        if (x.kind != MN_EDGE_SEMANTIC || mn_id_cmp(&x.from, id)) continue;
        if (x.weight < threshold) break;         /* best first: the rest are further */
        if (mn_id_cmp(&x.to, id) >= 0) continue; /* a newer one links to this one */
        uint32_t slot = mn__space_find(sp, &x.to);
        if (slot == UINT32_MAX) continue;
        mn_edge_t d = {.from = *id,
                       .to = mn__slot_canonical(&sp->slots[slot]),
                       .kind = MN_EDGE_DUPLICATE,
                       .weight = x.weight};
        for (size_t j = 0; j < end; j++) /* linked in this batch, not yet committed */
            if ((*edges)[j].kind == MN_EDGE_DUPLICATE && !mn_id_cmp(&(*edges)[j].from, &x.to))
                d.to = (*edges)[j].to;
        /* its canonical is older still (this linker makes duplicate edges only
         * towards older memories), so the group stays a star, never a cycle; an
         * edge another engine wrote (ingested) that says otherwise is not followed */
        if (mn_id_cmp(&d.to, id) >= 0) d.to = x.to;
        return push(edges, n, cap, &d);
    }
    return MN_OK;
}

mn_err mn__space_autolink(const mn__space *sp, const mn_memory_t *m, const mn_memory_t *batch,
                          size_t n_batch, const uint32_t *cands, size_t n_cands,
                          float link_threshold, uint32_t link_max, int64_t temporal_window_ms,
                          int64_t now_ms, mn_edge_t **edges, size_t *n, size_t *cap)
{
    mn_err rc = MN_OK;
    if (m->embedding && link_max > 0 && sp->n_live > 0)
        rc = link_semantic(sp, m, cands, n_cands, link_threshold, link_max, now_ms, edges, n, cap);
    if (!rc && m->session && temporal_window_ms > 0)
        rc = link_temporal(sp, m, batch, n_batch, temporal_window_ms, edges, n, cap);
    return rc;
}
