/* Start-up: rebuild the in-memory state of every space from the store. The
 * WAL needs no replay (entries commit atomically with their state); we read
 * space definitions from meta, each space's last lsn from the tail of its WAL,
 * and its live memories from the memories and vectors families, walked side
 * by side (same keys, same order). Progress is logged for large spaces.
 *
 * A space written before forgetting erased WAL entries (no sid|'W' marker) is
 * migrated once: its WAL is indexed by memory (sid|'w'|id) and the content of
 * memories that were forgotten meanwhile is stripped from the entries..
 *
 * Nothing unreadable is skipped quietly (damage.c): every walk checks its
 * iterator's status when it ends, so a bad block is an error, never the end of
 * a space; a record, vector, term list, association or strength that does not
 * decode is damage too. Without salvage the start refuses; with it, the load
 * goes on with what is readable and says what it dropped. The term lists are
 * derived from the records, so a damaged one is rebuilt, not dropped. */
#include "load.h"

#include "apply.h"
#include "assoc.h"
#include "damage.h"
#include "engine_internal.h"
#include "replica.h"
#include "snapshot.h"
#include "space_index.h"
#include "text/keyword.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rocksdb_iterator_t *iter(mn_engine_t *e, int cf)
{
    return mn__store_iter(&e->store, cf);
}

static bool has_prefix(rocksdb_iterator_t *it, const void *p, size_t n)
{
    if (!rocksdb_iter_valid(it)) return false;
    size_t kl;
    const char *k = rocksdb_iter_key(it, &kl);
    return kl >= n && memcmp(k, p, n) == 0;
}

/* The lsn of the WAL key of space sid under it, or dflt when it is at none. */
static uint64_t lsn_at(rocksdb_iterator_t *it, uint32_t sid, uint64_t dflt)
{
    uint8_t pre[KEY_SID_LEN];
    mn__key_sid(pre, sid);
    if (!has_prefix(it, pre, sizeof pre)) return dflt;
    size_t kl;
    const char *k = rocksdb_iter_key(it, &kl);
    return kl == KEY_WAL_LEN ? mn_get_be64((const uint8_t *)k + KEY_SID_LEN) : dflt;
}

/* The newest and the oldest entry of a space's WAL (0 and 1 when it has none).
 * Not even a salvage start goes on without them: new writes would reuse lsns. */
static mn_err wal_range(mn_engine_t *e, mn__space *sp, mn_error *err)
{
    rocksdb_iterator_t *it = iter(e, CF_WAL);
    uint8_t k[KEY_SID_LEN];
    mn__key_sid(k, sp->sid + 1);
    /* seek_for_prev lands on the last key <= k; k itself is never a WAL key */
    rocksdb_iter_seek_for_prev(it, (const char *)k, sizeof k);
    sp->last_lsn = lsn_at(it, sp->sid, 0);
    mn_error ierr = {0};
    mn_err rc = mn__store_iter_status(it, "wal", &ierr);
    if (!rc) {
        mn__key_sid(k, sp->sid);
        rocksdb_iter_seek(it, (const char *)k, sizeof k);
        sp->first_lsn = lsn_at(it, sp->sid, 1);
        rc = mn__store_iter_status(it, "wal", &ierr);
    }
    rocksdb_iter_destroy(it);
    if (rc)
        rc = mn_error_set(err, rc, "space %s: cannot find where its WAL ends: %.160s", sp->def.name,
                          ierr.message);
    return rc;
}

/* Removes memory i of a decoded remember or consolidate entry. */
static void drop_memory(mn_memory_t *mems, size_t *n, size_t i)
{
    mn_memory_clear(&mems[i]);
    memmove(&mems[i], &mems[i + 1], (*n - i - 1) * sizeof *mems);
    (*n)--;
}

/* Checks each memory an entry carries against the store: a live one gets the
 * entry's lsn among its WAL references, a forgotten one is stripped to its
 * erased stub, one that was never stored here leaves the entry. */
static mn_err migrate_entry(mn_engine_t *e, mn__space *sp, rocksdb_writebatch_wi_t *b,
                            mn_wal_entry_t *en, bool *changed, uint64_t *stripped, mn_error *err)
{
    mn_memory_t *mems =
        en->type == MN_WAL_OP_REMEMBER ? en->op.remember.mems : en->op.consolidate.mems;
    size_t *n = en->type == MN_WAL_OP_REMEMBER ? &en->op.remember.n : &en->op.consolidate.n;
    for (size_t i = 0; i < *n;) {
        if (mems[i].forgotten) {
            i++;
            continue;
        }
        uint8_t k[KEY_MEM_LEN];
        mn__key_mem(k, sp->sid, &mems[i].id);
        char *v;
        size_t vl;
        mn_err rc = mn__store_get(&e->store, CF_MEMORIES, k, sizeof k, &v, &vl, err);
        if (rc) return rc;
        mn_memory_record_t rec;
        bool live = false, tomb = false, retired = false;
        int64_t at = 0;
        if (v && !mn_wire_memory_decode((const uint8_t *)v, vl, &rec, NULL)) {
            live = !rec.tombstone;
            tomb = rec.tombstone;
            retired = rec.mem.retired;
            at = rec.forgotten_at_ms;
            mn_memory_clear(&rec.mem);
        }
        free(v);
        if (live) {
            uint8_t rk[KEY_WALREF_LEN];
            mn__key_walref(rk, sp->sid, &mems[i].id);
            char *refs;
            size_t rl = 0;
            if ((rc = mn__store_get_wi(&e->store, b, CF_INDEX, rk, sizeof rk, &refs, &rl, err)))
                return rc;
            if (!refs) rl = 0;
            uint8_t *nv = malloc(rl + 8);
            if (!nv) {
                free(refs);
                return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
            }
            if (refs) memcpy(nv, refs, rl);
            free(refs);
            mn_put_be64(nv + rl, en->lsn);
            rocksdb_writebatch_wi_put_cf(b, e->store.cf[CF_INDEX], (const char *)rk, sizeof rk,
                                         (const char *)nv, rl + 8);
            free(nv);
            i++;
        } else if (tomb) {
            mn_id_t id = mems[i].id;
            mn__wal_strip_memory(en, &id, at, retired);
            *changed = true;
            (*stripped)++;
            i++;
        } else {
            drop_memory(mems, n, i);
            *changed = true;
        }
    }
    return MN_OK;
}

static mn_err migrate_wal(mn_engine_t *e, mn__space *sp, mn_error *err)
{
    uint8_t mk[KEY_SID_LEN + 1];
    mn__key_sid(mk, sp->sid);
    mk[KEY_SID_LEN] = 'W';
    char *v;
    size_t vl;
    mn_err rc = mn__store_get(&e->store, CF_INDEX, mk, sizeof mk, &v, &vl, err);
    if (rc || v) {
        free(v);
        return rc;
    }
    uint8_t pre[KEY_SID_LEN];
    mn__key_sid(pre, sp->sid);
    rocksdb_writebatch_wi_t *b = rocksdb_writebatch_wi_create(1 << 16, 1);
    rocksdb_iterator_t *it = iter(e, CF_WAL);
    uint64_t entries = 0, stripped = 0;
    for (rocksdb_iter_seek(it, (const char *)pre, sizeof pre); !rc && has_prefix(it, pre, 4);
         rocksdb_iter_next(it)) {
        size_t kl, el;
        const char *k = rocksdb_iter_key(it, &kl);
        const char *ev = rocksdb_iter_value(it, &el);
        mn_wal_entry_t en;
        mn_error derr = {0};
        if (kl != KEY_WAL_LEN || mn_wire_wal_decode((const uint8_t *)ev, el, &en, &derr)) {
            rc = mn__damage(e, sp->sid, sp->def.name, err, "WAL entry unreadable: %s",
                            kl == KEY_WAL_LEN ? derr.message : "bad key");
            continue;
        }
        bool changed = false;
        if (en.type == MN_WAL_OP_REMEMBER || en.type == MN_WAL_OP_CONSOLIDATE)
            rc = migrate_entry(e, sp, b, &en, &changed, &stripped, err);
        if (!rc && changed) rc = mn__apply_rewrite_wal(&e->store, b, k, kl, &en, err);
        mn_wal_entry_clear(&en);
        entries++;
        size_t size;
        rocksdb_writebatch_wi_data(b, &size);
        if (!rc && size > (64u << 20)) { /* bounded batches; re-running is harmless */
            rc = mn__store_write(&e->store, b, false, err);
            rocksdb_writebatch_wi_clear(b);
        }
    }
    mn_error ierr = {0};
    if (!rc && mn__store_iter_status(it, "wal", &ierr))
        rc = mn_error_set(err, MN_ERR_CORRUPT, "space %s: WAL unreadable: %.180s", sp->def.name,
                          ierr.message);
    rocksdb_iter_destroy(it);
    if (!rc) {
        rocksdb_writebatch_wi_put_cf(b, e->store.cf[CF_INDEX], (const char *)mk, sizeof mk, "", 0);
        rc = mn__store_write(&e->store, b, true, err);
    }
    rocksdb_writebatch_wi_destroy(b);
    if (!rc)
        mn_log_info("space %s: WAL indexed for erasure (%llu entries; %llu forgotten memories "
                    "stripped from them)",
                    sp->def.name, (unsigned long long)entries, (unsigned long long)stripped);
    return rc;
}

/* Moves it to the first key >= k; true if it is k. */
static bool seek_along(rocksdb_iterator_t *it, const char *k, size_t kl)
{
    while (rocksdb_iter_valid(it)) {
        size_t ikl;
        const char *ik = rocksdb_iter_key(it, &ikl);
        int c = memcmp(ik, k, ikl < kl ? ikl : kl);
        if (c > 0 || (c == 0 && ikl >= kl)) return c == 0 && ikl == kl;
        rocksdb_iter_next(it);
    }
    return false;
}

/* A family walked alongside the memories (vectors, keywords), and the keys it
 * could not read. */
typedef struct side {
    rocksdb_iterator_t *it;
    const char *name;
    uint64_t damaged;
    mn_error first; /* the first error */
} side;

/* Moves s->it to key k; true if it is there. A walk that stopped on an error is
 * sought again at k (a seek clears the error and reads k's own block), so a bad
 * block costs the keys in it, not the rest of the space; a key that still
 * cannot be read is counted in s->damaged. */
static bool side_at(side *s, const char *k, size_t kl)
{
    for (int tries = 0;; tries++) {
        if (seek_along(s->it, k, kl)) return true;
        if (rocksdb_iter_valid(s->it)) return false; /* past k: there is none */
        mn_error ierr = {0};
        if (!mn__store_iter_status(s->it, s->name, &ierr)) return false; /* the end */
        if (tries) {
            if (!s->damaged++) s->first = ierr;
            return false;
        }
        rocksdb_iter_seek(s->it, k, kl);
    }
}

/* Inserts a memory whose stored term list is missing or unusable: its record is
 * decoded again with its content, tokenised, and the new list put into fix.
 * MN_ERR_CORRUPT (derr set) for a record that cannot be read. */
static mn_err retokenize(mn_engine_t *e, mn__space *sp, const char *k, size_t kl, const char *v,
                         size_t vl, mn_memory_record_t *rec, rocksdb_writebatch_t *fix,
                         mn_error *derr, mn_error *err)
{
    float *emb = rec->mem.embedding;
    rec->mem.embedding = NULL;
    mn_memory_clear(&rec->mem);
    mn_err rc = mn_wire_memory_decode((const uint8_t *)v, vl, rec, derr);
    if (rc) {
        free(emb);
        return rc == MN_ERR_NOMEM ? rc : MN_ERR_CORRUPT;
    }
    rec->mem.embedding = emb;
    rec->mem.dim = sp->def.dim;
    uint8_t *doc;
    size_t dl;
    if (mn_kw_doc_encode(mn_kw_language(sp->kw), &(mn_kw_text_t){MN__KW_TEXT_OF(&rec->mem)}, &doc,
                         &dl))
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory loading %s", sp->def.name);
    rocksdb_writebatch_put_cf(fix, e->store.cf[CF_KEYWORDS], k, kl, (const char *)doc, dl);
    rc = mn__space_insert_doc(sp, &rec->mem, doc, dl);
    free(doc);
    return rc == MN_ERR_CORRUPT ? MN_ERR_NOMEM : rc; /* a list just made is never unusable */
}

/* The keyword index of a space being loaded: the stored term lists are used
 * when this build's tokenizer made them; records whose list is missing or
 * unusable are tokenised again and their lists rewritten (fix). */
typedef struct kw_load {
    bool current;    /* the space's term lists are this tokenizer's */
    const char *why; /* why not */
    rocksdb_writebatch_t *fix;
    uint64_t retokenized, with_text;
} kw_load;

/* The memories walk of a space: the records (mi) drive, vectors and term lists
 * follow; what could not be read. */
typedef struct mem_walk {
    rocksdb_iterator_t *mi;
    side vec, kw;
    uint64_t loaded;
    uint64_t unreadable; /* records that do not decode */
    mn_error first;      /* the first of them */
} mem_walk;

/* The vector of the record at key k, copied into rec (NULL when it has none).
 * A vector of the wrong size is damage, like one in a block that cannot be read. */
static mn_err load_vector(mn__space *sp, mem_walk *w, const char *k, size_t kl,
                          mn_memory_record_t *rec)
{
    size_t bytes = (size_t)sp->def.dim * sizeof(float), vvl = 0;
    const char *vv = side_at(&w->vec, k, kl) ? rocksdb_iter_value(w->vec.it, &vvl) : NULL;
    if (vv && vvl != bytes) {
        if (!w->vec.damaged++)
            mn_error_set(&w->vec.first, MN_ERR_CORRUPT, "vectors: %zu bytes where %zu belong", vvl,
                         bytes);
        vv = NULL;
    }
    float *copy = NULL;
    if (vv) {
        if (!(copy = malloc(bytes))) return MN_ERR_NOMEM;
        memcpy(copy, vv, bytes);
    }
    rec->mem.embedding = copy;
    rec->mem.dim = sp->def.dim;
    return MN_OK;
}

/* Inserts the live memory of record rec (key k, value v) with its stored term
 * list, or tokenises it again. MN_ERR_CORRUPT (derr set) for a record that
 * cannot be read. */
static mn_err load_memory(mn_engine_t *e, mn__space *sp, mem_walk *w, const char *k, size_t kl,
                          const char *v, size_t vl, mn_memory_record_t *rec, kw_load *kw,
                          mn_error *derr, mn_error *err)
{
    const char *doc = NULL;
    size_t dl = 0;
    uint64_t cl = 0;
    if (rec->mem.content_len) {
        kw->with_text++;
        if (kw->current && side_at(&w->kw, k, kl)) doc = rocksdb_iter_value(w->kw.it, &dl);
        if (doc &&
            (mn_kw_doc_content_len((const uint8_t *)doc, dl, &cl) || cl != rec->mem.content_len))
            doc = NULL;
    }
    mn_err rc =
        doc ? mn__space_insert_doc(sp, &rec->mem, (const uint8_t *)doc, dl) : MN_ERR_CORRUPT;
    if (rc == MN_ERR_CORRUPT && rec->mem.content_len) {
        /* no usable stored list: tokenise the record's content, and store the list */
        rc = retokenize(e, sp, k, kl, v, vl, rec, kw->fix, derr, err);
        kw->retokenized += rc == MN_OK;
    } else if (rc == MN_ERR_CORRUPT) {
        rc = mn__space_insert(sp, &rec->mem);
    }
    return rc;
}

/* One record of the walk: a tombstone is counted, a live memory loaded. */
static mn_err load_record(mn_engine_t *e, mn__space *sp, mem_walk *w, kw_load *kw, mn_error *err)
{
    size_t kl, vl;
    const char *k = rocksdb_iter_key(w->mi, &kl);
    const char *v = rocksdb_iter_value(w->mi, &vl);
    mn_memory_record_t rec;
    mn_error derr = {0};
    /* the words are not needed when the stored term list is usable */
    mn_err rc = mn_wire_memory_decode_meta((const uint8_t *)v, vl, &rec, &derr);
    if (!rc && rec.tombstone) {
        sp->n_tombstones++;
        mn_memory_clear(&rec.mem);
        return MN_OK;
    }
    if (!rc) rc = load_vector(sp, w, k, kl, &rec);
    if (!rc) rc = load_memory(e, sp, w, k, kl, v, vl, &rec, kw, &derr, err);
    mn_memory_clear(&rec.mem);  /* a failed decode leaves it cleared */
    if (rc == MN_ERR_CORRUPT) { /* the record does not decode */
        if (!w->unreadable++) w->first = derr;
        return MN_OK;
    }
    if (rc) return mn_error_set(err, MN_ERR_NOMEM, "out of memory loading %s", sp->def.name);
    w->loaded++;
    return MN_OK;
}

/* Keys of the space under tag in the index family (the time index 't' has one
 * per live memory); UINT64_MAX when they cannot all be read. */
static uint64_t count_index(mn_engine_t *e, uint32_t sid, char tag)
{
    uint8_t pre[KEY_SID_LEN + 1];
    mn__key_sid(pre, sid);
    pre[KEY_SID_LEN] = (uint8_t)tag;
    rocksdb_iterator_t *it = iter(e, CF_INDEX);
    uint64_t n = 0;
    for (rocksdb_iter_seek(it, (const char *)pre, sizeof pre); has_prefix(it, pre, sizeof pre);
         rocksdb_iter_next(it))
        n++;
    if (mn__store_iter_status(it, "index", NULL)) n = UINT64_MAX;
    rocksdb_iter_destroy(it);
    return n;
}

/* What the walk could not read: damage (refused, or reported by a salvage start
 * with what it cost). */
static mn_err walk_damage(mn_engine_t *e, mn__space *sp, mem_walk *w, const mn_error *stop,
                          mn_error *err)
{
    mn_err rc = MN_OK;
    const char *n = sp->def.name;
    if (stop->code) {
        uint64_t listed = count_index(e, sp->sid, 't');
        if (listed != UINT64_MAX && listed > w->loaded)
            rc = mn__damage(e, sp->sid, n, err, "%s; %llu of its %llu memories dropped",
                            stop->message, (unsigned long long)(listed - w->loaded),
                            (unsigned long long)listed);
        else
            rc = mn__damage(e, sp->sid, n, err, "%s; the memories after the damage dropped",
                            stop->message);
    }
    if (!rc && w->unreadable)
        rc = mn__damage(e, sp->sid, n, err, "%llu memory records unreadable: %s",
                        (unsigned long long)w->unreadable, w->first.message);
    if (!rc && w->vec.damaged && !e->opts.salvage)
        rc = mn__damage(e, sp->sid, n, err, "%s", w->vec.first.message);
    else if (!rc && w->vec.damaged)
        rc = mn__damage(e, sp->sid, n, err,
                        "%s; %llu memories lost their embedding (found by words only)",
                        w->vec.first.message, (unsigned long long)w->vec.damaged);
    if (!rc && w->kw.damaged)
        mn_log_warn("space %s: %s; %llu term lists rebuilt from the records", n,
                    w->kw.first.message, (unsigned long long)w->kw.damaged);
    return rc;
}

/* Without salvage, the first damage the walk met ends it. */
static bool walk_damaged(const mn_engine_t *e, const mem_walk *w)
{
    return !e->opts.salvage && (w->unreadable || w->vec.damaged);
}

/* The space's live memories (and its tombstone count), from the memories,
 * vectors and keywords families walked side by side (same keys, same order). */
static mn_err load_memories(mn_engine_t *e, mn__space *sp, kw_load *kw, mn_error *err)
{
    uint8_t pre[KEY_SID_LEN];
    mn__key_sid(pre, sp->sid);
    mem_walk w = {.mi = iter(e, CF_MEMORIES),
                  .vec = {.it = iter(e, CF_VECTORS), .name = "vectors"},
                  .kw = {.it = iter(e, CF_KEYWORDS), .name = "keywords"}};
    rocksdb_iter_seek(w.mi, (const char *)pre, sizeof pre);
    rocksdb_iter_seek(w.vec.it, (const char *)pre, sizeof pre);
    rocksdb_iter_seek(w.kw.it, (const char *)pre, sizeof pre);
    int64_t t0_ns = mn_time_mono_ns();
    mn_err rc = MN_OK;
    for (; !rc && !walk_damaged(e, &w) && has_prefix(w.mi, pre, sizeof pre);
         rocksdb_iter_next(w.mi)) {
        if ((rc = load_record(e, sp, &w, kw, err))) break;
        size_t fix_size;
        rocksdb_writebatch_data(kw->fix, &fix_size);
        if (fix_size > (32u << 20)) {
            if ((rc = mn__store_write_batch(&e->store, kw->fix, false, err))) break;
            rocksdb_writebatch_clear(kw->fix);
        }
        if (w.loaded && w.loaded % 100000 == 0)
            mn_log_info("space %s: loaded %llu memories", sp->def.name,
                        (unsigned long long)w.loaded);
    }
    mn_error stop = {0};
    if (!rc && !walk_damaged(e, &w)) mn__store_iter_status(w.mi, "memories", &stop);
    if (!rc) rc = walk_damage(e, sp, &w, &stop, err);
    rocksdb_iter_destroy(w.mi);
    rocksdb_iter_destroy(w.vec.it);
    rocksdb_iter_destroy(w.kw.it);
    if (!rc && w.loaded >= 100000)
        mn_log_info("space %s: %llu memories loaded in %.1f s", sp->def.name,
                    (unsigned long long)w.loaded, (double)(mn_time_mono_ns() - t0_ns) / 1e9);
    return rc;
}

/* Writes the rebuilt term lists and the space's keyword header, when any was
 * rebuilt. */
static mn_err save_keywords(mn_engine_t *e, mn__space *sp, kw_load *kw, mn_error *err)
{
    if (kw->current && !kw->retokenized) return MN_OK;
    uint8_t pre[KEY_SID_LEN], kh[MN_KW_HEADER_LEN];
    mn__key_sid(pre, sp->sid);
    mn_kw_header(mn_kw_language(sp->kw), kh);
    rocksdb_writebatch_put_cf(kw->fix, e->store.cf[CF_KEYWORDS], (const char *)pre, sizeof pre,
                              (const char *)kh, sizeof kh);
    mn_err rc = mn__store_write_batch(&e->store, kw->fix, true, err);
    if (!kw->current)
        mn_log_info("space %s: keyword index: %s; rebuilt from %llu memories", sp->def.name,
                    kw->why, (unsigned long long)kw->retokenized);
    else
        mn_log_warn("space %s: keyword index: %llu of %llu term lists missing or "
                    "inconsistent, rebuilt from the records",
                    sp->def.name, (unsigned long long)kw->retokenized,
                    (unsigned long long)kw->with_text);
    return rc;
}

/* An entry of the index family under sid | tag: false when it does not decode. */
typedef bool (*index_entry_fn)(mn__space *sp, const uint8_t *k, size_t kl, const uint8_t *v,
                               size_t vl);

/* Associations: sid | 'a' | from | to | kind -> kind, weight. */
static bool take_edge(mn__space *sp, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    if (kl != KEY_EDGE_LEN || vl != 5) return false;
    mn_edge_t ed;
    memcpy(ed.from.b, k + KEY_SID_LEN + 1, 16);
    memcpy(ed.to.b, k + KEY_SID_LEN + 17, 16);
    ed.kind = v[0];
    memcpy(&ed.weight, v + 1, 4);
    mn__space_link(sp, &ed); /* a dangling one is skipped */
    return true;
}

/* Strengths: sid | 's' | id -> stability, last access, count. */
static bool take_strength(mn__space *sp, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    if (kl != KEY_STRENGTH_LEN || vl != STRENGTH_VALUE_LEN) return false;
    mn_id_t id;
    memcpy(id.b, k + KEY_SID_LEN + 1, 16);
    uint32_t slot = mn__space_find(sp, &id);
    if (slot == UINT32_MAX) return true;
    mn__slot *sl = &sp->slots[slot];
    memcpy(&sl->stability_days, v, 4);
    memcpy(&sl->last_access_ms, v + 4, 8);
    memcpy(&sl->access_count, v + 12, 4);
    return true;
}

/* Walks the space's index entries under tag (what names them) into fn. */
static mn_err load_index(mn_engine_t *e, mn__space *sp, char tag, const char *what,
                         index_entry_fn fn, mn_error *err)
{
    uint8_t pre[KEY_SID_LEN + 1];
    mn__key_sid(pre, sp->sid);
    pre[KEY_SID_LEN] = (uint8_t)tag;
    rocksdb_iterator_t *it = iter(e, CF_INDEX);
    uint64_t bad = 0;
    for (rocksdb_iter_seek(it, (const char *)pre, sizeof pre); has_prefix(it, pre, sizeof pre);
         rocksdb_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
        bad += !fn(sp, k, kl, v, vl);
    }
    mn_error ierr = {0};
    mn_err rc = MN_OK;
    if (mn__store_iter_status(it, "index", &ierr))
        rc = mn__damage(e, sp->sid, sp->def.name, err, "%s: %s; the %s after it dropped", what,
                        ierr.message, what);
    if (!rc && bad)
        rc = mn__damage(e, sp->sid, sp->def.name, err, "%s: %llu entries unreadable", what,
                        (unsigned long long)bad);
    rocksdb_iter_destroy(it);
    return rc;
}

static mn_err load_space(mn_engine_t *e, mn__space *sp, mn_error *err)
{
    uint8_t pre[KEY_SID_LEN];
    mn__key_sid(pre, sp->sid);
    char *hv;
    size_t hl;
    mn_err rc = mn__store_get(&e->store, CF_KEYWORDS, pre, sizeof pre, &hv, &hl, err);
    if (rc) return rc;
    kw_load kw = {.current = mn_kw_header_current(mn_kw_language(sp->kw), hv, hl),
                  .why = !hv ? "none stored" : "stored by another tokenizer",
                  .fix = rocksdb_writebatch_create()};
    free(hv);
    rc = load_memories(e, sp, &kw, err);
    if (!rc) rc = save_keywords(e, sp, &kw, err);
    rocksdb_writebatch_destroy(kw.fix);
    if (!rc) rc = load_index(e, sp, 'a', "associations", take_edge, err);
    if (!rc) rc = load_index(e, sp, 's', "strengths", take_strength, err);
    /* unreadable (UINT64_MAX) counts as noted: the notes are then looked for */
    if (!rc) atomic_store(&sp->repair_noted, count_index(e, sp->sid, 'R') != 0);
    return rc;
}

mn_err mn__load_space(mn_engine_t *e, const uint8_t *def, size_t len, const char *what,
                      mn__space **out, mn_error *err)
{
    *out = NULL;
    mn_wal_entry_t en;
    mn_error derr = {0};
    mn_err drc = mn_wire_wal_decode(def, len, &en, &derr);
    if (!drc && en.type != MN_WAL_OP_SPACE_CREATE) {
        mn_wal_entry_clear(&en);
        drc = mn_error_set(&derr, MN_ERR_CORRUPT, "not a space definition");
    }
    if (drc) /* the space is dropped whole by a salvage start */
        return mn__damage(e, 0, NULL, err, "meta: the definition of %s is unreadable (%s)", what,
                          derr.message);
    mn__space *sp = mn__space_new(&en.op.space_create.def, en.op.space_create.space_id);
    if (!sp) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    const char *stored = en.op.space_create.def.text_language;
    if (stored[0] && strcmp(stored, sp->def.text_language))
        mn_log_warn("space %s: text_language \"%s\" is not a stemmer this build has: "
                    "words are folded, not stemmed",
                    sp->def.name, stored);
    sp->epoch = en.epoch ? en.epoch : 1;
    mn_err rc = wal_range(e, sp, err);
    sp->assigned_lsn = sp->last_lsn;
    if (!rc) rc = mn__replica_load(e, sp, err);
    if (!rc) rc = migrate_wal(e, sp, err);
    if (!rc) rc = load_space(e, sp, err);
    if (rc) {
        mn__space_free(sp);
        return rc;
    }
    *out = sp;
    return MN_OK;
}

/* The space whose definition (a space-create entry) is it's value: its
 * counters, its WAL migrated if needed, its memories and its graph, into the
 * registry. */
static mn_err load_one(mn_engine_t *e, rocksdb_iterator_t *it, mn_error *err)
{
    size_t sl, kl;
    const char *sv = rocksdb_iter_value(it, &sl);
    const char *key = rocksdb_iter_key(it, &kl);
    char what[80];
    snprintf(what, sizeof what, "%.*s", (int)(kl > 70 ? 70 : kl), key);
    mn__space *sp;
    mn_err rc = mn__load_space(e, (const uint8_t *)sv, sl, what, &sp, err);
    if (rc) return rc;
    if (sp->sid >= e->next_sid) e->next_sid = sp->sid + 1;
    mn__space_index_load(e, sp); /* the saved graph, or a rebuild */
    if (mn__registry_insert(&e->reg, sp)) {
        mn__space_free(sp);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    return MN_OK;
}

mn_err mn__load(mn_engine_t *e, mn_error *err)
{
    char *v;
    size_t vl;
    mn_err rc = MN_OK;
    if (e->store.log_damage[0])
        rc = mn__damage(e, 0, NULL, err, "RocksDB's log (*.log): %s; replayed up to the damage",
                        e->store.log_damage);
    if (!rc) rc = mn__store_get(&e->store, CF_META, "next_sid", 8, &v, &vl, err);
    if (rc) return rc;
    if (v && vl == 4) e->next_sid = mn_get_be32((const uint8_t *)v);
    free(v);
    if ((rc = mn__snapshot_clean(e, err))) return rc;
    rocksdb_iterator_t *it = iter(e, CF_META);
    rocksdb_iter_seek(it, "space/", 6);
    for (; !rc && has_prefix(it, "space/", 6); rocksdb_iter_next(it))
        rc = load_one(e, it, err);
    mn_error ierr = {0};
    if (!rc && mn__store_iter_status(it, "meta", &ierr))
        rc = mn__damage(e, 0, NULL, err, "%s; the spaces after it dropped", ierr.message);
    rocksdb_iter_destroy(it);
    if (!rc) rc = mn__damage_check_acked(e, err);
    if (rc) return rc;
    mn_log_info("engine: %zu spaces loaded from %s", mn__registry_count(&e->reg), e->data_dir);
    const char *dropped = mn_engine_salvaged(e);
    if (dropped)
        mn_log_error("salvage: the node runs on a damaged data dir with what was readable: %s",
                     dropped);
    return MN_OK;
}
