/* Vector helpers of the engine (vec.c), over the kernels of engine/hnsw. A
 * leaf: it knows floats and metrics, nothing of spaces. */
#ifndef MN_ENGINE_VEC_H
#define MN_ENGINE_VEC_H

#include <stdbool.h>
#include <stdint.h>

#include "mnemo/model.h"

/* Normalises v in place to unit length; returns false for a zero vector. */
bool mn__vec_normalize(float *v, uint32_t dim);
/* Fixed-order portable kernel: bit-identical everywhere (consolidation). */
float mn__vec_dot(const float *a, const float *b, uint32_t dim);
/* The fastest kernels this CPU has (AVX2/AVX-512): for ranking. */
float mn__vec_dot_fast(const float *a, const float *b, uint32_t dim);
float mn__vec_l2sq_fast(const float *a, const float *b, uint32_t dim);
/* Similarity of query q to stored vector v for metric m (higher is better):
 * cosine = q.v (both unit), dot = q.v, l2 = 1 / (1 + |q - v|); *dist gets
 * the distance (1 - cos, -dot, |q - v|) when dist is not NULL. */
float mn__vec_score(mn_metric_t m, const float *q, const float *v, uint32_t dim, float *dist);
/* A score of mn__vec_score as a match in [0, 1] (l2 scores are in it already). */
float mn__vec_match(mn_metric_t m, float score);

#endif
