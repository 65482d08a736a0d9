/* The RocksDB store (store.c): one DB per data dir, a column family per kind
 * of data, and the few operations the engine needs. The key layout is keys.h. */
#ifndef MN_ENGINE_STORE_H
#define MN_ENGINE_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <rocksdb/c.h>

#include "keys.h"
#include "mnemo/engine.h"

enum { CF_DEFAULT = 0, CF_META, CF_WAL, CF_MEMORIES, CF_VECTORS, CF_INDEX, CF_KEYWORDS, CF_COUNT };

typedef struct mn__store {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_column_family_handle_t *cf[CF_COUNT];
    rocksdb_cache_t *cache;
    rocksdb_block_based_table_options_t *table_opts;
    rocksdb_filterpolicy_t *filter; /* owned by table_opts */
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wsync;
    rocksdb_writeoptions_t *wnosync;
    /* a salvage open that had to stop the log replay at damage: RocksDB's
     * message ("" when the log was whole) */
    char log_damage[MN_ERROR_MSG_MAX];
} mn__store;

/* The column families' names, by CF_* index. */
extern const char *const mn__store_cf_names[CF_COUNT];

/* Opens the store. RocksDB's log is replayed in kTolerateCorruptedTailRecords
 * mode: a torn last record (a crash mid-write) is dropped, any other damage
 * refuses to open (MN_ERR_CORRUPT, the file and what to do logged). With
 * o->salvage, a damaged log is replayed up to the damage instead
 * (kPointInTimeRecovery) and s->log_damage says so. */
mn_err mn__store_open(mn__store *s, const mn_engine_options_t *o, mn_error *err);
/* Opens the store read-only (mnemo check): nothing is written, not even the
 * log's replay. On damage, MN_ERR_CORRUPT with RocksDB's message in *damage
 * (malloc'd); point_in_time replays a damaged log up to the damage instead. */
mn_err mn__store_open_read_only(mn__store *s, const char *dir, bool point_in_time, char **damage,
                                mn_error *err);
void mn__store_close(mn__store *s);
/* Get into a malloc'd buffer (*val NULL when absent). */
mn_err mn__store_get(mn__store *s, int cf, const void *key, size_t klen, char **val, size_t *vlen,
                     mn_error *err);
/* Get seeing the batch's own writes over the DB. */
mn_err mn__store_get_wi(mn__store *s, rocksdb_writebatch_wi_t *b, int cf, const void *key,
                        size_t klen, char **val, size_t *vlen, mn_error *err);
mn_err mn__store_write(mn__store *s, rocksdb_writebatch_wi_t *b, bool sync, mn_error *err);
/* A plain batch (a group with range deletions, which indexed batches cannot hold). */
mn_err mn__store_write_batch(mn__store *s, rocksdb_writebatch_t *b, bool sync, mn_error *err);
/* An iterator over column family cf with the store's read options. */
rocksdb_iterator_t *mn__store_iter(mn__store *s, int cf);
/* After a walk: MN_ERR_CORRUPT (or MN_ERR_IO) with RocksDB's message, which
 * names the damaged file, when the iterator stopped on an error rather than at
 * the end of its data; what names the walk. */
mn_err mn__store_iter_status(rocksdb_iterator_t *it, const char *what, mn_error *err);
/* Is RocksDB's message about damaged data (a checksum, a truncated file ...)? */
bool mn__store_is_corruption(const char *msg);

#endif
