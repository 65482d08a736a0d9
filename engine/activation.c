/* Spreading activation (Collins & Loftus, "A spreading-activation theory of
 * semantic processing", 1975; as used for retrieval by ACT-R's associative
 * activation): activation starts at the memories the cue matched and flows
 * along associations, weakened by each edge's weight and a per-hop decay.
 *
 * Rounds are synchronous: every contribution of a round is computed from the
 * activations at the start of the round, then added, so the outcome does not
 * depend on adjacency order. Contributions below min_activation are dropped
 * and no more than max_visited memories take part. Activation is not capped
 * here (ranking needs the full sums; callers report it capped at 1).
 * Every memory fires once, with the activation it has when it fires: the
 * seeds in the first round, every other memory in the round after it was
 * first reached. So activation never echoes between two memories, and the
 * work is bounded by visited x degree. */
#include "activation.h"

#include "filter.h"

#include <stdlib.h>
#include <string.h>

typedef struct smap {
    uint32_t *keys; /* slot + 1, 0 = empty */
    uint32_t *vals;
    uint32_t cap;
} smap;

static bool smap_init(smap *m, uint32_t want)
{
    m->cap = 64;
    while (m->cap < want * 2)
        m->cap *= 2;
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->vals = malloc(m->cap * sizeof *m->vals);
    return m->keys && m->vals;
}

static uint32_t *smap_slot(smap *m, uint32_t key, bool *found)
{
    uint32_t mask = m->cap - 1;
    for (uint32_t i = (key * 2654435761u) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key + 1) {
            *found = true;
            return &m->vals[i];
        }
        if (!m->keys[i]) {
            *found = false;
            m->keys[i] = key + 1;
            return &m->vals[i];
        }
    }
}

static bool smap_get(const smap *m, uint32_t key, uint32_t *val)
{
    uint32_t mask = m->cap - 1;
    for (uint32_t i = (key * 2654435761u) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key + 1) {
            *val = m->vals[i];
            return true;
        }
        if (!m->keys[i]) return false;
    }
}

typedef struct contrib {
    float sum;
    float best;
    int32_t from;
    uint8_t kind;
    float weight;
} contrib;

mn_err mn__spread(const mn__space *sp, const mn_filter_t *f, int64_t now, const uint32_t *seeds,
                  const float *seed_act, size_t n_seeds, const mn__spread_params *p,
                  mn__act_node **out, size_t *n_out)
{
    uint32_t cap_nodes = p->max_visited > n_seeds ? p->max_visited : (uint32_t)n_seeds;
    mn__act_node *nodes = malloc((cap_nodes ? cap_nodes : 1) * sizeof *nodes);
    contrib *pend = calloc(cap_nodes ? cap_nodes : 1, sizeof *pend);
    uint32_t *frontier = malloc((cap_nodes ? cap_nodes : 1) * sizeof *frontier);
    uint32_t *next = malloc((cap_nodes ? cap_nodes : 1) * sizeof *next);
    float *start = malloc((cap_nodes ? cap_nodes : 1) * sizeof *start);
    smap m = {0};
    if (!nodes || !pend || !frontier || !next || !start || !smap_init(&m, cap_nodes)) {
        free(nodes);
        free(pend);
        free(frontier);
        free(next);
        free(start);
        free(m.keys);
        free(m.vals);
        return MN_ERR_NOMEM;
    }
    size_t n = 0, nf = 0;
    for (size_t i = 0; i < n_seeds; i++) {
        bool found;
        uint32_t *v = smap_slot(&m, seeds[i], &found);
        if (found) continue;
        *v = (uint32_t)n;
        nodes[n] = (mn__act_node){seeds[i], sp->slots[seeds[i]].id, seed_act[i], true, -1, 0, 0};
        frontier[nf++] = (uint32_t)n;
        n++;
    }
    for (uint32_t hop = 0; hop < p->max_hops && nf; hop++) {
        for (size_t i = 0; i < n; i++) {
            pend[i] = (contrib){0, 0, -1, 0, 0};
            start[i] = nodes[i].act;
        }
        size_t n_before = n;
        for (size_t fi = 0; fi < nf; fi++) {
            const mn__act_node *u = &nodes[frontier[fi]];
            float a_u = start[frontier[fi]];
            const mn__slot *su = &sp->slots[u->slot];
            for (uint32_t j = 0; j < su->n_adj; j++) {
                const mn__adj *ad = &su->adj[j];
                float c = a_u * ad->weight * p->hop_decay;
                /* temporal links spread forward twice as strongly as backward:
                 * the forward asymmetry of the temporal contiguity effect
                 * (Kahana, "Associative retrieval processes in free recall",
                 * Memory & Cognition 1996) */
                if (ad->kind == MN_EDGE_TEMPORAL && !ad->out) c *= 0.5f;
                if (c < p->min_activation) continue;
                uint32_t vs = mn__space_find(sp, &ad->other);
                if (vs == UINT32_MAX || !mn__filter_match(&sp->slots[vs], f, now)) continue;
                uint32_t vi;
                if (!smap_get(&m, vs, &vi)) {
                    if (n >= cap_nodes) continue; /* visit cap reached */
                    bool found;
                    uint32_t *v = smap_slot(&m, vs, &found);
                    vi = (uint32_t)n;
                    *v = vi;
                    nodes[n] = (mn__act_node){vs, sp->slots[vs].id, 0, false, -1, 0, 0};
                    pend[n] = (contrib){0, 0, -1, 0, 0};
                    start[n] = 0;
                    n++;
                }
                contrib *pc = &pend[vi];
                pc->sum += c;
                if (c > pc->best || (c == pc->best && pc->from >= 0 &&
                                     mn_id_cmp(&u->id, &nodes[pc->from].id) < 0)) {
                    pc->best = c;
                    pc->from = (int32_t)frontier[fi];
                    pc->kind = ad->kind;
                    pc->weight = ad->weight;
                }
            }
        }
        size_t nn = 0;
        for (size_t i = 0; i < n; i++) {
            if (pend[i].sum <= 0) continue;
            float before = start[i];
            float after = before + pend[i].sum;
            nodes[i].act = after;
            if (i >= n_before || (!nodes[i].seed && nodes[i].parent < 0)) {
                nodes[i].parent = pend[i].from;
                nodes[i].kind = pend[i].kind;
                nodes[i].weight = pend[i].weight;
            }
            /* each memory fires once: seeds in the first round, others in the
             * round after they are first reached (no echo back and forth) */
            if (i >= n_before) next[nn++] = (uint32_t)i;
        }
        uint32_t *t = frontier;
        frontier = next;
        next = t;
        nf = nn;
    }
    free(pend);
    free(frontier);
    free(next);
    free(start);
    free(m.keys);
    free(m.vals);
    *out = nodes;
    *n_out = n;
    return MN_OK;
}
