/* The expiry sweeper thread (sweeper.c): expiry, WAL trimming and pruning of
 * the as-of index, every engine.expiry_interval_ms. */
#ifndef MN_ENGINE_SWEEPER_H
#define MN_ENGINE_SWEEPER_H

#include "mnemo/engine.h"

/* Starts the thread when expiry_interval_ms > 0; without it (or when it
 * cannot start) memories expire when mn_engine_expire is called. */
void mn__sweeper_start(mn_engine_t *e);
void mn__sweeper_stop(mn_engine_t *e);
/* Deletes as-of index entries too old for any as-of read (a sweep's last step). */
mn_err mn__prune_gone(mn_engine_t *e, mn_error *err);

#endif
