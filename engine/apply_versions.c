/* Applying corrections and invalidations (versions.c has the model): the commit thread's
 * side. An update entry carries the whole new version; it is applied only while the
 * version it supersedes is its lineage's current one, which is what serialises
 * concurrent corrections. In the same batch: the old version's record gets valid_to and
 * superseded (its content stays), the new one is written like a remembered memory
 * (record, term list, vector, time key, WAL reference), sid|'v'|lineage names it, and
 * the old version's associations, strength and dedup entry pass to it. Preconditions are all
 * checked before the first write: a refused entry leaves no trace in the batch. */
#include "versions.h"

#include "apply_internal.h"
#include "dedup.h"

#include <stdlib.h>
#include <string.h>

/* The stored edge between from (its `from` end when out) and other, rewritten to name to. */
static void move_edge(mn_engine_t *e, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                      const mn_id_t *from, const mn_id_t *to, const mn_id_t *other, bool out,
                      const uint8_t v[5])
{
    uint8_t ok[KEY_EDGE_LEN], nk[KEY_EDGE_LEN];
    mn__key_edge(ok, sp->sid, out ? from : other, out ? other : from, v[0]);
    mn__key_edge(nk, sp->sid, out ? to : other, out ? other : to, v[0]);
    mn__wb_del(b, e, CF_INDEX, ok, sizeof ok);
    mn__wb_put(b, e, CF_INDEX, nk, sizeof nk, v, 5);
}

/* Edges on from that associate entries staged earlier in this group wrote into the batch:
 * the adjacency holds them only once the group is published. */
static mn_err move_staged_edges(mn_engine_t *e, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                                const mn_id_t *from, const mn_id_t *to, mn_error *err)
{
    mn__pending *const *ps;
    size_t n = mn__commit_group_before(e, &ps);
    for (size_t i = 0; i < n; i++) {
        const mn__pending *q = ps[i];
        if (!q->has_entry || q->sp != sp || q->entry.type != MN_WAL_OP_ASSOCIATE) continue;
        for (size_t j = 0; j < q->entry.op.associate.n; j++) {
            const mn_edge_t *ed = &q->entry.op.associate.edges[j];
            bool out = !mn_id_cmp(&ed->from, from);
            if (!out && mn_id_cmp(&ed->to, from)) continue;
            uint8_t k[KEY_EDGE_LEN];
            mn__key_edge(k, sp->sid, &ed->from, &ed->to, ed->kind);
            char *v;
            size_t vl;
            mn_err rc = mn__store_get_wi(&e->store, b, CF_INDEX, k, sizeof k, &v, &vl, err);
            if (rc) return rc;
            if (v && vl == 5)
                move_edge(e, b, sp, from, to, out ? &ed->to : &ed->from, out, (const uint8_t *)v);
            free(v); /* not written (an end was gone), or moved already */
        }
    }
    return MN_OK;
}

/* The old version's associations, rewritten to name the new one: those of its adjacency
 * (the commit thread is the only writer of it) and those staged earlier in the group. */
static mn_err move_edges(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                         const mn_id_t *from, const mn_id_t *to, mn_error *err)
{
    uint32_t slot = mn__space_find(sp, from);
    for (uint32_t a = 0; slot != UINT32_MAX && a < sp->slots[slot].n_adj; a++) {
        const mn__adj *adj = &sp->slots[slot].adj[a];
        uint8_t v[5] = {adj->kind};
        memcpy(v + 1, &adj->weight, 4);
        move_edge(e, b, sp, from, to, &adj->other, adj->out, v);
    }
    return move_staged_edges(e, b, sp, from, to, err);
}

/* The old version's strength (stability, accesses) goes on with the new one. */
static mn_err copy_strength(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                            const mn_id_t *from, const mn_id_t *to, mn_error *err)
{
    uint8_t fk[KEY_STRENGTH_LEN], tk[KEY_STRENGTH_LEN];
    mn__key_strength(fk, sp->sid, from);
    mn__key_strength(tk, sp->sid, to);
    char *v;
    size_t vl;
    mn_err rc = mn__store_get_wi(&e->store, b, CF_INDEX, fk, sizeof fk, &v, &vl, err);
    if (rc || !v) return rc;
    mn__wb_put(b, e, CF_INDEX, tk, sizeof tk, v, vl);
    free(v);
    return MN_OK;
}

/* The lineage's exact-dedup entry follows its content (docs/api.md, "Duplicates"): the
 * superseded version's hash leaves the index and, where the space dedups, the new
 * version's hash names the new version (mn__dedup_find answers with its lineage). */
static mn_err move_dedup(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                         const mn_memory_t *m, mn_error *err)
{
    mn_err rc = mn__dedup_erase(e, b, sp, &m->supersedes, err);
    if (rc || sp->def.dedup != MN_DEDUP_EXACT) return rc;
    uint8_t h[MN__DEDUP_HASH_LEN];
    mn__dedup_hash(m, h);
    mn__dedup_put(e, b, sp, h, &m->id);
    return MN_OK;
}

/* The preconditions of update entry m; *cur gets the version it supersedes. */
static mn_err check_update(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b,
                           const mn_memory_t *m, mn_memory_record_t *cur)
{
    mn__space *sp = p->sp;
    mn_error *err = &p->err;
    if (mn_id_is_zero(&m->lineage) || mn_id_is_zero(&m->supersedes) || m->version < 2)
        return mn_error_set(err, MN_ERR_INVALID, "update: the new version names no lineage");
    mn_id_t lineage, head;
    mn_err rc = mn__versions_resolve(&e->store, b, sp, &m->lineage, &lineage, &head, err);
    if (rc) return rc;
    if (mn_id_cmp(&lineage, &m->lineage))
        return mn_error_set(err, MN_ERR_INVALID, "update: lineage is not a first version");
    if (mn_id_cmp(&head, &m->supersedes))
        return mn_error_set(err, MN_ERR_CONFLICT,
                            "version %u was superseded by another correction meanwhile",
                            m->version - 1);
    int st;
    if ((rc = mn__record_state_wi(&e->store, b, sp, &m->id, &st, err))) return rc;
    if (st != MN_MEM_ABSENT) return mn_error_set(err, MN_ERR_EXISTS, "update: version id taken");
    if (m->idempotency_key) {
        uint8_t ik[KEY_SID_LEN + 1 + MN_IDEMPOTENCY_KEY_MAX];
        size_t il = mn__key_idem(ik, sp->sid, m->idempotency_key);
        char *v;
        size_t vl;
        if ((rc = mn__store_get_wi(&e->store, b, CF_INDEX, ik, il, &v, &vl, err))) return rc;
        free(v);
        if (v) return mn_error_set(err, MN_ERR_EXISTS, "idempotency_key: seen before");
    }
    bool found;
    if ((rc = mn__record_get_wi(&e->store, b, sp, &head, cur, &found, err))) return rc;
    if (found && !cur->tombstone && cur->mem.version + 1 == m->version) return MN_OK;
    uint32_t have = found ? cur->mem.version : 0;
    if (found) mn_memory_clear(&cur->mem);
    if (!found || cur->tombstone) return mn_error_set(err, MN_ERR_GONE, "memory was forgotten");
    /* the version numbers of a lineage count up by one (an ingested entry may be wrong) */
    return mn_error_set(err, MN_ERR_INVALID, "update: version %u does not follow %u", m->version,
                        have);
}

/* The new version m, written like a remembered memory, and its lineage's head key. */
static mn_err put_version(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b,
                          const mn_memory_t *m)
{
    mn__space *sp = p->sp;
    mn_memory_record_t rec = {.mem = *m, .tombstone = false};
    mn_err rc = mn__apply_put_record(e, b, sp, &rec);
    if (!rc) rc = mn__apply_put_terms(e, b, sp, m, p->kw ? &p->kw[0] : NULL, &p->err);
    if (rc) return rc;
    uint8_t k[KEY_MEM_LEN], tk[KEY_TIME_LEN], rk[KEY_WALREF_LEN], hk[KEY_HEAD_LEN], lsn[8];
    mn__key_mem(k, sp->sid, &m->id);
    if (m->embedding)
        mn__wb_put(b, e, CF_VECTORS, k, sizeof k, m->embedding, (size_t)m->dim * sizeof(float));
    mn__key_time(tk, sp->sid, m->when_ms, &m->id);
    mn__wb_put(b, e, CF_INDEX, tk, sizeof tk, "", 0);
    mn__key_walref(rk, sp->sid, &m->id);
    mn_put_be64(lsn, p->entry.lsn);
    mn__wb_put(b, e, CF_INDEX, rk, sizeof rk, lsn, sizeof lsn);
    mn__key_head(hk, sp->sid, &m->lineage);
    mn__wb_put(b, e, CF_INDEX, hk, sizeof hk, m->id.b, 16);
    if (m->idempotency_key) {
        uint8_t ik[KEY_SID_LEN + 1 + MN_IDEMPOTENCY_KEY_MAX];
        size_t il = mn__key_idem(ik, sp->sid, m->idempotency_key);
        mn__wb_put(b, e, CF_INDEX, ik, il, m->id.b, 16);
    }
    return MN_OK;
}

mn_err mn__apply_update(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    const mn_memory_t *m = &p->entry.op.update.mem;
    p->accepted[0] = false;
    if (m->forgotten) return mn__apply_stub(e, p, b, m, &p->accepted[0], &p->err);
    mn_memory_record_t cur;
    mn_err rc = check_update(e, p, b, m, &cur);
    if (rc) return rc;
    cur.mem.superseded = true;
    if (!cur.mem.valid_to_ms || cur.mem.valid_to_ms > m->valid_from_ms)
        cur.mem.valid_to_ms = m->valid_from_ms;
    rc = mn__apply_put_record(e, b, p->sp, &cur);
    mn_memory_clear(&cur.mem);
    if (!rc) rc = put_version(e, p, b, m);
    if (!rc) rc = copy_strength(e, b, p->sp, &m->supersedes, &m->id, &p->err);
    if (!rc) rc = move_dedup(e, b, p->sp, m, &p->err);
    if (!rc) rc = move_edges(e, b, p->sp, &m->supersedes, &m->id, &p->err);
    if (rc) return rc;
    p->accepted[0] = true;
    return MN_OK;
}

mn_err mn__apply_invalidate(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    const mn_wal_entry_t *en = &p->entry;
    mn_error *err = &p->err;
    mn_id_t lineage, head;
    mn_err rc =
        mn__versions_resolve(&e->store, b, p->sp, &en->op.invalidate.id, &lineage, &head, err);
    if (rc) return rc;
    mn_memory_record_t rec;
    bool found;
    if ((rc = mn__record_get_wi(&e->store, b, p->sp, &head, &rec, &found, err))) return rc;
    if (!found) return mn_error_set(err, MN_ERR_NOT_FOUND, "memory not found");
    if (rec.mem.valid_to_ms) {
        mn_memory_clear(&rec.mem);
        return mn_error_set(err, MN_ERR_EXISTS, "memory was invalidated already");
    }
    if (!(p->versions = malloc(sizeof *p->versions))) {
        mn_memory_clear(&rec.mem);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    p->versions[0] = head;
    p->n_versions = 1;
    rec.mem.valid_to_ms = en->op.invalidate.at_ms;
    rec.mem.invalidated_by = en->op.invalidate.by;
    rec.mem.invalid_reason = en->op.invalidate.reason; /* borrowed for the encode */
    rc = mn__apply_put_record(e, b, p->sp, &rec);
    rec.mem.invalid_reason = NULL;
    mn_memory_clear(&rec.mem);
    return rc;
}

void mn__apply_memory_update(mn__space *sp, const mn__pending *p)
{
    const mn_memory_t *m = &p->entry.op.update.mem;
    if (!p->accepted[0]) return;
    if (m->forgotten) {
        mn__space_remove(sp, &m->id);
        return;
    }
    const mn__kw_buf *kw = p->kw;
    if (mn__space_insert_doc(sp, m, kw ? kw[0].buf : NULL, kw ? kw[0].len : 0)) {
        mn_log_error("space %s: out of memory indexing a correction; restart reloads it",
                     sp->def.name);
        return;
    }
    uint32_t from = mn__space_find(sp, &m->supersedes), to = mn__space_find(sp, &m->id);
    if (from != UINT32_MAX && to != UINT32_MAX) mn__space_supersede(sp, from, to, m->valid_from_ms);
}

void mn__apply_memory_invalidate(mn__space *sp, const mn__pending *p)
{
    if (!p->n_versions) return;
    uint32_t slot = mn__space_find(sp, &p->versions[0]);
    if (slot != UINT32_MAX) sp->slots[slot].valid_to_ms = p->entry.op.invalidate.at_ms;
}
