/* HTTP handlers of forget by filter (docs/api.md, "Forget by filter"):
 *   POST   /v1/spaces/{space}/forget      dry run, a run answered at once, or a job (202)
 *   GET    /v1/spaces/{space}/jobs/{id}   a job's progress
 *   DELETE /v1/spaces/{space}/jobs/{id}   cancel a job (it stops after its current chunk)
 *
 * The body's filter is read by rest_filter_from_json, the same reader recall uses: the
 * shorthand fields, and the nested "filter" language where this build has it. A request
 * must name at least one condition: a forget by filter that matches everything would empty
 * the space, and that is what dropping the space is for. The work itself is
 * api_forget_where's (api/api_forget.c), shared with gRPC and MCP. */
#include "rest_internal.h"

#include "api_forget.h"
#include "auth.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The members of the body that are conditions of the filter. */
static const char *const cond_fields[] = {
    "filter",         "tags_any", "tags_all", "metadata", "kind", "when",
    "min_confidence", "who",      "where",    "session",  NULL};
static const char *const forget_fields[] = {
    "filter", "tags_any",       "tags_all", "metadata", "kind",
    "when",   "min_confidence", "who",      "where",    "session",
    "as_of",  "mode",           "dry_run",  "async",    "consistency", NULL};

static bool language_built;
static pthread_once_t language_once = PTHREAD_ONCE_INIT;

/* Does rest_filter_from_json read a nested "filter" in this build? Asked once, of the
 * function itself: a filter it reads changes the mn_filter_t. */
static void probe_language(void)
{
    static const char probe[] = "{\"filter\":{\"kind\":{\"eq\":\"semantic\"}}}";
    api_json_result res;
    cJSON *o = api_json_parse(probe, sizeof probe - 1, &res);
    if (!o) return;
    api_arena a;
    api_arena_init(&a);
    mn_filter_t f, blank;
    mn_filter_init(&f);
    mn_filter_init(&blank);
    if (rest_filter_from_json(o, &a, &f, NULL) == MN_OK)
        language_built = memcmp(&f, &blank, sizeof f) != 0;
    api_arena_free(&a);
    api_json_free(o);
}

static bool present(const cJSON *body, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    return v && !cJSON_IsNull(v);
}

/* The conditions of the body as one JSON object (malloc'd text, for the audit line). */
static char *conditions_json(const cJSON *body)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    for (size_t i = 0; cond_fields[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, cond_fields[i]);
        if (v && !cJSON_IsNull(v)) cJSON_AddItemReferenceToObject(o, cond_fields[i], (cJSON *)v);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static mn_err mode_from_json(const cJSON *body, mn_forget_mode_t *mode, mn_error *err)
{
    const char *m = NULL;
    mn_err rc = api_get_string(body, "mode", "", &m, err);
    if (rc || !m) return rc;
    if (!strcmp(m, "delete"))
        *mode = MN_FORGET_DELETE;
    else if (!strcmp(m, "suppress"))
        *mode = MN_FORGET_SUPPRESS;
    else
        return mn_error_set(err, MN_ERR_INVALID, "mode: must be delete or suppress, got \"%.32s\"",
                            m);
    return MN_OK;
}

/* Reads the body into r (strings in a or in body). */
static mn_err req_from_json(const cJSON *body, api_arena *a, api_forget_req *r, mn_error *err)
{
    mn_err rc = api_check_fields(body, forget_fields, "", err);
    if (rc) return rc;
    bool any = false;
    for (size_t i = 0; cond_fields[i]; i++)
        any |= present(body, cond_fields[i]);
    if (!any)
        return mn_error_set(err, MN_ERR_INVALID,
                            "filter: a forget by filter needs at least one condition (filter, "
                            "tags_any, tags_all, metadata, kind, when, min_confidence, who, "
                            "where or session); to empty a space, drop it");
    pthread_once(&language_once, probe_language);
    if (present(body, "filter") && !language_built)
        return mn_error_set(err, MN_ERR_INVALID,
                            "filter: the nested filter language is not in this build; use the "
                            "shorthand fields (tags_any, metadata, kind, when, who, ...)");
    mn_filter_init(&r->filter);
    if ((rc = rest_filter_from_json(body, a, &r->filter, err))) return rc;
    if ((rc = mode_from_json(body, &r->mode, err))) return rc;
    if ((rc = api_get_bool(body, "dry_run", "", NULL, &r->dry_run, err))) return rc;
    return api_get_bool(body, "async", "", NULL, &r->async, err);
}

/* The job object of docs/api.md. */
static void job_to_json(api_jw *w, const api_job_status *st)
{
    jw_obj(w);
    jw_key(w, "job");
    jw_str(w, st->id);
    jw_key(w, "space");
    jw_str(w, st->space);
    jw_key(w, "state");
    jw_str(w, api_job_state_name(st->state));
    jw_key(w, "mode");
    jw_str(w, st->mode == MN_FORGET_SUPPRESS ? "suppress" : "delete");
    jw_key(w, "total");
    jw_uint(w, st->total);
    jw_key(w, "done");
    jw_uint(w, st->done);
    jw_key(w, "forgotten");
    jw_uint(w, st->forgotten);
    jw_key(w, "created_at");
    jw_time(w, st->created_ms);
    jw_key(w, "finished_at");
    if (st->finished_ms)
        jw_time(w, st->finished_ms);
    else
        jw_null(w);
    if (st->state == API_JOB_FAILED) {
        jw_key(w, "error");
        jw_str(w, st->error);
    }
    jw_obj_end(w);
}

static void respond_result(mn_http_response_t *resp, const api_forget_req *r,
                           const api_forget_result *out)
{
    api_jw w;
    jw_init(&w);
    if (out->is_job) {
        job_to_json(&w, &out->job);
        jw_respond(&w, resp, 202);
        return;
    }
    jw_obj(&w);
    jw_key(&w, "count");
    jw_uint(&w, out->count);
    jw_key(&w, "mode");
    jw_str(&w, r->mode == MN_FORGET_SUPPRESS ? "suppress" : "delete");
    jw_key(&w, "dry_run");
    jw_bool(&w, r->dry_run);
    if (r->dry_run) {
        jw_key(&w, "sample");
        jw_arr(&w);
        for (size_t i = 0; i < out->n_sample; i++)
            rest_memory_to_json(&w, &out->sample[i]);
        jw_arr_end(&w);
    } else {
        jw_key(&w, "done");
        jw_uint(&w, out->progress.done);
        jw_key(&w, "forgotten");
        jw_uint(&w, out->progress.forgotten);
    }
    jw_obj_end(&w);
    jw_respond(&w, resp, 200);
}

void rest_h_forget_where(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    mn_api_t *api = ctx;
    cJSON *body = rest_body(req, resp, API_CTX_SPACE);
    if (!body) return;
    mn_error err = {0};
    api_arena a;
    api_arena_init(&a);
    /* the MCP tools call this handler in-process, on their own route */
    bool mcp = req->route && !strcmp(req->route, "/mcp");
    api_forget_req r = {.space = req->params[0], .mode = MN_FORGET_DELETE,
                        .door = mcp ? "mcp" : "http"};
    int level = -1;
    mn_err rc = req_from_json(body, &a, &r, &err);
    if (!rc) rc = rest_consistency_body(body, &level, &err);
    char *filter_json = rc ? NULL : conditions_json(body);
    api_forget_result out;
    if (!rc) {
        r.key = api_request_key_name(api, req);
        r.filter_json = filter_json;
        rc = api_forget_where(api, &r, &out, &err);
    }
    free(filter_json);
    if (rest_done(resp, body, &a, rc, &err, API_CTX_SPACE)) return;
    /* a run answered at once waits for its level; a job (202) is not waited for */
    if (out.is_job || r.dry_run || rest_write_settled(api, r.space, level, resp))
        respond_result(resp, &r, &out);
    api_forget_result_clear(&out);
}

static void job_h(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp, bool cancel)
{
    mn_api_t *api = ctx;
    if (!rest_query_none(req, resp, API_CTX_ADMIN)) return;
    mn_error err = {0};
    api_job_status st;
    mn_err rc = cancel ? api_jobs_cancel(api->jobs, req->params[0], req->params[1], &st, &err)
                       : api_jobs_get(api->jobs, req->params[0], req->params[1], &st, &err);
    if (rest_failed(resp, rc, &err, API_CTX_ADMIN)) return;
    api_jw w;
    jw_init(&w);
    job_to_json(&w, &st);
    jw_respond(&w, resp, 200);
}

void rest_h_job_get(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    job_h(ctx, req, resp, false);
}

void rest_h_job_cancel(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    job_h(ctx, req, resp, true);
}
