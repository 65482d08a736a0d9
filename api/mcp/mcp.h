/* The MCP door (api/mcp): POST/GET/DELETE /mcp (Streamable HTTP transport) and the state
 * behind them, which api_server.c creates, configures and registers. docs/api.md, "MCP". */
#ifndef MN_API_MCP_H
#define MN_API_MCP_H

#include "mnemo/config.h"
#include "mnemo/err.h"
#include "mnemo/http.h"

/* The MCP state of one API: settings, the tool list and the session table. */
typedef struct mcp_server mcp_server;

mcp_server *mcp_server_new(void);
void mcp_server_free(mcp_server *s);
/* The API keys tool calls are checked against (NULL or disabled: every call is allowed);
 * not owned, must outlive s. Call before serving. */
struct mn_auth;
void mcp_server_set_auth(mcp_server *s, const struct mn_auth *auth);
/* Applies [mcp] of the configuration; call before serving (drops every session). */
mn_err mcp_server_configure(mcp_server *s, const mn_config_mcp_t *o, mn_error *err);

/* Route handlers (mcp_transport.c); ctx is the mn_api_t. */
void mcp_h_post(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void mcp_h_get(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);
void mcp_h_delete(void *ctx, const mn_http_request_t *req, mn_http_response_t *resp);

#endif
