/* Wire codecs for WAL entries and stored memory records (FlatBuffers, framed
 * with a CRC32C). Encoders return malloc'd buffers the caller frees; decoders
 * check the CRC, verify the buffer, then copy into C structs the caller clears. */
#ifndef MNEMO_WIRE_H
#define MNEMO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/err.h"
#include "mnemo/model.h"

typedef enum {
    MN_WAL_OP_NONE = 0,
    MN_WAL_OP_SPACE_CREATE = 1,
    MN_WAL_OP_REMEMBER = 2,
    MN_WAL_OP_FORGET = 3,
    MN_WAL_OP_UNSUPPRESS = 4,
    MN_WAL_OP_ASSOCIATE = 5,
    MN_WAL_OP_REINFORCE = 6,
    MN_WAL_OP_CONSOLIDATE = 7,
    MN_WAL_OP_SPACE_DROP = 8,
    MN_WAL_OP_EMBED = 9,
    MN_WAL_OP_FORGET_BATCH = 10,
    MN_WAL_OP_UPDATE = 11,     /* a correction: a new version of a memory */
    MN_WAL_OP_INVALIDATE = 12, /* a memory stops being valid, kept */
} mn_wal_op_type_t;

typedef enum { MN_FORGET_REASON_CLIENT = 0, MN_FORGET_REASON_EXPIRED = 1 } mn_forget_reason_t;

typedef struct mn_wal_entry {
    char space[MN_SPACE_NAME_MAX + 1];
    uint64_t epoch;
    uint64_t lsn;
    uint64_t hlc;
    mn_wal_op_type_t type;
    union {
        struct {
            mn_space_def_t def;
            uint32_t space_id;
        } space_create;
        struct {
            /* decoded: owned by the entry; encoding: borrowed. A memory with
             * forgotten set is an erased one: id, kind, when, created_at and
             * forgotten_at only (its content and embedding were stripped). */
            mn_memory_t *mems;
            size_t n;
            mn_edge_t *edges; /* links of the new memories (same ownership as mems) */
            size_t n_edges;
        } remember;
        struct {
            mn_id_t id;
            int mode;   /* mn_forget_mode_t */
            int reason; /* mn_forget_reason_t */
            int64_t at_ms;
        } forget;
        struct {
            mn_id_t id;
            int64_t at_ms; /* 0 in old entries: use mn_hlc_ms(hlc) */
        } unsuppress;
        struct {
            /* a forget by filter's chunk: each id as one forget of the same mode,
             * reason and time; ids already gone are skipped. decoded: owned;
             * encoding: borrowed */
            mn_id_t *ids;
            size_t n;
            int mode;   /* mn_forget_mode_t */
            int reason; /* mn_forget_reason_t */
            int64_t at_ms;
        } forget_batch;
        struct {
            mn_edge_t *edges; /* decoded: owned; encoding: borrowed */
            size_t n;
        } associate;
        struct {
            mn_strength_t *items; /* decoded: owned; encoding: borrowed */
            size_t n;
        } reinforce;
        struct {
            mn_memory_t *mems; /* semantic memories; decoded: owned; encoding: borrowed */
            size_t n;
        } consolidate;
        struct {
            mn_id_t id;
            float *embedding; /* dim floats; NULL (dim 0) once the memory was forgotten;
                                 decoded: owned; encoding: borrowed */
            uint32_t dim;
        } embed;
        struct {
            uint32_t space_id; /* the dropped space's local storage prefix */
            int64_t at_ms;
        } space_drop;
        struct {
            /* the new version (decoded: owned; encoding: borrowed); forgotten set once the
             * lineage was erased (its stub) */
            mn_memory_t mem;
        } update;
        struct {
            mn_id_t id;        /* the lineage, or one of its versions */
            int64_t at_ms;
            mn_id_t by;        /* zero: none named */
            char *reason;      /* NULL: none; decoded: owned; encoding: borrowed */
        } invalidate;
    } op;
} mn_wal_entry_t;

/* The most ids one forget batch entry carries. */
#define MN_WAL_FORGET_BATCH_MAX 10000

#define MN_WIRE_FRAME_HEADER 4 /* crc32c, little-endian */

/* Encodes e as a framed buffer (*out malloc'd, free()). */
mn_err mn_wire_wal_encode(const mn_wal_entry_t *e, uint8_t **out, size_t *len);
/* Decodes a framed buffer; on success release with mn_wal_entry_clear. */
mn_err mn_wire_wal_decode(const uint8_t *buf, size_t len, mn_wal_entry_t *out, mn_error *err);
/* Frees what a decode allocated. */
void mn_wal_entry_clear(mn_wal_entry_t *e);

/* A stored memory record. with_embedding=false leaves the vector out. A tombstone
 * record keeps id, kind, when, created_at and forgotten_at only. */
typedef struct mn_memory_record {
    mn_memory_t mem;
    bool tombstone;
    int64_t forgotten_at_ms;
} mn_memory_record_t;
mn_err mn_wire_memory_encode(const mn_memory_record_t *r, bool with_embedding, uint8_t **out,
                             size_t *len);
/* Decodes into out (clear out->mem with mn_memory_clear). */
mn_err mn_wire_memory_decode(const uint8_t *buf, size_t len, mn_memory_record_t *out,
                             mn_error *err);
/* The same without copying the content (out->mem.content NULL, content_len its
 * length in bytes): for readers that need every field but the words. */
mn_err mn_wire_memory_decode_meta(const uint8_t *buf, size_t len, mn_memory_record_t *out,
                                  mn_error *err);

#endif
