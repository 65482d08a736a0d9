/* A space's HNSW index inside the engine (space_index.c): when it exists, how
 * it follows the space's slots, and how recall uses it. Private to engine/. */
#ifndef MN_SPACE_INDEX_H
#define MN_SPACE_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "mnemo/engine.h"

struct mn_space;
struct mn_engine;

/* Records that slot changed (inserted, replaced or removed). Write lock held;
 * a no-op until the space has an index. */
void mn_space_index_note(struct mn_space *sp, uint32_t slot);
/* After an apply, with no lock held (commit thread): hands the noted changes
 * (or a first build once the space reached the threshold) to the index thread. */
void mn_space_index_sync(struct mn_engine *e, struct mn_space *sp);
/* Index thread: takes the space's noted changes and applies them to the graph
 * under the READ lock in short chunks (building the graph first if needed). */
void mn_space_index_work(struct mn_engine *e, struct mn_space *sp);
/* The slots not yet in the graph (read lock held): two ranges, possibly with
 * repeats and with slots no longer live. Recall ranks them exactly. */
void mn_space_index_tail(const struct mn_space *sp, const uint32_t **a, size_t *na,
                         const uint32_t **b, size_t *nb);
/* Vector top-n through the index (read lock held). Returns false when the
 * exact scan should run instead: no index, below the threshold, `exact`
 * requested, or a filter so selective that a scan is cheaper. */
bool mn_space_index_rank(struct mn_engine *e, const struct mn_space *sp, const float *q,
                         const mn_recall_req *req, int64_t now, uint32_t n, uint32_t *slots,
                         uint32_t *n_out, uint64_t *visited);
/* Candidate neighbours of q for semantic linking (read lock held): the graph's
 * n nearest live slots plus the unindexed tail, in *slots (malloc'd). False
 * when the space has no usable graph (scan the space instead). */
bool mn_space_index_nearest(struct mn_engine *e, const struct mn_space *sp, const float *q,
                            uint32_t n, uint32_t **slots, size_t *n_out);
/* The index figures of a space's stats (read lock held). */
void mn_space_index_stats(struct mn_engine *e, const struct mn_space *sp, mn_space_stats *out);
/* Start-up (before the commit thread runs): loads the saved graph of a space
 * at its last lsn; without one the index thread rebuilds it (progress in the log). */
void mn_space_index_load(struct mn_engine *e, struct mn_space *sp);
/* Clean shutdown (commit thread stopped): saves every space's graph. */
void mn_space_index_save_all(struct mn_engine *e);
/* Live nodes and bytes of the space's index; false when it has none (read lock held). */
bool mn_space_index_size(const struct mn_space *sp, uint64_t *nodes, uint64_t *bytes);
/* Frees a space's index (mn_space_free); deletes its file if the space was dropped. */
void mn_space_index_free(struct mn_space *sp);

#endif
