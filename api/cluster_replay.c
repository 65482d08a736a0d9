/* The internal hops a node has admitted lately, so that a captured hop cannot be replayed
 * within the clock window that its signature's time allows (cluster_client.h).
 *
 * An open-addressing table of (first 64 bits of the signature, time seen): a signature seen
 * within the window is a replay. Slots whose time is past the window are free again. The
 * table is bounded (CL_REPLAY_SLOTS): when every slot a signature may take (its probe run)
 * is fresh, the oldest of them is given up, so under more than ~CL_REPLAY_SLOTS hops per
 * window a replay of a forgotten hop can pass; the clock window still bounds it. Leaf file. */
#include "cluster_replay.h"

#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"

#define PROBES 16

typedef struct slot {
    uint64_t sig;
    int64_t seen_ms; /* 0 = empty */
} slot;

struct cl_replay {
    slot *slots;
    int64_t window_ms;
};

cl_replay *cl_replay_new(int64_t window_ms)
{
    cl_replay *r = calloc(1, sizeof *r);
    if (r && !(r->slots = calloc(CL_REPLAY_SLOTS, sizeof *r->slots))) {
        free(r);
        return NULL;
    }
    if (r) r->window_ms = window_ms;
    return r;
}

void cl_replay_free(cl_replay *r)
{
    if (r) free(r->slots);
    free(r);
}

static uint64_t sig_bits(const char *hex)
{
    uint64_t v = 0;
    for (int i = 0; i < 16 && hex[i]; i++) {
        char c = hex[i];
        v = v << 4 | (uint64_t)(c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0');
    }
    return v;
}

bool cl_replay_seen(cl_replay *r, const char *sig_hex, int64_t now_ms)
{
    /* a power of two: the probe start is a mask of the bits */
    mn_assert((CL_REPLAY_SLOTS & (CL_REPLAY_SLOTS - 1)) == 0);
    uint64_t s = sig_bits(sig_hex);
    slot *take = NULL; /* the first free slot of the run, else its oldest */
    bool take_free = false;
    for (int i = 0; i < PROBES; i++) {
        slot *sl = &r->slots[(s + (uint64_t)i) & (CL_REPLAY_SLOTS - 1)];
        bool fresh = sl->seen_ms && sl->seen_ms >= now_ms - r->window_ms;
        if (fresh && sl->sig == s) return true;
        if (!fresh && !take_free) {
            take = sl;
            take_free = true;
        } else if (fresh && !take_free && (!take || sl->seen_ms < take->seen_ms)) {
            take = sl;
        }
    }
    take->sig = s;
    take->seen_ms = now_ms ? now_ms : 1;
    return false;
}
