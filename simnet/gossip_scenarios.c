/* Gossip scenarios on simnet: scripts over the harness of gossip_sim.c.
 * Each run starts every node with the same records, lets a steady phase run
 * (its traffic is the steady-state cost: roots that agree), then:
 *  - converge: one new version of one record at node 0; time until every
 *    node's root equals the judge's;
 *  - loss: the same with 5 % of datagrams lost (unless a loss is given);
 *  - partition: two halves; on one side a record gets a new version and a
 *    record is created; on the other the same first record is forgotten (a
 *    tombstone racing the update), another is updated, retired and given a
 *    forgotten episode, and a new space appears; after 10 s the partition
 *    heals and the time to equal roots is the heal time;
 *  - random: for 20 s, every 500 ms one of: a burst of random changes at
 *    random running nodes, a random two-way partition, a heal, a pause or a
 *    resume; link loss 0..5 % drawn from the seed; then everything heals;
 *  - join: the last node crashes and starts again empty (a new node, or
 *    one whose disk was lost); the time until its root equals everyone's is
 *    the time to fetch every space in bounded batches.
 * Every run ends with the judge (equal roots, tombstones held). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gossip_sim_internal.h"

static const char *const NAMES[] = {"converge", "loss", "partition", "random", "join"};

mn_err mn_simgossip_scenario_parse(const char *s, mn_simgossip_scenario_t *out)
{
    for (size_t i = 0; s && i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (strcmp(s, NAMES[i]) == 0) {
            *out = (mn_simgossip_scenario_t)i;
            return MN_OK;
        }
    return MN_ERR_INVALID;
}

const char *mn_simgossip_scenario_name(mn_simgossip_scenario_t sc)
{
    return (size_t)sc < sizeof NAMES / sizeof NAMES[0] ? NAMES[sc] : "unknown";
}

void mn_simgossip_opts_default(mn_simgossip_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->nodes = 100;
    o->seed = 1;
    o->link.latency_us = 500;
    o->link.jitter_us = 200;
    mn_gossip_config_default(&o->gossip);
    o->spaces = 4;
    o->records = 250;
    o->payload_bytes = 1024;
    o->steady_ms = 10000;
    o->horizon_ms = 60000;
}

bool mn_simgossip_ok(const mn_simgossip_result_t *r)
{
    return r->converged && r->tombstones_held && r->converge_s >= 0;
}

/* Steady phase: what nodes that agree cost each other. */
static void steady(mn_simgossip_t *h)
{
    uint64_t b0, f0, b1, f1;
    mn__simgossip_advance(h, 1000); /* every node has had its first round */
    mn__simgossip_sent(h, &b0, &f0);
    mn__simgossip_advance(h, h->o.steady_ms);
    mn__simgossip_sent(h, &b1, &f1);
    double node_s = (double)h->n * (double)h->o.steady_ms / 1000.0;
    h->res->steady_bytes_node_s = (double)(b1 - b0) / node_s;
    h->res->steady_frames_node_s = (double)(f1 - f0) / node_s;
}

/* Converges after the last change; records the time and its traffic. */
static void converge(mn_simgossip_t *h)
{
    uint64_t b0, f0, b1, f1;
    mn__simgossip_sent(h, &b0, &f0);
    double s = mn__simgossip_converge(h, h->o.horizon_ms);
    mn__simgossip_sent(h, &b1, &f1);
    h->res->converge_s = s;
    h->res->converge_rounds = s < 0 ? -1 : s * 1000.0 / (double)h->o.gossip.interval_ms;
    if (s > 0) h->res->converge_bytes_node_s = (double)(b1 - b0) / ((double)h->n * s);
}

static void partition_halves(mn_simgossip_t *h)
{
    int *group = calloc((size_t)h->n, sizeof *group);
    mn_assert(group);
    for (int i = 0; i < h->n; i++)
        group[i] = i >= h->n / 2;
    mn_simnet_partition(h->net, group, false);
    free(group);
}

static void partition_script(mn_simgossip_t *h)
{
    int a = 0, b = h->n - 1, spaces = h->o.spaces;
    partition_halves(h);
    mn__simgossip_change(h, a, MN__SG_UPDATE, 0, 0);
    mn__simgossip_change(h, a, MN__SG_CREATE, 0, 0);
    mn__simgossip_advance(h, 2000);
    mn__simgossip_change(h, b, MN__SG_FORGET, 0, 0); /* later, and on the other side */
    mn__simgossip_change(h, b, MN__SG_UPDATE, spaces > 1 ? 1 : 0, 1);
    mn__simgossip_change(h, b, MN__SG_RETIRE, 0, 2);
    mn__simgossip_change(h, b, MN__SG_FORGET_EP, 0, 3);
    mn__simgossip_change(h, b, MN__SG_CREATE, spaces, 0); /* a space new to everyone */
    mn__simgossip_advance(h, 8000);
    mn__simgossip_change(h, a, MN__SG_UPDATE, 0, 0); /* after the forget: still forgotten */
    mn_simnet_heal(h->net);
    converge(h);
    h->res->heal_s = h->res->converge_s;
}

static void random_action(mn_simgossip_t *h)
{
    mn_prng_t *p = mn_simnet_prng(h->net);
    int node = (int)mn_prng_below(p, (uint64_t)h->n);
    switch (mn_prng_below(p, 8)) {
    case 0: {
        int *group = calloc((size_t)h->n, sizeof *group);
        mn_assert(group);
        for (int i = 0; i < h->n; i++)
            group[i] = (int)mn_prng_below(p, 2);
        mn_simnet_partition(h->net, group, false);
        free(group);
        break;
    }
    case 1:
        mn_simnet_heal(h->net);
        break;
    case 2:
        mn_simnet_pause(h->net, node);
        break;
    case 3:
        for (int i = 0; i < h->n; i++)
            mn_simnet_resume(h->net, i);
        break;
    default: {
        int burst = 1 + (int)mn_prng_below(p, 4);
        for (int i = 0; i < burst; i++) {
            int at = (int)mn_prng_below(p, (uint64_t)h->n);
            if (mn_simnet_state(h->net, at) != MN_SIMNET_UP) continue;
            mn__sg_change kind = (mn__sg_change)mn_prng_below(p, MN__SG_KINDS);
            int s = (int)mn_prng_below(p, (uint64_t)h->o.spaces + 1);
            uint64_t k = mn_prng_below(p, (uint64_t)h->o.records);
            mn__simgossip_change(h, at, kind, s, k);
        }
        break;
    }
    }
}

static void random_script(mn_simgossip_t *h)
{
    for (int t = 0; t < 40; t++) {
        random_action(h);
        mn__simgossip_advance(h, 500);
    }
    for (int i = 0; i < h->n; i++)
        mn_simnet_resume(h->net, i);
    mn_simnet_heal(h->net);
    converge(h);
    h->res->heal_s = h->res->converge_s;
}

mn_err mn_simgossip_run(const mn_simgossip_opts_t *o, mn_simgossip_scenario_t sc,
                        mn_simgossip_result_t *r, mn_error *err)
{
    if (o->nodes < 2 || o->nodes > 1000)
        return mn_error_set(err, MN_ERR_INVALID, "nodes must be 2..1000");
    if (o->spaces < 1 || o->spaces > 100000 || o->records < 4 || o->records > 100000)
        return mn_error_set(err, MN_ERR_INVALID, "spaces must be 1..100000, records 4..100000");
    if (o->holders < 0 || o->holders > o->nodes)
        return mn_error_set(err, MN_ERR_INVALID, "holders must be 0..nodes");
    if (o->payload_bytes < 0 || o->payload_bytes > (int)MN_GOSSIP_PAYLOAD_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "payload_bytes must be 0..%u",
                            MN_GOSSIP_PAYLOAD_MAX);
    mn_err rc = mn_gossip_config_check(&o->gossip, err);
    if (rc != MN_OK) return rc;
    mn_simgossip_opts_t go = *o;
    if (sc == MN_SIMGOSSIP_LOSS && go.link.loss == 0) go.link.loss = 0.05;
    if (sc == MN_SIMGOSSIP_RANDOM) {
        mn_prng_t g;
        mn_prng_seed(&g, o->seed ^ 0x5eed);
        go.link.loss = 0.05 * mn_prng_double(&g);
    }
    memset(r, 0, sizeof *r);
    r->converge_s = r->heal_s = -1;
    mn_simgossip_t *h = mn__simgossip_new(&go, r);
    if (!h) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    steady(h);
    switch (sc) {
    case MN_SIMGOSSIP_CONVERGE:
    case MN_SIMGOSSIP_LOSS:
        mn__simgossip_change(h, 0, MN__SG_UPDATE, 0, 0);
        converge(h);
        break;
    case MN_SIMGOSSIP_PARTITION:
        partition_script(h);
        break;
    case MN_SIMGOSSIP_RANDOM:
        random_script(h);
        break;
    case MN_SIMGOSSIP_JOIN:
        mn_simnet_crash(h->net, h->n - 1);
        h->nodes[h->n - 1].wiped = true;
        mn_simnet_start(h->net, h->n - 1);
        converge(h);
        break;
    }
    mn__simgossip_judge(h);
    mn__simgossip_free(h);
    return MN_OK;
}
