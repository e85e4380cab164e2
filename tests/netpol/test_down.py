"""`ci/cluster.sh down` after kube-router enforced policies: its process, chains, rules and
ipsets are gone with the rest of the node. Run last of this folder (see conftest.py)."""
from helpers.node import host_state, leftovers


def test_down_leaves_nothing(node_cluster):
    made = leftovers(node_cluster.host_before, host_state())
    # Something to remove: kube-router runs, with ipsets and chains of its own.
    assert made.get("ipsets"), made
    assert any("KUBE-ROUTER-FORWARD" in chain for chain in made["firewall chains"]), made
    assert any("kube-router" in proc for proc in made["processes"]), made
    node_cluster.script("down")
    assert leftovers(node_cluster.host_before, host_state()) == {}
