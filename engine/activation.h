/* Spreading activation over a space's associations (caller holds the read lock). */
#ifndef MN_ENGINE_ACTIVATION_H
#define MN_ENGINE_ACTIVATION_H

#include "space.h"

typedef struct mn__act_node {
    uint32_t slot;
    mn_id_t id;
    float base; /* the cue's own score in [0, 1] */
    float act;  /* activation: base <= act <= 1 (at most the best source's) */
    bool seed;
    int32_t parent; /* index of the node the activation came from; -1 while act == base */
    uint8_t kind;   /* edge kind from the parent */
    float weight;   /* edge weight from the parent */
} mn__act_node;

typedef struct mn__spread_params {
    uint32_t max_hops;
    float hop_decay;
    float min_activation;
    uint32_t max_visited;
    uint32_t kinds; /* bit (1 << kind) set: edges of that kind spread */
    /* A memory whose activation is below this does not fire: the caller's
     * k-th best base, so what it could offer (at most its own activation) can
     * never reach the top k, nor can anything it would raise pass it on
     * further. 0 = every memory fires. */
    float fire_floor;
} mn__spread_params;

/* The cue's own score in [0, 1] of a memory that is not a seed (it was not in
 * the cue's ranking): 0 when the cue cannot score it. */
typedef float (*mn__base_fn)(void *arg, uint32_t slot);

/* The fan factor of a memory with n associations of one kind: the share of
 * ACT-R's associative strength S - ln(n) left, (S - ln n) / S with S = ln 64;
 * 1 for n <= 1, 0 from 64 on. */
float mn__fan_factor(uint32_t n);

/* Seeds are (slot, base) pairs, best first. Returns every node that took part,
 * seeds first in the given order; *out is malloc'd. Only live memories that
 * pass the filter are activated; a memory reached that is not a seed gets its
 * base from base_of. Hop-synchronous with a max, so the result does not depend
 * on the order edges were added (docs/recall.md §4). */
mn_err mn__spread(const mn__space *sp, const mn_filter_t *f, int64_t now, const uint32_t *seeds,
                  const float *seed_base, size_t n_seeds, mn__base_fn base_of, void *base_arg,
                  const mn__spread_params *p, mn__act_node **out, size_t *n_out);

#endif
