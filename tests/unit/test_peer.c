/* peer bus (peer/): buses on one loop over 127.0.0.1 (ephemeral ports)
 * exchange frames both ways, redial after the other end restarts, refuse a
 * wrong key, close a peer that sends garbage (crafted and random), an oversize
 * length or nothing at all, keep a peer's queue within its bound, and ignore unknown channels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "mnemo/peer.h"
#include "mnemo/util.h"
#include "peer_fixture.h"

static mn_peer_t *bus(uv_loop_t *loop, const char *id, const char *key, int port)
{
    mn_peer_config_t c;
    test_peer_config(&c, id, key, port);
    return test_peer_new(loop, &c);
}

static void test_peer_three_buses_exchange_frames_both_ways(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mn_peer_t *p[3] = {bus(&loop, "a", "secret", 0), bus(&loop, "b", "secret", 0),
                       bus(&loop, "c", "secret", 0)};
    const char *ids[3] = {"a", "b", "c"};
    inbox in[3];
    memset(in, 0, sizeof in);
    for (int i = 0; i < 3; i++) {
        mn_peer_on(p[i], MN_PEER_CH_REPL, on_frame, &in[i]);
        for (int j = 0; j < 3; j++)
            if (i != j) link_to(p[i], ids[j], p[j]);
    }
    /* queued before any connection is up: delivered once authenticated */
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j)
                assert_int_equal(
                    mn_peer_send(p[i], ids[j], MN_PEER_CH_REPL, (const uint8_t *)ids[i], 1), MN_OK);
    for (int i = 0; i < 3; i++) {
        want w = {&in[i], 2};
        assert_true(run_until(&loop, got, &w));
    }
    assert_true(mn_peer_connected(p[0], "b"));
    /* the sender's id is the authenticated one */
    assert_int_equal(mn_peer_send(p[1], "a", MN_PEER_CH_REPL, (const uint8_t *)"hello", 5), MN_OK);
    want w = {&in[0], 3};
    assert_true(run_until(&loop, got, &w));
    assert_string_equal(in[0].last_from, "b");
    assert_memory_equal(in[0].last, "hello", 5);
    mn_peer_stats_t st;
    mn_peer_stats(p[0], &st);
    assert_int_equal(st.handshakes, 4); /* two dialled, two accepted */
    assert_int_equal(st.closed_auth + st.closed_hello + st.closed_protocol, 0);
    /* bad sends are refused, not queued */
    assert_int_equal(mn_peer_send(p[0], "zz", MN_PEER_CH_REPL, (const uint8_t *)"x", 1),
                     MN_ERR_NOT_FOUND);
    assert_int_equal(mn_peer_send(p[0], "b", 0, (const uint8_t *)"x", 1), MN_ERR_INVALID);
    uint8_t big[2048] = {0};
    assert_int_equal(mn_peer_send(p[0], "b", 1, big, sizeof big), MN_ERR_INVALID);
    finish(&loop, p, 3);
}

/* Buses "a" and "b" (key: NULL for none), a linked to b, and frame "1" from a in b's
 * inbox in. */
static void pair_delivering(uv_loop_t *loop, const char *key, mn_peer_t **a, mn_peer_t **b,
                            inbox *in)
{
    uv_loop_init(loop);
    *a = bus(loop, "a", key, 0);
    *b = bus(loop, "b", key, 0);
    memset(in, 0, sizeof *in);
    mn_peer_on(*b, MN_PEER_CH_REPL, on_frame, in);
    link_to(*a, "b", *b);
    mn_peer_send(*a, "b", MN_PEER_CH_REPL, (const uint8_t *)"1", 1);
    want w = {in, 1};
    assert_true(run_until(loop, got, &w));
}

static void test_peer_redials_after_the_other_end_restarts(void **state)
{
    (void)state;
    uv_loop_t loop;
    mn_peer_t *a, *b;
    inbox in;
    pair_delivering(&loop, NULL, &a, &b, &in);
    want w = {&in, 1};
    int port = mn_peer_port(b);
    mn_peer_close(b, NULL, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    /* b comes back on the same port: a redials with backoff and delivers */
    b = bus(&loop, "b", NULL, port);
    memset(&in, 0, sizeof in);
    mn_peer_on(b, MN_PEER_CH_REPL, on_frame, &in);
    want_stat ws = STAT(a, handshakes, 2);
    assert_true(run_until(&loop, stat_reached, &ws));
    mn_peer_send(a, "b", MN_PEER_CH_REPL, (const uint8_t *)"2", 1);
    assert_true(run_until(&loop, got, &w));
    assert_memory_equal(in.last, "2", 1);
    mn_peer_stats_t st;
    mn_peer_stats(a, &st);
    assert_true(st.dialed >= 2);
    mn_peer_t *ps[2] = {a, b};
    finish(&loop, ps, 2);
}

/* A node back alive (SWIM saw it dead) is redialled at once: the outbound connection, which
 * TCP may hold in retransmission backoff long after a partition healed, is replaced by a new
 * one, and frames flow over it. An unknown node is no-op. */
static void test_peer_redial_replaces_the_outbound_connection_at_once(void **state)
{
    (void)state;
    uv_loop_t loop;
    mn_peer_t *a, *b;
    inbox in;
    pair_delivering(&loop, "secret", &a, &b, &in);
    want w = {&in, 1};
    mn_peer_redial(a, "nobody");
    mn_peer_redial(a, "b");
    want_stat ws = STAT(a, handshakes, 2);
    assert_true(run_until(&loop, stat_reached, &ws));
    mn_peer_send(a, "b", MN_PEER_CH_REPL, (const uint8_t *)"2", 1);
    w.frames = 2;
    assert_true(run_until(&loop, got, &w));
    assert_memory_equal(in.last, "2", 1);
    mn_peer_stats_t st;
    mn_peer_stats(a, &st);
    assert_int_equal(st.redialed, 1);
    assert_int_equal(st.dialed, 2);
    mn_peer_t *ps[2] = {a, b};
    finish(&loop, ps, 2);
}

static void test_peer_refuses_a_wrong_key_and_a_missing_one(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mn_peer_t *a = bus(&loop, "a", "right", 0), *b = bus(&loop, "b", "wrong", 0),
              *c = bus(&loop, "c", NULL, 0);
    inbox in = {0};
    mn_peer_on(b, MN_PEER_CH_REPL, on_frame, &in);
    mn_peer_on(c, MN_PEER_CH_REPL, on_frame, &in);
    link_to(a, "b", b);
    link_to(a, "c", c);
    mn_peer_send(a, "b", MN_PEER_CH_REPL, (const uint8_t *)"x", 1);
    mn_peer_send(a, "c", MN_PEER_CH_REPL, (const uint8_t *)"x", 1);
    want_stat wb = STAT(b, closed_auth, 2), wc = STAT(c, closed_auth, 2);
    assert_true(run_until(&loop, stat_reached, &wb)); /* a redials: refused each time */
    assert_true(run_until(&loop, stat_reached, &wc));
    assert_int_equal(in.frames, 0);
    assert_false(mn_peer_connected(a, "b"));
    mn_peer_stats_t st;
    mn_peer_stats(b, &st);
    assert_int_equal(st.handshakes, 0);
    mn_peer_t *ps[3] = {a, b, c};
    finish(&loop, ps, 3);
}

/* A raw client: connects, writes bytes, returns the socket (loop not needed:
 * the kernel completes a loopback connect on its own). */
static int raw_send(int port, const void *buf, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    if (len) assert_int_equal(write(fd, buf, len), (ssize_t)len);
    return fd;
}

static uint64_t closed_total(const mn_peer_stats_t *st)
{
    return st->closed_auth + st->closed_hello + st->closed_oversize + st->closed_protocol +
           st->closed_timeout + st->closed_io;
}

typedef struct closes_since {
    mn_peer_t *p;
    uint64_t at_least;
} closes_since;

static bool closed_enough(void *arg)
{
    closes_since *c = arg;
    mn_peer_stats_t st;
    mn_peer_stats(c->p, &st);
    return closed_total(&st) >= c->at_least;
}

static void test_peer_closes_garbage_oversize_and_silent_peers(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mn_peer_t *b = bus(&loop, "b", "secret", 0);
    int port = mn_peer_port(b);
    /* an oversize length before authentication */
    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 1};
    int f1 = raw_send(port, huge, sizeof huge);
    want_stat w = STAT(b, closed_oversize, 1);
    assert_true(run_until(&loop, stat_reached, &w));
    /* a user frame before any hello */
    const uint8_t early[] = {0, 0, 0, 2, 1, 'x'};
    int f2 = raw_send(port, early, sizeof early);
    w = STAT(b, closed_protocol, 1);
    assert_true(run_until(&loop, stat_reached, &w));
    /* a malformed hello (too short, bad id length) */
    const uint8_t bad_hello[] = {0, 0, 0, 5, 0, 1, 1, 0, 0};
    int f3 = raw_send(port, bad_hello, sizeof bad_hello);
    w = STAT(b, closed_hello, 1);
    assert_true(run_until(&loop, stat_reached, &w));
    /* a hello of another major version */
    mn_peer_hello_t h = {.major = MN_PEER_VERSION_MAJOR + 1, .keyed = true};
    snprintf(h.node, sizeof h.node, "x");
    uint8_t frame[128];
    size_t n = mn_peer_hello_encode(&h, frame + 5, sizeof frame - 5);
    frame[0] = frame[1] = frame[2] = 0;
    frame[3] = (uint8_t)(n + 1);
    frame[4] = 0;
    int f4 = raw_send(port, frame, n + 5);
    w = STAT(b, closed_hello, 2);
    assert_true(run_until(&loop, stat_reached, &w));
    /* a valid hello, then a forged proof */
    h.major = MN_PEER_VERSION_MAJOR;
    n = mn_peer_hello_encode(&h, frame + 5, sizeof frame - 5);
    frame[3] = (uint8_t)(n + 1);
    uint8_t proof[5 + 1 + MN_PEER_MAC_LEN] = {0, 0, 0, 2 + MN_PEER_MAC_LEN, 0, 2};
    int f5 = raw_send(port, frame, n + 5);
    assert_int_equal(write(f5, proof, sizeof proof), (ssize_t)sizeof proof);
    w = STAT(b, closed_auth, 1);
    assert_true(run_until(&loop, stat_reached, &w));
    /* slowloris: half a header, then nothing */
    int f6 = raw_send(port, "\0\0", 2);
    w = STAT(b, closed_timeout, 1);
    assert_true(run_until(&loop, stat_reached, &w));
    /* every one of them was hung up on: reading gives EOF */
    int fds[] = {f1, f2, f3, f4, f5, f6};
    for (size_t i = 0; i < 6; i++) {
        char buf[256];
        ssize_t r;
        while ((r = read(fds[i], buf, sizeof buf)) > 0) /* our hello, then EOF */
            ;
        assert_true(r <= 0);
        close(fds[i]);
    }
    /* random bytes, 40 connections: each is closed, whatever the cause */
    mn_peer_stats_t before;
    mn_peer_stats(b, &before);
    mn_prng_t prng;
    mn_prng_seed(&prng, 7);
    int junk[40];
    for (int i = 0; i < 40; i++) {
        uint8_t bytes[300];
        size_t len = 1 + mn_prng_below(&prng, sizeof bytes);
        for (size_t k = 0; k < len; k++)
            bytes[k] = (uint8_t)mn_prng_next(&prng);
        junk[i] = raw_send(port, bytes, len);
    }
    closes_since cs = {b, closed_total(&before) + 40};
    assert_true(run_until(&loop, closed_enough, &cs));
    mn_peer_stats_t after;
    mn_peer_stats(b, &after);
    assert_int_equal(after.handshakes, before.handshakes);
    for (int i = 0; i < 40; i++)
        close(junk[i]);
    /* and the bus still works */
    mn_peer_t *a = bus(&loop, "a", "secret", 0);
    inbox in = {0};
    mn_peer_on(b, MN_PEER_CH_REPL, on_frame, &in);
    link_to(a, "b", b);
    mn_peer_send(a, "b", MN_PEER_CH_REPL, (const uint8_t *)"ok", 2);
    want wi = {&in, 1};
    assert_true(run_until(&loop, got, &wi));
    mn_peer_t *ps[2] = {a, b};
    finish(&loop, ps, 2);
}

static void test_peer_queue_is_bounded_and_unknown_channels_are_ignored(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mn_peer_t *a = bus(&loop, "a", NULL, 0), *b = bus(&loop, "b", NULL, 0);
    /* an address where nothing listens: frames wait, up to the bound */
    mn_peer_t *gone = bus(&loop, "gone", NULL, 0);
    int dead_port = mn_peer_port(gone);
    mn_peer_close(gone, NULL, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    mn_error err;
    assert_int_equal(mn_peer_set_addr(a, "b", "127.0.0.1", dead_port, &err), MN_OK);
    uint8_t buf[100] = {0};
    int ok = 0, busy = 0;
    for (int i = 0; i < 100; i++) {
        mn_err rc = mn_peer_send(a, "b", MN_PEER_CH_REPL, buf, sizeof buf);
        ok += rc == MN_OK;
        busy += rc == MN_ERR_BUSY;
    }
    assert_int_equal(ok, 4096 / 105);
    assert_int_equal(busy, 100 - ok);
    assert_true(mn_peer_queued(a, "b") <= 4096);
    mn_peer_stats_t st;
    mn_peer_stats(a, &st);
    assert_int_equal(st.dropped_queue_full, (uint64_t)busy);
    /* the right address: what waited is delivered; channel 9 has no receiver */
    inbox in = {0};
    mn_peer_on(b, MN_PEER_CH_REPL, on_frame, &in);
    mn_peer_send(a, "b", 9, buf, 1); /* queue full: dropped */
    link_to(a, "b", b);
    want w = {&in, ok};
    assert_true(run_until(&loop, got, &w));
    assert_int_equal(mn_peer_send(a, "b", 9, buf, 1), MN_OK);
    want_stat ws = STAT(b, dropped_unknown_channel, 1);
    assert_true(run_until(&loop, stat_reached, &ws));
    assert_int_equal(mn_peer_queued(a, "b"), 0);
    /* forgetting an address drops the connection */
    assert_int_equal(mn_peer_set_addr(a, "b", NULL, 0, &err), MN_OK);
    assert_false(mn_peer_connected(a, "b"));
    assert_int_equal(mn_peer_send(a, "b", 1, buf, 1), MN_ERR_NOT_FOUND);
    assert_int_equal(mn_peer_set_addr(a, "b", "not-an-ip", 1, &err), MN_ERR_INVALID);
    mn_peer_t *ps[2] = {a, b};
    finish(&loop, ps, 2);
}

/* Rolling upgrades: a node one minor version ahead (mn_peer_config_t.minor)
 * and one at the current minor authenticate and exchange frames both ways. */
static void test_peer_nodes_one_minor_apart_keep_working(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mn_peer_config_t c;
    test_peer_config(&c, "new", "secret", 0);
    c.minor = MN_PEER_VERSION_MINOR + 1;
    mn_peer_t *p[2] = {test_peer_new(&loop, &c), bus(&loop, "old", "secret", 0)};
    inbox in[2];
    memset(in, 0, sizeof in);
    mn_peer_on(p[0], MN_PEER_CH_REPL, on_frame, &in[0]);
    mn_peer_on(p[1], MN_PEER_CH_REPL, on_frame, &in[1]);
    link_to(p[0], "old", p[1]);
    link_to(p[1], "new", p[0]);
    mn_peer_send(p[0], "old", MN_PEER_CH_REPL, (const uint8_t *)"n", 1);
    mn_peer_send(p[1], "new", MN_PEER_CH_REPL, (const uint8_t *)"o", 1);
    want w0 = {&in[0], 1}, w1 = {&in[1], 1};
    assert_true(run_until(&loop, got, &w0));
    assert_true(run_until(&loop, got, &w1));
    assert_memory_equal(in[1].last, "n", 1);
    mn_peer_stats_t st;
    mn_peer_stats(p[1], &st);
    assert_int_equal(st.closed_hello, 0);
    finish(&loop, p, 2);
}

static void test_peer_hello_round_trips_and_proofs_differ_by_direction(void **state)
{
    (void)state;
    mn_peer_hello_t a = {.major = 1, .minor = 7, .keyed = true}, b = a, d;
    snprintf(a.node, sizeof a.node, "node-a");
    snprintf(b.node, sizeof b.node, "node-b");
    memset(a.nonce, 1, sizeof a.nonce);
    memset(b.nonce, 2, sizeof b.nonce);
    uint8_t buf[128];
    size_t n = mn_peer_hello_encode(&a, buf, sizeof buf);
    assert_true(n > 0);
    /* a newer minor may append fields: still read */
    buf[n] = 0xee;
    assert_int_equal(mn_peer_hello_decode(buf, n + 1, &d), MN_OK);
    assert_string_equal(d.node, "node-a");
    assert_int_equal(d.minor, 7);
    assert_true(d.keyed);
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(mn_peer_hello_decode(buf, cut, &d), MN_ERR_INVALID);
    uint8_t m1[MN_PEER_MAC_LEN], m2[MN_PEER_MAC_LEN], m3[MN_PEER_MAC_LEN];
    assert_int_equal(mn_peer_proof("k", &a, &b, m1), MN_OK);
    assert_int_equal(mn_peer_proof("k", &b, &a, m2), MN_OK);
    assert_int_equal(mn_peer_proof("k2", &a, &b, m3), MN_OK);
    assert_memory_not_equal(m1, m2, sizeof m1);
    assert_memory_not_equal(m1, m3, sizeof m1);
    assert_int_equal(mn_peer_proof("", &a, &b, m3), MN_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peer_hello_round_trips_and_proofs_differ_by_direction),
        cmocka_unit_test(test_peer_three_buses_exchange_frames_both_ways),
        cmocka_unit_test(test_peer_redials_after_the_other_end_restarts),
        cmocka_unit_test(test_peer_redial_replaces_the_outbound_connection_at_once),
        cmocka_unit_test(test_peer_refuses_a_wrong_key_and_a_missing_one),
        cmocka_unit_test(test_peer_closes_garbage_oversize_and_silent_peers),
        cmocka_unit_test(test_peer_queue_is_bounded_and_unknown_channels_are_ignored),
        cmocka_unit_test(test_peer_nodes_one_minor_apart_keep_working),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
