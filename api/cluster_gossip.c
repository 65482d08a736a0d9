/* Gossip in the server (docs/gossip.md, "In the server"): the core on the peer bus's
 * channel MN_PEER_CH_GOSSIP. The replication thread runs its frames, its ticks and the
 * membership (cl_repl_attach); its peers are the alive members (gossip.scope = "cluster") or
 * the nodes that share a space with this one ("holders", from the placement table); the
 * feeder thread (cluster_gossip_feed.c) hands it the changes of the spaces this node leads;
 * every record it merges goes to the store (cluster_gossip_store.c).
 *
 * Frames are also read here for what the core keeps to itself: the roots peers report (a
 * NODES frame holding a root), which give GET /v1/cluster/gossip its per-space
 * last_sync_ms (when a peer last reported the same root) and peers_differing. */
#include "cluster_gossip_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_internal.h"
#include "mnemo/assert.h"
#include "mnemo/peer.h"
#include "mnemo/wire_gossip.h"

#define CG_TICK_MS 50
#define CG_GC_EVERY_MS 60000
#define CG_HOLDERS_EVERY_MS 1000
#define CG_OBSERVE_NODES 1024
#define CG_SWEEP_EVERY_MS 1000
/* ---- the core's callbacks (under mu, on the replication thread) ---- */

static void core_send(void *user, const char *to, const uint8_t *frame, size_t len)
{
    cl_gossip *g = user;
    /* a refusal (no address yet, queue full) is the bus's to count; the next round retries */
    (void)cl_repl_send(g->repl, to, MN_PEER_CH_GOSSIP, frame, len);
}

static void core_changed(void *user, const char *space, const mn_gossip_record_t *rec)
{
    cg_store_apply(user, space, rec);
}

static int held_cmp(const void *a, const void *b)
{
    return strcmp(((const cg_held *)a)->name, ((const cg_held *)b)->name);
}

/* scope "holders" (the per-space peer sets): is space exchanged with peer? Both hold it,
 * by the placement table as last read (holders_refresh). */
static bool core_shares(void *user, const char *peer, const char *space)
{
    const cl_gossip *g = user;
    cg_held key;
    snprintf(key.name, sizeof key.name, "%s", space);
    const cg_held *h = g->n_held ? bsearch(&key, g->held, g->n_held, sizeof *h, held_cmp) : NULL;
    for (int i = 0; h && i < h->n; i++)
        if (!strcmp(h->node[i], peer)) return true;
    return false;
}

/* scope "holders": a space the placement table places elsewhere leaves this node's copy
 * (records of a space the table does not know yet stay: a node just started, or a space
 * just created). */
static bool placed_elsewhere(cl_gossip *g, const char *space)
{
    cl_placement pl;
    if (!g->holders || !cl_spaces_lookup(g->cs, space, false, &pl)) return false;
    for (int h = 0; h < pl.n_holders; h++)
        if (!strcmp(pl.holders[h].node, g->self)) return false;
    return true;
}

/* ---- dropped spaces (docs/gossip.md, "Dropped spaces") ---- */

static bool core_admit(void *user, const char *space, const mn_id_t *id)
{
    return mn_id_time_ms(id) >= cl_catalog_stale_before(((cl_gossip *)user)->catalog, space);
}

/* Takes out of the core and the store what the catalog no longer admits (under mu). */
static void sweep(cl_gossip *g)
{
    for (size_t i = 0; i < g->n_sp; i++) {
        cg_space *s = &g->sp[i];
        if (!s->n) continue;
        int64_t before = cl_catalog_stale_before(g->catalog, s->name);
        bool elsewhere = before != INT64_MAX && placed_elsewhere(g, s->name);
        if (elsewhere) before = INT64_MAX;
        if (mn_id_time_ms(&s->e[0].id) >= before) continue; /* e[0] is the oldest */
        size_t n = mn_gossip_drop(g->g, s->name, before);
        cg_store_drop(s, before);
        g->save_full = true; /* the file still holds them: rewritten without */
        mn_log_info("gossip: space %s: %zu gossiped record(s) dropped (%s)", s->name, n,
                    elsewhere             ? "scope holders: this node no longer holds it"
                    : before == INT64_MAX ? "the space was dropped"
                                          : "older than the space");
    }
}

/* ---- the peers' roots ---- */

static cg_peer *peer_of(cl_gossip *g, const char *id, size_t len)
{
    for (size_t i = 0; i < g->n_peers; i++)
        if (strlen(g->peers[i].id) == len && !memcmp(g->peers[i].id, id, len)) return &g->peers[i];
    return NULL;
}

static void peer_space_root(cg_peer *p, const char *space, size_t len, const uint8_t *root)
{
    size_t i = 0;
    while (i < p->n_sp && (strlen(p->sp[i].space) != len || memcmp(p->sp[i].space, space, len)))
        i++;
    if (i == p->n_sp) {
        if (p->n_sp < CG_PEER_SPACES)
            p->n_sp++;
        else
            i = p->next_sp++ % CG_PEER_SPACES;
        memcpy(p->sp[i].space, space, len);
        p->sp[i].space[len] = 0;
    }
    memcpy(p->sp[i].root, root, MN_GOSSIP_DIGEST_LEN);
}

/* Notes the roots a NODES frame reports (before the core answers it). */
static void observe(cl_gossip *g, const uint8_t *buf, size_t len)
{
    if (len > g->scratch_cap) {
        free(g->scratch);
        size_t cap = (len + 7) & ~(size_t)7;
        g->scratch_cap = (g->scratch = aligned_alloc(8, cap)) ? cap : 0;
        if (!g->scratch) return;
    }
    memcpy(g->scratch, buf, len);
    mn_wire_gossip_node_t nodes[CG_OBSERVE_NODES];
    mn_wire_gossip_storage_t st = {.nodes = nodes, .nodes_cap = CG_OBSERVE_NODES};
    mn_wire_gossip_frame_t f;
    if (mn_wire_gossip_decode(g->scratch, len, &f, &st) != MN_OK ||
        f.kind != MN_WIRE_GOSSIP_NODES || f.space_len > MN_SPACE_NAME_MAX)
        return;
    cg_peer *p = peer_of(g, f.from, f.from_len);
    for (size_t i = 0; p && i < f.n_nodes; i++) {
        if (f.nodes[i].level != 0) continue;
        char space[MN_SPACE_NAME_MAX + 1];
        if (f.space_len) memcpy(space, f.space, f.space_len);
        space[f.space_len] = 0;
        uint8_t ours[MN_GOSSIP_DIGEST_LEN];
        uint64_t count;
        mn_gossip_root(g->g, space, ours, &count);
        bool same = !memcmp(ours, f.nodes[i].digest, sizeof ours) && count == f.nodes[i].count;
        if (!f.space_len) {
            p->dir_known = true;
            memcpy(p->dir, f.nodes[i].digest, sizeof p->dir);
            if (same) g->dir_sync_ms = mn_time_now_ms();
        } else {
            peer_space_root(p, f.space, f.space_len, f.nodes[i].digest);
            cg_space *s = same ? cg_space_of(g, space, false) : NULL;
            if (s) s->sync_ms = mn_time_now_ms();
        }
    }
}

/* Peers whose last report about space (or their whole directory) differs from ours. */
static uint64_t differing(const cl_gossip *g, const char *space, const uint8_t *root)
{
    uint8_t dir[MN_GOSSIP_DIGEST_LEN];
    uint64_t n = 0, count;
    mn_gossip_root(g->g, NULL, dir, &count);
    for (size_t i = 0; i < g->n_peers; i++) {
        const cg_peer *p = &g->peers[i];
        if (!p->dir_known || !memcmp(p->dir, dir, sizeof dir)) continue;
        bool same = false;
        for (size_t j = 0; j < p->n_sp && !same; j++)
            same = !strcmp(p->sp[j].space, space) && !memcmp(p->sp[j].root, root, sizeof dir);
        n += !same;
    }
    return n;
}

/* Replaces the peer set (ids: n names, self skipped), keeping what is known of those kept. */
static void set_peers(cl_gossip *g, const char *const *ids, size_t n)
{
    cg_peer *old = malloc(g->n_peers * sizeof *old + 1);
    if (!old) return;
    size_t n_old = g->n_peers;
    memcpy(old, g->peers, n_old * sizeof *old);
    g->n_peers = 0;
    const char *keep[CG_PEERS_MAX];
    size_t k = 0;
    for (size_t i = 0; i < n && k < CG_PEERS_MAX; i++) {
        if (!strcmp(ids[i], g->self) || strlen(ids[i]) > MN_SPACES_NODE_MAX) continue;
        cg_peer *p = &g->peers[k];
        memset(p, 0, sizeof *p);
        for (size_t j = 0; j < n_old; j++)
            if (!strcmp(old[j].id, ids[i])) *p = old[j];
        snprintf(p->id, sizeof p->id, "%s", ids[i]);
        keep[k++] = ids[i];
    }
    g->n_peers = k;
    free(old);
    mn_error err = {0};
    if (mn_gossip_set_peers(g->g, keep, k, &err) != MN_OK)
        mn_log_warn("gossip: cannot set the peers: %s", err.message);
}

/* ---- the bus's callbacks (replication thread) ---- */

static void on_frame(void *arg, const char *from, const uint8_t *buf, size_t len)
{
    (void)from; /* the frame names its sender; the bus authenticated the connection */
    cl_gossip *g = arg;
    pthread_mutex_lock(&g->mu);
    observe(g, buf, len);
    mn_gossip_on_message(g->g, mn_time_mono_ns() / 1000, buf, len);
    pthread_mutex_unlock(&g->mu);
}

static void on_members(void *arg, const cl_repl_member *m, size_t n)
{
    cl_gossip *g = arg;
    if (g->holders) return; /* the tick derives them from the placement table */
    const char **ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (m[i].alive) ids[k++] = m[i].id;
    pthread_mutex_lock(&g->mu);
    set_peers(g, ids, k);
    pthread_mutex_unlock(&g->mu);
    free(ids);
}

/* scope "holders": the spaces this node holds with their holders (the per-space peer sets,
 * core_shares), and the peer set: the live nodes holding one of them (under mu). */
static void holders_refresh(cl_gossip *g)
{
    mn_space_def_t *defs = NULL;
    size_t nd = 0;
    mn_error err = {0};
    if (mn_engine_space_list(g->engine, &defs, &nd, &err) != MN_OK) return;
    char(*ids)[MN_SPACES_NODE_MAX + 1] = malloc(CG_PEERS_MAX * sizeof *ids);
    const char **ptr = malloc(CG_PEERS_MAX * sizeof *ptr);
    cg_held *held = malloc((nd ? nd : 1) * sizeof *held);
    size_t k = 0, n_held = 0;
    for (size_t i = 0; ids && ptr && held && i < nd; i++) {
        cl_placement pl;
        if (!cl_spaces_lookup(g->cs, defs[i].name, false, &pl)) continue;
        cg_held *x = &held[n_held];
        snprintf(x->name, sizeof x->name, "%s", defs[i].name);
        x->n = 0;
        bool mine = false;
        for (int h = 0; h < pl.n_holders; h++) {
            snprintf(x->node[x->n++], sizeof x->node[0], "%s", pl.holders[h].node);
            mine = mine || !strcmp(pl.holders[h].node, g->self);
        }
        if (!mine) continue; /* not held here: neither its holders nor its records */
        n_held++;
        for (int h = 0; h < pl.n_holders && k < CG_PEERS_MAX; h++) {
            bool dup = false;
            for (size_t j = 0; j < k && !dup; j++)
                dup = !strcmp(ids[j], pl.holders[h].node);
            if (dup || !pl.holders[h].alive) continue;
            snprintf(ids[k], sizeof ids[k], "%s", pl.holders[h].node);
            ptr[k] = ids[k];
            k++;
        }
    }
    if (ids && ptr && held) {
        qsort(held, n_held, sizeof *held, held_cmp);
        free(g->held);
        g->held = held;
        g->n_held = n_held;
        held = NULL;
        set_peers(g, ptr, k);
    }
    free(held);
    free(ids);
    free(ptr);
    free(defs);
}

static void metrics_export(cl_gossip *g)
{
    mn_gossip_stats_t st;
    mn_gossip_stats(g->g, &st);
    const mn_gossip_stats_t *e = &g->exported;
    const char *sent[] = {"sent"}, *recv[] = {"received"}, *pushed[] = {"pushed"},
               *pulled[] = {"pulled"};
    if (g->m_rounds) mn_metrics_add(g->m_rounds, NULL, st.rounds - e->rounds);
    if (g->m_bytes) {
        mn_metrics_add(g->m_bytes, sent, st.bytes_sent - e->bytes_sent);
        mn_metrics_add(g->m_bytes, recv, st.bytes_received - e->bytes_received);
    }
    if (g->m_entries) {
        mn_metrics_add(g->m_entries, pushed, st.entries_pushed - e->entries_pushed);
        mn_metrics_add(g->m_entries, pulled, st.entries_pulled - e->entries_pulled);
    }
    g->exported = st;
    /* the document's figures as gauges: O(spaces + peers), once per tick under mu */
    uint64_t live = 0, differ = 0;
    for (size_t i = 0; i < g->n_sp; i++)
        live += g->sp[i].live;
    uint8_t dir[MN_GOSSIP_DIGEST_LEN];
    uint64_t count;
    mn_gossip_root(g->g, NULL, dir, &count);
    for (size_t i = 0; i < g->n_peers; i++)
        differ += g->peers[i].dir_known && memcmp(g->peers[i].dir, dir, sizeof dir) != 0;
    int64_t now = mn_time_now_ms();
    mn_metrics_set(g->m_semantic, NULL, live);
    mn_metrics_set(g->m_differing, NULL, differ);
    mn_metrics_set(g->m_sync_age, NULL,
                   g->dir_sync_ms && now > g->dir_sync_ms ? (uint64_t)(now - g->dir_sync_ms) : 0);
}

static void on_tick(void *arg, int64_t now_us)
{
    cl_gossip *g = arg;
    int64_t wall = mn_time_now_ms();
    pthread_mutex_lock(&g->mu);
    if (g->holders && wall - g->last_holders_ms >= CG_HOLDERS_EVERY_MS) {
        g->last_holders_ms = wall;
        holders_refresh(g);
    }
    if (now_us >= mn_gossip_next_deadline(g->g)) mn_gossip_on_tick(g->g, now_us);
    char bad[MN_GOSSIP_SPACE_MAX + 1]; /* one space a tick checked against its records */
    if (!mn_gossip_check_next(g->g, bad))
        mn_log_error("gossip: %s%s: its Merkle tree did not match its records (memory "
                     "corruption, or a bug); rebuilt from them",
                     bad[0] ? "space " : "the directory of spaces", bad);
    if (wall - g->last_sweep_ms >= CG_SWEEP_EVERY_MS) {
        g->last_sweep_ms = wall;
        sweep(g);
    }
    if (wall - g->last_gc_ms >= CG_GC_EVERY_MS) {
        g->last_gc_ms = wall;
        mn_gossip_stats_t before, after;
        mn_gossip_stats(g->g, &before);
        mn_gossip_gc(g->g, wall);
        mn_gossip_stats(g->g, &after);
        if (after.tombstones_collected != before.tombstones_collected)
            g->save_full = true; /* the file still holds them: rewritten without */
    }
    metrics_export(g);
    pthread_mutex_unlock(&g->mu);
}

/* ---- lifecycle ---- */

static const char *const dir_label[] = {"direction"};

static void metrics_init(cl_gossip *g)
{
    mn_metrics_t *m = mn_metrics_process();
    g->m_rounds = mn_metrics_counter(m, "mnemo_gossip_rounds_total",
                                     "Gossip rounds this node started (docs/gossip.md).", NULL, 0);
    g->m_bytes =
        mn_metrics_counter(m, "mnemo_gossip_bytes_total",
                           "Bytes of gossip frames this node sent and received.", dir_label, 1);
    g->m_entries = mn_metrics_counter(
        m, "mnemo_gossip_entries_total",
        "Gossiped records (semantic memories and tombstones) this node pushed to peers and "
        "pulled from them.",
        dir_label, 1);
    g->m_semantic = mn_metrics_gauge(
        m, "mnemo_gossip_semantic_memories",
        "Live gossiped semantic memories this node keeps, over every space (the sum of "
        "GET /v1/cluster/gossip's semantic_memories).",
        NULL, 0, 1.0);
    g->m_differing = mn_metrics_gauge(
        m, "mnemo_gossip_peers_differing",
        "Peers whose last reported directory root differs from this node's (0 once converged).",
        NULL, 0, 1.0);
    g->m_sync_age = mn_metrics_gauge(
        m, "mnemo_gossip_last_sync_age_seconds",
        "Time since a peer last reported this node's directory root (0: never yet). Growing "
        "while peers_differing stays above 0: gossip is not converging.",
        NULL, 0, 0.001);
    g->m_partition = mn_metrics_counter(
        m, "mnemo_recall_partition_total",
        "Recalls answered in partition mode from this node's gossiped semantic memories (a "
        "single-space recall, or a stand-in for a space of a recall over many).",
        NULL, 0);
}

mn_err cl_gossip_start(const mn_config_t *c, mn_engine_t *engine, cl_repl *r, cl_spaces *cs,
                       cl_catalog *cat, const char *self, cl_gossip **out, mn_error *err)
{
    *out = NULL;
    mn_gossip_config_t cfg;
    mn_gossip_config_default(&cfg);
    cfg.interval_ms = c->gossip.interval_ms;
    cfg.fanout = (int)c->gossip.fanout;
    mn_err rc = mn_gossip_config_check(&cfg, err);
    if (rc != MN_OK) return rc;
    cl_gossip *g = calloc(1, sizeof *g);
    if (!g) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    g->save_fd = -1;
    g->engine = engine;
    g->repl = r;
    g->cs = cs;
    g->catalog = cat;
    g->holders = c->gossip.scope && !strcmp(c->gossip.scope, "holders");
    snprintf(g->self, sizeof g->self, "%s", self);
    pthread_mutex_init(&g->mu, NULL);
    mn_gossip_cb_t cb = {.user = g,
                         .send = core_send,
                         .changed = core_changed,
                         .admit = core_admit,
                         .shares = g->holders ? core_shares : NULL};
    rc = mn_gossip_new(self, &cfg, &cb, mn_random_seed(), mn_time_mono_ns() / 1000, &g->g, err);
    if (rc == MN_OK) {
        metrics_init(g);
        g->last_gc_ms = mn_time_now_ms();
        snprintf(g->save_path, sizeof g->save_path, "%s/gossip.store", c->storage.data_dir);
        cg_save_load(g);
        rc = cg_feed_start(g, err);
    }
    cl_repl_channel ch = {.channel = MN_PEER_CH_GOSSIP,
                          .arg = g,
                          .on_frame = on_frame,
                          .on_tick = on_tick,
                          .tick_ms = CG_TICK_MS,
                          .on_members = on_members};
    if (rc == MN_OK) rc = cl_repl_attach(r, &ch, err);
    if (rc != MN_OK) {
        cl_gossip_free(g);
        return rc;
    }
    *out = g;
    return MN_OK;
}

void cl_gossip_free(cl_gossip *g)
{
    if (!g) return;
    bool fed = g->feeding;
    cg_feed_stop(g);
    if (fed) cg_save_maybe(g, true); /* what changed since the last save */
    if (g->save_fd >= 0) close(g->save_fd);
    mn_gossip_free(g->g);
    cg_store_free(g);
    free(g->held);
    free(g->scratch);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

/* ---- GET /v1/cluster/gossip ---- */

static void space_json(cl_gossip *g, api_jw *w, const cg_space *s)
{
    uint8_t root[MN_GOSSIP_DIGEST_LEN];
    uint64_t count;
    mn_gossip_root(g->g, s->name, root, &count);
    char hex[2 * MN_GOSSIP_DIGEST_LEN + 1];
    for (size_t i = 0; i < sizeof root; i++)
        snprintf(hex + 2 * i, 3, "%02x", root[i]);
    int64_t sync = s->sync_ms > g->dir_sync_ms ? s->sync_ms : g->dir_sync_ms;
    jw_obj(w);
    jw_key(w, "name");
    jw_str(w, s->name);
    jw_key(w, "root");
    jw_str(w, hex);
    jw_key(w, "records");
    jw_uint(w, count);
    jw_key(w, "semantic_memories");
    jw_uint(w, s->live);
    jw_key(w, "last_sync_ms");
    if (sync)
        jw_int(w, sync);
    else
        jw_null(w);
    jw_key(w, "peers_differing");
    jw_uint(w, differing(g, s->name, root));
    jw_obj_end(w);
}

static void stats_json(cl_gossip *g, api_jw *w, const mn_gossip_stats_t *st, size_t peers)
{
    const struct {
        const char *name;
        uint64_t v;
    } f[] = {
        {"rounds", st->rounds},
        {"bytes_sent", st->bytes_sent},
        {"bytes_received", st->bytes_received},
        {"frames_sent", st->frames_sent},
        {"frames_received", st->frames_received},
        {"frames_rejected", st->frames_rejected},
        {"entries_pulled", st->entries_pulled},
        {"entries_pushed", st->entries_pushed},
        {"entries_changed", st->entries_changed},
        {"tombstones_collected", st->tombstones_collected},
        {"entries_refused", st->entries_refused},
        {"entries_dropped", st->entries_dropped},
        {"trees_checked", st->trees_checked},
        {"trees_repaired", st->trees_repaired},
        {"peers", peers},
        {"store_saved", atomic_load(&g->saved)},
        {"store_loaded", g->loaded},
        {"store_corrupt", g->corrupt},
        {"store_torn", g->torn},
        {"store_bytes", atomic_load(&g->saved_bytes)},
        {"store_records_written", atomic_load(&g->saved_records)},
        {"store_appends", atomic_load(&g->appends)},
        {"store_rewrites", atomic_load(&g->rewrites)},
    };
    jw_obj(w);
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        jw_key(w, f[i].name);
        jw_uint(w, f[i].v);
    }
    jw_obj_end(w);
}

char *cl_gossip_render(void *arg, int *status, mn_error *err)
{
    cl_gossip *g = arg;
    api_jw w;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "scope");
    jw_str(&w, g->holders ? "holders" : "cluster");
    jw_key(&w, "spaces");
    jw_arr(&w);
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < g->n_sp; i++)
        if (g->sp[i].n) space_json(g, &w, &g->sp[i]);
    jw_arr_end(&w);
    mn_gossip_stats_t st;
    mn_gossip_stats(g->g, &st);
    jw_key(&w, "stats");
    stats_json(g, &w, &st, g->n_peers);
    pthread_mutex_unlock(&g->mu);
    jw_obj_end(&w);
    if (!w.oom) return w.buf;
    jw_free(&w);
    *status = 503;
    mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    return NULL;
}

void cl_gossip_handle(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    (void)req;
    api_respond_doc(resp, cl_gossip_render, ctx);
}
