/* The MCP Streamable HTTP transport on the HTTP port (MCP 2025-06-18, basic/transports
 * "Streamable HTTP"; batches as in 2025-03-26): one endpoint, /mcp.
 *
 * POST carries one JSON-RPC message (or, when the session's protocol version is older
 * than 2025-06-18, a batch). Requests are answered with one application/json body, never
 * an SSE stream: every tool runs to completion within the POST. Input that holds only
 * notifications or responses is answered 202 with no body. GET is 405 (no server-initiated
 * stream), DELETE ends the session.
 *
 * Checks, in order: Origin (browsers: only loopback origins and mcp.allowed_origins, else
 * 403, against DNS rebinding), Accept (must admit application/json, else 406),
 * Content-Type (JSON, else 415), MCP-Protocol-Version (a version we speak, else 400), the
 * body's size (mcp.max_body_bytes, else 413), the body (UTF-8 JSON, else -32700; within the
 * limits of a request body, else -32602 naming the field), then the session: every message except initialize needs
 * a live Mcp-Session-Id (missing 400, unknown or ended 404). Transport errors carry a
 * JSON-RPC error without id whose data is the usual {"code","message","hint"}. */
#include "mcp_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void respond_json(mn_http_response_t *resp, int status, cJSON *body)
{
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (!text) {
        mn_http_respond_error(resp, 503, "unavailable", "out of memory", "retry later");
        return;
    }
    free(resp->body);
    resp->status = status;
    resp->body = text;
    resp->body_len = strlen(text);
    resp->content_type = "application/json";
}

static void transport_error(mn_http_response_t *resp, int status, int rpc_code, const char *code,
                            const char *message, const char *hint)
{
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "code", code);
    cJSON_AddStringToObject(data, "message", message);
    if (hint) cJSON_AddStringToObject(data, "hint", hint);
    respond_json(resp, status, mcp_rpc_error(NULL, rpc_code, message, data));
}

/* ---- header checks ---- */

/* Length of the media type at the start of s (up to ';' or ','), blanks trimmed; *start is
 * moved past leading blanks. */
static size_t media_type(const char **start)
{
    const char *s = *start;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strcspn(s, ";,");
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    *start = s;
    return n;
}

static bool is_type(const char *s, size_t n, const char *t)
{
    return n == strlen(t) && !strncasecmp(s, t, n);
}

/* An Accept header admits application/json (absent = anything goes). */
static bool accepts_json(const char *accept)
{
    if (!accept) return true;
    for (const char *p = accept; *p;) {
        const char *t = p;
        size_t n = media_type(&t);
        if (is_type(t, n, "application/json") || is_type(t, n, "application/*") ||
            is_type(t, n, "*/*"))
            return true;
        const char *comma = strchr(t, ',');
        if (!comma) break;
        p = comma + 1;
    }
    return false;
}

static bool content_type_ok(const char *ct)
{
    if (!ct) return true;
    size_t n = media_type(&ct);
    return is_type(ct, n, "application/json");
}

/* Browsers send Origin; other clients do not. Loopback origins are ours (the page runs on
 * this machine); others only if listed, so a page on a rebinding DNS name cannot reach us. */
static bool origin_allowed(const mcp_server *s, const char *origin)
{
    if (!origin) return true;
    for (size_t i = 0; i < s->allowed_origins.count; i++)
        if (!strcasecmp(origin, s->allowed_origins.items[i])) return true;
    const char *h = strstr(origin, "://");
    if (!h) return false;
    h += 3;
    size_t n = *h == '[' ? strcspn(h, "]") + 1 : strcspn(h, ":/");
    if (h[0] == '[' && h[n - 1] != ']') return false;
    const char *rest = h + n;
    if (*rest && *rest != ':' && *rest != '/') return false;
    return is_type(h, n, "localhost") || is_type(h, n, "127.0.0.1") || is_type(h, n, "[::1]");
}

/* The checks every method shares; false when resp already holds the error. */
static bool common_checks(const mcp_server *s, const mn_http_request_t *req, mn_http_response_t *resp)
{
    if (!origin_allowed(s, mn_http_header_get(req, "origin"))) {
        transport_error(resp, 403, MCP_SERVER_ERROR, "forbidden",
                        "Forbidden: this Origin may not use the MCP endpoint",
                        "browsers on this machine (localhost) are allowed; list other origins "
                        "in mcp.allowed_origins");
        return false;
    }
    const char *pv = mn_http_header_get(req, "mcp-protocol-version");
    if (pv && !mcp_version_supported(pv)) {
        char msg[200], clean[64];
        api_utf8_sanitize(pv, clean, sizeof clean);
        snprintf(msg, sizeof msg, "Bad Request: unsupported MCP-Protocol-Version \"%s\"", clean);
        transport_error(resp, 400, MCP_SERVER_ERROR, "unsupported_protocol_version", msg,
                        "supported: 2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05");
        return false;
    }
    return true;
}

/* Looks the Mcp-Session-Id up; false (error in resp) when it is missing or unknown. */
static bool session_check(mcp_call *c, const mn_http_request_t *req, mn_http_response_t *resp)
{
    const char *sid = mn_http_header_get(req, "mcp-session-id");
    if (!sid || !*sid) {
        transport_error(resp, 400, MCP_SERVER_ERROR, "session_required",
                        "Bad Request: Mcp-Session-Id header is required",
                        "send initialize first and repeat the Mcp-Session-Id it returns");
        return false;
    }
    if (!mcp_session_touch(c->srv, sid, c->version)) {
        transport_error(resp, 404, -32001, "session_not_found",
                        "Session not found: it ended or was never created",
                        "start a new session with initialize (no Mcp-Session-Id)");
        return false;
    }
    memcpy(c->session, sid, MCP_SESSION_ID_LEN + 1);
    return true;
}

/* ---- body ---- */

static bool valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char b = s[i];
        size_t len;
        uint32_t cp;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            len = 2;
            cp = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            len = 3;
            cp = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            len = 4;
            cp = b & 0x07;
        } else {
            return false;
        }
        if (n - i < len) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

/* Parses the body as one JSON value, within the limits of a request body (api_body_opts) and
 * MCP_NODES_MAX nodes, number arrays compact; NULL with the answer in resp on failure:
 * -32700 for what is not JSON, -32602 (400, or 413 for too many nodes) for a limit, which
 * the message names as the REST door does ("params.arguments.embedding: ..."). */
static cJSON *parse_body(const mcp_server *s, const mn_http_request_t *req,
                         mn_http_response_t *resp)
{
    const char *b = req->body ? req->body : "";
    size_t n = req->body ? req->body_len : 0;
    char msg[API_JSON_PATH_MAX + 160];
    size_t max = s->max_body_bytes ? s->max_body_bytes : MCP_BODY_DEFAULT;
    if (n > max) {
        snprintf(msg, sizeof msg, "Payload Too Large: a body of %zu bytes, the limit is %zu", n,
                 max);
        transport_error(resp, 413, MCP_INVALID_REQUEST, "payload_too_large", msg,
                        "mcp.max_body_bytes bounds one POST to /mcp");
        return NULL;
    }
    size_t ws = 0;
    while (ws < n && isspace((unsigned char)b[ws]))
        ws++;
    if (ws == n) {
        transport_error(resp, 400, MCP_PARSE_ERROR, "invalid_json",
                        "Parse error: empty body, expected a JSON-RPC message", NULL);
        return NULL;
    }
    if (memchr(b, '\0', n) || !valid_utf8((const unsigned char *)b, n)) {
        transport_error(resp, 400, MCP_PARSE_ERROR, "invalid_json",
                        "Parse error: the body is not UTF-8 text", NULL);
        return NULL;
    }
    api_json_opts o;
    api_body_opts(&o, 0); /* the space is in the arguments: MN_DIM_MAX bounds arrays here */
    o.nodes_max = MCP_NODES_MAX;
    api_json_result jr;
    cJSON *j = api_json_parse_opts(b, n, &o, &jr);
    if (j && !jr.has_nul) return j;
    api_json_free(j);
    if (j) {
        transport_error(resp, 400, MCP_INVALID_REQUEST, "invalid_argument",
                        "Invalid Request: strings must not contain the NUL character (\\u0000)",
                        NULL);
    } else if (jr.status == API_JSON_LIMIT || jr.status == API_JSON_NOMEM) {
        const char *code, *hint;
        char raw[API_JSON_PATH_MAX + 100], clean[sizeof raw];
        int status = api_json_refusal(&jr, 0, &code, raw, sizeof raw, &hint);
        api_utf8_sanitize(raw, clean, sizeof clean);
        snprintf(msg, sizeof msg, "%s: %s", status >= 500 ? "Internal error" : "Invalid params",
                 clean);
        transport_error(resp, status == 422 ? 400 : status,
                        status >= 500 ? MCP_INTERNAL_ERROR : MCP_INVALID_PARAMS, code, msg, hint);
    } else {
        if (jr.status == API_JSON_TRAILING)
            snprintf(msg, sizeof msg,
                     "Parse error: unexpected data after the JSON value at byte %zu", jr.offset);
        else
            snprintf(msg, sizeof msg, "Parse error: malformed JSON at byte %zu", jr.offset);
        transport_error(resp, 400, MCP_PARSE_ERROR, "invalid_json", msg,
                        jr.status == API_JSON_DEPTH
                            ? "a message nests at most 32 arrays and objects deep"
                            : "check the JSON syntax");
    }
    return NULL;
}

static int rpc_code(const cJSON *r)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
    const cJSON *code = e ? cJSON_GetObjectItemCaseSensitive(e, "code") : NULL;
    return cJSON_IsNumber(code) ? code->valueint : 0;
}

/* ---- handlers ---- */

static void post_batch(mcp_call *c, const cJSON *batch, mn_http_response_t *resp)
{
    int n = cJSON_GetArraySize(batch);
    char msg[160];
    if (n == 0 || n > MCP_BATCH_MAX || !mcp_version_allows_batch(c->version)) {
        if (n == 0)
            snprintf(msg, sizeof msg, "Invalid Request: empty batch");
        else if (n > MCP_BATCH_MAX)
            snprintf(msg, sizeof msg, "Invalid Request: %d messages in one batch, the limit is %d",
                     n, MCP_BATCH_MAX);
        else
            snprintf(msg, sizeof msg,
                     "Invalid Request: protocol version %s has no JSON-RPC batches", c->version);
        transport_error(resp, 400, MCP_INVALID_REQUEST, "invalid_request", msg,
                        "send one message per POST");
        return;
    }
    c->in_batch = true;
    cJSON *out = cJSON_CreateArray();
    for (const cJSON *m = batch->child; m; m = m->next) {
        cJSON *r = mcp_rpc_handle(c, m);
        if (r && !cJSON_AddItemToArray(out, r)) cJSON_Delete(r);
    }
    if (cJSON_GetArraySize(out) == 0) {
        cJSON_Delete(out);
        resp->status = 202;
        return;
    }
    respond_json(resp, 200, out);
}

void mcp_h_post(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    mcp_call c;
    memset(&c, 0, sizeof c);
    c.api = api;
    c.srv = api->mcp;
    c.http = req;
    if (!common_checks(c.srv, req, resp)) return;
    if (!accepts_json(mn_http_header_get(req, "accept"))) {
        transport_error(resp, 406, MCP_SERVER_ERROR, "not_acceptable",
                        "Not Acceptable: this endpoint answers application/json",
                        "send Accept: application/json, text/event-stream");
        return;
    }
    if (!content_type_ok(mn_http_header_get(req, "content-type"))) {
        transport_error(resp, 415, MCP_SERVER_ERROR, "unsupported_media_type",
                        "Unsupported Media Type: send Content-Type: application/json", NULL);
        return;
    }
    cJSON *body = parse_body(c.srv, req, resp);
    if (!body) return;
    if (mcp_rpc_is_initialize(body)) {
        /* a new session, whatever Mcp-Session-Id the request carries */
        cJSON *r = mcp_rpc_handle(&c, body);
        if (c.session[0]) mn_http_add_header(resp, "Mcp-Session-Id", c.session);
        respond_json(resp, rpc_code(r) == MCP_INVALID_REQUEST ? 400 : 200, r);
    } else if (!cJSON_IsObject(body) && !cJSON_IsArray(body)) {
        transport_error(resp, 400, MCP_INVALID_REQUEST, "invalid_request",
                        "Invalid Request: the body must be a JSON-RPC message (an object)", NULL);
    } else if (session_check(&c, req, resp)) {
        if (cJSON_IsArray(body)) {
            post_batch(&c, body, resp);
        } else {
            cJSON *r = mcp_rpc_handle(&c, body);
            if (!r)
                resp->status = 202; /* a notification or a response: accepted, no body */
            else
                respond_json(resp, rpc_code(r) == MCP_INVALID_REQUEST ? 400 : 200, r);
        }
    }
    api_json_free(body);
}

void mcp_h_get(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    if (!common_checks(api->mcp, req, resp)) return;
    mn_http_add_header(resp, "Allow", "POST, DELETE");
    transport_error(resp, 405, MCP_SERVER_ERROR, "method_not_allowed",
                    "Method Not Allowed: this server offers no SSE stream on GET",
                    "send JSON-RPC messages with POST; answers come in the POST response");
}

void mcp_h_delete(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    if (!common_checks(api->mcp, req, resp)) return;
    const char *sid = mn_http_header_get(req, "mcp-session-id");
    if (!sid || !*sid) {
        transport_error(resp, 400, MCP_SERVER_ERROR, "session_required",
                        "Bad Request: Mcp-Session-Id header is required", NULL);
        return;
    }
    if (!mcp_session_end(api->mcp, sid)) {
        transport_error(resp, 404, -32001, "session_not_found",
                        "Session not found: it ended or was never created", NULL);
        return;
    }
    resp->status = 204;
}
