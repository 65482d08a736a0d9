/* Time expressions in a recall cue: "on 7 Jan 2024", "last May", "two weeks
 * ago", "the Friday before 10.01.2024" -> a window of time [from, to), resolved
 * against a reference time (when the question is asked). English only.
 * Deterministic, no allocation, linear in the text (it reads at most the first
 * MN_TEXT_WHEN_MAX_TOKENS words and numbers). Calendar days are UTC days.
 * docs/recall.md §9 lists what it understands. */
#ifndef MN_ENGINE_TEXT_WHEN_H
#define MN_ENGINE_TEXT_WHEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MN_TEXT_WHEN_MAX_TOKENS 512

/* How precise the expression is: a named day ("May 5", "yesterday"), a week
 * ("last week", "two weeks ago"), a month ("in May", "last month"), a year
 * ("in 2017", "last year"), or an open range ("before May 5", "since Monday"). */
typedef enum {
    MN_TEXT_WHEN_DAY = 1,
    MN_TEXT_WHEN_WEEK = 2,
    MN_TEXT_WHEN_MONTH = 3,
    MN_TEXT_WHEN_YEAR = 4,
    MN_TEXT_WHEN_RANGE = 5,
} mn_text_when_unit_t;

typedef struct mn_text_when {
    bool has_from, has_to; /* false: open on that side */
    int64_t from_ms;       /* inclusive */
    int64_t to_ms;         /* exclusive */
    mn_text_when_unit_t unit;
    size_t start, len; /* the expression's bytes in the text */
} mn_text_when_t;

/* Finds the first time expression in text[0..len) and resolves it against
 * ref_ms (ms since the epoch). A date without a year is the most recent such
 * date not after the reference day. Returns false when the text names no time
 * (out is then zeroed). Any bytes are accepted. */
bool mn_text_when_find(const char *text, size_t len, int64_t ref_ms, mn_text_when_t *out);

/* The unit's name: "day", "week", "month", "year", "range". */
const char *mn_text_when_unit_name(mn_text_when_unit_t u);

#endif
