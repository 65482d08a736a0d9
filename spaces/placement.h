/* The desired placement of every space of a table over a view (placement.c),
 * which the step (place_table.c) moves the table towards. */
#ifndef MNEMO_SPACES_PLACEMENT_H
#define MNEMO_SPACES_PLACEMENT_H

#include "mnemo/spaces.h"

/* The view sorted by id, with each member's hash and zone number (0 = no
 * zone; equal labels share a number). */
typedef struct mn__place_view {
    size_t n;
    size_t n_eligible; /* members that take copies (mn__place_view_eligible) */
    mn_spaces_member_t *m; /* sorted copies of the caller's pointers */
    uint64_t *hash;
    uint32_t *zone;
} mn__place_view;

/* Checks and sorts a view. MN_ERR_INVALID for an empty or over-long id, a
 * duplicate id, an over-long zone. Release with mn__place_view_free. */
mn_err mn__place_view_make(const mn_spaces_member_t *view, size_t n, mn__place_view *out,
                           mn_error *err);
void mn__place_view_free(mn__place_view *v);
/* The members that take copies: those not draining, or all when every one drains. */
size_t mn__place_view_eligible(const mn__place_view *v);
/* Does member i take copies (mn__place_view_eligible's rule)? */
bool mn__place_view_takes(const mn__place_view *v, size_t i);
/* Index of id in the view, or -1. */
long mn__place_view_find(const mn__place_view *v, const char *id);

/* Desired holders of every entry of t (same order): count[i] nodes at
 * nodes[i * MN_SPACES_RF_MAX ...], view indexes, primary first. */
typedef struct mn__place_plan {
    uint8_t *count;
    uint32_t *nodes;
} mn__place_plan;

mn_err mn__place_plan_make(const mn_spaces_table_t *t, const mn__place_view *v,
                           const mn_spaces_opts_t *o, mn__place_plan *out);
void mn__place_plan_free(mn__place_plan *p);

/* Checks o, makes the view and the plan of t over it (both released by the
 * caller on success, nothing to release on failure). */
mn_err mn__place_prepare(const mn_spaces_table_t *t, const mn_spaces_member_t *view, size_t n_view,
                         const mn_spaces_opts_t *o, mn__place_view *v, mn__place_plan *p,
                         mn_error *err);

/* The entries of t in the order spaces are served (by name hash, then name):
 * a malloc'd array of t->n indexes (NULL when out of memory). */
size_t *mn__place_order(const mn_spaces_table_t *t);

#endif
