/* Start-up (load.c): the spaces and their in-memory state, from the store. */
#ifndef MN_ENGINE_LOAD_H
#define MN_ENGINE_LOAD_H

#include "mnemo/engine.h"

/* Loads every space into e's registry (before any thread runs). */
mn_err mn__load(mn_engine_t *e, mn_error *err);
/* A space from its definition (a space-create entry, as meta holds it) and its keys in the
 * store: its WAL's ends, role, memories, term lists, associations and strengths, not its
 * vector index; *out has one reference and is in no map. what names the definition in a
 * damage message. */
struct mn__space;
mn_err mn__load_space(mn_engine_t *e, const uint8_t *def, size_t len, const char *what,
                      struct mn__space **out, mn_error *err);

#endif
