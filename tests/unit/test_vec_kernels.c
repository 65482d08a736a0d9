/* Distance kernels: every SIMD variant this CPU runs agrees with the portable
 * one (float within 1e-5 relative, int8 exactly) on random vectors of many
 * lengths, odd ones included; MNEMO_SIMD picks a level. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/hnsw/vec_kernels.h"
#include "mnemo/util.h"

static const size_t lengths[] = {1,    2,    3,    5,    7,    8,    9,    15,  16,  17,
                                 31,   32,   33,   63,   64,   65,   100,  127, 128, 129,
                                 255,  256,  257,  384,  511,  512,  513,  767, 768, 769,
                                 1000, 1023, 1024, 1536, 2049, 3071, 4095, 4096};
#define NLEN (sizeof lengths / sizeof lengths[0])

static void fill(mn_prng_t *p, float *v, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(mn_prng_double(p) * 2.0 - 1.0) * scale;
}

/* |x - ref| within 1e-5 of the magnitude the sum was built from (a dot of
 * mixed signs may cancel to ~0, where a plain relative error means nothing). */
static void assert_close(float x, float ref, double mag, const char *what, size_t n)
{
    double tol = 1e-5 * (mag > 1e-30 ? mag : 1e-30);
    if (fabs((double)x - ref) > tol) {
        print_error("%s n=%zu: %.9g vs scalar %.9g (tol %.3g)\n", what, n, x, ref, tol);
        fail();
    }
}

static void test_simd_variants_agree_with_scalar(void **state)
{
    (void)state;
    const mn_vec_kernels_t *ref = mn_vec_kernels_for(MN_SIMD_SCALAR);
    assert_non_null(ref);
    mn_prng_t p;
    mn_prng_seed(&p, 42);
    float *a = malloc(4096 * sizeof(float) + 64), *b = malloc(4096 * sizeof(float) + 64);
    int8_t *ia = malloc(4096 + 64), *ib = malloc(4096 + 64);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(ia);
    assert_non_null(ib);
    int tested = 0;
    for (int l = MN_SIMD_AVX2; l < MN_SIMD_LEVELS; l++) {
        const mn_vec_kernels_t *k = mn_vec_kernels_for((mn_simd_level_t)l);
        if (!k) {
            print_message("simd level %d not supported here: skipped\n", l);
            continue;
        }
        tested++;
        for (size_t li = 0; li < NLEN; li++) {
            size_t n = lengths[li];
            for (int rep = 0; rep < 4; rep++) {
                /* unaligned starts as well as aligned ones */
                float *x = a + rep, *y = b + (rep * 3) % 7;
                fill(&p, x, n, rep == 3 ? 1000.0f : 1.0f);
                fill(&p, y, n, rep == 3 ? 1000.0f : 1.0f);
                double mag_dot = 0, mag_l2 = 0;
                for (size_t i = 0; i < n; i++) {
                    mag_dot += fabs((double)x[i] * y[i]);
                    mag_l2 += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
                }
                assert_close(k->dot(x, y, n), ref->dot(x, y, n), mag_dot, k->name, n);
                assert_close(k->l2sq(x, y, n), ref->l2sq(x, y, n), mag_l2, k->name, n);
                int8_t *u = ia + rep, *w = ib + rep * 2;
                for (size_t i = 0; i < n; i++) {
                    u[i] = (int8_t)(mn_prng_below(&p, 255) - 127);
                    w[i] = (int8_t)(mn_prng_below(&p, 255) - 127);
                }
                if (rep == 2) /* extremes: -127 * -127 everywhere */
                    for (size_t i = 0; i < n; i++)
                        u[i] = w[i] = -127;
                assert_int_equal(k->dot_i8(u, w, n), ref->dot_i8(u, w, n));
                assert_int_equal(k->l2sq_i8(u, w, n), ref->l2sq_i8(u, w, n));
            }
        }
    }
    print_message("simd variants tested: %d\n", tested);
    free(a);
    free(b);
    free(ia);
    free(ib);
}

static void test_scalar_kernels_are_correct(void **state)
{
    (void)state;
    const mn_vec_kernels_t *k = mn_vec_kernels_for(MN_SIMD_SCALAR);
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {5, 4, 3, 2, 1};
    assert_true(k->dot(a, b, 5) == 35.0f);
    assert_true(k->l2sq(a, b, 5) == 40.0f);
    int8_t x[3] = {-127, 0, 127}, y[3] = {127, 5, 127};
    assert_int_equal(k->dot_i8(x, y, 3), -127 * 127 + 127 * 127);
    assert_int_equal(k->l2sq_i8(x, y, 3), 254 * 254 + 25);
}

static void test_env_override_selects_level(void **state)
{
    (void)state;
    setenv("MNEMO_SIMD", "scalar", 1);
    assert_string_equal(mn_vec_kernels_best()->name, "scalar");
    setenv("MNEMO_SIMD", "no-such-level", 1);
    const mn_vec_kernels_t *best = mn_vec_kernels_best();
    unsetenv("MNEMO_SIMD");
    assert_ptr_equal(best, mn_vec_kernels_best());
    if (mn_vec_kernels_for(MN_SIMD_AVX2)) {
        setenv("MNEMO_SIMD", "avx2", 1);
        assert_string_equal(mn_vec_kernels_best()->name, "avx2");
        unsetenv("MNEMO_SIMD");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_kernels_are_correct),
        cmocka_unit_test(test_simd_variants_agree_with_scalar),
        cmocka_unit_test(test_env_override_selects_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
