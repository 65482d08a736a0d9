/* spaces/placement.c and place_table.c: a draining member (mnemo admin drain) ends with no
 * copy of any space while no space ever has fewer live full copies than its factor on the
 * way; with too few other members to take its copies it keeps them but leads nothing; and
 * when every member drains, placement is what it is with none draining.
 *
 * The loop below plays what the replication core will do once it runs: every catching-up
 * copy catches up (mn_spaces_caught_up) and every handover promotes the desired primary
 * (mn_spaces_promoted), step after step until nothing changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/spaces.h"

#define SPACES 40
#define ROUNDS_MAX 400

static const char *ids[] = {"node-a", "node-b", "node-c", "node-d", "node-e"};

static void view_of(mn_spaces_member_t *view, size_t n, int draining)
{
    for (size_t i = 0; i < n; i++)
        view[i] = (mn_spaces_member_t){ids[i], NULL, (int)i == draining};
}

static int full_live(const mn_spaces_entry_t *e)
{
    int c = 0;
    for (int i = 0; i < e->n_holders; i++)
        c += !e->holders[i].down && e->holders[i].role != MN_SPACES_CATCHING_UP;
    return c;
}

/* What the replication core would record after a step; true if it recorded anything. */
static bool settle_events(mn_spaces_table_t *t, const mn_spaces_member_t *view, size_t n,
                          const mn_spaces_opts_t *o)
{
    bool any = false;
    mn_error err = {0};
    for (size_t i = 0; i < t->n; i++) {
        mn_spaces_entry_t *e = &t->entries[i];
        for (int h = 0; h < e->n_holders; h++)
            if (e->holders[h].role == MN_SPACES_CATCHING_UP) {
                assert_int_equal(mn_spaces_caught_up(t, e->name, e->holders[h].node, &err), MN_OK);
                any = true;
            }
        if (!(e->flags & MN_SPACES_HANDOVER)) continue;
        size_t want[MN_SPACES_RF_MAX], n_want = 0;
        assert_int_equal(mn_spaces_desired(t, view, n, o, e->name, want, &n_want, &err), MN_OK);
        assert_int_equal(mn_spaces_promoted(t, e->name, view[want[0]].id, e->epoch + 1, &err),
                         MN_OK);
        any = true;
    }
    return any;
}

/* Steps and settles until nothing changes; after every step, no space has fewer live full
 * copies than min(factor, members). */
static void run_to_rest(mn_spaces_table_t *t, const mn_spaces_member_t *view, size_t n,
                        const mn_spaces_opts_t *o)
{
    int floor = o->replication_factor < (int)n ? o->replication_factor : (int)n;
    for (int round = 0; round < ROUNDS_MAX; round++) {
        mn_spaces_table_t next;
        mn_spaces_table_init(&next);
        mn_error err = {0};
        assert_int_equal(mn_spaces_step(t, view, n, o, &next, &err), MN_OK);
        bool stepped = next.version != t->version;
        mn_spaces_table_free(t);
        *t = next;
        for (size_t i = 0; i < t->n; i++)
            if (full_live(&t->entries[i]) < floor)
                fail_msg("round %d: %s has %d full copies, below %d", round, t->entries[i].name,
                         full_live(&t->entries[i]), floor);
        if (!settle_events(t, view, n, o) && !stepped) return;
    }
    fail_msg("placement did not come to rest in %d rounds", ROUNDS_MAX);
}

static void table_of(mn_spaces_table_t *t)
{
    mn_spaces_table_init(t);
    mn_error err = {0};
    for (int i = 0; i < SPACES; i++) {
        char name[16];
        snprintf(name, sizeof name, "space-%02d", i);
        assert_int_equal(mn_spaces_table_add(t, name, &err), MN_OK);
    }
}

static int copies_on(const mn_spaces_table_t *t, const char *node, bool primaries_only)
{
    int c = 0;
    for (size_t i = 0; i < t->n; i++)
        for (int h = 0; h < t->entries[i].n_holders; h++)
            if (!strcmp(t->entries[i].holders[h].node, node)) c += !primaries_only || h == 0;
    return c;
}

static void test_drained_node_ends_with_no_copies(void **state)
{
    (void)state;
    mn_spaces_opts_t o;
    mn_spaces_opts_default(&o);
    mn_spaces_member_t view[5];
    mn_spaces_table_t t;
    table_of(&t);
    view_of(view, 5, -1);
    run_to_rest(&t, view, 5, &o);
    assert_true(copies_on(&t, "node-c", false) > 0);
    view_of(view, 5, 2); /* node-c drains */
    run_to_rest(&t, view, 5, &o);
    assert_int_equal(copies_on(&t, "node-c", false), 0);
    for (size_t i = 0; i < t.n; i++) {
        assert_int_equal(t.entries[i].n_holders, 3);
        assert_int_equal(full_live(&t.entries[i]), 3);
        assert_false(t.entries[i].flags & MN_SPACES_UNDER_REPLICATED);
    }
    /* drain undone: the node takes copies again */
    view_of(view, 5, -1);
    run_to_rest(&t, view, 5, &o);
    assert_true(copies_on(&t, "node-c", false) > 0);
    mn_spaces_table_free(&t);
}

static void test_drain_keeps_copies_it_cannot_move(void **state)
{
    (void)state;
    mn_spaces_opts_t o;
    mn_spaces_opts_default(&o); /* factor 3 over 3 members: nowhere to move to */
    mn_spaces_member_t view[3];
    mn_spaces_table_t t;
    table_of(&t);
    view_of(view, 3, -1);
    run_to_rest(&t, view, 3, &o);
    view_of(view, 3, 0);
    run_to_rest(&t, view, 3, &o);
    assert_int_equal(copies_on(&t, "node-a", true), 0);       /* it leads nothing */
    assert_int_equal(copies_on(&t, "node-a", false), SPACES); /* but keeps every copy */
    for (size_t i = 0; i < t.n; i++)
        assert_false(t.entries[i].flags & MN_SPACES_UNDER_REPLICATED);
    mn_spaces_table_free(&t);
}

static void test_every_member_draining_is_none_draining(void **state)
{
    (void)state;
    mn_spaces_opts_t o;
    mn_spaces_opts_default(&o);
    mn_spaces_member_t plain[4], all[4];
    view_of(plain, 4, -1);
    view_of(all, 4, -1);
    for (int i = 0; i < 4; i++)
        all[i].draining = true;
    mn_spaces_table_t a, b;
    table_of(&a);
    table_of(&b);
    run_to_rest(&a, plain, 4, &o);
    run_to_rest(&b, all, 4, &o);
    assert_int_equal(a.n, b.n);
    for (size_t i = 0; i < a.n; i++) {
        assert_int_equal(a.entries[i].n_holders, b.entries[i].n_holders);
        for (int h = 0; h < a.entries[i].n_holders; h++)
            assert_string_equal(a.entries[i].holders[h].node, b.entries[i].holders[h].node);
    }
    mn_spaces_table_free(&a);
    mn_spaces_table_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drained_node_ends_with_no_copies),
        cmocka_unit_test(test_drain_keeps_copies_it_cannot_move),
        cmocka_unit_test(test_every_member_draining_is_none_draining),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
