/* A recall over many spaces for every door (REST POST /v1/recall, gRPC RecallMany, the MCP
 * recall tool with spaces or space_prefix; docs/api.md, "Recall over many spaces").
 *
 * The names this node knows come from the engine, in cluster mode from the catalog (every
 * space of the cluster; api/cluster_query.c serves the ones held elsewhere). The key's right
 * is asked of auth.c for each space, as a single-space recall asks it at the HTTP gate. Each
 * space held here weighs its live memories, for the confidence penalty of query_merge.c; one
 * held elsewhere weighs the mean of those (its count is not known here). */
#include "api_recall_many.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

#define CL_MANY_GRANT_SPACES 4096 /* a key's listed spaces, joined (only "*" is read here) */

typedef struct reader {
    const mn_auth_t *auth;
    const char *key;
    size_t key_len;
} reader;

static bool may_read(void *arg, const char *space)
{
    const reader *r = arg;
    if (!r->auth) return true;
    return mn_auth_allow(r->auth, r->key, r->key_len, MN_AUTH_OP_RECALL, space, NULL) == MN_AUTH_OK;
}

static mn_err plan(mn_api_t *api, const api_many_req *in, mn_query_plan_t *out, mn_error *err)
{
    mn_space_def_t *defs = NULL;
    size_t n = 0;
    mn_err rc = api_space_list(api, &defs, &n, NULL, err);
    const char **known = rc ? NULL : calloc(n ? n : 1, sizeof *known);
    if (!rc && !known) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n; i++)
        known[i] = defs[i].name;
    reader r = {api->auth, in->key, in->key_len};
    mn_query_plan_in_t pin = {
        .names = in->names,
        .n_names = in->n_names,
        .prefix = in->prefix,
        .known = known,
        .n_known = n,
        .may_read = may_read,
        .may_read_arg = &r,
    };
    if (!rc) rc = mn_query_plan(&pin, out, err);
    free(known);
    free(defs);
    return rc;
}

/* The grant and read preference the executors get (auth off: an open grant). */
static void caller_of(const mn_api_t *api, const api_many_req *in, api_many_caller *c)
{
    *c = (api_many_caller){.read = in->read, .role = MN_AUTH_OPEN, .every_space = true};
    char spaces[CL_MANY_GRANT_SPACES];
    mn_auth_grant_t g;
    if (!mn_auth_grant_of(api->auth, in->key, in->key_len, NULL, spaces, sizeof spaces, &g)) {
        c->role = MN_AUTH_READ; /* not reached: the plan refused an unknown key */
        c->every_space = false;
        return;
    }
    c->role = g.role;
    c->every_space = !strcmp(g.spaces, "*");
    snprintf(c->key_name, sizeof c->key_name, "%s", g.name ? g.name : "");
}

mn_err api_recall_many(mn_api_t *api, const api_many_req *in, const mn_recall_req_t *req,
                       api_many *out, mn_error *err)
{
    *out = (api_many){0};
    if (!api->query) return mn_error_set(err, MN_ERR_CLOSED, "recall over many spaces: stopped");
    mn_err rc = plan(api, in, &out->plan, err);
    size_t n = out->plan.n;
    double *weights = rc ? NULL : calloc(n ? n : 1, sizeof *weights);
    if (!rc && !weights) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n; i++) {
        mn_space_stats_t st;
        weights[i] = mn_engine_space_get(api->engine, out->plan.spaces[i], &st, NULL)
                         ? -1.0 /* gone since the plan: unknown */
                         : (double)st.memories;
    }
    api_many_caller c;
    caller_of(api, in, &c);
    mn_query_run_opts_t o = {
        .weights = weights, .timeout_ms = in->timeout_ms, .caller = &c, .caller_len = sizeof c};
    if (!rc)
        rc = mn_query_run_ex(api->query, (const char *const *)out->plan.spaces, n, req, &o,
                             &out->res, err);
    free(weights);
    return rc;
}

void api_many_clear(api_many *m)
{
    mn_query_plan_clear(&m->plan);
    mn_query_result_clear(&m->res);
}
