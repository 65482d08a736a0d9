/* MCP sessions and protocol versions (MCP 2025-06-18, basic/transports "Session
 * Management", basic/lifecycle "Version Negotiation").
 *
 * A session is created by an initialize request and named by 128 bits from getrandom()
 * written as hex, so ids cannot be guessed. The table is bounded: mcp.max_sessions slots,
 * of which one API key holds at most mcp.max_sessions_per_key (with auth off every client
 * is one owner: the server is on loopback, where they all share one address). A key at its
 * limit that opens one more loses its own least recently used session; a key never ends
 * another's: with the table full of other keys' live sessions the new one is refused
 * (MN_ERR_BUSY). A session idle for longer than mcp.session_idle_s is ended when it is next
 * looked up or when a slot is needed.
 * An ended session's id answers 404, which tells the client to initialize again.
 * Every function takes the table lock; handlers on the thread pool call them concurrently.
 * Lookups scan the table: it is small (default 1024) and the scan is a few microseconds. */
#include "mcp_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "auth.h"
#include "mnemo/util.h"

const char *const mcp_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05", NULL};

bool mcp_version_supported(const char *v)
{
    for (size_t i = 0; v && mcp_versions[i]; i++)
        if (!strcmp(v, mcp_versions[i])) return true;
    return false;
}

const char *mcp_version_negotiate(const char *requested)
{
    for (size_t i = 0; requested && mcp_versions[i]; i++)
        if (!strcmp(requested, mcp_versions[i])) return mcp_versions[i];
    return mcp_versions[0];
}

bool mcp_version_allows_batch(const char *v)
{
    /* versions are ISO dates: string order is time order */
    return strcmp(v, "2025-06-18") < 0;
}

static void free_origins(mn_config_strlist_t *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

mcp_server *mcp_server_new(void)
{
    mcp_server *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (uv_mutex_init(&s->lock)) {
        free(s);
        return NULL;
    }
    s->tools = mcp_tools_build();
    mn_config_mcp_t defaults = {.max_sessions = 1024,
                              .max_sessions_per_key = 256,
                              .session_idle_s = 3600,
                              .default_dim = 384,
                              .default_space = (char *)"default"};
    if (!s->tools || mcp_server_configure(s, &defaults, NULL)) {
        mcp_server_free(s);
        return NULL;
    }
    return s;
}

void mcp_server_free(mcp_server *s)
{
    if (!s) return;
    uv_mutex_destroy(&s->lock);
    free(s->sessions);
    free_origins(&s->allowed_origins);
    cJSON_Delete(s->tools);
    free(s);
}

mn_err mcp_server_configure(mcp_server *s, const mn_config_mcp_t *o, mn_error *err)
{
    if (o->max_sessions < 1 || o->max_sessions_per_key < 1 || o->session_idle_s < 1 || o->default_dim < 1 ||
        o->default_dim > MN_DIM_MAX || !o->default_space ||
        strlen(o->default_space) > MN_SPACE_NAME_MAX)
        return mn_error_set(err, MN_ERR_INVALID, "mcp: setting out of range");
    mcp_session *t = calloc((size_t)o->max_sessions, sizeof *t);
    mn_config_strlist_t origins = {0};
    if (o->allowed_origins.count) {
        origins.items = calloc(o->allowed_origins.count, sizeof *origins.items);
        for (size_t i = 0; origins.items && i < o->allowed_origins.count; i++, origins.count++)
            if (!(origins.items[i] = strdup(o->allowed_origins.items[i]))) break;
    }
    if (!t || origins.count != o->allowed_origins.count) {
        free(t);
        free_origins(&origins);
        return mn_error_set(err, MN_ERR_NOMEM, "mcp: out of memory for the session table");
    }
    uv_mutex_lock(&s->lock);
    free(s->sessions);
    s->sessions = t;
    s->cap = (size_t)o->max_sessions;
    s->per_key_max = (size_t)(o->max_sessions_per_key < o->max_sessions ? o->max_sessions_per_key
                                                                         : o->max_sessions);
    s->n_sessions = 0;
    s->idle_ns = o->session_idle_s * (int64_t)1000000000;
    s->default_dim = (uint32_t)o->default_dim;
    s->max_body_bytes = (size_t)o->max_body_bytes; /* 0: MCP_BODY_DEFAULT */
    strcpy(s->default_space, o->default_space);
    free_origins(&s->allowed_origins);
    s->allowed_origins = origins;
    uv_mutex_unlock(&s->lock);
    return MN_OK;
}

void mcp_server_set_auth(mcp_server *s, const struct mn_auth *auth)
{
    s->auth = auth;
}

/* Under the lock: the slot of id, or NULL. */
static mcp_session *find(mcp_server *s, const char *id)
{
    if (strlen(id) != MCP_SESSION_ID_LEN) return NULL;
    for (size_t i = 0; i < s->cap; i++)
        if (s->sessions[i].id[0] && !memcmp(s->sessions[i].id, id, MCP_SESSION_ID_LEN))
            return &s->sessions[i];
    return NULL;
}

static void drop(mcp_server *s, mcp_session *x)
{
    memset(x, 0, sizeof *x);
    s->n_sessions--;
}

/* Under the lock: the slot for a new session of owner, after ending idle sessions: a free
 * one, or the owner's least recently used when it is at its limit; NULL if the table is
 * full of other owners' sessions. */
static mcp_session *claim_slot(mcp_server *s, size_t owner, int64_t now)
{
    mcp_session *free_slot = NULL, *own_lru = NULL;
    size_t owned = 0;
    for (size_t i = 0; i < s->cap; i++) {
        mcp_session *x = &s->sessions[i];
        if (x->id[0] && now - x->last_used_ns > s->idle_ns) drop(s, x);
        if (!x->id[0]) {
            if (!free_slot) free_slot = x;
        } else if (x->owner == owner) {
            owned++;
            if (!own_lru || x->last_used_ns < own_lru->last_used_ns) own_lru = x;
        }
    }
    if (owned < s->per_key_max) return free_slot;
    drop(s, own_lru);
    return own_lru;
}

mn_err mcp_session_create(mcp_server *s, const char *version, const char *key, char *id_out)
{
    unsigned char rnd[MCP_SESSION_ID_LEN / 2];
    size_t got = 0;
    for (int tries = 0; got < sizeof rnd && tries < 8; tries++) {
        ssize_t n = getrandom(rnd + got, sizeof rnd - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (n < 0 && errno != EINTR)
            break;
    }
    if (got < sizeof rnd) return MN_ERR_IO;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof rnd; i++) {
        id_out[2 * i] = hex[rnd[i] >> 4];
        id_out[2 * i + 1] = hex[rnd[i] & 15];
    }
    id_out[MCP_SESSION_ID_LEN] = '\0';

    size_t owner = mn_auth_key_id(s->auth, key, key ? strlen(key) : 0);
    int64_t now = mn_time_mono_ns();
    uv_mutex_lock(&s->lock);
    mcp_session *slot = claim_slot(s, owner, now);
    if (!slot) {
        uv_mutex_unlock(&s->lock);
        id_out[0] = '\0'; /* no session: no Mcp-Session-Id */
        return MN_ERR_BUSY;
    }
    memcpy(slot->id, id_out, MCP_SESSION_ID_LEN + 1);
    slot->owner = owner;
    snprintf(slot->version, sizeof slot->version, "%s", version);
    slot->last_used_ns = now;
    slot->initialized = false;
    s->n_sessions++;
    uv_mutex_unlock(&s->lock);
    return MN_OK;
}

bool mcp_session_touch(mcp_server *s, const char *id, char *version_out)
{
    int64_t now = mn_time_mono_ns();
    uv_mutex_lock(&s->lock);
    mcp_session *x = find(s, id);
    if (x && now - x->last_used_ns > s->idle_ns) {
        drop(s, x);
        x = NULL;
    }
    if (x) {
        x->last_used_ns = now;
        if (version_out) memcpy(version_out, x->version, sizeof x->version);
    }
    uv_mutex_unlock(&s->lock);
    return x != NULL;
}

void mcp_session_set_initialized(mcp_server *s, const char *id)
{
    uv_mutex_lock(&s->lock);
    mcp_session *x = find(s, id);
    if (x) x->initialized = true;
    uv_mutex_unlock(&s->lock);
}

bool mcp_session_end(mcp_server *s, const char *id)
{
    uv_mutex_lock(&s->lock);
    mcp_session *x = find(s, id);
    if (x) drop(s, x);
    uv_mutex_unlock(&s->lock);
    return x != NULL;
}
