"""pytest options for the chaos harness tests: --bin PATH (default $MNEMO_BIN,
else build/mnemo of this checkout)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def pytest_addoption(parser):
    parser.addoption("--bin", action="store", default=None,
                     help="the mnemo binary (default: $MNEMO_BIN or build/mnemo)")


def mnemo_bin(config):
    b = config.getoption("--bin") or os.environ.get("MNEMO_BIN") or os.path.join(
        HERE, "..", "..", "build", "mnemo")
    return os.path.abspath(b)
