/* The chunk format of space snapshots (snapshot.h): written by the export, read back and
 * checked by the install. Every length is checked against the buffer before it is used:
 * a chunk comes from another node. */
#include "snapshot.h"

#include <stdlib.h>
#include <string.h>

static mn_err reserve(mn__snap_buf *b, size_t more)
{
    if (b->len + more <= b->cap) return MN_OK;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *nb = realloc(b->buf, cap);
    if (!nb) return MN_ERR_NOMEM;
    b->buf = nb;
    b->cap = cap;
    return MN_OK;
}

mn_err mn__snap_begin(mn__snap_buf *b, uint64_t id, uint32_t seq)
{
    b->len = 0;
    b->n_records = 0;
    if (reserve(b, SNAP_HEAD_LEN)) return MN_ERR_NOMEM;
    memset(b->buf, 0, SNAP_HEAD_LEN);
    memcpy(b->buf, SNAP_MAGIC, 4);
    b->buf[4] = SNAP_VERSION;
    mn_put_be64(b->buf + 8, id);
    mn_put_be32(b->buf + 16, seq);
    b->len = SNAP_HEAD_LEN;
    return MN_OK;
}

mn_err mn__snap_add(mn__snap_buf *b, uint8_t fam, const void *k, size_t kl, const void *v,
                    size_t vl)
{
    if (kl > UINT32_MAX || vl > UINT32_MAX) return MN_ERR_TOO_LARGE;
    if (reserve(b, SNAP_REC_HEAD + kl + vl)) return MN_ERR_NOMEM;
    uint8_t *p = b->buf + b->len;
    p[0] = fam;
    mn_put_be32(p + 1, (uint32_t)kl);
    mn_put_be32(p + 5, (uint32_t)vl);
    if (kl) memcpy(p + SNAP_REC_HEAD, k, kl);
    if (vl) memcpy(p + SNAP_REC_HEAD + kl, v, vl);
    b->len += SNAP_REC_HEAD + kl + vl;
    b->n_records++;
    return MN_OK;
}

size_t mn__snap_payload(const mn__snap_buf *b)
{
    return b->len - SNAP_HEAD_LEN;
}

void mn__snap_end(mn__snap_buf *b, bool last, uint8_t **out, size_t *len)
{
    /* reserve() cannot fail here in practice; a chunk without room for its CRC is not sent */
    if (reserve(b, 4)) {
        *out = NULL;
        *len = 0;
        return;
    }
    b->buf[5] = last ? SNAP_FLAG_LAST : 0;
    mn_put_be32(b->buf + 20, b->n_records);
    mn_put_be32(b->buf + 24, (uint32_t)(b->len - SNAP_HEAD_LEN));
    mn_put_be32(b->buf + b->len, mn_crc32c(0, b->buf, b->len));
    *out = b->buf;
    *len = b->len + 4;
    memset(b, 0, sizeof *b);
}

bool mn_engine_snapshot_chunk_peek(const uint8_t *buf, size_t len, uint64_t *id, uint32_t *seq)
{
    if (!buf || len < SNAP_HEAD_LEN + 4 || memcmp(buf, SNAP_MAGIC, 4)) return false;
    *id = mn_get_be64(buf + 8);
    *seq = mn_get_be32(buf + 16);
    return true;
}

mn_err mn__snap_open(mn__snap_reader *r, const uint8_t *buf, size_t len, mn_error *err)
{
    memset(r, 0, sizeof *r);
    if (!buf || len < SNAP_HEAD_LEN + 4 || memcmp(buf, SNAP_MAGIC, 4))
        return mn_error_set(err, MN_ERR_CORRUPT, "snapshot chunk: not a chunk (%zu bytes)", len);
    if (buf[4] != SNAP_VERSION)
        return mn_error_set(err, MN_ERR_CORRUPT, "snapshot chunk: version %u, this node reads %u",
                            buf[4], SNAP_VERSION);
    uint32_t payload = mn_get_be32(buf + 24);
    if ((uint64_t)payload + SNAP_HEAD_LEN + 4 != len)
        return mn_error_set(err, MN_ERR_CORRUPT, "snapshot chunk: %zu bytes, its header says %llu",
                            len, (unsigned long long)payload + SNAP_HEAD_LEN + 4);
    uint32_t want = mn_get_be32(buf + len - 4);
    if (mn_crc32c(0, buf, len - 4) != want)
        return mn_error_set(err, MN_ERR_CORRUPT, "snapshot chunk %u: bad checksum",
                            mn_get_be32(buf + 16));
    if (buf[5] & ~SNAP_FLAG_LAST)
        return mn_error_set(err, MN_ERR_CORRUPT, "snapshot chunk: unknown flags %#x", buf[5]);
    r->id = mn_get_be64(buf + 8);
    r->seq = mn_get_be32(buf + 16);
    r->n_records = mn_get_be32(buf + 20);
    r->last = buf[5] & SNAP_FLAG_LAST;
    r->p = buf + SNAP_HEAD_LEN;
    r->end = buf + len - 4;
    return MN_OK;
}

int mn__snap_next(mn__snap_reader *r, uint8_t *fam, const uint8_t **k, size_t *kl,
                  const uint8_t **v, size_t *vl, mn_error *err)
{
    if (r->p == r->end) return 0;
    size_t left = (size_t)(r->end - r->p);
    if (left < SNAP_REC_HEAD)
        return mn_error_set(err, MN_ERR_CORRUPT, "snapshot chunk %u: a torn record", r->seq);
    uint64_t klen = mn_get_be32(r->p + 1), vlen = mn_get_be32(r->p + 5);
    if (klen > SNAP_KEY_MAX || SNAP_REC_HEAD + klen + vlen > left)
        return mn_error_set(err, MN_ERR_CORRUPT, "snapshot chunk %u: a record overruns it", r->seq);
    *fam = r->p[0];
    *k = r->p + SNAP_REC_HEAD;
    *kl = (size_t)klen;
    *v = *k + klen;
    *vl = (size_t)vlen;
    r->p += SNAP_REC_HEAD + klen + vlen;
    return 1;
}
