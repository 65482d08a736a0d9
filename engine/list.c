/* Listing memories in event-time order: walks the space's time index
 * (sid|'t'|when|id) from the cursor, filters each entry against the in-memory
 * slot, and reads the records of one page. The cursor is the time-index key of
 * the last memory returned (48 hex digits), so pages never repeat or skip a
 * memory that stays put while paging. */
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

    uint8_t start[KEY_TIME_LEN], upper[KEY_SID_LEN + 1];
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

    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)upper, sizeof upper);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(e->store.db, ro, e->store.cf[CF_INDEX]);
    rocksdb_iter_seek(it, (const char *)start, start_len);

    mn_id_t *ids = malloc((size_t)(limit + 1) * sizeof *ids);
    int64_t *whens = malloc((size_t)(limit + 1) * sizeof *whens);
    size_t n = 0;
    int64_t now = mn_engine_now(e);
    if (ids && whens) {
        pthread_rwlock_rdlock(&sp->lock);
        for (; rocksdb_iter_valid(it) && n <= limit; rocksdb_iter_next(it)) {
            size_t kl;
            const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
            if (kl != KEY_TIME_LEN) continue;
            if (skip_equal && !memcmp(k, start, KEY_TIME_LEN)) continue;
            int64_t when = mn_key_time_from_bits(mn_get_be64(k + KEY_SID_LEN + 1));
            if (req->filter.when_to_ms != MN_TIME_UNSET && when >= req->filter.when_to_ms) break;
            mn_id_t id;
            memcpy(id.b, k + KEY_SID_LEN + 9, 16);
            uint32_t slot = mn_space_find(sp, &id);
            if (slot == UINT32_MAX || !mn_filter_match(&sp->slots[slot], &req->filter, now))
                continue;
            ids[n] = id;
            whens[n] = when;
            n++;
        }
        pthread_rwlock_unlock(&sp->lock);
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (!ids || !whens) {
        free(ids);
        free(whens);
        mn_engine_space_release(e, sp);
        return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    bool more = n > limit;
    if (more) n = limit;
    out->memories = calloc(n ? n : 1, sizeof *out->memories);
    if (!out->memories) rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        mn_error rerr = {0};
        mn_err r = mn_engine_read_memory(e, sp, &ids[i], req->include_embedding,
                                         &out->memories[out->n], &rerr);
        if (r == MN_ERR_GONE || r == MN_ERR_NOT_FOUND) continue; /* forgotten meanwhile */
        if (r) {
            if (err) *err = rerr;
            rc = r;
            break;
        }
        out->n++;
    }
    if (!rc && more) {
        out->next = malloc(CURSOR_HEX + 1);
        if (out->next) cursor_format(whens[n - 1], &ids[n - 1], out->next);
        else rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    }
    if (rc) mn_list_result_clear(out);
    free(ids);
    free(whens);
    mn_engine_space_release(e, sp);
    return rc;
}
