/* Router (api/http/http_router.c) and handler helpers (api/http/http_util.c): pattern validation,
 * exact-over-parameter precedence, 405 allow lists, trailing slashes, percent-decoded params,
 * query-string decoding, error bodies and header building. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/http.h"

static int tag_a, tag_b, tag_c, tag_d;

static void h_noop(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp)
{
    (void)ctx;
    (void)req;
    (void)resp;
}

static mn_http_router_t *sample_router(void)
{
    mn_http_router_t *r = mn_http_router_new();
    assert_non_null(r);
    assert_int_equal(mn_http_router_add(r, "GET", "/v1/spaces", h_noop, &tag_a), MN_OK);
    assert_int_equal(mn_http_router_add(r, "POST", "/v1/spaces", h_noop, &tag_b), MN_OK);
    assert_int_equal(mn_http_router_add(r, "GET", "/v1/spaces/{space}", h_noop, &tag_c), MN_OK);
    assert_int_equal(mn_http_router_add(r, "DELETE", "/v1/spaces/{space}", h_noop, &tag_c), MN_OK);
    assert_int_equal(mn_http_router_add(r, "GET", "/v1/spaces/stats", h_noop, &tag_d), MN_OK);
    assert_int_equal(
        mn_http_router_add(r, "GET", "/v1/spaces/{space}/memories/{id}", h_noop, &tag_a), MN_OK);
    assert_int_equal(
        mn_http_router_add(r, "POST", "/v1/spaces/{space}/memories/batch", h_noop, &tag_b), MN_OK);
    return r;
}

static void test_router_exact_segment_beats_parameter(void **state)
{
    (void)state;
    mn_http_router_t *r = sample_router();
    mn_http_route_match_t m;
    assert_int_equal(mn_http_router_match(r, "GET", "/v1/spaces/stats", &m), MN_HTTP_ROUTE_FOUND);
    assert_ptr_equal(m.ctx, &tag_d);
    assert_string_equal(m.pattern, "/v1/spaces/stats");
    assert_int_equal(m.n_params, 0);
    mn_http_route_match_free(&m);

    assert_int_equal(mn_http_router_match(r, "GET", "/v1/spaces/books", &m), MN_HTTP_ROUTE_FOUND);
    assert_ptr_equal(m.ctx, &tag_c);
    assert_string_equal(m.pattern, "/v1/spaces/{space}");
    assert_int_equal(m.n_params, 1);
    assert_string_equal(m.params[0], "books");
    mn_http_route_match_free(&m);
    mn_http_router_free(r);
}

static void test_router_method_falls_back_to_parameter_pattern(void **state)
{
    (void)state;
    mn_http_router_t *r = sample_router();
    mn_http_route_match_t m;
    /* "stats" is exact only for GET; DELETE still reaches the {space} pattern. */
    assert_int_equal(mn_http_router_match(r, "DELETE", "/v1/spaces/stats", &m),
                     MN_HTTP_ROUTE_FOUND);
    assert_string_equal(m.pattern, "/v1/spaces/{space}");
    assert_string_equal(m.params[0], "stats");
    mn_http_route_match_free(&m);
    /* ".../memories/batch" is POST-exact; GET goes to {id}. */
    assert_int_equal(mn_http_router_match(r, "GET", "/v1/spaces/s/memories/batch", &m),
                     MN_HTTP_ROUTE_FOUND);
    assert_string_equal(m.pattern, "/v1/spaces/{space}/memories/{id}");
    assert_int_equal(m.n_params, 2);
    assert_string_equal(m.params[0], "s");
    assert_string_equal(m.params[1], "batch");
    mn_http_route_match_free(&m);
    mn_http_router_free(r);
}

static void test_router_bad_method_lists_allowed_methods(void **state)
{
    (void)state;
    mn_http_router_t *r = sample_router();
    mn_http_route_match_t m;
    assert_int_equal(mn_http_router_match(r, "PUT", "/v1/spaces", &m), MN_HTTP_ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "GET, POST, HEAD");
    assert_null(m.fn);
    mn_http_route_match_free(&m);
    assert_int_equal(mn_http_router_match(r, "POST", "/v1/spaces/x", &m), MN_HTTP_ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "GET, DELETE, HEAD");
    mn_http_route_match_free(&m);
    /* Union over every matching pattern, each method once. */
    assert_int_equal(mn_http_router_match(r, "PUT", "/v1/spaces/stats", &m),
                     MN_HTTP_ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "GET, DELETE, HEAD");
    mn_http_route_match_free(&m);
    mn_http_router_free(r);
}

static void test_router_unknown_path_is_not_found(void **state)
{
    (void)state;
    mn_http_router_t *r = sample_router();
    mn_http_route_match_t m;
    const char *paths[] = {
        "/",         "/v2/spaces", "/v1/spaces/a/b",       "/v1//spaces", "/v1/spaces/%zz",
        "v1/spaces", "",           "/v1/spaces/a/memories"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        assert_int_equal(mn_http_router_match(r, "GET", paths[i], &m), MN_HTTP_ROUTE_NOT_FOUND);
        assert_null(m.fn);
        mn_http_route_match_free(&m);
    }
    mn_http_router_free(r);
}

static void test_router_tolerates_trailing_slash(void **state)
{
    (void)state;
    mn_http_router_t *r = sample_router();
    mn_http_route_match_t m;
    assert_int_equal(mn_http_router_match(r, "GET", "/v1/spaces/", &m), MN_HTTP_ROUTE_FOUND);
    assert_ptr_equal(m.ctx, &tag_a);
    mn_http_route_match_free(&m);
    assert_int_equal(mn_http_router_match(r, "GET", "/v1/spaces/abc/", &m), MN_HTTP_ROUTE_FOUND);
    assert_string_equal(m.params[0], "abc");
    mn_http_route_match_free(&m);
    /* and in patterns */
    mn_http_router_t *r2 = mn_http_router_new();
    assert_int_equal(mn_http_router_add(r2, "GET", "/health/", h_noop, NULL), MN_OK);
    assert_int_equal(mn_http_router_match(r2, "GET", "/health", &m), MN_HTTP_ROUTE_FOUND);
    mn_http_route_match_free(&m);
    mn_http_router_free(r2);
    mn_http_router_free(r);
}

static void test_router_decodes_params(void **state)
{
    (void)state;
    mn_http_router_t *r = sample_router();
    mn_http_route_match_t m;
    assert_int_equal(mn_http_router_match(r, "GET", "/v1/spaces/a%20b/memories/x%2Fy+z", &m),
                     MN_HTTP_ROUTE_FOUND);
    assert_string_equal(m.params[0], "a b");
    assert_string_equal(m.params[1], "x/y+z"); /* '+' is literal in a path */
    mn_http_route_match_free(&m);
    /* exact segments compare decoded */
    assert_int_equal(mn_http_router_match(r, "GET", "/v1/sp%61ces/st%61ts", &m),
                     MN_HTTP_ROUTE_FOUND);
    assert_ptr_equal(m.ctx, &tag_d);
    mn_http_route_match_free(&m);
    /* %00 never reaches a handler */
    assert_int_equal(mn_http_router_match(r, "GET", "/v1/spaces/a%00b", &m),
                     MN_HTTP_ROUTE_NOT_FOUND);
    mn_http_route_match_free(&m);
    mn_http_router_free(r);
}

static void test_router_head_falls_back_to_get(void **state)
{
    (void)state;
    mn_http_router_t *r = sample_router();
    mn_http_route_match_t m;
    assert_int_equal(mn_http_router_match(r, "HEAD", "/v1/spaces", &m), MN_HTTP_ROUTE_FOUND);
    assert_ptr_equal(m.ctx, &tag_a);
    mn_http_route_match_free(&m);
    mn_http_router_free(r);
}

static void test_router_rejects_bad_patterns_and_duplicates(void **state)
{
    (void)state;
    mn_http_router_t *r = mn_http_router_new();
    assert_int_equal(mn_http_router_add(r, "GET", "nope", h_noop, NULL), MN_ERR_INVALID);
    assert_int_equal(mn_http_router_add(r, "GET", "/a//b", h_noop, NULL), MN_ERR_INVALID);
    assert_int_equal(mn_http_router_add(r, "GET", "/a/{}", h_noop, NULL), MN_ERR_INVALID);
    assert_int_equal(mn_http_router_add(r, "GET", "/a/{x", h_noop, NULL), MN_ERR_INVALID);
    assert_int_equal(mn_http_router_add(r, "GET", "/a/x{y}", h_noop, NULL), MN_ERR_INVALID);
    assert_int_equal(mn_http_router_add(r, "get", "/a", h_noop, NULL), MN_ERR_INVALID);
    assert_int_equal(mn_http_router_add(r, "GET", "/a", NULL, NULL), MN_ERR_INVALID);
    assert_int_equal(
        mn_http_router_add(r, "GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", h_noop, NULL),
        MN_ERR_INVALID);
    assert_int_equal(mn_http_router_add(r, "GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}", h_noop, NULL),
                     MN_OK);
    assert_int_equal(mn_http_router_add(r, "GET", "/s/{x}", h_noop, NULL), MN_OK);
    assert_int_equal(mn_http_router_add(r, "GET", "/s/{y}/", h_noop, NULL), MN_ERR_EXISTS);
    assert_int_equal(mn_http_router_add(r, "POST", "/s/{y}", h_noop, NULL), MN_OK);
    assert_int_equal(mn_http_router_add(r, "GET", "/", h_noop, &tag_a), MN_OK);
    mn_http_route_match_t m;
    assert_int_equal(mn_http_router_match(r, "GET", "/", &m), MN_HTTP_ROUTE_FOUND);
    assert_ptr_equal(m.ctx, &tag_a);
    mn_http_route_match_free(&m);
    mn_http_router_free(r);
}

/* ---- helpers ---- */

static void test_query_get_decodes_form_encoding(void **state)
{
    (void)state;
    mn_http_request_t req = {0};
    req.query = "q=hello+wor%6Cd&k=10&empty=&flag&q2=%zz&long=abcdefgh";
    char buf[32];
    assert_true(mn_http_query_get(&req, "q", buf, sizeof buf));
    assert_string_equal(buf, "hello world");
    assert_true(mn_http_query_get(&req, "k", buf, sizeof buf));
    assert_string_equal(buf, "10");
    assert_true(mn_http_query_get(&req, "empty", buf, sizeof buf));
    assert_string_equal(buf, "");
    assert_true(mn_http_query_get(&req, "flag", buf, sizeof buf));
    assert_string_equal(buf, "");
    assert_false(mn_http_query_get(&req, "q2", buf, sizeof buf)); /* bad escape */
    assert_false(mn_http_query_get(&req, "missing", buf, sizeof buf));
    assert_false(mn_http_query_get(&req, "long", buf, 8)); /* does not fit */
    assert_true(mn_http_query_get(&req, "long", buf, 9));
    assert_string_equal(buf, "abcdefgh");
    req.query = "";
    assert_false(mn_http_query_get(&req, "q", buf, sizeof buf));
    req.query = "a%20b=1";
    assert_true(mn_http_query_get(&req, "a b", buf, sizeof buf));
    assert_string_equal(buf, "1");
}

static void test_header_get_is_case_insensitive(void **state)
{
    (void)state;
    mn_http_header_t h[] = {{"content-type", "text/plain"}, {"x-a", "1"}, {"x-a", "2"}};
    mn_http_request_t req = {0};
    req.headers = h;
    req.n_headers = 3;
    assert_string_equal(mn_http_header_get(&req, "content-type"), "text/plain");
    assert_string_equal(mn_http_header_get(&req, "Content-Type"), "text/plain");
    assert_string_equal(mn_http_header_get(&req, "x-a"), "1");
    assert_null(mn_http_header_get(&req, "x-b"));
}

static void test_respond_error_builds_json(void **state)
{
    (void)state;
    mn_http_response_t resp = {0};
    mn_http_respond_error(&resp, 422, "invalid", "bad \"dim\"", "use 384");
    assert_int_equal(resp.status, 422);
    assert_string_equal(resp.content_type, "application/json");
    cJSON *j = cJSON_ParseWithLength(resp.body, resp.body_len);
    assert_non_null(j);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "code")->valuestring, "invalid");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "message")->valuestring, "bad \"dim\"");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "hint")->valuestring, "use 384");
    cJSON_Delete(j);
    /* replacing the body frees the old one; no hint -> no field */
    mn_http_respond_error(&resp, 404, "not_found", "gone", NULL);
    j = cJSON_ParseWithLength(resp.body, resp.body_len);
    e = cJSON_GetObjectItemCaseSensitive(j, "error");
    assert_null(cJSON_GetObjectItemCaseSensitive(e, "hint"));
    cJSON_Delete(j);
    free(resp.body);
}

static void test_add_header_sanitises(void **state)
{
    (void)state;
    mn_http_response_t resp = {0};
    mn_http_add_header(&resp, "x-one", "1");
    mn_http_add_header(&resp, "bad name", "v");
    mn_http_add_header(&resp, "x-two", "a\r\nset-cookie: evil");
    assert_string_equal(resp.extra_headers, "x-one: 1\r\nx-two: a  set-cookie: evil\r\n");
    free(resp.extra_headers);
    mn_http_respond(&resp, 201, "text/plain", "hi", 2);
    assert_int_equal(resp.status, 201);
    assert_int_equal(resp.body_len, 2);
    assert_memory_equal(resp.body, "hi", 2);
    free(resp.body);
}

static void test_options_defaults(void **state)
{
    (void)state;
    mn_http_server_options_t o;
    mn_http_server_options_default(&o);
    assert_string_equal(o.bind, "127.0.0.1");
    assert_int_equal(o.port, 7700);
    assert_int_equal(o.max_body_bytes, 16 << 20);
    assert_int_equal(o.max_header_bytes, 64 << 10);
    assert_int_equal(o.max_connections, 1024);
    assert_int_equal(o.idle_timeout_ms, 60000);
    assert_int_equal(o.max_pipelined, 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_exact_segment_beats_parameter),
        cmocka_unit_test(test_router_method_falls_back_to_parameter_pattern),
        cmocka_unit_test(test_router_bad_method_lists_allowed_methods),
        cmocka_unit_test(test_router_unknown_path_is_not_found),
        cmocka_unit_test(test_router_tolerates_trailing_slash),
        cmocka_unit_test(test_router_decodes_params),
        cmocka_unit_test(test_router_head_falls_back_to_get),
        cmocka_unit_test(test_router_rejects_bad_patterns_and_duplicates),
        cmocka_unit_test(test_query_get_decodes_form_encoding),
        cmocka_unit_test(test_header_get_is_case_insensitive),
        cmocka_unit_test(test_respond_error_builds_json),
        cmocka_unit_test(test_add_header_sanitises),
        cmocka_unit_test(test_options_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
