/* The filter language's expressions (filter_expr.c): their shape check and their value on
 * a slot. A leaf, like filter.c: it reads a slot and an expression, nothing else. */
#ifndef MN_ENGINE_FILTER_EXPR_H
#define MN_ENGINE_FILTER_EXPR_H

#include <stdbool.h>
#include <stdint.h>

#include "slot.h"

/* MN_ERR_INVALID unless x[0 .. n) is one well-formed expression within the limits of
 * model.h: subtree sizes that tile, known fields and operators, operators that apply to
 * their field, operand counts and types that fit the operator. */
mn_err mn__filter_expr_check(const mn_filter_node_t *x, uint32_t n, mn_error *err);
/* The value of the checked expression x (n > 0 nodes) on the slot s. */
bool mn__filter_expr_match(const mn_filter_node_t *x, uint32_t n, const mn__slot *s);
/* A copy of the checked expression x[0 .. n) in one malloc'd block (free it with free);
 * NULL when out of memory. */
mn_filter_node_t *mn__filter_expr_dup(const mn_filter_node_t *x, uint32_t n);
/* The fields x reads, as bits 1u << mn_filter_field_t. */
uint32_t mn__filter_expr_fields(const mn_filter_node_t *x, uint32_t n);

#endif
