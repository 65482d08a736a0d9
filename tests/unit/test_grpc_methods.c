/* The gRPC door's method table and conversions (api/grpc/grpc_methods.c, grpc_convert.c):
 * the table and the service in mnemo.proto agree both ways, roles follow the HTTP routes,
 * every enum converts both ways and unknown numbers are refused, and a memory survives
 * proto -> engine -> proto unchanged. The calls themselves are tested against a real server
 * in tests/integration/test_grpc.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "api/grpc/grpc_internal.h"

static void test_table_and_proto_service_agree(void **state)
{
    (void)state;
    const ProtobufCServiceDescriptor *svc = &mnemo__v1__mnemo__descriptor;
    size_t n;
    const g_method *ms = g_methods_all(&n);
    assert_int_equal(n, svc->n_methods);
    for (size_t i = 0; i < n; i++) { /* and every row is a method of the service */
        bool found = false;
        for (unsigned j = 0; j < svc->n_methods && !found; j++)
            found = !strcmp(strrchr(ms[i].path, '/') + 1, svc->methods[j].name);
        if (!found) fail_msg("%s is not in mnemo.proto", ms[i].path);
    }
    for (unsigned i = 0; i < svc->n_methods; i++) {
        char path[128];
        snprintf(path, sizeof path, "/mnemo.v1.Mnemo/%s", svc->methods[i].name);
        const g_method *m = g_method_find(path, strlen(path));
        if (!m) fail_msg("method %s of mnemo.proto has no handler", svc->methods[i].name);
        assert_ptr_equal(m->req, svc->methods[i].input);
        assert_true(m->shape == G_SERVER_STREAM || (m->shape == G_UNARY) == (m->unary != NULL));
        assert_true(m->shape != G_CLIENT_STREAM || m->batch != NULL);
    }
    assert_null(g_method_find("/mnemo.v1.Mnemo/Nope", 20));
    assert_null(g_method_find("/mnemo.v1.Mnemo/Recal", 21));
}

static const g_method *method(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "/mnemo.v1.Mnemo/%s", name);
    const g_method *m = g_method_find(path, strlen(path));
    assert_non_null(m);
    return m;
}

static void test_operations_follow_the_http_routes(void **state)
{
    (void)state;
    static const struct {
        const char *grpc, *http_method, *http_route;
    } pairs[] = {
        {"CreateSpace", "POST", "/v1/spaces"},
        {"ListSpaces", "GET", "/v1/spaces"},
        {"GetSpace", "GET", "/v1/spaces/{space}"},
        {"DropSpace", "DELETE", "/v1/spaces/{space}"},
        {"Stats", "GET", "/v1/spaces/{space}/stats"},
        {"Remember", "POST", "/v1/spaces/{space}/memories"},
        {"RememberBatch", "POST", "/v1/spaces/{space}/memories"},
        {"GetMemory", "GET", "/v1/spaces/{space}/memories/{id}"},
        {"ListMemories", "GET", "/v1/spaces/{space}/memories"},
        {"Forget", "DELETE", "/v1/spaces/{space}/memories/{id}"},
        {"Unsuppress", "POST", "/v1/spaces/{space}/memories/{id}/unsuppress"},
        {"UpdateMemory", "PATCH", "/v1/spaces/{space}/memories/{id}"},
        {"MemoryHistory", "GET", "/v1/spaces/{space}/memories/{id}/history"},
        {"InvalidateMemory", "POST", "/v1/spaces/{space}/memories/{id}/invalidate"},
        {"ForgetWhere", "POST", "/v1/spaces/{space}/forget"},
        {"GetJob", "GET", "/v1/spaces/{space}/jobs/{id}"},
        {"CancelJob", "DELETE", "/v1/spaces/{space}/jobs/{id}"},
        {"Recall", "POST", "/v1/spaces/{space}/recall"},
        {"RecallMany", "POST", "/v1/recall"},
        {"Associate", "POST", "/v1/spaces/{space}/associations"},
        {"ListAssociations", "GET", "/v1/spaces/{space}/memories/{id}/associations"},
        {"Consolidate", "POST", "/v1/spaces/{space}/consolidate"},
        {"Recognize", "POST", "/v1/spaces/{space}/recognize"},
        {"Reminisce", "POST", "/v1/spaces/{space}/reminisce"},
        {"Complete", "POST", "/v1/spaces/{space}/complete"},
        {"Watch", "GET", "/v1/spaces/{space}/events"},
        {"Checkpoint", "POST", "/v1/admin/checkpoint"},
        {"ClusterSpaces", "GET", "/v1/cluster/spaces"},
        {"ClusterGossip", "GET", "/v1/cluster/gossip"},
        {"ClusterHints", "GET", "/v1/cluster/hints"},
        {"Health", "GET", "/health"},
    };
    size_t n;
    g_methods_all(&n);
    assert_int_equal(n, sizeof pairs / sizeof pairs[0]);
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        mn_auth_op_t want = mn_auth_route_op(pairs[i].http_method, pairs[i].http_route);
        if (method(pairs[i].grpc)->op != want)
            fail_msg("%s is %s, its HTTP route %s %s is %s", pairs[i].grpc,
                     mn_auth_op_name(method(pairs[i].grpc)->op), pairs[i].http_method,
                     pairs[i].http_route, mn_auth_op_name(want));
    }
}

static void test_enums_convert_both_ways(void **state)
{
    (void)state;
    mn_error err = {0};
    int k;
    assert_int_equal(g_kind_in(MNEMO__V1__KIND__KIND_UNSPECIFIED, true, &k, "kind", &err), MN_OK);
    assert_int_equal(k, -1);
    assert_int_equal(g_kind_in(MNEMO__V1__KIND__KIND_UNSPECIFIED, false, &k, "kind", &err), MN_OK);
    assert_int_equal(k, MN_KIND_EPISODIC);
    for (int i = MN_KIND_EPISODIC; i <= MN_KIND_SEMANTIC; i++) {
        assert_int_equal(g_kind_in(g_kind_out((mn_kind_t)i), false, &k, "kind", &err), MN_OK);
        assert_int_equal(k, i);
    }
    assert_int_equal(g_kind_in((Mnemo__V1__Kind)9, false, &k, "memory.kind", &err), MN_ERR_INVALID);
    assert_string_equal(err.message, "memory.kind: unknown Kind 9");

    for (int i = 0; i < MN_EDGE_KINDS; i++) {
        mn_edge_kind_t e;
        assert_int_equal(g_edge_kind_in(g_edge_kind_out((uint8_t)i), &e, "kind", &err), MN_OK);
        assert_int_equal(e, i);
    }
    mn_edge_kind_t e;
    assert_int_equal(g_edge_kind_in(MNEMO__V1__EDGE_KIND__EDGE_KIND_UNSPECIFIED, &e, "k", &err),
                     MN_OK);
    assert_int_equal(e, MN_EDGE_EXPLICIT);
    assert_int_equal(g_edge_kind_in((Mnemo__V1__EdgeKind)42, &e, "edges[0].kind", &err),
                     MN_ERR_INVALID);

    for (int i = MN_METRIC_COSINE; i <= MN_METRIC_DOT; i++) {
        mn_metric_t m;
        assert_int_equal(g_metric_in(g_metric_out((mn_metric_t)i), &m, &err), MN_OK);
        assert_int_equal(m, i);
    }
    mn_metric_t m;
    assert_int_equal(g_metric_in((Mnemo__V1__Metric)-1, &m, &err), MN_ERR_INVALID);

    for (int i = MN_LIFECYCLE_EPHEMERAL; i <= MN_LIFECYCLE_PERSISTENT; i++) {
        mn_lifecycle_t l;
        assert_int_equal(g_lifecycle_in(g_lifecycle_out((mn_lifecycle_t)i), &l, "lifecycle", &err),
                         MN_OK);
        assert_int_equal(l, i);
    }
    mn_lifecycle_t l;
    assert_int_equal(g_lifecycle_in(MNEMO__V1__LIFECYCLE__LIFECYCLE_UNSPECIFIED, &l, "x", &err),
                     MN_OK);
    assert_int_equal(l, MN_LIFECYCLE_UNSET);
    assert_int_equal(g_lifecycle_in((Mnemo__V1__Lifecycle)7, &l, "x", &err), MN_ERR_INVALID);
}

static void test_memory_round_trip(void **state)
{
    (void)state;
    api_arena a;
    api_arena_init(&a);
    float emb[3] = {0.25f, -0.5f, 1};
    char *who[] = {"ada", "sam"}, *tags[] = {"travel"};
    Mnemo__V1__MetadataEntry md = MNEMO__V1__METADATA_ENTRY__INIT;
    md.key = "source";
    md.value = "chat";
    Mnemo__V1__MetadataEntry *mds[] = {&md};
    Mnemo__V1__Context ctx = MNEMO__V1__CONTEXT__INIT;
    ctx.who = who;
    ctx.n_who = 2;
    ctx.where = "station";
    Mnemo__V1__Memory in = MNEMO__V1__MEMORY__INIT;
    in.content = "met Ada";
    in.embedding = emb;
    in.n_embedding = 3;
    in.has_kind = in.has_confidence = in.has_when_ms = in.has_lifecycle = in.has_ttl_seconds = 1;
    in.kind = MNEMO__V1__KIND__KIND_SEMANTIC;
    in.confidence = 0.75f;
    in.when_ms = 1767000000000;
    in.lifecycle = MNEMO__V1__LIFECYCLE__LIFECYCLE_SESSION;
    in.ttl_seconds = 60;
    in.context = &ctx;
    in.tags = tags;
    in.n_tags = 1;
    in.metadata = mds;
    in.n_metadata = 1;
    in.idempotency_key = "k1";

    mn_memory_t m;
    mn_error err = {0};
    assert_int_equal(g_memory_in(&in, "", &a, &m, &err), MN_OK);
    assert_int_equal(m.kind, MN_KIND_SEMANTIC);
    assert_int_equal(m.content_len, 7);
    assert_int_equal(m.dim, 3);
    assert_true(m.importance == 0.5f); /* not given: the default */
    assert_true(m.confidence == 0.75f);
    assert_int_equal(m.when_ms, 1767000000000);
    assert_int_equal(m.lifecycle, MN_LIFECYCLE_SESSION);
    assert_int_equal(m.ttl_seconds, 60);
    assert_int_equal(m.n_who, 2);
    assert_string_equal(m.where, "station");
    assert_null(m.session);
    assert_string_equal(m.metadata[0].value, "chat");
    assert_string_equal(m.idempotency_key, "k1");

    Mnemo__V1__Memory *out = g_memory_out(&a, &m);
    assert_non_null(out);
    assert_string_equal(out->content, "met Ada");
    assert_int_equal(out->n_embedding, 3);
    assert_memory_equal(out->embedding, emb, sizeof emb);
    assert_int_equal(out->kind, MNEMO__V1__KIND__KIND_SEMANTIC);
    assert_string_equal(out->context->who[1], "sam");
    assert_string_equal(out->metadata[0]->key, "source");
    assert_int_equal(out->lifecycle, MNEMO__V1__LIFECYCLE__LIFECYCLE_SESSION);
    /* the output packs and reads back */
    size_t len = protobuf_c_message_get_packed_size(&out->base);
    uint8_t *buf = api_arena_alloc(&a, len);
    protobuf_c_message_pack(&out->base, buf);
    Mnemo__V1__Memory *back = mnemo__v1__memory__unpack(NULL, len, buf);
    assert_non_null(back);
    assert_string_equal(back->content, "met Ada");
    assert_int_equal(back->when_ms, 1767000000000);
    mnemo__v1__memory__free_unpacked(back, NULL);

    in.has_ttl_seconds = 1;
    in.ttl_seconds = -1;
    assert_int_equal(g_memory_in(&in, "memories[2].", &a, &m, &err), MN_ERR_INVALID);
    assert_string_equal(err.message, "memories[2].ttl_seconds: must be >= 0 (0 = never expires)");
    assert_int_equal(g_memory_in(NULL, "", &a, &m, &err), MN_ERR_INVALID);
    assert_string_equal(err.message, "memory: required");
    api_arena_free(&a);
}

static void test_filter_and_ids(void **state)
{
    (void)state;
    api_arena a;
    api_arena_init(&a);
    mn_error err = {0};
    mn_filter_t f;
    mn_filter_init(&f);
    assert_int_equal(g_filter_in(NULL, &a, &f, &err), MN_OK); /* no filter: everything */
    assert_int_equal(f.kind, -1);
    char *any[] = {"a", "b"};
    Mnemo__V1__Filter pf = MNEMO__V1__FILTER__INIT;
    pf.tags_any = any;
    pf.n_tags_any = 2;
    pf.has_when_from_ms = pf.has_as_of_ms = pf.has_kind = 1;
    pf.when_from_ms = 5;
    pf.as_of_ms = 9;
    pf.kind = MNEMO__V1__KIND__KIND_SEMANTIC;
    pf.who = "ada";
    assert_int_equal(g_filter_in(&pf, &a, &f, &err), MN_OK);
    assert_int_equal(f.n_tags_any, 2);
    assert_int_equal(f.when_from_ms, 5);
    assert_int_equal(f.when_to_ms, MN_TIME_UNSET);
    assert_int_equal(f.as_of_ms, 9);
    assert_int_equal(f.kind, MN_KIND_SEMANTIC);
    assert_string_equal(f.who, "ada");
    Mnemo__V1__MetadataEntry nokey = MNEMO__V1__METADATA_ENTRY__INIT;
    Mnemo__V1__MetadataEntry *mds[] = {&nokey};
    pf.metadata = mds;
    pf.n_metadata = 1;
    assert_int_equal(g_filter_in(&pf, &a, &f, &err), MN_ERR_INVALID);
    assert_string_equal(err.message, "filter.metadata[0].key: required");

    mn_id_t id;
    assert_int_equal(g_id_in("0190a5b2-7c1e-7d3a-9f00-1234567890ab", "id", &id, &err), MN_OK);
    assert_string_equal(g_id_out(&a, &id), "0190a5b2-7c1e-7d3a-9f00-1234567890ab");
    assert_int_equal(g_id_in("nope", "edges[1].to", &id, &err), MN_ERR_INVALID);
    assert_string_equal(err.message, "edges[1].to: not a memory id");
    assert_int_equal(g_id_in(NULL, "id", &id, &err), MN_ERR_INVALID);
    assert_string_equal(err.message, "id: required (a memory id)");
    api_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_and_proto_service_agree),
        cmocka_unit_test(test_operations_follow_the_http_routes),
        cmocka_unit_test(test_enums_convert_both_ways),
        cmocka_unit_test(test_memory_round_trip),
        cmocka_unit_test(test_filter_and_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
