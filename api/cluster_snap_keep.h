/* Entries to re-apply through the new primary, kept on disk until it answered
 * (cluster_snap_keep.c). Replication thread only. */
#ifndef MN_API_CLUSTER_SNAP_KEEP_H
#define MN_API_CLUSTER_SNAP_KEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/engine.h"

typedef struct csnap_keep_file {
    char space[MN_SPACE_NAME_MAX + 1];
    int fd;        /* <dir>/<space>.log, open for appends */
    size_t held;   /* its records not answered yet */
    bool unsynced; /* appended since the last sync */
    bool fresh;    /* created since the last sync: the directory too */
} csnap_keep_file;

typedef struct csnap_keep {
    char dir[4200]; /* <data_dir>/repl/reapply */
    csnap_keep_file *files;
    size_t n, cap;
} csnap_keep;

typedef void (*csnap_keep_fn)(void *arg, const char *space, const uint8_t *data, size_t len);

/* Creates the directory if needed and hands every record kept there to fn (a restart). */
mn_err mn__csnap_keep_open(csnap_keep *k, const char *repl_dir, csnap_keep_fn fn, void *arg);
void mn__csnap_keep_close(csnap_keep *k);
/* Appends an entry of space (durable at the next mn__csnap_keep_sync). */
mn_err mn__csnap_keep_add(csnap_keep *k, const char *space, const uint8_t *data, size_t len);
/* Makes every record appended so far durable. */
mn_err mn__csnap_keep_sync(csnap_keep *k);
/* One record of space was answered; the file goes with the last. */
void mn__csnap_keep_done(csnap_keep *k, const char *space);

#endif
