/* Engine figures for monitoring (GET /metrics): operation histograms kept
 * per engine (no global state: tests open several engines), per-space counts
 * and index sizes read under each space's read lock, and RocksDB properties.
 *
 * The histograms cost two relaxed atomic adds per operation. Only successful
 * operations are observed, so a latency reads as "time to do the work";
 * failures are visible in the HTTP status counts. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "metrics.h"

#include "engine_internal.h"
#include "space_index.h"
#include "text/keyword.h"

void mn__metrics_init(mn_engine_t *e)
{
    mn_histogram_init(&e->h_remember, mn_hist_latency_ns, MN_HIST_LATENCY_N);
    mn_histogram_init(&e->h_recall, mn_hist_latency_ns, MN_HIST_LATENCY_N);
    mn_histogram_init(&e->h_consolidate, mn_hist_latency_ns, MN_HIST_LATENCY_N);
    mn_histogram_init(&e->h_write, mn_hist_latency_ns, MN_HIST_LATENCY_N);
    mn_histogram_init(&e->h_group, mn_hist_pow2, MN_HIST_POW2_N);
    mn_histogram_init(&e->h_group_synced, mn_hist_pow2, MN_HIST_POW2_N);
}

mn_err mn__timed(mn_histogram_t *h, int64_t t0_ns, mn_err rc)
{
    if (rc == MN_OK) {
        int64_t d = mn_time_mono_ns() - t0_ns;
        mn_histogram_observe(h, d > 0 ? (uint64_t)d : 0);
    }
    return rc;
}

static void space_figures(mn__space *sp, mn_space_metrics_t *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", sp->def.name);
    pthread_rwlock_rdlock(&sp->lock);
    out->episodic = sp->n_episodic;
    out->semantic = sp->n_semantic;
    out->suppressed = sp->n_suppressed;
    out->tombstones = sp->n_tombstones;
    out->vector_bytes = (uint64_t)sp->cap * sp->def.dim * sizeof(float);
    out->keyword_docs = mn_kw_docs(sp->kw);
    out->keyword_terms = mn_kw_terms(sp->kw);
    mn__space_index_size(sp, &out->hnsw_nodes, &out->hnsw_bytes);
    pthread_rwlock_unlock(&sp->lock);
    out->last_lsn = __atomic_load_n(&sp->last_lsn, __ATOMIC_ACQUIRE);
}

static uint64_t prop(mn__store *s, int cf, const char *name)
{
    uint64_t v = 0;
    if (cf < 0) return rocksdb_property_int(s->db, name, &v) == 0 ? v : 0;
    return rocksdb_property_int_cf(s->db, s->cf[cf], name, &v) == 0 ? v : 0;
}

/* RocksDB has no property for its log size: sum the *.log files it keeps. */
static uint64_t wal_files_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    uint64_t total = 0;
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".log")) continue;
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

mn_err mn_engine_get_metrics(mn_engine_t *e, mn_engine_metrics_t *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    mn_engine_get_stats(e, &out->stats);
    mn_histogram_snapshot(&e->h_remember, &out->remember_ns);
    mn_histogram_snapshot(&e->h_recall, &out->recall_ns);
    mn_histogram_snapshot(&e->h_consolidate, &out->consolidate_ns);
    mn_histogram_snapshot(&e->h_write, &out->commit_write_ns);
    mn_histogram_snapshot(&e->h_group, &out->group_entries);
    mn_histogram_snapshot(&e->h_group_synced, &out->group_synced);

    /* references, so the figures are read without holding the map lock */
    size_t n;
    mn__space **sps = mn__registry_acquire_all(&e->reg, &n);
    if (!sps) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    out->spaces = malloc((n ? n : 1) * sizeof *out->spaces);
    for (size_t i = 0; out->spaces && i < n; i++)
        space_figures(sps[i], &out->spaces[i]);
    mn__registry_release_all(sps, n);
    if (!out->spaces) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    out->n_spaces = n;

    mn__store *s = &e->store;
    for (int cf = 0; cf < CF_COUNT && cf < MN_STORE_CF_MAX; cf++) {
        mn_store_cf_metrics_t *c = &out->cf[out->n_cf++];
        c->name = mn__store_cf_names[cf];
        c->live_sst_bytes = prop(s, cf, "rocksdb.live-sst-files-size");
        c->pending_compaction_bytes = prop(s, cf, "rocksdb.estimate-pending-compaction-bytes");
        c->memtable_bytes = prop(s, cf, "rocksdb.cur-size-all-mem-tables");
    }
    /* one shared cache: the property reads it through any column family */
    out->block_cache_usage = prop(s, -1, "rocksdb.block-cache-usage");
    out->block_cache_capacity = prop(s, -1, "rocksdb.block-cache-capacity");
    out->block_cache_pinned = prop(s, -1, "rocksdb.block-cache-pinned-usage");
    out->running_compactions = prop(s, -1, "rocksdb.num-running-compactions");
    out->background_errors = prop(s, -1, "rocksdb.background-errors");
    out->rocksdb_wal_bytes = wal_files_bytes(e->data_dir);
    return MN_OK;
}

void mn_engine_metrics_clear(mn_engine_metrics_t *m)
{
    free(m->spaces);
    memset(m, 0, sizeof *m);
}
