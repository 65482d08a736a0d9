/* One memory of a space in memory: what recall, list and activation need to
 * filter and rank without touching the store (space.h keeps the slots). */
#ifndef MN_ENGINE_SLOT_H
#define MN_ENGINE_SLOT_H

#include <stdint.h>

#include "mnemo/model.h"

enum { SLOT_FREE = 0, SLOT_LIVE = 1 };

/* One end of an association, kept on both memories. */
typedef struct mn__adj {
    mn_id_t other;
    float weight;
    uint8_t kind; /* mn_edge_kind_t */
    uint8_t out;  /* 1: this memory is the edge's `from` */
} mn__adj;

typedef struct mn__slot {
    mn_id_t id;
    uint8_t state;
    uint8_t kind;
    uint8_t suppressed;
    uint8_t lifecycle;
    uint8_t has_vec;            /* memories may be text-only */
    uint8_t superseded;         /* a later version of the memory replaced it at valid_to */
    int64_t valid_from_ms;      /* versions: when it became current (0 = created_at) */
    int64_t valid_to_ms;        /* superseded or invalidated since (0 = valid) */
    int64_t suppressed_at_ms;   /* latest suppress (0 = never): as-of reads */
    int64_t unsuppressed_at_ms; /* latest unsuppress (0 = never) */
    float confidence;
    int64_t when_ms;
    int64_t created_at_ms;
    int64_t expires_at_ms;
    char **tags;
    uint32_t n_tags;
    uint32_t n_metadata;
    mn_kv_t *metadata;
    char *session; /* context.session, for temporal links */
    char *where;
    char **who;
    uint32_t n_who;
    float importance;
    float stability_days; /* 0 = never reinforced (initial stability applies) */
    int64_t last_access_ms;
    uint32_t access_count;
    mn__adj *adj;
    uint32_t n_adj, cap_adj;
} mn__slot;

#endif
