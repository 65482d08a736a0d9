/* A blocking HTTP/1.1 request over a fresh TCP connection (RFC 9112): request
 * line, Host, Content-Length, Connection: close; the response is read until
 * its Content-Length or EOF. Every wait is a poll() bounded by the one
 * deadline of the call. Chunked responses are refused (the JSON routes this
 * reaches answer with Content-Length). */
#include "cluster_call.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mnemo/util.h"

#define RESP_BYTES_MAX (512u << 20)

/* "HOST:PORT" or "[V6]:PORT" into host and port. */
static bool split_addr(const char *addr, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1] || strlen(colon + 1) >= pcap) return false;
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= hcap) return false;
    memcpy(host, h, hl);
    host[hl] = 0;
    snprintf(port, pcap, "%s", colon + 1);
    return true;
}

/* Waits for fd to be ready for events until deadline_ms; false on timeout or error. */
static bool wait_fd(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        int64_t left = deadline_ms - mn_time_now_ms();
        if (left <= 0) return false;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
        if (r > 0) return true;
        if (r < 0 && errno != EINTR) return false;
    }
}

static int connect_to(const char *addr, int64_t deadline_ms, mn_error *err)
{
    char host[256], port[16];
    if (!split_addr(addr, host, sizeof host, port, sizeof port)) {
        mn_error_set(err, MN_ERR_INVALID, "\"%s\" is not HOST:PORT", addr);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g) {
        mn_error_set(err, MN_ERR_UNAVAILABLE, "%s: %s", addr, gai_strerror(g));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) continue;
        int rc = connect(fd, a->ai_addr, a->ai_addrlen);
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (rc != 0 && (errno != EINPROGRESS || !wait_fd(fd, POLLOUT, deadline_ms) ||
                        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr)) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) mn_error_set(err, MN_ERR_UNAVAILABLE, "cannot connect to %s", addr);
    return fd;
}

static bool send_all(int fd, const char *p, size_t n, int64_t deadline_ms)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            return false;
        } else if (!wait_fd(fd, POLLOUT, deadline_ms)) {
            return false;
        }
    }
    return true;
}

/* The Content-Length of a header block, or -1. */
static long long content_length(const char *head, size_t head_len)
{
    for (const char *p = head; p && p < head + head_len;) {
        const char *eol = memchr(p, '\n', (size_t)(head + head_len - p));
        if (!strncasecmp(p, "Content-Length:", 15)) return atoll(p + 15);
        if (!strncasecmp(p, "Transfer-Encoding:", 18)) return -2;
        p = eol ? eol + 1 : NULL;
    }
    return -1;
}

typedef struct rbuf {
    char *p;
    size_t n, cap;
} rbuf;

static bool grow(rbuf *b)
{
    size_t cap = b->cap ? b->cap * 2 : 16384;
    char *np = cap <= RESP_BYTES_MAX ? realloc(b->p, cap + 1) : NULL;
    if (!np) return false;
    b->p = np;
    b->cap = cap;
    return true;
}

/* Reads until the body is whole (Content-Length) or EOF. */
static mn_err recv_resp(int fd, const char *addr, int64_t deadline_ms, rbuf *b, size_t *head_len,
                        mn_error *err)
{
    long long want = -1;
    *head_len = 0;
    for (;;) {
        if (*head_len && want >= 0 && b->n >= *head_len + (size_t)want) return MN_OK;
        if (b->n == b->cap && !grow(b))
            return mn_error_set(err, MN_ERR_UNAVAILABLE, "%s: answer too large", addr);
        ssize_t r = recv(fd, b->p + b->n, b->cap - b->n, 0);
        if (r == 0) break;
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN || !wait_fd(fd, POLLIN, deadline_ms))
                return mn_error_set(err, MN_ERR_UNAVAILABLE, "%s: no answer in time", addr);
            continue;
        }
        b->n += (size_t)r;
        b->p[b->n] = 0;
        char *end = *head_len ? NULL : strstr(b->p, "\r\n\r\n");
        if (end) {
            *head_len = (size_t)(end - b->p) + 4;
            want = content_length(b->p, *head_len);
            if (want == -2)
                return mn_error_set(err, MN_ERR_UNAVAILABLE, "%s: chunked answer", addr);
        }
    }
    if (!*head_len)
        return mn_error_set(err, MN_ERR_UNAVAILABLE, "%s: closed without an answer", addr);
    return MN_OK;
}

static char *request_text(const char *addr, const char *method, const char *path, const char *body,
                          const char *bearer)
{
    size_t blen = body ? strlen(body) : 0;
    size_t cap =
        strlen(method) + strlen(path) + strlen(addr) + (bearer ? strlen(bearer) : 0) + blen + 256;
    char *req = malloc(cap);
    if (!req) return NULL;
    int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, path,
                     addr);
    if (bearer) n += snprintf(req + n, cap - (size_t)n, "Authorization: Bearer %s\r\n", bearer);
    if (body)
        n += snprintf(req + n, cap - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    if (body) memcpy(req + n, body, blen + 1);
    return req;
}

mn_err cl_call(const char *addr, const char *method, const char *path, const char *body,
               const char *bearer, int64_t timeout_ms, cl_call_resp *resp, mn_error *err)
{
    memset(resp, 0, sizeof *resp);
    int64_t deadline_ms = mn_time_now_ms() + timeout_ms;
    int fd = connect_to(addr, deadline_ms, err);
    if (fd < 0) return err ? err->code : MN_ERR_UNAVAILABLE;
    char *req = request_text(addr, method, path, body, bearer);
    rbuf b = {0};
    size_t head_len = 0;
    mn_err rc = MN_OK;
    if (!req)
        rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    else if (!send_all(fd, req, strlen(req), deadline_ms))
        rc = mn_error_set(err, MN_ERR_UNAVAILABLE, "%s: cannot send the request", addr);
    if (!rc) rc = recv_resp(fd, addr, deadline_ms, &b, &head_len, err);
    close(fd);
    free(req);
    int status = 0;
    if (!rc && (sscanf(b.p, "HTTP/1.%*d %d", &status) != 1 || status < 100 || status > 599))
        rc = mn_error_set(err, MN_ERR_UNAVAILABLE, "%s: not an HTTP answer", addr);
    if (rc) {
        free(b.p);
        return rc;
    }
    resp->status = status;
    resp->len = b.n - head_len;
    memmove(b.p, b.p + head_len, resp->len);
    b.p[resp->len] = 0;
    resp->body = b.p;
    return MN_OK;
}

void cl_call_resp_free(cl_call_resp *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}
