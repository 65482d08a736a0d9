/* Building a semantic memory from its members: what a consolidation run
 * (consolidate.c) and a re-derivation after a forget (mn__consolidate_rederive)
 * share, so the same members give the same fields either way. Private to
 * engine/. */
#ifndef MN_SEMANTIC_BUILD_H
#define MN_SEMANTIC_BUILD_H

#include "engine_internal.h"
#include "space.h"
#include "text/text.h"

/* A cluster that becomes a semantic memory: what the build needs, copied out
 * from under the space's lock. */
typedef struct mn__sem_cluster {
    mn_id_t id;       /* the semantic memory's id, derived from the key */
    mn_id_t *members; /* sorted by id; members[0] is the key */
    size_t n;
    float *centroid;
    double cohesion;
    size_t medoid; /* index into members */
    bool skip;     /* a member vanished before the build: wait for the next run */
} mn__sem_cluster;

/* Words and how many members (or, over a run, supported episodes) contain
 * each: a small open-addressing map. */
typedef struct mn__sem_word {
    char word[MN_TOKEN_MAX + 1];
    uint32_t count; /* members (or, globally, supported episodes) containing it */
    uint32_t last;  /* last member counted: a word counts once per member */
    double score;
} mn__sem_word;

typedef struct mn__sem_words {
    mn__sem_word *e;
    size_t n, cap;
    uint32_t *ix; /* entry + 1; 0 = empty */
    size_t ix_cap;
} mn__sem_words;

void mn__sem_words_free(mn__sem_words *m);
/* The entry of word w (with create, made with count 0), or NULL (absent, or
 * out of memory). */
mn__sem_word *mn__sem_words_get(mn__sem_words *m, const char *w, size_t len, bool create);

/* What a cluster's semantic memory takes from its members' records. */
typedef struct mn__sem_summary {
    mn__sem_words words;
    char *medoid_content;
    size_t medoid_len;
    int64_t when, created;
    float importance;
    char **tags, **who;
    size_t n_tags, n_who;
} mn__sem_summary;

void mn__sem_summary_free(mn__sem_summary *s);
/* Reads the members' records (sorted by id) into *s. MN_ERR_NOT_FOUND when
 * one is gone since the clustering: the cluster waits for the next run. */
mn_err mn__sem_summarise(mn_engine_t *e, mn__space *sp, const mn__sem_cluster *k,
                         mn__sem_summary *s);
/* Fills sem from a cluster and its summary; the top keywords score (members
 * holding the word) x idf over the n_docs supported episodes of df. Moves the
 * summary's strings. */
mn_err mn__sem_build(const mn__space *sp, const mn__sem_cluster *k, mn__sem_summary *s,
                     const mn__sem_words *df, double n_docs, mn_memory_t *sem);
/* Does the stored semantic memory old already hold what a run computed (a)? */
bool mn__sem_same(const mn_memory_t *a, const mn_memory_t *old);
/* The unit centroid of sum (dim doubles). */
void mn__sem_centroid(const double *sum, uint32_t dim, float *out);

#endif
