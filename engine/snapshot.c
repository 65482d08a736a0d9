/* The commit thread's part of a snapshot install (docs/replication.md, "Snapshots").
 *
 * RESERVE gives an install a space id of its own (the engine's next), and writes, synced,
 * the next id and a marker meta "snapstage/<sid>": the chunks are then written under that
 * id by the installing thread, where no space reads, and a crash leaves a marker that the
 * next start follows to delete them (mn__snapshot_clean).
 *
 * SWAP makes the staged keys the space: one synced write puts the definition (with the
 * staged id) in meta, deletes the marker and every key of the space's old id; then the
 * registry's entry is replaced, the old space marked dropped (threads holding it skip it,
 * its graph file goes with it) and the acknowledged-lsn file told. Only a replica (or a
 * missing space) is replaced, and only when no entry of it is in the group being built,
 * so nothing of the old id is written after its range deletion. */
#include "snapshot.h"

#include "acked.h"
#include "engine_internal.h"
#include "mnemo/assert.h"
#include "replica.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STAGE_PREFIX "snapstage/"

size_t mn__snapshot_stage_key(char *k, uint32_t sid)
{
    return (size_t)snprintf(k, 32, STAGE_PREFIX "%08x", sid);
}

void mn__snapshot_delete_sid(mn_engine_t *e, rocksdb_writebatch_t *b, uint32_t sid)
{
    uint8_t lo[KEY_SID_LEN], hi[KEY_SID_LEN];
    mn__key_sid(lo, sid);
    mn__key_sid(hi, sid + 1);
    for (int cf = CF_WAL; cf < CF_COUNT; cf++)
        rocksdb_writebatch_delete_range_cf(b, e->store.cf[cf], (const char *)lo, sizeof lo,
                                           (const char *)hi, sizeof hi);
}

static void stage_reserve(mn_engine_t *e, mn__pending *p)
{
    mn__snap_op *op = p->snap;
    uint32_t sid = e->next_sid;
    mn_assert(sid < UINT32_MAX);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    uint8_t nk[4];
    mn_put_be32(nk, sid + 1);
    rocksdb_writebatch_put_cf(b, e->store.cf[CF_META], "next_sid", 8, (const char *)nk, 4);
    char mk[32];
    size_t ml = mn__snapshot_stage_key(mk, sid);
    rocksdb_writebatch_put_cf(b, e->store.cf[CF_META], mk, ml, op->space, strlen(op->space));
    p->rc = mn__store_write_batch(&e->store, b, true, &p->err);
    rocksdb_writebatch_destroy(b);
    if (p->rc) return;
    e->next_sid = sid + 1;
    op->sid = sid;
}

/* Has the group being built an entry of sp? */
static bool in_group(mn_engine_t *e, const mn__space *sp)
{
    mn__pending *const *ps;
    size_t n = mn__commit_group_before(e, &ps);
    for (size_t i = 0; i < n; i++)
        if (ps[i]->sp == sp && (ps[i]->has_entry || ps[i]->entry.type != MN_WAL_OP_NONE))
            return true;
    return false;
}

/* The space may be replaced now: missing, or a replica with nothing in the group. */
static mn_err check_old(mn_engine_t *e, mn__pending *p, mn__space *old)
{
    if (!old) return MN_OK;
    if (!mn__space_is_replica(old))
        return mn_error_set(&p->err, MN_ERR_CONFLICT,
                            "space %s: this node is its primary: a snapshot replaces replicas only",
                            old->def.name);
    if (old->drop_staged || in_group(e, old))
        return mn_error_set(&p->err, MN_ERR_BUSY, "space %s: writes in flight; try again",
                            old->def.name);
    return MN_OK;
}

/* A name dropped here before: its marker and the old drop entry go (as a creation does). */
static void forget_drop(mn_engine_t *e, rocksdb_writebatch_t *b, const char *space)
{
    char dk[16 + MN_SPACE_NAME_MAX];
    int dl = snprintf(dk, sizeof dk, "dropped/%s", space);
    char *v;
    size_t vl;
    mn_error err = {0};
    if (mn__store_get(&e->store, CF_META, dk, (size_t)dl, &v, &vl, &err) || !v) return;
    mn_wal_entry_t old;
    if (!mn_wire_wal_decode((const uint8_t *)v, vl, &old, NULL)) {
        if (old.type == MN_WAL_OP_SPACE_DROP) {
            uint8_t wk[KEY_WAL_LEN];
            mn__key_wal(wk, old.op.space_drop.space_id, old.lsn);
            rocksdb_writebatch_delete_cf(b, e->store.cf[CF_WAL], (const char *)wk, sizeof wk);
        }
        mn_wal_entry_clear(&old);
    }
    free(v);
    rocksdb_writebatch_delete_cf(b, e->store.cf[CF_META], dk, (size_t)dl);
}

static mn_err swap_write(mn_engine_t *e, mn__pending *p, mn__space *old)
{
    mn__snap_op *op = p->snap;
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    char mk[16 + MN_SPACE_NAME_MAX];
    int ml = snprintf(mk, sizeof mk, "space/%s", op->space);
    rocksdb_writebatch_put_cf(b, e->store.cf[CF_META], mk, (size_t)ml, (const char *)op->def,
                              op->def_len);
    char sk[32];
    size_t sl = mn__snapshot_stage_key(sk, op->sid);
    rocksdb_writebatch_delete_cf(b, e->store.cf[CF_META], sk, sl);
    if (old)
        mn__snapshot_delete_sid(e, b, old->sid);
    else
        forget_drop(e, b, op->space);
    mn_err rc = mn__store_write_batch(&e->store, b, true, &p->err);
    rocksdb_writebatch_destroy(b);
    return rc;
}

static void stage_swap(mn_engine_t *e, mn__pending *p)
{
    mn__snap_op *op = p->snap;
    mn__space *old = mn__registry_acquire(&e->reg, op->space);
    mn_assert(op->sp && op->sp->sid == op->sid && strcmp(op->sp->def.name, op->space) == 0);
    if ((p->rc = check_old(e, p, old)) || (p->rc = swap_write(e, p, old))) {
        mn__space_unref(old);
        return;
    }
    if (old) mn__acked_note(e->acked, old->sid, 0);
    if (op->sp->last_lsn) mn__acked_note(e->acked, op->sid, op->sp->last_lsn);
    mn__acked_write(e->acked);
    if (old) {
        atomic_store(&old->dropped, true);
        mn__registry_replace(&e->reg, old, op->sp);
        mn__space_unref(old); /* the map's reference */
        mn__space_unref(old); /* ours */
    } else if (mn__registry_insert(&e->reg, op->sp)) {
        /* stored, but not in the map until the next start: said, not hidden */
        p->rc = mn_error_set(&p->err, MN_ERR_NOMEM, "space %s: out of memory", op->space);
        return;
    }
    op->sp = NULL; /* the map's now */
}

void mn__snapshot_stage(mn_engine_t *e, mn__pending *p)
{
    mn_assert(mn__commit_on_thread(e));
    mn_assert(p->entry.type == MN_WAL_OP_NONE && p->snap && !p->sp);
    if (p->snap->kind == SNAP_OP_RESERVE)
        stage_reserve(e, p);
    else
        stage_swap(e, p);
}

mn_err mn__snapshot_clean(mn_engine_t *e, mn_error *err)
{
    rocksdb_iterator_t *it = mn__store_iter(&e->store, CF_META);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    size_t n = 0, pl = sizeof STAGE_PREFIX - 1;
    rocksdb_iter_seek(it, STAGE_PREFIX, pl);
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl;
        const char *k = rocksdb_iter_key(it, &kl);
        if (kl < pl || memcmp(k, STAGE_PREFIX, pl)) break;
        char hex[16] = {0};
        memcpy(hex, k + pl, kl - pl < 15 ? kl - pl : 15);
        uint32_t sid = (uint32_t)strtoul(hex, NULL, 16);
        if (sid) mn__snapshot_delete_sid(e, b, sid);
        if (sid >= e->next_sid) e->next_sid = sid + 1;
        rocksdb_writebatch_delete_cf(b, e->store.cf[CF_META], k, kl);
        n++;
    }
    mn_err rc = mn__store_iter_status(it, "meta", err);
    rocksdb_iter_destroy(it);
    if (!rc && n) rc = mn__store_write_batch(&e->store, b, true, err);
    rocksdb_writebatch_destroy(b);
    if (!rc && n)
        mn_log_warn("engine: %zu snapshot install(s) cut short by a stop: their chunks deleted", n);
    return rc;
}
