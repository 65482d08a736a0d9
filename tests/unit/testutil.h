/* Helpers shared by the unit tests: temp dirs and deadline polling. */
#ifndef MN_TESTUTIL_H
#define MN_TESTUTIL_H
#include <stddef.h>
/* mkdtemp under $TMPDIR (or /tmp) with the given prefix; returns a malloc'd path. */
char *mn_test_tmpdir(const char *prefix);
/* rm -rf path (best effort). */
void mn_test_rmrf(const char *path);
#endif
