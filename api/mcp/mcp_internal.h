/* Private to the MCP endpoint (api/mcp/mcp_*.c): the session table (mcp_session.c), the
 * Streamable HTTP transport (mcp_transport.c), JSON-RPC dispatch (mcp_rpc.c) and the tools
 * (mcp_tools.c). docs/api.md, "MCP", is the reference; the MCP specification revisions
 * followed are those of mcp_versions[]. */
#ifndef MN_MCP_INTERNAL_H
#define MN_MCP_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "api_internal.h"
#include "mcp.h"
#include "mnemo/config.h"

/* 128 random bits as 32 lower-case hex digits: visible ASCII, as the transport requires. */
#define MCP_SESSION_ID_LEN 32
#define MCP_VERSION_MAX 15
/* Messages in one JSON-RPC batch (older protocol versions only). */
#define MCP_BATCH_MAX 256
/* Bytes of one POST when mcp.max_body_bytes is not set; nodes of its JSON (one tool call
 * needs a few hundred; a batch of MCP_BATCH_MAX of them fits). */
#define MCP_BODY_DEFAULT (1u << 20)
#define MCP_NODES_MAX 65536

/* JSON-RPC 2.0 error codes, and the one MCP servers use for transport errors. */
#define MCP_PARSE_ERROR -32700
#define MCP_INVALID_REQUEST -32600
#define MCP_METHOD_NOT_FOUND -32601
#define MCP_INVALID_PARAMS -32602
#define MCP_INTERNAL_ERROR -32603
#define MCP_SERVER_ERROR -32000

typedef struct mcp_session {
    char id[MCP_SESSION_ID_LEN + 1]; /* "" = free slot */
    char version[MCP_VERSION_MAX + 1];
    int64_t last_used_ns; /* monotonic */
    size_t owner;         /* mn_auth_key_id of the key that made it (0: auth off) */
    bool initialized;     /* notifications/initialized seen */
} mcp_session;

/* The MCP state of one API: settings, the tool list and the bounded session table. */
struct mcp_server {
    uv_mutex_t lock; /* guards sessions and n_sessions */
    mcp_session *sessions;
    size_t cap, n_sessions;
    size_t per_key_max; /* sessions one key (one owner) may hold */
    int64_t idle_ns;
    uint32_t default_dim;
    size_t max_body_bytes; /* mcp.max_body_bytes (0: MCP_BODY_DEFAULT) */
    char default_space[MN_SPACE_NAME_MAX + 1];
    mn_config_strlist_t allowed_origins; /* our own copy */
    cJSON *tools;                      /* the "tools" array of tools/list, built once */
    const struct mn_auth *auth;        /* the API keys (NULL: auth off), read-only */
};

/* ---- mcp_session.c ---- */
/* Protocol versions we speak, newest first; NULL-terminated. */
extern const char *const mcp_versions[];
bool mcp_version_supported(const char *v);
/* The client's version if we speak it, else our newest. */
const char *mcp_version_negotiate(const char *requested);
/* JSON-RPC batches were removed in 2025-06-18. */
bool mcp_version_allows_batch(const char *v);

/* New session speaking version for the client presenting key (NULL: none): its id into
 * id_out. A key that holds mcp.max_sessions_per_key sessions loses its own least recently
 * used one; no key ever ends another key's session: when the table is full of other keys'
 * live sessions, MN_ERR_BUSY. MN_ERR_IO if no secure random bytes were available. */
mn_err mcp_session_create(mcp_server *s, const char *version, const char *key, char *id_out);
/* Looks a session up and marks it used; copies its version (may be NULL). false if unknown
 * or idle for longer than mcp.session_idle_s (then it is ended). */
bool mcp_session_touch(mcp_server *s, const char *id, char *version_out);
void mcp_session_set_initialized(mcp_server *s, const char *id);
/* Ends a session; false if it was unknown. */
bool mcp_session_end(mcp_server *s, const char *id);

/* ---- mcp_rpc.c ---- */
/* One POST's worth of context for the JSON-RPC layer. */
typedef struct mcp_call {
    mn_api_t *api;
    mcp_server *srv;
    const mn_http_request_t *http;
    char session[MCP_SESSION_ID_LEN + 1]; /* "" before initialize */
    char version[MCP_VERSION_MAX + 1];
    bool in_batch;
} mcp_call;
/* {"jsonrpc":"2.0","id":id,"error":{"code","message"[,"data"]}}; id NULL = null. Takes data. */
cJSON *mcp_rpc_error(const cJSON *id, int code, const char *message, cJSON *data);
/* Handles one message: a response object to send, or NULL for a notification or a response
 * from the client. An initialize request creates a session (its id into c->session). */
cJSON *mcp_rpc_handle(mcp_call *c, const cJSON *msg);
/* True if msg is an initialize request (method "initialize" with an id). */
bool mcp_rpc_is_initialize(const cJSON *msg);

/* ---- mcp_tools.c ---- */
/* Builds the tools array (schemas and annotations); NULL if out of memory. */
cJSON *mcp_tools_build(void);
/* tools/call: the result object (isError on a tool failure), or NULL with *code and msg
 * set for a protocol error (unknown tool, malformed params). */
cJSON *mcp_tools_call(mcp_call *c, const cJSON *params, int *code, char *msg, size_t msg_len);


#endif
