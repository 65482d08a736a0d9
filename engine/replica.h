/* The engine's side of replication (replica.c): a space's role, entries stored at
 * their primary's lsns, the hook told of each durable entry. */
#ifndef MN_ENGINE_REPLICA_H
#define MN_ENGINE_REPLICA_H

#include <rocksdb/c.h>

#include "commit.h"

/* Is sp a replica here (no client or background writes)? Any thread. */
static inline bool mn__space_is_replica(const mn__space *sp)
{
    return atomic_load_explicit(&sp->role, memory_order_acquire) == MN_SPACE_REPLICA;
}
/* MN_ERR_UNAVAILABLE naming sp when it is a replica here, else MN_OK. */
mn_err mn__space_writable(const mn__space *sp, mn_error *err);

/* Commit thread: an op without an entry (type NONE): a role or hook change. */
void mn__replica_stage_control(mn_engine_t *e, mn__pending *p);
/* Commit thread: a replicated entry takes its own lsn, which must be the space's next
 * (MN_ERR_CONFLICT otherwise), and the engine's clock observes its hlc. */
mn_err mn__replica_stamp(mn_engine_t *e, mn__pending *p);
/* Commit thread: applies a replicated entry like any other (mn__apply_entry); one that
 * fails a precondition on the state here (its memory erased since, which the primary's
 * stripped copy says) changes nothing and is stored all the same (p->noop). */
mn_err mn__replica_apply(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b);
/* Commit thread, after a group's write: the hook, once per entry written, in order. */
void mn__replica_notify(mn_engine_t *e, mn__pending *const *ps, size_t n);
/* Start-up (load.c): sp's last entry's epoch, and its role per spaces_start_replica. */
mn_err mn__replica_load(mn_engine_t *e, mn__space *sp, mn_error *err);

#endif
