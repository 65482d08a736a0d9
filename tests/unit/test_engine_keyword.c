/* engine: the keyword index is stored (a term list per memory, written with
 * the memory) and loaded at start-up without tokenising; a missing, malformed
 * or stale list is rebuilt from the record, and so is every list when the
 * tokenizer changed (its version, the space's language or the stemmer). A
 * space's text_language is checked, stored and kept; a definition stored
 * before languages existed loads as english. */
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
#include "engine/text/text.h"
#include "mnemo/wire.h"
#include "mnemo/engine.h"
#include "testutil.h"

typedef mn_test_eng fx;

static int EN(void)
{
    return mn_text_language_parse("english");
}

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
    mn_kw_text_t t = {.content = other, .content_len = strlen(other)};
    assert_int_equal(mn_kw_doc_encode(EN(), &t, &doc, &len), MN_OK);
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
    uint32_t tokens[MN_KW_FIELDS], n;
    assert_int_equal(mn_kw_doc_decode((uint8_t *)v, vl, &cl, tokens, terms, 8, &n), MN_OK);
    assert_int_equal(cl, 16);
    assert_int_equal(tokens[MN_KW_CONTENT], 3);
    assert_int_equal(n, 3);
    assert_int_equal(terms[0].len, 5);
    assert_memory_equal(terms[0].text, "alpha", 5); /* folded */
    free(v);
    mn__key_sid(hk, mn_test_space_sid(f->e, "s"));
    assert_true(kw_get(f, hk, sizeof hk, &v, &vl));
    assert_true(mn_kw_header_current(EN(), v, vl));
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
        uint32_t tokens[MN_KW_FIELDS], n;
        assert_int_equal(mn_kw_doc_decode((uint8_t *)v, vl, &cl, tokens, NULL, 0, &n), MN_OK);
        assert_true(tokens[MN_KW_CONTENT] >= 3);
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
    mn_kw_header(EN(), hv);
    hv[6] ^= 0x5a;
    kw_put(f, hk, sizeof hk, hv, sizeof hv);
    reopen(f);
    assert_int_equal(recall_words(f, "zebra", NULL), 0); /* the planted list was not used */
    assert_int_equal(recall_words(f, "alpha", NULL), 1);
    assert_int_equal(recall_words(f, "creme brulee", NULL), 1);
    char *v;
    size_t vl;
    assert_true(kw_get(f, hk, sizeof hk, &v, &vl));
    assert_true(mn_kw_header_current(EN(), v, vl));
    free(v);
    /* a store from before the lists existed (no header at all) is built once too */
    kw_del(f, hk, sizeof hk);
    plant_list(f, &a, "zebra zebra qqqq");
    reopen(f);
    assert_int_equal(recall_words(f, "zebra", NULL), 0);
    assert_int_equal(recall_words(f, "gamma", NULL), 1);
    assert_true(kw_get(f, hk, sizeof hk, &v, &vl));
    assert_true(mn_kw_header_current(EN(), v, vl));
    free(v);
}

static void test_term_list_codec_rejects_damage(void **state)
{
    (void)state;
    const char *t = "one two two three three three";
    uint8_t *doc;
    size_t len;
    char *tags[] = {"three-one"};
    mn_kw_text_t kt = {.content = t, .content_len = strlen(t), .tags = tags, .n_tags = 1,
                       .where = "Two"};
    assert_int_equal(mn_kw_doc_encode(EN(), &kt, &doc, &len), MN_OK);
    mn_kw_term_t terms[4];
    uint64_t cl;
    uint32_t tokens[MN_KW_FIELDS], n;
    assert_int_equal(mn_kw_doc_decode(doc, len, &cl, tokens, terms, 4, &n), MN_OK);
    assert_int_equal(cl, strlen(t));
    assert_int_equal(tokens[MN_KW_CONTENT], 6);
    assert_int_equal(tokens[MN_KW_TAGS], 2);
    assert_int_equal(tokens[MN_KW_WHO], 0);
    assert_int_equal(tokens[MN_KW_WHERE], 1);
    assert_int_equal(n, 3);
    uint32_t sum = 0;
    for (uint32_t i = 0; i < n; i++)
        sum += terms[i].tf[MN_KW_CONTENT];
    assert_int_equal(sum, 6);
    assert_memory_equal(terms[2].text, "three", 5);
    assert_int_equal(terms[2].tf[MN_KW_CONTENT], 3);
    assert_int_equal(terms[2].tf[MN_KW_TAGS], 1);
    assert_int_equal(terms[1].tf[MN_KW_WHERE], 1); /* "two" */
    assert_int_equal(mn_kw_doc_decode(doc, len, &cl, tokens, terms, 2, &n), MN_ERR_NOMEM);
    assert_int_equal(n, 3);
    /* every truncation and every single-byte change that breaks the structure is caught */
    for (size_t l = 0; l < len; l++)
        assert_int_equal(mn_kw_doc_decode(doc, l, &cl, tokens, terms, 4, &n), MN_ERR_CORRUPT);
    for (size_t i = 0; i < len; i++) {
        uint8_t save = doc[i];
        for (int x = 1; x < 256; x++) {
            doc[i] = (uint8_t)(save ^ x);
            mn_err rc = mn_kw_doc_decode(doc, len, &cl, tokens, terms, 4, &n);
            assert_true(rc == MN_OK || rc == MN_ERR_CORRUPT || rc == MN_ERR_NOMEM);
            for (int fl = 0; rc == MN_OK && fl < MN_KW_FIELDS; fl++) {
                /* a change that still parses keeps the sums right */
                uint32_t s2 = 0;
                for (uint32_t j = 0; j < n; j++)
                    s2 += terms[j].tf[fl];
                assert_int_equal(s2, tokens[fl]);
            }
        }
        doc[i] = save;
    }
    free(doc);
    /* the fingerprint is stable within a build and names the language */
    int fr = mn_text_language_parse("french"), none = MN_TEXT_LANG_NONE;
    assert_true(mn_kw_tokenizer_fingerprint(EN()) == mn_kw_tokenizer_fingerprint(EN()));
    assert_true(mn_kw_tokenizer_fingerprint(EN()) != 0);
    assert_true(mn_kw_tokenizer_fingerprint(EN()) != mn_kw_tokenizer_fingerprint(fr));
    assert_true(mn_kw_tokenizer_fingerprint(EN()) != mn_kw_tokenizer_fingerprint(none));
    uint8_t h_en[MN_KW_HEADER_LEN], h_none[MN_KW_HEADER_LEN];
    mn_kw_header(EN(), h_en);
    mn_kw_header(none, h_none);
    assert_true(mn_kw_header_current(EN(), h_en, sizeof h_en));
    assert_false(mn_kw_header_current(EN(), h_none, sizeof h_none));
}

/* A varint into p; returns its length. */
static size_t varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    for (; v >= 0x80; v >>= 7)
        p[n++] = (uint8_t)(v | 0x80);
    p[n++] = (uint8_t)v;
    return n;
}

/* A store written by the previous build: format-1 term lists of unstemmed
 * words (u8 1 | content bytes | tokens | terms | per term: length, bytes, tf)
 * under a format-1 header with its fingerprint. At load they are rebuilt, with
 * a log line, and recall finds stemmed matches. */
static void test_lists_of_the_previous_tokenizer_are_rebuilt_stemmed(void **state)
{
    fx *f = *state;
    assert_int_equal(mn_test_space(f->e, "s", 2, MN_METRIC_COSINE), MN_OK);
    const char *text = "Caroline went running with the dogs";
    mn_id_t a = remember_text(f, text);
    uint8_t k[KEY_MEM_LEN], hk[KEY_SID_LEN], old[128];
    kw_key(f, &a, k);
    size_t o = 0;
    old[o++] = 1;
    o += varint(old + o, strlen(text));
    o += varint(old + o, 6);
    o += varint(old + o, 6);
    const char *words[] = {"caroline", "went", "running", "with", "the", "dogs"};
    for (int i = 0; i < 6; i++) {
        old[o++] = (uint8_t)strlen(words[i]);
        memcpy(old + o, words[i], strlen(words[i]));
        o += strlen(words[i]);
        old[o++] = 1;
    }
    kw_put(f, k, sizeof k, old, o);
    mn__key_sid(hk, mn_test_space_sid(f->e, "s"));
    const uint8_t old_header[MN_KW_HEADER_LEN] = {1, 0, 0, 0, 0x25, 0x8b, 0x11, 0x3c,
                                                  0x90, 0x4e, 0xd7, 0x02};
    kw_put(f, hk, sizeof hk, old_header, sizeof old_header);
    /* mnemo check calls such a store stale (rebuilt at start), not damaged */
    mn_engine_close(f->e);
    f->e = NULL;
    mn_engine_check_report_t rep;
    FILE *devnull = fopen("/dev/null", "w");
    assert_non_null(devnull);
    assert_int_equal(mn_engine_check(f->dir, devnull, &rep, NULL), MN_OK);
    fclose(devnull);
    assert_int_equal(rep.keyword_lists, 1);
    assert_int_equal(rep.problems, 0);
    reopen(f);
    mn_id_t got;
    assert_int_equal(recall_words(f, "runs", &got), 1);
    assert_memory_equal(got.b, a.b, 16);
    assert_int_equal(recall_words(f, "dog", NULL), 1);
    char *v;
    size_t vl;
    assert_true(kw_get(f, hk, sizeof hk, &v, &vl));
    assert_true(mn_kw_header_current(EN(), v, vl));
    free(v);
    assert_true(kw_get(f, k, sizeof k, &v, &vl));
    assert_int_equal((uint8_t)v[0], MN_KW_DOC_FORMAT);
    free(v);
}

static mn_err create_lang(fx *f, const char *name, const char *lang, mn_space_def_t *out,
                          mn_error *err)
{
    mn_space_def_t d = {0};
    snprintf(d.name, sizeof d.name, "%s", name);
    snprintf(d.text_language, sizeof d.text_language, "%s", lang);
    d.dim = 2;
    return mn_engine_space_create(f->e, &d, out, err);
}

static void test_text_language_is_checked_stored_and_used(void **state)
{
    fx *f = *state;
    mn_error err = {0};
    mn_space_def_t out;
    assert_int_equal(create_lang(f, "k", "klingon", &out, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "text_language"));
    assert_non_null(strstr(err.message, "english"));
    assert_non_null(strstr(err.message, "klingon"));
    assert_non_null(strstr(err.message, "yiddish")); /* the whole list fits */
    assert_int_equal(create_lang(f, "d", "", &out, &err), MN_OK);
    assert_string_equal(out.text_language, "english");
    assert_int_equal(create_lang(f, "s", "none", &out, &err), MN_OK);
    assert_string_equal(out.text_language, "none");
    assert_int_equal(create_lang(f, "fr", "french", &out, &err), MN_OK);
    remember_text(f, "the dogs were running"); /* in s: no stemming */
    mn_id_t got;
    assert_int_equal(recall_words(f, "running", &got), 1);
    assert_int_equal(recall_words(f, "run", NULL), 0);
    reopen(f);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->e, "fr", &st, &err), MN_OK);
    assert_string_equal(st.def.text_language, "french");
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_string_equal(st.def.text_language, "none");
    assert_int_equal(recall_words(f, "run", NULL), 0);
    assert_int_equal(recall_words(f, "running", NULL), 1);

    /* a definition stored before text_language existed (none in the entry)
     * loads as english, and its lists are rebuilt stemmed */
    char mk[] = "space/s";
    char *v;
    size_t vl;
    assert_int_equal(mn__store_get(&E(f)->store, CF_META, mk, strlen(mk), &v, &vl, NULL), MN_OK);
    mn_wal_entry_t en;
    assert_int_equal(mn_wire_wal_decode((const uint8_t *)v, vl, &en, NULL), MN_OK);
    free(v);
    en.op.space_create.def.text_language[0] = '\0';
    uint8_t *buf;
    size_t bl;
    assert_int_equal(mn_wire_wal_encode(&en, &buf, &bl), MN_OK);
    mn_wal_entry_clear(&en);
    char *msg = NULL;
    rocksdb_put_cf(E(f)->store.db, E(f)->store.wsync, E(f)->store.cf[CF_META], mk, strlen(mk),
                   (const char *)buf, bl, &msg);
    assert_null(msg);
    free(buf);
    reopen(f);
    assert_int_equal(mn_engine_space_get(f->e, "s", &st, &err), MN_OK);
    assert_string_equal(st.def.text_language, "english");
    assert_int_equal(recall_words(f, "run", NULL), 1);
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
        cmocka_unit_test_setup_teardown(test_lists_of_the_previous_tokenizer_are_rebuilt_stemmed,
                                        setup, mn_test_eng_teardown),
        cmocka_unit_test_setup_teardown(test_text_language_is_checked_stored_and_used, setup,
                                        mn_test_eng_teardown),
        cmocka_unit_test(test_term_list_codec_rejects_damage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
