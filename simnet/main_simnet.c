/* simnet command line: runs SWIM scenarios on the deterministic simulator and
 * prints detection times, false positives, message load and join times.
 *
 *   simnet swim --nodes 100 --loss 0.05 --seed 7 --scenario crash --profile fast --runs 20
 *
 * Run r uses seed + r; the same arguments always print the same figures.
 * Percentiles are nearest-rank over the completed samples, n= of them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mnemo/simnet.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: simnet swim [options]\n"
        "  --nodes N            cluster size (100)\n"
        "  --scenario S         steady|crash|partition|churn|join (crash)\n"
        "  --profile P          lan|fast (fast)\n"
        "  --runs N             independent runs, seeds seed..seed+N-1 (20 for crash, else 1)\n"
        "  --seed S             first seed (1)\n"
        "  --loss P             datagram loss probability (0)\n"
        "  --dup P              duplication probability (0)\n"
        "  --reorder P          probability of an extra delay of up to --reorder-ms (0)\n"
        "  --reorder-ms MS      (20)\n"
        "  --latency-us US      one-way base latency (500)\n"
        "  --jitter-us US       mean of the exponential extra delay (200)\n"
        "  --no-lifeguard       plain SWIM: fixed suspicion timeout, no health, no buddy,\n"
        "                       no suspect-first probing\n"
        "  --no-verify   keep Lifeguard but do not probe reported suspects first\n"
        "  --no-auth            no HMAC on datagrams\n"
        "  --steady-s S         fault-free phase before the fault (30)\n"
        "  --horizon-s S        wait for detection/convergence (3 x bound; 6 x for partition)\n"
        "  --churn-s S          churn phase length (60); --churn-every-s (5), --churn-down-s (20)\n"
        "  --oneway             partition: one-way\n"
        "  --slow-nodes N       degrade N nodes: their links add Exp(--slow-jitter-ms) delay\n"
        "  --slow-jitter-ms MS  (100)\n"
        "  --probe-ms MS --probe-timeout-ms MS --suspicion-mult N --gossip-ms MS\n"
        "  --gossip-nodes N --gossip-transmits N --retransmit-mult N --push-pull-ms MS\n"
        "  --confirmations N\n"
        "                       override the profile\n"
        "  --trace FILE         write the event trace of the first run\n"
        "  --per-run            print each run's fault times (suspected, first, all dead)\n");
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

static bool arg_is(const char *a, const char *name)
{
    return strcmp(a, name) == 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "swim") != 0) {
        usage(argc < 2 ? stderr : (arg_is(argv[1], "--help") ? stdout : stderr));
        return argc >= 2 && arg_is(argv[1], "--help") ? 0 : 2;
    }
    mn_log_configure(MN_LOG_WARN, MN_LOG_FORMAT_TEXT);
    mn_simswim_opts_t o;
    mn_simswim_opts_default(&o);
    o.steady_ms = 30000;
    o.slow_jitter_us = 100000;
    const char *profile = "fast", *scenario = "crash", *trace_path = NULL;
    int runs = 0; /* 0 = the scenario's default: 20 for crash (percentiles), else 1 */
    bool lifeguard = true, verify = true, per_run = false;
    double reorder_ms = 20;
    /* profile overrides, applied after the profile (-1 = keep) */
    long long probe = -1, probe_to = -1, smult = -1, gossip = -1, gnodes = -1, rmult = -1, pp = -1,
              conf = -2, gtx = -1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool used = true;
        if (arg_is(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (arg_is(a, "--no-lifeguard")) {
            lifeguard = false;
            verify = false;
            used = false;
        } else if (arg_is(a, "--no-verify")) {
            verify = false;
            used = false;
        } else if (arg_is(a, "--no-auth")) {
            o.auth = false;
            used = false;
        } else if (arg_is(a, "--per-run")) {
            per_run = true;
            used = false;
        } else if (arg_is(a, "--oneway")) {
            o.oneway = true;
            used = false;
        } else if (!v) {
            fprintf(stderr, "simnet: %s needs a value\n", a);
            return 2;
        } else if (arg_is(a, "--nodes"))
            o.nodes = atoi(v);
        else if (arg_is(a, "--scenario"))
            scenario = v;
        else if (arg_is(a, "--profile"))
            profile = v;
        else if (arg_is(a, "--runs"))
            runs = atoi(v);
        else if (arg_is(a, "--seed"))
            o.seed = strtoull(v, NULL, 10);
        else if (arg_is(a, "--loss"))
            o.link.loss = atof(v);
        else if (arg_is(a, "--dup"))
            o.link.dup = atof(v);
        else if (arg_is(a, "--reorder"))
            o.link.reorder = atof(v);
        else if (arg_is(a, "--reorder-ms"))
            reorder_ms = atof(v);
        else if (arg_is(a, "--latency-us"))
            o.link.latency_us = atoll(v);
        else if (arg_is(a, "--jitter-us"))
            o.link.jitter_us = atoll(v);
        else if (arg_is(a, "--steady-s"))
            o.steady_ms = (int64_t)(atof(v) * 1000);
        else if (arg_is(a, "--horizon-s"))
            o.horizon_ms = (int64_t)(atof(v) * 1000);
        else if (arg_is(a, "--churn-s"))
            o.churn_ms = (int64_t)(atof(v) * 1000);
        else if (arg_is(a, "--churn-every-s"))
            o.churn_every_ms = (int64_t)(atof(v) * 1000);
        else if (arg_is(a, "--churn-down-s"))
            o.churn_down_ms = (int64_t)(atof(v) * 1000);
        else if (arg_is(a, "--trace"))
            trace_path = v;
        else if (arg_is(a, "--probe-ms"))
            probe = atoll(v);
        else if (arg_is(a, "--probe-timeout-ms"))
            probe_to = atoll(v);
        else if (arg_is(a, "--suspicion-mult"))
            smult = atoll(v);
        else if (arg_is(a, "--gossip-ms"))
            gossip = atoll(v);
        else if (arg_is(a, "--gossip-nodes"))
            gnodes = atoll(v);
        else if (arg_is(a, "--retransmit-mult"))
            rmult = atoll(v);
        else if (arg_is(a, "--push-pull-ms"))
            pp = atoll(v);
        else if (arg_is(a, "--confirmations"))
            conf = atoll(v);
        else if (arg_is(a, "--gossip-transmits"))
            gtx = atoll(v);
        else if (arg_is(a, "--slow-nodes"))
            o.slow_nodes = atoi(v);
        else if (arg_is(a, "--slow-jitter-ms"))
            o.slow_jitter_us = (int64_t)(atof(v) * 1000);
        else {
            fprintf(stderr, "simnet: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (used) i++;
    }
    mn_simswim_scenario_t sc;
    if (mn_simswim_scenario_parse(scenario, &sc) != MN_OK) {
        fprintf(stderr, "simnet: unknown scenario %s\n", scenario);
        return 2;
    }
    if (mn_swim_config_profile(profile, &o.swim) != MN_OK) {
        fprintf(stderr, "simnet: unknown profile %s\n", profile);
        return 2;
    }
    o.swim.lifeguard = lifeguard;
    o.swim.verify = verify;
    if (probe >= 0) o.swim.probe_interval_ms = probe;
    if (probe_to >= 0) o.swim.probe_timeout_ms = probe_to;
    if (smult >= 0) o.swim.suspicion_mult = (int)smult;
    if (gossip >= 0) o.swim.gossip_interval_ms = gossip;
    if (gnodes >= 0) o.swim.gossip_nodes = (int)gnodes;
    if (rmult >= 0) o.swim.retransmit_mult = (int)rmult;
    if (pp >= 0) o.swim.push_pull_interval_ms = pp;
    if (conf >= -1) o.swim.suspicion_confirmations = (int)conf;
    if (gtx >= 0) o.swim.gossip_transmits = (int)gtx;
    o.link.reorder_us = (int64_t)(reorder_ms * 1000);
    if (runs == 0) runs = sc == MN_SIMSWIM_CRASH ? 20 : 1;
    if (runs < 1 || o.nodes < 2 || o.link.loss < 0 || o.link.loss >= 1) {
        fprintf(stderr, "simnet: need --runs >= 1, --nodes >= 2, 0 <= --loss < 1\n");
        return 2;
    }
    mn_error err;
    if (mn_swim_config_check(&o.swim, &err) != MN_OK) {
        fprintf(stderr, "simnet: %s\n", err.message);
        return 2;
    }

    printf("simnet swim: scenario=%s nodes=%d profile=%s lifeguard=%s verify=%s "
           "loss=%.3f dup=%.3f reorder=%.3f latency=%lldus+exp(%lldus) runs=%d seed=%llu "
           "auth=%s slow=%d\n",
           scenario, o.nodes, profile, lifeguard ? "on" : "off", verify ? "on" : "off", o.link.loss,
           o.link.dup, o.link.reorder, (long long)o.link.latency_us, (long long)o.link.jitter_us,
           runs, (unsigned long long)o.seed, o.auth ? "on" : "off", o.slow_nodes);
    char fanout[48] = "while any update is queued";
    if (o.swim.gossip_transmits > 0)
        snprintf(fanout, sizeof fanout, "while an update has < %d sends", o.swim.gossip_transmits);
    printf("timings: probe %lld ms, timeout %lld ms, k=%d, suspicion mult %d (max x%d), gossip "
           "%lld ms x%d (%s), retransmit mult %d, push-pull %lld ms; detection bound %.2f s\n",
           (long long)o.swim.probe_interval_ms, (long long)o.swim.probe_timeout_ms,
           o.swim.indirect_checks, o.swim.suspicion_mult, o.swim.suspicion_max_mult,
           (long long)o.swim.gossip_interval_ms, o.swim.gossip_nodes, fanout,
           o.swim.retransmit_mult, (long long)o.swim.push_pull_interval_ms,
           (double)mn_simswim_detect_bound_ms(&o.swim, o.nodes) / 1000.0);

    series form = {0}, susp = {0}, first = {0}, all = {0}, join = {0}, heal = {0};
    double msgs = 0, bytes = 0, sim_s = 0;
    mn_swim_stats_t st = {0};
    double node_s = 0;
    uint64_t net_sent = 0;
    uint64_t fp_dead = 0, fp_degraded = 0, suspicions = 0, raised = 0, refutes = 0, rechecks = 0,
             dropped_auth = 0, dropped_verify = 0;
    int fp_targets = 0, fp_targets_degraded = 0, undetected = 0, unformed = 0, unjoined = 0,
        aborted = 0;
    uint64_t hash = 0;
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    uint64_t seed0 = o.seed;
    for (int r = 0; r < runs; r++) {
        mn_simswim_opts_t ro = o;
        ro.seed = seed0 + (uint64_t)r;
        FILE *tf = NULL;
        if (r == 0 && trace_path) {
            tf = fopen(trace_path, "w");
            if (!tf) {
                perror(trace_path);
                return 1;
            }
            ro.trace = tf;
        }
        mn_simswim_result_t res;
        if (mn_simswim_run(&ro, sc, &res, &err) != MN_OK) {
            fprintf(stderr, "simnet: %s\n", err.message);
            return 1;
        }
        if (tf) fclose(tf);
        add(&form, res.formed ? res.formation_s : -1);
        unformed += !res.formed;
        for (size_t i = 0; i < res.n_faults; i++) {
            if (res.suspect_first_s) add(&susp, res.suspect_first_s[i]);
            if (per_run)
                printf("run seed %llu fault %zu: suspected %.3f s, first dead %.3f s, all %.3f s\n",
                       (unsigned long long)ro.seed, i,
                       res.suspect_first_s ? res.suspect_first_s[i] : -1.0, res.detect_first_s[i],
                       res.detect_all_s[i]);
            add(&first, res.detect_first_s[i]);
            add(&all, res.detect_all_s[i]);
        }
        for (size_t i = 0; i < res.n_joins; i++)
            add(&join, res.join_s[i]);
        if (sc == MN_SIMSWIM_PARTITION) add(&heal, res.heal_s);
        undetected += res.undetected;
        unjoined += res.joins_unconverged;
        aborted += res.joins_aborted;
        msgs += res.msgs_per_node_s;
        bytes += res.bytes_per_node_s;
        fp_dead += res.fp_dead;
        fp_targets += res.fp_targets;
        fp_degraded += res.fp_dead_degraded;
        fp_targets_degraded += res.fp_targets_degraded;
        suspicions += res.suspicions;
        refutes += res.swim.refutations;
        rechecks += res.swim.suspicion_rechecks;
        raised += res.swim.suspicions_raised;
        uint64_t *dst = (uint64_t *)&st;
        const uint64_t *src = (const uint64_t *)&res.steady;
        for (size_t k = 0; k < sizeof st / sizeof(uint64_t); k++)
            dst[k] += src[k];
        node_s += res.steady_node_s;
        net_sent += res.steady_net_sent;
        dropped_auth += res.swim.dropped_auth;
        dropped_verify += res.swim.dropped_verify;
        sim_s += res.sim_s;
        hash = hash * 1099511628211ull ^ res.trace_hash;
        mn_simswim_result_clear(&res);
    }
    clock_gettime(CLOCK_MONOTONIC, &w1);
    double wall = (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9;

    print_series("formation", &form);
    if (first.n) {
        if (susp.n) print_series("suspect first", &susp);
        print_series("detect first", &first);
        print_series("detect all", &all);
        printf("%-18s %d of %zu faults\n", "undetected", undetected, all.n);
    }
    if (join.n) {
        print_series(sc == MN_SIMSWIM_CHURN ? "rejoin" : "join", &join);
        if (unjoined) printf("%-18s %d\n", "joins unconverged", unjoined);
        if (aborted)
            printf("%-18s %d (crashed again before converging)\n", "joins aborted", aborted);
    }
    if (heal.n) print_series("heal", &heal);
    /* distinct nodes are summed over runs */
    printf("%-18s %llu dead declarations about live nodes (%d distinct nodes)", "false positives",
           (unsigned long long)fp_dead, fp_targets);
    if (o.slow_nodes > 0)
        printf("; %llu about degraded nodes, %d of them; %llu about healthy nodes, %d of them",
               (unsigned long long)fp_degraded, fp_targets_degraded,
               (unsigned long long)(fp_dead - fp_degraded), fp_targets - fp_targets_degraded);
    printf("\n");
    printf("%-18s %llu raised by failed probes, %llu suspect views of live nodes, %llu "
           "refutations, %llu rechecked at expiry\n",
           "suspicions", (unsigned long long)raised, (unsigned long long)suspicions,
           (unsigned long long)refutes, (unsigned long long)rechecks);
    printf("%-18s %.2f msgs/node/s, %.0f bytes/node/s (steady phase)\n", "load", msgs / runs,
           bytes / runs);
    if (node_s > 0) {
        /* every datagram the cores sent in the steady phase, per node per second, by
         * type; the core's own count must equal what the network was handed */
        double k = 1.0 / node_s;
        uint64_t total = 0;
        for (int i = 0; i < 8; i++)
            total += st.sent_kind[i];
        printf("%-18s ping %.2f (first %.2f, again %.2f, relayed %.2f, recheck %.2f), ack %.2f "
               "(relayed %.2f), "
               "ping-req %.2f, nack %.2f, gossip %.2f (answers %.2f), sync %.2f (replies %.2f); "
               "total %.2f, network %.2f\n",
               "by type /node/s", st.sent_kind[1] * k,
               (double)(st.sent_kind[1] - st.sent_ping_again - st.sent_ping_relay -
                        st.sent_ping_recheck) *
                   k,
               st.sent_ping_again * k, st.sent_ping_relay * k, st.sent_ping_recheck * k,
               st.sent_kind[2] * k, st.sent_ack_relay * k, st.sent_kind[3] * k, st.sent_kind[4] * k,
               st.sent_kind[5] * k, st.sent_gossip_answer * k, st.sent_kind[6] * k,
               st.sent_sync_reply * k, total * k, net_sent * k);
    }
    if (dropped_auth || dropped_verify)
        printf("%-18s auth %llu, verify %llu\n", "dropped", (unsigned long long)dropped_auth,
               (unsigned long long)dropped_verify);
    printf("%-18s %.0f simulated s in %.2f s wall, trace %016llx\n", "run", sim_s, wall,
           (unsigned long long)hash);
    free(form.v);
    free(first.v);
    free(susp.v);
    free(all.v);
    free(join.v);
    free(heal.v);
    return unformed ? 1 : 0;
}
