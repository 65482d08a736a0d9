/* The local holder of a recall over many spaces (include/mnemo/query.h): each space is one
 * job on the query pool, run as a single-space recall runs (mn_embed_recall), so a memory's
 * score is the one a recall of its space alone gives. The remote holders of cluster mode
 * plug in beside it (issue 16: the peer port's query channel). */
#include "api_internal.h"
#include "api_recall_many.h"
#include "embed/embed.h"
#include "mnemo/api.h"
#include "mnemo/query.h"

void api_query_local_exec(void *arg, const char *const *spaces, size_t n,
                          const mn_recall_req_t *req, const void *caller, int64_t deadline_ns,
                          mn_query_answer_t *out)
{
    mn_api_t *api = arg;
    const api_many_caller *c = caller; /* NULL: no preference given (a single node's run) */
    (void)deadline_ns;                 /* a local recall cannot be interrupted; it is short */
    for (size_t i = 0; i < n; i++) {
        /* in a cluster, the checks the route makes for a single-space read: a lapsed
         * primary serves no read=primary read; a copy behind says so in every hit */
        int64_t lag = -1;
        if (c && api->cluster && api->cluster->local_read &&
            (out[i].rc = api->cluster->local_read(api->cluster->arg, spaces[i], c->read, &lag,
                                                  &out[i].err)))
            continue;
        out[i].rc =
            mn_embed_recall(api->embed, api->engine, spaces[i], req, &out[i].res, &out[i].err);
        if (out[i].rc || lag <= API_STALE_REPLICA_MS) continue;
        for (size_t h = 0; h < out[i].res.n_hits; h++)
            out[i].res.hits[h].confidence.reasons |= MN_REASON_STALE_REPLICA;
    }
}

mn_err mn_api_start_query(mn_api_t *api, uint32_t threads, mn_error *err)
{
    mn_query_holder_t local = {
        .name = "local", .exec = api_query_local_exec, .arg = api, .batch_max = 1};
    mn_query_opts_t o = {.threads = threads, .holders = &local, .n_holders = 1};
    return mn_query_new(&o, &api->query, err);
}

mn_err api_query_restart(mn_api_t *api, const mn_query_holder_t *remote, mn_query_locate_fn locate,
                         void *locate_arg, mn_error *err)
{
    mn_query_holder_t h[2] = {
        {.name = "local", .exec = api_query_local_exec, .arg = api, .batch_max = 1},
    };
    if (remote) h[1] = *remote;
    mn_query_opts_t o = {.holders = h,
                         .n_holders = remote ? 2 : 1,
                         .locate = remote ? locate : NULL,
                         .locate_arg = locate_arg};
    mn_query_t *q = NULL;
    mn_err rc = mn_query_new(&o, &q, err);
    if (rc) return rc;
    mn_query_free(api->query); /* no run may be under way: before listening, after stopping */
    api->query = q;
    return MN_OK;
}

void mn_api_stop_query(mn_api_t *api)
{
    if (!api) return;
    mn_query_free(api->query);
    api->query = NULL;
}
