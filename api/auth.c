/* API keys: the configured digests, roles and spaces, and the check (see auth.h).
 *
 * The key itself is never stored. A presented key is hashed with SHA-256 and its digest is
 * compared with EVERY configured digest using CRYPTO_memcmp, without stopping at a match,
 * so the time taken says nothing about which key (or how much of one) matched. Roles and
 * space lists are checked only after the key is known. */
#include "auth.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnemo/model.h"

typedef struct auth_key {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    mn_auth_role_t role;
    bool all_spaces; /* spaces contains "*" */
    char **spaces;
    size_t n_spaces;
    char *name;
} auth_key;

struct mn_auth {
    bool enabled;
    auth_key *keys;
    size_t n_keys;
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool parse_digest(const char *hex, unsigned char *out)
{
    if (!hex || strlen(hex) != 2 * SHA256_DIGEST_LENGTH) return false;
    for (size_t i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

static bool parse_role(const char *s, mn_auth_role_t *r)
{
    if (!s) return false;
    if (!strcmp(s, "read"))
        *r = MN_AUTH_READ;
    else if (!strcmp(s, "write"))
        *r = MN_AUTH_WRITE;
    else if (!strcmp(s, "admin"))
        *r = MN_AUTH_ADMIN;
    else
        return false;
    return true;
}

const char *mn_auth_role_name(mn_auth_role_t r)
{
    switch (r) {
    case MN_AUTH_OPEN:
        return "open";
    case MN_AUTH_READ:
        return "read";
    case MN_AUTH_WRITE:
        return "write";
    case MN_AUTH_ADMIN:
        return "admin";
    }
    return "?";
}

void mn_auth_free(mn_auth_t *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n_keys; i++) {
        for (size_t j = 0; j < a->keys[i].n_spaces; j++)
            free(a->keys[i].spaces[j]);
        free(a->keys[i].spaces);
        free(a->keys[i].name);
    }
    free(a->keys);
    free(a);
}

/* "auth.keys[2] (\"ci\")" for messages. */
static void key_label(const mn_config_auth_key_t *k, size_t i, char *buf, size_t len)
{
    if (k->name && *k->name)
        snprintf(buf, len, "auth.keys[%zu] (\"%.40s\")", i, k->name);
    else
        snprintf(buf, len, "auth.keys[%zu]", i);
}

static mn_err add_key(mn_auth_t *a, const mn_config_auth_key_t *k, size_t i, mn_error *err)
{
    char label[80];
    key_label(k, i, label, sizeof label);
    auth_key *d = &a->keys[a->n_keys];
    if (!parse_digest(k->sha256, d->digest))
        return mn_error_set(err, MN_ERR_INVALID, "%s: sha256 must be 64 hex digits", label);
    if (!parse_role(k->role, &d->role))
        return mn_error_set(err, MN_ERR_INVALID, "%s: role must be read, write or admin", label);
    for (size_t j = 0; j < a->n_keys; j++)
        if (memcmp(a->keys[j].digest, d->digest, sizeof d->digest) == 0)
            return mn_error_set(err, MN_ERR_INVALID, "%s: same sha256 as auth.keys[%zu]", label, j);
    if (k->spaces.count == 0)
        return mn_error_set(err, MN_ERR_INVALID,
                            "%s: spaces is empty (list space names, or \"*\" for all)", label);
    a->n_keys++; /* from here on mn_auth_free frees what d holds */
    if (!(d->name = strdup(k->name ? k->name : "")) ||
        !(d->spaces = calloc(k->spaces.count, sizeof *d->spaces)))
        return mn_error_set(err, MN_ERR_NOMEM, "auth: out of memory");
    for (size_t j = 0; j < k->spaces.count; j++) {
        const char *s = k->spaces.items[j];
        if (!strcmp(s, "*")) {
            d->all_spaces = true;
            continue;
        }
        if (!mn_space_name_valid(s))
            return mn_error_set(err, MN_ERR_INVALID,
                                "%s: spaces: \"%.80s\" is not a space name ([a-z0-9][a-z0-9_-]*) "
                                "or \"*\"",
                                label, s);
        if (!(d->spaces[d->n_spaces] = strdup(s)))
            return mn_error_set(err, MN_ERR_NOMEM, "auth: out of memory");
        d->n_spaces++;
    }
    return MN_OK;
}

mn_err mn_auth_new(const mn_config_auth_t *cfg, mn_auth_t **out, mn_error *err)
{
    *out = NULL;
    mn_auth_t *a = calloc(1, sizeof *a);
    if (!a || (cfg->keys.count && !(a->keys = calloc(cfg->keys.count, sizeof *a->keys)))) {
        free(a);
        return mn_error_set(err, MN_ERR_NOMEM, "auth: out of memory");
    }
    a->enabled = cfg->enabled;
    if (cfg->enabled && cfg->keys.count == 0) {
        mn_auth_free(a);
        return mn_error_set(err, MN_ERR_INVALID,
                            "auth.enabled = true but no [[auth.keys]] is configured: no request "
                            "could pass (docs/config.md, \"auth\")");
    }
    for (size_t i = 0; i < cfg->keys.count; i++) {
        mn_err rc = add_key(a, &cfg->keys.items[i], i, err);
        if (rc) {
            mn_auth_free(a);
            return rc;
        }
    }
    *out = a;
    return MN_OK;
}

bool mn_auth_enabled(const mn_auth_t *a)
{
    return a && a->enabled;
}

/* The configured key whose digest is SHA-256(key), or NULL. Looks at every key. */
static const auth_key *find_key(const mn_auth_t *a, const char *key, size_t len)
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, len, d);
    const auth_key *found = NULL;
    for (size_t i = 0; i < a->n_keys; i++) {
        bool eq = CRYPTO_memcmp(d, a->keys[i].digest, sizeof d) == 0;
        found = eq ? &a->keys[i] : found;
    }
    OPENSSL_cleanse(d, sizeof d);
    return found;
}

static bool space_allowed(const auth_key *k, const char *space)
{
    if (k->all_spaces) return true;
    for (size_t i = 0; i < k->n_spaces; i++)
        if (!strcmp(k->spaces[i], space)) return true;
    return false;
}

/* The role and scope of each operation (auth.h). per_space: about the one space the request
 * names; otherwise about every space, which write and admin reach only with "*". */
typedef struct op_rule {
    const char *name;
    mn_auth_role_t role;
    bool per_space;
} op_rule;

static const op_rule OP_RULES[MN_AUTH_OP_COUNT] = {
    [MN_AUTH_OP_PROBE] = {"probe", MN_AUTH_OPEN, false},
    [MN_AUTH_OP_METRICS] = {"metrics", MN_AUTH_READ, false},
    [MN_AUTH_OP_SPACE_LIST] = {"list spaces", MN_AUTH_READ, false},
    [MN_AUTH_OP_SPACE_READ] = {"read space", MN_AUTH_READ, true},
    [MN_AUTH_OP_EVENTS] = {"events", MN_AUTH_READ, true},
    [MN_AUTH_OP_MEMORY_READ] = {"read memories", MN_AUTH_READ, true},
    [MN_AUTH_OP_RECALL] = {"recall", MN_AUTH_READ, true},
    [MN_AUTH_OP_MCP] = {"mcp", MN_AUTH_READ, false},
    [MN_AUTH_OP_REMEMBER] = {"remember", MN_AUTH_WRITE, true},
    [MN_AUTH_OP_FORGET] = {"forget", MN_AUTH_WRITE, true},
    [MN_AUTH_OP_ASSOCIATE] = {"associate", MN_AUTH_WRITE, true},
    [MN_AUTH_OP_CONSOLIDATE] = {"consolidate", MN_AUTH_WRITE, true},
    [MN_AUTH_OP_SPACE_CREATE] = {"create space", MN_AUTH_ADMIN, false},
    [MN_AUTH_OP_SPACE_DROP] = {"drop space", MN_AUTH_ADMIN, true},
    [MN_AUTH_OP_ADMIN] = {"admin", MN_AUTH_ADMIN, false},
};

/* An operation outside the enum is treated as admin (fails closed). */
static const op_rule *op_rule_of(mn_auth_op_t op)
{
    return (unsigned)op < MN_AUTH_OP_COUNT ? &OP_RULES[op] : &OP_RULES[MN_AUTH_OP_ADMIN];
}

mn_auth_role_t mn_auth_op_role(mn_auth_op_t op)
{
    return op_rule_of(op)->role;
}

const char *mn_auth_op_name(mn_auth_op_t op)
{
    return op_rule_of(op)->name;
}

/* The result of the key against the rule, before any message is written. */
static mn_auth_result_t decide(const mn_auth_t *a, const char *key, size_t key_len,
                               const op_rule *r, const char *space, const char **name)
{
    if (!mn_auth_enabled(a) || r->role == MN_AUTH_OPEN) return MN_AUTH_OK;
    if (!key || key_len == 0) return MN_AUTH_NO_KEY;
    const auth_key *k = find_key(a, key, key_len);
    if (!k) return MN_AUTH_BAD_KEY;
    *name = k->name;
    if (k->role < r->role) return MN_AUTH_ROLE_DENIED;
    if (!r->per_space) space = NULL;
    if (space ? !space_allowed(k, space) : (r->role > MN_AUTH_READ && !k->all_spaces))
        return MN_AUTH_SPACE_DENIED;
    return MN_AUTH_OK;
}

/* v (may be NULL) gets the reasons of res for rule r: the message and hint every door sends. */
static mn_auth_result_t explain(mn_auth_result_t res, const op_rule *r, const char *name,
                                const char *space, mn_auth_verdict_t *v)
{
    if (!v) return res;
    v->result = res;
    v->need = r->role;
    v->key_name = name;
    v->message[0] = '\0';
    v->hint = NULL;
    switch (res) {
    case MN_AUTH_OK:
        break;
    case MN_AUTH_NO_KEY:
    case MN_AUTH_BAD_KEY:
        snprintf(v->message, sizeof v->message, "%s",
                 res == MN_AUTH_NO_KEY ? "this operation needs an API key"
                                       : "the API key is not valid");
        v->hint = "send Authorization: Bearer <key> with a key listed in [[auth.keys]]";
        break;
    case MN_AUTH_ROLE_DENIED:
        snprintf(v->message, sizeof v->message, "%s needs the %s role", r->name,
                 mn_auth_role_name(r->role));
        v->hint = "use a key whose role allows it (read < write < admin)";
        break;
    case MN_AUTH_SPACE_DENIED:
        if (r->per_space && space)
            snprintf(v->message, sizeof v->message, "the API key may not use space \"%.64s\"",
                     space);
        else
            snprintf(v->message, sizeof v->message,
                     "%s acts on every space: it needs a key for \"*\"", r->name);
        v->hint = "list the space in the key's spaces, or use a key for \"*\"";
        break;
    }
    return res;
}

mn_auth_result_t mn_auth_allow(const mn_auth_t *a, const char *key, size_t key_len, mn_auth_op_t op,
                               const char *space, mn_auth_verdict_t *v)
{
    const op_rule *r = op_rule_of(op);
    const char *name = "";
    mn_auth_result_t res = decide(a, key, key_len, r, space, &name); /* names the key */
    return explain(res, r, name, space, v);
}

/* Is space one of the comma-separated names of list ("*": every space)? */
static bool listed(const char *list, const char *space)
{
    if (!strcmp(list, "*")) return true;
    size_t n = strlen(space);
    for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (!strncmp(p, space, n) && (p[n] == ',' || p[n] == 0)) return true;
    return false;
}

mn_auth_result_t mn_auth_allow_grant(const mn_auth_t *a, const mn_auth_grant_t *g, mn_auth_op_t op,
                                     const char *space, mn_auth_verdict_t *v)
{
    const op_rule *r = op_rule_of(op);
    mn_auth_result_t res = MN_AUTH_OK;
    if (!mn_auth_enabled(a) || r->role == MN_AUTH_OPEN)
        res = MN_AUTH_OK;
    else if (g->role == MN_AUTH_OPEN)
        res = MN_AUTH_NO_KEY;
    else if (g->role < r->role)
        res = MN_AUTH_ROLE_DENIED;
    else if (r->per_space && space ? !listed(g->spaces, space)
                                   : (r->role > MN_AUTH_READ && strcmp(g->spaces, "*") != 0))
        res = MN_AUTH_SPACE_DENIED;
    return explain(res, r, g->name, space, v);
}

const char *mn_auth_name_known(const mn_auth_t *a, const char *name)
{
    for (size_t i = 0; a && name && *name && i < a->n_keys; i++)
        if (a->keys[i].name && !strcmp(a->keys[i].name, name)) return a->keys[i].name;
    return NULL;
}

bool mn_auth_grant_of(const mn_auth_t *a, const char *key, size_t key_len, const char *space,
                      char *buf, size_t cap, mn_auth_grant_t *g)
{
    *g = (mn_auth_grant_t){MN_AUTH_OPEN, "", "*"};
    if (!mn_auth_enabled(a)) return true;
    const auth_key *k = key && key_len ? find_key(a, key, key_len) : NULL;
    if (!k) return false;
    g->role = k->role;
    g->name = k->name ? k->name : "";
    if (k->all_spaces) return true;
    size_t n = 0;
    for (size_t i = 0; i < k->n_spaces && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "," : "", k->spaces[i]);
    if (n >= cap) snprintf(buf, cap, "%s", space ? space : "");
    g->spaces = buf;
    return true;
}

size_t mn_auth_key_id(const mn_auth_t *a, const char *key, size_t key_len)
{
    if (!mn_auth_enabled(a) || !key || key_len == 0) return 0;
    const auth_key *k = find_key(a, key, key_len);
    return k ? (size_t)(k - a->keys) + 1 : 0;
}

bool mn_auth_bind_is_loopback(const char *bind)
{
    unsigned char b[16];
    if (!bind) return false;
    if (inet_pton(AF_INET, bind, b) == 1) return b[0] == 127;
    if (inet_pton(AF_INET6, bind, b) != 1) return false;
    static const unsigned char v6_loop[16] = {[15] = 1};
    static const unsigned char v4_mapped[12] = {[10] = 0xff, [11] = 0xff};
    if (memcmp(b, v6_loop, 16) == 0) return true;
    return memcmp(b, v4_mapped, 12) == 0 && b[12] == 127;
}
