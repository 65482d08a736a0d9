/* What `simnet repl` and `simnet gossip` share: the flags every runner takes
 * (--scenario, --seed, --runs, --random, --quiet, --trace, --help) and the
 * loop over runs and scenarios that draws the seeds, writes the first run's
 * trace and prints the summary. Private to the simnet command line. */
#ifndef MNEMO_SIMNET_MAIN_SIMNET_RUNS_H
#define MNEMO_SIMNET_MAIN_SIMNET_RUNS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct sim_runs {
    const char *tool;     /* "simnet repl": prefixes messages */
    const char *scenario; /* --scenario; NULL: every scenario in turn */
    uint64_t *seed;       /* --seed writes here (the tool's options) */
    int runs;             /* --runs (1) */
    bool random, quiet;
    const char *trace_path;
    /* the tool's own flags with a value: -1 taken, >= 0 unknown */
    int (*flag)(void *cli, const char *name, const char *value);
    void (*usage)(FILE *f);
    /* scenario names: parse one into its number; first..last is "every one" */
    int (*scenario_parse)(const char *name, int *out);
    int first, last;
    /* one run: true if it kept every invariant (prints its own line) */
    bool (*one)(void *cli, int scenario, uint64_t seed, FILE *trace);
    void *cli;
} sim_runs;

/* Parses argv[2..]: -1 to go on, else the exit status (0 for --help). */
int mn__sim_runs_parse(sim_runs *s, int argc, char **argv);
/* Runs them all; the exit status (1 if any run failed, 2 for an unknown scenario). */
int mn__sim_runs_run(sim_runs *s);

#endif
