/* Replication inside `mnemo serve` (cluster mode): one thread with its own
 * libuv loop runs the peer bus (peer/, on cluster.peer_port) and the
 * replication core (spaces/, mn_spaces_repl_*) for every space this node
 * holds, and connects them to the engine: the commit thread's WAL hook feeds
 * the core's appends, replicated entries go to mn_engine_replicate, elections
 * set the engine's space roles. The loop thread hands it each new placement
 * table and membership; request threads wait on it for their write level.
 * docs/replication.md, "Replication in the server". Private to api/. */
#ifndef MN_API_CLUSTER_REPL_H
#define MN_API_CLUSTER_REPL_H

#include <stdbool.h>
#include <stdint.h>

#include "mnemo/config.h"
#include "mnemo/engine.h"
#include "mnemo/err.h"
#include "mnemo/spaces.h"

/* The engine takes writes and serves reads as the primary this long past the core's lease
 * (mn__crep_lease, cl_spaces_leads_now); the core's voters wait out the lease plus this
 * (vote_hold_us, checked at start) before they elect another primary. */
#define CL_REPL_LEASE_GRACE_US 1000000

typedef struct cl_repl cl_repl;

/* A member as the loop thread sees it in SWIM. */
typedef struct cl_repl_member {
    char id[MN_SPACES_NODE_MAX + 1];
    char peer_host[64]; /* from the "peer=HOST:PORT" metadata; "" = not announced */
    int peer_port;
    bool alive; /* alive or suspect */
} cl_repl_member;

/* Binds the peer port (cluster.bind:cluster.peer_port, 0 = any), sets the
 * engine's WAL hook and starts the thread. Loop thread. */
mn_err cl_repl_start(const mn_config_t *c, mn_engine_t *engine, const char *self, cl_repl **out,
                     mn_error *err);
/* The peer port bound. */
int cl_repl_port(const cl_repl *r);
/* Stops the thread (closing the bus) and frees r; no waiter may run. */
void cl_repl_stop(cl_repl *r);

/* Loop thread: the current table and members (copied; the thread catches up
 * asynchronously). Either may be NULL: unchanged. */
void cl_repl_update(cl_repl *r, const mn_spaces_table_t *t, const cl_repl_member *m, size_t n);

/* A role to hand over: this node leads space, placement wants target to. */
typedef struct cl_repl_handover {
    char space[MN_SPACE_NAME_MAX + 1];
    char target[MN_SPACES_NODE_MAX + 1];
} cl_repl_handover;

/* Loop thread: the handovers placement wants now (copied; replaces the previous list). The
 * thread carries each out (mn_spaces_repl_handover) while it leads the space and target has
 * every entry, at most once per CREP_HANDOVER_EVERY_MS per space. */
void cl_repl_handovers(cl_repl *r, const cl_repl_handover *h, size_t n);

/* Any thread: blocks until space's log up to lsn reached level (mn_spaces_level_t; < 0:
 * cluster.write_consistency) at this primary, or timeout_ms (<= 0: cluster.write_timeout_ms)
 * ran out: MN_ERR_UNAVAILABLE
 * "space S: the write reached N of M copies within T ms". Level one returns at once
 * (the engine acknowledged after its fsync). epoch (0 = not known): the epoch of the
 * write's entry at lsn; once the level is reached, the log must still hold that epoch at
 * lsn, else MN_ERR_UNAVAILABLE "the write was replaced ..." (a snapshot or a truncation
 * replaced this node's log since the write: the entry now at lsn is another). */
mn_err cl_repl_write_wait(cl_repl *r, const char *space, uint64_t lsn, uint64_t epoch, int level,
                          int64_t timeout_ms, mn_error *err);

/* Any thread: the core's last published status of space (false: not open here). */
bool cl_repl_status(cl_repl *r, const char *space, mn_spaces_repl_status_t *out);

/* Any thread: how far node's copy of space is behind, in ms, as this node's core knows it:
 * any copy when it leads the space (its own: 0); its own copy when it follows (the time
 * since its store last held all its primary had, as the primary's appends said); -1 = not
 * known here. */
int64_t cl_repl_lag_ms(cl_repl *r, const char *space, const char *node);
/* A copy further behind than this (ms) is lagging: logged as a warning when it starts and
 * stops, flagged in GET /v1/cluster/spaces (docs/replication.md, "Lag"). */
#define CL_LAG_WARN_MS 1000

/* Any thread: the spaces this node's core leads that another live voter could take over
 * (a graceful leave waits for none to be left: mn_cluster_hand_over). */
size_t cl_repl_leading(cl_repl *r);

/* Any thread: the (space, primary, epoch) the core follows or leads, for every open space
 * whose epoch is above known(space, incarnation): the placement table's, for the incarnation
 * of the name the core's state belongs to (0 = not known); fn gets each. */
typedef uint64_t (*cl_repl_known_fn)(void *arg, const char *space, uint64_t incarnation);
typedef void (*cl_repl_leader_fn)(void *arg, const char *space, const char *primary,
                                  uint64_t epoch);
void cl_repl_leaders(cl_repl *r, cl_repl_known_fn known, cl_repl_leader_fn fn, void *arg);

/* Any thread: takes the copies the primary's core reported caught up since the last call
 * (MN_SPACES_REPL_CAUGHT_UP: space, node, epoch); fn gets each once. */
typedef void (*cl_repl_caught_fn)(void *arg, const char *space, const char *node, uint64_t epoch);
void cl_repl_caught_up(cl_repl *r, cl_repl_caught_fn fn, void *arg);

/* ---- other users of the peer bus (cluster_repl_chan.c) ----
 *
 * The bus belongs to the replication thread; gossip (channel MN_PEER_CH_GOSSIP) and
 * queries (MN_PEER_CH_QUERY) share it. A user attaches once, from any thread, and its
 * callbacks then run on the replication thread, never two at once. A user must outlive r:
 * free it after cl_repl_stop. */
typedef struct cl_repl_channel {
    uint8_t channel; /* 2..255: not MN_PEER_CH_REPL */
    void *arg;
    /* a frame of channel from node from (the bus authenticated it); buf valid during the call */
    void (*on_frame)(void *arg, const char *from, const uint8_t *buf, size_t len);
    /* every tick_ms (> 0), with the monotonic clock in us; NULL = no tick */
    void (*on_tick)(void *arg, int64_t now_us);
    int64_t tick_ms;
    /* the members as SWIM last reported them (this node may be listed), once at attach and
     * after each change; NULL = not wanted */
    void (*on_members)(void *arg, const cl_repl_member *m, size_t n);
} cl_repl_channel;

/* Any thread: attaches ch (copied). MN_ERR_INVALID: channel 0 or 1, or no on_frame;
 * MN_ERR_EXISTS: the channel is taken. */
mn_err cl_repl_attach(cl_repl *r, const cl_repl_channel *ch, mn_error *err);

/* Replication thread only (from a channel's callbacks): queues a frame for node. The bus's
 * answer: MN_ERR_NOT_FOUND (no address), MN_ERR_BUSY (its queue is full: dropped). */
mn_err cl_repl_send(cl_repl *r, const char *node, uint8_t channel, const uint8_t *buf, size_t len);

/* Any thread: copies the frame and has the replication thread send it. MN_ERR_NOMEM;
 * MN_ERR_UNAVAILABLE when r is stopping. Delivery is not confirmed (a later refusal by the
 * bus is counted there). */
mn_err cl_repl_post(cl_repl *r, const char *node, uint8_t channel, const uint8_t *buf, size_t len);

#endif
