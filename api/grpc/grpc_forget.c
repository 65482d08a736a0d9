/* The gRPC methods of forget by filter (docs/grpc.md): ForgetWhere, GetJob, CancelJob.
 * Like the REST handlers they translate only: the work is api_forget_where's and the jobs
 * are api_jobs' (api/api_forget.c, api/api_jobs.c). */
#include "grpc_internal.h"

#include "api_forget.h"

#include <stdlib.h>
#include <string.h>

#define OOM(err) mn_error_set((err), MN_ERR_NOMEM, "out of memory")

static Mnemo__V1__ForgetMode mode_out(mn_forget_mode_t m)
{
    return m == MN_FORGET_SUPPRESS ? MNEMO__V1__FORGET_MODE__FORGET_MODE_SUPPRESS
                                   : MNEMO__V1__FORGET_MODE__FORGET_MODE_DELETE;
}

static Mnemo__V1__Job *job_out(api_arena *a, const api_job_status *st)
{
    Mnemo__V1__Job *j = G_NEW(a, Mnemo__V1__Job, mnemo__v1__job__init);
    if (!j) return NULL;
    j->id = api_arena_strndup(a, st->id, strlen(st->id));
    j->space = api_arena_strndup(a, st->space, strlen(st->space));
    const char *state = api_job_state_name(st->state);
    j->state = api_arena_strndup(a, state, strlen(state));
    if (!j->id || !j->space || !j->state) return NULL;
    j->has_mode = j->has_total = j->has_done = j->has_forgotten = j->has_created_at_ms = true;
    j->mode = mode_out(st->mode);
    j->total = st->total;
    j->done = st->done;
    j->forgotten = st->forgotten;
    j->created_at_ms = st->created_ms;
    j->has_finished_at_ms = st->finished_ms != 0;
    j->finished_at_ms = st->finished_ms;
    if (st->state == API_JOB_FAILED &&
        !(j->error = api_arena_strndup(a, st->error, strlen(st->error))))
        return NULL;
    return j;
}

static void strings_json(api_jw *w, const char *key, char **s, size_t n)
{
    if (!n) return;
    jw_key(w, key);
    jw_arr(w);
    for (size_t i = 0; i < n; i++)
        jw_str(w, s[i]);
    jw_arr_end(w);
}

/* The request's conditions as JSON text for the audit line (in the arena), with the names
 * the REST body gives them; NULL when it has none. */
static char *conditions_json(api_arena *a, const Mnemo__V1__Filter *f)
{
    if (!f) return NULL;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    strings_json(&w, "tags_any", f->tags_any, f->n_tags_any);
    strings_json(&w, "tags_all", f->tags_all, f->n_tags_all);
    if (f->n_metadata) {
        jw_key(&w, "metadata");
        jw_obj(&w);
        for (size_t i = 0; i < f->n_metadata; i++) {
            jw_key(&w, f->metadata[i]->key ? f->metadata[i]->key : "");
            jw_str(&w, f->metadata[i]->value ? f->metadata[i]->value : "");
        }
        jw_obj_end(&w);
    }
    if (f->has_kind) {
        jw_key(&w, "kind");
        jw_int(&w, f->kind);
    }
    if (f->has_when_from_ms || f->has_when_to_ms) {
        jw_key(&w, "when");
        jw_obj(&w);
        if (f->has_when_from_ms) {
            jw_key(&w, "from");
            jw_time(&w, f->when_from_ms);
        }
        if (f->has_when_to_ms) {
            jw_key(&w, "to");
            jw_time(&w, f->when_to_ms);
        }
        jw_obj_end(&w);
    }
    if (f->has_min_confidence) {
        jw_key(&w, "min_confidence");
        jw_float(&w, f->min_confidence);
    }
    const char *const strs[][2] = {
        {"who", f->who}, {"where", f->where}, {"session", f->session}, {"expr", f->expr}};
    for (size_t i = 0; i < 4; i++)
        if (strs[i][1]) {
            jw_key(&w, strs[i][0]);
            jw_str(&w, strs[i][1]);
        }
    jw_obj_end(&w);
    char *s = w.oom ? NULL : api_arena_strndup(a, w.buf, w.len);
    jw_free(&w);
    return s;
}

/* At least one condition, and none of what a forget refuses. */
static mn_err check_filter(const Mnemo__V1__Filter *f, mn_error *err)
{
    if (f && f->has_include_suppressed)
        return mn_error_set(err, MN_ERR_INVALID,
                            "filter.include_suppressed: not for a forget (a delete takes "
                            "suppressed memories too)");
    if (!f || !(f->n_tags_any || f->n_tags_all || f->n_metadata || f->has_kind ||
                f->has_when_from_ms || f->has_when_to_ms || f->has_min_confidence || f->who ||
                f->where || f->session || (f->expr && *f->expr)))
        return mn_error_set(err, MN_ERR_INVALID,
                            "filter: a forget by filter needs at least one condition; to empty "
                            "a space, drop it");
    return MN_OK;
}

static mn_err req_in(gctx *c, const Mnemo__V1__ForgetWhereRequest *q, api_forget_req *r,
                     mn_error *err)
{
    memset(r, 0, sizeof *r);
    r->space = q->space ? q->space : "";
    r->door = "grpc";
    r->key = c->key_name;
    r->mode = MN_FORGET_DELETE;
    if (q->has_mode && q->mode == MNEMO__V1__FORGET_MODE__FORGET_MODE_SUPPRESS)
        r->mode = MN_FORGET_SUPPRESS;
    else if (q->has_mode && q->mode != MNEMO__V1__FORGET_MODE__FORGET_MODE_DELETE &&
             q->mode != MNEMO__V1__FORGET_MODE__FORGET_MODE_UNSPECIFIED)
        return mn_error_set(err, MN_ERR_INVALID, "mode: unknown ForgetMode %d", (int)q->mode);
    r->dry_run = q->has_dry_run && q->dry_run;
    r->async = q->has_as_job && q->as_job;
    mn_err rc = check_filter(q->filter, err);
    if (rc) return rc;
    mn_filter_init(&r->filter);
    if ((rc = g_filter_in(q->filter, &c->arena, &r->filter, err))) return rc;
    r->filter_json = conditions_json(&c->arena, q->filter);
    return MN_OK;
}

static mn_err result_out(gctx *c, const api_forget_req *r, const api_forget_result *out,
                         Mnemo__V1__ForgetWhereResponse *o, mn_error *err)
{
    o->has_count = o->has_mode = o->has_dry_run = true;
    o->count = out->count;
    o->mode = mode_out(r->mode);
    o->dry_run = r->dry_run;
    if (out->is_job) return (o->job = job_out(&c->arena, &out->job)) ? MN_OK : OOM(err);
    if (!r->dry_run) {
        o->has_done = o->has_forgotten = true;
        o->done = out->progress.done;
        o->forgotten = out->progress.forgotten;
        return MN_OK;
    }
    o->sample = (Mnemo__V1__Memory **)g_ptrs(&c->arena, out->n_sample);
    if (out->n_sample && !o->sample) return OOM(err);
    for (size_t i = 0; i < out->n_sample; i++)
        if (!(o->sample[i] = g_memory_out(&c->arena, &out->sample[i]))) return OOM(err);
    o->n_sample = out->n_sample;
    return MN_OK;
}

mn_err g_m_forget_where(gctx *c, const ProtobufCMessage *req, ProtobufCMessage **resp,
                        mn_error *err)
{
    const Mnemo__V1__ForgetWhereRequest *q = (const Mnemo__V1__ForgetWhereRequest *)req;
    api_forget_req r;
    mn_err rc = req_in(c, q, &r, err);
    if (rc) return rc;
    api_forget_result out;
    if ((rc = api_forget_where(c->api, &r, &out, err))) return rc;
    Mnemo__V1__ForgetWhereResponse *o =
        G_NEW(&c->arena, Mnemo__V1__ForgetWhereResponse, mnemo__v1__forget_where_response__init);
    rc = o ? result_out(c, &r, &out, o, err) : OOM(err);
    api_forget_result_clear(&out);
    if (!rc) *resp = &o->base;
    return rc;
}

static mn_err job_call(gctx *c, const ProtobufCMessage *req, ProtobufCMessage **resp, bool cancel,
                       mn_error *err)
{
    const Mnemo__V1__JobRequest *q = (const Mnemo__V1__JobRequest *)req;
    const char *space = q->space ? q->space : "", *id = q->id ? q->id : "";
    api_job_status st;
    mn_err rc = cancel ? api_jobs_cancel(c->api->jobs, space, id, &st, err)
                       : api_jobs_get(c->api->jobs, space, id, &st, err);
    if (rc) return rc;
    Mnemo__V1__Job *j = job_out(&c->arena, &st);
    if (!j) return OOM(err);
    *resp = &j->base;
    return MN_OK;
}

mn_err g_m_get_job(gctx *c, const ProtobufCMessage *req, ProtobufCMessage **resp, mn_error *err)
{
    return job_call(c, req, resp, false, err);
}

mn_err g_m_cancel_job(gctx *c, const ProtobufCMessage *req, ProtobufCMessage **resp, mn_error *err)
{
    return job_call(c, req, resp, true, err);
}
