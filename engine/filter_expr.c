/* The filter language's expressions (docs/api.md, "Filters"): the doors compile a
 * request's JSON filter into an array of mn_filter_node_t in prefix order (model.h); this
 * file checks that array's shape and evaluates it on a slot, inside every scan that calls
 * mn__filter_match (the HNSW search's filter callback, the exact scans, list).
 *
 * Semantics, kept exactly as documented:
 * - ne is not(eq) and nin is not(in), so both are true on a missing field (a where, a
 *   session or a metadata key the memory lacks); every other operator is false there.
 * - tags and context.who are sets: eq x and contains x hold when the set has x, contains
 *   [x, y] when it has both, in [...] when it has one of them; exists means non-empty.
 * - metadata values are strings. eq, ne, in and nin compare a string operand byte for
 *   byte and a number operand numerically (a value that does not read as a number is not
 *   equal). gt, gte, lt and lte compare numerically when the value and the operand both
 *   read as numbers (mn_filter_number), else byte for byte when the operand is a string;
 *   a number operand against a value that is not a number is false.
 * - kind, lifecycle, importance, when and created_at are always present. */
#include "filter_expr.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/assert.h"

bool mn_filter_op_applies(mn_filter_field_t field, mn_filter_op_t op)
{
    if ((unsigned)field >= MN_FILTER_FIELDS || (unsigned)op >= MN_FILTER_OPS) return false;
    bool set = field == MN_FILTER_FIELD_TAGS || field == MN_FILTER_FIELD_WHO;
    bool ordered = field == MN_FILTER_FIELD_METADATA || field == MN_FILTER_FIELD_IMPORTANCE ||
                   field == MN_FILTER_FIELD_WHEN || field == MN_FILTER_FIELD_CREATED_AT;
    if (op == MN_FILTER_OP_CONTAINS) return set;
    if (op >= MN_FILTER_OP_GT && op <= MN_FILTER_OP_LTE) return ordered;
    return true;
}

static bool digits(const char **p)
{
    const char *s = *p;
    while (**p >= '0' && **p <= '9')
        (*p)++;
    return *p > s;
}

bool mn_filter_number(const char *s, double *out)
{
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    bool whole = digits(&p), frac = false;
    if (*p == '.') {
        p++;
        frac = digits(&p);
    }
    if (!whole && !frac) return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!digits(&p)) return false;
    }
    if (*p) return false;
    /* a short integer, the common case of a metadata count, exactly without strtod */
    const char *q = s + (*s == '+' || *s == '-');
    if (whole && p - q <= 15 && !strpbrk(q, ".eE")) {
        int64_t v = 0;
        for (; *q; q++)
            v = v * 10 + (*q - '0');
        *out = *s == '-' ? -(double)v : (double)v;
        return true;
    }
    errno = 0;
    double d = strtod(s, NULL);
    if (!isfinite(d)) return false;
    *out = d;
    return true;
}

/* ---- shape ---- */

static bool string_field(uint8_t f)
{
    return f == MN_FILTER_FIELD_TAGS || f == MN_FILTER_FIELD_WHO || f == MN_FILTER_FIELD_WHERE ||
           f == MN_FILTER_FIELD_SESSION;
}

static bool leaf_ok(const mn_filter_node_t *x)
{
    if (!mn_filter_op_applies(x->field, x->op)) return false;
    if (x->field == MN_FILTER_FIELD_METADATA && !x->key) return false;
    if (x->n_vals && !x->vals) return false;
    switch (x->op) {
    case MN_FILTER_OP_EXISTS:
        if (x->n_vals) return false;
        break;
    case MN_FILTER_OP_IN:
    case MN_FILTER_OP_NIN:
        break;
    case MN_FILTER_OP_CONTAINS:
        if (!x->n_vals) return false;
        break;
    default:
        if (x->n_vals != 1) return false;
    }
    for (uint32_t i = 0; i < x->n_vals; i++) {
        const mn_filter_value_t *v = &x->vals[i];
        if (string_field(x->field) ? !v->s : (x->field != MN_FILTER_FIELD_METADATA && v->s))
            return false;
        if (!v->s && !(v->has_num && isfinite(v->num))) return false;
    }
    return true;
}

/* Checks the subtree at x (of at most room nodes) at nesting depth; adds its operands. */
static bool node_ok(const mn_filter_node_t *x, uint32_t room, uint32_t depth, uint32_t *vals)
{
    if (x->size < 1 || x->size > room) return false;
    if (x->type == MN_FILTER_LEAF) {
        *vals += x->n_vals;
        return x->size == 1 && leaf_ok(x);
    }
    if (x->type > MN_FILTER_NOT || depth >= MN_FILTER_DEPTH_MAX) return false;
    uint32_t kids = 0;
    for (uint32_t j = 1; j < x->size; j += x[j].size, kids++)
        if (!node_ok(&x[j], x->size - j, depth + 1, vals)) return false;
    return x->type != MN_FILTER_NOT || kids == 1;
}

mn_err mn__filter_expr_check(const mn_filter_node_t *x, uint32_t n, mn_error *err)
{
    if (!n) return MN_OK;
    uint32_t vals = 0;
    if (!x || n > MN_FILTER_NODES_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "filter: more than %d conditions",
                            MN_FILTER_NODES_MAX);
    if (x[0].size != n || !node_ok(x, n, 0, &vals))
        return mn_error_set(err, MN_ERR_INVALID, "filter: not a well-formed expression");
    if (vals > MN_FILTER_VALUES_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "filter: more than %d operands",
                            MN_FILTER_VALUES_MAX);
    return MN_OK;
}

/* ---- evaluation ---- */

static bool has_str(char *const *set, uint32_t n, const char *v)
{
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(set[i], v)) return true;
    return false;
}

static bool set_leaf(const mn_filter_node_t *x, char *const *set, uint32_t n)
{
    if (x->op == MN_FILTER_OP_EXISTS) return (n > 0) == x->exists;
    bool any = false, all = true;
    for (uint32_t i = 0; i < x->n_vals; i++) {
        bool h = has_str(set, n, x->vals[i].s);
        any |= h;
        all &= h;
    }
    switch (x->op) {
    case MN_FILTER_OP_EQ:
    case MN_FILTER_OP_CONTAINS:
        return all;
    case MN_FILTER_OP_NE:
        return !all;
    case MN_FILTER_OP_IN:
        return any;
    default:
        return !any; /* nin */
    }
}

/* cmp < 0, 0, > 0 as value is below, equal to or above the operand: does op hold? */
static bool order_holds(uint8_t op, int cmp)
{
    switch (op) {
    case MN_FILTER_OP_GT:
        return cmp > 0;
    case MN_FILTER_OP_GTE:
        return cmp >= 0;
    case MN_FILTER_OP_LT:
        return cmp < 0;
    case MN_FILTER_OP_LTE:
        return cmp <= 0;
    default:
        return cmp == 0;
    }
}

static int cmp_num(double a, double b)
{
    return (a > b) - (a < b);
}

/* One operand against a present value: is it equal (eq, in), or does the order hold? */
static bool value_holds(uint8_t op, const mn_filter_value_t *v, const char *s, double num,
                        bool has_num)
{
    bool order = op >= MN_FILTER_OP_GT && op <= MN_FILTER_OP_LTE;
    if (!order && v->s) return s && !strcmp(s, v->s);
    if (has_num && v->has_num)
        return order_holds(order ? op : MN_FILTER_OP_EQ, cmp_num(num, v->num));
    if (order && v->s && s) return order_holds(op, strcmp(s, v->s));
    return false;
}

/* A leaf on a single value: s (a string, NULL when missing) or num (has_num). */
static bool value_leaf(const mn_filter_node_t *x, bool present, const char *s, double num,
                       bool has_num)
{
    if (x->op == MN_FILTER_OP_EXISTS) return present == x->exists;
    bool neg = x->op == MN_FILTER_OP_NE || x->op == MN_FILTER_OP_NIN;
    if (!present) return neg;
    bool any = false;
    for (uint32_t i = 0; i < x->n_vals && !any; i++)
        any = value_holds(x->op, &x->vals[i], s, num, has_num);
    return any != neg;
}

static const char *metadata_of(const mn__slot *s, const char *key)
{
    for (uint32_t i = 0; i < s->n_metadata; i++)
        if (!strcmp(s->metadata[i].key, key)) return s->metadata[i].value;
    return NULL;
}

static bool leaf(const mn_filter_node_t *x, const mn__slot *s)
{
    switch (x->field) {
    case MN_FILTER_FIELD_TAGS:
        return set_leaf(x, s->tags, s->n_tags);
    case MN_FILTER_FIELD_WHO:
        return set_leaf(x, s->who, s->n_who);
    case MN_FILTER_FIELD_WHERE:
        return value_leaf(x, s->where, s->where, 0, false);
    case MN_FILTER_FIELD_SESSION:
        return value_leaf(x, s->session, s->session, 0, false);
    case MN_FILTER_FIELD_METADATA: {
        const char *v = metadata_of(s, x->key);
        double d = 0;
        bool num = v && mn_filter_number(v, &d);
        return value_leaf(x, v, v, d, num);
    }
    case MN_FILTER_FIELD_KIND:
        return value_leaf(x, true, NULL, s->kind, true);
    case MN_FILTER_FIELD_LIFECYCLE:
        return value_leaf(x, true, NULL, s->lifecycle, true);
    case MN_FILTER_FIELD_IMPORTANCE:
        return value_leaf(x, true, NULL, s->importance, true);
    case MN_FILTER_FIELD_WHEN:
        return value_leaf(x, true, NULL, (double)s->when_ms, true);
    default:
        return value_leaf(x, true, NULL, (double)s->created_at_ms, true);
    }
}

bool mn__filter_expr_match(const mn_filter_node_t *x, uint32_t n, const mn__slot *s)
{
    mn_assert(n >= 1 && x->size <= n);
    switch (x->type) {
    case MN_FILTER_LEAF:
        return leaf(x, s);
    case MN_FILTER_NOT:
        return !mn__filter_expr_match(x + 1, x->size - 1, s);
    case MN_FILTER_AND:
        for (uint32_t j = 1; j < x->size; j += x[j].size)
            if (!mn__filter_expr_match(x + j, x->size - j, s)) return false;
        return true;
    default: /* or */
        for (uint32_t j = 1; j < x->size; j += x[j].size)
            if (mn__filter_expr_match(x + j, x->size - j, s)) return true;
        return false;
    }
}

uint32_t mn__filter_expr_fields(const mn_filter_node_t *x, uint32_t n)
{
    uint32_t bits = 0;
    for (uint32_t i = 0; i < n; i++)
        if (x[i].type == MN_FILTER_LEAF) bits |= 1u << x[i].field;
    return bits;
}

/* ---- copies ---- */

mn_filter_node_t *mn__filter_expr_dup(const mn_filter_node_t *x, uint32_t n)
{
    size_t n_vals = 0, bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        n_vals += x[i].n_vals;
        if (x[i].key) bytes += strlen(x[i].key) + 1;
        for (uint32_t j = 0; j < x[i].n_vals; j++)
            if (x[i].vals[j].s) bytes += strlen(x[i].vals[j].s) + 1;
    }
    /* nodes, then values (both 8-byte aligned), then the strings */
    size_t head = n * sizeof *x + n_vals * sizeof(mn_filter_value_t);
    char *block = malloc(head + bytes);
    if (!block) return NULL;
    mn_filter_node_t *out = (mn_filter_node_t *)(void *)block;
    mn_filter_value_t *vals = (mn_filter_value_t *)(void *)(block + n * sizeof *x);
    char *str = block + head;
    for (uint32_t i = 0; i < n; i++) {
        out[i] = x[i];
        if (x[i].key) {
            size_t l = strlen(x[i].key) + 1;
            out[i].key = memcpy(str, x[i].key, l);
            str += l;
        }
        out[i].vals = x[i].n_vals ? vals : NULL;
        for (uint32_t j = 0; j < x[i].n_vals; j++, vals++) {
            *vals = x[i].vals[j];
            if (!vals->s) continue;
            size_t l = strlen(vals->s) + 1;
            vals->s = memcpy(str, vals->s, l);
            str += l;
        }
    }
    mn_assert(str == block + head + bytes);
    return out;
}
