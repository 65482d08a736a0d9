/* The primary's side of replication: appends, batches, acknowledgements,
 * fetches, write levels, lag and the lease.
 *
 * Shipping is go-back-N per replica: entries from `next` are read from the
 * local log (the read callback), packed into a batch of at most
 * batch_max_bytes (and window_entries unacknowledged), and sent; an ack moves
 * `match`; no progress for retry_us rewinds `next` to match + 1. A batch
 * leaves when it is full or batch_delay_us after its first append. An idle
 * primary sends an empty append every heartbeat_us, which tells followers who
 * leads and keeps their acks (the lease) coming.
 *
 * A fetch (a follower reconciling, or one that saw a gap) names the
 * follower's last entry (epoch, lsn). If this log has the same epoch at that
 * lsn, the logs agree up to it (one primary per epoch writes each (epoch,
 * lsn)), and shipping resumes there, the first batch flagged "checked". If
 * not, the answer is the fork point: the end of the newest epoch <= the
 * follower's in this log (Kafka's OffsetsForLeaderEpoch); if this log no
 * longer holds what the follower needs, "snapshot needed".
 *
 * Levels: one = the local log's end; quorum = the lsn a majority of voters
 * (this node included) acknowledged; all = the lsn every holder did. */
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"
#include "repl_internal.h"

/* A primary persists how far a majority acknowledged its epoch at least this often (in
 * entries): a deposed copy closed after a crash hands back no more than this again. */
#define LED_SAVE_EVERY 4096u

static void update_levels(mn_spaces_repl_t *r, mn__repl_space *s)
{
    uint64_t m[MN_SPACES_HOLDERS_MAX + 1];
    size_t nv = 0;
    uint64_t all = s->last_lsn;
    if (s->self_voter) m[nv++] = s->last_lsn;
    for (size_t i = 0; i < s->n_peers; i++) {
        if (s->peers[i].voter) m[nv++] = s->peers[i].match;
        if (s->peers[i].match < all) all = s->peers[i].match;
    }
    /* insertion sort, descending: at most 9 values */
    for (size_t i = 1; i < nv; i++)
        for (size_t j = i; j > 0 && m[j] > m[j - 1]; j--) {
            uint64_t t = m[j];
            m[j] = m[j - 1];
            m[j - 1] = t;
        }
    uint64_t quorum = nv ? m[nv / 2] : 0; /* the (nv/2 + 1)-th largest */
    mn_assert(quorum <= s->last_lsn && all <= quorum);
    if (quorum == s->quorum_lsn && all == s->all_lsn) return;
    s->quorum_lsn = quorum;
    s->all_lsn = all;
    if (s->d.led_epoch == s->d.epoch && quorum > s->d.led_acked) {
        s->d.led_acked = quorum; /* in the next persist; at once every LED_SAVE_EVERY */
        if (quorum - s->led_saved >= LED_SAVE_EVERY) {
            s->led_saved = quorum;
            mn__repl_persist(r, s);
        }
    }
    mn__repl_event(r, s, MN_SPACES_REPL_PROGRESS, r->self, s->d.epoch, quorum);
}

void mn__repl_primary_start(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us,
                            bool all_in_contact)
{
    s->role = MN_SPACES_REPL_PRIMARY;
    strcpy(s->primary, r->self);
    s->led_from = s->last_lsn + 1;
    /* what a close hands back should this node be deposed and dropped unreconciled */
    s->d.led_epoch = s->d.epoch;
    s->d.led_acked = s->led_saved = s->last_lsn;
    mn__repl_persist(r, s);
    for (size_t i = 0; i < s->n_peers; i++) {
        mn__repl_peer *p = &s->peers[i];
        p->match = 0;
        p->next = s->last_lsn + 1;
        p->sent_us = INT64_MIN / 2;
        p->ack_us = all_in_contact || p->granted ? now_us : INT64_MIN / 2;
        p->progress_us = now_us;
        p->checked = p->snapshot = p->caught_up = p->synced = false;
        p->round_lsn = 0;
    }
    for (size_t i = 0; i < MN__REPL_RING; i++)
        s->ring_us[i] = now_us;
    s->quorum_lsn = s->all_lsn = 0;
    s->handover_to[0] = 0;
    s->pending_bytes = 0;
    s->batch_due_us = now_us;
    mn__repl_elect_stop(s);
    update_levels(r, s);
    mn__repl_event(r, s, MN_SPACES_REPL_PROMOTED, r->self, s->d.epoch, s->last_lsn);
}

bool mn__repl_lease_ok(const mn_spaces_repl_t *r, const mn__repl_space *s, int64_t now_us)
{
    size_t nv = mn__repl_voters(s), in_contact = s->self_voter ? 1 : 0;
    for (size_t i = 0; i < s->n_peers; i++)
        in_contact += s->peers[i].voter && s->peers[i].ack_us >= now_us - r->cfg.lease_us;
    return in_contact >= nv / 2 + 1;
}

int64_t mn__repl_lease_until(const mn_spaces_repl_t *r, const mn__repl_space *s)
{
    /* the lease holds while a majority acknowledged within lease_us: until the majority-th
     * most recent acknowledgement (this node's own counting as now, forever) ages out */
    int64_t t[MN_SPACES_HOLDERS_MAX + 1];
    size_t k = 0, nv = mn__repl_voters(s);
    if (s->self_voter) t[k++] = INT64_MAX - r->cfg.lease_us - 1;
    for (size_t i = 0; i < s->n_peers && k < MN_SPACES_HOLDERS_MAX + 1; i++)
        if (s->peers[i].voter) t[k++] = s->peers[i].ack_us;
    size_t need = nv / 2 + 1;
    if (k < need) return INT64_MIN;
    for (size_t i = 0; i < need; i++) /* selection: t[0..need) the largest, in order */
        for (size_t j = i + 1; j < k; j++)
            if (t[j] > t[i]) {
                int64_t x = t[i];
                t[i] = t[j];
                t[j] = x;
            }
    return t[need - 1] + r->cfg.lease_us + 1; /* lease_ok: an ack at most lease_us old */
}

bool mn__repl_taking_writes(const mn_spaces_repl_t *r, const mn__repl_space *s, int64_t now_us)
{
    return s->role == MN_SPACES_REPL_PRIMARY && mn__repl_lease_ok(r, s, now_us) &&
           !(s->handover_to[0] && now_us < s->handover_until_us);
}

int64_t mn__repl_lag_ms(const mn__repl_space *s, const mn__repl_peer *p, int64_t now_us)
{
    if (p->match >= s->last_lsn) return 0;
    uint64_t lsn = p->match + 1;
    if (s->last_lsn - lsn >= MN__REPL_RING) lsn = s->last_lsn - MN__REPL_RING + 1;
    int64_t t = s->ring_us[lsn % MN__REPL_RING];
    return now_us > t ? (now_us - t) / 1000 : 0;
}

/* ---- shipping ---- */

static bool scratch_reserve(mn_spaces_repl_t *r, size_t n)
{
    if (n <= r->scratch_cap) return true;
    size_t cap = r->scratch_cap ? r->scratch_cap : 4096;
    while (cap < n)
        cap *= 2;
    uint8_t *ns = realloc(r->scratch, cap);
    if (!ns) return false;
    r->scratch = ns;
    r->scratch_cap = cap;
    return true;
}

static void send_snapshot_needed(mn_spaces_repl_t *r, mn__repl_space *s, mn__repl_peer *p,
                                 uint64_t lsn)
{
    mn_wire_repl_frame_t f = mn__repl_frame(r, s, MN_WIRE_REPL_SNAPSHOT);
    f.lsn = lsn;
    p->snapshot = true;
    r->stats.snapshots++;
    mn__repl_send(r, s, p->node, &f);
}

/* Reads the batch for p into r->tx_entries (data in r->scratch); returns the
 * count, or SIZE_MAX when the first entry is no longer held. */
static size_t collect(mn_spaces_repl_t *r, mn__repl_space *s, mn__repl_peer *p)
{
    size_t n = 0, used = 0;
    size_t offs[MN_WIRE_REPL_MAX_ENTRIES];
    for (uint64_t lsn = p->next; lsn <= s->last_lsn && n < MN_WIRE_REPL_MAX_ENTRIES; lsn++) {
        if (used >= r->cfg.batch_max_bytes || lsn - p->match > r->cfg.window_entries) break;
        uint64_t epoch;
        const uint8_t *data;
        size_t len;
        if (r->cb.read(r->cb.user, s->name, lsn, &epoch, &data, &len) != MN_OK)
            return n == 0 ? SIZE_MAX : n;
        if (!scratch_reserve(r, used + len)) break;
        memcpy(r->scratch + used, data, len);
        offs[n] = used;
        r->tx_entries[n] = (mn_wire_repl_entry_t){
            epoch, lsn, mn_wire_repl_entry_crc(s->name, s->name_len, epoch, lsn, data, len), NULL,
            len};
        used += len;
        n++;
    }
    for (size_t i = 0; i < n; i++)
        r->tx_entries[i].data = r->scratch + offs[i];
    return n;
}

static void send_append(mn_spaces_repl_t *r, mn__repl_space *s, mn__repl_peer *p, int64_t now_us,
                        size_t n)
{
    mn_wire_repl_frame_t f = mn__repl_frame(r, s, MN_WIRE_REPL_APPEND);
    f.lsn = s->last_lsn;
    f.flags = p->checked ? MN_WIRE_REPL_FLAG_CHECKED : 0;
    f.entries = n ? r->tx_entries : NULL;
    f.n_entries = n;
    f.echo_us = now_us > 0 ? now_us : 1; /* 0 says "none" */
    mn__repl_send(r, s, p->node, &f);
    p->checked = false;
    p->sent_us = now_us;
    if (n) p->next = r->tx_entries[n - 1].lsn + 1;
    r->stats.entries_shipped += n;
}

/* Sends p what it lacks (an empty append too when heartbeat). A replica
 * that needs a snapshot gets heartbeats only, until it fetches again. */
static void ship_to(mn_spaces_repl_t *r, mn__repl_space *s, mn__repl_peer *p, int64_t now_us,
                    bool heartbeat)
{
    if (p->snapshot) {
        if (heartbeat) send_append(r, s, p, now_us, 0);
        return;
    }
    size_t n = collect(r, s, p);
    if (n == SIZE_MAX) {
        send_snapshot_needed(r, s, p, p->next);
        p->sent_us = now_us;
        return;
    }
    if (n == 0 && !heartbeat && !p->checked) return;
    send_append(r, s, p, now_us, n);
}

static void ship_all(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us)
{
    for (size_t i = 0; i < s->n_peers; i++)
        ship_to(r, s, &s->peers[i], now_us, false);
    s->pending_bytes = 0;
    s->batch_due_us = INT64_MAX;
}

mn_err mn_spaces_repl_append(mn_spaces_repl_t *r, int64_t now_us, const char *space, uint64_t lsn,
                             const uint8_t *data, size_t len, mn_error *err)
{
    (void)data;
    mn__repl_space *s = space ? mn__repl_space_of(r, space, strlen(space)) : NULL;
    if (!s) return mn_error_set(err, MN_ERR_NOT_FOUND, "space is not open");
    /* no lease check here: the entry is durable in the local log already, and one left out
     * of the core's log could never be handed back past a fork (docs/replication.md,
     * "Lease"); the lease gates writes before they are taken (mn_spaces_repl_lease_until) */
    if (s->role != MN_SPACES_REPL_PRIMARY || (s->handover_to[0] && now_us < s->handover_until_us))
        return mn_error_set(err, MN_ERR_BUSY, "not the primary of '%s' (epoch %llu)", space,
                            (unsigned long long)s->d.epoch);
    if (lsn != s->last_lsn + 1)
        return mn_error_set(err, MN_ERR_INVALID, "lsn %llu does not follow %llu",
                            (unsigned long long)lsn, (unsigned long long)s->last_lsn);
    s->last_lsn = s->applied_lsn = lsn;
    s->ring_us[lsn % MN__REPL_RING] = now_us;
    s->pending_bytes += len;
    if (s->batch_due_us == INT64_MAX) s->batch_due_us = now_us + r->cfg.batch_delay_us;
    if (s->pending_bytes >= r->cfg.batch_max_bytes) ship_all(r, s, now_us);
    update_levels(r, s);
    return MN_OK;
}

/* ---- frames from followers ---- */

/* Caught up, by rounds (Raft's learner catch-up, Ongaro's thesis §4.2.1): a round asks the
 * copy for the log as it ends when the round begins; a round done within an election timeout
 * means the copy follows the stream with no backlog, and it is reported caught up. A longer
 * round begins another. Under steady writes the copy's acks always trail the log's end by
 * the entries in flight, so "has the last entry" alone could wait for a pause in the writes
 * that never comes (simnet's membership scenario found it: a move stalled 12 s). */
static void caught_up_round(mn_spaces_repl_t *r, mn__repl_space *s, mn__repl_peer *p,
                            int64_t now_us)
{
    if (p->caught_up || p->match < p->round_lsn) return;
    bool done = p->match >= s->last_lsn ||
                (p->round_lsn && now_us - p->round_us <= r->cfg.election_timeout_us);
    if (!done) {
        p->round_lsn = s->last_lsn; /* > match: the next round's goal */
        p->round_us = now_us;
        return;
    }
    p->caught_up = true;
    mn__repl_event(r, s, MN_SPACES_REPL_CAUGHT_UP, p->node, s->d.epoch, p->match);
}

void mn__repl_on_ack(mn_spaces_repl_t *r, mn__repl_space *s, mn__repl_peer *p, int64_t now_us,
                     const mn_wire_repl_frame_t *f)
{
    if (f->lsn > s->last_lsn) return; /* not from this log: ignore */
    /* the lease runs from when the append it answers was sent (echoed, this node's clock),
     * never from later than now; an older node's ack echoes nothing: its arrival then */
    int64_t at = f->echo_us > 0 && f->echo_us <= now_us ? f->echo_us : now_us;
    if (at > p->ack_us) p->ack_us = at;
    p->synced = true;
    /* only a reconciled replica acks: a "needs a snapshot" mark from a stale
     * (duplicated, reordered) fetch no longer holds */
    p->snapshot = false;
    if (f->lsn > p->match) {
        p->match = f->lsn;
        p->progress_us = now_us;
    }
    if (p->next <= p->match) p->next = p->match + 1;
    update_levels(r, s);
    caught_up_round(r, s, p, now_us);
}

void mn__repl_on_fetch(mn_spaces_repl_t *r, mn__repl_space *s, mn__repl_peer *p, int64_t now_us,
                       const mn_wire_repl_frame_t *f)
{
    uint64_t last = f->lsn ? f->lsn - 1 : 0; /* the follower's last entry */
    /* a replica that acknowledged match in this epoch keeps it (acks come
     * only once reconciled, and its log only grows from there): a fetch
     * below it is an old one, duplicated or overtaken; except a fetch from
     * nothing: its copy was dropped (a record that no longer listed it) and
     * opened again empty while a newer record listed it again. It holds none
     * of what it acknowledged: counted again from 0 (never for a level it
     * cannot back), and shipped from the start. A late duplicate of its very
     * first fetch does the same, harmlessly: its next ack restores match. */
    if (last < p->match && last > 0) {
        r->stats.stale_fetches++;
        return;
    }
    if (last < p->match) {
        p->match = 0;
        r->stats.restarted_logs++;
        update_levels(r, s);
    }
    p->snapshot = false;
    p->synced = false;
    if (last > 0 && last < s->d.base_lsn) {
        /* its log ends below where this one begins (a snapshot's base): the next entry is not
         * here, and the epoch at its end cannot be compared; a truncation point would be
         * one it is at already, and it would fetch again for good */
        send_snapshot_needed(r, s, p, last + 1);
        return;
    }
    if (last > s->last_lsn || (last > 0 && mn__repl_epoch_at(&s->d, last) != f->last_epoch)) {
        bool found;
        uint64_t fe = 0;
        uint64_t end = mn__repl_epoch_end(&s->d, s->last_lsn, f->last_epoch, &fe, &found);
        if (!found) {
            send_snapshot_needed(r, s, p, 1);
            return;
        }
        mn_wire_repl_frame_t t = mn__repl_frame(r, s, MN_WIRE_REPL_TRUNCATE);
        t.lsn = end;
        t.last_epoch = fe;
        mn__repl_send(r, s, p->node, &t);
        p->sent_us = now_us;
        return;
    }
    p->next = last + 1;
    p->checked = true;
    p->progress_us = now_us;
    ship_to(r, s, p, now_us, true);
}

/* ---- handover ---- */

mn_err mn_spaces_repl_handover(mn_spaces_repl_t *r, int64_t now_us, const char *space,
                               const char *target, mn_error *err)
{
    mn__repl_space *s = space ? mn__repl_space_of(r, space, strlen(space)) : NULL;
    if (!s) return mn_error_set(err, MN_ERR_NOT_FOUND, "space is not open");
    if (s->role != MN_SPACES_REPL_PRIMARY)
        return mn_error_set(err, MN_ERR_BUSY, "not the primary of '%s'", space);
    mn__repl_peer *p = target ? mn__repl_peer_of(s, target, strlen(target)) : NULL;
    if (!p || !p->voter)
        return mn_error_set(err, MN_ERR_INVALID, "'%s' is not a voting holder of '%s'",
                            target ? target : "", space);
    strcpy(s->handover_to, p->node);
    s->handover_until_us = now_us + 2 * r->cfg.election_timeout_us;
    s->handover_sent_us = INT64_MIN / 2;
    ship_all(r, s, now_us); /* what is pending goes now */
    return MN_OK;
}

/* While handing over: once the target has every entry, tell it (again every
 * retry_us); give up at the deadline. */
static void handover_tick(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us)
{
    if (!s->handover_to[0]) return;
    if (now_us >= s->handover_until_us) {
        s->handover_to[0] = 0;
        return;
    }
    mn__repl_peer *p = mn__repl_peer_of(s, s->handover_to, strlen(s->handover_to));
    if (!p || p->match < s->last_lsn || now_us - s->handover_sent_us < r->cfg.retry_us) return;
    mn_wire_repl_frame_t f = mn__repl_frame(r, s, MN_WIRE_REPL_HANDOVER);
    f.lsn = s->last_lsn;
    mn__repl_send(r, s, p->node, &f);
    s->handover_sent_us = now_us;
}

/* ---- timers ---- */

void mn__repl_primary_tick(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us)
{
    handover_tick(r, s, now_us);
    if (s->batch_due_us <= now_us) ship_all(r, s, now_us);
    for (size_t i = 0; i < s->n_peers; i++) {
        mn__repl_peer *p = &s->peers[i];
        if (p->synced && p->next > p->match + 1 && now_us - p->progress_us >= r->cfg.retry_us) {
            p->next = p->match + 1; /* go back: something was lost */
            p->progress_us = now_us;
            ship_to(r, s, p, now_us, true);
        } else if (now_us - p->sent_us >= r->cfg.heartbeat_us) {
            ship_to(r, s, p, now_us, true);
        }
    }
}

int64_t mn__repl_primary_deadline(const mn_spaces_repl_t *r, const mn__repl_space *s)
{
    int64_t t = s->batch_due_us;
    if (s->handover_to[0]) {
        int64_t h = s->handover_sent_us + r->cfg.retry_us;
        t = h < t ? h : t;
        t = s->handover_until_us < t ? s->handover_until_us : t;
    }
    for (size_t i = 0; i < s->n_peers; i++) {
        const mn__repl_peer *p = &s->peers[i];
        int64_t hb = p->sent_us + r->cfg.heartbeat_us;
        if (hb < t) t = hb;
        if (p->synced && p->next > p->match + 1 && p->progress_us + r->cfg.retry_us < t)
            t = p->progress_us + r->cfg.retry_us;
    }
    return t;
}
