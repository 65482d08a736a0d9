/* spaces/place_record.c, place_table.c and place_driver.c: the creator of a space leads
 * its epoch 1 on every node whatever names the node saw with it, and a space waits while its
 * creator is out of the view; a holder record, once adopted, decides the holders (the step
 * only marks them down), older records never replace newer ones, and the primary's next
 * record changes at most one voter; the driver proposes records only where this node leads,
 * with caught-up copies turned into replicas one at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/spaces.h"

static const mn_spaces_member_t FIVE[] = {{"n0", NULL, false},
                                          {"n1", NULL, false},
                                          {"n2", NULL, false},
                                          {"n3", NULL, false},
                                          {"n4", NULL, false}};

static mn_spaces_driver_t *driver(const char *self)
{
    mn_spaces_opts_t o;
    mn_spaces_opts_default(&o);
    mn_spaces_driver_t *d = NULL;
    mn_error err = {0};
    assert_int_equal(mn_spaces_driver_new(&o, &d, &err), MN_OK);
    if (self) mn_spaces_driver_external(d, self);
    return d;
}

static void update(mn_spaces_driver_t *d, const mn_spaces_member_t *view, size_t n_view,
                   const mn_spaces_input_t *in, size_t n)
{
    mn_error err = {0};
    assert_int_equal(mn_spaces_driver_update_spaces(d, view, n_view, in, n, &err), MN_OK);
}

static const mn_spaces_entry_t *entry_of(mn_spaces_driver_t *d, const char *space)
{
    const mn_spaces_entry_t *e = mn_spaces_table_find(mn_spaces_driver_table(d), space);
    assert_non_null(e);
    return e;
}

/* A record from "node:role" words, the first the primary. */
static mn_spaces_record_t record(uint64_t epoch, uint64_t version, const char *const *holders,
                                 int n)
{
    mn_spaces_record_t r;
    memset(&r, 0, sizeof r);
    r.epoch = epoch;
    r.version = version;
    for (int i = 0; i < n; i++) {
        const char *colon = strchr(holders[i], ':');
        memcpy(r.holders[i].node, holders[i], (size_t)(colon - holders[i]));
        r.holders[i].role = colon[1] == 'p'   ? MN_SPACES_PRIMARY
                            : colon[1] == 'r' ? MN_SPACES_REPLICA
                                              : MN_SPACES_CATCHING_UP;
    }
    r.n_holders = (uint8_t)n;
    mn_error err = {0};
    assert_int_equal(mn_spaces_record_check(&r, &err), MN_OK);
    return r;
}

static int role_of(const mn_spaces_record_t *r, const char *node)
{
    for (int i = 0; i < r->n_holders; i++)
        if (!strcmp(r->holders[i].node, node)) return r->holders[i].role;
    return -1;
}

static void test_spaces_creator_leads_epoch_one_on_every_node(void **state)
{
    (void)state;
    char names[24][8];
    mn_spaces_input_t all[24];
    for (int i = 0; i < 24; i++) {
        snprintf(names[i], sizeof names[i], "s%02d", i);
        all[i] = (mn_spaces_input_t){names[i], NULL, NULL, 0};
    }
    for (int creator = 0; creator < 5; creator++) {
        char c[4];
        snprintf(c, sizeof c, "n%d", creator);
        all[23].creator = c;
        /* with the core running (here for no space they hold), as in the server */
        mn_spaces_driver_t *a = driver("n9"), *b = driver("n9");
        update(a, FIVE, 5, all, 24);     /* a saw every name at once */
        update(b, FIVE, 5, &all[23], 1); /* b saw the new one first ... */
        update(b, FIVE, 5, all, 24);     /* ... then the others */
        for (int k = 0; k < 2; k++) {
            const mn_spaces_entry_t *e = entry_of(k ? b : a, "s23");
            assert_string_equal(e->holders[0].node, c);
            assert_int_equal(e->holders[0].role, MN_SPACES_PRIMARY);
            assert_int_equal(e->epoch, 1);
            int full = 0; /* a balance move may add the desired node as a catching-up copy */
            for (int h = 0; h < e->n_holders; h++)
                full += e->holders[h].role != MN_SPACES_CATCHING_UP;
            assert_int_equal(full, 3);
        }
        mn_spaces_driver_free(a);
        mn_spaces_driver_free(b);
    }
    /* a creator outside the view: the space waits for it (nobody else has lsn 1) */
    mn_spaces_driver_t *d = driver("n9");
    all[23].creator = "n4";
    update(d, FIVE, 4, all, 24);
    assert_int_equal(entry_of(d, "s23")->n_holders, 0);
    assert_true(entry_of(d, "s23")->flags & MN_SPACES_UNAVAILABLE);
    update(d, FIVE, 5, all, 24);
    assert_string_equal(entry_of(d, "s23")->holders[0].node, "n4");
    assert_int_equal(entry_of(d, "s23")->epoch, 1);
    mn_spaces_driver_free(d);
}

static void test_spaces_a_record_decides_the_holders(void **state)
{
    (void)state;
    mn_spaces_driver_t *d = driver("n4"); /* holds nothing here */
    static const char *const h1[] = {"n1:p", "n0:r", "n2:c"};
    mn_spaces_record_t r = record(2, 1, h1, 3);
    mn_spaces_input_t in = {"s", NULL, &r, 0};
    update(d, FIVE, 5, &in, 1);
    const mn_spaces_entry_t *e = entry_of(d, "s");
    assert_true(e->flags & MN_SPACES_RECORDED);
    assert_int_equal(e->epoch, 2);
    assert_int_equal(e->n_holders, 3);
    assert_string_equal(e->holders[0].node, "n1");
    assert_int_equal(e->holders[2].role, MN_SPACES_CATCHING_UP);
    /* n0 leaves the view: marked down, kept (a voter), nothing repaired, no guessed failover */
    update(d, &FIVE[1], 4, &in, 1);
    e = entry_of(d, "s");
    assert_int_equal(e->n_holders, 3);
    assert_true(e->holders[1].down);
    assert_int_equal(e->epoch, 2);
    /* the primary down: flagged, not settled by a guess */
    static const mn_spaces_member_t no_n1[] = {
        {"n0", NULL, false}, {"n2", NULL, false}, {"n3", NULL, false}};
    update(d, no_n1, 3, &in, 1);
    e = entry_of(d, "s");
    assert_true(e->flags & MN_SPACES_FAILOVER);
    assert_string_equal(e->holders[0].node, "n1");
    assert_int_equal(mn_spaces_driver_promotions(d), 0);
    /* an older record never replaces a newer one; a newer one does */
    static const char *const h0[] = {"n0:p", "n1:r", "n2:r"};
    mn_spaces_record_t old = record(1, 9, h0, 3);
    in.record = &old;
    update(d, FIVE, 5, &in, 1);
    assert_string_equal(entry_of(d, "s")->holders[0].node, "n1");
    static const char *const h2[] = {"n2:p", "n1:r", "n0:r"};
    mn_spaces_record_t next = record(3, 1, h2, 3);
    in.record = &next;
    update(d, FIVE, 5, &in, 1);
    e = entry_of(d, "s");
    assert_string_equal(e->holders[0].node, "n2");
    assert_int_equal(e->epoch, 3);
    assert_int_equal(e->rec_version, 1);
    /* the space dropped and created again between two updates: its new incarnation has
     * no record yet, and is placed anew, led by its creator at epoch 1 */
    in.record = NULL;
    in.creator = "n3";
    update(d, FIVE, 5, &in, 1);
    e = entry_of(d, "s");
    assert_false(e->flags & MN_SPACES_RECORDED);
    assert_string_equal(e->holders[0].node, "n3");
    assert_int_equal(e->epoch, 1);
    in.record = &next;
    in.creator = NULL;
    update(d, FIVE, 5, &in, 1);
    assert_string_equal(entry_of(d, "s")->holders[0].node, "n2");
    /* this node's core promotes past the record: kept until a record of that epoch comes */
    mn_error err = {0};
    assert_int_equal(
        mn_spaces_promoted((mn_spaces_table_t *)mn_spaces_driver_table(d), "s", "n1", 4, &err),
        MN_OK);
    update(d, FIVE, 5, &in, 1);
    assert_string_equal(entry_of(d, "s")->holders[0].node, "n1");
    assert_int_equal(entry_of(d, "s")->epoch, 4);
    mn_spaces_driver_free(d);
}

static void test_spaces_record_next_changes_one_voter_at_a_time(void **state)
{
    (void)state;
    static const char *const c0[] = {"a:p", "b:r", "c:r"};
    mn_spaces_record_t cur = record(5, 3, c0, 3), next;
    /* want: c gone (down), d added catching up */
    mn_spaces_entry_t want;
    memset(&want, 0, sizeof want);
    static const struct {
        const char *node;
        int role;
    } w1[] = {{"a", MN_SPACES_PRIMARY}, {"b", MN_SPACES_REPLICA}, {"d", MN_SPACES_CATCHING_UP}};
    for (int i = 0; i < 3; i++) {
        snprintf(want.holders[i].node, sizeof want.holders[i].node, "%s", w1[i].node);
        want.holders[i].role = (uint8_t)w1[i].role;
    }
    want.n_holders = 3;
    bool vc = false;
    assert_true(mn_spaces_record_next(&cur, &want, &next, &vc));
    assert_true(vc);
    assert_int_equal(next.epoch, 5);
    assert_int_equal(next.version, 4);
    assert_int_equal(role_of(&next, "c"), -1);
    assert_int_equal(role_of(&next, "d"), MN_SPACES_CATCHING_UP);
    assert_int_equal(mn_spaces_record_voters(&next), 2);
    /* want: d caught up AND b gone: two voter changes wanted, one made (d first) */
    cur = next;
    want.holders[1] = want.holders[2];
    want.holders[1].role = MN_SPACES_REPLICA;
    memset(&want.holders[2], 0, sizeof want.holders[2]);
    want.n_holders = 2;
    assert_true(mn_spaces_record_next(&cur, &want, &next, &vc));
    assert_true(vc);
    assert_int_equal(role_of(&next, "d"), MN_SPACES_REPLICA);
    assert_int_equal(role_of(&next, "b"), MN_SPACES_REPLICA); /* still there */
    assert_int_equal(mn_spaces_record_voters(&next), 3);
    cur = next;
    assert_true(mn_spaces_record_next(&cur, &want, &next, &vc));
    assert_true(vc);
    assert_int_equal(role_of(&next, "b"), -1);
    cur = next;
    assert_false(mn_spaces_record_next(&cur, &want, &next, &vc)); /* nothing left to do */
    assert_false(vc);
    assert_int_equal(next.version, cur.version);
}

/* What mn_spaces_driver_proposals gave. */
typedef struct proposed {
    int calls;
    char space[16];
    mn_spaces_record_t next;
    bool voter_change;
} proposed;

static void collect(void *arg, const char *space, const mn_spaces_record_t *next, bool voter_change)
{
    proposed *p = arg;
    p->calls++;
    snprintf(p->space, sizeof p->space, "%s", space);
    p->next = *next;
    p->voter_change = voter_change;
}

static proposed propose(mn_spaces_driver_t *d, const mn_spaces_member_t *view, size_t n)
{
    proposed p;
    memset(&p, 0, sizeof p);
    mn_error err = {0};
    assert_int_equal(mn_spaces_driver_proposals(d, view, n, collect, &p, &err), MN_OK);
    return p;
}

static void test_spaces_driver_proposes_only_where_it_leads(void **state)
{
    (void)state;
    static const char *const h[] = {"n0:p", "n1:r", "n2:r"};
    mn_spaces_record_t r = record(1, 1, h, 3);
    mn_spaces_input_t in = {"s", "n0", &r, 0};
    mn_spaces_driver_t *lead = driver("n0"), *other = driver("n1");
    update(lead, FIVE, 3, &in, 1);
    update(other, FIVE, 3, &in, 1);
    assert_int_equal(propose(lead, FIVE, 3).calls, 0); /* as desired: nothing to change */
    /* n2 leaves, n3 joins: the primary proposes n3 catching up and n2 gone (one voter) */
    static const mn_spaces_member_t v[] = {
        {"n0", NULL, false}, {"n1", NULL, false}, {"n3", NULL, false}};
    update(lead, v, 3, &in, 1);
    update(other, v, 3, &in, 1);
    assert_int_equal(propose(other, v, 3).calls, 0);      /* not its primary */
    assert_int_equal(entry_of(other, "s")->n_holders, 3); /* the record's, n2 down */
    proposed p = propose(lead, v, 3);
    assert_int_equal(p.calls, 1);
    assert_string_equal(p.space, "s");
    assert_true(p.voter_change);
    assert_int_equal(p.next.version, 2);
    assert_int_equal(role_of(&p.next, "n2"), -1);
    assert_int_equal(role_of(&p.next, "n3"), MN_SPACES_CATCHING_UP);
    /* published and adopted; n3 catches up: the next record makes it a replica */
    r = p.next;
    update(lead, v, 3, &in, 1);
    update(other, v, 3, &in, 1);
    assert_int_equal(entry_of(other, "s")->holders[2].role, MN_SPACES_CATCHING_UP);
    assert_int_equal(propose(lead, v, 3).calls, 0);
    mn_error err = {0};
    assert_int_equal(mn_spaces_driver_caught_up(lead, "s", "n3", 1, &err), MN_OK);
    p = propose(lead, v, 3);
    assert_int_equal(p.calls, 1);
    assert_true(p.voter_change);
    assert_int_equal(role_of(&p.next, "n3"), MN_SPACES_REPLICA);
    assert_int_equal(mn_spaces_record_voters(&p.next), 3);
    r = p.next;
    update(lead, v, 3, &in, 1);
    update(other, v, 3, &in, 1);
    assert_int_equal(entry_of(other, "s")->holders[2].role, MN_SPACES_REPLICA);
    assert_int_equal(propose(lead, v, 3).calls, 0);
    mn_spaces_driver_free(lead);
    mn_spaces_driver_free(other);
}

/* The core reports a copy caught up once; when that came before the space's first record
 * (a move started at creation), the record that lists the copy catching up must still be
 * followed by one that makes it a replica (the chaos harness saw such a move stall). */
static void test_spaces_caught_up_before_the_first_record_counts(void **state)
{
    (void)state;
    static const mn_spaces_member_t v[] = {
        {"n0", NULL, false}, {"n1", NULL, false}, {"n3", NULL, false}};
    mn_spaces_input_t in = {"s", "n0", NULL, 0};
    mn_spaces_driver_t *lead = driver("n0");
    update(lead, v, 3, &in, 1);
    mn_error err = {0};
    assert_int_equal(mn_spaces_driver_caught_up(lead, "s", "n3", 1, &err), MN_OK);
    static const char *const h[] = {"n0:p", "n1:r", "n3:c"};
    mn_spaces_record_t r = record(1, 1, h, 3);
    in.record = &r;
    update(lead, v, 3, &in, 1);
    assert_int_equal(entry_of(lead, "s")->holders[2].role, MN_SPACES_CATCHING_UP);
    proposed p = propose(lead, v, 3);
    assert_int_equal(p.calls, 1);
    assert_true(p.voter_change);
    assert_int_equal(role_of(&p.next, "n3"), MN_SPACES_REPLICA);
    mn_spaces_driver_free(lead);
}

/* A new primary (a handover) may report a copy caught up in its epoch before its promotion
 * reached the table: the report waits for the table's epoch and still makes it a replica
 * (the core reports it once per epoch; test_cluster_drain saw such a move stall). */
static void test_spaces_caught_up_of_a_newer_epoch_waits_for_it(void **state)
{
    (void)state;
    static const mn_spaces_member_t v[] = {
        {"n0", NULL, false}, {"n1", NULL, false}, {"n3", NULL, false}};
    static const char *const h[] = {"n0:p", "n1:r", "n3:c"};
    mn_spaces_record_t r = record(1, 1, h, 3);
    mn_spaces_input_t in = {"s", "n0", &r, 0};
    mn_spaces_driver_t *lead = driver("n1");
    update(lead, v, 3, &in, 1);
    mn_error err = {0};
    assert_int_equal(mn_spaces_driver_caught_up(lead, "s", "n3", 2, &err), MN_OK);
    update(lead, v, 3, &in, 1); /* the table is still at epoch 1 */
    assert_int_equal(mn_spaces_driver_promoted(lead, "s", "n1", 2, &err), MN_OK);
    update(lead, v, 3, &in, 1);
    assert_int_equal(entry_of(lead, "s")->epoch, 2);
    /* its first record of epoch 2 (the holders its core knows), then the next one */
    static const char *const h2[] = {"n1:p", "n0:r", "n3:c"};
    r = record(2, 1, h2, 3);
    update(lead, v, 3, &in, 1);
    proposed p = propose(lead, v, 3);
    assert_int_equal(p.calls, 1);
    assert_int_equal(role_of(&p.next, "n3"), MN_SPACES_REPLICA);
    mn_spaces_driver_free(lead);
}

static const char *primary_of(const mn_spaces_entry_t *e)
{
    for (int i = 0; i < e->n_holders; i++)
        if (e->holders[i].role == MN_SPACES_PRIMARY) return e->holders[i].node;
    return "";
}

/* A name dropped and created again elsewhere between two updates, before any record: the
 * catalog names another creator, so it is a new incarnation, placed anew on its creator (one
 * incarnation has one creator), not left on the old one's holders. */
static void test_spaces_a_new_creator_is_a_new_incarnation(void **state)
{
    (void)state;
    mn_spaces_driver_t *d = driver("n4"); /* holds nothing here */
    mn_spaces_input_t in = {"again", "n1", NULL, 0};
    update(d, FIVE, 5, &in, 1);
    assert_string_equal(primary_of(entry_of(d, "again")), "n1");
    in.creator = "n3";
    update(d, FIVE, 5, &in, 1);
    assert_string_equal(primary_of(entry_of(d, "again")), "n3");
    assert_int_equal(entry_of(d, "again")->epoch, 1);
    mn_spaces_driver_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spaces_creator_leads_epoch_one_on_every_node),
        cmocka_unit_test(test_spaces_a_record_decides_the_holders),
        cmocka_unit_test(test_spaces_record_next_changes_one_voter_at_a_time),
        cmocka_unit_test(test_spaces_driver_proposes_only_where_it_leads),
        cmocka_unit_test(test_spaces_caught_up_before_the_first_record_counts),
        cmocka_unit_test(test_spaces_caught_up_of_a_newer_epoch_waits_for_it),
        cmocka_unit_test(test_spaces_a_new_creator_is_a_new_incarnation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
