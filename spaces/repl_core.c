/* The replication core: per node, every space it holds, driven by frames,
 * timers and the store's events; frames leave through a callback. No socket,
 * clock, thread or engine here (STYLE.md "sans-IO"; Tarantool's SWIM split).
 *
 * The protocol (docs/replication.md): a space's primary of epoch E ships its
 * WAL entries to the other holders; a follower reconciles its log with the
 * primary's once per epoch (fetch: its last (epoch, lsn); the primary answers
 * with entries, or with the fork point to cut, or "snapshot needed"), then
 * takes entries in lsn order, verifying each checksum, and acknowledges what
 * the store applied. A dead primary is replaced by an election among the
 * voting holders: the best log by (last epoch, lsn) asks for epoch E + 1 and
 * needs a majority of grants; a node grants once per epoch. Frames of an
 * older epoch are refused (fencing); a newer epoch seen anywhere is adopted.
 * Raft (Ongaro and Ousterhout, USENIX ATC 2014, §5.2-5.4) is the model for
 * the election and the log matching; Kafka's leader-epoch cache (KIP-101) for
 * finding the fork point.
 *
 * Invariants (checked where they are kept): the epoch of a space never goes
 * down; the local log's history is ascending in epoch and lsn; a node grants
 * at most one candidate per epoch (repl_elect.c); entries reach the store in
 * dense lsn order (repl_replica.c). */
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"
#include "repl_internal.h"

void mn_spaces_repl_config_default(mn_spaces_repl_config_t *c)
{
    c->batch_max_bytes = 64 * 1024;
    c->batch_delay_us = 2000;
    c->retry_us = 50000;
    c->heartbeat_us = 100000;
    c->lease_us = 1000000;
    c->vote_hold_us = 2000000;
    c->election_timeout_us = 300000;
    c->window_entries = 4096;
}

mn_err mn_spaces_repl_config_check(const mn_spaces_repl_config_t *c, mn_error *err)
{
    if (c->batch_max_bytes < 1024 || c->batch_max_bytes > MN_WIRE_REPL_MAX_FRAME / 2)
        return mn_error_set(err, MN_ERR_INVALID, "batch_max_bytes must be 1 KiB..%u",
                            MN_WIRE_REPL_MAX_FRAME / 2);
    if (c->batch_delay_us < 0 || c->retry_us <= 0 || c->heartbeat_us <= 0 || c->lease_us <= 0 ||
        c->election_timeout_us <= 0)
        return mn_error_set(err, MN_ERR_INVALID, "replication timings must be positive");
    if (c->vote_hold_us < c->lease_us)
        return mn_error_set(err, MN_ERR_INVALID, "vote_hold_us must be at least lease_us");
    if (c->window_entries < 1 || c->window_entries > 1u << 20)
        return mn_error_set(err, MN_ERR_INVALID, "window_entries must be 1..2^20");
    return MN_OK;
}

const char *mn_spaces_level_name(mn_spaces_level_t l)
{
    switch (l) {
    case MN_SPACES_ONE:
        return "one";
    case MN_SPACES_QUORUM:
        return "quorum";
    case MN_SPACES_ALL:
        return "all";
    }
    return "unknown";
}

mn_err mn_spaces_level_parse(const char *s, mn_spaces_level_t *out)
{
    for (int l = MN_SPACES_ONE; l <= MN_SPACES_ALL; l++)
        if (s && strcmp(s, mn_spaces_level_name((mn_spaces_level_t)l)) == 0) {
            *out = (mn_spaces_level_t)l;
            return MN_OK;
        }
    return MN_ERR_INVALID;
}

/* ---- lifecycle ---- */

static bool id_ok(const char *s, size_t max)
{
    size_t n = s ? strnlen(s, max + 1) : 0;
    return n > 0 && n <= max && mn_utf8_valid(s, n);
}

mn_err mn_spaces_repl_new(const char *node_id, const mn_spaces_repl_config_t *cfg,
                          const mn_spaces_repl_cb_t *cb, uint64_t seed, mn_spaces_repl_t **out,
                          mn_error *err)
{
    if (!id_ok(node_id, MN_SPACES_NODE_MAX))
        return mn_error_set(err, MN_ERR_INVALID, "node id must be 1..%d bytes of UTF-8",
                            MN_SPACES_NODE_MAX);
    if (!cb || !cb->send || !cb->apply || !cb->read || !cb->truncate || !cb->reapply ||
        !cb->persist)
        return mn_error_set(err, MN_ERR_INVALID, "replication: a callback is missing");
    mn_spaces_repl_config_t c;
    if (cfg)
        c = *cfg;
    else
        mn_spaces_repl_config_default(&c);
    mn_err rc = mn_spaces_repl_config_check(&c, err);
    if (rc != MN_OK) return rc;
    mn_spaces_repl_t *r = calloc(1, sizeof *r);
    if (!r) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    r->self_len = strlen(node_id);
    memcpy(r->self, node_id, r->self_len);
    r->cfg = c;
    r->cb = *cb;
    mn_prng_seed(&r->prng, seed);
    r->enc = mn_wire_repl_enc_new();
    r->rx_entries = malloc(MN_WIRE_REPL_MAX_ENTRIES * sizeof *r->rx_entries);
    r->tx_entries = malloc(MN_WIRE_REPL_MAX_ENTRIES * sizeof *r->tx_entries);
    if (!r->enc || !r->rx_entries || !r->tx_entries) {
        mn_spaces_repl_free(r);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    *out = r;
    return MN_OK;
}

void mn_spaces_repl_free(mn_spaces_repl_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_spaces; i++)
        free(r->spaces[i]);
    free(r->spaces);
    mn_wire_repl_enc_free(r->enc);
    free(r->rx);
    free(r->rx_entries);
    free(r->scratch);
    free(r->tx_entries);
    free(r);
}

/* ---- spaces and peers ---- */

static size_t space_lower_bound(const mn_spaces_repl_t *r, const char *name, size_t len)
{
    size_t lo = 0, hi = r->n_spaces;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const mn__repl_space *s = r->spaces[mid];
        size_t m = s->name_len < len ? s->name_len : len;
        int c = memcmp(s->name, name, m);
        if (c == 0) c = s->name_len < len ? -1 : s->name_len > len;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

mn__repl_space *mn__repl_space_of(const mn_spaces_repl_t *r, const char *name, size_t len)
{
    size_t i = space_lower_bound(r, name, len);
    if (i < r->n_spaces && r->spaces[i]->name_len == len &&
        memcmp(r->spaces[i]->name, name, len) == 0)
        return r->spaces[i];
    return NULL;
}

bool mn__repl_same(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && memcmp(a, b, alen) == 0;
}

mn__repl_peer *mn__repl_peer_of(mn__repl_space *s, const char *node, size_t len)
{
    for (size_t i = 0; i < s->n_peers; i++)
        if (mn__repl_same(node, len, s->peers[i].node)) return &s->peers[i];
    return NULL;
}

size_t mn__repl_voters(const mn__repl_space *s)
{
    size_t n = s->self_voter ? 1 : 0;
    for (size_t i = 0; i < s->n_peers; i++)
        n += s->peers[i].voter;
    return n;
}

/* Fills s's peers from holders (this node must be one); keeps what is known
 * of peers that stay. */
static mn_err set_holders(mn_spaces_repl_t *r, mn__repl_space *s, const mn_spaces_repl_holder_t *h,
                          size_t n, mn_error *err)
{
    if (n == 0 || n > MN_SPACES_HOLDERS_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "a space has 1..%d holders",
                            MN_SPACES_HOLDERS_MAX);
    mn__repl_peer peers[MN_SPACES_HOLDERS_MAX];
    size_t np = 0;
    bool self = false, self_voter = false;
    for (size_t i = 0; i < n; i++) {
        if (!id_ok(h[i].node, MN_SPACES_NODE_MAX))
            return mn_error_set(err, MN_ERR_INVALID, "holder %zu: bad node id", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(h[i].node, h[j].node) == 0)
                return mn_error_set(err, MN_ERR_INVALID, "holder %zu: listed twice", i);
        if (strcmp(h[i].node, r->self) == 0) {
            self = true;
            self_voter = h[i].voter;
            continue;
        }
        mn__repl_peer *old = mn__repl_peer_of(s, h[i].node, strlen(h[i].node));
        mn__repl_peer *p = &peers[np++];
        if (old) {
            *p = *old;
        } else {
            memset(p, 0, sizeof *p);
            strcpy(p->node, h[i].node);
            p->alive = true;
            p->next = s->last_lsn + 1;
        }
        p->voter = h[i].voter;
    }
    if (!self) return mn_error_set(err, MN_ERR_INVALID, "this node is not a holder");
    memcpy(s->peers, peers, np * sizeof *peers);
    s->n_peers = np;
    s->self_voter = self_voter;
    return MN_OK;
}

static mn_err insert_space(mn_spaces_repl_t *r, mn__repl_space *s)
{
    if (r->n_spaces == r->cap_spaces) {
        size_t cap = r->cap_spaces ? r->cap_spaces * 2 : 8;
        mn__repl_space **ns = realloc(r->spaces, cap * sizeof *ns);
        if (!ns) return MN_ERR_NOMEM;
        r->spaces = ns;
        r->cap_spaces = cap;
    }
    size_t i = space_lower_bound(r, s->name, s->name_len);
    memmove(&r->spaces[i + 1], &r->spaces[i], (r->n_spaces - i) * sizeof *r->spaces);
    r->spaces[i] = s;
    r->n_spaces++;
    return MN_OK;
}

/* A new space (d NULL): the first holder leads epoch `epoch` (1, or its engine's epoch for a
 * name created again: mn_spaces_repl_open_new). */
static void start_new(mn_spaces_repl_t *r, mn__repl_space *s, const mn_spaces_repl_holder_t *h,
                      int64_t now_us, uint64_t epoch)
{
    s->d.epoch = epoch;
    strcpy(s->primary, h[0].node);
    mn__repl_persist(r, s);
    if (strcmp(h[0].node, r->self) == 0) {
        /* the entries its log holds already are its creator's engine's, written at this
         * first epoch before the core opened the space: their epoch is known, so the copy
         * that lead it later finds this log a prefix of its own (a fetch naming epoch 0
         * for them would be answered "snapshot needed") */
        mn__repl_history_push(s, epoch, 1);
        mn__repl_persist(r, s);
        mn__repl_primary_start(r, s, now_us, true);
    } else {
        s->heard_us = now_us;
    }
}

static mn_err open_space(mn_spaces_repl_t *r, int64_t now_us, const char *space,
                         const mn_spaces_repl_holder_t *holders, size_t n,
                         const mn_spaces_repl_durable_t *d, uint64_t first_epoch, uint64_t last_lsn,
                         mn_error *err);

mn_err mn_spaces_repl_open(mn_spaces_repl_t *r, int64_t now_us, const char *space,
                           const mn_spaces_repl_holder_t *holders, size_t n,
                           const mn_spaces_repl_durable_t *d, uint64_t last_lsn, mn_error *err)
{
    return open_space(r, now_us, space, holders, n, d, 1, last_lsn, err);
}

mn_err mn_spaces_repl_open_new(mn_spaces_repl_t *r, int64_t now_us, const char *space,
                               const mn_spaces_repl_holder_t *holders, size_t n,
                               uint64_t first_epoch, uint64_t last_lsn, mn_error *err)
{
    if (first_epoch == 0) return mn_error_set(err, MN_ERR_INVALID, "first epoch 0");
    return open_space(r, now_us, space, holders, n, NULL, first_epoch, last_lsn, err);
}

static mn_err open_space(mn_spaces_repl_t *r, int64_t now_us, const char *space,
                         const mn_spaces_repl_holder_t *holders, size_t n,
                         const mn_spaces_repl_durable_t *d, uint64_t first_epoch, uint64_t last_lsn,
                         mn_error *err)
{
    if (!id_ok(space, MN_SPACE_NAME_MAX))
        return mn_error_set(err, MN_ERR_INVALID, "space: bad name");
    if (mn__repl_space_of(r, space, strlen(space)))
        return mn_error_set(err, MN_ERR_EXISTS, "space '%s' is open", space);
    if (d && d->n_history > MN_SPACES_REPL_HISTORY_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "space '%s': bad durable state", space);
    mn__repl_space *s = calloc(1, sizeof *s);
    if (!s) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    s->name_len = strlen(space);
    memcpy(s->name, space, s->name_len);
    s->last_lsn = s->applied_lsn = last_lsn;
    s->opened_us = s->heard_us = now_us;
    s->fetch_us = INT64_MIN / 2;
    s->batch_due_us = INT64_MAX;
    if (d) s->d = *d;
    mn_err rc = set_holders(r, s, holders, n, err);
    if (rc == MN_OK && insert_space(r, s) != MN_OK)
        rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    if (rc != MN_OK) {
        free(s);
        return rc;
    }
    if (!d) start_new(r, s, holders, now_us, first_epoch);
    return MN_OK;
}

mn_err mn_spaces_repl_set_holders(mn_spaces_repl_t *r, int64_t now_us, const char *space,
                                  const mn_spaces_repl_holder_t *holders, size_t n, mn_error *err)
{
    mn__repl_space *s = space ? mn__repl_space_of(r, space, strlen(space)) : NULL;
    if (!s) return mn_error_set(err, MN_ERR_NOT_FOUND, "space is not open");
    (void)now_us;
    return set_holders(r, s, holders, n, err);
}

/* Hands back the entries of d->led_epoch after d->led_acked, up to last_lsn (read through the
 * callback; ones it cannot read are gone already), and clears d's mark. */
static size_t hand_back(mn_spaces_repl_t *r, const char *space, mn_spaces_repl_durable_t *d,
                        uint64_t last_lsn)
{
    size_t n = 0;
    for (uint64_t lsn = d->led_acked + 1; d->led_epoch && lsn <= last_lsn; lsn++) {
        uint64_t epoch;
        const uint8_t *data;
        size_t len;
        if (r->cb.read(r->cb.user, space, lsn, &epoch, &data, &len) != MN_OK ||
            epoch != d->led_epoch)
            continue;
        r->cb.reapply(r->cb.user, space, epoch, lsn, data, len);
        r->stats.reapplied++;
        n++;
    }
    d->led_epoch = d->led_acked = 0;
    return n;
}

size_t mn_spaces_repl_hand_back(mn_spaces_repl_t *r, const char *space,
                                const mn_spaces_repl_durable_t *d, uint64_t last_lsn)
{
    if (!space || !d || !d->led_epoch) return 0;
    mn_spaces_repl_durable_t c = *d;
    size_t n = hand_back(r, space, &c, last_lsn);
    c.n_history = 0;
    c.base_lsn = 0;
    r->cb.persist(r->cb.user, space, &c);
    return n;
}

/* The copy goes: its log's history and snapshot base are forgotten, the epoch and the
 * vote are kept (made durable before it goes), so a node dropped and added again never
 * votes twice in one epoch nor trusts a log it no longer has. A primary must hand over
 * first; a candidate simply stops, as a crashed one would. A copy that led an epoch and has
 * not reconciled with a later primary since hands back first what no majority had. */
static mn_err close_space(mn_spaces_repl_t *r, const char *space, bool forget, mn_error *err)
{
    size_t len = space ? strlen(space) : 0;
    mn__repl_space *s = space ? mn__repl_space_of(r, space, len) : NULL;
    if (!s) return mn_error_set(err, MN_ERR_NOT_FOUND, "space is not open");
    if (s->role == MN_SPACES_REPL_PRIMARY && !forget)
        return mn_error_set(err, MN_ERR_BUSY, "space '%s': this node leads it", s->name);
    mn__repl_elect_stop(s); /* a candidate is a follower again */
    s->role = MN_SPACES_REPL_FOLLOWER;
    /* a forgotten space is gone: nothing to hand back to */
    if (!forget && !(s->reconciled && s->d.epoch > s->d.led_epoch))
        hand_back(r, s->name, &s->d, s->last_lsn);
    s->d.led_epoch = s->d.led_acked = 0;
    s->d.n_history = 0;
    s->d.base_lsn = 0;
    mn__repl_persist(r, s);
    size_t i = space_lower_bound(r, s->name, s->name_len);
    mn_assert(i < r->n_spaces && r->spaces[i] == s);
    memmove(&r->spaces[i], &r->spaces[i + 1], (r->n_spaces - i - 1) * sizeof *r->spaces);
    r->n_spaces--;
    if (forget)
        r->stats.forgotten++;
    else
        r->stats.closed++;
    free(s);
    return MN_OK;
}

mn_err mn_spaces_repl_close(mn_spaces_repl_t *r, const char *space, mn_error *err)
{
    return close_space(r, space, false, err);
}

mn_err mn_spaces_repl_forget(mn_spaces_repl_t *r, const char *space, mn_error *err)
{
    return close_space(r, space, true, err);
}

mn_err mn_spaces_repl_set_incarnation(mn_spaces_repl_t *r, const char *space, uint64_t inc,
                                      mn_error *err)
{
    mn__repl_space *s = space ? mn__repl_space_of(r, space, strlen(space)) : NULL;
    if (!s) return mn_error_set(err, MN_ERR_NOT_FOUND, "space is not open");
    if (inc == 0) return mn_error_set(err, MN_ERR_INVALID, "incarnation 0");
    if (s->d.incarnation == inc) return MN_OK;
    if (s->d.incarnation != 0)
        return mn_error_set(err, MN_ERR_INVALID,
                            "space '%s': the state is of incarnation %llu, not %llu", s->name,
                            (unsigned long long)s->d.incarnation, (unsigned long long)inc);
    s->d.incarnation = inc;
    mn__repl_persist(r, s);
    return MN_OK;
}

void mn_spaces_repl_member(mn_spaces_repl_t *r, int64_t now_us, const char *node, bool alive)
{
    if (!node) return;
    size_t len = strlen(node);
    for (size_t i = 0; i < r->n_spaces; i++) {
        mn__repl_peer *p = mn__repl_peer_of(r->spaces[i], node, len);
        if (p) p->alive = alive;
    }
    (void)now_us;
}

/* ---- shared helpers ---- */

mn_wire_repl_frame_t mn__repl_frame(const mn_spaces_repl_t *r, const mn__repl_space *s,
                                    uint8_t kind)
{
    mn_wire_repl_frame_t f;
    memset(&f, 0, sizeof f);
    f.kind = kind;
    f.space = s->name;
    f.space_len = s->name_len;
    f.from = r->self;
    f.from_len = r->self_len;
    f.epoch = s->d.epoch;
    f.rec_epoch = s->rec_epoch;
    f.rec_version = s->rec_version;
    f.incarnation = s->d.incarnation;
    return f;
}

void mn__repl_send(mn_spaces_repl_t *r, mn__repl_space *s, const char *to, mn_wire_repl_frame_t *f)
{
    const uint8_t *buf;
    size_t len;
    (void)s;
    if (mn_wire_repl_encode(r->enc, f, &buf, &len) != MN_OK) {
        mn_log_error("replication: a %u frame for %s could not be encoded", f->kind, to);
        return;
    }
    r->stats.frames_sent++;
    r->stats.bytes_sent += len;
    r->cb.send(r->cb.user, to, buf, len);
}

void mn__repl_persist(mn_spaces_repl_t *r, mn__repl_space *s)
{
    r->cb.persist(r->cb.user, s->name, &s->d);
}

void mn__repl_event(mn_spaces_repl_t *r, const mn__repl_space *s, mn_spaces_repl_event_type_t t,
                    const char *node, uint64_t epoch, uint64_t lsn)
{
    if (!r->cb.event) return;
    mn_spaces_repl_event_t ev = {t, s->name, node, epoch, lsn, 0};
    if (t == MN_SPACES_REPL_DEMOTED) {
        /* the entries of the epoch it led are those after its log's end at its promotion
         * (what it had before is kept: a majority chose it with them, or it created the
         * space with them) */
        mn_assert(s->led_from >= 1 && s->led_from <= s->last_lsn + 1); /* set as it led */
        uint64_t from = s->led_from;
        uint64_t kept = s->quorum_lsn > from - 1 ? s->quorum_lsn : from - 1;
        ev.kept_lsn = kept < s->last_lsn ? kept : s->last_lsn;
    }
    r->cb.event(r->cb.user, &ev);
}

void mn__repl_adopt(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us, uint64_t epoch,
                    const char *leader, size_t leader_len)
{
    if (epoch <= s->d.epoch) return;
    bool was_primary = s->role == MN_SPACES_REPL_PRIMARY;
    s->role = MN_SPACES_REPL_FOLLOWER;
    s->d.epoch = epoch;
    if (leader_len) memcpy(s->primary, leader, leader_len);
    s->primary[leader_len] = 0;
    s->reconciled = false;
    s->heard_us = now_us;
    s->echo_us = 0;          /* a new primary's clock */
    mn__repl_fresh_reset(s); /* what an older primary had says nothing of the new one's */
    s->fetch_us = INT64_MIN / 2;
    s->batch_due_us = INT64_MAX;
    mn__repl_elect_stop(s);
    mn__repl_persist(r, s);
    if (was_primary) mn__repl_event(r, s, MN_SPACES_REPL_DEMOTED, r->self, epoch, s->last_lsn);
}

/* ---- the epoch history of the local log ---- */

uint64_t mn__repl_epoch_at(const mn_spaces_repl_durable_t *d, uint64_t lsn)
{
    uint64_t e = 0;
    for (size_t i = 0; i < d->n_history && d->history[i].lsn <= lsn; i++)
        e = d->history[i].epoch;
    return lsn == 0 ? 0 : e;
}

uint64_t mn_spaces_repl_status_epoch_at(const mn_spaces_repl_status_t *st, uint64_t lsn)
{
    uint64_t e = 0;
    for (size_t i = 0; i < st->n_history && st->history[i].lsn <= lsn; i++)
        e = st->history[i].epoch;
    return lsn == 0 ? 0 : e;
}

bool mn_spaces_repl_status_replaced(const mn_spaces_repl_status_t *st, uint64_t lsn, uint64_t epoch)
{
    if (!epoch || !lsn) return false;
    uint64_t now = mn_spaces_repl_status_epoch_at(st, lsn);
    return now ? now != epoch : lsn <= st->base_lsn;
}

uint64_t mn__repl_epoch_end(const mn_spaces_repl_durable_t *d, uint64_t last_lsn, uint64_t e,
                            uint64_t *found_epoch, bool *found)
{
    size_t i = d->n_history;
    while (i > 0 && d->history[i - 1].epoch > e)
        i--;
    *found = i > 0;
    if (i == 0) return 0;
    *found_epoch = d->history[i - 1].epoch;
    uint64_t end = i < d->n_history ? d->history[i].lsn - 1 : last_lsn;
    return end < last_lsn ? end : last_lsn;
}

bool mn__repl_history_push(mn__repl_space *s, uint64_t epoch, uint64_t lsn)
{
    mn_spaces_repl_durable_t *d = &s->d;
    size_t n0 = d->n_history;
    /* epochs that begin at or after lsn have no entry in this log (a term that
     * wrote nothing here): they go */
    while (d->n_history && d->history[d->n_history - 1].lsn >= lsn)
        d->n_history--;
    if (d->n_history) {
        const mn_spaces_repl_epoch_start_t *last = &d->history[d->n_history - 1];
        mn_assert(last->epoch <= epoch && last->lsn < lsn);
        if (last->epoch == epoch) return d->n_history != n0;
    }
    if (d->n_history == MN_SPACES_REPL_HISTORY_MAX) {
        memmove(&d->history[0], &d->history[1], (d->n_history - 1) * sizeof d->history[0]);
        d->n_history--;
    }
    d->history[d->n_history++] = (mn_spaces_repl_epoch_start_t){epoch, lsn};
    return true;
}

/* ---- frames in ---- */

static const uint8_t *aligned_copy(mn_spaces_repl_t *r, const uint8_t *buf, size_t len)
{
    if (((uintptr_t)buf & 7) == 0) return buf;
    if (len > r->rx_cap) {
        free(r->rx);
        r->rx = aligned_alloc(8, (len + 7) & ~(size_t)7);
        r->rx_cap = r->rx ? len : 0;
        if (!r->rx) return NULL;
    }
    memcpy(r->rx, buf, len);
    return r->rx;
}

/* A newer epoch in any frame but a vote request (whose epoch is a proposal)
 * is adopted: the frame's sender knows of a newer primary. */
static void maybe_adopt(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us,
                        const mn_wire_repl_frame_t *f)
{
    if (f->epoch <= s->d.epoch || f->kind == MN_WIRE_REPL_VOTE_REQ || f->kind == MN_WIRE_REPL_VOTE)
        return;
    if (f->kind == MN_WIRE_REPL_APPEND)
        mn__repl_adopt(r, s, now_us, f->epoch, f->from, f->from_len);
    else if (f->kind == MN_WIRE_REPL_FENCED)
        mn__repl_adopt(r, s, now_us, f->epoch, f->leader, f->leader_len);
    else
        mn__repl_adopt(r, s, now_us, f->epoch, "", 0);
}

/* The newest holder record p's frames said its core counts over (frames of minor 0 say
 * none; a record only goes up, as in mn_spaces_repl_set_record). */
static void note_record(mn__repl_peer *p, const mn_wire_repl_frame_t *f)
{
    if ((f->version & 0xff) < 1) return;
    p->rec_said = true;
    if (f->rec_epoch > p->rec_epoch ||
        (f->rec_epoch == p->rec_epoch && f->rec_version > p->rec_version)) {
        p->rec_epoch = f->rec_epoch;
        p->rec_version = f->rec_version;
    }
}

static void dispatch(mn_spaces_repl_t *r, mn__repl_space *s, mn__repl_peer *p, int64_t now_us,
                     const mn_wire_repl_frame_t *f)
{
    bool primary = s->role == MN_SPACES_REPL_PRIMARY && f->epoch == s->d.epoch;
    bool from_leader = s->role == MN_SPACES_REPL_FOLLOWER && f->epoch == s->d.epoch &&
                       mn__repl_same(f->from, f->from_len, s->primary);
    switch (f->kind) {
    case MN_WIRE_REPL_APPEND:
        mn__repl_on_append(r, s, now_us, f);
        break;
    case MN_WIRE_REPL_ACK:
        if (primary) mn__repl_on_ack(r, s, p, now_us, f);
        break;
    case MN_WIRE_REPL_FETCH:
        if (primary) mn__repl_on_fetch(r, s, p, now_us, f);
        break;
    case MN_WIRE_REPL_TRUNCATE:
        if (from_leader) mn__repl_on_truncate(r, s, now_us, f);
        break;
    case MN_WIRE_REPL_SNAPSHOT:
        if (from_leader) mn__repl_on_snapshot(r, s, f);
        break;
    case MN_WIRE_REPL_FENCED:
        break; /* adopted above */
    case MN_WIRE_REPL_STATE:
        mn__repl_on_state(r, s, p, now_us, f);
        break;
    case MN_WIRE_REPL_VOTE_REQ:
        mn__repl_on_vote_req(r, s, p, now_us, f);
        break;
    case MN_WIRE_REPL_VOTE:
        mn__repl_on_vote(r, s, p, now_us, f);
        break;
    case MN_WIRE_REPL_HANDOVER:
        if (from_leader) mn__repl_on_handover(r, s, now_us, f);
        break;
    }
}

/* Does every epoch f names stay below MN__REPL_EPOCH_LIMIT? */
static bool epochs_sane(const mn_wire_repl_frame_t *f)
{
    if (f->epoch >= MN__REPL_EPOCH_LIMIT || f->last_epoch >= MN__REPL_EPOCH_LIMIT ||
        f->rec_epoch >= MN__REPL_EPOCH_LIMIT)
        return false;
    for (size_t i = 0; i < f->n_entries; i++)
        if (f->entries[i].epoch >= MN__REPL_EPOCH_LIMIT) return false;
    return true;
}

void mn_spaces_repl_on_message(mn_spaces_repl_t *r, int64_t now_us, const uint8_t *buf, size_t len)
{
    r->stats.frames_received++;
    const uint8_t *a = buf ? aligned_copy(r, buf, len) : NULL;
    mn_wire_repl_frame_t f;
    if (!a || mn_wire_repl_decode(a, len, &f, r->rx_entries, MN_WIRE_REPL_MAX_ENTRIES) != MN_OK ||
        !epochs_sane(&f)) {
        r->stats.dropped_decode++;
        return;
    }
    mn__repl_space *s = mn__repl_space_of(r, f.space, f.space_len);
    mn__repl_peer *p = s ? mn__repl_peer_of(s, f.from, f.from_len) : NULL;
    if (!p) {
        r->stats.dropped_unknown++;
        return;
    }
    if (f.incarnation && s->d.incarnation && f.incarnation != s->d.incarnation) {
        r->stats.dropped_incarnation++; /* a frame of another incarnation of the name */
        return;
    }
    note_record(p, &f);
    maybe_adopt(r, s, now_us, &f);
    dispatch(r, s, p, now_us, &f);
    mn__repl_flush_ack(r, s);
}

/* ---- timers ---- */

void mn_spaces_repl_on_tick(mn_spaces_repl_t *r, int64_t now_us)
{
    for (size_t i = 0; i < r->n_spaces; i++) {
        mn__repl_space *s = r->spaces[i];
        if (s->role == MN_SPACES_REPL_PRIMARY)
            mn__repl_primary_tick(r, s, now_us);
        else
            mn__repl_follower_tick(r, s, now_us);
        mn__repl_elect_tick(r, s, now_us);
        mn__repl_flush_ack(r, s);
    }
}

int64_t mn_spaces_repl_next_deadline(const mn_spaces_repl_t *r)
{
    int64_t t = INT64_MAX;
    for (size_t i = 0; i < r->n_spaces; i++) {
        const mn__repl_space *s = r->spaces[i];
        int64_t d = s->role == MN_SPACES_REPL_PRIMARY ? mn__repl_primary_deadline(r, s)
                                                      : mn__repl_follower_deadline(r, s);
        int64_t e = mn__repl_elect_deadline(r, s);
        if (d < t) t = d;
        if (e < t) t = e;
    }
    return t;
}

/* ---- queries ---- */

bool mn_spaces_repl_writable(const mn_spaces_repl_t *r, int64_t now_us, const char *space,
                             uint64_t *epoch)
{
    const mn__repl_space *s = space ? mn__repl_space_of(r, space, strlen(space)) : NULL;
    if (!s || !mn__repl_taking_writes(r, s, now_us)) return false;
    if (epoch) *epoch = s->d.epoch;
    return true;
}

mn_err mn_spaces_repl_set_record(mn_spaces_repl_t *r, const char *space, uint64_t epoch,
                                 uint64_t version, mn_error *err)
{
    mn__repl_space *s = space ? mn__repl_space_of(r, space, strlen(space)) : NULL;
    if (!s) return mn_error_set(err, MN_ERR_NOT_FOUND, "space is not open");
    if (epoch > s->rec_epoch || (epoch == s->rec_epoch && version > s->rec_version)) {
        s->rec_epoch = epoch;
        s->rec_version = version;
    }
    mn_assert(s->rec_epoch >= epoch);
    return MN_OK;
}

int64_t mn_spaces_repl_lease_until(const mn_spaces_repl_t *r, const char *space)
{
    const mn__repl_space *s = space ? mn__repl_space_of(r, space, strlen(space)) : NULL;
    if (!s || s->role != MN_SPACES_REPL_PRIMARY || s->handover_to[0]) return INT64_MIN;
    return mn__repl_lease_until(r, s);
}

uint64_t mn_spaces_repl_reached(const mn_spaces_repl_t *r, const char *space,
                                mn_spaces_level_t level)
{
    const mn__repl_space *s = space ? mn__repl_space_of(r, space, strlen(space)) : NULL;
    if (!s || s->role != MN_SPACES_REPL_PRIMARY) return 0;
    switch (level) {
    case MN_SPACES_ONE:
        return s->last_lsn;
    case MN_SPACES_QUORUM:
        return s->quorum_lsn;
    case MN_SPACES_ALL:
        return s->all_lsn;
    }
    return 0;
}

mn_err mn_spaces_repl_status(const mn_spaces_repl_t *r, int64_t now_us, const char *space,
                             mn_spaces_repl_status_t *out)
{
    const mn__repl_space *s = space ? mn__repl_space_of(r, space, strlen(space)) : NULL;
    if (!s) return MN_ERR_NOT_FOUND;
    memset(out, 0, sizeof *out);
    out->role = s->role;
    out->epoch = s->d.epoch;
    strcpy(out->primary, s->primary);
    out->last_lsn = s->last_lsn;
    out->applied_lsn = s->applied_lsn;
    out->last_epoch = mn__repl_epoch_at(&s->d, s->last_lsn);
    out->snapshot_needed = s->snapshot_needed;
    memcpy(out->history, s->d.history, s->d.n_history * sizeof out->history[0]);
    out->n_history = s->d.n_history;
    out->base_lsn = s->d.base_lsn;
    out->incarnation = s->d.incarnation;
    out->fresh_us = s->role == MN_SPACES_REPL_FOLLOWER && s->reconciled ? s->fresh_us : 0;
    out->reconciled = s->reconciled;
    out->heard_us = s->heard_us;
    out->n_peers = s->n_peers;
    for (size_t i = 0; i < s->n_peers; i++) {
        const mn__repl_peer *p = &s->peers[i];
        mn_spaces_repl_peer_status_t *o = &out->peers[i];
        strcpy(o->node, p->node);
        o->voter = p->voter;
        o->alive = p->alive;
        o->rec_said = p->rec_said;
        o->rec_epoch = p->rec_epoch;
        o->rec_version = p->rec_version;
        if (s->role != MN_SPACES_REPL_PRIMARY) continue;
        o->applied_lsn = p->match;
        o->lag_entries = s->last_lsn - p->match;
        o->lag_ms = mn__repl_lag_ms(s, p, now_us);
    }
    return MN_OK;
}

void mn_spaces_repl_stats(const mn_spaces_repl_t *r, mn_spaces_repl_stats_t *out)
{
    *out = r->stats;
}
