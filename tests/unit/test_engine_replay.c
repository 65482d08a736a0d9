/* A copy made from a primary's log, from lsn 1 (engine/replica.c): whatever mix of
 * remembers, consolidations, forgotten episodes and forgotten semantic memories the
 * primary wrote, a copy that reads the whole log afterwards holds every memory a client
 * forgot as forgotten, and keeps it forgotten when it leads and consolidates. A fresh
 * copy is how a cluster rebuilds a holder (a dropped copy, a new node). Seeded: a
 * failure names its seed and step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/engine.h"
#include "mnemo/util.h"
#include "mnemo/wire.h"
#include "testutil.h"

#include "engine/apply.h"

#define DIM 4
#define CLUSTERS 3
#define MAX_IDS 256

typedef struct world {
    mn_test_eng *p; /* the primary: calloc'd (its clock points at it) */
    uint64_t rng;
    mn_id_t eps[MAX_IDS], sems[MAX_IDS], forgot[MAX_IDS];
    size_t n_eps, n_sems, n_forgot;
    unsigned seed, step;
    uint64_t epoch; /* the primary's (1 from the space's creation) */
} world;

static uint32_t next(world *w)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return (uint32_t)(w->rng >> 11);
}

/* A new engine for the primary, linking as a server's does. */
static mn_test_eng *engine_new(const char *prefix)
{
    mn_test_eng *t = calloc(1, sizeof *t);
    assert_non_null(t);
    mn_test_eng_init(t, prefix);
    t->opts.link_max = 5; /* the server's background links, as entries of their own */
    t->opts.link_threshold = 0.5f;
    mn_test_eng_open(t);
    return t;
}

static void engine_free(mn_test_eng *t)
{
    mn_test_eng_free(t);
    free(t);
}

static void primary_open(world *w)
{
    w->p = engine_new("mnemo-replay-p");
}

static void primary_free(world *w)
{
    engine_free(w->p);
    w->p = NULL;
}

static void make_space(mn_engine_t *e)
{
    mn_space_def_t d = {0};
    snprintf(d.name, sizeof d.name, "s");
    d.dim = DIM;
    d.metric = MN_METRIC_COSINE;
    mn_error err = {0};
    if (mn_engine_space_create(e, &d, NULL, &err)) fail_msg("create: %s", err.message);
}

static void remember(world *w)
{
    unsigned c = next(w) % CLUSTERS;
    float v[DIM] = {0};
    v[c] = 1;
    v[(c + 1) % DIM] = 0.02f * (float)(next(w) % 5);
    char text[96];
    snprintf(text, sizeof text, "topic %u: harbor ferry note number %zu", c, w->n_eps);
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = text;
    m.content_len = strlen(text);
    m.embedding = v;
    m.dim = DIM;
    mn_error err = {0};
    mn_id_t id;
    if (mn_engine_remember(w->p->e, "s", &m, 1, &id, &err))
        fail_msg("seed %u step %u: remember: %s", w->seed, w->step, err.message);
    if (w->n_eps < MAX_IDS) w->eps[w->n_eps++] = id;
    w->p->now += 1000;
}

/* A recall that reinforces what it returns (an entry the background writes). */
static void recall(world *w)
{
    float v[DIM] = {0};
    v[next(w) % CLUSTERS] = 1;
    mn_recall_req_t q = {.embedding = v, .dim = DIM, .k = 5, .reinforce = true};
    mn_filter_init(&q.filter);
    mn_recall_result_t r;
    mn_error err = {0};
    if (mn_engine_recall(w->p->e, "s", &q, &r, &err))
        fail_msg("seed %u step %u: recall: %s", w->seed, w->step, err.message);
    mn_recall_result_clear(&r);
    w->p->now += 1000;
}

static void consolidate(mn_engine_t *e, world *w, const char *who)
{
    mn_consolidate_opts_t o = {.threshold = 0.9f, .min_support = 3};
    mn_consolidate_result_t r;
    mn_error err = {0};
    if (mn_engine_consolidate(e, "s", &o, &r, &err))
        fail_msg("seed %u step %u: %s consolidate: %s", w->seed, w->step, who, err.message);
    for (size_t i = 0; w && e == w->p->e && i < r.n_ids && w->n_sems < MAX_IDS; i++)
        w->sems[w->n_sems++] = r.ids[i];
    free(r.ids);
}

/* Forgets a random live one of ids[n] (delete); records it when forgotten is given. */
static void forget_one(world *w, const mn_id_t *ids, size_t n, bool record)
{
    for (size_t tries = 0; n && tries < 4; tries++) {
        const mn_id_t *id = &ids[next(w) % n];
        mn_error err = {0};
        mn_err rc = mn_engine_forget(w->p->e, "s", id, MN_FORGET_DELETE, &err);
        if (rc == MN_ERR_GONE || rc == MN_ERR_NOT_FOUND) continue;
        if (rc) fail_msg("seed %u step %u: forget: %s", w->seed, w->step, err.message);
        if (record && w->n_forgot < MAX_IDS) w->forgot[w->n_forgot++] = *id;
        w->p->now += 1000;
        return;
    }
}

/* Every memory a client forgot on the primary is not to be read on e. */
static void none_back(mn_engine_t *e, const world *w, const char *when)
{
    for (size_t i = 0; i < w->n_forgot; i++) {
        mn_memory_t m;
        mn_error err = {0};
        mn_err rc = mn_engine_get(e, "s", &w->forgot[i], false, &m, &err);
        if (rc == MN_OK) {
            mn_memory_clear(&m);
            char hex[40];
            mn_id_format(&w->forgot[i], hex);
            fail_msg("seed %u step %u: forgotten semantic memory %s is back %s", w->seed, w->step,
                     hex, when);
        }
        assert_int_equal(rc, MN_ERR_GONE);
    }
}

/* No entry of e's log carries a memory a client forgot but as its erased stub. */
static void no_words_left(mn_engine_t *e, const world *w, const char *who)
{
    mn_test_wal log = {0};
    assert_int_equal(mn_test_wal_read(e, "s", 1, 0, &log), MN_OK);
    for (size_t i = 0; i < log.n; i++) {
        mn_wal_entry_t en;
        mn_error err = {0};
        assert_int_equal(mn_wire_wal_decode(log.bufs[i], log.lens[i], &en, &err), MN_OK);
        size_t n = en.type == MN_WAL_OP_CONSOLIDATE ? en.op.consolidate.n : 0;
        for (size_t j = 0; j < n; j++)
            for (size_t f = 0; f < w->n_forgot; f++) {
                const mn_memory_t *m = &en.op.consolidate.mems[j];
                if (mn_id_cmp(&m->id, &w->forgot[f]) || m->forgotten || !m->content_len) continue;
                char hex[40];
                mn_id_format(&m->id, hex);
                fail_msg("seed %u step %u: %s log, lsn %llu still holds the words of forgotten "
                         "%s",
                         w->seed, w->step, who, (unsigned long long)en.lsn, hex);
            }
        mn_wal_entry_clear(&en);
    }
    mn_test_wal_free(&log);
}

/* A fresh copy reads the primary's whole log and leads (the next epoch) and consolidates;
 * with hand_over it stays the primary from then on, as a cluster's rebuilt holder may. */
static void fresh_copy(world *w, bool hand_over)
{
    mn_engine_wait_background(w->p->e);
    mn_test_eng *r = engine_new("mnemo-replay-r");
    r->now = w->p->now;
    mn_test_wal log = {0};
    assert_int_equal(mn_test_wal_read(w->p->e, "s", 1, 0, &log), MN_OK);
    mn_error err = {0};
    for (size_t i = 0; i < log.n; i += 7) {
        size_t m = log.n - i < 7 ? log.n - i : 7;
        if (mn_engine_replicate(r->e, "s", i + 1, (const uint8_t *const *)log.bufs + i,
                                log.lens + i, m, &err))
            fail_msg("seed %u step %u: replicate lsn %zu: %s", w->seed, w->step, i + 1,
                     err.message);
    }
    mn_test_wal_free(&log);
    mn_space_stats_t sa, sb;
    assert_int_equal(mn_engine_space_get(w->p->e, "s", &sa, &err), MN_OK);
    assert_int_equal(mn_engine_space_get(r->e, "s", &sb, &err), MN_OK);
    if (sa.memories != sb.memories || sa.tombstones != sb.tombstones)
        fail_msg("seed %u step %u: the copy holds %llu memories and %llu tombstones, the "
                 "primary %llu and %llu",
                 w->seed, w->step, (unsigned long long)sb.memories,
                 (unsigned long long)sb.tombstones, (unsigned long long)sa.memories,
                 (unsigned long long)sa.tombstones);
    none_back(r->e, w, "on a fresh copy");
    no_words_left(w->p->e, w, "the primary's");
    no_words_left(r->e, w, "the copy's");
    w->epoch++;
    assert_int_equal(mn_engine_space_set_role(r->e, "s", MN_SPACE_PRIMARY, w->epoch, &err), MN_OK);
    if (hand_over) {
        primary_free(w);
        w->p = r;
    }
    consolidate(r->e, w, "the copy's");
    none_back(r->e, w, "after the copy consolidated");
    if (!hand_over) engine_free(r);
}

static void run_seed(unsigned seed)
{
    world w = {.seed = seed, .rng = 0x9E3779B97F4A7C15ull ^ seed, .epoch = 1};
    primary_open(&w);
    make_space(w.p->e);
    for (w.step = 1; w.step <= 100; w.step++) {
        uint32_t op = next(&w) % 100;
        if (op < 40 || w.n_eps < 6)
            remember(&w);
        else if (op < 45)
            recall(&w);
        else if (op < 48) {
            mn_engine_wait_background(w.p->e); /* a restart, as a killed node's */
            mn_test_eng_reopen(w.p);
            mn_error err = {0};
            if (w.epoch > 1) /* a copy made here starts as a replica: it leads again */
                assert_int_equal(
                    mn_engine_space_set_role(w.p->e, "s", MN_SPACE_PRIMARY, w.epoch, &err), MN_OK);
        } else if (op < 60)
            consolidate(w.p->e, &w, "the primary's");
        else if (op < 75)
            forget_one(&w, w.eps, w.n_eps, false);
        else
            forget_one(&w, w.sems, w.n_sems, true);
        if (w.step % 20 == 0) fresh_copy(&w, w.step % 40 == 0); /* every other one leads */
    }
    consolidate(w.p->e, &w, "the primary's");
    none_back(w.p->e, &w, "on the primary");
    primary_free(&w);
}

static void test_a_fresh_copy_keeps_forgotten_memories_forgotten(void **state)
{
    (void)state;
    for (unsigned seed = 1; seed <= 24; seed++)
        run_seed(seed);
}

/* A primary with one cluster consolidated at least; returns its first semantic memory. */
static mn_id_t primary_with_semantic(world *w)
{
    primary_open(w);
    make_space(w->p->e);
    for (int i = 0; i < 3 * CLUSTERS; i++) /* three at least in one cluster */
        remember(w);
    consolidate(w->p->e, w, "the primary's");
    assert_true(w->n_sems >= 1);
    mn_engine_wait_background(w->p->e);
    return w->sems[0];
}

/* Each entry of log that edit() changes, encoded again; returns how many changed. */
static size_t edit_log(mn_test_wal *log, bool (*edit)(mn_wal_entry_t *, const mn_id_t *),
                       const mn_id_t *id)
{
    size_t changed = 0;
    mn_error err = {0};
    for (size_t i = 0; i < log->n; i++) {
        mn_wal_entry_t en;
        assert_int_equal(mn_wire_wal_decode(log->bufs[i], log->lens[i], &en, &err), MN_OK);
        if (edit(&en, id)) {
            free(log->bufs[i]);
            assert_int_equal(mn_wire_wal_encode(&en, &log->bufs[i], &log->lens[i]), MN_OK);
            changed++;
        }
        mn_wal_entry_clear(&en);
    }
    return changed;
}

/* A holder's copy made from log (from lsn 1). */
static void copy_from(mn_test_eng *r, const world *w, const mn_test_wal *log)
{
    mn_test_eng_init(r, "mnemo-replay-r");
    mn_test_eng_open(r);
    r->now = w->p->now;
    mn_error err = {0};
    if (mn_engine_replicate(r->e, "s", 1, (const uint8_t *const *)log->bufs, log->lens, log->n,
                            &err))
        fail_msg("replicate: %s", err.message);
}

/* The copy leads (epoch 2) and consolidates: no forgotten memory comes back. */
static void lead_and_consolidate(mn_test_eng *r, world *w)
{
    mn_error err = {0};
    assert_int_equal(mn_engine_space_set_role(r->e, "s", MN_SPACE_PRIMARY, 2, &err), MN_OK);
    consolidate(r->e, w, "the copy's");
    none_back(r->e, w, "after the copy consolidated");
}

/* A consolidate entry as a holder that never applied id stored it: without it. */
static bool cut_memory(mn_wal_entry_t *en, const mn_id_t *id)
{
    if (en->type != MN_WAL_OP_CONSOLIDATE) return false;
    size_t k = 0, n = en->op.consolidate.n;
    for (size_t j = 0; j < n; j++) {
        if (!mn_id_cmp(&en->op.consolidate.mems[j].id, id))
            mn_memory_clear(&en->op.consolidate.mems[j]);
        else
            en->op.consolidate.mems[k++] = en->op.consolidate.mems[j];
    }
    en->op.consolidate.n = k;
    return k < n;
}

/* An entry carrying id, as erased (id forgotten since). */
static bool stub_memory(mn_wal_entry_t *en, const mn_id_t *id)
{
    return mn__wal_strip_memory(en, id, 1700000000000, false);
}

/* A holder whose state differed from its primary's stores a consolidate entry without
 * the memory it did not apply (engine/apply.c: an entry holds what it applied). A copy
 * made from that holder's log meets the later forget of that memory without ever having
 * had it: the forget still leaves the memory's tombstone, so when the copy leads and
 * consolidates the same cluster (same key, same id) the memory stays forgotten. */
static void test_a_forget_of_a_memory_never_applied_here_blocks_its_id(void **state)
{
    (void)state;
    world w = {.seed = 0, .rng = 1};
    mn_id_t sem = primary_with_semantic(&w);
    mn_error err = {0};
    assert_int_equal(mn_engine_forget(w.p->e, "s", &sem, MN_FORGET_DELETE, &err), MN_OK);
    w.forgot[w.n_forgot++] = sem;
    remember(&w);
    mn_test_wal log = {0};
    assert_int_equal(mn_test_wal_read(w.p->e, "s", 1, 0, &log), MN_OK);
    assert_int_equal(edit_log(&log, cut_memory, &sem), 1);
    mn_test_eng r;
    copy_from(&r, &w, &log);
    mn_test_wal_free(&log);
    none_back(r.e, &w, "on the copy");
    mn_space_stats_t sa, sb;
    assert_int_equal(mn_engine_space_get(w.p->e, "s", &sa, &err), MN_OK);
    assert_int_equal(mn_engine_space_get(r.e, "s", &sb, &err), MN_OK);
    assert_int_equal(sb.tombstones, sa.tombstones);
    lead_and_consolidate(&r, &w);
    mn_test_eng_free(&r);
    primary_free(&w);
}

/* A holder whose state differs leaves a memory of a shipped entry unapplied (here: an
 * episode it holds forgotten, so the semantic memory listing it is not applied) and stores
 * the entry as its primary wrote it, words included. The memory's later forget finds
 * nothing here, and still erases those words from that entry, and blocks the id. */
static void test_a_forget_scrubs_an_entry_whose_memory_was_left_out(void **state)
{
    (void)state;
    world w = {.seed = 0, .rng = 7};
    mn_id_t sem = primary_with_semantic(&w);
    mn_error err = {0};
    mn_memory_t sm;
    assert_int_equal(mn_engine_get(w.p->e, "s", &sem, false, &sm, &err), MN_OK);
    assert_true(sm.n_support >= 3 && sm.content_len > 0);
    char *words = strndup(sm.content, sm.content_len);
    mn_id_t support0 = sm.support[0];
    mn_memory_clear(&sm);
    /* the log so far, with the support's remember arriving erased: the holder's state */
    mn_test_wal log = {0};
    assert_int_equal(mn_test_wal_read(w.p->e, "s", 1, 0, &log), MN_OK);
    assert_int_equal(edit_log(&log, stub_memory, &support0), 1);
    mn_test_eng r;
    copy_from(&r, &w, &log);
    uint64_t next = log.n + 1;
    mn_test_wal_free(&log);
    mn_memory_t got;
    assert_int_equal(mn_engine_get(r.e, "s", &sem, false, &got, &err), MN_ERR_NOT_FOUND);
    assert_true(mn_test_count_stored(r.e, words, strlen(words)) > 0); /* in the stored entry */

    /* the primary forgets it; the holder reads the forget */
    assert_int_equal(mn_engine_forget(w.p->e, "s", &sem, MN_FORGET_DELETE, &err), MN_OK);
    w.forgot[w.n_forgot++] = sem;
    mn_engine_wait_background(w.p->e);
    assert_int_equal(mn_test_wal_read(w.p->e, "s", next, 0, &log), MN_OK);
    assert_true(log.n >= 1);
    assert_int_equal(mn_engine_replicate(r.e, "s", next, (const uint8_t *const *)log.bufs, log.lens,
                                         log.n, &err),
                     MN_OK);
    mn_test_wal_free(&log);
    none_back(r.e, &w, "on the holder");
    assert_int_equal(mn_test_count_stored(r.e, words, strlen(words)), 0);
    assert_int_equal(mn_test_count_stored(w.p->e, words, strlen(words)), 0);
    lead_and_consolidate(&r, &w);
    free(words);
    mn_test_eng_free(&r);
    primary_free(&w);
}

/* The same holder, when the primary retires the memory instead (its episodes forgotten
 * one by one until too few are left): each version the holder left out loses its words in
 * the holder's log as on the primary's, and the holder's log ends as its primary's. */
static void test_a_retirement_scrubs_the_versions_a_holder_left_out(void **state)
{
    (void)state;
    world w = {.seed = 0, .rng = 7};
    mn_id_t sem = primary_with_semantic(&w);
    mn_error err = {0};
    mn_memory_t sm;
    assert_int_equal(mn_engine_get(w.p->e, "s", &sem, false, &sm, &err), MN_OK);
    char *words = strndup(sm.content, sm.content_len);
    size_t n_support = sm.n_support;
    mn_id_t support[16];
    assert_true(n_support >= 3 && n_support <= 16);
    memcpy(support, sm.support, n_support * sizeof *support);
    mn_memory_clear(&sm);
    mn_test_wal log = {0};
    assert_int_equal(mn_test_wal_read(w.p->e, "s", 1, 0, &log), MN_OK);
    assert_int_equal(edit_log(&log, stub_memory, &support[0]), 1);
    mn_test_eng r;
    copy_from(&r, &w, &log);
    uint64_t next = log.n + 1;
    mn_test_wal_free(&log);
    /* the primary forgets the other episodes until the memory is retired */
    for (size_t i = 1; i < n_support; i++) {
        assert_int_equal(mn_engine_forget(w.p->e, "s", &support[i], MN_FORGET_DELETE, &err), MN_OK);
        w.p->now += 1000;
    }
    assert_int_equal(mn_engine_get(w.p->e, "s", &sem, false, &sm, &err), MN_ERR_GONE);
    mn_engine_wait_background(w.p->e);
    assert_int_equal(mn_test_wal_read(w.p->e, "s", next, 0, &log), MN_OK);
    assert_int_equal(mn_engine_replicate(r.e, "s", next, (const uint8_t *const *)log.bufs, log.lens,
                                         log.n, &err),
                     MN_OK);
    mn_test_wal_free(&log);
    assert_int_equal(mn_engine_get(r.e, "s", &sem, false, &sm, &err), MN_ERR_GONE);
    assert_int_equal(mn_test_count_stored(w.p->e, words, strlen(words)), 0);
    assert_int_equal(mn_test_count_stored(r.e, words, strlen(words)), 0);
    free(words);
    mn_test_eng_free(&r);
    primary_free(&w);
}

/* A client forgets semantic memory sem: no entry of the primary's log or of a fresh copy's
 * keeps its words; then the primary goes. */
static void forget_and_check(world *w, const mn_id_t *sem)
{
    mn_error err = {0};
    assert_int_equal(mn_engine_forget(w->p->e, "s", sem, MN_FORGET_DELETE, &err), MN_OK);
    w->forgot[w->n_forgot++] = *sem;
    mn_engine_wait_background(w->p->e);
    no_words_left(w->p->e, w, "the primary's");
    fresh_copy(w, false);
    primary_free(w);
}

/* A primary whose first semantic memory lists four episodes at least (more episodes, then
 * another run); *sm gets it (clear it). */
static mn_id_t primary_with_larger_semantic(world *w, mn_memory_t *sm)
{
    mn_id_t sem = primary_with_semantic(w);
    for (int i = 0; i < 3 * CLUSTERS; i++) /* more episodes in its cluster */
        remember(w);
    consolidate(w->p->e, w, "the primary's");
    mn_engine_wait_background(w->p->e);
    mn_error err = {0};
    assert_int_equal(mn_engine_get(w->p->e, "s", &sem, false, sm, &err), MN_OK);
    assert_true(sm->n_support >= 4); /* one forgotten leaves enough: re-derived, not retired */
    return sem;
}

/* A semantic memory updated by a later consolidation, then forgotten: neither version's
 * entry keeps its words, on the primary or on a copy. */
static void test_a_forgotten_updated_memory_leaves_no_version_behind(void **state)
{
    (void)state;
    world w = {.seed = 0, .rng = 3};
    mn_id_t sem = primary_with_semantic(&w);
    uint64_t versions = 0;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3 * CLUSTERS; i++)
            remember(&w);
        size_t before = w.n_sems;
        consolidate(w.p->e, &w, "the primary's");
        for (size_t i = before; i < w.n_sems; i++)
            if (!mn_id_cmp(&w.sems[i], &sem)) versions++; /* a new version of sem */
    }
    assert_true(versions >= 1);
    forget_and_check(&w, &sem);
}

/* The primary forgets an episode and re-derives the semantic memory listing it, two
 * entries of one batch; the replica gets the first only (a frame ended between them) and
 * then leads. It re-derives the memory itself: the summary no longer lists the episode, and
 * a copy made from the new primary's log applies every memory of it. */
/* A replica applies a forget of an episode, not the re-derivation after it, maybe
 * restarts (its note then comes from the store), and leads. */
static void promoted_replica_re_derives(bool restart)
{
    world w = {.seed = 0, .rng = 5};
    mn_memory_t sm;
    mn_id_t sem = primary_with_larger_semantic(&w, &sm);
    mn_error err = {0};
    mn_id_t gone = sm.support[sm.n_support - 1];
    mn_memory_clear(&sm);
    mn_test_wal log = {0};
    assert_int_equal(mn_test_wal_read(w.p->e, "s", 1, 0, &log), MN_OK);
    mn_test_eng r;
    copy_from(&r, &w, &log);
    uint64_t next = log.n + 1;
    mn_test_wal_free(&log);
    assert_int_equal(mn_engine_forget(w.p->e, "s", &gone, MN_FORGET_DELETE, &err), MN_OK);
    mn_engine_wait_background(w.p->e);
    assert_int_equal(mn_test_wal_read(w.p->e, "s", next, 0, &log), MN_OK);
    assert_int_equal(log.n, 2); /* the forget, then the re-derivation */
    assert_int_equal(
        mn_engine_replicate(r.e, "s", next, (const uint8_t *const *)log.bufs, log.lens, 1, &err),
        MN_OK);
    mn_test_wal_free(&log);
    assert_int_equal(mn_engine_get(r.e, "s", &sem, false, &sm, &err), MN_OK);
    bool lists = false;
    for (size_t i = 0; i < sm.n_support; i++)
        lists |= !mn_id_cmp(&sm.support[i], &gone);
    mn_memory_clear(&sm);
    assert_true(lists); /* until the primary's re-derivation arrives */
    if (restart) {
        mn_engine_wait_background(r.e);
        mn_test_eng_reopen(&r);
        /* a node's copies open as replicas until their core leads (api/cluster_repl.c) */
        assert_int_equal(mn_engine_space_set_role(r.e, "s", MN_SPACE_REPLICA, 0, &err), MN_OK);
    }

    assert_int_equal(mn_engine_space_set_role(r.e, "s", MN_SPACE_PRIMARY, 2, &err), MN_OK);
    mn_engine_wait_background(r.e);
    assert_int_equal(mn_engine_get(r.e, "s", &sem, false, &sm, &err), MN_OK);
    for (size_t i = 0; i < sm.n_support; i++)
        assert_true(mn_id_cmp(&sm.support[i], &gone) != 0);
    mn_memory_clear(&sm);
    assert_int_equal(mn_test_wal_read(r.e, "s", next + 1, 0, &log), MN_OK);
    assert_int_equal(log.n, 1); /* the new primary's re-derivation */
    mn_test_wal_free(&log);
    /* a second promotion finds nothing left to do */
    assert_int_equal(mn_engine_space_set_role(r.e, "s", MN_SPACE_REPLICA, 0, &err), MN_OK);
    assert_int_equal(mn_engine_space_set_role(r.e, "s", MN_SPACE_PRIMARY, 3, &err), MN_OK);
    mn_engine_wait_background(r.e);
    assert_int_equal(mn_test_wal_read(r.e, "s", next + 2, 0, &log), MN_OK);
    assert_int_equal(log.n, 0);
    mn_test_wal_free(&log);
    /* the new primary's log replays whole */
    world v = w;
    v.p = &r;
    v.epoch = 3;
    fresh_copy(&v, false);
    mn_test_eng_free(&r);
    primary_free(&w);
}

static void test_a_promoted_replica_re_derives_what_its_primary_left(void **state)
{
    (void)state;
    promoted_replica_re_derives(false);
}

static void test_a_replica_restarted_then_promoted_still_re_derives(void **state)
{
    (void)state;
    promoted_replica_re_derives(true);
}

/* A semantic memory retired (too few of its episodes left), back under its id when its
 * cluster is (more episodes), then forgotten: no entry keeps the words of any of it. */
static void test_a_revived_memory_forgotten_leaves_no_words(void **state)
{
    (void)state;
    world w = {.seed = 0, .rng = 7};
    mn_id_t sem = primary_with_semantic(&w);
    mn_error err = {0};
    mn_memory_t sm;
    assert_int_equal(mn_engine_get(w.p->e, "s", &sem, false, &sm, &err), MN_OK);
    size_t n = sm.n_support;
    mn_id_t support[16];
    assert_true(n >= 3 && n <= 16);
    memcpy(support, sm.support, n * sizeof *support);
    mn_memory_clear(&sm);
    for (size_t i = 1; i < n; i++) /* the lowest stays: the cluster's key */
        assert_int_equal(mn_engine_forget(w.p->e, "s", &support[i], MN_FORGET_DELETE, &err), MN_OK);
    assert_int_equal(mn_engine_get(w.p->e, "s", &sem, false, &sm, &err), MN_ERR_GONE);
    bool back = false;
    for (int round = 0; round < 4 && !back; round++) {
        for (int i = 0; i < 3 * CLUSTERS; i++)
            remember(&w);
        consolidate(w.p->e, &w, "the primary's");
        back = mn_engine_get(w.p->e, "s", &sem, false, &sm, &err) == MN_OK;
        if (back) mn_memory_clear(&sm);
    }
    assert_true(back);
    forget_and_check(&w, &sem);
}

/* Consolidation retires a memory whose cluster key is gone (its lowest episode forgotten,
 * the next run keys the cluster by another): no entry keeps its words. */
static void test_a_memory_retired_by_a_run_leaves_no_words(void **state)
{
    (void)state;
    world w = {.seed = 0, .rng = 5};
    mn_memory_t sm;
    mn_id_t sem = primary_with_larger_semantic(&w, &sm);
    mn_error err = {0};
    mn_id_t lowest = sm.support[0];
    for (size_t i = 1; i < sm.n_support; i++)
        if (mn_id_cmp(&sm.support[i], &lowest) < 0) lowest = sm.support[i];
    mn_memory_clear(&sm);
    assert_int_equal(mn_engine_forget(w.p->e, "s", &lowest, MN_FORGET_DELETE, &err), MN_OK);
    assert_int_equal(mn_engine_get(w.p->e, "s", &sem, false, &sm, &err), MN_OK); /* rebuilt */
    mn_memory_clear(&sm);
    consolidate(w.p->e, &w, "the primary's"); /* keyed by another now: retired */
    assert_int_equal(mn_engine_get(w.p->e, "s", &sem, false, &sm, &err), MN_ERR_GONE);
    w.forgot[w.n_forgot++] = sem; /* retired: its words must be gone all the same */
    mn_engine_wait_background(w.p->e);
    no_words_left(w.p->e, &w, "the primary's");
    primary_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_fresh_copy_keeps_forgotten_memories_forgotten),
        cmocka_unit_test(test_a_forget_of_a_memory_never_applied_here_blocks_its_id),
        cmocka_unit_test(test_a_forget_scrubs_an_entry_whose_memory_was_left_out),
        cmocka_unit_test(test_a_retirement_scrubs_the_versions_a_holder_left_out),
        cmocka_unit_test(test_a_forgotten_updated_memory_leaves_no_version_behind),
        cmocka_unit_test(test_a_promoted_replica_re_derives_what_its_primary_left),
        cmocka_unit_test(test_a_replica_restarted_then_promoted_still_re_derives),
        cmocka_unit_test(test_a_revived_memory_forgotten_leaves_no_words),
        cmocka_unit_test(test_a_memory_retired_by_a_run_leaves_no_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
