/* Replay protection of internal hops (api/cluster_replay.c). Private to api/. Not
 * thread-safe: one caller at a time (the HTTP gate runs on the loop thread). */
#ifndef MN_API_CLUSTER_REPLAY_H
#define MN_API_CLUSTER_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#define CL_REPLAY_SLOTS 65536 /* 1 MiB */

typedef struct cl_replay cl_replay;

/* Remembers signatures for window_ms (the hop clock window, both ways). NULL: no memory. */
cl_replay *cl_replay_new(int64_t window_ms);
void cl_replay_free(cl_replay *r);
/* Was this signature (hex, at least 16 digits) seen within the window before now_ms? Records
 * it if not. */
bool cl_replay_seen(cl_replay *r, const char *sig_hex, int64_t now_ms);

#endif
