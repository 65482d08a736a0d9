/* Helpers of the peer bus tests (test_peer.c, test_peer_tls.c): an inbox that
 * counts frames, running a loop until a condition holds (with a deadline),
 * waiting for a counter of mn_peer_stats_t. Include after cmocka.h. */
#ifndef MN_TEST_PEER_FIXTURE_H
#define MN_TEST_PEER_FIXTURE_H

#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "mnemo/peer.h"
#include "mnemo/util.h"

typedef struct inbox {
    int frames;
    size_t bytes;
    char last_from[MN_PEER_NODE_MAX + 1];
    uint8_t last[64];
    size_t last_len;
} inbox;

static inline void on_frame(void *arg, const char *from, const uint8_t *buf, size_t len)
{
    inbox *in = arg;
    in->frames++;
    in->bytes += len;
    snprintf(in->last_from, sizeof in->last_from, "%s", from);
    in->last_len = len < sizeof in->last ? len : sizeof in->last;
    memcpy(in->last, buf, in->last_len);
}

static inline void wake_cb(uv_timer_t *t)
{
    (void)t;
}

typedef bool (*cond_fn)(void *arg);

/* Runs the loop until cond holds or 10 s of wall time pass. */
static inline bool run_until(uv_loop_t *loop, cond_fn cond, void *arg)
{
    int64_t deadline = mn_time_mono_ns() + 10LL * 1000000000;
    uv_timer_t wake;
    uv_timer_init(loop, &wake);
    bool ok = false;
    while (mn_time_mono_ns() < deadline) {
        if (cond(arg)) {
            ok = true;
            break;
        }
        uv_timer_start(&wake, wake_cb, 10, 0);
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

/* Defaults with short timeouts and small bounds, for id on port (0 = any). */
static inline void test_peer_config(mn_peer_config_t *c, const char *id, const char *key, int port)
{
    mn_peer_config_default(c);
    c->node_id = id;
    c->key = key;
    c->port = port;
    c->handshake_timeout_ms = 300;
    c->backoff_min_ms = 10;
    c->backoff_max_ms = 200;
    c->queue_max_bytes = 4096;
    c->max_frame_bytes = 1024;
}

static inline mn_peer_t *test_peer_new(uv_loop_t *loop, const mn_peer_config_t *c)
{
    mn_peer_t *p = NULL;
    mn_error err;
    assert_int_equal(mn_peer_new(loop, c, &p, &err), MN_OK);
    assert_true(mn_peer_port(p) > 0);
    return p;
}

static inline void link_to(mn_peer_t *from, const char *id, mn_peer_t *to)
{
    mn_error err;
    assert_int_equal(mn_peer_set_addr(from, id, "127.0.0.1", mn_peer_port(to), &err), MN_OK);
}

static inline void finish(uv_loop_t *loop, mn_peer_t **ps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mn_peer_close(ps[i], NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

typedef struct want {
    inbox *in;
    int frames;
} want;

static inline bool got(void *arg)
{
    want *w = arg;
    return w->in->frames >= w->frames;
}

typedef struct want_stat {
    mn_peer_t *p;
    size_t offset; /* of a uint64_t in mn_peer_stats_t */
    uint64_t at_least;
} want_stat;

static inline bool stat_reached(void *arg)
{
    want_stat *w = arg;
    mn_peer_stats_t st;
    mn_peer_stats(w->p, &st);
    uint64_t v;
    memcpy(&v, (const uint8_t *)&st + w->offset, sizeof v);
    return v >= w->at_least;
}

#define STAT(p, field, n) ((want_stat){(p), offsetof(mn_peer_stats_t, field), (n)})

#endif
