/* Forget by filter, as every door runs it (api_forget.c): the selection, a dry run's count
 * and sample, a run answered at once or handed to a job, and the audit lines. The doors
 * only translate their request into api_forget_req and the result into their answer. */
#ifndef MN_API_FORGET_H
#define MN_API_FORGET_H

#include "api_jobs.h"
#include "mnemo/api.h"
#include "mnemo/engine.h"

/* Memories a dry run shows. */
#define API_FORGET_SAMPLE 10
/* Selections larger than this run as a job (202) even without async. */
#define API_FORGET_SYNC_MAX 10000
/* The pace of every run (mn_engine_forget_ids): a chunk commits in about this long, the
 * longest a write to the space waits behind one. */
#define API_FORGET_PACE_MS 50

typedef struct api_forget_req {
    const char *space;
    mn_filter_t filter;
    mn_forget_mode_t mode;
    bool dry_run;
    bool async;              /* a job whatever the count */
    const char *filter_json; /* the request's filter as JSON text, for the audit line */
    const char *key;         /* the API key's name, or NULL */
    const char *door;        /* "http", "grpc", "mcp" */
} api_forget_req;

typedef struct api_forget_result {
    size_t count; /* memories selected */
    /* dry run: the first of them (up to API_FORGET_SAMPLE; clear with api_forget_result_clear) */
    mn_memory_t sample[API_FORGET_SAMPLE];
    size_t n_sample;
    bool is_job; /* the run went to a job: job is its first status */
    api_job_status job;
    mn_forget_progress_t progress; /* a run answered at once: what it did */
} api_forget_result;
void api_forget_result_clear(api_forget_result *r);

mn_err api_forget_where(mn_api_t *api, const api_forget_req *r, api_forget_result *out,
                        mn_error *err);
/* The name of the API key (key_len bytes) for audit lines ("" when auth is off, the key is
 * unnamed or unknown). */
const char *api_key_name(const mn_api_t *api, const char *key, size_t key_len);
/* The configured name of the key behind req ("" if none): its Authorization key, or in cluster
 * mode the key an internal hop vouches for (the cluster gate verified the hop). */
const char *api_request_key_name(const mn_api_t *api, const mn_http_request_t *req);

#endif
