/* Replication harness for simnet: N nodes run the replication core of
 * spaces/ for one space, each with a disk that survives crashes, under
 * clients that write at whichever node is writable, a membership oracle
 * standing in for SWIM, and a judge (the scripts are in repl_scenarios.c).
 *
 * The judge keeps, all along: which node led each epoch (two = a conflict),
 * which entry each (epoch, lsn) names (two = a log violation), and that every
 * log grows by exactly lsn + 1. A client write is acknowledged when its
 * primary, still primary of the write's epoch, reports the write's level
 * reached; an entry handed back by the core (reapply) is written again at
 * the current primary unless it holds that payload already (ids are kept,
 * as the engine's ingest keeps memory ids). At the end (healed, every node
 * running, no writes for settle_ms): every acknowledged payload must be in
 * the final primary's log, and every node's log must equal it.
 *
 * Everything random comes from the simulator's PRNG, so a run is a pure
 * function of the options (the seed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"
#include "repl_sim_internal.h"

#define SLICE_US 1000
#define ACK_TIMEOUT_US 3000000
#define NOTICE_ALIVE_US 200000
#define SNAPSHOT_COPY_US 50000

static uint64_t payload_of(const uint8_t *data)
{
    return mn_get_be64(data);
}

static bool grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap * 2 : 64;
    while (nc < need)
        nc *= 2;
    void *np = realloc(*p, nc * size);
    if (!np) return false;
    *p = np;
    *cap = nc;
    return true;
}

/* ---- the judge's identity map: (epoch, lsn) -> payload ---- */

static uint64_t ident_hash(uint64_t epoch, uint64_t lsn)
{
    uint64_t h = epoch * 0x9e3779b97f4a7c15ull ^ lsn * 0xc2b2ae3d27d4eb4full;
    return h ^ (h >> 29);
}

static void ident_rehash(mn_simrepl_t *h)
{
    size_t cap = h->cap_ident ? h->cap_ident * 2 : 4096;
    uint64_t *t = calloc(cap * 3, sizeof *t);
    mn_assert(t);
    for (size_t i = 0; i < h->cap_ident; i++) {
        uint64_t *o = &h->ident[i * 3];
        if (!o[1]) continue;
        size_t j = ident_hash(o[0], o[1]) & (cap - 1);
        while (t[j * 3 + 1])
            j = (j + 1) & (cap - 1);
        memcpy(&t[j * 3], o, 3 * sizeof *o);
    }
    free(h->ident);
    h->ident = t;
    h->cap_ident = cap;
}

/* Records that (epoch, lsn) holds id; a different id there is a violation. */
static void ident_put(mn_simrepl_t *h, uint64_t epoch, uint64_t lsn, uint64_t id)
{
    if ((h->n_ident + 1) * 2 > h->cap_ident) ident_rehash(h);
    size_t j = ident_hash(epoch, lsn) & (h->cap_ident - 1);
    for (;; j = (j + 1) & (h->cap_ident - 1)) {
        uint64_t *s = &h->ident[j * 3];
        if (!s[1]) {
            s[0] = epoch;
            s[1] = lsn;
            s[2] = id;
            h->n_ident++;
            return;
        }
        if (s[0] == epoch && s[1] == lsn) {
            if (s[2] != id) h->res->log_violations++;
            return;
        }
    }
}

/* ---- disks ---- */

static void disk_append(mn_simrepl_t *h, mn__rs_disk *d, uint64_t epoch, uint64_t lsn,
                        const uint8_t *data)
{
    if (lsn != d->n + 1) { /* the core handed an entry out of order */
        h->res->log_violations++;
        return;
    }
    mn_assert(grow((void **)&d->log, &d->cap, d->n + 1, sizeof *d->log));
    mn__rs_entry *e = &d->log[d->n++];
    e->epoch = epoch;
    e->lsn = lsn;
    memcpy(e->data, data, MN__SIMREPL_DATA);
    ident_put(h, epoch, lsn, payload_of(data));
    if (h->o.wal_retain && d->n > h->o.wal_retain && d->n - h->o.wal_retain > d->trimmed)
        d->trimmed = d->n - h->o.wal_retain;
}

static bool disk_has(const mn__rs_disk *d, uint64_t id)
{
    for (size_t i = 0; i < d->n; i++)
        if (payload_of(d->log[i].data) == id) return true;
    return false;
}

/* ---- the core's callbacks ---- */

static int node_of(const char *id)
{
    return id[0] == 'n' && id[1] >= '0' && id[1] <= '9' && !id[2] ? id[1] - '0' : -1;
}

static void cb_send(void *user, const char *to, const uint8_t *frame, size_t len)
{
    mn__rs_node *nd = user;
    int k = node_of(to);
    if (k < 0 || k >= nd->h->n) return;
    mn_swim_addr_t a = mn_simnet_addr(nd->h->net, k);
    mn_simnet_send(nd->h->net, nd->idx, &a, frame, len);
}

static void cb_apply(void *user, const char *space, uint64_t epoch, uint64_t lsn,
                     const uint8_t *data, size_t len)
{
    mn__rs_node *nd = user;
    if (len != MN__SIMREPL_DATA) {
        nd->h->res->log_violations++;
        return;
    }
    disk_append(nd->h, &nd->disk, epoch, lsn, data);
    mn_spaces_repl_applied(nd->core, space, nd->disk.n);
}

static mn_err cb_read(void *user, const char *space, uint64_t lsn, uint64_t *epoch,
                      const uint8_t **data, size_t *len)
{
    mn__rs_node *nd = user;
    (void)space;
    if (lsn == 0 || lsn <= nd->disk.trimmed || lsn > nd->disk.n) return MN_ERR_NOT_FOUND;
    const mn__rs_entry *e = &nd->disk.log[lsn - 1];
    *epoch = e->epoch;
    *data = e->data;
    *len = MN__SIMREPL_DATA;
    return MN_OK;
}

static mn_err cb_truncate(void *user, const char *space, uint64_t after_lsn)
{
    mn__rs_node *nd = user;
    (void)space;
    if (after_lsn < nd->disk.trimmed) return MN_ERR_UNSUPPORTED;
    if (after_lsn < nd->disk.n) nd->disk.n = after_lsn;
    return MN_OK;
}

static void cb_reapply(void *user, const char *space, uint64_t epoch, uint64_t lsn,
                       const uint8_t *data, size_t len)
{
    mn__rs_node *nd = user;
    mn_simrepl_t *h = nd->h;
    (void)space, (void)epoch, (void)lsn;
    if (len != MN__SIMREPL_DATA) return;
    mn_assert(grow((void **)&h->reapply, &h->cap_reapply, h->n_reapply + 1, sizeof *h->reapply));
    h->reapply[h->n_reapply++] = payload_of(data);
}

static void cb_persist(void *user, const char *space, const mn_spaces_repl_durable_t *d)
{
    mn__rs_node *nd = user;
    (void)space;
    nd->disk.d = *d;
    nd->disk.has_d = true;
}

static void cb_event(void *user, const mn_spaces_repl_event_t *ev)
{
    mn__rs_node *nd = user;
    mn_simrepl_t *h = nd->h;
    if (ev->type == MN_SPACES_REPL_CAUGHT_UP) {
        mn__simrec_caught_up(h, ev);
        return;
    }
    if (ev->type == MN_SPACES_REPL_SNAPSHOT_NEEDED) {
        nd->snapshot_at_us = mn_simnet_now(h->net) + SNAPSHOT_COPY_US;
        return;
    }
    if (ev->type != MN_SPACES_REPL_PROMOTED) return;
    h->res->promotions++;
    mn_assert(grow((void **)&h->primary_of, &h->cap_epochs, ev->epoch + 1, sizeof *h->primary_of));
    for (size_t i = h->res->epochs + 1; i <= ev->epoch && i < h->cap_epochs; i++)
        h->primary_of[i] = 0;
    if (ev->epoch > h->res->epochs) h->res->epochs = ev->epoch;
    uint64_t *p = &h->primary_of[ev->epoch];
    if (*p && *p != (uint64_t)nd->idx + 1) h->res->primary_conflicts++;
    *p = (uint64_t)nd->idx + 1;
    mn_simnet_trace_note(h->net, "n%d leads epoch %llu", nd->idx, (unsigned long long)ev->epoch);
}

/* ---- simnet core ops ---- */

static void *core_create(void *arg, mn_simnet_t *net, int node, int64_t now_us, uint64_t seed)
{
    mn__rs_node *nd = arg;
    mn_simrepl_t *h = nd->h;
    (void)net, (void)node;
    mn_spaces_repl_cb_t cb = {nd,          cb_send,    cb_apply,   cb_read,
                              cb_truncate, cb_reapply, cb_persist, cb_event};
    mn_spaces_repl_holder_t holders[MN__SIMREPL_NODES_MAX];
    for (int i = 0; i < h->n; i++)
        holders[i] = (mn_spaces_repl_holder_t){h->nodes[i].id, true};
    if (mn_spaces_repl_new(nd->id, &h->o.repl, &cb, seed, &nd->core, NULL) != MN_OK) return NULL;
    if (h->records) {
        mn__simrec_started(h, nd, now_us);
        return nd;
    }
    nd->open = true;
    if (mn_spaces_repl_open(nd->core, now_us, MN__SIMREPL_SPACE, holders, (size_t)h->n,
                            nd->disk.has_d ? &nd->disk.d : NULL, nd->disk.n, NULL) != MN_OK) {
        mn_spaces_repl_free(nd->core);
        nd->core = NULL;
        return NULL;
    }
    for (int i = 0; i < h->n; i++)
        if (!nd->view_alive[i]) mn_spaces_repl_member(nd->core, now_us, h->nodes[i].id, false);
    return nd;
}

static void stats_add(mn_spaces_repl_stats_t *sum, const mn_spaces_repl_stats_t *x)
{
    sum->reapplied += x->reapplied;
    sum->truncations += x->truncations;
    sum->snapshots += x->snapshots;
    sum->fenced += x->fenced;
    sum->gaps += x->gaps;
}

static void core_destroy(void *arg, void *core)
{
    mn__rs_node *nd = arg;
    (void)core;
    mn_spaces_repl_stats_t st;
    mn_spaces_repl_stats(nd->core, &st);
    stats_add(&nd->dead_stats, &st);
    mn_spaces_repl_free(nd->core);
    nd->core = NULL;
    nd->life++;
    nd->snapshot_at_us = INT64_MAX;
}

static void core_packet(void *core, int64_t now_us, const mn_swim_addr_t *from, const uint8_t *buf,
                        size_t len)
{
    (void)from;
    mn_spaces_repl_on_message(((mn__rs_node *)core)->core, now_us, buf, len);
}

static void core_tick(void *core, int64_t now_us)
{
    mn_spaces_repl_on_tick(((mn__rs_node *)core)->core, now_us);
}

static int64_t core_deadline(void *core)
{
    return mn_spaces_repl_next_deadline(((mn__rs_node *)core)->core);
}

static const mn_simnet_core_ops_t OPS = {core_create, core_destroy, core_packet, core_tick,
                                         core_deadline};

/* ---- lifecycle ---- */

mn_simrepl_t *mn__simrepl_new(const mn_simrepl_opts_t *o, mn_simrepl_result_t *res, int records_of)
{
    mn_simrepl_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->o = *o;
    h->res = res;
    h->n = o->nodes;
    h->fault_at_us = INT64_MAX;
    h->net = mn_simnet_new(o->seed, &o->link);
    if (!h->net) {
        free(h);
        return NULL;
    }
    if (o->trace) mn_simnet_trace_file(h->net, o->trace);
    for (int i = 0; i < h->n; i++) {
        mn__rs_node *nd = &h->nodes[i];
        nd->h = h;
        nd->idx = i;
        snprintf(nd->id, sizeof nd->id, "n%d", i);
        nd->snapshot_at_us = INT64_MAX;
        for (int j = 0; j < h->n; j++)
            nd->view_alive[j] = true;
        mn_assert(mn_simnet_add_node(h->net, &OPS, nd) == i);
    }
    if (records_of) mn__simrec_init(h, records_of);
    for (int i = 0; i < h->n; i++)
        mn_simnet_start(h->net, i);
    return h;
}

void mn__simrepl_free(mn_simrepl_t *h)
{
    if (!h) return;
    mn_simnet_free(h->net); /* destroys the running cores */
    for (int i = 0; i < h->n; i++)
        free(h->nodes[i].disk.log);
    free(h->pending);
    free(h->acked);
    free(h->reapply);
    free(h->notices);
    free(h->primary_of);
    free(h->ident);
    free(h);
}

/* ---- the oracle ---- */

static void notice(mn_simrepl_t *h, int64_t at_us, int obs, int tgt, bool alive)
{
    mn_assert(grow((void **)&h->notices, &h->cap_notices, h->n_notices + 1, sizeof *h->notices));
    h->notices[h->n_notices++] = (mn__rs_notice){at_us, obs, tgt, alive};
}

static void deliver_notices(mn_simrepl_t *h, int64_t now_us)
{
    size_t k = 0;
    for (size_t i = 0; i < h->n_notices; i++) {
        mn__rs_notice *no = &h->notices[i];
        if (no->at_us > now_us) {
            h->notices[k++] = *no;
            continue;
        }
        mn__rs_node *nd = &h->nodes[no->obs];
        nd->view_alive[no->tgt] = no->alive;
        if (nd->core) {
            mn_spaces_repl_member(nd->core, now_us, h->nodes[no->tgt].id, no->alive);
            mn_simnet_wake(h->net, no->obs);
        }
    }
    h->n_notices = k;
}

static int64_t detect_us(const mn_simrepl_t *h)
{
    return h->o.detect_ms * 1000;
}

void mn__simrepl_crash(mn_simrepl_t *h, int node)
{
    int64_t now = mn_simnet_now(h->net);
    mn_simnet_crash(h->net, node);
    for (int i = 0; i < h->n; i++)
        if (i != node) notice(h, now + detect_us(h), i, node, false);
}

void mn__simrepl_restart(mn_simrepl_t *h, int node)
{
    if (mn_simnet_state(h->net, node) != MN_SIMNET_DOWN) return;
    int64_t now = mn_simnet_now(h->net);
    mn__rs_node *nd = &h->nodes[node];
    for (int j = 0; j < h->n; j++)
        nd->view_alive[j] = !mn_simnet_cut(h->net, node, j) || j == node;
    mn_simnet_start(h->net, node);
    for (int i = 0; i < h->n; i++)
        if (i != node && !mn_simnet_cut(h->net, i, node))
            notice(h, now + NOTICE_ALIVE_US, i, node, true);
}

void mn__simrepl_partition(mn_simrepl_t *h, const int *group)
{
    int64_t now = mn_simnet_now(h->net);
    mn_simnet_partition(h->net, group, false);
    for (int a = 0; a < h->n; a++)
        for (int b = 0; b < h->n; b++)
            if (group[a] != group[b]) notice(h, now + detect_us(h), a, b, false);
}

void mn__simrepl_heal(mn_simrepl_t *h)
{
    int64_t now = mn_simnet_now(h->net);
    mn_simnet_heal(h->net);
    for (int a = 0; a < h->n; a++)
        for (int b = 0; b < h->n; b++)
            if (a != b && mn_simnet_state(h->net, b) != MN_SIMNET_DOWN)
                notice(h, now + NOTICE_ALIVE_US, a, b, true);
}

void mn__simrepl_cut(mn_simrepl_t *h, int a, int b)
{
    mn_simnet_block(h->net, a, b, true);
    mn_simnet_block(h->net, b, a, true);
}

void mn__simrepl_flap(mn_simrepl_t *h, int obs, int tgt, int64_t ms)
{
    int64_t now = mn_simnet_now(h->net);
    notice(h, now, obs, tgt, false);
    notice(h, now + ms * 1000, obs, tgt, true);
}

int mn__simrepl_primary(const mn_simrepl_t *h, int64_t now_us)
{
    int best = -1;
    uint64_t best_epoch = 0;
    for (int i = 0; i < h->n; i++) {
        uint64_t epoch;
        if (h->nodes[i].core &&
            mn_spaces_repl_writable(h->nodes[i].core, now_us, MN__SIMREPL_SPACE, &epoch) &&
            epoch > best_epoch) {
            best = i;
            best_epoch = epoch;
        }
    }
    return best;
}

void mn__simrepl_handover(mn_simrepl_t *h, int from, int to)
{
    mn__rs_node *nd = &h->nodes[from];
    if (!nd->core) return;
    if (mn_spaces_repl_handover(nd->core, mn_simnet_now(h->net), MN__SIMREPL_SPACE, h->nodes[to].id,
                                NULL) == MN_OK)
        mn_simnet_wake(h->net, from);
}

void mn__simrepl_fault(mn_simrepl_t *h)
{
    int p = mn__simrepl_primary(h, mn_simnet_now(h->net));
    if (h->fault_at_us != INT64_MAX || p < 0) return;
    h->fault_at_us = mn_simnet_now(h->net);
    mn_spaces_repl_status_t st;
    mn_spaces_repl_status(h->nodes[p].core, h->fault_at_us, MN__SIMREPL_SPACE, &st);
    h->fault_epoch = st.epoch;
}

/* ---- clients ---- */

/* Writes payload id at node p (its primary); returns the lsn. */
static uint64_t write_at(mn_simrepl_t *h, int p, uint64_t id, uint64_t epoch, int64_t now_us)
{
    mn__rs_node *nd = &h->nodes[p];
    uint8_t data[MN__SIMREPL_DATA] = {0};
    mn_put_be64(data, id);
    data[8] = (uint8_t)p;
    uint64_t lsn = nd->disk.n + 1;
    disk_append(h, &nd->disk, epoch, lsn, data);
    mn_err rc = mn_spaces_repl_append(nd->core, now_us, MN__SIMREPL_SPACE, lsn, data,
                                      MN__SIMREPL_DATA, NULL);
    mn_assert(rc == MN_OK); /* it was writable */
    mn_simnet_wake(h->net, p);
    return lsn;
}

static void client_write(mn_simrepl_t *h, int64_t now_us)
{
    int cand[MN__SIMREPL_NODES_MAX], nc = 0;
    uint64_t epochs[MN__SIMREPL_NODES_MAX];
    for (int i = 0; i < h->n; i++)
        if (h->nodes[i].core &&
            mn_spaces_repl_writable(h->nodes[i].core, now_us, MN__SIMREPL_SPACE, &epochs[nc]))
            cand[nc++] = i;
    if (nc == 0) return;
    int k = (int)mn_prng_below(mn_simnet_prng(h->net), (uint64_t)nc);
    int level = (int)mn_prng_below(mn_simnet_prng(h->net), 3);
    uint64_t id = ++h->next_id;
    uint64_t lsn = write_at(h, cand[k], id, epochs[k], now_us);
    mn_assert(grow((void **)&h->pending, &h->cap_pending, h->n_pending + 1, sizeof *h->pending));
    h->pending[h->n_pending++] =
        (mn__rs_write){cand[k], h->nodes[cand[k]].life, level, epochs[k], lsn, id, now_us};
    h->res->writes++;
}

static void check_acks(mn_simrepl_t *h, int64_t now_us)
{
    size_t k = 0;
    for (size_t i = 0; i < h->n_pending; i++) {
        mn__rs_write *w = &h->pending[i];
        mn__rs_node *nd = &h->nodes[w->node];
        mn_spaces_repl_status_t st;
        bool same = nd->core && nd->life == w->life &&
                    mn_spaces_repl_status(nd->core, now_us, MN__SIMREPL_SPACE, &st) == MN_OK &&
                    st.role == MN_SPACES_REPL_PRIMARY && st.epoch == w->epoch;
        if (!same || now_us - w->at_us > ACK_TIMEOUT_US) continue; /* failed: 503 */
        if (mn_spaces_repl_reached(nd->core, MN__SIMREPL_SPACE, (mn_spaces_level_t)w->level) <
            w->lsn) {
            h->pending[k++] = *w;
            continue;
        }
        mn_assert(grow((void **)&h->acked, &h->cap_acked, h->n_acked + 1, sizeof *h->acked));
        h->acked[h->n_acked++] = (mn__rs_acked){w->id, w->epoch, w->level, w->node};
        h->res->acked[w->level]++;
    }
    h->n_pending = k;
}

/* Entries handed back by a core go to the current primary, once per payload. */
static void drain_reapply(mn_simrepl_t *h, int64_t now_us)
{
    if (!h->n_reapply) return;
    int p = mn__simrepl_primary(h, now_us);
    if (p < 0) return;
    uint64_t epoch = 0;
    mn_spaces_repl_writable(h->nodes[p].core, now_us, MN__SIMREPL_SPACE, &epoch);
    for (size_t i = 0; i < h->n_reapply; i++)
        if (!disk_has(&h->nodes[p].disk, h->reapply[i]))
            write_at(h, p, h->reapply[i], epoch, now_us);
    h->n_reapply = 0;
}

/* A node that needs a snapshot gets the primary's log (a checkpoint). */
static void install_snapshots(mn_simrepl_t *h, int64_t now_us)
{
    for (int i = 0; i < h->n; i++) {
        mn__rs_node *nd = &h->nodes[i];
        if (nd->snapshot_at_us > now_us || !nd->core || !nd->open) continue;
        int p = mn__simrepl_primary(h, now_us);
        if (p < 0 || p == i) continue;
        const mn__rs_disk *src = &h->nodes[p].disk;
        if (src->n == 0) continue;
        mn_assert(grow((void **)&nd->disk.log, &nd->disk.cap, src->n, sizeof *nd->disk.log));
        memcpy(nd->disk.log, src->log, src->n * sizeof *src->log);
        nd->disk.n = src->n;
        nd->disk.trimmed = src->n;
        nd->snapshot_at_us = INT64_MAX;
        mn_assert(mn_spaces_repl_restored(nd->core, now_us, MN__SIMREPL_SPACE, src->n,
                                          src->log[src->n - 1].epoch, NULL) == MN_OK);
        mn_simnet_wake(h->net, i);
        h->res->snapshots++;
    }
}

static void measure_failover(mn_simrepl_t *h, int64_t now_us)
{
    if (h->fault_at_us == INT64_MAX || h->res->failover_s >= 0) return;
    int p = mn__simrepl_primary(h, now_us);
    if (p < 0) return;
    uint64_t epoch = 0;
    mn_spaces_repl_writable(h->nodes[p].core, now_us, MN__SIMREPL_SPACE, &epoch);
    if (epoch > h->fault_epoch) h->res->failover_s = (double)(now_us - h->fault_at_us) / 1e6;
}

void mn__simrepl_advance(mn_simrepl_t *h, int64_t ms)
{
    int64_t end = mn_simnet_now(h->net) + ms * 1000;
    while (mn_simnet_now(h->net) < end) {
        int64_t now = mn_simnet_now(h->net);
        deliver_notices(h, now);
        mn__simrec_step(h, now);
        if (h->writing) {
            h->write_credit += h->o.writes_per_s * SLICE_US / 1e6;
            for (; h->write_credit >= 1.0; h->write_credit -= 1.0)
                client_write(h, now);
        }
        check_acks(h, now);
        drain_reapply(h, now);
        install_snapshots(h, now);
        measure_failover(h, now);
        mn_simnet_run_until(h->net, now + SLICE_US);
    }
}

/* ---- the end of a run ---- */

static bool same_log(const mn__rs_disk *a, const mn__rs_disk *b)
{
    if (a->n != b->n) return false;
    for (size_t i = 0; i < a->n; i++)
        if (a->log[i].epoch != b->log[i].epoch ||
            memcmp(a->log[i].data, b->log[i].data, MN__SIMREPL_DATA) != 0)
            return false;
    return true;
}

/* MN_SIMREPL_DEBUG=1: what a node that did not converge holds, and every
 * node's epoch history and log epochs (stderr). */
static void dump_unconverged(const mn_simrepl_t *h, int i, int p)
{
    mn_spaces_repl_status_t st;
    if (h->nodes[i].core && mn_spaces_repl_status(h->nodes[i].core, mn_simnet_now(h->net),
                                                  MN__SIMREPL_SPACE, &st) == MN_OK)
        fprintf(stderr,
                "n%d: log %zu (primary n%d: %zu) role %d epoch %llu primary '%s' "
                "snapshot %d\n",
                i, h->nodes[i].disk.n, p, h->nodes[p].disk.n, st.role, (unsigned long long)st.epoch,
                st.primary, st.snapshot_needed);
    for (int k = 0; k < h->n; k++) {
        const mn__rs_disk *d = &h->nodes[k].disk;
        fprintf(stderr, "  n%d history:", k);
        for (size_t j = 0; j < d->d.n_history; j++)
            fprintf(stderr, " (%llu,%llu)", (unsigned long long)d->d.history[j].epoch,
                    (unsigned long long)d->d.history[j].lsn);
        fprintf(stderr, " base %llu; log epochs:", (unsigned long long)d->d.base_lsn);
        for (size_t j = 0; j < d->n; j++)
            if (j == 0 || d->log[j].epoch != d->log[j - 1].epoch)
                fprintf(stderr, " %llu@%zu", (unsigned long long)d->log[j].epoch, j + 1);
        fprintf(stderr, "\n");
    }
}

static void judge_end(mn_simrepl_t *h)
{
    mn_simrepl_result_t *res = h->res;
    int64_t now = mn_simnet_now(h->net);
    int p = mn__simrepl_primary(h, now);
    res->has_primary = p >= 0;
    res->settled = h->records && mn__simrec_settled(h);
    for (int i = 0; i < h->n; i++) {
        mn__rs_node *nd = &h->nodes[i];
        mn_spaces_repl_stats_t st = nd->dead_stats;
        if (nd->core) {
            mn_spaces_repl_stats_t cur;
            mn_spaces_repl_stats(nd->core, &cur);
            stats_add(&st, &cur);
        }
        res->reapplied += st.reapplied;
        res->truncations += st.truncations;
        res->fenced += st.fenced;
        res->gaps += st.gaps;
    }
    if (p < 0) return;
    const mn__rs_disk *pd = &h->nodes[p].disk;
    res->final_lsn = pd->n;
    for (size_t i = 0; i < h->n_acked; i++)
        if (!disk_has(pd, h->acked[i].id)) {
            res->lost[h->acked[i].level]++;
            mn_simnet_trace_note(h->net,
                                 "lost: write %llu (level %d) acknowledged by n%d in epoch %llu",
                                 (unsigned long long)h->acked[i].id, h->acked[i].level,
                                 h->acked[i].node, (unsigned long long)h->acked[i].epoch);
        }
    res->converged = true;
    for (int i = 0; i < h->n; i++)
        if (mn__simrec_lists(h, i) && !same_log(&h->nodes[i].disk, pd)) {
            res->converged = false;
            if (getenv("MN_SIMREPL_DEBUG")) dump_unconverged(h, i, p);
        }
}

void mn__simrepl_finish(mn_simrepl_t *h)
{
    h->writing = false;
    mn__simrepl_heal(h);
    for (int i = 0; i < h->n; i++)
        mn__simrepl_restart(h, i);
    mn__simrepl_advance(h, h->o.settle_ms);
    judge_end(h);
    h->res->trace_hash = mn_simnet_trace_hash(h->net);
}
