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
} mn__store;

/* The column families' names, by CF_* index. */
extern const char *const mn__store_cf_names[CF_COUNT];

mn_err mn__store_open(mn__store *s, const mn_engine_options_t *o, mn_error *err);
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

#endif
