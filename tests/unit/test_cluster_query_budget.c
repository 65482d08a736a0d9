/* cluster_query's hedge budget (docs/recall.md, "Hedge budget"): a token bucket that lets
 * hedged frames reach the configured share of first sends, plus one a second; it starts
 * full (10), never holds more, refuses a hedge when less than a token is left, and at 0 %
 * refuses every hedge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "api/cluster_query_internal.h"
#include "testutil.h"

#define S 1000000000LL

static int take_all(clq_budget *b, int64_t now)
{
    int n = 0;
    while (clq_budget_take(b, now))
        n++;
    return n;
}

static void test_a_fresh_budget_allows_a_burst_then_refuses(void **state)
{
    (void)state;
    clq_budget b;
    clq_budget_init(&b, 10, 5 * S);
    assert_int_equal(take_all(&b, 5 * S), (int)CLQ_BUDGET_BURST);
    assert_false(clq_budget_take(&b, 5 * S));
}

static void test_hedges_stay_within_the_share_of_first_sends(void **state)
{
    (void)state;
    clq_budget b;
    int64_t now = 0;
    clq_budget_init(&b, 10, now);
    take_all(&b, now); /* the burst spent: what follows is earned */
    int hedges = 0;
    for (int i = 0; i < 10000; i++) { /* 10,000 first sends in 1 s, a hedge wanted after each */
        now += S / 10000;
        clq_budget_sent(&b, now);
        hedges += clq_budget_take(&b, now);
    }
    /* 10 % of 10,000 plus the floor's one token over that second */
    assert_in_range(hedges, 1000, 1001);
}

static void test_a_quiet_node_still_hedges_at_the_floor(void **state)
{
    (void)state;
    clq_budget b;
    clq_budget_init(&b, 10, 0);
    take_all(&b, 0);
    assert_false(clq_budget_take(&b, S / 2)); /* half a token */
    assert_true(clq_budget_take(&b, S));      /* one a second, no send at all */
    assert_false(clq_budget_take(&b, S));
    assert_int_equal(take_all(&b, 1000 * S), (int)CLQ_BUDGET_BURST); /* never more than full */
}

static void test_sends_do_not_overfill_the_bucket(void **state)
{
    (void)state;
    clq_budget b;
    clq_budget_init(&b, 100, 0);
    for (int i = 0; i < 1000; i++)
        clq_budget_sent(&b, 0);
    assert_int_equal(take_all(&b, 0), (int)CLQ_BUDGET_BURST);
}

static void test_zero_percent_never_hedges(void **state)
{
    (void)state;
    clq_budget b;
    clq_budget_init(&b, 0, 0);
    for (int i = 0; i < 1000; i++)
        clq_budget_sent(&b, i * S);
    assert_false(clq_budget_take(&b, 2000 * S));
}

static void test_a_clock_going_back_adds_nothing(void **state)
{
    (void)state;
    clq_budget b;
    clq_budget_init(&b, 10, 100 * S);
    take_all(&b, 100 * S);
    assert_false(clq_budget_take(&b, 50 * S));
    assert_false(clq_budget_take(&b, 100 * S));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_fresh_budget_allows_a_burst_then_refuses),
        cmocka_unit_test(test_hedges_stay_within_the_share_of_first_sends),
        cmocka_unit_test(test_a_quiet_node_still_hedges_at_the_floor),
        cmocka_unit_test(test_sends_do_not_overfill_the_bucket),
        cmocka_unit_test(test_zero_percent_never_hedges),
        cmocka_unit_test(test_a_clock_going_back_adds_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
