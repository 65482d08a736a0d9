/* Query-side stop words: the function words a question spends its score on
 * ("When did Caroline go to the support group?" -> caroline, go, support,
 * group). Only English has a list so far (and "porter", the English algorithm
 * by another name); other languages keep every query word.
 *
 * The English list is ours, written after the Snowball project's English stop
 * word list (snowballstem.org/algorithms/english/stop.txt, Martin Porter): its
 * pronouns, determiners, auxiliaries, prepositions and conjunctions and the
 * question words, plus the pieces the tokenizer leaves of contractions
 * ("didn't" -> didn, t). "won" is left out (the past of win, a content word).
 * Words are folded (lower case, no accents) and not stemmed; the list is sorted
 * for bsearch. */
#include "text.h"

#include <stdlib.h>
#include <string.h>

static const char *const english[] = {
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are",
    "aren", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both",
    "but", "by", "can", "could", "couldn", "d", "did", "didn", "do", "does", "doesn", "doing",
    "don", "down", "during", "each", "few", "for", "from", "further", "had", "hadn", "has", "hasn",
    "have", "haven", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his",
    "how", "i", "if", "in", "into", "is", "isn", "it", "its", "itself", "just", "ll", "m", "me",
    "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only",
    "or", "other", "our", "ours", "ourselves", "out", "over", "own", "re", "s", "same", "she",
    "should", "shouldn", "so", "some", "such", "t", "than", "that", "the", "their", "theirs",
    "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to",
    "too", "under", "until", "up", "ve", "very", "was", "wasn", "we", "were", "weren", "what",
    "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "wouldn",
    "you", "your", "yours", "yourself", "yourselves",
};

static int cmp_word(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

bool mn_text_stopword(int lang, const char *tok)
{
    const char *name = mn_text_language_name(lang);
    if (strcmp(name, "english") && strcmp(name, "porter")) return false;
    return bsearch(tok, english, sizeof english / sizeof *english, sizeof *english, cmp_word);
}

bool mn__text_stopwords_sorted(void)
{
    for (size_t i = 1; i < sizeof english / sizeof *english; i++)
        if (strcmp(english[i - 1], english[i]) >= 0) return false;
    return true;
}
