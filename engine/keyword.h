/* In-memory BM25 inverted index of one space, keyed by slot number. Derived
 * state: rebuilt from the stored memory records at start-up, updated by the
 * apply path, so it is exactly as durable as the records. Callers hold the
 * space lock: a write lock to add or remove, a read lock to search (searches
 * share no state and may run in parallel). */
#ifndef MN_ENGINE_KEYWORD_H
#define MN_ENGINE_KEYWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/err.h"

typedef struct mn_kw_index mn_kw_index;

typedef struct mn_kw_hit {
    uint32_t slot;
    float score;    /* BM25 */
    float coverage; /* sum of idf of the query words the document has / sum over all query
                       words (words the index has never seen count with the highest idf) */
} mn_kw_hit;

mn_kw_index *mn_kw_new(void);
void mn_kw_free(mn_kw_index *ix);
/* Indexes text under slot (which must not be indexed already). */
mn_err mn_kw_add(mn_kw_index *ix, uint32_t slot, const char *text, size_t len);
/* Removes slot's document, if any. */
void mn_kw_remove(mn_kw_index *ix, uint32_t slot);
/* BM25 (k1 = 1.2, b = 0.75) top-k over documents accepted by accept (NULL =
 * all). Writes up to k hits best first into out; returns how many. */
size_t mn_kw_search(const mn_kw_index *ix, const char *query, size_t len,
                    bool (*accept)(void *arg, uint32_t slot), void *arg, size_t k,
                    mn_kw_hit *out);
/* Document frequency of a folded term (0 if unknown). */
uint32_t mn_kw_df(const mn_kw_index *ix, const char *word, size_t len);
/* Number of indexed documents and distinct live terms. */
uint64_t mn_kw_docs(const mn_kw_index *ix);
uint64_t mn_kw_terms(const mn_kw_index *ix);

#endif
