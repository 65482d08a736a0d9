/* Input validation (validate.c): every check names the field. A leaf. */
#ifndef MN_ENGINE_VALIDATE_H
#define MN_ENGINE_VALIDATE_H

#include "space.h"

/* Memory m of a remember into sp; index names it in a batch (SIZE_MAX: alone). */
mn_err mn__validate_memory(const mn__space *sp, const mn_memory_t *m, size_t index, mn_error *err);
mn_err mn__validate_filter(const mn_filter_t *f, mn_error *err);
/* The ranges of a consolidation's options, judged here once for every door (HTTP, gRPC,
 * MCP) and for the engine's defaults: 0 means the default, anything else must be in
 * range. The doors only convert types. */
#define MN_CONSOLIDATE_MIN_SUPPORT_MAX 100000u
mn_err mn__validate_consolidate_opts(const mn_consolidate_opts_t *o, mn_error *err);

#endif
