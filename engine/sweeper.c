/* The expiry sweeper: a thread that wakes every engine.expiry_interval_ms and
 *  - forgets the memories whose TTL ran out (through the ordinary forget
 *    path, one commit group per space, without fsync: expiry is re-derived
 *    from expires_at if a crash loses it);
 *  - trims each space's WAL to its newest engine.wal_retain_entries;
 *  - prunes the as-of index of entries older than any as-of read may look
 *    (engine.as_of_max_age).
 * mn_engine_expire and mn_engine_trim_wal are public: tests and tools run a
 * sweep themselves with the thread off. */
#include "sweeper.h"

#include "commit.h"
#include "engine_internal.h"
#include "replica.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* At most this many memories of a space expire in one sweep (one group). */
#define EXPIRE_BATCH_MAX 10000
/* At most this many as-of index entries of a space are pruned in one sweep. */
#define PRUNE_BATCH_MAX 10000

struct mn__sweeper {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop; /* guarded by mu */
};

/* Forgets expired ids of sp through the ordinary forget path, as one group. */
static mn_err forget_expired(mn_engine_t *e, mn__space *sp, const mn_id_t *ids, size_t n)
{
    mn__pending *ps = calloc(n, sizeof *ps);
    mn__pending **pp = calloc(n, sizeof *pp);
    mn_err rc = MN_OK;
    if (!ps || !pp) {
        rc = MN_ERR_NOMEM;
        goto out;
    }
    int64_t now_ms = mn__now(e);
    for (size_t i = 0; i < n; i++) {
        mn__pending *p = &ps[i];
        mn__pending_init(p, MN_WAL_OP_FORGET, sp, false);
        p->entry.op.forget.id = ids[i];
        p->entry.op.forget.mode = MN_FORGET_DELETE;
        p->entry.op.forget.reason = MN_FORGET_REASON_EXPIRED;
        p->entry.op.forget.at_ms = now_ms;
        pp[i] = p;
    }
    mn__commit_submit_many(e, pp, n);
    for (size_t i = 0; i < n; i++)
        if (ps[i].rc && ps[i].rc != MN_ERR_GONE && ps[i].rc != MN_ERR_NOT_FOUND) rc = ps[i].rc;
out:
    free(ps);
    free(pp);
    return rc;
}

/* The ids of sp's live memories expired by now_ms (at most EXPIRE_BATCH_MAX;
 * fewer when out of memory). *ids is malloc'd. */
static size_t collect_expired(mn__space *sp, int64_t now_ms, mn_id_t **ids)
{
    size_t n = 0, cap = 0;
    *ids = NULL;
    pthread_rwlock_rdlock(&sp->lock);
    for (uint32_t i = 0; i < sp->n_slots && n < EXPIRE_BATCH_MAX; i++) {
        const mn__slot *sl = &sp->slots[i];
        if (sl->state != SLOT_LIVE || !sl->expires_at_ms || sl->expires_at_ms > now_ms) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            mn_id_t *grown = realloc(*ids, cap * sizeof **ids);
            if (!grown) break;
            *ids = grown;
        }
        (*ids)[n++] = sl->id;
    }
    pthread_rwlock_unlock(&sp->lock);
    return n;
}

mn_err mn_engine_expire(mn_engine_t *e, size_t *expired, mn_error *err)
{
    *expired = 0;
    size_t ns;
    mn__space **spaces = mn__registry_acquire_all(&e->reg, &ns);
    if (!spaces) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    int64_t now_ms = mn__now(e);
    mn_err rc = MN_OK;
    for (size_t s = 0; s < ns; s++) {
        mn__space *sp = spaces[s];
        if (mn__space_is_replica(sp)) continue; /* its primary expires, and ships the forgets */
        mn_id_t *ids;
        size_t n = collect_expired(sp, now_ms, &ids);
        if (n) {
            mn_err r = forget_expired(e, sp, ids, n);
            if (r)
                rc = mn_error_set(err, r, "expiring in space %s failed", sp->def.name);
            else
                *expired += n;
        }
        free(ids);
    }
    mn__registry_release_all(spaces, ns);
    return rc;
}

/* Deletes each space's WAL entries older than the newest wal_retain_entries,
 * with one range delete per space. Replicas that fall further behind than the
 * retained window will need a snapshot (cluster mode). */
mn_err mn_engine_trim_wal(mn_engine_t *e, mn_error *err)
{
    uint64_t keep = e->opts.wal_retain_entries;
    if (!keep) return MN_OK;
    size_t ns;
    mn__space **spaces = mn__registry_acquire_all(&e->reg, &ns);
    if (!spaces) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    mn_err rc = MN_OK;
    for (size_t i = 0; i < ns && !rc; i++) {
        mn__space *sp = spaces[i];
        uint64_t last = __atomic_load_n(&sp->last_lsn, __ATOMIC_ACQUIRE);
        if (last <= keep || sp->first_lsn > last - keep) continue;
        uint64_t upto = last - keep + 1; /* exclusive */
        uint8_t lo[KEY_WAL_LEN], hi[KEY_WAL_LEN];
        mn__key_wal(lo, sp->sid, sp->first_lsn);
        mn__key_wal(hi, sp->sid, upto);
        char *msg = NULL;
        rocksdb_delete_range_cf(e->store.db, e->store.wnosync, e->store.cf[CF_WAL],
                                (const char *)lo, sizeof lo, (const char *)hi, sizeof hi, &msg);
        if (msg) {
            rc = mn_error_set(err, MN_ERR_IO, "space %s: %s", sp->def.name, msg);
            free(msg);
        } else {
            sp->first_lsn = upto;
        }
    }
    mn__registry_release_all(spaces, ns);
    return rc;
}

/* Deletes sp's as-of index entries gone at or before cutoff_ms: no as-of read
 * can reach them. */
static mn_err prune_space(mn_engine_t *e, mn__space *sp, int64_t cutoff_ms, mn_error *err)
{
    uint8_t lo[KEY_SID_LEN + 1], hi[KEY_TIME_LEN];
    mn_put_be32(lo, sp->sid);
    lo[KEY_SID_LEN] = 'G';
    mn__key_gone_by_time(hi, sp->sid, cutoff_ms, &(mn_id_t){0});
    memset(hi + KEY_SID_LEN + 9, 0xff, 16);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, sizeof hi);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(e->store.db, ro, e->store.cf[CF_INDEX]);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    size_t n = 0;
    for (rocksdb_iter_seek(it, (const char *)lo, sizeof lo);
         rocksdb_iter_valid(it) && n < PRUNE_BATCH_MAX; rocksdb_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
        if (kl != KEY_TIME_LEN) continue;
        rocksdb_writebatch_delete_cf(b, e->store.cf[CF_INDEX], (const char *)k, kl);
        if (vl == 8) { /* and the entry in when order */
            mn_id_t id;
            memcpy(id.b, k + KEY_SID_LEN + 9, 16);
            uint8_t gk[KEY_TIME_LEN];
            mn__key_gone(gk, sp->sid, (int64_t)mn_get_be64(v), &id);
            rocksdb_writebatch_delete_cf(b, e->store.cf[CF_INDEX], (const char *)gk, sizeof gk);
        }
        n++;
    }
    mn_err rc = mn__store_iter_status(it, "index", err); /* stopped at a bad block? */
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (!rc && n && !atomic_load(&sp->dropped))
        rc = mn__store_write_batch(&e->store, b, false, err);
    rocksdb_writebatch_destroy(b);
    return rc;
}

mn_err mn__prune_gone(mn_engine_t *e, mn_error *err)
{
    int64_t cutoff_ms = mn__now(e) - e->opts.as_of_max_age_ms;
    size_t ns;
    mn__space **spaces = mn__registry_acquire_all(&e->reg, &ns);
    if (!spaces) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    mn_err rc = MN_OK;
    for (size_t s = 0; s < ns; s++) {
        mn_err r = prune_space(e, spaces[s], cutoff_ms, err);
        if (r) rc = r;
    }
    mn__registry_release_all(spaces, ns);
    return rc;
}

/* One sweep: expiry, WAL trimming, as-of pruning; failures are logged. */
static void sweep(mn_engine_t *e)
{
    size_t n = 0;
    mn_error err = {0};
    if (mn_engine_expire(e, &n, &err))
        mn_log_warn("expiry sweep failed: %s", err.message);
    else if (n)
        mn_log_debug("expired %zu memories", n);
    if (mn_engine_trim_wal(e, &err)) mn_log_warn("wal trim failed: %s", err.message);
    if (mn__prune_gone(e, &err)) mn_log_warn("as-of index pruning failed: %s", err.message);
}

static void *sweeper_main(void *arg)
{
    mn_engine_t *e = arg;
    struct mn__sweeper *s = e->sweeper;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        mn__cond_wait_until(&s->cv, &s->mu, mn__mono_ms() + e->opts.expiry_interval_ms);
        if (s->stop) break;
        pthread_mutex_unlock(&s->mu);
        sweep(e);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void sweeper_free(struct mn__sweeper *s)
{
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

void mn__sweeper_start(mn_engine_t *e)
{
    if (e->opts.expiry_interval_ms <= 0) return;
    struct mn__sweeper *s = calloc(1, sizeof *s);
    if (!s) return;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    e->sweeper = s;
    if (pthread_create(&s->thread, NULL, sweeper_main, e)) {
        e->sweeper = NULL;
        sweeper_free(s);
    }
}

void mn__sweeper_stop(mn_engine_t *e)
{
    struct mn__sweeper *s = e->sweeper;
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    e->sweeper = NULL;
    sweeper_free(s);
}
