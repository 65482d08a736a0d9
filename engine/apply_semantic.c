/* Applying semantic memories (consolidate entries), beside apply.c.
 *
 * A consolidate entry keeps three things true in the batch that writes it:
 *  - each episode a memory lists is marked (sid|'c'|episode -> the memories
 *    listing it, sorted) and linked to it (a consolidation edge); one it no
 *    longer lists loses mark and link, and all of them when it is erased;
 *  - the WAL holds only a memory's latest version: the entries that carried
 *    earlier versions drop it (each rewritten once, same lsn and hlc), so an
 *    old summary cannot keep the words of an episode forgotten later; the first
 *    of them keeps its identity (no words, vector or supports: identity_only), so
 *    a replica that reads the log after the rewrite has the memory from there on,
 *    as the primary had it: the entries in between (an edge with it, a
 *    reinforcement, a suppression) find it there too. An identity is applied only
 *    where the memory is not: where it is (live or erased), it changes nothing;
 *  - a memory that lists a forgotten episode is not applied (it may hold its
 *    words), a memory a client forgot stays forgotten, and a retired one
 *    (its cluster was gone) comes back under its id.
 * Erasing an episode (apply.c) notes the memories listing it in p->rederive;
 * the commit thread re-derives them at the end of the group (commit.c). */
#include "apply.h"
#include "apply_internal.h"
#include "assoc.h"
#include "mnemo/assert.h"
#include "repair.h"

#include <stdlib.h>
#include <string.h>

static int id_order(const void *a, const void *b)
{
    return mn_id_cmp(a, b);
}

/* Is id among the n sorted ids (none at all in a memory's identity: ids may be NULL)? */
static bool lists(const mn_id_t *ids, size_t n, const mn_id_t *id)
{
    return n && bsearch(id, ids, n, sizeof *ids, id_order);
}

/* Adds (add) or removes semantic memory sem in the list of the memories that
 * list episode ep (its consolidated mark). */
static mn_err holder_edit(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                          const mn_id_t *ep, const mn_id_t *sem, bool add, mn_error *err)
{
    uint8_t k[KEY_CONSOLIDATED_LEN];
    mn__key_consolidated(k, sp->sid, ep);
    char *v;
    size_t vl;
    mn_err rc = mn__store_get_wi(&e->store, b, CF_INDEX, k, sizeof k, &v, &vl, err);
    if (rc) return rc;
    size_t n = v ? vl / 16 : 0, at = 0;
    const mn_id_t *ids = (const mn_id_t *)v;
    while (at < n && mn_id_cmp(&ids[at], sem) < 0)
        at++;
    bool has = at < n && !mn_id_cmp(&ids[at], sem);
    if (has == add) {
        free(v);
        return MN_OK;
    }
    if (!add && n == 1) {
        free(v);
        mn__wb_del(b, e, CF_INDEX, k, sizeof k);
        return MN_OK;
    }
    mn_id_t *nv = malloc((n + 1) * sizeof *nv);
    if (!nv) {
        free(v);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    if (at) memcpy(nv, ids, at * sizeof *nv);
    size_t m = at;
    if (add) nv[m++] = *sem;
    size_t rest = n - at - (add ? 0 : 1);
    if (rest) memcpy(nv + m, ids + (n - rest), rest * sizeof *nv);
    m += rest;
    free(v);
    mn__wb_put(b, e, CF_INDEX, k, sizeof k, nv, m * sizeof *nv);
    free(nv);
    return MN_OK;
}

/* Episode ep no longer supports semantic memory sem: mark and link go. */
mn_err mn__apply_unlist_support(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                                const mn_id_t *ep, const mn_id_t *sem, mn_error *err)
{
    uint8_t ek[KEY_EDGE_LEN];
    mn__key_edge(ek, sp->sid, ep, sem, MN_EDGE_CONSOLIDATION);
    mn__wb_del(b, e, CF_INDEX, ek, sizeof ek);
    return holder_edit(e, b, sp, ep, sem, false, err);
}

static mn_err push_rederive(mn__pending *p, const mn_id_t *id)
{
    if (p->n_rederive == p->cap_rederive) {
        size_t nc = p->cap_rederive ? p->cap_rederive * 2 : 8;
        mn_id_t *n = realloc(p->rederive, nc * sizeof *n);
        if (!n) return MN_ERR_NOMEM;
        p->rederive = n;
        p->cap_rederive = nc;
    }
    p->rederive[p->n_rederive++] = *id;
    return MN_OK;
}

/* An episode being erased: the semantic memories listing it are noted for
 * re-derivation; its mark and links go. */
mn_err mn__apply_take_holders(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b,
                              const mn_id_t *ep, mn_error *err)
{
    uint8_t k[KEY_CONSOLIDATED_LEN];
    mn__key_consolidated(k, p->sp->sid, ep);
    char *v;
    size_t vl;
    mn_err rc = mn__store_get_wi(&e->store, b, CF_INDEX, k, sizeof k, &v, &vl, err);
    if (rc || !v) return rc;
    for (size_t i = 0; i + 16 <= vl && !rc; i += 16) {
        mn_id_t sem;
        memcpy(sem.b, v + i, 16);
        uint8_t ek[KEY_EDGE_LEN];
        mn__key_edge(ek, p->sp->sid, ep, &sem, MN_EDGE_CONSOLIDATION);
        mn__wb_del(b, e, CF_INDEX, ek, sizeof ek);
        if (push_rederive(p, &sem)) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    free(v);
    mn__wb_del(b, e, CF_INDEX, k, sizeof k);
    return rc;
}

/* A WAL reference of a memory an entry rewrites: (entry, memory). */
typedef struct walref {
    uint64_t lsn;
    mn_id_t id;
    bool first; /* the memory's earliest reference: a consolidate entry keeps its identity */
    bool keep;  /* the entry keeps (part of) the memory: it stays a reference */
} walref;

static int walref_order(const void *a, const void *b)
{
    const walref *x = a, *y = b;
    if (x->lsn != y->lsn) return x->lsn < y->lsn ? -1 : 1;
    return mn_id_cmp(&x->id, &y->id);
}

/* Is m only a semantic memory's identity (identity_only's result)? */
static bool is_identity_only(const mn_memory_t *m)
{
    return !m->content_len && !m->embedding && !m->n_who && !m->where && !m->session &&
           !m->n_tags && !m->n_metadata && !m->n_support && !m->changed_by && !m->invalid_reason;
}

/* Replaces m by its identity: what it is (id, kind, times, lifecycle, strength,
 * suppression, version) without anything its episodes gave it (words, vector, tags,
 * supports). Applied, it makes the memory exist from its first entry on; the entry
 * that wrote its latest version then replaces it whole. */
static void identity_only(mn_memory_t *m)
{
    mn_memory_t id;
    mn_memory_init(&id);
    id.id = m->id;
    id.kind = m->kind;
    id.when_ms = m->when_ms;
    id.created_at_ms = m->created_at_ms;
    id.lifecycle = m->lifecycle;
    id.expires_at_ms = m->expires_at_ms;
    id.suppressed = m->suppressed;
    id.suppressed_at_ms = m->suppressed_at_ms;
    id.unsuppressed_at_ms = m->unsuppressed_at_ms;
    id.stability_days = m->stability_days;
    id.last_access_ms = m->last_access_ms;
    id.access_count = m->access_count;
    id.lineage = m->lineage;
    id.version = m->version;
    id.supersedes = m->supersedes;
    id.valid_from_ms = m->valid_from_ms;
    id.valid_to_ms = m->valid_to_ms;
    id.superseded = m->superseded;
    id.invalidated_by = m->invalidated_by;
    mn_memory_clear(m);
    *m = id;
    mn_assert(is_identity_only(m));
}

/* The memories of consolidate entry en listed (by id) in refs[n], all of this
 * entry's lsn: one whose first reference this is keeps its identity (refs[j].keep),
 * the others are removed. False if the entry did not change. */
static bool drop_versions(mn_wal_entry_t *en, walref *refs, size_t n)
{
    bool changed = false;
    size_t k = 0;
    for (size_t i = 0; i < en->op.consolidate.n; i++) {
        mn_memory_t *m = &en->op.consolidate.mems[i];
        walref *ref = NULL;
        for (size_t j = 0; j < n && !ref && !m->forgotten; j++)
            if (!mn_id_cmp(&m->id, &refs[j].id)) ref = &refs[j];
        if (ref && ref->first) {
            ref->keep = true;
            if (!is_identity_only(m)) {
                identity_only(m);
                changed = true;
            }
        } else if (ref) {
            mn_memory_clear(m);
            changed = true;
            continue;
        }
        en->op.consolidate.mems[k++] = *m;
    }
    en->op.consolidate.n = k;
    return changed;
}

static int walref_by_memory(const void *a, const void *b)
{
    const walref *x = a, *y = b;
    int c = mn_id_cmp(&x->id, &y->id);
    if (c) return c;
    return x->lsn < y->lsn ? -1 : x->lsn > y->lsn;
}

/* Marks each memory's earliest reference, then sorts refs by entry. */
static void mark_first(walref *refs, size_t nr)
{
    qsort(refs, nr, sizeof *refs, walref_by_memory);
    for (size_t i = 0; i < nr; i++)
        refs[i].first = !i || mn_id_cmp(&refs[i - 1].id, &refs[i].id);
    qsort(refs, nr, sizeof *refs, walref_order);
}

/* The memories ids[n] are written anew by the entry at lsn: the consolidate
 * entries that carried their earlier versions drop them, but for the earliest,
 * which keeps each one's identity (each entry rewritten once, keeping its lsn and
 * hlc), and each memory's WAL references become the entries that still carry it
 * plus lsn. */
static mn_err supersede(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                        const mn_id_t *ids, size_t n, uint64_t lsn, mn_error *err)
{
    walref *refs = NULL;
    size_t nr = 0, cap = 0;
    mn_err rc = MN_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        uint8_t rk[KEY_WALREF_LEN];
        mn__key_walref(rk, sp->sid, &ids[i]);
        char *v;
        size_t vl;
        if ((rc = mn__store_get_wi(&e->store, b, CF_INDEX, rk, sizeof rk, &v, &vl, err))) break;
        for (size_t j = 0; v && j + 8 <= vl; j += 8) {
            if (nr == cap) {
                size_t nc = cap ? cap * 2 : 16;
                walref *x = realloc(refs, nc * sizeof *x);
                if (!x) {
                    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
                    break;
                }
                refs = x;
                cap = nc;
            }
            refs[nr++] = (walref){mn_get_be64((const uint8_t *)v + j), ids[i], false, false};
        }
        free(v);
    }
    if (!rc && nr) mark_first(refs, nr);
    for (size_t i = 0; i < nr && !rc;) {
        size_t j = i;
        while (j < nr && refs[j].lsn == refs[i].lsn)
            j++;
        uint8_t wk[KEY_WAL_LEN];
        mn__key_wal(wk, sp->sid, refs[i].lsn);
        char *v;
        size_t vl;
        if ((rc = mn__store_get_wi(&e->store, b, CF_WAL, wk, sizeof wk, &v, &vl, err))) break;
        mn_wal_entry_t en;
        if (v && !mn_wire_wal_decode((const uint8_t *)v, vl, &en, NULL)) {
            if (en.type != MN_WAL_OP_CONSOLIDATE) {
                for (size_t k = i; k < j; k++)
                    refs[k].keep = true;
            } else if (drop_versions(&en, refs + i, j - i)) {
                rc = mn__apply_rewrite_wal(&e->store, b, wk, sizeof wk, &en, err);
            }
            mn_wal_entry_clear(&en);
        } /* trimmed (or unreadable, erased at the memory's forget): nothing to keep */
        free(v);
        i = j;
    }
    /* the new references: kept entries (in lsn order) and this one */
    uint8_t *val = !rc ? malloc((nr + 1) * 8) : NULL;
    if (!rc && !val) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        size_t m = 0;
        for (size_t j = 0; j < nr; j++)
            if (refs[j].keep && !mn_id_cmp(&refs[j].id, &ids[i]))
                mn_put_be64(val + 8 * m++, refs[j].lsn);
        mn_put_be64(val + 8 * m++, lsn);
        uint8_t rk[KEY_WALREF_LEN];
        mn__key_walref(rk, sp->sid, &ids[i]);
        mn__wb_put(b, e, CF_INDEX, rk, sizeof rk, val, m * 8);
    }
    free(val);
    free(refs);
    return rc;
}

/* One semantic memory of a consolidate entry. *written is the id to
 * supersede (its earlier versions), or stays unset. */
static mn_err apply_semantic(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b, size_t i,
                             bool *written, mn_error *err)
{
    mn__space *sp = p->sp;
    const mn_memory_t *m = &p->entry.op.consolidate.mems[i];
    *written = false;
    /* a memory listing a forgotten episode may hold its words: not applied */
    int *state = malloc((m->n_support ? m->n_support : 1) * sizeof *state);
    if (!state) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    mn_err rc = MN_OK;
    bool blocked = false;
    for (size_t j = 0; j < m->n_support && !rc && !blocked; j++) {
        if (p->derived) { /* re-derived from members this batch read live */
            state[j] = MN_MEM_LIVE;
            continue;
        }
        rc = mn__record_state_wi(&e->store, b, sp, &m->support[j], &state[j], err);
        blocked = state[j] == MN_MEM_GONE;
    }
    mn_memory_record_t old;
    memset(&old, 0, sizeof old);
    bool found = false;
    if (!rc && !blocked) rc = mn__record_get_wi(&e->store, b, sp, &m->id, &old, &found, err);
    if (rc || blocked) {
        p->left_blocked += blocked;
        free(state);
        return rc;
    }
    if (found && is_identity_only(m)) { /* it exists here already: its identity changes nothing */
        mn_memory_clear(&old.mem);
        free(state);
        p->left_here++;
        return MN_OK;
    }
    if (found && old.tombstone && !old.mem.retired) { /* forgotten by a client: stays forgotten */
        mn_memory_clear(&old.mem);
        free(state);
        p->left_here++;
        return MN_OK;
    }
    bool was_live = found && !old.tombstone;
    if (found && old.tombstone) { /* retired, and its cluster is back */
        mn__apply_del_gone(e, b, sp, &old.mem, old.forgotten_at_ms);
        p->tombstones--;
    } else if (found) {
        uint8_t tk[KEY_TIME_LEN];
        mn__key_time(tk, sp->sid, old.mem.when_ms, &m->id);
        mn__wb_del(b, e, CF_INDEX, tk, sizeof tk);
        /* episodes it no longer lists lose the mark and the link */
        for (size_t j = 0; j < old.mem.n_support && !rc; j++)
            if (!lists(m->support, m->n_support, &old.mem.support[j]))
                rc = mn__apply_unlist_support(e, b, sp, &old.mem.support[j], &m->id, err);
    }
    uint8_t k[KEY_MEM_LEN];
    mn__key_mem(k, sp->sid, &m->id);
    mn_memory_record_t rec = {.mem = *m, .tombstone = false};
    if (!rc) rc = mn__apply_put_record(e, b, sp, &rec);
    if (!rc) rc = mn__apply_put_terms(e, b, sp, m, p->kw ? &p->kw[i] : NULL, err);
    if (!rc && m->embedding)
        mn__wb_put(b, e, CF_VECTORS, k, sizeof k, m->embedding, (size_t)m->dim * sizeof(float));
    uint8_t tk[KEY_TIME_LEN];
    mn__key_time(tk, sp->sid, m->when_ms, &m->id);
    if (!rc) mn__wb_put(b, e, CF_INDEX, tk, sizeof tk, "", 0);
    /* its new episodes are marked (those not stored here yet too: a forget
     * that reaches them later finds the memory) and linked */
    for (size_t j = 0; j < m->n_support && !rc; j++) {
        if (was_live && lists(old.mem.support, old.mem.n_support, &m->support[j]))
            continue; /* marked and linked when it joined */
        if ((rc = holder_edit(e, b, sp, &m->support[j], &m->id, true, err))) break;
        if (state[j] != MN_MEM_LIVE) continue;
        uint8_t ek[KEY_EDGE_LEN], v[5];
        float w = 1.0f;
        mn__key_edge(ek, sp->sid, &m->support[j], &m->id, MN_EDGE_CONSOLIDATION);
        v[0] = MN_EDGE_CONSOLIDATION;
        memcpy(v + 1, &w, 4);
        mn__wb_put(b, e, CF_INDEX, ek, sizeof ek, v, sizeof v);
    }
    mn_memory_clear(&old.mem);
    free(state);
    if (!rc) *written = true;
    return rc;
}

/* New, updated or revived semantic memories and the episodes they list, and
 * erased stubs (retired or forgotten). */
mn_err mn__apply_consolidate(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    const mn_wal_entry_t *en = &p->entry;
    size_t n = en->op.consolidate.n;
    mn_id_t *written = malloc((n ? n : 1) * sizeof *written);
    if (!written) return mn_error_set(&p->err, MN_ERR_NOMEM, "out of memory");
    size_t nw = 0;
    mn_err rc = MN_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        const mn_memory_t *m = &en->op.consolidate.mems[i];
        p->accepted[i] = false;
        if ((rc = mn__repair_clear(e, b, p->sp, &m->id, &p->err))) break; /* it is dealt with */
        if (m->forgotten) {
            rc = mn__apply_stub(e, p, b, m, &p->accepted[i], &p->err);
            continue;
        }
        rc = apply_semantic(e, p, b, i, &p->accepted[i], &p->err);
        if (!rc && p->accepted[i]) written[nw++] = m->id;
    }
    if (!rc) rc = supersede(e, b, p->sp, written, nw, en->lsn, &p->err);
    free(written);
    return rc;
}
