/* Partition writes: taking hints, draining them to the primary, and merging them there
 * (docs/gossip.md, "Partition mode"; hinted handoff as in Cassandra, with the memory ids
 * fixed where the write was accepted).
 *
 * The drainer thread looks at the oldest pending hints every DRAIN_TICK_MS, at most
 * DRAIN_BATCH per round (one body in memory at a time). For each it asks the placement table
 * for the space's primary: this node (a failover made it the primary) merges it itself;
 * another node reachable in the table gets it as an internal hop, POST /v1/cluster/hints,
 * where mn_engine_remember_hinted writes it through the primary's own commit path (so its
 * replicas get it by WAL shipping) with the ids kept, and the answer waits for the space's
 * write consistency. Only a 200 deletes the hint; a 422 (the primary finds it invalid: a
 * dimension the space does not have) sets it aside as rejected; anything else is tried again
 * after a backoff per space (DRAIN_BACKOFF_MS doubled per failure up to DRAIN_BACKOFF_MAX_MS,
 * +-50 % jitter). A re-send after a crash is harmless: an id the primary holds (or forgot)
 * stays as it is. */
#include "cluster_hints.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "embed/embed.h"
#include "mnemo/assert.h"
#include "mnemo/metrics.h"
#include "mnemo/util.h"
#include "mnemo/wire.h"

#define DRAIN_TICK_MS 200
#define DRAIN_BATCH 32
#define DRAIN_BACKOFF_MS 250
#define DRAIN_BACKOFF_MAX_MS 5000
#define BACKOFF_SPACES 64
#define SWEEP_EVERY_MS 1000

typedef struct backoff {
    char space[MN_SPACE_NAME_MAX + 1];
    int failures;
    int64_t next_ms;
} backoff;

struct cl_hintd {
    cl_hints *store;
    mn_engine_t *engine;
    cl_spaces *cs;
    cl_route *rt;
    cl_repl *repl;
    cl_catalog *catalog; /* which spaces are dropped: their hints go */
    mn_api_t *api;
    bool accept;
    size_t max;
    pthread_t thread;
    pthread_mutex_t mu; /* guards stop and the wakeup */
    pthread_cond_t cv;
    bool stop, started;
    backoff bo[BACKOFF_SPACES]; /* drainer thread only */
    mn_prng_t prng;             /* drainer thread only */
    int64_t last_sweep_ms;      /* drainer thread only */
    _Atomic uint64_t accepted, merged, rejected, full, dropped;
    mn_metrics_family_t *m_total, *m_pending;
};

static void count(cl_hintd *d, const char *outcome, uint64_t n)
{
    const char *v[] = {outcome};
    if (d->m_total && n) mn_metrics_add(d->m_total, v, n);
    if (d->m_pending) mn_metrics_set(d->m_pending, NULL, cl_hints_pending(d->store, NULL));
}

/* ---- merging (on the primary) ---- */

/* Writes the hint data (a remember entry) to its space here, as its primary, and waits for
 * the space's write consistency. MN_ERR_INVALID: not a hint, or refused as invalid. */
static mn_err merge(cl_hintd *d, const uint8_t *data, size_t len, mn_error *err)
{
    mn_wal_entry_t en;
    mn_err rc = mn_wire_wal_decode(data, len, &en, err);
    if (rc) return mn_error_set(err, MN_ERR_INVALID, "not a hint: %s", err->message);
    size_t n = en.type == MN_WAL_OP_REMEMBER ? en.op.remember.n : 0;
    mn_id_t *ids = calloc(n ? n : 1, sizeof *ids);
    if (n == 0 || n > MN_BATCH_MAX)
        rc = mn_error_set(err, MN_ERR_INVALID, "not a hint: a remember of 1..%d memories",
                          MN_BATCH_MAX);
    else if (!ids)
        rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = mn_engine_remember_hinted(d->engine, en.space, en.op.remember.mems, n, ids, NULL, err);
    if (!rc && d->api) mn_embed_remembered(d->api->embed, en.space, en.op.remember.mems, ids, n);
    uint64_t last = 0, epoch = 0;
    if (!rc && mn_engine_space_position(d->engine, en.space, &last, &epoch, NULL) == MN_OK)
        rc = cl_repl_write_wait(d->repl, en.space, last, epoch, -1, -1, err);
    free(ids);
    mn_wal_entry_clear(&en);
    return rc;
}

void cl_hintd_handle_merge(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    cl_hintd *d = ctx;
    if (!cl_hop_present(req)) {
        mn_http_respond_error(resp, 403, "permission_denied",
                              "POST /v1/cluster/hints takes internal hops of other nodes only",
                              NULL);
        return;
    }
    mn_error err = {0};
    mn_err rc = merge(d, (const uint8_t *)req->body, req->body_len, &err);
    if (rc == MN_OK) {
        mn_http_respond(resp, 200, NULL, "{\"merged\":true}", 15);
        return;
    }
    int status = rc == MN_ERR_INVALID ? 422 : rc == MN_ERR_NOT_FOUND ? 404 : 503;
    mn_http_respond_error(resp, status,
                          status == 422   ? "invalid_argument"
                          : status == 404 ? "not_found"
                                          : "unavailable",
                          err.message, NULL);
}

/* ---- draining (this node's hints) ---- */

static backoff *backoff_of(cl_hintd *d, const char *space)
{
    backoff *free_slot = NULL;
    for (size_t i = 0; i < BACKOFF_SPACES; i++) {
        if (!strcmp(d->bo[i].space, space)) return &d->bo[i];
        if (!d->bo[i].space[0] && !free_slot) free_slot = &d->bo[i];
    }
    if (!free_slot) free_slot = &d->bo[mn_prng_next(&d->prng) % BACKOFF_SPACES];
    memset(free_slot, 0, sizeof *free_slot);
    snprintf(free_slot->space, sizeof free_slot->space, "%s", space);
    return free_slot;
}

static void failed(cl_hintd *d, backoff *b, int64_t now_ms)
{
    int shift = b->failures < 5 ? b->failures : 5;
    int64_t ms = (int64_t)DRAIN_BACKOFF_MS << shift;
    if (ms > DRAIN_BACKOFF_MAX_MS) ms = DRAIN_BACKOFF_MAX_MS;
    b->failures++;
    b->next_ms = now_ms + (int64_t)((double)ms * (0.5 + mn_prng_double(&d->prng)));
}

typedef enum { SENT_OK, SENT_REJECTED, SENT_LATER } sent_t;

/* One hint to its space's primary: merged, rejected, or to try later. */
static sent_t send_one(cl_hintd *d, const cl_hint_ref *r, mn_error *err)
{
    cl_placement pl;
    if (!cl_spaces_lookup(d->cs, r->space, false, &pl) || pl.n_holders == 0 ||
        pl.holders[0].role != MN_SPACES_PRIMARY) {
        mn_error_set(err, MN_ERR_UNAVAILABLE, "no primary known");
        return SENT_LATER;
    }
    const cl_holder *p = &pl.holders[0];
    bool self = !strcmp(p->node, cl_spaces_self(d->cs));
    if (!self && (!p->alive || !p->api[0])) {
        mn_error_set(err, MN_ERR_UNAVAILABLE, "primary %s not reachable", p->node);
        return SENT_LATER;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    sent_t out = SENT_LATER;
    if (cl_hints_read(d->store, r->seq, &data, &len, err)) return SENT_LATER;
    if (self) {
        mn_err rc = merge(d, data, len, err);
        out = rc == MN_OK ? SENT_OK : rc == MN_ERR_INVALID ? SENT_REJECTED : SENT_LATER;
    } else {
        cl_http_resp hr;
        if (cl_route_call(d->rt, p->node, "POST", "/v1/cluster/hints", (const char *)data, len, &hr,
                          err) == CL_HTTP_OK) {
            out = hr.status == 200 ? SENT_OK : hr.status == 422 ? SENT_REJECTED : SENT_LATER;
            if (out != SENT_OK)
                mn_error_set(err, MN_ERR_UNAVAILABLE, "primary %s answered %d: %.200s", p->node,
                             hr.status, hr.body ? hr.body : "");
            cl_http_resp_free(&hr);
        }
    }
    free(data);
    return out;
}

static int64_t stale_before(void *arg, const char *space)
{
    return cl_catalog_stale_before(arg, space);
}

/* Drops the hints of a dropped space, or of an older incarnation of its name, at most every
 * SWEEP_EVERY_MS: the catalog's rule for gossiped records (cl_catalog_stale_before), so a
 * hint taken up to CL_CATALOG_SKEW_MS before its space was created again is kept for the new
 * incarnation (docs/gossip.md, "Partition mode"). */
static void sweep(cl_hintd *d)
{
    int64_t now = mn_time_now_ms();
    if (now - d->last_sweep_ms < SWEEP_EVERY_MS) return;
    d->last_sweep_ms = now;
    size_t n = cl_hints_drop_stale(d->store, stale_before, d->catalog);
    if (!n) return;
    atomic_fetch_add(&d->dropped, n);
    count(d, "dropped", n);
}

/* One round over the oldest pending hints. */
static void drain_round(cl_hintd *d)
{
    sweep(d);
    cl_hint_ref refs[DRAIN_BATCH];
    size_t n = cl_hints_peek(d->store, refs, DRAIN_BATCH);
    for (size_t i = 0; i < n; i++) {
        int64_t now = mn_time_now_ms();
        backoff *b = backoff_of(d, refs[i].space);
        if (now < b->next_ms) continue;
        mn_error err = {0};
        sent_t s = send_one(d, &refs[i], &err);
        if (s == SENT_LATER) {
            if (!b->failures)
                mn_log_info("hints: %s: %zu memories wait for the primary: %s", refs[i].space,
                            refs[i].n, err.message);
            failed(d, b, mn_time_now_ms());
            continue;
        }
        b->failures = 0;
        b->next_ms = 0;
        mn_error rerr = {0};
        if (cl_hints_remove(d->store, refs[i].seq, s == SENT_REJECTED, &rerr)) {
            mn_log_error("hints: %s", rerr.message);
            continue;
        }
        if (s == SENT_REJECTED)
            mn_log_error("hints: %s: a hint of %zu memories was refused by the primary and set "
                         "aside in the hints directory: %s",
                         refs[i].space, refs[i].n, err.message);
        atomic_fetch_add(s == SENT_OK ? &d->merged : &d->rejected, refs[i].n);
        count(d, s == SENT_OK ? "merged" : "rejected", refs[i].n);
    }
}

static void *drain_main(void *arg)
{
    cl_hintd *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->stop) {
        pthread_mutex_unlock(&d->mu);
        drain_round(d);
        pthread_mutex_lock(&d->mu);
        if (d->stop) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += DRAIN_TICK_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&d->cv, &d->mu, &ts);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* ---- lifecycle and the hook ---- */

static const char *const outcome_label[] = {"outcome"};

mn_err cl_hintd_start(const mn_config_t *c, mn_engine_t *engine, cl_spaces *cs, cl_route *rt,
                      cl_repl *repl, cl_catalog *cat, cl_hintd **out, mn_error *err)
{
    mn_assert(cat);
    *out = NULL;
    cl_hintd *d = calloc(1, sizeof *d);
    if (!d) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/hints", c->storage.data_dir);
    d->max = (size_t)c->cluster.partition_writes_max;
    mn_err rc = cl_hints_open(dir, d->max, &d->store, err);
    if (rc) {
        free(d);
        return rc;
    }
    d->engine = engine;
    d->cs = cs;
    d->rt = rt;
    d->repl = repl;
    d->catalog = cat;
    d->accept = c->cluster.partition_writes && !strcmp(c->cluster.partition_writes, "accept");
    mn_prng_seed(&d->prng, mn_random_seed());
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    mn_metrics_t *m = mn_metrics_process();
    d->m_total = mn_metrics_counter(
        m, "mnemo_partition_writes_total",
        "Memories remembered under partition (cluster.partition_writes = \"accept\"): accepted "
        "as hints here, merged through the primary, rejected by it, refused here (full), "
        "dropped with their space.",
        outcome_label, 1);
    d->m_pending = mn_metrics_gauge(m, "mnemo_partition_writes_pending",
                                    "Memories held here as hints, not merged yet.", NULL, 0, 1.0);
    count(d, NULL, 0);
    if (pthread_create(&d->thread, NULL, drain_main, d)) {
        cl_hintd_stop(d);
        return mn_error_set(err, MN_ERR_NOMEM, "cannot start the hints thread");
    }
    d->started = true;
    *out = d;
    return MN_OK;
}

void cl_hintd_set_api(cl_hintd *d, mn_api_t *api)
{
    d->api = api;
}

void cl_hintd_stop(cl_hintd *d)
{
    if (!d) return;
    if (d->started) {
        pthread_mutex_lock(&d->mu);
        d->stop = true;
        pthread_cond_signal(&d->cv);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->thread, NULL);
    }
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    cl_hints_close(d->store);
    free(d);
}

mn_err cl_hintd_remember(void *arg, const char *space, const mn_memory_t *mems, size_t n,
                         const mn_id_t *base, mn_id_t *ids_out, mn_error *err)
{
    cl_hintd *d = arg;
    mn_assert(d->accept); /* the route asks for a hint only when partition writes are accepted */
    mn_err rc = cl_hints_add(d->store, space, mems, n, base, ids_out, err);
    if (rc == MN_ERR_LIMIT) {
        atomic_fetch_add(&d->full, n);
        count(d, "full", n);
    } else if (rc == MN_OK) {
        atomic_fetch_add(&d->accepted, n);
        count(d, "accepted", n);
        pthread_mutex_lock(&d->mu);
        pthread_cond_signal(&d->cv);
        pthread_mutex_unlock(&d->mu);
    }
    return rc;
}

/* ---- GET /v1/cluster/hints ---- */

static void add_space(void *arg, const char *space, size_t n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", space);
    cJSON_AddNumberToObject(o, "pending", (double)n);
    cJSON_AddItemToArray(arg, o);
}

char *cl_hintd_render(void *arg, int *status, mn_error *err)
{
    cl_hintd *d = arg;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "mode", d->accept ? "accept" : "reject");
    cJSON_AddNumberToObject(root, "pending", (double)cl_hints_pending(d->store, NULL));
    cJSON_AddNumberToObject(root, "max", (double)d->max);
    cJSON *spaces = cJSON_AddArrayToObject(root, "spaces");
    cl_hints_each_space(d->store, add_space, spaces);
    cJSON *st = cJSON_AddObjectToObject(root, "stats");
    cJSON_AddNumberToObject(st, "accepted", (double)atomic_load(&d->accepted));
    cJSON_AddNumberToObject(st, "merged", (double)atomic_load(&d->merged));
    cJSON_AddNumberToObject(st, "rejected", (double)atomic_load(&d->rejected));
    cJSON_AddNumberToObject(st, "full", (double)atomic_load(&d->full));
    cJSON_AddNumberToObject(st, "dropped", (double)atomic_load(&d->dropped));
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    char *out = text ? strdup(text) : NULL; /* malloc'd, whatever cJSON's allocator is */
    cJSON_free(text);
    if (out) return out;
    *status = 503;
    mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    return NULL;
}

void cl_hintd_handle_get(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    (void)req;
    api_respond_doc(resp, cl_hintd_render, ctx);
}
