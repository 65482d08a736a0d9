/* spaces placement: HRW with bounded loads and zones, and the table's step.
 * Every node that applies the same history must get the same table; a join
 * or a leave moves about k/N of the copies; zones spread copies; loads stay
 * within 10 % of the mean; a move never takes a space below its factor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/spaces.h"

#define NODES_MAX 32

typedef struct cluster {
    char ids[NODES_MAX][16];
    char zones[NODES_MAX][16];
    mn_spaces_member_t view[NODES_MAX];
    size_t n;
} cluster;

/* Nodes "node-<first>".."node-<first+n-1>", in zones z0..z<zones-1> (0 = none). */
static void cluster_make(cluster *c, int first, size_t n, int zones)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < n; i++) {
        snprintf(c->ids[i], sizeof c->ids[i], "node-%d", first + (int)i);
        snprintf(c->zones[i], sizeof c->zones[i], "z%d", zones ? (first + (int)i) % zones : 0);
        c->view[i].id = c->ids[i];
        c->view[i].zone = zones ? c->zones[i] : NULL;
    }
    c->n = n;
}

static void add_spaces(mn_spaces_table_t *t, int n)
{
    char name[32];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "agent-%d", i);
        assert_int_equal(mn_spaces_table_add(t, name, NULL), MN_OK);
    }
}

/* A fresh table of n spaces placed over c. */
static void placed(mn_spaces_table_t *out, const cluster *c, int spaces, const mn_spaces_opts_t *o)
{
    mn_spaces_table_t t;
    mn_spaces_table_init(&t);
    add_spaces(&t, spaces);
    mn_spaces_table_init(out);
    assert_int_equal(mn_spaces_step(&t, c->view, c->n, o, out, NULL), MN_OK);
    mn_spaces_table_free(&t);
}

static bool holds(const mn_spaces_entry_t *e, const char *node)
{
    for (int i = 0; i < e->n_holders; i++)
        if (strcmp(e->holders[i].node, node) == 0) return true;
    return false;
}

/* Largest load over the mean, minus 1, for copies (primaries_only false) or primaries. */
static double imbalance(const mn_spaces_table_t *t, const cluster *c, bool primaries_only)
{
    uint64_t load[NODES_MAX] = {0}, total = 0, max = 0;
    for (size_t i = 0; i < t->n; i++)
        for (int h = 0; h < t->entries[i].n_holders; h++) {
            if (primaries_only && h > 0) break;
            for (size_t k = 0; k < c->n; k++)
                if (strcmp(t->entries[i].holders[h].node, c->ids[k]) == 0) load[k]++;
        }
    for (size_t k = 0; k < c->n; k++) {
        total += load[k];
        if (load[k] > max) max = load[k];
    }
    double mean = (double)total / (double)c->n;
    return (double)max / mean - 1.0;
}

static void test_spaces_hash_is_pinned(void **state)
{
    (void)state;
    /* The hash is part of the cluster contract: these values never change
     * (computed independently from the definition in place_hash.c). */
    assert_true(mn_spaces_hash("", 0) == 0xefd01f60ba992926ull);
    assert_true(mn_spaces_hash("agent-1", 7) == 0x48de2143dbb02bfeull);
    assert_true(mn_spaces_score(1, 2) != mn_spaces_score(2, 1));
}

static void test_spaces_same_inputs_give_the_same_table_in_any_member_order(void **state)
{
    (void)state;
    mn_spaces_opts_t o;
    mn_spaces_opts_default(&o);
    cluster a, b;
    cluster_make(&a, 0, 7, 3);
    cluster_make(&b, 0, 7, 3);
    for (size_t i = 0; i < b.n; i++) { /* reverse b's view */
        b.view[i].id = a.ids[b.n - 1 - i];
        b.view[i].zone = a.view[b.n - 1 - i].zone;
    }
    mn_spaces_table_t ta, tb;
    placed(&ta, &a, 500, &o);
    placed(&tb, &b, 500, &o);
    assert_int_equal(ta.n, tb.n);
    assert_true(ta.version == tb.version);
    assert_memory_equal(ta.entries, tb.entries, ta.n * sizeof *ta.entries);
    mn_spaces_table_free(&ta);
    mn_spaces_table_free(&tb);
}

/* Copies of b that a did not have, over all spaces. */
static size_t moved_copies(const mn_spaces_table_t *a, const mn_spaces_table_t *b)
{
    size_t moved = 0;
    for (size_t i = 0; i < b->n; i++)
        for (int h = 0; h < b->entries[i].n_holders; h++)
            moved += !holds(&a->entries[i], b->entries[i].holders[h].node);
    return moved;
}

static void test_spaces_join_and_leave_move_about_k_over_n(void **state)
{
    (void)state;
    mn_spaces_opts_t o;
    mn_spaces_opts_default(&o);
    const int spaces = 5000;
    cluster c10, c11;
    cluster_make(&c10, 0, 10, 0);
    cluster_make(&c11, 0, 11, 0);
    mn_spaces_table_t t10, t11;
    placed(&t10, &c10, spaces, &o);
    placed(&t11, &c11, spaces, &o);
    /* join: the ideal is the newcomer's share, 3 * spaces / 11 */
    double ideal = 3.0 * spaces / 11.0;
    size_t join = moved_copies(&t10, &t11);
    /* leave of node-10: its share comes back, 3 * spaces / 11 again */
    size_t leave = moved_copies(&t11, &t10);
    printf("placement movement: join %zu copies, leave %zu copies, ideal %.0f (%.2fx, %.2fx)\n",
           join, leave, ideal, join / ideal, leave / ideal);
    assert_true(join >= ideal * 0.8 && join <= ideal * 1.5);
    assert_true(leave >= ideal * 0.8 && leave <= ideal * 1.5);
    mn_spaces_table_free(&t10);
    mn_spaces_table_free(&t11);
}

static int zones_of(const mn_spaces_entry_t *e, const cluster *c)
{
    char seen[MN_SPACES_HOLDERS_MAX][16];
    int n = 0;
    for (int h = 0; h < e->n_holders; h++) {
        const char *z = NULL;
        for (size_t k = 0; k < c->n; k++)
            if (strcmp(c->ids[k], e->holders[h].node) == 0) z = c->zones[k];
        assert_non_null(z);
        bool dup = false;
        for (int j = 0; j < n; j++)
            dup |= strcmp(seen[j], z) == 0;
        if (!dup) strcpy(seen[n++], z);
    }
    return n;
}

static void test_spaces_copies_spread_over_zones(void **state)
{
    (void)state;
    mn_spaces_opts_t o;
    mn_spaces_opts_default(&o);
    cluster c3, c2;
    cluster_make(&c3, 0, 9, 3);
    cluster_make(&c2, 0, 8, 2);
    mn_spaces_table_t t3, t2;
    placed(&t3, &c3, 2000, &o);
    placed(&t2, &c2, 2000, &o);
    for (size_t i = 0; i < t3.n; i++) {
        assert_int_equal(t3.entries[i].n_holders, 3);
        assert_int_equal(zones_of(&t3.entries[i], &c3), 3);
        assert_int_equal(zones_of(&t2.entries[i], &c2), 2);
    }
    mn_spaces_table_free(&t3);
    mn_spaces_table_free(&t2);
}

static void test_spaces_loads_stay_within_ten_percent_of_the_mean(void **state)
{
    (void)state;
    mn_spaces_opts_t o;
    mn_spaces_opts_default(&o);
    for (size_t n = 3; n <= 20; n++) {
        cluster c;
        cluster_make(&c, 0, n, 0);
        mn_spaces_table_t t;
        placed(&t, &c, 10000, &o);
        double copies = imbalance(&t, &c, false), prim = imbalance(&t, &c, true);
        printf("placement balance: 10000 spaces over %2zu nodes: copies +%.1f %%, primaries "
               "+%.1f %%\n",
               n, 100 * copies, 100 * prim);
        assert_true(copies <= 0.10 && prim <= 0.10);
        mn_spaces_table_free(&t);
    }
}

static void test_spaces_fewer_nodes_than_the_factor_are_flagged(void **state)
{
    (void)state;
    mn_spaces_opts_t o;
    mn_spaces_opts_default(&o);
    cluster c;
    cluster_make(&c, 0, 2, 0);
    mn_spaces_table_t t;
    placed(&t, &c, 10, &o);
    for (size_t i = 0; i < t.n; i++) {
        assert_int_equal(t.entries[i].n_holders, 2);
        assert_true(t.entries[i].flags & MN_SPACES_UNDER_REPLICATED);
        assert_int_equal(t.entries[i].holders[0].role, MN_SPACES_PRIMARY);
        assert_int_equal(t.entries[i].epoch, 1);
    }
    mn_spaces_table_free(&t);
}

/* What the replication core would report between steps: every catching-up
 * copy caught up, every flagged handover done to the desired primary. */
static void report_progress(mn_spaces_table_t *t, const cluster *c, const mn_spaces_opts_t *o)
{
    for (size_t i = 0; i < t->n; i++) {
        mn_spaces_entry_t *e = &t->entries[i];
        for (int h = 0; h < e->n_holders; h++)
            if (e->holders[h].role == MN_SPACES_CATCHING_UP && !e->holders[h].down)
                assert_int_equal(mn_spaces_caught_up(t, e->name, e->holders[h].node, NULL), MN_OK);
        if (e->flags & MN_SPACES_HANDOVER) {
            size_t d[MN_SPACES_RF_MAX], nd;
            assert_int_equal(mn_spaces_desired(t, c->view, c->n, o, e->name, d, &nd, NULL), MN_OK);
            assert_int_equal(mn_spaces_promoted(t, e->name, c->ids[d[0]], e->epoch + 1, NULL),
                             MN_OK);
        }
    }
}

/* Steps until nothing changes, checking each table: moves within the
 * concurrency, and no space below its factor. Returns the rounds. */
static int settle(mn_spaces_table_t *t, const cluster *c, const mn_spaces_opts_t *o)
{
    for (int round = 1; round < 10000; round++) {
        mn_spaces_table_t next;
        mn_spaces_table_init(&next);
        assert_int_equal(mn_spaces_step(t, c->view, c->n, o, &next, NULL), MN_OK);
        int moving = 0;
        for (size_t i = 0; i < next.n; i++) {
            const mn_spaces_entry_t *e = &next.entries[i];
            int full = 0, catching = 0;
            for (int h = 0; h < e->n_holders; h++) {
                full += e->holders[h].role != MN_SPACES_CATCHING_UP && !e->holders[h].down;
                catching += e->holders[h].role == MN_SPACES_CATCHING_UP;
            }
            assert_true(full >= o->replication_factor);
            moving += catching > 0;
        }
        assert_true(moving <= o->rebalance_concurrency);
        bool same = next.version == t->version;
        mn_spaces_table_free(t);
        *t = next;
        if (same) return round;
        report_progress(t, c, o);
    }
    fail_msg("placement did not settle");
    return -1;
}

static void test_spaces_join_rebalances_within_the_concurrency_and_the_factor(void **state)
{
    (void)state;
    mn_spaces_opts_t o;
    mn_spaces_opts_default(&o);
    o.rebalance_concurrency = 8;
    cluster c5, c6;
    cluster_make(&c5, 0, 5, 0);
    cluster_make(&c6, 0, 6, 0);
    mn_spaces_table_t t;
    placed(&t, &c5, 1000, &o);
    int rounds = settle(&t, &c6, &o);
    double im = imbalance(&t, &c6, false), ip = imbalance(&t, &c6, true);
    printf("placement join 5 -> 6 nodes, 1000 spaces, concurrency 8: settled in %d rounds, "
           "copies +%.1f %%, primaries +%.1f %%\n",
           rounds, 100 * im, 100 * ip);
    assert_true(im <= 0.10 && ip <= 0.10);
    /* settled = desired */
    mn_spaces_table_t fresh;
    placed(&fresh, &c6, 1000, &o);
    assert_int_equal(moved_copies(&fresh, &t), 0);
    mn_spaces_table_free(&fresh);
    mn_spaces_table_free(&t);
}

static const mn_spaces_entry_t *entry_held_first_by(const mn_spaces_table_t *t, const char *node)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->entries[i].holders[0].node, node) == 0) return &t->entries[i];
    return NULL;
}

static void test_spaces_death_of_a_primary_flags_failover_then_repairs(void **state)
{
    (void)state;
    mn_spaces_opts_t o;
    mn_spaces_opts_default(&o);
    cluster c4, c3;
    cluster_make(&c4, 0, 4, 0);
    cluster_make(&c3, 1, 3, 0); /* node-0 died */
    mn_spaces_table_t t, next;
    placed(&t, &c4, 50, &o);
    const mn_spaces_entry_t *e = entry_held_first_by(&t, "node-0");
    assert_non_null(e);
    char name[MN_SPACE_NAME_MAX + 1];
    strcpy(name, e->name);
    mn_spaces_table_init(&next);
    assert_int_equal(mn_spaces_step(&t, c3.view, c3.n, &o, &next, NULL), MN_OK);
    e = mn_spaces_table_find(&next, name);
    assert_true(e->flags & MN_SPACES_FAILOVER);
    assert_true(e->holders[0].down);
    /* the voters stay listed, and a repair starts at once */
    assert_int_equal(e->n_holders, 4);
    assert_int_equal(e->holders[3].role, MN_SPACES_CATCHING_UP);
    assert_true(next.version == t.version + 1);
    /* the election's winner is recorded; the dead one goes, a repair comes */
    char winner[MN_SPACES_NODE_MAX + 1];
    strcpy(winner, e->holders[2].node);
    assert_int_equal(mn_spaces_promoted(&next, name, winner, 2, NULL), MN_OK);
    assert_int_equal(mn_spaces_promoted(&next, name, winner, 2, NULL), MN_ERR_INVALID);
    mn_spaces_table_free(&t);
    mn_spaces_table_init(&t);
    assert_int_equal(mn_spaces_step(&next, c3.view, c3.n, &o, &t, NULL), MN_OK);
    e = mn_spaces_table_find(&t, name);
    assert_string_equal(e->holders[0].node, winner);
    assert_int_equal(e->epoch, 2);
    assert_false(e->flags & MN_SPACES_FAILOVER);
    assert_int_equal(e->n_holders, 3);
    assert_int_equal(e->holders[2].role, MN_SPACES_CATCHING_UP);
    assert_true(e->flags & MN_SPACES_UNDER_REPLICATED);
    assert_false(holds(e, "node-0"));
    mn_spaces_table_free(&t);
    mn_spaces_table_free(&next);
}

static void test_spaces_bad_views_are_refused(void **state)
{
    (void)state;
    mn_spaces_opts_t o;
    mn_spaces_opts_default(&o);
    mn_spaces_table_t t, next;
    mn_spaces_table_init(&t);
    mn_spaces_table_init(&next);
    add_spaces(&t, 3);
    mn_spaces_member_t dup[2] = {{"a", NULL, false}, {"a", NULL, false}};
    mn_spaces_member_t empty[1] = {{"", NULL, false}};
    mn_error err;
    assert_int_equal(mn_spaces_step(&t, dup, 2, &o, &next, &err), MN_ERR_INVALID);
    assert_int_equal(mn_spaces_step(&t, empty, 1, &o, &next, &err), MN_ERR_INVALID);
    o.replication_factor = 0;
    assert_int_equal(mn_spaces_step(&t, dup, 1, &o, &next, &err), MN_ERR_INVALID);
    assert_int_equal(mn_spaces_table_add(&t, "agent-1", NULL), MN_ERR_EXISTS);
    assert_int_equal(mn_spaces_table_add(&t, "", NULL), MN_ERR_INVALID);
    mn_spaces_table_free(&t);
    mn_spaces_table_free(&next);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spaces_hash_is_pinned),
        cmocka_unit_test(test_spaces_same_inputs_give_the_same_table_in_any_member_order),
        cmocka_unit_test(test_spaces_join_and_leave_move_about_k_over_n),
        cmocka_unit_test(test_spaces_copies_spread_over_zones),
        cmocka_unit_test(test_spaces_loads_stay_within_ten_percent_of_the_mean),
        cmocka_unit_test(test_spaces_fewer_nodes_than_the_factor_are_flagged),
        cmocka_unit_test(test_spaces_join_rebalances_within_the_concurrency_and_the_factor),
        cmocka_unit_test(test_spaces_death_of_a_primary_flags_failover_then_repairs),
        cmocka_unit_test(test_spaces_bad_views_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
