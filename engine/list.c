/* Listing memories in event-time order: walks the space's time index
 * (sid|'t'|when|id) from the cursor, filters each entry against the in-memory
 * slot, and reads the records of one page. The cursor is the time-index key of
 * the last memory returned (48 hex digits), so pages never repeat or skip a
 * memory that stays put while paging.
 *
 * An as-of list (filter.as_of_ms) also walks the as-of index of forgotten
 * memories (sid|'g'|when|id, same layout), merged with the time index on one
 * snapshot: a memory deleted or expired after as_of was there then, but its
 * content is erased, so it comes back as a redacted entry (id, kind, when,
 * created_at, forgotten_at; forgotten = true). So does a memory that has
 * expired and is not swept yet. That index is pruned of entries older than any
 * as-of read may look (mn_engine_prune_gone, from the sweeper). */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CURSOR_HEX 48

static void cursor_format(int64_t when, const mn_id_t *id, char *out)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[24];
    mn_put_be64(raw, mn_key_time_bits(when));
    memcpy(raw + 8, id->b, 16);
    for (int i = 0; i < 24; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[CURSOR_HEX] = '\0';
}

static bool cursor_parse(const char *s, uint8_t raw[24])
{
    if (strlen(s) != CURSOR_HEX) return false;
    for (int i = 0; i < 24; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return false;
        char c1 = s[2 * i], c2 = s[2 * i + 1];
        bool h1 = (c1 >= '0' && c1 <= '9') || (c1 >= 'a' && c1 <= 'f');
        bool h2 = (c2 >= '0' && c2 <= '9') || (c2 >= 'a' && c2 <= 'f');
        if (!h1 || !h2) return false;
        raw[i] = (uint8_t)v;
    }
    return true;
}

/* One entry of a page, found under the lock. */
typedef struct entry {
    mn_id_t id;
    int64_t when;
    bool gone; /* redacted: kind, created_at, gone_at are all there is */
    uint8_t kind;
    int64_t created_at, gone_at;
} entry;

/* The (when, id) part of a time-index or as-of-index key. */
static const uint8_t *suffix(const uint8_t *k)
{
    return k + KEY_SID_LEN + 1;
}

static bool valid_key(rocksdb_iterator_t *it, const uint8_t **k)
{
    if (!it || !rocksdb_iter_valid(it)) return false;
    size_t kl;
    *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
    return kl == KEY_TIME_LEN;
}

static rocksdb_iterator_t *index_iter(mn_engine *e, rocksdb_readoptions_t *ro, const uint8_t *start,
                                      size_t start_len)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(e->store.db, ro, e->store.cf[CF_INDEX]);
    rocksdb_iter_seek(it, (const char *)start, start_len);
    return it;
}

mn_err mn_engine_list(mn_engine_t *e, const char *space, const mn_list_req *req,
                      mn_list_result *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    uint32_t limit = req->limit ? req->limit : 100;
    if (limit > 1000)
        return mn_error_set(err, MN_ERR_INVALID, "limit: must be in 1..1000, got %u", limit);
    mn_err rc = mn_validate_filter(&req->filter, err);
    if (rc) return rc;
    uint8_t cur[24];
    if (req->cursor && *req->cursor && !cursor_parse(req->cursor, cur))
        return mn_error_set(err, MN_ERR_INVALID, "cursor: malformed (use the \"next\" value)");
    if ((rc = mn_engine_check_as_of(e, &req->filter, mn_engine_now(e), err))) return rc;
    mn_space *sp = mn_engine_space_acquire(e, space);
    if (!sp) return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", space);
    bool as_of = req->filter.as_of_ms != MN_TIME_UNSET;

    uint8_t start[KEY_TIME_LEN], upper[KEY_SID_LEN + 1], gstart[KEY_TIME_LEN],
        gupper[KEY_SID_LEN + 1];
    mn_put_be32(start, sp->sid);
    start[KEY_SID_LEN] = 't';
    size_t start_len = KEY_SID_LEN + 1;
    bool skip_equal = false;
    if (req->cursor && *req->cursor) {
        memcpy(start + KEY_SID_LEN + 1, cur, 24);
        start_len = KEY_TIME_LEN;
        skip_equal = true;
    }
    if (req->filter.when_from_ms != MN_TIME_UNSET) {
        uint8_t from[8];
        mn_put_be64(from, mn_key_time_bits(req->filter.when_from_ms));
        if (start_len == KEY_SID_LEN + 1 || memcmp(from, start + KEY_SID_LEN + 1, 8) > 0) {
            memcpy(start + KEY_SID_LEN + 1, from, 8);
            start_len = KEY_SID_LEN + 1 + 8;
            skip_equal = false;
        }
    }
    mn_put_be32(upper, sp->sid);
    upper[KEY_SID_LEN] = 'u';
    memcpy(gstart, start, start_len);
    gstart[KEY_SID_LEN] = 'g';
    memcpy(gupper, upper, sizeof upper);
    gupper[KEY_SID_LEN] = 'h';

    /* one snapshot for both indexes: a memory forgotten meanwhile is in one of them */
    const rocksdb_snapshot_t *snap = as_of ? rocksdb_create_snapshot(e->store.db) : NULL;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)upper, sizeof upper);
    rocksdb_readoptions_t *gro = NULL;
    if (snap) {
        rocksdb_readoptions_set_snapshot(ro, snap);
        gro = rocksdb_readoptions_create();
        rocksdb_readoptions_set_snapshot(gro, snap);
        rocksdb_readoptions_set_iterate_upper_bound(gro, (const char *)gupper, sizeof gupper);
    }
    rocksdb_iterator_t *it = index_iter(e, ro, start, start_len);
    rocksdb_iterator_t *git = gro ? index_iter(e, gro, gstart, start_len) : NULL;

    entry *ents = malloc((size_t)(limit + 1) * sizeof *ents);
    size_t n = 0;
    int64_t now = mn_engine_now(e);
    if (ents) {
        pthread_rwlock_rdlock(&sp->lock);
        while (n <= limit) {
            const uint8_t *kt = NULL, *kg = NULL;
            bool vt = valid_key(it, &kt), vg = valid_key(git, &kg);
            if (!vt && !vg) break;
            bool from_gone = vg && (!vt || memcmp(suffix(kg), suffix(kt), 24) < 0);
            const uint8_t *k = from_gone ? kg : kt;
            rocksdb_iterator_t *src = from_gone ? git : it;
            int64_t when = mn_key_time_from_bits(mn_get_be64(k + KEY_SID_LEN + 1));
            if (req->filter.when_to_ms != MN_TIME_UNSET && when >= req->filter.when_to_ms) break;
            entry en = {.when = when};
            memcpy(en.id.b, k + KEY_SID_LEN + 9, 16);
            bool take = false;
            if (skip_equal && !memcmp(suffix(k), start + KEY_SID_LEN + 1, 24)) {
                /* the cursor's own entry */
            } else if (from_gone) {
                size_t vl;
                const uint8_t *v = (const uint8_t *)rocksdb_iter_value(src, &vl);
                if (vl == GONE_VALUE_LEN) {
                    en.gone = true;
                    en.kind = v[0];
                    en.created_at = (int64_t)mn_get_be64(v + 1);
                    en.gone_at = (int64_t)mn_get_be64(v + 9);
                    take = mn_filter_match_gone(en.kind, when, en.created_at, en.gone_at,
                                                &req->filter);
                }
            } else {
                uint32_t slot = mn_space_find(sp, &en.id);
                const mn_slot *s = slot == UINT32_MAX ? NULL : &sp->slots[slot];
                if (s && mn_filter_match(s, &req->filter, now)) {
                    take = true;
                } else if (s && as_of && s->expires_at_ms && s->expires_at_ms <= now) {
                    /* expired, not swept yet: as gone as a swept one */
                    en.gone = true;
                    en.kind = s->kind;
                    en.created_at = s->created_at_ms;
                    en.gone_at = s->expires_at_ms;
                    take = mn_filter_match_gone(en.kind, when, en.created_at, en.gone_at,
                                                &req->filter);
                }
            }
            if (take) ents[n++] = en;
            rocksdb_iter_next(src);
        }
        pthread_rwlock_unlock(&sp->lock);
    }
    rocksdb_iter_destroy(it);
    if (git) rocksdb_iter_destroy(git);
    rocksdb_readoptions_destroy(ro);
    if (gro) rocksdb_readoptions_destroy(gro);
    if (snap) rocksdb_release_snapshot(e->store.db, snap);
    if (!ents) {
        mn_engine_space_release(e, sp);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    bool more = n > limit;
    if (more) n = limit;
    out->memories = calloc(n ? n : 1, sizeof *out->memories);
    if (!out->memories) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        mn_memory_t *m = &out->memories[out->n];
        if (ents[i].gone) { /* redacted: what is left of a forgotten memory */
            mn_memory_init(m);
            m->id = ents[i].id;
            m->kind = (mn_kind)ents[i].kind;
            m->when_ms = ents[i].when;
            m->created_at_ms = ents[i].created_at;
            m->forgotten = true;
            m->forgotten_at_ms = ents[i].gone_at;
            if (!(m->content = calloc(1, 1))) {
                rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
                break;
            }
            out->n++;
            continue;
        }
        mn_error rerr = {0};
        mn_err r = mn_engine_read_memory(e, sp, &ents[i].id, req->include_embedding, m, &rerr);
        if (r == MN_ERR_GONE || r == MN_ERR_NOT_FOUND) continue; /* forgotten meanwhile */
        if (r) {
            if (err) *err = rerr;
            rc = r;
            break;
        }
        if (as_of) /* as it was then */
            m->suppressed = mn_suppressed_at(m->suppressed, m->suppressed_at_ms,
                                             m->unsuppressed_at_ms, req->filter.as_of_ms);
        out->n++;
    }
    if (!rc && more) {
        out->next = malloc(CURSOR_HEX + 1);
        if (out->next)
            cursor_format(ents[n - 1].when, &ents[n - 1].id, out->next);
        else rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    if (rc) mn_list_result_clear(out);
    free(ents);
    mn_engine_space_release(e, sp);
    return rc;
}

mn_err mn_engine_prune_gone(mn_engine *e, mn_error *err)
{
    int64_t cutoff = mn_engine_now(e) - e->opts.as_of_max_age_ms;
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
    mn_err rc = MN_OK;
    for (size_t s = 0; s < ns; s++) {
        mn_space *sp = spaces[s];
        /* entries gone at or before the cutoff: no as-of read can reach them */
        uint8_t lo[KEY_SID_LEN + 1], hi[KEY_TIME_LEN];
        mn_put_be32(lo, sp->sid);
        lo[KEY_SID_LEN] = 'G';
        mn_key_gone_by_time(hi, sp->sid, cutoff, &(mn_id_t){0});
        memset(hi + KEY_SID_LEN + 9, 0xff, 16);
        rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
        rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, sizeof hi);
        rocksdb_iterator_t *it = rocksdb_create_iterator_cf(e->store.db, ro, e->store.cf[CF_INDEX]);
        rocksdb_writebatch_t *b = rocksdb_writebatch_create();
        size_t n = 0;
        for (rocksdb_iter_seek(it, (const char *)lo, sizeof lo);
             rocksdb_iter_valid(it) && n < 10000; rocksdb_iter_next(it)) {
            size_t kl, vl;
            const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
            const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
            if (kl != KEY_TIME_LEN) continue;
            rocksdb_writebatch_delete_cf(b, e->store.cf[CF_INDEX], (const char *)k, kl);
            if (vl == 8) {
                mn_id_t id;
                memcpy(id.b, k + KEY_SID_LEN + 9, 16);
                uint8_t gk[KEY_TIME_LEN];
                mn_key_gone(gk, sp->sid, (int64_t)mn_get_be64(v), &id);
                rocksdb_writebatch_delete_cf(b, e->store.cf[CF_INDEX], (const char *)gk, sizeof gk);
            }
            n++;
        }
        rocksdb_iter_destroy(it);
        rocksdb_readoptions_destroy(ro);
        if (n && !atomic_load(&sp->dropped)) {
            mn_err r = mn_store_write_batch(&e->store, b, false, err);
            if (r) rc = r;
        }
        rocksdb_writebatch_destroy(b);
        mn_engine_space_release(e, sp);
    }
    free(spaces);
    return rc;
}
