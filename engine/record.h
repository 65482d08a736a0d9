/* Reading memory records from the store (record.c): a memory as the API shows
 * it, and the record as a commit group's batch sees it. A leaf over the store. */
#ifndef MN_ENGINE_RECORD_H
#define MN_ENGINE_RECORD_H

#include "mnemo/wire.h"
#include "space.h"
#include "store.h"

/* A memory's state as a batch sees it. */
enum { MN_MEM_ABSENT, MN_MEM_LIVE, MN_MEM_GONE };

/* Reads memory id of sp with its consolidated mark and strength (the initial
 * stability for initial_days when it was never reinforced), and its vector
 * when with_embedding. MN_ERR_NOT_FOUND, or MN_ERR_GONE for a tombstone. */
mn_err mn__record_read(mn__store *st, float initial_days, const mn__space *sp, const mn_id_t *id,
                       bool with_embedding, mn_memory_t *out, mn_error *err);
/* The kind of memory id of sp, live or forgotten (a tombstone keeps it). MN_ERR_NOT_FOUND
 * when sp has no record of id. */
mn_err mn__record_kind(mn__store *st, const mn__space *sp, const mn_id_t *id, mn_kind_t *kind,
                       mn_error *err);
/* Is the tombstone of id a retired semantic memory (not one a client forgot)?
 * False when there is no readable tombstone. */
mn_err mn__record_retired(mn__store *st, const mn__space *sp, const mn_id_t *id, bool *retired);
/* A memory record as the batch sees it (*found false when there is none). */
mn_err mn__record_get_wi(mn__store *st, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                         const mn_id_t *id, mn_memory_record_t *rec, bool *found, mn_error *err);
/* Is id absent, live or tombstoned (MN_MEM_*), as the batch sees it? */
mn_err mn__record_state_wi(mn__store *st, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                           const mn_id_t *id, int *state, mn_error *err);

#endif
