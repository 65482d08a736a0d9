/* JSON plumbing of the HTTP API: a per-request arena, a streaming JSON writer,
 * the request body (parsed by json_parse.c into an arena tree of cJSON nodes),
 * typed readers over cJSON values, query-string parsing and the mapping of
 * engine errors to HTTP status + error body.
 *
 * Invariants: the JSON layer checks types only (422 "<field>: expected ...");
 * value ranges are the engine's. Writers never emit NaN or infinities (null
 * instead), and floats are written as the shortest text that reads back as the
 * same float32. JSON is RFC 8259; times are RFC 3339 UTC with milliseconds. */
#include "api_internal.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- arena ---- */

struct api_chunk {
    api_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

#define ARENA_CHUNK 16384

void api_arena_init(api_arena *a)
{
    a->head = NULL;
}

void *api_arena_alloc(api_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    api_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->cap = cap;
        c->used = 0;
        if (a->head && n > ARENA_CHUNK) {
            /* a big block goes behind the current chunk, which keeps serving small ones */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *api_arena_strndup(api_arena *a, const char *s, size_t n)
{
    char *p = api_arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void api_arena_free(api_arena *a)
{
    api_chunk *c = a->head;
    while (c) {
        api_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}

/* ---- writer ---- */

void jw_init(api_jw *w)
{
    memset(w, 0, sizeof *w);
    w->first[0] = true;
}

void jw_free(api_jw *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

static bool reserve(api_jw *w, size_t n)
{
    if (w->oom) return false;
    if (w->cap - w->len >= n + 1) return true;
    size_t cap = w->cap ? w->cap : 256;
    while (cap - w->len < n + 1) cap *= 2;
    char *b = realloc(w->buf, cap);
    if (!b) {
        w->oom = true;
        return false;
    }
    w->buf = b;
    w->cap = cap;
    return true;
}

static void put(api_jw *w, const char *s, size_t n)
{
    if (!reserve(w, n)) return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void putc_(api_jw *w, char c)
{
    put(w, &c, 1);
}

/* Comma before a value unless it follows a key or opens its container. */
static void value_sep(api_jw *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (!w->first[w->depth]) putc_(w, ',');
    w->first[w->depth] = false;
}

static void open_(api_jw *w, char c)
{
    value_sep(w);
    putc_(w, c);
    if (w->depth + 1 < API_JW_DEPTH) w->depth++;
    else w->oom = true; /* deeper than any document we write: a bug, reported as 503 */
    w->first[w->depth] = true;
}

static void close_(api_jw *w, char c)
{
    putc_(w, c);
    if (w->depth > 0) w->depth--;
}

void jw_obj(api_jw *w)
{
    open_(w, '{');
}
void jw_obj_end(api_jw *w)
{
    close_(w, '}');
}
void jw_arr(api_jw *w)
{
    open_(w, '[');
}
void jw_arr_end(api_jw *w)
{
    close_(w, ']');
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if the bytes there are not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3
                                 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || len > n || !mn_utf8_valid((const char *)s, len)) return 0;
    return len;
}

void api_utf8_sanitize(const char *in, char *out, size_t len)
{
    size_t n = strlen(in), o = 0;
    for (size_t i = 0; i < n && o + 1 < len;) {
        size_t l = utf8_seq((const unsigned char *)in + i, n - i);
        if (!l) {
            out[o++] = '?';
            i++;
        } else if (o + l < len) {
            memcpy(out + o, in + i, l);
            o += l;
            i += l;
        } else {
            break;
        }
    }
    if (len) out[o < len ? o : len - 1] = '\0';
}

/* Writes s as a JSON string. Bytes that are not valid UTF-8 become U+FFFD, so
 * the output is valid JSON whatever the input (stored strings are validated by
 * the engine; this guards echoes of raw input such as paths). */
static void put_escaped(api_jw *w, const char *s, size_t n)
{
    putc_(w, '"');
    size_t run = 0; /* bytes copied verbatim in one go */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t l = utf8_seq((const unsigned char *)s + i, n - i);
            if (l) {
                run += l;
                i += l;
                continue;
            }
            put(w, s + i - run, run);
            run = 0;
            put(w, "\\ufffd", 6);
            i++;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            i++;
            continue;
        }
        put(w, s + i - run, run);
        run = 0;
        char esc[8];
        switch (c) {
        case '"': put(w, "\\\"", 2); break;
        case '\\': put(w, "\\\\", 2); break;
        case '\n': put(w, "\\n", 2); break;
        case '\r': put(w, "\\r", 2); break;
        case '\t': put(w, "\\t", 2); break;
        case '\b': put(w, "\\b", 2); break;
        case '\f': put(w, "\\f", 2); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(w, esc, 6);
        }
        i++;
    }
    put(w, s + n - run, run);
    putc_(w, '"');
}

void jw_key(api_jw *w, const char *key)
{
    if (!w->first[w->depth]) putc_(w, ',');
    w->first[w->depth] = false;
    put_escaped(w, key, strlen(key));
    putc_(w, ':');
    w->after_key = true;
}

void jw_strn(api_jw *w, const char *s, size_t n)
{
    value_sep(w);
    put_escaped(w, s, n);
}

void jw_str(api_jw *w, const char *s)
{
    jw_strn(w, s, strlen(s));
}

void jw_str_or_null(api_jw *w, const char *s)
{
    if (s) jw_str(w, s);
    else jw_null(w);
}

void jw_int(api_jw *w, int64_t v)
{
    char b[32];
    value_sep(w);
    put(w, b, (size_t)snprintf(b, sizeof b, "%" PRId64, v));
}

void jw_uint(api_jw *w, uint64_t v)
{
    char b[32];
    value_sep(w);
    put(w, b, (size_t)snprintf(b, sizeof b, "%" PRIu64, v));
}

void jw_float(api_jw *w, float v)
{
    if (!isfinite(v)) {
        jw_null(w);
        return;
    }
    char b[32];
    int n = 0;
    for (int p = 6; p <= 9; p++) {
        n = snprintf(b, sizeof b, "%.*g", p, (double)v);
        if (strtof(b, NULL) == v) break;
    }
    value_sep(w);
    put(w, b, (size_t)n);
}

void jw_double(api_jw *w, double v, int precision)
{
    if (!isfinite(v)) {
        jw_null(w);
        return;
    }
    char b[40];
    value_sep(w);
    put(w, b, (size_t)snprintf(b, sizeof b, "%.*g", precision, v));
}

void jw_bool(api_jw *w, bool v)
{
    value_sep(w);
    if (v) put(w, "true", 4);
    else put(w, "false", 5);
}

void jw_null(api_jw *w)
{
    value_sep(w);
    put(w, "null", 4);
}

void jw_raw(api_jw *w, const char *json)
{
    value_sep(w);
    put(w, json, strlen(json));
}

void jw_time(api_jw *w, int64_t ms)
{
    char b[40];
    mn_time_format_rfc3339(ms, b, sizeof b);
    jw_str(w, b);
}

void jw_id(api_jw *w, const mn_id_t *id)
{
    char b[MN_ID_TEXT_LEN + 1];
    mn_id_format(id, b);
    jw_strn(w, b, MN_ID_TEXT_LEN);
}

void jw_respond(api_jw *w, mn_http_response_t *resp, int status)
{
    if (w->oom) {
        jw_free(w);
        mn_http_respond_error(resp, 503, "unavailable", "out of memory writing the response",
                              "retry later");
        return;
    }
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = w->buf;
    resp->body_len = w->len;
    w->buf = NULL;
    w->len = w->cap = 0;
}

void api_respond_doc(mn_http_response_t *resp, api_cluster_doc_fn fn, void *arg)
{
    int status = 0;
    mn_error err = {0};
    char *doc = fn(arg, &status, &err);
    if (doc)
        mn_http_respond(resp, 200, NULL, doc, strlen(doc));
    else
        mn_http_respond_error(resp, status ? status : 503, "unavailable", err.message, NULL);
    free(doc);
}

/* ---- errors ---- */

int api_http_status(mn_err rc)
{
    switch (rc) {
    case MN_ERR_INVALID: return 422;
    case MN_ERR_PARSE: return 400;
    case MN_ERR_NOT_FOUND:
    case MN_ERR_GONE: return 404;
    case MN_ERR_EXISTS:
    case MN_ERR_LIMIT:
    case MN_ERR_CONFLICT: return 409;
    case MN_ERR_TOO_LARGE: return 413;
    case MN_ERR_CLOSED:
    case MN_ERR_BUSY:
    case MN_ERR_UNAVAILABLE:
    case MN_ERR_NOMEM: return 503;
    default: return 500;
    }
}

const char *api_err_code(mn_err rc, const char *msg, api_ctx nf, const char **hint)
{
    *hint = NULL;
    switch (rc) {
    case MN_ERR_INVALID: return "invalid_argument";
    case MN_ERR_PARSE: return "bad_request";
    case MN_ERR_NOT_FOUND:
        /* the engine names the space when the space is what is missing */
        if (nf == API_CTX_SPACE || (msg && !strncmp(msg, "space ", 6))) {
            *hint = "list spaces with GET /v1/spaces; create one with POST /v1/spaces";
            return "space_not_found";
        }
        return nf == API_CTX_MEMORY ? "memory_not_found" : "not_found";
    case MN_ERR_GONE: return "memory_forgotten";
    case MN_ERR_EXISTS: return nf == API_CTX_SPACE ? "space_exists" : "already_exists";
    case MN_ERR_TOO_LARGE: return "payload_too_large";
    case MN_ERR_LIMIT:
        if (nf == API_CTX_SPACE) *hint = "drop spaces no longer used, or raise engine.max_spaces";
        return "limit_reached";
    case MN_ERR_CONFLICT:
        *hint = "read the memory again (GET), then retry with its current version";
        return "conflict";
    case MN_ERR_CLOSED:
    case MN_ERR_BUSY:
    case MN_ERR_NOMEM: *hint = "retry later"; return "unavailable";
    case MN_ERR_UNAVAILABLE:
        *hint = "retry later; a remember with the same idempotency_key is not stored twice";
        return "unavailable";
    default: return "internal";
    }
}

const char *api_err_message(mn_err rc, const mn_error *err, char *clean, size_t len)
{
    const char *msg = err && err->code == rc && err->message[0] ? err->message : mn_strerror(rc);
    api_utf8_sanitize(msg, clean, len);
    if (api_http_status(rc) >= 500) mn_log_warn("request failed: %s (%s)", clean, mn_strerror(rc));
    return clean;
}

void api_respond_err(mn_http_response_t *resp, mn_err rc, const mn_error *err, api_ctx nf)
{
    char clean[MN_ERROR_MSG_MAX * 2];
    const char *hint;
    api_err_message(rc, err, clean, sizeof clean);
    const char *code = api_err_code(rc, clean, nf, &hint);
    mn_http_respond_error(resp, api_http_status(rc), code, clean, hint);
}

/* ---- body ---- */

static bool is_json_media_type(const char *ct)
{
    while (*ct == ' ' || *ct == '\t') ct++;
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) n--;
    if (n == 16 && !strncasecmp(ct, "application/json", 16)) return true;
    const char *slash = memchr(ct, '/', n);
    return slash && slash > ct && n >= 5 && (size_t)(ct + n - slash) > 5 &&
           !strncasecmp(ct + n - 5, "+json", 5);
}

#define STR_(x) #x
#define STR(x) STR_(x) /* a limit's digits in a hint */

void api_body_opts(api_json_opts *o, uint32_t dim)
{
    memset(o, 0, sizeof *o);
    o->depth_max = API_BODY_DEPTH_MAX;
    o->members_max = MN_BATCH_MAX;
    o->floats_max = dim ? dim : MN_DIM_MAX;
    o->string_bytes_max = MN_CONTENT_MAX;
    o->nodes_max = API_BODY_NODES_MAX;
    o->compact_floats = true;
    o->plain_member = "filter";
}

int api_json_refusal(const api_json_result *r, uint32_t dim, const char **code, char *msg,
                     size_t msg_len, const char **hint)
{
    const char *at = r->path[0] ? r->path : "body";
    size_t n = strlen(r->path);
    bool embedding = n >= 9 && !strcmp(r->path + n - 9, "embedding");
    *code = "invalid_argument";
    *hint = NULL;
    switch (r->status) {
    case API_JSON_NOMEM:
        *code = "unavailable";
        *hint = "retry later";
        snprintf(msg, msg_len, "out of memory reading the body");
        return 503;
    case API_JSON_TRAILING:
        *code = "invalid_json";
        *hint = "send one JSON object";
        snprintf(msg, msg_len, "unexpected data after the JSON value at byte %zu", r->offset);
        return 400;
    case API_JSON_SYNTAX:
    case API_JSON_DEPTH:
        *code = "invalid_json";
        *hint = r->status == API_JSON_DEPTH
                    ? "a request body nests at most " STR(API_BODY_DEPTH_MAX)
                      " arrays and objects deep"
                    : "check the JSON syntax";
        snprintf(msg, msg_len, "malformed JSON at byte %zu", r->offset);
        return 400;
    default:
        break;
    }
    switch (r->limit) {
    case API_JSON_LIMIT_FLOATS:
        if (dim && embedding) /* the engine's words for a vector of the wrong size */
            snprintf(msg, msg_len, "%s: expected %u values, got %zu", at, dim, r->count);
        else
            snprintf(msg, msg_len, "%s: %zu numbers, the limit is %u (%s)", at, r->count,
                     dim ? dim : MN_DIM_MAX, dim ? "the space's dim" : "the largest dim");
        return 422;
    case API_JSON_LIMIT_STRING:
        snprintf(msg, msg_len, "%s: a string of %zu bytes, the limit is %d", at, r->count,
                 MN_CONTENT_MAX);
        return 422;
    case API_JSON_LIMIT_MEMBERS:
        snprintf(msg, msg_len, "%s: more than %d values in one array or object", at,
                 MN_BATCH_MAX);
        *hint = "send at most " STR(MN_BATCH_MAX) " memories or edges in one request";
        return 422;
    default:
        *code = "payload_too_large";
        *hint = "split the request";
        snprintf(msg, msg_len, "the body holds more than %d JSON values", API_BODY_NODES_MAX);
        return 413;
    }
}

static const char api_inproc_body[1] = ""; /* its address marks an api_inproc_req */

void api_inproc_init(api_inproc_req *r, const cJSON *body)
{
    memset(r, 0, sizeof *r);
    r->http.body = body ? api_inproc_body : "";
    r->body = body;
}

const cJSON *api_inproc_tree(const mn_http_request_t *req)
{
    if (req->body != api_inproc_body) return NULL;
    return ((const api_inproc_req *)(const void *)((const char *)req -
                                                   offsetof(api_inproc_req, http)))
        ->body;
}

/* The tree an in-process caller gave (api_inproc_req), as a root of its own. */
static cJSON *inproc_body(const mn_http_request_t *req, mn_http_response_t *resp)
{
    const api_inproc_req *r =
        (const api_inproc_req *)(const void *)((const char *)req - offsetof(api_inproc_req, http));
    cJSON *j = cJSON_IsObject(r->body) ? api_json_borrow(r->body) : NULL;
    if (!j)
        mn_http_respond_error(resp, cJSON_IsObject(r->body) ? 503 : 422,
                              cJSON_IsObject(r->body) ? "unavailable" : "invalid_argument",
                              cJSON_IsObject(r->body) ? "out of memory reading the body"
                                                      : "body: expected a JSON object",
                              NULL);
    return j;
}

cJSON *api_body_object(const mn_http_request_t *req, uint32_t dim, mn_http_response_t *resp)
{
    if (req->body == api_inproc_body) return inproc_body(req, resp);
    const char *ct = mn_http_header_get(req, "content-type");
    if (ct && !is_json_media_type(ct)) {
        char raw[200], msg[200];
        snprintf(raw, sizeof raw, "Content-Type \"%.100s\" is not JSON", ct);
        api_utf8_sanitize(raw, msg, sizeof msg);
        mn_http_respond_error(resp, 415, "unsupported_media_type", msg,
                              "send the body as JSON with Content-Type: application/json");
        return NULL;
    }
    const char *b = req->body ? req->body : "";
    size_t n = req->body ? req->body_len : 0;
    size_t ws = 0;
    while (ws < n && isspace((unsigned char)b[ws])) ws++;
    if (ws == n) {
        mn_http_respond_error(resp, 400, "invalid_json", "empty body: expected a JSON object",
                              NULL);
        return NULL;
    }
    if (memchr(b, '\0', n)) {
        mn_http_respond_error(resp, 400, "invalid_json", "the body contains a NUL byte", NULL);
        return NULL;
    }
    api_json_opts o;
    api_body_opts(&o, dim);
    api_json_result jr;
    cJSON *j = api_json_parse_opts(b, n, &o, &jr);
    if (!j) {
        const char *code, *hint;
        char raw[API_JSON_PATH_MAX + 100], msg[sizeof raw];
        int status = api_json_refusal(&jr, dim, &code, raw, sizeof raw, &hint);
        api_utf8_sanitize(raw, msg, sizeof msg); /* the path holds the body's keys */
        mn_http_respond_error(resp, status, code, msg, hint);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        api_json_free(j);
        mn_http_respond_error(resp, 422, "invalid_argument", "body: expected a JSON object",
                              NULL);
        return NULL;
    }
    if (jr.has_nul) {
        api_json_free(j);
        mn_http_respond_error(resp, 422, "invalid_argument",
                              "strings must not contain the NUL character (\\u0000)", NULL);
        return NULL;
    }
    return j;
}

cJSON *api_json_refs(const cJSON *obj)
{
    cJSON *o = cJSON_CreateObject();
    for (const cJSON *m = obj ? obj->child : NULL; o && m; m = m->next)
        if (!cJSON_AddItemReferenceToObject(o, m->string, (cJSON *)m)) {
            cJSON_Delete(o);
            o = NULL;
        }
    return o;
}

/* ---- typed readers ---- */

mn_err api_check_fields(const cJSON *obj, const char *const *allowed, const char *pfx,
                        mn_error *err)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++) ok = !strcmp(c->string, allowed[i]);
        if (!ok) {
            char list[200];
            size_t off = 0;
            list[0] = '\0';
            for (size_t i = 0; allowed[i] && off < sizeof list; i++)
                off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "",
                                        allowed[i]);
            return mn_error_set(err, MN_ERR_INVALID, "%s%.64s: unknown field (known: %s)", pfx,
                                c->string, list);
        }
        for (const cJSON *d = obj->child; d != c; d = d->next)
            if (!strcmp(d->string, c->string))
                return mn_error_set(err, MN_ERR_INVALID, "%s%.64s: duplicate field", pfx,
                                    c->string);
    }
    return MN_OK;
}

static const cJSON *member(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

mn_err api_get_string(const cJSON *obj, const char *name, const char *pfx, const char **out,
                      mn_error *err)
{
    const cJSON *v = member(obj, name);
    if (!v) return MN_OK;
    if (!cJSON_IsString(v))
        return mn_error_set(err, MN_ERR_INVALID, "%s%s: expected a string", pfx, name);
    *out = v->valuestring;
    return MN_OK;
}

mn_err api_get_number(const cJSON *obj, const char *name, const char *pfx, bool *present,
                      double *out, mn_error *err)
{
    const cJSON *v = member(obj, name);
    if (present) *present = v != NULL;
    if (!v) return MN_OK;
    if (!cJSON_IsNumber(v))
        return mn_error_set(err, MN_ERR_INVALID, "%s%s: expected a number", pfx, name);
    *out = v->valuedouble;
    return MN_OK;
}

float api_to_float(double d)
{
    if (isnan(d)) return NAN;
    if (d > FLT_MAX) return INFINITY;
    if (d < -FLT_MAX) return -INFINITY;
    return (float)d;
}

mn_err api_get_float(const cJSON *obj, const char *name, const char *pfx, bool *present,
                     float *out, mn_error *err)
{
    double d = 0;
    bool p = false;
    mn_err rc = api_get_number(obj, name, pfx, &p, &d, err);
    if (present) *present = p;
    if (!rc && p) *out = api_to_float(d);
    return rc;
}

static bool integral(double d, int64_t *out)
{
    /* 2^63 is exactly representable; anything at or beyond it does not fit */
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != floor(d))
        return false;
    *out = (int64_t)d;
    return true;
}

mn_err api_get_int(const cJSON *obj, const char *name, const char *pfx, bool *present,
                   int64_t *out, mn_error *err)
{
    const cJSON *v = member(obj, name);
    if (present) *present = v != NULL;
    if (!v) return MN_OK;
    if (!cJSON_IsNumber(v) || !integral(v->valuedouble, out))
        return mn_error_set(err, MN_ERR_INVALID, "%s%s: expected an integer", pfx, name);
    return MN_OK;
}

mn_err api_get_bool(const cJSON *obj, const char *name, const char *pfx, bool *present,
                    bool *out, mn_error *err)
{
    const cJSON *v = member(obj, name);
    if (present) *present = v != NULL;
    if (!v) return MN_OK;
    if (!cJSON_IsBool(v))
        return mn_error_set(err, MN_ERR_INVALID, "%s%s: expected true or false", pfx, name);
    *out = cJSON_IsTrue(v);
    return MN_OK;
}

mn_err api_get_strings(const cJSON *obj, const char *name, const char *pfx, bool one_ok,
                       api_arena *a, char ***out, size_t *n, mn_error *err)
{
    const cJSON *v = member(obj, name);
    if (!v) return MN_OK;
    if (one_ok && cJSON_IsString(v)) {
        *out = api_arena_alloc(a, sizeof **out);
        if (!*out) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
        (*out)[0] = v->valuestring;
        *n = 1;
        return MN_OK;
    }
    if (!cJSON_IsArray(v))
        return mn_error_set(err, MN_ERR_INVALID, "%s%s: expected an array of strings%s", pfx,
                            name, one_ok ? " (or one string)" : "");
    size_t cnt = (size_t)cJSON_GetArraySize(v);
    char **arr = api_arena_alloc(a, (cnt ? cnt : 1) * sizeof *arr);
    if (!arr) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    size_t i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        if (!cJSON_IsString(c))
            return mn_error_set(err, MN_ERR_INVALID, "%s%s[%zu]: expected a string", pfx, name,
                                i);
        arr[i] = c->valuestring;
    }
    *out = arr;
    *n = i;
    return MN_OK;
}

mn_err api_get_floats(const cJSON *obj, const char *name, const char *pfx, api_arena *a,
                      float **out, uint32_t *n, mn_error *err)
{
    const cJSON *v = member(obj, name);
    if (!v) return MN_OK;
    if (!cJSON_IsArray(v))
        return mn_error_set(err, MN_ERR_INVALID, "%s%s: expected an array of numbers", pfx,
                            name);
    const float *compact = NULL;
    size_t cnt = api_json_array_size(v);
    if (cnt > 1000000)
        return mn_error_set(err, MN_ERR_INVALID, "%s%s: %zu values, far more than any space has",
                            pfx, name, cnt);
    if (api_json_floats(v, &compact, &cnt)) {
        *out = (float *)compact; /* read-only for every caller, like the rest of the tree */
        *n = (uint32_t)cnt;
        return MN_OK;
    }
    float *f = api_arena_alloc(a, (size_t)(cnt ? cnt : 1) * sizeof *f);
    if (!f) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    uint32_t i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        if (!cJSON_IsNumber(c))
            return mn_error_set(err, MN_ERR_INVALID, "%s%s[%u]: expected a number", pfx, name,
                                i);
        f[i] = api_to_float(c->valuedouble);
    }
    *out = f;
    *n = i;
    return MN_OK;
}

mn_err api_get_string_map(const cJSON *obj, const char *name, const char *pfx, api_arena *a,
                          mn_kv_t **out, size_t *n, mn_error *err)
{
    const cJSON *v = member(obj, name);
    if (!v) return MN_OK;
    if (!cJSON_IsObject(v))
        return mn_error_set(err, MN_ERR_INVALID,
                            "%s%s: expected an object of string values", pfx, name);
    size_t cnt = (size_t)cJSON_GetArraySize(v);
    mn_kv_t *kv = api_arena_alloc(a, (cnt ? cnt : 1) * sizeof *kv);
    if (!kv) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    size_t i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        if (!cJSON_IsString(c))
            return mn_error_set(err, MN_ERR_INVALID, "%s%s.%.64s: expected a string", pfx, name,
                                c->string);
        kv[i].key = c->string;
        kv[i].value = c->valuestring;
    }
    *out = kv;
    *n = i;
    return MN_OK;
}

mn_err api_get_time(const cJSON *obj, const char *name, const char *pfx, bool *present,
                    int64_t *out, mn_error *err)
{
    const cJSON *v = member(obj, name);
    if (present) *present = v != NULL;
    if (!v) return MN_OK;
    if (cJSON_IsString(v)) {
        if (mn_time_parse_rfc3339(v->valuestring, out))
            return mn_error_set(err, MN_ERR_INVALID,
                                "%s%s: not an RFC 3339 time (e.g. 2026-01-31T09:30:00Z)", pfx,
                                name);
        return MN_OK;
    }
    if (cJSON_IsNumber(v) && integral(v->valuedouble, out)) return MN_OK;
    return mn_error_set(err, MN_ERR_INVALID,
                        "%s%s: expected an RFC 3339 string or integer milliseconds since the "
                        "epoch",
                        pfx, name);
}

/* ---- query strings ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into the arena; *len gets the decoded length. */
static char *decode(api_arena *a, const char *s, size_t n, size_t *len)
{
    char *out = api_arena_alloc(a, n + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    *len = o;
    return out;
}

mn_err api_query_parse(const char *query, api_arena *a, api_qparam **out, size_t *n,
                       mn_error *err)
{
    *out = NULL;
    *n = 0;
    if (!query || !*query) return MN_OK;
    size_t cnt = 1;
    for (const char *p = query; *p; p++) cnt += *p == '&';
    api_qparam *ps = api_arena_alloc(a, cnt * sizeof *ps);
    if (!ps) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
    size_t k = 0;
    const char *p = query;
    while (*p) {
        size_t len = strcspn(p, "&");
        if (len) {
            const char *eq = memchr(p, '=', len);
            size_t kl = eq ? (size_t)(eq - p) : len;
            size_t dk, dv;
            ps[k].key = decode(a, p, kl, &dk);
            ps[k].value = decode(a, eq ? eq + 1 : "", eq ? len - kl - 1 : 0, &dv);
            if (!ps[k].key || !ps[k].value)
                return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
            if (strlen(ps[k].key) != dk || strlen(ps[k].value) != dv)
                return mn_error_set(err, MN_ERR_INVALID,
                                    "query parameter %.64s: contains a NUL character (%%00)",
                                    ps[k].key);
            k++;
        }
        p += len;
        if (*p == '&') p++;
    }
    *out = ps;
    *n = k;
    return MN_OK;
}

mn_err api_query_bool(const char *name, const char *v, bool *out, mn_error *err)
{
    if (!strcmp(v, "true") || !strcmp(v, "1") || !*v) *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "0")) *out = false;
    else return mn_error_set(err, MN_ERR_INVALID, "%s: expected true or false", name);
    return MN_OK;
}

mn_err api_query_int(const char *name, const char *v, int64_t min, int64_t max, int64_t *out,
                     mn_error *err)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno || isspace((unsigned char)*v))
        return mn_error_set(err, MN_ERR_INVALID, "%s: expected an integer", name);
    if (x < min || x > max)
        return mn_error_set(err, MN_ERR_INVALID, "%s: must be in %" PRId64 "..%" PRId64, name,
                            min, max);
    *out = x;
    return MN_OK;
}

mn_err api_query_time(const char *name, const char *v, int64_t *out, mn_error *err)
{
    if (!mn_time_parse_rfc3339(v, out)) return MN_OK;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*v && !*end && !errno && !isspace((unsigned char)*v)) {
        *out = x;
        return MN_OK;
    }
    return mn_error_set(err, MN_ERR_INVALID,
                        "%s: expected an RFC 3339 time or integer milliseconds since the epoch",
                        name);
}

mn_err api_query_read(const mn_http_request_t *req, const char *const *allowed, bool metadata_ok,
                      api_arena *a, api_qparam **out, size_t *n, mn_error *err)
{
    mn_err rc = api_query_parse(req->query, a, out, n, err);
    if (rc) return rc;
    for (size_t i = 0; i < *n; i++) {
        const char *k = (*out)[i].key;
        bool ok = metadata_ok && !strncmp(k, "metadata.", 9) && k[9];
        for (size_t j = 0; allowed && allowed[j] && !ok; j++) ok = !strcmp(k, allowed[j]);
        if (!ok) {
            char list[200];
            size_t off = 0;
            list[0] = '\0';
            for (size_t j = 0; allowed && allowed[j] && off < sizeof list; j++)
                off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", j ? ", " : "",
                                        allowed[j]);
            if (metadata_ok && off < sizeof list)
                snprintf(list + off, sizeof list - off, ", metadata.<key>");
            return mn_error_set(err, MN_ERR_INVALID, "%.64s: unknown query parameter (known: %s)",
                                k, off ? list : "none");
        }
    }
    return MN_OK;
}

/* ---- cluster-mode request options ---- */

mn_err api_consistency_parse(const char *v, int *level, mn_error *err)
{
    static const char *const names[] = {"one", "quorum", "all"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(v, names[i])) {
            *level = i;
            return MN_OK;
        }
    return mn_error_set(err, MN_ERR_INVALID,
                        "consistency: must be one, quorum or all, got \"%.32s\"", v);
}

mn_err api_read_parse(const char *v, api_read_pref *out, mn_error *err)
{
    if (!strcmp(v, "primary"))
        *out = API_READ_PRIMARY;
    else if (!strcmp(v, "nearest"))
        *out = API_READ_NEAREST;
    else
        return mn_error_set(err, MN_ERR_INVALID, "read: must be primary or nearest, got \"%.32s\"",
                            v);
    return MN_OK;
}

