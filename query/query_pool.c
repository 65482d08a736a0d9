/* A fixed set of worker threads over one FIFO queue: the "bounded pool" a recall over many
 * spaces runs its per-holder jobs on. The queue is not bounded by itself: each request adds
 * at most MN_QUERY_SPACES_MAX jobs and the doors bound the requests in flight. A job that
 * starts after its request's deadline only reports itself done (query_run.c), so a backlog
 * drains quickly. Closing runs what is queued (each job must release what it holds), then
 * joins the workers. */
#include "query_pool.h"

#include <stdlib.h>

#include "mnemo/assert.h"

static void *worker(void *arg)
{
    mn__query_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        mn__query_job *j = p->head;
        if (!j) break; /* stopping and nothing left */
        p->head = j->next;
        if (!p->head) p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        j->run(j);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

mn_err mn__query_pool_init(mn__query_pool *p, uint32_t threads, mn_error *err)
{
    mn_assert(threads > 0);
    *p = (mn__query_pool){0};
    p->threads = calloc(threads, sizeof *p->threads);
    if (!p->threads) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (uint32_t i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p)) {
            mn__query_pool_close(p);
            return mn_error_set(err, MN_ERR_IO, "query: cannot start thread %u of %u", i + 1,
                                threads);
        }
        p->n_threads++;
    }
    return MN_OK;
}

void mn__query_pool_submit(mn__query_pool *p, mn__query_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&p->mu);
    mn_assert(!p->stop); /* the owner closes the pool only after its last request */
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void mn__query_pool_close(mn__query_pool *p)
{
    if (!p->threads) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (uint32_t i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    mn_assert(!p->head);
    free(p->threads);
    p->threads = NULL;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}
