/* cluster_client's kept connections (cluster_client_pool.c) against a scripted server in a
 * thread of this test, which counts the connections it accepts: a clean answer leaves its
 * connection idle and the next exchange with the same address takes it; `Connection: close`,
 * an HTTP/1.0 answer or an answer read to the close are not kept; a kept connection the peer
 * closed is noticed before use; one that fails before any answer is tried once more on a new
 * connection for an idempotent method, and not for a POST. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/cluster_client.h"
#include "api/cluster_client_pool.h"

#define OK_ANSWER "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
#define CONNS_MAX 4
#define STEPS_MAX 4

/* What the server does on its c-th connection (n_conns of them): for each step, read a
 * request and write the step's answer; a NULL step reads the request and closes without
 * answering (a peer closing as a request goes out); "" closes. */
typedef struct script {
    int n_conns;
    const char *step[CONNS_MAX][STEPS_MAX + 1];
    int lfd, port;
    atomic_int accepted, requests, closed;
    pthread_t th;
} script;

/* Reads one request head (our client sends no body on GET); false when the peer closed. */
static bool read_head(int fd)
{
    char b[4096];
    size_t n = 0;
    while (n < sizeof b - 1) {
        ssize_t k = recv(fd, b + n, 1, 0);
        if (k <= 0) return false;
        n += (size_t)k;
        b[n] = 0;
        if (n >= 4 && !memcmp(b + n - 4, "\r\n\r\n", 4)) return true;
    }
    return false;
}

static void *serve(void *arg)
{
    script *s = arg;
    for (int c = 0; c < s->n_conns; c++) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) return NULL;
        atomic_fetch_add(&s->accepted, 1);
        for (int i = 0; i <= STEPS_MAX; i++) {
            const char *a = s->step[c][i];
            if (a && !*a) break;
            if (!read_head(fd)) break;
            atomic_fetch_add(&s->requests, 1);
            if (!a) break;
            send(fd, a, strlen(a), MSG_NOSIGNAL);
        }
        close(fd);
        atomic_fetch_add(&s->closed, 1);
    }
    return NULL;
}

static void start(script *s)
{
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t sl = sizeof a;
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &sl), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(listen(s->lfd, 8), 0);
    assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
}

static void stop(script *s)
{
    cl__pool_drop(NULL);
    pthread_join(s->th, NULL);
    close(s->lfd);
}

static cl_http_fail call(const script *s, const char *method, int *status)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s->port);
    cl_http_req r = {.method = method, .addr = addr, .target = "/x"};
    if (!strcmp(method, "POST")) r.body = "{}", r.body_len = 2;
    cl_http_opts o;
    cl_http_opts_default(&o);
    o.io_timeout_ms = 2000;
    cl_http_resp out;
    mn_error err = {0};
    cl_http_fail f = cl_http_do(&r, &o, &out, &err);
    *status = out.status;
    cl_http_resp_free(&out);
    return f;
}

static void test_pool_keeps_a_clean_connection_for_the_next_exchange(void **state)
{
    (void)state;
    static const char *const chunked =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    script s = {.n_conns = 1, .step = {{OK_ANSWER, chunked, OK_ANSWER, ""}}};
    start(&s);
    int st = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(call(&s, i == 1 ? "POST" : "GET", &st), CL_HTTP_OK);
        assert_int_equal(st, 200);
        assert_int_equal(cl__pool_idle(), 1);
    }
    assert_int_equal(atomic_load(&s.accepted), 1); /* three exchanges, one connection */
    stop(&s);
}

static void test_pool_keeps_no_connection_the_peer_will_close(void **state)
{
    (void)state;
    static const char *const close_h =
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
    static const char *const http10 = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
    static const char *const to_close = "HTTP/1.1 200 OK\r\n\r\nok";
    script s = {.n_conns = 4,
                .step = {{close_h, ""}, {http10, ""}, {to_close, ""}, {OK_ANSWER, ""}}};
    start(&s);
    int st = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(call(&s, "GET", &st), CL_HTTP_OK);
        assert_int_equal(cl__pool_idle(), i == 3 ? 1 : 0);
    }
    assert_int_equal(atomic_load(&s.accepted), 4);
    stop(&s);
}

/* The server answers once, then closes the connection after it read the next request
 * without answering: the race of a peer closing an idle connection as a request goes out. */
static void test_pool_tries_an_idempotent_request_once_more(void **state)
{
    (void)state;
    script s = {.n_conns = 2, .step = {{OK_ANSWER, NULL}, {OK_ANSWER, ""}}};
    start(&s);
    int st = 0;
    assert_int_equal(call(&s, "GET", &st), CL_HTTP_OK);
    assert_int_equal(call(&s, "GET", &st), CL_HTTP_OK); /* the kept one fails, a new one */
    assert_int_equal(st, 200);
    assert_int_equal(atomic_load(&s.accepted), 2);
    stop(&s);
}

/* The server closes its side after one answer, before the next request: the idle
 * connection is found broken when taken, closed there, and the request goes out on a new
 * one. (The pool once closed it and left its number with the caller, who sent on it and
 * closed it again: by then, in a server, another thread's file.) */
static void test_pool_an_idle_connection_found_closed_is_not_used(void **state)
{
    (void)state;
    script s = {.n_conns = 2, .step = {{OK_ANSWER, ""}, {OK_ANSWER, ""}}};
    start(&s);
    int st = 0;
    assert_int_equal(call(&s, "POST", &st), CL_HTTP_OK);
    assert_int_equal(cl__pool_idle(), 1);
    for (int i = 0; i < 2000 && atomic_load(&s.closed) < 1; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&s.closed), 1);
    int fd = 7;
    void *ssl = &fd;
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s.port);
    assert_false(cl__pool_take(addr, NULL, &fd, &ssl)); /* broken: closed, not handed out */
    assert_int_equal(fd, -1);
    assert_null(ssl);
    assert_int_equal(cl__pool_idle(), 0);
    assert_int_equal(call(&s, "POST", &st), CL_HTTP_OK); /* a new connection */
    assert_int_equal(st, 200);
    assert_int_equal(atomic_load(&s.accepted), 2);
    stop(&s);
}

static void test_pool_does_not_send_a_post_twice(void **state)
{
    (void)state;
    script s = {.n_conns = 2, .step = {{OK_ANSWER, NULL}, {OK_ANSWER, ""}}};
    start(&s);
    int st = 0;
    assert_int_equal(call(&s, "GET", &st), CL_HTTP_OK);
    assert_int_equal(call(&s, "POST", &st), CL_HTTP_BROKEN); /* the peer may have run it */
    assert_int_equal(call(&s, "POST", &st), CL_HTTP_OK);     /* the next one connects anew */
    assert_int_equal(atomic_load(&s.accepted), 2);
    assert_int_equal(atomic_load(&s.requests), 3); /* the POST reached the server once each */
    stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_keeps_a_clean_connection_for_the_next_exchange),
        cmocka_unit_test(test_pool_keeps_no_connection_the_peer_will_close),
        cmocka_unit_test(test_pool_tries_an_idempotent_request_once_more),
        cmocka_unit_test(test_pool_does_not_send_a_post_twice),
        cmocka_unit_test(test_pool_an_idle_connection_found_closed_is_not_used),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
