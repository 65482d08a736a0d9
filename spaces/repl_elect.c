/* Elections: a new primary for a space whose primary is lost.
 *
 * A voting holder calls an election when its primary is dead (membership,
 * from SWIM) and unheard for vote_hold_us, or when it has known no primary for
 * election_timeout (after a restart). Round for epoch T = 1 + the highest epoch it followed, voted in
 * or tried:
 *  1. it asks every voter for its state (last entry's epoch, applied lsn);
 *  2. once it holds the states of a majority (itself included), the best of
 *     them by (epoch, lsn), ties to the smallest node id, is the candidate:
 *     every node applies the same rule to what it heard, so a node that is
 *     not the best waits for the best one to ask (from the second round on,
 *     a node tied with the best asks too, in case the best one does not see
 *     the primary as lost);
 *  3. the candidate asks for votes for T with its (epoch, lsn); a voter
 *     grants if T is above every epoch it followed or voted in, the
 *     candidate's log is at least as good as its own, and it has not heard
 *     its primary within vote_hold_us, whatever SWIM says of it (the primary
 *     may serve reads until its lease and grace end); the grant is persisted
 *     first;
 *  4. a majority of grants (its own included) makes it primary of T.
 * No result by the round's deadline (election_timeout plus jitter): a new
 * round with T + 1, if the primary is still lost.
 *
 * Why at most one primary per epoch: a node grants at most one vote per
 * epoch (voted_epoch only rises, persisted before the grant is sent), and two
 * majorities of the same voters intersect. Why no acknowledged write is lost:
 * a quorum write is on a majority; the winner's majority holds a voter with
 * it, whose log the winner's is at least as good as, and logs that agree on
 * (epoch, lsn) agree before it (docs/replication.md has the argument). */
#include <string.h>

#include "mnemo/assert.h"
#include "repl_internal.h"

void mn__repl_elect_stop(mn__repl_space *s)
{
    s->electing = false;
    s->elect_deadline_us = INT64_MAX;
    if (s->role == MN_SPACES_REPL_CANDIDATE) s->role = MN_SPACES_REPL_FOLLOWER;
    for (size_t i = 0; i < s->n_peers; i++)
        s->peers[i].state_heard = s->peers[i].granted = false;
}

static uint64_t my_epoch(const mn__repl_space *s)
{
    return mn__repl_epoch_at(&s->d, s->applied_lsn);
}

/* Is the primary lost, for a voter that might call an election? */
static bool primary_lost(const mn_spaces_repl_t *r, const mn__repl_space *s, int64_t now_us)
{
    if (!s->self_voter || s->role == MN_SPACES_REPL_PRIMARY || s->snapshot_needed) return false;
    int64_t quiet_until = s->heard_us + r->cfg.election_timeout_us;
    if (!s->primary[0] || strcmp(s->primary, r->self) == 0) return now_us >= quiet_until;
    const mn__repl_peer *p = NULL;
    for (size_t i = 0; i < s->n_peers; i++)
        if (strcmp(s->peers[i].node, s->primary) == 0) p = &s->peers[i];
    /* a primary SWIM declared down is lost once unheard for vote_hold_us: until then it may
     * still take writes and serve reads on its lease (sticky) */
    return p ? !p->alive && now_us - s->heard_us >= r->cfg.vote_hold_us : now_us >= quiet_until;
}

static void send_state(mn_spaces_repl_t *r, mn__repl_space *s, const char *to, bool reply_wanted)
{
    mn_wire_repl_frame_t f = mn__repl_frame(r, s, MN_WIRE_REPL_STATE);
    f.last_epoch = my_epoch(s);
    f.lsn = s->applied_lsn;
    f.flags = reply_wanted ? MN_WIRE_REPL_FLAG_REPLY : 0;
    mn__repl_send(r, s, to, &f);
}

static void start_round(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us)
{
    uint64_t t = s->d.epoch > s->d.voted_epoch ? s->d.epoch : s->d.voted_epoch;
    if (s->electing && s->elect_epoch > t) t = s->elect_epoch;
    if (s->refused_epoch > t) t = s->refused_epoch;
    s->elect_streak = s->electing ? s->elect_streak + 1 : 0;
    mn__repl_elect_stop(s);
    s->electing = true;
    s->elect_epoch = t + 1;
    uint64_t jitter = mn_prng_below(&r->prng, (uint64_t)r->cfg.election_timeout_us + 1);
    s->elect_deadline_us = now_us + r->cfg.election_timeout_us + (int64_t)jitter;
    r->stats.elections++;
    for (size_t i = 0; i < s->n_peers; i++)
        if (s->peers[i].voter) send_state(r, s, s->peers[i].node, true);
}

static bool better(uint64_t e1, uint64_t l1, const char *n1, uint64_t e2, uint64_t l2,
                   const char *n2)
{
    if (e1 != e2) return e1 > e2;
    if (l1 != l2) return l1 > l2;
    return strcmp(n1, n2) < 0;
}

static void check_votes(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us)
{
    size_t granted = 1; /* our own */
    for (size_t i = 0; i < s->n_peers; i++)
        granted += s->peers[i].voter && s->peers[i].granted;
    if (granted < mn__repl_voters(s) / 2 + 1) return;
    mn_assert(s->d.voted_epoch == s->elect_epoch && s->elect_epoch > s->d.epoch);
    s->d.epoch = s->elect_epoch;
    mn__repl_history_push(s, s->d.epoch, s->last_lsn + 1);
    mn__repl_persist(r, s);
    mn__repl_primary_start(r, s, now_us, false);
}

static void request_votes(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us, bool transfer)
{
    s->role = MN_SPACES_REPL_CANDIDATE;
    /* a vote granted since the round began used its epoch: ask for the next */
    if (s->elect_epoch <= s->d.voted_epoch) s->elect_epoch = s->d.voted_epoch + 1;
    mn_assert(s->elect_epoch > s->d.voted_epoch && s->elect_epoch > s->d.epoch);
    s->d.voted_epoch = s->elect_epoch;
    strcpy(s->d.voted_for, r->self);
    mn__repl_persist(r, s);
    mn_wire_repl_frame_t f = mn__repl_frame(r, s, MN_WIRE_REPL_VOTE_REQ);
    f.epoch = s->elect_epoch;
    f.last_epoch = my_epoch(s);
    f.lsn = s->applied_lsn;
    f.flags = transfer ? MN_WIRE_REPL_FLAG_TRANSFER : 0;
    for (size_t i = 0; i < s->n_peers; i++)
        if (s->peers[i].voter) mn__repl_send(r, s, s->peers[i].node, &f);
    check_votes(r, s, now_us);
}

/* Step 2: with a majority's states, the best one runs; from the second round
 * on, so does any node whose log equals the best (the best may not see the
 * primary as lost: a tie must not stall the election). */
static void check_gathered(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us)
{
    if (!s->electing || s->role != MN_SPACES_REPL_FOLLOWER) return;
    size_t heard = 1;
    uint64_t be = my_epoch(s), bl = s->applied_lsn;
    const char *best = r->self;
    for (size_t i = 0; i < s->n_peers; i++) {
        const mn__repl_peer *p = &s->peers[i];
        if (!p->voter || !p->state_heard) continue;
        heard++;
        if (better(p->st_epoch, p->st_lsn, p->node, be, bl, best)) {
            be = p->st_epoch;
            bl = p->st_lsn;
            best = p->node;
        }
    }
    if (heard < mn__repl_voters(s) / 2 + 1) return;
    bool tie = s->elect_streak > 0 && be == my_epoch(s) && bl == s->applied_lsn;
    if (strcmp(best, r->self) == 0 || tie) request_votes(r, s, now_us, false);
}

void mn__repl_on_state(mn_spaces_repl_t *r, mn__repl_space *s, mn__repl_peer *p, int64_t now_us,
                       const mn_wire_repl_frame_t *f)
{
    if (!p->voter) return;
    p->state_heard = true;
    p->st_epoch = f->last_epoch;
    p->st_lsn = f->lsn;
    if (f->flags & MN_WIRE_REPL_FLAG_REPLY) send_state(r, s, p->node, false);
    check_gathered(r, s, now_us);
}

/* Has this node heard its primary within vote_hold_us (or is it a primary with a lease)? */
static bool sticky(const mn_spaces_repl_t *r, const mn__repl_space *s, const mn__repl_peer *cand,
                   int64_t now_us)
{
    if (s->role == MN_SPACES_REPL_PRIMARY) return mn__repl_lease_ok(r, s, now_us);
    if (!s->primary[0] || strcmp(s->primary, cand->node) == 0) return false;
    /* heard within vote_hold_us: the primary may still hold its lease (which runs from the
     * send time of appends its majority acknowledged, no later than this node heard them)
     * and its grace, and serve reads as the primary; SWIM thinking it down does not shorten
     * that */
    for (size_t i = 0; i < s->n_peers; i++)
        if (strcmp(s->peers[i].node, s->primary) == 0)
            return now_us - s->heard_us < r->cfg.vote_hold_us;
    return false;
}

/* Does the candidate count voters over a holder record at least as new as the one this node
 * applied? A frame of minor 0 carries none: it is judged as before (a rolling upgrade). */
static bool record_ok(const mn__repl_space *s, const mn_wire_repl_frame_t *f)
{
    if (f->version % 256 < 1) return true;
    return f->rec_epoch > s->rec_epoch ||
           (f->rec_epoch == s->rec_epoch && f->rec_version >= s->rec_version);
}

void mn__repl_on_vote_req(mn_spaces_repl_t *r, mn__repl_space *s, mn__repl_peer *p, int64_t now_us,
                          const mn_wire_repl_frame_t *f)
{
    uint64_t t = f->epoch;
    bool again = t == s->d.voted_epoch && strcmp(s->d.voted_for, p->node) == 0;
    bool transfer = f->flags & MN_WIRE_REPL_FLAG_TRANSFER;
    bool rec_ok = record_ok(s, f);
    bool grant = s->self_voter && p->voter && t > s->d.epoch && (t > s->d.voted_epoch || again) &&
                 !better(my_epoch(s), s->applied_lsn, "", f->last_epoch, f->lsn, "") &&
                 (transfer || !sticky(r, s, p, now_us)) && rec_ok;
    if (!rec_ok) r->stats.votes_refused_record++;
    if (grant && !again) {
        mn_assert(t > s->d.voted_epoch);
        s->d.voted_epoch = t;
        strcpy(s->d.voted_for, p->node);
        mn__repl_persist(r, s);
        r->stats.votes_granted++;
        if (s->role == MN_SPACES_REPL_CANDIDATE) { /* our own bid is for a lower epoch: drop it */
            s->role = MN_SPACES_REPL_FOLLOWER;
            for (size_t i = 0; i < s->n_peers; i++)
                s->peers[i].granted = false;
        }
    }
    mn_wire_repl_frame_t v = mn__repl_frame(r, s, MN_WIRE_REPL_VOTE);
    v.epoch = t;
    v.flags = grant ? MN_WIRE_REPL_FLAG_GRANTED : 0;
    /* the highest epoch this node followed or voted in: a refused candidate's next round
     * asks above it (Raft's candidate adopting a reply's newer term); an older node's vote
     * says 0 here, and its candidates climb one epoch a round as before */
    v.last_epoch = s->d.epoch > s->d.voted_epoch ? s->d.epoch : s->d.voted_epoch;
    mn__repl_send(r, s, p->node, &v);
}

void mn__repl_on_vote(mn_spaces_repl_t *r, mn__repl_space *s, mn__repl_peer *p, int64_t now_us,
                      const mn_wire_repl_frame_t *f)
{
    if (s->role != MN_SPACES_REPL_CANDIDATE || f->epoch != s->elect_epoch || !p->voter) return;
    if (!(f->flags & MN_WIRE_REPL_FLAG_GRANTED)) {
        if (f->last_epoch > s->refused_epoch) s->refused_epoch = f->last_epoch;
        return;
    }
    p->granted = true;
    check_votes(r, s, now_us);
}

/* The primary hands over to this node, which has every entry it wrote: a
 * round without the state phase, whose vote requests bypass the voters'
 * loyalty to their live primary (it asked for this). */
void mn__repl_on_handover(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us,
                          const mn_wire_repl_frame_t *f)
{
    if (!s->self_voter || !s->reconciled || s->applied_lsn != f->lsn) return;
    if (s->role == MN_SPACES_REPL_CANDIDATE) return; /* already asking */
    uint64_t t = s->d.epoch > s->d.voted_epoch ? s->d.epoch : s->d.voted_epoch;
    mn__repl_elect_stop(s);
    s->electing = true;
    s->elect_streak = 0;
    s->elect_epoch = t + 1;
    s->elect_deadline_us = now_us + r->cfg.election_timeout_us;
    r->stats.elections++;
    request_votes(r, s, now_us, true);
}

void mn__repl_elect_tick(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us)
{
    if (s->electing && now_us < s->elect_deadline_us) return;
    if (primary_lost(r, s, now_us)) {
        start_round(r, s, now_us);
        check_gathered(r, s, now_us);
    } else if (s->electing) {
        mn__repl_elect_stop(s);
    }
}

int64_t mn__repl_elect_deadline(const mn_spaces_repl_t *r, const mn__repl_space *s)
{
    if (s->electing) return s->elect_deadline_us;
    if (!s->self_voter || s->role == MN_SPACES_REPL_PRIMARY || s->snapshot_needed) return INT64_MAX;
    int64_t quiet_until = s->heard_us + r->cfg.election_timeout_us;
    if (!s->primary[0] || strcmp(s->primary, r->self) == 0) return quiet_until;
    for (size_t i = 0; i < s->n_peers; i++)
        if (strcmp(s->peers[i].node, s->primary) == 0)
            return s->peers[i].alive ? INT64_MAX : s->heard_us + r->cfg.vote_hold_us;
    return quiet_until;
}
