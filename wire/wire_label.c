/* Names in frames (wire_label.h): shared by the replication and gossip
 * codecs and by the gossip core, which checks the names it is given the way
 * its peers will check them. */
#include "mnemo/wire_label.h"

#include "mnemo/util.h"

bool mn_wire_label_ok(const char *s, size_t n, size_t max, bool may_be_empty)
{
    if (n == 0) return may_be_empty;
    if (!s || n > max) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) return false;
    }
    return mn_utf8_valid(s, n);
}
