/* In-memory BM25 inverted index of one space, keyed by slot number. Each
 * memory's terms are stored (the keywords column family, written by the apply
 * path in the same batch as the memory) as an encoded term list, so start-up
 * loads the index without tokenising; a list is rebuilt from the record when
 * it is missing, malformed, or was made by another tokenizer (the stored
 * header carries the tokenizer's fingerprint). Callers hold the space lock: a
 * write lock to add or remove, a read lock to search (searches share no state
 * and may run in parallel). */
#ifndef MN_ENGINE_KEYWORD_H
#define MN_ENGINE_KEYWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/err.h"

typedef struct mn_kw_index mn_kw_index_t;

typedef struct mn_kw_hit {
    uint32_t slot;
    float score;    /* BM25 */
    float coverage; /* sum of idf of the query words the document has / sum over all query
                       words (words the index has never seen count with the highest idf) */
} mn_kw_hit_t;

mn_kw_index_t *mn_kw_new(void);
void mn_kw_free(mn_kw_index_t *ix);
/* Indexes text under slot (which must not be indexed already). */
mn_err mn_kw_add(mn_kw_index_t *ix, uint32_t slot, const char *text, size_t len);
/* Indexes a stored term list (mn_kw_doc_encode) under slot without tokenising;
 * MN_ERR_CORRUPT if it does not parse. */
mn_err mn_kw_add_encoded(mn_kw_index_t *ix, uint32_t slot, const uint8_t *doc, size_t len);

/* ---- stored term lists (keyword_store.c) ---- */
#define MN_KW_DOC_FORMAT 1
/* One distinct term of a document (text points into the encoded list). */
typedef struct mn_kw_term {
    const char *text;
    uint32_t len;
    uint32_t tf;
} mn_kw_term_t;
/* Tokenises text into an encoded term list: format, content length, token
 * count, then each distinct term with its frequency. *out malloc'd (free()). */
mn_err mn_kw_doc_encode(const char *text, size_t len, uint8_t **out, size_t *out_len);
/* Parses an encoded list: *content_len, *tokens, and up to cap terms into terms
 * (*n_terms set; MN_ERR_CORRUPT if malformed, MN_ERR_NOMEM if more than cap).
 * With terms NULL it only checks the whole list. */
mn_err mn_kw_doc_decode(const uint8_t *doc, size_t len, uint64_t *content_len, uint32_t *tokens,
                        mn_kw_term_t *terms, uint32_t cap, uint32_t *n_terms);
/* The content length an encoded list was made from (MN_ERR_CORRUPT if its head
 * does not parse; the rest is checked when it is added). */
mn_err mn_kw_doc_content_len(const uint8_t *doc, size_t len, uint64_t *content_len);
/* The tokenizer's fingerprint: a hash of MN_TOKENIZER_VERSION and of what it
 * does (the folding of every code point, tokens of probe texts, the token size
 * limit, the list format). A stored index made with another one is rebuilt. */
uint64_t mn_kw_tokenizer_fingerprint(void);
/* A space's header in the keywords family: the list format and the fingerprint. */
#define MN_KW_HEADER_LEN 12
void mn_kw_header(uint8_t out[MN_KW_HEADER_LEN]);
/* Were a stored header's lists made the way this build makes them? */
bool mn_kw_header_current(const void *v, size_t len);
/* Removes slot's document, if any. */
void mn_kw_remove(mn_kw_index_t *ix, uint32_t slot);
/* BM25 (k1 = 1.2, b = 0.75) top-k over documents accepted by accept (NULL =
 * all). Writes up to k hits best first into out; returns how many. */
size_t mn_kw_search(const mn_kw_index_t *ix, const char *query, size_t len,
                    bool (*accept)(void *arg, uint32_t slot), void *arg, size_t k,
                    mn_kw_hit_t *out);
/* Document frequency of a folded term (0 if unknown). */
uint32_t mn_kw_df(const mn_kw_index_t *ix, const char *word, size_t len);
/* Number of indexed documents and distinct live terms. */
uint64_t mn_kw_docs(const mn_kw_index_t *ix);
uint64_t mn_kw_terms(const mn_kw_index_t *ix);

#endif
