"""pytest options for the chaos harness tests: --bin PATH (default $MNEMO_BIN,
else build/mnemo of this checkout); the `env` fixture of three converged nodes."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import faults as F  # noqa: E402
import netns  # noqa: E402
from nodes import Cluster  # noqa: E402

DEADLINE_S = 20.0     # SWIM `fast` marks a silent node dead in a few seconds


def pytest_addoption(parser):
    parser.addoption("--bin", action="store", default=None,
                     help="the mnemo binary (default: $MNEMO_BIN or build/mnemo)")


def mnemo_bin(config):
    b = config.getoption("--bin") or os.environ.get("MNEMO_BIN") or os.path.join(
        HERE, "..", "..", "build", "mnemo")
    return os.path.abspath(b)


@pytest.fixture
def env(request):
    """(net, cluster, faults) of three converged nodes; after the test, the
    run's namespaces and bridge must be gone."""
    binary = mnemo_bin(request.config)
    assert os.access(binary, os.X_OK), "no mnemo binary at %s (build it, or pass --bin)" % binary
    with netns.Net(3) as net:
        prefix = net.prefix
        with Cluster(net, binary) as cluster:
            cluster.wait_converged(DEADLINE_S)
            faults = F.Faults(cluster)
            yield net, cluster, faults
            faults.heal()
    assert netns.leftovers(prefix) == [], "namespaces/links of run %s left behind" % prefix
