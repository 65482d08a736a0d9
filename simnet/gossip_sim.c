/* Gossip harness for simnet: N nodes run the gossip core with every other
 * node as a peer, over the simulator's links and faults; scenarios change
 * records at some nodes (gossip_scenarios.c) and a judge says whether and
 * when every node holds the same state.
 *
 * The judge is one more gossip core that no network reaches: every change
 * made anywhere is also put into it. Because the merge is commutative,
 * associative and idempotent, the judge's state is the one every node must
 * reach once the changes have spread, whatever the order they arrived in;
 * "converged" is every running node's directory root equal to the judge's
 * (the roots cover every space's records, digests and tombstones), and the
 * judge also asks each node for every tombstone made (forgotten must stay
 * forgotten). Records are synthetic: ids, support sets and digests from the
 * space and record numbers, versions stamped with the simulated time. With
 * opts.holders, each space lives on its holders only (per-space peer sets),
 * and the judge compares each node's spaces one by one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gossip_sim_internal.h"

#define SLICE_US 10000
#define HLC_BASE_MS 1700000000000LL /* a wall clock for the stamps */

static void space_name(int s, char *out, size_t cap)
{
    snprintf(out, cap, "space-%d", s);
}

static mn_id_t record_id(int s, uint64_t k)
{
    mn_id_t id;
    mn_put_be64(id.b, 0x0190000000000000ull | ((uint64_t)(uint32_t)s << 32) | k);
    mn_put_be64(id.b + 8, 0x8000000000000000ull | (k * 0x9e3779b97f4a7c15ull >> 2));
    return id;
}

/* The episodes behind record k: three ids just after its own. */
static void support_of(int s, uint64_t k, mn_id_t *sup)
{
    for (int i = 0; i < 3; i++) {
        sup[i] = record_id(s, k);
        sup[i].b[15] = (uint8_t)(sup[i].b[15] + 1 + i);
    }
    for (int i = 1; i < 3; i++) /* keep them sorted after the byte bump */
        for (int j = i; j > 0 && mn_id_cmp(&sup[j - 1], &sup[j]) > 0; j--) {
            mn_id_t t = sup[j];
            sup[j] = sup[j - 1];
            sup[j - 1] = t;
        }
}

/* A live version of record k of space s, stamped hlc; its payload (the
 * memory's bytes) is payload_bytes of a pattern from (k, hlc). */
static void make_version(const mn_simgossip_t *h, int s, uint64_t k, mn_hlc_ts_t hlc, mn_id_t *sup,
                         mn_gossip_record_t *r)
{
    memset(r, 0, sizeof *r);
    r->id = record_id(s, k);
    support_of(s, k, sup);
    r->support = sup;
    r->n_support = 3;
    r->support_n = 3;
    r->epoch = 1;
    r->hlc = hlc;
    r->confidence = 0.5f + (float)(hlc % 50) / 100.0f;
    mn_put_be64(r->digest, hlc);
    mn_put_be64(r->digest + 8, k);
    if (!h->o.payload_bytes) return;
    for (int i = 0; i < h->o.payload_bytes; i++)
        h->payload[i] = (uint8_t)(k * 31 + hlc * 7 + (uint64_t)i);
    r->payload = h->payload;
    r->payload_len = (size_t)h->o.payload_bytes;
    mn_gossip_payload_digest(r->payload, r->payload_len, r->digest);
}

/* ---- placement (opts.holders) ---- */

/* Does node hold space s? Every node does in scope cluster; else the R nodes from
 * (37 s) mod N on (37 is prime to the usual N: spaces spread evenly). */
static bool holds(const mn_simgossip_t *h, int node, int s)
{
    if (!h->o.holders) return true;
    int first = (int)(((int64_t)s * 37) % h->n);
    return (node - first + h->n) % h->n < h->o.holders;
}

/* The first running holder of s (-1: none runs). */
static int holder_of(const mn_simgossip_t *h, int s)
{
    int first = (int)(((int64_t)s * 37) % h->n);
    for (int j = 0; j < (h->o.holders ? h->o.holders : h->n); j++)
        if (h->nodes[(first + j) % h->n].core) return (first + j) % h->n;
    return -1;
}

static bool cb_shares(void *user, const char *peer, const char *space)
{
    const mn__sg_node *nd = user;
    int s = atoi(space + strlen("space-")), p = atoi(peer + 1);
    if (p < 0 || p >= nd->h->n) return false;
    return holds(nd->h, nd->idx, s) && holds(nd->h, p, s);
}

/* Node i's peers: every other node (scope cluster), or those it shares a space with
 * (spaces 0..opts.spaces, the last one the scenarios' new space). */
static void set_peers(mn_simgossip_t *h, mn__sg_node *nd)
{
    if (!h->o.holders) {
        mn_assert(mn_gossip_set_peers(nd->core, h->ids, (size_t)h->n, NULL) == MN_OK);
        return;
    }
    const char **ids = calloc((size_t)h->n, sizeof *ids);
    mn_assert(ids);
    size_t k = 0;
    for (int p = 0; p < h->n; p++) {
        bool share = false;
        for (int s = 0; s <= h->o.spaces && !share && p != nd->idx; s++)
            share = holds(h, nd->idx, s) && holds(h, p, s);
        if (share) ids[k++] = h->ids[p];
    }
    mn_assert(mn_gossip_set_peers(nd->core, ids, k, NULL) == MN_OK);
    free(ids);
}

/* ---- simnet core ops ---- */

static void cb_send(void *user, const char *to, const uint8_t *frame, size_t len)
{
    mn__sg_node *nd = user;
    int k = atoi(to + 1);
    if (to[0] != 'n' || k < 0 || k >= nd->h->n) return;
    mn_swim_addr_t a = mn_simnet_addr(nd->h->net, k);
    mn_simnet_send(nd->h->net, nd->idx, &a, frame, len);
}

/* The starting records of the spaces node holds (node -1: every space, the judge). */
static void preload(mn_simgossip_t *h, mn_gossip_t *g, int node)
{
    char name[32];
    mn_id_t sup[3];
    for (int s = 0; s < h->o.spaces; s++) {
        if (node >= 0 && !holds(h, node, s)) continue;
        space_name(s, name, sizeof name);
        for (int k = 0; k < h->o.records; k++) {
            mn_gossip_record_t r;
            make_version(h, s, (uint64_t)k, mn_hlc_make(HLC_BASE_MS, 0), sup, &r);
            mn_assert(mn_gossip_put(g, name, &r, NULL) == MN_OK);
        }
    }
}

static void *core_create(void *arg, mn_simnet_t *net, int node, int64_t now_us, uint64_t seed)
{
    mn__sg_node *nd = arg;
    mn_simgossip_t *h = nd->h;
    (void)net, (void)node;
    mn_gossip_cb_t cb = {.user = nd, .send = cb_send, .shares = h->o.holders ? cb_shares : NULL};
    if (mn_gossip_new(nd->id, &h->o.gossip, &cb, seed, now_us, &nd->core, NULL) != MN_OK)
        return NULL;
    set_peers(h, nd);
    if (!nd->wiped) preload(h, nd->core, nd->idx);
    return nd;
}

static void core_destroy(void *arg, void *core)
{
    mn__sg_node *nd = arg;
    (void)core;
    mn_gossip_free(nd->core);
    nd->core = NULL;
}

static void core_packet(void *core, int64_t now_us, const mn_swim_addr_t *from, const uint8_t *buf,
                        size_t len)
{
    (void)from;
    mn_gossip_on_message(((mn__sg_node *)core)->core, now_us, buf, len);
}

static void core_tick(void *core, int64_t now_us)
{
    mn_gossip_on_tick(((mn__sg_node *)core)->core, now_us);
}

static int64_t core_deadline(void *core)
{
    return mn_gossip_next_deadline(((mn__sg_node *)core)->core);
}

static const mn_simnet_core_ops_t OPS = {core_create, core_destroy, core_packet, core_tick,
                                         core_deadline};

static void judge_send(void *user, const char *to, const uint8_t *frame, size_t len)
{
    (void)user, (void)to, (void)frame, (void)len; /* the judge is never asked */
}

/* ---- lifecycle ---- */

mn_simgossip_t *mn__simgossip_new(const mn_simgossip_opts_t *o, mn_simgossip_result_t *res)
{
    mn_simgossip_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->o = *o;
    h->res = res;
    h->n = o->nodes;
    h->next_record = (uint64_t)o->records;
    h->nodes = calloc((size_t)h->n, sizeof *h->nodes);
    h->ids = calloc((size_t)h->n, sizeof *h->ids);
    h->payload = malloc((size_t)o->payload_bytes + 1);
    h->net = mn_simnet_new(o->seed, &o->link);
    mn_gossip_cb_t jcb = {.send = judge_send};
    if (!h->nodes || !h->ids || !h->payload || !h->net ||
        mn_gossip_new("judge", &o->gossip, &jcb, 0, 0, &h->judge, NULL) != MN_OK) {
        mn__simgossip_free(h);
        return NULL;
    }
    preload(h, h->judge, -1);
    if (o->trace) mn_simnet_trace_file(h->net, o->trace);
    for (int i = 0; i < h->n; i++) {
        mn__sg_node *nd = &h->nodes[i];
        nd->h = h;
        nd->idx = i;
        snprintf(nd->id, sizeof nd->id, "n%d", i);
        h->ids[i] = nd->id;
        mn_assert(mn_simnet_add_node(h->net, &OPS, nd) == i);
    }
    for (int i = 0; i < h->n; i++)
        mn_simnet_start(h->net, i);
    return h;
}

void mn__simgossip_free(mn_simgossip_t *h)
{
    if (!h) return;
    mn_simnet_free(h->net); /* destroys the running cores */
    mn_gossip_free(h->judge);
    free(h->nodes);
    free(h->ids);
    free(h->tombs);
    free(h->payload);
    free(h);
}

void mn__simgossip_advance(mn_simgossip_t *h, int64_t ms)
{
    mn_simnet_run_until(h->net, mn_simnet_now(h->net) + ms * 1000);
}

/* ---- changes ---- */

static mn_hlc_ts_t stamp(mn_simgossip_t *h)
{
    return mn_hlc_make(HLC_BASE_MS + mn_simnet_now(h->net) / 1000, (uint16_t)++h->hlc_logical);
}

static void note_tomb(mn_simgossip_t *h, int s, const mn_id_t *id)
{
    if (h->n_tombs == h->cap_tombs) {
        size_t nc = h->cap_tombs ? 2 * h->cap_tombs : 16;
        mn__sg_key *nt = realloc(h->tombs, nc * sizeof *nt);
        mn_assert(nt);
        h->tombs = nt;
        h->cap_tombs = nc;
    }
    h->tombs[h->n_tombs++] = (mn__sg_key){s, *id};
}

void mn__simgossip_change(mn_simgossip_t *h, int node, mn__sg_change kind, int s, uint64_t k)
{
    if (!holds(h, node, s)) node = holder_of(h, s); /* scope holders: made where it is held */
    mn_gossip_t *g = node >= 0 ? h->nodes[node].core : NULL;
    if (!g) return;
    if (kind == MN__SG_CREATE) k = h->next_record++;
    mn_id_t sup[3], fgt[1];
    mn_gossip_record_t r;
    make_version(h, s, k, stamp(h), sup, &r);
    if (kind == MN__SG_RETIRE) r.retired = true;
    if (kind == MN__SG_FORGET_EP) { /* the episode sup[2] is gone: re-derived from two */
        fgt[0] = sup[2];
        r.forgotten_eps = fgt;
        r.n_forgotten_eps = 1;
        r.n_support = 2;
        r.support_n = 2;
    }
    if (kind == MN__SG_FORGET) {
        mn_hlc_ts_t t = r.hlc;
        memset(&r, 0, sizeof r); /* no version, no payload */
        r.id = record_id(s, k);
        r.forgotten_hlc = t;
        note_tomb(h, s, &r.id);
    }
    char name[32];
    space_name(s, name, sizeof name);
    mn_simnet_trace_note(h->net, "change n%d kind %d %s/%llu", node, (int)kind, name,
                         (unsigned long long)k);
    mn_assert(mn_gossip_put(g, name, &r, NULL) == MN_OK);
    mn_assert(mn_gossip_put(h->judge, name, &r, NULL) == MN_OK);
    h->res->changes++;
}

/* ---- the judge ---- */

/* Scope holders: does node hold, of each space, the judge's root if it holds the space and
 * nothing otherwise? */
static bool node_matches(const mn_simgossip_t *h, int node)
{
    char name[32];
    for (int s = 0; s <= h->o.spaces; s++) { /* the last: the scenarios' new space */
        uint8_t want[MN_GOSSIP_DIGEST_LEN], got[MN_GOSSIP_DIGEST_LEN];
        uint64_t wn = 0, gn;
        space_name(s, name, sizeof name);
        if (holds(h, node, s)) mn_gossip_root(h->judge, name, want, &wn);
        mn_gossip_root(h->nodes[node].core, name, got, &gn);
        if (gn != wn || (wn && memcmp(got, want, sizeof got) != 0)) return false;
    }
    return true;
}

static int mismatched(const mn_simgossip_t *h)
{
    uint8_t want[MN_GOSSIP_DIGEST_LEN], got[MN_GOSSIP_DIGEST_LEN];
    uint64_t wn, gn;
    mn_gossip_root(h->judge, NULL, want, &wn);
    int bad = 0;
    for (int i = 0; i < h->n; i++) {
        if (!h->nodes[i].core) continue;
        if (h->o.holders) {
            bad += !node_matches(h, i);
            continue;
        }
        mn_gossip_root(h->nodes[i].core, NULL, got, &gn);
        bad += gn != wn || memcmp(got, want, sizeof got) != 0;
    }
    return bad;
}

double mn__simgossip_converge(mn_simgossip_t *h, int64_t ms)
{
    int64_t t0 = mn_simnet_now(h->net), end = t0 + ms * 1000;
    while (mismatched(h)) {
        if (mn_simnet_now(h->net) >= end) return -1;
        mn_simnet_run_until(h->net, mn_simnet_now(h->net) + SLICE_US);
    }
    return (double)(mn_simnet_now(h->net) - t0) / 1e6;
}

void mn__simgossip_sent(const mn_simgossip_t *h, uint64_t *bytes, uint64_t *frames)
{
    *bytes = *frames = 0;
    for (int i = 0; i < h->n; i++) {
        if (!h->nodes[i].core) continue;
        mn_gossip_stats_t st;
        mn_gossip_stats(h->nodes[i].core, &st);
        *bytes += st.bytes_sent;
        *frames += st.frames_sent;
    }
}

static void stats_add(mn_gossip_stats_t *sum, const mn_gossip_stats_t *x)
{
    sum->rounds += x->rounds;
    sum->frames_sent += x->frames_sent;
    sum->bytes_sent += x->bytes_sent;
    sum->frames_received += x->frames_received;
    sum->bytes_received += x->bytes_received;
    sum->frames_rejected += x->frames_rejected;
    sum->entries_pushed += x->entries_pushed;
    sum->entries_pulled += x->entries_pulled;
    sum->entries_changed += x->entries_changed;
    sum->peers_differing += x->peers_differing;
    sum->tombstones_collected += x->tombstones_collected;
}

static bool tombs_held(const mn_simgossip_t *h)
{
    char name[32];
    for (size_t t = 0; t < h->n_tombs; t++) {
        space_name(h->tombs[t].space, name, sizeof name);
        for (int i = 0; i < h->n; i++) {
            mn_gossip_record_t r;
            if (!h->nodes[i].core || !holds(h, i, h->tombs[t].space)) continue;
            if (mn_gossip_get(h->nodes[i].core, name, &h->tombs[t].id, &r) != MN_OK ||
                !r.forgotten_hlc)
                return false;
        }
    }
    return true;
}

void mn__simgossip_judge(mn_simgossip_t *h)
{
    mn_simgossip_result_t *res = h->res;
    res->mismatched = mismatched(h);
    res->converged = res->mismatched == 0;
    res->tombstones_held = tombs_held(h);
    memset(&res->stats, 0, sizeof res->stats);
    for (int i = 0; i < h->n; i++) {
        if (!h->nodes[i].core) continue;
        mn_gossip_stats_t st;
        mn_gossip_stats(h->nodes[i].core, &st);
        stats_add(&res->stats, &st);
        mn_assert_debug(mn_gossip_verify(h->nodes[i].core));
    }
    res->sim_s = (double)mn_simnet_now(h->net) / 1e6;
    res->trace_hash = mn_simnet_trace_hash(h->net);
}
