/* Vector helpers of the engine. The kernels are engine/hnsw's (vec_kernels.c),
 * one implementation for the index and the engine: the portable ones have a
 * fixed summation order, so their results are the same bits on every machine,
 * which consolidation relies on (two nodes must compute byte-identical
 * semantic memories); ranking uses the fastest ones this CPU has, chosen once. */
#include "vec.h"

#include "hnsw/vec_kernels.h"

#include <math.h>
#include <pthread.h>

static const mn_vec_kernels_t *fast;
static pthread_once_t fast_once = PTHREAD_ONCE_INIT;

static void pick_fast(void)
{
    fast = mn_vec_kernels_best();
}

bool mn__vec_normalize(float *v, uint32_t dim)
{
    double s = 0;
    for (uint32_t i = 0; i < dim; i++)
        s += (double)v[i] * v[i];
    if (!(s > 0) || !isfinite(s)) return false;
    float inv = (float)(1.0 / sqrt(s));
    for (uint32_t i = 0; i < dim; i++)
        v[i] *= inv;
    return true;
}

float mn__vec_dot(const float *a, const float *b, uint32_t dim)
{
    return mn_vec_kernels_for(MN_SIMD_SCALAR)->dot(a, b, dim);
}

float mn__vec_dot_fast(const float *a, const float *b, uint32_t dim)
{
    pthread_once(&fast_once, pick_fast);
    return fast->dot(a, b, dim);
}

float mn__vec_l2sq_fast(const float *a, const float *b, uint32_t dim)
{
    pthread_once(&fast_once, pick_fast);
    return fast->l2sq(a, b, dim);
}

float mn__vec_score(mn_metric_t m, const float *q, const float *v, uint32_t dim, float *dist)
{
    float score = 0, d = 0;
    switch (m) {
    case MN_METRIC_COSINE:
        score = mn__vec_dot_fast(q, v, dim);
        d = 1.0f - score;
        break;
    case MN_METRIC_DOT:
        score = mn__vec_dot_fast(q, v, dim);
        d = -score;
        break;
    case MN_METRIC_L2:
        d = sqrtf(mn__vec_l2sq_fast(q, v, dim));
        score = 1.0f / (1.0f + d);
        break;
    }
    if (dist) *dist = d;
    return score;
}

float mn__vec_match(mn_metric_t m, float score)
{
    if (m == MN_METRIC_L2) return score; /* already 1 / (1 + d) */
    return score < 0 ? 0 : score > 1 ? 1 : score;
}
