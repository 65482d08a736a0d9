/* Cluster mode on the gRPC door (docs/grpc.md, "Cluster mode").
 *
 * The request options are fields of the messages, read here by name for every method that
 * has them: "consistency" ("one" | "quorum" | "all") and "read" ("primary" | "nearest"),
 * validated on a single node too. A unary call this node must not serve is forwarded to the
 * node that serves it over a signed internal hop of the HTTP API (grpc_hop.c has the
 * format), and answered from there exactly as that node answered it. Streams are not
 * forwarded (a stream would have to be held whole first): a Watch stays on the node it was
 * opened on, and a RememberBatch this node must not serve is answered FAILED_PRECONDITION
 * naming the node that serves it (code "wrong_node"), or UNAVAILABLE when none can. A
 * write a node serves waits for its level like the REST one. */
#include "grpc_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "mnemo/util.h"

#define G_FWD_KEY_MAX 1024 /* a longer API key is not forwarded: the node that serves is named */

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

void g_finish_http_error(gcall *c, const mn_http_response_t *resp, grpc_status_code st,
                         const char *msg, const char *code)
{
    cJSON *j = resp->body ? cJSON_ParseWithLength(resp->body, resp->body_len) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(e, "code");
    const cJSON *hint = cJSON_GetObjectItemCaseSensitive(e, "hint");
    g_call_finish_status(c, st, cJSON_IsString(m) ? m->valuestring : msg,
                         cJSON_IsString(k) ? k->valuestring : code,
                         cJSON_IsString(hint) ? hint->valuestring : NULL, NULL);
    cJSON_Delete(j);
}

/* The answer of the route hook as a gRPC status. */
static void finish_routed(gcall *c, const mn_http_response_t *resp)
{
    g_finish_http_error(
        c, resp, resp->status == 503 ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_FAILED_PRECONDITION,
        "this node does not serve the request", "wrong_node");
}

/* What a forwarded call carries: the packed request, the client's key (the hop vouches for
 * its grant, never sends it), its path. */
typedef struct g_fwd {
    mn_http_header_t hdr;
    char auth[8 + G_FWD_KEY_MAX + 1];
    char path[40 + MN_SPACE_NAME_MAX];
    uint8_t *body;
} g_fwd;

/* Fills hr for c's unary call (f keeps what hr points to); false when out of memory or too
 * long (then the call is not forwarded: the caller names the node instead). */
static bool fwd_init(gcall *c, const ProtobufCMessage *req, const char *space, g_fwd *f,
                     mn_http_request_t *hr)
{
    const char *method = strrchr(c->m->path, '/') + 1;
    size_t len = protobuf_c_message_get_packed_size(req);
    if (c->key_len > G_FWD_KEY_MAX ||
        (size_t)snprintf(f->path, sizeof f->path, "/v1/spaces/%s/grpc/%s", space, method) >=
            sizeof f->path ||
        !(f->body = malloc(len + 1)))
        return false;
    protobuf_c_message_pack(req, f->body);
    f->body[len] = 0;
    memset(hr, 0, sizeof *hr);
    hr->method = "POST";
    hr->path = f->path;
    hr->query = "";
    hr->body = (const char *)f->body;
    hr->body_len = len;
    snprintf(hr->request_id, sizeof hr->request_id, "grpc-%016llx",
             (unsigned long long)mn_random_seed());
    if (c->key) {
        snprintf(f->auth, sizeof f->auth, "Bearer %.*s", (int)c->key_len, c->key);
        f->hdr = (mn_http_header_t){.name = "authorization", .value = f->auth};
        hr->headers = &f->hdr;
        hr->n_headers = 1;
    }
    return true;
}

/* Asks the route hook about c's call: false = serve it here; true = answered (forwarded and
 * relayed, or refused). */
static bool route_call(gcall *c, const api_cluster_hooks *h, const ProtobufCMessage *req,
                       const char *space, api_read_pref read)
{
    g_fwd f = {0};
    mn_http_request_t hr;
    bool fwd = c->m->shape == G_UNARY && fwd_init(c, req, space, &f, &hr);
    if (!fwd) {
        memset(&hr, 0, sizeof hr);
        hr.method = hr.path = hr.query = "";
    }
    mn_http_response_t resp;
    memset(&resp, 0, sizeof resp);
    resp.status = 200;
    api_route_ask ask = {.space = space,
                         .path = fwd ? f.path : "",
                         .write = mn_auth_op_role(c->m->op) >= MN_AUTH_WRITE,
                         .create = c->m->op == MN_AUTH_OP_SPACE_CREATE,
                         .read = read,
                         .no_forward = !fwd,
                         .replica_lag_ms = -1};
    bool answered = h->route(h->arg, &hr, &resp, &ask);
    if (answered && fwd)
        g_hop_finish(c, &resp);
    else if (answered)
        finish_routed(c, &resp);
    free(resp.body);
    free(resp.extra_headers);
    free(f.body);
    return answered;
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
    return !route_call(c, h, req, space, read);
}

mn_err g_settle(mn_api_t *api, const ProtobufCMessage *req, int level, mn_error *err)
{
    const char *space = g_msg_string(req, "space");
    uint64_t lsn;
    /* only the methods that take a level wait for one, as in the REST API */
    if (!space || !g_msg_string(req, "consistency")) return MN_OK;
    mn_error why = {0};
    mn_err rc = api_write_wait(api, space, level, &lsn, &why);
    if (rc)
        mn_error_set(err, rc,
                     "%.400s; the write is durable on the primary (lsn %llu) but did not reach "
                     "its consistency level in time",
                     why.message, (unsigned long long)lsn);
    return rc;
}

mn_err g_call_settle(gcall *c, mn_api_t *api, const ProtobufCMessage *req, mn_error *err)
{
    return g_settle(api, req, c->level, err);
}
