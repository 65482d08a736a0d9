/* Durable file replacement for the cluster's small files (the hint store, the gossip store).
 * Private to api/. */
#ifndef MN_API_CLUSTER_FILE_H
#define MN_API_CLUSTER_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "mnemo/err.h"

/* data becomes the file path, whole or not at all: written to tmp, fsync'd, renamed to path
 * and dir (path's folder) fsync'd. tmp is removed on failure. */
mn_err cl_file_replace(const char *tmp, const char *path, const char *dir, const uint8_t *data,
                       size_t len, mn_error *err);

#endif
