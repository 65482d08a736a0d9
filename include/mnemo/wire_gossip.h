/* Wire codec for gossip frames (wire/gossip.fbs), used by the gossip/ core.
 * Decoding runs the FlatBuffers Verifier, then checks the shape of every
 * field the core relies on (kind, ids, space name, vector lengths and their
 * agreement, counts within limits, the format's major version) and the
 * frame's CRC32C, so a hostile or corrupt frame yields an error, never a
 * crash. The values' meaning (sorted ids, confidence ranges) is the core's to
 * judge (mn_gossip_record_check). Decoded strings and byte arrays point into
 * the caller's buffer (strings not NUL-terminated: use the lengths). */
#ifndef MNEMO_WIRE_GOSSIP_H
#define MNEMO_WIRE_GOSSIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/err.h"

#define MN_WIRE_GOSSIP_MAJOR 1
#define MN_WIRE_GOSSIP_MINOR 0
#define MN_WIRE_GOSSIP_VERSION (MN_WIRE_GOSSIP_MAJOR * 256 + MN_WIRE_GOSSIP_MINOR)
#define MN_WIRE_GOSSIP_ID_MAX 64               /* bytes of a node id */
#define MN_WIRE_GOSSIP_SPACE_MAX 64            /* bytes of a space name */
#define MN_WIRE_GOSSIP_MAX_NODES 1024          /* nodes in one frame */
#define MN_WIRE_GOSSIP_MAX_KEYS 4096           /* summary entries or pulled ids in one frame */
#define MN_WIRE_GOSSIP_MAX_RECORDS 1024        /* records in one push */
#define MN_WIRE_GOSSIP_MAX_IDS 64              /* ids in a record's support or forgotten list */
#define MN_WIRE_GOSSIP_PAYLOAD_MAX (64u << 10) /* bytes of a record's payload */
#define MN_WIRE_GOSSIP_MAX_FRAME (8u << 20)
#define MN_WIRE_GOSSIP_DEPTH 3 /* deepest node level */

typedef enum {
    MN_WIRE_GOSSIP_NODES = 1,   /* the sender's digests of these nodes: compare, descend */
    MN_WIRE_GOSSIP_SUMMARY = 2, /* the sender's entries under one node: diff, push, pull */
    MN_WIRE_GOSSIP_PULL = 3,    /* send me these records */
    MN_WIRE_GOSSIP_PUSH = 4,    /* records: merge them */
} mn_wire_gossip_kind_t;
#define MN_WIRE_GOSSIP_KIND_MAX MN_WIRE_GOSSIP_PUSH

typedef struct mn_wire_gossip_node {
    uint8_t level;  /* 0..MN_WIRE_GOSSIP_DEPTH */
    uint16_t index; /* < 16^level */
    uint32_t count;
    uint8_t digest[16];
} mn_wire_gossip_node_t;

typedef struct mn_wire_gossip_record {
    const uint8_t *id;     /* 16 bytes */
    const uint8_t *digest; /* 16 bytes */
    float confidence;
    uint64_t epoch, hlc;
    uint32_t support_n;
    bool retired;
    uint64_t forgotten_hlc;
    const uint8_t *support; /* 16 bytes per id */
    size_t n_support;
    const uint8_t *forgotten;
    size_t n_forgotten;
    const uint8_t *payload;
    size_t payload_len; /* 0..MN_WIRE_GOSSIP_PAYLOAD_MAX */
} mn_wire_gossip_record_t;

typedef struct mn_wire_gossip_frame {
    uint16_t version; /* decode: as received; encode: ignored (the current one is written) */
    uint8_t kind;     /* mn_wire_gossip_kind_t */
    const char *from;
    size_t from_len; /* 1..MN_WIRE_GOSSIP_ID_MAX */
    const char *space;
    size_t space_len; /* 0 = the directory */
    const mn_wire_gossip_node_t *nodes;
    size_t n_nodes;
    uint8_t level; /* summary */
    uint16_t index;
    const uint8_t *keys;      /* 16 per key (a space's summary, pull) */
    const uint8_t *digests;   /* 16 per entry (summaries) */
    size_t n_keys;            /* entries: keys or names */
    const char *const *names; /* the directory's summary: space names */
    const size_t *name_lens;
    const mn_wire_gossip_record_t *records;
    size_t n_records;
} mn_wire_gossip_frame_t;

/* Where decode puts what the frame's vectors expand to (caps: how many). */
typedef struct mn_wire_gossip_storage {
    mn_wire_gossip_node_t *nodes;
    size_t nodes_cap;
    mn_wire_gossip_record_t *records;
    size_t records_cap;
    const char **names;
    size_t *name_lens;
    size_t names_cap;
} mn_wire_gossip_storage_t;

/* A reusable encoder (owns a FlatBuffers builder). NULL on allocation failure. */
typedef struct mn_wire_gossip_enc mn_wire_gossip_enc_t;
mn_wire_gossip_enc_t *mn_wire_gossip_enc_new(void);
void mn_wire_gossip_enc_free(mn_wire_gossip_enc_t *e);

/* Encodes f; *out points into the encoder (valid until the next call).
 * MN_ERR_INVALID for a malformed frame, MN_ERR_TOO_LARGE past the limits. */
mn_err mn_wire_gossip_encode(mn_wire_gossip_enc_t *e, const mn_wire_gossip_frame_t *f,
                             const uint8_t **out, size_t *out_len);

/* Verifies and decodes buf (8-byte aligned). MN_ERR_CORRUPT on any failure
 * (verifier, shapes, CRC32C, more entries than st holds); MN_ERR_UNSUPPORTED
 * for another major version. */
mn_err mn_wire_gossip_decode(const uint8_t *buf, size_t len, mn_wire_gossip_frame_t *f,
                             const mn_wire_gossip_storage_t *st);

#endif
