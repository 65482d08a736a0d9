/* Background work that follows reads and writes, off their paths, on one thread:
 *
 * - semantic linking: each newly remembered memory is linked to its nearest
 *   neighbours (similarity >= link_threshold, at most link_max). A remember
 *   returns as soon as it is durable; the links are found here under the
 *   space's read lock and committed as one associate WAL entry per batch.
 * - reinforcement: memories recalled with reinforce get a new stability (the
 *   spacing effect, decay.c), committed as one reinforce WAL entry per batch,
 *   without fsync: many recalls share one write, never one fsync per hit. A
 *   reinforce job waits up to REINFORCE_COALESCE_MS for more (or until
 *   BG_BATCH are queued), so a burst of reinforcing recalls becomes one entry
 *   per window or per BG_BATCH hits; at shutdown the queued ones are written.
 *
 * - scheduled consolidation: every engine.consolidate_interval_ms (the first
 *   run one interval after start), every space is consolidated
 *   (consolidate.c). It runs here rather than on the expiry sweeper so that it
 *   runs whether or not the sweeper does; link and reinforce jobs wait
 *   meanwhile.
 *
 * Links and reinforcements are derived from durable data and computed by this
 * node, so the WAL carries the results and replicas and restarts agree. If the
 * queue overflows (BG_QUEUE_MAX) jobs are dropped and counted rather than
 * slowing callers. */
#include "engine_internal.h"
#include "space_index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BG_QUEUE_MAX 100000
#define BG_BATCH 256
#define REINFORCE_COALESCE_MS 50
/* Without a vector index, a space larger than this is not auto-linked (each
 * link would scan it: more than linking is worth, so jobs are dropped and
 * counted); with one, neighbours come from the graph. */
#define LINK_SCAN_MAX 50000

typedef struct mn_link_job {
    mn_space *sp; /* referenced while queued */
    mn_id_t id;
    uint8_t kind;  /* BG_LINK | BG_REINFORCE */
    int64_t at_ms; /* reinforce: when the memory was recalled */
} mn_link_job;

enum { BG_LINK = 0, BG_REINFORCE = 1 };

static void enqueue(mn_engine *e, mn_space *sp, const mn_id_t *ids, size_t n, uint8_t kind,
                    int64_t at_ms)
{
    if (!e->linker_running || !n) return;
    pthread_mutex_lock(&e->lk_mu);
    for (size_t i = 0; i < n; i++) {
        if (e->lk_n >= BG_QUEUE_MAX) {
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
        e->lk_jobs[e->lk_n++] = (mn_link_job){sp, ids[i], kind, at_ms};
    }
    pthread_cond_signal(&e->lk_cv);
    pthread_mutex_unlock(&e->lk_mu);
}

void mn_linker_enqueue(mn_engine *e, mn_space *sp, const mn_id_t *ids, size_t n)
{
    if (e->opts.link_max) enqueue(e, sp, ids, n, BG_LINK, 0);
}

void mn_reinforce_enqueue(mn_engine *e, mn_space *sp, const mn_id_t *ids, size_t n, int64_t at_ms)
{
    enqueue(e, sp, ids, n, BG_REINFORCE, at_ms);
}

/* New strengths for recalled memories of sp, committed as one entry. */
static void reinforce_space(mn_engine *e, mn_space *sp, const mn_link_job *jobs, size_t n)
{
    mn_strength *items = malloc(n * sizeof *items);
    if (!items) return;
    size_t m = 0;
    pthread_rwlock_rdlock(&sp->lock);
    for (size_t i = 0; i < n; i++) {
        uint32_t slot = mn_space_find(sp, &jobs[i].id);
        if (slot == UINT32_MAX) continue;
        /* a memory recalled twice in one batch is reinforced from its first new state */
        mn_strength cur;
        size_t j;
        for (j = 0; j < m && mn_id_cmp(&items[j].id, &jobs[i].id); j++) {
        }
        if (j < m)
            cur = items[j];
        else
            mn_slot_strength(sp, slot, e->opts.initial_stability_days, &cur);
        mn_strength next = mn_reinforce(&cur, jobs[i].at_ms);
        if (j < m)
            items[j] = next;
        else
            items[m++] = next;
    }
    pthread_rwlock_unlock(&sp->lock);
    if (m) {
        mn_pending p = {0};
        p.entry.type = MN_WAL_OP_REINFORCE;
        snprintf(p.entry.space, sizeof p.entry.space, "%s", sp->def.name);
        p.entry.op.reinforce.items = items;
        p.entry.op.reinforce.n = m;
        p.sp = sp;
        p.sync = false; /* a crash may forget a reinforcement, never a memory */
        if (mn_commit_submit(e, &p) == MN_OK) atomic_fetch_add(&e->n_reinforced, m);
    }
    free(items);
}

/* Links the jobs of one space (all jobs[i].sp == sp). */
static void link_space(mn_engine *e, mn_space *sp, const mn_link_job *jobs, size_t n)
{
    pthread_rwlock_rdlock(&sp->lock);
    bool too_big = sp->n_live > LINK_SCAN_MAX && !atomic_load(&sp->ix_exists);
    pthread_rwlock_unlock(&sp->lock);
    if (too_big) {
        atomic_fetch_add(&e->n_links_dropped, n);
        return;
    }
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
        /* with a graph: its nearest (one more than link_max: the memory itself) */
        uint32_t *cands = NULL;
        size_t n_cands = 0;
        bool indexed = mn_space_index_nearest(e, sp, v, e->opts.link_max + 1, &cands, &n_cands);
        if (!indexed && sp->n_live > LINK_SCAN_MAX) {
            pthread_rwlock_unlock(&sp->lock);
            atomic_fetch_add(&e->n_links_dropped, 1);
            continue;
        }
        mn_err rc = mn_space_autolink(sp, &m, NULL, 0, indexed ? cands : NULL, n_cands,
                                      e->opts.link_threshold, e->opts.link_max, 0, now, &edges,
                                      &n_edges, &cap);
        pthread_rwlock_unlock(&sp->lock);
        free(cands);
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

/* Scheduled consolidation of every space. */
static void consolidate_all(mn_engine *e)
{
    mn_space_def *defs;
    size_t n;
    if (mn_engine_space_list(e, &defs, &n, NULL)) return;
    for (size_t i = 0; i < n; i++) {
        mn_consolidate_result r;
        mn_error err = {0};
        if (mn_engine_consolidate(e, defs[i].name, &e->opts.consolidate, &r, &err)) {
            if (err.code != MN_ERR_NOT_FOUND)
                mn_log_warn("scheduled consolidation of %s failed: %s", defs[i].name, err.message);
            continue;
        }
        if (r.created || r.updated || r.retired)
            mn_log_info("consolidated %s: %u new, %u updated, %u retired semantic memories",
                        defs[i].name, r.created, r.updated, r.retired);
        free(r.ids);
    }
    free(defs);
}

static int64_t mono_ms(void)
{
    return mn_time_mono_ns() / 1000000;
}

/* Waits on lk_cv until work, stop, or the monotonic deadline (0 = none). */
static void wait_work(mn_engine *e, int64_t deadline)
{
    if (!deadline) {
        pthread_cond_wait(&e->lk_cv, &e->lk_mu);
        return;
    }
    int64_t left = deadline - mono_ms();
    if (left <= 0) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (left % 1000) * 1000000LL;
    ts.tv_sec += (time_t)(left / 1000 + ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    pthread_cond_timedwait(&e->lk_cv, &e->lk_mu, &ts);
}

static void *linker_main(void *arg)
{
    mn_engine *e = arg;
    mn_link_job *batch = malloc(BG_BATCH * sizeof *batch);
    int64_t interval = e->opts.consolidate_interval_ms;
    int64_t next_run = interval > 0 ? mono_ms() + interval : 0;
    int64_t coalesce_until = 0; /* a reinforce job heads the queue: wait for more until then */
    pthread_mutex_lock(&e->lk_mu);
    while (batch) {
        while (!e->lk_n && !e->lk_stop && !(next_run && mono_ms() >= next_run))
            wait_work(e, next_run);
        if (e->lk_stop) {
            /* shutdown: write the queued reinforcements, drop the link jobs */
            size_t m = 0;
            for (size_t i = 0; i < e->lk_n; i++)
                if (e->lk_jobs[i].kind == BG_REINFORCE) e->lk_jobs[m++] = e->lk_jobs[i];
                else mn_engine_space_release(e, e->lk_jobs[i].sp);
            e->lk_n = m;
            if (!m) break;
            coalesce_until = 0;
        }
        if (!e->lk_stop && next_run && mono_ms() >= next_run) {
            pthread_mutex_unlock(&e->lk_mu);
            consolidate_all(e);
            next_run = mono_ms() + interval;
            pthread_mutex_lock(&e->lk_mu);
            continue;
        }
        if (!e->lk_stop && e->lk_jobs[0].kind == BG_REINFORCE && e->lk_n < BG_BATCH) {
            int64_t now = mono_ms();
            if (!coalesce_until) coalesce_until = now + REINFORCE_COALESCE_MS;
            if (now < coalesce_until) {
                int64_t until = next_run && next_run < coalesce_until ? next_run : coalesce_until;
                wait_work(e, until);
                continue;
            }
        }
        coalesce_until = 0;
        size_t n = e->lk_n < BG_BATCH ? e->lk_n : BG_BATCH;
        memcpy(batch, e->lk_jobs, n * sizeof *batch);
        memmove(e->lk_jobs, e->lk_jobs + n, (e->lk_n - n) * sizeof *batch);
        e->lk_n -= n;
        e->lk_busy = n;
        pthread_mutex_unlock(&e->lk_mu);
        /* jobs arrive in order; group consecutive runs of one space and kind */
        for (size_t i = 0; i < n;) {
            size_t j = i + 1;
            while (j < n && batch[j].sp == batch[i].sp && batch[j].kind == batch[i].kind)
                j++;
            if (!atomic_load(&batch[i].sp->dropped)) {
                if (batch[i].kind == BG_LINK)
                    link_space(e, batch[i].sp, batch + i, j - i);
                else
                    reinforce_space(e, batch[i].sp, batch + i, j - i);
            }
            for (size_t x = i; x < j; x++)
                mn_engine_space_release(e, batch[x].sp);
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
    if (pthread_create(&e->linker, NULL, linker_main, e))
        return mn_error_set(err, MN_ERR_IO, "cannot start the background thread");
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
    for (size_t i = 0; i < e->lk_n; i++)
        mn_engine_space_release(e, e->lk_jobs[i].sp);
    free(e->lk_jobs);
    e->lk_jobs = NULL;
    e->lk_n = 0;
    pthread_mutex_destroy(&e->lk_mu);
    pthread_cond_destroy(&e->lk_cv);
    pthread_cond_destroy(&e->lk_idle_cv);
}

void mn_engine_wait_background(mn_engine_t *e)
{
    if (e->linker_running) {
        pthread_mutex_lock(&e->lk_mu);
        while (e->lk_n || e->lk_busy)
            pthread_cond_wait(&e->lk_idle_cv, &e->lk_mu);
        pthread_mutex_unlock(&e->lk_mu);
    }
    mn_indexer_wait(e);
}
