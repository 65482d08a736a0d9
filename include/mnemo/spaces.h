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

/* One alive member of the membership view. zone NULL or "" = no zone. */
typedef struct mn_spaces_member {
    const char *id;
    const char *zone;
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

typedef struct mn_spaces_entry {
    char name[MN_SPACE_NAME_MAX + 1];
    uint64_t epoch;   /* the primary's term, from the repl core's elections (1 at creation) */
    uint64_t changed; /* table version of this entry's last change */
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

/* One placement step: next = f(prev, view, opts), a pure function (the order
 * of view does not matter). next must be initialised; it is overwritten.
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

/* The desired holders of one space in the view, primary first, as the step
 * aims for them (bounded loads over all of t's spaces): writes up to
 * MN_SPACES_RF_MAX node indexes into the view to out, returns the count. */
mn_err mn_spaces_desired(const mn_spaces_table_t *t, const mn_spaces_member_t *view, size_t n_view,
                         const mn_spaces_opts_t *o, const char *space, size_t *out, size_t *n_out,
                         mn_error *err);

#endif
