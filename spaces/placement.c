/* The desired placement: rendezvous hashing with bounded loads and zone spread.
 *
 * For each space, the members are ranked by mn_spaces_score (place_hash.c).
 * Pure HRW takes the top k = min(factor, members); its loads are binomial, so
 * at 10 000 spaces over 20 nodes the fullest node holds ~10 % more primaries
 * than the mean. To keep imbalance within the slack whatever the draw, the
 * ranking is walked with caps (consistent hashing with bounded loads,
 * Mirrokni, Thorup, Zadimoghaddam, SODA 2018): a node takes at most
 * ceil((1 + slack) * mean) copies and as many primaries, and spaces are
 * served in the order of their hash, so the result is still a pure function
 * of the set of names and the view. A member's arrival or departure moves
 * about k/N of the copies plus the few that the caps push on (measured by
 * test_spaces_placement).
 *
 * Zones: after the primary, the walk first takes the best-ranked node of each
 * zone not yet used, then the rest by rank, so the k copies span
 * min(k, zones) zones. A member without a zone is a zone of its own.
 *
 * Draining members (mnemo admin drain) are left out of the ranking, the caps
 * and k: they are given no desired copy (unless every member drains, then
 * the ranking takes them all), so the step moves their copies away.
 *
 * Invariants: every plan names k distinct members, none draining while one
 * is not; a node's copies never exceed its cap unless every node is at its
 * cap (impossible: the caps sum to at least the copies; checked). */
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"
#include "placement.h"

static int member_cmp(const void *a, const void *b)
{
    const mn_spaces_member_t *x = a, *y = b;
    return strcmp(x->id, y->id);
}

static bool label_ok(const char *s, size_t max, bool may_be_empty)
{
    if (!s) return may_be_empty;
    size_t n = strnlen(s, max + 1);
    if (n == 0) return may_be_empty;
    if (n > max) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return mn_utf8_valid(s, n);
}

/* Zone numbers: 0 for none, else 1 + the index of the first member (in id
 * order) with the same label. */
static void number_zones(mn__place_view *v)
{
    for (size_t i = 0; i < v->n; i++) {
        const char *z = v->m[i].zone;
        v->zone[i] = 0;
        if (!z || !*z) continue;
        v->zone[i] = (uint32_t)i + 1;
        for (size_t j = 0; j < i; j++)
            if (v->zone[j] && strcmp(v->m[j].zone, z) == 0) {
                v->zone[i] = v->zone[j];
                break;
            }
    }
}

mn_err mn__place_view_make(const mn_spaces_member_t *view, size_t n, mn__place_view *out,
                           mn_error *err)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        if (!label_ok(view[i].id, MN_SPACES_NODE_MAX, false))
            return mn_error_set(err, MN_ERR_INVALID, "view: member %zu: bad node id", i);
        if (!label_ok(view[i].zone, MN_SPACES_ZONE_MAX, true))
            return mn_error_set(err, MN_ERR_INVALID, "view: member %zu: bad zone", i);
    }
    out->n = n;
    out->m = malloc((n ? n : 1) * sizeof *out->m);
    out->hash = malloc((n ? n : 1) * sizeof *out->hash);
    out->zone = malloc((n ? n : 1) * sizeof *out->zone);
    if (!out->m || !out->hash || !out->zone) {
        mn__place_view_free(out);
        return mn_error_set(err, MN_ERR_NOMEM, "view: out of memory");
    }
    if (n) memcpy(out->m, view, n * sizeof *view);
    qsort(out->m, n, sizeof *out->m, member_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i && strcmp(out->m[i - 1].id, out->m[i].id) == 0) {
            mn__place_view_free(out);
            return mn_error_set(err, MN_ERR_INVALID, "view: duplicate node id");
        }
        out->hash[i] = mn_spaces_hash(out->m[i].id, strlen(out->m[i].id));
    }
    number_zones(out);
    for (size_t i = 0; i < n; i++)
        out->n_eligible += !out->m[i].draining;
    if (out->n_eligible == 0) out->n_eligible = n; /* every member drains: none does */
    return MN_OK;
}

void mn__place_view_free(mn__place_view *v)
{
    free(v->m);
    free(v->hash);
    free(v->zone);
    memset(v, 0, sizeof *v);
}

size_t mn__place_view_eligible(const mn__place_view *v)
{
    return v->n_eligible;
}

bool mn__place_view_takes(const mn__place_view *v, size_t i)
{
    return !v->m[i].draining || v->n_eligible == v->n;
}

long mn__place_view_find(const mn__place_view *v, const char *id)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(v->m[mid].id, id);
        if (c == 0) return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* ---- the plan ---- */

typedef struct ranked {
    uint64_t score;
    uint32_t node;
} ranked;

static int ranked_cmp(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return x->node < y->node ? -1 : x->node > y->node;
}

typedef struct plan_state {
    const mn__place_view *v;
    size_t n_rank; /* the members ranked: the ones not draining */
    size_t k;
    uint64_t cap_copies, cap_primaries;
    uint64_t *copies, *primaries;
    ranked *rank;
} plan_state;

static bool chosen(const uint32_t *out, size_t n, uint32_t node)
{
    for (size_t i = 0; i < n; i++)
        if (out[i] == node) return true;
    return false;
}

static bool zone_used(const plan_state *s, const uint32_t *out, size_t n, uint32_t node)
{
    uint32_t z = s->v->zone[node];
    if (z == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (s->v->zone[out[i]] == z) return true;
    return false;
}

static uint32_t pick_primary(const plan_state *s)
{
    for (size_t i = 0; i < s->n_rank; i++) {
        uint32_t nd = s->rank[i].node;
        if (s->primaries[nd] < s->cap_primaries && s->copies[nd] < s->cap_copies) return nd;
    }
    for (size_t i = 0; i < s->n_rank; i++)
        if (s->copies[s->rank[i].node] < s->cap_copies) return s->rank[i].node;
    return s->rank[0].node;
}

/* Replicas: pass 0 new zones under the cap, pass 1 any node under the cap,
 * pass 2 any node. */
static size_t pick_replicas(const plan_state *s, uint32_t *out, size_t n)
{
    for (int pass = 0; pass < 3 && n < s->k; pass++)
        for (size_t i = 0; i < s->n_rank && n < s->k; i++) {
            uint32_t nd = s->rank[i].node;
            if (chosen(out, n, nd)) continue;
            if (pass < 2 && s->copies[nd] >= s->cap_copies) continue;
            if (pass == 0 && zone_used(s, out, n, nd)) continue;
            out[n++] = nd;
        }
    return n;
}

static void plan_space(plan_state *s, const char *name, uint32_t *out, uint8_t *count)
{
    uint64_t sh = mn_spaces_hash(name, strlen(name));
    size_t r = 0;
    for (size_t i = 0; i < s->v->n; i++)
        if (s->n_rank == s->v->n || !s->v->m[i].draining)
            s->rank[r++] = (ranked){mn_spaces_score(sh, s->v->hash[i]), (uint32_t)i};
    mn_assert(r == s->n_rank);
    qsort(s->rank, r, sizeof *s->rank, ranked_cmp);
    out[0] = pick_primary(s);
    size_t n = pick_replicas(s, out, 1);
    mn_assert(n == s->k);
    s->primaries[out[0]]++;
    for (size_t i = 0; i < n; i++)
        s->copies[out[i]]++;
    *count = (uint8_t)n;
}

static uint64_t cap_of(double slack, uint64_t total, size_t nodes)
{
    double c = (1.0 + slack) * (double)total / (double)nodes;
    uint64_t cap = (uint64_t)c;
    if ((double)cap < c) cap++;
    return cap ? cap : 1;
}

typedef struct order_item {
    uint64_t hash;
    size_t entry;
} order_item;

/* Spaces in the order they are served: by hash, then by name (the table is
 * sorted by name, so by entry index). */
static int order_cmp(const void *a, const void *b)
{
    const order_item *x = a, *y = b;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    return x->entry < y->entry ? -1 : x->entry > y->entry;
}

size_t *mn__place_order(const mn_spaces_table_t *t)
{
    size_t n = t->n ? t->n : 1;
    order_item *items = malloc(n * sizeof *items);
    size_t *out = malloc(n * sizeof *out);
    if (!items || !out) {
        free(items);
        free(out);
        return NULL;
    }
    for (size_t i = 0; i < t->n; i++)
        items[i] = (order_item){mn_spaces_hash(t->entries[i].name, strlen(t->entries[i].name)), i};
    qsort(items, t->n, sizeof *items, order_cmp);
    for (size_t i = 0; i < t->n; i++)
        out[i] = items[i].entry;
    free(items);
    return out;
}

mn_err mn__place_plan_make(const mn_spaces_table_t *t, const mn__place_view *v,
                           const mn_spaces_opts_t *o, mn__place_plan *out)
{
    memset(out, 0, sizeof *out);
    size_t n = t->n ? t->n : 1, nn = v->n ? v->n : 1;
    out->count = calloc(n, sizeof *out->count);
    out->nodes = calloc(n * MN_SPACES_RF_MAX, sizeof *out->nodes);
    plan_state s = {.v = v};
    s.copies = calloc(nn, sizeof *s.copies);
    s.primaries = calloc(nn, sizeof *s.primaries);
    s.rank = malloc(nn * sizeof *s.rank);
    size_t *order = mn__place_order(t);
    mn_err rc = MN_OK;
    if (!out->count || !out->nodes || !s.copies || !s.primaries || !s.rank || !order) {
        rc = MN_ERR_NOMEM;
        goto out;
    }
    if (v->n == 0) goto out;
    s.n_rank = mn__place_view_eligible(v);
    s.k = (size_t)o->replication_factor < s.n_rank ? (size_t)o->replication_factor : s.n_rank;
    s.cap_copies = cap_of(o->balance_slack, (uint64_t)t->n * s.k, s.n_rank);
    s.cap_primaries = cap_of(o->balance_slack, (uint64_t)t->n, s.n_rank);
    mn_assert(s.cap_copies * s.n_rank >= (uint64_t)t->n * s.k);
    for (size_t i = 0; i < t->n; i++) {
        size_t e = order[i];
        plan_space(&s, t->entries[e].name, &out->nodes[e * MN_SPACES_RF_MAX], &out->count[e]);
    }
out:
    free(s.copies);
    free(s.primaries);
    free(s.rank);
    free(order);
    if (rc != MN_OK) mn__place_plan_free(out);
    return rc;
}

void mn__place_plan_free(mn__place_plan *p)
{
    free(p->count);
    free(p->nodes);
    memset(p, 0, sizeof *p);
}

mn_err mn__place_prepare(const mn_spaces_table_t *t, const mn_spaces_member_t *view, size_t n_view,
                         const mn_spaces_opts_t *o, mn__place_view *v, mn__place_plan *p,
                         mn_error *err)
{
    mn_err rc = mn_spaces_opts_check(o, err);
    if (rc != MN_OK) return rc;
    rc = mn__place_view_make(view, n_view, v, err);
    if (rc != MN_OK) return rc;
    rc = mn__place_plan_make(t, v, o, p);
    if (rc != MN_OK) {
        mn__place_view_free(v);
        return mn_error_set(err, rc, "placement: out of memory");
    }
    return MN_OK;
}
