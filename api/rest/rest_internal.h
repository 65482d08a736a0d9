/* Private to the REST door (api/rest/rest_*.c): JSON <-> engine structs of the handlers. */
#ifndef MN_API_REST_INTERNAL_H
#define MN_API_REST_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "api_internal.h"
#include "mnemo/engine.h"
#include "rest.h"

/* ---- memories, filters, hits (rest_convert.c, rest_handlers_recall.c) ---- */
/* Reads one input memory (remember). pfx is "" or "memories[i]." */
mn_err rest_memory_from_json(const cJSON *o, const char *pfx, api_arena *a, mn_memory_t *m,
                            mn_error *err);
/* Writes the memory object of docs/api.md. */
void rest_memory_to_json(api_jw *w, const mn_memory_t *m);
/* Reads the filter members of a recall body into f (already initialised). */
mn_err rest_filter_from_json(const cJSON *o, api_arena *a, mn_filter_t *f, mn_error *err);

/* Writes one recall hit (docs/api.md, "Recall"); activation and seed with spread, via with trace. */
void rest_hit_to_json(api_jw *w, const mn_recall_hit *h, bool spread, bool trace);

/* The operationId docs/openapi.yaml gives (method, route pattern), or NULL. */
const char *rest_openapi_op(const char *method, const char *route);

#endif
