"""Forget by filter over gRPC (ForgetWhere, GetJob, CancelJob): the same selection, dry
run, runs and jobs as POST /v1/spaces/{s}/forget, and its errors with the HTTP codes."""

import grpc
import pytest

from conftest import wait_until
from grpc_util import error_code, g, gserver, pb  # noqa: F401 (g, gserver: fixtures)


_n = [0]


@pytest.fixture
def space(g):
    _n[0] += 1
    name = "gf%d" % _n[0]
    g.CreateSpace(pb().CreateSpaceRequest(name=name, dim=3))
    mems = [pb().RememberRequest(space=name, memory=pb().Memory(
        content="m%d" % i, embedding=[1.0, 0.1 * i, 0.0], tags=["red" if i % 2 == 0 else "blue"],
        context=pb().Context(who=["ann"] if i % 4 == 0 else ["bob"])))
        for i in range(20)]
    g.RememberBatch(iter(mems))
    return name


def expect(code, mnemo_code, fn, *args):
    with pytest.raises(grpc.RpcError) as ei:
        fn(*args)
    assert ei.value.code() == code, (ei.value.code(), ei.value.details())
    assert error_code(ei.value) == mnemo_code
    return ei.value


def test_dry_run_then_delete(g, space):
    p = pb()
    r = g.ForgetWhere(p.ForgetWhereRequest(space=space, filter=p.Filter(tags_any=["red"]),
                                           dry_run=True))
    assert r.count == 10 and r.dry_run and len(r.sample) == 10
    assert all(list(m.tags) == ["red"] for m in r.sample)
    assert not r.HasField("job")
    r = g.ForgetWhere(p.ForgetWhereRequest(space=space, filter=p.Filter(tags_any=["red"])))
    assert (r.count, r.done, r.forgotten) == (10, 10, 10)
    assert r.mode == p.FORGET_MODE_DELETE
    assert g.Stats(p.SpaceRequest(space=space)).memories == 10


def test_suppress_as_job_polled_and_cancelled(g, space):
    p = pb()
    r = g.ForgetWhere(p.ForgetWhereRequest(space=space, filter=p.Filter(who="ann"),
                                           mode=p.FORGET_MODE_SUPPRESS, as_job=True))
    assert r.HasField("job") and r.job.total == 5 and r.job.space == space
    job = wait_until(lambda: (lambda j: j if j.state != "running" else None)(
        g.GetJob(p.JobRequest(space=space, id=r.job.id))), 60, what="the job")
    assert job.state == "done" and job.forgotten == 5 and job.HasField("finished_at_ms")
    assert g.CancelJob(p.JobRequest(space=space, id=r.job.id)).state == "done"
    listed = g.ListMemories(p.ListMemoriesRequest(space=space, limit=100)).memories
    assert len(listed) == 15


def test_expr_alone_is_a_condition(g, space):
    p = pb()
    f = p.Filter(expr='{"context.who": {"in": ["ann"]}}')
    r = g.ForgetWhere(p.ForgetWhereRequest(space=space, filter=f, dry_run=True))
    assert r.count == 5


def test_errors(g, space):
    p = pb()
    expect(grpc.StatusCode.NOT_FOUND, "space_not_found", g.ForgetWhere,
           p.ForgetWhereRequest(space="nope", filter=p.Filter(tags_any=["red"])))
    expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.ForgetWhere,
           p.ForgetWhereRequest(space=space))
    expect(grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", g.ForgetWhere,
           p.ForgetWhereRequest(space=space, filter=p.Filter(tags_any=["red"], as_of_ms=1)))
    expect(grpc.StatusCode.NOT_FOUND, "not_found", g.GetJob, p.JobRequest(space=space, id="x"))
    assert g.Stats(p.SpaceRequest(space=space)).memories == 20
