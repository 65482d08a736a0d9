/* SWIM harness for simnet: N swim cores on simulated links and a
 * ground-truth view matrix fed by their membership events, judged against
 * what simnet knows (the scenarios are in swim_scenarios.c).
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

#include "swim_sim_internal.h"

int8_t *mn__simswim_view_at(const mn_simswim_t *h, int obs, int tgt)
{
    return &h->view[(size_t)obs * (size_t)h->n + (size_t)tgt];
}

static int parse_node(const mn_simswim_t *h, const char *id)
{
    if (id[0] != 'n') return -1;
    char *end_us = NULL;
    long v = strtol(id + 1, &end_us, 10);
    return (*end_us || v < 0 || v >= h->n) ? -1 : (int)v;
}

bool mn__simswim_running(const mn_simswim_t *h, int i)
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
static bool wrongly_accused(const mn_simswim_t *h, int obs, int tgt, uint64_t inc, int64_t now_us)
{
    if (!reachable(h, obs, tgt)) return false;
    if (inc < h->life_inc[tgt]) return false;
    if (now_us < h->pause_grace_us[tgt] && inc <= h->pause_inc[tgt]) return false;
    if (h->former && now_us < h->grace_until_us && h->former[obs] != h->former[tgt]) return false;
    return true;
}

bool mn__simswim_cross(const mn_simswim_t *h, int a, int b)
{
    return h->group && h->group[a] != h->group[b];
}

int mn__simswim_running_count(const mn_simswim_t *h)
{
    int c = 0;
    for (int i = 0; i < h->n; i++)
        c += mn__simswim_running(h, i);
    return c;
}

void mn__simswim_fault_seen(sim_fault *f, int obs, int64_t now_us)
{
    if (!f->open || f->seen[obs]) return;
    f->seen[obs] = 1;
    f->got++;
    mn_assert(f->got <= f->expected);
    if (f->first_us < 0) f->first_us = now_us;
    if (f->got >= f->expected) {
        f->all_us = now_us;
        f->open = false;
    }
}

#ifndef NDEBUG
/* O(n): observers whose view has tgt alive or suspect (what known_cnt keeps). */
static int known_count(const mn_simswim_t *h, int tgt)
{
    int c = 0;
    for (int obs = 0; obs < h->n; obs++) {
        int8_t v = *mn__simswim_view_at(h, obs, tgt);
        c += v == MN_SWIM_ALIVE || v == MN_SWIM_SUSPECT;
    }
    return c;
}
#endif

static void check_join(mn_simswim_t *h, int tgt, int64_t now_us)
{
    for (size_t i = 0; i < h->n_joins; i++) {
        sim_join *j = &h->joins[i];
        if (j->node == tgt && j->done_us < 0 && !j->aborted && mn__simswim_running(h, tgt) &&
            h->known_cnt[tgt] >= mn__simswim_running_count(h) - 1)
            j->done_us = now_us;
    }
}

static void on_event(void *user, const mn_swim_event_t *ev)
{
    sim_slot *sl = user;
    mn_simswim_t *h = sl->h;
    int obs = sl->idx, tgt = parse_node(h, ev->id);
    if (tgt < 0 || tgt == obs) return;
    int64_t now_us = ev->now_us;
    h->events++;
    bool wrong = ev->state != MN_SWIM_ALIVE && ev->state != MN_SWIM_LEFT &&
                 wrongly_accused(h, obs, tgt, ev->incarnation, now_us);
    mn_simnet_trace_note(h->net, "view %d %d %s %llu%s", obs, tgt, mn_swim_state_name(ev->state),
                         (unsigned long long)ev->incarnation, wrong ? " wrong" : "");
    int8_t *v = mn__simswim_view_at(h, obs, tgt);
    int old = *v;
    *v = (int8_t)ev->state;
    bool was = old == MN_SWIM_ALIVE || old == MN_SWIM_SUSPECT;
    bool is = ev->state == MN_SWIM_ALIVE || ev->state == MN_SWIM_SUSPECT;
    h->known_cnt[tgt] += (int)is - (int)was;
    mn_assert(h->known_cnt[tgt] >= 0 && h->known_cnt[tgt] < h->n);
    mn_assert_debug(h->known_cnt[tgt] == known_count(h, tgt));
    if (mn__simswim_cross(h, obs, tgt) && mn__simswim_running(h, obs) &&
        mn__simswim_running(h, tgt)) {
        if (old != MN_SWIM_DEAD && ev->state == MN_SWIM_DEAD) {
            h->cross_dead++;
            if (h->part.open && h->part.first_us < 0) h->part.first_us = now_us;
        } else if (old == MN_SWIM_DEAD && ev->state != MN_SWIM_DEAD) {
            h->cross_dead--;
        }
        if (h->part.open && h->cross_dead >= h->cross_expected) {
            h->part.all_us = now_us;
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
            if (h->faults[i].target == tgt) mn__simswim_fault_seen(&h->faults[i], obs, now_us);
    } else if (ev->state == MN_SWIM_SUSPECT && wrong) {
        h->suspicions++;
    } else if (ev->state == MN_SWIM_SUSPECT) {
        for (size_t i = 0; i < h->n_faults; i++)
            if (h->faults[i].target == tgt && h->faults[i].open && h->faults[i].suspect_us < 0)
                h->faults[i].suspect_us = now_us;
    } else if (ev->state == MN_SWIM_ALIVE) {
        check_join(h, tgt, now_us);
    }
}

/* ---- node ops ---- */

static const uint8_t sim_key[] = "simnet cluster key";

static void sim_send(void *user, const mn_swim_addr_t *to, const uint8_t *buf, size_t len)
{
    sim_slot *sl = user;
    mn_simnet_send(sl->h->net, sl->idx, to, buf, len);
}

static void *sim_create(void *arg, mn_simnet_t *net, int node, int64_t now_us, uint64_t seed)
{
    sim_slot *sl = arg;
    mn_simswim_t *h = sl->h;
    char id[16];
    snprintf(id, sizeof id, "n%d", node);
    /* a new life: its first incarnation, as the server's wall-clock seconds */
    h->life_inc[node] = (uint64_t)(now_us / 1000000);
    h->started_us[node] = now_us;
    h->pause_grace_us[node] = INT64_MIN;
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
    if (mn_swim_new(&so, now_us, &s, &err) != MN_OK) {
        mn_log_error("simnet: %s", err.message);
        return NULL;
    }
    mn_swim_addr_t seeds[SIM_SEEDS];
    size_t ns = 0;
    for (int i = 0; i < SIM_SEEDS && i < h->n; i++)
        if (i != node) seeds[ns++] = mn_simnet_addr(net, i);
    mn_swim_join(s, now_us, seeds, ns);
    return s;
}

static void sim_destroy(void *arg, void *core)
{
    sim_slot *sl = arg;
    mn_simswim_t *h = sl->h;
    int obs = sl->idx;
    int64_t now_us = mn_simnet_now(h->net);
    for (int t = 0; t < h->n; t++) {
        int8_t *v = mn__simswim_view_at(h, obs, t);
        if (*v == MN_SWIM_ALIVE || *v == MN_SWIM_SUSPECT) h->known_cnt[t]--;
        if (*v == MN_SWIM_DEAD && mn__simswim_cross(h, obs, t) && mn__simswim_running(h, t))
            h->cross_dead--;
        *v = -1;
    }
    /* a crashed observer no longer owes any detection */
    for (size_t i = 0; i < h->n_faults; i++) {
        sim_fault *f = &h->faults[i];
        if (f->open && !f->seen[obs] && f->target != obs) {
            f->seen[obs] = 1;
            f->expected--;
            if (f->got >= f->expected) {
                f->all_us = now_us;
                f->open = false;
            }
        }
    }
    /* the judge's rule: a core only ever raises the incarnation it began its life with */
    mn_assert(mn_swim_incarnation(core) >= h->life_inc[obs]);
    mn_swim_free(core);
}

static void sim_packet(void *core, int64_t now_us, const mn_swim_addr_t *from, const uint8_t *buf,
                       size_t len)
{
    mn_swim_on_packet(core, now_us, from, buf, len);
}

static void sim_tick(void *core, int64_t now_us)
{
    mn_swim_on_tick(core, now_us);
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
    h->started_us = malloc((size_t)h->n * sizeof *h->started_us);
    h->pause_inc = calloc((size_t)h->n, sizeof *h->pause_inc);
    h->pause_grace_us = malloc((size_t)h->n * sizeof *h->pause_grace_us);
    if (!h->net || !h->slots || !h->view || !h->known_cnt || !h->fp_marked || !h->life_inc ||
        !h->started_us || !h->pause_inc || !h->pause_grace_us) {
        mn_simswim_free(h);
        return NULL;
    }
    memset(h->view, -1, (size_t)h->n * (size_t)h->n);
    for (int i = 0; i < h->n; i++) {
        h->started_us[i] = -1;
        h->pause_grace_us[i] = INT64_MIN;
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
    free(h->started_us);
    free(h->pause_inc);
    free(h->pause_grace_us);
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
    mn_assert(h->pause_inc[node] >= h->life_inc[node]);
    h->pause_grace_us[node] = INT64_MAX; /* until the resume starts the countdown */
    mn_simnet_pause(h->net, node);
}

void mn_simswim_resume(mn_simswim_t *h, int node)
{
    if (mn_simnet_state(h->net, node) != MN_SIMNET_PAUSED) return;
    mn_simnet_resume(h->net, node);
    h->pause_grace_us[node] =
        mn_simnet_now(h->net) + sim_ms_to_us(mn_simswim_detect_bound_ms(&h->o.swim, h->n));
}

bool mn_simswim_converged(const mn_simswim_t *h)
{
    int r = mn__simswim_running_count(h);
    for (int t = 0; t < h->n; t++)
        if (mn__simswim_running(h, t) && h->known_cnt[t] < r - 1) return false;
    return true;
}

bool mn_simswim_run_until_converged(mn_simswim_t *h, int64_t deadline_us)
{
    while (!mn_simswim_converged(h)) {
        int64_t now_us = mn_simnet_now(h->net);
        if (now_us >= deadline_us) return false;
        int64_t next_us = now_us + SIM_STEP_US;
        mn_simnet_run_until(h->net, next_us < deadline_us ? next_us : deadline_us);
    }
    return true;
}

int mn_simswim_view(const mn_simswim_t *h, int obs, int tgt)
{
    if (obs < 0 || obs >= h->n || tgt < 0 || tgt >= h->n) return -1;
    return *mn__simswim_view_at(h, obs, tgt);
}

int mn_simswim_count_view(const mn_simswim_t *h, int tgt, mn_swim_state_t st)
{
    int c = 0;
    for (int o = 0; o < h->n; o++)
        if (o != tgt && mn__simswim_running(h, o) && *mn__simswim_view_at(h, o, tgt) == (int8_t)st)
            c++;
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
