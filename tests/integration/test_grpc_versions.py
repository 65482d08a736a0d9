"""Corrections over gRPC (UpdateMemory, MemoryHistory, InvalidateMemory): the same versions,
history, precondition (ABORTED with the HTTP code "conflict") and invalidation as the HTTP
API, on the same data."""

import grpc
import pytest

from grpc_util import error_code, pb
from test_grpc import g, gserver  # noqa: F401 (the fixtures: a server, a channel to it)


def test_update_history_and_invalidate(g, gserver):
    p = pb()
    g.CreateSpace(p.CreateSpaceRequest(name="gv", dim=2))
    mid = g.Remember(p.RememberRequest(space="gv", memory=p.Memory(
        content="lunch at noon", embedding=[1, 0], tags=["food"]))).id
    new = g.UpdateMemory(p.UpdateMemoryRequest(space="gv", id=mid, content="lunch at one",
                                               expected_version=1))
    assert new.id == mid and new.version == 2 and new.supersedes == mid
    assert new.version_id != mid and list(new.tags) == ["food"]
    assert list(new.changed) == ["content"] and new.valid_to_ms == 0

    with pytest.raises(grpc.RpcError) as ei:
        g.UpdateMemory(p.UpdateMemoryRequest(space="gv", id=mid, content="x", expected_version=1))
    assert ei.value.code() == grpc.StatusCode.ABORTED and error_code(ei.value) == "conflict"
    with pytest.raises(grpc.RpcError) as ei:
        g.UpdateMemory(p.UpdateMemoryRequest(space="gv", id=mid, clear=["colour"]))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "clear[0]" in ei.value.details()

    cleared = g.UpdateMemory(p.UpdateMemoryRequest(space="gv", id=mid, clear=["tags"]))
    assert cleared.version == 3 and list(cleared.tags) == [] and list(cleared.changed) == ["tags"]

    hist = g.MemoryHistory(p.MemoryRequest(space="gv", id=mid))
    assert [v.version for v in hist.versions] == [1, 2, 3]
    assert [v.content for v in hist.versions] == ["lunch at noon", "lunch at one", "lunch at one"]
    assert hist.versions[0].valid_to_ms == hist.versions[1].valid_from_ms

    # the HTTP API shows the same
    with gserver.client() as http:
        assert [v["version_id"] for v in http.history("gv", mid)] == \
            [v.version_id for v in hist.versions]

    other = g.Remember(p.RememberRequest(space="gv", memory=p.Memory(
        content="lunch moved to friday", embedding=[0, 1]))).id
    inv = g.InvalidateMemory(p.InvalidateMemoryRequest(space="gv", id=mid, by=other,
                                                       reason="moved"))
    assert inv.valid_to_ms > 0 and inv.invalidated_by == other and not inv.superseded
    hits = g.Recall(p.RecallRequest(space="gv", text="lunch one", k=5)).results
    flagged = [h for h in hits if h.memory.id == mid]
    assert flagged and "superseded" in flagged[0].confidence.reasons

    g.Forget(p.ForgetRequest(space="gv", id=mid))
    with pytest.raises(grpc.RpcError) as ei:
        g.MemoryHistory(p.MemoryRequest(space="gv", id=mid))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_code(ei.value) == "memory_forgotten"
