/* Decay and strengthening of memories (decay.c): the forgetting curve and the
 * spacing effect. A leaf: pure functions of a memory's strength and time. */
#ifndef MN_ENGINE_DECAY_H
#define MN_ENGINE_DECAY_H

#include <stdint.h>

#include "slot.h"

/* Retention in [0, 1] after elapsed_ms for a stability in days (power-law curve). */
float mn__retention(float stability_days, int64_t elapsed_ms);
/* The strength after a recall at at_ms (spacing effect). */
mn_strength_t mn__reinforce(const mn_strength_t *cur, int64_t at_ms);
/* Initial stability of a memory of this importance. */
float mn__initial_stability(float initial_days, float importance);
/* A slot's current strength (caller holds the space's lock). */
void mn__slot_strength(const mn__slot *s, float initial_days, mn_strength_t *out);

#endif
