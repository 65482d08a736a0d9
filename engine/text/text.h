/* Text analysis for keyword search: UTF-8 tokenising with case and accent
 * folding for Latin, Greek, Cyrillic and Armenian scripts. */
#ifndef MN_ENGINE_TEXT_H
#define MN_ENGINE_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Names the tokenisation rules: whatever stores tokens (a persisted keyword
 * index) must re-tokenise when this changes. 1: lower case, Latin accents off
 * (one code point to one). 2: Unicode decomposition with marks dropped for
 * Latin (all blocks), Greek, Cyrillic and Armenian; ß -> ss, æ -> ae ...
 * 3: a Snowball stemmer per space after the folding (stem.c), and the term
 * lists carry fields (content, tags, who, where) for BM25F. */
#define MN_TOKENIZER_VERSION 3

#define MN_TOKEN_MAX 64 /* bytes; longer tokens are cut at a character boundary */

/* Called once per token, in order; tok is NUL-terminated, folded UTF-8. Return
 * non-zero to stop. */
typedef int (*mn_token_fn)(void *arg, const char *tok, size_t len, uint32_t position);

/* Tokenises text (which must be valid UTF-8): maximal runs of letters and
 * digits, folded by mn_text_fold ("Café" -> "cafe", "Straße" -> "strasse").
 * Returns the number of tokens produced. */
uint32_t mn_text_tokenize(const char *text, size_t len, mn_token_fn fn, void *arg);

#define MN_TEXT_FOLD_MAX 3 /* code points one code point folds to, at most ("ﬃ" -> "ffi") */

/* Folds one code point into out: lower case, accents and marks removed.
 * Returns how many code points it wrote (1..MN_TEXT_FOLD_MAX), 0 for a mark
 * that is dropped inside a word, -1 for a separator. */
int mn_text_fold(uint32_t cp, uint32_t out[MN_TEXT_FOLD_MAX]);

/* ---- languages: stemming (stem.c) and query stop words (stopwords.c) ---- */
#define MN_TEXT_LANG_NONE 0 /* folding only, no stemming */
/* A language's number from its name: "none" or a libstemmer algorithm
 * ("english", "french", ..., "porter"); -1 for anything else. The number is
 * this process's, never stored (store the name). */
int mn_text_language_parse(const char *name);
/* The name of a language number ("none" for 0 or an unknown number). */
const char *mn_text_language_name(int lang);
/* Every accepted name, comma-separated ("none,arabic,..."), for messages. */
const char *mn_text_languages(void);
/* Stems a folded token (len <= MN_TOKEN_MAX) into out (NUL-terminated) and
 * returns its length; with MN_TEXT_LANG_NONE, the token as it is. Safe from any
 * thread (each thread has its own stemmers). */
size_t mn_text_stem(int lang, const char *tok, size_t len, char out[MN_TOKEN_MAX + 1]);
/* Is a folded, unstemmed token a stop word of lang for queries? */
bool mn_text_stopword(int lang, const char *tok);
bool mn__text_stopwords_sorted(void); /* the list is sorted (checked by the tests) */

#endif
