/* Applying WAL entries (apply.c, apply_semantic.c): the only way a space's
 * state changes. The commit thread calls mn__apply_entry for each op of a
 * group, writes the group, then calls mn__apply_memory. */
#ifndef MN_ENGINE_APPLY_H
#define MN_ENGINE_APPLY_H

#include <rocksdb/c.h>

#include "commit.h"
#include "store.h"

/* Adds the store mutations of p->entry (and the entry itself) to the group's
 * batch. Runs on the commit thread before the write; reads see earlier entries
 * of the same group through the indexed batch. For a remember or consolidate,
 * p->accepted[i] says whether memory i was applied (false: its id is
 * tombstoned or already there, or it lists a forgotten episode) and p->kw
 * (NULL or one per memory) receives each written memory's term list for
 * mn__apply_memory. Sets p->tombstones and p->rederive; errors go to p->err. */
mn_err mn__apply_entry(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b);
/* The entry itself under its lsn: as stored (a remember or consolidate keeps only the
 * memories it applied), or for a replicated entry p->raw, the bytes its primary stored. */
mn_err mn__apply_put_entry(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b);
/* A replicated entry: a WAL reference to it for each memory its apply left out. */
mn_err mn__apply_ref_left_out(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b);
/* The memories of a remember or consolidate entry, the ones apply accepts one by one
 * (mn__pending.accepted); NULL (*n 0) for any other op. */
mn_memory_t *mn__entry_mems(const mn_wal_entry_t *en, size_t *n);
/* The range deletions of entry (a space drop), appended to the group's plain
 * batch b after the point mutations of mn__apply_entry: everything stored under
 * the space's prefix goes, except the drop entry itself, which stays as the
 * last entry of the dropped space's WAL. */
mn_err mn__apply_ranges(mn_engine_t *e, mn__space *sp, const mn_wal_entry_t *entry,
                        rocksdb_writebatch_t *b);
/* After the batch is durable: the in-memory effects of p->entry. */
void mn__apply_memory(mn_engine_t *e, mn__pending *p);
/* Replaces memory id in a decoded remember or consolidate entry by its erased
 * stub (id, kind, when, created_at, forgotten_at = at_ms, retired) and drops
 * the entry's edges that touch it. False if the entry does not carry it (or
 * carries it erased already). */
bool mn__wal_strip_memory(mn_wal_entry_t *en, const mn_id_t *id, int64_t at_ms, bool retired);
/* Puts entry en, re-encoded, under WAL key wk in batch b (an entry rewritten
 * in place: same lsn, a new CRC). */
mn_err mn__apply_rewrite_wal(mn__store *st, rocksdb_writebatch_wi_t *b, const void *wk, size_t wkl,
                             const mn_wal_entry_t *en, mn_error *err);

#endif
