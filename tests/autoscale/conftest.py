"""Fixtures for the autoscaling tests: one real node per session (`ci/cluster.sh up --node
--network-policy --metrics`), with Prometheus, KEDA and metrics-server as pods, and the chart's
NetworkPolicies enforced, as on an LKE cluster with Calico. tests/netpol runs next on the same
node (it needs only the policy controller), and its last test takes the node down and checks
that nothing of either is left on the machine."""
import pytest

from helpers import node


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory):
    """The node with the metrics stack, then `down` (after tests/netpol, when it runs too)."""
    yield from node.session_node_cluster(tmp_path_factory, "autoscale", "--node",
                                         "--network-policy", "--metrics",
                                         figure="up_to_node_with_metrics_ready_seconds")
