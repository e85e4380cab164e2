"""`ci/cluster.sh down` after kube-router enforced policies: its process, chains, rules and
ipsets are gone with the rest of the node, and so is everything of Prometheus, KEDA and
metrics-server when tests/autoscale ran first on this node. Run last of this folder (see
conftest.py), and of the node tier (tests/tiers.txt)."""
import os
import time
from pathlib import Path

from helpers import figures
from helpers.node import host_state, leftovers
from localapp import wait_until


def idle_cost(pid, seconds=10.0):
    """kube-router's resident memory (MiB) and CPU use (% of one core) over a window in which no
    policy or pod changes."""
    def cpu_seconds():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    start = cpu_seconds()
    time.sleep(seconds)
    used = cpu_seconds() - start
    rss_kib = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS:"))
    return round(rss_kib / 1024, 1), round(100 * used / seconds, 2)


# A policy whose peers are pods: kube-router matches them with ipsets, which `down` must remove
# (the releases of the other tests are gone by now, and kube-router drops their ipsets itself).
POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: same-namespace}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {}}]
"""


def test_down_leaves_nothing(node_cluster):
    ns = node_cluster.new_namespace("np-down")
    node_cluster.apply(POLICY, "-n", ns)
    node_cluster.kubectl("-n", ns, "run", "debug", "--restart=Never",
                         f"--image={node_cluster.registry}/dockercoins/httping:bookworm",
                         "--", "sleep", "3600")
    node_cluster.kubectl("-n", ns, "wait", "pod/debug", "--for=condition=Ready",
                         "--timeout=120s", timeout=150)
    # Something to remove: kube-router runs, with ipsets and chains of its own.
    def made_ipsets():
        made = leftovers(node_cluster.host_before, host_state())
        return made if made.get("ipsets") else None
    made = wait_until(made_ipsets, 60, "kube-router's ipsets")
    assert any("KUBE-ROUTER-FORWARD" in chain for chain in made["firewall chains"]), made
    assert any("kube-router" in proc for proc in made["processes"]), made
    pid = int((node_cluster.dir / "pids" / "kube-router-dockercoins-node").read_text())
    rss_mib, cpu_percent = idle_cost(pid)
    figures.record("node", "kube_router_idle_rss_mib", rss_mib)
    figures.record("node", "kube_router_idle_cpu_percent", cpu_percent)
    node_cluster.script("down")
    assert leftovers(node_cluster.host_before, host_state()) == {}
