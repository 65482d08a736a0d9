/* spaces: where each memory space lives in a cluster, and how its WAL
 * reaches its replicas. Two pure parts, no sockets, clocks or engine:
 *
 *  - placement (mn_spaces_*): rendezvous (HRW) hashing of a space name over
 *    the alive members, with a replication factor, zone spread and bounded
 *    loads, into a placement table that is a pure function of (previous
 *    table, membership view, recorded events), the same on every node;
 *  - the replication core (mn_spaces_repl_*): a sans-IO state machine per
 *    node that ships WAL entries (opaque bytes) from a space's primary to its
 *    replicas, detects gaps and forks, tracks lag and write levels, and elects
 *    a new primary with a majority of the space's holders.
 *
 * docs/replication.md describes both; simnet/ drives the core in tests. */
#ifndef MNEMO_SPACES_H
#define MNEMO_SPACES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/err.h"
#include "mnemo/model.h"

#define MN_SPACES_NODE_MAX 64 /* bytes of a node id (the SWIM id) */
#define MN_SPACES_ZONE_MAX 64 /* bytes of a zone label */
#define MN_SPACES_RF_MAX 7    /* largest replication factor */
/* a space's holders: the factor, plus one copy being added by a move */
#define MN_SPACES_HOLDERS_MAX (MN_SPACES_RF_MAX + 1)

/* ---- placement ---- */

/* One alive member of the membership view. zone NULL or "" = no zone.
 * draining: the member is leaving (`mnemo admin drain`): it stays in the view
 * (its copies still count and can ship) but is given no desired copy, so the
 * step moves its copies away; unless every member drains (then none does). */
typedef struct mn_spaces_member {
    const char *id;
    const char *zone;
    bool draining;
} mn_spaces_member_t;

typedef struct mn_spaces_opts {
    int replication_factor;    /* copies including the primary, 1..MN_SPACES_RF_MAX (3) */
    int rebalance_concurrency; /* spaces gaining a copy for balance at once, >= 1 (4) */
    double balance_slack;      /* a node takes at most ceil((1 + slack) * mean) copies, and as
                                * many primaries; 0.01..1 (0.05) */
} mn_spaces_opts_t;

void mn_spaces_opts_default(mn_spaces_opts_t *o);
mn_err mn_spaces_opts_check(const mn_spaces_opts_t *o, mn_error *err);

/* The placement hash: FNV-1a 64 over the bytes, then the MurmurHash3 64-bit
 * finaliser (full avalanche). Part of the cluster's wire contract: every
 * node must compute the same, so it never changes within a format version. */
uint64_t mn_spaces_hash(const char *s, size_t len);
/* HRW score of a (space, node) pair from their hashes: the finaliser over
 * space ^ finaliser(node ^ a constant). Higher wins. */
uint64_t mn_spaces_score(uint64_t space_hash, uint64_t node_hash);

typedef enum {
    MN_SPACES_PRIMARY = 0,
    MN_SPACES_REPLICA = 1,
    MN_SPACES_CATCHING_UP = 2, /* added by a join or a repair; not a voter until caught up */
} mn_spaces_role_t;

/* "primary" | "replica" | "catching_up". */
const char *mn_spaces_role_name(mn_spaces_role_t r);

typedef struct mn_spaces_holder {
    char node[MN_SPACES_NODE_MAX + 1];
    uint8_t role; /* mn_spaces_role_t */
    bool down;    /* not in the view of the last step */
} mn_spaces_holder_t;

#define MN_SPACES_UNDER_REPLICATED 1u /* fewer live full copies than the factor */
#define MN_SPACES_FAILOVER 2u         /* the primary is down: the repl core elects one */
#define MN_SPACES_HANDOVER                                                                         \
    4u                           /* the primary is not the desired one and the desired one is a    \
                                  * full replica: the repl core hands over */
#define MN_SPACES_UNAVAILABLE 8u /* no holder is alive */
/* the holders are those of the space's holder record, published by its primary
 * (mn_spaces_adopt): the step marks them down and flags them but never changes them */
#define MN_SPACES_RECORDED 16u

typedef struct mn_spaces_entry {
    char name[MN_SPACE_NAME_MAX + 1];
    /* the node that created the space (wrote its lsn 1), "" = not known: it leads epoch 1 */
    char creator[MN_SPACES_NODE_MAX + 1];
    /* the incarnation of the name (the catalog's created_at_ms), 0 = not known: a name
     * dropped and created again is a new space, placed anew */
    uint64_t incarnation;
    uint64_t epoch;       /* the primary's term, from the repl core's elections (1 at creation) */
    uint64_t rec_version; /* with MN_SPACES_RECORDED: the version of the record adopted (0 =
                           * this node's core promoted past it; the next record is awaited) */
    uint64_t changed;     /* table version of this entry's last change */
    mn_spaces_holder_t holders[MN_SPACES_HOLDERS_MAX]; /* holders[0] is the primary */
    uint8_t n_holders;
    uint8_t flags;
} mn_spaces_entry_t;

/* The placement table: entries sorted by name; version + 1 per change. */
typedef struct mn_spaces_table {
    uint64_t version;
    mn_spaces_entry_t *entries;
    size_t n, cap;
} mn_spaces_table_t;

void mn_spaces_table_init(mn_spaces_table_t *t);
void mn_spaces_table_free(mn_spaces_table_t *t);
/* dst (initialised) becomes a copy of src. */
mn_err mn_spaces_table_copy(mn_spaces_table_t *dst, const mn_spaces_table_t *src);
const mn_spaces_entry_t *mn_spaces_table_find(const mn_spaces_table_t *t, const char *space);

/* Records a new space (no holders yet: the next step places it). MN_ERR_EXISTS
 * if known, MN_ERR_INVALID for a bad name. */
mn_err mn_spaces_table_add(mn_spaces_table_t *t, const char *space, mn_error *err);

/* The node that created a space not placed yet: the step makes it the primary of epoch 1
 * (it alone has lsn 1), and places the space only while it is in the view. Ignored once the
 * space has holders. MN_ERR_NOT_FOUND if not known, MN_ERR_INVALID for a bad id. */
mn_err mn_spaces_table_set_creator(mn_spaces_table_t *t, const char *space, const char *creator,
                                   mn_error *err);

/* The incarnation of a placed space (the catalog's created_at_ms, > 0). A name whose
 * incarnation changes is removed and added first (mn_spaces_driver_update_spaces).
 * MN_ERR_NOT_FOUND if not placed. */
mn_err mn_spaces_table_set_incarnation(mn_spaces_table_t *t, const char *space, uint64_t inc,
                                       mn_error *err);

/* Forgets a space (it was dropped). MN_ERR_NOT_FOUND if not placed. */
mn_err mn_spaces_table_remove(mn_spaces_table_t *t, const char *space, mn_error *err);

/* One placement step: next = f(prev, view, opts), a pure function (the order
 * of view does not matter). next must be initialised and not be prev; it is
 * overwritten.
 * Marks holders outside the view down, flags failovers, removes down
 * replicas, adds catching-up copies for repairs (unbounded) and for balance
 * (at most rebalance_concurrency spaces at once), drops a surplus copy only
 * once the factor is met by full live copies, and flags handovers. New spaces
 * get their desired holders at once (an empty space has nothing to catch up).
 * MN_ERR_INVALID for a bad view (empty or over-long id, duplicate id). */
mn_err mn_spaces_step(const mn_spaces_table_t *prev, const mn_spaces_member_t *view, size_t n_view,
                      const mn_spaces_opts_t *o, mn_spaces_table_t *next, mn_error *err);

/* Events from replication, recorded in the table (version + 1):
 * caught_up: node, a catching-up holder of space, has the primary's WAL;
 * promoted: node, a full live holder, won the election (or handover) of
 * epoch, which must be above the entry's; the former primary stays listed as
 * a replica (a down one is removed by the next step). */
mn_err mn_spaces_caught_up(mn_spaces_table_t *t, const char *space, const char *node,
                           mn_error *err);
mn_err mn_spaces_promoted(mn_spaces_table_t *t, const char *space, const char *node, uint64_t epoch,
                          mn_error *err);

/* ---- holder records: the primary is the authority for its space's holders ----
 *
 * A record (space, epoch, version, holders with roles) is published by the node that leads
 * the space at epoch (docs/replication.md, "Holder records"). Every node adopts, per space,
 * the record with the highest (epoch, version); only the primary makes the next one, with at
 * most one voter change from the last (mn_spaces_record_next). */
typedef struct mn_spaces_record {
    uint64_t epoch;                                    /* 0 = no record */
    uint64_t version;                                  /* 1.. within the epoch */
    mn_spaces_holder_t holders[MN_SPACES_HOLDERS_MAX]; /* holders[0] the primary; down unused */
    uint8_t n_holders;
} mn_spaces_record_t;

/* MN_ERR_INVALID (naming the fault) unless r is a well-formed record: epoch and version >= 1,
 * 1..MN_SPACES_HOLDERS_MAX holders with valid distinct ids, the first (only the first) the
 * primary. */
mn_err mn_spaces_record_check(const mn_spaces_record_t *r, mn_error *err);
/* Orders records by (epoch, version), then by their holders (a total order; two records of
 * one (epoch, version) come from one primary and are equal). <0, 0, >0. */
int mn_spaces_record_cmp(const mn_spaces_record_t *a, const mn_spaces_record_t *b);
/* Number of voters (primary and replicas). */
int mn_spaces_record_voters(const mn_spaces_record_t *r);

/* Adopts rec for space (version + 1 when it changes the entry): its holders, roles and
 * epoch, with MN_SPACES_RECORDED set; the next step only marks them down and flags them.
 * A record is adopted when the entry has none, or rec is newer than the one it has; not
 * when this node's core promoted the entry past rec's epoch (mn_spaces_promoted). */
mn_err mn_spaces_adopt(mn_spaces_table_t *t, const char *space, const mn_spaces_record_t *rec,
                       mn_error *err);

/* The primary's next record from cur towards want (the entry as the step would move it, with
 * the copies known to have caught up as replicas): catching-up copies want drops go and
 * those it adds come (non-voters), then at most ONE voter change: a catching-up copy want
 * lists as a replica becomes one, else a voter want does not list goes. voter_change says
 * whether next changed a voter. Returns whether next differs from cur (then its version is
 * cur's + 1). The primary never changes here. */
bool mn_spaces_record_next(const mn_spaces_record_t *cur, const mn_spaces_entry_t *want,
                           mn_spaces_record_t *next, bool *voter_change);

/* The desired holders of one space in the view, primary first, as the step
 * aims for them (bounded loads over all of t's spaces): writes up to
 * MN_SPACES_RF_MAX node indexes into the view to out, returns the count. */
mn_err mn_spaces_desired(const mn_spaces_table_t *t, const mn_spaces_member_t *view, size_t n_view,
                         const mn_spaces_opts_t *o, const char *space, size_t *out, size_t *n_out,
                         mn_error *err);

/* ---- the placement driver: one node's table, stepped as its inputs change ---- */

/* Holds a node's placement table and moves it on: each update makes the
 * table's spaces the given names, steps it over the view, and then settles
 * what the replication core settles when none runs here, in the same
 * deterministic way on every node: a failover whose live voters are a
 * majority of the voters promotes the desired primary if it is a live full
 * replica, else the smallest such node id, at epoch + 1; a handover promotes
 * the desired primary at epoch + 1 (never with the core running, nor for a
 * space with a holder record). It steps again until nothing changes (at most
 * 8 rounds). */
typedef struct mn_spaces_driver mn_spaces_driver_t;

mn_err mn_spaces_driver_new(const mn_spaces_opts_t *o, mn_spaces_driver_t **out, mn_error *err);
void mn_spaces_driver_free(mn_spaces_driver_t *d);
/* names: the spaces to place (any order, no duplicates). */
mn_err mn_spaces_driver_update(mn_spaces_driver_t *d, const mn_spaces_member_t *view, size_t n_view,
                               const char *const *names, size_t n_names, mn_error *err);
/* A space to place: its name, the node that created it (NULL or "" = not known), its
 * holder record (NULL = none published yet) and its incarnation (0 = not known). */
typedef struct mn_spaces_input {
    const char *name;
    const char *creator;
    const mn_spaces_record_t *record;
    uint64_t incarnation;
} mn_spaces_input_t;
/* As mn_spaces_driver_update, with creators and records: a space's creator leads its epoch 1;
 * a space with a record takes the record's holders (mn_spaces_adopt) and is never settled
 * by the driver's guesses. */
mn_err mn_spaces_driver_update_spaces(mn_spaces_driver_t *d, const mn_spaces_member_t *view,
                                      size_t n_view, const mn_spaces_input_t *in, size_t n,
                                      mn_error *err);
/* The primary's core reported node caught up on space at epoch: remembered until a record
 * makes it a replica (or the epoch moves); mn_spaces_driver_proposals counts it as one. A
 * space without a record also records it in the table at once (mn_spaces_caught_up), and
 * keeps it for its first record (the core reports a copy caught up once, maybe before). */
mn_err mn_spaces_driver_caught_up(mn_spaces_driver_t *d, const char *space, const char *node,
                                  uint64_t epoch, mn_error *err);
/* For every space whose record names self (mn_spaces_driver_external) its primary at the
 * table's epoch: the next record, stepped from the record and the caught-up copies over the
 * view (mn_spaces_record_next), when it differs; fn gets each. */
typedef void (*mn_spaces_propose_fn)(void *arg, const char *space, const mn_spaces_record_t *next,
                                     bool voter_change);
mn_err mn_spaces_driver_proposals(mn_spaces_driver_t *d, const mn_spaces_member_t *view,
                                  size_t n_view, mn_spaces_propose_fn fn, void *arg, mn_error *err);
/* The record the last update gave for space (NULL: none). */
const mn_spaces_record_t *mn_spaces_driver_record(const mn_spaces_driver_t *d, const char *space);

/* The current table (valid until the next update). */
const mn_spaces_table_t *mn_spaces_driver_table(const mn_spaces_driver_t *d);
/* From now on the replication core elects (self != NULL, this node): the driver no
 * longer settles failovers and handovers of the spaces self holds; the caller records
 * the core's results with mn_spaces_driver_promoted. Spaces self does not hold (it runs
 * no core for them) are still settled by the rule above: a guess at the core's result,
 * until the table is shared. NULL: the driver settles everything again. */
void mn_spaces_driver_external(mn_spaces_driver_t *d, const char *self);
/* Records a promotion made by the core (mn_spaces_promoted on the current table); a node
 * the table lists as catching up is first recorded as caught up (the core elected it, so
 * it has the log). */
mn_err mn_spaces_driver_promoted(mn_spaces_driver_t *d, const char *space, const char *node,
                                 uint64_t epoch, mn_error *err);
/* The promotions the driver made (failovers and handovers settled). */
uint64_t mn_spaces_driver_promotions(const mn_spaces_driver_t *d);

/* ---- the replication core (sans-IO) ---- */

typedef struct mn_spaces_repl mn_spaces_repl_t;

/* How many copies a write must reach before it is acknowledged. */
typedef enum {
    MN_SPACES_ONE = 0,    /* the primary's fsync */
    MN_SPACES_QUORUM = 1, /* a majority of the voting holders, durably */
    MN_SPACES_ALL = 2,    /* every holder */
} mn_spaces_level_t;

const char *mn_spaces_level_name(mn_spaces_level_t l);
mn_err mn_spaces_level_parse(const char *s, mn_spaces_level_t *out);

typedef struct mn_spaces_repl_config {
    size_t batch_max_bytes;      /* a batch ships once it holds this many bytes (65536) */
    int64_t batch_delay_us;      /* ... or once its first entry waited this long (2000) */
    int64_t retry_us;            /* no progress for this long: resend, fetch again (50000) */
    int64_t heartbeat_us;        /* an idle primary sends an empty append this often (100000) */
    int64_t lease_us;            /* a primary without acks from a majority for this long takes
                                  * no writes (1000000) */
    int64_t vote_hold_us;        /* a follower that heard its primary this recently grants no
                                  * vote and calls no election, whatever SWIM says: the lease
                                  * plus the grace a server lets its engine take writes and
                                  * serve reads past it (2000000; at least lease_us) */
    int64_t election_timeout_us; /* an election without a result restarts after this plus up
                                  * to as much jitter; a follower that knows no primary waits
                                  * this long before calling one (300000) */
    uint64_t window_entries;     /* entries in flight to one replica (4096) */
} mn_spaces_repl_config_t;

void mn_spaces_repl_config_default(mn_spaces_repl_config_t *c);
mn_err mn_spaces_repl_config_check(const mn_spaces_repl_config_t *c, mn_error *err);

#define MN_SPACES_REPL_HISTORY_MAX 32

/* The first lsn of an epoch in the local log. */
typedef struct mn_spaces_repl_epoch_start {
    uint64_t epoch, lsn;
} mn_spaces_repl_epoch_start_t;

/* What a node keeps durably per space: given back to mn_spaces_repl_open
 * after a restart, written through the persist callback (which must make it
 * durable before it returns). */
typedef struct mn_spaces_repl_durable {
    uint64_t epoch;       /* the highest epoch this node followed or led */
    uint64_t voted_epoch; /* the highest epoch it voted in */
    char voted_for[MN_SPACES_NODE_MAX + 1];
    /* the epochs of the local log, ascending: where each one's entries begin */
    mn_spaces_repl_epoch_start_t history[MN_SPACES_REPL_HISTORY_MAX];
    size_t n_history;
    uint64_t base_lsn; /* entries up to this one came in a snapshot (0 = none) */
    /* the incarnation of the space this state belongs to (the catalog's created_at_ms of
     * the name; 0 = not known): a state of another incarnation is not this space's */
    uint64_t incarnation;
    /* the last epoch this node led, until it reconciled with a later primary (0 = none), and
     * an lsn of it a majority had acknowledged (a lower bound: saved every few thousand
     * entries): the entries of that epoch after it may be on no other copy, and closing the
     * copy hands them back (mn_spaces_repl_close) */
    uint64_t led_epoch, led_acked;
} mn_spaces_repl_durable_t;

typedef enum {
    MN_SPACES_REPL_FOLLOWER = 0,
    MN_SPACES_REPL_CANDIDATE = 1, /* asked the voters for an epoch */
    MN_SPACES_REPL_PRIMARY = 2,
} mn_spaces_repl_role_t;

typedef enum {
    MN_SPACES_REPL_PROMOTED = 1,    /* this node leads space from epoch */
    MN_SPACES_REPL_DEMOTED,         /* this node stopped leading space (a newer epoch, epoch) */
    MN_SPACES_REPL_PROGRESS,        /* primary: the quorum or all lsn moved (lsn = quorum) */
    MN_SPACES_REPL_CAUGHT_UP,       /* primary: node (a holder) has every entry up to lsn */
    MN_SPACES_REPL_SNAPSHOT_NEEDED, /* this node needs a snapshot: the primary lacks lsn */
} mn_spaces_repl_event_type_t;

typedef struct mn_spaces_repl_event {
    mn_spaces_repl_event_type_t type;
    const char *space;
    const char *node;
    uint64_t epoch, lsn;
    /* DEMOTED: the entries after kept_lsn may be missing from the new primary's log (this
     * node took them as primary and no majority had acknowledged them): the greater of the
     * last entry a majority acknowledged and the last before the epoch it led. 0 otherwise */
    uint64_t kept_lsn;
} mn_spaces_repl_event_t;

/* The core's way out. Callbacks run inside the core's calls and must not call
 * back into it, except mn_spaces_repl_applied and mn_spaces_repl_unapplied from apply. */
typedef struct mn_spaces_repl_cb {
    void *user;
    /* a frame for node `to` */
    void (*send)(void *user, const char *to, const uint8_t *frame, size_t len);
    /* follower: store a verified entry, lsn = the previous one + 1; report
     * durability with mn_spaces_repl_applied (now or later), or a store that failed
     * with mn_spaces_repl_unapplied */
    void (*apply)(void *user, const char *space, uint64_t epoch, uint64_t lsn, const uint8_t *data,
                  size_t len);
    /* the local log's entry lsn: its epoch and bytes (valid until the next
     * call); MN_ERR_NOT_FOUND when trimmed or absent */
    mn_err (*read)(void *user, const char *space, uint64_t lsn, uint64_t *epoch,
                   const uint8_t **data, size_t *len);
    /* drop the local log after lsn (a fork); MN_ERR_UNSUPPORTED: a snapshot is needed */
    mn_err (*truncate)(void *user, const char *space, uint64_t after_lsn);
    /* an entry of this node past a fork: re-apply it through the primary, ids kept */
    void (*reapply)(void *user, const char *space, uint64_t epoch, uint64_t lsn,
                    const uint8_t *data, size_t len);
    void (*persist)(void *user, const char *space, const mn_spaces_repl_durable_t *d);
    void (*event)(void *user, const mn_spaces_repl_event_t *ev); /* may be NULL */
} mn_spaces_repl_cb_t;

/* node_id: this node (1..MN_SPACES_NODE_MAX bytes). seed: the election jitter's PRNG. */
mn_err mn_spaces_repl_new(const char *node_id, const mn_spaces_repl_config_t *cfg,
                          const mn_spaces_repl_cb_t *cb, uint64_t seed, mn_spaces_repl_t **out,
                          mn_error *err);
void mn_spaces_repl_free(mn_spaces_repl_t *r);

/* A holder of a space, as the placement table lists it. Voters are the
 * primary and the full replicas; a catching-up copy is not one. */
typedef struct mn_spaces_repl_holder {
    const char *node;
    bool voter;
} mn_spaces_repl_holder_t;

/* Opens a space this node holds (this node must be among holders). d: its
 * durable state, NULL for a new space, whose first holder then leads epoch 1
 * (every node computes the same from the placement table). last_lsn: the end
 * of the local log, which the store knows. A reopened space starts as a
 * follower: a former primary leads again only through an election. */
mn_err mn_spaces_repl_open(mn_spaces_repl_t *r, int64_t now_us, const char *space,
                           const mn_spaces_repl_holder_t *holders, size_t n,
                           const mn_spaces_repl_durable_t *d, uint64_t last_lsn, mn_error *err);
/* As mn_spaces_repl_open of a new space (no durable state), led from first_epoch rather
 * than 1: the epoch its creator's engine wrote its first entries at (a name dropped and
 * created again on a node continues its engine's epochs there). The other holders open
 * it at 1 and adopt the creator's epoch from its first frame. */
mn_err mn_spaces_repl_open_new(mn_spaces_repl_t *r, int64_t now_us, const char *space,
                               const mn_spaces_repl_holder_t *holders, size_t n,
                               uint64_t first_epoch, uint64_t last_lsn, mn_error *err);
/* A new holder list for an open space (placement moved copies). */
mn_err mn_spaces_repl_set_holders(mn_spaces_repl_t *r, int64_t now_us, const char *space,
                                  const mn_spaces_repl_holder_t *holders, size_t n, mn_error *err);
/* Closes space: the core forgets it (frames for it are dropped as unknown). Its durable
 * state keeps the epoch and the vote and forgets the log (persisted before this returns):
 * the caller drops the copy's data next. A copy that led an epoch and has not reconciled
 * with a later primary since first hands back (reapply) the entries of that epoch a
 * majority may lack: a deposed primary dropped from the holders loses no `one` write.
 * MN_ERR_BUSY while this node leads it (hand over first); MN_ERR_NOT_FOUND if it is not
 * open. */
mn_err mn_spaces_repl_close(mn_spaces_repl_t *r, const char *space, mn_error *err);
/* The same hand-back for a copy the core does not have open (a restart found its holder
 * record no longer lists this node): d its durable state, last_lsn its log's end. Reads
 * the entries through the read callback, hands them to reapply, and persists d without
 * them to hand back. Returns how many it handed back. */
size_t mn_spaces_repl_hand_back(mn_spaces_repl_t *r, const char *space,
                                const mn_spaces_repl_durable_t *d, uint64_t last_lsn);
/* The space was dropped (or its name now names another incarnation): the core forgets it
 * whatever its role (a primary has nothing to hand over: the space is gone), as close
 * does otherwise. The caller then drops or replaces the engine's copy. MN_ERR_NOT_FOUND
 * if it is not open. */
mn_err mn_spaces_repl_forget(mn_spaces_repl_t *r, const char *space, mn_error *err);
/* The open space is the incarnation inc of its name (the catalog's created_at_ms, > 0). A
 * state that knew none takes it (persisted); every frame then carries it, and frames of
 * another known incarnation are dropped (counted): a copy of a dropped space never votes
 * in, follows or feeds the name created again. MN_ERR_INVALID if the state knows another
 * (reopen the space with a fresh state: its old one belongs to a dropped incarnation). */
mn_err mn_spaces_repl_set_incarnation(mn_spaces_repl_t *r, const char *space, uint64_t inc,
                                      mn_error *err);
/* The holder list last given (open, set_holders) is that of the space's holder record
 * (epoch, version) (docs/replication.md, "Holder records"). Only an increase counts. Every
 * frame then carries it, and a voter refuses a candidate whose record is older than the
 * one it applied: no two voter sets in use by an election differ by more than one change,
 * even if the record reached a node's catalog long before its core. */
mn_err mn_spaces_repl_set_record(mn_spaces_repl_t *r, const char *space, uint64_t epoch,
                                 uint64_t version, mn_error *err);
/* Membership: node is alive or not (SWIM). A follower whose primary dies
 * calls an election. */
void mn_spaces_repl_member(mn_spaces_repl_t *r, int64_t now_us, const char *node, bool alive);

/* Primary: entry lsn (= last + 1) is durable in the local log. MN_ERR_BUSY
 * when this node is not the primary, or hands its role over. The lease is not
 * checked: an entry already durable must be in the core's log, or a fork could
 * not hand it back; writes are refused before they are taken instead
 * (mn_spaces_repl_writable, mn_spaces_repl_lease_until). */
mn_err mn_spaces_repl_append(mn_spaces_repl_t *r, int64_t now_us, const char *space, uint64_t lsn,
                             const uint8_t *data, size_t len, mn_error *err);
/* Primary: hands the role to target, a voting holder: writes stop, and once
 * target has every entry it is told to call an election that voters grant
 * even while they hear this primary (Raft's leadership transfer). Cancelled
 * if no new primary within two election timeouts. MN_ERR_BUSY if not the
 * primary; MN_ERR_INVALID if target is not a voting holder. */
mn_err mn_spaces_repl_handover(mn_spaces_repl_t *r, int64_t now_us, const char *space,
                               const char *target, mn_error *err);
/* Follower: the store applied every entry up to lsn durably. */
void mn_spaces_repl_applied(mn_spaces_repl_t *r, const char *space, uint64_t lsn);
/* Follower: the store could not store the entries handed to apply past the last one it
 * reported applied (an engine error, no memory): the log ends at the applied one again
 * (an epoch begun past it is forgotten), and the rest is fetched again from the primary.
 * Without it those entries would count as this node's log — acknowledged by none, but
 * led with after an election — while the store lacks them. */
void mn_spaces_repl_unapplied(mn_spaces_repl_t *r, const char *space);
/* Follower: a snapshot of the primary's space up to lsn (whose entry is of
 * epoch) replaced the local log; shipping resumes after it. */
mn_err mn_spaces_repl_restored(mn_spaces_repl_t *r, int64_t now_us, const char *space, uint64_t lsn,
                               uint64_t epoch, mn_error *err);

/* A received frame (any bytes: a bad frame is counted and dropped). */
void mn_spaces_repl_on_message(mn_spaces_repl_t *r, int64_t now_us, const uint8_t *buf, size_t len);
/* Timers: call when now >= mn_spaces_repl_next_deadline (INT64_MAX = none).
 * Any call into the core may move the deadline: read it again after each. */
void mn_spaces_repl_on_tick(mn_spaces_repl_t *r, int64_t now_us);
int64_t mn_spaces_repl_next_deadline(const mn_spaces_repl_t *r);

/* May this node take a write for space now (primary with a lease)? *epoch: its epoch. */
bool mn_spaces_repl_writable(const mn_spaces_repl_t *r, int64_t now_us, const char *space,
                             uint64_t *epoch);
/* Primary: the instant (the clock of now_us) until which it holds its lease unless
 * more acknowledgements come; writable is true before it (and no handover). INT64_MIN
 * when not the primary, handing over, or never acknowledged by a majority. */
int64_t mn_spaces_repl_lease_until(const mn_spaces_repl_t *r, const char *space);
/* The highest lsn that has reached the level at this primary (0 = none or not primary). */
uint64_t mn_spaces_repl_reached(const mn_spaces_repl_t *r, const char *space,
                                mn_spaces_level_t level);

typedef struct mn_spaces_repl_peer_status {
    char node[MN_SPACES_NODE_MAX + 1];
    bool voter, alive;
    uint64_t applied_lsn; /* as last acknowledged (primary's view) */
    uint64_t lag_entries;
    int64_t lag_ms;
    /* the newest holder record (epoch, version) its frames said its core counts over;
     * rec_said false: no frame of wire minor >= 1 came from it yet */
    bool rec_said;
    uint64_t rec_epoch, rec_version;
} mn_spaces_repl_peer_status_t;

typedef struct mn_spaces_repl_status {
    mn_spaces_repl_role_t role;
    uint64_t epoch;
    char primary[MN_SPACES_NODE_MAX + 1]; /* "" = unknown */
    uint64_t last_lsn, applied_lsn, last_epoch;
    bool snapshot_needed;
    mn_spaces_repl_peer_status_t peers[MN_SPACES_HOLDERS_MAX];
    size_t n_peers;
    /* the epochs of the local log and its snapshot base (mn_spaces_repl_durable_t) */
    mn_spaces_repl_epoch_start_t history[MN_SPACES_REPL_HISTORY_MAX];
    size_t n_history;
    uint64_t base_lsn;
    uint64_t incarnation; /* of the space this state belongs to (0 = not known) */
    /* a reconciled follower: the newest instant (the core's clock, us) at which its store
     * held at least what its primary had, as the primary's appends said; its lag is the
     * time since (0 = not known: not yet confirmed this epoch, or not a follower) */
    int64_t fresh_us;
    /* a follower: its log was reconciled with its primary's this epoch (it takes entries),
     * and when it last heard a frame of that primary (the core's clock, us) */
    bool reconciled;
    int64_t heard_us;
} mn_spaces_repl_status_t;

/* The epoch of the entry at lsn in the log st describes; 0 when lsn is 0, or below what its
 * history covers: entries that came in a snapshot (lsn <= base_lsn), entries the engine
 * wrote before the core opened the space, epochs dropped from the bounded history. */
uint64_t mn_spaces_repl_status_epoch_at(const mn_spaces_repl_status_t *st, uint64_t lsn);
/* Was the entry a write made at (lsn, epoch) replaced since, in the log st describes? Yes
 * when the entry there now is of another epoch, or came in a snapshot (it may differ); no
 * when its epoch is not known otherwise, or epoch is 0 (the writer did not know it). */
bool mn_spaces_repl_status_replaced(const mn_spaces_repl_status_t *st, uint64_t lsn,
                                    uint64_t epoch);

mn_err mn_spaces_repl_status(const mn_spaces_repl_t *r, int64_t now_us, const char *space,
                             mn_spaces_repl_status_t *out);

typedef struct mn_spaces_repl_stats {
    uint64_t frames_sent, frames_received, bytes_sent;
    uint64_t dropped_decode;  /* frames that failed verification */
    uint64_t dropped_unknown; /* frames for a space not open here, or from a non-holder */
    uint64_t fenced;          /* appends refused for an older epoch */
    uint64_t gaps;            /* lsn gaps that triggered a fetch */
    uint64_t bad_crc;         /* entries whose checksum failed */
    uint64_t truncations;     /* forks cut from the local log */
    uint64_t reapplied;       /* entries handed back for re-application */
    uint64_t snapshots;       /* snapshot-needed answers sent */
    uint64_t elections;       /* elections this node started */
    uint64_t votes_granted;
    uint64_t votes_refused_record; /* vote requests refused: the candidate's record older */
    uint64_t entries_shipped;
    uint64_t closed;              /* spaces closed (copies moved away) */
    uint64_t unapplied;           /* entries the store could not take, fetched again (unapplied) */
    uint64_t restarted_logs;      /* primary: a replica fetching from nothing past its ack */
    uint64_t dropped_incarnation; /* frames of another incarnation of the space */
    uint64_t forgotten;           /* spaces forgotten (dropped, or another incarnation) */
    uint64_t stale_fetches;       /* primary: fetches below a replica's acknowledged position,
                                   * ignored as old (duplicated or overtaken) */
} mn_spaces_repl_stats_t;

void mn_spaces_repl_stats(const mn_spaces_repl_t *r, mn_spaces_repl_stats_t *out);

#endif
