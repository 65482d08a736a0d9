/* Engine lifecycle and the write-side public API: spaces, remember, forget,
 * get. Writes are validated on the caller's thread, then handed to the commit
 * thread (commit.c) as WAL ops; reads take a space's read lock or go to the
 * store directly. */
#include "acked.h"
#include "assoc.h"
#include "background.h"
#include "commit.h"
#include "damage.h"
#include "dedup.h"
#include "engine_internal.h"
#include "replica.h"
#include "events.h"
#include "indexer.h"
#include "load.h"
#include "metrics.h"
#include "record.h"
#include "space_index.h"
#include "sweeper.h"
#include "test_drop.h"
#include "text/text.h"
#include "validate.h"
#include "versions.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void mn_engine_options_default(mn_engine_options_t *o)
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
    o->max_spaces = MN_ENGINE_MAX_SPACES_DEFAULT;
}

static mn__space *acquire_or_err(mn_engine_t *e, const char *name, mn_error *err)
{
    mn__space *sp = name ? mn__registry_acquire(&e->reg, name) : NULL;
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

/* The state every engine has from its first steps on: options, store,
 * clocks, registry, events. MN_OK or an error with nothing left to free. */
static mn_err engine_init(mn_engine_t *e, const mn_engine_options_t *o, mn_error *err)
{
    e->opts = *o;
    mn__metrics_init(e);
    if (!e->opts.default_lifecycle) e->opts.default_lifecycle = MN_LIFECYCLE_PERSISTENT;
    if (!(e->opts.initial_stability_days > 0)) e->opts.initial_stability_days = 7.0f;
    e->data_dir = strdup(o->data_dir ? o->data_dir : "./data");
    e->opts.data_dir = e->data_dir;
    mn_err rc = mkdirs(e->data_dir, err);
    if (!rc) rc = mn__store_open(&e->store, &e->opts, err);
    size_t torn = 0;
    if (!rc && (rc = mn__acked_open(e->data_dir, true, &e->acked, &torn, err)))
        mn__store_close(&e->store);
    if (torn) mn_log_warn("%s: %zu torn records skipped", MN__ACKED_FILE, torn);
    if (!rc && (rc = mn__events_init(e, err))) {
        mn__acked_close(e->acked);
        mn__store_close(&e->store);
    }
    if (rc) {
        free(e->data_dir);
        return rc;
    }
    mn_idgen_init(&e->idgen, mn_random_seed());
    mn_hlc_init(&e->hlc);
    mn__registry_init(&e->reg);
    e->next_sid = 1;
    mn__test_drop_init(e);
    return MN_OK;
}

/* Frees what engine_init made (no thread runs). */
static void engine_free(mn_engine_t *e)
{
    mn__registry_destroy(&e->reg);
    mn__store_close(&e->store);
    mn__acked_close(e->acked);
    mn__damage_free(e);
    mn_idgen_destroy(&e->idgen);
    mn_hlc_destroy(&e->hlc);
    mn__events_free(e);
    free(e->data_dir);
    free(e);
}

mn_err mn_engine_open(const mn_engine_options_t *o, mn_engine_t **out, mn_error *err)
{
    *out = NULL;
    /* the defaults of every run: the ranges a request's own options are held to */
    mn_err rc = mn__validate_consolidate_opts(&o->consolidate, err);
    if (rc) return rc;
    mn_engine_t *e = calloc(1, sizeof *e);
    if (!e) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    rc = engine_init(e, o, err);
    if (rc) {
        free(e);
        return rc;
    }
    if ((rc = mn__load(e, err)) || (rc = mn__commit_start(e, err)) ||
        (rc = mn__indexer_start(e, err)) || (rc = mn__linker_start(e, err)))
        goto fail;
    mn__sweeper_start(e);
    *out = e;
    return MN_OK;
fail:
    mn__commit_stop(e);
    mn__indexer_stop(e);
    engine_free(e);
    return rc;
}

void mn_engine_close(mn_engine_t *e)
{
    if (!e) return;
    mn__events_close(e);
    mn__sweeper_stop(e);
    mn__linker_stop(e);
    mn__commit_stop(e);
    mn__indexer_stop(e);         /* finishes the queued index work */
    mn__space_index_save_all(e); /* writers stopped: graphs at each space's last lsn */
    engine_free(e);
}

/* ---- spaces ---- */

const char *mn_engine_text_languages(void)
{
    return mn_text_languages();
}

mn_err mn_engine_embedding_model_check(const char *s, size_t n, mn_error *err)
{
    if (n > MN_EMBEDDING_MODEL_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "embedding_model: at most %d bytes, got %zu",
                            MN_EMBEDDING_MODEL_MAX, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return mn_error_set(err, MN_ERR_INVALID,
                                "embedding_model: printable ASCII only, byte %zu is 0x%02x", i,
                                (unsigned char)s[i]);
    return MN_OK;
}

mn_err mn_engine_space_create(mn_engine_t *e, const mn_space_def_t *def, mn_space_def_t *out,
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
    if (def->text_language[0] && mn_text_language_parse(def->text_language) < 0)
        return mn_error_set(err, MN_ERR_INVALID, "text_language: \"%.16s\" is not one of %s",
                            def->text_language, mn_text_languages());
    if (def->embedding_model_set) {
        size_t n = strnlen(def->embedding_model, sizeof def->embedding_model);
        if (n == sizeof def->embedding_model) /* not terminated: longer than the room */
            return mn_error_set(err, MN_ERR_INVALID, "embedding_model: at most %d bytes",
                                MN_EMBEDDING_MODEL_MAX);
        mn_err mrc = mn_engine_embedding_model_check(def->embedding_model, n, err);
        if (mrc) return mrc;
    }
    if (def->dedup != MN_DEDUP_EXACT && def->dedup != MN_DEDUP_OFF)
        return mn_error_set(err, MN_ERR_INVALID, "dedup: must be \"exact\" or \"off\"");
    if (!(def->dedup_threshold >= 0 && def->dedup_threshold <= 1))
        return mn_error_set(err, MN_ERR_INVALID,
                            "dedup_threshold: must be in (0, 1], or 0 for no near-duplicate links");
    mn_index_def_t ix = def->index;
    mn__space_index_defaults(e, &ix);
    mn_err rc = mn__space_index_check(&ix, err);
    if (rc) return rc;
    mn__pending p;
    mn__pending_init(&p, MN_WAL_OP_SPACE_CREATE, NULL, true);
    snprintf(p.entry.space, sizeof p.entry.space, "%s", def->name);
    mn_space_def_t *d = &p.entry.op.space_create.def;
    *d = *def;
    if (!d->default_lifecycle) d->default_lifecycle = e->opts.default_lifecycle;
    if (!d->text_language[0]) snprintf(d->text_language, sizeof d->text_language, "english");
    if (!d->embedding_model_set) memset(d->embedding_model, 0, sizeof d->embedding_model);
    d->index = ix;
    d->created_at_ms = mn__now(e);
    rc = mn__commit_submit(e, &p);
    if (rc) {
        if (err) *err = p.err;
        return rc;
    }
    if (out) *out = *d;
    return MN_OK;
}

static void fill_stats(mn_engine_t *e, mn__space *sp, mn_space_stats_t *out)
{
    pthread_rwlock_rdlock(&sp->lock);
    out->def = sp->def;
    /* a corrected memory counts once: its superseded versions (episodes) are not memories */
    out->memories = sp->n_live - sp->n_superseded;
    out->episodic = sp->n_episodic - sp->n_superseded;
    out->semantic = sp->n_semantic;
    out->suppressed = sp->n_suppressed;
    out->tombstones = sp->n_tombstones;
    out->epoch = sp->epoch;
    out->last_lsn = sp->last_lsn;
    out->wal_first_lsn = sp->first_lsn;
    out->vector_bytes = (uint64_t)sp->cap * sp->def.dim * sizeof(float);
    mn__space_index_stats(e, sp, out);
    pthread_rwlock_unlock(&sp->lock);
}

mn_err mn_engine_space_get(mn_engine_t *e, const char *name, mn_space_stats_t *out, mn_error *err)
{
    mn__space *sp = acquire_or_err(e, name, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    fill_stats(e, sp, out);
    mn__space_unref(sp);
    return MN_OK;
}

mn_err mn_engine_space_list(mn_engine_t *e, mn_space_def_t **out, size_t *n, mn_error *err)
{
    return mn__registry_defs(&e->reg, out, n, err);
}

static mn_err space_drop(mn_engine_t *e, const char *name, bool discard, mn_error *err)
{
    mn__space *sp = acquire_or_err(e, name, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    if (!discard && mn__space_writable(sp, err)) {
        mn__space_unref(sp);
        return MN_ERR_UNAVAILABLE;
    }
    mn__pending p;
    mn__pending_init(&p, MN_WAL_OP_SPACE_DROP, sp, true);
    p.discard = discard;
    p.entry.op.space_drop.at_ms = mn__now(e);
    mn_err rc = mn__commit_submit(e, &p);
    if (rc && err) *err = p.err;
    mn__space_unref(sp);
    return rc;
}

mn_err mn_engine_space_drop(mn_engine_t *e, const char *name, mn_error *err)
{
    return space_drop(e, name, false, err);
}

mn_err mn_engine_space_discard(mn_engine_t *e, const char *name, mn_error *err)
{
    return space_drop(e, name, true, err);
}

/* ---- memories ---- */

static int64_t ttl_for(const mn_engine_t *e, mn_lifecycle_t l)
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

/* The memories of a remember as the entry carries them, in *copy (malloc'd,
 * shallow: the strings stay the caller's): new ids, times, lifecycle and
 * expiry. Returns whether any needs durability. */
static bool stamp_memories(mn_engine_t *e, const mn__space *sp, const mn_memory_t *mems, size_t n,
                           int64_t now_ms, bool hinted, mn_memory_t *copy)
{
    bool sync = false;
    for (size_t i = 0; i < n; i++) {
        mn_memory_t *m = &copy[i];
        *m = mems[i];
        /* a hint's memory keeps the id and time it was accepted with (mn_engine_remember_hinted) */
        if (!hinted || !m->created_at_ms) m->created_at_ms = now_ms;
        if (!hinted) m->id = mn_idgen_next(&e->idgen, now_ms);
        now_ms = m->created_at_ms;
        if (m->when_ms == MN_TIME_UNSET) m->when_ms = now_ms;
        if (!m->lifecycle) m->lifecycle = sp->def.default_lifecycle;
        if (!m->lifecycle) m->lifecycle = MN_LIFECYCLE_PERSISTENT;
        int64_t ttl_s = m->ttl_seconds >= 0 ? m->ttl_seconds : ttl_for(e, m->lifecycle);
        m->expires_at_ms = ttl_s > 0 ? now_ms + ttl_s * 1000 : 0;
        m->suppressed = false;
        /* Ephemeral memories are written without fsync (documented: a crash of
         * the machine may lose them); everything else waits for durability. */
        if (m->lifecycle != MN_LIFECYCLE_EPHEMERAL) sync = true;
    }
    return sync;
}

/* Queues the new memories with a vector for semantic linking: those whose id
 * is the one generated here (a retried idempotency key reports an older id). */
static void enqueue_links(mn_engine_t *e, mn__space *sp, const mn_memory_t *copy,
                          const mn_id_t *ids_out, size_t n)
{
    mn_id_t *new_ids = malloc(n * sizeof *new_ids);
    if (!new_ids) return;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (copy[i].embedding && !mn_id_cmp(&ids_out[i], &copy[i].id)) new_ids[m++] = copy[i].id;
    mn__linker_enqueue(e, sp, new_ids, m);
    free(new_ids);
}

static mn_err remember(mn_engine_t *e, const char *space, const mn_memory_t *mems, size_t n,
                       mn_id_t *ids_out, bool *dup_out, bool hinted, mn_error *err)
{
    if (n == 0) return mn_error_set(err, MN_ERR_INVALID, "memories: empty batch");
    if (n > MN_BATCH_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "memories: %zu in one batch, the limit is %d", n,
                            MN_BATCH_MAX);
    mn__space *sp = acquire_or_err(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    if (mn__space_writable(sp, err)) {
        mn__space_unref(sp);
        return MN_ERR_UNAVAILABLE;
    }
    mn_memory_t *copy = NULL;
    uint8_t(*hashes)[MN__DEDUP_HASH_LEN] = NULL;
    mn_edge_t *edges = NULL;
    size_t n_edges = 0, cap_edges = 0;
    mn_err rc = MN_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = mn__validate_memory(sp, &mems[i], n > 1 ? i : SIZE_MAX, err);
        if (!rc && hinted && mn_id_is_zero(&mems[i].id))
            rc = mn_error_set(err, MN_ERR_INVALID, "memories[%zu].id: a hint's memory needs one", i);
    }
    if (rc) goto out;
    if (!(copy = malloc(n * sizeof *copy))) {
        rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        goto out;
    }
    int64_t now_ms = mn__now(e);
    bool sync = stamp_memories(e, sp, mems, n, now_ms, hinted, copy);
    /* Temporal links are chosen here, off the commit thread, and travel in the
     * entry; semantic links are made afterwards by the linker (background.c). */
    pthread_rwlock_rdlock(&sp->lock);
    for (size_t i = 0; i < n && !rc; i++)
        rc = mn__space_autolink(sp, &copy[i], copy, i, NULL, 0, 0, 0, e->opts.temporal_window_ms,
                                now_ms, &edges, &n_edges, &cap_edges);
    pthread_rwlock_unlock(&sp->lock);
    if (rc) {
        rc = mn_error_set(err, rc, "out of memory linking memories");
        goto out;
    }
    mn__pending p;
    mn__pending_init(&p, MN_WAL_OP_REMEMBER, sp, sync);
    p.entry.op.remember.mems = copy;
    p.entry.op.remember.n = n;
    p.entry.op.remember.edges = edges;
    p.entry.op.remember.n_edges = n_edges;
    p.ids_out = ids_out;
    p.dup_out = dup_out;
    /* a hint was judged where it was accepted: its id stands, never made a duplicate here
     * (unless the caller asks for the verdict: a forwarded remember, answered at once) */
    p.foreign = hinted && !dup_out;
    /* the dedup hashes are computed here, not on the commit thread, which only looks them up */
    if (sp->def.dedup == MN_DEDUP_EXACT && (hashes = malloc(n * sizeof *hashes)))
        for (size_t i = 0; i < n; i++)
            mn__dedup_hash(&copy[i], hashes[i]);
    p.dedup_in = (const uint8_t(*)[16])hashes;
    rc = mn__commit_submit(e, &p);
    if (rc && err) *err = p.err;
    if (!rc && e->opts.link_max) enqueue_links(e, sp, copy, ids_out, n);
    if (!rc) mn__test_drop_after_remember(e, space, ids_out, n);
out:
    free(hashes);
    free(edges);
    free(copy);
    mn__space_unref(sp);
    return rc;
}

mn_err mn_engine_remember(mn_engine_t *e, const char *space, const mn_memory_t *mems, size_t n,
                          mn_id_t *ids_out, mn_error *err)
{
    int64_t t0 = mn_time_mono_ns();
    return mn__timed(&e->h_remember, t0, remember(e, space, mems, n, ids_out, NULL, false, err));
}

mn_err mn_engine_remember_dedup(mn_engine_t *e, const char *space, const mn_memory_t *mems,
                                size_t n, mn_id_t *ids_out, bool *dup_out, mn_error *err)
{
    int64_t t0 = mn_time_mono_ns();
    return mn__timed(&e->h_remember, t0, remember(e, space, mems, n, ids_out, dup_out, false, err));
}

mn_err mn_engine_remember_hinted(mn_engine_t *e, const char *space, const mn_memory_t *mems,
                                 size_t n, mn_id_t *ids_out, bool *dup_out, mn_error *err)
{
    int64_t t0 = mn_time_mono_ns();
    return mn__timed(&e->h_remember, t0, remember(e, space, mems, n, ids_out, dup_out, true, err));
}

static mn_err submit_id_op(mn_engine_t *e, const char *space, mn_wal_op_type_t type,
                           const mn_id_t *id, int mode, int reason, mn_error *err)
{
    mn__space *sp = acquire_or_err(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    if (mn__space_writable(sp, err)) {
        mn__space_unref(sp);
        return MN_ERR_UNAVAILABLE;
    }
    mn__pending p;
    mn__pending_init(&p, type, sp, true);
    if (type == MN_WAL_OP_FORGET) {
        p.entry.op.forget.id = *id;
        p.entry.op.forget.mode = mode;
        p.entry.op.forget.reason = reason;
        p.entry.op.forget.at_ms = mn__now(e);
    } else {
        p.entry.op.unsuppress.id = *id;
        p.entry.op.unsuppress.at_ms = mn__now(e);
    }
    mn_err rc = mn__commit_submit(e, &p);
    if (rc && err) *err = p.err;
    mn__space_unref(sp);
    return rc;
}

mn_err mn_engine_forget(mn_engine_t *e, const char *space, const mn_id_t *id, mn_forget_mode_t mode,
                        mn_error *err)
{
    if (mode != MN_FORGET_DELETE && mode != MN_FORGET_SUPPRESS)
        return mn_error_set(err, MN_ERR_INVALID, "mode: must be delete or suppress");
    return submit_id_op(e, space, MN_WAL_OP_FORGET, id, mode, MN_FORGET_REASON_CLIENT, err);
}

mn_err mn_engine_associate(mn_engine_t *e, const char *space, const mn_edge_t *edges, size_t n,
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
    mn__space *sp = acquire_or_err(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    if (mn__space_writable(sp, err)) {
        mn__space_unref(sp);
        return MN_ERR_UNAVAILABLE;
    }
    mn_edge_t *cur = malloc(n * sizeof *cur);
    if (!cur) {
        mn__space_unref(sp);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    /* an edge joins the current versions of corrected memories (unknown ends: apply says) */
    for (size_t i = 0; i < n; i++) {
        mn_id_t lineage;
        cur[i] = edges[i];
        (void)mn__versions_resolve(&e->store, NULL, sp, &edges[i].from, &lineage, &cur[i].from,
                                   NULL);
        (void)mn__versions_resolve(&e->store, NULL, sp, &edges[i].to, &lineage, &cur[i].to, NULL);
    }
    mn__pending p;
    mn__pending_init(&p, MN_WAL_OP_ASSOCIATE, sp, true);
    p.entry.op.associate.edges = cur;
    p.entry.op.associate.n = n;
    mn_err rc = mn__commit_submit(e, &p);
    if (rc && err) *err = p.err;
    free(cur);
    mn__space_unref(sp);
    return rc;
}

mn_err mn_engine_associations(mn_engine_t *e, const char *space, const mn_id_t *id, mn_assoc_t **out,
                              size_t *n, mn_error *err)
{
    *out = NULL;
    *n = 0;
    mn__space *sp = acquire_or_err(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    /* a corrected memory's associations are its current version's */
    mn_id_t lineage, head = *id;
    mn_err rc = mn__versions_resolve(&e->store, NULL, sp, id, &lineage, &head, NULL);
    if (rc == MN_ERR_GONE || rc == MN_ERR_NOT_FOUND) head = *id; /* as before: the slot decides */
    else if (rc) {
        mn__space_unref(sp);
        return mn_error_set(err, rc, "reading memory");
    }
    rc = MN_OK;
    pthread_rwlock_rdlock(&sp->lock);
    uint32_t slot = mn__space_find(sp, &head);
    if (slot == UINT32_MAX) {
        rc = mn_error_set(err, MN_ERR_NOT_FOUND, "memory not found");
    } else {
        const mn__slot *s = &sp->slots[slot];
        *out = malloc((s->n_adj ? s->n_adj : 1) * sizeof **out);
        if (!*out) {
            rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        } else {
            for (uint32_t i = 0; i < s->n_adj; i++)
                (*out)[i] =
                    (mn_assoc_t){s->adj[i].other, s->adj[i].kind, s->adj[i].out, s->adj[i].weight};
            *n = s->n_adj;
        }
    }
    pthread_rwlock_unlock(&sp->lock);
    /* the other ends as clients know them: a corrected memory by its lineage id */
    for (size_t i = 0; !rc && i < *n; i++) {
        mn_id_t other_head;
        (void)mn__versions_resolve(&e->store, NULL, sp, &(*out)[i].other, &(*out)[i].other,
                                   &other_head, NULL);
    }
    mn__space_unref(sp);
    return rc;
}

mn_err mn_engine_unsuppress(mn_engine_t *e, const char *space, const mn_id_t *id, mn_error *err)
{
    return submit_id_op(e, space, MN_WAL_OP_UNSUPPRESS, id, 0, 0, err);
}

mn_err mn_engine_get(mn_engine_t *e, const char *space, const mn_id_t *id, bool with_embedding,
                     mn_memory_t *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    mn__space *sp = acquire_or_err(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    /* a lineage id reads its current version; a version's own id reads that version */
    mn_id_t lineage, head;
    mn_err rc = mn__versions_resolve(&e->store, NULL, sp, id, &lineage, &head, err);
    if (!rc)
        rc = mn__record_read(&e->store, e->opts.initial_stability_days, sp,
                             mn_id_cmp(id, &lineage) ? id : &head, with_embedding, out, err);
    if (!rc) mn__versions_present(out);
    if (rc == MN_OK && out->expires_at_ms && out->expires_at_ms <= mn__now(e)) {
        mn_memory_clear(out);
        rc = mn_error_set(err, MN_ERR_GONE, "memory expired");
    }
    mn__space_unref(sp);
    return rc;
}

mn_err mn_engine_kind(mn_engine_t *e, const char *space, const mn_id_t *id, mn_kind_t *out,
                      mn_error *err)
{
    mn__space *sp = acquire_or_err(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    mn_err rc = mn__record_kind(&e->store, sp, id, out, err);
    mn__space_unref(sp);
    return rc;
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

void mn_engine_get_stats(mn_engine_t *e, mn_engine_stats_t *out)
{
    out->spaces = mn__registry_count(&e->reg);
    out->commits = atomic_load(&e->n_commits);
    out->synced_commits = atomic_load(&e->n_synced);
    out->entries = atomic_load(&e->n_entries);
    out->max_group = atomic_load(&e->max_group);
    out->links = atomic_load(&e->n_links);
    out->links_dropped = atomic_load(&e->n_links_dropped);
    out->reinforced = atomic_load(&e->n_reinforced);
}
