/* Decay and strengthening of memories.
 *
 * Retention follows a power-law forgetting curve, R(t) = (1 + t / (9 S))^-1,
 * with t the time since the memory was last accessed and S its stability in
 * days: the time after which R falls to 0.9. Power laws fit human forgetting
 * data better than exponentials (Wixted & Ebbesen, "On the form of
 * forgetting", Psychological Science 1991); this form is the one FSRS uses
 * (Ye, "A Stochastic Shortest Path Algorithm for Optimizing Spaced Repetition
 * Scheduling", KDD 2022). It is computed at read time from the stored
 * stability and last access; nothing is written as time passes.
 *
 * A recall with reinforce grows the stability, more when the memory had been
 * partly forgotten (the spacing effect): S' = S (1 + 0.1 + 3 (1 - R)). A recall
 * right after the last one (R ~ 1) adds 10%; a recall at R = 0.5 multiplies S
 * by 2.6. The initial stability scales with importance: S0 = base (0.5 + importance). */
#include "decay.h"

#include <math.h>

#define DAY_MS 86400000.0
#define MIN_GROWTH 0.1f
#define SPACING_GAIN 3.0f
#define MAX_STABILITY_DAYS 36500.0f

float mn__retention(float stability_days, int64_t elapsed_ms)
{
    if (elapsed_ms <= 0) return 1.0f;
    if (!(stability_days > 0)) return 0.0f;
    double t = (double)elapsed_ms / DAY_MS;
    return (float)(1.0 / (1.0 + t / (9.0 * stability_days)));
}

float mn__initial_stability(float initial_days, float importance)
{
    if (importance < 0) importance = 0;
    if (importance > 1) importance = 1;
    return initial_days * (0.5f + importance);
}

mn_strength_t mn__reinforce(const mn_strength_t *cur, int64_t at_ms)
{
    mn_strength_t next = *cur;
    float r = mn__retention(cur->stability_days, at_ms - cur->last_access_ms);
    float s = cur->stability_days * (1.0f + MIN_GROWTH + SPACING_GAIN * (1.0f - r));
    next.stability_days = s > MAX_STABILITY_DAYS ? MAX_STABILITY_DAYS : s;
    next.last_access_ms = at_ms > cur->last_access_ms ? at_ms : cur->last_access_ms;
    next.access_count = cur->access_count + 1;
    return next;
}

void mn__slot_strength(const mn__slot *s, float initial_days, mn_strength_t *out)
{
    out->id = s->id;
    out->stability_days = s->stability_days > 0
                              ? s->stability_days
                              : mn__initial_stability(initial_days, s->importance);
    out->last_access_ms = s->last_access_ms ? s->last_access_ms : s->created_at_ms;
    out->access_count = s->access_count;
}
