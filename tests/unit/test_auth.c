/* auth: [[auth.keys]] parsing (file and environment, errors with file:line:col, dump round
 * trip), key matching, the role order, space lists, the route table's default deny, the HTTP
 * gate's 401/403 answers and the loopback test behind --insecure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/auth.h"
#include "mnemo/config.h"
#include "config_fixture.h"
#include "testutil.h"

static void hex_sha256(const char *key, char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, strlen(key), d);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* A config with three keys: reader (alpha, beta), writer (alpha), admin (*). */
static const char *three_keys(char *buf, size_t len)
{
    char r[65], w[65], a[65];
    hex_sha256("reader-key", r);
    hex_sha256("writer-key", w);
    hex_sha256("admin-key", a);
    /* upper-case hex is accepted too */
    for (char *p = a; *p; p++)
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 'a' + 'A');
    snprintf(
        buf, len,
        "[auth]\nenabled = true\n\n"
        "[[auth.keys]]\nname = \"reader\"\nsha256 = \"%s\"\nrole = \"read\"\n"
        "spaces = [\"alpha\", \"beta\"]\n\n"
        "[[auth.keys]]\nsha256 = \"%s\"\nrole = \"write\"\nspaces = [\"alpha\"]\n\n"
        "[[auth.keys]]\nname = \"root\"\nsha256 = \"%s\"\nrole = \"admin\"\nspaces = [\"*\"]\n",
        r, w, a);
    return buf;
}

static mn_auth_t *load_auth(void **state, mn_config_t *c)
{
    char text[2048];
    mn_error e = {0};
    if (mn_config_load(c, config_fixture_write(state, three_keys(text, sizeof text)), NULL, &e))
        fail_msg("config: %s", e.message);
    mn_auth_t *a = NULL;
    if (mn_auth_new(&c->auth, &a, &e)) fail_msg("auth: %s", e.message);
    return a;
}

static mn_auth_result_t check(const mn_auth_t *a, const char *key, mn_auth_op_t op,
                              const char *space)
{
    return mn_auth_allow(a, key, key ? strlen(key) : 0, op, space, NULL);
}

/* ---- configuration ---- */

static void test_auth_keys_parse_from_the_file(void **state)
{
    mn_config_t c;
    mn_auth_t *a = load_auth(state, &c);
    assert_true(c.auth.enabled);
    assert_int_equal(c.auth.keys.count, 3);
    assert_string_equal(c.auth.keys.items[0].name, "reader");
    assert_string_equal(c.auth.keys.items[0].role, "read");
    assert_int_equal(c.auth.keys.items[0].spaces.count, 2);
    assert_string_equal(c.auth.keys.items[0].spaces.items[1], "beta");
    assert_string_equal(c.auth.keys.items[1].name, ""); /* optional */
    assert_string_equal(c.auth.keys.items[2].spaces.items[0], "*");
    assert_true(mn_auth_enabled(a));
    mn_auth_free(a);
    mn_config_free(&c);
}

static void test_auth_defaults_are_off_without_keys(void **state)
{
    (void)state;
    mn_config_t c;
    mn_error e = {0};
    assert_int_equal(mn_config_load(&c, NULL, NULL, &e), MN_OK);
    assert_false(c.auth.enabled);
    assert_int_equal(c.auth.keys.count, 0);
    assert_null(c.auth.keys.items);
    mn_auth_t *a = NULL;
    assert_int_equal(mn_auth_new(&c.auth, &a, &e), MN_OK);
    assert_false(mn_auth_enabled(a));
    /* disabled: everything passes, with or without a key */
    assert_int_equal(check(a, NULL, MN_AUTH_OP_ADMIN, NULL), MN_AUTH_OK);
    mn_auth_free(a);
    mn_config_free(&c);
}

static void expect_file_error(void **state, const char *text, const char *part)
{
    const char *path = config_fixture_write(state, text);
    mn_config_t c;
    mn_error e = {0};
    assert_int_equal(mn_config_load(&c, path, NULL, &e), MN_ERR_INVALID);
    if (!strstr(e.message, part))
        fail_msg("for:\n%s\nexpected \"%s\" in: %s", text, part, e.message);
    mn_config_free(&c);
}

static void test_auth_keys_errors_name_the_spot(void **state)
{
    char h[65], text[1024];
    hex_sha256("k", h);
    expect_file_error(state,
                      "[[auth.keys]]\nsha256 = \"12ab\"\nrole = \"read\"\nspaces = [\"*\"]\n",
                      ":2:10: auth.keys.sha256 must be 64 hex digits");
    snprintf(text, sizeof text,
             "[[auth.keys]]\nsha256 = \"%s\"\nrole = \"owner\"\nspaces = [\"*\"]\n", h);
    expect_file_error(state, text, ":3:8: auth.keys.role must be one of read|write|admin");
    snprintf(text, sizeof text, "[[auth.keys]]\nsha256 = \"%s\"\nspaces = [\"*\"]\n", h);
    expect_file_error(state, text, ":1:1: auth.keys[0] lacks \"role\" (required)");
    snprintf(text, sizeof text,
             "[[auth.keys]]\nsha256 = \"%s\"\nrole = \"read\"\nspaces = [\"*\"]\nkey = \"x\"\n", h);
    expect_file_error(state, text,
                      ":5:1: unknown key \"auth.keys.key\" (auth.keys has name, sha256, role, "
                      "spaces)");
    snprintf(text, sizeof text, "[[auth.keys]]\nsha256 = \"%s\"\nrole = \"read\"\nspaces = [1]\n",
             h);
    expect_file_error(state, text, "auth.keys.spaces expects an array of strings");
    expect_file_error(state, "[auth]\nkeys = [1, 2]\n",
                      ":2:9: auth.keys expects an array of tables, got an integer element");
    expect_file_error(state, "[auth]\nkeys = \"x\"\n",
                      ":2:8: auth.keys expects an array of tables, got a string");
}

static void test_auth_keys_from_the_environment(void **state)
{
    (void)state;
    char h[65], var[512];
    hex_sha256("env", h);
    snprintf(var, sizeof var,
             "MNEMO_AUTH_KEYS=[{name = \"ci\", sha256 = \"%s\", role = \"write\", spaces = "
             "[\"a\", \"b\"]}]",
             h);
    char *envp[] = {var, "MNEMO_AUTH_ENABLED=true", NULL};
    mn_config_t c;
    mn_error e = {0};
    assert_int_equal(mn_config_load(&c, NULL, envp, &e), MN_OK);
    assert_int_equal(c.auth.keys.count, 1);
    assert_string_equal(c.auth.keys.items[0].name, "ci");
    assert_int_equal(c.auth.keys.items[0].spaces.count, 2);
    mn_config_free(&c);
    char *bad[] = {"MNEMO_AUTH_KEYS=[{role = \"read\", spaces = [\"*\"]}]", NULL};
    assert_int_equal(mn_config_load(&c, NULL, bad, &e), MN_ERR_INVALID);
    assert_string_equal(e.message, "MNEMO_AUTH_KEYS:1:2: auth.keys[0] lacks \"sha256\" (required)");
    char *notlist[] = {"MNEMO_AUTH_KEYS=readers", NULL};
    assert_int_equal(mn_config_load(&c, NULL, notlist, &e), MN_ERR_INVALID);
    assert_non_null(strstr(e.message, "auth.keys expects an array of tables"));
    /* an empty array clears the file's keys */
    char *empty[] = {"MNEMO_AUTH_KEYS=[]", NULL};
    assert_int_equal(mn_config_load(&c, NULL, empty, &e), MN_OK);
    assert_int_equal(c.auth.keys.count, 0);
    mn_config_free(&c);
}

static void test_auth_keys_dump_round_trips(void **state)
{
    config_fixture *f = *state;
    mn_config_t c, back;
    mn_auth_t *a = load_auth(state, &c);
    mn_auth_free(a);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    mn_config_dump(&c, out);
    fclose(out);
    assert_non_null(strstr(text, "[[auth.keys]]\nname = \"reader\"\n"));
    FILE *fp = fopen(f->path, "w");
    fputs(text, fp);
    fclose(fp);
    mn_error e = {0};
    if (mn_config_load(&back, f->path, NULL, &e)) fail_msg("%s", e.message);
    char *again = NULL;
    out = open_memstream(&again, &len);
    mn_config_dump(&back, out);
    fclose(out);
    assert_string_equal(text, again);
    free(text);
    free(again);
    mn_config_free(&c);
    mn_config_free(&back);
}

static void test_auth_new_rejects_unusable_key_sets(void **state)
{
    (void)state;
    mn_config_auth_key_t k[2];
    memset(k, 0, sizeof k);
    char h[65];
    hex_sha256("dup", h);
    char *star[] = {"*"}, *none[] = {NULL}, *bad[] = {"Not A Space"};
    for (int i = 0; i < 2; i++) {
        k[i].name = "";
        k[i].sha256 = h;
        k[i].role = "read";
        k[i].spaces = (mn_config_strlist_t){star, 1};
    }
    mn_config_auth_t cfg = {.enabled = true, .keys = {k, 2}};
    mn_auth_t *a = NULL;
    mn_error e = {0};
    assert_int_equal(mn_auth_new(&cfg, &a, &e), MN_ERR_INVALID);
    assert_string_equal(e.message, "auth.keys[1]: same sha256 as auth.keys[0]");
    assert_null(a);
    cfg.keys.count = 1;
    k[0].spaces = (mn_config_strlist_t){none, 0};
    k[0].name = "empty";
    assert_int_equal(mn_auth_new(&cfg, &a, &e), MN_ERR_INVALID);
    assert_non_null(strstr(e.message, "auth.keys[0] (\"empty\"): spaces is empty"));
    k[0].spaces = (mn_config_strlist_t){bad, 1};
    assert_int_equal(mn_auth_new(&cfg, &a, &e), MN_ERR_INVALID);
    assert_non_null(strstr(e.message, "is not a space name"));
    cfg.keys.count = 0;
    assert_int_equal(mn_auth_new(&cfg, &a, &e), MN_ERR_INVALID);
    assert_non_null(strstr(e.message, "no [[auth.keys]]"));
}

/* ---- the check ---- */

static void test_auth_check_matches_keys_and_roles(void **state)
{
    mn_config_t c;
    mn_auth_t *a = load_auth(state, &c);
    assert_int_equal(check(a, NULL, MN_AUTH_OP_RECALL, "alpha"), MN_AUTH_NO_KEY);
    assert_int_equal(check(a, "", MN_AUTH_OP_RECALL, "alpha"), MN_AUTH_NO_KEY);
    assert_int_equal(check(a, "reader-keyx", MN_AUTH_OP_RECALL, "alpha"), MN_AUTH_BAD_KEY);
    assert_int_equal(check(a, "reader-ke", MN_AUTH_OP_RECALL, "alpha"), MN_AUTH_BAD_KEY);
    /* the key's bytes, not a prefix: a NUL inside makes another key */
    assert_int_equal(mn_auth_allow(a, "reader-key\0", 11, MN_AUTH_OP_RECALL, "alpha", NULL),
                     MN_AUTH_BAD_KEY);
    /* open operations need nothing */
    assert_int_equal(check(a, NULL, MN_AUTH_OP_PROBE, NULL), MN_AUTH_OK);
    mn_auth_verdict_t v;
    assert_int_equal(mn_auth_allow(a, "reader-key", 10, MN_AUTH_OP_RECALL, "alpha", &v),
                     MN_AUTH_OK);
    assert_string_equal(v.key_name, "reader");
    /* role order read < write < admin */
    assert_int_equal(check(a, "reader-key", MN_AUTH_OP_REMEMBER, "alpha"), MN_AUTH_ROLE_DENIED);
    assert_int_equal(check(a, "writer-key", MN_AUTH_OP_REMEMBER, "alpha"), MN_AUTH_OK);
    assert_int_equal(check(a, "writer-key", MN_AUTH_OP_RECALL, "alpha"), MN_AUTH_OK);
    assert_int_equal(check(a, "writer-key", MN_AUTH_OP_SPACE_DROP, "alpha"), MN_AUTH_ROLE_DENIED);
    assert_int_equal(check(a, "admin-key", MN_AUTH_OP_SPACE_DROP, "anything"), MN_AUTH_OK);
    mn_auth_free(a);
    mn_config_free(&c);
}

static void test_auth_check_spaces(void **state)
{
    mn_config_t c;
    mn_auth_t *a = load_auth(state, &c);
    assert_int_equal(check(a, "reader-key", MN_AUTH_OP_RECALL, "beta"), MN_AUTH_OK);
    assert_int_equal(check(a, "reader-key", MN_AUTH_OP_RECALL, "gamma"), MN_AUTH_SPACE_DENIED);
    assert_int_equal(check(a, "reader-key", MN_AUTH_OP_RECALL, "alph"), MN_AUTH_SPACE_DENIED);
    assert_int_equal(check(a, "writer-key", MN_AUTH_OP_REMEMBER, "beta"), MN_AUTH_SPACE_DENIED);
    /* not about one space: read needs any key, write/admin need "*" */
    assert_int_equal(check(a, "reader-key", MN_AUTH_OP_SPACE_LIST, NULL), MN_AUTH_OK);
    assert_int_equal(check(a, "writer-key", MN_AUTH_OP_REMEMBER, NULL), MN_AUTH_SPACE_DENIED);
    assert_int_equal(check(a, "admin-key", MN_AUTH_OP_ADMIN, NULL), MN_AUTH_OK);
    /* the role is checked before the space */
    assert_int_equal(check(a, "reader-key", MN_AUTH_OP_SPACE_DROP, "gamma"), MN_AUTH_ROLE_DENIED);
    mn_auth_free(a);
    mn_config_free(&c);
}

/* Creating a space is about every space: the name the request picks does not make it the
 * key's, so only an admin key for "*" may, whatever door (or MCP remember) asks. */
static void test_auth_create_space_needs_admin_for_every_space(void **state)
{
    mn_config_t c;
    char r[65], w[65], o[65], text[2048];
    hex_sha256("reader-key", r);
    hex_sha256("writer-key", w);
    hex_sha256("ops-key", o);
    snprintf(text, sizeof text,
             "[auth]\nenabled = true\n\n"
             "[[auth.keys]]\nsha256 = \"%s\"\nrole = \"read\"\nspaces = [\"*\"]\n\n"
             "[[auth.keys]]\nsha256 = \"%s\"\nrole = \"write\"\nspaces = [\"*\"]\n\n"
             "[[auth.keys]]\nname = \"ops\"\nsha256 = \"%s\"\nrole = \"admin\"\n"
             "spaces = [\"alpha\"]\n",
             r, w, o);
    mn_error e = {0};
    if (mn_config_load(&c, config_fixture_write(state, text), NULL, &e))
        fail_msg("config: %s", e.message);
    mn_auth_t *a = NULL;
    assert_int_equal(mn_auth_new(&c.auth, &a, &e), MN_OK);
    mn_auth_verdict_t v;
    assert_int_equal(mn_auth_allow(a, "writer-key", 10, MN_AUTH_OP_SPACE_CREATE, "alpha", &v),
                     MN_AUTH_ROLE_DENIED);
    assert_string_equal(v.message, "create space needs the admin role");
    assert_int_equal(mn_auth_allow(a, "ops-key", 7, MN_AUTH_OP_SPACE_CREATE, "alpha", &v),
                     MN_AUTH_SPACE_DENIED);
    assert_string_equal(v.message, "create space acts on every space: it needs a key for \"*\"");
    assert_string_equal(v.key_name, "ops");
    /* its own space it may drop */
    assert_int_equal(check(a, "ops-key", MN_AUTH_OP_SPACE_DROP, "alpha"), MN_AUTH_OK);
    assert_int_equal(mn_auth_allow(a, "reader-key", 10, MN_AUTH_OP_SPACE_LIST, NULL, &v),
                     MN_AUTH_OK);
    assert_string_equal(v.message, "");
    assert_int_equal(mn_auth_allow(a, NULL, 0, MN_AUTH_OP_RECALL, "x", &v), MN_AUTH_NO_KEY);
    assert_non_null(v.hint);
    /* an operation outside the enum fails closed, as admin */
    assert_int_equal(check(a, "writer-key", (mn_auth_op_t)999, NULL), MN_AUTH_ROLE_DENIED);
    /* keys are told apart for per-key quotas, unknown ones are 0 */
    assert_int_equal(mn_auth_key_id(a, "reader-key", 10), 1);
    assert_int_equal(mn_auth_key_id(a, "ops-key", 7), 3);
    assert_int_equal(mn_auth_key_id(a, "nope", 4), 0);
    assert_int_equal(mn_auth_key_id(a, NULL, 0), 0);
    mn_auth_free(a);
    mn_config_free(&c);
}

/* Every operation has a name and a role; the roles are those docs/api.md lists. */
/* A key's grant as another node vouches for it, and the check of a grant. */
static void test_auth_grants_travel_for_keys(void **state)
{
    mn_config_t c;
    mn_auth_t *a = load_auth(state, &c);
    char buf[64];
    mn_auth_grant_t g;
    assert_false(mn_auth_grant_of(a, "no-such-key", 11, "alpha", buf, sizeof buf, &g));
    assert_false(mn_auth_grant_of(a, NULL, 0, "alpha", buf, sizeof buf, &g));
    assert_true(mn_auth_grant_of(a, "reader-key", 10, "alpha", buf, sizeof buf, &g));
    assert_int_equal(g.role, MN_AUTH_READ);
    assert_string_equal(g.name, "reader");
    assert_string_equal(g.spaces, "alpha,beta");
    /* a list that does not fit: only the space the request is about */
    char tiny[8];
    assert_true(mn_auth_grant_of(a, "reader-key", 10, "beta", tiny, sizeof tiny, &g));
    assert_string_equal(g.spaces, "beta");
    assert_true(mn_auth_grant_of(a, "admin-key", 9, NULL, buf, sizeof buf, &g));
    assert_string_equal(g.spaces, "*");
    /* the grant is judged as its key would be */
    mn_auth_grant_t rd = {MN_AUTH_READ, "reader", "alpha,beta"};
    mn_auth_grant_t wr = {MN_AUTH_WRITE, "", "alpha"};
    mn_auth_grant_t open = {MN_AUTH_OPEN, "", "*"};
    mn_auth_verdict_t v;
    assert_int_equal(mn_auth_allow_grant(a, &rd, MN_AUTH_OP_RECALL, "beta", &v), MN_AUTH_OK);
    assert_int_equal(mn_auth_allow_grant(a, &rd, MN_AUTH_OP_RECALL, "bet", &v),
                     MN_AUTH_SPACE_DENIED);
    assert_int_equal(mn_auth_allow_grant(a, &rd, MN_AUTH_OP_REMEMBER, "beta", &v),
                     MN_AUTH_ROLE_DENIED);
    assert_string_equal(v.key_name, "reader");
    assert_int_equal(mn_auth_allow_grant(a, &wr, MN_AUTH_OP_REMEMBER, "alpha", &v), MN_AUTH_OK);
    assert_int_equal(mn_auth_allow_grant(a, &wr, MN_AUTH_OP_SPACE_LIST, NULL, &v), MN_AUTH_OK);
    assert_int_equal(mn_auth_allow_grant(a, &wr, MN_AUTH_OP_FORGET, NULL, &v),
                     MN_AUTH_SPACE_DENIED);
    /* auth off where the key was checked, on here: no key */
    assert_int_equal(mn_auth_allow_grant(a, &open, MN_AUTH_OP_RECALL, "alpha", &v), MN_AUTH_NO_KEY);
    /* auth off here: anything */
    assert_int_equal(mn_auth_allow_grant(NULL, &open, MN_AUTH_OP_ADMIN, NULL, &v), MN_AUTH_OK);
    assert_true(mn_auth_grant_of(NULL, NULL, 0, NULL, buf, sizeof buf, &g));
    assert_int_equal(g.role, MN_AUTH_OPEN);
    assert_string_equal(mn_auth_name_known(a, "reader"), "reader");
    assert_null(mn_auth_name_known(a, "nobody"));
    assert_null(mn_auth_name_known(a, ""));
    mn_auth_free(a);
    mn_config_free(&c);
}

static void test_auth_operation_table(void **state)
{
    (void)state;
    static const struct {
        mn_auth_op_t op;
        mn_auth_role_t role;
    } want[] = {
        {MN_AUTH_OP_PROBE, MN_AUTH_OPEN},          {MN_AUTH_OP_METRICS, MN_AUTH_READ},
        {MN_AUTH_OP_SPACE_LIST, MN_AUTH_READ},     {MN_AUTH_OP_SPACE_READ, MN_AUTH_READ},
        {MN_AUTH_OP_EVENTS, MN_AUTH_READ},         {MN_AUTH_OP_MEMORY_READ, MN_AUTH_READ},
        {MN_AUTH_OP_RECALL, MN_AUTH_READ},         {MN_AUTH_OP_MCP, MN_AUTH_READ},
        {MN_AUTH_OP_REMEMBER, MN_AUTH_WRITE},      {MN_AUTH_OP_FORGET, MN_AUTH_WRITE},
        {MN_AUTH_OP_ASSOCIATE, MN_AUTH_WRITE},     {MN_AUTH_OP_CONSOLIDATE, MN_AUTH_WRITE},
        {MN_AUTH_OP_SPACE_CREATE, MN_AUTH_ADMIN},  {MN_AUTH_OP_SPACE_DROP, MN_AUTH_ADMIN},
        {MN_AUTH_OP_ADMIN, MN_AUTH_ADMIN},
    };
    assert_int_equal(sizeof want / sizeof want[0], MN_AUTH_OP_COUNT);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(mn_auth_op_role(want[i].op), want[i].role);
        assert_true(strlen(mn_auth_op_name(want[i].op)) > 0);
    }
}

static void test_auth_route_table_defaults_to_admin(void **state)
{
    (void)state;
    static const struct {
        const char *method, *pattern;
        mn_auth_op_t op;
    } want[] = {
        {"GET", "/health", MN_AUTH_OP_PROBE},
        {"HEAD", "/health", MN_AUTH_OP_PROBE},
        {"POST", "/health", MN_AUTH_OP_ADMIN},
        {"GET", "/v1/spaces", MN_AUTH_OP_SPACE_LIST},
        {"POST", "/v1/spaces", MN_AUTH_OP_SPACE_CREATE},
        {"POST", "/v1/spaces/{space}/recall", MN_AUTH_OP_RECALL},
        {"POST", "/v1/spaces/{space}/complete", MN_AUTH_OP_RECALL},
        {"POST", "/v1/spaces/{space}/memories", MN_AUTH_OP_REMEMBER},
        {"DELETE", "/v1/spaces/{space}/memories/{id}", MN_AUTH_OP_FORGET},
        {"POST", "/v1/spaces/{space}/consolidate", MN_AUTH_OP_CONSOLIDATE},
        {"GET", "/v1/spaces/{space}/events", MN_AUTH_OP_EVENTS},
        {"DELETE", "/v1/spaces/{space}", MN_AUTH_OP_SPACE_DROP},
        {"POST", "/v1/admin/checkpoint", MN_AUTH_OP_ADMIN},
        {"GET", "/v1/cluster/members", MN_AUTH_OP_ADMIN},
        {"DELETE", "/mcp", MN_AUTH_OP_MCP},
        {"GET", "/v1/some/new/route", MN_AUTH_OP_ADMIN},
        {NULL, NULL, MN_AUTH_OP_ADMIN},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (mn_auth_route_op(want[i].method, want[i].pattern) != want[i].op)
            fail_msg("%s %s is not %s", want[i].method ? want[i].method : "NULL",
                     want[i].pattern ? want[i].pattern : "NULL", mn_auth_op_name(want[i].op));
}

/* ---- the HTTP gate ---- */

static mn_http_request_t req_of(const char *method, const char *route, const char *space,
                              mn_http_header_t *h, size_t nh)
{
    mn_http_request_t r;
    memset(&r, 0, sizeof r);
    r.method = method;
    r.route = route;
    r.path = "";
    r.headers = h;
    r.n_headers = nh;
    if (space) {
        r.params[0] = space;
        r.params[1] = "m1";
        r.n_params = 2;
    }
    return r;
}

static void gate(const mn_auth_t *a, const char *method, const char *route, const char *space,
                 const char *auth, int want_status, const char *want_code)
{
    mn_http_header_t h = {"authorization", (char *)auth};
    mn_http_request_t r = req_of(method, route, space, &h, auth ? 1 : 0);
    mn_http_response_t resp = {.status = 200};
    bool pass = mn_auth_http_gate((void *)a, &r, &resp);
    if (want_status == 0) {
        if (!pass)
            fail_msg("%s %s (%s) refused: %d %s", method, route, auth, resp.status,
                     resp.body ? resp.body : "");
    } else {
        assert_false(pass);
        assert_int_equal(resp.status, want_status);
        char code[64];
        snprintf(code, sizeof code, "\"code\":\"%s\"", want_code);
        assert_non_null(strstr(resp.body, code));
        bool www = resp.extra_headers &&
                   strstr(resp.extra_headers, "www-authenticate: Bearer realm=\"mnemo\"\r\n");
        assert_true(www == (want_status == 401));
    }
    free(resp.body);
    free(resp.extra_headers);
}

static void test_auth_http_gate_answers_401_and_403(void **state)
{
    mn_config_t c;
    mn_auth_t *a = load_auth(state, &c);
    const char *recall = "/v1/spaces/{space}/recall";
    gate(a, "GET", "/health", NULL, NULL, 0, NULL);
    gate(a, "POST", recall, "alpha", NULL, 401, "unauthenticated");
    gate(a, "POST", recall, "alpha", "Bearer nope", 401, "unauthenticated");
    gate(a, "POST", recall, "alpha", "Basic cmVhZGVyLWtleQ==", 401, "unauthenticated");
    gate(a, "POST", recall, "alpha", "Bearer", 401, "unauthenticated");
    gate(a, "POST", recall, "alpha", "Bearer reader-key", 0, NULL);
    gate(a, "POST", recall, "alpha", "  bearer   reader-key", 0, NULL);
    gate(a, "POST", recall, "gamma", "Bearer reader-key", 403, "permission_denied");
    gate(a, "POST", "/v1/spaces/{space}/memories", "alpha", "Bearer reader-key", 403,
         "permission_denied");
    /* {space} found by its place in the pattern, not by position 0 */
    gate(a, "GET", "/v1/x/{id}/in/{space}", NULL, "Bearer admin-key", 0, NULL);
    mn_auth_free(a);
    mn_config_free(&c);
}

static void test_auth_loopback_addresses(void **state)
{
    (void)state;
    assert_true(mn_auth_bind_is_loopback("127.0.0.1"));
    assert_true(mn_auth_bind_is_loopback("127.1.2.3"));
    assert_true(mn_auth_bind_is_loopback("::1"));
    assert_true(mn_auth_bind_is_loopback("::ffff:127.0.0.1"));
    assert_false(mn_auth_bind_is_loopback("0.0.0.0"));
    assert_false(mn_auth_bind_is_loopback("::"));
    assert_false(mn_auth_bind_is_loopback("10.0.0.1"));
    assert_false(mn_auth_bind_is_loopback("::ffff:10.0.0.1"));
    assert_false(mn_auth_bind_is_loopback("localhost"));
    assert_false(mn_auth_bind_is_loopback(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_auth_keys_parse_from_the_file, config_fixture_setup,
                                        config_fixture_teardown),
        cmocka_unit_test(test_auth_defaults_are_off_without_keys),
        cmocka_unit_test_setup_teardown(test_auth_keys_errors_name_the_spot, config_fixture_setup,
                                        config_fixture_teardown),
        cmocka_unit_test(test_auth_keys_from_the_environment),
        cmocka_unit_test_setup_teardown(test_auth_keys_dump_round_trips, config_fixture_setup,
                                        config_fixture_teardown),
        cmocka_unit_test(test_auth_new_rejects_unusable_key_sets),
        cmocka_unit_test_setup_teardown(test_auth_check_matches_keys_and_roles,
                                        config_fixture_setup, config_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_auth_check_spaces, config_fixture_setup,
                                        config_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_auth_create_space_needs_admin_for_every_space,
                                        config_fixture_setup, config_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_auth_grants_travel_for_keys, config_fixture_setup,
                                        config_fixture_teardown),
        cmocka_unit_test(test_auth_operation_table),
        cmocka_unit_test(test_auth_route_table_defaults_to_admin),
        cmocka_unit_test_setup_teardown(test_auth_http_gate_answers_401_and_403,
                                        config_fixture_setup, config_fixture_teardown),
        cmocka_unit_test(test_auth_loopback_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
