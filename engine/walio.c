/* Reading a space's WAL and ingesting entries that another engine wrote. The
 * first is what replication ships (replica.c stores it at the same lsns); the
 * second applies a foreign entry through the ordinary commit path (new local
 * lsn, same memory ids), which is how tests prove that two engines given the
 * same episodes agree.
 *
 * A space's lsns are dense from its first kept entry to its last (the sweeper
 * trims a prefix only), so a read whose first entry is past from_lsn met a
 * trimmed part: MN_ERR_GONE, judged on the iterator's own snapshot, so a trim
 * racing the read cannot make it skip entries silently.
 *
 * A dropped space keeps one entry, its drop (meta "dropped/<name>", until a space
 * of that name is created again): a read of the name finds it there, so a replica
 * that has every entry before it learns of the drop; the entries before it are gone. */
#include "commit.h"
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The read of a space that is not in the map: its drop entry, if it was dropped. */
static mn_err read_dropped(mn_engine_t *e, const char *space, uint64_t from_lsn, mn_wal_fn fn,
                           void *arg, mn_error *err)
{
    char mk[16 + MN_SPACE_NAME_MAX];
    int ml = snprintf(mk, sizeof mk, "dropped/%.*s", MN_SPACE_NAME_MAX, space);
    char *v = NULL;
    size_t vl;
    mn_err rc = mn__store_get(&e->store, CF_META, mk, (size_t)ml, &v, &vl, err);
    if (rc) return rc;
    mn_wal_entry_t en;
    if (!v || mn_wire_wal_decode((const uint8_t *)v, vl, &en, NULL)) {
        free(v);
        return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", space);
    }
    uint64_t lsn = en.lsn;
    mn_wal_entry_clear(&en);
    if (from_lsn && from_lsn < lsn)
        rc = mn_error_set(err, MN_ERR_GONE, "space %s: lsn %llu was dropped with it (at lsn %llu)",
                          space, (unsigned long long)from_lsn, (unsigned long long)lsn);
    else if (from_lsn <= lsn)
        (void)fn(arg, lsn, (const uint8_t *)v, vl);
    free(v);
    return rc;
}

mn_err mn_engine_wal_read(mn_engine_t *e, const char *space, uint64_t from_lsn, size_t max,
                          mn_wal_fn fn, void *arg, mn_error *err)
{
    if (!space) return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"\" not found");
    mn__space *sp = mn__registry_acquire(&e->reg, space);
    if (!sp) return read_dropped(e, space, from_lsn, fn, arg, err);
    uint8_t lo[KEY_WAL_LEN], hi[KEY_SID_LEN];
    mn__key_wal(lo, sp->sid, from_lsn);
    mn__key_sid(hi, sp->sid + 1);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, sizeof hi);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(e->store.db, ro, e->store.cf[CF_WAL]);
    size_t n = 0;
    mn_err rc = MN_OK;
    for (rocksdb_iter_seek(it, (const char *)lo, sizeof lo); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
        if (kl != KEY_WAL_LEN) continue;
        uint64_t lsn = mn_get_be64(k + KEY_SID_LEN);
        if (!n && from_lsn && lsn > from_lsn) {
            rc = mn_error_set(err, MN_ERR_GONE,
                              "space %s: lsn %llu was trimmed (the WAL starts at %llu)",
                              sp->def.name, (unsigned long long)from_lsn, (unsigned long long)lsn);
            break;
        }
        n++;
        if (fn(arg, lsn, v, vl)) break;
        if (max && n >= max) break;
    }
    /* a bad block is an error, not the end of the WAL */
    if (!rc) rc = mn__store_iter_status(it, "wal", err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    mn__space_unref(sp);
    return rc;
}

mn_err mn_engine_ingest(mn_engine_t *e, const uint8_t *bytes, size_t len, mn_error *err)
{
    mn__pending p = {0};
    mn_err rc = mn_wire_wal_decode(bytes, len, &p.entry, err);
    if (rc) return rc;
    if (p.entry.type == MN_WAL_OP_SPACE_CREATE) {
        mn_wal_entry_clear(&p.entry);
        return mn_error_set(err, MN_ERR_INVALID, "ingest: create the space first");
    }
    mn__space *sp = mn__registry_acquire(&e->reg, p.entry.space);
    if (!sp) {
        mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", p.entry.space);
        mn_wal_entry_clear(&p.entry);
        return MN_ERR_NOT_FOUND;
    }
    mn_id_t *ids = NULL;
    mn_memory_t *mems = NULL;
    size_t n_mems = 0;
    if (p.entry.type == MN_WAL_OP_REMEMBER) {
        /* the committer compacts the memory array; keep ownership of the decoded one */
        mems = p.entry.op.remember.mems;
        n_mems = p.entry.op.remember.n;
        ids = malloc((n_mems ? n_mems : 1) * sizeof *ids);
        if (!ids) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        p.ids_out = ids;
    }
    if (!rc) {
        p.sp = sp;
        p.sync = true;
        p.foreign = true;
        rc = mn__commit_submit(e, &p);
        if (rc && err) *err = p.err;
    }
    if (mems) {
        p.entry.op.remember.mems = mems;
        p.entry.op.remember.n = n_mems;
    }
    mn_wal_entry_clear(&p.entry);
    free(ids);
    mn__space_unref(sp);
    return rc;
}
