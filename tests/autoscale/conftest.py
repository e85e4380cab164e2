"""Fixtures for the autoscaling tests: one real node per session (`ci/cluster.sh up --node
--network-policy --metrics`), with Prometheus, KEDA and metrics-server as pods, and the chart's
NetworkPolicies enforced, as on an LKE cluster with Calico."""
from pathlib import Path

import pytest

from helpers import node


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory):
    """The node with the metrics stack, then `down`, which must leave nothing."""
    yield from node.session_node_cluster(tmp_path_factory, "autoscale", "--node",
                                         "--network-policy", "--metrics",
                                         figure="up_to_node_with_metrics_ready_seconds")


def pytest_collection_modifyitems(items):
    """`down` last of this folder, after every other test has used the session's cluster."""
    node.order_last(items, Path(__file__).parent, ("test_down_leaves_nothing",))
