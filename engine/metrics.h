/* Operation histograms of the engine (engine_metrics.c). */
#ifndef MN_ENGINE_METRICS_H
#define MN_ENGINE_METRICS_H

#include "mnemo/engine.h"

void mn__metrics_init(mn_engine_t *e);
/* Observes ns since t0_ns (mn_time_mono_ns) into h when rc is MN_OK; returns rc. */
mn_err mn__timed(mn_histogram_t *h, int64_t t0_ns, mn_err rc);

#endif
