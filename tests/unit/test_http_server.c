/* HTTP server (api/http/http_*.c) over real sockets on 127.0.0.1 with an ephemeral port.
 *
 * The server's loop runs in its own thread; the test thread is a blocking client with
 * poll()-bounded reads. Stopping goes through a uv_async handle that calls
 * mn_http_server_shutdown on the loop thread; the thread then checks that uv_loop_close
 * succeeds (every handle closed) and the sanitizer build checks that nothing leaked.
 * No assertion depends on wall-clock time: timeouts are only upper bounds on waits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "mnemo/http.h"

#define WAIT_MS 10000 /* upper bound for any single wait */

/* ---- server fixture ---- */

typedef struct srv {
    uv_loop_t loop;
    uv_async_t stop_async;
    mn_http_router_t *router;
    mn_http_server_t *server;
    mn_http_server_options_t opt;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int port;
    bool started;
    mn_err start_err;
    bool done_called;
    int loop_close_rc;
    /* handler state */
    int in_flight, max_in_flight;
    bool slow_entered, slow_release;
    /* observer records */
    int n_observed;
    int obs_status[64];
    char obs_route[64][64];
    char obs_rid[64][72];
} srv;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void h_hello(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_http_respond(resp, 200, NULL, "hello", 5);
}

static void h_echo(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    /* The body is NUL-terminated right after body_len bytes. */
    if (req->body[req->body_len] != '\0') {
        mn_http_respond_error(resp, 500, "internal", "body not terminated", NULL);
        return;
    }
    mn_http_respond(resp, 200, "text/plain", req->body, req->body_len);
    mn_http_add_header(resp, "x-method", req->method);
    const char *t = mn_http_header_get(req, "x-test");
    if (t) mn_http_add_header(resp, "x-test-echo", t);
}

static void h_params(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    char out[256];
    int n = snprintf(out, sizeof out, "%s|%s|%s|%s", req->params[0], req->params[1], req->path,
                     req->route);
    mn_http_respond(resp, 200, "text/plain", out, (size_t)n);
}

static void h_query(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    char q[64];
    if (!mn_http_query_get(req, "q", q, sizeof q)) strcpy(q, "<none>");
    mn_http_respond(resp, 200, "text/plain", q, strlen(q));
}

static void h_rid(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_http_respond(resp, 200, "text/plain", req->request_id, strlen(req->request_id));
}

static void h_nocontent(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_http_respond(resp, 204, NULL, "ignored", 7);
}

/* Records how many handlers run at once; the first request of a pipeline does more work. */
static void h_seq(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    srv *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->in_flight++;
    if (s->in_flight > s->max_in_flight) s->max_in_flight = s->in_flight;
    pthread_mutex_unlock(&s->mu);
    if (strcmp(req->params[0], "1") == 0)
        for (int i = 0; i < 2000; i++)
            sched_yield();
    pthread_mutex_lock(&s->mu);
    s->in_flight--;
    pthread_mutex_unlock(&s->mu);
    mn_http_respond(resp, 200, "text/plain", req->params[0], strlen(req->params[0]));
}

/* Blocks until the test releases it (bounded by WAIT_MS). */
static void h_slow(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    srv *s = ctx;
    int64_t deadline = now_ms() + WAIT_MS;
    pthread_mutex_lock(&s->mu);
    s->slow_entered = true;
    pthread_cond_broadcast(&s->cv);
    while (!s->slow_release && now_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    mn_http_respond(resp, 200, "text/plain", "slow", 4);
}

static void observe(void *arg, const char *method, const char *route, int status,
                    int64_t duration_ns, const char *request_id, const mn_http_request_t *req)
{
    (void)req;
    srv *s = arg;
    pthread_mutex_lock(&s->mu);
    if (s->n_observed < 64 && duration_ns >= 0) {
        s->obs_status[s->n_observed] = status;
        snprintf(s->obs_route[s->n_observed], 64, "%s %s", method, route ? route : "-");
        snprintf(s->obs_rid[s->n_observed], 72, "%s", request_id);
    }
    s->n_observed++;
    pthread_mutex_unlock(&s->mu);
}

static void on_done(void *arg)
{
    srv *s = arg;
    pthread_mutex_lock(&s->mu);
    s->done_called = true;
    pthread_mutex_unlock(&s->mu);
}

static void on_stop(uv_async_t *a)
{
    srv *s = a->data;
    mn_http_server_shutdown(s->server, on_done, s);
    uv_close((uv_handle_t *)a, NULL);
}

static void *loop_thread(void *arg)
{
    srv *s = arg;
    mn_error err = {0};
    mn_err e = mn_http_server_start(&s->loop, &s->opt, s->router, &s->server, &err);
    if (e == MN_OK) mn_http_server_set_observer(s->server, observe, s);
    pthread_mutex_lock(&s->mu);
    s->start_err = e;
    s->port = e == MN_OK ? mn_http_server_port(s->server) : -1;
    s->started = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (e != MN_OK) uv_close((uv_handle_t *)&s->stop_async, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    s->loop_close_rc = uv_loop_close(&s->loop);
    return NULL;
}

static srv *srv_start(void (*tweak)(mn_http_server_options_t *))
{
    srv *s = calloc(1, sizeof *s);
    assert_non_null(s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    mn_http_server_options_default(&s->opt);
    s->opt.port = 0;
    if (tweak) tweak(&s->opt);
    s->router = mn_http_router_new();
    mn_http_router_t *r = s->router;
    assert_int_equal(mn_http_router_add(r, "GET", "/hello", h_hello, s), MN_OK);
    assert_int_equal(mn_http_router_add(r, "POST", "/echo", h_echo, s), MN_OK);
    assert_int_equal(mn_http_router_add(r, "PUT", "/echo", h_echo, s), MN_OK);
    assert_int_equal(mn_http_router_add(r, "GET", "/v1/spaces/{space}/memories/{id}", h_params, s),
                     MN_OK);
    assert_int_equal(mn_http_router_add(r, "GET", "/query", h_query, s), MN_OK);
    assert_int_equal(mn_http_router_add(r, "GET", "/rid", h_rid, s), MN_OK);
    assert_int_equal(mn_http_router_add(r, "GET", "/seq/{n}", h_seq, s), MN_OK);
    assert_int_equal(mn_http_router_add(r, "GET", "/slow", h_slow, s), MN_OK);
    assert_int_equal(mn_http_router_add(r, "DELETE", "/nocontent", h_nocontent, s), MN_OK);
    assert_int_equal(uv_loop_init(&s->loop), 0);
    assert_int_equal(uv_async_init(&s->loop, &s->stop_async, on_stop), 0);
    s->stop_async.data = s;
    assert_int_equal(pthread_create(&s->thread, NULL, loop_thread, s), 0);
    pthread_mutex_lock(&s->mu);
    while (!s->started)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    assert_int_equal(s->start_err, MN_OK);
    assert_true(s->port > 0);
    return s;
}

static void srv_request_stop(srv *s)
{
    assert_int_equal(uv_async_send(&s->stop_async), 0);
}

static void srv_join(srv *s)
{
    pthread_join(s->thread, NULL);
    assert_true(s->done_called);
    assert_int_equal(s->loop_close_rc, 0);
    mn_http_router_free(s->router);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

static void srv_stop(srv *s)
{
    srv_request_stop(s);
    srv_join(s);
}

/* ---- blocking client with bounded waits ---- */

typedef struct cli {
    int fd;
    char *buf;
    size_t len, cap;
    bool eof;
} cli;

typedef struct resp {
    int status;
    char names[32][64];
    char values[32][512];
    int n_headers;
    char *body;
    size_t body_len;
} resp;

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static cli *cli_open(srv *s)
{
    cli *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fd = tcp_connect(s->port);
    assert_true(c->fd >= 0);
    c->cap = 1 << 16;
    c->buf = malloc(c->cap);
    assert_non_null(c->buf);
    return c;
}

static void cli_close(cli *c)
{
    if (c->fd >= 0) close(c->fd);
    free(c->buf);
    free(c);
}

static void cli_send(cli *c, const char *data, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(c->fd, data + off, n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        assert_true(w > 0);
        off += (size_t)w;
    }
}

static void cli_sends(cli *c, const char *s)
{
    cli_send(c, s, strlen(s));
}

/* Reads more bytes into the buffer; false on EOF/reset or when the deadline passes. */
static bool cli_fill(cli *c, int64_t deadline)
{
    if (c->eof) return false;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) return false;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno == EINTR) continue;
        if (rc <= 0) return false;
        if (c->len == c->cap) {
            c->cap *= 2;
            c->buf = realloc(c->buf, c->cap);
            assert_non_null(c->buf);
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            c->eof = true;
            return false;
        }
        c->len += (size_t)n;
        return true;
    }
}

static void cli_consume(cli *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

static const char *resp_header(const resp *r, const char *name)
{
    for (int i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->names[i], name) == 0) return r->values[i];
    return NULL;
}

static void resp_free(resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* Reads one response. head_only: the request was HEAD (no body follows). */
static bool cli_read_response_ex(cli *c, resp *r, bool head_only)
{
    memset(r, 0, sizeof *r);
    int64_t deadline = now_ms() + WAIT_MS;
    char *end;
    for (;;) {
        end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (end) break;
        if (!cli_fill(c, deadline)) return false;
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    char *head = strndup(c->buf, head_len);
    assert_non_null(head);
    char *save = NULL;
    char *line = strtok_r(head, "\r\n", &save);
    assert_non_null(line);
    assert_int_equal(sscanf(line, "HTTP/1.1 %d", &r->status), 1);
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL && r->n_headers < 32) {
        char *colon = strchr(line, ':');
        assert_non_null(colon);
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        snprintf(r->names[r->n_headers], 64, "%s", line);
        snprintf(r->values[r->n_headers], 512, "%s", v);
        r->n_headers++;
    }
    free(head);
    cli_consume(c, head_len);
    const char *cl = resp_header(r, "content-length");
    size_t n = cl && !head_only ? strtoul(cl, NULL, 10) : 0;
    while (c->len < n)
        if (!cli_fill(c, deadline)) return false;
    r->body = malloc(n + 1);
    assert_non_null(r->body);
    memcpy(r->body, c->buf, n);
    r->body[n] = '\0';
    r->body_len = n;
    cli_consume(c, n);
    return true;
}

static bool cli_read_response(cli *c, resp *r)
{
    return cli_read_response_ex(c, r, false);
}

/* Sends req on c, reads the response into r and checks its status. */
static void cli_ask(cli *c, const char *req, resp *r, int status)
{
    cli_sends(c, req);
    assert_true(cli_read_response(c, r));
    assert_int_equal(r->status, status);
}

/* cli_ask for a response that only its status matters of. */
static void cli_expect_status(cli *c, const char *req, int status)
{
    resp r;
    cli_ask(c, req, &r, status);
    resp_free(&r);
}

/* True once the server has closed the connection (EOF or reset) within the bound. */
static bool cli_wait_eof(cli *c)
{
    int64_t deadline = now_ms() + WAIT_MS;
    while (!c->eof) {
        size_t before = c->len;
        if (!cli_fill(c, deadline) && !c->eof) return false;
        c->len = before; /* discard anything else */
    }
    return true;
}

static void expect_error_code(const resp *r, const char *code)
{
    char want[96];
    snprintf(want, sizeof want, "\"code\":\"%s\"", code);
    assert_non_null(strstr(r->body, want));
    assert_string_equal(resp_header(r, "content-type"), "application/json");
}

/* ---- tests ---- */

static void test_http_serves_get_and_echoes_post(void **state)
{
    srv *s = srv_start(NULL);
    cli *c = cli_open(s);
    resp r;
    cli_ask(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r, 200);
    assert_string_equal(r.body, "hello");
    assert_string_equal(resp_header(&r, "server"), "mnemo");
    assert_string_equal(resp_header(&r, "content-type"), "application/json");
    assert_string_equal(resp_header(&r, "content-length"), "5");
    assert_null(resp_header(&r, "connection"));
    resp_free(&r);

    static const char post[] = "POST /echo HTTP/1.1\r\nHost: x\r\nX-Test: Yes\r\n"
                               "Content-Length: 11\r\n\r\nhello\0world";
    cli_send(c, post, sizeof post - 1);
    assert_true(cli_read_response(c, &r));
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 11);
    assert_memory_equal(r.body, "hello\0world", 11);
    assert_string_equal(resp_header(&r, "content-type"), "text/plain");
    assert_string_equal(resp_header(&r, "x-method"), "POST");
    assert_string_equal(resp_header(&r, "x-test-echo"), "Yes");
    resp_free(&r);

    /* empty body and 204 without content */
    cli_ask(c, "PUT /echo HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r, 200);
    assert_int_equal(r.body_len, 0);
    resp_free(&r);
    cli_ask(c, "DELETE /nocontent HTTP/1.1\r\n\r\n", &r, 204);
    assert_null(resp_header(&r, "content-length"));
    resp_free(&r);
    /* HEAD maps to GET: headers only, the connection stays in sync */
    cli_sends(c, "HEAD /hello HTTP/1.1\r\n\r\n");
    assert_true(cli_read_response_ex(c, &r, true));
    assert_int_equal(r.status, 200);
    assert_string_equal(resp_header(&r, "content-length"), "5");
    resp_free(&r);
    cli_sends(c, "GET /hello HTTP/1.1\r\n\r\n");
    assert_true(cli_read_response(c, &r));
    assert_string_equal(r.body, "hello");
    resp_free(&r);
    cli_close(c);
    srv_stop(s);
}

static void test_http_keep_alive_serves_sequential_requests(void **state)
{
    srv *s = srv_start(NULL);
    cli *c = cli_open(s);
    for (int i = 0; i < 10; i++) {
        char req[128], body[16];
        int bl = snprintf(body, sizeof body, "n=%d", i);
        snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s", bl, body);
        resp r;
        cli_ask(c, req, &r, 200);
        assert_string_equal(r.body, body);
        resp_free(&r);
    }
    assert_false(c->eof);
    cli_close(c);
    srv_stop(s);
}

static void test_http_pipelined_responses_keep_request_order(void **state)
{
    srv *s = srv_start(NULL);
    cli *c = cli_open(s);
    cli_sends(c, "GET /seq/1 HTTP/1.1\r\n\r\n"
                 "GET /seq/2 HTTP/1.1\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nthree");
    const char *want[] = {"1", "2", "three"};
    for (int i = 0; i < 3; i++) {
        resp r;
        assert_true(cli_read_response(c, &r));
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, want[i]);
        resp_free(&r);
    }
    pthread_mutex_lock(&s->mu);
    assert_int_equal(s->max_in_flight, 1); /* one handler at a time per connection */
    pthread_mutex_unlock(&s->mu);
    cli_close(c);
    srv_stop(s);
}

/* Every byte in its own segment: URL, header and body callbacks arrive in pieces. */
static void test_http_requests_split_into_single_bytes(void **state)
{
    srv *s = srv_start(NULL);
    cli *c = cli_open(s);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    static const char reqs[] =
        "POST /echo HTTP/1.1\r\nX-Test: split value\r\nContent-Length: 6\r\n\r\nabcdef"
        "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"
        "GET /v1/spaces/%41b/memories/c%2Fd HTTP/1.1\r\n\r\n";
    for (size_t i = 0; i < sizeof reqs - 1; i++)
        cli_send(c, reqs + i, 1);
    resp r;
    assert_true(cli_read_response(c, &r));
    assert_string_equal(r.body, "abcdef");
    assert_string_equal(resp_header(&r, "x-test-echo"), "split value");
    resp_free(&r);
    assert_true(cli_read_response(c, &r));
    assert_string_equal(r.body, "xyz");
    resp_free(&r);
    assert_true(cli_read_response(c, &r));
    assert_string_equal(r.body,
                        "Ab|c/d|/v1/spaces/Ab/memories/c/d|/v1/spaces/{space}/memories/{id}");
    resp_free(&r);
    cli_close(c);
    srv_stop(s);
}

static void small_pipeline(mn_http_server_options_t *o)
{
    o->max_pipelined = 2;
}

static void test_http_pipeline_limit_pauses_and_resumes(void **state)
{
    srv *s = srv_start(small_pipeline);
    cli *c = cli_open(s);
    char all[2048] = "";
    for (int i = 1; i <= 12; i++) {
        char one[64];
        snprintf(one, sizeof one, "GET /seq/%d HTTP/1.1\r\n\r\n", i);
        strcat(all, one);
    }
    cli_sends(c, all);
    for (int i = 1; i <= 12; i++) {
        resp r;
        assert_true(cli_read_response(c, &r));
        char want[8];
        snprintf(want, sizeof want, "%d", i);
        assert_string_equal(r.body, want);
        resp_free(&r);
    }
    cli_close(c);
    srv_stop(s);
}

static void test_http_not_found_and_method_not_allowed(void **state)
{
    srv *s = srv_start(NULL);
    cli *c = cli_open(s);
    resp r;
    cli_ask(c, "GET /nope HTTP/1.1\r\n\r\n", &r, 404);
    expect_error_code(&r, "not_found");
    assert_non_null(strstr(r.body, "\"message\":"));
    resp_free(&r);
    cli_ask(c, "DELETE /hello HTTP/1.1\r\n\r\n", &r, 405);
    expect_error_code(&r, "method_not_allowed");
    assert_string_equal(resp_header(&r, "allow"), "GET, HEAD");
    resp_free(&r);
    cli_ask(c, "GET /echo HTTP/1.1\r\n\r\n", &r, 405);
    assert_string_equal(resp_header(&r, "allow"), "POST, PUT");
    resp_free(&r);
    /* still usable */
    cli_expect_status(c, "GET /hello HTTP/1.1\r\n\r\n", 200);
    cli_close(c);
    srv_stop(s);
}

static void small_limits(mn_http_server_options_t *o)
{
    o->max_body_bytes = 1024;
    o->max_header_bytes = 2048;
}

static void test_http_large_body_gets_413_and_close(void **state)
{
    srv *s = srv_start(small_limits);
    cli *c = cli_open(s);
    resp r;
    /* declared length over the limit: answered before any body byte is sent */
    cli_ask(c, "POST /echo HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n", &r, 413);
    expect_error_code(&r, "payload_too_large");
    assert_string_equal(resp_header(&r, "connection"), "close");
    resp_free(&r);
    assert_true(cli_wait_eof(c));
    cli_close(c);

    /* chunked body growing past the limit */
    c = cli_open(s);
    cli_sends(c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[700];
    memset(chunk, 'a', sizeof chunk);
    for (int i = 0; i < 2; i++) {
        cli_sends(c, "2bc\r\n");
        cli_send(c, chunk, sizeof chunk);
        cli_sends(c, "\r\n");
    }
    assert_true(cli_read_response(c, &r));
    assert_int_equal(r.status, 413);
    resp_free(&r);
    assert_true(cli_wait_eof(c));
    cli_close(c);

    /* a body exactly at the limit is fine */
    c = cli_open(s);
    char req[1200];
    int n = snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\nContent-Length: 1024\r\n\r\n");
    memset(req + n, 'b', 1024);
    cli_send(c, req, (size_t)n + 1024);
    assert_true(cli_read_response(c, &r));
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 1024);
    resp_free(&r);
    cli_close(c);
    srv_stop(s);
}

static void test_http_large_headers_get_431(void **state)
{
    srv *s = srv_start(small_limits);
    cli *c = cli_open(s);
    char big[4096];
    memset(big, 'h', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cli_sends(c, "GET /hello HTTP/1.1\r\nX-Big: ");
    cli_sends(c, big);
    resp r;
    cli_ask(c, "\r\n\r\n", &r, 431);
    expect_error_code(&r, "headers_too_large");
    assert_string_equal(resp_header(&r, "connection"), "close");
    resp_free(&r);
    assert_true(cli_wait_eof(c));
    cli_close(c);

    /* a long URL counts too */
    c = cli_open(s);
    cli_sends(c, "GET /hello?");
    cli_sends(c, big);
    cli_expect_status(c, " HTTP/1.1\r\n\r\n", 431);
    cli_close(c);
    srv_stop(s);
}

static void test_http_malformed_request_gets_400_and_close(void **state)
{
    srv *s = srv_start(NULL);
    cli *c = cli_open(s);
    resp r;
    cli_ask(c, "THIS IS NOT HTTP\r\n\r\n", &r, 400);
    expect_error_code(&r, "bad_request");
    assert_string_equal(resp_header(&r, "connection"), "close");
    assert_non_null(resp_header(&r, "x-request-id"));
    resp_free(&r);
    assert_true(cli_wait_eof(c));
    cli_close(c);

    /* a valid request before the garbage is answered first, in order */
    c = cli_open(s);
    cli_ask(c, "GET /seq/1 HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\nBad Header\r\n\r\n", &r, 200);
    assert_string_equal(r.body, "1");
    resp_free(&r);
    assert_true(cli_read_response(c, &r));
    assert_int_equal(r.status, 400);
    resp_free(&r);
    assert_true(cli_wait_eof(c));
    cli_close(c);

    /* a bad escape in the path is a 400 on an intact connection */
    c = cli_open(s);
    cli_ask(c, "GET /v1/spaces/%zz/memories/1 HTTP/1.1\r\n\r\n", &r, 400);
    assert_null(resp_header(&r, "connection"));
    resp_free(&r);
    cli_expect_status(c, "GET /hello HTTP/1.1\r\n\r\n", 200);
    cli_close(c);
    srv_stop(s);
}

static void test_http_chunked_body_is_dechunked(void **state)
{
    srv *s = srv_start(NULL);
    cli *c = cli_open(s);
    resp r;
    cli_ask(c,
            "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            &r, 200);
    assert_string_equal(r.body, "hello world");
    resp_free(&r);
    cli_close(c);
    srv_stop(s);
}

static void test_http_expect_100_continue(void **state)
{
    srv *s = srv_start(NULL);
    cli *c = cli_open(s);
    cli_sends(c, "POST /echo HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    int64_t deadline = now_ms() + WAIT_MS;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    while (c->len < sizeof cont - 1)
        assert_true(cli_fill(c, deadline));
    assert_memory_equal(c->buf, cont, sizeof cont - 1);
    cli_consume(c, sizeof cont - 1);
    resp r;
    cli_ask(c, "body", &r, 200);
    assert_string_equal(r.body, "body");
    resp_free(&r);
    cli_close(c);
    srv_stop(s);
}

static bool is_hex16(const char *s)
{
    if (strlen(s) != 16) return false;
    for (int i = 0; i < 16; i++)
        if (!isxdigit((unsigned char)s[i])) return false;
    return true;
}

static void test_http_request_id_is_echoed_or_generated(void **state)
{
    srv *s = srv_start(NULL);
    cli *c = cli_open(s);
    resp r;
    cli_sends(c, "GET /rid HTTP/1.1\r\nX-Request-Id: client-id_42\r\n\r\n");
    assert_true(cli_read_response(c, &r));
    assert_string_equal(resp_header(&r, "x-request-id"), "client-id_42");
    assert_string_equal(r.body, "client-id_42");
    resp_free(&r);

    char first[32];
    cli_sends(c, "GET /rid HTTP/1.1\r\n\r\n");
    assert_true(cli_read_response(c, &r));
    assert_true(is_hex16(resp_header(&r, "x-request-id")));
    assert_string_equal(r.body, resp_header(&r, "x-request-id"));
    snprintf(first, sizeof first, "%s", r.body);
    resp_free(&r);

    /* too long or with spaces: replaced by a generated one, distinct from the last */
    char req[256], longid[80];
    memset(longid, 'a', 65);
    longid[65] = '\0';
    snprintf(req, sizeof req, "GET /rid HTTP/1.1\r\nX-Request-Id: %s\r\n\r\n", longid);
    cli_sends(c, req);
    assert_true(cli_read_response(c, &r));
    assert_true(is_hex16(resp_header(&r, "x-request-id")));
    assert_string_not_equal(r.body, first);
    resp_free(&r);
    cli_sends(c, "GET /rid HTTP/1.1\r\nX-Request-Id: has space\r\n\r\n");
    assert_true(cli_read_response(c, &r));
    assert_true(is_hex16(resp_header(&r, "x-request-id")));
    resp_free(&r);
    /* 64 chars is still echoed; server-answered errors carry it too */
    memset(longid, 'b', 64);
    longid[64] = '\0';
    snprintf(req, sizeof req, "GET /missing HTTP/1.1\r\nX-Request-Id: %s\r\n\r\n", longid);
    cli_ask(c, req, &r, 404);
    assert_string_equal(resp_header(&r, "x-request-id"), longid);
    resp_free(&r);
    cli_close(c);
    srv_stop(s);
}

static void test_http_params_and_query_are_decoded(void **state)
{
    srv *s = srv_start(NULL);
    cli *c = cli_open(s);
    resp r;
    cli_ask(c, "GET /v1/spaces/a%20b/memories/x%2Fy?k=v HTTP/1.1\r\n\r\n", &r, 200);
    assert_string_equal(r.body,
                        "a b|x/y|/v1/spaces/a b/memories/x/y|/v1/spaces/{space}/memories/{id}");
    resp_free(&r);
    cli_sends(c, "GET /query?x=1&q=a+b%21#frag HTTP/1.1\r\n\r\n");
    assert_true(cli_read_response(c, &r));
    assert_string_equal(r.body, "a b!");
    resp_free(&r);
    /* absolute-form target */
    cli_sends(c, "GET http://example.org/query?q=abs HTTP/1.1\r\n\r\n");
    assert_true(cli_read_response(c, &r));
    assert_string_equal(r.body, "abs");
    resp_free(&r);
    cli_close(c);
    srv_stop(s);
}

static void short_idle(mn_http_server_options_t *o)
{
    o->idle_timeout_ms = 200;
    o->request_timeout_ms = 200;
}

static void test_http_idle_and_slow_connections_are_closed(void **state)
{
    srv *s = srv_start(short_idle);
    /* never sends anything */
    cli *c = cli_open(s);
    assert_true(cli_wait_eof(c));
    cli_close(c);
    /* idle after a keep-alive response */
    c = cli_open(s);
    cli_expect_status(c, "GET /hello HTTP/1.1\r\n\r\n", 200);
    assert_true(cli_wait_eof(c));
    cli_close(c);
    /* slow loris: headers never complete */
    c = cli_open(s);
    cli_sends(c, "GET /hello HTTP/1.1\r\nHost: x\r\n");
    assert_true(cli_wait_eof(c));
    cli_close(c);
    /* body never completes */
    c = cli_open(s);
    cli_sends(c, "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    assert_true(cli_wait_eof(c));
    cli_close(c);
    srv_stop(s);
}

static void test_http_graceful_shutdown_finishes_in_flight_request(void **state)
{
    srv *s = srv_start(NULL);
    cli *busy = cli_open(s);
    cli *idle = cli_open(s);
    cli_sends(idle, "GET /hello HTTP/1.1\r\n\r\n");
    resp r;
    assert_true(cli_read_response(idle, &r));
    resp_free(&r);
    /* requests queued behind the in-flight one are dropped by the shutdown */
    cli_sends(busy, "GET /slow HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n"
                    "GET /hello HTTP/1.1\r\n\r\n");
    pthread_mutex_lock(&s->mu);
    while (!s->slow_entered)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);

    srv_request_stop(s);
    /* the idle connection is closed at once, the listener stops accepting */
    assert_true(cli_wait_eof(idle));
    cli_close(idle);
    int64_t deadline = now_ms() + WAIT_MS;
    int fd;
    while ((fd = tcp_connect(s->port)) >= 0 && now_ms() < deadline) {
        close(fd);
        sched_yield();
    }
    assert_true(fd < 0);
    pthread_mutex_lock(&s->mu);
    assert_false(s->done_called);
    pthread_mutex_unlock(&s->mu);

    pthread_mutex_lock(&s->mu);
    s->slow_release = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    assert_true(cli_read_response(busy, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "slow");
    assert_string_equal(resp_header(&r, "connection"), "close");
    resp_free(&r);
    assert_true(cli_wait_eof(busy));
    assert_int_equal(busy->len, 0);
    cli_close(busy);
    srv_join(s);
}

static void test_http_http10_closes_unless_keep_alive(void **state)
{
    srv *s = srv_start(NULL);
    cli *c = cli_open(s);
    resp r;
    cli_ask(c, "GET /hello HTTP/1.0\r\n\r\n", &r, 200);
    assert_string_equal(resp_header(&r, "connection"), "close");
    resp_free(&r);
    assert_true(cli_wait_eof(c));
    cli_close(c);

    c = cli_open(s);
    cli_sends(c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_true(cli_read_response(c, &r));
    assert_string_equal(resp_header(&r, "connection"), "keep-alive");
    resp_free(&r);
    cli_sends(c, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\nGET /hello HTTP/1.1\r\n\r\n");
    assert_true(cli_read_response(c, &r));
    assert_string_equal(resp_header(&r, "connection"), "close");
    resp_free(&r);
    assert_true(cli_wait_eof(c)); /* the request after "close" is not answered */
    assert_int_equal(c->len, 0);
    cli_close(c);
    srv_stop(s);
}

static void one_conn(mn_http_server_options_t *o)
{
    o->max_connections = 1;
}

static void test_http_connections_over_the_limit_are_refused(void **state)
{
    srv *s = srv_start(one_conn);
    cli *a = cli_open(s);
    cli_sends(a, "GET /hello HTTP/1.1\r\n\r\n");
    resp r;
    assert_true(cli_read_response(a, &r)); /* a is accepted and counted */
    resp_free(&r);
    cli *b = cli_open(s);
    cli_sends(b, "GET /hello HTTP/1.1\r\n\r\n");
    /* b gets a 503 (best effort) and is closed */
    if (cli_read_response(b, &r)) {
        assert_int_equal(r.status, 503);
        resp_free(&r);
    }
    assert_true(cli_wait_eof(b));
    cli_close(b);
    cli_expect_status(a, "GET /hello HTTP/1.1\r\n\r\n", 200);
    cli_close(a);
    srv_stop(s);
}

static void test_http_observer_records(void **state)
{
    srv *s = srv_start(NULL);
    cli *c = cli_open(s);
    resp r;
    cli_sends(c, "GET /seq/7 HTTP/1.1\r\nX-Request-Id: obs-1\r\n\r\n"
                 "GET /none HTTP/1.1\r\nX-Request-Id: obs-2\r\n\r\n");
    assert_true(cli_read_response(c, &r));
    resp_free(&r);
    assert_true(cli_read_response(c, &r));
    resp_free(&r);
    /* the observer runs after the write completes: wait for both records */
    int64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int n = s->n_observed;
        pthread_mutex_unlock(&s->mu);
        if (n >= 2 || now_ms() > deadline) break;
        sched_yield();
    }
    pthread_mutex_lock(&s->mu);
    assert_int_equal(s->n_observed, 2);
    assert_int_equal(s->obs_status[0], 200);
    assert_string_equal(s->obs_route[0], "GET /seq/{n}");
    assert_string_equal(s->obs_rid[0], "obs-1");
    assert_int_equal(s->obs_status[1], 404);
    assert_string_equal(s->obs_route[1], "GET -");
    assert_string_equal(s->obs_rid[1], "obs-2");
    pthread_mutex_unlock(&s->mu);
    cli_close(c);
    srv_stop(s);
}

static void test_http_start_reports_port_in_use(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    mn_http_router_t *router = mn_http_router_new();
    mn_http_server_options_t o;
    mn_http_server_options_default(&o);
    o.port = 0;
    mn_http_server_t *a = NULL, *b = NULL;
    mn_error err = {0};
    assert_int_equal(mn_http_server_start(&loop, &o, router, &a, &err), MN_OK);
    o.port = mn_http_server_port(a);
    assert_int_equal(mn_http_server_start(&loop, &o, router, &b, &err), MN_ERR_IO);
    assert_null(b);
    assert_true(strlen(err.message) > 0);
    o.bind = "not-an-address";
    assert_int_equal(mn_http_server_start(&loop, &o, router, &b, &err), MN_ERR_INVALID);
    mn_http_server_shutdown(a, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    mn_http_router_free(router);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as bin/mnemo does: writes to a closed peer return EPIPE */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_serves_get_and_echoes_post),
        cmocka_unit_test(test_http_keep_alive_serves_sequential_requests),
        cmocka_unit_test(test_http_pipelined_responses_keep_request_order),
        cmocka_unit_test(test_http_pipeline_limit_pauses_and_resumes),
        cmocka_unit_test(test_http_requests_split_into_single_bytes),
        cmocka_unit_test(test_http_not_found_and_method_not_allowed),
        cmocka_unit_test(test_http_large_body_gets_413_and_close),
        cmocka_unit_test(test_http_large_headers_get_431),
        cmocka_unit_test(test_http_malformed_request_gets_400_and_close),
        cmocka_unit_test(test_http_chunked_body_is_dechunked),
        cmocka_unit_test(test_http_expect_100_continue),
        cmocka_unit_test(test_http_request_id_is_echoed_or_generated),
        cmocka_unit_test(test_http_params_and_query_are_decoded),
        cmocka_unit_test(test_http_idle_and_slow_connections_are_closed),
        cmocka_unit_test(test_http_graceful_shutdown_finishes_in_flight_request),
        cmocka_unit_test(test_http_http10_closes_unless_keep_alive),
        cmocka_unit_test(test_http_connections_over_the_limit_are_refused),
        cmocka_unit_test(test_http_observer_records),
        cmocka_unit_test(test_http_start_reports_port_in_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
