/* Idle keep-alive connections of the node-to-node HTTP client (cluster_client_pool.c).
 * Private to api/cluster_client*.c; any thread. */
#ifndef MN_API_CLUSTER_CLIENT_POOL_H
#define MN_API_CLUSTER_CLIENT_POOL_H

#include <stdbool.h>
#include <stddef.h>

#define CL_POOL_ADDR_MAX 300 /* "HOST:PORT" as cl_http_req.addr gives it */

/* Takes an idle connection to addr over tls (NULL: plain) that is still good: true with
 * *fd (and *ssl, an SSL *, NULL when plain) now the caller's; false with *fd = -1 and
 * *ssl = NULL (an idle connection found broken is closed here). */
bool cl__pool_take(const char *addr, const void *tls, int *fd, void **ssl);
/* Gives a connection that ended an exchange cleanly back for reuse (or closes it). */
void cl__pool_put(const char *addr, const void *tls, int fd, void *ssl);
/* Closes the idle connections made with tls (NULL: every one): a context about to be freed. */
void cl__pool_drop(const void *tls);
/* Closes fd and ssl (either may be absent: -1, NULL). */
void cl__pool_close(int fd, void *ssl);
/* How many connections are idle now (tests). */
size_t cl__pool_idle(void);

#endif
