/* The replication core on simnet: fixed-seed scenarios (simnet/repl_sim.c).
 * Each asserts the invariants (at most one primary per epoch, every
 * (epoch, lsn) one entry and every log dense, no acknowledged write lost at
 * any level, a primary at the end and every log equal to its) and what the
 * scenario is about (a failover, a catch-up by WAL or by snapshot, a fork
 * handed back). Run `simnet repl --scenario S --seed N` to replay one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "mnemo/simnet.h"

static mn_simrepl_result_t run(mn_simrepl_scenario_t sc, uint64_t seed)
{
    mn_simrepl_opts_t o;
    mn_simrepl_opts_default(&o);
    o.seed = seed;
    mn_simrepl_result_t r;
    mn_error err;
    assert_int_equal(mn_simrepl_run(&o, sc, &r, &err), MN_OK);
    printf(
        "%-16s seed %llu: writes %llu, acked one/quorum/all %llu/%llu/%llu, lost %llu/%llu/%llu, "
        "epochs %llu, conflicts %llu, violations %llu, failover %.3f s, reapplied %llu, "
        "truncations %llu, snapshots %llu, fenced %llu, gaps %llu, final lsn %llu, %s\n",
        mn_simrepl_scenario_name(sc), (unsigned long long)seed, (unsigned long long)r.writes,
        (unsigned long long)r.acked[0], (unsigned long long)r.acked[1],
        (unsigned long long)r.acked[2], (unsigned long long)r.lost[0],
        (unsigned long long)r.lost[1], (unsigned long long)r.lost[2], (unsigned long long)r.epochs,
        (unsigned long long)r.primary_conflicts, (unsigned long long)r.log_violations, r.failover_s,
        (unsigned long long)r.reapplied, (unsigned long long)r.truncations,
        (unsigned long long)r.snapshots, (unsigned long long)r.fenced, (unsigned long long)r.gaps,
        (unsigned long long)r.final_lsn, r.converged ? "converged" : "NOT converged");
    assert_int_equal(r.primary_conflicts, 0);
    assert_int_equal(r.log_violations, 0);
    assert_int_equal(r.lost[MN_SPACES_QUORUM], 0);
    assert_int_equal(r.lost[MN_SPACES_ALL], 0);
    assert_int_equal(r.lost[MN_SPACES_ONE], 0);
    assert_true(r.has_primary);
    assert_true(r.converged);
    assert_true(r.acked[MN_SPACES_QUORUM] > 100);
    return r;
}

static void test_simnet_repl_primary_crash_mid_batch_fails_over(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        mn_simrepl_result_t r = run(MN_SIMREPL_CRASH_PRIMARY, seed);
        assert_true(r.failover_s > 0 && r.epochs >= 2);
    }
}

static void test_simnet_repl_replica_catches_up_by_wal(void **state)
{
    (void)state;
    mn_simrepl_result_t r = run(MN_SIMREPL_REPLICA_WAL, 11);
    assert_int_equal(r.snapshots, 0);
    assert_int_equal(r.epochs, 1); /* a replica's crash moves no primary */
}

static void test_simnet_repl_replica_catches_up_by_snapshot_when_the_wal_is_trimmed(void **state)
{
    (void)state;
    mn_simrepl_result_t r = run(MN_SIMREPL_REPLICA_SNAPSHOT, 12);
    assert_true(r.snapshots >= 1);
}

static void test_simnet_repl_primary_cut_from_one_replica_keeps_quorum(void **state)
{
    (void)state;
    mn_simrepl_result_t r = run(MN_SIMREPL_CUT_REPLICA, 13);
    assert_int_equal(r.epochs, 1);
}

static void test_simnet_repl_old_primary_returns_and_hands_back_its_entries(void **state)
{
    (void)state;
    mn_simrepl_result_t r = run(MN_SIMREPL_OLD_PRIMARY, 14);
    assert_true(r.epochs >= 2);
    assert_true(r.truncations >= 1 && r.reapplied >= 1);
}

static void test_simnet_repl_membership_flaps_keep_the_invariants(void **state)
{
    (void)state;
    run(MN_SIMREPL_FLAPS, 15);
}

static void test_simnet_repl_handover_moves_the_role_without_an_outage(void **state)
{
    (void)state;
    mn_simrepl_result_t r = run(MN_SIMREPL_HANDOVER, 16);
    assert_int_equal(r.epochs, 2);
    assert_true(r.failover_s >= 0 && r.failover_s < 0.1);
    assert_int_equal(r.truncations, 0); /* nothing to hand back: the target had it all */
}

static void test_simnet_repl_random_faults_keep_the_invariants(void **state)
{
    (void)state;
    for (uint64_t seed = 100; seed < 104; seed++)
        run(MN_SIMREPL_RANDOM, seed);
}

/* Holder records change the voters (repl_records.c): n2, n1 and n0 are replaced in turn by
 * n3, n4 and n2, the second change with the primary crashed meanwhile, the third moving the
 * primary's own role (it hands over first). Each change adds a copy, waits for it to catch
 * up, and removes the old voter: six voter changes, three copies dropped, and the end record
 * is the wanted set. */
static void test_simnet_repl_voters_replaced_one_at_a_time(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        mn_simrepl_result_t r = run(MN_SIMREPL_MEMBERSHIP, seed);
        assert_true(r.settled);
        assert_true(r.voter_changes >= 6);
        assert_int_equal(r.copies_dropped, 3);
        assert_true(r.failover_s > 0); /* the crash of the primary mid-change */
        assert_true(r.epochs >= 3);    /* that failover, and the handover */
    }
}

/* Random faults, and every so often three new wanted holders. Seed 67 is a deposed primary
 * dropped from the holders before it reconciled: its copy hands back the `one` writes it
 * never shipped before it goes (they were lost once, docs/replication.md "simnet"). */
static void test_simnet_repl_random_voter_changes_keep_the_invariants(void **state)
{
    (void)state;
    uint64_t changes = 0;
    for (uint64_t seed = 1; seed <= 4; seed++)
        changes += run(MN_SIMREPL_MEMBERSHIP_RANDOM, seed).voter_changes;
    mn_simrepl_result_t r = run(MN_SIMREPL_MEMBERSHIP_RANDOM, 67);
    assert_true(r.reapplied > 0 && r.copies_dropped > 0);
    assert_true(changes >= 4);
}

static void test_simnet_repl_same_seed_replays_the_same_trace(void **state)
{
    (void)state;
    mn_simrepl_opts_t o;
    mn_simrepl_opts_default(&o);
    o.seed = 77;
    mn_simrepl_result_t a, b;
    assert_int_equal(mn_simrepl_run(&o, MN_SIMREPL_RANDOM, &a, NULL), MN_OK);
    assert_int_equal(mn_simrepl_run(&o, MN_SIMREPL_RANDOM, &b, NULL), MN_OK);
    assert_true(a.trace_hash == b.trace_hash && a.writes == b.writes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simnet_repl_primary_crash_mid_batch_fails_over),
        cmocka_unit_test(test_simnet_repl_replica_catches_up_by_wal),
        cmocka_unit_test(test_simnet_repl_replica_catches_up_by_snapshot_when_the_wal_is_trimmed),
        cmocka_unit_test(test_simnet_repl_primary_cut_from_one_replica_keeps_quorum),
        cmocka_unit_test(test_simnet_repl_old_primary_returns_and_hands_back_its_entries),
        cmocka_unit_test(test_simnet_repl_membership_flaps_keep_the_invariants),
        cmocka_unit_test(test_simnet_repl_handover_moves_the_role_without_an_outage),
        cmocka_unit_test(test_simnet_repl_random_faults_keep_the_invariants),
        cmocka_unit_test(test_simnet_repl_voters_replaced_one_at_a_time),
        cmocka_unit_test(test_simnet_repl_random_voter_changes_keep_the_invariants),
        cmocka_unit_test(test_simnet_repl_same_seed_replays_the_same_trace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
