/* A blocking HTTP/1.1 client for the thread pool: one request at a time on a connection,
 * over TLS when the caller gives a context (cluster_client_tls.c), every step under a
 * timeout, the answer read by Content-Length, chunked transfer coding, or up to the close
 * (RFC 9112 §6.3), within size bounds. Non-blocking sockets waited on with poll(2), so no
 * step can hang past its timeout or the exchange's deadline.
 *
 * Connections persist (RFC 9112 §9.3): one whose answer ended cleanly (framed by its
 * length, read to its last byte, no `Connection: close`) goes to the idle pool
 * (cluster_client_pool.c) for the next exchange with the same node. A kept connection the
 * peer closed meanwhile fails before any answer; an idempotent request (GET, HEAD, PUT,
 * DELETE, OPTIONS: RFC 9110 §9.2.2) is then sent once more on a new connection, and any
 * other fails as before (CL_HTTP_BROKEN: the peer may have run it). Retries of other
 * kinds and the circuit breaker are the caller's (api/cluster_route.c). */
#include "cluster_client.h"
#include "cluster_client_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mnemo/assert.h"
#include "mnemo/util.h"

#define HOST_MAX 256

void cl_http_opts_default(cl_http_opts *o)
{
    o->connect_timeout_ms = 1000;
    o->io_timeout_ms = 5000;
    o->total_timeout_ms = 10000;
    o->max_header_bytes = 16384;
    o->max_body_bytes = (size_t)64 << 20;
}

void cl_http_resp_free(cl_http_resp *r)
{
    free(r->content_type);
    free(r->body);
    free(r->head);
    memset(r, 0, sizeof *r);
}

const char *cl_http_fail_name(cl_http_fail f)
{
    switch (f) {
    case CL_HTTP_OK:
        return "ok";
    case CL_HTTP_CONNECT:
        return "connect";
    case CL_HTTP_TIMEOUT:
        return "timeout";
    case CL_HTTP_BROKEN:
        return "broken";
    case CL_HTTP_PROTOCOL:
        return "protocol";
    case CL_HTTP_BAD_ADDR:
        return "bad_addr";
    }
    return "?";
}

/* ---- one exchange ---- */

typedef struct conn {
    int fd;
    SSL *ssl;            /* HTTPS: the session over fd; NULL: plain */
    int64_t deadline_ns; /* monotonic: the whole exchange */
    int64_t io_ms;
    const cl_http_opts *o;
    char *buf; /* what was read and not consumed yet: buf[pos..len) */
    size_t len, pos, cap;
    bool clean_end; /* the answer's body ended where the bytes read end: reusable */
    mn_error *err;
} conn;

static cl_http_fail fail(conn *c, cl_http_fail f, const char *what)
{
    mn_error_set(c->err, MN_ERR_UNAVAILABLE, "%s", what);
    return f;
}

/* Waits until fd is ready for events within the step and exchange bounds: 1 ready,
 * 0 timed out, -1 failed. */
static int wait_fd(conn *c, short events, int64_t step_ms)
{
    for (;;) {
        int64_t left_ms = (c->deadline_ns - mn_time_mono_ns()) / 1000000;
        if (left_ms <= 0) return 0;
        int ms = (int)(left_ms < step_ms ? left_ms : step_ms);
        struct pollfd p = {.fd = c->fd, .events = events};
        int n = poll(&p, 1, ms);
        if (n > 0) return 1;
        if (n == 0) return 0; /* the step's or the exchange's time is up */
        if (errno != EINTR) return -1;
    }
}

static bool split_addr(const char *addr, char *host, char *port)
{
    const char *colon;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= HOST_MAX) return false;
        memcpy(host, addr + 1, (size_t)(end - addr - 1));
        host[end - addr - 1] = 0;
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= HOST_MAX || colon == addr) return false;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = 0;
    }
    size_t pl = strlen(colon + 1);
    if (pl == 0 || pl > 5 || strspn(colon + 1, "0123456789") != pl) return false;
    memcpy(port, colon + 1, pl + 1);
    return true;
}

/* A non-blocking connect to one address within connect_timeout_ms: 0 or -1. */
static int connect_one(conn *c, const struct addrinfo *ai)
{
    c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) return -1;
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == 0) return 0;
    int soerr = errno;
    if (soerr == EINPROGRESS && wait_fd(c, POLLOUT, c->o->connect_timeout_ms) == 1) {
        socklen_t sl = sizeof soerr;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) soerr = errno;
        if (soerr == 0) return 0;
    }
    close(c->fd);
    c->fd = -1;
    return -1;
}

static cl_http_fail open_conn(conn *c, const char *addr)
{
    char host[HOST_MAX], port[8];
    if (!split_addr(addr, host, port)) return fail(c, CL_HTTP_BAD_ADDR, "bad address");
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
        return fail(c, CL_HTTP_BAD_ADDR, "cannot resolve the address");
    for (const struct addrinfo *ai = res; ai && c->fd < 0; ai = ai->ai_next)
        connect_one(c, ai);
    freeaddrinfo(res);
    if (c->fd < 0) return fail(c, CL_HTTP_CONNECT, "cannot connect");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return CL_HTTP_OK;
}

/* What an SSL call that did not complete waits for: POLLIN or POLLOUT, or 0 (it failed). */
static short ssl_wants(conn *c, int rc)
{
    int e = SSL_get_error(c->ssl, rc);
    return e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
}

/* The TLS handshake on the connected fd, within connect_timeout_ms. */
static cl_http_fail tls_open(conn *c, SSL_CTX *ctx)
{
    if (!(c->ssl = SSL_new(ctx)) || SSL_set_fd(c->ssl, c->fd) != 1)
        return fail(c, CL_HTTP_CONNECT, "TLS: out of memory");
    for (;;) {
        ERR_clear_error();
        int k = SSL_connect(c->ssl);
        if (k == 1) return CL_HTTP_OK;
        short ev = ssl_wants(c, k);
        if (ev && wait_fd(c, ev, c->o->connect_timeout_ms) == 1) continue;
        if (ev) return fail(c, CL_HTTP_CONNECT, "TLS handshake timed out");
        long v = SSL_get_verify_result(c->ssl);
        const char *why = v != X509_V_OK ? X509_verify_cert_error_string(v)
                                         : ERR_reason_error_string(ERR_peek_last_error());
        mn_error_set(c->err, MN_ERR_UNAVAILABLE, "TLS handshake failed: %s",
                     why ? why : "the connection closed (is the node's HTTP API plain HTTP?)");
        return CL_HTTP_CONNECT;
    }
}

/* Writes up to n bytes: > 0 written, 0 wait (*ev set), -1 failed. */
static ssize_t write_some(conn *c, const char *p, size_t n, short *ev)
{
    if (!c->ssl) {
        ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
        *ev = POLLOUT;
        return k >= 0 ? k : (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    }
    ERR_clear_error();
    int k = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
    if (k > 0) return k;
    *ev = ssl_wants(c, k);
    return *ev ? 0 : -1;
}

static cl_http_fail send_all(conn *c, const char *p, size_t n)
{
    while (n > 0) {
        short ev = 0;
        ssize_t k = write_some(c, p, n, &ev);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k == 0) {
            int w = wait_fd(c, ev, c->io_ms);
            if (w == 0) return fail(c, CL_HTTP_TIMEOUT, "timed out sending the request");
            if (w > 0) continue;
        }
        return fail(c, CL_HTTP_BROKEN, "the connection failed while sending");
    }
    return CL_HTTP_OK;
}

static cl_http_fail send_request(conn *c, const cl_http_req *r)
{
    size_t cap = 256 + strlen(r->method) + strlen(r->target) + strlen(r->addr);
    for (size_t i = 0; i < r->n_headers; i++)
        cap += strlen(r->headers[i].name) + strlen(r->headers[i].value) + 4;
    char *head = malloc(cap);
    if (!head) {
        mn_error_set(c->err, MN_ERR_NOMEM, "out of memory");
        return CL_HTTP_BROKEN;
    }
    int n = snprintf(head, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n", r->method, r->target, r->addr);
    for (size_t i = 0; i < r->n_headers; i++)
        n += snprintf(head + n, cap - (size_t)n, "%s: %s\r\n", r->headers[i].name,
                      r->headers[i].value);
    if (r->body) n += snprintf(head + n, cap - (size_t)n, "Content-Length: %zu\r\n", r->body_len);
    n += snprintf(head + n, cap - (size_t)n, "\r\n");
    mn_assert((size_t)n < cap);
    cl_http_fail f = send_all(c, head, (size_t)n);
    free(head);
    if (f == CL_HTTP_OK && r->body && r->body_len) f = send_all(c, r->body, r->body_len);
    return f;
}

/* Reads up to n bytes: > 0 read, 0 closed, -2 wait (*ev set), -1 failed. */
static ssize_t read_some(conn *c, char *p, size_t n, short *ev)
{
    if (!c->ssl) {
        for (;;) {
            ssize_t k = recv(c->fd, p, n, 0);
            if (k >= 0) return k;
            if (errno == EINTR) continue;
            *ev = POLLIN;
            return errno == EAGAIN || errno == EWOULDBLOCK ? -2 : -1;
        }
    }
    ERR_clear_error();
    int k = SSL_read(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
    if (k > 0) return k;
    if (SSL_get_error(c->ssl, k) == SSL_ERROR_ZERO_RETURN) return 0;
    *ev = ssl_wants(c, k);
    return *ev ? -2 : -1;
}

/* Reads more into buf (at most limit bytes held in all): >0 read, 0 closed, or a failure
 * (negative: -CL_HTTP_*). */
static int fill(conn *c, size_t limit)
{
    if (c->len >= limit) return -CL_HTTP_PROTOCOL;
    if (c->len == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4096;
        if (cap > limit + 1) cap = limit + 1;
        char *b = realloc(c->buf, cap);
        if (!b) return -CL_HTTP_BROKEN;
        c->buf = b;
        c->cap = cap;
    }
    for (;;) {
        short ev = 0;
        ssize_t k = read_some(c, c->buf + c->len, c->cap - c->len, &ev);
        if (k > 0) {
            c->len += (size_t)k;
            return 1;
        }
        if (k == 0) return 0;
        if (k != -2) return -CL_HTTP_BROKEN;
        int w = wait_fd(c, ev, c->io_ms);
        if (w == 0) return -CL_HTTP_TIMEOUT;
        if (w < 0) return -CL_HTTP_BROKEN;
    }
}

static cl_http_fail read_fail(conn *c, int rc, const char *what)
{
    if (rc == -CL_HTTP_TIMEOUT) return fail(c, CL_HTTP_TIMEOUT, "timed out reading the answer");
    if (rc == -CL_HTTP_PROTOCOL) return fail(c, CL_HTTP_PROTOCOL, "the answer is too large");
    return fail(c, CL_HTTP_BROKEN, what);
}

/* The value of header name in the head block [from, to), copied (NULL if absent). */
static char *header_value(const char *from, const char *to, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = from; p < to;) {
        const char *eol = memchr(p, '\n', (size_t)(to - p));
        if (!eol) eol = to;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1, *e = eol;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            char *out = malloc((size_t)(e - v) + 1);
            if (out) {
                memcpy(out, v, (size_t)(e - v));
                out[e - v] = 0;
            }
            return out;
        }
        p = eol + 1;
    }
    return NULL;
}

typedef struct head {
    int status;
    bool keep; /* HTTP/1.1 without `Connection: close`: the peer keeps the connection */
    bool chunked;
    int64_t length; /* -1: none given */
    char *content_type;
    char *raw;
} head;

char *cl_http_resp_header(const cl_http_resp *r, const char *name)
{
    if (!r->head) return NULL;
    const char *first = strchr(r->head, '\n');
    return first ? header_value(first + 1, r->head + strlen(r->head), name) : NULL;
}

static cl_http_fail parse_head(conn *c, size_t end, head *h)
{
    const char *b = c->buf;
    if (end < 12 || strncmp(b, "HTTP/1.", 7) != 0 || b[8] != ' ')
        return fail(c, CL_HTTP_PROTOCOL, "the answer is not HTTP/1.x");
    h->status = atoi(b + 9);
    if (h->status < 100 || h->status > 599)
        return fail(c, CL_HTTP_PROTOCOL, "the answer has no valid status");
    const char *hb = memchr(b, '\n', end);
    char *te = header_value(hb, b + end, "transfer-encoding");
    char *cl = header_value(hb, b + end, "content-length");
    char *conn_h = header_value(hb, b + end, "connection");
    h->keep = b[7] == '1' && !(conn_h && strcasestr(conn_h, "close"));
    free(conn_h);
    h->content_type = header_value(hb, b + end, "content-type");
    if ((h->raw = malloc(end + 1)) != NULL) {
        memcpy(h->raw, b, end);
        h->raw[end] = 0;
    }
    h->chunked = te && strcasestr(te, "chunked") != NULL;
    h->length = -1;
    char *stop = NULL;
    if (cl && !h->chunked) {
        errno = 0;
        long long v = strtoll(cl, &stop, 10);
        if (errno || stop == cl || *stop || v < 0)
            h->length = -2;
        else
            h->length = v;
    }
    free(te);
    free(cl);
    if (h->length == -2) return fail(c, CL_HTTP_PROTOCOL, "the answer has a bad Content-Length");
    return CL_HTTP_OK;
}

static cl_http_fail read_head(conn *c, head *h)
{
    for (;;) {
        char *e = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (e) {
            size_t end = (size_t)(e - c->buf) + 2;
            c->pos = end + 2;
            return parse_head(c, end, h);
        }
        int rc = fill(c, c->o->max_header_bytes);
        if (rc == 0) return fail(c, CL_HTTP_BROKEN, "the connection closed before an answer");
        if (rc < 0) return read_fail(c, rc, "the connection failed while reading the answer");
    }
}

/* Makes sure buf[pos..pos+n) is read: CL_HTTP_OK, or why not. */
static cl_http_fail need(conn *c, size_t n, size_t limit)
{
    while (c->len - c->pos < n) {
        int rc = fill(c, limit);
        if (rc == 0) return fail(c, CL_HTTP_BROKEN, "the connection closed in the body");
        if (rc < 0) return read_fail(c, rc, "the connection failed while reading the body");
    }
    return CL_HTTP_OK;
}

/* Decodes the chunked body in place: buf[body_at..) becomes the payload, *n_out long. */
static cl_http_fail read_chunked(conn *c, size_t body_at, size_t *n_out)
{
    size_t out = body_at, limit = c->o->max_header_bytes + c->o->max_body_bytes + 1024;
    for (;;) {
        char *eol;
        while (!(eol = memmem(c->buf + c->pos, c->len - c->pos, "\r\n", 2))) {
            cl_http_fail f = need(c, c->len - c->pos + 1, limit);
            if (f) return f;
        }
        char *stop = NULL;
        unsigned long long size = strtoull(c->buf + c->pos, &stop, 16);
        if (stop == c->buf + c->pos || (*stop != '\r' && *stop != ';'))
            return fail(c, CL_HTTP_PROTOCOL, "bad chunk size");
        if (size > c->o->max_body_bytes - (out - body_at))
            return fail(c, CL_HTTP_PROTOCOL, "the answer is too large");
        c->pos = (size_t)(eol - c->buf) + 2;
        cl_http_fail f = need(c, (size_t)size + 2, limit);
        if (f) return f;
        if (size == 0) { /* the last chunk: no trailer (only CRLF left) keeps the connection */
            c->clean_end = c->len == c->pos + 2 && !memcmp(c->buf + c->pos, "\r\n", 2);
            break;
        }
        memmove(c->buf + out, c->buf + c->pos, (size_t)size);
        out += (size_t)size;
        c->pos += (size_t)size + 2;
        /* what was consumed is gone: keep buf small as the body streams in */
        memmove(c->buf + out, c->buf + c->pos, c->len - c->pos);
        c->len = out + (c->len - c->pos);
        c->pos = out;
    }
    *n_out = out - body_at;
    return CL_HTTP_OK;
}

/* The body of the answer (none for HEAD, 1xx, 204, 304: RFC 9112 §6.3). */
static cl_http_fail read_body(conn *c, const head *h, bool head_req, cl_http_resp *out)
{
    size_t at = c->pos, n = 0, limit = at + c->o->max_body_bytes;
    cl_http_fail f = CL_HTTP_OK;
    if (head_req || h->status == 204 || h->status == 304 || h->status < 200) {
        n = 0;
        c->clean_end = c->len == at;
    } else if (h->chunked) {
        f = read_chunked(c, at, &n);
    } else if (h->length >= 0) {
        if ((uint64_t)h->length > c->o->max_body_bytes)
            return fail(c, CL_HTTP_PROTOCOL, "the answer is too large");
        f = need(c, (size_t)h->length, limit);
        n = (size_t)h->length;
        c->clean_end = c->len == at + n;
    } else {
        int rc;
        while ((rc = fill(c, limit)) > 0) {
        }
        if (rc < 0) return read_fail(c, rc, "the connection failed while reading the body");
        n = c->len - at;
    }
    if (f) return f;
    out->body = malloc(n + 1);
    if (!out->body) {
        mn_error_set(c->err, MN_ERR_NOMEM, "out of memory");
        return CL_HTTP_BROKEN;
    }
    memcpy(out->body, c->buf + at, n);
    out->body[n] = 0;
    out->body_len = n;
    return CL_HTTP_OK;
}

/* Connects (unless c holds a kept connection), sends r and reads the answer's head. */
static cl_http_fail exchange(conn *c, const cl_http_req *r, head *h)
{
    cl_http_fail f = CL_HTTP_OK;
    if (c->fd < 0) {
        f = open_conn(c, r->addr);
        if (!f && r->tls) f = tls_open(c, r->tls);
    }
    if (!f) f = send_request(c, r);
    if (!f) f = read_head(c, h);
    return f;
}

static void conn_reset(conn *c)
{
    cl__pool_close(c->fd, c->ssl);
    c->fd = -1;
    c->ssl = NULL;
    c->len = c->pos = 0;
    c->clean_end = false;
}

static bool idempotent(const char *method)
{
    static const char *const m[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (!strcmp(method, m[i])) return true;
    return false;
}

cl_http_fail cl_http_do(const cl_http_req *r, const cl_http_opts *o, cl_http_resp *out,
                        mn_error *err)
{
    memset(out, 0, sizeof *out);
    conn c = {.fd = -1, .o = o, .io_ms = o->io_timeout_ms, .err = err};
    c.deadline_ns = mn_time_mono_ns() + o->total_timeout_ms * 1000000;
    head h = {0};
    void *ssl = NULL;
    bool kept = cl__pool_take(r->addr, r->tls, &c.fd, &ssl);
    mn_assert(kept || (c.fd < 0 && !ssl)); /* nothing of a connection not handed out */
    c.ssl = ssl;
    cl_http_fail f = exchange(&c, r, &h);
    if (kept && f == CL_HTTP_BROKEN && c.len == 0 && idempotent(r->method)) {
        conn_reset(&c); /* the peer closed the kept connection: once more on a new one */
        f = exchange(&c, r, &h);
    }
    if (!f) f = read_body(&c, &h, !strcmp(r->method, "HEAD"), out);
    if (!f) {
        out->status = h.status;
        out->content_type = h.content_type;
        out->head = h.raw;
        h.content_type = h.raw = NULL;
    } else {
        cl_http_resp_free(out);
    }
    free(h.content_type);
    free(h.raw);
    free(c.buf);
    if (!f && h.keep && c.clean_end) {
        cl__pool_put(r->addr, r->tls, c.fd, c.ssl);
        c.fd = -1;
        c.ssl = NULL;
    }
    cl__pool_close(c.fd, c.ssl);
    return f;
}
