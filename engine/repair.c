/* Semantic memories a replica's erasures left for its primary to re-derive.
 *
 * On a primary, erasing an episode re-derives the semantic memories that list it in the
 * same batch, as an entry of its own right after the erasure's (commit.c), so no summary
 * keeps the words of an episode forgotten. A replica applies the erasure and waits for that
 * entry: until it arrives, the memory still lists the episode and holds its words. When the
 * replica leads before it arrives (its primary was cut off between shipping the two, or a
 * frame ended between them), nobody would re-derive it, and a copy later made from this
 * node's log could not apply the memory either (it lists an episode that log erases
 * earlier). So:
 *  - each erasure a replica applies notes the memories it leaves to its primary
 *    (sid|'R'|id, in the erasure's batch: replica.c);
 *  - the entry that next carries a noted memory (a new version, a stub: apply_semantic.c)
 *    or erases it (apply.c) clears the note, as the primary's re-derivation does;
 *  - a replica promoted to primary has the background thread re-derive the memories still
 *    noted (mn__repair_space), as one consolidate entry like the primary's own.
 * A note whose memory needs nothing (every episode it lists is there) stays until an entry
 * carries the memory; a promotion reads it again, and writes nothing. */
#include "repair.h"

#include "apply_internal.h"
#include "consolidate.h"
#include "keys.h"
#include "replica.h"

#include <stdlib.h>
#include <string.h>

#define REPAIR_MAX 4096 /* memories re-derived per promotion (the rest at the next one) */

void mn__repair_note(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    if (p->n_rederive) atomic_store(&p->sp->repair_noted, true);
    for (size_t i = 0; i < p->n_rederive; i++) {
        uint8_t k[KEY_REDERIVE_LEN];
        mn__key_rederive(k, p->sp->sid, &p->rederive[i]);
        mn__wb_put(b, e, CF_INDEX, k, sizeof k, "", 0);
    }
}

mn_err mn__repair_clear(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                        const mn_id_t *id, mn_error *err)
{
    if (!atomic_load(&sp->repair_noted)) return MN_OK; /* no note to look for */
    uint8_t k[KEY_REDERIVE_LEN];
    mn__key_rederive(k, sp->sid, id);
    char *v;
    size_t vl;
    mn_err rc = mn__store_get_wi(&e->store, b, CF_INDEX, k, sizeof k, &v, &vl, err);
    if (rc || !v) return rc;
    free(v);
    mn__wb_del(b, e, CF_INDEX, k, sizeof k);
    return MN_OK;
}

/* The ids noted in sp (at most max). */
static size_t noted(mn_engine_t *e, mn__space *sp, mn_id_t *ids, size_t max)
{
    uint8_t pre[KEY_SID_LEN + 1];
    mn__key_sid(pre, sp->sid);
    pre[KEY_SID_LEN] = 'R';
    rocksdb_iterator_t *it = mn__store_iter(&e->store, CF_INDEX);
    size_t n = 0;
    for (rocksdb_iter_seek(it, (const char *)pre, sizeof pre); rocksdb_iter_valid(it) && n < max;
         rocksdb_iter_next(it)) {
        size_t kl;
        const char *k = rocksdb_iter_key(it, &kl);
        if (kl != KEY_REDERIVE_LEN || memcmp(k, pre, sizeof pre)) break;
        memcpy(ids[n++].b, k + sizeof pre, 16);
    }
    rocksdb_iter_destroy(it);
    return n;
}

void mn__repair_space(mn_engine_t *e, mn__space *sp)
{
    if (mn__space_is_replica(sp) || atomic_load(&sp->dropped)) return;
    mn_id_t *ids = malloc(REPAIR_MAX * sizeof *ids);
    if (!ids) return;
    size_t n = noted(e, sp, ids, REPAIR_MAX);
    mn_memory_t *mems = NULL;
    size_t nm = 0;
    mn_error err = {0};
    mn_err rc = MN_OK;
    if (n) {
        rocksdb_writebatch_wi_t *b = rocksdb_writebatch_wi_create(0, 0);
        rc = mn__consolidate_rederive(e, sp, b, ids, n, mn__now(e), &mems, &nm, &err);
        rocksdb_writebatch_wi_destroy(b);
    }
    free(ids);
    if (!rc && nm) {
        mn__pending p;
        mn__pending_init(&p, MN_WAL_OP_CONSOLIDATE, sp, true);
        p.entry.op.consolidate.mems = mems;
        p.entry.op.consolidate.n = nm;
        if (!(rc = mn__commit_submit(e, &p)))
            mn_log_info("space %s: %zu semantic memories re-derived that listed episodes erased "
                        "before this node led (its old primary's re-derivation never arrived)",
                        sp->def.name, nm);
        else
            err = p.err;
    }
    if (rc)
        mn_log_warn("space %s: re-deriving what its old primary left: %s (tried again when "
                    "this node next leads it)",
                    sp->def.name, err.message);
    for (size_t i = 0; i < nm; i++)
        mn_memory_clear(&mems[i]);
    free(mems);
}
