/* Input validation (validate.c): every check names the field. A leaf. */
#ifndef MN_ENGINE_VALIDATE_H
#define MN_ENGINE_VALIDATE_H

#include "space.h"

/* Memory m of a remember into sp; index names it in a batch (SIZE_MAX: alone). */
mn_err mn__validate_memory(const mn__space *sp, const mn_memory_t *m, size_t index, mn_error *err);
mn_err mn__validate_filter(const mn_filter_t *f, mn_error *err);

#endif
