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
 * Latin (all blocks), Greek, Cyrillic and Armenian; ß -> ss, æ -> ae ... */
#define MN_TOKENIZER_VERSION 2

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

#endif
