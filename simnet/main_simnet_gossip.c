/* `simnet gossip`: runs gossip scenarios (simnet/gossip_sim.c) and prints
 * each run's figures and whether every node converged on the judge's state.
 *
 *   simnet gossip --scenario converge --nodes 100 --seed 1   one run
 *   simnet gossip --scenario partition --runs 20             seeds seed..seed+19
 *   simnet gossip --random --runs 50                         random seeds, every scenario
 *
 * With --random the seeds are drawn from the OS and each failing one is
 * printed as a command line that replays it. Exit status 1 if any run failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "main_simnet_runs.h"
#include "mnemo/simnet.h"

int mn__simnet_gossip_main(int argc, char **argv);

typedef struct gossip_cli {
    mn_simgossip_opts_t o;
    const sim_runs *runs; /* its quiet flag */
} gossip_cli;

static void gossip_usage(FILE *f)
{
    fputs("usage: simnet gossip [options]\n"
          "  --scenario S     converge|loss|partition|random|join (all of them in turn)\n"
          "  --seed N         first seed (1); run r uses seed + r\n"
          "  --runs N         runs (1)\n"
          "  --random         draw each run's seed from the OS; print failing ones\n"
          "  --nodes N        nodes (100)\n"
          "  --spaces N       spaces every node starts with (4)\n"
          "  --records N      records per space at the start (250)\n"
          "  --holders R      scope holders: R holders per space (0: scope cluster)\n"
          "  --payload B      bytes of each version's payload (1024)\n"
          "  --loss P         datagram loss probability (0; loss: 0.05; random: 0..0.05)\n"
          "  --interval-ms MS gossip.interval_ms (1000)\n"
          "  --fanout N       gossip.fanout (3)\n"
          "  --steady-ms MS   the steady phase measured (10000)\n"
          "  --quiet          print failures and the summary only\n"
          "  --trace FILE     text trace of the first run\n",
          f);
}

static int gossip_flag(void *cli, const char *a, const char *v)
{
    mn_simgossip_opts_t *o = &((gossip_cli *)cli)->o;
    if (strcmp(a, "--nodes") == 0)
        o->nodes = atoi(v);
    else if (strcmp(a, "--spaces") == 0)
        o->spaces = atoi(v);
    else if (strcmp(a, "--records") == 0)
        o->records = atoi(v);
    else if (strcmp(a, "--holders") == 0)
        o->holders = atoi(v);
    else if (strcmp(a, "--payload") == 0)
        o->payload_bytes = atoi(v);
    else if (strcmp(a, "--loss") == 0)
        o->link.loss = atof(v);
    else if (strcmp(a, "--interval-ms") == 0)
        o->gossip.interval_ms = atoll(v);
    else if (strcmp(a, "--fanout") == 0)
        o->gossip.fanout = atoi(v);
    else if (strcmp(a, "--steady-ms") == 0)
        o->steady_ms = atoll(v);
    else
        return 2;
    return -1;
}

static int gossip_scenario(const char *name, int *out)
{
    mn_simgossip_scenario_t sc;
    if (mn_simgossip_scenario_parse(name, &sc) != MN_OK) return 1;
    *out = (int)sc;
    return 0;
}

static void print_run(mn_simgossip_scenario_t sc, uint64_t seed, int nodes,
                      const mn_simgossip_result_t *r)
{
    printf("%-9s seed %-20llu %s nodes %d changes %llu converge %.2f s (%.1f rounds; log2 N %.1f) "
           "heal %.2f s steady %.0f B/node/s %.2f frames/node/s converging %.0f B/node/s "
           "pushed %llu pulled %llu rejected %llu%s%s\n",
           mn_simgossip_scenario_name(sc), (unsigned long long)seed,
           mn_simgossip_ok(r) ? "ok  " : "FAIL", nodes, (unsigned long long)r->changes,
           r->converge_s, r->converge_rounds, log2((double)nodes), r->heal_s,
           r->steady_bytes_node_s, r->steady_frames_node_s, r->converge_bytes_node_s,
           (unsigned long long)r->stats.entries_pushed, (unsigned long long)r->stats.entries_pulled,
           (unsigned long long)r->stats.frames_rejected, r->converged ? "" : " NOT-CONVERGED",
           r->tombstones_held ? "" : " TOMBSTONE-LOST");
}

/* One run; returns true if it converged with its tombstones held. */
static bool one(void *cli, int scenario, uint64_t seed, FILE *trace)
{
    const gossip_cli *c = cli;
    mn_simgossip_scenario_t sc = (mn_simgossip_scenario_t)scenario;
    mn_simgossip_opts_t o = c->o;
    o.seed = seed;
    o.trace = trace;
    mn_simgossip_result_t r;
    mn_error err;
    if (mn_simgossip_run(&o, sc, &r, &err) != MN_OK) {
        fprintf(stderr, "simnet gossip: %s\n", err.message);
        return false;
    }
    bool ok = mn_simgossip_ok(&r);
    if (!c->runs->quiet || !ok) print_run(sc, seed, o.nodes, &r);
    if (!ok)
        printf("  replay: simnet gossip --scenario %s --seed %llu --nodes %d\n",
               mn_simgossip_scenario_name(sc), (unsigned long long)seed, o.nodes);
    return ok;
}

int mn__simnet_gossip_main(int argc, char **argv)
{
    gossip_cli c;
    mn_simgossip_opts_default(&c.o);
    sim_runs s = {.tool = "simnet gossip",
                  .seed = &c.o.seed,
                  .runs = 1,
                  .flag = gossip_flag,
                  .usage = gossip_usage,
                  .scenario_parse = gossip_scenario,
                  .first = MN_SIMGOSSIP_CONVERGE,
                  .last = MN_SIMGOSSIP_JOIN,
                  .one = one,
                  .cli = &c};
    c.runs = &s;
    int rc = mn__sim_runs_parse(&s, argc, argv);
    if (rc >= 0) return rc;
    return mn__sim_runs_run(&s);
}
