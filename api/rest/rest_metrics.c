/* GET /metrics (Prometheus text format 0.0.4) and the access log.
 *
 * Every response passes rest_access_observe on the loop thread: it counts the
 * response and its latency by (method, route pattern, status) in the process
 * registry and writes one access-log line. The route label is the matched
 * pattern ("/v1/spaces/{space}"), never the raw path, so the label sets stay
 * bounded; responses the server gave itself (404, 405, limits) are "unmatched".
 * The scrape renders the registry, then the engine's figures
 * (mn_engine_get_metrics) and the process's (/proc/self), all named mnemo_*.
 * docs/api.md and runbooks/single-node.md list the families. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "embed/embed.h"
#include "rest_internal.h"
#include "mnemo/metrics.h"

static const char *const http_labels[] = {"method", "route", "status"};

void rest_metrics_init(mn_api_t *api)
{
    mn_metrics_t *m = mn_metrics_process();
    api->http_requests =
        mn_metrics_counter(m, "mnemo_http_requests_total",
                           "HTTP responses by method, route pattern and status.", http_labels, 3);
    api->http_duration = mn_metrics_histogram(
        m, "mnemo_http_request_duration_seconds",
        "HTTP request latency from the first byte read to the last byte written.", http_labels, 3,
        mn_hist_latency_ns, MN_HIST_LATENCY_N, 1e-9);
}

void rest_access_observe(void *arg, const char *method, const char *route, int status,
                         int64_t duration_ns, const char *request_id, const mn_http_request_t *req)
{
    mn_api_t *api = arg;
    char st[12];
    snprintf(st, sizeof st, "%d", status);
    const char *values[] = {method && *method ? method : "-", route ? route : "unmatched", st};
    uint64_t ns = duration_ns > 0 ? (uint64_t)duration_ns : 0;
    mn_metrics_add(api->http_requests, values, 1);
    mn_metrics_observe(api->http_duration, values, ns);

    mn_log_level_t level = status >= 500 ? MN_LOG_WARN : MN_LOG_DEBUG;
    if (!mn_log_enabled(level)) return;
    const char *op = route ? rest_openapi_op(method, route) : NULL;
    double ms = (double)ns / 1e6;
    mn_log_field_t f[] = {
        {.key = "method", .str = values[0], .in_msg = true},
        {.key = "route", .str = values[1], .in_msg = true},
        {.key = "status", .num = status, .in_msg = true},
        {.key = "duration_ms", .num = round(ms * 1000) / 1000, .in_msg = true},
        {.key = "request_id", .str = request_id ? request_id : ""},
        {.key = "op", .str = op},
        {.key = "space"},
    };
    size_t nf = 5;
    if (op) nf++;
    /* every route about one space names it first: /v1/spaces/{space}/... */
    if (route && req && req->n_params && !strncmp(route, "/v1/spaces/{space}", 18))
        f[nf++] = (mn_log_field_t){.key = "space", .str = req->params[0]};
    mn_log_with(level, f, nf, "%s %s %d %.3fms", values[0], values[1], status, ms);
}

/* ---- the scrape ---- */

static void gauge(mn_text_t *t, const char *name, const char *help, double v)
{
    mn_prom_family(t, name, help, "gauge");
    mn_prom_sample(t, name, NULL, 0, v);
}

static void counter(mn_text_t *t, const char *name, const char *help, uint64_t v)
{
    mn_prom_family(t, name, help, "counter");
    mn_prom_sample_u64(t, name, NULL, 0, v);
}

static void histogram(mn_text_t *t, const char *name, const char *help, const mn_hist_snapshot_t *s,
                      double scale)
{
    mn_prom_family(t, name, help, "histogram");
    mn_prom_histogram(t, name, NULL, 0, s, scale);
}

/* One gauge family over the spaces: the field at offset off of mn_space_metrics_t. */
static void space_gauge(mn_text_t *t, const mn_engine_metrics_t *em, const char *name, const char *help,
                        size_t off)
{
    mn_prom_family(t, name, help, "gauge");
    for (size_t i = 0; i < em->n_spaces; i++) {
        mn_prom_label_t l = {"space", em->spaces[i].name};
        uint64_t v;
        memcpy(&v, (const char *)&em->spaces[i] + off, sizeof v);
        mn_prom_sample_u64(t, name, &l, 1, v);
    }
}

static void cf_gauge(mn_text_t *t, const mn_engine_metrics_t *em, const char *name, const char *help,
                     size_t off)
{
    mn_prom_family(t, name, help, "gauge");
    for (size_t i = 0; i < em->n_cf; i++) {
        mn_prom_label_t l = {"cf", em->cf[i].name};
        uint64_t v;
        memcpy(&v, (const char *)&em->cf[i] + off, sizeof v);
        mn_prom_sample_u64(t, name, &l, 1, v);
    }
}

static void engine_section(mn_text_t *t, const mn_engine_metrics_t *em)
{
    const double ns = 1e-9;
    histogram(t, "mnemo_engine_remember_duration_seconds",
              "Successful remember calls (validation, linking, durable commit).", &em->remember_ns,
              ns);
    histogram(t, "mnemo_engine_recall_duration_seconds", "Successful recall calls.", &em->recall_ns,
              ns);
    histogram(t, "mnemo_engine_consolidate_duration_seconds",
              "Successful consolidation runs (on demand and scheduled).", &em->consolidate_ns, ns);
    histogram(t, "mnemo_engine_commit_write_duration_seconds",
              "RocksDB write of one commit group, including its fsync when synced.",
              &em->commit_write_ns, ns);
    histogram(t, "mnemo_engine_commit_group_entries", "WAL entries written per commit group.",
              &em->group_entries, 1);
    histogram(t, "mnemo_engine_fsync_group_entries",
              "WAL entries sharing one fsync (group commit size of synced groups).",
              &em->group_synced, 1);
    counter(t, "mnemo_engine_commits_total", "Commit groups written.", em->stats.commits);
    counter(t, "mnemo_engine_fsyncs_total", "Commit groups written with fsync.",
            em->stats.synced_commits);
    counter(t, "mnemo_engine_wal_entries_total", "WAL entries written.", em->stats.entries);
    counter(t, "mnemo_engine_links_total", "Semantic links made by the background linker.",
            em->stats.links);
    counter(t, "mnemo_engine_background_dropped_total",
            "Background link/reinforce jobs dropped because the queue was full.",
            em->stats.links_dropped);
    counter(t, "mnemo_engine_reinforced_total", "Memories reinforced after recall.",
            em->stats.reinforced);
    gauge(t, "mnemo_spaces", "Memory spaces.", (double)em->stats.spaces);

    mn_prom_family(t, "mnemo_memories", "Live memories by space and kind (suppressed included).",
                   "gauge");
    for (size_t i = 0; i < em->n_spaces; i++) {
        mn_prom_label_t l[2] = {{"space", em->spaces[i].name}, {"kind", "episodic"}};
        mn_prom_sample_u64(t, "mnemo_memories", l, 2, em->spaces[i].episodic);
        l[1].value = "semantic";
        mn_prom_sample_u64(t, "mnemo_memories", l, 2, em->spaces[i].semantic);
    }
    space_gauge(t, em, "mnemo_memories_suppressed", "Suppressed memories by space.",
                offsetof(mn_space_metrics_t, suppressed));
    space_gauge(t, em, "mnemo_memory_tombstones", "Forgotten memories (tombstones) by space.",
                offsetof(mn_space_metrics_t, tombstones));
    space_gauge(t, em, "mnemo_index_hnsw_nodes",
                "Searchable nodes of the space's HNSW index (0: exact scan, no index yet).",
                offsetof(mn_space_metrics_t, hnsw_nodes));
    space_gauge(t, em, "mnemo_index_hnsw_bytes", "Memory held by the space's HNSW index.",
                offsetof(mn_space_metrics_t, hnsw_bytes));
    space_gauge(t, em, "mnemo_index_keyword_docs", "Memories in the space's keyword index.",
                offsetof(mn_space_metrics_t, keyword_docs));
    space_gauge(t, em, "mnemo_index_keyword_terms", "Distinct words in the space's keyword index.",
                offsetof(mn_space_metrics_t, keyword_terms));
    space_gauge(t, em, "mnemo_space_vector_bytes", "In-memory vector storage of the space.",
                offsetof(mn_space_metrics_t, vector_bytes));
    space_gauge(t, em, "mnemo_space_last_lsn", "Last committed WAL position of the space.",
                offsetof(mn_space_metrics_t, last_lsn));

    gauge(t, "mnemo_rocksdb_block_cache_usage_bytes", "Bytes in the RocksDB block cache.",
          (double)em->block_cache_usage);
    gauge(t, "mnemo_rocksdb_block_cache_capacity_bytes", "RocksDB block cache capacity.",
          (double)em->block_cache_capacity);
    gauge(t, "mnemo_rocksdb_block_cache_pinned_bytes", "Pinned bytes in the block cache.",
          (double)em->block_cache_pinned);
    cf_gauge(t, em, "mnemo_rocksdb_live_sst_bytes", "Live SST file bytes by column family.",
             offsetof(mn_store_cf_metrics_t, live_sst_bytes));
    cf_gauge(t, em, "mnemo_rocksdb_pending_compaction_bytes",
             "Estimated bytes compaction still has to rewrite, by column family.",
             offsetof(mn_store_cf_metrics_t, pending_compaction_bytes));
    cf_gauge(t, em, "mnemo_rocksdb_memtable_bytes", "Memtable bytes by column family.",
             offsetof(mn_store_cf_metrics_t, memtable_bytes));
    gauge(t, "mnemo_rocksdb_wal_bytes", "Bytes of RocksDB's write-ahead log files.",
          (double)em->rocksdb_wal_bytes);
    gauge(t, "mnemo_rocksdb_running_compactions", "Compactions running now.",
          (double)em->running_compactions);
    gauge(t, "mnemo_rocksdb_background_errors", "RocksDB background errors since start.",
          (double)em->background_errors);
}

/* Resident set size from /proc/self/statm (pages), or -1. */
static double rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    unsigned long long size = 0, resident = 0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    return n == 2 ? (double)resident * (double)sysconf(_SC_PAGESIZE) : -1;
}

/* Entries of /proc/self/fd, less the one opendir holds, or -1. */
static double open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    long n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return (double)(n - 1);
}

static void process_section(mn_text_t *t, const mn_api_t *api)
{
    double rss = rss_bytes();
    if (rss >= 0) gauge(t, "mnemo_process_resident_memory_bytes", "Resident set size.", rss);
    double fds = open_fds();
    if (fds >= 0) gauge(t, "mnemo_process_open_fds", "Open file descriptors.", fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        gauge(t, "mnemo_process_max_fds", "File descriptor limit (soft).", (double)rl.rlim_cur);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        mn_prom_family(t, "mnemo_process_cpu_seconds_total", "User and system CPU time.",
                       "counter");
        mn_prom_sample(t, "mnemo_process_cpu_seconds_total", NULL, 0, cpu);
    }
    gauge(t, "mnemo_process_start_time_seconds", "Start time since the Unix epoch.",
          (double)api->started_ms / 1000.0);
    mn_prom_family(t, "mnemo_build_info", "Always 1; the version is a label.", "gauge");
    mn_prom_label_t v = {"version", mn_api_version()};
    mn_prom_sample(t, "mnemo_build_info", &v, 1, 1);
    gauge(t, "mnemo_ready", "1 while serving, 0 once a graceful shutdown started.",
          atomic_load(&api->draining) ? 0 : 1);
    counter(t, "mnemo_metrics_dropped_total",
            "Observations dropped: a family had no room for a new label set.",
            mn_metrics_dropped(mn_metrics_process()));
}

void rest_h_metrics(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    (void)req;
    mn_api_t *api = ctx;
    mn_text_t t;
    mn_text_init(&t);
    mn_metrics_render(mn_metrics_process(), &t);
    mn_engine_metrics_t em;
    mn_error err = {0};
    if (mn_engine_get_metrics(api->engine, &em, &err) == MN_OK)
        engine_section(&t, &em);
    else
        mn_log_warn("metrics: engine figures unavailable: %s", err.message);
    mn_engine_metrics_clear(&em);
    process_section(&t, api);
    mn_embed_metrics(api->embed, &t); /* mnemo_embedding_*, with [embedding] */
    if (t.oom || !t.buf) {
        mn_text_free(&t);
        mn_http_respond_error(resp, 503, "unavailable", "out of memory rendering metrics", NULL);
        return;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body = t.buf;
    resp->body_len = t.len;
}
