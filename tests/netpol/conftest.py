"""Fixtures for the NetworkPolicy tests: one real node (`ci/cluster.sh up --node
--network-policy`) per session, with kube-router's policy controller enforcing the chart's
policies, and one release upgraded between the cases. When tests/autoscale ran first in the
session, its node (the same parts, and the metrics stack) is shared instead of a second `up`."""
from pathlib import Path

import pytest

from helpers import node


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory):
    """The node with NetworkPolicies enforced (tests/autoscale's, if it is up), then `down`."""
    yield from node.session_node_cluster(tmp_path_factory, "netpol", "--node", "--network-policy",
                                         figure="up_to_node_with_policies_ready_seconds")


def pytest_collection_modifyitems(items):
    """`down` last of this folder, after every other test has used the session's cluster."""
    node.order_last(items, Path(__file__).parent, ("test_down_leaves_nothing",))
