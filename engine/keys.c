/* Encoders of the store's keys; the layout is described in keys.h. */
#include "keys.h"

#include <string.h>

void mn__key_sid(uint8_t *k, uint32_t sid)
{
    mn_put_be32(k, sid);
}

void mn__key_mem(uint8_t *k, uint32_t sid, const mn_id_t *id)
{
    mn_put_be32(k, sid);
    memcpy(k + KEY_SID_LEN, id->b, 16);
}

void mn__key_wal(uint8_t *k, uint32_t sid, uint64_t lsn)
{
    mn_put_be32(k, sid);
    mn_put_be64(k + KEY_SID_LEN, lsn);
}

uint64_t mn__key_time_bits(int64_t t)
{
    return (uint64_t)t ^ (1ull << 63);
}

int64_t mn__key_time_from_bits(uint64_t b)
{
    return (int64_t)(b ^ (1ull << 63));
}

/* sid | tag | when | id: the time index and both as-of index orders. */
static void key_tagged_time(uint8_t *k, uint32_t sid, uint8_t tag, int64_t t_ms, const mn_id_t *id)
{
    mn_put_be32(k, sid);
    k[KEY_SID_LEN] = tag;
    mn_put_be64(k + KEY_SID_LEN + 1, mn__key_time_bits(t_ms));
    memcpy(k + KEY_SID_LEN + 9, id->b, 16);
}

void mn__key_time(uint8_t *k, uint32_t sid, int64_t when_ms, const mn_id_t *id)
{
    key_tagged_time(k, sid, 't', when_ms, id);
}

void mn__key_gone(uint8_t *k, uint32_t sid, int64_t when_ms, const mn_id_t *id)
{
    key_tagged_time(k, sid, 'g', when_ms, id);
}

void mn__key_gone_by_time(uint8_t *k, uint32_t sid, int64_t gone_ms, const mn_id_t *id)
{
    key_tagged_time(k, sid, 'G', gone_ms, id);
}

size_t mn__key_idem(uint8_t *k, uint32_t sid, const char *key)
{
    size_t n = strlen(key);
    mn_put_be32(k, sid);
    k[KEY_SID_LEN] = 'k';
    memcpy(k + KEY_SID_LEN + 1, key, n);
    return KEY_SID_LEN + 1 + n;
}

/* sid | tag | id: the per-memory index keys. */
static void key_tagged_id(uint8_t *k, uint32_t sid, uint8_t tag, const mn_id_t *id)
{
    mn_put_be32(k, sid);
    k[KEY_SID_LEN] = tag;
    memcpy(k + KEY_SID_LEN + 1, id->b, 16);
}

void mn__key_dedup(uint8_t *k, uint32_t sid, const uint8_t hash[16])
{
    mn_id_t h;
    memcpy(h.b, hash, 16);
    key_tagged_id(k, sid, 'd', &h);
}

void mn__key_dedup_of(uint8_t *k, uint32_t sid, const mn_id_t *id)
{
    key_tagged_id(k, sid, 'D', id);
}

void mn__key_walref(uint8_t *k, uint32_t sid, const mn_id_t *id)
{
    key_tagged_id(k, sid, 'w', id);
}

void mn__key_strength(uint8_t *k, uint32_t sid, const mn_id_t *id)
{
    key_tagged_id(k, sid, 's', id);
}

void mn__key_consolidated(uint8_t *k, uint32_t sid, const mn_id_t *id)
{
    key_tagged_id(k, sid, 'c', id);
}

void mn__key_rederive(uint8_t *k, uint32_t sid, const mn_id_t *id)
{
    key_tagged_id(k, sid, 'R', id);
}

void mn__key_head(uint8_t *k, uint32_t sid, const mn_id_t *lineage)
{
    key_tagged_id(k, sid, 'v', lineage);
}

void mn__key_edge(uint8_t *k, uint32_t sid, const mn_id_t *from, const mn_id_t *to, uint8_t kind)
{
    mn_put_be32(k, sid);
    k[KEY_SID_LEN] = 'a';
    memcpy(k + KEY_SID_LEN + 1, from->b, 16);
    memcpy(k + KEY_SID_LEN + 17, to->b, 16);
    k[KEY_SID_LEN + 33] = kind;
}
