/* The mnemo command line and the server lifecycle.
 *
 * `mnemo serve`: configuration (defaults < TOML file < MNEMO_* environment),
 * logger, engine, routes, HTTP server on a libuv loop. SIGTERM/SIGINT start a
 * graceful stop: /ready turns 503, the HTTP server stops accepting and lets
 * in-flight requests finish and their responses go out, then the engine waits
 * for its writes, flushes and closes RocksDB, and the process exits 0.
 * The libuv thread pool runs the handlers, so UV_THREADPOOL_SIZE is set from
 * http.worker_threads before the loop first uses the pool. */
#include "admin_cli.h"
#include "api_audit.h"
#include "api_internal.h"
#include "api_jobs.h"
#include "auth.h"
#include "cluster_routes.h"
#include "embed/embed.h"
#include "grpc/grpc_server.h"
#include "mcp/mcp.h"
#include "rest/rest.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "mnemo/config.h"

/* ---- API context and routes ---- */

mn_api_t *mn_api_new(mn_engine_t *engine)
{
    mn_api_t *api = calloc(1, sizeof *api);
    if (!api) return NULL;
    api->engine = engine;
    atomic_init(&api->draining, false);
    api->started_ms = mn_time_now_ms();
    rest_metrics_init(api);
    if (!(api->mcp = mcp_server_new())) {
        free(api);
        return NULL;
    }
    if (!(api->jobs = api_jobs_new(engine))) {
        mcp_server_free(api->mcp);
        free(api);
        return NULL;
    }
    if (mn_api_start_query(api, 0, NULL)) {
        api_jobs_free(api->jobs);
        mcp_server_free(api->mcp);
        free(api);
        return NULL;
    }
    return api;
}

void mn_api_stop_jobs(mn_api_t *api)
{
    if (!api) return;
    api_jobs_free(api->jobs);
    api->jobs = NULL;
}

mn_err mn_api_set_audit(mn_api_t *api, const char *path, mn_error *err)
{
    api_audit_close(api->audit);
    api->audit = NULL;
    int e = api_audit_open(path, &api->audit);
    if (e) return mn_error_set(err, MN_ERR_IO, "audit log %s: %s", path, strerror(e));
    return MN_OK;
}

void mn_api_free(mn_api_t *api)
{
    if (api) {
        mn_api_stop_query(api);
        mcp_server_free(api->mcp);
        api_jobs_free(api->jobs);
        api_audit_close(api->audit);
        free(api->routes);
    }
    free(api);
}

mn_err mn_api_set_mcp(mn_api_t *api, const mn_config_mcp_t *o, mn_error *err)
{
    return mcp_server_configure(api->mcp, o, err);
}

void mn_api_set_draining(mn_api_t *api)
{
    atomic_store(&api->draining, true);
}

static const api_route routes[] = {
    {"GET", "/health", rest_h_health},
    {"GET", "/ready", rest_h_ready},
    {"POST", "/v1/spaces", rest_h_space_create},
    {"GET", "/v1/spaces", rest_h_space_list},
    {"GET", "/v1/spaces/{space}", rest_h_space_get},
    {"DELETE", "/v1/spaces/{space}", rest_h_space_drop},
    {"GET", "/v1/spaces/{space}/stats", rest_h_space_stats},
    {"POST", "/v1/spaces/{space}/memories", rest_h_remember},
    {"GET", "/v1/spaces/{space}/memories", rest_h_list},
    {"GET", "/v1/spaces/{space}/memories/{id}", rest_h_get},
    {"DELETE", "/v1/spaces/{space}/memories/{id}", rest_h_forget},
    {"POST", "/v1/spaces/{space}/memories/{id}/unsuppress", rest_h_unsuppress},
    {"PATCH", "/v1/spaces/{space}/memories/{id}", rest_h_update},
    {"GET", "/v1/spaces/{space}/memories/{id}/history", rest_h_history},
    {"POST", "/v1/spaces/{space}/memories/{id}/invalidate", rest_h_invalidate},
    {"POST", "/v1/spaces/{space}/forget", rest_h_forget_where},
    {"GET", "/v1/spaces/{space}/jobs/{id}", rest_h_job_get},
    {"DELETE", "/v1/spaces/{space}/jobs/{id}", rest_h_job_cancel},
    {"POST", "/v1/spaces/{space}/recall", rest_h_recall},
    {"POST", "/v1/recall", rest_h_recall_many},
    {"POST", "/v1/spaces/{space}/associations", rest_h_associate},
    {"GET", "/v1/spaces/{space}/memories/{id}/associations", rest_h_associations},
    {"POST", "/v1/spaces/{space}/consolidate", rest_h_consolidate},
    {"POST", "/v1/spaces/{space}/recognize", rest_h_recognize},
    {"POST", "/v1/spaces/{space}/reminisce", rest_h_reminisce},
    {"POST", "/v1/spaces/{space}/complete", rest_h_complete},
    {"GET", "/v1/spaces/{space}/events", rest_h_events},
    /* cluster: a unary gRPC call forwarded by another node (internal hops only) */
    {"POST", "/v1/spaces/{space}/grpc/{method}", rest_h_grpc_hop},
    {"POST", "/v1/admin/checkpoint", rest_h_checkpoint},
    /* observability */
    {"GET", "/metrics", rest_h_metrics},
    {"GET", "/openapi.json", rest_h_openapi},
    {"GET", "/v1/admin/routes", rest_h_routes},
    /* MCP Streamable HTTP transport (api/mcp/mcp_transport.c) */
    {"POST", "/mcp", mcp_h_post},
    {"GET", "/mcp", mcp_h_get},
    {"DELETE", "/mcp", mcp_h_delete},
};

mn_err mn_api_register(mn_api_t *api, mn_http_router_t *router, mn_error *err)
{
    api->router = router;
    size_t n = sizeof routes / sizeof routes[0];
    free(api->routes);
    if (!(api->routes = malloc(n * sizeof *api->routes)))
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    api->n_routes = n;
    for (size_t i = 0; i < n; i++) {
        api_route_ctx *ctx = &api->routes[i];
        ctx->route = routes[i];
        ctx->api = api;
        const api_route *r = &ctx->route;
        /* a route about one space goes through the routing entry (cluster mode) */
        bool routed = rest_routable(r->method, r->pattern);
        mn_err rc = mn_http_router_add(router, r->method, r->pattern,
                                       routed ? rest_h_routed : r->fn, routed ? (void *)ctx : api);
        if (rc)
            return mn_error_set(err, rc, "route %s %s: %s", r->method, r->pattern,
                                mn_strerror(rc));
    }
    return MN_OK;
}

/* ---- serve ---- */

/* How long in-flight gRPC calls may take to finish at shutdown before they are cancelled. */
#define GRPC_GRACE_MS 10000

typedef struct server {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    mn_http_server_t *http;
    mn_api_t *api;
    mn_cluster_t *cluster; /* NULL in single-node mode */
    mn_grpc_t *grpc;       /* NULL with grpc.enabled = false */
    int64_t leave_handover_ms; /* cluster.leave_handover_ms */
    bool stopping;
} server;

static void on_cluster_stopped(void *arg)
{
    (void)arg;
    mn_log_info("left the cluster");
}

static void on_http_closed(void *arg)
{
    server *s = arg;
    s->http = NULL;
    if (s->cluster) {
        /* gRPC calls use the cluster's hooks (routing, write waits, the catalog): let them
         * finish first (gRPC stopped accepting at the signal; bounded by the grace) */
        mn_grpc_stop(s->grpc, GRPC_GRACE_MS);
        s->grpc = NULL;
        /* no handler runs any more: leave the cluster gracefully (bounded) */
        mn_cluster_stop(s->cluster, 3000, on_cluster_stopped, s);
        s->cluster = NULL;
    }
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    mn_log_info("http server stopped");
}

static void stop_serving(void *arg)
{
    server *s = arg;
    mn_api_set_draining(s->api);
    if (s->grpc) mn_grpc_shutdown_begin(s->grpc);
    mn_http_server_shutdown(s->http, on_http_closed, s);
}

static void on_signal(uv_signal_t *h, int signum)
{
    server *s = h->data;
    if (s->stopping) {
        mn_log_warn("%s again: still finishing in-flight requests", strsignal(signum));
        return;
    }
    s->stopping = true;
    mn_log_info("%s: shutting down (finishing in-flight requests)", strsignal(signum));
    if (s->cluster) /* its primaries first go to other holders, while requests are served */
        mn_cluster_hand_over(s->cluster, s->leave_handover_ms, stop_serving, s);
    else
        stop_serving(s);
}

static mn_err engine_options(const mn_config_t *c, mn_engine_options_t *o, mn_error *err)
{
    mn_engine_options_default(o);
    o->data_dir = c->storage.data_dir;
    o->block_cache_bytes = (size_t)c->storage.block_cache_mb << 20;
    o->write_buffer_bytes = (size_t)c->storage.write_buffer_mb << 20;
    o->sync = c->storage.sync;
    o->wal_retain_entries = (uint64_t)c->storage.wal_retain_entries;
    o->ephemeral_ttl_s = c->engine.ephemeral_ttl_seconds;
    /* cluster mode: a space takes writes only where the replication core elected it */
    o->spaces_start_replica = c->cluster.enabled;
    o->session_ttl_s = c->engine.session_ttl_seconds;
    o->expiry_interval_ms = c->engine.expiry_interval_ms;
    if (mn_lifecycle_parse(c->engine.default_lifecycle, &o->default_lifecycle))
        return mn_error_set(err, MN_ERR_INVALID, "engine.default_lifecycle: unknown class \"%s\"",
                            c->engine.default_lifecycle);
    o->link_threshold = (float)c->engine.link_threshold;
    o->link_max = (uint32_t)c->engine.link_max;
    o->temporal_window_ms = c->engine.temporal_window_ms;
    o->initial_stability_days = (float)c->engine.initial_stability_days;
    o->as_of_max_age_ms = c->engine.as_of_max_age_s * 1000;
    o->consolidate_interval_ms = c->engine.consolidate_interval_s * 1000;
    o->consolidate.threshold = (float)c->engine.consolidate_threshold;
    o->consolidate.min_support = (uint32_t)c->engine.consolidate_min_support;
    o->hnsw_threshold = (uint32_t)c->engine.hnsw_threshold;
    o->hnsw_m = (uint32_t)c->engine.hnsw_m;
    o->hnsw_ef_construction = (uint32_t)c->engine.hnsw_ef_construction;
    o->hnsw_ef_search = (uint32_t)c->engine.hnsw_ef_search;
    o->hnsw_quantize = c->engine.hnsw_quantize;
    o->hnsw_save_interval_ms = c->engine.hnsw_save_interval_s * 1000;
    o->max_spaces = (uint64_t)c->engine.max_spaces;
    return MN_OK;
}

/* The cluster port beyond loopback needs cluster.key (or --insecure): without it anyone who
 * can reach the port joins the membership and forges what it says. 0 or an exit code. */
static int check_cluster_exposure(const mn_config_t *c, bool insecure)
{
    if (!c->cluster.enabled || (c->cluster.key && c->cluster.key[0]) ||
        mn_auth_bind_is_loopback(c->cluster.bind))
        return 0;
    if (insecure) {
        mn_log_warn("--insecure: the cluster port on %s has no cluster.key", c->cluster.bind);
        return 0;
    }
    fprintf(stderr,
            "mnemo: refusing to open the cluster port on %s without cluster.key: anyone who can "
            "reach it could join the cluster and forge its membership. Set cluster.key (the "
            "same secret on every node; see runbooks/single-node.md, \"Exposing mnemo beyond "
            "localhost\"), bind cluster.bind to 127.0.0.1, or start with `mnemo serve "
            "--insecure` to accept the risk.\n",
            c->cluster.bind);
    return 2;
}

/* Security checks before anything is opened: the API keys, and no unauthenticated API or
 * cluster port on a non-loopback address unless the operator said --insecure. 0 or an
 * exit code. */
static int check_exposure(const mn_config_t *c, bool insecure, mn_auth_t **auth)
{
    mn_error err = {0};
    int rc = check_cluster_exposure(c, insecure);
    if (rc) return rc;
    if (mn_auth_new(&c->auth, auth, &err)) {
        fprintf(stderr, "mnemo: configuration error: %s\n", err.message);
        return 2;
    }
    if (!c->auth.enabled && c->auth.keys.count > 0)
        mn_log_warn("auth: %zu [[auth.keys]] configured but auth.enabled = false: keys are not "
                    "checked",
                    c->auth.keys.count);
    /* every door that listens beyond loopback needs auth (or --insecure) */
    bool http_out = !mn_auth_bind_is_loopback(c->http.bind);
    bool grpc_out = c->grpc.enabled && !mn_auth_bind_is_loopback(c->grpc.bind);
    if (!http_out && !grpc_out) return 0;
    const char *door = http_out ? "HTTP" : "gRPC", *tbl = http_out ? "http" : "grpc";
    const char *exposed = http_out ? c->http.bind : c->grpc.bind;
    if (c->auth.enabled) {
        if (http_out && !c->http.tls_cert[0])
            mn_log_warn("auth: API keys cross the network in clear text on %s: set "
                        "http.tls_cert/http.tls_key or put a TLS proxy in front",
                        c->http.bind);
        if (grpc_out && !c->grpc.tls_cert[0])
            mn_log_warn("auth: API keys cross the network in clear text on %s (gRPC): set "
                        "grpc.tls_cert/grpc.tls_key or put a TLS proxy in front",
                        c->grpc.bind);
        return 0;
    }
    if (!insecure) {
        mn_auth_free(*auth);
        *auth = NULL;
        fprintf(stderr,
                "mnemo: refusing to serve the %s API on %s without authentication: anyone who "
                "can reach it could read and change every memory. Set auth.enabled = true with "
                "[[auth.keys]] (see runbooks/single-node.md, \"Exposing mnemo beyond "
                "localhost\"), bind %s.bind to 127.0.0.1, or start with `mnemo serve "
                "--insecure` to accept the risk.\n",
                door, exposed, tbl);
        return 2;
    }
    if (http_out) mn_log_warn("--insecure: the HTTP API on %s has no authentication", c->http.bind);
    if (grpc_out) mn_log_warn("--insecure: the gRPC API on %s has no authentication", c->grpc.bind);
    return 0;
}

/* The process-wide settings of the configuration: the logger, the size of the libuv thread
 * pool (created on its first use, which is the first request), SIGPIPE. 0 or an exit code. */
static int setup_process(const mn_config_t *c)
{
    mn_log_level_t level = MN_LOG_INFO;
    if (mn_log_level_parse(c->log.level, &level)) {
        fprintf(stderr, "mnemo: log.level: unknown level \"%s\"\n", c->log.level);
        return 2;
    }
    mn_log_configure(level,
                     strcmp(c->log.format, "json") ? MN_LOG_FORMAT_TEXT : MN_LOG_FORMAT_JSON);
    const char *skew = getenv("MNEMO_TEST_CLOCK_OFFSET_MS");
    if (mn_time_test_offset_ms())
        mn_log_warn("TEST ONLY: MNEMO_TEST_CLOCK_OFFSET_MS=%lld: this process's wall clock is "
                    "shifted by that many ms (a chaos-harness fault; never set it in production)",
                    (long long)mn_time_test_offset_ms());
    else if (skew && *skew && strcmp(skew, "0"))
        mn_log_warn("TEST ONLY: MNEMO_TEST_CLOCK_OFFSET_MS=\"%s\" ignored: not an integer of ms "
                    "within +-10 years",
                    skew);
    char threads[24];
    snprintf(threads, sizeof threads, "%lld", (long long)c->http.worker_threads);
    setenv("UV_THREADPOOL_SIZE", threads, 1);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Opens the engine of [storage] and [engine] into *out. 0 or an exit code. */
static int open_engine(const mn_config_t *c, bool salvage, mn_engine_t **out)
{
    mn_error err = {0};
    mn_engine_options_t eo;
    if (engine_options(c, &eo, &err)) {
        fprintf(stderr, "mnemo: %s\n", err.message);
        return 2;
    }
    eo.salvage = salvage;
    if (mn_engine_open(&eo, out, &err)) {
        mn_log_error("cannot open the data dir %s: %s", c->storage.data_dir, err.message);
        return 1;
    }
    mn_log_info("mnemo %s: data dir %s (sync %s)", mn_api_version(), c->storage.data_dir,
                c->storage.sync ? "on" : "off");
    return 0;
}

/* [audit] path: "" = <data_dir>/audit.jsonl, "off" = none. */
static mn_err set_audit(mn_api_t *api, const mn_config_t *c, mn_error *err)
{
    const char *p = c->audit.path;
    if (!strcmp(p, "off")) return MN_OK;
    char def[4096];
    if (!*p) {
        snprintf(def, sizeof def, "%s/audit.jsonl", c->storage.data_dir);
        p = def;
    }
    return mn_api_set_audit(api, p, err);
}

/* The routes of the API, and of the cluster when it is on (SWIM membership on this loop; data
 * placement and replication come later). 0 or an exit code. */
static int register_routes(server *s, const mn_config_t *c, mn_http_router_t *router)
{
    mn_error err = {0};
    /* with a provider, the spaces the remember tool makes are of its dim (text is all an
     * MCP agent has) */
    mn_config_mcp_t mcp = c->mcp;
    if (c->embedding.url[0]) mcp.default_dim = c->embedding.dim;
    if (mn_embed_start(&c->embedding, s->api->engine, &s->api->embed, &err)) {
        mn_log_error("embedding: %s", err.message);
        return 1;
    }
    if (mn_api_set_mcp(s->api, &mcp, &err) || mn_api_register(s->api, router, &err) ||
        set_audit(s->api, c, &err)) {
        mn_log_error("%s", err.message);
        return 1;
    }
    s->leave_handover_ms = c->cluster.leave_handover_ms;
    if (c->cluster.enabled && (mn_cluster_start(&s->loop, c, s->api->engine, &s->cluster, &err) ||
                               mn_cluster_register(s->cluster, s->api, router, &err))) {
        mn_log_error("cluster: %s", err.message);
        return 1;
    }
    return 0;
}

static void http_options(const mn_config_t *c, mn_http_server_options_t *ho)
{
    mn_http_server_options_default(ho);
    ho->bind = c->http.bind;
    ho->port = (int)c->http.port;
    ho->max_body_bytes = (size_t)c->http.max_body_bytes;
    ho->max_header_bytes = (size_t)c->http.max_header_bytes;
    ho->max_connections = (int)c->http.max_connections;
    ho->idle_timeout_ms = (int)c->http.idle_timeout_ms;
    ho->max_pipelined = (int)c->http.max_pipelined;
    ho->max_pipelined_bytes = (size_t)c->http.max_pipelined_bytes;
    ho->max_inflight_bytes = (size_t)c->http.max_inflight_bytes;
    ho->max_streams = (int)c->http.max_streams;
    ho->max_streams_per_principal = (int)c->http.max_streams_per_key;
    ho->stream_max_lifetime_ms = c->http.stream_max_lifetime_s * 1000;
    ho->request_timeout_ms = (int)c->http.request_timeout_ms;
    ho->tls_cert = c->http.tls_cert;
    ho->tls_key = c->http.tls_key;
}

/* Listens for HTTP with the access log, the auth gate and the signals that stop it. 0 or an
 * exit code. */
static int start_http(server *s, const mn_config_t *c, mn_http_router_t *router, mn_auth_t *auth)
{
    mn_error err = {0};
    mn_http_server_options_t ho;
    http_options(c, &ho);
    if (mn_http_server_start(&s->loop, &ho, router, &s->http, &err)) {
        mn_log_error("cannot listen on %s:%lld: %s", c->http.bind, (long long)c->http.port,
                     err.message);
        return 1;
    }
    mn_http_server_set_observer(s->http, rest_access_observe, s->api);
    if (s->cluster) /* signed internal hops, then the API keys */
        mn_cluster_set_gate(s->cluster, s->http, auth);
    else if (mn_auth_enabled(auth))
        mn_http_server_set_gate(s->http, mn_auth_http_gate, auth);
    mcp_server_set_auth(s->api->mcp, auth); /* MCP tools check their own operations */
    s->api->auth = auth; /* key names: corrections' changed_by, audit lines */
    uv_signal_init(&s->loop, &s->sigterm);
    uv_signal_init(&s->loop, &s->sigint);
    s->sigterm.data = s->sigint.data = s;
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    return 0;
}

/* Starts gRPC when it is on; if it cannot, stops the HTTP server already listening. 0 or an
 * exit code. */
static int start_grpc(server *s, const mn_config_t *c, const mn_auth_t *auth)
{
    if (!c->grpc.enabled) return 0;
    mn_grpc_options_t go = {
        .bind = c->grpc.bind,
        .port = (int)c->grpc.port,
        .threads = (int)c->grpc.threads,
        .max_message_bytes = (size_t)c->grpc.max_message_bytes,
        .max_concurrent_streams = (int)c->grpc.max_concurrent_streams,
        .max_watches = (int)c->grpc.max_watches,
        .handshake_timeout_ms = (int)c->grpc.handshake_timeout_ms,
        .idle_timeout_ms = (int)c->grpc.idle_timeout_ms,
        .tls_cert = c->grpc.tls_cert,
        .tls_key = c->grpc.tls_key,
    };
    mn_error err = {0};
    if (mn_grpc_start(s->api, auth, &go, &s->grpc, &err)) {
        mn_log_error("%s", err.message);
        s->stopping = true;
        mn_http_server_shutdown(s->http, on_http_closed, s);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        return 1;
    }
    return 0;
}

/* Runs what a failed start left on the loop to its end, then closes the loop. */
static void close_loop(server *s)
{
    if (s->cluster && !s->http) { /* failed before the HTTP server started */
        mn_cluster_stop(s->cluster, 0, on_cluster_stopped, s);
        s->cluster = NULL;
        uv_run(&s->loop, UV_RUN_DEFAULT);
    }
    if (s->http) {
        /* start failed after listening: not reached today, kept for safety */
        mn_http_server_shutdown(s->http, on_http_closed, s);
        uv_run(&s->loop, UV_RUN_DEFAULT);
    }
    if (uv_loop_close(&s->loop)) {
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
    }
}

static int serve(const mn_config_t *c, bool insecure, bool salvage)
{
    int exit_code = setup_process(c);
    if (exit_code) return exit_code;
    server s;
    memset(&s, 0, sizeof s);
    mn_auth_t *auth = NULL;
    mn_engine_t *engine = NULL;
    mn_http_router_t *router = NULL;
    bool loop_open = false;
    mn_error eerr = {0};
    if (mn_embed_config_check(&c->embedding, &eerr)) {
        fprintf(stderr, "mnemo: configuration error: %s\n", eerr.message);
        exit_code = 2;
        goto out;
    }
    if ((exit_code = check_exposure(c, insecure, &auth)) ||
        (exit_code = open_engine(c, salvage, &engine)))
        goto out;
    router = mn_http_router_new();
    s.api = mn_api_new(engine);
    if (!router || !s.api || uv_loop_init(&s.loop)) {
        mn_log_error("out of memory starting the server");
        exit_code = 1;
        goto out;
    }
    loop_open = true;
    if (c->grpc.enabled) s.api->grpc_hop = mn_grpc_hop_service(); /* before any request */
    if ((exit_code = register_routes(&s, c, router)) ||
        (exit_code = start_http(&s, c, router, auth)) || (exit_code = start_grpc(&s, c, auth)))
        goto out;
    char host[300];
    snprintf(host, sizeof host, strchr(c->http.bind, ':') ? "[%s]" : "%s", c->http.bind);
    mn_log_info("listening on %s://%s:%d (auth %s)", c->http.tls_cert[0] ? "https" : "http", host,
                mn_http_server_port(s.http), mn_auth_enabled(auth) ? "on" : "off");
    if (s.cluster) mn_cluster_advertise(s.cluster, c, mn_http_server_port(s.http));

    uv_run(&s.loop, UV_RUN_DEFAULT);
    /* HTTP is done; gRPC stopped accepting at the signal: let its calls finish */
    mn_grpc_stop(s.grpc, GRPC_GRACE_MS);
    s.grpc = NULL;
    mn_log_info("closing the engine");

out:
    if (loop_open) close_loop(&s);
    mn_http_router_free(router);
    mn_api_stop_query(s.api); /* its jobs recall through the provider and the engine */
    if (s.api) mn_embed_stop(s.api->embed); /* its thread writes to the engine */
    mn_api_stop_jobs(s.api);                /* so do the forget-by-filter jobs */
    mn_engine_close(engine);
    mn_api_free(s.api);
    mn_auth_free(auth);
    if (!exit_code) mn_log_info("stopped");
    return exit_code;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "mnemo %s: cognitive memory for AI agents\n"
            "\n"
            "usage:\n"
            "  mnemo serve [--config FILE] [--insecure] [--salvage]\n"
            "                                run the server (HTTP API, see docs/api.md);\n"
            "                                --insecure allows a non-loopback http.bind\n"
            "                                with auth.enabled = false; --salvage starts\n"
            "                                on a damaged data dir with what is readable\n"
            "  mnemo check DATA_DIR          verify a data dir offline (exit 1 on damage)\n"
            "  mnemo admin status|drain NODE|rebalance [--url URL] [--key KEY]\n"
            "                                operate a cluster through any node\n"
            "                                (mnemo admin help; runbooks/cluster.md)\n"
            "  mnemo config [--config FILE]  print the effective configuration as TOML\n"
            "  mnemo --version               print the version\n"
            "  mnemo help                    this text\n"
            "\n"
            "Every key table.key of the file can be set by MNEMO_<TABLE>_<KEY>\n"
            "(e.g. MNEMO_HTTP_PORT=8080, MNEMO_STORAGE_DATA_DIR=/var/lib/mnemo).\n",
            mn_api_version());
}

/* Reads [--config FILE | --config=FILE] (and --insecure, --salvage when insecure is not NULL)
 * after the command; false on a bad argument. */
static bool config_arg(int argc, char **argv, const char **path, bool *insecure, bool *salvage)
{
    *path = NULL;
    for (int i = 2; i < argc; i++) {
        if (insecure && !strcmp(argv[i], "--insecure")) {
            *insecure = true;
            continue;
        }
        if (insecure && !strcmp(argv[i], "--salvage")) {
            *salvage = true;
            continue;
        }
        if (!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mnemo: %s needs a file name\n", argv[i]);
                return false;
            }
            *path = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            *path = argv[i] + 9;
        } else {
            fprintf(stderr, "mnemo: unknown argument \"%s\" (try mnemo help)\n", argv[i]);
            return false;
        }
    }
    return true;
}

/* `mnemo check DATA_DIR`: 0 when the data dir is whole, 1 on damage, 2 when it cannot look. */
static int check(int argc, char **argv)
{
    if (argc != 3 || argv[2][0] == '-') {
        fprintf(stderr, "usage: mnemo check DATA_DIR (no server may run on it)\n");
        return 2;
    }
    mn_engine_check_report_t rep;
    mn_error err = {0};
    if (mn_engine_check(argv[2], stdout, &rep, &err)) {
        fprintf(stderr, "mnemo check: %s\n", err.message);
        return 2;
    }
    return rep.problems ? 1 : 0;
}

int mn_api_main(int argc, char **argv, char **envp)
{
    const char *cmd = argc > 1 ? argv[1] : "help";
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version") || !strcmp(cmd, "-V")) {
        printf("mnemo %s\n", mn_api_version());
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return argc > 1 ? 0 : 2;
    }
    if (!strcmp(cmd, "check")) return check(argc, argv);
    if (!strcmp(cmd, "admin")) return mn_admin_main(argc, argv);
    if (strcmp(cmd, "serve") && strcmp(cmd, "config")) {
        fprintf(stderr, "mnemo: unknown command \"%s\"\n\n", cmd);
        usage(stderr);
        return 2;
    }
    const char *path;
    bool insecure = false, salvage = false;
    if (!config_arg(argc, argv, &path, strcmp(cmd, "serve") ? NULL : &insecure, &salvage))
        return 2;
    mn_config_t c;
    mn_error err = {0};
    if (mn_config_load(&c, path, envp, &err)) {
        fprintf(stderr, "mnemo: configuration error: %s\n", err.message);
        mn_config_free(&c);
        return 2;
    }
    int rc = 0;
    if (!strcmp(cmd, "config")) mn_config_dump(&c, stdout);
    else rc = serve(&c, insecure, salvage);
    mn_config_free(&c);
    return rc;
}
