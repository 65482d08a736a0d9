/* The engine's side of replication (docs/replication.md, "The engine's side").
 *
 * A replica stores its primary's WAL entries at the primary's lsns, through the one
 * write path: each entry is decoded (CRC and verifier), queued on the commit thread
 * like any write, takes its own lsn (which must be the space's next: lsns stay dense
 * and equal on every holder), is applied by mn__apply_entry and stored as the bytes
 * the primary stored, so a replica promoted later ships the same log. What the
 * primary judged is not judged again: no dedup or idempotency verdict, and no
 * re-derivation of semantic memories (the primary's re-derivation is an entry of its
 * own, shipped after the forget that caused it). An entry whose memory was erased on
 * the primary after it was written arrives stripped (a stub, an embed without its
 * vector), and the ops after it may then find nothing to act on: such an entry is
 * stored and changes nothing (p->noop), as it changed nothing that lasts there.
 *
 * Roles: each space is PRIMARY or REPLICA here (mn__space.role). A role change is an op
 * of the commit queue without an entry, so writes queued before it are judged by the
 * old role and the ones after by the new; stage (commit.c) refuses every op of a
 * replica that is not replicated, which covers every writer, and the background
 * threads also skip replicas before doing the work.
 *
 * The WAL hook is set the same way (an op of the queue), so only the commit thread
 * reads it; it runs after each group's write, once per entry, in lsn order. */
#include "replica.h"

#include "apply.h"
#include "background.h"
#include "engine_internal.h"
#include "repair.h"
#include "mnemo/assert.h"
#include "mnemo/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mn_err mn__space_writable(const mn__space *sp, mn_error *err)
{
    if (mn__space_is_replica(sp))
        return mn_error_set(err, MN_ERR_UNAVAILABLE, "space %s: this node is not its primary",
                            sp->def.name);
    int64_t until = atomic_load_explicit(&sp->lease_until_ns, memory_order_acquire);
    if (until && mn_time_mono_ns() >= until)
        return mn_error_set(err, MN_ERR_UNAVAILABLE,
                            "space %s: this node's lease as its primary lapsed (a majority of its "
                            "copies has not answered lately)",
                            sp->def.name);
    return MN_OK;
}

/* The epoch of the entry staged last in sp's log: the group's latest of sp, or the last
 * committed one. */
static uint64_t staged_epoch(mn_engine_t *e, const mn__space *sp)
{
    mn__pending *const *ps;
    size_t n = mn__commit_group_before(e, &ps);
    while (n--)
        if (ps[n]->has_entry && ps[n]->sp == sp) return ps[n]->entry.epoch;
    return sp->last_epoch;
}

static void stage_role(mn_engine_t *e, mn__pending *p)
{
    mn__space *sp = p->sp;
    if (atomic_load(&sp->dropped) || sp->drop_staged) {
        p->rc = mn_error_set(&p->err, MN_ERR_NOT_FOUND, "space \"%s\" not found", sp->def.name);
        return;
    }
    uint64_t last = staged_epoch(e, sp);
    if (p->role_epoch && p->role_epoch < last) {
        p->rc = mn_error_set(&p->err, MN_ERR_CONFLICT,
                             "space %s: epoch %llu is below its last entry's, %llu", sp->def.name,
                             (unsigned long long)p->role_epoch, (unsigned long long)last);
        return;
    }
    bool promoted = mn__space_is_replica(sp) && p->role == MN_SPACE_PRIMARY;
    pthread_rwlock_wrlock(&sp->lock);
    if (p->role_epoch) sp->epoch = p->role_epoch;
    if (sp->epoch < last) sp->epoch = last; /* "keep": at least the log's */
    atomic_store_explicit(&sp->role, (int)p->role, memory_order_release);
    pthread_rwlock_unlock(&sp->lock);
    if (promoted) mn__repair_enqueue(e, sp); /* what its old primary left (repair.c) */
}

void mn__replica_stage_control(mn_engine_t *e, mn__pending *p)
{
    mn_assert(mn__commit_on_thread(e));
    mn_assert(p->entry.type == MN_WAL_OP_NONE && (p->set_role || p->set_hook));
    if (p->set_hook) {
        e->wal_hook = p->hook;
        e->wal_hook_arg = p->hook_arg;
        return;
    }
    stage_role(e, p);
}

mn_err mn__replica_stamp(mn_engine_t *e, mn__pending *p)
{
    const mn__space *sp = p->sp;
    if (!mn__space_is_replica(sp))
        return mn_error_set(&p->err, MN_ERR_CONFLICT, "space %s: this node is its primary",
                            sp->def.name);
    uint64_t want = sp->assigned_lsn + 1;
    if (p->entry.lsn != want)
        return mn_error_set(&p->err, MN_ERR_CONFLICT, "space %s: expected lsn %llu, got %llu",
                            sp->def.name, (unsigned long long)want,
                            (unsigned long long)p->entry.lsn);
    uint64_t before = staged_epoch(e, sp);
    if (p->entry.epoch < before)
        return mn_error_set(&p->err, MN_ERR_CONFLICT,
                            "space %s: lsn %llu has epoch %llu, below its last entry's %llu",
                            sp->def.name, (unsigned long long)p->entry.lsn,
                            (unsigned long long)p->entry.epoch, (unsigned long long)before);
    mn_hlc_update(&e->hlc, p->entry.hlc, mn__now(e));
    return MN_OK;
}

/* The memories a replicated entry carries that its apply left out. None, while the replica
 * holds its primary's state: the primary stored only the memories it applied, and an
 * erasure after the entry strips them from it (and supersedes an older copy of a semantic
 * memory) before a later read can ship it. One left out means the states differ (its words
 * would then outlive a forget here): said loudly, not hidden. */
static void warn_left_out(const mn__pending *p)
{
    const mn_wal_entry_t *en = &p->entry;
    size_t n;
    const mn_memory_t *mems = mn__entry_mems(en, &n); /* an update is applied whole or not */
    size_t left = 0;
    for (size_t i = 0; p->accepted && i < n; i++)
        left += !p->accepted[i] && !mems[i].forgotten;
    if (left)
        mn_log_warn("space %s: lsn %llu: %zu of its %zu memories not applied here (%u stored or "
                    "forgotten here already, %u listing an episode forgotten here): this "
                    "replica's state differs from its primary's",
                    en->space, (unsigned long long)en->lsn, left, n, p->left_here, p->left_blocked);
}

/* The errors of a precondition on the state here, which a replicated entry may meet
 * when its memory was erased on the primary after it was written. */
static bool state_precondition(mn_err rc)
{
    return rc == MN_ERR_NOT_FOUND || rc == MN_ERR_GONE || rc == MN_ERR_EXISTS ||
           rc == MN_ERR_CONFLICT;
}

mn_err mn__replica_apply(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    mn_assert(p->replicated && p->raw);
    rocksdb_writebatch_wi_set_save_point(b);
    mn_err rc = mn__apply_entry(e, p, b);
    if (!rc) rc = mn__apply_ref_left_out(e, p, b);
    if (!rc) {
        mn__repair_note(e, p, b); /* until the primary's re-derivation arrives */
        p->n_rederive = 0;        /* the primary's re-derivation comes as an entry of its own */
        warn_left_out(p);
        if (p->forget_unknown)
            mn_log_warn("space %s: lsn %llu forgets a memory never stored here (kept as a "
                        "tombstone): this replica's state differs from its primary's",
                        p->entry.space, (unsigned long long)p->entry.lsn);
        return MN_OK;
    }
    char *msg = NULL;
    rocksdb_writebatch_wi_rollback_to_save_point(b, &msg);
    if (msg) {
        rc = mn_error_set(&p->err, MN_ERR_IO, "space %s: %s", p->entry.space, msg);
        free(msg);
        return rc;
    }
    mn_wal_op_type_t type = p->entry.type;
    if (!state_precondition(rc) || type == MN_WAL_OP_SPACE_CREATE || type == MN_WAL_OP_SPACE_DROP)
        return rc;
    p->tombstones = 0;
    p->n_rederive = 0;
    free(p->versions);
    p->versions = NULL;
    p->n_versions = 0;
    memset(&p->err, 0, sizeof p->err);
    p->noop = true;
    return mn__apply_put_entry(e, p, b);
}

void mn__replica_notify(mn_engine_t *e, mn__pending *const *ps, size_t n)
{
    mn_wal_hook_fn fn = e->wal_hook;
    for (size_t i = 0; fn && i < n; i++)
        if (ps[i]->has_entry && !ps[i]->discard)
            fn(e->wal_hook_arg, ps[i]->entry.space, ps[i]->entry.epoch, ps[i]->entry.lsn);
}

mn_err mn__replica_load(mn_engine_t *e, mn__space *sp, mn_error *err)
{
    atomic_store(&sp->role, e->opts.spaces_start_replica ? MN_SPACE_REPLICA : MN_SPACE_PRIMARY);
    sp->last_epoch = sp->epoch;
    if (!sp->last_lsn) return MN_OK;
    uint8_t k[KEY_WAL_LEN];
    mn__key_wal(k, sp->sid, sp->last_lsn);
    char *v;
    size_t vl;
    mn_err rc = mn__store_get(&e->store, CF_WAL, k, sizeof k, &v, &vl, err);
    if (rc || !v) return rc;
    mn_wal_entry_t en;
    if (!mn_wire_wal_decode((const uint8_t *)v, vl, &en, NULL)) {
        /* a replica's log may have moved past the epoch its creation carried */
        sp->last_epoch = en.epoch;
        if (sp->epoch < en.epoch) sp->epoch = en.epoch;
        mn_wal_entry_clear(&en);
    } else {
        mn_log_warn("space %s: its last WAL entry (lsn %llu) is unreadable; its epoch is taken "
                    "as %llu",
                    sp->def.name, (unsigned long long)sp->last_lsn, (unsigned long long)sp->epoch);
    }
    free(v);
    return MN_OK;
}

/* ---- the public API ---- */

static mn__space *acquire(mn_engine_t *e, const char *space, mn_error *err)
{
    mn__space *sp = space ? mn__registry_acquire(&e->reg, space) : NULL;
    if (!sp) mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", space ? space : "");
    return sp;
}

void mn_engine_set_wal_hook(mn_engine_t *e, mn_wal_hook_fn fn, void *arg)
{
    mn__pending p;
    mn__pending_init(&p, MN_WAL_OP_NONE, NULL, false);
    p.set_hook = true;
    p.hook = fn;
    p.hook_arg = arg;
    mn__commit_submit(e, &p);
}

/* The space of that name, if it is incarnation inc (0: whichever). */
static mn__space *acquire_of(mn_engine_t *e, const char *space, int64_t inc, mn_error *err)
{
    mn__space *sp = acquire(e, space, err);
    if (sp && inc && sp->def.created_at_ms != inc) {
        mn__space_unref(sp);
        mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" is another incarnation", space);
        return NULL;
    }
    return sp;
}

mn_err mn_engine_space_set_role(mn_engine_t *e, const char *space, mn_space_role_t role,
                                uint64_t epoch, mn_error *err)
{
    return mn_engine_space_set_role_of(e, space, 0, role, epoch, err);
}

mn_err mn_engine_space_set_role_of(mn_engine_t *e, const char *space, int64_t incarnation,
                                   mn_space_role_t role, uint64_t epoch, mn_error *err)
{
    if (role != MN_SPACE_PRIMARY && role != MN_SPACE_REPLICA)
        return mn_error_set(err, MN_ERR_INVALID, "role: must be primary or replica");
    mn__space *sp = acquire_of(e, space, incarnation, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    mn__pending p;
    mn__pending_init(&p, MN_WAL_OP_NONE, sp, false);
    p.set_role = true;
    p.role = role;
    p.role_epoch = epoch;
    mn_err rc = mn__commit_submit(e, &p);
    if (rc && err) *err = p.err;
    mn__space_unref(sp);
    return rc;
}

mn_err mn_engine_space_set_lease(mn_engine_t *e, const char *space, int64_t until_ns, mn_error *err)
{
    return mn_engine_space_set_lease_of(e, space, 0, until_ns, err);
}

mn_err mn_engine_space_set_lease_of(mn_engine_t *e, const char *space, int64_t incarnation,
                                    int64_t until_ns, mn_error *err)
{
    mn__space *sp = acquire_of(e, space, incarnation, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    atomic_store_explicit(&sp->lease_until_ns, until_ns, memory_order_release);
    mn__space_unref(sp);
    return MN_OK;
}

mn_err mn_engine_space_writable(mn_engine_t *e, const char *space, mn_error *err)
{
    mn__space *sp = acquire(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    mn_err rc = mn__space_writable(sp, err);
    mn__space_unref(sp);
    return rc;
}

int64_t mn_engine_space_lapsed_ms(mn_engine_t *e, const char *space)
{
    mn__space *sp = acquire(e, space, NULL);
    if (!sp) return -1;
    int64_t until = atomic_load_explicit(&sp->lease_until_ns, memory_order_acquire);
    int64_t now = mn_time_mono_ns();
    int64_t out = !mn__space_is_replica(sp) && until && now >= until ? (now - until) / 1000000 : -1;
    mn__space_unref(sp);
    return out;
}

mn_err mn_engine_space_role(mn_engine_t *e, const char *space, mn_space_role_t *role, mn_error *err)
{
    mn__space *sp = acquire(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    *role = mn__space_is_replica(sp) ? MN_SPACE_REPLICA : MN_SPACE_PRIMARY;
    mn__space_unref(sp);
    return MN_OK;
}

/* sp's last lsn and its entry's epoch, read together. */
static void position(mn__space *sp, uint64_t *last_lsn, uint64_t *epoch)
{
    pthread_rwlock_rdlock(&sp->lock);
    *last_lsn = __atomic_load_n(&sp->last_lsn, __ATOMIC_ACQUIRE);
    *epoch = sp->last_epoch;
    pthread_rwlock_unlock(&sp->lock);
}

mn_err mn_engine_space_position(mn_engine_t *e, const char *space, uint64_t *last_lsn,
                                uint64_t *epoch, mn_error *err)
{
    mn__space *sp = acquire(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    position(sp, last_lsn, epoch);
    mn__space_unref(sp);
    return MN_OK;
}

/* ---- mn_engine_replicate ---- */

/* A replicated batch on its way: the pendings, and what the commit thread replaces in
 * them that the batch still owns. */
typedef struct repl_batch {
    mn__pending *ps;
    mn__pending **pp;
    mn_memory_t **mems; /* per remember: its decoded memories (the committer compacts) */
    size_t *n_mems;
    mn_id_t **ids; /* per remember: the ids the committer reports */
    size_t n, decoded;
} repl_batch;

static void batch_free(repl_batch *rb)
{
    for (size_t i = 0; i < rb->decoded; i++) {
        mn__pending *p = &rb->ps[i];
        if (p->entry.type == MN_WAL_OP_REMEMBER) {
            p->entry.op.remember.mems = rb->mems[i];
            p->entry.op.remember.n = rb->n_mems[i];
        }
        mn_wal_entry_clear(&p->entry);
        free(rb->ids[i]);
    }
    free(rb->ps);
    free(rb->pp);
    free(rb->mems);
    free(rb->n_mems);
    free(rb->ids);
}

/* Entry i of the batch, decoded and checked on its own: the space it names, its lsn,
 * an epoch never below the entry before it, nothing after a drop. */
static mn_err decode_one(repl_batch *rb, size_t i, const char *space, uint64_t first_lsn,
                         const uint8_t *bytes, size_t len, mn_error *err)
{
    mn__pending *p = &rb->ps[i];
    if (!bytes) return mn_error_set(err, MN_ERR_INVALID, "entry %zu: no bytes", i);
    mn_error derr = {0};
    if (mn_wire_wal_decode(bytes, len, &p->entry, &derr))
        return mn_error_set(err, MN_ERR_CORRUPT, "space %.64s: entry %zu: %s", space, i,
                            derr.message);
    rb->decoded = i + 1;
    const mn_wal_entry_t *en = &p->entry;
    if (en->type == MN_WAL_OP_REMEMBER) { /* batch_free gives them back to the entry */
        rb->mems[i] = en->op.remember.mems;
        rb->n_mems[i] = en->op.remember.n;
    }
    if (strcmp(en->space, space))
        return mn_error_set(err, MN_ERR_INVALID, "space %.64s: entry %zu is of space %s", space, i,
                            en->space);
    if (en->lsn != first_lsn + i)
        return mn_error_set(err, MN_ERR_CONFLICT, "space %s: expected lsn %llu, got %llu", space,
                            (unsigned long long)(first_lsn + i), (unsigned long long)en->lsn);
    if (i && en->epoch < rb->ps[i - 1].entry.epoch)
        return mn_error_set(err, MN_ERR_CONFLICT, "space %s: lsn %llu has epoch %llu, below %llu",
                            space, (unsigned long long)en->lsn, (unsigned long long)en->epoch,
                            (unsigned long long)rb->ps[i - 1].entry.epoch);
    if (i && rb->ps[i - 1].entry.type == MN_WAL_OP_SPACE_DROP)
        return mn_error_set(err, MN_ERR_INVALID, "space %s: entries after its drop (lsn %llu)",
                            space, (unsigned long long)(en->lsn - 1));
    if (en->type == MN_WAL_OP_NONE)
        return mn_error_set(err, MN_ERR_INVALID, "space %s: lsn %llu has no op", space,
                            (unsigned long long)en->lsn);
    p->replicated = true;
    p->raw = bytes;
    p->raw_len = len;
    p->sync = true;
    if (en->type == MN_WAL_OP_REMEMBER) {
        rb->ids[i] = malloc((en->op.remember.n ? en->op.remember.n : 1) * sizeof(mn_id_t));
        if (!rb->ids[i]) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        p->ids_out = rb->ids[i];
    }
    return MN_OK;
}

static mn_err decode_batch(repl_batch *rb, const char *space, uint64_t first_lsn,
                           const uint8_t *const *entries, const size_t *lens, mn_error *err)
{
    size_t n = rb->n;
    rb->ps = calloc(n, sizeof *rb->ps);
    rb->pp = calloc(n, sizeof *rb->pp);
    rb->mems = calloc(n, sizeof *rb->mems);
    rb->n_mems = calloc(n, sizeof *rb->n_mems);
    rb->ids = calloc(n, sizeof *rb->ids);
    if (!rb->ps || !rb->pp || !rb->mems || !rb->n_mems || !rb->ids)
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    mn_err rc = MN_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = decode_one(rb, i, space, first_lsn, entries[i], lens[i], err);
        rb->pp[i] = &rb->ps[i];
    }
    return rc;
}

/* Does the batch continue sp's log: its first lsn the next, its first epoch not below
 * the last entry's? (Checked again on the commit thread, which alone decides.) */
static mn_err check_continues(mn__space *sp, const repl_batch *rb, mn_error *err)
{
    uint64_t last_lsn, last_epoch;
    position(sp, &last_lsn, &last_epoch);
    const mn_wal_entry_t *first = &rb->ps[0].entry;
    if (first->lsn != last_lsn + 1)
        return mn_error_set(err, MN_ERR_CONFLICT, "space %s: expected lsn %llu, got %llu",
                            sp->def.name, (unsigned long long)(last_lsn + 1),
                            (unsigned long long)first->lsn);
    if (first->epoch < last_epoch)
        return mn_error_set(err, MN_ERR_CONFLICT,
                            "space %s: lsn %llu has epoch %llu, below its last entry's %llu",
                            sp->def.name, (unsigned long long)first->lsn,
                            (unsigned long long)first->epoch, (unsigned long long)last_epoch);
    return MN_OK;
}

/* Commits ps[from, n) on sp (NULL for a creation alone) as one group; the first
 * failure is the result. */
static mn_err commit_range(mn_engine_t *e, repl_batch *rb, mn__space *sp, size_t from, size_t n,
                           mn_error *err)
{
    for (size_t i = from; i < n; i++)
        rb->ps[i].sp = sp;
    mn__commit_submit_many(e, rb->pp + from, n - from);
    for (size_t i = from; i < n; i++)
        if (rb->ps[i].rc) {
            if (err) *err = rb->ps[i].err;
            return rb->ps[i].rc;
        }
    return MN_OK;
}

/* A space missing here: its creation (lsn 1) comes first, committed alone, and the
 * new space is *out (a reference). */
static mn_err create_space(mn_engine_t *e, repl_batch *rb, const char *space, mn__space **out,
                           mn_error *err)
{
    const mn_wal_entry_t *first = &rb->ps[0].entry;
    if (first->lsn != 1)
        return mn_error_set(err, MN_ERR_CONFLICT, "space %s: expected lsn 1, got %llu", space,
                            (unsigned long long)first->lsn);
    if (first->type != MN_WAL_OP_SPACE_CREATE)
        return mn_error_set(err, MN_ERR_INVALID, "space %s: lsn 1 is not its creation", space);
    mn_err rc = commit_range(e, rb, NULL, 0, 1, err);
    if (rc) return rc;
    *out = mn__registry_acquire(&e->reg, space);
    if (!*out) return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%s\" not found", space);
    return MN_OK;
}

mn_err mn_engine_replicate(mn_engine_t *e, const char *space, uint64_t first_lsn,
                           const uint8_t *const *entries, const size_t *lens, size_t n,
                           mn_error *err)
{
    if (!space) return mn_error_set(err, MN_ERR_INVALID, "space: missing");
    if (!n) return MN_OK;
    if (!entries || !lens) return mn_error_set(err, MN_ERR_INVALID, "entries: missing");
    repl_batch rb = {.n = n};
    mn__space *sp = NULL;
    mn_err rc = decode_batch(&rb, space, first_lsn, entries, lens, err);
    if (rc) goto out;
    sp = mn__registry_acquire(&e->reg, space);
    size_t from = 0;
    if (!sp) {
        if ((rc = create_space(e, &rb, space, &sp, err))) goto out;
        from = 1;
    } else if ((rc = check_continues(sp, &rb, err))) {
        goto out;
    }
    if (from < n) rc = commit_range(e, &rb, sp, from, n, err);
out:
    mn__space_unref(sp);
    batch_free(&rb);
    return rc;
}
