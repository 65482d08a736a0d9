/* Spreading activation (Collins & Loftus, "A spreading-activation theory of
 * semantic processing", 1975), ranked by evidence (docs/recall.md §4).
 *
 * Every memory has a base: the cue's own score in [0, 1]. An association
 * j -> i lends i a share S_ji of the evidence j has and i lacks:
 *
 *   a_i = max(base_i, max_j (1 - S_ji) * base_i + S_ji * a_j)
 *   S_ji = hop_decay * w_ji * fan(n_j^kind)     (x 0.5 backwards in time)
 *
 * fan(n) = (S - ln n) / S with S = ln 64 (clamped to [0, 1]) is ACT-R's
 * associative strength S - ln(fan) (Anderson & Reder, "The fan effect: new
 * results and new theories", JEP: General 1999) as a share of its maximum,
 * with the fan counted per edge kind: j's temporal neighbours compete with
 * each other, not with the memories it is similar to. Temporal links pass half
 * as much backwards as forwards, after the forward asymmetry of the temporal
 * contiguity effect (Kahana, "Associative retrieval processes in free recall",
 * Memory & Cognition 1996).
 *
 * The max (not a sum) is the point: evidence from near-duplicates is one
 * piece of evidence, not twenty, so a dense cluster cannot lift its members
 * by its size; and a_i is a mix of i's own base and a source's activation, so
 * it never exceeds the best source's: nothing reached through associations
 * outranks the memory it came from, and a memory is never lowered.
 *
 * Rounds are synchronous: a round's contributions are computed from the
 * activations at its start, then the best one per memory is kept, so the
 * outcome does not depend on adjacency order. The seeds fire in the first
 * round; a memory fires in the round after its activation rose (so a path of
 * at most max_hops edges is followed). A rise smaller than min_activation
 * above the memory's base is ignored, and at most max_visited memories take
 * part. Edges of a kind left out of p->kinds do not spread (recall leaves out
 * semantic links for an embedding cue), and a memory below p->fire_floor does
 * not fire (recall's k-th best base: what it could start never reaches the
 * top k). A memory takes a parent only by rising, to at most the parent's
 * activation, so following parents never comes back to a memory (no cycles). */
#include "activation.h"

#include "filter.h"

#include "mnemo/assert.h"

#include <math.h>
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
    float best; /* the best candidate activation this round (0: none) */
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
    mn__base_fn base_of;
    void *base_arg;
    uint32_t cap;        /* nodes at most */
    mn__act_node *nodes; /* every node that took part, seeds first */
    size_t n;
    contrib *pend;      /* per node: this round's best contribution */
    uint32_t *frontier; /* nodes firing this round */
    uint32_t *next;     /* nodes firing next round */
    size_t nf;
    float *start; /* per node: activation at the start of the round */
    smap m;       /* slot -> node */
} spread;

#define FAN_S 4.158883f /* ln 64 */

float mn__fan_factor(uint32_t n)
{
    if (n <= 1) return 1.0f;
    float f = (FAN_S - logf((float)n)) / FAN_S;
    return f > 0 ? f : 0;
}

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

static float clamp01(float x)
{
    return x > 0 ? (x < 1 ? x : 1) : 0; /* NaN: 0 */
}

/* The seeds, each slot once, fire in the first round. */
static void add_seeds(spread *s, const uint32_t *seeds, const float *seed_base, size_t n_seeds)
{
    for (size_t i = 0; i < n_seeds; i++) {
        bool found;
        uint32_t *v = smap_slot(&s->m, seeds[i], &found);
        if (found) continue;
        *v = (uint32_t)s->n;
        float b = clamp01(seed_base[i]);
        s->nodes[s->n] = (mn__act_node){seeds[i], s->sp->slots[seeds[i]].id, b, b, true, -1, 0, 0};
        s->pend[s->n] = (contrib){0, -1, 0, 0};
        s->frontier[s->nf++] = (uint32_t)s->n;
        s->n++;
    }
}

/* The node of slot vs, made when first reached with base b; false at the visit cap. */
static bool node_new(spread *s, uint32_t vs, float b, uint32_t *vi)
{
    if (s->n >= s->cap) return false;
    bool found;
    uint32_t *v = smap_slot(&s->m, vs, &found);
    mn_assert(!found);
    *vi = (uint32_t)s->n;
    *v = *vi;
    s->nodes[s->n] = (mn__act_node){vs, s->sp->slots[vs].id, b, b, false, -1, 0, 0};
    s->pend[s->n] = (contrib){0, -1, 0, 0};
    s->start[s->n] = b;
    s->n++;
    return true;
}

/* Node u (firing with activation a_u) offers each associate v the mix
 * (1 - S) base_v + S a_u; it counts when it rises min_activation above base_v. */
static void fire(spread *s, uint32_t ui, float a_u)
{
    const mn__slot *su = &s->sp->slots[s->nodes[ui].slot];
    uint32_t fan[MN_EDGE_KINDS] = {0};
    for (uint32_t j = 0; j < su->n_adj; j++)
        if (su->adj[j].kind < MN_EDGE_KINDS) fan[su->adj[j].kind]++;
    for (uint32_t j = 0; j < su->n_adj; j++) {
        const mn__adj *ad = &su->adj[j];
        if (ad->kind >= MN_EDGE_KINDS || !(s->p->kinds & (1u << ad->kind))) continue;
        float strength = s->p->hop_decay * ad->weight * mn__fan_factor(fan[ad->kind]);
        if (ad->kind == MN_EDGE_TEMPORAL && !ad->out) strength *= 0.5f;
        if (strength > 1) strength = 1;
        /* the most any associate can gain: from a base of 0 */
        if (!(strength * a_u >= s->p->min_activation)) continue;
        uint32_t vs = mn__space_find(s->sp, &ad->other);
        if (vs == UINT32_MAX || !mn__filter_match(&s->sp->slots[vs], s->f, s->now_ms)) continue;
        uint32_t vi;
        bool known = smap_get(&s->m, vs, &vi);
        float base =
            known ? s->nodes[vi].base : (s->base_of ? clamp01(s->base_of(s->base_arg, vs)) : 0);
        if (a_u <= base) continue; /* a source no better than v lends nothing */
        float c = base + strength * (a_u - base);
        if (c > a_u) c = a_u; /* rounding: never above the source */
        if (!(c - base >= s->p->min_activation)) continue;
        if (!known && !node_new(s, vs, base, &vi)) continue; /* visit cap reached */
        contrib *pc = &s->pend[vi];
        const mn_id_t *uid = &s->nodes[ui].id;
        if (c > pc->best ||
            (c == pc->best && pc->from >= 0 && mn_id_cmp(uid, &s->nodes[pc->from].id) < 0)) {
            pc->best = c;
            pc->from = (int32_t)ui;
            pc->kind = ad->kind;
            pc->weight = ad->weight;
        }
    }
}

/* One synchronous round: every frontier node fires from the activations at
 * the start of the round; then each memory keeps the best offer that raises
 * it, and those raised fire in the next round. */
static void hop(spread *s)
{
    for (size_t i = 0; i < s->n; i++) {
        s->pend[i] = (contrib){0, -1, 0, 0};
        s->start[i] = s->nodes[i].act;
    }
    for (size_t fi = 0; fi < s->nf; fi++)
        if (s->start[s->frontier[fi]] >= s->p->fire_floor)
            fire(s, s->frontier[fi], s->start[s->frontier[fi]]);
    size_t nn = 0;
    for (size_t i = 0; i < s->n; i++) {
        const contrib *pc = &s->pend[i];
        mn__act_node *nd = &s->nodes[i];
        if (pc->from < 0 || !(pc->best > nd->act)) continue;
        mn_assert(pc->best <= s->start[pc->from]);
        nd->act = pc->best;
        nd->parent = pc->from;
        nd->kind = pc->kind;
        nd->weight = pc->weight;
        s->next[nn++] = (uint32_t)i;
    }
    uint32_t *t = s->frontier;
    s->frontier = s->next;
    s->next = t;
    s->nf = nn;
}

mn_err mn__spread(const mn__space *sp, const mn_filter_t *f, int64_t now, const uint32_t *seeds,
                  const float *seed_base, size_t n_seeds, mn__base_fn base_of, void *base_arg,
                  const mn__spread_params *p, mn__act_node **out, size_t *n_out)
{
    spread s = {.sp = sp, .f = f, .now_ms = now, .p = p, .base_of = base_of, .base_arg = base_arg};
    s.cap = p->max_visited > n_seeds ? p->max_visited : (uint32_t)n_seeds;
    if (!spread_alloc(&s)) {
        spread_free(&s);
        return MN_ERR_NOMEM;
    }
    add_seeds(&s, seeds, seed_base, n_seeds);
    for (uint32_t h = 0; h < p->max_hops && s.nf; h++)
        hop(&s);
    *out = s.nodes;
    *n_out = s.n;
    s.nodes = NULL; /* handed out */
    spread_free(&s);
    return MN_OK;
}
