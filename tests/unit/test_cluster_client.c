/* cluster_client: the blocking HTTP/1.1 client against a tiny server in a thread of this test
 * (Content-Length, chunked and close-delimited answers, a silent peer, an answer over the
 * size bound, garbage, a refused connection), and internal-hop signatures (a signed hop
 * verifies; a changed path, query, method, time, identity, body or key does not; a hop
 * outside the clock window does not). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/cluster_client.h"
#include "api/cluster_client_pool.h"
#include "mnemo/util.h"
#include "testutil.h"

/* ---- the tiny server: one connection, one scripted answer ---- */

typedef struct tiny {
    int lfd, port;
    const char *const *pieces; /* the answer, written piece by piece; NULL: never answer */
    bool hold;                 /* keep the connection open after the answer */
    char got[8192];            /* the request as read (head and body) */
    size_t got_len;
    pthread_t th;
} tiny;

static void read_request(tiny *t, int fd)
{
    for (;;) {
        ssize_t k = recv(fd, t->got + t->got_len, sizeof t->got - 1 - t->got_len, 0);
        if (k <= 0) break;
        t->got_len += (size_t)k;
        t->got[t->got_len] = 0;
        char *end = strstr(t->got, "\r\n\r\n");
        if (!end) continue;
        const char *cl = strcasestr(t->got, "content-length:");
        size_t want = (size_t)(end + 4 - t->got) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
        if (t->got_len >= want) break;
    }
}

static void *serve(void *arg)
{
    tiny *t = arg;
    int fd = accept(t->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    read_request(t, fd);
    if (!t->pieces) {
        char b[64];
        while (recv(fd, b, sizeof b, 0) > 0) {
        }
    }
    for (const char *const *p = t->pieces; p && *p; p++) {
        if (send(fd, *p, strlen(*p), MSG_NOSIGNAL) < 0) break;
        usleep(2000); /* separate segments: the client must join them */
    }
    if (t->hold) {
        char b[64];
        while (recv(fd, b, sizeof b, 0) > 0) {
        }
    }
    close(fd);
    return NULL;
}

static void tiny_start(tiny *t, const char *const *pieces, bool hold)
{
    memset(t, 0, sizeof *t);
    t->pieces = pieces;
    t->hold = hold;
    t->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(t->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(t->lfd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t sl = sizeof a;
    assert_int_equal(getsockname(t->lfd, (struct sockaddr *)&a, &sl), 0);
    t->port = ntohs(a.sin_port);
    assert_int_equal(listen(t->lfd, 4), 0);
    assert_int_equal(pthread_create(&t->th, NULL, serve, t), 0);
}

static void tiny_stop(tiny *t)
{
    cl__pool_drop(NULL); /* a kept connection would hold a `hold` server open */
    pthread_join(t->th, NULL);
    close(t->lfd);
}

static cl_http_fail call(tiny *t, const cl_http_opts *o, const char *body, cl_http_resp *out,
                         mn_error *err)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", t->port);
    cl_http_header h[] = {{"x-test", "yes"}, {"content-type", "application/json"}};
    cl_http_req r = {.method = body ? "POST" : "GET",
                     .addr = addr,
                     .target = "/v1/x?a=b",
                     .headers = h,
                     .n_headers = 2,
                     .body = body,
                     .body_len = body ? strlen(body) : 0};
    return cl_http_do(&r, o, out, err);
}

/* One exchange with a server that answers pieces (t keeps what it got). */
static cl_http_fail exchange(tiny *t, const char *const *pieces, bool hold, const cl_http_opts *o,
                             const char *body, cl_http_resp *out)
{
    mn_error err = {0};
    tiny_start(t, pieces, hold);
    cl_http_fail f = call(t, o, body, out, &err);
    assert_true(f == CL_HTTP_OK ? err.code == 0 : err.code == MN_ERR_UNAVAILABLE);
    if (f != CL_HTTP_OK) assert_null(out->body);
    tiny_stop(t);
    return f;
}

static void test_client_reads_a_content_length_answer(void **state)
{
    (void)state;
    static const char *const answer[] = {"HTTP/1.1 201 Created\r\nContent-Type: applic",
                                         "ation/json\r\nContent-Length: 11\r\n\r\n{\"ok\"",
                                         ":true}", NULL};
    tiny t;
    cl_http_opts o;
    cl_http_opts_default(&o);
    cl_http_resp r;
    assert_int_equal(exchange(&t, answer, false, &o, "{\"text\":\"hi\"}", &r), CL_HTTP_OK);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.content_type, "application/json");
    assert_int_equal(r.body_len, 11);
    assert_string_equal(r.body, "{\"ok\":true}");
    cl_http_resp_free(&r);
    /* what the server got: the request line, our headers, the length and the body */
    assert_non_null(strstr(t.got, "POST /v1/x?a=b HTTP/1.1\r\n"));
    assert_non_null(strstr(t.got, "x-test: yes\r\n"));
    assert_non_null(strstr(t.got, "Content-Length: 13\r\n"));
    assert_non_null(strstr(t.got, "\r\n\r\n{\"text\":\"hi\"}"));
}

static void test_client_decodes_a_chunked_answer(void **state)
{
    (void)state;
    static const char *const answer[] = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5",
                                         "\r\nhello\r\n6;ext=1\r\n world\r\n", "0\r\n\r\n", NULL};
    tiny t;
    cl_http_opts o;
    cl_http_opts_default(&o);
    cl_http_resp r;
    /* held open: the end is the last chunk, not the close */
    assert_int_equal(exchange(&t, answer, true, &o, NULL, &r), CL_HTTP_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello world");
    assert_null(r.content_type);
    cl_http_resp_free(&r);
}

static void test_client_reads_to_the_close_without_a_length(void **state)
{
    (void)state;
    static const char *const answer[] = {"HTTP/1.0 503 Service Unavailable\r\n\r\nuntil ",
                                         "the close", NULL};
    tiny t;
    cl_http_opts o;
    cl_http_opts_default(&o);
    cl_http_resp r;
    assert_int_equal(exchange(&t, answer, false, &o, NULL, &r), CL_HTTP_OK);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "until the close");
    cl_http_resp_free(&r);
}

static void test_client_reads_no_body_for_head_and_204(void **state)
{
    (void)state;
    static const char *const answer[] = {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", NULL};
    static const char *const none[] = {"HTTP/1.1 204 No Content\r\n\r\n", NULL};
    tiny t;
    cl_http_opts o;
    cl_http_opts_default(&o);
    o.io_timeout_ms = 2000;
    cl_http_resp r;
    char addr[32];
    tiny_start(&t, answer, true); /* held open: the answer's end is its head */
    snprintf(addr, sizeof addr, "127.0.0.1:%d", t.port);
    cl_http_req rq = {.method = "HEAD", .addr = addr, .target = "/"};
    mn_error err = {0};
    assert_int_equal(cl_http_do(&rq, &o, &r, &err), CL_HTTP_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    char *cl = cl_http_resp_header(&r, "content-length");
    assert_string_equal(cl, "5");
    free(cl);
    assert_null(cl_http_resp_header(&r, "x-absent"));
    cl_http_resp_free(&r);
    tiny_stop(&t);
    assert_int_equal(exchange(&t, none, true, &o, NULL, &r), CL_HTTP_OK);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body_len, 0);
    cl_http_resp_free(&r);
}

static void test_client_times_out_on_a_silent_peer(void **state)
{
    (void)state;
    tiny t;
    cl_http_opts o;
    cl_http_opts_default(&o);
    o.io_timeout_ms = 100;
    cl_http_resp r;
    /* the server never answers: it reads until we are gone */
    assert_int_equal(exchange(&t, NULL, false, &o, "{}", &r), CL_HTTP_TIMEOUT);
}

static void test_client_refuses_answers_past_its_bounds(void **state)
{
    (void)state;
    static const char *const big[] = {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
                                      NULL};
    static const char *const big_chunk[] = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\n", NULL};
    static const char *const garbage[] = {"SMTP ready\r\n\r\n", NULL};
    static const char *const bad_len[] = {"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", NULL};
    static char head[600]; /* a head longer than max_header_bytes */
    snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nX-Long: %0500d\r\n\r\n", 0);
    const char *const long_head[] = {head, NULL};
    const char *const *cases[] = {big, big_chunk, garbage, bad_len, long_head};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tiny t;
        cl_http_opts o;
        cl_http_opts_default(&o);
        o.max_body_bytes = 10;
        o.max_header_bytes = 256;
        cl_http_resp r;
        assert_int_equal(exchange(&t, cases[i], false, &o, NULL, &r), CL_HTTP_PROTOCOL);
    }
}

static void test_client_reports_connect_failures(void **state)
{
    (void)state;
    /* a port nobody listens on: bound, then closed */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t sl = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &sl);
    close(fd);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
    cl_http_opts o;
    cl_http_opts_default(&o);
    cl_http_req rq = {.method = "GET", .addr = addr, .target = "/"};
    cl_http_resp r;
    mn_error err = {0};
    assert_int_equal(cl_http_do(&rq, &o, &r, &err), CL_HTTP_CONNECT);
    const char *bad_addrs[] = {"nocolon", "127.0.0.1:", "127.0.0.1:12x", "[::1:80", ":80"};
    for (size_t i = 0; i < sizeof bad_addrs / sizeof bad_addrs[0]; i++) {
        rq.addr = bad_addrs[i];
        assert_int_equal(cl_http_do(&rq, &o, &r, &err), CL_HTTP_BAD_ADDR);
    }
}

/* ---- hop signatures ---- */

typedef struct hop_req {
    mn_http_request_t req;
    mn_http_header_t h[CL_HOP_HEADERS];
    cl_hop_identity id; /* the signature's headers point into it */
} hop_req;

static void make_hop(hop_req *hr, cl_hop_sig *s, const char *key, const char *method,
                     const char *path, const char *query, const char *body, int64_t now_ms)
{
    memset(hr, 0, sizeof *hr);
    cl_hop_identity *id = &hr->id;
    snprintf(id->node, sizeof id->node, "node-a");
    snprintf(id->role, sizeof id->role, "write");
    snprintf(id->spaces, sizeof id->spaces, "alpha,beta");
    assert_true(cl_hop_encode_key("writer one", id->key));
    assert_string_equal(id->key, "writer%20one");
    cl_hop_sign(key, id, method, path, query, body, strlen(body), now_ms, s);
    for (int i = 0; i < CL_HOP_HEADERS; i++) {
        hr->h[i].name = (char *)s->headers[i].name;
        hr->h[i].value = (char *)s->headers[i].value;
    }
    hr->req.method = method;
    hr->req.path = path;
    hr->req.query = query;
    hr->req.headers = hr->h;
    hr->req.n_headers = CL_HOP_HEADERS;
    hr->req.body = body;
    hr->req.body_len = strlen(body);
}

static mn_err verify(const hop_req *hr, const char *key, int64_t now_ms)
{
    cl_hop_identity id;
    mn_error err = {0};
    mn_err rc = cl_hop_verify_head(key, &hr->req, now_ms, &id, &err);
    if (!rc) rc = cl_hop_verify_body(&hr->req, &err);
    if (!rc) {
        assert_string_equal(id.node, "node-a");
        assert_string_equal(id.role, "write");
        assert_string_equal(id.spaces, "alpha,beta");
    }
    return rc;
}

static void test_hop_signature_verifies(void **state)
{
    (void)state;
    int64_t now = 1800000000000;
    hop_req hr;
    cl_hop_sig s;
    make_hop(&hr, &s, "k3y", "POST", "/v1/spaces/alpha/memories", "x=1", "{\"text\":\"a\"}", now);
    assert_true(cl_hop_present(&hr.req));
    assert_int_equal(verify(&hr, "k3y", now), MN_OK);
    assert_int_equal(verify(&hr, "k3y", now + CL_HOP_SKEW_MS), MN_OK);
    /* the same request signed again: another nonce, another signature */
    hop_req again;
    cl_hop_sig s2;
    make_hop(&again, &s2, "k3y", "POST", "/v1/spaces/alpha/memories", "x=1", "{\"text\":\"a\"}",
             now);
    assert_string_not_equal(s.sig, s2.sig);
    assert_string_not_equal(s.nonce, s2.nonce);
    /* no hop headers: not a hop */
    hr.req.n_headers = 0;
    assert_false(cl_hop_present(&hr.req));
}

static void test_hop_refuses_tampering(void **state)
{
    (void)state;
    int64_t now = 1800000000000;
    hop_req hr;
    cl_hop_sig s;
    const char *body = "{\"text\":\"a\"}";
    make_hop(&hr, &s, "k3y", "POST", "/v1/spaces/alpha/memories", "x=1", body, now);
    hr.req.path = "/v1/spaces/gamma/memories";
    assert_int_equal(verify(&hr, "k3y", now), MN_ERR_INVALID);
    hr.req.path = "/v1/spaces/alpha/memories";
    hr.req.query = "x=2";
    assert_int_equal(verify(&hr, "k3y", now), MN_ERR_INVALID);
    hr.req.query = "x=1";
    hr.req.method = "DELETE";
    assert_int_equal(verify(&hr, "k3y", now), MN_ERR_INVALID);
    hr.req.method = "POST";
    hr.req.body = "{\"text\":\"b\"}";
    assert_int_equal(verify(&hr, "k3y", now), MN_ERR_INVALID);
    hr.req.body = body;
    assert_int_equal(verify(&hr, "k3y", now), MN_OK);
    assert_int_equal(verify(&hr, "other", now), MN_ERR_INVALID);
    /* a changed header: time, role, spaces, the claimed digest */
    const struct {
        int idx;
        const char *value;
    } changes[] = {{1, "1800000000001"},
                   {2, "admin"},
                   {4, "*"},
                   {3, "root"},
                   {5, "0000000000000000000000000000000000000000000000000000000000000000"},
                   {7, "0123456789abcdef"}};
    for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++) {
        char *keep = hr.h[changes[i].idx].value;
        hr.h[changes[i].idx].value = (char *)changes[i].value;
        assert_int_equal(verify(&hr, "k3y", now), MN_ERR_INVALID);
        hr.h[changes[i].idx].value = keep;
    }
    /* a missing header */
    hr.req.n_headers = CL_HOP_HEADERS - 1;
    assert_int_equal(verify(&hr, "k3y", now), MN_ERR_INVALID);
}

static void test_hop_refuses_old_and_future_times(void **state)
{
    (void)state;
    int64_t now = 1800000000000;
    hop_req hr;
    cl_hop_sig s;
    make_hop(&hr, &s, "k3y", "GET", "/v1/spaces/alpha/memories", "", "", now);
    assert_int_equal(verify(&hr, "k3y", now), MN_OK);
    assert_int_equal(verify(&hr, "k3y", now + CL_HOP_SKEW_MS + 1), MN_ERR_INVALID);
    assert_int_equal(verify(&hr, "k3y", now - CL_HOP_SKEW_MS - 1), MN_ERR_INVALID);
}

static void test_hop_key_names_are_encoded(void **state)
{
    (void)state;
    char out[CL_HOP_KEY_MAX + 1];
    assert_true(cl_hop_encode_key("", out));
    assert_string_equal(out, "-");
    assert_true(cl_hop_encode_key("-", out));
    assert_string_equal(out, "%2D");
    assert_true(cl_hop_encode_key("a\r\nb", out));
    assert_string_equal(out, "a%0D%0Ab");
    char longname[200];
    memset(longname, '\n', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    assert_false(cl_hop_encode_key(longname, out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_reads_a_content_length_answer),
        cmocka_unit_test(test_client_decodes_a_chunked_answer),
        cmocka_unit_test(test_client_reads_to_the_close_without_a_length),
        cmocka_unit_test(test_client_reads_no_body_for_head_and_204),
        cmocka_unit_test(test_client_times_out_on_a_silent_peer),
        cmocka_unit_test(test_client_refuses_answers_past_its_bounds),
        cmocka_unit_test(test_client_reports_connect_failures),
        cmocka_unit_test(test_hop_signature_verifies),
        cmocka_unit_test(test_hop_refuses_tampering),
        cmocka_unit_test(test_hop_refuses_old_and_future_times),
        cmocka_unit_test(test_hop_key_names_are_encoded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
