/* simnet command line: runs SWIM scenarios on the deterministic simulator and
 * prints detection times, false positives, message load and join times.
 *
 *   simnet swim --nodes 100 --loss 0.05 --seed 7 --scenario crash --profile fast --runs 20
 *
 * Run r uses seed + r; the same arguments always print the same figures.
 * Percentiles are nearest-rank over the completed samples, n= of them. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mnemo/simnet.h"

/* The command line, parsed into one struct through the option table below. */
typedef struct cli {
    mn_simswim_opts_t o;
    const char *profile, *scenario, *trace_path;
    int runs; /* 0 = the scenario's default: 20 for crash (percentiles), else 1 */
    bool no_lifeguard, no_verify, per_run;
    double reorder_ms;
    /* profile overrides, applied after the profile (-1 = keep; confirmations: -2) */
    int64_t probe_ms, probe_timeout_ms, suspicion_mult, gossip_ms, gossip_nodes, retransmit_mult,
        push_pull_ms, confirmations, gossip_transmits;
} cli;

typedef enum {
    OPT_TRUE,   /* flag: sets a bool */
    OPT_FALSE,  /* flag: clears a bool */
    OPT_INT,    /* atoi */
    OPT_I64,    /* atoll */
    OPT_U64,    /* strtoull, base 10 */
    OPT_DOUBLE, /* atof */
    OPT_X1000,  /* a decimal in the next larger unit, stored x 1000 (s -> ms, ms -> us) */
    OPT_STRING,
} opt_type;

typedef struct opt {
    const char *name;
    opt_type type;
    size_t off;       /* of the target in struct cli */
    const char *help; /* its lines of the usage text; NULL: told in another option's lines */
    bool ranged;      /* the parsed value must lie in [min, max] */
    double min, max;
} opt;

#define AT(field) offsetof(cli, field)
#define NO_RANGE false, 0, 0

/* In the order of the usage text. The ranges keep the scenarios' phases from
 * asking the simulator for an earlier time (or none later, a churn period of 0). */
static const opt OPTS[] = {
    {"--nodes", OPT_INT, AT(o.nodes), "  --nodes N            cluster size (100)\n", NO_RANGE},
    {"--scenario", OPT_STRING, AT(scenario),
     "  --scenario S         steady|crash|partition|churn|join (crash)\n", NO_RANGE},
    {"--profile", OPT_STRING, AT(profile), "  --profile P          lan|fast (fast)\n", NO_RANGE},
    {"--runs", OPT_INT, AT(runs),
     "  --runs N             independent runs, seeds seed..seed+N-1 (20 for crash, else 1)\n",
     NO_RANGE},
    {"--seed", OPT_U64, AT(o.seed), "  --seed S             first seed (1)\n", NO_RANGE},
    {"--loss", OPT_DOUBLE, AT(o.link.loss),
     "  --loss P             datagram loss probability (0)\n", NO_RANGE},
    {"--dup", OPT_DOUBLE, AT(o.link.dup), "  --dup P              duplication probability (0)\n",
     NO_RANGE},
    {"--reorder", OPT_DOUBLE, AT(o.link.reorder),
     "  --reorder P          probability of an extra delay of up to --reorder-ms (0)\n", NO_RANGE},
    {"--reorder-ms", OPT_DOUBLE, AT(reorder_ms), "  --reorder-ms MS      (20)\n", NO_RANGE},
    {"--latency-us", OPT_I64, AT(o.link.latency_us),
     "  --latency-us US      one-way base latency (500)\n", NO_RANGE},
    {"--jitter-us", OPT_I64, AT(o.link.jitter_us),
     "  --jitter-us US       mean of the exponential extra delay (200)\n", NO_RANGE},
    {"--no-lifeguard", OPT_TRUE, AT(no_lifeguard),
     "  --no-lifeguard       plain SWIM: fixed suspicion timeout, no health, no buddy,\n"
     "                       no suspect-first probing\n",
     NO_RANGE},
    {"--no-verify", OPT_TRUE, AT(no_verify),
     "  --no-verify   keep Lifeguard but do not probe reported suspects first\n", NO_RANGE},
    {"--no-auth", OPT_FALSE, AT(o.auth), "  --no-auth            no HMAC on datagrams\n", NO_RANGE},
    {"--steady-s", OPT_X1000, AT(o.steady_ms),
     "  --steady-s S         fault-free phase before the fault (30)\n", true, 0, 1e15},
    {"--horizon-s", OPT_X1000, AT(o.horizon_ms),
     "  --horizon-s S        wait for detection/convergence (3 x bound; 6 x for partition)\n",
     NO_RANGE},
    {"--churn-s", OPT_X1000, AT(o.churn_ms),
     "  --churn-s S          churn phase length (60); --churn-every-s (5), --churn-down-s (20)\n",
     true, 0, 1e15},
    {"--churn-every-s", OPT_X1000, AT(o.churn_every_ms), NULL, true, 0.001, 1e15},
    {"--churn-down-s", OPT_X1000, AT(o.churn_down_ms), NULL, true, 0, 1e15},
    {"--oneway", OPT_TRUE, AT(o.oneway), "  --oneway             partition: one-way\n", NO_RANGE},
    {"--slow-nodes", OPT_INT, AT(o.slow_nodes),
     "  --slow-nodes N       degrade N nodes: their links add Exp(--slow-jitter-ms) delay\n",
     NO_RANGE},
    {"--slow-jitter-ms", OPT_X1000, AT(o.slow_jitter_us), "  --slow-jitter-ms MS  (100)\n",
     NO_RANGE},
    {"--probe-ms", OPT_I64, AT(probe_ms),
     "  --probe-ms MS --probe-timeout-ms MS --suspicion-mult N --gossip-ms MS\n"
     "  --gossip-nodes N --gossip-transmits N --retransmit-mult N --push-pull-ms MS\n"
     "  --confirmations N\n"
     "                       override the profile\n",
     NO_RANGE},
    {"--probe-timeout-ms", OPT_I64, AT(probe_timeout_ms), NULL, NO_RANGE},
    {"--suspicion-mult", OPT_I64, AT(suspicion_mult), NULL, NO_RANGE},
    {"--gossip-ms", OPT_I64, AT(gossip_ms), NULL, NO_RANGE},
    {"--gossip-nodes", OPT_I64, AT(gossip_nodes), NULL, NO_RANGE},
    {"--gossip-transmits", OPT_I64, AT(gossip_transmits), NULL, NO_RANGE},
    {"--retransmit-mult", OPT_I64, AT(retransmit_mult), NULL, NO_RANGE},
    {"--push-pull-ms", OPT_I64, AT(push_pull_ms), NULL, NO_RANGE},
    {"--confirmations", OPT_I64, AT(confirmations), NULL, NO_RANGE},
    {"--trace", OPT_STRING, AT(trace_path),
     "  --trace FILE         write the event trace of the first run\n", NO_RANGE},
    {"--per-run", OPT_TRUE, AT(per_run),
     "  --per-run            print each run's fault times (suspected, first, all dead)\n",
     NO_RANGE},
};
#define N_OPTS (sizeof OPTS / sizeof OPTS[0])

static void usage(FILE *f)
{
    fputs("usage: simnet swim [options]\n"
          "       simnet repl [options]    (replication scenarios: simnet repl --help)\n"
          "       simnet gossip [options]  (gossip scenarios: simnet gossip --help)\n",
          f);
    for (size_t i = 0; i < N_OPTS; i++)
        if (OPTS[i].help) fputs(OPTS[i].help, f);
}

static const opt *find_opt(const char *name)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strcmp(OPTS[i].name, name) == 0) return &OPTS[i];
    return NULL;
}

static bool is_flag(const opt *op)
{
    return op->type == OPT_TRUE || op->type == OPT_FALSE;
}

/* Stores v into op's target in c; false if it lies outside op's range. */
static bool set_opt(cli *c, const opt *op, const char *v)
{
    void *target = (char *)c + op->off;
    double x = 0;
    switch (op->type) {
    case OPT_TRUE:
    case OPT_FALSE:
        *(bool *)target = op->type == OPT_TRUE;
        return true;
    case OPT_STRING:
        *(const char **)target = v;
        return true;
    case OPT_INT:
        x = *(int *)target = atoi(v);
        break;
    case OPT_I64:
        x = (double)(*(int64_t *)target = atoll(v));
        break;
    case OPT_U64:
        x = (double)(*(uint64_t *)target = strtoull(v, NULL, 10));
        break;
    case OPT_DOUBLE:
        x = *(double *)target = atof(v);
        break;
    case OPT_X1000:
        x = atof(v);
        *(int64_t *)target = (int64_t)(x * 1000);
        break;
    }
    return !op->ranged || (x >= op->min && x <= op->max);
}

static void cli_defaults(cli *c)
{
    memset(c, 0, sizeof *c);
    mn_simswim_opts_default(&c->o);
    c->o.steady_ms = 30000;
    c->o.slow_jitter_us = 100000;
    c->profile = "fast";
    c->scenario = "crash";
    c->reorder_ms = 20;
    c->probe_ms = c->probe_timeout_ms = c->suspicion_mult = c->gossip_ms = c->gossip_nodes = -1;
    c->retransmit_mult = c->push_pull_ms = c->gossip_transmits = -1;
    c->confirmations = -2;
}

/* Parses argv[2..] into c. Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, cli *c)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        const opt *op = find_opt(a);
        if (op && is_flag(op)) {
            set_opt(c, op, NULL);
            continue;
        }
        if (!v) {
            fprintf(stderr, "simnet: %s needs a value\n", a);
            return 2;
        }
        if (!op) {
            fprintf(stderr, "simnet: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (!set_opt(c, op, v)) {
            fprintf(stderr, "simnet: %s %s is outside [%g, %g]\n", a, v, op->min, op->max);
            return 2;
        }
        i++;
    }
    return -1;
}

/* The profile with the command line's overrides, into c->o.swim. */
static void apply_overrides(cli *c)
{
    mn_swim_config_t *w = &c->o.swim;
    w->lifeguard = !c->no_lifeguard;
    w->verify = !c->no_lifeguard && !c->no_verify;
    if (c->probe_ms >= 0) w->probe_interval_ms = c->probe_ms;
    if (c->probe_timeout_ms >= 0) w->probe_timeout_ms = c->probe_timeout_ms;
    if (c->suspicion_mult >= 0) w->suspicion_mult = (int)c->suspicion_mult;
    if (c->gossip_ms >= 0) w->gossip_interval_ms = c->gossip_ms;
    if (c->gossip_nodes >= 0) w->gossip_nodes = (int)c->gossip_nodes;
    if (c->retransmit_mult >= 0) w->retransmit_mult = (int)c->retransmit_mult;
    if (c->push_pull_ms >= 0) w->push_pull_interval_ms = c->push_pull_ms;
    if (c->confirmations >= -1) w->suspicion_confirmations = (int)c->confirmations;
    if (c->gossip_transmits >= 0) w->gossip_transmits = (int)c->gossip_transmits;
    c->o.link.reorder_us = (int64_t)(c->reorder_ms * 1000);
}

/* Scenario, profile and the checks of the whole. Returns -1 to go on, else the exit code. */
static int configure(cli *c, mn_simswim_scenario_t *sc)
{
    if (mn_simswim_scenario_parse(c->scenario, sc) != MN_OK) {
        fprintf(stderr, "simnet: unknown scenario %s\n", c->scenario);
        return 2;
    }
    if (mn_swim_config_profile(c->profile, &c->o.swim) != MN_OK) {
        fprintf(stderr, "simnet: unknown profile %s\n", c->profile);
        return 2;
    }
    apply_overrides(c);
    if (c->runs == 0) c->runs = *sc == MN_SIMSWIM_CRASH ? 20 : 1;
    if (c->runs < 1 || c->o.nodes < 2 || c->o.link.loss < 0 || c->o.link.loss >= 1) {
        fprintf(stderr, "simnet: need --runs >= 1, --nodes >= 2, 0 <= --loss < 1\n");
        return 2;
    }
    mn_error err;
    if (mn_swim_config_check(&c->o.swim, &err) != MN_OK) {
        fprintf(stderr, "simnet: %s\n", err.message);
        return 2;
    }
    return -1;
}

static void print_settings(const cli *c)
{
    const mn_simswim_opts_t *o = &c->o;
    printf("simnet swim: scenario=%s nodes=%d profile=%s lifeguard=%s verify=%s "
           "loss=%.3f dup=%.3f reorder=%.3f latency=%lldus+exp(%lldus) runs=%d seed=%llu "
           "auth=%s slow=%d\n",
           c->scenario, o->nodes, c->profile, o->swim.lifeguard ? "on" : "off",
           o->swim.verify ? "on" : "off", o->link.loss, o->link.dup, o->link.reorder,
           (long long)o->link.latency_us, (long long)o->link.jitter_us, c->runs,
           (unsigned long long)o->seed, o->auth ? "on" : "off", o->slow_nodes);
    char fanout[48] = "while any update is queued";
    if (o->swim.gossip_transmits > 0)
        snprintf(fanout, sizeof fanout, "while an update has < %d sends", o->swim.gossip_transmits);
    printf("timings: probe %lld ms, timeout %lld ms, k=%d, suspicion mult %d (max x%d), gossip "
           "%lld ms x%d (%s), retransmit mult %d, push-pull %lld ms; detection bound %.2f s\n",
           (long long)o->swim.probe_interval_ms, (long long)o->swim.probe_timeout_ms,
           o->swim.indirect_checks, o->swim.suspicion_mult, o->swim.suspicion_max_mult,
           (long long)o->swim.gossip_interval_ms, o->swim.gossip_nodes, fanout,
           o->swim.retransmit_mult, (long long)o->swim.push_pull_interval_ms,
           (double)mn_simswim_detect_bound_ms(&o->swim, o->nodes) / 1000.0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of the non-negative values (negative = missing). */
static double pct(const double *v, size_t n, double p, size_t *count)
{
    double *c = malloc((n ? n : 1) * sizeof *c);
    size_t k = 0;
    if (!c) return -1;
    for (size_t i = 0; i < n; i++)
        if (v[i] >= 0) c[k++] = v[i];
    if (count) *count = k;
    if (!k) {
        free(c);
        return -1;
    }
    qsort(c, k, sizeof *c, cmp_double);
    size_t idx = (size_t)ceil(p * (double)k);
    double r = c[idx ? idx - 1 : 0];
    free(c);
    return r;
}

typedef struct {
    double *v;
    size_t n, cap;
} series;

static void add(series *s, double x)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        double *nv = realloc(s->v, nc * sizeof *nv);
        if (!nv) return;
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = x;
}

static void print_series(const char *name, const series *s)
{
    size_t k = 0;
    double p50 = pct(s->v, s->n, 0.50, &k);
    double p99 = pct(s->v, s->n, 0.99, NULL);
    double mx = pct(s->v, s->n, 1.0, NULL);
    if (!k) {
        printf("%-18s n/a (%zu samples, none completed)\n", name, s->n);
        return;
    }
    /* with few samples p99 is just the maximum: n says how many there are */
    printf("%-18s p50 %7.3f s   p99 %7.3f s   max %7.3f s   (n=%zu", name, p50, p99, mx, k);
    if (k < s->n) printf("; %zu not completed", s->n - k);
    printf(")\n");
}

/* What the runs add up to. */
typedef struct totals {
    series form, susp, first, all, join, heal;
    double msgs, bytes, sim_s;
    mn_swim_stats_t steady; /* the steady phases' core counters */
    double node_s;
    uint64_t net_sent;
    uint64_t fp_dead, fp_degraded, suspicions, raised, refutes, rechecks, dropped_auth,
        dropped_verify;
    int fp_targets, fp_targets_degraded, undetected, unformed, unjoined, aborted;
    uint64_t hash;
} totals;

static void totals_free(totals *t)
{
    free(t->form.v);
    free(t->first.v);
    free(t->susp.v);
    free(t->all.v);
    free(t->join.v);
    free(t->heal.v);
}

static void print_faults(const mn_simswim_result_t *res, uint64_t seed)
{
    for (size_t i = 0; i < res->n_faults; i++)
        printf("run seed %llu fault %zu: suspected %.3f s, first dead %.3f s, all %.3f s\n",
               (unsigned long long)seed, i, res->suspect_first_s ? res->suspect_first_s[i] : -1.0,
               res->detect_first_s[i], res->detect_all_s[i]);
}

static void add_result(totals *t, const mn_simswim_result_t *res, mn_simswim_scenario_t sc)
{
    add(&t->form, res->formed ? res->formation_s : -1);
    t->unformed += !res->formed;
    for (size_t i = 0; i < res->n_faults; i++) {
        if (res->suspect_first_s) add(&t->susp, res->suspect_first_s[i]);
        add(&t->first, res->detect_first_s[i]);
        add(&t->all, res->detect_all_s[i]);
    }
    for (size_t i = 0; i < res->n_joins; i++)
        add(&t->join, res->join_s[i]);
    if (sc == MN_SIMSWIM_PARTITION) add(&t->heal, res->heal_s);
    t->undetected += res->undetected;
    t->unjoined += res->joins_unconverged;
    t->aborted += res->joins_aborted;
    t->msgs += res->msgs_per_node_s;
    t->bytes += res->bytes_per_node_s;
    t->fp_dead += res->fp_dead;
    t->fp_targets += res->fp_targets;
    t->fp_degraded += res->fp_dead_degraded;
    t->fp_targets_degraded += res->fp_targets_degraded;
    t->suspicions += res->suspicions;
    t->refutes += res->swim.refutations;
    t->rechecks += res->swim.suspicion_rechecks;
    t->raised += res->swim.suspicions_raised;
    mn_simswim_stats_add(&t->steady, &res->steady);
    t->node_s += res->steady_node_s;
    t->net_sent += res->steady_net_sent;
    t->dropped_auth += res->swim.dropped_auth;
    t->dropped_verify += res->swim.dropped_verify;
    t->sim_s += res->sim_s;
    t->hash = t->hash * 1099511628211ull ^ res->trace_hash;
}

/* Runs c->runs times (seed, seed + 1, ...). Returns 0, or the exit code of a failure. */
static int run_all(const cli *c, mn_simswim_scenario_t sc, totals *t)
{
    for (int r = 0; r < c->runs; r++) {
        mn_simswim_opts_t ro = c->o;
        ro.seed = c->o.seed + (uint64_t)r;
        FILE *tf = NULL;
        if (r == 0 && c->trace_path) {
            tf = fopen(c->trace_path, "w");
            if (!tf) {
                perror(c->trace_path);
                return 1;
            }
            ro.trace = tf;
        }
        mn_simswim_result_t res;
        mn_error err;
        if (mn_simswim_run(&ro, sc, &res, &err) != MN_OK) {
            fprintf(stderr, "simnet: %s\n", err.message);
            if (tf) fclose(tf);
            return 1;
        }
        if (tf) fclose(tf);
        if (c->per_run) print_faults(&res, ro.seed);
        add_result(t, &res, sc);
        mn_simswim_result_clear(&res);
    }
    return 0;
}

/* Every datagram the cores sent in the steady phase, per node per second, by
 * type; the core's own count must equal what the network was handed. */
static void print_by_type(const totals *t)
{
    const mn_swim_stats_t *st = &t->steady;
    double k = 1.0 / t->node_s;
    uint64_t total = 0;
    for (int i = 0; i < 8; i++)
        total += st->sent_kind[i];
    printf("%-18s ping %.2f (first %.2f, again %.2f, relayed %.2f, recheck %.2f), ack %.2f "
           "(relayed %.2f), "
           "ping-req %.2f, nack %.2f, gossip %.2f (answers %.2f), sync %.2f (replies %.2f); "
           "total %.2f, network %.2f\n",
           "by type /node/s", st->sent_kind[1] * k,
           (double)(st->sent_kind[1] - st->sent_ping_again - st->sent_ping_relay -
                    st->sent_ping_recheck) *
               k,
           st->sent_ping_again * k, st->sent_ping_relay * k, st->sent_ping_recheck * k,
           st->sent_kind[2] * k, st->sent_ack_relay * k, st->sent_kind[3] * k, st->sent_kind[4] * k,
           st->sent_kind[5] * k, st->sent_gossip_answer * k, st->sent_kind[6] * k,
           st->sent_sync_reply * k, total * k, t->net_sent * k);
}

static void print_totals(const cli *c, mn_simswim_scenario_t sc, const totals *t, double wall_s)
{
    print_series("formation", &t->form);
    if (t->first.n) {
        if (t->susp.n) print_series("suspect first", &t->susp);
        print_series("detect first", &t->first);
        print_series("detect all", &t->all);
        printf("%-18s %d of %zu faults\n", "undetected", t->undetected, t->all.n);
    }
    if (t->join.n) {
        print_series(sc == MN_SIMSWIM_CHURN ? "rejoin" : "join", &t->join);
        if (t->unjoined) printf("%-18s %d\n", "joins unconverged", t->unjoined);
        if (t->aborted)
            printf("%-18s %d (crashed again before converging)\n", "joins aborted", t->aborted);
    }
    if (t->heal.n) print_series("heal", &t->heal);
    /* distinct nodes are summed over runs */
    printf("%-18s %llu dead declarations about live nodes (%d distinct nodes)", "false positives",
           (unsigned long long)t->fp_dead, t->fp_targets);
    if (c->o.slow_nodes > 0)
        printf("; %llu about degraded nodes, %d of them; %llu about healthy nodes, %d of them",
               (unsigned long long)t->fp_degraded, t->fp_targets_degraded,
               (unsigned long long)(t->fp_dead - t->fp_degraded),
               t->fp_targets - t->fp_targets_degraded);
    printf("\n");
    printf("%-18s %llu raised by failed probes, %llu suspect views of live nodes, %llu "
           "refutations, %llu rechecked at expiry\n",
           "suspicions", (unsigned long long)t->raised, (unsigned long long)t->suspicions,
           (unsigned long long)t->refutes, (unsigned long long)t->rechecks);
    printf("%-18s %.2f msgs/node/s, %.0f bytes/node/s (steady phase)\n", "load", t->msgs / c->runs,
           t->bytes / c->runs);
    if (t->node_s > 0) print_by_type(t);
    if (t->dropped_auth || t->dropped_verify)
        printf("%-18s auth %llu, verify %llu\n", "dropped", (unsigned long long)t->dropped_auth,
               (unsigned long long)t->dropped_verify);
    printf("%-18s %.0f simulated s in %.2f s wall, trace %016llx\n", "run", t->sim_s, wall_s,
           (unsigned long long)t->hash);
}

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

int mn__simnet_repl_main(int argc, char **argv);   /* main_simnet_repl.c */
int mn__simnet_gossip_main(int argc, char **argv); /* main_simnet_gossip.c */

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "repl") == 0) return mn__simnet_repl_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "gossip") == 0) return mn__simnet_gossip_main(argc, argv);
    if (argc < 2 || strcmp(argv[1], "swim") != 0) {
        bool help = argc >= 2 && strcmp(argv[1], "--help") == 0;
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    mn_log_configure(MN_LOG_WARN, MN_LOG_FORMAT_TEXT);
    cli c;
    cli_defaults(&c);
    int rc = parse_args(argc, argv, &c);
    if (rc >= 0) return rc;
    mn_simswim_scenario_t sc;
    rc = configure(&c, &sc);
    if (rc >= 0) return rc;
    print_settings(&c);
    totals t;
    memset(&t, 0, sizeof t);
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    rc = run_all(&c, sc, &t);
    if (rc == 0) {
        clock_gettime(CLOCK_MONOTONIC, &w1);
        print_totals(&c, sc, &t, seconds_between(&w0, &w1));
        rc = t.unformed ? 1 : 0;
    }
    totals_free(&t);
    return rc;
}
