/* Space snapshots (snapshot*.c): the chunk format, shared by the export and the install,
 * and the commit thread's part of an install (a staging space id, the swap). */
#ifndef MN_ENGINE_SNAPSHOT_H
#define MN_ENGINE_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rocksdb/c.h>

#include "commit.h"

/* A chunk: "MNSN", version, flags (1 = last), 2 zero bytes, the export's id (be64), seq
 * (be32), the record count (be32), the payload's length (be32), the payload, then a CRC32C
 * (be32) of everything before it. A record: family (u8), key length (be32), value length
 * (be32), key, value. Keys travel without their space id. */
#define SNAP_MAGIC "MNSN"
#define SNAP_VERSION 1
#define SNAP_HEAD_LEN 28
#define SNAP_REC_HEAD 9
#define SNAP_FLAG_LAST 1
/* record families beside the store's (CF_WAL .. CF_KEYWORDS): the first record of chunk 0
 * (key: the space's name; value: last lsn, last epoch, first lsn (be64 each), then the
 * space's definition as stored in meta) and the last one of the last chunk (value: the
 * count of store records before it, be64) */
#define SNAP_REC_MANIFEST 0xF0
#define SNAP_REC_END 0xF1
#define SNAP_MANIFEST_FIXED 24
#define SNAP_KEY_MAX 4096

/* A chunk being written (snapshot_chunk.c). */
typedef struct mn__snap_buf {
    uint8_t *buf;
    size_t len, cap;
    uint32_t n_records;
} mn__snap_buf;

mn_err mn__snap_begin(mn__snap_buf *b, uint64_t id, uint32_t seq);
mn_err mn__snap_add(mn__snap_buf *b, uint8_t fam, const void *k, size_t kl, const void *v,
                    size_t vl);
/* The payload's length so far. */
size_t mn__snap_payload(const mn__snap_buf *b);
/* Fills the header and appends the checksum; *out takes the buffer. */
void mn__snap_end(mn__snap_buf *b, bool last, uint8_t **out, size_t *len);

/* A chunk read back: its header checked, then its records in order. */
typedef struct mn__snap_reader {
    const uint8_t *p, *end;
    uint64_t id;
    uint32_t seq, n_records;
    bool last;
} mn__snap_reader;

/* MN_ERR_CORRUPT naming what is wrong (magic, version, length, checksum). */
mn_err mn__snap_open(mn__snap_reader *r, const uint8_t *buf, size_t len, mn_error *err);
/* The next record: 1, 0 at the end, MN_ERR_CORRUPT (< 0) if it overruns the payload. */
int mn__snap_next(mn__snap_reader *r, uint8_t *fam, const uint8_t **k, size_t *kl,
                  const uint8_t **v, size_t *vl, mn_error *err);

/* ---- the commit thread's part (snapshot.c) ---- */

typedef enum { SNAP_OP_RESERVE = 1, SNAP_OP_SWAP } mn__snap_op_kind;

/* An op of the commit queue without an entry (mn__pending.snap). */
typedef struct mn__snap_op {
    mn__snap_op_kind kind;
    const char *space;
    uint32_t sid;       /* RESERVE: the staging id given; SWAP: the staged space's */
    mn__space *sp;      /* SWAP: the staged space, loaded (the map takes this reference) */
    const uint8_t *def; /* SWAP: its definition, with sid */
    size_t def_len;
} mn__snap_op;

/* Commit thread: carries out p->snap. */
void mn__snapshot_stage(mn_engine_t *e, mn__pending *p);
/* Start-up (before the spaces load): drops what a crash left staged. */
mn_err mn__snapshot_clean(mn_engine_t *e, mn_error *err);
/* The meta key of a staging id (returns its length; k holds 32 bytes). */
size_t mn__snapshot_stage_key(char *k, uint32_t sid);
/* Deletes every key of space id sid from the per-space families into b. */
void mn__snapshot_delete_sid(mn_engine_t *e, rocksdb_writebatch_t *b, uint32_t sid);

#endif
