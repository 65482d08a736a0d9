/* Engine lifecycle and the write-side public API: spaces, remember, forget,
 * get. Writes are validated on the caller's thread, then handed to the commit
 * thread (commit.c) as WAL ops; reads take a space's read lock or go to the
 * store directly. */
#include "engine_internal.h"
#include "space_index.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void mn_engine_options_default(mn_engine_options *o)
{
    memset(o, 0, sizeof *o);
    o->data_dir = "./data";
    o->block_cache_bytes = 256u << 20;
    o->write_buffer_bytes = 64u << 20;
    o->sync = true;
    o->ephemeral_ttl_s = 3600;
    o->session_ttl_s = 86400;
    o->expiry_interval_ms = 1000;
    o->default_lifecycle = MN_LIFECYCLE_PERSISTENT;
    o->wal_retain_entries = 100000;
    o->link_threshold = 0.8f;
    o->link_max = 5;
    o->temporal_window_ms = 3600 * 1000;
    o->initial_stability_days = 7.0f;
    o->as_of_max_age_ms = 30LL * 86400 * 1000;
    o->consolidate_interval_ms = 3600LL * 1000;
    o->hnsw_save_interval_ms = 60LL * 1000;
}

mn_err mn_engine_check_as_of(const mn_engine *e, const mn_filter_t *f, int64_t now, mn_error *err)
{
    if (f->as_of_ms == MN_TIME_UNSET) return MN_OK;
    if (f->as_of_ms > now) return mn_error_set(err, MN_ERR_INVALID, "as_of: in the future");
    if (now - f->as_of_ms > e->opts.as_of_max_age_ms)
        return mn_error_set(
            err, MN_ERR_INVALID,
            "as_of: older than the %lld s this server keeps (engine.as_of_max_age_s)",
            (long long)(e->opts.as_of_max_age_ms / 1000));
    return MN_OK;
}

int64_t mn_engine_now(const mn_engine *e)
{
    return e->opts.clock ? e->opts.clock(e->opts.clock_arg) : mn_time_now_ms();
}

mn_space *mn_engine_space_acquire(mn_engine *e, const char *name)
{
    mn_space *found = NULL;
    pthread_rwlock_rdlock(&e->spaces_lock);
    size_t lo = 0, hi = e->n_spaces;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(e->spaces[mid]->def.name, name);
        if (c == 0) {
            found = e->spaces[mid];
            atomic_fetch_add(&found->refs, 1);
            break;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    pthread_rwlock_unlock(&e->spaces_lock);
    return found;
}

void mn_engine_space_release(mn_engine *e, mn_space *sp)
{
    (void)e;
    if (sp && atomic_fetch_sub(&sp->refs, 1) == 1) mn_space_free(sp);
}

static mn_space *acquire_or_err(mn_engine *e, const char *name, mn_error *err)
{
    mn_space *sp = name ? mn_engine_space_acquire(e, name) : NULL;
    if (!sp) mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", name ? name : "");
    return sp;
}

static mn_err mkdirs(const char *path, mn_error *err)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return mn_error_set(err, MN_ERR_INVALID, "data_dir: empty or too long");
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) && errno != EEXIST)
            return mn_error_set(err, MN_ERR_IO, "mkdir %s: %s", buf, strerror(errno));
        buf[i] = c;
    }
    return MN_OK;
}

static void *sweeper_main(void *arg);

mn_err mn_engine_open(const mn_engine_options *o, mn_engine_t **out, mn_error *err)
{
    *out = NULL;
    mn_engine *e = calloc(1, sizeof *e);
    if (!e) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    e->opts = *o;
    mn_engine_metrics_init(e);
    if (!e->opts.default_lifecycle) e->opts.default_lifecycle = MN_LIFECYCLE_PERSISTENT;
    if (!(e->opts.initial_stability_days > 0)) e->opts.initial_stability_days = 7.0f;
    e->data_dir = strdup(o->data_dir ? o->data_dir : "./data");
    e->opts.data_dir = e->data_dir;
    mn_err rc = mkdirs(e->data_dir, err);
    if (rc) {
        free(e->data_dir);
        free(e);
        return rc;
    }
    if ((rc = mn_store_open(&e->store, &e->opts, err))) {
        free(e->data_dir);
        free(e);
        return rc;
    }
    mn_idgen_init(&e->idgen, mn_random_seed());
    mn_hlc_init(&e->hlc);
    pthread_rwlock_init(&e->spaces_lock, NULL);
    pthread_mutex_init(&e->sw_mu, NULL);
    pthread_cond_init(&e->sw_cv, NULL);
    mn_events_init(e);
    e->next_sid = 1;
    bool committing = false;
    if (!(rc = mn_engine_load(e, err)) && !(rc = mn_commit_start(e, err))) {
        committing = true;
        if (!(rc = mn_indexer_start(e, err))) rc = mn_linker_start(e, err);
    }
    if (rc) {
        mn_indexer_stop(e);
        if (committing) mn_commit_stop(e);
        for (size_t i = 0; i < e->n_spaces; i++)
            mn_space_free(e->spaces[i]);
        free(e->spaces);
        mn_store_close(&e->store);
        mn_idgen_destroy(&e->idgen);
        mn_hlc_destroy(&e->hlc);
        free(e->data_dir);
        free(e);
        return rc;
    }
    if (e->opts.expiry_interval_ms > 0 && !pthread_create(&e->sweeper, NULL, sweeper_main, e))
        e->sweeper_running = true;
    *out = e;
    return MN_OK;
}

void mn_engine_close(mn_engine_t *e)
{
    if (!e) return;
    mn_events_close(e);
    if (e->sweeper_running) {
        pthread_mutex_lock(&e->sw_mu);
        e->sw_stop = true;
        pthread_cond_signal(&e->sw_cv);
        pthread_mutex_unlock(&e->sw_mu);
        pthread_join(e->sweeper, NULL);
    }
    mn_linker_stop(e);
    mn_commit_stop(e);
    mn_indexer_stop(e);         /* finishes the queued index work */
    mn_space_index_save_all(e); /* writers stopped: graphs at each space's last lsn */
    for (size_t i = 0; i < e->n_spaces; i++)
        mn_engine_space_release(e, e->spaces[i]);
    free(e->spaces);
    mn_store_close(&e->store);
    mn_idgen_destroy(&e->idgen);
    mn_hlc_destroy(&e->hlc);
    pthread_rwlock_destroy(&e->spaces_lock);
    pthread_mutex_destroy(&e->sw_mu);
    pthread_cond_destroy(&e->sw_cv);
    pthread_mutex_destroy(&e->ev_mu);
    free(e->data_dir);
    free(e);
}

/* ---- spaces ---- */

mn_err mn_engine_space_create(mn_engine_t *e, const mn_space_def *def, mn_space_def *out,
                              mn_error *err)
{
    if (!mn_space_name_valid(def->name))
        return mn_error_set(err, MN_ERR_INVALID,
                            "name: must match [a-z0-9][a-z0-9_-]{0,63}, got \"%.80s\"", def->name);
    if (def->dim < 1 || def->dim > MN_DIM_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "dim: must be in 1..%d, got %u", MN_DIM_MAX,
                            def->dim);
    if (def->metric > MN_METRIC_DOT) return mn_error_set(err, MN_ERR_INVALID, "metric: unknown");
    if (def->default_lifecycle > MN_LIFECYCLE_PERSISTENT)
        return mn_error_set(err, MN_ERR_INVALID, "default_lifecycle: unknown class");
    mn_index_def ix = def->index;
    mn_space_index_defaults(e, &ix);
    mn_err rc = mn_space_index_check(&ix, err);
    if (rc) return rc;
    mn_pending p = {0};
    p.entry.type = MN_WAL_OP_SPACE_CREATE;
    snprintf(p.entry.space, sizeof p.entry.space, "%s", def->name);
    mn_space_def *d = &p.entry.op.space_create.def;
    *d = *def;
    if (!d->default_lifecycle) d->default_lifecycle = e->opts.default_lifecycle;
    d->index = ix;
    d->created_at_ms = mn_engine_now(e);
    p.sync = true;
    rc = mn_commit_submit(e, &p);
    if (rc) {
        if (err) *err = p.err;
        return rc;
    }
    if (out) *out = *d;
    return MN_OK;
}

static void fill_stats(mn_engine *e, mn_space *sp, mn_space_stats *out)
{
    pthread_rwlock_rdlock(&sp->lock);
    out->def = sp->def;
    out->memories = sp->n_live;
    out->episodic = sp->n_episodic;
    out->semantic = sp->n_semantic;
    out->suppressed = sp->n_suppressed;
    out->tombstones = sp->n_tombstones;
    out->epoch = sp->epoch;
    out->last_lsn = sp->last_lsn;
    out->wal_first_lsn = sp->first_lsn;
    out->vector_bytes = (uint64_t)sp->cap * sp->def.dim * sizeof(float);
    mn_space_index_stats(e, sp, out);
    pthread_rwlock_unlock(&sp->lock);
}

mn_err mn_engine_space_get(mn_engine_t *e, const char *name, mn_space_stats *out, mn_error *err)
{
    mn_space *sp = acquire_or_err(e, name, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    fill_stats(e, sp, out);
    mn_engine_space_release(e, sp);
    return MN_OK;
}

mn_err mn_engine_space_list(mn_engine_t *e, mn_space_def **out, size_t *n, mn_error *err)
{
    pthread_rwlock_rdlock(&e->spaces_lock);
    *n = e->n_spaces;
    *out = malloc((e->n_spaces ? e->n_spaces : 1) * sizeof **out);
    if (!*out) {
        pthread_rwlock_unlock(&e->spaces_lock);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < e->n_spaces; i++)
        (*out)[i] = e->spaces[i]->def;
    pthread_rwlock_unlock(&e->spaces_lock);
    return MN_OK;
}

mn_err mn_engine_space_drop(mn_engine_t *e, const char *name, mn_error *err)
{
    mn_space *sp = acquire_or_err(e, name, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    mn_pending p = {0};
    p.entry.type = MN_WAL_OP_SPACE_DROP;
    snprintf(p.entry.space, sizeof p.entry.space, "%s", sp->def.name);
    p.entry.op.space_drop.at_ms = mn_engine_now(e);
    p.sp = sp;
    p.sync = true;
    mn_err rc = mn_commit_submit(e, &p);
    if (rc && err) *err = p.err;
    mn_engine_space_release(e, sp);
    return rc;
}

/* ---- memories ---- */

static int64_t ttl_for(const mn_engine *e, mn_lifecycle l)
{
    switch (l) {
    case MN_LIFECYCLE_EPHEMERAL:
        return e->opts.ephemeral_ttl_s;
    case MN_LIFECYCLE_SESSION:
        return e->opts.session_ttl_s;
    default:
        return 0;
    }
}

static mn_err remember(mn_engine_t *e, const char *space, const mn_memory_t *mems, size_t n,
                       mn_id_t *ids_out, mn_error *err)
{
    if (n == 0) return mn_error_set(err, MN_ERR_INVALID, "memories: empty batch");
    if (n > MN_BATCH_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "memories: %zu in one batch, the limit is %d", n,
                            MN_BATCH_MAX);
    mn_space *sp = acquire_or_err(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    mn_err rc = MN_OK;
    for (size_t i = 0; i < n; i++)
        if ((rc = mn_validate_memory(sp, &mems[i], n > 1 ? i : SIZE_MAX, err))) {
            mn_engine_space_release(e, sp);
            return rc;
        }
    mn_memory_t *copy = malloc(n * sizeof *copy);
    if (!copy) {
        mn_engine_space_release(e, sp);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    int64_t now = mn_engine_now(e);
    bool sync = false;
    for (size_t i = 0; i < n; i++) {
        mn_memory_t *m = &copy[i];
        *m = mems[i]; /* shallow: the strings stay the caller's */
        m->id = mn_idgen_next(&e->idgen, now);
        m->created_at_ms = now;
        if (m->when_ms == MN_TIME_UNSET) m->when_ms = now;
        if (!m->lifecycle) m->lifecycle = sp->def.default_lifecycle;
        if (!m->lifecycle) m->lifecycle = MN_LIFECYCLE_PERSISTENT;
        int64_t ttl = m->ttl_seconds >= 0 ? m->ttl_seconds : ttl_for(e, m->lifecycle);
        m->expires_at_ms = ttl > 0 ? now + ttl * 1000 : 0;
        m->suppressed = false;
        /* Ephemeral memories are written without fsync (documented: a crash of
         * the machine may lose them); everything else waits for durability. */
        if (m->lifecycle != MN_LIFECYCLE_EPHEMERAL) sync = true;
    }
    /* Temporal links are chosen here, off the commit thread, and travel in the
     * entry; semantic links are made afterwards by the linker (linker.c). */
    mn_edge *edges = NULL;
    size_t n_edges = 0, cap_edges = 0;
    pthread_rwlock_rdlock(&sp->lock);
    for (size_t i = 0; i < n && !rc; i++)
        rc = mn_space_autolink(sp, &copy[i], copy, i, NULL, 0, 0, 0, e->opts.temporal_window_ms,
                               now, &edges, &n_edges, &cap_edges);
    pthread_rwlock_unlock(&sp->lock);
    if (rc) {
        free(edges);
        free(copy);
        mn_engine_space_release(e, sp);
        return mn_error_set(err, rc, "out of memory linking memories");
    }
    mn_pending p = {0};
    p.entry.type = MN_WAL_OP_REMEMBER;
    snprintf(p.entry.space, sizeof p.entry.space, "%s", sp->def.name);
    p.entry.op.remember.mems = copy;
    p.entry.op.remember.n = n;
    p.entry.op.remember.edges = edges;
    p.entry.op.remember.n_edges = n_edges;
    p.sp = sp;
    p.sync = sync;
    p.ids_out = ids_out;
    rc = mn_commit_submit(e, &p);
    if (rc && err) *err = p.err;
    if (!rc && e->opts.link_max) {
        /* new memories with a vector: those whose id is the one generated here
         * (a retried idempotency key reports an older id) */
        mn_id_t *new_ids = malloc(n * sizeof *new_ids);
        size_t m = 0;
        for (size_t i = 0; new_ids && i < n; i++)
            if (copy[i].embedding && !mn_id_cmp(&ids_out[i], &copy[i].id))
                new_ids[m++] = copy[i].id;
        if (new_ids) mn_linker_enqueue(e, sp, new_ids, m);
        free(new_ids);
    }
    free(edges);
    free(copy);
    mn_engine_space_release(e, sp);
    return rc;
}

mn_err mn_engine_remember(mn_engine_t *e, const char *space, const mn_memory_t *mems, size_t n,
                          mn_id_t *ids_out, mn_error *err)
{
    int64_t t0 = mn_time_mono_ns();
    return mn_engine_timed(&e->h_remember, t0, remember(e, space, mems, n, ids_out, err));
}

static mn_err submit_id_op(mn_engine_t *e, const char *space, mn_wal_op_type type,
                           const mn_id_t *id, int mode, int reason, mn_error *err)
{
    mn_space *sp = acquire_or_err(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    mn_pending p = {0};
    p.entry.type = type;
    snprintf(p.entry.space, sizeof p.entry.space, "%s", sp->def.name);
    if (type == MN_WAL_OP_FORGET) {
        p.entry.op.forget.id = *id;
        p.entry.op.forget.mode = mode;
        p.entry.op.forget.reason = reason;
        p.entry.op.forget.at_ms = mn_engine_now(e);
    } else {
        p.entry.op.unsuppress.id = *id;
        p.entry.op.unsuppress.at_ms = mn_engine_now(e);
    }
    p.sp = sp;
    p.sync = true;
    mn_err rc = mn_commit_submit(e, &p);
    if (rc && err) *err = p.err;
    mn_engine_space_release(e, sp);
    return rc;
}

mn_err mn_engine_forget(mn_engine_t *e, const char *space, const mn_id_t *id, mn_forget_mode mode,
                        mn_error *err)
{
    if (mode != MN_FORGET_DELETE && mode != MN_FORGET_SUPPRESS)
        return mn_error_set(err, MN_ERR_INVALID, "mode: must be delete or suppress");
    return submit_id_op(e, space, MN_WAL_OP_FORGET, id, mode, MN_FORGET_REASON_CLIENT, err);
}

mn_err mn_engine_associate(mn_engine_t *e, const char *space, const mn_edge *edges, size_t n,
                           mn_error *err)
{
    if (n == 0) return mn_error_set(err, MN_ERR_INVALID, "edges: empty");
    if (n > MN_BATCH_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "edges: %zu in one request, the limit is %d", n,
                            MN_BATCH_MAX);
    for (size_t i = 0; i < n; i++) {
        if (edges[i].kind != MN_EDGE_CAUSAL && edges[i].kind != MN_EDGE_EXPLICIT)
            return mn_error_set(err, MN_ERR_INVALID, "edges[%zu].kind: must be causal or explicit",
                                i);
        if (!(edges[i].weight > 0 && edges[i].weight <= 1))
            return mn_error_set(err, MN_ERR_INVALID, "edges[%zu].weight: must be in (0, 1]", i);
        if (!mn_id_cmp(&edges[i].from, &edges[i].to))
            return mn_error_set(err, MN_ERR_INVALID, "edges[%zu]: a memory cannot link to itself",
                                i);
    }
    mn_space *sp = acquire_or_err(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    mn_pending p = {0};
    p.entry.type = MN_WAL_OP_ASSOCIATE;
    snprintf(p.entry.space, sizeof p.entry.space, "%s", sp->def.name);
    p.entry.op.associate.edges = (mn_edge *)edges;
    p.entry.op.associate.n = n;
    p.sp = sp;
    p.sync = true;
    mn_err rc = mn_commit_submit(e, &p);
    if (rc && err) *err = p.err;
    mn_engine_space_release(e, sp);
    return rc;
}

mn_err mn_engine_associations(mn_engine_t *e, const char *space, const mn_id_t *id, mn_assoc **out,
                              size_t *n, mn_error *err)
{
    *out = NULL;
    *n = 0;
    mn_space *sp = acquire_or_err(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    mn_err rc = MN_OK;
    pthread_rwlock_rdlock(&sp->lock);
    uint32_t slot = mn_space_find(sp, id);
    if (slot == UINT32_MAX) {
        rc = mn_error_set(err, MN_ERR_NOT_FOUND, "memory not found");
    } else {
        const mn_slot *s = &sp->slots[slot];
        *out = malloc((s->n_adj ? s->n_adj : 1) * sizeof **out);
        if (!*out) {
            rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        } else {
            for (uint32_t i = 0; i < s->n_adj; i++)
                (*out)[i] =
                    (mn_assoc){s->adj[i].other, s->adj[i].kind, s->adj[i].out, s->adj[i].weight};
            *n = s->n_adj;
        }
    }
    pthread_rwlock_unlock(&sp->lock);
    mn_engine_space_release(e, sp);
    return rc;
}

mn_err mn_engine_unsuppress(mn_engine_t *e, const char *space, const mn_id_t *id, mn_error *err)
{
    return submit_id_op(e, space, MN_WAL_OP_UNSUPPRESS, id, 0, 0, err);
}

/* Forgets expired ids through the ordinary forget path, as one group. */
mn_err mn_engine_forget_expired(mn_engine *e, mn_space *sp, const mn_id_t *ids, size_t n)
{
    mn_pending *ps = calloc(n, sizeof *ps);
    mn_pending **pp = calloc(n, sizeof *pp);
    if (!ps || !pp) {
        free(ps);
        free(pp);
        return MN_ERR_NOMEM;
    }
    int64_t now = mn_engine_now(e);
    for (size_t i = 0; i < n; i++) {
        mn_pending *p = &ps[i];
        p->entry.type = MN_WAL_OP_FORGET;
        snprintf(p->entry.space, sizeof p->entry.space, "%s", sp->def.name);
        p->entry.op.forget.id = ids[i];
        p->entry.op.forget.mode = MN_FORGET_DELETE;
        p->entry.op.forget.reason = MN_FORGET_REASON_EXPIRED;
        p->entry.op.forget.at_ms = now;
        p->sp = sp;
        p->sync = false; /* expiry is re-derived from expires_at if lost */
        pp[i] = p;
    }
    mn_commit_submit_many(e, pp, n);
    mn_err rc = MN_OK;
    for (size_t i = 0; i < n; i++)
        if (ps[i].rc && ps[i].rc != MN_ERR_GONE && ps[i].rc != MN_ERR_NOT_FOUND) rc = ps[i].rc;
    free(ps);
    free(pp);
    return rc;
}

mn_err mn_engine_get(mn_engine_t *e, const char *space, const mn_id_t *id, bool with_embedding,
                     mn_memory_t *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    mn_space *sp = acquire_or_err(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    mn_err rc = mn_engine_read_memory(e, sp, id, with_embedding, out, err);
    if (rc == MN_OK && out->expires_at_ms && out->expires_at_ms <= mn_engine_now(e)) {
        mn_memory_clear(out);
        rc = mn_error_set(err, MN_ERR_GONE, "memory expired");
    }
    mn_engine_space_release(e, sp);
    return rc;
}

mn_err mn_engine_read_memory(mn_engine *e, mn_space *sp, const mn_id_t *id, bool with_embedding,
                             mn_memory_t *out, mn_error *err)
{
    uint8_t k[KEY_MEM_LEN];
    mn_key_mem(k, sp->sid, id);
    char *v;
    size_t vl;
    mn_err rc = mn_store_get(&e->store, CF_MEMORIES, k, sizeof k, &v, &vl, err);
    if (rc) return rc;
    if (!v) return mn_error_set(err, MN_ERR_NOT_FOUND, "memory not found");
    mn_memory_record rec;
    rc = mn_wire_memory_decode((const uint8_t *)v, vl, &rec, err);
    free(v);
    if (rc) return rc;
    if (rec.tombstone) {
        mn_memory_clear(&rec.mem);
        return mn_error_set(err, MN_ERR_GONE, "memory was forgotten");
    }
    if (rec.mem.kind == MN_KIND_EPISODIC) {
        uint8_t ck[KEY_CONSOLIDATED_LEN];
        mn_key_consolidated(ck, sp->sid, id);
        rc = mn_store_get(&e->store, CF_INDEX, ck, sizeof ck, &v, &vl, err);
        if (rc) {
            mn_memory_clear(&rec.mem);
            return rc;
        }
        rec.mem.consolidated = v != NULL;
        free(v);
    }
    uint8_t sk[KEY_STRENGTH_LEN];
    mn_key_strength(sk, sp->sid, id);
    rc = mn_store_get(&e->store, CF_INDEX, sk, sizeof sk, &v, &vl, err);
    if (rc) {
        mn_memory_clear(&rec.mem);
        return rc;
    }
    if (v && vl == STRENGTH_VALUE_LEN) {
        memcpy(&rec.mem.stability_days, v, 4);
        memcpy(&rec.mem.last_access_ms, v + 4, 8);
        memcpy(&rec.mem.access_count, v + 12, 4);
    } else {
        rec.mem.stability_days =
            mn_initial_stability(e->opts.initial_stability_days, rec.mem.importance);
        rec.mem.last_access_ms = rec.mem.created_at_ms;
    }
    free(v);
    if (with_embedding) {
        rc = mn_store_get(&e->store, CF_VECTORS, k, sizeof k, &v, &vl, err);
        if (rc) {
            mn_memory_clear(&rec.mem);
            return rc;
        }
        if (v && vl == (size_t)sp->def.dim * sizeof(float)) {
            rec.mem.embedding = (float *)v;
            rec.mem.dim = sp->def.dim;
        } else {
            free(v);
        }
    }
    *out = rec.mem;
    return MN_OK;
}

mn_err mn_engine_checkpoint(mn_engine_t *e, const char *dir, mn_error *err)
{
    if (!dir || !*dir) return mn_error_set(err, MN_ERR_INVALID, "path: required");
    struct stat st;
    if (stat(dir, &st) == 0)
        return mn_error_set(err, MN_ERR_EXISTS, "path: %.200s already exists", dir);
    char *msg = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(e->store.db, &msg);
    if (msg) {
        mn_error_set(err, MN_ERR_IO, "checkpoint: %s", msg);
        free(msg);
        return MN_ERR_IO;
    }
    /* log_size_for_flush = 0: flush memtables so the checkpoint holds no WAL to replay */
    rocksdb_checkpoint_create(cp, dir, 0, &msg);
    rocksdb_checkpoint_object_destroy(cp);
    if (msg) {
        mn_error_set(err, MN_ERR_IO, "checkpoint %.200s: %s", dir, msg);
        free(msg);
        return MN_ERR_IO;
    }
    mn_log_info("checkpoint written to %s", dir);
    return MN_OK;
}

void mn_engine_get_stats(mn_engine_t *e, mn_engine_stats *out)
{
    pthread_rwlock_rdlock(&e->spaces_lock);
    out->spaces = e->n_spaces;
    pthread_rwlock_unlock(&e->spaces_lock);
    out->commits = atomic_load(&e->n_commits);
    out->synced_commits = atomic_load(&e->n_synced);
    out->entries = atomic_load(&e->n_entries);
    out->max_group = atomic_load(&e->max_group);
    out->links = atomic_load(&e->n_links);
    out->links_dropped = atomic_load(&e->n_links_dropped);
    out->reinforced = atomic_load(&e->n_reinforced);
}

/* ---- WAL retention ---- */

/* Deletes each space's WAL entries older than the newest wal_retain_entries,
 * with one range delete per space. Replicas that fall further behind than the
 * retained window will need a snapshot (cluster mode). */
mn_err mn_engine_trim_wal(mn_engine *e, mn_error *err)
{
    uint64_t keep = e->opts.wal_retain_entries;
    if (!keep) return MN_OK;
    pthread_rwlock_rdlock(&e->spaces_lock);
    mn_err rc = MN_OK;
    for (size_t i = 0; i < e->n_spaces && !rc; i++) {
        mn_space *sp = e->spaces[i];
        uint64_t last = __atomic_load_n(&sp->last_lsn, __ATOMIC_ACQUIRE);
        if (last <= keep || sp->first_lsn > last - keep) continue;
        uint64_t upto = last - keep + 1; /* exclusive */
        uint8_t lo[KEY_WAL_LEN], hi[KEY_WAL_LEN];
        mn_key_wal(lo, sp->sid, sp->first_lsn);
        mn_key_wal(hi, sp->sid, upto);
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
    pthread_rwlock_unlock(&e->spaces_lock);
    return rc;
}

/* ---- expiry sweeper ---- */

static void *sweeper_main(void *arg)
{
    mn_engine *e = arg;
    pthread_mutex_lock(&e->sw_mu);
    while (!e->sw_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (e->opts.expiry_interval_ms % 1000) * 1000000LL;
        ts.tv_sec += e->opts.expiry_interval_ms / 1000 + ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        pthread_cond_timedwait(&e->sw_cv, &e->sw_mu, &ts);
        if (e->sw_stop) break;
        pthread_mutex_unlock(&e->sw_mu);
        size_t n = 0;
        mn_error err = {0};
        if (mn_engine_expire(e, &n, &err))
            mn_log_warn("expiry sweep failed: %s", err.message);
        else if (n)
            mn_log_debug("expired %zu memories", n);
        if (mn_engine_trim_wal(e, &err)) mn_log_warn("wal trim failed: %s", err.message);
        if (mn_engine_prune_gone(e, &err))
            mn_log_warn("as-of index pruning failed: %s", err.message);
        pthread_mutex_lock(&e->sw_mu);
    }
    pthread_mutex_unlock(&e->sw_mu);
    return NULL;
}

mn_err mn_engine_expire(mn_engine_t *e, size_t *expired, mn_error *err)
{
    *expired = 0;
    pthread_rwlock_rdlock(&e->spaces_lock);
    size_t ns = e->n_spaces;
    mn_space **spaces = malloc((ns ? ns : 1) * sizeof *spaces);
    if (!spaces) {
        pthread_rwlock_unlock(&e->spaces_lock);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < ns; i++) {
        spaces[i] = e->spaces[i];
        atomic_fetch_add(&spaces[i]->refs, 1);
    }
    pthread_rwlock_unlock(&e->spaces_lock);
    int64_t now = mn_engine_now(e);
    mn_err rc = MN_OK;
    for (size_t s = 0; s < ns; s++) {
        mn_space *sp = spaces[s];
        mn_id_t *ids = NULL;
        size_t n = 0, cap = 0;
        pthread_rwlock_rdlock(&sp->lock);
        for (uint32_t i = 0; i < sp->n_slots && n < 10000; i++) {
            const mn_slot *sl = &sp->slots[i];
            if (sl->state != SLOT_LIVE || !sl->expires_at_ms || sl->expires_at_ms > now) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                mn_id_t *nids = realloc(ids, cap * sizeof *ids);
                if (!nids) break;
                ids = nids;
            }
            ids[n++] = sl->id;
        }
        pthread_rwlock_unlock(&sp->lock);
        if (n) {
            mn_err r = mn_engine_forget_expired(e, sp, ids, n);
            if (r)
                rc = mn_error_set(err, r, "expiring in space %s failed", sp->def.name);
            else
                *expired += n;
        }
        free(ids);
        mn_engine_space_release(e, sp);
    }
    free(spaces);
    return rc;
}
