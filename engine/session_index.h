/* Slots by context.session, so the temporal link of a new episode looks at its
 * own session instead of scanning the space (private to engine/). Guarded by
 * the space's lock like the slots. */
#ifndef MN_SESSION_INDEX_H
#define MN_SESSION_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct mn__session_ix mn__session_ix;

mn__session_ix *mn__session_ix_new(void);
void mn__session_ix_free(mn__session_ix *x);
/* Adds slot under session; non-zero when out of memory. */
int mn__session_ix_add(mn__session_ix *x, const char *session, uint32_t slot);
void mn__session_ix_remove(mn__session_ix *x, const char *session, uint32_t slot);
/* The slots of session (unordered), NULL and 0 when none. */
const uint32_t *mn__session_ix_slots(const mn__session_ix *x, const char *session, size_t *n);

#endif
