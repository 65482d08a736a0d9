/* Snapshot transfer between nodes (cluster_snap*.c; docs/replication.md, "Snapshots in
 * the server"): a replica whose core says "snapshot needed" fetches its primary's space
 * over the peer bus, channel CREP_CH_SNAP, in windows of checksummed chunks, resuming at
 * the chunk it lacks after a broken connection, installs it (mn_engine_snapshot_install_*)
 * and tells the core (mn_spaces_repl_restored). Everything runs on the replication thread.
 * Private to api/. */
#ifndef MN_API_CLUSTER_SNAP_H
#define MN_API_CLUSTER_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/engine.h"
#include "mnemo/err.h"

#define CREP_CH_SNAP 4         /* the peer channel of snapshot transfers */
#define CSNAP_WINDOW 4         /* chunks asked for at once (4 x 512 KiB in the bus queue) */
#define CSNAP_EXPORTS_MAX 4    /* snapshots a node serves at once */
#define CSNAP_INSTALLS_MAX 2   /* snapshots a node fetches at once */
#define CSNAP_KEEP_US 60000000 /* an export nobody asked for this long is closed */
#define CSNAP_RETRY_US 1000000 /* no chunk this long: ask again from the one lacking */
#define CSNAP_IDLE_US (3 * CSNAP_RETRY_US) /* an export unasked this long yields its slot */
#define CSNAP_TICK_MS 100
#define CSNAP_REAPPLY_MAX_BYTES (64u << 20) /* forked entries held for re-application */

typedef struct cl_repl cl_repl;
typedef struct crep_snap crep_snap;

/* Attaches the channel (from cl_repl_start, any thread). */
mn_err mn__crep_snap_start(cl_repl *r, mn_error *err);
/* After the replication thread stopped: closes exports and installs (installs are aborted:
 * their staged chunks go). */
void mn__crep_snap_free(cl_repl *r);
/* Replication thread: the core says space needs a snapshot. */
void mn__crep_snap_needed(cl_repl *r, const char *space);
/* Replication thread: space was closed here (a copy moved away): its fetch, if any, is
 * aborted (staged chunks deleted), so no late chunk installs it again. */
void mn__crep_snap_cancel(cl_repl *r, const char *space);

/* Replication thread: an entry of this node past a fork (the core's reapply callback):
 * held and sent to the space's primary until it answers that it re-applied it. */
void mn__crep_snap_reapply(cl_repl *r, const char *space, uint64_t lsn, const uint8_t *data,
                           size_t len);
/* Replication thread: makes every entry handed back so far durable (before the local log
 * may lose it: a truncate answered, a snapshot installed). */
void mn__crep_snap_reapply_sync(cl_repl *r);

/* ---- private to cluster_snap*.c ---- */

/* Frames on CREP_CH_SNAP (cluster_snap.c's header comment). */
enum { K_REQ = 1, K_CHUNK = 2, K_ERR = 3, K_REAPPLY = 4, K_REAPPLIED = 5, K_DONE = 6 };
enum { E_NOT_PRIMARY = 1, E_GONE = 2, E_BUSY = 3 };

typedef struct csnap_frame {
    uint8_t kind;
    char space[MN_SPACE_NAME_MAX + 1];
    uint64_t id;
    uint32_t seq, arg;
    const uint8_t *data;
    size_t len;
} csnap_frame;

void mn__csnap_send(cl_repl *r, const char *to, uint8_t kind, const char *space, uint64_t id,
                    uint32_t seq, uint32_t arg, const uint8_t *data, size_t len);
/* Does this node's core lead space? */
bool mn__csnap_leads(cl_repl *r, const char *space);

/* The re-application state (cluster_snap_reapply.c), NULL before start. */
struct csnap_reapply *mn__csnap_reap(cl_repl *r);

/* cluster_snap_reapply.c */
/* Loads the entries kept in <repl_dir>/reapply (NULL: out of memory or an I/O error). */
struct csnap_reapply *mn__csnap_reapply_new(const char *repl_dir, mn_error *err);
void mn__csnap_reapply_free(struct csnap_reapply *x);
void mn__csnap_reapply_tick(cl_repl *r, int64_t now_us);
void mn__csnap_on_reapply(cl_repl *r, const char *from, const csnap_frame *f);
void mn__csnap_on_reapplied(cl_repl *r, const char *from, const csnap_frame *f);

#endif
