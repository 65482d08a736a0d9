/* A space's embedding_model (docs/config.md, "Embedding provider"): the engine checks it
 * (at most MN_EMBEDDING_MODEL_MAX bytes of printable ASCII), stores it with the space and
 * keeps it across a restart, telling "none recorded" (absent) from "" (never embed); a
 * definition stored before the field existed loads as none recorded. The provider
 * (api/embed) serves a space only while its model is the one recorded, and a space made
 * while it applies records its model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/embed/embed.h"
#include "engine/engine_internal.h"
#include "mnemo/engine.h"
#include "mnemo/wire.h"
#include "testutil.h"

typedef mn_test_eng fx;

static int setup(void **state)
{
    return mn_test_eng_setup(state, "mnemo-embmodel", false);
}

static mn_space_def_t def_of(const char *name, uint32_t dim)
{
    mn_space_def_t d;
    memset(&d, 0, sizeof d);
    snprintf(d.name, sizeof d.name, "%s", name);
    d.dim = dim;
    return d;
}

static mn_err create(fx *f, const char *name, const char *model, mn_error *err)
{
    mn_space_def_t d = def_of(name, 4);
    if (model) {
        snprintf(d.embedding_model, sizeof d.embedding_model, "%s", model);
        d.embedding_model_set = true;
    }
    return mn_engine_space_create(f->e, &d, NULL, err);
}

static mn_space_def_t get(fx *f, const char *name)
{
    mn_space_stats_t st;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_get(f->e, name, &st, &err), MN_OK);
    return st.def;
}

static void test_checked(void **state)
{
    fx *f = *state;
    mn_error err = {0};
    char long_name[MN_EMBEDDING_MODEL_MAX + 2];
    memset(long_name, 'm', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(mn_engine_embedding_model_check(long_name, strlen(long_name), &err),
                     MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "embedding_model: at most 128 bytes, got 129"));
    long_name[MN_EMBEDDING_MODEL_MAX] = '\0'; /* 128 bytes: fine */
    assert_int_equal(create(f, "long", long_name, &err), MN_OK);
    assert_string_equal(get(f, "long").embedding_model, long_name);

    assert_int_equal(create(f, "tab", "nomic\tembed", &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "embedding_model: printable ASCII only, byte 5 is 0x09"));
    assert_int_equal(create(f, "nl", "m\n", &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "0x0a"));
    assert_int_equal(create(f, "del", "m\x7f", &err), MN_ERR_INVALID);
    assert_int_equal(create(f, "utf", "mod\xc3\xa8le", &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "0xc3"));
    /* a refused definition made no space */
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->e, "tab", &st, &err), MN_ERR_NOT_FOUND);

    /* a struct whose field is not terminated is refused, not read past */
    mn_space_def_t d = def_of("unterminated", 4);
    memset(d.embedding_model, 'x', sizeof d.embedding_model);
    d.embedding_model_set = true;
    assert_int_equal(mn_engine_space_create(f->e, &d, NULL, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "embedding_model"));
}

static void test_stored_and_kept_across_restart(void **state)
{
    fx *f = *state;
    mn_error err = {0};
    mn_space_def_t out, d = def_of("named", 4);
    snprintf(d.embedding_model, sizeof d.embedding_model, "nomic-ai/nomic-embed-text:v1.5");
    d.embedding_model_set = true;
    assert_int_equal(mn_engine_space_create(f->e, &d, &out, &err), MN_OK);
    assert_true(out.embedding_model_set);
    assert_string_equal(out.embedding_model, "nomic-ai/nomic-embed-text:v1.5");
    assert_int_equal(create(f, "never", "", &err), MN_OK);
    d = def_of("unset", 4);
    memcpy(d.embedding_model, "ignored", 8); /* not set: not stored */
    assert_int_equal(mn_engine_space_create(f->e, &d, &out, &err), MN_OK);
    assert_false(out.embedding_model_set);
    assert_string_equal(out.embedding_model, "");

    for (int round = 0; round < 2; round++) {
        mn_space_def_t g = get(f, "named");
        assert_true(g.embedding_model_set);
        assert_string_equal(g.embedding_model, "nomic-ai/nomic-embed-text:v1.5");
        g = get(f, "never");
        assert_true(g.embedding_model_set);
        assert_string_equal(g.embedding_model, "");
        g = get(f, "unset");
        assert_false(g.embedding_model_set);
        assert_string_equal(g.embedding_model, "");
        mn_test_eng_reopen(f);
    }

    /* a definition stored before the field existed (none in the entry) loads as none
     * recorded */
    mn_engine_t *e = (mn_engine_t *)f->e;
    char mk[] = "space/named";
    char *v;
    size_t vl;
    assert_int_equal(mn__store_get(&e->store, CF_META, mk, strlen(mk), &v, &vl, NULL), MN_OK);
    mn_wal_entry_t en;
    assert_int_equal(mn_wire_wal_decode((const uint8_t *)v, vl, &en, NULL), MN_OK);
    free(v);
    en.op.space_create.def.embedding_model_set = false;
    uint8_t *buf;
    size_t bl;
    assert_int_equal(mn_wire_wal_encode(&en, &buf, &bl), MN_OK);
    mn_wal_entry_clear(&en);
    char *msg = NULL;
    rocksdb_put_cf(e->store.db, e->store.wsync, e->store.cf[CF_META], mk, strlen(mk),
                   (const char *)buf, bl, &msg);
    assert_null(msg);
    free(buf);
    mn_test_eng_reopen(f);
    mn_space_def_t g = get(f, "named");
    assert_false(g.embedding_model_set);
    assert_string_equal(g.embedding_model, "");
}

/* The provider's rule over definitions (it never reaches its url here: no space has
 * memories). */
static void test_provider_serves_the_recorded_model_only(void **state)
{
    fx *f = *state;
    char *spaces[] = {"a", "b", "c", "d"};
    mn_config_embedding_t c = {.url = "http://127.0.0.1:9/v1/embeddings",
                               .model = "model-a",
                               .dim = 4,
                               .spaces = {spaces, 4},
                               .batch_size = 8,
                               .timeout_ms = 100,
                               .max_backlog = 16,
                               .retry_max_ms = 100,
                               .backfill_interval_s = 60,
                               .api_key_env = "",
                               .ca_file = ""};
    mn_embed_t *em = NULL;
    mn_error err = {0};
    assert_int_equal(mn_embed_start(&c, f->e, &em, &err), MN_OK);
    assert_non_null(em);

    mn_space_def_t d = def_of("a", 4); /* applies, none named: records model-a */
    mn_embed_space_new(em, &d);
    assert_true(d.embedding_model_set);
    assert_string_equal(d.embedding_model, "model-a");
    assert_string_equal(mn_embed_model_for(em, &d), "model-a");

    d = def_of("b", 4); /* names another model: kept, not served */
    snprintf(d.embedding_model, sizeof d.embedding_model, "model-b");
    d.embedding_model_set = true;
    mn_embed_space_new(em, &d);
    assert_string_equal(d.embedding_model, "model-b");
    assert_null(mn_embed_model_for(em, &d));

    d = def_of("c", 4); /* "": never */
    d.embedding_model_set = true;
    mn_embed_space_new(em, &d);
    assert_string_equal(d.embedding_model, "");
    assert_null(mn_embed_model_for(em, &d));

    d = def_of("d", 8); /* another dim: the provider does not apply, nothing recorded */
    mn_embed_space_new(em, &d);
    assert_false(d.embedding_model_set);
    assert_null(mn_embed_model_for(em, &d));

    d = def_of("e", 4); /* not in embedding.spaces: nothing recorded */
    mn_embed_space_new(em, &d);
    assert_false(d.embedding_model_set);

    d = def_of("a", 4); /* none recorded (older space): today's rule */
    assert_string_equal(mn_embed_model_for(em, &d), "model-a");
    snprintf(d.embedding_model, sizeof d.embedding_model, "model-a"); /* explicit match */
    d.embedding_model_set = true;
    assert_string_equal(mn_embed_model_for(em, &d), "model-a");
    d.dim = 8; /* a recorded model does not make another dim fit */
    assert_null(mn_embed_model_for(em, &d));
    mn_embed_stop(em);

    mn_embed_space_new(NULL, &d); /* no provider: nothing */
    d = def_of("a", 4);
    mn_embed_space_new(NULL, &d);
    assert_false(d.embedding_model_set);

    /* a model name that could not be recorded is refused in the config */
    char too_long[MN_EMBEDDING_MODEL_MAX + 2];
    memset(too_long, 'm', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    c.model = too_long;
    assert_int_equal(mn_embed_config_check(&c, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "embedding.model: at most 128 bytes"));
    c.model = "bad\x01model";
    assert_int_equal(mn_embed_config_check(&c, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "embedding.model: printable ASCII only"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_checked, setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_stored_and_kept_across_restart, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_provider_serves_the_recorded_model_only, setup,
                                        mn_test_eng_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
