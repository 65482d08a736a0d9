/* Scatter and gather: one run of a recall over many spaces (docs/recall.md §11).
 *
 * The caller's spaces are cut into jobs, one per holder and batch (the local holder: one
 * space per job, so the spaces are searched in parallel), queued on the pool, and the
 * caller waits on a condition until every job reported or the deadline passed. Then it
 * abandons the gather: what came back is moved out and merged; what did not is listed as
 * missing ("timeout"). A job still running holds a reference to the gather (the copy of the
 * request included), and the last reference frees it, so a late job never touches the
 * caller's memory. Invariant (mn_assert): pending counts the spaces of the jobs that have not
 * reported, so it never goes below zero, and is zero before the caller's wait ends early.
 *
 * TEST ONLY: MNEMO_TEST_RECALL_STALL=<space> makes every job holding that space wait until
 * its caller gave up, then report nothing: the space is missing with "timeout" on every run,
 * whatever the machine's speed, without a clock in the test (docs/config.md). Unset, nothing
 * happens. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mnemo/assert.h"
#include "mnemo/query.h"
#include "mnemo/util.h"
#include "query_pool.h"

struct mn_query {
    mn__query_pool pool;   /* holders[0]'s jobs: this node's spaces */
    mn__query_pool remote; /* the other holders' (with more than one): a job that waits on
                            * other nodes for up to its timeout never holds a thread this
                            * node's own spaces need, however many recalls wait on a stalled
                            * node at once */
    bool has_remote;
    mn_query_holder_t *holders;
    size_t n_holders;
    mn_query_locate_fn locate;
    void *locate_arg;
    char *stall; /* the test hook's space, or NULL */
};

typedef struct gather {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    int refs;          /* the caller's and one per job */
    bool abandoned;    /* the caller stopped waiting: results are no longer taken */
    size_t pending;    /* spaces not reported yet */
    int64_t deadline_ns;
    mn_recall_req_t *req; /* owned copy */
    char **spaces;        /* owned copies */
    size_t n;
    mn_query_answer_t *answers;
    bool *done;
    const char *stall; /* the test hook's space, or NULL */
    void *caller;      /* owned copy of the run's caller bytes, or NULL */
} gather;

typedef struct job {
    mn__query_job base; /* first: the pool hands it back */
    gather *g;
    const mn_query_holder_t *holder;
    size_t n;
    uint32_t idx[]; /* the gather's spaces this job answers for */
} job;

static void gather_unref(gather *g)
{
    pthread_mutex_lock(&g->mu);
    mn_assert(g->refs > 0);
    bool last = --g->refs == 0;
    pthread_mutex_unlock(&g->mu);
    if (!last) return;
    for (size_t i = 0; i < g->n; i++) {
        if (g->answers) mn_recall_result_clear(&g->answers[i].res);
        if (g->spaces) free(g->spaces[i]);
    }
    mn_recall_req_free(g->req);
    free(g->caller);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g->spaces);
    free(g->answers);
    free(g->done);
    free(g);
}

static gather *gather_new(const char *const *spaces, size_t n, const mn_recall_req_t *req,
                          const mn_query_run_opts_t *o, int64_t deadline_ns, const char *stall)
{
    gather *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    g->refs = 1;
    g->deadline_ns = deadline_ns;
    g->stall = stall;
    g->req = mn_recall_req_dup(req);
    g->spaces = calloc(n ? n : 1, sizeof *g->spaces);
    g->answers = calloc(n ? n : 1, sizeof *g->answers);
    g->done = calloc(n ? n : 1, sizeof *g->done);
    if (o->caller && o->caller_len && (g->caller = malloc(o->caller_len)))
        memcpy(g->caller, o->caller, o->caller_len);
    bool ok = g->req && g->spaces && g->answers && g->done && (g->caller || !o->caller_len);
    for (size_t i = 0; ok && i < n; i++)
        ok = (g->spaces[i] = strdup(spaces[i])) != NULL;
    if (g->spaces && g->answers) g->n = n; /* what gather_unref frees */
    if (!ok) {
        gather_unref(g);
        return NULL;
    }
    g->pending = n;
    return g;
}

/* The test hook: does this job hold the stalled space? */
static bool job_stalls(const job *j)
{
    const gather *g = j->g;
    for (size_t i = 0; g->stall && i < j->n; i++)
        if (!strcmp(g->spaces[j->idx[i]], g->stall)) return true;
    return false;
}

/* Runs the job's spaces on its holder unless the caller has given up; reports them done. */
static void job_run(mn__query_job *base)
{
    job *j = (job *)(void *)base;
    gather *g = j->g;
    const char *names[MN_QUERY_SPACES_MAX];
    mn_assert(j->n <= MN_QUERY_SPACES_MAX);
    pthread_mutex_lock(&g->mu);
    while (job_stalls(j) && !g->abandoned)
        pthread_cond_wait(&g->cv, &g->mu); /* the caller gives up at its deadline */
    bool skip = g->abandoned || job_stalls(j) || mn_time_mono_ns() >= g->deadline_ns;
    pthread_mutex_unlock(&g->mu);
    mn_query_answer_t *got = skip ? NULL : calloc(j->n, sizeof *got);
    if (got) {
        for (size_t i = 0; i < j->n; i++)
            names[i] = g->spaces[j->idx[i]];
        j->holder->exec(j->holder->arg, names, j->n, g->req, g->caller, g->deadline_ns, got);
    }
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < j->n; i++) {
        if (got && !g->abandoned) {
            g->answers[j->idx[i]] = got[i];
            g->done[j->idx[i]] = true;
        } else if (got) {
            mn_recall_result_clear(&got[i].res); /* too late: nobody takes it */
        }
    }
    mn_assert(g->pending >= j->n);
    g->pending -= j->n;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    free(got);
    gather_unref(g);
    free(j);
}

static uint32_t holder_of(const mn_query_t *q, const char *space)
{
    uint32_t h = q->locate ? q->locate(q->locate_arg, space) : 0;
    mn_assert(h < q->n_holders);
    return h;
}

/* Cuts the spaces into jobs of one holder each, at most batch_max spaces, and queues them. */
static mn_err scatter(mn_query_t *q, gather *g, size_t n, mn_error *err)
{
    uint32_t *holder = calloc(n ? n : 1, sizeof *holder);
    bool *queued = calloc(n ? n : 1, sizeof *queued);
    mn_err rc = holder && queued ? MN_OK : mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n; i++)
        holder[i] = holder_of(q, g->spaces[i]);
    for (size_t i = 0; !rc && i < n; i++) {
        if (queued[i]) continue;
        const mn_query_holder_t *h = &q->holders[holder[i]];
        uint32_t max = h->batch_max ? h->batch_max : 1;
        job *j = calloc(1, sizeof *j + max * sizeof j->idx[0]);
        if (!j) {
            rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
            break;
        }
        *j = (job){.base.run = job_run, .g = g, .holder = h};
        for (size_t s = i; s < n && j->n < max; s++)
            if (!queued[s] && holder[s] == holder[i]) {
                queued[s] = true;
                j->idx[j->n++] = (uint32_t)s;
            }
        pthread_mutex_lock(&g->mu);
        g->refs++;
        pthread_mutex_unlock(&g->mu);
        mn__query_pool_submit(holder[i] && q->has_remote ? &q->remote : &q->pool, &j->base);
    }
    /* spaces no job took (out of memory) count as reported, unanswered */
    size_t unqueued = 0;
    for (size_t i = 0; i < n; i++)
        unqueued += queued && !queued[i];
    pthread_mutex_lock(&g->mu);
    g->pending -= queued ? unqueued : n;
    pthread_mutex_unlock(&g->mu);
    free(holder);
    free(queued);
    return rc;
}

/* Waits until every job reported or the deadline passed, then takes what came back:
 * answers[i] and answered[i] (the space reported in time). */
static void gather_wait(gather *g, size_t n, mn_query_answer_t *answers, bool *answered)
{
    struct timespec until = {.tv_sec = (time_t)(g->deadline_ns / 1000000000LL),
                             .tv_nsec = (long)(g->deadline_ns % 1000000000LL)};
    pthread_mutex_lock(&g->mu);
    while (g->pending > 0 && mn_time_mono_ns() < g->deadline_ns)
        pthread_cond_timedwait(&g->cv, &g->mu, &until);
    g->abandoned = true;
    for (size_t i = 0; i < n; i++) {
        answered[i] = g->done[i];
        if (!g->done[i]) continue;
        answers[i] = g->answers[i];
        memset(&g->answers[i], 0, sizeof g->answers[i]);
    }
    pthread_cond_broadcast(&g->cv); /* wakes the stalled jobs of the test hook */
    pthread_mutex_unlock(&g->mu);
}

mn_err mn_query_new(const mn_query_opts_t *o, mn_query_t **out, mn_error *err)
{
    *out = NULL;
    if (!o->n_holders || !o->holders)
        return mn_error_set(err, MN_ERR_INVALID, "query: at least one holder (this node)");
    mn_query_t *q = calloc(1, sizeof *q);
    if (!q || !(q->holders = calloc(o->n_holders, sizeof *q->holders))) {
        free(q);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    memcpy(q->holders, o->holders, o->n_holders * sizeof *q->holders);
    q->n_holders = o->n_holders;
    q->locate = o->locate;
    q->locate_arg = o->locate_arg;
    const char *stall = getenv("MNEMO_TEST_RECALL_STALL");
    if (stall && *stall) {
        q->stall = strdup(stall);
        mn_log_warn("TEST ONLY: MNEMO_TEST_RECALL_STALL=%s: recalls over many spaces never get "
                    "an answer from that space (it is always missing, \"timeout\")",
                    stall);
    }
    uint32_t threads = o->threads ? o->threads : MN_QUERY_THREADS_DEFAULT;
    mn_err rc = mn__query_pool_init(&q->pool, threads, err);
    if (!rc && o->n_holders > 1) {
        rc = mn__query_pool_init(&q->remote, o->remote_threads ? o->remote_threads : threads, err);
        if (rc) mn__query_pool_close(&q->pool);
        q->has_remote = !rc;
    }
    if (rc) {
        free(q->stall);
        free(q->holders);
        free(q);
        return rc;
    }
    *out = q;
    return MN_OK;
}

void mn_query_free(mn_query_t *q)
{
    if (!q) return;
    mn__query_pool_close(&q->pool);
    if (q->has_remote) mn__query_pool_close(&q->remote);
    free(q->stall);
    free(q->holders);
    free(q);
}

static const char *missing_reason(mn_err rc, const char *space, const mn_error *err)
{
    switch (rc) {
    case MN_ERR_NOT_FOUND:
        return MN_QUERY_MISSING_NOT_FOUND;
    case MN_ERR_UNAVAILABLE:
    case MN_ERR_CLOSED:
    case MN_ERR_BUSY:
        return MN_QUERY_MISSING_UNAVAILABLE;
    default:
        mn_log_warn("query: space %s failed its part of a recall: %s", space, err->message);
        return MN_QUERY_MISSING_ERROR;
    }
}

/* Lists the spaces that did not answer; a cue that does not fit a space fails the run. */
static mn_err list_missing(const char *const *spaces, size_t n, const mn_query_answer_t *answers,
                           const bool *answered, mn_query_result_t *out, mn_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (answered[i] && answers[i].rc == MN_ERR_INVALID)
            return mn_error_set(err, MN_ERR_INVALID, "space %s: %s", spaces[i],
                                answers[i].err.message);
    out->missing = calloc(n ? n : 1, sizeof *out->missing);
    if (!out->missing) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (answered[i] && answers[i].rc == MN_OK && !answers[i].missing) continue;
        const char *why = !answered[i] ? MN_QUERY_MISSING_TIMEOUT
                          : answers[i].missing
                              ? answers[i].missing
                              : missing_reason(answers[i].rc, spaces[i], &answers[i].err);
        const char *no_stand_in = answered[i] ? answers[i].no_stand_in : NULL;
        out->missing[out->n_missing++] = (mn_query_missing_t){(uint32_t)i, why, no_stand_in};
    }
    return MN_OK;
}

/* The summary fields of the answered spaces: scanned, the time window. */
static void sum_answers(const mn_query_answer_t *answers, const bool *ok, size_t n,
                        mn_query_result_t *out)
{
    for (size_t i = 0; i < n; i++) {
        if (!ok[i]) continue;
        out->scanned += answers[i].res.scanned;
        if (!out->window.has_time_window && answers[i].res.has_time_window) {
            out->window.has_time_window = true;
            out->window.time_window = answers[i].res.time_window;
        }
    }
}

static mn_err gathered(const char *const *spaces, const double *weights, bool penalty, size_t n,
                       uint32_t k, mn_query_answer_t *answers, const bool *answered,
                       mn_query_result_t *out, mn_error *err)
{
    mn_err rc = list_missing(spaces, n, answers, answered, out, err);
    bool *ok = calloc(n ? n : 1, sizeof *ok);
    if (!rc && !ok) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n; i++)
        ok[i] = answered[i] && answers[i].rc == MN_OK;
    if (!rc) {
        sum_answers(answers, ok, n, out);
        rc = mn_query_merge(answers, n, k, out, err);
    }
    for (size_t i = 0; !rc && i < n; i++)
        ok[i] = ok[i] && !answers[i].missing; /* a stand-in's space counts as not reached */
    if (!rc) out->reachable = out->n_missing ? mn_query_reachable(weights, ok, n) : 1.0f;
    for (size_t i = 0; !rc && i < out->n_hits; i++) {
        if (out->n_missing && penalty)
            mn_query_confidence_missing(&out->hits[i].confidence, out->reachable);
        if (out->hits[i].confidence.value > out->recall_confidence)
            out->recall_confidence = out->hits[i].confidence.value;
    }
    free(ok);
    return rc;
}

mn_err mn_query_run(mn_query_t *q, const char *const *spaces, const double *weights, size_t n,
                    const mn_recall_req_t *req, int64_t timeout_ms, mn_query_result_t *out,
                    mn_error *err)
{
    mn_query_run_opts_t o = {.weights = weights, .timeout_ms = timeout_ms};
    return mn_query_run_ex(q, spaces, n, req, &o, out, err);
}

mn_err mn_query_run_ex(mn_query_t *q, const char *const *spaces, size_t n,
                       const mn_recall_req_t *req, const mn_query_run_opts_t *o,
                       mn_query_result_t *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    int64_t timeout_ms = o->timeout_ms;
    if (timeout_ms < 1 || timeout_ms > MN_QUERY_TIMEOUT_MS_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "timeout_ms: must be in 1..%d, got %lld",
                            MN_QUERY_TIMEOUT_MS_MAX, (long long)timeout_ms);
    if (n > MN_QUERY_SPACES_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "spaces: %zu spaces, at most %d in one recall", n,
                            MN_QUERY_SPACES_MAX);
    int64_t deadline_ns = mn_time_mono_ns() + timeout_ms * 1000000LL;
    gather *g = gather_new(spaces, n, req, o, deadline_ns, q->stall);
    mn_query_answer_t *answers = calloc(n ? n : 1, sizeof *answers);
    bool *answered = calloc(n ? n : 1, sizeof *answered);
    mn_err rc = g && answers && answered ? MN_OK : mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    if (!rc) rc = scatter(q, g, n, err);
    if (g) {
        if (answers && answered) gather_wait(g, n, answers, answered);
        gather_unref(g);
    }
    uint32_t k = req->k ? req->k : 10;
    if (!rc) rc = gathered(spaces, o->weights, !o->no_penalty, n, k, answers, answered, out, err);
    for (size_t i = 0; answers && i < n; i++)
        mn_recall_result_clear(&answers[i].res);
    free(answers);
    free(answered);
    if (rc) mn_query_result_clear(out);
    return rc;
}

void mn_query_result_clear(mn_query_result_t *r)
{
    for (size_t i = 0; i < r->n_hits; i++) {
        mn_memory_clear(&r->hits[i].memory);
        free(r->hits[i].duplicate_ids);
    }
    free(r->hits);
    free(r->hit_space);
    free(r->missing);
    memset(r, 0, sizeof *r);
}
