/* The feeder: the gossip core's local changes. A thread of its own (so neither the write
 * path nor the replication thread pays for it) wakes every FEED_EVERY_MS, and for each space
 * this node leads (its engine role is PRIMARY) reads the WAL entries it has not seen yet:
 *   - a semantic memory a client remembered: a version (no support); an invalidation of a
 *     semantic memory: a retired version (semantic memories take no corrections: 422);
 *   - a consolidate entry's semantic memories: a live one is a version (stamped with the
 *     entry's epoch and hlc, its payload the engine's bytes of the memory: content, vector,
 *     support, confidence, fields); a retired one (its cluster is gone) a retired version; an
 *     erased one a tombstone; an identity (the entry was rewritten when a later one carried
 *     the memory: no words, no support) is skipped, the later entry has it; a suppressed or
 *     invalidated one (a re-derivation keeps both) a retired version;
 *   - a forget of a semantic memory: deleted, a tombstone; suppressed, a retired version; an
 *     unsuppress of one: its version as the engine has it, live again.
 * "A semantic memory" is what the engine's record says (it keeps the kind of a forgotten
 * memory), not only what the core holds: a core that never got the version (its WAL entries
 * trimmed before they were read, its file lost) must still write the tombstone, or peers
 * that hold the live version push it back. Episodes are not gossiped: forgetting them
 * re-derives or retires the semantic memories they supported in the same commit group
 * (engine/apply_semantic.c), as a consolidate entry, so that change comes through the
 * second rule in the same pass. Each record goes to mn_gossip_put under g->mu, and the store
 * follows the merged state. Positions are the feeder's own (fed[]); at start every led space
 * is read from its first kept entry (the core merges what it has already). The same thread
 * writes the store to disk when it changed (cg_save_maybe). */
#include "cluster_gossip_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mnemo/assert.h"
#include "mnemo/wire.h"

#define FEED_EVERY_MS 200
#define FEED_BATCH 512 /* WAL entries read per space per wake */

typedef struct fed_pos {
    char space[MN_SPACE_NAME_MAX + 1];
    uint64_t next_lsn; /* 0 = from the first entry kept */
} fed_pos;

typedef struct feed_ctx {
    cl_gossip *g;
    const char *space;
    uint64_t next_lsn;
    size_t puts;
} feed_ctx;

static void put(feed_ctx *f, const mn_gossip_record_t *rec)
{
    cl_gossip *g = f->g;
    mn_error err = {0};
    pthread_mutex_lock(&g->mu);
    if (mn_gossip_put(g->g, f->space, rec, &err) == MN_OK) {
        mn_gossip_record_t now;
        if (mn_gossip_get(g->g, f->space, &rec->id, &now) == MN_OK)
            cg_store_apply(g, f->space, &now);
        f->puts++;
    } else {
        mn_log_warn("gossip: space %s: a local change was refused: %s", f->space, err.message);
    }
    pthread_mutex_unlock(&g->mu);
}

static void put_tombstone(feed_ctx *f, const mn_id_t *id, mn_hlc_ts_t hlc)
{
    mn_gossip_record_t r;
    memset(&r, 0, sizeof r);
    r.id = *id;
    r.forgotten_hlc = hlc ? hlc : 1;
    put(f, &r);
}

/* What the core holds of an id in this space. */
typedef enum { HELD_NONE, HELD_VERSION, HELD_TOMBSTONE } held_state;

static held_state core_holds(feed_ctx *f, const mn_id_t *id)
{
    mn_gossip_record_t cur;
    pthread_mutex_lock(&f->g->mu);
    held_state h = mn_gossip_get(f->g->g, f->space, id, &cur) != MN_OK ? HELD_NONE
                   : cur.forgotten_hlc                                 ? HELD_TOMBSTONE
                                                                       : HELD_VERSION;
    pthread_mutex_unlock(&f->g->mu);
    return h;
}

/* Is a change of id one gossip must carry: id a semantic memory of this space whose
 * tombstone the core does not hold yet? The core may not hold it at all (its version was
 * in WAL entries trimmed before this feeder read them, or the core lost it with its file)
 * while peers hold it live: so the engine's record, which keeps its kind after a forget,
 * decides, not the core. */
static bool semantic_change(feed_ctx *f, const mn_id_t *id)
{
    held_state h = core_holds(f, id);
    if (h != HELD_NONE) return h == HELD_VERSION;
    mn_kind_t kind;
    mn_error err = {0};
    return mn_engine_kind(f->g->engine, f->space, id, &kind, &err) == MN_OK &&
           kind == MN_KIND_SEMANTIC;
}

/* A version of id with no payload, retired: no partition answer returns it (a later
 * version of a later stamp brings it back). */
static void put_retired(feed_ctx *f, const mn_id_t *id, const mn_wal_entry_t *en)
{
    mn_gossip_record_t r;
    memset(&r, 0, sizeof r);
    r.id = *id;
    r.epoch = en->epoch;
    r.hlc = en->hlc ? en->hlc : 1;
    r.retired = true;
    mn_gossip_payload_digest(NULL, 0, r.digest);
    put(f, &r);
}

/* A forget of id: deleted, a tombstone; suppressed, a retired version (hidden from every
 * recall that does not ask for suppressed memories, and gossip keeps no suppressed ones:
 * unsuppressed() makes it live again). Episodes are not gossiped: their forget re-derives
 * the semantic memories they supported in the same commit group (a consolidate entry). */
static void forgotten(feed_ctx *f, const mn_id_t *id, int mode, const mn_wal_entry_t *en)
{
    if (!semantic_change(f, id)) return;
    if (mode == MN_FORGET_DELETE)
        put_tombstone(f, id, en->hlc);
    else if (mode == MN_FORGET_SUPPRESS)
        put_retired(f, id, en);
}

/* The version of one semantic memory (of a consolidate entry, or a client's). */
static void version(feed_ctx *f, const mn_wal_entry_t *en, const mn_memory_t *m)
{
    mn_gossip_record_t r;
    memset(&r, 0, sizeof r);
    r.id = m->id;
    r.epoch = en->epoch;
    r.hlc = en->hlc ? en->hlc : 1;
    uint8_t *payload = NULL;
    size_t len = 0;
    if (m->forgotten || m->suppressed || m->valid_to_ms) {
        /* an erased stub marked retired (its cluster is gone), a suppressed memory (a
         * re-derivation keeps a client's suppression) or an invalidated one: no partition
         * answer returns it */
        r.retired = true;
    } else {
        mn_memory_record_t mr = {.mem = *m};
        if (mn_wire_memory_encode(&mr, true, &payload, &len) == MN_OK &&
            len > MN_GOSSIP_PAYLOAD_MAX) {
            free(payload); /* too large with its vector: words and fields only */
            payload = NULL;
            if (mn_wire_memory_encode(&mr, false, &payload, &len) != MN_OK) payload = NULL;
        }
        if (!payload || len > MN_GOSSIP_PAYLOAD_MAX) {
            mn_log_warn("gossip: space %s: a semantic memory cannot be encoded: skipped", f->space);
            free(payload);
            return;
        }
        r.payload = payload;
        r.payload_len = len;
        float c = m->confidence;
        r.confidence = c > 0 && c <= 1 ? c : c > 1 ? 1.0f : 0.0f;
        r.support_n = (uint32_t)m->n_support;
        r.support = m->support;
        r.n_support = m->n_support < MN_GOSSIP_SUPPORT_MAX ? m->n_support : MN_GOSSIP_SUPPORT_MAX;
    }
    mn_gossip_payload_digest(r.payload, r.payload_len, r.digest);
    put(f, &r);
    free(payload);
}

static void consolidated(feed_ctx *f, const mn_wal_entry_t *en)
{
    for (size_t i = 0; i < en->op.consolidate.n; i++) {
        const mn_memory_t *m = &en->op.consolidate.mems[i];
        if (m->forgotten && !m->retired)
            put_tombstone(f, &m->id, en->hlc);
        else if (m->forgotten || m->n_support) /* no support and not erased: an identity */
            version(f, en, m);
    }
}

/* A semantic memory a client remembered (no support: its confidence is the client's). */
static void remembered(feed_ctx *f, const mn_wal_entry_t *en)
{
    for (size_t i = 0; i < en->op.remember.n; i++) {
        const mn_memory_t *m = &en->op.remember.mems[i];
        if (m->kind == MN_KIND_SEMANTIC && !m->forgotten) version(f, en, m);
    }
}

/* An invalidated semantic memory (kept, no longer valid): a retired version. A normal recall
 * still returns it, marked superseded; the gossiped payload cannot carry the mark, so a
 * partition answer leaves it out instead. */
static void invalidated(feed_ctx *f, const mn_wal_entry_t *en)
{
    if (semantic_change(f, &en->op.invalidate.id)) put_retired(f, &en->op.invalidate.id, en);
}

/* An unsuppressed memory: when it is a semantic one, its version as the engine has it now
 * (live again, or retired when it was suppressed again since: that later entry follows),
 * stamped with this entry. Forgotten since: its forget entry follows and tombstones it. */
static void unsuppressed(feed_ctx *f, const mn_wal_entry_t *en)
{
    const mn_id_t *id = &en->op.unsuppress.id;
    if (!semantic_change(f, id)) return;
    mn_memory_t m;
    mn_error err = {0};
    if (mn_engine_get(f->g->engine, f->space, id, true, &m, &err) != MN_OK) return;
    if (m.kind == MN_KIND_SEMANTIC) version(f, en, &m);
    mn_memory_clear(&m);
}

static int on_entry(void *arg, uint64_t lsn, const uint8_t *bytes, size_t len)
{
    feed_ctx *f = arg;
    f->next_lsn = lsn + 1;
    mn_wal_entry_t en;
    mn_error err = {0};
    if (mn_wire_wal_decode(bytes, len, &en, &err) != MN_OK) {
        mn_log_warn("gossip: space %s: WAL entry %llu does not decode: %s", f->space,
                    (unsigned long long)lsn, err.message);
        return 0;
    }
    if (en.type == MN_WAL_OP_CONSOLIDATE)
        consolidated(f, &en);
    else if (en.type == MN_WAL_OP_REMEMBER)
        remembered(f, &en);
    else if (en.type == MN_WAL_OP_INVALIDATE)
        invalidated(f, &en);
    else if (en.type == MN_WAL_OP_UNSUPPRESS)
        unsuppressed(f, &en);
    else if (en.type == MN_WAL_OP_FORGET)
        forgotten(f, &en.op.forget.id, en.op.forget.mode, &en);
    else if (en.type == MN_WAL_OP_FORGET_BATCH)
        for (size_t i = 0; i < en.op.forget_batch.n; i++)
            forgotten(f, &en.op.forget_batch.ids[i], en.op.forget_batch.mode, &en);
    mn_wal_entry_clear(&en);
    return 0;
}

void cg_feed_space(cl_gossip *g, const char *space, uint64_t *next_lsn)
{
    mn_error err = {0};
    uint64_t last = 0, epoch = 0;
    mn_space_role_t role;
    if (mn_engine_space_role(g->engine, space, &role, &err) != MN_OK || role != MN_SPACE_PRIMARY)
        return;
    if (mn_engine_space_position(g->engine, space, &last, &epoch, &err) != MN_OK) return;
    if (*next_lsn > last + 1) *next_lsn = 0; /* the log went back (re-created, cut): reread */
    if (*next_lsn && *next_lsn > last) return;
    feed_ctx f = {.g = g, .space = space, .next_lsn = *next_lsn};
    mn_err rc = mn_engine_wal_read(g->engine, space, *next_lsn, FEED_BATCH, on_entry, &f, &err);
    if (rc == MN_ERR_GONE) { /* trimmed past us: read on from the first entry kept */
        mn_log_warn("gossip: space %s: WAL trimmed past entry %llu: read on from the oldest "
                    "kept (older changes come from peers, or with the next consolidation)",
                    space, (unsigned long long)*next_lsn);
        f.next_lsn = 0;
        rc = mn_engine_wal_read(g->engine, space, 0, FEED_BATCH, on_entry, &f, &err);
    }
    if (rc == MN_OK) *next_lsn = f.next_lsn ? f.next_lsn : last + 1;
}

static fed_pos *pos_of(fed_pos **ps, size_t *n, const char *space)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*ps)[i].space, space)) return &(*ps)[i];
    fed_pos *p = realloc(*ps, (*n + 1) * sizeof **ps);
    if (!p) return NULL;
    *ps = p;
    p = &p[(*n)++];
    memset(p, 0, sizeof *p);
    snprintf(p->space, sizeof p->space, "%s", space);
    return p;
}

static bool wait_stop(cl_gossip *g, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&g->feed_mu);
    while (!g->stop && pthread_cond_timedwait(&g->feed_cv, &g->feed_mu, &ts) != ETIMEDOUT) {
    }
    bool stop = g->stop;
    pthread_mutex_unlock(&g->feed_mu);
    return stop;
}

static void *feeder(void *arg)
{
    cl_gossip *g = arg;
    fed_pos *ps = NULL;
    size_t n = 0;
    while (!wait_stop(g, FEED_EVERY_MS)) {
        cg_save_maybe(g, false); /* the store on disk, written behind (cluster_gossip_save.c) */
        mn_space_def_t *defs = NULL;
        size_t nd = 0;
        mn_error err = {0};
        if (mn_engine_space_list(g->engine, &defs, &nd, &err) != MN_OK) continue;
        for (size_t i = 0; i < nd; i++) {
            fed_pos *p = pos_of(&ps, &n, defs[i].name);
            if (p) cg_feed_space(g, p->space, &p->next_lsn);
        }
        free(defs);
    }
    free(ps);
    return NULL;
}

mn_err cg_feed_start(cl_gossip *g, mn_error *err)
{
    pthread_mutex_init(&g->feed_mu, NULL);
    pthread_cond_init(&g->feed_cv, NULL);
    if (pthread_create(&g->feeder, NULL, feeder, g) != 0) {
        pthread_cond_destroy(&g->feed_cv);
        pthread_mutex_destroy(&g->feed_mu);
        return mn_error_set(err, MN_ERR_IO, "gossip: cannot start the feeder thread");
    }
    pthread_setname_np(g->feeder, "mn-gossip-feed"); /* its CPU: bench/cluster_off.py */
    g->feeding = true;
    return MN_OK;
}

void cg_feed_stop(cl_gossip *g)
{
    if (!g->feeding) return;
    pthread_mutex_lock(&g->feed_mu);
    g->stop = true;
    pthread_cond_signal(&g->feed_cv);
    pthread_mutex_unlock(&g->feed_mu);
    pthread_join(g->feeder, NULL);
    pthread_cond_destroy(&g->feed_cv);
    pthread_mutex_destroy(&g->feed_mu);
    g->feeding = false;
}
