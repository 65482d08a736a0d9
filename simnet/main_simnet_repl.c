/* `simnet repl`: runs replication scenarios (simnet/repl_sim.c) and prints
 * each run's figures and whether it kept every invariant.
 *
 *   simnet repl --scenario old-primary --seed 14        replay one run
 *   simnet repl --scenario random --runs 200            seeds seed..seed+199
 *   simnet repl --random --runs 500                     random seeds, every scenario
 *
 * With --random the seeds are drawn from the OS and each failing one is
 * printed as a command line that replays it (MN_SIMREPL_DEBUG=1 in the
 * environment prints what a node that did not converge holds). Exit status 1
 * if any run failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "main_simnet_runs.h"
#include "mnemo/simnet.h"

int mn__simnet_repl_main(int argc, char **argv);

typedef struct repl_cli {
    mn_simrepl_opts_t o;
    const sim_runs *runs; /* its quiet flag */
} repl_cli;

static void repl_usage(FILE *f)
{
    fputs("usage: simnet repl [options]\n"
          "  --scenario S     crash-primary|replica-wal|replica-snapshot|cut-replica|\n"
          "                   old-primary|flaps|handover|random|membership|\n"
          "                   membership-random (all of them in turn)\n"
          "  --seed N         first seed (1); run r uses seed + r\n"
          "  --runs N         runs (1)\n"
          "  --random         draw each run's seed from the OS; print failing ones\n"
          "  --nodes N        nodes, 3..7 (3; the membership scenarios: 5 at least)\n"
          "  --loss P         datagram loss probability (0; random: drawn 0..0.05)\n"
          "  --dup P          datagram duplication probability (0)\n"
          "  --reorder P      probability of an extra delay of up to 20 ms (0)\n"
          "  --writes N       client writes per second (400)\n"
          "  --detect-ms MS   the membership oracle's detection delay (1500)\n"
          "  --quiet          print failures and the summary only\n"
          "  --trace FILE     text trace of the first run\n",
          f);
}

static int repl_flag(void *cli, const char *a, const char *v)
{
    mn_simrepl_opts_t *o = &((repl_cli *)cli)->o;
    if (strcmp(a, "--nodes") == 0)
        o->nodes = atoi(v);
    else if (strcmp(a, "--loss") == 0)
        o->link.loss = atof(v);
    else if (strcmp(a, "--dup") == 0)
        o->link.dup = atof(v);
    else if (strcmp(a, "--reorder") == 0) {
        o->link.reorder = atof(v);
        o->link.reorder_us = 20000;
    } else if (strcmp(a, "--writes") == 0)
        o->writes_per_s = atof(v);
    else if (strcmp(a, "--detect-ms") == 0)
        o->detect_ms = atoll(v);
    else
        return 2;
    return -1;
}

static int repl_scenario(const char *name, int *out)
{
    mn_simrepl_scenario_t sc;
    if (mn_simrepl_scenario_parse(name, &sc) != MN_OK) return 1;
    *out = (int)sc;
    return 0;
}

static void print_run(mn_simrepl_scenario_t sc, uint64_t seed, const mn_simrepl_result_t *r)
{
    printf("%-16s seed %-20llu %s writes %llu acked %llu/%llu/%llu lost %llu/%llu/%llu epochs "
           "%llu conflicts %llu violations %llu failover %.3f s reapplied %llu truncations %llu "
           "snapshots %llu",
           mn_simrepl_scenario_name(sc), (unsigned long long)seed,
           mn_simrepl_ok(r) ? "ok  " : "FAIL", (unsigned long long)r->writes,
           (unsigned long long)r->acked[0], (unsigned long long)r->acked[1],
           (unsigned long long)r->acked[2], (unsigned long long)r->lost[0],
           (unsigned long long)r->lost[1], (unsigned long long)r->lost[2],
           (unsigned long long)r->epochs, (unsigned long long)r->primary_conflicts,
           (unsigned long long)r->log_violations, r->failover_s, (unsigned long long)r->reapplied,
           (unsigned long long)r->truncations, (unsigned long long)r->snapshots);
    if (r->records)
        printf(" records %llu voter-changes %llu dropped %llu%s", (unsigned long long)r->records,
               (unsigned long long)r->voter_changes, (unsigned long long)r->copies_dropped,
               r->settled ? "" : " (not settled)");
    printf("%s%s\n", r->has_primary ? "" : " NO-PRIMARY", r->converged ? "" : " NOT-CONVERGED");
}

/* One run; returns true if it kept every invariant. */
static bool one(void *cli, int scenario, uint64_t seed, FILE *trace)
{
    const repl_cli *c = cli;
    mn_simrepl_opts_t o = c->o;
    mn_simrepl_scenario_t sc = (mn_simrepl_scenario_t)scenario;
    o.seed = seed;
    o.trace = trace;
    mn_simrepl_result_t r;
    mn_error err;
    if (mn_simrepl_run(&o, sc, &r, &err) != MN_OK) {
        fprintf(stderr, "simnet repl: %s\n", err.message);
        return false;
    }
    bool ok = mn_simrepl_ok(&r);
    if (!c->runs->quiet || !ok) print_run(sc, seed, &r);
    if (!ok)
        printf("  replay: simnet repl --scenario %s --seed %llu --nodes %d\n",
               mn_simrepl_scenario_name(sc), (unsigned long long)seed, o.nodes);
    return ok;
}

int mn__simnet_repl_main(int argc, char **argv)
{
    repl_cli c;
    mn_simrepl_opts_default(&c.o);
    sim_runs s = {.tool = "simnet repl",
                  .seed = &c.o.seed,
                  .runs = 1,
                  .flag = repl_flag,
                  .usage = repl_usage,
                  .scenario_parse = repl_scenario,
                  .first = MN_SIMREPL_CRASH_PRIMARY,
                  .last = MN_SIMREPL_MEMBERSHIP_RANDOM,
                  .one = one,
                  .cli = &c};
    c.runs = &s;
    int rc = mn__sim_runs_parse(&s, argc, argv);
    if (rc >= 0) return rc;
    return mn__sim_runs_run(&s);
}
