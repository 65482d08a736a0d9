/* The remote holder of a recall over many spaces (cluster_query.h): one run's spaces held
 * elsewhere, sent per target node in one frame each, hedged after min(p95, 3 medians) of the
 * node's answers, gathered until every space answered or the deadline passed. A node whose
 * frame went past its hedge time unanswered is "overdue": for a while its spaces go to their
 * other copies first (docs/recall.md, "Hedging").
 *
 * A run is a flight in q->flights (its id is the frames' id); the replication thread only
 * appends answer frames to the flight's inbox (bounded) and wakes it; the run's own pool
 * thread decodes them. Every space has a slot: its route plan (targets in order), the next
 * target to try and the node it was last sent to. An answer that is not one (not held there,
 * unavailable, failed) moves the space on to its next target at once; the first real answer
 * wins and later ones are dropped. */
#include "cluster_query_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster_route.h"
#include "mnemo/assert.h"
#include "mnemo/util.h"

typedef struct slot {
    cl_placement pl;
    cl_route_plan_t plan;
    int next;    /* plan.targets[next] is the next target to try */
    int at;      /* pl.holders[at] was sent the space last; -1 = none */
    int waiting; /* frames with the space not answered yet */
    bool done;
    bool local;      /* served here after all (placement moved since it was located) */
    bool retry;      /* send it to its next target now */
    const char *why; /* the reason if nothing answers: timeout, or the last refusal's */
} slot;

typedef struct sent {
    char node[MN_PEER_NODE_MAX + 1];
    int64_t sent_ns, hedge_ns;
    bool answered, hedged;
} sent;

#define SENDS_MAX 64 /* frames of one run (first sends, hedges, retries) */

typedef struct run {
    cl_query *q;
    clq_flight *f;
    const char *const *spaces;
    size_t n;
    const mn_recall_req_t *req;
    const api_many_caller *caller;
    int64_t deadline_ns;
    mn_query_answer_t *out;
    slot *slots;
    sent sends[SENDS_MAX];
    size_t n_sends;
} run;

static const api_many_caller OPEN_CALLER = {.read = API_READ_PRIMARY, .every_space = true};

/* ---- latencies ---- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static clq_lat *lat_of(cl_query *q, const char *node, bool add)
{
    for (size_t i = 0; i < q->n_lat; i++)
        if (!strcmp(q->lat[i].node, node)) return &q->lat[i];
    if (!add) return NULL;
    clq_lat *l = &q->lat[q->n_lat < CLQ_NODES_MAX ? q->n_lat++ : (size_t)(node[0] % CLQ_NODES_MAX)];
    memset(l, 0, sizeof *l);
    snprintf(l->node, sizeof l->node, "%s", node);
    return l;
}

static void lat_add(cl_query *q, const char *node, int64_t ns)
{
    pthread_mutex_lock(&q->mu);
    clq_lat *l = lat_of(q, node, true);
    l->ns[l->at] = ns;
    l->at = (l->at + 1) % CLQ_SAMPLES;
    if (l->n < CLQ_SAMPLES) l->n++;
    l->overdue_ns = 0;
    pthread_mutex_unlock(&q->mu);
}

/* A frame to node passed its hedge time unanswered at now. */
static void lat_overdue(cl_query *q, const char *node, int64_t now)
{
    pthread_mutex_lock(&q->mu);
    clq_lat *l = lat_of(q, node, true);
    if (!l->overdue_ns) l->overdue_ns = now;
    pthread_mutex_unlock(&q->mu);
}

/* Whether node is to be tried after the other copies at now (see clq_lat.overdue_ns). */
static bool lat_is_overdue(cl_query *q, const char *node, int64_t now)
{
    pthread_mutex_lock(&q->mu);
    clq_lat *l = lat_of(q, node, false);
    bool late = l && l->overdue_ns && now - l->overdue_ns < CLQ_OVERDUE_HOLD_NS;
    if (l && l->overdue_ns && !late) l->overdue_ns = 0; /* held long enough: tried again */
    pthread_mutex_unlock(&q->mu);
    return late;
}

int64_t clq_hedge_wait_ns(const int64_t *lat, uint32_t n)
{
    mn_assert(n <= CLQ_SAMPLES);
    if (n < CLQ_SAMPLES_MIN) return CLQ_HEDGE_UNKNOWN_NS;
    int64_t v[CLQ_SAMPLES];
    memcpy(v, lat, n * sizeof v[0]);
    qsort(v, n, sizeof v[0], cmp_i64);
    int64_t p95 = v[(n * 95 + 99) / 100 - 1], med = v[(n - 1) / 2];
    int64_t wait = p95 < CLQ_HEDGE_MEDIANS * med ? p95 : CLQ_HEDGE_MEDIANS * med;
    return wait > CLQ_HEDGE_FLOOR_NS ? wait : CLQ_HEDGE_FLOOR_NS;
}

/* When to hedge a frame sent to node at now: clq_hedge_wait_ns of its last answers, never
 * later than half the time left. */
static int64_t hedge_at(cl_query *q, const char *node, int64_t now, int64_t deadline)
{
    int64_t v[CLQ_SAMPLES];
    uint32_t n = 0;
    pthread_mutex_lock(&q->mu);
    clq_lat *l = lat_of(q, node, false);
    if (l) memcpy(v, l->ns, (n = l->n) * sizeof v[0]);
    pthread_mutex_unlock(&q->mu);
    int64_t wait = clq_hedge_wait_ns(v, n), half = (deadline - now) / 2;
    return now + (wait < half ? wait : half);
}

/* ---- planning and sending ---- */

/* Orders s's targets by their nodes' standing now (clq_order_targets): a stalled or
 * suspected node's spaces go to their other copy at once instead of after a hedge wait.
 * false when every copy is on a node SWIM suspects. */
static bool order_slot(cl_query *q, slot *s)
{
    mn_assert(s->plan.n > 0 && s->plan.n <= MN_SPACES_HOLDERS_MAX);
    int64_t now = mn_time_mono_ns();
    clq_copy st[MN_SPACES_HOLDERS_MAX];
    for (int t = 0; t < s->plan.n; t++) {
        const cl_holder *h = &s->pl.holders[s->plan.targets[t]];
        st[t] = h->suspect                        ? CLQ_COPY_SUSPECT
                : lat_is_overdue(q, h->node, now) ? CLQ_COPY_OVERDUE
                                                  : CLQ_COPY_OK;
    }
    int first = s->plan.targets[0];
    clq_copy first_st = st[0];
    if (clq_order_targets(&s->plan, st) == 0) return false;
    if (s->plan.targets[0] != first) /* its first copy moved back */
        clq_count(q, first_st == CLQ_COPY_SUSPECT ? CLQ_M_REROUTED_SUSPECT : CLQ_M_REROUTED, 1);
    return true;
}

/* Slot i answered at once as missing with why (and message, "" = none). */
static void missing_now(run *r, size_t i, const char *why, const char *message)
{
    r->slots[i].done = true;
    r->out[i] = (mn_query_answer_t){.rc = MN_ERR_UNAVAILABLE, .missing = why};
    snprintf(r->out[i].err.message, sizeof r->out[i].err.message, "%s", message);
}

static void plan_slot(run *r, size_t i)
{
    slot *s = &r->slots[i];
    s->at = -1;
    s->why = MN_QUERY_MISSING_TIMEOUT;
    api_route_ask ask = {.space = r->spaces[i], .path = "/v1/recall", .read = r->caller->read};
    if (!cl_spaces_lookup(r->q->cs, r->spaces[i], false, &s->pl)) {
        missing_now(r, i, MN_QUERY_MISSING_UNAVAILABLE, ""); /* known, not placed yet */
        return;
    }
    if (cl_route_plan(cl_spaces_self(r->q->cs), &ask, &s->pl, &s->plan) ||
        (s->plan.n == 0 && s->plan.local_fallback)) {
        s->local = true; /* run once the frames are out */
        return;
    }
    if (s->plan.n == 0) {
        missing_now(r, i, MN_QUERY_MISSING_UNAVAILABLE, s->plan.why);
        return;
    }
    if (!order_slot(r->q, s)) { /* every copy suspected: not waited for (docs/recall.md) */
        if (s->plan.local_fallback) {
            s->local = true;
            return;
        }
        clq_count(r->q, CLQ_M_SUSPECT, 1);
        missing_now(r, i, MN_QUERY_MISSING_SUSPECT,
                    "every copy of it is on a node SWIM suspects of having failed");
        return;
    }
    s->retry = true; /* its first send */
}

static const char *node_of(const slot *s, int target)
{
    return s->pl.holders[s->plan.targets[target]].node;
}

/* Sends the spaces idx[0 .. k) to node in one frame; false when it could not go out. */
static bool send_to(run *r, const char *node, const uint32_t *idx, size_t k, bool hedge)
{
    const char *names[MN_QUERY_SPACES_MAX];
    for (size_t i = 0; i < k; i++)
        names[i] = r->spaces[idx[i]];
    int64_t now = mn_time_mono_ns(), left_ms = (r->deadline_ns - now) / 1000000;
    uint8_t *buf = NULL;
    size_t len = 0;
    mn_error err = {0};
    mn_err rc = clq_request_encode(r->f->id, (uint32_t)(left_ms > 0 ? left_ms : 1), r->caller,
                                   names, k, r->req, &buf, &len, &err);
    if (!rc) rc = cl_repl_post(r->q->repl, node, MN_PEER_CH_QUERY, buf, len);
    free(buf);
    if (rc) {
        mn_log_warn("query: cannot send %zu spaces to node %s: %s", k, node, mn_strerror(rc));
        return false;
    }
    clq_count(r->q, hedge ? CLQ_M_HEDGED : CLQ_M_SENT, 1);
    if (!hedge) {
        pthread_mutex_lock(&r->q->mu);
        clq_budget_sent(&r->q->budget, now);
        pthread_mutex_unlock(&r->q->mu);
    }
    if (r->n_sends < SENDS_MAX) {
        sent *s = &r->sends[r->n_sends++];
        snprintf(s->node, sizeof s->node, "%s", node);
        s->sent_ns = now;
        s->hedge_ns = hedge_at(r->q, node, now, r->deadline_ns);
        s->hedged = s->answered = false;
    }
    return true;
}

/* May a hedge go out now (the budget, docs/recall.md "Hedge budget")? */
static bool hedge_allowed(cl_query *q)
{
    pthread_mutex_lock(&q->mu);
    bool ok = clq_budget_take(&q->budget, mn_time_mono_ns());
    pthread_mutex_unlock(&q->mu);
    if (!ok) clq_count(q, CLQ_M_HEDGE_REFUSED, 1);
    return ok;
}

/* Sends every slot marked retry to its next target, grouped by node; a slot with no target
 * left is done with its last reason. A hedge the budget refuses is not sent: its spaces
 * keep waiting for the copy they were sent to. */
static void send_marked(run *r, bool hedge)
{
    uint32_t idx[MN_QUERY_SPACES_MAX];
    for (size_t i = 0; i < r->n; i++) {
        slot *s = &r->slots[i];
        if (!s->retry || s->done) continue;
        if (s->next >= s->plan.n) { /* nothing left to try: wait for what was sent */
            s->retry = false;
            continue;
        }
        const char *node = node_of(s, s->next);
        size_t k = 0;
        for (size_t j = i; j < r->n; j++) {
            slot *t = &r->slots[j];
            if (t->retry && !t->done && t->next < t->plan.n && !strcmp(node_of(t, t->next), node))
                idx[k++] = (uint32_t)j;
        }
        if (hedge && !hedge_allowed(r->q)) {
            for (size_t j = 0; j < k; j++)
                r->slots[idx[j]].retry = false;
            continue;
        }
        bool ok = send_to(r, node, idx, k, hedge);
        for (size_t j = 0; j < k; j++) {
            slot *t = &r->slots[idx[j]];
            t->at = t->plan.targets[t->next++];
            t->waiting += ok;
            t->retry = !ok && t->next < t->plan.n; /* not sent: on to the next at once */
            if (!ok) t->why = MN_QUERY_MISSING_UNAVAILABLE;
        }
        if (!ok) i--; /* the same slot again, with its next target */
    }
}

/* ---- answers ---- */

static long find_space(const run *r, const char *name)
{
    size_t lo = 0, hi = r->n; /* the plan's spaces are sorted; a run's are a subsequence */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(r->spaces[mid], name);
        if (!c) return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static void take_space(run *r, clq_space_answer *a)
{
    long i = find_space(r, a->space);
    slot *s = i >= 0 ? &r->slots[i] : NULL;
    if (!s || s->done) return; /* not asked, or answered already: the first answer won */
    if (s->waiting > 0) s->waiting--;
    if (a->a.rc != MN_OK && a->a.rc != MN_ERR_INVALID) { /* not held there, unavailable... */
        s->why = a->a.missing ? a->a.missing : MN_QUERY_MISSING_UNAVAILABLE;
        s->retry = s->next < s->plan.n;         /* on to its next target */
        if (s->retry || s->waiting > 0) return; /* another copy may still answer */
    }
    s->done = true;
    r->out[i] = a->a;
    memset(&a->a.res, 0, sizeof a->a.res); /* moved */
}

static void take_frame(run *r, clq_inbox *m)
{
    for (size_t i = 0; i < r->n_sends; i++)
        if (!r->sends[i].answered && !strcmp(r->sends[i].node, m->from)) {
            r->sends[i].answered = true;
            lat_add(r->q, m->from, m->at_ns - r->sends[i].sent_ns);
            break;
        }
    clq_space_answer *a = NULL;
    size_t n = 0;
    mn_error err = {0};
    if (clq_answer_decode(m->data, m->len, &a, &n, &err)) {
        clq_count(r->q, CLQ_M_MALFORMED, 1);
        mn_log_warn("query: an answer of node %s dropped: %s", m->from, err.message);
        return;
    }
    clq_count(r->q, CLQ_M_ANSWERED, 1);
    for (size_t i = 0; i < n; i++)
        take_space(r, &a[i]);
    clq_answers_free(a, n);
}

/* Marks for a hedge the spaces of every frame whose hedge time passed; the next wake-up. */
static int64_t hedges_due(run *r, int64_t now)
{
    int64_t wake = r->deadline_ns;
    for (size_t i = 0; i < r->n_sends; i++) {
        sent *s = &r->sends[i];
        if (s->answered || s->hedged) continue;
        if (s->hedge_ns > now) {
            if (s->hedge_ns < wake) wake = s->hedge_ns;
            continue;
        }
        s->hedged = true;
        lat_overdue(r->q, s->node, now);
        for (size_t j = 0; j < r->n; j++) {
            slot *t = &r->slots[j];
            if (!t->done && t->at >= 0 && t->next < t->plan.n &&
                !strcmp(t->pl.holders[t->at].node, s->node))
                t->retry = true;
        }
    }
    return wake;
}

static bool all_done(const run *r)
{
    for (size_t i = 0; i < r->n; i++)
        if (!r->slots[i].done) return false;
    return true;
}

static void wait_until(cl_query *q, clq_flight *f, int64_t until_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(until_ns / 1000000000LL),
                          .tv_nsec = (long)(until_ns % 1000000000LL)};
    while (!f->in && !q->closing && mn_time_mono_ns() < until_ns)
        pthread_cond_timedwait(&f->cv, &q->mu, &ts);
}

static void gather(run *r)
{
    cl_query *q = r->q;
    send_marked(r, false);
    for (size_t i = 0; i < r->n; i++)
        if (r->slots[i].local) {
            api_query_local_exec(q->api, &r->spaces[i], 1, r->req, r->caller, r->deadline_ns,
                                 &r->out[i]);
            r->slots[i].done = true;
        }
    while (!all_done(r)) {
        int64_t now = mn_time_mono_ns();
        if (now >= r->deadline_ns) break;
        int64_t wake = hedges_due(r, now);
        send_marked(r, true);
        pthread_mutex_lock(&q->mu);
        wait_until(q, r->f, wake);
        clq_inbox *in = r->f->in;
        r->f->in = NULL;
        r->f->in_tail = &r->f->in;
        bool closing = q->closing;
        for (clq_inbox *m = in; m; m = m->next) {
            mn_assert(q->inbox_bytes >= m->len);
            q->inbox_bytes -= m->len;
        }
        pthread_mutex_unlock(&q->mu);
        while (in) {
            clq_inbox *next = in->next;
            take_frame(r, in);
            free(in);
            in = next;
        }
        send_marked(r, false); /* refusals move on to their next target */
        if (closing) break;
    }
}

/* ---- the flight ---- */

static clq_flight *flight_add(cl_query *q)
{
    clq_flight *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
    f->in_tail = &f->in;
    pthread_mutex_lock(&q->mu);
    bool room = !q->closing && q->n_flights < CLQ_FLIGHTS_MAX;
    if (room) {
        f->id = ++q->next_id;
        f->next = q->flights;
        q->flights = f;
        q->n_flights++;
        q->active++;
    }
    pthread_mutex_unlock(&q->mu);
    if (!room) {
        pthread_cond_destroy(&f->cv);
        free(f);
        clq_count(q, CLQ_M_BUSY, 1);
    }
    return room ? f : NULL;
}

static void flight_remove(cl_query *q, clq_flight *f)
{
    pthread_mutex_lock(&q->mu);
    for (clq_flight **p = &q->flights; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            break;
        }
    mn_assert(q->n_flights > 0 && q->active > 0);
    q->n_flights--;
    for (clq_inbox *m = f->in; m; m = m->next)
        q->inbox_bytes -= m->len;
    if (--q->active == 0) pthread_cond_broadcast(&q->idle);
    pthread_mutex_unlock(&q->mu);
    while (f->in) {
        clq_inbox *next = f->in->next;
        free(f->in);
        f->in = next;
    }
    pthread_cond_destroy(&f->cv);
    free(f);
}

/* The spaces no copy answered get the stand-in's answer, if there is one (issue 18); one the
 * stand-in refuses (as_of: the partition hook's MN_ERR_UNSUPPORTED) says so. */
static void stand_in(cl_query *q, const char *const *spaces, size_t n, const mn_recall_req_t *req,
                     mn_query_answer_t *out)
{
    for (size_t i = 0; q->partition && i < n; i++) {
        if (out[i].rc == MN_OK || out[i].rc == MN_ERR_INVALID) continue;
        mn_recall_result_t res = {0};
        mn_error err = {0};
        mn_err rc = q->partition(q->partition_arg, spaces[i], req, &res, &err);
        if (rc == MN_ERR_UNSUPPORTED) out[i].no_stand_in = MN_QUERY_NO_STAND_IN_AS_OF;
        if (rc != MN_OK) continue;
        mn_recall_result_clear(&out[i].res);
        out[i] =
            (mn_query_answer_t){.rc = MN_OK, .res = res, .missing = MN_QUERY_MISSING_PARTITION};
    }
}

void cl_query_set_partition(cl_query *q, cl_query_partition_fn fn, void *arg)
{
    q->partition = fn;
    q->partition_arg = arg;
}

void cl_query_set_hedge_budget(cl_query *q, int64_t percent)
{
    pthread_mutex_lock(&q->mu);
    clq_budget_init(&q->budget, percent, mn_time_mono_ns());
    pthread_mutex_unlock(&q->mu);
}

/* This one job holds every remote space of a run: it reports this long before the run's own
 * deadline, or what did answer would be dropped with what did not. */
static int64_t margin_ns(int64_t deadline_ns)
{
    int64_t m = (deadline_ns - mn_time_mono_ns()) / 16;
    return m < 1000000 ? 1000000 : m > 50000000 ? 50000000 : m;
}

static void remote_exec(void *arg, const char *const *spaces, size_t n, const mn_recall_req_t *req,
                        const void *caller, int64_t deadline_ns, mn_query_answer_t *out)
{
    run r = {.q = arg,
             .spaces = spaces,
             .n = n,
             .req = req,
             .deadline_ns = deadline_ns - margin_ns(deadline_ns),
             .out = out,
             .caller = caller ? caller : &OPEN_CALLER};
    r.slots = calloc(n ? n : 1, sizeof *r.slots);
    r.f = r.slots ? flight_add(r.q) : NULL;
    for (size_t i = 0; r.f && i < n; i++)
        plan_slot(&r, i);
    if (r.f) gather(&r);
    size_t timed_out = 0;
    for (size_t i = 0; i < n; i++) {
        if (r.slots && r.slots[i].done) continue;
        const char *why = r.slots && r.f ? r.slots[i].why : MN_QUERY_MISSING_UNAVAILABLE;
        out[i] = (mn_query_answer_t){.rc = MN_ERR_UNAVAILABLE, .missing = why};
        timed_out += !strcmp(why, MN_QUERY_MISSING_TIMEOUT);
    }
    clq_count(r.q, CLQ_M_TIMED_OUT, timed_out);
    if (r.f) flight_remove(r.q, r.f);
    free(r.slots);
    stand_in(r.q, spaces, n, req, out);
}

/* ---- locating, lifecycle ---- */

/* holders[0] (local) when this node serves space as a primary-preference read would, else
 * holders[1] (remote: its executor plans each space by the run's own preference). */
static uint32_t locate(void *arg, const char *space)
{
    cl_query *q = arg;
    cl_placement pl;
    cl_route_plan_t p;
    api_route_ask ask = {.space = space, .path = "/v1/recall", .read = API_READ_PRIMARY};
    if (!cl_spaces_lookup(q->cs, space, false, &pl)) return 1;
    return cl_route_plan(cl_spaces_self(q->cs), &ask, &pl, &p) ? 0 : 1;
}

static const char *const EVENT[] = {"event"};
static const char *const EVENTS[CLQ_M_COUNT] = {
    "sent",      "answered", "timed_out", "hedged",           "served",  "busy",
    "malformed", "late",     "rerouted",  "rerouted_suspect", "suspect", "hedge_refused"};

void clq_count(cl_query *q, clq_metric m, uint64_t n)
{
    const char *v[] = {EVENTS[m]};
    if (q->m && n) mn_metrics_add(q->m, v, n);
}

mn_err cl_query_new(mn_api_t *api, struct cl_repl *repl, cl_spaces *cs, cl_query **out,
                    mn_error *err)
{
    *out = NULL;
    cl_query *q = calloc(1, sizeof *q);
    if (!q) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    *q = (cl_query){.api = api, .repl = repl, .cs = cs};
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->idle, NULL);
    clq_budget_init(&q->budget, CLQ_BUDGET_PERCENT, mn_time_mono_ns());
    q->m = mn_metrics_counter(mn_metrics_process(), "mnemo_query_remote_total",
                              "Recall over many spaces across nodes (peer query channel): "
                              "sent/hedged request frames, answered frames, timed_out spaces, "
                              "served/busy batches of other nodes, malformed and late frames, "
                              "rerouted/rerouted_suspect/suspect spaces, hedge_refused hedges.",
                              EVENT, 1);
    mn_err rc = clq_serve_start(q, err);
    cl_repl_channel ch = {.channel = MN_PEER_CH_QUERY, .arg = q, .on_frame = clq_on_frame};
    if (!rc) rc = cl_repl_attach(repl, &ch, err);
    mn_query_holder_t remote = {
        .name = "remote", .exec = remote_exec, .arg = q, .batch_max = MN_QUERY_SPACES_MAX};
    if (!rc) rc = api_query_restart(api, &remote, locate, q, err);
    if (rc) {
        cl_query_close(q); /* a channel attached stays attached: q lives until the repl */
        *out = q;
        return rc;
    }
    *out = q;
    return MN_OK;
}

void cl_query_close(cl_query *q)
{
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->closing = true;
    for (clq_flight *f = q->flights; f; f = f->next)
        pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&q->mu);
    mn_error err = {0};
    if (api_query_restart(q->api, NULL, NULL, NULL, &err)) /* joins the old pool */
        mn_log_warn("query: %s", err.message);
    pthread_mutex_lock(&q->mu);
    while (q->active > 0)
        pthread_cond_wait(&q->idle, &q->mu);
    pthread_mutex_unlock(&q->mu);
    clq_serve_stop(q);
}

void cl_query_free(cl_query *q)
{
    if (!q) return;
    mn_assert(q->closing && q->n_flights == 0);
    mn_query_free(q->local);
    pthread_cond_destroy(&q->sq_cv);
    pthread_cond_destroy(&q->idle);
    pthread_mutex_destroy(&q->mu);
    free(q);
}
