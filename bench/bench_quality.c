/* Recall quality on seeded agent histories (issue: cognitive recall, evidence).
 *
 * Generator: T topics, each an embedding cluster (a random unit centre plus
 * Gaussian spread) with its own 40-word vocabulary; sessions of consecutive
 * episodes on one topic, one minute apart; an episode says six topic words,
 * two common ones and one rare word of its own.
 * Queries of three kinds, each with a single right answer; like an agent's
 * cue, the words and the vector describe the same thing:
 *   direct   the answer's vector plus noise, with the answer's topic words
 *   one-hop  a cue close to episode X (its vector plus noise and its topic
 *            words); the answer is X's next episode in its session (reachable
 *            through the temporal link, not by similarity)
 *   keyword  the answer's rare word, with a weak vector (the topic's centre
 *            plus noise: every episode of the topic is about as similar)
 * Each query runs three ways: similarity only (vector), hybrid (vector + words,
 * RRF) and hybrid + spreading activation. Prints recall@5 and MRR per kind and
 * mode, for two settings:
 *   easy  cue noise 0.3, the answer's six topic words: direct queries sit at
 *         the ceiling (1.000) in every mode;
 *   hard  cue noise 3.5 (the answer's vector plus noise of norm ~3.5, where
 *         the topic's episodes spread 1.2 around its centre: other episodes of
 *         the topic compete), and only two of the answer's topic words, which
 *         other episodes of the topic share: direct queries come off the
 *         ceiling, so "spreading loses nothing on direct queries" is measured
 *         where it could.
 * Then consolidation: clusters found vs planted topics (adjusted Rand index)
 * and run time, on a fresh space of N episodes, for an easy spread (0.5: cos
 * to the centre ~0.89, threshold 0.75) and a hard one (0.7: cos ~0.82, near
 * the threshold: some episodes start clusters of their own), each run twice
 * (the second run recomputes the same clusters and writes nothing).
 * Usage: mn_bench_quality --dir EMPTY_DIR [--topics 20] [--sessions 40]
 *        [--per-session 8] [--queries 200] [--dim 64] [--consolidate-n 100000] [--seed 1]
 *        [--hop-decay 0.5] [--hard-noise 3.5] [--hard-spread 0.7 (0 = skip)] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/engine.h"

typedef struct opts {
    const char *dir;
    int topics, sessions, per_session, queries, dim, consolidate_n;
    uint64_t seed;
    float hop_decay;   /* 0 = the engine's default */
    float hard_spread; /* consolidation's hard setting (0 = skip it) */
    float hard_noise;  /* recall's hard setting: cue noise */
} opts;

static double gauss(mn_prng_t *p)
{
    double u = mn_prng_double(p), v = mn_prng_double(p);
    if (u < 1e-12) u = 1e-12;
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static void unit_random(mn_prng_t *p, float *v, int dim)
{
    double n = 0;
    for (int i = 0; i < dim; i++) {
        v[i] = (float)gauss(p);
        n += (double)v[i] * v[i];
    }
    for (int i = 0; i < dim; i++) v[i] = (float)(v[i] / sqrt(n));
}

static void around(mn_prng_t *p, const float *centre, float spread, float *out, int dim)
{
    for (int i = 0; i < dim; i++) out[i] = centre[i] + spread * (float)gauss(p) / sqrtf((float)dim);
}

#define VOCAB 40 /* words per topic */
static const char *common[8] = {"the", "and", "then", "with", "about", "later", "today", "also"};
static const char *syll[] = {"ka", "lo", "mi", "ren", "tu", "sa", "vo", "qui", "der", "pha", "ny", "zo"};

static void word(mn_prng_t *p, char *out, int parts)
{
    out[0] = '\0';
    for (int i = 0; i < parts; i++) strcat(out, syll[mn_prng_below(p, 12)]);
}

typedef struct episode {
    mn_id_t id;
    float *vec;
    int topic, session, pos;
    char rare[32];
    char words[200];    /* its topic and common words (the content without the rare word) */
    int topic_word[6];  /* indexes of its six topic words in the topic's vocabulary */
} episode;

static void die(const char *what, const mn_error *err)
{
    fprintf(stderr, "%s: %s\n", what, err->message);
    exit(1);
}

enum { DIRECT, ONEHOP, KEYWORD, KINDS };
enum { SIM, HYBRID, SPREAD, MODES };
static const char *kind_names[KINDS] = {"direct", "one-hop", "keyword"};
static const char *mode_names[MODES] = {"similarity", "hybrid", "hybrid+activation"};

static double ari(const int *a, const int *b, int n, int ka, int kb)
{
    /* adjusted Rand index (Hubert & Arabie 1985) from the contingency table */
    long *t = calloc((size_t)ka * kb, sizeof *t), *ra = calloc(ka, sizeof *ra),
         *rb = calloc(kb, sizeof *rb);
    for (int i = 0; i < n; i++) {
        t[(size_t)a[i] * kb + b[i]]++;
        ra[a[i]]++;
        rb[b[i]]++;
    }
    double sum = 0, sa = 0, sb = 0;
    for (long i = 0; i < (long)ka * kb; i++) sum += t[i] * (t[i] - 1) / 2.0;
    for (int i = 0; i < ka; i++) sa += ra[i] * (ra[i] - 1) / 2.0;
    for (int i = 0; i < kb; i++) sb += rb[i] * (rb[i] - 1) / 2.0;
    double total = n * (n - 1) / 2.0, expected = sa * sb / total, max = (sa + sb) / 2;
    free(t);
    free(ra);
    free(rb);
    return max == expected ? 1.0 : (sum - expected) / (max - expected);
}

/* One recall-quality setting on a fresh space: cue noise, and how many of the
 * answer's topic words a direct or one-hop cue carries (0 = all its words). */
static void recall_quality(mn_engine_t *e, const opts *o, const char *space, const float *centres,
                           char (*vocab)[VOCAB][16], mn_prng_t *p, float cue_noise,
                           int words_kept, const char *label)
{
    mn_error err = {0};
    int dim = o->dim;
    mn_space_def_t d = {.dim = (uint32_t)dim, .metric = MN_METRIC_COSINE};
    snprintf(d.name, sizeof d.name, "%s", space);
    if (mn_engine_space_create(e, &d, NULL, &err)) die("space", &err);
    int n_ep = o->sessions * o->per_session;
    episode *eps = calloc((size_t)n_ep, sizeof *eps);
    int64_t t0 = mn_time_now_ms() - (int64_t)n_ep * 60000;
    for (int s = 0; s < o->sessions; s++) {
        int topic = (int)mn_prng_below(p, (uint64_t)o->topics);
        char session[32];
        snprintf(session, sizeof session, "session-%d", s);
        for (int i = 0; i < o->per_session; i++) {
            episode *ep = &eps[s * o->per_session + i];
            ep->topic = topic;
            ep->session = s;
            ep->pos = i;
            ep->vec = malloc(dim * sizeof(float));
            around(p, centres + (size_t)topic * dim, 1.2f, ep->vec, dim);
            snprintf(ep->rare, sizeof ep->rare, "zx%04dq", s * o->per_session + i);
            for (int w = 0; w < 6; w++) ep->topic_word[w] = (int)mn_prng_below(p, VOCAB);
            /* six topic words and two common ones */
            snprintf(ep->words, sizeof ep->words, "%s %s %s %s %s %s %s %s",
                     vocab[topic][ep->topic_word[0]], common[mn_prng_below(p, 8)],
                     vocab[topic][ep->topic_word[1]], vocab[topic][ep->topic_word[2]],
                     vocab[topic][ep->topic_word[3]], common[mn_prng_below(p, 8)],
                     vocab[topic][ep->topic_word[4]], vocab[topic][ep->topic_word[5]]);
            char content[256];
            snprintf(content, sizeof content, "%s (%s)", ep->words, ep->rare);
            mn_memory_t m;
            mn_memory_init(&m);
            m.content = content;
            m.content_len = strlen(content);
            m.embedding = ep->vec;
            m.dim = (uint32_t)dim;
            m.session = session;
            m.when_ms = t0 + (int64_t)(s * o->per_session + i) * 60000;
            if (mn_engine_remember(e, space, &m, 1, &ep->id, &err)) die("remember", &err);
        }
    }
    mn_engine_wait_background(e);

    double recall5[KINDS][MODES] = {{0}}, mrr[KINDS][MODES] = {{0}};
    int count[KINDS] = {0};
    float *cue = malloc(dim * sizeof(float));
    for (int qi = 0; qi < o->queries; qi++) {
        int kind = qi % KINDS;
        int x = (int)mn_prng_below(p, (uint64_t)n_ep);
        if (kind == ONEHOP && eps[x].pos == o->per_session - 1) x--; /* needs a next episode */
        const episode *answer = kind == ONEHOP ? &eps[x + 1] : &eps[x];
        char text[256];
        if (kind == KEYWORD) {
            around(p, centres + (size_t)eps[x].topic * dim, 1.2f, cue, dim);
            snprintf(text, sizeof text, "%s", eps[x].rare);
        } else {
            around(p, eps[x].vec, cue_noise, cue, dim);
            if (!words_kept) {
                snprintf(text, sizeof text, "%s", eps[x].words);
            } else {
                text[0] = '\0';
                for (int w = 0; w < words_kept && w < 6; w++) {
                    if (w) strcat(text, " ");
                    strcat(text, vocab[eps[x].topic][eps[x].topic_word[w]]);
                }
            }
        }
        count[kind]++;
        for (int mode = 0; mode < MODES; mode++) {
            mn_recall_req_t r = {0};
            mn_filter_init(&r.filter);
            r.embedding = cue;
            r.dim = (uint32_t)dim;
            r.k = 5;
            if (mode != SIM) {
                r.text = text;
                r.text_len = strlen(text);
            }
            r.spread = mode == SPREAD;
            r.hop_decay = o->hop_decay;
            mn_recall_result_t res;
            if (mn_engine_recall(e, space, &r, &res, &err)) die("recall", &err);
            for (size_t i = 0; i < res.n_hits; i++)
                if (!mn_id_cmp(&res.hits[i].memory.id, &answer->id)) {
                    recall5[kind][mode] += 1;
                    mrr[kind][mode] += 1.0 / (double)(i + 1);
                    break;
                }
            mn_recall_result_clear(&res);
        }
    }
    printf("recall quality (%s: cue noise %.1f, %s): %d episodes, %d topics, %d sessions x %d, "
           "dim %d, %d queries, seed %llu\n",
           label, cue_noise, words_kept ? "two topic words" : "all the answer's words", n_ep,
           o->topics, o->sessions, o->per_session, dim, o->queries, (unsigned long long)o->seed);
    printf("%-10s %-19s %10s %8s\n", "kind", "mode", "recall@5", "MRR");
    for (int k = 0; k < KINDS; k++)
        for (int m = 0; m < MODES; m++)
            printf("%-10s %-19s %10.3f %8.3f\n", kind_names[k], mode_names[m],
                   recall5[k][m] / count[k], mrr[k][m] / count[k]);
    free(cue);
    for (int i = 0; i < n_ep; i++) free(eps[i].vec);
    free(eps);
}

static int id_order(const void *a, const void *b)
{
    return mn_id_cmp(a, b);
}

/* Consolidation of n episodes spread around the planted topics' centres. */
static void consolidation_quality(mn_engine_t *e, const opts *o, const char *space,
                                  const float *centres, char (*vocab)[VOCAB][16], mn_prng_t *p,
                                  float spread, const char *label)
{
    mn_error err = {0};
    int dim = o->dim, n = o->consolidate_n;
    mn_space_def_t d = {.dim = (uint32_t)dim, .metric = MN_METRIC_COSINE};
    snprintf(d.name, sizeof d.name, "%s", space);
    if (mn_engine_space_create(e, &d, NULL, &err)) die("space", &err);
    int *planted = malloc(n * sizeof(int));
    mn_id_t *ids = malloc(n * sizeof(mn_id_t));
    float *batch_vecs = malloc((size_t)100 * dim * sizeof(float));
    mn_memory_t ms[100];
    for (int b = 0; b < n; b += 100) {
        int m = n - b < 100 ? n - b : 100;
        for (int i = 0; i < m; i++) {
            int topic = (int)mn_prng_below(p, (uint64_t)o->topics);
            planted[b + i] = topic;
            around(p, centres + (size_t)topic * dim, spread, batch_vecs + (size_t)i * dim, dim);
            mn_memory_init(&ms[i]);
            ms[i].content = vocab[topic][i % VOCAB];
            ms[i].content_len = strlen(vocab[topic][i % VOCAB]);
            ms[i].embedding = batch_vecs + (size_t)i * dim;
            ms[i].dim = (uint32_t)dim;
        }
        if (mn_engine_remember(e, space, ms, (size_t)m, ids + b, &err)) die("remember", &err);
    }
    mn_engine_wait_background(e);
    mn_consolidate_opts_t co = {0};
    mn_consolidate_result_t cr, again;
    int64_t c0 = mn_time_mono_ns();
    if (mn_engine_consolidate(e, space, &co, &cr, &err)) die("consolidate", &err);
    double secs = (double)(mn_time_mono_ns() - c0) / 1e9;
    c0 = mn_time_mono_ns();
    if (mn_engine_consolidate(e, space, &co, &again, &err)) die("consolidate", &err);
    double secs2 = (double)(mn_time_mono_ns() - c0) / 1e9;
    /* found cluster of each episode: the semantic memory whose support holds it
     * (ids are remembered in id order, so a binary search finds each) */
    int *found = malloc(n * sizeof(int));
    for (int i = 0; i < n; i++) found[i] = (int)cr.n_ids; /* "unclustered" bucket */
    for (size_t c = 0; c < cr.n_ids; c++) {
        mn_memory_t sm;
        if (mn_engine_get(e, space, &cr.ids[c], false, &sm, &err)) die("get", &err);
        for (size_t s = 0; s < sm.n_support; s++) {
            mn_id_t *at = bsearch(&sm.support[s], ids, (size_t)n, sizeof *ids, id_order);
            if (at) found[at - ids] = (int)c;
        }
        mn_memory_clear(&sm);
    }
    printf("consolidation (%s: spread %.1f around %d planted topics): %d episodes -> %u semantic "
           "memories from %u episodes, ARI %.3f, %.2f s (%.0f episodes/s); second run %.2f s, "
           "%u created, %u updated, %u retired\n",
           label, spread, o->topics, n, cr.created, cr.episodes,
           ari(planted, found, n, o->topics, (int)cr.n_ids + 1), secs, n / secs, secs2,
           again.created, again.updated, again.retired);
    free(found);
    free(cr.ids);
    free(again.ids);
    free(planted);
    free(ids);
    free(batch_vecs);
}

int main(int argc, char **argv)
{
    opts o = {NULL, 20, 40, 8, 200, 64, 100000, 1, 0, 0.7f, 3.5f};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dir")) o.dir = argv[i + 1];
        else if (!strcmp(argv[i], "--topics")) o.topics = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--sessions")) o.sessions = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--per-session")) o.per_session = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--queries")) o.queries = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dim")) o.dim = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--consolidate-n")) o.consolidate_n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) o.seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--hop-decay")) o.hop_decay = (float)atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--hard-spread")) o.hard_spread = (float)atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--hard-noise")) o.hard_noise = (float)atof(argv[i + 1]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!o.dir || o.topics < 2 || o.per_session < 2 || o.dim < 8) {
        fprintf(stderr, "usage: mn_bench_quality --dir EMPTY_DIR [options] (see the source)\n");
        return 2;
    }
    mn_log_configure(MN_LOG_WARN, MN_LOG_FORMAT_TEXT);
    mn_prng_t p;
    mn_prng_seed(&p, o.seed);
    mn_engine_options_t eo;
    mn_engine_options_default(&eo);
    eo.data_dir = o.dir;
    eo.sync = false;
    eo.expiry_interval_ms = 0;
    eo.consolidate_interval_ms = 0;
    mn_engine_t *e;
    mn_error err = {0};
    if (mn_engine_open(&eo, &e, &err)) die("open", &err);
    int dim = o.dim;
    float *centres = malloc((size_t)o.topics * dim * sizeof(float));
    char(*vocab)[VOCAB][16] = malloc((size_t)o.topics * sizeof *vocab);
    for (int t = 0; t < o.topics; t++) {
        unit_random(&p, centres + (size_t)t * dim, dim);
        for (int w = 0; w < VOCAB; w++) word(&p, vocab[t][w], 3);
    }
    recall_quality(e, &o, "quality", centres, vocab, &p, 0.3f, 0, "easy");
    recall_quality(e, &o, "quality-hard", centres, vocab, &p, o.hard_noise, 2, "hard");

    /* consolidation quality and speed on fresh spaces (semantic auto-links off:
     * without the HNSW index each link is an exact scan, quadratic at this size) */
    mn_engine_close(e);
    eo.link_max = 0;
    if (mn_engine_open(&eo, &e, &err)) die("reopen", &err);
    consolidation_quality(e, &o, "consolidate", centres, vocab, &p, 0.5f, "easy");
    if (o.hard_spread > 0)
        consolidation_quality(e, &o, "consolidate-hard", centres, vocab, &p, o.hard_spread,
                              "hard");
    free(vocab);
    free(centres);
    mn_engine_close(e);
    return 0;
}
