/* The flags and the run loop every `simnet` scenario runner shares
 * (main_simnet_runs.h). */
#include "main_simnet_runs.h"

#include <stdlib.h>
#include <string.h>

#include "mnemo/util.h"

static bool common_flag(sim_runs *s, const char *a, const char *v)
{
    if (strcmp(a, "--scenario") == 0)
        s->scenario = v;
    else if (strcmp(a, "--seed") == 0)
        *s->seed = strtoull(v, NULL, 10);
    else if (strcmp(a, "--runs") == 0)
        s->runs = atoi(v);
    else if (strcmp(a, "--trace") == 0)
        s->trace_path = v;
    else
        return false;
    return true;
}

int mn__sim_runs_parse(sim_runs *s, int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--random") == 0) {
            s->random = true;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            s->quiet = true;
            continue;
        }
        if (strcmp(a, "--help") == 0) {
            s->usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "%s: %s needs a value\n", s->tool, a);
            return 2;
        }
        if (!common_flag(s, a, v) && s->flag(s->cli, a, v) >= 0) {
            s->usage(stderr);
            return 2;
        }
        i++;
    }
    return s->runs >= 1 ? -1 : 2;
}

int mn__sim_runs_run(sim_runs *s)
{
    int first = s->first, last = s->last;
    if (s->scenario) {
        if (s->scenario_parse(s->scenario, &first) != 0) {
            fprintf(stderr, "%s: unknown scenario '%s'\n", s->tool, s->scenario);
            return 2;
        }
        last = first;
    }
    FILE *trace = s->trace_path ? fopen(s->trace_path, "w") : NULL;
    if (s->trace_path && !trace) {
        perror(s->trace_path);
        return 1;
    }
    uint64_t seed0 = *s->seed;
    int runs = 0, failed = 0;
    for (int r = 0; r < s->runs; r++)
        for (int sc = first; sc <= last; sc++) {
            uint64_t seed = s->random ? mn_random_seed() : seed0 + (uint64_t)r;
            runs++;
            failed += !s->one(s->cli, sc, seed, runs == 1 ? trace : NULL);
        }
    if (trace) fclose(trace);
    printf("%s: %d runs, %d failed\n", s->tool, runs, failed);
    return failed ? 1 : 0;
}
