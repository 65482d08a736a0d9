/* cluster_query's hedge rule (docs/recall.md, "Hedging"): a node's frame is hedged after
 * min(p95, 3 medians) of its last answers, at least 1 ms, and after 50 ms while fewer than 8
 * answers are known. A noisy tail does not set the wait; a uniformly slow node is waited
 * for; the order of the samples does not matter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "api/cluster_query_internal.h"
#include "testutil.h"

#define MS 1000000LL

static void test_few_samples_wait_the_default(void **state)
{
    (void)state;
    int64_t v[CLQ_SAMPLES_MIN] = {0};
    for (uint32_t n = 0; n < CLQ_SAMPLES_MIN; n++)
        assert_int_equal(clq_hedge_wait_ns(v, n), CLQ_HEDGE_UNKNOWN_NS);
}

static void test_a_noisy_tail_is_capped_at_three_medians(void **state)
{
    (void)state;
    int64_t v[CLQ_SAMPLES];
    for (int i = 0; i < CLQ_SAMPLES; i++) /* 2 ms, and every 8th answer 40 ms */
        v[i] = i % 8 == 7 ? 40 * MS : 2 * MS;
    assert_int_equal(clq_hedge_wait_ns(v, CLQ_SAMPLES), 3 * 2 * MS);
}

static void test_a_tight_distribution_waits_its_p95(void **state)
{
    (void)state;
    int64_t v[20];
    for (int i = 0; i < 20; i++) /* 10..29 ms: p95 = 28 ms < 3 x 19 ms */
        v[i] = (10 + i) * MS;
    assert_int_equal(clq_hedge_wait_ns(v, 20), 28 * MS);
    for (int i = 0; i < 20; i++) { /* any order */
        int j = rand() % 20;
        int64_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
    assert_int_equal(clq_hedge_wait_ns(v, 20), 28 * MS);
}

static void test_a_fast_node_waits_the_floor(void **state)
{
    (void)state;
    int64_t v[CLQ_SAMPLES];
    for (int i = 0; i < CLQ_SAMPLES; i++)
        v[i] = 50000; /* 50 us */
    assert_int_equal(clq_hedge_wait_ns(v, CLQ_SAMPLES), CLQ_HEDGE_FLOOR_NS);
}

int main(void)
{
    srand(19);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_few_samples_wait_the_default),
        cmocka_unit_test(test_a_noisy_tail_is_capped_at_three_medians),
        cmocka_unit_test(test_a_tight_distribution_waits_its_p95),
        cmocka_unit_test(test_a_fast_node_waits_the_floor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
