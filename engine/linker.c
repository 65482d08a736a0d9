/* The semantic linker: links each newly remembered memory to its nearest
 * neighbours (similarity >= link_threshold, at most link_max), off the write
 * path. A remember returns as soon as it is durable; the linker thread then
 * finds neighbours under the space's read lock and commits the links as one
 * associate WAL entry per batch, so replicas and restarts see the same edges.
 * Linking is enrichment, not data: if the queue overflows (LINK_QUEUE_MAX) new
 * jobs are dropped and counted rather than slowing writers down. */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINK_QUEUE_MAX 100000
#define LINK_BATCH 256

typedef struct mn_link_job {
    mn_space *sp; /* referenced while queued */
    mn_id_t id;
} mn_link_job;

void mn_linker_enqueue(mn_engine *e, mn_space *sp, const mn_id_t *ids, size_t n)
{
    if (!e->linker_running || !n) return;
    pthread_mutex_lock(&e->lk_mu);
    for (size_t i = 0; i < n; i++) {
        if (e->lk_n >= LINK_QUEUE_MAX) {
            atomic_fetch_add(&e->n_links_dropped, n - i);
            break;
        }
        if (e->lk_n == e->lk_cap) {
            size_t nc = e->lk_cap ? e->lk_cap * 2 : 1024;
            mn_link_job *nj = realloc(e->lk_jobs, nc * sizeof *nj);
            if (!nj) {
                atomic_fetch_add(&e->n_links_dropped, n - i);
                break;
            }
            e->lk_jobs = nj;
            e->lk_cap = nc;
        }
        atomic_fetch_add(&sp->refs, 1);
        e->lk_jobs[e->lk_n++] = (mn_link_job){sp, ids[i]};
    }
    pthread_cond_signal(&e->lk_cv);
    pthread_mutex_unlock(&e->lk_mu);
}

/* Links the jobs of one space (all jobs[i].sp == sp). */
static void link_space(mn_engine *e, mn_space *sp, const mn_link_job *jobs, size_t n)
{
    mn_edge *edges = NULL;
    size_t n_edges = 0, cap = 0;
    int64_t now = mn_engine_now(e);
    uint32_t dim = sp->def.dim;
    float *v = malloc(dim * sizeof(float));
    if (!v) return;
    for (size_t i = 0; i < n; i++) {
        /* the read lock is taken per memory: the commit thread needs the write
         * lock between scans and must not wait for a whole batch */
        pthread_rwlock_rdlock(&sp->lock);
        uint32_t slot = mn_space_find(sp, &jobs[i].id);
        if (slot == UINT32_MAX || !sp->slots[slot].has_vec) { /* forgotten meanwhile */
            pthread_rwlock_unlock(&sp->lock);
            continue;
        }
        mn_memory_t m;
        mn_memory_init(&m);
        m.id = jobs[i].id;
        memcpy(v, sp->vecs + (size_t)slot * dim, dim * sizeof(float));
        m.embedding = v;
        m.dim = dim;
        mn_err rc = mn_space_autolink(sp, &m, NULL, 0, e->opts.link_threshold, e->opts.link_max,
                                      0, now, &edges, &n_edges, &cap);
        pthread_rwlock_unlock(&sp->lock);
        if (rc) break;
    }
    free(v);
    if (n_edges) {
        mn_pending p = {0};
        p.entry.type = MN_WAL_OP_ASSOCIATE;
        snprintf(p.entry.space, sizeof p.entry.space, "%s", sp->def.name);
        p.entry.op.associate.edges = edges;
        p.entry.op.associate.n = n_edges;
        p.sp = sp;
        p.sync = false; /* derived data: a crash loses at most links, never memories */
        if (mn_commit_submit(e, &p) == MN_OK) atomic_fetch_add(&e->n_links, n_edges);
    }
    free(edges);
}

static void *linker_main(void *arg)
{
    mn_engine *e = arg;
    mn_link_job *batch = malloc(LINK_BATCH * sizeof *batch);
    pthread_mutex_lock(&e->lk_mu);
    while (batch) {
        while (!e->lk_n && !e->lk_stop) pthread_cond_wait(&e->lk_cv, &e->lk_mu);
        if (e->lk_stop) break;
        size_t n = e->lk_n < LINK_BATCH ? e->lk_n : LINK_BATCH;
        memcpy(batch, e->lk_jobs, n * sizeof *batch);
        memmove(e->lk_jobs, e->lk_jobs + n, (e->lk_n - n) * sizeof *batch);
        e->lk_n -= n;
        e->lk_busy = n;
        pthread_mutex_unlock(&e->lk_mu);
        /* jobs arrive in write order; group consecutive runs of one space */
        for (size_t i = 0; i < n;) {
            size_t j = i + 1;
            while (j < n && batch[j].sp == batch[i].sp) j++;
            if (!atomic_load(&batch[i].sp->dropped)) link_space(e, batch[i].sp, batch + i, j - i);
            for (size_t x = i; x < j; x++) mn_engine_space_release(e, batch[x].sp);
            i = j;
        }
        pthread_mutex_lock(&e->lk_mu);
        e->lk_busy = 0;
        if (!e->lk_n) pthread_cond_broadcast(&e->lk_idle_cv);
    }
    pthread_mutex_unlock(&e->lk_mu);
    free(batch);
    return NULL;
}

mn_err mn_linker_start(mn_engine *e, mn_error *err)
{
    pthread_mutex_init(&e->lk_mu, NULL);
    pthread_cond_init(&e->lk_cv, NULL);
    pthread_cond_init(&e->lk_idle_cv, NULL);
    if (e->opts.link_max == 0) return MN_OK;
    if (pthread_create(&e->linker, NULL, linker_main, e))
        return mn_error_set(err, MN_ERR_IO, "cannot start the linker thread");
    e->linker_running = true;
    return MN_OK;
}

void mn_linker_stop(mn_engine *e)
{
    if (e->linker_running) {
        pthread_mutex_lock(&e->lk_mu);
        e->lk_stop = true;
        pthread_cond_signal(&e->lk_cv);
        pthread_mutex_unlock(&e->lk_mu);
        pthread_join(e->linker, NULL);
        e->linker_running = false;
    }
    for (size_t i = 0; i < e->lk_n; i++) mn_engine_space_release(e, e->lk_jobs[i].sp);
    free(e->lk_jobs);
    e->lk_jobs = NULL;
    e->lk_n = 0;
    pthread_mutex_destroy(&e->lk_mu);
    pthread_cond_destroy(&e->lk_cv);
    pthread_cond_destroy(&e->lk_idle_cv);
}

void mn_engine_wait_links(mn_engine_t *e)
{
    if (!e->linker_running) return;
    pthread_mutex_lock(&e->lk_mu);
    while (e->lk_n || e->lk_busy) pthread_cond_wait(&e->lk_idle_cv, &e->lk_mu);
    pthread_mutex_unlock(&e->lk_mu);
}
