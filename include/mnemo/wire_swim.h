/* Wire codec for SWIM packet bodies (wire/swim.fbs). The swim/ core adds the
 * framing and the HMAC; this layer only turns a message struct into FlatBuffers
 * bytes and back. Decoding runs the FlatBuffers Verifier first and then checks
 * every value the core relies on (id lengths, states, counts), so a hostile or
 * corrupt body yields MN_ERR_CORRUPT, never a crash. Decoded strings point
 * into the caller's buffer (not NUL-terminated: use the lengths). */
#ifndef MNEMO_WIRE_SWIM_H
#define MNEMO_WIRE_SWIM_H

#include <stddef.h>
#include <stdint.h>

#include "mnemo/err.h"

#define MN_WIRE_SWIM_ID_MAX 64      /* bytes in a node id */
#define MN_WIRE_SWIM_MAX_ENTRIES 64 /* state + updates entries in one packet */
#define MN_WIRE_SWIM_META_MAX 128   /* bytes of a member's metadata */

typedef enum {
    MN_WIRE_SWIM_PING = 1,
    MN_WIRE_SWIM_ACK = 2,
    MN_WIRE_SWIM_PING_REQ = 3,
    MN_WIRE_SWIM_NACK = 4,
    MN_WIRE_SWIM_GOSSIP = 5,
    MN_WIRE_SWIM_SYNC = 6,
} mn_wire_swim_kind_t;

#define MN_WIRE_SWIM_FLAG_NACK 1  /* ping-req: answer with a nack if the target is silent */
#define MN_WIRE_SWIM_FLAG_REPLY 1 /* sync: answer with your own state */

typedef struct mn_wire_swim_addr {
    uint8_t family; /* 0 none, 4, 6 */
    uint16_t port;
    uint8_t ip[16]; /* IPv4 in ip[0..3] */
} mn_wire_swim_addr_t;

typedef struct mn_wire_swim_entry {
    const char *id;
    size_t id_len; /* 1..MN_WIRE_SWIM_ID_MAX */
    mn_wire_swim_addr_t addr;
    uint64_t incarnation;
    uint8_t state; /* 0 alive, 1 suspect, 2 dead, 3 left */
    const char *from;
    size_t from_len; /* 0..MN_WIRE_SWIM_ID_MAX */
    const char *meta;
    size_t meta_len; /* 0..MN_WIRE_SWIM_META_MAX, printable UTF-8 */
} mn_wire_swim_entry_t;

typedef struct mn_wire_swim_msg {
    uint8_t kind; /* mn_wire_swim_kind_t */
    uint32_t seq;
    const char *src;
    size_t src_len; /* 1..MN_WIRE_SWIM_ID_MAX */
    const char *target;
    size_t target_len; /* 0..MN_WIRE_SWIM_ID_MAX */
    mn_wire_swim_addr_t target_addr;
    uint8_t flags;
    uint16_t chunk, chunks;
    uint32_t known; /* size of the sender's member table */
    const mn_wire_swim_entry_t *state;
    size_t n_state;
    const mn_wire_swim_entry_t *updates;
    size_t n_updates;
} mn_wire_swim_msg_t;

/* A reusable encoder (owns a FlatBuffers builder). NULL on allocation failure. */
typedef struct mn_wire_swim_enc mn_wire_swim_enc_t;
mn_wire_swim_enc_t *mn_wire_swim_enc_new(void);
void mn_wire_swim_enc_free(mn_wire_swim_enc_t *e);

/* Upper bound of the bytes one entry adds to a body (used to plan packets). */
size_t mn_wire_swim_entry_cost(const mn_wire_swim_entry_t *en);

/* Encodes m into at most cap bytes. State entries go first, then updates, each
 * list as a prefix of as many entries as fit; *n_state_used / *n_updates_used
 * say how many went in. *out points into the encoder (valid until the next
 * call). MN_ERR_TOO_LARGE if not even the header fits; MN_ERR_INVALID for a
 * malformed message (empty src, over-long id, too many entries). */
mn_err mn_wire_swim_encode(mn_wire_swim_enc_t *e, const mn_wire_swim_msg_t *m, size_t cap,
                           size_t *n_state_used, size_t *n_updates_used, const uint8_t **out,
                           size_t *out_len);

/* Verifies and decodes buf (must be 8-byte aligned). Entries are written to
 * storage (cap entries; state first, then updates) and m->state/m->updates
 * point into it. MN_ERR_CORRUPT on any verification failure. */
mn_err mn_wire_swim_decode(const uint8_t *buf, size_t len, mn_wire_swim_msg_t *m,
                           mn_wire_swim_entry_t *storage, size_t cap);

#endif
