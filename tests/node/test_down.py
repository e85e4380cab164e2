"""`ci/cluster.sh down` after a real node ran pods: every process, mount, interface, firewall rule,
cgroup and sysctl that `up --node` made is gone. Run last of this folder (see conftest.py)."""
import subprocess

from helpers.node import host_state, leftovers


def test_pod_traffic_stays_on_this_machine(node_cluster):
    """The containment rule: a pod's packet to an address outside the pod range is dropped."""
    def rules(chain):
        return subprocess.run(["iptables", "-t", "mangle", "-S", chain], capture_output=True,
                              text=True, check=True).stdout.splitlines()
    assert "-A DOCKERCOINS-NODE -s 10.244.0.0/16 ! -d 10.244.0.0/16 -j DROP" in rules("DOCKERCOINS-NODE")
    # First in mangle FORWARD, which runs before kube-proxy's ACCEPT rules in filter FORWARD.
    assert rules("FORWARD")[1] == "-A FORWARD -j DOCKERCOINS-NODE"


def test_down_leaves_nothing(node_cluster):
    node_cluster.script("down")
    assert leftovers(node_cluster.host_before, host_state()) == {}
