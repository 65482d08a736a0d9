/* HTTP/1.1 server on libuv + http-parser, and the router the API registers on.
 *
 * Threading: the server parses on the loop thread; each complete request is
 * routed on the loop thread and its handler runs on the libuv thread pool
 * (uv_queue_work), so handlers may block (JSON work, engine calls, fsync).
 * Responses on one connection go out in request order (pipelining). */
#ifndef MNEMO_HTTP_H
#define MNEMO_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mnemo/err.h"

#define MN_HTTP_MAX_PARAMS 8
/* A client's x-request-id is echoed when it is 1..64 printable ASCII characters (no space). */
#define MN_HTTP_REQUEST_ID_MAX 64
/* Longest principal name a gate gives (mn_http_response_t.principal). */
#define MN_HTTP_PRINCIPAL_MAX 40

typedef struct mn_http_header {
    char *name; /* lower-cased */
    char *value;
} mn_http_header_t;

typedef struct mn_http_request {
    const char *method;  /* "GET", "POST", ... */
    const char *path;    /* percent-decoded path, no query */
    const char *query;   /* raw query string after '?', "" if none */
    const mn_http_header_t *headers;
    size_t n_headers;
    const char *body; /* NUL-terminated copy of the body (body_len bytes before the NUL) */
    size_t body_len;
    char request_id[MN_HTTP_REQUEST_ID_MAX + 1]; /* echoed as x-request-id */
    const char *params[MN_HTTP_MAX_PARAMS];   /* path parameters in pattern order, decoded */
    size_t n_params;
    const char *route; /* the matched pattern, e.g. "/v1/spaces/{space}" (for logs/metrics) */
} mn_http_request_t;

/* ---- streaming responses (Server-Sent Events) ----
 * A handler may answer with a stream instead of a body: the server writes the
 * status line and headers (no content-length; the connection closes at the
 * end), then the source writes on the loop thread until it ends it. */
typedef struct mn_http_stream mn_http_stream_t;
typedef enum {
    MN_HTTP_STREAM_SHUTDOWN = 0, /* the server is stopping */
    MN_HTTP_STREAM_EXPIRED,      /* the stream reached stream_max_lifetime_ms */
} mn_http_stream_stop_t;
typedef struct mn_http_stream_src {
    /* Loop thread, once the headers went out: keep st to write with. */
    void (*start)(void *arg, mn_http_stream_t *st);
    /* Loop thread, when the server ends the stream (why): write a last message, then
     * mn_http_stream_end. */
    void (*stop)(void *arg, mn_http_stream_stop_t why);
    /* Loop thread, exactly once: the stream is over (ended, peer gone, error, or the
     * response never went out, without start); st is invalid; release arg. */
    void (*closed)(void *arg);
    void *arg;
} mn_http_stream_src_t;
/* Copies data into the connection's write queue (loop thread). 0, or -1 if it is closing. */
int mn_http_stream_write(mn_http_stream_t *st, const char *data, size_t len);
/* Bytes written but not yet taken by the socket: a slow reader makes this grow. */
size_t mn_http_stream_queued(const mn_http_stream_t *st);
/* Flushes what is queued, then closes the connection (closed follows). */
void mn_http_stream_end(mn_http_stream_t *st);
uv_loop_t *mn_http_stream_loop(const mn_http_stream_t *st);

typedef struct mn_http_response {
    int status;               /* default 200; outside 200..599 -> 500; 204/304 send no body */
    char *body;               /* malloc'd; the server frees it */
    size_t body_len;
    const char *content_type; /* static string; default "application/json" */
    char *extra_headers;      /* malloc'd "Name: value\r\n"... lines, or NULL; the server frees it */
    /* malloc'd, or NULL: a 2xx answer becomes a stream (body ignored); the server frees
     * the struct and calls its closed in every case */
    mn_http_stream_src_t *stream;
    /* Who asked, as the gate names them when it admits the request ("" = anonymous): streams
     * are counted per principal against max_streams_per_principal. */
    char principal[MN_HTTP_PRINCIPAL_MAX + 1];
} mn_http_response_t;

/* Runs on a thread-pool thread. Fill resp; never free req. */
typedef void (*mn_http_handler_fn)(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);

typedef struct mn_http_router mn_http_router_t;
mn_http_router_t *mn_http_router_new(void);
void mn_http_router_free(mn_http_router_t *r);
/* Pattern segments "{name}" match one non-empty path segment. Exact segments win over params
 * (compared from the first segment on). A trailing slash is ignored in patterns and paths
 * ("/v1/spaces/" == "/v1/spaces"); empty inner segments ("//") never match. Errors:
 * MN_ERR_INVALID (bad pattern or method), MN_ERR_EXISTS (same method and shape twice). */
mn_err mn_http_router_add(mn_http_router_t *r, const char *method, const char *pattern,
                          mn_http_handler_fn fn, void *ctx);

/* The i-th route in registration order (introspection: GET /v1/admin/routes); false past
 * the end. The strings live as long as the router. */
bool mn_http_router_route(const mn_http_router_t *r, size_t i, const char **method,
                          const char **pattern);

typedef enum {
    MN_HTTP_ROUTE_FOUND = 0,
    MN_HTTP_ROUTE_NOT_FOUND,   /* no pattern matches the path -> 404 */
    MN_HTTP_ROUTE_BAD_METHOD,  /* a pattern matches, not with this method -> 405 + Allow */
} mn_http_route_result_t;
typedef struct mn_http_route_match {
    mn_http_handler_fn fn;
    void *ctx;
    const char *pattern;
    char *params[MN_HTTP_MAX_PARAMS]; /* malloc'd, decoded */
    size_t n_params;
    char allow[64]; /* for BAD_METHOD: "GET, POST" */
} mn_http_route_match_t;
/* path is the raw (still percent-encoded) path without query; segments are decoded before they
 * are compared. The best-ranked pattern that has `method` wins; HEAD falls back to GET. If some
 * pattern matches the path but none with this method: BAD_METHOD, allow = the union of their
 * methods (HEAD added when GET is there). m is always initialised; free it with
 * mn_http_route_match_free whatever the result. */
mn_http_route_result_t mn_http_router_match(const mn_http_router_t *r, const char *method,
                                          const char *path, mn_http_route_match_t *m);
void mn_http_route_match_free(mn_http_route_match_t *m);

typedef struct mn_http_server_options {
    const char *bind;           /* "127.0.0.1" */
    int port;                   /* 0 = ephemeral (see mn_http_server_port) */
    size_t max_body_bytes;      /* larger bodies -> 413 */
    size_t max_header_bytes;    /* larger request line + headers -> 431 (http-parser caps at 80 KiB) */
    int max_connections;        /* further accepts get 503 and close; open streams do not
                                   count (they have max_streams) */
    int idle_timeout_ms;     /* a keep-alive connection idle this long is closed */
    int request_timeout_ms;  /* a request (line, headers, body) must arrive within this from
                                its first byte, else 408 and close (slow loris); also bounds
                                a TLS handshake */
    int max_pipelined;          /* queued requests per connection before reading pauses */
    /* Request bytes (line, headers, bodies) one connection may hold unanswered: past it
     * reading pauses until responses drain (back-pressure). A request alone on its
     * connection may still be max_body_bytes long. */
    size_t max_pipelined_bytes;
    /* Request bodies held by the whole server; a new body past it gets 503 + Retry-After,
     * answered at once without reading it. Must be >= max_body_bytes. */
    size_t max_inflight_bytes;
    int max_streams;               /* open streaming responses; more get 503 + Retry-After */
    int max_streams_per_principal; /* per gate principal (API key); more get 429; 0 = no cap */
    int64_t stream_max_lifetime_ms; /* a stream older than this is stopped (EXPIRED); 0 = never */
    const char *tls_cert;    /* PEM certificate chain; NULL or "" = plain HTTP */
    const char *tls_key;     /* PEM private key; required with tls_cert */
} mn_http_server_options_t;
void mn_http_server_options_default(mn_http_server_options_t *o);

typedef struct mn_http_server mn_http_server_t;
/* Binds and listens on loop. Must be called on the loop thread. The router must outlive the
 * server (it is not freed by it). bind is an IPv4 or IPv6 literal. With tls_cert/tls_key
 * the server speaks HTTPS only (TLS 1.2+); a file that cannot be loaded fails the start
 * with MN_ERR_INVALID and OpenSSL's reason. */
mn_err mn_http_server_start(uv_loop_t *loop, const mn_http_server_options_t *o,
                            mn_http_router_t *router, mn_http_server_t **out, mn_error *err);
int mn_http_server_port(const mn_http_server_t *s);
/* Access-log / metrics hook, called on the loop thread once per response after it was written
 * (or failed to be): method ("" if the request line was unreadable), the matched route pattern
 * (NULL when the server answered itself: 404, 405, 4xx limits; set when the gate refused a
 * routed request), HTTP status, nanoseconds from
 * the first byte of the request to the end of the write, the x-request-id sent, and the
 * request itself (its path parameters; valid only during the call). */
typedef void (*mn_http_observer_fn)(void *arg, const char *method, const char *route, int status,
                                    int64_t duration_ns, const char *request_id,
                                    const mn_http_request_t *req);
/* Sets (or clears, fn NULL) the observer. Loop thread only. */
void mn_http_server_set_observer(mn_http_server_t *s, mn_http_observer_fn fn, void *arg);
/* Admission hook (authentication, api/auth.h): called on the loop thread for every request
 * that matched a route, as soon as its headers are in (req->route, params and headers set;
 * no body yet). true runs the handler (the gate may name resp->principal); false answers
 * with resp as the gate filled it and the handler never runs; a refused request that has a
 * body is answered at once and the connection closed, without reading the body. Must be
 * quick: it runs on the loop.
 * Bodies are never read for GET or HEAD (400) nor for paths that answer 404 or 405: those
 * are answered at once and the connection closed, gate or not. */
typedef bool (*mn_http_gate_fn)(void *arg, const mn_http_request_t *req, mn_http_response_t *resp);
/* Sets (or clears, fn NULL) the gate. Loop thread only. */
void mn_http_server_set_gate(mn_http_server_t *s, mn_http_gate_fn fn, void *arg);
/* Counters of the transport, for logs and metrics (loop thread). */
typedef struct mn_http_server_stats {
    int open_connections;
    uint64_t rejected_connections;   /* beyond max_connections */
    uint64_t request_timeouts;       /* 408: a request did not arrive in request_timeout_ms */
    uint64_t tls_handshake_failures; /* bad or timed-out TLS handshakes (connection closed) */
    uint64_t bodies_refused;   /* bodies not read: GET/HEAD, 404, 405, or refused by the gate */
    uint64_t inflight_refused; /* 503: max_inflight_bytes was reached */
    uint64_t streams_refused;  /* 503/429: max_streams or max_streams_per_principal */
    size_t inflight_bytes;     /* request bodies held now */
    int open_streams;          /* streaming responses open now (outside max_connections) */
} mn_http_server_stats_t;
void mn_http_server_get_stats(const mn_http_server_t *s, mn_http_server_stats_t *out);
/* Graceful stop: stop accepting, let in-flight requests finish and their responses
 * be written, close every connection, then call done(arg) on the loop thread.
 * The server frees itself after done. */
void mn_http_server_shutdown(mn_http_server_t *s, void (*done)(void *arg), void *arg);

/* ---- helpers for handlers ---- */
/* Looks up a header by lower-case name; NULL if absent. */
const char *mn_http_header_get(const mn_http_request_t *req, const char *name);
/* Decoded value (x-www-form-urlencoded: '+' is a space) of query parameter `name` into buf;
 * returns false if absent, badly encoded, or longer than len - 1 bytes. */
bool mn_http_query_get(const mn_http_request_t *req, const char *name, char *buf, size_t len);
/* Sets resp to status with a copy of body (content_type static; NULL = application/json).
 * Replaces (and frees) a body set before. */
void mn_http_respond(mn_http_response_t *resp, int status, const char *content_type,
                     const char *body, size_t len);
/* {"error":{"code":code,"message":message,"hint":hint}} (hint omitted if NULL). */
void mn_http_respond_error(mn_http_response_t *resp, int status, const char *code,
                           const char *message, const char *hint);
/* Appends "name: value\r\n" to resp->extra_headers (CR/LF in value become spaces; a name
 * that is not an HTTP token is ignored). */
void mn_http_add_header(mn_http_response_t *resp, const char *name, const char *value);

#endif
