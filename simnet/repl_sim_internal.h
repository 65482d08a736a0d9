/* The replication harness's state, shared by repl_sim.c (nodes, disks, the
 * core's callbacks, clients, the oracle, the judge) and repl_scenarios.c
 * (the fault scripts). */
#ifndef MNEMO_SIMNET_REPL_SIM_INTERNAL_H
#define MNEMO_SIMNET_REPL_SIM_INTERNAL_H

#include "mnemo/simnet.h"

#define MN__SIMREPL_NODES_MAX 7
#define MN__SIMREPL_SPACE "s1"
#define MN__SIMREPL_DATA 16 /* entry bytes: the payload id (be64) and the writer */

typedef struct mn__rs_entry {
    uint64_t epoch, lsn;
    uint8_t data[MN__SIMREPL_DATA];
} mn__rs_entry;

/* What survives a crash. */
typedef struct mn__rs_disk {
    mn__rs_entry *log; /* log[i] is lsn i + 1 */
    size_t n, cap;
    uint64_t trimmed; /* lsns <= this are no longer readable (WAL retention) */
    mn_spaces_repl_durable_t d;
    bool has_d;
} mn__rs_disk;

typedef struct mn_simrepl mn_simrepl_t;

typedef struct mn__rs_node {
    mn_simrepl_t *h;
    int idx;
    char id[16];
    mn__rs_disk disk;
    mn_spaces_repl_t *core; /* NULL while down */
    int life;               /* +1 per crash */
    bool view_alive[MN__SIMREPL_NODES_MAX];
    int64_t snapshot_at_us;            /* a snapshot install is due (INT64_MAX: none) */
    mn_spaces_repl_stats_t dead_stats; /* summed over crashed lives */
    /* holder records (repl_records.c): the newest this node has (its catalog, kept over a
     * crash), whether its core has the space open, when the newest record reaches it
     * (INT64_MAX: not on its way), when it last asked to hand its role over */
    mn_spaces_record_t known;
    bool open;
    int64_t rec_due_us, handover_at_us;
} mn__rs_node;

typedef struct mn__rs_write {
    int node, life, level;
    uint64_t epoch, lsn, id;
    int64_t at_us;
} mn__rs_write;

typedef struct mn__rs_notice {
    int64_t at_us;
    int obs, tgt;
    bool alive;
} mn__rs_notice;

typedef struct mn__rs_acked {
    uint64_t id, epoch;
    int level, node;
} mn__rs_acked;

struct mn_simrepl {
    mn_simrepl_opts_t o;
    mn_simnet_t *net;
    mn__rs_node nodes[MN__SIMREPL_NODES_MAX];
    int n;
    bool writing;
    double write_credit;
    uint64_t next_id;
    mn__rs_write *pending;
    size_t n_pending, cap_pending;
    mn__rs_acked *acked;
    size_t n_acked, cap_acked;
    uint64_t *reapply;
    size_t n_reapply, cap_reapply;
    mn__rs_notice *notices;
    size_t n_notices, cap_notices;
    uint64_t *primary_of; /* node + 1 that led each epoch (0: none seen) */
    size_t cap_epochs;
    uint64_t *ident; /* open addressing: (epoch, lsn) -> id, 3 words a slot */
    size_t cap_ident, n_ident;
    int64_t fault_at_us; /* INT64_MAX: no primary fault yet */
    uint64_t fault_epoch;
    mn_simrepl_result_t *res;
    /* holder records (repl_records.c; off: every node a voter all along): the newest record
     * published, the holders the scenario wants, and the epoch in which a primary last
     * reported each node caught up */
    bool records;
    mn_spaces_record_t rec;
    int want[MN__SIMREPL_NODES_MAX], n_want;
    uint64_t caught_epoch[MN__SIMREPL_NODES_MAX];
};

/* repl_sim.c. records_of: 0, or the space starts with a holder record of the first
 * records_of nodes (the rest hold nothing until a record adds them: repl_records.c). */
mn_simrepl_t *mn__simrepl_new(const mn_simrepl_opts_t *o, mn_simrepl_result_t *res, int records_of);
void mn__simrepl_free(mn_simrepl_t *h);
/* Runs the simulation (clients, notices, snapshots) up to now + ms. */
void mn__simrepl_advance(mn_simrepl_t *h, int64_t ms);
/* The writable node with the highest epoch, or -1. */
int mn__simrepl_primary(const mn_simrepl_t *h, int64_t now_us);
void mn__simrepl_crash(mn_simrepl_t *h, int node);
void mn__simrepl_restart(mn_simrepl_t *h, int node);
/* Two-way partition by group; the oracle reports the cut after detect_ms. */
void mn__simrepl_partition(mn_simrepl_t *h, const int *group);
/* Removes partitions and cut links; the oracle reports the healed after 200 ms. */
void mn__simrepl_heal(mn_simrepl_t *h);
/* Cuts the link between a and b both ways (no membership change). */
void mn__simrepl_cut(mn_simrepl_t *h, int a, int b);
/* obs hears that tgt is dead now, and alive again after ms. */
void mn__simrepl_flap(mn_simrepl_t *h, int obs, int tgt, int64_t ms);
/* The judge's end of run: heal, restart, settle, check. */
void mn__simrepl_finish(mn_simrepl_t *h);
/* Asks node from (if it leads) to hand its role to node to. */
void mn__simrepl_handover(mn_simrepl_t *h, int from, int to);
/* Marks a primary fault now (for the failover time). */
void mn__simrepl_fault(mn_simrepl_t *h);

/* repl_records.c */
void mn__simrec_init(mn_simrepl_t *h, int voters);
/* The scenario wants these holders (node indexes); the primary moves its record there. */
void mn__simrec_want(mn_simrepl_t *h, const int *nodes, int n);
/* The newest record lists exactly the wanted nodes, all of them voters. */
bool mn__simrec_settled(const mn_simrepl_t *h);
/* Does the newest record list node (always true without records)? */
bool mn__simrec_lists(const mn_simrepl_t *h, int node);
/* nd's core was created: it opens the space if the record it knows lists it. */
void mn__simrec_started(mn_simrepl_t *h, mn__rs_node *nd, int64_t now_us);
void mn__simrec_caught_up(mn_simrepl_t *h, const mn_spaces_repl_event_t *ev);
/* Each slice: primaries step their records, records spread, dropped holders close. */
void mn__simrec_step(mn_simrepl_t *h, int64_t now_us);

#endif
