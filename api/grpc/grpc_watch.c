/* gRPC Watch: a space's events as a server stream (the same engine
 * subscription as the SSE stream of GET /v1/spaces/{space}/events).
 *
 * One message is in flight per stream (the C core allows one send at a time).
 * When a send completes, the completion-queue thread takes the next queued
 * event at once. When the queue was empty, the engine's notify (called under
 * its event lock: it only sets flags and signals) wakes the hub thread, which
 * pumps every stream that has something new. A slow consumer is dropped, never
 * buffered without bound: HTTP/2 flow control stops its sends from completing,
 * the engine's bounded queue fills, the engine drops the subscriber, and the
 * stream ends with the DROPPED event. Every stream ends with a final event
 * (DROPPED, SPACE_DROPPED, CLOSED) and status OK; a client that goes away just
 * ends its stream.
 *
 * Lifetime: the call's references are its outstanding batches plus one for the
 * state machine, dropped once the status went out or the client left. The hub
 * takes a reference (only while the count is above zero) on each stream it is
 * about to pump, so a stream is never freed under it; a stream leaves the hub's
 * list when its call is freed. Lock order: hub -> stream; neither is held while
 * a reference is dropped. */
#include "grpc_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WATCH_QUEUE 1024
#define HUB_TICK_MS 1000

typedef struct gwatch {
    gcall *c;
    gwatch_hub *hub;
    mn_engine_sub_t *sub;
    char space[MN_SPACE_NAME_MAX + 1];
    pthread_mutex_t lock;  /* the fields below and the call's batches */
    grpc_byte_buffer *buf; /* the message in flight */
    bool sending;          /* a send (or the initial metadata) is in flight */
    bool final_sent;       /* the final event has gone (or is going) out */
    bool finishing;        /* the status batch was started */
    bool closed;           /* the client left or the call is over */
    bool base_dropped;     /* the state machine's reference is gone */
    uint64_t last_seq;
    atomic_bool pending; /* the engine queued something since the last pump */
    struct gwatch *prev, *next;
} gwatch;

struct gwatch_hub {
    pthread_mutex_t lock; /* list, n, closing, stop; cond */
    pthread_cond_t cond;
    gwatch *head;
    int n, max;
    gwatch **snap; /* max entries: what one pump round visits */
    atomic_bool closing;
    bool stop;
    atomic_bool work;
    pthread_t thread;
    bool thread_started;
};

static void pump(gwatch *w);

static Mnemo__V1__EventKind event_kind_out(mn_event_kind_t k)
{
    switch (k) {
    case MN_EVENT_REMEMBER:
        return MNEMO__V1__EVENT_KIND__EVENT_KIND_REMEMBER;
    case MN_EVENT_FORGET:
        return MNEMO__V1__EVENT_KIND__EVENT_KIND_FORGET;
    case MN_EVENT_UNSUPPRESS:
        return MNEMO__V1__EVENT_KIND__EVENT_KIND_UNSUPPRESS;
    case MN_EVENT_ASSOCIATE:
        return MNEMO__V1__EVENT_KIND__EVENT_KIND_ASSOCIATE;
    case MN_EVENT_CONSOLIDATE:
        return MNEMO__V1__EVENT_KIND__EVENT_KIND_CONSOLIDATE;
    case MN_EVENT_RECALL:
        return MNEMO__V1__EVENT_KIND__EVENT_KIND_RECALL;
    case MN_EVENT_DROPPED:
        return MNEMO__V1__EVENT_KIND__EVENT_KIND_DROPPED;
    case MN_EVENT_SPACE_DROPPED:
        return MNEMO__V1__EVENT_KIND__EVENT_KIND_SPACE_DROPPED;
    case MN_EVENT_CLOSED:
        return MNEMO__V1__EVENT_KIND__EVENT_KIND_CLOSED;
    case MN_EVENT_UPDATE:
        return MNEMO__V1__EVENT_KIND__EVENT_KIND_UPDATE;
    }
    return MNEMO__V1__EVENT_KIND__EVENT_KIND_UNSPECIFIED;
}

static bool is_final(mn_event_kind_t k)
{
    return k == MN_EVENT_DROPPED || k == MN_EVENT_SPACE_DROPPED || k == MN_EVENT_CLOSED;
}

/* The Event message of ev (the same fields as the SSE data of api/rest/rest_events.c). */
static grpc_byte_buffer *encode(const gwatch *w, const mn_event_t *ev)
{
    Mnemo__V1__Event m = MNEMO__V1__EVENT__INIT;
    char id[MN_ID_TEXT_LEN + 1];
    m.has_seq = true;
    m.seq = ev->seq;
    m.has_kind = true;
    m.kind = event_kind_out(ev->kind);
    m.space = (char *)w->space;
    m.has_at_ms = true;
    m.at_ms = ev->at_ms;
    switch (ev->kind) {
    case MN_EVENT_REMEMBER:
    case MN_EVENT_CONSOLIDATE:
        m.has_memory_kind = true;
        m.memory_kind = g_kind_out((mn_kind_t)ev->memory_kind);
        /* fall through */
    case MN_EVENT_FORGET:
    case MN_EVENT_UNSUPPRESS:
    case MN_EVENT_UPDATE:
        mn_id_format(&ev->id, id);
        m.id = id;
        break;
    default:
        break;
    }
    if (ev->kind == MN_EVENT_FORGET) {
        m.has_mode = m.has_expired = true;
        m.mode = ev->forget_mode == MN_FORGET_SUPPRESS
                     ? MNEMO__V1__FORGET_MODE__FORGET_MODE_SUPPRESS
                     : MNEMO__V1__FORGET_MODE__FORGET_MODE_DELETE;
        m.expired = ev->expired;
    }
    if (ev->kind == MN_EVENT_ASSOCIATE || ev->kind == MN_EVENT_CONSOLIDATE ||
        ev->kind == MN_EVENT_RECALL || ev->kind == MN_EVENT_UPDATE) {
        m.has_count = true;
        m.count = ev->count;
    }
    if (ev->kind == MN_EVENT_RECALL) {
        m.path = (char *)ev->path;
        m.has_recall_confidence = true;
        m.recall_confidence = ev->recall_confidence;
    }
    if (ev->lsn) {
        m.has_lsn = true;
        m.lsn = ev->lsn;
    }
    if (ev->kind == MN_EVENT_DROPPED) m.reason = "the consumer read too slowly";
    if (ev->kind == MN_EVENT_SPACE_DROPPED) m.reason = "the space was dropped";
    if (ev->kind == MN_EVENT_CLOSED) m.reason = "the server is shutting down";
    return g_pack(&m.base);
}

/* Drops a reference without any lock held. */
static void drop_base(gwatch *w)
{
    pthread_mutex_lock(&w->lock);
    bool drop = !w->base_dropped;
    w->base_dropped = true;
    pthread_mutex_unlock(&w->lock);
    if (drop) g_call_unref(w->c);
}

/* Starts the next batch the stream needs, if none is in flight. The caller holds a
 * reference on the call. */
static void pump(gwatch *w)
{
    gcall *c = w->c;
    pthread_mutex_lock(&w->lock);
    if (w->base_dropped) {
        pthread_mutex_unlock(&w->lock);
        return;
    }
    if (w->closed) { /* no batch starts any more; the base goes once no send is out */
        bool idle = !w->sending;
        pthread_mutex_unlock(&w->lock);
        if (idle) drop_base(w);
        return;
    }
    if (w->sending || w->finishing) {
        pthread_mutex_unlock(&w->lock);
        return;
    }
    if (w->final_sent) {
        w->finishing = true;
        pthread_mutex_unlock(&w->lock);
        g_call_finish_status(c, GRPC_STATUS_OK, "", NULL, NULL, NULL);
        return;
    }
    mn_event_t ev;
    bool ended = false;
    size_t n = mn_engine_sub_next(w->sub, &ev, 1, 0, &ended);
    if (n == 0 && atomic_load(&w->hub->closing)) {
        memset(&ev, 0, sizeof ev);
        ev.seq = w->last_seq + 1;
        ev.kind = MN_EVENT_CLOSED;
        ev.at_ms = mn_time_now_ms();
        n = 1;
    }
    if (n == 0) {
        pthread_mutex_unlock(&w->lock);
        return;
    }
    w->last_seq = ev.seq;
    if (is_final(ev.kind)) w->final_sent = true;
    w->buf = encode(w, &ev);
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = w->buf;
    w->sending = true;
    if (!g_call_batch(c, &op, 1, &c->t_send)) {
        w->sending = false;
        w->closed = true;
        grpc_byte_buffer_destroy(w->buf);
        w->buf = NULL;
        pthread_mutex_unlock(&w->lock);
        drop_base(w);
        return;
    }
    pthread_mutex_unlock(&w->lock);
}

void g_watch_on_op(gcall *c, gtag_kind kind, bool ok)
{
    gwatch *w = c->watch;
    pthread_mutex_lock(&w->lock);
    switch (kind) {
    case GT_SEND:
        w->sending = false;
        if (w->buf) {
            grpc_byte_buffer_destroy(w->buf);
            w->buf = NULL;
        }
        if (!ok) { /* the stream broke: make sure the call ends on both sides */
            w->closed = true;
            grpc_call_cancel(c->call, NULL);
        }
        break;
    case GT_CLOSE:
        w->closed = true;
        break;
    case GT_FINISH:
        w->closed = true;
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&w->lock);
    pump(w);
}

/* Under the engine's event lock. Taking the hub lock here is safe: nothing takes an engine
 * lock while holding it. */
static void notify(void *arg)
{
    gwatch *w = arg;
    gwatch_hub *h = w->hub;
    atomic_store(&w->pending, true);
    pthread_mutex_lock(&h->lock);
    atomic_store(&h->work, true);
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

/* Takes a slot of the hub before subscribing, so a full hub refuses first; false: the call
 * has been finished (closing, or grpc.max_watches reached). */
static bool watch_take_slot(gcall *c, gwatch_hub *h)
{
    pthread_mutex_lock(&h->lock);
    bool full = h->n >= h->max, closing = atomic_load(&h->closing);
    if (!full && !closing) h->n++;
    pthread_mutex_unlock(&h->lock);
    if (closing) {
        g_call_finish(c, MN_ERR_CLOSED, NULL, API_CTX_SPACE, NULL);
        return false;
    }
    if (full) {
        char msg[96];
        snprintf(msg, sizeof msg, "%d Watch streams are open, the most grpc.max_watches allows",
                 h->max);
        g_call_finish_status(c, GRPC_STATUS_RESOURCE_EXHAUSTED, msg, "unavailable", "retry later",
                             NULL);
        return false;
    }
    return true;
}

/* A watch subscribed to space with filter f, linked into the hub (its slot taken); NULL with
 * *rc and err set (the slot is given back). */
static gwatch *watch_subscribe(gcall *c, gwatch_hub *h, mn_api_t *api, const char *space,
                               const mn_filter_t *f, mn_err *rc, mn_error *err)
{
    gwatch *w = calloc(1, sizeof *w);
    *rc = w ? MN_OK : MN_ERR_NOMEM;
    if (w) {
        w->c = c;
        w->hub = h;
        snprintf(w->space, sizeof w->space, "%s", space);
        pthread_mutex_init(&w->lock, NULL);
        atomic_init(&w->pending, false);
        *rc = mn_engine_subscribe_filtered(api->engine, space, WATCH_QUEUE, f, notify, w, &w->sub,
                                           err);
    }
    if (*rc) {
        if (w) {
            pthread_mutex_destroy(&w->lock);
            free(w);
        }
        pthread_mutex_lock(&h->lock);
        h->n--;
        pthread_mutex_unlock(&h->lock);
        return NULL;
    }
    pthread_mutex_lock(&h->lock);
    w->next = h->head;
    if (h->head) h->head->prev = w;
    h->head = w;
    pthread_mutex_unlock(&h->lock);
    return w;
}

/* Sends the head now, so the client knows the subscription is live, and arms the close
 * watch. */
static void watch_arm(gcall *c, gwatch *w)
{
    grpc_op ops[1];
    memset(ops, 0, sizeof ops);
    pthread_mutex_lock(&w->lock);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    c->initial_sent = true;
    w->sending = true;
    bool ok = g_call_batch(c, ops, 1, &c->t_send);
    if (ok) {
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[0].data.recv_close_on_server.cancelled = &c->cancelled;
        c->close_armed = true;
        if (!g_call_batch(c, ops, 1, &c->t_close)) {
            w->closed = true; /* the send's completion drops the base */
            grpc_call_cancel(c->call, NULL);
        }
    } else {
        w->sending = false;
        w->closed = true;
    }
    bool drop = w->closed && !w->sending;
    pthread_mutex_unlock(&w->lock);
    if (drop) drop_base(w);
}

void g_watch_start(gcall *c, const Mnemo__V1__WatchRequest *req)
{
    gwatch_hub *h = g_srv_hub(c->srv);
    mn_api_t *api = g_srv_api(c->srv);
    const char *space = req->space ? req->space : "";
    mn_error err = {0};
    if (strlen(space) > MN_SPACE_NAME_MAX || !mn_space_name_valid(space)) {
        mn_error_set(&err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", space);
        g_call_finish(c, MN_ERR_NOT_FOUND, &err, API_CTX_SPACE, NULL);
        return;
    }
    api_arena a; /* the filter until the engine has copied it */
    api_arena_init(&a);
    mn_filter_t f;
    mn_filter_init(&f);
    mn_err rc =
        req->filter ? api_filter_from_text(req->filter, strlen(req->filter), &a, &f, &err) : MN_OK;
    gwatch *w = NULL;
    if (!rc) {
        if (!watch_take_slot(c, h)) {
            api_arena_free(&a);
            return;
        }
        w = watch_subscribe(c, h, api, space, &f, &rc, &err);
    }
    api_arena_free(&a);
    if (rc) {
        g_call_finish(c, rc, &err, API_CTX_SPACE, NULL);
        return;
    }
    c->watch = w; /* from here on freeing the call frees the watch */
    watch_arm(c, w);
}

void g_watch_free(gcall *c)
{
    gwatch *w = c->watch;
    gwatch_hub *h = w->hub;
    if (w->sub) mn_engine_unsubscribe(w->sub); /* no notify runs after this */
    pthread_mutex_lock(&h->lock);
    if (w->prev)
        w->prev->next = w->next;
    else if (h->head == w)
        h->head = w->next;
    if (w->next) w->next->prev = w->prev;
    h->n--;
    pthread_mutex_unlock(&h->lock);
    if (w->buf) grpc_byte_buffer_destroy(w->buf);
    pthread_mutex_destroy(&w->lock);
    free(w);
    c->watch = NULL;
}

/* ---- the hub thread ---- */

static bool try_ref(gcall *c)
{
    int r = atomic_load(&c->refs);
    while (r > 0)
        if (atomic_compare_exchange_weak(&c->refs, &r, r + 1)) return true;
    return false;
}

static void *hub_main(void *arg)
{
    gwatch_hub *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->stop) {
        if (!atomic_exchange(&h->work, false)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += HUB_TICK_MS / 1000;
            pthread_cond_timedwait(&h->cond, &h->lock, &ts);
            continue;
        }
        bool all = atomic_load(&h->closing);
        int n = 0;
        for (gwatch *w = h->head; w && n < h->max; w = w->next)
            if ((atomic_exchange(&w->pending, false) || all) && try_ref(w->c)) h->snap[n++] = w;
        pthread_mutex_unlock(&h->lock);
        for (int i = 0; i < n; i++) {
            pump(h->snap[i]);
            g_call_unref(h->snap[i]->c);
        }
        pthread_mutex_lock(&h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

gwatch_hub *g_watch_hub_new(int max_watches)
{
    gwatch_hub *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->max = max_watches > 0 ? max_watches : 1;
    h->snap = calloc((size_t)h->max, sizeof *h->snap);
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    atomic_init(&h->closing, false);
    atomic_init(&h->work, false);
    if (!h->snap || pthread_create(&h->thread, NULL, hub_main, h)) {
        g_watch_hub_free(h);
        return NULL;
    }
    h->thread_started = true;
    return h;
}

void g_watch_hub_close(gwatch_hub *h)
{
    if (!h) return;
    atomic_store(&h->closing, true);
    atomic_store(&h->work, true);
    pthread_mutex_lock(&h->lock);
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

void g_watch_hub_free(gwatch_hub *h)
{
    if (!h) return;
    if (h->thread_started) {
        pthread_mutex_lock(&h->lock);
        h->stop = true;
        pthread_cond_signal(&h->cond);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->thread, NULL);
    }
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
    free(h->snap);
    free(h);
}
