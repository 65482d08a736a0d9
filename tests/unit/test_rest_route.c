/* rest_route: the REST door's routing entry over a real engine, with a stand-in for the
 * cluster's hooks (the seam api_cluster_hooks): what the hook is asked (space, path, write,
 * create, read preference, the in-process body), that an answered request never reaches
 * the handler, that a replica's lag past 1 s marks recall hits stale_replica, that a
 * write waits for its level (and answers 503 when it is not reached), and that without
 * the hooks nothing of it runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "api/rest/rest.h"
#include "testutil.h"

/* ---- the stand-in hooks ---- */

typedef struct seen {
    int routes, waits;
    api_route_ask ask;
    char space[80], path[200];
    bool had_tree;
    bool answer;    /* route answers (as a forward would) */
    int64_t lag_ms; /* route serves here from a replica this far behind */
    mn_err wait_rc;
    int level;
    uint64_t lsn, epoch;
} seen;
static seen S;

static bool fake_route(void *arg, const mn_http_request_t *req, mn_http_response_t *resp,
                       api_route_ask *ask)
{
    (void)arg;
    (void)req;
    S.routes++;
    S.ask = *ask;
    snprintf(S.space, sizeof S.space, "%s", ask->space ? ask->space : "");
    snprintf(S.path, sizeof S.path, "%s", ask->path ? ask->path : "");
    S.had_tree = ask->tree != NULL;
    ask->replica_lag_ms = S.lag_ms;
    if (!S.answer) return false;
    static const char body[] = "{\"forwarded\":true}";
    mn_http_respond(resp, 202, NULL, body, sizeof body - 1);
    return true;
}

static mn_err fake_wait(void *arg, const char *space, uint64_t lsn, uint64_t epoch, int level,
                        int64_t timeout_ms, mn_error *err)
{
    (void)arg;
    (void)space;
    (void)timeout_ms;
    S.waits++;
    S.level = level;
    S.lsn = lsn;
    S.epoch = epoch;
    if (S.wait_rc) return mn_error_set(err, S.wait_rc, "reached 1 of 3 copies");
    return MN_OK;
}

static const api_cluster_hooks HOOKS = {.route = fake_route, .write_wait = fake_wait};

/* ---- a server without sockets ---- */

typedef struct fixture {
    mn_test_eng t;
    mn_api_t *api;
    mn_http_router_t *router;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    mn_test_eng_init(&f->t, "rest_route");
    mn_test_eng_open(&f->t);
    assert_int_equal(mn_test_space(f->t.e, "s", 4, MN_METRIC_COSINE), MN_OK);
    f->api = mn_api_new(f->t.e);
    f->router = mn_http_router_new();
    mn_error err = {0};
    assert_int_equal(mn_api_register(f->api, f->router, &err), MN_OK);
    memset(&S, 0, sizeof S);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    mn_api_free(f->api);
    mn_http_router_free(f->router);
    mn_test_eng_free(&f->t);
    free(f);
    return 0;
}

/* Runs method path?query with body as the HTTP server would (the router's handler). */
static mn_http_response_t run(fixture *f, const char *method, const char *path, const char *query,
                              const char *body)
{
    mn_http_route_match_t m;
    assert_int_equal(mn_http_router_match(f->router, method, path, &m), MN_HTTP_ROUTE_FOUND);
    mn_http_request_t req;
    memset(&req, 0, sizeof req);
    req.method = method;
    req.path = path;
    req.query = query ? query : "";
    req.body = body ? body : "";
    req.body_len = body ? strlen(body) : 0;
    req.route = m.pattern;
    for (size_t i = 0; i < m.n_params; i++)
        req.params[req.n_params++] = m.params[i];
    mn_http_response_t resp;
    memset(&resp, 0, sizeof resp);
    resp.status = 200;
    m.fn(m.ctx, &req, &resp);
    mn_http_route_match_free(&m);
    return resp;
}

static void done(mn_http_response_t *r)
{
    free(r->body);
    free(r->extra_headers);
}

static bool has(const mn_http_response_t *r, const char *s)
{
    return r->body && strstr(r->body, s) != NULL;
}

#define MEM "{\"content\":\"a lake\",\"embedding\":[0.1,0.2,0.3,0.4]"

static void test_route_asks_the_hook_about_each_request(void **state)
{
    fixture *f = *state;
    f->api->cluster = &HOOKS;
    mn_http_response_t r =
        run(f, "POST", "/v1/spaces/s/memories", NULL, MEM ",\"consistency\":\"all\"}");
    assert_int_equal(r.status, 201);
    assert_int_equal(S.routes, 1);
    assert_true(S.ask.write);
    assert_false(S.ask.create);
    assert_string_equal(S.space, "s");
    assert_string_equal(S.path, "/v1/spaces/s/memories");
    assert_false(S.had_tree);
    /* the write waited for its level at the space's last lsn */
    assert_int_equal(S.waits, 1);
    assert_int_equal(S.level, 2);
    assert_true(S.lsn >= 2);
    assert_true(S.epoch >= 1); /* the epoch of the write's entry goes with its lsn */
    done(&r);
    r = run(f, "GET", "/v1/spaces/s/memories", "read=nearest", NULL);
    assert_int_equal(r.status, 200);
    assert_false(S.ask.write);
    assert_int_equal(S.ask.read, API_READ_NEAREST);
    done(&r);
    r = run(f, "GET", "/v1/spaces/s/memories", NULL, NULL);
    assert_int_equal(S.ask.read, API_READ_PRIMARY);
    done(&r);
    r = run(f, "POST", "/v1/spaces", NULL, "{\"name\":\"born\",\"dim\":4}");
    assert_int_equal(r.status, 201);
    assert_true(S.ask.create);
    assert_string_equal(S.space, "born");
    assert_int_equal(S.waits, 1); /* a creation waits for nothing */
    done(&r);
    /* a stream is not routed */
    assert_false(rest_routable("GET", "/v1/spaces/{space}/events"));
    assert_true(rest_routable("DELETE", "/v1/spaces/{space}/memories/{id}"));
    assert_false(rest_routable("GET", "/v1/spaces"));
}

static void test_route_answered_requests_never_reach_the_handler(void **state)
{
    fixture *f = *state;
    f->api->cluster = &HOOKS;
    S.answer = true;
    mn_http_response_t r = run(f, "POST", "/v1/spaces/s/memories", NULL, MEM "}");
    assert_int_equal(r.status, 202);
    assert_true(has(&r, "forwarded"));
    assert_int_equal(S.waits, 0);
    done(&r);
    S.answer = false;
    r = run(f, "GET", "/v1/spaces/s/memories", NULL, NULL);
    assert_true(has(&r, "\"memories\":[]")); /* nothing was stored here */
    done(&r);
}

static void test_route_marks_a_stale_replica_answer(void **state)
{
    fixture *f = *state;
    mn_http_response_t r = run(f, "POST", "/v1/spaces/s/memories", NULL, MEM "}");
    assert_int_equal(r.status, 201);
    done(&r);
    f->api->cluster = &HOOKS;
    const char *q = "{\"embedding\":[0.1,0.2,0.3,0.4],\"read\":\"nearest\"}";
    S.lag_ms = 1000; /* at the bound: not stale */
    r = run(f, "POST", "/v1/spaces/s/recall", NULL, q);
    assert_int_equal(r.status, 200);
    assert_int_equal(S.ask.read, API_READ_NEAREST);
    assert_false(has(&r, "stale_replica"));
    done(&r);
    S.lag_ms = 1500;
    r = run(f, "POST", "/v1/spaces/s/recall", NULL, q);
    assert_int_equal(r.status, 200);
    assert_true(has(&r, "\"reasons\":[\"stale_replica\"]"));
    assert_true(has(&r, "\"replica_lag_ms\":1500"));
    done(&r);
}

static void test_route_write_below_its_level_is_503(void **state)
{
    fixture *f = *state;
    f->api->cluster = &HOOKS;
    S.wait_rc = MN_ERR_UNAVAILABLE;
    mn_http_response_t r = run(f, "POST", "/v1/spaces/s/memories", NULL, MEM "}");
    assert_int_equal(r.status, 503);
    assert_int_equal(S.level, -1); /* none asked: the configured default */
    assert_true(has(&r, "reached 1 of 3 copies"));
    assert_true(has(&r, "durable on the primary"));
    done(&r);
    /* durable here all the same */
    f->api->cluster = NULL;
    r = run(f, "GET", "/v1/spaces/s/memories", NULL, NULL);
    assert_true(has(&r, "a lake"));
    done(&r);
}

static void test_route_in_process_requests_carry_their_tree(void **state)
{
    fixture *f = *state;
    f->api->cluster = &HOOKS;
    cJSON *body = cJSON_Parse("{\"content\":\"via mcp\",\"consistency\":\"one\"}");
    api_inproc_req ir;
    api_inproc_init(&ir, body);
    ir.http.method = "POST";
    ir.http.path = "/mcp";
    ir.http.route = "/mcp";
    ir.http.query = "";
    ir.http.params[ir.http.n_params++] = "s";
    mn_http_response_t resp;
    memset(&resp, 0, sizeof resp);
    const api_route_ctx *rt = rest_route_of(f->api, rest_h_remember, "POST");
    assert_non_null(rt);
    rest_dispatch(rt, &ir.http, &resp);
    assert_int_equal(resp.status, 201);
    assert_true(S.had_tree);
    assert_string_equal(S.path, "/v1/spaces/s/memories");
    assert_int_equal(S.level, 0);
    done(&resp);
    cJSON_Delete(body);
    assert_null(rest_route_of(f->api, rest_h_remember, "GET"));
}

static void test_route_single_node_runs_no_hook(void **state)
{
    fixture *f = *state;
    mn_http_response_t r =
        run(f, "POST", "/v1/spaces/s/memories", NULL, MEM ",\"consistency\":\"quorum\"}");
    assert_int_equal(r.status, 201);
    done(&r);
    r = run(f, "POST", "/v1/spaces/s/memories", NULL, MEM ",\"consistency\":\"most\"}");
    assert_int_equal(r.status, 422);
    assert_true(has(&r, "consistency: must be one, quorum or all"));
    done(&r);
    assert_int_equal(S.routes + S.waits, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_route_asks_the_hook_about_each_request, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_route_answered_requests_never_reach_the_handler, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_route_marks_a_stale_replica_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_write_below_its_level_is_503, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_in_process_requests_carry_their_tree, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_route_single_node_runs_no_hook, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
