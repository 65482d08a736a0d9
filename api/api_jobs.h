/* Background jobs of the API (api_jobs.c): a forget by filter too large to answer at once
 * runs on a thread of its own, and its progress can be polled and the run cancelled.
 *
 * Jobs live in memory only: at most API_JOBS_MAX records (running ones and finished ones
 * kept API_JOB_KEEP_MS after they end; the oldest finished one makes room), at most
 * API_JOBS_RUNNING_MAX running at once. A restart loses the records, never the chunks a
 * job committed (each is durable when acknowledged); a job is not resumed after a restart. */
#ifndef MN_API_JOBS_H
#define MN_API_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/engine.h"

#define API_JOBS_MAX 64
#define API_JOBS_RUNNING_MAX 4
#define API_JOB_KEEP_MS (3600LL * 1000)
#define API_JOB_ID_LEN 16

typedef enum {
    API_JOB_RUNNING = 0,
    API_JOB_DONE,
    API_JOB_CANCELLED,
    API_JOB_FAILED,
} api_job_state;
const char *api_job_state_name(api_job_state s); /* "running", "done", ... */

/* A job as a door shows it: a copy, taken under the jobs' lock. */
typedef struct api_job_status {
    char id[API_JOB_ID_LEN + 1];
    char space[MN_SPACE_NAME_MAX + 1];
    api_job_state state;
    mn_forget_mode_t mode;
    size_t total, done, forgotten;
    int64_t created_ms, finished_ms; /* finished_ms 0 while running */
    char error[MN_ERROR_MSG_MAX];    /* state failed: why */
} api_job_status;

typedef struct api_jobs api_jobs;
/* Called on the job's thread when it ends (for the audit line); st is its final status. */
typedef void (*api_job_end_fn)(void *arg, const api_job_status *st);

api_jobs *api_jobs_new(mn_engine_t *e);
/* Cancels every running job, waits for their threads (each stops after its current
 * chunk) and frees everything. Call before the engine closes. NULL is fine. */
void api_jobs_free(api_jobs *j);
/* Starts forgetting ids[0..n) (taken over: freed by the job, also on failure) of space on
 * a new thread; *out is its first status. end (may be NULL) is called with end_arg when
 * it ends and end_arg is then freed with free(). MN_ERR_BUSY when API_JOBS_RUNNING_MAX
 * run already, or every record is taken. */
mn_err api_jobs_start_forget(api_jobs *j, const char *space, mn_forget_mode_t mode, mn_id_t *ids,
                             size_t n, api_job_end_fn end, void *end_arg, api_job_status *out,
                             mn_error *err);
/* The status of job id of space (MN_ERR_NOT_FOUND: unknown, expired or of another space). */
mn_err api_jobs_get(api_jobs *j, const char *space, const char *id, api_job_status *out,
                    mn_error *err);
/* Asks a running job to stop after its current chunk; *out is its status then (a job that
 * has ended already is left as it is). */
mn_err api_jobs_cancel(api_jobs *j, const char *space, const char *id, api_job_status *out,
                       mn_error *err);

#endif
