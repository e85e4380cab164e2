"""`ci/cluster.sh down` after Prometheus, KEDA and metrics-server ran as pods: nothing of them,
nor of the node, is left on the machine. Run last of this folder (see conftest.py)."""
from helpers.node import host_state, leftovers


def test_down_leaves_nothing(node_cluster):
    made = leftovers(node_cluster.host_before, host_state())
    assert made, "up made nothing on this machine that down could remove"
    node_cluster.script("down")
    assert leftovers(node_cluster.host_before, host_state()) == {}
