/* Text analysis for keyword search: UTF-8 tokenising with case and accent
 * folding for Latin, Greek and Cyrillic scripts. */
#ifndef MN_ENGINE_TEXT_H
#define MN_ENGINE_TEXT_H

#include <stddef.h>
#include <stdint.h>

#define MN_TOKEN_MAX 64 /* bytes; longer tokens are cut at a character boundary */

/* Called once per token, in order; tok is NUL-terminated, folded UTF-8. Return
 * non-zero to stop. */
typedef int (*mn_token_fn)(void *arg, const char *tok, size_t len, uint32_t position);

/* Tokenises text (which must be valid UTF-8): maximal runs of letters and
 * digits, lower-cased, Latin accents removed ("Café" -> "cafe"). Returns the
 * number of tokens produced. */
uint32_t mn_text_tokenize(const char *text, size_t len, mn_token_fn fn, void *arg);

/* Folds one code point: lower case, Latin accents removed. Returns 0 for a
 * separator (not a letter or digit). */
uint32_t mn_text_fold(uint32_t cp);

#endif
