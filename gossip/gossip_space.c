/* Spaces and their records: the gossiped copy of each space's semantic
 * memories, kept sorted by (bucket, id) so that the records under any tree
 * node form one contiguous run (found by binary search), and the directory:
 * every space sorted by (bucket of its name, name), with a tree of the same
 * shape over the spaces that hold records, each entry's digest a hash of
 * (name, root, count).
 *
 * Invariants, checked by mn__gossip_dir_verify (O(n): in tests, and after a
 * tombstone collection in debug builds): records sorted and unique; each
 * record's hash is the hash of its state; each tree equals a rebuild from
 * its entries; a space is in the directory tree iff it holds records, with
 * the digest of its current root. After every change, debug builds check
 * the path it touched in O(16 x depth + leaf): the leaf is the XOR and count
 * of its entries, and each node up to the root the XOR and sum of its 16
 * children (path_ok). Buckets (which leaf an entry falls in) are part of the wire
 * contract: splitmix64's finaliser over the id's two halves (the low half
 * mixed first, so UUIDv7 ids, which share their leading time bits, spread
 * over every leaf), and over two CRC32Cs of a space name. */
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "gossip_internal.h"

/* splitmix64's finaliser (Steele, Lea, Flood, "Fast splittable
 * pseudorandom number generators", OOPSLA 2014): every input bit flips
 * every output bit with odds near 1/2. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t mn__gossip_id_bucket(const mn_id_t *id)
{
    return mix64(mn_get_be64(id->b) ^ mix64(mn_get_be64(id->b + 8)));
}

uint64_t mn__gossip_name_bucket(const char *name, size_t len)
{
    uint64_t crcs = ((uint64_t)mn_crc32c(0, name, len) << 32) | mn_crc32c(0x5eed, name, len);
    return mix64(crcs);
}

/* ---- the directory ---- */

static int space_cmp(uint64_t bucket, const char *name, size_t len, const mn__gossip_space *sp)
{
    if (bucket != sp->bucket) return bucket < sp->bucket ? -1 : 1;
    size_t m = len < sp->name_len ? len : sp->name_len;
    int c = memcmp(name, sp->name, m);
    return c ? c : len < sp->name_len ? -1 : len > sp->name_len;
}

/* First position whose space is not below (bucket, name). */
static size_t space_lower(const mn__gossip_dir *d, uint64_t bucket, const char *name, size_t len)
{
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (space_cmp(bucket, name, len, d->spaces[mid]) > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

mn__gossip_space *mn__gossip_space_find(const mn__gossip_dir *d, const char *name, size_t len)
{
    uint64_t b = mn__gossip_name_bucket(name, len);
    size_t i = space_lower(d, b, name, len);
    return i < d->n && space_cmp(b, name, len, d->spaces[i]) == 0 ? d->spaces[i] : NULL;
}

static bool grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap * 2 : 8;
    while (nc < need)
        nc *= 2;
    void *np = realloc(*p, nc * size);
    if (!np) return false;
    *p = np;
    *cap = nc;
    return true;
}

mn__gossip_space *mn__gossip_space_get(mn__gossip_dir *d, const char *name, size_t len)
{
    mn_assert(len >= 1 && len <= MN_GOSSIP_SPACE_MAX);
    mn__gossip_space *sp = mn__gossip_space_find(d, name, len);
    if (sp) return sp;
    if (!grow((void **)&d->spaces, &d->cap, d->n + 1, sizeof *d->spaces)) return NULL;
    sp = calloc(1, sizeof *sp);
    if (!sp) return NULL;
    memcpy(sp->name, name, len);
    sp->name_len = len;
    sp->bucket = mn__gossip_name_bucket(name, len);
    mn__gossip_tree_init(&sp->tree);
    size_t i = space_lower(d, sp->bucket, name, len);
    memmove(&d->spaces[i + 1], &d->spaces[i], (d->n - i) * sizeof *d->spaces);
    d->spaces[i] = sp;
    d->n++;
    return sp;
}

static void rec_free_all(mn__gossip_space *sp)
{
    for (size_t i = 0; i < sp->n; i++)
        free(sp->recs[i]);
    free(sp->recs);
}

void mn__gossip_dir_free(mn__gossip_dir *d)
{
    for (size_t i = 0; i < d->n; i++) {
        rec_free_all(d->spaces[i]);
        mn__gossip_tree_free(&d->spaces[i]->tree);
        free(d->spaces[i]);
    }
    free(d->spaces);
    mn__gossip_tree_free(&d->tree);
    memset(d, 0, sizeof *d);
}

/* The directory entry's digest of a space: its name, root and count. */
static void dir_digest(const mn__gossip_space *sp, uint8_t out[MN_GOSSIP_DIGEST_LEN])
{
    uint8_t buf[16 + 8 + MN_GOSSIP_SPACE_MAX + MN_GOSSIP_DIGEST_LEN + 8], *p = buf;
    uint8_t root[MN_GOSSIP_DIGEST_LEN], full[SHA256_DIGEST_LENGTH];
    uint32_t count;
    mn__gossip_tree_node(&sp->tree, 0, 0, root, &count);
    memcpy(p, "mnemo.gossip.S\0\0", 16);
    p += 16;
    mn_put_be64(p, sp->name_len);
    p += 8;
    memcpy(p, sp->name, sp->name_len);
    p += sp->name_len;
    memcpy(p, root, sizeof root);
    p += sizeof root;
    mn_put_be64(p, count);
    p += 8;
    SHA256(buf, (size_t)(p - buf), full);
    memcpy(out, full, MN_GOSSIP_DIGEST_LEN);
}

static uint64_t rec_bucket(const void *const *v, size_t i);
static uint64_t space_bucket(const void *const *v, size_t i);
static void range_of(const void *const *v, size_t n,
                     uint64_t (*bucket)(const void *const *, size_t), int level, uint32_t index,
                     size_t *first, size_t *end);

#ifndef NDEBUG
/* The tree's nodes on bucket's path agree with the entries below them:
 * the leaf with its entries (digest(v, i) NULL = not in the tree), each
 * node above with its 16 children. */
static bool path_ok(const mn__gossip_tree *t, uint64_t bucket, const void *const *v, size_t n,
                    uint64_t (*bucket_of)(const void *const *, size_t),
                    const uint8_t *(*digest)(const void *const *, size_t))
{
    uint8_t want[MN_GOSSIP_DIGEST_LEN] = {0}, got[MN_GOSSIP_DIGEST_LEN],
            child[MN_GOSSIP_DIGEST_LEN];
    uint32_t want_n = 0, got_n, child_n;
    uint32_t leaf = mn__gossip_index_at(bucket, MN_GOSSIP_TREE_DEPTH);
    size_t first, end;
    range_of(v, n, bucket_of, MN_GOSSIP_TREE_DEPTH, leaf, &first, &end);
    for (size_t i = first; i < end; i++) {
        const uint8_t *d = digest(v, i);
        for (int b = 0; d && b < MN_GOSSIP_DIGEST_LEN; b++)
            want[b] ^= d[b];
        want_n += d != NULL;
    }
    mn__gossip_tree_node(t, MN_GOSSIP_TREE_DEPTH, leaf, got, &got_n);
    if (got_n != want_n || memcmp(got, want, sizeof got)) return false;
    for (int level = MN_GOSSIP_TREE_DEPTH - 1; level >= 0; level--) {
        uint32_t index = mn__gossip_index_at(bucket, level);
        memset(want, 0, sizeof want);
        want_n = 0;
        for (uint32_t c = 0; c < MN_GOSSIP_TREE_FANOUT; c++) {
            mn__gossip_tree_node(t, level + 1, index * MN_GOSSIP_TREE_FANOUT + c, child, &child_n);
            for (int b = 0; b < MN_GOSSIP_DIGEST_LEN; b++)
                want[b] ^= child[b];
            want_n += child_n;
        }
        mn__gossip_tree_node(t, level, index, got, &got_n);
        if (got_n != want_n || memcmp(got, want, sizeof got)) return false;
    }
    return true;
}

static const uint8_t *rec_digest(const void *const *v, size_t i)
{
    return ((const mn__gossip_rec *const *)v)[i]->hash;
}

static const uint8_t *space_digest(const void *const *v, size_t i)
{
    const mn__gossip_space *sp = ((const mn__gossip_space *const *)v)[i];
    return sp->in_dir ? sp->dir_digest : NULL;
}

/* The paths a change of one record of sp touched, in its tree and the directory's. */
static bool change_ok(const mn__gossip_dir *d, const mn__gossip_space *sp, uint64_t bucket)
{
    return path_ok(&sp->tree, bucket, (const void *const *)sp->recs, sp->n, rec_bucket,
                   rec_digest) &&
           path_ok(&d->tree, sp->bucket, (const void *const *)d->spaces, d->n, space_bucket,
                   space_digest);
}
#endif

/* Brings the space's directory entry up to date (room reserved). */
static void dir_update(mn__gossip_dir *d, mn__gossip_space *sp)
{
    uint8_t now[MN_GOSSIP_DIGEST_LEN];
    if (sp->n) dir_digest(sp, now);
    mn_err rc = mn__gossip_tree_apply(&d->tree, sp->bucket, sp->in_dir ? sp->dir_digest : NULL,
                                      sp->n ? now : NULL);
    mn_assert(rc == MN_OK); /* the caller reserved the room */
    sp->in_dir = sp->n > 0;
    if (sp->n) memcpy(sp->dir_digest, now, sizeof now);
}

/* ---- records ---- */

static int rec_cmp(uint64_t bucket, const mn_id_t *id, const mn__gossip_rec *r)
{
    if (bucket != r->bucket) return bucket < r->bucket ? -1 : 1;
    return mn_id_cmp(id, &r->r.id);
}

static size_t rec_lower(const mn__gossip_space *sp, uint64_t bucket, const mn_id_t *id)
{
    size_t lo = 0, hi = sp->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rec_cmp(bucket, id, sp->recs[mid]) > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

mn__gossip_rec *mn__gossip_rec_find(const mn__gossip_space *sp, const mn_id_t *id)
{
    uint64_t b = mn__gossip_id_bucket(id);
    size_t i = rec_lower(sp, b, id);
    return i < sp->n && rec_cmp(b, id, sp->recs[i]) == 0 ? sp->recs[i] : NULL;
}

/* A stored copy of r (its arrays copied into the allocation). */
static mn__gossip_rec *rec_new(const mn_gossip_record_t *r, uint64_t bucket)
{
    size_t n_ids = r->n_support + r->n_forgotten_eps;
    mn__gossip_rec *x = malloc(sizeof *x + n_ids * sizeof(mn_id_t) + r->payload_len);
    if (!x) return NULL;
    x->bucket = bucket;
    x->r = *r;
    if (r->n_support) memcpy(x->ids, r->support, r->n_support * sizeof(mn_id_t));
    if (r->n_forgotten_eps)
        memcpy(x->ids + r->n_support, r->forgotten_eps, r->n_forgotten_eps * sizeof(mn_id_t));
    x->r.support = r->n_support ? x->ids : NULL;
    x->r.forgotten_eps = r->n_forgotten_eps ? x->ids + r->n_support : NULL;
    uint8_t *payload = (uint8_t *)(x->ids + n_ids);
    if (r->payload_len) memcpy(payload, r->payload, r->payload_len);
    x->r.payload = r->payload_len ? payload : NULL;
    mn_gossip_record_hash(&x->r, x->hash);
    return x;
}

static mn_err reserve_all(mn__gossip_dir *d, mn__gossip_space *sp)
{
    if (!grow((void **)&sp->recs, &sp->cap, sp->n + 1, sizeof *sp->recs)) return MN_ERR_NOMEM;
    if (mn__gossip_tree_reserve(&sp->tree, MN_GOSSIP_TREE_DEPTH + 1) != MN_OK) return MN_ERR_NOMEM;
    return mn__gossip_tree_reserve(&d->tree, MN_GOSSIP_TREE_DEPTH + 1);
}

mn_err mn__gossip_space_merge(mn__gossip_dir *d, mn__gossip_space *sp, const mn_gossip_record_t *in,
                              bool *changed, const mn__gossip_rec **out)
{
    *changed = false;
    uint64_t bucket = mn__gossip_id_bucket(&in->id);
    size_t i = rec_lower(sp, bucket, &in->id);
    mn__gossip_rec *old =
        i < sp->n && rec_cmp(bucket, &in->id, sp->recs[i]) == 0 ? sp->recs[i] : NULL;
    mn_gossip_record_t merged = *in;
    mn_id_t sup[MN_GOSSIP_SUPPORT_MAX], fgt[MN_GOSSIP_FORGOTTEN_MAX];
    if (old) {
        mn_gossip_record_merge(&old->r, in, &merged, sup, fgt);
        if (mn_gossip_record_equal(&merged, &old->r)) {
            if (out) *out = old;
            return MN_OK;
        }
    }
    if (reserve_all(d, sp) != MN_OK) return MN_ERR_NOMEM;
    mn__gossip_rec *x = rec_new(&merged, bucket);
    if (!x) return MN_ERR_NOMEM;
    mn_err rc = mn__gossip_tree_apply(&sp->tree, bucket, old ? old->hash : NULL, x->hash);
    mn_assert(rc == MN_OK); /* reserved */
    if (old) {
        free(old);
    } else {
        memmove(&sp->recs[i + 1], &sp->recs[i], (sp->n - i) * sizeof *sp->recs);
        sp->n++;
    }
    sp->recs[i] = x;
    dir_update(d, sp);
    mn_assert_debug(change_ok(d, sp, bucket));
    *changed = true;
    if (out) *out = x;
    return MN_OK;
}

void mn__gossip_space_remove(mn__gossip_dir *d, mn__gossip_space *sp, size_t i)
{
    mn_assert(i < sp->n);
    mn__gossip_rec *x = sp->recs[i];
    uint64_t x_bucket = x->bucket;
    mn_err rc = mn__gossip_tree_apply(&sp->tree, x->bucket, x->hash, NULL);
    mn_assert(rc == MN_OK); /* a removal allocates nothing */
    free(x);
    memmove(&sp->recs[i], &sp->recs[i + 1], (sp->n - i - 1) * sizeof *sp->recs);
    sp->n--;
    dir_update(d, sp); /* a removal from the directory allocates nothing either */
    mn_assert_debug(change_ok(d, sp, x_bucket));
#ifdef NDEBUG
    (void)x_bucket;
#endif
}

/* The bucket range [lo, hi] of a node. */
static void node_bounds(int level, uint32_t index, uint64_t *lo, uint64_t *hi)
{
    if (level == 0) {
        *lo = 0;
        *hi = UINT64_MAX;
        return;
    }
    int shift = 64 - 4 * level;
    *lo = (uint64_t)index << shift;
    *hi = *lo | ((UINT64_C(1) << shift) - 1);
}

static uint64_t rec_bucket(const void *const *v, size_t i)
{
    return ((const mn__gossip_rec *const *)v)[i]->bucket;
}

static uint64_t space_bucket(const void *const *v, size_t i)
{
    return ((const mn__gossip_space *const *)v)[i]->bucket;
}

/* [*first, *end) of the n entries (sorted by bucket) that a node holds. */
static void range_of(const void *const *v, size_t n,
                     uint64_t (*bucket)(const void *const *, size_t), int level, uint32_t index,
                     size_t *first, size_t *end)
{
    uint64_t lo, hi;
    node_bounds(level, index, &lo, &hi);
    size_t a = 0, b = n;
    while (a < b) { /* first bucket >= lo */
        size_t mid = a + (b - a) / 2;
        if (bucket(v, mid) < lo)
            a = mid + 1;
        else
            b = mid;
    }
    *first = a;
    b = n;
    while (a < b) { /* first bucket > hi */
        size_t mid = a + (b - a) / 2;
        if (bucket(v, mid) <= hi)
            a = mid + 1;
        else
            b = mid;
    }
    *end = a;
}

void mn__gossip_rec_range(const mn__gossip_space *sp, int level, uint32_t index, size_t *first,
                          size_t *end)
{
    range_of((const void *const *)sp->recs, sp->n, rec_bucket, level, index, first, end);
}

void mn__gossip_dir_range(const mn__gossip_dir *d, int level, uint32_t index, size_t *first,
                          size_t *end)
{
    range_of((const void *const *)d->spaces, d->n, space_bucket, level, index, first, end);
}

/* ---- the debug check ---- */

bool mn__gossip_space_verify(const mn__gossip_space *sp)
{
    mn__gossip_tree t;
    mn__gossip_tree_init(&t);
    bool ok = true;
    for (size_t i = 0; ok && i < sp->n; i++) {
        const mn__gossip_rec *x = sp->recs[i];
        uint8_t h[MN_GOSSIP_DIGEST_LEN];
        mn_gossip_record_hash(&x->r, h);
        ok = memcmp(h, x->hash, sizeof h) == 0 && x->bucket == mn__gossip_id_bucket(&x->r.id) &&
             (i == 0 || rec_cmp(x->bucket, &x->r.id, sp->recs[i - 1]) > 0) &&
             mn__gossip_tree_apply(&t, x->bucket, NULL, x->hash) == MN_OK;
    }
    ok = ok && mn__gossip_tree_equal(&t, &sp->tree) && mn__gossip_tree_equal(&sp->tree, &t);
    mn__gossip_tree_free(&t);
    return ok;
}

bool mn__gossip_space_entry_ok(const mn__gossip_space *sp)
{
    if (sp->in_dir != (sp->n > 0)) return false;
    if (!sp->n) return true;
    uint8_t h[MN_GOSSIP_DIGEST_LEN];
    dir_digest(sp, h);
    return memcmp(h, sp->dir_digest, sizeof h) == 0;
}

static int rec_sort_cmp(const void *a, const void *b)
{
    const mn__gossip_rec *x = *(const mn__gossip_rec *const *)a;
    return rec_cmp(x->bucket, &x->r.id, *(const mn__gossip_rec *const *)b);
}

static int space_sort_cmp(const void *a, const void *b)
{
    const mn__gossip_space *x = *(const mn__gossip_space *const *)a;
    return space_cmp(x->bucket, x->name, x->name_len, *(const mn__gossip_space *const *)b);
}

mn_err mn__gossip_space_repair(mn__gossip_dir *d, mn__gossip_space *sp)
{
    for (size_t i = 0; i < sp->n; i++) { /* each record's derived fields, from the record */
        mn__gossip_rec *x = sp->recs[i];
        mn_gossip_record_hash(&x->r, x->hash);
        x->bucket = mn__gossip_id_bucket(&x->r.id);
    }
    qsort(sp->recs, sp->n, sizeof *sp->recs, rec_sort_cmp);
    mn__gossip_tree t;
    mn__gossip_tree_init(&t);
    for (size_t i = 0; i < sp->n; i++)
        if (mn__gossip_tree_apply(&t, sp->recs[i]->bucket, NULL, sp->recs[i]->hash) != MN_OK) {
            mn__gossip_tree_free(&t);
            return MN_ERR_NOMEM; /* the old tree stays; the next check tries again */
        }
    mn__gossip_tree_free(&sp->tree);
    sp->tree = t;
    return mn__gossip_dir_repair(d);
}

mn_err mn__gossip_dir_repair(mn__gossip_dir *d)
{
    for (size_t i = 0; i < d->n; i++) {
        mn__gossip_space *sp = d->spaces[i];
        sp->bucket = mn__gossip_name_bucket(sp->name, sp->name_len);
        sp->in_dir = sp->n > 0;
        if (sp->n) dir_digest(sp, sp->dir_digest);
    }
    qsort(d->spaces, d->n, sizeof *d->spaces, space_sort_cmp);
    mn__gossip_tree t;
    mn__gossip_tree_init(&t);
    for (size_t i = 0; i < d->n; i++)
        if (d->spaces[i]->in_dir && mn__gossip_tree_apply(&t, d->spaces[i]->bucket, NULL,
                                                          d->spaces[i]->dir_digest) != MN_OK) {
            mn__gossip_tree_free(&t);
            return MN_ERR_NOMEM;
        }
    mn__gossip_tree_free(&d->tree);
    d->tree = t;
    return MN_OK;
}

bool mn__gossip_dir_verify(const mn__gossip_dir *d, bool deep)
{
    mn__gossip_tree t;
    mn__gossip_tree_init(&t);
    bool ok = true;
    for (size_t i = 0; ok && i < d->n; i++) {
        const mn__gossip_space *sp = d->spaces[i];
        uint8_t h[MN_GOSSIP_DIGEST_LEN];
        ok = (!deep || mn__gossip_space_verify(sp)) && sp->in_dir == (sp->n > 0) &&
             (i == 0 || space_cmp(sp->bucket, sp->name, sp->name_len, d->spaces[i - 1]) > 0);
        if (!ok || !sp->n) continue;
        dir_digest(sp, h);
        ok = memcmp(h, sp->dir_digest, sizeof h) == 0 &&
             mn__gossip_tree_apply(&t, sp->bucket, NULL, h) == MN_OK;
    }
    ok = ok && mn__gossip_tree_equal(&t, &d->tree) && mn__gossip_tree_equal(&d->tree, &t);
    mn__gossip_tree_free(&t);
    return ok;
}
