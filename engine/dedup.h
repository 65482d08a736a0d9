/* Exact duplicates on the way in (dedup.c): the hash that names a memory's
 * normalised content, context and embedding, and the index that maps it to
 * the live memory holding it. Commit thread only, inside the group's batch. */
#ifndef MN_ENGINE_DEDUP_H
#define MN_ENGINE_DEDUP_H

#include "engine_internal.h"
#include "space.h"

#define MN__DEDUP_HASH_LEN 16

/* m's dedup hash: whitespace-collapsed, trimmed content (case kept), who (as a
 * set), where, session and the embedding's bytes (or its absence). */
void mn__dedup_hash(const mn_memory_t *m, uint8_t out[MN__DEDUP_HASH_LEN]);
/* The memory of sp indexed under hash h, as batch b sees it, if it is live,
 * not suppressed and not expired at now_ms (*found says). */
mn_err mn__dedup_find(mn_engine_t *e, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                      const uint8_t h[MN__DEDUP_HASH_LEN], int64_t now_ms, mn_id_t *id, bool *found,
                      mn_error *err);
/* Indexes memory id under h (taking the hash over from a memory that held it). */
void mn__dedup_put(mn_engine_t *e, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                   const uint8_t h[MN__DEDUP_HASH_LEN], const mn_id_t *id);
/* A memory being erased: its hash leaves the index, unless a newer memory holds it. */
mn_err mn__dedup_erase(mn_engine_t *e, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                       const mn_id_t *id, mn_error *err);

#endif
