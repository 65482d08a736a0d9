/* Confidence of a recall result (docs/recall.md §6). */
#ifndef MN_ENGINE_CONFIDENCE_H
#define MN_ENGINE_CONFIDENCE_H

#include <stdbool.h>
#include <stddef.h>

#include "mnemo/model.h"

/* How far a memory's support vouches for it: 1 for an episode (or a semantic
 * memory without a support list), 1 - exp(-n / 3) for a semantic memory
 * supported by n episodes. */
float mn__support_factor(bool semantic, size_t n_support);

/* value = match x encoding x (0.5 + 0.5 retention) x support, each factor
 * clamped to [0, 1]; reasons name the factors that lowered it (the caller adds
 * MN_REASON_ASSOCIATIVE). */
void mn__confidence_of(float match, float encoding, float retention, float support,
                       mn_confidence_t *c);
/* An invalidated memory (another contradicts it): half the value, reason superseded. */
void mn__confidence_superseded(mn_confidence_t *c);

#endif
