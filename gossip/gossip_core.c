/* The gossip core: configuration, lifecycle, rounds, local changes, frames
 * in and out, tombstone collection, accessors. The exchange of one round
 * (compare, descend, list, push, pull) is gossip_exchange.c.
 *
 * A round (every interval_ms, jittered +-10 % so nodes do not fall into
 * step) sends the directory root to `fanout` distinct random peers: classic
 * push-pull anti-entropy (Demers et al., "Epidemic algorithms for replicated
 * database maintenance", PODC 1987, §1.3), which spreads a change to all N
 * nodes in O(log N) rounds. Everything random comes from the PRNG seeded at
 * creation; time only from the callers' now_us (timers) and wall_ms (gc).
 *
 * Invariants: next_round_us is always set (a round is always due, so a
 * node with no peers just skips it); after a collection every tree equals a
 * rebuild (mn_assert_debug(mn_gossip_verify)); after every change the path
 * it touched is consistent (gossip_space.c). */
#include <stdlib.h>
#include <string.h>

#include "gossip_internal.h"

void mn_gossip_config_default(mn_gossip_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->interval_ms = 1000;
    c->fanout = 3;
    c->batch_max = 64;
    c->summary_max = 32;
    c->spaces_max = 16;
    c->gc_horizon_ms = 7LL * 24 * 3600 * 1000;
}

mn_err mn_gossip_config_check(const mn_gossip_config_t *c, mn_error *err)
{
    if (c->interval_ms < 10 || c->interval_ms > 3600 * 1000)
        return mn_error_set(err, MN_ERR_INVALID, "gossip.interval_ms must be 10..3600000");
    if (c->fanout < 1 || c->fanout > 16)
        return mn_error_set(err, MN_ERR_INVALID, "gossip.fanout must be 1..16");
    if (c->batch_max < 1 || c->batch_max > MN_WIRE_GOSSIP_MAX_RECORDS)
        return mn_error_set(err, MN_ERR_INVALID, "gossip.batch_max must be 1..%d",
                            MN_WIRE_GOSSIP_MAX_RECORDS);
    if (c->summary_max < 1 || c->summary_max > 1024)
        return mn_error_set(err, MN_ERR_INVALID, "gossip.summary_max must be 1..1024");
    if (c->spaces_max < 1 || c->spaces_max > 1024)
        return mn_error_set(err, MN_ERR_INVALID, "gossip.spaces_max must be 1..1024");
    if (c->gc_horizon_ms < 3600 * 1000)
        return mn_error_set(err, MN_ERR_INVALID, "gossip.gc_horizon_ms must be at least 3600000");
    return MN_OK;
}

static bool label_ok(const char *s, size_t max)
{
    return s && mn_wire_label_ok(s, strlen(s), max, false);
}

static int64_t jittered_interval_us(mn_gossip_t *g)
{
    double f = 0.9 + 0.2 * mn_prng_double(&g->prng);
    return (int64_t)((double)g->cfg.interval_ms * 1000.0 * f);
}

static bool alloc_scratch(mn_gossip_t *g)
{
    g->in.nodes_cap = MN_WIRE_GOSSIP_MAX_NODES;
    g->in.records_cap = MN_WIRE_GOSSIP_MAX_RECORDS;
    g->in.names_cap = MN_WIRE_GOSSIP_MAX_KEYS;
    g->in.nodes = calloc(g->in.nodes_cap, sizeof *g->in.nodes);
    g->in.records = calloc(g->in.records_cap, sizeof *g->in.records);
    g->in.names = calloc(g->in.names_cap, sizeof *g->in.names);
    g->in.name_lens = calloc(g->in.names_cap, sizeof *g->in.name_lens);
    g->out_nodes = calloc(MN_WIRE_GOSSIP_MAX_NODES, sizeof *g->out_nodes);
    g->out_recs = calloc(g->cfg.batch_max, sizeof *g->out_recs);
    g->out_keys = calloc(MN_WIRE_GOSSIP_MAX_KEYS, 16);
    g->out_digests = calloc(MN_WIRE_GOSSIP_MAX_KEYS, 16);
    g->out_names = calloc(MN_WIRE_GOSSIP_MAX_KEYS, sizeof *g->out_names);
    g->out_name_lens = calloc(MN_WIRE_GOSSIP_MAX_KEYS, sizeof *g->out_name_lens);
    g->enc = mn_wire_gossip_enc_new();
    return g->in.nodes && g->in.records && g->in.names && g->in.name_lens && g->out_nodes &&
           g->out_recs && g->out_keys && g->out_digests && g->out_names && g->out_name_lens &&
           g->enc;
}

mn_err mn_gossip_new(const char *node_id, const mn_gossip_config_t *cfg, const mn_gossip_cb_t *cb,
                     uint64_t seed, int64_t now_us, mn_gossip_t **out, mn_error *err)
{
    *out = NULL;
    if (!label_ok(node_id, MN_GOSSIP_NODE_ID_MAX))
        return mn_error_set(err, MN_ERR_INVALID, "node id: 1..%d printable bytes",
                            MN_GOSSIP_NODE_ID_MAX);
    if (!cb || !cb->send) return mn_error_set(err, MN_ERR_INVALID, "callbacks: send is required");
    mn_gossip_config_t c;
    if (cfg)
        c = *cfg;
    else
        mn_gossip_config_default(&c);
    mn_err rc = mn_gossip_config_check(&c, err);
    if (rc != MN_OK) return rc;
    mn_gossip_t *g = calloc(1, sizeof *g);
    if (!g) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    g->id_len = strlen(node_id);
    memcpy(g->id, node_id, g->id_len);
    g->cfg = c;
    g->cb = *cb;
    g->gc_before_ms = INT64_MIN;
    mn_prng_seed(&g->prng, seed);
    mn__gossip_tree_init(&g->dir.tree);
    if (!alloc_scratch(g)) {
        mn_gossip_free(g);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    g->next_round_us = now_us + (int64_t)mn_prng_below(&g->prng, (uint64_t)c.interval_ms * 1000);
    *out = g;
    return MN_OK;
}

static void peers_free(mn_gossip_t *g)
{
    for (size_t i = 0; i < g->n_peers; i++)
        free(g->peers[i]);
    free(g->peers);
    g->peers = NULL;
    g->n_peers = 0;
}

void mn_gossip_free(mn_gossip_t *g)
{
    if (!g) return;
    peers_free(g);
    mn__gossip_dir_free(&g->dir);
    mn_wire_gossip_enc_free(g->enc);
    free(g->in.nodes);
    free(g->in.records);
    free(g->in.names);
    free(g->in.name_lens);
    free(g->out_nodes);
    free(g->out_recs);
    free(g->out_keys);
    free(g->out_digests);
    free(g->out_names);
    free(g->out_name_lens);
    free(g->rx);
    free(g);
}

mn_err mn_gossip_set_peers(mn_gossip_t *g, const char *const *ids, size_t n, mn_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (!label_ok(ids[i], MN_GOSSIP_NODE_ID_MAX))
            return mn_error_set(err, MN_ERR_INVALID, "peers[%zu]: 1..%d printable bytes", i,
                                MN_GOSSIP_NODE_ID_MAX);
    char **peers = calloc(n ? n : 1, sizeof *peers);
    if (!peers) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ids[i], g->id) == 0) continue;
        peers[k] = strdup(ids[i]);
        if (!peers[k]) {
            for (size_t j = 0; j < k; j++)
                free(peers[j]);
            free(peers);
            return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        }
        k++;
    }
    peers_free(g);
    g->peers = peers;
    g->n_peers = k;
    return MN_OK;
}

/* ---- local changes and received records ---- */

static bool tombstone_expired(const mn_gossip_t *g, const mn_gossip_record_t *r)
{
    return r->forgotten_hlc && mn_hlc_ms(r->forgotten_hlc) < g->gc_before_ms;
}

mn_err mn_gossip_put(mn_gossip_t *g, const char *space, const mn_gossip_record_t *rec,
                     mn_error *err)
{
    if (!label_ok(space, MN_GOSSIP_SPACE_MAX))
        return mn_error_set(err, MN_ERR_INVALID, "space: 1..%d printable bytes",
                            MN_GOSSIP_SPACE_MAX);
    mn_err rc = mn_gossip_record_check(rec, err);
    if (rc != MN_OK || tombstone_expired(g, rec)) return rc;
    mn__gossip_space *sp = mn__gossip_space_get(&g->dir, space, strlen(space));
    bool changed;
    if (!sp || mn__gossip_space_merge(&g->dir, sp, rec, &changed, NULL) != MN_OK)
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    return MN_OK;
}

/* ---- frames ---- */

void mn__gossip_send(mn_gossip_t *g, const char *to, size_t to_len, mn_wire_gossip_frame_t *f)
{
    char peer[MN_GOSSIP_NODE_ID_MAX + 1];
    mn_assert(to_len >= 1 && to_len <= MN_GOSSIP_NODE_ID_MAX);
    memcpy(peer, to, to_len);
    peer[to_len] = '\0';
    f->from = g->id;
    f->from_len = g->id_len;
    const uint8_t *buf;
    size_t len;
    mn_err rc = mn_wire_gossip_encode(g->enc, f, &buf, &len);
    mn_assert(rc == MN_OK || rc == MN_ERR_NOMEM); /* we build only well-formed frames */
    if (rc != MN_OK) return;
    g->stats.frames_sent++;
    g->stats.bytes_sent += len;
    g->cb.send(g->cb.user, peer, buf, len);
}

bool mn__gossip_shares(const mn_gossip_t *g, const char *peer, size_t peer_len, const char *space,
                       size_t space_len)
{
    if (!g->cb.shares) return true;
    char p[MN_GOSSIP_NODE_ID_MAX + 1], s[MN_GOSSIP_SPACE_MAX + 1];
    if (peer_len > MN_GOSSIP_NODE_ID_MAX || space_len > MN_GOSSIP_SPACE_MAX) return false;
    memcpy(p, peer, peer_len);
    p[peer_len] = '\0';
    memcpy(s, space, space_len);
    s[space_len] = '\0';
    return g->cb.shares(g->cb.user, p, s);
}

void mn__gossip_dir_node_for(const mn_gossip_t *g, const char *peer, size_t peer_len, int level,
                             uint32_t index, uint8_t digest[MN_GOSSIP_DIGEST_LEN], uint32_t *count)
{
    if (!g->cb.shares) {
        mn__gossip_tree_node(&g->dir.tree, level, index, digest, count);
        return;
    }
    /* the node's XOR of entry digests (gossip_tree.c), over the shared spaces only */
    size_t first, end;
    mn__gossip_dir_range(&g->dir, level, index, &first, &end);
    memset(digest, 0, MN_GOSSIP_DIGEST_LEN);
    *count = 0;
    for (size_t i = first; i < end; i++) {
        const mn__gossip_space *sp = g->dir.spaces[i];
        if (!sp->in_dir || !mn__gossip_shares(g, peer, peer_len, sp->name, sp->name_len)) continue;
        for (size_t b = 0; b < MN_GOSSIP_DIGEST_LEN; b++)
            digest[b] ^= sp->dir_digest[b];
        (*count)++;
    }
}

void mn__gossip_send_root(mn_gossip_t *g, const char *peer, size_t peer_len)
{
    mn_wire_gossip_node_t root = {.level = 0, .index = 0};
    mn__gossip_dir_node_for(g, peer, peer_len, 0, 0, root.digest, &root.count);
    mn_wire_gossip_frame_t f = {.kind = MN_WIRE_GOSSIP_NODES, .nodes = &root, .n_nodes = 1};
    mn__gossip_send(g, peer, peer_len, &f);
}

static const uint8_t *aligned_copy(mn_gossip_t *g, const uint8_t *buf, size_t len)
{
    if (((uintptr_t)buf & 7) == 0) return buf;
    if (len > g->rx_cap) {
        free(g->rx);
        g->rx = aligned_alloc(8, (len + 7) & ~(size_t)7);
        g->rx_cap = g->rx ? len : 0;
        if (!g->rx) return NULL;
    }
    memcpy(g->rx, buf, len);
    return g->rx;
}

void mn_gossip_on_message(mn_gossip_t *g, int64_t now_us, const uint8_t *buf, size_t len)
{
    (void)now_us;
    g->stats.frames_received++;
    g->stats.bytes_received += len;
    const uint8_t *a = buf && len <= MN_WIRE_GOSSIP_MAX_FRAME ? aligned_copy(g, buf, len) : NULL;
    mn_wire_gossip_frame_t f;
    if (!a || mn_wire_gossip_decode(a, len, &f, &g->in) != MN_OK ||
        (f.from_len == g->id_len && memcmp(f.from, g->id, g->id_len) == 0)) {
        g->stats.frames_rejected++;
        return;
    }
    mn__gossip_handle(g, &f);
}

/* ---- rounds ---- */

static void round_run(mn_gossip_t *g)
{
    g->stats.rounds++;
    size_t k = (size_t)g->cfg.fanout < g->n_peers ? (size_t)g->cfg.fanout : g->n_peers;
    size_t chosen[16];
    for (size_t i = 0; i < k; i++) {
        /* k distinct of n: Floyd's algorithm (Bentley, CACM 1987) */
        size_t j = g->n_peers - k + i;
        size_t t = (size_t)mn_prng_below(&g->prng, (uint64_t)j + 1);
        bool taken = false;
        for (size_t m = 0; m < i; m++)
            taken = taken || chosen[m] == t;
        chosen[i] = taken ? j : t;
    }
    for (size_t i = 0; i < k; i++)
        mn__gossip_send_root(g, g->peers[chosen[i]], strlen(g->peers[chosen[i]]));
}

void mn_gossip_on_tick(mn_gossip_t *g, int64_t now_us)
{
    if (now_us < g->next_round_us) return;
    round_run(g);
    g->next_round_us = now_us + jittered_interval_us(g);
}

int64_t mn_gossip_next_deadline(const mn_gossip_t *g)
{
    return g->next_round_us;
}

/* ---- tombstone collection ---- */

void mn_gossip_gc(mn_gossip_t *g, int64_t wall_ms)
{
    int64_t before = wall_ms - g->cfg.gc_horizon_ms;
    if (before > g->gc_before_ms) g->gc_before_ms = before;
    for (size_t s = 0; s < g->dir.n; s++) {
        mn__gossip_space *sp = g->dir.spaces[s];
        for (size_t i = sp->n; i-- > 0;)
            if (tombstone_expired(g, &sp->recs[i]->r)) {
                mn__gossip_space_remove(&g->dir, sp, i);
                g->stats.tombstones_collected++;
            }
    }
    mn_assert_debug(mn_gossip_verify(g));
}

/* ---- dropping a space's records ---- */

size_t mn_gossip_drop(mn_gossip_t *g, const char *space, int64_t before_ms)
{
    mn__gossip_space *sp = mn__gossip_space_find(&g->dir, space, strlen(space));
    size_t n = 0;
    for (size_t i = sp ? sp->n : 0; i-- > 0;)
        if (mn_id_time_ms(&sp->recs[i]->r.id) < before_ms) {
            mn__gossip_space_remove(&g->dir, sp, i);
            n++;
        }
    g->stats.entries_dropped += n;
    mn_assert_debug(mn_gossip_verify(g));
    return n;
}

/* ---- accessors ---- */

void mn_gossip_root(const mn_gossip_t *g, const char *space, uint8_t root[MN_GOSSIP_DIGEST_LEN],
                    uint64_t *count)
{
    uint32_t c = 0;
    const mn__gossip_tree *t = &g->dir.tree;
    if (space && *space) {
        const mn__gossip_space *sp = mn__gossip_space_find(&g->dir, space, strlen(space));
        t = sp ? &sp->tree : NULL;
    }
    if (t) {
        mn__gossip_tree_node(t, 0, 0, root, &c);
    } else {
        memset(root, 0, MN_GOSSIP_DIGEST_LEN);
    }
    if (count) *count = c;
}

mn_err mn_gossip_get(const mn_gossip_t *g, const char *space, const mn_id_t *id,
                     mn_gossip_record_t *out)
{
    const mn__gossip_space *sp =
        space ? mn__gossip_space_find(&g->dir, space, strlen(space)) : NULL;
    const mn__gossip_rec *x = sp ? mn__gossip_rec_find(sp, id) : NULL;
    if (!x) return MN_ERR_NOT_FOUND;
    *out = x->r;
    return MN_OK;
}

size_t mn_gossip_space_count(const mn_gossip_t *g)
{
    size_t n = 0;
    for (size_t i = 0; i < g->dir.n; i++)
        n += g->dir.spaces[i]->n > 0;
    return n;
}

void mn_gossip_stats(const mn_gossip_t *g, mn_gossip_stats_t *out)
{
    *out = g->stats;
}

bool mn_gossip_verify(const mn_gossip_t *g)
{
    return mn__gossip_dir_verify(&g->dir, true);
}

bool mn_gossip_check_next(mn_gossip_t *g, char bad[MN_GOSSIP_SPACE_MAX + 1])
{
    bad[0] = '\0';
    if (!g->dir.n) return true;
    if (g->check_next >= g->dir.n) { /* a round of all spaces done: the directory's tree */
        g->check_next = 0;
        if (!mn__gossip_dir_verify(&g->dir, false)) {
            /* a space's damaged tree shows here first when its turn is yet to come: every
             * space is checked (rare, so O(all records) is fine), then the directory */
            for (size_t i = 0; i < g->dir.n; i++)
                if (!mn__gossip_space_verify(g->dir.spaces[i]))
                    g->stats.trees_repaired +=
                        mn__gossip_space_repair(&g->dir, g->dir.spaces[i]) == MN_OK;
            g->stats.trees_repaired += mn__gossip_dir_repair(&g->dir) == MN_OK;
            return false;
        }
    }
    mn__gossip_space *sp = g->dir.spaces[g->check_next++];
    g->stats.trees_checked++;
    if (mn__gossip_space_verify(sp) && mn__gossip_space_entry_ok(sp)) return true;
    memcpy(bad, sp->name, sp->name_len);
    bad[sp->name_len] = '\0';
    g->stats.trees_repaired += mn__gossip_space_repair(&g->dir, sp) == MN_OK;
    return false;
}
