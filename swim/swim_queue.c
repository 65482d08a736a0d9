/* The broadcast queue: membership updates waiting to be piggybacked.
 *
 * Follows memberlist's TransmitLimitedQueue: a newer update about a member
 * replaces any queued one about the same member; packets take the updates
 * sent the fewest times first (newest first among equals); each update is
 * sent retransmit_mult * ceil(log10(N + 1)) times, then dropped (SWIM §4.4:
 * infection-style dissemination needs O(log N) rounds). The queue is bounded;
 * when full, the most-sent update is dropped. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "swim_internal.h"

void mn__swim_entry_from_member(const swim_member *m, mn_wire_swim_entry_t *e)
{
    memset(e, 0, sizeof *e);
    e->id = m->id;
    e->id_len = m->id_len;
    memcpy(&e->addr, &m->addr, sizeof e->addr);
    e->incarnation = m->inc;
    e->state = m->state;
    e->meta = m->meta_len ? m->meta : NULL;
    e->meta_len = m->meta_len;
}

static int retransmit_limit(const mn_swim_t *s)
{
    double n = (double)mn__swim_live_count(s);
    int lim = s->cfg.retransmit_mult * (int)ceil(log10(n + 1.0));
    return lim < 1 ? 1 : lim;
}

static void drop_at(mn_swim_t *s, size_t i)
{
    memmove(&s->queue[i], &s->queue[i + 1], (s->n_queue - i - 1) * sizeof s->queue[0]);
    s->n_queue--;
}

void mn__swim_queue_member(mn_swim_t *s, const swim_member *m, const char *from, size_t from_len)
{
    for (size_t i = 0; i < s->n_queue; i++)
        if (s->queue[i].id_len == m->id_len && memcmp(s->queue[i].id, m->id, m->id_len) == 0) {
            drop_at(s, i);
            break;
        }
    if (s->n_queue == SWIM_QUEUE_MAX) {
        size_t worst = 0;
        for (size_t i = 1; i < s->n_queue; i++)
            if (s->queue[i].transmits > s->queue[worst].transmits ||
                (s->queue[i].transmits == s->queue[worst].transmits &&
                 s->queue[i].order < s->queue[worst].order))
                worst = i;
        drop_at(s, worst);
    }
    mn_assert(s->n_queue < SWIM_QUEUE_MAX);
    swim_bcast *b = &s->queue[s->n_queue++];
    memset(b, 0, sizeof *b);
    memcpy(b->id, m->id, m->id_len);
    b->id_len = m->id_len;
    if (from && from_len && from_len <= MN_SWIM_ID_MAX) {
        memcpy(b->from, from, from_len);
        b->from_len = (uint8_t)from_len;
    }
    b->addr = m->addr;
    memcpy(b->meta, m->meta, m->meta_len);
    b->meta_len = m->meta_len;
    b->inc = m->inc;
    b->state = m->state;
    b->order = ++s->queue_order;
}

static int cmp_bcast(const void *pa, const void *pb)
{
    const swim_bcast *a = pa, *b = pb;
    if (a->transmits != b->transmits) return a->transmits < b->transmits ? -1 : 1;
    if (a->order != b->order) return a->order > b->order ? -1 : 1;
    return 0;
}

size_t mn__swim_queue_peek(mn_swim_t *s, mn_wire_swim_entry_t *out, size_t cap)
{
    if (s->n_queue > 1) qsort(s->queue, s->n_queue, sizeof s->queue[0], cmp_bcast);
    size_t n = s->n_queue < cap ? s->n_queue : cap;
    for (size_t i = 0; i < n; i++) {
        const swim_bcast *b = &s->queue[i];
        mn_wire_swim_entry_t *e = &out[i];
        memset(e, 0, sizeof *e);
        e->id = b->id;
        e->id_len = b->id_len;
        e->from = b->from_len ? b->from : NULL;
        e->from_len = b->from_len;
        memcpy(&e->addr, &b->addr, sizeof e->addr);
        e->incarnation = b->inc;
        e->state = b->state;
        e->meta = b->meta_len ? b->meta : NULL;
        e->meta_len = b->meta_len;
    }
    return n;
}

void mn__swim_queue_sent(mn_swim_t *s, size_t n)
{
    if (n > s->n_queue) n = s->n_queue;
    int limit = retransmit_limit(s);
    for (size_t i = n; i-- > 0;)
        if (++s->queue[i].transmits >= limit) drop_at(s, i);
}

bool mn__swim_queue_has(const mn_swim_t *s, const char *id, size_t len, uint8_t state)
{
    for (size_t i = 0; i < s->n_queue; i++)
        if (s->queue[i].id_len == len && memcmp(s->queue[i].id, id, len) == 0 &&
            s->queue[i].state == state)
            return true;
    return false;
}

bool mn__swim_queue_fresh(const mn_swim_t *s, int below)
{
    for (size_t i = 0; i < s->n_queue; i++)
        if (s->queue[i].transmits < below) return true;
    return false;
}
