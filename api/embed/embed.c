/* The embedding provider: the queue, the "embed" thread, the backfill scan, recall cues and
 * the metrics (embed.h says what each does for its callers).
 *
 * The thread's loop: while backing off after a failure, wait; else take up to batch_size
 * memories from the head of the queue (they stay queued until their vectors are written, so
 * a failure loses nothing; the queue holds ids, the texts are read from the store when the
 * batch goes), POST their texts, check the answer (one vector of dim finite numbers per
 * text, by index) and write the vectors with mn_engine_embed. A failure doubles the wait
 * (from 100 ms up to retry_max_ms); a batch that failed MAX_TRIES times in a row leaves the
 * queue (the next backfill scan brings its texts back), so one text the provider always
 * refuses cannot hold the others up. When the queue is empty and a scan is due (at start,
 * every backfill_interval_s, after texts did not fit the queue, after the provider answers
 * again), the scan walks the spaces that use the provider for memories without a vector
 * and queues them (up to max_backlog; a full queue pauses the scan where it was).
 *
 * A memory forgotten while its text is queued or in flight never gets a vector: the engine
 * refuses the embed of a forgotten memory (MN_ERR_GONE), and a forget after the embed
 * erases the vector (apply.c). */
#include "embed.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "api_internal.h"
#include "embed_internal.h"
#include "mnemo/assert.h"
#include "mnemo/util.h"

#define BACKOFF_MIN_MS 100
#define MAX_TRIES 5
#define CUE_SKIP_MS 5000 /* at most this long without asking a provider that did not answer */

typedef struct job {
    char space[MN_SPACE_NAME_MAX + 1];
    mn_id_t id;
} job;

/* Request outcomes, the label of mnemo_embedding_requests_total. */
enum { RES_OK, RES_TIMEOUT, RES_UNREACHABLE, RES_HTTP_ERROR, RES_MALFORMED, RES_COUNT };
static const char *const RESULT_NAMES[RES_COUNT] = {"ok", "timeout", "unreachable", "http_error",
                                                    "malformed"};
enum { OP_MEMORY, OP_QUERY, OP_COUNT };
static const char *const OP_NAMES[OP_COUNT] = {"memory", "query"};

struct mn_embed {
    mn_engine_t *engine;
    mn__embed_url url;
    void *tls;
    char *model;
    uint32_t dim;
    char **spaces;
    size_t n_spaces;
    bool all_spaces;
    size_t batch;
    int64_t timeout_ms, retry_max_ms, backfill_interval_ms;
    char *bearer; /* the API key, or NULL */

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* work, stop, a scan due */
    pthread_cond_t idle_cv; /* queue empty and nothing in flight */
    job *q;                 /* ring of cap */
    size_t head, n, cap;
    size_t in_flight; /* jobs at the head being sent */
    bool stop;
    bool scan_due;
    /* a scan in progress: the spaces left, and where in the current one */
    char (*scan_spaces)[MN_SPACE_NAME_MAX + 1];
    size_t scan_n, scan_i;
    uint32_t scan_cursor;
    int64_t next_scan_ms;

    atomic_uint_fast64_t embedded, refused, gone, dropped, given_up, fallbacks, scanned;
    atomic_uint_fast64_t requests[OP_COUNT][RES_COUNT];
    atomic_bool up;
    /* after the provider did not answer (timeout, unreachable), text-only recalls do not wait
     * for it until this monotonic time: they fall back at once, then one tries again */
    atomic_int_fast64_t cue_skip_until_ms;
    atomic_uint_fast64_t cue_skipped;
    atomic_bool stopping; /* mn_embed_stop began: a failure now is the cancel, not the provider */
    int stop_fd;          /* eventfd, written by mn_embed_stop: cancels a batch in flight */
    atomic_bool warned;   /* the failing provider was logged as a warning */
    mn_histogram_t latency[OP_COUNT];
};

static int64_t now_ms(void)
{
    return mn_time_mono_ns() / 1000000;
}

/* Waits on cv (a CLOCK_MONOTONIC condition variable) until deadline_ms (monotonic) at most. */
static void wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms)
{
    if (deadline_ms <= now_ms()) return;
    struct timespec ts = {.tv_sec = (time_t)(deadline_ms / 1000),
                          .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};
    pthread_cond_timedwait(cv, mu, &ts);
}

static void log_other_models(const mn_embed_t *em);

/* ---- configuration ---- */

mn_err mn_embed_config_check(const mn_config_embedding_t *c, mn_error *err)
{
    if (!c->url || !*c->url) {
        if (c->model && *c->model)
            return mn_error_set(err, MN_ERR_INVALID,
                                "embedding.model is set but embedding.url is not: set the "
                                "provider's url (or remove [embedding])");
        return MN_OK;
    }
    mn__embed_url u;
    mn_err rc = mn__embed_url_parse(c->url, &u, err);
    if (rc) return rc;
    if (!c->model || !*c->model)
        return mn_error_set(err, MN_ERR_INVALID,
                            "embedding.model is required with embedding.url (the \"model\" of "
                            "each request)");
    mn_error merr = {0}; /* spaces record the model: it must fit their field */
    if (mn_engine_embedding_model_check(c->model, strlen(c->model), &merr))
        return mn_error_set(err, MN_ERR_INVALID, "embedding.model: %s",
                            merr.message + strlen("embedding_model: "));
    if (c->dim < 1)
        return mn_error_set(err, MN_ERR_INVALID,
                            "embedding.dim is required with embedding.url (1..%d: the size of "
                            "the provider's vectors; spaces of that dim use it)",
                            MN_DIM_MAX);
    if (c->api_key_env && *c->api_key_env) {
        const char *k = getenv(c->api_key_env);
        if (!k || !*k)
            return mn_error_set(err, MN_ERR_INVALID,
                                "embedding.api_key_env names %.64s, which is not set in the "
                                "environment",
                                c->api_key_env);
        for (const char *p = k; *p; p++)
            if ((unsigned char)*p < 0x21 || *p == 0x7f)
                return mn_error_set(err, MN_ERR_INVALID,
                                    "the API key in %.64s holds a space or a control byte",
                                    c->api_key_env);
    }
    if (u.tls) {
        void *ctx;
        if ((rc = mn__embed_tls_new(c->ca_file, &ctx, err))) return rc;
        mn__embed_tls_free(ctx);
    }
    return MN_OK;
}

static void embed_free(mn_embed_t *em)
{
    if (!em) return;
    free(em->q);
    free(em->scan_spaces);
    for (size_t i = 0; i < em->n_spaces; i++)
        free(em->spaces[i]);
    free(em->spaces);
    free(em->model);
    free(em->bearer);
    if (em->tls) mn__embed_tls_free(em->tls);
    if (em->stop_fd >= 0) close(em->stop_fd);
    pthread_mutex_destroy(&em->mu);
    pthread_cond_destroy(&em->cv);
    pthread_cond_destroy(&em->idle_cv);
    free(em);
}

static void *embed_main(void *arg);

mn_err mn_embed_start(const mn_config_embedding_t *c, mn_engine_t *engine, mn_embed_t **out,
                      mn_error *err)
{
    *out = NULL;
    mn_err rc = mn_embed_config_check(c, err);
    if (rc || !c->url || !*c->url) return rc;
    mn_embed_t *em = calloc(1, sizeof *em);
    if (!em) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&em->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&em->cv, &ca);
    pthread_cond_init(&em->idle_cv, &ca);
    pthread_condattr_destroy(&ca);
    em->engine = engine;
    em->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    mn__embed_url_parse(c->url, &em->url, NULL);
    em->dim = (uint32_t)c->dim;
    em->batch = (size_t)c->batch_size;
    em->timeout_ms = c->timeout_ms;
    em->retry_max_ms = c->retry_max_ms;
    em->backfill_interval_ms = c->backfill_interval_s * 1000;
    em->cap = (size_t)c->max_backlog;
    em->model = strdup(c->model);
    em->q = calloc(em->cap, sizeof *em->q);
    em->spaces = calloc(c->spaces.count ? c->spaces.count : 1, sizeof *em->spaces);
    bool oom = !em->model || !em->q || !em->spaces || em->stop_fd < 0;
    for (size_t i = 0; !oom && i < c->spaces.count; i++) {
        if (!strcmp(c->spaces.items[i], "*")) em->all_spaces = true;
        oom = !(em->spaces[em->n_spaces++] = strdup(c->spaces.items[i]));
    }
    if (!oom && c->api_key_env && *c->api_key_env)
        oom = !(em->bearer = strdup(getenv(c->api_key_env)));
    if (oom) {
        embed_free(em);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    if (em->url.tls && (rc = mn__embed_tls_new(c->ca_file, &em->tls, err))) {
        embed_free(em);
        return rc;
    }
    for (int o = 0; o < OP_COUNT; o++)
        mn_histogram_init(&em->latency[o], mn_hist_latency_ns, MN_HIST_LATENCY_N);
    em->scan_due = true; /* memories left without a vector by the last run */
    if (pthread_create(&em->thread, NULL, embed_main, em)) {
        embed_free(em);
        return mn_error_set(err, MN_ERR_IO, "cannot start the embedding thread");
    }
    mn_log_info("embedding: %s (model %s, dim %u) for %s", c->url, em->model, em->dim,
                em->all_spaces ? "every space of that dim"
                               : "the spaces listed in embedding.spaces");
    log_other_models(em);
    *out = em;
    return MN_OK;
}

void mn_embed_stop(mn_embed_t *em)
{
    if (!em) return;
    pthread_mutex_lock(&em->mu);
    em->stop = true;
    pthread_cond_broadcast(&em->cv);
    pthread_mutex_unlock(&em->mu);
    atomic_store(&em->stopping, true);
    uint64_t one = 1;
    if (write(em->stop_fd, &one, sizeof one) < 0) { /* the batch in flight runs to its timeout */
    }
    pthread_join(em->thread, NULL);
    embed_free(em);
}

const char *mn_embed_model_for(const mn_embed_t *em, const mn_space_def_t *def)
{
    if (!em || def->dim != em->dim) return NULL;
    /* a space that recorded a model takes vectors of that model only ("" = none) */
    if (def->embedding_model_set && strcmp(def->embedding_model, em->model)) return NULL;
    if (em->all_spaces) return em->model;
    for (size_t i = 0; i < em->n_spaces; i++)
        if (!strcmp(em->spaces[i], def->name)) return em->model;
    return NULL;
}

void mn_embed_space_new(const mn_embed_t *em, mn_space_def_t *def)
{
    if (def->embedding_model_set || !mn_embed_model_for(em, def)) return;
    mn_assert(strlen(em->model) <= MN_EMBEDDING_MODEL_MAX); /* mn_embed_config_check */
    memcpy(def->embedding_model, em->model, strlen(em->model) + 1);
    def->embedding_model_set = true;
}

/* At start: one line per space that recorded a model the provider does not serve (its
 * text-only memories and cues get no vector from it). */
static void log_other_models(const mn_embed_t *em)
{
    mn_space_def_t *defs;
    size_t nd;
    if (mn_engine_space_list(em->engine, &defs, &nd, NULL)) return;
    for (size_t i = 0; i < nd; i++) {
        const mn_space_def_t *d = &defs[i];
        if (d->embedding_model_set && d->embedding_model[0] &&
            strcmp(d->embedding_model, em->model))
            mn_log_warn("embedding: space %s names the model \"%s\", which the provider "
                        "(model %s) does not serve: no vectors from it for that space",
                        d->name, d->embedding_model, em->model);
    }
    free(defs);
}

static bool space_uses(mn_embed_t *em, const char *space)
{
    return mn_embed_space_uses(em, space);
}

bool mn_embed_space_uses(const mn_embed_t *em, const char *space)
{
    if (!em) return false;
    mn_space_stats_t st;
    if (mn_engine_space_get(em->engine, space, &st, NULL)) return false;
    return mn_embed_model_for(em, &st.def) != NULL;
}

/* ---- the provider's API ---- */

/* The request body: {"model": ..., "input": [texts]}. */
static char *request_body(const mn_embed_t *em, const char *const *texts, const size_t *lens,
                          size_t n, size_t *len)
{
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "model");
    jw_str(&w, em->model);
    jw_key(&w, "input");
    jw_arr(&w);
    for (size_t i = 0; i < n; i++)
        jw_strn(&w, texts[i], lens[i]);
    jw_arr_end(&w);
    jw_obj_end(&w);
    if (w.oom) {
        jw_free(&w);
        return NULL;
    }
    *len = w.len;
    return w.buf;
}

/* The vectors of an answer: out[i * dim ...] for input i. RES_OK or RES_MALFORMED (why in err). */
static int parse_answer(const mn_embed_t *em, const char *body, size_t len, size_t n, float *out,
                        mn_error *err)
{
    api_json_opts o = {
        .depth_max = 16, .floats_max = em->dim, .compact_floats = true, .nodes_max = n * 64 + 1024};
    api_json_result res;
    cJSON *root = api_json_parse_opts(body, len, &o, &res);
    if (!root) {
        if (res.status == API_JSON_LIMIT && res.limit == API_JSON_LIMIT_FLOATS)
            mn_error_set(err, MN_ERR_PARSE, "%s: %zu values, the provider's dim is set to %u",
                         res.path, res.count, em->dim);
        else
            mn_error_set(err, MN_ERR_PARSE, "the answer is not JSON (byte %zu)", res.offset);
        return RES_MALFORMED;
    }
    int r = RES_OK;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    bool *seen = calloc(n ? n : 1, 1);
    if (!seen) {
        r = RES_MALFORMED;
        mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    } else if (!cJSON_IsArray(data) || (size_t)cJSON_GetArraySize(data) != n) {
        r = RES_MALFORMED;
        mn_error_set(err, MN_ERR_PARSE, "\"data\" must be an array of %zu embeddings", n);
    }
    size_t pos = 0;
    for (const cJSON *d = r == RES_OK ? data->child : NULL; d && r == RES_OK; d = d->next, pos++) {
        const cJSON *ix = cJSON_GetObjectItemCaseSensitive(d, "index");
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(d, "embedding");
        size_t i = pos; /* an answer without index keeps the order of the input */
        if (ix) {
            double v = cJSON_IsNumber(ix) ? ix->valuedouble : -1;
            if (!(v >= 0 && v < (double)n && v == floor(v))) {
                r = RES_MALFORMED;
                mn_error_set(err, MN_ERR_PARSE, "data[%zu].index: not an input's index", pos);
                break;
            }
            i = (size_t)v;
        }
        const float *f;
        size_t nf;
        if (!api_json_floats(ev, &f, &nf) || nf != em->dim) {
            r = RES_MALFORMED;
            mn_error_set(err, MN_ERR_PARSE,
                         "data[%zu].embedding: expected %u numbers (embedding.dim), got %zu", pos,
                         em->dim, api_json_array_size(ev));
            break;
        }
        for (size_t j = 0; j < nf && r == RES_OK; j++)
            if (!isfinite(f[j])) {
                r = RES_MALFORMED;
                mn_error_set(err, MN_ERR_PARSE, "data[%zu].embedding[%zu]: not finite", pos, j);
            }
        if (r == RES_OK && seen[i]) {
            r = RES_MALFORMED;
            mn_error_set(err, MN_ERR_PARSE, "data: index %zu answered twice", i);
        }
        if (r == RES_OK) {
            seen[i] = true;
            memcpy(out + i * em->dim, f, em->dim * sizeof(float));
        }
    }
    free(seen);
    api_json_free(root);
    return r;
}

/* Embeds n texts into out (n * dim floats): one request, counted and timed under op. */
static int embed_texts(mn_embed_t *em, int op, const char *const *texts, const size_t *lens,
                       size_t n, float *out, mn_error *err)
{
    size_t blen;
    char *body = request_body(em, texts, lens, n, &blen);
    if (!body) {
        mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        return RES_UNREACHABLE;
    }
    int64_t t0 = mn_time_mono_ns();
    int status;
    char *resp;
    size_t rlen;
    /* a background batch gives up at once when the server stops; a recall cue runs on a
     * handler thread that the server waits for anyway */
    mn_err rc = mn__embed_post(&em->url, em->tls, em->bearer, body, blen, em->timeout_ms,
                               op == OP_MEMORY ? em->stop_fd : -1, &status, &resp, &rlen, err);
    free(body);
    int r;
    if (rc == MN_ERR_BUSY) {
        r = RES_TIMEOUT;
    } else if (rc == MN_ERR_PARSE) {
        r = RES_MALFORMED;
    } else if (rc) {
        r = RES_UNREACHABLE;
    } else if (status != 200) {
        r = RES_HTTP_ERROR;
        char snippet[120];
        api_utf8_sanitize(resp, snippet, sizeof snippet);
        mn_error_set(err, MN_ERR_IO, "HTTP %d: %s", status, snippet);
    } else {
        r = parse_answer(em, resp, rlen, n, out, err);
    }
    free(resp);
    mn_histogram_observe(&em->latency[op], (uint64_t)(mn_time_mono_ns() - t0));
    atomic_fetch_add(&em->requests[op][r], 1);
    if (r == RES_OK)
        atomic_store(&em->cue_skip_until_ms, 0);
    else if (r == RES_TIMEOUT || r == RES_UNREACHABLE)
        atomic_store(&em->cue_skip_until_ms,
                     now_ms() + (em->retry_max_ms < CUE_SKIP_MS ? em->retry_max_ms : CUE_SKIP_MS));
    bool was_up = atomic_exchange(&em->up, r == RES_OK);
    if (r == RES_OK && !was_up) {
        /* it answers again: memories that waited go now, not at the next interval */
        pthread_mutex_lock(&em->mu);
        em->scan_due = true;
        pthread_cond_broadcast(&em->cv);
        pthread_mutex_unlock(&em->mu);
    }
    return r;
}

/* ---- the queue ---- */

/* Queues a memory (mu held); false when the queue is full. The queue holds ids only (the
 * texts are read from the store when their batch goes), so max_backlog bounds it to about
 * 100 bytes an entry whatever the memories hold. */
static bool push(mn_embed_t *em, const char *space, const mn_id_t *id)
{
    if (em->n == em->cap) return false;
    job *j = &em->q[(em->head + em->n) % em->cap];
    snprintf(j->space, sizeof j->space, "%s", space);
    j->id = *id;
    em->n++;
    return true;
}

/* Drops the k jobs at the head (mu held). */
static void pop(mn_embed_t *em, size_t k)
{
    mn_assert(k <= em->n); /* only the thread pops, and only what it took from the head */
    em->head = (em->head + k) % em->cap;
    em->n -= k;
}

void mn_embed_remembered(mn_embed_t *em, const char *space, const mn_memory_t *mems,
                         const mn_id_t *ids, size_t n)
{
    if (!em) return;
    bool any = false;
    for (size_t i = 0; i < n && !any; i++)
        any = !mems[i].embedding && mems[i].content_len;
    if (!any || !space_uses(em, space)) return;
    pthread_mutex_lock(&em->mu);
    for (size_t i = 0; i < n; i++) {
        if (mems[i].embedding || !mems[i].content_len) continue;
        if (!push(em, space, &ids[i])) {
            /* the backfill scan finds it when the queue has room again */
            atomic_fetch_add(&em->dropped, 1);
            em->scan_due = true;
        }
    }
    pthread_cond_broadcast(&em->cv);
    pthread_mutex_unlock(&em->mu);
}

/* ---- the thread ---- */

/* Sends the jobs at the head (batch of them, in flight) and writes their vectors. Their texts
 * are read from the store now: a memory forgotten since it was queued is skipped. RES_OK or
 * the failure. */
static int run_batch(mn_embed_t *em, job *const *jobs, size_t k)
{
    mn_memory_t *mems = calloc(k, sizeof *mems);
    job **live = calloc(k, sizeof *live);
    const char **texts = calloc(k, sizeof *texts);
    size_t *lens = calloc(k, sizeof *lens);
    float *vecs = malloc(k * em->dim * sizeof(float));
    const float **vp = malloc(k * sizeof *vp);
    mn_id_t *ids = malloc(k * sizeof *ids);
    mn_err *rcs = malloc(k * sizeof *rcs);
    int r = RES_UNREACHABLE;
    size_t m = 0, skipped = 0;
    if (mems && live && texts && lens && vecs && vp && ids && rcs) {
        for (size_t i = 0; i < k; i++) {
            mn_memory_t *mm = &mems[m];
            if (mn_engine_get(em->engine, jobs[i]->space, &jobs[i]->id, false, mm, NULL)) {
                /* forgotten (or its space dropped) since it was queued */
                mn_memory_clear(mm);
                skipped++;
                continue;
            }
            if (!mm->content_len) { /* nothing to embed (not queued so; kept safe) */
                mn_memory_clear(mm);
                continue;
            }
            live[m] = jobs[i];
            texts[m] = mm->content;
            lens[m] = mm->content_len;
            m++;
        }
        mn_error err = {0};
        r = m ? embed_texts(em, OP_MEMORY, texts, lens, m, vecs, &err) : RES_OK;
        if (r == RES_OK) atomic_fetch_add(&em->gone, skipped); /* counted once, when done */
        if (r != RES_OK && atomic_load(&em->stopping)) {
            /* cancelled by the stop: the texts are backfilled after the next start */
        } else if (r != RES_OK) {
            /* a warning when it starts failing, then debug lines (a down provider must not
             * flood the log; mnemo_embedding_up and the counters say it goes on) */
            mn_log(atomic_exchange(&em->warned, true) ? MN_LOG_DEBUG : MN_LOG_WARN,
                   "embedding: %zu texts: %s (%s); retrying with backoff", m, err.message,
                   RESULT_NAMES[r]);
        } else if (m) {
            if (atomic_exchange(&em->warned, false))
                mn_log_info("embedding: the provider answers again");
            /* one engine call per run of jobs of one space */
            for (size_t i = 0; i < m;) {
                size_t j = i;
                while (j < m && !strcmp(live[j]->space, live[i]->space)) {
                    ids[j] = live[j]->id;
                    vp[j] = vecs + j * em->dim;
                    j++;
                }
                mn_error eerr = {0};
                mn_err rc =
                    mn_engine_embed(em->engine, live[i]->space, ids + i,
                                    (const float *const *)(vp + i), em->dim, j - i, rcs + i, &eerr);
                for (size_t x = i; x < j; x++) {
                    mn_err one = rc ? rc : rcs[x];
                    if (!one)
                        atomic_fetch_add(&em->embedded, 1);
                    else if (one == MN_ERR_GONE || one == MN_ERR_NOT_FOUND || one == MN_ERR_EXISTS)
                        atomic_fetch_add(&em->gone, 1); /* forgotten meanwhile, or done */
                    else
                        atomic_fetch_add(&em->refused, 1);
                }
                if (rc && rc != MN_ERR_NOT_FOUND)
                    mn_log_warn("embedding: space %s: %s", live[i]->space, eerr.message);
                i = j;
            }
        }
    }
    for (size_t i = 0; mems && i < m; i++)
        mn_memory_clear(&mems[i]);
    free(mems);
    free(live);
    free(texts);
    free(lens);
    free(vecs);
    free(vp);
    free(ids);
    free(rcs);
    return r;
}

/* One step of the backfill scan (mu held, released meanwhile): queues memories without a
 * vector until the queue is full or the scan is over. */
static void scan_step(mn_embed_t *em)
{
    if (!em->scan_spaces) { /* a new scan: the spaces that use the provider */
        mn_space_def_t *defs;
        size_t nd;
        pthread_mutex_unlock(&em->mu);
        mn_err rc = mn_engine_space_list(em->engine, &defs, &nd, NULL);
        pthread_mutex_lock(&em->mu);
        if (rc) { /* out of memory: the next interval tries again */
            em->next_scan_ms = now_ms() + em->backfill_interval_ms;
            return;
        }
        em->scan_spaces = calloc(nd ? nd : 1, sizeof *em->scan_spaces);
        em->scan_n = em->scan_i = 0;
        em->scan_cursor = 0;
        for (size_t i = 0; em->scan_spaces && i < nd; i++)
            if (mn_embed_model_for(em, &defs[i]))
                memcpy(em->scan_spaces[em->scan_n++], defs[i].name, sizeof defs[i].name);
        free(defs);
        if (!em->scan_spaces) {
            em->next_scan_ms = now_ms() + em->backfill_interval_ms;
            return;
        }
    }
    enum { CHUNK = 256 };
    mn_id_t ids[CHUNK];
    while (em->scan_i < em->scan_n && em->n < em->cap && !em->stop) {
        char space[MN_SPACE_NAME_MAX + 1];
        memcpy(space, em->scan_spaces[em->scan_i], sizeof space);
        uint32_t cursor = em->scan_cursor;
        size_t room = em->cap - em->n, got = 0;
        pthread_mutex_unlock(&em->mu);
        mn_err rc = mn_engine_unembedded(em->engine, space, &cursor, room < CHUNK ? room : CHUNK,
                                         ids, &got, NULL);
        pthread_mutex_lock(&em->mu);
        for (size_t i = 0; i < got; i++)
            if (push(em, space, &ids[i])) atomic_fetch_add(&em->scanned, 1);
        if (rc || cursor == UINT32_MAX) { /* this space is done (or gone) */
            em->scan_i++;
            em->scan_cursor = 0;
        } else {
            em->scan_cursor = cursor;
        }
    }
    if (em->scan_i >= em->scan_n) { /* the scan is over */
        free(em->scan_spaces);
        em->scan_spaces = NULL;
        em->next_scan_ms = now_ms() + em->backfill_interval_ms;
    }
}

static void *embed_main(void *arg)
{
    mn_embed_t *em = arg;
    job **batch = malloc(em->batch * sizeof *batch);
    int64_t backoff_ms = 0, retry_at_ms = 0;
    int tries = 0;
    pthread_mutex_lock(&em->mu);
    while (batch && !em->stop) {
        int64_t now = now_ms();
        if (retry_at_ms > now) {
            wait_until(&em->cv, &em->mu, retry_at_ms);
            continue;
        }
        if (!em->n) {
            pthread_cond_broadcast(&em->idle_cv);
            if (em->scan_due || em->scan_spaces || now >= em->next_scan_ms) {
                em->scan_due = false;
                scan_step(em);
                if (em->n) continue;
            }
            if (!em->n && !em->scan_due && !em->stop)
                wait_until(&em->cv, &em->mu, em->next_scan_ms);
            continue;
        }
        size_t k = em->n < em->batch ? em->n : em->batch;
        for (size_t i = 0; i < k; i++)
            batch[i] = &em->q[(em->head + i) % em->cap];
        em->in_flight = k;
        pthread_mutex_unlock(&em->mu);
        int r = run_batch(em, batch, k);
        pthread_mutex_lock(&em->mu);
        /* pushes only append: the batch is still the head of the queue */
        mn_assert(em->n >= k && batch[0] == &em->q[em->head]);
        em->in_flight = 0;
        if (r == RES_OK) {
            pop(em, k);
            backoff_ms = 0;
            retry_at_ms = 0;
            tries = 0;
            continue;
        }
        if (++tries >= MAX_TRIES) { /* the backfill scan brings these back later */
            atomic_fetch_add(&em->given_up, k);
            pop(em, k);
            tries = 0;
        }
        backoff_ms = backoff_ms ? backoff_ms * 2 : BACKOFF_MIN_MS;
        if (backoff_ms > em->retry_max_ms) backoff_ms = em->retry_max_ms;
        retry_at_ms = now_ms() + backoff_ms;
    }
    pthread_cond_broadcast(&em->idle_cv);
    pthread_mutex_unlock(&em->mu);
    free(batch);
    return NULL;
}

bool mn_embed_wait_idle(mn_embed_t *em, int64_t timeout_ms)
{
    if (!em) return true;
    int64_t until = now_ms() + timeout_ms;
    pthread_mutex_lock(&em->mu);
    while ((em->n || em->in_flight) && now_ms() < until)
        wait_until(&em->idle_cv, &em->mu, until);
    bool idle = !em->n && !em->in_flight;
    pthread_mutex_unlock(&em->mu);
    return idle;
}

/* ---- recall ---- */

void mn_embed_cue(mn_embed_t *em, const char *space, bool has_embedding, const char *text,
                  size_t text_len, float **vec, uint32_t *dim, bool *unavailable)
{
    *vec = NULL;
    *unavailable = false;
    if (!em || has_embedding || !text || !text_len || !space_uses(em, space)) return;
    if (now_ms() < atomic_load(&em->cue_skip_until_ms)) { /* it did not answer just now */
        *unavailable = true;
        atomic_fetch_add(&em->fallbacks, 1);
        atomic_fetch_add(&em->cue_skipped, 1);
        return;
    }
    float *v = malloc(em->dim * sizeof(float));
    mn_error err = {0};
    int r = v ? embed_texts(em, OP_QUERY, &text, &text_len, 1, v, &err) : RES_UNREACHABLE;
    if (r != RES_OK) {
        free(v);
        *unavailable = true;
        atomic_fetch_add(&em->fallbacks, 1);
        mn_log_debug("embedding: recall cue by words only: %s (%s)", err.message, RESULT_NAMES[r]);
        return;
    }
    *vec = v;
    *dim = em->dim;
}

/* ---- metrics ---- */

static void counter(mn_text_t *t, const char *name, const char *help, uint64_t v)
{
    mn_prom_family(t, name, help, "counter");
    mn_prom_sample_u64(t, name, NULL, 0, v);
}

void mn_embed_metrics(mn_embed_t *em, mn_text_t *t)
{
    if (!em) return;
    pthread_mutex_lock(&em->mu);
    size_t backlog = em->n;
    pthread_mutex_unlock(&em->mu);
    mn_prom_family(t, "mnemo_embedding_backlog", "Memories queued for a vector from the provider.",
                   "gauge");
    mn_prom_sample(t, "mnemo_embedding_backlog", NULL, 0, (double)backlog);
    mn_prom_family(t, "mnemo_embedding_up", "1 when the provider's last answer was good, else 0.",
                   "gauge");
    mn_prom_sample(t, "mnemo_embedding_up", NULL, 0, atomic_load(&em->up) ? 1 : 0);
    counter(t, "mnemo_embedding_embedded_total",
            "Memories given a vector by the provider (written through the WAL).",
            atomic_load(&em->embedded));
    counter(t, "mnemo_embedding_skipped_total",
            "Vectors not written: the memory was forgotten meanwhile or had one already.",
            atomic_load(&em->gone));
    counter(t, "mnemo_embedding_refused_total",
            "Vectors the engine refused (e.g. the zero vector in a cosine space).",
            atomic_load(&em->refused));
    counter(t, "mnemo_embedding_backlog_full_total",
            "Texts that did not fit the queue (embedding.max_backlog); the backfill finds them.",
            atomic_load(&em->dropped));
    counter(t, "mnemo_embedding_given_up_total",
            "Texts taken off the queue after repeated failures; the backfill retries them.",
            atomic_load(&em->given_up));
    counter(t, "mnemo_embedding_backfilled_total",
            "Memories without a vector queued by the backfill scan.", atomic_load(&em->scanned));
    counter(t, "mnemo_embedding_recall_fallbacks_total",
            "Recalls that ran on words only because the cue could not be embedded.",
            atomic_load(&em->fallbacks));
    counter(t, "mnemo_embedding_recall_skipped_total",
            "Of those, recalls that did not ask the provider because it did not answer (timeout, "
            "unreachable) within the last seconds.",
            atomic_load(&em->cue_skipped));
    mn_prom_family(t, "mnemo_embedding_requests_total",
                   "Requests to the provider by op (memory: background batches; query: recall "
                   "cues) and result.",
                   "counter");
    for (int o = 0; o < OP_COUNT; o++)
        for (int r = 0; r < RES_COUNT; r++) {
            mn_prom_label_t l[] = {{"op", OP_NAMES[o]}, {"result", RESULT_NAMES[r]}};
            mn_prom_sample_u64(t, "mnemo_embedding_requests_total", l, 2,
                               atomic_load(&em->requests[o][r]));
        }
    mn_prom_family(t, "mnemo_embedding_request_duration_seconds",
                   "Latency of requests to the provider, by op.", "histogram");
    for (int o = 0; o < OP_COUNT; o++) {
        mn_hist_snapshot_t s;
        mn_histogram_snapshot(&em->latency[o], &s);
        mn_prom_label_t l[] = {{"op", OP_NAMES[o]}};
        mn_prom_histogram(t, "mnemo_embedding_request_duration_seconds", l, 1, &s, 1e-9);
    }
}
