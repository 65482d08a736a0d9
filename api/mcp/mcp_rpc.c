/* JSON-RPC 2.0 (jsonrpc.org/specification) for the MCP endpoint: classifies one message
 * (request, notification, or a response from the client) and runs the MCP methods we
 * serve: initialize, ping, tools/list, tools/call (MCP 2025-06-18, basic/lifecycle and
 * server/tools). Notifications never get an answer; an unknown notification is ignored.
 *
 * Errors: a message that is not a JSON-RPC object is -32600 (id null when the id itself
 * is unusable), an unknown method -32601, malformed params -32602. Failures of a tool are
 * not errors here: they are tool results with isError (mcp_tools.c). */
#include "auth.h"
#include "mcp_internal.h"

#include <stdio.h>
#include <string.h>

#define INSTRUCTIONS                                                                               \
    "mnemo is a long-term memory. Call remember to keep facts, events, decisions and "             \
    "preferences worth keeping (plain text is enough; an embedding is optional). Call recall "     \
    "with text (or an embedding) before answering to find what was remembered; every result "      \
    "carries a confidence. Memories live in spaces (\"default\" unless you name one); the "        \
    "first remember into a space creates it."

cJSON *mcp_rpc_error(const cJSON *id, int code, const char *message, cJSON *data)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "jsonrpc", "2.0");
    cJSON_AddItemToObject(r, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
    cJSON *e = cJSON_AddObjectToObject(r, "error");
    cJSON_AddNumberToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    if (data && !cJSON_AddItemToObject(e, "data", data)) cJSON_Delete(data);
    return r;
}

static cJSON *rpc_result(const cJSON *id, cJSON *result)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "jsonrpc", "2.0");
    cJSON_AddItemToObject(r, "id", cJSON_Duplicate(id, 1));
    if (!result || !cJSON_AddItemToObject(r, "result", result)) {
        cJSON_Delete(result);
        cJSON_Delete(r);
        return mcp_rpc_error(id, MCP_INTERNAL_ERROR, "Internal error: out of memory", NULL);
    }
    return r;
}

static const cJSON *member(const cJSON *o, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

bool mcp_rpc_is_initialize(const cJSON *msg)
{
    const cJSON *m = cJSON_IsObject(msg) ? member(msg, "method") : NULL;
    return cJSON_IsString(m) && !strcmp(m->valuestring, "initialize") && member(msg, "id");
}

static cJSON *initialize(mcp_call *c, const cJSON *id, const cJSON *params)
{
    if (c->in_batch)
        return mcp_rpc_error(id, MCP_INVALID_REQUEST,
                             "Invalid Request: initialize must not be part of a batch", NULL);
    const cJSON *pv = params ? member(params, "protocolVersion") : NULL;
    if (!cJSON_IsString(pv))
        return mcp_rpc_error(id, MCP_INVALID_PARAMS,
                             "Invalid params: params.protocolVersion (a string) is required", NULL);
    const char *v = mcp_version_negotiate(pv->valuestring);
    mn_err rc = mcp_session_create(c->srv, v, mn_auth_http_key(c->http), c->session);
    if (rc == MN_ERR_BUSY)
        return mcp_rpc_error(id, MCP_SERVER_ERROR,
                             "Server busy: every MCP session slot holds another key's live "
                             "session; retry later",
                             NULL);
    if (rc)
        return mcp_rpc_error(id, MCP_INTERNAL_ERROR,
                             "Internal error: no secure random bytes for a session id", NULL);
    snprintf(c->version, sizeof c->version, "%s", v);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "protocolVersion", v);
    cJSON *caps = cJSON_AddObjectToObject(r, "capabilities");
    cJSON *tools = cJSON_AddObjectToObject(caps, "tools");
    cJSON_AddBoolToObject(tools, "listChanged", false);
    cJSON *info = cJSON_AddObjectToObject(r, "serverInfo");
    cJSON_AddStringToObject(info, "name", "mnemo");
    cJSON_AddStringToObject(info, "title", "mnemo cognitive memory");
    cJSON_AddStringToObject(info, "version", mn_api_version());
    cJSON_AddStringToObject(r, "instructions", INSTRUCTIONS);
    return rpc_result(id, r);
}

static void notification(mcp_call *c, const char *method)
{
    if (!strcmp(method, "notifications/initialized") && c->session[0])
        mcp_session_set_initialized(c->srv, c->session);
    /* notifications/cancelled, progress, roots/list_changed...: nothing to do, since every
     * request is answered before its POST returns */
}

cJSON *mcp_rpc_handle(mcp_call *c, const cJSON *msg)
{
    if (!cJSON_IsObject(msg))
        return mcp_rpc_error(NULL, MCP_INVALID_REQUEST,
                             "Invalid Request: a JSON-RPC message is an object", NULL);
    const cJSON *id = member(msg, "id");
    if (id && !cJSON_IsString(id) && !cJSON_IsNumber(id))
        return mcp_rpc_error(NULL, MCP_INVALID_REQUEST,
                             "Invalid Request: id must be a string or an integer", NULL);
    const cJSON *jr = member(msg, "jsonrpc");
    if (!cJSON_IsString(jr) || strcmp(jr->valuestring, "2.0"))
        return mcp_rpc_error(id, MCP_INVALID_REQUEST,
                             "Invalid Request: \"jsonrpc\" must be \"2.0\"", NULL);
    const cJSON *method = member(msg, "method");
    if (!method) {
        /* a response to a request of ours: we send none, so there is nothing to match */
        if (id && (member(msg, "result") || member(msg, "error"))) return NULL;
        return mcp_rpc_error(id, MCP_INVALID_REQUEST, "Invalid Request: no \"method\"", NULL);
    }
    if (!cJSON_IsString(method))
        return mcp_rpc_error(id, MCP_INVALID_REQUEST,
                             "Invalid Request: \"method\" must be a string", NULL);
    const char *m = method->valuestring;
    if (!id) {
        notification(c, m);
        return NULL;
    }
    const cJSON *params = member(msg, "params");
    if (params && !cJSON_IsObject(params) && !cJSON_IsNull(params))
        return mcp_rpc_error(id, MCP_INVALID_PARAMS, "Invalid params: params must be an object",
                             NULL);
    if (cJSON_IsNull(params)) params = NULL;

    if (!strcmp(m, "initialize")) return initialize(c, id, params);
    if (!strcmp(m, "ping")) return rpc_result(id, cJSON_CreateObject());
    if (!strcmp(m, "tools/list")) {
        cJSON *r = cJSON_CreateObject();
        if (!cJSON_AddItemToObject(r, "tools", cJSON_Duplicate(c->srv->tools, 1))) {
            cJSON_Delete(r);
            r = NULL;
        }
        return rpc_result(id, r);
    }
    if (!strcmp(m, "tools/call")) {
        int code = 0;
        char why[300] = "";
        cJSON *r = mcp_tools_call(c, params, &code, why, sizeof why);
        return r ? rpc_result(id, r) : mcp_rpc_error(id, code, why, NULL);
    }
    char name[120], why[200];
    api_utf8_sanitize(m, name, sizeof name);
    snprintf(why, sizeof why, "Method not found: %s", name);
    return mcp_rpc_error(id, MCP_METHOD_NOT_FOUND, why, NULL);
}
