/* Start-up: rebuild the in-memory state of every space from the store. The
 * WAL needs no replay (entries commit atomically with their state); we read
 * space definitions from meta, each space's last lsn from the tail of its WAL,
 * and its live memories from the memories and vectors families, walked side
 * by side (same keys, same order). Progress is logged for large spaces.
 *
 * A space written before forgetting erased WAL entries (no sid|'W' marker) is
 * migrated once: its WAL is indexed by memory (sid|'w'|id) and the content of
 * memories that were forgotten meanwhile is stripped from the entries. */
#include "load.h"

#include "apply.h"
#include "assoc.h"
#include "engine_internal.h"
#include "space_index.h"
#include "text/keyword.h"

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

/* The newest and the oldest entry of a space's WAL (0 and 1 when it has none). */
static void wal_range(mn_engine_t *e, uint32_t sid, uint64_t *last, uint64_t *first)
{
    rocksdb_iterator_t *it = iter(e, CF_WAL);
    uint8_t k[KEY_SID_LEN];
    mn__key_sid(k, sid + 1);
    /* seek_for_prev lands on the last key <= k; k itself is never a WAL key */
    rocksdb_iter_seek_for_prev(it, (const char *)k, sizeof k);
    *last = lsn_at(it, sid, 0);
    mn__key_sid(k, sid);
    rocksdb_iter_seek(it, (const char *)k, sizeof k);
    *first = lsn_at(it, sid, 1);
    rocksdb_iter_destroy(it);
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
        if (kl != KEY_WAL_LEN || mn_wire_wal_decode((const uint8_t *)ev, el, &en, NULL)) continue;
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

/* Inserts a memory whose stored term list is missing or unusable: its record is
 * decoded again with its content, tokenised, and the new list put into fix.
 * MN_ERR_CORRUPT (logged) for a record that cannot be read. */
static mn_err retokenize(mn_engine_t *e, mn__space *sp, const char *k, size_t kl, const char *v,
                         size_t vl, mn_memory_record_t *rec, rocksdb_writebatch_t *fix, mn_error *err)
{
    float *emb = rec->mem.embedding;
    rec->mem.embedding = NULL;
    mn_memory_clear(&rec->mem);
    mn_error derr = {0};
    if (mn_wire_memory_decode((const uint8_t *)v, vl, rec, &derr)) {
        free(emb);
        mn_log_error("space %s: skipping an unreadable memory record: %s", sp->def.name,
                     derr.message);
        return MN_ERR_CORRUPT;
    }
    rec->mem.embedding = emb;
    rec->mem.dim = sp->def.dim;
    uint8_t *doc;
    size_t dl;
    if (mn_kw_doc_encode(rec->mem.content, rec->mem.content_len, &doc, &dl))
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory loading %s", sp->def.name);
    rocksdb_writebatch_put_cf(fix, e->store.cf[CF_KEYWORDS], k, kl, (const char *)doc, dl);
    mn_err rc = mn__space_insert_doc(sp, &rec->mem, doc, dl);
    free(doc);
    return rc;
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

/* The vector of the record at key k (vi walks the vectors family alongside),
 * copied into rec (NULL when it has none). */
static mn_err load_vector(mn__space *sp, rocksdb_iterator_t *vi, const char *k, size_t kl,
                          mn_memory_record_t *rec)
{
    const float *vec = NULL;
    if (seek_along(vi, k, kl)) {
        size_t vvl;
        const char *vv = rocksdb_iter_value(vi, &vvl);
        if (vvl == (size_t)sp->def.dim * sizeof(float)) vec = (const float *)vv;
    }
    float *copy = NULL;
    if (vec) {
        if (!(copy = malloc((size_t)sp->def.dim * sizeof(float)))) return MN_ERR_NOMEM;
        memcpy(copy, vec, (size_t)sp->def.dim * sizeof(float));
    }
    rec->mem.embedding = copy;
    rec->mem.dim = sp->def.dim;
    return MN_OK;
}

/* Inserts the live memory of record rec (key k, value v) with its stored term
 * list (ki walks the keywords family alongside), or tokenises it again.
 * MN_ERR_CORRUPT (logged) for a record that cannot be read. */
static mn_err load_memory(mn_engine_t *e, mn__space *sp, rocksdb_iterator_t *ki, const char *k,
                          size_t kl, const char *v, size_t vl, mn_memory_record_t *rec, kw_load *kw,
                          mn_error *err)
{
    const char *doc = NULL;
    size_t dl = 0;
    uint64_t cl = 0;
    if (rec->mem.content_len) {
        kw->with_text++;
        if (kw->current && seek_along(ki, k, kl)) doc = rocksdb_iter_value(ki, &dl);
        if (doc &&
            (mn_kw_doc_content_len((const uint8_t *)doc, dl, &cl) || cl != rec->mem.content_len))
            doc = NULL;
    }
    mn_err rc =
        doc ? mn__space_insert_doc(sp, &rec->mem, (const uint8_t *)doc, dl) : MN_ERR_CORRUPT;
    if (rc == MN_ERR_CORRUPT && rec->mem.content_len) {
        /* no usable stored list: tokenise the record's content, and store the list */
        rc = retokenize(e, sp, k, kl, v, vl, rec, kw->fix, err);
        kw->retokenized += rc == MN_OK;
    } else if (rc == MN_ERR_CORRUPT) {
        rc = mn__space_insert(sp, &rec->mem);
    }
    return rc;
}

/* The space's live memories (and its tombstone count), from the memories,
 * vectors and keywords families walked side by side (same keys, same order). */
static mn_err load_memories(mn_engine_t *e, mn__space *sp, kw_load *kw, mn_error *err)
{
    uint8_t pre[KEY_SID_LEN];
    mn__key_sid(pre, sp->sid);
    rocksdb_iterator_t *mi = iter(e, CF_MEMORIES), *vi = iter(e, CF_VECTORS),
                       *ki = iter(e, CF_KEYWORDS);
    rocksdb_iter_seek(mi, (const char *)pre, sizeof pre);
    rocksdb_iter_seek(vi, (const char *)pre, sizeof pre);
    rocksdb_iter_seek(ki, (const char *)pre, sizeof pre);
    uint64_t loaded = 0;
    int64_t t0_ns = mn_time_mono_ns();
    mn_err rc = MN_OK;
    for (; !rc && has_prefix(mi, pre, sizeof pre); rocksdb_iter_next(mi)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(mi, &kl);
        const char *v = rocksdb_iter_value(mi, &vl);
        mn_memory_record_t rec;
        mn_error derr = {0};
        /* the words are not needed when the stored term list is usable */
        if (mn_wire_memory_decode_meta((const uint8_t *)v, vl, &rec, &derr)) {
            mn_log_error("space %s: skipping an unreadable memory record: %s", sp->def.name,
                         derr.message);
            continue;
        }
        if (rec.tombstone) {
            sp->n_tombstones++;
            mn_memory_clear(&rec.mem);
            continue;
        }
        rc = load_vector(sp, vi, k, kl, &rec);
        if (!rc) rc = load_memory(e, sp, ki, k, kl, v, vl, &rec, kw, err);
        mn_memory_clear(&rec.mem);
        if (rc == MN_ERR_CORRUPT) { /* logged */
            rc = MN_OK;
            continue;
        }
        if (rc) {
            rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory loading %s", sp->def.name);
            break;
        }
        size_t fix_size;
        rocksdb_writebatch_data(kw->fix, &fix_size);
        if (fix_size > (32u << 20)) {
            if ((rc = mn__store_write_batch(&e->store, kw->fix, false, err))) break;
            rocksdb_writebatch_clear(kw->fix);
        }
        if (++loaded % 100000 == 0)
            mn_log_info("space %s: loaded %llu memories", sp->def.name, (unsigned long long)loaded);
    }
    rocksdb_iter_destroy(mi);
    rocksdb_iter_destroy(vi);
    rocksdb_iter_destroy(ki);
    if (!rc && loaded >= 100000)
        mn_log_info("space %s: %llu memories loaded in %.1f s", sp->def.name,
                    (unsigned long long)loaded, (double)(mn_time_mono_ns() - t0_ns) / 1e9);
    return rc;
}

/* Writes the rebuilt term lists and the space's keyword header, when any was
 * rebuilt. */
static mn_err save_keywords(mn_engine_t *e, mn__space *sp, kw_load *kw, mn_error *err)
{
    if (kw->current && !kw->retokenized) return MN_OK;
    uint8_t pre[KEY_SID_LEN], kh[MN_KW_HEADER_LEN];
    mn__key_sid(pre, sp->sid);
    mn_kw_header(kh);
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

/* Associations: sid | 'a' | from | to | kind -> kind, weight; dangling ones
 * are skipped. */
static void load_edges(mn_engine_t *e, mn__space *sp)
{
    uint8_t pre[KEY_SID_LEN + 1];
    mn__key_sid(pre, sp->sid);
    pre[KEY_SID_LEN] = 'a';
    rocksdb_iterator_t *it = iter(e, CF_INDEX);
    for (rocksdb_iter_seek(it, (const char *)pre, sizeof pre); has_prefix(it, pre, sizeof pre);
         rocksdb_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
        if (kl != KEY_EDGE_LEN || vl != 5) continue;
        mn_edge_t ed;
        memcpy(ed.from.b, k + KEY_SID_LEN + 1, 16);
        memcpy(ed.to.b, k + KEY_SID_LEN + 17, 16);
        ed.kind = v[0];
        memcpy(&ed.weight, v + 1, 4);
        mn__space_link(sp, &ed);
    }
    rocksdb_iter_destroy(it);
}

/* Strengths: sid | 's' | id -> stability, last access, count. */
static void load_strengths(mn_engine_t *e, mn__space *sp)
{
    uint8_t pre[KEY_SID_LEN + 1];
    mn__key_sid(pre, sp->sid);
    pre[KEY_SID_LEN] = 's';
    rocksdb_iterator_t *it = iter(e, CF_INDEX);
    for (rocksdb_iter_seek(it, (const char *)pre, sizeof pre); has_prefix(it, pre, sizeof pre);
         rocksdb_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
        if (kl != KEY_STRENGTH_LEN || vl != STRENGTH_VALUE_LEN) continue;
        mn_id_t id;
        memcpy(id.b, k + KEY_SID_LEN + 1, 16);
        uint32_t slot = mn__space_find(sp, &id);
        if (slot == UINT32_MAX) continue;
        mn__slot *sl = &sp->slots[slot];
        memcpy(&sl->stability_days, v, 4);
        memcpy(&sl->last_access_ms, v + 4, 8);
        memcpy(&sl->access_count, v + 12, 4);
    }
    rocksdb_iter_destroy(it);
}

static mn_err load_space(mn_engine_t *e, mn__space *sp, mn_error *err)
{
    uint8_t pre[KEY_SID_LEN];
    mn__key_sid(pre, sp->sid);
    char *hv;
    size_t hl;
    mn_err rc = mn__store_get(&e->store, CF_KEYWORDS, pre, sizeof pre, &hv, &hl, err);
    if (rc) return rc;
    kw_load kw = {.current = mn_kw_header_current(hv, hl),
                  .why = !hv ? "none stored" : "stored by another tokenizer",
                  .fix = rocksdb_writebatch_create()};
    free(hv);
    rc = load_memories(e, sp, &kw, err);
    if (!rc) rc = save_keywords(e, sp, &kw, err);
    rocksdb_writebatch_destroy(kw.fix);
    if (rc) return rc;
    load_edges(e, sp);
    load_strengths(e, sp);
    return MN_OK;
}

/* The space whose definition (a space-create entry) is it's value: its
 * counters, its WAL migrated if needed, its memories and its graph, into the
 * registry. */
static mn_err load_one(mn_engine_t *e, rocksdb_iterator_t *it, mn_error *err)
{
    size_t sl;
    const char *sv = rocksdb_iter_value(it, &sl);
    mn_wal_entry_t en;
    mn_error derr = {0};
    if (mn_wire_wal_decode((const uint8_t *)sv, sl, &en, &derr) ||
        en.type != MN_WAL_OP_SPACE_CREATE)
        return mn_error_set(err, MN_ERR_CORRUPT, "space definition unreadable: %s", derr.message);
    mn__space *sp = mn__space_new(&en.op.space_create.def, en.op.space_create.space_id);
    if (!sp) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    sp->epoch = en.epoch ? en.epoch : 1;
    wal_range(e, sp->sid, &sp->last_lsn, &sp->first_lsn);
    sp->assigned_lsn = sp->last_lsn;
    if (sp->sid >= e->next_sid) e->next_sid = sp->sid + 1;
    mn_err rc = migrate_wal(e, sp, err);
    if (!rc) rc = load_space(e, sp, err);
    if (rc) goto fail;
    mn__space_index_load(e, sp); /* the saved graph, or a rebuild */
    if (mn__registry_insert(&e->reg, sp)) {
        rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        goto fail;
    }
    return MN_OK;
fail:
    mn__space_free(sp);
    return rc;
}

mn_err mn__load(mn_engine_t *e, mn_error *err)
{
    char *v;
    size_t vl;
    mn_err rc = mn__store_get(&e->store, CF_META, "next_sid", 8, &v, &vl, err);
    if (rc) return rc;
    if (v && vl == 4) e->next_sid = mn_get_be32((const uint8_t *)v);
    free(v);
    rocksdb_iterator_t *it = iter(e, CF_META);
    rocksdb_iter_seek(it, "space/", 6);
    for (; !rc && has_prefix(it, "space/", 6); rocksdb_iter_next(it))
        rc = load_one(e, it, err);
    rocksdb_iter_destroy(it);
    if (rc) return rc;
    mn_log_info("engine: %zu spaces loaded from %s", mn__registry_count(&e->reg), e->data_dir);
    return MN_OK;
}
