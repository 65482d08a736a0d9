/* Installing a space snapshot made by another engine (docs/replication.md, "Snapshots").
 *
 * The chunks come in order, each checked whole (checksum, format, the export's id, its
 * sequence number, the space's name) before any of it is written: a chunk refused leaves
 * nothing behind. Their keys are written under a staging space id (snapshot.c, RESERVE),
 * with no fsync: the swap's synced write makes them durable (RocksDB's log is one
 * sequence). After the last chunk the staged space is loaded like a space at start-up
 * (load.c) — its memories, keyword index, associations and strengths — and must end at the
 * manifest's lsn; the commit thread then swaps it in (snapshot.c, SWAP) and the index
 * thread rebuilds its vector graph. The space as it was stays whole until that swap. */
#include "snapshot.h"

#include "engine_internal.h"
#include "indexer.h"
#include "load.h"
#include "replica.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mn_snapshot_install {
    mn_engine_t *e;
    char space[MN_SPACE_NAME_MAX + 1];
    uint32_t sid; /* staging */
    uint64_t id;
    uint32_t next;
    bool complete;
    uint64_t records;
    mn_snapshot_info_t info;
    uint8_t *def; /* the manifest's definition */
    size_t def_len;
};

static mn_err submit(mn_engine_t *e, mn__snap_op *op, mn_error *err)
{
    mn__pending p;
    mn__pending_init(&p, MN_WAL_OP_NONE, NULL, false);
    p.snap = op;
    mn_err rc = mn__commit_submit(e, &p);
    if (rc && err) *err = p.err;
    return rc;
}

mn_err mn_engine_snapshot_install_begin(mn_engine_t *e, const char *space,
                                        mn_snapshot_install_t **out, mn_error *err)
{
    *out = NULL;
    if (!space || !space[0] || strlen(space) > MN_SPACE_NAME_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "space: missing or too long");
    mn__space *sp = mn__registry_acquire(&e->reg, space);
    bool primary = sp && !mn__space_is_replica(sp);
    mn__space_unref(sp);
    if (primary)
        return mn_error_set(err, MN_ERR_CONFLICT,
                            "space %s: this node is its primary: a snapshot replaces replicas only",
                            space);
    mn_snapshot_install_t *in = calloc(1, sizeof *in);
    if (!in) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    in->e = e;
    snprintf(in->space, sizeof in->space, "%s", space);
    mn__snap_op op = {.kind = SNAP_OP_RESERVE, .space = in->space};
    mn_err rc = submit(e, &op, err);
    if (rc) {
        free(in);
        return rc;
    }
    in->sid = op.sid;
    *out = in;
    return MN_OK;
}

uint32_t mn_engine_snapshot_install_next(const mn_snapshot_install_t *in)
{
    return in->next;
}

uint64_t mn_engine_snapshot_install_id(const mn_snapshot_install_t *in)
{
    return in->id;
}

bool mn_engine_snapshot_install_complete(const mn_snapshot_install_t *in)
{
    return in->complete;
}

static mn_err take_manifest(mn_snapshot_install_t *in, const mn__snap_reader *r, const uint8_t *k,
                            size_t kl, const uint8_t *v, size_t vl, mn_error *err)
{
    if (kl != strlen(in->space) || memcmp(k, in->space, kl))
        return mn_error_set(err, MN_ERR_CONFLICT, "snapshot chunk 0 is of space %.*s, not %s",
                            (int)(kl > 64 ? 64 : kl), (const char *)k, in->space);
    if (vl <= SNAP_MANIFEST_FIXED)
        return mn_error_set(err, MN_ERR_CORRUPT, "snapshot chunk 0: a short manifest");
    free(in->def);
    if (!(in->def = malloc(vl - SNAP_MANIFEST_FIXED)))
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    in->def_len = vl - SNAP_MANIFEST_FIXED;
    memcpy(in->def, v + SNAP_MANIFEST_FIXED, in->def_len);
    in->info.id = r->id;
    in->info.last_lsn = mn_get_be64(v);
    in->info.last_epoch = mn_get_be64(v + 8);
    in->info.first_lsn = mn_get_be64(v + 16);
    return MN_OK;
}

/* One record into b (under the staging id); *records counts the store's. 1: taken, 0: the
 * end record (or none left: r->p did not move), < 0: an error. */
static int take_record(mn_snapshot_install_t *in, const mn__snap_reader *r, int idx,
                       rocksdb_writebatch_t *b, uint8_t *key, uint64_t *records, mn_error *err)
{
    uint8_t fam;
    const uint8_t *k, *v;
    size_t kl, vl;
    int more = mn__snap_next((mn__snap_reader *)r, &fam, &k, &kl, &v, &vl, err);
    if (more <= 0) return more;
    if ((fam == SNAP_REC_MANIFEST) != (r->seq == 0 && idx == 0))
        return mn_error_set(err, MN_ERR_CORRUPT, "snapshot chunk %u: the manifest misplaced",
                            r->seq);
    if (fam == SNAP_REC_MANIFEST) {
        mn_err rc = take_manifest(in, r, k, kl, v, vl, err);
        return rc ? rc : 1;
    }
    if (fam == SNAP_REC_END) {
        if (!r->last || vl != 8 || mn_get_be64(v) != *records)
            return mn_error_set(err, MN_ERR_CORRUPT, "snapshot chunk %u: a bad end record", r->seq);
        return MN_OK;
    }
    if (fam < CF_WAL || fam >= CF_COUNT)
        return mn_error_set(err, MN_ERR_CORRUPT, "snapshot chunk %u: unknown family %u", r->seq,
                            fam);
    mn__key_sid(key, in->sid);
    memcpy(key + KEY_SID_LEN, k, kl);
    rocksdb_writebatch_put_cf(b, in->e->store.cf[fam], (const char *)key, KEY_SID_LEN + kl,
                              (const char *)v, vl);
    ++*records;
    return 1;
}

/* Every record of the chunk into b; the end record must close the last chunk. */
static mn_err take_records(mn_snapshot_install_t *in, mn__snap_reader *r, rocksdb_writebatch_t *b,
                           uint64_t *records, mn_error *err)
{
    uint8_t key[KEY_SID_LEN + SNAP_KEY_MAX];
    uint32_t n = 0;
    bool ended = false;
    for (;;) {
        if (ended && r->p != r->end)
            return mn_error_set(err, MN_ERR_CORRUPT, "snapshot chunk %u: records after its end",
                                r->seq);
        const uint8_t *at = r->p;
        int rc = take_record(in, r, (int)n, b, key, records, err);
        if (rc < 0) return rc;
        if (r->p == at) break; /* no record left */
        ended = rc == 0;
        n++;
    }
    if (n != r->n_records || (r->last && !ended))
        return mn_error_set(err, MN_ERR_CORRUPT,
                            "snapshot chunk %u: %u records, its header says %u%s", r->seq, n,
                            r->n_records, r->last && !ended ? " (no end)" : "");
    return MN_OK;
}

mn_err mn_engine_snapshot_install_chunk(mn_snapshot_install_t *in, const uint8_t *buf, size_t len,
                                        mn_error *err)
{
    if (in->complete)
        return mn_error_set(err, MN_ERR_CONFLICT, "snapshot of %s: complete already", in->space);
    mn__snap_reader r;
    mn_err rc = mn__snap_open(&r, buf, len, err);
    if (rc) return rc;
    if (in->next && r.id != in->id)
        return mn_error_set(err, MN_ERR_CONFLICT, "snapshot of %s: chunk of another export",
                            in->space);
    if (r.seq != in->next)
        return mn_error_set(err, MN_ERR_CONFLICT, "snapshot of %s: chunk %u, expected %u",
                            in->space, r.seq, in->next);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    uint64_t records = in->records;
    rc = take_records(in, &r, b, &records, err);
    if (!rc) rc = mn__store_write_batch(&in->e->store, b, false, err);
    rocksdb_writebatch_destroy(b);
    if (rc) return rc;
    in->id = r.id;
    in->records = records;
    in->next++;
    in->complete = r.last;
    return MN_OK;
}

static void drop_staged(mn_snapshot_install_t *in)
{
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    mn__snapshot_delete_sid(in->e, b, in->sid);
    char mk[32];
    size_t ml = mn__snapshot_stage_key(mk, in->sid);
    rocksdb_writebatch_delete_cf(b, in->e->store.cf[CF_META], mk, ml);
    mn_error err = {0};
    if (mn__store_write_batch(&in->e->store, b, false, &err))
        mn_log_warn("space %s: a snapshot's staged chunks not deleted (%s): the next start does",
                    in->space, err.message);
    rocksdb_writebatch_destroy(b);
}

void mn_engine_snapshot_install_abort(mn_snapshot_install_t *in)
{
    if (!in) return;
    drop_staged(in);
    free(in->def);
    free(in);
}

/* The manifest's definition, naming the space and carrying the staging id. */
static mn_err staged_def(mn_snapshot_install_t *in, uint8_t **out, size_t *len, mn_error *err)
{
    mn_wal_entry_t en;
    mn_error derr = {0};
    if (mn_wire_wal_decode(in->def, in->def_len, &en, &derr))
        return mn_error_set(err, MN_ERR_CORRUPT, "snapshot of %s: its definition: %s", in->space,
                            derr.message);
    mn_err rc = MN_OK;
    if (en.type != MN_WAL_OP_SPACE_CREATE || strcmp(en.space, in->space) ||
        strcmp(en.op.space_create.def.name, in->space))
        rc = mn_error_set(err, MN_ERR_CORRUPT, "snapshot of %s: not its definition", in->space);
    if (!rc) {
        en.op.space_create.space_id = in->sid;
        if ((rc = mn_wire_wal_encode(&en, out, len))) mn_error_set(err, rc, "out of memory");
    }
    mn_wal_entry_clear(&en);
    return rc;
}

/* The staged space, loaded, at the manifest's position, a replica at its epoch. */
static mn_err load_staged(mn_snapshot_install_t *in, const uint8_t *def, size_t len,
                          mn__space **out, mn_error *err)
{
    char what[96];
    snprintf(what, sizeof what, "the snapshot of %s", in->space);
    mn_err rc = mn__load_space(in->e, def, len, what, out, err);
    if (rc) return rc;
    mn__space *sp = *out;
    if (sp->last_lsn != in->info.last_lsn || sp->last_epoch != in->info.last_epoch) {
        rc = mn_error_set(err, MN_ERR_CORRUPT,
                          "snapshot of %s: its WAL ends at lsn %llu epoch %llu, its manifest "
                          "says %llu epoch %llu",
                          in->space, (unsigned long long)sp->last_lsn,
                          (unsigned long long)sp->last_epoch, (unsigned long long)in->info.last_lsn,
                          (unsigned long long)in->info.last_epoch);
        mn__space_free(sp);
        *out = NULL;
        return rc;
    }
    atomic_store(&sp->role, MN_SPACE_REPLICA);
    return MN_OK;
}

mn_err mn_engine_snapshot_install_finish(mn_snapshot_install_t *in, mn_snapshot_info_t *info,
                                         mn_error *err)
{
    mn_engine_t *e = in->e;
    uint8_t *def = NULL;
    size_t len = 0;
    mn__space *sp = NULL;
    mn_err rc = MN_OK;
    if (!in->complete)
        rc = mn_error_set(err, MN_ERR_CONFLICT, "snapshot of %s: %u chunks taken, not the last",
                          in->space, in->next);
    if (!rc) rc = staged_def(in, &def, &len, err);
    if (!rc) rc = load_staged(in, def, len, &sp, err);
    mn__snap_op op = {.kind = SNAP_OP_SWAP,
                      .space = in->space,
                      .sid = in->sid,
                      .sp = sp,
                      .def = def,
                      .def_len = len};
    if (!rc) rc = submit(e, &op, err);
    if (rc) {
        if (op.sp) mn__space_free(op.sp);
        mn_engine_snapshot_install_abort(in);
    } else {
        if (info) *info = in->info;
        mn__space *now = mn__registry_acquire(&e->reg, in->space);
        if (now) mn__indexer_kick(e, now); /* its vector index: rebuilt from the vectors */
        mn__space_unref(now);
        mn_log_info("space %s: snapshot installed at lsn %llu (epoch %llu), %llu records",
                    in->space, (unsigned long long)in->info.last_lsn,
                    (unsigned long long)in->info.last_epoch, (unsigned long long)in->records);
        free(in->def);
        free(in);
    }
    free(def);
    return rc;
}
