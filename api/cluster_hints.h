/* Partition mode for writes (docs/gossip.md, "Partition mode"): with
 * cluster.partition_writes = "accept", a remember whose space's primary cannot be reached is
 * kept on the node that took it as a hint (the store, api/cluster_hints_store.c) and merged
 * through the primary once it is reachable (the drainer, api/cluster_hints.c). Hinted
 * handoff after Cassandra's, with the ids assigned where the write was accepted. Private to
 * api/. */
#ifndef MN_API_CLUSTER_HINTS_H
#define MN_API_CLUSTER_HINTS_H

#include <stddef.h>
#include <stdint.h>

#include "api_internal.h"
#include "cluster_catalog.h"
#include "cluster_repl.h"
#include "cluster_route.h"
#include "cluster_spaces.h"
#include "mnemo/config.h"
#include "mnemo/engine.h"
#include "mnemo/err.h"
#include "mnemo/http.h"
#include "mnemo/model.h"

/* ---- the store: one file per hint in a directory, fsync'd before it is acknowledged ---- */

typedef struct cl_hints cl_hints;

/* One pending hint as the drainer sees it. */
typedef struct cl_hint_ref {
    uint64_t seq; /* names its file; ascending in the order hints were taken */
    char space[MN_SPACE_NAME_MAX + 1];
    size_t n; /* memories it holds */
} cl_hint_ref;

/* Opens (creating it) the store in dir and loads the hints pending there; max: the memories
 * it may hold at once. A file that does not decode is renamed *.bad and skipped (logged). */
mn_err cl_hints_open(const char *dir, size_t max, cl_hints **out, mn_error *err);
void cl_hints_close(cl_hints *h);
/* Keeps the n memories of a remember to space as one hint, durable (file and directory
 * fsync'd) before it returns; memory i gets id api_hint_id(base, i) and created_at base's
 * time, in ids_out. A memory whose idempotency key a pending hint of space holds answers
 * that hint's id and is not kept again. MN_ERR_LIMIT when max would be passed. */
mn_err cl_hints_add(cl_hints *h, const char *space, const mn_memory_t *mems, size_t n,
                    const mn_id_t *base, mn_id_t *ids_out, mn_error *err);
/* The oldest pending hints, up to max of them, into out; how many. */
size_t cl_hints_peek(cl_hints *h, cl_hint_ref *out, size_t max);
/* A hint's stored bytes (a remember WAL entry, mn_wire_wal_encode): *data malloc'd. */
mn_err cl_hints_read(cl_hints *h, uint64_t seq, uint8_t **data, size_t *len, mn_error *err);
/* Forgets a hint once merged (its file deleted); rejected: kept aside as *.rejected. */
mn_err cl_hints_remove(cl_hints *h, uint64_t seq, bool rejected, mn_error *err);
/* Deletes the pending hints taken before stale_before(arg, their space) (ms, this node's
 * clock: their ids' time); how many memories they held. stale_before runs under the store's
 * lock. */
size_t cl_hints_drop_stale(cl_hints *h, int64_t (*stale_before)(void *arg, const char *space),
                           void *arg);
/* Memories pending, in all and in space (NULL: all). */
size_t cl_hints_pending(cl_hints *h, const char *space);
/* The spaces with hints pending: calls fn for each with its count of memories. */
void cl_hints_each_space(cl_hints *h, void (*fn)(void *arg, const char *space, size_t n),
                         void *arg);

/* ---- the drainer and the routes ---- */

typedef struct cl_hintd cl_hintd;

/* Opens <data_dir>/hints and starts the drainer thread (also when partition writes are
 * rejected: hints taken before a restart with "reject" still merge). cat (borrowed, outlives
 * the drainer) says which spaces are dropped: their hints go. */
mn_err cl_hintd_start(const mn_config_t *c, mn_engine_t *engine, cl_spaces *cs, cl_route *rt,
                      cl_repl *repl, cl_catalog *cat, cl_hintd **out, mn_error *err);
/* The doors' API (embedding of merged memories on the primary); before requests arrive. */
void cl_hintd_set_api(cl_hintd *d, mn_api_t *api);
/* Stops the thread and frees d (NULL ignored). */
void cl_hintd_stop(cl_hintd *d);
/* api_cluster_hooks.hint_remember (arg = the cl_hintd). */
mn_err cl_hintd_remember(void *arg, const char *space, const mn_memory_t *mems, size_t n,
                         const mn_id_t *base, mn_id_t *ids_out, mn_error *err);
/* POST /v1/cluster/hints (ctx = the cl_hintd): the primary merges one hint another node
 * sends (internal hops only) and answers 200 once it reached the space's write consistency. */
void cl_hintd_handle_merge(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
/* GET /v1/cluster/hints: {"mode", "pending", "max", "spaces": [{"name", "pending"}],
 * "stats": {"accepted", "merged", "rejected", "full", "dropped"}}. */
void cl_hintd_handle_get(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
/* Its document (api_cluster_doc_fn; arg = the cl_hintd): malloc'd JSON text. */
char *cl_hintd_render(void *arg, int *status, mn_error *err);

#endif
