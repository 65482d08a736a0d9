/* Time for the engine and its threads (clock.c). A leaf. */
#ifndef MN_ENGINE_CLOCK_H
#define MN_ENGINE_CLOCK_H

#include <pthread.h>
#include <stdint.h>

#include "mnemo/engine.h"

/* Wall-clock ms by the options' clock (tests pass a fake one), else the system's. */
int64_t mn__clock_now_ms(const mn_engine_options_t *o);
/* Monotonic ms, for the background threads' schedules. */
int64_t mn__mono_ms(void);
/* Waits on cv (mu held) until signalled or until the monotonic deadline_ms
 * (0 = no deadline); returns at once when the deadline has passed. Callers
 * re-check their condition: wake-ups may be spurious. */
void mn__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms);

#endif
