/* Private to api/cluster_gossip*.c.
 *
 * Threads: the replication thread runs the bus callbacks (frames, ticks, members); the
 * feeder thread (cluster_gossip_feed.c) reads the WAL of the spaces this node leads; request
 * threads read the store and the figures. mu guards the core, the store and the peer table:
 * whoever holds it drives the core, so one thread at a time does (the core's rule). */
#ifndef MN_API_CLUSTER_GOSSIP_INTERNAL_H
#define MN_API_CLUSTER_GOSSIP_INTERNAL_H

#include "cluster_gossip.h"

#include <pthread.h>
#include <stdatomic.h>

#include "mnemo/gossip.h"
#include "mnemo/metrics.h"

#define CG_PEERS_MAX 256
#define CG_PEER_SPACES 64 /* space roots remembered per peer (the latest ones) */

/* One gossiped semantic memory as the store keeps it (cluster_gossip_store.c). */
typedef struct cg_entry {
    mn_id_t id;
    bool live;    /* neither retired nor a tombstone, and its payload decoded */
    bool changed; /* the core's record changed since the last save (cluster_gossip_save.c) */
    uint32_t support_n;
    mn_memory_t mem; /* the payload decoded (live only) */
} cg_entry;

typedef struct cg_space {
    char name[MN_SPACE_NAME_MAX + 1];
    cg_entry *e; /* sorted by id */
    size_t n, cap;
    size_t live;
    int64_t sync_ms; /* wall: a peer last reported this space's root equal to ours */
} cg_space;

/* scope "holders": a space this node holds, and the nodes that hold it (this one too). */
typedef struct cg_held {
    char name[MN_SPACE_NAME_MAX + 1];
    int n;
    char node[MN_SPACES_HOLDERS_MAX][MN_SPACES_NODE_MAX + 1];
} cg_held;

/* What a peer last told about its roots (NODES frames holding a root). */
typedef struct cg_peer {
    char id[MN_SPACES_NODE_MAX + 1];
    bool dir_known;
    uint8_t dir[MN_GOSSIP_DIGEST_LEN];
    struct {
        char space[MN_SPACE_NAME_MAX + 1];
        uint8_t root[MN_GOSSIP_DIGEST_LEN];
    } sp[CG_PEER_SPACES];
    size_t n_sp, next_sp; /* a ring once full */
} cg_peer;

struct cl_gossip {
    mn_engine_t *engine;
    cl_repl *repl;
    cl_spaces *cs;
    cl_catalog *catalog;
    char self[MN_SPACES_NODE_MAX + 1];
    bool holders; /* gossip.scope = "holders" */
    pthread_mutex_t mu;
    mn_gossip_t *g;
    cg_space *sp; /* sorted by name */
    size_t n_sp, cap_sp;
    cg_peer peers[CG_PEERS_MAX]; /* the current peer set (from members or holders) */
    cg_held *held;               /* scope "holders": the spaces held here, sorted by name */
    size_t n_held;
    size_t n_peers;
    int64_t dir_sync_ms; /* wall: a peer last reported our directory root */
    int64_t last_gc_ms, last_holders_ms, last_sweep_ms;
    mn_gossip_stats_t exported; /* what the metrics registry has */
    mn_metrics_family_t *m_rounds, *m_bytes, *m_entries;
    /* gauges of the GET /v1/cluster/gossip figures, and partition answers given */
    mn_metrics_family_t *m_semantic, *m_differing, *m_sync_age, *m_partition;
    uint8_t *scratch; /* an 8-byte aligned copy of a frame (cg_observe) */
    size_t scratch_cap;
    /* the feeder thread */
    pthread_t feeder;
    bool feeding;
    pthread_mutex_t feed_mu;
    pthread_cond_t feed_cv;
    bool stop; /* under feed_mu */
    /* the store on disk (cluster_gossip_save.c) */
    char save_path[4096];
    bool dirty;     /* under mu: an entry was marked changed since the last save */
    bool save_full; /* under mu: the next save rewrites the file whole */
    /* feeder thread only (cl_gossip_free after it stopped): the file's state */
    int64_t last_save_ms;
    int save_fd;                  /* open for appending; -1 until the first rewrite */
    size_t file_bytes;            /* its length */
    size_t rewritten_bytes;       /* its length when last rewritten whole */
    _Atomic size_t saved;         /* records the file stands for, as last written */
    _Atomic size_t saved_bytes;   /* its length, as last written */
    _Atomic size_t saved_records; /* records written, appended or rewritten, in all */
    _Atomic size_t appends, rewrites;
    size_t loaded, corrupt, torn; /* at start: records loaded; files set aside; cut tails */
};

/* ---- the store (cluster_gossip_store.c), under mu ---- */
cg_space *cg_space_of(cl_gossip *g, const char *name, bool create);
/* The core's state of id in space is rec: the store follows it. */
void cg_store_apply(cl_gossip *g, const char *space, const mn_gossip_record_t *rec);
void cg_store_free(cl_gossip *g);
/* Removes s's entries whose id was made before before_ms (the core dropped them). */
void cg_store_drop(cg_space *s, int64_t before_ms);

/* ---- the store on disk (cluster_gossip_save.c) ---- */
#define CG_SAVE_EVERY_MS 2000
#define CG_SAVE_REWRITE_MIN (1u << 20) /* appended bytes a file may grow by before a rewrite */
/* Under mu: all, a whole file of every record of the core (header and one block); else one
 * block of the records whose entries are marked changed. The marks are cleared. *out
 * malloc'd, *records counted. */
mn_err cg_save_encode(cl_gossip *g, bool all, uint8_t **out, size_t *len, size_t *records);
typedef struct cg_save_info {
    unsigned version;
    size_t blocks;   /* whole blocks read */
    size_t good_len; /* where they end */
    bool torn;       /* the bytes after them are a last block cut short */
} cg_save_info;
/* fn gets each record of a file's bytes (its arrays valid during the call only), once the
 * whole file checked out (a last block cut short is not handed on, and said in info);
 * MN_ERR_CORRUPT naming what is wrong otherwise, fn never called. */
typedef void (*cg_save_fn)(void *arg, const char *space, const mn_gossip_record_t *rec);
mn_err cg_save_decode(const uint8_t *data, size_t len, cg_save_fn fn, void *arg, cg_save_info *info,
                      mn_error *err);
/* Feeder thread: appends what changed, or rewrites the file, when the store changed, at most
 * every CG_SAVE_EVERY_MS (force: whenever it changed). */
void cg_save_maybe(cl_gossip *g, bool force);
/* At start, before the core runs: the file into the core and the store; a bad one is set
 * aside (*.corrupt) and counted, and the store starts empty; a last block cut short is left
 * out and counted. */
void cg_save_load(cl_gossip *g);

/* ---- the feeder (cluster_gossip_feed.c) ---- */
mn_err cg_feed_start(cl_gossip *g, mn_error *err);
/* The feeder's step for one space (its thread, or a test): when this node leads space, the
 * WAL entries from *next_lsn on (0: the first kept) into the core; *next_lsn moves past
 * those read. Takes g->mu itself. */
void cg_feed_space(cl_gossip *g, const char *space, uint64_t *next_lsn);
void cg_feed_stop(cl_gossip *g);

#endif
