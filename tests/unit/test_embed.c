/* api/embed: the provider's url taken apart (hosts, IPv6, default ports, paths, what is
 * refused) and the [embedding] settings checked together. The requests themselves are
 * tested end to end against a stand-in provider (tests/integration/test_embedding.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "api/embed/embed.h"
#include "api/embed/embed_internal.h"

static void test_url_parse(void **state)
{
    (void)state;
    mn__embed_url u;
    mn_error err = {0};
    assert_int_equal(mn__embed_url_parse("http://127.0.0.1:11434/v1/embeddings", &u, &err), MN_OK);
    assert_false(u.tls);
    assert_string_equal(u.host, "127.0.0.1");
    assert_string_equal(u.port, "11434");
    assert_string_equal(u.path, "/v1/embeddings");
    assert_string_equal(u.authority, "127.0.0.1:11434");

    assert_int_equal(mn__embed_url_parse("https://api.example.com/v1/embeddings", &u, &err), MN_OK);
    assert_true(u.tls);
    assert_string_equal(u.port, "443");
    assert_int_equal(mn__embed_url_parse("http://embedder", &u, &err), MN_OK);
    assert_string_equal(u.port, "80");
    assert_string_equal(u.path, "/");
    assert_int_equal(mn__embed_url_parse("http://[::1]:8080/v1/embeddings", &u, &err), MN_OK);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.authority, "[::1]:8080");

    static const char *const bad[] = {
        "ftp://h/x",     "http://",          "http:///x",     "http://:80/x",
        "http://h:0/x",  "http://h:65536/x", "http://h:8a/x", "http://user:pw@h/x",
        "http://[::1/x", "http://[::1]x/y",  "h:80/x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(mn__embed_url_parse(bad[i], &u, &err), MN_ERR_INVALID);
        assert_non_null(strstr(err.message, "embedding.url"));
    }
}

static void test_config_check(void **state)
{
    (void)state;
    mn_config_embedding_t c = {.url = "", .model = "", .dim = 0, .api_key_env = "", .ca_file = ""};
    mn_error err = {0};
    assert_int_equal(mn_embed_config_check(&c, &err), MN_OK); /* off */
    mn_embed_t *em = (mn_embed_t *)&c;
    assert_int_equal(mn_embed_start(&c, NULL, &em, &err), MN_OK);
    assert_null(em);
    c.model = "m";
    assert_int_equal(mn_embed_config_check(&c, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "embedding.url"));
    c.url = "http://127.0.0.1:9/v1/embeddings";
    assert_int_equal(mn_embed_config_check(&c, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "embedding.dim is required"));
    c.dim = 8;
    assert_int_equal(mn_embed_config_check(&c, &err), MN_OK);
    c.model = "";
    assert_int_equal(mn_embed_config_check(&c, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "embedding.model is required"));
    c.model = "m";
    unsetenv("MN_TEST_EMBED_KEY");
    c.api_key_env = "MN_TEST_EMBED_KEY";
    assert_int_equal(mn_embed_config_check(&c, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "not set"));
    setenv("MN_TEST_EMBED_KEY", "two words", 1);
    assert_int_equal(mn_embed_config_check(&c, &err), MN_ERR_INVALID);
    setenv("MN_TEST_EMBED_KEY", "sk-123", 1);
    assert_int_equal(mn_embed_config_check(&c, &err), MN_OK);
    c.url = "https://127.0.0.1:9/v1/embeddings";
    c.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(mn_embed_config_check(&c, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "embedding.ca_file"));
    c.ca_file = "";
    assert_int_equal(mn_embed_config_check(&c, &err), MN_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_config_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
