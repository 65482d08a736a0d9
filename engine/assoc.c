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
#include "engine_internal.h"
#include "session_index.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void mn_key_edge(uint8_t *k, uint32_t sid, const mn_id_t *from, const mn_id_t *to, uint8_t kind)
{
    mn_put_be32(k, sid);
    k[KEY_SID_LEN] = 'a';
    memcpy(k + KEY_SID_LEN + 1, from->b, 16);
    memcpy(k + KEY_SID_LEN + 17, to->b, 16);
    k[KEY_SID_LEN + 33] = kind;
}

void mn_key_consolidated(uint8_t *k, uint32_t sid, const mn_id_t *id)
{
    mn_put_be32(k, sid);
    k[KEY_SID_LEN] = 'c';
    memcpy(k + KEY_SID_LEN + 1, id->b, 16);
}

float mn_vec_match(mn_metric m, float score)
{
    if (m == MN_METRIC_L2) return score; /* already 1 / (1 + d) */
    return score < 0 ? 0 : score > 1 ? 1 : score;
}

/* Sets (or, with weight 0, removes) one half of an edge. */
static void adj_put(mn_slot *s, const mn_id_t *other, uint8_t kind, uint8_t out, float w)
{
    for (uint32_t i = 0; i < s->n_adj; i++) {
        mn_adj *a = &s->adj[i];
        if (a->kind == kind && a->out == out && !memcmp(a->other.b, other->b, 16)) {
            if (w > 0) a->weight = w;
            else s->adj[i] = s->adj[--s->n_adj];
            return;
        }
    }
    if (!(w > 0)) return;
    if (s->n_adj == s->cap_adj) {
        uint32_t nc = s->cap_adj ? s->cap_adj * 2 : 4;
        mn_adj *na = realloc(s->adj, nc * sizeof *na);
        if (!na) return; /* the edge stays in the store; a restart restores it */
        s->adj = na;
        s->cap_adj = nc;
    }
    s->adj[s->n_adj++] = (mn_adj){*other, w, kind, out};
}

void mn_space_link(mn_space *sp, const mn_edge *e)
{
    uint32_t a = mn_space_find(sp, &e->from), b = mn_space_find(sp, &e->to);
    if (a == UINT32_MAX || b == UINT32_MAX || a == b) return;
    adj_put(&sp->slots[a], &e->to, e->kind, 1, e->weight);
    adj_put(&sp->slots[b], &e->from, e->kind, 0, e->weight);
}

static int id_order(const void *a, const void *b)
{
    return mn_id_cmp(a, b);
}

void mn_space_link_supports(mn_space *sp, const mn_id_t *sem, const mn_id_t *ids, size_t n)
{
    uint32_t slot = mn_space_find(sp, sem);
    if (slot == UINT32_MAX) return;
    mn_slot *s = &sp->slots[slot];
    /* the episodes linked now, sorted; those it no longer lists are unlinked */
    mn_id_t *have = malloc((s->n_adj ? s->n_adj : 1) * sizeof *have);
    size_t nh = 0;
    for (uint32_t a = 0; a < s->n_adj;) {
        mn_adj x = s->adj[a];
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
        uint32_t o = mn_space_find(sp, &x.other);
        if (o != UINT32_MAX) adj_put(&sp->slots[o], sem, MN_EDGE_CONSOLIDATION, 1, 0);
    }
    if (have) qsort(have, nh, sizeof *have, id_order);
    /* new ones: appended on the memory's side without a search (a memory of
     * n episodes would cost n^2), the episode's short list as usual */
    for (size_t i = 0; i < n; i++) {
        if (have ? bsearch(&ids[i], have, nh, sizeof *have, id_order) != NULL : false) continue;
        uint32_t o = mn_space_find(sp, &ids[i]);
        if (o == UINT32_MAX || o == slot) continue;
        if (!have) { /* out of memory above: the searching path */
            mn_edge ed = {ids[i], *sem, MN_EDGE_CONSOLIDATION, 1.0f};
            mn_space_link(sp, &ed);
            continue;
        }
        adj_put(&sp->slots[o], sem, MN_EDGE_CONSOLIDATION, 1, 1.0f);
        s = &sp->slots[slot];
        if (s->n_adj == s->cap_adj) {
            uint32_t nc = s->cap_adj ? s->cap_adj * 2 : 4;
            mn_adj *na = realloc(s->adj, nc * sizeof *na);
            if (!na) continue; /* the edge stays in the store; a restart restores it */
            s->adj = na;
            s->cap_adj = nc;
        }
        s->adj[s->n_adj++] = (mn_adj){ids[i], 1.0f, MN_EDGE_CONSOLIDATION, 0};
    }
    free(have);
}

/* Keeps the n best (similarity, id) pairs, best first; n is small (link_max). */
static void keep_best(mn_edge *best, float *sims, size_t *n, size_t max, const mn_id_t *id,
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

static bool has_temporal_out(const mn_slot *s, const mn_id_t *to)
{
    for (uint32_t i = 0; i < s->n_adj; i++)
        if (s->adj[i].kind == MN_EDGE_TEMPORAL && s->adj[i].out && s->adj[i].weight > 0 &&
            !memcmp(s->adj[i].other.b, to->b, 16))
            return true;
    return false;
}

static mn_err push(mn_edge **edges, size_t *n, size_t *cap, const mn_edge *e)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        mn_edge *ne = realloc(*edges, nc * sizeof *ne);
        if (!ne) return MN_ERR_NOMEM;
        *edges = ne;
        *cap = nc;
    }
    (*edges)[(*n)++] = *e;
    return MN_OK;
}

mn_err mn_space_autolink(const mn_space *sp, const mn_memory_t *m, const mn_memory_t *batch,
                         size_t n_batch, const uint32_t *cands, size_t n_cands,
                         float link_threshold, uint32_t link_max, int64_t temporal_window_ms,
                         int64_t now, mn_edge **edges, size_t *n, size_t *cap)
{
    uint32_t dim = sp->def.dim;
    if (m->embedding && link_max > 0 && sp->n_live > 0) {
        float *q = malloc(dim * sizeof(float));
        mn_edge *best = calloc(link_max, sizeof *best);
        float *sims = calloc(link_max, sizeof *sims);
        if (!q || !best || !sims) {
            free(q);
            free(best);
            free(sims);
            return MN_ERR_NOMEM;
        }
        memcpy(q, m->embedding, dim * sizeof(float));
        if (sp->def.metric == MN_METRIC_COSINE) mn_vec_normalize(q, dim);
        size_t nb = 0;
        size_t n_scan = cands ? n_cands : sp->n_slots;
        for (size_t c = 0; c < n_scan; c++) {
            uint32_t i = cands ? cands[c] : (uint32_t)c;
            if (i >= sp->n_slots) continue;
            const mn_slot *s = &sp->slots[i];
            if (s->state != SLOT_LIVE || !s->has_vec) continue;
            if (!memcmp(s->id.b, m->id.b, 16)) continue; /* itself (background linking) */
            if (s->expires_at_ms && s->expires_at_ms <= now) continue;
            const float *v = sp->vecs + (size_t)i * dim;
            float score;
            if (sp->def.metric == MN_METRIC_L2)
                score = 1.0f / (1.0f + sqrtf(mn_vec_l2sq_fast(q, v, dim)));
            else
                score = mn_vec_dot_fast(q, v, dim);
            float sim = mn_vec_match(sp->def.metric, score);
            if (sim >= link_threshold) keep_best(best, sims, &nb, link_max, &s->id, sim);
        }
        mn_err rc = MN_OK;
        for (size_t i = 0; i < nb && !rc; i++) {
            mn_edge e = {.from = m->id,
                         .to = best[i].to,
                         .kind = MN_EDGE_SEMANTIC,
                         .weight = sims[i] > 0 ? sims[i] : 1e-3f};
            rc = push(edges, n, cap, &e);
        }
        free(q);
        free(best);
        free(sims);
        if (rc) return rc;
    }
    if (m->session && temporal_window_ms > 0) {
        /* the session's episodes in (when, id) order: link m to its neighbours
         * either side within the window, and unlink the two from each other
         * (an episode may arrive with an earlier `when` than ones stored) */
        const mn_slot *sp_prev = NULL, *sp_next = NULL;
        size_t n_sess = 0;
        const uint32_t *sess = mn_session_ix_slots(sp->sessions, m->session, &n_sess);
        for (size_t k = 0; k < n_sess; k++) {
            const mn_slot *s = &sp->slots[sess[k]];
            if (s->state != SLOT_LIVE || !s->session || strcmp(s->session, m->session)) continue;
            if (s->kind != MN_KIND_EPISODIC || !memcmp(s->id.b, m->id.b, 16)) continue;
            if (before(s->when_ms, &s->id, m->when_ms, &m->id)) {
                if (!sp_prev || before(sp_prev->when_ms, &sp_prev->id, s->when_ms, &s->id))
                    sp_prev = s;
            } else if (!sp_next || before(s->when_ms, &s->id, sp_next->when_ms, &sp_next->id)) {
                sp_next = s;
            }
        }
        neighbour prev = {false, {{0}}, 0}, next = {false, {{0}}, 0};
        if (sp_prev) prev = (neighbour){true, sp_prev->id, sp_prev->when_ms};
        if (sp_next) next = (neighbour){true, sp_next->id, sp_next->when_ms};
        /* earlier memories of the same request count too (a conversation sent as a batch) */
        for (size_t i = 0; i < n_batch; i++) {
            const mn_memory_t *b = &batch[i];
            if (!b->session || strcmp(b->session, m->session) || b->kind != MN_KIND_EPISODIC)
                continue;
            if (before(b->when_ms, &b->id, m->when_ms, &m->id)) {
                if (!prev.found || before(prev.when, &prev.id, b->when_ms, &b->id))
                    prev = (neighbour){true, b->id, b->when_ms};
            } else if (!next.found || before(b->when_ms, &b->id, next.when, &next.id)) {
                next = (neighbour){true, b->id, b->when_ms};
            }
        }
        bool link_prev = prev.found && m->when_ms - prev.when <= temporal_window_ms;
        bool link_next = next.found && next.when - m->when_ms <= temporal_window_ms;
        if (prev.found && next.found) {
            /* m now sits between them: their edge goes (weight 0 unlinks) */
            bool pending = false;
            for (size_t i = 0; i < *n && !pending; i++) {
                mn_edge *x = &(*edges)[i];
                if (x->kind == MN_EDGE_TEMPORAL && !mn_id_cmp(&x->from, &prev.id) &&
                    !mn_id_cmp(&x->to, &next.id)) {
                    (*edges)[i] = (*edges)[--(*n)]; /* not written yet: drop it */
                    pending = true;
                }
            }
            if (!pending && sp_prev && !mn_id_cmp(&sp_prev->id, &prev.id) &&
                has_temporal_out(sp_prev, &next.id)) {
                mn_edge e = {.from = prev.id, .to = next.id, .kind = MN_EDGE_TEMPORAL, .weight = 0};
                mn_err rc = push(edges, n, cap, &e);
                if (rc) return rc;
            }
        }
        if (link_prev) {
            mn_edge e = {.from = prev.id, .to = m->id, .kind = MN_EDGE_TEMPORAL,
                         .weight = temporal_weight(m->when_ms - prev.when, temporal_window_ms)};
            mn_err rc = push(edges, n, cap, &e);
            if (rc) return rc;
        }
        if (link_next) {
            mn_edge e = {.from = m->id, .to = next.id, .kind = MN_EDGE_TEMPORAL,
                         .weight = temporal_weight(next.when - m->when_ms, temporal_window_ms)};
            mn_err rc = push(edges, n, cap, &e);
            if (rc) return rc;
        }
    }
    return MN_OK;
}
