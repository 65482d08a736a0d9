/* Semantic memories a replica's erasures left for its primary to re-derive (repair.c). */
#ifndef MN_ENGINE_REPAIR_H
#define MN_ENGINE_REPAIR_H

#include <rocksdb/c.h>

#include "commit.h"

/* A replicated entry erased episodes: notes the semantic memories that list them
 * (p->rederive) as left to the primary's re-derivation, in the entry's batch, and marks
 * sp as having notes. */
void mn__repair_note(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b);
/* An entry carries semantic memory id anew (a version, a stub) or erases it: its note, if
 * any, goes. A space never marked as having notes reads nothing. */
mn_err mn__repair_clear(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                        const mn_id_t *id, mn_error *err);
/* Background thread, after sp's copy here became its primary: re-derives the memories
 * still noted, as one consolidate entry. */
void mn__repair_space(mn_engine_t *e, mn__space *sp);

#endif
