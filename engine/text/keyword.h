/* In-memory BM25F inverted index of one space, keyed by slot number, over a
 * memory's fields content, tags, who and where, in the space's language (its
 * stemmer and query stop words, text.h). Each memory's terms are stored (the
 * keywords column family, written by the apply path in the same batch as the
 * memory) as an encoded term list, so start-up loads the index without
 * tokenising; a list is rebuilt from the record when it is missing, malformed,
 * or was made by another tokenizer or language (the stored header carries the
 * tokenizer's fingerprint). Callers hold the space lock: a write lock to add
 * or remove, a read lock to search (searches share no state and may run in
 * parallel). */
#ifndef MN_ENGINE_KEYWORD_H
#define MN_ENGINE_KEYWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/err.h"

typedef struct mn_kw_index mn_kw_index_t;

/* The fields of a document, weighted and length-normalised each on its own. */
enum { MN_KW_CONTENT = 0, MN_KW_TAGS = 1, MN_KW_WHO = 2, MN_KW_WHERE = 3, MN_KW_FIELDS = 4 };

/* A memory's text as the index reads it (nothing owned; any part may be empty). */
typedef struct mn_kw_text {
    const char *content;
    size_t content_len;
    char *const *tags;
    size_t n_tags;
    char *const *who;
    size_t n_who;
    const char *where;
} mn_kw_text_t;

/* BM25F parameters (Robertson, Zaragoza & Taylor 2004): k1, and per field a
 * weight and a length normalisation b. */
typedef struct mn_kw_params {
    double k1;
    double weight[MN_KW_FIELDS];
    double b[MN_KW_FIELDS];
} mn_kw_params_t;
/* The defaults (chosen by measurement, docs/recall.md §1). */
extern const mn_kw_params_t mn_kw_params_default;

typedef struct mn_kw_hit {
    uint32_t slot;
    float score;    /* BM25F */
    float coverage; /* sum of idf of the query words the document has / sum over all query
                       words (words the index has never seen count with the highest idf) */
} mn_kw_hit_t;

/* A new index for a language (mn_text_language_parse). */
mn_kw_index_t *mn_kw_new(int lang);
void mn_kw_free(mn_kw_index_t *ix);
int mn_kw_language(const mn_kw_index_t *ix);
/* Replaces the scoring parameters (the defaults otherwise); for measurements. */
void mn_kw_set_params(mn_kw_index_t *ix, const mn_kw_params_t *p);
/* Indexes a document under slot (replacing one that is there). */
mn_err mn_kw_add(mn_kw_index_t *ix, uint32_t slot, const mn_kw_text_t *text);
/* Indexes a stored term list (mn_kw_doc_encode) under slot without tokenising;
 * MN_ERR_CORRUPT if it does not parse. */
mn_err mn_kw_add_encoded(mn_kw_index_t *ix, uint32_t slot, const uint8_t *doc, size_t len);

/* ---- stored term lists (keyword_store.c) ---- */
#define MN_KW_DOC_FORMAT 2
/* One distinct term of a document (text points into the encoded list). */
typedef struct mn_kw_term {
    const char *text;
    uint32_t len;
    uint32_t tf[MN_KW_FIELDS]; /* occurrences in each field */
} mn_kw_term_t;
/* Tokenises and stems (in lang) a document into an encoded term list: format,
 * content length, token count of each field, then each distinct term with its
 * frequency in each field. *out malloc'd (free()). */
mn_err mn_kw_doc_encode(int lang, const mn_kw_text_t *text, uint8_t **out, size_t *out_len);
/* Parses an encoded list: *content_len, the token count of each field, and up
 * to cap terms into terms (*n_terms set; MN_ERR_CORRUPT if malformed,
 * MN_ERR_NOMEM if more than cap). With terms NULL it only checks the list. */
mn_err mn_kw_doc_decode(const uint8_t *doc, size_t len, uint64_t *content_len,
                        uint32_t tokens[MN_KW_FIELDS], mn_kw_term_t *terms, uint32_t cap,
                        uint32_t *n_terms);
/* The content length an encoded list was made from (MN_ERR_CORRUPT if its head
 * does not parse; the rest is checked when it is added). */
mn_err mn_kw_doc_content_len(const uint8_t *doc, size_t len, uint64_t *content_len);
/* The tokenizer's fingerprint for a language: a hash of MN_TOKENIZER_VERSION
 * and of what it does (the folding of every code point, tokens of probe texts,
 * the token size limit, the list format, the language's name and its
 * stemmer's stems of probe words). A stored index made with another one is
 * rebuilt. */
uint64_t mn_kw_tokenizer_fingerprint(int lang);
/* A space's header in the keywords family: the list format and the fingerprint. */
#define MN_KW_HEADER_LEN 12
void mn_kw_header(int lang, uint8_t out[MN_KW_HEADER_LEN]);
/* Were a stored header's lists made the way this build makes them for lang? */
bool mn_kw_header_current(int lang, const void *v, size_t len);
/* Removes slot's document, if any. */
void mn_kw_remove(mn_kw_index_t *ix, uint32_t slot);
/* BM25F top-k over documents accepted by accept (NULL = all). The query is
 * folded and stemmed like the documents; its stop words (text.h) are dropped
 * when it has another word. Writes up to k hits best first into out; returns
 * how many. */
size_t mn_kw_search(const mn_kw_index_t *ix, const char *query, size_t len,
                    bool (*accept)(void *arg, uint32_t slot), void *arg, size_t k,
                    mn_kw_hit_t *out);
/* Document frequency of a folded, stemmed term (0 if unknown). */
uint32_t mn_kw_df(const mn_kw_index_t *ix, const char *word, size_t len);
/* Number of indexed documents and distinct live terms. */
uint64_t mn_kw_docs(const mn_kw_index_t *ix);
uint64_t mn_kw_terms(const mn_kw_index_t *ix);

#endif
