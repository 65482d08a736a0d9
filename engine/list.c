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
 * as-of read may look (sweeper.c). */
#include "engine_internal.h"
#include "filter.h"
#include "record.h"
#include "validate.h"
#include "versions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CURSOR_HEX 48

static void cursor_format(int64_t when, const mn_id_t *id, char *out)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[24];
    mn_put_be64(raw, mn__key_time_bits(when));
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

/* The walk over the time index, merged with the as-of index (as-of lists)
 * on one snapshot: a memory forgotten meanwhile is in one of them. */
typedef struct walk {
    uint8_t start[KEY_TIME_LEN]; /* seek key of both (the tag aside) */
    size_t start_len;
    bool skip_equal; /* start is the cursor's own entry */
    uint8_t upper[KEY_SID_LEN + 1], gstart[KEY_TIME_LEN], gupper[KEY_SID_LEN + 1];
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ro, *gro;
    rocksdb_iterator_t *it, *git; /* git NULL unless as-of */
} walk;

static rocksdb_iterator_t *index_iter(mn_engine_t *e, rocksdb_readoptions_t *ro,
                                      const uint8_t *start, size_t start_len)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(e->store.db, ro, e->store.cf[CF_INDEX]);
    rocksdb_iter_seek(it, (const char *)start, start_len);
    return it;
}

/* Where the walk starts: the cursor, or the filter's when_from if later. */
static void walk_bounds(walk *w, const mn__space *sp, const mn_list_req_t *req, const uint8_t *cur)
{
    mn_put_be32(w->start, sp->sid);
    w->start[KEY_SID_LEN] = 't';
    w->start_len = KEY_SID_LEN + 1;
    w->skip_equal = false;
    if (cur) {
        memcpy(w->start + KEY_SID_LEN + 1, cur, 24);
        w->start_len = KEY_TIME_LEN;
        w->skip_equal = true;
    }
    if (req->filter.when_from_ms != MN_TIME_UNSET) {
        uint8_t from[8];
        mn_put_be64(from, mn__key_time_bits(req->filter.when_from_ms));
        if (w->start_len == KEY_SID_LEN + 1 || memcmp(from, w->start + KEY_SID_LEN + 1, 8) > 0) {
            memcpy(w->start + KEY_SID_LEN + 1, from, 8);
            w->start_len = KEY_SID_LEN + 1 + 8;
            w->skip_equal = false;
        }
    }
    mn_put_be32(w->upper, sp->sid);
    w->upper[KEY_SID_LEN] = 'u';
    memcpy(w->gstart, w->start, w->start_len);
    w->gstart[KEY_SID_LEN] = 'g';
    memcpy(w->gupper, w->upper, sizeof w->upper);
    w->gupper[KEY_SID_LEN] = 'h';
}

static void walk_open(mn_engine_t *e, walk *w, bool as_of)
{
    w->snap = as_of ? rocksdb_create_snapshot(e->store.db) : NULL;
    w->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(w->ro, (const char *)w->upper, sizeof w->upper);
    w->gro = NULL;
    if (w->snap) {
        rocksdb_readoptions_set_snapshot(w->ro, w->snap);
        w->gro = rocksdb_readoptions_create();
        rocksdb_readoptions_set_snapshot(w->gro, w->snap);
        rocksdb_readoptions_set_iterate_upper_bound(w->gro, (const char *)w->gupper,
                                                    sizeof w->gupper);
    }
    w->it = index_iter(e, w->ro, w->start, w->start_len);
    w->git = w->gro ? index_iter(e, w->gro, w->gstart, w->start_len) : NULL;
}

static void walk_close(mn_engine_t *e, walk *w)
{
    rocksdb_iter_destroy(w->it);
    if (w->git) rocksdb_iter_destroy(w->git);
    rocksdb_readoptions_destroy(w->ro);
    if (w->gro) rocksdb_readoptions_destroy(w->gro);
    if (w->snap) rocksdb_release_snapshot(e->store.db, w->snap);
}

/* A forgotten memory from its as-of index value; does it belong in the view? */
static bool take_gone(const uint8_t *v, size_t vl, const mn_filter_t *f, entry *en)
{
    if (vl != GONE_VALUE_LEN) return false;
    en->gone = true;
    en->kind = v[0];
    en->created_at = (int64_t)mn_get_be64(v + 1);
    en->gone_at = (int64_t)mn_get_be64(v + 9);
    return mn__filter_match_gone(en->kind, en->when, en->created_at, en->gone_at, f);
}

/* A time index entry against its slot (read lock held); an expired memory not
 * swept yet is as gone as a swept one in an as-of view. */
static bool take_live(const mn__space *sp, const mn_filter_t *f, bool as_of, int64_t now_ms,
                      entry *en)
{
    uint32_t slot = mn__space_find(sp, &en->id);
    const mn__slot *s = slot == UINT32_MAX ? NULL : &sp->slots[slot];
    if (!s) return false;
    if (mn__filter_match(s, f, now_ms)) return true;
    if (!as_of || !s->expires_at_ms || s->expires_at_ms > now_ms) return false;
    en->gone = true;
    en->kind = s->kind;
    en->created_at = s->created_at_ms;
    en->gone_at = s->expires_at_ms;
    return mn__filter_match_gone(en->kind, en->when, en->created_at, en->gone_at, f);
}

/* Up to limit + 1 entries of the page into ents, in (when, id) order, under
 * the space's read lock. Returns how many. */
static size_t collect_page(mn__space *sp, const mn_list_req_t *req, walk *w, int64_t now_ms,
                           uint32_t limit, entry *ents)
{
    bool as_of = req->filter.as_of_ms != MN_TIME_UNSET;
    size_t n = 0;
    pthread_rwlock_rdlock(&sp->lock);
    while (n <= limit) {
        const uint8_t *kt = NULL, *kg = NULL;
        bool vt = valid_key(w->it, &kt), vg = valid_key(w->git, &kg);
        if (!vt && !vg) break;
        bool from_gone = vg && (!vt || memcmp(suffix(kg), suffix(kt), 24) < 0);
        const uint8_t *k = from_gone ? kg : kt;
        rocksdb_iterator_t *src = from_gone ? w->git : w->it;
        int64_t when = mn__key_time_from_bits(mn_get_be64(k + KEY_SID_LEN + 1));
        if (req->filter.when_to_ms != MN_TIME_UNSET && when >= req->filter.when_to_ms) break;
        entry en = {.when = when};
        memcpy(en.id.b, k + KEY_SID_LEN + 9, 16);
        bool take = false;
        if (w->skip_equal && !memcmp(suffix(k), w->start + KEY_SID_LEN + 1, 24)) {
            /* the cursor's own entry */
        } else if (from_gone) {
            size_t vl;
            const uint8_t *v = (const uint8_t *)rocksdb_iter_value(src, &vl);
            take = take_gone(v, vl, &req->filter, &en);
        } else {
            take = take_live(sp, &req->filter, as_of, now_ms, &en);
        }
        if (take) ents[n++] = en;
        rocksdb_iter_next(src);
    }
    pthread_rwlock_unlock(&sp->lock);
    return n;
}

/* What is left of a forgotten memory: id, kind, times, forgotten. */
static mn_err redacted(const entry *en, mn_memory_t *m, mn_error *err)
{
    mn_memory_init(m);
    m->id = en->id;
    m->kind = (mn_kind_t)en->kind;
    m->when_ms = en->when;
    m->created_at_ms = en->created_at;
    m->forgotten = true;
    m->forgotten_at_ms = en->gone_at;
    if (!(m->content = calloc(1, 1))) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    return MN_OK;
}

/* The page's memories from the store, into out (a memory forgotten since the
 * walk is left out). */
static mn_err fill_page(mn_engine_t *e, const mn__space *sp, const mn_list_req_t *req,
                        const entry *ents, size_t n, mn_list_result_t *out, mn_error *err)
{
    bool as_of = req->filter.as_of_ms != MN_TIME_UNSET;
    out->memories = calloc(n ? n : 1, sizeof *out->memories);
    if (!out->memories) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        mn_memory_t *m = &out->memories[out->n];
        if (ents[i].gone) {
            mn_err rc = redacted(&ents[i], m, err);
            if (rc) return rc;
            out->n++;
            continue;
        }
        mn_error rerr = {0};
        mn_err r = mn__record_read(&e->store, e->opts.initial_stability_days, sp, &ents[i].id,
                                   req->include_embedding, m, &rerr);
        if (r == MN_ERR_GONE || r == MN_ERR_NOT_FOUND) continue; /* forgotten meanwhile */
        if (r) {
            if (err) *err = rerr;
            return r;
        }
        mn__versions_present(m);
        if (as_of) /* as it was then */
            m->suppressed = mn__filter_suppressed_at(m->suppressed, m->suppressed_at_ms,
                                                     m->unsuppressed_at_ms, req->filter.as_of_ms);
        out->n++;
    }
    return MN_OK;
}

mn_err mn_engine_list(mn_engine_t *e, const char *space, const mn_list_req_t *req,
                      mn_list_result_t *out, mn_error *err)
{
    memset(out, 0, sizeof *out);
    uint32_t limit = req->limit ? req->limit : 100;
    if (limit > 1000)
        return mn_error_set(err, MN_ERR_INVALID, "limit: must be in 1..1000, got %u", limit);
    mn_err rc = mn__validate_filter(&req->filter, err);
    if (rc) return rc;
    uint8_t cur[24];
    bool has_cursor = req->cursor && *req->cursor;
    if (has_cursor && !cursor_parse(req->cursor, cur))
        return mn_error_set(err, MN_ERR_INVALID, "cursor: malformed (use the \"next\" value)");
    rc = mn__filter_check_as_of(&req->filter, mn__now(e), e->opts.as_of_max_age_ms, err);
    if (rc) return rc;
    mn__space *sp = mn__registry_acquire(&e->reg, space);
    if (!sp) return mn_error_set(err, MN_ERR_NOT_FOUND, "space \"%.64s\" not found", space);

    walk w;
    walk_bounds(&w, sp, req, has_cursor ? cur : NULL);
    walk_open(e, &w, req->filter.as_of_ms != MN_TIME_UNSET);
    entry *ents = malloc((size_t)(limit + 1) * sizeof *ents);
    size_t n = ents ? collect_page(sp, req, &w, mn__now(e), limit, ents) : 0;
    /* a walk that met a bad block is an error, never a short page */
    if (ents && !(rc = mn__store_iter_status(w.it, "index", err)) && w.git)
        rc = mn__store_iter_status(w.git, "index", err);
    walk_close(e, &w);
    if (!ents) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    if (rc) goto out;
    bool more = n > limit;
    if (more) n = limit;
    if ((rc = fill_page(e, sp, req, ents, n, out, err))) goto out;
    if (more) {
        if ((out->next = malloc(CURSOR_HEX + 1)))
            cursor_format(ents[n - 1].when, &ents[n - 1].id, out->next);
        else
            rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
out:
    if (rc) mn_list_result_clear(out);
    free(ents);
    mn__space_unref(sp);
    return rc;
}
