/* Consolidation (consolidate.c, semantic_build.c): what the write path needs
 * of it. */
#ifndef MN_ENGINE_CONSOLIDATE_H
#define MN_ENGINE_CONSOLIDATE_H

#include <rocksdb/c.h>

#include "space.h"

/* Re-derives the semantic memories ids[n] (sorted) from the supports they still
 * have, as the batch sees them (commit thread, for the episodes a group erased):
 * each one that lost a support becomes what a run builds from the rest (the
 * keywords it still has a support for), or a retired stub (forgotten at at_ms)
 * below the engine's consolidate_min_support. *out (malloc'd, clear each) gets
 * the memories that changed. */
mn_err mn__consolidate_rederive(mn_engine_t *e, mn__space *sp, rocksdb_writebatch_wi_t *b,
                                const mn_id_t *ids, size_t n, int64_t at_ms, mn_memory_t **out,
                                size_t *n_out, mn_error *err);
/* Was semantic memory id made by consolidation (a version 8 id, derived from its key)? */
bool mn__consolidate_made(const mn_id_t *id);

#endif
