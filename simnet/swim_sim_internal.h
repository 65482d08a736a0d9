/* Private state of the SWIM harness, shared by swim_sim.c (nodes, views,
 * the judge) and swim_scenarios.c (scenarios, results). */
#ifndef MN_SIMNET_SWIM_SIM_INTERNAL_H
#define MN_SIMNET_SWIM_SIM_INTERNAL_H

#include "mnemo/assert.h"
#include "mnemo/simnet.h"

#define SIM_SEEDS 3
#define SIM_STEP_US 10000 /* condition checks every 10 ms of virtual time */

typedef struct sim_fault {
    int target; /* crashed node; -1 = a partition (cross pairs) */
    int64_t t0_us, first_us, all_us;
    int64_t suspect_us; /* first suspect view after the crash */
    uint8_t *seen;
    int expected, got;
    bool open;
} sim_fault;

typedef struct sim_join {
    int node;
    int64_t t0_us, done_us; /* done_us < 0: open */
    bool aborted;           /* its node crashed before the join converged: no sample */
} sim_join;

typedef struct sim_slot {
    mn_simswim_t *h;
    int idx;
} sim_slot;

struct mn_simswim {
    mn_simswim_opts_t o;
    mn_simnet_t *net;
    int n;
    sim_slot *slots;
    int8_t *view;   /* n * n: state of tgt in obs's view, -1 unknown */
    int *known_cnt; /* running observers that see tgt alive or suspect */
    uint8_t *fp_marked;
    uint64_t fp_dead, fp_dead_degraded, suspicions, events;
    int first_slow;          /* nodes >= this are degraded (slow links) */
    uint64_t *life_inc;      /* per node: first incarnation of its current life */
    int64_t *started_us;     /* per node: virtual time of its last start (-1 never) */
    uint64_t *pause_inc;     /* per node: incarnation when last paused (mn_simswim_pause) */
    int64_t *pause_grace_us; /* per node: declarations at <= pause_inc exempt until then */
    sim_fault *faults;
    size_t n_faults;
    int *group;  /* partition groups, NULL when whole */
    int *former; /* groups of the last partition, for the grace period after heal */
    int64_t grace_until_us;
    int64_t cross_expected, cross_dead;
    sim_fault part;
    sim_join *joins;
    size_t n_joins;
};

static inline int64_t sim_ms_to_us(int64_t v)
{
    return v * 1000;
}

/* swim_sim.c */
int8_t *mn__simswim_view_at(const mn_simswim_t *h, int obs, int tgt);
bool mn__simswim_running(const mn_simswim_t *h, int i); /* up or paused */
int mn__simswim_running_count(const mn_simswim_t *h);
bool mn__simswim_cross(const mn_simswim_t *h, int a, int b); /* split by the current partition */
/* Observer obs now sees fault f's target dead. */
void mn__simswim_fault_seen(sim_fault *f, int obs, int64_t now_us);

#endif
