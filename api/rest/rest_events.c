/* GET /v1/spaces/{space}/events: the space's events as Server-Sent Events.
 *
 * The handler (thread pool) subscribes to the engine, so an unknown space is
 * an ordinary 404, then answers with a streaming response. On the loop thread
 * the stream drains the subscription whenever the engine signals (uv_async)
 * and once a second, writing one SSE message per event:
 *
 *   id: 7
 *   event: remember
 *   data: {"space":"notes","id":"...","memory_kind":"episodic","lsn":12,"at":"..."}
 *
 * A consumer that reads too slowly is dropped, never buffered without bound:
 * while more than SSE_MAX_QUEUED bytes wait for its socket, the stream stops
 * draining, the engine's bounded queue (SSE_EVENT_QUEUE events) fills, the
 * engine drops the subscriber, and the stream ends with `event: dropped`. The
 * stream also ends with `space_dropped` when the space is dropped and with
 * `closed` when the server shuts down or the stream reaches
 * http.stream_max_lifetime_s (the transport's timer; the client reconnects). A
 * comment line every 15 s keeps idle connections alive through proxies and finds
 * dead clients. How many streams may be open (http.max_streams, and per API key
 * http.max_streams_per_key) is the transport's admission (api/http/http_server.c). */
#include "rest_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SSE_EVENT_QUEUE 1024
#define SSE_MAX_QUEUED (1u << 20)
#define SSE_TICK_MS 1000
#define SSE_HEARTBEAT_TICKS 15
#define SSE_BATCH 64

typedef struct sse {
    mn_engine_sub_t *sub;
    mn_http_stream_t *st;
    char space[MN_SPACE_NAME_MAX + 1];
    uv_async_t async;
    uv_timer_t timer;
    atomic_bool started; /* the loop side is ready for uv_async_send */
    atomic_bool pending; /* the engine signalled before start */
    int handles;         /* open uv handles */
    int ticks;
    bool ended;
} sse;

static void sse_notify(void *arg)
{
    sse *s = arg;
    atomic_store(&s->pending, true);
    if (atomic_load(&s->started)) uv_async_send(&s->async);
}

/* One SSE message for ev into w (data: one line of JSON); why gives a `closed` its reason. */
static void format_event(api_jw *w, const char *space, const mn_event_t *ev,
                         mn_http_stream_stop_t why)
{
    char head[96];
    int n = snprintf(head, sizeof head, "id: %llu\nevent: %s\ndata: ", (unsigned long long)ev->seq,
                     mn_event_kind_name(ev->kind));
    api_jw j;
    jw_init(&j);
    jw_obj(&j);
    jw_key(&j, "space");
    jw_str(&j, space);
    jw_key(&j, "at");
    jw_time(&j, ev->at_ms);
    switch (ev->kind) {
    case MN_EVENT_REMEMBER:
    case MN_EVENT_CONSOLIDATE:
        jw_key(&j, "id");
        jw_id(&j, &ev->id);
        jw_key(&j, "memory_kind");
        jw_str(&j, mn_kind_name((mn_kind_t)ev->memory_kind));
        if (ev->kind == MN_EVENT_CONSOLIDATE) {
            jw_key(&j, "support");
            jw_uint(&j, ev->count);
        }
        break;
    case MN_EVENT_FORGET:
        jw_key(&j, "id");
        jw_id(&j, &ev->id);
        jw_key(&j, "mode");
        jw_str(&j, ev->forget_mode == MN_FORGET_SUPPRESS ? "suppress" : "delete");
        jw_key(&j, "expired");
        jw_bool(&j, ev->expired);
        break;
    case MN_EVENT_UNSUPPRESS:
        jw_key(&j, "id");
        jw_id(&j, &ev->id);
        break;
    case MN_EVENT_UPDATE:
        jw_key(&j, "id");
        jw_id(&j, &ev->id);
        jw_key(&j, "version");
        jw_uint(&j, ev->count);
        break;
    case MN_EVENT_ASSOCIATE:
        jw_key(&j, "edges");
        jw_uint(&j, ev->count);
        break;
    case MN_EVENT_RECALL:
        jw_key(&j, "results");
        jw_uint(&j, ev->count);
        jw_key(&j, "path");
        jw_str(&j, ev->path);
        jw_key(&j, "recall_confidence");
        jw_double(&j, ev->recall_confidence, 4);
        break;
    case MN_EVENT_DROPPED:
        jw_key(&j, "reason");
        jw_str(&j, "the consumer fell behind; reconnect and re-read what it missed");
        break;
    case MN_EVENT_SPACE_DROPPED:
        jw_key(&j, "reason");
        jw_str(&j, "the space was dropped");
        break;
    case MN_EVENT_CLOSED:
        jw_key(&j, "reason");
        jw_str(&j, why == MN_HTTP_STREAM_EXPIRED
                       ? "the stream reached http.stream_max_lifetime_s; reconnect"
                       : "the server is shutting down");
        break;
    }
    if (ev->lsn) {
        jw_key(&j, "lsn");
        jw_uint(&j, ev->lsn);
    }
    jw_obj_end(&j);
    if (!j.oom && w->len + (size_t)n + j.len + 2 < (size_t)1 << 30) {
        /* the writer is used as a plain byte buffer here */
        size_t need = w->len + (size_t)n + j.len + 3;
        if (need > w->cap) {
            size_t cap = w->cap ? w->cap : 1024;
            while (cap < need)
                cap *= 2;
            char *b = realloc(w->buf, cap);
            if (!b) {
                w->oom = true;
                jw_free(&j);
                return;
            }
            w->buf = b;
            w->cap = cap;
        }
        memcpy(w->buf + w->len, head, (size_t)n);
        memcpy(w->buf + w->len + n, j.buf, j.len);
        w->len += (size_t)n + j.len;
        w->buf[w->len++] = '\n';
        w->buf[w->len++] = '\n';
    } else {
        w->oom = true;
    }
    jw_free(&j);
}

static void sse_end(sse *s)
{
    if (s->ended) return;
    s->ended = true;
    mn_http_stream_end(s->st);
}

static void sse_drain(sse *s)
{
    if (s->ended) return;
    atomic_store(&s->pending, false);
    mn_event_t evs[SSE_BATCH];
    for (;;) {
        if (mn_http_stream_queued(s->st) > SSE_MAX_QUEUED) return; /* see the top comment */
        bool ended = false;
        size_t n = mn_engine_sub_next(s->sub, evs, SSE_BATCH, 0, &ended);
        if (n) {
            api_jw w;
            jw_init(&w);
            for (size_t i = 0; i < n; i++)
                format_event(&w, s->space, &evs[i], MN_HTTP_STREAM_SHUTDOWN);
            int rc = w.oom ? -1 : mn_http_stream_write(s->st, w.buf, w.len);
            jw_free(&w);
            if (rc) {
                sse_end(s);
                return;
            }
        }
        if (ended) {
            sse_end(s);
            return;
        }
        if (n < SSE_BATCH) return;
    }
}

static void on_async(uv_async_t *a)
{
    sse_drain(a->data);
}

static void on_tick(uv_timer_t *t)
{
    sse *s = t->data;
    sse_drain(s);
    if (!s->ended && ++s->ticks >= SSE_HEARTBEAT_TICKS) {
        s->ticks = 0;
        static const char beat[] = ": keep-alive\n\n";
        if (mn_http_stream_write(s->st, beat, sizeof beat - 1)) sse_end(s);
    }
}

static void sse_start(void *arg, mn_http_stream_t *st)
{
    sse *s = arg;
    s->st = st;
    uv_loop_t *loop = mn_http_stream_loop(st);
    uv_async_init(loop, &s->async, on_async);
    s->async.data = s;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->handles = 2;
    uv_timer_start(&s->timer, on_tick, SSE_TICK_MS, SSE_TICK_MS);
    /* a comment first, so clients see the stream open before any event */
    static const char hello[] = ": mnemo events\n\n";
    if (mn_http_stream_write(st, hello, sizeof hello - 1)) {
        sse_end(s);
        return;
    }
    atomic_store(&s->started, true);
    if (atomic_load(&s->pending)) sse_drain(s);
}

static void sse_stop(void *arg, mn_http_stream_stop_t why)
{
    sse *s = arg;
    if (s->ended) return;
    mn_event_t ev = {.kind = MN_EVENT_CLOSED, .at_ms = mn_time_now_ms()};
    sse_drain(s); /* what was queued first */
    if (s->ended) return;
    api_jw w;
    jw_init(&w);
    format_event(&w, s->space, &ev, why);
    if (!w.oom) mn_http_stream_write(s->st, w.buf, w.len);
    jw_free(&w);
    sse_end(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    sse *s = h->data;
    if (--s->handles == 0) free(s);
}

static void sse_closed(void *arg)
{
    sse *s = arg;
    mn_engine_unsubscribe(s->sub); /* no notify after this */
    s->sub = NULL;
    s->ended = true;
    if (!s->handles) { /* never started */
        free(s);
        return;
    }
    uv_close((uv_handle_t *)&s->async, on_handle_closed);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
}

/* The query: filter, the filter language as URL-encoded JSON (docs/api.md, "Events"). */
static mn_err events_filter(const mn_http_request_t *req, api_arena *a, mn_filter_t *f,
                            mn_error *err)
{
    static const char *const params[] = {"filter", NULL};
    api_qparam *qs;
    size_t nq;
    mn_filter_init(f);
    mn_err rc = api_query_read(req, params, false, a, &qs, &nq, err);
    for (size_t i = 0; i < nq && !rc; i++)
        rc = f->expr ? mn_error_set(err, MN_ERR_INVALID, "filter: given twice")
                     : api_filter_from_text(qs[i].value, strlen(qs[i].value), a, f, err);
    return rc;
}

void rest_h_events(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    api_arena a;
    api_arena_init(&a);
    mn_filter_t f;
    mn_error err = {0};
    mn_err rc = events_filter(req, &a, &f, &err);
    if (rc) {
        api_arena_free(&a);
        api_respond_err(resp, rc, &err, API_CTX_SPACE);
        return;
    }
    sse *s = calloc(1, sizeof *s);
    mn_http_stream_src_t *src = calloc(1, sizeof *src);
    if (!s || !src) {
        free(s);
        free(src);
        api_arena_free(&a);
        mn_http_respond_error(resp, 503, "unavailable", "out of memory", NULL);
        return;
    }
    snprintf(s->space, sizeof s->space, "%s", req->params[0]);
    atomic_init(&s->started, false);
    atomic_init(&s->pending, false);
    /* the name as sent, not s->space: a name longer than a space's is no space's (the copy
     * would be cut to another one's name); the engine copies the filter */
    rc = mn_engine_subscribe_filtered(api->engine, req->params[0], SSE_EVENT_QUEUE, &f, sse_notify,
                                      s, &s->sub, &err);
    api_arena_free(&a);
    if (rc) {
        free(s);
        free(src);
        api_respond_err(resp, rc, &err, API_CTX_SPACE);
        return;
    }
    src->start = sse_start;
    src->stop = sse_stop;
    src->closed = sse_closed;
    src->arg = s;
    resp->status = 200;
    resp->content_type = "text/event-stream";
    resp->extra_headers = strdup("Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
    resp->stream = src;
}
