/* The store's key layout (keys.c). Every per-space key starts with the space's
 * 4-byte big-endian id, so dropping a space is one range deletion per column
 * family; after the id comes a one-byte tag naming the index:
 *
 *   memories, vectors, keywords:  sid | id
 *   wal:                          sid | lsn (be64: iteration is lsn order)
 *   index:  sid | 'k' | idempotency key        -> id
 *           sid | 't' | when | id              -> ""          (time index)
 *           sid | 'g' | when | id              -> GONE_VALUE  (as-of index)
 *           sid | 'G' | gone_at | id           -> when be64   (its pruning order)
 *           sid | 'w' | id                     -> be64 lsns of the WAL entries carrying it
 *           sid | 'W'                          -> ""          (the space keeps 'w' keys)
 *           sid | 'a' | from | to | kind       -> kind u8, weight f32
 *           sid | 's' | id                     -> STRENGTH_VALUE
 *           sid | 'c' | episode id             -> ids of the semantic memories listing it
 *           sid | 'd' | dedup hash (16 bytes)  -> id of the live memory with that hash
 *           sid | 'D' | id                     -> its dedup hash (so a forget finds 'd')
 *           sid | 'v' | lineage id             -> the id of its current version (corrected
 *                                                 memories only)
 *           sid | 'R' | id                     -> ""  (a semantic memory a replica's erasure
 *                                                 left for its primary to re-derive: repair.c)
 * Times are stored order-preserving (mn__key_time_bits). A leaf: it knows
 * bytes, not the store. */
#ifndef MN_ENGINE_KEYS_H
#define MN_ENGINE_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "mnemo/util.h"

#define KEY_SID_LEN 4
#define KEY_MEM_LEN (KEY_SID_LEN + 16)
#define KEY_WAL_LEN (KEY_SID_LEN + 8)
#define KEY_TIME_LEN (KEY_SID_LEN + 1 + 8 + 16)
#define KEY_WALREF_LEN (KEY_SID_LEN + 1 + 16)
#define KEY_EDGE_LEN (KEY_SID_LEN + 1 + 32 + 1)
#define KEY_STRENGTH_LEN (KEY_SID_LEN + 1 + 16)
#define KEY_CONSOLIDATED_LEN (KEY_SID_LEN + 1 + 16)
#define KEY_DEDUP_LEN (KEY_SID_LEN + 1 + 16)
#define KEY_HEAD_LEN (KEY_SID_LEN + 1 + 16)
#define KEY_REDERIVE_LEN (KEY_SID_LEN + 1 + 16)
/* As-of index value: kind u8, created_at be64, gone_at be64. */
#define GONE_VALUE_LEN 17
/* Strength value: f32 stability_days, i64 last access ms, u32 access count. */
#define STRENGTH_VALUE_LEN 16

void mn__key_sid(uint8_t *k, uint32_t sid);
void mn__key_mem(uint8_t *k, uint32_t sid, const mn_id_t *id);
void mn__key_wal(uint8_t *k, uint32_t sid, uint64_t lsn);
void mn__key_time(uint8_t *k, uint32_t sid, int64_t when_ms, const mn_id_t *id);
/* 'k' key of an idempotency key; returns its length (k holds >= 5 + strlen(key)). */
size_t mn__key_idem(uint8_t *k, uint32_t sid, const char *key);
/* As-of index of forgotten memories (deleted or expired), so as-of reads can
 * show that something was there; entries older than engine.as_of_max_age are
 * pruned (sweeper.c). */
void mn__key_gone(uint8_t *k, uint32_t sid, int64_t when_ms, const mn_id_t *id);
void mn__key_gone_by_time(uint8_t *k, uint32_t sid, int64_t gone_ms, const mn_id_t *id);
void mn__key_walref(uint8_t *k, uint32_t sid, const mn_id_t *id);
/* Exact duplicates (dedup.c): 'd' maps a memory's dedup hash to its id, 'D' the id
 * back to the hash; both KEY_DEDUP_LEN bytes. */
void mn__key_dedup(uint8_t *k, uint32_t sid, const uint8_t hash[16]);
void mn__key_dedup_of(uint8_t *k, uint32_t sid, const mn_id_t *id);
/* An association: one pair may be linked by several kinds (temporal one way
 * and semantic the other). */
void mn__key_edge(uint8_t *k, uint32_t sid, const mn_id_t *from, const mn_id_t *to, uint8_t kind);
void mn__key_strength(uint8_t *k, uint32_t sid, const mn_id_t *id);
/* A consolidated episode: the semantic memories that list it (16 bytes each,
 * sorted; the key goes with the last one). */
void mn__key_consolidated(uint8_t *k, uint32_t sid, const mn_id_t *id);
/* A semantic memory that lists an episode erased here by a replicated entry, whose
 * re-derivation (the primary's next entry) has not arrived yet (repair.c). */
void mn__key_rederive(uint8_t *k, uint32_t sid, const mn_id_t *id);
/* A corrected memory's lineage: the id of its current version (versions.c). A lineage
 * never corrected has no key: its first version is current. */
void mn__key_head(uint8_t *k, uint32_t sid, const mn_id_t *lineage);
/* Order-preserving encoding of a signed 64-bit time. */
uint64_t mn__key_time_bits(int64_t t);
int64_t mn__key_time_from_bits(uint64_t b);

#endif
