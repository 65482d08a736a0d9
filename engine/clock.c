/* Time for the engine. Operations read the wall clock through the options (a
 * test's fake clock makes expiry, decay and as-of reads deterministic); the
 * background threads schedule on the monotonic clock, and their condition
 * variables use the default (realtime) clock, so a monotonic deadline is
 * turned into a realtime one just before each wait. */
#include "clock.h"

#include <time.h>

int64_t mn__clock_now_ms(const mn_engine_options_t *o)
{
    return o->clock ? o->clock(o->clock_arg) : mn_time_now_ms();
}

int64_t mn__mono_ms(void)
{
    return mn_time_mono_ns() / 1000000;
}

void mn__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms)
{
    if (!deadline_ms) {
        pthread_cond_wait(cv, mu);
        return;
    }
    int64_t left_ms = deadline_ms - mn__mono_ms();
    if (left_ms <= 0) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (left_ms % 1000) * 1000000LL;
    ts.tv_sec += (time_t)(left_ms / 1000 + ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    pthread_cond_timedwait(cv, mu, &ts);
}
