/* simnet: a deterministic discrete-event network simulator that runs many
 * sans-IO protocol cores (SWIM and the replication core of spaces/ today;
 * gossip later) in one thread, on a virtual clock, with one seeded PRNG.
 *
 * Nodes are generic: a core is anything with on_packet / on_tick /
 * next_deadline callbacks (mn_simnet_core_ops_t); simnet creates it at start
 * and restart, destroys it on crash, and delivers datagrams to it after a
 * per-link delay with loss, duplication, reordering, one-way blocks and
 * partitions. Same seed and same calls => same event trace (trace hash).
 *
 * On top sits a SWIM harness (mn_simswim_*): N swim cores, a ground-truth
 * view matrix fed by their membership events, and scenarios (steady, crash,
 * partition, churn, join) that measure detection time, false positives,
 * message load and join convergence; a replication harness
 * (mn_simrepl_*, below); and a gossip harness (mn_simgossip_*, below). */
#ifndef MNEMO_SIMNET_H
#define MNEMO_SIMNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mnemo/err.h"
#include "mnemo/gossip.h"
#include "mnemo/spaces.h"
#include "mnemo/swim.h"
#include "mnemo/util.h"

typedef struct mn_simnet mn_simnet_t;

/* One direction of a link. Delay = latency + Exp(mean jitter) [+ U(0,
 * reorder_us) with probability reorder]. */
typedef struct mn_simnet_link {
    int64_t latency_us;
    int64_t jitter_us;
    double loss;    /* drop probability per datagram */
    double dup;     /* probability a datagram arrives twice */
    double reorder; /* probability of an extra uniform delay */
    int64_t reorder_us;
} mn_simnet_link_t;

/* A protocol core plugged into a node. create is called at start and at each
 * restart with a fresh seed drawn from the simulator's PRNG; the core sends
 * through mn_simnet_send(net, node, ...). next_deadline returns an absolute
 * time (INT64_MAX = nothing to do). */
typedef struct mn_simnet_core_ops {
    void *(*create)(void *arg, mn_simnet_t *net, int node, int64_t now_us, uint64_t seed);
    void (*destroy)(void *arg, void *core);
    void (*on_packet)(void *core, int64_t now_us, const mn_swim_addr_t *from, const uint8_t *buf,
                      size_t len);
    void (*on_tick)(void *core, int64_t now_us);
    int64_t (*next_deadline)(void *core);
} mn_simnet_core_ops_t;

typedef enum { MN_SIMNET_DOWN = 0, MN_SIMNET_UP, MN_SIMNET_PAUSED } mn_simnet_node_state_t;

typedef struct mn_simnet_stats {
    uint64_t sent, sent_bytes, delivered;
    uint64_t lost, blocked, to_down, duplicated, held_overflow;
} mn_simnet_stats_t;

/* NULL on allocation failure. link = the default of every link. */
mn_simnet_t *mn_simnet_new(uint64_t seed, const mn_simnet_link_t *link);
void mn_simnet_free(mn_simnet_t *net);

/* Adds a node (down); returns its index or -1. Address 10.x.y.z:7946. */
int mn_simnet_add_node(mn_simnet_t *net, const mn_simnet_core_ops_t *ops, void *arg);
int mn_simnet_node_count(const mn_simnet_t *net);
mn_swim_addr_t mn_simnet_addr(const mn_simnet_t *net, int node);
/* Node index of an address, or -1. */
int mn_simnet_node_at(const mn_simnet_t *net, const mn_swim_addr_t *a);
mn_simnet_node_state_t mn_simnet_state(const mn_simnet_t *net, int node);
void *mn_simnet_core(const mn_simnet_t *net, int node);

/* Faults and lifecycle, effective at the current virtual time. */
void mn_simnet_start(mn_simnet_t *net, int node);  /* create the core (start or restart) */
void mn_simnet_crash(mn_simnet_t *net, int node);  /* destroy the core, drop its traffic */
void mn_simnet_pause(mn_simnet_t *net, int node);  /* stall: no ticks, datagrams held */
void mn_simnet_resume(mn_simnet_t *net, int node); /* held datagrams arrive at once */
void mn_simnet_set_link(mn_simnet_t *net, int from, int to, const mn_simnet_link_t *l);
void mn_simnet_set_default_link(mn_simnet_t *net, const mn_simnet_link_t *l);
/* One-way block of from -> to (on = true) or its removal. */
void mn_simnet_block(mn_simnet_t *net, int from, int to, bool on);
/* Partition by group[i] (one per node, copied). Two-way: nothing crosses
 * groups; one-way: only datagrams from a lower to a higher group are dropped. */
void mn_simnet_partition(mn_simnet_t *net, const int *group, bool oneway);
/* Removes partitions and blocks (link settings stay). */
void mn_simnet_heal(mn_simnet_t *net);
/* Would a datagram from -> to be dropped by a partition or block now? */
bool mn_simnet_cut(const mn_simnet_t *net, int from, int to);

/* Re-arms node's tick from its core's next_deadline: for drivers that call
 * into a core from outside simnet's events (a client write, a membership
 * notice), which may have moved the deadline. */
void mn_simnet_wake(mn_simnet_t *net, int node);

/* Called by cores: send a datagram from node to an address. */
void mn_simnet_send(mn_simnet_t *net, int from, const mn_swim_addr_t *to, const uint8_t *buf,
                    size_t len);

/* Runs every event up to and including time t; the clock ends at t. */
void mn_simnet_run_until(mn_simnet_t *net, int64_t t_us);
int64_t mn_simnet_now(const mn_simnet_t *net);
/* The simulator's PRNG, for scenario decisions (keeps one seed in charge). */
mn_prng_t *mn_simnet_prng(mn_simnet_t *net);

/* Trace: a 64-bit hash of every processed event (time, kind, node, bytes) and
 * every fault; optionally also written as text lines to f (NULL = off). */
uint64_t mn_simnet_trace_hash(const mn_simnet_t *net);
void mn_simnet_trace_file(mn_simnet_t *net, FILE *f);
void mn_simnet_trace_note(mn_simnet_t *net, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Datagram counters of one node (as sender) or of all (node = -1). */
void mn_simnet_stats(const mn_simnet_t *net, int node, mn_simnet_stats_t *out);

/* ---- SWIM harness ---- */

typedef enum {
    MN_SIMSWIM_STEADY = 0, /* no faults: count false positives */
    MN_SIMSWIM_CRASH,      /* crash one node after the steady phase */
    MN_SIMSWIM_PARTITION,  /* split in halves, wait for detection, heal, reconverge */
    MN_SIMSWIM_CHURN,      /* crash and restart nodes repeatedly */
    MN_SIMSWIM_JOIN,       /* one node joins a formed cluster */
} mn_simswim_scenario_t;

/* Parses "steady" | "crash" | "partition" | "churn" | "join". */
mn_err mn_simswim_scenario_parse(const char *s, mn_simswim_scenario_t *out);

typedef struct mn_simswim_opts {
    int nodes;
    uint64_t seed;
    mn_swim_config_t swim;
    mn_simnet_link_t link;
    bool auth;              /* HMAC-SHA256 with a test key */
    int64_t join_spread_ms; /* nodes start uniformly over this window (1000) */
    int64_t form_limit_ms;  /* give up forming after this (60000) */
    int64_t steady_ms;      /* fault-free phase before the fault (30000) */
    int64_t horizon_ms;     /* how long to wait for detection/convergence; 0 = 3 * bound (6 * for
                             * a partition) */
    bool oneway;            /* partition scenario: one-way instead of two-way */
    int64_t churn_every_ms; /* churn: a crash this often (5000) */
    int64_t churn_down_ms;  /* churn: a crashed node restarts after this (20000) */
    int64_t churn_ms;       /* churn: length of the churn phase (60000) */
    int slow_nodes;         /* this many nodes (the last ones) are degraded: */
    int64_t slow_jitter_us; /* ... every link to and from them adds Exp(this) delay */
    FILE *trace;            /* text trace (NULL = off) */
} mn_simswim_opts_t;

/* Defaults for the fields above (the swim config from profile "fast"). */
void mn_simswim_opts_default(mn_simswim_opts_t *o);
/* Time within which every live node should see a crash: two probe intervals
 * to be probed, the indirect phase, the longest suspicion, and the log N
 * gossip rounds of dissemination, with the health multiplier's slack. */
int64_t mn_simswim_detect_bound_ms(const mn_swim_config_t *c, int nodes);

typedef struct mn_simswim_result {
    bool formed;
    double formation_s;      /* all nodes see all alive */
    double *detect_first_s;  /* per fault: first observer marks it dead */
    double *detect_all_s;    /* per fault: every live observer does; < 0 = not within horizon */
    double *suspect_first_s; /* per crash: first observer suspects it (< 0 = none did) */
    size_t n_faults;
    int undetected;            /* faults some live observer missed within the horizon */
    uint64_t fp_dead;          /* dead declarations about running, reachable nodes, at an
                                * incarnation of their current life (refuted or not) */
    int fp_targets;            /* distinct such nodes */
    uint64_t fp_dead_degraded; /* of fp_dead: about the slow_nodes degraded members */
    int fp_targets_degraded;   /* of fp_targets: degraded members */
    uint64_t suspicions;       /* suspect declarations about running, reachable nodes */
    double msgs_per_node_s;    /* steady phase */
    double bytes_per_node_s;
    double *join_s; /* join: joiner known alive by all; churn: restarted node */
    size_t n_joins;
    int joins_unconverged;
    int joins_aborted; /* churn: the node crashed again before its join converged (no sample) */
    double heal_s;     /* partition: reconvergence after heal (< 0 = not within horizon) */
    double sim_s;      /* simulated seconds */
    uint64_t events;
    uint64_t trace_hash;
    mn_swim_stats_t swim; /* summed over the cores alive at the end */
    /* the steady phase alone: core counters summed over the running nodes,
     * and the node-seconds they ran (rate = counter / steady_node_s) */
    mn_swim_stats_t steady;
    double steady_node_s;
    uint64_t steady_net_sent; /* datagrams handed to the network in that phase */
} mn_simswim_result_t;

void mn_simswim_result_clear(mn_simswim_result_t *r);
/* sum += x, counter by counter (sums of runs' or cores' stats). */
void mn_simswim_stats_add(mn_swim_stats_t *sum, const mn_swim_stats_t *x);
mn_err mn_simswim_run(const mn_simswim_opts_t *o, mn_simswim_scenario_t sc, mn_simswim_result_t *r,
                      mn_error *err);

/* Lower level: a cluster to drive by hand (tests). */
typedef struct mn_simswim mn_simswim_t;
mn_simswim_t *mn_simswim_new(const mn_simswim_opts_t *o);
void mn_simswim_free(mn_simswim_t *h);
mn_simnet_t *mn_simswim_net(mn_simswim_t *h);
/* The swim core of a running node, NULL when down. */
mn_swim_t *mn_simswim_core(mn_simswim_t *h, int node);
/* Starts (or restarts) a node, which begins a new life (see the judge in
 * swim_sim.c); it joins through the first three nodes. */
void mn_simswim_start(mn_simswim_t *h, int node);
/* Pauses / resumes a node (mn_simnet_pause) and tells the judge: dead
 * declarations at the incarnation it was paused with are detections, not
 * false positives, until a detection bound after the resume. */
void mn_simswim_pause(mn_simswim_t *h, int node);
void mn_simswim_resume(mn_simswim_t *h, int node);
/* Every running node sees every other running node as a member (alive or suspect). */
bool mn_simswim_converged(const mn_simswim_t *h);
/* Runs until converged or the deadline; true if converged. */
bool mn_simswim_run_until_converged(mn_simswim_t *h, int64_t deadline_us);
/* State of tgt in obs's view (-1 = unknown or obs down). */
int mn_simswim_view(const mn_simswim_t *h, int obs, int tgt);
/* Running observers that see tgt in state st. */
int mn_simswim_count_view(const mn_simswim_t *h, int tgt, mn_swim_state_t st);
/* False-positive counters so far (see mn_simswim_result_t). */
uint64_t mn_simswim_fp_dead(const mn_simswim_t *h);
uint64_t mn_simswim_fp_dead_degraded(const mn_simswim_t *h);
int mn_simswim_fp_targets(const mn_simswim_t *h);
uint64_t mn_simswim_suspicions(const mn_simswim_t *h);
uint64_t mn_simswim_events(const mn_simswim_t *h);

/* ---- replication harness (mn_simrepl_*, simnet/repl_sim.c) ----
 *
 * N nodes "n0".."n<N-1>" hold one space and run the replication core of
 * spaces/ over simnet (in the membership scenarios, the nodes its holder record lists:
 * simnet/repl_records.c). Each node has a disk that survives crashes (its log
 * of entries, its durable state); clients write at whichever node is
 * writable, at a random level (one, quorum, all); a membership oracle tells
 * each node, after a detection delay, which others are dead, the way SWIM
 * would (a crash or a two-way partition is seen; a cut link between two
 * nodes that others still reach is not). A judge checks, all along and at
 * the end: at most one primary per epoch; every (epoch, lsn) names one entry
 * everywhere and every log is dense; no acknowledged write is missing from
 * the final primary's log; every live holder converges to it. */

typedef enum {
    MN_SIMREPL_CRASH_PRIMARY = 0, /* the primary crashes with batches in flight, restarts later */
    MN_SIMREPL_REPLICA_WAL,       /* a replica crashes, restarts, catches up from the WAL */
    MN_SIMREPL_REPLICA_SNAPSHOT,  /* ... after the WAL it needs was trimmed: a snapshot */
    MN_SIMREPL_CUT_REPLICA,       /* the primary's link to one replica is cut, then healed */
    MN_SIMREPL_OLD_PRIMARY,       /* the primary is partitioned away, keeps writing, returns */
    MN_SIMREPL_FLAPS,             /* membership flaps: the primary is reported dead and alive */
    MN_SIMREPL_HANDOVER,          /* the primary hands its role to a replica under writes */
    MN_SIMREPL_RANDOM,            /* a random mix of the above, from the seed */
    /* holder records change the voters (5 nodes at least, 3 holders): each first holder is
     * replaced in turn, the second time with the primary crashed meanwhile, the third the
     * primary itself (it hands over) */
    MN_SIMREPL_MEMBERSHIP,
    MN_SIMREPL_MEMBERSHIP_RANDOM, /* random's faults, and every so often new wanted holders */
} mn_simrepl_scenario_t;

/* Parses "crash-primary" | "replica-wal" | "replica-snapshot" | "cut-replica" |
 * "old-primary" | "flaps" | "handover" | "random" | "membership" | "membership-random". */
mn_err mn_simrepl_scenario_parse(const char *s, mn_simrepl_scenario_t *out);
const char *mn_simrepl_scenario_name(mn_simrepl_scenario_t sc);

typedef struct mn_simrepl_opts {
    int nodes; /* 3..7 (3) */
    uint64_t seed;
    mn_simnet_link_t link;
    mn_spaces_repl_config_t repl;
    double writes_per_s; /* client writes (400) */
    int64_t detect_ms;   /* the oracle's death detection delay (1500) */
    uint64_t wal_retain; /* entries a log keeps readable (0 = all) */
    int64_t fault_ms;    /* length of the fault phase (3000) */
    int64_t settle_ms;   /* healed, no writes: time to converge (8000) */
    FILE *trace;
} mn_simrepl_opts_t;

void mn_simrepl_opts_default(mn_simrepl_opts_t *o);

typedef struct mn_simrepl_result {
    uint64_t writes;            /* client writes taken by a primary */
    uint64_t acked[3];          /* by level (mn_spaces_level_t) */
    uint64_t lost[3];           /* acknowledged, missing from the final primary's log */
    uint64_t primary_conflicts; /* epochs with two primaries */
    uint64_t log_violations;    /* a gap in a log, or an (epoch, lsn) naming two entries */
    uint64_t epochs;            /* the final epoch */
    uint64_t promotions;
    uint64_t reapplied, truncations, snapshots, fenced, gaps;
    double failover_s; /* first fault -> a new writable primary (< 0: none) */
    bool has_primary;  /* a writable primary at the end */
    bool converged;    /* every running holder has the primary's log at the end */
    /* membership scenarios: holder records published, of them voter changes, and copies
     * closed and dropped because a record left their node out */
    uint64_t records, voter_changes, copies_dropped;
    bool settled; /* the newest record lists exactly the wanted holders, all voters */
    uint64_t final_lsn;
    uint64_t trace_hash;
} mn_simrepl_result_t;

/* Runs one scenario; fills r. The run is a pure function of o (the seed). */
mn_err mn_simrepl_run(const mn_simrepl_opts_t *o, mn_simrepl_scenario_t sc, mn_simrepl_result_t *r,
                      mn_error *err);
/* Did the run keep every invariant (and end with a primary and converged)? */
bool mn_simrepl_ok(const mn_simrepl_result_t *r);

/* ---- gossip harness (mn_simgossip_*, simnet/gossip_sim.c) ----
 *
 * N nodes "n0".."n<N-1>" run the gossip core over simnet, every node a peer
 * of every other (gossip.scope = "cluster"). Every node starts with the same
 * `spaces` x `records` records; then the scenario changes records at some
 * nodes (new versions, new records, tombstones) under its faults. A judge
 * folds every change into one more core that no network reaches (the
 * merge is order-free, so that is the state every node must reach) and
 * reports when every node's directory root equals the judge's.
 *
 * With `holders` = R > 0 (gossip.scope = "holders"), space s is held by the R
 * nodes from (37 s) mod N on: each node starts with, changes and exchanges
 * only the spaces it holds (per-space peer sets, the core's shares callback),
 * its peers are the nodes it shares a space with, and "converged" is every
 * node's root of each space it holds equal to the judge's, and no record of
 * any other space on it. A change the scenario makes at a node that does not
 * hold the space is made at the space's first running holder. */

typedef enum {
    MN_SIMGOSSIP_CONVERGE = 0, /* steady phase, then one change at one node */
    MN_SIMGOSSIP_LOSS,         /* the same under 5 % datagram loss (unless --loss is given) */
    MN_SIMGOSSIP_PARTITION,    /* halves apart, changes on both sides (a tombstone racing an
                                * update of the same record), heal */
    MN_SIMGOSSIP_RANDOM,       /* random changes, tombstones, partitions, pauses, 0..5 % loss */
    MN_SIMGOSSIP_JOIN,         /* a node restarts empty (a new or wiped node) and fetches it all */
} mn_simgossip_scenario_t;

/* Parses "converge" | "loss" | "partition" | "random" | "join". */
mn_err mn_simgossip_scenario_parse(const char *s, mn_simgossip_scenario_t *out);
const char *mn_simgossip_scenario_name(mn_simgossip_scenario_t sc);

typedef struct mn_simgossip_opts {
    int nodes; /* 2..1000 (100) */
    uint64_t seed;
    mn_simnet_link_t link;
    mn_gossip_config_t gossip;
    int spaces;         /* spaces every node holds at the start (4) */
    int records;        /* records per space at the start (250) */
    int payload_bytes;  /* each version's payload (the memory's bytes), 0..65536 (1024) */
    int holders;        /* 0: scope cluster; R: scope holders, R holders per space (0) */
    int64_t steady_ms;  /* fault-free phase whose traffic is measured (10000) */
    int64_t horizon_ms; /* a change not everywhere within this is a failure (60000) */
    FILE *trace;
} mn_simgossip_opts_t;

void mn_simgossip_opts_default(mn_simgossip_opts_t *o);

typedef struct mn_simgossip_result {
    bool converged;             /* every node's root equals the judge's at the end */
    int mismatched;             /* nodes whose root does not */
    bool tombstones_held;       /* every node holds the judge's tombstones as tombstones */
    double converge_s;          /* last change -> every root equal (< 0: not within horizon) */
    double converge_rounds;     /* converge_s / interval */
    double steady_bytes_node_s; /* bytes sent per node per second, steady phase */
    double steady_frames_node_s;
    double converge_bytes_node_s; /* ... while converging */
    double heal_s;                /* partition: heal -> every root equal */
    uint64_t changes;             /* records changed by the scenario */
    mn_gossip_stats_t stats;      /* summed over the nodes */
    double sim_s;
    uint64_t trace_hash;
} mn_simgossip_result_t;

/* Runs one scenario; fills r. The run is a pure function of o (the seed). */
mn_err mn_simgossip_run(const mn_simgossip_opts_t *o, mn_simgossip_scenario_t sc,
                        mn_simgossip_result_t *r, mn_error *err);
/* Converged, with the tombstones held, within the horizon. */
bool mn_simgossip_ok(const mn_simgossip_result_t *r);

#endif
