/* API keys and roles: the one access check every door of mnemo calls (HTTP and SSE through
 * mn_auth_http_gate; gRPC methods and MCP tools through mn_auth_allow with the operation
 * they run and the space it touches).
 *
 * A key is configured as the hex SHA-256 of its bytes ([[auth.keys]], api/config/config.c); a
 * presented key is hashed and compared with every configured digest in constant time.
 * Roles are ordered: read < write < admin (a write key may read, an admin key may do all).
 * Everything here is read-only after mn_auth_new, so any thread may call it. */
#ifndef MN_API_AUTH_H
#define MN_API_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "mnemo/config.h"
#include "mnemo/err.h"
#include "mnemo/http.h"

typedef enum {
    MN_AUTH_OPEN = 0, /* no key needed */
    MN_AUTH_READ,
    MN_AUTH_WRITE,
    MN_AUTH_ADMIN,
} mn_auth_role_t;

typedef enum {
    MN_AUTH_OK = 0,
    MN_AUTH_NO_KEY,       /* 401: no key presented */
    MN_AUTH_BAD_KEY,      /* 401: the key matches no configured key */
    MN_AUTH_ROLE_DENIED,  /* 403: the key's role is below the one needed */
    MN_AUTH_SPACE_DENIED, /* 403: the key may not use this space (or needs "*") */
} mn_auth_result_t;

typedef struct mn_auth mn_auth_t;

/* Builds the checker from cfg (copied; cfg may go away). Errors (MN_ERR_INVALID) name the
 * key: duplicate digests, an empty or invalid space list, auth enabled without keys. */
mn_err mn_auth_new(const mn_config_auth_t *cfg, mn_auth_t **out, mn_error *err);
void mn_auth_free(mn_auth_t *a);
bool mn_auth_enabled(const mn_auth_t *a);

/* What a request does. Every door (HTTP routes and SSE, gRPC methods, MCP tools) names the
 * operation it is about to run and asks mn_auth_allow; the table in auth.c gives each one
 * the role it needs and whether it is about one space or every space. */
typedef enum {
    MN_AUTH_OP_PROBE = 0,    /* health, ready, the API description: no key */
    MN_AUTH_OP_METRICS,      /* read, every space */
    MN_AUTH_OP_SPACE_LIST,   /* read, every space */
    MN_AUTH_OP_SPACE_READ,   /* read: a space's definition and stats */
    MN_AUTH_OP_EVENTS,       /* read: SSE /events, gRPC Watch */
    MN_AUTH_OP_MEMORY_READ,  /* read: get and list memories, list associations */
    MN_AUTH_OP_RECALL,       /* read: recall, recognize, reminisce, complete */
    MN_AUTH_OP_MCP,          /* read, any key: an MCP session (each tool asks again) */
    MN_AUTH_OP_REMEMBER,     /* write */
    MN_AUTH_OP_FORGET,       /* write: forget, unsuppress */
    MN_AUTH_OP_ASSOCIATE,    /* write */
    MN_AUTH_OP_CONSOLIDATE,  /* write */
    MN_AUTH_OP_SPACE_CREATE, /* admin, every space ("*"): the name is not the key's to pick */
    MN_AUTH_OP_SPACE_DROP,   /* admin */
    MN_AUTH_OP_ADMIN,        /* admin, every space: checkpoint, routes, cluster */
    MN_AUTH_OP_COUNT
} mn_auth_op_t;

/* The answer of mn_auth_allow: the result, and for a refusal the message and hint every
 * door sends (401 / UNAUTHENTICATED for NO_KEY and BAD_KEY, 403 / PERMISSION_DENIED for
 * the others). */
typedef struct mn_auth_verdict {
    mn_auth_result_t result;
    mn_auth_role_t need;  /* the operation's role */
    const char *key_name; /* the matched key's name ("" if unnamed or none), for logs */
    char message[160];
    const char *hint;
} mn_auth_verdict_t;

/* May the key (key_len bytes; NULL or empty = none) run op on space? space is ignored by
 * an operation about every space; for one about one space, NULL means it names none (then a
 * read needs any key with the role, write and admin a key for "*"). With auth disabled
 * everything is allowed. v (may be NULL) gets the reasons. The one check of every door. */
mn_auth_result_t mn_auth_allow(const mn_auth_t *a, const char *key, size_t key_len, mn_auth_op_t op,
                               const char *space, mn_auth_verdict_t *v);
/* The role op needs, and its name in messages ("create space"). */
mn_auth_role_t mn_auth_op_role(mn_auth_op_t op);
const char *mn_auth_op_name(mn_auth_op_t op);

/* The operation of an HTTP route: method and the route pattern as registered
 * ("/v1/spaces/{space}/recall"). Routes missing from the table in auth_http.c are
 * MN_AUTH_OP_ADMIN (default deny). HEAD is checked as GET. */
mn_auth_op_t mn_auth_route_op(const char *method, const char *pattern);
const char *mn_auth_role_name(mn_auth_role_t r);

/* The key of "Authorization: Bearer <key>" (scheme case-insensitive): NULL without the
 * header, "" with another scheme. Points into req. */
const char *mn_auth_http_key(const mn_http_request_t *req);

/* Gate for mn_http_server_set_gate (arg = the mn_auth_t): Authorization: Bearer <key>, the
 * route's role, the {space} path parameter; refusals are 401 (WWW-Authenticate: Bearer) or
 * 403 with the standard error body (codes unauthenticated / permission_denied). */
bool mn_auth_http_gate(void *arg, const mn_http_request_t *req, mn_http_response_t *resp);

/* Which configured key this is: its place in [[auth.keys]] + 1, or 0 (none, unknown, or
 * auth disabled). Compared in constant time like every check; for per-key quotas. */
size_t mn_auth_key_id(const mn_auth_t *a, const char *key, size_t key_len);

/* What a key may do, as the node that checked it vouches for it to another node (an internal
 * hop of cluster mode, api/cluster_client.h): the raw key never travels, only this. */
typedef struct mn_auth_grant {
    mn_auth_role_t role; /* MN_AUTH_OPEN: auth is off on the vouching node */
    const char *name;    /* the key's name, "" if none */
    const char *spaces;  /* "*" or space names, comma-separated */
} mn_auth_grant_t;
/* The grant of key: its role, name and spaces ("*" or names joined into buf, cap bytes; when
 * they do not fit, only `space`, which the gate already checked, or "" if NULL). Auth
 * disabled: role OPEN, spaces "*". false: no key or an unknown key under auth. */
bool mn_auth_grant_of(const mn_auth_t *a, const char *key, size_t key_len, const char *space,
                      char *buf, size_t cap, mn_auth_grant_t *g);
/* mn_auth_allow for a grant instead of a key: the grant's role and spaces against op and
 * space. With auth disabled here everything is allowed; with auth enabled here an OPEN grant
 * (auth off where the key was checked) is MN_AUTH_NO_KEY. */
mn_auth_result_t mn_auth_allow_grant(const mn_auth_t *a, const mn_auth_grant_t *g,
                                     mn_auth_op_t op, const char *space, mn_auth_verdict_t *v);
/* The configured name of a key named name (the table's own copy: it lives as long as a), or
 * NULL when no key has that name (or name is ""). */
const char *mn_auth_name_known(const mn_auth_t *a, const char *name);
/* The {space} path parameter of a routed request (params are in pattern order), or NULL. */
const char *mn_auth_http_space(const mn_http_request_t *req);

/* Is bind (an IPv4/IPv6 literal) a loopback address (127.0.0.0/8, ::1, ::ffff:127.x)? */
bool mn_auth_bind_is_loopback(const char *bind);

#endif
