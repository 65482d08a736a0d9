/* The acknowledged-lsn watermark (acked.c): per space, the last lsn of a write
 * that was fsynced, kept beside the store so that a start can tell a store
 * that lost acknowledged writes from one that crashed cleanly. */
#ifndef MN_ENGINE_ACKED_H
#define MN_ENGINE_ACKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/err.h"

#define MN__ACKED_FILE "mnemo-acked"

typedef struct mn__acked mn__acked;

/* Reads <data_dir>/mnemo-acked (absent: nothing known yet). With writable, the
 * file is created if needed and kept open for mn__acked_note; else it is only
 * read (mnemo check). Torn records are skipped and counted (*torn may be NULL). */
mn_err mn__acked_open(const char *data_dir, bool writable, mn__acked **out, size_t *torn,
                      mn_error *err);
void mn__acked_close(mn__acked *a);
/* The last acknowledged lsn of space sid, 0 when none is known. */
uint64_t mn__acked_get(const mn__acked *a, uint32_t sid);
/* The largest sid with a record (0: none); with mn__acked_get, the walk over
 * every known space. */
uint32_t mn__acked_max_sid(const mn__acked *a);
/* Notes lsn as acknowledged for sid (0 forgets the space: it was dropped);
 * mn__acked_write writes what was noted. The commit thread notes the entries of
 * a group after the synced write that made them durable, so the file never
 * claims more than the store holds. A failure is logged once: the check gets
 * weaker, writes go on. */
void mn__acked_note(mn__acked *a, uint32_t sid, uint64_t lsn);
void mn__acked_write(mn__acked *a);

#endif
