"""Fixtures for the NetworkPolicy tests: one real node (`ci/cluster.sh up --node
--network-policy`) per session, with kube-router's policy controller enforcing the chart's
policies, and one release upgraded between the cases."""
import time
from pathlib import Path

import pytest

from helpers import kube, node


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory):
    """The node with NetworkPolicies enforced, then `down`, which must leave nothing."""
    before = node.host_state()
    c = node.NodeCluster(tmp_path_factory.mktemp("node"))
    c.host_before = before
    started = time.monotonic()
    try:
        c.script("up", "--node", "--network-policy")
    except kube.Failed:
        c.script("down")
        raise
    node.FIGURES["up_to_node_ready_seconds"] = round(time.monotonic() - started, 1)
    try:
        yield c
    finally:
        c.script("down")   # again after test_down_leaves_nothing: a no-op then


def pytest_collection_modifyitems(items):
    """`down` last of this folder, after every other test has used the session's cluster."""
    here = [i for i, item in enumerate(items) if Path(item.path).parent == Path(__file__).parent]
    if here:
        mine = [items[i] for i in here]
        items[here[0]:here[-1] + 1] = ([i for i in mine if i.name != "test_down_leaves_nothing"]
                                       + [i for i in mine if i.name == "test_down_leaves_nothing"])


def pytest_terminal_summary(terminalreporter):
    if node.FIGURES:
        terminalreporter.section("netpol")
        for key, value in node.FIGURES.items():
            terminalreporter.write_line(f"{key}: {value}")
