/* TEST ONLY: a deliberately broken build for the chaos harness's checker (test_drop.c). */
#ifndef MN_ENGINE_TEST_DROP_H
#define MN_ENGINE_TEST_DROP_H

#include <stddef.h>

#include "mnemo/engine.h"

/* Reads MNEMO_TEST_DROP_ACKED=N (N >= 1) into the engine and logs a warning when set. */
void mn__test_drop_init(mn_engine_t *e);
/* After a remember of n memories was acknowledged by the commit thread: when the Nth
 * memory of this process is among them, deletes it (the acknowledged write is lost).
 * Inert unless MNEMO_TEST_DROP_ACKED was set. */
void mn__test_drop_after_remember(mn_engine_t *e, const char *space, const mn_id_t *ids, size_t n);

#endif
