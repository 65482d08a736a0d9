/* Private to the HTTP transport (api/http/http_*.c): the server, connection and request objects,
 * and small helpers shared by the files. Everything here runs on the loop thread except
 * the handler call in http_conn.c, which runs on a thread-pool thread and touches only its
 * own request. */
#ifndef MN_HTTP_INTERNAL_H
#define MN_HTTP_INTERNAL_H

#include <http_parser.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "mnemo/http.h"

/* Growable byte buffer; p is NUL-terminated whenever len > 0 or p != NULL. */
typedef struct http_buf {
    char *p;
    size_t len, cap;
} http_buf;

typedef struct http_conn http_conn;

/* One request from its first byte to the end of its response write. */
typedef struct http_req {
    struct http_req *next; /* queue link */
    http_conn *c;
    uv_work_t work;
    uv_write_t write;
    mn_http_request_t pub;
    mn_http_response_t resp;
    mn_http_route_match_t match;
    bool routed;       /* match holds a FOUND route: run the handler */
    bool answered;     /* resp was filled before dispatch (the gate refused the request) */
    int direct_status; /* != 0: the server answers itself with this status */
    const char *direct_code;
    char direct_msg[96];
    char allow[64];   /* for a direct 405 */
    bool keep_alive;  /* the connection may stay open after this response */
    bool close_after; /* decided when the response is written */
    bool head;        /* HEAD: send the headers only */
    bool http10;      /* HTTP/1.0 request */
    bool streaming;   /* the response is a stream's head: the stream follows */
    bool retry_after; /* a direct 503 for a full budget: send Retry-After */
    size_t conn_bytes;   /* bytes of this request counted in c->buffered_bytes */
    size_t budget_bytes; /* body bytes charged to the server's max_inflight_bytes */
    int status_sent;
    uint64_t t_start; /* uv_hrtime() of the first byte */
    /* parse storage */
    http_buf url;
    http_buf hfield, hvalue;
    bool in_value; /* the last header callback was a value */
    mn_http_header_t *headers;
    size_t n_headers, cap_headers;
    size_t header_bytes;
    http_buf body;
    char *raw_path; /* path as received (percent-encoded), for the router */
    char *path;     /* decoded path */
    char *query;    /* raw query */
    char *out_head; /* serialized response head while it is written */
} http_req;

enum http_timer_mode { TM_NONE = 0, TM_IDLE, TM_PARTIAL, TM_WRITE, TM_LINGER, TM_STREAM };

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    mn_http_server_t *s;
    http_conn *prev, *next; /* server's list of open connections */
    http_parser parser;
    http_req *cur;             /* request being parsed */
    http_req *q_head, *q_tail; /* complete requests waiting for their turn */
    size_t q_len;
    http_req *active; /* request whose handler runs or whose response is written */
    bool in_pool;     /* active is on the thread pool */
    bool writing;     /* active's response is being written */
    char *pending;    /* unparsed input kept while the parser is paused */
    size_t pending_len;
    bool paused; /* parser paused: queue full (or no more input wanted) */
    bool reading;
    bool no_more_input;    /* parse nothing more: close after the queue drains */
    bool eof;              /* peer finished sending */
    bool closing;          /* uv_close called on the handles */
    bool lingering;        /* final response written; draining input before the close */
    bool continue_pending; /* cur asked for 100-continue, not sent yet */
    int fail_status;       /* set by a parser callback before it fails */
    const char *fail_code;
    const char *fail_msg;
    int open_handles;
    enum http_timer_mode timer_mode;
    struct http_tls_conn *tls; /* NULL on a plain connection (http_tls.c) */
    struct mn_http_stream *stream; /* a streaming response in progress (http_stream.c) */
    size_t buffered_bytes; /* request bytes held: cur, the queue and active (conn_bytes) */
    bool stream_slot;      /* counted in s->n_streams (from the stream's head to the free) */
    char principal[MN_HTTP_PRINCIPAL_MAX + 1]; /* the stream's principal, with stream_slot */
};

struct mn_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    mn_http_server_options_t opt;
    char bind[INET6_ADDRSTRLEN + 1];
    mn_http_router_t *router;
    http_conn *conns;
    int n_conns;
    int n_streams;         /* connections holding a stream slot; not counted by max_connections */
    size_t inflight_bytes; /* request bodies charged (budget_bytes) on every connection */
    size_t n_handles; /* listener + connections + rejected sockets not yet closed */
    bool stopping;
    void (*done)(void *arg);
    void *done_arg;
    int port;
    uint64_t rid_seed, rid_counter;
    mn_http_observer_fn observer;
    void *observer_arg;
    mn_http_gate_fn gate;
    void *gate_arg;
    struct ssl_ctx_st *tls_ctx; /* SSL_CTX: HTTPS when set */
    mn_http_server_stats_t stats;
};

/* ---- http_util.c ---- */
/* Appends n bytes; false on allocation failure. */
bool http_buf_append(http_buf *b, const char *data, size_t n);
/* Grows capacity to at least cap bytes (plus the NUL). */
bool http_buf_reserve(http_buf *b, size_t cap);
void http_buf_free(http_buf *b);
/* Percent-decodes n bytes of s into out (room for n + 1), NUL-terminated. plus_space turns '+'
 * into ' ' (form encoding). Returns the decoded length, or -1 on a bad escape or on %00. */
ssize_t http_pct_decode(const char *s, size_t n, char *out, bool plus_space);
/* True if s is 1..MN_HTTP_REQUEST_ID_MAX bytes of printable ASCII without spaces. */
bool http_request_id_sane(const char *s);
/* Reason phrase of a status ("Not Found"). */
const char *http_reason(int status);

/* ---- http_conn.c ---- */
/* Takes over an accepted connection (tcp initialised and accepted into c->tcp). */
void http_conn_start(http_conn *c);
/* Server shutdown: idle connections close now, busy ones after their active response. */
void http_conn_stop(http_conn *c);
/* Plaintext that arrived on c (decrypted when TLS is on): parse it. */
void http_conn_input(http_conn *c, const char *data, size_t len);
/* Writes bufs to the peer (encrypted when TLS is on) like uv_write: cb(w, status) once, with
 * w->data untouched. Returns 0 or a negative uv error (then cb is not called). */
int http_conn_write(http_conn *c, uv_write_t *w, const uv_buf_t *bufs, unsigned n, uv_write_cb cb);
/* Closes the connection now (an active request finishes in its callback). */
void http_conn_abort(http_conn *c);
/* Re-arms the connection's timer for its current state (after a TLS handshake). */
void http_conn_update_timer(http_conn *c);
/* True while c may still parse input (not paused, closing or finished). */
bool http_conn_wants_input(const http_conn *c);

/* ---- http_tls.c (only called when s->tls_ctx is set) ---- */
/* Loads cert and key into a new SSL_CTX (TLS 1.2+); MN_ERR_INVALID with the reason. */
mn_err http_tls_ctx_new(const char *cert, const char *key, struct ssl_ctx_st **out, mn_error *err);
void http_tls_ctx_free(struct ssl_ctx_st *ctx);
/* Attaches a TLS session to a new connection; false on allocation failure. */
bool http_tls_conn_new(http_conn *c);
void http_tls_conn_free(http_conn *c);
/* Ciphertext read from the socket: handshake, decrypt, and pass plaintext on. */
void http_tls_on_read(http_conn *c, const char *data, size_t len);
/* Decrypts what is buffered (after the parser resumes). */
void http_tls_pump(http_conn *c);
/* Encrypts bufs and writes the records; same contract as http_conn_write. */
int http_tls_write(http_conn *c, uv_write_t *w, const uv_buf_t *bufs, unsigned n, uv_write_cb cb);
/* Queues a close_notify alert before the connection is half-closed. */
void http_tls_close_notify(http_conn *c);
/* True until the handshake has completed. */
bool http_tls_handshaking(const http_conn *c);

/* ---- http_stream.c ---- */
/* The stream's head was written: c carries src's stream from now on (takes src). */
void http_stream_begin(http_conn *c, mn_http_stream_src_t *src);
/* The connection is closing: tell the source (closed) and free the stream. */
void http_stream_closed(http_conn *c);
/* The server ends the stream (shutdown, lifetime): ask the source for its last message. */
void http_stream_stop(http_conn *c, mn_http_stream_stop_t why);
/* Releases a source that never started (its response was not written). */
void http_stream_src_discard(mn_http_stream_src_t *src);
/* Half-closes c once its writes are out (http_conn.c). */
void http_conn_finish(http_conn *c);

/* ---- http_server.c ---- */
void http_server_conn_freed(mn_http_server_t *s, http_conn *c);
/* May r's stream start? Takes a stream slot for c (true), or fills r's answer: 503 when
 * max_streams are open, 429 when its principal has max_streams_per_principal (false). */
bool http_server_stream_admit(mn_http_server_t *s, http_conn *c, http_req *r);
void http_server_request_id(mn_http_server_t *s, char *out);
extern const http_parser_settings http_conn_settings;

#endif
