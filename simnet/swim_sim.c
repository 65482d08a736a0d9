/* SWIM harness for simnet: N swim cores on simulated links, a ground-truth
 * view matrix fed by their membership events, and the scenarios behind the
 * `simnet swim` command and the cluster tests.
 *
 * Node i is "n<i>" at 10.x.y.z:7946 and joins through the first three nodes.
 * A (re)started core begins at incarnation = virtual seconds since the start,
 * as the server does with wall-clock seconds, so a restarted node outranks
 * its dead former self.
 *
 * Ground truth for judging the cores: the harness knows each node's lives
 * (a life begins at each start; its first incarnation is the start time in
 * seconds, and the core only ever raises it). A dead (or suspect)
 * declaration about target T at incarnation i is a false positive when T is
 * running its current life (simnet has it UP, not crashed or paused), no
 * partition or block cuts either direction between observer and T, and i
 * belongs to that life (i >= the life's first incarnation) -- whether or not
 * T has refuted since. Exempt: declarations about a former life (i below the
 * current life's first incarnation: a restarted node's old self), about a
 * node paused through mn_simswim_pause less than a detection bound ago at
 * the incarnation it was paused with, and about the other side of a
 * partition healed less than a detection bound ago. A dead declaration about
 * a crashed target is a detection, timed from the crash. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/simnet.h"

#define SIM_SEEDS 3
#define SIM_STEP_US 10000 /* condition checks every 10 ms of virtual time */

typedef struct sim_fault {
    int target; /* crashed node; -1 = a partition (cross pairs) */
    int64_t t0, first, all;
    int64_t suspect; /* first suspect view after the crash */
    uint8_t *seen;
    int expected, got;
    bool open;
} sim_fault;

typedef struct sim_join {
    int node;
    int64_t t0, done; /* done < 0: open */
    bool aborted;     /* its node crashed before the join converged: no sample */
} sim_join;

typedef struct sim_slot {
    mn_simswim_t *h;
    int idx;
} sim_slot;

struct mn_simswim {
    mn_simswim_opts_t o;
    mn_simnet_t *net;
    int n;
    sim_slot *slots;
    int8_t *view;   /* n * n: state of tgt in obs's view, -1 unknown */
    int *known_cnt; /* running observers that see tgt alive or suspect */
    uint8_t *fp_marked;
    uint64_t fp_dead, fp_dead_degraded, suspicions, events;
    int first_slow;       /* nodes >= this are degraded (slow links) */
    uint64_t *life_inc;   /* per node: first incarnation of its current life */
    int64_t *started;     /* per node: virtual time of its last start (-1 never) */
    uint64_t *pause_inc;  /* per node: incarnation when last paused (mn_simswim_pause) */
    int64_t *pause_grace; /* per node: declarations at <= pause_inc exempt until then */
    sim_fault *faults;
    size_t n_faults;
    int *group;  /* partition groups, NULL when whole */
    int *former; /* groups of the last partition, for the grace period after heal */
    int64_t grace_until;
    int64_t cross_expected, cross_dead;
    sim_fault part;
    sim_join *joins;
    size_t n_joins;
};

static int64_t ms(int64_t v)
{
    return v * 1000;
}

static int8_t *view_at(const mn_simswim_t *h, int obs, int tgt)
{
    return &h->view[(size_t)obs * (size_t)h->n + (size_t)tgt];
}

static int parse_node(const mn_simswim_t *h, const char *id)
{
    if (id[0] != 'n') return -1;
    char *end = NULL;
    long v = strtol(id + 1, &end, 10);
    return (*end || v < 0 || v >= h->n) ? -1 : (int)v;
}

static bool running(const mn_simswim_t *h, int i)
{
    return mn_simnet_state(h->net, i) != MN_SIMNET_DOWN;
}

static bool reachable(const mn_simswim_t *h, int obs, int tgt)
{
    return mn_simnet_state(h->net, tgt) == MN_SIMNET_UP && !mn_simnet_cut(h->net, obs, tgt) &&
           !mn_simnet_cut(h->net, tgt, obs);
}

/* Is a suspect or dead declaration about tgt, at incarnation inc, wrong?
 * Yes when tgt is running and reachable and inc belongs to its current life,
 * even if tgt has refuted since (the observer missed the refutation). Not if
 * it is about a former life, about a pause that ended less than a detection
 * bound ago, or about the other side of a partition healed less than a
 * detection bound ago (suspicions begun while it was real). */
static bool wrongly_accused(const mn_simswim_t *h, int obs, int tgt, uint64_t inc, int64_t now)
{
    if (!reachable(h, obs, tgt)) return false;
    if (inc < h->life_inc[tgt]) return false;
    if (now < h->pause_grace[tgt] && inc <= h->pause_inc[tgt]) return false;
    if (h->former && now < h->grace_until && h->former[obs] != h->former[tgt]) return false;
    return true;
}

static bool cross(const mn_simswim_t *h, int a, int b)
{
    return h->group && h->group[a] != h->group[b];
}

static int running_count(const mn_simswim_t *h)
{
    int c = 0;
    for (int i = 0; i < h->n; i++)
        c += running(h, i);
    return c;
}

static void fault_seen(sim_fault *f, int obs, int64_t now)
{
    if (!f->open || f->seen[obs]) return;
    f->seen[obs] = 1;
    f->got++;
    if (f->first < 0) f->first = now;
    if (f->got >= f->expected) {
        f->all = now;
        f->open = false;
    }
}

static void check_join(mn_simswim_t *h, int tgt, int64_t now)
{
    for (size_t i = 0; i < h->n_joins; i++) {
        sim_join *j = &h->joins[i];
        if (j->node == tgt && j->done < 0 && !j->aborted && running(h, tgt) &&
            h->known_cnt[tgt] >= running_count(h) - 1)
            j->done = now;
    }
}

static void on_event(void *user, const mn_swim_event_t *ev)
{
    sim_slot *sl = user;
    mn_simswim_t *h = sl->h;
    int obs = sl->idx, tgt = parse_node(h, ev->id);
    if (tgt < 0 || tgt == obs) return;
    int64_t now = ev->now_us;
    h->events++;
    bool wrong = ev->state != MN_SWIM_ALIVE && ev->state != MN_SWIM_LEFT &&
                 wrongly_accused(h, obs, tgt, ev->incarnation, now);
    mn_simnet_trace_note(h->net, "view %d %d %s %llu%s", obs, tgt, mn_swim_state_name(ev->state),
                         (unsigned long long)ev->incarnation, wrong ? " wrong" : "");
    int8_t *v = view_at(h, obs, tgt);
    int old = *v;
    *v = (int8_t)ev->state;
    bool was = old == MN_SWIM_ALIVE || old == MN_SWIM_SUSPECT;
    bool is = ev->state == MN_SWIM_ALIVE || ev->state == MN_SWIM_SUSPECT;
    h->known_cnt[tgt] += (int)is - (int)was;
    if (cross(h, obs, tgt) && running(h, obs) && running(h, tgt)) {
        if (old != MN_SWIM_DEAD && ev->state == MN_SWIM_DEAD) {
            h->cross_dead++;
            if (h->part.open && h->part.first < 0) h->part.first = now;
        } else if (old == MN_SWIM_DEAD && ev->state != MN_SWIM_DEAD) {
            h->cross_dead--;
        }
        if (h->part.open && h->cross_dead >= h->cross_expected) {
            h->part.all = now;
            h->part.open = false;
        }
    }
    if (ev->state == MN_SWIM_DEAD) {
        if (wrong) {
            h->fp_dead++;
            h->fp_dead_degraded += tgt >= h->first_slow;
            h->fp_marked[tgt] = 1;
        }
        for (size_t i = 0; i < h->n_faults; i++)
            if (h->faults[i].target == tgt) fault_seen(&h->faults[i], obs, now);
    } else if (ev->state == MN_SWIM_SUSPECT && wrong) {
        h->suspicions++;
    } else if (ev->state == MN_SWIM_SUSPECT) {
        for (size_t i = 0; i < h->n_faults; i++)
            if (h->faults[i].target == tgt && h->faults[i].open && h->faults[i].suspect < 0)
                h->faults[i].suspect = now;
    } else if (ev->state == MN_SWIM_ALIVE) {
        check_join(h, tgt, now);
    }
}

/* ---- node ops ---- */

static const uint8_t sim_key[] = "simnet cluster key";

static void sim_send(void *user, const mn_swim_addr_t *to, const uint8_t *buf, size_t len)
{
    sim_slot *sl = user;
    mn_simnet_send(sl->h->net, sl->idx, to, buf, len);
}

static void *sim_create(void *arg, mn_simnet_t *net, int node, int64_t now, uint64_t seed)
{
    sim_slot *sl = arg;
    mn_simswim_t *h = sl->h;
    char id[16];
    snprintf(id, sizeof id, "n%d", node);
    /* a new life: its first incarnation, as the server's wall-clock seconds */
    h->life_inc[node] = (uint64_t)(now / 1000000);
    h->started[node] = now;
    h->pause_grace[node] = INT64_MIN;
    mn_swim_opts_t so = {
        .node_id = id,
        .addr = mn_simnet_addr(net, node),
        .key = h->o.auth ? sim_key : NULL,
        .key_len = h->o.auth ? sizeof sim_key - 1 : 0,
        .incarnation = h->life_inc[node],
        .seed = seed,
        .config = h->o.swim,
        .cb = {.user = sl, .send = sim_send, .event = on_event},
    };
    mn_swim_t *s = NULL;
    mn_error err;
    if (mn_swim_new(&so, now, &s, &err) != MN_OK) {
        mn_log_error("simnet: %s", err.message);
        return NULL;
    }
    mn_swim_addr_t seeds[SIM_SEEDS];
    size_t ns = 0;
    for (int i = 0; i < SIM_SEEDS && i < h->n; i++)
        if (i != node) seeds[ns++] = mn_simnet_addr(net, i);
    mn_swim_join(s, now, seeds, ns);
    return s;
}

static void sim_destroy(void *arg, void *core)
{
    sim_slot *sl = arg;
    mn_simswim_t *h = sl->h;
    int obs = sl->idx;
    int64_t now = mn_simnet_now(h->net);
    for (int t = 0; t < h->n; t++) {
        int8_t *v = view_at(h, obs, t);
        if (*v == MN_SWIM_ALIVE || *v == MN_SWIM_SUSPECT) h->known_cnt[t]--;
        if (*v == MN_SWIM_DEAD && cross(h, obs, t) && running(h, t)) h->cross_dead--;
        *v = -1;
    }
    /* a crashed observer no longer owes any detection */
    for (size_t i = 0; i < h->n_faults; i++) {
        sim_fault *f = &h->faults[i];
        if (f->open && !f->seen[obs] && f->target != obs) {
            f->seen[obs] = 1;
            f->expected--;
            if (f->got >= f->expected) {
                f->all = now;
                f->open = false;
            }
        }
    }
    mn_swim_free(core);
}

static void sim_packet(void *core, int64_t now, const mn_swim_addr_t *from, const uint8_t *buf,
                       size_t len)
{
    mn_swim_on_packet(core, now, from, buf, len);
}

static void sim_tick(void *core, int64_t now)
{
    mn_swim_on_tick(core, now);
}

static int64_t sim_deadline(void *core)
{
    return mn_swim_next_deadline(core);
}

static const mn_simnet_core_ops_t sim_ops = {
    .create = sim_create,
    .destroy = sim_destroy,
    .on_packet = sim_packet,
    .on_tick = sim_tick,
    .next_deadline = sim_deadline,
};

/* ---- harness API ---- */

void mn_simswim_opts_default(mn_simswim_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->nodes = 100;
    o->seed = 1;
    mn_swim_config_profile("fast", &o->swim);
    o->link = (mn_simnet_link_t){.latency_us = 500, .jitter_us = 200};
    o->auth = true;
    o->join_spread_ms = 1000;
    o->form_limit_ms = 60000;
    o->steady_ms = 30000;
    o->churn_every_ms = 5000;
    o->churn_down_ms = 20000;
    o->churn_ms = 60000;
}

int64_t mn_simswim_detect_bound_ms(const mn_swim_config_t *c, int nodes)
{
    double scale = nodes > 10 ? log10((double)nodes) : 1.0;
    int64_t min = (int64_t)(c->suspicion_mult * scale * (double)c->probe_interval_ms);
    int64_t max = c->lifeguard ? min * c->suspicion_max_mult : min;
    int64_t rounds = (int64_t)ceil(log2((double)(nodes > 2 ? nodes : 2)));
    return 2 * c->probe_interval_ms + 4 * c->probe_timeout_ms + max +
           2 * rounds * c->gossip_interval_ms;
}

mn_simswim_t *mn_simswim_new(const mn_simswim_opts_t *o)
{
    if (!o || o->nodes < 1 || o->nodes > 100000) return NULL;
    mn_simswim_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->o = *o;
    h->n = o->nodes;
    h->net = mn_simnet_new(o->seed, &o->link);
    h->slots = calloc((size_t)h->n, sizeof *h->slots);
    h->view = malloc((size_t)h->n * (size_t)h->n);
    h->known_cnt = calloc((size_t)h->n, sizeof *h->known_cnt);
    h->fp_marked = calloc((size_t)h->n, 1);
    h->life_inc = calloc((size_t)h->n, sizeof *h->life_inc);
    h->started = malloc((size_t)h->n * sizeof *h->started);
    h->pause_inc = calloc((size_t)h->n, sizeof *h->pause_inc);
    h->pause_grace = malloc((size_t)h->n * sizeof *h->pause_grace);
    if (!h->net || !h->slots || !h->view || !h->known_cnt || !h->fp_marked || !h->life_inc ||
        !h->started || !h->pause_inc || !h->pause_grace) {
        mn_simswim_free(h);
        return NULL;
    }
    memset(h->view, -1, (size_t)h->n * (size_t)h->n);
    for (int i = 0; i < h->n; i++) {
        h->started[i] = -1;
        h->pause_grace[i] = INT64_MIN;
    }
    if (o->trace) mn_simnet_trace_file(h->net, o->trace);
    for (int i = 0; i < h->n; i++) {
        h->slots[i] = (sim_slot){.h = h, .idx = i};
        if (mn_simnet_add_node(h->net, &sim_ops, &h->slots[i]) != i) {
            mn_simswim_free(h);
            return NULL;
        }
    }
    /* degraded members (Lifeguard's "slow message processing"): long-tailed
     * delay on everything they send and receive */
    mn_simnet_link_t slow = o->link;
    slow.jitter_us += o->slow_jitter_us;
    int first_slow = h->n - (o->slow_nodes > 0 ? (o->slow_nodes < h->n ? o->slow_nodes : h->n) : 0);
    h->first_slow = first_slow;
    for (int s = first_slow; s < h->n; s++)
        for (int i = 0; i < h->n; i++) {
            if (i == s) continue;
            mn_simnet_set_link(h->net, s, i, &slow);
            mn_simnet_set_link(h->net, i, s, &slow);
        }
    return h;
}

void mn_simswim_free(mn_simswim_t *h)
{
    if (!h) return;
    mn_simnet_free(h->net); /* destroys the cores (uses the view): before the arrays */
    for (size_t i = 0; i < h->n_faults; i++)
        free(h->faults[i].seen);
    free(h->faults);
    free(h->part.seen);
    free(h->joins);
    free(h->group);
    free(h->former);
    free(h->slots);
    free(h->view);
    free(h->known_cnt);
    free(h->fp_marked);
    free(h->life_inc);
    free(h->started);
    free(h->pause_inc);
    free(h->pause_grace);
    free(h);
}

mn_simnet_t *mn_simswim_net(mn_simswim_t *h)
{
    return h->net;
}

mn_swim_t *mn_simswim_core(mn_simswim_t *h, int node)
{
    return mn_simnet_core(h->net, node);
}

void mn_simswim_start(mn_simswim_t *h, int node)
{
    mn_simnet_start(h->net, node);
}

void mn_simswim_pause(mn_simswim_t *h, int node)
{
    mn_swim_t *s = mn_simnet_core(h->net, node);
    if (!s || mn_simnet_state(h->net, node) != MN_SIMNET_UP) return;
    h->pause_inc[node] = mn_swim_incarnation(s);
    h->pause_grace[node] = INT64_MAX; /* until the resume starts the countdown */
    mn_simnet_pause(h->net, node);
}

void mn_simswim_resume(mn_simswim_t *h, int node)
{
    if (mn_simnet_state(h->net, node) != MN_SIMNET_PAUSED) return;
    mn_simnet_resume(h->net, node);
    h->pause_grace[node] = mn_simnet_now(h->net) + ms(mn_simswim_detect_bound_ms(&h->o.swim, h->n));
}

bool mn_simswim_converged(const mn_simswim_t *h)
{
    int r = running_count(h);
    for (int t = 0; t < h->n; t++)
        if (running(h, t) && h->known_cnt[t] < r - 1) return false;
    return true;
}

bool mn_simswim_run_until_converged(mn_simswim_t *h, int64_t deadline)
{
    while (!mn_simswim_converged(h)) {
        int64_t now = mn_simnet_now(h->net);
        if (now >= deadline) return false;
        int64_t next = now + SIM_STEP_US;
        mn_simnet_run_until(h->net, next < deadline ? next : deadline);
    }
    return true;
}

int mn_simswim_view(const mn_simswim_t *h, int obs, int tgt)
{
    if (obs < 0 || obs >= h->n || tgt < 0 || tgt >= h->n) return -1;
    return *view_at(h, obs, tgt);
}

int mn_simswim_count_view(const mn_simswim_t *h, int tgt, mn_swim_state st)
{
    int c = 0;
    for (int o = 0; o < h->n; o++)
        if (o != tgt && running(h, o) && *view_at(h, o, tgt) == (int8_t)st) c++;
    return c;
}

uint64_t mn_simswim_fp_dead(const mn_simswim_t *h)
{
    return h->fp_dead;
}

uint64_t mn_simswim_fp_dead_degraded(const mn_simswim_t *h)
{
    return h->fp_dead_degraded;
}

int mn_simswim_fp_targets(const mn_simswim_t *h)
{
    int c = 0;
    for (int i = 0; i < h->n; i++)
        c += h->fp_marked[i];
    return c;
}

uint64_t mn_simswim_suspicions(const mn_simswim_t *h)
{
    return h->suspicions;
}

uint64_t mn_simswim_events(const mn_simswim_t *h)
{
    return h->events;
}

/* ---- scenarios ---- */

mn_err mn_simswim_scenario_parse(const char *s, mn_simswim_scenario *out)
{
    static const char *names[] = {"steady", "crash", "partition", "churn", "join"};
    for (int i = 0; i < 5; i++)
        if (s && strcmp(s, names[i]) == 0) {
            *out = (mn_simswim_scenario)i;
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
        if (h->joins[i].node == node && h->joins[i].done < 0) h->joins[i].aborted = true;
    f->target = node;
    f->t0 = mn_simnet_now(h->net);
    f->first = f->all = f->suspect = -1;
    f->open = true;
    mn_simnet_crash(h->net, node);
    for (int o = 0; o < h->n; o++) {
        if (o == node || mn_simnet_state(h->net, o) != MN_SIMNET_UP) {
            f->seen[o] = 1;
            continue;
        }
        f->expected++;
        if (*view_at(h, o, node) == MN_SWIM_DEAD) fault_seen(f, o, f->t0);
    }
    if (f->expected == 0) f->open = false;
    return true;
}

static void start_join(mn_simswim_t *h, int node)
{
    sim_join *nj = realloc(h->joins, (h->n_joins + 1) * sizeof *nj);
    if (!nj) return;
    h->joins = nj;
    h->joins[h->n_joins++] = (sim_join){.node = node, .t0 = mn_simnet_now(h->net), .done = -1};
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
        if (h->joins[i].done < 0 && !h->joins[i].aborted) return true;
    return false;
}

typedef bool (*sim_cond)(const mn_simswim_t *h);

/* Runs until cond is false or the deadline. */
static void run_while(mn_simswim_t *h, sim_cond cond, int64_t deadline)
{
    while (cond(h) && mn_simnet_now(h->net) < deadline) {
        int64_t next = mn_simnet_now(h->net) + SIM_STEP_US;
        mn_simnet_run_until(h->net, next < deadline ? next : deadline);
    }
}

static bool part_open(const mn_simswim_t *h)
{
    return h->part.open;
}

static void form(mn_simswim_t *h, int count, mn_simswim_result_t *r)
{
    /* start times spread uniformly over join_spread_ms, in time order */
    int64_t *at = calloc((size_t)count, sizeof *at);
    if (!at) return;
    for (int i = 0; i < count; i++)
        at[i] = h->o.join_spread_ms > 0 ? (int64_t)mn_prng_below(mn_simnet_prng(h->net),
                                                                 (uint64_t)ms(h->o.join_spread_ms))
                                        : 0;
    for (int done = 0; done < count; done++) {
        int best = -1;
        for (int i = 0; i < count; i++)
            if (at[i] >= 0 && (best < 0 || at[i] < at[best])) best = i;
        mn_simnet_run_until(h->net, at[best]);
        mn_simnet_start(h->net, best);
        at[best] = -1;
    }
    free(at);
    r->formed = mn_simswim_run_until_converged(h, ms(h->o.form_limit_ms));
    r->formation_s = (double)mn_simnet_now(h->net) / 1e6;
}

_Static_assert(sizeof(mn_swim_stats_t) % sizeof(uint64_t) == 0, "stats are uint64_t counters");

/* Adds the counters of every running core to *out (all fields are uint64_t). */
static void sum_swim_stats(mn_simswim_t *h, mn_swim_stats_t *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < h->n; i++) {
        mn_swim_t *s = mn_simnet_core(h->net, i);
        if (!s) continue;
        mn_swim_stats_t st;
        mn_swim_stats_get(s, &st);
        uint64_t *dst = (uint64_t *)out;
        const uint64_t *src = (const uint64_t *)&st;
        for (size_t k = 0; k < sizeof st / sizeof(uint64_t); k++)
            dst[k] += src[k];
    }
}

static void steady(mn_simswim_t *h, mn_simswim_result_t *r)
{
    mn_simnet_stats_t a, b;
    mn_swim_stats_t sa, sb;
    sum_swim_stats(h, &sa);
    mn_simnet_stats(h->net, -1, &a);
    int64_t t0 = mn_simnet_now(h->net);
    int nodes = running_count(h);
    mn_simnet_run_until(h->net, t0 + ms(h->o.steady_ms));
    mn_simnet_stats(h->net, -1, &b);
    sum_swim_stats(h, &sb);
    uint64_t *d = (uint64_t *)&r->steady;
    const uint64_t *pa = (const uint64_t *)&sa, *pb = (const uint64_t *)&sb;
    for (size_t k = 0; k < sizeof sa / sizeof(uint64_t); k++)
        d[k] = pb[k] - pa[k];
    r->steady_net_sent = b.sent - a.sent;
    double secs = (double)(mn_simnet_now(h->net) - t0) / 1e6;
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
           h->started[i] <= mn_simnet_now(h->net) - min_age_us;
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

static void partition(mn_simswim_t *h, int64_t horizon, mn_simswim_result_t *r)
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
            if (o != t && cross(h, o, t) && running(h, o) && running(h, t)) h->cross_expected++;
    h->part = (sim_fault){
        .target = -1, .t0 = mn_simnet_now(h->net), .first = -1, .all = -1, .open = true};
    mn_simnet_partition(h->net, h->group, h->o.oneway);
    run_while(h, part_open, h->part.t0 + horizon);
    r->detect_first_s = malloc(sizeof(double));
    r->detect_all_s = malloc(sizeof(double));
    if (r->detect_first_s && r->detect_all_s) {
        r->n_faults = 1;
        r->detect_first_s[0] = h->part.first < 0 ? -1 : (double)(h->part.first - h->part.t0) / 1e6;
        r->detect_all_s[0] = h->part.all < 0 ? -1 : (double)(h->part.all - h->part.t0) / 1e6;
        if (h->part.all < 0) r->undetected++;
    }
    h->part.open = false;
    mn_simnet_heal(h->net);
    free(h->former);
    h->former = h->group;
    h->group = NULL;
    h->grace_until = mn_simnet_now(h->net) + ms(mn_simswim_detect_bound_ms(&h->o.swim, h->n));
    int64_t t1 = mn_simnet_now(h->net);
    bool ok = mn_simswim_run_until_converged(h, t1 + horizon);
    r->heal_s = ok ? (double)(mn_simnet_now(h->net) - t1) / 1e6 : -1;
}

static void churn(mn_simswim_t *h, int64_t horizon)
{
    int64_t t0 = mn_simnet_now(h->net), end = t0 + ms(h->o.churn_ms);
    int64_t bound = ms(mn_simswim_detect_bound_ms(&h->o.swim, h->n));
    int64_t *restart_at = malloc((size_t)h->n * sizeof *restart_at);
    if (!restart_at) return;
    for (int i = 0; i < h->n; i++)
        restart_at[i] = -1;
    int64_t next_crash = t0;
    /* bounded: each pass advances the clock to the next action */
    for (;;) {
        int64_t now = mn_simnet_now(h->net);
        for (int i = 0; i < h->n; i++)
            if (restart_at[i] >= 0 && restart_at[i] <= now) {
                restart_at[i] = -1;
                start_join(h, i);
            }
        if (next_crash <= now && now < end) {
            /* not a node restarted less than a detection bound ago: its
             * rejoin would be cut short (and its crash detected while the
             * cluster still learns it is back) */
            int v = random_running(h, 0, bound);
            /* keep a majority running */
            if (v >= 0 && running_count(h) > h->n / 2 + 1) {
                crash_node(h, v);
                restart_at[v] = now + ms(h->o.churn_down_ms);
            }
            next_crash = now + ms(h->o.churn_every_ms);
        }
        int64_t next = INT64_MAX;
        if (now < end) next = next_crash;
        for (int i = 0; i < h->n; i++)
            if (restart_at[i] >= 0 && restart_at[i] < next) next = restart_at[i];
        if (next == INT64_MAX) break;
        mn_simnet_run_until(h->net, next);
    }
    free(restart_at);
    int64_t deadline = mn_simnet_now(h->net) + horizon;
    run_while(h, faults_open, deadline);
    run_while(h, joins_open, deadline);
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
                r->detect_first_s[i] = f->first < 0 ? -1 : (double)(f->first - f->t0) / 1e6;
                r->suspect_first_s[i] = f->suspect < 0 ? -1 : (double)(f->suspect - f->t0) / 1e6;
                r->detect_all_s[i] = f->all < 0 ? -1 : (double)(f->all - f->t0) / 1e6;
                if (f->all < 0) r->undetected++;
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
                r->join_s[r->n_joins++] = j->done < 0 ? -1 : (double)(j->done - j->t0) / 1e6;
                if (j->done < 0) r->joins_unconverged++;
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

mn_err mn_simswim_run(const mn_simswim_opts_t *o, mn_simswim_scenario sc, mn_simswim_result_t *r,
                      mn_error *err)
{
    if (!o || !r) return mn_error_set(err, MN_ERR_INVALID, "simswim: no options");
    memset(r, 0, sizeof *r);
    if (o->nodes < 2) return mn_error_set(err, MN_ERR_INVALID, "simswim: need 2+ nodes");
    mn_err rc = mn_swim_config_check(&o->swim, err);
    if (rc != MN_OK) return rc;
    mn_simswim_t *h = mn_simswim_new(o);
    if (!h) return mn_error_set(err, MN_ERR_NOMEM, "simswim: out of memory");
    /* a partition: every node has to see half the cluster fail by its own
     * probes (verify), so give it twice as long as a single crash */
    int64_t bounds = sc == MN_SIMSWIM_PARTITION ? 6 : 3;
    int64_t horizon = o->horizon_ms > 0
                          ? ms(o->horizon_ms)
                          : bounds * ms(mn_simswim_detect_bound_ms(&o->swim, o->nodes));
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
        run_while(h, faults_open, mn_simnet_now(h->net) + horizon);
        break;
    case MN_SIMSWIM_PARTITION:
        partition(h, horizon, r);
        break;
    case MN_SIMSWIM_CHURN:
        churn(h, horizon);
        break;
    case MN_SIMSWIM_JOIN:
        start_join(h, h->n - 1);
        run_while(h, joins_open, mn_simnet_now(h->net) + horizon);
        break;
    default:
        break;
    }
    collect(h, r);
    mn_simswim_free(h);
    return MN_OK;
}
