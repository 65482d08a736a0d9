/* Confidence of a recall result: how far to trust that this memory answers
 * the cue, in [0, 1], and what lowered it (ARCHITECTURE "Confidence is
 * explicit").
 *
 *   value = match x encoding x (0.5 + 0.5 R) x support
 *
 * match: the cue's match in [0, 1] (recall.c; with spreading, the activation
 * capped at 1); encoding: the memory's stored confidence (for a semantic
 * memory, the cohesion of its cluster); R: retention (decay.c): a fully
 * forgotten memory keeps half its confidence, so decay alone never makes a
 * good match worthless; support: 1 - exp(-n / 3) for a semantic memory of n
 * episodes (3 give 0.63, 7 give 0.90), 1 otherwise. The product is monotonic
 * in each factor. Each factor below its mark is a reason: match < 0.5
 * low_similarity, encoding < 0.9 low_encoding_confidence, R < 0.7 decayed,
 * support < 0.9 low_support (fewer than 7 episodes).
 *
 * A memory another one contradicts (invalidated, docs/api.md "Corrections") keeps its
 * place in the ranking but half its confidence, with the reason superseded. */
#include "confidence.h"

#include <math.h>

static float clamp01(float x)
{
    return x > 0 ? (x < 1 ? x : 1) : 0; /* NaN: 0 */
}

const char *mn_confidence_category(float value)
{
    return value >= 0.8f ? "high" : value >= 0.6f ? "medium" : value >= 0.3f ? "low" : "very_low";
}

float mn__support_factor(bool semantic, size_t n_support)
{
    if (!semantic || n_support == 0) return 1.0f;
    return (float)(1.0 - exp(-(double)n_support / 3.0));
}

void mn__confidence_of(float match, float encoding, float retention, float support,
                       mn_confidence_t *c)
{
    match = clamp01(match);
    encoding = clamp01(encoding);
    retention = clamp01(retention);
    support = clamp01(support);
    c->value = clamp01(match * encoding * (0.5f + 0.5f * retention) * support);
    c->reasons = 0;
    if (match < 0.5f) c->reasons |= MN_REASON_LOW_SIMILARITY;
    if (encoding < 0.9f) c->reasons |= MN_REASON_LOW_ENCODING_CONFIDENCE;
    if (retention < 0.7f) c->reasons |= MN_REASON_DECAYED;
    if (support < 0.9f) c->reasons |= MN_REASON_LOW_SUPPORT;
    c->category = mn_confidence_category(c->value);
}

void mn__confidence_superseded(mn_confidence_t *c)
{
    c->value *= 0.5f;
    c->reasons |= MN_REASON_SUPERSEDED;
    c->category = mn_confidence_category(c->value);
}
