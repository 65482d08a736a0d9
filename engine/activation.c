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

/* One spread's working state. */
typedef struct spread {
    const mn__space *sp;
    const mn_filter_t *f;
    int64_t now_ms;
    const mn__spread_params *p;
    uint32_t cap;        /* nodes at most */
    mn__act_node *nodes; /* every node that took part, seeds first */
    size_t n;
    contrib *pend;      /* per node: this round's contributions */
    uint32_t *frontier; /* nodes firing this round */
    uint32_t *next;     /* nodes firing next round */
    size_t nf;
    float *start; /* per node: activation at the start of the round */
    smap m;       /* slot -> node */
} spread;

static bool spread_alloc(spread *s)
{
    uint32_t c = s->cap ? s->cap : 1;
    s->nodes = malloc(c * sizeof *s->nodes);
    s->pend = calloc(c, sizeof *s->pend);
    s->frontier = malloc(c * sizeof *s->frontier);
    s->next = malloc(c * sizeof *s->next);
    s->start = malloc(c * sizeof *s->start);
    return s->nodes && s->pend && s->frontier && s->next && s->start && smap_init(&s->m, s->cap);
}

/* Frees the working state; the nodes too unless they were handed out. */
static void spread_free(spread *s)
{
    free(s->nodes);
    free(s->pend);
    free(s->frontier);
    free(s->next);
    free(s->start);
    free(s->m.keys);
    free(s->m.vals);
}

/* The seeds, each slot once, fire in the first round. */
static void add_seeds(spread *s, const uint32_t *seeds, const float *seed_act, size_t n_seeds)
{
    for (size_t i = 0; i < n_seeds; i++) {
        bool found;
        uint32_t *v = smap_slot(&s->m, seeds[i], &found);
        if (found) continue;
        *v = (uint32_t)s->n;
        s->nodes[s->n] =
            (mn__act_node){seeds[i], s->sp->slots[seeds[i]].id, seed_act[i], true, -1, 0, 0};
        s->frontier[s->nf++] = (uint32_t)s->n;
        s->n++;
    }
}

/* The node of slot vs, made when first reached; false at the visit cap. */
static bool node_of(spread *s, uint32_t vs, uint32_t *vi)
{
    if (smap_get(&s->m, vs, vi)) return true;
    if (s->n >= s->cap) return false;
    bool found;
    uint32_t *v = smap_slot(&s->m, vs, &found);
    *vi = (uint32_t)s->n;
    *v = *vi;
    s->nodes[s->n] = (mn__act_node){vs, s->sp->slots[vs].id, 0, false, -1, 0, 0};
    s->pend[s->n] = (contrib){0, 0, -1, 0, 0};
    s->start[s->n] = 0;
    s->n++;
    return true;
}

/* Node u (firing with activation a_u) contributes along each of its edges. */
static void fire(spread *s, uint32_t ui, float a_u)
{
    const mn__act_node *u = &s->nodes[ui];
    const mn__slot *su = &s->sp->slots[u->slot];
    for (uint32_t j = 0; j < su->n_adj; j++) {
        const mn__adj *ad = &su->adj[j];
        float c = a_u * ad->weight * s->p->hop_decay;
        /* temporal links spread forward twice as strongly as backward:
         * the forward asymmetry of the temporal contiguity effect
         * (Kahana, "Associative retrieval processes in free recall",
         * Memory & Cognition 1996) */
        if (ad->kind == MN_EDGE_TEMPORAL && !ad->out) c *= 0.5f;
        if (c < s->p->min_activation) continue;
        uint32_t vs = mn__space_find(s->sp, &ad->other);
        if (vs == UINT32_MAX || !mn__filter_match(&s->sp->slots[vs], s->f, s->now_ms)) continue;
        uint32_t vi;
        if (!node_of(s, vs, &vi)) continue; /* visit cap reached */
        u = &s->nodes[ui];
        contrib *pc = &s->pend[vi];
        pc->sum += c;
        if (c > pc->best ||
            (c == pc->best && pc->from >= 0 && mn_id_cmp(&u->id, &s->nodes[pc->from].id) < 0)) {
            pc->best = c;
            pc->from = (int32_t)ui;
            pc->kind = ad->kind;
            pc->weight = ad->weight;
        }
    }
}

/* One synchronous round: every frontier node fires from the activations at
 * the start of the round, then the contributions are added. Each memory
 * fires once: seeds in the first round, others in the round after they are
 * first reached (no echo back and forth). */
static void hop(spread *s)
{
    for (size_t i = 0; i < s->n; i++) {
        s->pend[i] = (contrib){0, 0, -1, 0, 0};
        s->start[i] = s->nodes[i].act;
    }
    size_t n_before = s->n;
    for (size_t fi = 0; fi < s->nf; fi++)
        fire(s, s->frontier[fi], s->start[s->frontier[fi]]);
    size_t nn = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->pend[i].sum <= 0) continue;
        s->nodes[i].act = s->start[i] + s->pend[i].sum;
        if (i >= n_before || (!s->nodes[i].seed && s->nodes[i].parent < 0)) {
            s->nodes[i].parent = s->pend[i].from;
            s->nodes[i].kind = s->pend[i].kind;
            s->nodes[i].weight = s->pend[i].weight;
        }
        if (i >= n_before) s->next[nn++] = (uint32_t)i;
    }
    uint32_t *t = s->frontier;
    s->frontier = s->next;
    s->next = t;
    s->nf = nn;
}

mn_err mn__spread(const mn__space *sp, const mn_filter_t *f, int64_t now, const uint32_t *seeds,
                  const float *seed_act, size_t n_seeds, const mn__spread_params *p,
                  mn__act_node **out, size_t *n_out)
{
    spread s = {.sp = sp, .f = f, .now_ms = now, .p = p};
    s.cap = p->max_visited > n_seeds ? p->max_visited : (uint32_t)n_seeds;
    if (!spread_alloc(&s)) {
        spread_free(&s);
        return MN_ERR_NOMEM;
    }
    add_seeds(&s, seeds, seed_act, n_seeds);
    for (uint32_t h = 0; h < p->max_hops && s.nf; h++)
        hop(&s);
    *out = s.nodes;
    *n_out = s.n;
    s.nodes = NULL; /* handed out */
    spread_free(&s);
    return MN_OK;
}
