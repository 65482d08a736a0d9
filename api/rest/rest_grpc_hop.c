/* POST /v1/spaces/{space}/grpc/{method}: a gRPC call (unary, or a whole client stream) another
 * node of the cluster
 * forwarded here, because this node serves its space (api/grpc/grpc_route.c sends it,
 * api/grpc/grpc_hop.c runs it). Internal: only a signed hop is admitted (the gate checked its
 * head, the routing step its body); the grant it carries must allow the method's own
 * operation on the space. The answer is the gRPC door's envelope (200), or a JSON error
 * when the hop itself is refused. */
#include "rest_internal.h"

#include "api_forget.h"

#include <stdlib.h>
#include <string.h>

void rest_h_grpc_hop(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    const api_cluster_hooks *h = api->cluster;
    const char *space = req->params[0], *method = req->params[1];
    mn_auth_op_t op;
    if (!h || !h->hop_allow || !api->grpc_hop) {
        mn_http_respond_error(resp, 404, "not_found",
                              "an internal route of a cluster whose nodes run the gRPC door",
                              "call the gRPC API itself");
        return;
    }
    if (!api->grpc_hop->op_of(method, &op)) {
        mn_http_respond_error(resp, 404, "not_found",
                              "no gRPC method by that name that can be forwarded", NULL);
        return;
    }
    mn_auth_verdict_t v;
    mn_auth_result_t res = h->hop_allow(h->arg, req, op, space, &v);
    if (res != MN_AUTH_OK) {
        bool who = res == MN_AUTH_NO_KEY || res == MN_AUTH_BAD_KEY;
        mn_http_respond_error(resp, who ? 401 : 403, who ? "unauthenticated" : "permission_denied",
                              who ? "internal hops only" : v.message, who ? NULL : v.hint);
        return;
    }
    const char *name = api_request_key_name(api, req);
    uint8_t *out = NULL;
    size_t len = 0;
    const char *base = mn_http_header_get(req, API_HINT_BASE_HEADER); /* partition writes */
    mn_id_t ids;
    bool has_ids = base && !mn_id_parse(base, strlen(base), &ids);
    if (!api->grpc_hop->run(api, method, name && *name ? name : NULL, has_ids ? &ids : NULL,
                            (const uint8_t *)req->body, req->body_len, &out, &len)) {
        mn_http_respond_error(resp, 503, "unavailable", "out of memory", NULL);
        return;
    }
    mn_http_respond(resp, 200, "application/octet-stream", (const char *)out, len);
    free(out);
}
