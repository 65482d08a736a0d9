/* Gossip records: validation, the canonical digest, and the merge rule.
 *
 * The merge is a join in a product of semilattices, which is what makes it
 * commutative, associative and idempotent (Shapiro et al., "Conflict-free
 * Replicated Data Types", SSS 2011, §2.2: a state-based object converges when
 * its merge is the least upper bound of a join-semilattice):
 *  - the version: max under a total order (epoch, hlc, support_n,
 *    confidence, retired, digest, payload_len), every field of the version
 *    in the key (the payload through its digest, which record_check holds
 *    it to), so two versions that compare equal are equal;
 *  - support and forgotten_eps: the lowest K ids of the union (the lowest K
 *    of a union are the lowest K of the parts' lowest K: still a join);
 *  - the tombstone (forgotten_hlc != 0) absorbs: merge(tombstone, x) is the
 *    tombstone with the larger forgotten_hlc, so a forgotten memory never
 *    comes back (Demers et al. 1987's death certificates).
 * Confidence compares by its bits: record_check admits only +0.0..1.0, where
 * the IEEE order of the bits is the numeric order and no two bit patterns
 * are equal numbers. This file includes nothing of its module's siblings. */
#include <math.h>
#include <openssl/sha.h>
#include <string.h>

#include "gossip_internal.h"

static uint32_t conf_bits(float c)
{
    uint32_t b;
    memcpy(&b, &c, sizeof b);
    return b;
}

static mn_err ids_check(const mn_id_t *ids, size_t n, size_t max, const char *field, mn_error *err)
{
    if (n > max) return mn_error_set(err, MN_ERR_INVALID, "%s: more than %zu ids", field, max);
    if (n && !ids) return mn_error_set(err, MN_ERR_INVALID, "%s: missing", field);
    for (size_t i = 1; i < n; i++)
        if (mn_id_cmp(&ids[i - 1], &ids[i]) >= 0)
            return mn_error_set(err, MN_ERR_INVALID, "%s: ids not sorted and unique", field);
    return MN_OK;
}

static bool zero_bytes(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

void mn_gossip_payload_digest(const uint8_t *payload, size_t len, uint8_t out[MN_GOSSIP_DIGEST_LEN])
{
    uint8_t full[SHA256_DIGEST_LENGTH];
    SHA256(payload, len, full);
    memcpy(out, full, MN_GOSSIP_DIGEST_LEN);
}

static mn_err payload_check(const mn_gossip_record_t *r, mn_error *err)
{
    if (!r->payload_len) return MN_OK;
    if (r->payload_len > MN_GOSSIP_PAYLOAD_MAX || !r->payload)
        return mn_error_set(err, MN_ERR_INVALID, "payload: 1..%u bytes", MN_GOSSIP_PAYLOAD_MAX);
    uint8_t d[MN_GOSSIP_DIGEST_LEN];
    mn_gossip_payload_digest(r->payload, r->payload_len, d);
    if (memcmp(d, r->digest, sizeof d) != 0)
        return mn_error_set(err, MN_ERR_INVALID, "digest: not the payload's SHA-256");
    return MN_OK;
}

static mn_err tombstone_check(const mn_gossip_record_t *r, mn_error *err)
{
    if (r->epoch || r->hlc || r->support_n || r->retired || conf_bits(r->confidence) ||
        !zero_bytes(r->digest, sizeof r->digest) || r->n_support || r->n_forgotten_eps ||
        r->payload_len)
        return mn_error_set(err, MN_ERR_INVALID,
                            "forgotten_hlc: a tombstone carries no version, support, "
                            "forgotten episodes or payload");
    return MN_OK;
}

mn_err mn_gossip_record_check(const mn_gossip_record_t *r, mn_error *err)
{
    if (!r) return mn_error_set(err, MN_ERR_INVALID, "record: missing");
    if (mn_id_is_zero(&r->id)) return mn_error_set(err, MN_ERR_INVALID, "id: zero");
    if (r->forgotten_hlc) return tombstone_check(r, err);
    if (!r->hlc) return mn_error_set(err, MN_ERR_INVALID, "hlc: zero in a live version");
    if (!isfinite(r->confidence) || r->confidence < 0.0f || r->confidence > 1.0f ||
        signbit(r->confidence))
        return mn_error_set(err, MN_ERR_INVALID, "confidence: must be in [0, 1]");
    mn_err rc = ids_check(r->support, r->n_support, MN_GOSSIP_SUPPORT_MAX, "support", err);
    if (rc == MN_OK)
        rc = ids_check(r->forgotten_eps, r->n_forgotten_eps, MN_GOSSIP_FORGOTTEN_MAX,
                       "forgotten_eps", err);
    return rc == MN_OK ? payload_check(r, err) : rc;
}

/* ---- the canonical digest ---- */

/* Canonical bytes: a tag, the id, then the tombstone's time or the version
 * and both id lists with their counts (big-endian throughout). */
#define CANON_MAX                                                                                  \
    (16 + 16 + 4 * 8 + 1 + MN_GOSSIP_DIGEST_LEN + 2 * 8 +                                          \
     (MN_GOSSIP_SUPPORT_MAX + MN_GOSSIP_FORGOTTEN_MAX) * 16 + 8)

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    mn_put_be64(p, v);
    return p + 8;
}

static uint8_t *put_ids(uint8_t *p, const mn_id_t *ids, size_t n)
{
    p = put_u64(p, n);
    for (size_t i = 0; i < n; i++, p += 16)
        memcpy(p, ids[i].b, 16);
    return p;
}

void mn_gossip_record_hash(const mn_gossip_record_t *r, uint8_t out[MN_GOSSIP_DIGEST_LEN])
{
    uint8_t buf[CANON_MAX], *p = buf;
    mn_assert(r->n_support <= MN_GOSSIP_SUPPORT_MAX &&
              r->n_forgotten_eps <= MN_GOSSIP_FORGOTTEN_MAX);
    memcpy(p, r->forgotten_hlc ? "mnemo.gossip.T\0\0" : "mnemo.gossip.L\0\0", 16);
    p += 16;
    memcpy(p, r->id.b, 16);
    p += 16;
    if (r->forgotten_hlc) {
        p = put_u64(p, r->forgotten_hlc);
    } else {
        p = put_u64(p, r->epoch);
        p = put_u64(p, r->hlc);
        p = put_u64(p, ((uint64_t)r->support_n << 32) | conf_bits(r->confidence));
        *p++ = r->retired ? 1 : 0;
        memcpy(p, r->digest, MN_GOSSIP_DIGEST_LEN);
        p += MN_GOSSIP_DIGEST_LEN;
        p = put_ids(p, r->support, r->n_support);
        p = put_ids(p, r->forgotten_eps, r->n_forgotten_eps);
        p = put_u64(p, r->payload_len); /* the bytes themselves: through the digest */
    }
    uint8_t full[SHA256_DIGEST_LENGTH];
    SHA256(buf, (size_t)(p - buf), full);
    memcpy(out, full, MN_GOSSIP_DIGEST_LEN);
}

/* ---- the merge ---- */

static int cmp_u64(uint64_t a, uint64_t b)
{
    return a < b ? -1 : a > b;
}

/* The version order: < 0, 0, > 0 as a's version is below, equal to, above b's. */
int mn__gossip_version_cmp(const mn_gossip_record_t *a, const mn_gossip_record_t *b)
{
    int c = cmp_u64(a->epoch, b->epoch);
    if (!c) c = cmp_u64(a->hlc, b->hlc);
    if (!c) c = cmp_u64(a->support_n, b->support_n);
    if (!c) c = cmp_u64(conf_bits(a->confidence), conf_bits(b->confidence));
    if (!c) c = (int)a->retired - (int)b->retired;
    if (!c) c = memcmp(a->digest, b->digest, sizeof a->digest);
    if (!c) c = cmp_u64(a->payload_len, b->payload_len);
    return c;
}

/* The lowest max ids of the union of two sorted, unique lists into out. */
static size_t union_lowest(const mn_id_t *a, size_t na, const mn_id_t *b, size_t nb, mn_id_t *out,
                           size_t max)
{
    size_t i = 0, j = 0, n = 0;
    while (n < max && (i < na || j < nb)) {
        int c = i == na ? 1 : j == nb ? -1 : mn_id_cmp(&a[i], &b[j]);
        out[n++] = c <= 0 ? a[i] : b[j];
        i += c <= 0;
        j += c >= 0;
    }
    return n;
}

void mn_gossip_record_merge(const mn_gossip_record_t *a, const mn_gossip_record_t *b,
                            mn_gossip_record_t *out, mn_id_t *support_buf, mn_id_t *forgotten_buf)
{
    mn_assert(mn_id_cmp(&a->id, &b->id) == 0);
    if (a->forgotten_hlc || b->forgotten_hlc) {
        memset(out, 0, sizeof *out);
        out->id = a->id;
        out->forgotten_hlc =
            a->forgotten_hlc > b->forgotten_hlc ? a->forgotten_hlc : b->forgotten_hlc;
        return;
    }
    *out = mn__gossip_version_cmp(a, b) >= 0 ? *a : *b;
    out->n_support = union_lowest(a->support, a->n_support, b->support, b->n_support, support_buf,
                                  MN_GOSSIP_SUPPORT_MAX);
    out->support = support_buf;
    out->n_forgotten_eps = union_lowest(a->forgotten_eps, a->n_forgotten_eps, b->forgotten_eps,
                                        b->n_forgotten_eps, forgotten_buf, MN_GOSSIP_FORGOTTEN_MAX);
    out->forgotten_eps = forgotten_buf;
}

static bool ids_equal(const mn_id_t *a, size_t na, const mn_id_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

bool mn_gossip_record_equal(const mn_gossip_record_t *a, const mn_gossip_record_t *b)
{
    return mn_id_cmp(&a->id, &b->id) == 0 && a->forgotten_hlc == b->forgotten_hlc &&
           mn__gossip_version_cmp(a, b) == 0 &&
           ids_equal(a->support, a->n_support, b->support, b->n_support) &&
           ids_equal(a->forgotten_eps, a->n_forgotten_eps, b->forgotten_eps, b->n_forgotten_eps);
}
