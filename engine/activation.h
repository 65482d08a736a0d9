/* Spreading activation over a space's associations (caller holds the read lock). */
#ifndef MN_ENGINE_ACTIVATION_H
#define MN_ENGINE_ACTIVATION_H

#include "space.h"

typedef struct mn__act_node {
    uint32_t slot;
    mn_id_t id;
    float act; /* activation (>= 0; may exceed 1 where paths add up) */
    bool seed;
    int32_t parent; /* index of the node that contributed most when first reached; -1 for seeds */
    uint8_t kind;   /* edge kind from the parent */
    float weight;   /* edge weight from the parent */
} mn__act_node;

typedef struct mn__spread_params {
    uint32_t max_hops;
    float hop_decay;
    float min_activation;
    uint32_t max_visited;
} mn__spread_params;

/* Seeds are (slot, activation) pairs. Returns every node that took part, seeds
 * first in the given order; *out is malloc'd. Only live memories that pass the
 * filter are activated. Hop-synchronous, so the result does not depend on the
 * order edges were added. */
mn_err mn__spread(const mn__space *sp, const mn_filter_t *f, int64_t now, const uint32_t *seeds,
                  const float *seed_act, size_t n_seeds, const mn__spread_params *p,
                  mn__act_node **out, size_t *n_out);

#endif
