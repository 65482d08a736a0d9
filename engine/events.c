/* Space events: a bounded queue per subscriber, filled by the threads that change
 * or read a space (the commit thread for WAL changes, recall callers for recall
 * summaries), drained by SSE and gRPC Watch.
 *
 * Publishing never blocks and never grows memory: a subscriber whose queue is
 * full is dropped, and its stream ends with MN_EVENT_DROPPED after what it had
 * queued. The final event lives outside the ring so it always fits. With no
 * subscriber at all, publishing costs one atomic load. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"

#include "engine_internal.h"
#include "filter.h"
#include "filter_expr.h"

/* The engine's subscribers. */
struct mn__events {
    pthread_mutex_t mu;         /* guards the list */
    struct mn_engine_sub *subs; /* newest first */
    atomic_uint n_subs;         /* read without mu: publishing's fast path */
};

struct mn_engine_sub {
    mn_engine_t *e;
    char space[MN_SPACE_NAME_MAX + 1];
    mn_event_notify_fn notify;
    void *notify_arg;
    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cv;
    mn_event_t *q;
    uint32_t cap, head, n;
    uint64_t seq;
    bool has_final; /* final event decided (no more events are queued) */
    mn_event_t final;
    bool ended; /* final event taken */
    bool wake;
    mn_filter_node_t *expr; /* the filter of remember and consolidate events (owned), or NULL */
    uint32_t n_expr;
    struct mn_engine_sub *prev, *next; /* engine list, under e->events->mu */
};

static const char *const kind_names[] = {
    [MN_EVENT_REMEMBER] = "remember",       [MN_EVENT_FORGET] = "forget",
    [MN_EVENT_UNSUPPRESS] = "unsuppress",   [MN_EVENT_ASSOCIATE] = "associate",
    [MN_EVENT_CONSOLIDATE] = "consolidate", [MN_EVENT_RECALL] = "recall",
    [MN_EVENT_DROPPED] = "dropped",         [MN_EVENT_SPACE_DROPPED] = "space_dropped",
    [MN_EVENT_CLOSED] = "closed",           [MN_EVENT_UPDATE] = "update",
};

const char *mn_event_kind_name(mn_event_kind_t k)
{
    if ((size_t)k < sizeof kind_names / sizeof kind_names[0] && kind_names[k]) return kind_names[k];
    return "unknown";
}

mn_err mn__events_init(mn_engine_t *e, mn_error *err)
{
    struct mn__events *ev = calloc(1, sizeof *ev);
    if (!ev) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&ev->mu, NULL);
    atomic_init(&ev->n_subs, 0);
    e->events = ev;
    return MN_OK;
}

void mn__events_free(mn_engine_t *e)
{
    if (!e->events) return;
    pthread_mutex_destroy(&e->events->mu);
    free(e->events);
    e->events = NULL;
}

/* Queues ev for s, or decides its end (caller holds the list's mu). */
static void sub_push(mn_engine_sub_t *s, const mn_event_t *ev, bool final)
{
    pthread_mutex_lock(&s->mu);
    if (s->has_final) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    bool was_empty = s->n == 0;
    if (final || s->n == s->cap) {
        s->has_final = true;
        s->final = final ? *ev : (mn_event_t){.kind = MN_EVENT_DROPPED, .at_ms = ev->at_ms};
        s->final.seq = ++s->seq;
    } else {
        mn_event_t *slot = &s->q[(s->head + s->n) % s->cap];
        *slot = *ev;
        slot->seq = ++s->seq;
        s->n++;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if ((was_empty || s->has_final) && s->notify) s->notify(s->notify_arg);
}

/* Queues ev for the subscribers of space (all when NULL); m, when the event is about a
 * memory written, is judged by each subscriber's filter. */
static void publish(mn_engine_t *e, const char *space, const mn_event_t *ev, bool final,
                    const mn_memory_t *m)
{
    struct mn__events *evs = e->events;
    if (atomic_load_explicit(&evs->n_subs, memory_order_acquire) == 0) return;
    const mn__slot as_slot = m ? mn__filter_slot_of(m) : (mn__slot){0};
    pthread_mutex_lock(&evs->mu);
    for (mn_engine_sub_t *s = evs->subs; s; s = s->next) {
        if (space && strcmp(s->space, space)) continue;
        if (m && s->n_expr && !mn__filter_expr_match(s->expr, s->n_expr, &as_slot)) continue;
        sub_push(s, ev, final);
    }
    pthread_mutex_unlock(&evs->mu);
}

void mn__events_publish(mn_engine_t *e, const char *space, const mn_event_t *ev)
{
    publish(e, space, ev, false, NULL);
}

void mn__events_end(mn_engine_t *e, const char *space, mn_event_kind_t kind)
{
    mn_event_t ev = {.kind = kind, .at_ms = mn__now(e)};
    publish(e, space, &ev, true, NULL);
}

bool mn__events_wanted(mn_engine_t *e)
{
    return atomic_load_explicit(&e->events->n_subs, memory_order_acquire) != 0;
}

void mn__events_from_entry(mn_engine_t *e, const mn_wal_entry_t *en, const bool *accepted)
{
    if (!mn__events_wanted(e)) return;
    mn_event_t ev = {.at_ms = mn__now(e), .lsn = en->lsn};
    switch (en->type) {
    case MN_WAL_OP_REMEMBER:
        ev.kind = MN_EVENT_REMEMBER;
        for (size_t i = 0; i < en->op.remember.n; i++) {
            if (!accepted[i] || en->op.remember.mems[i].forgotten) continue; /* erased stubs */
            ev.id = en->op.remember.mems[i].id;
            ev.memory_kind = (uint8_t)en->op.remember.mems[i].kind;
            publish(e, en->space, &ev, false, &en->op.remember.mems[i]);
        }
        break;
    case MN_WAL_OP_CONSOLIDATE:
        ev.memory_kind = MN_KIND_SEMANTIC;
        for (size_t i = 0; i < en->op.consolidate.n; i++) {
            if (!accepted[i]) continue;
            const mn_memory_t *m = &en->op.consolidate.mems[i];
            ev.id = m->id;
            if (m->forgotten) { /* retired (or forgotten) in the entry */
                ev.kind = MN_EVENT_FORGET;
                ev.forget_mode = MN_FORGET_DELETE;
                ev.count = 0;
            } else {
                ev.kind = MN_EVENT_CONSOLIDATE;
                ev.count = (uint32_t)m->n_support;
            }
            publish(e, en->space, &ev, false, m->forgotten ? NULL : m);
        }
        break;
    case MN_WAL_OP_FORGET:
        ev.kind = MN_EVENT_FORGET;
        ev.id = en->op.forget.id;
        ev.forget_mode = (uint8_t)en->op.forget.mode;
        ev.expired = en->op.forget.reason == MN_FORGET_REASON_EXPIRED;
        mn__events_publish(e, en->space, &ev);
        break;
    case MN_WAL_OP_FORGET_BATCH: /* one forget event per memory the chunk forgot */
        ev.kind = MN_EVENT_FORGET;
        ev.forget_mode = (uint8_t)en->op.forget_batch.mode;
        for (size_t i = 0; i < en->op.forget_batch.n; i++) {
            if (!accepted[i]) continue;
            ev.id = en->op.forget_batch.ids[i];
            mn__events_publish(e, en->space, &ev);
        }
        break;
    case MN_WAL_OP_UNSUPPRESS:
        ev.kind = MN_EVENT_UNSUPPRESS;
        ev.id = en->op.unsuppress.id;
        mn__events_publish(e, en->space, &ev);
        break;
    case MN_WAL_OP_ASSOCIATE:
        ev.kind = MN_EVENT_ASSOCIATE;
        ev.count = (uint32_t)en->op.associate.n;
        mn__events_publish(e, en->space, &ev);
        break;
    case MN_WAL_OP_UPDATE:
        if (!accepted[0] || en->op.update.mem.forgotten) break; /* an erased stub */
        ev.kind = MN_EVENT_UPDATE;
        ev.id = en->op.update.mem.lineage;
        ev.memory_kind = (uint8_t)en->op.update.mem.kind;
        ev.count = en->op.update.mem.version;
        mn__events_publish(e, en->space, &ev);
        break;
    default: /* reinforcement and space creation are not events */
        break;
    }
}

mn_err mn_engine_subscribe(mn_engine_t *e, const char *space, uint32_t queue_cap,
                           mn_event_notify_fn notify, void *notify_arg, mn_engine_sub_t **out,
                           mn_error *err)
{
    return mn_engine_subscribe_filtered(e, space, queue_cap, NULL, notify, notify_arg, out, err);
}

mn_err mn_engine_subscribe_filtered(mn_engine_t *e, const char *space, uint32_t queue_cap,
                                    const mn_filter_t *filter, mn_event_notify_fn notify,
                                    void *notify_arg, mn_engine_sub_t **out, mn_error *err)
{
    *out = NULL;
    uint32_t n_expr = filter && filter->expr ? filter->n_expr : 0;
    mn_err rc = n_expr ? mn__filter_expr_check(filter->expr, n_expr, err) : MN_OK;
    if (rc) return rc;
    mn__space *sp = mn__registry_acquire(&e->reg, space);
    if (!sp) return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.80s\" does not exist", space);
    mn__space_unref(sp);
    if (queue_cap == 0) queue_cap = 1024;
    mn_engine_sub_t *s = calloc(1, sizeof *s);
    if (s) s->q = calloc(queue_cap, sizeof *s->q);
    if (s && n_expr && (s->expr = mn__filter_expr_dup(filter->expr, n_expr))) s->n_expr = n_expr;
    if (!s || !s->q || s->n_expr != n_expr) {
        if (s) {
            free(s->q);
            free(s->expr);
        }
        free(s);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    s->e = e;
    snprintf(s->space, sizeof s->space, "%s", space);
    s->cap = queue_cap;
    s->notify = notify;
    s->notify_arg = notify_arg;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    struct mn__events *evs = e->events;
    pthread_mutex_lock(&evs->mu);
    s->next = evs->subs;
    if (evs->subs) evs->subs->prev = s;
    evs->subs = s;
    atomic_fetch_add_explicit(&evs->n_subs, 1, memory_order_release);
    pthread_mutex_unlock(&evs->mu);
    *out = s;
    return MN_OK;
}

size_t mn_engine_sub_next(mn_engine_sub_t *s, mn_event_t *out, size_t max, int timeout_ms,
                          bool *ended)
{
    size_t got = 0;
    pthread_mutex_lock(&s->mu);
    if (timeout_ms != 0) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        if (timeout_ms > 0) {
            dl.tv_sec += timeout_ms / 1000;
            dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
            if (dl.tv_nsec >= 1000000000L) {
                dl.tv_sec++;
                dl.tv_nsec -= 1000000000L;
            }
        }
        while (!s->ended && s->n == 0 && !s->has_final && !s->wake) {
            int rc = timeout_ms > 0 ? pthread_cond_timedwait(&s->cv, &s->mu, &dl)
                                    : pthread_cond_wait(&s->cv, &s->mu);
            if (rc == ETIMEDOUT) break;
        }
    }
    s->wake = false;
    while (got < max && s->n > 0) {
        out[got++] = s->q[s->head];
        s->head = (s->head + 1) % s->cap;
        s->n--;
    }
    if (got < max && s->n == 0 && s->has_final && !s->ended) {
        out[got++] = s->final;
        s->ended = true;
    }
    if (ended) *ended = s->ended;
    pthread_mutex_unlock(&s->mu);
    return got;
}

void mn_engine_sub_wake(mn_engine_sub_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->wake = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void mn_engine_unsubscribe(mn_engine_sub_t *s)
{
    if (!s) return;
    mn_engine_t *e = s->e; /* NULL once the engine closed */
    if (e) {
        struct mn__events *evs = e->events;
        pthread_mutex_lock(&evs->mu);
        if (s->prev)
            s->prev->next = s->next;
        else
            evs->subs = s->next;
        if (s->next) s->next->prev = s->prev;
        atomic_fetch_sub_explicit(&evs->n_subs, 1, memory_order_release);
        pthread_mutex_unlock(&evs->mu);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->q);
    free(s->expr);
    free(s);
}

void mn__events_close(mn_engine_t *e)
{
    mn__events_end(e, NULL, MN_EVENT_CLOSED);
    /* detach what is left: those subscriptions end with CLOSED and stay valid
     * until their owners unsubscribe */
    struct mn__events *evs = e->events;
    pthread_mutex_lock(&evs->mu);
    for (mn_engine_sub_t *s = evs->subs, *next; s; s = next) {
        next = s->next;
        s->e = NULL;
        s->prev = s->next = NULL;
    }
    evs->subs = NULL;
    atomic_store(&evs->n_subs, 0);
    pthread_mutex_unlock(&evs->mu);
}
