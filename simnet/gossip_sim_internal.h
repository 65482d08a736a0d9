/* The gossip harness's state, shared by gossip_sim.c (nodes, the judge,
 * changes, convergence) and gossip_scenarios.c (the scripts). */
#ifndef MNEMO_SIMNET_GOSSIP_SIM_INTERNAL_H
#define MNEMO_SIMNET_GOSSIP_SIM_INTERNAL_H

#include "mnemo/assert.h"
#include "mnemo/simnet.h"

typedef struct mn_simgossip mn_simgossip_t;

typedef struct mn__sg_node {
    mn_simgossip_t *h;
    int idx;
    char id[16];
    mn_gossip_t *core; /* NULL while down */
    bool wiped;        /* its next start begins empty (no preload) */
} mn__sg_node;

typedef struct mn__sg_key {
    int space;
    mn_id_t id;
} mn__sg_key;

struct mn_simgossip {
    mn_simgossip_opts_t o;
    mn_simnet_t *net;
    mn__sg_node *nodes;
    int n;
    const char **ids;
    mn_gossip_t *judge;   /* every change, no network */
    uint64_t next_record; /* records created so far per space (ids are unique) */
    uint32_t hlc_logical;
    uint8_t *payload;  /* o.payload_bytes of scratch */
    mn__sg_key *tombs; /* every tombstone made */
    size_t n_tombs, cap_tombs;
    mn_simgossip_result_t *res;
};

typedef enum {
    MN__SG_UPDATE = 0, /* a new version of an existing record */
    MN__SG_CREATE,     /* a new record */
    MN__SG_FORGET,     /* a tombstone */
    MN__SG_RETIRE,     /* a retired version */
    MN__SG_FORGET_EP,  /* an episode forgotten: a re-derived version listing it */
    MN__SG_KINDS
} mn__sg_change;

/* gossip_sim.c */
mn_simgossip_t *mn__simgossip_new(const mn_simgossip_opts_t *o, mn_simgossip_result_t *res);
void mn__simgossip_free(mn_simgossip_t *h);
/* Runs the simulation for ms. */
void mn__simgossip_advance(mn_simgossip_t *h, int64_t ms);
/* A change of kind at node (running) to record k of space s (CREATE: a new
 * record of s), also given to the judge. */
void mn__simgossip_change(mn_simgossip_t *h, int node, mn__sg_change kind, int s, uint64_t k);
/* Runs until every running node's root equals the judge's, at most ms;
 * the seconds it took, or -1. */
double mn__simgossip_converge(mn_simgossip_t *h, int64_t ms);
/* Bytes and frames sent by every running node so far. */
void mn__simgossip_sent(const mn_simgossip_t *h, uint64_t *bytes, uint64_t *frames);
/* The judge's end: sums, roots, tombstones. */
void mn__simgossip_judge(mn_simgossip_t *h);

#endif
