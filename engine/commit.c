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
 * supports (mn_consolidate_rederive) into one consolidate entry per space,
 * the group's last, in the same batch; if that fails the whole group fails. */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int space_cmp(const void *a, const void *b)
{
    return strcmp((*(mn_space *const *)a)->def.name, (*(mn_space *const *)b)->def.name);
}

/* Inserts sp into the sorted map (commit thread). */
static mn_err map_insert(mn_engine *e, mn_space *sp)
{
    pthread_rwlock_wrlock(&e->spaces_lock);
    if (e->n_spaces == e->cap_spaces) {
        size_t nc = e->cap_spaces ? e->cap_spaces * 2 : 16;
        mn_space **n = realloc(e->spaces, nc * sizeof *n);
        if (!n) {
            pthread_rwlock_unlock(&e->spaces_lock);
            return MN_ERR_NOMEM;
        }
        e->spaces = n;
        e->cap_spaces = nc;
    }
    e->spaces[e->n_spaces++] = sp;
    qsort(e->spaces, e->n_spaces, sizeof *e->spaces, space_cmp);
    pthread_rwlock_unlock(&e->spaces_lock);
    return MN_OK;
}

static void map_remove(mn_engine *e, mn_space *sp)
{
    pthread_rwlock_wrlock(&e->spaces_lock);
    for (size_t i = 0; i < e->n_spaces; i++)
        if (e->spaces[i] == sp) {
            memmove(&e->spaces[i], &e->spaces[i + 1], (e->n_spaces - i - 1) * sizeof *e->spaces);
            e->n_spaces--;
            break;
        }
    pthread_rwlock_unlock(&e->spaces_lock);
}

/* Remember: resolve idempotency keys against the store and earlier memories of
 * the same request; keep the new memories in p->compact for the entry. */
static mn_err prefilter_remember(mn_engine *e, mn_pending *p, rocksdb_writebatch_wi_t *b)
{
    mn_space *sp = p->sp;
    size_t n = p->entry.op.remember.n;
    mn_memory_t *in = p->entry.op.remember.mems;
    p->compact = malloc(n * sizeof *p->compact);
    p->accepted = malloc(n * sizeof *p->accepted);
    if (!p->compact || !p->accepted) return mn_error_set(&p->err, MN_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *key = in[i].idempotency_key;
        bool dup = false;
        if (key) {
            for (size_t j = 0; j < i && !dup; j++)
                if (in[j].idempotency_key && !strcmp(in[j].idempotency_key, key)) {
                    p->ids_out[i] = p->ids_out[j];
                    dup = true;
                }
            if (!dup) {
                uint8_t ik[KEY_SID_LEN + 1 + MN_IDEMPOTENCY_KEY_MAX];
                size_t il = mn_key_idem(ik, sp->sid, key);
                char *v;
                size_t vl;
                mn_err rc = mn_store_get_wi(&e->store, b, CF_INDEX, ik, il, &v, &vl, &p->err);
                if (rc) return rc;
                if (v && vl == 16) {
                    memcpy(p->ids_out[i].b, v, 16);
                    dup = true;
                }
                free(v);
            }
        }
        if (!dup) {
            p->ids_out[i] = in[i].id;
            p->compact[k++] = in[i];
        }
    }
    p->entry.op.remember.mems = p->compact;
    p->entry.op.remember.n = k;
    return MN_OK;
}

/* Prepares and applies one op into the group batch. */
static void stage(mn_engine *e, mn_pending *p, rocksdb_writebatch_wi_t *b, bool *group_sync)
{
    mn_space *sp = p->sp;
    if (p->entry.type == MN_WAL_OP_SPACE_CREATE) {
        char mk[8 + MN_SPACE_NAME_MAX];
        int ml = snprintf(mk, sizeof mk, "space/%s", p->entry.space);
        char *v;
        size_t vl;
        if ((p->rc = mn_store_get_wi(&e->store, b, CF_META, mk, (size_t)ml, &v, &vl, &p->err)))
            return;
        if (v) {
            free(v);
            p->rc = mn_error_set(&p->err, MN_ERR_EXISTS, "space \"%s\" already exists",
                                 p->entry.space);
            return;
        }
        /* a name that was dropped before continues with the next epoch */
        uint64_t epoch = 1;
        ml = snprintf(mk, sizeof mk, "dropped/%s", p->entry.space);
        if ((p->rc = mn_store_get_wi(&e->store, b, CF_META, mk, (size_t)ml, &v, &vl, &p->err)))
            return;
        if (v) {
            mn_wal_entry d;
            if (!mn_wire_wal_decode((const uint8_t *)v, vl, &d, NULL)) {
                epoch = d.epoch + 1;
                mn_wal_entry_clear(&d);
            }
            free(v);
        }
        p->entry.op.space_create.space_id = e->next_sid++;
        sp = p->sp = mn_space_new(&p->entry.op.space_create.def, p->entry.op.space_create.space_id);
        if (!sp) {
            p->rc = mn_error_set(&p->err, MN_ERR_NOMEM, "out of memory");
            return;
        }
        sp->epoch = epoch;
    } else if (atomic_load(&sp->dropped) || sp->drop_staged) {
        p->rc = mn_error_set(&p->err, MN_ERR_NOT_FOUND, "space \"%s\" not found", sp->def.name);
        return;
    }
    if (p->entry.type == MN_WAL_OP_SPACE_DROP) {
        p->entry.op.space_drop.space_id = sp->sid; /* ours, whoever wrote the entry */
        if (!p->entry.op.space_drop.at_ms) p->entry.op.space_drop.at_ms = mn_engine_now(e);
    }
    if (p->entry.type == MN_WAL_OP_REMEMBER) {
        if ((p->rc = prefilter_remember(e, p, b))) return;
        if (p->entry.op.remember.n == 0) return; /* every memory was a retry */
    }
    if (p->entry.type == MN_WAL_OP_CONSOLIDATE) {
        p->accepted = malloc((p->entry.op.consolidate.n ? p->entry.op.consolidate.n : 1) *
                             sizeof *p->accepted);
        if (!p->accepted) {
            p->rc = mn_error_set(&p->err, MN_ERR_NOMEM, "out of memory");
            return;
        }
    }
    if (p->entry.type == MN_WAL_OP_REMEMBER || p->entry.type == MN_WAL_OP_CONSOLIDATE) {
        size_t n = p->entry.type == MN_WAL_OP_REMEMBER ? p->entry.op.remember.n
                                                       : p->entry.op.consolidate.n;
        if (!(p->kw = calloc(n ? n : 1, sizeof *p->kw))) {
            p->rc = mn_error_set(&p->err, MN_ERR_NOMEM, "out of memory");
            return;
        }
        p->n_kw = n;
    }
    p->entry.epoch = sp->epoch;
    p->entry.lsn = sp->assigned_lsn + 1;
    p->entry.hlc = mn_hlc_now(&e->hlc, mn_engine_now(e));
    if ((p->rc = mn_apply_entry(e, p, b))) return;
    sp->assigned_lsn++;
    p->has_entry = true;
    if (p->entry.type == MN_WAL_OP_SPACE_DROP) sp->drop_staged = true;
    if (p->sync) *group_sync = true;
}

/* Writes the group's batch. A group that drops a space is written as a plain
 * batch (the indexed one cannot hold range deletions): its point mutations,
 * then each drop's range deletions, in one atomic write. */
static mn_err write_group(mn_engine *e, mn_pending **ps, size_t n, rocksdb_writebatch_wi_t *b,
                          bool sync, mn_error *err)
{
    bool ranges = false;
    for (size_t i = 0; i < n && !ranges; i++)
        ranges = ps[i]->has_entry && ps[i]->entry.type == MN_WAL_OP_SPACE_DROP;
    if (!ranges) return mn_store_write(&e->store, b, sync, err);
    size_t size;
    const char *data = rocksdb_writebatch_wi_data(b, &size);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create_from(data, size);
    mn_err rc = MN_OK;
    for (size_t i = 0; i < n && !rc; i++)
        if (ps[i]->has_entry && (rc = mn_apply_ranges(e, ps[i]->sp, &ps[i]->entry, wb)))
            mn_error_set(err, rc, "space drop: out of memory");
    if (!rc) rc = mn_store_write_batch(&e->store, wb, sync, err);
    rocksdb_writebatch_destroy(wb);
    return rc;
}

/* Writes the group and publishes its effects. */
static void flush_group(mn_engine *e, mn_pending **ps, size_t n, rocksdb_writebatch_wi_t *b,
                        bool group_sync)
{
    size_t entries = 0;
    for (size_t i = 0; i < n; i++) entries += ps[i]->has_entry;
    if (entries) {
        mn_error werr = {0};
        bool sync = group_sync && e->opts.sync;
        int64_t t0 = mn_time_mono_ns();
        mn_err rc = write_group(e, ps, n, b, sync, &werr);
        mn_engine_timed(&e->h_write, t0, rc);
        if (rc) {
            mn_log_error("store write failed, refusing further writes: %s", werr.message);
            e->failed = true;
            for (size_t i = 0; i < n; i++)
                if (ps[i]->has_entry) {
                    ps[i]->rc = rc;
                    ps[i]->err = werr;
                    ps[i]->has_entry = false;
                }
        } else {
            atomic_fetch_add(&e->n_commits, 1);
            if (sync) atomic_fetch_add(&e->n_synced, 1);
            atomic_fetch_add(&e->n_entries, entries);
            if (entries > atomic_load(&e->max_group)) atomic_store(&e->max_group, entries);
            mn_histogram_observe(&e->h_group, entries);
            if (sync) mn_histogram_observe(&e->h_group_synced, entries);
        }
    }
    for (size_t i = 0; i < n; i++) {
        mn_pending *p = ps[i];
        if (p->entry.type == MN_WAL_OP_SPACE_CREATE) {
            if (p->has_entry) {
                p->sp->last_lsn = p->entry.lsn;
                p->sp->first_lsn = p->entry.lsn;
                if (map_insert(e, p->sp)) {
                    p->rc = mn_error_set(&p->err, MN_ERR_NOMEM, "out of memory");
                    mn_space_free(p->sp);
                }
            } else if (p->sp) {
                mn_space_free(p->sp);
                e->next_sid--; /* nothing was written with it */
            }
            p->sp = NULL;
        } else if (p->has_entry) {
            mn_apply_memory(e, p);
            if (p->entry.type == MN_WAL_OP_SPACE_DROP) {
                map_remove(e, p->sp);
                mn_engine_space_release(e, p->sp); /* the map's reference */
            }
        } else if (p->sp && p->rc && e->failed) {
            p->sp->assigned_lsn = p->sp->last_lsn;
            p->sp->drop_staged = false;
        }
    }
    rocksdb_writebatch_wi_clear(b);
}

static int id_order(const void *a, const void *b)
{
    return mn_id_cmp(a, b);
}

/* The re-derivation of space sp's semantic memories that ps[0..n) noted, as a
 * pending consolidate entry staged into b; *out NULL when nothing changed. */
static mn_err stage_rederive(mn_engine *e, mn_space *sp, mn_pending **ps, size_t n,
                             rocksdb_writebatch_wi_t *b, bool *group_sync, mn_pending **out,
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
    mn_err rc = mn_consolidate_rederive(e, sp, b, ids, u, mn_engine_now(e), &mems, &nm, err);
    free(ids);
    if (rc || !nm) {
        free(mems);
        return rc;
    }
    mn_pending *d = calloc(1, sizeof *d);
    if (!d) {
        for (size_t i = 0; i < nm; i++)
            mn_memory_clear(&mems[i]);
        free(mems);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    d->derived = true;
    d->entry.type = MN_WAL_OP_CONSOLIDATE;
    snprintf(d->entry.space, sizeof d->entry.space, "%s", sp->def.name);
    d->entry.op.consolidate.mems = mems;
    d->entry.op.consolidate.n = nm;
    d->sp = sp;
    d->sync = sync;
    stage(e, d, b, group_sync);
    *out = d;
    if (d->rc && err) *err = d->err;
    return d->rc;
}

static void free_pending_results(mn_pending *p)
{
    free(p->compact);
    if (!p->keep_accepted) free(p->accepted);
    for (size_t j = 0; p->kw && j < p->n_kw; j++)
        free(p->kw[j].buf);
    free(p->kw);
    free(p->rederive);
    p->compact = NULL;
    if (!p->keep_accepted) p->accepted = NULL;
    p->kw = NULL;
    p->rederive = NULL;
    p->n_rederive = p->cap_rederive = 0;
}

static void free_derived(mn_pending *d)
{
    free_pending_results(d);
    for (size_t i = 0; i < d->entry.op.consolidate.n; i++)
        mn_memory_clear(&d->entry.op.consolidate.mems[i]);
    free(d->entry.op.consolidate.mems);
    free(d);
}

/* Every op of the group fails with err and nothing is written (the batch is
 * cleared by flush_group, which finds no entry). */
static void fail_group(mn_pending **ps, size_t n, const mn_error *err)
{
    for (size_t i = 0; i < n; i++) {
        mn_pending *p = ps[i];
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
static void stage_rederivations(mn_engine *e, mn_pending ***ps, size_t *n, size_t *cap,
                                rocksdb_writebatch_wi_t *b, bool *group_sync)
{
    size_t n0 = *n;
    mn_error err = {0};
    mn_err rc = MN_OK;
    mn_space **done = NULL; /* spaces re-derived already (a group touches few) */
    size_t n_done = 0;
    for (size_t i = 0; i < n0 && !rc; i++) {
        mn_pending *p = (*ps)[i];
        if (!p->has_entry || !p->n_rederive) continue;
        bool seen = false;
        for (size_t j = 0; j < n_done && !seen; j++)
            seen = done[j] == p->sp;
        if (seen || atomic_load(&p->sp->dropped) || p->sp->drop_staged) continue;
        mn_space **nd = realloc(done, (n_done + 1) * sizeof *nd);
        if (!nd) {
            rc = mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
            break;
        }
        done = nd;
        done[n_done++] = p->sp;
        mn_pending *d = NULL;
        rc = stage_rederive(e, p->sp, *ps, n0, b, group_sync, &d, &err);
        if (!d) continue;
        if (*n == *cap) {
            size_t nc = *cap * 2;
            mn_pending **np = realloc(*ps, nc * sizeof *np);
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

static void *commit_main(void *arg)
{
    mn_engine *e = arg;
    rocksdb_writebatch_wi_t *b = rocksdb_writebatch_wi_create(1 << 16, 1);
    size_t cap = 64;
    mn_pending **ps = malloc(cap * sizeof *ps);
    for (;;) {
        pthread_mutex_lock(&e->q_mu);
        while ((!e->q_head || e->q_hold) && !e->stopping)
            pthread_cond_wait(&e->q_cv, &e->q_mu);
        if (!e->q_head && e->stopping) {
            pthread_mutex_unlock(&e->q_mu);
            break;
        }
        mn_pending *list = e->q_head;
        e->q_head = e->q_tail = NULL;
        e->q_len = 0;
        pthread_mutex_unlock(&e->q_mu);

        size_t n = 0;
        bool group_sync = false;
        for (mn_pending *p = list; p; p = p->next) {
            if (n == cap) {
                cap *= 2;
                mn_pending **np = realloc(ps, cap * sizeof *ps);
                if (!np) abort(); /* cannot even track waiters */
                ps = np;
            }
            ps[n++] = p;
            if (e->failed) {
                p->rc = mn_error_set(&p->err, MN_ERR_IO, "engine is read-only after a write failure");
                continue;
            }
            stage(e, p, b, &group_sync);
        }
        stage_rederivations(e, &ps, &n, &cap, b, &group_sync);
        flush_group(e, ps, n, b, group_sync);
        /* nobody waits for the derived ops (the others may be gone once done) */
        size_t waited = 0;
        for (size_t i = 0; i < n; i++)
            if (ps[i]->derived)
                free_derived(ps[i]);
            else
                ps[waited++] = ps[i];

        pthread_mutex_lock(&e->q_mu);
        for (size_t i = 0; i < waited; i++)
            ps[i]->done = true;
        pthread_cond_broadcast(&e->done_cv);
        pthread_mutex_unlock(&e->q_mu);
    }
    free(ps);
    rocksdb_writebatch_wi_destroy(b);
    return NULL;
}

void mn_commit_submit_many(mn_engine *e, mn_pending **ps, size_t n)
{
    pthread_mutex_lock(&e->q_mu);
    for (size_t i = 0; i < n; i++) {
        mn_pending *p = ps[i];
        p->next = NULL;
        p->done = false;
        if (e->stopping) {
            p->rc = mn_error_set(&p->err, MN_ERR_CLOSED, "engine is shutting down");
            p->done = true;
            continue;
        }
        if (e->q_tail) e->q_tail->next = p;
        else e->q_head = p;
        e->q_tail = p;
        e->q_len++;
    }
    pthread_cond_signal(&e->q_cv);
    for (size_t i = 0; i < n; i++)
        while (!ps[i]->done) pthread_cond_wait(&e->done_cv, &e->q_mu);
    pthread_mutex_unlock(&e->q_mu);
    for (size_t i = 0; i < n; i++)
        free_pending_results(ps[i]);
}

mn_err mn_commit_submit(mn_engine *e, mn_pending *p)
{
    mn_commit_submit_many(e, &p, 1);
    return p->rc;
}

void mn_commit_hold(mn_engine *e, bool hold)
{
    pthread_mutex_lock(&e->q_mu);
    e->q_hold = hold;
    pthread_cond_signal(&e->q_cv);
    pthread_mutex_unlock(&e->q_mu);
}

size_t mn_commit_queued(mn_engine *e)
{
    pthread_mutex_lock(&e->q_mu);
    size_t n = e->q_len;
    pthread_mutex_unlock(&e->q_mu);
    return n;
}

mn_err mn_commit_start(mn_engine *e, mn_error *err)
{
    pthread_mutex_init(&e->q_mu, NULL);
    pthread_cond_init(&e->q_cv, NULL);
    pthread_cond_init(&e->done_cv, NULL);
    if (pthread_create(&e->committer, NULL, commit_main, e))
        return mn_error_set(err, MN_ERR_IO, "cannot start the commit thread");
    return MN_OK;
}

void mn_commit_stop(mn_engine *e)
{
    pthread_mutex_lock(&e->q_mu);
    e->stopping = true;
    pthread_cond_signal(&e->q_cv);
    pthread_mutex_unlock(&e->q_mu);
    pthread_join(e->committer, NULL);
    pthread_cond_destroy(&e->q_cv);
    pthread_cond_destroy(&e->done_cv);
    pthread_mutex_destroy(&e->q_mu);
}
