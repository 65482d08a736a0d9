/* The serving side of the query channel, and the channel's frame callback.
 *
 * On the replication thread a frame is only sorted: an answer goes to the inbox of the run
 * waiting for it (bounded, else dropped as late), a request is decoded and queued for the
 * serve threads (bounded: a full queue answers "busy" at once), anything else is counted as
 * malformed and dropped. A serve thread checks each space against the grant the frame
 * carries and against this node's engine (not here: "not_held"), runs the rest on the local
 * holder alone (q->local) with the time the origin had left minus a margin for the way back,
 * and answers per space, each space's hits cut to the ones in this node's merged top k (the
 * origin's merge keeps no other), confidences as the spaces gave them (the origin applies
 * the missing-partition factor once).
 *
 * TEST ONLY: MNEMO_TEST_QUERY_DELAY_MS=<ms> makes this node wait that long (at most until the
 * batch's deadline) before it runs a batch of another node: a slow node, for the hedging
 * tests and bench/cluster_recall.py (docs/config.md). Unset, nothing happens. */
#include "cluster_query_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mnemo/assert.h"
#include "mnemo/util.h"

#define MARGIN_MS_MAX                                                                              \
    100 /* kept for the answer's way back: an eighth of the time, at most this                     \
         */

/* ---- the frame callback (replication thread) ---- */

static void to_inbox(cl_query *q, uint64_t id, const char *from, const uint8_t *buf, size_t len)
{
    clq_inbox *m = malloc(sizeof *m + len);
    bool taken = false;
    pthread_mutex_lock(&q->mu);
    for (clq_flight *f = q->flights; m && f; f = f->next) {
        if (f->id != id) continue;
        if (q->inbox_bytes + len > CLQ_INBOX_MAX) break;
        m->next = NULL;
        snprintf(m->from, sizeof m->from, "%s", from);
        m->at_ns = mn_time_mono_ns();
        m->len = len;
        memcpy(m->data, buf, len);
        *f->in_tail = m;
        f->in_tail = &m->next;
        q->inbox_bytes += len;
        mn_assert(q->inbox_bytes <= CLQ_INBOX_MAX);
        pthread_cond_broadcast(&f->cv);
        taken = true;
        break;
    }
    pthread_mutex_unlock(&q->mu);
    if (taken) return;
    free(m);
    clq_count(q, CLQ_M_LATE, 1);
}

/* Answers every space of req with rc and why (busy, closing), on the replication thread. */
static void answer_all(cl_query *q, const char *from, const clq_request *req, mn_err rc,
                       const char *why)
{
    mn_query_answer_t *a = calloc(req->n ? req->n : 1, sizeof *a);
    uint8_t *buf = NULL;
    size_t len = 0;
    mn_error err = {0};
    for (size_t i = 0; a && i < req->n; i++)
        a[i] = (mn_query_answer_t){.rc = rc, .missing = why};
    if (a &&
        !clq_answer_encode(req->id, (const char *const *)req->spaces, a, req->n, &buf, &len, &err))
        (void)cl_repl_send(q->repl, from, MN_PEER_CH_QUERY, buf, len);
    free(buf);
    free(a);
}

static void to_queue(cl_query *q, const char *from, const uint8_t *buf, size_t len)
{
    clq_request *req = malloc(sizeof *req);
    mn_error err = {0};
    if (!req || clq_request_decode(buf, len, req, &err)) {
        clq_count(q, CLQ_M_MALFORMED, 1);
        if (req) mn_log_warn("query: a request of node %s dropped: %s", from, err.message);
        free(req);
        return;
    }
    clq_job *j = calloc(1, sizeof *j);
    int64_t margin = req->timeout_ms / 8 < MARGIN_MS_MAX ? req->timeout_ms / 8 : MARGIN_MS_MAX;
    pthread_mutex_lock(&q->mu);
    bool room = j && !q->closing && q->n_threads && q->sq_n < CLQ_SERVE_QUEUE_MAX;
    if (room) {
        snprintf(j->from, sizeof j->from, "%s", from);
        j->deadline_ns = mn_time_mono_ns() + ((int64_t)req->timeout_ms - margin) * 1000000LL;
        j->req = req;
        *q->sq_tail = j;
        q->sq_tail = &j->next;
        q->sq_n++;
        mn_assert(q->sq_n <= CLQ_SERVE_QUEUE_MAX);
        pthread_cond_signal(&q->sq_cv);
    }
    pthread_mutex_unlock(&q->mu);
    if (room) return;
    clq_count(q, CLQ_M_BUSY, 1);
    answer_all(q, from, req, MN_ERR_BUSY, MN_QUERY_MISSING_UNAVAILABLE);
    clq_request_clear(req);
    free(req);
    free(j);
}

void clq_on_frame(void *arg, const char *from, const uint8_t *buf, size_t len)
{
    cl_query *q = arg;
    uint64_t id;
    int type = len <= CLQ_FRAME_MAX ? clq_frame_head(buf, len, &id) : 0;
    if (type == CLQ_ANSWER)
        to_inbox(q, id, from, buf, len);
    else if (type == CLQ_REQUEST)
        to_queue(q, from, buf, len);
    else
        clq_count(q, CLQ_M_MALFORMED, 1);
}

/* ---- serving one batch (a serve thread) ---- */

/* Why this node does not run space for req: NULL (it does), not_held, or error (the grant). */
static const char *refusal(cl_query *q, const clq_request *req, const char *space,
                           mn_query_answer_t *a)
{
    mn_auth_grant_t g = {req->caller.role, req->caller.key_name, req->grant_spaces};
    mn_auth_verdict_t v;
    if (mn_auth_allow_grant(q->api->auth, &g, MN_AUTH_OP_RECALL, space, &v) != MN_AUTH_OK) {
        a->rc = MN_ERR_INTERNAL; /* not INVALID: that would fail the origin's whole run */
        snprintf(a->err.message, sizeof a->err.message, "the grant does not cover space %s: %s",
                 space, v.message);
        mn_log_warn("query: %s", a->err.message);
        return MN_QUERY_MISSING_ERROR;
    }
    mn_space_stats_t st;
    if (mn_engine_space_get(q->api->engine, space, &st, NULL)) {
        a->rc = MN_ERR_NOT_FOUND;
        return MN_QUERY_MISSING_NOT_HELD;
    }
    return NULL;
}

/* The run failed as a whole (a cue that does not fit a space, "space S: ..."): that space
 * answers MN_ERR_INVALID with the rest of the message, the others an error. */
static void run_failed(const clq_request *req, const mn_error *err, mn_query_answer_t *a)
{
    for (size_t i = 0; i < req->n; i++) {
        if (a[i].missing) continue;
        size_t n = strlen(req->spaces[i]);
        bool it = err->code == MN_ERR_INVALID && !strncmp(err->message, "space ", 6) &&
                  !strncmp(err->message + 6, req->spaces[i], n) && err->message[6 + n] == ':';
        a[i].rc = it ? MN_ERR_INVALID : MN_ERR_INTERNAL;
        a[i].missing = it ? NULL : MN_QUERY_MISSING_ERROR;
        snprintf(a[i].err.message, sizeof a[i].err.message, "%s",
                 it ? err->message + 8 + n : err->message);
    }
}

/* Hands each space its hits of the merged result (res's hits move out). */
static void split(const mn_query_result_t *res, const uint32_t *run_to_req, size_t n_run,
                  mn_query_answer_t *a)
{
    for (size_t i = 0; i < res->n_missing; i++) {
        mn_query_answer_t *x = &a[run_to_req[res->missing[i].space]];
        x->rc = MN_ERR_UNAVAILABLE;
        x->missing = res->missing[i].reason;
    }
    for (size_t h = 0; h < res->n_hits; h++) {
        mn_recall_result_t *r = &a[run_to_req[res->hit_space[h]]].res;
        mn_recall_hit_t *grown = realloc(r->hits, (r->n_hits + 1) * sizeof *r->hits);
        if (!grown) { /* out of memory: the hit is dropped, the rest stands */
            mn_memory_clear(&res->hits[h].memory);
            free(res->hits[h].duplicate_ids);
            continue;
        }
        r->hits = grown;
        r->hits[r->n_hits++] = res->hits[h];
    }
    for (size_t i = 0; i < n_run; i++) {
        mn_query_answer_t *x = &a[run_to_req[i]];
        if (x->rc != MN_OK) continue;
        x->res.scanned = res->scanned; /* the batch's total, on its first answered space */
        x->res.has_time_window = res->window.has_time_window;
        x->res.time_window = res->window.time_window;
        break;
    }
}

static void run_batch(cl_query *q, const clq_job *j, mn_query_answer_t *a)
{
    const clq_request *req = j->req;
    const char *names[MN_QUERY_SPACES_MAX];
    uint32_t run_to_req[MN_QUERY_SPACES_MAX];
    size_t n_run = 0;
    for (size_t i = 0; i < req->n; i++) {
        a[i].missing = refusal(q, req, req->spaces[i], &a[i]);
        if (a[i].missing) continue;
        names[n_run] = req->spaces[i];
        run_to_req[n_run++] = (uint32_t)i;
    }
    int64_t left_ms = (j->deadline_ns - mn_time_mono_ns()) / 1000000;
    /* the origin's read preference travels to the local executor: a lapsed primary serves no
     * read=primary part, a copy behind marks its hits stale_replica */
    mn_query_run_opts_t o = {.timeout_ms = left_ms > 1 ? left_ms : 1,
                             .no_penalty = true,
                             .caller = &req->caller,
                             .caller_len = sizeof req->caller};
    mn_query_result_t res;
    mn_error err = {0};
    if (!n_run) return;
    if (mn_query_run_ex(q->local, names, n_run, req->req, &o, &res, &err)) {
        run_failed(req, &err, a);
        return;
    }
    split(&res, run_to_req, n_run, a);
    res.n_hits = 0; /* moved */
    mn_query_result_clear(&res);
}

static void serve(cl_query *q, clq_job *j)
{
    if (q->test_delay_ms > 0) {
        int64_t until = mn_time_mono_ns() + q->test_delay_ms * 1000000LL;
        if (until > j->deadline_ns) until = j->deadline_ns;
        struct timespec ms = {0, 1000000};
        bool closing = false;
        while (!closing && mn_time_mono_ns() < until) {
            nanosleep(&ms, NULL);
            pthread_mutex_lock(&q->mu);
            closing = q->closing;
            pthread_mutex_unlock(&q->mu);
        }
    }
    const clq_request *req = j->req;
    mn_query_answer_t *a = calloc(req->n ? req->n : 1, sizeof *a);
    uint8_t *buf = NULL;
    size_t len = 0;
    mn_error err = {0};
    if (a) run_batch(q, j, a);
    mn_err rc = a ? clq_answer_encode(req->id, (const char *const *)req->spaces, a, req->n, &buf,
                                      &len, &err)
                  : MN_ERR_NOMEM;
    if (rc) mn_log_warn("query: the answer to node %s not sent: %s", j->from, err.message);
    if (!rc && !cl_repl_post(q->repl, j->from, MN_PEER_CH_QUERY, buf, len))
        clq_count(q, CLQ_M_SERVED, 1);
    free(buf);
    for (size_t i = 0; a && i < req->n; i++)
        mn_recall_result_clear(&a[i].res);
    free(a);
}

static void *serve_main(void *arg)
{
    cl_query *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->sq_head && !q->closing)
            pthread_cond_wait(&q->sq_cv, &q->mu);
        if (q->closing) break;
        clq_job *j = q->sq_head;
        q->sq_head = j->next;
        if (!q->sq_head) q->sq_tail = &q->sq_head;
        mn_assert(q->sq_n > 0);
        q->sq_n--;
        pthread_mutex_unlock(&q->mu);
        serve(q, j);
        clq_request_clear(j->req);
        free(j->req);
        free(j);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

mn_err clq_serve_start(cl_query *q, mn_error *err)
{
    mn_query_holder_t local = {
        .name = "local", .exec = api_query_local_exec, .arg = q->api, .batch_max = 1};
    mn_query_opts_t o = {.threads = 4, .holders = &local, .n_holders = 1};
    mn_err rc = mn_query_new(&o, &q->local, err);
    if (rc) return rc;
    q->sq_tail = &q->sq_head;
    pthread_cond_init(&q->sq_cv, NULL);
    const char *d = getenv("MNEMO_TEST_QUERY_DELAY_MS");
    if (d && *d) {
        q->test_delay_ms = strtoll(d, NULL, 10);
        mn_log_warn("TEST ONLY: MNEMO_TEST_QUERY_DELAY_MS=%s: this node waits %lld ms before it "
                    "runs another node's part of a recall over many spaces",
                    d, (long long)q->test_delay_ms);
    }
    for (; q->n_threads < CLQ_SERVE_THREADS; q->n_threads++)
        if (pthread_create(&q->threads[q->n_threads], NULL, serve_main, q)) break;
    if (q->n_threads) return MN_OK;
    return mn_error_set(err, MN_ERR_NOMEM, "query: cannot start its serve threads");
}

void clq_serve_stop(cl_query *q)
{
    pthread_mutex_lock(&q->mu);
    q->closing = true;
    pthread_cond_broadcast(&q->sq_cv);
    size_t n = q->n_threads;
    q->n_threads = 0;
    pthread_mutex_unlock(&q->mu);
    for (size_t i = 0; i < n; i++)
        pthread_join(q->threads[i], NULL);
    pthread_mutex_lock(&q->mu);
    clq_job *j = q->sq_head;
    q->sq_head = NULL;
    q->sq_tail = &q->sq_head;
    q->sq_n = 0;
    pthread_mutex_unlock(&q->mu);
    while (j) {
        clq_job *next = j->next;
        clq_request_clear(j->req);
        free(j->req);
        free(j);
        j = next;
    }
}
