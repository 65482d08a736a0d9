/* The background thread (background.c): semantic linking, reinforcement, the repair of a
 * promoted copy and scheduled consolidation, off the callers' paths. */
#ifndef MN_ENGINE_BACKGROUND_H
#define MN_ENGINE_BACKGROUND_H

#include "space.h"

mn_err mn__linker_start(mn_engine_t *e, mn_error *err);
/* Writes the queued reinforcements, drops the queued links, stops the thread. */
void mn__linker_stop(mn_engine_t *e);
/* Queues newly remembered memories of sp for semantic linking. */
void mn__linker_enqueue(mn_engine_t *e, mn__space *sp, const mn_id_t *ids, size_t n);
/* Queues recalled memories of sp for reinforcement as of at_ms. */
void mn__reinforce_enqueue(mn_engine_t *e, mn__space *sp, const mn_id_t *ids, size_t n,
                           int64_t at_ms);

/* Queues the repair of sp, whose copy here now leads it (repair.c). */
void mn__repair_enqueue(mn_engine_t *e, mn__space *sp);

#endif
