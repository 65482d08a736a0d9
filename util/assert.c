/* The failure half of mn_assert (include/mnemo/assert.h): one line on stderr
 * naming the broken invariant, then abort() so a core dump or a sanitizer
 * report keeps the stack. Written with plain stdio: the logger may be the
 * thing that is broken. */
#include "mnemo/assert.h"

#include <stdio.h>
#include <stdlib.h>

_Noreturn void mn_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "mnemo: invariant failed: %s:%d: %s: %s\n", file, line, func, expr);
    fflush(stderr);
    abort();
}
