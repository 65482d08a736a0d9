/* Routing in cluster mode: any node takes any request for any space and serves it where it
 * must be served (docs/api.md, "Cluster mode"): a write on its space's primary, a read by
 * its preference. The route hook of api_cluster_hooks and the HTTP gate that admits the
 * internal hops it sends. Private to api/. */
#ifndef MN_API_CLUSTER_ROUTE_H
#define MN_API_CLUSTER_ROUTE_H

#include "api_internal.h"
#include "auth.h"
#include "cluster_client.h"
#include "cluster_spaces.h"

typedef struct cl_route cl_route;

typedef struct cl_route_opts {
    const char *cluster_key;    /* signs and checks internal hops ("" = none: loopback only) */
    int64_t forward_timeout_ms; /* one forwarded exchange, connect included */
    int64_t connect_timeout_ms; /* a connect attempt (min(1000, forward_timeout_ms)) */
    int retries;                /* connect attempts to one node beyond the first (2) */
    int64_t backoff_ms;         /* before the first retry, doubled each time, +-50 % jitter */
    int breaker_failures;       /* consecutive failures that open a node's breaker (3) */
    int64_t breaker_open_ms;    /* an open breaker lets one probe through after this (2000) */
    /* HTTPS to other nodes (this node serves its own API over TLS: so do the others), the
     * peer's certificate verified against tls_ca's and tls_chain's (cl_http_tls_new) */
    bool https;
    const char *tls_ca, *tls_chain;
    /* cluster.partition_writes = "accept": a hintable write (api_route_ask.hintable) whose
     * primary cannot be reached comes back as a hint instead of a 503 */
    bool partition_accept;
} cl_route_opts;
void cl_route_opts_default(cl_route_opts *o);

/* The router of this node over the placement of cs (which must outlive it). MN_ERR_INVALID
 * when the certificates for HTTPS cannot be loaded. */
mn_err cl_route_new(cl_spaces *cs, const cl_route_opts *o, cl_route **out, mn_error *err);
void cl_route_free(cl_route *rt);
/* The API keys (NULL or disabled: auth off); set before the server listens. */
void cl_route_set_auth(cl_route *rt, const mn_auth_t *auth);

/* The route hook (api_cluster_hooks.route), any thread: true when resp holds the answer
 * (forwarded, or refused), false to serve req here (ask->replica_lag_ms set when this node
 * serves it from a replica copy). */
bool cl_route_request(cl_route *rt, const mn_http_request_t *req, mn_http_response_t *resp,
                      api_route_ask *ask);

/* The HTTP gate in cluster mode (arg = the cl_route), loop thread: a request carrying
 * x-mnemo-hop-* headers is admitted when its signature and clock hold and the grant it
 * carries allows the route (401 / 403 otherwise, whatever auth.enabled says); any other
 * request goes to the API-key gate (mn_auth_http_gate) when auth is on. */
bool cl_route_gate(void *arg, const mn_http_request_t *req, mn_http_response_t *resp);
/* Any thread: may the hop req (head and body checked again here) run op on space by the
 * grant it carries? MN_AUTH_NO_KEY (v->message says why) when it is not a valid hop. */
mn_auth_result_t cl_route_hop_allow(cl_route *rt, const mn_http_request_t *req, mn_auth_op_t op,
                                    const char *space, mn_auth_verdict_t *v);

/* A replica further behind than this serves no reads (out of rotation). */
#define CL_ROUTE_OUT_OF_ROTATION_MS 10000

/* Where a request runs: the decision of cl_route_request, a pure function of the request and
 * the placement (exposed for tests). */
typedef struct cl_route_plan {
    int targets[MN_SPACES_HOLDERS_MAX]; /* holders to try, in order */
    int n;
    bool local_fallback;  /* serve here when none answers (this node's copy is in rotation) */
    int64_t local_lag_ms; /* serving here from a replica this far behind; -1 = not / unknown */
    bool local_primary;   /* served here because this node's table names it the primary */
    char why[200];        /* no target and no fallback: why (the 503) */
} cl_route_plan_t;
/* true: serve here (p->local_lag_ms set). false: try p's targets in order, then serve here if
 * p->local_fallback, else 503 (p->why when there is no target). self: this node's id. */
bool cl_route_plan(const char *self, const api_route_ask *ask, const cl_placement *pl,
                   cl_route_plan_t *p);

/* A request of this node itself to node's HTTP API (the cluster's own calls, e.g. the space
 * catalog): signed as an internal hop with role admin over every space, within the forward
 * timeout, through node's circuit breaker, no retry. target: "/path?query" (path plain: no
 * byte to encode). CL_HTTP_OK fills out (cl_http_resp_free). */
cl_http_fail cl_route_call(cl_route *rt, const char *node, const char *method, const char *target,
                           const char *body, size_t body_len, cl_http_resp *out, mn_error *err);

#endif
