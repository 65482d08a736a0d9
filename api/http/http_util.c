/* HTTP helpers for handlers (headers, query strings, responses) and small pieces the server
 * files share (growable buffers, percent-decoding, request-id checks).
 *
 * Query strings follow the application/x-www-form-urlencoded rules of the WHATWG URL
 * standard (§5.1: '&'-separated pairs, '+' is a space, percent escapes); paths follow
 * RFC 3986 §2.1 (percent escapes only, '+' is literal). A NUL byte (%00) is rejected in both:
 * every value handed to C code is a C string.
 *
 * The handler helpers run on thread-pool threads and only touch the request/response they
 * are given. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"
#include "mnemo/http.h"

void mn_http_server_options_default(mn_http_server_options_t *o)
{
    o->bind = "127.0.0.1";
    o->port = 7700;
    o->max_body_bytes = 16u << 20;
    o->max_header_bytes = 64u << 10;
    o->max_connections = 1024;
    o->idle_timeout_ms = 60000;
    o->request_timeout_ms = 30000;
    o->tls_cert = NULL;
    o->tls_key = NULL;
    o->max_pipelined = 64;
    o->max_pipelined_bytes = 16u << 20;
    o->max_inflight_bytes = 256u << 20;
    o->max_streams = 256;
    o->max_streams_per_principal = 16;
    o->stream_max_lifetime_ms = 3600 * 1000;
}

/* ---- buffers ---- */

bool http_buf_reserve(http_buf *b, size_t cap)
{
    if (cap + 1 <= b->cap) return true;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < cap + 1)
        ncap *= 2;
    char *np = realloc(b->p, ncap);
    if (!np) return false;
    b->p = np;
    b->cap = ncap;
    return true;
}

bool http_buf_append(http_buf *b, const char *data, size_t n)
{
    if (!http_buf_reserve(b, b->len + n)) return false;
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

void http_buf_free(http_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- decoding ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

ssize_t http_pct_decode(const char *s, size_t n, char *out, bool plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n) return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            c = (char)(hi * 16 + lo);
            if (c == '\0') return -1;
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        } else if (c == '\0') {
            return -1;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return (ssize_t)o;
}

bool http_request_id_sane(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        if (n == MN_HTTP_REQUEST_ID_MAX) return false;
        if (s[n] < 0x21 || s[n] > 0x7e) return false;
    }
    return n > 0;
}

const char *http_reason(int status)
{
    const char *r = http_status_str((enum http_status)status);
    if (!r || r[0] == '<') return "Unknown";
    return r;
}

/* ---- handler helpers ---- */

const char *mn_http_header_get(const mn_http_request_t *req, const char *name)
{
    if (!req || !name) return NULL;
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0) return req->headers[i].value;
    return NULL;
}

bool mn_http_query_get(const mn_http_request_t *req, const char *name, char *buf, size_t len)
{
    if (!req || !name || !req->query || !buf || len == 0) return false;
    size_t name_len = strlen(name);
    const char *p = req->query;
    char key[256];
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t pair_len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', pair_len);
        size_t klen = eq ? (size_t)(eq - p) : pair_len;
        /* A key longer than its encoded form cannot be; skip keys too long to be `name`. */
        if (klen < sizeof key && klen >= name_len) {
            ssize_t kd = http_pct_decode(p, klen, key, true);
            if (kd >= 0 && (size_t)kd == name_len && memcmp(key, name, name_len) == 0) {
                const char *v = eq ? eq + 1 : p + pair_len;
                size_t vlen = (size_t)(p + pair_len - v);
                char *tmp = malloc(vlen + 1);
                if (!tmp) return false;
                ssize_t vd = http_pct_decode(v, vlen, tmp, true);
                bool ok = vd >= 0 && (size_t)vd < len;
                if (ok) memcpy(buf, tmp, (size_t)vd + 1);
                free(tmp);
                return ok;
            }
        }
        if (!amp) break;
        p = amp + 1;
    }
    return false;
}

void mn_http_respond(mn_http_response_t *resp, int status, const char *content_type, const char *body,
                     size_t len)
{
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    resp->status = status;
    resp->content_type = content_type ? content_type : "application/json";
    if (len == 0 || !body) return;
    resp->body = malloc(len);
    if (!resp->body) {
        resp->status = 500;
        return;
    }
    memcpy(resp->body, body, len);
    resp->body_len = len;
}

static bool buf_str(http_buf *b, const char *s)
{
    return http_buf_append(b, s, strlen(s));
}

/* Appends s as a JSON string byte for byte as cJSON prints one (the error bodies did not
 * change when this file stopped using cJSON): '"', '\\' and the control characters
 * escaped (\b \f \n \r \t, else \u00xx), every other byte as it is. */
static bool buf_json_string(http_buf *b, const char *s)
{
    bool ok = buf_str(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; ok && *p; p++) {
        const char *esc = NULL;
        char hex[8];
        switch (*p) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (*p < 32) {
                snprintf(hex, sizeof hex, "\\u%04x", *p);
                esc = hex;
            }
        }
        ok = esc ? buf_str(b, esc) : http_buf_append(b, (const char *)p, 1);
    }
    return ok && buf_str(b, "\"");
}

void mn_http_respond_error(mn_http_response_t *resp, int status, const char *code,
                           const char *message, const char *hint)
{
    http_buf b = {0};
    bool ok = buf_str(&b, "{\"error\":{\"code\":") &&
              buf_json_string(&b, code ? code : "error") &&
              buf_str(&b, ",\"message\":") &&
              buf_json_string(&b, message ? message : "") &&
              (!hint || (buf_str(&b, ",\"hint\":") && buf_json_string(&b, hint))) &&
              buf_str(&b, "}}");
    if (ok) {
        mn_http_respond(resp, status, "application/json", b.p, b.len);
    } else {
        static const char fallback[] = "{\"error\":{\"code\":\"internal\",\"message\":\"\"}}";
        mn_http_respond(resp, status, "application/json", fallback, sizeof fallback - 1);
    }
    http_buf_free(&b);
}

static bool is_tchar(char c)
{
    /* RFC 9110 §5.6.2 token characters. */
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

void mn_http_add_header(mn_http_response_t *resp, const char *name, const char *value)
{
    if (!resp || !name || !name[0]) return;
    for (const char *p = name; *p; p++)
        if (!is_tchar(*p)) return;
    if (!value) value = "";
    size_t old = resp->extra_headers ? strlen(resp->extra_headers) : 0;
    size_t nl = strlen(name), vl = strlen(value);
    char *h = realloc(resp->extra_headers, old + nl + 2 + vl + 3);
    if (!h) return;
    char *o = h + old;
    memcpy(o, name, nl);
    o += nl;
    *o++ = ':';
    *o++ = ' ';
    for (size_t i = 0; i < vl; i++)
        *o++ = (value[i] == '\r' || value[i] == '\n') ? ' ' : value[i];
    *o++ = '\r';
    *o++ = '\n';
    *o = '\0';
    resp->extra_headers = h;
}
