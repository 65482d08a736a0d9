/* Merging the answers of many spaces into one ranking, and the confidence penalty for the
 * spaces that did not answer (docs/recall.md §11). A leaf: answers in, one result out.
 *
 * Merge: every hit keeps the score its own space gave it (the same as a single-space recall
 * with the same cue), so the merged ranking is the spaces' answers merged by score; ties go
 * to the smaller id, then to the space that comes first in the plan, so the order is total
 * and the same on every run. A memory id seen twice (a space listed twice by a holder, a
 * memory present in two spaces) is kept once, at its best place. The merged list is checked
 * to be in that order (mn_assert_debug) where it is made.
 *
 * Stand-ins (a missing space's gossiped semantic memories, issue 18) rank after every hit of
 * a space's own answer, among themselves by their score. Their score is on another scale
 * (the mean of a cosine and a word coverage, about 0.5 to 1) than a real hybrid recall's
 * (reciprocal rank fusion, about 0.03), and no map between the two is exact: a stand-in
 * matched only a space's consolidated summary, so it goes where it cannot push a real
 * answer out of the top k.
 *
 * Missing spaces: every confidence is multiplied by 0.5 + 0.5 r, r the share of the data
 * (live memories) held by the spaces that answered. At r = 1 nothing changes; at r -> 0 a
 * result keeps half its confidence: it still matches the cue as well as it did (that part
 * is measured), but the best answer may be in what was not searched. The same floor of one
 * half the engine gives a fully forgotten memory (retention) and a superseded one. Engram's
 * max(c (1 - 0.5 (1 - r)), 0.5 c) is the same line, since 1 - 0.5 (1 - r) >= 0.5 for r in
 * [0, 1]; where it takes r as a share of partitions, this weighs them by what they hold, so
 * a missing empty space costs nothing and a missing space holding most memories costs
 * nearly the whole half. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"
#include "mnemo/query.h"

float mn_query_reachable(const double *weights, const bool *answered, size_t n)
{
    double known_sum = 0;
    size_t known = 0;
    for (size_t i = 0; weights && i < n; i++)
        if (weights[i] >= 0) {
            known_sum += weights[i];
            known++;
        }
    /* an unknown weight counts as the mean of the known ones (1 when none is known) */
    double unknown_w = known ? known_sum / (double)known : 1.0;
    double total = 0, got = 0;
    for (size_t i = 0; i < n; i++) {
        double w = weights ? (weights[i] >= 0 ? weights[i] : unknown_w) : 1.0;
        total += w;
        if (answered[i]) got += w;
    }
    if (!(total > 0)) return 1.0f;
    float r = (float)(got / total);
    mn_assert(r >= 0.0f && r <= 1.0f);
    return r;
}

float mn_query_missing_factor(float reachable)
{
    float r = reachable > 0 ? (reachable < 1 ? reachable : 1) : 0; /* NaN: 0 */
    return 0.5f + 0.5f * r;
}

void mn_query_confidence_missing(mn_confidence_t *c, float reachable)
{
    c->value *= mn_query_missing_factor(reachable);
    c->reasons |= MN_REASON_MISSING_PARTITION;
    c->category = mn_confidence_category(c->value);
}

typedef struct ranked {
    mn_recall_hit_t *hit;
    uint32_t space;
    bool stand_in; /* from a stand-in's answer (mn_query_answer_t.missing set) */
} ranked;

/* best first: the spaces' own hits before the stand-ins', then score descending (NaN last),
 * id ascending, space ascending */
static int cmp_ranked(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->stand_in != b->stand_in) return a->stand_in ? 1 : -1;
    float sa = a->hit->score, sb = b->hit->score;
    bool na = isnan(sa), nb = isnan(sb);
    if (na != nb) return na ? 1 : -1;
    if (!na && sa != sb) return sa > sb ? -1 : 1;
    int c = memcmp(a->hit->memory.id.b, b->hit->memory.id.b, sizeof a->hit->memory.id.b);
    if (c) return c;
    return a->space < b->space ? -1 : a->space > b->space;
}

static void hit_free(mn_recall_hit_t *h)
{
    mn_memory_clear(&h->memory);
    free(h->duplicate_ids);
    h->duplicate_ids = NULL;
}

static bool seen_before(const mn_query_result_t *out, const mn_recall_hit_t *h)
{
    for (size_t i = 0; i < out->n_hits; i++)
        if (!memcmp(out->hits[i].memory.id.b, h->memory.id.b, sizeof h->memory.id.b)) return true;
    return false;
}

#ifndef NDEBUG
/* Is out's list strictly in cmp_ranked's order? (O(n): Debug builds) */
static bool merged_in_order(const mn_query_answer_t *answers, const mn_query_result_t *out)
{
    for (size_t i = 1; i < out->n_hits; i++) {
        uint32_t x = out->hit_space[i - 1], y = out->hit_space[i];
        ranked a = {&out->hits[i - 1], x, answers[x].missing != NULL};
        ranked b = {&out->hits[i], y, answers[y].missing != NULL};
        if (cmp_ranked(&a, &b) >= 0) return false;
    }
    return true;
}
#endif

mn_err mn_query_merge(mn_query_answer_t *answers, size_t n, uint32_t k, mn_query_result_t *out,
                      mn_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (answers[i].rc == MN_OK) total += answers[i].res.n_hits;
    ranked *all = calloc(total ? total : 1, sizeof *all);
    size_t keep = total < k ? total : k;
    out->hits = calloc(keep ? keep : 1, sizeof *out->hits);
    out->hit_space = calloc(keep ? keep : 1, sizeof *out->hit_space);
    if (!all || !out->hits || !out->hit_space) {
        free(all);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; answers[i].rc == MN_OK && j < answers[i].res.n_hits; j++)
            all[m++] = (ranked){&answers[i].res.hits[j], (uint32_t)i, answers[i].missing != NULL};
    mn_assert(m == total);
    if (m) qsort(all, m, sizeof *all, cmp_ranked);
    for (size_t i = 0; i < m; i++) {
        if (out->n_hits < keep && !seen_before(out, all[i].hit)) {
            out->hits[out->n_hits] = *all[i].hit;
            out->hit_space[out->n_hits++] = all[i].space;
        } else {
            hit_free(all[i].hit);
        }
        memset(all[i].hit, 0, sizeof *all[i].hit); /* moved or freed: the answer keeps none */
    }
    mn_assert_debug(merged_in_order(answers, out));
    for (size_t i = 0; i < n; i++)
        if (answers[i].rc == MN_OK) mn_recall_result_clear(&answers[i].res); /* hits now empty */
    free(all);
    return MN_OK;
}
