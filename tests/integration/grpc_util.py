"""A gRPC client for the integration suites: message classes generated from
api/proto/mnemo/v1/mnemo.proto by protoc at test time (Debian's protobuf-compiler, matching
python3-protobuf), calls made with Debian's python3-grpcio through generic stubs
(channel.unary_unary & co. with the messages' own serializers)."""

import os
import subprocess
import sys
import tempfile

import grpc
import pytest

from conftest import MnemoServer

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "..", "api", "proto")
PROTO = os.path.join(PROTO_ROOT, "mnemo", "v1", "mnemo.proto")

_pb = None


def pb():
    """The generated module mnemo/v1/mnemo_pb2 (made once per process)."""
    global _pb
    if _pb is None:
        out = tempfile.mkdtemp(prefix="mnemo-pb2-")
        subprocess.run(["protoc", "--proto_path=" + PROTO_ROOT, "--python_out=" + out, PROTO],
                       check=True, capture_output=True, timeout=60)
        sys.path.insert(0, out)
        from mnemo.v1 import mnemo_pb2  # noqa: E402
        _pb = mnemo_pb2
    return _pb


# method -> (shape, request type, response type)
def methods():
    p = pb()
    return {
        "Health": ("unary", p.HealthRequest, p.HealthResponse),
        "CreateSpace": ("unary", p.CreateSpaceRequest, p.Space),
        "ListSpaces": ("unary", p.ListSpacesRequest, p.ListSpacesResponse),
        "GetSpace": ("unary", p.SpaceRequest, p.SpaceStats),
        "DropSpace": ("unary", p.SpaceRequest, p.DropSpaceResponse),
        "Stats": ("unary", p.SpaceRequest, p.SpaceStats),
        "Remember": ("unary", p.RememberRequest, p.RememberResponse),
        "RememberBatch": ("client_stream", p.RememberRequest, p.RememberBatchResponse),
        "GetMemory": ("unary", p.GetMemoryRequest, p.Memory),
        "ListMemories": ("unary", p.ListMemoriesRequest, p.ListMemoriesResponse),
        "Forget": ("unary", p.ForgetRequest, p.ForgetResponse),
        "Unsuppress": ("unary", p.MemoryRequest, p.UnsuppressResponse),
        "UpdateMemory": ("unary", p.UpdateMemoryRequest, p.Memory),
        "MemoryHistory": ("unary", p.MemoryRequest, p.MemoryHistoryResponse),
        "InvalidateMemory": ("unary", p.InvalidateMemoryRequest, p.Memory),
        "ForgetWhere": ("unary", p.ForgetWhereRequest, p.ForgetWhereResponse),
        "GetJob": ("unary", p.JobRequest, p.Job),
        "CancelJob": ("unary", p.JobRequest, p.Job),
        "Recall": ("unary", p.RecallRequest, p.RecallResponse),
        "RecallMany": ("unary", p.RecallManyRequest, p.RecallManyResponse),
        "Associate": ("unary", p.AssociateRequest, p.AssociateResponse),
        "ListAssociations": ("unary", p.MemoryRequest, p.ListAssociationsResponse),
        "Consolidate": ("unary", p.ConsolidateRequest, p.ConsolidateResponse),
        "Recognize": ("unary", p.RecognizeRequest, p.RecognizeResponse),
        "Reminisce": ("unary", p.ReminisceRequest, p.ReminisceResponse),
        "Complete": ("unary", p.CompleteRequest, p.CompleteResponse),
        "Watch": ("server_stream", p.WatchRequest, p.Event),
        "Checkpoint": ("unary", p.CheckpointRequest, p.CheckpointResponse),
        "ClusterSpaces": ("unary", p.ClusterSpacesRequest, p.ClusterSpacesResponse),
        "ClusterGossip": ("unary", p.ClusterGossipRequest, p.ClusterGossipResponse),
        "ClusterHints": ("unary", p.ClusterHintsRequest, p.ClusterHintsResponse),
    }


class Grpc:
    """mnemo.v1.Mnemo over one channel: g.Recall(pb.RecallRequest(...)) -> RecallResponse."""

    def __init__(self, target, api_key=None, credentials=None, timeout=30.0, options=None):
        self.channel = (grpc.secure_channel(target, credentials, options=options or [])
                        if credentials else grpc.insecure_channel(target, options=options or []))
        self.timeout = timeout
        self.metadata = [("authorization", "Bearer " + api_key)] if api_key else None
        for name, (shape, req, resp) in methods().items():
            path = "/mnemo.v1.Mnemo/" + name
            make = {"unary": self.channel.unary_unary, "client_stream": self.channel.stream_unary,
                    "server_stream": self.channel.unary_stream}[shape]
            setattr(self, "_" + name, make(path, request_serializer=req.SerializeToString,
                                           response_deserializer=resp.FromString))

    def __getattr__(self, name):
        raw = self.__dict__.get("_" + name)
        if raw is None:
            raise AttributeError(name)

        def call(request, timeout=None, metadata=None):
            return raw(request, timeout=timeout or self.timeout,
                       metadata=metadata if metadata is not None else self.metadata)
        return call

    def raw_unary(self, name, payload, timeout=None):
        """Sends payload bytes as the request of method name; returns the response bytes."""
        f = self.channel.unary_unary("/mnemo.v1.Mnemo/" + name, request_serializer=None,
                                     response_deserializer=None)
        return f(payload, timeout=timeout or self.timeout, metadata=self.metadata)

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# Fixtures for a module of gRPC tests: `from grpc_util import g, gserver` makes them its own.
@pytest.fixture(scope="module")
def gserver(tmp_path_factory):
    """One server for the module, with its gRPC port; it must still be up, and stop cleanly."""
    s = MnemoServer(tmp_path_factory.mktemp("grpc")).start()
    assert s.grpc_port, s.log()
    yield s
    if s.alive():
        assert s.stop() == 0, s.log()


@pytest.fixture
def g(gserver):
    """A client of gserver; the server must have survived the test."""
    with Grpc("127.0.0.1:%d" % gserver.grpc_port) as c:
        yield c
    assert gserver.alive(), gserver.log()


def error_code(e):
    """The mnemo error code of a failed call (trailing metadata mnemo-error-code)."""
    for k, v in e.trailing_metadata() or ():
        if k == "mnemo-error-code":
            return v
    return None


def error_details(e):
    """The ErrorStatus of grpc-status-details-bin (google.rpc.Status-compatible), or None."""
    for k, v in e.trailing_metadata() or ():
        if k == "grpc-status-details-bin":
            s = pb().ErrorStatus.FromString(v)
            infos = [pb().ErrorInfo.FromString(d.value) for d in s.details
                     if d.type_url == "type.googleapis.com/google.rpc.ErrorInfo"]
            return s, infos
    return None
