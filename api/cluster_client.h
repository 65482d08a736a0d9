/* What one node asks of another over the HTTP API (cluster mode): a small blocking HTTP/1.1
 * client for thread-pool threads (cl_http_*, cluster_client.c), and the cluster-key
 * signature that makes a forwarded request an authenticated internal hop (cl_hop_*,
 * cluster_hop.c). Private to api/. */
#ifndef MN_API_CLUSTER_CLIENT_H
#define MN_API_CLUSTER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/err.h"
#include "mnemo/http.h"

/* ---- the client ---- */

typedef struct cl_http_opts {
    int64_t connect_timeout_ms; /* TCP connect (1000) */
    int64_t io_timeout_ms;      /* each wait for the socket while sending or reading (5000) */
    int64_t total_timeout_ms;   /* the whole exchange, connect included (10000) */
    size_t max_header_bytes;    /* status line and headers of the answer (16384) */
    size_t max_body_bytes;      /* the answer's body, after chunked decoding (64 MiB) */
} cl_http_opts;
void cl_http_opts_default(cl_http_opts *o);

typedef struct cl_http_header {
    const char *name;
    const char *value; /* no CR or LF */
} cl_http_header;

typedef struct cl_http_req {
    const char *method;
    const char *addr;   /* "HOST:PORT" or "[V6]:PORT" */
    const char *target; /* "/path?query" as it goes on the request line (already encoded) */
    const cl_http_header *headers;
    size_t n_headers;
    const char *body; /* body_len bytes; a Content-Length goes out whenever body is set */
    size_t body_len;
    void *tls; /* an SSL_CTX of cl_http_tls_new: HTTPS; NULL: plain HTTP */
} cl_http_req;

/* A client TLS context (an SSL_CTX) for HTTPS to other nodes: TLS 1.2 or later, the peer's
 * certificate verified against the PEM certificates of ca_file and of chain_file (either ""
 * = none; this node's own chain, so nodes that share a certificate or whose chain file
 * carries its CA trust each other), or the system's when both are "". Names are not checked:
 * nodes are addressed by IP. NULL with err set when a file cannot be read. */
void *cl_http_tls_new(const char *ca_file, const char *chain_file, mn_error *err);
void cl_http_tls_free(void *tls);

typedef struct cl_http_resp {
    int status;
    char *content_type; /* malloc'd copy of the header, or NULL */
    char *body;         /* malloc'd, NUL-terminated (body_len bytes before the NUL), or NULL */
    size_t body_len;
    char *head; /* malloc'd: the status line and the headers, as they came */
} cl_http_resp;
void cl_http_resp_free(cl_http_resp *r);
/* A malloc'd copy of the value of header name (case-insensitive) of r, or NULL. */
char *cl_http_resp_header(const cl_http_resp *r, const char *name);

/* How an exchange failed: whether the peer may have seen the request decides whether a
 * retry is safe. */
typedef enum {
    CL_HTTP_OK = 0,
    CL_HTTP_CONNECT,  /* no connection (refused, unreachable, timed out): nothing was sent */
    CL_HTTP_TIMEOUT,  /* connected, then a step timed out: the peer may have run it */
    CL_HTTP_BROKEN,   /* the connection failed or closed early: the peer may have run it */
    CL_HTTP_PROTOCOL, /* the answer is not HTTP/1.x as we read it, or over a size bound */
    CL_HTTP_BAD_ADDR, /* addr cannot be parsed or resolved */
} cl_http_fail;
const char *cl_http_fail_name(cl_http_fail f);

/* One request, blocking within o's timeouts, on a kept connection to r->addr if one is idle
 * (cluster_client_pool.c) or a new one; over TLS when r->tls is set (a failed handshake is
 * CL_HTTP_CONNECT: nothing was sent). A connection whose answer ended cleanly is kept.
 * Reads the answer by Content-Length, chunked, or up to the close. CL_HTTP_OK fills out
 * (free it with cl_http_resp_free); anything else leaves it empty and says why in err
 * (MN_ERR_UNAVAILABLE, MN_ERR_NOMEM). */
cl_http_fail cl_http_do(const cl_http_req *r, const cl_http_opts *o, cl_http_resp *out,
                        mn_error *err);

/* ---- internal hops: a forwarded request signed with the cluster key ----
 *
 * The node that took a request from a client checked the client's API key (api/auth.h);
 * the raw key never leaves it. It forwards what the key allows, signed:
 *   x-mnemo-hop-node    its node id (also: this request is a hop, never forward it again)
 *   x-mnemo-hop-time    its wall clock, ms since the epoch
 *   x-mnemo-hop-nonce   16 random hex digits (two hops of the same request differ: a
 *                       receiver admits each signature once)
 *   x-mnemo-hop-role    open | read | write | admin (open: auth is off on that node)
 *   x-mnemo-hop-key     the key's name, percent-encoded ("-" = unnamed or none)
 *   x-mnemo-hop-spaces  "*" or the key's space names, comma-separated
 *   x-mnemo-hop-body    hex SHA-256 of the body
 *   x-mnemo-hop-sig     hex HMAC-SHA256(cluster.key, "mnemo-hop-v1\n" method "\n" path
 *                       ["?" query] "\n" time "\n" nonce "\n" node "\n" role "\n" key "\n"
 *                       spaces "\n"
 *                       body-digest), path percent-decoded, query raw, as the receiver's
 *                       mn_http_request_t holds them. */
#define CL_HOP_NODE_MAX 64
#define CL_HOP_KEY_MAX 120 /* the encoded key name */
#define CL_HOP_SPACES_MAX 2048
#define CL_HOP_HEADERS 8
/* A hop older or newer than this against the receiver's clock is refused. */
#define CL_HOP_SKEW_MS 30000

typedef struct cl_hop_identity {
    char node[CL_HOP_NODE_MAX + 1];
    char role[8];
    char key[CL_HOP_KEY_MAX + 1]; /* percent-encoded as it travels */
    char spaces[CL_HOP_SPACES_MAX + 1];
} cl_hop_identity;

/* The headers of a signed hop (storage for them: sign fills it, headers point into it). */
typedef struct cl_hop_sig {
    char time[24];
    char nonce[17];
    char body[65];
    char sig[65];
    cl_http_header headers[CL_HOP_HEADERS];
} cl_hop_sig;

/* Percent-encodes a key name into out (CL_HOP_KEY_MAX + 1 bytes); false if it does not fit. */
bool cl_hop_encode_key(const char *name, char *out);
/* Signs a hop of id for method path[?query] with body at now_ms: fills s->headers, which
 * point into s and id (both must outlive their use). */
void cl_hop_sign(const char *cluster_key, const cl_hop_identity *id, const char *method,
                 const char *path, const char *query, const char *body, size_t body_len,
                 int64_t now_ms, cl_hop_sig *s);
/* Is req a hop (it carries x-mnemo-hop-node)? */
bool cl_hop_present(const mn_http_request_t *req);
/* Checks a hop's signature, identity and clock at now_ms against the body digest it claims
 * (the gate runs before the body is read): MN_OK with *id filled, else MN_ERR_INVALID saying
 * what is wrong. */
mn_err cl_hop_verify_head(const char *cluster_key, const mn_http_request_t *req, int64_t now_ms,
                          cl_hop_identity *id, mn_error *err);
/* Checks that req's body is the one the signature covers (after cl_hop_verify_head). */
mn_err cl_hop_verify_body(const mn_http_request_t *req, mn_error *err);

#endif
