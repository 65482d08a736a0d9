/* cluster_query's order of a space's copies (docs/recall.md, "SWIM's view"): healthy nodes
 * first, then overdue ones, and nodes SWIM suspects last, each group in the route's order;
 * the count of copies not suspected is 0 exactly when every copy is suspected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "api/cluster_query_internal.h"
#include "testutil.h"

static cl_route_plan_t plan_of(int n)
{
    cl_route_plan_t p = {.n = n};
    for (int t = 0; t < n; t++)
        p.targets[t] = t; /* holder t, in the route's order */
    return p;
}

static void test_a_suspect_primary_is_tried_after_its_replicas(void **state)
{
    (void)state;
    cl_route_plan_t p = plan_of(3);
    clq_copy st[] = {CLQ_COPY_SUSPECT, CLQ_COPY_OK, CLQ_COPY_OK};
    assert_int_equal(clq_order_targets(&p, st), 2);
    assert_int_equal(p.n, 3);
    assert_int_equal(p.targets[0], 1);
    assert_int_equal(p.targets[1], 2);
    assert_int_equal(p.targets[2], 0);
}

static void test_overdue_goes_before_suspect_and_after_healthy(void **state)
{
    (void)state;
    cl_route_plan_t p = plan_of(4);
    clq_copy st[] = {CLQ_COPY_SUSPECT, CLQ_COPY_OVERDUE, CLQ_COPY_OK, CLQ_COPY_OVERDUE};
    assert_int_equal(clq_order_targets(&p, st), 3);
    int want[] = {2, 1, 3, 0};
    for (int t = 0; t < 4; t++)
        assert_int_equal(p.targets[t], want[t]);
}

static void test_healthy_copies_keep_the_route_order(void **state)
{
    (void)state;
    cl_route_plan_t p = plan_of(3);
    p.targets[0] = 2, p.targets[1] = 0, p.targets[2] = 1;
    clq_copy st[] = {CLQ_COPY_OK, CLQ_COPY_OK, CLQ_COPY_OK};
    assert_int_equal(clq_order_targets(&p, st), 3);
    assert_int_equal(p.targets[0], 2);
    assert_int_equal(p.targets[1], 0);
    assert_int_equal(p.targets[2], 1);
}

static void test_every_copy_suspected_counts_none(void **state)
{
    (void)state;
    cl_route_plan_t one = plan_of(1);
    clq_copy s1[] = {CLQ_COPY_SUSPECT};
    assert_int_equal(clq_order_targets(&one, s1), 0); /* replication factor 1 */
    assert_int_equal(one.targets[0], 0);
    cl_route_plan_t two = plan_of(2);
    clq_copy s2[] = {CLQ_COPY_SUSPECT, CLQ_COPY_SUSPECT};
    assert_int_equal(clq_order_targets(&two, s2), 0);
    cl_route_plan_t late = plan_of(1);
    clq_copy s3[] = {CLQ_COPY_OVERDUE}; /* overdue is not suspected: still asked */
    assert_int_equal(clq_order_targets(&late, s3), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_suspect_primary_is_tried_after_its_replicas),
        cmocka_unit_test(test_overdue_goes_before_suspect_and_after_healthy),
        cmocka_unit_test(test_healthy_copies_keep_the_route_order),
        cmocka_unit_test(test_every_copy_suspected_counts_none),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
