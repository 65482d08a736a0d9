/* Streaming responses: after a stream's head is written (http_conn.c), the
 * source writes through the connection until it ends the stream or the peer
 * leaves. Writes are copied and queued on the socket; `queued` counts the bytes
 * the socket has not taken yet, so a source can stop feeding a slow reader.
 * Admission (max_streams, per principal) is the server's (http_server.c); the lifetime
 * timer is the connection's (http_conn.c). */
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

struct mn_http_stream {
    http_conn *c;
    mn_http_stream_src_t src;
    size_t queued;
    bool ended;
};

typedef struct stream_write {
    uv_write_t w;
    http_conn *c;
    size_t len;
    char data[];
} stream_write;

void http_stream_src_discard(mn_http_stream_src_t *src)
{
    if (!src) return;
    if (src->closed) src->closed(src->arg);
    free(src);
}

void http_stream_begin(http_conn *c, mn_http_stream_src_t *src)
{
    mn_http_stream_t *st = calloc(1, sizeof *st);
    if (!st) {
        http_stream_src_discard(src);
        http_conn_abort(c);
        return;
    }
    st->c = c;
    st->src = *src;
    free(src);
    c->stream = st;
    if (st->src.start) st->src.start(st->src.arg, st);
}

void http_stream_closed(http_conn *c)
{
    mn_http_stream_t *st = c->stream;
    c->stream = NULL;
    if (st->src.closed) st->src.closed(st->src.arg);
    free(st);
}

void http_stream_stop(http_conn *c, mn_http_stream_stop_t why)
{
    mn_http_stream_t *st = c->stream;
    if (st->src.stop && !st->ended) st->src.stop(st->src.arg, why);
    if (c->stream && !c->stream->ended) mn_http_stream_end(c->stream);
}

static void on_stream_written(uv_write_t *w, int status)
{
    stream_write *sw = (stream_write *)w;
    http_conn *c = sw->c;
    /* c outlives its writes: the handle's close waits for their callbacks */
    if (c->stream) c->stream->queued -= sw->len;
    free(sw);
    if (status < 0 && !c->closing) http_conn_abort(c);
}

int mn_http_stream_write(mn_http_stream_t *st, const char *data, size_t len)
{
    http_conn *c = st->c;
    if (st->ended || c->closing || c->lingering) return -1;
    if (!len) return 0;
    stream_write *sw = malloc(sizeof *sw + len);
    if (!sw) return -1;
    sw->c = c;
    sw->len = len;
    memcpy(sw->data, data, len);
    uv_buf_t b = uv_buf_init(sw->data, (unsigned)len);
    if (http_conn_write(c, &sw->w, &b, 1, on_stream_written) != 0) {
        free(sw);
        http_conn_abort(c);
        return -1;
    }
    st->queued += len;
    return 0;
}

size_t mn_http_stream_queued(const mn_http_stream_t *st)
{
    return st->queued;
}

void mn_http_stream_end(mn_http_stream_t *st)
{
    if (st->ended) return;
    st->ended = true;
    http_conn_finish(st->c); /* the half-close waits for the queued writes */
}

uv_loop_t *mn_http_stream_loop(const mn_http_stream_t *st)
{
    return st->c->s->loop;
}
