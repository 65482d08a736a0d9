/* A space's HNSW index inside the engine (space_index.c): when it exists, how
 * it follows the space's slots, and how recall uses it. Private to engine/. */
#ifndef MN_SPACE_INDEX_H
#define MN_SPACE_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "mnemo/engine.h"

struct mn__space;
struct mn_engine;

/* Fills the 0 fields of an index definition with the engine's defaults
 * (engine.hnsw_m, hnsw_ef_construction, hnsw_ef_search, hnsw_quantize). */
void mn__space_index_defaults(const struct mn_engine *e, mn_index_def_t *d);
/* MN_ERR_INVALID, naming the field, when a (filled) definition is out of range. */
mn_err mn__space_index_check(const mn_index_def_t *d, mn_error *err);
/* Records that slot changed (inserted, replaced or removed). Write lock held;
 * a no-op until the space has an index. */
void mn__space_index_note(struct mn__space *sp, uint32_t slot);
/* After an apply, with no lock held (commit thread): hands the noted changes
 * (or a first build once the space reached the threshold) to the index thread. */
void mn__space_index_sync(struct mn_engine *e, struct mn__space *sp);
/* Index thread: takes the space's noted changes and applies them to the graph
 * under the READ lock in short chunks (building the graph first if needed);
 * stops after the current chunk once the index thread is told to stop. */
void mn__space_index_work(struct mn_engine *e, struct mn__space *sp);
/* The slots not yet in the graph (read lock held): two ranges, possibly with
 * repeats and with slots no longer live. Recall ranks them exactly. */
void mn__space_index_tail(const struct mn__space *sp, const uint32_t **a, size_t *na,
                          const uint32_t **b, size_t *nb);
/* Vector top-n through the index (read lock held). Returns false when the
 * exact scan should run instead: no index, below the threshold, `exact`
 * requested, or a filter so selective that a scan is cheaper. */
bool mn__space_index_rank(struct mn_engine *e, const struct mn__space *sp, const float *q,
                          const mn_recall_req_t *req, int64_t now, uint32_t n, uint32_t *slots,
                          uint32_t *n_out, uint64_t *visited);
/* Candidate neighbours of q for semantic linking (read lock held): the graph's
 * n nearest live slots plus the unindexed tail, in *slots (malloc'd). False
 * when the space has no usable graph (scan the space instead). */
bool mn__space_index_nearest(struct mn_engine *e, const struct mn__space *sp, const float *q,
                             uint32_t n, uint32_t **slots, size_t *n_out);
/* The index figures of a space's stats (read lock held). */
void mn__space_index_stats(struct mn_engine *e, const struct mn__space *sp, mn_space_stats_t *out);
/* Start-up (before the commit thread runs): fills the space's index
 * parameters left 0 with the engine's, loads its saved graph (of any age:
 * nodes whose memory is gone or changed are dropped, live memories the graph
 * lacks are noted for the index thread); without a usable file the index
 * thread rebuilds it (progress in the log). */
void mn__space_index_load(struct mn_engine *e, struct mn__space *sp);
/* Index thread, between jobs: saves the space's graph when it has unsaved
 * changes older than engine.hnsw_save_interval_s. */
void mn__space_index_tick(struct mn_engine *e, struct mn__space *sp);
/* Shutdown (commit and index threads stopped): saves every graph with
 * changes since its file was written, as it is (a backlog stays unapplied). */
void mn__space_index_save_all(struct mn_engine *e);
/* Live nodes and bytes of the space's index (the graph and its labels);
 * false when it has none (read lock held). */
bool mn__space_index_size(const struct mn__space *sp, uint64_t *nodes, uint64_t *bytes);
/* Frees a space's index (mn__space_free); deletes its file if the space was dropped. */
void mn__space_index_free(struct mn__space *sp);

#endif
