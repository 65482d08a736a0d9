/* Space events for subscribers (events.c). */
#ifndef MN_ENGINE_EVENTS_H
#define MN_ENGINE_EVENTS_H

#include "mnemo/engine.h"
#include "mnemo/wire.h"

mn_err mn__events_init(mn_engine_t *e, mn_error *err);
/* Ends every subscription with MN_EVENT_CLOSED and detaches them (engine
 * close, while the writers still run: they publish to nobody after it). */
void mn__events_close(mn_engine_t *e);
/* Frees what mn__events_init made (no thread runs). */
void mn__events_free(mn_engine_t *e);
/* True when someone listens (cheap: check before building an event). */
bool mn__events_wanted(mn_engine_t *e);
void mn__events_publish(mn_engine_t *e, const char *space, const mn_event_t *ev);
/* Ends the subscriptions of space (every space when NULL) with a final event. */
void mn__events_end(mn_engine_t *e, const char *space, mn_event_kind_t kind);
/* The events of an applied WAL entry. */
void mn__events_from_entry(mn_engine_t *e, const mn_wal_entry_t *en, const bool *accepted);

#endif
