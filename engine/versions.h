/* Versions of a corrected memory (versions.c, apply_versions.c; docs/api.md,
 * "Corrections"). A memory's lineage is the id its first version got; each correction
 * writes a version with a record of its own (supersedes: the one it replaced), and the
 * index key sid|'v'|lineage names the current one. Lookups read the store, through the
 * commit group's batch when b is given (apply) or straight (b NULL: the readers). */
#ifndef MN_ENGINE_VERSIONS_H
#define MN_ENGINE_VERSIONS_H

#include <rocksdb/c.h>

#include "commit.h"
#include "record.h"

/* At most this many versions per lineage are walked (a longer chain is damage). */
#define MN__VERSIONS_MAX 100000u

/* The lineage of memory id (a lineage id or any version's) and its current version.
 * MN_ERR_NOT_FOUND when id is unknown, MN_ERR_GONE when it was forgotten. */
mn_err mn__versions_resolve(mn__store *st, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                            const mn_id_t *id, mn_id_t *lineage, mn_id_t *head, mn_error *err);
/* The lineage of version id as clients name it: its lineage id, or id itself for a first
 * version (and when its record cannot be read: a forgotten memory's ids stay as they are). */
mn_id_t mn__versions_lineage_of(mn__store *st, const mn__space *sp, const mn_id_t *id);
/* The ids of the versions from head back to the first, following supersedes (*ids
 * malloc'd, head first; a first version alone gives itself). */
mn_err mn__versions_chain(mn__store *st, rocksdb_writebatch_wi_t *b, const mn__space *sp,
                          const mn_id_t *head, mn_id_t **ids, size_t *n, mn_error *err);
/* A memory read from its record, as the API shows it: id becomes the lineage, version_id
 * the record's own id; version and valid_from get their defaults (1, created_at). */
void mn__versions_present(mn_memory_t *m);

/* ---- apply_versions.c: the commit thread's side ---- */
/* An update entry: the new version, if the one it supersedes is still current
 * (MN_ERR_CONFLICT otherwise; MN_ERR_EXISTS for an idempotency key seen before). */
mn_err mn__apply_update(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b);
/* An invalidate entry: the current version gets valid_to (p->versions names it). */
mn_err mn__apply_invalidate(mn_engine_t *e, mn__pending *p, rocksdb_writebatch_wi_t *b);
/* Their in-memory effects (write lock held). */
void mn__apply_memory_update(mn__space *sp, const mn__pending *p);
void mn__apply_memory_invalidate(mn__space *sp, const mn__pending *p);

#endif
