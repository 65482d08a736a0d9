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
/* After an apply, with no lock held (commit thread): brings the graph up to
 * date under the space's READ lock, so recalls keep running, and builds the
 * graph when the space has grown past the threshold. */
void mn_space_index_sync(struct mn_engine *e, struct mn_space *sp);
/* Vector top-n through the index (read lock held). Returns false when the
 * exact scan should run instead: no index, below the threshold, `exact`
 * requested, or a filter so selective that a scan is cheaper. */
bool mn_space_index_rank(struct mn_engine *e, const struct mn_space *sp, const float *q,
                         const mn_recall_req *req, int64_t now, uint32_t n, uint32_t *slots,
                         uint32_t *n_out, uint64_t *visited);
/* Start-up (before the commit thread runs): loads the saved graph of a space
 * at its last lsn, or rebuilds it (progress in the log). */
void mn_space_index_load(struct mn_engine *e, struct mn_space *sp);
/* Clean shutdown (commit thread stopped): saves every space's graph. */
void mn_space_index_save_all(struct mn_engine *e);
/* Frees a space's index (mn_space_free); deletes its file if the space was dropped. */
void mn_space_index_free(struct mn_space *sp);

#endif
