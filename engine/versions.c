/* Corrections: a memory corrected by a client becomes a lineage of versions (issue 20;
 * docs/api.md, "Corrections").
 *
 * Episodes are immutable (../shared/ARCHITECTURE.md, rule 4: the cluster merges them as
 * a set), so a correction never rewrites one: it writes a new version with its own id
 * and record, which names the version it supersedes. The lineage is the id the first
 * version got; clients keep using it, and reads show it as the memory's id. The old
 * version keeps its content; only its validity changes (valid_to, superseded), a
 * mutable field like suppression. sid|'v'|lineage names the current version.
 *
 * Concurrency: the writer builds the whole new version from the current one, and the
 * commit thread applies it only if that one is still current (apply_versions.c), so two
 * corrections racing cannot lose either's changes: the loser is rebuilt on the winner
 * (or refused with MN_ERR_CONFLICT when the client named the version it expected). */
#include "versions.h"

#include "background.h"
#include "commit.h"
#include "engine_internal.h"
#include "replica.h"
#include "filter.h"
#include "registry.h"
#include "validate.h"

#include <stdlib.h>
#include <string.h>

/* Rebuilds a lost race this many times before giving up with MN_ERR_CONFLICT. */
#define UPDATE_ATTEMPTS 16

static mn_err get_any(mn__store *st, rocksdb_writebatch_wi_t *b, int cf, const void *k, size_t kl,
                      char **v, size_t *vl, mn_error *err)
{
    return b ? mn__store_get_wi(st, b, cf, k, kl, v, vl, err)
             : mn__store_get(st, cf, k, kl, v, vl, err);
}

/* The record of id without its content; *found false when there is none. */
static mn_err read_meta(mn__store *st, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                        const mn_id_t *id, mn_memory_record_t *rec, bool *found, mn_error *err)
{
    uint8_t k[KEY_MEM_LEN];
    mn__key_mem(k, sp->sid, id);
    char *v;
    size_t vl;
    mn_err rc = get_any(st, b, CF_MEMORIES, k, sizeof k, &v, &vl, err);
    *found = !rc && v;
    if (rc || !v) return rc;
    rc = mn_wire_memory_decode_meta((const uint8_t *)v, vl, rec, err);
    free(v);
    if (rc) *found = false;
    return rc;
}

mn_err mn__versions_resolve(mn__store *st, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                            const mn_id_t *id, mn_id_t *lineage, mn_id_t *head, mn_error *err)
{
    mn_memory_record_t rec;
    bool found;
    mn_err rc = read_meta(st, b, sp, id, &rec, &found, err);
    if (rc) return rc;
    if (!found) return mn_error_set(err, MN_ERR_NOT_FOUND, "memory not found");
    bool gone = rec.tombstone;
    *lineage = mn_id_is_zero(&rec.mem.lineage) ? *id : rec.mem.lineage;
    mn_memory_clear(&rec.mem);
    if (gone) return mn_error_set(err, MN_ERR_GONE, "memory was forgotten");
    uint8_t k[KEY_HEAD_LEN];
    mn__key_head(k, sp->sid, lineage);
    char *v;
    size_t vl;
    if ((rc = get_any(st, b, CF_INDEX, k, sizeof k, &v, &vl, err))) return rc;
    *head = *lineage;
    if (v && vl == 16) memcpy(head->b, v, 16);
    free(v);
    return MN_OK;
}

mn_id_t mn__versions_lineage_of(mn__store *st, const mn__space *sp, const mn_id_t *id)
{
    mn_memory_record_t rec;
    bool found;
    mn_error err = {0};
    if (read_meta(st, NULL, sp, id, &rec, &found, &err) || !found) return *id;
    mn_id_t lineage = mn_id_is_zero(&rec.mem.lineage) ? *id : rec.mem.lineage;
    mn_memory_clear(&rec.mem);
    return lineage;
}

mn_err mn__versions_chain(mn__store *st, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                          const mn_id_t *head, mn_id_t **ids, size_t *n, mn_error *err)
{
    size_t cap = 4;
    *n = 0;
    *ids = malloc(cap * sizeof **ids);
    if (!*ids) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    mn_id_t cur = *head;
    mn_err rc = MN_OK;
    while (!mn_id_is_zero(&cur) && *n < MN__VERSIONS_MAX) {
        if (*n == cap) {
            mn_id_t *g = realloc(*ids, (cap *= 2) * sizeof *g);
            if (!g) {
                rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
                break;
            }
            *ids = g;
        }
        (*ids)[(*n)++] = cur;
        mn_memory_record_t rec;
        bool found;
        if ((rc = read_meta(st, b, sp, &cur, &rec, &found, err)) || !found) break;
        cur = rec.tombstone ? (mn_id_t){{0}} : rec.mem.supersedes;
        mn_memory_clear(&rec.mem);
    }
    if (rc) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}

void mn__versions_present(mn_memory_t *m)
{
    m->version_id = m->id;
    if (!mn_id_is_zero(&m->lineage)) m->id = m->lineage;
    if (!m->version) m->version = 1;
    if (!m->valid_from_ms) m->valid_from_ms = m->created_at_ms;
}

static mn__space *acquire_or_err(mn_engine_t *e, const char *name, mn_error *err)
{
    mn__space *sp = name ? mn__registry_acquire(&e->reg, name) : NULL;
    if (!sp) mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", name ? name : "");
    return sp;
}

/* Version vid of sp as get shows it, into *out when out is not NULL. */
static mn_err read_version(mn_engine_t *e, const mn__space *sp, const mn_id_t *vid,
                           bool with_embedding, mn_memory_t *out, mn_error *err)
{
    if (!out) return MN_OK;
    mn_err rc = mn__record_read(&e->store, e->opts.initial_stability_days, sp, vid, with_embedding,
                                out, err);
    if (!rc) mn__versions_present(out);
    return rc;
}

/* ---- corrections ---- */

static mn_err check_update_req(const mn_update_req_t *r, mn_error *err)
{
    bool any = r->content || r->embedding || r->has_tags || r->has_metadata || r->has_importance ||
               r->has_who || r->has_where || r->has_session;
    if (!any)
        return mn_error_set(err, MN_ERR_INVALID,
                            "nothing to change: give content, embedding, tags, metadata, "
                            "importance or context");
    if (r->idempotency_key && strlen(r->idempotency_key) > MN_IDEMPOTENCY_KEY_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "idempotency_key: more than %d bytes",
                            MN_IDEMPOTENCY_KEY_MAX);
    if (r->by && strlen(r->by) > MN_METADATA_VALUE_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "by: more than %d bytes", MN_METADATA_VALUE_MAX);
    return MN_OK;
}

/* The fields a correction sets, as MN_CHANGED_* bits. */
static uint32_t changed_bits(const mn_update_req_t *r)
{
    bool dropped = r->drop_embedding && r->content;
    return (r->content ? MN_CHANGED_CONTENT : 0) |
           (r->embedding || dropped ? MN_CHANGED_EMBEDDING : 0) |
           (r->has_tags ? MN_CHANGED_TAGS : 0) | (r->has_metadata ? MN_CHANGED_METADATA : 0) |
           (r->has_importance ? MN_CHANGED_IMPORTANCE : 0) |
           (r->has_who || r->has_where || r->has_session ? MN_CHANGED_CONTEXT : 0);
}

/* The new version: cur (the current version, owned by the caller) with the request's
 * fields over it, a new id and the version fields. m borrows from cur and r. */
static void build_version(mn_engine_t *e, const mn_memory_t *cur, const mn_update_req_t *r,
                          mn_memory_t *m)
{
    *m = *cur;
    int64_t now_ms = mn__now(e);
    if (r->content) {
        m->content = (char *)r->content;
        m->content_len = r->content_len;
    }
    if (r->embedding) {
        m->embedding = (float *)r->embedding;
        m->dim = r->dim;
    } else if (r->drop_embedding && r->content) {
        m->embedding = NULL;
        m->dim = 0;
    }
    if (r->has_tags) m->tags = r->tags, m->n_tags = r->n_tags;
    if (r->has_metadata) m->metadata = r->metadata, m->n_metadata = r->n_metadata;
    if (r->has_importance) m->importance = r->importance;
    if (r->has_who) m->who = r->who, m->n_who = r->n_who;
    if (r->has_where) m->where = (char *)r->where;
    if (r->has_session) m->session = (char *)r->session;
    /* valid ranges follow each other even if the wall clock stepped back */
    int64_t from = cur->valid_from_ms ? cur->valid_from_ms : cur->created_at_ms;
    m->valid_from_ms = now_ms > from ? now_ms : from;
    m->id = mn_idgen_next(&e->idgen, now_ms);
    m->lineage = mn_id_is_zero(&cur->lineage) ? cur->id : cur->lineage;
    m->version = (cur->version ? cur->version : 1) + 1;
    m->supersedes = cur->id;
    m->valid_to_ms = 0;
    m->superseded = false;
    m->changed = changed_bits(r);
    m->changed_by = (char *)r->by;
    m->invalidated_by = (mn_id_t){{0}};
    m->invalid_reason = NULL;
    m->idempotency_key = (char *)r->idempotency_key;
    m->ttl_seconds = -1;
    m->forgotten = false;
}

/* A retry of a correction whose idempotency key the space has seen: the version it
 * wrote (MN_ERR_EXISTS when the key belongs to another write). *seen false: new key. */
static mn_err idempotent_retry(mn_engine_t *e, mn__space *sp, const mn_id_t *lineage,
                               const char *key, mn_memory_t *out, bool *seen, mn_error *err)
{
    *seen = false;
    if (!key) return MN_OK;
    uint8_t ik[KEY_SID_LEN + 1 + MN_IDEMPOTENCY_KEY_MAX];
    size_t il = mn__key_idem(ik, sp->sid, key);
    char *v;
    size_t vl;
    mn_err rc = mn__store_get(&e->store, CF_INDEX, ik, il, &v, &vl, err);
    if (rc || !v) return rc;
    if (vl != 16) {
        free(v);
        return mn_error_set(err, MN_ERR_CORRUPT, "idempotency key: bad value");
    }
    mn_id_t vid;
    memcpy(vid.b, v, 16);
    free(v);
    mn_id_t lin, head;
    rc = mn__versions_resolve(&e->store, NULL, sp, &vid, &lin, &head, err);
    if (rc) return rc;
    if (mn_id_cmp(&lin, lineage) || !mn_id_cmp(&vid, lineage))
        return mn_error_set(err, MN_ERR_EXISTS,
                            "idempotency_key: already used by another write in this space");
    *seen = true;
    return read_version(e, sp, &vid, false, out, err);
}

/* One attempt: read the current version, build the next, commit it. */
static mn_err update_once(mn_engine_t *e, mn__space *sp, const mn_id_t *id,
                          const mn_update_req_t *r, mn_id_t *written, mn_error *err)
{
    mn_id_t lineage, head;
    mn_err rc = mn__versions_resolve(&e->store, NULL, sp, id, &lineage, &head, err);
    if (rc) return rc;
    mn_memory_t cur;
    if ((rc = mn__record_read(&e->store, e->opts.initial_stability_days, sp, &head, true, &cur,
                              err)))
        return rc;
    mn_memory_t m;
    build_version(e, &cur, r, &m);
    if (cur.kind != MN_KIND_EPISODIC)
        rc = mn_error_set(err, MN_ERR_INVALID,
                          "id: a semantic memory is consolidation's; correct its episodes");
    else if (r->expected_version && r->expected_version != m.version - 1)
        rc = mn_error_set(err, MN_ERR_CONFLICT, "version: expected %u, the current version is %u",
                          r->expected_version, m.version - 1);
    if (!rc) rc = mn__validate_memory(sp, &m, SIZE_MAX, err);
    if (!rc) {
        mn__pending p;
        mn__pending_init(&p, MN_WAL_OP_UPDATE, sp, m.lifecycle != MN_LIFECYCLE_EPHEMERAL);
        p.entry.op.update.mem = m;
        rc = mn__commit_submit(e, &p);
        if (rc && err) *err = p.err;
        if (!rc) *written = m.id;
    }
    mn_memory_clear(&cur);
    return rc;
}

static mn_err update(mn_engine_t *e, mn__space *sp, const mn_id_t *id, const mn_update_req_t *r,
                     mn_memory_t *out, mn_error *err)
{
    mn_err rc = check_update_req(r, err);
    for (int attempt = 0; !rc && attempt < UPDATE_ATTEMPTS; attempt++) {
        mn_id_t lineage, head, written;
        bool seen;
        if ((rc = mn__versions_resolve(&e->store, NULL, sp, id, &lineage, &head, err))) break;
        if ((rc = idempotent_retry(e, sp, &lineage, r->idempotency_key, out, &seen, err))) break;
        if (seen) return MN_OK;
        rc = update_once(e, sp, id, r, &written, err);
        if (!rc) {
            if (r->embedding && e->opts.link_max) mn__linker_enqueue(e, sp, &written, 1);
            return read_version(e, sp, &written, false, out, err);
        }
        /* lost a race: to another correction (rebuilt on it unless the client expected a
         * version), or to a retry with the same key (answered from it next time round) */
        bool again = (rc == MN_ERR_CONFLICT && !r->expected_version) ||
                     (rc == MN_ERR_EXISTS && r->idempotency_key);
        if (!again) return rc;
        rc = MN_OK;
    }
    if (rc) return rc;
    return mn_error_set(err, MN_ERR_CONFLICT, "too many concurrent corrections; retry");
}

mn_err mn_engine_update(mn_engine_t *e, const char *space, const mn_id_t *id,
                        const mn_update_req_t *req, mn_memory_t *out, mn_error *err)
{
    if (out) memset(out, 0, sizeof *out);
    mn__space *sp = acquire_or_err(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    if (mn__space_writable(sp, err)) {
        mn__space_unref(sp);
        return MN_ERR_UNAVAILABLE;
    }
    mn_err rc = update(e, sp, id, req, out, err);
    mn__space_unref(sp);
    return rc;
}

/* ---- as of a time ---- */

/* The version of the chain ids (newest first) that was current at as_of_ms. */
static mn_err version_at(mn_engine_t *e, mn__space *sp, const mn_id_t *ids, size_t n,
                         int64_t as_of_ms, mn_id_t *out, mn_error *err)
{
    for (size_t i = 0; i < n; i++) {
        mn_memory_record_t rec;
        bool found;
        mn_err rc = read_meta(&e->store, NULL, sp, &ids[i], &rec, &found, err);
        if (rc) return rc;
        if (!found) break;
        int64_t from = rec.mem.valid_from_ms ? rec.mem.valid_from_ms : rec.mem.created_at_ms;
        mn_memory_clear(&rec.mem);
        if (from <= as_of_ms) {
            *out = ids[i];
            return MN_OK;
        }
    }
    return mn_error_set(err, MN_ERR_NOT_FOUND, "memory not found as of then (made later)");
}

mn_err mn_engine_get_as_of(mn_engine_t *e, const char *space, const mn_id_t *id, int64_t as_of_ms,
                           bool with_embedding, mn_memory_t *out, mn_error *err)
{
    if (as_of_ms == MN_TIME_UNSET) return mn_engine_get(e, space, id, with_embedding, out, err);
    memset(out, 0, sizeof *out);
    mn_filter_t f;
    mn_filter_init(&f);
    f.as_of_ms = as_of_ms;
    mn_err rc = mn__filter_check_as_of(&f, mn__now(e), e->opts.as_of_max_age_ms, err);
    if (rc) return rc;
    mn__space *sp = acquire_or_err(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    mn_id_t lineage, head, vid, *ids = NULL;
    size_t n = 0;
    rc = mn__versions_resolve(&e->store, NULL, sp, id, &lineage, &head, err);
    if (!rc) rc = mn__versions_chain(&e->store, NULL, sp, &head, &ids, &n, err);
    if (!rc) rc = version_at(e, sp, ids, n, as_of_ms, &vid, err);
    if (!rc) rc = read_version(e, sp, &vid, with_embedding, out, err);
    if (!rc) /* as it was then */
        out->suppressed = mn__filter_suppressed_at(out->suppressed, out->suppressed_at_ms,
                                                   out->unsuppressed_at_ms, as_of_ms);
    free(ids);
    mn__space_unref(sp);
    return rc;
}

/* ---- history ---- */

static mn_err history(mn_engine_t *e, mn__space *sp, const mn_id_t *id, mn_memory_t **out,
                      size_t *n, mn_error *err)
{
    mn_id_t lineage, head, *ids = NULL;
    size_t nv = 0;
    mn_err rc = mn__versions_resolve(&e->store, NULL, sp, id, &lineage, &head, err);
    if (!rc) rc = mn__versions_chain(&e->store, NULL, sp, &head, &ids, &nv, err);
    if (!rc && !(*out = calloc(nv ? nv : 1, sizeof **out)))
        rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    /* the chain runs from the current version back: the answer is oldest first */
    for (size_t i = 0; !rc && i < nv; i++) {
        rc = read_version(e, sp, &ids[nv - 1 - i], false, &(*out)[*n], err);
        if (!rc) (*n)++;
    }
    free(ids);
    return rc;
}

mn_err mn_engine_history(mn_engine_t *e, const char *space, const mn_id_t *id, mn_memory_t **out,
                         size_t *n, mn_error *err)
{
    *out = NULL;
    *n = 0;
    mn__space *sp = acquire_or_err(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    mn_err rc = history(e, sp, id, out, n, err);
    if (rc) {
        for (size_t i = 0; i < *n; i++)
            mn_memory_clear(&(*out)[i]);
        free(*out);
        *out = NULL;
        *n = 0;
    }
    mn__space_unref(sp);
    return rc;
}

/* ---- invalidation ---- */

mn_err mn_engine_invalidate(mn_engine_t *e, const char *space, const mn_id_t *id, const mn_id_t *by,
                            const char *reason, mn_memory_t *out, mn_error *err)
{
    if (out) memset(out, 0, sizeof *out);
    if (reason && strlen(reason) > MN_INVALID_REASON_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "reason: more than %d bytes",
                            MN_INVALID_REASON_MAX);
    if (reason && !mn_utf8_valid(reason, strlen(reason)))
        return mn_error_set(err, MN_ERR_INVALID, "reason: not valid UTF-8");
    mn__space *sp = acquire_or_err(e, space, err);
    if (!sp) return MN_ERR_NOT_FOUND;
    if (mn__space_writable(sp, err)) {
        mn__space_unref(sp);
        return MN_ERR_UNAVAILABLE;
    }
    mn_id_t lineage, head;
    mn_err rc = mn__versions_resolve(&e->store, NULL, sp, id, &lineage, &head, err);
    if (!rc && by) {
        mn_id_t bl, bh;
        rc = mn__versions_resolve(&e->store, NULL, sp, by, &bl, &bh, err);
        if (rc == MN_ERR_NOT_FOUND || rc == MN_ERR_GONE)
            rc = mn_error_set(err, MN_ERR_INVALID, "by: no live memory of this space");
        else if (!rc && !mn_id_cmp(&bl, &lineage))
            rc = mn_error_set(err, MN_ERR_INVALID, "by: a memory cannot contradict itself");
    }
    if (!rc) {
        mn__pending p;
        mn__pending_init(&p, MN_WAL_OP_INVALIDATE, sp, true);
        p.entry.op.invalidate.id = *id;
        p.entry.op.invalidate.at_ms = mn__now(e);
        if (by) p.entry.op.invalidate.by = *by;
        p.entry.op.invalidate.reason = (char *)reason;
        rc = mn__commit_submit(e, &p);
        if (rc == MN_ERR_EXISTS)
            rc = MN_OK; /* invalidated already: nothing to do */
        else if (rc && err)
            *err = p.err;
        if (!rc) rc = mn__versions_resolve(&e->store, NULL, sp, id, &lineage, &head, err);
    }
    if (!rc) rc = read_version(e, sp, &head, false, out, err);
    mn__space_unref(sp);
    return rc;
}
