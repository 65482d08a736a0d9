/* The engine's own state: struct mn_engine, private to engine/.
 *
 * Names inside engine/ (libuv's convention, docs/architecture.md):
 *  - public functions and types are include/mnemo/engine.h's: mn_engine_*,
 *    mn_*_t; the engine handle is mn_engine_t everywhere (struct mn_engine);
 *  - functions and types shared between files of engine/ but not public take
 *    the private prefix mn__: mn__commit_submit, mn__space_find, mn__store_get,
 *    mn__key_mem; mn__space, mn__slot, mn__pending. Each is declared in the
 *    private header named for the file that defines it (commit.h, space.h ...);
 *  - what one file keeps to itself is static and has no prefix (cand, stage);
 *  - private macros and enum values have none either (KEY_*, CF_*, SLOT_*);
 *  - quantities carry their unit last: when_ms, stability_days, t0_ns.
 *
 * Each background thread's state is a struct owned by its file and reached
 * through a pointer here: the commit queue (commit.c), the expiry sweeper
 * (sweeper.c), the linker (background.c), the index thread (indexer.c) and the
 * event subscribers (events.c). */
#ifndef MN_ENGINE_INTERNAL_H
#define MN_ENGINE_INTERNAL_H

#include <stdatomic.h>

#include "clock.h"
#include "mnemo/engine.h"
#include "registry.h"
#include "store.h"

struct mn_engine {
    mn_engine_options_t opts;
    char *data_dir;
    mn__store store;
    mn_idgen_t idgen;
    mn_hlc_t hlc;
    mn__registry reg;  /* the spaces by name */
    uint32_t next_sid; /* commit thread only (start-up before it runs) */
    bool failed;       /* a store write failed: refuse further writes (commit thread) */

    struct mn__commitq *commitq; /* commit.c */
    struct mn__sweeper *sweeper; /* sweeper.c; NULL when not running */
    struct mn__linker *linker;   /* background.c; NULL when not running */
    struct mn__indexer *indexer; /* indexer.c; NULL when not running */
    struct mn__events *events;   /* events.c */
    struct mn__acked *acked;     /* acked.c: the acknowledged-lsn watermark */
    struct mn__damage *damage;   /* damage.c: what a salvage start dropped; NULL if nothing */
    /* replica.c: called by the commit thread for each durable entry; NULL = none */
    mn_wal_hook_fn wal_hook;
    void *wal_hook_arg;

    /* figures */
    atomic_uint_fast64_t n_commits, n_synced, n_entries, max_group;
    atomic_uint_fast64_t n_links, n_links_dropped, n_reinforced;
    /* operation histograms (engine_metrics.c) */
    mn_histogram_t h_remember, h_recall, h_consolidate, h_write, h_group, h_group_synced;

    /* TEST ONLY (test_drop.c): lose the test_drop_nth acknowledged memory; 0 = never */
    uint64_t test_drop_nth;
    atomic_uint_fast64_t test_acked;
};

/* The engine's wall clock in ms. */
static inline int64_t mn__now(const mn_engine_t *e)
{
    return mn__clock_now_ms(&e->opts);
}

#endif
