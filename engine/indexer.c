/* The index thread: keeps every space's HNSW graph up to date in the
 * background, so a write is acknowledged without waiting for its graph
 * insert (the commit thread only notes the changed slots; recall ranks the
 * not-yet-indexed tail exactly beside the graph, see space_index.c).
 *
 * Spaces with work are queued once (sp->ix_queued); the thread takes them in
 * order and calls mn_space_index_work, which takes the space's notes and
 * inserts them under the space's read lock in short chunks. mn_indexer_stop
 * finishes the queued work first, so the graphs saved at shutdown reflect the
 * last lsn. */
#include <stdlib.h>

#include "engine_internal.h"
#include "space_index.h"

void mn_indexer_kick(mn_engine *e, mn_space *sp)
{
    if (!e->ixr_running || atomic_exchange(&sp->ix_queued, true)) return;
    atomic_fetch_add(&sp->refs, 1); /* released by the thread */
    pthread_mutex_lock(&e->ixr_mu);
    if (e->ixr_n == e->ixr_cap) {
        size_t nc = e->ixr_cap ? e->ixr_cap * 2 : 16;
        mn_space **q = realloc(e->ixr_q, nc * sizeof *q);
        if (!q) { /* the next kick retries */
            pthread_mutex_unlock(&e->ixr_mu);
            atomic_store(&sp->ix_queued, false);
            mn_engine_space_release(e, sp);
            return;
        }
        e->ixr_q = q;
        e->ixr_cap = nc;
    }
    e->ixr_q[e->ixr_n++] = sp;
    pthread_cond_signal(&e->ixr_cv);
    pthread_mutex_unlock(&e->ixr_mu);
}

static void *indexer_main(void *arg)
{
    mn_engine *e = arg;
    pthread_mutex_lock(&e->ixr_mu);
    for (;;) {
        while (!e->ixr_n && !e->ixr_stop)
            pthread_cond_wait(&e->ixr_cv, &e->ixr_mu);
        if (!e->ixr_n) break; /* stopping and drained */
        mn_space *sp = e->ixr_q[0];
        e->ixr_n--;
        for (size_t i = 0; i < e->ixr_n; i++)
            e->ixr_q[i] = e->ixr_q[i + 1];
        e->ixr_busy = true;
        pthread_mutex_unlock(&e->ixr_mu);
        /* cleared before the notes are taken: a change noted after the take kicks again */
        atomic_store(&sp->ix_queued, false);
        if (!atomic_load(&sp->dropped)) mn_space_index_work(e, sp);
        mn_engine_space_release(e, sp);
        pthread_mutex_lock(&e->ixr_mu);
        e->ixr_busy = false;
        if (!e->ixr_n) pthread_cond_broadcast(&e->ixr_idle_cv);
    }
    e->ixr_busy = false;
    pthread_cond_broadcast(&e->ixr_idle_cv);
    pthread_mutex_unlock(&e->ixr_mu);
    return NULL;
}

mn_err mn_indexer_start(mn_engine *e, mn_error *err)
{
    pthread_mutex_init(&e->ixr_mu, NULL);
    pthread_cond_init(&e->ixr_cv, NULL);
    pthread_cond_init(&e->ixr_idle_cv, NULL);
    e->ixr_running = true;
    if (pthread_create(&e->ixr_thread, NULL, indexer_main, e)) {
        e->ixr_running = false;
        return mn_error_set(err, MN_ERR_IO, "cannot start the index thread");
    }
    /* spaces loaded without a usable saved graph are built now, in the background */
    for (size_t i = 0; i < e->n_spaces; i++)
        mn_space_index_sync(e, e->spaces[i]);
    return MN_OK;
}

void mn_indexer_wait(mn_engine *e)
{
    if (!e->ixr_running) return;
    pthread_mutex_lock(&e->ixr_mu);
    while (e->ixr_n || e->ixr_busy)
        pthread_cond_wait(&e->ixr_idle_cv, &e->ixr_mu);
    pthread_mutex_unlock(&e->ixr_mu);
}

void mn_indexer_stop(mn_engine *e)
{
    if (!e->ixr_running) return;
    pthread_mutex_lock(&e->ixr_mu);
    e->ixr_stop = true;
    pthread_cond_broadcast(&e->ixr_cv);
    pthread_mutex_unlock(&e->ixr_mu);
    pthread_join(e->ixr_thread, NULL);
    e->ixr_running = false;
    free(e->ixr_q);
    e->ixr_q = NULL;
    pthread_mutex_destroy(&e->ixr_mu);
    pthread_cond_destroy(&e->ixr_cv);
    pthread_cond_destroy(&e->ixr_idle_cv);
}
