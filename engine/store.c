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
 * the commit thread (commit.c).
 *
 * Damage is never silent (runbooks/single-node.md, "Damaged data directory"):
 *  - RocksDB's own log is replayed in kTolerateCorruptedTailRecords mode. A crash
 *    can leave the last record of a log half written, and that record was never
 *    acknowledged (an acknowledged write returns after its fsync), so it may go.
 *    A bad record anywhere else is real damage and the open fails. RocksDB's
 *    default, kPointInTimeRecovery, would instead stop the replay at the damage
 *    and open with every later write lost, without a word; kAbsoluteConsistency
 *    would refuse the torn tail of an ordinary crash; kSkipAnyCorruptedRecords
 *    would replay later writes over a hole. A log cut short at a record boundary
 *    looks like a torn tail to RocksDB: acked.c catches that one.
 *  - paranoid_checks (RocksDB's default, set to say so) checks the files at open
 *    and stops writes after a background error, such as a compaction that reads
 *    a damaged block, instead of carrying on.
 *  - reads verify block checksums; a walk that meets a bad block ends with an
 *    error that every caller checks (mn__store_iter_status), never as if the
 *    data had ended. */
#include "store.h"

#include <dirent.h>
#include <stdio.h>
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

bool mn__store_is_corruption(const char *msg)
{
    return msg && (strstr(msg, "Corruption") || strstr(msg, "corruption") ||
                   strstr(msg, "checksum mismatch") || strstr(msg, "truncated"));
}

static void set_options(mn__store *s, const mn_engine_options_t *o)
{
    s->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->opts, 1);
    rocksdb_options_set_create_missing_column_families(s->opts, 1);
    rocksdb_options_increase_parallelism(s->opts, 2);
    rocksdb_options_set_max_background_jobs(s->opts, 2);
    rocksdb_options_set_write_buffer_size(s->opts, o->write_buffer_bytes ? o->write_buffer_bytes
                                                                         : 64u << 20);
    rocksdb_options_set_compression(s->opts, rocksdb_no_compression);
    rocksdb_options_set_paranoid_checks(s->opts, 1);
    rocksdb_options_set_wal_recovery_mode(s->opts,
                                          rocksdb_tolerate_corrupted_tail_records_recovery);

    s->table_opts = rocksdb_block_based_options_create();
    s->cache = rocksdb_cache_create_lru(o->block_cache_bytes ? o->block_cache_bytes : 256u << 20);
    rocksdb_block_based_options_set_block_cache(s->table_opts, s->cache);
    s->filter = rocksdb_filterpolicy_create_bloom(10);
    rocksdb_block_based_options_set_filter_policy(s->table_opts, s->filter);
    rocksdb_options_set_block_based_table_factory(s->opts, s->table_opts);
}

/* rocksdb_open_column_families; NULL with *msg (malloc'd) on failure. */
static rocksdb_t *open_db(mn__store *s, const char *dir, char **msg)
{
    const rocksdb_options_t *cf_opts[CF_COUNT];
    for (int i = 0; i < CF_COUNT; i++)
        cf_opts[i] = s->opts;
    *msg = NULL;
    rocksdb_t *db = rocksdb_open_column_families(s->opts, dir, CF_COUNT, mn__store_cf_names,
                                                 cf_opts, s->cf, msg);
    return *msg ? NULL : db;
}

/* The names of RocksDB's log files in dir ("000012.log, ..."), for a message
 * that names none: a damaged log is one of them. */
static void log_files(const char *dir, char *buf, size_t n)
{
    buf[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) return;
    size_t used = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".log")) continue;
        int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", de->d_name);
        if (w < 0 || (size_t)w >= n - used) break;
        used += (size_t)w;
    }
    closedir(d);
}

/* The open failed on damage: the log says which file, what and what to do. */
static mn_err refuse_damaged(const char *dir, const char *msg, mn_error *err)
{
    char logs[256] = "";
    if (!strstr(msg, ".sst") && !strstr(msg, ".log")) log_files(dir, logs, sizeof logs);
    mn_log_error("data dir %s is damaged: %s%s%s%s. Acknowledged data may be missing, so mnemo "
                 "will not start on it. Run `mnemo check %s` for a report, then restore the "
                 "newest checkpoint (POST /v1/admin/checkpoint; in a cluster, re-sync this node "
                 "from a replica) or start with `mnemo serve --salvage` to serve what is "
                 "readable (runbooks/single-node.md, \"Damaged data directory\")",
                 dir, msg, logs[0] ? " in RocksDB's write-ahead log (" : "", logs,
                 logs[0] ? ")" : "", dir);
    return mn_error_set(err, MN_ERR_CORRUPT,
                        "damaged store: %s (see the log: mnemo check, a checkpoint, or --salvage)",
                        msg);
}

mn_err mn__store_open(mn__store *s, const mn_engine_options_t *o, mn_error *err)
{
    memset(s, 0, sizeof *s);
    set_options(s, o);
    char *msg = NULL;
    s->db = open_db(s, o->data_dir, &msg);
    if (!s->db && o->salvage && mn__store_is_corruption(msg)) {
        /* replay the log up to the damage: a consistent point in time */
        mn_log_error("salvage: %s: %s; replaying the log up to the damage", o->data_dir, msg);
        snprintf(s->log_damage, sizeof s->log_damage, "%s", msg);
        free(msg);
        rocksdb_options_set_wal_recovery_mode(s->opts, rocksdb_point_in_time_recovery);
        s->db = open_db(s, o->data_dir, &msg);
    }
    if (!s->db) {
        mn_err rc = mn__store_is_corruption(msg)
                        ? refuse_damaged(o->data_dir, msg, err)
                        : mn_error_set(err, MN_ERR_IO, "open %s: %s", o->data_dir, msg);
        free(msg);
        mn__store_close(s);
        return rc;
    }
    s->ropts = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(s->ropts, 1);
    s->wsync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wsync, 1);
    s->wnosync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wnosync, 0);
    return MN_OK;
}

mn_err mn__store_open_read_only(mn__store *s, const char *dir, bool point_in_time, char **damage,
                                mn_error *err)
{
    memset(s, 0, sizeof *s);
    *damage = NULL;
    mn_engine_options_t o;
    mn_engine_options_default(&o);
    o.block_cache_bytes = 16u << 20;
    set_options(s, &o);
    if (point_in_time)
        rocksdb_options_set_wal_recovery_mode(s->opts, rocksdb_point_in_time_recovery);
    const rocksdb_options_t *cf_opts[CF_COUNT];
    for (int i = 0; i < CF_COUNT; i++)
        cf_opts[i] = s->opts;
    char *msg = NULL;
    s->db = rocksdb_open_for_read_only_column_families(s->opts, dir, CF_COUNT, mn__store_cf_names,
                                                       cf_opts, s->cf, 0, &msg);
    if (msg) {
        s->db = NULL;
        mn__store_close(s);
        if (mn__store_is_corruption(msg)) {
            *damage = msg;
            return MN_ERR_CORRUPT;
        }
        mn_error_set(err, MN_ERR_IO, "open %s: %s", dir, msg);
        free(msg);
        return MN_ERR_IO;
    }
    s->ropts = rocksdb_readoptions_create();
    rocksdb_readoptions_set_verify_checksums(s->ropts, 1);
    rocksdb_readoptions_set_fill_cache(s->ropts, 0);
    return MN_OK;
}

void mn__store_close(mn__store *s)
{
    if (s->db) {
        char *msg = NULL;
        if (s->wsync) rocksdb_flush_wal(s->db, 1, &msg); /* not on a read-only store */
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

mn_err mn__store_iter_status(rocksdb_iterator_t *it, const char *what, mn_error *err)
{
    char *msg = NULL;
    rocksdb_iter_get_error(it, &msg);
    if (!msg) return MN_OK;
    mn_err rc = mn__store_is_corruption(msg) ? MN_ERR_CORRUPT : MN_ERR_IO;
    mn_error_set(err, rc, "%s: %s", what, msg);
    free(msg);
    return rc;
}
