/* API keys on the HTTP door: which role each route needs, and the gate the HTTP server runs
 * (on the loop thread) for every routed request before its handler.
 *
 * To add a route: add its line to ROUTE_ROLES with the pattern exactly as registered.
 * A route that is not listed needs admin (default deny), so a forgotten line fails closed.
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

typedef struct route_role {
    const char *method; /* "*" = every method */
    const char *pattern;
    mn_auth_role_t role;
} route_role;

static const route_role ROUTE_ROLES[] = {
    /* probes and the API description: no key (they reveal no data) */
    {"GET", "/health", MN_AUTH_OPEN},
    {"GET", "/ready", MN_AUTH_OPEN},
    {"GET", "/openapi.json", MN_AUTH_OPEN},
    /* a Prometheus scraper gets a read key */
    {"GET", "/metrics", MN_AUTH_READ},
    /* spaces */
    {"GET", "/v1/spaces", MN_AUTH_READ},
    {"POST", "/v1/spaces", MN_AUTH_ADMIN},
    {"GET", "/v1/spaces/{space}", MN_AUTH_READ},
    {"DELETE", "/v1/spaces/{space}", MN_AUTH_ADMIN},
    {"GET", "/v1/spaces/{space}/stats", MN_AUTH_READ},
    {"GET", "/v1/spaces/{space}/events", MN_AUTH_READ},
    /* memories */
    {"POST", "/v1/spaces/{space}/memories", MN_AUTH_WRITE},
    {"GET", "/v1/spaces/{space}/memories", MN_AUTH_READ},
    {"GET", "/v1/spaces/{space}/memories/{id}", MN_AUTH_READ},
    {"DELETE", "/v1/spaces/{space}/memories/{id}", MN_AUTH_WRITE},
    {"POST", "/v1/spaces/{space}/memories/{id}/unsuppress", MN_AUTH_WRITE},
    {"GET", "/v1/spaces/{space}/memories/{id}/associations", MN_AUTH_READ},
    /* recall-like POSTs read; the others change the space */
    {"POST", "/v1/spaces/{space}/recall", MN_AUTH_READ},
    {"POST", "/v1/spaces/{space}/recognize", MN_AUTH_READ},
    {"POST", "/v1/spaces/{space}/reminisce", MN_AUTH_READ},
    {"POST", "/v1/spaces/{space}/complete", MN_AUTH_READ},
    {"POST", "/v1/spaces/{space}/associations", MN_AUTH_WRITE},
    {"POST", "/v1/spaces/{space}/consolidate", MN_AUTH_WRITE},
    /* MCP tools reach every space and write: a write key for "*" */
    {"*", "/mcp", MN_AUTH_WRITE},
    /* the admin and cluster routes are not listed: admin */
};

mn_auth_role_t mn_auth_route_role(const char *method, const char *pattern)
{
    if (!method || !pattern) return MN_AUTH_ADMIN;
    if (!strcmp(method, "HEAD")) method = "GET";
    for (size_t i = 0; i < sizeof ROUTE_ROLES / sizeof ROUTE_ROLES[0]; i++) {
        const route_role *r = &ROUTE_ROLES[i];
        if ((!strcmp(r->method, "*") || !strcmp(r->method, method)) && !strcmp(r->pattern, pattern))
            return r->role;
    }
    return MN_AUTH_ADMIN;
}

/* The value of the {space} parameter of req (params are in pattern order), or NULL. */
static const char *space_param(const mn_http_request_t *req)
{
    size_t idx = 0;
    for (const char *p = req->route; p && (p = strchr(p, '{')) != NULL; p++, idx++)
        if (!strncmp(p, "{space}", 7)) return idx < req->n_params ? req->params[idx] : "";
    return NULL;
}

/* The token of "Authorization: Bearer <token>" (scheme case-insensitive), or NULL. */
static const char *bearer_token(const mn_http_request_t *req)
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
    mn_auth_role_t need = mn_auth_route_role(req->method, req->route);
    const char *space = space_param(req);
    const char *token = bearer_token(req);
    const char *name = "";
    mn_auth_result_t res = mn_auth_check(a, token, token ? strlen(token) : 0, need, space, &name);
    char msg[160];
    switch (res) {
    case MN_AUTH_OK:
        if (need != MN_AUTH_OPEN) name_principal(token, resp);
        return true;
    case MN_AUTH_NO_KEY:
    case MN_AUTH_BAD_KEY:
        mn_http_respond_error(
            resp, 401, "unauthenticated",
            res == MN_AUTH_NO_KEY ? "this route needs an API key" : "the API key is not valid",
            "send Authorization: Bearer <key> with a key listed in [[auth.keys]]");
        mn_http_add_header(resp, "www-authenticate", "Bearer realm=\"mnemo\"");
        return false;
    case MN_AUTH_ROLE_DENIED:
        mn_log_debug("auth: key \"%s\" (needs %s) refused on %s %s", name, mn_auth_role_name(need),
                     req->method, req->route);
        snprintf(msg, sizeof msg, "this route needs the %s role", mn_auth_role_name(need));
        mn_http_respond_error(resp, 403, "permission_denied", msg,
                              "use a key whose role allows it (read < write < admin)");
        return false;
    case MN_AUTH_SPACE_DENIED:
        mn_log_debug("auth: key \"%s\" refused on %s %s (space %s)", name, req->method, req->route,
                     space ? space : "*");
        if (space)
            snprintf(msg, sizeof msg, "the API key may not use space \"%.64s\"", space);
        else
            snprintf(msg, sizeof msg, "this route acts on every space: it needs a key for \"*\"");
        mn_http_respond_error(resp, 403, "permission_denied", msg,
                              "list the space in the key's spaces, or use a key for \"*\"");
        return false;
    }
    return false;
}
