/* Small shared helpers: clocks, checksums, ids, hybrid logical clock, PRNG, logging. */
#ifndef MNEMO_UTIL_H
#define MNEMO_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include "mnemo/err.h"

/* ---- time ---- */
/* Wall clock in milliseconds / nanoseconds since the Unix epoch. */
int64_t mn_time_now_ms(void);
int64_t mn_time_now_ns(void);
/* Monotonic clock in nanoseconds (for durations and timers). */
int64_t mn_time_mono_ns(void);
/* TEST ONLY: the wall clock's shift in ms from MNEMO_TEST_CLOCK_OFFSET_MS (0 when unset or
 * invalid), read once per process; mn_time_now_* include it (the chaos harness's skew). */
int64_t mn_time_test_offset_ms(void);
/* Formats ms since epoch as RFC 3339 UTC with milliseconds ("2026-11-23T06:30:24.123Z").
 * buf must hold at least 32 bytes. */
void mn_time_format_rfc3339(int64_t ms, char *buf, size_t len);
/* Parses RFC 3339 (with Z or +hh:mm offset, optional fraction) into ms since epoch. */
mn_err mn_time_parse_rfc3339(const char *s, int64_t *ms_out);

/* ---- CRC32C (Castagnoli), hardware-accelerated when SSE4.2 is present ---- */
uint32_t mn_crc32c(uint32_t crc, const void *data, size_t len);

/* ---- PRNG: xoshiro256** seeded by splitmix64; state passed explicitly ---- */
typedef struct mn_prng {
    uint64_t s[4];
} mn_prng_t;
void mn_prng_seed(mn_prng_t *p, uint64_t seed);
uint64_t mn_prng_next(mn_prng_t *p);
/* Uniform in [0, n). n > 0. */
uint64_t mn_prng_below(mn_prng_t *p, uint64_t n);
/* Uniform double in [0, 1). */
double mn_prng_double(mn_prng_t *p);
/* Seed from the OS entropy source. */
uint64_t mn_random_seed(void);

/* ---- memory ids: UUIDv7 (RFC 9562), 128-bit, time-sortable ---- */
typedef struct mn_id {
    uint8_t b[16];
} mn_id_t;
#define MN_ID_TEXT_LEN 36
/* Generator: monotonic within a process even if the wall clock steps back. */
typedef struct mn_idgen {
    pthread_mutex_t mu;
    int64_t last_ms;
    uint32_t seq; /* 12-bit counter in rand_a, random start each ms */
    mn_prng_t prng;
} mn_idgen_t;
void mn_idgen_init(mn_idgen_t *g, uint64_t seed);
void mn_idgen_destroy(mn_idgen_t *g);
/* New id for wall time now_ms. Strictly greater than every id this generator made. */
mn_id_t mn_idgen_next(mn_idgen_t *g, int64_t now_ms);
/* Milliseconds embedded in a v7 id. */
int64_t mn_id_time_ms(const mn_id_t *id);
/* Writes 36 chars + NUL into out (>= 37 bytes). */
void mn_id_format(const mn_id_t *id, char *out);
/* Parses the hyphenated text form (case-insensitive). */
mn_err mn_id_parse(const char *s, size_t len, mn_id_t *out);
int mn_id_cmp(const mn_id_t *a, const mn_id_t *b);
bool mn_id_is_zero(const mn_id_t *id);

/* ---- hybrid logical clock (Kulkarni et al. 2014): 48-bit ms | 16-bit logical ---- */
typedef uint64_t mn_hlc_ts_t;
typedef struct mn_hlc {
    pthread_mutex_t mu;
    mn_hlc_ts_t last;
} mn_hlc_t;
void mn_hlc_init(mn_hlc_t *h);
void mn_hlc_destroy(mn_hlc_t *h);
/* Timestamp for a local event at wall time now_ms; strictly increasing. */
mn_hlc_ts_t mn_hlc_now(mn_hlc_t *h, int64_t now_ms);
/* Merge a timestamp received from elsewhere; returns the new local timestamp. */
mn_hlc_ts_t mn_hlc_update(mn_hlc_t *h, mn_hlc_ts_t remote, int64_t now_ms);
static inline int64_t mn_hlc_ms(mn_hlc_ts_t t) { return (int64_t)(t >> 16); }
static inline uint16_t mn_hlc_logical(mn_hlc_ts_t t) { return (uint16_t)(t & 0xffff); }
static inline mn_hlc_ts_t mn_hlc_make(int64_t ms, uint16_t logical)
{
    return ((uint64_t)ms << 16) | logical;
}

/* ---- logging: the process-wide logger ---- */
typedef enum { MN_LOG_DEBUG = 0, MN_LOG_INFO, MN_LOG_WARN, MN_LOG_ERROR } mn_log_level_t;
typedef enum { MN_LOG_FORMAT_TEXT = 0, MN_LOG_FORMAT_JSON } mn_log_format_t;
void mn_log_configure(mn_log_level_t level, mn_log_format_t format);
/* Parses "debug"|"info"|"warn"|"error". */
mn_err mn_log_level_parse(const char *s, mn_log_level_t *out);
void mn_log(mn_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A structured field of a log line: a string, or the number num when str is NULL
 * (non-finite numbers are written as null). in_msg: the message already says it,
 * so the text format leaves it out. */
typedef struct mn_log_field {
    const char *key;
    const char *str;
    double num;
    bool in_msg;
} mn_log_field_t;
/* mn_log with fields: JSON members after "msg", or " key=value" after the text. */
void mn_log_with(mn_log_level_t level, const mn_log_field_t *fields, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Whether a line of this level would be written (skip building costly fields). */
bool mn_log_enabled(mn_log_level_t level);
#define mn_log_debug(...) mn_log(MN_LOG_DEBUG, __VA_ARGS__)
#define mn_log_info(...) mn_log(MN_LOG_INFO, __VA_ARGS__)
#define mn_log_warn(...) mn_log(MN_LOG_WARN, __VA_ARGS__)
#define mn_log_error(...) mn_log(MN_LOG_ERROR, __VA_ARGS__)

/* ---- byte helpers ---- */
static inline void mn_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline uint32_t mn_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void mn_put_be64(uint8_t *p, uint64_t v)
{
    mn_put_be32(p, (uint32_t)(v >> 32));
    mn_put_be32(p + 4, (uint32_t)v);
}
static inline uint64_t mn_get_be64(const uint8_t *p)
{
    return ((uint64_t)mn_get_be32(p) << 32) | mn_get_be32(p + 4);
}

/* UTF-8 validation (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
bool mn_utf8_valid(const char *s, size_t len);
/* Writes code point cp (<= U+10FFFF, not a surrogate) as 1 to 4 bytes at out; returns the count. */
size_t mn_utf8_encode(uint32_t cp, char *out);

#endif
