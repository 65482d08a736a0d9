/* The one check every frame codec applies to the names it carries (node
 * ids, space names): 1..max bytes (0 allowed when may_be_empty), no control
 * characters, valid UTF-8. */
#ifndef MNEMO_WIRE_LABEL_H
#define MNEMO_WIRE_LABEL_H

#include <stdbool.h>
#include <stddef.h>

bool mn_wire_label_ok(const char *s, size_t n, size_t max, bool may_be_empty);

#endif
