/* Applying WAL entries: the only code that changes a space's state. The commit
 * thread calls mn__apply_entry for each entry of a group (store mutations into
 * the group's indexed batch, the entry itself included), writes the batch,
 * then calls mn__apply_memory (in-memory effects). Crash recovery needs no
 * replay because entry and state commit atomically; replicas will call the
 * same two functions with entries shipped from their primary. Apply is
 * deterministic given the stored state: an id that is already stored or
 * tombstoned is never written again, which is what keeps forgotten memories
 * forgotten through replay and sync.
 *
 * Erasure: forgetting a memory (mode delete, or expiry) erases its content and
 * vector everywhere, the WAL included. Each memory keeps the lsns of the
 * entries that carry it (sid|'w'|id); the forget rewrites those entries in the
 * same batch, replacing the memory by an erased stub (id, kind, times,
 * forgotten_at; the entry keeps its space, epoch, lsn and hlc and gets a new
 * CRC). Applying a stub writes a tombstone, or forgets the memory if it is
 * live, so replay and replicas never bring it back. A stored remember or
 * consolidate entry holds only the memories it applied: a copy of one that is
 * already here, or forgotten here, stays out of the log. A replica stores its
 * primary's bytes instead; a memory it left out there (its state differs) gets a
 * reference to the entry all the same, so erasing that id strips it there too.
 *
 * Derived data is written in the same batch as what it derives from: each
 * memory's keyword term list (keywords family, loaded at start-up instead of
 * tokenising), and for a forgotten memory its entry in the as-of index.
 *
 * Semantic memories (consolidate entries) are applied in apply_semantic.c:
 * marks and links of the episodes they list, the WAL's latest version only.
 * Erasing an episode collects the semantic memories listing it (p->rederive):
 * the commit thread re-derives them at the end of the group, in the same
 * batch (commit.c).
 *
 * Two kinds of tombstone: forgotten (by a client, or expired), which never
 * comes back, and retired (a semantic memory whose cluster consolidation no
 * longer finds), which a consolidate entry may bring back under the same id.
 * A client's forget of a retired memory makes it a forgotten one, and a
 * forget that another engine wrote (ingested, or replicated from this space's
 * primary) leaves a tombstone even for an id unknown here, so the key stays
 * blocked on every engine that saw it: a consolidation here cannot make a
 * forgotten semantic memory again under its id.
 *
 * Dropping a space is an entry too: its point mutations go in the indexed
 * batch, its range deletions (mn__apply_ranges) in the plain batch the group is
 * written as, after them. */
#include "apply.h"

#include "apply_internal.h"
#include "assoc.h"
#include "consolidate.h"
#include "dedup.h"
#include "events.h"
#include "mnemo/assert.h"
#include "record.h"
#include "repair.h"
#include "space_index.h"
#include "text/keyword.h"
#include "vec.h"
#include "versions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char META_SPACE_PREFIX[] = "space/";
static const char META_DROPPED_PREFIX[] = "dropped/";

/* A written memory's term list: stored with it (keywords family) and kept in
 * *kw for the in-memory index when the caller asks for it. */
mn_err mn__apply_put_terms(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                           const mn_memory_t *m, mn__kw_buf *kw, mn_error *err)
{
    uint8_t k[KEY_MEM_LEN];
    mn__key_mem(k, sp->sid, &m->id);
    if (!m->content || !m->content_len) {
        rocksdb_writebatch_wi_delete_cf(b, e->store.cf[CF_KEYWORDS], (const char *)k, sizeof k);
        return MN_OK;
    }
    uint8_t *doc;
    size_t len;
    if (mn_kw_doc_encode(mn_kw_language(sp->kw), &(mn_kw_text_t){MN__KW_TEXT_OF(m)}, &doc, &len))
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory indexing words");
    mn__wb_put(b, e, CF_KEYWORDS, k, sizeof k, doc, len);
    if (kw) {
        free(kw->buf);
        kw->buf = doc;
        kw->len = len;
    } else {
        free(doc);
    }
    return MN_OK;
}

mn_err mn__apply_put_record(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                            const mn_memory_record_t *rec)
{
    uint8_t k[KEY_MEM_LEN];
    mn__key_mem(k, sp->sid, &rec->mem.id);
    uint8_t *buf;
    size_t len;
    mn_err rc = mn_wire_memory_encode(rec, false, &buf, &len);
    if (rc) return rc;
    mn__wb_put(b, e, CF_MEMORIES, k, sizeof k, buf, len);
    free(buf);
    return MN_OK;
}

/* Is id a live (stored, not tombstoned) memory, as the batch sees it? */
static mn_err is_live(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp, const mn_id_t *id,
                      bool *live, mn_error *err)
{
    int st;
    mn_err rc = mn__record_state_wi(&e->store, b, sp, id, &st, err);
    *live = !rc && st == MN_MEM_LIVE;
    return rc;
}

/* Replaces m by its erased stub: id, kind, when, created_at, forgotten_at. */
static void to_stub(mn_memory_t *m, int64_t at_ms, bool retired)
{
    mn_memory_t stub;
    mn_memory_init(&stub);
    stub.id = m->id;
    stub.kind = m->kind;
    stub.when_ms = m->when_ms;
    stub.created_at_ms = m->created_at_ms;
    stub.forgotten = true;
    stub.forgotten_at_ms = at_ms;
    stub.retired = retired && m->kind == MN_KIND_SEMANTIC;
    mn_memory_clear(m);
    *m = stub;
}

bool mn__wal_strip_memory(mn_wal_entry_t *en, const mn_id_t *id, int64_t at_ms, bool retired)
{
    if (en->type == MN_WAL_OP_UPDATE) { /* a version of a corrected memory */
        mn_memory_t *m = &en->op.update.mem;
        if (mn_id_cmp(&m->id, id) || m->forgotten) return false;
        to_stub(m, at_ms, retired);
        return true;
    }
    if (en->type == MN_WAL_OP_EMBED) { /* the vector goes; the entry stays, changing nothing */
        if (mn_id_cmp(&en->op.embed.id, id) || !en->op.embed.embedding) return false;
        free(en->op.embed.embedding);
        en->op.embed.embedding = NULL;
        en->op.embed.dim = 0;
        return true;
    }
    mn_memory_t *mems = NULL;
    size_t n = 0;
    if (en->type == MN_WAL_OP_REMEMBER) {
        mems = en->op.remember.mems;
        n = en->op.remember.n;
    } else if (en->type == MN_WAL_OP_CONSOLIDATE) {
        mems = en->op.consolidate.mems;
        n = en->op.consolidate.n;
    }
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        mn_memory_t *m = &mems[i];
        if (mn_id_cmp(&m->id, id) || m->forgotten) continue;
        to_stub(m, at_ms, retired);
        found = true;
    }
    if (found && en->type == MN_WAL_OP_REMEMBER) {
        size_t k = 0;
        for (size_t i = 0; i < en->op.remember.n_edges; i++) {
            const mn_edge_t *ed = &en->op.remember.edges[i];
            if (mn_id_cmp(&ed->from, id) && mn_id_cmp(&ed->to, id))
                en->op.remember.edges[k++] = *ed;
        }
        en->op.remember.n_edges = k;
    }
    return found;
}

mn_err mn__apply_rewrite_wal(mn__store *st, rocksdb_writebatch_wi_t *b, const void *wk, size_t wkl,
                             const mn_wal_entry_t *en, mn_error *err)
{
    uint8_t *buf;
    size_t len;
    mn_err rc = mn_wire_wal_encode(en, &buf, &len);
    if (rc) return mn_error_set(err, rc, "re-encoding a WAL entry");
    rocksdb_writebatch_wi_put_cf(b, st->cf[CF_WAL], wk, wkl, (const char *)buf, len);
    free(buf);
    return MN_OK;
}

/* A forget batch's WAL entries being erased: each decoded once, stripped of every memory
 * the batch forgets, written back once (walcache_flush). Without it a chunk of 1000
 * memories remembered in one batch would decode, re-encode and put the same entry 1000
 * times into the group's batch. */
typedef struct mn__walcached {
    uint64_t lsn;
    mn_wal_entry_t en;
    bool dirty;
} mn__walcached;
struct mn__walcache {
    mn__walcached *items;
    size_t n, cap;
};

static void walcache_clear(struct mn__walcache *wc)
{
    for (size_t i = 0; i < wc->n; i++)
        mn_wal_entry_clear(&wc->items[i].en);
    free(wc->items);
    memset(wc, 0, sizeof *wc);
}

/* Writes the entries the batch changed into b, then empties the cache. */
static mn_err walcache_flush(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                             struct mn__walcache *wc, mn_error *err)
{
    mn_err rc = MN_OK;
    for (size_t i = 0; i < wc->n && !rc; i++) {
        if (!wc->items[i].dirty) continue;
        uint8_t wk[KEY_WAL_LEN];
        mn__key_wal(wk, sp->sid, wc->items[i].lsn);
        rc = mn__apply_rewrite_wal(&e->store, b, wk, sizeof wk, &wc->items[i].en, err);
    }
    walcache_clear(wc);
    return rc;
}

/* The WAL entry at wk (lsn) decoded: from the cache, or read and added to it; *en NULL
 * when it was trimmed or could not be read (then it is deleted: it must not keep the
 * content). Without a cache, *en is the caller's tmp (clear it). */
static mn_err wal_entry_for(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                            struct mn__walcache *wc, const uint8_t *wk, uint64_t lsn,
                            mn_wal_entry_t *tmp, mn__walcached **cached, mn_error *err)
{
    *cached = NULL;
    for (size_t i = 0; wc && i < wc->n; i++)
        if (wc->items[i].lsn == lsn) {
            *cached = &wc->items[i];
            return MN_OK;
        }
    char *v;
    size_t vl;
    mn_err rc = mn__store_get_wi(&e->store, b, CF_WAL, wk, KEY_WAL_LEN, &v, &vl, err);
    if (rc || !v) return rc; /* trimmed */
    mn_error derr = {0};
    mn_err drc = mn_wire_wal_decode((const uint8_t *)v, vl, tmp, &derr);
    free(v);
    if (drc) {
        mn_log_error("space %s: WAL entry %llu is unreadable (%s); deleted to erase a "
                     "forgotten memory",
                     sp->def.name, (unsigned long long)lsn, derr.message);
        mn__wb_del(b, e, CF_WAL, wk, KEY_WAL_LEN);
        return MN_OK;
    }
    if (wc && wc->n == wc->cap) {
        size_t nc = wc->cap ? wc->cap * 2 : 16;
        mn__walcached *x = realloc(wc->items, nc * sizeof *x);
        if (!x) {
            mn_wal_entry_clear(tmp);
            return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        }
        wc->items = x;
        wc->cap = nc;
    }
    mn__walcached c = {.lsn = lsn, .en = *tmp};
    if (wc) wc->items[wc->n++] = c;
    *cached = wc ? &wc->items[wc->n - 1] : NULL;
    return MN_OK;
}

/* Rewrites the WAL entries that carry id without its content (same space,
 * epoch, lsn and hlc; a new CRC), and drops its WAL references. Entries that
 * were trimmed are gone already; one that cannot be read is deleted rather
 * than left holding the content. With a cache (a forget batch) the rewrite
 * waits for walcache_flush. */
static mn_err erase_in_wal(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                           struct mn__walcache *wc, const mn_id_t *id, int64_t at_ms, bool retired,
                           mn_error *err)
{
    uint8_t rk[KEY_WALREF_LEN];
    mn__key_walref(rk, sp->sid, id);
    char *refs;
    size_t rl;
    mn_err rc = mn__store_get_wi(&e->store, b, CF_INDEX, rk, sizeof rk, &refs, &rl, err);
    if (rc || !refs) return rc;
    for (size_t i = 0; i + 8 <= rl && !rc; i += 8) {
        uint64_t lsn = mn_get_be64((const uint8_t *)refs + i);
        uint8_t wk[KEY_WAL_LEN];
        mn__key_wal(wk, sp->sid, lsn);
        mn_wal_entry_t tmp = {0};
        mn__walcached *c;
        if ((rc = wal_entry_for(e, b, sp, wc, wk, lsn, &tmp, &c, err))) break;
        if (c) {
            c->dirty |= mn__wal_strip_memory(&c->en, id, at_ms, retired);
        } else if (tmp.type != MN_WAL_OP_NONE) {
            if (mn__wal_strip_memory(&tmp, id, at_ms, retired))
                rc = mn__apply_rewrite_wal(&e->store, b, wk, sizeof wk, &tmp, err);
            mn_wal_entry_clear(&tmp);
        }
    }
    free(refs);
    if (!rc) mn__wb_del(b, e, CF_INDEX, rk, sizeof rk);
    return rc;
}

/* Notes a forgotten memory in the as-of index: what an as-of read may show of it. */
static void put_gone(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                     const mn_memory_t *m, int64_t gone_at)
{
    uint8_t gk[KEY_TIME_LEN], v[GONE_VALUE_LEN], w[8];
    mn__key_gone(gk, sp->sid, m->when_ms, &m->id);
    v[0] = (uint8_t)m->kind;
    mn_put_be64(v + 1, (uint64_t)m->created_at_ms);
    mn_put_be64(v + 9, (uint64_t)gone_at);
    mn__wb_put(b, e, CF_INDEX, gk, sizeof gk, v, sizeof v);
    mn__key_gone_by_time(gk, sp->sid, gone_at, &m->id);
    mn_put_be64(w, (uint64_t)m->when_ms);
    mn__wb_put(b, e, CF_INDEX, gk, sizeof gk, w, sizeof w);
}

/* A retired memory comes back: its as-of index entries go (as-of reads see
 * the memory that is there). */
void mn__apply_del_gone(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                        const mn_memory_t *m, int64_t gone_at)
{
    uint8_t gk[KEY_TIME_LEN];
    mn__key_gone(gk, sp->sid, m->when_ms, &m->id);
    mn__wb_del(b, e, CF_INDEX, gk, sizeof gk);
    mn__key_gone_by_time(gk, sp->sid, gone_at, &m->id);
    mn__wb_del(b, e, CF_INDEX, gk, sizeof gk);
}

/* Forgets a live memory for good, in the batch: its record becomes a tombstone
 * (id, kind, when, created_at, forgotten_at; retired for a semantic memory
 * consolidation retires), and its vector, time index key, edges, strength,
 * consolidation marks and its content in the WAL go. An episode's semantic
 * memories are noted for re-derivation. */
static mn_err erase_memory(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b,
                           mn_memory_record_t *rec, int64_t at_ms, bool retired, mn_error *err)
{
    mn__space *sp = p->sp;
    const mn_id_t *id = &rec->mem.id;
    uint8_t k[KEY_MEM_LEN], tk[KEY_TIME_LEN];
    mn__key_mem(k, sp->sid, id);
    mn__key_time(tk, sp->sid, rec->mem.when_ms, id);
    mn__wb_del(b, e, CF_VECTORS, k, sizeof k);
    mn__wb_del(b, e, CF_KEYWORDS, k, sizeof k);
    mn__wb_del(b, e, CF_INDEX, tk, sizeof tk);
    /* its associations go too (the commit thread is the only writer of the adjacency) */
    uint32_t slot = mn__space_find(sp, id);
    for (uint32_t a = 0; slot != UINT32_MAX && a < sp->slots[slot].n_adj; a++) {
        const mn__adj *adj = &sp->slots[slot].adj[a];
        uint8_t ek[KEY_EDGE_LEN];
        if (adj->out)
            mn__key_edge(ek, sp->sid, id, &adj->other, adj->kind);
        else
            mn__key_edge(ek, sp->sid, &adj->other, id, adj->kind);
        mn__wb_del(b, e, CF_INDEX, ek, sizeof ek);
    }
    uint8_t sk[KEY_STRENGTH_LEN];
    mn__key_strength(sk, sp->sid, id);
    mn__wb_del(b, e, CF_INDEX, sk, sizeof sk);
    mn_err rc = MN_OK;
    if (rec->mem.kind == MN_KIND_SEMANTIC) { /* its episodes lose the mark and the link */
        for (size_t j = 0; j < rec->mem.n_support && !rc; j++)
            rc = mn__apply_unlist_support(e, b, sp, &rec->mem.support[j], id, err);
        if (!rc) rc = mn__repair_clear(e, b, sp, id, err);
    } else
        rc = mn__apply_take_holders(e, p, b, id, err);
    if (!rc) rc = erase_in_wal(e, b, sp, p->walcache, id, at_ms, retired, err);
    if (!rc) rc = mn__dedup_erase(e, b, sp, id, err);
    if (rc) return rc;
    /* as-of reads show a forgotten memory once: its first version stands for its lineage */
    if (mn_id_is_zero(&rec->mem.lineage)) put_gone(e, b, sp, &rec->mem, at_ms);
    rec->tombstone = true;
    rec->forgotten_at_ms = at_ms;
    rec->mem.retired = retired && rec->mem.kind == MN_KIND_SEMANTIC;
    p->tombstones++;
    return mn__apply_put_record(e, b, sp, rec);
}

/* A retired memory that a client forgets, or whose forgotten stub arrives:
 * forgotten for good from now on. */
static mn_err unretire(mn_engine_t *e, rocksdb_writebatch_wi_t *b, mn__space *sp,
                       mn_memory_record_t *rec)
{
    rec->mem.retired = false;
    return mn__apply_put_record(e, b, sp, rec);
}

/* A memory that arrives erased (a stub in a rewritten entry): a tombstone if it
 * is unknown here, erased if it is live, and a retired tombstone that meets a
 * forgotten stub becomes forgotten. *applied says whether the state changed. */
mn_err mn__apply_stub(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b,
                      const mn_memory_t *m, bool *applied, mn_error *err)
{
    mn__space *sp = p->sp;
    mn_memory_record_t rec;
    bool found;
    *applied = false;
    mn_err rc = mn__record_get_wi(&e->store, b, sp, &m->id, &rec, &found, err);
    if (rc) return rc;
    if (found) {
        if (!rec.tombstone)
            rc = erase_memory(e, p, b, &rec, m->forgotten_at_ms, m->retired, err);
        else if (rec.mem.retired && !m->retired)
            rc = unretire(e, b, sp, &rec);
        else {
            mn_memory_clear(&rec.mem);
            return MN_OK;
        }
        *applied = !rc;
        mn_memory_clear(&rec.mem);
        return rc;
    }
    /* an entry this replica stored without applying the memory still carries it */
    if ((rc = erase_in_wal(e, b, sp, p->walcache, &m->id, m->forgotten_at_ms, m->retired, err)))
        return rc;
    mn_memory_record_t t = {.mem = *m, .tombstone = true, .forgotten_at_ms = m->forgotten_at_ms};
    t.mem.retired = m->retired && m->kind == MN_KIND_SEMANTIC;
    if ((rc = mn__apply_put_record(e, b, sp, &t))) return rc;
    put_gone(e, b, sp, m, m->forgotten_at_ms);
    p->tombstones++;
    *applied = true;
    return MN_OK;
}

/* Writes the edges whose two ends are live. strict (client associations): a
 * dead or unknown end fails the whole op before anything is written;
 * otherwise (auto-links) such an edge is skipped. */
static mn_err apply_edges(mn_engine_t *e, mn__space *sp, const mn_edge_t *edges, size_t n,
                          rocksdb_writebatch_wi_t *b, bool strict, mn_error *err)
{
    bool *ok = malloc((n ? n : 1) * sizeof *ok);
    if (!ok) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    mn_err rc = MN_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        bool a = false, c = false;
        rc = is_live(e, b, sp, &edges[i].from, &a, err);
        if (!rc) rc = is_live(e, b, sp, &edges[i].to, &c, err);
        bool self = !mn_id_cmp(&edges[i].from, &edges[i].to); /* two versions of one memory */
        ok[i] = a && c && !self;
        if (!rc && strict && self)
            rc = mn_error_set(err, MN_ERR_INVALID, "edges[%zu]: a memory cannot link to itself", i);
        else if (!rc && strict && !ok[i])
            rc = mn_error_set(err, MN_ERR_NOT_FOUND, "edges[%zu]: %s memory not found", i,
                              !a ? "from" : "to");
    }
    for (size_t i = 0; i < n && !rc; i++) {
        if (!ok[i]) continue;
        uint8_t k[KEY_EDGE_LEN], v[5];
        mn__key_edge(k, sp->sid, &edges[i].from, &edges[i].to, edges[i].kind);
        v[0] = edges[i].kind;
        memcpy(v + 1, &edges[i].weight, 4);
        mn__wb_put(b, e, CF_INDEX, k, sizeof k, v, sizeof v);
    }
    free(ok);
    return rc;
}

static mn_err apply_remember(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    const mn_wal_entry_t *en = &p->entry;
    mn__space *sp = p->sp;
    mn_error *err = &p->err;
    for (size_t i = 0; i < en->op.remember.n; i++) {
        const mn_memory_t *m = &en->op.remember.mems[i];
        p->accepted[i] = false;
        mn_err rc;
        if (m->forgotten) {
            if ((rc = mn__apply_stub(e, p, b, m, &p->accepted[i], err))) return rc;
            continue;
        }
        uint8_t k[KEY_MEM_LEN];
        mn__key_mem(k, sp->sid, &m->id);
        char *v;
        size_t vl;
        rc = mn__store_get_wi(&e->store, b, CF_MEMORIES, k, sizeof k, &v, &vl, err);
        if (rc) return rc;
        if (v) { /* stored or tombstoned already: never resurrect */
            free(v);
            p->left_here++;
            continue;
        }
        if (m->idempotency_key) {
            uint8_t ik[KEY_SID_LEN + 1 + MN_IDEMPOTENCY_KEY_MAX];
            size_t il = mn__key_idem(ik, sp->sid, m->idempotency_key);
            rc = mn__store_get_wi(&e->store, b, CF_INDEX, ik, il, &v, &vl, err);
            if (rc) return rc;
            if (v) {
                free(v);
                continue;
            }
            mn__wb_put(b, e, CF_INDEX, ik, il, m->id.b, 16);
        }
        if (p->dedup) mn__dedup_put(e, b, sp, p->dedup[i], &m->id);
        mn_memory_record_t rec = {.mem = *m, .tombstone = false};
        if ((rc = mn__apply_put_record(e, b, sp, &rec))) return rc;
        if ((rc = mn__apply_put_terms(e, b, sp, m, p->kw ? &p->kw[i] : NULL, err))) return rc;
        if (m->embedding)
            mn__wb_put(b, e, CF_VECTORS, k, sizeof k, m->embedding, (size_t)m->dim * sizeof(float));
        uint8_t tk[KEY_TIME_LEN];
        mn__key_time(tk, sp->sid, m->when_ms, &m->id);
        mn__wb_put(b, e, CF_INDEX, tk, sizeof tk, "", 0);
        uint8_t rk[KEY_WALREF_LEN], lsn[8];
        mn__key_walref(rk, sp->sid, &m->id);
        mn_put_be64(lsn, en->lsn);
        mn__wb_put(b, e, CF_INDEX, rk, sizeof rk, lsn, sizeof lsn);
        p->accepted[i] = true;
    }
    return apply_edges(e, sp, en->op.remember.edges, en->op.remember.n_edges, b, false, err);
}

/* The versions a forget of rec's memory acts on, into p->versions: its lineage's current
 * version first, back to the first (one, for a memory never corrected); rec becomes the
 * current version's record. */
static mn_err forget_versions(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b,
                              mn_memory_record_t *rec)
{
    mn_id_t lineage, head;
    mn_err rc = mn__versions_resolve(&e->store, b, p->sp, &rec->mem.id, &lineage, &head, &p->err);
    if (!rc)
        rc = mn__versions_chain(&e->store, b, p->sp, &head, &p->versions, &p->n_versions, &p->err);
    if (rc || !mn_id_cmp(&head, &rec->mem.id)) return rc;
    mn_memory_clear(&rec->mem);
    bool found;
    rc = mn__record_get_wi(&e->store, b, p->sp, &head, rec, &found, &p->err);
    if (!rc && (!found || rec->tombstone))
        rc = mn_error_set(&p->err, MN_ERR_GONE, "memory was forgotten");
    return rc;
}

/* A delete of a corrected memory: every version older than the current one (rec, erased
 * by the caller) goes the same way, and the lineage's head key with them. */
static mn_err erase_older_versions(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b,
                                   int64_t at_ms, mn_error *err)
{
    mn_err rc = MN_OK;
    for (size_t i = 1; i < p->n_versions && !rc; i++) {
        mn_memory_record_t v;
        bool found;
        if ((rc = mn__record_get_wi(&e->store, b, p->sp, &p->versions[i], &v, &found, err)) ||
            !found)
            continue;
        if (!v.tombstone) rc = erase_memory(e, p, b, &v, at_ms, false, err);
        mn_memory_clear(&v.mem);
    }
    if (!rc && p->n_versions > 1) {
        uint8_t hk[KEY_HEAD_LEN];
        mn__key_head(hk, p->sp->sid, &p->versions[p->n_versions - 1]);
        mn__wb_del(b, e, CF_INDEX, hk, sizeof hk);
    }
    return rc;
}

static mn_err apply_forget(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    const mn_wal_entry_t *en = &p->entry;
    mn__space *sp = p->sp;
    mn_error *err = &p->err;
    const mn_id_t *id = en->type == MN_WAL_OP_FORGET ? &en->op.forget.id : &en->op.unsuppress.id;
    bool del_client = en->type == MN_WAL_OP_FORGET && en->op.forget.mode == MN_FORGET_DELETE &&
                      en->op.forget.reason == MN_FORGET_REASON_CLIENT;
    mn_memory_record_t rec;
    bool found;
    mn_err rc = mn__record_get_wi(&e->store, b, sp, id, &rec, &found, err);
    if (rc) return rc;
    if (!found) {
        if (!((p->foreign || p->replicated) && en->type == MN_WAL_OP_FORGET &&
              en->op.forget.mode == MN_FORGET_DELETE))
            return mn_error_set(err, MN_ERR_NOT_FOUND, "memory not found");
        /* another engine (or this replica's primary) forgot a memory unknown here: its
         * tombstone, so it can neither arrive nor be consolidated here later. A replica
         * meets this when its state differs from its primary's (a copy made from a
         * holder that never applied the memory); the entry is applied, not refused. */
        if (p->replicated) p->forget_unknown = true;
        /* an entry this replica stored without applying the memory carries its words */
        if ((rc = erase_in_wal(e, b, sp, p->walcache, id, en->op.forget.at_ms, false, err)))
            return rc;
        mn_memory_record_t t = {.tombstone = true, .forgotten_at_ms = en->op.forget.at_ms};
        mn_memory_init(&t.mem);
        t.mem.id = *id;
        t.mem.kind = mn__consolidate_made(id) ? MN_KIND_SEMANTIC : MN_KIND_EPISODIC;
        t.mem.when_ms = 0;
        if ((rc = mn__apply_put_record(e, b, sp, &t))) return rc;
        p->tombstones++;
        return MN_OK;
    }
    if (rec.tombstone) {
        if (del_client && rec.mem.retired) { /* a retired memory a client forgets: for good */
            rc = unretire(e, b, sp, &rec);
            mn_memory_clear(&rec.mem);
            return rc;
        }
        mn_memory_clear(&rec.mem);
        return mn_error_set(err, MN_ERR_GONE, "memory was forgotten");
    }
    /* a corrected memory is forgotten, suppressed or restored as a whole: its lineage */
    if ((rc = forget_versions(e, p, b, &rec))) {
        mn_memory_clear(&rec.mem);
        return rc;
    }
    if (en->type == MN_WAL_OP_FORGET && en->op.forget.mode == MN_FORGET_DELETE) {
        /* an expired memory was gone when its TTL ran out, not when the sweeper came */
        int64_t at = en->op.forget.at_ms;
        if (en->op.forget.reason == MN_FORGET_REASON_EXPIRED && rec.mem.expires_at_ms > 0 &&
            rec.mem.expires_at_ms < at)
            at = rec.mem.expires_at_ms;
        rc = erase_memory(e, p, b, &rec, at, false, err);
        if (!rc) rc = erase_older_versions(e, p, b, at, err);
        mn_memory_clear(&rec.mem);
        return rc;
    }
    /* the times of the latest suppression, for as-of reads */
    if (en->type == MN_WAL_OP_FORGET && !rec.mem.suppressed) {
        rec.mem.suppressed = true;
        rec.mem.suppressed_at_ms = en->op.forget.at_ms;
    } else if (en->type == MN_WAL_OP_UNSUPPRESS && rec.mem.suppressed) {
        rec.mem.suppressed = false;
        rec.mem.unsuppressed_at_ms =
            en->op.unsuppress.at_ms ? en->op.unsuppress.at_ms : mn_hlc_ms(en->hlc);
    }
    rc = mn__apply_put_record(e, b, sp, &rec);
    mn_memory_clear(&rec.mem);
    return rc;
}

typedef struct id_list {
    mn_id_t *ids;
    size_t n, cap;
} id_list;

/* After apply_forget of one id of a batch: the slots its memory_forget would act on (the
 * lineage apply_forget put in p->versions, current version first). */
static mn_err batch_targets_add(mn__pending *p, id_list *t, uint8_t mode)
{
    size_t add = mode == MN_FORGET_DELETE ? p->n_versions : (p->n_versions ? 1 : 0);
    if (t->n + add > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        while (cap < t->n + add)
            cap *= 2;
        mn_id_t *g = realloc(t->ids, cap * sizeof *g);
        if (!g) return mn_error_set(&p->err, MN_ERR_NOMEM, "out of memory");
        t->ids = g;
        t->cap = cap;
    }
    for (size_t i = 0; i < add; i++)
        t->ids[t->n++] = p->versions[i];
    return MN_OK;
}

/* A forget by filter's chunk: each id goes through apply_forget as the single
 * forget entry it stands for (p->entry is swapped for the call and restored),
 * so a chunk erases exactly what as many forgets would. An id gone or unknown
 * by now is skipped (p->accepted[i] false); a chunk that changes nothing fails
 * with MN_ERR_GONE and takes no lsn; any other failure rolls the chunk's
 * mutations back out of the batch. */
static mn_err apply_forget_batch(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    const mn_wal_entry_t batch = p->entry;
    size_t n = batch.op.forget_batch.n;
    mn_assert(n <= MN_WAL_FORGET_BATCH_MAX);
    free(p->accepted);
    if (!(p->accepted = calloc(n ? n : 1, sizeof *p->accepted)))
        return mn_error_set(&p->err, MN_ERR_NOMEM, "out of memory");
    rocksdb_writebatch_wi_set_save_point(b);
    id_list targets = {0};
    struct mn__walcache wc = {0};
    p->walcache = &wc;
    mn_err rc = MN_OK;
    size_t applied = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        p->entry.type = MN_WAL_OP_FORGET;
        p->entry.op.forget.id = batch.op.forget_batch.ids[i];
        p->entry.op.forget.mode = batch.op.forget_batch.mode;
        p->entry.op.forget.reason = batch.op.forget_batch.reason;
        p->entry.op.forget.at_ms = batch.op.forget_batch.at_ms;
        rc = apply_forget(e, p, b);
        p->accepted[i] = rc == MN_OK;
        applied += rc == MN_OK;
        if (!rc) rc = batch_targets_add(p, &targets, batch.op.forget_batch.mode);
        free(p->versions);
        p->versions = NULL;
        p->n_versions = 0;
        if (rc == MN_ERR_GONE || rc == MN_ERR_NOT_FOUND) rc = MN_OK;
    }
    p->entry = batch;
    p->walcache = NULL;
    /* what memory_forget_batch acts on: every version of each lineage deleted, or the
     * current version of each suppressed */
    p->versions = targets.ids;
    p->n_versions = targets.n;
    if (!rc) rc = walcache_flush(e, b, p->sp, &wc, &p->err);
    walcache_clear(&wc);
    if (rc) {
        char *msg = NULL;
        free(p->versions);
        p->versions = NULL;
        p->n_versions = 0;
        rocksdb_writebatch_wi_rollback_to_save_point(b, &msg);
        free(msg);
        p->tombstones = 0;
        p->n_rederive = 0;
        return rc;
    }
    memset(&p->err, 0, sizeof p->err);
    if (!applied) return mn_error_set(&p->err, MN_ERR_GONE, "every memory was gone already");
    return MN_OK;
}

/* The entry as stored: a remember or consolidate keeps only the memories it
 * applied, so a copy of a memory that is stored (or forgotten) here already
 * never lands in the log, where erasure would not look for it. */
mn_memory_t *mn__entry_mems(const mn_wal_entry_t *en, size_t *n)
{
    *n = 0;
    if (en->type == MN_WAL_OP_REMEMBER) {
        *n = en->op.remember.n;
        return en->op.remember.mems;
    }
    if (en->type == MN_WAL_OP_CONSOLIDATE) {
        *n = en->op.consolidate.n;
        return en->op.consolidate.mems;
    }
    return NULL;
}

/* A replicated entry keeps its primary's bytes, the memories this replica left out (its
 * state differs) included: each of those gets a WAL reference to the entry all the same, so
 * that erasing its id here later strips its words from this entry too (erase_in_wal), and a
 * later version of a semantic memory supersedes it there (apply_semantic.c). */
mn_err mn__apply_ref_left_out(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    size_t n;
    const mn_memory_t *mems = mn__entry_mems(&p->entry, &n);
    mn_err rc = MN_OK;
    for (size_t i = 0; p->accepted && i < n && !rc; i++) {
        if (p->accepted[i] || mems[i].forgotten) continue;
        uint8_t rk[KEY_WALREF_LEN];
        mn__key_walref(rk, p->sp->sid, &mems[i].id);
        char *v;
        size_t vl;
        if ((rc = mn__store_get_wi(&e->store, b, CF_INDEX, rk, sizeof rk, &v, &vl, &p->err))) break;
        if (!v) vl = 0;
        if (vl >= 8 && mn_get_be64((const uint8_t *)v + vl - 8) == p->entry.lsn) {
            free(v);
            continue;
        }
        uint8_t *nv = malloc(vl + 8);
        if (!nv) {
            free(v);
            rc = mn_error_set(&p->err, MN_ERR_NOMEM, "out of memory");
            break;
        }
        if (vl) memcpy(nv, v, vl);
        mn_put_be64(nv + vl, p->entry.lsn);
        mn__wb_put(b, e, CF_INDEX, rk, sizeof rk, nv, vl + 8);
        free(nv);
        free(v);
    }
    return rc;
}

static mn_err encode_applied(const mn_wal_entry_t *en, const bool *accepted, uint8_t **buf,
                             size_t *len)
{
    size_t n;
    const mn_memory_t *mems = mn__entry_mems(en, &n);
    size_t keep = 0;
    for (size_t i = 0; accepted && i < n; i++)
        keep += accepted[i];
    if (!accepted || keep == n) return mn_wire_wal_encode(en, buf, len);
    mn_memory_t *kept = malloc((keep ? keep : 1) * sizeof *kept);
    if (!kept) return MN_ERR_NOMEM;
    for (size_t i = 0, j = 0; i < n; i++)
        if (accepted[i]) kept[j++] = mems[i];
    mn_wal_entry_t c = *en;
    if (en->type == MN_WAL_OP_REMEMBER) {
        c.op.remember.mems = kept;
        c.op.remember.n = keep;
    } else {
        c.op.consolidate.mems = kept;
        c.op.consolidate.n = keep;
    }
    mn_err rc = mn_wire_wal_encode(&c, buf, len);
    free(kept);
    return rc;
}

/* A space creation: its definition, the next space id, the marker that its
 * memories record their WAL entries, and its term lists' header; a name
 * dropped before loses its marker and the old WAL's drop entry (stage gave
 * this space the next epoch). */
static mn_err apply_space_create(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    const mn_wal_entry_t *entry = &p->entry;
    char mk[sizeof META_SPACE_PREFIX + MN_SPACE_NAME_MAX];
    int ml = snprintf(mk, sizeof mk, "%s%s", META_SPACE_PREFIX, entry->space);
    uint8_t *buf;
    size_t len;
    mn_err rc = mn_wire_wal_encode(entry, &buf, &len);
    if (rc) return rc;
    mn__wb_put(b, e, CF_META, mk, (size_t)ml, buf, len);
    free(buf);
    uint8_t nk[4];
    mn_put_be32(nk, entry->op.space_create.space_id + 1);
    mn__wb_put(b, e, CF_META, "next_sid", 8, nk, 4);
    char dk[sizeof META_DROPPED_PREFIX + MN_SPACE_NAME_MAX];
    int dl = snprintf(dk, sizeof dk, "%s%s", META_DROPPED_PREFIX, entry->space);
    char *v;
    size_t vl;
    if ((rc = mn__store_get_wi(&e->store, b, CF_META, dk, (size_t)dl, &v, &vl, &p->err))) return rc;
    if (v) {
        mn_wal_entry_t old;
        if (!mn_wire_wal_decode((const uint8_t *)v, vl, &old, NULL) &&
            old.type == MN_WAL_OP_SPACE_DROP) {
            uint8_t wk[KEY_WAL_LEN];
            mn__key_wal(wk, old.op.space_drop.space_id, old.lsn);
            mn__wb_del(b, e, CF_WAL, wk, sizeof wk);
            mn_wal_entry_clear(&old);
        }
        free(v);
        mn__wb_del(b, e, CF_META, dk, (size_t)dl);
    }
    uint8_t wm[KEY_SID_LEN + 1];
    mn__key_sid(wm, entry->op.space_create.space_id);
    wm[KEY_SID_LEN] = 'W';
    mn__wb_put(b, e, CF_INDEX, wm, sizeof wm, "", 0);
    uint8_t kh[MN_KW_HEADER_LEN];
    mn_kw_header(mn_kw_language(p->sp->kw), kh);
    mn__wb_put(b, e, CF_KEYWORDS, wm, KEY_SID_LEN, kh, sizeof kh);
    return MN_OK;
}

/* A space drop's point mutations: its definition goes, and the marker that a
 * space created under this name later takes the next epoch is written. */
static mn_err apply_space_drop(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    const mn_wal_entry_t *entry = &p->entry;
    char mk[sizeof META_SPACE_PREFIX + MN_SPACE_NAME_MAX];
    int ml = snprintf(mk, sizeof mk, "%s%s", META_SPACE_PREFIX, entry->space);
    mn__wb_del(b, e, CF_META, mk, (size_t)ml);
    char dk[sizeof META_DROPPED_PREFIX + MN_SPACE_NAME_MAX];
    int dl = snprintf(dk, sizeof dk, "%s%s", META_DROPPED_PREFIX, entry->space);
    uint8_t *buf;
    size_t len;
    mn_err rc = mn_wire_wal_encode(entry, &buf, &len);
    if (rc) return rc;
    mn__wb_put(b, e, CF_META, dk, (size_t)dl, buf, len);
    free(buf);
    return MN_OK;
}

/* New strengths of live memories (a forgotten one's is gone with it). */
static mn_err apply_reinforce(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    const mn_wal_entry_t *entry = &p->entry;
    mn_err rc = MN_OK;
    for (size_t i = 0; i < entry->op.reinforce.n && !rc; i++) {
        const mn_strength_t *st = &entry->op.reinforce.items[i];
        bool live;
        rc = is_live(e, b, p->sp, &st->id, &live, &p->err);
        if (rc || !live) continue;
        uint8_t sk[KEY_STRENGTH_LEN], v[STRENGTH_VALUE_LEN];
        mn__key_strength(sk, p->sp->sid, &st->id);
        memcpy(v, &st->stability_days, 4);
        memcpy(v + 4, &st->last_access_ms, 8);
        memcpy(v + 12, &st->access_count, 4);
        mn__wb_put(b, e, CF_INDEX, sk, sizeof sk, v, sizeof v);
    }
    return rc;
}

/* Each end of edges as its lineage's current version, as the batch sees it: a correction
 * committed after the caller resolved it (or earlier in this group) moved that memory's
 * associations on, so an edge joins the version that holds them; the entry, stored
 * after this, and the in-memory link (apply_memory) name the same ends. */
static void edges_to_current(mn_engine_t *e, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                             mn_edge_t *edges, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mn_id_t lineage, head;
        if (!mn__versions_resolve(&e->store, b, sp, &edges[i].from, &lineage, &head, NULL))
            edges[i].from = head;
        if (!mn__versions_resolve(&e->store, b, sp, &edges[i].to, &lineage, &head, NULL))
            edges[i].to = head;
    }
}

/* Client edges (causal, explicit) must join live memories; derived links
 * (semantic, from the linker) are dropped when an end is gone. */
static mn_err apply_associate(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    const mn_wal_entry_t *entry = &p->entry;
    size_t n = entry->op.associate.n;
    const mn_edge_t *edges = entry->op.associate.edges;
    edges_to_current(e, b, p->sp, entry->op.associate.edges, n);
    bool strict = n && edges[0].kind >= MN_EDGE_CAUSAL && edges[0].kind <= MN_EDGE_EXPLICIT;
    return apply_edges(e, p->sp, edges, n, b, strict, &p->err);
}

/* A vector computed later for a memory remembered without one (api/embed): written
 * when the memory is live and has no vector yet, and the entry is noted among the
 * memory's WAL references so a later forget strips the vector from it too. A
 * memory forgotten first never gets one (MN_ERR_GONE, no entry: the op consumes
 * no lsn); one that has a vector already keeps it (MN_ERR_EXISTS). */
static mn_err apply_embed(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    const mn_wal_entry_t *en = &p->entry;
    mn__space *sp = p->sp;
    if (!en->op.embed.embedding)
        return mn_error_set(&p->err, MN_ERR_GONE, "embed: the vector was erased");
    if (en->op.embed.dim != sp->def.dim)
        return mn_error_set(&p->err, MN_ERR_INVALID, "embedding: expected %u values, got %u",
                            sp->def.dim, en->op.embed.dim);
    int st;
    mn_err rc = mn__record_state_wi(&e->store, b, sp, &en->op.embed.id, &st, &p->err);
    if (rc) return rc;
    if (st == MN_MEM_GONE) return mn_error_set(&p->err, MN_ERR_GONE, "memory was forgotten");
    if (st != MN_MEM_LIVE) return mn_error_set(&p->err, MN_ERR_NOT_FOUND, "memory not found");
    uint8_t k[KEY_MEM_LEN];
    mn__key_mem(k, sp->sid, &en->op.embed.id);
    char *v;
    size_t vl;
    if ((rc = mn__store_get_wi(&e->store, b, CF_VECTORS, k, sizeof k, &v, &vl, &p->err))) return rc;
    if (v) { /* it came with one, or an earlier embed gave it one */
        free(v);
        return mn_error_set(&p->err, MN_ERR_EXISTS, "memory has an embedding already");
    }
    mn__wb_put(b, e, CF_VECTORS, k, sizeof k, en->op.embed.embedding,
               (size_t)en->op.embed.dim * sizeof(float));
    uint8_t rk[KEY_WALREF_LEN];
    mn__key_walref(rk, sp->sid, &en->op.embed.id);
    char *refs;
    size_t rl;
    if ((rc = mn__store_get_wi(&e->store, b, CF_INDEX, rk, sizeof rk, &refs, &rl, &p->err)))
        return rc;
    uint8_t *nr = malloc(rl + 8);
    if (!nr) {
        free(refs);
        return mn_error_set(&p->err, MN_ERR_NOMEM, "out of memory");
    }
    if (refs && rl) memcpy(nr, refs, rl);
    mn_put_be64(nr + (refs ? rl : 0), en->lsn);
    mn__wb_put(b, e, CF_INDEX, rk, sizeof rk, nr, (refs ? rl : 0) + 8);
    free(nr);
    free(refs);
    return MN_OK;
}

mn_err mn__apply_put_entry(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    uint8_t wk[KEY_WAL_LEN];
    mn__key_wal(wk, p->sp->sid, p->entry.lsn);
    if (p->raw) { /* a replicated entry: the bytes its primary stored */
        mn__wb_put(b, e, CF_WAL, wk, sizeof wk, p->raw, p->raw_len);
        return MN_OK;
    }
    uint8_t *buf;
    size_t len;
    mn_err rc = encode_applied(&p->entry, p->accepted, &buf, &len);
    if (rc) return mn_error_set(&p->err, rc, "encoding the WAL entry");
    mn__wb_put(b, e, CF_WAL, wk, sizeof wk, buf, len);
    free(buf);
    return MN_OK;
}

mn_err mn__apply_entry(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b)
{
    mn_assert(mn__commit_on_thread(e));
    /* the entry takes the space's next lsn (stage, commit.c): lsns stay dense */
    mn_assert(p->entry.lsn == p->sp->assigned_lsn + 1);
    mn_err rc;
    p->tombstones = 0;
    p->n_rederive = 0;
    /* Preconditions first: a failing op leaves no trace in the batch. */
    switch (p->entry.type) {
    case MN_WAL_OP_SPACE_CREATE:
        rc = apply_space_create(e, p, b);
        break;
    case MN_WAL_OP_SPACE_DROP:
        rc = apply_space_drop(e, p, b);
        break;
    case MN_WAL_OP_REMEMBER:
        rc = apply_remember(e, p, b);
        break;
    case MN_WAL_OP_FORGET:
    case MN_WAL_OP_UNSUPPRESS:
        rc = apply_forget(e, p, b);
        break;
    case MN_WAL_OP_CONSOLIDATE:
        rc = mn__apply_consolidate(e, p, b);
        break;
    case MN_WAL_OP_REINFORCE:
        rc = apply_reinforce(e, p, b);
        break;
    case MN_WAL_OP_ASSOCIATE:
        rc = apply_associate(e, p, b);
        break;
    case MN_WAL_OP_EMBED:
        rc = apply_embed(e, p, b);
        break;
    case MN_WAL_OP_UPDATE:
        rc = mn__apply_update(e, p, b);
        break;
    case MN_WAL_OP_INVALIDATE:
        rc = mn__apply_invalidate(e, p, b);
        break;
    case MN_WAL_OP_FORGET_BATCH:
        rc = apply_forget_batch(e, p, b);
        break;
    default:
        return mn_error_set(&p->err, MN_ERR_INTERNAL, "apply: unknown op %d", (int)p->entry.type);
    }
    if (rc) return rc;
    return mn__apply_put_entry(e, p, b);
}

mn_err mn__apply_ranges(mn_engine_t *e, mn__space *sp, const mn_wal_entry_t *entry,
                        rocksdb_writebatch_t *b)
{
    if (entry->type != MN_WAL_OP_SPACE_DROP) return MN_OK;
    uint8_t lo[KEY_SID_LEN], hi[KEY_SID_LEN];
    mn__key_sid(lo, sp->sid);
    mn__key_sid(hi, sp->sid + 1);
    for (int cf = CF_WAL; cf < CF_COUNT; cf++)
        rocksdb_writebatch_delete_range_cf(b, e->store.cf[cf], (const char *)lo, sizeof lo,
                                           (const char *)hi, sizeof hi);
    uint8_t wk[KEY_WAL_LEN];
    mn__key_wal(wk, sp->sid, entry->lsn);
    uint8_t *buf;
    size_t len;
    mn_err rc = mn_wire_wal_encode(entry, &buf, &len);
    if (rc) return rc;
    rocksdb_writebatch_put_cf(b, e->store.cf[CF_WAL], (const char *)wk, sizeof wk,
                              (const char *)buf, len);
    free(buf);
    return MN_OK;
}

/* A remember's memories and edges (write lock held). */
static void memory_remember(mn__space *sp, const mn__pending *p)
{
    const mn_wal_entry_t *entry = &p->entry;
    const mn__kw_buf *kw = p->kw;
    for (size_t i = 0; i < entry->op.remember.n; i++) {
        const mn_memory_t *m = &entry->op.remember.mems[i];
        if (!p->accepted[i]) continue;
        if (m->forgotten)
            mn__space_remove(sp, &m->id);
        else if (mn__space_insert_doc(sp, m, kw ? kw[i].buf : NULL, kw ? kw[i].len : 0))
            mn_log_error("space %s: out of memory indexing a memory; restart reloads it",
                         sp->def.name);
    }
    for (size_t i = 0; i < entry->op.remember.n_edges; i++)
        mn__space_link(sp, &entry->op.remember.edges[i]);
}

/* A consolidate entry's semantic memories and their links (write lock held). */
static void memory_consolidate(mn__space *sp, const mn__pending *p)
{
    const mn_wal_entry_t *entry = &p->entry;
    const mn__kw_buf *kw = p->kw;
    for (size_t i = 0; i < entry->op.consolidate.n; i++) {
        const mn_memory_t *m = &entry->op.consolidate.mems[i];
        if (!p->accepted[i]) continue;
        if (m->forgotten) {
            mn__space_remove(sp, &m->id);
            continue;
        }
        if (mn__space_replace_doc(sp, m, kw ? kw[i].buf : NULL, kw ? kw[i].len : 0))
            mn_log_error("space %s: out of memory indexing a semantic memory", sp->def.name);
        mn__space_link_supports(sp, &m->id, m->support, m->n_support);
    }
}

/* New strengths (write lock held). Merge rule (replicas may see
 * reinforcements twice): keep the later access. */
static void memory_reinforce(mn__space *sp, const mn_wal_entry_t *entry)
{
    for (size_t i = 0; i < entry->op.reinforce.n; i++) {
        const mn_strength_t *st = &entry->op.reinforce.items[i];
        uint32_t slot = mn__space_find(sp, &st->id);
        if (slot == UINT32_MAX) continue;
        mn__slot *sl = &sp->slots[slot];
        if (st->last_access_ms < sl->last_access_ms) continue;
        sl->stability_days = st->stability_days;
        sl->last_access_ms = st->last_access_ms;
        sl->access_count = st->access_count;
    }
}

/* A forget (delete or suppress) or an unsuppress (write lock held); the
 * suppression times are those apply_forget stored. A corrected memory's versions
 * (p->versions) are deleted together; suppression is its current version's. */
static void memory_forget(mn__space *sp, const mn__pending *p)
{
    const mn_wal_entry_t *entry = &p->entry;
    if (entry->type == MN_WAL_OP_FORGET && entry->op.forget.mode == MN_FORGET_DELETE) {
        mn__space_remove(sp, &entry->op.forget.id);
        for (size_t i = 0; i < p->n_versions; i++)
            mn__space_remove(sp, &p->versions[i]);
        return;
    }
    bool suppress = entry->type == MN_WAL_OP_FORGET;
    const mn_id_t *id = suppress ? &entry->op.forget.id : &entry->op.unsuppress.id;
    uint32_t slot = mn__space_find(sp, p->n_versions ? &p->versions[0] : id);
    if (slot == UINT32_MAX || sp->slots[slot].suppressed == suppress) return;
    if (suppress)
        sp->slots[slot].suppressed_at_ms = entry->op.forget.at_ms;
    else
        sp->slots[slot].unsuppressed_at_ms =
            entry->op.unsuppress.at_ms ? entry->op.unsuppress.at_ms : mn_hlc_ms(entry->hlc);
    mn__space_set_suppressed(sp, slot, suppress);
}

/* A forget batch's applied ids, each as its single forget (write lock held): the slots
 * apply_forget_batch gathered in p->versions (every version of a deleted lineage, the
 * current version of a suppressed one), each forgotten as a memory never corrected. */
static void memory_forget_batch(mn__space *sp, const mn__pending *p)
{
    const mn_wal_entry_t *entry = &p->entry;
    mn__pending one = {.sp = sp};
    one.entry = (mn_wal_entry_t){.type = MN_WAL_OP_FORGET, .lsn = entry->lsn, .hlc = entry->hlc};
    one.entry.op.forget.mode = entry->op.forget_batch.mode;
    one.entry.op.forget.reason = entry->op.forget_batch.reason;
    one.entry.op.forget.at_ms = entry->op.forget_batch.at_ms;
    for (size_t i = 0; i < p->n_versions; i++) {
        one.entry.op.forget.id = p->versions[i];
        memory_forget(sp, &one);
    }
}

/* The vector apply_embed wrote (write lock held): the slot gets it and the index
 * thread is told, as for a memory that came with its vector. */
static void memory_embed(mn__space *sp, const mn_wal_entry_t *entry)
{
    uint32_t slot = mn__space_find(sp, &entry->op.embed.id);
    if (slot == UINT32_MAX || sp->slots[slot].has_vec) return;
    mn_assert(entry->op.embed.dim == sp->def.dim);
    float *v = sp->vecs + (size_t)slot * sp->def.dim;
    memcpy(v, entry->op.embed.embedding, sp->def.dim * sizeof(float));
    if (sp->def.metric == MN_METRIC_COSINE) mn__vec_normalize(v, sp->def.dim);
    sp->slots[slot].has_vec = 1;
    mn__space_index_note(sp, slot);
}

/* The epoch of the entry now last (write lock): epochs never decrease along a log, and the
 * epoch a space writes at follows a replica's log (its primary's elections). */
static void note_epoch(mn__space *sp, uint64_t epoch)
{
    mn_assert(epoch >= sp->last_epoch);
    sp->last_epoch = epoch;
    if (sp->epoch < epoch) sp->epoch = epoch;
}

void mn__apply_memory(mn_engine_t *e, mn__pending *p)
{
    mn_assert(mn__commit_on_thread(e));
    mn__space *sp = p->sp;
    const mn_wal_entry_t *entry = &p->entry;
    /* lsns are dense: each applied entry is the one after the last */
    mn_assert(entry->lsn == sp->last_lsn + 1);
    if (p->noop) { /* a replicated entry that changes nothing here (replica.c) */
        pthread_rwlock_wrlock(&sp->lock);
        note_epoch(sp, entry->epoch);
        __atomic_store_n(&sp->last_lsn, entry->lsn, __ATOMIC_RELEASE);
        pthread_rwlock_unlock(&sp->lock);
        return;
    }
    if (entry->type == MN_WAL_OP_SPACE_DROP) {
        /* the commit thread takes the space out of the map */
        atomic_store(&sp->dropped, true);
        __atomic_store_n(&sp->last_lsn, entry->lsn, __ATOMIC_RELEASE);
        mn__events_end(e, sp->def.name, MN_EVENT_SPACE_DROPPED);
        return;
    }
    pthread_rwlock_wrlock(&sp->lock);
    switch (entry->type) {
    case MN_WAL_OP_REMEMBER:
        memory_remember(sp, p);
        break;
    case MN_WAL_OP_ASSOCIATE:
        for (size_t i = 0; i < entry->op.associate.n; i++)
            mn__space_link(sp, &entry->op.associate.edges[i]);
        break;
    case MN_WAL_OP_CONSOLIDATE:
        memory_consolidate(sp, p);
        break;
    case MN_WAL_OP_REINFORCE:
        memory_reinforce(sp, entry);
        break;
    case MN_WAL_OP_FORGET:
    case MN_WAL_OP_UNSUPPRESS:
        memory_forget(sp, p);
        break;
    case MN_WAL_OP_EMBED:
        memory_embed(sp, entry);
        break;
    case MN_WAL_OP_UPDATE:
        mn__apply_memory_update(sp, p);
        break;
    case MN_WAL_OP_INVALIDATE:
        mn__apply_memory_invalidate(sp, p);
        break;
    case MN_WAL_OP_FORGET_BATCH:
        memory_forget_batch(sp, p);
        break;
    default:
        break;
    }
    /* the tombstone count follows the store's; it never goes below 0 */
    mn_assert(p->tombstones >= 0 || (uint64_t)-p->tombstones <= sp->n_tombstones);
    sp->n_tombstones = (uint64_t)((int64_t)sp->n_tombstones + p->tombstones);
    note_epoch(sp, entry->epoch);
    __atomic_store_n(&sp->last_lsn, entry->lsn, __ATOMIC_RELEASE);
    pthread_rwlock_unlock(&sp->lock);
    mn__events_from_entry(e, entry, p->accepted);
    /* the vector index follows under the read lock, before the writer is answered */
    mn__space_index_sync(e, sp);
}
