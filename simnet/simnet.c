/* simnet engine: virtual clock, event heap, links and faults.
 *
 * Design follows Tarantool's fakenet/fakeev (virtual time jumps to the next
 * deadline; the network is a queue with per-link filters) and the
 * FoundationDB/TigerBeetle rule that one seed drives everything: the only
 * randomness is net->prng, consumed in event order, and events at the same
 * instant run in insertion order (a sequence number breaks ties), so a run is
 * a pure function of the seed and of the calls made by the driver.
 *
 * Invariants: the clock never moves back (mn_simnet_run_until is never asked
 * for an earlier time; callers compute their targets from the clock); a
 * node's core exists iff the node is UP or PAUSED; each node has at most one
 * live tick (older tick events are recognised by their generation and
 * skipped); every loop is bounded by the event heap, whose events all lie in
 * the future of the current clock or at it (a core's overdue deadline is
 * scheduled now), and a core that asks for a tick at or before the tick it
 * just had is moved one microsecond ahead, so time always advances. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"
#include "mnemo/simnet.h"

#define SIMNET_PORT 7946
#define SIMNET_HELD_MAX 4096

enum { EV_DELIVER = 1, EV_TICK = 2 };

typedef struct sim_pkt {
    int from;
    mn_swim_addr_t from_addr;
    size_t len;
    uint8_t data[];
} sim_pkt;

typedef struct sim_event {
    int64_t t_us;
    uint64_t seq;
    int kind;
    int node;
    uint64_t gen;
    sim_pkt *pkt;
} sim_event;

typedef struct sim_link_over {
    int to;
    mn_simnet_link_t link;
} sim_link_over;

typedef struct sim_node {
    mn_simnet_core_ops_t ops;
    void *arg;
    void *core;
    mn_simnet_node_state_t state;
    uint64_t gen;       /* tick generation */
    int64_t tick_at_us; /* time of the live tick, INT64_MAX = none */
    sim_pkt **held;
    size_t n_held;
    sim_link_over *links;
    size_t n_links;
    mn_simnet_stats_t stats;
} sim_node;

struct mn_simnet {
    int64_t now_us;
    mn_prng_t prng;
    mn_simnet_link_t link;
    sim_node *nodes;
    int n, cap;
    sim_event *heap;
    size_t n_heap, cap_heap;
    uint64_t seq;
    int *group;
    bool oneway;
    uint64_t *blocks; /* (from << 32) | to */
    size_t n_blocks;
    uint64_t hash;
    FILE *trace;
};

/* ---- trace ---- */

static void hash_bytes(mn_simnet_t *net, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        net->hash ^= b[i];
        net->hash *= 0x100000001b3ull;
    }
}

static void hash_u64(mn_simnet_t *net, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    hash_bytes(net, b, 8);
}

uint64_t mn_simnet_trace_hash(const mn_simnet_t *net)
{
    return net->hash;
}

void mn_simnet_trace_file(mn_simnet_t *net, FILE *f)
{
    net->trace = f;
}

void mn_simnet_trace_note(mn_simnet_t *net, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    hash_u64(net, (uint64_t)net->now_us);
    hash_bytes(net, buf, len);
    if (net->trace) fprintf(net->trace, "%.6f note %s\n", (double)net->now_us / 1e6, buf);
}

/* ---- heap ---- */

static bool ev_less(const sim_event *a, const sim_event *b)
{
    return a->t_us < b->t_us || (a->t_us == b->t_us && a->seq < b->seq);
}

static bool push(mn_simnet_t *net, sim_event ev)
{
    mn_assert(ev.t_us >= net->now_us);
    if (net->n_heap == net->cap_heap) {
        size_t nc = net->cap_heap ? net->cap_heap * 2 : 1024;
        sim_event *nh = realloc(net->heap, nc * sizeof *nh);
        if (!nh) return false;
        net->heap = nh;
        net->cap_heap = nc;
    }
    ev.seq = net->seq++;
    size_t i = net->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_less(&ev, &net->heap[p])) break;
        net->heap[i] = net->heap[p];
        i = p;
    }
    net->heap[i] = ev;
    return true;
}

static sim_event pop(mn_simnet_t *net)
{
    sim_event top = net->heap[0];
    sim_event last = net->heap[--net->n_heap];
    size_t i = 0, n = net->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && ev_less(&net->heap[c + 1], &net->heap[c])) c++;
        if (!ev_less(&net->heap[c], &last)) break;
        net->heap[i] = net->heap[c];
        i = c;
    }
    if (n) net->heap[i] = last;
    return top;
}

/* ---- nodes ---- */

mn_simnet_t *mn_simnet_new(uint64_t seed, const mn_simnet_link_t *link)
{
    mn_simnet_t *net = calloc(1, sizeof *net);
    if (!net) return NULL;
    mn_prng_seed(&net->prng, seed);
    if (link) net->link = *link;
    net->hash = 0xcbf29ce484222325ull;
    hash_u64(net, seed);
    return net;
}

void mn_simnet_free(mn_simnet_t *net)
{
    if (!net) return;
    for (int i = 0; i < net->n; i++) {
        sim_node *nd = &net->nodes[i];
        if (nd->core) nd->ops.destroy(nd->arg, nd->core);
        for (size_t j = 0; j < nd->n_held; j++)
            free(nd->held[j]);
        free(nd->held);
        free(nd->links);
    }
    for (size_t i = 0; i < net->n_heap; i++)
        free(net->heap[i].pkt);
    free(net->heap);
    free(net->nodes);
    free(net->group);
    free(net->blocks);
    free(net);
}

int mn_simnet_add_node(mn_simnet_t *net, const mn_simnet_core_ops_t *ops, void *arg)
{
    if (!ops || net->n >= (1 << 24) - 2) return -1;
    if (net->n == net->cap) {
        int nc = net->cap ? net->cap * 2 : 16;
        sim_node *nn = realloc(net->nodes, (size_t)nc * sizeof *nn);
        if (!nn) return -1;
        net->nodes = nn;
        net->cap = nc;
        if (net->group) {
            int *ng = realloc(net->group, (size_t)nc * sizeof *ng);
            if (!ng) return -1;
            net->group = ng;
        }
    }
    sim_node *nd = &net->nodes[net->n];
    memset(nd, 0, sizeof *nd);
    nd->ops = *ops;
    nd->arg = arg;
    nd->tick_at_us = INT64_MAX;
    if (net->group) net->group[net->n] = 0;
    return net->n++;
}

int mn_simnet_node_count(const mn_simnet_t *net)
{
    return net->n;
}

mn_swim_addr_t mn_simnet_addr(const mn_simnet_t *net, int node)
{
    mn_swim_addr_t a;
    memset(&a, 0, sizeof a);
    a.family = 4;
    a.port = SIMNET_PORT;
    uint32_t v = (uint32_t)node + 1;
    a.ip[0] = 10;
    a.ip[1] = (uint8_t)(v >> 16);
    a.ip[2] = (uint8_t)(v >> 8);
    a.ip[3] = (uint8_t)v;
    (void)net;
    return a;
}

int mn_simnet_node_at(const mn_simnet_t *net, const mn_swim_addr_t *a)
{
    if (a->family != 4 || a->port != SIMNET_PORT || a->ip[0] != 10) return -1;
    int v = (a->ip[1] << 16) | (a->ip[2] << 8) | a->ip[3];
    return v >= 1 && v <= net->n ? v - 1 : -1;
}

mn_simnet_node_state_t mn_simnet_state(const mn_simnet_t *net, int node)
{
    return node >= 0 && node < net->n ? net->nodes[node].state : MN_SIMNET_DOWN;
}

void *mn_simnet_core(const mn_simnet_t *net, int node)
{
    return node >= 0 && node < net->n ? net->nodes[node].core : NULL;
}

mn_prng_t *mn_simnet_prng(mn_simnet_t *net)
{
    return &net->prng;
}

int64_t mn_simnet_now(const mn_simnet_t *net)
{
    return net->now_us;
}

/* Re-arms the node's tick from its core's deadline. after_tick: the core just
 * ran its tick at net->now, so a deadline not in the future moves 1 us on. */
static void resched(mn_simnet_t *net, int node, bool after_tick)
{
    sim_node *nd = &net->nodes[node];
    if (nd->state != MN_SIMNET_UP || !nd->core) return;
    int64_t deadline_us = nd->ops.next_deadline(nd->core);
    if (deadline_us == INT64_MAX) {
        nd->tick_at_us = INT64_MAX;
        nd->gen++;
        return;
    }
    if (deadline_us < net->now_us) deadline_us = net->now_us;
    if (after_tick && deadline_us <= net->now_us) deadline_us = net->now_us + 1;
    mn_assert(after_tick ? deadline_us > net->now_us : deadline_us >= net->now_us);
    if (deadline_us == nd->tick_at_us) return;
    nd->tick_at_us = deadline_us;
    nd->gen++;
    sim_event ev = {.t_us = deadline_us, .kind = EV_TICK, .node = node, .gen = nd->gen};
    push(net, ev);
}

void mn_simnet_wake(mn_simnet_t *net, int node)
{
    if (node < 0 || node >= net->n) return;
    resched(net, node, false);
}

static void deliver(mn_simnet_t *net, int node, sim_pkt *p)
{
    sim_node *nd = &net->nodes[node];
    mn_assert(nd->state == MN_SIMNET_UP && nd->core);
    net->nodes[p->from].stats.delivered++;
    nd->ops.on_packet(nd->core, net->now_us, &p->from_addr, p->data, p->len);
    resched(net, node, false);
}

static void drop_held(sim_node *nd)
{
    for (size_t j = 0; j < nd->n_held; j++)
        free(nd->held[j]);
    nd->n_held = 0;
}

void mn_simnet_start(mn_simnet_t *net, int node)
{
    if (node < 0 || node >= net->n) return;
    sim_node *nd = &net->nodes[node];
    if (nd->state != MN_SIMNET_DOWN) return;
    uint64_t seed = mn_prng_next(&net->prng);
    mn_simnet_trace_note(net, "start %d", node);
    nd->state = MN_SIMNET_UP; /* before create: the core may send at once */
    nd->core = nd->ops.create(nd->arg, net, node, net->now_us, seed);
    if (!nd->core) {
        nd->state = MN_SIMNET_DOWN;
        return;
    }
    nd->tick_at_us = INT64_MAX;
    resched(net, node, false);
}

void mn_simnet_crash(mn_simnet_t *net, int node)
{
    if (node < 0 || node >= net->n) return;
    sim_node *nd = &net->nodes[node];
    if (nd->state == MN_SIMNET_DOWN) return;
    mn_simnet_trace_note(net, "crash %d", node);
    nd->state = MN_SIMNET_DOWN;
    nd->gen++;
    nd->tick_at_us = INT64_MAX;
    drop_held(nd);
    void *core = nd->core;
    nd->core = NULL;
    nd->ops.destroy(nd->arg, core);
}

void mn_simnet_pause(mn_simnet_t *net, int node)
{
    if (node < 0 || node >= net->n || net->nodes[node].state != MN_SIMNET_UP) return;
    mn_simnet_trace_note(net, "pause %d", node);
    net->nodes[node].state = MN_SIMNET_PAUSED;
}

void mn_simnet_resume(mn_simnet_t *net, int node)
{
    if (node < 0 || node >= net->n || net->nodes[node].state != MN_SIMNET_PAUSED) return;
    mn_simnet_trace_note(net, "resume %d", node);
    sim_node *nd = &net->nodes[node];
    nd->state = MN_SIMNET_UP;
    /* a stalled process wakes to a full socket buffer */
    size_t n = nd->n_held;
    sim_pkt **held = nd->held;
    nd->held = NULL;
    nd->n_held = 0;
    for (size_t i = 0; i < n; i++) {
        if (nd->state == MN_SIMNET_UP) deliver(net, node, held[i]);
        free(held[i]);
    }
    free(held);
    nd->tick_at_us = INT64_MAX;
    resched(net, node, false);
}

/* ---- links and faults ---- */

void mn_simnet_set_default_link(mn_simnet_t *net, const mn_simnet_link_t *l)
{
    if (l) net->link = *l;
}

void mn_simnet_set_link(mn_simnet_t *net, int from, int to, const mn_simnet_link_t *l)
{
    if (from < 0 || from >= net->n || to < 0 || to >= net->n || !l) return;
    sim_node *nd = &net->nodes[from];
    for (size_t i = 0; i < nd->n_links; i++)
        if (nd->links[i].to == to) {
            nd->links[i].link = *l;
            return;
        }
    sim_link_over *nl = realloc(nd->links, (nd->n_links + 1) * sizeof *nl);
    if (!nl) return;
    nd->links = nl;
    nd->links[nd->n_links].to = to;
    nd->links[nd->n_links].link = *l;
    nd->n_links++;
}

static const mn_simnet_link_t *link_of(const mn_simnet_t *net, int from, int to)
{
    const sim_node *nd = &net->nodes[from];
    for (size_t i = 0; i < nd->n_links; i++)
        if (nd->links[i].to == to) return &nd->links[i].link;
    return &net->link;
}

void mn_simnet_block(mn_simnet_t *net, int from, int to, bool on)
{
    uint64_t key = ((uint64_t)(uint32_t)from << 32) | (uint32_t)to;
    mn_simnet_trace_note(net, "block %d->%d %d", from, to, on);
    for (size_t i = 0; i < net->n_blocks; i++)
        if (net->blocks[i] == key) {
            if (!on) net->blocks[i] = net->blocks[--net->n_blocks];
            return;
        }
    if (!on) return;
    uint64_t *nb = realloc(net->blocks, (net->n_blocks + 1) * sizeof *nb);
    if (!nb) return;
    net->blocks = nb;
    net->blocks[net->n_blocks++] = key;
}

void mn_simnet_partition(mn_simnet_t *net, const int *group, bool oneway)
{
    if (!net->group) {
        net->group = calloc((size_t)(net->cap ? net->cap : 1), sizeof *net->group);
        if (!net->group) return;
    }
    uint64_t h = 0;
    for (int i = 0; i < net->n; i++) {
        net->group[i] = group[i];
        h = h * 31 + (uint64_t)(uint32_t)group[i];
    }
    net->oneway = oneway;
    mn_simnet_trace_note(net, "partition %s %llx", oneway ? "oneway" : "twoway",
                         (unsigned long long)h);
}

void mn_simnet_heal(mn_simnet_t *net)
{
    mn_simnet_trace_note(net, "heal");
    free(net->group);
    net->group = NULL;
    net->n_blocks = 0;
}

bool mn_simnet_cut(const mn_simnet_t *net, int from, int to)
{
    if (net->group) {
        int a = net->group[from], b = net->group[to];
        if (a != b && (!net->oneway || a < b)) return true;
    }
    uint64_t key = ((uint64_t)(uint32_t)from << 32) | (uint32_t)to;
    for (size_t i = 0; i < net->n_blocks; i++)
        if (net->blocks[i] == key) return true;
    return false;
}

static int64_t delay_of(mn_simnet_t *net, const mn_simnet_link_t *l)
{
    int64_t delay_us = l->latency_us;
    if (l->jitter_us > 0) {
        double u = mn_prng_double(&net->prng);
        delay_us += (int64_t)(-(double)l->jitter_us * log1p(-u));
    }
    if (l->reorder > 0 && mn_prng_double(&net->prng) < l->reorder && l->reorder_us > 0)
        delay_us += (int64_t)mn_prng_below(&net->prng, (uint64_t)l->reorder_us + 1);
    return delay_us < 0 ? 0 : delay_us;
}

static void enqueue(mn_simnet_t *net, int from, int to, const uint8_t *buf, size_t len,
                    int64_t delay_us)
{
    sim_pkt *p = malloc(sizeof *p + len);
    if (!p) return;
    p->from = from;
    p->from_addr = mn_simnet_addr(net, from);
    p->len = len;
    memcpy(p->data, buf, len);
    sim_event ev = {.t_us = net->now_us + delay_us, .kind = EV_DELIVER, .node = to, .pkt = p};
    if (!push(net, ev)) free(p);
}

void mn_simnet_send(mn_simnet_t *net, int from, const mn_swim_addr_t *to, const uint8_t *buf,
                    size_t len)
{
    if (from < 0 || from >= net->n || net->nodes[from].state == MN_SIMNET_DOWN) return;
    mn_simnet_stats_t *st = &net->nodes[from].stats;
    st->sent++;
    st->sent_bytes += len;
    int dst = mn_simnet_node_at(net, to);
    if (dst < 0) {
        st->to_down++;
        return;
    }
    if (mn_simnet_cut(net, from, dst)) {
        st->blocked++;
        return;
    }
    const mn_simnet_link_t *l = link_of(net, from, dst);
    if (l->loss > 0 && mn_prng_double(&net->prng) < l->loss) {
        st->lost++;
        return;
    }
    enqueue(net, from, dst, buf, len, delay_of(net, l));
    if (l->dup > 0 && mn_prng_double(&net->prng) < l->dup) {
        st->duplicated++;
        enqueue(net, from, dst, buf, len, delay_of(net, l));
    }
}

/* ---- the loop ---- */

static void trace_event(mn_simnet_t *net, const sim_event *ev)
{
    hash_u64(net, (uint64_t)ev->t_us);
    hash_u64(net, ((uint64_t)ev->kind << 32) | (uint32_t)ev->node);
    if (ev->pkt) {
        hash_u64(net, ((uint64_t)(uint32_t)ev->pkt->from << 32) | ev->pkt->len);
        hash_u64(net, mn_crc32c(0, ev->pkt->data, ev->pkt->len));
    }
    if (net->trace) {
        if (ev->kind == EV_DELIVER)
            fprintf(net->trace, "%.6f deliver %d->%d %zu\n", (double)ev->t_us / 1e6, ev->pkt->from,
                    ev->node, ev->pkt->len);
        else
            fprintf(net->trace, "%.6f tick %d\n", (double)ev->t_us / 1e6, ev->node);
    }
}

void mn_simnet_run_until(mn_simnet_t *net, int64_t t_us)
{
    while (net->n_heap && net->heap[0].t_us <= t_us) {
        sim_event ev = pop(net);
        mn_assert(ev.t_us >= net->now_us);
        net->now_us = ev.t_us;
        sim_node *nd = &net->nodes[ev.node];
        if (ev.kind == EV_TICK) {
            if (ev.gen != nd->gen || nd->state != MN_SIMNET_UP) continue; /* stale or stalled */
            mn_assert(nd->core && ev.t_us == nd->tick_at_us);
            trace_event(net, &ev);
            nd->tick_at_us = INT64_MAX;
            nd->ops.on_tick(nd->core, net->now_us);
            resched(net, ev.node, true);
            continue;
        }
        trace_event(net, &ev);
        if (nd->state == MN_SIMNET_DOWN) {
            net->nodes[ev.pkt->from].stats.to_down++;
            free(ev.pkt);
        } else if (nd->state == MN_SIMNET_PAUSED) {
            sim_pkt **nh = nd->n_held < SIMNET_HELD_MAX
                               ? realloc(nd->held, (nd->n_held + 1) * sizeof *nh)
                               : NULL;
            if (nh) {
                nd->held = nh;
                nd->held[nd->n_held++] = ev.pkt;
            } else {
                net->nodes[ev.pkt->from].stats.held_overflow++;
                free(ev.pkt);
            }
        } else {
            deliver(net, ev.node, ev.pkt);
            free(ev.pkt);
        }
    }
    mn_assert(t_us >= net->now_us);
    net->now_us = t_us;
}

void mn_simnet_stats(const mn_simnet_t *net, int node, mn_simnet_stats_t *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < net->n; i++) {
        if (node >= 0 && i != node) continue;
        const mn_simnet_stats_t *s = &net->nodes[i].stats;
        out->sent += s->sent;
        out->sent_bytes += s->sent_bytes;
        out->delivered += s->delivered;
        out->lost += s->lost;
        out->blocked += s->blocked;
        out->to_down += s->to_down;
        out->duplicated += s->duplicated;
        out->held_overflow += s->held_overflow;
    }
}
