/* keyword search: tokenising and folding, stemming, query stop words, BM25F
 * ranking over fields, removal, filters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "engine/text/keyword.h"
#include "engine/text/text.h"

typedef struct toks {
    char out[16][MN_TOKEN_MAX + 1];
    int n;
} toks;

static int grab(void *arg, const char *tok, size_t len, uint32_t pos)
{
    toks *t = arg;
    assert_int_equal(pos, (uint32_t)t->n);
    assert_int_equal(strlen(tok), len);
    if (t->n < 16) snprintf(t->out[t->n++], sizeof t->out[0], "%s", tok);
    return 0;
}

static void test_tokenize_folds_case_and_accents(void **state)
{
    (void)state;
    toks t = {0};
    const char *s = "Café, CRÈME-brûlée! ΣΟΦΙΑ Москва naïve_x42 東京タワー";
    uint32_t n = mn_text_tokenize(s, strlen(s), grab, &t);
    assert_int_equal(n, 8);
    assert_string_equal(t.out[0], "cafe");
    assert_string_equal(t.out[1], "creme");
    assert_string_equal(t.out[2], "brulee");
    assert_string_equal(t.out[3], "σοφια");
    assert_string_equal(t.out[4], "москва");
    assert_string_equal(t.out[5], "naive");
    assert_string_equal(t.out[6], "x42");
    assert_string_equal(t.out[7], "東京タワー");
    /* general punctuation separates */
    toks u = {0};
    const char *s2 = "it\xe2\x80\x99s \xe2\x80\x9cquoted\xe2\x80\x9d";
    assert_int_equal(mn_text_tokenize(s2, strlen(s2), grab, &u), 3);
    assert_string_equal(u.out[2], "quoted");
    /* long tokens are cut, never overflow */
    char big[300];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    toks v = {0};
    assert_int_equal(mn_text_tokenize(big, strlen(big), grab, &v), 1);
    assert_int_equal(strlen(v.out[0]), MN_TOKEN_MAX);
}

/* Tokenises s and compares the tokens, joined by single spaces, with want. */
static void expect_tokens(const char *s, const char *want)
{
    toks t = {0};
    uint32_t n = mn_text_tokenize(s, strlen(s), grab, &t);
    char got[16 * (MN_TOKEN_MAX + 1)] = "";
    for (int i = 0; i < t.n; i++) {
        if (i) strcat(got, " ");
        strcat(got, t.out[i]);
    }
    if (strcmp(got, want)) fail_msg("tokenize(\"%s\") = \"%s\", want \"%s\"", s, got, want);
    assert_int_equal(n, (uint32_t)t.n);
}

static void test_tokenize_folds_latin_greek_cyrillic_scripts(void **state)
{
    (void)state;
    /* Romanian: comma-below letters (Latin Extended-B) and Latin Extended-A */
    expect_tokens("ȘCOALĂ școală Țară țară", "scoala scoala tara tara");
    /* Vietnamese: Latin Extended Additional, stacked accents */
    expect_tokens("VIỆT Nam Việt Phở Đà Nẵng Hà Nội", "viet nam viet pho da nang ha noi");
    /* decomposed accents: the combining mark is dropped inside the word */
    expect_tokens("cafe\xcc\x81 Cafe\xcc\x81 caf\xc3\xa9", "cafe cafe cafe");
    expect_tokens("Vie\xcc\xa3\xcc\x82t", "viet"); /* e + dot below + circumflex */
    expect_tokens("\xcc\x81 x", "x"); /* a lone mark is no token */
    /* German sharp s, both cases, folds like its spelling with ss */
    expect_tokens("Straße STRASSE strasse STRAẞE", "strasse strasse strasse strasse");
    /* letters read as two, ligatures, stroke letters */
    expect_tokens("Æsir œuvre ŒUVRE Þór ĳs ﬁnal ﬀ", "aesir oeuvre oeuvre thor ijs final ff");
    expect_tokens("Łódź Gdańsk Øresund Đorđe Ħal ŀa", "lodz gdansk oresund dorde hal la");
    expect_tokens("İstanbul ıspanak ſtraße", "istanbul ispanak strasse");
    /* Greek: tonos and dialytika off, final sigma, capitals with accents */
    expect_tokens("Άθηνα ΆΘΗΝΑ αθήνα", "αθηνα αθηνα αθηνα");
    expect_tokens("ΌΣΟΣ όσος Ϊ ΐ", "οσοσ οσοσ ι ι");
    expect_tokens("ἄνθρωπος ᾠδή", "ανθρωποσ ωδη"); /* Greek Extended (polytonic) */
    /* Cyrillic: capitals of both ranges, ё and й as their decomposition */
    expect_tokens("ЁЛКА ёлка елка Йод ЇЖАК Ґанок", "елка елка елка иод іжак ґанок"); /* ґ is a letter of its own */
    expect_tokens("МОСКВА Москва москва", "москва москва москва");
    /* Armenian */
    expect_tokens("ՀԱՅԱՍՏԱՆ Հայաստան", "հայաստան հայաստան");
    /* fullwidth Latin and digits; separators of the folded blocks */
    expect_tokens("ＡＢＣ１２３ a·b a×b a÷b ά;β", "abc123 a b a b a b α β");
    /* Latin-1 symbols and General Punctuation separate; ordinal letters stay */
    expect_tokens("1ª 2º a\xc2\xa0" "b «x» ¿y? ¡z! a—b", "1a 2o a b x y z a b");
    /* other scripts are kept exactly */
    expect_tokens("東京 서울 القاهرة नमस्ते", "東京 서울 القاهرة नमस्ते");
}

static void test_fold_reports_marks_and_separators(void **state)
{
    (void)state;
    uint32_t out[MN_TEXT_FOLD_MAX];
    assert_int_equal(mn_text_fold('A', out), 1);
    assert_int_equal(out[0], 'a');
    assert_int_equal(mn_text_fold(0x0301, out), 0);  /* combining acute */
    assert_int_equal(mn_text_fold(0x1DC4, out), 0);  /* combining diacritics supplement */
    assert_int_equal(mn_text_fold(' ', out), -1);
    assert_int_equal(mn_text_fold(0x2014, out), -1); /* em dash */
    assert_int_equal(mn_text_fold(0x0387, out), -1); /* Greek ano teleia */
    assert_int_equal(mn_text_fold(0xDF, out), 2);    /* ß */
    assert_int_equal(out[0], 's');
    assert_int_equal(out[1], 's');
    assert_int_equal(mn_text_fold(0xFB03, out), 3); /* ﬃ */
    assert_int_equal(mn_text_fold(0x0386, out), 1); /* Ά */
    assert_int_equal(out[0], 0x03B1);
    assert_int_equal(mn_text_fold(0x1EC6, out), 1); /* Ệ */
    assert_int_equal(out[0], 'e');
    assert_int_equal(mn_text_fold(0x0218, out), 1); /* Ș */
    assert_int_equal(out[0], 's');
    /* every code point of the folded blocks folds to lower-case letters only:
     * folding is idempotent (a folded token folds to itself) */
    for (uint32_t cp = 0xC0; cp < 0x2000; cp++) {
        int n = mn_text_fold(cp, out);
        for (int i = 0; i < n; i++) {
            uint32_t again[MN_TEXT_FOLD_MAX];
            int m = mn_text_fold(out[i], again);
            if (m != 1 || again[0] != out[i])
                fail_msg("U+%04X folds to U+%04X, which folds again", cp, out[i]);
        }
    }
    assert_true(MN_TOKENIZER_VERSION >= 2);
}

/* Indexes content alone under slot. */
static void add_text(mn_kw_index_t *ix, uint32_t slot, const char *content)
{
    mn_kw_text_t t = {.content = content, .content_len = strlen(content)};
    assert_int_equal(mn_kw_add(ix, slot, &t), MN_OK);
}

static size_t search(const mn_kw_index_t *ix, const char *q, mn_kw_hit_t *hits, size_t k)
{
    return mn_kw_search(ix, q, strlen(q), NULL, NULL, k, hits);
}

static bool only_even(void *arg, uint32_t slot)
{
    (void)arg;
    return slot % 2 == 0;
}

static void test_bm25_ranks_rare_terms_and_short_docs_higher(void **state)
{
    (void)state;
    mn_kw_index_t *ix = mn_kw_new(MN_TEXT_LANG_NONE); /* the words as they are */
    /* content alone with Lucene's k1 and b: BM25 as Robertson & Zaragoza give it */
    mn_kw_params_t bm25 = {.k1 = 1.2, .weight = {1, 0, 0, 0}, .b = {0.75, 0, 0, 0}};
    mn_kw_set_params(ix, &bm25);
    const char *docs[] = {
        "the cat sat on the mat",
        "the dog chased the cat around the garden for a long long time",
        "quantum entanglement of the cat",
        "the weather today is mild",
    };
    for (uint32_t i = 0; i < 4; i++) add_text(ix, i, docs[i]);
    assert_int_equal(mn_kw_docs(ix), 4);
    mn_kw_hit_t hits[8];
    size_t n = mn_kw_search(ix, "cat", 3, NULL, NULL, 8, hits);
    assert_int_equal(n, 3);
    /* same tf: shorter documents first (5, 6, then 13 tokens) */
    assert_int_equal(hits[0].slot, 2);
    assert_int_equal(hits[1].slot, 0);
    assert_int_equal(hits[2].slot, 1);
    /* a rare word outweighs a common one */
    n = mn_kw_search(ix, "the quantum", 11, NULL, NULL, 8, hits);
    assert_int_equal(hits[0].slot, 2);
    /* hand-computed BM25 for "mild": df = 1, N = 4, avgdl = (6 + 13 + 5 + 5) / 4 */
    n = mn_kw_search(ix, "MILD", 4, NULL, NULL, 8, hits);
    assert_int_equal(n, 1);
    assert_true(fabs(hits[0].coverage - 1.0) < 1e-6);
    double idf = log(1 + (4 - 1 + 0.5) / (1 + 0.5));
    double avgdl = 29.0 / 4;
    double want = idf * 1 * 2.2 / (1 + 1.2 * (1 - 0.75 + 0.75 * 5 / avgdl));
    assert_true(fabs(hits[0].score - want) < 1e-5);
    /* coverage: the idf-weighted share of the query the document holds */
    n = mn_kw_search(ix, "mild unicorn", 12, NULL, NULL, 8, hits);
    assert_int_equal(n, 1);
    double idf_unknown = log(1 + (4 + 0.5) / 0.5);
    assert_true(fabs(hits[0].coverage - idf / (idf + idf_unknown)) < 1e-5);
    /* filter inside the search */
    n = mn_kw_search(ix, "cat", 3, only_even, NULL, 8, hits);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) assert_int_equal(hits[i].slot % 2, 0);
    /* k bounds the result */
    assert_int_equal(mn_kw_search(ix, "cat", 3, NULL, NULL, 1, hits), 1);
    assert_int_equal(hits[0].slot, 2);
    /* unknown words and empty queries find nothing */
    assert_int_equal(mn_kw_search(ix, "zebra", 5, NULL, NULL, 8, hits), 0);
    assert_int_equal(mn_kw_search(ix, "...", 3, NULL, NULL, 8, hits), 0);
    mn_kw_free(ix);
}

static void test_removal_and_slot_reuse(void **state)
{
    (void)state;
    mn_kw_index_t *ix = mn_kw_new(mn_text_language_parse("english"));
    char buf[64];
    for (uint32_t i = 0; i < 100; i++) {
        snprintf(buf, sizeof buf, "common word%u", i);
        add_text(ix, i, buf);
    }
    for (uint32_t i = 0; i < 100; i += 2) mn_kw_remove(ix, i);
    assert_int_equal(mn_kw_docs(ix), 50);
    mn_kw_hit_t hits[128];
    size_t n = mn_kw_search(ix, "common", 6, NULL, NULL, 128, hits);
    assert_int_equal(n, 50);
    for (size_t i = 0; i < n; i++) assert_int_equal(hits[i].slot % 2, 1);
    assert_int_equal(mn_kw_search(ix, "word10", 6, NULL, NULL, 8, hits), 0);
    /* a reused slot finds only its new text */
    add_text(ix, 10, "fresh text");
    assert_int_equal(mn_kw_search(ix, "word10", 6, NULL, NULL, 8, hits), 0);
    assert_int_equal(mn_kw_search(ix, "fresh", 5, NULL, NULL, 8, hits), 1);
    assert_int_equal(hits[0].slot, 10);
    assert_int_equal(mn_kw_search(ix, "common", 6, NULL, NULL, 128, hits), 50);
    mn_kw_free(ix);
}

static void test_languages_are_libstemmer_names_or_none(void **state)
{
    (void)state;
    assert_int_equal(mn_text_language_parse("none"), MN_TEXT_LANG_NONE);
    int en = mn_text_language_parse("english");
    assert_true(en > 0);
    assert_string_equal(mn_text_language_name(en), "english");
    assert_true(mn_text_language_parse("french") > 0);
    assert_true(mn_text_language_parse("porter") > 0);
    assert_int_equal(mn_text_language_parse("klingon"), -1);
    assert_int_equal(mn_text_language_parse("English"), -1); /* names are lower case */
    assert_int_equal(mn_text_language_parse("en"), -1);      /* stored names only, no codes */
    assert_int_equal(mn_text_language_parse(""), -1);
    assert_int_equal(mn_text_language_parse(NULL), -1);
    assert_string_equal(mn_text_language_name(MN_TEXT_LANG_NONE), "none");
    assert_string_equal(mn_text_language_name(9999), "none");
    const char *all = mn_text_languages();
    assert_non_null(strstr(all, "none,arabic,"));
    assert_non_null(strstr(all, "english"));
    assert_non_null(strstr(all, "german"));
}

static void expect_stem(int lang, const char *word, const char *want)
{
    char out[MN_TOKEN_MAX + 1];
    size_t n = mn_text_stem(lang, word, strlen(word), out);
    if (strcmp(out, want)) fail_msg("stem(%s) = \"%s\", want \"%s\"", word, out, want);
    assert_int_equal(n, strlen(want));
}

static void test_stemming_follows_the_space_language(void **state)
{
    (void)state;
    int en = mn_text_language_parse("english"), fr = mn_text_language_parse("french");
    expect_stem(en, "running", "run");
    expect_stem(en, "groups", "group");
    expect_stem(en, "painted", "paint");
    expect_stem(en, "2023", "2023");
    expect_stem(en, "東京", "東京");
    expect_stem(fr, "continuaient", "continu");
    expect_stem(MN_TEXT_LANG_NONE, "running", "running");
    /* a long token stays within the token size */
    char big[MN_TOKEN_MAX + 1];
    memset(big, 'x', MN_TOKEN_MAX);
    big[MN_TOKEN_MAX] = '\0';
    char out[MN_TOKEN_MAX + 1];
    assert_true(mn_text_stem(en, big, MN_TOKEN_MAX, out) <= MN_TOKEN_MAX);

    /* documents and queries meet at the stem */
    mn_kw_index_t *ix = mn_kw_new(en);
    add_text(ix, 0, "She painted the fences in June");
    add_text(ix, 1, "running with the dogs");
    mn_kw_hit_t hits[4];
    assert_int_equal(search(ix, "painting", hits, 4), 1);
    assert_int_equal(hits[0].slot, 0);
    assert_int_equal(search(ix, "dog runs", hits, 4), 1);
    assert_int_equal(hits[0].slot, 1);
    assert_true(fabs(hits[0].coverage - 1.0) < 1e-6);
    assert_int_equal(mn_kw_df(ix, "fenc", 4), 1); /* terms are stored stemmed */
    mn_kw_free(ix);
    /* without a language the forms differ */
    ix = mn_kw_new(MN_TEXT_LANG_NONE);
    add_text(ix, 0, "She painted the fences in June");
    assert_int_equal(search(ix, "painting", hits, 4), 0);
    mn_kw_free(ix);
}

static void *stem_many(void *arg)
{
    int en = *(int *)arg;
    const char *w[] = {"running", "generously", "groups", "caresses"};
    const char *want[] = {"run", "generous", "group", "caress"};
    for (int i = 0; i < 20000; i++) {
        char out[MN_TOKEN_MAX + 1];
        mn_text_stem(en, w[i % 4], strlen(w[i % 4]), out);
        if (strcmp(out, want[i % 4])) return (void *)1;
    }
    return NULL;
}

static void test_threads_stem_with_their_own_stemmers(void **state)
{
    (void)state;
    int en = mn_text_language_parse("english");
    pthread_t t[4];
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&t[i], NULL, stem_many, &en), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        assert_int_equal(pthread_join(t[i], &r), 0);
        assert_null(r);
    }
}

static void test_query_stop_words_are_dropped_when_another_word_is_left(void **state)
{
    (void)state;
    assert_true(mn__text_stopwords_sorted());
    int en = mn_text_language_parse("english");
    assert_true(mn_text_stopword(en, "when"));
    assert_true(mn_text_stopword(en, "did"));
    assert_false(mn_text_stopword(en, "caroline"));
    assert_false(mn_text_stopword(mn_text_language_parse("french"), "the"));
    mn_kw_index_t *ix = mn_kw_new(en);
    add_text(ix, 0, "Caroline went to the LGBTQ support group on Sunday");
    add_text(ix, 1, "when did you do that to the house and what was it for");
    add_text(ix, 2, "Melanie painted a lake");
    mn_kw_hit_t hits[4];
    /* the question's function words score nothing: only memory 0 answers */
    size_t n = search(ix, "When did Caroline go to the LGBTQ support group?", hits, 4);
    assert_int_equal(n, 1);
    assert_int_equal(hits[0].slot, 0);
    /* coverage counts the words kept: caroline, go (unknown), lgbtq, support, group */
    double N = 3, idf1 = log(1 + (N - 1 + 0.5) / 1.5), idf_unknown = log(1 + (N + 0.5) / 0.5);
    assert_true(fabs(hits[0].coverage - 4 * idf1 / (4 * idf1 + idf_unknown)) < 1e-5);
    /* a query of stop words only keeps them */
    n = search(ix, "what was it for", hits, 4);
    assert_int_equal(n, 1);
    assert_int_equal(hits[0].slot, 1);
    assert_true(fabs(hits[0].coverage - 1.0) < 1e-6);
    mn_kw_free(ix);
}

static void test_bm25f_weighs_and_normalises_each_field(void **state)
{
    (void)state;
    mn_kw_index_t *ix = mn_kw_new(MN_TEXT_LANG_NONE);
    mn_kw_params_t p = {.k1 = 1.2, .weight = {1.0, 2.0, 0.5, 0.0}, .b = {0.75, 0.5, 0.0, 0.0}};
    mn_kw_set_params(ix, &p);
    char *tags0[] = {"hiking trip", "mountains"};
    char *who0[] = {"Caroline"};
    mn_kw_text_t d0 = {.content = "we walked up", .content_len = 12, .tags = tags0, .n_tags = 2,
                       .who = who0, .n_who = 1, .where = "alps"};
    char *who1[] = {"Melanie"};
    mn_kw_text_t d1 = {.content = "caroline said the trip was long",
                       .content_len = 31, .who = who1, .n_who = 1};
    assert_int_equal(mn_kw_add(ix, 0, &d0), MN_OK);
    assert_int_equal(mn_kw_add(ix, 1, &d1), MN_OK);
    mn_kw_hit_t hits[4];
    /* "trip": in d0's tags (3 tag tokens, avg 1.5) and in d1's content (6 tokens,
     * avg 4.5); idf = ln(1 + 0.5 / 2.5) */
    assert_int_equal(search(ix, "trip", hits, 4), 2);
    double idf = log(1 + 0.5 / 2.5);
    double tf0 = 2.0 * 1 / (1 - 0.5 + 0.5 * 3 / 1.5);
    double tf1 = 1.0 * 1 / (1 - 0.75 + 0.75 * 6 / 4.5);
    double s0 = idf * tf0 * 2.2 / (tf0 + 1.2), s1 = idf * tf1 * 2.2 / (tf1 + 1.2);
    assert_true(s0 > s1);
    assert_int_equal(hits[0].slot, 0);
    assert_true(fabs(hits[0].score - s0) < 1e-5);
    assert_true(fabs(hits[1].score - s1) < 1e-5);
    /* "caroline": who (weight 0.5, b 0) in d0, content in d1 */
    assert_int_equal(search(ix, "caroline", hits, 4), 2);
    assert_int_equal(hits[0].slot, 1);
    double tfw = 0.5;
    assert_true(fabs(hits[1].score - idf * tfw * 2.2 / (tfw + 1.2)) < 1e-5);
    /* a field of weight 0 finds nothing */
    assert_int_equal(search(ix, "alps", hits, 4), 0);
    /* the same word in two fields adds up before the saturation */
    char *tags2[] = {"long"};
    mn_kw_text_t d2 = {.content = "long", .content_len = 4, .tags = tags2, .n_tags = 1};
    assert_int_equal(mn_kw_add(ix, 2, &d2), MN_OK);
    assert_int_equal(search(ix, "long", hits, 4), 2);
    assert_int_equal(hits[0].slot, 2);
    mn_kw_free(ix);
    /* the defaults weigh every field */
    for (int fl = 0; fl < MN_KW_FIELDS; fl++) assert_true(mn_kw_params_default.weight[fl] > 0);
}

/* docs/recall.md §1's worked example, with the default parameters. */
static void test_the_worked_example_of_the_docs(void **state)
{
    (void)state;
    mn_kw_index_t *ix = mn_kw_new(mn_text_language_parse("english"));
    char *caroline[] = {"Caroline"}, *melanie[] = {"Melanie"};
    mn_kw_text_t a = {.content = "I went to a LGBTQ support group yesterday", .content_len = 41,
                      .who = caroline, .n_who = 1};
    mn_kw_text_t b = {.content = "Caroline and I painted the lake last week", .content_len = 41,
                      .who = melanie, .n_who = 1};
    mn_kw_text_t c = {.content = "Support your friends, they say", .content_len = 30,
                      .who = melanie, .n_who = 1};
    assert_int_equal(mn_kw_add(ix, 0, &a), MN_OK);
    assert_int_equal(mn_kw_add(ix, 1, &b), MN_OK);
    assert_int_equal(mn_kw_add(ix, 2, &c), MN_OK);
    mn_kw_hit_t hits[4];
    assert_int_equal(search(ix, "When did Caroline go to the LGBTQ support group?", hits, 4), 3);
    const uint32_t slot[] = {0, 2, 1};
    const double score[] = {2.8632, 0.4856, 0.4626}, cov[] = {0.5825, 0.0944, 0.0944};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(hits[i].slot, slot[i]);
        if (fabs(hits[i].score - score[i]) > 1e-4 || fabs(hits[i].coverage - cov[i]) > 1e-4)
            fail_msg("hit %d: score %.4f coverage %.4f", i, hits[i].score, hits[i].coverage);
    }
    mn_kw_free(ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenize_folds_case_and_accents),
        cmocka_unit_test(test_tokenize_folds_latin_greek_cyrillic_scripts),
        cmocka_unit_test(test_fold_reports_marks_and_separators),
        cmocka_unit_test(test_bm25_ranks_rare_terms_and_short_docs_higher),
        cmocka_unit_test(test_removal_and_slot_reuse),
        cmocka_unit_test(test_languages_are_libstemmer_names_or_none),
        cmocka_unit_test(test_stemming_follows_the_space_language),
        cmocka_unit_test(test_threads_stem_with_their_own_stemmers),
        cmocka_unit_test(test_query_stop_words_are_dropped_when_another_word_is_left),
        cmocka_unit_test(test_bm25f_weighs_and_normalises_each_field),
        cmocka_unit_test(test_the_worked_example_of_the_docs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
