/* The libuv adapter of the SWIM core (swim/swim_uv.c, library mn_swim_uv): binds
 * a UDP socket, feeds the sans-IO core (mnemo/swim.h) its packets and ticks,
 * and sends what it emits. The core itself links no libuv; only this adapter does. */
#ifndef MNEMO_SWIM_UV_H
#define MNEMO_SWIM_UV_H

#include "mnemo/swim.h"

struct uv_loop_s;
typedef struct mn_swim_uv mn_swim_uv_t;

typedef struct mn_swim_uv_opts {
    const char *node_id;
    const char *bind; /* numeric IP to bind and advertise ("127.0.0.1") */
    int port;         /* UDP port; 0 = any (see mn_swim_uv_addr) */
    const char *const
        *seeds; /* "host:port"; a name resolving to several addresses counts as several */
    size_t n_seeds;
    const char *key; /* "" or NULL = unauthenticated */
    mn_swim_config_t config;
    mn_swim_callbacks_t cb; /* send is ignored (the adapter sends); event optional */
    const char *meta;       /* this node's metadata (mn_swim_opts_t.meta); NULL = none */
} mn_swim_uv_opts_t;

/* Binds, creates the core and joins the seeds. */
mn_err mn_swim_uv_start(struct uv_loop_s *loop, const mn_swim_uv_opts_t *o, mn_swim_uv_t **out,
                        mn_error *err);
/* Leaves gracefully (bounded by timeout_ms), then closes; done (optional) runs
 * once the handles are closed and u is freed. */
void mn_swim_uv_stop(mn_swim_uv_t *u, int64_t timeout_ms, void (*done)(void *arg), void *arg);
/* Closes without leaving (as a crash would look to peers), frees on close. */
void mn_swim_uv_close(mn_swim_uv_t *u, void (*done)(void *arg), void *arg);
mn_swim_t *mn_swim_uv_core(mn_swim_uv_t *u);
/* Announces new metadata for this node (mn_swim_set_meta). Loop thread only. */
mn_err mn_swim_uv_set_meta(mn_swim_uv_t *u, const char *meta);
/* The bound address (port resolved when 0 was asked). */
mn_swim_addr_t mn_swim_uv_addr(const mn_swim_uv_t *u);
/* The seed step after resolving one "host:port": appends every IPv4/IPv6
 * address of the getaddrinfo list res, with port, to found[0..*n) (up to
 * cap, duplicates skipped), so a name with several addresses counts as
 * several seeds. Returns how many were added. */
struct addrinfo;
size_t mn_swim_uv_add_resolved(const struct addrinfo *res, uint16_t port, mn_swim_addr_t *found,
                               size_t *n, size_t cap);
/* Converts a core time (mn_swim_member_info_t.changed_us) to wall-clock ms. */
int64_t mn_swim_uv_wall_ms(const mn_swim_uv_t *u, int64_t core_us);

#endif
