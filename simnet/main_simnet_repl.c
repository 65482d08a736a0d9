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

#include "mnemo/simnet.h"

int mn__simnet_repl_main(int argc, char **argv);

typedef struct repl_cli {
    mn_simrepl_opts_t o;
    const char *scenario; /* NULL: every scenario in turn */
    int runs;
    bool random, quiet;
    const char *trace_path;
} repl_cli;

static void repl_usage(FILE *f)
{
    fputs("usage: simnet repl [options]\n"
          "  --scenario S     crash-primary|replica-wal|replica-snapshot|cut-replica|\n"
          "                   old-primary|flaps|random (all of them in turn)\n"
          "  --seed N         first seed (1); run r uses seed + r\n"
          "  --runs N         runs (1)\n"
          "  --random         draw each run's seed from the OS; print failing ones\n"
          "  --nodes N        holders, 3..7 (3)\n"
          "  --loss P         datagram loss probability (0; random: drawn 0..0.05)\n"
          "  --dup P          datagram duplication probability (0)\n"
          "  --reorder P      probability of an extra delay of up to 20 ms (0)\n"
          "  --writes N       client writes per second (400)\n"
          "  --detect-ms MS   the membership oracle's detection delay (1500)\n"
          "  --quiet          print failures and the summary only\n"
          "  --trace FILE     text trace of the first run\n",
          f);
}

static int parse(int argc, char **argv, repl_cli *c)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes =
            strcmp(a, "--random") != 0 && strcmp(a, "--quiet") != 0 && strcmp(a, "--help") != 0;
        if (takes && !v) {
            fprintf(stderr, "simnet repl: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--scenario") == 0)
            c->scenario = v;
        else if (strcmp(a, "--seed") == 0)
            c->o.seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--runs") == 0)
            c->runs = atoi(v);
        else if (strcmp(a, "--nodes") == 0)
            c->o.nodes = atoi(v);
        else if (strcmp(a, "--loss") == 0)
            c->o.link.loss = atof(v);
        else if (strcmp(a, "--dup") == 0)
            c->o.link.dup = atof(v);
        else if (strcmp(a, "--reorder") == 0) {
            c->o.link.reorder = atof(v);
            c->o.link.reorder_us = 20000;
        } else if (strcmp(a, "--writes") == 0)
            c->o.writes_per_s = atof(v);
        else if (strcmp(a, "--detect-ms") == 0)
            c->o.detect_ms = atoll(v);
        else if (strcmp(a, "--trace") == 0)
            c->trace_path = v;
        else if (strcmp(a, "--random") == 0)
            c->random = true;
        else if (strcmp(a, "--quiet") == 0)
            c->quiet = true;
        else if (strcmp(a, "--help") == 0) {
            repl_usage(stdout);
            return 0;
        } else {
            repl_usage(stderr);
            return 2;
        }
        i += takes;
    }
    return c->runs >= 1 ? -1 : 2;
}

static void print_run(mn_simrepl_scenario_t sc, uint64_t seed, const mn_simrepl_result_t *r)
{
    printf("%-16s seed %-20llu %s writes %llu acked %llu/%llu/%llu lost %llu/%llu/%llu epochs "
           "%llu conflicts %llu violations %llu failover %.3f s reapplied %llu truncations %llu "
           "snapshots %llu%s%s\n",
           mn_simrepl_scenario_name(sc), (unsigned long long)seed,
           mn_simrepl_ok(r) ? "ok  " : "FAIL", (unsigned long long)r->writes,
           (unsigned long long)r->acked[0], (unsigned long long)r->acked[1],
           (unsigned long long)r->acked[2], (unsigned long long)r->lost[0],
           (unsigned long long)r->lost[1], (unsigned long long)r->lost[2],
           (unsigned long long)r->epochs, (unsigned long long)r->primary_conflicts,
           (unsigned long long)r->log_violations, r->failover_s, (unsigned long long)r->reapplied,
           (unsigned long long)r->truncations, (unsigned long long)r->snapshots,
           r->has_primary ? "" : " NO-PRIMARY", r->converged ? "" : " NOT-CONVERGED");
}

/* One run; returns true if it kept every invariant. */
static bool one(const repl_cli *c, mn_simrepl_scenario_t sc, uint64_t seed, FILE *trace)
{
    mn_simrepl_opts_t o = c->o;
    o.seed = seed;
    o.trace = trace;
    mn_simrepl_result_t r;
    mn_error err;
    if (mn_simrepl_run(&o, sc, &r, &err) != MN_OK) {
        fprintf(stderr, "simnet repl: %s\n", err.message);
        return false;
    }
    bool ok = mn_simrepl_ok(&r);
    if (!c->quiet || !ok) print_run(sc, seed, &r);
    if (!ok)
        printf("  replay: simnet repl --scenario %s --seed %llu --nodes %d\n",
               mn_simrepl_scenario_name(sc), (unsigned long long)seed, o.nodes);
    return ok;
}

int mn__simnet_repl_main(int argc, char **argv)
{
    repl_cli c = {.runs = 1};
    mn_simrepl_opts_default(&c.o);
    int rc = parse(argc, argv, &c);
    if (rc >= 0) return rc;
    mn_simrepl_scenario_t first = MN_SIMREPL_CRASH_PRIMARY, last = MN_SIMREPL_RANDOM;
    if (c.scenario) {
        if (mn_simrepl_scenario_parse(c.scenario, &first) != MN_OK) {
            fprintf(stderr, "simnet repl: unknown scenario '%s'\n", c.scenario);
            return 2;
        }
        last = first;
    }
    FILE *trace = c.trace_path ? fopen(c.trace_path, "w") : NULL;
    if (c.trace_path && !trace) {
        perror(c.trace_path);
        return 1;
    }
    int runs = 0, failed = 0;
    for (int r = 0; r < c.runs; r++)
        for (int sc = (int)first; sc <= (int)last; sc++) {
            uint64_t seed = c.random ? mn_random_seed() : c.o.seed + (uint64_t)r;
            runs++;
            failed += !one(&c, (mn_simrepl_scenario_t)sc, seed, runs == 1 ? trace : NULL);
        }
    if (trace) fclose(trace);
    printf("simnet repl: %d runs, %d failed\n", runs, failed);
    return failed ? 1 : 0;
}
