/* The other users of the peer bus (gossip, queries): attached from any thread, made live
 * on the replication thread, which then runs their frames, ticks and member changes; and
 * frames posted from other threads, handed to the bus by the replication thread.
 *
 * Invariants: chans[0..n_chans) are live and touched by the thread only; in_chans, posts and
 * chan_taken are guarded by in_mu; a channel is attached once (chan_taken). */
#include "cluster_repl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"
#include "mnemo/util.h"

static bool taken(const cl_repl *r, uint8_t ch)
{
    return (r->chan_taken[ch / 8] >> (ch % 8)) & 1u;
}

mn_err cl_repl_attach(cl_repl *r, const cl_repl_channel *ch, mn_error *err)
{
    if (ch->channel <= MN_PEER_CH_REPL || !ch->on_frame || (ch->on_tick && ch->tick_ms <= 0))
        return mn_error_set(err, MN_ERR_INVALID,
                            "a bus user needs a channel above %d, on_frame, and tick_ms > 0 "
                            "with on_tick",
                            MN_PEER_CH_REPL);
    pthread_mutex_lock(&r->in_mu);
    mn_err rc = MN_OK;
    if (taken(r, ch->channel))
        rc = mn_error_set(err, MN_ERR_EXISTS, "peer channel %u is taken", ch->channel);
    else if (r->in_n_chans + r->n_chans >= CREP_CHANNELS) /* n_chans only grows: a safe read */
        rc = mn_error_set(err, MN_ERR_LIMIT, "at most %d bus users", CREP_CHANNELS);
    else {
        r->in_chans[r->in_n_chans++] = *ch;
        r->chan_taken[ch->channel / 8] |= (uint8_t)(1u << (ch->channel % 8));
    }
    pthread_mutex_unlock(&r->in_mu);
    if (rc == MN_OK) uv_async_send(&r->wake);
    return rc;
}

mn_err cl_repl_send(cl_repl *r, const char *node, uint8_t channel, const uint8_t *buf, size_t len)
{
    if (!r->bus) return MN_ERR_UNAVAILABLE; /* shutting down */
    return mn_peer_send(r->bus, node, channel, buf, len);
}

mn_err cl_repl_post(cl_repl *r, const char *node, uint8_t channel, const uint8_t *buf, size_t len)
{
    crep_post *p = malloc(sizeof *p + len);
    if (!p) return MN_ERR_NOMEM;
    p->next = NULL;
    snprintf(p->node, sizeof p->node, "%s", node);
    p->channel = channel;
    p->len = len;
    if (len) memcpy(p->data, buf, len);
    pthread_mutex_lock(&r->in_mu);
    mn_err rc = MN_OK;
    if (r->stop)
        rc = MN_ERR_UNAVAILABLE;
    else if (r->post_bytes + len > CREP_POST_MAX_BYTES)
        rc = MN_ERR_BUSY;
    else {
        if (!r->posts_tail) r->posts_tail = &r->posts;
        *r->posts_tail = p;
        r->posts_tail = &p->next;
        r->post_bytes += len;
    }
    pthread_mutex_unlock(&r->in_mu);
    if (rc != MN_OK) {
        free(p);
        return rc;
    }
    uv_async_send(&r->wake);
    return MN_OK;
}

static void chan_frame(void *arg, const char *from, const uint8_t *buf, size_t len)
{
    crep_chan *c = arg;
    c->ch.on_frame(c->ch.arg, from, buf, len);
}

static void chan_tick(uv_timer_t *t)
{
    crep_chan *c = t->data;
    c->ch.on_tick(c->ch.arg, mn__crep_now_us());
}

static void go_live(cl_repl *r, const cl_repl_channel *ch)
{
    mn_assert(r->n_chans < CREP_CHANNELS);
    crep_chan *c = &r->chans[r->n_chans++];
    c->ch = *ch;
    c->r = r;
    uv_timer_init(&r->loop, &c->timer);
    c->timer.data = c;
    mn_peer_on(r->bus, ch->channel, chan_frame, c);
    if (ch->on_tick)
        uv_timer_start(&c->timer, chan_tick, (uint64_t)ch->tick_ms, (uint64_t)ch->tick_ms);
    if (ch->on_members) ch->on_members(ch->arg, r->members, r->n_members);
}

void mn__crep_chan_wake(cl_repl *r)
{
    pthread_mutex_lock(&r->in_mu);
    cl_repl_channel in[CREP_CHANNELS];
    size_t n_in = r->in_n_chans;
    memcpy(in, r->in_chans, n_in * sizeof *in);
    r->in_n_chans = 0;
    crep_post *posts = r->posts;
    r->posts = NULL;
    r->posts_tail = NULL;
    r->post_bytes = 0;
    pthread_mutex_unlock(&r->in_mu);
    for (size_t i = 0; i < n_in; i++)
        go_live(r, &in[i]);
    while (posts) {
        crep_post *next = posts->next;
        /* a refusal is counted by the bus (no address, queue full) */
        (void)cl_repl_send(r, posts->node, posts->channel, posts->data, posts->len);
        free(posts);
        posts = next;
    }
}

void mn__crep_chan_members(cl_repl *r)
{
    for (size_t i = 0; i < r->n_chans; i++)
        if (r->chans[i].ch.on_members)
            r->chans[i].ch.on_members(r->chans[i].ch.arg, r->members, r->n_members);
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

void mn__crep_chan_close(cl_repl *r)
{
    for (size_t i = 0; i < r->n_chans; i++)
        uv_close((uv_handle_t *)&r->chans[i].timer, on_closed);
}

void mn__crep_chan_free(cl_repl *r)
{
    while (r->posts) {
        crep_post *next = r->posts->next;
        free(r->posts);
        r->posts = next;
    }
    r->posts_tail = NULL;
}
