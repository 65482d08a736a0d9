/* config: defaults, the example file, file values, exact errors (unknown key, wrong type,
 * out of range) with file:line:col, MNEMO_* environment overrides, set and dump. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/config/toml.h"
#include "mnemo/config.h"
#include "config_fixture.h"
#include "testutil.h"

#ifndef MN_SOURCE_DIR
#error "tests/unit/CMakeLists.txt defines MN_SOURCE_DIR"
#endif
#define EXAMPLE_PATH MN_SOURCE_DIR "/mnemo.example.toml"

static void load_ok(mn_config_t *c, const char *path, char **envp)
{
    mn_error e = {0};
    mn_err rc = mn_config_load(c, path, envp, &e);
    if (rc != MN_OK) fail_msg("unexpected error %d: %s", rc, e.message);
}

/* Loading text must fail with code and the message "<path>:" + tail (or exactly tail when
 * the error names an environment variable). */
static void expect_file_error(void **state, const char *text, mn_err code, const char *tail)
{
    const char *path = config_fixture_write(state, text);
    mn_config_t c;
    mn_error e = {0};
    assert_int_equal(mn_config_load(&c, path, NULL, &e), code);
    char want[1024];
    snprintf(want, sizeof want, "%s:%s", path, tail);
    if (strcmp(e.message, want) != 0)
        fail_msg("for config:\n%s\nexpected: %s\n     got: %s", text, want, e.message);
    /* a failed load leaves nothing to free, and freeing is still safe */
    assert_null(c.http.bind);
    mn_config_free(&c);
}

static void expect_env_error(char **envp, const char *msg)
{
    mn_config_t c;
    mn_error e = {0};
    assert_int_equal(mn_config_load(&c, NULL, envp, &e), MN_ERR_INVALID);
    if (strcmp(e.message, msg) != 0) fail_msg("expected: %s\n     got: %s", msg, e.message);
    mn_config_free(&c);
}

static char *dump(const mn_config_t *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    mn_config_dump(c, f);
    fclose(f);
    return buf;
}

/* ---- defaults and the example file ---- */

static void test_config_defaults_without_file(void **state)
{
    (void)state;
    mn_config_t c;
    load_ok(&c, NULL, NULL);
    assert_string_equal(c.http.bind, "127.0.0.1");
    assert_int_equal(c.http.port, 7700);
    assert_int_equal(c.http.max_body_bytes, 16777216);
    assert_int_equal(c.http.max_header_bytes, 65536);
    assert_int_equal(c.http.max_connections, 1024);
    assert_int_equal(c.http.idle_timeout_ms, 60000);
    assert_int_equal(c.http.max_pipelined, 64);
    assert_int_equal(c.http.worker_threads, 16);
    assert_string_equal(c.storage.data_dir, "./data");
    assert_int_equal(c.storage.block_cache_mb, 256);
    assert_int_equal(c.storage.write_buffer_mb, 64);
    assert_true(c.storage.sync);
    assert_string_equal(c.engine.default_lifecycle, "persistent");
    assert_int_equal(c.engine.ephemeral_ttl_seconds, 3600);
    assert_int_equal(c.engine.session_ttl_seconds, 86400);
    assert_int_equal(c.engine.expiry_interval_ms, 1000);
    assert_string_equal(c.log.level, "info");
    assert_string_equal(c.log.format, "text");
    assert_false(c.cluster.enabled);
    assert_string_equal(c.cluster.node_id, "");
    assert_string_equal(c.cluster.bind, "127.0.0.1");
    assert_int_equal(c.cluster.swim_port, 7946);
    assert_int_equal(c.cluster.seeds.count, 0);
    assert_string_equal(c.cluster.key, "");
    assert_string_equal(c.cluster.profile, "lan");
    mn_config_free(&c);
    mn_config_free(&c); /* idempotent */
}

static void test_config_example_file_equals_defaults(void **state)
{
    (void)state;
    mn_config_t def, ex;
    load_ok(&def, NULL, NULL);
    load_ok(&ex, EXAMPLE_PATH, NULL);
    char *a = dump(&def), *b = dump(&ex);
    assert_string_equal(a, b);
    free(a);
    free(b);
    mn_config_free(&def);
    mn_config_free(&ex);
}

/* Every key the program knows (the dump lists them all) is written in the example file. */
static void test_config_example_file_documents_every_key(void **state)
{
    (void)state;
    mn_config_t def;
    load_ok(&def, NULL, NULL);
    char *text = dump(&def);
    mn_toml_value_t *known = NULL, *example = NULL;
    mn_error e = {0};
    assert_int_equal(mn_toml_parse(text, strlen(text), "dump", &known, &e), MN_OK);
    assert_int_equal(mn_toml_parse_file(EXAMPLE_PATH, &example, &e), MN_OK);
    size_t n = 0;
    for (size_t i = 0; i < known->u.table.len; i++) {
        const mn_toml_entry_t *t = &known->u.table.entries[i];
        const mn_toml_value_t *et = mn_toml_get(example, t->key);
        if (!et) fail_msg("mnemo.example.toml lacks [%s]", t->key);
        for (size_t j = 0; j < t->value->u.table.len; j++, n++) {
            const char *k = t->value->u.table.entries[j].key;
            if (!mn_toml_get(et, k)) fail_msg("mnemo.example.toml lacks %s.%s", t->key, k);
        }
    }
    assert_true(n >= 25);
    mn_toml_free(known);
    mn_toml_free(example);
    free(text);
    mn_config_free(&def);
}

/* ---- file values ---- */

static void test_config_file_overrides_defaults(void **state)
{
    const char *path = config_fixture_write(state, "# partial config\n"
                                                   "[http]\n"
                                                   "port = 8080\n"
                                                   "bind = \"0.0.0.0\"\n"
                                                   "[storage]\n"
                                                   "data_dir = '/var/lib/mnemo'\n"
                                                   "sync = false\n"
                                                   "[log]\n"
                                                   "level = \"debug\"\n"
                                                   "[cluster]\n"
                                                   "enabled = true\n"
                                                   "seeds = [\n"
                                                   "  \"10.0.0.1:7946\",  # first\n"
                                                   "  \"[::1]:7946\",\n"
                                                   "]\n"
                                                   "key = \"s3cret\"\n"
                                                   "profile = \"fast\"\n");
    mn_config_t c;
    load_ok(&c, path, NULL);
    assert_int_equal(c.http.port, 8080);
    assert_string_equal(c.http.bind, "0.0.0.0");
    assert_int_equal(c.http.max_connections, 1024); /* untouched: default */
    assert_string_equal(c.storage.data_dir, "/var/lib/mnemo");
    assert_false(c.storage.sync);
    assert_string_equal(c.log.level, "debug");
    assert_true(c.cluster.enabled);
    assert_int_equal(c.cluster.seeds.count, 2);
    assert_string_equal(c.cluster.seeds.items[0], "10.0.0.1:7946");
    assert_string_equal(c.cluster.seeds.items[1], "[::1]:7946");
    assert_string_equal(c.cluster.key, "s3cret");
    assert_string_equal(c.cluster.profile, "fast");
    mn_config_free(&c);
}

static void test_config_accepts_dotted_keys_and_inline_tables(void **state)
{
    const char *path =
        config_fixture_write(state, "http.port = 9000\n"
                                    "storage = { data_dir = \"d\", block_cache_mb = 1 }\n"
                                    "[engine]\n"
                                    "expiry_interval_ms = 0x10\n");
    mn_config_t c;
    load_ok(&c, path, NULL);
    assert_int_equal(c.http.port, 9000);
    assert_string_equal(c.storage.data_dir, "d");
    assert_int_equal(c.storage.block_cache_mb, 1);
    assert_int_equal(c.engine.expiry_interval_ms, 16);
    mn_config_free(&c);
}

static void test_config_rejects_unknown_key(void **state)
{
    expect_file_error(state, "[htp]\nport = 1\n", MN_ERR_INVALID,
                      "2:1: unknown key \"htp.port\" (did you mean \"http.port\"?)");
    expect_file_error(state, "[http]\nport = 1\n  prot = 2\n", MN_ERR_INVALID,
                      "3:3: unknown key \"http.prot\" (did you mean \"http.port\"?)");
    expect_file_error(state, "[http]\n[nothing_like_it]\n", MN_ERR_INVALID,
                      "2:1: unknown table [nothing_like_it]");
    expect_file_error(state, "port = 7700\n", MN_ERR_INVALID, "1:1: unknown key \"port\"");
    expect_file_error(state, "[http.ssl]\nkey = \"x\"\n", MN_ERR_INVALID,
                      "2:1: unknown key \"http.ssl.key\"");
    expect_file_error(state, "[[auth.keyz]]\nname = \"x\"\n", MN_ERR_INVALID,
                      "1:8: unknown key \"auth.keyz\" (did you mean \"auth.keys\"?)");
    expect_file_error(state, "\"http.port\" = 1\n", MN_ERR_INVALID,
                      "1:1: unknown key \"http.port\"");
}

static void test_config_rejects_wrong_type(void **state)
{
    expect_file_error(state, "[http]\nport = \"7700\"\n", MN_ERR_INVALID,
                      "2:8: http.port expects an integer, got a string");
    expect_file_error(state, "[storage]\nsync = 1\n", MN_ERR_INVALID,
                      "2:8: storage.sync expects a boolean, got an integer");
    expect_file_error(state, "[storage]\ndata_dir = [\"a\"]\n", MN_ERR_INVALID,
                      "2:12: storage.data_dir expects a string, got an array");
    expect_file_error(state, "[cluster]\nseeds = \"a:1\"\n", MN_ERR_INVALID,
                      "2:9: cluster.seeds expects an array of strings, got a string");
    expect_file_error(state, "[cluster]\nseeds = [\"a:1\",\n  2]\n", MN_ERR_INVALID,
                      "3:3: cluster.seeds expects an array of strings, got an integer element");
    expect_file_error(state, "[http]\nport = 1.5\n", MN_ERR_INVALID,
                      "2:8: http.port expects an integer, got a float");
    expect_file_error(state, "http = 5\n", MN_ERR_INVALID,
                      "1:1: \"http\" must be a table, got an integer");
    expect_file_error(state, "[http.port]\n", MN_ERR_INVALID,
                      "1:1: http.port expects an integer, got a table");
    expect_file_error(state, "[log]\nlevel = \"a\\u0000b\"\n", MN_ERR_INVALID,
                      "2:9: log.level must not contain NUL");
}

static void test_config_rejects_value_out_of_range(void **state)
{
    expect_file_error(state, "[http]\nport = 70000\n", MN_ERR_INVALID,
                      "2:8: http.port must be in 0..65535, got 70000");
    expect_file_error(state, "[http]\nport = -1\n", MN_ERR_INVALID,
                      "2:8: http.port must be in 0..65535, got -1");
    expect_file_error(state, "[http]\nworker_threads = 0\n", MN_ERR_INVALID,
                      "2:18: http.worker_threads must be in 1..1024, got 0");
    expect_file_error(state, "[engine]\ndefault_lifecycle = \"forever\"\n", MN_ERR_INVALID,
                      "2:21: engine.default_lifecycle must be one of ephemeral|session|persistent,"
                      " got \"forever\"");
    expect_file_error(state, "[log]\nformat = \"xml\"\n", MN_ERR_INVALID,
                      "2:10: log.format must be one of text|json, got \"xml\"");
    expect_file_error(state, "[storage]\ndata_dir = \"\"\n", MN_ERR_INVALID,
                      "2:12: storage.data_dir must not be empty, got \"\"");
    expect_file_error(state, "[cluster]\nseeds = [\"a:1\", \"b\"]\n", MN_ERR_INVALID,
                      "2:9: cluster.seeds must be host:port, got \"b\"");
    expect_file_error(state, "[cluster]\nseeds = [\"b:99999\"]\n", MN_ERR_INVALID,
                      "2:9: cluster.seeds must be host:port (port 1..65535), got \"b:99999\"");
}

static void test_config_reports_syntax_errors_and_missing_file(void **state)
{
    expect_file_error(state, "[http]\n  port 7700\n", MN_ERR_PARSE,
                      "2:8: expected '=' after key \"port\"");
    expect_file_error(state, "[http]\nport = 1\nport = 2\n", MN_ERR_PARSE,
                      "3:1: duplicate key \"port\" (first defined at 2:1)");
    mn_config_t c;
    mn_error e = {0};
    assert_int_equal(mn_config_load(&c, "/nonexistent/mnemo.toml", NULL, &e), MN_ERR_IO);
    assert_string_equal(e.message,
                        "cannot open /nonexistent/mnemo.toml: No such file or directory");
    mn_config_free(&c);
}

/* ---- environment ---- */

static void test_config_env_overrides_file(void **state)
{
    const char *path = config_fixture_write(state, "[http]\nport = 8080\n[storage]\nsync = true\n");
    char *envp[] = {
        "PATH=/usr/bin",
        "MNEMO_CONFIG=/etc/mnemo.toml", /* not a table: not ours, ignored */
        "MNEMO_HTTP_PORT=9090",
        "MNEMO_STORAGE_DATA_DIR=/srv/mnemo data",
        "MNEMO_STORAGE_SYNC=false",
        "MNEMO_CLUSTER_ENABLED=1",
        "MNEMO_CLUSTER_SEEDS= a:1, b:2 ,,",
        "MNEMO_HTTP_MAX_BODY_BYTES=1_048_576",
        "MNEMO_LOG_LEVEL=warn",
        NULL,
    };
    mn_config_t c;
    load_ok(&c, path, envp);
    assert_int_equal(c.http.port, 9090);
    assert_string_equal(c.storage.data_dir, "/srv/mnemo data");
    assert_false(c.storage.sync);
    assert_true(c.cluster.enabled);
    assert_int_equal(c.cluster.seeds.count, 2);
    assert_string_equal(c.cluster.seeds.items[0], "a:1");
    assert_string_equal(c.cluster.seeds.items[1], "b:2");
    assert_int_equal(c.http.max_body_bytes, 1048576);
    assert_string_equal(c.log.level, "warn");
    mn_config_free(&c);
}

static void test_config_env_accepts_toml_array_and_empty_list(void **state)
{
    (void)state;
    char *envp[] = {"MNEMO_CLUSTER_SEEDS=[\"x:1\", 'y:2']", NULL};
    mn_config_t c;
    load_ok(&c, NULL, envp);
    assert_int_equal(c.cluster.seeds.count, 2);
    assert_string_equal(c.cluster.seeds.items[1], "y:2");
    mn_config_free(&c);
    char *envp2[] = {"MNEMO_CLUSTER_SEEDS=x:1", "MNEMO_CLUSTER_SEEDS=", NULL}; /* last wins */
    load_ok(&c, NULL, envp2);
    assert_int_equal(c.cluster.seeds.count, 0);
    mn_config_free(&c);
}

static void test_config_rejects_bad_env_value(void **state)
{
    (void)state;
    char *bad_int[] = {"MNEMO_HTTP_PORT=abc", NULL};
    expect_env_error(bad_int, "MNEMO_HTTP_PORT: http.port expects an integer, got \"abc\"");
    char *range[] = {"MNEMO_HTTP_PORT=70000", NULL};
    expect_env_error(range, "MNEMO_HTTP_PORT: http.port must be in 0..65535, got 70000");
    char *bad_bool[] = {"MNEMO_STORAGE_SYNC=maybe", NULL};
    expect_env_error(bad_bool, "MNEMO_STORAGE_SYNC: storage.sync expects true or false, got "
                               "\"maybe\"");
    char *bad_enum[] = {"MNEMO_LOG_FORMAT=yaml", NULL};
    expect_env_error(bad_enum,
                     "MNEMO_LOG_FORMAT: log.format must be one of text|json, got \"yaml\"");
    char *typo[] = {"MNEMO_HTTP_PROT=1", NULL};
    expect_env_error(typo, "MNEMO_HTTP_PROT: no such configuration key (did you mean "
                           "\"MNEMO_HTTP_PORT\"?)");
    char *bad_seed[] = {"MNEMO_CLUSTER_SEEDS=a:1,nope", NULL};
    expect_env_error(bad_seed, "MNEMO_CLUSTER_SEEDS: cluster.seeds must be host:port, got "
                               "\"nope\"");
    char *bad_arr[] = {"MNEMO_CLUSTER_SEEDS=[\"a:1\", 2]", NULL};
    expect_env_error(bad_arr, "MNEMO_CLUSTER_SEEDS: cluster.seeds expects an array of strings");
    mn_config_t c;
    mn_error e = {0};
    char *bad_syntax[] = {"MNEMO_CLUSTER_SEEDS=[\"a:1\"", NULL};
    assert_int_equal(mn_config_load(&c, NULL, bad_syntax, &e), MN_ERR_PARSE);
    assert_string_equal(e.message, "MNEMO_CLUSTER_SEEDS:1:1: unterminated array");
    mn_config_free(&c);
}

static void test_config_cluster_placement_keys_default_override_and_check(void **state)
{
    (void)state;
    mn_config_t c;
    load_ok(&c, NULL, NULL);
    assert_int_equal(c.cluster.replication_factor, 3);
    assert_int_equal(c.cluster.rebalance_concurrency, 4);
    assert_int_equal(c.cluster.peer_port, 7702);
    assert_string_equal(c.cluster.write_consistency, "quorum");
    assert_int_equal(c.cluster.write_timeout_ms, 2000);
    assert_int_equal(c.cluster.hedge_budget_percent, 10);
    assert_int_equal(c.cluster.leave_handover_ms, 5000);
    assert_string_equal(c.cluster.zone, "");
    mn_config_free(&c);
    char *envp[] = {"MNEMO_CLUSTER_REPLICATION_FACTOR=5", "MNEMO_CLUSTER_PEER_PORT=7800",
                    "MNEMO_CLUSTER_WRITE_CONSISTENCY=one", "MNEMO_CLUSTER_ZONE=eu-west.1a",
                    "MNEMO_CLUSTER_WRITE_TIMEOUT_MS=250", "MNEMO_CLUSTER_HEDGE_BUDGET_PERCENT=0",
                    "MNEMO_CLUSTER_LEAVE_HANDOVER_MS=0", NULL};
    load_ok(&c, NULL, envp);
    assert_int_equal(c.cluster.leave_handover_ms, 0);
    assert_int_equal(c.cluster.write_timeout_ms, 250);
    assert_int_equal(c.cluster.hedge_budget_percent, 0);
    assert_int_equal(c.cluster.replication_factor, 5);
    assert_int_equal(c.cluster.peer_port, 7800);
    assert_string_equal(c.cluster.write_consistency, "one");
    assert_string_equal(c.cluster.zone, "eu-west.1a");
    mn_config_free(&c);
    char *rf[] = {"MNEMO_CLUSTER_REPLICATION_FACTOR=8", NULL};
    expect_env_error(rf, "MNEMO_CLUSTER_REPLICATION_FACTOR: cluster.replication_factor must be "
                         "in 1..7, got 8");
    char *wc[] = {"MNEMO_CLUSTER_WRITE_CONSISTENCY=most", NULL};
    expect_env_error(wc, "MNEMO_CLUSTER_WRITE_CONSISTENCY: cluster.write_consistency must be "
                         "one of one|quorum|all, got \"most\"");
    char *wt[] = {"MNEMO_CLUSTER_WRITE_TIMEOUT_MS=0", NULL};
    expect_env_error(wt, "MNEMO_CLUSTER_WRITE_TIMEOUT_MS: cluster.write_timeout_ms must be in "
                         "1..600000, got 0");
    char *hb[] = {"MNEMO_CLUSTER_HEDGE_BUDGET_PERCENT=101", NULL};
    expect_env_error(hb, "MNEMO_CLUSTER_HEDGE_BUDGET_PERCENT: cluster.hedge_budget_percent must "
                         "be in 0..100, got 101");
    char *lh[] = {"MNEMO_CLUSTER_LEAVE_HANDOVER_MS=-1", NULL};
    expect_env_error(lh, "MNEMO_CLUSTER_LEAVE_HANDOVER_MS: cluster.leave_handover_ms must be in "
                         "0..600000, got -1");
    char *zone[] = {"MNEMO_CLUSTER_ZONE=a;b", NULL};
    expect_env_error(zone, "MNEMO_CLUSTER_ZONE: cluster.zone may only hold letters, digits and "
                           ". _ : -, got \"a;b\"");
}

/* ---- set and dump ---- */

static void test_config_set_parses_text_per_type(void **state)
{
    (void)state;
    mn_config_t c;
    mn_error e = {0};
    load_ok(&c, NULL, NULL);
    assert_int_equal(mn_config_set(&c, "http.port", "0", "--set", &e), MN_OK);
    assert_int_equal(c.http.port, 0);
    assert_int_equal(mn_config_set(&c, "cluster.node_id", "n1", NULL, &e), MN_OK);
    assert_string_equal(c.cluster.node_id, "n1");
    assert_int_equal(mn_config_set(&c, "http.prot", "1", "--set", &e), MN_ERR_INVALID);
    assert_string_equal(e.message, "--set: unknown key \"http.prot\" (did you mean "
                                   "\"http.port\"?)");
    assert_int_equal(mn_config_set(&c, "http.port", "x", "--set", &e), MN_ERR_INVALID);
    assert_int_equal(c.http.port, 0); /* unchanged on error */
    mn_config_free(&c);
}

static void test_config_dump_round_trips_and_hides_the_key(void **state)
{
    config_fixture *f = *state;
    char *envp[] = {
        "MNEMO_STORAGE_DATA_DIR=/d \"quoted\" \\ caf\xc3\xa9",
        "MNEMO_CLUSTER_SEEDS=h1:1,h2:2",
        "MNEMO_CLUSTER_KEY=top-secret",
        "MNEMO_HTTP_PORT=0",
        "MNEMO_CLUSTER_ENABLED=true",
        NULL,
    };
    mn_config_t c;
    load_ok(&c, NULL, envp);
    char *text = dump(&c);
    assert_null(strstr(text, "top-secret"));
    assert_non_null(strstr(text, "# key = (set, not shown)\n"));
    assert_non_null(strstr(text, "[cluster]\n"));
    FILE *fp = fopen(f->path, "w");
    fputs(text, fp);
    fclose(fp);
    mn_config_t back;
    load_ok(&back, f->path, NULL);
    assert_string_equal(back.storage.data_dir, c.storage.data_dir);
    assert_int_equal(back.cluster.seeds.count, 2);
    assert_string_equal(back.cluster.key, ""); /* not written, so the default */
    free(c.cluster.key);
    c.cluster.key = strdup("");
    char *again = dump(&back), *orig = dump(&c);
    assert_string_equal(again, orig);
    free(text);
    free(again);
    free(orig);
    mn_config_free(&c);
    mn_config_free(&back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults_without_file),
        cmocka_unit_test(test_config_example_file_equals_defaults),
        cmocka_unit_test(test_config_example_file_documents_every_key),
        cmocka_unit_test_setup_teardown(test_config_file_overrides_defaults, config_fixture_setup,
                                        config_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_config_accepts_dotted_keys_and_inline_tables,
                                        config_fixture_setup, config_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_config_rejects_unknown_key, config_fixture_setup,
                                        config_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_config_rejects_wrong_type, config_fixture_setup,
                                        config_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_config_rejects_value_out_of_range,
                                        config_fixture_setup, config_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_config_reports_syntax_errors_and_missing_file,
                                        config_fixture_setup, config_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_config_env_overrides_file, config_fixture_setup,
                                        config_fixture_teardown),
        cmocka_unit_test(test_config_env_accepts_toml_array_and_empty_list),
        cmocka_unit_test(test_config_rejects_bad_env_value),
        cmocka_unit_test(test_config_cluster_placement_keys_default_override_and_check),
        cmocka_unit_test(test_config_set_parses_text_per_type),
        cmocka_unit_test_setup_teardown(test_config_dump_round_trips_and_hides_the_key,
                                        config_fixture_setup, config_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
