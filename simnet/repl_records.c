/* Holder records in the replication harness (the membership scenarios): the voter set of
 * the space changes while clients write and faults run, the way the server changes it
 * (docs/replication.md, "Holder records"). Only scenarios that set h->records use this;
 * the others keep every node a voter for the whole run.
 *
 * - The catalog: every node keeps the newest record it has (`known`, on its disk: a
 *   restart keeps it). The newest record anywhere reaches a running node from any running
 *   node that has it and that it can reach, after a delay of up to RECORD_DELAY_US (the
 *   catalog's push and anti-entropy). A node may skip versions.
 * - Applying a record to a node's core, as api/cluster_repl.c does: a listed node opens
 *   the space (or sets its holders), then sets the record; a node no longer listed closes
 *   it (a primary cannot: it hands over first) and drops its log, keeping its durable
 *   state (epoch and vote).
 * - The authority: every node whose core leads the space steps the record from the one it
 *   knows, as api/cluster_spaces_auth.c does: at an epoch above its record it publishes the
 *   first record of its epoch (same voters, itself primary); else it moves the record
 *   toward the scenario's wanted holders with mn_spaces_record_next (a copy the core
 *   reported caught up in this epoch counts as a replica), and makes a voter change only
 *   once its current record is held by a majority of its voters, as their frames say. A
 *   primary the wanted set leaves out hands its role to a wanted voter first. */
#include <stdio.h>
#include <string.h>

#include "mnemo/assert.h"
#include "repl_sim_internal.h"

#define RECORD_DELAY_US 300000
#define HANDOVER_EVERY_US 500000

static int rec_find(const mn_spaces_record_t *r, const char *node)
{
    for (int i = 0; i < r->n_holders; i++)
        if (strcmp(r->holders[i].node, node) == 0) return i;
    return -1;
}

static bool rec_voter(const mn_spaces_record_t *r, const char *node)
{
    int i = rec_find(r, node);
    return i >= 0 && r->holders[i].role != MN_SPACES_CATCHING_UP;
}

static void holder_set(mn_spaces_holder_t *hd, const char *node, mn_spaces_role_t role)
{
    memset(hd, 0, sizeof *hd);
    snprintf(hd->node, sizeof hd->node, "%s", node);
    hd->role = (uint8_t)role;
}

void mn__simrec_init(mn_simrepl_t *h, int voters)
{
    mn_spaces_record_t r;
    memset(&r, 0, sizeof r);
    r.epoch = r.version = 1;
    for (int i = 0; i < voters; i++)
        holder_set(&r.holders[r.n_holders++], h->nodes[i].id,
                   i == 0 ? MN_SPACES_PRIMARY : MN_SPACES_REPLICA);
    mn_assert(mn_spaces_record_check(&r, NULL) == MN_OK);
    h->records = true;
    h->rec = r;
    h->n_want = voters;
    for (int i = 0; i < h->n; i++) {
        h->nodes[i].known = r;
        h->nodes[i].rec_due_us = INT64_MAX;
        h->want[i] = i;
    }
}

void mn__simrec_want(mn_simrepl_t *h, const int *nodes, int n)
{
    mn_assert(n > 0 && n <= h->n);
    memcpy(h->want, nodes, (size_t)n * sizeof *nodes);
    h->n_want = n;
    char s[8 * MN__SIMREPL_NODES_MAX] = "";
    for (int i = 0, at = 0; i < n && at < (int)sizeof s - 8; i++)
        at += snprintf(s + at, sizeof s - (size_t)at, " n%d", nodes[i]);
    mn_simnet_trace_note(h->net, "wanted holders:%s", s);
}

bool mn__simrec_settled(const mn_simrepl_t *h)
{
    if (h->rec.n_holders != h->n_want) return false;
    for (int i = 0; i < h->n_want; i++)
        if (!rec_voter(&h->rec, h->nodes[h->want[i]].id)) return false;
    return true;
}

bool mn__simrec_lists(const mn_simrepl_t *h, int node)
{
    return !h->records || rec_find(&h->rec, h->nodes[node].id) >= 0;
}

/* ---- a record reaches a node's core ---- */

static size_t core_holders(const mn_spaces_record_t *r, mn_spaces_repl_holder_t *out)
{
    for (int i = 0; i < r->n_holders; i++)
        out[i] = (mn_spaces_repl_holder_t){r->holders[i].node,
                                           r->holders[i].role != MN_SPACES_CATCHING_UP};
    return r->n_holders;
}

static void drop_copy(mn__rs_node *nd)
{
    nd->open = false;
    nd->disk.n = 0;
    nd->disk.trimmed = 0;
    nd->snapshot_at_us = INT64_MAX;
}

/* Gives nd's running core the record it knows (open, holders, record; or close). */
static void apply_known(mn_simrepl_t *h, mn__rs_node *nd, int64_t now_us)
{
    const mn_spaces_record_t *r = &nd->known;
    mn_spaces_repl_holder_t hs[MN_SPACES_HOLDERS_MAX];
    size_t n = core_holders(r, hs);
    if (rec_find(r, nd->id) < 0) {
        if (!nd->open) return;
        mn_err rc = mn_spaces_repl_close(nd->core, MN__SIMREPL_SPACE, NULL);
        if (rc == MN_ERR_BUSY) return; /* it leads: the authority hands over, then again */
        mn_assert(rc == MN_OK);
        drop_copy(nd);
        h->res->copies_dropped++;
        mn_simnet_trace_note(h->net, "n%d drops its copy (record %llu.%llu)", nd->idx,
                             (unsigned long long)r->epoch, (unsigned long long)r->version);
        return;
    }
    if (!nd->open) {
        mn_assert(mn_spaces_repl_open(nd->core, now_us, MN__SIMREPL_SPACE, hs, n,
                                      nd->disk.has_d ? &nd->disk.d : NULL, nd->disk.n,
                                      NULL) == MN_OK);
        nd->open = true;
        mn_simnet_trace_note(h->net, "n%d opens its copy at lsn %zu (record %llu.%llu)", nd->idx,
                             nd->disk.n, (unsigned long long)r->epoch,
                             (unsigned long long)r->version);
        for (int i = 0; i < h->n; i++)
            if (!nd->view_alive[i]) mn_spaces_repl_member(nd->core, now_us, h->nodes[i].id, false);
    } else {
        mn_assert(mn_spaces_repl_set_holders(nd->core, now_us, MN__SIMREPL_SPACE, hs, n, NULL) ==
                  MN_OK);
    }
    mn_assert(mn_spaces_repl_set_record(nd->core, MN__SIMREPL_SPACE, r->epoch, r->version, NULL) ==
              MN_OK);
    mn_simnet_wake(h->net, nd->idx);
}

void mn__simrec_started(mn_simrepl_t *h, mn__rs_node *nd, int64_t now_us)
{
    nd->open = false;
    nd->rec_due_us = INT64_MAX;
    if (rec_find(&nd->known, nd->id) < 0) {
        /* left the holders while down: its copy goes, after handing back what it led that
         * no majority had (as the server does: api/cluster_repl_drop.c) */
        if (nd->disk.has_d)
            mn_spaces_repl_hand_back(nd->core, MN__SIMREPL_SPACE, &nd->disk.d, nd->disk.n);
        drop_copy(nd);
        return;
    }
    apply_known(h, nd, now_us);
}

/* ---- the catalog's spread ---- */

static bool can_learn(const mn_simrepl_t *h, int k)
{
    for (int j = 0; j < h->n; j++)
        if (j != k && h->nodes[j].core && mn_spaces_record_cmp(&h->nodes[j].known, &h->rec) == 0 &&
            !mn_simnet_cut(h->net, j, k) && !mn_simnet_cut(h->net, k, j))
            return true;
    return false;
}

static void spread(mn_simrepl_t *h, int64_t now_us)
{
    for (int k = 0; k < h->n; k++) {
        mn__rs_node *nd = &h->nodes[k];
        if (!nd->core || mn_spaces_record_cmp(&nd->known, &h->rec) >= 0) {
            nd->rec_due_us = INT64_MAX;
            continue;
        }
        if (nd->rec_due_us == INT64_MAX) {
            if (can_learn(h, k))
                nd->rec_due_us =
                    now_us + (int64_t)mn_prng_below(mn_simnet_prng(h->net), RECORD_DELAY_US);
            continue;
        }
        if (nd->rec_due_us > now_us) continue;
        nd->rec_due_us = INT64_MAX;
        if (!can_learn(h, k)) continue;
        nd->known = h->rec;
        apply_known(h, nd, now_us);
    }
}

/* ---- the authority ---- */

static void publish(mn_simrepl_t *h, mn__rs_node *nd, const mn_spaces_record_t *r,
                    bool voter_change, int64_t now_us)
{
    mn_assert(mn_spaces_record_check(r, NULL) == MN_OK);
    nd->known = *r;
    if (mn_spaces_record_cmp(r, &h->rec) > 0) h->rec = *r;
    h->res->records++;
    if (voter_change) h->res->voter_changes++;
    /* a caught-up report counts until the copy is a voter or gone (as the server's driver
     * prunes them): a copy dropped and added again in one epoch catches up again */
    for (int k = 0; k < h->n; k++)
        if (rec_find(r, h->nodes[k].id) < 0 || rec_voter(r, h->nodes[k].id)) h->caught_epoch[k] = 0;
    mn_simnet_trace_note(h->net, "n%d publishes record %llu.%llu (%d holders, %d voters)", nd->idx,
                         (unsigned long long)r->epoch, (unsigned long long)r->version, r->n_holders,
                         mn_spaces_record_voters(r));
    apply_known(h, nd, now_us);
}

/* Is nd's record held by a majority of its voters, as their frames to nd's core say? */
static bool held_by_majority(const mn__rs_node *nd, const mn_spaces_repl_status_t *st)
{
    const mn_spaces_record_t *r = &nd->known;
    int voters = 0, held = 0;
    for (int i = 0; i < r->n_holders; i++) {
        if (r->holders[i].role == MN_SPACES_CATCHING_UP) continue;
        voters++;
        if (strcmp(r->holders[i].node, nd->id) == 0) {
            held++;
            continue;
        }
        for (size_t k = 0; k < st->n_peers; k++) {
            const mn_spaces_repl_peer_status_t *p = &st->peers[k];
            if (strcmp(p->node, r->holders[i].node) == 0 && p->rec_said &&
                (p->rec_epoch > r->epoch ||
                 (p->rec_epoch == r->epoch && p->rec_version >= r->version)))
                held++;
        }
    }
    return 2 * held > voters;
}

static int node_index(const mn_simrepl_t *h, const char *id)
{
    for (int k = 0; k < h->n; k++)
        if (strcmp(h->nodes[k].id, id) == 0) return k;
    return -1;
}

static bool wanted(const mn_simrepl_t *h, int node)
{
    for (int i = 0; i < h->n_want; i++)
        if (h->want[i] == node) return true;
    return false;
}

/* A wanted voter of nd's record that nd sees alive, to hand the role to (-1: none). */
static int handover_target(const mn_simrepl_t *h, const mn__rs_node *nd)
{
    for (int i = 0; i < h->n_want; i++) {
        int k = h->want[i];
        if (k != nd->idx && nd->view_alive[k] && rec_voter(&nd->known, h->nodes[k].id)) return k;
    }
    return -1;
}

/* The entry the primary moves its record toward, as placement's step would: the wanted
 * nodes, itself first; a voter no longer wanted stays until as many wanted copies are full
 * (voters, or caught up in this epoch) as are wanted, so a move never drops the space below
 * its factor. */
static void want_entry(const mn_simrepl_t *h, const mn__rs_node *nd, uint64_t epoch,
                       mn_spaces_entry_t *e)
{
    memset(e, 0, sizeof *e);
    holder_set(&e->holders[e->n_holders++], nd->id, MN_SPACES_PRIMARY);
    int full = 1;
    for (int i = 0; i < h->n_want && e->n_holders < MN_SPACES_HOLDERS_MAX; i++) {
        int k = h->want[i];
        if (k == nd->idx) continue;
        bool is_full = rec_voter(&nd->known, h->nodes[k].id) || h->caught_epoch[k] == epoch;
        full += is_full;
        holder_set(&e->holders[e->n_holders++], h->nodes[k].id,
                   is_full ? MN_SPACES_REPLICA : MN_SPACES_CATCHING_UP);
    }
    if (full >= h->n_want) return;
    const mn_spaces_record_t *k = &nd->known;
    for (int i = 1; i < k->n_holders && e->n_holders < MN_SPACES_HOLDERS_MAX; i++)
        if (k->holders[i].role != MN_SPACES_CATCHING_UP &&
            !wanted(h, node_index(h, k->holders[i].node)))
            holder_set(&e->holders[e->n_holders++], k->holders[i].node, MN_SPACES_REPLICA);
}

static void lead(mn_simrepl_t *h, mn__rs_node *nd, const mn_spaces_repl_status_t *st,
                 int64_t now_us)
{
    const mn_spaces_record_t *k = &nd->known;
    if (st->epoch > k->epoch) {
        /* its first record: the voters it was elected among, itself primary */
        int at = rec_find(k, nd->id);
        if (at < 0) return;
        mn_spaces_record_t r = *k;
        r.epoch = st->epoch;
        r.version = 1;
        mn_spaces_holder_t self = r.holders[at];
        memmove(&r.holders[1], &r.holders[0], (size_t)at * sizeof r.holders[0]);
        r.holders[0] = self;
        r.holders[0].role = MN_SPACES_PRIMARY;
        if (at > 0) r.holders[1].role = MN_SPACES_REPLICA; /* the old primary */
        publish(h, nd, &r, false, now_us);
        return;
    }
    if (st->epoch != k->epoch || strcmp(k->holders[0].node, nd->id) != 0) return;
    if (!wanted(h, nd->idx)) {
        int to = handover_target(h, nd);
        if (to >= 0 && now_us - nd->handover_at_us >= HANDOVER_EVERY_US) {
            nd->handover_at_us = now_us;
            mn__simrepl_handover(h, nd->idx, to);
        }
        return;
    }
    mn_spaces_entry_t want;
    want_entry(h, nd, st->epoch, &want);
    mn_spaces_record_t next;
    bool voter_change = false;
    if (!mn_spaces_record_next(k, &want, &next, &voter_change)) return;
    if (voter_change && !held_by_majority(nd, st)) return;
    publish(h, nd, &next, voter_change, now_us);
}

void mn__simrec_caught_up(mn_simrepl_t *h, const mn_spaces_repl_event_t *ev)
{
    int k = node_index(h, ev->node);
    if (k < 0 || ev->epoch <= h->caught_epoch[k]) return;
    h->caught_epoch[k] = ev->epoch;
    mn_simnet_trace_note(h->net, "n%d caught up in epoch %llu at lsn %llu", k,
                         (unsigned long long)ev->epoch, (unsigned long long)ev->lsn);
}

void mn__simrec_step(mn_simrepl_t *h, int64_t now_us)
{
    if (!h->records) return;
    for (int i = 0; i < h->n; i++) {
        mn__rs_node *nd = &h->nodes[i];
        if (!nd->core) continue;
        if (nd->open && rec_find(&nd->known, nd->id) < 0) apply_known(h, nd, now_us); /* close */
        mn_spaces_repl_status_t st;
        if (!nd->open || mn_spaces_repl_status(nd->core, now_us, MN__SIMREPL_SPACE, &st) != MN_OK ||
            st.role != MN_SPACES_REPL_PRIMARY)
            continue;
        lead(h, nd, &st, now_us);
    }
    spread(h, now_us);
}
