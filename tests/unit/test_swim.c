/* swim core: config and addresses, the update precedence rules, Lifeguard's
 * suspicion timer formula, rechecks of expired suspicions, refutation, the
 * buddy system, the health multiplier (and how it stretches probing), the
 * shuffled round-robin probe order, push-pull timing, retransmits ~ log N,
 * authentication and verification, packet size, join and leave.
 *
 * Two harnesses: a tiny "world" that passes datagrams between real cores
 * with zero latency on a manual clock, and a "puppet" that feeds one core
 * hand-made packets (built with the wire codec, unauthenticated framing) and
 * answers its pings on behalf of imaginary members. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/swim.h"
#include "mnemo/wire_swim.h"

#define MS 1000LL
#define SEC 1000000LL

static mn_swim_addr_t addr_of(int i)
{
    mn_swim_addr_t a;
    memset(&a, 0, sizeof a);
    a.family = 4;
    a.ip[0] = 127;
    a.ip[3] = 1;
    a.port = (uint16_t)(9000 + i);
    return a;
}

static int index_of(const mn_swim_addr_t *a)
{
    return a->family == 4 && a->ip[0] == 127 ? a->port - 9000 : -1;
}

/* ---- world: real cores, zero-latency delivery ---- */

#define WN 8
#define WQ 8192

typedef struct wpkt {
    int from, to;
    size_t len;
    uint8_t data[MN_SWIM_MAX_PACKET];
} wpkt;

typedef struct wevent {
    int obs;
    char id[MN_SWIM_ID_MAX + 1];
    mn_swim_state_t state;
    int64_t at;
} wevent;

typedef struct world world;
typedef struct wnode {
    world *w;
    int idx;
    mn_swim_t *s;
    bool down;
    uint64_t sent; /* datagrams handed to w_send */
} wnode;

struct world {
    wnode n[WN];
    int count;
    int64_t now;
    wpkt *q;
    size_t nq;
    wevent ev[4096];
    size_t nev;
    size_t max_len;
};

static void w_send(void *user, const mn_swim_addr_t *to, const uint8_t *buf, size_t len)
{
    wnode *n = user;
    world *w = n->w;
    n->sent++;
    if (len > w->max_len) w->max_len = len;
    if (w->nq == WQ) return;
    wpkt *p = &w->q[w->nq++];
    p->from = n->idx;
    p->to = index_of(to);
    p->len = len;
    memcpy(p->data, buf, len);
}

static void w_event(void *user, const mn_swim_event_t *ev)
{
    wnode *n = user;
    world *w = n->w;
    if (w->nev == sizeof w->ev / sizeof w->ev[0]) return;
    wevent *e = &w->ev[w->nev++];
    e->obs = n->idx;
    snprintf(e->id, sizeof e->id, "%s", ev->id);
    e->state = ev->state;
    e->at = ev->now_us;
}

static mn_swim_config_t fast_config(void)
{
    mn_swim_config_t c;
    assert_int_equal(mn_swim_config_profile("fast", &c), MN_OK);
    return c;
}

static void w_start(world *w, int i, const mn_swim_config_t *c, const char *key)
{
    wnode *n = &w->n[i];
    n->w = w;
    n->idx = i;
    n->down = false;
    char id[16];
    snprintf(id, sizeof id, "node%d", i);
    mn_swim_opts_t o = {.node_id = id,
                        .addr = addr_of(i),
                        .key = (const uint8_t *)key,
                        .key_len = key ? strlen(key) : 0,
                        .incarnation = (uint64_t)(w->now / SEC),
                        .seed = 100 + (uint64_t)i,
                        .config = *c,
                        .cb = {.user = n, .send = w_send, .event = w_event}};
    mn_error err;
    assert_int_equal(mn_swim_new(&o, w->now, &n->s, &err), MN_OK);
    if (i >= w->count) w->count = i + 1;
}

/* Delivers queued datagrams (FIFO, zero latency) and ticks due cores until t. */
static void w_run(world *w, int64_t until)
{
    for (int guard = 0; guard < 2000000; guard++) {
        if (w->nq) {
            wpkt *batch = malloc(w->nq * sizeof *batch);
            assert_non_null(batch);
            size_t nb = w->nq;
            memcpy(batch, w->q, nb * sizeof *batch);
            w->nq = 0;
            for (size_t i = 0; i < nb; i++) {
                wpkt *p = &batch[i];
                if (p->to < 0 || p->to >= w->count || w->n[p->to].down || !w->n[p->to].s) continue;
                mn_swim_addr_t from = addr_of(p->from);
                mn_swim_on_packet(w->n[p->to].s, w->now, &from, p->data, p->len);
            }
            free(batch);
            continue;
        }
        int64_t next = INT64_MAX;
        for (int i = 0; i < w->count; i++)
            if (!w->n[i].down && w->n[i].s) {
                int64_t d = mn_swim_next_deadline(w->n[i].s);
                if (d < next) next = d;
            }
        if (next > until) break;
        if (next > w->now) w->now = next;
        for (int i = 0; i < w->count; i++)
            if (!w->n[i].down && w->n[i].s && mn_swim_next_deadline(w->n[i].s) <= w->now)
                mn_swim_on_tick(w->n[i].s, w->now);
        if (next <= w->now && w->nq == 0) w->now++; /* never spin at one instant */
    }
    if (w->now < until) w->now = until;
}

static mn_swim_state_t w_state(world *w, int obs, int tgt)
{
    char id[16];
    snprintf(id, sizeof id, "node%d", tgt);
    mn_swim_member_info_t mi;
    if (!mn_swim_member_find(w->n[obs].s, id, &mi)) return (mn_swim_state_t)-1;
    return mi.state;
}

static void w_join(world *w, int i, int seed)
{
    mn_swim_addr_t a = addr_of(seed);
    assert_int_equal(mn_swim_join(w->n[i].s, w->now, &a, 1), MN_OK);
}

static world *w_new(void)
{
    world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->q = calloc(WQ, sizeof *w->q);
    assert_non_null(w->q);
    return w;
}

static void w_destroy(world *w)
{
    for (int i = 0; i < w->count; i++)
        mn_swim_free(w->n[i].s);
    free(w->q);
    free(w);
}

/* n cores with config c (and HMAC key, or NULL) that join through node 0,
 * run until `until`. */
static world *w_cluster(int n, const mn_swim_config_t *c, const char *key, int64_t until)
{
    world *w = w_new();
    for (int i = 0; i < n; i++)
        w_start(w, i, c, key);
    for (int i = 1; i < n; i++)
        w_join(w, i, 0);
    w_run(w, until);
    return w;
}

/* ---- puppet: one core fed hand-made packets ---- */

/* One datagram the puppet's core sent (with log on). */
typedef struct sent_rec {
    int64_t at;
    int to;
    uint8_t kind, flags;
    uint32_t seq;
    char target[MN_SWIM_ID_MAX + 1];
    int carries_n1; /* piggybacked updates about member "N1" */
} sent_rec;

typedef struct puppet {
    mn_swim_t *s;
    int64_t now;
    sent_rec *log; /* every datagram sent, decoded, when not NULL */
    size_t nlog, cap_log;
    mn_wire_swim_entry_t log_storage[MN_WIRE_SWIM_MAX_ENTRIES];
    _Alignas(8) uint8_t log_body[MN_SWIM_MAX_PACKET];
    bool auto_ack;     /* answer the core's pings on behalf of their target */
    bool ack_except_x; /* ... except pings to "X" */
    wpkt out[512];
    size_t nout;
    mn_wire_swim_enc_t *enc;
    mn_wire_swim_entry_t storage[MN_WIRE_SWIM_MAX_ENTRIES];
    _Alignas(8) uint8_t body[MN_SWIM_MAX_PACKET];
} puppet;

static void p_log(puppet *p, const mn_swim_addr_t *to, const uint8_t *buf, size_t len)
{
    mn_wire_swim_msg_t m;
    if (p->nlog == p->cap_log || len < 8) return;
    memcpy(p->log_body, buf + 8, len - 8);
    if (mn_wire_swim_decode(p->log_body, len - 8, &m, p->log_storage, MN_WIRE_SWIM_MAX_ENTRIES) !=
        MN_OK)
        return;
    sent_rec *r = &p->log[p->nlog++];
    memset(r, 0, sizeof *r);
    r->at = p->now;
    r->to = index_of(to);
    r->kind = m.kind;
    r->flags = m.flags;
    r->seq = m.seq;
    if (m.target_len) memcpy(r->target, m.target, m.target_len);
    for (size_t i = 0; i < m.n_updates; i++)
        r->carries_n1 += m.updates[i].id_len == 2 && memcmp(m.updates[i].id, "N1", 2) == 0;
}

static void p_send(void *user, const mn_swim_addr_t *to, const uint8_t *buf, size_t len)
{
    puppet *p = user;
    if (p->log) p_log(p, to, buf, len);
    if (p->nout == sizeof p->out / sizeof p->out[0]) return;
    wpkt *w = &p->out[p->nout++];
    w->to = index_of(to);
    w->len = len;
    memcpy(w->data, buf, len);
}

/* Decodes an unauthenticated datagram the core sent. */
static bool p_decode(puppet *p, const wpkt *w, mn_wire_swim_msg_t *m)
{
    if (w->len < 8) return false;
    memcpy(p->body, w->data + 8, w->len - 8);
    return mn_wire_swim_decode(p->body, w->len - 8, m, p->storage, MN_WIRE_SWIM_MAX_ENTRIES) ==
           MN_OK;
}

static void p_feed_msg(puppet *p, int from, mn_wire_swim_msg_t *m);

static void p_pump(puppet *p)
{
    for (int guard = 0; guard < 100 && p->auto_ack && p->nout; guard++) {
        size_t n = p->nout;
        wpkt *copy = malloc(n * sizeof *copy);
        assert_non_null(copy);
        memcpy(copy, p->out, n * sizeof *copy);
        p->nout = 0;
        for (size_t i = 0; i < n; i++) {
            mn_wire_swim_msg_t m;
            if (!p_decode(p, &copy[i], &m) || m.kind != MN_WIRE_SWIM_PING) continue;
            char target[MN_SWIM_ID_MAX + 1] = {0};
            memcpy(target, m.target, m.target_len);
            if (p->ack_except_x && strcmp(target, "X") == 0) continue;
            mn_wire_swim_msg_t ack = {
                .kind = MN_WIRE_SWIM_ACK, .seq = m.seq, .src = target, .src_len = strlen(target)};
            p_feed_msg(p, copy[i].to, &ack);
        }
        free(copy);
    }
}

static void p_feed_msg(puppet *p, int from, mn_wire_swim_msg_t *m)
{
    size_t len = 0;
    const uint8_t *out = NULL;
    assert_int_equal(mn_wire_swim_encode(p->enc, m, 1360, NULL, NULL, &out, &len), MN_OK);
    uint8_t pkt[MN_SWIM_MAX_PACKET];
    pkt[0] = 'M';
    pkt[1] = 'S';
    pkt[2] = 1;
    memset(pkt + 3, 0, 5);
    memcpy(pkt + 8, out, len);
    mn_swim_addr_t a = addr_of(from);
    mn_swim_on_packet(p->s, p->now, &a, pkt, len + 8);
}

static mn_wire_swim_entry_t ent(const char *id, int addr_idx, uint64_t inc, uint8_t st,
                                const char *from)
{
    mn_wire_swim_entry_t e;
    memset(&e, 0, sizeof e);
    e.id = id;
    e.id_len = strlen(id);
    mn_swim_addr_t a = addr_of(addr_idx);
    e.addr.family = a.family;
    e.addr.port = a.port;
    memcpy(e.addr.ip, a.ip, 16);
    e.incarnation = inc;
    e.state = st;
    e.from = from;
    e.from_len = from ? strlen(from) : 0;
    return e;
}

/* A gossip packet from member `src` carrying one update. */
static void p_gossip(puppet *p, const char *src, int src_idx, mn_wire_swim_entry_t e)
{
    mn_wire_swim_msg_t m = {.kind = MN_WIRE_SWIM_GOSSIP,
                            .src = src,
                            .src_len = strlen(src),
                            .updates = &e,
                            .n_updates = 1};
    p_feed_msg(p, src_idx, &m);
    p_pump(p);
}

static void p_tick_until(puppet *p, int64_t until)
{
    for (int guard = 0; guard < 1000000; guard++) {
        int64_t d = mn_swim_next_deadline(p->s);
        if (d > until) break;
        if (d > p->now) p->now = d;
        mn_swim_on_tick(p->s, p->now);
        p_pump(p);
        if (mn_swim_next_deadline(p->s) <= p->now) p->now++;
    }
    if (p->now < until) p->now = until;
}

static wevent pev[1024];
static size_t npev;

static void p_event(void *user, const mn_swim_event_t *ev)
{
    (void)user;
    if (npev == sizeof pev / sizeof pev[0]) return;
    snprintf(pev[npev].id, sizeof pev[npev].id, "%s", ev->id);
    pev[npev].state = ev->state;
    pev[npev].at = ev->now_us;
    npev++;
}

static int64_t p_event_at(const char *id, mn_swim_state_t st)
{
    for (size_t i = 0; i < npev; i++)
        if (strcmp(pev[i].id, id) == 0 && pev[i].state == st) return pev[i].at;
    return -1;
}

static puppet *p_new(const mn_swim_config_t *c, uint64_t inc)
{
    puppet *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->enc = mn_wire_swim_enc_new();
    npev = 0;
    mn_swim_opts_t o = {.node_id = "A",
                        .addr = addr_of(0),
                        .incarnation = inc,
                        .seed = 5,
                        .config = *c,
                        .cb = {.user = p, .send = p_send, .event = p_event}};
    mn_error err;
    assert_int_equal(mn_swim_new(&o, 0, &p->s, &err), MN_OK);
    return p;
}

/* From now on, decode and keep every datagram the core sends. */
static void p_log_on(puppet *p)
{
    p->cap_log = 8192;
    p->log = calloc(p->cap_log, sizeof *p->log);
    assert_non_null(p->log);
    p->nlog = 0;
}

static void p_free(puppet *p)
{
    free(p->log);
    mn_swim_free(p->s);
    mn_wire_swim_enc_free(p->enc);
    free(p);
}

/* Teaches the core members X (addr 1) and B1..Bn (addr 2..) alive at incarnation 1. */
static void p_members(puppet *p, int nb)
{
    static char names[32][16];
    mn_wire_swim_entry_t es[33];
    assert_true(nb <= 31); /* one sync datagram */
    es[0] = ent("X", 1, 1, MN_SWIM_ALIVE, NULL);
    for (int i = 0; i < nb; i++) {
        snprintf(names[i], sizeof names[i], "B%d", i + 1);
        es[i + 1] = ent(names[i], 2 + i, 1, MN_SWIM_ALIVE, NULL);
    }
    mn_wire_swim_msg_t m = {.kind = MN_WIRE_SWIM_SYNC,
                            .src = "B1",
                            .src_len = 2,
                            .state = es,
                            .n_state = (size_t)nb + 1};
    p_feed_msg(p, 2, &m);
    p->nout = 0;
}

/* Ticks p in 10 ms steps until a probe of its core has failed (at most 10 s);
 * returns the core's stats then. */
static mn_swim_stats_t p_until_probe_failed(puppet *p)
{
    mn_swim_stats_t st;
    for (int guard = 0; guard < 1000; guard++) {
        mn_swim_stats_get(p->s, &st);
        if (st.probe_failures) break;
        p_tick_until(p, p->now + 10 * MS);
    }
    return st;
}

/* ---- tests ---- */

static void test_swim_profiles_match_memberlist_lan_and_check_ranges(void **state)
{
    (void)state;
    mn_swim_config_t c;
    assert_int_equal(mn_swim_config_profile("lan", &c), MN_OK);
    assert_int_equal(c.probe_interval_ms, 1000);
    assert_int_equal(c.probe_timeout_ms, 500);
    assert_int_equal(c.indirect_checks, 3);
    assert_int_equal(c.suspicion_mult, 4);
    assert_int_equal(c.suspicion_max_mult, 6);
    assert_int_equal(c.awareness_max, 8);
    assert_int_equal(c.gossip_interval_ms, 200);
    assert_int_equal(c.gossip_nodes, 3);
    assert_int_equal(c.gossip_transmits, 0);
    assert_int_equal(c.retransmit_mult, 4);
    assert_int_equal(c.push_pull_interval_ms, 30000);
    assert_int_equal(c.max_packet, 1400);
    assert_true(c.lifeguard);
    mn_error err;
    assert_int_equal(mn_swim_config_check(&c, &err), MN_OK);
    assert_int_equal(mn_swim_config_profile("fast", &c), MN_OK);
    assert_int_equal(c.probe_interval_ms, 160);
    assert_int_equal(c.probe_timeout_ms, 60);
    assert_int_equal(c.gossip_transmits, 3);
    assert_int_equal(c.push_pull_interval_ms, 30000);
    assert_int_equal(mn_swim_config_check(&c, &err), MN_OK);
    assert_int_equal(mn_swim_config_profile("wan", &c), MN_ERR_INVALID);
    c.probe_timeout_ms = c.probe_interval_ms + 1;
    assert_int_equal(mn_swim_config_check(&c, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "probe_timeout_ms"));
    mn_swim_config_profile("fast", &c);
    c.max_packet = 1500;
    assert_int_equal(mn_swim_config_check(&c, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "max_packet"));
}

static void test_swim_addr_parses_and_formats(void **state)
{
    (void)state;
    mn_swim_addr_t a, b;
    char buf[MN_SWIM_ADDR_TEXT];
    assert_int_equal(mn_swim_addr_parse("10.1.2.3:7946", &a), MN_OK);
    assert_int_equal(a.family, 4);
    assert_int_equal(a.port, 7946);
    mn_swim_addr_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "10.1.2.3:7946");
    assert_int_equal(mn_swim_addr_parse("[::1]:80", &b), MN_OK);
    assert_int_equal(b.family, 6);
    mn_swim_addr_format(&b, buf, sizeof buf);
    assert_string_equal(buf, "[::1]:80");
    assert_false(mn_swim_addr_equal(&a, &b));
    assert_int_equal(mn_swim_addr_parse("10.1.2.3", &a), MN_ERR_INVALID);
    assert_int_equal(mn_swim_addr_parse("10.1.2.3:0", &a), MN_ERR_INVALID);
    assert_int_equal(mn_swim_addr_parse("10.1.2.3:70000", &a), MN_ERR_INVALID);
    assert_int_equal(mn_swim_addr_parse("host:80", &a), MN_ERR_INVALID);
    assert_int_equal(mn_swim_addr_parse("[::1:80", &a), MN_ERR_INVALID);
}

static void nop_send(void *u, const mn_swim_addr_t *to, const uint8_t *b, size_t l) {}

static void test_swim_new_rejects_bad_options(void **state)
{
    (void)state;
    mn_swim_opts_t o = {
        .node_id = "ok", .addr = addr_of(1), .config = fast_config(), .cb = {.send = nop_send}};
    mn_swim_t *s = NULL;
    mn_error err;
    o.node_id = "";
    assert_int_equal(mn_swim_new(&o, 0, &s, &err), MN_ERR_INVALID);
    o.node_id = "bad\nid";
    assert_int_equal(mn_swim_new(&o, 0, &s, &err), MN_ERR_INVALID);
    o.node_id = "ok";
    o.addr.family = 0;
    assert_int_equal(mn_swim_new(&o, 0, &s, &err), MN_ERR_INVALID);
    o.addr = addr_of(1);
    o.cb.send = NULL;
    assert_int_equal(mn_swim_new(&o, 0, &s, &err), MN_ERR_INVALID);
    o.cb.send = nop_send;
    o.config.indirect_checks = 99;
    assert_int_equal(mn_swim_new(&o, 0, &s, &err), MN_ERR_INVALID);
    assert_null(s);
    o.config = fast_config();
    assert_int_equal(mn_swim_new(&o, 0, &s, &err), MN_OK);
    assert_string_equal(mn_swim_self_id(s), "ok");
    assert_int_equal(mn_swim_member_count(s), 1);
    mn_swim_free(s);
}

static void test_swim_nodes_join_through_a_seed_and_see_each_other_alive(void **state)
{
    (void)state;
    mn_swim_config_t c = fast_config();
    world *w = w_cluster(4, &c, "k", 2 * SEC);
    for (int a = 0; a < 4; a++) {
        assert_int_equal(mn_swim_count_state(w->n[a].s, MN_SWIM_ALIVE), 4);
        for (int b = 0; b < 4; b++)
            if (a != b) assert_int_equal(w_state(w, a, b), MN_SWIM_ALIVE);
    }
    /* quiet for a while: nobody suspects anybody, and datagrams stay small */
    w_run(w, 30 * SEC);
    for (int a = 0; a < 4; a++) {
        mn_swim_stats_t st;
        mn_swim_stats_get(w->n[a].s, &st);
        assert_int_equal(st.suspect_events, 0);
        assert_int_equal(st.dropped_auth + st.dropped_verify, 0);
        assert_true(st.probes > 100);
    }
    assert_true(w->max_len <= 1400);
    w_destroy(w);
}

static void test_swim_join_retries_until_the_seed_is_up(void **state)
{
    (void)state;
    world *w = w_new();
    mn_swim_config_t c = fast_config();
    w_start(w, 1, &c, NULL);
    w->count = 2;
    w_join(w, 1, 0); /* node 0 does not exist yet: datagrams vanish */
    w_run(w, 3 * SEC);
    assert_int_equal(mn_swim_member_count(w->n[1].s), 1);
    w_start(w, 0, &c, NULL);
    w_run(w, 5 * SEC);
    assert_int_equal(w_state(w, 0, 1), MN_SWIM_ALIVE);
    assert_int_equal(w_state(w, 1, 0), MN_SWIM_ALIVE);
    w_destroy(w);
}

static void test_swim_drops_datagrams_with_a_wrong_or_missing_key(void **state)
{
    (void)state;
    world *w = w_new();
    mn_swim_config_t c = fast_config();
    w_start(w, 0, &c, "right key");
    w_start(w, 1, &c, "wrong key");
    w_start(w, 2, &c, NULL);
    w_join(w, 1, 0);
    w_join(w, 2, 0);
    w_run(w, 3 * SEC);
    for (int i = 0; i < 3; i++)
        assert_int_equal(mn_swim_member_count(w->n[i].s), 1);
    mn_swim_stats_t st;
    mn_swim_stats_get(w->n[0].s, &st);
    assert_true(st.dropped_auth >= 2); /* from node1 (bad tag) and node2 (no tag) */
    assert_int_equal(st.dropped_verify, 0);
    w_destroy(w);
}

static void test_swim_drops_tampered_and_malformed_datagrams(void **state)
{
    (void)state;
    world *w = w_new();
    mn_swim_config_t c = fast_config();
    w_start(w, 0, &c, "key");
    w_start(w, 1, &c, "key");
    w_join(w, 1, 0); /* queues a sync from node1 to node0 */
    assert_true(w->nq > 0);
    wpkt good = w->q[0];
    w->nq = 0;
    mn_swim_addr_t from = addr_of(1);
    mn_swim_stats_t st;
    for (size_t i = 0; i < good.len; i += 7) {
        wpkt bad = good;
        bad.data[i] ^= 0x20;
        mn_swim_on_packet(w->n[0].s, 0, &from, bad.data, bad.len);
    }
    mn_swim_stats_get(w->n[0].s, &st);
    assert_int_equal(st.dropped_auth + st.dropped_verify, (good.len + 6) / 7);
    assert_int_equal(mn_swim_member_count(w->n[0].s), 1);
    mn_swim_on_packet(w->n[0].s, 0, &from, good.data, 5);
    mn_swim_on_packet(w->n[0].s, 0, &from, NULL, 0);
    mn_swim_stats_get(w->n[0].s, &st);
    assert_int_equal(st.dropped_auth + st.dropped_verify, (good.len + 6) / 7 + 2);
    /* the untouched datagram is accepted */
    mn_swim_on_packet(w->n[0].s, 0, &from, good.data, good.len);
    assert_int_equal(mn_swim_member_count(w->n[0].s), 2);

    /* a keyless core: garbage behind a valid header fails the verifier */
    puppet *p = p_new(&c, 1);
    uint8_t junk[200];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    junk[0] = 'M';
    junk[1] = 'S';
    junk[2] = 1;
    junk[3] = 0;
    mn_swim_on_packet(p->s, 0, &from, junk, sizeof junk);
    junk[2] = 9; /* unknown version */
    mn_swim_on_packet(p->s, 0, &from, junk, sizeof junk);
    mn_swim_stats_get(p->s, &st);
    assert_int_equal(st.dropped_verify, 2);
    p_free(p);
    w_destroy(w);
}

/* Lifeguard: remaining = max - log(n+1)/log(k+1) * (max - min), floored at min. */
static void check_suspicion(bool lifeguard, int confirmations)
{
    mn_swim_config_t c;
    mn_swim_config_profile("lan", &c);
    c.lifeguard = lifeguard;
    c.verify = false;
    c.push_pull_interval_ms = 0;
    puppet *p = p_new(&c, 1);
    p->auto_ack = true; /* X answers pings but never refutes: only the timer decides */
    p_members(p, 9);    /* N = 11 with ourselves */
    double n = 11;
    int64_t min = (int64_t)(4 * log10(n) * 1000.0 * 1000.0);
    int64_t max = lifeguard ? 6 * min : min;
    int k = lifeguard ? 2 : 0; /* suspicion_mult - 2 */
    p->now = 10 * SEC;
    p_tick_until(p, p->now);
    int64_t t0 = p->now;
    p_gossip(p, "B1", 2, ent("X", 1, 1, MN_SWIM_SUSPECT, "B1"));
    assert_int_equal(p_event_at("X", MN_SWIM_SUSPECT), t0);
    /* a repeat from the accuser itself is no confirmation */
    p_gossip(p, "B1", 2, ent("X", 1, 1, MN_SWIM_SUSPECT, "B1"));
    for (int i = 0; i < confirmations; i++) {
        char who[16];
        snprintf(who, sizeof who, "B%d", i + 2);
        p_tick_until(p, t0 + (i + 1) * SEC);
        p_gossip(p, who, 3 + i, ent("X", 1, 1, MN_SWIM_SUSPECT, who));
    }
    p_tick_until(p, t0 + max + 10 * SEC);
    int64_t want = max;
    if (k > 0 && confirmations > 0) {
        int cn = confirmations < k ? confirmations : k;
        want = max - (int64_t)(log(cn + 1.0) / log(k + 1.0) * (double)(max - min));
        if (want < min) want = min;
    }
    int64_t dead = p_event_at("X", MN_SWIM_DEAD);
    assert_true(dead > 0);
    /* the formula's value, give or take float rounding */
    assert_true(llabs((dead - t0) - want) <= 2);
    p_free(p);
}

static void test_swim_suspicion_starts_at_max_without_confirmations(void **state)
{
    (void)state;
    check_suspicion(true, 0);
}

static void test_swim_suspicion_shrinks_logarithmically_with_confirmations(void **state)
{
    (void)state;
    check_suspicion(true, 1);
    check_suspicion(true, 2);
    check_suspicion(true, 5); /* beyond k: stays at min */
}

static void test_swim_plain_swim_suspicion_is_fixed_at_min(void **state)
{
    (void)state;
    check_suspicion(false, 0);
    check_suspicion(false, 3);
}

/* verify: X, which answers our pings (but, being a puppet, never refutes),
 * is accused by B1 alone. *t0 = when the suspicion began, *max = its timeout
 * (no confirmation will come: our own verification probe succeeds). */
static puppet *accused_by_hearsay(int64_t *t0, int64_t *max)
{
    mn_swim_config_t c = fast_config();
    c.push_pull_interval_ms = 0;
    puppet *p = p_new(&c, 1);
    p->auto_ack = true;
    p_members(p, 5); /* N = 7: min = 2 x 160 ms (log10 N < 1), max = 6 x min */
    *max = 6 * 2 * 160 * MS;
    p_tick_until(p, SEC);
    *t0 = p->now;
    p_gossip(p, "B1", 2, ent("X", 1, 1, MN_SWIM_SUSPECT, "B1"));
    assert_int_equal(p_event_at("X", MN_SWIM_SUSPECT), *t0);
    return p;
}

static void test_swim_expired_suspicion_is_rechecked_before_death(void **state)
{
    (void)state;
    int64_t t0, max;
    puppet *p = accused_by_hearsay(&t0, &max);
    /* X falls silent just before the timer runs out: we have never seen it
     * fail, so three pings, one probe timeout apart, and then it is dead */
    p_tick_until(p, t0 + max - 5 * MS);
    assert_int_equal(p_event_at("X", MN_SWIM_DEAD), -1);
    p->ack_except_x = true;
    p_tick_until(p, t0 + max + 2 * SEC);
    mn_swim_stats_t st;
    mn_swim_stats_get(p->s, &st);
    int64_t dead = p_event_at("X", MN_SWIM_DEAD);
    assert_true(dead > 0);
    assert_int_equal(st.suspicion_rechecks, 1);
    assert_int_equal(st.sent_ping_recheck, 3);
    assert_int_equal(dead - t0, max + 3 * 60 * MS);
    p_free(p);
}

static void test_swim_expired_suspicion_of_a_member_that_answers_is_not_death(void **state)
{
    (void)state;
    int64_t t0, max;
    /* X answers every ping (it just never refutes): the accusation alone,
     * however long it stands, does not make it dead in our view */
    puppet *p = accused_by_hearsay(&t0, &max);
    p_tick_until(p, t0 + 5 * max);
    mn_swim_stats_t st;
    mn_swim_stats_get(p->s, &st);
    assert_int_equal(p_event_at("X", MN_SWIM_DEAD), -1);
    assert_int_equal(st.suspicion_rechecks, 1);
    assert_true(st.sent_ping_recheck >= 2); /* asked again while it stays suspect */
    mn_swim_member_info_t mi;
    assert_true(mn_swim_member_find(p->s, "X", &mi));
    assert_int_equal(mi.state, MN_SWIM_SUSPECT);
    /* its refutation ends it */
    p_gossip(p, "B2", 3, ent("X", 1, 2, MN_SWIM_ALIVE, NULL));
    assert_true(mn_swim_member_find(p->s, "X", &mi));
    assert_int_equal(mi.state, MN_SWIM_ALIVE);
    p_free(p);
    /* plain SWIM trusts the timer */
    mn_swim_config_t c = fast_config();
    c.lifeguard = false;
    c.verify = false;
    c.push_pull_interval_ms = 0;
    p = p_new(&c, 1);
    p->auto_ack = true;
    p_members(p, 5);
    p_tick_until(p, SEC);
    t0 = p->now;
    p_gossip(p, "B1", 2, ent("X", 1, 1, MN_SWIM_SUSPECT, "B1"));
    p_tick_until(p, t0 + SEC);
    assert_int_equal(p_event_at("X", MN_SWIM_DEAD) - t0, 2 * 160 * MS);
    p_free(p);
}

static void test_swim_an_old_failure_of_our_own_is_rechecked_too(void **state)
{
    (void)state;
    /* our probe of X failed and we accused it; X came back but its
     * refutation never reached us (and nobody confirmed): when the long
     * timer runs out, a ping shows it alive, so it is not declared dead */
    mn_swim_config_t c = fast_config();
    c.push_pull_interval_ms = 0;
    puppet *p = p_new(&c, 1);
    p->auto_ack = true;
    p->ack_except_x = true;
    p_members(p, 5);
    for (int guard = 0; guard < 1000 && p_event_at("X", MN_SWIM_SUSPECT) < 0; guard++)
        p_tick_until(p, p->now + 10 * MS);
    int64_t t0 = p_event_at("X", MN_SWIM_SUSPECT);
    assert_true(t0 > 0);
    p->ack_except_x = false;
    p_tick_until(p, t0 + 5 * 6 * 2 * 160 * MS);
    mn_swim_stats_t st;
    mn_swim_stats_get(p->s, &st);
    assert_int_equal(st.suspicions_raised, 1);
    assert_int_equal(st.suspicion_rechecks, 1);
    assert_int_equal(p_event_at("X", MN_SWIM_DEAD), -1);
    p_free(p);
}

static bool carries(puppet *p, const wpkt *w, const char *id, uint8_t st, uint64_t inc)
{
    mn_wire_swim_msg_t m;
    if (!p_decode(p, w, &m)) return false;
    for (size_t i = 0; i < m.n_updates; i++)
        if (m.updates[i].id_len == strlen(id) && memcmp(m.updates[i].id, id, strlen(id)) == 0 &&
            m.updates[i].state == st && m.updates[i].incarnation == inc)
            return true;
    return false;
}

static void test_swim_refutes_accusations_by_bumping_incarnation(void **state)
{
    (void)state;
    mn_swim_config_t c = fast_config();
    puppet *p = p_new(&c, 5);
    p_members(p, 3);
    p_gossip(p, "B1", 2, ent("A", 0, 5, MN_SWIM_SUSPECT, "B1"));
    assert_int_equal(mn_swim_incarnation(p->s), 6);
    /* the refutation rides on the answer to the next ping */
    p->nout = 0;
    mn_wire_swim_msg_t ping = {.kind = MN_WIRE_SWIM_PING,
                               .seq = 77,
                               .src = "B2",
                               .src_len = 2,
                               .target = "A",
                               .target_len = 1};
    p_feed_msg(p, 3, &ping);
    assert_int_equal(p->nout, 1);
    assert_true(carries(p, &p->out[0], "A", MN_SWIM_ALIVE, 6));
    /* dead at a higher incarnation (a former life): jump past it */
    p_gossip(p, "B2", 3, ent("A", 0, 9, MN_SWIM_DEAD, "B2"));
    assert_int_equal(mn_swim_incarnation(p->s), 10);
    mn_swim_stats_t st;
    mn_swim_stats_get(p->s, &st);
    assert_int_equal(st.refutations, 2);
    assert_true(mn_swim_health(p->s) >= 1);
    /* stale news (an old incarnation) is answered with our current entry, no bump */
    p->nout = 0;
    p_gossip(p, "B3", 4, ent("A", 0, 3, MN_SWIM_SUSPECT, "B3"));
    assert_int_equal(mn_swim_incarnation(p->s), 10);
    bool answered = false;
    for (size_t i = 0; i < p->nout; i++)
        if (p->out[i].to == 4 && carries(p, &p->out[i], "A", MN_SWIM_ALIVE, 10)) answered = true;
    assert_true(answered);
    p_free(p);
}

static void test_swim_ping_to_a_suspect_carries_the_suspicion(void **state)
{
    (void)state;
    mn_swim_config_t c = fast_config();
    puppet *p = p_new(&c, 1);
    p_members(p, 5);
    p_gossip(p, "B1", 2, ent("X", 1, 1, MN_SWIM_SUSPECT, "B1"));
    p->nout = 0;
    /* verify: X is our next probe target; buddy: the ping tells X first */
    p_tick_until(p, p->now + 300 * MS);
    bool found = false;
    for (size_t i = 0; i < p->nout && !found; i++) {
        mn_wire_swim_msg_t m;
        if (p->out[i].to != 1 || !p_decode(p, &p->out[i], &m) || m.kind != MN_WIRE_SWIM_PING)
            continue;
        assert_true(m.n_updates >= 1);
        assert_memory_equal(m.updates[0].id, "X", 1);
        assert_int_equal(m.updates[0].state, MN_SWIM_SUSPECT);
        found = true;
    }
    assert_true(found);
    p_free(p);
}

static void test_swim_update_precedence_follows_incarnations(void **state)
{
    (void)state;
    mn_swim_config_t c = fast_config();
    c.verify = false;
    puppet *p = p_new(&c, 1);
    p_members(p, 3);
    mn_swim_member_info_t mi;
#define STATE_OF(id) (mn_swim_member_find(p->s, id, &mi) ? (int)mi.state : -1)
    p_gossip(p, "B1", 2, ent("X", 1, 1, MN_SWIM_ALIVE, NULL)); /* same incarnation: no-op */
    assert_int_equal(STATE_OF("X"), MN_SWIM_ALIVE);
    p_gossip(p, "B1", 2, ent("X", 1, 0, MN_SWIM_SUSPECT, "B1")); /* older: ignored */
    assert_int_equal(STATE_OF("X"), MN_SWIM_ALIVE);
    p_gossip(p, "B1", 2, ent("X", 1, 1, MN_SWIM_SUSPECT, "B1"));
    assert_int_equal(STATE_OF("X"), MN_SWIM_SUSPECT);
    p_gossip(p, "B1", 2, ent("X", 1, 1, MN_SWIM_ALIVE, NULL)); /* needs a higher incarnation */
    assert_int_equal(STATE_OF("X"), MN_SWIM_SUSPECT);
    p_gossip(p, "B1", 2, ent("X", 1, 2, MN_SWIM_ALIVE, NULL));
    assert_int_equal(STATE_OF("X"), MN_SWIM_ALIVE);
    assert_int_equal(mi.incarnation, 2);
    p_gossip(p, "B1", 2, ent("X", 1, 1, MN_SWIM_DEAD, "B1")); /* older: ignored */
    assert_int_equal(STATE_OF("X"), MN_SWIM_ALIVE);
    p_gossip(p, "B1", 2, ent("X", 1, 2, MN_SWIM_DEAD, "B1"));
    assert_int_equal(STATE_OF("X"), MN_SWIM_DEAD);
    p_gossip(p, "B1", 2, ent("X", 1, 2, MN_SWIM_SUSPECT, "B1")); /* dead is final */
    assert_int_equal(STATE_OF("X"), MN_SWIM_DEAD);
    p_gossip(p, "B1", 2, ent("X", 1, 2, MN_SWIM_LEFT, "X")); /* ... but left explains it */
    assert_int_equal(STATE_OF("X"), MN_SWIM_LEFT);
    p_gossip(p, "B1", 2, ent("X", 5, 3, MN_SWIM_ALIVE, NULL)); /* rejoin, even at a new address */
    assert_int_equal(STATE_OF("X"), MN_SWIM_ALIVE);
    assert_int_equal(mi.addr.port, 9005);
    /* a full-state row saying dead only makes us suspect */
    mn_wire_swim_entry_t row = ent("X", 5, 3, MN_SWIM_DEAD, NULL);
    mn_wire_swim_msg_t m = {
        .kind = MN_WIRE_SWIM_SYNC, .src = "B2", .src_len = 2, .state = &row, .n_state = 1};
    p_feed_msg(p, 3, &m);
    assert_int_equal(STATE_OF("X"), MN_SWIM_SUSPECT);
    /* unknown members appear only by alive news */
    p_gossip(p, "B1", 2, ent("Z", 7, 1, MN_SWIM_DEAD, "B1"));
    assert_int_equal(STATE_OF("Z"), -1);
    p_gossip(p, "B1", 2, ent("Z", 7, 1, MN_SWIM_ALIVE, NULL));
    assert_int_equal(STATE_OF("Z"), MN_SWIM_ALIVE);
#undef STATE_OF
    p_free(p);
}

static void test_swim_health_rises_when_helpers_stay_silent(void **state)
{
    (void)state;
    mn_swim_config_t c = fast_config();
    c.verify = false;
    puppet *p = p_new(&c, 1);
    p_members(p, 5);
    /* nobody answers: a failed probe adds the nacks that did not come (k = 3) */
    mn_swim_stats_t st = p_until_probe_failed(p);
    assert_int_equal(st.probe_failures, 1);
    assert_int_equal(st.indirect_probes, 3);
    assert_int_equal(mn_swim_health(p->s), 3);
    /* answers come back: every successful probe takes one off */
    p->auto_ack = true;
    p_tick_until(p, p->now + 5 * SEC);
    assert_int_equal(mn_swim_health(p->s), 0);
    p_free(p);
}

static void test_swim_indirect_phase_also_pings_the_target_directly(void **state)
{
    (void)state;
    mn_swim_config_t c = fast_config();
    c.verify = false;
    puppet *p = p_new(&c, 1);
    p_members(p, 5);
    p->auto_ack = true;
    p->ack_except_x = true; /* X never answers; helpers never relay */
    mn_swim_stats_t st = p_until_probe_failed(p);
    /* ping, one retry, then 3 ping-reqs with a third direct ping alongside */
    assert_int_equal(st.probe_failures, 1);
    assert_int_equal(st.indirect_probes, 3);
    assert_int_equal(st.sent_kind[MN_WIRE_SWIM_PING_REQ], 3);
    assert_int_equal(st.sent_ping_again, 2);
    p_free(p);
}

/* Gossip datagrams sent in the 2 s after the core learns of a new member. */
static uint64_t gossip_after_news(int gossip_transmits)
{
    mn_swim_config_t c = fast_config();
    c.gossip_transmits = gossip_transmits;
    c.retransmit_mult = 10;       /* 10 sends per update at this size */
    c.probe_interval_ms = 600000; /* no pings for the news to ride on */
    puppet *p = p_new(&c, 1);
    p_members(p, 5);
    p->auto_ack = true;
    p_tick_until(p, 2 * SEC);
    mn_swim_stats_t a, b;
    mn_swim_stats_get(p->s, &a);
    p_gossip(p, "B1", 2, ent("N", 9, 1, MN_SWIM_ALIVE, NULL));
    p_tick_until(p, p->now + 2 * SEC);
    mn_swim_stats_get(p->s, &b);
    assert_true(mn_swim_member_find(p->s, "N", NULL));
    p_free(p);
    return b.sent_kind[MN_WIRE_SWIM_GOSSIP] - a.sent_kind[MN_WIRE_SWIM_GOSSIP];
}

static void test_swim_gossip_datagrams_only_for_the_first_fan_out(void **state)
{
    (void)state;
    /* fast: one round of gossip_nodes (3) datagrams; the remaining sends of
     * the update ride on pings and acks */
    assert_int_equal(gossip_after_news(3), 3);
    /* memberlist (lan): gossip rounds until the retransmit limit */
    assert_int_equal(gossip_after_news(0), 10);
}

/* Start times and targets of the probes in p's log (a probe = the first ping
 * with a new sequence number, to a member rather than for a ping-req). */
static size_t probes_in_log(const puppet *p, int64_t *at, char (*target)[MN_SWIM_ID_MAX + 1],
                            size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nlog && n < cap; i++) {
        const sent_rec *r = &p->log[i];
        if (r->kind != MN_WIRE_SWIM_PING) continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = p->log[j].kind == MN_WIRE_SWIM_PING && p->log[j].seq == r->seq;
        if (seen) continue;
        at[n] = r->at;
        memcpy(target[n], r->target, sizeof target[n]);
        n++;
    }
    return n;
}

static void test_swim_probe_order_is_a_fresh_permutation_each_round(void **state)
{
    (void)state;
    mn_swim_config_t c = fast_config();
    c.push_pull_interval_ms = 0;
    puppet *p = p_new(&c, 1);
    p->auto_ack = true; /* every probe succeeds at once: one per probe interval */
    p_members(p, 9);    /* 10 peers */
    p_log_on(p);
    p_tick_until(p, 20 * SEC);
    int64_t at[200];
    char target[200][MN_SWIM_ID_MAX + 1];
    size_t n = probes_in_log(p, at, target, 200);
    assert_true(n >= 100);
    /* every block of 10 probes (a round) visits each peer exactly once ... */
    int distinct_orders = 0;
    for (size_t round = 0; round + 1 < n / 10 + 1 && (round + 1) * 10 <= n; round++) {
        for (size_t i = 0; i < 10; i++)
            for (size_t j = i + 1; j < 10; j++)
                if (strcmp(target[round * 10 + i], target[round * 10 + j]) == 0)
                    fail_msg("round %zu probes %s twice", round, target[round * 10 + i]);
        /* ... in an order that differs from the round before */
        if (round > 0) {
            bool same = true;
            for (size_t i = 0; i < 10; i++)
                same &= strcmp(target[round * 10 + i], target[(round - 1) * 10 + i]) == 0;
            distinct_orders += !same;
        }
    }
    assert_true(distinct_orders >= (int)(n / 10) - 2);
    p_free(p);
}

static void test_swim_health_multiplier_stretches_the_probe_interval(void **state)
{
    (void)state;
    mn_swim_config_t c = fast_config();
    c.push_pull_interval_ms = 0;
    puppet *p = p_new(&c, 1);
    p->auto_ack = true; /* probes succeed at once: the gap is the interval alone */
    p_members(p, 9);
    p_tick_until(p, 2 * SEC);
    /* seven accusations to refute: health +1 each, saturating at 8 - 1 */
    for (int i = 0; i < 7; i++)
        p_gossip(p, "B1", 2, ent("A", 0, mn_swim_incarnation(p->s), MN_SWIM_SUSPECT, "B1"));
    assert_int_equal(mn_swim_health(p->s), 7);
    p_log_on(p);
    p_tick_until(p, p->now + 12 * SEC);
    int64_t at[64];
    char target[64][MN_SWIM_ID_MAX + 1];
    size_t n = probes_in_log(p, at, target, 64);
    assert_true(n >= 10);
    /* each success takes one off, so the gaps shrink 8, 7, ... 1 x 160 ms;
     * at health 0 it stays the plain interval */
    for (int k = 0; k < 8; k++)
        assert_int_equal(at[k + 1] - at[k], (int64_t)(8 - k) * 160 * MS);
    assert_int_equal(at[9] - at[8], 160 * MS);
    assert_int_equal(mn_swim_health(p->s), 0);
    p_free(p);
}

static void test_swim_push_pull_runs_at_its_interval(void **state)
{
    (void)state;
    mn_swim_config_t c = fast_config();
    c.push_pull_interval_ms = 2000;
    puppet *p = p_new(&c, 1);
    p->auto_ack = true;
    p_members(p, 5);
    p_log_on(p);
    p_tick_until(p, 21 * SEC);
    int64_t at[32] = {0};
    size_t n = 0;
    for (size_t i = 0; i < p->nlog && n < 32; i++)
        if (p->log[i].kind == MN_WIRE_SWIM_SYNC && (p->log[i].flags & MN_WIRE_SWIM_FLAG_REPLY)) {
            /* one exchange = one datagram here (6 rows); with one random alive peer */
            assert_true(p->log[i].to >= 1 && p->log[i].to <= 6);
            at[n++] = p->log[i].at;
        }
    /* the first after 1..3 s (interval/2 + a random part, so nodes do not
     * sync in step), then one every interval */
    assert_true(n >= 9 && n <= 10);
    assert_true(at[0] >= SEC && at[0] < 3 * SEC);
    for (size_t i = 1; i < n; i++)
        assert_int_equal(at[i] - at[i - 1], 2 * SEC);
    p_free(p);
}

/* Times an update about a new member N1 rides on the core's datagrams, with
 * nb + 1 other peers. */
static int sends_of_news(int nb)
{
    mn_swim_config_t c = fast_config();
    c.push_pull_interval_ms = 0;
    puppet *p = p_new(&c, 1);
    p->auto_ack = true;
    p_members(p, nb);
    p_tick_until(p, SEC);
    p_log_on(p);
    p_gossip(p, "B1", 2, ent("N1", 40, 1, MN_SWIM_ALIVE, NULL));
    p_tick_until(p, p->now + 20 * SEC);
    int sends = 0;
    for (size_t i = 0; i < p->nlog; i++)
        sends += p->log[i].carries_n1;
    p_free(p);
    return sends;
}

static void test_swim_retransmits_scale_with_log_n(void **state)
{
    (void)state;
    /* retransmit_mult (3 in fast) x ceil(log10(N + 1)), N = live members with
     * ourselves: 6 members -> 3 sends, 34 members -> 6 */
    assert_int_equal(sends_of_news(3), 3);
    assert_int_equal(sends_of_news(31), 6);
}

static void test_swim_without_lifeguard_health_stays_zero(void **state)
{
    (void)state;
    mn_swim_config_t c = fast_config();
    c.lifeguard = false;
    puppet *p = p_new(&c, 1);
    p_members(p, 5);
    p_tick_until(p, 3 * SEC);
    assert_int_equal(mn_swim_health(p->s), 0);
    p_free(p);
}

static void test_swim_crashed_member_is_declared_dead_by_all(void **state)
{
    (void)state;
    mn_swim_config_t c = fast_config();
    world *w = w_cluster(6, &c, NULL, 3 * SEC);
    int64_t t0 = w->now;
    w->n[3].down = true;
    /* a crash is seen within two probe intervals, the probe (ping, retry,
     * indirect: 4 timeouts), the longest suspicion (max = max_mult * mult *
     * interval, as log10(6) < 1) and a few gossip rounds */
    int64_t bound = (2 * c.probe_interval_ms + 4 * c.probe_timeout_ms +
                     c.suspicion_max_mult * c.suspicion_mult * c.probe_interval_ms) *
                        MS +
                    1 * SEC;
    w_run(w, t0 + bound);
    for (int a = 0; a < 6; a++)
        if (a != 3) assert_int_equal(w_state(w, a, 3), MN_SWIM_DEAD);
    for (size_t i = 0; i < w->nev; i++)
        if (strcmp(w->ev[i].id, "node3") != 0 && w->ev[i].at > t0)
            assert_int_equal(w->ev[i].state, MN_SWIM_ALIVE); /* no collateral damage */
    /* every datagram a core sent is counted once, by kind */
    for (int a = 0; a < 6; a++) {
        mn_swim_stats_t st;
        mn_swim_stats_get(w->n[a].s, &st);
        uint64_t by_kind = 0;
        for (int k = 0; k < 8; k++)
            by_kind += st.sent_kind[k];
        assert_true(st.packets_sent == w->n[a].sent);
        assert_true(by_kind == w->n[a].sent);
        assert_true(st.sent_ping_again + st.sent_ping_relay <= st.sent_kind[MN_WIRE_SWIM_PING]);
        assert_true(st.sent_ack_relay <= st.sent_kind[MN_WIRE_SWIM_ACK]);
        assert_true(st.sent_sync_reply <= st.sent_kind[MN_WIRE_SWIM_SYNC]);
    }
    w_destroy(w);
}

static void test_swim_graceful_leave_shows_left_not_dead(void **state)
{
    (void)state;
    mn_swim_config_t c = fast_config();
    world *w = w_cluster(4, &c, NULL, 3 * SEC);
    assert_false(mn_swim_leave_done(w->n[2].s));
    mn_swim_leave(w->n[2].s, w->now);
    w_run(w, w->now + 1 * SEC);
    assert_true(mn_swim_leave_done(w->n[2].s));
    w->n[2].down = true;
    w_run(w, w->now + 20 * SEC);
    for (int a = 0; a < 4; a++)
        if (a != 2) assert_int_equal(w_state(w, a, 2), MN_SWIM_LEFT);
    w_destroy(w);
}

static void test_swim_full_state_sync_spans_datagrams_within_the_limit(void **state)
{
    (void)state;
    static const int sizes[] = {1400, 512};
    for (int si = 0; si < 2; si++) {
        mn_swim_config_t c = fast_config();
        c.max_packet = sizes[si];
        puppet *p = p_new(&c, 1);
        /* teach 304 members with 36-byte ids, 8 per datagram */
        static char names[304][40];
        for (int base = 0; base < 304; base += 8) {
            mn_wire_swim_entry_t es[8];
            for (int i = 0; i < 8; i++) {
                snprintf(names[base + i], sizeof names[0], "0190a0b0-c0d0-7e0f-8a0b-%012d",
                         base + i);
                es[i] = ent(names[base + i], 1 + (base + i) % 200, 1, MN_SWIM_ALIVE, NULL);
            }
            mn_wire_swim_msg_t m = {.kind = MN_WIRE_SWIM_GOSSIP,
                                    .src = names[base],
                                    .src_len = strlen(names[base]),
                                    .updates = es,
                                    .n_updates = 8};
            p_feed_msg(p, 1, &m);
        }
        assert_int_equal(mn_swim_member_count(p->s), 305);
        p->nout = 0;
        mn_wire_swim_msg_t req = {.kind = MN_WIRE_SWIM_SYNC,
                                  .seq = 1,
                                  .src = names[0],
                                  .src_len = strlen(names[0]),
                                  .flags = MN_WIRE_SWIM_FLAG_REPLY};
        p_feed_msg(p, 1, &req);
        size_t rows = 0, datagrams = 0;
        for (size_t i = 0; i < p->nout; i++) {
            assert_true(p->out[i].len <= (size_t)sizes[si]);
            mn_wire_swim_msg_t m;
            assert_true(p_decode(p, &p->out[i], &m));
            if (m.kind != MN_WIRE_SWIM_SYNC) continue;
            rows += m.n_state;
            datagrams++;
        }
        assert_int_equal(rows, 305);
        assert_true(datagrams >= (si == 0 ? 10u : 30u));
        p_free(p);
    }
}

static void test_swim_reclaims_dead_members_and_keeps_the_index_consistent(void **state)
{
    (void)state;
    mn_swim_config_t c = fast_config();
    c.verify = false;
    c.dead_reclaim_ms = 2000;
    puppet *p = p_new(&c, 1);
    p->auto_ack = true; /* the living answer our probes */
    static char names[300][16];
    for (int i = 0; i < 300; i++) {
        snprintf(names[i], sizeof names[i], "m%d", i);
        p_gossip(p, "m0", 1, ent(names[i], 1 + i % 200, 1, MN_SWIM_ALIVE, NULL));
    }
    assert_int_equal(mn_swim_member_count(p->s), 301);
    /* every third member dies (with colliding hash chains in a 1024-slot index) */
    for (int i = 0; i < 300; i += 3)
        p_gossip(p, "m1", 2, ent(names[i], 1 + i % 200, 1, MN_SWIM_DEAD, "m1"));
    assert_int_equal(mn_swim_count_state(p->s, MN_SWIM_DEAD), 100);
    p->nout = 0;
    p_tick_until(p, p->now + 1 * SEC);
    assert_int_equal(mn_swim_member_count(p->s), 301); /* not yet */
    p->nout = 0;
    p_tick_until(p, p->now + 3 * SEC);
    /* the dead are forgotten, the others still found through the index */
    mn_swim_member_info_t mi;
    for (int i = 0; i < 300; i++) {
        bool found = mn_swim_member_find(p->s, names[i], &mi);
        if (i % 3 == 0)
            assert_false(found);
        else
            assert_true(found && strcmp(mi.id, names[i]) == 0);
    }
    size_t n = mn_swim_member_count(p->s);
    assert_int_equal(n, 201);
    for (size_t i = 0; i < n; i++) {
        assert_true(mn_swim_member_get(p->s, i, &mi));
        assert_true(mn_swim_member_find(p->s, mi.id, NULL));
    }
    /* a reclaimed member may come back */
    p_gossip(p, "m1", 2, ent(names[0], 1, 2, MN_SWIM_ALIVE, NULL));
    assert_true(mn_swim_member_find(p->s, names[0], &mi));
    assert_int_equal(mi.state, MN_SWIM_ALIVE);
    p_free(p);
}

static bool meta_is(world *w, int obs, int tgt, const char *want)
{
    char id[16];
    snprintf(id, sizeof id, "node%d", tgt);
    mn_swim_member_info_t mi;
    return mn_swim_member_find(w->n[obs].s, id, &mi) && mi.meta_len == strlen(want) &&
           strcmp(mi.meta, want) == 0;
}

static void test_swim_member_metadata_reaches_everyone_and_follows_changes(void **state)
{
    (void)state;
    mn_swim_config_t c = fast_config();
    world *w = w_new();
    char meta[4][32];
    for (int i = 0; i < 4; i++) {
        w_start(w, i, &c, "k");
        snprintf(meta[i], sizeof meta[i], "api=10.0.0.%d:7700;zone=z%d", i, i % 2);
        assert_int_equal(mn_swim_set_meta(w->n[i].s, w->now, meta[i], strlen(meta[i])), MN_OK);
    }
    for (int i = 1; i < 4; i++)
        w_join(w, i, 0);
    w_run(w, 3 * SEC);
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            assert_true(meta_is(w, a, b, meta[b]));
    /* a change is announced with a higher incarnation and replaces the old one everywhere,
     * also when members relay the new incarnation to each other */
    mn_swim_member_info_t before, after;
    assert_true(mn_swim_member_find(w->n[0].s, "node2", &before));
    assert_int_equal(mn_swim_set_meta(w->n[2].s, w->now, "zone=moved", 10), MN_OK);
    w_run(w, 6 * SEC);
    for (int a = 0; a < 4; a++)
        assert_true(meta_is(w, a, 2, "zone=moved"));
    assert_true(mn_swim_member_find(w->n[0].s, "node2", &after));
    assert_true(after.incarnation > before.incarnation);
    assert_int_equal(after.state, MN_SWIM_ALIVE);
    /* bad metadata is refused and changes nothing */
    char big[MN_SWIM_META_MAX + 2];
    memset(big, 'x', sizeof big);
    assert_int_equal(mn_swim_set_meta(w->n[1].s, w->now, big, MN_SWIM_META_MAX + 1),
                     MN_ERR_INVALID);
    assert_int_equal(mn_swim_set_meta(w->n[1].s, w->now, "a\nb", 3), MN_ERR_INVALID);
    assert_true(meta_is(w, 1, 1, meta[1]));
    w_destroy(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swim_profiles_match_memberlist_lan_and_check_ranges),
        cmocka_unit_test(test_swim_addr_parses_and_formats),
        cmocka_unit_test(test_swim_new_rejects_bad_options),
        cmocka_unit_test(test_swim_nodes_join_through_a_seed_and_see_each_other_alive),
        cmocka_unit_test(test_swim_join_retries_until_the_seed_is_up),
        cmocka_unit_test(test_swim_drops_datagrams_with_a_wrong_or_missing_key),
        cmocka_unit_test(test_swim_drops_tampered_and_malformed_datagrams),
        cmocka_unit_test(test_swim_suspicion_starts_at_max_without_confirmations),
        cmocka_unit_test(test_swim_suspicion_shrinks_logarithmically_with_confirmations),
        cmocka_unit_test(test_swim_plain_swim_suspicion_is_fixed_at_min),
        cmocka_unit_test(test_swim_expired_suspicion_is_rechecked_before_death),
        cmocka_unit_test(test_swim_expired_suspicion_of_a_member_that_answers_is_not_death),
        cmocka_unit_test(test_swim_an_old_failure_of_our_own_is_rechecked_too),
        cmocka_unit_test(test_swim_refutes_accusations_by_bumping_incarnation),
        cmocka_unit_test(test_swim_ping_to_a_suspect_carries_the_suspicion),
        cmocka_unit_test(test_swim_update_precedence_follows_incarnations),
        cmocka_unit_test(test_swim_health_rises_when_helpers_stay_silent),
        cmocka_unit_test(test_swim_indirect_phase_also_pings_the_target_directly),
        cmocka_unit_test(test_swim_gossip_datagrams_only_for_the_first_fan_out),
        cmocka_unit_test(test_swim_probe_order_is_a_fresh_permutation_each_round),
        cmocka_unit_test(test_swim_health_multiplier_stretches_the_probe_interval),
        cmocka_unit_test(test_swim_push_pull_runs_at_its_interval),
        cmocka_unit_test(test_swim_retransmits_scale_with_log_n),
        cmocka_unit_test(test_swim_without_lifeguard_health_stays_zero),
        cmocka_unit_test(test_swim_crashed_member_is_declared_dead_by_all),
        cmocka_unit_test(test_swim_graceful_leave_shows_left_not_dead),
        cmocka_unit_test(test_swim_full_state_sync_spans_datagrams_within_the_limit),
        cmocka_unit_test(test_swim_reclaims_dead_members_and_keeps_the_index_consistent),
        cmocka_unit_test(test_swim_member_metadata_reaches_everyone_and_follows_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
