/* The index thread: keeps every space's HNSW graph up to date in the
 * background, so a write is acknowledged without waiting for its graph
 * insert (the commit thread only notes the changed slots; recall ranks the
 * not-yet-indexed tail exactly beside the graph, see space_index.c).
 *
 * Spaces with work are queued once (sp->ix_queued); the thread takes them in
 * order and calls mn__space_index_work, which takes the space's notes and
 * inserts them under the space's read lock in short chunks. Every
 * engine.hnsw_save_interval_s it also saves the graphs with unsaved changes
 * (mn__space_index_tick). mn__indexer_stop does not drain the queue: the thread
 * stops after its current chunk, so shutdown takes no longer with a big
 * backlog; the graphs are then saved as they are and the next start applies
 * the difference. */
#include "indexer.h"

#include "engine_internal.h"
#include "space_index.h"

#include <stdlib.h>
#include <string.h>

/* The queue of spaces with index work and the thread that takes them. */
struct mn__indexer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, idle_cv;
    mn__space **q; /* spaces with index work, each referenced */
    size_t n, cap;
    bool busy;
    bool stop; /* also read without mu (atomically) by the work loop */
};

bool mn__indexer_halted(const mn_engine_t *e)
{
    return e->indexer && __atomic_load_n(&e->indexer->stop, __ATOMIC_RELAXED);
}

void mn__indexer_kick(mn_engine_t *e, mn__space *sp)
{
    struct mn__indexer *x = e->indexer;
    if (!x || atomic_exchange(&sp->ix_queued, true)) return;
    mn__space_ref(sp); /* released by the thread */
    pthread_mutex_lock(&x->mu);
    if (x->n == x->cap) {
        size_t nc = x->cap ? x->cap * 2 : 16;
        mn__space **q = realloc(x->q, nc * sizeof *q);
        if (!q) { /* the next kick retries */
            pthread_mutex_unlock(&x->mu);
            atomic_store(&sp->ix_queued, false);
            mn__space_unref(sp);
            return;
        }
        x->q = q;
        x->cap = nc;
    }
    x->q[x->n++] = sp;
    pthread_cond_signal(&x->work_cv);
    pthread_mutex_unlock(&x->mu);
}

/* Saves the graphs that are due (index thread, no lock held). */
static void save_pass(mn_engine_t *e)
{
    size_t n;
    mn__space **spaces = mn__registry_acquire_all(&e->reg, &n);
    for (size_t i = 0; spaces && i < n; i++)
        if (!atomic_load(&spaces[i]->dropped) && !mn__indexer_halted(e))
            mn__space_index_tick(e, spaces[i]);
    mn__registry_release_all(spaces, n);
}

/* Takes the next queued space and works on it (mu held; released meanwhile). */
static void work_next(mn_engine_t *e, struct mn__indexer *x)
{
    mn__space *sp = x->q[0];
    x->n--;
    memmove(x->q, x->q + 1, x->n * sizeof *x->q);
    x->busy = true;
    pthread_mutex_unlock(&x->mu);
    /* cleared before the notes are taken: a change noted after the take kicks again */
    atomic_store(&sp->ix_queued, false);
    if (!atomic_load(&sp->dropped)) mn__space_index_work(e, sp);
    mn__space_unref(sp);
    pthread_mutex_lock(&x->mu);
    x->busy = false;
}

/* Stopping: the queued spaces are released without working on them (mu held). */
static void drop_queue(struct mn__indexer *x)
{
    mn__space **left = x->q;
    size_t n_left = x->n;
    x->q = NULL;
    x->n = x->cap = 0;
    x->busy = false;
    pthread_cond_broadcast(&x->idle_cv);
    pthread_mutex_unlock(&x->mu);
    for (size_t i = 0; i < n_left; i++) {
        atomic_store(&left[i]->ix_queued, false);
        mn__space_unref(left[i]);
    }
    free(left);
}

static void *indexer_main(void *arg)
{
    mn_engine_t *e = arg;
    struct mn__indexer *x = e->indexer;
    int64_t every_ms = e->opts.hnsw_save_interval_ms;
    int64_t next_save_ms = every_ms > 0 ? mn__mono_ms() + every_ms : 0;
    pthread_mutex_lock(&x->mu);
    for (;;) {
        while (!x->n && !x->stop && !(next_save_ms && mn__mono_ms() >= next_save_ms))
            mn__cond_wait_until(&x->work_cv, &x->mu, next_save_ms);
        if (x->stop) break; /* queued work stays for the next start */
        if (next_save_ms && mn__mono_ms() >= next_save_ms) {
            x->busy = true;
            pthread_mutex_unlock(&x->mu);
            save_pass(e);
            pthread_mutex_lock(&x->mu);
            x->busy = false;
            next_save_ms = mn__mono_ms() + every_ms;
        } else {
            work_next(e, x);
        }
        if (!x->n) pthread_cond_broadcast(&x->idle_cv);
    }
    drop_queue(x);
    return NULL;
}

static void indexer_free(struct mn__indexer *x)
{
    free(x->q);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->work_cv);
    pthread_cond_destroy(&x->idle_cv);
    free(x);
}

mn_err mn__indexer_start(mn_engine_t *e, mn_error *err)
{
    struct mn__indexer *x = calloc(1, sizeof *x);
    if (!x) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->work_cv, NULL);
    pthread_cond_init(&x->idle_cv, NULL);
    e->indexer = x;
    if (pthread_create(&x->thread, NULL, indexer_main, e)) {
        e->indexer = NULL;
        indexer_free(x);
        return mn_error_set(err, MN_ERR_IO, "cannot start the index thread");
    }
    /* spaces loaded without a usable saved graph are built now, in the background */
    for (size_t i = 0; i < e->reg.n; i++)
        mn__space_index_sync(e, e->reg.spaces[i]);
    return MN_OK;
}

void mn__indexer_wait(mn_engine_t *e)
{
    struct mn__indexer *x = e->indexer;
    if (!x) return;
    pthread_mutex_lock(&x->mu);
    while (x->n || x->busy)
        pthread_cond_wait(&x->idle_cv, &x->mu);
    pthread_mutex_unlock(&x->mu);
}

void mn__indexer_stop(mn_engine_t *e)
{
    struct mn__indexer *x = e->indexer;
    if (!x) return;
    pthread_mutex_lock(&x->mu);
    __atomic_store_n(&x->stop, true, __ATOMIC_RELAXED); /* read by the work loop too */
    pthread_cond_broadcast(&x->work_cv);
    pthread_mutex_unlock(&x->mu);
    pthread_join(x->thread, NULL);
    e->indexer = NULL;
    indexer_free(x);
}
