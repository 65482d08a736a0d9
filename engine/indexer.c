/* The index thread: keeps every space's HNSW graph up to date in the
 * background, so a write is acknowledged without waiting for its graph
 * insert (the commit thread only notes the changed slots; recall ranks the
 * not-yet-indexed tail exactly beside the graph, see space_index.c).
 *
 * Spaces with work are queued once (sp->ix_queued); the thread takes them in
 * order and calls mn_space_index_work, which takes the space's notes and
 * inserts them under the space's read lock in short chunks. Every
 * engine.hnsw_save_interval_s it also saves the graphs with unsaved changes
 * (mn_space_index_tick). mn_indexer_stop does not drain the queue: the thread
 * stops after its current chunk, so shutdown takes no longer with a big
 * backlog; the graphs are then saved as they are and the next start applies
 * the difference. */
#include <stdlib.h>
#include <time.h>

#include "engine_internal.h"
#include "space_index.h"

static bool halted_now(const mn_engine *e)
{
    return __atomic_load_n(&e->ixr_stop, __ATOMIC_RELAXED);
}

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

static int64_t mono_ms(void)
{
    return mn_time_mono_ns() / 1000000;
}

/* Saves the graphs that are due (index thread, no lock held). */
static void save_pass(mn_engine *e)
{
    pthread_rwlock_rdlock(&e->spaces_lock);
    size_t n = e->n_spaces;
    mn_space **spaces = malloc((n ? n : 1) * sizeof *spaces);
    for (size_t i = 0; spaces && i < n; i++) {
        spaces[i] = e->spaces[i];
        atomic_fetch_add(&spaces[i]->refs, 1);
    }
    pthread_rwlock_unlock(&e->spaces_lock);
    for (size_t i = 0; spaces && i < n; i++) {
        if (!atomic_load(&spaces[i]->dropped) && !halted_now(e)) mn_space_index_tick(e, spaces[i]);
        mn_engine_space_release(e, spaces[i]);
    }
    free(spaces);
}

/* Waits on ixr_cv until work, stop, or the monotonic deadline (0 = none). */
static void wait_work(mn_engine *e, int64_t deadline)
{
    if (!deadline) {
        pthread_cond_wait(&e->ixr_cv, &e->ixr_mu);
        return;
    }
    int64_t left = deadline - mono_ms();
    if (left <= 0) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (left % 1000) * 1000000LL;
    ts.tv_sec += (time_t)(left / 1000 + ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    pthread_cond_timedwait(&e->ixr_cv, &e->ixr_mu, &ts);
}

static void *indexer_main(void *arg)
{
    mn_engine *e = arg;
    int64_t every = e->opts.hnsw_save_interval_ms;
    int64_t next_save = every > 0 ? mono_ms() + every : 0;
    pthread_mutex_lock(&e->ixr_mu);
    for (;;) {
        while (!e->ixr_n && !e->ixr_stop && !(next_save && mono_ms() >= next_save))
            wait_work(e, next_save);
        if (e->ixr_stop) break; /* queued work stays for the next start */
        if (next_save && mono_ms() >= next_save) {
            e->ixr_busy = true;
            pthread_mutex_unlock(&e->ixr_mu);
            save_pass(e);
            pthread_mutex_lock(&e->ixr_mu);
            e->ixr_busy = false;
            next_save = mono_ms() + every;
            if (!e->ixr_n) pthread_cond_broadcast(&e->ixr_idle_cv);
            continue;
        }
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
    /* stopping: release the queued spaces without working on them */
    mn_space **left = e->ixr_q;
    size_t n_left = e->ixr_n;
    e->ixr_q = NULL;
    e->ixr_n = e->ixr_cap = 0;
    e->ixr_busy = false;
    pthread_cond_broadcast(&e->ixr_idle_cv);
    pthread_mutex_unlock(&e->ixr_mu);
    for (size_t i = 0; i < n_left; i++) {
        atomic_store(&left[i]->ix_queued, false);
        mn_engine_space_release(e, left[i]);
    }
    free(left);
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
    __atomic_store_n(&e->ixr_stop, true, __ATOMIC_RELAXED); /* read by the work loop too */
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
