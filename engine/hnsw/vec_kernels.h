/* Distance kernels for the vector index and the exact path: float dot product
 * and squared euclidean distance, and their int8 counterparts for scalar
 * quantized vectors, in portable C and in AVX2+FMA / AVX-512 variants. A table
 * of kernels is chosen once (at index creation) by CPU detection; the
 * MNEMO_SIMD environment variable (scalar | avx2 | avx512) forces a level for
 * tests and benchmarks. Cosine spaces hold unit vectors, so cosine is a dot. */
#ifndef MN_VEC_KERNELS_H
#define MN_VEC_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { MN_SIMD_SCALAR = 0, MN_SIMD_AVX2 = 1, MN_SIMD_AVX512 = 2 } mn_simd_level_t;
#define MN_SIMD_LEVELS 3

typedef float (*mn_vdist_fn)(const float *a, const float *b, size_t n);
typedef int32_t (*mn_vdist_i8_fn)(const int8_t *a, const int8_t *b, size_t n);

typedef struct mn_vec_kernels {
    const char *name; /* "scalar", "avx2", "avx512" */
    mn_simd_level_t level;
    mn_vdist_fn dot;        /* sum a[i] * b[i] */
    mn_vdist_fn l2sq;       /* sum (a[i] - b[i])^2 */
    mn_vdist_i8_fn dot_i8;  /* exact integer sum; n <= 65536 cannot overflow */
    mn_vdist_i8_fn l2sq_i8; /* exact integer sum of squared differences */
} mn_vec_kernels_t;

/* The kernels of one level, or NULL when this CPU (or build) lacks it. */
const mn_vec_kernels_t *mn_vec_kernels_for(mn_simd_level_t level);
/* The best level this CPU supports, or the one MNEMO_SIMD names when it is
 * supported (an unknown or unsupported value falls back to detection). */
const mn_vec_kernels_t *mn_vec_kernels_best(void);

#endif
