/* The live space catalog of a node (cluster mode).
 *
 * Learned three ways, all through the one merge (cluster_catalog_set.c):
 *  - the hooks of this node's REST and gRPC doors after a create or a drop
 *    succeeded in the engine (cl_catalog_created, cl_catalog_dropped);
 *  - a push from another node (POST /v1/cluster/catalog), which the sync
 *    thread sends to every alive member as soon as a hook changed the set
 *    (best effort, a short timeout per member);
 *  - anti-entropy: every cluster.catalog_sync_interval_ms the sync thread
 *    asks one random alive member for its digest and, when the digests
 *    differ, pulls its whole catalog, merges it and pushes its own back.
 * Since the merge is a join, every node that heard (directly or not) of the
 * same entries holds the same set, in whatever order they came.
 *
 * The sync thread also reconciles the catalog with the engine on each round:
 * the engine's spaces are merged in as live entries (a replica created by
 * WAL shipping, a hook that never ran), and an engine copy that a tombstone
 * covers (same or older incarnation) is dropped from the engine. Tombstones
 * older than cluster.catalog_tombstone_ttl_s are collected.
 *
 * Every change is saved (cluster_catalog_json.c) before the call that made
 * it returns; saves are serialised and a save never writes an older set over
 * a newer one (versions). Lock order: save_mu before mu is never taken. */
#include "cluster_catalog_internal.h"

#include "api_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/util.h"

/* A member known to hold a space's record at least this new (pushed to it, or equal digests). */
typedef struct cl_catalog_held {
    char space[MN_SPACE_NAME_MAX + 1];
    char node[MN_SWIM_ID_MAX + 1];
    mn_spaces_record_t rec;
} cl_catalog_held;

struct cl_catalog {
    mn_engine_t *engine;
    char self[MN_SWIM_ID_MAX + 1];
    char path[4096];
    int64_t interval_ms, horizon_ms;
    pthread_mutex_t mu; /* guards everything below but save_mu's fields */
    pthread_cond_t cv;
    cl_catalog_set set;
    uint64_t version; /* + 1 per change of set */
    char digest[65];
    uint64_t digest_version; /* the version digest is of (0 = none yet) */
    cl_catalog_set pending;  /* changed by a hook, not pushed yet */
    cl_catalog_member *members;
    size_t n_members;
    mn_prng_t rng;
    bool stop;
    struct cl_route *route; /* set once, before the thread starts */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t save_mu;
    uint64_t saved_version;
    cl_catalog_held *held; /* sorted by (space, node) */
    size_t n_held, cap_held;
};

/* ---- the set under the lock ---- */

/* Merges in (mu held); a change bumps the version and, with push, queues in for the
 * members. */
static mn_err merge_locked(cl_catalog *cat, const cl_catalog_entry *in, bool push, bool *changed)
{
    mn_err rc = cl_catalog_set_merge(&cat->set, in, changed);
    if (rc || !*changed) return rc;
    cat->version++;
    if (push && cl_catalog_set_merge(&cat->pending, in, &(bool){false}) != MN_OK)
        mn_log_warn("catalog: out of memory queueing a push of '%s'", in->def.name);
    return MN_OK;
}

/* The digest of the current set (mu held), computed once per version. */
static const char *digest_locked(cl_catalog *cat)
{
    if (cat->digest_version != cat->version + 1) {
        cl_catalog_set_digest(&cat->set, cat->digest);
        cat->digest_version = cat->version + 1;
    }
    return cat->digest;
}

/* Saves the set if it changed since the last save (any thread, mu not held). */
static void save(cl_catalog *cat)
{
    cl_catalog_set copy;
    cl_catalog_set_init(&copy);
    pthread_mutex_lock(&cat->save_mu);
    pthread_mutex_lock(&cat->mu);
    uint64_t v = cat->version;
    bool fresh = v != cat->saved_version;
    mn_err rc = fresh ? cl_catalog_set_copy(&copy, &cat->set) : MN_OK;
    pthread_mutex_unlock(&cat->mu);
    mn_error err = {0};
    if (fresh && !rc) rc = cl_catalog_save(&copy, cat->path, &err);
    if (fresh && !rc) cat->saved_version = v;
    if (rc)
        mn_log_error("catalog: cannot save %s: %s", cat->path,
                     err.code ? err.message : "out of memory");
    pthread_mutex_unlock(&cat->save_mu);
    cl_catalog_set_free(&copy);
}

/* Merges every entry of in; returns how many changed the set. */
size_t cl__catalog_merge_all(cl_catalog *cat, const cl_catalog_set *in, bool push)
{
    size_t changed = 0;
    pthread_mutex_lock(&cat->mu);
    for (size_t i = 0; i < in->n; i++) {
        bool ch = false;
        if (merge_locked(cat, &in->e[i], push, &ch) == MN_OK && ch) changed++;
    }
    if (changed) pthread_cond_signal(&cat->cv);
    pthread_mutex_unlock(&cat->mu);
    if (changed) save(cat);
    return changed;
}

/* ---- the engine ---- */

/* Merges the engine's spaces in as live entries and drops the engine copies a tombstone
 * covers (same or older incarnation). Not on the loop thread: drops block. */
void cl__catalog_reconcile(cl_catalog *cat)
{
    mn_space_def_t *defs = NULL;
    size_t n = 0;
    mn_error err = {0};
    if (mn_engine_space_list(cat->engine, &defs, &n, &err) != MN_OK) {
        mn_log_warn("catalog: cannot list the engine's spaces: %s", err.message);
        return;
    }
    cl_catalog_set local;
    cl_catalog_set_init(&local);
    for (size_t i = 0; i < n; i++)
        cl_catalog_set_merge(&local, &(cl_catalog_entry){.def = defs[i]}, &(bool){false});
    cl__catalog_merge_all(cat, &local, false);
    for (size_t i = 0; i < local.n; i++) {
        const mn_space_def_t *d = &local.e[i].def;
        pthread_mutex_lock(&cat->mu);
        const cl_catalog_entry *e = cl_catalog_set_find(&cat->set, d->name);
        bool covered = e && e->dropped_ms && d->created_at_ms <= e->def.created_at_ms;
        pthread_mutex_unlock(&cat->mu);
        if (!covered) continue;
        mn_error derr = {0};
        mn_err rc = mn_engine_space_drop(cat->engine, d->name, &derr);
        if (rc == MN_OK)
            mn_log_info("catalog: dropped the local copy of '%s' (a tombstone covers it)", d->name);
        else if (rc != MN_ERR_NOT_FOUND)
            mn_log_warn("catalog: cannot drop the local copy of '%s': %s", d->name, derr.message);
    }
    cl_catalog_set_free(&local);
    free(defs);
}

/* ---- hooks and readers ---- */

void cl_catalog_created(cl_catalog *cat, const char *space)
{
    mn_space_stats_t st;
    mn_error err = {0};
    if (mn_engine_space_get(cat->engine, space, &st, &err) != MN_OK) {
        mn_log_warn("catalog: space '%s' created but not readable: %s", space, err.message);
        return;
    }
    cl_catalog_entry e = {.def = st.def};
    memcpy(e.creator, cat->self, sizeof e.creator); /* this node wrote its lsn 1 */
    cl_catalog_set one;
    cl_catalog_set_init(&one);
    if (cl_catalog_set_merge(&one, &e, &(bool){false}) == MN_OK)
        cl__catalog_merge_all(cat, &one, true);
    cl_catalog_set_free(&one);
}

void cl_catalog_dropped(cl_catalog *cat, const char *space)
{
    pthread_mutex_lock(&cat->mu);
    const cl_catalog_entry *e = cl_catalog_set_find(&cat->set, space);
    cl_catalog_entry t;
    bool known = e != NULL;
    if (known) t = *e;
    pthread_mutex_unlock(&cat->mu);
    if (!known) {
        mn_log_warn("catalog: space '%s' dropped but never catalogued", space);
        return;
    }
    int64_t now = mn_time_now_ms();
    if (!t.dropped_ms || t.dropped_ms < now) t.dropped_ms = now > 0 ? now : 1;
    cl_catalog_set one;
    cl_catalog_set_init(&one);
    if (cl_catalog_set_merge(&one, &t, &(bool){false}) == MN_OK)
        cl__catalog_merge_all(cat, &one, true);
    cl_catalog_set_free(&one);
}

cl_catalog_state cl_catalog_state_of(cl_catalog *cat, const char *space, int64_t *created_ms)
{
    pthread_mutex_lock(&cat->mu);
    const cl_catalog_entry *e = cl_catalog_set_find(&cat->set, space);
    cl_catalog_state st = !e              ? CL_CATALOG_UNKNOWN
                          : e->dropped_ms ? CL_CATALOG_DROPPED
                                          : CL_CATALOG_LIVE;
    *created_ms = e ? e->def.created_at_ms : 0;
    pthread_mutex_unlock(&cat->mu);
    return st;
}

int64_t cl_catalog_stale_before(cl_catalog *cat, const char *space)
{
    int64_t created;
    switch (cl_catalog_state_of(cat, space, &created)) {
    case CL_CATALOG_DROPPED:
        return INT64_MAX;
    case CL_CATALOG_LIVE:
        return created - CL_CATALOG_SKEW_MS;
    default:
        return INT64_MIN;
    }
}

mn_err cl_catalog_list(cl_catalog *cat, mn_space_def_t **out, size_t *n, mn_error *err)
{
    pthread_mutex_lock(&cat->mu);
    size_t live = cl_catalog_set_live(&cat->set), k = 0;
    mn_space_def_t *defs = malloc((live ? live : 1) * sizeof *defs);
    for (size_t i = 0; defs && i < cat->set.n; i++)
        if (!cat->set.e[i].dropped_ms) defs[k++] = cat->set.e[i].def;
    pthread_mutex_unlock(&cat->mu);
    if (!defs) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    *out = defs;
    *n = k;
    return MN_OK;
}

mn_err cl_catalog_names(cl_catalog *cat, const char ***out, size_t *n, mn_error *err)
{
    pthread_mutex_lock(&cat->mu);
    size_t live = cl_catalog_set_live(&cat->set), k = 0;
    size_t each = sizeof(char *) + MN_SPACE_NAME_MAX + 1;
    const char **names = malloc((live ? live : 1) * each);
    char *text = names ? (char *)(names + live) : NULL;
    for (size_t i = 0; names && i < cat->set.n; i++) {
        if (cat->set.e[i].dropped_ms) continue;
        char *slot = text + k * (MN_SPACE_NAME_MAX + 1);
        memcpy(slot, cat->set.e[i].def.name, MN_SPACE_NAME_MAX + 1);
        names[k++] = slot;
    }
    pthread_mutex_unlock(&cat->mu);
    if (!names) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    *out = names;
    *n = k;
    return MN_OK;
}

mn_err cl_catalog_placing(cl_catalog *cat, cl_catalog_place **out, size_t *n, mn_error *err)
{
    pthread_mutex_lock(&cat->mu);
    size_t live = cl_catalog_set_live(&cat->set), k = 0;
    cl_catalog_place *p = malloc((live ? live : 1) * sizeof *p);
    for (size_t i = 0; p && i < cat->set.n; i++) {
        const cl_catalog_entry *e = &cat->set.e[i];
        if (e->dropped_ms) continue;
        memcpy(p[k].name, e->def.name, sizeof p[k].name);
        memcpy(p[k].creator, e->creator, sizeof p[k].creator);
        p[k].created_ms = e->def.created_at_ms;
        p[k++].rec = e->rec;
    }
    pthread_mutex_unlock(&cat->mu);
    if (!p) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    *out = p;
    *n = k;
    return MN_OK;
}

size_t cl_catalog_publish(cl_catalog *cat, const char *const *spaces,
                          const mn_spaces_record_t *recs, size_t n)
{
    cl_catalog_set batch;
    cl_catalog_set_init(&batch);
    pthread_mutex_lock(&cat->mu);
    for (size_t i = 0; i < n; i++) {
        const cl_catalog_entry *e = cl_catalog_set_find(&cat->set, spaces[i]);
        mn_error err = {0};
        if (!e || e->dropped_ms || mn_spaces_record_check(&recs[i], &err) != MN_OK) {
            mn_log_warn("catalog: record of '%s' not kept: %s", spaces[i],
                        err.code ? err.message : "not a live space");
            continue;
        }
        cl_catalog_entry t = *e;
        t.rec = recs[i];
        if (cl_catalog_set_merge(&batch, &t, &(bool){false}) != MN_OK)
            mn_log_warn("catalog: out of memory recording '%s'", spaces[i]);
    }
    pthread_mutex_unlock(&cat->mu);
    size_t changed = batch.n ? cl__catalog_merge_all(cat, &batch, true) : 0;
    cl_catalog_set_free(&batch);
    return changed;
}

/* ---- who holds which record ---- */

static int held_cmp(const cl_catalog_held *h, const char *space, const char *node)
{
    int c = strcmp(h->space, space);
    return c ? c : strcmp(h->node, node);
}

/* Index of the first held entry >= (space, node) (mu held). */
static size_t held_at(const cl_catalog *cat, const char *space, const char *node)
{
    size_t lo = 0, hi = cat->n_held;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (held_cmp(&cat->held[mid], space, node) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* node holds rec of space (mu held); out of memory: not noted (the next push notes it). */
static void note_held(cl_catalog *cat, const char *space, const char *node,
                      const mn_spaces_record_t *rec)
{
    size_t i = held_at(cat, space, node);
    if (i < cat->n_held && held_cmp(&cat->held[i], space, node) == 0) {
        if (mn_spaces_record_cmp(rec, &cat->held[i].rec) > 0) cat->held[i].rec = *rec;
        return;
    }
    if (cat->n_held == cat->cap_held) {
        size_t cap = cat->cap_held ? cat->cap_held * 2 : 32;
        cl_catalog_held *nh = realloc(cat->held, cap * sizeof *nh);
        if (!nh) return;
        cat->held = nh;
        cat->cap_held = cap;
    }
    memmove(&cat->held[i + 1], &cat->held[i], (cat->n_held - i) * sizeof *cat->held);
    snprintf(cat->held[i].space, sizeof cat->held[i].space, "%s", space);
    snprintf(cat->held[i].node, sizeof cat->held[i].node, "%s", node);
    cat->held[i].rec = *rec;
    cat->n_held++;
}

void cl__catalog_held(cl_catalog *cat, const char *node, const cl_catalog_set *sent)
{
    pthread_mutex_lock(&cat->mu);
    for (size_t i = 0; i < sent->n; i++)
        if (sent->e[i].rec.epoch && !sent->e[i].dropped_ms)
            note_held(cat, sent->e[i].def.name, node, &sent->e[i].rec);
    pthread_mutex_unlock(&cat->mu);
}

void cl__catalog_held_all(cl_catalog *cat, const char *node)
{
    cl_catalog_set copy;
    cl_catalog_set_init(&copy);
    if (cl__catalog_copy(cat, &copy) == MN_OK) cl__catalog_held(cat, node, &copy);
    cl_catalog_set_free(&copy);
}

bool cl_catalog_record_held(cl_catalog *cat, const char *space, const char *node,
                            const mn_spaces_record_t *rec)
{
    if (!strcmp(node, cat->self)) return true;
    pthread_mutex_lock(&cat->mu);
    size_t i = held_at(cat, space, node);
    bool held = i < cat->n_held && held_cmp(&cat->held[i], space, node) == 0 &&
                mn_spaces_record_cmp(&cat->held[i].rec, rec) >= 0;
    pthread_mutex_unlock(&cat->mu);
    return held;
}

void cl_catalog_set_members(cl_catalog *cat, const cl_catalog_member *m, size_t n)
{
    cl_catalog_member *copy = malloc((n ? n : 1) * sizeof *copy);
    if (!copy) return; /* keep the previous list */
    if (n) memcpy(copy, m, n * sizeof *m);
    pthread_mutex_lock(&cat->mu);
    cl_catalog_member *old = cat->members;
    cat->members = copy;
    cat->n_members = n;
    pthread_mutex_unlock(&cat->mu);
    free(old);
}

/* ---- for the sync thread and the routes ---- */

void cl__catalog_digest(cl_catalog *cat, char out[65])
{
    pthread_mutex_lock(&cat->mu);
    memcpy(out, digest_locked(cat), 65);
    pthread_mutex_unlock(&cat->mu);
}

mn_err cl__catalog_copy(cl_catalog *cat, cl_catalog_set *out)
{
    pthread_mutex_lock(&cat->mu);
    mn_err rc = cl_catalog_set_copy(out, &cat->set);
    pthread_mutex_unlock(&cat->mu);
    return rc;
}

bool cl__catalog_pick(cl_catalog *cat, mn_prng_t *rng, cl_catalog_member *m)
{
    pthread_mutex_lock(&cat->mu);
    bool any = cat->n_members > 0;
    if (any) *m = cat->members[mn_prng_below(rng, cat->n_members)];
    pthread_mutex_unlock(&cat->mu);
    return any;
}

void cl__catalog_collect(cl_catalog *cat, int64_t now_ms)
{
    pthread_mutex_lock(&cat->mu);
    size_t gone = cl_catalog_set_collect(&cat->set, now_ms - cat->horizon_ms);
    if (gone) cat->version++;
    pthread_mutex_unlock(&cat->mu);
    if (!gone) return;
    mn_log_info("catalog: collected %zu tombstones older than %lld s", gone,
                (long long)(cat->horizon_ms / 1000));
    save(cat);
}

bool cl__catalog_wait(cl_catalog *cat, int64_t deadline_ms, cl_catalog_set *pending,
                      cl_catalog_member **members, size_t *n)
{
    cl_catalog_set_init(pending);
    *members = NULL;
    *n = 0;
    pthread_mutex_lock(&cat->mu);
    while (!cat->stop && cat->pending.n == 0) {
        int64_t left = deadline_ms - mn_time_now_ms();
        if (left <= 0) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&cat->cv, &cat->mu, &ts);
    }
    bool stop = cat->stop;
    *pending = cat->pending;
    cl_catalog_set_init(&cat->pending);
    if (!stop && pending->n && cat->n_members) {
        *members = malloc(cat->n_members * sizeof **members);
        if (*members) {
            memcpy(*members, cat->members, cat->n_members * sizeof **members);
            *n = cat->n_members;
        }
    }
    pthread_mutex_unlock(&cat->mu);
    return stop;
}

int64_t cl__catalog_interval_ms(const cl_catalog *cat)
{
    return cat->interval_ms;
}

char *cl__catalog_render(cl_catalog *cat, bool full)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = root && full ? cJSON_CreateArray() : NULL;
    bool ok = root && (!full || arr);
    pthread_mutex_lock(&cat->mu);
    if (ok) {
        cJSON_AddStringToObject(root, "self", cat->self);
        cJSON_AddStringToObject(root, "digest", digest_locked(cat));
        size_t live = cl_catalog_set_live(&cat->set);
        cJSON_AddNumberToObject(root, "spaces_live", (double)live);
        cJSON_AddNumberToObject(root, "tombstones", (double)(cat->set.n - live));
        cJSON_AddNumberToObject(root, "tombstone_ttl_s", (double)(cat->horizon_ms / 1000));
    }
    for (size_t i = 0; ok && arr && i < cat->set.n; i++) {
        cJSON *o = cl_catalog_entry_json(&cat->set.e[i]);
        ok = o && cJSON_AddItemToArray(arr, o);
    }
    pthread_mutex_unlock(&cat->mu);
    if (ok && arr)
        ok = cJSON_AddItemToObject(root, "spaces", arr);
    else
        cJSON_Delete(arr);
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return text;
}

/* ---- lifecycle ---- */

mn_err cl_catalog_new(const mn_config_t *c, mn_engine_t *engine, const char *self_id,
                      cl_catalog **out, mn_error *err)
{
    *out = NULL;
    cl_catalog *cat = calloc(1, sizeof *cat);
    if (!cat) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    cat->engine = engine;
    snprintf(cat->self, sizeof cat->self, "%s", self_id);
    snprintf(cat->path, sizeof cat->path, "%s/cluster_catalog.json", c->storage.data_dir);
    cat->interval_ms = c->cluster.catalog_sync_interval_ms;
    cat->horizon_ms = c->cluster.catalog_tombstone_ttl_s * 1000;
    cl_catalog_set_init(&cat->set);
    cl_catalog_set_init(&cat->pending);
    pthread_mutex_init(&cat->mu, NULL);
    pthread_mutex_init(&cat->save_mu, NULL);
    pthread_cond_init(&cat->cv, NULL);
    mn_err rc = cl_catalog_load(cat->path, &cat->set, err);
    if (rc == MN_OK) {
        cat->version = 1; /* the loaded set (saved already: nothing new) */
        cat->saved_version = 1;
        cl__catalog_reconcile(cat);
        cl__catalog_collect(cat, mn_time_now_ms());
        save(cat);
    }
    if (rc != MN_OK) {
        cl_catalog_free(cat);
        return rc;
    }
    mn_log_info("catalog: %zu spaces, %zu tombstones (%s)", cl_catalog_set_live(&cat->set),
                cat->set.n - cl_catalog_set_live(&cat->set), cat->path);
    *out = cat;
    return MN_OK;
}

mn_err cl_catalog_start(cl_catalog *cat, struct cl_route *rt, mn_error *err)
{
    cat->route = rt;
    if (pthread_create(&cat->thread, NULL, cl__catalog_thread, cat) != 0)
        return mn_error_set(err, MN_ERR_IO, "catalog: cannot start its thread");
    cat->thread_started = true;
    return MN_OK;
}

struct cl_route *cl__catalog_route(const cl_catalog *cat)
{
    return cat->route;
}

void cl_catalog_free(cl_catalog *cat)
{
    if (!cat) return;
    if (cat->thread_started) {
        pthread_mutex_lock(&cat->mu);
        cat->stop = true;
        pthread_cond_signal(&cat->cv);
        pthread_mutex_unlock(&cat->mu);
        pthread_join(cat->thread, NULL);
    }
    save(cat);
    cl_catalog_set_free(&cat->set);
    cl_catalog_set_free(&cat->pending);
    free(cat->members);
    free(cat->held);
    pthread_cond_destroy(&cat->cv);
    pthread_mutex_destroy(&cat->mu);
    pthread_mutex_destroy(&cat->save_mu);
    free(cat);
}
