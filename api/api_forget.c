/* Forget by filter for every door (api_forget.h; docs/api.md, "Forget by filter").
 *
 * The engine selects the matching ids once (a snapshot: memories written later are not
 * touched). A dry run reads the first few of them and changes nothing. A run of at most
 * API_FORGET_SYNC_MAX ids, without async, goes through the engine's chunks on the caller's
 * thread and answers with what it did; a larger one, or one asked to be async, becomes a
 * job (api_jobs.c) and answers with the job at once. Every request is one audit line; a
 * job writes a second one when it ends. */
#include "api_forget.h"

#include "api_audit.h"
#include "api_internal.h"
#include "auth.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void api_forget_result_clear(api_forget_result *r)
{
    for (size_t i = 0; i < r->n_sample; i++)
        mn_memory_clear(&r->sample[i]);
    r->n_sample = 0;
}

const char *api_key_name(const mn_api_t *api, const char *key, size_t key_len)
{
    if (!api->auth || !key) return "";
    mn_auth_verdict_t v;
    /* any op that needs a key: the name is found before the role is judged */
    mn_auth_allow(api->auth, key, key_len, MN_AUTH_OP_METRICS, NULL, &v);
    return v.key_name ? v.key_name : "";
}

/* Percent-decodes s into out (cap bytes); false if it does not fit or is malformed. */
static bool pct_decode(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s; s++) {
        unsigned v = (unsigned char)*s;
        if (*s == '%' && sscanf(s + 1, "%2x", &v) == 1 && isxdigit((unsigned char)s[1]) &&
            isxdigit((unsigned char)s[2]))
            s += 2;
        else if (*s == '%')
            return false;
        if (n + 1 >= cap) return false;
        out[n++] = (char)v;
    }
    out[n] = 0;
    return true;
}

const char *api_request_key_name(const mn_api_t *api, const mn_http_request_t *req)
{
    const char *hop = api->cluster && mn_http_header_get(req, "x-mnemo-hop-node")
                          ? mn_http_header_get(req, "x-mnemo-hop-key")
                          : NULL;
    if (!hop) {
        const char *key = mn_auth_http_key(req);
        return api_key_name(api, key, key ? strlen(key) : 0);
    }
    char name[128];
    const char *known =
        pct_decode(hop, name, sizeof name) ? mn_auth_name_known(api->auth, name) : NULL;
    return known ? known : "";
}

static const char *mode_name(mn_forget_mode_t m)
{
    return m == MN_FORGET_SUPPRESS ? "suppress" : "delete";
}

/* The fields every forget_where audit line has. */
static api_audit_rec rec_of(const char *key, const char *door, const char *space,
                            const char *filter, mn_forget_mode_t mode)
{
    api_audit_rec a = API_AUDIT_REC_INIT;
    a.key = key;
    a.door = door;
    a.space = space;
    a.op = "forget_where";
    a.filter = filter;
    a.mode = mode_name(mode);
    return a;
}

static void audit(mn_api_t *api, const api_forget_req *r, const api_forget_result *out)
{
    api_audit_rec a = rec_of(r->key, r->door, r->space, r->filter_json, r->mode);
    a.dry_run = r->dry_run;
    a.count = (int64_t)out->count;
    if (out->is_job) {
        a.job = out->job.id;
        a.state = "started";
    } else if (!r->dry_run) {
        a.done = (int64_t)out->progress.done;
        a.forgotten = (int64_t)out->progress.forgotten;
        a.state = out->progress.done < out->count ? "failed" : "done";
    }
    api_audit_write(api->audit, &a);
}

/* What a job's end needs for its audit line: one block, the strings after it. */
typedef struct job_end {
    api_audit *audit;
    char key[128];
    char door[8];
    char *filter; /* points after the struct */
} job_end;

static void on_job_end(void *arg, const api_job_status *st)
{
    job_end *je = arg;
    api_audit_rec a = rec_of(je->key, je->door, st->space, je->filter, st->mode);
    a.dry_run = 0;
    a.count = (int64_t)st->total;
    a.done = (int64_t)st->done;
    a.forgotten = (int64_t)st->forgotten;
    a.job = st->id;
    a.state = api_job_state_name(st->state);
    api_audit_write(je->audit, &a);
}

static job_end *job_end_new(mn_api_t *api, const api_forget_req *r)
{
    size_t fl = r->filter_json ? strlen(r->filter_json) + 1 : 0;
    job_end *je = calloc(1, sizeof *je + fl);
    if (!je) return NULL;
    je->audit = api->audit;
    snprintf(je->key, sizeof je->key, "%s", r->key ? r->key : "");
    snprintf(je->door, sizeof je->door, "%s", r->door ? r->door : "");
    if (fl) {
        je->filter = (char *)(je + 1);
        memcpy(je->filter, r->filter_json, fl);
    }
    return je;
}

/* The first memories of the selection that can still be read. */
static void read_sample(mn_api_t *api, const char *space, const mn_id_t *ids, size_t n,
                        api_forget_result *out)
{
    for (size_t i = 0; i < n && out->n_sample < API_FORGET_SAMPLE; i++) {
        mn_error err = {0};
        if (mn_engine_get(api->engine, space, &ids[i], false, &out->sample[out->n_sample], &err))
            continue; /* forgotten since the selection */
        out->n_sample++;
    }
}

/* Does the filter expression test any field? ({}, {"and": []} and {"not": {"or": []}} test
 * none: they match every memory or none.) */
static bool expr_has_leaf(const mn_filter_t *f)
{
    for (uint32_t i = 0; i < f->n_expr; i++)
        if (f->expr[i].type == MN_FILTER_LEAF) return true;
    return false;
}

/* Does f hold any condition? (An empty list or object given as one is none: a forget by
 * filter that matches everything would empty the space.) Every member of mn_filter_t that
 * narrows a selection is listed here. */
static bool has_condition(const mn_filter_t *f)
{
    return f->n_tags_any || f->n_tags_all || f->n_metadata || f->kind >= 0 ||
           f->when_from_ms != MN_TIME_UNSET || f->when_to_ms != MN_TIME_UNSET ||
           f->min_confidence > 0 || f->who || f->where || f->session || expr_has_leaf(f);
}

mn_err api_forget_where(mn_api_t *api, const api_forget_req *r, api_forget_result *out,
                        mn_error *err)
{
    memset(out, 0, sizeof *out);
    if (!has_condition(&r->filter))
        return mn_error_set(err, MN_ERR_INVALID,
                            "filter: a forget by filter needs at least one condition that "
                            "narrows it (empty lists and objects are none); to empty a space, "
                            "drop it");
    mn_id_t *ids = NULL;
    size_t n = 0;
    mn_err rc = mn_engine_forget_select(api->engine, r->space, &r->filter, r->mode, &ids, &n, err);
    if (rc) return rc;
    out->count = n;
    if (r->dry_run) {
        read_sample(api, r->space, ids, n, out);
    } else if (n > API_FORGET_SYNC_MAX || r->async) {
        job_end *je = job_end_new(api, r);
        if (!je) {
            free(ids);
            return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        }
        rc = api_jobs_start_forget(api->jobs, r->space, r->mode, ids, n, on_job_end, je, &out->job,
                                   err);
        ids = NULL; /* the job's, started or not */
        out->is_job = !rc;
    } else {
        rc = mn_engine_forget_ids(api->engine, r->space, r->mode, ids, n, API_FORGET_PACE_MS, NULL,
                                  NULL, &out->progress, err);
    }
    free(ids);
    if (!rc || out->progress.done) audit(api, r, out);
    return rc;
}
