/* Private to api/cluster_repl*.c: the replication thread's state. */
#ifndef MN_API_CLUSTER_REPL_INTERNAL_H
#define MN_API_CLUSTER_REPL_INTERNAL_H

#include <pthread.h>
#include <uv.h>

#include "cluster_repl.h"
#include "mnemo/metrics.h"
#include "mnemo/peer.h"

#define CREP_HANDOVER_EVERY_MS 5000 /* a space's handover is tried at most this often */
#define CREP_CACHE 512              /* recent entries kept per space for shipping (a ring by lsn) */
#define CREP_CHANNELS 4             /* users of the bus beside replication (cl_repl_attach) */
#define CREP_POST_MAX_BYTES (64u << 20) /* frames posted and not yet handed to the bus */
/* The engine takes writes this long past the core's lease (mn__crep_lease): a copy slow to
 * open a new space, or this thread late to publish, must not make writes fail; the core
 * takes every entry the engine wrote anyway, so the grace bounds a fork, not safety. */
#define CREP_LEASE_GRACE_US CL_REPL_LEASE_GRACE_US

typedef struct crep_cached {
    uint64_t lsn, epoch;
    uint8_t *data;
    size_t len;
} crep_cached;

/* A space open in the core (thread only). */
#define CREP_LAG_NODES 64 /* replicas given a lag series of their own; more share none */
#define CREP_LAG_LOG_US (30 * 1000000LL) /* a space's lag warnings: one per 30 s at most */

typedef struct crep_space {
    char name[MN_SPACE_NAME_MAX + 1];
    uint64_t holders_hash; /* of the holder list last given to the core */
    uint64_t hooked_lsn;   /* the engine's last durable lsn, as its hook said */
    bool pump;             /* hooked entries not yet appended to the core */
    bool dirty;            /* status to publish */
    bool lease_due;        /* the engine's lease bound to set from the core's (mn__crep_lease) */
    int64_t lease_us;      /* the bound last set (the core's lease_until), INT64_MIN = none */
    int64_t handover_us;   /* when a handover was last started */
    bool handover_fenced;  /* the engine copy was made a replica for that handover */
    bool diverged;         /* a store met a local log unlike the core's: store and ack no more,
                            * until a snapshot replaced the copy (cluster_snap.c) */
    crep_cached *cache;    /* CREP_CACHE slots, allocated on first use */
    /* Every node the core has counted as a voter of this space. A table built from this
     * node's own view drops a down replica; the core keeps counting it (a primary cut off
     * from its replicas must not become a majority of one), until voters leave by recorded
     * transitions (not built: docs/replication.md, known gaps). */
    char voters[MN_SPACES_HOLDERS_MAX][MN_SPACES_NODE_MAX + 1];
    size_t n_voters;
    uint64_t incarnation; /* the table's incarnation of the name it was opened for (0 = none) */
    bool lagging;        /* a copy over CL_LAG_WARN_MS behind when last published */
    bool lag_logged;     /* that start was logged (so its end is too) */
    int64_t lag_warn_us; /* when a start was last logged (one a CREP_LAG_LOG_US at most) */
    int64_t unsynced_us; /* a follower not reconciled with its primary since (0: it is) */
    int64_t unsynced_warn_us; /* when that was last logged */
} crep_space;

/* Entries the core handed to apply during one call, stored as one batch after it. */
typedef struct crep_batch {
    crep_space *sp;
    uint64_t first_lsn;
    size_t n, cap;
    uint8_t **data;
    size_t *lens;
    uint64_t *epochs;
} crep_batch;

/* A WAL hook notification (commit thread -> repl thread). */
typedef struct crep_hooked {
    char space[MN_SPACE_NAME_MAX + 1];
    uint64_t epoch, lsn;
} crep_hooked;

/* An attached user of the bus (thread only once live). */
typedef struct crep_chan {
    cl_repl_channel ch;
    cl_repl *r;
    uv_timer_t timer;
} crep_chan;

/* A frame posted from another thread (cl_repl_post), waiting for the thread. */
typedef struct crep_post {
    struct crep_post *next;
    char node[MN_SPACES_NODE_MAX + 1];
    uint8_t channel;
    size_t len;
    uint8_t data[];
} crep_post;

/* What request threads read: one space's status (under pub_mu). */
typedef struct crep_pub {
    char name[MN_SPACE_NAME_MAX + 1];
    mn_spaces_repl_status_t st;
    uint64_t reached[3]; /* by mn_spaces_level_t */
} crep_pub;

/* A CAUGHT_UP event of the core, waiting for the loop thread (cl_repl_caught_up). */
typedef struct crep_caught {
    char space[MN_SPACE_NAME_MAX + 1];
    char node[MN_SPACES_NODE_MAX + 1];
    uint64_t epoch;
} crep_caught;

/* A space whose newest record no longer lists this node, its copy still here
 * (cluster_repl_drop.c). */
typedef struct crep_gone {
    char space[MN_SPACE_NAME_MAX + 1];
    uint64_t epoch, version; /* of the record (for the log) */
} crep_gone;

/* A space's primary as the last table named it (cluster_repl_drop.c): where entries held
 * for re-application of a space this node no longer holds are sent. */
typedef struct crep_primary {
    char space[MN_SPACE_NAME_MAX + 1];
    char node[MN_SPACES_NODE_MAX + 1];
} crep_primary;

/* Counters of the glue (thread only; exported with the rest). */
typedef struct crep_counts {
    uint64_t apply_failed, truncate_refused, reapply_dropped, snapshot_needed, append_failed;
    uint64_t persist_failed;
    /* snapshots (cluster_snap.c) */
    uint64_t snap_sent, snap_installed, snap_failed, snap_bytes_sent, snap_bytes_received;
    uint64_t reapplied; /* forked entries of another node stored here (cluster_snap_reapply.c) */
    uint64_t copies_dropped; /* copies moved away and dropped (cluster_repl_drop.c) */
    uint64_t lost_state_refused; /* copies whose state was lost, not held (cluster_repl_lost.c) */
} crep_counts;

struct cl_repl {
    mn_engine_t *engine;
    char self[MN_SPACES_NODE_MAX + 1];
    char dir[4096]; /* <data_dir>/repl: durable state per space */
    int64_t write_timeout_ms;
    int default_level; /* cluster.write_consistency */
    int port;          /* the peer bus's */
    pthread_t thread;
    bool thread_started;
    /* thread only */
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t tick, refresh;
    mn_peer_t *bus;
    mn_spaces_repl_t *core;
    crep_space **spaces; /* sorted by name */
    bool pumps, dirty;   /* some space has pump / dirty set */
    size_t n_spaces, cap_spaces;
    crep_batch batch;
    cl_repl_member *members;
    size_t n_members;
    crep_gone *gone; /* copies to drop (cluster_repl_drop.c) */
    size_t n_gone, cap_gone;
    crep_primary *primaries; /* of the last table, sorted by space (cluster_repl_drop.c) */
    size_t n_primaries, cap_primaries;
    char (*lost)[MN_SPACE_NAME_MAX + 1]; /* spaces refused: state lost (cluster_repl_lost.c) */
    size_t n_lost, cap_lost;
    int64_t born_ms, born_margin_ms; /* when <data_dir>/repl was first made, and the margin
                                      * (cluster_repl_lost.c) */
    cl_repl_handover *handovers; /* the list placement wants (thread's copy) */
    size_t n_handovers;
    uint8_t *read_buf; /* the entry the core's last read got from the engine */
    size_t read_cap;
    crep_counts counts;
    struct crep_snap *snap;         /* snapshot transfers (cluster_snap.c) */
    crep_chan chans[CREP_CHANNELS]; /* live users of the bus */
    size_t n_chans;
    mn_peer_stats_t exported_peer;
    mn_spaces_repl_stats_t exported_core;
    crep_counts exported_counts;
    uint64_t stale_logged;    /* stale fetches as last logged (one line per CREP_LAG_LOG_US) */
    int64_t stale_logged_us;
    /* the nodes mnemo_repl_replica_lag_seconds has a series of (set to 0 once gone) */
    char lag_nodes[CREP_LAG_NODES][MN_SPACES_NODE_MAX + 1];
    size_t n_lag_nodes;
    mn_metrics_family_t *m_replica_lag_s;
    mn_metrics_family_t *m_frames, *m_bytes, *m_dropped, *m_closed, *m_lag_entries, *m_lag_s,
        *m_events, *m_accepted;
    /* inputs (in_mu): from the loop thread and the commit thread */
    pthread_mutex_t in_mu;
    mn_spaces_table_t in_table;
    bool in_table_new;
    cl_repl_member *in_members;
    size_t in_n_members;
    bool in_members_new;
    cl_repl_handover *in_handovers;
    size_t in_n_handovers;
    bool in_handovers_new;
    crep_hooked *hooked;
    size_t n_hooked, cap_hooked;
    cl_repl_channel in_chans[CREP_CHANNELS]; /* attached, not yet live */
    size_t in_n_chans;
    uint8_t chan_taken[32]; /* bitmap of the channels attached (live or not) */
    crep_post *posts, **posts_tail;
    size_t post_bytes;
    bool stop;
    /* published (pub_mu; pub_cv signals every change of a reached level) */
    pthread_mutex_t pub_mu;
    pthread_cond_t pub_cv;
    crep_pub *pub; /* sorted by name */
    size_t n_pub, cap_pub;
    crep_caught *caught; /* CAUGHT_UP events not yet taken (pub_mu) */
    size_t n_caught, cap_caught;
};

int64_t mn__crep_now_us(void);
crep_space *mn__crep_space(cl_repl *r, const char *name);

/* cluster_repl_store.c: the core's callbacks that reach the engine and the disk */
void mn__crep_callbacks(cl_repl *r, mn_spaces_repl_cb_t *cb);
mn_err mn__crep_load(cl_repl *r, const char *space, mn_spaces_repl_durable_t *d, bool *found);
/* Writes all n bytes to fd (EINTR retried); false on any error. */
bool mn__crep_write_all(int fd, const uint8_t *buf, size_t n);
void mn__crep_flush(cl_repl *r); /* stores the batch apply collected */
void mn__crep_cache_put(crep_space *sp, uint64_t lsn, uint64_t epoch, const uint8_t *data,
                        size_t len);
void mn__crep_space_free(crep_space *sp);
/* Empties sp's ring (a snapshot replaced the log it held). */
void mn__crep_cache_clear(crep_space *sp);
/* Reads entries first_lsn.. (n, of the given epochs: the hook's) into sp's cache. */
void mn__crep_cache_fill(cl_repl *r, crep_space *sp, uint64_t first_lsn, const uint64_t *epochs,
                         size_t n);
void mn__crep_pump(cl_repl *r, crep_space *sp); /* appends hooked entries to the core */
/* Gives the engine the core's lease bound for sp, where this node leads it: the engine takes
 * no write the core's lease would not (mn_engine_space_set_lease). */
void mn__crep_lease(cl_repl *r, crep_space *sp);
/* cluster_repl.c: a CAUGHT_UP event of the core, queued for the loop thread */
void mn__crep_caught_up(cl_repl *r, const mn_spaces_repl_event_t *ev);

/* cluster_repl_drop.c: copies moved away */
void mn__crep_gone_update(cl_repl *r, const mn_spaces_table_t *t); /* after each new table */
void mn__crep_drop_gone(cl_repl *r); /* closes and drops what it can; the rest waits */

/* cluster_repl_lost.c: a space e to open here, with no durable state here: true (logged
 * once, counted) when e's holder record names this node a voter, whose state was lost. */
bool mn__crep_lost_state(cl_repl *r, const mn_spaces_entry_t *e);
/* At start, after the repl folder exists: reads its first creation time, or writes now as
 * that (durable). */
mn_err mn__crep_born(cl_repl *r, mn_error *err);
/* Closes sp in the core whatever its role and forgets the thread's state of it (sp is
 * freed): the space was dropped, or its name names another incarnation (why says which). */
void mn__crep_forget(cl_repl *r, crep_space *sp, const char *why);
/* Forgets every open space the table t no longer lists: its name was dropped (the catalog
 * keeps a live name until a tombstone covers it). The engine's copy goes with the drop. */
void mn__crep_forget_dropped(cl_repl *r, const mn_spaces_table_t *t);
/* the space's live primary in the last table (any node), or NULL */
const char *mn__crep_table_primary(const cl_repl *r, const char *space);

/* cluster_repl_chan.c: the other users of the bus */
void mn__crep_chan_wake(cl_repl *r);    /* thread: makes attached channels live, sends posts */
void mn__crep_chan_members(cl_repl *r); /* thread: tells the channels the members */
void mn__crep_chan_close(cl_repl *r);   /* thread, at shutdown: closes the channels' timers */
void mn__crep_chan_free(cl_repl *r);    /* after the thread: drops what was never sent */

/* cluster_repl_pub.c: what request threads and metrics see */
void mn__crep_publish(cl_repl *r, bool all);
void mn__crep_metrics_init(cl_repl *r);
void mn__crep_metrics_export(cl_repl *r);
void mn__crep_pub_free(cl_repl *r);
void mn__crep_pub_forget(cl_repl *r, const char *name); /* closed: status, queued caught-ups */

#endif
