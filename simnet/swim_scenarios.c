/* Scenarios of the SWIM harness (steady, crash, partition, churn, join) and
 * their results: detection and join times from the faults and joins the
 * judge in swim_sim.c tracks, false positives, load in the steady phase.
 *
 * Churn never crashes a node restarted less than a detection bound ago (its
 * rejoin would be cut short), and a rejoin sample whose node crashes before
 * converging is dropped as aborted. */
#include <stdlib.h>
#include <string.h>

#include "swim_sim_internal.h"

mn_err mn_simswim_scenario_parse(const char *s, mn_simswim_scenario_t *out)
{
    static const char *names[] = {"steady", "crash", "partition", "churn", "join"};
    for (int i = 0; i < 5; i++)
        if (s && strcmp(s, names[i]) == 0) {
            *out = (mn_simswim_scenario_t)i;
            return MN_OK;
        }
    return MN_ERR_INVALID;
}

void mn_simswim_result_clear(mn_simswim_result_t *r)
{
    free(r->detect_first_s);
    free(r->detect_all_s);
    free(r->suspect_first_s);
    free(r->join_s);
    memset(r, 0, sizeof *r);
}

static bool crash_node(mn_simswim_t *h, int node)
{
    sim_fault *nf = realloc(h->faults, (h->n_faults + 1) * sizeof *nf);
    if (!nf) return false;
    h->faults = nf;
    sim_fault *f = &h->faults[h->n_faults];
    memset(f, 0, sizeof *f);
    f->seen = calloc((size_t)h->n, 1);
    if (!f->seen) return false;
    h->n_faults++;
    for (size_t i = 0; i < h->n_joins; i++)
        if (h->joins[i].node == node && h->joins[i].done_us < 0) h->joins[i].aborted = true;
    f->target = node;
    f->t0_us = mn_simnet_now(h->net);
    f->first_us = f->all_us = f->suspect_us = -1;
    f->open = true;
    mn_simnet_crash(h->net, node);
    for (int o = 0; o < h->n; o++) {
        if (o == node || mn_simnet_state(h->net, o) != MN_SIMNET_UP) {
            f->seen[o] = 1;
            continue;
        }
        f->expected++;
        if (*mn__simswim_view_at(h, o, node) == MN_SWIM_DEAD)
            mn__simswim_fault_seen(f, o, f->t0_us);
    }
    if (f->expected == 0) f->open = false;
    return true;
}

static void start_join(mn_simswim_t *h, int node)
{
    sim_join *nj = realloc(h->joins, (h->n_joins + 1) * sizeof *nj);
    if (!nj) return;
    h->joins = nj;
    h->joins[h->n_joins++] =
        (sim_join){.node = node, .t0_us = mn_simnet_now(h->net), .done_us = -1};
    mn_simnet_start(h->net, node);
}

static bool faults_open(const mn_simswim_t *h)
{
    for (size_t i = 0; i < h->n_faults; i++)
        if (h->faults[i].open) return true;
    return false;
}

static bool joins_open(const mn_simswim_t *h)
{
    for (size_t i = 0; i < h->n_joins; i++)
        if (h->joins[i].done_us < 0 && !h->joins[i].aborted) return true;
    return false;
}

typedef bool (*sim_cond)(const mn_simswim_t *h);

/* Runs until cond is false or the deadline. */
static void run_while(mn_simswim_t *h, sim_cond cond, int64_t deadline_us)
{
    while (cond(h) && mn_simnet_now(h->net) < deadline_us) {
        int64_t next_us = mn_simnet_now(h->net) + SIM_STEP_US;
        mn_simnet_run_until(h->net, next_us < deadline_us ? next_us : deadline_us);
    }
}

static bool part_open(const mn_simswim_t *h)
{
    return h->part.open;
}

static void form(mn_simswim_t *h, int count, mn_simswim_result_t *r)
{
    /* start times spread uniformly over join_spread_ms, in time order */
    int64_t *at_us = calloc((size_t)count, sizeof *at_us);
    if (!at_us) return;
    for (int i = 0; i < count; i++)
        at_us[i] = h->o.join_spread_ms > 0
                       ? (int64_t)mn_prng_below(mn_simnet_prng(h->net),
                                                (uint64_t)sim_ms_to_us(h->o.join_spread_ms))
                       : 0;
    for (int done = 0; done < count; done++) {
        int best = -1;
        for (int i = 0; i < count; i++)
            if (at_us[i] >= 0 && (best < 0 || at_us[i] < at_us[best])) best = i;
        mn_simnet_run_until(h->net, at_us[best]);
        mn_simnet_start(h->net, best);
        at_us[best] = -1;
    }
    free(at_us);
    r->formed = mn_simswim_run_until_converged(h, sim_ms_to_us(h->o.form_limit_ms));
    r->formation_s = (double)mn_simnet_now(h->net) / 1e6;
}

_Static_assert(sizeof(mn_swim_stats_t) % sizeof(uint64_t) == 0, "stats are uint64_t counters");

/* sum += x, or sum -= x with subtract, counter by counter (all fields are uint64_t). */
static void stats_combine(mn_swim_stats_t *sum, const mn_swim_stats_t *x, bool subtract)
{
    uint64_t *dst = (uint64_t *)sum;
    const uint64_t *src = (const uint64_t *)x;
    for (size_t k = 0; k < sizeof *x / sizeof(uint64_t); k++)
        dst[k] = subtract ? dst[k] - src[k] : dst[k] + src[k];
}

void mn_simswim_stats_add(mn_swim_stats_t *sum, const mn_swim_stats_t *x)
{
    stats_combine(sum, x, false);
}

/* Adds the counters of every running core to *out. */
static void sum_swim_stats(mn_simswim_t *h, mn_swim_stats_t *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < h->n; i++) {
        mn_swim_t *s = mn_simnet_core(h->net, i);
        if (!s) continue;
        mn_swim_stats_t st;
        mn_swim_stats_get(s, &st);
        stats_combine(out, &st, false);
    }
}

static void steady(mn_simswim_t *h, mn_simswim_result_t *r)
{
    mn_simnet_stats_t a, b;
    mn_swim_stats_t sa, sb;
    sum_swim_stats(h, &sa);
    mn_simnet_stats(h->net, -1, &a);
    int64_t t0_us = mn_simnet_now(h->net);
    int nodes = mn__simswim_running_count(h);
    mn_simnet_run_until(h->net, t0_us + sim_ms_to_us(h->o.steady_ms));
    mn_simnet_stats(h->net, -1, &b);
    sum_swim_stats(h, &sb);
    r->steady = sb;
    stats_combine(&r->steady, &sa, true);
    r->steady_net_sent = b.sent - a.sent;
    double secs = (double)(mn_simnet_now(h->net) - t0_us) / 1e6;
    r->steady_node_s = secs * nodes;
    if (secs > 0 && nodes > 0) {
        r->msgs_per_node_s = (double)(b.sent - a.sent) / (secs * nodes);
        r->bytes_per_node_s = (double)(b.sent_bytes - a.sent_bytes) / (secs * nodes);
    }
}

/* Can node i be crashed now: up, index >= skip_below, and started at least
 * min_age_us ago? */
static bool crashable(const mn_simswim_t *h, int i, int skip_below, int64_t min_age_us)
{
    return i >= skip_below && mn_simnet_state(h->net, i) == MN_SIMNET_UP &&
           h->started_us[i] <= mn_simnet_now(h->net) - min_age_us;
}

/* A random crashable node, or -1. */
static int random_running(mn_simswim_t *h, int skip_below, int64_t min_age_us)
{
    int c = 0;
    for (int i = 0; i < h->n; i++)
        c += crashable(h, i, skip_below, min_age_us);
    if (!c) return -1;
    int k = (int)mn_prng_below(mn_simnet_prng(h->net), (uint64_t)c);
    for (int i = 0; i < h->n; i++)
        if (crashable(h, i, skip_below, min_age_us) && k-- == 0) return i;
    return -1;
}

static void partition(mn_simswim_t *h, int64_t horizon_us, mn_simswim_result_t *r)
{
    h->group = calloc((size_t)h->n, sizeof *h->group);
    if (!h->group) return;
    /* a random half goes to group 1 */
    int *perm = malloc((size_t)h->n * sizeof *perm);
    if (!perm) return;
    for (int i = 0; i < h->n; i++)
        perm[i] = i;
    for (int i = h->n - 1; i > 0; i--) {
        int j = (int)mn_prng_below(mn_simnet_prng(h->net), (uint64_t)i + 1);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < h->n / 2; i++)
        h->group[perm[i]] = 1;
    free(perm);
    h->cross_expected = 0;
    h->cross_dead = 0;
    for (int o = 0; o < h->n; o++)
        for (int t = 0; t < h->n; t++)
            if (o != t && mn__simswim_cross(h, o, t) && mn__simswim_running(h, o) &&
                mn__simswim_running(h, t))
                h->cross_expected++;
    h->part = (sim_fault){
        .target = -1, .t0_us = mn_simnet_now(h->net), .first_us = -1, .all_us = -1, .open = true};
    mn_simnet_partition(h->net, h->group, h->o.oneway);
    run_while(h, part_open, h->part.t0_us + horizon_us);
    r->detect_first_s = malloc(sizeof(double));
    r->detect_all_s = malloc(sizeof(double));
    if (r->detect_first_s && r->detect_all_s) {
        r->n_faults = 1;
        r->detect_first_s[0] =
            h->part.first_us < 0 ? -1 : (double)(h->part.first_us - h->part.t0_us) / 1e6;
        r->detect_all_s[0] =
            h->part.all_us < 0 ? -1 : (double)(h->part.all_us - h->part.t0_us) / 1e6;
        if (h->part.all_us < 0) r->undetected++;
    }
    h->part.open = false;
    mn_simnet_heal(h->net);
    free(h->former);
    h->former = h->group;
    h->group = NULL;
    h->grace_until_us =
        mn_simnet_now(h->net) + sim_ms_to_us(mn_simswim_detect_bound_ms(&h->o.swim, h->n));
    int64_t t1_us = mn_simnet_now(h->net);
    bool ok = mn_simswim_run_until_converged(h, t1_us + horizon_us);
    r->heal_s = ok ? (double)(mn_simnet_now(h->net) - t1_us) / 1e6 : -1;
}

static void churn(mn_simswim_t *h, int64_t horizon_us)
{
    int64_t t0_us = mn_simnet_now(h->net), end_us = t0_us + sim_ms_to_us(h->o.churn_ms);
    int64_t bound_us = sim_ms_to_us(mn_simswim_detect_bound_ms(&h->o.swim, h->n));
    int64_t *restart_at_us = malloc((size_t)h->n * sizeof *restart_at_us);
    if (!restart_at_us) return;
    for (int i = 0; i < h->n; i++)
        restart_at_us[i] = -1;
    int64_t next_crash_us = t0_us;
    /* bounded: each pass advances the clock to the next action */
    for (;;) {
        int64_t now_us = mn_simnet_now(h->net);
        for (int i = 0; i < h->n; i++)
            if (restart_at_us[i] >= 0 && restart_at_us[i] <= now_us) {
                restart_at_us[i] = -1;
                start_join(h, i);
            }
        if (next_crash_us <= now_us && now_us < end_us) {
            /* not a node restarted less than a detection bound ago: its
             * rejoin would be cut short (and its crash detected while the
             * cluster still learns it is back) */
            int v = random_running(h, 0, bound_us);
            /* keep a majority running */
            if (v >= 0 && mn__simswim_running_count(h) > h->n / 2 + 1) {
                crash_node(h, v);
                restart_at_us[v] = now_us + sim_ms_to_us(h->o.churn_down_ms);
            }
            next_crash_us = now_us + sim_ms_to_us(h->o.churn_every_ms);
        }
        int64_t next_us = INT64_MAX;
        if (now_us < end_us) next_us = next_crash_us;
        for (int i = 0; i < h->n; i++)
            if (restart_at_us[i] >= 0 && restart_at_us[i] < next_us) next_us = restart_at_us[i];
        if (next_us == INT64_MAX) break;
        mn_simnet_run_until(h->net, next_us);
    }
    free(restart_at_us);
    int64_t deadline_us = mn_simnet_now(h->net) + horizon_us;
    run_while(h, faults_open, deadline_us);
    run_while(h, joins_open, deadline_us);
}

static void collect(mn_simswim_t *h, mn_simswim_result_t *r)
{
    if (h->n_faults) {
        r->detect_first_s = malloc(h->n_faults * sizeof(double));
        r->detect_all_s = malloc(h->n_faults * sizeof(double));
        r->suspect_first_s = malloc(h->n_faults * sizeof(double));
        if (r->detect_first_s && r->detect_all_s && r->suspect_first_s) {
            r->n_faults = h->n_faults;
            for (size_t i = 0; i < h->n_faults; i++) {
                sim_fault *f = &h->faults[i];
                r->detect_first_s[i] =
                    f->first_us < 0 ? -1 : (double)(f->first_us - f->t0_us) / 1e6;
                r->suspect_first_s[i] =
                    f->suspect_us < 0 ? -1 : (double)(f->suspect_us - f->t0_us) / 1e6;
                r->detect_all_s[i] = f->all_us < 0 ? -1 : (double)(f->all_us - f->t0_us) / 1e6;
                if (f->all_us < 0) r->undetected++;
            }
        }
    }
    if (h->n_joins) {
        r->join_s = malloc(h->n_joins * sizeof(double));
        if (r->join_s) {
            for (size_t i = 0; i < h->n_joins; i++) {
                sim_join *j = &h->joins[i];
                if (j->aborted) {
                    r->joins_aborted++;
                    continue;
                }
                r->join_s[r->n_joins++] =
                    j->done_us < 0 ? -1 : (double)(j->done_us - j->t0_us) / 1e6;
                if (j->done_us < 0) r->joins_unconverged++;
            }
        }
    }
    r->fp_dead = h->fp_dead;
    r->fp_dead_degraded = h->fp_dead_degraded;
    r->suspicions = h->suspicions;
    for (int i = 0; i < h->n; i++) {
        r->fp_targets += h->fp_marked[i];
        r->fp_targets_degraded += h->fp_marked[i] && i >= h->first_slow;
    }
    r->sim_s = (double)mn_simnet_now(h->net) / 1e6;
    r->events = h->events;
    r->trace_hash = mn_simnet_trace_hash(h->net);
    sum_swim_stats(h, &r->swim);
}

/* The phases' lengths: the scenarios move the clock by them, and the clock
 * never moves back (a negative length would ask simnet for an earlier time;
 * a zero churn period would never move it on). */
static mn_err check_durations(const mn_simswim_opts_t *o, mn_simswim_scenario_t sc, mn_error *err)
{
    const struct {
        const char *name;
        int64_t ms, min_ms;
    } d[] = {
        {"join_spread_ms", o->join_spread_ms, 0},
        {"form_limit_ms", o->form_limit_ms, 0},
        {"steady_ms", o->steady_ms, 0},
        {"churn_ms", sc == MN_SIMSWIM_CHURN ? o->churn_ms : 0, 0},
        {"churn_every_ms", sc == MN_SIMSWIM_CHURN ? o->churn_every_ms : 1, 1},
        {"churn_down_ms", sc == MN_SIMSWIM_CHURN ? o->churn_down_ms : 0, 0},
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
        if (d[i].ms < d[i].min_ms)
            return mn_error_set(err, MN_ERR_INVALID, "simswim: %s = %lld is below %lld", d[i].name,
                                (long long)d[i].ms, (long long)d[i].min_ms);
    return MN_OK;
}

mn_err mn_simswim_run(const mn_simswim_opts_t *o, mn_simswim_scenario_t sc, mn_simswim_result_t *r,
                      mn_error *err)
{
    if (!o || !r) return mn_error_set(err, MN_ERR_INVALID, "simswim: no options");
    memset(r, 0, sizeof *r);
    if (o->nodes < 2) return mn_error_set(err, MN_ERR_INVALID, "simswim: need 2+ nodes");
    mn_err rc = mn_swim_config_check(&o->swim, err);
    if (rc == MN_OK) rc = check_durations(o, sc, err);
    if (rc != MN_OK) return rc;
    mn_simswim_t *h = mn_simswim_new(o);
    if (!h) return mn_error_set(err, MN_ERR_NOMEM, "simswim: out of memory");
    /* a partition: every node has to see half the cluster fail by its own
     * probes (verify), so give it twice as long as a single crash */
    int64_t bounds = sc == MN_SIMSWIM_PARTITION ? 6 : 3;
    int64_t horizon_us =
        o->horizon_ms > 0 ? sim_ms_to_us(o->horizon_ms)
                          : bounds * sim_ms_to_us(mn_simswim_detect_bound_ms(&o->swim, o->nodes));
    form(h, sc == MN_SIMSWIM_JOIN ? h->n - 1 : h->n, r);
    mn_simnet_trace_note(h->net, "formed");
    /* false positives count from the end of formation */
    h->fp_dead = 0;
    h->fp_dead_degraded = 0;
    h->suspicions = 0;
    memset(h->fp_marked, 0, (size_t)h->n);
    steady(h, r);
    switch (sc) {
    case MN_SIMSWIM_CRASH:
        crash_node(h, random_running(h, 1, 0));
        run_while(h, faults_open, mn_simnet_now(h->net) + horizon_us);
        break;
    case MN_SIMSWIM_PARTITION:
        partition(h, horizon_us, r);
        break;
    case MN_SIMSWIM_CHURN:
        churn(h, horizon_us);
        break;
    case MN_SIMSWIM_JOIN:
        start_join(h, h->n - 1);
        run_while(h, joins_open, mn_simnet_now(h->net) + horizon_us);
        break;
    default:
        break;
    }
    collect(h, r);
    mn_simswim_free(h);
    return MN_OK;
}
