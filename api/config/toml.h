/* A small TOML v1.0.0 reader (private to api/): parses a document into a tree of tables,
 * arrays and values, each carrying the line:col where it starts, so that the layer that
 * interprets the tree (api/config/config.c) can point at the offending spot in its own errors.
 *
 * Supported: tables, dotted table headers, arrays of tables, dotted keys, bare and quoted
 * keys, basic/literal strings (single- and multi-line, all escapes), integers (decimal with
 * '_', 0x/0o/0b), floats (fraction, exponent, inf, nan), booleans, arrays (multi-line,
 * trailing comma, comments), inline tables, comments.
 * Not supported: date/time values (rejected with a clear error).
 * Sized for configuration files: input is capped at 1 MiB and key lookups are linear.
 *
 * Every error is MN_ERR_PARSE (MN_ERR_NOMEM, MN_ERR_IO, MN_ERR_TOO_LARGE where they apply)
 * with a message "name:line:col: what was expected". Lines and columns are 1-based;
 * columns count Unicode code points. */
#ifndef MNEMO_API_TOML_H
#define MNEMO_API_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mnemo/err.h"

typedef enum {
    MN_TOML_TABLE = 0,
    MN_TOML_ARRAY,
    MN_TOML_STRING,
    MN_TOML_INTEGER,
    MN_TOML_FLOAT,
    MN_TOML_BOOL,
} mn_toml_type_t;

typedef struct mn_toml_value mn_toml_value_t;

/* One key = value of a table, in the order the document gave them. */
typedef struct mn_toml_entry {
    char *key;      /* NUL-terminated (a quoted key may also hold NULs: use key_len) */
    size_t key_len;
    int line, col;  /* where the key was first written */
    mn_toml_value_t *value;
} mn_toml_entry_t;

struct mn_toml_value {
    mn_toml_type_t type;
    int line, col; /* start of the value; for tables the header or the key that made it */
    union {
        struct {
            char *ptr; /* NUL-terminated UTF-8 (may also hold NULs from \u0000: use len) */
            size_t len;
        } str;
        int64_t i;
        double f;
        bool b;
        struct {
            mn_toml_value_t **items;
            size_t len;
        } arr;
        struct {
            mn_toml_entry_t *entries;
            size_t len;
        } table;
    } u;
    /* parser bookkeeping */
    unsigned flags;
    size_t cap;
};

/* Parses a whole document of len bytes; name prefixes error messages (a file name).
 * On success *out is a table the caller frees with mn_toml_free; on failure *out = NULL. */
mn_err mn_toml_parse(const char *src, size_t len, const char *name, mn_toml_value_t **out,
                     mn_error *err);
/* Reads and parses the file at path (at most 1 MiB); messages are prefixed with path. */
mn_err mn_toml_parse_file(const char *path, mn_toml_value_t **out, mn_error *err);
/* Parses a single TOML value (e.g. `42`, `"x"`, `["a", "b"]`) surrounded by optional
 * whitespace, for values that come from elsewhere than a file (environment variables). */
mn_err mn_toml_parse_value(const char *src, size_t len, const char *name, mn_toml_value_t **out,
                           mn_error *err);
void mn_toml_free(mn_toml_value_t *v);

/* The entry of table t named key (one key, no dots), or NULL. */
const mn_toml_entry_t *mn_toml_find(const mn_toml_value_t *t, const char *key);
/* The value of table t at key (one key, no dots), or NULL. */
const mn_toml_value_t *mn_toml_get(const mn_toml_value_t *t, const char *key);
/* "table", "array", "string", "integer", "float", "boolean". */
const char *mn_toml_type_name(mn_toml_type_t t);

/* Writes s as a TOML basic string ("..." with escapes) to f. */
void mn_toml_fput_string(FILE *f, const char *s, size_t len);

#endif
