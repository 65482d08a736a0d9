/* The gossip core on simnet: fixed-seed scenarios (simnet/gossip_sim.c) at
 * 100 nodes. Each asserts the judge's verdict (every node's root equals the
 * fold of every change, every tombstone held as a tombstone) and the
 * issue's targets in simulated time: convergence within 10 s and steady
 * traffic within 5 KB/s per node, in scope cluster and in scope holders (100
 * spaces, 3 holders each). Run `simnet gossip --scenario S --seed N`
 * to replay one; `simnet gossip --random` draws seeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mnemo/simnet.h"
#include "testutil.h"

static mn_simgossip_result_t run_holders(mn_simgossip_scenario_t sc, uint64_t seed, int holders)
{
    mn_simgossip_opts_t o;
    mn_simgossip_opts_default(&o);
    o.seed = seed;
    if (holders) { /* scope holders: many spaces, each on a few nodes */
        o.holders = holders;
        o.spaces = 100;
        o.records = 50;
    }
    mn_simgossip_result_t r;
    mn_error err;
    assert_int_equal(mn_simgossip_run(&o, sc, &r, &err), MN_OK);
    printf(
        "%-9s seed %llu%s: changes %llu, converge %.2f s (%.1f rounds, log2 N %.1f), heal %.2f s, "
        "steady %.0f B/node/s (%.2f frames), converging %.0f B/node/s, pushed %llu, "
        "pulled %llu, rejected %llu, mismatched %d%s\n",
        mn_simgossip_scenario_name(sc), (unsigned long long)seed, holders ? " (holders 3)" : "",
        (unsigned long long)r.changes, r.converge_s, r.converge_rounds, log2((double)o.nodes),
        r.heal_s, r.steady_bytes_node_s, r.steady_frames_node_s, r.converge_bytes_node_s,
        (unsigned long long)r.stats.entries_pushed, (unsigned long long)r.stats.entries_pulled,
        (unsigned long long)r.stats.frames_rejected, r.mismatched,
        r.tombstones_held ? "" : ", a tombstone lost");
    assert_true(r.converged);
    assert_true(r.tombstones_held);
    assert_true(r.converge_s >= 0 && r.converge_s <= 10.0);
    assert_true(r.steady_bytes_node_s > 0 && r.steady_bytes_node_s <= 5000);
    assert_int_equal(r.stats.frames_rejected, 0);
    return r;
}

static mn_simgossip_result_t run(mn_simgossip_scenario_t sc, uint64_t seed)
{
    return run_holders(sc, seed, 0);
}

static void test_simnet_gossip_one_change_reaches_100_nodes_within_10s(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= (uint64_t)mn_test_seeds(3); seed++) {
        mn_simgossip_result_t r = run(MN_SIMGOSSIP_CONVERGE, seed);
        assert_true(r.stats.entries_changed >= 99); /* every other node took it */
    }
}

static void test_simnet_gossip_converges_under_5_percent_loss(void **state)
{
    (void)state;
    for (uint64_t seed = 11; seed < 11 + (uint64_t)mn_test_seeds(2); seed++)
        run(MN_SIMGOSSIP_LOSS, seed);
}

static void test_simnet_gossip_partition_heals_to_equal_roots_tombstone_winning(void **state)
{
    (void)state;
    mn_simgossip_result_t r = run(MN_SIMGOSSIP_PARTITION, 21);
    assert_true(r.heal_s >= 0);
    assert_int_equal(r.changes, 8);
}

static void test_simnet_gossip_random_faults_converge(void **state)
{
    (void)state;
    for (uint64_t seed = 100; seed < 100 + (uint64_t)mn_test_seeds(4); seed++)
        run(MN_SIMGOSSIP_RANDOM, seed);
}

static void test_simnet_gossip_an_empty_node_fetches_every_space_in_batches(void **state)
{
    (void)state;
    mn_simgossip_result_t r = run(MN_SIMGOSSIP_JOIN, 31);
    assert_true(r.stats.entries_changed >= 4 * 250); /* all of it, through pushes */
}

/* Scope holders (per-space peer sets): 100 spaces of 50 records, each on 3 of the 100
 * nodes; the judge checks each node holds its spaces' state and nothing of the others. */
static void test_simnet_gossip_holders_scope_keeps_each_space_on_its_holders(void **state)
{
    (void)state;
    mn_simgossip_scenario_t sc[] = {MN_SIMGOSSIP_CONVERGE, MN_SIMGOSSIP_LOSS, MN_SIMGOSSIP_RANDOM,
                                    MN_SIMGOSSIP_JOIN};
    for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++) {
        if (mn_test_sanitized() && (sc[i] == MN_SIMGOSSIP_LOSS || sc[i] == MN_SIMGOSSIP_RANDOM))
            continue; /* their code paths are those of converge and join */
        mn_simgossip_result_t r = run_holders(sc[i], 40 + i, 3);
        if (sc[i] == MN_SIMGOSSIP_JOIN) /* the restarted node's 3 spaces, not all 100 */
            assert_true(r.stats.entries_changed >= 3 * 50 && r.stats.entries_changed < 100 * 50);
    }
}

static void test_simnet_gossip_same_seed_replays_the_same_trace(void **state)
{
    (void)state;
    mn_simgossip_opts_t o;
    mn_simgossip_opts_default(&o);
    o.nodes = 30;
    o.seed = 77;
    mn_simgossip_result_t a, b;
    assert_int_equal(mn_simgossip_run(&o, MN_SIMGOSSIP_RANDOM, &a, NULL), MN_OK);
    assert_int_equal(mn_simgossip_run(&o, MN_SIMGOSSIP_RANDOM, &b, NULL), MN_OK);
    assert_true(a.trace_hash == b.trace_hash && a.changes == b.changes);
    o.seed = 78;
    assert_int_equal(mn_simgossip_run(&o, MN_SIMGOSSIP_RANDOM, &b, NULL), MN_OK);
    assert_true(a.trace_hash != b.trace_hash);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simnet_gossip_one_change_reaches_100_nodes_within_10s),
        cmocka_unit_test(test_simnet_gossip_converges_under_5_percent_loss),
        cmocka_unit_test(test_simnet_gossip_partition_heals_to_equal_roots_tombstone_winning),
        cmocka_unit_test(test_simnet_gossip_random_faults_converge),
        cmocka_unit_test(test_simnet_gossip_an_empty_node_fetches_every_space_in_batches),
        cmocka_unit_test(test_simnet_gossip_holders_scope_keeps_each_space_on_its_holders),
        cmocka_unit_test(test_simnet_gossip_same_seed_replays_the_same_trace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
