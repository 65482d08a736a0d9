/* UUIDv7 memory ids (RFC 9562 §5.7): 48-bit Unix ms | ver 7 | 12-bit rand_a |
 * var 10 | 62-bit rand_b. rand_a holds a per-ms counter started at a random
 * value below 2048 (RFC 9562 §6.2 method 1), so ids from one generator are
 * strictly increasing; if the counter overflows or the clock steps back we
 * borrow the next millisecond rather than repeat. */
#include "mnemo/util.h"

#include <string.h>

void mn_idgen_init(mn_idgen_t *g, uint64_t seed)
{
    pthread_mutex_init(&g->mu, NULL);
    g->last_ms = 0;
    g->seq = 0;
    mn_prng_seed(&g->prng, seed);
}

void mn_idgen_destroy(mn_idgen_t *g)
{
    pthread_mutex_destroy(&g->mu);
}

mn_id_t mn_idgen_next(mn_idgen_t *g, int64_t now_ms)
{
    mn_id_t id;
    pthread_mutex_lock(&g->mu);
    if (now_ms > g->last_ms) {
        g->last_ms = now_ms;
        g->seq = (uint32_t)mn_prng_below(&g->prng, 2048);
    } else if (++g->seq > 0xfff) {
        g->last_ms++;
        g->seq = (uint32_t)mn_prng_below(&g->prng, 2048);
    }
    uint64_t ms = (uint64_t)g->last_ms;
    uint32_t seq = g->seq;
    uint64_t rb = mn_prng_next(&g->prng);
    pthread_mutex_unlock(&g->mu);

    for (int i = 0; i < 6; i++) id.b[i] = (uint8_t)(ms >> (40 - 8 * i));
    id.b[6] = (uint8_t)(0x70 | ((seq >> 8) & 0x0f));
    id.b[7] = (uint8_t)seq;
    for (int i = 0; i < 8; i++) id.b[8 + i] = (uint8_t)(rb >> (56 - 8 * i));
    id.b[8] = (uint8_t)(0x80 | (id.b[8] & 0x3f));
    return id;
}

int64_t mn_id_time_ms(const mn_id_t *id)
{
    uint64_t ms = 0;
    for (int i = 0; i < 6; i++) ms = (ms << 8) | id->b[i];
    return (int64_t)ms;
}

void mn_id_format(const mn_id_t *id, char *out)
{
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
        *p++ = hex[id->b[i] >> 4];
        *p++ = hex[id->b[i] & 15];
    }
    *p = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

mn_err mn_id_parse(const char *s, size_t len, mn_id_t *out)
{
    if (len != MN_ID_TEXT_LEN) return MN_ERR_INVALID;
    size_t j = 0;
    for (size_t i = 0; i < len;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return MN_ERR_INVALID;
            i++;
            continue;
        }
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0) return MN_ERR_INVALID;
        out->b[j++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return j == 16 ? MN_OK : MN_ERR_INVALID;
}

int mn_id_cmp(const mn_id_t *a, const mn_id_t *b)
{
    return memcmp(a->b, b->b, 16);
}

bool mn_id_is_zero(const mn_id_t *id)
{
    static const uint8_t z[16];
    return memcmp(id->b, z, 16) == 0;
}
