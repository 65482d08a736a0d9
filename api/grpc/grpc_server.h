/* The gRPC door (api/grpc): the server api_server.c starts and stops (grpc_server.c). The
 * contract is api/proto/mnemo/v1/mnemo.proto, docs/grpc.md the reference. */
#ifndef MN_API_GRPC_SERVER_H
#define MN_API_GRPC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "mnemo/api.h"
#include "mnemo/err.h"

typedef struct mn_grpc mn_grpc_t;

typedef struct mn_grpc_options {
    const char *bind;         /* IPv4/IPv6 literal or host name */
    int port;                 /* 0 = ephemeral */
    int threads;              /* worker threads that run the handlers */
    size_t max_message_bytes; /* largest request message */
    int max_concurrent_streams;
    int max_watches;          /* open Watch streams at most */
    int handshake_timeout_ms; /* TLS/HTTP2 handshake budget of a new connection */
    int idle_timeout_ms;      /* a connection without calls this long is closed */
    const char *tls_cert;     /* "" or NULL = plaintext; else PEM files */
    const char *tls_key;
} mn_grpc_options_t;

/* Starts the gRPC server on its own threads. auth (may be NULL: everything allowed) must
 * outlive it. Logs "grpc listening on HOST:PORT". */
/* The gRPC door's part of a unary call another node forwards here (mn_api.grpc_hop). */
const struct api_grpc_hop *mn_grpc_hop_service(void);

mn_err mn_grpc_start(mn_api_t *api, const mn_auth_t *auth, const mn_grpc_options_t *o,
                     mn_grpc_t **out, mn_error *err);
int mn_grpc_port(const mn_grpc_t *g);
/* Stops accepting calls and ends every Watch stream with a CLOSED event (does not block). */
void mn_grpc_shutdown_begin(mn_grpc_t *g);
/* Waits up to grace_ms for in-flight calls, cancels the rest, joins the threads and frees g
 * (calls mn_grpc_shutdown_begin if it was not). Before the engine closes. */
void mn_grpc_stop(mn_grpc_t *g, int64_t grace_ms);

#endif
