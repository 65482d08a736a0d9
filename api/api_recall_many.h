/* A recall over many spaces, as every door runs it (api_recall_many.c): the plan (the key's
 * right to read each space, the prefix), the spaces' weights, the run on api->query. */
#ifndef MN_API_RECALL_MANY_H
#define MN_API_RECALL_MANY_H

#include "api_internal.h"
#include "auth.h"
#include "mnemo/query.h"

typedef struct api_many_req {
    const char *const *names; /* "spaces", or NULL */
    size_t n_names;
    const char *prefix; /* "space_prefix", or NULL */
    const char *key;    /* the caller's API key (NULL: none), for each space's check */
    size_t key_len;
    int64_t timeout_ms; /* 1..MN_QUERY_TIMEOUT_MS_MAX */
    api_read_pref read; /* cluster mode: where each space is read (docs/api.md, "Cluster mode") */
} api_many_req;

/* What a run hands its executors (mn_query_run_opts_t.caller): in cluster mode the remote
 * executor (api/cluster_query.c) sends the read preference and the key's grant with the cue;
 * the grant's spaces are "*" or, when the key has a list, just the spaces of the batch (each
 * one checked here by the plan). */
#define API_MANY_KEY_NAME_MAX 127
typedef struct api_many_caller {
    api_read_pref read;
    mn_auth_role_t role;
    bool every_space; /* the key's grant is "*" */
    char key_name[API_MANY_KEY_NAME_MAX + 1];
} api_many_caller;

typedef struct api_many {
    mn_query_plan_t plan; /* the spaces searched; plan.denied: the answer is 403 */
    mn_query_result_t res;
} api_many;

/* Plans and runs req over the request's spaces. On MN_ERR_INVALID with out->plan.denied set,
 * the caller may not read that space: the doors answer 403 (permission_denied) naming it.
 * Clear out with api_many_clear in every case. */
mn_err api_recall_many(mn_api_t *api, const api_many_req *in, const mn_recall_req_t *req,
                       api_many *out, mn_error *err);
void api_many_clear(api_many *m);

/* The local holder's executor (query_local.c): each space by mn_embed_recall. */
void api_query_local_exec(void *arg, const char *const *spaces, size_t n,
                          const mn_recall_req_t *req, const void *caller, int64_t deadline_ns,
                          mn_query_answer_t *out);
/* Replaces api->query by one whose holders are the local one and remote (NULL: the local one
 * only), remote spaces told by locate (cluster mode, api/cluster_query.c). No run may be under
 * way: call it before the doors take requests, or after they stopped. */
mn_err api_query_restart(mn_api_t *api, const mn_query_holder_t *remote, mn_query_locate_fn locate,
                         void *locate_arg, mn_error *err);

#endif
