/* Cluster mode on the gRPC door (docs/grpc.md, "Cluster mode").
 *
 * The request options are fields of the messages, read here by name for every method that
 * has them: "consistency" ("one" | "quorum" | "all") and "read" ("primary" | "nearest"),
 * validated on a single node too. gRPC calls are not forwarded (a gRPC client to another
 * node would be a second transport to keep): a call this node must not serve is answered
 * FAILED_PRECONDITION naming the node that serves it (code "wrong_node"), or UNAVAILABLE
 * when none can; the HTTP API and MCP forward instead. A write a node serves waits for its
 * level like the REST one. */
#include "grpc_internal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

/* The string field name of msg: its value ("" when unset), or NULL when msg has no such
 * field. */
const char *g_msg_string(const ProtobufCMessage *msg, const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, name);
    if (!f || f->type != PROTOBUF_C_TYPE_STRING) return NULL;
    const char *s = *(char *const *)((const char *)msg + f->offset);
    return s ? s : "";
}

/* The answer of the route hook as a gRPC status. */
static void finish_routed(gcall *c, const mn_http_response_t *resp)
{
    cJSON *j = resp->body ? cJSON_ParseWithLength(resp->body, resp->body_len) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
    const cJSON *hint = cJSON_GetObjectItemCaseSensitive(e, "hint");
    g_call_finish_status(
        c, resp->status == 503 ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_FAILED_PRECONDITION,
        cJSON_IsString(msg) ? msg->valuestring : "this node does not serve the request",
        cJSON_IsString(code) ? code->valuestring : "wrong_node",
        cJSON_IsString(hint) ? hint->valuestring : NULL, NULL);
    cJSON_Delete(j);
}

bool g_call_route(gcall *c, mn_api_t *api, const ProtobufCMessage *req)
{
    api_read_pref read = API_READ_PRIMARY;
    mn_error err = {0};
    mn_err rc = MN_OK;
    const char *v;
    c->level = -1;
    if ((v = g_msg_string(req, "consistency")) && *v)
        rc = api_consistency_parse(v, &c->level, &err);
    if (!rc && (v = g_msg_string(req, "read")) && *v) rc = api_read_parse(v, &read, &err);
    if (rc) {
        g_call_finish(c, rc, &err, c->m->nf, NULL);
        return false;
    }
    const api_cluster_hooks *h = api->cluster;
    bool create = c->m->op == MN_AUTH_OP_SPACE_CREATE;
    const char *space = g_msg_string(req, create ? "name" : "space");
    /* a Watch stream stays on the node it was opened on, as the REST one */
    if (!h || !h->route || !space || !*space || c->m->op == MN_AUTH_OP_EVENTS) return true;
    mn_http_request_t hr;
    memset(&hr, 0, sizeof hr);
    hr.method = hr.path = hr.query = "";
    mn_http_response_t resp;
    memset(&resp, 0, sizeof resp);
    resp.status = 200;
    api_route_ask ask = {.space = space,
                         .path = "",
                         .write = mn_auth_op_role(c->m->op) >= MN_AUTH_WRITE,
                         .create = create,
                         .read = read,
                         .no_forward = true,
                         .replica_lag_ms = -1};
    bool answered = h->route(h->arg, &hr, &resp, &ask);
    if (answered) finish_routed(c, &resp);
    free(resp.body);
    free(resp.extra_headers);
    return !answered;
}

mn_err g_call_settle(gcall *c, mn_api_t *api, const ProtobufCMessage *req, mn_error *err)
{
    const char *space = g_msg_string(req, "space");
    uint64_t lsn;
    /* only the methods that take a level wait for one, as in the REST API */
    if (!space || !g_msg_string(req, "consistency")) return MN_OK;
    mn_error why = {0};
    mn_err rc = api_write_wait(api, space, c->level, &lsn, &why);
    if (rc)
        mn_error_set(err, rc,
                     "%.400s; the write is durable on the primary (lsn %llu) but did not reach "
                     "its consistency level in time",
                     why.message, (unsigned long long)lsn);
    return rc;
}
