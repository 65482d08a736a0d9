/* A JSON document as a protobuf-c message, by the message's descriptor: each field takes the
 * document's member of the same name. For the cluster views (ClusterGossip, ClusterHints),
 * whose REST documents are the source and whose messages mirror them field for field, so
 * the gRPC answer cannot drift from the REST one.
 *
 * Scalars (integers, floats, bools, strings), nested messages and repeated messages or
 * strings are filled; a member that is absent, null or of another JSON type leaves the field
 * unset (an optional field's has_ stays false). Enums and bytes are not used by these
 * messages and are left unset. */
#include <stdlib.h>
#include <string.h>

#include "grpc_internal.h"
#include "mnemo/assert.h"

#define JSON_DEPTH_MAX 8

static mn_err fill(api_arena *a, const cJSON *o, ProtobufCMessage *m, int depth);

static void *field_at(ProtobufCMessage *m, unsigned off)
{
    return (char *)m + off;
}

/* A new message of type d in the arena, filled from o; NULL when out of memory. */
static ProtobufCMessage *msg_of(api_arena *a, const ProtobufCMessageDescriptor *d, const cJSON *o,
                                int depth)
{
    ProtobufCMessage *m = g_msg(a, d->sizeof_message, (void (*)(void *))d->message_init);
    if (!m || fill(a, o, m, depth + 1)) return NULL;
    return m;
}

/* A number field at p of type t from v; false for a type this file does not fill. */
static bool number_in(ProtobufCType t, void *p, double v)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        *(int32_t *)p = (int32_t)v;
        return true;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        *(uint32_t *)p = v > 0 ? (uint32_t)v : 0;
        return true;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        *(int64_t *)p = (int64_t)v;
        return true;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        *(uint64_t *)p = v > 0 ? (uint64_t)v : 0;
        return true;
    case PROTOBUF_C_TYPE_FLOAT:
        *(float *)p = (float)v;
        return true;
    case PROTOBUF_C_TYPE_DOUBLE:
        *(double *)p = v;
        return true;
    default:
        return false;
    }
}

/* One singular field from v: whether it was set (false: absent, null, or another type). */
static bool one_in(api_arena *a, const ProtobufCFieldDescriptor *f, const cJSON *v, void *p,
                   int depth, bool *oom)
{
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        if (!cJSON_IsString(v)) return false;
        *(char **)p = api_arena_strndup(a, v->valuestring, strlen(v->valuestring));
        *oom = !*(char **)p;
        return !*oom;
    }
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        if (!cJSON_IsObject(v)) return false;
        *(ProtobufCMessage **)p = msg_of(a, f->descriptor, v, depth);
        *oom = !*(ProtobufCMessage **)p;
        return !*oom;
    }
    if (f->type == PROTOBUF_C_TYPE_BOOL) {
        if (!cJSON_IsBool(v)) return false;
        *(protobuf_c_boolean *)p = cJSON_IsTrue(v);
        return true;
    }
    return cJSON_IsNumber(v) && number_in(f->type, p, v->valuedouble);
}

/* A repeated field of messages or strings from the array v. */
static mn_err many_in(api_arena *a, const ProtobufCFieldDescriptor *f, const cJSON *v,
                      ProtobufCMessage *m, int depth)
{
    size_t *n = field_at(m, f->quantifier_offset);
    void ***arr = field_at(m, f->offset);
    size_t k = (size_t)cJSON_GetArraySize(v);
    bool ptrs = f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING;
    if (!cJSON_IsArray(v) || !k || !ptrs) return MN_OK;
    *arr = g_ptrs(a, k);
    if (!*arr) return MN_ERR_NOMEM;
    for (const cJSON *x = v->child; x; x = x->next) {
        bool oom = false;
        if (one_in(a, f, x, &(*arr)[*n], depth, &oom)) (*n)++;
        if (oom) return MN_ERR_NOMEM;
    }
    return MN_OK;
}

static mn_err fill(api_arena *a, const cJSON *o, ProtobufCMessage *m, int depth)
{
    if (depth > JSON_DEPTH_MAX) return MN_OK;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f->name);
        if (!v) continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (many_in(a, f, v, m, depth)) return MN_ERR_NOMEM;
            continue;
        }
        bool oom = false;
        bool set = one_in(a, f, v, field_at(m, f->offset), depth, &oom);
        if (oom) return MN_ERR_NOMEM;
        bool has_flag = f->label == PROTOBUF_C_LABEL_OPTIONAL &&
                        f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE;
        if (set && has_flag) *(protobuf_c_boolean *)field_at(m, f->quantifier_offset) = 1;
    }
    return MN_OK;
}

mn_err g_msg_from_json(api_arena *a, const ProtobufCMessageDescriptor *d, const cJSON *doc,
                       ProtobufCMessage **out, mn_error *err)
{
    mn_assert(d->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
    *out = NULL;
    if (!cJSON_IsObject(doc))
        return mn_error_set(err, MN_ERR_INTERNAL, "%s: not a JSON object", d->short_name);
    *out = msg_of(a, d, doc, 0);
    return *out ? MN_OK : mn_error_set(err, MN_ERR_NOMEM, "out of memory");
}
