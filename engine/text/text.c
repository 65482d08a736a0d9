/* Tokeniser for keyword search. A token is a maximal run of letters and
 * digits, folded so that matching is forgiving the way people type:
 *  - Latin (Latin-1, Extended-A/-B/-C/-D, Extended Additional), Greek (with
 *    Greek Extended), Cyrillic and Armenian letters fold to lower case without
 *    accents: their compatibility decomposition with the marks removed, case
 *    folded (Unicode default case folding, so ß, ẞ -> ss and ς -> σ); a few
 *    letters read as two fold to two (æ -> ae, œ -> oe, þ -> th, ĳ -> ij, the
 *    ﬁ ligatures); Latin letters with a stroke or hook that Unicode does not
 *    decompose fold to their base letter (ł -> l, đ -> d, ø -> o);
 *  - combining marks (U+0300-036F and the other combining diacritics blocks)
 *    are dropped inside a word, so "e" + U+0301 and "é" give the same token;
 *  - fullwidth ASCII letters and digits fold to ASCII;
 *  - code points of other scripts (CJK, Arabic, Indic ...) count as letters
 *    and are kept as they are, so they still match exactly;
 *  - separators are ASCII punctuation and space, Latin-1 punctuation and
 *    symbols, the punctuation and symbols of the folded blocks, General
 *    Punctuation (U+2000-206F), CJK Symbols and Punctuation (U+3000-303F) and
 *    the fullwidth ASCII punctuation forms.
 * The tables (text_fold.inc) are generated from the Unicode Character Database
 * by scripts/gen_text_fold.py; MN_TOKENIZER_VERSION names these rules. */
#include "text.h"

#include "mnemo/util.h"

#include <string.h>

#include "text_fold.inc"

#define FOLD_DROP 0xFFFFu
#define FOLD_EXPANSION 0xE000u

static bool combining_mark(uint32_t cp)
{
    return (cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x1AB0 && cp <= 0x1AFF) ||
           (cp >= 0x1DC0 && cp <= 0x1DFF) || (cp >= 0x20D0 && cp <= 0x20FF) ||
           (cp >= 0xFE20 && cp <= 0xFE2F);
}

int mn_text_fold(uint32_t cp, uint32_t out[MN_TEXT_FOLD_MAX])
{
    if (cp < 0x80) {
        if (cp >= 'A' && cp <= 'Z') cp += 32;
        else if (!((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9'))) return -1;
        out[0] = cp;
        return 1;
    }
    if (cp < 0xC0) {
        switch (cp) {
        case 0xAA: out[0] = 'a'; return 1;   /* feminine ordinal */
        case 0xBA: out[0] = 'o'; return 1;   /* masculine ordinal */
        case 0xB5: out[0] = 0x3BC; return 1; /* micro sign -> Greek mu */
        default: return -1; /* controls, NBSP, Latin-1 punctuation and symbols */
        }
    }
    for (size_t b = 0; b < sizeof fold_blocks / sizeof fold_blocks[0]; b++) {
        if (cp < fold_blocks[b].lo) break;
        if (cp > fold_blocks[b].hi) continue;
        uint32_t v = fold_blocks[b].map[cp - fold_blocks[b].lo];
        if (v == 0) return -1;
        if (v == FOLD_DROP) return 0;
        if (v >= FOLD_EXPANSION && v < FOLD_DROP) {
            const uint16_t *x = fold_expansions[v - FOLD_EXPANSION];
            int n = 0;
            while (n < MN_TEXT_FOLD_MAX && x[n]) {
                out[n] = x[n];
                n++;
            }
            return n;
        }
        out[0] = v;
        return 1;
    }
    if (combining_mark(cp)) return 0;
    if (cp >= 0x2000 && cp <= 0x206F) return -1; /* General Punctuation */
    if (cp >= 0x3000 && cp <= 0x303F) return -1; /* CJK Symbols and Punctuation */
    if (cp >= 0xFF10 && cp <= 0xFF19) cp = '0' + (cp - 0xFF10); /* fullwidth digits */
    else if (cp >= 0xFF21 && cp <= 0xFF3A) cp = 'a' + (cp - 0xFF21);
    else if (cp >= 0xFF41 && cp <= 0xFF5A) cp = 'a' + (cp - 0xFF41);
    else if (cp >= 0xFF01 && cp <= 0xFF20) return -1; /* fullwidth punctuation */
    else if (cp >= 0xFF3B && cp <= 0xFF40) return -1;
    else if (cp >= 0xFF5B && cp <= 0xFF65) return -1;
    else if (cp == 0xFEFF || (cp >= 0xFE00 && cp <= 0xFE0F)) return 0; /* BOM, variation selectors */
    out[0] = cp;
    return 1;
}

static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    if (n > len) {
        *cp = 0;
        return len;
    }
    uint32_t v = c & (0x3F >> (n - 1));
    for (size_t i = 1; i < n; i++) v = (v << 6) | (s[i] & 0x3F);
    *cp = v;
    return n;
}

uint32_t mn_text_tokenize(const char *text, size_t len, mn_token_fn fn, void *arg)
{
    const unsigned char *s = (const unsigned char *)text;
    char tok[MN_TOKEN_MAX + 4];
    size_t tl = 0;
    uint32_t count = 0;
    size_t i = 0;
    bool full = false; /* the token reached MN_TOKEN_MAX: the rest of the word is cut */
    while (i <= len) {
        uint32_t cp = 0, f[MN_TEXT_FOLD_MAX];
        int nf = -1;
        if (i < len) {
            i += utf8_decode(s + i, len - i, &cp);
            nf = mn_text_fold(cp, f);
        } else {
            i++; /* end: flush */
        }
        if (nf >= 0) {
            for (int j = 0; j < nf && !full; j++) {
                char enc[4];
                size_t el = mn_utf8_encode(f[j], enc);
                if (tl + el > MN_TOKEN_MAX) {
                    full = true;
                    break;
                }
                memcpy(tok + tl, enc, el);
                tl += el;
            }
            continue;
        }
        full = false;
        if (tl) {
            tok[tl] = '\0';
            if (fn && fn(arg, tok, tl, count)) return count + 1;
            count++;
            tl = 0;
        }
    }
    return count;
}
