/* The replication core's state, shared by its files:
 *   repl_core.c     creation, spaces, dispatch, timers, epochs, status
 *   repl_primary.c  appends, shipping, acks, fetches, write levels, lag
 *   repl_replica.c  receiving appends, gaps, forks, snapshots, fencing
 *   repl_elect.c    elections: states, votes, promotion
 * docs/replication.md is the protocol. */
#ifndef MNEMO_SPACES_REPL_INTERNAL_H
#define MNEMO_SPACES_REPL_INTERNAL_H

#include "mnemo/spaces.h"
#include "mnemo/util.h"
#include "mnemo/wire_repl.h"

#define MN__REPL_RING 1024 /* append times kept for lag in ms */
#define MN__REPL_FRESH 32  /* a follower's (primary's last lsn, heard at) pairs, for its lag */

/* Another holder of a space, as this node sees it. */
typedef struct mn__repl_peer {
    char node[MN_SPACES_NODE_MAX + 1];
    bool voter;
    bool alive;
    /* primary side */
    uint64_t match;      /* highest lsn it acknowledged at this epoch */
    uint64_t next;       /* next lsn to send it */
    int64_t sent_us;     /* last frame sent to it */
    int64_t ack_us;      /* last ack from it at this epoch (the lease) */
    int64_t progress_us; /* last time match moved or shipping restarted */
    bool checked;        /* the next append answers its fetch */
    bool snapshot;       /* it needs a snapshot: nothing is shipped until it fetches */
    bool caught_up;      /* CAUGHT_UP reported in this epoch */
    /* its catch-up round: the log's end when the round began (0: none yet), and when */
    uint64_t round_lsn;
    int64_t round_us;
    bool synced;         /* it acknowledged in this epoch (so it is reconciled) */
    /* the newest holder record its frames said its core counts over (rec_said: a frame of
     * minor >= 1 came; an older node's say nothing) */
    bool rec_said;
    uint64_t rec_epoch, rec_version;
    /* elections */
    bool state_heard;
    uint64_t st_epoch, st_lsn; /* its last entry's epoch and its applied lsn */
    bool granted;
} mn__repl_peer;

/* No epoch reaches this (2^48 elections): a frame naming one is hostile, dropped as
 * undecodable, so no epoch + 1 anywhere can wrap. */
#define MN__REPL_EPOCH_LIMIT (1ull << 48)

typedef struct mn__repl_space {
    char name[MN_SPACE_NAME_MAX + 1];
    size_t name_len;
    mn__repl_peer peers[MN_SPACES_HOLDERS_MAX];
    size_t n_peers;
    bool self_voter;
    mn_spaces_repl_role_t role;
    mn_spaces_repl_durable_t d;
    uint64_t rec_epoch, rec_version;      /* the holder record applied (set_record), only up */
    char primary[MN_SPACES_NODE_MAX + 1]; /* "" = unknown */
    uint64_t last_lsn;                    /* the local log's end */
    uint64_t applied_lsn;                 /* durable in the store */
    int64_t opened_us;
    /* follower */
    int64_t heard_us; /* last frame from the primary of this epoch */
    int64_t echo_us; /* the newest send time (primary's clock) of its appends heard: acks echo it */
    bool reconciled; /* its log is a prefix of this epoch's primary's */
    bool snapshot_needed;
    int64_t fetch_us; /* last fetch sent */
    bool ack_due;
    /* Its own lag (repl_replica.c): each append says the primary's last lsn; once the store
     * here has applied it, this copy held at least what the primary had when that append
     * was heard. fresh[] keeps the pairs not applied yet, oldest first (lsns rising);
     * fresh_us is the newest instant so confirmed this epoch (0 = none yet). */
    struct {
        uint64_t lsn;
        int64_t at_us;
    } fresh[MN__REPL_FRESH];
    size_t n_fresh;
    int64_t fresh_us;
    /* primary */
    int64_t batch_due_us; /* INT64_MAX = nothing waits */
    size_t pending_bytes; /* appended, not yet shipped to everyone */
    uint64_t quorum_lsn, all_lsn;
    uint64_t led_from; /* the first lsn of the epoch it leads (its log's end + 1 then) */
    uint64_t led_saved;                       /* d.led_acked as last persisted */
    char handover_to[MN_SPACES_NODE_MAX + 1]; /* "" = none */
    int64_t handover_until_us, handover_sent_us;
    int64_t ring_us[MN__REPL_RING]; /* append time of lsn, at lsn % ring */
    /* elections */
    bool electing;
    int elect_streak; /* rounds in a row without a primary */
    uint64_t elect_epoch;
    /* the highest epoch a voter's refusal said it followed or voted in: the next round asks
     * for one above it (a node back from a long absence climbs at once, not one epoch a
     * round) */
    uint64_t refused_epoch;
    int64_t elect_deadline_us;
    int64_t elect_wait_us; /* a follower without a primary calls an election after this */
} mn__repl_space;

struct mn_spaces_repl {
    char self[MN_SPACES_NODE_MAX + 1];
    size_t self_len;
    mn_spaces_repl_config_t cfg;
    mn_spaces_repl_cb_t cb;
    mn_prng_t prng;
    mn__repl_space **spaces; /* sorted by name */
    size_t n_spaces, cap_spaces;
    mn_wire_repl_enc_t *enc;
    uint8_t *rx; /* 8-byte aligned copy of a received frame */
    size_t rx_cap;
    mn_wire_repl_entry_t *rx_entries;
    uint8_t *scratch; /* a batch's entry bytes */
    size_t scratch_cap;
    mn_wire_repl_entry_t *tx_entries;
    mn_spaces_repl_stats_t stats;
};

/* repl_core.c */
mn__repl_space *mn__repl_space_of(const mn_spaces_repl_t *r, const char *name, size_t len);
void mn__repl_send(mn_spaces_repl_t *r, mn__repl_space *s, const char *to, mn_wire_repl_frame_t *f);
/* A frame skeleton for s of kind, from this node at s's epoch. */
mn_wire_repl_frame_t mn__repl_frame(const mn_spaces_repl_t *r, const mn__repl_space *s,
                                    uint8_t kind);
void mn__repl_persist(mn_spaces_repl_t *r, mn__repl_space *s);
void mn__repl_event(mn_spaces_repl_t *r, const mn__repl_space *s, mn_spaces_repl_event_type_t t,
                    const char *node, uint64_t epoch, uint64_t lsn);
/* Moves s to a newer epoch led by leader ("" = not known yet): a primary or
 * candidate steps down; the log must be reconciled again. */
void mn__repl_adopt(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us, uint64_t epoch,
                    const char *leader, size_t leader_len);
mn__repl_peer *mn__repl_peer_of(mn__repl_space *s, const char *node, size_t len);
size_t mn__repl_voters(const mn__repl_space *s);
/* The epoch of the local log's entry lsn (0 for lsn 0 or before the history). */
uint64_t mn__repl_epoch_at(const mn_spaces_repl_durable_t *d, uint64_t lsn);
/* The last lsn of the newest epoch <= e in the local log (*found false if none). */
uint64_t mn__repl_epoch_end(const mn_spaces_repl_durable_t *d, uint64_t last_lsn, uint64_t e,
                            uint64_t *found_epoch, bool *found);
/* Records that the local log's entries from lsn on are of epoch (lsn is the
 * log's end + 1); drops the epochs that begin at or after lsn, which wrote
 * nothing here. Returns whether the history changed (persist it). */
bool mn__repl_history_push(mn__repl_space *s, uint64_t epoch, uint64_t lsn);
bool mn__repl_same(const char *a, size_t alen, const char *b);

/* repl_primary.c */
/* s leads its epoch from now; lease: the peers that granted their votes (all
 * of them for a new space) count as in contact. */
void mn__repl_primary_start(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us,
                            bool all_in_contact);
void mn__repl_on_ack(mn_spaces_repl_t *r, mn__repl_space *s, mn__repl_peer *p, int64_t now_us,
                     const mn_wire_repl_frame_t *f);
void mn__repl_on_fetch(mn_spaces_repl_t *r, mn__repl_space *s, mn__repl_peer *p, int64_t now_us,
                       const mn_wire_repl_frame_t *f);
void mn__repl_primary_tick(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us);
int64_t mn__repl_primary_deadline(const mn_spaces_repl_t *r, const mn__repl_space *s);
bool mn__repl_lease_ok(const mn_spaces_repl_t *r, const mn__repl_space *s, int64_t now_us);
/* The instant (µs) the lease lapses unless more acknowledgements come: lease_ok is
 * now < it. INT64_MIN when no majority ever acknowledged. */
int64_t mn__repl_lease_until(const mn_spaces_repl_t *r, const mn__repl_space *s);
/* Primary with a lease and no handover under way. */
bool mn__repl_taking_writes(const mn_spaces_repl_t *r, const mn__repl_space *s, int64_t now_us);
int64_t mn__repl_lag_ms(const mn__repl_space *s, const mn__repl_peer *p, int64_t now_us);

/* repl_replica.c */
void mn__repl_on_append(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us,
                        const mn_wire_repl_frame_t *f);
void mn__repl_on_truncate(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us,
                          const mn_wire_repl_frame_t *f);
void mn__repl_on_snapshot(mn_spaces_repl_t *r, mn__repl_space *s, const mn_wire_repl_frame_t *f);
void mn__repl_follower_tick(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us);
/* Forgets what s's pairs say of its lag (a new epoch: another primary). */
void mn__repl_fresh_reset(mn__repl_space *s);
int64_t mn__repl_follower_deadline(const mn_spaces_repl_t *r, const mn__repl_space *s);
void mn__repl_flush_ack(mn_spaces_repl_t *r, mn__repl_space *s);

/* repl_elect.c */
void mn__repl_on_state(mn_spaces_repl_t *r, mn__repl_space *s, mn__repl_peer *p, int64_t now_us,
                       const mn_wire_repl_frame_t *f);
void mn__repl_on_vote_req(mn_spaces_repl_t *r, mn__repl_space *s, mn__repl_peer *p, int64_t now_us,
                          const mn_wire_repl_frame_t *f);
void mn__repl_on_vote(mn_spaces_repl_t *r, mn__repl_space *s, mn__repl_peer *p, int64_t now_us,
                      const mn_wire_repl_frame_t *f);
void mn__repl_elect_tick(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us);
int64_t mn__repl_elect_deadline(const mn_spaces_repl_t *r, const mn__repl_space *s);
void mn__repl_elect_stop(mn__repl_space *s);
void mn__repl_on_handover(mn_spaces_repl_t *r, mn__repl_space *s, int64_t now_us,
                          const mn_wire_repl_frame_t *f);

#endif
