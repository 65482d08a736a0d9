/* Filters and as-of checks on a slot (filter.c). A leaf: it reads a slot and a
 * filter, nothing else. Callers hold the space's lock for the slot. */
#ifndef MN_ENGINE_FILTER_H
#define MN_ENGINE_FILTER_H

#include <stdbool.h>
#include <stdint.h>

#include "slot.h"

/* Does a live slot pass the filter at time now_ms? An as-of filter sees the
 * memory as it was at as_of: created by then, suppressed then or not; a
 * memory expired by now never passes (its content is gone). */
bool mn__filter_match(const mn__slot *s, const mn_filter_t *f, int64_t now_ms);
/* Is the slot's version the current one of its memory at as_of_ms (MN_TIME_UNSET = now)?
 * A superseded version was current from valid_from until valid_to. */
bool mn__filter_version_current(const mn__slot *s, int64_t as_of_ms);
/* Was a memory suppressed at time t_ms, given whether it is now and the times
 * of its latest suppress and unsuppress? (A suppression older than its
 * recorded time counts from the start: the safe side.) */
bool mn__filter_suppressed_at(bool suppressed_now, int64_t suppressed_at_ms,
                              int64_t unsuppressed_at_ms, int64_t t_ms);
/* Does a memory forgotten at gone_at belong in an as-of view (f->as_of_ms set)?
 * Only kind, when and created_at can be checked on what is left of it, so a
 * filter on anything else (tags, metadata, context, confidence, and in an expression
 * lifecycle and importance) leaves it out. */
bool mn__filter_match_gone(uint8_t kind, int64_t when_ms, int64_t created_at_ms, int64_t gone_at_ms,
                           const mn_filter_t *f);
/* The memory m as a slot, for the filter (its pointers borrowed from m). */
mn__slot mn__filter_slot_of(const mn_memory_t *m);
/* MN_ERR_INVALID for an as-of time in the future or older than max_age_ms. */
mn_err mn__filter_check_as_of(const mn_filter_t *f, int64_t now_ms, int64_t max_age_ms,
                              mn_error *err);

#endif
