/* The index thread (indexer.c): keeps every space's HNSW graph up to date in
 * the background. */
#ifndef MN_ENGINE_INDEXER_H
#define MN_ENGINE_INDEXER_H

#include "space.h"

mn_err mn__indexer_start(mn_engine_t *e, mn_error *err);
/* Stops the thread after its current chunk (queued work waits for the next
 * start). A no-op when it never started. */
void mn__indexer_stop(mn_engine_t *e);
/* Queues sp for index work (no lock needed; at most once while queued). */
void mn__indexer_kick(mn_engine_t *e, mn__space *sp);
/* Blocks until no index work is queued or running. */
void mn__indexer_wait(mn_engine_t *e);
/* Has the thread been told to stop? (Its work loop checks between chunks.) */
bool mn__indexer_halted(const mn_engine_t *e);

#endif
