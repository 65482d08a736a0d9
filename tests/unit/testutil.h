/* Helpers shared by the unit tests: temp dirs and deadline polling. */
#ifndef MN_TESTUTIL_H
#define MN_TESTUTIL_H
#include <stddef.h>
#include <stdint.h>

#include "mnemo/engine.h"
/* mkdtemp under $TMPDIR (or /tmp) with the given prefix; returns a malloc'd path. */
char *mn_test_tmpdir(const char *prefix);
/* rm -rf path (best effort). */
void mn_test_rmrf(const char *path);
/* Engine options for unit tests on dir: small caches, and no sweeper thread,
 * scheduled consolidation or semantic auto-links (a test turns on what it tests). */
void mn_test_engine_options(mn_engine_options *o, const char *dir);
/* Creates a space; returns the engine's result. */
mn_err mn_test_space(mn_engine_t *e, const char *name, uint32_t dim, mn_metric metric);
#endif
