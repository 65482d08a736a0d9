/* A recall over many spaces, as every door runs it (api_recall_many.c): the plan (the key's
 * right to read each space, the prefix), the spaces' weights, the run on api->query. */
#ifndef MN_API_RECALL_MANY_H
#define MN_API_RECALL_MANY_H

#include "api_internal.h"
#include "mnemo/query.h"

typedef struct api_many_req {
    const char *const *names; /* "spaces", or NULL */
    size_t n_names;
    const char *prefix; /* "space_prefix", or NULL */
    const char *key;    /* the caller's API key (NULL: none), for each space's check */
    size_t key_len;
    int64_t timeout_ms; /* 1..MN_QUERY_TIMEOUT_MS_MAX */
} api_many_req;

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

#endif
