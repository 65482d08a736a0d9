/* Hybrid logical clock (Kulkarni, Demirbas et al., "Logical Physical Clocks",
 * 2014): 48 bits of wall-clock ms and a 16-bit logical counter. Timestamps a
 * node issues are strictly increasing and never behind any timestamp it has
 * received, so ordering by HLC respects causality while staying close to real time. */
#include "mnemo/util.h"

void mn_hlc_init(mn_hlc_t *h)
{
    pthread_mutex_init(&h->mu, NULL);
    h->last = 0;
}

void mn_hlc_destroy(mn_hlc_t *h)
{
    pthread_mutex_destroy(&h->mu);
}

/* Next timestamp after max(last, other) given physical time now_ms. */
static mn_hlc_ts_t advance(mn_hlc_ts_t last, int64_t now_ms)
{
    if (now_ms > mn_hlc_ms(last)) return mn_hlc_make(now_ms, 0);
    /* Logical counter overflow spills into the ms field: still monotonic. */
    return last + 1;
}

mn_hlc_ts_t mn_hlc_now(mn_hlc_t *h, int64_t now_ms)
{
    pthread_mutex_lock(&h->mu);
    h->last = advance(h->last, now_ms);
    mn_hlc_ts_t t = h->last;
    pthread_mutex_unlock(&h->mu);
    return t;
}

mn_hlc_ts_t mn_hlc_update(mn_hlc_t *h, mn_hlc_ts_t remote, int64_t now_ms)
{
    pthread_mutex_lock(&h->mu);
    mn_hlc_ts_t base = remote > h->last ? remote : h->last;
    h->last = advance(base, now_ms);
    mn_hlc_ts_t t = h->last;
    pthread_mutex_unlock(&h->mu);
    return t;
}
