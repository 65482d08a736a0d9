/* The MCP tools (MCP 2025-06-18, server/tools): remember, recall, forget, forget_where,
 * forget_job, update, history, invalidate, list_spaces, consolidate, recognize, reminisce and
 * create_space, each with a JSON Schema of its arguments.
 *
 * Each tool is a thin adapter over the HTTP handler of the same operation: it turns its
 * arguments into that handler's request (the "space" argument becomes the {space} of the
 * path, the rest the JSON body), runs the handler in-process and turns its answer into a
 * tool result. So MCP and HTTP share every check, every engine call and every output shape:
 * structuredContent is exactly the HTTP response body. A failure (any 4xx/5xx answer, or
 * an argument the schema does not know) is a result with isError: true, whose text says
 * what to fix; only an unknown tool or malformed params are JSON-RPC errors.
 *
 * How a space comes to exist: remember into a space that does not exist creates it (dim =
 * the embedding's length, or mcp.default_dim for text-only memories; cosine) and retries;
 * create_space makes one explicitly. Tools called without "space" use mcp.default_space.
 *
 * Access: the in-process call passes no HTTP gate, so each tool asks mn_auth_allow for its
 * own operation on its space with the key of the POST, and remember asks again for "create
 * space" before it makes one: a key gets from MCP exactly what it gets from HTTP. */
#include "auth.h"
#include "mcp_internal.h"
#include "rest/rest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- argument schemas ---- */

/* JSON Schemas written with a few macros, one property per line; parsed once at start
 * (mcp_tools_build), so a typo here stops the server rather than reaching a client. */
/* clang-format off */
#define Q(s) "\"" s "\""
#define PROP(name, body) Q(name) ":{" body "}"
#define DESC(d) Q("description") ":" Q(d)
#define T_STR Q("type") ":" Q("string") ","
#define T_NUM Q("type") ":" Q("number") ","
#define T_INT Q("type") ":" Q("integer") ","
#define T_BOOL Q("type") ":" Q("boolean") ","
#define T_STRS Q("type") ":" Q("array") "," Q("items") ":{" Q("type") ":" Q("string") "},"
#define T_NUMS Q("type") ":" Q("array") "," Q("items") ":{" Q("type") ":" Q("number") "},"
#define T_TIME Q("type") ":[" Q("string") "," Q("integer") "],"
#define T_STRMAP Q("type") ":" Q("object") "," Q("additionalProperties") ":{" Q("type") ":" Q("string") "},"
#define T_OBJ(props) Q("type") ":" Q("object") "," Q("properties") ":{" props "}," \
                     Q("additionalProperties") ":false,"
#define ENUM(a) Q("enum") ":[" a "],"
#define SCHEMA(props, required) \
    "{" Q("type") ":" Q("object") "," Q("properties") ":{" props "}," \
    Q("required") ":[" required "]," Q("additionalProperties") ":false}"

#define P_SPACE PROP("space", T_STR Q("pattern") ":" Q("^[a-z0-9][a-z0-9_-]{0,63}$") "," \
    DESC("memory space (one per agent, user or project); omitted: the server's default space"))
/* cluster mode (docs/api.md, "Cluster mode"); accepted and without effect on a single node */
#define P_CONSISTENCY PROP("consistency", T_STR ENUM(Q("one") "," Q("quorum") "," Q("all")) \
    DESC("cluster: copies the write must reach before the answer (default: the server's " \
         "cluster.write_consistency)"))
#define P_READ PROP("read", T_STR ENUM(Q("primary") "," Q("nearest")) \
    DESC("cluster: primary (default) reads your own writes; nearest answers from a copy on " \
         "the node you asked when it holds one (maybe behind: stale_replica)"))
#define P_KIND PROP("kind", T_STR ENUM(Q("episodic") "," Q("semantic")) DESC("kind of memory"))
#define P_LIFECYCLE(name, d) PROP(name, T_STR ENUM(Q("ephemeral") "," Q("session") "," \
    Q("persistent")) DESC(d))
#define P_WHEN_WINDOW PROP("when", T_OBJ( \
        PROP("from", T_TIME DESC("from this time on (RFC 3339 or ms)")) "," \
        PROP("to", T_TIME DESC("before this time"))) \
    DESC("time window of the memories"))
/* the context filters shared by recall, recognize and reminisce */
#define P_CONTEXT_FILTERS \
    PROP("tags_any", T_STRS DESC("only memories with one of these tags")) "," \
    PROP("tags_all", T_STRS DESC("only memories with all of these tags")) "," \
    P_KIND "," \
    PROP("who", T_STR DESC("only memories with this person in their context")) "," \
    PROP("where", T_STR DESC("only memories of this place")) "," \
    PROP("session", T_STR DESC("only memories of this session")) "," \
    PROP("min_confidence", T_NUM DESC("minimum encoding confidence, 0..1")) "," \
    P_FILTER_EXPR
/* the filter language (docs/api.md, "Filters") */
#define P_FILTER_EXPR PROP("filter", Q("type") ":" Q("object") "," DESC( \
    "a filter, ANDed with the other arguments: {\\\"and\\\": [f, ...]}, {\\\"or\\\": [f, ...]}, " \
    "{\\\"not\\\": f} or {\\\"<field>\\\": {\\\"<op>\\\": value}}. Fields: tags, context.who, " \
    "context.where, context.session, metadata.<key>, kind, lifecycle, importance, when, " \
    "created_at. Ops: eq, ne, in, nin (a list), gt, gte, lt, lte (numbers; times as RFC 3339 " \
    "or ms), contains (tags, context.who), exists (true/false). Example: {\\\"or\\\": " \
    "[{\\\"tags\\\": {\\\"contains\\\": \\\"red\\\"}}, {\\\"metadata.n\\\": {\\\"gte\\\": 5}}]}"))
#define P_FILTERS \
    P_CONTEXT_FILTERS "," \
    PROP("metadata", T_STRMAP DESC("metadata that must match exactly")) "," \
    PROP("include_suppressed", T_BOOL DESC("also suppressed memories")) "," \
    PROP("as_of", T_TIME DESC("see the space as it was then (RFC 3339 or ms)"))

static const char remember_schema[] = SCHEMA(
    P_SPACE ","
    PROP("content", T_STR DESC("what to remember, in plain text")) ","
    PROP("embedding", T_NUMS DESC("optional embedding of the content (the space's dim values)")) ","
    P_KIND ","
    PROP("when", T_TIME DESC("when it happened (RFC 3339 or ms); default now")) ","
    PROP("context", T_OBJ(
        PROP("who", Q("type") ":[" Q("array") "," Q("string") "]," Q("items") ":{" Q("type") ":"
             Q("string") "}," DESC("people involved")) ","
        PROP("where", T_STR DESC("place")) ","
        PROP("session", T_STR DESC("conversation or session id")))
        DESC("who, where, session")) ","
    PROP("tags", T_STRS DESC("labels to filter by later")) ","
    PROP("metadata", T_STRMAP DESC("string key/value pairs")) ","
    PROP("confidence", T_NUM DESC("how sure the source is, 0..1 (default 1)")) ","
    PROP("importance", T_NUM DESC("0..1 (default 0.5); important memories fade slower")) ","
    PROP("emotional_valence", T_NUM DESC("-1..1 (default 0)")) ","
    P_LIFECYCLE("lifecycle", "how long to keep it (default: the space's)") ","
    PROP("ttl_seconds", T_INT DESC("expire after this many seconds; 0 = never")) ","
    PROP("idempotency_key", T_STR DESC("a retry with the same key writes nothing and returns the first id")) ","
    P_CONSISTENCY,
    Q("content"));

static const char recall_schema[] = SCHEMA(
    P_SPACE ","
    PROP("spaces", T_STRS DESC("search these spaces together instead of one (at most 256; in "
                               "a cluster, on whichever nodes hold them): results merged by "
                               "score, each naming its space")) ","
    PROP("space_prefix", T_STR DESC("search every space you may read whose name starts with "
                                    "this (instead of space or spaces)")) ","
    PROP("timeout_ms", T_INT DESC("wait at most this long (default 1000): with spaces or "
                                  "space_prefix, spaces not answered by then are listed as "
                                  "missing and lower the confidence (a space whose every "
                                  "copy is on a node the cluster suspects is missing at "
                                  "once, reason suspect); with one space in a "
                                  "cluster, past it (or with no copy reachable) the answer "
                                  "comes from gossiped semantic memories: path partition")) ","
    PROP("text", T_STR DESC("words to look for; text alone is a complete cue")) ","
    PROP("embedding", T_NUMS DESC("cue embedding (the space's dim values)")) ","
    PROP("k", T_INT DESC("results, 1..1000 (default 10)")) ","
    PROP("threshold", T_NUM DESC("minimum similarity (keyword coverage for a text cue)")) ","
    PROP("weights", T_OBJ(
        PROP("vector", T_NUM DESC("weight of the embedding ranking")) ","
        PROP("text", T_NUM DESC("weight of the text ranking")))
        DESC("fusion weights when both cues are given")) ","
    P_WHEN_WINDOW ","
    P_FILTERS ","
    PROP("spread", T_BOOL DESC("also follow associations (spreading activation; default true)")) ","
    PROP("max_hops", T_INT DESC("with spread: hops (default 2)")) ","
    PROP("reinforce", T_BOOL DESC("strengthen the returned memories so they fade slower")) ","
    PROP("time", T_STR ENUM(Q("boost") "," Q("filter") "," Q("off"))
         DESC("a time the text names ('on 7 Jan 2024', 'last May', 'two weeks ago'): "
              "boost the memories of then (default), keep only them, or ignore it")) ","
    PROP("time_ref", T_TIME DESC("when the question is asked, for 'last May' or 'yesterday' "
                                 "(RFC 3339 or ms; default as_of, else now)")) ","
    PROP("collapse_duplicates", T_BOOL DESC("fold near-duplicates into one result that says how "
                                            "many it stands for (default true)")) ","
    P_READ,
    "");

static const char forget_schema[] = SCHEMA(
    P_SPACE ","
    PROP("id", T_STR DESC("id of the memory to forget")) ","
    PROP("mode", T_STR ENUM(Q("delete") "," Q("suppress"))
         DESC("delete: erased for good (default); suppress: hidden, reversible")) ","
    P_CONSISTENCY,
    Q("id"));

static const char update_schema[] = SCHEMA(
    P_SPACE ","
    PROP("id", T_STR DESC("id of the memory to correct (it keeps this id)")) ","
    PROP("content", T_STR DESC("the corrected text")) ","
    PROP("embedding", T_NUMS DESC("the corrected embedding (send one with new content if the "
                                  "space's vectors come from you; default: kept)")) ","
    PROP("tags", T_STRS DESC("replace the tags")) ","
    PROP("metadata", T_STRMAP DESC("replace the metadata")) ","
    PROP("importance", T_NUM DESC("0..1")) ","
    PROP("context", T_OBJ(
        PROP("who", T_STRS DESC("people involved")) ","
        PROP("where", Q("type") ":[" Q("string") "," Q("null") "]," DESC("place; null clears it")) ","
        PROP("session", Q("type") ":[" Q("string") "," Q("null") "]," DESC("session; null clears it")))
        DESC("each part given replaces that part")) ","
    PROP("expected_version", T_INT DESC("only if this is still the current version (else a "
                                        "conflict error: read the memory again)")) ","
    PROP("idempotency_key", T_STR DESC("a retry with the same key writes nothing and returns "
                                       "the version written the first time")) ","
    P_CONSISTENCY,
    Q("id"));

static const char memory_id_schema[] = SCHEMA(
    P_SPACE ","
    PROP("id", T_STR DESC("id of the memory")),
    Q("id"));

static const char invalidate_schema[] = SCHEMA(
    P_SPACE ","
    PROP("id", T_STR DESC("id of the memory that no longer holds")) ","
    PROP("by", T_STR DESC("id of the memory that contradicts it")) ","
    PROP("reason", T_STR DESC("why it no longer holds")) ","
    P_CONSISTENCY,
    Q("id"));

static const char forget_where_schema[] = SCHEMA(
    P_SPACE ","
    P_CONTEXT_FILTERS ","
    PROP("metadata", T_STRMAP DESC("metadata that must match exactly")) ","
    P_WHEN_WINDOW ","
    PROP("filter", Q("type") ":" Q("object") ","
         DESC("a nested filter: an object with and: [filters], or: [filters], not: filter, and "
              "leaves such as tags: {contains: red} or metadata.n: {gte: 5} (docs/api.md, "
              "Filters)")) ","
    PROP("mode", T_STR ENUM(Q("delete") "," Q("suppress"))
         DESC("delete: erased for good (default); suppress: hidden, reversible")) ","
    PROP("dry_run", T_BOOL DESC("only count the matches and show a sample; change nothing. "
                                "Do this first")) ","
    PROP("async", T_BOOL DESC("run as a job even when small (past 10000 matches it always is); "
                              "poll it with forget_job")) ","
    P_CONSISTENCY,
    "");

static const char forget_job_schema[] = SCHEMA(
    P_SPACE ","
    PROP("job", T_STR DESC("the job id forget_where answered")) ","
    PROP("cancel", T_BOOL DESC("stop the job after its current chunk of 1000 memories")),
    Q("job"));

static const char list_spaces_schema[] = SCHEMA("", "");

static const char consolidate_schema[] = SCHEMA(
    P_SPACE ","
    PROP("threshold", T_NUM DESC("similarity to join a cluster, 0..1 (default: server setting)")) ","
    PROP("min_support", T_INT DESC("episodes a new semantic memory needs")) ","
    P_FILTER_EXPR,
    "");

static const char recognize_schema[] = SCHEMA(
    P_SPACE ","
    PROP("text", T_STR DESC("the cue in words")) ","
    PROP("embedding", T_NUMS DESC("the cue as an embedding")) ","
    PROP("threshold", T_NUM DESC("familiarity needed to recognize, 0..1 (default 0.85)")) ","
    P_WHEN_WINDOW ","
    P_FILTERS,
    "");

static const char reminisce_schema[] = SCHEMA(
    P_SPACE ","
    PROP("from", T_TIME DESC("from this time on (RFC 3339 or ms)")) ","
    PROP("to", T_TIME DESC("before this time")) ","
    PROP("topic", T_STR DESC("only memories about these words")) ","
    PROP("limit", T_INT DESC("memories, 1..1000 (default 50)")) ","
    P_CONTEXT_FILTERS,
    "");

static const char create_space_schema[] = SCHEMA(
    P_SPACE ","
    PROP("dim", T_INT DESC("embedding size, 1..4096 (default: the server's mcp.default_dim)")) ","
    PROP("metric", T_STR ENUM(Q("cosine") "," Q("l2") "," Q("dot")) DESC("vector metric (default cosine)")) ","
    P_LIFECYCLE("default_lifecycle", "lifecycle of memories that name none") ","
    PROP("text_language", T_STR DESC("stemming for word search: english (default), none, or "
                                     "another Snowball language (french, german, spanish, ...)")) ","
    PROP("embedding_model", T_STR DESC("the embedding model whose vectors the space holds: the "
                                       "server's provider embeds its text only while it serves "
                                       "this model; an empty string = never (bring your own "
                                       "vectors). "
                                       "Default: the provider's model when it applies")) ","
    PROP("index", T_OBJ(
        PROP("m", T_INT DESC("graph links per node, 4..64 (default: the server's)")) ","
        PROP("ef_construction", T_INT DESC("candidates while building, 8..4096")) ","
        PROP("ef_search", T_INT DESC("candidates while searching, 1..4096")) ","
        PROP("quantize", T_BOOL DESC("int8 codes for the graph walk; floats re-rank")))
        DESC("vector index parameters (default: the server's [engine] settings)")) ","
    PROP("dedup", T_STR ENUM(Q("exact") "," Q("off"))
         DESC("exact (default): remembering what is already stored (same words up to white "
              "space, same context and embedding) writes nothing and answers duplicate_of")) ","
    PROP("dedup_threshold", T_NUM DESC("link a new memory at least this similar (0..1) to an "
                                       "older one as its near-duplicate; recall folds them. "
                                       "Default: off")),
    Q("space"));
/* clang-format on */

/* ---- calling a handler in-process ---- */

typedef struct answer {
    int status;
    cJSON *json; /* the parsed body; NULL if none */
} answer;

static answer call(mcp_call *c, mn_http_handler_fn fn, const char *method, const char *space,
                   const char *id, const char *query, const cJSON *body)
{
    answer a = {503, NULL};
    api_inproc_req ir; /* the handler reads body as it is: no print, no second parse */
    api_inproc_init(&ir, body);
    mn_http_request_t *r = &ir.http;
    r->method = method;
    r->path = c->http->path;
    r->query = query ? query : "";
    r->headers = c->http->headers; /* the key, for audit lines */
    r->n_headers = c->http->n_headers;
    memcpy(r->request_id, c->http->request_id, sizeof r->request_id);
    if (space) r->params[r->n_params++] = space;
    if (id) r->params[r->n_params++] = id;
    /* only the key goes through: a handler may name who made a change (corrections) */
    mn_http_header_t auth = {(char *)"authorization",
                             (char *)mn_http_header_get(c->http, "authorization")};
    if (auth.value) r->headers = &auth, r->n_headers = 1;
    r->route = c->http->route;
    mn_http_response_t resp;
    memset(&resp, 0, sizeof resp);
    resp.status = 200;
    /* as the HTTP route would run it: routed to another node in cluster mode */
    const api_route_ctx *route = rest_route_of(c->api, fn, method);
    if (route)
        rest_dispatch(route, r, &resp);
    else
        fn(c->api, r, &resp);
    a.status = resp.status;
    if (resp.body && resp.body_len) a.json = cJSON_ParseWithLength(resp.body, resp.body_len);
    free(resp.body);
    free(resp.extra_headers);
    if (!a.json) a.status = 503;
    return a;
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The same for summaries: "" instead of NULL. */
static const char *jtext(const cJSON *o, const char *name)
{
    const char *s = jstr(o, name);
    return s ? s : "";
}

static double jnum(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *error_code(const answer *a)
{
    return jstr(cJSON_GetObjectItemCaseSensitive(a->json, "error"), "code");
}

/* ---- results ---- */

/* A growing text for the summary; on allocation failure it stays as it was. */
typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void tprintf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tprintf(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) return;
        t->p = p;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* Appends at most max bytes of s, never cutting a UTF-8 character, with "..." if cut. */
static void tclip(text *t, const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max) {
        tprintf(t, "%s", s);
        return;
    }
    while (max && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    tprintf(t, "%.*s...", (int)max, s);
}

/* {"content":[summary, the JSON], "structuredContent": json[, "isError": true]}; takes
 * summary and json. */
static cJSON *result(text *summary, cJSON *json, bool is_error)
{
    cJSON *r = cJSON_CreateObject();
    cJSON *content = cJSON_AddArrayToObject(r, "content");
    cJSON *t1 = cJSON_CreateObject();
    cJSON_AddStringToObject(t1, "type", "text");
    cJSON_AddStringToObject(t1, "text", summary->p ? summary->p : "");
    cJSON_AddItemToArray(content, t1);
    char *raw = json ? cJSON_PrintUnformatted(json) : NULL;
    if (raw) {
        /* the same JSON as text, for clients older than structuredContent */
        cJSON *t2 = cJSON_CreateObject();
        cJSON_AddStringToObject(t2, "type", "text");
        cJSON_AddStringToObject(t2, "text", raw);
        cJSON_AddItemToArray(content, t2);
        free(raw);
    }
    if (json && !cJSON_AddItemToObject(r, "structuredContent", json)) cJSON_Delete(json);
    cJSON_AddBoolToObject(r, "isError", is_error);
    free(summary->p);
    return r;
}

/* The tool result of an error answer ({"error":{"code","message","hint"}}). */
static cJSON *error_result(answer *a)
{
    text t = {0};
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(a->json, "error");
    const char *code = jstr(e, "code"), *msg = jstr(e, "message"), *hint = jstr(e, "hint");
    if (!e) {
        cJSON_Delete(a->json);
        a->json = NULL;
        code = "unavailable";
        msg = "the server could not answer (out of memory?)";
        hint = "retry later";
    }
    tprintf(&t, "Error %s: %s.", code ? code : "internal", msg ? msg : "");
    if (hint) tprintf(&t, " Hint: %s.", hint);
    cJSON *r = result(&t, a->json, true);
    a->json = NULL;
    return r;
}

/* An isError result with a mnemo error body made here (argument and access checks). */
static cJSON *refusal(int status, const char *code, const char *message, const char *hint)
{
    answer a = {status, cJSON_CreateObject()};
    cJSON *e = cJSON_AddObjectToObject(a.json, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    if (hint) cJSON_AddStringToObject(e, "hint", hint);
    return error_result(&a);
}

static cJSON *invalid(const char *message, const char *hint)
{
    return refusal(422, "invalid_argument", message, hint);
}

/* NULL if the POST's key may run op on space, else the isError result, with the codes of
 * HTTP's 401 and 403. */
static cJSON *authorize(const mcp_call *c, mn_auth_op_t op, const char *space)
{
    const char *key = mn_auth_http_key(c->http);
    mn_auth_verdict_t v;
    mn_auth_result_t res = mn_auth_allow(c->srv->auth, key, key ? strlen(key) : 0, op, space, &v);
    if (res == MN_AUTH_OK) return NULL;
    mn_log_debug("mcp: key \"%s\" refused %s", v.key_name, mn_auth_op_name(op));
    if (res == MN_AUTH_NO_KEY || res == MN_AUTH_BAD_KEY)
        return refusal(401, "unauthenticated", v.message, v.hint);
    return refusal(403, "permission_denied", v.message, v.hint);
}

/* ---- the tools ---- */

typedef struct mcp_tool mcp_tool;
/* Writes the readable summary of a successful answer. */
typedef void (*summary_fn)(text *t, const char *space, const cJSON *json);
/* Runs a tool whose call needs more than "args as the body" (NULL: run_plain). */
typedef cJSON *(*tool_fn)(mcp_call *c, const mcp_tool *t, const char *space, cJSON *args);

struct mcp_tool {
    const char *name, *title, *description;
    const char *schema;
    bool read_only, destructive, idempotent;
    bool has_space; /* takes "space", the {space} of the path */
    mn_http_handler_fn handler;
    const char *method; /* GET sends no body */
    summary_fn summarize;
    tool_fn run;
    mn_auth_op_t op; /* what it does, for mn_auth_allow */
};

/* The tool result of a handler's answer. */
static cJSON *finish(const mcp_tool *t, answer *a, const char *space)
{
    if (a->status >= 300) return error_result(a);
    text s = {0};
    t->summarize(&s, space, a->json);
    return result(&s, a->json, false);
}

static cJSON *run_plain(mcp_call *c, const mcp_tool *t, const char *space, cJSON *args)
{
    bool get = !strcmp(t->method, "GET");
    answer a =
        call(c, t->handler, t->method, t->has_space ? space : NULL, NULL, NULL, get ? NULL : args);
    return finish(t, &a, space);
}

static cJSON *run_remember(mcp_call *c, const mcp_tool *t, const char *space, cJSON *args)
{
    answer a = call(c, t->handler, t->method, space, NULL, NULL, args);
    bool created = false;
    const char *code = error_code(&a);
    if (a.status == 404 && code && !strcmp(code, "space_not_found")) {
        /* first use of the space: make it, sized by the embedding if there is one, if the key
         * may create spaces; else the refusal an explicit create_space would get */
        cJSON *denied = authorize(c, MN_AUTH_OP_SPACE_CREATE, space);
        if (denied) {
            cJSON_Delete(a.json);
            return denied;
        }
        const cJSON *emb = cJSON_GetObjectItemCaseSensitive(args, "embedding");
        int n = (int)api_json_array_size(emb); /* compact arrays have no children */
        cJSON *def = cJSON_CreateObject();
        cJSON_AddStringToObject(def, "name", space);
        cJSON_AddNumberToObject(def, "dim", n > 0 ? (double)n : (double)c->srv->default_dim);
        answer s = call(c, rest_h_space_create, "POST", NULL, NULL, NULL, def);
        cJSON_Delete(def);
        const char *made = error_code(&s);
        bool raced = s.status == 409 && made && !strcmp(made, "space_exists");
        if (s.status != 201 && !raced) { /* space_exists: another call made it first */
            cJSON_Delete(a.json);
            return error_result(&s);
        }
        created = s.status == 201;
        cJSON_Delete(s.json);
        cJSON_Delete(a.json);
        a = call(c, t->handler, t->method, space, NULL, NULL, args);
    }
    if (a.status < 300) {
        cJSON_AddStringToObject(a.json, "space", space);
        cJSON_AddBoolToObject(a.json, "space_created", created);
    }
    return finish(t, &a, space);
}

static void sum_remember(text *t, const char *space, const cJSON *json)
{
    if (jstr(json, "duplicate_of"))
        tprintf(t,
                "Already remembered in space \"%s\" as memory %s (duplicate_of: an equal "
                "memory is stored, nothing new was written).",
                space, jtext(json, "duplicate_of"));
    else if (jstr(json, "accepted"))
        tprintf(t,
                "Accepted under partition for space \"%s\" as memory %s (accepted: %s, merged: "
                "false): the space's primary is unreachable (%s), so this node keeps it durably "
                "and merges it with this id once the primary is back; reads do not show it "
                "until then.",
                space, jtext(json, "id"), jtext(json, "accepted"), jtext(json, "reason"));
    else
        tprintf(t, "Remembered in space \"%s\" as memory %s.", space, jtext(json, "id"));
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(json, "space_created")))
        tprintf(t, " (The space was created by this call.)");
}

static void memory_line(text *t, const cJSON *m)
{
    tclip(t, jtext(m, "content"), 400);
    tprintf(t, "\n   id %s, %s", jtext(m, "id"), jtext(m, "when"));
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(m, "tags");
    if (cJSON_GetArraySize(tags) > 0) {
        tprintf(t, ", tags");
        for (const cJSON *x = tags->child; x; x = x->next)
            if (cJSON_IsString(x)) tprintf(t, " %s", x->valuestring);
    }
}

/* The time window the cue's text named, so an agent can see and correct it. */
static void sum_time_window(text *t, const cJSON *json)
{
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(json, "time_window");
    if (!cJSON_IsObject(w)) return;
    const char *from = jstr(w, "from"), *to = jstr(w, "to"), *applied = jtext(w, "applied");
    tprintf(t, "\nTime named: \"%s\" = [%s, %s) (%s).", jtext(w, "text"), from ? from : "open",
            to ? to : "open",
            !strcmp(applied, "boost")    ? "memories of then ranked higher"
            : !strcmp(applied, "filter") ? "only memories of then"
                                         : "not used: a year or an open range");
}

/* The numbered lines of a recall's results; each names its space when it has one. */
static void hit_lines(text *t, const cJSON *hits)
{
    int i = 1;
    for (const cJSON *h = hits ? hits->child : NULL; h; h = h->next, i++) {
        const cJSON *conf = cJSON_GetObjectItemCaseSensitive(h, "confidence");
        tprintf(t, "\n%d. [", i);
        if (jstr(h, "space")) tprintf(t, "space %s, ", jstr(h, "space"));
        tprintf(t, "confidence %.2f %s] ", jnum(conf, "value"), jtext(conf, "category"));
        memory_line(t, cJSON_GetObjectItemCaseSensitive(h, "memory"));
        const cJSON *dups = cJSON_GetObjectItemCaseSensitive(h, "duplicate_ids");
        if (cJSON_GetArraySize(dups) > 0) {
            tprintf(t, "\n   stands for %d near-duplicate%s:", cJSON_GetArraySize(dups),
                    cJSON_GetArraySize(dups) == 1 ? "" : "s");
            for (const cJSON *x = dups->child; x; x = x->next)
                if (cJSON_IsString(x)) tprintf(t, " %s", x->valuestring);
        }
    }
}

/* A recall answered in partition mode (docs/gossip.md) says so: episodes unreachable. */
static void sum_partition(text *t, const cJSON *json)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(json, "partition");
    if (!cJSON_IsObject(p)) return;
    tprintf(t,
            " Partition mode: the space's episodes are unreachable (%s), so only its "
            "gossiped semantic memories answered, at a lower confidence.",
            jtext(p, "reason"));
}

static void sum_recall(text *t, const char *space, const cJSON *json)
{
    const cJSON *hits = cJSON_GetObjectItemCaseSensitive(json, "results");
    int n = cJSON_GetArraySize(hits);
    if (n == 0) {
        tprintf(t, "Nothing recalled from space \"%s\".", space);
        sum_partition(t, json);
        sum_time_window(t, json);
        return;
    }
    tprintf(t, "Recalled %d memor%s from space \"%s\" (recall confidence %.2f):", n,
            n == 1 ? "y" : "ies", space, jnum(json, "recall_confidence"));
    sum_partition(t, json);
    sum_time_window(t, json);
    hit_lines(t, hits);
}

/* A missing space's reason, spelled out where the word alone would not say enough. */
static const char *missing_why(const char *reason)
{
    if (!strcmp(reason, "partition"))
        return "partition: unreachable, its gossiped semantic memories stood in";
    if (!strcmp(reason, "suspect"))
        return "suspect: every copy is on a node suspected of having failed; not waited for";
    return reason;
}

/* A recall over many spaces: how many were searched, which are missing and why. */
static void sum_recall_many(text *t, const cJSON *json)
{
    const cJSON *hits = cJSON_GetObjectItemCaseSensitive(json, "results");
    const cJSON *missing = cJSON_GetObjectItemCaseSensitive(json, "missing");
    int n = cJSON_GetArraySize(hits),
        spaces = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(json, "spaces"));
    tprintf(t, "Recalled %d memor%s from %d space%s (recall confidence %.2f)", n,
            n == 1 ? "y" : "ies", spaces, spaces == 1 ? "" : "s", jnum(json, "recall_confidence"));
    if (cJSON_GetArraySize(missing) > 0) {
        tprintf(t, "; not searched, so a better answer may be missing:");
        for (const cJSON *m = missing->child; m; m = m->next) {
            tprintf(t, " %s (%s", jtext(m, "space"), missing_why(jtext(m, "reason")));
            const char *no = jstr(m, "no_stand_in");
            if (no)
                tprintf(t, "; its gossiped semantic memories cannot stand in: %s",
                        strcmp(no, "as_of") ? no : "as_of asked, and they keep no history");
            tprintf(t, ")");
        }
    }
    tprintf(t, n ? ":" : ".");
    sum_time_window(t, json);
    hit_lines(t, hits);
}

/* The recall tool with "spaces" or "space_prefix": POST /v1/recall, whose handler asks for
 * each space what the key may read (so the tool itself needs only a read key). */
static cJSON *run_recall_many(mcp_call *c, cJSON *args)
{
    if (cJSON_GetObjectItemCaseSensitive(args, "space"))
        return invalid("space: give space, or spaces / space_prefix, not both", NULL);
    cJSON *denied = authorize(c, MN_AUTH_OP_RECALL, NULL);
    if (denied) return denied;
    answer a = call(c, rest_h_recall_many, "POST", NULL, NULL, NULL, args);
    if (a.status >= 300) return error_result(&a);
    text s = {0};
    sum_recall_many(&s, a.json);
    return result(&s, a.json, false);
}

/* Percent-encodes s into a query value. */
static void query_value(const char *s, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s && o + 4 < len; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
}

static cJSON *run_forget(mcp_call *c, const mcp_tool *t, const char *space, cJSON *args)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(args, "id");
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(args, "mode");
    const cJSON *level = cJSON_GetObjectItemCaseSensitive(args, "consistency");
    if (!cJSON_IsString(id)) return invalid("id: expected a string (a memory id)", NULL);
    if (mode && !cJSON_IsNull(mode) && !cJSON_IsString(mode))
        return invalid("mode: expected \"delete\" or \"suppress\"", NULL);
    if (level && !cJSON_IsNull(level) && !cJSON_IsString(level))
        return invalid("consistency: expected \"one\", \"quorum\" or \"all\"", NULL);
    char query[256] = "", v[96];
    if (cJSON_IsString(mode)) {
        query_value(mode->valuestring, v, sizeof v);
        snprintf(query, sizeof query, "mode=%s", v);
    }
    if (cJSON_IsString(level)) {
        query_value(level->valuestring, v, sizeof v);
        snprintf(query + strlen(query), sizeof query - strlen(query), "%sconsistency=%s",
                 *query ? "&" : "", v);
    }
    answer a = call(c, t->handler, t->method, space, id->valuestring, query, NULL);
    return finish(t, &a, space);
}

static void sum_forget(text *t, const char *space, const cJSON *json)
{
    tprintf(t, "Forgot memory %s in space \"%s\" (%s).", jtext(json, "id"), space,
            jtext(json, "mode"));
}

/* A tool about one memory: "id" becomes the {id} of the path, the other arguments the body
 * (none for a GET). */
static cJSON *run_on_memory(mcp_call *c, const mcp_tool *t, const char *space, cJSON *args)
{
    cJSON *id = cJSON_DetachItemFromObjectCaseSensitive(args, "id");
    cJSON *r;
    if (!cJSON_IsString(id)) {
        r = invalid("id: expected a string (a memory id)", NULL);
    } else {
        bool get = !strcmp(t->method, "GET");
        answer a = call(c, t->handler, t->method, space, id->valuestring, NULL, get ? NULL : args);
        r = finish(t, &a, space);
    }
    cJSON_Delete(id);
    return r;
}

static void changed_list(text *t, const cJSON *m)
{
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(m, "changed");
    for (const cJSON *x = ch ? ch->child : NULL; x; x = x->next)
        if (cJSON_IsString(x)) tprintf(t, "%s%s", x == ch->child ? "" : ", ", x->valuestring);
}

static void sum_update(text *t, const char *space, const cJSON *json)
{
    tprintf(t, "Corrected memory %s in space \"%s\": now version %.0f (changed: ",
            jtext(json, "id"), space, jnum(json, "version"));
    changed_list(t, json);
    tprintf(t, "). The earlier version is kept in its history.");
}

static void sum_history(text *t, const char *space, const cJSON *json)
{
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(json, "versions");
    int n = cJSON_GetArraySize(vs);
    tprintf(t, "Memory %s of space \"%s\" has %d version%s, oldest first:", jtext(json, "id"),
            space, n, n == 1 ? "" : "s");
    for (const cJSON *v = vs ? vs->child : NULL; v; v = v->next) {
        tprintf(t, "\nv%.0f, valid from %s%s%s", jnum(v, "version"), jtext(v, "valid_from"),
                jstr(v, "valid_to") ? " to " : "", jtext(v, "valid_to"));
        if (jstr(v, "changed_by")) tprintf(t, ", by %s", jstr(v, "changed_by"));
        if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(v, "changed")) > 0) {
            tprintf(t, ", changed ");
            changed_list(t, v);
        }
        tprintf(t, ": ");
        tclip(t, jtext(v, "content"), 200);
    }
}

static void sum_invalidate(text *t, const char *space, const cJSON *json)
{
    tprintf(t, "Memory %s of space \"%s\" no longer holds since %s", jtext(json, "id"), space,
            jtext(json, "valid_to"));
    if (jstr(json, "invalidated_by")) tprintf(t, " (contradicted by %s)", jstr(json, "invalidated_by"));
    tprintf(t, "; it is kept, and recall flags it \"superseded\".");
}

static void sum_job(text *t, const cJSON *j)
{
    tprintf(t, "Job %s in space \"%s\" is %s: %.0f of %.0f memories gone through, %.0f %s.",
            jtext(j, "job"), jtext(j, "space"), jtext(j, "state"), jnum(j, "done"),
            jnum(j, "total"), jnum(j, "forgotten"),
            !strcmp(jtext(j, "mode"), "suppress") ? "suppressed" : "deleted");
    if (!strcmp(jtext(j, "state"), "running"))
        tprintf(t, " Poll it with forget_job {\"job\": \"%s\"}.", jtext(j, "job"));
}

static void sum_forget_where(text *t, const char *space, const cJSON *json)
{
    if (jstr(json, "job")) {
        sum_job(t, json);
        return;
    }
    bool suppress = !strcmp(jtext(json, "mode"), "suppress");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(json, "dry_run"))) {
        tprintf(t, "Dry run: %.0f memories of space \"%s\" match and would be %s; nothing "
                   "changed.", jnum(json, "count"), space, suppress ? "suppressed" : "deleted");
        const cJSON *sample = cJSON_GetObjectItemCaseSensitive(json, "sample");
        int i = 1;
        for (const cJSON *m = sample ? sample->child : NULL; m; m = m->next, i++) {
            tprintf(t, "\n%d. ", i);
            memory_line(t, m);
        }
        return;
    }
    tprintf(t, "%s %.0f memories of space \"%s\" (%.0f matched).",
            suppress ? "Suppressed" : "Deleted", jnum(json, "forgotten"), space,
            jnum(json, "count"));
}

static cJSON *run_forget_job(mcp_call *c, const mcp_tool *t, const char *space, cJSON *args)
{
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(args, "job");
    const cJSON *cancel = cJSON_GetObjectItemCaseSensitive(args, "cancel");
    if (!cJSON_IsString(job)) return invalid("job: expected a string (a job id)", NULL);
    if (cancel && !cJSON_IsNull(cancel) && !cJSON_IsBool(cancel))
        return invalid("cancel: expected true or false", NULL);
    bool stop = cJSON_IsTrue(cancel);
    answer a = call(c, stop ? rest_h_job_cancel : t->handler, stop ? "DELETE" : "GET", space,
                    job->valuestring, NULL, NULL);
    return finish(t, &a, space);
}

static void sum_forget_job(text *t, const char *space, const cJSON *json)
{
    (void)space;
    sum_job(t, json);
}

static void sum_list_spaces(text *t, const char *space, const cJSON *json)
{
    const cJSON *spaces = cJSON_GetObjectItemCaseSensitive(json, "spaces");
    int n = cJSON_GetArraySize(spaces);
    if (n == 0)
        tprintf(t, "No spaces yet; remember creates one on first use.");
    else
        tprintf(t, "%d space%s:", n, n == 1 ? "" : "s");
    for (const cJSON *s = spaces ? spaces->child : NULL; s; s = s->next)
        tprintf(t, "\n- %s (dim %.0f, %s)", jtext(s, "name"), jnum(s, "dim"), jtext(s, "metric"));
}

/* The members SWIM suspects, if any: a recall over many spaces asks their copies last. */
static void sum_suspects(text *t, const cJSON *members)
{
    bool any = false;
    for (const cJSON *x = members ? members->child : NULL; x; x = x->next) {
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "suspect"))) continue;
        tprintf(t, any ? ", %s" : " Suspected of having failed (SWIM): %s", jtext(x, "id"));
        any = true;
    }
    if (any) tprintf(t, ".");
}

static void sum_cluster_spaces(text *t, const char *space, const cJSON *json)
{
    (void)space;
    const cJSON *spaces = cJSON_GetObjectItemCaseSensitive(json, "spaces");
    int n = cJSON_GetArraySize(spaces);
    int m = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(json, "members"));
    tprintf(t,
            "Node %s: replication factor %.0f, %d member%s, %d space%s (%.0f under-replicated, "
            "%.0f unavailable).",
            jtext(json, "self"), jnum(json, "replication_factor"), m, m == 1 ? "" : "s", n,
            n == 1 ? "" : "s", jnum(json, "under_replicated"), jnum(json, "unavailable"));
    sum_suspects(t, cJSON_GetObjectItemCaseSensitive(json, "members"));
    int shown = 0;
    for (const cJSON *e = spaces ? spaces->child : NULL; e; e = e->next) {
        if (shown++ == 50) {
            tprintf(t, "\n... (the structured result lists every space)");
            break;
        }
        tprintf(t, "\n- %s: epoch %.0f, primary %s, holders", jtext(e, "name"), jnum(e, "epoch"),
                jstr(e, "primary") ? jtext(e, "primary") : "none");
        const cJSON *hs = cJSON_GetObjectItemCaseSensitive(e, "holders");
        for (const cJSON *h = hs ? hs->child : NULL; h; h = h->next)
            tprintf(t, " %s (%s%s)", jtext(h, "node"), jtext(h, "role"),
                    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "down")) ? ", down" : "");
    }
}

static void sum_cluster_gossip(text *t, const char *space, const cJSON *json)
{
    (void)space;
    const cJSON *spaces = cJSON_GetObjectItemCaseSensitive(json, "spaces");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(json, "stats");
    int n = cJSON_GetArraySize(spaces);
    tprintf(t,
            "Gossip (scope %s): %d space%s with gossiped semantic memories here; %.0f rounds with "
            "%.0f peers, %.0f bytes sent, %.0f received, %.0f entries pulled, %.0f pushed.",
            jtext(json, "scope"), n, n == 1 ? "" : "s", jnum(st, "rounds"), jnum(st, "peers"),
            jnum(st, "bytes_sent"), jnum(st, "bytes_received"), jnum(st, "entries_pulled"),
            jnum(st, "entries_pushed"));
    int shown = 0;
    for (const cJSON *e = spaces ? spaces->child : NULL; e; e = e->next) {
        if (shown++ == 50) {
            tprintf(t, "\n... (the structured result lists every space)");
            break;
        }
        double differing = jnum(e, "peers_differing");
        tprintf(t, "\n- %s: %.0f semantic memories (%.0f records), root %s, %s", jtext(e, "name"),
                jnum(e, "semantic_memories"), jnum(e, "records"), jtext(e, "root"),
                differing > 0 ? "differs from some peers" : "in sync with its peers");
        if (differing > 0) tprintf(t, " (%.0f)", differing);
    }
}

static void sum_cluster_hints(text *t, const char *space, const cJSON *json)
{
    (void)space;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(json, "stats");
    tprintf(t,
            "Partition writes %sed here. %.0f memories held as hints (at most %.0f); since start "
            "%.0f accepted, %.0f merged, %.0f rejected by the primary, %.0f refused (full), "
            "%.0f dropped with their space.",
            jtext(json, "mode"), jnum(json, "pending"), jnum(json, "max"), jnum(st, "accepted"),
            jnum(st, "merged"), jnum(st, "rejected"), jnum(st, "full"), jnum(st, "dropped"));
    const cJSON *spaces = cJSON_GetObjectItemCaseSensitive(json, "spaces");
    for (const cJSON *e = spaces ? spaces->child : NULL; e; e = e->next)
        tprintf(t, "\n- %s: %.0f pending", jtext(e, "name"), jnum(e, "pending"));
}

static void sum_consolidate(text *t, const char *space, const cJSON *json)
{
    tprintf(t,
            "Consolidated space \"%s\": %.0f episodes examined, %.0f semantic memories created, "
            "%.0f updated, %.0f retired, %.0f episodes absorbed, %.0f changes outside the "
            "filter left for a later run.",
            space, jnum(json, "candidates"), jnum(json, "created"), jnum(json, "updated"),
            jnum(json, "retired"), jnum(json, "episodes"), jnum(json, "skipped"));
}

static void sum_recognize(text *t, const char *space, const cJSON *json)
{
    bool yes = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(json, "recognized"));
    tprintf(t, "%s in space \"%s\" (familiarity %.2f)", yes ? "Recognized" : "Not recognized",
            space, jnum(json, "familiarity"));
    if (jstr(json, "best")) tprintf(t, "; closest memory %s", jstr(json, "best"));
    tprintf(t, ".");
}

static void sum_reminisce(text *t, const char *space, const cJSON *json)
{
    const cJSON *mems = cJSON_GetObjectItemCaseSensitive(json, "memories");
    int n = cJSON_GetArraySize(mems);
    if (n == 0)
        tprintf(t, "No memories in that window of space \"%s\".", space);
    else
        tprintf(t, "%d memor%s of space \"%s\" in time order:", n, n == 1 ? "y" : "ies", space);
    int i = 1;
    for (const cJSON *m = mems ? mems->child : NULL; m; m = m->next, i++) {
        tprintf(t, "\n%d. ", i);
        memory_line(t, m);
    }
}

static cJSON *run_create_space(mcp_call *c, const mcp_tool *t, const char *space, cJSON *args)
{
    cJSON_AddStringToObject(args, "name", space);
    if (!cJSON_GetObjectItemCaseSensitive(args, "dim"))
        cJSON_AddNumberToObject(args, "dim", c->srv->default_dim);
    answer a = call(c, t->handler, t->method, NULL, NULL, NULL, args);
    return finish(t, &a, space);
}

static void sum_create_space(text *t, const char *space, const cJSON *json)
{
    tprintf(t, "Created space \"%s\" (dim %.0f, %s, dedup %s).", space, jnum(json, "dim"),
            jtext(json, "metric"), jtext(json, "dedup"));
}

/* name, title, description, schema, read-only, destructive, idempotent, has_space, handler,
 * method, summary, runner, auth operation */
static const mcp_tool tools[] = {
    {"remember", "Remember",
     "Store a memory: an event, fact, decision or preference worth keeping, in plain text "
     "(an embedding is optional). The space is created on first use. Returns the memory's id; "
     "if an equal memory is stored already, its id and duplicate_of, and nothing is written.",
     remember_schema, false, false, false, true, rest_h_remember, "POST", sum_remember,
     run_remember, MN_AUTH_OP_REMEMBER},
    {"recall", "Recall",
     "Find memories matching a cue: text (words), an embedding, or both, with optional "
     "filters. Each result has a confidence (value 0..1 and a category). Give spaces or "
     "space_prefix to search many spaces at once.",
     recall_schema, true, false, false, true, rest_h_recall, "POST", sum_recall, NULL,
     MN_AUTH_OP_RECALL},
    {"forget", "Forget",
     "Forget a memory by id: mode delete erases it for good (default), suppress hides it "
     "reversibly.",
     forget_schema, false, true, true, true, rest_h_forget, "DELETE", sum_forget, run_forget,
     MN_AUTH_OP_FORGET},
    {"update", "Correct a memory",
     "Correct a memory that was wrong or is out of date: give its id and the fields to change "
     "(content, tags, metadata, importance, context, embedding); the rest is kept. The memory "
     "keeps its id and becomes a new version; the old one stays in its history.",
     update_schema, false, false, false, true, rest_h_update, "PATCH", sum_update, run_on_memory,
     MN_AUTH_OP_REMEMBER},
    {"history", "Memory history",
     "Every version of a memory, oldest first: what it said, when, and who changed what.",
     memory_id_schema, true, false, true, true, rest_h_history, "GET", sum_history, run_on_memory,
     MN_AUTH_OP_MEMORY_READ},
    {"invalidate", "Invalidate a memory",
     "Mark a memory as no longer true because another contradicts it (give that one as by), "
     "without deleting it: it stays readable, and recall flags it as superseded.",
     invalidate_schema, false, false, true, true, rest_h_invalidate, "POST", sum_invalidate,
     run_on_memory, MN_AUTH_OP_REMEMBER},
    {"forget_where", "Forget by filter",
     "Forget every memory of a space that a filter matches (tags, metadata, kind, time window, "
     "who, where, session, or a nested filter): delete erases them for good, suppress hides "
     "them. Run it with dry_run first to see how many match and a sample. Large runs become a "
     "job: poll it with forget_job.",
     forget_where_schema, false, true, false, true, rest_h_forget_where, "POST", sum_forget_where,
     NULL, MN_AUTH_OP_FORGET},
    {"forget_job", "Forget job",
     "The progress of a forget_where job (done of total), or cancel it.", forget_job_schema, false,
     false, true, true, rest_h_job_get, "GET", sum_forget_job, run_forget_job, MN_AUTH_OP_FORGET},
    {"list_spaces", "List spaces", "List the memory spaces with their dimension and metric.",
     list_spaces_schema, true, false, true, false, rest_h_space_list, "GET", sum_list_spaces, NULL,
     MN_AUTH_OP_SPACE_LIST},
    {"cluster_spaces", "Cluster placement",
     "Where each memory space lives in the cluster: its primary, its replicas and how far "
     "behind they are, the members, and the spaces under-replicated or unavailable (an admin "
     "tool; a single node answers that it runs alone).",
     list_spaces_schema, true, false, true, false, rest_h_cluster_spaces, "GET", sum_cluster_spaces,
     NULL, MN_AUTH_OP_ADMIN},
    {"cluster_gossip", "Cluster gossip",
     "What this node holds of the gossip of consolidated (semantic) memories: per space the "
     "Merkle root, the semantic memories a recall can answer from when the space's holders "
     "are unreachable, whether peers differ, and the gossip counters (an admin tool; a single "
     "node answers that it runs alone).",
     list_spaces_schema, true, false, true, false, rest_h_cluster_gossip, "GET", sum_cluster_gossip,
     NULL, MN_AUTH_OP_ADMIN},
    {"cluster_hints", "Cluster hints",
     "The partition writes this node holds as hints until the space's primary is reachable "
     "again: the mode (accept or reject), how many memories wait, per space, and the counts "
     "merged, rejected, refused and dropped with their space (an admin tool; a single node "
     "answers that it runs alone).",
     list_spaces_schema, true, false, true, false, rest_h_cluster_hints, "GET", sum_cluster_hints,
     NULL, MN_AUTH_OP_ADMIN},
    {"consolidate", "Consolidate",
     "Merge related episodes of a space into semantic memories now (this also runs on a "
     "schedule). With a filter, only the semantic memories of clusters holding a matching "
     "episode are written; the rest wait for a later run (counted as skipped).",
     consolidate_schema, false, false, true, true, rest_h_consolidate, "POST", sum_consolidate,
     NULL, MN_AUTH_OP_CONSOLIDATE},
    {"recognize", "Recognize",
     "Has the space seen something like this cue? Answers recognized, a familiarity 0..1 and "
     "the closest memory, without recalling.",
     recognize_schema, true, false, true, true, rest_h_recognize, "POST", sum_recognize, NULL,
     MN_AUTH_OP_RECALL},
    {"reminisce", "Reminisce",
     "List memories in time order within a window, optionally about a topic or a person.",
     reminisce_schema, true, false, true, true, rest_h_reminisce, "POST", sum_reminisce, NULL,
     MN_AUTH_OP_RECALL},
    {"create_space", "Create space",
     "Create a memory space with a given embedding size and metric (remember also creates "
     "spaces on first use).",
     create_space_schema, false, false, false, true, rest_h_space_create, "POST", sum_create_space,
     run_create_space, MN_AUTH_OP_SPACE_CREATE},
};
#define N_TOOLS (sizeof tools / sizeof tools[0])

cJSON *mcp_tools_build(void)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < N_TOOLS; i++) {
        const mcp_tool *t = &tools[i];
        cJSON *schema = cJSON_Parse(t->schema);
        cJSON *o = cJSON_CreateObject();
        if (!schema || !o || !cJSON_AddItemToArray(arr, o)) {
            if (!schema) mn_log_error("mcp: the schema of tool %s is not JSON", t->name);
            cJSON_Delete(schema);
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "title", t->title);
        cJSON_AddStringToObject(o, "description", t->description);
        cJSON_AddItemToObject(o, "inputSchema", schema);
        cJSON *an = cJSON_AddObjectToObject(o, "annotations");
        cJSON_AddStringToObject(an, "title", t->title);
        cJSON_AddBoolToObject(an, "readOnlyHint", t->read_only);
        cJSON_AddBoolToObject(an, "destructiveHint", t->destructive);
        cJSON_AddBoolToObject(an, "idempotentHint", t->idempotent);
        cJSON_AddBoolToObject(an, "openWorldHint", false);
    }
    return arr;
}

/* Checks args against the top level of the tool's schema: known names only, each once, and
 * the required ones present. Value types are left to the handler, whose messages name the
 * field. NULL if fine, else the isError result. */
static cJSON *check_args(const cJSON *schema, const cJSON *args)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(schema, "required");
    char msg[600];
    int n = 0;
    for (const cJSON *a = args->child; a; a = a->next, n++) {
        if (cJSON_GetObjectItemCaseSensitive(props, a->string)) continue;
        char name[80];
        api_utf8_sanitize(a->string, name, sizeof name);
        int off = snprintf(msg, sizeof msg, "%s: unknown argument (known:", name);
        for (const cJSON *p = props->child; p && off > 0 && (size_t)off < sizeof msg; p = p->next)
            off += snprintf(msg + off, sizeof msg - (size_t)off, " %s", p->string);
        if (off > 0 && (size_t)off < sizeof msg) snprintf(msg + off, sizeof msg - (size_t)off, ")");
        return invalid(msg, "the tool's inputSchema (tools/list) lists its arguments");
    }
    /* every name is known, so more members than properties means a repeated one */
    if (n > cJSON_GetArraySize(props)) return invalid("an argument is given twice", NULL);
    for (const cJSON *r = req ? req->child : NULL; r; r = r->next) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, r->valuestring);
        if (!v || cJSON_IsNull(v)) {
            snprintf(msg, sizeof msg, "%s: required", r->valuestring);
            return invalid(msg, NULL);
        }
    }
    return NULL;
}

cJSON *mcp_tools_call(mcp_call *c, const cJSON *params, int *code, char *msg, size_t msg_len)
{
    const cJSON *name = params ? cJSON_GetObjectItemCaseSensitive(params, "name") : NULL;
    if (!cJSON_IsString(name)) {
        *code = MCP_INVALID_PARAMS;
        snprintf(msg, msg_len, "Invalid params: params.name (the tool's name) is required");
        return NULL;
    }
    const mcp_tool *t = NULL;
    const cJSON *listed = NULL;
    size_t i = 0;
    for (const cJSON *x = c->srv->tools ? c->srv->tools->child : NULL; x; x = x->next, i++)
        if (!strcmp(name->valuestring, tools[i].name)) {
            t = &tools[i];
            listed = x;
        }
    if (!t) {
        char clean[100];
        api_utf8_sanitize(name->valuestring, clean, sizeof clean);
        *code = MCP_INVALID_PARAMS;
        snprintf(msg, msg_len, "Unknown tool: %s", clean);
        return NULL;
    }
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(params, "arguments");
    if (args && !cJSON_IsObject(args) && !cJSON_IsNull(args)) {
        *code = MCP_INVALID_PARAMS;
        snprintf(msg, msg_len, "Invalid params: params.arguments must be an object");
        return NULL;
    }
    /* references to the arguments (compact arrays and all): space is detached from it, and
     * create_space adds to it, without a copy of the tree */
    cJSON *a = api_json_refs(cJSON_IsObject(args) ? args : NULL);
    if (!a) {
        *code = MCP_INTERNAL_ERROR;
        snprintf(msg, msg_len, "Internal error: out of memory");
        return NULL;
    }
    cJSON *r = check_args(cJSON_GetObjectItemCaseSensitive(listed, "inputSchema"), a);
    if (r) {
        cJSON_Delete(a);
        return r;
    }
    char space[MN_SPACE_NAME_MAX + 1] = "";
    if (t->handler == rest_h_recall && (cJSON_GetObjectItemCaseSensitive(a, "spaces") ||
                                        cJSON_GetObjectItemCaseSensitive(a, "space_prefix"))) {
        r = run_recall_many(c, a);
        cJSON_Delete(a);
        return r;
    }
    if (t->has_space) {
        cJSON *s = cJSON_DetachItemFromObjectCaseSensitive(a, "space");
        if (s && !cJSON_IsNull(s) && !cJSON_IsString(s))
            r = invalid("space: expected a string", NULL);
        else if (cJSON_IsString(s) && strlen(s->valuestring) > MN_SPACE_NAME_MAX)
            r = invalid("space: must match [a-z0-9][a-z0-9_-]{0,63}", NULL);
        else
            snprintf(space, sizeof space, "%s",
                     cJSON_IsString(s) ? s->valuestring : c->srv->default_space);
        cJSON_Delete(s);
    }
    if (!r) r = authorize(c, t->op, space);
    if (!r) r = (t->run ? t->run : run_plain)(c, t, space, a);
    cJSON_Delete(a);
    return r;
}
