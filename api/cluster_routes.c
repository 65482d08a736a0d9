/* Cluster membership in the server: SWIM on the server's libuv loop and the
 * GET /v1/cluster/members route.
 *
 * The SWIM core is single-threaded (loop thread) while HTTP handlers run on
 * the thread pool, so the loop thread publishes a snapshot of the member
 * table under a mutex after every membership event and every 250 ms (to
 * catch incarnation bumps, which raise no event); handlers only read the
 * snapshot. The node id is cluster.node_id, or a UUIDv7 generated on first
 * start and kept in <data_dir>/node_id, so a restarted node rejoins as itself
 * (with a higher incarnation: the adapter starts from wall-clock seconds).
 *
 * The core's counters go into the snapshot too (the route's "stats" object)
 * and, as increments since the last snapshot, into the process metrics
 * registry: mnemo_swim_packets_total{direction} and
 * mnemo_swim_dropped_packets_total{reason = auth | verify | misdirected}. */
#include "cluster_routes.h"

#include "api_internal.h"
#include "cluster_catalog.h"
#include "cluster_drain.h"
#include "cluster_gossip.h"
#include "cluster_hints.h"
#include "cluster_query.h"
#include "cluster_repl.h"
#include "cluster_route.h"
#include "cluster_spaces.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mnemo/metrics.h"
#include "mnemo/swim_uv.h"
#include "mnemo/util.h"

#define SNAPSHOT_EVERY_MS 250

typedef struct cl_row {
    mn_swim_member_info_t info;
    int64_t changed_ms; /* wall clock */
} cl_row;

struct mn_cluster {
    uv_loop_t *loop;
    mn_swim_uv_t *swim;
    cl_spaces *spaces;       /* placement: stepped on every snapshot */
    cl_catalog *catalog;     /* every space's definition (api/cluster_catalog.c) */
    cl_route *route;         /* forwarding: any node serves any space */
    api_cluster_hooks hooks; /* what the doors call (api->cluster points here) */
    char meta[MN_SWIM_META_MAX + 1];
    char zone[MN_SWIM_META_MAX + 1]; /* cluster.zone, announced in meta */
    char api[MN_SWIM_META_MAX + 1];  /* the API address announced, "" until HTTP listens */
    char peer[80];                   /* the peer bus's address announced, "HOST:PORT" */
    cl_repl *repl;                   /* replication: its own thread and the peer bus */
    cl_query *query;                 /* recalls over many spaces across nodes */
    cl_gossip *gossip;               /* semantic memories between nodes, on repl's bus */
    cl_hintd *hints;                 /* partition writes: hints kept here, drained to primaries */
    cl_drain drain;                  /* this node's drain flag, POST /v1/cluster/drain */
    int64_t hedge_budget_percent;    /* cluster.hedge_budget_percent, for query */
    uv_timer_t timer;
    uv_timer_t handover;       /* a graceful leave: the wait for its primaries to hand over */
    int64_t handover_start_ms; /* ... monotonic, when it began */
    int64_t handover_end_ms;   /* ... when it gives up */
    void (*handed_over)(void *arg);
    void *handed_over_arg;
    char node_id[MN_SWIM_ID_MAX + 1];
    pthread_mutex_t mu;
    cl_row *rows;
    size_t n_rows;
    mn_swim_stats_t stats; /* with rows, under mu */
    int health;
    /* loop thread: what the registry has been given so far */
    mn_swim_stats_t exported;
    mn_metrics_family_t *m_packets, *m_dropped;
    int pending; /* handles still closing during stop */
    void (*done)(void *arg);
    void *done_arg;
};

/* ---- node id ---- */

static bool id_ok(const char *s, size_t n)
{
    if (n == 0 || n > MN_SWIM_ID_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || s[i] == 0x7f) return false;
    return mn_utf8_valid(s, n);
}

static mn_err load_node_id(const mn_config_t *c, char *out, mn_error *err)
{
    const char *given = c->cluster.node_id;
    if (given && *given) {
        if (!id_ok(given, strlen(given)))
            return mn_error_set(err, MN_ERR_INVALID,
                                "cluster.node_id must be 1..%d printable bytes without spaces",
                                MN_SWIM_ID_MAX);
        snprintf(out, MN_SWIM_ID_MAX + 1, "%s", given);
        return MN_OK;
    }
    char path[4096], tmp[4112];
    snprintf(path, sizeof path, "%s/node_id", c->storage.data_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        char buf[MN_SWIM_ID_MAX + 2] = {0};
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = 0;
        if (!id_ok(buf, n))
            return mn_error_set(err, MN_ERR_CORRUPT, "%s does not hold a valid node id", path);
        memcpy(out, buf, n + 1);
        return MN_OK;
    }
    if (errno != ENOENT)
        return mn_error_set(err, MN_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    mn_idgen_t g;
    mn_idgen_init(&g, mn_random_seed());
    mn_id_t id = mn_idgen_next(&g, mn_time_now_ms());
    mn_idgen_destroy(&g);
    mn_id_format(&id, out);
    /* write-then-rename: a crash never leaves a half-written id */
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    bool ok = f != NULL;
    if (f) {
        ok = fprintf(f, "%s\n", out) > 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
        if (fclose(f) != 0) ok = false;
    }
    if (!ok || rename(tmp, path) != 0)
        return mn_error_set(err, MN_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    mn_log_info("cluster: new node id %s (kept in %s)", out, path);
    return MN_OK;
}

/* ---- snapshot ---- */

static const char *const direction_label[] = {"direction"};
static const char *const reason_label[] = {"reason"};

static void metrics_init(mn_cluster_t *cl)
{
    mn_metrics_t *m = mn_metrics_process();
    cl->m_packets =
        mn_metrics_counter(m, "mnemo_swim_packets_total",
                           "SWIM datagrams this node received and sent.", direction_label, 1);
    cl->m_dropped = mn_metrics_counter(
        m, "mnemo_swim_dropped_packets_total",
        "SWIM datagrams dropped on receipt: auth = missing or wrong HMAC tag, verify = bad "
        "framing or a failed FlatBuffers/value check, misdirected = a ping for another node id.",
        reason_label, 1);
}

static void add_delta(mn_metrics_family_t *f, const char *value, uint64_t now, uint64_t before)
{
    const char *v[] = {value};
    if (f) mn_metrics_add(f, v, now - before);
}

/* Gives the registry what the core counted since the last call (loop thread). */
static void metrics_export(mn_cluster_t *cl, const mn_swim_stats_t *st)
{
    const mn_swim_stats_t *e = &cl->exported;
    add_delta(cl->m_packets, "received", st->packets_recv, e->packets_recv);
    add_delta(cl->m_packets, "sent", st->packets_sent, e->packets_sent);
    add_delta(cl->m_dropped, "auth", st->dropped_auth, e->dropped_auth);
    add_delta(cl->m_dropped, "verify", st->dropped_verify, e->dropped_verify);
    add_delta(cl->m_dropped, "misdirected", st->dropped_misdirected, e->dropped_misdirected);
    cl->exported = *st;
}

/* Announces this node's metadata (API address, zone, peer bus, drain flag). Loop thread. */
static void announce(mn_cluster_t *cl)
{
    cl_spaces_meta(cl->zone, cl->api[0] ? cl->api : NULL, cl->peer[0] ? cl->peer : NULL,
                   atomic_load(&cl->drain.draining), cl->meta, sizeof cl->meta);
    if (mn_swim_uv_set_meta(cl->swim, cl->meta) != MN_OK)
        mn_log_warn("cluster: cannot announce metadata \"%s\"", cl->meta);
}

/* cl->peer: cluster.bind and the bus's port; a wildcard bind takes SWIM's advertised IP
 * (swim NULL: not known yet, left empty). Whether it changed. */
static bool peer_address(mn_cluster_t *cl, const mn_config_t *c, mn_swim_uv_t *swim)
{
    const char *bind = c->cluster.bind;
    char host[MN_SWIM_ADDR_TEXT] = "";
    if (*bind && strcmp(bind, "0.0.0.0") != 0 && strcmp(bind, "::") != 0) {
        snprintf(host, sizeof host, strchr(bind, ':') ? "[%s]" : "%s", bind);
    } else if (swim) {
        mn_swim_addr_t a = mn_swim_uv_addr(swim);
        mn_swim_addr_format(&a, host, sizeof host);
        char *colon = strrchr(host, ':'); /* "IP:PORT" / "[IP6]:PORT": drop the port */
        if (colon) *colon = 0;
    }
    char was[sizeof cl->peer];
    memcpy(was, cl->peer, sizeof was);
    if (host[0])
        snprintf(cl->peer, sizeof cl->peer, "%s:%d", host, cl_repl_port(cl->repl));
    else
        cl->peer[0] = 0;
    return strcmp(was, cl->peer) != 0;
}

static void publish(mn_cluster_t *cl)
{
    if (atomic_exchange(&cl->drain.announce, false)) announce(cl);
    mn_swim_t *core = mn_swim_uv_core(cl->swim);
    mn_swim_stats_t st;
    mn_swim_stats_get(core, &st);
    metrics_export(cl, &st);
    size_t n = mn_swim_member_count(core);
    cl_row *rows = calloc(n ? n : 1, sizeof *rows);
    if (!rows) return; /* keep the previous snapshot */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (mn_swim_member_get(core, i, &rows[k].info)) {
            rows[k].changed_ms = mn_swim_uv_wall_ms(cl->swim, rows[k].info.changed_us);
            k++;
        }
    pthread_mutex_lock(&cl->mu);
    cl_row *old = cl->rows;
    cl->rows = rows;
    cl->n_rows = k;
    cl->stats = st;
    cl->health = mn_swim_health(core);
    pthread_mutex_unlock(&cl->mu);
    free(old);
    cl_spaces_tick(cl->spaces, core);
}

static void on_event(void *user, const mn_swim_event_t *ev)
{
    (void)ev;
    publish(user);
}

static void on_timer(uv_timer_t *t)
{
    publish(t->data);
}

/* ---- route ---- */

static int cmp_row(const void *a, const void *b)
{
    return strcmp(((const cl_row *)a)->info.id, ((const cl_row *)b)->info.id);
}

static void h_members(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    (void)req;
    mn_cluster_t *cl = ctx;
    pthread_mutex_lock(&cl->mu);
    size_t n = cl->n_rows;
    cl_row *rows = malloc((n ? n : 1) * sizeof *rows);
    if (rows) memcpy(rows, cl->rows, n * sizeof *rows);
    mn_swim_stats_t st = cl->stats;
    int health = cl->health;
    pthread_mutex_unlock(&cl->mu);
    if (!rows) {
        mn_http_respond_error(resp, 503, "unavailable", "out of memory", NULL);
        return;
    }
    qsort(rows, n, sizeof *rows, cmp_row);
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_CreateArray();
    size_t counts[4] = {0};
    for (size_t i = 0; i < n && root && arr; i++) {
        const mn_swim_member_info_t *m = &rows[i].info;
        char addr[MN_SWIM_ADDR_TEXT], when[40];
        mn_swim_addr_format(&m->addr, addr, sizeof addr);
        mn_time_format_rfc3339(rows[i].changed_ms, when, sizeof when);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", m->id);
        cJSON_AddStringToObject(o, "address", addr);
        cJSON_AddStringToObject(o, "state", mn_swim_state_name(m->state));
        cJSON_AddNumberToObject(o, "incarnation", (double)m->incarnation);
        cJSON_AddStringToObject(o, "last_change", when);
        cJSON_AddBoolToObject(o, "self", m->self);
        cJSON_AddItemToArray(arr, o);
        if ((unsigned)m->state < 4) counts[m->state]++;
    }
    free(rows);
    cJSON_AddStringToObject(root, "self", cl->node_id);
    cJSON *c = cJSON_AddObjectToObject(root, "counts");
    for (int s = 0; s < 4; s++)
        cJSON_AddNumberToObject(c, mn_swim_state_name((mn_swim_state_t)s), (double)counts[s]);
    cJSON_AddItemToObject(root, "members", arr);
    cJSON *so = cJSON_AddObjectToObject(root, "stats");
    if (so) {
        const struct {
            const char *name;
            uint64_t v;
        } f[] = {
            {"packets_received", st.packets_recv},
            {"packets_sent", st.packets_sent},
            {"bytes_received", st.bytes_recv},
            {"bytes_sent", st.bytes_sent},
            {"dropped_auth", st.dropped_auth},
            {"dropped_verify", st.dropped_verify},
            {"dropped_misdirected", st.dropped_misdirected},
            {"suspicions_raised", st.suspicions_raised},
            {"refutations", st.refutations},
        };
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
            cJSON_AddNumberToObject(so, f[i].name, (double)f[i].v);
        cJSON_AddNumberToObject(so, "health", health);
    }
    char *body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!body) {
        mn_http_respond_error(resp, 503, "unavailable", "out of memory", NULL);
        return;
    }
    mn_http_respond(resp, 200, NULL, body, strlen(body));
    cJSON_free(body);
}

/* ---- the hooks the doors call ---- */

static bool hook_route(void *arg, const mn_http_request_t *req, mn_http_response_t *resp,
                       api_route_ask *ask)
{
    mn_cluster_t *cl = arg;
    return cl_route_request(cl->route, req, resp, ask);
}

static mn_auth_result_t hook_hop_allow(void *arg, const mn_http_request_t *req, mn_auth_op_t op,
                                       const char *space, mn_auth_verdict_t *v)
{
    mn_cluster_t *cl = arg;
    return cl_route_hop_allow(cl->route, req, op, space, v);
}

static mn_err route_new(const mn_config_t *c, mn_cluster_t *cl, mn_error *err)
{
    cl_route_opts ro;
    cl_route_opts_default(&ro);
    ro.cluster_key = c->cluster.key ? c->cluster.key : "";
    ro.forward_timeout_ms = c->cluster.forward_timeout_ms;
    /* every node serves its API as this one does: over TLS when it has a certificate */
    ro.https = c->http.tls_cert[0] != 0;
    ro.tls_chain = c->http.tls_cert;
    ro.tls_ca = c->cluster.tls_ca; /* the peer bus's CA, when set, also vouches for API hops */
    ro.partition_accept = !strcmp(c->cluster.partition_writes, "accept");
    return cl_route_new(cl->spaces, &ro, &cl->route, err);
}

/* ---- lifecycle ---- */

mn_err mn_cluster_start(uv_loop_t *loop, const mn_config_t *c, mn_engine_t *engine,
                        mn_cluster_t **out, mn_error *err)
{
    *out = NULL;
    mn_swim_uv_opts_t o;
    memset(&o, 0, sizeof o);
    if (mn_swim_config_profile(c->cluster.profile, &o.config) != MN_OK)
        return mn_error_set(err, MN_ERR_INVALID, "cluster.profile: unknown profile \"%s\"",
                            c->cluster.profile);
    const mn_config_cluster_swim_t *t = &c->cluster_swim;
    if (t->probe_interval_ms) o.config.probe_interval_ms = t->probe_interval_ms;
    if (t->probe_timeout_ms) o.config.probe_timeout_ms = t->probe_timeout_ms;
    if (t->suspicion_mult) o.config.suspicion_mult = (int)t->suspicion_mult;
    if (t->gossip_interval_ms) o.config.gossip_interval_ms = t->gossip_interval_ms;
    if (t->push_pull_interval_ms) o.config.push_pull_interval_ms = t->push_pull_interval_ms;
    o.config.lifeguard = t->lifeguard;
    o.config.verify = t->lifeguard;
    mn_err crc = mn_swim_config_check(&o.config, err);
    if (crc != MN_OK) return crc;
    mn_cluster_t *cl = calloc(1, sizeof *cl);
    if (!cl) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    cl->hedge_budget_percent = c->cluster.hedge_budget_percent;
    mn_err rc = load_node_id(c, cl->node_id, err);
    if (rc == MN_OK) rc = cl_drain_init(&cl->drain, c->storage.data_dir, cl->node_id, err);
    if (rc == MN_OK) rc = cl_catalog_new(c, engine, cl->node_id, &cl->catalog, err);
    if (rc == MN_OK) rc = cl_spaces_new(c, engine, cl->catalog, cl->node_id, &cl->spaces, err);
    if (rc == MN_OK) rc = route_new(c, cl, err);
    cl->drain.route = cl->route;
    if (rc == MN_OK) rc = cl_catalog_start(cl->catalog, cl->route, err);
    if (rc == MN_OK) rc = cl_repl_start(c, engine, cl->node_id, &cl->repl, err);
    if (rc != MN_OK) {
        cl_catalog_free(cl->catalog); /* first: its thread calls through the route */
        cl_route_free(cl->route);
        cl_spaces_free(cl->spaces);
        free(cl);
        return rc;
    }
    cl_spaces_set_repl(cl->spaces, cl->repl);
    rc = cl_gossip_start(c, engine, cl->repl, cl->spaces, cl->catalog, cl->node_id, &cl->gossip,
                         err);
    if (rc != MN_OK) {
        cl_repl_stop(cl->repl);
        cl_catalog_free(cl->catalog); /* first: its thread calls through the route */
        cl_route_free(cl->route);
        cl_spaces_free(cl->spaces);
        free(cl);
        return rc;
    }
    rc = cl_hintd_start(c, engine, cl->spaces, cl->route, cl->repl, cl->catalog, &cl->hints, err);
    if (rc != MN_OK) {
        cl_repl_stop(cl->repl);
        cl_gossip_free(cl->gossip); /* after the bus: it calls into gossip until stopped */
        cl_catalog_free(cl->catalog); /* first: its thread calls through the route */
        cl_route_free(cl->route);
        cl_spaces_free(cl->spaces);
        free(cl);
        return rc;
    }
    peer_address(cl, c, NULL);
    snprintf(cl->zone, sizeof cl->zone, "%s", c->cluster.zone ? c->cluster.zone : "");
    cl_spaces_meta(cl->zone, NULL, cl->peer[0] ? cl->peer : NULL, atomic_load(&cl->drain.draining),
                   cl->meta, sizeof cl->meta);
    pthread_mutex_init(&cl->mu, NULL);
    cl->loop = loop;
    o.node_id = cl->node_id;
    o.bind = c->cluster.bind;
    o.port = (int)c->cluster.swim_port;
    o.seeds = (const char *const *)c->cluster.seeds.items;
    o.n_seeds = c->cluster.seeds.count;
    o.key = c->cluster.key;
    o.cb.user = cl;
    o.cb.event = on_event;
    o.meta = cl->meta;
    rc = mn_swim_uv_start(loop, &o, &cl->swim, err);
    if (rc != MN_OK) {
        cl_hintd_stop(cl->hints); /* first: its thread calls through the route */
        cl_repl_stop(cl->repl);
        cl_gossip_free(cl->gossip); /* after the bus: it calls into gossip until stopped */
        cl_catalog_free(cl->catalog); /* first: its thread calls through the route */
        cl_route_free(cl->route);
        cl_spaces_free(cl->spaces);
        pthread_mutex_destroy(&cl->mu);
        free(cl);
        return rc;
    }
    metrics_init(cl);
    if (peer_address(cl, c, cl->swim)) announce(cl);
    publish(cl);
    uv_timer_init(loop, &cl->timer);
    cl->timer.data = cl;
    uv_timer_init(loop, &cl->handover);
    cl->handover.data = cl;
    uv_timer_start(&cl->timer, on_timer, SNAPSHOT_EVERY_MS, SNAPSHOT_EVERY_MS);
    *out = cl;
    return MN_OK;
}

/* ---- the hooks of the doors (api_cluster_hooks; arg = the mn_cluster_t) ---- */

static void hook_space_created(void *arg, const char *space)
{
    cl_catalog_created(((mn_cluster_t *)arg)->catalog, space);
}

static void hook_space_dropped(void *arg, const char *space)
{
    cl_catalog_dropped(((mn_cluster_t *)arg)->catalog, space);
}

static mn_err hook_space_list(void *arg, mn_space_def_t **out, size_t *n, mn_error *err)
{
    return cl_catalog_list(((mn_cluster_t *)arg)->catalog, out, n, err);
}

static mn_err hook_write_wait(void *arg, const char *space, uint64_t lsn, uint64_t epoch, int level,
                              int64_t timeout_ms, mn_error *err)
{
    return cl_repl_write_wait(((mn_cluster_t *)arg)->repl, space, lsn, epoch, level, timeout_ms,
                              err);
}

static mn_err hook_hint_remember(void *arg, const char *space, const mn_memory_t *mems, size_t n,
                                 const mn_id_t *base, mn_id_t *ids_out, mn_error *err)
{
    return cl_hintd_remember(((mn_cluster_t *)arg)->hints, space, mems, n, base, ids_out, err);
}

static mn_err hook_partition_recall(void *arg, const char *space, const mn_recall_req_t *req,
                                    mn_recall_result_t *out, mn_error *err)
{
    return cl_gossip_recall(((mn_cluster_t *)arg)->gossip, space, req, out, err);
}

static mn_err hook_local_read(void *arg, const char *space, api_read_pref read, int64_t *lag_ms,
                              mn_error *err)
{
    cl_spaces *cs = ((mn_cluster_t *)arg)->spaces;
    *lag_ms = -1;
    cl_placement pl;
    if (!cl_spaces_lookup(cs, space, false, &pl)) return MN_OK; /* not placed: the engine's */
    const char *self = cl_spaces_self(cs);
    for (int i = 0; i < pl.n_holders; i++) {
        if (strcmp(pl.holders[i].node, self) != 0) continue;
        if (pl.holders[i].role != MN_SPACES_PRIMARY) {
            *lag_ms = pl.holders[i].lag_ms; /* its own, as it knows it */
            return MN_OK;
        }
        if (read == API_READ_PRIMARY) { /* read-your-writes: only within the lease */
            mn_err rc = cl_spaces_leads_now(cs, space, err);
            return rc == MN_OK || rc == MN_ERR_NOT_FOUND ? MN_OK : MN_ERR_UNAVAILABLE;
        }
        *lag_ms = cl_spaces_lapsed_ms(cs, space); /* -1 while the lease holds */
        return MN_OK;
    }
    return MN_OK;
}

static char *hook_cluster_spaces(void *arg, char *names, int *status, mn_error *err)
{
    return cl_spaces_render(((mn_cluster_t *)arg)->spaces, names, status, err);
}

static char *hook_cluster_gossip(void *arg, int *status, mn_error *err)
{
    return cl_gossip_render(((mn_cluster_t *)arg)->gossip, status, err);
}

static char *hook_cluster_hints(void *arg, int *status, mn_error *err)
{
    return cl_hintd_render(((mn_cluster_t *)arg)->hints, status, err);
}

mn_err mn_cluster_register(mn_cluster_t *cl, mn_api_t *api, mn_http_router_t *router, mn_error *err)
{
    const struct {
        const char *method, *pattern;
        mn_http_handler_fn fn;
        void *ctx;
    } routes[] = {
        {"GET", "/v1/cluster/members", h_members, cl},
        {"GET", "/v1/cluster/spaces", cl_spaces_handle, cl->spaces},
        {"GET", "/v1/cluster/catalog", cl_catalog_handle_get, cl->catalog},
        {"POST", "/v1/cluster/catalog", cl_catalog_handle_post, cl->catalog},
        {"POST", "/v1/cluster/drain", cl_drain_handle, &cl->drain},
        {"GET", "/v1/cluster/gossip", cl_gossip_handle, cl->gossip},
        {"GET", "/v1/cluster/hints", cl_hintd_handle_get, cl->hints},
        {"POST", "/v1/cluster/hints", cl_hintd_handle_merge, cl->hints},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        mn_err rc = mn_http_router_add(router, routes[i].method, routes[i].pattern, routes[i].fn,
                                       routes[i].ctx);
        if (rc != MN_OK)
            return mn_error_set(err, rc, "route %s %s: %s", routes[i].method, routes[i].pattern,
                                mn_strerror(rc));
    }
    cl->hooks.arg = cl;
    cl->hooks.route = hook_route;
    cl->hooks.space_created = hook_space_created;
    cl->hooks.space_dropped = hook_space_dropped;
    cl->hooks.space_list = hook_space_list;
    cl->hooks.write_wait = hook_write_wait;
    cl->hooks.cluster_spaces = hook_cluster_spaces;
    cl->hooks.cluster_gossip = hook_cluster_gossip;
    cl->hooks.cluster_hints = hook_cluster_hints;
    cl->hooks.hop_allow = hook_hop_allow;
    cl->hooks.partition_recall = hook_partition_recall;
    cl->hooks.local_read = hook_local_read;
    cl->hooks.hint_remember = hook_hint_remember;
    cl_hintd_set_api(cl->hints, api);
    api->cluster = &cl->hooks;
    mn_err rc = cl_query_new(api, cl->repl, cl->spaces, &cl->query, err);
    /* a space no copy answered: this node's gossiped semantic memories stand in */
    if (!rc) cl_query_set_partition(cl->query, cl->hooks.partition_recall, cl);
    if (!rc) cl_query_set_hedge_budget(cl->query, cl->hedge_budget_percent);
    return rc;
}

void mn_cluster_set_gate(mn_cluster_t *cl, mn_http_server_t *http, const mn_auth_t *auth)
{
    cl_route_set_auth(cl->route, auth);
    mn_http_server_set_gate(http, cl_route_gate, cl->route);
}

void mn_cluster_advertise(mn_cluster_t *cl, const mn_config_t *c, int port)
{
    const char *host = c->http.bind;
    if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::") || !*host) host = c->cluster.bind;
    snprintf(cl->api, sizeof cl->api, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    announce(cl);
    publish(cl);
}

static void finish(mn_cluster_t *cl)
{
    if (--cl->pending > 0) return;
    void (*done)(void *) = cl->done;
    void *arg = cl->done_arg;
    cl_hintd_stop(cl->hints);  /* first: its thread calls through the route and the bus */
    cl_query_close(cl->query); /* its threads post on the bus and ask gossip */
    cl_repl_stop(cl->repl);    /* no handler runs any more: nobody waits on it */
    cl_query_free(cl->query);
    cl_gossip_free(cl->gossip); /* after the bus: it calls into gossip until stopped */
    free(cl->rows);
    cl_catalog_free(cl->catalog); /* first: its thread calls through the route */
    cl_route_free(cl->route);
    cl_spaces_free(cl->spaces);
    pthread_mutex_destroy(&cl->mu);
    free(cl);
    if (done) done(arg);
}

static void on_swim_stopped(void *arg)
{
    finish(arg);
}

static void on_timer_closed(uv_handle_t *h)
{
    finish(h->data);
}

/* ---- a graceful leave hands its primaries over first ---- */

#define HANDOVER_POLL_MS 100

static void handover_poll(uv_timer_t *t)
{
    mn_cluster_t *cl = t->data;
    size_t led = cl_repl_leading(cl->repl);
    int64_t now = mn_time_mono_ns() / 1000000;
    if (led && now < cl->handover_end_ms) return;
    uv_timer_stop(t);
    if (led)
        mn_log_warn("cluster: leaving while still leading %zu spaces (no handover within %lld "
                    "ms): they fail over",
                    led, (long long)(cl->handover_end_ms - cl->handover_start_ms));
    else
        mn_log_info("cluster: every primary handed over in %lld ms",
                    (long long)(now - cl->handover_start_ms));
    cl->handed_over(cl->handed_over_arg);
}

void mn_cluster_hand_over(mn_cluster_t *cl, int64_t timeout_ms, void (*done)(void *arg), void *arg)
{
    size_t led = cl_repl_leading(cl->repl);
    if (!led || timeout_ms <= 0) {
        done(arg);
        return;
    }
    /* drain=1, announced at the next snapshot and not kept: a restart takes copies again */
    atomic_store(&cl->drain.draining, true);
    atomic_store(&cl->drain.announce, true);
    mn_log_info("cluster: handing over the %zu spaces this node leads before leaving (at most "
                "%lld ms)",
                led, (long long)timeout_ms);
    cl->handed_over = done;
    cl->handed_over_arg = arg;
    cl->handover_start_ms = mn_time_mono_ns() / 1000000;
    cl->handover_end_ms = cl->handover_start_ms + timeout_ms;
    uv_timer_start(&cl->handover, handover_poll, HANDOVER_POLL_MS, HANDOVER_POLL_MS);
}

void mn_cluster_stop(mn_cluster_t *cl, int64_t timeout_ms, void (*done)(void *arg), void *arg)
{
    if (!cl) {
        if (done) done(arg);
        return;
    }
    cl->done = done;
    cl->done_arg = arg;
    cl->pending = 3;
    uv_timer_stop(&cl->timer);
    uv_close((uv_handle_t *)&cl->timer, on_timer_closed);
    uv_close((uv_handle_t *)&cl->handover, on_timer_closed);
    mn_log_info("cluster: leaving");
    mn_swim_uv_stop(cl->swim, timeout_ms, on_swim_stopped, cl);
}
