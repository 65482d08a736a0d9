/* Replication scenarios on simnet: fault scripts over the harness of
 * repl_sim.c. Each run: every node starts (n0 leads epoch 1), clients write
 * for a second, the fault runs for fault_ms with writes going on, one more
 * second of writes after it, then everything is healed and restarted and the
 * judge checks the end state after settle_ms without writes.
 *
 * The random scenario draws, every 400 ms of its fault phase, one of: crash
 * a node, restart one, partition the nodes in two, heal, cut one link, flap
 * a node's view of another, hand the primary's role to another node; and a
 * link loss of 0..5 % for the whole run. The membership scenarios run on holder records
 * (repl_records.c): the scripted one replaces each first holder in turn, the random one
 * adds to random's faults, every 400 ms with odds 1 in 3, three new wanted holders. */
#include <stdlib.h>
#include <string.h>

#include "repl_sim_internal.h"

static const char *const NAMES[] = {
    "crash-primary", "replica-wal", "replica-snapshot", "cut-replica", "old-primary",
    "flaps",         "handover",    "random",           "membership",  "membership-random"};

mn_err mn_simrepl_scenario_parse(const char *s, mn_simrepl_scenario_t *out)
{
    for (size_t i = 0; s && i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (strcmp(s, NAMES[i]) == 0) {
            *out = (mn_simrepl_scenario_t)i;
            return MN_OK;
        }
    return MN_ERR_INVALID;
}

const char *mn_simrepl_scenario_name(mn_simrepl_scenario_t sc)
{
    return (size_t)sc < sizeof NAMES / sizeof NAMES[0] ? NAMES[sc] : "unknown";
}

void mn_simrepl_opts_default(mn_simrepl_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->nodes = 3;
    o->seed = 1;
    o->link.latency_us = 500;
    o->link.jitter_us = 200;
    mn_spaces_repl_config_default(&o->repl);
    o->writes_per_s = 400;
    o->detect_ms = 1500;
    o->fault_ms = 3000;
    o->settle_ms = 8000;
}

bool mn_simrepl_ok(const mn_simrepl_result_t *r)
{
    return r->primary_conflicts == 0 && r->log_violations == 0 && r->lost[MN_SPACES_ONE] == 0 &&
           r->lost[MN_SPACES_QUORUM] == 0 && r->lost[MN_SPACES_ALL] == 0 && r->has_primary &&
           r->converged;
}

/* A node other than not (the first after it). */
static int other(const mn_simrepl_t *h, int not )
{
    return (not +1) % h->n;
}

static int primary_now(mn_simrepl_t *h)
{
    int p = mn__simrepl_primary(h, mn_simnet_now(h->net));
    return p < 0 ? 0 : p;
}

static void random_action(mn_simrepl_t *h)
{
    mn_prng_t *g = mn_simnet_prng(h->net);
    int a = (int)mn_prng_below(g, (uint64_t)h->n), b = (int)mn_prng_below(g, (uint64_t)h->n);
    switch (mn_prng_below(g, 7)) {
    case 0:
        if (a == primary_now(h)) mn__simrepl_fault(h);
        mn__simrepl_crash(h, a);
        break;
    case 1:
        mn__simrepl_restart(h, a);
        break;
    case 2: {
        int group[MN__SIMREPL_NODES_MAX];
        for (int i = 0; i < h->n; i++)
            group[i] = (int)mn_prng_below(g, 2);
        mn__simrepl_partition(h, group);
        break;
    }
    case 3:
        mn__simrepl_heal(h);
        break;
    case 6:
        if (a != primary_now(h)) mn__simrepl_handover(h, primary_now(h), a);
        break;
    case 4:
        if (a != b) mn__simrepl_cut(h, a, b);
        break;
    default:
        if (a != b) mn__simrepl_flap(h, a, b, 300);
        break;
    }
}

/* Three distinct nodes drawn at random become the wanted holders. */
static void random_want(mn_simrepl_t *h)
{
    mn_prng_t *g = mn_simnet_prng(h->net);
    int want[3], n = 0;
    while (n < 3) {
        int k = (int)mn_prng_below(g, (uint64_t)h->n);
        bool dup = false;
        for (int i = 0; i < n; i++)
            dup |= want[i] == k;
        if (!dup) want[n++] = k;
    }
    mn__simrec_want(h, want, 3);
}

/* Each first holder replaced in turn: n2 by n3; n1 by n4, the primary crashing at a random
 * moment in its first 300 ms and back a second later; n0 (the primary unless the crash moved it)
 * by n2. Each step runs until the record settles (at most 4 fault phases). */
static void membership(mn_simrepl_t *h, int64_t ms)
{
    static const int steps[3][3] = {{0, 1, 3}, {0, 3, 4}, {3, 4, 2}};
    for (int s = 0; s < 3; s++) {
        mn__simrec_want(h, steps[s], 3);
        int64_t crash_at = s == 1 ? 50 * (int64_t)mn_prng_below(mn_simnet_prng(h->net), 6) : -1;
        int victim = -1;
        for (int64_t t = 0; t < 4 * ms; t += 50) {
            if (t == crash_at && (victim = mn__simrepl_primary(h, mn_simnet_now(h->net))) >= 0) {
                mn__simrepl_fault(h);
                mn__simrepl_crash(h, victim);
            }
            if (victim >= 0 && t == crash_at + 1000) mn__simrepl_restart(h, victim);
            if (mn__simrec_settled(h) && t > (victim < 0 ? crash_at : crash_at + 1000)) break;
            mn__simrepl_advance(h, 50);
        }
    }
}

static void fault_phase(mn_simrepl_t *h, mn_simrepl_scenario_t sc)
{
    int p = primary_now(h), r = other(h, p);
    int64_t ms = h->o.fault_ms;
    switch (sc) {
    case MN_SIMREPL_CRASH_PRIMARY:
        /* mid-batch: at a random microsecond, with entries appended and unshipped */
        mn_simnet_run_until(h->net, mn_simnet_now(h->net) +
                                        (int64_t)mn_prng_below(mn_simnet_prng(h->net), 2000));
        mn__simrepl_fault(h);
        mn__simrepl_crash(h, p);
        mn__simrepl_advance(h, ms);
        mn__simrepl_restart(h, p);
        break;
    case MN_SIMREPL_REPLICA_WAL:
    case MN_SIMREPL_REPLICA_SNAPSHOT:
        mn__simrepl_crash(h, r);
        mn__simrepl_advance(h, ms);
        mn__simrepl_restart(h, r);
        break;
    case MN_SIMREPL_CUT_REPLICA:
        mn__simrepl_cut(h, p, r);
        mn__simrepl_advance(h, ms);
        mn__simrepl_heal(h);
        break;
    case MN_SIMREPL_OLD_PRIMARY: {
        int group[MN__SIMREPL_NODES_MAX] = {0};
        group[p] = 1;
        mn__simrepl_fault(h);
        mn__simrepl_partition(h, group);
        mn__simrepl_advance(h, ms);
        mn__simrepl_heal(h);
        break;
    }
    case MN_SIMREPL_FLAPS:
        for (int k = 0; k < 6; k++) {
            for (int i = 0; i < h->n; i++)
                if (i != p) mn__simrepl_flap(h, i, p, 150 + 50 * k);
            mn__simrepl_advance(h, ms / 6);
        }
        break;
    case MN_SIMREPL_HANDOVER:
        mn__simrepl_fault(h);
        mn__simrepl_handover(h, p, r);
        mn__simrepl_advance(h, ms);
        break;
    case MN_SIMREPL_RANDOM:
    case MN_SIMREPL_MEMBERSHIP_RANDOM:
        for (int64_t t = 0; t < 3 * ms; t += 400) {
            random_action(h);
            if (sc == MN_SIMREPL_MEMBERSHIP_RANDOM && mn_prng_below(mn_simnet_prng(h->net), 3) == 0)
                random_want(h);
            mn__simrepl_advance(h, 400);
        }
        break;
    case MN_SIMREPL_MEMBERSHIP:
        membership(h, ms);
        break;
    }
}

mn_err mn_simrepl_run(const mn_simrepl_opts_t *o, mn_simrepl_scenario_t sc, mn_simrepl_result_t *r,
                      mn_error *err)
{
    if (o->nodes < 3 || o->nodes > MN__SIMREPL_NODES_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "nodes must be 3..%d", MN__SIMREPL_NODES_MAX);
    mn_err rc = mn_spaces_repl_config_check(&o->repl, err);
    if (rc != MN_OK) return rc;
    mn_simrepl_opts_t ro = *o;
    if (sc == MN_SIMREPL_REPLICA_SNAPSHOT && ro.wal_retain == 0) ro.wal_retain = 200;
    bool records = sc == MN_SIMREPL_MEMBERSHIP || sc == MN_SIMREPL_MEMBERSHIP_RANDOM;
    if (records && ro.nodes < 5) ro.nodes = 5;
    if (sc == MN_SIMREPL_RANDOM || sc == MN_SIMREPL_MEMBERSHIP_RANDOM) {
        mn_prng_t g;
        mn_prng_seed(&g, o->seed ^ 0x5eed);
        ro.link.loss = 0.05 * mn_prng_double(&g);
    }
    memset(r, 0, sizeof *r);
    r->failover_s = -1;
    mn_simrepl_t *h = mn__simrepl_new(&ro, r, records ? 3 : 0);
    if (!h) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    h->writing = true;
    mn__simrepl_advance(h, 1000);
    fault_phase(h, sc);
    mn__simrepl_advance(h, 1000);
    mn__simrepl_finish(h);
    mn__simrepl_free(h);
    return MN_OK;
}
