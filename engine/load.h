/* Start-up (load.c): the spaces and their in-memory state, from the store. */
#ifndef MN_ENGINE_LOAD_H
#define MN_ENGINE_LOAD_H

#include "mnemo/engine.h"

/* Loads every space into e's registry (before any thread runs). */
mn_err mn__load(mn_engine_t *e, mn_error *err);

#endif
