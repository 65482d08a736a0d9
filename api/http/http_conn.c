/* One HTTP/1.1 connection: parse (http-parser), queue, dispatch to the thread pool, write
 * responses in order, keep-alive, pipelining, limits, timeouts and closing.
 *
 * Follows RFC 9112 (HTTP/1.1 messages): persistence §9.3 (HTTP/1.1 default keep-alive,
 * "Connection: close", HTTP/1.0 keep-alive only when asked), pipelining §9.3.2 (responses in
 * request order), 100-continue (RFC 9110 §10.1.1: not sent to HTTP/1.0 clients, skipped when
 * the body already arrives), and the lingering close of §9.6 (after a final response the
 * server half-closes and drains input for a while, so that a reset does not destroy the
 * response in the peer's receive buffer).
 *
 * Life of a request: message_begin creates `cur`; headers and body are copied into it;
 * message_complete routes it (loop thread) and appends it to the queue. The queue head becomes
 * `active`: its handler runs on the thread pool (uv_queue_work) or the server answers itself
 * (404, 405, 4xx limits); the response is written from the loop thread; only when that write
 * completes is the next request dispatched. So at most one request per connection is on the
 * pool, and responses leave in request order.
 *
 * Back-pressure: when queued + active requests reach max_pipelined, or the connection holds
 * max_pipelined_bytes of requests (line, headers, bodies; conn_bytes) while earlier ones are
 * still unanswered, the parser is paused (at the end of a message, or inside a body), the
 * unparsed rest of the read buffer is kept in `pending`, and reading stops until a response
 * has been written. So one connection holds at most about max(max_pipelined_bytes,
 * max_body_bytes) plus one read chunk, however many requests it pipelines and whether or
 * not it reads its responses.
 *
 * Budget: every body is charged to the server's max_inflight_bytes (its Content-Length when
 * the headers are in, a chunked body as it arrives) until its request is freed; a body the
 * budget cannot take is answered 503 with Retry-After at once, without reading it.
 *
 * Timer (one per connection): runs while the connection waits for the client or for a
 * response write to drain; stopped while a handler runs. An idle keep-alive connection or a
 * stalled write is closed after idle_timeout_ms. A request that has begun but not fully
 * arrived (or a TLS handshake) has request_timeout_ms from its first byte, never extended by
 * further bytes: then it is answered 408 and the connection closed (the slow-loris bound).
 *
 * Gate: the route is matched as soon as the headers are in, and the server's gate (API keys,
 * api/auth_http.c) may refuse the request there; a refused request with a body is answered
 * at once and the connection closed, so nobody unauthenticated makes the server buffer a body.
 * Nor does anybody else where no handler would read it: a body on GET or HEAD (400), or on a
 * path that answers 404 or 405, is refused the same way.
 *
 * Streams: a handler's streaming answer takes a slot (http_server_stream_admit: max_streams,
 * max_streams_per_principal) or is replaced by 503/429; a stream is stopped after
 * stream_max_lifetime_ms (the connection timer in TM_STREAM).
 *
 * Transport: bytes pass through http_conn_input (in) and http_conn_write (out); with TLS
 * (http_tls.c) those sit behind an OpenSSL session on memory BIOs, and nothing else here
 * changes. A streaming response should write through http_conn_write too.
 *
 * Memory: a connection is freed when both handles are closed and no request is active (an
 * active request's work or write callback always comes back to the loop first). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"
#include "mnemo/assert.h"
#include "mnemo/util.h"

#define READ_CHUNK 65536
#define LINGER_MAX_MS 2000
#define HEADER_LINE_OVERHEAD 4 /* ": " and CRLF around each header */

static void conn_abort(http_conn *c);
static void conn_dispatch(http_conn *c);
static void conn_update_timer(http_conn *c);
static void conn_fail(http_conn *c, int status, const char *code, const char *msg);

/* ---- requests ---- */

static http_req *req_new(http_conn *c)
{
    http_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->c = c;
    r->t_start = uv_hrtime();
    r->keep_alive = true;
    r->resp.status = 200;
    r->pub.method = "";
    r->pub.path = "";
    r->pub.query = "";
    r->pub.body = "";
    return r;
}

static void req_free(http_req *r)
{
    if (!r) return;
    http_conn *c = r->c;
    /* the charges are released here only, and were made only with the checks below */
    mn_assert(c->buffered_bytes >= r->conn_bytes && c->s->inflight_bytes >= r->budget_bytes);
    c->buffered_bytes -= r->conn_bytes;
    c->s->inflight_bytes -= r->budget_bytes;
    http_buf_free(&r->url);
    http_buf_free(&r->hfield);
    http_buf_free(&r->hvalue);
    http_buf_free(&r->body);
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    free(r->raw_path);
    free(r->path);
    free(r->query);
    free(r->out_head);
    free(r->resp.body);
    free(r->resp.extra_headers);
    http_stream_src_discard(r->resp.stream);
    mn_http_route_match_free(&r->match);
    free(r);
}

static void queue_push(http_conn *c, http_req *r)
{
    r->next = NULL;
    if (c->q_tail)
        c->q_tail->next = r;
    else
        c->q_head = r;
    c->q_tail = r;
    c->q_len++;
}

static http_req *queue_pop(http_conn *c)
{
    http_req *r = c->q_head;
    if (!r) return NULL;
    c->q_head = r->next;
    if (!c->q_head) c->q_tail = NULL;
    c->q_len--;
    r->next = NULL;
    return r;
}

/* Drops everything not yet dispatched: the request being parsed, the queue, pending input. */
static void conn_drop_unstarted(http_conn *c)
{
    req_free(c->cur);
    c->cur = NULL;
    http_req *r;
    while ((r = queue_pop(c)) != NULL)
        req_free(r);
    free(c->pending);
    c->pending = NULL;
    c->pending_len = 0;
    c->continue_pending = false;
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = malloc(READ_CHUNK);
    buf->len = buf->base ? READ_CHUNK : 0;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void conn_read_start(http_conn *c)
{
    if (c->reading || c->closing) return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_abort(c);
        return;
    }
    c->reading = true;
}

static void conn_read_stop(http_conn *c)
{
    if (!c->reading) return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

/* ---- closing ---- */

static void conn_try_free(http_conn *c)
{
    if (c->open_handles == 0 && !c->active) http_server_conn_freed(c->s, c);
}

static void on_handle_closed(uv_handle_t *h)
{
    http_conn *c = h->data;
    c->open_handles--;
    conn_try_free(c);
}

/* Closes now. An active request stays until its work or write callback frees it. */
static void conn_abort(http_conn *c)
{
    if (c->closing) return;
    c->closing = true;
    c->reading = false;
    conn_drop_unstarted(c);
    if (c->stream) http_stream_closed(c);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_timer(uv_timer_t *t)
{
    http_conn *c = t->data;
    if (c->timer_mode == TM_STREAM && c->stream && !c->closing && !c->lingering) {
        c->timer_mode = TM_NONE;
        http_stream_stop(c, MN_HTTP_STREAM_EXPIRED); /* its last message, then the close */
        return;
    }
    if (c->timer_mode == TM_PARTIAL && !c->closing && !c->lingering) {
        if (c->tls && http_tls_handshaking(c)) {
            c->s->stats.tls_handshake_failures++;
            mn_log_debug("http: TLS handshake timed out");
        } else if (c->cur) {
            /* the slow-loris answer: 408, then close */
            c->s->stats.request_timeouts++;
            c->timer_mode = TM_NONE;
            conn_fail(c, 408, "request_timeout",
                      "the request did not arrive within http.request_timeout_ms");
            return;
        }
    }
    conn_abort(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    http_conn *c = req->data;
    if (!c->closing && status < 0) conn_abort(c);
}

/* After a final response: half-close, then discard input until EOF or the linger timeout. */
static void conn_finish(http_conn *c)
{
    if (c->closing || c->lingering) return;
    /* a stream ending at shutdown still lingers (bounded) so its last message arrives */
    if (c->eof || (c->s->stopping && !c->stream)) {
        conn_abort(c);
        return;
    }
    c->lingering = true;
    c->no_more_input = true;
    conn_drop_unstarted(c);
    if (c->tls) http_tls_close_notify(c);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_abort(c);
        return;
    }
    conn_read_start(c);
    if (c->closing) return;
    int ms = c->s->opt.idle_timeout_ms < LINGER_MAX_MS ? c->s->opt.idle_timeout_ms : LINGER_MAX_MS;
    c->timer_mode = TM_LINGER;
    uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
}

/* ---- timer ---- */

static void conn_update_timer(http_conn *c)
{
    if (c->closing || c->lingering) return;
    enum http_timer_mode mode;
    if (c->stream) /* a stream lives until it ends, the peer goes, or its lifetime is up */
        mode = c->s->opt.stream_max_lifetime_ms > 0 ? TM_STREAM : TM_NONE;
    else if (c->in_pool)
        mode = TM_NONE;
    else if ((c->cur && !c->paused) || (c->tls && http_tls_handshaking(c)))
        mode = TM_PARTIAL; /* a request paused by back-pressure waits for us, not the peer */
    else if (c->writing)
        mode = TM_WRITE;
    else if (!c->active && !c->q_head)
        mode = TM_IDLE;
    else
        mode = TM_NONE;
    if (mode == c->timer_mode) return;
    c->timer_mode = mode;
    uint64_t ms = mode == TM_PARTIAL  ? (uint64_t)c->s->opt.request_timeout_ms
                  : mode == TM_STREAM ? (uint64_t)c->s->opt.stream_max_lifetime_ms
                                      : (uint64_t)c->s->opt.idle_timeout_ms;
    if (mode == TM_NONE)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, ms, 0);
}

void http_conn_update_timer(http_conn *c)
{
    conn_update_timer(c);
}

/* ---- 100-continue ---- */

static void on_continue_written(uv_write_t *w, int status)
{
    free(w);
}

/* Sends "100 Continue" for cur once every earlier response is out (keeps response order). */
static void maybe_send_continue(http_conn *c)
{
    if (!c->continue_pending || c->active || c->q_head || !c->cur || c->closing) return;
    c->continue_pending = false;
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_write_t *w = malloc(sizeof *w);
    if (!w) return;
    uv_buf_t b = uv_buf_init((char *)msg, sizeof msg - 1);
    if (http_conn_write(c, w, &b, 1, on_continue_written) != 0) free(w);
}

/* ---- parser callbacks ---- */

static int cb_fail(http_conn *c, int status, const char *code, const char *msg)
{
    c->fail_status = status;
    c->fail_code = code;
    c->fail_msg = msg;
    return -1;
}

static int oom(http_conn *c)
{
    return cb_fail(c, 503, "unavailable", "out of memory");
}

static int count_header_bytes(http_conn *c, size_t n)
{
    c->cur->header_bytes += n;
    c->cur->conn_bytes += n;
    c->buffered_bytes += n;
    if (c->cur->header_bytes > c->s->opt.max_header_bytes)
        return cb_fail(c, 431, "headers_too_large",
                       "the request line and headers exceed the server limit");
    return 0;
}

static int cb_message_begin(http_parser *p)
{
    http_conn *c = p->data;
    if (c->closing) return -1;
    req_free(c->cur);
    c->cur = req_new(c);
    if (!c->cur) return oom(c);
    c->timer_mode = TM_NONE; /* a new request gets a full timeout */
    conn_update_timer(c);
    return 0;
}

static int cb_url(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    if (count_header_bytes(c, len) != 0) return -1;
    return http_buf_append(&c->cur->url, at, len) ? 0 : oom(c);
}

/* Moves the header collected in hfield/hvalue into the header array. */
static int push_header(http_conn *c)
{
    http_req *r = c->cur;
    if (!r->in_value && r->hfield.len == 0) return 0;
    if (count_header_bytes(c, HEADER_LINE_OVERHEAD) != 0) return -1;
    if (r->n_headers == r->cap_headers) {
        size_t cap = r->cap_headers ? r->cap_headers * 2 : 16;
        mn_http_header_t *nh = realloc(r->headers, cap * sizeof *nh);
        if (!nh) return oom(c);
        r->headers = nh;
        r->cap_headers = cap;
    }
    char *name = r->hfield.p ? r->hfield.p : strdup("");
    char *value = r->hvalue.p ? r->hvalue.p : strdup("");
    if (!name || !value) {
        if (name != r->hfield.p) free(name);
        if (value != r->hvalue.p) free(value);
        return oom(c);
    }
    memset(&r->hfield, 0, sizeof r->hfield);
    memset(&r->hvalue, 0, sizeof r->hvalue);
    for (char *q = name; *q; q++)
        if (*q >= 'A' && *q <= 'Z') *q = (char)(*q - 'A' + 'a');
    size_t vl = strlen(value);
    while (vl > 0 && (value[vl - 1] == ' ' || value[vl - 1] == '\t'))
        value[--vl] = '\0';
    r->headers[r->n_headers].name = name;
    r->headers[r->n_headers].value = value;
    r->n_headers++;
    r->in_value = false;
    return 0;
}

static int cb_header_field(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    if (c->cur->in_value && push_header(c) != 0) return -1;
    if (count_header_bytes(c, len) != 0) return -1;
    return http_buf_append(&c->cur->hfield, at, len) ? 0 : oom(c);
}

static int cb_header_value(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    if (count_header_bytes(c, len) != 0) return -1;
    c->cur->in_value = true;
    return http_buf_append(&c->cur->hvalue, at, len) ? 0 : oom(c);
}

static void set_direct(http_req *r, int status, const char *code, const char *msg)
{
    r->direct_status = status;
    r->direct_code = code;
    snprintf(r->direct_msg, sizeof r->direct_msg, "%s", msg);
}

/* Charges n more body bytes of r to the server's max_inflight_bytes. false when the budget
 * cannot take them (or is spent, for n == 0: a chunked body's start): r answers 503 with
 * Retry-After. Invariant: s->inflight_bytes <= max_inflight_bytes. */
static bool budget_charge(http_conn *c, http_req *r, size_t n)
{
    mn_http_server_t *s = c->s;
    mn_assert(s->inflight_bytes <= s->opt.max_inflight_bytes);
    size_t room = s->opt.max_inflight_bytes - s->inflight_bytes;
    if (n > room || room == 0) {
        s->stats.inflight_refused++;
        set_direct(r, 503, "unavailable",
                   "the server holds http.max_inflight_bytes of request bodies; retry later");
        r->retry_after = true;
        return false;
    }
    s->inflight_bytes += n;
    r->budget_bytes += n;
    return true;
}

/* Back-pressure (see the top comment): the queue is full, or the connection holds
 * max_pipelined_bytes while requests before the one being read are still unanswered. */
static bool conn_must_wait(const http_conn *c)
{
    size_t ahead = c->q_len + (c->active ? 1 : 0);
    if (ahead >= (size_t)c->s->opt.max_pipelined) return true;
    return ahead > 0 && c->buffered_bytes >= c->s->opt.max_pipelined_bytes;
}

/* Splits the request target into raw path, decoded path and raw query (RFC 9112 §3.2:
 * origin-form, absolute-form, asterisk-form). A bad target is answered 400 but the message
 * framing is intact, so the connection stays usable. */
static int split_target(http_conn *c, http_req *r)
{
    const char *u = r->url.p ? r->url.p : "";
    const char *path = u;
    if (u[0] != '/' && strcmp(u, "*") != 0) {
        const char *scheme_end = strstr(u, "://");
        if (!scheme_end) {
            set_direct(r, 400, "bad_request", "unsupported request target");
            path = "/";
        } else {
            path = strchr(scheme_end + 3, '/');
            if (!path) path = "/";
        }
    }
    size_t plen = strcspn(path, "?#");
    const char *q = path[plen] == '?' ? path + plen + 1 : NULL;
    size_t qlen = q ? strcspn(q, "#") : 0;
    r->raw_path = strndup(path, plen);
    r->path = malloc(plen + 1);
    r->query = strndup(q ? q : "", qlen);
    if (!r->raw_path || !r->path || !r->query) return oom(c);
    if (http_pct_decode(path, plen, r->path, false) < 0) {
        r->path[0] = '\0';
        if (!r->direct_status)
            set_direct(r, 400, "bad_request", "invalid percent-encoding in the path");
    }
    r->pub.path = r->path;
    r->pub.query = r->query;
    return 0;
}

/* Matches the route (and asks the gate) once the method, path and headers are known. */
static void route(http_conn *c, http_req *r)
{
    if (r->direct_status) return;
    mn_http_route_result_t res =
        mn_http_router_match(c->s->router, r->pub.method, r->raw_path, &r->match);
    if (res == MN_HTTP_ROUTE_FOUND) {
        r->routed = true;
        for (size_t i = 0; i < r->match.n_params; i++)
            r->pub.params[i] = r->match.params[i];
        r->pub.n_params = r->match.n_params;
        r->pub.route = r->match.pattern;
        mn_http_server_t *s = c->s;
        if (s->gate && !s->gate(s->gate_arg, &r->pub, &r->resp)) {
            r->routed = false;
            r->answered = true;
        }
    } else if (res == MN_HTTP_ROUTE_BAD_METHOD) {
        snprintf(r->allow, sizeof r->allow, "%s", r->match.allow);
        char msg[96];
        snprintf(msg, sizeof msg, "method %s is not allowed on this path", r->pub.method);
        set_direct(r, 405, "method_not_allowed", msg);
    } else {
        set_direct(r, 404, "not_found", "no route matches the path");
    }
}

static int cb_headers_complete(http_parser *p)
{
    http_conn *c = p->data;
    http_req *r = c->cur;
    const mn_http_server_options_t *o = &c->s->opt;
    if (push_header(c) != 0) return -1;
    r->pub.method = http_method_str((enum http_method)p->method);
    r->pub.headers = r->headers;
    r->pub.n_headers = r->n_headers;
    r->head = p->method == HTTP_HEAD;
    r->http10 = p->http_major == 1 && p->http_minor == 0;
    r->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    const char *rid = mn_http_header_get(&r->pub, "x-request-id");
    if (rid && http_request_id_sane(rid))
        snprintf(r->pub.request_id, sizeof r->pub.request_id, "%s", rid);
    else
        http_server_request_id(c->s, r->pub.request_id);
    if (split_target(c, r) != 0) return -1;

    bool has_length = p->content_length != ULLONG_MAX;
    if (has_length && p->content_length > o->max_body_bytes)
        return cb_fail(c, 413, "payload_too_large", "the request body exceeds the server limit");
    bool chunked = (p->flags & F_CHUNKED) != 0;
    bool has_body = chunked || (has_length && p->content_length > 0);
    if (has_body && (p->method == HTTP_GET || p->method == HTTP_HEAD))
        set_direct(r, 400, "bad_request", "GET and HEAD requests take no body");
    route(c, r);
    if (has_body && (r->answered || r->direct_status)) { /* answer now, never read the body */
        c->s->stats.bodies_refused++;
        return cb_fail(c, r->answered ? r->resp.status : r->direct_status, NULL, NULL);
    }
    size_t declared = has_length && !chunked ? (size_t)p->content_length : 0;
    if (has_body && !budget_charge(c, r, declared)) return cb_fail(c, 503, NULL, NULL);
    if (declared > 0 && !http_buf_reserve(&r->body, declared)) return oom(c);
    const char *expect = mn_http_header_get(&r->pub, "expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && has_body && !r->http10) {
        c->continue_pending = true;
        maybe_send_continue(c);
    }
    return 0;
}

static int cb_body(http_parser *p, const char *at, size_t len)
{
    http_conn *c = p->data;
    http_req *r = c->cur;
    c->continue_pending = false; /* the client did not wait for it */
    if (len > c->s->opt.max_body_bytes - r->body.len)
        return cb_fail(c, 413, "payload_too_large", "the request body exceeds the server limit");
    size_t have = r->body.len + len;
    if (have > r->budget_bytes && !budget_charge(c, r, have - r->budget_bytes))
        return cb_fail(c, 503, NULL, NULL);
    if (!http_buf_append(&r->body, at, len)) return oom(c);
    r->conn_bytes += len;
    c->buffered_bytes += len;
    if (conn_must_wait(c)) http_parser_pause(p, 1); /* the rest of the body waits */
    return 0;
}

static int cb_message_complete(http_parser *p)
{
    http_conn *c = p->data;
    http_req *r = c->cur;
    c->cur = NULL;
    c->continue_pending = false;
    if (r->body.p) r->pub.body = r->body.p;
    r->pub.body_len = r->body.len;
    queue_push(c, r);
    if (!r->keep_alive) {
        c->no_more_input = true;
        http_parser_pause(p, 1);
    } else if (conn_must_wait(c)) {
        http_parser_pause(p, 1);
    }
    conn_dispatch(c);
    conn_update_timer(c);
    return 0;
}

const http_parser_settings http_conn_settings = {
    .on_message_begin = cb_message_begin,
    .on_url = cb_url,
    .on_header_field = cb_header_field,
    .on_header_value = cb_header_value,
    .on_headers_complete = cb_headers_complete,
    .on_body = cb_body,
    .on_message_complete = cb_message_complete,
};

/* ---- feeding input ---- */

static void conn_feed(http_conn *c, const char *data, size_t len)
{
    size_t n = http_parser_execute(&c->parser, &http_conn_settings, data, len);
    if (c->closing) return;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) {
        c->paused = true;
        conn_read_stop(c);
        if (!c->no_more_input && n < len) {
            char *rest = malloc(len - n);
            if (!rest) {
                conn_abort(c);
                return;
            }
            memcpy(rest, data + n, len - n);
            free(c->pending);
            c->pending = rest;
            c->pending_len = len - n;
        }
        conn_update_timer(c); /* paused inside a body: the request's clock stops */
        return;
    }
    if (e == HPE_OK) return;
    if (e >= HPE_CB_message_begin && e <= HPE_CB_chunk_complete && c->fail_status) {
        conn_fail(c, c->fail_status, c->fail_code, c->fail_msg);
    } else if (e == HPE_HEADER_OVERFLOW) {
        conn_fail(c, 431, "headers_too_large",
                  "the request line and headers exceed the server limit");
    } else {
        char msg[96];
        snprintf(msg, sizeof msg, "malformed HTTP request: %s", http_errno_description(e));
        conn_fail(c, 400, "bad_request", msg);
    }
}

/* A request that cannot be parsed further: answer it in order, then close. */
static void conn_fail(http_conn *c, int status, const char *code, const char *msg)
{
    http_req *r = c->cur;
    c->cur = NULL;
    if (!r) r = req_new(c);
    if (!r) {
        conn_abort(c);
        return;
    }
    c->fail_status = 0;
    if (!r->answered && msg) set_direct(r, status, code, msg); /* NULL: r holds its answer */
    r->routed = false;
    r->keep_alive = false;
    if (!r->pub.request_id[0]) http_server_request_id(c->s, r->pub.request_id);
    c->no_more_input = true;
    c->continue_pending = false;
    conn_read_stop(c);
    free(c->pending); /* earlier complete requests stay queued and are answered first */
    c->pending = NULL;
    c->pending_len = 0;
    queue_push(c, r);
    conn_dispatch(c);
    conn_update_timer(c);
}

/* Unpauses the parser once the queue has room and parses the input kept meanwhile. */
static void conn_resume(http_conn *c)
{
    if (!c->paused || c->no_more_input || c->closing) return;
    if (conn_must_wait(c)) return;
    http_parser_pause(&c->parser, 0);
    c->paused = false;
    char *buf = c->pending;
    size_t n = c->pending_len;
    c->pending = NULL;
    c->pending_len = 0;
    if (buf) conn_feed(c, buf, n);
    free(buf);
    if (c->tls && !c->paused && !c->closing) http_tls_pump(c); /* records read meanwhile */
    if (!c->paused && !c->no_more_input && !c->eof) conn_read_start(c);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    http_conn *c = st->data;
    if (c->closing) {
        /* nothing: the handle is on its way out */
    } else if (nread > 0) {
        if (c->lingering || c->no_more_input)
            ; /* discarded */
        else if (c->tls)
            http_tls_on_read(c, buf->base, (size_t)nread);
        else
            conn_feed(c, buf->base, (size_t)nread);
    } else if (nread == UV_EOF && !c->lingering) {
        c->eof = true;
        conn_read_stop(c);
        req_free(c->cur); /* a request cut short is dropped */
        c->cur = NULL;
        c->continue_pending = false;
        if (!c->active && !c->q_head && !c->paused)
            conn_abort(c);
        else
            conn_update_timer(c);
    } else if (nread < 0) {
        conn_abort(c);
    }
    free(buf->base);
}

/* ---- dispatch and responses ---- */

static void work_cb(uv_work_t *w)
{
    http_req *r = w->data;
    r->match.fn(r->match.ctx, &r->pub, &r->resp);
}

static void conn_write_response(http_conn *c, http_req *r);

static void after_work_cb(uv_work_t *w, int status)
{
    http_req *r = w->data;
    http_conn *c = r->c;
    c->in_pool = false;
    if (c->closing) {
        c->active = NULL;
        req_free(r);
        conn_try_free(c);
        return;
    }
    conn_write_response(c, r);
    conn_update_timer(c);
}

static void conn_dispatch(http_conn *c)
{
    if (c->active || c->closing || !c->q_head) return;
    http_req *r = queue_pop(c);
    c->active = r;
    if (r->routed) {
        r->work.data = r;
        c->in_pool = true;
        if (uv_queue_work(c->s->loop, &r->work, work_cb, after_work_cb) == 0) return;
        c->in_pool = false;
        r->routed = false;
        set_direct(r, 503, "unavailable", "cannot schedule the request");
    }
    if (r->answered) {
        conn_write_response(c, r);
        return;
    }
    if (r->direct_status == 405) mn_http_add_header(&r->resp, "allow", r->allow);
    if (r->retry_after) mn_http_add_header(&r->resp, "retry-after", "1");
    mn_http_respond_error(&r->resp, r->direct_status, r->direct_code, r->direct_msg, NULL);
    conn_write_response(c, r);
}

static void on_write(uv_write_t *w, int status)
{
    http_req *r = w->data;
    http_conn *c = r->c;
    mn_http_server_t *s = c->s;
    c->writing = false;
    c->active = NULL;
    if (s->observer)
        s->observer(s->observer_arg, r->pub.method, r->pub.route, r->status_sent,
                    (int64_t)(uv_hrtime() - r->t_start), r->pub.request_id, &r->pub);
    bool close = r->close_after;
    mn_http_stream_src_t *src = r->streaming ? r->resp.stream : NULL;
    if (src) r->resp.stream = NULL;
    req_free(r);
    if (c->closing) {
        http_stream_src_discard(src);
        conn_try_free(c);
        return;
    }
    if (status < 0) {
        http_stream_src_discard(src);
        conn_abort(c);
        return;
    }
    if (src) {
        /* nothing more is parsed; reading goes on to notice the peer leaving */
        c->no_more_input = true;
        conn_drop_unstarted(c);
        http_stream_begin(c, src);
        if (!c->closing) {
            conn_read_start(c);
            conn_update_timer(c);
        }
        return;
    }
    if (close) {
        conn_finish(c);
        return;
    }
    conn_resume(c);
    if (c->closing) return;
    conn_dispatch(c);
    /* Drained and nothing more will be parsed (peer done, close decided, or shutdown). */
    if (!c->active && !c->q_head && (c->eof || c->no_more_input)) {
        conn_finish(c);
        return;
    }
    maybe_send_continue(c);
    conn_update_timer(c);
}

static void conn_write_response(http_conn *c, http_req *r)
{
    mn_http_response_t *resp = &r->resp;
    bool stream_ok = resp->status >= 200 && resp->status < 300 && resp->status != 204 &&
                     !r->head && !c->s->stopping;
    /* a refused stream leaves resp an error answer (503/429) without the stream */
    if (resp->stream && stream_ok) (void)http_server_stream_admit(c->s, c, r);
    int st = resp->status;
    if (st < 200 || st > 599) {
        mn_log_warn("http: handler for %s returned status %d; sending 500",
                    r->pub.route ? r->pub.route : r->pub.path, st);
        st = 500;
    }
    r->status_sent = st;
    r->close_after = !r->keep_alive || c->s->stopping;
    bool no_body = st == 204 || st == 304; /* RFC 9110 §6.4.1: these never carry content */
    /* a stream: no length, the connection closes at its end (HEAD gets the head only) */
    r->streaming = resp->stream && stream_ok && !no_body;
    if (r->streaming) r->close_after = true;
    const char *ctype = resp->content_type ? resp->content_type : "application/json";
    const char *extra = resp->extra_headers ? resp->extra_headers : "";
    size_t extra_len = strlen(extra);
    bool extra_crlf = extra_len == 0 || (extra_len >= 2 && extra[extra_len - 2] == '\r' &&
                                         extra[extra_len - 1] == '\n');
    const char *conn_hdr = r->close_after ? "connection: close\r\n"
                           : r->http10    ? "connection: keep-alive\r\n"
                                          : "";
    size_t cap = 256 + strlen(ctype) + extra_len + strlen(r->pub.request_id);
    r->out_head = malloc(cap);
    if (!r->out_head) {
        c->active = NULL;
        req_free(r);
        conn_abort(c);
        return;
    }
    int n;
    if (r->streaming)
        n = snprintf(r->out_head, cap,
                     "HTTP/1.1 %d %s\r\nserver: mnemo\r\nx-request-id: %s\r\n"
                     "content-type: %s\r\n%s%s%s\r\n",
                     st, http_reason(st), r->pub.request_id, ctype, conn_hdr, extra,
                     extra_crlf ? "" : "\r\n");
    else if (no_body)
        n = snprintf(r->out_head, cap,
                     "HTTP/1.1 %d %s\r\nserver: mnemo\r\nx-request-id: %s\r\n%s%s%s\r\n", st,
                     http_reason(st), r->pub.request_id, conn_hdr, extra, extra_crlf ? "" : "\r\n");
    else
        n = snprintf(r->out_head, cap,
                     "HTTP/1.1 %d %s\r\nserver: mnemo\r\nx-request-id: %s\r\n"
                     "content-type: %s\r\ncontent-length: %zu\r\n%s%s%s\r\n",
                     st, http_reason(st), r->pub.request_id, ctype, resp->body_len, conn_hdr, extra,
                     extra_crlf ? "" : "\r\n");
    uv_buf_t bufs[2];
    unsigned nb = 0;
    bufs[nb++] = uv_buf_init(r->out_head, (unsigned)n);
    if (!no_body && !r->head && !r->streaming && resp->body_len > 0)
        bufs[nb++] = uv_buf_init(resp->body, (unsigned)resp->body_len);
    r->write.data = r;
    c->writing = true;
    if (http_conn_write(c, &r->write, bufs, nb, on_write) != 0) {
        c->writing = false;
        c->active = NULL;
        req_free(r);
        conn_abort(c);
    }
}

/* ---- transport ---- */

void http_conn_input(http_conn *c, const char *data, size_t len)
{
    if (http_conn_wants_input(c)) conn_feed(c, data, len);
}

bool http_conn_wants_input(const http_conn *c)
{
    return !c->closing && !c->lingering && !c->no_more_input && !c->paused;
}

int http_conn_write(http_conn *c, uv_write_t *w, const uv_buf_t *bufs, unsigned n, uv_write_cb cb)
{
    if (c->tls) return http_tls_write(c, w, bufs, n, cb);
    return uv_write(w, (uv_stream_t *)&c->tcp, bufs, n, cb);
}

void http_conn_abort(http_conn *c)
{
    conn_abort(c);
}

void http_conn_finish(http_conn *c)
{
    conn_finish(c);
}

/* ---- entry points from the server ---- */

void http_conn_start(http_conn *c)
{
    c->tcp.data = c;
    uv_timer_init(c->s->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    (void)uv_tcp_nodelay(&c->tcp, 1);
    conn_read_start(c);
    conn_update_timer(c);
}

void http_conn_stop(http_conn *c)
{
    if (c->closing) return;
    if (c->stream && !c->lingering) {
        http_stream_stop(c, MN_HTTP_STREAM_SHUTDOWN); /* its last message, then the end */
        return;
    }
    if (!c->active || c->lingering) {
        conn_abort(c);
        return;
    }
    c->no_more_input = true;
    conn_read_stop(c);
    conn_drop_unstarted(c);
    conn_update_timer(c);
}
