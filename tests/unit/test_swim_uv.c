/* swim libuv adapter: three nodes on 127.0.0.1 (ephemeral ports) in one loop
 * join through a seed given by name, see each other alive, notice a closed
 * ("crashed") node as dead and a stopped one as left; a seed name resolving
 * to several addresses counts as several seeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <uv.h>

#include "mnemo/swim_uv.h"
#include "mnemo/util.h"

typedef struct node {
    mn_swim_uv_t *u;
    bool closed;
} node;

static void on_closed(void *arg)
{
    ((node *)arg)->closed = true;
}

static int state_of(node *n, const char *id)
{
    mn_swim_member_info_t mi;
    if (!n->u || !mn_swim_member_find(mn_swim_uv_core(n->u), id, &mi)) return -1;
    return mi.state;
}

typedef bool (*cond_fn)(node *ns);

static void wake_cb(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until cond holds or 15 s of wall time pass. */
static bool run_until(uv_loop_t *loop, node *ns, cond_fn cond)
{
    int64_t deadline = mn_time_mono_ns() + 15LL * 1000000000;
    uv_timer_t wake; /* bounds each loop pass */
    uv_timer_init(loop, &wake);
    bool ok = false;
    while (mn_time_mono_ns() < deadline) {
        if (cond(ns)) {
            ok = true;
            break;
        }
        uv_timer_start(&wake, wake_cb, 20, 0);
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

static bool all_alive(node *ns)
{
    const char *ids[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j && state_of(&ns[i], ids[j]) != MN_SWIM_ALIVE) return false;
    return true;
}

static bool c_dead(node *ns)
{
    return state_of(&ns[0], "c") == MN_SWIM_DEAD && state_of(&ns[1], "c") == MN_SWIM_DEAD &&
           ns[2].closed;
}

static bool b_left(node *ns)
{
    return state_of(&ns[0], "b") == MN_SWIM_LEFT && ns[1].closed;
}

static void test_swim_uv_nodes_join_detect_a_crash_and_a_leave(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    mn_swim_config_t c;
    mn_swim_config_profile("fast", &c);
    node ns[3];
    memset(ns, 0, sizeof ns);
    mn_error err;
    mn_swim_uv_opts_t o = {
        .node_id = "a", .bind = "127.0.0.1", .port = 0, .key = "secret", .config = c};
    assert_int_equal(mn_swim_uv_start(&loop, &o, &ns[0].u, &err), MN_OK);
    mn_swim_addr_t a = mn_swim_uv_addr(ns[0].u);
    assert_int_equal(a.family, 4);
    assert_true(a.port != 0);
    char seed[64];
    snprintf(seed, sizeof seed, "localhost:%u", a.port); /* a name, resolved */
    const char *seeds[] = {seed};
    o.seeds = seeds;
    o.n_seeds = 1;
    o.node_id = "b";
    assert_int_equal(mn_swim_uv_start(&loop, &o, &ns[1].u, &err), MN_OK);
    o.node_id = "c";
    assert_int_equal(mn_swim_uv_start(&loop, &o, &ns[2].u, &err), MN_OK);
    assert_true(run_until(&loop, ns, all_alive));

    /* c vanishes without a word: the others declare it dead */
    mn_swim_uv_close(ns[2].u, on_closed, &ns[2]);
    ns[2].u = NULL;
    assert_true(run_until(&loop, ns, c_dead));

    /* b leaves gracefully: a sees it as left */
    mn_swim_uv_stop(ns[1].u, 2000, on_closed, &ns[1]);
    ns[1].u = NULL;
    assert_true(run_until(&loop, ns, b_left));

    /* a bad bind is an error value */
    o.node_id = "d";
    o.bind = "not-an-ip";
    mn_swim_uv_t *bad = NULL;
    assert_int_equal(mn_swim_uv_start(&loop, &o, &bad, &err), MN_ERR_INVALID);
    assert_null(bad);
    o.bind = "127.0.0.1";
    o.port = a.port; /* taken */
    assert_int_equal(mn_swim_uv_start(&loop, &o, &bad, &err), MN_ERR_IO);

    mn_swim_uv_close(ns[0].u, on_closed, &ns[0]);
    for (int i = 0; i < 100 && !ns[0].closed; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_true(ns[0].closed);
    uv_run(&loop, UV_RUN_DEFAULT); /* nothing left but closing handles */
    assert_int_equal(uv_loop_close(&loop), 0);
}

static mn_swim_addr_t sent_to[16];
static size_t n_sent_to;

static void capture_send(void *u, const mn_swim_addr_t *to, const uint8_t *b, size_t l)
{
    (void)u;
    (void)b;
    (void)l;
    for (size_t i = 0; i < n_sent_to; i++)
        if (mn_swim_addr_equal(&sent_to[i], to)) return;
    if (n_sent_to < 16) sent_to[n_sent_to++] = *to;
}

static void test_swim_uv_a_name_with_two_addresses_is_two_seeds(void **state)
{
    (void)state;
    /* what getaddrinfo gives for a name with two A records, each twice (one
     * per socket type), one AAAA record, and entries the adapter cannot use */
    struct sockaddr_in a1 = {.sin_family = AF_INET}, a2 = {.sin_family = AF_INET};
    a1.sin_addr.s_addr = htonl(0x0a000001); /* 10.0.0.1 */
    a2.sin_addr.s_addr = htonl(0x0a000002); /* 10.0.0.2 */
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    a6.sin6_addr.s6_addr[15] = 1; /* ::1 */
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct addrinfo ai[7];
    memset(ai, 0, sizeof ai);
    const struct sockaddr *sas[7] = {(struct sockaddr *)&a1, (struct sockaddr *)&a1,
                                     (struct sockaddr *)&a2, (struct sockaddr *)&a2,
                                     (struct sockaddr *)&un, NULL,
                                     (struct sockaddr *)&a6};
    for (int i = 0; i < 7; i++) {
        ai[i].ai_addr = (struct sockaddr *)sas[i];
        ai[i].ai_family = sas[i] ? sas[i]->sa_family : AF_UNSPEC;
        ai[i].ai_next = i + 1 < 7 ? &ai[i + 1] : NULL;
    }
    mn_swim_addr_t found[8];
    size_t n = 0;
    /* only the two IPv4 addresses fit: two seeds */
    ai[5].ai_next = NULL;
    assert_int_equal(mn_swim_uv_add_resolved(ai, 7946, found, &n, 8), 2);
    assert_int_equal(n, 2);
    char text[64];
    mn_swim_addr_format(&found[0], text, sizeof text);
    assert_string_equal(text, "10.0.0.1:7946");
    mn_swim_addr_format(&found[1], text, sizeof text);
    assert_string_equal(text, "10.0.0.2:7946");
    /* the same name again adds nothing; with the AAAA record one more */
    ai[5].ai_next = &ai[6];
    assert_int_equal(mn_swim_uv_add_resolved(ai, 7946, found, &n, 8), 1);
    assert_int_equal(n, 3);
    assert_int_equal(found[2].family, 6);
    assert_int_equal(found[2].port, 7946);
    /* never beyond cap */
    size_t m = 0;
    assert_int_equal(mn_swim_uv_add_resolved(ai, 1, found, &m, 1), 1);
    assert_int_equal(m, 1);

    /* and the core contacts each of them */
    mn_swim_config_t c;
    mn_swim_config_profile("fast", &c);
    mn_swim_addr_t self;
    assert_int_equal(mn_swim_addr_parse("10.0.0.9:7946", &self), MN_OK);
    mn_swim_opts_t so = {.node_id = "me", .addr = self, .config = c, .cb = {.send = capture_send}};
    mn_swim_t *s = NULL;
    mn_error err;
    assert_int_equal(mn_swim_new(&so, 0, &s, &err), MN_OK);
    n_sent_to = 0;
    assert_int_equal(mn_swim_join(s, 0, found, 2), MN_OK);
    assert_int_equal(n_sent_to, 2);
    assert_true(mn_swim_addr_equal(&sent_to[0], &found[0]) ||
                mn_swim_addr_equal(&sent_to[1], &found[0]));
    assert_true(mn_swim_addr_equal(&sent_to[0], &found[1]) ||
                mn_swim_addr_equal(&sent_to[1], &found[1]));
    mn_swim_free(s);
}

int main(void)
{
    mn_log_configure(MN_LOG_WARN, MN_LOG_FORMAT_TEXT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swim_uv_nodes_join_detect_a_crash_and_a_leave),
        cmocka_unit_test(test_swim_uv_a_name_with_two_addresses_is_two_seeds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
