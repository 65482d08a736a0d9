/* Associations between memories: the in-memory adjacency of a space and the
 * links made automatically when a memory is remembered.
 *
 * Each edge is kept on both endpoints (with its direction), so activation can
 * spread either way and forgetting a memory can drop the other halves. The
 * store holds one key per edge (sid | 'a' | from | to | kind); a memory's slot holds
 * its adjacency. Auto-links are computed on the caller's thread under the
 * space's read lock and travel inside the remember WAL entry, so replicas and
 * restarts see exactly the links the primary chose. */
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

static void adj_put(mn_slot *s, const mn_id_t *other, uint8_t kind, uint8_t out, float w)
{
    for (uint32_t i = 0; i < s->n_adj; i++) {
        mn_adj *a = &s->adj[i];
        if (a->kind == kind && a->out == out && !memcmp(a->other.b, other->b, 16)) {
            a->weight = w;
            return;
        }
    }
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
        /* the latest earlier episode of the same session (ties: larger id) */
        const mn_slot *prev = NULL;
        size_t n_sess = 0;
        const uint32_t *sess = mn_session_ix_slots(sp->sessions, m->session, &n_sess);
        for (size_t k = 0; k < n_sess; k++) {
            const mn_slot *s = &sp->slots[sess[k]];
            if (s->state != SLOT_LIVE || !s->session || strcmp(s->session, m->session)) continue;
            if (s->kind != MN_KIND_EPISODIC || s->when_ms > m->when_ms) continue;
            if (m->when_ms - s->when_ms > temporal_window_ms) continue;
            if (!prev || s->when_ms > prev->when_ms ||
                (s->when_ms == prev->when_ms && mn_id_cmp(&s->id, &prev->id) > 0))
                prev = s;
        }
        mn_id_t prev_id = {{0}};
        int64_t prev_when = 0;
        bool found = prev != NULL;
        if (prev) {
            prev_id = prev->id;
            prev_when = prev->when_ms;
        }
        /* earlier memories of the same request count too (a conversation sent as a batch) */
        for (size_t i = 0; i < n_batch; i++) {
            const mn_memory_t *b = &batch[i];
            if (!b->session || strcmp(b->session, m->session) || b->kind != MN_KIND_EPISODIC)
                continue;
            if (b->when_ms > m->when_ms || m->when_ms - b->when_ms > temporal_window_ms) continue;
            if (!found || b->when_ms > prev_when ||
                (b->when_ms == prev_when && mn_id_cmp(&b->id, &prev_id) > 0)) {
                prev_id = b->id;
                prev_when = b->when_ms;
                found = true;
            }
        }
        if (found) {
            float gap = (float)(m->when_ms - prev_when) / (float)temporal_window_ms;
            float w = 1.0f - 0.9f * gap; /* 1 for back-to-back turns, 0.1 at the window's edge */
            mn_edge e = {.from = prev_id, .to = m->id, .kind = MN_EDGE_TEMPORAL, .weight = w};
            mn_err rc = push(edges, n, cap, &e);
            if (rc) return rc;
        }
    }
    return MN_OK;
}
