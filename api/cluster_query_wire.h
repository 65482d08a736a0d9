/* The frames of the peer bus's query channel (MN_PEER_CH_QUERY; docs/recall.md §11, "Cluster
 * mode"): a request (the cue for a batch of spaces) and its answer (per space). Private to
 * api/cluster_query*.c.
 *
 * A compact little-endian binary form: the magic "MQ", a version, the type, the request id;
 * then the body. Strings are a u32 length, the bytes and a NUL (checked); a memory record is
 * the store's own FlatBuffers encoding (mn_wire_memory_encode, verified on decode). Every
 * count is bounded before anything is allocated, and a frame that does not read to its exact
 * end is refused: a malformed or hostile frame is an MN_ERR_CORRUPT naming what was wrong,
 * never a crash. */
#ifndef MN_API_CLUSTER_QUERY_WIRE_H
#define MN_API_CLUSTER_QUERY_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_recall_many.h"
#include "mnemo/query.h"

#define CLQ_VERSION 1
#define CLQ_REQUEST 1
#define CLQ_ANSWER 2
#define CLQ_FRAME_MAX (8u << 20) /* a longer frame is neither sent nor read */

/* ---- primitives (cluster_query_codec.c) ---- */

typedef struct clq_w {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} clq_w;
void clq_put(clq_w *w, const void *src, size_t n);
void clq_u8(clq_w *w, uint8_t v);
void clq_u32(clq_w *w, uint32_t v);
void clq_u64(clq_w *w, uint64_t v);
void clq_f32(clq_w *w, float v);
void clq_f64(clq_w *w, double v);
void clq_str(clq_w *w, const char *s, size_t n); /* NULL: absent (length 0xffffffff) */

typedef struct clq_r {
    const uint8_t *p;
    size_t len, off;
    const char *bad; /* the first fault, or NULL */
} clq_r;
/* Records what as the fault unless one is recorded. */
void clq_fail(clq_r *r, const char *what);
bool clq_get(clq_r *r, void *dst, size_t n, const char *what);
uint8_t clq_ru8(clq_r *r, const char *what);
uint32_t clq_ru32(clq_r *r, const char *what);
uint64_t clq_ru64(clq_r *r, const char *what);
float clq_rf32(clq_r *r, const char *what);
double clq_rf64(clq_r *r, const char *what);
/* A string pointing into the frame (NUL-terminated there), NULL when absent or bad; *len. */
const char *clq_rstr(clq_r *r, const char *what, size_t max, size_t *len);
/* A count of at most max (else a fault). */
uint32_t clq_rcount(clq_r *r, const char *what, uint32_t max);

/* A count of items of unit bytes each that the rest of the frame can hold (else a fault). */
uint32_t clq_rlen(clq_r *r, const char *what, size_t unit);

/* The header of a frame: its type (CLQ_REQUEST / CLQ_ANSWER) and id; 0 when it is not one. */
int clq_frame_head(const uint8_t *buf, size_t len, uint64_t *id);

/* ---- a request ---- */

typedef struct clq_request {
    uint64_t id;
    uint32_t timeout_ms; /* what was left of the origin's deadline when it sent */
    api_many_caller caller;
    char grant_spaces[MN_QUERY_SPACES_MAX * (MN_SPACE_NAME_MAX + 1) + 1]; /* "*" or a list */
    char **spaces;                                                        /* owned */
    size_t n;
    mn_recall_req_t *req; /* owned (mn_recall_req_dup) */
} clq_request;

/* *out malloc'd (free()). MN_ERR_TOO_LARGE over CLQ_FRAME_MAX. */
mn_err clq_request_encode(uint64_t id, uint32_t timeout_ms, const api_many_caller *c,
                          const char *const *spaces, size_t n, const mn_recall_req_t *req,
                          uint8_t **out, size_t *len, mn_error *err);
mn_err clq_request_decode(const uint8_t *buf, size_t len, clq_request *out, mn_error *err);
void clq_request_clear(clq_request *r);

/* ---- the recall request's fields (cluster_query_req.c) ---- */

void clq_put_recall(clq_w *w, const mn_recall_req_t *q);
/* Reads a recall request into *q, its arrays in blocks (malloc'd, *blocks, freed by the
 * caller with clq_blocks_free once q was copied). */
typedef struct clq_blocks {
    void *b[MN_FILTER_NODES_MAX + 16];
    size_t n;
    bool oom;
} clq_blocks;
void *clq_alloc(clq_blocks *bl, size_t n);
void clq_blocks_free(clq_blocks *bl);
void clq_get_recall(clq_r *r, clq_blocks *bl, mn_recall_req_t *q);

/* ---- an answer (cluster_query_answer.c) ---- */

typedef struct clq_space_answer {
    char space[MN_SPACE_NAME_MAX + 1];
    mn_query_answer_t a; /* a.missing static; a.res owned */
} clq_space_answer;

/* The answer for spaces[i] in ans[i]. */
mn_err clq_answer_encode(uint64_t id, const char *const *spaces, const mn_query_answer_t *ans,
                         size_t n, uint8_t **out, size_t *len, mn_error *err);
/* *out calloc'd, n entries (clq_answers_free). */
mn_err clq_answer_decode(const uint8_t *buf, size_t len, clq_space_answer **out, size_t *n,
                         mn_error *err);
void clq_answers_free(clq_space_answer *a, size_t n);

#endif
