/* spaces/place_driver.c: nodes given the same views and names hold the same
 * table whatever the order of the names; a dead primary is replaced at the
 * next epoch only while a majority of the space's voters is live; dropped
 * names leave the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/spaces.h"

#define NODES 3
#define NAMES 40

static char names[NAMES][16];

static mn_spaces_driver_t *driver(int rf)
{
    mn_spaces_opts_t o;
    mn_spaces_opts_default(&o);
    o.replication_factor = rf;
    mn_spaces_driver_t *d = NULL;
    mn_error err = {0};
    assert_int_equal(mn_spaces_driver_new(&o, &d, &err), MN_OK);
    return d;
}

/* names in an order that depends on k: rotated by k * 7 */
static void update(mn_spaces_driver_t *d, const mn_spaces_member_t *view, size_t n_view, int k,
                   size_t n_names)
{
    const char *order[NAMES];
    for (size_t i = 0; i < n_names; i++)
        order[i] = names[(i + (size_t)k * 7) % n_names];
    mn_error err = {0};
    assert_int_equal(mn_spaces_driver_update(d, view, n_view, order, n_names, &err), MN_OK);
}

static void assert_same_tables(mn_spaces_driver_t *const *d, int n)
{
    const mn_spaces_table_t *t0 = mn_spaces_driver_table(d[0]);
    for (int k = 1; k < n; k++) {
        const mn_spaces_table_t *t = mn_spaces_driver_table(d[k]);
        assert_int_equal(t->n, t0->n);
        for (size_t i = 0; i < t->n; i++) {
            const mn_spaces_entry_t *a = &t0->entries[i], *b = &t->entries[i];
            assert_string_equal(a->name, b->name);
            assert_int_equal(a->epoch, b->epoch);
            assert_int_equal(a->n_holders, b->n_holders);
            for (int h = 0; h < a->n_holders; h++) {
                assert_string_equal(a->holders[h].node, b->holders[h].node);
                assert_int_equal(a->holders[h].role, b->holders[h].role);
            }
        }
    }
}

static void setup_names(void)
{
    for (int i = 0; i < NAMES; i++)
        snprintf(names[i], sizeof names[i], "agent-%d", i);
}

static void test_spaces_driver_nodes_agree_and_fail_over_at_the_next_epoch(void **state)
{
    (void)state;
    setup_names();
    mn_spaces_member_t view[NODES] = {
        {"n-a", NULL, false}, {"n-b", NULL, false}, {"n-c", NULL, false}};
    mn_spaces_driver_t *d[NODES];
    for (int k = 0; k < NODES; k++) {
        d[k] = driver(3);
        update(d[k], view, NODES, k, NAMES);
    }
    assert_same_tables(d, NODES);
    const mn_spaces_table_t *t = mn_spaces_driver_table(d[0]);
    assert_int_equal(t->n, NAMES);
    size_t led_by_c = 0;
    for (size_t i = 0; i < t->n; i++) {
        assert_int_equal(t->entries[i].n_holders, 3);
        assert_int_equal(t->entries[i].epoch, 1);
        led_by_c += strcmp(t->entries[i].holders[0].node, "n-c") == 0;
    }
    assert_true(led_by_c > 0 && led_by_c < NAMES);

    /* n-c dies: the two survivors promote a live replica of each of its spaces at epoch 2 */
    for (int k = 0; k < 2; k++)
        update(d[k], view, 2, k, NAMES);
    assert_same_tables(d, 2);
    t = mn_spaces_driver_table(d[0]);
    for (size_t i = 0; i < t->n; i++) {
        const mn_spaces_entry_t *e = &t->entries[i];
        assert_string_not_equal(e->holders[0].node, "n-c");
        assert_int_equal(e->holders[0].role, MN_SPACES_PRIMARY);
        assert_false(e->flags & MN_SPACES_FAILOVER);
        assert_true(e->flags & MN_SPACES_UNDER_REPLICATED);
        assert_int_equal(e->n_holders, 2);
        assert_true(e->epoch >= 1);
    }
    assert_true(mn_spaces_driver_promotions(d[0]) >= led_by_c);

    /* then n-b dies too: n-a alone is no majority of any space's voters, so nothing is
     * promoted and the spaces led by n-b wait in failover */
    uint64_t before = mn_spaces_driver_promotions(d[0]);
    update(d[0], view, 1, 0, NAMES);
    t = mn_spaces_driver_table(d[0]);
    size_t waiting = 0;
    for (size_t i = 0; i < t->n; i++) {
        const mn_spaces_entry_t *e = &t->entries[i];
        if (strcmp(e->holders[0].node, "n-a") != 0) {
            assert_true(e->flags & MN_SPACES_FAILOVER);
            assert_true(e->holders[0].down);
            waiting++;
        }
    }
    assert_true(waiting > 0);
    assert_int_equal(mn_spaces_driver_promotions(d[0]), before);
    for (int k = 0; k < NODES; k++)
        mn_spaces_driver_free(d[k]);
}

static void test_spaces_driver_epochs_rise_only_for_the_dead_primarys_spaces(void **state)
{
    (void)state;
    setup_names();
    mn_spaces_member_t view[NODES] = {
        {"n-a", "z1", false}, {"n-b", "z2", false}, {"n-c", "z3", false}};
    mn_spaces_driver_t *d = driver(3);
    update(d, view, NODES, 0, NAMES);
    mn_spaces_table_t before;
    mn_spaces_table_init(&before);
    assert_int_equal(mn_spaces_table_copy(&before, mn_spaces_driver_table(d)), MN_OK);
    update(d, view, 2, 0, NAMES); /* n-c dies */
    const mn_spaces_table_t *t = mn_spaces_driver_table(d);
    for (size_t i = 0; i < t->n; i++) {
        bool was_c = strcmp(before.entries[i].holders[0].node, "n-c") == 0;
        assert_true(was_c ? t->entries[i].epoch > before.entries[i].epoch
                          : t->entries[i].epoch >= before.entries[i].epoch);
    }
    mn_spaces_table_free(&before);
    /* dropped names leave the table; the rest keep their holders */
    update(d, view, 2, 0, NAMES / 2);
    assert_int_equal(mn_spaces_driver_table(d)->n, NAMES / 2);
    mn_spaces_driver_free(d);
}

static void test_spaces_driver_leaves_the_spaces_it_holds_to_the_core(void **state)
{
    (void)state;
    setup_names();
    mn_spaces_member_t view[NODES] = {
        {"n-a", NULL, false}, {"n-b", NULL, false}, {"n-c", NULL, false}};
    mn_spaces_driver_t *d = driver(3), *alone = driver(3);
    mn_spaces_driver_external(d, "n-a");
    update(d, view, NODES, 0, NAMES);
    update(alone, view, NODES, 0, NAMES);
    /* n-c dies: the driver left alone promotes; the one whose core elects waits for it */
    update(d, view, 2, 0, NAMES);
    update(alone, view, 2, 0, NAMES);
    const mn_spaces_table_t *t = mn_spaces_driver_table(d);
    char led_by_c[NAMES][MN_SPACE_NAME_MAX + 1];
    size_t n_led = 0;
    for (size_t i = 0; i < t->n; i++) {
        const mn_spaces_entry_t *e = &t->entries[i];
        if (strcmp(e->holders[0].node, "n-c") != 0) continue;
        assert_true(e->flags & MN_SPACES_FAILOVER);
        assert_int_equal(e->epoch, 1);
        const mn_spaces_entry_t *o = mn_spaces_table_find(mn_spaces_driver_table(alone), e->name);
        assert_int_equal(o->epoch, 2);
        snprintf(led_by_c[n_led++], sizeof led_by_c[0], "%s", e->name);
    }
    assert_true(n_led > 0);
    assert_int_equal(mn_spaces_driver_promotions(d), 0);
    /* the core's results are recorded, and the next update keeps them */
    mn_error err = {0};
    for (size_t i = 0; i < n_led; i++)
        assert_int_equal(mn_spaces_driver_promoted(d, led_by_c[i], "n-b", 2, &err), MN_OK);
    assert_int_equal(mn_spaces_driver_promoted(d, led_by_c[0], "n-a", 2, &err), MN_ERR_INVALID);
    update(d, view, 2, 0, NAMES);
    for (size_t i = 0; i < n_led; i++) {
        const mn_spaces_entry_t *e = mn_spaces_table_find(mn_spaces_driver_table(d), led_by_c[i]);
        assert_string_equal(e->holders[0].node, "n-b");
        assert_int_equal(e->epoch, 2);
        assert_false(e->flags & MN_SPACES_FAILOVER);
    }
    mn_spaces_driver_free(d);
    mn_spaces_driver_free(alone);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spaces_driver_nodes_agree_and_fail_over_at_the_next_epoch),
        cmocka_unit_test(test_spaces_driver_epochs_rise_only_for_the_dead_primarys_spaces),
        cmocka_unit_test(test_spaces_driver_leaves_the_spaces_it_holds_to_the_core),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
