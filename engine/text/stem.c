/* Stemming with the Snowball algorithms of libstemmer (Porter, "Snowball: A
 * language for stemming algorithms", 2001; snowballstem.org), one language per
 * space. Languages are named as libstemmer names its algorithms
 * (sb_stemmer_list: "english", "french", ..., "porter" for the original Porter
 * 1980 algorithm) or "none"; a language's number is its place in that list + 1
 * (0 = none), which only lives in memory: what is stored is the name.
 *
 * An sb_stemmer is not thread-safe (it stems into a buffer it owns), so each
 * thread has its own, made on first use and freed when the thread ends
 * (a pthread key's destructor). */
#include "text.h"

#include "mnemo/assert.h"

#include <libstemmer.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char **lang_names; /* sb_stemmer_list(), NULL-terminated */
static int n_langs;
static char lang_list[512]; /* "none,arabic,..." for error messages (short: they hold 255 bytes) */
static pthread_once_t lang_once = PTHREAD_ONCE_INIT;
static pthread_key_t stem_key;

static void stemmers_free(void *p)
{
    struct sb_stemmer **s = p;
    for (int i = 0; i < n_langs; i++)
        sb_stemmer_delete(s[i]);
    free(s);
}

static void lang_init(void)
{
    lang_names = sb_stemmer_list();
    size_t o = (size_t)snprintf(lang_list, sizeof lang_list, "none");
    while (lang_names[n_langs]) {
        if (o < sizeof lang_list)
            o += (size_t)snprintf(lang_list + o, sizeof lang_list - o, ",%s", lang_names[n_langs]);
        n_langs++;
    }
    if (pthread_key_create(&stem_key, stemmers_free)) abort(); /* no key: nothing can stem */
}

int mn_text_language_parse(const char *name)
{
    pthread_once(&lang_once, lang_init);
    if (!name || !strcmp(name, "none")) return name ? MN_TEXT_LANG_NONE : -1;
    for (int i = 0; i < n_langs; i++)
        if (!strcmp(name, lang_names[i])) return i + 1;
    return -1;
}

const char *mn_text_language_name(int lang)
{
    pthread_once(&lang_once, lang_init);
    return lang > 0 && lang <= n_langs ? lang_names[lang - 1] : "none";
}

const char *mn_text_languages(void)
{
    pthread_once(&lang_once, lang_init);
    return lang_list;
}

/* This thread's stemmer of lang (1..n_langs); NULL when out of memory. */
static struct sb_stemmer *stemmer(int lang)
{
    struct sb_stemmer **s = pthread_getspecific(stem_key);
    if (!s) {
        if (!(s = calloc((size_t)n_langs, sizeof *s))) return NULL;
        if (pthread_setspecific(stem_key, s)) {
            free(s);
            return NULL;
        }
    }
    if (!s[lang - 1]) s[lang - 1] = sb_stemmer_new(lang_names[lang - 1], "UTF_8");
    return s[lang - 1];
}

size_t mn_text_stem(int lang, const char *tok, size_t len, char out[MN_TOKEN_MAX + 1])
{
    pthread_once(&lang_once, lang_init);
    mn_assert(len <= MN_TOKEN_MAX);
    const sb_symbol *st = NULL;
    size_t sl = 0;
    struct sb_stemmer *s = lang > 0 && lang <= n_langs ? stemmer(lang) : NULL;
    if (s && (st = sb_stemmer_stem(s, (const sb_symbol *)tok, (int)len))) {
        sl = (size_t)sb_stemmer_length(s);
    }
    if (!st || !sl) { /* none, out of memory, or nothing left: the word as it is */
        st = (const sb_symbol *)tok;
        sl = len;
    }
    if (sl > MN_TOKEN_MAX) { /* never seen, but a stem longer than a token is cut at a character */
        sl = MN_TOKEN_MAX;
        while (sl && (st[sl] & 0xC0) == 0x80)
            sl--;
    }
    memcpy(out, st, sl);
    out[sl] = '\0';
    return sl;
}
