/* Exact duplicates on the way in (docs/api.md, "Duplicates").
 *
 * A remember whose memory equals a live memory of the space (same normalised
 * content, same context, same embedding bytes or both without one) is answered
 * with that memory's id and writes nothing. The check runs on the commit
 * thread, against the group's indexed batch, so concurrent identical remembers
 * serialise there and exactly one is stored (commit.c: prefilter_remember).
 *
 * Normalisation: runs of Unicode white space (the White_Space property: ASCII
 * blanks, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F,
 * U+205F, U+3000) become one space and the ends are trimmed. Case is kept:
 * case can carry meaning ("US" / "us", names, code), folding it right needs
 * Unicode's case tables (ß, dotless i), and a false duplicate is a memory the
 * caller meant to store and did not, while a missed one is only a near
 * duplicate (linked, and collapsed by recall). No canonical (NFC) composition
 * either, for the same reason. The context's who is a set (order ignored);
 * where and session compare exactly, absent and "" alike. An event time the
 * caller gave (`when` other than created_at) is part of it too: "yes" said twice
 * in one session at two given times is two episodes; without one, the same
 * words remembered again are the same memory.
 *
 * The index: sid|'d'|hash -> id, and sid|'D'|id -> hash so that a forget can
 * drop the first (a memory that the embedding provider gave a vector later
 * keeps the hash of what it was remembered with). The hash is 128 bits from
 * two independent 64-bit lanes: not cryptographic; two different memories
 * share one with probability about n^2 / 2^128 (a client able to craft a
 * collision can only make its own remember a duplicate in its own space). */
#include "dedup.h"

#include "apply_internal.h"
#include "record.h"

#include <stdlib.h>
#include <string.h>

typedef struct hasher {
    uint64_t a, b, n;
} hasher;

static uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static void feed(hasher *h, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h->a = (h->a ^ p[i]) * 0x100000001b3ull; /* FNV-1a */
        h->b = rotl64(h->b + p[i] * 0xff51afd7ed558ccdull, 29) * 0xc4ceb9fe1a85ec53ull;
    }
    h->n += len;
}

static void feed_u32(hasher *h, uint32_t v)
{
    uint8_t b[4];
    mn_put_be32(b, v);
    feed(h, b, sizeof b);
}

/* splitmix64's finaliser */
static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* 0xff never occurs in UTF-8: it ends a string without a length ahead of it */
static const uint8_t END = 0xff;

/* The bytes of the white-space code point at s[0..len), or 0. */
static size_t space_at(const uint8_t *s, size_t len)
{
    uint8_t c = s[0];
    if (c == ' ' || (c >= '\t' && c <= '\r')) return 1;
    if (c == 0xc2 && len >= 2 && (s[1] == 0x85 || s[1] == 0xa0)) return 2;
    if (len < 3) return 0;
    if (c == 0xe1 && s[1] == 0x9a && s[2] == 0x80) return 3; /* U+1680 */
    if (c == 0xe3 && s[1] == 0x80 && s[2] == 0x80) return 3; /* U+3000 */
    if (c != 0xe2) return 0;
    if (s[1] == 0x80 && (s[2] <= 0x8a || s[2] == 0xa8 || s[2] == 0xa9 || s[2] == 0xaf))
        return 3;                               /* U+2000..200A, U+2028, U+2029, U+202F */
    if (s[1] == 0x81 && s[2] == 0x9f) return 3; /* U+205F */
    return 0;
}

/* The content, white space collapsed and trimmed (valid UTF-8: validate.c). */
static void feed_content(hasher *h, const char *content, size_t len)
{
    const uint8_t *s = (const uint8_t *)content;
    bool gap = false, any = false;
    size_t i = 0;
    while (i < len) {
        size_t w = space_at(s + i, len - i);
        if (w) {
            gap = true;
            i += w;
            continue;
        }
        size_t j = i + 1;
        while (j < len && !space_at(s + j, len - j))
            j++;
        if (gap && any) feed(h, " ", 1);
        feed(h, s + i, j - i);
        any = true;
        gap = false;
        i = j;
    }
    feed(h, &END, 1);
}

static void feed_str(hasher *h, const char *s)
{
    if (s) feed(h, s, strlen(s));
    feed(h, &END, 1);
}

static int str_order(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void mn__dedup_hash(const mn_memory_t *m, uint8_t out[MN__DEDUP_HASH_LEN])
{
    hasher h = {0xcbf29ce484222325ull, 0x9e3779b97f4a7c15ull, 0};
    feed_content(&h, m->content ? m->content : "", m->content ? m->content_len : 0);
    /* who as a set: sorted (validate.c caps a client's list at MN_WHO_MAX; an
     * ingested entry's longer list is sorted on the heap, or hashed as it came) */
    const char *few[MN_WHO_MAX], **who = few;
    size_t n_who = m->n_who;
    if (n_who > MN_WHO_MAX && !(who = malloc(n_who * sizeof *who))) who = NULL;
    if (who && n_who) {
        memcpy(who, m->who, n_who * sizeof *who);
        qsort(who, n_who, sizeof *who, str_order);
    }
    feed_u32(&h, (uint32_t)n_who);
    for (size_t i = 0; i < n_who; i++)
        feed_str(&h, who ? who[i] : m->who[i]);
    if (who != few) free(who);
    feed_str(&h, m->where);
    feed_str(&h, m->session);
    /* an event time the caller gave (one other than the moment of the remember)
     * is part of what happened: the same words at two times are two episodes */
    uint8_t when[9] = {0};
    if (m->when_ms != m->created_at_ms) {
        when[0] = 1;
        mn_put_be64(when + 1, (uint64_t)m->when_ms);
    }
    feed(&h, when, sizeof when);
    feed_u32(&h, m->embedding ? m->dim : 0);
    if (m->embedding) feed(&h, m->embedding, (size_t)m->dim * sizeof(float));
    uint64_t x = mix(h.a ^ mix(h.n)), y = mix(h.b ^ rotl64(x, 17));
    mn_put_be64(out, x);
    mn_put_be64(out + 8, y);
}

mn_err mn__dedup_find(mn_engine_t *e, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                      const uint8_t h[MN__DEDUP_HASH_LEN], int64_t now_ms, mn_id_t *id, bool *found,
                      mn_error *err)
{
    *found = false;
    uint8_t k[KEY_DEDUP_LEN];
    mn__key_dedup(k, sp->sid, h);
    char *v;
    size_t vl;
    mn_err rc = mn__store_get_wi(&e->store, b, CF_INDEX, k, sizeof k, &v, &vl, err);
    if (rc || !v) return rc;
    bool ok = vl == 16;
    if (ok) memcpy(id->b, v, 16);
    free(v);
    if (!ok) return MN_OK; /* unreadable: not a duplicate; the next put repairs it */
    mn_memory_record_t rec;
    bool have;
    if ((rc = mn__record_get_wi(&e->store, b, sp, id, &rec, &have, err)) || !have) return rc;
    /* a suppressed, superseded or expired memory is no answer: the new one is stored; a
     * corrected memory's current version answers with its lineage (the id clients use) */
    *found = !rec.tombstone && !rec.mem.suppressed && !rec.mem.superseded &&
             !(rec.mem.expires_at_ms && rec.mem.expires_at_ms <= now_ms);
    if (*found && !mn_id_is_zero(&rec.mem.lineage)) *id = rec.mem.lineage;
    mn_memory_clear(&rec.mem);
    return MN_OK;
}

void mn__dedup_put(mn_engine_t *e, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                   const uint8_t h[MN__DEDUP_HASH_LEN], const mn_id_t *id)
{
    uint8_t k[KEY_DEDUP_LEN];
    mn__key_dedup(k, sp->sid, h);
    mn__wb_put(b, e, CF_INDEX, k, sizeof k, id->b, 16);
    mn__key_dedup_of(k, sp->sid, id);
    mn__wb_put(b, e, CF_INDEX, k, sizeof k, h, MN__DEDUP_HASH_LEN);
}

mn_err mn__dedup_erase(mn_engine_t *e, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                       const mn_id_t *id, mn_error *err)
{
    uint8_t rk[KEY_DEDUP_LEN], k[KEY_DEDUP_LEN];
    mn__key_dedup_of(rk, sp->sid, id);
    char *h, *v = NULL;
    size_t hl, vl;
    mn_err rc = mn__store_get_wi(&e->store, b, CF_INDEX, rk, sizeof rk, &h, &hl, err);
    if (rc || !h) return rc;
    if (hl == MN__DEDUP_HASH_LEN) {
        mn__key_dedup(k, sp->sid, (const uint8_t *)h);
        rc = mn__store_get_wi(&e->store, b, CF_INDEX, k, sizeof k, &v, &vl, err);
        if (!rc && v && vl == 16 && !memcmp(v, id->b, 16)) mn__wb_del(b, e, CF_INDEX, k, sizeof k);
    }
    free(v);
    free(h);
    if (!rc) mn__wb_del(b, e, CF_INDEX, rk, sizeof rk);
    return rc;
}
