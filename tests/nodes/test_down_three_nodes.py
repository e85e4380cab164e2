"""Containment on every node, and `ci/cluster.sh down` after three nodes ran pods: every process,
mount, interface, network namespace, route, firewall rule, cgroup and sysctl that `up --nodes 3`
made is gone. Run last of this folder (see conftest.py)."""
import subprocess

import pytest

from helpers.node import host_state, leftovers

IN_NODE = {0: [], **{i: ["nsenter", f"--net=/run/netns/dcnode{i}"] for i in (1, 2)}}


def in_node(index, *argv):
    return subprocess.run([*IN_NODE[index], *argv], capture_output=True, text=True,
                          check=True).stdout.splitlines()


@pytest.mark.parametrize("index", [0, 1, 2])
def test_pod_traffic_stays_on_this_machine_on_every_node(nodes_cluster, index):
    """Each node's own containment rule: a pod's packet to an address outside the cluster range is
    dropped, first in mangle FORWARD (before kube-proxy's ACCEPT rules in filter FORWARD)."""
    rules = in_node(index, "iptables", "-t", "mangle", "-S", "DOCKERCOINS-NODE")
    assert "-A DOCKERCOINS-NODE -s 10.244.0.0/16 ! -d 10.244.0.0/16 -j DROP" in rules
    forward = in_node(index, "iptables", "-t", "mangle", "-S", "FORWARD")
    assert forward[1] == "-A FORWARD -j DOCKERCOINS-NODE"
    if index:
        # And the other nodes' namespaces have no route out at all: node 0 is their only neighbour.
        assert in_node(index, "ip", "route", "show", "default") == []
        # A route lookup only (no packet is sent): this machine's own gateway is unreachable there.
        lookup = subprocess.run([*IN_NODE[index], "ip", "route", "get", "192.0.2.1"],
                                capture_output=True, text=True)
        assert lookup.returncode != 0 and "unreachable" in lookup.stderr, lookup


def test_down_leaves_nothing(nodes_cluster):
    nodes_cluster.script("down")
    assert leftovers(nodes_cluster.host_before, host_state()) == {}
