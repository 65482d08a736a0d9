/* engine: the keyword index is stored (a term list per memory, written with
 * the memory) and loaded at start-up without tokenising; a missing, malformed
 * or stale list is rebuilt from the record, and so is every list when the
 * tokenizer changed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "engine/text/keyword.h"
#include "mnemo/engine.h"
#include "testutil.h"

typedef mn_test_eng fx;

static int setup(void **state)
{
    return mn_test_eng_setup(state, "mnemo-kw", false);
}

static void reopen(fx *f)
{
    mn_test_eng_reopen(f);
}

static mn_engine_t *E(fx *f)
{
    return (mn_engine_t *)f->e;
}

static mn_id_t remember_text(fx *f, const char *text)
{
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)text;
    m.content_len = strlen(text);
    mn_id_t id;
    mn_error err = {0};
    assert_int_equal(mn_engine_remember(f->e, "s", &m, 1, &id, &err), MN_OK);
    return id;
}

/* Ids recalled by words, as a count; *first gets the best. */
static size_t recall_words(fx *f, const char *words, mn_id_t *first)
{
    mn_recall_req_t req = {0};
    req.text = words;
    req.text_len = strlen(words);
    mn_filter_init(&req.filter);
    mn_recall_result_t r;
    mn_error err = {0};
    assert_int_equal(mn_engine_recall(f->e, "s", &req, &r, &err), MN_OK);
    size_t n = r.n_hits;
    if (n && first) *first = r.hits[0].memory.id;
    mn_recall_result_clear(&r);
    return n;
}

static void kw_key(fx *f, const mn_id_t *id, uint8_t k[KEY_MEM_LEN])
{
    mn__key_mem(k, mn_test_space_sid(f->e, "s"), id);
}

static bool kw_get(fx *f, const void *k, size_t kl, char **v, size_t *vl)
{
    assert_int_equal(mn__store_get(&E(f)->store, CF_KEYWORDS, k, kl, v, vl, NULL), MN_OK);
    return *v != NULL;
}

static void kw_put(fx *f, const void *k, size_t kl, const void *v, size_t vl)
{
    char *msg = NULL;
    rocksdb_put_cf(E(f)->store.db, E(f)->store.wsync, E(f)->store.cf[CF_KEYWORDS], (const char *)k,
                   kl, (const char *)v, vl, &msg);
    assert_null(msg);
}

static void kw_del(fx *f, const void *k, size_t kl)
{
    char *msg = NULL;
    rocksdb_delete_cf(E(f)->store.db, E(f)->store.wsync, E(f)->store.cf[CF_KEYWORDS],
                      (const char *)k, kl, &msg);
    assert_null(msg);
}

/* Stores for id the term list of other (same length as its content): a list the
 * engine can only have used if it loaded it instead of tokenising. */
static void plant_list(fx *f, const mn_id_t *id, const char *other)
{
    uint8_t k[KEY_MEM_LEN], *doc;
    size_t len;
    kw_key(f, id, k);
    assert_int_equal(mn_kw_doc_encode(other, strlen(other), &doc, &len), MN_OK);
    kw_put(f, k, sizeof k, doc, len);
    free(doc);
}

static void test_term_lists_are_written_with_the_memory_and_loaded(void **state)
{
    fx *f = *state;
    assert_int_equal(mn_test_space(f->e, "s", 2, MN_METRIC_COSINE), MN_OK);
    mn_id_t a = remember_text(f, "Alpha beta gamma"); /* 16 bytes */
    mn_id_t b = remember_text(f, "delta epsilon beta");
    /* the list is in the keywords family, made by this tokenizer */
    uint8_t k[KEY_MEM_LEN], hk[KEY_SID_LEN];
    kw_key(f, &a, k);
    char *v;
    size_t vl;
    assert_true(kw_get(f, k, sizeof k, &v, &vl));
    mn_kw_term_t terms[8];
    uint64_t cl;
    uint32_t tokens, n;
    assert_int_equal(mn_kw_doc_decode((uint8_t *)v, vl, &cl, &tokens, terms, 8, &n), MN_OK);
    assert_int_equal(cl, 16);
    assert_int_equal(tokens, 3);
    assert_int_equal(n, 3);
    assert_int_equal(terms[0].len, 5);
    assert_memory_equal(terms[0].text, "alpha", 5); /* folded */
    free(v);
    mn__key_sid(hk, mn_test_space_sid(f->e, "s"));
    assert_true(kw_get(f, hk, sizeof hk, &v, &vl));
    assert_true(mn_kw_header_current(v, vl));
    free(v);

    /* restart loads the stored lists: a planted list (words the content does not
     * have) is what the index holds afterwards */
    plant_list(f, &a, "zebra zebra qqqq");
    reopen(f);
    mn_id_t got;
    assert_int_equal(recall_words(f, "zebra", &got), 1);
    assert_memory_equal(got.b, a.b, 16);
    assert_int_equal(recall_words(f, "beta", &got), 1); /* only b's list has it now */
    assert_memory_equal(got.b, b.b, 16);

    /* forgetting deletes the list */
    mn_error err = {0};
    assert_int_equal(mn_engine_forget(f->e, "s", &b, MN_FORGET_DELETE, &err), MN_OK);
    kw_key(f, &b, k);
    assert_false(kw_get(f, k, sizeof k, &v, &vl));
    assert_int_equal(recall_words(f, "epsilon", NULL), 0);
}

static void test_missing_or_malformed_lists_are_rebuilt_from_records(void **state)
{
    fx *f = *state;
    assert_int_equal(mn_test_space(f->e, "s", 2, MN_METRIC_COSINE), MN_OK);
    mn_id_t a = remember_text(f, "the lighthouse keeper");
    mn_id_t b = remember_text(f, "a quiet harbour town");
    mn_id_t c = remember_text(f, "fishing boats at dawn");
    uint8_t ka[KEY_MEM_LEN], kb[KEY_MEM_LEN], kc[KEY_MEM_LEN];
    kw_key(f, &a, ka);
    kw_key(f, &b, kb);
    kw_key(f, &c, kc);
    kw_del(f, ka, sizeof ka);                          /* missing */
    kw_put(f, kb, sizeof kb, "\x01\x14\x03\x02xx", 7); /* malformed */
    plant_list(f, &c, "short");                        /* another content length: stale */
    reopen(f);
    assert_int_equal(recall_words(f, "lighthouse", NULL), 1);
    assert_int_equal(recall_words(f, "harbour", NULL), 1);
    assert_int_equal(recall_words(f, "dawn", NULL), 1);
    assert_int_equal(recall_words(f, "short", NULL), 0);
    /* and stored again */
    char *v;
    size_t vl;
    uint64_t cl;
    const uint8_t *keys[3] = {ka, kb, kc};
    for (int i = 0; i < 3; i++) {
        assert_true(kw_get(f, keys[i], KEY_MEM_LEN, &v, &vl));
        uint32_t tokens, n;
        assert_int_equal(mn_kw_doc_decode((uint8_t *)v, vl, &cl, &tokens, NULL, 0, &n), MN_OK);
        assert_true(tokens >= 3);
        free(v);
    }
    mn_engine_metrics_t m;
    mn_error err = {0};
    assert_int_equal(mn_engine_get_metrics(f->e, &m, &err), MN_OK);
    assert_int_equal(m.spaces[0].keyword_docs, 3);
    mn_engine_metrics_clear(&m);
}

static void test_another_tokenizer_rebuilds_every_list(void **state)
{
    fx *f = *state;
    assert_int_equal(mn_test_space(f->e, "s", 2, MN_METRIC_COSINE), MN_OK);
    mn_id_t a = remember_text(f, "Alpha beta gamma");
    remember_text(f, "Crème brûlée");
    plant_list(f, &a, "zebra zebra qqqq");
    /* the header says the lists were made by another tokenizer */
    uint8_t hk[KEY_SID_LEN], hv[MN_KW_HEADER_LEN];
    mn__key_sid(hk, mn_test_space_sid(f->e, "s"));
    mn_kw_header(hv);
    hv[6] ^= 0x5a;
    kw_put(f, hk, sizeof hk, hv, sizeof hv);
    reopen(f);
    assert_int_equal(recall_words(f, "zebra", NULL), 0); /* the planted list was not used */
    assert_int_equal(recall_words(f, "alpha", NULL), 1);
    assert_int_equal(recall_words(f, "creme brulee", NULL), 1);
    char *v;
    size_t vl;
    assert_true(kw_get(f, hk, sizeof hk, &v, &vl));
    assert_true(mn_kw_header_current(v, vl));
    free(v);
    /* a store from before the lists existed (no header at all) is built once too */
    kw_del(f, hk, sizeof hk);
    plant_list(f, &a, "zebra zebra qqqq");
    reopen(f);
    assert_int_equal(recall_words(f, "zebra", NULL), 0);
    assert_int_equal(recall_words(f, "gamma", NULL), 1);
    assert_true(kw_get(f, hk, sizeof hk, &v, &vl));
    assert_true(mn_kw_header_current(v, vl));
    free(v);
}

static void test_term_list_codec_rejects_damage(void **state)
{
    (void)state;
    const char *t = "one two two three three three";
    uint8_t *doc;
    size_t len;
    assert_int_equal(mn_kw_doc_encode(t, strlen(t), &doc, &len), MN_OK);
    mn_kw_term_t terms[4];
    uint64_t cl;
    uint32_t tokens, n;
    assert_int_equal(mn_kw_doc_decode(doc, len, &cl, &tokens, terms, 4, &n), MN_OK);
    assert_int_equal(tokens, 6);
    assert_int_equal(n, 3);
    uint32_t sum = 0;
    for (uint32_t i = 0; i < n; i++)
        sum += terms[i].tf;
    assert_int_equal(sum, 6);
    assert_int_equal(mn_kw_doc_decode(doc, len, &cl, &tokens, terms, 2, &n), MN_ERR_NOMEM);
    assert_int_equal(n, 3);
    /* every truncation and every single-byte change that breaks the structure is caught */
    for (size_t l = 0; l < len; l++)
        assert_int_equal(mn_kw_doc_decode(doc, l, &cl, &tokens, terms, 4, &n), MN_ERR_CORRUPT);
    for (size_t i = 0; i < len; i++) {
        uint8_t save = doc[i];
        for (int x = 1; x < 256; x++) {
            doc[i] = (uint8_t)(save ^ x);
            mn_err rc = mn_kw_doc_decode(doc, len, &cl, &tokens, terms, 4, &n);
            assert_true(rc == MN_OK || rc == MN_ERR_CORRUPT || rc == MN_ERR_NOMEM);
            if (rc == MN_OK) { /* a change that still parses keeps the sums right */
                uint32_t s2 = 0;
                for (uint32_t j = 0; j < n; j++)
                    s2 += terms[j].tf;
                assert_int_equal(s2, tokens);
            }
        }
        doc[i] = save;
    }
    free(doc);
    /* the fingerprint is stable within a build */
    assert_true(mn_kw_tokenizer_fingerprint() == mn_kw_tokenizer_fingerprint());
    assert_true(mn_kw_tokenizer_fingerprint() != 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_term_lists_are_written_with_the_memory_and_loaded,
                                        setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_missing_or_malformed_lists_are_rebuilt_from_records,
                                        setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_another_tokenizer_rebuilds_every_list, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test(test_term_list_codec_rejects_damage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
