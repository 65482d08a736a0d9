/* What the replication thread publishes for other threads: each open space's
 * status and the lsn each write level reached, under pub_mu; request threads
 * wait on pub_cv for their write's level (cl_repl_write_wait), the HTTP
 * handlers read statuses, the metrics registry gets lag and traffic.
 *
 * A space is republished when the core's calls touched it (dirty) and every
 * REFRESH_MS in full (lags grow with time). pub_cv is broadcast whenever
 * something was republished, so a waiter re-checks its level. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster_repl_internal.h"
#include "cluster_route.h"
#include "mnemo/util.h"

static int cmp_pub(const void *key, const void *elem)
{
    return strcmp(key, ((const crep_pub *)elem)->name);
}

static crep_pub *pub_find(cl_repl *r, const char *name)
{
    return r->n_pub ? bsearch(name, r->pub, r->n_pub, sizeof *r->pub, cmp_pub) : NULL;
}

/* Under pub_mu. */
static crep_pub *pub_get(cl_repl *r, const char *name)
{
    crep_pub *p = pub_find(r, name);
    if (p) return p;
    if (r->n_pub == r->cap_pub) {
        size_t cap = r->cap_pub ? r->cap_pub * 2 : 16;
        crep_pub *np = realloc(r->pub, cap * sizeof *np);
        if (!np) return NULL;
        r->pub = np;
        r->cap_pub = cap;
    }
    size_t at = 0;
    while (at < r->n_pub && strcmp(r->pub[at].name, name) < 0)
        at++;
    memmove(r->pub + at + 1, r->pub + at, (r->n_pub - at) * sizeof *r->pub);
    memset(&r->pub[at], 0, sizeof r->pub[at]);
    snprintf(r->pub[at].name, sizeof r->pub[at].name, "%s", name);
    r->n_pub++;
    return &r->pub[at];
}

/* The copy of st furthest behind as this node knows it (its own when it follows): its
 * lag in ms (-1: none known) and node. */
static int64_t worst_lag(const cl_repl *r, const mn_spaces_repl_status_t *st, int64_t now,
                         const char **node)
{
    int64_t worst = -1;
    *node = r->self;
    if (st->role == MN_SPACES_REPL_PRIMARY) {
        for (size_t k = 0; k < st->n_peers; k++)
            if (st->peers[k].lag_ms > worst) {
                worst = st->peers[k].lag_ms;
                *node = st->peers[k].node;
            }
    } else if (st->fresh_us > 0) {
        worst = now > st->fresh_us ? (now - st->fresh_us) / 1000 : 0;
    }
    return worst;
}

/* Logs sp's copies starting or ceasing to lag (under pub_mu). A copy starts lagging past
 * CL_LAG_WARN_MS and stops under half of it (a lag hovering at the bound does not flap),
 * and a space's start is logged once per CREP_LAG_LOG_US at most (its end only when its
 * start was): a loaded node's log stays readable. */
static void note_lag(cl_repl *r, crep_space *sp, const mn_spaces_repl_status_t *st, int64_t now)
{
    const char *node;
    int64_t lag = worst_lag(r, st, now, &node);
    bool lagging = sp->lagging ? lag >= CL_LAG_WARN_MS / 2 : lag > CL_LAG_WARN_MS;
    if (lagging == sp->lagging) return;
    sp->lagging = lagging;
    if (lagging) {
        sp->lag_logged = now - sp->lag_warn_us >= CREP_LAG_LOG_US;
        if (!sp->lag_logged) return;
        sp->lag_warn_us = now;
        mn_log_warn("repl: %s: %s's copy is %lld ms behind its primary (over %d ms: its recall "
                    "answers say stale_replica; over %d ms it serves no reads)",
                    sp->name, node, (long long)lag, CL_LAG_WARN_MS, CL_ROUTE_OUT_OF_ROTATION_MS);
    } else if (sp->lag_logged) {
        mn_log_info("repl: %s: every copy this node knows of is within %d ms of its primary "
                    "again",
                    sp->name, CL_LAG_WARN_MS / 2);
    }
}

/* A follower that has not reconciled its log with its primary for CREP_UNSYNCED_US takes
 * no entries: logged (once per CREP_LAG_LOG_US) with what its core knows, so an operator,
 * or a chaos run's logs, can tell a copy stuck from one still catching up. */
#define CREP_UNSYNCED_US (10 * 1000000LL)
static void note_unsynced(crep_space *sp, const mn_spaces_repl_status_t *st, int64_t now)
{
    if (st->role == MN_SPACES_REPL_PRIMARY || st->reconciled) {
        sp->unsynced_us = 0;
        return;
    }
    if (!sp->unsynced_us) sp->unsynced_us = now;
    if (now - sp->unsynced_us < CREP_UNSYNCED_US || now - sp->unsynced_warn_us < CREP_LAG_LOG_US)
        return;
    sp->unsynced_warn_us = now;
    /* a primary this core does not count as a holder has its frames dropped here */
    bool counted = !st->primary[0];
    for (size_t i = 0; i < st->n_peers && !counted; i++)
        counted = strcmp(st->peers[i].node, st->primary) == 0;
    mn_log_warn("repl: %s: this copy has taken no entries for %lld s: not reconciled with its "
                "primary (%s, epoch %llu; last heard %lld ms ago%s), its log at lsn %llu "
                "(from lsn %llu), %s",
                sp->name, (long long)((now - sp->unsynced_us) / 1000000),
                st->primary[0] ? st->primary : "not known", (unsigned long long)st->epoch,
                (long long)(st->heard_us ? (now - st->heard_us) / 1000 : -1),
                counted ? "" : "; not among the holders this copy counts: its frames are dropped",
                (unsigned long long)st->last_lsn, (unsigned long long)st->base_lsn,
                st->snapshot_needed ? "waiting for a snapshot" : "fetching");
}

void mn__crep_publish(cl_repl *r, bool all)
{
    if (!all && !r->dirty) return;
    r->dirty = false;
    int64_t now = mn__crep_now_us();
    pthread_mutex_lock(&r->pub_mu);
    for (size_t i = 0; i < r->n_spaces; i++) {
        crep_space *sp = r->spaces[i];
        if (!all && !sp->dirty) continue;
        sp->dirty = false;
        sp->lease_due = true;
        crep_pub *p = pub_get(r, sp->name);
        if (!p || mn_spaces_repl_status(r->core, now, sp->name, &p->st) != MN_OK) continue;
        for (int l = 0; l < 3; l++)
            p->reached[l] = mn_spaces_repl_reached(r->core, sp->name, (mn_spaces_level_t)l);
        note_lag(r, sp, &p->st, now);
        note_unsynced(sp, &p->st, now);
    }
    pthread_cond_broadcast(&r->pub_cv);
    pthread_mutex_unlock(&r->pub_mu);
    for (size_t i = 0; i < r->n_spaces; i++) /* outside pub_mu: the engine has locks */
        if (r->spaces[i]->lease_due) mn__crep_lease(r, r->spaces[i]);
}

void mn__crep_pub_forget(cl_repl *r, const char *name)
{
    pthread_mutex_lock(&r->pub_mu);
    crep_pub *p = pub_find(r, name);
    if (p) {
        size_t at = (size_t)(p - r->pub);
        memmove(p, p + 1, (r->n_pub - at - 1) * sizeof *p);
        r->n_pub--;
    }
    /* and the copies its core reported caught up, not yet taken: they were of this state
     * (a space created again under the name must not count them) */
    size_t k = 0;
    for (size_t i = 0; i < r->n_caught; i++)
        if (strcmp(r->caught[i].space, name) != 0) r->caught[k++] = r->caught[i];
    r->n_caught = k;
    pthread_mutex_unlock(&r->pub_mu);
}

void mn__crep_pub_free(cl_repl *r)
{
    free(r->pub);
    r->pub = NULL;
    r->n_pub = r->cap_pub = 0;
}

bool cl_repl_status(cl_repl *r, const char *space, mn_spaces_repl_status_t *out)
{
    pthread_mutex_lock(&r->pub_mu);
    const crep_pub *p = pub_find(r, space);
    if (p) *out = p->st;
    pthread_mutex_unlock(&r->pub_mu);
    return p != NULL;
}

int64_t cl_repl_lag_ms(cl_repl *r, const char *space, const char *node)
{
    int64_t lag = -1;
    pthread_mutex_lock(&r->pub_mu);
    const crep_pub *p = pub_find(r, space);
    if (p && p->st.role != MN_SPACES_REPL_PRIMARY && p->st.fresh_us > 0 &&
        strcmp(node, r->self) == 0) {
        /* this node's own copy: it follows, and knows when it last held all its primary had */
        int64_t now = mn__crep_now_us();
        lag = now > p->st.fresh_us ? (now - p->st.fresh_us) / 1000 : 0;
    }
    if (p && p->st.role == MN_SPACES_REPL_PRIMARY) {
        if (strcmp(node, r->self) == 0) lag = 0;
        for (size_t i = 0; i < p->st.n_peers; i++)
            if (strcmp(p->st.peers[i].node, node) == 0) lag = p->st.peers[i].lag_ms;
    }
    pthread_mutex_unlock(&r->pub_mu);
    return lag;
}

void cl_repl_leaders(cl_repl *r, cl_repl_known_fn known, cl_repl_leader_fn fn, void *arg)
{
    pthread_mutex_lock(&r->pub_mu);
    for (size_t i = 0; i < r->n_pub; i++) {
        const crep_pub *p = &r->pub[i];
        if (p->st.primary[0] && p->st.epoch > known(arg, p->name, p->st.incarnation))
            fn(arg, p->name, p->st.primary, p->st.epoch);
    }
    pthread_mutex_unlock(&r->pub_mu);
}

size_t cl_repl_leading(cl_repl *r)
{
    size_t n = 0;
    pthread_mutex_lock(&r->pub_mu);
    for (size_t i = 0; i < r->n_pub; i++) {
        const mn_spaces_repl_status_t *st = &r->pub[i].st;
        bool other = false;
        for (size_t k = 0; k < st->n_peers && !other; k++)
            other = st->peers[k].voter && st->peers[k].alive;
        n += st->role == MN_SPACES_REPL_PRIMARY && other;
    }
    pthread_mutex_unlock(&r->pub_mu);
    return n;
}

/* ---- write levels ---- */

/* Copies of lsn among the holders counted for level (under pub_mu), and how many count. */
static void copies(const crep_pub *p, uint64_t lsn, int level, int *have, int *of)
{
    *have = p && p->st.last_lsn >= lsn;
    *of = 1;
    for (size_t i = 0; p && i < p->st.n_peers; i++) {
        const mn_spaces_repl_peer_status_t *ps = &p->st.peers[i];
        if (!ps->voter && level != MN_SPACES_ALL) continue;
        (*of)++;
        *have += ps->applied_lsn >= lsn;
    }
}

mn_err cl_repl_write_wait(cl_repl *r, const char *space, uint64_t lsn, uint64_t epoch, int level,
                          int64_t timeout_ms, mn_error *err)
{
    if (level < 0) level = r->default_level;  /* the request did not say */
    if (level <= MN_SPACES_ONE) return MN_OK; /* the engine answered after its fsync */
    if (level > MN_SPACES_ALL) level = MN_SPACES_ALL;
    if (timeout_ms <= 0) timeout_ms = r->write_timeout_ms;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&r->pub_mu);
    const crep_pub *p;
    int rc = 0;
    while (!((p = pub_find(r, space)) && p->st.role == MN_SPACES_REPL_PRIMARY &&
             p->reached[level] >= lsn) &&
           rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&r->pub_cv, &r->pub_mu, &dl);
    bool ok = p && p->st.role == MN_SPACES_REPL_PRIMARY && p->reached[level] >= lsn;
    /* reached counts copies of this log up to lsn: is the entry at lsn still the write's? */
    bool replaced = ok && mn_spaces_repl_status_replaced(&p->st, lsn, epoch);
    uint64_t now_epoch = replaced ? mn_spaces_repl_status_epoch_at(&p->st, lsn) : epoch;
    int have = 0, of = 0;
    if (!ok) copies(p, lsn, level, &have, &of);
    pthread_mutex_unlock(&r->pub_mu);
    if (replaced) {
        mn_log_warn("repl: %s: a write at lsn %llu (epoch %llu) was replaced before it was "
                    "acknowledged: 503 to its client",
                    space, (unsigned long long)lsn, (unsigned long long)epoch);
        return mn_error_set(err, MN_ERR_UNAVAILABLE,
                            "space %s: the write was undone by a change of primary (lsn %llu "
                            "is epoch %llu now, not %llu); retry it",
                            space, (unsigned long long)lsn, (unsigned long long)now_epoch,
                            (unsigned long long)epoch);
    }
    if (ok) return MN_OK;
    return mn_error_set(err, MN_ERR_UNAVAILABLE,
                        "space %s: the write reached %d of %d copies within %lld ms (%s wanted)",
                        space, have, of, (long long)timeout_ms,
                        mn_spaces_level_name((mn_spaces_level_t)level));
}

/* ---- metrics ---- */

static const char *const direction_label[] = {"direction"};
static const char *const reason_label[] = {"reason"};

void mn__crep_metrics_init(cl_repl *r)
{
    mn_metrics_t *m = mn_metrics_process();
    r->m_frames = mn_metrics_counter(
        m, "mnemo_peer_frames_total",
        "Frames of the peer bus (cluster.peer_port) sent and received.", direction_label, 1);
    r->m_bytes = mn_metrics_counter(m, "mnemo_peer_bytes_total",
                                    "Bytes of the peer bus sent and received, headers included.",
                                    direction_label, 1);
    r->m_dropped = mn_metrics_counter(
        m, "mnemo_peer_dropped_frames_total",
        "Frames dropped: queue_full = a peer's send queue at its bound, no_addr = a node without "
        "a peer address, unknown_channel = no receiver here, decode = a replication frame that "
        "failed verification, unknown_space = for a space not open here, other_incarnation = "
        "of a space dropped and created again under its name.",
        reason_label, 1);
    r->m_closed = mn_metrics_counter(
        m, "mnemo_peer_closed_connections_total",
        "Peer connections closed, by cause: auth, hello, oversize, protocol, timeout, limit, io, "
        "tls (a failed TLS handshake: a plaintext peer or a certificate the CA did not sign).",
        reason_label, 1);
    r->m_events = mn_metrics_counter(
        m, "mnemo_repl_events_total",
        "Replication events: elections started, votes granted, fenced appends, gaps, bad "
        "checksums, forks healed by a snapshot (fork_refused), forked entries not re-applied, "
        "forked entries of another node re-applied here, snapshots needed, failed stores, "
        "copies moved away and dropped (copy_dropped), spaces forgotten (dropped, or created "
        "again), fetches below a replica's acknowledged position ignored as old (stale_fetch), "
        "copies not held because this node lost their state (lost_state_refused).",
        reason_label, 1);
    static const char *const transport_label[] = {"transport"};
    r->m_accepted = mn_metrics_counter(
        m, "mnemo_peer_accepted_connections_total",
        "Inbound peer connections, by how they started: tls or plain (with cluster.tls_mode "
        "accept or prefer a node takes both: plain stops rising once every peer dials TLS).",
        transport_label, 1);
    r->m_lag_entries = mn_metrics_gauge(m, "mnemo_repl_lag_entries",
                                        "Entries the most lagging replica of a space this node "
                                        "leads has not acknowledged.",
                                        NULL, 0, 1.0);
    r->m_lag_s = mn_metrics_gauge(m, "mnemo_repl_lag_seconds",
                                  "Age of the oldest entry a replica of a space this node leads "
                                  "has not acknowledged (the largest).",
                                  NULL, 0, 0.001);
    static const char *const replica_label[] = {"replica"};
    r->m_replica_lag_s = mn_metrics_gauge(
        m, "mnemo_repl_replica_lag_seconds",
        "Per copy: how far a replica is behind its primary, the largest over the spaces: on a "
        "primary, each of its replicas (as acknowledged); on a replica, its own copy (the time "
        "since it last held all its primary had). Over 1 s is a warning, over 10 s the copy "
        "serves no reads.",
        replica_label, 1, 0.001);
}

static void add(mn_metrics_family_t *f, const char *value, uint64_t now, uint64_t before)
{
    const char *v[] = {value};
    if (f && now > before) mn_metrics_add(f, v, now - before);
}

/* The series of node (r->lag_nodes, found or added; -1 when the list is full). */
static int lag_node(cl_repl *r, const char *node)
{
    for (size_t i = 0; i < r->n_lag_nodes; i++)
        if (!strcmp(r->lag_nodes[i], node)) return (int)i;
    if (r->n_lag_nodes == CREP_LAG_NODES) return -1;
    snprintf(r->lag_nodes[r->n_lag_nodes], sizeof r->lag_nodes[0], "%s", node);
    return (int)r->n_lag_nodes++;
}

static void lag_max(int64_t *lags, int at, int64_t lag)
{
    if (at >= 0 && lag > lags[at]) lags[at] = lag;
}

static void export_lag(cl_repl *r)
{
    uint64_t lag_entries = 0;
    int64_t lag_ms = 0;
    int64_t per[CREP_LAG_NODES];
    for (size_t i = 0; i < CREP_LAG_NODES; i++)
        per[i] = 0; /* a node of an earlier series that lags no more reads 0 */
    int64_t now = mn__crep_now_us();
    pthread_mutex_lock(&r->pub_mu);
    for (size_t i = 0; i < r->n_pub; i++) {
        const mn_spaces_repl_status_t *st = &r->pub[i].st;
        if (st->role != MN_SPACES_REPL_PRIMARY) {
            if (st->fresh_us > 0 && now > st->fresh_us)
                lag_max(per, lag_node(r, r->self), (now - st->fresh_us) / 1000);
            continue;
        }
        for (size_t k = 0; k < st->n_peers; k++) {
            if (st->peers[k].lag_entries > lag_entries) lag_entries = st->peers[k].lag_entries;
            if (st->peers[k].lag_ms > lag_ms) lag_ms = st->peers[k].lag_ms;
            lag_max(per, lag_node(r, st->peers[k].node), st->peers[k].lag_ms);
        }
    }
    pthread_mutex_unlock(&r->pub_mu);
    mn_metrics_set(r->m_lag_entries, NULL, lag_entries);
    mn_metrics_set(r->m_lag_s, NULL, (uint64_t)lag_ms);
    for (size_t i = 0; i < r->n_lag_nodes; i++) {
        const char *v[] = {r->lag_nodes[i]};
        mn_metrics_set(r->m_replica_lag_s, v, (uint64_t)per[i]);
    }
}

void mn__crep_metrics_export(cl_repl *r)
{
    mn_peer_stats_t ps;
    mn_peer_stats(r->bus, &ps);
    const mn_peer_stats_t *pe = &r->exported_peer;
    add(r->m_frames, "sent", ps.frames_sent, pe->frames_sent);
    add(r->m_frames, "received", ps.frames_received, pe->frames_received);
    add(r->m_bytes, "sent", ps.bytes_sent, pe->bytes_sent);
    add(r->m_bytes, "received", ps.bytes_received, pe->bytes_received);
    add(r->m_dropped, "queue_full", ps.dropped_queue_full, pe->dropped_queue_full);
    add(r->m_dropped, "no_addr", ps.dropped_no_addr, pe->dropped_no_addr);
    add(r->m_dropped, "unknown_channel", ps.dropped_unknown_channel, pe->dropped_unknown_channel);
    add(r->m_closed, "auth", ps.closed_auth, pe->closed_auth);
    add(r->m_closed, "hello", ps.closed_hello, pe->closed_hello);
    add(r->m_closed, "oversize", ps.closed_oversize, pe->closed_oversize);
    add(r->m_closed, "protocol", ps.closed_protocol, pe->closed_protocol);
    add(r->m_closed, "timeout", ps.closed_timeout, pe->closed_timeout);
    add(r->m_closed, "limit", ps.closed_limit, pe->closed_limit);
    add(r->m_closed, "io", ps.closed_io, pe->closed_io);
    add(r->m_closed, "tls", ps.closed_tls, pe->closed_tls);
    add(r->m_closed, "redial", ps.redialed, pe->redialed);
    add(r->m_accepted, "tls", ps.accepted_tls, pe->accepted_tls);
    add(r->m_accepted, "plain", ps.accepted_plain, pe->accepted_plain);
    r->exported_peer = ps;
    mn_spaces_repl_stats_t cs;
    mn_spaces_repl_stats(r->core, &cs);
    const mn_spaces_repl_stats_t *ce = &r->exported_core;
    add(r->m_dropped, "decode", cs.dropped_decode, ce->dropped_decode);
    add(r->m_dropped, "unknown_space", cs.dropped_unknown, ce->dropped_unknown);
    add(r->m_dropped, "other_incarnation", cs.dropped_incarnation, ce->dropped_incarnation);
    add(r->m_events, "election", cs.elections, ce->elections);
    add(r->m_events, "vote_granted", cs.votes_granted, ce->votes_granted);
    add(r->m_events, "vote_refused_record", cs.votes_refused_record, ce->votes_refused_record);
    add(r->m_events, "fenced", cs.fenced, ce->fenced);
    add(r->m_events, "gap", cs.gaps, ce->gaps);
    add(r->m_events, "bad_crc", cs.bad_crc, ce->bad_crc);
    add(r->m_events, "refetched", cs.unapplied, ce->unapplied);
    add(r->m_events, "log_restarted", cs.restarted_logs, ce->restarted_logs);
    add(r->m_events, "forgotten", cs.forgotten, ce->forgotten);
    add(r->m_events, "stale_fetch", cs.stale_fetches, ce->stale_fetches);
    int64_t now = mn__crep_now_us();
    if (cs.stale_fetches > r->stale_logged && now - r->stale_logged_us >= CREP_LAG_LOG_US) {
        mn_log_info("repl: %llu fetches below what their replica acknowledged ignored as old",
                    (unsigned long long)(cs.stale_fetches - r->stale_logged));
        r->stale_logged = cs.stale_fetches;
        r->stale_logged_us = now;
    }
    r->exported_core = cs;
    const crep_counts *c = &r->counts, *e = &r->exported_counts;
    add(r->m_events, "fork_refused", c->truncate_refused, e->truncate_refused);
    add(r->m_events, "lost_state_refused", c->lost_state_refused, e->lost_state_refused);
    add(r->m_events, "not_reapplied", c->reapply_dropped, e->reapply_dropped);
    add(r->m_events, "reapplied", c->reapplied, e->reapplied);
    add(r->m_events, "snapshot_needed", c->snapshot_needed, e->snapshot_needed);
    add(r->m_events, "store_failed", c->apply_failed, e->apply_failed);
    add(r->m_events, "ship_failed", c->append_failed, e->append_failed);
    add(r->m_events, "copy_dropped", c->copies_dropped, e->copies_dropped);
    r->exported_counts = *c;
    export_lag(r);
}
