/* The gossip core's exchange (gossip/gossip_core.c, gossip_exchange.c) on a
 * hand-driven network of a few cores: one exchange brings two nodes to the
 * join of their states in both directions (records, new spaces,
 * tombstones); nodes that agree exchange one frame; batches stay within
 * batch_max and a large difference closes over a few rounds; rounds go to
 * `fanout` distinct peers; records the host refuses stay out and dropped ones go; with
 * per-space peer sets a space stays among its holders; the always-on check finds and
 * repairs a damaged tree; bad
 * configuration and names are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "gossip/gossip_internal.h" /* to damage a tree by hand */
#include "mnemo/gossip.h"
#include "mnemo/wire_gossip.h"

#define NODES 3
#define QMAX 20000

typedef struct frame {
    int to;
    size_t len;
    uint8_t *buf;
} frame;

typedef struct net {
    mn_gossip_t *g[NODES];
    int idx[NODES];
    frame q[QMAX];
    size_t head, tail;
    uint64_t frames, max_records, changed_calls;
    mn_wire_gossip_storage_t st;
    /* what node `refuser` admits: no record of space `refuse`, none older than after_ms */
    int refuser;
    const char *refuse;
    int64_t after_ms;
    /* per-space peer sets (shares), when made by net_new_placed: a space named by node
     * letters ("ab": n0 and n1) is held by those; `liar` claims to share every space */
    int liar;
    int64_t now_us; /* exchange's clock: each exchange is a round due */
} net;

static net *NET;

static void on_send(void *user, const char *to, const uint8_t *buf, size_t len)
{
    (void)user;
    net *n = NET;
    assert_true(n->tail < QMAX);
    frame *f = &n->q[n->tail++];
    f->to = to[1] - '0';
    f->len = len;
    f->buf = aligned_alloc(8, (len + 7) & ~(size_t)7);
    assert_non_null(f->buf);
    memcpy(f->buf, buf, len);
    n->frames++;
    mn_wire_gossip_frame_t d; /* every frame we build decodes, within its batch */
    assert_int_equal(mn_wire_gossip_decode(f->buf, len, &d, &n->st), MN_OK);
    if (d.n_records > n->max_records) n->max_records = d.n_records;
    if (d.kind == MN_WIRE_GOSSIP_PULL && d.n_keys > n->max_records) n->max_records = d.n_keys;
}

static void on_changed(void *user, const char *space, const mn_gossip_record_t *r)
{
    (void)user, (void)space, (void)r;
    NET->changed_calls++;
}

static bool on_admit(void *user, const char *space, const mn_id_t *id)
{
    const net *n = NET;
    if (*(const int *)user != n->refuser) return true;
    return !(n->refuse && !strcmp(space, n->refuse)) && mn_id_time_ms(id) >= n->after_ms;
}

static bool holds(int node, const char *space)
{
    return strchr(space, 'a' + node) != NULL;
}

static bool on_shares(void *user, const char *peer, const char *space)
{
    const net *n = NET;
    int self = *(const int *)user;
    return self == n->liar || (holds(self, space) && holds(peer[1] - '0', space));
}

static net *net_new_placed(const mn_gossip_config_t *c, bool placed)
{
    net *n = calloc(1, sizeof *n);
    assert_non_null(n);
    NET = n;
    n->st.nodes = calloc(MN_WIRE_GOSSIP_MAX_NODES, sizeof *n->st.nodes);
    n->st.nodes_cap = MN_WIRE_GOSSIP_MAX_NODES;
    n->st.records = calloc(MN_WIRE_GOSSIP_MAX_RECORDS, sizeof *n->st.records);
    n->st.records_cap = MN_WIRE_GOSSIP_MAX_RECORDS;
    n->st.names = calloc(MN_WIRE_GOSSIP_MAX_KEYS, sizeof *n->st.names);
    n->st.name_lens = calloc(MN_WIRE_GOSSIP_MAX_KEYS, sizeof *n->st.name_lens);
    n->st.names_cap = MN_WIRE_GOSSIP_MAX_KEYS;
    n->refuser = -1;
    n->liar = -1;
    const char *ids[NODES] = {"n0", "n1", "n2"};
    for (int i = 0; i < NODES; i++) {
        mn_gossip_cb_t cb = {.user = &n->idx[i],
                             .send = on_send,
                             .changed = on_changed,
                             .admit = on_admit,
                             .shares = placed ? on_shares : NULL};
        n->idx[i] = i;
        assert_int_equal(mn_gossip_new(ids[i], c, &cb, 100 + (uint64_t)i, 0, &n->g[i], NULL),
                         MN_OK);
        assert_int_equal(mn_gossip_set_peers(n->g[i], ids, NODES, NULL), MN_OK);
    }
    return n;
}

static net *net_new(const mn_gossip_config_t *c)
{
    return net_new_placed(c, false);
}

static void net_free(net *n)
{
    for (size_t i = n->head; i < n->tail; i++)
        free(n->q[i].buf);
    for (int i = 0; i < NODES; i++)
        mn_gossip_free(n->g[i]);
    free(n->st.nodes);
    free(n->st.records);
    free(n->st.names);
    free(n->st.name_lens);
    free(n);
}

/* Delivers until nothing is in flight (an exchange ends by itself). */
static void drain(net *n)
{
    while (n->head < n->tail) {
        frame f = n->q[n->head++];
        mn_gossip_on_message(n->g[f.to], 0, f.buf, f.len);
        free(f.buf);
    }
    n->head = n->tail = 0;
}

/* Node a starts an exchange with node b (a round with b as the only peer). */
static void exchange(net *n, int a, int b)
{
    char id[3] = {'n', (char)('0' + b), 0};
    const char *peers[] = {id};
    assert_int_equal(mn_gossip_set_peers(n->g[a], peers, 1, NULL), MN_OK);
    n->now_us += 3600LL * 1000 * 1000; /* past any node's next round */
    mn_gossip_on_tick(n->g[a], n->now_us);
    drain(n);
}

static bool same_root(const net *n, int a, int b)
{
    uint8_t x[MN_GOSSIP_DIGEST_LEN], y[MN_GOSSIP_DIGEST_LEN];
    uint64_t cx, cy;
    mn_gossip_root(n->g[a], NULL, x, &cx);
    mn_gossip_root(n->g[b], NULL, y, &cy);
    return cx == cy && memcmp(x, y, sizeof x) == 0;
}

static mn_gossip_record_t rec(uint64_t k, uint64_t hlc)
{
    mn_gossip_record_t r;
    memset(&r, 0, sizeof r);
    mn_put_be64(r.id.b, 0x0190000000000000ull + k);
    mn_put_be64(r.id.b + 8, 0x8000000000000000ull + k);
    r.epoch = 1;
    r.hlc = hlc;
    r.confidence = 0.5f;
    r.support_n = 1;
    return r;
}

/* rec(k, 1) with an id made at ms */
static mn_gossip_record_t rec_at(uint64_t k, int64_t ms)
{
    mn_gossip_record_t r = rec(k, 1);
    mn_put_be64(r.id.b, ((uint64_t)ms << 16) | 0x7000u | k);
    return r;
}

static void put(net *n, int node, const char *space, mn_gossip_record_t r)
{
    assert_int_equal(mn_gossip_put(n->g[node], space, &r, NULL), MN_OK);
}

static void test_gossip_one_exchange_brings_both_sides_to_the_join(void **state)
{
    (void)state;
    net *n = net_new(NULL);
    for (uint64_t k = 0; k < 100; k++) { /* a common base */
        put(n, 0, "s1", rec(k, 1));
        put(n, 1, "s1", rec(k, 1));
    }
    put(n, 0, "s1", rec(5, 2));    /* newer at n0 */
    put(n, 1, "s1", rec(6, 2));    /* newer at n1 */
    put(n, 1, "s1", rec(500, 1));  /* only at n1 */
    put(n, 0, "only0", rec(1, 1)); /* spaces each side lacks */
    put(n, 1, "only1", rec(1, 1));
    mn_gossip_record_t t = rec(7, 0);
    t.forgotten_hlc = 9, t.epoch = 0, t.confidence = 0, t.support_n = 0;
    put(n, 0, "s1", t); /* forgotten at n0 */
    assert_false(same_root(n, 0, 1));
    exchange(n, 1, 0);
    assert_true(same_root(n, 0, 1));
    assert_int_equal(mn_gossip_space_count(n->g[0]), 3);
    mn_gossip_record_t got;
    assert_int_equal(mn_gossip_get(n->g[1], "s1", &t.id, &got), MN_OK);
    assert_true(got.forgotten_hlc == 9);
    put(n, 1, "s1", rec(7, 99)); /* a later version of a forgotten memory stays forgotten */
    assert_int_equal(mn_gossip_get(n->g[1], "s1", &t.id, &got), MN_OK);
    assert_true(got.forgotten_hlc == 9);
    mn_gossip_stats_t st;
    mn_gossip_stats(n->g[0], &st);
    assert_int_equal(st.peers_differing, 1);
    assert_true(st.entries_pushed >= 3 && st.entries_pulled >= 3);
    assert_true(n->changed_calls >= 6);
    assert_true(mn_gossip_verify(n->g[0]) && mn_gossip_verify(n->g[1]));
    net_free(n);
}

static void test_gossip_nodes_that_agree_exchange_one_frame(void **state)
{
    (void)state;
    net *n = net_new(NULL);
    for (uint64_t k = 0; k < 50; k++)
        for (int i = 0; i < 2; i++)
            put(n, i, k % 2 ? "a" : "b", rec(k, 1));
    uint64_t before = n->frames;
    exchange(n, 0, 1);
    assert_int_equal(n->frames - before, 1);
    mn_gossip_stats_t st;
    mn_gossip_stats(n->g[1], &st);
    assert_int_equal(st.peers_differing, 0);
    net_free(n);
}

static void test_gossip_batches_stay_bounded_and_a_large_gap_closes_in_rounds(void **state)
{
    (void)state;
    mn_gossip_config_t c;
    mn_gossip_config_default(&c);
    c.batch_max = 16;
    net *n = net_new(&c);
    for (uint64_t k = 0; k < 3000; k++)
        put(n, 0, "big", rec(k, 1));
    int rounds = 0;
    while (!same_root(n, 0, 1) && rounds < 100) {
        exchange(n, rounds % 2, 1 - rounds % 2); /* either side starts */
        rounds++;
    }
    assert_true(same_root(n, 0, 1));
    assert_true(rounds > 1);
    assert_true(n->max_records <= 16);
    net_free(n);
}

static void test_gossip_rounds_go_to_fanout_distinct_peers(void **state)
{
    (void)state;
    mn_gossip_config_t c;
    mn_gossip_config_default(&c);
    c.fanout = 2;
    net *n = net_new(&c);
    int64_t due = mn_gossip_next_deadline(n->g[0]);
    assert_true(due >= 0 && due <= c.interval_ms * 1000);
    mn_gossip_on_tick(n->g[0], due - 1); /* not yet */
    assert_int_equal(n->tail, 0);
    mn_gossip_on_tick(n->g[0], due);
    assert_int_equal(n->tail, 2);
    assert_true(n->q[0].to != n->q[1].to && n->q[0].to != 0 && n->q[1].to != 0);
    int64_t next = mn_gossip_next_deadline(n->g[0]);
    assert_true(next >= due + c.interval_ms * 900 && next <= due + c.interval_ms * 1100);
    drain(n);
    assert_int_equal(mn_gossip_set_peers(n->g[0], NULL, 0, NULL), MN_OK);
    mn_gossip_on_tick(n->g[0], next); /* no peers: a round that sends nothing */
    assert_int_equal(n->tail, 0);
    net_free(n);
}

/* A dropped space (docs/gossip.md, "Dropped spaces"): the host refuses its records and
 * those older than its incarnation; mn_gossip_drop takes them out of a copy, after which
 * the two copies agree again. */
static void test_gossip_refused_and_dropped_records_leave_copies_that_agree(void **state)
{
    (void)state;
    net *n = net_new(NULL);
    for (uint64_t k = 0; k < 10; k++)
        put(n, 0, "gone", rec_at(k, 1000 + (int64_t)k));
    put(n, 0, "kept", rec_at(1, 1000));
    put(n, 0, "kept", rec_at(2, 5000));
    n->refuser = 1, n->refuse = "gone", n->after_ms = 2000;
    exchange(n, 1, 0);
    mn_gossip_stats_t st;
    mn_gossip_stats(n->g[1], &st);
    assert_int_equal(st.entries_refused, 11); /* each offered once */
    uint8_t root[MN_GOSSIP_DIGEST_LEN];
    uint64_t count;
    mn_gossip_root(n->g[1], "gone", root, &count);
    assert_int_equal(count, 0);
    mn_gossip_root(n->g[1], "kept", root, &count);
    assert_int_equal(count, 1);
    assert_false(same_root(n, 0, 1));
    assert_int_equal(mn_gossip_drop(n->g[0], "gone", INT64_MAX), 10);
    assert_int_equal(mn_gossip_drop(n->g[0], "kept", 2000), 1);
    assert_int_equal(mn_gossip_drop(n->g[0], "nowhere", INT64_MAX), 0);
    assert_true(same_root(n, 0, 1));
    mn_gossip_stats(n->g[0], &st);
    assert_int_equal(st.entries_dropped, 11);
    mn_gossip_record_t got;
    mn_gossip_record_t kept = rec_at(2, 5000);
    assert_int_equal(mn_gossip_get(n->g[0], "kept", &kept.id, &got), MN_OK);
    assert_true(mn_gossip_verify(n->g[0]) && mn_gossip_verify(n->g[1]));
    net_free(n);
}

static uint64_t count_of(const net *n, int node, const char *space)
{
    uint8_t root[MN_GOSSIP_DIGEST_LEN];
    uint64_t count;
    mn_gossip_root(n->g[node], space, root, &count);
    return count;
}

/* Per-space peer sets (scope "holders"): a space reaches only the nodes that hold it; two
 * nodes that agree on the spaces they share exchange one frame, whatever else each holds;
 * a peer that claims a space the other does not give it is ignored. */
static void test_gossip_per_space_peer_sets_keep_a_space_among_its_holders(void **state)
{
    (void)state;
    net *n = net_new_placed(NULL, true);
    for (uint64_t k = 0; k < 20; k++)
        put(n, 0, "ab", rec(k, 1));
    for (uint64_t k = 0; k < 10; k++)
        put(n, 0, "ac", rec(100 + k, 1));
    for (uint64_t k = 0; k < 5; k++)
        put(n, 1, "bc", rec(200 + k, 1));
    for (uint64_t k = 0; k < 3; k++) /* a copy n2 keeps of a space it no longer holds */
        put(n, 2, "ab", rec(300 + k, 1));
    for (int a = 0; a < NODES; a++)
        for (int b = 0; b < NODES; b++)
            if (a != b) exchange(n, a, b);
    assert_int_equal(count_of(n, 1, "ab"), 20);
    assert_int_equal(count_of(n, 1, "bc"), 5);
    assert_int_equal(count_of(n, 1, "ac"), 0); /* not n1's */
    assert_int_equal(count_of(n, 2, "ac"), 10);
    assert_int_equal(count_of(n, 2, "bc"), 5);
    assert_int_equal(count_of(n, 0, "bc"), 0);  /* not n0's */
    assert_int_equal(count_of(n, 0, "ab"), 20); /* n2's stale copy went nowhere */
    assert_int_equal(count_of(n, 2, "ab"), 3);  /* and took nothing */
    assert_false(same_root(n, 0, 1));           /* the whole directories differ ... */
    for (int a = 0; a < NODES; a++)             /* ... but each pair agrees on what it shares */
        for (int b = 0; b < NODES; b++) {
            if (a == b) continue;
            uint64_t before = n->frames;
            exchange(n, a, b);
            assert_int_equal(n->frames - before, 1);
        }
    n->liar = 2; /* n2 now offers its "ab" to n0 and n1: they answer nothing about it */
    for (int b = 0; b < 2; b++)
        exchange(n, 2, b);
    assert_int_equal(count_of(n, 0, "ab"), 20);
    assert_int_equal(count_of(n, 1, "ab"), 20);
    assert_int_equal(count_of(n, 2, "ab"), 3);
    assert_true(mn_gossip_verify(n->g[0]) && mn_gossip_verify(n->g[1]) &&
                mn_gossip_verify(n->g[2]));
    net_free(n);
}

/* Runs mn_gossip_check_next over one pass of g's spaces and the directory; the number of
 * failures, the last one's name in bad. */
static int check_pass(mn_gossip_t *g, char bad[MN_GOSSIP_SPACE_MAX + 1])
{
    int failed = 0;
    char one[MN_GOSSIP_SPACE_MAX + 1];
    for (size_t i = 0; i <= mn_gossip_space_count(g); i++)
        if (!mn_gossip_check_next(g, one)) {
            failed++;
            memcpy(bad, one, sizeof one);
        }
    return failed;
}

static mn__gossip_node *some_node(mn__gossip_tree *t)
{
    for (size_t i = 0; i < t->cap; i++)
        if (t->nodes[i].count) return &t->nodes[i];
    fail();
    return NULL;
}

/* The always-on check: a damaged record digest, tree node, directory entry or directory
 * tree is found within one pass, named, rebuilt from the records, and the core is then equal
 * to one that holds the same records. */
static void test_gossip_check_finds_and_repairs_a_damaged_tree(void **state)
{
    (void)state;
    net *n = net_new(NULL);
    const char *names[] = {"s1", "s2", "s3"};
    uint64_t sizes[] = {20, 5, 1};
    for (int s = 0; s < 3; s++)
        for (uint64_t k = 0; k < sizes[s]; k++)
            for (int node = 0; node < 2; node++)
                put(n, node, names[s], rec(100 * (uint64_t)s + k, 1));
    mn_gossip_t *g = n->g[0];
    char bad[MN_GOSSIP_SPACE_MAX + 1];
    assert_int_equal(check_pass(g, bad), 0);
    mn_gossip_stats_t st;
    mn_gossip_stats(g, &st);
    assert_int_equal(st.trees_checked, 4); /* the three spaces, then the first again */
    assert_int_equal(st.trees_repaired, 0);

    mn__gossip_space *s1 = mn__gossip_space_find(&g->dir, "s1", 2);
    mn__gossip_space *s2 = mn__gossip_space_find(&g->dir, "s2", 2);
    mn__gossip_space *s3 = mn__gossip_space_find(&g->dir, "s3", 2);
    s2->recs[2]->hash[0] ^= 0x01; /* a record's digest */
    assert_int_equal(check_pass(g, bad), 1);
    assert_string_equal(bad, "s2");
    some_node(&s1->tree)->digest[3] ^= 0x10; /* a node of a space's tree: found in its */
    assert_int_equal(check_pass(g, bad), 1); /* turn, or first by the directory's check */
    assert_true(!strcmp(bad, "s1") || !strcmp(bad, ""));
    s3->dir_digest[5] ^= 0x04; /* a directory entry: the same */
    assert_int_equal(check_pass(g, bad), 1);
    assert_true(!strcmp(bad, "s3") || !strcmp(bad, ""));
    some_node(&g->dir.tree)->digest[0] ^= 0x80; /* the directory's tree */
    assert_int_equal(check_pass(g, bad), 1);
    assert_string_equal(bad, "");
    mn_gossip_stats(g, &st);
    assert_true(st.trees_repaired >= 4);
    assert_true(mn_gossip_verify(g));
    assert_true(same_root(n, 0, 1)); /* as the copy that was never damaged */
    assert_int_equal(check_pass(g, bad), 0);
    net_free(n);
}

static void test_gossip_refuses_bad_configuration_and_names(void **state)
{
    (void)state;
    mn_gossip_config_t c;
    mn_error err;
    mn_gossip_config_default(&c);
    c.fanout = 0;
    assert_int_equal(mn_gossip_config_check(&c, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "gossip.fanout"));
    mn_gossip_config_default(&c);
    c.gc_horizon_ms = 1000;
    assert_int_equal(mn_gossip_config_check(&c, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "gossip.gc_horizon_ms"));
    mn_gossip_config_default(&c);
    c.batch_max = MN_WIRE_GOSSIP_MAX_RECORDS + 1;
    assert_int_equal(mn_gossip_config_check(&c, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "gossip.batch_max"));
    mn_gossip_cb_t cb = {.send = on_send};
    mn_gossip_t *g;
    assert_int_equal(mn_gossip_new("", NULL, &cb, 1, 0, &g, &err), MN_ERR_INVALID);
    assert_int_equal(mn_gossip_new("bad\nid", NULL, &cb, 1, 0, &g, &err), MN_ERR_INVALID);
    assert_int_equal(mn_gossip_new("n0", NULL, &cb, 1, 0, &g, NULL), MN_OK);
    const char *peers[] = {"n1", "n\x7f"};
    assert_int_equal(mn_gossip_set_peers(g, peers, 2, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "peers[1]"));
    mn_gossip_record_t r = rec(1, 1);
    assert_int_equal(mn_gossip_put(g, "", &r, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "space"));
    assert_int_equal(mn_gossip_space_count(g), 0);
    mn_gossip_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gossip_one_exchange_brings_both_sides_to_the_join),
        cmocka_unit_test(test_gossip_nodes_that_agree_exchange_one_frame),
        cmocka_unit_test(test_gossip_batches_stay_bounded_and_a_large_gap_closes_in_rounds),
        cmocka_unit_test(test_gossip_rounds_go_to_fanout_distinct_peers),
        cmocka_unit_test(test_gossip_refused_and_dropped_records_leave_copies_that_agree),
        cmocka_unit_test(test_gossip_per_space_peer_sets_keep_a_space_among_its_holders),
        cmocka_unit_test(test_gossip_check_finds_and_repairs_a_damaged_tree),
        cmocka_unit_test(test_gossip_refuses_bad_configuration_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
