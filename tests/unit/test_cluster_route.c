/* cluster_route: where a request runs (cl_route_plan), over hand-made placements: writes on
 * the primary, read=primary with replica fallback, read=nearest on a copy in rotation (a
 * replica more than 10 s behind is out of rotation, a catching-up copy never in it), holders
 * that are down or have no API address skipped, and the 503 reasons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "api/cluster_replay.h"
#include "api/cluster_route.h"
#include "testutil.h"

typedef struct h {
    const char *node;
    mn_spaces_role_t role;
    bool alive;
    int64_t lag_ms;
} h;

/* A placement of the holders hs (an API address each, "" for "noapi"). */
static cl_placement place(const h *hs, int n)
{
    cl_placement pl;
    memset(&pl, 0, sizeof pl);
    pl.epoch = 3;
    pl.n_holders = n;
    for (int i = 0; i < n; i++) {
        cl_holder *o = &pl.holders[i];
        snprintf(o->node, sizeof o->node, "%s", hs[i].node);
        o->role = hs[i].role;
        o->alive = hs[i].alive;
        o->lag_ms = hs[i].lag_ms;
        if (strcmp(hs[i].node, "noapi") != 0)
            snprintf(o->api, sizeof o->api, "127.0.0.1:%d", 7700 + i);
    }
    return pl;
}

static api_route_ask ask(bool write, api_read_pref read)
{
    api_route_ask a = {.space = "s",
                       .path = "/v1/spaces/s/memories",
                       .write = write,
                       .read = read,
                       .replica_lag_ms = -1};
    return a;
}

static const h three[] = {{"a", MN_SPACES_PRIMARY, true, -1},
                          {"b", MN_SPACES_REPLICA, true, -1},
                          {"c", MN_SPACES_REPLICA, true, -1}};

static void test_route_writes_run_on_the_primary(void **state)
{
    (void)state;
    cl_placement pl = place(three, 3);
    cl_route_plan_t p;
    api_route_ask w = ask(true, API_READ_PRIMARY);
    assert_true(cl_route_plan("a", &w, &pl, &p));
    assert_false(cl_route_plan("b", &w, &pl, &p));
    assert_int_equal(p.n, 1);
    assert_int_equal(p.targets[0], 0);
    assert_false(p.local_fallback); /* a write never runs on a replica */
    /* a node that holds no copy forwards too */
    assert_false(cl_route_plan("z", &w, &pl, &p));
    assert_int_equal(p.n, 1);
    /* even read=nearest does not move a write */
    w.read = API_READ_NEAREST;
    assert_false(cl_route_plan("b", &w, &pl, &p));
    assert_int_equal(p.targets[0], 0);
}

static void test_route_read_primary_falls_back_to_replicas(void **state)
{
    (void)state;
    cl_placement pl = place(three, 3);
    cl_route_plan_t p;
    api_route_ask r = ask(false, API_READ_PRIMARY);
    assert_true(cl_route_plan("a", &r, &pl, &p));
    assert_int_equal(p.local_lag_ms, -1);
    /* lags unknown: read-your-writes takes no stand-in, read=nearest does */
    assert_false(cl_route_plan("b", &r, &pl, &p));
    assert_int_equal(p.n, 1);
    assert_false(p.local_fallback);
    /* read=nearest: b's own copy does not know its lag (it has not confirmed it follows its
     * primary this epoch), so the primary serves first; b's copy and c's stand in */
    r.read = API_READ_NEAREST;
    assert_false(cl_route_plan("b", &r, &pl, &p));
    assert_int_equal(p.n, 2);
    assert_int_equal(p.targets[0], 0);
    assert_true(p.local_fallback);
    /* knowing it is 20 ms behind, b serves it */
    pl.holders[1].lag_ms = 20;
    assert_true(cl_route_plan("b", &r, &pl, &p));
    assert_int_equal(p.local_lag_ms, 20);
    pl.holders[1].lag_ms = -1;
    r.read = API_READ_PRIMARY;
    /* lags known and in rotation: they stand in for the primary */
    pl.holders[1].lag_ms = 0;
    pl.holders[2].lag_ms = 20;
    assert_false(cl_route_plan("b", &r, &pl, &p));
    assert_int_equal(p.n, 2); /* the primary, then c; b itself last */
    assert_int_equal(p.targets[0], 0);
    assert_int_equal(p.targets[1], 2);
    assert_true(p.local_fallback);
    assert_false(cl_route_plan("z", &r, &pl, &p));
    assert_int_equal(p.n, 3);
    assert_false(p.local_fallback);
}

static void test_route_read_nearest_needs_a_copy_in_rotation(void **state)
{
    (void)state;
    h hs[] = {{"a", MN_SPACES_PRIMARY, true, -1},
              {"b", MN_SPACES_REPLICA, true, 1500},
              {"c", MN_SPACES_REPLICA, true, CL_ROUTE_OUT_OF_ROTATION_MS + 1},
              {"d", MN_SPACES_CATCHING_UP, true, -1}};
    cl_placement pl = place(hs, 4);
    cl_route_plan_t p;
    api_route_ask r = ask(false, API_READ_NEAREST);
    /* b is 1.5 s behind: in rotation, and its lag travels (stale_replica past 1 s) */
    assert_true(cl_route_plan("b", &r, &pl, &p));
    assert_int_equal(p.local_lag_ms, 1500);
    /* c is out of rotation: the primary serves, b may stand in; c is no fallback */
    assert_false(cl_route_plan("c", &r, &pl, &p));
    assert_int_equal(p.n, 2);
    assert_int_equal(p.targets[0], 0);
    assert_int_equal(p.targets[1], 1);
    assert_false(p.local_fallback);
    /* a catching-up copy is never read */
    assert_false(cl_route_plan("d", &r, &pl, &p));
    assert_false(p.local_fallback);
    assert_int_equal(p.n, 2);
    /* exactly at the bound: still in rotation */
    pl.holders[2].lag_ms = CL_ROUTE_OUT_OF_ROTATION_MS;
    assert_true(cl_route_plan("c", &r, &pl, &p));
}

static void test_route_skips_unreachable_holders(void **state)
{
    (void)state;
    h hs[] = {{"a", MN_SPACES_PRIMARY, false, -1},
              {"noapi", MN_SPACES_REPLICA, true, 0},
              {"c", MN_SPACES_REPLICA, true, 0}};
    cl_placement pl = place(hs, 3);
    cl_route_plan_t p;
    api_route_ask w = ask(true, API_READ_PRIMARY);
    assert_false(cl_route_plan("c", &w, &pl, &p));
    assert_int_equal(p.n, 0);
    assert_false(p.local_fallback);
    assert_non_null(strstr(p.why, "primary is not reachable"));
    api_route_ask r = ask(false, API_READ_PRIMARY);
    assert_false(cl_route_plan("z", &r, &pl, &p));
    assert_int_equal(p.n, 1); /* c: the primary is down, noapi has no address */
    assert_int_equal(p.targets[0], 2);
    /* no primary at all (an election pending) */
    pl.holders[0].role = MN_SPACES_REPLICA;
    assert_false(cl_route_plan("c", &w, &pl, &p));
    assert_int_equal(p.n, 0);
    assert_non_null(strstr(p.why, "no primary"));
    /* a primary that is down and no replica reachable, for a read from a stranger */
    pl.holders[0].role = MN_SPACES_PRIMARY;
    pl.holders[2].alive = false;
    pl.holders[1].alive = false;
    assert_false(cl_route_plan("z", &r, &pl, &p));
    assert_int_equal(p.n, 0);
    assert_non_null(strstr(p.why, "no copy"));
}

static void test_route_replayed_hops_are_seen(void **state)
{
    (void)state;
    cl_replay *r = cl_replay_new(60000);
    assert_non_null(r);
    const char *a = "00000000000000aa";
    assert_false(cl_replay_seen(r, a, 1000));
    assert_true(cl_replay_seen(r, a, 2000));
    assert_true(cl_replay_seen(r, a, 61000));
    /* past the window the slot is free again (and the hop's own time is stale by then) */
    assert_false(cl_replay_seen(r, a, 62001));
    /* signatures that share a probe run are told apart */
    char sig[17];
    for (int i = 0; i < 40; i++) {
        snprintf(sig, sizeof sig, "%016x", (unsigned)(CL_REPLAY_SLOTS * i));
        assert_false(cl_replay_seen(r, sig, 70000));
    }
    /* the oldest of a full run was given up, the newest are remembered */
    assert_true(cl_replay_seen(r, sig, 70001));
    cl_replay_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_writes_run_on_the_primary),
        cmocka_unit_test(test_route_read_primary_falls_back_to_replicas),
        cmocka_unit_test(test_route_read_nearest_needs_a_copy_in_rotation),
        cmocka_unit_test(test_route_skips_unreachable_holders),
        cmocka_unit_test(test_route_replayed_hops_are_seen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
