/* The follower's side of replication: taking entries, gaps, forks,
 * snapshots and fencing.
 *
 * A follower trusts a primary's stream only after reconciling with it once
 * per epoch (and after every restart): it fetches with its last (epoch, lsn),
 * and takes entries again only from the "checked" append that answers the
 * fetch. Then every entry must be the next lsn and carry a good checksum;
 * anything else (a gap, a bad checksum, an epoch out of order) stops the
 * batch and fetches from the first missing lsn: nothing is ever skipped.
 *
 * A fork (this log holds entries the primary's does not: an old primary's
 * unshipped writes) is cut at the point the primary names, after handing
 * each cut entry to the reapply callback so the new primary re-applies it
 * with its ids; a store that cannot cut (or a cut below a snapshot's base)
 * needs a snapshot. Appends of an older epoch are answered "fenced", with
 * the epoch and primary this node follows.
 *
 * Invariant (checked): entries reach the store in dense lsn order. */
#include <string.h>

#include "mnemo/assert.h"
#include "repl_internal.h"

static void send_fetch(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us, bool force)
{
    if (!s->primary[0] || s->snapshot_needed) return;
    if (!force && now_us - s->fetch_us < r->cfg.retry_us) return;
    mn_wire_repl_frame_t f = mn__repl_frame(r, s, MN_WIRE_REPL_FETCH);
    f.lsn = s->last_lsn + 1;
    f.last_epoch = mn__repl_epoch_at(&s->d, s->last_lsn);
    mn__repl_send(r, s, s->primary, &f);
    s->fetch_us = now_us;
}

static void fence(mn_spaces_repl_t *r, mn__repl_space *s, const mn_wire_repl_frame_t *f)
{
    r->stats.fenced++;
    mn_wire_repl_frame_t a = mn__repl_frame(r, s, MN_WIRE_REPL_FENCED);
    a.leader = s->primary;
    a.leader_len = strlen(s->primary);
    char to[MN_SPACES_NODE_MAX + 1];
    memcpy(to, f->from, f->from_len);
    to[f->from_len] = 0;
    mn__repl_send(r, s, to, &a);
}

/* Is e the next entry, intact and in epoch order? */
static bool entry_ok(const mn__repl_space *s, const mn_wire_repl_frame_t *f,
                     const mn_wire_repl_entry_t *e)
{
    if (e->lsn != s->last_lsn + 1) return false;
    if (e->epoch > f->epoch || e->epoch < mn__repl_epoch_at(&s->d, s->last_lsn)) return false;
    return e->crc ==
           mn_wire_repl_entry_crc(s->name, s->name_len, e->epoch, e->lsn, e->data, e->len);
}

static void take_entries(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us,
                         const mn_wire_repl_frame_t *f)
{
    for (size_t i = 0; i < f->n_entries; i++) {
        const mn_wire_repl_entry_t *e = &f->entries[i];
        if (e->lsn <= s->last_lsn) continue; /* a duplicate */
        if (!entry_ok(s, f, e)) {
            if (e->lsn != s->last_lsn + 1)
                r->stats.gaps++;
            else
                r->stats.bad_crc++;
            send_fetch(r, s, now_us, true);
            return;
        }
        if (mn__repl_history_push(s, e->epoch, e->lsn)) mn__repl_persist(r, s);
        mn_assert(e->lsn == s->last_lsn + 1);
        s->last_lsn = e->lsn;
        r->cb.apply(r->cb.user, s->name, e->epoch, e->lsn, e->data, e->len);
        if (s->last_lsn != e->lsn) return; /* the store failed (unapplied): fetched again */
    }
}

/* The pairs whose lsn the store here has applied leave fresh[]; the newest sets fresh_us. */
static void fresh_applied(mn__repl_space *s)
{
    size_t k = 0;
    while (k < s->n_fresh && s->fresh[k].lsn <= s->applied_lsn)
        k++;
    if (!k) return;
    if (s->fresh[k - 1].at_us > s->fresh_us) s->fresh_us = s->fresh[k - 1].at_us;
    memmove(s->fresh, s->fresh + k, (s->n_fresh - k) * sizeof s->fresh[0]);
    s->n_fresh -= k;
}

/* An append of the primary said its log ended at lsn when heard at now_us. */
static void fresh_heard(mn__repl_space *s, uint64_t lsn, int64_t now_us)
{
    if (s->n_fresh && s->fresh[s->n_fresh - 1].lsn >= lsn) {
        /* the same end heard again (a heartbeat) is the newer fact; a lower one (a frame
         * overtaken) says nothing new */
        if (s->fresh[s->n_fresh - 1].lsn == lsn) s->fresh[s->n_fresh - 1].at_us = now_us;
    } else {
        if (s->n_fresh ==
            MN__REPL_FRESH) { /* far behind: the oldest pair goes (lag shown larger) */
            memmove(s->fresh, s->fresh + 1, (MN__REPL_FRESH - 1) * sizeof s->fresh[0]);
            s->n_fresh--;
        }
        mn_assert(!s->n_fresh || s->fresh[s->n_fresh - 1].lsn < lsn); /* lsns rising */
        s->fresh[s->n_fresh].lsn = lsn;
        s->fresh[s->n_fresh++].at_us = now_us;
    }
    mn_assert(s->n_fresh <= MN__REPL_FRESH);
    fresh_applied(s);
}

void mn__repl_fresh_reset(mn__repl_space *s)
{
    s->n_fresh = 0;
    s->fresh_us = 0;
}

void mn__repl_on_append(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us,
                        const mn_wire_repl_frame_t *f)
{
    if (f->epoch < s->d.epoch) {
        fence(r, s, f);
        return;
    }
    if (s->role == MN_SPACES_REPL_PRIMARY) return; /* another primary of this epoch: refuse */
    if (!s->primary[0]) {
        memcpy(s->primary, f->from, f->from_len);
        s->primary[f->from_len] = 0;
    }
    if (!mn__repl_same(f->from, f->from_len, s->primary)) return;
    s->heard_us = now_us;
    if (f->echo_us > s->echo_us) s->echo_us = f->echo_us;
    if (s->snapshot_needed) return;
    if (!s->reconciled) {
        bool answers = (f->flags & MN_WIRE_REPL_FLAG_CHECKED) &&
                       (f->n_entries == 0 || f->entries[0].lsn == s->last_lsn + 1);
        if (!answers) {
            send_fetch(r, s, now_us, false);
            return;
        }
        s->reconciled = true;
        if (s->d.led_epoch && s->d.epoch > s->d.led_epoch) {
            /* its log now matches a later primary's: whatever it led that no majority had
             * was cut and handed back, or is on that primary */
            s->d.led_epoch = s->d.led_acked = 0;
            mn__repl_persist(r, s);
        }
    }
    take_entries(r, s, now_us, f);
    fresh_heard(s, f->lsn, now_us);
    s->ack_due = true;
}

void mn_spaces_repl_applied(mn_spaces_repl_t *r, const char *space, uint64_t lsn)
{
    mn__repl_space *s = space ? mn__repl_space_of(r, space, strlen(space)) : NULL;
    if (!s || lsn <= s->applied_lsn || lsn > s->last_lsn) return;
    s->applied_lsn = lsn;
    s->ack_due = true;
    fresh_applied(s);
}

void mn__repl_flush_ack(mn_spaces_repl_t *r, mn__repl_space *s)
{
    if (!s->ack_due || !s->reconciled || s->role == MN_SPACES_REPL_PRIMARY || !s->primary[0])
        return;
    mn_wire_repl_frame_t f = mn__repl_frame(r, s, MN_WIRE_REPL_ACK);
    f.lsn = s->applied_lsn;
    f.echo_us = s->echo_us;
    mn__repl_send(r, s, s->primary, &f);
    s->ack_due = false;
}

/* Drops the history of entries after lsn. */
static void history_cut(mn__repl_space *s, uint64_t lsn)
{
    while (s->d.n_history && s->d.history[s->d.n_history - 1].lsn > lsn)
        s->d.n_history--;
}

void mn_spaces_repl_unapplied(mn_spaces_repl_t *r, const char *space)
{
    mn__repl_space *s = space ? mn__repl_space_of(r, space, strlen(space)) : NULL;
    if (!s || s->role == MN_SPACES_REPL_PRIMARY || s->last_lsn == s->applied_lsn) return;
    mn_assert(s->applied_lsn < s->last_lsn);
    s->last_lsn = s->applied_lsn;
    size_t n = s->d.n_history;
    history_cut(s, s->last_lsn);
    if (s->d.n_history != n) mn__repl_persist(r, s);
    /* fetched from the log's end (at most every retry_us: a store failing each time, as a
     * diverged copy's does until its snapshot, is not asked again at once), taken again only
     * from the checked answer */
    s->reconciled = false;
    r->stats.unapplied++;
}

static void need_snapshot(mn_spaces_repl_t *r, mn__repl_space *s, uint64_t lsn)
{
    s->snapshot_needed = true;
    s->reconciled = false;
    mn__repl_event(r, s, MN_SPACES_REPL_SNAPSHOT_NEEDED, r->self, s->d.epoch, lsn);
}

void mn__repl_on_truncate(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us,
                          const mn_wire_repl_frame_t *f)
{
    if (s->reconciled || s->snapshot_needed) return; /* a stale answer */
    bool found;
    uint64_t fe = 0;
    uint64_t own_end = mn__repl_epoch_end(&s->d, s->last_lsn, f->last_epoch, &fe, &found);
    uint64_t fork = !found ? 0 : own_end < f->lsn ? own_end : f->lsn;
    if (fork >= s->last_lsn) { /* nothing of ours past it: ask again, later */
        send_fetch(r, s, now_us, false);
        return;
    }
    if (fork < s->d.base_lsn) {
        need_snapshot(r, s, fork + 1);
        return;
    }
    for (uint64_t lsn = fork + 1; lsn <= s->last_lsn; lsn++) {
        uint64_t epoch;
        const uint8_t *data;
        size_t len;
        if (r->cb.read(r->cb.user, s->name, lsn, &epoch, &data, &len) != MN_OK) continue;
        r->cb.reapply(r->cb.user, s->name, epoch, lsn, data, len);
        r->stats.reapplied++;
    }
    if (r->cb.truncate(r->cb.user, s->name, fork) != MN_OK) {
        need_snapshot(r, s, fork + 1);
        return;
    }
    r->stats.truncations++;
    s->last_lsn = fork;
    if (s->applied_lsn > fork) s->applied_lsn = fork;
    history_cut(s, fork);
    mn__repl_persist(r, s);
    send_fetch(r, s, now_us, true);
}

void mn__repl_on_snapshot(mn_spaces_repl_t *r, mn__repl_space *s, const mn_wire_repl_frame_t *f)
{
    if (s->reconciled && f->lsn <= s->last_lsn) return; /* stale */
    if (!s->snapshot_needed) need_snapshot(r, s, f->lsn);
}

mn_err mn_spaces_repl_restored(mn_spaces_repl_t *r, int64_t now_us, const char *space, uint64_t lsn,
                               uint64_t epoch, mn_error *err)
{
    mn__repl_space *s = space ? mn__repl_space_of(r, space, strlen(space)) : NULL;
    if (!s) return mn_error_set(err, MN_ERR_NOT_FOUND, "space is not open");
    if (s->role == MN_SPACES_REPL_PRIMARY)
        return mn_error_set(err, MN_ERR_INVALID, "the primary restores no snapshot");
    s->last_lsn = s->applied_lsn = lsn;
    s->d.base_lsn = lsn;
    s->d.n_history = 0;
    if (lsn) mn__repl_history_push(s, epoch, lsn);
    mn__repl_persist(r, s);
    s->snapshot_needed = false;
    s->reconciled = false;
    s->fetch_us = INT64_MIN / 2;
    (void)now_us;
    return MN_OK;
}

void mn__repl_follower_tick(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us)
{
    if (!s->reconciled) send_fetch(r, s, now_us, false);
}

int64_t mn__repl_follower_deadline(const mn_spaces_repl_t *r, const mn__repl_space *s)
{
    if (s->ack_due && s->reconciled) return 0;
    if (!s->reconciled && s->primary[0] && !s->snapshot_needed)
        return s->fetch_us + r->cfg.retry_us;
    return INT64_MAX;
}
