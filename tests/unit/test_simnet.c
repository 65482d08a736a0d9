/* simnet engine: a generic "echo" core plugged into the simulator shows that
 * the same seed replays the same trace, and that loss, delay, duplication,
 * reordering, partitions, crash, restart and pause behave as configured. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/simnet.h"

/* The echo core: sends `burst` numbered datagrams to `peer`, one every
 * `every_us`, and records what it receives. */
typedef struct echo {
    mn_simnet_t *net;
    int node, peer;
    int burst, sent;
    int64_t every_us, next;
    int64_t created_at;
    uint64_t seed;
    int got;
    int64_t got_at[20000];
    uint32_t got_seq[20000];
    int ticks;
} echo;

typedef struct echo_cfg {
    int peer, burst;
    int64_t every_us;
    int creates, destroys;
    echo *last; /* the live core */
    bool stuck; /* next_deadline always in the past */
} echo_cfg;

static void *echo_create(void *arg, mn_simnet_t *net, int node, int64_t now, uint64_t seed)
{
    echo_cfg *c = arg;
    echo *e = calloc(1, sizeof *e);
    e->net = net;
    e->node = node;
    e->peer = c->peer;
    e->burst = c->burst;
    e->every_us = c->every_us;
    e->next = c->burst ? now : INT64_MAX;
    e->created_at = now;
    e->seed = seed;
    c->creates++;
    c->last = e;
    return e;
}

static void echo_destroy(void *arg, void *core)
{
    echo_cfg *c = arg;
    c->destroys++;
    if (c->last == core) c->last = NULL;
    free(core);
}

static void echo_packet(void *core, int64_t now, const mn_swim_addr_t *from, const uint8_t *buf,
                        size_t len)
{
    echo *e = core;
    if (e->got < 20000 && len >= 4) {
        e->got_at[e->got] = now;
        e->got_seq[e->got] = mn_get_be32(buf);
        e->got++;
    }
}

static void echo_tick(void *core, int64_t now)
{
    echo *e = core;
    e->ticks++;
    if (e->sent < e->burst && now >= e->next) {
        uint8_t buf[64];
        memset(buf, 0, sizeof buf);
        mn_put_be32(buf, (uint32_t)e->sent);
        mn_put_be64(buf + 4, (uint64_t)now);
        mn_swim_addr_t to = mn_simnet_addr(e->net, e->peer);
        mn_simnet_send(e->net, e->node, &to, buf, sizeof buf);
        e->sent++;
        e->next = now + e->every_us;
    }
}

static int64_t echo_deadline(void *core)
{
    echo *e = core;
    return e->sent < e->burst ? e->next : INT64_MAX;
}

static int64_t stuck_deadline(void *core)
{
    (void)core;
    return 0;
}

static const mn_simnet_core_ops_t echo_ops = {
    .create = echo_create,
    .destroy = echo_destroy,
    .on_packet = echo_packet,
    .on_tick = echo_tick,
    .next_deadline = echo_deadline,
};

/* Two nodes: 0 sends `burst` datagrams to 1 every `every_us`. */
typedef struct pair {
    mn_simnet_t *net;
    echo_cfg c[2];
} pair;

static void pair_init(pair *p, uint64_t seed, const mn_simnet_link_t *l, int burst,
                      int64_t every_us)
{
    memset(p, 0, sizeof *p);
    p->net = mn_simnet_new(seed, l);
    assert_non_null(p->net);
    p->c[0] = (echo_cfg){.peer = 1, .burst = burst, .every_us = every_us};
    p->c[1] = (echo_cfg){.peer = 0};
    assert_int_equal(mn_simnet_add_node(p->net, &echo_ops, &p->c[0]), 0);
    assert_int_equal(mn_simnet_add_node(p->net, &echo_ops, &p->c[1]), 1);
    mn_simnet_start(p->net, 0);
    mn_simnet_start(p->net, 1);
}

static void test_simnet_same_seed_replays_the_same_trace(void **state)
{
    (void)state;
    mn_simnet_link_t l = {.latency_us = 300,
                          .jitter_us = 500,
                          .loss = 0.2,
                          .dup = 0.1,
                          .reorder = 0.2,
                          .reorder_us = 3000};
    uint64_t h[3];
    uint64_t seeds[3] = {11, 11, 12};
    for (int r = 0; r < 3; r++) {
        pair p;
        pair_init(&p, seeds[r], &l, 500, 1000);
        mn_simnet_run_until(p.net, 200000);
        mn_simnet_crash(p.net, 1);
        mn_simnet_run_until(p.net, 300000);
        mn_simnet_start(p.net, 1);
        mn_simnet_run_until(p.net, 600000);
        h[r] = mn_simnet_trace_hash(p.net);
        mn_simnet_free(p.net);
    }
    assert_true(h[0] == h[1]);
    assert_true(h[0] != h[2]);

    /* the SWIM harness: same seed, same outcome and trace */
    mn_simswim_opts_t o;
    mn_simswim_opts_default(&o);
    o.nodes = 20;
    o.seed = 3;
    o.steady_ms = 3000;
    o.link.loss = 0.05;
    mn_simswim_result_t a, b, c;
    mn_error err;
    assert_int_equal(mn_simswim_run(&o, MN_SIMSWIM_CRASH, &a, &err), MN_OK);
    assert_int_equal(mn_simswim_run(&o, MN_SIMSWIM_CRASH, &b, &err), MN_OK);
    o.seed = 4;
    assert_int_equal(mn_simswim_run(&o, MN_SIMSWIM_CRASH, &c, &err), MN_OK);
    assert_true(a.trace_hash == b.trace_hash);
    assert_true(a.trace_hash != c.trace_hash);
    assert_int_equal(a.n_faults, 1);
    assert_true(a.detect_all_s[0] == b.detect_all_s[0]);
    assert_true(a.msgs_per_node_s == b.msgs_per_node_s);
    mn_simswim_result_clear(&a);
    mn_simswim_result_clear(&b);
    mn_simswim_result_clear(&c);
}

static void test_simnet_loss_drops_the_configured_fraction(void **state)
{
    (void)state;
    mn_simnet_link_t l = {.latency_us = 100, .loss = 0.25};
    pair p;
    pair_init(&p, 5, &l, 10000, 100);
    mn_simnet_run_until(p.net, 2000000);
    mn_simnet_stats_t st;
    mn_simnet_stats(p.net, 0, &st);
    assert_int_equal(st.sent, 10000);
    assert_int_equal(st.lost + st.delivered, 10000);
    int got = p.c[1].last->got;
    assert_int_equal((uint64_t)got, st.delivered);
    assert_true(got > 7250 && got < 7750);
    mn_simnet_free(p.net);
}

static void test_simnet_delay_is_latency_plus_exponential_jitter(void **state)
{
    (void)state;
    mn_simnet_link_t l = {.latency_us = 1000, .jitter_us = 500};
    pair p;
    pair_init(&p, 6, &l, 5000, 100);
    mn_simnet_run_until(p.net, 5000000);
    echo *rx = p.c[1].last;
    assert_int_equal(rx->got, 5000);
    double sum = 0;
    int64_t maxd = 0;
    for (int i = 0; i < rx->got; i++) {
        int64_t sent_at = (int64_t)rx->got_seq[i] * 100;
        int64_t d = rx->got_at[i] - sent_at;
        assert_true(d >= 1000);
        sum += (double)d;
        if (d > maxd) maxd = d;
    }
    double mean = sum / rx->got;
    assert_true(mean > 1450 && mean < 1550);
    assert_true(maxd > 3000); /* the exponential tail is there */
    mn_simnet_free(p.net);
}

static void test_simnet_duplicates_and_reorders(void **state)
{
    (void)state;
    mn_simnet_link_t l = {.latency_us = 100, .dup = 0.5, .reorder = 0.3, .reorder_us = 5000};
    pair p;
    pair_init(&p, 7, &l, 2000, 1000);
    mn_simnet_run_until(p.net, 3000000);
    echo *rx = p.c[1].last;
    assert_true(rx->got > 2800 && rx->got < 3200);
    int inversions = 0;
    for (int i = 1; i < rx->got; i++)
        inversions += rx->got_seq[i] < rx->got_seq[i - 1];
    assert_true(inversions > 100);
    mn_simnet_stats_t st;
    mn_simnet_stats(p.net, -1, &st);
    assert_int_equal(st.delivered, (uint64_t)rx->got);
    assert_true(st.duplicated > 800);
    mn_simnet_free(p.net);
}

static void test_simnet_partitions_cut_both_or_one_direction(void **state)
{
    (void)state;
    mn_simnet_link_t l = {.latency_us = 100};
    mn_simnet_t *net = mn_simnet_new(8, &l);
    echo_cfg c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (echo_cfg){.peer = (i + 2) % 4, .burst = 1000000, .every_us = 1000};
        mn_simnet_add_node(net, &echo_ops, &c[i]);
        mn_simnet_start(net, i);
    }
    int group[4] = {0, 0, 1, 1}; /* 0 <-> 2 and 1 <-> 3 talk across */
    mn_simnet_partition(net, group, false);
    assert_true(mn_simnet_cut(net, 0, 2) && mn_simnet_cut(net, 2, 0));
    assert_false(mn_simnet_cut(net, 0, 1));
    mn_simnet_run_until(net, 100000);
    for (int i = 0; i < 4; i++)
        assert_true(c[i].last->got <= 1);  /* one may be in flight */
    mn_simnet_partition(net, group, true); /* one-way: group 0 -> 1 dropped only */
    int before[4];
    for (int i = 0; i < 4; i++)
        before[i] = c[i].last->got;
    mn_simnet_run_until(net, 200000);
    assert_true(c[2].last->got - before[2] <= 1); /* 0 -> 2 still cut */
    assert_true(c[0].last->got - before[0] > 90); /* 2 -> 0 flows */
    mn_simnet_heal(net);
    mn_simnet_block(net, 1, 3, true); /* a single one-way block */
    for (int i = 0; i < 4; i++)
        before[i] = c[i].last->got;
    mn_simnet_run_until(net, 300000);
    assert_true(c[2].last->got - before[2] > 90);
    assert_true(c[3].last->got - before[3] <= 1);
    assert_true(c[1].last->got - before[1] > 90);
    mn_simnet_block(net, 1, 3, false);
    assert_false(mn_simnet_cut(net, 1, 3));
    mn_simnet_stats_t st;
    mn_simnet_stats(net, -1, &st);
    assert_true(st.blocked > 300);
    mn_simnet_free(net);
}

static void test_simnet_crash_restart_and_pause(void **state)
{
    (void)state;
    mn_simnet_link_t l = {.latency_us = 100};
    pair p;
    pair_init(&p, 9, &l, 1000000, 1000);
    mn_simnet_run_until(p.net, 50000);
    uint64_t seed1 = p.c[1].last->seed;
    mn_simnet_crash(p.net, 1);
    assert_int_equal(mn_simnet_state(p.net, 1), MN_SIMNET_DOWN);
    assert_null(mn_simnet_core(p.net, 1));
    assert_int_equal(p.c[1].destroys, 1);
    mn_simnet_run_until(p.net, 100000);
    mn_simnet_stats_t st;
    mn_simnet_stats(p.net, 0, &st);
    assert_true(st.to_down >= 49);
    /* restart: a new core with a fresh seed, created at the current time */
    mn_simnet_start(p.net, 1);
    assert_int_equal(p.c[1].creates, 2);
    assert_true(p.c[1].last->seed != seed1);
    assert_int_equal(p.c[1].last->created_at, 100000);
    mn_simnet_run_until(p.net, 150000);
    assert_true(p.c[1].last->got >= 49);
    /* pause the sender: no ticks, so it sends nothing */
    int ticks = p.c[0].last->ticks;
    mn_simnet_pause(p.net, 0);
    mn_simnet_run_until(p.net, 250000);
    assert_int_equal(p.c[0].last->ticks, ticks);
    mn_simnet_resume(p.net, 0);
    mn_simnet_run_until(p.net, 260000);
    assert_true(p.c[0].last->ticks > ticks);
    /* pause the receiver: datagrams wait and all arrive at the resume instant */
    int got = p.c[1].last->got;
    mn_simnet_pause(p.net, 1);
    mn_simnet_run_until(p.net, 360000);
    assert_int_equal(p.c[1].last->got, got);
    mn_simnet_resume(p.net, 1);
    assert_true(p.c[1].last->got >= got + 99);
    for (int i = got; i < p.c[1].last->got; i++)
        assert_int_equal(p.c[1].last->got_at[i], 360000);
    mn_simnet_free(p.net);
}

static void test_simnet_time_advances_even_if_a_core_is_always_due(void **state)
{
    (void)state;
    mn_simnet_core_ops_t ops = echo_ops;
    ops.next_deadline = stuck_deadline;
    echo_cfg c = {.peer = 0};
    mn_simnet_t *net = mn_simnet_new(1, NULL);
    mn_simnet_add_node(net, &ops, &c);
    mn_simnet_start(net, 0);
    mn_simnet_run_until(net, 1000);
    assert_int_equal(mn_simnet_now(net), 1000);
    /* one tick per microsecond at most, and the run ended */
    assert_true(c.last->ticks >= 1000 && c.last->ticks <= 1001);
    mn_simnet_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simnet_same_seed_replays_the_same_trace),
        cmocka_unit_test(test_simnet_loss_drops_the_configured_fraction),
        cmocka_unit_test(test_simnet_delay_is_latency_plus_exponential_jitter),
        cmocka_unit_test(test_simnet_duplicates_and_reorders),
        cmocka_unit_test(test_simnet_partitions_cut_both_or_one_direction),
        cmocka_unit_test(test_simnet_crash_restart_and_pause),
        cmocka_unit_test(test_simnet_time_advances_even_if_a_core_is_always_due),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
