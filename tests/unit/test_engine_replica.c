/* The engine's side of replication (engine/replica.c): two engines, a primary running
 * a mixed workload and a replica fed its WAL through mn_engine_replicate, end in the
 * same state, the same positions and the same WAL bytes, before and after a restart;
 * gaps and duplicates are refused without a trace; a replica takes no client or
 * background write; roles and epochs; the WAL hook; reads of a trimmed WAL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/engine.h"
#include "mnemo/util.h"
#include "mnemo/wire.h"
#include "testutil.h"

#define DIM 4

/* ---- the WAL hook's record ---- */

typedef struct heard {
    char space[MN_SPACE_NAME_MAX + 1];
    uint64_t epoch, lsn;
} heard;

typedef struct hook_log {
    pthread_mutex_t mu;
    heard *items;
    size_t n, cap;
} hook_log;

static void on_entry(void *arg, const char *space, uint64_t epoch, uint64_t lsn)
{
    hook_log *h = arg;
    pthread_mutex_lock(&h->mu);
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->items = realloc(h->items, h->cap * sizeof *h->items);
        assert_non_null(h->items);
    }
    heard *x = &h->items[h->n++];
    snprintf(x->space, sizeof x->space, "%s", space);
    x->epoch = epoch;
    x->lsn = lsn;
    pthread_mutex_unlock(&h->mu);
}

static void hook_init(hook_log *h)
{
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
}

static void hook_free(hook_log *h)
{
    free(h->items);
    pthread_mutex_destroy(&h->mu);
}

/* ---- two engines ---- */

typedef struct pair {
    mn_test_eng p, r; /* primary, replica */
} pair;

/* linked: the primary's background thread links similar memories (associate entries it
 * writes on its own), as a server's does. */
static void pair_open(pair *x, bool linked)
{
    memset(x, 0, sizeof *x);
    mn_test_eng_init(&x->p, "mnemo-repl-p");
    mn_test_eng_init(&x->r, "mnemo-repl-r");
    if (linked) {
        x->p.opts.link_max = 5;
        x->p.opts.link_threshold = 0.5f;
    }
    mn_test_eng_open(&x->p);
    mn_test_eng_open(&x->r);
}

static void pair_close(pair *x)
{
    mn_test_eng_free(&x->p);
    mn_test_eng_free(&x->r);
}

static uint64_t last_lsn(mn_engine_t *e, const char *space, uint64_t *epoch)
{
    uint64_t lsn = 0, ep = 0;
    mn_error err = {0};
    mn_err rc = mn_engine_space_position(e, space, &lsn, &ep, &err);
    if (rc == MN_ERR_NOT_FOUND) return 0;
    assert_int_equal(rc, MN_OK);
    if (epoch) *epoch = ep;
    return lsn;
}

/* Ships space's entries the replica lacks from e to r, in batches of 1, 2, 3, 5, 8 ...
 * entries; returns how many. */
static size_t ship(mn_engine_t *from, mn_engine_t *to, const char *space)
{
    mn_engine_wait_background(from); /* its links and reinforcements are entries too */
    uint64_t next = last_lsn(to, space, NULL) + 1;
    mn_test_wal w = {0};
    assert_int_equal(mn_test_wal_read(from, space, next, 0, &w), MN_OK);
    size_t sizes[] = {1, 2, 3, 5, 8, 13};
    size_t done = 0;
    for (size_t k = 0; done < w.n; k++) {
        size_t m = sizes[k % 6];
        if (m > w.n - done) m = w.n - done;
        mn_error err = {0};
        mn_err rc = mn_engine_replicate(
            to, space, next + done, (const uint8_t *const *)w.bufs + done, w.lens + done, m, &err);
        if (rc)
            fail_msg("replicate lsn %llu (+%zu): %s", (unsigned long long)(next + done), m,
                     err.message);
        done += m;
    }
    size_t n = w.n;
    mn_test_wal_free(&w);
    return n;
}

/* ---- comparing the two ---- */

/* The associations of the given kind over every listed memory of space. */
static size_t count_links(mn_engine_t *e, const char *space, int kind)
{
    mn_list_req_t q = {.limit = 1000};
    mn_filter_init(&q.filter);
    mn_list_result_t l;
    mn_error err = {0};
    assert_int_equal(mn_engine_list(e, space, &q, &l, &err), MN_OK);
    size_t k = 0;
    for (size_t j = 0; j < l.n; j++) {
        mn_assoc_t *a;
        size_t n;
        assert_int_equal(mn_engine_associations(e, space, &l.memories[j].id, &a, &n, &err), MN_OK);
        for (size_t i = 0; i < n; i++)
            k += a[i].kind == kind;
        free(a);
    }
    mn_list_result_clear(&l);
    return k;
}

static void same_wal(mn_engine_t *a, mn_engine_t *b, const char *space)
{
    mn_test_wal wa = {0}, wb = {0};
    assert_int_equal(mn_test_wal_read(a, space, 0, 0, &wa), MN_OK);
    assert_int_equal(mn_test_wal_read(b, space, 0, 0, &wb), MN_OK);
    assert_int_equal(wa.n, wb.n);
    for (size_t i = 0; i < wa.n; i++) {
        assert_int_equal(wa.lens[i], wb.lens[i]);
        assert_memory_equal(wa.bufs[i], wb.bufs[i], wa.lens[i]);
    }
    mn_test_wal_free(&wa);
    mn_test_wal_free(&wb);
}

static void same_memory(const mn_memory_t *a, const mn_memory_t *b)
{
    assert_memory_equal(a->id.b, b->id.b, 16);
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->content_len, b->content_len);
    if (a->content_len) assert_memory_equal(a->content, b->content, a->content_len);
    assert_int_equal(a->dim, b->dim);
    if (a->dim) assert_memory_equal(a->embedding, b->embedding, a->dim * sizeof(float));
    assert_int_equal(a->when_ms, b->when_ms);
    assert_int_equal(a->created_at_ms, b->created_at_ms);
    assert_int_equal(a->suppressed, b->suppressed);
    assert_int_equal(a->forgotten, b->forgotten);
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->valid_to_ms, b->valid_to_ms);
    assert_int_equal(a->n_tags, b->n_tags);
    assert_int_equal(a->n_support, b->n_support);
    assert_true(a->importance == b->importance);
}

/* Associations in a stable order (a slot keeps them in the order it met them). */
static int assoc_order(const void *a, const void *b)
{
    const mn_assoc_t *x = a, *y = b;
    int c = memcmp(x->other.b, y->other.b, 16);
    if (c) return c;
    if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
    return (int)x->outgoing - (int)y->outgoing;
}

/* A memory's associations on stderr: on a mismatch both lists say which edge differs. */
static void print_assocs(const char *who, const mn_id_t *id, const mn_assoc_t *x, size_t n)
{
    fprintf(stderr, "%s: %02x%02x..%02x%02x has %zu associations\n", who, id->b[0], id->b[1],
            id->b[14], id->b[15], n);
    for (size_t j = 0; j < n; j++)
        fprintf(stderr, "  %02x%02x..%02x%02x kind %d outgoing %d weight %.9g\n", x[j].other.b[0],
                x[j].other.b[1], x[j].other.b[14], x[j].other.b[15], x[j].kind, x[j].outgoing,
                (double)x[j].weight);
}

/* Every memory listed (suppressed included), then each one got by id with its vector,
 * and its associations. */
static size_t same_list(mn_engine_t *a, mn_engine_t *b, const char *space)
{
    mn_list_req_t q = {.limit = 1000, .include_embedding = true};
    mn_filter_init(&q.filter);
    q.filter.include_suppressed = true;
    mn_list_result_t la, lb;
    mn_error err = {0};
    assert_int_equal(mn_engine_list(a, space, &q, &la, &err), MN_OK);
    assert_int_equal(mn_engine_list(b, space, &q, &lb, &err), MN_OK);
    assert_int_equal(la.n, lb.n);
    for (size_t i = 0; i < la.n; i++) {
        same_memory(&la.memories[i], &lb.memories[i]);
        mn_memory_t ga, gb;
        assert_int_equal(mn_engine_get(a, space, &la.memories[i].id, true, &ga, &err), MN_OK);
        assert_int_equal(mn_engine_get(b, space, &la.memories[i].id, true, &gb, &err), MN_OK);
        same_memory(&ga, &gb);
        mn_memory_clear(&ga);
        mn_memory_clear(&gb);
        mn_assoc_t *xa, *xb;
        size_t na, nb;
        assert_int_equal(mn_engine_associations(a, space, &la.memories[i].id, &xa, &na, &err),
                         MN_OK);
        assert_int_equal(mn_engine_associations(b, space, &la.memories[i].id, &xb, &nb, &err),
                         MN_OK);
        qsort(xa, na, sizeof *xa, assoc_order);
        qsort(xb, nb, sizeof *xb, assoc_order);
        if (na != nb) {
            print_assocs("primary", &la.memories[i].id, xa, na);
            print_assocs("replica", &la.memories[i].id, xb, nb);
        }
        assert_int_equal(na, nb);
        for (size_t j = 0; j < na; j++) {
            assert_memory_equal(xa[j].other.b, xb[j].other.b, 16);
            assert_int_equal(xa[j].kind, xb[j].kind);
            assert_int_equal(xa[j].outgoing, xb[j].outgoing);
            assert_true(xa[j].weight == xb[j].weight);
        }
        free(xa);
        free(xb);
    }
    size_t n = la.n;
    mn_list_result_clear(&la);
    mn_list_result_clear(&lb);
    return n;
}

/* Hits by score, ties by id (the order of equal scores follows slot order, which a
 * restart changes on any engine). */
static int hit_order(const void *a, const void *b)
{
    const mn_recall_hit_t *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return memcmp(x->memory.id.b, y->memory.id.b, 16);
}

static void same_recall(mn_engine_t *a, mn_engine_t *b, const char *space, const float *v,
                        const char *text)
{
    mn_recall_req_t q = {.embedding = v, .dim = v ? DIM : 0, .k = 20, .spread = true};
    mn_filter_init(&q.filter);
    if (text) {
        q.text = text;
        q.text_len = strlen(text);
    }
    mn_recall_result_t ra, rb;
    mn_error err = {0};
    assert_int_equal(mn_engine_recall(a, space, &q, &ra, &err), MN_OK);
    assert_int_equal(mn_engine_recall(b, space, &q, &rb, &err), MN_OK);
    assert_int_equal(ra.n_hits, rb.n_hits);
    assert_true(ra.n_hits > 0);
    qsort(ra.hits, ra.n_hits, sizeof *ra.hits, hit_order);
    qsort(rb.hits, rb.n_hits, sizeof *rb.hits, hit_order);
    for (size_t i = 0; i < ra.n_hits; i++) {
        same_memory(&ra.hits[i].memory, &rb.hits[i].memory);
        assert_true(ra.hits[i].score == rb.hits[i].score);
    }
    mn_recall_result_clear(&ra);
    mn_recall_result_clear(&rb);
}

static void same_state(pair *x, const char *space)
{
    uint64_t ep_p = 0, ep_r = 0;
    assert_int_equal(last_lsn(x->p.e, space, &ep_p), last_lsn(x->r.e, space, &ep_r));
    assert_int_equal(ep_p, ep_r);
    same_wal(x->p.e, x->r.e, space);
    assert_true(same_list(x->p.e, x->r.e, space) > 0);
    float v[DIM] = {1, 0.1f, 0, 0};
    same_recall(x->p.e, x->r.e, space, v, NULL);
    same_recall(x->p.e, x->r.e, space, NULL, "coffee");
    same_recall(x->p.e, x->r.e, space, v, "coffee meeting");
    mn_space_stats_t sa, sb;
    mn_error err = {0};
    assert_int_equal(mn_engine_space_get(x->p.e, space, &sa, &err), MN_OK);
    assert_int_equal(mn_engine_space_get(x->r.e, space, &sb, &err), MN_OK);
    assert_int_equal(sa.memories, sb.memories);
    assert_int_equal(sa.semantic, sb.semantic);
    assert_int_equal(sa.suppressed, sb.suppressed);
    assert_int_equal(sa.tombstones, sb.tombstones);
}

/* ---- the primary's workload ---- */

static mn_id_t put(mn_test_eng *t, const char *space, const char *content, const float *v,
                   const char *tag, const char *session)
{
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = (char *)content;
    m.content_len = strlen(content);
    m.embedding = (float *)v;
    m.dim = v ? DIM : 0;
    char *tags[1] = {(char *)tag};
    if (tag) {
        m.tags = tags;
        m.n_tags = 1;
    }
    m.session = (char *)session;
    mn_id_t id;
    mn_error err = {0};
    if (mn_engine_remember(t->e, space, &m, 1, &id, &err)) fail_msg("remember: %s", err.message);
    t->now += 1000;
    return id;
}

static void make_space(mn_engine_t *e, const char *name)
{
    mn_space_def_t d = {0};
    snprintf(d.name, sizeof d.name, "%s", name);
    d.dim = DIM;
    d.metric = MN_METRIC_COSINE;
    d.dedup = MN_DEDUP_EXACT;
    mn_error err = {0};
    if (mn_engine_space_create(e, &d, NULL, &err)) fail_msg("create: %s", err.message);
}

/* Remembers a batch of n memories tagged tag (vectors near axis), in one entry. */
static void put_batch(mn_test_eng *t, const char *space, size_t n, const char *tag, int axis)
{
    mn_memory_t m[8];
    float v[8][DIM];
    char text[8][64];
    char *tags[1] = {(char *)tag};
    mn_id_t ids[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        mn_memory_init(&m[i]);
        memset(v[i], 0, sizeof v[i]);
        v[i][axis] = 1;
        v[i][(axis + 1) % DIM] = 0.05f * (float)(i + 1);
        snprintf(text[i], sizeof text[i], "coffee meeting %s number %zu", tag, i);
        m[i].content = text[i];
        m[i].content_len = strlen(text[i]);
        m[i].embedding = v[i];
        m[i].dim = DIM;
        m[i].tags = tags;
        m[i].n_tags = 1;
        m[i].session = "sess-1";
    }
    mn_error err = {0};
    if (mn_engine_remember(t->e, space, m, n, ids, &err)) fail_msg("batch: %s", err.message);
    t->now += 1000;
}

static void forget_tag(mn_test_eng *t, const char *space, const char *tag)
{
    mn_filter_t f;
    mn_filter_init(&f);
    char *tags[1] = {(char *)tag};
    f.tags_any = tags;
    f.n_tags_any = 1;
    mn_id_t *ids;
    size_t n;
    mn_error err = {0};
    assert_int_equal(mn_engine_forget_select(t->e, space, &f, MN_FORGET_DELETE, &ids, &n, &err),
                     MN_OK);
    assert_true(n > 0);
    mn_forget_progress_t pr;
    assert_int_equal(
        mn_engine_forget_ids(t->e, space, MN_FORGET_DELETE, ids, n, 0, NULL, NULL, &pr, &err),
        MN_OK);
    assert_int_equal(pr.forgotten, n);
    free(ids);
}

static void correct(mn_test_eng *t, const char *space, const mn_id_t *id, const char *content)
{
    mn_update_req_t u = {.content = content, .content_len = strlen(content)};
    mn_memory_t out;
    mn_error err = {0};
    if (mn_engine_update(t->e, space, id, &u, &out, &err)) fail_msg("update: %s", err.message);
    mn_memory_clear(&out);
    t->now += 1000;
}

/* Consolidates space; returns the first semantic memory made. */
static mn_id_t consolidate(mn_test_eng *t, const char *space)
{
    mn_consolidate_opts_t o = {.threshold = 0.9f, .min_support = 3};
    mn_consolidate_result_t r;
    mn_error err = {0};
    if (mn_engine_consolidate(t->e, space, &o, &r, &err)) fail_msg("consolidate: %s", err.message);
    assert_true(r.created >= 1 && r.n_ids >= 1);
    mn_id_t id = r.ids[0];
    free(r.ids);
    return id;
}

static void embed(mn_test_eng *t, const char *space, const mn_id_t *id, const float *v)
{
    mn_err rcs[1];
    const float *vs[1] = {v};
    mn_error err = {0};
    assert_int_equal(mn_engine_embed(t->e, space, id, vs, DIM, 1, rcs, &err), MN_OK);
    assert_int_equal(rcs[0], MN_OK);
}

static void recall_reinforce(mn_test_eng *t, const char *space)
{
    float v[DIM] = {1, 0, 0, 0};
    mn_recall_req_t q = {.embedding = v, .dim = DIM, .k = 5, .reinforce = true};
    mn_filter_init(&q.filter);
    mn_recall_result_t r;
    mn_error err = {0};
    assert_int_equal(mn_engine_recall(t->e, space, &q, &r, &err), MN_OK);
    mn_recall_result_clear(&r);
    mn_engine_wait_background(t->e);
}

/* The first half: memories, a batch, a correction, links, a suppression. */
static void workload_a(mn_test_eng *t, mn_id_t *keep)
{
    make_space(t->e, "s");
    float v1[DIM] = {1, 0.1f, 0, 0}, v2[DIM] = {0, 1, 0, 0};
    keep[0] = put(t, "s", "coffee with Ana at nine", v1, "work", "sess-1");
    keep[1] = put(t, "s", "the meeting moved to Tuesday", v2, "work", "sess-1");
    keep[2] = put(t, "s", "a note without a vector about coffee", NULL, "misc", NULL);
    put_batch(t, "s", 5, "bulk", 2);
    correct(t, "s", &keep[1], "the meeting moved to Wednesday");
    mn_edge_t edge = {.from = keep[0], .to = keep[1], .kind = MN_EDGE_EXPLICIT, .weight = 0.5f};
    mn_error err = {0};
    assert_int_equal(mn_engine_associate(t->e, "s", &edge, 1, &err), MN_OK);
    assert_int_equal(mn_engine_forget(t->e, "s", &keep[2], MN_FORGET_SUPPRESS, &err), MN_OK);
    assert_int_equal(mn_engine_unsuppress(t->e, "s", &keep[2], &err), MN_OK);
    float v3[DIM] = {0.1f, 0.1f, 0.1f, 1};
    embed(t, "s", &keep[2], v3);
    recall_reinforce(t, "s");
}

/* The second half, partly erasing what the first wrote: forgets (one, by filter),
 * an invalidation, a consolidation and an episode of it forgotten (a re-derivation),
 * a memory embedded then forgotten before it was shipped (its entries arrive
 * stripped), and another space created and dropped. */
static void workload_b(mn_test_eng *t, const mn_id_t *keep, bool forget_semantic)
{
    mn_error err = {0};
    forget_tag(t, "s", "bulk");
    float near[DIM] = {0, 0, 1, 0.02f};
    mn_id_t late = put(t, "s", "late coffee to be forgotten", NULL, "late", NULL);
    embed(t, "s", &late, near);
    mn_edge_t edge = {.from = keep[0], .to = late, .kind = MN_EDGE_CAUSAL, .weight = 0.7f};
    assert_int_equal(mn_engine_associate(t->e, "s", &edge, 1, &err), MN_OK);
    assert_int_equal(mn_engine_forget(t->e, "s", &late, MN_FORGET_DELETE, &err), MN_OK);
    assert_int_equal(mn_engine_invalidate(t->e, "s", &keep[1], NULL, "cancelled", NULL, &err),
                     MN_OK);
    mn_id_t eps[4];
    for (int i = 0; i < 4; i++) {
        float v[DIM] = {0, 0, 0.1f * (float)i, 1};
        char text[64];
        snprintf(text, sizeof text, "standup coffee every morning, day %d", i);
        eps[i] = put(t, "s", text, v, "standup", "sess-2");
    }
    mn_id_t sem = consolidate(t, "s");
    assert_int_equal(mn_engine_forget(t->e, "s", &eps[0], MN_FORGET_DELETE, &err), MN_OK);
    if (forget_semantic) /* its words leave every entry that carried them, on both */
        assert_int_equal(mn_engine_forget(t->e, "s", &sem, MN_FORGET_DELETE, &err), MN_OK);
    make_space(t->e, "t");
    put(t, "t", "in a space about to go", NULL, NULL, NULL);
    assert_int_equal(mn_engine_space_drop(t->e, "t", &err), MN_OK);
}

/* ---- tests ---- */

static void test_replica_matches_primary_and_survives_a_restart(void **state)
{
    (void)state;
    pair x;
    pair_open(&x, true);
    mn_id_t keep[3];
    workload_a(&x.p, keep);
    assert_true(ship(x.p.e, x.r.e, "s") > 10);
    assert_true(count_links(x.r.e, "s", MN_EDGE_SEMANTIC) > 0); /* the primary's linker's */
    x.r.now = x.p.now;
    same_state(&x, "s");
    make_space(x.p.e, "t"); /* a second space, shipped, then dropped on the primary */
    put(&x.p, "t", "short lived", NULL, NULL, NULL);
    ship(x.p.e, x.r.e, "t");
    assert_int_equal(last_lsn(x.r.e, "t", NULL), 2);
    mn_error err = {0};
    assert_int_equal(mn_engine_space_drop(x.p.e, "t", &err), MN_OK);
    assert_int_equal(ship(x.p.e, x.r.e, "t"), 1); /* the drop entry outlives its space */
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(x.r.e, "t", &st, &err), MN_ERR_NOT_FOUND);
    workload_b(&x.p, keep, false);
    ship(x.p.e, x.r.e, "s");
    x.r.now = x.p.now;
    same_state(&x, "s");
    mn_space_role_t role;
    assert_int_equal(mn_engine_space_role(x.r.e, "s", &role, &err), MN_OK);
    assert_int_equal(role, MN_SPACE_REPLICA);
    mn_test_eng_reopen(&x.r);
    same_state(&x, "s");
    pair_close(&x);
}

/* ---- shipping while the primary writes ---- */

typedef struct writer {
    mn_engine_t *e;
    int id, n;
    mn_err rc;
} writer;

static void *write_many(void *arg)
{
    writer *w = arg;
    for (int i = 0; i < w->n && !w->rc; i++) {
        char text[64];
        snprintf(text, sizeof text, "writer %d wrote coffee note %d", w->id, i);
        float v[DIM] = {(float)w->id, (float)i, 1, 0.5f};
        mn_memory_t m;
        mn_memory_init(&m);
        m.content = text;
        m.content_len = strlen(text);
        m.embedding = v;
        m.dim = DIM;
        mn_id_t id;
        mn_error err = {0};
        w->rc = mn_engine_remember(w->e, "s", &m, 1, &id, &err);
        if (!w->rc && i % 5 == 4) w->rc = mn_engine_forget(w->e, "s", &id, MN_FORGET_DELETE, &err);
    }
    return NULL;
}

/* Three writers on the primary while the test ships what is there, again and again: the
 * replica follows a log that grows under it (and erases under it), and ends equal. */
static void test_shipping_while_the_primary_writes(void **state)
{
    (void)state;
    pair x;
    pair_open(&x, false);
    make_space(x.p.e, "s");
    writer w[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (writer){.e = x.p.e, .id = i, .n = 60};
        assert_int_equal(pthread_create(&th[i], NULL, write_many, &w[i]), 0);
    }
    size_t shipped = 0;
    for (int round = 0; round < 400; round++)
        shipped += ship(x.p.e, x.r.e, "s");
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].rc, MN_OK);
    }
    shipped += ship(x.p.e, x.r.e, "s");
    assert_int_equal(shipped, last_lsn(x.p.e, "s", NULL));
    assert_int_equal(shipped, 1 + 3 * 60 + 3 * 12);
    x.r.now = x.p.now;
    same_state(&x, "s");
    pair_close(&x);
}

/* A dropped space keeps its drop entry for readers of its WAL: shipped, it drops the
 * space on the replica; a replica further behind is told the rest is gone. The name
 * created again starts at lsn 1 with the next epoch, on both. */
/* The primary consolidates, forgets an episode (its semantic memory re-derived) and then
 * the semantic memory, all before the replica reads any of it: the replica meets the
 * episode erased already, and still ends with the primary's bytes in every entry. */
static void test_erasures_read_late_leave_the_same_log(void **state)
{
    (void)state;
    pair x;
    pair_open(&x, true);
    mn_id_t keep[3];
    workload_a(&x.p, keep);
    workload_b(&x.p, keep, true);
    ship(x.p.e, x.r.e, "s");
    x.r.now = x.p.now;
    same_state(&x, "s");
    mn_test_eng_reopen(&x.r);
    same_state(&x, "s");
    pair_close(&x);
}

/* The consolidate entry that first carried a semantic memory, read after a later version
 * of it rewrote that entry, keeps the memory's identity without its words: the entries
 * between (an association, a reinforcement, a suppression) find it on the replica as they
 * found it on the primary. (The primary's linker may link a late episode to it there too,
 * however late the linker runs.) */
static void test_a_semantic_memory_read_late_keeps_what_came_between(void **state)
{
    (void)state;
    pair x;
    pair_open(&x, false);
    make_space(x.p.e, "s");
    mn_id_t eps[4];
    for (int i = 0; i < 4; i++) {
        float v[DIM] = {1, 0.05f * (float)i, 0, 0};
        char text[64];
        snprintf(text, sizeof text, "coffee on the harbor ferry, day %d", i);
        eps[i] = put(&x.p, "s", text, v, "ferry", NULL);
    }
    mn_id_t note = put(&x.p, "s", "a note about the ferry meeting", NULL, NULL, NULL);
    mn_id_t sem = consolidate(&x.p, "s");
    uint64_t first = last_lsn(x.p.e, "s", NULL);
    mn_edge_t edge = {.from = note, .to = sem, .kind = MN_EDGE_EXPLICIT, .weight = 0.5f};
    mn_error err = {0};
    assert_int_equal(mn_engine_associate(x.p.e, "s", &edge, 1, &err), MN_OK);
    recall_reinforce(&x.p, "s");
    assert_int_equal(mn_engine_forget(x.p.e, "s", &sem, MN_FORGET_SUPPRESS, &err), MN_OK);
    /* its episode's words leave it: re-derived, a later version of the same id */
    assert_int_equal(mn_engine_forget(x.p.e, "s", &eps[0], MN_FORGET_DELETE, &err), MN_OK);
    mn_test_wal w = {0};
    assert_int_equal(mn_test_wal_read(x.p.e, "s", first, 1, &w), MN_OK);
    assert_int_equal(w.n, 1);
    mn_wal_entry_t en;
    assert_int_equal(mn_wire_wal_decode(w.bufs[0], w.lens[0], &en, &err), MN_OK);
    assert_int_equal(en.type, MN_WAL_OP_CONSOLIDATE);
    assert_int_equal(en.op.consolidate.n, 1);
    const mn_memory_t *m = &en.op.consolidate.mems[0];
    assert_memory_equal(m->id.b, sem.b, 16);
    assert_false(m->forgotten);
    assert_int_equal(m->content_len, 0);
    assert_null(m->embedding);
    assert_int_equal(m->n_support, 0);
    mn_wal_entry_clear(&en);
    mn_test_wal_free(&w);
    ship(x.p.e, x.r.e, "s");
    assert_int_equal(count_links(x.r.e, "s", MN_EDGE_EXPLICIT), 1);
    x.r.now = x.p.now;
    same_state(&x, "s");
    mn_memory_t a, b;
    assert_int_equal(mn_engine_get(x.p.e, "s", &sem, false, &a, &err), MN_OK);
    assert_int_equal(mn_engine_get(x.r.e, "s", &sem, false, &b, &err), MN_OK);
    assert_true(a.suppressed && b.suppressed);
    assert_true(a.access_count > 0);
    assert_int_equal(a.access_count, b.access_count);
    assert_true(a.stability_days == b.stability_days);
    mn_memory_clear(&a);
    mn_memory_clear(&b);
    mn_test_eng_reopen(&x.r);
    same_state(&x, "s");
    pair_close(&x);
}

static void test_replicated_drop_drops_the_space(void **state)
{
    (void)state;
    pair x;
    pair_open(&x, false);
    make_space(x.p.e, "t");
    put(&x.p, "t", "one", NULL, NULL, NULL);
    put(&x.p, "t", "two", NULL, NULL, NULL);
    mn_test_wal w = {0};
    assert_int_equal(mn_test_wal_read(x.p.e, "t", 1, 0, &w), MN_OK);
    mn_error err = {0};
    assert_int_equal(
        mn_engine_replicate(x.r.e, "t", 1, (const uint8_t *const *)w.bufs, w.lens, 3, &err), MN_OK);
    mn_test_wal_free(&w);
    assert_int_equal(mn_engine_space_drop(x.p.e, "t", &err), MN_OK);
    assert_int_equal(mn_test_wal_read(x.p.e, "t", 3, 0, &w), MN_ERR_GONE); /* lsn 3: "two" */
    assert_int_equal(w.n, 0);
    assert_int_equal(mn_test_wal_read(x.p.e, "t", 5, 0, &w), MN_OK);
    assert_int_equal(w.n, 0);
    assert_int_equal(mn_test_wal_read(x.p.e, "t", 4, 0, &w), MN_OK);
    assert_int_equal(w.n, 1);
    mn_test_wal_free(&w);
    assert_int_equal(ship(x.p.e, x.r.e, "t"), 1);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(x.r.e, "t", &st, &err), MN_ERR_NOT_FOUND);
    make_space(x.p.e, "t");
    put(&x.p, "t", "three", NULL, NULL, NULL);
    assert_int_equal(ship(x.p.e, x.r.e, "t"), 2);
    uint64_t ep_p, ep_r;
    assert_int_equal(last_lsn(x.p.e, "t", &ep_p), 2);
    assert_int_equal(last_lsn(x.r.e, "t", &ep_r), 2);
    assert_int_equal(ep_p, 2);
    assert_int_equal(ep_r, 2);
    same_wal(x.p.e, x.r.e, "t");
    pair_close(&x);
}

/* A replica's copy moved away (cluster mode): discarded whatever its role, unheard by the
 * WAL hook, gone after a restart, and shipped whole again from lsn 1 when it comes back. */
static void test_a_discarded_replica_copy_is_gone_and_comes_back_by_shipping(void **state)
{
    (void)state;
    pair x;
    pair_open(&x, false);
    mn_id_t keep[3];
    workload_a(&x.p, keep);
    ship(x.p.e, x.r.e, "s");
    hook_log hr;
    hook_init(&hr);
    mn_engine_set_wal_hook(x.r.e, on_entry, &hr);
    mn_error err = {0};
    assert_int_equal(mn_engine_space_drop(x.r.e, "s", &err), MN_ERR_UNAVAILABLE);
    assert_int_equal(mn_engine_space_discard(x.r.e, "s", &err), MN_OK);
    assert_int_equal(hr.n, 0);
    mn_engine_set_wal_hook(x.r.e, NULL, NULL);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(x.r.e, "s", &st, &err), MN_ERR_NOT_FOUND);
    assert_int_equal(mn_engine_space_discard(x.r.e, "s", &err), MN_ERR_NOT_FOUND);
    mn_test_eng_reopen(&x.r);
    assert_int_equal(mn_engine_space_get(x.r.e, "s", &st, &err), MN_ERR_NOT_FOUND);
    assert_int_equal(last_lsn(x.r.e, "s", NULL), 0);
    assert_true(ship(x.p.e, x.r.e, "s") > 0);
    same_state(&x, "s");
    pair_close(&x);
    hook_free(&hr);
}

static void test_gaps_duplicates_and_bad_entries_are_refused(void **state)
{
    (void)state;
    pair x;
    pair_open(&x, false);
    make_space(x.p.e, "s");
    float v[DIM] = {1, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        char text[32];
        snprintf(text, sizeof text, "memory %d", i);
        put(&x.p, "s", text, v, NULL, NULL);
    }
    mn_test_wal w = {0};
    assert_int_equal(mn_test_wal_read(x.p.e, "s", 1, 0, &w), MN_OK);
    assert_int_equal(w.n, 5);
    const uint8_t *const *b = (const uint8_t *const *)w.bufs;
    mn_error err = {0};
    /* a missing space starts at its creation */
    assert_int_equal(mn_engine_replicate(x.r.e, "s", 2, b + 1, w.lens + 1, 1, &err),
                     MN_ERR_CONFLICT);
    assert_non_null(strstr(err.message, "expected lsn 1, got 2"));
    assert_int_equal(mn_engine_replicate(x.r.e, "s", 1, b, w.lens, 2, &err), MN_OK);
    assert_int_equal(last_lsn(x.r.e, "s", NULL), 2);
    /* a gap */
    assert_int_equal(mn_engine_replicate(x.r.e, "s", 4, b + 3, w.lens + 3, 1, &err),
                     MN_ERR_CONFLICT);
    assert_non_null(strstr(err.message, "space s: expected lsn 3, got 4"));
    /* a duplicate */
    assert_int_equal(mn_engine_replicate(x.r.e, "s", 2, b + 1, w.lens + 1, 2, &err),
                     MN_ERR_CONFLICT);
    assert_non_null(strstr(err.message, "expected lsn 3, got 2"));
    /* first_lsn that does not name the entries' own lsns */
    assert_int_equal(mn_engine_replicate(x.r.e, "s", 3, b + 3, w.lens + 3, 1, &err),
                     MN_ERR_CONFLICT);
    /* entries out of order within a batch */
    const uint8_t *swapped[2] = {b[3], b[2]};
    size_t swapped_lens[2] = {w.lens[3], w.lens[2]};
    assert_int_equal(mn_engine_replicate(x.r.e, "s", 3, swapped, swapped_lens, 2, &err),
                     MN_ERR_CONFLICT);
    /* a damaged entry (one bit) and another space's entries */
    uint8_t *bad = malloc(w.lens[2]);
    memcpy(bad, w.bufs[2], w.lens[2]);
    bad[w.lens[2] / 2] ^= 0x10;
    const uint8_t *bads[1] = {bad};
    assert_int_equal(mn_engine_replicate(x.r.e, "s", 3, bads, w.lens + 2, 1, &err), MN_ERR_CORRUPT);
    free(bad);
    assert_int_equal(mn_engine_replicate(x.r.e, "other", 3, b + 2, w.lens + 2, 1, &err),
                     MN_ERR_INVALID);
    /* a space this node leads takes no replicated entry */
    assert_int_equal(mn_engine_space_set_role(x.r.e, "s", MN_SPACE_PRIMARY, 0, &err), MN_OK);
    assert_int_equal(mn_engine_replicate(x.r.e, "s", 3, b + 2, w.lens + 2, 1, &err),
                     MN_ERR_CONFLICT);
    assert_string_equal(err.message, "space s: this node is its primary");
    assert_int_equal(mn_engine_space_set_role(x.r.e, "s", MN_SPACE_REPLICA, 0, &err), MN_OK);
    /* nothing changed, and the rest still goes in */
    assert_int_equal(last_lsn(x.r.e, "s", NULL), 2);
    assert_int_equal(mn_engine_replicate(x.r.e, "s", 3, b + 2, w.lens + 2, 3, &err), MN_OK);
    assert_int_equal(last_lsn(x.r.e, "s", NULL), 5);
    same_wal(x.p.e, x.r.e, "s");
    mn_test_wal_free(&w);
    pair_close(&x);
}

/* A watcher of the replica sees the replicated changes at the primary's lsns; a memory
 * that arrives erased (forgotten before it shipped) is never seen, neither its remember
 * nor its forget. */
static void test_replica_watchers_see_replicated_changes(void **state)
{
    (void)state;
    pair x;
    pair_open(&x, false);
    make_space(x.p.e, "s");
    ship(x.p.e, x.r.e, "s");
    mn_engine_sub_t *sub;
    mn_error err = {0};
    assert_int_equal(mn_engine_subscribe(x.r.e, "s", 0, NULL, NULL, &sub, &err), MN_OK);
    float v[DIM] = {1, 0, 0, 0};
    mn_id_t a = put(&x.p, "s", "seen on the replica", v, NULL, NULL);
    mn_id_t b = put(&x.p, "s", "forgotten before it ships", NULL, NULL, NULL);
    assert_int_equal(mn_engine_forget(x.p.e, "s", &b, MN_FORGET_DELETE, &err), MN_OK);
    assert_int_equal(mn_engine_forget(x.p.e, "s", &a, MN_FORGET_SUPPRESS, &err), MN_OK);
    assert_int_equal(ship(x.p.e, x.r.e, "s"), 4);
    mn_event_t ev[8];
    bool ended = false;
    size_t n = 0;
    while (n < 2) {
        size_t got = mn_engine_sub_next(sub, ev + n, 8 - n, 5000, &ended);
        assert_true(got > 0);
        n += got;
    }
    assert_int_equal(mn_engine_sub_next(sub, ev + n, 8 - n, 0, &ended), 0);
    assert_int_equal(ev[0].kind, MN_EVENT_REMEMBER);
    assert_int_equal(ev[0].lsn, 2);
    assert_memory_equal(ev[0].id.b, a.b, 16);
    /* lsn 3 arrives as an erased stub and lsn 4, its forget, changes nothing here */
    assert_int_equal(ev[1].kind, MN_EVENT_FORGET);
    assert_int_equal(ev[1].lsn, 5);
    assert_memory_equal(ev[1].id.b, a.b, 16);
    assert_int_equal(ev[1].forget_mode, MN_FORGET_SUPPRESS);
    mn_engine_unsubscribe(sub);
    pair_close(&x);
}

/* An entry the primary stored with nothing in it (a remember whose memories were all
 * here already: an ingested copy of its own entry) still takes its lsn on the replica. */
static void test_an_empty_entry_keeps_its_lsn(void **state)
{
    (void)state;
    pair x;
    pair_open(&x, false);
    make_space(x.p.e, "s");
    float v[DIM] = {1, 0, 0, 0};
    put(&x.p, "s", "only once", v, NULL, NULL);
    mn_test_wal w = {0};
    assert_int_equal(mn_test_wal_read(x.p.e, "s", 2, 1, &w), MN_OK);
    mn_error err = {0};
    assert_int_equal(mn_engine_ingest(x.p.e, w.bufs[0], w.lens[0], &err), MN_OK);
    mn_test_wal_free(&w);
    assert_int_equal(mn_test_wal_read(x.p.e, "s", 3, 1, &w), MN_OK);
    mn_wal_entry_t en;
    assert_int_equal(mn_wire_wal_decode(w.bufs[0], w.lens[0], &en, &err), MN_OK);
    assert_int_equal(en.type, MN_WAL_OP_REMEMBER);
    assert_int_equal(en.op.remember.n, 0);
    mn_wal_entry_clear(&en);
    mn_test_wal_free(&w);
    put(&x.p, "s", "after it", NULL, NULL, NULL);
    assert_int_equal(ship(x.p.e, x.r.e, "s"), 4);
    same_wal(x.p.e, x.r.e, "s");
    assert_int_equal(same_list(x.p.e, x.r.e, "s"), 2);
    pair_close(&x);
}

/* Every client write fails with MN_ERR_UNAVAILABLE on a replica, and its background work
 * (reinforcement, expiry, consolidation, the backfill's scan) writes nothing. */
static void test_replica_takes_no_writes(void **state)
{
    (void)state;
    pair x;
    pair_open(&x, false);
    mn_id_t keep[3];
    workload_a(&x.p, keep);
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = "expires soon";
    m.content_len = strlen(m.content);
    m.ttl_seconds = 1;
    mn_id_t eph;
    mn_error err = {0};
    assert_int_equal(mn_engine_remember(x.p.e, "s", &m, 1, &eph, &err), MN_OK);
    ship(x.p.e, x.r.e, "s");
    uint64_t before = last_lsn(x.r.e, "s", NULL);
    mn_engine_t *r = x.r.e;
    assert_int_equal(mn_engine_remember(r, "s", &m, 1, &eph, &err), MN_ERR_UNAVAILABLE);
    assert_string_equal(err.message, "space s: this node is not its primary");
    assert_int_equal(mn_engine_forget(r, "s", &keep[0], MN_FORGET_DELETE, &err),
                     MN_ERR_UNAVAILABLE);
    assert_int_equal(mn_engine_forget(r, "s", &keep[0], MN_FORGET_SUPPRESS, &err),
                     MN_ERR_UNAVAILABLE);
    assert_int_equal(mn_engine_unsuppress(r, "s", &keep[0], &err), MN_ERR_UNAVAILABLE);
    mn_edge_t edge = {.from = keep[0], .to = keep[2], .kind = MN_EDGE_CAUSAL, .weight = 0.5f};
    assert_int_equal(mn_engine_associate(r, "s", &edge, 1, &err), MN_ERR_UNAVAILABLE);
    mn_update_req_t u = {.content = "x", .content_len = 1};
    assert_int_equal(mn_engine_update(r, "s", &keep[0], &u, NULL, &err), MN_ERR_UNAVAILABLE);
    assert_int_equal(mn_engine_invalidate(r, "s", &keep[0], NULL, NULL, NULL, &err),
                     MN_ERR_UNAVAILABLE);
    mn_forget_progress_t pr;
    assert_int_equal(
        mn_engine_forget_ids(r, "s", MN_FORGET_DELETE, keep, 1, 0, NULL, NULL, &pr, &err),
        MN_ERR_UNAVAILABLE);
    mn_consolidate_opts_t o = {.threshold = 0.5f, .min_support = 2};
    mn_consolidate_result_t cr;
    assert_int_equal(mn_engine_consolidate(r, "s", &o, &cr, &err), MN_ERR_UNAVAILABLE);
    float v[DIM] = {0, 0, 0, 1};
    const float *vs[1] = {v};
    mn_err rcs[1];
    assert_int_equal(mn_engine_embed(r, "s", &keep[0], vs, DIM, 1, rcs, &err), MN_ERR_UNAVAILABLE);
    uint32_t cursor = 0;
    mn_id_t un[4];
    size_t nu;
    assert_int_equal(mn_engine_unembedded(r, "s", &cursor, 4, un, &nu, &err), MN_ERR_UNAVAILABLE);
    assert_int_equal(mn_engine_space_drop(r, "s", &err), MN_ERR_UNAVAILABLE);
    /* background: a reinforcing recall, expiry past the TTL */
    x.r.now = x.p.now + 3600 * 1000;
    recall_reinforce(&x.r, "s");
    size_t expired = 99;
    assert_int_equal(mn_engine_expire(r, &expired, &err), MN_OK);
    assert_int_equal(expired, 0);
    mn_engine_wait_background(r);
    assert_int_equal(last_lsn(r, "s", NULL), before);
    /* reads still work */
    mn_memory_t got;
    assert_int_equal(mn_engine_get(r, "s", &keep[0], false, &got, &err), MN_OK);
    mn_memory_clear(&got);
    pair_close(&x);
}

/* Failover: the replica becomes primary at epoch 2, its writes carry epoch 2 and a later
 * hlc than anything it replicated (its clock is an hour behind), and the old primary,
 * made a replica, takes them. */
static void test_promotion_carries_the_new_epoch(void **state)
{
    (void)state;
    pair x;
    pair_open(&x, false);
    mn_id_t keep[3];
    workload_a(&x.p, keep);
    ship(x.p.e, x.r.e, "s");
    x.r.now = x.p.now - 3600 * 1000;
    mn_error err = {0};
    uint64_t last = last_lsn(x.r.e, "s", NULL);
    mn_test_wal w = {0};
    assert_int_equal(mn_test_wal_read(x.r.e, "s", last, 0, &w), MN_OK);
    mn_wal_entry_t en;
    assert_int_equal(mn_wire_wal_decode(w.bufs[0], w.lens[0], &en, &err), MN_OK);
    uint64_t hlc_before = en.hlc;
    mn_wal_entry_clear(&en);
    mn_test_wal_free(&w);
    /* an epoch below the last entry's is refused */
    assert_int_equal(mn_engine_space_set_role(x.r.e, "s", MN_SPACE_PRIMARY, 2, &err), MN_OK);
    assert_int_equal(mn_engine_space_set_role(x.p.e, "s", MN_SPACE_REPLICA, 0, &err), MN_OK);
    float v[DIM] = {0, 1, 1, 0};
    mn_id_t id = put(&x.r, "s", "written by the new primary", v, NULL, NULL);
    uint64_t epoch;
    assert_int_equal(last_lsn(x.r.e, "s", &epoch), last + 1);
    assert_int_equal(epoch, 2);
    assert_int_equal(mn_test_wal_read(x.r.e, "s", last + 1, 0, &w), MN_OK);
    assert_int_equal(w.n, 1);
    assert_int_equal(mn_wire_wal_decode(w.bufs[0], w.lens[0], &en, &err), MN_OK);
    assert_int_equal(en.epoch, 2);
    assert_true(en.hlc > hlc_before);
    mn_wal_entry_clear(&en);
    mn_test_wal_free(&w);
    /* the old primary follows */
    assert_int_equal(ship(x.r.e, x.p.e, "s"), 1);
    mn_memory_t got;
    assert_int_equal(mn_engine_get(x.p.e, "s", &id, false, &got, &err), MN_OK);
    mn_memory_clear(&got);
    assert_int_equal(last_lsn(x.p.e, "s", &epoch), last + 1);
    assert_int_equal(epoch, 2);
    same_wal(x.p.e, x.r.e, "s");
    /* restarted without spaces_start_replica, the old primary leads at the log's epoch */
    mn_test_eng_reopen(&x.p);
    put(&x.p, "s", "after a restart", NULL, NULL, NULL);
    assert_int_equal(last_lsn(x.p.e, "s", &epoch), last + 2);
    assert_int_equal(epoch, 2);
    /* the new primary cannot go back to epoch 1 */
    assert_int_equal(mn_engine_space_set_role(x.r.e, "s", MN_SPACE_PRIMARY, 1, &err),
                     MN_ERR_CONFLICT);
    /* the dedup index came along: the same memory again is a duplicate on the new primary */
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = "written by the new primary";
    m.content_len = strlen(m.content);
    m.embedding = v;
    m.dim = DIM;
    mn_id_t again;
    bool dup = false;
    x.r.now += 1000;
    assert_int_equal(mn_engine_remember_dedup(x.r.e, "s", &m, 1, &again, &dup, &err), MN_OK);
    assert_true(dup);
    assert_memory_equal(again.b, id.b, 16);
    pair_close(&x);
}

/* The hook hears every entry once, in lsn order, with its epoch: client writes,
 * background writes and replicated entries alike. */
static void test_hook_hears_each_durable_entry(void **state)
{
    (void)state;
    pair x;
    pair_open(&x, false);
    hook_log hp, hr;
    hook_init(&hp);
    hook_init(&hr);
    mn_engine_set_wal_hook(x.p.e, on_entry, &hp);
    mn_engine_set_wal_hook(x.r.e, on_entry, &hr);
    mn_id_t keep[3];
    workload_a(&x.p, keep);
    ship(x.p.e, x.r.e, "s");
    uint64_t last = last_lsn(x.p.e, "s", NULL);
    assert_int_equal(hp.n, last);
    assert_int_equal(hr.n, last);
    for (size_t i = 0; i < last; i++) {
        assert_string_equal(hp.items[i].space, "s");
        assert_int_equal(hp.items[i].lsn, i + 1);
        assert_int_equal(hp.items[i].epoch, 1);
        assert_int_equal(hr.items[i].lsn, i + 1);
        assert_int_equal(hr.items[i].epoch, 1);
    }
    /* the replica, promoted at epoch 3, hears its own write at 3 */
    mn_error err = {0};
    assert_int_equal(mn_engine_space_set_role(x.r.e, "s", MN_SPACE_PRIMARY, 3, &err), MN_OK);
    put(&x.r, "s", "after the promotion", NULL, NULL, NULL);
    assert_int_equal(hr.n, last + 1);
    assert_int_equal(hr.items[last].lsn, last + 1);
    assert_int_equal(hr.items[last].epoch, 3);
    /* cleared: no more calls */
    mn_engine_set_wal_hook(x.p.e, NULL, NULL);
    put(&x.p, "s", "unheard", NULL, NULL, NULL);
    assert_int_equal(hp.n, last);
    pair_close(&x);
    hook_free(&hp);
    hook_free(&hr);
}

/* spaces_start_replica: after a restart no space takes writes until it is made primary;
 * without it every space opens primary, as in single-node mode. */
static void test_spaces_start_replica_across_a_restart(void **state)
{
    (void)state;
    mn_test_eng t = {0};
    mn_test_eng_init(&t, "mnemo-repl-start");
    mn_test_eng_open(&t);
    make_space(t.e, "s");
    put(&t, "s", "before the restart", NULL, NULL, NULL);
    mn_error err = {0};
    mn_space_role_t role;
    assert_int_equal(mn_engine_space_role(t.e, "s", &role, &err), MN_OK);
    assert_int_equal(role, MN_SPACE_PRIMARY);
    t.opts.spaces_start_replica = true;
    mn_test_eng_reopen(&t);
    assert_int_equal(mn_engine_space_role(t.e, "s", &role, &err), MN_OK);
    assert_int_equal(role, MN_SPACE_REPLICA);
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = "refused";
    m.content_len = 7;
    mn_id_t id;
    assert_int_equal(mn_engine_remember(t.e, "s", &m, 1, &id, &err), MN_ERR_UNAVAILABLE);
    /* a space created by a client here leads at once */
    make_space(t.e, "fresh");
    assert_int_equal(mn_engine_remember(t.e, "fresh", &m, 1, &id, &err), MN_OK);
    assert_int_equal(mn_engine_space_set_role(t.e, "s", MN_SPACE_PRIMARY, 0, &err), MN_OK);
    assert_int_equal(mn_engine_remember(t.e, "s", &m, 1, &id, &err), MN_OK);
    uint64_t epoch;
    assert_int_equal(last_lsn(t.e, "s", &epoch), 3);
    assert_int_equal(epoch, 1);
    t.opts.spaces_start_replica = false;
    mn_test_eng_reopen(&t);
    assert_int_equal(mn_engine_space_role(t.e, "s", &role, &err), MN_OK);
    assert_int_equal(role, MN_SPACE_PRIMARY);
    assert_int_equal(mn_engine_space_set_role(t.e, "nope", MN_SPACE_PRIMARY, 0, &err),
                     MN_ERR_NOT_FOUND);
    assert_int_equal(mn_engine_space_set_role(t.e, "s", (mn_space_role_t)7, 0, &err),
                     MN_ERR_INVALID);
    mn_test_eng_free(&t);
}

/* A primary whose lease bound passed takes no write (a clear error, nothing stored); a bound
 * ahead, or none, lets writes through; a replica is refused as before. */
static void test_a_lapsed_lease_refuses_writes_before_they_are_stored(void **state)
{
    (void)state;
    mn_test_eng t = {0};
    mn_test_eng_init(&t, "mnemo-repl-lease");
    mn_test_eng_open(&t);
    make_space(t.e, "s");
    put(&t, "s", "before", NULL, NULL, NULL);
    mn_error err = {0};
    mn_memory_t m;
    mn_memory_init(&m);
    m.content = "after the lease";
    m.content_len = strlen(m.content);
    mn_id_t id;
    int64_t now = mn_time_mono_ns();
    assert_int_equal(mn_engine_space_set_lease(t.e, "s", now - 1, &err), MN_OK);
    assert_int_equal(mn_engine_remember(t.e, "s", &m, 1, &id, &err), MN_ERR_UNAVAILABLE);
    assert_non_null(strstr(err.message, "lease"));
    uint64_t epoch;
    assert_int_equal(last_lsn(t.e, "s", &epoch), 2); /* the create and "before" only */
    assert_int_equal(mn_engine_space_set_lease(t.e, "s", now + 3600LL * 1000000000, &err), MN_OK);
    assert_int_equal(mn_engine_remember(t.e, "s", &m, 1, &id, &err), MN_OK);
    assert_int_equal(mn_engine_space_set_lease(t.e, "s", 0, &err), MN_OK); /* no bound */
    m.content = "no bound";
    m.content_len = strlen(m.content);
    assert_int_equal(mn_engine_remember(t.e, "s", &m, 1, &id, &err), MN_OK);
    assert_int_equal(last_lsn(t.e, "s", &epoch), 4);
    assert_int_equal(mn_engine_space_set_lease(t.e, "nope", 1, &err), MN_ERR_NOT_FOUND);
    mn_test_eng_free(&t);
}

/* A read from below the first kept lsn says the entries were trimmed. */
static void test_wal_read_of_trimmed_entries_is_gone(void **state)
{
    (void)state;
    mn_test_eng t = {0};
    mn_test_eng_init(&t, "mnemo-repl-trim");
    t.opts.wal_retain_entries = 5;
    mn_test_eng_open(&t);
    make_space(t.e, "s");
    for (int i = 0; i < 12; i++) {
        char text[32];
        snprintf(text, sizeof text, "memory %d", i);
        put(&t, "s", text, NULL, NULL, NULL);
    }
    mn_error err = {0};
    assert_int_equal(mn_engine_trim_wal(t.e, &err), MN_OK);
    mn_space_stats_t st;
    assert_int_equal(mn_engine_space_get(t.e, "s", &st, &err), MN_OK);
    assert_int_equal(st.last_lsn, 13);
    assert_int_equal(st.wal_first_lsn, 9);
    mn_test_wal w = {0};
    assert_int_equal(mn_test_wal_read(t.e, "s", 1, 0, &w), MN_ERR_GONE);
    assert_int_equal(mn_test_wal_read(t.e, "s", 8, 0, &w), MN_ERR_GONE);
    assert_int_equal(w.n, 0);
    assert_int_equal(mn_test_wal_read(t.e, "s", 9, 0, &w), MN_OK);
    assert_int_equal(w.n, 5);
    mn_test_wal_free(&w);
    assert_int_equal(mn_test_wal_read(t.e, "s", 0, 0, &w), MN_OK); /* from the first kept */
    assert_int_equal(w.n, 5);
    mn_test_wal_free(&w);
    assert_int_equal(mn_test_wal_read(t.e, "s", 14, 0, &w), MN_OK); /* past the end */
    assert_int_equal(w.n, 0);
    mn_test_eng_free(&t);
}

/* ---- snapshots (snapshot*.c) ---- */

#define SNAP_TEST_FLAGS 5 /* the flags byte of a chunk (engine/snapshot.h) */

typedef struct chunks {
    uint8_t **bufs;
    size_t *lens;
    size_t n;
} chunks;

/* Every chunk of a snapshot of space, asking each up to 3 times (a resumed transfer gets the
 * same bytes); *info its position. */
static void export_all(mn_engine_t *e, const char *space, size_t chunk_bytes, chunks *c,
                       mn_snapshot_info_t *info)
{
    mn_snapshot_t *s;
    mn_error err = {0};
    if (mn_engine_snapshot_open(e, space, chunk_bytes, &s, &err)) fail_msg("open: %s", err.message);
    mn_engine_snapshot_info(s, info);
    memset(c, 0, sizeof *c);
    bool last = false;
    for (uint32_t seq = 0; !last; seq++) {
        c->bufs = realloc(c->bufs, (seq + 1) * sizeof *c->bufs);
        c->lens = realloc(c->lens, (seq + 1) * sizeof *c->lens);
        assert_non_null(c->bufs);
        assert_non_null(c->lens);
        assert_int_equal(
            mn_engine_snapshot_chunk(s, seq, &c->bufs[seq], &c->lens[seq], &last, &err), MN_OK);
        c->n = seq + 1;
        uint64_t id;
        uint32_t peek;
        assert_true(mn_engine_snapshot_chunk_peek(c->bufs[seq], c->lens[seq], &id, &peek));
        assert_int_equal(id, info->id);
        assert_int_equal(peek, seq);
        if (seq >= 2) { /* resume two chunks back: the same bytes */
            uint8_t *again;
            size_t len;
            bool l2;
            assert_int_equal(mn_engine_snapshot_chunk(s, seq - 2, &again, &len, &l2, &err), MN_OK);
            assert_int_equal(len, c->lens[seq - 2]);
            assert_memory_equal(again, c->bufs[seq - 2], len);
            assert_false(l2);
            free(again);
        }
    }
    uint8_t *past;
    size_t len;
    bool l3;
    assert_int_equal(mn_engine_snapshot_chunk(s, (uint32_t)c->n, &past, &len, &l3, &err),
                     MN_ERR_INVALID);
    mn_engine_snapshot_close(s);
}

static void chunks_free(chunks *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->bufs[i]);
    free(c->bufs);
    free(c->lens);
}

static void install_all(mn_engine_t *e, const char *space, const chunks *c,
                        mn_snapshot_info_t *info)
{
    mn_snapshot_install_t *in;
    mn_error err = {0};
    if (mn_engine_snapshot_install_begin(e, space, &in, &err)) fail_msg("begin: %s", err.message);
    for (size_t i = 0; i < c->n; i++) {
        assert_int_equal(mn_engine_snapshot_install_next(in), i);
        if (mn_engine_snapshot_install_chunk(in, c->bufs[i], c->lens[i], &err))
            fail_msg("chunk %zu: %s", i, err.message);
    }
    assert_true(mn_engine_snapshot_install_complete(in));
    if (mn_engine_snapshot_install_finish(in, info, &err)) fail_msg("finish: %s", err.message);
}

/* The primary writes, trims its WAL and moves to epoch 3; a replica holding an old copy,
 * and one holding none, each install its snapshot and end in its state, then take its
 * later entries through mn_engine_replicate, and keep it all across a restart. */
static void test_snapshot_install_matches_the_primary(void **state)
{
    (void)state;
    pair x;
    pair_open(&x, true);
    mn_test_eng fresh = {0};
    mn_test_eng_init(&fresh, "mnemo-snap-fresh");
    mn_test_eng_open(&fresh);
    mn_id_t keep[3];
    workload_a(&x.p, keep);
    ship(x.p.e, x.r.e, "s"); /* the replica's old copy */
    mn_error err = {0};
    assert_int_equal(mn_engine_space_set_role(x.p.e, "s", MN_SPACE_PRIMARY, 3, &err), MN_OK);
    workload_b(&x.p, keep, false);
    put_batch(&x.p, "s", 6, "late", 1);
    mn_engine_wait_background(x.p.e);
    uint64_t epoch = 0, lsn = last_lsn(x.p.e, "s", &epoch);
    assert_int_equal(epoch, 3);
    chunks c;
    mn_snapshot_info_t info, got;
    export_all(x.p.e, "s", 300, &c, &info);
    assert_true(c.n > 5); /* small chunks: many */
    assert_int_equal(info.last_lsn, lsn);
    assert_int_equal(info.last_epoch, 3);
    install_all(x.r.e, "s", &c, &got);
    assert_int_equal(got.last_lsn, lsn);
    x.r.now = x.p.now;
    same_state(&x, "s");
    mn_space_role_t role;
    assert_int_equal(mn_engine_space_role(x.r.e, "s", &role, &err), MN_OK);
    assert_int_equal(role, MN_SPACE_REPLICA);
    install_all(fresh.e, "s", &c, &got); /* no copy before */
    pair y = {.p = x.p, .r = fresh};
    y.r.now = x.p.now;
    same_state(&y, "s");
    /* replication goes on from the snapshot's lsn */
    put(&x.p, "s", "after the snapshot, coffee again", NULL, "after", NULL);
    put_batch(&x.p, "s", 3, "after", 3);
    assert_true(ship(x.p.e, x.r.e, "s") >= 2);
    x.r.now = x.p.now;
    same_state(&x, "s");
    mn_test_eng_reopen(&x.r);
    same_state(&x, "s");
    chunks_free(&c);
    mn_test_eng_free(&fresh);
    pair_close(&x);
}

/* A chunk damaged in transit, out of order, of another export or of another space is
 * refused and changes nothing; an install cut short leaves the replica's copy as it was;
 * a primary's copy is never replaced. */
static void test_snapshot_bad_chunks_leave_the_target_intact(void **state)
{
    (void)state;
    pair x;
    pair_open(&x, false);
    mn_id_t keep[3];
    workload_a(&x.p, keep);
    ship(x.p.e, x.r.e, "s");
    put_batch(&x.p, "s", 8, "more", 1);
    x.r.now = x.p.now;
    uint64_t before = last_lsn(x.r.e, "s", NULL);
    chunks c, other;
    mn_snapshot_info_t info;
    export_all(x.p.e, "s", 256, &c, &info);
    export_all(x.p.e, "s", 256, &other, &info);
    assert_true(c.n >= 4);
    mn_error err = {0};
    mn_snapshot_install_t *in;
    assert_int_equal(mn_engine_snapshot_install_begin(x.r.e, "s", &in, &err), MN_OK);
    assert_int_equal(mn_engine_snapshot_install_chunk(in, c.bufs[1], c.lens[1], &err),
                     MN_ERR_CONFLICT); /* out of order */
    assert_int_equal(mn_engine_snapshot_install_chunk(in, c.bufs[0], c.lens[0], &err), MN_OK);
    assert_int_equal(mn_engine_snapshot_install_chunk(in, other.bufs[1], other.lens[1], &err),
                     MN_ERR_CONFLICT); /* another export */
    c.bufs[1][c.lens[1] / 2] ^= 0x40;
    assert_int_equal(mn_engine_snapshot_install_chunk(in, c.bufs[1], c.lens[1], &err),
                     MN_ERR_CORRUPT);
    assert_non_null(strstr(err.message, "checksum"));
    assert_int_equal(mn_engine_snapshot_install_chunk(in, c.bufs[1], c.lens[1] - 3, &err),
                     MN_ERR_CORRUPT); /* torn */
    assert_int_equal(mn_engine_snapshot_install_next(in), 1);
    c.bufs[1][c.lens[1] / 2] ^= 0x40; /* asked again, whole this time */
    for (size_t i = 1; i + 1 < c.n; i++)
        assert_int_equal(mn_engine_snapshot_install_chunk(in, c.bufs[i], c.lens[i], &err), MN_OK);
    assert_true(mn_test_count_stored(x.r.e, "more number 7", 13) > 0); /* staged */
    c.bufs[c.n - 1][SNAP_TEST_FLAGS] ^= 1; /* a bit of its header flipped */
    assert_int_equal(mn_engine_snapshot_install_chunk(in, c.bufs[c.n - 1], c.lens[c.n - 1], &err),
                     MN_ERR_CORRUPT);
    c.bufs[c.n - 1][SNAP_TEST_FLAGS] ^= 1;
    assert_false(mn_engine_snapshot_install_complete(in));
    assert_int_equal(mn_engine_snapshot_install_finish(in, NULL, &err), MN_ERR_CONFLICT);
    assert_int_equal(mn_test_count_stored(x.r.e, "more number 7", 13), 0); /* unstaged */
    assert_int_equal(last_lsn(x.r.e, "s", NULL), before);                  /* the old copy, whole */
    mn_list_req_t q = {.limit = 1000};
    mn_filter_init(&q.filter);
    mn_list_result_t l;
    assert_int_equal(mn_engine_list(x.r.e, "s", &q, &l, &err), MN_OK);
    size_t n_before = l.n;
    mn_list_result_clear(&l);
    assert_true(n_before > 0);
    /* another space's snapshot is refused at its manifest */
    assert_int_equal(mn_engine_snapshot_install_begin(x.r.e, "u", &in, &err), MN_OK);
    assert_int_equal(mn_engine_snapshot_install_chunk(in, c.bufs[0], c.lens[0], &err),
                     MN_ERR_CONFLICT);
    mn_engine_snapshot_install_abort(in);
    /* the primary's copy: never */
    assert_int_equal(mn_engine_snapshot_install_begin(x.p.e, "s", &in, &err), MN_ERR_CONFLICT);
    mn_test_eng_reopen(&x.r); /* nothing staged is left to load */
    assert_int_equal(last_lsn(x.r.e, "s", NULL), before);
    assert_int_equal(mn_engine_list(x.r.e, "s", &q, &l, &err), MN_OK);
    assert_int_equal(l.n, n_before);
    mn_list_result_clear(&l);
    assert_int_equal(mn_engine_space_set_role(x.r.e, "s", MN_SPACE_REPLICA, 0, &err), MN_OK);
    install_all(x.r.e, "s", &c, &info); /* and the whole snapshot still goes in */
    same_state(&x, "s");
    chunks_free(&c);
    chunks_free(&other);
    pair_close(&x);
}

/* mn_engine_write_taken names the entry this thread's own write made, not the log's last:
 * another thread's later write does not move it; a call that wrote nothing leaves none. */
typedef struct bg_put {
    mn_test_eng *t;
    uint64_t lsn;
} bg_put;

static void *other_thread_writes(void *arg)
{
    bg_put *b = arg;
    mn_engine_write_begin();
    put(b->t, "s", "written by another thread", NULL, NULL, NULL);
    uint64_t ep = 0;
    if (!mn_engine_write_taken("s", &b->lsn, &ep)) b->lsn = 0;
    return NULL;
}

static void test_the_write_taken_is_this_threads_own_entry(void **state)
{
    (void)state;
    mn_test_eng t;
    mn_test_eng_init(&t, "mnemo-taken");
    mn_test_eng_open(&t);
    make_space(t.e, "s");
    make_space(t.e, "other");
    uint64_t lsn = 0, epoch = 0, ep = 0;
    mn_engine_write_begin();
    assert_false(mn_engine_write_taken("s", &lsn, &epoch));
    put(&t, "s", "mine", NULL, NULL, NULL);
    assert_true(mn_engine_write_taken("s", &lsn, &epoch));
    assert_int_equal(lsn, last_lsn(t.e, "s", &ep));
    assert_int_equal(epoch, ep);
    assert_false(mn_engine_write_taken("other", &lsn, &epoch)); /* named by space */
    uint64_t mine = lsn;
    bg_put b = {&t, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, other_thread_writes, &b), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(b.lsn, mine + 1);
    assert_true(mn_engine_write_taken("s", &lsn, &epoch));
    assert_int_equal(lsn, mine); /* still this thread's entry, not the log's last */
    /* a forget is an entry too; forgetting it again writes nothing */
    mn_id_t id = put(&t, "s", "to forget", NULL, NULL, NULL);
    mn_error err = {0};
    mn_engine_write_begin();
    assert_int_equal(mn_engine_forget(t.e, "s", &id, MN_FORGET_DELETE, &err), MN_OK);
    assert_true(mn_engine_write_taken("s", &lsn, &epoch));
    assert_int_equal(lsn, last_lsn(t.e, "s", NULL));
    mn_engine_write_begin();
    mn_engine_forget(t.e, "s", &id, MN_FORGET_DELETE, &err);
    assert_false(mn_engine_write_taken("s", &lsn, &epoch));
    /* an exact duplicate writes nothing */
    mn_engine_write_begin();
    put(&t, "s", "mine", NULL, NULL, NULL);
    assert_false(mn_engine_write_taken("s", &lsn, &epoch));
    mn_test_eng_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replica_matches_primary_and_survives_a_restart),
        cmocka_unit_test(test_erasures_read_late_leave_the_same_log),
        cmocka_unit_test(test_a_semantic_memory_read_late_keeps_what_came_between),
        cmocka_unit_test(test_replicated_drop_drops_the_space),
        cmocka_unit_test(test_a_discarded_replica_copy_is_gone_and_comes_back_by_shipping),
        cmocka_unit_test(test_shipping_while_the_primary_writes),
        cmocka_unit_test(test_gaps_duplicates_and_bad_entries_are_refused),
        cmocka_unit_test(test_an_empty_entry_keeps_its_lsn),
        cmocka_unit_test(test_replica_watchers_see_replicated_changes),
        cmocka_unit_test(test_replica_takes_no_writes),
        cmocka_unit_test(test_promotion_carries_the_new_epoch),
        cmocka_unit_test(test_the_write_taken_is_this_threads_own_entry),
        cmocka_unit_test(test_hook_hears_each_durable_entry),
        cmocka_unit_test(test_spaces_start_replica_across_a_restart),
        cmocka_unit_test(test_a_lapsed_lease_refuses_writes_before_they_are_stored),
        cmocka_unit_test(test_wal_read_of_trimmed_entries_is_gone),
        cmocka_unit_test(test_snapshot_install_matches_the_primary),
        cmocka_unit_test(test_snapshot_bad_chunks_leave_the_target_intact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
