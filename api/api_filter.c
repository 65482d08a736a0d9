/* The filter language (docs/api.md, "Filters"): a request's JSON filter compiled into the
 * engine's expression array (mn_filter_node_t, include/mnemo/model.h), shared by every
 * door: REST bodies and the list query, gRPC's Filter.expr, MCP's tool arguments.
 *
 *   filter := {"and": [filter, ...]} | {"or": [filter, ...]} | {"not": filter}
 *           | {"<field>": {"<op>": value, ...}} | {member, member, ...}  (AND of them)
 *
 * The nodes go into an array in prefix order as they are read, each non-leaf's size set
 * once its children are in. Every refusal names where it is, as a path from "filter"
 * ("filter.or[0].and[1][\"metadata.n\"].gte: expects a string or a number"). What the
 * operators mean is the engine's (engine/filter_expr.c); this file only reads and types.
 * Every string of the expression is copied into the request's arena, so the expression
 * outlives the JSON it was read from. */
#include "api_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define PATH_MAX_BYTES 512

typedef struct fc {
    api_arena *a;
    mn_filter_node_t *nodes;
    uint32_t n, n_vals;
    char path[PATH_MAX_BYTES];
    size_t path_len;
    mn_error *err;
} fc;

static const char *const field_names[MN_FILTER_FIELDS] = {
    [MN_FILTER_FIELD_TAGS] = "tags",           [MN_FILTER_FIELD_WHO] = "context.who",
    [MN_FILTER_FIELD_WHERE] = "context.where", [MN_FILTER_FIELD_SESSION] = "context.session",
    [MN_FILTER_FIELD_METADATA] = "metadata.",  [MN_FILTER_FIELD_KIND] = "kind",
    [MN_FILTER_FIELD_LIFECYCLE] = "lifecycle", [MN_FILTER_FIELD_IMPORTANCE] = "importance",
    [MN_FILTER_FIELD_WHEN] = "when",           [MN_FILTER_FIELD_CREATED_AT] = "created_at",
};
static const char *const op_names[MN_FILTER_OPS] = {
    [MN_FILTER_OP_EQ] = "eq",
    [MN_FILTER_OP_NE] = "ne",
    [MN_FILTER_OP_IN] = "in",
    [MN_FILTER_OP_NIN] = "nin",
    [MN_FILTER_OP_GT] = "gt",
    [MN_FILTER_OP_GTE] = "gte",
    [MN_FILTER_OP_LT] = "lt",
    [MN_FILTER_OP_LTE] = "lte",
    [MN_FILTER_OP_CONTAINS] = "contains",
    [MN_FILTER_OP_EXISTS] = "exists",
};

static mn_err fail(fc *c, const char *what)
{
    return mn_error_set(c->err, MN_ERR_INVALID, "%s: %s", c->path, what);
}

/* Appends to the path: ".name" for a plain name, "[\"name\"]" for one with other bytes,
 * "[i]" for an index. Returns the length to restore. */
static size_t path_push(fc *c, const char *name, int index)
{
    size_t old = c->path_len, room = sizeof c->path - old;
    bool plain = name && *name && strspn(name, "abcdefghijklmnopqrstuvwxyz_") == strlen(name);
    int w = name ? snprintf(c->path + old, room, plain ? ".%.64s" : "[\"%.64s\"]", name)
                 : snprintf(c->path + old, room, "[%d]", index);
    c->path_len = w > 0 && (size_t)w < room ? old + (size_t)w : old;
    c->path[c->path_len] = '\0';
    return old;
}

static void path_pop(fc *c, size_t len)
{
    c->path_len = len;
    c->path[len] = '\0';
}

static mn_err new_node(fc *c, uint8_t type, uint32_t depth, uint32_t *at)
{
    if (c->n == MN_FILTER_NODES_MAX)
        return mn_error_set(c->err, MN_ERR_INVALID, "%s: more than %d conditions in the filter",
                            c->path, MN_FILTER_NODES_MAX);
    if (type != MN_FILTER_LEAF && depth >= MN_FILTER_DEPTH_MAX)
        return mn_error_set(c->err, MN_ERR_INVALID, "%s: nested deeper than %d and/or/not levels",
                            c->path, MN_FILTER_DEPTH_MAX);
    *at = c->n++;
    c->nodes[*at] = (mn_filter_node_t){.type = type, .size = 1};
    return MN_OK;
}

/* ---- operands ---- */

static bool time_ms(const cJSON *v, double *out)
{
    int64_t ms;
    if (cJSON_IsString(v)) {
        if (mn_time_parse_rfc3339(v->valuestring, &ms)) return false;
        *out = (double)ms;
        return true;
    }
    /* an integer that a double holds exactly */
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        fabs(v->valuedouble) > 9007199254740992.0)
        return false;
    *out = v->valuedouble;
    return true;
}

static bool name_of(const cJSON *v, const char *const *names, int n, double *out)
{
    if (!cJSON_IsString(v)) return false;
    for (int i = 0; i < n; i++)
        if (names[i] && !strcmp(v->valuestring, names[i])) {
            *out = i;
            return true;
        }
    return false;
}

/* One operand of field f into *out (strings copied into a); a message of what it expects
 * when it does not fit, or "out of memory". */
static const char *read_value(uint8_t f, const cJSON *v, api_arena *a, mn_filter_value_t *out)
{
    static const char *const kinds[] = {
        [MN_KIND_EPISODIC] = "episodic", [MN_KIND_SEMANTIC] = "semantic"};
    static const char *const lifecycles[] = {[MN_LIFECYCLE_EPHEMERAL] = "ephemeral",
                                             [MN_LIFECYCLE_SESSION] = "session",
                                             [MN_LIFECYCLE_PERSISTENT] = "persistent"};
    *out = (mn_filter_value_t){0};
    out->has_num = true;
    switch (f) {
    case MN_FILTER_FIELD_METADATA:
        if (cJSON_IsString(v)) {
            out->s = api_arena_strndup(a, v->valuestring, strlen(v->valuestring));
            out->has_num = mn_filter_number(v->valuestring, &out->num);
            return out->s ? NULL : "out of memory";
        }
        if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
            out->num = v->valuedouble;
            return NULL;
        }
        return "expects a string or a number";
    case MN_FILTER_FIELD_KIND:
        return name_of(v, kinds, 2, &out->num) ? NULL : "expects \"episodic\" or \"semantic\"";
    case MN_FILTER_FIELD_LIFECYCLE:
        return name_of(v, lifecycles, 4, &out->num)
                   ? NULL
                   : "expects \"ephemeral\", \"session\" or \"persistent\"";
    case MN_FILTER_FIELD_IMPORTANCE:
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return "expects a number";
        out->num = (double)api_to_float(v->valuedouble); /* compared with a float32 */
        return NULL;
    case MN_FILTER_FIELD_WHEN:
    case MN_FILTER_FIELD_CREATED_AT:
        return time_ms(v, &out->num) ? NULL
                                     : "expects a time (an RFC 3339 string or integer "
                                       "milliseconds since the epoch)";
    default: /* tags, context.* */
        if (!cJSON_IsString(v)) return "expects a string";
        out->s = api_arena_strndup(a, v->valuestring, strlen(v->valuestring));
        out->has_num = false;
        return out->s ? NULL : "out of memory";
    }
}

static mn_err read_values(fc *c, mn_filter_node_t *x, const cJSON *v)
{
    bool list = x->op == MN_FILTER_OP_IN || x->op == MN_FILTER_OP_NIN ||
                (x->op == MN_FILTER_OP_CONTAINS && cJSON_IsArray(v));
    if (list && !cJSON_IsArray(v)) return fail(c, "expects an array");
    if (v->type & API_JSON_FLOATS) /* a parse with compact_floats but no plain_member */
        return fail(c, "cannot be read: numbers parsed as float32");
    size_t n = list ? (size_t)cJSON_GetArraySize(v) : 1;
    if (x->op == MN_FILTER_OP_CONTAINS && !n) return fail(c, "expects a non-empty array");
    if (n > MN_FILTER_VALUES_MAX - c->n_vals)
        return mn_error_set(c->err, MN_ERR_INVALID, "%s: more than %d values in the filter",
                            c->path, MN_FILTER_VALUES_MAX);
    mn_filter_value_t *vals = n ? api_arena_alloc(c->a, n * sizeof *vals) : NULL;
    if (n && !vals) return mn_error_set(c->err, MN_ERR_NOMEM, "out of memory");
    const cJSON *it = list ? v->child : v;
    for (size_t i = 0; i < n; i++, it = it->next) {
        size_t back = list ? path_push(c, NULL, (int)i) : c->path_len;
        const char *why = read_value(x->field, it, c->a, &vals[i]);
        if (why) return fail(c, why);
        path_pop(c, back);
    }
    x->vals = vals;
    x->n_vals = (uint32_t)n;
    c->n_vals += (uint32_t)n;
    return MN_OK;
}

/* ---- leaves ---- */

static mn_err read_field(fc *c, const char *name, uint8_t *field, const char **key)
{
    *key = NULL;
    if (!strncmp(name, "metadata.", 9)) {
        *field = MN_FILTER_FIELD_METADATA;
        *key = name + 9;
        if (!**key) return fail(c, "names no metadata key");
        if (strlen(*key) > MN_METADATA_KEY_MAX) return fail(c, "metadata key too long");
        return MN_OK;
    }
    for (int i = 0; i < MN_FILTER_FIELDS; i++)
        if (i != MN_FILTER_FIELD_METADATA && !strcmp(name, field_names[i])) {
            *field = (uint8_t)i;
            return MN_OK;
        }
    return fail(c, "unknown field (tags, context.who, context.where, context.session, "
                   "metadata.<key>, kind, lifecycle, importance, when, created_at; or and, or, "
                   "not)");
}

static mn_err read_leaf(fc *c, uint8_t field, const char *key, const cJSON *op, uint32_t depth)
{
    int o = 0;
    while (o < MN_FILTER_OPS && strcmp(op->string, op_names[o]))
        o++;
    if (o == MN_FILTER_OPS)
        return fail(c, "unknown operator (eq, ne, in, nin, gt, gte, lt, lte, contains, exists)");
    if (!mn_filter_op_applies(field, (mn_filter_op_t)o))
        return fail(c, o == MN_FILTER_OP_CONTAINS
                           ? "applies to tags and context.who only"
                           : "applies to metadata.<key>, importance, when and created_at only");
    uint32_t at = 0;
    mn_err rc = new_node(c, MN_FILTER_LEAF, depth, &at);
    if (rc) return rc;
    mn_filter_node_t *x = &c->nodes[at];
    x->field = field;
    x->op = (uint8_t)o;
    if (key && !(x->key = api_arena_strndup(c->a, key, strlen(key))))
        return mn_error_set(c->err, MN_ERR_NOMEM, "out of memory");
    if (o != MN_FILTER_OP_EXISTS) return read_values(c, x, op);
    if (!cJSON_IsBool(op)) return fail(c, "expects true or false");
    x->exists = cJSON_IsTrue(op);
    return MN_OK;
}

/* {"<op>": value, ...} of one field: a leaf, or an AND of a leaf per operator. */
static mn_err read_ops(fc *c, const cJSON *m, uint32_t depth)
{
    uint8_t field;
    const char *key;
    mn_err rc = read_field(c, m->string, &field, &key);
    if (rc) return rc;
    if (!cJSON_IsObject(m) || !m->child)
        return fail(c, "expects an object of operators, e.g. {\"eq\": ...}");
    uint32_t at = 0;
    bool several = m->child->next != NULL;
    if (several && (rc = new_node(c, MN_FILTER_AND, depth, &at))) return rc;
    for (const cJSON *op = m->child; op && !rc; op = op->next) {
        size_t back = path_push(c, op->string, 0);
        rc = read_leaf(c, field, key, op, depth + several);
        if (!rc) path_pop(c, back);
    }
    if (several) c->nodes[at].size = c->n - at;
    return rc;
}

/* ---- and, or, not ---- */

static mn_err read_filter(fc *c, const cJSON *v, uint32_t depth);

static mn_err read_member(fc *c, const cJSON *m, uint32_t depth)
{
    bool is_and = !strcmp(m->string, "and"), is_or = !strcmp(m->string, "or");
    bool is_not = !strcmp(m->string, "not");
    if (!is_and && !is_or && !is_not) return read_ops(c, m, depth);
    uint32_t at = 0;
    mn_err rc = new_node(c,
                         is_and  ? MN_FILTER_AND
                         : is_or ? MN_FILTER_OR
                                 : MN_FILTER_NOT,
                         depth, &at);
    if (rc) return rc;
    if (is_not) {
        rc = read_filter(c, m, depth + 1);
    } else if (!cJSON_IsArray(m)) {
        rc = fail(c, "expects an array of filters");
    } else {
        int i = 0;
        for (const cJSON *it = m->child; it && !rc; it = it->next, i++) {
            size_t back = path_push(c, NULL, i);
            rc = read_filter(c, it, depth + 1);
            if (!rc) path_pop(c, back);
        }
    }
    c->nodes[at].size = c->n - at;
    return rc;
}

/* An object: its one member, or the AND of its members ({} matches everything). */
static mn_err read_filter(fc *c, const cJSON *v, uint32_t depth)
{
    if (!cJSON_IsObject(v)) return fail(c, "expects an object (a filter)");
    uint32_t at = 0;
    bool several = !v->child || v->child->next;
    mn_err rc = several ? new_node(c, MN_FILTER_AND, depth, &at) : MN_OK;
    for (const cJSON *m = v->child; m && !rc; m = m->next) {
        size_t back = path_push(c, m->string, 0);
        for (const cJSON *p = v->child; p != m && !rc; p = p->next)
            if (!strcmp(p->string, m->string)) rc = fail(c, "duplicate member");
        if (!rc) rc = read_member(c, m, depth + several);
        if (!rc) path_pop(c, back);
    }
    if (several && !rc) c->nodes[at].size = c->n - at;
    return rc;
}

mn_err api_filter_compile(const cJSON *v, api_arena *a, mn_filter_t *f, mn_error *err)
{
    if (!v || cJSON_IsNull(v)) return MN_OK;
    fc c = {.a = a, .err = err};
    snprintf(c.path, sizeof c.path, "filter");
    c.path_len = strlen(c.path);
    c.nodes = api_arena_alloc(a, MN_FILTER_NODES_MAX * sizeof *c.nodes);
    if (!c.nodes) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    mn_err rc = read_filter(&c, v, 0);
    if (rc) return rc;
    f->expr = c.nodes;
    f->n_expr = c.n;
    return MN_OK;
}

mn_err api_filter_from_text(const char *text, size_t len, api_arena *a, mn_filter_t *f,
                            mn_error *err)
{
    api_json_opts o = {.depth_max = API_BODY_DEPTH_MAX,
                       .members_max = MN_BATCH_MAX,
                       .string_bytes_max = MN_METADATA_VALUE_MAX,
                       .nodes_max = 4 * MN_FILTER_VALUES_MAX};
    api_json_result res;
    cJSON *tree = api_json_parse_opts(text, len, &o, &res);
    if (!tree) {
        if (res.status == API_JSON_NOMEM) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        return mn_error_set(err, MN_ERR_INVALID,
                            "filter: not a JSON filter within limits (%s at byte %zu)",
                            res.status == API_JSON_LIMIT ? "too large" : "syntax", res.offset);
    }
    mn_err rc = api_filter_compile(tree, a, f, err);
    api_json_free(tree);
    return rc;
}
