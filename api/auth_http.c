/* API keys on the HTTP door: which operation each route is (auth.h, mn_auth_op_t; its role
 * is auth.c's), and the gate the HTTP server runs (on the loop thread) for every routed
 * request before its handler. SSE streams (/events) pass this gate like any route.
 *
 * To add a route: add its line to ROUTE_OPS with the pattern exactly as registered.
 * A route that is not listed is an admin operation (default deny), so a forgotten line
 * fails closed.
 * A route whose pattern has a {space} parameter is also checked against the key's spaces.
 *
 * Bearer tokens: RFC 6750 §2.1 (Authorization: Bearer) and §3 (WWW-Authenticate). The same
 * header value is sent with every 401, whatever was wrong with the key. */
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "mnemo/util.h"

typedef struct route_op {
    const char *method; /* "*" = every method */
    const char *pattern;
    mn_auth_op_t op;
} route_op;

static const route_op ROUTE_OPS[] = {
    /* probes and the API description: no key (they reveal no data) */
    {"GET", "/health", MN_AUTH_OP_PROBE},
    {"GET", "/ready", MN_AUTH_OP_PROBE},
    {"GET", "/openapi.json", MN_AUTH_OP_PROBE},
    /* a Prometheus scraper gets a read key */
    {"GET", "/metrics", MN_AUTH_OP_METRICS},
    /* spaces */
    {"GET", "/v1/spaces", MN_AUTH_OP_SPACE_LIST},
    {"POST", "/v1/spaces", MN_AUTH_OP_SPACE_CREATE},
    {"GET", "/v1/spaces/{space}", MN_AUTH_OP_SPACE_READ},
    {"DELETE", "/v1/spaces/{space}", MN_AUTH_OP_SPACE_DROP},
    {"GET", "/v1/spaces/{space}/stats", MN_AUTH_OP_SPACE_READ},
    {"GET", "/v1/spaces/{space}/events", MN_AUTH_OP_EVENTS},
    /* memories */
    {"POST", "/v1/spaces/{space}/memories", MN_AUTH_OP_REMEMBER},
    {"GET", "/v1/spaces/{space}/memories", MN_AUTH_OP_MEMORY_READ},
    {"GET", "/v1/spaces/{space}/memories/{id}", MN_AUTH_OP_MEMORY_READ},
    {"DELETE", "/v1/spaces/{space}/memories/{id}", MN_AUTH_OP_FORGET},
    {"POST", "/v1/spaces/{space}/memories/{id}/unsuppress", MN_AUTH_OP_FORGET},
    {"PATCH", "/v1/spaces/{space}/memories/{id}", MN_AUTH_OP_REMEMBER},
    {"GET", "/v1/spaces/{space}/memories/{id}/history", MN_AUTH_OP_MEMORY_READ},
    {"POST", "/v1/spaces/{space}/memories/{id}/invalidate", MN_AUTH_OP_REMEMBER},
    /* forget by filter and its jobs: what forget needs (reading a job too) */
    {"POST", "/v1/spaces/{space}/forget", MN_AUTH_OP_FORGET},
    {"GET", "/v1/spaces/{space}/jobs/{id}", MN_AUTH_OP_FORGET},
    {"DELETE", "/v1/spaces/{space}/jobs/{id}", MN_AUTH_OP_FORGET},
    {"GET", "/v1/spaces/{space}/memories/{id}/associations", MN_AUTH_OP_MEMORY_READ},
    /* recall-like POSTs read; the others change the space */
    {"POST", "/v1/spaces/{space}/recall", MN_AUTH_OP_RECALL},
    /* over many spaces: any read key passes here; the handler asks for each space */
    {"POST", "/v1/recall", MN_AUTH_OP_RECALL},
    {"POST", "/v1/spaces/{space}/recognize", MN_AUTH_OP_RECALL},
    {"POST", "/v1/spaces/{space}/reminisce", MN_AUTH_OP_RECALL},
    {"POST", "/v1/spaces/{space}/complete", MN_AUTH_OP_RECALL},
    {"POST", "/v1/spaces/{space}/associations", MN_AUTH_OP_ASSOCIATE},
    {"POST", "/v1/spaces/{space}/consolidate", MN_AUTH_OP_CONSOLIDATE},
    /* a gRPC call forwarded by another node: the gate admits the hop as a read of the space,
     * the handler checks the method's own operation against the hop's grant */
    {"POST", "/v1/spaces/{space}/grpc/{method}", MN_AUTH_OP_RECALL},
    /* MCP: any key opens a session; each tool call is checked as its own operation */
    {"*", "/mcp", MN_AUTH_OP_MCP},
    /* the admin and cluster routes are not listed: admin */
};

mn_auth_op_t mn_auth_route_op(const char *method, const char *pattern)
{
    if (!method || !pattern) return MN_AUTH_OP_ADMIN;
    if (!strcmp(method, "HEAD")) method = "GET";
    for (size_t i = 0; i < sizeof ROUTE_OPS / sizeof ROUTE_OPS[0]; i++) {
        const route_op *r = &ROUTE_OPS[i];
        if ((!strcmp(r->method, "*") || !strcmp(r->method, method)) && !strcmp(r->pattern, pattern))
            return r->op;
    }
    return MN_AUTH_OP_ADMIN;
}

const char *mn_auth_http_space(const mn_http_request_t *req)
{
    size_t idx = 0;
    for (const char *p = req->route; p && (p = strchr(p, '{')) != NULL; p++, idx++)
        if (!strncmp(p, "{space}", 7)) return idx < req->n_params ? req->params[idx] : "";
    return NULL;
}

const char *mn_auth_http_key(const mn_http_request_t *req)
{
    const char *h = mn_http_header_get(req, "authorization");
    if (!h) return NULL;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t')) return "";
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    return h;
}

/* Names an admitted key for the per-key quotas of the transport (resp->principal: event
 * streams, http.max_streams_per_key): "sha256:" and the first 16 hex digits of its digest,
 * as configured in [[auth.keys]], so the log-safe name of one key is always the same. */
static void name_principal(const char *token, mn_http_response_t *resp)
{
    if (!token || !*token) return;
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token, strlen(token), d);
    int n = snprintf(resp->principal, sizeof resp->principal, "sha256:");
    for (size_t i = 0; i < 8 && n > 0 && (size_t)n + 2 < sizeof resp->principal; i++)
        n += snprintf(resp->principal + n, sizeof resp->principal - (size_t)n, "%02x", d[i]);
    OPENSSL_cleanse(d, sizeof d);
}

bool mn_auth_http_gate(void *arg, const mn_http_request_t *req, mn_http_response_t *resp)
{
    const mn_auth_t *a = arg;
    mn_auth_op_t op = mn_auth_route_op(req->method, req->route);
    const char *space = mn_auth_http_space(req);
    const char *token = mn_auth_http_key(req);
    mn_auth_verdict_t v;
    mn_auth_result_t res = mn_auth_allow(a, token, token ? strlen(token) : 0, op, space, &v);
    if (res == MN_AUTH_OK) {
        if (op != MN_AUTH_OP_PROBE) name_principal(token, resp);
        return true;
    }
    if (res == MN_AUTH_NO_KEY || res == MN_AUTH_BAD_KEY) {
        mn_http_respond_error(resp, 401, "unauthenticated", v.message, v.hint);
        mn_http_add_header(resp, "www-authenticate", "Bearer realm=\"mnemo\"");
        return false;
    }
    mn_log_debug("auth: key \"%s\" refused %s on %s %s", v.key_name, mn_auth_op_name(op),
                 req->method, req->route);
    mn_http_respond_error(resp, 403, "permission_denied", v.message, v.hint);
    return false;
}
