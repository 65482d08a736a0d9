/* Tokeniser for keyword search. A token is a maximal run of letters and
 * digits. Folding makes matching forgiving the way people type: lower case for
 * Latin (incl. Latin-1 Supplement and Latin Extended-A), Greek and Cyrillic;
 * Latin letters lose their accents (é -> e, ß -> ss is NOT done: one code
 * point maps to one). Code points of other scripts (CJK, Arabic, ...) count as
 * letters and are kept as they are, so they still match exactly; separators
 * are ASCII punctuation and space, the Latin-1 punctuation block, General
 * Punctuation (U+2000-206F), CJK Symbols and Punctuation (U+3000-303F) and
 * the fullwidth ASCII punctuation forms. Case mappings follow the Unicode
 * charts for these blocks. */
#include "text.h"

#include <string.h>

/* Latin-1 Supplement U+00C0..U+00FF folded to ASCII lower case (0 = separator). */
static const char latin1_fold[64] = {
    'a', 'a', 'a', 'a', 'a', 'a', 'a', 'c', 'e', 'e', 'e', 'e', 'i', 'i', 'i', 'i', /* C0-CF */
    'd', 'n', 'o', 'o', 'o', 'o', 'o', 0,   'o', 'u', 'u', 'u', 'u', 'y', 't', 's', /* D0-DF */
    'a', 'a', 'a', 'a', 'a', 'a', 'a', 'c', 'e', 'e', 'e', 'e', 'i', 'i', 'i', 'i', /* E0-EF */
    'd', 'n', 'o', 'o', 'o', 'o', 'o', 0,   'o', 'u', 'u', 'u', 'u', 'y', 't', 'y', /* F0-FF */
};

/* Latin Extended-A U+0100..U+017F: base letter of each pair (upper, lower). */
static const char latin_ext_a[128] = {
    'a', 'a', 'a', 'a', 'a', 'a', 'c', 'c', 'c', 'c', 'c', 'c', 'c', 'c', 'd', 'd', /* 100 */
    'd', 'd', 'e', 'e', 'e', 'e', 'e', 'e', 'e', 'e', 'e', 'e', 'g', 'g', 'g', 'g', /* 110 */
    'g', 'g', 'g', 'g', 'h', 'h', 'h', 'h', 'i', 'i', 'i', 'i', 'i', 'i', 'i', 'i', /* 120 */
    'i', 'i', 'i', 'i', 'j', 'j', 'k', 'k', 'k', 'l', 'l', 'l', 'l', 'l', 'l', 'l', /* 130 */
    'l', 'l', 'l', 'n', 'n', 'n', 'n', 'n', 'n', 'n', 'n', 'n', 'o', 'o', 'o', 'o', /* 140 */
    'o', 'o', 'o', 'o', 'r', 'r', 'r', 'r', 'r', 'r', 's', 's', 's', 's', 's', 's', /* 150 */
    's', 's', 't', 't', 't', 't', 't', 't', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', /* 160 */
    'u', 'u', 'u', 'u', 'w', 'w', 'y', 'y', 'y', 'z', 'z', 'z', 'z', 'z', 'z', 's', /* 170 */
};

uint32_t mn_text_fold(uint32_t cp)
{
    if (cp < 0x80) {
        if (cp >= 'A' && cp <= 'Z') return cp + 32;
        if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9')) return cp;
        return 0;
    }
    if (cp < 0xC0) {
        if (cp == 0xAA) return 'a'; /* feminine ordinal */
        if (cp == 0xBA) return 'o'; /* masculine ordinal */
        if (cp == 0xB5) return 0x3BC; /* micro sign -> Greek mu */
        return 0;                   /* controls, NBSP, Latin-1 punctuation and symbols */
    }
    if (cp < 0x100) return (uint32_t)(unsigned char)latin1_fold[cp - 0xC0];
    if (cp < 0x180) return (uint32_t)(unsigned char)latin_ext_a[cp - 0x100];
    /* Greek capitals U+0391..U+03A9 -> +0x20; final sigma -> sigma */
    if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) return cp + 0x20;
    if (cp == 0x3C2) return 0x3C3;
    /* Cyrillic: U+0400..U+040F -> +0x50, U+0410..U+042F -> +0x20 */
    if (cp >= 0x400 && cp <= 0x40F) return cp + 0x50;
    if (cp >= 0x410 && cp <= 0x42F) return cp + 0x20;
    if (cp >= 0x2000 && cp <= 0x206F) return 0; /* General Punctuation */
    if (cp >= 0x3000 && cp <= 0x303F) return 0; /* CJK Symbols and Punctuation */
    if (cp >= 0xFF01 && cp <= 0xFF0F) return 0; /* fullwidth punctuation */
    if (cp >= 0xFF1A && cp <= 0xFF20) return 0;
    if (cp == 0xFEFF || (cp >= 0xFE00 && cp <= 0xFE0F)) return 0; /* BOM, variation selectors */
    return cp;
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

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

uint32_t mn_text_tokenize(const char *text, size_t len, mn_token_fn fn, void *arg)
{
    const unsigned char *s = (const unsigned char *)text;
    char tok[MN_TOKEN_MAX + 4];
    size_t tl = 0;
    uint32_t count = 0;
    size_t i = 0;
    while (i <= len) {
        uint32_t cp = 0, f = 0;
        if (i < len) {
            i += utf8_decode(s + i, len - i, &cp);
            f = mn_text_fold(cp);
        } else {
            i++; /* end: flush */
        }
        if (f) {
            char enc[4];
            size_t el = utf8_encode(f, enc);
            if (tl + el <= MN_TOKEN_MAX) {
                memcpy(tok + tl, enc, el);
                tl += el;
            }
            continue;
        }
        if (tl) {
            tok[tl] = '\0';
            if (fn && fn(arg, tok, tl, count)) return count + 1;
            count++;
            tl = 0;
        }
    }
    return count;
}
