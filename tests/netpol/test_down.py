"""`ci/cluster.sh down` after kube-router enforced policies: its process, chains, rules and
ipsets are gone with the rest of the node. Run last of this folder (see conftest.py)."""
import os
import time

from helpers.node import FIGURES, host_state, leftovers


def idle_cost(pid, seconds=10.0):
    """kube-router's resident memory (MiB) and CPU use (% of one core) over a window in which no
    policy or pod changes."""
    def cpu_seconds():
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    start = cpu_seconds()
    time.sleep(seconds)
    used = cpu_seconds() - start
    rss_kib = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status")
                   if line.startswith("VmRSS:"))
    return round(rss_kib / 1024, 1), round(100 * used / seconds, 2)


def test_down_leaves_nothing(node_cluster):
    made = leftovers(node_cluster.host_before, host_state())
    # Something to remove: kube-router runs, with ipsets and chains of its own.
    assert made.get("ipsets"), made
    assert any("KUBE-ROUTER-FORWARD" in chain for chain in made["firewall chains"]), made
    assert any("kube-router" in proc for proc in made["processes"]), made
    pid = int((node_cluster.dir / "pids" / "kube-router-dockercoins-node").read_text())
    FIGURES["kube_router_idle_rss_mib"], FIGURES["kube_router_idle_cpu_percent"] = idle_cost(pid)
    node_cluster.script("down")
    assert leftovers(node_cluster.host_before, host_state()) == {}
