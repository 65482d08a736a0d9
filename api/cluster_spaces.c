/* Placement inside the server (cluster mode).
 *
 * The loop thread owns the placement driver (spaces/place_driver.c): on
 * every SWIM snapshot (each membership event and every 250 ms) it steps the
 * table over the view — the alive and suspect members, each with the zone
 * from its SWIM metadata — and the catalog's spaces (every space of the
 * cluster, held here or not: api/cluster_catalog.c), then publishes a copy
 * under a mutex. GET /v1/cluster/spaces reads that copy on any thread.
 * Nodes whose catalogs and views agree compute the same holders for every
 * space; ?names= previews placement for any names over the current table. */
#include "cluster_spaces.h"

#include "cluster_repl.h"
#include "cluster_spaces_auth.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"
#include "mnemo/spaces.h"
#include "mnemo/util.h"

#define PREVIEW_MAX 100

typedef struct cl_node {
    char id[MN_SWIM_ID_MAX + 1];
    char zone[MN_SPACES_ZONE_MAX + 1];
    char api[MN_SWIM_META_MAX + 1];
    char peer[MN_SWIM_META_MAX + 1];
    bool draining; /* announces drain=1 (mnemo admin drain) */
    bool suspect;  /* SWIM suspects it (in the view until it is declared dead) */
} cl_node;

struct cl_spaces {
    mn_engine_t *engine;
    cl_catalog *catalog; /* the names placed */
    char self[MN_SWIM_ID_MAX + 1];
    mn_spaces_opts_t opts;
    const char *consistency;
    int64_t peer_port;
    char zone[MN_SPACES_ZONE_MAX + 1];
    mn_spaces_driver_t *driver; /* loop thread */
    pthread_mutex_t mu;         /* guards the snapshot below */
    mn_spaces_table_t table;
    cl_node *nodes; /* the view of the last step */
    size_t n_nodes;
    uint64_t promotions;
    char error[sizeof(((mn_error *)0)->message)]; /* the last step's failure, "" = none */
    uint64_t published_version; /* loop thread: the version of the table copied last */
    bool published;
    bool placing;          /* under mu: placement started (a copy of settled for other threads) */
    cl_repl *repl;         /* NULL: no replication (tests of placement alone) */
    cl_authority *auth;    /* with repl: publishes the records of the spaces led here */
    uint64_t fed_version;  /* loop thread: the table version handed to repl last */
    uint64_t fed_members;  /* ... and a hash of the members handed with it */
    bool has_seeds;        /* cluster.seeds given: this node joins an existing cluster */
    bool settled;          /* loop thread: placement started (view_settled) */
    int64_t start_ms;      /* loop thread: monotonic, the first tick */
    int64_t view_since_ms; /* ... when the view last changed */
    uint64_t view_hash;
    cl_lag_fn lag_fn; /* under mu */
    void *lag_arg;
};

/* ---- metadata ---- */

/* Appends ";key=value" (no ';' first) to buf. */
static void meta_add(char *buf, size_t len, const char *key, const char *value)
{
    size_t at = strlen(buf);
    if (value && *value && at < len)
        snprintf(buf + at, len - at, "%s%s=%s", at ? ";" : "", key, value);
}

void cl_spaces_meta(const char *zone, const char *api, const char *peer, bool draining, char *buf,
                    size_t len)
{
    buf[0] = 0;
    meta_add(buf, len, "api", api);
    meta_add(buf, len, "zone", zone);
    meta_add(buf, len, "peer", peer);
    if (draining) meta_add(buf, len, "drain", "1");
}

void cl_meta_get(const char *meta, const char *key, char *out, size_t cap)
{
    out[0] = 0;
    size_t kl = strlen(key);
    for (const char *p = meta; p && *p;) {
        const char *end = strchr(p, ';');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t vl = n - kl - 1 < cap - 1 ? n - kl - 1 : cap - 1;
            memcpy(out, p + kl + 1, vl);
            out[vl] = 0;
            return;
        }
        p = end ? end + 1 : NULL;
    }
}

/* ---- lifecycle ---- */

mn_err cl_spaces_new(const mn_config_t *c, mn_engine_t *engine, cl_catalog *catalog,
                     const char *self_id, cl_spaces **out, mn_error *err)
{
    *out = NULL;
    cl_spaces *cs = calloc(1, sizeof *cs);
    if (!cs) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    mn_spaces_opts_default(&cs->opts);
    cs->opts.replication_factor = (int)c->cluster.replication_factor;
    cs->opts.rebalance_concurrency = (int)c->cluster.rebalance_concurrency;
    mn_err rc = mn_spaces_driver_new(&cs->opts, &cs->driver, err);
    if (rc != MN_OK) {
        free(cs);
        return rc;
    }
    cs->engine = engine;
    cs->catalog = catalog;
    snprintf(cs->self, sizeof cs->self, "%s", self_id);
    cs->consistency = c->cluster.write_consistency;
    cs->has_seeds = c->cluster.seeds.count > 0;
    cs->peer_port = c->cluster.peer_port;
    snprintf(cs->zone, sizeof cs->zone, "%s", c->cluster.zone ? c->cluster.zone : "");
    mn_spaces_table_init(&cs->table);
    pthread_mutex_init(&cs->mu, NULL);
    *out = cs;
    return MN_OK;
}

void cl_spaces_free(cl_spaces *cs)
{
    if (!cs) return;
    mn_spaces_driver_free(cs->driver);
    cl_authority_free(cs->auth);
    mn_spaces_table_free(&cs->table);
    free(cs->nodes);
    pthread_mutex_destroy(&cs->mu);
    free(cs);
}

/* ---- replication (loop thread) ---- */

static int64_t repl_lag(void *arg, const char *space, const char *node)
{
    return cl_repl_lag_ms(arg, space, node);
}

void cl_spaces_set_repl(cl_spaces *cs, cl_repl *repl)
{
    cs->repl = repl;
    cl_authority_free(cs->auth);
    cs->auth = NULL;
    mn_error err = {0};
    if (repl && cl_authority_new(cs->catalog, repl, cs->self, &cs->auth, &err) != MN_OK)
        mn_log_error("cluster: holder records will not be published: %s", err.message);
    mn_spaces_driver_external(cs->driver, repl ? cs->self : NULL);
    cl_spaces_set_lag_source(cs, repl ? repl_lag : NULL, repl);
}

/* The epoch the table knows for space; UINT64_MAX (nothing newer to record) when it does
 * not place it, or places another incarnation of the name: a core still leading a dropped
 * space must not make its epoch the new one's (nor publish a record for it). */
static uint64_t known_epoch(void *arg, const char *space, uint64_t incarnation)
{
    cl_spaces *cs = arg;
    const mn_spaces_entry_t *e = mn_spaces_table_find(mn_spaces_driver_table(cs->driver), space);
    if (!e || (incarnation && e->incarnation && incarnation != e->incarnation)) return UINT64_MAX;
    return e->epoch;
}

static void record_leader(void *arg, const char *space, const char *primary, uint64_t epoch)
{
    cl_spaces *cs = arg;
    mn_error err = {0};
    if (mn_spaces_driver_promoted(cs->driver, space, primary, epoch, &err) != MN_OK)
        mn_log_debug("cluster: %s: primary %s of epoch %llu not recorded yet: %s", space, primary,
                     (unsigned long long)epoch, err.message);
}

/* "HOST:PORT" / "[V6]:PORT" into m's peer address (left empty when malformed). */
static void peer_of(const char *text, cl_repl_member *m)
{
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text) return;
    const char *h = text, *e = colon;
    if (*h == '[' && e[-1] == ']') {
        h++;
        e--;
    }
    int port = atoi(colon + 1);
    if ((size_t)(e - h) >= sizeof m->peer_host || port < 1 || port > 65535) return;
    memcpy(m->peer_host, h, (size_t)(e - h));
    m->peer_host[e - h] = 0;
    m->peer_port = port;
}

/* Every SWIM member (dead ones too: the core must hear of deaths) with its liveness and
 * peer address; *hash identifies the list. */
static size_t repl_members(const mn_swim_t *core, cl_repl_member *m, size_t cap, uint64_t *hash)
{
    size_t k = 0;
    *hash = 0;
    mn_swim_member_info_t mi;
    for (size_t i = 0; i < cap; i++) {
        if (!mn_swim_member_get(core, i, &mi)) continue;
        char peer[MN_SWIM_META_MAX + 1];
        cl_meta_get(mi.meta, "peer", peer, sizeof peer);
        memset(&m[k], 0, sizeof m[k]);
        snprintf(m[k].id, sizeof m[k].id, "%s", mi.id);
        m[k].alive = mi.state == MN_SWIM_ALIVE || mi.state == MN_SWIM_SUSPECT;
        peer_of(peer, &m[k]);
        uint64_t id = mn_spaces_hash(mi.id, strlen(mi.id));
        *hash += mn_spaces_score(id, mn_spaces_hash(peer, strlen(peer)) + m[k].alive);
        k++;
    }
    return k;
}

/* The handovers this node's core should carry out: spaces flagged MN_SPACES_HANDOVER whose
 * table primary is this node, each to its desired primary in view. */
static void repl_handovers(cl_spaces *cs, const mn_spaces_member_t *view, size_t n_view)
{
    const mn_spaces_table_t *t = mn_spaces_driver_table(cs->driver);
    cl_repl_handover *h = NULL;
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++) {
        const mn_spaces_entry_t *e = &t->entries[i];
        if (!(e->flags & MN_SPACES_HANDOVER) || !e->n_holders ||
            strcmp(e->holders[0].node, cs->self) != 0)
            continue;
        size_t want[MN_SPACES_RF_MAX], n_want = 0;
        mn_error err = {0};
        if (mn_spaces_desired(t, view, n_view, &cs->opts, e->name, want, &n_want, &err) != MN_OK ||
            !n_want || strcmp(view[want[0]].id, cs->self) == 0)
            continue;
        cl_repl_handover *g = realloc(h, (n + 1) * sizeof *h);
        if (!g) break;
        h = g;
        snprintf(h[n].space, sizeof h[n].space, "%s", e->name);
        snprintf(h[n].target, sizeof h[n].target, "%s", view[want[0]].id);
        n++;
    }
    cl_repl_handovers(cs->repl, h, n);
    free(h);
}

/* Hands repl what changed since the last call: the table, the members. */
static void repl_feed(cl_spaces *cs, const mn_swim_t *core)
{
    size_t n = mn_swim_member_count(core);
    cl_repl_member *m = calloc(n ? n : 1, sizeof *m);
    if (!m) return;
    uint64_t hash;
    size_t k = repl_members(core, m, n, &hash);
    const mn_spaces_table_t *t = mn_spaces_driver_table(cs->driver);
    bool table_new = t->version != cs->fed_version || !cs->fed_members;
    bool members_new = hash != cs->fed_members;
    if (table_new || members_new)
        cl_repl_update(cs->repl, table_new ? t : NULL, members_new ? m : NULL, k);
    cs->fed_version = t->version;
    cs->fed_members = hash ? hash : 1;
    free(m);
}

/* ---- the step (loop thread) ---- */

static size_t view_of(const mn_swim_t *core, size_t n, cl_node *nodes, mn_spaces_member_t *view)
{
    size_t k = 0;
    mn_swim_member_info_t mi;
    for (size_t i = 0; i < n && k < n; i++) {
        if (!mn_swim_member_get(core, i, &mi)) continue;
        if (mi.state != MN_SWIM_ALIVE && mi.state != MN_SWIM_SUSPECT) continue;
        cl_node *nd = &nodes[k];
        snprintf(nd->id, sizeof nd->id, "%s", mi.id);
        cl_meta_get(mi.meta, "zone", nd->zone, sizeof nd->zone);
        cl_meta_get(mi.meta, "api", nd->api, sizeof nd->api);
        cl_meta_get(mi.meta, "peer", nd->peer, sizeof nd->peer);
        char drain[4];
        cl_meta_get(mi.meta, "drain", drain, sizeof drain);
        nd->draining = !strcmp(drain, "1");
        nd->suspect = mi.state == MN_SWIM_SUSPECT;
        view[k].id = nd->id;
        view[k].zone = nd->zone;
        view[k].draining = nd->draining;
        k++;
    }
    return k;
}

static void publish(cl_spaces *cs, cl_node *nodes, size_t n_nodes, const mn_error *err)
{
    mn_spaces_table_t copy;
    mn_spaces_table_init(&copy);
    const mn_spaces_table_t *t = mn_spaces_driver_table(cs->driver);
    /* the table is copied only when it changed (its version only rises) */
    bool fresh = !cs->published || t->version != cs->published_version;
    bool ok = !err->code && (!fresh || mn_spaces_table_copy(&copy, t) == MN_OK);
    pthread_mutex_lock(&cs->mu);
    if (ok) {
        if (fresh) {
            mn_spaces_table_t old = cs->table;
            cs->table = copy;
            copy = old;
            cs->published_version = t->version;
            cs->published = true;
        }
        cl_node *old_nodes = cs->nodes;
        cs->nodes = nodes;
        cs->n_nodes = n_nodes;
        nodes = old_nodes;
        cs->promotions = mn_spaces_driver_promotions(cs->driver);
        cs->placing = cs->settled;
        cs->error[0] = 0;
    } else {
        snprintf(cs->error, sizeof cs->error, "%s", err->code ? err->message : "out of memory");
    }
    pthread_mutex_unlock(&cs->mu);
    mn_spaces_table_free(&copy);
    free(nodes);
}

/* The members of the view other than this node that announce an API address: the ones
 * the catalog syncs with. */
static void give_members(cl_spaces *cs, const cl_node *nodes, size_t n)
{
    cl_catalog_member *m = calloc(n ? n : 1, sizeof *m);
    if (!m) return;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(nodes[i].id, cs->self) || !nodes[i].api[0]) continue;
        snprintf(m[k].id, sizeof m[k].id, "%s", nodes[i].id);
        snprintf(m[k].api, sizeof m[k].api, "%s", nodes[i].api);
        k++;
    }
    cl_catalog_set_members(cs->catalog, m, k);
    free(m);
}

#define SETTLE_MS 1000      /* the first view unchanged this long before placement starts */
#define SETTLE_MAX_MS 15000 /* ... or this long after the first tick, whatever the view */

/* Placement starts once the first view is complete. A node placing spaces over a view of
 * itself alone (a restart, before SWIM rejoined) would give them holders the cluster never
 * had, and the replication core a voter set of one. Settled: the view unchanged for
 * SETTLE_MS and, with seeds, holding another member; or SETTLE_MAX_MS after the start. */
static bool view_settled(cl_spaces *cs, const mn_spaces_member_t *view, size_t n)
{
    if (cs->settled) return true;
    int64_t now = mn_time_mono_ns() / 1000000;
    if (!cs->start_ms) cs->start_ms = now;
    uint64_t h = n;
    for (size_t i = 0; i < n; i++)
        h += mn_spaces_hash(view[i].id, strlen(view[i].id));
    if (h != cs->view_hash || !cs->view_since_ms) {
        cs->view_hash = h;
        cs->view_since_ms = now;
    }
    bool joined = !cs->has_seeds || n > 1;
    cs->settled =
        (joined && now - cs->view_since_ms >= SETTLE_MS) || now - cs->start_ms >= SETTLE_MAX_MS;
    if (cs->settled) mn_log_info("cluster: placement starts over a view of %zu members", n);
    return cs->settled;
}

/* Updates the driver with the catalog's spaces (names, creators, records), then publishes
 * the records of the spaces this node leads. */
static void step(cl_spaces *cs, const mn_spaces_member_t *view, size_t n_view,
                 const cl_catalog_place *p, size_t n, mn_error *err)
{
    mn_spaces_input_t *in = calloc(n ? n : 1, sizeof *in);
    if (!in) {
        mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        in[i] = (mn_spaces_input_t){p[i].name, p[i].creator, p[i].rec.epoch ? &p[i].rec : NULL,
                                    p[i].created_ms > 0 ? (uint64_t)p[i].created_ms : 0};
    if (mn_spaces_driver_update_spaces(cs->driver, view, n_view, in, n, err) == MN_OK && cs->auth)
        cl_authority_tick(cs->auth, cs->driver, view, n_view);
    free(in);
}

void cl_spaces_tick(cl_spaces *cs, const mn_swim_t *core)
{
    mn_error err = {0};
    size_t n = mn_swim_member_count(core);
    cl_node *nodes = calloc(n ? n : 1, sizeof *nodes);
    mn_spaces_member_t *view = calloc(n ? n : 1, sizeof *view);
    cl_catalog_place *places = NULL;
    size_t n_places = 0;
    if (!nodes || !view) {
        mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    } else if (cl_catalog_placing(cs->catalog, &places, &n_places, &err) == MN_OK) {
        size_t n_view = view_of(core, n, nodes, view);
        give_members(cs, nodes, n_view);
        if (cs->repl) cl_repl_leaders(cs->repl, known_epoch, record_leader, cs);
        if (cs->auth) cl_authority_take_caught_up(cs->auth, cs->driver);
        if (view_settled(cs, view, n_view)) step(cs, view, n_view, places, n_places, &err);
        if (!err.code) n = n_view;
    }
    if (err.code) mn_log_warn("cluster: placement step failed: %s", err.message);
    if (!err.code && cs->repl && cs->settled) {
        repl_feed(cs, core);
        repl_handovers(cs, view, n);
    }
    publish(cs, err.code ? NULL : nodes, n, &err);
    if (err.code) free(nodes);
    free(places);
    free(view);
}

/* ---- GET /v1/cluster/spaces (any thread) ---- */

static void add_flags(cJSON *o, uint8_t flags)
{
    static const struct {
        uint8_t bit;
        const char *name;
    } f[] = {{MN_SPACES_UNDER_REPLICATED, "under_replicated"},
             {MN_SPACES_FAILOVER, "failover"},
             {MN_SPACES_HANDOVER, "handover"},
             {MN_SPACES_UNAVAILABLE, "unavailable"}};
    cJSON *arr = cJSON_AddArrayToObject(o, "flags");
    for (size_t i = 0; arr && i < sizeof f / sizeof f[0]; i++)
        if (flags & f[i].bit) cJSON_AddItemToArray(arr, cJSON_CreateString(f[i].name));
}

/* The core's view of node's copy, when this node leads the space (NULL otherwise). */
static const mn_spaces_repl_peer_status_t *peer_status(const mn_spaces_repl_status_t *st,
                                                       const char *node)
{
    for (size_t i = 0; st && st->role == MN_SPACES_REPL_PRIMARY && i < st->n_peers; i++)
        if (strcmp(st->peers[i].node, node) == 0) return &st->peers[i];
    return NULL;
}

static void add_number_or_null(cJSON *o, const char *name, bool known, double v)
{
    if (known)
        cJSON_AddNumberToObject(o, name, v);
    else
        cJSON_AddNullToObject(o, name);
}

/* applied_lsn: this node's copy from the engine; the others' as this node's core knows them
 * when it leads the space (acknowledged lsn and lag), else null. */
static void add_holder(cl_spaces *cs, cJSON *arr, const mn_spaces_entry_t *e,
                       const mn_spaces_holder_t *h, const mn_spaces_repl_status_t *st)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return;
    cJSON_AddStringToObject(o, "node", h->node);
    cJSON_AddStringToObject(o, "role", mn_spaces_role_name((mn_spaces_role_t)h->role));
    cJSON_AddBoolToObject(o, "down", h->down);
    mn_space_stats_t ss;
    mn_error err = {0};
    bool self = strcmp(h->node, cs->self) == 0;
    const mn_spaces_repl_peer_status_t *ps = self ? NULL : peer_status(st, h->node);
    bool leads = self && st && st->role == MN_SPACES_REPL_PRIMARY;
    if (self && mn_engine_space_get(cs->engine, e->name, &ss, &err) == MN_OK)
        cJSON_AddNumberToObject(o, "applied_lsn", (double)ss.last_lsn);
    else
        add_number_or_null(o, "applied_lsn", ps != NULL, ps ? (double)ps->applied_lsn : 0);
    add_number_or_null(o, "lag_entries", ps || leads, ps ? (double)ps->lag_entries : 0);
    /* this node's own copy when it follows: the lag it knows of itself */
    int64_t own = self && !leads && cs->lag_fn ? cs->lag_fn(cs->lag_arg, e->name, h->node) : -1;
    int64_t lag = ps ? ps->lag_ms : leads ? 0 : own;
    add_number_or_null(o, "lag_ms", lag >= 0, (double)lag);
    /* over 1 s behind: a warning; over 10 s: out of read rotation (docs/replication.md) */
    if (lag > CL_LAG_WARN_MS) cJSON_AddBoolToObject(o, "lagging", true);
    cJSON_AddItemToArray(arr, o);
}

static cJSON *space_json(cl_spaces *cs, const mn_spaces_entry_t *e)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "name", e->name);
    cJSON_AddNumberToObject(o, "epoch", (double)e->epoch);
    add_number_or_null(o, "incarnation", e->incarnation != 0, (double)e->incarnation);
    if (e->n_holders && e->holders[0].role == MN_SPACES_PRIMARY)
        cJSON_AddStringToObject(o, "primary", e->holders[0].node);
    else
        cJSON_AddNullToObject(o, "primary");
    cJSON *reps = cJSON_AddArrayToObject(o, "replicas");
    cJSON *hs = cJSON_AddArrayToObject(o, "holders");
    mn_spaces_repl_status_t st;
    bool have = cs->repl && cl_repl_status(cs->repl, e->name, &st);
    /* a core state of another incarnation of the name (not forgotten yet) says nothing here */
    have = have && !(st.incarnation && e->incarnation && st.incarnation != e->incarnation);
    for (int i = 0; i < e->n_holders; i++) {
        const mn_spaces_holder_t *h = &e->holders[i];
        if (reps && h->role == MN_SPACES_REPLICA)
            cJSON_AddItemToArray(reps, cJSON_CreateString(h->node));
        if (hs) add_holder(cs, hs, e, h, have ? &st : NULL);
    }
    add_flags(o, e->flags);
    cJSON_AddNumberToObject(o, "changed", (double)e->changed);
    if (have) cl_spaces_add_copy(o, &st, mn_time_mono_ns() / 1000);
    return o;
}

static void add_nodes(cJSON *root, const cl_node *nodes, size_t n)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "members");
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o) return;
        cJSON_AddStringToObject(o, "id", nodes[i].id);
        if (nodes[i].zone[0])
            cJSON_AddStringToObject(o, "zone", nodes[i].zone);
        else
            cJSON_AddNullToObject(o, "zone");
        if (nodes[i].api[0])
            cJSON_AddStringToObject(o, "api", nodes[i].api);
        else
            cJSON_AddNullToObject(o, "api");
        if (nodes[i].peer[0])
            cJSON_AddStringToObject(o, "peer", nodes[i].peer);
        else
            cJSON_AddNullToObject(o, "peer");
        cJSON_AddBoolToObject(o, "draining", nodes[i].draining);
        cJSON_AddBoolToObject(o, "suspect", nodes[i].suspect);
        cJSON_AddItemToArray(arr, o);
    }
}

static void add_config(cl_spaces *cs, cJSON *root)
{
    cJSON_AddStringToObject(root, "self", cs->self);
    cJSON_AddNumberToObject(root, "replication_factor", cs->opts.replication_factor);
    cJSON_AddStringToObject(root, "write_consistency", cs->consistency);
    cJSON_AddBoolToObject(root, "write_consistency_enforced", cs->repl != NULL);
    cJSON_AddNumberToObject(root, "peer_port",
                            (double)(cs->repl ? cl_repl_port(cs->repl) : cs->peer_port));
    if (cs->zone[0])
        cJSON_AddStringToObject(root, "zone", cs->zone);
    else
        cJSON_AddNullToObject(root, "zone");
    cJSON_AddStringToObject(root, "spaces_known", "catalog");
}

/* Splits "a,b,c" into the table t as new entries (names placed already are
 * skipped); want[] gets every name. 0 or an HTTP status with err set. */
static int parse_names(char *list, mn_spaces_table_t *t, const char **want, size_t *n_want,
                       mn_error *err)
{
    *n_want = 0;
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name;
         name = strtok_r(NULL, ",", &save)) {
        if (!mn_space_name_valid(name)) {
            mn_error_set(err, MN_ERR_INVALID, "names: \"%.64s\" is not a valid space name", name);
            return 422;
        }
        if (*n_want == PREVIEW_MAX) {
            mn_error_set(err, MN_ERR_INVALID, "names: at most %d names", PREVIEW_MAX);
            return 422;
        }
        want[(*n_want)++] = name;
        if (!mn_spaces_table_find(t, name) && mn_spaces_table_add(t, name, err) != MN_OK)
            return err->code == MN_ERR_NOMEM ? 503 : 422;
    }
    if (*n_want == 0) {
        mn_error_set(err, MN_ERR_INVALID, "names: give one or more space names, comma-separated");
        return 422;
    }
    return 0;
}

/* ?names=a,b: the table as it would be with these names added, stepped once over the
 * current view; only those names are listed. */
static int preview(cl_spaces *cs, const mn_spaces_table_t *t, char *list, mn_spaces_table_t *out,
                   const char **want, size_t *n_want, mn_error *err)
{
    mn_spaces_table_t tmp;
    mn_spaces_table_init(&tmp);
    int status = mn_spaces_table_copy(&tmp, t) == MN_OK ? 0 : 503;
    if (!status) status = parse_names(list, &tmp, want, n_want, err);
    mn_spaces_member_t *view = calloc(cs->n_nodes ? cs->n_nodes : 1, sizeof *view);
    if (!status && !view) status = 503;
    for (size_t i = 0; !status && i < cs->n_nodes; i++) {
        view[i].id = cs->nodes[i].id;
        view[i].zone = cs->nodes[i].zone;
        view[i].draining = cs->nodes[i].draining;
    }
    if (!status && mn_spaces_step(&tmp, view, cs->n_nodes, &cs->opts, out, err) != MN_OK)
        status = 503;
    if (status == 503 && !err->code) mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    free(view);
    mn_spaces_table_free(&tmp);
    return status;
}

typedef struct cl_view {
    mn_spaces_table_t table;
    cl_node *nodes;
    size_t n_nodes;
    uint64_t promotions;
    char error[sizeof(((mn_error *)0)->message)];
} cl_view;

/* A consistent copy of the snapshot (or of a preview of it). 0 or an HTTP status. */
static int take_view(cl_spaces *cs, char *names, cl_view *v, const char **want, size_t *n_want,
                     mn_error *err)
{
    mn_spaces_table_init(&v->table);
    pthread_mutex_lock(&cs->mu);
    int status = 0;
    if (names)
        status = preview(cs, &cs->table, names, &v->table, want, n_want, err);
    else if (mn_spaces_table_copy(&v->table, &cs->table) != MN_OK)
        status = 503;
    v->n_nodes = cs->n_nodes;
    v->nodes = malloc((v->n_nodes ? v->n_nodes : 1) * sizeof *v->nodes);
    if (v->nodes) memcpy(v->nodes, cs->nodes, v->n_nodes * sizeof *v->nodes);
    if (!v->nodes && !status) status = 503;
    v->promotions = cs->promotions;
    memcpy(v->error, cs->error, sizeof v->error);
    pthread_mutex_unlock(&cs->mu);
    if (status == 503 && !err->code) mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    return status;
}

static bool wanted(const char *name, const char *const *want, size_t n_want)
{
    for (size_t i = 0; i < n_want; i++)
        if (strcmp(want[i], name) == 0) return true;
    return false;
}

static cJSON *render(cl_spaces *cs, const cl_view *v, const char *const *want, size_t n_want,
                     bool is_preview)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    add_config(cs, root);
    cJSON_AddBoolToObject(root, "preview", is_preview);
    cJSON_AddNumberToObject(root, "table_version", (double)v->table.version);
    cJSON_AddNumberToObject(root, "promotions", (double)v->promotions);
    if (v->error[0])
        cJSON_AddStringToObject(root, "step_error", v->error);
    else
        cJSON_AddNullToObject(root, "step_error");
    add_nodes(root, v->nodes, v->n_nodes);
    cJSON *arr = cJSON_AddArrayToObject(root, "spaces");
    size_t under = 0, failover = 0, unavailable = 0;
    for (size_t i = 0; arr && i < v->table.n; i++) {
        const mn_spaces_entry_t *e = &v->table.entries[i];
        if (is_preview && !wanted(e->name, want, n_want)) continue;
        cJSON_AddItemToArray(arr, space_json(cs, e));
        under += (e->flags & MN_SPACES_UNDER_REPLICATED) != 0;
        failover += (e->flags & MN_SPACES_FAILOVER) != 0;
        unavailable += (e->flags & MN_SPACES_UNAVAILABLE) != 0;
    }
    cJSON_AddNumberToObject(root, "under_replicated", (double)under);
    cJSON_AddNumberToObject(root, "failovers_pending", (double)failover);
    cJSON_AddNumberToObject(root, "unavailable", (double)unavailable);
    return root;
}

/* Is parameter name in the raw query (whatever its value)? */
static bool query_has(const char *query, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL)
        if (strncmp(p, name, n) == 0 && (p[n] == '=' || p[n] == '&' || p[n] == 0)) return true;
    return false;
}

char *cl_spaces_render(cl_spaces *cs, char *names, int *status, mn_error *err)
{
    const char *want[PREVIEW_MAX];
    size_t n_want = 0;
    cl_view v;
    *status = take_view(cs, names, &v, want, &n_want, err);
    cJSON *root = *status ? NULL : render(cs, &v, want, n_want, names != NULL);
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    mn_spaces_table_free(&v.table);
    free(v.nodes);
    char *out = text ? strdup(text) : NULL; /* malloc'd, whatever cJSON's allocator is */
    cJSON_free(text);
    if (!out && !*status) *status = 503;
    if (*status == 503 && !err->code) mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    return out;
}

void cl_spaces_handle(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    cl_spaces *cs = ctx;
    static _Thread_local char names[PREVIEW_MAX * (MN_SPACE_NAME_MAX + 1) + 1];
    bool is_preview = mn_http_query_get(req, "names", names, sizeof names);
    if (!is_preview && query_has(req->query, "names")) {
        mn_http_respond_error(resp, 422, "invalid_argument",
                              "names: too long or badly encoded (at most 100 comma-separated "
                              "space names)",
                              NULL);
        return;
    }
    mn_error err = {0};
    int status = 0;
    char *body = cl_spaces_render(cs, is_preview ? names : NULL, &status, &err);
    if (status == 422)
        mn_http_respond_error(resp, 422, "invalid_argument", err.message, NULL);
    else if (!body)
        mn_http_respond_error(resp, 503, "unavailable", err.message, NULL);
    else
        mn_http_respond(resp, 200, NULL, body, strlen(body));
    free(body);
}

/* ---- lookups for routing (any thread) ---- */

void cl_spaces_set_lag_source(cl_spaces *cs, cl_lag_fn fn, void *arg)
{
    pthread_mutex_lock(&cs->mu);
    cs->lag_fn = fn;
    cs->lag_arg = arg;
    pthread_mutex_unlock(&cs->mu);
}

const char *cl_spaces_self(const cl_spaces *cs)
{
    return cs->self;
}

/* Entry e as out, each holder with its API address from the view (under mu). */
static void placement_of(const cl_spaces *cs, const mn_spaces_entry_t *e, cl_placement *out)
{
    mn_assert(e->n_holders <= MN_SPACES_HOLDERS_MAX);
    out->epoch = e->epoch;
    out->n_holders = e->n_holders;
    for (int i = 0; i < e->n_holders; i++) {
        const mn_spaces_holder_t *h = &e->holders[i];
        cl_holder *o = &out->holders[i];
        snprintf(o->node, sizeof o->node, "%s", h->node);
        o->role = (mn_spaces_role_t)h->role;
        o->lag_ms = -1;
        for (size_t k = 0; k < cs->n_nodes; k++)
            if (!strcmp(cs->nodes[k].id, h->node)) {
                o->alive = !h->down;
                o->suspect = cs->nodes[k].suspect;
                snprintf(o->api, sizeof o->api, "%s", cs->nodes[k].api);
            }
    }
}

bool cl_spaces_lookup(cl_spaces *cs, const char *space, bool want_preview, cl_placement *out)
{
    memset(out, 0, sizeof *out);
    mn_spaces_table_t tmp;
    mn_spaces_table_init(&tmp);
    pthread_mutex_lock(&cs->mu);
    const mn_spaces_entry_t *e = mn_spaces_table_find(&cs->table, space);
    if (!e && want_preview && mn_space_name_valid(space)) {
        char list[MN_SPACE_NAME_MAX + 1];
        const char *want[1];
        size_t n_want = 0;
        mn_error err = {0};
        snprintf(list, sizeof list, "%s", space);
        if (preview(cs, &cs->table, list, &tmp, want, &n_want, &err) == 0)
            e = mn_spaces_table_find(&tmp, space);
        out->preview = e != NULL;
    }
    if (e) placement_of(cs, e, out);
    cl_lag_fn fn = cs->lag_fn;
    void *arg = cs->lag_arg;
    pthread_mutex_unlock(&cs->mu);
    mn_spaces_table_free(&tmp);
    for (int i = 0; fn && i < out->n_holders; i++)
        out->holders[i].lag_ms = fn(arg, space, out->holders[i].node);
    return e != NULL;
}

mn_err cl_spaces_leads_now(cl_spaces *cs, const char *space, mn_error *err)
{
    return mn_engine_space_writable(cs->engine, space, err);
}

int64_t cl_spaces_lapsed_ms(cl_spaces *cs, const char *space)
{
    return mn_engine_space_lapsed_ms(cs->engine, space);
}

bool cl_spaces_not_placed_yet(cl_spaces *cs, const char *space)
{
    pthread_mutex_lock(&cs->mu);
    bool placing = cs->placing;
    pthread_mutex_unlock(&cs->mu);
    uint64_t lsn = 0, epoch = 0;
    if (placing || mn_engine_space_position(cs->engine, space, &lsn, &epoch, NULL) == MN_OK)
        return false;
    const char **names = NULL;
    size_t n = 0;
    bool known = false;
    if (cl_catalog_names(cs->catalog, &names, &n, NULL) == MN_OK)
        for (size_t i = 0; i < n && !known; i++)
            known = strcmp(names[i], space) == 0;
    free(names);
    return known;
}

bool cl_spaces_node_api(cl_spaces *cs, const char *node, char *out, size_t cap)
{
    bool found = false;
    pthread_mutex_lock(&cs->mu);
    for (size_t k = 0; k < cs->n_nodes && !found; k++)
        if (!strcmp(cs->nodes[k].id, node) && cs->nodes[k].api[0]) {
            snprintf(out, cap, "%s", cs->nodes[k].api);
            found = true;
        }
    pthread_mutex_unlock(&cs->mu);
    return found;
}
