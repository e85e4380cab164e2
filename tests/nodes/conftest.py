"""Fixtures for the tests on three real nodes (`ci/cluster.sh up --nodes 3`): one cluster per
session, each node with its own network namespace, containerd, kubelet and kube-proxy; one
namespace and release per module."""
from pathlib import Path

import pytest

from helpers import node

NODES = 3


@pytest.fixture(scope="session")
def nodes_cluster(tmp_path_factory):
    """`ci/cluster.sh up --nodes 3` in a directory of its own, then `down`."""
    yield from node.session_node_cluster(tmp_path_factory, "nodes", "--nodes", str(NODES),
                                         figure="up_to_three_nodes_ready_seconds")


# Run last of this folder, in this order: `down` after every other test has used the session's
# cluster, then docs/node.md's block, which needs the machine free of any other node.
LAST = ("test_down_leaves_nothing", "test_the_nodes_block_as_typed")


def pytest_collection_modifyitems(items):
    node.order_last(items, Path(__file__).parent, LAST)
