/* Background jobs: the forget-by-filter runs too large to answer at once (api_jobs.h).
 *
 * A fixed table of API_JOBS_MAX records under one mutex. Each job owns its ids and a
 * thread that calls mn_engine_forget_ids; the progress callback copies done and forgotten
 * into the record and reads the cancel flag, so a poll sees the figures of the last chunk
 * committed and a cancel takes effect before the next chunk. A record is freed (its thread
 * joined) only once the job has ended: when it expires or makes room, or at shutdown. */
#include "api_jobs.h"

#include "api_forget.h"
#include "mnemo/assert.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct api_job {
    api_jobs *owner;
    api_job_status st; /* guarded by owner->mu */
    bool cancel;       /* guarded by owner->mu */
    mn_id_t *ids;
    size_t n;
    api_job_end_fn end;
    void *end_arg;
    pthread_t thread;
} api_job;

struct api_jobs {
    mn_engine_t *e;
    pthread_mutex_t mu;
    api_job *slot[API_JOBS_MAX];
    mn_prng_t prng; /* job ids; guarded by mu */
};

const char *api_job_state_name(api_job_state s)
{
    static const char *const names[] = {"running", "done", "cancelled", "failed"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

api_jobs *api_jobs_new(mn_engine_t *e)
{
    api_jobs *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->e = e;
    pthread_mutex_init(&j->mu, NULL);
    mn_prng_seed(&j->prng, mn_random_seed());
    return j;
}

/* Joins an ended job's thread and frees it. */
static void job_free(api_job *job)
{
    mn_assert(job->st.state != API_JOB_RUNNING);
    pthread_join(job->thread, NULL);
    free(job->ids);
    free(job->end_arg);
    free(job);
}

void api_jobs_free(api_jobs *j)
{
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    for (size_t i = 0; i < API_JOBS_MAX; i++)
        if (j->slot[i]) j->slot[i]->cancel = true;
    pthread_mutex_unlock(&j->mu);
    for (size_t i = 0; i < API_JOBS_MAX; i++) {
        if (!j->slot[i]) continue;
        pthread_join(j->slot[i]->thread, NULL); /* it ends after its current chunk */
        free(j->slot[i]->ids);
        free(j->slot[i]->end_arg);
        free(j->slot[i]);
    }
    pthread_mutex_destroy(&j->mu);
    free(j);
}

static bool on_progress(void *arg, const mn_forget_progress_t *p)
{
    api_job *job = arg;
    pthread_mutex_lock(&job->owner->mu);
    job->st.done = p->done;
    job->st.forgotten = p->forgotten;
    bool go_on = !job->cancel;
    pthread_mutex_unlock(&job->owner->mu);
    return go_on;
}

static void *job_main(void *arg)
{
    api_job *job = arg;
    api_jobs *j = job->owner;
    mn_forget_progress_t pr;
    mn_error err = {0};
    mn_err rc = mn_engine_forget_ids(j->e, job->st.space, job->st.mode, job->ids, job->n,
                                     API_FORGET_PACE_MS, on_progress, job, &pr, &err);
    pthread_mutex_lock(&j->mu);
    job->st.done = pr.done;
    job->st.forgotten = pr.forgotten;
    job->st.finished_ms = mn_time_now_ms();
    if (rc) {
        job->st.state = API_JOB_FAILED;
        snprintf(job->st.error, sizeof job->st.error, "%s",
                 err.message[0] ? err.message : mn_strerror(rc));
    } else {
        job->st.state = pr.done < pr.total ? API_JOB_CANCELLED : API_JOB_DONE;
    }
    api_job_status final = job->st;
    pthread_mutex_unlock(&j->mu);
    mn_log_info("job %s (forget by filter in space %s): %s, %zu of %zu done, %zu forgotten",
                final.id, final.space, api_job_state_name(final.state), final.done, final.total,
                final.forgotten);
    if (job->end) job->end(job->end_arg, &final);
    return NULL;
}

/* A free record index (mu held): an empty one, else an expired or the oldest ended job's,
 * which is freed; -1 when every record is running. */
static int take_slot(api_jobs *j, int64_t now_ms, size_t *running)
{
    int free_i = -1, oldest = -1;
    *running = 0;
    for (int i = 0; i < API_JOBS_MAX; i++) {
        api_job *job = j->slot[i];
        if (!job) {
            if (free_i < 0) free_i = i;
            continue;
        }
        if (job->st.state == API_JOB_RUNNING) {
            (*running)++;
            continue;
        }
        if (now_ms - job->st.finished_ms >= API_JOB_KEEP_MS) { /* expired */
            job_free(job);
            j->slot[i] = NULL;
            if (free_i < 0) free_i = i;
        } else if (oldest < 0 || job->st.finished_ms < j->slot[oldest]->st.finished_ms) {
            oldest = i;
        }
    }
    if (free_i < 0 && oldest >= 0) {
        job_free(j->slot[oldest]);
        j->slot[oldest] = NULL;
        free_i = oldest;
    }
    return free_i;
}

static mn_err job_start(api_jobs *j, api_job *job, api_job_status *out, mn_error *err)
{
    pthread_mutex_lock(&j->mu);
    size_t running;
    int i = take_slot(j, job->st.created_ms, &running);
    mn_err rc = MN_OK;
    if (i < 0 || running >= API_JOBS_RUNNING_MAX) {
        rc = mn_error_set(err, MN_ERR_BUSY, "jobs: %zu forget jobs run already (at most %d)",
                          running, API_JOBS_RUNNING_MAX);
    } else {
        snprintf(job->st.id, sizeof job->st.id, "%016llx",
                 (unsigned long long)mn_prng_next(&j->prng));
        if (pthread_create(&job->thread, NULL, job_main, job)) {
            rc = mn_error_set(err, MN_ERR_NOMEM, "jobs: cannot start a thread");
        } else {
            j->slot[i] = job;
            *out = job->st;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

mn_err api_jobs_start_forget(api_jobs *j, const char *space, mn_forget_mode_t mode, mn_id_t *ids,
                             size_t n, api_job_end_fn end, void *end_arg, api_job_status *out,
                             mn_error *err)
{
    api_job *job = calloc(1, sizeof *job);
    if (!job) {
        free(ids);
        free(end_arg);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    job->owner = j;
    job->ids = ids;
    job->n = n;
    job->end = end;
    job->end_arg = end_arg;
    snprintf(job->st.space, sizeof job->st.space, "%s", space);
    job->st.state = API_JOB_RUNNING;
    job->st.mode = mode;
    job->st.total = n;
    job->st.created_ms = mn_time_now_ms();
    mn_err rc = job_start(j, job, out, err);
    if (rc) {
        free(job->ids);
        free(job->end_arg);
        free(job);
    }
    return rc;
}

/* The job id of space (mu held), or NULL. */
static api_job *find(api_jobs *j, const char *space, const char *id)
{
    for (size_t i = 0; i < API_JOBS_MAX; i++) {
        api_job *job = j->slot[i];
        if (job && !strcmp(job->st.id, id) && !strcmp(job->st.space, space)) return job;
    }
    return NULL;
}

static mn_err lookup(api_jobs *j, const char *space, const char *id, bool cancel,
                     api_job_status *out, mn_error *err)
{
    pthread_mutex_lock(&j->mu);
    api_job *job = find(j, space, id);
    if (job && cancel && job->st.state == API_JOB_RUNNING) job->cancel = true;
    if (job) *out = job->st;
    pthread_mutex_unlock(&j->mu);
    if (!job)
        return mn_error_set(err, MN_ERR_NOT_FOUND,
                            "job \"%.40s\" not found in this space (records expire %lld s after "
                            "the job ends, and do not survive a restart)",
                            id, API_JOB_KEEP_MS / 1000);
    return MN_OK;
}

mn_err api_jobs_get(api_jobs *j, const char *space, const char *id, api_job_status *out,
                    mn_error *err)
{
    return lookup(j, space, id, false, out, err);
}

mn_err api_jobs_cancel(api_jobs *j, const char *space, const char *id, api_job_status *out,
                       mn_error *err)
{
    return lookup(j, space, id, true, out, err);
}
