/* The commit thread: group commit for every write of the engine.
 *
 * Callers queue an op and wait. The commit thread takes everything queued,
 * gives each op of a space the next lsn (dense: an op that fails its
 * preconditions consumes none), applies them into one WriteBatchWithIndex and
 * writes it with a single fsync if any op needs durability. While that fsync
 * runs, new ops queue up and form the next group, so concurrent writers share
 * fsyncs (the classic leader/follower group commit, here with a dedicated
 * leader). In-memory state changes only after the batch is durable, so a
 * recall never sees a memory that a crash could take back. A failed store
 * write marks the engine failed: later writes are refused rather than risk
 * state that diverges from the WAL. Dropping a space is an entry like any
 * other; ops queued behind a drop of their space in the same group fail as
 * if the space were gone already.
 *
 * Erasing an episode (forget, expiry, an erased stub) must not leave its words
 * in a semantic memory: after staging a group, the semantic memories that
 * listed an episode the group erased are re-derived from their remaining
 * supports (mn__consolidate_rederive) into one consolidate entry per space,
 * the group's last, in the same batch; if that fails the whole group fails. */
#include "commit.h"

#include "acked.h"
#include "apply.h"
#include "consolidate.h"
#include "dedup.h"
#include "engine_internal.h"
#include "metrics.h"
#include "mnemo/assert.h"
#include "replica.h"
#include "snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The queue and the thread that drains it. */
struct mn__commitq {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* the commit thread waits for work */
    pthread_cond_t done_cv; /* callers wait for their op */
    mn__pending *head, *tail;
    size_t len;    /* ops queued (test hook) */
    bool hold;     /* test hook: the commit thread takes no group while set */
    bool stopping; /* no more ops are queued */
    /* commit thread only: spaces created minus spaces dropped by the group being staged,
     * which the registry does not count until the group is published */
    int64_t group_spaces;
    /* commit thread only: the ops of the group staged before the one being staged */
    mn__pending *const *group;
    size_t group_before;
    pthread_t thread;
    pthread_t self; /* the thread's own id, written by it before its first group */
};

void mn__pending_init(mn__pending *p, mn_wal_op_type_t type, mn__space *sp, bool sync)
{
    memset(p, 0, sizeof *p);
    p->entry.type = type;
    if (sp) snprintf(p->entry.space, sizeof p->entry.space, "%s", sp->def.name);
    p->sp = sp;
    p->sync = sync;
}

/* Memory i of a remember: a retry of an idempotency key seen before (in the
 * store or earlier in the same request)? Sets p->ids_out[i] to the key's id. */
static mn_err idem_retry(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b, size_t i,
                         bool *retry)
{
    const mn_memory_t *in = p->entry.op.remember.mems;
    const char *key = in[i].idempotency_key;
    *retry = false;
    if (!key) return MN_OK;
    for (size_t j = 0; j < i; j++)
        if (in[j].idempotency_key && !strcmp(in[j].idempotency_key, key)) {
            p->ids_out[i] = p->ids_out[j];
            *retry = true;
            return MN_OK;
        }
    uint8_t ik[KEY_SID_LEN + 1 + MN_IDEMPOTENCY_KEY_MAX];
    size_t il = mn__key_idem(ik, p->sp->sid, key);
    char *v;
    size_t vl;
    mn_err rc = mn__store_get_wi(&e->store, b, CF_INDEX, ik, il, &v, &vl, &p->err);
    if (rc) return rc;
    if (v && vl == 16) {
        memcpy(p->ids_out[i].b, v, 16);
        *retry = true;
    }
    free(v);
    return MN_OK;
}

/* Memory i of a remember, whose dedup hash is h: an exact duplicate of a live
 * memory, or of one kept earlier in the same request (compact[0..k), their
 * hashes in p->dedup)? Sets p->ids_out[i] to it. Another engine's entry
 * (ingest, a replica's) was judged where it was written: never a duplicate here. */
static mn_err exact_dup(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b, size_t i,
                        const uint8_t *h, size_t k, bool *dup)
{
    *dup = false;
    if (p->foreign || p->replicated || p->entry.op.remember.mems[i].forgotten) return MN_OK;
    for (size_t j = 0; j < k; j++)
        if (!memcmp(p->dedup[j], h, MN__DEDUP_HASH_LEN)) {
            p->ids_out[i] = p->compact[j].id;
            *dup = true;
            return MN_OK;
        }
    return mn__dedup_find(e, b, p->sp, h, mn__now(e), &p->ids_out[i], dup, &p->err);
}

/* Remember: resolve idempotency keys and exact duplicates against the store
 * and earlier memories of the same request; keep the new memories in
 * p->compact for the entry (and their dedup hashes in p->dedup). An
 * idempotency key seen before wins over the content: its id is the answer. A
 * replicated entry was judged on its primary: its hashes are computed, nothing more. */
static mn_err prefilter_remember(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    size_t n = p->entry.op.remember.n;
    mn_memory_t *in = p->entry.op.remember.mems;
    bool dedup = p->sp->def.dedup == MN_DEDUP_EXACT;
    p->compact = malloc(n * sizeof *p->compact);
    p->accepted = malloc(n * sizeof *p->accepted);
    if (dedup) p->dedup = malloc(n * sizeof *p->dedup);
    if (!p->compact || !p->accepted || (dedup && !p->dedup))
        return mn_error_set(&p->err, MN_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool retry, dup = false;
        uint8_t h[MN__DEDUP_HASH_LEN];
        mn_err rc = p->replicated ? (retry = false, MN_OK) : idem_retry(e, p, b, i, &retry);
        if (!rc && !retry && dedup) {
            if (p->dedup_in)
                memcpy(h, p->dedup_in[i], MN__DEDUP_HASH_LEN);
            else
                mn__dedup_hash(&in[i], h);
            rc = exact_dup(e, p, b, i, h, k, &dup);
        }
        if (rc) return rc;
        if (p->dup_out) p->dup_out[i] = dup;
        if (retry || dup) continue;
        p->ids_out[i] = in[i].id;
        if (dedup) memcpy(p->dedup[k], h, MN__DEDUP_HASH_LEN);
        p->compact[k++] = in[i];
    }
    p->entry.op.remember.mems = p->compact;
    p->entry.op.remember.n = k;
    return MN_OK;
}

/* The cap on spaces: the registry's count and the group's staged creations and drops.
 * Only the commit thread creates spaces, so two creations racing for the last place are
 * staged one after the other and the second is refused. */
static mn_err check_space_cap(mn_engine_t *e, mn__pending *p)
{
    uint64_t max = e->opts.max_spaces ? e->opts.max_spaces : MN_ENGINE_MAX_SPACES_DEFAULT;
    int64_t n = (int64_t)mn__registry_count(&e->reg) + e->commitq->group_spaces;
    if (n < 0 || (uint64_t)n < max) return MN_OK;
    return mn_error_set(&p->err, MN_ERR_LIMIT,
                        "space \"%s\": the store holds %lld spaces, engine.max_spaces is %llu",
                        p->entry.space, (long long)n, (unsigned long long)max);
}

/* A space creation: the name is free (or was dropped before: the new space
 * continues with the next epoch) and the cap has room; makes the space, with the next
 * space id. */
static mn_err stage_create(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    char mk[16 + MN_SPACE_NAME_MAX];
    int ml = snprintf(mk, sizeof mk, "space/%s", p->entry.space);
    char *v;
    size_t vl;
    mn_err rc = mn__store_get_wi(&e->store, b, CF_META, mk, (size_t)ml, &v, &vl, &p->err);
    if (rc) return rc;
    if (v) {
        free(v);
        return mn_error_set(&p->err, MN_ERR_EXISTS, "space \"%s\" already exists", p->entry.space);
    }
    if ((rc = check_space_cap(e, p))) return rc;
    uint64_t epoch = 1;
    ml = snprintf(mk, sizeof mk, "dropped/%s", p->entry.space);
    if ((rc = mn__store_get_wi(&e->store, b, CF_META, mk, (size_t)ml, &v, &vl, &p->err))) return rc;
    if (v) {
        mn_wal_entry_t d;
        if (!mn_wire_wal_decode((const uint8_t *)v, vl, &d, NULL)) {
            epoch = d.epoch + 1;
            mn_wal_entry_clear(&d);
        }
        free(v);
    }
    p->entry.op.space_create.space_id = e->next_sid++;
    p->sp = mn__space_new(&p->entry.op.space_create.def, p->entry.op.space_create.space_id);
    if (!p->sp) return mn_error_set(&p->err, MN_ERR_NOMEM, "out of memory");
    /* a replica's space: the primary's epoch, and no client writes here */
    p->sp->epoch = p->replicated ? p->entry.epoch : epoch;
    if (p->replicated) atomic_store(&p->sp->role, MN_SPACE_REPLICA);
    return MN_OK;
}

/* The per-memory buffers of a remember or consolidate; a remember's retries
 * (idempotency keys seen before) leave the entry. */
static mn_err stage_memories(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    mn_err rc;
    size_t n;
    if (p->entry.type == MN_WAL_OP_REMEMBER) {
        if ((rc = prefilter_remember(e, p, b))) return rc;
        n = p->entry.op.remember.n;
    } else {
        n = p->entry.type == MN_WAL_OP_UPDATE ? 1 : p->entry.op.consolidate.n;
        if (!(p->accepted = malloc((n ? n : 1) * sizeof *p->accepted)))
            return mn_error_set(&p->err, MN_ERR_NOMEM, "out of memory");
    }
    if (!(p->kw = calloc(n ? n : 1, sizeof *p->kw)))
        return mn_error_set(&p->err, MN_ERR_NOMEM, "out of memory");
    p->n_kw = n;
    return MN_OK;
}

/* Prepares and applies one op into the group batch; an op that fails its
 * preconditions consumes no lsn. A replica's space takes replicated entries only. */
static void stage(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b, bool *group_sync)
{
    mn_wal_op_type_t type = p->entry.type;
    if (type == MN_WAL_OP_NONE) {
        if (p->snap)
            mn__snapshot_stage(e, p);
        else
            mn__replica_stage_control(e, p);
        return;
    }
    if (type == MN_WAL_OP_SPACE_CREATE) {
        if ((p->rc = stage_create(e, p, b))) return;
    } else if (atomic_load(&p->sp->dropped) || p->sp->drop_staged) {
        p->rc = mn_error_set(&p->err, MN_ERR_NOT_FOUND, "space \"%s\" not found", p->sp->def.name);
        return;
    } else if (!p->replicated && !p->discard && (p->rc = mn__space_writable(p->sp, &p->err))) {
        return;
    }
    mn__space *sp = p->sp;
    if (type == MN_WAL_OP_SPACE_DROP) {
        p->entry.op.space_drop.space_id = sp->sid; /* ours, whoever wrote the entry */
        if (!p->entry.op.space_drop.at_ms) p->entry.op.space_drop.at_ms = mn__now(e);
    }
    if (type == MN_WAL_OP_REMEMBER || type == MN_WAL_OP_CONSOLIDATE ||
        type == MN_WAL_OP_UPDATE) {
        if ((p->rc = stage_memories(e, p, b))) return;
        if (type == MN_WAL_OP_REMEMBER && p->entry.op.remember.n == 0 && !p->replicated)
            return; /* every memory was a retry (a replicated entry keeps its lsn all the same) */
    }
    /* lsns are dense: the group's entries of a space take last_lsn + 1, + 2 ... */
    mn_assert(sp->assigned_lsn >= sp->last_lsn);
    if (p->replicated) {
        if ((p->rc = mn__replica_stamp(e, p))) return;
        if ((p->rc = mn__replica_apply(e, p, b))) return;
    } else {
        /* a space's log never goes back an epoch (replica.c keeps epoch >= last_epoch) */
        mn_assert(sp->epoch >= sp->last_epoch);
        p->entry.epoch = sp->epoch;
        p->entry.lsn = sp->assigned_lsn + 1;
        p->entry.hlc = mn_hlc_now(&e->hlc, mn__now(e));
        if ((p->rc = mn__apply_entry(e, p, b))) return;
    }
    sp->assigned_lsn++;
    p->has_entry = true;
    if (type == MN_WAL_OP_SPACE_DROP) sp->drop_staged = true;
    if (type == MN_WAL_OP_SPACE_CREATE) e->commitq->group_spaces++;
    if (type == MN_WAL_OP_SPACE_DROP) e->commitq->group_spaces--;
    if (p->sync) *group_sync = true;
}

/* Writes the group's batch. A group that drops a space is written as a plain
 * batch (the indexed one cannot hold range deletions): its point mutations,
 * then each drop's range deletions, in one atomic write. */
static mn_err write_group(mn_engine_t *e, mn__pending **ps, size_t n, rocksdb_writebatch_wi_t *b,
                          bool sync, mn_error *err)
{
    bool ranges = false;
    for (size_t i = 0; i < n && !ranges; i++)
        ranges = ps[i]->has_entry && ps[i]->entry.type == MN_WAL_OP_SPACE_DROP;
    if (!ranges) return mn__store_write(&e->store, b, sync, err);
    size_t size;
    const char *data = rocksdb_writebatch_wi_data(b, &size);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create_from(data, size);
    mn_err rc = MN_OK;
    for (size_t i = 0; i < n && !rc; i++)
        if (ps[i]->has_entry && (rc = mn__apply_ranges(e, ps[i]->sp, &ps[i]->entry, wb)))
            mn_error_set(err, rc, "space drop: out of memory");
    if (!rc) rc = mn__store_write_batch(&e->store, wb, sync, err);
    rocksdb_writebatch_destroy(wb);
    return rc;
}

/* After the group's write: a synced one makes its lsns the acknowledged ones
 * (acked.c); a dropped space is forgotten there, synced or not. */
static void note_acked(mn_engine_t *e, mn__pending **ps, size_t n, bool sync)
{
    for (size_t i = 0; i < n; i++) {
        const mn__pending *p = ps[i];
        if (!p->has_entry) continue;
        if (p->entry.type == MN_WAL_OP_SPACE_DROP)
            mn__acked_note(e->acked, p->sp->sid, 0);
        else if (sync) {
            /* lsns only grow: a note never moves a watermark back over durable entries */
            mn_assert(p->entry.lsn > mn__acked_get(e->acked, p->sp->sid));
            mn__acked_note(e->acked, p->sp->sid, p->entry.lsn);
        }
    }
    mn__acked_write(e->acked);
}

/* Writes the group's entries, if any, and counts them; a failed write fails
 * every op that had an entry and marks the engine failed. */
static void write_entries(mn_engine_t *e, mn__pending **ps, size_t n, rocksdb_writebatch_wi_t *b,
                          bool group_sync)
{
    size_t entries = 0;
    for (size_t i = 0; i < n; i++)
        entries += ps[i]->has_entry;
    if (!entries) return;
    mn_error werr = {0};
    /* with a WAL hook (cluster mode) every entry it hears of is durable: it may be shipped */
    bool sync = (group_sync || e->wal_hook) && e->opts.sync;
    int64_t t0_ns = mn_time_mono_ns();
    mn_err rc = write_group(e, ps, n, b, sync, &werr);
    mn__timed(&e->h_write, t0_ns, rc);
    if (rc) {
        mn_log_error("store write failed, refusing further writes: %s", werr.message);
        e->failed = true;
        for (size_t i = 0; i < n; i++)
            if (ps[i]->has_entry) {
                ps[i]->rc = rc;
                ps[i]->err = werr;
                ps[i]->has_entry = false;
            }
        return;
    }
    note_acked(e, ps, n, sync);
    atomic_fetch_add(&e->n_commits, 1);
    if (sync) atomic_fetch_add(&e->n_synced, 1);
    atomic_fetch_add(&e->n_entries, entries);
    if (entries > atomic_load(&e->max_group)) atomic_store(&e->max_group, entries);
    mn_histogram_observe(&e->h_group, entries);
    if (sync) mn_histogram_observe(&e->h_group_synced, entries);
}

/* A space creation after the write: the new space joins the map, or goes. */
static void publish_create(mn_engine_t *e, mn__pending *p)
{
    if (p->has_entry) {
        p->sp->last_lsn = p->entry.lsn;
        p->sp->last_epoch = p->entry.epoch;
        p->sp->first_lsn = p->entry.lsn;
        if (mn__registry_insert(&e->reg, p->sp)) {
            p->rc = mn_error_set(&p->err, MN_ERR_NOMEM, "out of memory");
            mn__space_free(p->sp);
        }
    } else if (p->sp) {
        /* nothing was written with it (unless a snapshot install took the next one since) */
        if (e->next_sid == p->entry.op.space_create.space_id + 1) e->next_sid--;
        mn__space_free(p->sp);
    }
    p->sp = NULL;
}

/* Writes the group and publishes its effects. */
static void flush_group(mn_engine_t *e, mn__pending **ps, size_t n, rocksdb_writebatch_wi_t *b,
                        bool group_sync)
{
    write_entries(e, ps, n, b, group_sync);
    for (size_t i = 0; i < n; i++) {
        mn__pending *p = ps[i];
        if (p->entry.type == MN_WAL_OP_SPACE_CREATE) {
            publish_create(e, p);
        } else if (p->has_entry) {
            mn__apply_memory(e, p);
            if (p->entry.type == MN_WAL_OP_SPACE_DROP) {
                mn__registry_remove(&e->reg, p->sp);
                mn__space_unref(p->sp); /* the map's reference */
            }
        } else if (p->sp && p->rc && e->failed) {
            p->sp->assigned_lsn = p->sp->last_lsn;
            p->sp->drop_staged = false;
        }
    }
    /* every lsn handed out in the group was committed, or taken back */
    for (size_t i = 0; i < n; i++)
        if (ps[i]->sp) mn_assert(ps[i]->sp->assigned_lsn == ps[i]->sp->last_lsn);
    if (e->wal_hook) mn__replica_notify(e, ps, n);
    rocksdb_writebatch_wi_clear(b);
}

static int id_order(const void *a, const void *b)
{
    return mn_id_cmp(a, b);
}

/* The re-derivation of space sp's semantic memories that ps[0..n) noted, as a
 * pending consolidate entry staged into b; *out NULL when nothing changed. */
static mn_err stage_rederive(mn_engine_t *e, mn__space *sp, mn__pending **ps, size_t n,
                             rocksdb_writebatch_wi_t *b, bool *group_sync, mn__pending **out,
                             mn_error *err)
{
    *out = NULL;
    size_t total = 0;
    bool sync = false;
    for (size_t i = 0; i < n; i++)
        if (ps[i]->sp == sp && ps[i]->has_entry) {
            total += ps[i]->n_rederive;
            sync |= ps[i]->n_rederive && ps[i]->sync;
        }
    if (!total) return MN_OK;
    mn_id_t *ids = malloc(total * sizeof *ids);
    if (!ids) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (ps[i]->sp == sp && ps[i]->has_entry)
            for (size_t j = 0; j < ps[i]->n_rederive; j++)
                ids[k++] = ps[i]->rederive[j];
    qsort(ids, k, sizeof *ids, id_order);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (!u || mn_id_cmp(&ids[u - 1], &ids[i])) ids[u++] = ids[i];
    mn_memory_t *mems = NULL;
    size_t nm = 0;
    mn_err rc = mn__consolidate_rederive(e, sp, b, ids, u, mn__now(e), &mems, &nm, err);
    free(ids);
    if (rc || !nm) {
        free(mems);
        return rc;
    }
    mn__pending *d = calloc(1, sizeof *d);
    if (!d) {
        for (size_t i = 0; i < nm; i++)
            mn_memory_clear(&mems[i]);
        free(mems);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    mn__pending_init(d, MN_WAL_OP_CONSOLIDATE, sp, sync);
    d->derived = true;
    d->entry.op.consolidate.mems = mems;
    d->entry.op.consolidate.n = nm;
    stage(e, d, b, group_sync);
    *out = d;
    if (d->rc && err) *err = d->err;
    return d->rc;
}

static void free_pending_results(mn__pending *p)
{
    free(p->compact);
    free(p->dedup);
    p->dedup = NULL;
    if (!p->keep_accepted) free(p->accepted);
    for (size_t j = 0; p->kw && j < p->n_kw; j++)
        free(p->kw[j].buf);
    free(p->kw);
    free(p->rederive);
    free(p->versions);
    p->versions = NULL;
    p->n_versions = 0;
    p->compact = NULL;
    if (!p->keep_accepted) p->accepted = NULL;
    p->kw = NULL;
    p->rederive = NULL;
    p->n_rederive = p->cap_rederive = 0;
}

static void free_derived(mn__pending *d)
{
    free_pending_results(d);
    for (size_t i = 0; i < d->entry.op.consolidate.n; i++)
        mn_memory_clear(&d->entry.op.consolidate.mems[i]);
    free(d->entry.op.consolidate.mems);
    free(d);
}

/* Every op of the group fails with err and nothing is written (the batch is
 * cleared by flush_group, which finds no entry). */
static void fail_group(mn__pending **ps, size_t n, const mn_error *err)
{
    for (size_t i = 0; i < n; i++) {
        mn__pending *p = ps[i];
        if (!p->has_entry) continue;
        p->has_entry = false;
        p->rc = err->code ? err->code : MN_ERR_INTERNAL;
        p->err = *err;
        if (p->sp && p->entry.type != MN_WAL_OP_SPACE_CREATE) {
            p->sp->assigned_lsn = p->sp->last_lsn;
            p->sp->drop_staged = false;
        }
    }
}

/* Appends the group's re-derivations (one pending per space) to ps. */
static void stage_rederivations(mn_engine_t *e, mn__pending ***ps, size_t *n, size_t *cap,
                                rocksdb_writebatch_wi_t *b, bool *group_sync)
{
    size_t n0 = *n;
    mn_error err = {0};
    mn_err rc = MN_OK;
    mn__space **done = NULL; /* spaces re-derived already (a group touches few) */
    size_t n_done = 0;
    for (size_t i = 0; i < n0 && !rc; i++) {
        mn__pending *p = (*ps)[i];
        if (!p->has_entry || !p->n_rederive) continue;
        bool seen = false;
        for (size_t j = 0; j < n_done && !seen; j++)
            seen = done[j] == p->sp;
        if (seen || atomic_load(&p->sp->dropped) || p->sp->drop_staged) continue;
        mn__space **nd = realloc(done, (n_done + 1) * sizeof *nd);
        if (!nd) {
            rc = mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
            break;
        }
        done = nd;
        done[n_done++] = p->sp;
        mn__pending *d = NULL;
        rc = stage_rederive(e, p->sp, *ps, n0, b, group_sync, &d, &err);
        if (!d) continue;
        if (*n == *cap) {
            size_t nc = *cap * 2;
            mn__pending **np = realloc(*ps, nc * sizeof *np);
            if (!np) abort(); /* cannot even track waiters */
            *ps = np;
            *cap = nc;
        }
        (*ps)[(*n)++] = d;
    }
    free(done);
    if (rc) {
        mn_log_error("re-deriving semantic memories failed, the group is refused: %s", err.message);
        fail_group(*ps, *n, &err);
    }
}

/* Waits for work and takes the whole queue; NULL when stopping with nothing left. */
static mn__pending *take_queue(struct mn__commitq *q)
{
    pthread_mutex_lock(&q->mu);
    while ((!q->head || q->hold) && !q->stopping)
        pthread_cond_wait(&q->work_cv, &q->mu);
    mn__pending *list = q->head;
    q->head = q->tail = NULL;
    q->len = 0;
    pthread_mutex_unlock(&q->mu);
    return list;
}

/* Stages, writes and publishes one group: the ops of list, then the
 * re-derivations they call for. *ps (capacity *cap) holds the group. */
static void run_group(mn_engine_t *e, mn__pending *list, mn__pending ***ps, size_t *cap,
                      rocksdb_writebatch_wi_t *b)
{
    size_t n = 0;
    bool group_sync = false;
    e->commitq->group_spaces = 0;
    for (mn__pending *p = list; p; p = p->next) {
        if (n == *cap) {
            size_t nc = *cap * 2;
            mn__pending **grown = realloc(*ps, nc * sizeof *grown);
            if (!grown) abort(); /* cannot even track waiters */
            *ps = grown;
            *cap = nc;
        }
        (*ps)[n++] = p;
        e->commitq->group = *ps;
        e->commitq->group_before = n - 1;
        if (e->failed) {
            p->rc = mn_error_set(&p->err, MN_ERR_IO, "engine is read-only after a write failure");
            continue;
        }
        stage(e, p, b, &group_sync);
    }
    e->commitq->group_before = 0; /* a re-derivation sees no earlier op of the group */
    stage_rederivations(e, ps, &n, cap, b, &group_sync);
    flush_group(e, *ps, n, b, group_sync);
    /* nobody waits for the derived ops (the others may be gone once done) */
    size_t waited = 0;
    for (size_t i = 0; i < n; i++)
        if ((*ps)[i]->derived)
            free_derived((*ps)[i]);
        else
            (*ps)[waited++] = (*ps)[i];
    struct mn__commitq *q = e->commitq;
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < waited; i++)
        (*ps)[i]->done = true;
    pthread_cond_broadcast(&q->done_cv);
    pthread_mutex_unlock(&q->mu);
}

static void *commit_main(void *arg)
{
    mn_engine_t *e = arg;
    e->commitq->self = pthread_self();
    rocksdb_writebatch_wi_t *b = rocksdb_writebatch_wi_create(1 << 16, 1);
    size_t cap = 64;
    mn__pending **ps = malloc(cap * sizeof *ps);
    if (!ps) abort(); /* cannot even track waiters */
    mn__pending *list;
    while ((list = take_queue(e->commitq)))
        run_group(e, list, &ps, &cap, b);
    free(ps);
    rocksdb_writebatch_wi_destroy(b);
    return NULL;
}

/* The entry the calling thread's last write call committed (mn_engine_write_begin /
 * mn_engine_write_taken): a door waits for that entry, not for whatever is last in the log
 * when it looks. Written and read by the same thread only. */
static _Thread_local struct {
    bool set;
    char space[MN_SPACE_NAME_MAX + 1];
    uint64_t lsn, epoch;
} tl_write;

void mn_engine_write_begin(void)
{
    tl_write.set = false;
}

bool mn_engine_write_taken(const char *space, uint64_t *lsn, uint64_t *epoch)
{
    bool ok = tl_write.set && !strcmp(tl_write.space, space);
    if (ok) {
        *lsn = tl_write.lsn;
        *epoch = tl_write.epoch;
    }
    return ok;
}

/* Notes the last entry p committed for the calling thread: the highest lsn of a space (a
 * batch's entries are in lsn order; a later space's entry replaces an earlier one's). */
static void note_taken(const mn__pending *p)
{
    if (p->rc != MN_OK || !p->has_entry || p->replicated || p->discard || !p->sp) return;
    const char *name = p->sp->def.name;
    if (tl_write.set && !strcmp(tl_write.space, name) && tl_write.lsn > p->entry.lsn) return;
    tl_write.set = true;
    snprintf(tl_write.space, sizeof tl_write.space, "%s", name);
    tl_write.lsn = p->entry.lsn;
    tl_write.epoch = p->entry.epoch;
}

void mn__commit_submit_many(mn_engine_t *e, mn__pending **ps, size_t n)
{
    struct mn__commitq *q = e->commitq;
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < n; i++) {
        mn__pending *p = ps[i];
        p->next = NULL;
        p->done = false;
        if (q->stopping) {
            p->rc = mn_error_set(&p->err, MN_ERR_CLOSED, "engine is shutting down");
            p->done = true;
            continue;
        }
        if (q->tail)
            q->tail->next = p;
        else
            q->head = p;
        q->tail = p;
        q->len++;
    }
    pthread_cond_signal(&q->work_cv);
    for (size_t i = 0; i < n; i++)
        while (!ps[i]->done)
            pthread_cond_wait(&q->done_cv, &q->mu);
    pthread_mutex_unlock(&q->mu);
    for (size_t i = 0; i < n; i++) {
        note_taken(ps[i]);
        free_pending_results(ps[i]);
    }
}

mn_err mn__commit_submit(mn_engine_t *e, mn__pending *p)
{
    mn__commit_submit_many(e, &p, 1);
    return p->rc;
}

void mn__commit_hold(mn_engine_t *e, bool hold)
{
    struct mn__commitq *q = e->commitq;
    pthread_mutex_lock(&q->mu);
    q->hold = hold;
    pthread_cond_signal(&q->work_cv);
    pthread_mutex_unlock(&q->mu);
}

size_t mn__commit_queued(mn_engine_t *e)
{
    struct mn__commitq *q = e->commitq;
    pthread_mutex_lock(&q->mu);
    size_t n = q->len;
    pthread_mutex_unlock(&q->mu);
    return n;
}

size_t mn__commit_group_before(mn_engine_t *e, mn__pending *const **ps)
{
    mn_assert(mn__commit_on_thread(e));
    *ps = e->commitq->group;
    return e->commitq->group_before;
}

bool mn__commit_on_thread(const mn_engine_t *e)
{
    return e->commitq && pthread_equal(pthread_self(), e->commitq->self);
}

static void commitq_free(struct mn__commitq *q)
{
    pthread_cond_destroy(&q->work_cv);
    pthread_cond_destroy(&q->done_cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

mn_err mn__commit_start(mn_engine_t *e, mn_error *err)
{
    struct mn__commitq *q = calloc(1, sizeof *q);
    if (!q) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->work_cv, NULL);
    pthread_cond_init(&q->done_cv, NULL);
    e->commitq = q;
    if (pthread_create(&q->thread, NULL, commit_main, e)) {
        e->commitq = NULL;
        commitq_free(q);
        return mn_error_set(err, MN_ERR_IO, "cannot start the commit thread");
    }
    return MN_OK;
}

void mn__commit_stop(mn_engine_t *e)
{
    struct mn__commitq *q = e->commitq;
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_signal(&q->work_cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    e->commitq = NULL;
    commitq_free(q);
}
