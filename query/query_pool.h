/* The bounded pool of threads a recall over many spaces scatters on (query_pool.c). */
#ifndef MN_QUERY_POOL_H
#define MN_QUERY_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "mnemo/err.h"

/* A unit of work; the submitter allocates it, run owns it from then on (frees it). */
typedef struct mn__query_job {
    void (*run)(struct mn__query_job *job);
    struct mn__query_job *next;
} mn__query_job;

typedef struct mn__query_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    mn__query_job *head, *tail;
    bool stop;
    pthread_t *threads;
    uint32_t n_threads;
} mn__query_pool;

mn_err mn__query_pool_init(mn__query_pool *p, uint32_t threads, mn_error *err);
/* Queues job; a worker runs it (FIFO). */
void mn__query_pool_submit(mn__query_pool *p, mn__query_job *job);
/* Runs what is queued, then stops and joins the workers. */
void mn__query_pool_close(mn__query_pool *p);

#endif
