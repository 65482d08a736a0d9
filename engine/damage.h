/* Damage found at start-up (damage.c): refused, or with --salvage recorded
 * per space and for the node, and reported by mn_engine_space_damage and
 * mn_engine_salvaged. */
#ifndef MN_ENGINE_DAMAGE_H
#define MN_ENGINE_DAMAGE_H

#include "mnemo/engine.h"
#include "store.h"

/* Damage in space sid (name for the messages; sid 0 and name NULL: the node).
 * Without salvage: logged with what to do, and MN_ERR_CORRUPT with err set.
 * With salvage: logged, added to the reasons reported, and MN_OK. */
mn_err mn__damage(mn_engine_t *e, uint32_t sid, const char *name, mn_error *err, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));
/* After the load: every space's WAL reaches its acknowledged lsn, and every
 * space with one exists (acked.c). A salvage start then records the store as it
 * is, so the next start does not report the same loss again. */
mn_err mn__damage_check_acked(mn_engine_t *e, mn_error *err);
/* Was space sid dropped (its WAL ends with the drop entry)? */
bool mn__damage_dropped(mn__store *st, uint32_t sid);
/* Frees the recorded reasons. */
void mn__damage_free(mn_engine_t *e);

#endif
