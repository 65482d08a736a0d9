/* Wire codec for replication frames (wire/repl.fbs), used by the replication
 * core of spaces/. Decoding runs the FlatBuffers Verifier first and then
 * checks every value the core relies on (kind, ids, space name, entry count
 * and sizes, the format's major version), so a hostile or corrupt frame
 * yields an error, never a crash. Decoded strings and entry data point into
 * the caller's buffer (not NUL-terminated: use the lengths). */
#ifndef MNEMO_WIRE_REPL_H
#define MNEMO_WIRE_REPL_H

#include <stddef.h>
#include <stdint.h>

#include "mnemo/err.h"

#define MN_WIRE_REPL_MAJOR 1
#define MN_WIRE_REPL_MINOR 3 /* 1: rec_epoch, rec_version; 2: echo_us; 3: incarnation */
#define MN_WIRE_REPL_VERSION (MN_WIRE_REPL_MAJOR * 256 + MN_WIRE_REPL_MINOR)
#define MN_WIRE_REPL_ID_MAX 64             /* bytes of a node id */
#define MN_WIRE_REPL_SPACE_MAX 64          /* bytes of a space name */
#define MN_WIRE_REPL_MAX_ENTRIES 4096      /* entries in one frame */
#define MN_WIRE_REPL_MAX_FRAME (16u << 20) /* bytes of one frame */

typedef enum {
    MN_WIRE_REPL_APPEND = 1,
    MN_WIRE_REPL_ACK = 2,
    MN_WIRE_REPL_FETCH = 3,
    MN_WIRE_REPL_TRUNCATE = 4,
    MN_WIRE_REPL_SNAPSHOT = 5,
    MN_WIRE_REPL_FENCED = 6,
    MN_WIRE_REPL_STATE = 7,
    MN_WIRE_REPL_VOTE_REQ = 8,
    MN_WIRE_REPL_VOTE = 9,
    MN_WIRE_REPL_HANDOVER = 10,
} mn_wire_repl_kind_t;
#define MN_WIRE_REPL_KIND_MAX MN_WIRE_REPL_HANDOVER

#define MN_WIRE_REPL_FLAG_CHECKED 1  /* append: answers a fetch; the prefix agrees */
#define MN_WIRE_REPL_FLAG_REPLY 1    /* state: answer with yours */
#define MN_WIRE_REPL_FLAG_GRANTED 1  /* vote */
#define MN_WIRE_REPL_FLAG_TRANSFER 1 /* vote-req: a handover the primary asked for */

typedef struct mn_wire_repl_entry {
    uint64_t epoch, lsn;
    uint32_t crc;
    const uint8_t *data;
    size_t len;
} mn_wire_repl_entry_t;

typedef struct mn_wire_repl_frame {
    uint16_t version; /* decode: as received; encode: ignored (the current one is written) */
    uint8_t kind;     /* mn_wire_repl_kind_t */
    const char *space;
    size_t space_len; /* 1..MN_WIRE_REPL_SPACE_MAX */
    const char *from;
    size_t from_len; /* 1..MN_WIRE_REPL_ID_MAX */
    uint64_t epoch, lsn, last_epoch;
    const char *leader;
    size_t leader_len; /* 0..MN_WIRE_REPL_ID_MAX */
    uint8_t flags;
    const mn_wire_repl_entry_t *entries;
    size_t n_entries;
    /* minor >= 1: the holder record the sender's core counts voters over (0, 0 = none, and
     * in every frame of minor 0) */
    uint64_t rec_epoch, rec_version;
    /* minor >= 2: append: the sender's monotonic clock at sending (us); ack: the newest
     * such time of the primary's appends heard (0 = none, and in older frames) */
    int64_t echo_us;
    /* minor >= 3: the incarnation of the space the sender's core speaks for (the catalog's
     * created_at_ms; 0 = not known, and in older frames) */
    uint64_t incarnation;
} mn_wire_repl_frame_t;

/* CRC32C of an entry as the frame carries it (see wire/repl.fbs). */
uint32_t mn_wire_repl_entry_crc(const char *space, size_t space_len, uint64_t epoch, uint64_t lsn,
                                const uint8_t *data, size_t len);

/* A reusable encoder (owns a FlatBuffers builder). NULL on allocation failure. */
typedef struct mn_wire_repl_enc mn_wire_repl_enc_t;
mn_wire_repl_enc_t *mn_wire_repl_enc_new(void);
void mn_wire_repl_enc_free(mn_wire_repl_enc_t *e);

/* Encodes f; *out points into the encoder (valid until the next call).
 * MN_ERR_INVALID for a malformed frame, MN_ERR_TOO_LARGE past
 * MN_WIRE_REPL_MAX_FRAME. */
mn_err mn_wire_repl_encode(mn_wire_repl_enc_t *e, const mn_wire_repl_frame_t *f,
                           const uint8_t **out, size_t *out_len);

/* Verifies and decodes buf (8-byte aligned). Entries go to storage (cap of
 * them) and f->entries points there. MN_ERR_CORRUPT on any verification
 * failure; MN_ERR_UNSUPPORTED for another major version. */
mn_err mn_wire_repl_decode(const uint8_t *buf, size_t len, mn_wire_repl_frame_t *f,
                           mn_wire_repl_entry_t *storage, size_t cap);

#endif
