/* Snapshot transfer between nodes (cluster_snap*.c; docs/replication.md, "Snapshots in
 * the server"): a replica whose core says "snapshot needed" fetches its primary's space
 * over the peer bus, channel CREP_CH_SNAP, in windows of checksummed chunks, resuming at
 * the chunk it lacks after a broken connection, installs it (mn_engine_snapshot_install_*)
 * and tells the core (mn_spaces_repl_restored). Everything runs on the replication thread.
 * Private to api/. */
#ifndef MN_API_CLUSTER_SNAP_H
#define MN_API_CLUSTER_SNAP_H

#include <stdint.h>

#include "mnemo/err.h"

#define CREP_CH_SNAP 4         /* the peer channel of snapshot transfers */
#define CSNAP_WINDOW 4         /* chunks asked for at once (4 x 512 KiB in the bus queue) */
#define CSNAP_EXPORTS_MAX 4    /* snapshots a node serves at once */
#define CSNAP_INSTALLS_MAX 2   /* snapshots a node fetches at once */
#define CSNAP_KEEP_US 60000000 /* an export nobody asked for this long is closed */
#define CSNAP_RETRY_US 1000000 /* no chunk this long: ask again from the one lacking */
#define CSNAP_TICK_MS 100

typedef struct cl_repl cl_repl;
typedef struct crep_snap crep_snap;

/* Attaches the channel (from cl_repl_start, any thread). */
mn_err mn__crep_snap_start(cl_repl *r, mn_error *err);
/* After the replication thread stopped: closes exports and installs (installs are aborted:
 * their staged chunks go). */
void mn__crep_snap_free(cl_repl *r);
/* Replication thread: the core says space needs a snapshot. */
void mn__crep_snap_needed(cl_repl *r, const char *space);

#endif
