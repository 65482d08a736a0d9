/* Associations of a space in memory (assoc.c): the adjacency kept on both
 * ends of each edge, and the links chosen for a new memory. */
#ifndef MN_ENGINE_ASSOC_H
#define MN_ENGINE_ASSOC_H

#include "space.h"

/* Records edge e on both endpoints if both are live (write lock); an edge of the
 * same kind between the same pair has its weight replaced. */
void mn__space_link(mn__space *sp, const mn_edge_t *e);
/* Semantic memory sem lists episodes ids[n] (sorted): a consolidation edge from
 * each live one, and none from an episode it no longer lists (write lock). */
void mn__space_link_supports(mn__space *sp, const mn_id_t *sem, const mn_id_t *ids, size_t n);
/* Auto-links for a memory (read lock held): up to link_max semantic
 * neighbours whose similarity is >= link_threshold among the candidate slots
 * cands[n_cands] (NULL: every slot), and the previous episode of its session
 * within the temporal window, looking at the space and at the earlier memories
 * `batch` of the same request. Appends to *edges (realloc'd). */
mn_err mn__space_autolink(const mn__space *sp, const mn_memory_t *m, const mn_memory_t *batch,
                          size_t n_batch, const uint32_t *cands, size_t n_cands,
                          float link_threshold, uint32_t link_max, int64_t temporal_window_ms,
                          int64_t now_ms, mn_edge_t **edges, size_t *n, size_t *cap);

/* Near-duplicates (docs/api.md, "Duplicates"): among memory id's semantic links
 * (*edges)[from..*n), best first, the best to an older memory (smaller id) with
 * similarity >= threshold gives a duplicate edge from id to that memory's
 * canonical (the memory it is itself a duplicate of, else itself), appended
 * to *edges. So each group is a star around its oldest memory (read lock held). */
mn_err mn__space_link_duplicate(const mn__space *sp, const mn_id_t *id, float threshold,
                                size_t from, mn_edge_t **edges, size_t *n, size_t *cap);
/* The canonical memory of slot s: the other end of its duplicate edge, or its own id. */
mn_id_t mn__slot_canonical(const mn__slot *s);

#endif
