/* Partition mode of a recall (docs/gossip.md, "Partition mode"; docs/recall.md): when no
 * copy of the space answered within the recall's timeout_ms (or none is reachable), the
 * answer comes from this node's gossiped semantic memories of the space, through the
 * cluster's partition_recall hook: same body, same shape of answer, path "partition", every
 * hit with reason partition and a lowered confidence, and "partition" saying the episodes
 * were unreachable and why; the request's filter applies to them as to a recall of the space.
 * With no gossiped memory of the space here, or a request they cannot answer (as_of: they
 * keep no history): 503, as before, the message saying which. */
#include "rest_internal.h"

#include <stdio.h>
#include <string.h>

static void unreachable(mn_http_response_t *resp, const api_route_ask *ask, const char *more)
{
    char msg[sizeof ask->why + 600];
    snprintf(msg, sizeof msg, "%s; %.500s", ask->why, more);
    mn_http_respond_error(resp, 503, "unavailable", msg,
                          "retry later, or read with read=nearest from a node that holds a copy");
    mn_http_add_header(resp, "retry-after", "1");
}

static void answer(api_jw *w, const mn_recall_req_t *r, const mn_recall_result_t *res,
                   const api_route_ask *ask, double took_ms)
{
    jw_obj(w);
    jw_key(w, "results");
    jw_arr(w);
    for (size_t i = 0; i < res->n_hits; i++)
        rest_hit_to_json(w, &res->hits[i], false, false);
    jw_arr_end(w);
    jw_key(w, "path");
    jw_str(w, res->path);
    jw_key(w, "recall_confidence");
    jw_float(w, res->recall_confidence);
    jw_key(w, "scanned");
    jw_uint(w, res->scanned);
    jw_key(w, "took_ms");
    jw_double(w, took_ms, 4);
    jw_key(w, "partition");
    jw_obj(w);
    jw_key(w, "episodes");
    jw_str(w, "unreachable");
    jw_key(w, "reason");
    jw_str(w, ask->why);
    jw_key(w, "cue");
    jw_str(w, r->embedding && r->text ? "embedding+text" : r->embedding ? "embedding" : "text");
    jw_obj_end(w);
    rest_time_window_to_json(w, res);
    jw_obj_end(w);
}

void rest_partition_recall(mn_api_t *api, const mn_http_request_t *req, mn_http_response_t *resp,
                           const api_route_ask *ask)
{
    const api_cluster_hooks *h = api->cluster;
    if (!h || !h->partition_recall) {
        unreachable(resp, ask, "this node keeps no gossiped memories");
        return;
    }
    cJSON *body = rest_body(req, resp, API_CTX_SPACE);
    if (!body) return;
    mn_error err = {0};
    api_arena a;
    api_arena_init(&a);
    mn_recall_req_t r;
    mn_recall_result_t res = {0};
    int64_t t0 = mn_time_mono_ns();
    mn_err rc = rest_recall_req_from_json(body, &a, &r, &err);
    if (rc != MN_OK) {
        rest_done(resp, body, &a, rc, &err, API_CTX_SPACE);
        return;
    }
    rc = h->partition_recall(h->arg, ask->space, &r, &res, &err);
    if (rc == MN_ERR_NOT_FOUND || rc == MN_ERR_UNSUPPORTED) { /* none here, or none may stand in */
        unreachable(resp, ask, err.message);
        api_json_free(body);
        api_arena_free(&a);
        return;
    }
    if (rc != MN_OK) {
        rest_done(resp, body, &a, rc, &err, API_CTX_SPACE);
        return;
    }
    api_jw w;
    jw_init(&w);
    answer(&w, &r, &res, ask, (double)(mn_time_mono_ns() - t0) / 1e6);
    mn_recall_result_clear(&res);
    api_json_free(body);
    api_arena_free(&a);
    jw_respond(&w, resp, 200);
}
