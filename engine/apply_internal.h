/* Private to the apply path: batch helpers shared by apply.c (memories,
 * forgets, stubs, the entry itself) and apply_semantic.c (semantic memories:
 * marks, links, the WAL's latest version). Everything here runs on the commit
 * thread, inside the group's indexed batch. */
#ifndef MN_APPLY_INTERNAL_H
#define MN_APPLY_INTERNAL_H

#include "commit.h"
#include "engine_internal.h"
#include "record.h"

static inline void mn__wb_put(rocksdb_writebatch_wi_t *b, mn_engine_t *e, int cf, const void *k,
                              size_t kl, const void *v, size_t vl)
{
    rocksdb_writebatch_wi_put_cf(b, e->store.cf[cf], k, kl, v, vl);
}

static inline void mn__wb_del(rocksdb_writebatch_wi_t *b, mn_engine_t *e, int cf, const void *k,
                              size_t kl)
{
    rocksdb_writebatch_wi_delete_cf(b, e->store.cf[cf], (const char *)k, kl);
}

/* ---- apply.c ---- */
mn_err mn__apply_put_record(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                            const mn_memory_record_t *rec);
/* A written memory's term list (keywords family), also into *kw when given. */
mn_err mn__apply_put_terms(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                           const mn_memory_t *m, mn__kw_buf *kw, mn_error *err);
/* A retired memory comes back: its as-of index entries go. */
void mn__apply_del_gone(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                        const mn_memory_t *m, int64_t gone_at);
/* An erased stub of a remember or consolidate entry; *applied: the state changed. */
mn_err mn__apply_stub(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b,
                      const mn_memory_t *m, bool *applied, mn_error *err);

/* ---- apply_semantic.c ---- */
/* Episode ep no longer supports semantic memory sem: mark and link go. */
mn_err mn__apply_unlist_support(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                                const mn_id_t *ep, const mn_id_t *sem, mn_error *err);
/* An episode being erased: the semantic memories listing it go to
 * p->rederive; its mark and links go. */
mn_err mn__apply_take_holders(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b,
                              const mn_id_t *ep, mn_error *err);
/* A consolidate entry: new, updated or returning semantic memories, and stubs. */
mn_err mn__apply_consolidate(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b);

#endif
