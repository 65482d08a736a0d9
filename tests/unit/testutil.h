/* Helpers shared by the unit tests: temp dirs and deadline polling. */
#ifndef MN_TESTUTIL_H
#define MN_TESTUTIL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnemo/engine.h"
/* mkdtemp under $TMPDIR (or /tmp) with the given prefix; returns a malloc'd path. */
char *mn_test_tmpdir(const char *prefix);
/* How many of n seeds a simulation test runs: all n in a plain build; the first alone in a
 * sanitizer build (ASan+UBSan, TSan), which looks for memory and thread errors in the code
 * paths, not at the spread over seeds (the plain build judges that, in the same `make test`). */
int mn_test_seeds(int n);
/* Is this a sanitizer build? */
bool mn_test_sanitized(void);
/* Scales v (dim floats, not all zero) to unit length. */
void mn_test_unit_vec(float *v, uint32_t dim);
/* rm -rf path (best effort). */
void mn_test_rmrf(const char *path);
/* Engine options for unit tests on dir: small caches, and no sweeper thread,
 * scheduled consolidation or semantic auto-links (a test turns on what it tests). */
void mn_test_engine_options(mn_engine_options_t *o, const char *dir);
/* An engine on a temp dir for a unit test. */
typedef struct mn_test_eng {
    char *dir;
    mn_engine_t *e;
    int64_t now;              /* the fake clock's time in ms (tests move it) */
    mn_engine_options_t opts; /* what opening uses */
} mn_test_eng;

/* A temp dir named for prefix, now = 1700000000000 unless set, and the
 * options (mn_test_eng_defaults). Opens nothing. t must not move after. */
void mn_test_eng_init(mn_test_eng *t, const char *prefix);
/* t->opts = mn_test_engine_options on t->dir with the fake clock reading t->now
 * (a test that wants the system clock sets opts.clock to NULL). */
void mn_test_eng_defaults(mn_test_eng *t);
/* Opens t->e with t->opts; the test fails when it cannot. */
void mn_test_eng_open(mn_test_eng *t);
/* Closes and opens again on the same dir and options. */
void mn_test_eng_reopen(mn_test_eng *t);
/* Closes the engine (if open) and removes the dir. */
void mn_test_eng_free(mn_test_eng *t);
/* cmocka fixtures: *state = a calloc'd mn_test_eng, open, on a dir named for
 * prefix; fake_clock false keeps the system clock. */
int mn_test_eng_setup(void **state, const char *prefix, bool fake_clock);
int mn_test_eng_teardown(void **state);
/* The store id of space name (test helper over the engine's internals). */
uint32_t mn_test_space_sid(mn_engine_t *e, const char *name);

/* Creates a space; returns the engine's result. */
mn_err mn_test_space(mn_engine_t *e, const char *name, uint32_t dim, mn_metric_t metric);
/* Occurrences of needle[n] in every key and value the engine stores (every
 * column family): erased bytes must be gone from all of them. */
size_t mn_test_count_stored(mn_engine_t *e, const void *needle, size_t n);

/* WAL entries copied out of an engine, to feed another (mn_engine_ingest). */
typedef struct mn_test_wal {
    uint8_t **bufs;
    size_t *lens;
    size_t n;
} mn_test_wal;
/* Appends the entries of space from lsn on (at most max, 0 = all) to *w. */
mn_err mn_test_wal_read(mn_engine_t *e, const char *space, uint64_t from, size_t max,
                        mn_test_wal *w);
void mn_test_wal_free(mn_test_wal *w);
/* The live semantic memories of space, each encoded with its embedding, in id
 * order, concatenated (malloc'd; NULL when there are none or on error); *n
 * gets how many. */
uint8_t *mn_test_semantic_bytes(mn_engine_t *e, const char *space, size_t *len, size_t *n);
#endif
