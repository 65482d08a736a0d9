/* API keys and roles: the one access check every door of mnemo calls (HTTP through
 * mn_auth_http_gate; gRPC and others through mn_auth_check with the role their operation
 * needs and the space it touches).
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

/* May the key (key_len bytes; NULL or empty = none) do an operation that needs `need` on
 * `space`? space NULL = an operation not about one space: read needs any key with the role,
 * write and admin need a key whose spaces are "*" (they act on every space). With auth
 * disabled (or need OPEN) everything is MN_AUTH_OK. *name (may be NULL) gets the matched
 * key's name ("" if unnamed), for logs. */
mn_auth_result_t mn_auth_check(const mn_auth_t *a, const char *key, size_t key_len, mn_auth_role_t need,
                             const char *space, const char **name);

/* The role an HTTP route needs: method and the route pattern as registered
 * ("/v1/spaces/{space}/recall"). Routes missing from the table in auth_routes.c need admin
 * (default deny). HEAD is checked as GET. */
mn_auth_role_t mn_auth_route_role(const char *method, const char *pattern);
const char *mn_auth_role_name(mn_auth_role_t r);

/* Gate for mn_http_server_set_gate (arg = the mn_auth_t): Authorization: Bearer <key>, the
 * route's role, the {space} path parameter; refusals are 401 (WWW-Authenticate: Bearer) or
 * 403 with the standard error body (codes unauthenticated / permission_denied). */
bool mn_auth_http_gate(void *arg, const mn_http_request_t *req, mn_http_response_t *resp);

/* Is bind (an IPv4/IPv6 literal) a loopback address (127.0.0.0/8, ::1, ::ffff:127.x)? */
bool mn_auth_bind_is_loopback(const char *bind);

#endif
