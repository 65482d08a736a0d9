/* The replication core driven by hand: write levels from acks, fencing of an
 * older epoch, gaps and bad checksums answered by a fetch, and a storm of
 * hostile frames (random bytes, and well-formed frames with random fields)
 * that must never crash it, lower its epoch, or hand the store an entry out
 * of order. simnet's scenarios (test_simnet_repl) run it under faults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/spaces.h"
#include "mnemo/util.h"
#include "mnemo/wire_repl.h"

#define LOG_MAX 4096

/* The node's world: its log, its durable state, the frames it sent. */
typedef struct world {
    mn_spaces_repl_t *core;
    uint64_t n;
    uint64_t epochs[LOG_MAX];
    uint8_t data[LOG_MAX][8];
    int out_of_order;
    uint64_t fail_lsn; /* the store fails this entry once (mn_spaces_repl_unapplied) */
    bool slow_store;   /* stored entries are said applied later, by the test */
    int demoted;       /* DEMOTED events, the last one's kept_lsn and lsn */
    uint64_t demoted_kept, demoted_lsn;
    uint64_t handed[16]; /* lsns handed to reapply, in order */
    int n_handed;
    mn_spaces_repl_durable_t d;
    int sent[16]; /* frames sent, by kind */
    _Alignas(8) uint8_t last[1 << 16];
    size_t last_len;
    char last_to[16];
} world;

static void w_send(void *user, const char *to, const uint8_t *frame, size_t len)
{
    world *w = user;
    mn_wire_repl_frame_t f;
    static mn_wire_repl_entry_t st[MN_WIRE_REPL_MAX_ENTRIES];
    memcpy(w->last, frame, len);
    w->last_len = len;
    snprintf(w->last_to, sizeof w->last_to, "%s", to);
    assert_int_equal(mn_wire_repl_decode(w->last, len, &f, st, MN_WIRE_REPL_MAX_ENTRIES), MN_OK);
    w->sent[f.kind]++;
}

static void w_apply(void *user, const char *space, uint64_t epoch, uint64_t lsn,
                    const uint8_t *data, size_t len)
{
    world *w = user;
    if (lsn != w->n + 1 || lsn >= LOG_MAX || len > 8) {
        w->out_of_order++;
        return;
    }
    if (lsn == w->fail_lsn) {
        w->fail_lsn = 0;
        mn_spaces_repl_unapplied(w->core, space);
        return;
    }
    w->epochs[lsn] = epoch;
    memcpy(w->data[lsn], data, len);
    w->n = lsn;
    if (!w->slow_store) mn_spaces_repl_applied(w->core, space, lsn);
}

static mn_err w_read(void *user, const char *space, uint64_t lsn, uint64_t *epoch,
                     const uint8_t **data, size_t *len)
{
    world *w = user;
    (void)space;
    if (lsn == 0 || lsn > w->n) return MN_ERR_NOT_FOUND;
    *epoch = w->epochs[lsn];
    *data = w->data[lsn];
    *len = 8;
    return MN_OK;
}

static mn_err w_truncate(void *user, const char *space, uint64_t after)
{
    world *w = user;
    (void)space;
    if (after < w->n) w->n = after;
    return MN_OK;
}

static void w_reapply(void *user, const char *space, uint64_t epoch, uint64_t lsn,
                      const uint8_t *data, size_t len)
{
    world *w = user;
    (void)space, (void)epoch, (void)data, (void)len;
    if (w->n_handed < 16) w->handed[w->n_handed] = lsn;
    w->n_handed++;
}

static void w_persist(void *user, const char *space, const mn_spaces_repl_durable_t *d)
{
    world *w = user;
    (void)space;
    w->d = *d;
}

/* A core "self" holding space "s" with n0, n1, n2 (voters); d NULL = new (n0 leads epoch 1). */
static void w_event(void *user, const mn_spaces_repl_event_t *ev)
{
    world *w = user;
    if (ev->type != MN_SPACES_REPL_DEMOTED) return;
    w->demoted++;
    w->demoted_kept = ev->kept_lsn;
    w->demoted_lsn = ev->lsn;
}

static world *world_new(const char *self, const mn_spaces_repl_durable_t *d, uint64_t last)
{
    world *w = calloc(1, sizeof *w);
    mn_spaces_repl_cb_t cb = {.user = w,
                              .send = w_send,
                              .apply = w_apply,
                              .read = w_read,
                              .truncate = w_truncate,
                              .reapply = w_reapply,
                              .persist = w_persist,
                              .event = w_event};
    assert_int_equal(mn_spaces_repl_new(self, NULL, &cb, 7, &w->core, NULL), MN_OK);
    mn_spaces_repl_holder_t h[3] = {{"n0", true}, {"n1", true}, {"n2", true}};
    w->n = last;
    if (d) w->d = *d;
    for (uint64_t i = 1; i <= last; i++)
        w->epochs[i] = 1;
    assert_int_equal(mn_spaces_repl_open(w->core, 0, "s", h, 3, d, last, NULL), MN_OK);
    return w;
}

static void world_free(world *w)
{
    mn_spaces_repl_free(w->core);
    free(w);
}

static mn_wire_repl_enc_t *enc;

/* Delivers f, for space "s" from `from`, to w's core. */
static void deliver_frame(world *w, int64_t now, const char *from, mn_wire_repl_frame_t *f)
{
    f->space = "s";
    f->space_len = 1;
    f->from = from;
    f->from_len = strlen(from);
    const uint8_t *out;
    size_t len;
    assert_int_equal(mn_wire_repl_encode(enc, f, &out, &len), MN_OK);
    mn_spaces_repl_on_message(w->core, now, out, len);
}

/* Delivers a frame of kind from `from` to w's core. */
static void deliver(world *w, int64_t now, uint8_t kind, const char *from, uint64_t epoch,
                    uint64_t lsn, uint64_t last_epoch, uint8_t flags, const mn_wire_repl_entry_t *e,
                    size_t ne)
{
    mn_wire_repl_frame_t f;
    memset(&f, 0, sizeof f);
    f.kind = kind;
    f.epoch = epoch;
    f.lsn = lsn;
    f.last_epoch = last_epoch;
    f.flags = flags;
    f.entries = e;
    f.n_entries = ne;
    deliver_frame(w, now, from, &f);
}

static mn_wire_repl_entry_t entry(uint64_t epoch, uint64_t lsn, const uint8_t *data, bool good)
{
    uint32_t crc = mn_wire_repl_entry_crc("s", 1, epoch, lsn, data, 8);
    return (mn_wire_repl_entry_t){epoch, lsn, good ? crc : crc ^ 1, data, 8};
}

/* The primary's log grows to lsns 1..n of epoch 1 (data d), each appended to the core. */
static void lead_writes(world *w, uint64_t n, const uint8_t d[8])
{
    for (uint64_t lsn = 1; lsn <= n; lsn++) {
        w->n = lsn;
        w->epochs[lsn] = 1;
        assert_int_equal(mn_spaces_repl_append(w->core, 10, "s", lsn, d, 8, NULL), MN_OK);
    }
}

static void test_spaces_repl_levels_follow_the_acks(void **state)
{
    (void)state;
    world *w = world_new("n0", NULL, 0);
    uint64_t epoch = 0;
    assert_true(mn_spaces_repl_writable(w->core, 0, "s", &epoch) && epoch == 1);
    static const uint8_t d[8] = {1};
    lead_writes(w, 3, d);
    assert_int_equal(mn_spaces_repl_append(w->core, 10, "s", 5, d, 8, NULL), MN_ERR_INVALID);
    assert_int_equal(mn_spaces_repl_reached(w->core, "s", MN_SPACES_ONE), 3);
    assert_int_equal(mn_spaces_repl_reached(w->core, "s", MN_SPACES_QUORUM), 0);
    deliver(w, 20, MN_WIRE_REPL_ACK, "n1", 1, 3, 0, 0, NULL, 0);
    assert_int_equal(mn_spaces_repl_reached(w->core, "s", MN_SPACES_QUORUM), 3);
    assert_int_equal(mn_spaces_repl_reached(w->core, "s", MN_SPACES_ALL), 0);
    deliver(w, 30, MN_WIRE_REPL_ACK, "n2", 1, 2, 0, 0, NULL, 0);
    assert_int_equal(mn_spaces_repl_reached(w->core, "s", MN_SPACES_ALL), 2);
    /* an ack past the log is not believed */
    deliver(w, 40, MN_WIRE_REPL_ACK, "n2", 1, 99, 0, 0, NULL, 0);
    assert_int_equal(mn_spaces_repl_reached(w->core, "s", MN_SPACES_ALL), 2);
    mn_spaces_repl_status_t st;
    assert_int_equal(mn_spaces_repl_status(w->core, 40, "s", &st), MN_OK);
    assert_int_equal(st.n_peers, 2);
    assert_int_equal(st.peers[1].lag_entries, 1);
    /* a newer epoch in a fetch demotes it: it takes no more writes; what a majority did not
     * acknowledge is past kept_lsn (here all three reached one: none) */
    deliver(w, 50, MN_WIRE_REPL_FENCED, "n1", 4, 0, 0, 0, NULL, 0);
    assert_false(mn_spaces_repl_writable(w->core, 50, "s", NULL));
    assert_int_equal(w->d.epoch, 4);
    assert_int_equal(w->demoted, 1);
    assert_int_equal(w->demoted_lsn, 3);
    assert_int_equal(w->demoted_kept, 3);
    assert_int_equal(mn_spaces_repl_append(w->core, 60, "s", 4, d, 8, NULL), MN_ERR_BUSY);
    world_free(w);
}

/* The lease decides which writes the node may take (writable, lease_until: what the engine
 * checks before it commits one), never which durable entries the core keeps: an entry the
 * engine committed before the lease lapsed is appended after it too, so it is in the core's
 * log, shipped or handed back past a fork, never left out of both. */
static void test_spaces_repl_the_lease_gates_writes_not_appends(void **state)
{
    (void)state;
    world *w = world_new("n0", NULL, 0);
    const int64_t lease = 1000000; /* the default lease_us */
    int64_t until = mn_spaces_repl_lease_until(w->core, "s");
    assert_true(until > 0 && until <= lease + 1);
    assert_true(mn_spaces_repl_writable(w->core, until - 1, "s", NULL));
    assert_false(mn_spaces_repl_writable(w->core, until, "s", NULL));
    /* one replica's ack makes a majority with this node: the lease runs from it */
    deliver(w, 500000, MN_WIRE_REPL_ACK, "n1", 1, 0, 0, 0, NULL, 0);
    until = mn_spaces_repl_lease_until(w->core, "s");
    assert_int_equal(until, 500000 + lease + 1);
    assert_true(mn_spaces_repl_writable(w->core, until - 1, "s", NULL));
    assert_false(mn_spaces_repl_writable(w->core, until, "s", NULL));
    /* the older ack of the other replica does not move it; a newer one does */
    deliver(w, 400000, MN_WIRE_REPL_ACK, "n2", 1, 0, 0, 0, NULL, 0);
    assert_int_equal(mn_spaces_repl_lease_until(w->core, "s"), 500000 + lease + 1);
    deliver(w, 700000, MN_WIRE_REPL_ACK, "n2", 1, 0, 0, 0, NULL, 0);
    assert_int_equal(mn_spaces_repl_lease_until(w->core, "s"), 700000 + lease + 1);
    /* past the lease: no write is taken, but an entry already durable is appended */
    static const uint8_t d[8] = {2};
    w->n = 1;
    w->epochs[1] = 1;
    assert_false(mn_spaces_repl_writable(w->core, 3 * lease, "s", NULL));
    assert_int_equal(mn_spaces_repl_append(w->core, 3 * lease, "s", 1, d, 8, NULL), MN_OK);
    assert_int_equal(mn_spaces_repl_reached(w->core, "s", MN_SPACES_ONE), 1);
    /* demoted: no lease, and appends are refused */
    deliver(w, 3 * lease, MN_WIRE_REPL_FENCED, "n1", 2, 0, 0, 0, NULL, 0);
    assert_int_equal(mn_spaces_repl_lease_until(w->core, "s"), INT64_MIN);
    w->n = 2;
    w->epochs[2] = 1;
    assert_int_equal(mn_spaces_repl_append(w->core, 3 * lease, "s", 2, d, 8, NULL), MN_ERR_BUSY);
    world_free(w);
}

/* A primary learns from its replicas' frames which holder record their cores count over
 * (what api/cluster_spaces_auth.c waits for before a voter change): none until a frame
 * came, then the newest said, never lower. */
static void test_spaces_repl_status_names_the_record_each_peer_counts_over(void **state)
{
    (void)state;
    world *w = world_new("n0", NULL, 0);
    mn_spaces_repl_status_t st;
    assert_int_equal(mn_spaces_repl_status(w->core, 10, "s", &st), MN_OK);
    assert_int_equal(st.n_peers, 2);
    assert_false(st.peers[0].rec_said || st.peers[1].rec_said);
    mn_wire_repl_frame_t f;
    memset(&f, 0, sizeof f);
    f.kind = MN_WIRE_REPL_ACK;
    f.epoch = 1;
    f.rec_epoch = 1;
    f.rec_version = 4;
    deliver_frame(w, 20, "n1", &f);
    f.rec_version = 2; /* an older frame, reordered: no way down */
    deliver_frame(w, 30, "n1", &f);
    assert_int_equal(mn_spaces_repl_status(w->core, 40, "s", &st), MN_OK);
    const mn_spaces_repl_peer_status_t *n1 =
        !strcmp(st.peers[0].node, "n1") ? &st.peers[0] : &st.peers[1];
    const mn_spaces_repl_peer_status_t *n2 = n1 == &st.peers[0] ? &st.peers[1] : &st.peers[0];
    assert_string_equal(n1->node, "n1");
    assert_true(n1->rec_said && n1->rec_epoch == 1 && n1->rec_version == 4);
    assert_false(n2->rec_said);
    world_free(w);
}

/* A vote request for epoch from n2 naming its holder record; returns the answer's flags. */
static uint8_t vote_req_with_record(world *w, int64_t now, uint64_t epoch, uint64_t rec_epoch,
                                    uint64_t rec_version)
{
    mn_wire_repl_frame_t f;
    memset(&f, 0, sizeof f);
    f.kind = MN_WIRE_REPL_VOTE_REQ;
    f.epoch = epoch;
    f.rec_epoch = rec_epoch;
    f.rec_version = rec_version;
    int before = w->sent[MN_WIRE_REPL_VOTE];
    deliver_frame(w, now, "n2", &f);
    assert_int_equal(w->sent[MN_WIRE_REPL_VOTE], before + 1);
    mn_wire_repl_frame_t got;
    static mn_wire_repl_entry_t st[4];
    assert_int_equal(mn_wire_repl_decode(w->last, w->last_len, &got, st, 4), MN_OK);
    assert_int_equal(got.kind, MN_WIRE_REPL_VOTE);
    assert_int_equal(got.epoch, epoch);
    return got.flags;
}

/* A voter that applied a holder record refuses a candidate whose record is older (it may
 * count a majority over the previous voters), and grants one as new or newer; its own
 * frames carry its record. */
static void test_spaces_repl_a_voter_refuses_a_candidate_of_an_older_record(void **state)
{
    (void)state;
    world *w = world_new("n1", NULL, 0);
    const int64_t later = 10000000; /* long past any lease of n0's */
    assert_int_equal(mn_spaces_repl_set_record(w->core, "s", 1, 3, NULL), MN_OK);
    assert_int_equal(mn_spaces_repl_set_record(w->core, "s", 1, 2, NULL), MN_OK); /* no way down */
    assert_int_equal(mn_spaces_repl_set_record(w->core, "zz", 1, 2, NULL), MN_ERR_NOT_FOUND);
    mn_spaces_repl_stats_t st;
    assert_int_equal(vote_req_with_record(w, later, 2, 1, 2), 0);
    assert_int_equal(vote_req_with_record(w, later, 2, 0, 9), 0);
    mn_spaces_repl_stats(w->core, &st);
    assert_int_equal(st.votes_refused_record, 2);
    assert_int_equal(st.votes_granted, 0);
    assert_int_equal(w->d.voted_epoch, 0); /* a refusal uses no vote */
    /* its own frames say which record it counts over */
    mn_wire_repl_frame_t got;
    static mn_wire_repl_entry_t es[4];
    assert_int_equal(mn_wire_repl_decode(w->last, w->last_len, &got, es, 4), MN_OK);
    assert_int_equal(got.version, MN_WIRE_REPL_VERSION);
    assert_true(got.rec_epoch == 1 && got.rec_version == 3);
    /* the same record: granted (and persisted first) */
    assert_int_equal(vote_req_with_record(w, later, 2, 1, 3), MN_WIRE_REPL_FLAG_GRANTED);
    assert_int_equal(w->d.voted_epoch, 2);
    /* a newer one (a later epoch's record) too */
    assert_int_equal(vote_req_with_record(w, later + 1, 3, 2, 1), MN_WIRE_REPL_FLAG_GRANTED);
    mn_spaces_repl_stats(w->core, &st);
    assert_int_equal(st.votes_granted, 2);
    world_free(w);
}

/* A round of w's (a restarted "n2" with the best log) at now: n0 and n1 answer its state
 * request with worse logs; returns the epoch its vote request asks for. */
static uint64_t round_asks_for(world *w, int64_t now)
{
    mn_spaces_repl_on_tick(w->core, now);
    deliver(w, now + 1, MN_WIRE_REPL_STATE, "n0", 1, 0, 1, 0, NULL, 0);
    deliver(w, now + 1, MN_WIRE_REPL_STATE, "n1", 1, 0, 1, 0, NULL, 0);
    mn_wire_repl_frame_t got;
    static mn_wire_repl_entry_t es[4];
    assert_int_equal(mn_wire_repl_decode(w->last, w->last_len, &got, es, 4), MN_OK);
    assert_int_equal(got.kind, MN_WIRE_REPL_VOTE_REQ);
    return got.epoch;
}

/* A refused vote says the highest epoch the voter followed or voted in, and the candidate's
 * next round asks above it: a node back from a long absence, while the others ran rounds
 * that never won, climbs at once instead of one epoch a round (simnet's membership-random
 * seed 2373 took 18 rounds, 8 s, to elect after a heal). */
static void test_spaces_repl_a_refused_candidate_asks_above_the_voters_epoch(void **state)
{
    (void)state;
    /* the voter's side: it voted in epoch 9, a request for 3 is refused, saying 9 */
    mn_spaces_repl_durable_t dv = {.epoch = 1, .voted_epoch = 9};
    strcpy(dv.voted_for, "n1");
    world *v = world_new("n1", &dv, 0);
    assert_int_equal(vote_req_with_record(v, 10000000, 3, 0, 0), 0);
    mn_wire_repl_frame_t got;
    static mn_wire_repl_entry_t es[4];
    assert_int_equal(mn_wire_repl_decode(v->last, v->last_len, &got, es, 4), MN_OK);
    assert_int_equal(got.last_epoch, 9);
    /* an epoch no election reaches (2^48 and up) is hostile: the frame is dropped, no vote */
    mn_wire_repl_frame_t big;
    memset(&big, 0, sizeof big);
    big.kind = MN_WIRE_REPL_VOTE_REQ;
    big.epoch = UINT64_MAX;
    int votes = v->sent[MN_WIRE_REPL_VOTE];
    deliver_frame(v, 10000001, "n2", &big);
    assert_int_equal(v->sent[MN_WIRE_REPL_VOTE], votes);
    assert_int_equal(v->d.voted_epoch, 9);
    mn_spaces_repl_stats_t vst;
    mn_spaces_repl_stats(v->core, &vst);
    assert_int_equal(vst.dropped_decode, 1);
    world_free(v);
    /* the candidate's side: n2 restarted with the best log (2 entries of epoch 1) */
    mn_spaces_repl_durable_t dc = {.epoch = 1, .n_history = 1};
    dc.history[0] = (mn_spaces_repl_epoch_start_t){1, 1};
    world *w = world_new("n2", &dc, 2);
    int64_t now = 400000; /* past the election timeout without a primary */
    assert_int_equal(round_asks_for(w, now), 2);
    mn_wire_repl_frame_t no;
    memset(&no, 0, sizeof no);
    no.kind = MN_WIRE_REPL_VOTE;
    no.epoch = 2;
    no.last_epoch = 1ull << 60; /* hostile: dropped, the next round does not wrap */
    deliver_frame(w, now + 2, "n0", &no);
    no.last_epoch = 9;
    deliver_frame(w, now + 2, "n0", &no);
    no.last_epoch = 7;
    deliver_frame(w, now + 2, "n1", &no);
    /* the round's deadline passes: the next round asks for 10 */
    now += 2000000;
    assert_int_equal(round_asks_for(w, now), 10);
    assert_int_equal(w->d.voted_epoch, 10);
    world_free(w);
}

/* The lease runs from the send time an acknowledgement echoes (the primary's own clock),
 * not from when the ack arrived: acks that waited in a socket while the primary was paused
 * renew nothing past the appends they answer. An echo from the future counts as now. */
static void test_spaces_repl_the_lease_runs_from_the_echoed_send_time(void **state)
{
    (void)state;
    world *w = world_new("n0", NULL, 0);
    const int64_t lease = 1000000;
    mn_wire_repl_frame_t f;
    memset(&f, 0, sizeof f);
    f.kind = MN_WIRE_REPL_ACK;
    f.epoch = 1;
    f.echo_us = 200000; /* answers an append sent at 0.2 s, arrives at 5 s */
    deliver_frame(w, 5000000, "n1", &f);
    assert_int_equal(mn_spaces_repl_lease_until(w->core, "s"), 200000 + lease + 1);
    assert_false(mn_spaces_repl_writable(w->core, 5000000, "s", NULL));
    f.echo_us = 9000000; /* later than now: counts as now */
    deliver_frame(w, 6000000, "n2", &f);
    assert_int_equal(mn_spaces_repl_lease_until(w->core, "s"), 6000000 + lease + 1);
    /* its appends carry their send time, which the followers echo */
    static const uint8_t d[8] = {3};
    w->n = 1;
    w->epochs[1] = 1;
    assert_int_equal(mn_spaces_repl_append(w->core, 6100000, "s", 1, d, 8, NULL), MN_OK);
    mn_spaces_repl_on_tick(w->core, 6200000);
    mn_wire_repl_frame_t got;
    static mn_wire_repl_entry_t es[4];
    assert_int_equal(mn_wire_repl_decode(w->last, w->last_len, &got, es, 4), MN_OK);
    assert_int_equal(got.kind, MN_WIRE_REPL_APPEND);
    assert_true(got.echo_us >= 6100000 && got.echo_us <= 6200000);
    world_free(w);
}

/* A voter that heard its primary within vote_hold_us grants no vote, even once SWIM declares
 * the primary dead: the primary may still hold its lease (and the server's grace) and serve
 * reads. After that it grants. */
static void test_spaces_repl_no_vote_while_the_primary_may_hold_its_lease(void **state)
{
    (void)state;
    world *w = world_new("n1", NULL, 0);
    const int64_t hold = 2000000; /* vote_hold_us: the lease and the server's grace */
    deliver(w, 100000, MN_WIRE_REPL_APPEND, "n0", 1, 0, 0, 0, NULL, 0);
    mn_spaces_repl_member(w->core, 150000, "n0", false);
    assert_int_equal(vote_req_with_record(w, 600000, 2, 0, 0), 0);
    assert_int_equal(vote_req_with_record(w, 100000 + hold - 1, 2, 0, 0), 0);
    assert_int_equal(w->d.voted_epoch, 0);
    assert_int_equal(vote_req_with_record(w, 100000 + hold, 2, 0, 0), MN_WIRE_REPL_FLAG_GRANTED);
    assert_int_equal(w->d.voted_epoch, 2);
    world_free(w);
}

/* "n1" restarted: it followed epoch 3, its log holds lsns 1..2 of epoch 1. */
static world *replica_at_epoch_3(void)
{
    mn_spaces_repl_durable_t d;
    memset(&d, 0, sizeof d);
    d.epoch = 3;
    d.history[0] = (mn_spaces_repl_epoch_start_t){1, 1};
    d.n_history = 1;
    return world_new("n1", &d, 2);
}

static void test_spaces_repl_fences_an_older_epoch(void **state)
{
    (void)state;
    world *w = replica_at_epoch_3();
    deliver(w, 10, MN_WIRE_REPL_APPEND, "n0", 2, 2, 0, 0, NULL, 0);
    assert_int_equal(w->sent[MN_WIRE_REPL_FENCED], 1);
    assert_string_equal(w->last_to, "n0");
    assert_int_equal(w->d.epoch, 3);
    world_free(w);
}

static int64_t fresh_us(world *w)
{
    mn_spaces_repl_status_t st;
    assert_int_equal(mn_spaces_repl_status(w->core, 0, "s", &st), MN_OK);
    return st.fresh_us;
}

/* A follower knows its own lag: the newest instant its store held all its primary's appends
 * said the primary had. */
static void test_spaces_repl_a_follower_knows_how_far_behind_it_is(void **state)
{
    (void)state;
    world *w = world_new("n1", NULL, 0); /* n0 leads epoch 1 */
    w->slow_store = true;
    static const uint8_t d[8] = {7};
    mn_wire_repl_entry_t e[3] = {entry(1, 1, d, true), entry(1, 2, d, true), entry(1, 3, d, true)};
    /* not reconciled: not known */
    deliver(w, 10, MN_WIRE_REPL_APPEND, "n0", 1, 3, 0, 0, e, 1);
    assert_int_equal(fresh_us(w), 0);
    /* the checked answer carries lsn 1 of the primary's 3: stored, not yet applied */
    deliver(w, 20, MN_WIRE_REPL_APPEND, "n0", 1, 3, 0, MN_WIRE_REPL_FLAG_CHECKED, e, 1);
    assert_int_equal(w->n, 1);
    assert_int_equal(fresh_us(w), 0);
    mn_spaces_repl_applied(w->core, "s", 1);
    assert_int_equal(fresh_us(w), 0); /* 1 of 3: still behind what it heard at 20 */
    /* the rest at 30, the primary's end still 3: applied, it is fresh as of 30 */
    deliver(w, 30, MN_WIRE_REPL_APPEND, "n0", 1, 3, 0, 0, e + 1, 2);
    assert_int_equal(w->n, 3);
    assert_int_equal(fresh_us(w), 0);
    mn_spaces_repl_applied(w->core, "s", 3);
    assert_int_equal(fresh_us(w), 30);
    /* an idle primary's heartbeat: fresh as of then */
    deliver(w, 1000, MN_WIRE_REPL_APPEND, "n0", 1, 3, 0, 0, NULL, 0);
    assert_int_equal(fresh_us(w), 1000);
    /* the primary moves on (lsn 5) and the store here is slow: it stays fresh as of 1000 */
    mn_wire_repl_entry_t e4 = entry(1, 4, d, true), e5 = entry(1, 5, d, true);
    deliver(w, 2000, MN_WIRE_REPL_APPEND, "n0", 1, 5, 0, 0, &e4, 1);
    deliver(w, 3000, MN_WIRE_REPL_APPEND, "n0", 1, 5, 0, 0, &e5, 1);
    assert_int_equal(fresh_us(w), 1000);
    mn_spaces_repl_applied(w->core, "s", 4);
    assert_int_equal(fresh_us(w), 1000);
    mn_spaces_repl_applied(w->core, "s", 5);
    assert_int_equal(fresh_us(w), 3000);
    /* a new epoch (another primary): what the old one said no longer counts */
    deliver(w, 4000, MN_WIRE_REPL_APPEND, "n2", 2, 5, 1, 0, NULL, 0);
    assert_int_equal(fresh_us(w), 0);
    world_free(w);
}

/* A primary whose log begins at a snapshot's base (lsn 269, epoch 2) asked by a replica whose
 * log ends below it (267): it cannot ship lsn 268 nor compare its epoch, so it answers that a
 * snapshot is needed. It used to answer a truncation point the replica was already at, and
 * the replica fetched again, for good (chaos seed 3: a copy stuck a minute until another
 * node led). */
static void test_spaces_repl_a_replica_below_the_primarys_snapshot_base_gets_a_snapshot(
    void **state)
{
    (void)state;
    mn_spaces_repl_durable_t d;
    memset(&d, 0, sizeof d);
    d.epoch = 3;
    d.base_lsn = 269;
    d.history[0] = (mn_spaces_repl_epoch_start_t){2, 269};
    d.history[1] = (mn_spaces_repl_epoch_start_t){3, 270};
    d.n_history = 2;
    world *w = world_new("n0", &d, 273);
    for (uint64_t lsn = 270; lsn <= 273; lsn++)
        w->epochs[lsn] = 3;
    /* no primary heard: it gathers the voters' states (n1 is behind it), stands for epoch 4,
     * and n1's vote makes it the primary */
    const int64_t later = 60000000;
    mn_spaces_repl_on_tick(w->core, later);
    assert_true(w->sent[MN_WIRE_REPL_STATE] > 0);
    deliver(w, later, MN_WIRE_REPL_STATE, "n1", 3, 260, 2, 0, NULL, 0);
    mn_spaces_repl_on_tick(w->core, later + 1);
    assert_true(w->sent[MN_WIRE_REPL_VOTE_REQ] > 0);
    mn_wire_repl_frame_t v;
    memset(&v, 0, sizeof v);
    v.kind = MN_WIRE_REPL_VOTE;
    v.epoch = 4;
    v.flags = MN_WIRE_REPL_FLAG_GRANTED;
    deliver_frame(w, later + 1, "n1", &v);
    mn_spaces_repl_status_t st;
    assert_int_equal(mn_spaces_repl_status(w->core, later + 1, "s", &st), MN_OK);
    assert_int_equal(st.role, MN_SPACES_REPL_PRIMARY);
    /* n2's log ends at 267 (epoch 2): below the base */
    int snaps = w->sent[MN_WIRE_REPL_SNAPSHOT], truncs = w->sent[MN_WIRE_REPL_TRUNCATE];
    deliver(w, later + 2, MN_WIRE_REPL_FETCH, "n2", 4, 268, 2, 0, NULL, 0);
    assert_int_equal(w->sent[MN_WIRE_REPL_SNAPSHOT], snaps + 1);
    assert_int_equal(w->sent[MN_WIRE_REPL_TRUNCATE], truncs);
    assert_string_equal(w->last_to, "n2");
    world_free(w);
}

static void test_spaces_repl_gaps_and_bad_checksums_fetch_and_skip_nothing(void **state)
{
    (void)state;
    world *w = world_new("n1", NULL, 0); /* n0 leads epoch 1 */
    static const uint8_t d[8] = {7};
    /* not reconciled yet: the first append makes it fetch */
    mn_wire_repl_entry_t e1 = entry(1, 1, d, true);
    deliver(w, 10, MN_WIRE_REPL_APPEND, "n0", 1, 1, 0, 0, &e1, 1);
    assert_int_equal(w->n, 0);
    assert_int_equal(w->sent[MN_WIRE_REPL_FETCH], 1);
    /* the checked answer: taken, acknowledged */
    deliver(w, 20, MN_WIRE_REPL_APPEND, "n0", 1, 1, 0, MN_WIRE_REPL_FLAG_CHECKED, &e1, 1);
    assert_int_equal(w->n, 1);
    assert_int_equal(w->sent[MN_WIRE_REPL_ACK], 1);
    /* a gap (lsn 3 after 1): nothing taken, a fetch */
    mn_wire_repl_entry_t e3 = entry(1, 3, d, true);
    deliver(w, 30, MN_WIRE_REPL_APPEND, "n0", 1, 3, 0, 0, &e3, 1);
    assert_int_equal(w->n, 1);
    assert_int_equal(w->sent[MN_WIRE_REPL_FETCH], 2);
    /* a bad checksum: nothing taken, a fetch */
    mn_wire_repl_entry_t bad = entry(1, 2, d, false);
    deliver(w, 40, MN_WIRE_REPL_APPEND, "n0", 1, 2, 0, 0, &bad, 1);
    assert_int_equal(w->n, 1);
    assert_int_equal(w->sent[MN_WIRE_REPL_FETCH], 3);
    mn_spaces_repl_stats_t st;
    mn_spaces_repl_stats(w->core, &st);
    assert_true(st.gaps == 1 && st.bad_crc == 1);
    world_free(w);
}

/* A store that fails an entry: the core's log ends at the last entry stored again (not at
 * the one handed over, which an election would have led with while the store lacked it),
 * the rest of the frame is not handed over, and the entries are fetched again. */
static void test_spaces_repl_a_failed_store_is_fetched_again(void **state)
{
    (void)state;
    world *w = world_new("n1", NULL, 0); /* n0 leads epoch 1 */
    static const uint8_t d[8] = {7};
    mn_wire_repl_entry_t e[4];
    for (uint64_t i = 0; i < 4; i++)
        e[i] = entry(1, i + 1, d, true);
    deliver(w, 10, MN_WIRE_REPL_APPEND, "n0", 1, 1, 0, MN_WIRE_REPL_FLAG_CHECKED, e, 1);
    assert_int_equal(w->n, 1);
    w->fail_lsn = 3;
    deliver(w, 20, MN_WIRE_REPL_APPEND, "n0", 1, 4, 0, 0, e + 1, 3);
    assert_int_equal(w->n, 2);
    assert_int_equal(w->out_of_order, 0);
    mn_spaces_repl_status_t st;
    assert_int_equal(mn_spaces_repl_status(w->core, 20, "s", &st), MN_OK);
    assert_int_equal(st.last_lsn, 2);
    assert_int_equal(st.applied_lsn, 2);
    /* an append is not taken until the fetch from lsn 3 is answered */
    int fetches = w->sent[MN_WIRE_REPL_FETCH];
    deliver(w, 30, MN_WIRE_REPL_APPEND, "n0", 1, 4, 0, 0, e + 3, 1);
    assert_int_equal(w->n, 2);
    assert_int_equal(w->sent[MN_WIRE_REPL_FETCH], fetches + 1);
    mn_wire_repl_frame_t f;
    static mn_wire_repl_entry_t fe[MN_WIRE_REPL_MAX_ENTRIES];
    assert_int_equal(mn_wire_repl_decode(w->last, w->last_len, &f, fe, MN_WIRE_REPL_MAX_ENTRIES),
                     MN_OK);
    assert_int_equal(f.kind, MN_WIRE_REPL_FETCH);
    assert_int_equal(f.lsn, 3);
    deliver(w, 40, MN_WIRE_REPL_APPEND, "n0", 1, 4, 0, MN_WIRE_REPL_FLAG_CHECKED, e + 2, 2);
    assert_int_equal(w->n, 4);
    assert_int_equal(w->out_of_order, 0);
    mn_spaces_repl_stats_t s;
    mn_spaces_repl_stats(w->core, &s);
    assert_int_equal(s.unapplied, 1);
    /* nothing to undo once the store holds everything handed over */
    mn_spaces_repl_unapplied(w->core, "s");
    assert_int_equal(mn_spaces_repl_status(w->core, 50, "s", &st), MN_OK);
    assert_int_equal(st.last_lsn, 4);
    world_free(w);
}

/* A primary deposed with writes no majority acknowledged: its DEMOTED event names the last
 * one a majority had (the server hands back everything after it to the new primary). */
static void test_spaces_repl_a_deposed_primary_names_what_a_majority_had(void **state)
{
    (void)state;
    world *w = world_new("n0", NULL, 0); /* n0 leads epoch 1 from lsn 1 */
    static const uint8_t d[8] = {2};
    lead_writes(w, 5, d);
    deliver(w, 20, MN_WIRE_REPL_ACK, "n1", 1, 2, 0, 0, NULL, 0); /* lsns 1, 2 on a majority */
    assert_int_equal(mn_spaces_repl_reached(w->core, "s", MN_SPACES_QUORUM), 2);
    deliver(w, 30, MN_WIRE_REPL_FENCED, "n2", 2, 0, 0, 0, NULL, 0);
    assert_int_equal(w->demoted, 1);
    assert_int_equal(w->demoted_lsn, 5);
    assert_int_equal(w->demoted_kept, 2); /* 3..5: `one` writes no majority had */
    world_free(w);
}

/* A deposed primary whose copy is closed before it reconciled with the new primary (its
 * holder record dropped it) hands back the entries of the epoch it led that no majority had
 * acknowledged: its `one` writes are re-applied, not dropped with the copy. Its state says
 * so across a restart (led_epoch, led_acked), and mn_spaces_repl_hand_back does the same
 * for a copy the core never opened again. A copy that reconciled hands back nothing. */
static void
test_spaces_repl_a_closed_deposed_primary_hands_back_its_unacknowledged_entries(void **state)
{
    (void)state;
    world *w = world_new("n0", NULL, 0);
    static const uint8_t d[8] = {2};
    lead_writes(w, 5, d);
    deliver(w, 20, MN_WIRE_REPL_ACK, "n1", 1, 2, 0, 0, NULL, 0);
    assert_true(w->d.led_epoch == 1 && w->d.led_acked == 0); /* saved at promotion */
    deliver(w, 30, MN_WIRE_REPL_FENCED, "n2", 2, 0, 0, 0, NULL, 0);
    assert_int_equal(w->demoted, 1);
    assert_true(w->d.led_epoch == 1 && w->d.led_acked == 2); /* saved with the new epoch */
    assert_int_equal(mn_spaces_repl_close(w->core, "s", NULL), MN_OK);
    assert_int_equal(w->n_handed, 3);
    assert_true(w->handed[0] == 3 && w->handed[1] == 4 && w->handed[2] == 5);
    assert_int_equal(w->d.led_epoch, 0);
    /* the same state after a restart, the copy never opened: handed back from its state */
    mn_spaces_repl_durable_t st = {.epoch = 2, .led_epoch = 1, .led_acked = 2};
    w->n_handed = 0;
    assert_int_equal(mn_spaces_repl_hand_back(w->core, "s", &st, 5), 3);
    assert_int_equal(w->handed[0], 3);
    assert_int_equal(w->d.led_epoch, 0); /* persisted without them */
    assert_int_equal(mn_spaces_repl_hand_back(w->core, "s", &w->d, 5), 0);
    world_free(w);
    /* a deposed primary that reconciled with the next one: nothing to hand back */
    w = world_new("n0", NULL, 0);
    lead_writes(w, 2, d);
    deliver(w, 30, MN_WIRE_REPL_FENCED, "n2", 2, 0, 0, 0, NULL, 0);
    deliver(w, 40, MN_WIRE_REPL_APPEND, "n2", 2, 2, 0, MN_WIRE_REPL_FLAG_CHECKED, NULL, 0);
    assert_int_equal(w->d.led_epoch, 0); /* reconciled at epoch 2 */
    assert_int_equal(mn_spaces_repl_close(w->core, "s", NULL), MN_OK);
    assert_int_equal(w->n_handed, 0);
    world_free(w);
}

/* The creator of a space opens it with the entries its engine wrote already, at its first
 * epoch: its history says so. Deposed later, it keeps them (the epoch it led began after
 * them), and its fetch to the new primary names their epoch: the new primary, whose log
 * has them of that epoch, ships what follows (a fetch naming epoch 0, "not known", was
 * answered "snapshot needed": every handed-over space cost a snapshot). */
static void test_spaces_repl_the_creators_first_entries_are_of_its_first_epoch(void **state)
{
    (void)state;
    world *w = world_new("n0", NULL, 1); /* n0 leads epoch 1; lsn 1 is its engine's */
    assert_int_equal(w->d.n_history, 1);
    assert_true(w->d.history[0].epoch == 1 && w->d.history[0].lsn == 1);
    static const uint8_t d[8] = {4};
    w->n = 2;
    w->epochs[2] = 1;
    assert_int_equal(mn_spaces_repl_append(w->core, 10, "s", 2, d, 8, NULL), MN_OK);
    deliver(w, 30, MN_WIRE_REPL_APPEND, "n1", 2, 2, 0, 0, NULL, 0); /* n1 leads epoch 2 */
    assert_int_equal(w->demoted, 1);
    assert_int_equal(w->demoted_kept, 1); /* lsn 2, written as primary, was on no majority */
    mn_wire_repl_frame_t f;
    static mn_wire_repl_entry_t fe[MN_WIRE_REPL_MAX_ENTRIES];
    assert_int_equal(mn_wire_repl_decode(w->last, w->last_len, &f, fe, MN_WIRE_REPL_MAX_ENTRIES),
                     MN_OK);
    assert_int_equal(f.kind, MN_WIRE_REPL_FETCH);
    assert_string_equal(w->last_to, "n1");
    assert_true(f.lsn == 3 && f.last_epoch == 1);
    world_free(w);

    /* the primary's side: a fetch naming (1, epoch 1) from a log whose lsn 1 is of epoch 1
     * is shipped from lsn 2, checked */
    w = world_new("n0", NULL, 1);
    w->n = 2;
    w->epochs[2] = 1;
    assert_int_equal(mn_spaces_repl_append(w->core, 10, "s", 2, d, 8, NULL), MN_OK);
    deliver(w, 20, MN_WIRE_REPL_FETCH, "n2", 1, 2, 1, 0, NULL, 0);
    assert_int_equal(mn_wire_repl_decode(w->last, w->last_len, &f, fe, MN_WIRE_REPL_MAX_ENTRIES),
                     MN_OK);
    assert_int_equal(f.kind, MN_WIRE_REPL_APPEND);
    assert_true((f.flags & MN_WIRE_REPL_FLAG_CHECKED) && f.n_entries == 1);
    assert_int_equal(f.entries[0].lsn, 2);
    assert_int_equal(w->sent[MN_WIRE_REPL_SNAPSHOT], 0);
    world_free(w);
}

/* A replica whose copy was dropped and opened again empty in the same epoch (a record
 * dropped it, a newer one listed it again) fetches from nothing: the primary ships it the
 * log from the start and counts it from 0, no longer for what it acknowledged before. A
 * fetch below its ack from anywhere else is an old one: ignored. */
static void test_spaces_repl_a_replica_fetching_from_nothing_is_shipped_from_the_start(void **state)
{
    (void)state;
    world *w = world_new("n0", NULL, 0);
    static const uint8_t d[8] = {3};
    lead_writes(w, 3, d);
    deliver(w, 20, MN_WIRE_REPL_ACK, "n1", 1, 3, 0, 0, NULL, 0);
    assert_int_equal(mn_spaces_repl_reached(w->core, "s", MN_SPACES_QUORUM), 3);
    int appends = w->sent[MN_WIRE_REPL_APPEND];
    deliver(w, 30, MN_WIRE_REPL_FETCH, "n1", 1, 2, 1, 0, NULL, 0); /* an old fetch */
    assert_int_equal(w->sent[MN_WIRE_REPL_APPEND], appends);
    assert_int_equal(mn_spaces_repl_reached(w->core, "s", MN_SPACES_QUORUM), 3);
    deliver(w, 40, MN_WIRE_REPL_FETCH, "n1", 1, 1, 0, 0, NULL, 0); /* from nothing */
    assert_int_equal(mn_spaces_repl_reached(w->core, "s", MN_SPACES_QUORUM), 0);
    assert_true(w->sent[MN_WIRE_REPL_APPEND] > appends);
    mn_wire_repl_frame_t f;
    static mn_wire_repl_entry_t fe[MN_WIRE_REPL_MAX_ENTRIES];
    assert_int_equal(mn_wire_repl_decode(w->last, w->last_len, &f, fe, MN_WIRE_REPL_MAX_ENTRIES),
                     MN_OK);
    assert_int_equal(f.kind, MN_WIRE_REPL_APPEND);
    assert_true(f.flags & MN_WIRE_REPL_FLAG_CHECKED);
    assert_string_equal(w->last_to, "n1");
    assert_true(f.n_entries == 3 && f.entries[0].lsn == 1);
    deliver(w, 50, MN_WIRE_REPL_ACK, "n1", 1, 3, 0, 0, NULL, 0); /* caught up again */
    assert_int_equal(mn_spaces_repl_reached(w->core, "s", MN_SPACES_QUORUM), 3);
    mn_spaces_repl_stats_t st;
    mn_spaces_repl_stats(w->core, &st);
    assert_int_equal(st.restarted_logs, 1);
    world_free(w);
}

static void test_spaces_repl_hostile_frames_never_break_it(void **state)
{
    (void)state;
    static const char *const FROM[] = {"n0", "n2", "x9"};
    mn_prng_t g;
    mn_prng_seed(&g, 42);
    for (int run = 0; run < 20; run++) {
        world *w = world_new(run % 2 ? "n1" : "n0", NULL, 0);
        uint64_t epoch_seen = 1;
        int64_t now = 0;
        for (int i = 0; i < 3000; i++) {
            now += (int64_t)mn_prng_below(&g, 20000);
            if (i % 5 == 0) { /* random bytes */
                uint8_t junk[64];
                size_t len = (size_t)mn_prng_below(&g, sizeof junk);
                for (size_t k = 0; k < len; k++)
                    junk[k] = (uint8_t)mn_prng_next(&g);
                mn_spaces_repl_on_message(w->core, now, junk, len);
            } else {
                static const uint8_t d[8] = {3};
                mn_wire_repl_entry_t e[3];
                size_t ne = (size_t)mn_prng_below(&g, 4);
                uint64_t base = mn_prng_below(&g, 8);
                for (size_t k = 0; k < ne; k++)
                    e[k] = entry(1 + mn_prng_below(&g, 4), base + k, d, mn_prng_below(&g, 4) != 0);
                deliver(w, now, (uint8_t)(1 + mn_prng_below(&g, MN_WIRE_REPL_KIND_MAX)),
                        FROM[mn_prng_below(&g, 3)], mn_prng_below(&g, 6), mn_prng_below(&g, 12),
                        mn_prng_below(&g, 6), (uint8_t)mn_prng_below(&g, 2), e, ne);
            }
            if (mn_spaces_repl_next_deadline(w->core) <= now) mn_spaces_repl_on_tick(w->core, now);
            mn_spaces_repl_status_t st;
            assert_int_equal(mn_spaces_repl_status(w->core, now, "s", &st), MN_OK);
            assert_true(st.epoch >= epoch_seen);
            epoch_seen = st.epoch;
        }
        assert_int_equal(w->out_of_order, 0);
        world_free(w);
    }
}

static int setup(void **state)
{
    (void)state;
    enc = mn_wire_repl_enc_new();
    return enc ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    mn_wire_repl_enc_free(enc);
    return 0;
}

/* A copy moved away is closed: never while it leads; its durable state keeps the epoch and
 * the vote and forgets the log; frames for it are dropped; no timer is left. */
static void test_spaces_repl_close_refuses_the_primary_then_forgets_the_space(void **state)
{
    (void)state;
    world *w = world_new("n0", NULL, 0);
    assert_int_equal(mn_spaces_repl_close(w->core, "s", NULL), MN_ERR_BUSY);
    assert_int_equal(mn_spaces_repl_close(w->core, "t", NULL), MN_ERR_NOT_FOUND);
    deliver(w, 50, MN_WIRE_REPL_FENCED, "n1", 4, 0, 0, 0, NULL, 0); /* deposed */
    assert_int_equal(mn_spaces_repl_close(w->core, "s", NULL), MN_OK);
    assert_int_equal(w->d.epoch, 4);
    assert_int_equal(w->d.n_history, 0);
    assert_int_equal(w->d.base_lsn, 0);
    mn_spaces_repl_status_t st;
    assert_int_equal(mn_spaces_repl_status(w->core, 60, "s", &st), MN_ERR_NOT_FOUND);
    assert_int_equal(mn_spaces_repl_next_deadline(w->core), INT64_MAX);
    mn_spaces_repl_stats_t s0, s1;
    mn_spaces_repl_stats(w->core, &s0);
    assert_int_equal(s0.closed, 1);
    int sent = w->sent[MN_WIRE_REPL_FETCH] + w->sent[MN_WIRE_REPL_FENCED];
    deliver(w, 70, MN_WIRE_REPL_APPEND, "n1", 4, 3, 0, 0, NULL, 0);
    mn_spaces_repl_stats(w->core, &s1);
    assert_int_equal(s1.dropped_unknown, s0.dropped_unknown + 1);
    assert_int_equal(w->sent[MN_WIRE_REPL_FETCH] + w->sent[MN_WIRE_REPL_FENCED], sent);
    assert_int_equal(mn_spaces_repl_close(w->core, "s", NULL), MN_ERR_NOT_FOUND);
    world_free(w);
}

/* A name dropped and created again is another space: once the core knows its incarnation,
 * frames of another one (a copy of the dropped space still running) are dropped before they
 * touch anything, frames that know none (older nodes) still count, and its own frames say
 * which it is. The state takes the incarnation once (persisted) and refuses another. */
static void test_spaces_repl_frames_of_another_incarnation_are_dropped(void **state)
{
    (void)state;
    world *w = world_new("n1", NULL, 0);
    assert_int_equal(mn_spaces_repl_set_incarnation(w->core, "s", 0, NULL), MN_ERR_INVALID);
    assert_int_equal(mn_spaces_repl_set_incarnation(w->core, "t", 5, NULL), MN_ERR_NOT_FOUND);
    assert_int_equal(mn_spaces_repl_set_incarnation(w->core, "s", 700, NULL), MN_OK);
    assert_int_equal(w->d.incarnation, 700);
    assert_int_equal(mn_spaces_repl_set_incarnation(w->core, "s", 700, NULL), MN_OK);
    assert_int_equal(mn_spaces_repl_set_incarnation(w->core, "s", 800, NULL), MN_ERR_INVALID);
    mn_spaces_repl_status_t st;
    assert_int_equal(mn_spaces_repl_status(w->core, 10, "s", &st), MN_OK);
    assert_int_equal(st.incarnation, 700);
    const int64_t later = 10000000; /* long past any lease of n0's */
    /* a vote request of the dropped incarnation (epoch 9): no vote, no epoch adopted */
    mn_wire_repl_frame_t f;
    memset(&f, 0, sizeof f);
    f.kind = MN_WIRE_REPL_VOTE_REQ;
    f.epoch = 9;
    f.incarnation = 600;
    int votes = w->sent[MN_WIRE_REPL_VOTE];
    deliver_frame(w, later, "n2", &f);
    mn_spaces_repl_stats_t s0;
    mn_spaces_repl_stats(w->core, &s0);
    assert_int_equal(s0.dropped_incarnation, 1);
    assert_int_equal(w->sent[MN_WIRE_REPL_VOTE], votes);
    assert_int_equal(w->d.voted_epoch, 0);
    assert_int_equal(mn_spaces_repl_status(w->core, later, "s", &st), MN_OK);
    assert_int_equal(st.epoch, 1);
    /* appends of another incarnation store nothing */
    uint8_t d[8] = {1};
    mn_wire_repl_entry_t e1 = entry(1, 1, d, true);
    memset(&f, 0, sizeof f);
    f.kind = MN_WIRE_REPL_APPEND;
    f.epoch = 1;
    f.lsn = 1;
    f.entries = &e1;
    f.n_entries = 1;
    f.flags = MN_WIRE_REPL_FLAG_CHECKED; /* answers a fetch: the prefix agrees */
    f.incarnation = 800;
    deliver_frame(w, later, "n0", &f);
    assert_int_equal(w->n, 0);
    /* the same append from this incarnation, or from a node that says none, is stored */
    f.incarnation = 700;
    deliver_frame(w, later, "n0", &f);
    assert_int_equal(w->n, 1);
    mn_wire_repl_entry_t e2 = entry(1, 2, d, true);
    f.entries = &e2;
    f.lsn = 2;
    f.incarnation = 0;
    deliver_frame(w, later, "n0", &f);
    assert_int_equal(w->n, 2);
    mn_spaces_repl_stats(w->core, &s0);
    assert_int_equal(s0.dropped_incarnation, 2);
    /* its own frames (the acks) carry its incarnation */
    mn_wire_repl_frame_t got;
    static mn_wire_repl_entry_t es[4];
    assert_int_equal(mn_wire_repl_decode(w->last, w->last_len, &got, es, 4), MN_OK);
    assert_int_equal(got.incarnation, 700);
    world_free(w);
}

/* A dropped space is forgotten whatever the role: a primary has nothing to hand over. */
static void test_spaces_repl_forget_takes_even_a_primary(void **state)
{
    (void)state;
    world *w = world_new("n0", NULL, 0);
    assert_int_equal(mn_spaces_repl_close(w->core, "s", NULL), MN_ERR_BUSY);
    assert_int_equal(mn_spaces_repl_forget(w->core, "s", NULL), MN_OK);
    assert_int_equal(mn_spaces_repl_forget(w->core, "s", NULL), MN_ERR_NOT_FOUND);
    mn_spaces_repl_status_t st;
    assert_int_equal(mn_spaces_repl_status(w->core, 60, "s", &st), MN_ERR_NOT_FOUND);
    mn_spaces_repl_stats_t s0;
    mn_spaces_repl_stats(w->core, &s0);
    assert_true(s0.forgotten == 1 && s0.closed == 0);
    assert_int_equal(w->d.n_history, 0); /* the epoch and vote kept, the log forgotten */
    assert_int_equal(w->d.epoch, 1);
    /* opened again as a new space led from the epoch its creator's engine is at */
    mn_spaces_repl_holder_t h[3] = {{"n0", true}, {"n1", true}, {"n2", true}};
    assert_int_equal(mn_spaces_repl_open_new(w->core, 70, "s", h, 3, 0, 2, NULL), MN_ERR_INVALID);
    assert_int_equal(mn_spaces_repl_open_new(w->core, 70, "s", h, 3, 5, 2, NULL), MN_OK);
    assert_int_equal(mn_spaces_repl_status(w->core, 70, "s", &st), MN_OK);
    assert_true(st.role == MN_SPACES_REPL_PRIMARY && st.epoch == 5);
    assert_int_equal(mn_spaces_repl_status_epoch_at(&st, 3), 5); /* its next entry's epoch */
    world_free(w);
}

/* Added again after its copy was dropped (the log empty, the durable state kept): it votes
 * no second time in an epoch it voted in, and catches up from lsn 1 by shipping. */
static void test_spaces_repl_a_closed_copy_reopens_empty_and_catches_up(void **state)
{
    (void)state;
    world *w = replica_at_epoch_3();
    deliver(w, 10, MN_WIRE_REPL_VOTE_REQ, "n2", 5, 2, 1, 0, NULL, 0);
    assert_int_equal(w->d.voted_epoch, 5);
    assert_int_equal(mn_spaces_repl_close(w->core, "s", NULL), MN_OK);
    mn_spaces_repl_durable_t kept = w->d;
    assert_int_equal(kept.voted_epoch, 5);
    w->n = 0; /* the engine dropped the copy */
    mn_spaces_repl_holder_t h[3] = {{"n0", true}, {"n1", true}, {"n2", true}};
    assert_int_equal(mn_spaces_repl_open(w->core, 20, "s", h, 3, &kept, 0, NULL), MN_OK);
    /* it voted in 5 already (for n2): no grant for n0 in 5 */
    int granted0 = w->sent[MN_WIRE_REPL_VOTE];
    deliver(w, 30, MN_WIRE_REPL_VOTE_REQ, "n0", 5, 2, 1, 0, NULL, 0);
    assert_int_equal(w->sent[MN_WIRE_REPL_VOTE], granted0 + 1);
    assert_int_equal(w->d.voted_epoch, 5);
    assert_string_equal(w->d.voted_for, "n2");
    /* the primary of epoch 5 ships: it fetches from lsn 1, whose predecessor is epoch 0 */
    deliver(w, 40, MN_WIRE_REPL_APPEND, "n2", 5, 2, 0, 0, NULL, 0);
    mn_wire_repl_frame_t f;
    static mn_wire_repl_entry_t st[MN_WIRE_REPL_MAX_ENTRIES];
    assert_int_equal(mn_wire_repl_decode(w->last, w->last_len, &f, st, MN_WIRE_REPL_MAX_ENTRIES),
                     MN_OK);
    assert_int_equal(f.kind, MN_WIRE_REPL_FETCH);
    assert_int_equal(f.lsn, 1);
    assert_int_equal(f.last_epoch, 0);
    static const uint8_t a[8] = {1}, b[8] = {2};
    mn_wire_repl_entry_t e[2] = {entry(1, 1, a, true), entry(5, 2, b, true)};
    deliver(w, 50, MN_WIRE_REPL_APPEND, "n2", 5, 2, 0, 1, e, 2);
    assert_int_equal(w->n, 2);
    assert_int_equal(w->out_of_order, 0);
    assert_int_equal(w->epochs[2], 5);
    world_free(w);
}

/* The epoch of an lsn in a published status: what a write's waiter checks before it
 * acknowledges (api/cluster_repl_pub.c): a log replaced since the write answers another
 * epoch, or 0 below what its history covers. */
static void test_spaces_repl_status_epoch_at_reads_the_history(void **state)
{
    (void)state;
    mn_spaces_repl_status_t st;
    memset(&st, 0, sizeof st);
    st.history[0] = (mn_spaces_repl_epoch_start_t){3, 10};
    st.history[1] = (mn_spaces_repl_epoch_start_t){5, 20};
    st.n_history = 2;
    assert_int_equal(mn_spaces_repl_status_epoch_at(&st, 0), 0);
    assert_int_equal(mn_spaces_repl_status_epoch_at(&st, 9), 0); /* before the history */
    assert_int_equal(mn_spaces_repl_status_epoch_at(&st, 10), 3);
    assert_int_equal(mn_spaces_repl_status_epoch_at(&st, 19), 3);
    assert_int_equal(mn_spaces_repl_status_epoch_at(&st, 20), 5);
    assert_int_equal(mn_spaces_repl_status_epoch_at(&st, 1000), 5);
    assert_false(mn_spaces_repl_status_replaced(&st, 15, 3));
    assert_true(mn_spaces_repl_status_replaced(&st, 25, 4));  /* epoch 5 is there now */
    assert_false(mn_spaces_repl_status_replaced(&st, 9, 2));  /* written before the core knew */
    assert_false(mn_spaces_repl_status_replaced(&st, 25, 0)); /* the writer did not know */
    /* a snapshot at lsn 1207 (epoch 8) replaced the log: a write of epoch 7 at 1204 is gone */
    st.history[0] = (mn_spaces_repl_epoch_start_t){8, 1207};
    st.n_history = 1;
    st.base_lsn = 1207;
    assert_int_equal(mn_spaces_repl_status_epoch_at(&st, 1204), 0);
    assert_true(mn_spaces_repl_status_replaced(&st, 1204, 7));
    assert_false(mn_spaces_repl_status_replaced(&st, 1300, 8));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spaces_repl_levels_follow_the_acks),
        cmocka_unit_test(test_spaces_repl_frames_of_another_incarnation_are_dropped),
        cmocka_unit_test(test_spaces_repl_forget_takes_even_a_primary),
        cmocka_unit_test(test_spaces_repl_status_epoch_at_reads_the_history),
        cmocka_unit_test(test_spaces_repl_the_lease_gates_writes_not_appends),
        cmocka_unit_test(test_spaces_repl_a_voter_refuses_a_candidate_of_an_older_record),
        cmocka_unit_test(test_spaces_repl_status_names_the_record_each_peer_counts_over),
        cmocka_unit_test(test_spaces_repl_a_refused_candidate_asks_above_the_voters_epoch),
        cmocka_unit_test(test_spaces_repl_the_lease_runs_from_the_echoed_send_time),
        cmocka_unit_test(test_spaces_repl_no_vote_while_the_primary_may_hold_its_lease),
        cmocka_unit_test(test_spaces_repl_fences_an_older_epoch),
        cmocka_unit_test(test_spaces_repl_a_follower_knows_how_far_behind_it_is),
        cmocka_unit_test(
            test_spaces_repl_a_replica_below_the_primarys_snapshot_base_gets_a_snapshot),
        cmocka_unit_test(test_spaces_repl_gaps_and_bad_checksums_fetch_and_skip_nothing),
        cmocka_unit_test(test_spaces_repl_a_failed_store_is_fetched_again),
        cmocka_unit_test(test_spaces_repl_a_deposed_primary_names_what_a_majority_had),
        cmocka_unit_test(
            test_spaces_repl_a_closed_deposed_primary_hands_back_its_unacknowledged_entries),
        cmocka_unit_test(test_spaces_repl_the_creators_first_entries_are_of_its_first_epoch),
        cmocka_unit_test(
            test_spaces_repl_a_replica_fetching_from_nothing_is_shipped_from_the_start),
        cmocka_unit_test(test_spaces_repl_hostile_frames_never_break_it),
        cmocka_unit_test(test_spaces_repl_close_refuses_the_primary_then_forgets_the_space),
        cmocka_unit_test(test_spaces_repl_a_closed_copy_reopens_empty_and_catches_up),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
