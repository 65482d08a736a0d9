/* HTTP server: the listening socket, admission (max_connections, and max_streams with its
 * per-principal share), request ids, the observer and gate hooks, the TLS context and
 * graceful shutdown. Connections live in http_conn.c, TLS sessions in http_tls.c.
 *
 * Streams are outside max_connections: a connection that carries a stream stops counting
 * against it, so streams (bounded by max_streams) never lock out /health, /ready or any
 * other request. Per principal (the gate's name for an API key) at most
 * max_streams_per_principal, so one key cannot take every stream slot.
 *
 * The socket is created, bound and put into listening state with plain syscalls before libuv
 * sees it, so a bind failure (address in use, bad address) is reported synchronously and
 * leaves no libuv handle behind to close.
 *
 * Invariants (all on the loop thread): n_handles counts the listener while open, every
 * connection until it is freed, and every rejected socket until its close callback; done() is
 * called exactly once, when stopping and n_handles reaches 0, and the server is freed right
 * after it; n_streams counts the connections with stream_slot, until they are freed. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_internal.h"
#include "mnemo/assert.h"
#include "mnemo/http.h"
#include "mnemo/util.h"

#define LISTEN_BACKLOG 511

_Static_assert(offsetof(http_conn, tcp) == 0, "a rejected conn is freed through its tcp handle");

static void maybe_done(mn_http_server_t *s)
{
    if (!s->stopping || s->n_handles > 0) return;
    void (*done)(void *) = s->done;
    void *arg = s->done_arg;
    if (s->tls_ctx) http_tls_ctx_free(s->tls_ctx);
    free(s);
    if (done) done(arg);
}

void http_server_conn_freed(mn_http_server_t *s, http_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->n_conns--;
    s->n_handles--;
    if (c->stream_slot) s->n_streams--;
    mn_assert(s->n_streams >= 0 && s->n_streams <= s->n_conns);
    if (c->tls) http_tls_conn_free(c);
    free(c);
    maybe_done(s);
}

static uint64_t mix64(uint64_t z)
{
    /* splitmix64 finaliser: a bijection, so distinct counters give distinct ids. */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void http_server_request_id(mn_http_server_t *s, char *out)
{
    uint64_t v = mix64(s->rid_seed + 0x9E3779B97F4A7C15ull * ++s->rid_counter);
    snprintf(out, MN_HTTP_REQUEST_ID_MAX + 1, "%016llx", (unsigned long long)v);
}

/* Rejected sockets are closed through their handle, which is the first member of whatever was
 * allocated for them (a bare uv_tcp_t or an unused http_conn). */
static void on_rejected_closed(uv_handle_t *h)
{
    mn_http_server_t *s = h->data;
    free(h);
    s->n_handles--;
    maybe_done(s);
}

static void reject(mn_http_server_t *s, uv_tcp_t *tcp, bool accepted)
{
    tcp->data = s;
    s->n_handles++;
    if (accepted) s->stats.rejected_connections++;
    if (accepted && !s->tls_ctx) { /* a TLS client could not read a plain answer */
        static const char body[] =
            "{\"error\":{\"code\":\"unavailable\",\"message\":\"too many connections\"}}";
        char msg[256];
        int n = snprintf(msg, sizeof msg,
                         "HTTP/1.1 503 Service Unavailable\r\nserver: mnemo\r\n"
                         "content-type: application/json\r\ncontent-length: %zu\r\n"
                         "connection: close\r\n\r\n%s",
                         sizeof body - 1, body);
        uv_buf_t b = uv_buf_init(msg, (unsigned)n);
        (void)uv_try_write((uv_stream_t *)tcp, &b, 1); /* best effort; never waits */
    }
    uv_close((uv_handle_t *)tcp, on_rejected_closed);
}

static void on_connection(uv_stream_t *listener, int status)
{
    mn_http_server_t *s = listener->data;
    if (status < 0) {
        mn_log_warn("http: accept failed: %s", uv_strerror(status));
        return;
    }
    http_conn *c = calloc(1, sizeof *c);
    if (!c) {
        /* Accept into a bare handle so the pending connection is not left in the backlog. */
        uv_tcp_t *t = malloc(sizeof *t);
        if (!t) return;
        uv_tcp_init(s->loop, t);
        reject(s, t, uv_accept(listener, (uv_stream_t *)t) == 0);
        return;
    }
    uv_tcp_init(s->loop, &c->tcp);
    int rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
    if (rc != 0 || s->stopping || s->n_conns - s->n_streams >= s->opt.max_connections) {
        reject(s, &c->tcp, rc == 0);
        return;
    }
    c->s = s;
    if (s->tls_ctx && !http_tls_conn_new(c)) {
        reject(s, &c->tcp, false);
        return;
    }
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    s->n_handles++;
    http_conn_start(c);
}

static int streams_of(const mn_http_server_t *s, const char *principal)
{
    int n = 0;
    for (const http_conn *c = s->conns; c; c = c->next)
        n += c->stream_slot && !strcmp(c->principal, principal);
    return n;
}

bool http_server_stream_admit(mn_http_server_t *s, http_conn *c, http_req *r)
{
    mn_http_response_t *resp = &r->resp;
    const char *who = resp->principal;
    int per = s->opt.max_streams_per_principal;
    int status = 0;
    if (c->stream_slot) return true;
    if (s->n_streams >= s->opt.max_streams)
        status = 503;
    else if (who[0] && per > 0 && streams_of(s, who) >= per)
        status = 429;
    if (!status) {
        c->stream_slot = true;
        snprintf(c->principal, sizeof c->principal, "%s", who);
        s->n_streams++;
        return true;
    }
    s->stats.streams_refused++;
    http_stream_src_discard(resp->stream);
    resp->stream = NULL;
    free(resp->extra_headers);
    resp->extra_headers = NULL;
    char msg[128];
    if (status == 503)
        snprintf(msg, sizeof msg, "%d streams are open, the most http.max_streams allows",
                 s->opt.max_streams);
    else
        snprintf(msg, sizeof msg, "this API key has %d streams open, the most "
                 "http.max_streams_per_key allows", per);
    mn_http_respond_error(resp, status, status == 503 ? "unavailable" : "too_many_streams", msg,
                          "close a stream you no longer read, or retry later");
    mn_http_add_header(resp, "retry-after", "5");
    return false;
}

static mn_err open_listen_socket(const mn_http_server_options_t *o, int *fd_out, int *port_out,
                                 mn_error *err)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    int family;
    const char *bind_addr = o->bind ? o->bind : "127.0.0.1";
    if (o->port < 0 || o->port > 65535)
        return mn_error_set(err, MN_ERR_INVALID, "http: port %d out of range", o->port);
    if (strchr(bind_addr, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        family = AF_INET6;
        if (uv_ip6_addr(bind_addr, o->port, a) != 0)
            return mn_error_set(err, MN_ERR_INVALID, "http: bad bind address '%s'", bind_addr);
        sl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        family = AF_INET;
        if (uv_ip4_addr(bind_addr, o->port, a) != 0)
            return mn_error_set(err, MN_ERR_INVALID, "http: bad bind address '%s'", bind_addr);
        sl = sizeof *a;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return mn_error_set(err, MN_ERR_IO, "http: socket: %s", strerror(errno));
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        return mn_error_set(err, MN_ERR_IO, "http: cannot listen on %s:%d: %s", bind_addr, o->port,
                            strerror(e));
    }
    struct sockaddr_storage got;
    socklen_t gl = sizeof got;
    int port = o->port;
    if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0)
        port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                               : ((struct sockaddr_in *)&got)->sin_port);
    *fd_out = fd;
    *port_out = port;
    return MN_OK;
}

static void on_listener_closed_on_error(uv_handle_t *h)
{
    mn_http_server_t *s = h->data;
    if (s->tls_ctx) http_tls_ctx_free(s->tls_ctx);
    free(s);
}

static void on_listener_closed(uv_handle_t *h)
{
    mn_http_server_t *s = h->data;
    s->n_handles--;
    maybe_done(s);
}

mn_err mn_http_server_start(uv_loop_t *loop, const mn_http_server_options_t *o,
                            mn_http_router_t *router, mn_http_server_t **out, mn_error *err)
{
    *out = NULL;
    if (!loop || !o || !router)
        return mn_error_set(err, MN_ERR_INVALID, "http: loop, options and router are required");
    if (o->max_connections <= 0 || o->idle_timeout_ms <= 0 || o->request_timeout_ms <= 0 ||
        o->max_pipelined <= 0 || o->max_header_bytes == 0 || o->max_pipelined_bytes == 0 ||
        o->max_streams <= 0 || o->max_streams_per_principal < 0 || o->stream_max_lifetime_ms < 0)
        return mn_error_set(err, MN_ERR_INVALID, "http: limits must be positive");
    if (o->max_inflight_bytes < o->max_body_bytes)
        return mn_error_set(err, MN_ERR_INVALID,
                            "http: http.max_inflight_bytes (%zu) is below http.max_body_bytes "
                            "(%zu): no body of the largest allowed size could be taken; raise "
                            "it or lower max_body_bytes",
                            o->max_inflight_bytes, o->max_body_bytes);
    if (o->bind && strlen(o->bind) >= INET6_ADDRSTRLEN)
        return mn_error_set(err, MN_ERR_INVALID, "http: bind address too long");
    bool has_cert = o->tls_cert && *o->tls_cert, has_key = o->tls_key && *o->tls_key;
    if (has_cert != has_key)
        return mn_error_set(err, MN_ERR_INVALID,
                            "http: TLS needs both http.tls_cert and http.tls_key (%s is empty)",
                            has_cert ? "http.tls_key" : "http.tls_cert");
    struct ssl_ctx_st *tls_ctx = NULL;
    mn_err e = has_cert ? http_tls_ctx_new(o->tls_cert, o->tls_key, &tls_ctx, err) : MN_OK;
    if (e != MN_OK) return e;
    int fd, port;
    e = open_listen_socket(o, &fd, &port, err);
    if (e != MN_OK) {
        if (tls_ctx) http_tls_ctx_free(tls_ctx);
        return e;
    }

    mn_http_server_t *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        if (tls_ctx) http_tls_ctx_free(tls_ctx);
        return mn_error_set(err, MN_ERR_NOMEM, "http: out of memory");
    }
    s->tls_ctx = tls_ctx;
    s->loop = loop;
    s->opt = *o;
    snprintf(s->bind, sizeof s->bind, "%s", o->bind ? o->bind : "127.0.0.1");
    s->opt.bind = s->bind;
    s->opt.tls_cert = s->opt.tls_key = NULL; /* loaded; the strings are not kept */
    s->router = router;
    s->port = port;
    s->rid_seed = mn_random_seed();
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    int rc = uv_tcp_open(&s->listener, fd);
    if (rc != 0)
        close(fd); /* not owned by the handle */
    else
        rc = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, on_connection);
    if (rc != 0) {
        /* The handle exists now; it is released (with s) when the loop next runs. */
        uv_close((uv_handle_t *)&s->listener, on_listener_closed_on_error);
        return mn_error_set(err, MN_ERR_IO, "http: listen: %s", uv_strerror(rc));
    }
    s->n_handles = 1;
    *out = s;
    return MN_OK;
}

int mn_http_server_port(const mn_http_server_t *s)
{
    return s ? s->port : -1;
}

void mn_http_server_set_observer(mn_http_server_t *s, mn_http_observer_fn fn, void *arg)
{
    if (!s) return;
    s->observer = fn;
    s->observer_arg = arg;
}

void mn_http_server_set_gate(mn_http_server_t *s, mn_http_gate_fn fn, void *arg)
{
    if (!s) return;
    s->gate = fn;
    s->gate_arg = arg;
}

void mn_http_server_get_stats(const mn_http_server_t *s, mn_http_server_stats_t *out)
{
    *out = s->stats;
    out->open_connections = s->n_conns;
    out->open_streams = s->n_streams;
    out->inflight_bytes = s->inflight_bytes;
}

void mn_http_server_shutdown(mn_http_server_t *s, void (*done)(void *arg), void *arg)
{
    if (!s || s->stopping) return;
    s->stopping = true;
    s->done = done;
    s->done_arg = arg;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    http_conn *c = s->conns;
    while (c) {
        http_conn *next = c->next;
        http_conn_stop(c);
        c = next;
    }
}
