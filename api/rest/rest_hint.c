/* A remember under partition (docs/gossip.md, "Partition mode"; docs/api.md, "Cluster
 * mode"): with cluster.partition_writes = "accept", a remember whose space's primary cannot be
 * reached (the route hook set ask->hint) is parsed as the remember handler parses it and kept
 * on this node as a hint (api_cluster_hooks.hint_remember: durable before the answer), then
 * answered 202 with the ids assigned now, "accepted": "partition" and "merged": false. The
 * hint is merged through the primary once it is reachable, with these ids; until then the
 * memories are not visible to reads. */
#include "rest_internal.h"

#include <stdio.h>
#include <string.h>

static void hint_answer(mn_http_response_t *resp, bool batch, const mn_id_t *ids, size_t n,
                        const char *why)
{
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, batch ? "ids" : "id");
    if (batch) jw_arr(&w);
    for (size_t i = 0; i < n; i++)
        jw_id(&w, &ids[i]);
    if (batch) jw_arr_end(&w);
    jw_key(&w, "accepted");
    jw_str(&w, "partition");
    jw_key(&w, "merged");
    jw_bool(&w, false);
    jw_key(&w, "reason");
    jw_str(&w, why);
    jw_obj_end(&w);
    jw_respond(&w, resp, 202);
}

void rest_hint_remember(mn_api_t *api, const mn_http_request_t *req, mn_http_response_t *resp,
                        const api_route_ask *ask)
{
    cJSON *body = rest_body_in_space(api, req, resp);
    if (!body) return;
    mn_error err = {0};
    api_arena a;
    api_arena_init(&a);
    int level = -1; /* read and checked; a hint is durable here, its merge waits for the
                     * space's own level */
    size_t n = 1;
    mn_memory_t *mems = NULL;
    mn_id_t *ids = NULL;
    bool batch = false;
    const api_cluster_hooks *h = api->cluster;
    mn_err rc = rest_remember_parse(body, &a, &mems, &n, &level, &batch, &err);
    if (!rc && !(ids = api_arena_alloc(&a, n * sizeof *ids)))
        rc = mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    if (!rc && !h->hint_remember) rc = mn_error_set(&err, MN_ERR_UNAVAILABLE, "%s", ask->why);
    if (!rc && !ask->has_hint_base)
        rc = mn_error_set(&err, MN_ERR_INTERNAL, "no ids were chosen for the hint");
    if (!rc) rc = h->hint_remember(h->arg, ask->space, mems, n, &ask->hint_base, ids, &err);
    api_json_free(body);
    if (rc == MN_ERR_LIMIT || rc == MN_ERR_UNAVAILABLE || rc == MN_ERR_IO) {
        char msg[sizeof err.message + sizeof ask->why + 40];
        snprintf(msg, sizeof msg, "%s; not kept as a partition write: %s", ask->why, err.message);
        mn_http_respond_error(resp, 503, "unavailable", msg,
                              "retry later; remember with the same idempotency_key stores "
                              "nothing twice");
        mn_http_add_header(resp, "retry-after", "1");
    } else if (!rest_failed(resp, rc, &err, API_CTX_SPACE)) {
        hint_answer(resp, batch, ids, n, ask->why);
        mn_http_add_header(resp, "x-mnemo-accepted", "partition");
    }
    api_arena_free(&a);
}
