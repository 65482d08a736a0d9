/* Cluster mode on the gRPC door (docs/grpc.md, "Cluster mode").
 *
 * The request options are fields of the messages, read here by name for every method that
 * has them: "consistency" ("one" | "quorum" | "all") and "read" ("primary" | "nearest"),
 * validated on a single node too. A call this node must not serve is forwarded to the node
 * that serves it over a signed internal hop of the HTTP API (grpc_hop.c has the format), and
 * answered from there exactly as that node answered it: a unary call at once, a client stream
 * (RememberBatch) once it ended, all its messages in one hop (they are held here anyway: a
 * batch is all or nothing). A Watch stays on the node it was opened on. A write waits for its
 * level on the node that serves it, like the REST one. */
#include "grpc_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "mnemo/assert.h"
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

/* The body of a forward: a unary call's packed request; a stream's messages, each as a
 * u32 big-endian length and its packed bytes (grpc_hop.c reads them). NULL when out of
 * memory. */
static uint8_t *pack_body(const gcall *c, ProtobufCMessage *const *msgs, size_t n, size_t *len)
{
    bool stream = c->m->shape == G_CLIENT_STREAM;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += protobuf_c_message_get_packed_size(msgs[i]) + (stream ? 4 : 0);
    uint8_t *b = malloc(total + 1), *p = b;
    for (size_t i = 0; b && i < n; i++) {
        size_t k = protobuf_c_message_get_packed_size(msgs[i]);
        if (stream) {
            p[0] = (uint8_t)(k >> 24);
            p[1] = (uint8_t)(k >> 16);
            p[2] = (uint8_t)(k >> 8);
            p[3] = (uint8_t)k;
            p += 4;
        }
        p += protobuf_c_message_pack(msgs[i], p);
    }
    if (b) b[total] = 0;
    *len = total;
    return b;
}

/* Fills hr for c's call of the messages msgs (f keeps what hr points to); false when out of
 * memory or too long (then the call is not forwarded: the caller names the node instead). */
static bool fwd_init(gcall *c, ProtobufCMessage *const *msgs, size_t n, const char *space, g_fwd *f,
                     mn_http_request_t *hr)
{
    const char *method = strrchr(c->m->path, '/') + 1;
    size_t len = 0;
    if (c->key_len > G_FWD_KEY_MAX ||
        (size_t)snprintf(f->path, sizeof f->path, "/v1/spaces/%s/grpc/%s", space, method) >=
            sizeof f->path ||
        !(f->body = pack_body(c, msgs, n, &len)))
        return false;
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

/* Asks the route hook about c's call of msgs: false = serve it here; true = answered
 * (forwarded and relayed, or refused). A stream's first message only probes (probe): when
 * another node serves it, c->forward is set and the stream goes on here until it ends
 * (g_call_forward_batch). */
static bool route_call(gcall *c, const api_cluster_hooks *h, ProtobufCMessage *const *msgs,
                       size_t n, const char *space, api_read_pref read, bool probe,
                       int64_t timeout_ms)
{
    g_fwd f = {0};
    mn_http_request_t hr;
    bool fwd = !probe && fwd_init(c, msgs, n, space, &f, &hr);
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
                         .replica_lag_ms = -1,
                         .timeout_ms = timeout_ms};
    /* partition mode: a unary Remember may be kept here as a hint */
    ask.hintable = c->m->op == MN_AUTH_OP_REMEMBER && c->m->shape == G_UNARY;
    bool answered = h->route(h->arg, &hr, &resp, &ask);
    c->replica_lag_ms = answered ? -1 : ask.replica_lag_ms;
    if (!answered && ask.unreachable) /* served here, in partition mode (m_recall) */
        snprintf(c->partition, sizeof c->partition, "%s", ask.why);
    if (!answered && ask.hint) {
        c->hinted = true;
        c->hint_base = ask.hint_base;
    }
    if (answered && probe && resp.status == 421) {
        c->forward = true; /* another node serves it: collect the stream, then forward */
        answered = false;
    } else if (answered && fwd) {
        g_hop_finish(c, &resp);
    } else if (answered) {
        finish_routed(c, &resp);
    }
    free(resp.body);
    free(resp.extra_headers);
    free(f.body);
    return answered;
}

bool g_call_forward_batch(gcall *c, mn_api_t *api)
{
    const api_cluster_hooks *h = api->cluster;
    const char *space = g_msg_string(c->msgs[0], "space");
    mn_assert(c->forward && h && h->route && space && *space);
    return route_call(c, h, c->msgs, c->n_msgs, space, API_READ_PRIMARY, false, 0);
}

/* A Recall's timeout_ms (the bound on reaching a copy of its space, as the REST body's):
 * G_RECALL_TIMEOUT_MS when unset; 0 for any other call. */
static mn_err recall_timeout(const ProtobufCMessage *req, int64_t *ms, mn_error *err)
{
    *ms = 0;
    if (req->descriptor != &mnemo__v1__recall_request__descriptor) return MN_OK;
    const Mnemo__V1__RecallRequest *q = (const Mnemo__V1__RecallRequest *)req;
    *ms = q->has_timeout_ms ? q->timeout_ms : G_RECALL_TIMEOUT_MS;
    if (*ms < 1 || *ms > G_RECALL_TIMEOUT_MAX_MS)
        return mn_error_set(err, MN_ERR_INVALID, "timeout_ms: must be in 1..%d, got %lld",
                            G_RECALL_TIMEOUT_MAX_MS, (long long)*ms);
    return MN_OK;
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
    int64_t timeout_ms = 0;
    if (!rc) rc = recall_timeout(req, &timeout_ms, &err);
    if (rc) {
        g_call_finish(c, rc, &err, c->m->nf, NULL);
        return false;
    }
    const api_cluster_hooks *h = api->cluster;
    bool create = c->m->op == MN_AUTH_OP_SPACE_CREATE;
    const char *space = g_msg_string(req, create ? "name" : "space");
    /* a Watch stream stays on the node it was opened on, as the REST one */
    if (!h || !h->route || !space || !*space || c->m->op == MN_AUTH_OP_EVENTS) return true;
    ProtobufCMessage *one[1] = {(ProtobufCMessage *)req};
    return !route_call(c, h, one, 1, space, read, c->m->shape != G_UNARY, timeout_ms);
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
