/* RocksDB store: one DB per data dir with column families
 *   meta      space definitions ("space/<name>") and counters
 *   wal       per-space WAL entries, key sid|lsn (big-endian: iteration = lsn order)
 *   memories  memory records and tombstones, key sid|id
 *   vectors   raw float32 embeddings, key sid|id
 *   index     secondary indexes: sid|'k'|idempotency key -> id, sid|'t'|when|id -> "",
 *             sid|'w'|id -> the lsns of the WAL entries that carry the memory's content
 *             (so forgetting can erase it there), sid|'W' -> "" (the space tracks them),
 *             sid|'g'|when|id and sid|'G'|gone_at|id: forgotten memories for as-of reads
 *   keywords  each memory's term list for the keyword index, key sid|id, and per space
 *             the header sid -> list format, tokenizer fingerprint (keyword_store.c)
 * Every key of a space starts with its 4-byte id (keys.h), so dropping a
 * space is one DeleteRange per family. Writes go through WriteBatchWithIndex groups built by
 * the commit thread (commit.c). */
#include "store.h"

#include <stdlib.h>
#include <string.h>

const char *const mn__store_cf_names[CF_COUNT] = {"default", "meta",  "wal",     "memories",
                                                  "vectors", "index", "keywords"};

static mn_err rocks_err(mn_error *err, char *msg, const char *what)
{
    mn_error_set(err, MN_ERR_IO, "%s: %s", what, msg ? msg : "unknown rocksdb error");
    free(msg);
    return MN_ERR_IO;
}

mn_err mn__store_open(mn__store *s, const mn_engine_options_t *o, mn_error *err)
{
    memset(s, 0, sizeof *s);
    s->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->opts, 1);
    rocksdb_options_set_create_missing_column_families(s->opts, 1);
    rocksdb_options_increase_parallelism(s->opts, 2);
    rocksdb_options_set_max_background_jobs(s->opts, 2);
    rocksdb_options_set_write_buffer_size(s->opts, o->write_buffer_bytes ? o->write_buffer_bytes
                                                                         : 64u << 20);
    rocksdb_options_set_compression(s->opts, rocksdb_no_compression);

    s->table_opts = rocksdb_block_based_options_create();
    s->cache = rocksdb_cache_create_lru(o->block_cache_bytes ? o->block_cache_bytes : 256u << 20);
    rocksdb_block_based_options_set_block_cache(s->table_opts, s->cache);
    s->filter = rocksdb_filterpolicy_create_bloom(10);
    rocksdb_block_based_options_set_filter_policy(s->table_opts, s->filter);
    rocksdb_options_set_block_based_table_factory(s->opts, s->table_opts);

    const rocksdb_options_t *cf_opts[CF_COUNT];
    for (int i = 0; i < CF_COUNT; i++)
        cf_opts[i] = s->opts;
    char *msg = NULL;
    s->db = rocksdb_open_column_families(s->opts, o->data_dir, CF_COUNT, mn__store_cf_names,
                                         cf_opts, s->cf, &msg);
    if (msg) {
        mn_error_set(err, MN_ERR_IO, "open %s: %s", o->data_dir, msg);
        free(msg);
        s->db = NULL;
        mn__store_close(s);
        return MN_ERR_IO;
    }
    s->ropts = rocksdb_readoptions_create();
    s->wsync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wsync, 1);
    s->wnosync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wnosync, 0);
    return MN_OK;
}

void mn__store_close(mn__store *s)
{
    if (s->db) {
        char *msg = NULL;
        rocksdb_flush_wal(s->db, 1, &msg);
        free(msg);
        for (int i = 0; i < CF_COUNT; i++)
            if (s->cf[i]) rocksdb_column_family_handle_destroy(s->cf[i]);
        rocksdb_close(s->db);
    }
    if (s->ropts) rocksdb_readoptions_destroy(s->ropts);
    if (s->wsync) rocksdb_writeoptions_destroy(s->wsync);
    if (s->wnosync) rocksdb_writeoptions_destroy(s->wnosync);
    if (s->opts) rocksdb_options_destroy(s->opts);
    if (s->table_opts) rocksdb_block_based_options_destroy(s->table_opts); /* frees filter */
    if (s->cache) rocksdb_cache_destroy(s->cache);
    memset(s, 0, sizeof *s);
}

mn_err mn__store_get(mn__store *s, int cf, const void *key, size_t klen, char **val, size_t *vlen,
                     mn_error *err)
{
    char *msg = NULL;
    *val = rocksdb_get_cf(s->db, s->ropts, s->cf[cf], key, klen, vlen, &msg);
    if (msg) return rocks_err(err, msg, "get");
    return MN_OK;
}

mn_err mn__store_get_wi(mn__store *s, rocksdb_writebatch_wi_t *b, int cf, const void *key,
                        size_t klen, char **val, size_t *vlen, mn_error *err)
{
    char *msg = NULL;
    *val = rocksdb_writebatch_wi_get_from_batch_and_db_cf(b, s->db, s->ropts, s->cf[cf], key, klen,
                                                          vlen, &msg);
    if (msg) return rocks_err(err, msg, "get");
    return MN_OK;
}

mn_err mn__store_write(mn__store *s, rocksdb_writebatch_wi_t *b, bool sync, mn_error *err)
{
    char *msg = NULL;
    rocksdb_write_writebatch_wi(s->db, sync ? s->wsync : s->wnosync, b, &msg);
    if (msg) return rocks_err(err, msg, "write");
    return MN_OK;
}

mn_err mn__store_write_batch(mn__store *s, rocksdb_writebatch_t *b, bool sync, mn_error *err)
{
    char *msg = NULL;
    rocksdb_write(s->db, sync ? s->wsync : s->wnosync, b, &msg);
    if (msg) return rocks_err(err, msg, "write");
    return MN_OK;
}

rocksdb_iterator_t *mn__store_iter(mn__store *s, int cf)
{
    return rocksdb_create_iterator_cf(s->db, s->ropts, s->cf[cf]);
}
