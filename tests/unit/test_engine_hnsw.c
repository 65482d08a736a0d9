/* engine + HNSW: a space past the threshold recalls through the index (path
 * "hnsw") with the exact path's answers, follows forgets and reuses, applies
 * filters inside the search (the index for a 10% filter when s^2 N >= 4 ef,
 * the exact path below), honours "exact", keeps its own index parameters, and
 * comes back after a restart from its saved graph, catching up by difference
 * when the graph is older than the space, or from a rebuild when the file is
 * corrupt; a shutdown with a backlog saves the graph without applying it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine_internal.h"
#include "mnemo/engine.h"
#include "mnemo/wire.h"
#include "testutil.h"

#define DIM 16
#define N 1200
#define THRESHOLD 500
#define K 10

typedef struct fx {
    mn_test_eng t; /* engine and dir */
    float *vecs;
    mn_id_t *ids;
    bool *gone;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    mn_test_eng_init(&f->t, "mnemo-hnsw");
    f->t.opts.clock = NULL; /* the system clock */
    f->t.opts.hnsw_threshold = THRESHOLD;
    f->t.opts.hnsw_m = 8;
    f->t.opts.hnsw_ef_construction = 64;
    f->vecs = malloc((size_t)N * DIM * sizeof(float));
    f->ids = calloc(N, sizeof *f->ids);
    f->gone = calloc(N, sizeof *f->gone);
    mn_test_eng_open(&f->t);
    mn_space_def_t d = {0};
    snprintf(d.name, sizeof d.name, "s");
    d.dim = DIM;
    d.metric = MN_METRIC_COSINE;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_create(f->t.e, &d, NULL, &err), MN_OK);
    mn_prng_t p;
    mn_prng_seed(&p, 3);
    for (size_t i = 0; i < (size_t)N * DIM; i++)
        f->vecs[i] = (float)(mn_prng_double(&p) * 2 - 1);
    /* in batches; every tenth memory is tagged "rare" */
    enum { B = 100 };
    static char *rare[1] = {"rare"};
    for (uint32_t b = 0; b < N; b += B) {
        mn_memory_t batch[B];
        for (uint32_t i = 0; i < B; i++) {
            mn_memory_init(&batch[i]);
            batch[i].content = "m";
            batch[i].content_len = 1;
            batch[i].embedding = f->vecs + (size_t)(b + i) * DIM;
            batch[i].dim = DIM;
            if ((b + i) % 10 == 0) {
                batch[i].tags = rare;
                batch[i].n_tags = 1;
            }
        }
        assert_int_equal(mn_engine_remember(f->t.e, "s", batch, B, f->ids + b, &err), MN_OK);
    }
    mn_engine_wait_background(f->t.e); /* the index thread built the graph */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    mn_test_eng_free(&f->t);
    free(f->vecs);
    free(f->ids);
    free(f->gone);
    free(f);
    return 0;
}

static mn_recall_result_t recall(fx *f, const float *q, bool exact, const char *tag)
{
    mn_recall_req_t req = {0};
    req.embedding = q;
    req.dim = DIM;
    req.k = K;
    req.exact = exact;
    req.ef = 64;
    mn_filter_init(&req.filter);
    char *tags[1] = {(char *)tag};
    if (tag) {
        req.filter.tags_any = tags;
        req.filter.n_tags_any = 1;
    }
    mn_recall_result_t r;
    mn_error err = {0};
    assert_int_equal(mn_engine_recall(f->t.e, "s", &req, &r, &err), MN_OK);
    return r;
}

/* Mean share of the exact top k that the index path found, over nq queries. */
static double agreement(fx *f, uint32_t nq, const char *tag, const char *want_path)
{
    mn_prng_t p;
    mn_prng_seed(&p, 17);
    double sum = 0;
    for (uint32_t i = 0; i < nq; i++) {
        float q[DIM];
        for (int d = 0; d < DIM; d++)
            q[d] = (float)(mn_prng_double(&p) * 2 - 1);
        mn_recall_result_t a = recall(f, q, false, tag), b = recall(f, q, true, tag);
        if (want_path) assert_string_equal(a.path, want_path);
        assert_string_equal(b.path, "exact");
        size_t found = 0;
        for (size_t x = 0; x < a.n_hits; x++) {
            for (uint32_t s = 0; s < N; s++)
                if (!memcmp(a.hits[x].memory.id.b, f->ids[s].b, 16)) assert_false(f->gone[s]);
            for (size_t y = 0; y < b.n_hits; y++)
                if (!memcmp(a.hits[x].memory.id.b, b.hits[y].memory.id.b, 16)) found++;
        }
        sum += b.n_hits ? (double)found / b.n_hits : 1.0;
        mn_recall_result_clear(&a);
        mn_recall_result_clear(&b);
    }
    return sum / nq;
}

static void test_large_space_recalls_through_the_index(void **state)
{
    fx *f = *state;
    double r = agreement(f, 50, NULL, "hnsw");
    print_message("hnsw vs exact: %.3f\n", r);
    assert_true(r >= 0.95);
    /* a filter passing 10% of 1200: s^2 N = 12 < 4 ef, so the scan is cheaper */
    double rt = agreement(f, 20, "rare", "exact");
    assert_true(rt == 1.0);
}

static void test_forget_and_new_memories_follow_the_index(void **state)
{
    fx *f = *state;
    mn_error err = {0};
    for (uint32_t s = 0; s < N; s += 3) {
        assert_int_equal(mn_engine_forget(f->t.e, "s", &f->ids[s], MN_FORGET_DELETE, &err), MN_OK);
        f->gone[s] = true;
    }
    /* forgotten memories are gone from recall at once, whatever the index thread did yet */
    double a0 = agreement(f, 10, NULL, "hnsw");
    assert_true(a0 >= 0.9);
    mn_engine_wait_background(f->t.e); /* the graph has repaired its lists */
    /* new memories take the freed slots; one is the query itself */
    float q[DIM];
    for (int d = 0; d < DIM; d++)
        q[d] = 0.5f - (float)d / DIM;
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = "new";
    m.content_len = 3;
    m.embedding = q;
    m.dim = DIM;
    mn_id_t nid;
    assert_int_equal(mn_engine_remember(f->t.e, "s", &m, 1, &nid, &err), MN_OK);
    mn_recall_result_t r = recall(f, q, false, NULL);
    assert_string_equal(r.path, "hnsw");
    assert_true(r.n_hits > 0);
    assert_memory_equal(r.hits[0].memory.id.b, nid.b, 16);
    mn_recall_result_clear(&r);
    double a = agreement(f, 30, NULL, "hnsw");
    print_message("after forgetting a third: %.3f\n", a);
    assert_true(a >= 0.95);
}

/* ---- the log of an engine: stderr captured into a file ---- */

typedef struct capture {
    int saved;
    char path[600];
} capture;

static void capture_start(capture *c, const char *dir)
{
    fflush(stderr);
    snprintf(c->path, sizeof c->path, "%s/log.txt", dir);
    int fd = open(c->path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    assert_true(fd >= 0);
    c->saved = dup(2);
    assert_true(c->saved >= 0);
    assert_true(dup2(fd, 2) >= 0);
    close(fd);
}

/* Restores stderr; returns what was logged (malloc'd, NUL-terminated). */
static char *capture_stop(capture *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    FILE *fp = fopen(c->path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *text = calloc((size_t)n + 1, 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    fputs(text, stderr); /* still visible in the test output */
    return text;
}

/* The saved graph file of space "s" (the first space: its sid is the lowest there). */
static void graph_file(fx *f, char *file, size_t n)
{
    file[0] = 0;
    for (uint32_t sid = 1; sid < 8; sid++) {
        snprintf(file, n, "%s/hnsw/%u.hnsw", f->t.dir, sid);
        if (access(file, F_OK) == 0) return;
    }
    file[0] = 0;
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        assert_int_equal(fwrite(buf, 1, n, b), n);
    fclose(a);
    assert_int_equal(fclose(b), 0);
}

static void test_restart_loads_the_saved_graph_or_rebuilds(void **state)
{
    fx *f = *state;
    char *logdir = mn_test_tmpdir("mnemo-log");
    capture cap;
    mn_engine_close(f->t.e);
    /* a saved graph exists after a clean shutdown */
    char file[700];
    graph_file(f, file, sizeof file);
    assert_true(file[0] != 0);
    capture_start(&cap, logdir);
    mn_test_eng_open(&f->t);
    char *log = capture_stop(&cap);
    assert_non_null(strstr(log, "space s: vector index loaded"));
    assert_non_null(strstr(log, "1200 vectors from the saved graph"));
    assert_non_null(strstr(log, "0 dropped"));
    assert_non_null(strstr(log, "0 to add"));
    free(log);
    assert_true(agreement(f, 20, NULL, "hnsw") >= 0.95);
    /* corrupt it: the engine says so, rebuilds and still answers through the index */
    mn_engine_close(f->t.e);
    FILE *fp = fopen(file, "r+b");
    assert_non_null(fp);
    fseek(fp, 300, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, 300, SEEK_SET);
    fputc(c ^ 0x77, fp);
    fclose(fp);
    capture_start(&cap, logdir);
    mn_test_eng_open(&f->t);
    /* the graph is rebuilt in the background; recalls are right meanwhile */
    assert_true(agreement(f, 20, NULL, NULL) >= 0.95);
    mn_engine_wait_background(f->t.e);
    log = capture_stop(&cap);
    assert_non_null(strstr(log, "saved graph unusable"));
    assert_non_null(strstr(log, "checksum mismatch"));
    assert_non_null(strstr(log, "building the vector index over 1200 memories"));
    assert_non_null(strstr(log, "vector index of 1200 vectors built"));
    free(log);
    assert_true(agreement(f, 20, NULL, "hnsw") >= 0.95);
    mn_test_rmrf(logdir);
    free(logdir);
}

/* What a kill -9 leaves: a graph saved before the last changes. The engine
 * loads it anyway, drops the nodes of forgotten memories, adds the memories
 * it lacks in the background (recall ranks them exactly meanwhile) and never
 * rebuilds. */
static void test_restart_with_an_older_graph_catches_up_by_difference(void **state)
{
    fx *f = *state;
    char *logdir = mn_test_tmpdir("mnemo-log");
    capture cap;
    mn_engine_close(f->t.e);
    char file[700], old[760];
    graph_file(f, file, sizeof file);
    assert_true(file[0] != 0);
    snprintf(old, sizeof old, "%s.old", file);
    copy_file(file, old);
    mn_test_eng_open(&f->t);
    /* changes after that save: 100 forgotten, 100 new */
    mn_error err = {0};
    for (uint32_t s = 0; s < 300; s += 3) {
        assert_int_equal(mn_engine_forget(f->t.e, "s", &f->ids[s], MN_FORGET_DELETE, &err), MN_OK);
        f->gone[s] = true;
    }
    mn_prng_t p;
    mn_prng_seed(&p, 77);
    float *fresh = malloc((size_t)100 * DIM * sizeof(float));
    mn_memory_t batch[100];
    mn_id_t fresh_ids[100];
    for (uint32_t i = 0; i < 100; i++) {
        for (int d = 0; d < DIM; d++)
            fresh[(size_t)i * DIM + d] = (float)(mn_prng_double(&p) * 2 - 1);
        mn_memory_init(&batch[i]);
        batch[i].content = "late";
        batch[i].content_len = 4;
        batch[i].embedding = fresh + (size_t)i * DIM;
        batch[i].dim = DIM;
    }
    assert_int_equal(mn_engine_remember(f->t.e, "s", batch, 100, fresh_ids, &err), MN_OK);
    mn_engine_wait_background(f->t.e);
    mn_engine_close(f->t.e);
    copy_file(old, file); /* the crash: only the older graph is on disk */
    capture_start(&cap, logdir);
    mn_test_eng_open(&f->t);
    /* each late memory is found by its own vector at once (graph or tail) */
    for (uint32_t i = 0; i < 100; i += 9) {
        mn_recall_result_t r = recall(f, fresh + (size_t)i * DIM, false, NULL);
        assert_string_equal(r.path, "hnsw");
        assert_true(r.n_hits > 0);
        assert_memory_equal(r.hits[0].memory.id.b, fresh_ids[i].b, 16);
        mn_recall_result_clear(&r);
    }
    mn_engine_wait_background(f->t.e);
    char *log = capture_stop(&cap);
    assert_non_null(strstr(log, "1100 vectors from the saved graph"));
    assert_non_null(strstr(log, "100 dropped"));
    assert_non_null(strstr(log, "100 to add in the background"));
    assert_non_null(strstr(log, "vector index caught up: 100 changes"));
    assert_null(strstr(log, "building the vector index"));
    free(log);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->t.e, "s", &st, &err), MN_OK);
    assert_string_equal(st.index_state, "ready");
    assert_int_equal(st.index_nodes, 1200);
    double a = agreement(f, 30, NULL, "hnsw"); /* and no forgotten memory comes back */
    print_message("after catching up: %.3f\n", a);
    assert_true(a >= 0.95);
    free(fresh);
    unlink(old);
    mn_test_rmrf(logdir);
    free(logdir);
}

/* A shutdown with a backlog of inserts does not apply it: the index thread
 * stops after its current chunk, the graph is saved as it is, and the next
 * start adds the rest. Slow inserts (ef_construction 4096, M 64) keep the
 * backlog long. */
static void test_shutdown_saves_the_graph_without_draining_the_backlog(void **state)
{
    fx *f = *state;
    enum { SD = 64, SN = 3000 };
    mn_space_def_t d = {0};
    snprintf(d.name, sizeof d.name, "slow");
    d.dim = SD;
    d.metric = MN_METRIC_L2;
    d.index.m = 64;
    d.index.ef_construction = 4096;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_create(f->t.e, &d, NULL, &err), MN_OK);
    mn_prng_t p;
    mn_prng_seed(&p, 5);
    float *v = malloc((size_t)SN * SD * sizeof(float));
    for (size_t i = 0; i < (size_t)SN * SD; i++)
        v[i] = (float)(mn_prng_double(&p) * 2 - 1);
    enum { B = 500 };
    mn_memory_t batch[B];
    mn_id_t ids[B];
    for (uint32_t b = 0; b < SN; b += B) {
        for (uint32_t i = 0; i < B; i++) {
            mn_memory_init(&batch[i]);
            batch[i].content = "s";
            batch[i].content_len = 1;
            batch[i].embedding = v + (size_t)(b + i) * SD;
            batch[i].dim = SD;
        }
        assert_int_equal(mn_engine_remember(f->t.e, "slow", batch, B, ids, &err), MN_OK);
    }
    char *logdir = mn_test_tmpdir("mnemo-log");
    capture cap;
    capture_start(&cap, logdir);
    mn_engine_close(f->t.e); /* at once, with most of the 3000 inserts pending */
    mn_test_eng_open(&f->t);
    char *log = capture_stop(&cap);
    assert_non_null(strstr(log, "space slow: index thread stopped with"));
    assert_non_null(strstr(log, "space slow: vector index saved"));
    assert_non_null(strstr(log, "space slow: vector index loaded"));
    assert_null(strstr(log, "space slow: vector index to rebuild"));
    free(log);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->t.e, "slow", &st, &err), MN_OK);
    print_message("after the restart: %llu nodes, %llu pending\n",
                  (unsigned long long)st.index_nodes, (unsigned long long)st.index_pending);
    assert_int_equal(st.memories, SN);
    assert_true(st.index_nodes + st.index_pending >= SN);
    /* recall is right before the graph has caught up */
    mn_recall_req_t req = {.embedding = v + (size_t)(SN - 1) * SD, .dim = SD, .k = 1};
    mn_filter_init(&req.filter);
    mn_recall_result_t r;
    assert_int_equal(mn_engine_recall(f->t.e, "slow", &req, &r, &err), MN_OK);
    assert_int_equal(r.n_hits, 1);
    assert_true(r.hits[0].distance < 1e-4f);
    mn_recall_result_clear(&r);
    free(v);
    mn_test_rmrf(logdir);
    free(logdir);
}

/* A space stored before index parameters existed (its SpaceCreate has zeros)
 * takes the engine's defaults at start-up; when those cannot make a graph
 * (here M = 100, above the index's 64) the space stays exact, says "failed" and
 * the log says why. A space with its own parameters is not affected. */
static void test_a_graph_that_cannot_be_made_is_reported_failed(void **state)
{
    fx *f = *state;
    mn_error err = {0};
    assert_int_equal(mn_test_space(f->t.e, "old", DIM, MN_METRIC_COSINE), MN_OK);
    mn_memory_t batch[100];
    mn_id_t ids[600];
    for (uint32_t b = 0; b < 600; b += 100) {
        for (uint32_t i = 0; i < 100; i++) {
            mn_memory_init(&batch[i]);
            batch[i].content = "o";
            batch[i].content_len = 1;
            batch[i].embedding = f->vecs + (size_t)(b + i) * DIM;
            batch[i].dim = DIM;
        }
        assert_int_equal(mn_engine_remember(f->t.e, "old", batch, 100, ids + b, &err), MN_OK);
    }
    /* what an old data dir holds: the definition without index parameters */
    mn_engine_t *e = (mn_engine_t *)f->t.e;
    char *v;
    size_t vl;
    assert_int_equal(mn__store_get(&e->store, CF_META, "space/old", 9, &v, &vl, &err), MN_OK);
    assert_non_null(v);
    mn_wal_entry_t en;
    assert_int_equal(mn_wire_wal_decode((const uint8_t *)v, vl, &en, &err), MN_OK);
    free(v);
    assert_int_equal(en.op.space_create.def.index.m, 8);
    memset(&en.op.space_create.def.index, 0, sizeof en.op.space_create.def.index);
    uint8_t *buf;
    size_t len;
    assert_int_equal(mn_wire_wal_encode(&en, &buf, &len), MN_OK);
    mn_wal_entry_clear(&en);
    char *msg = NULL;
    rocksdb_put_cf(e->store.db, e->store.wsync, e->store.cf[CF_META], "space/old", 9,
                   (const char *)buf, len, &msg);
    assert_null(msg);
    free(buf);
    mn_engine_close(f->t.e);
    char *logdir = mn_test_tmpdir("mnemo-log");
    capture cap;
    capture_start(&cap, logdir);
    mn_engine_options_t o;
    mn_test_engine_options(&o, f->t.dir);
    o.hnsw_threshold = THRESHOLD;
    o.hnsw_m = 100; /* no graph can have that */
    o.hnsw_ef_construction = 64;
    assert_int_equal(mn_engine_open(&o, &f->t.e, &err), MN_OK);
    mn_engine_wait_background(f->t.e);
    char *log = capture_stop(&cap);
    assert_non_null(strstr(log, "space old: cannot create the vector index"));
    assert_non_null(strstr(log, "hnsw: M must be in 2..64"));
    free(log);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(f->t.e, "old", &st, &err), MN_OK);
    assert_string_equal(st.index_state, "failed");
    assert_int_equal(st.def.index.m, 100); /* what it runs with: the engine's */
    mn_recall_req_t req = {.embedding = f->vecs + 7 * DIM, .dim = DIM, .k = 1};
    mn_filter_init(&req.filter);
    mn_recall_result_t r;
    assert_int_equal(mn_engine_recall(f->t.e, "old", &req, &r, &err), MN_OK);
    assert_string_equal(r.path, "exact");
    assert_int_equal(r.n_hits, 1);
    assert_memory_equal(r.hits[0].memory.id.b, ids[7].b, 16);
    mn_recall_result_clear(&r);
    /* the fixture's space keeps its stored M = 8 and its graph */
    assert_int_equal(mn_engine_space_get(f->t.e, "s", &st, &err), MN_OK);
    assert_string_equal(st.index_state, "ready");
    assert_int_equal(st.def.index.m, 8);
    assert_true(agreement(f, 10, NULL, "hnsw") >= 0.95);
    /* a new space with the bad default is refused, naming the field */
    mn_space_def_t d = {0};
    snprintf(d.name, sizeof d.name, "new");
    d.dim = DIM;
    assert_int_equal(mn_engine_space_create(f->t.e, &d, NULL, &err), MN_ERR_INVALID);
    assert_non_null(strstr(err.message, "index.m: must be in 4..64, got 100"));
    mn_test_rmrf(logdir);
    free(logdir);
}

static int64_t fixed_clock(void *arg)
{
    (void)arg;
    return 1700000000000LL; /* the selectivity sample is seeded by the time: deterministic */
}

/* A filter passing 10% of 8000 memories: at ef 16, s^2 N (about 80) >= 4 ef,
 * so the filter runs inside the graph search (path "hnsw") and agrees with
 * the exact scan; at ef 64 the scan is cheaper and runs (path "exact"). */
static void test_filtered_recall_takes_the_index_path(void **state)
{
    (void)state;
    enum { FN = 8000, FD = 16, QN = 30 };
    char *dir = mn_test_tmpdir("mnemo-hnsw-filter");
    mn_engine_options_t o;
    mn_test_engine_options(&o, dir);
    o.hnsw_threshold = THRESHOLD;
    o.hnsw_m = 8;
    o.hnsw_ef_construction = 64;
    o.clock = fixed_clock;
    mn_engine_t *e;
    mn_error err = {0};
    assert_int_equal(mn_engine_open(&o, &e, &err), MN_OK);
    assert_int_equal(mn_test_space(e, "f", FD, MN_METRIC_L2), MN_OK);
    mn_prng_t p;
    mn_prng_seed(&p, 9);
    float *v = malloc((size_t)FN * FD * sizeof(float));
    for (size_t i = 0; i < (size_t)FN * FD; i++)
        v[i] = (float)(mn_prng_double(&p) * 2 - 1);
    static char *rare[1] = {"rare"};
    enum { B = 500 };
    mn_memory_t batch[B];
    mn_id_t ids[B];
    for (uint32_t b = 0; b < FN; b += B) {
        for (uint32_t i = 0; i < B; i++) {
            mn_memory_init(&batch[i]);
            batch[i].content = "m";
            batch[i].content_len = 1;
            batch[i].embedding = v + (size_t)(b + i) * FD;
            batch[i].dim = FD;
            if ((b + i) % 10 == 0) {
                batch[i].tags = rare;
                batch[i].n_tags = 1;
            }
        }
        assert_int_equal(mn_engine_remember(e, "f", batch, B, ids, &err), MN_OK);
    }
    mn_engine_wait_background(e);
    double sum = 0;
    for (uint32_t q = 0; q < QN; q++) {
        float qv[FD];
        for (int d = 0; d < FD; d++)
            qv[d] = (float)(mn_prng_double(&p) * 2 - 1);
        mn_recall_result_t r[3];
        const uint32_t efs[3] = {16, 64, 16};
        for (int i = 0; i < 3; i++) {
            mn_recall_req_t req = {.embedding = qv, .dim = FD, .k = K, .ef = efs[i], .exact = i == 2};
            mn_filter_init(&req.filter);
            req.filter.tags_any = rare;
            req.filter.n_tags_any = 1;
            assert_int_equal(mn_engine_recall(e, "f", &req, &r[i], &err), MN_OK);
            assert_int_equal(r[i].n_hits, K);
        }
        assert_string_equal(r[0].path, "hnsw");
        assert_string_equal(r[1].path, "exact");
        assert_string_equal(r[2].path, "exact");
        size_t found = 0;
        for (size_t a = 0; a < r[0].n_hits; a++) {
            bool tagged =
                r[0].hits[a].memory.n_tags == 1 && !strcmp(r[0].hits[a].memory.tags[0], "rare");
            assert_true(tagged);
            for (size_t b = 0; b < r[2].n_hits; b++)
                if (!memcmp(r[0].hits[a].memory.id.b, r[2].hits[b].memory.id.b, 16)) found++;
        }
        sum += (double)found / (double)r[2].n_hits;
        for (int i = 0; i < 3; i++)
            mn_recall_result_clear(&r[i]);
    }
    print_message("10%% filter through the index (ef 16): recall@10 vs exact %.3f\n", sum / QN);
    assert_true(sum / QN >= 0.95);
    free(v);
    mn_engine_close(e);
    mn_test_rmrf(dir);
    free(dir);
}

/* Index parameters belong to the space: given at creation (or the engine's
 * defaults then), checked, kept across a restart, and used by its graph. */
static void test_index_parameters_are_per_space(void **state)
{
    fx *f = *state;
    mn_error err = {0};
    mn_space_def_t d = {0}, out;
    d.dim = DIM;
    d.metric = MN_METRIC_COSINE;
    /* out of range: refused, naming the field */
    struct {
        mn_index_def_t ix;
        const char *field;
    } bad[] = {
        {{.m = 3}, "index.m"},
        {{.m = 65}, "index.m"},
        {{.ef_construction = 7}, "index.ef_construction"},
        {{.ef_construction = 4097}, "index.ef_construction"},
        {{.ef_search = 4097}, "index.ef_search"},
        {{.quantize = (mn_quantize_t)9}, "index.quantize"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(d.name, sizeof d.name, "bad%zu", i);
        d.index = bad[i].ix;
        assert_int_equal(mn_engine_space_create(f->t.e, &d, NULL, &err), MN_ERR_INVALID);
        assert_non_null(strstr(err.message, bad[i].field));
    }
    snprintf(d.name, sizeof d.name, "wide");
    d.index = (mn_index_def_t){
        .m = 32, .ef_construction = 100, .ef_search = 20, .quantize = MN_QUANTIZE_INT8};
    assert_int_equal(mn_engine_space_create(f->t.e, &d, &out, &err), MN_OK);
    assert_int_equal(out.index.m, 32);
    assert_int_equal(out.index.ef_construction, 100);
    assert_int_equal(out.index.ef_search, 20);
    assert_int_equal(out.index.quantize, MN_QUANTIZE_INT8);
    snprintf(d.name, sizeof d.name, "narrow");
    d.index = (mn_index_def_t){0}; /* the engine's: hnsw_m 8, ef_construction 64 (setup) */
    assert_int_equal(mn_engine_space_create(f->t.e, &d, &out, &err), MN_OK);
    assert_int_equal(out.index.m, 8);
    assert_int_equal(out.index.ef_construction, 64);
    assert_int_equal(out.index.ef_search, 64);
    assert_int_equal(out.index.quantize, MN_QUANTIZE_NONE);
    /* the same 600 memories in both */
    enum { PN = 600 };
    mn_memory_t batch[100];
    mn_id_t ids[100];
    for (uint32_t b = 0; b < PN; b += 100) {
        for (uint32_t i = 0; i < 100; i++) {
            mn_memory_init(&batch[i]);
            batch[i].content = "p";
            batch[i].content_len = 1;
            batch[i].embedding = f->vecs + (size_t)(b + i) * DIM;
            batch[i].dim = DIM;
        }
        assert_int_equal(mn_engine_remember(f->t.e, "wide", batch, 100, ids, &err), MN_OK);
        assert_int_equal(mn_engine_remember(f->t.e, "narrow", batch, 100, ids, &err), MN_OK);
    }
    mn_engine_wait_background(f->t.e);
    /* the graphs differ as their parameters say: 2 x 32 links and int8 codes per node
     * against 2 x 8 links */
    mn_engine_metrics_t m;
    assert_int_equal(mn_engine_get_metrics(f->t.e, &m, &err), MN_OK);
    uint64_t wide = 0, narrow = 0;
    for (size_t i = 0; i < m.n_spaces; i++) {
        if (!strcmp(m.spaces[i].name, "wide")) wide = m.spaces[i].hnsw_bytes;
        if (!strcmp(m.spaces[i].name, "narrow")) narrow = m.spaces[i].hnsw_bytes;
    }
    mn_engine_metrics_clear(&m);
    print_message("index bytes: m 32 + int8 %llu, m 8 %llu\n", (unsigned long long)wide,
                  (unsigned long long)narrow);
    assert_true(wide > narrow + (uint64_t)PN * (4 * 2 * (32 - 8) + DIM));
    /* the quantized space still answers exactly re-ranked results through the index */
    mn_recall_req_t req = {.embedding = f->vecs + 5 * DIM, .dim = DIM, .k = 3};
    mn_filter_init(&req.filter);
    mn_recall_result_t r;
    assert_int_equal(mn_engine_recall(f->t.e, "wide", &req, &r, &err), MN_OK);
    assert_string_equal(r.path, "hnsw");
    assert_true(r.n_hits == 3 && r.hits[0].similarity > 0.9999f);
    mn_recall_result_clear(&r);
    /* kept across a restart, whatever the engine's defaults are then */
    mn_engine_close(f->t.e);
    mn_test_eng_open(&f->t);
    mn_space_def_t *defs;
    size_t n;
    assert_int_equal(mn_engine_space_list(f->t.e, &defs, &n, &err), MN_OK);
    bool seen = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(defs[i].name, "wide")) continue;
        seen = true;
        assert_int_equal(defs[i].index.m, 32);
        assert_int_equal(defs[i].index.ef_construction, 100);
        assert_int_equal(defs[i].index.ef_search, 20);
        assert_int_equal(defs[i].index.quantize, MN_QUANTIZE_INT8);
    }
    free(defs);
    assert_true(seen);
}

/* Writers remember and forget while the index thread catches up: a memory is
 * found by its own vector as soon as remember returns (from the unindexed tail
 * or the graph), and a forgotten one never comes back. */
typedef struct fresh_arg {
    fx *f;
    uint64_t seed;
    uint32_t base; /* forgets f->ids[base + 2i] */
    int found, missed, resurrected, hnsw;
} fresh_arg;

static void *fresh_writer(void *arg)
{
    fresh_arg *a = arg;
    mn_prng_t p;
    mn_prng_seed(&p, a->seed);
    for (int it = 0; it < 250; it++) {
        float v[DIM];
        for (int d = 0; d < DIM; d++)
            v[d] = (float)(mn_prng_double(&p) * 2 - 1);
        mn_memory_t m;
        mn_memory_init(&m);
        m.content = "fresh";
        m.content_len = 5;
        m.embedding = v;
        m.dim = DIM;
        mn_id_t id;
        mn_error err = {0};
        if (mn_engine_remember(a->f->t.e, "s", &m, 1, &id, &err)) return NULL;
        mn_recall_req_t req = {.embedding = v, .dim = DIM, .k = 1};
        mn_filter_init(&req.filter);
        mn_recall_result_t r;
        if (mn_engine_recall(a->f->t.e, "s", &req, &r, &err)) return NULL;
        if (!strcmp(r.path, "hnsw")) a->hnsw++;
        if (r.n_hits == 1 && !memcmp(r.hits[0].memory.id.b, id.b, 16))
            a->found++;
        else
            a->missed++;
        mn_recall_result_clear(&r);
        if (it % 2 == 0) {
            uint32_t old = a->base + (uint32_t)it;
            const float *ov = a->f->vecs + (size_t)old * DIM;
            if (mn_engine_forget(a->f->t.e, "s", &a->f->ids[old], MN_FORGET_DELETE, &err))
                return NULL;
            req.embedding = ov;
            if (mn_engine_recall(a->f->t.e, "s", &req, &r, &err)) return NULL;
            if (r.n_hits == 1 && !memcmp(r.hits[0].memory.id.b, a->f->ids[old].b, 16))
                a->resurrected++;
            mn_recall_result_clear(&r);
        }
    }
    return NULL;
}

static void test_fresh_writes_are_found_while_the_index_catches_up(void **state)
{
    fx *f = *state;
    fresh_arg args[2] = {{.f = f, .seed = 11, .base = 0}, {.f = f, .seed = 12, .base = 600}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, fresh_writer, &args[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        print_message("writer %d: found %d missed %d resurrected %d (hnsw path %d)\n", i,
                      args[i].found, args[i].missed, args[i].resurrected, args[i].hnsw);
        assert_int_equal(args[i].found, 250);
        assert_int_equal(args[i].resurrected, 0);
        assert_int_equal(args[i].hnsw, 250);
    }
}

static void test_small_space_stays_exact(void **state)
{
    fx *f = *state;
    mn_space_def_t d = {0};
    snprintf(d.name, sizeof d.name, "small");
    d.dim = DIM;
    d.metric = MN_METRIC_L2;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_create(f->t.e, &d, NULL, &err), MN_OK);
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = "x";
    m.content_len = 1;
    m.embedding = f->vecs;
    m.dim = DIM;
    mn_id_t id;
    assert_int_equal(mn_engine_remember(f->t.e, "small", &m, 1, &id, &err), MN_OK);
    mn_recall_req_t req = {0};
    req.embedding = f->vecs;
    req.dim = DIM;
    req.k = 3;
    mn_filter_init(&req.filter);
    mn_recall_result_t r;
    assert_int_equal(mn_engine_recall(f->t.e, "small", &req, &r, &err), MN_OK);
    assert_string_equal(r.path, "exact");
    assert_int_equal(r.n_hits, 1);
    mn_recall_result_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_large_space_recalls_through_the_index, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_forget_and_new_memories_follow_the_index, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_restart_loads_the_saved_graph_or_rebuilds, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_restart_with_an_older_graph_catches_up_by_difference,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_saves_the_graph_without_draining_the_backlog,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_parameters_are_per_space, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_graph_that_cannot_be_made_is_reported_failed, setup,
                                        teardown),
        cmocka_unit_test(test_filtered_recall_takes_the_index_path),
        cmocka_unit_test_setup_teardown(test_fresh_writes_are_found_while_the_index_catches_up,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_space_stays_exact, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
