/* The embedding provider's HTTP client: one POST per call, one connection per
 * POST ("Connection: close"), every step bounded by one deadline (connect,
 * TLS handshake, write, read). Plain HTTP over a socket, or HTTPS through
 * OpenSSL with the peer's certificate and host name verified. The answer is
 * read to its Content-Length, through chunked encoding, or to the close, and
 * bounded in size. Only what the provider API needs: no redirects, no proxies,
 * no keep-alive (a batch of texts per request makes the handshake cheap next
 * to the model's work). Host names are resolved with getaddrinfo, which the
 * deadline does not bound (a numeric address or a local resolver keeps it short). */
#include "embed_internal.h"
#include "mnemo/assert.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mnemo/util.h"

#define RESP_MAX (256u << 20) /* an answer larger than this is refused */

mn_err mn__embed_url_parse(const char *url, mn__embed_url *u, mn_error *err)
{
    memset(u, 0, sizeof *u);
    const char *h;
    if (!strncmp(url, "http://", 7)) {
        h = url + 7;
    } else if (!strncmp(url, "https://", 8)) {
        h = url + 8;
        u->tls = true;
    } else {
        return mn_error_set(err, MN_ERR_INVALID,
                            "embedding.url: must start with http:// or "
                            "https://, got \"%.100s\"",
                            url);
    }
    const char *slash = strchr(h, '/');
    const char *end = slash ? slash : h + strlen(h);
    const char *host = h, *hend, *port = NULL;
    if (*h == '[') { /* [v6]:port */
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb) return mn_error_set(err, MN_ERR_INVALID, "embedding.url: unclosed [ in the host");
        host = h + 1;
        hend = rb;
        if (rb + 1 < end) {
            if (rb[1] != ':')
                return mn_error_set(err, MN_ERR_INVALID, "embedding.url: junk after ]");
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(h, ':', (size_t)(end - h));
        hend = colon ? colon : end;
        if (colon) port = colon + 1;
    }
    size_t hl = (size_t)(hend - host);
    if (!hl || hl >= sizeof u->host)
        return mn_error_set(err, MN_ERR_INVALID, "embedding.url: no host, or a host too long");
    if (memchr(host, '@', hl))
        return mn_error_set(err, MN_ERR_INVALID,
                            "embedding.url: credentials in the url are not supported (use "
                            "embedding.api_key_env)");
    memcpy(u->host, host, hl);
    long pn = u->tls ? 443 : 80;
    if (port) {
        size_t pl = (size_t)(end - port);
        pn = 0;
        if (!pl || pl > 5) return mn_error_set(err, MN_ERR_INVALID, "embedding.url: bad port");
        for (size_t i = 0; i < pl; i++) {
            if (port[i] < '0' || port[i] > '9')
                return mn_error_set(err, MN_ERR_INVALID, "embedding.url: bad port");
            pn = pn * 10 + (port[i] - '0');
        }
        if (pn < 1 || pn > 65535)
            return mn_error_set(err, MN_ERR_INVALID, "embedding.url: port must be in 1..65535");
    }
    snprintf(u->port, sizeof u->port, "%ld", pn);
    const char *path = slash ? slash : "/";
    if (strlen(path) >= sizeof u->path)
        return mn_error_set(err, MN_ERR_INVALID, "embedding.url: path too long");
    snprintf(u->path, sizeof u->path, "%s", path);
    if (strchr(path, '#') || strchr(path, ' '))
        return mn_error_set(err, MN_ERR_INVALID, "embedding.url: bad path");
    snprintf(u->authority, sizeof u->authority, strchr(u->host, ':') ? "[%s]:%s" : "%s:%s", u->host,
             u->port);
    return MN_OK;
}

/* ---- TLS ---- */

mn_err mn__embed_tls_new(const char *ca_file, void **ctx_out, mn_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return mn_error_set(err, MN_ERR_NOMEM, "embedding: cannot create a TLS context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int ok = ca_file && *ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                                 : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        SSL_CTX_free(ctx);
        return mn_error_set(err, MN_ERR_INVALID, "embedding.ca_file: cannot load \"%.200s\"",
                            ca_file && *ca_file ? ca_file : "(the system's CA certificates)");
    }
    *ctx_out = ctx;
    return MN_OK;
}

void mn__embed_tls_free(void *ctx)
{
    SSL_CTX_free(ctx);
}

/* ---- one connection ---- */

typedef struct conn {
    int fd;
    SSL *ssl;
    int64_t deadline_ms; /* monotonic */
    int cancel_fd;       /* readable: give up at once (the server stops); -1 = none */
} conn;

/* Waits until fd is ready for events or the deadline passes: 1 ready, 0 timed out, -1 error. */
static int wait_fd(const conn *c, short events)
{
    for (;;) {
        int64_t left = c->deadline_ms - mn_time_mono_ns() / 1000000;
        if (left <= 0) return 0;
        struct pollfd p[2] = {{.fd = c->fd, .events = events},
                              {.fd = c->cancel_fd, .events = POLLIN}};
        int r = poll(p, c->cancel_fd >= 0 ? 2 : 1, left > 60000 ? 60000 : (int)left);
        if (r > 0 && c->cancel_fd >= 0 && p[1].revents) {
            errno = ECANCELED;
            return -1;
        }
        if (r > 0) return 1;
        if (r < 0 && errno != EINTR) return -1;
    }
}

/* An SSL call's WANT_READ / WANT_WRITE: wait for it. 1 retry, 0 timeout, -1 failure. */
static int ssl_wait(const conn *c, int ret)
{
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        return wait_fd(c, POLLIN);
    case SSL_ERROR_WANT_WRITE:
        return wait_fd(c, POLLOUT);
    default:
        return -1;
    }
}

static mn_err timed_out(mn_error *err, const char *what)
{
    return mn_error_set(err, MN_ERR_BUSY, "timed out %s", what);
}

static mn_err conn_open(conn *c, const mn__embed_url *u, void *tls_ctx, mn_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int gr = getaddrinfo(u->host, u->port, &hints, &res);
    if (gr) return mn_error_set(err, MN_ERR_IO, "cannot resolve %s: %s", u->host, gai_strerror(gr));
    mn_err rc = MN_ERR_IO;
    int last_errno = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        c->fd = fd;
        int r = connect(fd, a->ai_addr, a->ai_addrlen);
        if (r && errno == EINPROGRESS) {
            int w = wait_fd(c, POLLOUT);
            if (w == 0) {
                close(fd);
                c->fd = -1;
                freeaddrinfo(res);
                return timed_out(err, "connecting");
            }
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            r = w < 0 || soerr ? -1 : 0;
            errno = soerr ? soerr : errno;
        }
        if (!r) {
            rc = MN_OK;
            break;
        }
        last_errno = errno;
        close(fd);
        c->fd = -1;
    }
    freeaddrinfo(res);
    if (rc)
        return mn_error_set(err, MN_ERR_IO, "cannot connect to %s: %s", u->authority,
                            strerror(last_errno ? last_errno : ECONNREFUSED));
    if (!u->tls) return MN_OK;
    c->ssl = SSL_new(tls_ctx);
    if (!c->ssl) return mn_error_set(err, MN_ERR_NOMEM, "TLS: out of memory");
    SSL_set_fd(c->ssl, c->fd);
    unsigned char addr[16];
    bool literal =
        inet_pton(AF_INET, u->host, addr) == 1 || inet_pton(AF_INET6, u->host, addr) == 1;
    if (!literal) SSL_set_tlsext_host_name(c->ssl, u->host); /* SNI names hosts, not addresses */
    SSL_set1_host(c->ssl, u->host); /* the certificate must name the host */
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(c->ssl);
        if (r == 1) return MN_OK;
        int w = ssl_wait(c, r);
        if (w == 0) return timed_out(err, "in the TLS handshake");
        if (w < 0) {
            long v = SSL_get_verify_result(c->ssl);
            unsigned long e = ERR_get_error();
            if (v != X509_V_OK)
                return mn_error_set(err, MN_ERR_IO,
                                    "TLS: the certificate of %s does not verify: %s", u->host,
                                    X509_verify_cert_error_string(v));
            return mn_error_set(err, MN_ERR_IO, "TLS handshake with %s failed: %s", u->authority,
                                e ? ERR_reason_error_string(e) : "connection closed");
        }
    }
}

static void conn_close(conn *c)
{
    if (c->ssl) {
        SSL_shutdown(c->ssl); /* best effort, non-blocking */
        SSL_free(c->ssl);
    }
    if (c->fd >= 0) close(c->fd);
}

static mn_err conn_write(conn *c, const char *buf, size_t len, mn_error *err)
{
    while (len) {
        ssize_t n;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_write(c->ssl, buf, len > (1u << 30) ? 1 << 30 : (int)len);
            if (r <= 0) {
                int w = ssl_wait(c, r);
                if (w == 0) return timed_out(err, "sending the request");
                if (w < 0) return mn_error_set(err, MN_ERR_IO, "TLS write failed");
                continue;
            }
            n = r;
        } else {
            n = send(c->fd, buf, len, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                    return mn_error_set(err, MN_ERR_IO, "sending the request: %s", strerror(errno));
                int w = wait_fd(c, POLLOUT);
                if (w == 0) return timed_out(err, "sending the request");
                if (w < 0) return mn_error_set(err, MN_ERR_IO, "poll: %s", strerror(errno));
                continue;
            }
        }
        buf += n;
        len -= (size_t)n;
    }
    return MN_OK;
}

/* Reads what is there (waiting up to the deadline): bytes read, 0 at the end, -1 on error. */
static ssize_t conn_read(conn *c, char *buf, size_t cap, mn_error *err)
{
    for (;;) {
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_read(c->ssl, buf, cap > (1u << 30) ? 1 << 30 : (int)cap);
            if (r > 0) return r;
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_ZERO_RETURN) return 0;
            if (e == SSL_ERROR_SYSCALL && !ERR_peek_error()) return 0; /* closed without notify */
            int w = ssl_wait(c, r);
            if (w == 0) return timed_out(err, "waiting for the answer"), -1;
            if (w < 0) return mn_error_set(err, MN_ERR_IO, "TLS read failed"), -1;
            continue;
        }
        ssize_t n = recv(c->fd, buf, cap, 0);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return mn_error_set(err, MN_ERR_IO, "reading the answer: %s", strerror(errno)), -1;
        int w = wait_fd(c, POLLIN);
        if (w == 0) return timed_out(err, "waiting for the answer"), -1;
        if (w < 0) return mn_error_set(err, MN_ERR_IO, "poll: %s", strerror(errno)), -1;
    }
}

/* ---- the answer ---- */

/* The value of header name in the header block h (NUL-terminated, lines end in CRLF), copied
 * into out; false if absent. */
static bool header(const char *h, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *l = strstr(h, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
        const char *s = l + 2;
        if (strncasecmp(s, name, nl) || s[nl] != ':') continue;
        s += nl + 1;
        while (*s == ' ' || *s == '\t')
            s++;
        const char *e = strstr(s, "\r\n");
        size_t n = e ? (size_t)(e - s) : strlen(s);
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n >= cap) n = cap - 1;
        memcpy(out, s, n);
        out[n] = '\0';
        return true;
    }
    return false;
}

/* Is the chunked body b[0..len) complete (its last chunk and the blank line after it, or after
 * its trailers, are in)? Walks the chunk sizes without changing anything. */
static bool chunked_complete(const char *b, size_t len)
{
    size_t r = 0;
    for (;;) {
        size_t sz = 0, digits = 0;
        while (r < len && isxdigit((unsigned char)b[r])) {
            char ch = b[r++];
            if (++digits > 8) return false;
            sz = sz * 16 + (size_t)(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
        }
        if (!digits) return false;
        while (r < len && b[r] != '\n')
            r++;
        if (r >= len) return false;
        r++;
        if (!sz) /* no trailers: a blank line; else the trailers end with one */
            return (len - r >= 2 && b[r] == '\r' && b[r + 1] == '\n') ||
                   (len - r >= 4 && memmem(b + r, len - r, "\r\n\r\n", 4));
        if (sz + 2 > len - r) return false;
        r += sz + 2;
    }
}

/* Writes the request line, the headers and the body. */
static mn_err send_request(conn *c, const mn__embed_url *u, const char *bearer, const char *body,
                           size_t body_len, mn_error *err)
{
    size_t hcap = 1024 + strlen(u->path) + strlen(u->authority) + (bearer ? strlen(bearer) : 0);
    char *head = malloc(hcap);
    if (!head) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    int hl = snprintf(head, hcap,
                      "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: mnemo\r\n"
                      "Content-Type: application/json\r\nAccept: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n%s%s%s\r\n",
                      u->path, u->authority, body_len, bearer ? "Authorization: Bearer " : "",
                      bearer ? bearer : "", bearer ? "\r\n" : "");
    mn_assert(hl > 0 && (size_t)hl < hcap); /* 1024 bytes cover the fixed text */
    mn_err rc = conn_write(c, head, (size_t)hl, err);
    if (!rc) rc = conn_write(c, body, body_len, err);
    free(head);
    return rc;
}

/* The status line and the framing headers of an answer's header block (NUL-terminated):
 * *status, and either *chunked or *want (Content-Length; left at -1 when absent). */
static mn_err parse_head(const char *head, int *status, bool *chunked, long *want, mn_error *err)
{
    int code = 0;
    if (sscanf(head, "HTTP/1.%*1[01] %3d", &code) != 1 || code < 100)
        return mn_error_set(err, MN_ERR_PARSE, "not an HTTP answer");
    *status = code;
    char v[64];
    if (header(head, "Transfer-Encoding", v, sizeof v) && strcasestr(v, "chunked")) {
        *chunked = true;
    } else if (header(head, "Content-Length", v, sizeof v)) {
        char *endp;
        *want = strtol(v, &endp, 10);
        if (*endp || *want < 0 || *want > (long)RESP_MAX)
            return mn_error_set(err, MN_ERR_PARSE, "bad Content-Length \"%s\"", v);
    }
    return MN_OK;
}

/* Decodes a chunked body in place: its length, or -1 when malformed or cut short. */
static long dechunk(char *b, size_t len)
{
    size_t r = 0, w = 0;
    for (;;) {
        size_t sz = 0, digits = 0;
        while (r < len && ((b[r] >= '0' && b[r] <= '9') || (b[r] >= 'a' && b[r] <= 'f') ||
                           (b[r] >= 'A' && b[r] <= 'F'))) {
            char ch = b[r++];
            int d = ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
            if (++digits > 8) return -1;
            sz = sz * 16 + (size_t)d;
        }
        if (!digits) return -1;
        while (r < len && b[r] != '\n')
            r++; /* chunk extensions */
        if (r >= len) return -1;
        r++;
        if (!sz) return (long)w;
        if (sz > len - r) return -1;
        memmove(b + w, b + r, sz);
        w += sz;
        r += sz;
        if (r + 2 > len || b[r] != '\r' || b[r + 1] != '\n') return -1;
        r += 2;
    }
}

mn_err mn__embed_post(const mn__embed_url *u, void *tls_ctx, const char *bearer, const char *body,
                      size_t body_len, int64_t timeout_ms, int cancel_fd, int *status, char **resp,
                      size_t *resp_len, mn_error *err)
{
    *resp = NULL;
    *resp_len = 0;
    *status = 0;
    conn c = {
        .fd = -1, .deadline_ms = mn_time_mono_ns() / 1000000 + timeout_ms, .cancel_fd = cancel_fd};
    mn_err rc = conn_open(&c, u, tls_ctx, err);
    char *buf = NULL;
    if (!rc) rc = send_request(&c, u, bearer, body, body_len, err);
    size_t len = 0, cap = 0;
    size_t hdr_end = 0; /* offset of the body once the headers are in */
    long want = -1;     /* Content-Length, once known */
    bool chunked = false;
    while (!rc) {
        if (len + 65536 + 1 > cap) {
            size_t nc = cap ? cap * 2 : 131072;
            if (nc > RESP_MAX + 65536 + 1) {
                rc = mn_error_set(err, MN_ERR_TOO_LARGE, "the answer is larger than %u bytes",
                                  RESP_MAX);
                break;
            }
            char *nb = realloc(buf, nc);
            if (!nb) {
                rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
                break;
            }
            buf = nb;
            cap = nc;
        }
        ssize_t n = conn_read(&c, buf + len, cap - len - 1, err);
        if (n < 0) {
            rc = err && err->code ? err->code : MN_ERR_IO;
            break;
        }
        len += (size_t)n;
        buf[len] = '\0';
        if (!hdr_end) {
            char *e = strstr(buf, "\r\n\r\n");
            if (e) {
                hdr_end = (size_t)(e - buf) + 4;
                e[2] = '\0'; /* the header block ends with the last header's CRLF */
                if ((rc = parse_head(buf, status, &chunked, &want, err))) break;
            } else if (len > 65536) {
                rc = mn_error_set(err, MN_ERR_PARSE, "headers larger than 64 KiB");
                break;
            }
        }
        if (hdr_end && want >= 0 && len - hdr_end >= (size_t)want) break;
        if (hdr_end && chunked && chunked_complete(buf + hdr_end, len - hdr_end)) break;
        if (n == 0) {
            if (!hdr_end)
                rc = mn_error_set(err, MN_ERR_IO, "the connection closed before an answer");
            else if (want >= 0)
                rc = mn_error_set(err, MN_ERR_IO, "the answer was cut short");
            break;
        }
    }
    conn_close(&c);
    if (rc) {
        free(buf);
        return rc;
    }
    size_t blen = len - hdr_end;
    if (want >= 0) blen = (size_t)want;
    if (chunked) {
        long d = dechunk(buf + hdr_end, blen);
        if (d < 0) {
            free(buf);
            return mn_error_set(err, MN_ERR_PARSE, "bad chunked encoding");
        }
        blen = (size_t)d;
    }
    memmove(buf, buf + hdr_end, blen);
    buf[blen] = '\0';
    *resp = buf;
    *resp_len = blen;
    return MN_OK;
}
