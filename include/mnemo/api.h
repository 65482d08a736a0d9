/* The API layer: HTTP handlers over the engine, the server lifecycle, the CLI.
 *
 * The handlers only translate (JSON <-> engine structs); every value check is
 * the engine's. docs/api.md is the reference of the HTTP API. */
#ifndef MNEMO_API_H
#define MNEMO_API_H

#include "mnemo/engine.h"
#include "mnemo/err.h"
#include "mnemo/http.h"

/* Version string of this build. */
const char *mn_api_version(void);

/* The state the handlers share: the engine and whether the server is draining. */
typedef struct mn_api mn_api_t;

/* New API context over an open engine (not owned). NULL if out of memory. */
mn_api_t *mn_api_new(mn_engine_t *engine);
void mn_api_free(mn_api_t *api);
/* Registers every route of the HTTP API (docs/api.md) on router. */
mn_err mn_api_register(mn_api_t *api, mn_http_router_t *router, mn_error *err);
/* Applies the [mcp] settings (session table size and idle time, defaults of the tools);
 * call before serving. */
struct mn_config_mcp;
mn_err mn_api_set_mcp(mn_api_t *api, const struct mn_config_mcp *o, mn_error *err);
/* Opens the audit log at path ("" = none; docs/config.md, [audit]), replacing any. */
mn_err mn_api_set_audit(mn_api_t *api, const char *path, mn_error *err);
/* Cancels the forget-by-filter jobs and waits for them: call before the engine closes. */
void mn_api_stop_jobs(mn_api_t *api);
/* Starts / stops the pool of recalls over many spaces (api/query_local.c; threads 0 = the
 * default). mn_api_new starts it; stop it after the doors stopped and before the embedding
 * provider and the engine go (mn_api_free stops it too). */
mn_err mn_api_start_query(mn_api_t *api, uint32_t threads, mn_error *err);
void mn_api_stop_query(mn_api_t *api);
/* From now on GET /ready answers 503 (called when a graceful shutdown starts). */
void mn_api_set_draining(mn_api_t *api);

/* The mnemo command line: `serve [--config FILE]`, `config [--config FILE]`,
 * `--version`, `help`. envp is the environment (MNEMO_* overrides). Returns the
 * process exit code (0 ok, 1 runtime failure, 2 usage or configuration error). */
int mn_api_main(int argc, char **argv, char **envp);

#endif
